//! Stream framing for TCP and TLS (RFC 3261 18.3): cuts a byte stream into messages.
//!
//! [`StreamFramer`] is sans-IO and push-style: the transport [`push`](StreamFramer::push)es
//! whatever it read, then calls [`next_frame`](StreamFramer::next_frame) until it returns
//! `Ok(None)`. Each [`Frame::Message`] is one whole message, from the start line to the end of
//! the body that Content-Length announces, split off the internal buffer without copying; parse
//! it with [`Message::parse_with`](crate::Message::parse_with) and the same [`Limits`].
//!
//! The end of the header section is searched incrementally: every byte is examined once however
//! the stream is cut, so byte-at-a-time input costs linear time. Limits are checked as bytes
//! arrive, so an oversized header section, line or body is rejected as soon as it is known to be
//! too large, without waiting for (or buffering) the rest.
//!
//! CRLFs between messages are skipped (RFC 3261 7.5); a double CRLF is a keepalive "ping"
//! (RFC 5626 3.5.1) reported as [`Frame::Keepalive`] so that the transport can answer with a
//! single CRLF "pong".
//!
//! **After an error the stream is unusable.** Where the next message starts can no longer be
//! known, so the framer stays failed: `next_frame` returns the same error again and `push`
//! discards its input. The transport must close the connection (after answering a request with
//! [`FramingError::status_code`] if it wishes).

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::chars::TOKEN;
use crate::limits::Limits;
use crate::name::HeaderName;

/// What [`StreamFramer::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message, start line to end of body (leading CRLFs removed).
    Message(Bytes),
    /// A CRLFCRLF keepalive ping between messages (RFC 5626 3.5.1): answer with CRLF.
    Keepalive,
}

/// Why a stream cannot be framed. Each limit has its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FramingErrorKind {
    /// The header section is longer than `Limits::max_message_size`.
    HeaderTooLarge,
    /// The start line, or a header field with its folded lines, is longer than
    /// `Limits::max_line_length`.
    LineTooLong,
    /// More header fields than `Limits::max_headers`.
    TooManyHeaders,
    /// No Content-Length: mandatory on streams (RFC 3261 18.3).
    MissingContentLength,
    /// Content-Length is not a number of at most 10 digits.
    BadContentLength,
    /// Two Content-Length fields.
    DuplicateContentLength,
    /// Content-Length is larger than `Limits::max_body_size`.
    BodyTooLarge,
    /// Header section plus Content-Length is larger than `Limits::max_message_size`.
    MessageTooLarge,
}

impl FramingErrorKind {
    /// A short human reason, suitable for a reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            FramingErrorKind::HeaderTooLarge => "header section too large",
            FramingErrorKind::LineTooLong => "line too long",
            FramingErrorKind::TooManyHeaders => "too many headers",
            FramingErrorKind::MissingContentLength => "Content-Length required on streams",
            FramingErrorKind::BadContentLength => "bad Content-Length",
            FramingErrorKind::DuplicateContentLength => "several Content-Length values",
            FramingErrorKind::BodyTooLarge => "body too large",
            FramingErrorKind::MessageTooLarge => "message too large",
        }
    }
}

/// A framing failure: what, and where as a byte offset in the stream (counted from the first
/// byte ever pushed into the framer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FramingError {
    pub kind: FramingErrorKind,
    pub offset: u64,
}

impl FramingError {
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The status a server may answer the offending request with before closing.
    pub fn status_code(&self) -> u16 {
        match self.kind {
            FramingErrorKind::HeaderTooLarge
            | FramingErrorKind::BodyTooLarge
            | FramingErrorKind::MessageTooLarge => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "framing error at stream byte {}: {}",
            self.offset,
            self.kind.reason()
        )
    }
}

impl std::error::Error for FramingError {}

