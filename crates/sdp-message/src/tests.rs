//! Parser and rewriter tests on hand-written and real-world-shaped SDP.

use std::net::IpAddr;

use crate::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn err(input: &[u8]) -> SdpError {
    parse(input).expect_err("input should be rejected")
}

fn kind(input: &[u8]) -> SdpErrorKind {
    err(input).kind
}

/// Typical baresip audio offer (LF line endings are what some builds emit;
/// this one uses CRLF).
pub(crate) const BARESIP: &[u8] = b"v=0\r\n\
o=- 1766143213 1766143213 IN IP4 192.168.1.100\r\n\
s=-\r\n\
c=IN IP4 192.168.1.100\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 96 9 0 8 101\r\n\
b=AS:128\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n";

/// Linphone-style SRTP offer with ICE candidates and a session-level ICE
/// ufrag/pwd.
pub(crate) const LINPHONE: &[u8] = b"v=0\r\n\
o=alice 2207 1559 IN IP4 192.168.0.12\r\n\
s=Talk\r\n\
c=IN IP4 192.168.0.12\r\n\
t=0 0\r\n\
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b\r\n\
a=ice-ufrag:0a1aaa1b\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/SAVP 96 97 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:c3BhcmtsaW5nIHRvd2VyIGluIHRoZSBzdW1tZXIg|2^31|1:1\r\n\
a=rtcp:7079\r\n\
a=candidate:1 1 UDP 2130706303 192.168.0.12 7078 typ host\r\n\
a=candidate:1 2 UDP 2130706302 192.168.0.12 7079 typ host\r\n\
a=candidate:2 1 UDP 1694498687 203.0.113.50 7078 typ srflx raddr 192.168.0.12 rport 7078\r\n\
a=candidate:2 2 UDP 1694498686 203.0.113.50 7079 typ srflx raddr 192.168.0.12 rport 7079\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// Browser-style BUNDLE offer: no session c=, rtcp-mux, DTLS, trickle ICE.
pub(crate) const WEBRTC: &[u8] = b"v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:842163049 1 udp 1677729535 198.51.100.7 54321 typ srflx raddr 10.0.0.2 rport 54321 generation 0 network-cost 999\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:stream1 track1\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001 cname:x7xk2t\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=ssrc-group:FID 2002 2003\r\n\
a=end-of-candidates\r\n";

/// Re-INVITE putting the call on hold (RFC 3264 old-style 0.0.0.0 plus
/// sendonly), with LF line endings and no final newline.
pub(crate) const HOLD: &[u8] = b"v=0\n\
o=- 100 101 IN IP4 10.1.1.1\n\
s=-\n\
c=IN IP4 0.0.0.0\n\
t=0 0\n\
m=audio 4000 RTP/AVP 0 101\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:101 telephone-event/8000\n\
a=sendonly";

/// IPv6 offer shaped like the RFC 8866 example, with every session line type.
pub(crate) const IPV6: &[u8] = b"v=0\r\n\
o=jdoe 3724394400 3724394405 IN IP6 2001:db8::1\r\n\
s=Call to John Smith\r\n\
i=SDP Offer #1\r\n\
u=http://www.jdoe.example.com/home.html\r\n\
e=Jane Doe <jane@jdoe.example.com>\r\n\
p=+1 617 555-6011\r\n\
c=IN IP6 2001:db8::1\r\n\
b=CT:1000\r\n\
t=3724394400 3724398000\r\n\
r=604800 3600 0 90000\r\n\
z=2882844526 -1h 2898848070 0\r\n\
k=prompt\r\n\
a=recvonly\r\n\
m=audio 49170 RTP/AVP 0\r\n\
i=voice\r\n\
m=video 51372/2 RTP/AVP 99\r\n\
c=IN IP6 2001:db8::2\r\n\
b=AS:512\r\n\
k=clear:secret\r\n\
a=rtpmap:99 h263-1998/90000\r\n\
x=unknown line type\r\n\
\r\n";

pub(crate) const ALL: [&[u8]; 5] = [BARESIP, LINPHONE, WEBRTC, HOLD, IPV6];

// ---------------------------------------------------------------- parsing

