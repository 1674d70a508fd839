use super::*;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn master(profile: SrtpProfile, fill: u8) -> MasterKey {
    let key: Vec<u8> = (0..16).map(|i| fill.wrapping_add(i)).collect();
    let salt: Vec<u8> = (0..profile.salt_len() as u8).map(|i| fill ^ i).collect();
    MasterKey::new(profile, &key, &salt).unwrap()
}

/// RFC 3711 B.3, kdr = 0.
#[test]
fn rfc3711_b3_key_derivation() {
    let m = MasterKey::new(
        SrtpProfile::AesCm128HmacSha1_80,
        &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        &hex("0EC675AD498AFEEBB6960B3AABE6"),
    )
    .unwrap();
    let mut k = [0u8; 16];
    derive(&m, label::RTP_ENC, &mut k);
    assert_eq!(k.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut s = [0u8; 14];
    derive(&m, label::RTP_SALT, &mut s);
    assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut a = [0u8; 20];
    derive(&m, label::RTP_AUTH, &mut a);
    assert_eq!(a.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
}

/// RFC 3711 B.2: AES-CM keystream for SSRC 0, index 0, including the end of
/// the 65282-block segment.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let aes = Aes128::new_from_slice(&hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
    let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
    let iv = cm_iv(&salt, 0, 0);
    assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut ks = vec![0u8; 65282 * 16];
    cm_xor(&aes, &iv, &mut ks);
    assert_eq!(
        ks[..48].to_vec(),
        hex("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0")
    );
    assert_eq!(
        ks[ks.len() - 48..].to_vec(),
        hex("EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE 6A2CC3787889374FBEB4C81B17BA6C44")
    );
}

const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_SALT: &str = "517569642070726f2071756f";

fn gcm_ctx() -> SrtpContext {
    SrtpContext::from_gcm_session_keys(
        &hex(GCM_KEY).try_into().unwrap(),
        &hex(GCM_SALT).try_into().unwrap(),
    )
}

/// RFC 7714 16.1.1 (SRTP, AEAD_AES_128_GCM).
#[test]
fn rfc7714_16_rtp_vector() {
    let plain = hex(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
         20646976 69736120 696e2070 61727465 73207472 6573",
    );
    let expected = hex(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
         be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1
         6a9152cf 765ee439 0cce",
    );
    assert_eq!(
        gcm_rtp_nonce(&hex(GCM_SALT).try_into().unwrap(), 0x5501a0b2, 0xf17b).to_vec(),
        hex("51753c6580c2726f20718414")
    );
    let mut buf = vec![0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = gcm_ctx().protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(buf[..n].to_vec(), expected);

    let mut buf = expected.clone();
    let n = gcm_ctx().unprotect_rtp(&mut buf, expected.len()).unwrap();
    assert_eq!(buf[..n].to_vec(), plain);
}

/// RFC 7714 17.1.1 (SRTCP, AEAD_AES_128_GCM, index 0x5d4).
#[test]
fn rfc7714_17_rtcp_vector() {
    let plain = hex(
        "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef deadbeef",
    );
    let expected = hex(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
         c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
         45d9eade 800005d4",
    );
    let mut ctx = gcm_ctx();
    // Bring the sender's SRTCP index to the vector's 0x5d4.
    ctx.rtcp_streams.put(
        None,
        0x4d617273,
        RtcpState {
            next_tx: 0x5d4,
            rx: None,
        },
    );
    let mut buf = vec![0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = ctx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(buf[..n].to_vec(), expected);

    let mut buf = expected.clone();
    let n = gcm_ctx().unprotect_rtcp(&mut buf, expected.len()).unwrap();
    assert_eq!(buf[..n].to_vec(), plain);
}

fn round_trip(profile: SrtpProfile) {
    let m = master(profile, 7);
    let mut tx = SrtpContext::new(&m);
    let mut rx = SrtpContext::new(&m);
    let payload: Vec<u8> = (0..160u8).collect();
    // Crosses a sequence wrap, so the ROC must advance on both sides.
    for seq in (65530u16..=65535).chain(0..10) {
        let p = rtp(seq, 0xcafe, &payload);
        let mut buf = vec![0u8; 256];
        buf[..p.len()].copy_from_slice(&p);
        let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
        assert_eq!(n, p.len() + profile.rtp_tag_len());
        assert_ne!(buf[12..p.len()], p[12..]);
        let m = rx.unprotect_rtp(&mut buf, n).unwrap();
        assert_eq!(buf[..m], p[..]);
    }
    let w = rx
        .rtp_streams
        .get(rx.rtp_streams.find(0xcafe).unwrap())
        .unwrap();
    assert_eq!(w.highest(), (1 << 16) | 9);
}

#[test]
fn rtp_round_trip_all_profiles() {
    for p in SrtpProfile::ALL {
        round_trip(p);
    }
}

#[test]
fn replay_and_tamper_are_refused() {
    for profile in SrtpProfile::ALL {
        let m = master(profile, 1);
        let mut tx = SrtpContext::new(&m);
        let mut rx = SrtpContext::new(&m);
        let p = rtp(100, 1, &[9; 40]);
        let mut buf = vec![0u8; 128];
        buf[..p.len()].copy_from_slice(&p);
        let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
        let srtp = buf[..n].to_vec();

        let mut bad = srtp.clone();
        bad[20] ^= 1;
        assert_eq!(
            rx.unprotect_rtp(&mut bad, n),
            Err(SrtpError::AuthFailed),
            "{profile}"
        );
        let mut good = srtp.clone();
        assert_eq!(rx.unprotect_rtp(&mut good, n), Ok(p.len()));
        let mut again = srtp.clone();
        assert_eq!(rx.unprotect_rtp(&mut again, n), Err(SrtpError::Replayed));

        // The sender refuses to encrypt the same index twice.
        let mut buf = vec![0u8; 128];
        buf[..p.len()].copy_from_slice(&p);
        assert_eq!(tx.protect_rtp(&mut buf, p.len()), Err(SrtpError::Replayed));
    }
}

#[test]
fn forged_packet_does_not_move_the_window() {
    let m = master(SrtpProfile::AesCm128HmacSha1_80, 3);
    let mut tx = SrtpContext::new(&m);
    let mut rx = SrtpContext::new(&m);
    let mut first = rtp(10, 5, &[1; 20]);
    first.resize(64, 0);
    let n = tx.protect_rtp(&mut first, 32).unwrap();
    rx.unprotect_rtp(&mut first, n).unwrap();
    // A forged packet far ahead fails and must not make seq 11 "too old".
    let mut forged = rtp(10 + 1000, 5, &[1; 30]);
    assert_eq!(
        rx.unprotect_rtp(&mut forged, 42),
        Err(SrtpError::AuthFailed)
    );
    let mut next = rtp(11, 5, &[1; 20]);
    next.resize(64, 0);
    let n = tx.protect_rtp(&mut next, 32).unwrap();
    assert_eq!(rx.unprotect_rtp(&mut next, n), Ok(32));
}

#[test]
fn rtcp_round_trip_and_replay() {
    for profile in SrtpProfile::ALL {
        let m = master(profile, 9);
        let mut tx = SrtpContext::new(&m);
        let mut rx = SrtpContext::new(&m);
        let rr = hex("81c90007 0000abcd 11223344 00000000 00000000 00000000 00000000 00000000");
        for _ in 0..3 {
            let mut buf = vec![0u8; 128];
            buf[..rr.len()].copy_from_slice(&rr);
            let n = tx.protect_rtcp(&mut buf, rr.len()).unwrap();
            assert_eq!(n, rr.len() + profile.rtcp_tag_len() + 4);
            let copy = buf.clone();
            assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(rr.len()));
            assert_eq!(buf[..rr.len()], rr[..]);
            let mut again = copy;
            assert_eq!(rx.unprotect_rtcp(&mut again, n), Err(SrtpError::Replayed));
        }
    }
}

#[test]
fn short_and_malformed_packets_are_named() {
    let m = master(SrtpProfile::AesCm128HmacSha1_80, 2);
    let mut c = SrtpContext::new(&m);
    let mut buf = [0u8; 64];
    assert_eq!(c.unprotect_rtp(&mut buf, 10), Err(SrtpError::TooShort));
    assert_eq!(
        c.unprotect_rtp(&mut buf, 65),
        Err(SrtpError::LengthExceedsBuffer { len: 65, cap: 64 })
    );
    assert_eq!(c.unprotect_rtp(&mut buf, 30), Err(SrtpError::BadVersion));
    buf[0] = 0x8f; // 15 CSRCs: 72 bytes of header in a 20-byte body.
    assert_eq!(c.unprotect_rtp(&mut buf, 30), Err(SrtpError::BadHeader));
    buf[0] = 0x80;
    assert_eq!(
        c.protect_rtp(&mut buf, 60),
        Err(SrtpError::BufferTooSmall { needed: 70 })
    );
    assert_eq!(c.unprotect_rtcp(&mut buf, 21), Err(SrtpError::TooShort));
}

#[test]
fn lifetime_is_enforced() {
    let m = master(SrtpProfile::AesCm128HmacSha1_32, 4);
    let mut tx = SrtpContext::with_lifetime(&m, 2);
    for seq in 0..2 {
        let mut p = rtp(seq, 1, &[0; 8]);
        p.resize(40, 0);
        assert!(tx.protect_rtp(&mut p, 20).is_ok());
    }
    let mut p = rtp(2, 1, &[0; 8]);
    p.resize(40, 0);
    assert_eq!(tx.protect_rtp(&mut p, 20), Err(SrtpError::KeyExpired));
}

#[test]
fn gcm_unencrypted_srtcp_is_authenticated() {
    // Build an E=0 packet by hand: AAD = packet || E||index, empty plaintext.
    let key: [u8; 16] = hex(GCM_KEY).try_into().unwrap();
    let salt: [u8; 12] = hex(GCM_SALT).try_into().unwrap();
    let rr = hex("81c90001 0000abcd");
    let aead = Aes128Gcm::new(&key.into());
    let mut aad = rr.clone();
    aad.extend_from_slice(&7u32.to_be_bytes());
    let nonce = gcm_rtcp_nonce(&salt, 0xabcd, 7);
    let tag = aead
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut [])
        .unwrap();
    let mut pkt = rr.clone();
    pkt.extend_from_slice(&tag);
    pkt.extend_from_slice(&7u32.to_be_bytes());
    let mut rx = gcm_ctx();
    let mut buf = pkt.clone();
    assert_eq!(rx.unprotect_rtcp(&mut buf, pkt.len()), Ok(rr.len()));
    assert_eq!(buf[..rr.len()], rr[..]);
    let mut bad = pkt.clone();
    bad[5] ^= 1;
    assert_eq!(
        gcm_ctx().unprotect_rtcp(&mut bad, pkt.len()),
        Err(SrtpError::AuthFailed)
    );
}

/// baresip 1.0.0 (libre's SRTP, AES_CM_128_HMAC_SHA1_80), captured on the
/// wire in tests/e2e/b2bua-srtp.sh: its RTCP toward the relay in the order
/// sent. Its master key is the `inline:` of its offer.
mod baresip_capture {
    use super::*;

    pub const KEY: &str = "17f70430581b53b677cea3c45c273add";
    pub const SALT: &str = "6796bccc36bca62ce18431e4229a";
    /// At stream start, before baresip's SRTP is keyed: a plain APP
    /// "PING"/"PONG" (its NAT keepalive).
    pub const PLAIN_APP: &str = "80cc0003 81e73bf3 50494e47 504f4e47";
    /// 0.1 ms later the same APP as SRTCP, index 1 (libre counts from 1).
    pub const SRTCP_APP: &str = "80cc0003 81e73bf3 039e26f3 25ad30d9 80000001 967c00825d1492cd5b80";
    /// Five seconds on: SR + SDES, SRTCP index 2.
    pub const SRTCP_SR: &str = "81c8000c81e73bf383fecdd9281f8b6698614418b1d68df4ffa303f9fc3d84fe\
        3dbf57a73327ee38ea8eb6c30f891bc1e6ce30f48239256df991aee978a59dbb35ef62a1cce17f19de2e2e4cc\
        d5a749e2c9f9756800000022a1dacfdfa2e9a194791";
    /// At hangup, after baresip removed its SRTP from the socket: BYE
    /// ("Adjo") + SDES CNAME, plain.
    pub const PLAIN_BYE: &str = "81cb0003 81e73bf3 0441646a 6f000000 81ca0007 81e73bf3 0113\
        7369703a616c696365403132372e302e302e31 000000";

    pub fn baresip_master() -> MasterKey {
        MasterKey::new(SrtpProfile::AesCm128HmacSha1_80, &hex(KEY), &hex(SALT)).unwrap()
    }
}

fn unprotect_rtcp_hex(c: &mut SrtpContext, pkt: &str) -> Result<Vec<u8>, SrtpError> {
    let pkt = hex(pkt);
    let mut buf = pkt.clone();
    buf.resize(pkt.len() + 64, 0);
    let n = c.unprotect_rtcp(&mut buf, pkt.len())?;
    Ok(buf[..n].to_vec())
}

#[test]
fn baresip_rtcp_as_captured() {
    use baresip_capture::*;
    let mut rx = SrtpContext::new(&baresip_master());
    assert_eq!(
        unprotect_rtcp_hex(&mut rx, PLAIN_APP),
        Err(SrtpError::Unprotected)
    );
    // The refused plain packet changed nothing: the SRTCP ones that follow
    // authenticate, and the first is the very APP that went out plain.
    assert_eq!(unprotect_rtcp_hex(&mut rx, SRTCP_APP), Ok(hex(PLAIN_APP)));
    let sr = unprotect_rtcp_hex(&mut rx, SRTCP_SR).unwrap();
    assert_eq!(sr.len(), 4 * 13 + 4 * 8);
    assert!(is_plain_rtcp_compound(&sr));
    assert_eq!(sr[..8], hex("81c8000c81e73bf3")[..]);
    assert_eq!(
        unprotect_rtcp_hex(&mut rx, PLAIN_BYE),
        Err(SrtpError::Unprotected)
    );
    // Replayed SRTCP stays a replay, a flipped bit an authentication
    // failure: only a well-formed plain packet is called unprotected.
    assert_eq!(
        unprotect_rtcp_hex(&mut rx, SRTCP_SR),
        Err(SrtpError::Replayed)
    );
    let mut forged = hex(SRTCP_SR);
    forged[20] ^= 1;
    let mut buf = forged.clone();
    assert_eq!(
        SrtpContext::new(&baresip_master()).unprotect_rtcp(&mut buf, forged.len()),
        Err(SrtpError::AuthFailed)
    );
    // Under a wrong key the SRTCP packets fail authentication.
    let mut other = SrtpContext::new(&master(SrtpProfile::AesCm128HmacSha1_80, 1));
    assert_eq!(
        unprotect_rtcp_hex(&mut other, SRTCP_APP),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn plain_rtcp_is_unprotected_in_every_profile() {
    let sr_sdes = hex(
        "81c8000c 0000abcd 11111111 22222222 33333333 00000010 00000a00 \
         55555555 00000000 00000000 00000000 00000000 00000000 \
         81ca0002 0000abcd 01026869",
    );
    let bye = hex("81cb0001 0000abcd");
    for profile in SrtpProfile::ALL {
        let m = master(profile, 7);
        let mut tx = SrtpContext::new(&m);
        let mut rx = SrtpContext::new(&m);
        for plain in [&sr_sdes, &bye] {
            let mut buf = plain.clone();
            buf.resize(plain.len() + 64, 0);
            assert_eq!(
                rx.unprotect_rtcp(&mut buf, plain.len()),
                Err(SrtpError::Unprotected),
                "{profile}"
            );
            // The buffer is unspecified after an error (GCM may move the
            // supposed trailer).
            buf[..plain.len()].copy_from_slice(plain);
            let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            assert!(!is_plain_rtcp_compound(&buf[..n]), "{profile}");
            assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(plain.len()), "{profile}");
            assert_eq!(buf[..plain.len()], plain[..], "{profile}");
        }
        // A truncated compound packet is not plain RTCP: too short or
        // unauthentic, as before.
        let mut cut = sr_sdes.clone();
        let n = cut.len() - 4;
        assert!(matches!(
            rx.unprotect_rtcp(&mut cut, n),
            Err(SrtpError::AuthFailed | SrtpError::Replayed | SrtpError::TooOld)
        ));
        let mut short = bye.clone();
        short[0] = 0x40;
        assert_eq!(rx.unprotect_rtcp(&mut short, 8), Err(SrtpError::TooShort));
    }
}

#[test]
fn plain_rtcp_compound_shape() {
    assert!(is_plain_rtcp_compound(&hex("81cb0001 0000abcd")));
    assert!(!is_plain_rtcp_compound(&[]));
    // Version 0, a non-RTCP type, a length past the end, trailing bytes.
    assert!(!is_plain_rtcp_compound(&hex("01cb0001 0000abcd")));
    assert!(!is_plain_rtcp_compound(&hex("8160 0001 0000abcd")));
    assert!(!is_plain_rtcp_compound(&hex("81cb0002 0000abcd")));
    assert!(!is_plain_rtcp_compound(&hex("81cb0001 0000abcd 80")));
    assert!(!is_plain_rtcp_compound(&hex("81cb00")));
}
