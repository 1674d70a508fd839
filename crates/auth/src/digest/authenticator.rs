//! The sans-IO digest authenticator: a request in, either a challenge to send or a credential
//! lookup to do; the lookup's answer in, a verdict out. It keeps no state per nonce, only the
//! bounded nonce-count table ([`NcTable`]).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip_message::headers::{Authorization, ProxyAuthorization};
use sip_message::Message;
use subtle::ConstantTimeEq;

use super::algorithm::{hex, response, unhex, Algorithm, ResponseInput};
use super::challenge::{Challenge, ChallengeKind};
use super::credentials::{CredentialsError, DigestCredentials};
use super::nonce::{self, NonceInfo, NonceState, ServerSecret};
use super::replay::{NcTable, NcVerdict};
use crate::credential::Ha1;

/// At most this many credential values are examined per request (a client sends one per
/// realm; more is an attack on the parser or the hash budget).
pub const MAX_CREDENTIALS_PER_REQUEST: usize = 8;

/// Settings of the authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// The realm challenged and accepted (`auth.realm`).
    pub realm: String,
    /// Algorithms offered, one challenge value each, in this order (RFC 8760: preferred first).
    /// Must not be empty.
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce stays fresh (`auth.nonce_lifetime`).
    pub nonce_lifetime: Duration,
    /// Bind nonces to the client's source address: a nonce captured from one address is
    /// useless from another.
    pub bind_nonce_to_source: bool,
    /// Require the digest `uri` to equal the Request-URI (RFC 3261 section 22.4 item 4
    /// suggests it; a proxy that rewrites the Request-URI before us breaks it).
    pub check_uri: bool,
    /// Capacity of the nonce-count table.
    pub nc_table_capacity: usize,
}

impl DigestConfig {
    /// Defaults: SHA-256 then MD5, 300 s nonces bound to the source address, URI checked,
    /// 65,536 tracked nonces.
    pub fn new(realm: impl Into<String>) -> Self {
        DigestConfig {
            realm: realm.into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            bind_nonce_to_source: true,
            check_uri: true,
            nc_table_capacity: 65_536,
        }
    }
}

/// Why a request was not authenticated. Never visible on the wire (the answer depends only on
/// `stale`); for logs and failure counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No credentials for our realm: the normal first request.
    NoCredentials,
    /// Credentials that do not parse or are unusable.
    Malformed(CredentialsError),
    /// The header value does not decode at all.
    Undecodable,
    /// An algorithm we did not offer.
    AlgorithmNotOffered(Algorithm),
    /// Only `qop=auth` is accepted (no RFC 2069 responses: they have no nonce count).
    QopRequired,
    /// The nonce is not ours (forged, altered, other realm, other source address).
    InvalidNonce,
    /// The digest `uri` differs from the Request-URI.
    UriMismatch,
    /// The user is not known (or has no HA1 for the algorithm).
    UnknownUser { username: String },
    /// The response does not match (wrong password), or the RADIUS server rejected it.
    WrongResponse { username: String },
    /// Right response, stale nonce: answered with `stale=true`.
    StaleNonce { username: String },
    /// Right response, nonce count already used (or the nonce's history was evicted): answered
    /// with `stale=true`.
    Replay { username: String },
}

impl Failure {
    /// True for failures that count as a password guess (the policy layer's ban counter).
    pub fn is_guess(&self) -> bool {
        matches!(
            self,
            Failure::UnknownUser { .. } | Failure::WrongResponse { .. }
        )
    }
}

/// The user a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub realm: String,
    pub algorithm: Algorithm,
}

/// Result of [`DigestAuthenticator::check`].
#[derive(Debug)]
pub enum Check {
    /// Send this challenge; `failure` says why (for logs).
    Challenge {
        challenge: Challenge,
        failure: Failure,
    },
    /// Look the user up, then call [`DigestAuthenticator::finish`].
    Lookup(Box<Pending>),
}

/// Credentials waiting for a credential source's answer. Owned and `Send`, so the lookup may
/// run on another task.
#[derive(Debug, Clone)]
pub struct Pending {
    kind: ChallengeKind,
    source: IpAddr,
    method: String,
    credentials: DigestCredentials,
    nonce: NonceInfo,
    stale: bool,
}

impl Pending {
    /// The username to look up.
    pub fn username(&self) -> &str {
        &self.credentials.username
    }

    /// The realm to look up.
    pub fn realm(&self) -> &str {
        &self.credentials.realm
    }

    /// The algorithm whose HA1 is needed.
    pub fn algorithm(&self) -> Algorithm {
        self.credentials.algorithm
    }

    /// The request method (for a RADIUS Digest-Method).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Everything a server that verifies the response itself needs (RADIUS, RFC 5090).
    pub fn credentials(&self) -> &DigestCredentials {
        &self.credentials
    }
}

/// What the credential source answered.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The HA1 for (user, realm, algorithm), or `None` when the user is unknown. The
    /// authenticator verifies the response itself.
    Ha1(Option<Ha1>),
    /// A server that verified the response itself (RADIUS) accepted (`true`) or rejected it.
    Verified(bool),
}

