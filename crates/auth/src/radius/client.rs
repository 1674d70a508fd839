//! The sans-IO RADIUS client: Access-Requests carrying digest credentials, matched to their
//! responses by identifier, source address and authenticators, retransmitted on timeout and
//! failed over between servers.
//!
//! Drive it like every core of sipwarden: after any input ([`RadiusClient::send_digest`],
//! [`RadiusClient::handle_datagram`], [`RadiusClient::handle_timeout`]) drain
//! [`RadiusClient::poll_transmit`] and [`RadiusClient::poll_event`], then sleep until
//! [`RadiusClient::poll_timeout`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::codec::{self, attr, code, verify_response, Packet, ResponseError};
use crate::digest::{DigestCredentials, Pending};

/// How the digest credentials are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestDialect {
    /// RFC 5090 attributes 103-122 (the standard).
    Rfc5090,
    /// draft-sterman-aaa-sip-00: Digest-Response (206) and Digest-Attributes (207) with
    /// sub-attributes, MD5 only. What FreeRADIUS 3.x's `digest` module understands.
    DraftSterman,
}

/// Client settings (`auth.radius.*`).
#[derive(Debug, Clone)]
pub struct RadiusConfig {
    /// Servers in order of preference (primary first).
    pub servers: Vec<SocketAddr>,
    /// Shared secret (the same for every server).
    pub secret: Vec<u8>,
    /// Wait for an answer this long before retransmitting.
    pub timeout: Duration,
    /// Transmissions to one server before failing over to the next (at least 1).
    pub tries_per_server: u32,
    /// A server that did not answer is skipped by new requests for this long.
    pub dead_time: Duration,
    /// NAS-Identifier sent in every request.
    pub nas_identifier: String,
    /// NAS-IP-Address / NAS-IPv6-Address, if set.
    pub nas_ip: Option<IpAddr>,
    pub dialect: DigestDialect,
    /// Refuse responses without Message-Authenticator (the BlastRADIUS defence; FreeRADIUS
    /// 3.2.5 and later send it).
    pub require_message_authenticator: bool,
}

