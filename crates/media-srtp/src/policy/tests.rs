use super::*;
use crate::SrtpContext;
use ZoneSrtpMode::*;

fn sdp_with(values: &[String]) -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n",
    );
    for v in values {
        sdp.push_str(&format!("a=crypto:{v}\r\n"));
    }
    sdp
}

fn with_cryptos<T>(values: &[String], f: impl FnOnce(&[Crypto<'_>]) -> T) -> T {
    let text = sdp_with(values);
    let sdp = sdp_message::parse(text.as_bytes()).unwrap();
    let c: Vec<Crypto<'_>> = sdp.media[0].crypto().map(|c| c.unwrap()).collect();
    f(&c)
}

/// A phone (or trunk) with its own key; it plays the endpoint in the tests.
struct Endpoint {
    line: SdesCrypto,
}

impl Endpoint {
    fn new(profile: SrtpProfile) -> Self {
        Self {
            line: SdesCrypto::generate(1, profile).unwrap(),
        }
    }
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 42];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0x33; 160]);
    p
}

fn lines(l: &CryptoLines) -> Vec<SdesCrypto> {
    match l {
        CryptoLines::Replace(v) => v.clone(),
        other => panic!("expected lines, got {other:?}"),
    }
}

fn policy(m: ZoneSrtpMode) -> ZoneSrtpPolicy {
    ZoneSrtpPolicy::new(m)
}

#[test]
fn side_table() {
    let srtp_offer = vec![Endpoint::new(SrtpProfile::AesCm128HmacSha1_80)
        .line
        .to_string()];
    let cases = [
        (Plain, Plain, true, Side::Srtp, Side::Plain),
        (Plain, Plain, false, Side::Plain, Side::Plain),
        (Plain, Terminate, false, Side::Plain, Side::Srtp),
        (Plain, Rekey, true, Side::Srtp, Side::Srtp),
        (Plain, Passthrough, true, Side::Untouched, Side::Untouched),
        (Terminate, Plain, true, Side::Srtp, Side::Plain),
        (Terminate, Terminate, true, Side::Srtp, Side::Srtp),
        (Terminate, Passthrough, true, Side::Srtp, Side::Srtp),
        (Rekey, Plain, true, Side::Srtp, Side::Srtp),
        (Passthrough, Plain, true, Side::Untouched, Side::Untouched),
        (
            Passthrough,
            Passthrough,
            false,
            Side::Untouched,
            Side::Untouched,
        ),
        (Passthrough, Terminate, true, Side::Srtp, Side::Srtp),
    ];
    for (s, r, offered, want_s, want_r) in cases {
        let offer = if offered { srtp_offer.clone() } else { vec![] };
        let plan = with_cryptos(&offer, |c| plan_offer(c, &policy(s), &policy(r))).unwrap();
        assert_eq!(
            (plan.offerer_side, plan.answerer_side),
            (want_s, want_r),
            "{s:?} -> {r:?}, offered SRTP: {offered}"
        );
        // The reason agrees with the side it explains.
        for (side, reason) in [
            (plan.offerer_side, plan.offerer_reason),
            (plan.answerer_side, plan.answerer_reason),
        ] {
            let expected = match reason {
                Reason::Passthrough => Side::Untouched,
                Reason::Plain => Side::Plain,
                _ => Side::Srtp,
            };
            assert_eq!(side, expected, "{s:?} -> {r:?}: {reason:?}");
        }
    }
}

#[test]
fn reasons_name_the_rule() {
    let offer = vec![Endpoint::new(SrtpProfile::AesCm128HmacSha1_80)
        .line
        .to_string()];
    let plan = with_cryptos(&offer, |c| {
        plan_offer(c, &policy(Passthrough), &policy(Terminate))
    })
    .unwrap();
    assert_eq!(plan.offerer_reason, Reason::PassthroughFacingTermination);
    assert_eq!(plan.answerer_reason, Reason::ZoneDemandsSrtp);
    let plan = with_cryptos(&offer, |c| plan_offer(c, &policy(Plain), &policy(Rekey))).unwrap();
    assert_eq!(plan.offerer_reason, Reason::OtherZoneRekeys);
    let plan = with_cryptos(&offer, |c| plan_offer(c, &policy(Plain), &policy(Plain))).unwrap();
    assert_eq!(
        (plan.offerer_reason, plan.answerer_reason),
        (Reason::OfferedSrtp, Reason::Plain)
    );
}

