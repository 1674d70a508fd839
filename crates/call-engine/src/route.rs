//! Routing of the enterprise edge: SIP trunks and per-zone next hops, on top of the
//! zone-crossing B2BUA (module `b2b`).
//!
//! An initial INVITE is routed, in order:
//! 1. from a trunk's source networks: to the next hop of another zone (the trunk's `from_zone`
//!    first), the PBX, whatever its Request-URI (the PBX routes the DIDs);
//! 2. to a Request-URI that is not ours and carries no Route, from a zone that is some trunk's
//!    `from_zone`: to the first such trunk whose patterns fit (a number, or a foreign domain).
//!    A Request-URI that names another element of the caller's own zone by IP address (a LAN
//!    phone) stays in the zone; one that names the caller itself (the PBX's own domain) does
//!    not, and when no trunk takes it, it is refused (404) rather than sent back (a loop);
//! 3. to one of our users or addresses that has no binding here (the location service said
//!    404 or 480): a number from a trunk's `from_zone` to that trunk (only when unknown, 404:
//!    a known user's extension never rings the public network), anything else to the next
//!    hop of another zone than the caller's (remote users calling colleagues registered at
//!    the PBX, numbers dialled by remote users: the PBX decides);
//! 4. otherwise as before (module `b2b`): the first target's zone against the caller's.
//!
//! Every call routed here crosses zones, so it goes through the B2BUA: media anchored, the
//! topology hidden. Leg B's Request-URI is `sip:USER@HOST` of the trunk or next hop (a foreign
//! domain keeps its Request-URI and only goes to the trunk's address).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use b2bua::RouteDecision;
use ipnet::IpNet;
use sip_message::{HeaderName, Message, Method, Uri};
use sip_transaction::{Destination, ServerTxId, Source};

use crate::engine::Engine;
use crate::settings::Transport;

/// Where requests from other zones for the enterprise's users go, per zone (the PBX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// The zone the next hop is in.
    pub zone: String,
    /// Where to send.
    pub address: SocketAddr,
    pub transport: Transport,
}

/// A SIP trunk to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// The zone the provider is reached in.
    pub zone: String,
    pub address: SocketAddr,
    pub transport: Transport,
    /// Calls from this zone to numbers and foreign domains may leave by this trunk.
    pub from_zone: String,
    /// Number prefixes (`+49`, `00`, `*` for any) and domains (`example.com`,
    /// `*.example.com`); empty: every number and every foreign domain.
    pub matches: Vec<String>,
    /// Networks the provider's requests come from (trunk calls: not challenged).
    pub sources: Vec<IpNet>,
}

/// The edge's routing table: next hops per zone and trunks, in the order they are tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeRoutes {
    pub next_hops: Vec<NextHop>,
    pub trunks: Vec<Trunk>,
}

impl NextHop {
    fn host_port(&self) -> String {
        host_port(self.address)
    }
    fn destination(&self) -> Destination {
        destination(self.address, self.transport)
    }
}

impl Trunk {
    /// Whether the trunk takes a call to `number` (digits, `+`, `*`, `#` only).
    pub fn takes_number(&self, number: &str) -> bool {
        if self.matches.is_empty() {
            return true;
        }
        self.matches
            .iter()
            .filter(|p| is_number_pattern(p))
            .any(|p| p == "*" || number.starts_with(p.as_str()))
    }

    /// Whether the trunk takes a call to a user at the foreign domain `host`.
    pub fn takes_domain(&self, host: &str) -> bool {
        if self.matches.is_empty() {
            return true;
        }
        let host = crate::util::norm_host(host);
        self.matches
            .iter()
            .filter(|p| !is_number_pattern(p))
            .any(|p| match p.strip_prefix("*.") {
                Some(suffix) => {
                    let suffix = suffix.to_ascii_lowercase();
                    host.strip_suffix(&suffix)
                        .is_some_and(|rest| rest.ends_with('.'))
                }
                None => host == p.to_ascii_lowercase(),
            })
    }