#[test]
fn baresip_offer() {
    let d = parse(BARESIP).unwrap();
    assert_eq!(d.version, 0);
    assert_eq!(d.origin.username, "-");
    assert_eq!(d.origin.sess_id_u64(), Some(1766143213));
    assert_eq!(d.origin.sess_version_u64(), Some(1766143213));
    assert_eq!(d.origin.ip(), Some(ip("192.168.1.100")));
    assert_eq!(d.session_name, "-");
    let c = d.connection.as_ref().unwrap();
    assert_eq!(
        (c.nettype, c.addrtype, c.address),
        ("IN", "IP4", "192.168.1.100")
    );
    assert_eq!((c.ttl, c.count), (None, None));
    assert_eq!(d.times, vec![Timing { start: 0, stop: 0 }]);
    assert_eq!(d.line_ending(), LineEnding::CrLf);
    assert_eq!(d.media.len(), 1);
    let m = &d.media[0];
    assert_eq!(
        (m.media, m.port, m.port_count, m.proto),
        ("audio", 10000, None, "RTP/AVP")
    );
    assert_eq!(m.formats, vec!["96", "9", "0", "8", "101"]);
    assert_eq!(
        m.bandwidths,
        vec![Bandwidth {
            bwtype: "AS",
            bandwidth: 128
        }]
    );
    assert_eq!(m.attributes.len(), 11);
    let maps: Vec<_> = m.rtpmaps().map(|r| r.unwrap()).collect();
    assert_eq!(maps.len(), 5);
    assert_eq!(maps[0].encoding, "opus");
    assert_eq!(m.rtpmap_for(101).unwrap().encoding, "telephone-event");
    assert_eq!(m.rtpmap_for(55), None);
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    assert!(!m.rtcp_mux());
    assert!(m.rtcp().is_none());
    assert_eq!(m.effective_connection(&d).unwrap().address, "192.168.1.100");
    let typed: Vec<_> = m.attributes.iter().map(|a| a.typed().unwrap()).collect();
    assert!(typed.contains(&TypedAttr::Ptime(20)));
    assert!(typed.contains(&TypedAttr::Other)); // a=label, a=rtcp-rsize
}

