//! SDES `a=crypto` lines (RFC 4568): `sdp_message` decodes the syntax, `media_srtp::sdes` the
//! meaning.
//!
//! Input: up to 4 attribute values separated by LF, put as `a=crypto:` lines in the audio
//! section of a fixed SDP. For every line that decodes, `SdesCrypto::from_sdp` must not panic;
//! a usable line printed by `Display` decodes again to the same tag, suite, key and lifetime,
//! and the contexts of both protect and unprotect a packet between them; `select` picks a line
//! that is usable and whose suite is the first of our preferences that any usable line offers;
//! `accept_answer` with those lines as our offer takes any one of them back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_srtp::sdes::{accept_answer, select, SdesCrypto};
use media_srtp::{SrtpProfile, MAX_OVERHEAD};
use sdp_message::Crypto;

fn sdp(values: &[&[u8]]) -> Vec<u8> {
    let mut s = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 4000 RTP/SAVP 0\r\n"
        .to_vec();
    for v in values {
        s.extend_from_slice(b"a=crypto:");
        s.extend_from_slice(v);
        s.extend_from_slice(b"\r\n");
    }
    s
}

fn reparse(line: &str) -> SdesCrypto {
    let value = line
        .strip_prefix("a=crypto:")
        .expect("attribute_line prefix");
    let text = sdp(&[value.as_bytes()]);
    let d = sdp_message::parse(&text).expect("the SDP of a printed line parses");
    let m = d.media.first().expect("one media section");
    let c: Vec<Crypto<'_>> = m
        .crypto()
        .map(|c| c.expect("a printed line decodes"))
        .collect();
    assert_eq!(c.len(), 1);
    SdesCrypto::from_sdp(&c[0]).expect("a printed line is usable")
}

fn protect_between(a: &SdesCrypto, b: &SdesCrypto) {
    let pkt = [
        0x80, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
    ];
    let mut buf = [0u8; 16 + MAX_OVERHEAD];
    buf[..16].copy_from_slice(&pkt);
    let n = a.context().protect_rtp(&mut buf, 16).expect("protect");
    let m = b
        .context()
        .unprotect_rtp(&mut buf, n)
        .expect("same key unprotects");
    assert_eq!(&buf[..m], &pkt);
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').take(4).collect();
    let text = sdp(&values);
    let Ok(d) = sdp_message::parse(&text) else {
        return;
    };
    let Some(m) = d.media.first() else {
        return;
    };
    let offer: Vec<Crypto<'_>> = m.crypto().filter_map(Result::ok).collect();
    let mut usable = Vec::new();
    for c in &offer {
        let Ok(s) = SdesCrypto::from_sdp(c) else {
            continue;
        };
        assert_eq!(s.tag, c.tag);
        assert_eq!(s.profile().name(), c.suite);
        let line = s.attribute_line();
        let again = reparse(&line);
        assert_eq!(again, s, "printed line {line:?} decodes differently");
        protect_between(&s, &again);
        usable.push(s);
    }
    match select(&offer, &SrtpProfile::ALL) {
        Ok(chosen) => {
            assert!(usable.contains(&chosen), "select chose an unusable line");
            let best = SrtpProfile::ALL
                .iter()
                .find(|p| usable.iter().any(|u| u.profile() == **p))
                .expect("some usable line");
            assert_eq!(chosen.profile(), *best, "select ignored our preference");
        }
        Err(_) => assert!(usable.is_empty(), "select refused usable lines"),
    }
    for c in &offer {
        let r = accept_answer(&usable, std::slice::from_ref(c));
        if let Ok(s) = SdesCrypto::from_sdp(c) {
            if usable
                .iter()
                .any(|u| u.tag == s.tag && u.profile() == s.profile())
            {
                let (_, theirs) = r.expect("an answer echoing an offered line");
                assert_eq!(theirs, s);
            }
        }
    }
});