    fn destination(&self) -> Destination {
        destination(self.address, self.transport)
    }
}

fn is_number_pattern(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b"+*#".contains(&b))
}

fn destination(address: SocketAddr, t: Transport) -> Destination {
    Destination {
        remote: address,
        flow: None,
        reliable: t.reliable(),
    }
}

/// The URI parameter that tells the B2BUA which stream transport a hop takes: it picks the
/// leg's transport from the target (`;transport=tls` goes out over TLS only), and a zone may
/// listen on both TCP and TLS. UDP is the default and needs none.
fn transport_param(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
        Transport::Ws => ";transport=ws",
        Transport::Wss => ";transport=wss",
    }
}

fn host_port(a: SocketAddr) -> String {
    match a.ip().to_canonical() {
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
    }
}

/// The user part as a number: digits with an optional leading `+` (and `*`, `#`), visual
/// separators (`-`, `.`, `(`, `)`) removed. `None` for anything else (a name).
pub(crate) fn as_number(user: &str) -> Option<String> {
    let n: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    let digits = n.strip_prefix('+').unwrap_or(&n);
    let ok = !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        && digits.chars().any(|c| c.is_ascii_digit());
    ok.then_some(n)
}

/// The parts of a Request-URI the routing looks at.
struct Called {
    /// The user part as written (the number of a `tel:` URI).
    user: Option<String>,
    /// `user` as a number.
    number: Option<String>,
    /// The host of a SIP URI, with its IP address when it is one.
    host: Option<(String, Option<IpAddr>)>,
    /// The Request-URI names us (one of our domains or addresses).
    ours: bool,
}

impl Engine {
    /// Trunks and next hops for the calls between zones (see the module documentation of
    /// `route`). Only with a B2BUA ([`Engine::with_b2bua`] first): without one every call
    /// is proxied and there is nothing to route across zones.
    pub fn with_edge_routes(mut self, routes: EdgeRoutes) -> Engine {
        self.set_edge_routes(routes);
        self
    }

    /// New trunks and next hops (a reload); calls in progress keep their legs.
    pub fn set_edge_routes(&mut self, routes: EdgeRoutes) {
        if let Some(c) = self.cross.as_mut() {
            c.routes = routes;
        }
    }

    /// The trunk whose source networks hold `ip` (its requests are trunk calls).
    pub fn trunk_of(&self, ip: IpAddr) -> Option<&Trunk> {
        let ip = ip.to_canonical();
        self.cross
            .as_ref()?
            .routes
            .trunks
            .iter()
            .find(|t| t.sources.iter().any(|n| n.contains(&ip)))
    }

    fn called(&self, work: &Message) -> Option<Called> {
        match work.request_uri()? {
            Uri::Sip(u) => {
                let user = u
                    .user
                    .map(|s| String::from_utf8_lossy(&sip_message::unescape(s)).into_owned());
                let number = user.as_deref().and_then(as_number);
                let ip = u.host.ip();
                Some(Called {
                    user,
                    number,
                    host: Some((u.host_str.to_owned(), ip)),
                    ours: self.is_us(&u),
                })
            }
            Uri::Tel(t) => {
                let number: String = t.digits().collect();
                Some(Called {
                    user: Some(t.number.to_owned()),
                    number: Some(number),
                    host: None,
                    ours: false,
                })
            }
            Uri::Other(_) => None,
        }
    }

    /// The next hop of another zone than `from` (`prefer` first).
    fn next_hop_from(&self, from: &str, prefer: Option<&str>) -> Option<&NextHop> {
        let hops = &self.cross.as_ref()?.routes.next_hops;
        prefer
            .and_then(|p| hops.iter().find(|h| h.zone == p && h.zone != from))
            .or_else(|| hops.iter().find(|h| h.zone != from))
    }