/// Result of [`DigestAuthenticator::finish`].
#[derive(Debug)]
pub enum Outcome {
    Authenticated(Identity),
    Rejected {
        challenge: Challenge,
        failure: Failure,
    },
}

/// The digest authenticator of one realm. Not `Sync` by design: the engine task owns it.
#[derive(Debug)]
pub struct DigestAuthenticator {
    config: DigestConfig,
    secret: ServerSecret,
    nc: NcTable,
    salt: u64,
}

impl DigestAuthenticator {
    /// `seed` starts the nonce salt counter (any value; the engine's seed). An empty algorithm
    /// list (which would make challenges no client can answer) is replaced by the default.
    pub fn new(mut config: DigestConfig, secret: ServerSecret, seed: u64) -> Self {
        if config.algorithms.is_empty() {
            config.algorithms = DigestConfig::new("").algorithms;
        }
        let nc = NcTable::new(config.nc_table_capacity);
        DigestAuthenticator {
            config,
            secret,
            nc,
            salt: seed,
        }
    }

    /// Applies a new configuration (reload). A new realm or secret simply makes outstanding
    /// nonces invalid (clients get a fresh challenge). A new table capacity starts an empty
    /// table that refuses, as stale, every nonce issued up to `now`, so no count accepted
    /// before the reload can be replayed.
    pub fn reconfigure(&mut self, mut config: DigestConfig, now: SystemTime) {
        if config.algorithms.is_empty() {
            config.algorithms = DigestConfig::new("").algorithms;
        }
        if config.nc_table_capacity != self.config.nc_table_capacity {
            let now_ms = oldest_live_ms(now, Duration::ZERO);
            self.nc = NcTable::with_watermark(config.nc_table_capacity, now_ms);
        }
        self.config = config;
    }

    /// Replaces the server secret (rotation): nonces issued under the old one become invalid.
    pub fn set_secret(&mut self, secret: ServerSecret) {
        self.secret = secret;
    }

    /// The configuration in force.
    pub fn config(&self) -> &DigestConfig {
        &self.config
    }

    /// Number of nonces in the nonce-count table.
    pub fn tracked_nonces(&self) -> usize {
        self.nc.len()
    }

    /// A fresh challenge (for a request without credentials, or to re-challenge).
    pub fn challenge(
        &mut self,
        kind: ChallengeKind,
        source: IpAddr,
        now: SystemTime,
        stale: bool,
    ) -> Challenge {
        self.salt = self.salt.wrapping_add(1);
        let bound = self.config.bind_nonce_to_source.then_some(source);
        let n = nonce::issue(&self.secret, now, self.salt, &self.config.realm, bound);
        Challenge::new(kind, &self.config.realm, n, &self.config.algorithms, stale)
    }

    fn reject(
        &mut self,
        kind: ChallengeKind,
        source: IpAddr,
        now: SystemTime,
        f: Failure,
    ) -> Check {
        let stale = matches!(f, Failure::StaleNonce { .. } | Failure::Replay { .. });
        Check::Challenge {
            challenge: self.challenge(kind, source, now, stale),
            failure: f,
        }
    }

