//! Top-Via work of the transport, as pure functions over a parsed [`Message`]:
//! - stamping `received` and `rport` on requests (RFC 3261 18.2.1, RFC 3581 4);
//! - rewriting the top Via transport when a request moves from UDP to TCP (18.1.1);
//! - where a response goes (18.2.2, RFC 3581 4).
//!
//! Edits splice the original bytes: everything outside the changed parameter stays as it was.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use sip_message::headers::Via;
use sip_message::{ErrorKind, HeaderName, Host, Message};

use crate::Protocol;

/// Why the top Via could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViaError {
    /// No Via header.
    Missing,
    /// The top Via value does not parse.
    Malformed,
}

impl ViaError {
    /// The parse error kind it is counted and answered as.
    pub fn kind(self) -> ErrorKind {
        match self {
            ViaError::Missing => ErrorKind::MissingHeader,
            ViaError::Malformed => ErrorKind::BadVia,
        }
    }

    /// A reason phrase for the `400`.
    pub fn reason(self) -> &'static str {
        match self {
            ViaError::Missing => "missing Via",
            ViaError::Malformed => "malformed Via",
        }
    }
}

impl fmt::Display for ViaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ViaError {}

fn top_via(msg: &Message) -> Result<Via<'_>, ViaError> {
    match msg.top_via() {
        None => Err(ViaError::Missing),
        Some(Err(_)) => Err(ViaError::Malformed),
        Some(Ok(v)) => Ok(v),
    }
}

/// Offset of `s` in `buf`, when `s` is a slice of it.
fn offset_in(buf: &[u8], s: &str) -> Option<usize> {
    let b = buf.as_ptr() as usize;
    let p = s.as_ptr() as usize;
    (p >= b && p + s.len() <= b + buf.len()).then(|| p - b)
}