    fn to_next_hop(&self, hop: &NextHop, called: &Called) -> Option<RouteDecision> {
        let user = called.user.as_deref()?;
        Some(RouteDecision {
            target: format!(
                "sip:{}@{}{}",
                escape_user(user),
                hop.host_port(),
                transport_param(hop.transport)
            ),
            next_hop: hop.destination(),
            zone: hop.zone.clone(),
        })
    }

    fn to_trunk(&self, t: &Trunk, called: &Called, ruri: &str) -> RouteDecision {
        let target = match (&called.number, &called.user) {
            (Some(n), _) => format!(
                "sip:{}@{}{}",
                escape_user(n),
                host_port(t.address),
                transport_param(t.transport)
            ),
            _ => ruri.to_owned(),
        };
        RouteDecision {
            target,
            next_hop: t.destination(),
            zone: t.zone.clone(),
        }
    }

    /// The first trunk from zone `from` that takes `called` (a number, or a foreign domain
    /// when `domains`).
    fn trunk_for(&self, from: &str, called: &Called, domains: bool) -> Option<&Trunk> {
        let trunks = &self.cross.as_ref()?.routes.trunks;
        trunks.iter().filter(|t| t.from_zone == from).find(|t| {
            match (&called.number, &called.host) {
                (Some(n), _) => t.takes_number(n),
                (None, Some((host, _))) if domains => t.takes_domain(host),
                _ => false,
            }
        })
    }

    /// Steps 1 and 2 of the module documentation, for an initial INVITE about to be routed by
    /// its targets: `Some` when a trunk or a next hop takes it.
    pub(crate) fn edge_route(
        &self,
        work: &Message,
        source: Source,
        zone_a: &str,
    ) -> Option<RouteDecision> {
        let called = self.called(work)?;
        if let Some(trunk) = self.trunk_of(source.remote.ip()) {
            let hop = self.next_hop_from(zone_a, Some(&trunk.from_zone))?;
            return self.to_next_hop(hop, &called);
        }
        if called.ours || work.count(HeaderName::Route) > 0 {
            return None;
        }
        // Another element of the caller's own zone, by address: not for the outside.
        if let Some((_, Some(ip))) = &called.host {
            let ip = ip.to_canonical();
            let caller = source.remote.ip().to_canonical();
            if ip != caller && self.zone_of(ip) == Some(zone_a) {
                return None;
            }
        }
        let trunk = self.trunk_for(zone_a, &called, true)?;
        let ruri = work.request_uri_str().unwrap_or("");
        Some(self.to_trunk(trunk, &called, ruri))
    }

    /// An initial INVITE whose Request-URI names the caller itself by address (the PBX's own
    /// domain: `sip:NUMBER@192.168.10.10` from 192.168.10.10), from a zone that has trunks,
    /// that no trunk took: forwarding it would only send it back where it came from (the PBX
    /// routes it to us again: a loop). True: refuse it (no route).
    pub(crate) fn bounces_back(&self, work: &Message, source: Source, zone_a: &str) -> bool {
        let has_trunks = self
            .cross
            .as_ref()
            .is_some_and(|c| c.routes.trunks.iter().any(|t| t.from_zone == zone_a));
        if !has_trunks || work.count(HeaderName::Route) > 0 {
            return false;
        }
        let caller = source.remote.ip().to_canonical();
        self.called(work).is_some_and(|c| {
            !c.ours && matches!(c.host, Some((_, Some(ip))) if ip.to_canonical() == caller)
        })
    }

