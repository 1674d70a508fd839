//! Property tests: hostile input never panics, and generated valid SDPs
//! round-trip through parse and rewrite with exactly the intended changes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::tests::ALL;
use crate::*;

// ------------------------------------------------------------ no panics

/// Runs every public operation on whatever parses, so that a panic anywhere
/// downstream of the parser is caught too.
fn exercise(data: &[u8]) {
    let Ok(d) = parse(data) else { return };
    for a in d
        .attributes
        .iter()
        .chain(d.media.iter().flat_map(|m| &m.attributes))
    {
        let _ = a.typed();
    }
    for (i, m) in d.media.iter().enumerate() {
        let _ = (m.rtcp(), m.crypto().count(), m.rtpmaps().count());
        let _ = (m.effective_connection(&d), d.media_direction(i));
    }
    let _ = summary(&d);
    let relay = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut rw = Rewriter::new(&d);
    assert_eq!(rw.finish(), data);
    rw.set_origin_address(relay)
        .set_session_connection(relay)
        .remove_attributes_everywhere("crypto");
    let _ = rw.bump_origin_version();
    for i in 0..d.media.len() {
        rw.set_media_port(i, 1).unwrap();
        rw.set_media_connection(i, relay).unwrap();
        rw.set_rtcp(i, 2, Some(relay)).unwrap();
        rw.add_media_attribute(i, "rtcp-mux", None).unwrap();
    }
    rw.add_session_attribute("x", Some("y")).unwrap();
    let out = rw.finish();
    // A rewrite of valid SDP is valid SDP (limits relaxed: we added lines).
    let relaxed = SdpLimits {
        max_size: usize::MAX,
        max_media: usize::MAX,
        max_attributes: usize::MAX,
        max_line_len: usize::MAX,
    };
    let e = parse_with_limits(&out, &relaxed).unwrap_or_else(|err| {
        panic!(
            "rewrite broke SDP: {err}\n{}",
            String::from_utf8_lossy(&out)
        )
    });
    for m in &e.media {
        assert_eq!(m.port, 1);
        assert_eq!(m.effective_connection(&e).map(|c| c.address), Some("::1"));
        assert_eq!(m.crypto().count(), 0);
    }
}

