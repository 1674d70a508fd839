//! `stun::parse` and `stun::respond` on arbitrary datagrams from fixed IPv4 and IPv6 sources.
//!
//! Checks: `parse` agrees with `is_stun` (whatever parses passes the demultiplexer's test);
//! the attributes of a parsed message tile its body exactly and stay in bounds; rebuilt with
//! `MessageBuilder` (same type, transaction id, attributes and FINGERPRINT choice) it parses to
//! the same attributes, and to the same bytes when the original padding was zero; every answer
//! of `respond` parses, is a response of the request's method and transaction id, carries a
//! FINGERPRINT exactly when the request did, and a success maps the source back.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use stun::{attr, parse, respond, Class, Discard, MessageBuilder, Response, HEADER_LEN};

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn check_parsed(data: &[u8]) {
    let Ok(m) = parse(data) else {
        return;
    };
    assert!(stun::is_stun(data), "parse accepted what is_stun refuses");
    assert_eq!(m.as_bytes(), data);
    let mut pos = HEADER_LEN;
    let mut zero_padding = true;
    let mut b = MessageBuilder::new(m.method(), m.class(), m.transaction_id());
    let mut rebuilt_ok = true;
    for a in m.attributes() {
        assert_eq!(a.offset, pos, "attributes do not tile the body");
        let end = pos + 4 + padded(a.value.len());
        assert!(end <= data.len(), "attribute beyond the message");
        assert_eq!(&data[pos + 4..pos + 4 + a.value.len()], a.value);
        zero_padding &= data[pos + 4 + a.value.len()..end].iter().all(|&x| x == 0);
        if a.typ == attr::FINGERPRINT {
            assert_eq!(end, data.len(), "FINGERPRINT not last");
        } else {
            rebuilt_ok &= b.attribute(a.typ, a.value).is_ok();
        }
        pos = end;
    }
    assert_eq!(pos, data.len(), "attributes do not cover the body");
    let _ = (
        m.has_message_integrity(),
        m.xor_mapped_address(),
        m.unknown_comprehension_required::<16>(),
    );
    if !rebuilt_ok {
        return;
    }
    let rebuilt = b.finish(m.has_fingerprint());
    let again = parse(&rebuilt).expect("a rebuilt message parses");
    assert_eq!(
        (again.method(), again.class(), again.transaction_id()),
        (m.method(), m.class(), m.transaction_id())
    );
    assert_eq!(again.has_fingerprint(), m.has_fingerprint());
    let pairs = |x: &stun::Message<'_>| {
        x.attributes()
            .filter(|a| a.typ != attr::FINGERPRINT)
            .map(|a| (a.typ, a.value.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&again), pairs(&m), "rebuilt attributes differ");
    if zero_padding {
        assert_eq!(rebuilt, data, "rebuilt bytes differ with zero padding");
    }
}

fn check_response(data: &[u8], source: SocketAddr) {
    let request = parse(data).ok();
    match respond(data, source) {
        Response::Discard(Discard::Malformed(e)) => {
            assert_eq!(
                request.map(|_| ()),
                None,
                "a parsed message discarded as {e:?}"
            );
        }
        Response::Discard(Discard::Indication) => {
            assert_eq!(request.map(|m| m.class()), Some(Class::Indication));
        }
        Response::Discard(Discard::Response) => {
            assert!(matches!(
                request.map(|m| m.class()),
                Some(Class::SuccessResponse | Class::ErrorResponse)
            ));
        }
        Response::Success(bytes) => {
            let req = request.expect("success for an unparsed request");
            assert_eq!(req.class(), Class::Request);
            assert_eq!(req.method(), stun::BINDING);
            let r = parse(&bytes).expect("the success response parses");
            assert_eq!(r.class(), Class::SuccessResponse);
            assert_eq!(r.method(), stun::BINDING);
            assert_eq!(r.transaction_id(), req.transaction_id());
            assert_eq!(r.has_fingerprint(), req.has_fingerprint());
            assert_eq!(r.xor_mapped_address(), Some(source), "mapped address");
        }
        Response::Error { code, bytes } => {
            let req = request.expect("error for an unparsed request");
            assert_eq!(req.class(), Class::Request);
            assert!(code == 420 || (code == 400 && req.method() != stun::BINDING));
            let r = parse(&bytes).expect("the error response parses");
            assert_eq!(r.class(), Class::ErrorResponse);
            assert_eq!(r.method(), req.method());
            assert_eq!(r.transaction_id(), req.transaction_id());
            assert_eq!(r.has_fingerprint(), req.has_fingerprint());
            let ec = r.attribute(attr::ERROR_CODE).expect("ERROR-CODE");
            assert!(ec.len() >= 4);
            assert_eq!(u16::from(ec[2]) * 100 + u16::from(ec[3]), code);
            if code == 420 {
                let ua = r
                    .attribute(attr::UNKNOWN_ATTRIBUTES)
                    .expect("UNKNOWN-ATTRIBUTES");
                assert!(!ua.is_empty() && ua.len().is_multiple_of(2) && ua.len() <= 32);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_parsed(data);
    for source in ["192.0.2.1:32853", "[2001:db8::7]:5060"] {
        let source: SocketAddr = source.parse().expect("a literal address");
        check_response(data, source);
    }
});