/// End (exclusive, buffer offset) of the top Via value: the end of its parameters, or of the
/// first value of the first Via field (before a top-level comma, white space trimmed).
fn top_value_end(msg: &Message, via: &Via<'_>) -> Option<usize> {
    let buf: &[u8] = msg.buffer();
    let p = via.params.as_str();
    if !p.is_empty() {
        return offset_in(buf, p).map(|o| o + p.len());
    }
    let f = msg.fields().iter().find(|f| f.name == HeaderName::Via)?;
    let v = msg.slice(f.value_span);
    let mut end = v.len();
    let mut in_quote = false;
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        match c {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b',' if !in_quote => {
                end = i;
                break;
            }
            _ => {}
        }
        i += 1;
    }
    while end > 0 && matches!(v[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    Some(f.value_span.start as usize + end)
}

/// Span (buffer offsets) of the first parameter `name` of the top Via: from its name to the end
/// of its value.
fn param_span(buf: &[u8], via: &Via<'_>, name: &str) -> Option<Range<usize>> {
    let (n, v) = via
        .params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    let start = offset_in(buf, n)?;
    let end = match v {
        Some(v) => offset_in(buf, v)? + v.len(),
        None => start + n.len(),
    };
    Some(start..end)
}

/// Writes the message's wire bytes with `edits` (sorted, not overlapping) applied.
fn splice(msg: &Message, mut edits: Vec<(Range<usize>, String)>) -> Bytes {
    edits.sort_by_key(|(r, _)| r.start);
    let buf: &[u8] = msg.buffer();
    let start = msg.start_line_span().start as usize;
    let end = msg.body_span().end as usize;
    let extra: usize = edits.iter().map(|(_, s)| s.len()).sum();
    let mut out = BytesMut::with_capacity(end - start + extra);
    let mut at = start;
    for (r, s) in &edits {
        out.put_slice(&buf[at..r.start]);
        out.put_slice(s.as_bytes());
        at = r.end;
    }
    out.put_slice(&buf[at..end]);
    out.freeze()
}

fn same_ip(host: &Host<'_>, ip: IpAddr) -> bool {
    match host {
        Host::V4(a) => IpAddr::V4(*a) == ip,
        Host::V6(a) => IpAddr::V6(*a).to_canonical() == ip,
        Host::Name(_) => false,
    }
}

/// Stamps the top Via of a request received from `source`:
/// - `received=<source ip>` is added when the sent-by host differs from the source address
///   (RFC 3261 18.2.1), and also when `rport` is present (RFC 3581 4: "even if it is identical");
///   a `received` already there with another address is replaced;
/// - `rport` is set to the source port when present (bare or, from a confused or spoofing
///   client, with a value); with `force_rport` it is added when absent (symmetric response
///   routing for clients behind NAT that do not ask for it).
///
/// Returns `Ok(None)` when nothing changes (the message can be used as it is), otherwise the new
/// wire bytes, which the caller parses again.
pub fn stamp_request(
    msg: &Message,
    source: SocketAddr,
    force_rport: bool,
) -> Result<Option<Bytes>, ViaError> {
    let via = top_via(msg)?;
    let buf: &[u8] = msg.buffer();
    let ip = source.ip().to_canonical();
    let port = source.port();
    let mut edits: Vec<(Range<usize>, String)> = Vec::with_capacity(2);
    let mut append = String::new();

    let has_rport = via.rport.is_some();
    match via.rport {
        Some(Some(p)) if p == port => {}
        Some(_) => {
            let r = param_span(buf, &via, "rport").ok_or(ViaError::Malformed)?;
            edits.push((r, format!("rport={port}")));
        }
        None if force_rport => append.push_str(&format!(";rport={port}")),
        None => {}
    }
    let needs_received = has_rport || force_rport || !same_ip(&via.host, ip);
    match via.received {
        Some(r) if r.to_canonical() == ip => {}
        Some(_) => {
            let r = param_span(buf, &via, "received").ok_or(ViaError::Malformed)?;
            edits.push((r, format!("received={ip}")));
        }
        None if needs_received => append.insert_str(0, &format!(";received={ip}")),
        None => {}
    }
    if !append.is_empty() {
        let end = top_value_end(msg, &via).ok_or(ViaError::Malformed)?;
        edits.push((end..end, append));
    }
    if edits.is_empty() {
        return Ok(None);
    }
    Ok(Some(splice(msg, edits)))
}

/// Replaces the transport token of the top Via (`UDP` → `TCP` when a large request moves to a
/// congestion-controlled transport, RFC 3261 18.1.1). `Ok(None)` when it already says so.
pub fn set_top_via_transport(msg: &Message, transport: &str) -> Result<Option<Bytes>, ViaError> {
    let via = top_via(msg)?;
    if via.transport_is(transport) {
        return Ok(None);
    }
    let at = offset_in(msg.buffer(), via.transport).ok_or(ViaError::Malformed)?;
    Ok(Some(splice(
        msg,
        vec![(at..at + via.transport.len(), transport.to_owned())],
    )))
}

/// Where a response goes according to its top Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViaTarget {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

/// Why a response cannot be routed by its Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteError {
    Via(ViaError),
    /// The sent-by is a host name and there is no `received`: RFC 3263 section 5 resolution is
    /// needed, which the transport does not do.
    NeedsResolution,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Via(e) => e.fmt(f),
            RouteError::NeedsResolution => f.write_str("Via sent-by needs DNS resolution"),
        }
    }
}

impl std::error::Error for RouteError {}

/// The default SIP port (RFC 3261 18.2.2, 19.1.2) for UDP and TCP.
pub const DEFAULT_PORT: u16 = 5060;

