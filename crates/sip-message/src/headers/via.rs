//! Via (RFC 3261 20.42 and 25.1, `rport` from RFC 3581).

use std::net::IpAddr;

use super::At;
use crate::error::{ErrorKind, Result};
use crate::lex::{Cursor, Params};
use crate::name::HeaderName;
use crate::typed::TypedHeader;
use crate::uri::{parse_port, port_at, Host};

/// The RFC 3261 branch prefix (section 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// `via-parm = sent-protocol LWS sent-by *( SEMI via-params )`, where
/// `sent-protocol = protocol-name SLASH protocol-version SLASH transport` (white space allowed
/// around the slashes, `wsinv.dat`) and `sent-by = host [ COLON port ]`. Any transport token is
/// accepted (`transports.dat`). The well-known parameters are checked and picked out during the
/// one pass over the parameters; all of them stay readable through `params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP` (any token is accepted).
    pub protocol: &'a str,
    /// `2.0` (any token is accepted).
    pub version: &'a str,
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS` or any other token, as written.
    pub transport: &'a str,
    pub host: Host<'a>,
    /// The host as written (IPv6 references with their brackets).
    pub host_str: &'a str,
    pub port: Option<u16>,
    /// `branch=token`.
    pub branch: Option<&'a str>,
    /// `received=IPv4address / IPv6address` (brackets around IPv6 tolerated).
    pub received: Option<IpAddr>,
    /// `rport` (RFC 3581): `Some(None)` for the bare flag, `Some(Some(port))` once filled in.
    pub rport: Option<Option<u16>>,
    /// `maddr=host`, checked to be a host.
    pub maddr: Option<&'a str>,
    /// `ttl=0..255`.
    pub ttl: Option<u8>,
    /// Every parameter, raw (the ones above included).
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// True when the branch carries the RFC 3261 magic cookie followed by something: a branch
    /// that is only `z9hG4bK` is not unique, so the transaction is matched the RFC 2543 way
    /// (RFC 4475 3.2.1, `badbranch.dat`).
    pub fn has_magic_cookie(&self) -> bool {
        self.branch
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// Case-insensitive transport comparison.
    pub fn transport_is(&self, t: &str) -> bool {
        self.transport.eq_ignore_ascii_case(t)
    }

    /// A parameter by name (case-insensitive), quotes removed.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.value(name)
    }
}

fn parse_received(v: &str) -> Option<IpAddr> {
    let inner = v
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(v);
    let ip: IpAddr = inner.parse().ok()?;
    // brackets only around IPv6
    if inner.len() != v.len() && ip.is_ipv4() {
        return None;
    }
    Some(ip)
}

impl<'a> TypedHeader<'a> for Via<'a> {
    const NAME: HeaderName = HeaderName::Via;
    const LIST: bool = true;
    const ERROR: ErrorKind = ErrorKind::BadVia;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        const E: ErrorKind = ErrorKind::BadVia;
        let (protocol, version);
        let p0 = c.pos();
        // `SIP/2.0/` as nearly every Via writes it: one compare instead of two tokens and two
        // slashes (the general path below reads the same text to the same result).
        if c.bytes().get(p0..).and_then(|r| r.first_chunk::<8>()) == Some(b"SIP/2.0/") {
            protocol = c.slice(p0, p0 + 3);
            version = c.slice(p0 + 4, p0 + 7);
            c.set_pos(p0 + 8);
        } else {
            protocol = c.token(E)?;
            c.expect_ws(b'/', E)?;
            c.skip_ws();
            version = c.token(E)?;
            c.expect_ws(b'/', E)?;
        }
        c.skip_ws();
        let transport = c.token(E)?;
        if !c.skip_ws() {
            return Err(c.err(E));
        }
        // sent-by
        let h0 = c.pos();
        let (host, h1) = crate::uri::scan_host(c.rest_from(h0), 0).map_err(|k| c.err_at(k, h0))?;
        c.set_pos(h0 + h1);
        let host_str = c.slice(h0, c.pos());
        let mut port = None;
        if c.eat_ws(b':') {
            c.skip_ws();
            let p0 = c.pos();
            let (end, p) = port_at(c.bytes(), p0);
            c.set_pos(end);
            port = Some(p.ok_or(c.err_at(ErrorKind::BadPort, p0))?);
        }
        let at = At::new(c);
        let (mut branch, mut received, mut rport, mut maddr, mut ttl) =
            (None, None, None, None, None);
        let params = c.header_params(|n, v| {
            let bad = |s: &str| at.err(E, s);
            // Most parameters are none of these: one length test rules them out.
            if !matches!(n.len(), 3..=8) {
                return Ok(());
            }
            if n.eq_ignore_ascii_case("branch") {
                let v = v.ok_or(bad(n))?;
                // `header_params` hands over a quoted string with its quotes, or a non-empty
                // run of token characters, `:`, `[` and `]`: a token is the latter without
                // those three.
                if v.starts_with('"')
                    || crate::simd::find3(v.as_bytes(), b':', b'[', b']').is_some()
                {
                    return Err(bad(v));
                }
                branch.get_or_insert(v);
            } else if n.eq_ignore_ascii_case("received") {
                let v = v.ok_or(bad(n))?;
                let ip = parse_received(v).ok_or(bad(v))?;
                received.get_or_insert(ip);
            } else if n.eq_ignore_ascii_case("rport") {
                let p = match v {
                    None => None,
                    Some(v) => Some(parse_port(v.as_bytes()).ok_or(bad(v))?),
                };
                rport.get_or_insert(p);
            } else if n.eq_ignore_ascii_case("maddr") {
                let v = v.ok_or(bad(n))?;
                Host::parse(v).map_err(|_| bad(v))?;
                maddr.get_or_insert(v);
            } else if n.eq_ignore_ascii_case("ttl") {
                let v = v.ok_or(bad(n))?;
                let t = (!v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<u8>().ok())
                    .flatten()
                    .ok_or(bad(v))?;
                ttl.get_or_insert(t);
            }
            Ok(())
        })?;
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            host_str,
            port,
            branch,
            received,
            rport,
            maddr,
            ttl,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn via(s: &str) -> Via<'_> {
        Via::parse_value(s).unwrap()
    }

    fn kind(s: &str) -> ErrorKind {
        Via::parse_value(s).unwrap_err().kind
    }

    #[test]
    fn plain_via() {
        let v = via("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds");
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.host, Host::Name("pc33.atlanta.com"));
        assert_eq!(v.port, None);
        assert_eq!(v.branch, Some("z9hG4bK776asdhds"));
        assert!(v.has_magic_cookie());
        assert!(v.transport_is("udp"));
        assert_eq!(v.params.as_str(), ";branch=z9hG4bK776asdhds");
    }

    #[test]
    fn every_known_param() {
        let v = via(
            "SIP/2.0/TCP [2001:db8::9]:5061;Branch=z9hG4bKx;received=[2001:db8::1];rport=5070;\
             maddr=239.255.255.1;ttl=16;x=\"y\"",
        );
        assert_eq!(v.host, Host::V6("2001:db8::9".parse().unwrap()));
        assert_eq!(v.host_str, "[2001:db8::9]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.branch, Some("z9hG4bKx"));
        assert_eq!(v.received, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(v.rport, Some(Some(5070)));
        assert_eq!(v.maddr, Some("239.255.255.1"));
        assert_eq!(v.ttl, Some(16));
        assert_eq!(v.param("x"), Some("y"));
        let v = via("SIP/2.0/UDP 10.0.0.1;rport;received=192.0.2.7");
        assert_eq!(v.host, Host::V4("10.0.0.1".parse().unwrap()));
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.received, Some("192.0.2.7".parse().unwrap()));
        assert!(!v.has_magic_cookie());
    }

    #[test]
    fn odd_whitespace_and_folds() {
        // wsinv.dat
        let v = via("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw");
        assert_eq!((v.transport, v.branch), ("UDP", Some("390skdjuw")));
        assert!(!v.has_magic_cookie());
        let v = via("SIP/2.0/UDP host : 5060 ;\r\n branch\t=\r\n z9hG4bK1");
        assert_eq!((v.port, v.branch), (Some(5060), Some("z9hG4bK1")));
    }

    #[test]
    fn magic_cookie_alone_is_not_rfc3261() {
        // badbranch.dat
        assert!(!via("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").has_magic_cookie());
        assert!(!via("SIP/2.0/UDP 192.0.2.1;branch=Z9HG4BKabc").has_magic_cookie());
    }

    #[test]
    fn malformed_vias() {
        assert_eq!(kind("SIP/2.0 host"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDP"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDPhost"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDP host:99999"), ErrorKind::BadPort);
        assert_eq!(kind("SIP/2.0/UDP host:"), ErrorKind::BadPort);
        assert_eq!(kind("SIP/2.0/UDP ho_st"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDP [::1"), ErrorKind::BadHost);
        assert_eq!(kind("SIP/2.0/UDP 300.1.1.1"), ErrorKind::BadHost);
        assert_eq!(kind("SIP/2.0/UDP h;branch"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDP h;branch=\"x\""), ErrorKind::BadVia);
        assert_eq!(
            kind("SIP/2.0/UDP h;received=example.com"),
            ErrorKind::BadVia
        );
        assert_eq!(
            kind("SIP/2.0/UDP h;received=[192.0.2.1]"),
            ErrorKind::BadVia
        );
        assert_eq!(kind("SIP/2.0/UDP h;rport=x"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDP h;ttl=256"), ErrorKind::BadVia);
        assert_eq!(kind("SIP/2.0/UDP h;maddr=a_b"), ErrorKind::BadVia);
        // badinv01.dat
        assert_eq!(kind("SIP/2.0/UDP 192.0.2.15;;,;,,"), ErrorKind::BadParam);
        let e = Via::parse_value("SIP/2.0/UDP h;ttl=300").unwrap_err();
        assert_eq!(e.offset, 18);
    }

    #[test]
    fn lists_through_message() {
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf, SIP/2.0/UNKNOWN t4.example.com\r\n\
l: 0\r\n\r\n"[..],
        )
        .unwrap();
        let vias = m.typed_vec::<Via>().unwrap();
        assert_eq!(vias.len(), 4);
        assert_eq!(vias[0].host_str, "spindle.example.com");
        assert_eq!(vias[0].branch, Some("z9hG4bK9ikj8"));
        assert_eq!(vias[1].branch, Some("z9hG4bK30239"));
        assert_eq!(vias[2].transport, "SCTP");
        assert_eq!(vias[3].transport, "UNKNOWN");
        let bad =
            Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a,\r\nl: 0\r\n\r\n"[..])
                .unwrap();
        assert_eq!(bad.typed_vec::<Via>().unwrap_err().kind, ErrorKind::BadVia);
    }
}