/// Progress through the header section of the message at the front of the buffer. Positions
/// are indices into the buffer, whose first byte is the first byte of the start line.
#[derive(Debug, Clone, Default)]
struct HeadScan {
    /// Where the search for the next LF resumes: everything before has been examined.
    scan: usize,
    /// Start of the physical line being scanned.
    line_start: usize,
    /// Still on the start line.
    in_start_line: bool,
    /// Start of the current logical header field (with its folded lines), if any.
    field_start: Option<usize>,
    /// Header fields seen so far.
    fields: usize,
    /// Content-Length value and the buffer index of the value.
    content_length: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
enum State {
    /// Between messages: skipping CRLFs.
    Between,
    /// Looking for the end of the header section.
    Head(HeadScan),
    /// Header section complete: waiting until the buffer holds `len` bytes of message.
    Body { len: usize },
    /// Failed for good.
    Failed(FramingError),
}

/// A push-style, sans-IO framer for one TCP or TLS connection. See the module documentation.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    state: State,
    /// Stream offset of `buf[0]`.
    consumed: u64,
    /// Bytes handed to the LF search, to prove that nothing is examined twice.
    #[cfg(test)]
    examined: usize,
}

const CRLFCRLF: &[u8] = b"\r\n\r\n";

impl StreamFramer {
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            state: State::Between,
            consumed: 0,
            #[cfg(test)]
            examined: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends bytes read from the connection. Call [`next_frame`](Self::next_frame) until it
    /// returns `Ok(None)` after each push: limits are checked there, so a caller that pushes
    /// without draining lets the buffer grow. Discarded once the framer has failed.
    pub fn push(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the framer has failed (the connection must be closed).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// The next frame, `Ok(None)` when more data is needed, or the error that ends the stream
    /// (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(*e),
                State::Between => {
                    let b = &self.buf[..];
                    if b.is_empty() {
                        return Ok(None);
                    }
                    if b.starts_with(CRLFCRLF) {
                        self.advance(CRLFCRLF.len());
                        return Ok(Some(Frame::Keepalive));
                    }
                    if b[0] == b'\r' && CRLFCRLF.starts_with(b) {
                        // Could still become a keepalive.
                        return Ok(None);
                    }
                    // A lone CRLF (or a stray CR or LF) before a start line is ignored.
                    let skip = if b.starts_with(b"\r\n") {
                        2
                    } else if b[0] == b'\r' || b[0] == b'\n' {
                        1
                    } else {
                        self.state = State::Head(HeadScan {
                            in_start_line: true,
                            ..HeadScan::default()
                        });
                        continue;
                    };
                    self.advance(skip);
                }
                State::Head(h) => {
                    let mut h = std::mem::take(h);
                    #[cfg(test)]
                    {
                        self.examined += self.buf.len().saturating_sub(h.scan);
                    }
                    let done = scan_head(&self.buf, &mut h, &self.limits);
                    match done {
                        Err((kind, at)) => return Err(self.fail(kind, at)),
                        Ok(None) => {
                            self.state = State::Head(h);
                            return Ok(None);
                        }
                        Ok(Some(head_len)) => {
                            let (n, at) = match h.content_length {
                                Some(cl) => cl,
                                None => {
                                    return Err(self.fail(FramingErrorKind::MissingContentLength, 0))
                                }
                            };
                            if n > self.limits.max_body_size {
                                return Err(self.fail(FramingErrorKind::BodyTooLarge, at));
                            }
                            match head_len.checked_add(n) {
                                Some(len) if len <= self.limits.max_message_size => {
                                    self.state = State::Body { len };
                                }
                                _ => return Err(self.fail(FramingErrorKind::MessageTooLarge, at)),
                            }
                        }
                    }
                }
                State::Body { len } => {
                    let len = *len;
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    let frame = self.buf.split_to(len).freeze();
                    self.consumed += len as u64;
                    self.state = State::Between;
                    return Ok(Some(Frame::Message(frame)));
                }
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.consumed += n as u64;
    }

    /// Enters the failed state; `at` is an index into the buffer. The buffer is released.
    fn fail(&mut self, kind: FramingErrorKind, at: usize) -> FramingError {
        let e = FramingError {
            kind,
            offset: self.consumed + at as u64,
        };
        self.state = State::Failed(e);
        self.buf = BytesMut::new();
        e
    }
}

type ScanResult = Result<Option<usize>, (FramingErrorKind, usize)>;