#[test]
fn terminate_refuses_a_plain_offer() {
    let err = with_cryptos(&[], |c| plan_offer(c, &policy(Terminate), &policy(Plain)));
    assert_eq!(
        err.unwrap_err(),
        PolicyError::SrtpRequired(SdesError::NoAcceptableCrypto { offered: 0 })
    );
    // An offer whose only line uses an MKI is as good as none.
    let mki = vec![
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:1".to_string(),
    ];
    assert!(matches!(
        with_cryptos(&mki, |c| plan_offer(c, &policy(Terminate), &policy(Plain))),
        Err(PolicyError::SrtpRequired(_))
    ));
}

/// WAN (terminate) calls LAN (plain): media from the WAN phone is decrypted,
/// media from the LAN phone is encrypted with the key we answered.
#[test]
fn terminate_wan_to_plain_lan_end_to_end() {
    let wan = Endpoint::new(SrtpProfile::AesCm128HmacSha1_80);
    let offer = vec![wan.line.to_string()];
    let plan = with_cryptos(&offer, |c| {
        plan_offer(c, &policy(Terminate), &policy(Plain))
    })
    .unwrap();
    assert_eq!(plan.forward_offer, CryptoLines::Remove);
    let mut done = plan.on_answer(&[]).unwrap();
    let ours = lines(&done.answer_lines);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].tag, 1);
    assert_eq!(ours[0].profile(), SrtpProfile::AesCm128HmacSha1_80);

    // WAN -> LAN: phone encrypts with its key, relay decrypts.
    let mut phone_tx = wan.line.context();
    let mut buf = rtp(1);
    buf.resize(256, 0);
    let n = phone_tx.protect_rtp(&mut buf, 172).unwrap();
    let n = done.offerer_to_answerer.rtp(&mut buf, n).unwrap();
    assert_eq!(buf[..n], rtp(1)[..]);

    // LAN -> WAN: relay encrypts with the answered key, phone decrypts.
    let mut buf = rtp(7);
    buf.resize(256, 0);
    let n = done.answerer_to_offerer.rtp(&mut buf, 172).unwrap();
    let mut phone_rx = ours[0].context();
    let n = phone_rx.unprotect_rtp(&mut buf, n).unwrap();
    assert_eq!(buf[..n], rtp(7)[..]);
}

/// Plain LAN calls a terminate WAN: we offer our lines to the WAN, the WAN
/// picks GCM, and each direction is keyed accordingly.
#[test]
fn plain_lan_to_terminate_wan_uses_the_answered_suite() {
    let plan = with_cryptos(&[], |c| plan_offer(c, &policy(Plain), &policy(Terminate))).unwrap();
    let offered = lines(&plan.forward_offer);
    assert_eq!(offered.len(), 3);
    let gcm = offered
        .iter()
        .find(|l| l.profile() == SrtpProfile::AeadAes128Gcm)
        .unwrap()
        .clone();
    let wan = SdesCrypto::generate(gcm.tag, SrtpProfile::AeadAes128Gcm).unwrap();
    let mut done = with_cryptos(&[wan.to_string()], |c| plan.on_answer(c)).unwrap();
    assert_eq!(done.answer_lines, CryptoLines::Remove);

    let mut buf = rtp(3);
    buf.resize(256, 0);
    let n = done.offerer_to_answerer.rtp(&mut buf, 172).unwrap();
    assert_eq!(n, 172 + 16);
    let mut wan_rx = gcm.context();
    assert_eq!(wan_rx.unprotect_rtp(&mut buf, n), Ok(172));

    let mut wan_tx = wan.context();
    let mut buf = rtp(9);
    buf.resize(256, 0);
    let n = wan_tx.protect_rtp(&mut buf, 172).unwrap();
    assert_eq!(done.answerer_to_offerer.rtp(&mut buf, n), Ok(172));

    // An answer without crypto is refused.
    let plan = with_cryptos(&[], |c| plan_offer(c, &policy(Plain), &policy(Terminate))).unwrap();
    assert!(matches!(
        plan.on_answer(&[]),
        Err(PolicyError::AnswerRefusedSrtp(_))
    ));
}

