//! `StreamFramer`: the frames (and the error that ends the stream, if any) must not depend on
//! how the stream was cut into reads. Input: byte 0 = flags (bit 0: small limits), byte 1 =
//! number of cut points (at most 16), then that many big-endian u16 cut offsets, then the
//! stream. Every frame is also handed to `Message::parse_with`, which must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::{Frame, FramingError, FramingErrorKind, Limits, Message, StreamFramer};

const SMALL: Limits = Limits {
    max_message_size: 600,
    max_headers: 8,
    max_line_length: 80,
    max_params: 4,
    max_values: 4,
    max_body_size: 200,
};

/// Pushes the pieces one after another, draining after each push.
fn run(limits: &Limits, pieces: &[&[u8]]) -> (Vec<Frame>, Option<FramingError>) {
    let mut f = StreamFramer::new(limits.clone());
    let mut frames = Vec::new();
    for p in pieces {
        f.push(p);
        loop {
            match f.next_frame() {
                Ok(Some(fr)) => frames.push(fr),
                Ok(None) => break,
                Err(e) => {
                    // A failed framer stays failed and keeps returning the same error.
                    assert_eq!(f.next_frame(), Err(e));
                    assert!(f.is_failed());
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}

/// The same frames, and a failure in both runs or in neither. Which limit error ends the
/// stream may still depend on the cut when two limits trip within one line (README.md, F2
/// and F4); a Content-Length error no longer does.
fn same(a: &(Vec<Frame>, Option<FramingError>), b: &(Vec<Frame>, Option<FramingError>), how: &str) {
    assert_eq!(a.0, b.0, "frames depend on how the stream was cut ({how})");
    assert_eq!(
        a.1.is_some(),
        b.1.is_some(),
        "failure depends on the cut ({how}): {:?} vs {:?}",
        a.1,
        b.1
    );
    if let (Some(x), Some(y)) = (&a.1, &b.1) {
        let limit = |k: FramingErrorKind| {
            matches!(
                k,
                FramingErrorKind::LineTooLong
                    | FramingErrorKind::HeaderTooLarge
                    | FramingErrorKind::TooManyHeaders
            )
        };
        if !(limit(x.kind) && limit(y.kind)) {
            assert_eq!(x, y, "error depends on the cut ({how})");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = if data[0] & 1 == 1 {
        SMALL
    } else {
        Limits::DEFAULT
    };
    let n = usize::from(data[1] % 17);
    let Some(cuts_raw) = data.get(2..2 + 2 * n) else {
        return;
    };
    let stream = &data[2 + 2 * n..];
    let mut cuts: Vec<usize> = cuts_raw
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for c in cuts {
        pieces.push(&stream[at..c]);
        at = c;
    }
    pieces.push(&stream[at..]);

    let whole = run(&limits, &[stream]);
    let cut = run(&limits, &pieces);
    same(&whole, &cut, "cut into pieces");

    // Byte at a time must agree too (the framer claims linear work however the stream is cut).
    if stream.len() <= 2048 {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        same(&whole, &run(&limits, &bytes), "byte at a time");
    }

    for fr in &whole.0 {
        if let Frame::Message(m) = fr {
            assert!(!m.is_empty());
            assert!(m.len() <= limits.max_message_size);
            if let Ok(msg) = Message::parse_with(m.clone(), &limits) {
                let _ = msg.header_count();
            }
        }
    }
});
