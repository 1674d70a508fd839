//! `media_srtp::SrtpContext` for each suite with a fixed master key.
//!
//! Input: byte 0 = bits 0-1 suite, bit 2 RTCP, bit 3 raw mode; bytes 1-2 = big-endian offset
//! of a byte to alter, byte 3 = the XOR to alter it with (0: none); then the packet.
//!
//! Raw mode hands the packet to `unprotect_rtp`/`unprotect_rtcp` as received: nothing may
//! panic, an accepted packet is exactly one tag (and SRTCP trailer) longer than its plain text,
//! the same packet is refused the second time (replay), and re-protecting the plain text with a
//! fresh sender context gives back the received bytes (RTP; SRTCP with index 0 and the E bit,
//! the only index a fresh sender uses).
//!
//! Otherwise the packet is plain RTP/RTCP: protect adds exactly the suite's overhead, an
//! altered protected packet is refused (suites with an 80-bit or longer tag) without
//! disturbing the receiver, the genuine one unprotects to the original bytes, and its replay is
//! refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_srtp::{MasterKey, SrtpContext, SrtpProfile, MAX_OVERHEAD};

const KEY: [u8; 16] = [
    0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B, 0xE0, 0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39,
];
const SALT: [u8; 14] = [
    0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE, 0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6,
];

fn context(p: SrtpProfile) -> SrtpContext {
    let key = MasterKey::new(p, &KEY, &SALT[..p.salt_len()]).expect("fixed key fits the suite");
    SrtpContext::new(&key)
}

fn unprotect(c: &mut SrtpContext, rtcp: bool, buf: &mut [u8], len: usize) -> Option<usize> {
    let r = if rtcp {
        c.unprotect_rtcp(buf, len)
    } else {
        c.unprotect_rtp(buf, len)
    };
    r.ok()
}

fn protect(c: &mut SrtpContext, rtcp: bool, buf: &mut [u8], len: usize) -> Option<usize> {
    let r = if rtcp {
        c.protect_rtcp(buf, len)
    } else {
        c.protect_rtp(buf, len)
    };
    r.ok()
}

fn overhead(p: SrtpProfile, rtcp: bool) -> usize {
    if rtcp {
        p.rtcp_tag_len() + 4
    } else {
        p.rtp_tag_len()
    }
}

fn raw(p: SrtpProfile, rtcp: bool, pkt: &[u8]) {
    let mut rx = context(p);
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + MAX_OVERHEAD, 0);
    let Some(plain) = unprotect(&mut rx, rtcp, &mut buf, pkt.len()) else {
        return;
    };
    assert_eq!(plain + overhead(p, rtcp), pkt.len(), "accepted length");
    let mut again = pkt.to_vec();
    assert!(
        unprotect(&mut rx, rtcp, &mut again, pkt.len()).is_none(),
        "a replayed packet was accepted"
    );
    let reprotectable = !rtcp || {
        // E||index sits after the tag for AEAD, before it otherwise.
        let at = if p == SrtpProfile::AeadAes128Gcm {
            plain + p.rtcp_tag_len()
        } else {
            plain
        };
        pkt[at..at + 4] == [0x80, 0, 0, 0]
    };
    if reprotectable {
        let mut tx = context(p);
        let n = protect(&mut tx, rtcp, &mut buf, plain).expect("accepted plain text protects");
        assert_eq!(
            &buf[..n],
            pkt,
            "re-protected bytes differ from the received packet"
        );
    }
}

fn round_trip(p: SrtpProfile, rtcp: bool, at: usize, xor: u8, pkt: &[u8]) {
    let mut tx = context(p);
    let mut rx = context(p);
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + MAX_OVERHEAD, 0);
    let Some(n) = protect(&mut tx, rtcp, &mut buf, pkt.len()) else {
        return;
    };
    assert_eq!(n, pkt.len() + overhead(p, rtcp), "protected length");
    let sent = buf[..n].to_vec();
    if xor != 0 && at < n {
        let mut bad = sent.clone();
        bad[at] ^= xor;
        bad.resize(n + MAX_OVERHEAD, 0);
        let accepted = unprotect(&mut rx, rtcp, &mut bad, n);
        // A 32-bit tag is forged by chance once in 2^32 tries: not an error to report here.
        if rtcp || p != SrtpProfile::AesCm128HmacSha1_32 {
            assert!(accepted.is_none(), "an altered packet was accepted");
        }
        if accepted.is_some() {
            return;
        }
    }
    let mut got = sent.clone();
    got.resize(n + MAX_OVERHEAD, 0);
    let plain = unprotect(&mut rx, rtcp, &mut got, n).expect("a genuine packet unprotects");
    assert_eq!(&got[..plain], pkt, "round trip changed the packet");
    let mut replay = sent;
    replay.resize(n + MAX_OVERHEAD, 0);
    assert!(
        unprotect(&mut rx, rtcp, &mut replay, n).is_none(),
        "a replayed packet was accepted"
    );
}

fuzz_target!(|data: &[u8]| {
    let [flags, hi, lo, xor, pkt @ ..] = data else {
        return;
    };
    let p = SrtpProfile::ALL[usize::from(flags & 3) % SrtpProfile::ALL.len()];
    let rtcp = flags & 4 != 0;
    if flags & 8 != 0 {
        raw(p, rtcp, pkt);
    } else {
        round_trip(
            p,
            rtcp,
            usize::from(u16::from_be_bytes([*hi, *lo])),
            *xor,
            pkt,
        );
    }
});