/// Where a response goes (RFC 3261 18.2.2 with RFC 3581 4) over `protocol`, the transport its
/// request arrived on, once the connection the request came on (reliable transports) is known
/// to be gone:
/// - UDP: the `received` address (else the sent-by IP) and the `rport` port (else the sent-by
///   port, else 5060);
/// - TCP: the `received` address (else the sent-by IP) and the sent-by port (else 5060);
///   `rport` names the client's ephemeral port of the closed connection and is not used.
///
/// The transport token of the Via does not choose the protocol: a response goes back the way
/// its request came (18.2.2 "using the same transport"). A request that arrived over UDP with
/// a Via naming TLS or SCTP is answered over UDP, at the address it came from.
///
/// `maddr` is deliberately not honoured: on an Internet-facing edge it would let any client
/// direct responses at a third party.
pub fn response_target(msg: &Message, protocol: Protocol) -> Result<ViaTarget, RouteError> {
    let via = top_via(msg).map_err(RouteError::Via)?;
    let ip = match (via.received, via.host) {
        (Some(ip), _) => ip,
        (None, Host::V4(a)) => IpAddr::V4(a),
        (None, Host::V6(a)) => IpAddr::V6(a),
        (None, Host::Name(_)) => return Err(RouteError::NeedsResolution),
    };
    let sent_by_port = via.port.unwrap_or(DEFAULT_PORT);
    let port = match (protocol, via.rport) {
        (Protocol::Udp, Some(Some(p))) => p,
        _ => sent_by_port,
    };
    Ok(ViaTarget {
        protocol,
        addr: SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(via: &str) -> Message {
        Message::parse(format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP other;branch=z9hG4bKo\r\n\
             From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 2\r\n\r\nok"
        ))
        .unwrap()
    }

    fn stamped(via: &str, src: &str, force: bool) -> Option<String> {
        let m = req(via);
        let out = stamp_request(&m, src.parse().unwrap(), force).unwrap()?;
        let m2 = Message::parse(out.clone()).unwrap();
        assert_eq!(m2.body(), b"ok");
        assert_eq!(m2.count(HeaderName::Via), 2);
        Some(String::from_utf8(m2.header(HeaderName::Via).unwrap().to_vec()).unwrap())
    }

    #[test]
    fn received_added_when_host_differs() {
        assert_eq!(
            stamped(
                "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1",
                "192.0.2.4:5060",
                false
            )
            .as_deref(),
            Some("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1;received=192.0.2.4")
        );
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1",
                "192.0.2.4:1024",
                false
            )
            .as_deref(),
            Some("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;received=192.0.2.4")
        );
    }

    #[test]
    fn nothing_when_host_is_source_and_no_rport() {
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1",
                "192.0.2.4:9999",
                false
            ),
            None
        );
        assert_eq!(
            stamped(
                "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1",
                "[2001:db8::1]:5060",
                false
            ),
            None
        );
        // A v4-mapped source from a dual-stack socket is the v4 address.
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1",
                "[::ffff:192.0.2.4]:5060",
                false
            ),
            None
        );
    }

    #[test]
    fn rport_filled_and_received_added_even_if_same() {
        // RFC 3581 4 example.
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bK1",
                "192.0.2.1:9988",
                false
            )
            .as_deref(),
            Some("SIP/2.0/UDP 10.1.1.1:4540;rport=9988;branch=z9hG4bK1;received=192.0.2.1")
        );
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 192.0.2.1:4540;branch=z9hG4bK1;rport",
                "192.0.2.1:4540",
                false
            )
            .as_deref(),
            Some("SIP/2.0/UDP 192.0.2.1:4540;branch=z9hG4bK1;rport=4540;received=192.0.2.1")
        );
    }

    #[test]
    fn spoofed_values_are_overwritten() {
        assert_eq!(
            stamped(
                "SIP/2.0/UDP h;received=203.0.113.9;rport=1;branch=z9hG4bK1",
                "192.0.2.1:9988",
                false
            )
            .as_deref(),
            Some("SIP/2.0/UDP h;received=192.0.2.1;rport=9988;branch=z9hG4bK1")
        );
        // Already right: untouched.
        assert_eq!(
            stamped(
                "SIP/2.0/UDP h;received=192.0.2.1;rport=9988;branch=z9hG4bK1",
                "192.0.2.1:9988",
                false
            ),
            None
        );
    }

    #[test]
    fn force_rport_and_ipv6_received() {
        assert_eq!(
            stamped(
                "SIP/2.0/TCP h.example;branch=z9hG4bK1",
                "[2001:db8::7]:40000",
                true
            )
            .as_deref(),
            Some("SIP/2.0/TCP h.example;branch=z9hG4bK1;received=2001:db8::7;rport=40000")
        );
    }

    #[test]
    fn via_without_params_and_list_values() {
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP host:5062 , SIP/2.0/UDP second;branch=z9hG4bK2\r\n\
               f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let out = stamp_request(&m, "192.0.2.8:1000".parse().unwrap(), false)
            .unwrap()
            .unwrap();
        let m2 = Message::parse(out).unwrap();
        assert_eq!(
            m2.header(HeaderName::Via).unwrap(),
            b"SIP/2.0/UDP host:5062;received=192.0.2.8 , SIP/2.0/UDP second;branch=z9hG4bK2"
        );
        let vias: Vec<_> = m2.vias().map(|v| v.unwrap().host_str).collect();
        assert_eq!(vias, ["host", "second"]);
    }

    #[test]
    fn missing_or_bad_via() {
        let m = Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n"[..]).unwrap();
        assert_eq!(
            stamp_request(&m, "192.0.2.8:1000".parse().unwrap(), false),
            Err(ViaError::Missing)
        );
        let m = req("SIP/2.0/UDP ho_st;branch=z9hG4bK1");
        assert_eq!(
            stamp_request(&m, "192.0.2.8:1000".parse().unwrap(), false),
            Err(ViaError::Malformed)
        );
    }

    #[test]
    fn transport_rewrite() {
        let m = req("SIP/2.0/udp h;branch=z9hG4bK1");
        let out = set_top_via_transport(&m, "TCP").unwrap().unwrap();
        let m2 = Message::parse(out).unwrap();
        assert_eq!(
            m2.header(HeaderName::Via).unwrap(),
            b"SIP/2.0/TCP h;branch=z9hG4bK1"
        );
        assert_eq!(set_top_via_transport(&m2, "tcp").unwrap(), None);
    }

    fn resp(via: &str) -> Message {
        Message::parse(format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
        .unwrap()
    }

    fn target(via: &str) -> Result<(Protocol, String), RouteError> {
        let over = if via.contains("/TCP") {
            Protocol::Tcp
        } else {
            Protocol::Udp
        };
        target_over(via, over)
    }

    fn target_over(via: &str, over: Protocol) -> Result<(Protocol, String), RouteError> {
        response_target(&resp(via), over).map(|t| (t.protocol, t.addr.to_string()))
    }

    #[test]
    fn response_routing() {
        use Protocol::*;
        assert_eq!(
            target("SIP/2.0/UDP h:5070;received=192.0.2.1;rport=9988;branch=z9hG4bK1"),
            Ok((Udp, "192.0.2.1:9988".into()))
        );
        assert_eq!(
            target("SIP/2.0/UDP h:5070;received=192.0.2.1;branch=z9hG4bK1"),
            Ok((Udp, "192.0.2.1:5070".into()))
        );
        assert_eq!(
            target("SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK1"),
            Ok((Udp, "192.0.2.3:5060".into()))
        );
        assert_eq!(
            target("SIP/2.0/TCP h:5072;received=2001:db8::1;rport=4000;branch=z9hG4bK1"),
            Ok((Tcp, "[2001:db8::1]:5072".into()))
        );
        assert_eq!(
            target("SIP/2.0/UDP h;maddr=239.1.1.1;received=192.0.2.1;branch=z9hG4bK1"),
            Ok((Udp, "192.0.2.1:5060".into()))
        );
        assert_eq!(
            target("SIP/2.0/UDP h.example;branch=z9hG4bK1"),
            Err(RouteError::NeedsResolution)
        );
    }

    #[test]
    fn the_arrival_transport_decides_not_the_via() {
        use Protocol::*;
        // RFC 4475 bext01: a Via naming TLS on a request that came over UDP.
        assert_eq!(
            target_over(
                "SIP/2.0/TLS 127.0.0.1:5061;received=192.0.2.9;rport=4000;branch=z9hG4bK1",
                Udp
            ),
            Ok((Udp, "192.0.2.9:4000".into()))
        );
        assert_eq!(
            target_over("SIP/2.0/SCTP 192.0.2.1;branch=z9hG4bK1", Udp),
            Ok((Udp, "192.0.2.1:5060".into()))
        );
        // A request switched from UDP to TCP by its sender, answered after the connection
        // closed: TCP to received and the sent-by port.
        assert_eq!(
            target_over(
                "SIP/2.0/UDP h:5072;received=192.0.2.1;rport=4000;branch=z9hG4bK1",
                Tcp
            ),
            Ok((Tcp, "192.0.2.1:5072".into()))
        );
    }
}
