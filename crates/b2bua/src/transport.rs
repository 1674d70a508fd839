//! Which of the zone's listeners a leg speaks from: its Via sent-by, Contact and (through the
//! Via token, which the transport reads for a new connection) the protocol of its requests.
//!
//! Each leg has its own: a zone whose remote phones use TLS and whose ITSP uses UDP gives the
//! phone's leg TLS and the ITSP's UDP. Leg A takes the transport its INVITE came on; leg B the
//! one its next hop asks for (`sips:`, `;transport=`, the flow or the next hop's kind).

use sip_message::{Scheme, Uri};
use sip_transaction::{Destination, Source};

use crate::config::ZoneIdentity;

/// A SIP transport of our listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    /// The Via token.
    pub fn via_token(self) -> &'static str {
        match self {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
            SipTransport::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter value.
    pub fn param(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        }
    }

    /// A Via token or URI parameter value, case-insensitively.
    pub fn parse(s: &str) -> Option<SipTransport> {
        match s.trim().to_ascii_lowercase().as_str() {
            "udp" => Some(SipTransport::Udp),
            "tcp" => Some(SipTransport::Tcp),
            "tls" => Some(SipTransport::Tls),
            _ => None,
        }
    }

    pub fn reliable(self) -> bool {
        self != SipTransport::Udp
    }
}

impl std::fmt::Display for SipTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Who we are on one leg: the zone's address of the leg's transport, fixed for the life of
/// the dialog (a reload that moves a listener must not change a Contact the peer holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LegAddress {
    pub(crate) transport: SipTransport,
    /// `host[:port]`.
    pub(crate) address: String,
    /// The dialog is a SIPS one (RFC 3261 8.1.1.8, 12.1.1): our Contact is a `sips:` URI.
    pub(crate) sips: bool,
}

impl LegAddress {
    pub(crate) fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport.via_token(),
            self.address
        )
    }

    /// Our Contact on this leg. Over TLS in a `sip:` dialog it is `sip:...;transport=tls`, not
    /// `sips:`: a sips Contact asks for TLS on every hop beyond us too (RFC 3261 19.1), which
    /// the calls we relay do not promise, and user agents built on libre (baresip) cannot send
    /// to a sips URI in a sip dialog, so they never ACKed our 200. Only a SIPS dialog gets
    /// `sips:` (without `transport`, which RFC 5630 3.1.2 deprecates for sips).
    pub(crate) fn contact(&self) -> String {
        match (self.sips, self.transport) {
            (true, _) => format!("<sips:{}>", self.address),
            (false, SipTransport::Udp) => format!("<sip:{}>", self.address),
            (false, t) => format!("<sip:{};transport={}>", self.address, t.param()),
        }
    }
}

/// Why a leg cannot be given an address in its zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoListener {
    /// A `sips:` dialog (or a TLS-only hop) in a zone without a TLS listener: sending it in
    /// plain text would break the promise the URI makes.
    #[error("zone {zone} has no TLS listener, and the {what} asks for TLS")]
    Tls { zone: String, what: &'static str },
    /// The zone has no listener at all.
    #[error("zone {0} has no listener")]
    None(String),
}

impl NoListener {
    /// The status the caller gets: 416 for a sips: URI we cannot serve in that zone (the
    /// scheme is what we do not support there), else 503 (a gap in our configuration, which
    /// the caller may route around).
    pub(crate) fn status(&self) -> (u16, &'static str) {
        match self {
            NoListener::Tls { what, .. } if what.starts_with("sips") => {
                (416, "Unsupported URI Scheme")
            }
            _ => (503, "Service Unavailable"),
        }
    }
}

/// The URI inside `<...>` of a name-addr, or the value itself.
fn bare(v: &str) -> &str {
    let v = v.trim();
    match (v.find('<'), v.rfind('>')) {
        (Some(s), Some(e)) if s < e => v.get(s + 1..e).unwrap_or(v),
        _ => v,
    }
}

fn is_sips(uri: &str) -> bool {
    matches!(Uri::parse(bare(uri)), Ok(Uri::Sip(u)) if u.scheme == Scheme::Sips)
}

