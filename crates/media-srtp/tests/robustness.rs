//! Fuzz-style robustness: random, truncated and mutated packets fed to
//! unprotect never panic, and a damaged packet is never accepted.

use media_srtp::{MasterKey, SrtpContext, SrtpError, SrtpProfile};
use proptest::prelude::*;

fn profile() -> impl Strategy<Value = SrtpProfile> {
    prop::sample::select(SrtpProfile::ALL.to_vec())
}

fn ctx(p: SrtpProfile) -> SrtpContext {
    SrtpContext::new(&MasterKey::new(p, &[7; 16], &vec![9; p.salt_len()]).unwrap())
}

/// A protected RTP (or RTCP) packet built from arbitrary header fields.
fn protected(p: SrtpProfile, rtcp: bool, head: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut pkt = if rtcp {
        let mut h = vec![0x80 | (head[0] & 0x1f), 200 + head[1] % 5, 0, 0];
        h.extend_from_slice(&head[2..6]);
        h
    } else {
        // Version 2, no padding/CSRC/extension, the rest arbitrary.
        let mut h = vec![0x80, head[1]];
        h.extend_from_slice(&head[2..12]);
        h
    };
    pkt.extend_from_slice(payload);
    let n = pkt.len();
    pkt.resize(n + 64, 0);
    let mut c = ctx(p);
    let out = if rtcp {
        c.protect_rtcp(&mut pkt, n)
    } else {
        c.protect_rtp(&mut pkt, n)
    }
    .unwrap();
    pkt.truncate(out);
    pkt
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        p in profile(),
        mut data in prop::collection::vec(any::<u8>(), 0..400),
        extra in 0usize..64,
        len_over in 0usize..80,
        first in prop::option::of(any::<u8>()),
    ) {
        if let (Some(b), Some(d)) = (first, data.first_mut()) {
            // Bias half the inputs towards version 2 so parsing gets deep.
            *d = 0x80 | (b & 0x3f);
        }
        let len = (data.len() + len_over).saturating_sub(40);
        let mut buf = data.clone();
        buf.resize(data.len() + extra, 0);
        let mut c = ctx(p);
        let r1 = c.unprotect_rtp(&mut buf.clone(), len);
        let r2 = c.unprotect_rtcp(&mut buf.clone(), len);
        let r3 = c.protect_rtp(&mut buf.clone(), len);
        let r4 = c.protect_rtcp(&mut buf, len);
        if len > data.len() + extra {
            for r in [r1, r2, r3, r4] {
                let is_len_error = matches!(r, Err(SrtpError::LengthExceedsBuffer { .. }));
                prop_assert!(is_len_error);
            }
        } else {
            // Random bytes are never authentic.
            prop_assert!(r1.is_err());
            prop_assert!(r2.is_err());
        }
    }

    #[test]
    fn any_single_bit_flip_is_refused(
        p in profile(),
        rtcp in any::<bool>(),
        head in prop::collection::vec(any::<u8>(), 12),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        bit in any::<prop::sample::Index>(),
    ) {
        let pkt = protected(p, rtcp, &head, &payload);
        let mut bad = pkt.clone();
        let at = bit.index(bad.len() * 8);
        bad[at / 8] ^= 1 << (at % 8);
        let mut c = ctx(p);
        let r = if rtcp { c.unprotect_rtcp(&mut bad, pkt.len()) } else { c.unprotect_rtp(&mut bad, pkt.len()) };
        prop_assert!(r.is_err(), "flip at bit {} accepted", at);
        // The genuine packet still passes afterwards: the refusal changed
        // no state.
        let mut good = pkt.clone();
        let r = if rtcp { c.unprotect_rtcp(&mut good, pkt.len()) } else { c.unprotect_rtp(&mut good, pkt.len()) };
        prop_assert!(r.is_ok());
    }

    #[test]
    fn truncated_packets_are_refused(
        p in profile(),
        rtcp in any::<bool>(),
        head in prop::collection::vec(any::<u8>(), 12),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        cut in any::<prop::sample::Index>(),
    ) {
        let pkt = protected(p, rtcp, &head, &payload);
        let len = cut.index(pkt.len());
        let mut buf = pkt.clone();
        let mut c = ctx(p);
        let r = if rtcp { c.unprotect_rtcp(&mut buf, len) } else { c.unprotect_rtp(&mut buf, len) };
        prop_assert!(r.is_err());
    }
}
