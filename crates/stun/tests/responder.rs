//! The responder's decisions, and robustness on arbitrary input.

use std::net::SocketAddr;

use proptest::prelude::*;
use stun::{attr, parse, respond, Class, Discard, MessageBuilder, Response, TransactionId};

fn src() -> SocketAddr {
    "198.51.100.7:40000".parse().unwrap()
}

fn request(method: u16, attrs: &[(u16, &[u8])], fp: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new(method, Class::Request, TransactionId([9; 12]));
    for (t, v) in attrs {
        b.attribute(*t, v).unwrap();
    }
    b.finish(fp)
}

#[test]
fn plain_binding_request_without_fingerprint() {
    let Response::Success(out) = respond(&request(stun::BINDING, &[], false), src()) else {
        panic!()
    };
    let m = parse(&out).unwrap();
    assert!(!m.has_fingerprint());
    assert_eq!(m.transaction_id(), TransactionId([9; 12]));
    assert_eq!(m.xor_mapped_address(), Some(src()));
    assert_eq!(out.len(), 20 + 12);
}

#[test]
fn mapped_v4_in_v6_is_reported_as_v4() {
    let s: SocketAddr = "[::ffff:198.51.100.7]:40000".parse().unwrap();
    let Response::Success(out) = respond(&request(stun::BINDING, &[], true), s) else {
        panic!()
    };
    assert_eq!(parse(&out).unwrap().xor_mapped_address(), Some(src()));
}

#[test]
fn unknown_comprehension_required_gets_420() {
    let req = request(
        stun::BINDING,
        &[(0x0003, &[0, 0, 0, 4]), (0x7fff, b"x"), (0x0003, &[0; 4])],
        true,
    );
    let Response::Error { code, bytes } = respond(&req, src()) else {
        panic!()
    };
    assert_eq!(code, 420);
    let m = parse(&bytes).unwrap();
    assert_eq!(m.class(), Class::ErrorResponse);
    assert!(m.has_fingerprint());
    let ec = m.attribute(attr::ERROR_CODE).unwrap();
    assert_eq!(&ec[..4], &[0, 0, 4, 20]);
    assert_eq!(&ec[4..], b"Unknown Attribute");
    assert_eq!(
        m.attribute(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x00, 0x03, 0x7f, 0xff][..])
    );
}

#[test]
fn unknown_optional_attributes_are_ignored() {
    let req = request(
        stun::BINDING,
        &[(0x8fff, b"whatever"), (attr::SOFTWARE, b"x")],
        false,
    );
    assert!(matches!(respond(&req, src()), Response::Success(_)));
}

#[test]
fn attributes_after_message_integrity_are_ignored() {
    let req = request(
        stun::BINDING,
        &[(attr::MESSAGE_INTEGRITY, &[0; 20]), (0x7abc, b"late")],
        false,
    );
    assert!(matches!(respond(&req, src()), Response::Success(_)));
}

#[test]
fn other_methods_get_400() {
    let Response::Error { code, bytes } = respond(&request(0x003, &[], false), src()) else {
        panic!()
    };
    assert_eq!(code, 400);
    let m = parse(&bytes).unwrap();
    assert_eq!((m.method(), m.class()), (0x003, Class::ErrorResponse));
}

#[test]
fn indications_and_responses_are_not_answered() {
    let mut b = MessageBuilder::new(stun::BINDING, Class::Indication, TransactionId([1; 12]));
    b.attribute(0x7fff, b"unknown").unwrap();
    assert_eq!(
        respond(&b.finish(true), src()),
        Response::Discard(Discard::Indication)
    );
    let b = MessageBuilder::new(
        stun::BINDING,
        Class::SuccessResponse,
        TransactionId([1; 12]),
    );
    assert_eq!(
        respond(&b.finish(false), src()),
        Response::Discard(Discard::Response)
    );
}

#[test]
fn structural_errors() {
    use stun::Error::*;
    let good = request(stun::BINDING, &[(attr::SOFTWARE, b"abc")], true);
    assert!(parse(&good).is_ok());
    assert_eq!(parse(&good[..19]), Err(TooShort));
    assert_eq!(parse(&good[..good.len() - 4]), Err(BadLength));
    // Attribute length pointing past the end.
    let mut b = good.clone();
    b[22..24].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(parse(&b), Err(AttributeOverrun { offset: 20 }));
    // Something after FINGERPRINT.
    let mut b = good.clone();
    b.extend_from_slice(&[0x80, 0x22, 0, 0]);
    let len = (b.len() - 20) as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(parse(&b), Err(MisplacedFingerprint { .. })));
    // Wrong cookie, leading bits.
    let mut b = good.clone();
    b[5] ^= 1;
    assert_eq!(parse(&b), Err(NotStun));
    let mut b = good.clone();
    b[0] |= 0x80;
    assert_eq!(parse(&b), Err(NotStun));
}

#[test]
fn builder_refuses_oversized_values() {
    let mut b = MessageBuilder::new(stun::BINDING, Class::Request, TransactionId([0; 12]));
    assert!(b.attribute(attr::SOFTWARE, &vec![0; 70_000]).is_err());
    assert!(b.attribute(attr::SOFTWARE, &vec![0; 40_000]).is_ok());
    assert!(b.attribute(attr::SOFTWARE, &vec![0; 40_000]).is_err());
    assert!(parse(&b.finish(true)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&data);
        let _ = stun::is_stun(&data);
        let _ = respond(&data, src());
    }

    #[test]
    fn header_valid_garbage_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..64usize).prop_map(|mut v| { v.truncate(v.len() / 4 * 4); v }),
        typ in any::<u16>(),
    ) {
        let mut m = Vec::new();
        m.extend_from_slice(&(typ & 0x3fff).to_be_bytes());
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[5; 12]);
        m.extend_from_slice(&body);
        prop_assert!(stun::is_stun(&m));
        if let Ok(msg) = parse(&m) {
            for a in msg.attributes() {
                prop_assert!(a.offset + 4 + a.value.len() <= m.len());
            }
            let _ = msg.xor_mapped_address();
        }
        let _ = respond(&m, src());
    }

    #[test]
    fn built_messages_round_trip(
        attrs in proptest::collection::vec((0x8000u16..0x8020, proptest::collection::vec(any::<u8>(), 0..40)), 0..6),
        fp in any::<bool>(),
    ) {
        let mut b = MessageBuilder::new(stun::BINDING, Class::Request, TransactionId([3; 12]));
        for (t, v) in &attrs {
            b.attribute(*t, v).unwrap();
        }
        let out = b.finish(fp);
        let m = parse(&out).unwrap();
        prop_assert_eq!(m.has_fingerprint(), fp);
        let got: Vec<(u16, Vec<u8>)> = m.attributes().filter(|a| a.typ != attr::FINGERPRINT).map(|a| (a.typ, a.value.to_vec())).collect();
        prop_assert_eq!(got, attrs);
    }
}