fn transport_param(uri: &str) -> Option<SipTransport> {
    match Uri::parse(bare(uri)) {
        Ok(Uri::Sip(u)) => u.transport().and_then(SipTransport::parse),
        _ => None,
    }
}

fn zone_address(
    zone: &ZoneIdentity,
    t: SipTransport,
    sips: bool,
) -> Option<(SipTransport, LegAddress)> {
    zone.address(t).map(|a| {
        (
            t,
            LegAddress {
                transport: t,
                address: a.to_owned(),
                sips,
            },
        )
    })
}

/// The first of `order` the zone listens on, else its default address.
fn first_of(zone: &ZoneIdentity, order: &[SipTransport]) -> Result<LegAddress, NoListener> {
    order
        .iter()
        .find_map(|t| zone_address(zone, *t, false))
        .or_else(|| {
            let (t, a) = zone.addresses.first()?;
            zone_address(zone, *t, false).filter(|_| !a.is_empty())
        })
        .map(|(_, a)| a)
        .ok_or_else(|| NoListener::None(zone.name.clone()))
}

fn tls_only(zone: &ZoneIdentity, what: &'static str, sips: bool) -> Result<LegAddress, NoListener> {
    zone_address(zone, SipTransport::Tls, sips)
        .map(|(_, a)| a)
        .ok_or_else(|| NoListener::Tls {
            zone: zone.name.clone(),
            what,
        })
}

/// Leg A: the transport `invite` came on. A datagram is UDP whatever its Via says; on a
/// stream the Via token tells TLS from TCP (as the registrar reads a REGISTER's flow). A
/// SIPS dialog (sips Request-URI, else top Record-Route, else Contact: RFC 3261 12.1.1)
/// needs our TLS address for its sips Contact.
pub(crate) fn leg_a(
    zone: &ZoneIdentity,
    invite: &sip_message::Message,
    source: Source,
) -> Result<LegAddress, NoListener> {
    let via = invite
        .top_via()
        .and_then(|v| v.ok())
        .and_then(|v| SipTransport::parse(v.transport));
    let arrived = match (source.reliable, via) {
        (false, _) => SipTransport::Udp,
        (true, Some(SipTransport::Tls)) => SipTransport::Tls,
        (true, _) => SipTransport::Tcp,
    };
    let rr = crate::msg::record_routes(invite);
    let sips = invite.request_uri_str().is_some_and(is_sips)
        || match rr.first() {
            Some(top) => is_sips(top),
            None => crate::msg::contact_uri(invite).is_some_and(|c| is_sips(&c)),
        };
    if sips {
        return tls_only(zone, "sips: dialog of the caller", true);
    }
    let order: &[SipTransport] = match arrived {
        SipTransport::Udp => &[SipTransport::Udp],
        SipTransport::Tcp => &[SipTransport::Tcp, SipTransport::Tls],
        SipTransport::Tls => &[SipTransport::Tls],
    };
    first_of(zone, order)
}

