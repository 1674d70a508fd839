//! The registrar (RFC 3261 section 10.3, with Path from RFC 3327 and the source address and
//! flow recorded for NAT traversal, RFC 3581 spirit).
//!
//! The binding update is computed here and applied by the store in one durable transaction
//! before the 200 goes out; the store also checks the Call-ID/CSeq order (10.3 steps 6 and 7)
//! inside that transaction, so that concurrent REGISTERs of one AOR cannot interleave.

use std::time::{Duration, Instant};

use std::net::IpAddr;

use sip_message::headers::{Contact, Path, Require, Supported, Via};
use sip_message::{HeaderName, Message, SipUri, Uri};
use sip_transaction::{ServerTxId, Source};
use store::{Binding, BindingKey, BindingUpdate, StoreError};

use crate::engine::{Engine, Event};
use crate::proxy::{flow_token, names_address};
use crate::settings::Transport;
use crate::util::{self, canonical_aor, contact_with_expires, http_date, name_addr_text};

/// Option tags the registrar understands in Require (8.2.2.3).
const REGISTRAR_SUPPORTED: &[&str] = &["path"];

impl Engine {
    /// A REGISTER whose Request-URI is one of our domains (or us).
    pub(crate) fn register(&mut self, now: Instant, id: ServerTxId, req: &Message, source: Source) {
        if !self.cfg.registrar.enabled {
            return self.reg_reject(now, id, req, source, None, 403, "Forbidden", &[]);
        }
        // Step 2: Require.
        let mut unsupported: Vec<String> = Vec::new();
        for r in req.typed_all::<Require>() {
            match r {
                Ok(tag) if REGISTRAR_SUPPORTED.iter().any(|s| tag.is(s)) => {}
                Ok(tag) => unsupported.push(tag.as_str().to_owned()),
                Err(_) => {
                    return self.reg_reject(
                        now,
                        id,
                        req,
                        source,
                        None,
                        400,
                        "Bad Request (malformed Require)",
                        &[],
                    )
                }
            }
        }
        if !unsupported.is_empty() {
            let list = unsupported.join(", ");
            return self.reg_reject(
                now,
                id,
                req,
                source,
                None,
                420,
                "Bad Extension",
                &[("Unsupported", list)],
            );
        }
        // Step 5: the AOR, canonical, in one of our domains.
        let aor = match req.to().and_then(|t| t.ok()).map(|t| t.uri) {
            Some(Uri::Sip(u)) => {
                if !self.is_our_domain(u.host_str) {
                    return self.reg_reject(now, id, req, source, None, 404, "Not Found", &[]);
                }
                match canonical_aor(&u) {
                    Ok(a) if u.user.is_some() => a,
                    _ => {
                        return self.reg_reject(
                            now,
                            id,
                            req,
                            source,
                            None,
                            400,
                            "Bad Request (To is not an address of record)",
                            &[],
                        )
                    }
                }
            }
            _ => return self.reg_reject(now, id, req, source, None, 404, "Not Found", &[]),
        };
        let contacts = match req.typed_vec::<Contact>() {
            Ok(c) => c,
            Err(_) => {
                return self.reg_reject(
                    now,
                    id,
                    req,
                    source,
                    Some(aor),
                    400,
                    "Bad Request (malformed Contact)",
                    &[],
                )
            }
        };
        let paths: Vec<String> = match req.typed_vec::<Path>() {
            Ok(p) => p.iter().map(|p| name_addr_text(p)).collect(),
            Err(_) => {
                return self.reg_reject(
                    now,
                    id,
                    req,
                    source,
                    Some(aor),
                    400,
                    "Bad Request (malformed Path)",
                    &[],
                )
            }
        };
        let path_supported = req
            .typed_all::<Supported>()
            .any(|s| s.is_ok_and(|s| s.is("path")));
        // A malformed Expires counts as absent (RFC 4475 3.1.2.4 lets us use the default).
        let header_expires = match req.expires() {
            Some(Ok(e)) => Some(e.0),
            _ => None,
        };
        let call_id =
            String::from_utf8_lossy(req.header(HeaderName::CallId).unwrap_or(b"")).into_owned();
        let cseq = req.cseq().and_then(|c| c.ok()).map_or(0, |c| c.seq);
        let wall = util::trunc_secs(self.wall_clock(now));
        let settings = self.cfg.registrar.clone();

        // A query: no Contact, the current bindings in the 200 (10.2.3).
        if contacts.is_empty() {
            return match self.store.live_bindings(&aor, wall) {
                Ok(b) => self.reg_ok(now, id, req, source, aor, &b, wall, &[]),
                Err(e) => self.reg_store_error(now, id, req, source, aor, "lookup", e),
            };
        }

        // Relayed: the live set before, restored if the upstream refuses (crate::regrelay).
        let previous = if self.relay_applies(&source) {
            match self.store.live_bindings(&aor, wall) {
                Ok(b) => b,
                Err(e) => return self.reg_store_error(now, id, req, source, aor, "lookup", e),
            }
        } else {
            Vec::new()
        };
        let mut update = BindingUpdate::new(wall, call_id.clone(), cseq);
        if let Some(m) = settings.max_bindings {
            update = update.max_bindings(m);
        }
        let star = contacts.iter().any(Contact::is_star);
        if star {
            // Step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return self.reg_reject(
                    now,
                    id,
                    req,
                    source,
                    Some(aor),
                    400,
                    "Bad Request (Contact: * needs Expires: 0 and no other Contact)",
                    &[],
                );
            }
            update = update.remove_all();
        } else {
            let existing = match self.store.bindings(&aor) {
                Ok(b) => b,
                Err(e) => return self.reg_store_error(now, id, req, source, aor, "lookup", e),
            };
            let top_via = req.top_via().and_then(|v| v.ok());
            // The transport the REGISTER came on: over UDP whatever its Via says (a Via
            // naming TLS on a datagram, RFC 4475 bext01); a stream names its kind in the Via.
            let transport = if source.reliable {
                top_via
                    .as_ref()
                    .and_then(|v| Transport::parse(v.transport))
                    .filter(|t| t.reliable())
                    .unwrap_or(Transport::Tcp)
            } else {
                Transport::Udp
            };
            let user_agent = req
                .header(HeaderName::UserAgent)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            for c in &contacts {
                let Some(na) = c.addr() else { continue };
                // Step 7: expiry from the parameter, the header, or the default.
                let requested = c
                    .expires()
                    .or(header_expires)
                    .unwrap_or(settings.default_expires);
                if requested > 0 && requested < 3600 && requested < settings.min_expires {
                    let min = settings.min_expires.to_string();
                    return self.reg_reject(
                        now,
                        id,
                        req,
                        source,
                        Some(aor),
                        423,
                        "Interval Too Brief",
                        &[("Min-Expires", min)],
                    );
                }
                let nat = match &na.uri {
                    Uri::Sip(u) => nat_detected(top_via.as_ref(), u, &source),
                    _ => false,
                };
                let mut secs = requested.min(settings.max_expires);
                // Behind NAT: a short registration keeps the pinhole open and the flow known
                // (registrar.nat_expires).
                if let Some(n) = settings.relay.nat_expires.filter(|_| nat && secs > 0) {
                    secs = secs.min(n.max(1));
                }
                let contact = na.uri.as_str();
                let mut b = Binding::new(
                    aor.clone(),
                    contact,
                    wall + Duration::from_secs(u64::from(secs)),
                    call_id.clone(),
                    cseq,
                    wall,
                );
                b.contact_params = na.params.as_str().to_owned();
                b.q = c.q_permille();
                b.path = paths.clone();
                b.received = Some(source.remote.to_string());
                b.flow = Some(flow_token(transport, &source, nat));
                b.instance_id = na
                    .param("+sip.instance")
                    .map(|v| v.trim_start_matches('<').trim_end_matches('>').to_owned());
                b.reg_id = na.param("reg-id").and_then(|v| v.parse().ok());
                b.user_agent = user_agent.clone();
                // Step 7: an existing binding whose URI is equivalent (19.1.4) but spelled
                // differently is the same binding: replace it.
                if let BindingKey::Contact(_) = b.key() {
                    for old in &existing {
                        if let BindingKey::Contact(s) = old.key() {
                            if s != contact && Uri::parse(&s).is_ok_and(|u| u.equivalent(&na.uri)) {
                                update = update.remove(BindingKey::Contact(s));
                            }
                        }
                    }
                }
                update = update.upsert(b);
            }
        }
        // Step 7 and 8: applied atomically and durably, then the 200.
        match self.store.apply(&aor, update) {
            Ok(result) => {
                let mut extra: Vec<(&'static str, String)> = Vec::new();
                if !paths.is_empty() && path_supported {
                    // RFC 3327 5.3: the Path vector back to the UA.
                    for p in &paths {
                        extra.push(("Path", p.clone()));
                    }
                    extra.push(("Supported", "path".to_owned()));
                }
                // Keep-alives, and the upstream registrar when relayed (crate::regrelay).
                self.relay_after_register(now, id, req, source, aor, result, previous, wall, extra)
            }
            Err(StoreError::OutOfOrder { .. }) => self.reg_reject(
                now,
                id,
                req,
                source,
                Some(aor),
                500,
                "Server Internal Error (out-of-order REGISTER)",
                &[],
            ),
            Err(StoreError::TooManyBindings { .. }) => self.reg_reject(
                now,
                id,
                req,
                source,
                Some(aor),
                403,
                "Forbidden (too many bindings)",
                &[],
            ),
            Err(e) => self.reg_store_error(now, id, req, source, aor, "apply", e),
        }
    }

    /// 200 with every binding and its remaining time, and the Date (10.3 step 8).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reg_ok(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Message,
        source: Source,
        aor: String,
        bindings: &[Binding],
        wall: std::time::SystemTime,
        extra: &[(&str, String)],
    ) {
        let mut fields: Vec<(&str, String)> = bindings
            .iter()
            .map(|b| {
                let left = b.remaining(wall).as_secs();
                (
                    "Contact",
                    contact_with_expires(&b.contact, &b.contact_params, left),
                )
            })
            .collect();
        fields.push(("Date", http_date(wall)));
        fields.extend_from_slice(extra);
        self.reply(now, id, req, 200, "OK", &fields);
        self.stats.registers_ok += 1;
        self.event(Event::Registered {
            aor,
            bindings: bindings.len(),
            source,
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reg_reject(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Message,
        source: Source,
        aor: Option<String>,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        self.reply(now, id, req, status, reason, extra);
        self.stats.registers_rejected += 1;
        self.event(Event::RegisterRejected {
            aor,
            status,
            reason: reason.to_owned(),
            source,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn reg_store_error(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Message,
        source: Source,
        aor: String,
        op: &'static str,
        e: StoreError,
    ) {
        self.stats.store_errors += 1;
        self.event(Event::StoreFailed {
            op,
            error: e.to_string(),
        });
        self.reg_reject(
            now,
            id,
            req,
            source,
            Some(aor),
            500,
            "Server Internal Error",
            &[("Retry-After", "5".to_owned())],
        );
    }
}

/// Whether a REGISTER from `source` came through NAT, for `registrar.contact_routing = auto`:
/// - its source differs from the top Via's sent-by (the IP address, and over UDP the port): the
///   UA does not know the address it is seen at;
/// - or its Contact names the same host and port as the sent-by (the UA registers itself) and
///   the source is elsewhere (over TCP always so: a connection's source port is not the port
///   the UA listens on, and the connection is the way back);
/// - or its Contact is a private address (RFC 1918, RFC 6598, RFC 4193, link-local) and the
///   source is not that address.
///
/// A REGISTER from where its Via says, with a Contact for another public host or port, is a
/// third-party registration (RFC 3261 10.2): not NAT.
pub(crate) fn nat_detected(via: Option<&Via<'_>>, contact: &SipUri<'_>, source: &Source) -> bool {
    let src = source.remote;
    let src_ip = src.ip().to_canonical();
    if let Some(v) = via {
        let via_port = v.port.unwrap_or(
            Transport::parse(v.transport)
                .unwrap_or(Transport::Udp)
                .default_port(),
        );
        if let Some(ip) = v.host.ip() {
            if ip.to_canonical() != src_ip || (!source.reliable && via_port != src.port()) {
                return true;
            }
        }
        let contact_port = contact
            .port
            .unwrap_or(crate::resolve::uri_transport(contact).default_port());
        if contact.host.equivalent(&v.host)
            && contact_port == via_port
            && !names_address(contact, src)
        {
            return true;
        }
    }
    contact
        .host
        .ip()
        .is_some_and(|ip| is_private(ip.to_canonical()) && ip.to_canonical() != src_ip)
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::TypedHeader;
    use sip_transaction::FlowId;

    fn verdict(via: &str, contact: &str, src: &str, reliable: bool) -> bool {
        let v = Via::parse_value(via).unwrap();
        let Ok(Uri::Sip(u)) = Uri::parse(contact) else {
            panic!("{contact}")
        };
        let source = Source {
            remote: src.parse().unwrap(),
            flow: FlowId(1),
            reliable,
        };
        nat_detected(Some(&v), &u, &source)
    }

    #[test]
    fn nat_detection() {
        // Behind NAT: private Via and Contact, a public source.
        assert!(verdict(
            "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1",
            "sip:a@10.0.0.2:5060",
            "198.51.100.50:40000",
            false
        ));
        // A port-rewriting NAT with the right IP in Via: the port tells.
        assert!(verdict(
            "SIP/2.0/UDP 198.51.100.60:5060;branch=z9hG4bK1",
            "sip:a@198.51.100.60:5060",
            "198.51.100.60:1024",
            false
        ));
        // Not behind NAT: everything is where it says.
        assert!(!verdict(
            "SIP/2.0/UDP 198.51.100.70:5060;branch=z9hG4bK1",
            "sip:a@198.51.100.70",
            "198.51.100.70:5060",
            false
        ));
        // Third party: the registering agent is where its Via says; the Contact is another
        // public host or another port of the same host.
        assert!(!verdict(
            "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1",
            "sip:erin@127.0.0.1:5070",
            "127.0.0.1:5090",
            false
        ));
        assert!(!verdict(
            "SIP/2.0/TCP 192.0.2.9:5090;branch=z9hG4bK1",
            "sip:erin@192.0.2.30:5070",
            "192.0.2.9:41000",
            true
        ));
        // A UA registering itself over TCP: reached over its connection.
        assert!(verdict(
            "SIP/2.0/TCP 192.0.2.9:5070;branch=z9hG4bK1",
            "sip:a@192.0.2.9:5070;transport=tcp",
            "192.0.2.9:41000",
            true
        ));
        // A private Contact behind a NAT that fixed the Via (an ALG).
        assert!(verdict(
            "SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bK1",
            "sip:a@10.0.0.5:5060",
            "203.0.113.5:40000",
            false
        ));
        // IPv6: the same rules, with brackets.
        assert!(!verdict(
            "SIP/2.0/UDP [::1]:5090;branch=z9hG4bK1",
            "sip:erin@[::1]:5070",
            "[::1]:5090",
            false
        ));
        assert!(verdict(
            "SIP/2.0/UDP [fd00::2]:5060;branch=z9hG4bK1",
            "sip:a@[fd00::2]:5060",
            "[2001:db8::5]:40000",
            false
        ));
    }
}
