//! Where a request goes next: the destination of a SIP URI (a Route value or the Request-URI,
//! RFC 3261 16.6 item 7 / 8.1.2). DNS is not the engine's business: numeric hosts are used
//! as they are, host names are asked of a [`Resolver`] that the caller supplies (a cache filled
//! by the shell's RFC 3263 logic, a static table...). The engine never blocks on it beyond
//! what the resolver itself does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use sip_message::{Host, Scheme, SipUri};
use sip_transaction::Destination;

use crate::settings::Transport;

/// Resolves host names of next hops.
pub trait Resolver: Send + Sync {
    /// The address for `host` (a name, never an IP literal), with `port` when the URI gave one.
    /// `None`: unknown (the branch fails with 503).
    fn resolve(&self, host: &str, port: Option<u16>, transport: Transport) -> Option<SocketAddr>;
}

/// Resolves nothing: only numeric hosts are reachable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumericOnly;

impl Resolver for NumericOnly {
    fn resolve(&self, _: &str, _: Option<u16>, _: Transport) -> Option<SocketAddr> {
        None
    }
}

/// A fixed table of host names (lower case) to addresses; the URI port, when given, replaces
/// the table's port.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    pub hosts: HashMap<String, SocketAddr>,
}

impl StaticResolver {
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    pub fn with(mut self, host: &str, addr: SocketAddr) -> StaticResolver {
        self.hosts.insert(host.to_ascii_lowercase(), addr);
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str, port: Option<u16>, _: Transport) -> Option<SocketAddr> {
        let mut a = *self
            .hosts
            .get(&host.trim_end_matches('.').to_ascii_lowercase())?;
        if let Some(p) = port {
            a.set_port(p);
        }
        Some(a)
    }
}

/// The transport a URI asks for: its `transport` parameter, TLS for `sips`, else UDP.
pub(crate) fn uri_transport(u: &SipUri<'_>) -> Transport {
    if let Some(t) = u.transport().and_then(Transport::parse) {
        if u.scheme == Scheme::Sips && t == Transport::Tcp {
            return Transport::Tls;
        }
        return t;
    }
    if u.scheme == Scheme::Sips {
        Transport::Tls
    } else {
        Transport::Udp
    }
}

/// The destination of `u`: `maddr` over the host, the URI port or the transport's default.
pub(crate) fn uri_destination(
    u: &SipUri<'_>,
    resolver: &dyn Resolver,
) -> Option<(Destination, Transport)> {
    let transport = uri_transport(u);
    let port = u.port;
    let host = match u.maddr().map(Host::parse) {
        Some(Ok(h)) => h,
        _ => u.host,
    };
    let addr = match host {
        Host::V4(a) => SocketAddr::new(IpAddr::V4(a), port.unwrap_or(transport.default_port())),
        Host::V6(a) => SocketAddr::new(IpAddr::V6(a), port.unwrap_or(transport.default_port())),
        Host::Name(n) => {
            let mut a = resolver.resolve(n, port, transport)?;
            if a.port() == 0 {
                a.set_port(port.unwrap_or(transport.default_port()));
            }
            a
        }
    };
    Some((
        Destination {
            remote: addr,
            flow: None,
            reliable: transport.reliable(),
        },
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::Uri;

    fn dest(s: &str, r: &dyn Resolver) -> Option<(Destination, Transport)> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => uri_destination(&u, r),
            _ => None,
        }
    }

    #[test]
    fn numeric_and_named_hosts() {
        let (d, t) = dest("sip:bob@192.0.2.1", &NumericOnly).unwrap();
        assert_eq!(d.remote, "192.0.2.1:5060".parse().unwrap());
        assert_eq!((t, d.reliable), (Transport::Udp, false));
        let (d, t) = dest("sips:bob@[2001:db8::1]", &NumericOnly).unwrap();
        assert_eq!(d.remote, "[2001:db8::1]:5061".parse().unwrap());
        assert_eq!((t, d.reliable), (Transport::Tls, true));
        let (d, t) = dest("sip:p.example.com;transport=TCP;lr", &NumericOnly)
            .map_or((None, None), |(d, t)| (Some(d), Some(t)));
        assert_eq!((d, t), (None, None));
        let r = StaticResolver::new().with("P.example.com", "192.0.2.9:5060".parse().unwrap());
        let (d, t) = dest("sip:p.example.com:5080;transport=tcp;lr", &r).unwrap();
        assert_eq!(d.remote, "192.0.2.9:5080".parse().unwrap());
        assert_eq!((t, d.reliable), (Transport::Tcp, true));
        let (d, _) = dest("sip:x.invalid;maddr=192.0.2.4", &NumericOnly).unwrap();
        assert_eq!(d.remote, "192.0.2.4:5060".parse().unwrap());
    }
}