/// Lines built from SDP vocabulary, mostly well-shaped, so the fuzzing gets
/// past the line parser and into attribute decoding and rewriting instead of
/// failing on the first byte.
fn sdpish_line() -> impl Strategy<Value = Vec<u8>> {
    const WORDS: &[&str] = &[
        "IN",
        "IP4",
        "IP6",
        "0",
        "1",
        "9",
        "65535",
        "65536",
        "-",
        "audio",
        "RTP/AVP",
        "1.2.3.4",
        "::1",
        "224.0.0.1/127/3",
        "ff15::1/2",
        "a/b",
        "PCMU/8000",
        "opus/48000/2",
        "AES_CM_128_HMAC_SHA1_80",
        "inline:QUJD|2^20|1:4",
        "inline:QUJD|2^99",
        "UDP",
        "2130706431",
        "typ",
        "host",
        "raddr",
        "rport",
        "BUNDLE",
        "cname:x",
        "a=b;c",
        ":",
        "",
        "\u{e9}",
        "/",
        "4294967296",
    ];
    const ATTRS: &[&str] = &[
        "rtpmap",
        "fmtp",
        "ptime",
        "maxptime",
        "sendrecv",
        "sendonly",
        "recvonly",
        "inactive",
        "rtcp",
        "rtcp-mux",
        "crypto",
        "candidate",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "end-of-candidates",
        "mid",
        "ssrc",
        "group",
        "setup",
        "fingerprint",
        "x",
    ];
    let words = || vec(prop::sample::select(WORDS), 0..10).prop_map(|w| w.join(" "));
    let attr =
        (prop::sample::select(ATTRS), prop::option::of(words())).prop_map(|(n, v)| match v {
            Some(v) => format!("a={n}:{v}"),
            None => format!("a={n}"),
        });
    let media = (
        prop::sample::select(&["0", "9", "65535", "1/2", "1/0", "65536", "x"][..]),
        words(),
    )
        .prop_map(|(p, w)| format!("m=audio {p} RTP/AVP {w}"));
    let conn = (
        prop::sample::select(&["IP4", "IP6", "X"][..]),
        prop::sample::select(WORDS),
    )
        .prop_map(|(t, w)| format!("c=IN {t} {w}"));
    let other = (
        prop::sample::select(&['b', 'k', 'i', 'x', 't', 'o', 'z'][..]),
        words(),
    )
        .prop_map(|(l, w)| format!("{l}={w}"));
    let raw = vec(any::<u8>(), 0..12);
    prop_oneof![
        24 => attr.prop_map(String::into_bytes),
        3 => media.prop_map(String::into_bytes),
        3 => conn.prop_map(String::into_bytes),
        1 => other.prop_map(String::into_bytes),
        1 => raw,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..4096)) {
        exercise(&data);
    }

    #[test]
    fn sdpish_lines_never_panic(
        lines in vec(sdpish_line(), 0..25),
        header in prop::bool::weighted(0.9),
        crlf in any::<bool>(),
    ) {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut data = Vec::new();
        if header {
            data.extend_from_slice(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n");
        }
        for l in &lines {
            data.extend_from_slice(l);
            data.extend_from_slice(eol);
        }
        exercise(&data);
    }

    #[test]
    fn mutated_samples_never_panic(
        which in 0..ALL.len(),
        muts in vec((any::<Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut data = ALL[which].to_vec();
        for (at, byte, op) in muts {
            if data.is_empty() {
                break;
            }
            let i = at.index(data.len());
            match op {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                _ => {
                    data.remove(i);
                }
            }
        }
        exercise(&data);
    }
}

// ------------------------------------------------------------ round trip

/// Owned mirror of the content of a description, used both as the
/// generator's model and to compare parse results.
#[derive(Debug, Clone, PartialEq)]
struct OConn {
    addrtype: String,
    address: String,
    ttl: Option<u8>,
    count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
struct OAttr {
    name: String,
    value: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct OMedia {
    media: String,
    port: u16,
    count: Option<u16>,
    proto: String,
    formats: Vec<String>,
    other: Vec<(char, String)>,
    conns: Vec<OConn>,
    bws: Vec<(String, u64)>,
    attrs: Vec<OAttr>,
}

#[derive(Debug, Clone, PartialEq)]
struct OSdp {
    user: String,
    sess_id: String,
    sess_ver: String,
    o_addrtype: String,
    o_addr: String,
    name: String,
    other: Vec<(char, String)>,
    conn: Option<OConn>,
    bws: Vec<(String, u64)>,
    times: Vec<(u64, u64)>,
    attrs: Vec<OAttr>,
    media: Vec<OMedia>,
}

fn oconn(c: &Connection<'_>) -> OConn {
    assert_eq!(c.nettype, "IN");
    OConn {
        addrtype: c.addrtype.into(),
        address: c.address.into(),
        ttl: c.ttl,
        count: c.count,
    }
}

fn oattrs(a: &[Attribute<'_>]) -> Vec<OAttr> {
    a.iter()
        .map(|a| OAttr {
            name: a.name.into(),
            value: a.value.map(Into::into),
        })
        .collect()
}

fn oother(l: &[RawLine<'_>]) -> Vec<(char, String)> {
    l.iter().map(|l| (l.letter, l.value.into())).collect()
}

fn obws(b: &[Bandwidth<'_>]) -> Vec<(String, u64)> {
    b.iter().map(|b| (b.bwtype.into(), b.bandwidth)).collect()
}

fn to_owned(d: &SessionDescription<'_>) -> OSdp {
    OSdp {
        user: d.origin.username.into(),
        sess_id: d.origin.sess_id.into(),
        sess_ver: d.origin.sess_version.into(),
        o_addrtype: d.origin.addrtype.into(),
        o_addr: d.origin.address.into(),
        name: d.session_name.into(),
        other: oother(&d.other_lines),
        conn: d.connection.as_ref().map(oconn),
        bws: obws(&d.bandwidths),
        times: d.times.iter().map(|t| (t.start, t.stop)).collect(),
        attrs: oattrs(&d.attributes),
        media: d
            .media
            .iter()
            .map(|m| OMedia {
                media: m.media.into(),
                port: m.port,
                count: m.port_count,
                proto: m.proto.into(),
                formats: m.formats.iter().map(|f| (*f).into()).collect(),
                other: oother(&m.other_lines),
                conns: m.connection.iter().map(oconn).collect(),
                bws: obws(&m.bandwidths),
                attrs: oattrs(&m.attributes),
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
struct Style {
    crlf: bool,
    final_newline: bool,
    trailing_blank: bool,
}

fn render_conn(c: &OConn) -> String {
    let mut s = format!("c=IN {} {}", c.addrtype, c.address);
    if let Some(t) = c.ttl {
        s.push_str(&format!("/{t}"));
    }
    if let Some(n) = c.count {
        s.push_str(&format!("/{n}"));
    }
    s
}

fn render_attr(a: &OAttr) -> String {
    match &a.value {
        Some(v) => format!("a={}:{v}", a.name),
        None => format!("a={}", a.name),
    }
}

fn render(m: &OSdp, st: &Style) -> Vec<u8> {
    let mut lines = vec![
        "v=0".to_owned(),
        format!(
            "o={} {} {} IN {} {}",
            m.user, m.sess_id, m.sess_ver, m.o_addrtype, m.o_addr
        ),
        format!("s={}", m.name),
    ];
    lines.extend(m.other.iter().map(|(l, v)| format!("{l}={v}")));
    lines.extend(m.conn.iter().map(render_conn));
    lines.extend(m.bws.iter().map(|(t, b)| format!("b={t}:{b}")));
    lines.extend(m.times.iter().map(|(a, b)| format!("t={a} {b}")));
    lines.extend(m.attrs.iter().map(render_attr));
    for md in &m.media {
        let port = match md.count {
            Some(n) => format!("{}/{n}", md.port),
            None => md.port.to_string(),
        };
        let mut ml = format!("m={} {port} {}", md.media, md.proto);
        for f in &md.formats {
            ml.push(' ');
            ml.push_str(f);
        }
        lines.push(ml);
        lines.extend(md.other.iter().map(|(l, v)| format!("{l}={v}")));
        lines.extend(md.conns.iter().map(render_conn));
        lines.extend(md.bws.iter().map(|(t, b)| format!("b={t}:{b}")));
        lines.extend(md.attrs.iter().map(render_attr));
    }
    let eol = if st.crlf { "\r\n" } else { "\n" };
    let mut out = lines.join(eol);
    if st.final_newline || st.trailing_blank {
        out.push_str(eol);
    }
    if st.trailing_blank {
        out.push_str(eol);
    }
    out.into_bytes()
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._+-]{1,10}"
}

/// Free text for values: printable, may contain spaces and non-ASCII, never
/// CR, LF or NUL.
fn text() -> impl Strategy<Value = String> {
    "[ -~\u{e0}-\u{ff}]{0,16}"
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
    ]
}

fn conn() -> impl Strategy<Value = OConn> {
    (ip(), any::<Option<u8>>(), any::<Option<u32>>()).prop_map(|(ip, ttl, count)| match ip {
        IpAddr::V4(_) => OConn {
            addrtype: "IP4".into(),
            address: ip.to_string(),
            // An IP4 count needs a ttl before it.
            count: ttl.and(count),
            ttl,
        },
        IpAddr::V6(_) => OConn {
            addrtype: "IP6".into(),
            address: ip.to_string(),
            ttl: None,
            count,
        },
    })
}

/// Attribute names are drawn mostly from a small pool so that removals and
/// the rtcp logic hit existing lines often.
const NAMES: &[&str] = &[
    "rtpmap",
    "crypto",
    "candidate",
    "rtcp",
    "sendonly",
    "rtcp-mux",
    "mid",
    "fmtp",
];

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(String::from),
        1 => "[a-z][a-z0-9-]{0,10}",
    ]
}

fn attr() -> impl Strategy<Value = OAttr> {
    (attr_name(), prop::option::of(text())).prop_map(|(name, value)| OAttr { name, value })
}

fn other_line(letters: &'static [char]) -> impl Strategy<Value = (char, String)> {
    (prop::sample::select(letters), text())
}

fn bw() -> impl Strategy<Value = (String, u64)> {
    ("[A-Z][A-Z-]{0,5}", any::<u64>())
}

fn media() -> impl Strategy<Value = OMedia> {
    (
        prop::sample::select(&["audio", "video", "application", "text", "image"][..]),
        any::<u16>(),
        any::<Option<u16>>(),
        prop::sample::select(&["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udptl"][..]),
        vec("[0-9]{1,3}", 0..5),
        vec(other_line(&['i', 'k', 'x']), 0..2),
        vec(conn(), 0..2),
        vec(bw(), 0..2),
        vec(attr(), 0..8),
    )
        .prop_map(
            |(media, port, count, proto, formats, other, conns, bws, attrs)| OMedia {
                media: media.into(),
                port,
                count,
                proto: proto.into(),
                formats,
                other,
                conns,
                bws,
                attrs,
            },
        )
}

fn sdp() -> impl Strategy<Value = OSdp> {
    (
        (token(), any::<u64>(), 0..u64::MAX, ip(), text()),
        vec(other_line(&['i', 'u', 'e', 'p', 'k', 'z', 'r', 'x']), 0..3),
        prop::option::of(conn()),
        vec(bw(), 0..2),
        vec((any::<u64>(), any::<u64>()), 0..2),
        vec(attr(), 0..5),
        vec(media(), 0..5),
    )
        .prop_map(
            |((user, id, ver, oip, name), other, conn, bws, times, attrs, media)| OSdp {
                user,
                sess_id: id.to_string(),
                sess_ver: ver.to_string(),
                o_addrtype: if oip.is_ipv4() { "IP4" } else { "IP6" }.into(),
                o_addr: oip.to_string(),
                name,
                other,
                conn,
                bws,
                times,
                attrs,
                media,
            },
        )
}

#[derive(Debug, Clone)]
enum RtcpOp {
    Set(u16, Option<IpAddr>),
    Remove,
}

#[derive(Debug, Clone)]
struct MediaOps {
    port: Option<u16>,
    conn: Option<IpAddr>,
    rtcp: Option<RtcpOp>,
    remove: Vec<String>,
    add: Vec<OAttr>,
}

#[derive(Debug, Clone)]
struct Ops {
    origin: Option<IpAddr>,
    bump: bool,
    conn: Option<IpAddr>,
    remove: Vec<String>,
    add: Vec<OAttr>,
    media: Vec<MediaOps>,
}

/// Attributes to add: values must not contain CR/LF/NUL, names no ':'.
fn add_attr() -> impl Strategy<Value = OAttr> {
    ("[a-z][a-z0-9-]{0,10}", prop::option::of("[!-~][ -~]{0,12}"))
        .prop_map(|(name, value)| OAttr { name, value })
}

fn ops() -> impl Strategy<Value = Ops> {
    let rtcp = prop_oneof![
        (any::<u16>(), prop::option::of(ip())).prop_map(|(p, a)| RtcpOp::Set(p, a)),
        Just(RtcpOp::Remove),
    ];
    let media_ops = (
        any::<Option<u16>>(),
        prop::option::of(ip()),
        prop::option::of(rtcp),
        vec(prop::sample::select(NAMES).prop_map(String::from), 0..3),
        vec(add_attr(), 0..3),
    )
        .prop_map(|(port, conn, rtcp, remove, add)| MediaOps {
            port,
            conn,
            rtcp,
            remove,
            add,
        });
    (
        prop::option::of(ip()),
        any::<bool>(),
        prop::option::of(ip()),
        vec(prop::sample::select(NAMES).prop_map(String::from), 0..2),
        vec(add_attr(), 0..3),
        vec(media_ops, 0..5),
    )
        .prop_map(|(origin, bump, conn, remove, add, media)| Ops {
            origin,
            bump,
            conn,
            remove,
            add,
            media,
        })
}

fn addrtype(ip: &IpAddr) -> String {
    if ip.is_ipv4() { "IP4" } else { "IP6" }.into()
}

fn new_conn(ip: &IpAddr) -> OConn {
    OConn {
        addrtype: addrtype(ip),
        address: ip.to_string(),
        ttl: None,
        count: None,
    }
}

fn rtcp_attr(port: u16, addr: &Option<IpAddr>) -> OAttr {
    OAttr {
        name: "rtcp".into(),
        value: Some(match addr {
            Some(ip) => format!("{port} IN {} {ip}", addrtype(ip)),
            None => port.to_string(),
        }),
    }
}

/// Applies `ops` to the rewriter and, independently, to the owned model of
/// the original, producing the content we expect to parse back.
fn apply(rw: &mut Rewriter<'_, '_>, mut exp: OSdp, ops: &Ops) -> OSdp {
    if let Some(ip) = ops.origin {
        rw.set_origin_address(ip);
        exp.o_addrtype = addrtype(&ip);
        exp.o_addr = ip.to_string();
    }
    if ops.bump {
        rw.bump_origin_version().unwrap();
        let v: u64 = exp.sess_ver.parse().unwrap();
        exp.sess_ver = (v + 1).to_string();
    }
    if let Some(ip) = ops.conn {
        rw.set_session_connection(ip);
        exp.conn = Some(new_conn(&ip));
    }
    for n in &ops.remove {
        rw.remove_session_attributes(n);
        exp.attrs.retain(|a| &a.name != n);
    }
    for a in &ops.add {
        rw.add_session_attribute(&a.name, a.value.as_deref())
            .unwrap();
        exp.attrs.push(a.clone());
    }
    for (i, (mo, em)) in ops.media.iter().zip(exp.media.iter_mut()).enumerate() {
        if let Some(p) = mo.port {
            rw.set_media_port(i, p).unwrap();
            em.port = p;
        }
        if let Some(ip) = mo.conn {
            rw.set_media_connection(i, ip).unwrap();
            if em.conns.is_empty() {
                em.conns.push(new_conn(&ip));
            } else {
                for c in &mut em.conns {
                    *c = new_conn(&ip);
                }
            }
        }
        for n in &mo.remove {
            rw.remove_media_attributes(i, n).unwrap();
            em.attrs.retain(|a| &a.name != n);
        }
        match &mo.rtcp {
            Some(RtcpOp::Set(port, addr)) => {
                rw.set_rtcp(i, *port, *addr).unwrap();
                let mut seen = false;
                em.attrs.retain_mut(|a| {
                    if a.name != "rtcp" {
                        return true;
                    }
                    if seen {
                        return false;
                    }
                    seen = true;
                    *a = rtcp_attr(*port, addr);
                    true
                });
                if !seen {
                    em.attrs.push(rtcp_attr(*port, addr));
                }
            }
            Some(RtcpOp::Remove) => {
                rw.remove_rtcp(i).unwrap();
                em.attrs.retain(|a| a.name != "rtcp");
            }
            None => {}
        }
        for a in &mo.add {
            rw.add_media_attribute(i, &a.name, a.value.as_deref())
                .unwrap();
            em.attrs.push(a.clone());
        }
    }
    exp
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(crlf, final_newline, trailing_blank)| Style {
            crlf,
            final_newline,
            trailing_blank,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_sdp_parses_to_its_model_and_round_trips(model in sdp(), st in style()) {
        let bytes = render(&model, &st);
        let d = parse(&bytes).unwrap();
        prop_assert_eq!(&to_owned(&d), &model);
        prop_assert_eq!(Rewriter::new(&d).finish(), bytes);
    }

    #[test]
    fn generated_sdp_edits_apply_exactly(model in sdp(), st in style(), ops in ops()) {
        let bytes = render(&model, &st);
        let d = parse(&bytes).unwrap();
        let mut rw = Rewriter::new(&d);
        let expected = apply(&mut rw, model, &ops);
        let out = rw.finish();
        let e = parse(&out).unwrap_or_else(|err| {
            panic!("{err}\n{}", String::from_utf8_lossy(&out))
        });
        prop_assert_eq!(to_owned(&e), expected);
        // The style of the original is kept.
        prop_assert_eq!(e.line_ending(), d.line_ending());
        // Inserted lines use the original's line ending.
        let crs = out.iter().filter(|&&b| b == b'\r').count();
        let lfs = out.iter().filter(|&&b| b == b'\n').count();
        prop_assert_eq!(crs, if st.crlf { lfs } else { 0 });
    }
}