    /// Step 3: an initial INVITE to one of our users or addresses that the location service
    /// could not place (`status` 404: unknown, 480: a known user without a binding now; or a
    /// `tel:` URI without a route). A known user's number never goes to a trunk: an extension
    /// whose phone is away (a lapsed relayed registration) must not ring the public network.
    /// Returns true when it was taken (the caller got an answer either way).
    pub(crate) fn b2b_unresolved(
        &mut self,
        now: Instant,
        id: ServerTxId,
        work: &Message,
        source: Source,
        status: u16,
    ) -> bool {
        if self.cross.is_none() || !is_initial_invite(work) {
            return false;
        }
        let Some(zone_a) = self.zone_of(source.remote.ip()).map(str::to_owned) else {
            return false;
        };
        let Some(called) = self.called(work) else {
            return false;
        };
        let route = if self.trunk_of(source.remote.ip()).is_some() {
            self.edge_route(work, source, &zone_a)
        } else {
            let ruri = work.request_uri_str().unwrap_or("");
            self.trunk_for(&zone_a, &called, false)
                .filter(|_| status == 404)
                .map(|t| self.to_trunk(t, &called, ruri))
                .or_else(|| {
                    self.next_hop_from(&zone_a, None)
                        .and_then(|h| self.to_next_hop(h, &called))
                })
        };
        match route {
            Some(route) => {
                self.b2b_start(now, id, work, source, &zone_a, route);
                true
            }
            None => false,
        }
    }
}

pub(crate) fn is_initial_invite(work: &Message) -> bool {
    work.method() == Some(Method::Invite)
        && work
            .to()
            .and_then(|t| t.ok())
            .is_some_and(|t| t.tag().is_none())
}

/// A user part as it may be written in a SIP URI (RFC 3261 25.1 `user`): unreserved
/// characters and the user-unreserved ones as they are, anything else `%HH`.
fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(matches: &[&str]) -> Trunk {
        Trunk {
            name: "itsp".into(),
            zone: "wan".into(),
            address: "203.0.113.10:5060".parse().unwrap(),
            transport: Transport::Udp,
            from_zone: "lan".into(),
            matches: matches.iter().map(|s| (*s).to_owned()).collect(),
            sources: vec!["203.0.113.10/32".parse().unwrap()],
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(as_number("+49 30").as_deref(), None);
        assert_eq!(as_number("+49-(30)-1234").as_deref(), Some("+49301234"));
        assert_eq!(as_number("0301234").as_deref(), Some("0301234"));
        assert_eq!(as_number("*21#").as_deref(), Some("*21#"));
        assert_eq!(as_number("alice"), None);
        assert_eq!(as_number("+"), None);
        assert_eq!(as_number("**"), None);
        assert_eq!(as_number(""), None);
    }

    #[test]
    fn trunk_patterns() {
        let any = trunk(&[]);
        assert!(any.takes_number("+4930"));
        assert!(any.takes_domain("example.org"));
        let de = trunk(&["+49", "0", "*.example.org", "example.net"]);
        assert!(de.takes_number("+4930123"));
        assert!(de.takes_number("030123"));
        assert!(!de.takes_number("+3312345"));
        assert!(de.takes_domain("sip.Example.ORG"));
        assert!(!de.takes_domain("example.org"));
        assert!(!de.takes_domain("badexample.org"));
        assert!(de.takes_domain("example.net."));
        assert!(!de.takes_domain("www.example.net"));
        // Only domains: no numbers; only numbers: no domains.
        assert!(!trunk(&["example.org"]).takes_number("+49"));
        assert!(!trunk(&["+49"]).takes_domain("example.org"));
        assert!(trunk(&["*"]).takes_number("12345"));
    }

    #[test]
    fn stream_hops_name_their_transport_in_the_target() {
        // The B2BUA takes a leg's transport from its target: without the parameter a TLS
        // trunk in a zone that also listens on TCP would be called over TCP.
        assert_eq!(transport_param(Transport::Udp), "");
        assert_eq!(transport_param(Transport::Tcp), ";transport=tcp");
        assert_eq!(transport_param(Transport::Tls), ";transport=tls");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_user("+4930;x"), "+4930;x");
        assert_eq!(escape_user("a b@c"), "a%20b%40c");
        assert_eq!(escape_user("#21"), "%2321");
    }
}
