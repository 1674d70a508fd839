//! `Editor` on a parsed message with a few edits derived from the input: whatever the edits
//! (refused ones included), `finish()` must give a message that parses, with the expected body;
//! with no accepted edit it must be `wire()` itself.
//!
//! Input: byte 0 = number of edits (0 to 4), then 4 bytes per edit (operation, name selector,
//! value selector, value length), then the message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_message::{Editor, HeaderName, Limits, Message};

const NAMES: &[&str] = &[
    "Via",
    "Route",
    "Record-Route",
    "Contact",
    "Subject",
    "X-Test",
    "v",
    "l",
    "Content-Length",
    "content-type",
    "To",
    "bad name",
    "",
    "Call-ID",
    "i",
    "P-Asserted-Identity",
];

const VALUES: &[&str] = &[
    "SIP/2.0/UDP edge.example.com:5060;branch=z9hG4bKedit1",
    "<sip:edge.example.com;lr>",
    "sip:bob@192.0.2.4:5060;transport=tcp",
    "\"Edge\" <sip:edge@example.com>;tag=e1",
    "application/sdp",
    "folded\r\n value",
    "bad\r\nInjected: yes",
    "nul\0byte",
    "",
    "  spaced  ",
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n",
    "\u{e9}t\u{e9}",
];

/// After a re-parse, the limits must not be what rejects an edited message.
const ROOMY: Limits = Limits {
    max_message_size: 1 << 20,
    max_headers: 1024,
    max_line_length: 1 << 20,
    max_params: 1024,
    max_values: 1024,
    max_body_size: 1 << 20,
};

fn value(sel: u8, len: u8) -> &'static str {
    let v = VALUES[usize::from(sel) % VALUES.len()];
    // Cut at a char boundary (a cut may separate CR from LF: the editor must refuse both).
    let mut n = (usize::from(len) % 64).min(v.len());
    if len >= 64 {
        n = v.len();
    }
    while !v.is_char_boundary(n) {
        n -= 1;
    }
    &v[..n]
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 5);
    let Some(ops) = rest.get(..4 * n) else {
        return;
    };
    let raw = &rest[4 * n..];
    let Ok(m) = Message::parse_with(Bytes::copy_from_slice(raw), &Limits::DEFAULT) else {
        return;
    };
    let mut ed = Editor::new(&m);
    let mut accepted = 0;
    let mut body = m.body().to_vec();
    for op in ops.chunks_exact(4) {
        let (name, v) = (NAMES[usize::from(op[1]) % NAMES.len()], value(op[2], op[3]));
        let ok = match op[0] % 14 {
            0 => ed.set_request_uri(v).is_ok(),
            1 => ed.push_via(v).is_ok(),
            2 => ed.pop_via(),
            3 => ed.add_route_front(v).is_ok(),
            4 => ed.remove_first_route(),
            5 => ed.remove_routes() > 0,
            6 => ed.add_record_route(v).is_ok(),
            7 => ed.set_contact(v).is_ok(),
            8 => ed.set_header(name, v).is_ok(),
            9 => ed.remove_header(name).is_ok_and(|k| k > 0),
            10 => ed.add_header(name, v).is_ok(),
            11 => {
                let ok = ed.set_body(Bytes::from_static(v.as_bytes()), None).is_ok();
                if ok {
                    body = v.as_bytes().to_vec();
                }
                ok
            }
            12 => ed.remove_record_routes() > 0,
            _ => ed.set_header(HeaderName::Subject, v).is_ok(),
        };
        accepted += usize::from(ok);
    }
    let out = ed.finish();
    if accepted == 0 {
        assert_eq!(out, m.wire(), "no accepted edit but the output differs");
    }
    let again = match Message::parse_with(out.clone(), &ROOMY) {
        Ok(a) => a,
        Err(e) => panic!(
            "edited message does not parse: {e} in {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.body(), &body[..], "the body changed");
    assert!(!again.start_line_span().is_empty());
    assert_eq!(again.is_request(), m.is_request());
});