/// Advances `h` over the complete lines of `b` not examined yet. Returns the length of the
/// header section (up to and including the empty line) once it is complete.
fn scan_head(b: &[u8], h: &mut HeadScan, limits: &Limits) -> ScanResult {
    let max_line = limits.max_line_length;
    loop {
        let rest = b.get(h.scan..).unwrap_or(&[]);
        let Some(i) = memchr::memchr(b'\n', rest) else {
            h.scan = b.len();
            // A partial line that starts with anything but white space or a line break closes
            // the previous field. Close it now, so that the error a stream gets does not depend
            // on where TCP cut it (fuzz finding F2).
            if !h.in_start_line {
                if let (Some(&first), Some(fs)) = (b.get(h.line_start), h.field_start) {
                    if !matches!(first, b' ' | b'\t' | b'\r' | b'\n') {
                        h.field_start = None;
                        end_field(b, fs, h.line_start, h)?;
                    }
                }
            }
            check_partial_line(b, h, limits)?;
            if b.len() > limits.max_message_size {
                return Err((FramingErrorKind::HeaderTooLarge, limits.max_message_size));
            }
            return Ok(None);
        };
        let ls = h.line_start;
        let next = h.scan + i + 1;
        let line = b.get(ls..next - 1).unwrap_or(&[]);
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if next > limits.max_message_size {
            return Err((FramingErrorKind::HeaderTooLarge, limits.max_message_size));
        }
        if h.in_start_line {
            if content.len() > max_line {
                return Err((FramingErrorKind::LineTooLong, ls));
            }
            h.in_start_line = false;
        } else if content.is_empty() {
            if let Some(fs) = h.field_start.take() {
                end_field(b, fs, ls, h)?;
            }
            return Ok(Some(next));
        } else if let (Some(b' ' | b'\t'), Some(fs)) = (content.first(), h.field_start) {
            // A folded continuation of the current field.
            if next - fs > max_line {
                return Err((FramingErrorKind::LineTooLong, fs));
            }
        } else {
            if let Some(fs) = h.field_start.take() {
                end_field(b, fs, ls, h)?;
            }
            if h.fields >= limits.max_headers {
                return Err((FramingErrorKind::TooManyHeaders, ls));
            }
            h.fields += 1;
            h.field_start = Some(ls);
            if next - ls > max_line {
                return Err((FramingErrorKind::LineTooLong, ls));
            }
        }
        h.line_start = next;
        h.scan = next;
    }
}

/// Limit checks on the incomplete last line, so that an oversized line or one field too many
/// is rejected without waiting for its end.
fn check_partial_line(
    b: &[u8],
    h: &HeadScan,
    limits: &Limits,
) -> Result<(), (FramingErrorKind, usize)> {
    let ls = h.line_start;
    let Some(&first) = b.get(ls) else {
        return Ok(());
    };
    if h.in_start_line {
        // The line break is not counted for the start line; a final CR may belong to it.
        let seen = b.len() - ls - usize::from(b.last() == Some(&b'\r'));
        if seen > limits.max_line_length {
            return Err((FramingErrorKind::LineTooLong, ls));
        }
        return Ok(());
    }
    match (first, h.field_start) {
        (b' ' | b'\t', Some(fs)) => {
            if b.len() - fs > limits.max_line_length {
                return Err((FramingErrorKind::LineTooLong, fs));
            }
        }
        (b'\r' | b'\n', _) => {}
        _ => {
            if h.fields >= limits.max_headers {
                return Err((FramingErrorKind::TooManyHeaders, ls));
            }
            if b.len() - ls > limits.max_line_length {
                return Err((FramingErrorKind::LineTooLong, ls));
            }
        }
    }
    Ok(())
}

