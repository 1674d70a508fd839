//! RFC 5769 ("Test Vectors for STUN") sections 2.1 to 2.3: parsing, FINGERPRINT and
//! XOR-MAPPED-ADDRESS checked against the published bytes.

use std::net::SocketAddr;

use stun::{attr, parse, respond, Class, MessageBuilder, Response, TransactionId, BINDING};

fn hex(s: &str) -> Vec<u8> {
    let d: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    d.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// 2.1 Sample Request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY,
/// FINGERPRINT.
const REQUEST: &str = "
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf";

/// 2.2 Sample IPv4 Response: 192.0.2.1:32853.
const IPV4_RESPONSE: &str = "
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96";

/// 2.3 Sample IPv6 Response: [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const IPV6_RESPONSE: &str = "
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c";

const TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

fn v4() -> SocketAddr {
    "192.0.2.1:32853".parse().unwrap()
}

fn v6() -> SocketAddr {
    "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .unwrap()
}

#[test]
fn sample_request_parses_with_its_fingerprint() {
    let b = hex(REQUEST);
    assert!(stun::is_stun(&b));
    let m = parse(&b).unwrap();
    assert_eq!((m.method(), m.class()), (BINDING, Class::Request));
    assert_eq!(m.transaction_id(), TransactionId(TID));
    assert!(m.has_fingerprint());
    assert!(m.has_message_integrity());
    assert_eq!(m.attribute(attr::SOFTWARE), Some(&b"STUN test client"[..]));
    assert_eq!(m.attribute(attr::USERNAME), Some(&b"evtj:h6vY"[..]));
    let types: Vec<u16> = m.attributes().map(|a| a.typ).collect();
    assert_eq!(types, [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]);
    // PRIORITY is comprehension-required but known.
    assert_eq!(m.unknown_comprehension_required::<4>().1, 0);
}

#[test]
fn sample_responses_parse_and_decode() {
    for (s, addr) in [(IPV4_RESPONSE, v4()), (IPV6_RESPONSE, v6())] {
        let b = hex(s);
        let m = parse(&b).unwrap();
        assert_eq!((m.method(), m.class()), (BINDING, Class::SuccessResponse));
        assert!(m.has_fingerprint());
        assert_eq!(m.xor_mapped_address(), Some(addr));
        assert_eq!(m.attribute(attr::SOFTWARE), Some(&b"test vector"[..]));
    }
}

#[test]
fn fingerprints_of_all_vectors_recomputed() {
    for s in [REQUEST, IPV4_RESPONSE, IPV6_RESPONSE] {
        let b = hex(s);
        let at = b.len() - 8;
        let want = u32::from_be_bytes(b[at + 4..].try_into().unwrap());
        assert_eq!(stun::fingerprint(&b[..at]), want);
    }
}

#[test]
fn corrupted_vectors_are_rejected() {
    let mut b = hex(REQUEST);
    b[30] ^= 1; // inside SOFTWARE
    assert_eq!(parse(&b), Err(stun::Error::FingerprintMismatch));
    assert!(matches!(
        respond(&b, v4()),
        Response::Discard(stun::Discard::Malformed(_))
    ));
}

/// The XOR-MAPPED-ADDRESS attribute we write is byte for byte the one of the vectors.
#[test]
fn xor_mapped_address_matches_vectors() {
    for (s, addr, xma) in [
        (IPV4_RESPONSE, v4(), "00 20 00 08 00 01 a1 47 e1 12 a6 43"),
        (
            IPV6_RESPONSE,
            v6(),
            "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9",
        ),
    ] {
        let mut b = MessageBuilder::new(BINDING, Class::SuccessResponse, TransactionId(TID));
        b.xor_mapped_address(addr).unwrap();
        let out = b.finish(false);
        assert_eq!(&out[20..], &hex(xma)[..]);
        assert!(hex(s).windows(out.len() - 20).any(|w| w == &out[20..]));
    }
}

/// Rebuilding 2.2 from its attributes (SOFTWARE with the vector's space padding given as
/// value bytes is not possible, so the vector's attributes are copied raw up to FINGERPRINT)
/// gives the same FINGERPRINT.
#[test]
fn builder_fingerprint_matches_vector() {
    let v = hex(IPV4_RESPONSE);
    let m = parse(&v).unwrap();
    let mut b = MessageBuilder::new(BINDING, Class::SuccessResponse, m.transaction_id());
    for a in m.attributes().filter(|a| a.typ != attr::FINGERPRINT) {
        b.attribute(a.typ, a.value).unwrap();
    }
    let out = b.finish(true);
    // Identical except the SOFTWARE padding byte (the vector pads with 0x20, we with 0).
    assert_eq!(out.len(), v.len());
    let mut expect = v.clone();
    expect[20 + 4 + 11] = 0;
    let at = expect.len() - 4;
    let fp = stun::fingerprint(&expect[..at - 4]);
    expect[at..].copy_from_slice(&fp.to_be_bytes());
    assert_eq!(out, expect);
    assert!(parse(&out).unwrap().has_fingerprint());
}

#[test]
fn sample_request_is_answered() {
    let b = hex(REQUEST);
    for addr in [v4(), v6()] {
        let Response::Success(out) = respond(&b, addr) else {
            panic!("no success")
        };
        let m = parse(&out).unwrap();
        assert_eq!((m.method(), m.class()), (BINDING, Class::SuccessResponse));
        assert_eq!(m.transaction_id(), TransactionId(TID));
        assert_eq!(m.xor_mapped_address(), Some(addr));
        assert!(m.has_fingerprint(), "request had FINGERPRINT");
    }
}
