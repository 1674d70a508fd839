//! Inputs found by the fuzz targets (fuzz/README.md, "Results"), kept as regression tests.
//! Tests marked `#[ignore]` document a finding whose fix belongs to another module's owner:
//! run them with `cargo test -p sip-message --test regressions -- --ignored`.

use bytes::Bytes;
use sip_message::{Frame, FramingError, Limits, Message, StreamFramer, Uri};

/// F1 (fuzz target `uri`): a parameter written twice, once as a flag and once with a value,
/// made `Uri::equivalent` non-reflexive (the comparison looked up the first occurrence on the
/// other side for every occurrence on this side). Fixed in uri.rs.
#[test]
fn f1_uri_with_repeated_parameter_is_equivalent_to_itself() {
    for s in [
        "tEL:E;0E;0=:E;0E;0=E;E0LLL",
        "tEL:FFFFFFFFFFFFFFFFFFFFEE;E0E;E0LLt;E0LLLLL=t;tEE=E0LEE;ML0LLLLL=t;tEE=E1LEE;MLL",
        "tel:1;a;a=b",
        "sip:h;a;a=b",
        "sip:alice@h;%61=1;a=2",
    ] {
        let u = Uri::parse(s).unwrap();
        assert!(u.equivalent(&u), "{s}");
        let again = Uri::parse(u.as_str()).unwrap();
        assert!(u.equivalent(&again) && again.equivalent(&u), "{s}");
    }
}

fn frames(limits: &Limits, pieces: &[&[u8]]) -> (Vec<Frame>, Option<FramingError>) {
    let mut f = StreamFramer::new(limits.clone());
    let mut out = Vec::new();
    for p in pieces {
        f.push(p);
        loop {
            match f.next_frame() {
                Ok(Some(fr)) => out.push(fr),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// F2 (fuzz target `stream_framer`): when a bad Content-Length field is followed by one field
/// too many, the stream fails with `BadContentLength` (offset 18) when pushed whole but with
/// `TooManyHeaders` (offset 19) when pushed a byte at a time: the Content-Length of a field is
/// checked when the field is known to end (first byte of the next line), and in the byte-wise
/// case the field count of the next line is checked first. Both reject the stream, so nothing
/// gets through, but the error (and the 400/513 answer) depends on TCP segmentation.
/// Owner: framing.rs.
#[test]
fn f2_framing_error_does_not_depend_on_the_cut() {
    let limits = Limits {
        max_message_size: 600,
        max_headers: 8,
        max_line_length: 80,
        max_params: 4,
        max_values: 4,
        max_body_size: 200,
    };
    let stream: &[u8] = b"\xff\no\n\x00\n\x00\n:\n\x00\n\x00\nm\nl:\n\x00\n";
    let whole = frames(&limits, &[stream]);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let bytewise = frames(&limits, &bytes);
    assert!(whole.1.is_some() && bytewise.1.is_some());
    assert_eq!(whole, bytewise);
}

/// F3 (fuzz target `sip_message`): `Limits::max_values` is documented per header field, and
/// `decode_all_headers` applies it per field, but `TypedIter` (so `vias()`, `contacts()`,
/// `routes()`, `record_routes()`, `typed_all`) counts the values of all fields of the name:
/// 65 Via fields of one value each decode with `decode_all_headers` and fail in `vias()` with
/// TooManyValues. Owner: typed.rs.
#[test]
fn f3_typed_iter_counts_values_per_field() {
    let mut m = b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n".to_vec();
    for i in 0..65 {
        m.extend_from_slice(
            format!("Via: SIP/2.0/UDP h{i}.example.com;branch=z9hG4bK{i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let msg = Message::parse(m).unwrap();
    assert_eq!(msg.decode_all_headers().unwrap(), 69);
    assert_eq!(msg.vias().filter(|v| v.is_ok()).count(), 65);
}

/// The F3 reproducer as the fuzzer found it (with `max_values = 3`).
#[test]
fn f3_fuzzer_input() {
    let limits = Limits {
        max_values: 3,
        ..Limits::DEFAULT
    };
    let raw = b"S i:u SIP/2.0\nV:I/0/U a\nV:P/0/S j\nV:P/0/L j\nV:S/2/N d\n\n";
    let msg = Message::parse_with(Bytes::from_static(raw), &limits).unwrap();
    assert!(msg.decode_all_headers().is_ok());
    assert!(msg.vias().all(|v| v.is_ok()));
}