#[test]
fn linphone_offer_with_ice_and_srtp() {
    let d = parse(LINPHONE).unwrap();
    assert_eq!(d.origin.username, "alice");
    assert_eq!(d.session_name, "Talk");
    assert_eq!(d.attributes.len(), 4);
    assert_eq!(
        d.attributes[0].typed().unwrap(),
        TypedAttr::IcePwd("31ec21eb38b2ec6d36e8dc7b")
    );
    assert_eq!(d.attributes[2].name, "rtcp-xr");
    assert_eq!(
        d.attributes[2].value,
        Some("rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics")
    );
    let m = &d.media[0];
    assert_eq!(m.proto, "RTP/SAVP");
    let cryptos: Vec<_> = m.crypto().map(|c| c.unwrap()).collect();
    assert_eq!(cryptos.len(), 2);
    assert_eq!(cryptos[0].tag, 1);
    assert_eq!(cryptos[1].suite, "AES_CM_128_HMAC_SHA1_32");
    assert_eq!(
        cryptos[1].key_params[0].lifetime,
        Some(Lifetime::PowerOfTwo(31))
    );
    assert_eq!(
        cryptos[1].key_params[0].mki,
        Some(Mki {
            value: "1",
            length: 1
        })
    );
    let rtcp = m.rtcp().unwrap().unwrap();
    assert_eq!((rtcp.port, rtcp.address), (7079, None));
    assert_eq!(m.candidate_count(), 4);
    let cands: Vec<_> = m
        .attributes_named("candidate")
        .map(|a| match a.typed().unwrap() {
            TypedAttr::Candidate(c) => c,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(cands[3].component, 2);
    assert_eq!(cands[3].kind, CandidateType::ServerReflexive);
    assert_eq!(cands[3].raddr, Some("192.168.0.12"));
    assert_eq!(cands[3].rport, Some(7079));
    assert_eq!(d.media_direction(0), Some(Direction::SendRecv));
    assert_eq!(d.media_direction(1), None);
}

#[test]
fn webrtc_offer_with_bundle() {
    let d = parse(WEBRTC).unwrap();
    assert!(d.connection.is_none());
    assert_eq!(
        d.attributes[0].typed().unwrap(),
        TypedAttr::Group(Group {
            semantics: "BUNDLE",
            mids: vec!["0", "1"]
        })
    );
    assert_eq!(d.attributes[2].name, "msid-semantic");
    assert_eq!(d.attributes[2].value, Some(" WMS stream1"));
    assert_eq!(d.media.len(), 2);
    for (i, m) in d.media.iter().enumerate() {
        assert_eq!(m.port, 9);
        assert_eq!(m.proto, "UDP/TLS/RTP/SAVPF");
        assert!(m.rtcp_mux());
        assert!(m.connection[0].is_unspecified());
        assert_eq!(m.effective_connection(&d).unwrap().address, "0.0.0.0");
        let r = m.rtcp().unwrap().unwrap();
        assert_eq!(r.address, Some("0.0.0.0"));
        assert_eq!(m.mid(), Some(if i == 0 { "0" } else { "1" }));
    }
    assert_eq!(d.media_direction(0), Some(Direction::SendRecv));
    assert_eq!(d.media_direction(1), Some(Direction::RecvOnly));
    let m = &d.media[0];
    let typed: Vec<_> = m.attributes.iter().map(|a| a.typed().unwrap()).collect();
    assert!(typed.contains(&TypedAttr::IceOptions(vec!["trickle"])));
    assert!(typed.contains(&TypedAttr::Setup("actpass")));
    assert!(typed.contains(&TypedAttr::Mid("0")));
    assert!(typed.contains(&TypedAttr::Ssrc(Ssrc {
        id: 1001,
        attribute: "cname",
        value: Some("x7xk2t")
    })));
    assert!(typed
        .iter()
        .any(|t| matches!(t, TypedAttr::Fingerprint(f) if f.starts_with("sha-256 D2:FA"))));
    let cand = match typed.iter().find(|t| matches!(t, TypedAttr::Candidate(_))) {
        Some(TypedAttr::Candidate(c)) => c.clone(),
        _ => panic!(),
    };
    assert_eq!(
        cand.extensions,
        vec![("generation", "0"), ("network-cost", "999")]
    );
    assert_eq!(
        d.media[1].attributes.last().unwrap().typed().unwrap(),
        TypedAttr::EndOfCandidates
    );
}

#[test]
fn hold_offer_lf_without_final_newline() {
    let d = parse(HOLD).unwrap();
    assert_eq!(d.line_ending(), LineEnding::Lf);
    assert!(d.connection.as_ref().unwrap().is_unspecified());
    assert_eq!(d.media[0].direction(), Some(Direction::SendOnly));
    assert_eq!(d.media_direction(0), Some(Direction::SendOnly));
    assert_eq!(d.media[0].attributes.last().unwrap().name, "sendonly");
}

#[test]
fn ipv6_offer_with_every_line_type() {
    let d = parse(IPV6).unwrap();
    assert_eq!(d.origin.addrtype, "IP6");
    assert_eq!(d.origin.ip(), Some(ip("2001:db8::1")));
    assert_eq!(d.origin.sess_version, "3724394405");
    assert_eq!(d.session_name, "Call to John Smith");
    assert_eq!(d.information(), Some("SDP Offer #1"));
    let letters: String = d.other_lines.iter().map(|l| l.letter).collect();
    assert_eq!(letters, "iueprzk");
    assert_eq!(d.other_lines[3].value, "+1 617 555-6011");
    assert_eq!(d.bandwidths[0].bwtype, "CT");
    assert_eq!(
        d.times,
        vec![Timing {
            start: 3724394400,
            stop: 3724398000
        }]
    );
    assert_eq!(d.connection.as_ref().unwrap().ip(), Some(ip("2001:db8::1")));
    assert_eq!(d.direction(), Some(Direction::RecvOnly));
    assert_eq!(d.media_direction(0), Some(Direction::RecvOnly));
    assert_eq!(d.media[0].information(), Some("voice"));
    assert!(d.media[0].attributes.is_empty());
    let v = &d.media[1];
    assert_eq!((v.port, v.port_count), (51372, Some(2)));
    assert_eq!(v.connection[0].address, "2001:db8::2");
    assert_eq!(v.effective_connection(&d).unwrap().address, "2001:db8::2");
    assert_eq!(
        d.media[0].effective_connection(&d).unwrap().address,
        "2001:db8::1"
    );
    let letters: String = v.other_lines.iter().map(|l| l.letter).collect();
    assert_eq!(letters, "kx");
    assert_eq!(v.other_lines[1].value, "unknown line type");
}

#[test]
fn multicast_connection_suffixes() {
    let base = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n";
    let c = |line: &str| -> Result<(Option<u8>, Option<u32>, String), SdpErrorKind> {
        let s = format!("{base}{line}\r\n");
        parse(s.as_bytes())
            .map(|d| {
                let c = d.connection.unwrap();
                (c.ttl, c.count, c.address.to_owned())
            })
            .map_err(|e| e.kind)
    };
    assert_eq!(
        c("c=IN IP4 224.2.1.1/127"),
        Ok((Some(127), None, "224.2.1.1".into()))
    );
    assert_eq!(
        c("c=IN IP4 224.2.1.1/127/3"),
        Ok((Some(127), Some(3), "224.2.1.1".into()))
    );
    assert_eq!(
        c("c=IN IP6 ff15::101/3"),
        Ok((None, Some(3), "ff15::101".into()))
    );
    assert_eq!(c("c=IN X25 a/b/c"), Ok((None, None, "a/b/c".into())));
    assert_eq!(
        c("c=IN IP4 host.example.com"),
        Ok((None, None, "host.example.com".into()))
    );
    for bad in [
        "c=IN IP4 224.2.1.1/256",
        "c=IN IP4 224.2.1.1/1/2/3",
        "c=IN IP4 224.2.1.1/x",
        "c=IN IP4 224.2.1.1/",
        "c=IN IP6 ff15::1/1/2",
        "c=IN IP4 /1",
        "c=IN IP4",
        "c=IN IP4 1.2.3.4 extra",
        "c=",
    ] {
        assert_eq!(c(bad), Err(SdpErrorKind::BadConnection), "{bad}");
    }
}

#[test]
fn tolerant_line_endings_and_whitespace() {
    let lf = b"v=0\no=- 1 1 IN IP4 a\ns=x\nt=0 0\nm=audio 5 RTP/AVP 0 \n\n\n";
    let d = parse(lf).unwrap();
    assert_eq!(d.line_ending(), LineEnding::Lf);
    assert_eq!(d.media[0].formats, vec!["0"]);
    // A final CR with no LF is a truncated CRLF, not part of the line.
    let d = parse(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\na=foo:bar\r").unwrap();
    assert_eq!(d.attributes[0].value, Some("bar"));
    // Mixed endings are accepted line by line.
    assert!(parse(b"v=0\no=- 1 1 IN IP4 a\r\ns=\n").is_ok());
    // Empty session name and missing t= are tolerated.
    let d = parse(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=\r\n").unwrap();
    assert_eq!(d.session_name, "");
    assert!(d.times.is_empty());
    // Port 0 with no formats (seen on rejected streams).
    let d = parse(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=video 0 RTP/AVP\r\n").unwrap();
    assert!(d.media[0].formats.is_empty());
    assert!(d.media[0].is_disabled());
    // UTF-8 text is fine.
    let d = parse("v=0\r\no=- 1 1 IN IP4 a\r\ns=Grüße\r\n".as_bytes()).unwrap();
    assert_eq!(d.session_name, "Grüße");
    // Big session ids are kept as text.
    let d = parse(b"v=0\r\no=- 123456789012345678901234 1 IN IP4 a\r\ns=-\r\n").unwrap();
    assert_eq!(d.origin.sess_id_u64(), None);
}

#[test]
fn attribute_split() {
    let d = parse(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\na=foo\r\na=bar:\r\na=baz:a:b c\r\n").unwrap();
    let a: Vec<_> = d.attributes.iter().map(|a| (a.name, a.value)).collect();
    assert_eq!(
        a,
        vec![("foo", None), ("bar", Some("")), ("baz", Some("a:b c"))]
    );
    assert_eq!(d.attributes_named("bar").count(), 1);
    assert_eq!(d.attributes[1].offset(), 35);
}

#[test]
fn bandwidth_and_timing() {
    let base = "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n";
    let p = |l: &str| {
        parse(format!("{base}{l}\r\n").as_bytes())
            .map(|d| d.bandwidths.first().map(|b| b.bandwidth))
            .map_err(|e| e.kind)
    };
    assert_eq!(p("b=TIAS:64000"), Ok(Some(64000)));
    assert!(p("b=X-YZ:1").is_ok());
    for bad in ["b=AS", "b=AS:", "b=:5", "b=AS:x", "b=A S:5"] {
        assert_eq!(p(bad).unwrap_err(), SdpErrorKind::BadBandwidth, "{bad}");
    }
    for bad in ["t=0", "t=0 0 0", "t=a 0", "t="] {
        assert_eq!(p(bad).unwrap_err(), SdpErrorKind::BadTiming, "{bad}");
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn rejects_missing_or_bad_version() {
    assert_eq!(
        err(b""),
        SdpError {
            offset: 0,
            kind: SdpErrorKind::MissingVersion
        }
    );
    assert_eq!(kind(b"\r\n"), SdpErrorKind::MissingVersion);
    assert_eq!(
        kind(b"o=- 1 1 IN IP4 a\r\ns=-\r\n"),
        SdpErrorKind::MissingVersion
    );
    assert_eq!(kind(b"hello"), SdpErrorKind::MissingVersion);
    assert_eq!(kind(b"v=1\r\n"), SdpErrorKind::UnsupportedVersion);
    assert_eq!(
        kind(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nv=0\r\n"),
        SdpErrorKind::DuplicateVersion
    );
    let e = err(b"o=x");
    assert_eq!(e.to_string(), "error at byte 0: missing v= line");
}

#[test]
fn rejects_missing_and_duplicate_session_lines() {
    assert_eq!(kind(b"v=0\r\ns=-\r\n"), SdpErrorKind::MissingOrigin);
    assert_eq!(
        err(b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 1 RTP/AVP 0\r\n"),
        SdpError {
            offset: 23,
            kind: SdpErrorKind::MissingSessionName
        }
    );
    assert_eq!(
        kind(b"v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\ns=-\r\n"),
        SdpErrorKind::DuplicateOrigin
    );
    assert_eq!(
        kind(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\ns=-\r\n"),
        SdpErrorKind::DuplicateSessionName
    );
    assert_eq!(
        kind(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n"),
        SdpErrorKind::DuplicateConnection
    );
    for l in ["o=- 1 1 IN IP4 a", "s=x", "t=0 0"] {
        let s = format!("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n{l}\r\n");
        assert_eq!(kind(s.as_bytes()), SdpErrorKind::MisplacedLine, "{l}");
    }
}

#[test]
fn rejects_bad_origin() {
    for o in [
        "o=- 1 1 IN IP4",
        "o=- 1 1 IN IP4 a b",
        "o=- x 1 IN IP4 a",
        "o=- 1 -1 IN IP4 a",
        "o=",
    ] {
        let s = format!("v=0\r\n{o}\r\ns=-\r\n");
        assert_eq!(
            err(s.as_bytes()),
            SdpError {
                offset: 5,
                kind: SdpErrorKind::BadOrigin
            },
            "{o}"
        );
    }
}

#[test]
fn rejects_bad_media_lines_and_ports() {
    let base = "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n";
    let m = |l: &str| err(format!("{base}{l}\r\n").as_bytes());
    // Offsets point at the port token for port errors.
    assert_eq!(
        m("m=audio 65536 RTP/AVP 0"),
        SdpError {
            offset: 36,
            kind: SdpErrorKind::BadPort
        }
    );
    assert_eq!(m("m=audio abc RTP/AVP 0").kind, SdpErrorKind::BadPort);
    assert_eq!(m("m=audio -1 RTP/AVP 0").kind, SdpErrorKind::BadPort);
    assert_eq!(
        m("m=audio 99999999999999999999 RTP/AVP 0").kind,
        SdpErrorKind::BadPort
    );
    assert_eq!(m("m=audio 1/x RTP/AVP 0").kind, SdpErrorKind::BadPort);
    assert_eq!(m("m=audio 1/70000 RTP/AVP 0").kind, SdpErrorKind::BadPort);
    assert_eq!(m("m=audio 1/ RTP/AVP 0").kind, SdpErrorKind::BadPort);
    assert_eq!(
        m("m=audio 4000"),
        SdpError {
            offset: 28,
            kind: SdpErrorKind::BadMedia
        }
    );
    assert_eq!(m("m=audio").kind, SdpErrorKind::BadMedia);
    assert_eq!(m("m=").kind, SdpErrorKind::BadMedia);
    assert!(parse(format!("{base}m=audio 65535/2 RTP/AVP 0\r\n").as_bytes()).is_ok());
}

#[test]
fn rejects_bad_line_shapes() {
    let base = "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n";
    for l in ["a", "A=foo", "ab=c", "=x", " a=x", "1=x", "a:x", "\u{e9}=x"] {
        let s = format!("{base}{l}\r\n");
        assert_eq!(
            err(s.as_bytes()),
            SdpError {
                offset: 28,
                kind: SdpErrorKind::BadLineShape
            },
            "{l:?}"
        );
    }
    assert_eq!(
        kind(format!("{base}a=\r\n").as_bytes()),
        SdpErrorKind::BadAttribute
    );
    assert_eq!(
        kind(format!("{base}a=:x\r\n").as_bytes()),
        SdpErrorKind::BadAttribute
    );
}

#[test]
fn rejects_bad_characters() {
    let base = b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n".to_vec();
    let with = |tail: &[u8]| {
        let mut v = base.clone();
        v.extend_from_slice(tail);
        parse(&v).map(|_| ())
    };
    assert_eq!(
        with(b"a=x\0y\r\n"),
        Err(SdpError {
            offset: 31,
            kind: SdpErrorKind::InvalidCharacter
        })
    );
    assert_eq!(
        with(b"a=x\ry\r\n").unwrap_err().kind,
        SdpErrorKind::InvalidCharacter
    );
    assert_eq!(
        with(b"a=x\r\r\n").unwrap_err().kind,
        SdpErrorKind::InvalidCharacter
    );
    assert_eq!(
        with(b"a=ab\xff\r\n"),
        Err(SdpError {
            offset: 32,
            kind: SdpErrorKind::InvalidUtf8
        })
    );
    assert_eq!(
        with(b"a=\xc3\r\n").unwrap_err().kind,
        SdpErrorKind::InvalidUtf8
    );
    // An empty line is only allowed at the end.
    assert_eq!(
        with(b"\r\na=x\r\n"),
        Err(SdpError {
            offset: 28,
            kind: SdpErrorKind::EmptyLine
        })
    );
    assert_eq!(with(b"a=x\r\n\r\n\r\n"), Ok(()));
}

#[test]
fn enforces_limits() {
    let limits = SdpLimits::default();
    // Size: checked before anything else.
    let big = vec![b'a'; limits.max_size + 1];
    assert_eq!(
        err(&big),
        SdpError {
            offset: 65536,
            kind: SdpErrorKind::TooLarge
        }
    );
    // Line length.
    let long = format!("v=0\r\no=- 1 1 IN IP4 a\r\ns={}\r\n", "x".repeat(8 * 1024));
    assert_eq!(
        err(long.as_bytes()),
        SdpError {
            offset: 23,
            kind: SdpErrorKind::LineTooLong
        }
    );
    let ok = format!(
        "v=0\r\no=- 1 1 IN IP4 a\r\ns={}\r\n",
        "x".repeat(8 * 1024 - 2)
    );
    assert!(parse(ok.as_bytes()).is_ok());
    // Media count.
    let mut s = String::from("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n");
    for _ in 0..32 {
        s.push_str("m=audio 1 RTP/AVP 0\r\n");
    }
    assert!(parse(s.as_bytes()).is_ok());
    let at = s.len();
    s.push_str("m=audio 1 RTP/AVP 0\r\n");
    assert_eq!(
        err(s.as_bytes()),
        SdpError {
            offset: at,
            kind: SdpErrorKind::TooManyMedia
        }
    );
    // Attribute count spans session and media.
    let mut s = String::from("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n");
    for _ in 0..256 {
        s.push_str("a=x\r\n");
    }
    s.push_str("m=audio 1 RTP/AVP 0\r\n");
    for _ in 0..256 {
        s.push_str("a=y\r\n");
    }
    assert!(parse(s.as_bytes()).is_ok());
    s.push_str("a=z\r\n");
    assert_eq!(kind(s.as_bytes()), SdpErrorKind::TooManyAttributes);
    // Custom limits.
    let tight = SdpLimits {
        max_size: 100,
        max_media: 0,
        max_attributes: 0,
        max_line_len: 10,
    };
    assert_eq!(
        parse_with_limits(BARESIP, &tight).unwrap_err().kind,
        SdpErrorKind::TooLarge
    );
    let tiny = b"v=0\r\no=- 1 1 IN IP4 a\r\n";
    assert_eq!(
        parse_with_limits(tiny, &tight).unwrap_err(),
        SdpError {
            offset: 5,
            kind: SdpErrorKind::LineTooLong
        }
    );
    let small = SdpLimits {
        max_line_len: 100,
        ..tight
    };
    let m = b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n";
    assert_eq!(
        parse_with_limits(m, &small).unwrap_err().kind,
        SdpErrorKind::TooManyMedia
    );
    let a = b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\na=x\r\n";
    assert_eq!(
        parse_with_limits(a, &small).unwrap_err().kind,
        SdpErrorKind::TooManyAttributes
    );
}

#[test]
fn real_world_samples_parse_and_equal_themselves() {
    for s in ALL {
        let a = parse(s).unwrap();
        let b = parse(s).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.source(), s);
        // Every known attribute in the samples decodes.
        for at in a
            .attributes
            .iter()
            .chain(a.media.iter().flat_map(|m| &m.attributes))
        {
            at.typed().unwrap_or_else(|e| panic!("{}: {e}", at.name));
        }
    }
}

// ---------------------------------------------------------------- rewriting

fn rewrite(input: &[u8], f: impl FnOnce(&mut Rewriter<'_, '_>)) -> String {
    let d = parse(input).unwrap();
    let mut rw = Rewriter::new(&d);
    f(&mut rw);
    String::from_utf8(rw.finish()).unwrap()
}

#[test]
fn no_edits_is_byte_identical() {
    for s in ALL {
        let d = parse(s).unwrap();
        assert_eq!(Rewriter::new(&d).finish(), s);
    }
}

#[test]
fn set_session_connection_in_place() {
    let out = rewrite(BARESIP, |rw| {
        rw.set_session_connection(ip("2001:db8::7"));
    });
    let expected = String::from_utf8(BARESIP.to_vec())
        .unwrap()
        .replace("c=IN IP4 192.168.1.100", "c=IN IP6 2001:db8::7");
    assert_eq!(out, expected);
}

#[test]
fn set_session_connection_inserts_after_header_lines() {
    let out = rewrite(WEBRTC, |rw| {
        rw.set_session_connection(ip("203.0.113.1"));
    });
    assert!(out.starts_with(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n"
    ));
    let out = rewrite(
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\ni=info\r\nu=x\r\nt=0 0\r\n",
        |rw| {
            rw.set_session_connection(ip("10.0.0.1"));
        },
    );
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\ni=info\r\nu=x\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    );
}

#[test]
fn multicast_suffix_is_dropped_with_the_old_address() {
    let out = rewrite(
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4 224.2.1.1/127/3\r\n",
        |rw| {
            rw.set_session_connection(ip("192.0.2.9"));
        },
    );
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4 192.0.2.9\r\n"
    );
}

#[test]
fn set_media_connection_inserts_or_edits() {
    // Only a session-level c=: a media-level one is inserted after m=.
    let out = rewrite(BARESIP, |rw| {
        rw.set_media_connection(0, ip("198.51.100.4")).unwrap();
    });
    assert!(
        out.contains("m=audio 10000 RTP/AVP 96 9 0 8 101\r\nc=IN IP4 198.51.100.4\r\nb=AS:128\r\n")
    );
    assert!(out.contains("c=IN IP4 192.168.1.100\r\n"));
    let d = parse(out.as_bytes()).unwrap();
    assert_eq!(
        d.media[0].effective_connection(&d).unwrap().address,
        "198.51.100.4"
    );
    assert_eq!(d.connection.unwrap().address, "192.168.1.100");

    // After an i= line.
    let out = rewrite(IPV6, |rw| {
        rw.set_media_connection(0, ip("192.0.2.1")).unwrap();
        rw.set_media_connection(1, ip("::1")).unwrap();
    });
    assert!(out.contains("m=audio 49170 RTP/AVP 0\r\ni=voice\r\nc=IN IP4 192.0.2.1\r\nm=video"));
    assert!(out.contains("m=video 51372/2 RTP/AVP 99\r\nc=IN IP6 ::1\r\nb=AS:512"));
    let d = parse(out.as_bytes()).unwrap();
    assert_eq!(d.media[0].connection[0].address, "192.0.2.1");
    assert_eq!(d.media[1].connection.len(), 1);

    assert_eq!(
        Rewriter::new(&parse(BARESIP).unwrap())
            .set_media_connection(1, ip("::1"))
            .map(|_| ())
            .unwrap_err(),
        RewriteError::NoSuchMedia { index: 1, count: 1 }
    );
}

#[test]
fn set_all_connections() {
    for s in ALL {
        let out = rewrite(s, |rw| {
            rw.set_all_connections(ip("203.0.113.77"));
        });
        let d = parse(out.as_bytes()).unwrap();
        for m in &d.media {
            assert_eq!(m.effective_connection(&d).unwrap().address, "203.0.113.77");
        }
    }
    // WebRTC has c= in every section: no session-level c= is added.
    let out = rewrite(WEBRTC, |rw| {
        rw.set_all_connections(ip("203.0.113.77"));
    });
    assert!(parse(out.as_bytes()).unwrap().connection.is_none());
}

#[test]
fn set_media_port_keeps_count() {
    let out = rewrite(IPV6, |rw| {
        rw.set_media_port(1, 7)
            .unwrap()
            .set_media_port(0, 65535)
            .unwrap();
    });
    assert!(out.contains("m=video 7/2 RTP/AVP 99\r\n"));
    assert!(out.contains("m=audio 65535 RTP/AVP 0\r\n"));
    // Last call wins.
    let out = rewrite(HOLD, |rw| {
        rw.set_media_port(0, 1)
            .unwrap()
            .set_media_port(0, 2)
            .unwrap();
    });
    assert!(out.contains("m=audio 2 RTP/AVP 0 101\n"));
}

#[test]
fn rtcp_set_replace_append_and_remove() {
    // Replace (linphone has a=rtcp:7079).
    let out = rewrite(LINPHONE, |rw| {
        rw.set_rtcp(0, 40001, Some(ip("203.0.113.9"))).unwrap();
    });
    assert!(out.contains("\r\na=rtcp:40001 IN IP4 203.0.113.9\r\na=candidate:1 1 UDP"));
    // Append when absent, after the last line of the section.
    let out = rewrite(BARESIP, |rw| {
        rw.set_rtcp(0, 10001, None).unwrap();
    });
    assert!(out.ends_with("a=ptime:20\r\na=rtcp:10001\r\n"));
    // Remove.
    let out = rewrite(WEBRTC, |rw| {
        rw.remove_rtcp(1).unwrap();
    });
    let d = parse(out.as_bytes()).unwrap();
    assert!(d.media[1].rtcp().is_none());
    assert!(d.media[0].rtcp().is_some());
    // Duplicate a=rtcp lines collapse into one.
    let two =
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:2\r\na=x\r\na=rtcp:3\r\n";
    let out = rewrite(two, |rw| {
        rw.set_rtcp(0, 9, Some(ip("fe80::1"))).unwrap();
    });
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:9 IN IP6 fe80::1\r\na=x\r\n"
    );
    // Removing by name then setting gives exactly one new line at the end.
    let out = rewrite(two, |rw| {
        rw.remove_media_attributes(0, "rtcp").unwrap();
        rw.set_rtcp(0, 9, None).unwrap();
    });
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=x\r\na=rtcp:9\r\n"
    );
}

#[test]
fn remove_crypto_and_candidates_everywhere() {
    let before = parse(LINPHONE).unwrap();
    let out = rewrite(LINPHONE, |rw| {
        rw.remove_attributes_everywhere("crypto")
            .remove_attributes_everywhere("candidate")
            .remove_session_attributes("ice-pwd")
            .remove_session_attributes("ice-ufrag");
    });
    let after = parse(out.as_bytes()).unwrap();
    assert_eq!(after.media[0].crypto().count(), 0);
    assert_eq!(after.media[0].candidate_count(), 0);
    assert_eq!(after.attributes.len(), 2);
    let kept: Vec<_> = before.media[0]
        .attributes
        .iter()
        .filter(|a| a.name != "crypto" && a.name != "candidate")
        .cloned()
        .collect();
    assert_eq!(after.media[0].attributes, kept);
    assert!(!out.contains("inline:"));
}

#[test]
fn add_attributes_and_keep_missing_final_newline() {
    let out = rewrite(HOLD, |rw| {
        rw.add_media_attribute(0, "rtcp-mux", None).unwrap();
        rw.add_media_attribute(0, "label", Some("relay")).unwrap();
        rw.add_session_attribute("X-relayed", Some("1")).unwrap();
    });
    assert_eq!(
        out,
        "v=0\no=- 100 101 IN IP4 10.1.1.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\na=X-relayed:1\n\
m=audio 4000 RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n\
a=sendonly\na=rtcp-mux\na=label:relay"
    );
    // Adding where the last line of the section is being removed.
    let out = rewrite(HOLD, |rw| {
        rw.remove_media_attributes(0, "sendonly").unwrap();
        rw.add_media_attribute(0, "sendrecv", None).unwrap();
    });
    assert!(out.ends_with("a=rtpmap:101 telephone-event/8000\na=sendrecv\n"));
    assert_eq!(
        parse(out.as_bytes()).unwrap().media_direction(0),
        Some(Direction::SendRecv)
    );
    // Trailing blank lines stay after the inserted line.
    let out = rewrite(IPV6, |rw| {
        rw.add_media_attribute(1, "sendonly", None).unwrap();
    });
    assert!(out.ends_with("x=unknown line type\r\na=sendonly\r\n\r\n"));
    // Attribute text that would break the line structure is refused.
    let d = parse(HOLD).unwrap();
    let mut rw = Rewriter::new(&d);
    for (n, v) in [
        ("", None),
        ("a b", None),
        ("a:b", None),
        ("x\r\nm=evil", None),
        ("x", Some("1\r\nc=IN IP4 6.6.6.6")),
        ("x", Some("nul\0")),
    ] {
        assert!(matches!(
            rw.add_media_attribute(0, n, v),
            Err(RewriteError::InvalidAttribute)
        ));
    }
    assert!(rw.add_session_attribute("", None).is_err());
    assert_eq!(rw.finish(), HOLD);
}

#[test]
fn origin_address_and_version() {
    let out = rewrite(BARESIP, |rw| {
        rw.set_origin_address(ip("2001:db8::5"))
            .bump_origin_version()
            .unwrap();
    });
    assert!(out.contains("o=- 1766143213 1766143214 IN IP6 2001:db8::5\r\n"));
    // Bump is relative to the original, so idempotent.
    let out = rewrite(HOLD, |rw| {
        rw.bump_origin_version()
            .unwrap()
            .bump_origin_version()
            .unwrap();
    });
    assert!(out.contains("o=- 100 102 IN IP4"));
    let out = rewrite(HOLD, |rw| {
        rw.set_origin_version(7);
    });
    assert!(out.contains("o=- 100 7 IN IP4"));
    for v in ["18446744073709551615", "99999999999999999999"] {
        let s = format!("v=0\r\no=- 1 {v} IN IP4 a\r\ns=-\r\n");
        let d = parse(s.as_bytes()).unwrap();
        assert!(matches!(
            Rewriter::new(&d).bump_origin_version(),
            Err(RewriteError::VersionOverflow)
        ));
    }
}

#[test]
fn relay_style_full_rewrite() {
    // What the media relay does to a WebRTC offer going to a plain RTP leg.
    let d = parse(WEBRTC).unwrap();
    let mut rw = Rewriter::new(&d);
    rw.set_origin_address(ip("198.51.100.1"))
        .bump_origin_version()
        .unwrap()
        .set_session_connection(ip("198.51.100.1"))
        .remove_attributes_everywhere("candidate")
        .remove_attributes_everywhere("end-of-candidates");
    for i in 0..d.media.len() {
        rw.set_media_port(i, 30000 + 2 * i as u16)
            .unwrap()
            .set_media_connection(i, ip("198.51.100.1"))
            .unwrap()
            .set_rtcp(i, 30001 + 2 * i as u16, None)
            .unwrap();
    }
    let out = rw.finish();
    let e = parse(&out).unwrap();
    assert_eq!(e.origin.address, "198.51.100.1");
    assert_eq!(e.origin.sess_version, "3");
    assert_eq!(e.connection.as_ref().unwrap().address, "198.51.100.1");
    for (i, m) in e.media.iter().enumerate() {
        assert_eq!(m.port, 30000 + 2 * i as u16);
        assert_eq!(m.connection[0].address, "198.51.100.1");
        assert_eq!(m.rtcp().unwrap().unwrap().port, 30001 + 2 * i as u16);
        assert_eq!(m.candidate_count(), 0);
    }
    // Everything we did not touch is unchanged.
    assert_eq!(e.attributes, d.attributes);
    assert_eq!(e.media[0].formats, d.media[0].formats);
    assert_eq!(e.media[1].attributes.len(), d.media[1].attributes.len() - 1);
    let mut out2 = b"prefix".to_vec();
    rw.write_into(&mut out2);
    assert_eq!(&out2[6..], &out[..]);
}

#[test]
fn summary_of_real_world_samples() {
    let s = summary(&parse(LINPHONE).unwrap());
    assert_eq!(s.media[0].crypto_suites.len(), 2);
    assert_eq!(s.media[0].candidates, 4);
    let s = summary(&parse(WEBRTC).unwrap());
    assert!(s.connection.is_none());
    assert_eq!(s.media[1].direction, Direction::RecvOnly);
    assert!(s.media[1].rtcp_mux);
    let s = summary(&parse(IPV6).unwrap());
    assert_eq!(s.media[1].connection.as_deref(), Some("2001:db8::2"));
    assert_eq!(s.media[0].connection.as_deref(), Some("2001:db8::1"));
}