impl RadiusConfig {
    /// Defaults: 2 s timeout, 3 tries per server, 30 s dead time, RFC 5090, Message-Authenticator
    /// required in responses.
    pub fn new(servers: Vec<SocketAddr>, secret: impl Into<Vec<u8>>) -> Self {
        RadiusConfig {
            servers,
            secret: secret.into(),
            timeout: Duration::from_secs(2),
            tries_per_server: 3,
            dead_time: Duration::from_secs(30),
            nas_identifier: "sipwarden".into(),
            nas_ip: None,
            dialect: DigestDialect::Rfc5090,
            require_message_authenticator: true,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Access-Reject, or an Access-Challenge (which digest has no use for).
    Reject,
}

/// Why a request got no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RadiusError {
    #[error("no RADIUS server answered")]
    Timeout,
    #[error("no RADIUS server configured")]
    NoServer,
    #[error("256 requests already outstanding")]
    TooManyPending,
    #[error("request cannot be encoded: {0}")]
    Encode(#[from] codec::CodecError),
}

/// A finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The caller's token given to [`RadiusClient::send_digest`].
    pub token: u64,
    pub result: Result<Verdict, RadiusError>,
    /// The server that answered.
    pub server: Option<SocketAddr>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub retransmitted: u64,
    pub failovers: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub timeouts: u64,
    /// Datagrams dropped: unknown identifier, wrong source, bad authenticators, malformed.
    pub dropped: u64,
    /// Of `dropped`: valid answers refused only because Message-Authenticator was required and
    /// absent (a server older than FreeRADIUS 3.2.5: set `require_message_authenticator`
    /// to false for it, or upgrade it).
    pub missing_message_authenticator: u64,
}

/// The fields of a digest Access-Request (RFC 5090 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRequest {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub method: String,
    pub uri: String,
    pub response: String,
    pub algorithm: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

impl DigestRequest {
    /// From credentials and the request method.
    pub fn new(c: &DigestCredentials, method: &str) -> Self {
        DigestRequest {
            username: c.username.clone(),
            realm: c.realm.clone(),
            nonce: c.nonce.clone(),
            method: method.to_owned(),
            uri: c.uri.clone(),
            response: c.response.clone(),
            algorithm: c.algorithm.name().to_owned(),
            qop: c.qop.clone(),
            nc: c.nc.as_ref().map(|(s, _)| s.clone()),
            cnonce: c.cnonce.clone(),
        }
    }
}

impl From<&Pending> for DigestRequest {
    fn from(p: &Pending) -> Self {
        DigestRequest::new(p.credentials(), p.method())
    }
}

struct Outstanding {
    token: u64,
    payload: Vec<u8>,
    authenticator: [u8; 16],
    server: usize,
    tries: u32,
    deadline: Instant,
    attributes: Vec<(u8, Vec<u8>)>,
}

/// The RADIUS client core.
pub struct RadiusClient {
    config: RadiusConfig,
    seed: [u8; 32],
    counter: u64,
    next_id: u8,
    outstanding: HashMap<u8, Outstanding>,
    dead_until: Vec<Option<Instant>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl std::fmt::Debug for RadiusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusClient")
            .field("servers", &self.config.servers)
            .field("outstanding", &self.outstanding.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RadiusClient {
    /// `seed`: 32 random bytes; Request Authenticators are derived from it and must be
    /// unpredictable (RFC 2865 section 3).
    pub fn new(config: RadiusConfig, seed: [u8; 32]) -> Self {
        let n = config.servers.len();
        RadiusClient {
            config,
            seed,
            counter: 0,
            next_id: 0,
            outstanding: HashMap::new(),
            dead_until: vec![None; n],
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Requests waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    fn random16(&mut self) -> [u8; 16] {
        self.counter += 1;
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.seed) {
            Ok(m) => m,
            Err(_) => return [0; 16],
        };
        m.update(&self.counter.to_be_bytes());
        let full: [u8; 32] = m.finalize().into_bytes().into();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    fn attributes(&self, r: &DigestRequest) -> Vec<(u8, Vec<u8>)> {
        let mut a: Vec<(u8, Vec<u8>)> = Vec::new();
        let s = |v: &str| v.as_bytes().to_vec();
        a.push((attr::USER_NAME, s(&r.username)));
        match self.config.dialect {
            DigestDialect::Rfc5090 => {
                a.push((attr::DIGEST_RESPONSE, s(&r.response)));
                a.push((attr::DIGEST_REALM, s(&r.realm)));
                a.push((attr::DIGEST_NONCE, s(&r.nonce)));
                a.push((attr::DIGEST_METHOD, s(&r.method)));
                a.push((attr::DIGEST_URI, s(&r.uri)));
                if let Some(q) = &r.qop {
                    a.push((attr::DIGEST_QOP, s(q)));
                }
                a.push((attr::DIGEST_ALGORITHM, s(&r.algorithm)));
                if let Some(c) = &r.cnonce {
                    a.push((attr::DIGEST_CNONCE, s(c)));
                }
                if let Some(n) = &r.nc {
                    a.push((attr::DIGEST_NONCE_COUNT, s(n)));
                }
                a.push((attr::DIGEST_USERNAME, s(&r.username)));
            }
            DigestDialect::DraftSterman => {
                a.push((attr::STERMAN_DIGEST_RESPONSE, s(&r.response)));
                let mut sub = |t: u8, v: &str| {
                    let mut b = vec![t, (v.len() + 2).min(255) as u8];
                    b.extend_from_slice(v.as_bytes());
                    a.push((attr::STERMAN_DIGEST_ATTRIBUTES, b));
                };
                sub(1, &r.realm);
                sub(2, &r.nonce);
                sub(3, &r.method);
                sub(4, &r.uri);
                if let Some(q) = &r.qop {
                    sub(5, q);
                }
                sub(6, &r.algorithm);
                if let Some(c) = &r.cnonce {
                    sub(8, c);
                }
                if let Some(n) = &r.nc {
                    sub(9, n);
                }
                sub(10, &r.username);
            }
        }
        a.push((
            attr::SERVICE_TYPE,
            codec::SERVICE_TYPE_SIP_SESSION.to_be_bytes().to_vec(),
        ));
        a.push((attr::NAS_IDENTIFIER, s(&self.config.nas_identifier)));
        match self.config.nas_ip {
            Some(IpAddr::V4(ip)) => a.push((attr::NAS_IP_ADDRESS, ip.octets().to_vec())),
            Some(IpAddr::V6(ip)) => a.push((attr::NAS_IPV6_ADDRESS, ip.octets().to_vec())),
            None => {}
        }
        a
    }

    /// The server a new request starts on: the first that is not resting after a timeout
    /// (the primary again once its dead time is over), else the primary.
    fn pick_server(&self, now: Instant) -> usize {
        self.dead_until
            .iter()
            .position(|d| d.is_none_or(|t| now >= t))
            .unwrap_or(0)
    }

    fn build(
        &mut self,
        id: u8,
        attributes: &[(u8, Vec<u8>)],
    ) -> Result<([u8; 16], Vec<u8>), RadiusError> {
        let authenticator = self.random16();
        let mut payload =
            codec::encode(code::ACCESS_REQUEST, id, &authenticator, attributes, true)?;
        codec::sign_message_authenticator(&mut payload, &self.config.secret);
        Ok((authenticator, payload))
    }

    /// Starts an Access-Request. `token` comes back in the [`Event`].
    pub fn send_digest(
        &mut self,
        token: u64,
        request: &DigestRequest,
        now: Instant,
    ) -> Result<(), RadiusError> {
        if self.config.servers.is_empty() {
            return Err(RadiusError::NoServer);
        }
        if self.outstanding.len() >= 256 {
            return Err(RadiusError::TooManyPending);
        }
        let mut id = self.next_id;
        while self.outstanding.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let attributes = self.attributes(request);
        let (authenticator, payload) = self.build(id, &attributes)?;
        let server = self.pick_server(now);
        self.transmit(server, payload.clone());
        self.stats.sent += 1;
        self.outstanding.insert(
            id,
            Outstanding {
                token,
                payload,
                authenticator,
                server,
                tries: 1,
                deadline: now + self.config.timeout,
                attributes,
            },
        );
        Ok(())
    }

    fn transmit(&mut self, server: usize, payload: Vec<u8>) {
        if let Some(&destination) = self.config.servers.get(server) {
            self.transmits.push_back(Transmit {
                destination,
                payload,
            });
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next finished request.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.values().map(|o| o.deadline).min()
    }

    /// A datagram arrived from `from`. Anything that is not a valid answer to an outstanding
    /// request, from the server it was sent to, is dropped (and counted): a forged answer
    /// cannot end a request.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let Some(&id) = data.get(1) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(o) = self.outstanding.get(&id) else {
            self.stats.dropped += 1;
            return;
        };
        if self.config.servers.get(o.server) != Some(&from) {
            self.stats.dropped += 1;
            return;
        }
        let checked: Result<Packet, ResponseError> = verify_response(
            data,
            &o.authenticator,
            &self.config.secret,
            self.config.require_message_authenticator,
        );
        let p = match checked {
            Ok(p) => p,
            Err(e) => {
                self.stats.dropped += 1;
                if e == ResponseError::MissingMessageAuthenticator {
                    self.stats.missing_message_authenticator += 1;
                }
                return;
            }
        };
        let verdict = match p.code {
            code::ACCESS_ACCEPT => Verdict::Accept,
            code::ACCESS_REJECT | code::ACCESS_CHALLENGE => Verdict::Reject,
            _ => {
                self.stats.dropped += 1;
                return;
            }
        };
        if let Some(o) = self.outstanding.remove(&id) {
            if let Some(d) = self.dead_until.get_mut(o.server) {
                *d = None;
            }
            match verdict {
                Verdict::Accept => self.stats.accepted += 1,
                Verdict::Reject => self.stats.rejected += 1,
            }
            self.events.push_back(Event {
                token: o.token,
                result: Ok(verdict),
                server: Some(from),
            });
        }
    }

    /// Retransmits what is due, fails over, and gives up on requests that every server let
    /// time out.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u8> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(mut o) = self.outstanding.remove(&id) else {
                continue;
            };
            if o.tries < self.config.tries_per_server.max(1) {
                // Same server: the same bytes (same identifier and authenticator), so that
                // the server's duplicate detection answers it from its cache.
                o.tries += 1;
                o.deadline = now + self.config.timeout;
                self.transmit(o.server, o.payload.clone());
                self.stats.retransmitted += 1;
                self.outstanding.insert(id, o);
                continue;
            }
            if let Some(d) = self.dead_until.get_mut(o.server) {
                *d = Some(now + self.config.dead_time);
            }
            let next = o.server + 1;
            if next >= self.config.servers.len() {
                self.stats.timeouts += 1;
                self.events.push_back(Event {
                    token: o.token,
                    result: Err(RadiusError::Timeout),
                    server: None,
                });
                continue;
            }
            // Another server: a new Request Authenticator, so that a late answer from the
            // first server no longer verifies.
            match self.build(id, &o.attributes) {
                Ok((authenticator, payload)) => {
                    o.authenticator = authenticator;
                    o.payload = payload;
                }
                Err(e) => {
                    self.events.push_back(Event {
                        token: o.token,
                        result: Err(e),
                        server: None,
                    });
                    continue;
                }
            }
            o.server = next;
            o.tries = 1;
            o.deadline = now + self.config.timeout;
            self.transmit(next, o.payload.clone());
            self.stats.failovers += 1;
            self.outstanding.insert(id, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::codec::response_authenticator;

    fn cfg(servers: &[&str]) -> RadiusConfig {
        RadiusConfig::new(
            servers.iter().map(|s| s.parse().unwrap()).collect(),
            b"testing123".to_vec(),
        )
    }

    fn req() -> DigestRequest {
        DigestRequest {
            username: "alice".into(),
            realm: "sw".into(),
            nonce: "n".into(),
            method: "REGISTER".into(),
            uri: "sip:sw".into(),
            response: "0123456789abcdef0123456789abcdef".into(),
            algorithm: "MD5".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("c".into()),
        }
    }

    /// What a server answers: code, with Message-Authenticator, signed for `request`.
    fn answer(request: &[u8], code: u8, secret: &[u8]) -> Vec<u8> {
        let p = Packet::decode(request).unwrap();
        let mut r = codec::encode(code, p.identifier, &p.authenticator, &[], true).unwrap();
        codec::sign_message_authenticator(&mut r, secret);
        let ra = response_authenticator(&r, &p.authenticator, secret);
        r[4..20].copy_from_slice(&ra);
        r
    }

    #[test]
    fn request_carries_rfc5090_attributes_and_a_valid_message_authenticator() {
        let mut c = RadiusClient::new(cfg(&["127.0.0.1:1812"]), [1; 32]);
        let now = Instant::now();
        c.send_digest(1, &req(), now).unwrap();
        let t = c.poll_transmit().unwrap();
        assert!(codec::verify_request_message_authenticator(
            &t.payload,
            b"testing123"
        ));
        let p = Packet::decode(&t.payload).unwrap();
        assert_eq!(p.code, code::ACCESS_REQUEST);
        assert_eq!(p.attributes[0].0, attr::MESSAGE_AUTHENTICATOR);
        for (a, v) in [
            (attr::USER_NAME, "alice"),
            (attr::DIGEST_RESPONSE, "0123456789abcdef0123456789abcdef"),
            (attr::DIGEST_REALM, "sw"),
            (attr::DIGEST_NONCE, "n"),
            (attr::DIGEST_METHOD, "REGISTER"),
            (attr::DIGEST_URI, "sip:sw"),
            (attr::DIGEST_QOP, "auth"),
            (attr::DIGEST_ALGORITHM, "MD5"),
            (attr::DIGEST_CNONCE, "c"),
            (attr::DIGEST_NONCE_COUNT, "00000001"),
            (attr::DIGEST_USERNAME, "alice"),
            (attr::NAS_IDENTIFIER, "sipwarden"),
        ] {
            assert_eq!(p.attr(a), Some(v.as_bytes()), "attribute {a}");
        }
    }

    #[test]
    fn accept_reject_and_forgeries() {
        let mut c = RadiusClient::new(cfg(&["127.0.0.1:1812"]), [1; 32]);
        let server: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        let now = Instant::now();
        c.send_digest(10, &req(), now).unwrap();
        c.send_digest(11, &req(), now).unwrap();
        let t1 = c.poll_transmit().unwrap();
        let t2 = c.poll_transmit().unwrap();
        assert_ne!(t1.payload[1], t2.payload[1], "identifiers differ");
        assert_ne!(
            t1.payload[4..20],
            t2.payload[4..20],
            "authenticators differ"
        );
        // Wrong secret, wrong source, answer to the other request's authenticator: dropped.
        c.handle_datagram(server, &answer(&t1.payload, code::ACCESS_ACCEPT, b"wrong"));
        c.handle_datagram(
            "127.0.0.1:9".parse().unwrap(),
            &answer(&t1.payload, code::ACCESS_ACCEPT, b"testing123"),
        );
        let mut swapped = answer(&t2.payload, code::ACCESS_ACCEPT, b"testing123");
        swapped[1] = t1.payload[1];
        c.handle_datagram(server, &swapped);
        c.handle_datagram(server, &[1, 2, 3]);
        assert_eq!(c.poll_event(), None);
        assert_eq!(c.stats().dropped, 4);
        // Genuine answers.
        c.handle_datagram(
            server,
            &answer(&t2.payload, code::ACCESS_REJECT, b"testing123"),
        );
        c.handle_datagram(
            server,
            &answer(&t1.payload, code::ACCESS_ACCEPT, b"testing123"),
        );
        let e = c.poll_event().unwrap();
        assert_eq!((e.token, e.result), (11, Ok(Verdict::Reject)));
        let e = c.poll_event().unwrap();
        assert_eq!(
            (e.token, e.result, e.server),
            (10, Ok(Verdict::Accept), Some(server))
        );
        assert_eq!(c.outstanding(), 0);
        assert_eq!(c.poll_timeout(), None);
        // A duplicate answer after completion is dropped.
        c.handle_datagram(
            server,
            &answer(&t1.payload, code::ACCESS_ACCEPT, b"testing123"),
        );
        assert_eq!(c.poll_event(), None);
    }

    #[test]
    fn answer_without_message_authenticator_is_refused_when_required() {
        let mut c = RadiusClient::new(cfg(&["127.0.0.1:1812"]), [1; 32]);
        let server: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        c.send_digest(1, &req(), Instant::now()).unwrap();
        let t = c.poll_transmit().unwrap();
        let p = Packet::decode(&t.payload).unwrap();
        let mut r = codec::encode(
            code::ACCESS_ACCEPT,
            p.identifier,
            &p.authenticator,
            &[],
            false,
        )
        .unwrap();
        let ra = response_authenticator(&r, &p.authenticator, b"testing123");
        r[4..20].copy_from_slice(&ra);
        c.handle_datagram(server, &r);
        assert_eq!(c.poll_event(), None);
        assert_eq!(c.stats().missing_message_authenticator, 1);
    }

    #[test]
    fn retransmits_then_fails_over_then_times_out() {
        let mut config = cfg(&["127.0.0.1:1", "127.0.0.1:2"]);
        config.timeout = Duration::from_secs(1);
        config.tries_per_server = 2;
        let mut c = RadiusClient::new(config, [2; 32]);
        let t0 = Instant::now();
        c.send_digest(5, &req(), t0).unwrap();
        let first = c.poll_transmit().unwrap();
        assert_eq!(first.destination.port(), 1);
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        // Not yet due.
        c.handle_timeout(t0 + Duration::from_millis(999));
        assert_eq!(c.poll_transmit(), None);
        // Retransmission: same bytes to the same server.
        c.handle_timeout(t0 + Duration::from_secs(1));
        let again = c.poll_transmit().unwrap();
        assert_eq!(again, first);
        // Failover: the second server, a new authenticator, the same identifier.
        c.handle_timeout(t0 + Duration::from_secs(2));
        let second = c.poll_transmit().unwrap();
        assert_eq!(second.destination.port(), 2);
        assert_eq!(second.payload[1], first.payload[1]);
        assert_ne!(second.payload[4..20], first.payload[4..20]);
        // A late answer from the first server no longer counts.
        c.handle_datagram(
            first.destination,
            &answer(&first.payload, code::ACCESS_ACCEPT, b"testing123"),
        );
        assert_eq!(c.poll_event(), None);
        c.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(c.poll_transmit().unwrap().payload, second.payload);
        c.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(c.poll_transmit(), None);
        let e = c.poll_event().unwrap();
        assert_eq!((e.token, e.result), (5, Err(RadiusError::Timeout)));
        let s = c.stats();
        assert_eq!(
            (s.sent, s.retransmitted, s.failovers, s.timeouts),
            (1, 2, 1, 1)
        );
        // Both servers rest: a new request goes to the primary; after the dead time as well.
        c.send_digest(6, &req(), t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(c.poll_transmit().unwrap().destination.port(), 1);
    }

    #[test]
    fn dead_primary_is_skipped_until_its_dead_time_ends() {
        let mut config = cfg(&["127.0.0.1:1", "127.0.0.1:2"]);
        config.timeout = Duration::from_secs(1);
        config.tries_per_server = 1;
        config.dead_time = Duration::from_secs(30);
        let mut c = RadiusClient::new(config, [3; 32]);
        let t0 = Instant::now();
        c.send_digest(1, &req(), t0).unwrap();
        c.poll_transmit().unwrap();
        c.handle_timeout(t0 + Duration::from_secs(1));
        let to_second = c.poll_transmit().unwrap();
        assert_eq!(to_second.destination.port(), 2);
        c.handle_datagram(
            to_second.destination,
            &answer(&to_second.payload, code::ACCESS_ACCEPT, b"testing123"),
        );
        assert_eq!(c.poll_event().unwrap().result, Ok(Verdict::Accept));
        c.send_digest(2, &req(), t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(c.poll_transmit().unwrap().destination.port(), 2);
        c.send_digest(3, &req(), t0 + Duration::from_secs(31))
            .unwrap();
        assert_eq!(c.poll_transmit().unwrap().destination.port(), 1);
    }

    proptest::proptest! {
        /// Random datagrams from the server's address never panic and never end a request.
        #[test]
        fn random_datagrams_are_dropped(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut c = RadiusClient::new(cfg(&["127.0.0.1:1812"]), [5; 32]);
            c.send_digest(1, &req(), Instant::now()).unwrap();
            c.handle_datagram("127.0.0.1:1812".parse().unwrap(), &data);
            proptest::prop_assert_eq!(c.poll_event(), None);
            proptest::prop_assert_eq!(c.outstanding(), 1);
        }
    }

    #[test]
    fn identifiers_are_bounded() {
        let mut c = RadiusClient::new(cfg(&["127.0.0.1:1"]), [4; 32]);
        let now = Instant::now();
        for i in 0..256 {
            c.send_digest(i, &req(), now).unwrap();
        }
        assert_eq!(
            c.send_digest(999, &req(), now),
            Err(RadiusError::TooManyPending)
        );
        let mut ids: Vec<u8> = std::iter::from_fn(|| c.poll_transmit())
            .map(|t| t.payload[1])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 256);
        let mut empty = RadiusClient::new(cfg(&[]), [4; 32]);
        assert_eq!(
            empty.send_digest(1, &req(), now),
            Err(RadiusError::NoServer)
        );
    }
}