/// Leg B (and the new leg of a transfer): the transport the next hop asks for. A `sips:`
/// target or top Route, or `;transport=tls`, is TLS only; `known` is the transport of a leg
/// whose peer `next_hop` is (a transfer or Replaces towards a party we talk to already);
/// otherwise a datagram hop is UDP and a stream hop `;transport=tcp`, else TCP when the zone
/// listens on it, else TLS.
pub(crate) fn leg_b(
    zone: &ZoneIdentity,
    target: &str,
    route_set: &[String],
    next_hop: Destination,
    known: Option<SipTransport>,
) -> Result<LegAddress, NoListener> {
    let first = route_set.first().map(String::as_str).unwrap_or(target);
    if is_sips(target) || is_sips(first) {
        return tls_only(zone, "sips: Request-URI or Route", true);
    }
    let param = transport_param(first);
    if param == Some(SipTransport::Tls) {
        return tls_only(zone, "transport=tls next hop", false);
    }
    let order: &[SipTransport] = match (known, next_hop.reliable, param) {
        (Some(SipTransport::Tls), _, _) => &[SipTransport::Tls, SipTransport::Tcp],
        (Some(SipTransport::Tcp), _, _) => &[SipTransport::Tcp, SipTransport::Tls],
        (_, false, _) => &[SipTransport::Udp],
        (_, true, _) => &[SipTransport::Tcp, SipTransport::Tls],
    };
    first_of(zone, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_zone() -> ZoneIdentity {
        ZoneIdentity::new("wan", "198.51.100.1:5060")
            .with_address(SipTransport::Tls, "198.51.100.1:5061")
    }

    fn hop(reliable: bool) -> Destination {
        Destination {
            remote: "203.0.113.5:5061".parse().unwrap(),
            flow: None,
            reliable,
        }
    }

    #[test]
    fn contact_names_the_transport_of_the_leg() {
        let mut a = LegAddress {
            transport: SipTransport::Udp,
            address: "198.51.100.1:5060".into(),
            sips: false,
        };
        assert_eq!(a.contact(), "<sip:198.51.100.1:5060>");
        a.transport = SipTransport::Tls;
        a.address = "198.51.100.1:5061".into();
        assert_eq!(a.contact(), "<sip:198.51.100.1:5061;transport=tls>");
        a.transport = SipTransport::Tcp;
        assert_eq!(a.contact(), "<sip:198.51.100.1:5061;transport=tcp>");
        a.transport = SipTransport::Tls;
        a.sips = true;
        assert_eq!(a.contact(), "<sips:198.51.100.1:5061>");
        assert_eq!(
            a.via("z9hG4bK1"),
            "SIP/2.0/TLS 198.51.100.1:5061;branch=z9hG4bK1;rport"
        );
    }

    #[test]
    fn leg_b_follows_the_next_hop() {
        let z = tls_zone();
        let b = |t: &str, r: bool| leg_b(&z, t, &[], hop(r), None);
        let udp = b("sip:+49301@itsp.example", false).unwrap();
        assert_eq!(
            (udp.transport, udp.address.as_str()),
            (SipTransport::Udp, "198.51.100.1:5060")
        );
        let tls = b("sip:alice@203.0.113.7:40000;transport=tls", true).unwrap();
        assert_eq!(
            (tls.transport, tls.address.as_str(), tls.sips),
            (SipTransport::Tls, "198.51.100.1:5061", false)
        );
        // A stream hop in a zone without TCP: TLS rather than TCP from the UDP address.
        assert_eq!(
            b("sip:x@trunk.example", true).unwrap().transport,
            SipTransport::Tls
        );
        // sips: TLS and a sips Contact, whatever the hop looked like.
        let s = b("sips:bob@example.com", false).unwrap();
        assert_eq!((s.transport, s.sips), (SipTransport::Tls, true));
        // The top Route decides the hop: a sips Route is TLS too.
        let r = leg_b(
            &z,
            "sip:bob@example.com",
            &["<sips:edge.example.com;lr>".to_owned()],
            hop(true),
            None,
        )
        .unwrap();
        assert_eq!((r.transport, r.sips), (SipTransport::Tls, true));
        // A known peer keeps its transport.
        let k = leg_b(&z, "sip:201@x", &[], hop(true), Some(SipTransport::Tls)).unwrap();
        assert_eq!(k.transport, SipTransport::Tls);
    }

    #[test]
    fn tls_targets_are_refused_without_a_tls_listener() {
        let z = ZoneIdentity::new("lan", "192.168.10.1:5060")
            .with_address(SipTransport::Tcp, "192.168.10.1:5060");
        let e = leg_b(&z, "sips:bob@example.com", &[], hop(true), None).unwrap_err();
        assert_eq!(e.status().0, 416);
        assert!(e.to_string().contains("no TLS listener"), "{e}");
        let e = leg_b(
            &z,
            "sip:bob@192.168.10.9;transport=TLS",
            &[],
            hop(true),
            None,
        )
        .unwrap_err();
        assert_eq!(e.status().0, 503);
        // TCP is there for a plain stream hop.
        let t = leg_b(&z, "sip:bob@192.168.10.9", &[], hop(true), None).unwrap();
        assert_eq!(t.transport, SipTransport::Tcp);
    }
}