#[test]
fn rekey_uses_different_keys_on_each_side() {
    let a = Endpoint::new(SrtpProfile::AesCm128HmacSha1_32);
    let plan = with_cryptos(&[a.line.to_string()], |c| {
        plan_offer(c, &policy(Rekey), &policy(Rekey))
    })
    .unwrap();
    let offered = lines(&plan.forward_offer);
    for l in &offered {
        assert_ne!(
            l.key, a.line.key,
            "the answerer never sees the offerer's key"
        );
    }
    let b = SdesCrypto::generate(offered[0].tag, offered[0].profile()).unwrap();
    let mut done = with_cryptos(&[b.to_string()], |c| plan.on_answer(c)).unwrap();
    let to_a = lines(&done.answer_lines).remove(0);
    assert_eq!(to_a.profile(), SrtpProfile::AesCm128HmacSha1_32);

    let mut a_tx = a.line.context();
    let mut b_rx = offered[0].context();
    let mut buf = rtp(100);
    buf.resize(256, 0);
    let n = a_tx.protect_rtp(&mut buf, 172).unwrap();
    let n = done.offerer_to_answerer.rtp(&mut buf, n).unwrap();
    let n = b_rx.unprotect_rtp(&mut buf, n).unwrap();
    assert_eq!(buf[..n], rtp(100)[..]);

    let mut b_tx = b.context();
    let mut a_rx: SrtpContext = to_a.context();
    let mut buf = rtp(200);
    buf.resize(256, 0);
    let n = b_tx.protect_rtp(&mut buf, 172).unwrap();
    let n = done.answerer_to_offerer.rtp(&mut buf, n).unwrap();
    let n = a_rx.unprotect_rtp(&mut buf, n).unwrap();
    assert_eq!(buf[..n], rtp(200)[..]);
}

#[test]
fn passthrough_touches_nothing() {
    let a = Endpoint::new(SrtpProfile::AesCm128HmacSha1_80);
    let plan = with_cryptos(&[a.line.to_string()], |c| {
        plan_offer(c, &policy(Passthrough), &policy(Plain))
    })
    .unwrap();
    assert_eq!(plan.forward_offer, CryptoLines::Untouched);
    let mut done = plan.on_answer(&[]).unwrap();
    assert_eq!(done.answer_lines, CryptoLines::Untouched);
    let mut buf = rtp(5);
    let before = buf.clone();
    assert_eq!(done.offerer_to_answerer.rtp(&mut buf, 172), Ok(172));
    assert_eq!(buf, before);
}

#[test]
fn zone_suites_limit_the_choice() {
    let offer = vec![
        SdesCrypto::generate(1, SrtpProfile::AesCm128HmacSha1_32)
            .unwrap()
            .to_string(),
        SdesCrypto::generate(2, SrtpProfile::AeadAes128Gcm)
            .unwrap()
            .to_string(),
    ];
    let wan = ZoneSrtpPolicy {
        mode: Terminate,
        suites: vec![SrtpProfile::AeadAes128Gcm],
    };
    let plan = with_cryptos(&offer, |c| plan_offer(c, &wan, &policy(Plain))).unwrap();
    let done = plan.on_answer(&[]).unwrap();
    let ours = lines(&done.answer_lines);
    assert_eq!(
        (ours[0].tag, ours[0].profile()),
        (2, SrtpProfile::AeadAes128Gcm)
    );
}

#[test]
fn modes_parse_from_config_spelling() {
    for m in [Plain, Terminate, Rekey, Passthrough] {
        assert_eq!(m.as_str().parse::<ZoneSrtpMode>(), Ok(m));
    }
    assert_eq!(
        "Terminate".parse::<ZoneSrtpMode>(),
        Err(UnknownMode("Terminate".into()))
    );
}