/// A header field `b[start..end]` (with its final line break) is complete: if it is
/// Content-Length, read its value exactly as `Message::parse_with` does.
fn end_field(
    b: &[u8],
    start: usize,
    end: usize,
    h: &mut HeadScan,
) -> Result<(), (FramingErrorKind, usize)> {
    let field = b.get(start..end).unwrap_or(&[]);
    let name_end = field
        .iter()
        .position(|c| !TOKEN[*c as usize])
        .unwrap_or(field.len());
    if HeaderName::from_bytes(&field[..name_end]) != HeaderName::ContentLength {
        return Ok(());
    }
    let mut i = name_end;
    while matches!(field.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if field.get(i) != Some(&b':') {
        // Not a header field at all: the parser rejects the message.
        return Ok(());
    }
    if h.content_length.is_some() {
        return Err((FramingErrorKind::DuplicateContentLength, start));
    }
    let mut ve = field.len();
    if field.get(ve.wrapping_sub(1)) == Some(&b'\n') {
        ve -= 1;
    }
    if field.get(ve.wrapping_sub(1)) == Some(&b'\r') {
        ve -= 1;
    }
    let mut vs = i + 1;
    while vs < ve && matches!(field[vs], b' ' | b'\t' | b'\r' | b'\n') {
        vs += 1;
    }
    while ve > vs && matches!(field[ve - 1], b' ' | b'\t') {
        ve -= 1;
    }
    let v = &field[vs..ve];
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return Err((FramingErrorKind::BadContentLength, start + vs));
    }
    let n = v.iter().fold(0u64, |a, c| a * 10 + u64::from(c - b'0'));
    let n = usize::try_from(n).map_err(|_| (FramingErrorKind::BadContentLength, start + vs))?;
    h.content_length = Some((n, start + vs));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use proptest::prelude::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@biloxi.com>\r\n\
From: <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\
\r\n";

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bK74bf9\r\n\
Subject: folded\r\n\
\x20over two lines\r\n\
Content-Length:\r\n\
\t14\r\n\
\r\n\
v=0\r\no=- 1 1\r\n";

    const RESPONSE: &[u8] =
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nl: 5\r\n\r\nhello";

    fn drain(f: &mut StreamFramer) -> Result<Vec<Frame>, FramingError> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame()? {
            out.push(fr);
        }
        Ok(out)
    }

    fn frames_of(chunks: &[&[u8]]) -> Result<Vec<Frame>, FramingError> {
        let mut f = StreamFramer::new(Limits::DEFAULT);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            out.extend(drain(&mut f)?);
        }
        Ok(out)
    }

    fn msg(b: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(b))
    }

    fn err(chunks: &[&[u8]]) -> FramingError {
        frames_of(chunks).unwrap_err()
    }

    #[test]
    fn one_message_in_one_push() {
        assert_eq!(frames_of(&[OPTIONS]).unwrap(), vec![msg(OPTIONS)]);
        let frames = frames_of(&[INVITE]).unwrap();
        assert_eq!(frames, vec![msg(INVITE)]);
        let Frame::Message(b) = &frames[0] else {
            panic!()
        };
        assert_eq!(
            Message::parse(b.clone()).unwrap().body(),
            b"v=0\r\no=- 1 1\r\n"
        );
    }

    #[test]
    fn byte_at_a_time_is_linear() {
        let mut big = b"MESSAGE sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..200 {
            big.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(200)).as_bytes());
        }
        big.extend_from_slice(b"Content-Length: 3\r\n\r\nabc");
        let mut stream = big.clone();
        stream.extend_from_slice(RESPONSE);
        let mut f = StreamFramer::new(Limits::DEFAULT);
        let mut out = Vec::new();
        for c in &stream {
            f.push(std::slice::from_ref(c));
            out.extend(drain(&mut f).unwrap());
        }
        assert_eq!(out, vec![msg(&big), msg(RESPONSE)]);
        // Every byte handed to the LF search once (quadratic rescanning would be ~len^2/2).
        assert!(
            f.examined <= stream.len(),
            "{} > {}",
            f.examined,
            stream.len()
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn pipelined_messages_in_one_push() {
        let mut all = OPTIONS.to_vec();
        all.extend_from_slice(INVITE);
        all.extend_from_slice(RESPONSE);
        all.extend_from_slice(&OPTIONS[..20]);
        let mut f = StreamFramer::new(Limits::DEFAULT);
        f.push(&all);
        assert_eq!(
            drain(&mut f).unwrap(),
            vec![msg(OPTIONS), msg(INVITE), msg(RESPONSE)]
        );
        assert_eq!(f.buffered(), 20);
        f.push(&OPTIONS[20..]);
        assert_eq!(drain(&mut f).unwrap(), vec![msg(OPTIONS)]);
    }

    #[test]
    fn keepalives_and_crlfs_between_messages() {
        let frames =
            frames_of(&[b"\r\n\r\n", OPTIONS, b"\r\n", RESPONSE, b"\r\n\r\n\r\n\r\n"]).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Keepalive,
                msg(OPTIONS),
                msg(RESPONSE),
                Frame::Keepalive,
                Frame::Keepalive
            ]
        );
        // A ping split across reads is still a ping; a lone CRLF is not.
        assert_eq!(
            frames_of(&[b"\r", b"\n\r", b"\n"]).unwrap(),
            vec![Frame::Keepalive]
        );
        assert_eq!(frames_of(&[b"\r\n", OPTIONS]).unwrap(), vec![msg(OPTIONS)]);
        assert_eq!(
            frames_of(&[b"\r\n\r\n\r\n", OPTIONS]).unwrap(),
            vec![Frame::Keepalive, msg(OPTIONS)]
        );
        let mut f = StreamFramer::new(Limits::DEFAULT);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Keepalive)));
    }

    #[test]
    fn content_length_is_required_and_checked() {
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        let e = err(&[b"\r\n", no_cl]);
        assert_eq!(e.kind, FramingErrorKind::MissingContentLength);
        assert_eq!(e.offset, 2);
        let dup = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n";
        let e = err(&[dup]);
        assert_eq!(e.kind, FramingErrorKind::DuplicateContentLength);
        assert_eq!(e.offset, 31);
        for bad in [
            &b"l: -1"[..],
            b"L: 1 2",
            b"Content-Length: 12345678901",
            b"Content-Length:",
            b"l: 0x1",
        ] {
            let mut m = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
            m.extend_from_slice(bad);
            m.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                err(&[&m]).kind,
                FramingErrorKind::BadContentLength,
                "{bad:?}"
            );
        }
        // Case-insensitive names, compact form, folded value, white space before the colon.
        for good in [
            &b"CONTENT-LENGTH: 2"[..],
            b"L :2",
            b"Content-Length:\r\n  2  ",
            b"content-length\t:\t2",
        ] {
            let mut m = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
            m.extend_from_slice(good);
            m.extend_from_slice(b"\r\n\r\nokEXTRA");
            let frames = frames_of(&[&m]).unwrap();
            assert_eq!(frames, vec![msg(&m[..m.len() - 5])], "{good:?}");
            let Frame::Message(b) = &frames[0] else {
                panic!()
            };
            assert_eq!(Message::parse(b.clone()).unwrap().body(), b"ok");
        }
        // Lookalike names are not Content-Length.
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Lengths: 2\r\nX-l: 1\r\n\r\n";
        assert_eq!(err(&[m]).kind, FramingErrorKind::MissingContentLength);
    }

    #[test]
    fn error_is_final() {
        let mut f = StreamFramer::new(Limits::DEFAULT);
        f.push(OPTIONS);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n");
        assert_eq!(f.next_frame(), Ok(Some(msg(OPTIONS))));
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.kind, FramingErrorKind::MissingContentLength);
        assert_eq!(e.offset, OPTIONS.len() as u64);
        f.push(OPTIONS);
        assert!(f.is_failed());
        assert_eq!(f.buffered(), 0);
        assert_eq!(f.next_frame(), Err(e));
    }

    fn small() -> Limits {
        Limits {
            max_message_size: 600,
            max_headers: 5,
            max_line_length: 100,
            max_body_size: 300,
            ..Limits::DEFAULT
        }
    }

    /// Feeds `data` and returns the error, checking that it came without needing more bytes.
    fn small_err(data: &[u8]) -> FramingError {
        let mut f = StreamFramer::new(small());
        f.push(data);
        drain(&mut f).unwrap_err()
    }

    #[test]
    fn limits_reject_early_with_distinct_errors() {
        // Header section: no line too long, still no end after max_message_size bytes.
        let mut head = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        while head.len() <= 600 {
            head.extend_from_slice(b"X: 1234567890\r\n");
        }
        let mut f = StreamFramer::new(Limits {
            max_headers: 256,
            ..small()
        });
        f.push(&head);
        let e = drain(&mut f).unwrap_err();
        assert_eq!((e.kind, e.offset), (FramingErrorKind::HeaderTooLarge, 600));
        // One long line, rejected while still incomplete.
        let mut long = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 100));
        let e = small_err(&long);
        assert_eq!((e.kind, e.offset), (FramingErrorKind::LineTooLong, 25));
        let mut sl = b"OPTIONS sip:".to_vec();
        sl.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(small_err(&sl).kind, FramingErrorKind::LineTooLong);
        // Folded lines count towards the field.
        let mut folded = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: a\r\n".to_vec();
        for _ in 0..10 {
            folded.extend_from_slice(b" 123456789\r\n");
        }
        assert_eq!(small_err(&folded).kind, FramingErrorKind::LineTooLong);
        // Header count, known as soon as the sixth field starts.
        let many = b"OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF";
        let e = small_err(many);
        assert_eq!(
            (e.kind, e.offset),
            (FramingErrorKind::TooManyHeaders, many.len() as u64 - 1)
        );
        // Body and message size, known from Content-Length before the body arrives.
        let e = small_err(b"\r\nOPTIONS sip:a@b SIP/2.0\r\nl: 301\r\n\r\n");
        assert_eq!((e.kind, e.offset), (FramingErrorKind::BodyTooLarge, 30));
        let mut big = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for _ in 0..4 {
            big.extend_from_slice(format!("X: {}\r\n", "y".repeat(90)).as_bytes());
        }
        big.extend_from_slice(b"l: 300\r\n\r\n");
        assert_eq!(small_err(&big).kind, FramingErrorKind::MessageTooLarge);
        // At the limits exactly, all is well.
        let mut ok = b"OPTIONS sip:a@b SIP/2.0\r\nl: 300\r\n\r\n".to_vec();
        ok.extend(std::iter::repeat_n(b'b', 300));
        let mut f = StreamFramer::new(small());
        f.push(&ok);
        assert_eq!(drain(&mut f).unwrap(), vec![msg(&ok)]);
    }

    fn valid_message() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![
                "INVITE sip:bob@biloxi.com SIP/2.0",
                "SIP/2.0 180 Ringing",
                "OPTIONS sip:x SIP/2.0",
            ]),
            prop::collection::vec(
                prop::sample::select(vec![
                    "Via: SIP/2.0/TCP a;branch=z9hG4bK1",
                    "Subject: two\r\n lines",
                    "X-Empty:",
                    "To: <sip:a@b>",
                ]),
                0..4,
            ),
            prop::sample::select(vec!["Content-Length", "l", "CONTENT-length", "l\t"]),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(sl, hs, cl, body)| {
                let mut m = format!("{sl}\r\n").into_bytes();
                for h in hs {
                    m.extend_from_slice(h.as_bytes());
                    m.extend_from_slice(b"\r\n");
                }
                m.extend_from_slice(format!("{cl}: {}\r\n\r\n", body.len()).as_bytes());
                m.extend_from_slice(&body);
                m
            })
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(
            items in prop::collection::vec(
                (valid_message(), prop::sample::select(vec!["", "\r\n", "\r\n\r\n"])), 1..5),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (m, sep) in &items {
                stream.extend_from_slice(sep.as_bytes());
                if *sep == "\r\n\r\n" {
                    expected.push(Frame::Keepalive);
                }
                stream.extend_from_slice(m);
                expected.push(msg(m));
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let frames = frames_of(&chunks).unwrap();
            prop_assert_eq!(&frames, &expected);
            for fr in frames {
                if let Frame::Message(b) = fr {
                    prop_assert!(Message::parse(b).is_ok());
                }
            }
        }

        #[test]
        fn arbitrary_input_never_panics(data in prop::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let at = cut.index(data.len() + 1);
            let mut f = StreamFramer::new(small());
            f.push(&data[..at]);
            let _ = drain(&mut f);
            f.push(&data[at..]);
            let _ = drain(&mut f);
        }
    }
}
