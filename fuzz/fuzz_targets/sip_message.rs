//! `Message::parse_with` on arbitrary bytes, then every decoder and accessor: nothing may
//! panic, and what parses must be self-consistent (spans in bounds, Content-Length equal to the
//! body, the Request-URI of a request decodable, `wire()` re-parsing to the same fields, the
//! typed accessors agreeing with `decode_all_headers` and `validate`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_message::{HeaderName, Limits, Message, StartLine};

const SMALL: Limits = Limits {
    max_message_size: 2048,
    max_headers: 12,
    max_line_length: 200,
    max_params: 4,
    max_values: 3,
    max_body_size: 512,
};

fn exercise(m: &Message) {
    let len = m.buffer().len();
    for f in m.fields() {
        for s in [f.name_span, f.value_span, f.line_span] {
            assert!(
                s.start <= s.end && s.end as usize <= len,
                "span out of bounds"
            );
        }
        let _ = m.slice(f.name_span);
        let _ = m.field_str(f);
        let _ = m.cursor(f);
        let _ = m.decode_field_values(f);
        if let Ok(text) = std::str::from_utf8(m.slice(f.name_span)) {
            let _ = m.header_by_name(text);
        }
        let _ = m.count(f.name);
        let _ = m.header(f.name);
    }
    let _ = m.header_values(HeaderName::Via).count();
    let _ = (
        m.method(),
        m.method_str(),
        m.status(),
        m.reason_phrase(),
        m.version(),
    );
    let _ = (
        m.start_line(),
        m.start_line_span(),
        m.head_end(),
        m.body_span(),
        m.body_bytes(),
    );
    if let Some(n) = m.content_length() {
        assert_eq!(m.body().len(), n, "body length differs from Content-Length");
    }
    if let StartLine::Request { .. } = m.start_line() {
        let u = m
            .request_uri()
            .expect("a parsed request has a decodable Request-URI");
        assert!(u.equivalent(&u), "Request-URI not equivalent to itself");
        assert_eq!(Some(u.as_str()), m.request_uri_str());
    }

    let all = m.decode_all_headers();
    // `TypedIter` and `decode_all_headers` both count `max_values` per field (README.md,
    // finding F3, fixed), so they must agree.
    let ok = |r: Result<_, sip_message::ParseError>| r.is_ok();
    let typed_ok = m.vias().all(|v| ok(v.map(|_| ())))
        & m.contacts().all(|v| ok(v.map(|_| ())))
        & m.routes().all(|v| ok(v.map(|_| ())))
        & m.record_routes().all(|v| ok(v.map(|_| ())));
    let singles_ok = m.top_via().is_none_or(|r| r.is_ok())
        & m.from().is_none_or(|r| r.is_ok())
        & m.to().is_none_or(|r| r.is_ok())
        & m.call_id().is_none_or(|r| r.is_ok())
        & m.cseq().is_none_or(|r| r.is_ok())
        & m.max_forwards().is_none_or(|r| r.is_ok())
        & m.content_type().is_none_or(|r| r.is_ok())
        & m.expires().is_none_or(|r| r.is_ok());
    if all.is_ok() {
        assert!(
            typed_ok && singles_ok,
            "decode_all_headers succeeded but an accessor failed"
        );
    }
    if m.validate().is_ok() {
        assert!(
            m.top_via().is_some_and(|r| r.is_ok()),
            "valid message without a good Via"
        );
        assert!(m.from().is_some_and(|r| r.is_ok()) && m.to().is_some_and(|r| r.is_ok()));
        assert!(m.call_id().is_some_and(|r| r.is_ok()) && m.cseq().is_some_and(|r| r.is_ok()));
    }
}

fuzz_target!(|data: &[u8]| {
    for limits in [&Limits::DEFAULT, &SMALL] {
        let Ok(m) = Message::parse_with(Bytes::copy_from_slice(data), limits) else {
            continue;
        };
        exercise(&m);
        // The wire form (no leading CRLFs, no trailing octets) parses to the same message.
        let again = Message::parse_with(m.wire(), limits).expect("wire() re-parses");
        assert_eq!(
            again.header_count(),
            m.header_count(),
            "wire() re-parse: header count"
        );
        assert_eq!(again.body(), m.body(), "wire() re-parse: body");
        assert_eq!(again.as_bytes(), m.as_bytes(), "wire() re-parse: bytes");
        let names = |x: &Message| x.fields().iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(names(&again), names(&m));
    }
});