    /// Looks at the credentials of `request` (Authorization for [`ChallengeKind::Www`],
    /// Proxy-Authorization for [`ChallengeKind::Proxy`]) received from `source` at `now`.
    pub fn check(
        &mut self,
        request: &Message,
        kind: ChallengeKind,
        source: IpAddr,
        now: SystemTime,
    ) -> Check {
        let method = request.method_str().unwrap_or("");
        let uri = request.request_uri_str().unwrap_or("");
        let mut values = Vec::new();
        let mut undecodable = false;
        match kind {
            ChallengeKind::Www => {
                for v in request
                    .typed_all::<Authorization>()
                    .take(MAX_CREDENTIALS_PER_REQUEST)
                {
                    match v {
                        Ok(a) => values.push(a.0),
                        Err(_) => undecodable = true,
                    }
                }
            }
            ChallengeKind::Proxy => {
                for v in request
                    .typed_all::<ProxyAuthorization>()
                    .take(MAX_CREDENTIALS_PER_REQUEST)
                {
                    match v {
                        Ok(a) => values.push(a.0),
                        Err(_) => undecodable = true,
                    }
                }
            }
        }
        // The credentials for our realm; without realm match, the first Digest error decides.
        let mut first_err = None;
        let mut found = None;
        for a in &values {
            if !a.is_digest() {
                continue;
            }
            if a.realm().map(sip_message::unquote).as_deref() != Some(self.config.realm.as_str()) {
                continue;
            }
            match DigestCredentials::from_auth(a) {
                Ok(c) => {
                    found = Some(c);
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let Some(creds) = found else {
            let f = match (first_err, undecodable) {
                (Some(e), _) => Failure::Malformed(e),
                (None, true) => Failure::Undecodable,
                (None, false) => Failure::NoCredentials,
            };
            return self.reject(kind, source, now, f);
        };
        self.check_credentials(creds, method, uri, kind, source, now)
    }

    /// [`check`](Self::check) for credentials already extracted (tests, other front ends).
    pub fn check_credentials(
        &mut self,
        creds: DigestCredentials,
        method: &str,
        request_uri: &str,
        kind: ChallengeKind,
        source: IpAddr,
        now: SystemTime,
    ) -> Check {
        if !self.config.algorithms.contains(&creds.algorithm) {
            return self.reject(
                kind,
                source,
                now,
                Failure::AlgorithmNotOffered(creds.algorithm),
            );
        }
        if creds.qop.is_none() {
            return self.reject(kind, source, now, Failure::QopRequired);
        }
        let bound = self.config.bind_nonce_to_source.then_some(source);
        let state = nonce::check(
            &self.secret,
            &creds.nonce,
            now,
            self.config.nonce_lifetime,
            &self.config.realm,
            bound,
        );
        let (info, stale) = match state {
            NonceState::Fresh(i) => (i, false),
            NonceState::Stale(i) => (i, true),
            NonceState::Invalid => return self.reject(kind, source, now, Failure::InvalidNonce),
        };
        if self.config.check_uri && creds.uri != request_uri {
            return self.reject(kind, source, now, Failure::UriMismatch);
        }
        Check::Lookup(Box::new(Pending {
            kind,
            source,
            method: method.to_owned(),
            credentials: creds,
            nonce: info,
            stale,
        }))
    }

    /// Finishes a check with the credential source's answer.
    ///
    /// An unknown user is verified against a dummy HA1 derived from the server secret and the
    /// username, so that it costs the same hashing as a known user with a wrong password and
    /// ends in the same answer.
    pub fn finish(&mut self, pending: Box<Pending>, lookup: Lookup, now: SystemTime) -> Outcome {
        let c = &pending.credentials;
        let username = c.username.clone();
        let matched = match lookup {
            Lookup::Verified(ok) => Ok(ok),
            Lookup::Ha1(ha1) => {
                let known = ha1.as_ref().is_some_and(|h| h.algorithm() == c.algorithm);
                // Derived for known users too, so that both paths do the same work (measured
                // by examples/enumeration_timing.rs).
                let dummy = self.dummy_ha1(c);
                let ha1_hex = match &ha1 {
                    Some(h) if known => h.hex(),
                    _ => dummy.as_str(),
                };
                let ok = verify_response(c, &pending.method, ha1_hex);
                if known {
                    Ok(ok)
                } else {
                    Err(())
                }
            }
        };
        let failure = match matched {
            Err(()) => Some(Failure::UnknownUser { username }),
            Ok(false) => Some(Failure::WrongResponse { username }),
            Ok(true) if pending.stale => Some(Failure::StaleNonce { username }),
            Ok(true) => {
                let nc = c.nc.as_ref().map_or(0, |(_, n)| *n);
                let oldest_live = oldest_live_ms(now, self.config.nonce_lifetime);
                match self.nc.accept(&pending.nonce, nc, oldest_live) {
                    NcVerdict::Accepted => None,
                    NcVerdict::Replay | NcVerdict::Forgotten => Some(Failure::Replay { username }),
                }
            }
        };
        match failure {
            None => Outcome::Authenticated(Identity {
                username: c.username.clone(),
                realm: c.realm.clone(),
                algorithm: c.algorithm,
            }),
            Some(f) => {
                let stale = matches!(f, Failure::StaleNonce { .. } | Failure::Replay { .. });
                Outcome::Rejected {
                    challenge: self.challenge(pending.kind, pending.source, now, stale),
                    failure: f,
                }
            }
        }
    }

    /// Drops nonce-count entries of nonces that can no longer be fresh. Call from a periodic
    /// housekeeping timer (every nonce lifetime is enough).
    pub fn purge(&mut self, now: SystemTime) -> usize {
        let oldest = oldest_live_ms(now, self.config.nonce_lifetime);
        self.nc.purge(oldest)
    }

    fn dummy_ha1(&self, c: &DigestCredentials) -> String {
        let mac = self.secret.mac(&[
            b"sipwarden dummy ha1",
            c.algorithm.name().as_bytes(),
            c.realm.as_bytes(),
            c.username.as_bytes(),
        ]);
        hex(mac.get(..c.algorithm.output_len()).unwrap_or(&mac))
    }
}

fn oldest_live_ms(now: SystemTime, lifetime: Duration) -> u64 {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    now_ms.saturating_sub(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX))
}

/// Computes the expected response and compares it with the client's in constant time. A
/// response that is not hex of the right length still costs the full computation.
fn verify_response(c: &DigestCredentials, method: &str, ha1_hex: &str) -> bool {
    let qop = match (&c.qop, &c.nc, &c.cnonce) {
        (Some(q), Some((nc, _)), Some(cn)) => Some((q.as_str(), nc.as_str(), cn.as_str())),
        _ => None,
    };
    let expected = response(
        c.algorithm,
        ha1_hex,
        &ResponseInput {
            method,
            uri: &c.uri,
            nonce: &c.nonce,
            qop,
        },
    );
    let given = unhex(&c.response).unwrap_or_default();
    // ct_eq on slices of different lengths is false without looking at the contents.
    bool::from(expected.as_slice().ct_eq(given.as_slice()))
}
