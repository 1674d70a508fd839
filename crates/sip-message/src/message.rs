//! The message: start line and header fields located in one pass over a `Bytes` buffer.
//! Nothing is copied; typed values are decoded on demand from the located slices.

use std::ops::Range;

use bytes::Bytes;

use crate::chars::TOKEN;
use crate::error::{ErrorKind, ParseError, Result};
use crate::lex::Cursor;
use crate::limits::Limits;
use crate::method::Method;
use crate::name::HeaderName;
use crate::simd;
use crate::uri::{parse_uri, Uri, UriContext};

/// A span of the message buffer. `u32` keeps the header index small; messages are far below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    #[inline]
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    #[inline]
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
    #[inline]
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// One header field (one line, with its folded continuation lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField {
    pub name: HeaderName,
    /// The name as written.
    pub name_span: Span,
    /// The value, leading and trailing white space removed, folds kept.
    pub value_span: Span,
    /// The whole field from the first byte of the name to after its final line break.
    pub line_span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri_span: Span,
        version_span: Span,
    },
    Response {
        version_span: Span,
        code: u16,
        reason_span: Span,
    },
}

/// A parsed SIP message. Cheap to clone (the buffer is reference counted).
#[derive(Debug, Clone)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    /// Where the start line begins (after any leading CRLFs) and ends (after its line break).
    start_line_span: Span,
    headers: Vec<HeaderField>,
    /// Offset of the first byte after the empty line that ends the header section.
    head_end: u32,
    body: Span,
    content_length: Option<u32>,
    max_params: u16,
    max_values: u16,
}

/// The index of the first byte that is neither CR nor LF, 16 bytes at a time (a flood of
/// empty lines costs little).
fn skip_line_breaks(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(m) = simd::mask2(b, i, b'\r', b'\n') {
        if m != 0xffff {
            return Some(i + (!m).trailing_zeros() as usize);
        }
        i += 16;
    }
    let tail = b.get(i..)?;
    tail.iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .map(|k| i + k)
}

/// The general header-name path: the name (token characters), optional SP/HT, the colon.
/// Returns the end of the name and the index after the colon.
fn scan_name(b: &[u8], line_start: usize) -> Result<(usize, usize)> {
    let mut i = line_start;
    while let Some(&c) = b.get(i) {
        if !TOKEN[c as usize] {
            break;
        }
        i += 1;
    }
    let name_end = i;
    while matches!(b.get(i), Some(b' ') | Some(b'\t')) {
        i += 1;
    }
    match b.get(i) {
        Some(b':') if name_end > line_start => Ok((name_end, i + 1)),
        Some(b':') => Err(ParseError::new(ErrorKind::BadHeaderName, line_start)),
        None => Err(ParseError::new(ErrorKind::Truncated, i)),
        Some(b'\r') | Some(b'\n') => Err(ParseError::new(ErrorKind::MissingColon, i)),
        Some(_) if name_end == line_start => {
            Err(ParseError::new(ErrorKind::BadHeaderName, line_start))
        }
        Some(_) => Err(ParseError::new(ErrorKind::MissingColon, i)),
    }
}

/// Finds the end of the line starting at `from`: returns (index of the line break, index after
/// it). Accepts CRLF and, liberally, a bare LF; a CR not followed by LF is an error.
#[inline(always)]
fn find_eol(b: &[u8], from: usize) -> Result<(usize, usize)> {
    let rest = b.get(from..).unwrap_or(&[]);
    match find_cr_or_lf(rest) {
        None => Err(ParseError::new(ErrorKind::Truncated, b.len())),
        Some(i) => {
            let at = from + i;
            if b[at] == b'\n' {
                Ok((at, at + 1))
            } else if b.get(at + 1) == Some(&b'\n') {
                Ok((at, at + 2))
            } else if at + 1 == b.len() {
                Err(ParseError::new(ErrorKind::Truncated, b.len()))
            } else {
                Err(ParseError::new(ErrorKind::BadHeaderValue, at))
            }
        }
    }
}

/// The first CR or LF in `s`. Header lines are short (most under 64 bytes) and memchr2's
/// vector setup costs more than such a line, so look 16 bytes at a time first and hand what
/// remains of a longer line to memchr2, so that a 16 KiB line still runs at full vector speed.
#[inline]
fn find_cr_or_lf(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < 64 {
        match simd::mask2(s, i, b'\r', b'\n') {
            Some(0) => i += 16,
            Some(m) => return Some(i + m.trailing_zeros() as usize),
            None => return simd::find2(s.get(i..)?, b'\r', b'\n').map(|k| i + k),
        }
    }
    memchr::memchr2(b'\r', b'\n', s.get(i..)?).map(|j| i + j)
}

impl Message {
    /// Parses a message with the default [`Limits`].
    pub fn parse(buf: impl Into<Bytes>) -> Result<Message> {
        Self::parse_with(buf.into(), &Limits::DEFAULT)
    }

    /// Parses one message from a datagram or from a frame cut by [`crate::StreamFramer`].
    /// Octets after the body that Content-Length announces are ignored (RFC 3261 18.3,
    /// `dblreq.dat`). Without Content-Length the body is the rest of the buffer.
    pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<Message> {
        let b: &[u8] = &buf;
        if b.len() > limits.max_message_size {
            return Err(ParseError::new(
                ErrorKind::MessageTooLarge,
                limits.max_message_size,
            ));
        }
        // Leading CRLFs are ignored (RFC 3261 7.5).
        let mut pos = skip_line_breaks(b).ok_or(ParseError::new(ErrorKind::Empty, 0))?;
        let sl_start = pos;
        let (eol, next) = find_eol(b, pos)?;
        if eol - pos > limits.max_line_length {
            return Err(ParseError::new(ErrorKind::LineTooLong, pos));
        }
        let start = parse_start_line(b, pos, eol, limits)?;
        let start_line_span = Span::new(sl_start, next);
        pos = next;

        let mut headers: Vec<HeaderField> = Vec::with_capacity(16);
        let mut content_length: Option<(u32, usize)> = None;
        let head_end;
        loop {
            match b.get(pos) {
                None => return Err(ParseError::new(ErrorKind::Truncated, pos)),
                Some(b'\r') => {
                    if b.get(pos + 1) == Some(&b'\n') {
                        head_end = pos + 2;
                        break;
                    }
                    return Err(ParseError::new(
                        if pos + 1 == b.len() {
                            ErrorKind::Truncated
                        } else {
                            ErrorKind::BadHeaderName
                        },
                        pos,
                    ));
                }
                Some(b'\n') => {
                    head_end = pos + 1;
                    break;
                }
                _ => {}
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::new(ErrorKind::TooManyHeaders, pos));
            }
            let line_start = pos;
            // Most lines start with a known name in its canonical spelling followed directly by
            // the colon: recognised with one compare, no byte-by-byte scan. Anything else
            // (other spellings, extension names, white space before the colon, errors) takes
            // the general path.
            let (name, name_end, i) = match HeaderName::canonical_at(b, line_start) {
                Some((name, len)) => (name, line_start + len, line_start + len + 1),
                None => {
                    let (name_end, i) = scan_name(b, line_start)?;
                    (
                        HeaderName::from_bytes(&b[line_start..name_end]),
                        name_end,
                        i,
                    )
                }
            };
            // The field ends at the first line break not followed by SP/HT (a fold).
            let value_from = i;
            let (mut eol, mut next) = find_eol(b, i)?;
            while matches!(b.get(next), Some(b' ') | Some(b'\t')) {
                if next - line_start > limits.max_line_length {
                    return Err(ParseError::new(ErrorKind::LineTooLong, line_start));
                }
                (eol, next) = find_eol(b, next)?;
            }
            if next - line_start > limits.max_line_length {
                return Err(ParseError::new(ErrorKind::LineTooLong, line_start));
            }
            // Usually one space, then the value, and no white space at its end.
            let vs = if b.get(value_from) == Some(&b' ')
                && b.get(value_from + 1).is_some_and(|&c| c > b' ')
            {
                value_from + 1
            } else {
                let mut vs = value_from;
                while vs < eol {
                    match b[vs] {
                        b' ' | b'\t' | b'\n' => vs += 1,
                        b'\r' => vs += 2,
                        _ => break,
                    }
                }
                vs.min(eol)
            };
            let mut ve = eol;
            if eol <= vs || b.get(eol - 1).is_none_or(|&c| c <= b' ') {
                while ve > vs && matches!(b[ve - 1], b' ' | b'\t') {
                    ve -= 1;
                }
            }
            if name == HeaderName::ContentLength {
                if content_length.is_some() {
                    return Err(ParseError::new(
                        ErrorKind::DuplicateContentLength,
                        line_start,
                    ));
                }
                let v = parse_content_length(&b[vs..ve])
                    .ok_or(ParseError::new(ErrorKind::BadContentLength, vs))?;
                content_length = Some((vs as u32, v));
            }
            headers.push(HeaderField {
                name,
                name_span: Span::new(line_start, name_end),
                value_span: Span::new(vs, ve),
                line_span: Span::new(line_start, next),
            });
            pos = next;
        }

        let available = b.len() - head_end;
        let body_len = match content_length {
            Some((at, n)) => {
                if n > limits.max_body_size {
                    return Err(ParseError::new(ErrorKind::BodyTooLarge, at as usize));
                }
                if n > available {
                    return Err(ParseError::new(
                        ErrorKind::ContentLengthTooLarge,
                        at as usize,
                    ));
                }
                n
            }
            None => {
                if available > limits.max_body_size {
                    return Err(ParseError::new(ErrorKind::BodyTooLarge, head_end));
                }
                available
            }
        };
        Ok(Message {
            start,
            start_line_span,
            headers,
            head_end: head_end as u32,
            body: Span::new(head_end, head_end + body_len),
            content_length: content_length.map(|(_, n)| n as u32),
            max_params: limits.max_params.min(u16::MAX as usize) as u16,
            max_values: limits.max_values.min(u16::MAX as usize) as u16,
            buf,
        })
    }

    // ----- the whole message -----

    /// The buffer the message was parsed from (for a datagram, including any trailing octets).
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// The message as it came, from the start line to the end of the body, without leading
    /// CRLFs or trailing octets. Zero-copy.
    pub fn wire(&self) -> Bytes {
        self.buf
            .slice(self.start_line_span.start as usize..self.body.end as usize)
    }

    /// The same bytes as [`Message::wire`], borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start_line_span.start as usize..self.body.end as usize]
    }

    /// Bytes of `span` (spans come from this message).
    #[inline]
    pub fn slice(&self, span: Span) -> &[u8] {
        self.buf.get(span.range()).unwrap_or(&[])
    }

    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    pub fn start_line_span(&self) -> Span {
        self.start_line_span
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }

    /// The method of a request as written (extension methods included).
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_span, .. } => Some(self.ascii(method_span)),
            _ => None,
        }
    }

    /// The Request-URI text.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri_span, .. } => Some(self.ascii(uri_span)),
            _ => None,
        }
    }

    /// The Request-URI, decoded (already validated by `parse`).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        match self.start {
            StartLine::Request { uri_span, .. } => parse_uri(
                self.ascii(uri_span),
                uri_span.start as usize,
                UriContext::RequestUri,
                self.max_params as usize,
            )
            .ok(),
            _ => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The reason phrase of a response, as bytes (it may be UTF-8 or, from broken peers, not).
    pub fn reason_phrase(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason_span, .. } => Some(self.slice(reason_span)),
            _ => None,
        }
    }

    /// `SIP/2.0` as written.
    pub fn version(&self) -> &str {
        match self.start {
            StartLine::Request { version_span, .. } | StartLine::Response { version_span, .. } => {
                self.ascii(version_span)
            }
        }
    }

    /// Text of a span that the parser has checked to be ASCII.
    fn ascii(&self, span: Span) -> &str {
        std::str::from_utf8(self.slice(span)).unwrap_or("")
    }

    // ----- headers -----

    /// Every header field, in order.
    pub fn fields(&self) -> &[HeaderField] {
        &self.headers
    }

    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// Offset of the body (just after the empty line).
    pub fn head_end(&self) -> usize {
        self.head_end as usize
    }

    /// The raw value of the first header called `name`.
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|f| f.name == name)
            .map(|f| self.slice(f.value_span))
    }

    /// The raw values of every header called `name`, in order.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.headers
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| self.slice(f.value_span))
    }

    /// The raw value of the first header whose name is `name` (case-insensitive; compact forms
    /// of known headers match too).
    pub fn header_by_name(&self, name: &str) -> Option<&[u8]> {
        let known = HeaderName::from_bytes(name.as_bytes());
        if known != HeaderName::Other {
            return self.header(known);
        }
        self.headers
            .iter()
            .find(|f| {
                f.name == HeaderName::Other
                    && self
                        .slice(f.name_span)
                        .eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|f| self.slice(f.value_span))
    }

    /// How many header fields are called `name`.
    pub fn count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|f| f.name == name).count()
    }

    /// The value of a field as text, for the typed decoders.
    pub fn field_str(&self, f: &HeaderField) -> Result<&str> {
        let v = self.slice(f.value_span);
        std::str::from_utf8(v).map_err(|e| {
            ParseError::new(
                ErrorKind::InvalidUtf8,
                f.value_span.start as usize + e.valid_up_to(),
            )
        })
    }

    /// A cursor over a field's value for the typed decoders.
    pub fn cursor(&self, f: &HeaderField) -> Result<Cursor<'_>> {
        Ok(Cursor::new(
            self.field_str(f)?,
            f.value_span.start as usize,
            self.max_params as usize,
        ))
    }

    /// The parameter limit the typed decoders apply.
    pub(crate) fn max_params(&self) -> usize {
        self.max_params as usize
    }

    /// Limits the typed decoders apply.
    pub fn max_values(&self) -> usize {
        self.max_values as usize
    }

    // ----- body -----

    /// The body (Content-Length bytes, or the rest of a datagram without Content-Length).
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body without copying.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    pub fn body_span(&self) -> Span {
        self.body
    }

    /// The Content-Length value, if the header was present.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length.map(|n| n as usize)
    }
}

/// `Content-Length = 1*DIGIT`, at most 10 digits (anything larger exceeds every limit and must
/// not overflow, `scalar02.dat`).
fn parse_content_length(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u64, |a, c| a * 10 + u64::from(c - b'0'));
    usize::try_from(n).ok()
}

fn is_version(v: &[u8]) -> bool {
    // "SIP" "/" 1*DIGIT "." 1*DIGIT, "SIP" case-insensitive (RFC 3261 7.1)
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    match memchr::memchr(b'.', rest) {
        Some(d) => {
            let (maj, min) = (&rest[..d], &rest[d + 1..]);
            !maj.is_empty()
                && !min.is_empty()
                && maj.len() <= 3
                && min.len() <= 3
                && maj.iter().all(u8::is_ascii_digit)
                && min.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

fn check_version(b: &[u8], span: Span) -> Result<()> {
    let v = &b[span.range()];
    // The spelling nearly every message uses, compared as one 7-byte array.
    if v.len() == 7 && v.first_chunk::<7>() == Some(b"SIP/2.0") {
        return Ok(());
    }
    if !is_version(v) {
        return Err(ParseError::new(ErrorKind::BadVersion, span.start as usize));
    }
    if &v[4..] != b"2.0" {
        return Err(ParseError::new(
            ErrorKind::VersionNotSupported,
            span.start as usize,
        ));
    }
    Ok(())
}

fn parse_start_line(b: &[u8], from: usize, eol: usize, limits: &Limits) -> Result<StartLine> {
    let line = &b[from..eol];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = simd::find1(line, b' ').ok_or(ParseError::new(ErrorKind::BadStartLine, eol))?;
        let version_span = Span::new(from, from + sp);
        check_version(b, version_span)?;
        let c0 = sp + 1;
        let code = line.get(c0..c0 + 3).unwrap_or(&[]);
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::new(ErrorKind::BadStatusCode, from + c0));
        }
        let code = code.iter().fold(0u16, |a, c| a * 10 + u16::from(c - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseError::new(ErrorKind::BadStatusCode, from + c0));
        }
        let r0 = c0 + 3;
        let reason_start = match line.get(r0) {
            None => r0,
            Some(b' ') => r0 + 1,
            Some(_) => return Err(ParseError::new(ErrorKind::BadStatusCode, from + c0)),
        };
        let reason = line.get(reason_start..).unwrap_or(&[]);
        if let Some(i) = reason
            .iter()
            .position(|c| (*c < 0x20 && *c != b'\t') || *c == 0x7f)
        {
            return Err(ParseError::new(
                ErrorKind::BadReasonPhrase,
                from + reason_start + i,
            ));
        }
        return Ok(StartLine::Response {
            version_span,
            code,
            reason_span: Span::new(from + reason_start.min(line.len()), eol),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let sp1 = simd::find1(line, b' ').ok_or(ParseError::new(ErrorKind::BadStartLine, from))?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|c| TOKEN[*c as usize]) {
        return Err(ParseError::new(ErrorKind::BadMethod, from));
    }
    // The last space: where ` SIP/2.0` ends the line, without a search.
    let sp2 = match line.len().checked_sub(8) {
        Some(at) if at > sp1 && line.get(at..).is_some_and(|v| v == b" SIP/2.0") => at,
        _ => memchr::memrchr(b' ', line).unwrap_or(sp1),
    };
    if sp2 == sp1 {
        return Err(ParseError::new(ErrorKind::BadStartLine, from + sp1));
    }
    let version_span = Span::new(from + sp2 + 1, eol);
    check_version(b, version_span)?;
    let uri = &line[sp1 + 1..sp2];
    let uri_start = from + sp1 + 1;
    if uri.is_empty() {
        return Err(ParseError::new(ErrorKind::BadRequestUri, uri_start));
    }
    if let Some(i) = uri.iter().position(|c| *c <= b' ' || *c >= 0x7f) {
        return Err(ParseError::new(ErrorKind::BadRequestUri, uri_start + i));
    }
    // The URI is ASCII now, so this cannot fail; validate it fully (escruri, ltgtruri).
    let uri_str = std::str::from_utf8(uri)
        .map_err(|_| ParseError::new(ErrorKind::BadRequestUri, uri_start))?;
    parse_uri(
        uri_str,
        uri_start,
        UriContext::RequestUri,
        limits.max_params,
    )
    .map_err(|e| {
        ParseError::new(
            if e.kind == ErrorKind::TooManyParams {
                e.kind
            } else {
                ErrorKind::BadRequestUri
            },
            e.offset,
        )
    })?;
    Ok(StartLine::Request {
        method: Method::from_bytes(method),
        method_span: Span::new(from, from + sp1),
        uri_span: Span::new(uri_start, uri_start + uri.len()),
        version_span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_line_breaks_are_skipped_like_the_plain_loop() {
        for len in 0..80usize {
            for first in 0..=len {
                let mut s: Vec<u8> = (0..len)
                    .map(|k| if k % 3 == 0 { b'\n' } else { b'\r' })
                    .collect();
                if first < len {
                    s[first] = b'X';
                }
                let want = s.iter().position(|c| *c != b'\r' && *c != b'\n');
                assert_eq!(skip_line_breaks(&s), want, "{len} {first}");
            }
        }
    }

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn request_is_indexed() {
        let m = Message::parse(INVITE).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri_str(), Some("sip:bob@biloxi.com"));
        assert_eq!(m.header_count(), 9);
        assert_eq!(
            m.header(HeaderName::CallId),
            Some(&b"a84b4c76e66710@pc33.atlanta.com"[..])
        );
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.as_bytes(), INVITE);
    }

    #[test]
    fn folded_values_are_trimmed_and_kept() {
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nSubject :\r\n  hello\r\n\tworld  \r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        assert_eq!(
            m.header(HeaderName::Subject),
            Some(&b"hello\r\n\tworld"[..])
        );
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn response_with_empty_reason() {
        let m = Message::parse(&b"SIP/2.0 100 \r\nl: 0\r\n\r\n"[..]).unwrap();
        assert_eq!(m.status(), Some(100));
        assert_eq!(m.reason_phrase(), Some(&b""[..]));
    }

    fn kind(b: &[u8]) -> ErrorKind {
        Message::parse(b.to_vec()).unwrap_err().kind
    }

    #[test]
    fn cr_or_lf_search_agrees_with_memchr() {
        // every position, both targets, bytes one bit away from CR/LF before the match, a
        // second match after it, and lengths around the 8-byte and 64-byte steps
        for len in 0..150 {
            for at in 0..len {
                for c in [b'\r', b'\n'] {
                    let mut s = vec![0x0c_u8; len];
                    s[at] = c;
                    if at + 3 < len {
                        s[at + 3] = b'\n';
                    }
                    assert_eq!(find_cr_or_lf(&s), memchr::memchr2(b'\r', b'\n', &s));
                }
            }
            assert_eq!(find_cr_or_lf(&vec![0x8d; len]), None);
        }
    }

    #[test]
    fn start_line_errors() {
        assert_eq!(
            kind(b"INVITE  sip:a@b SIP/2.0\r\n\r\n"),
            ErrorKind::BadRequestUri
        );
        assert_eq!(
            kind(b"INVITE sip:a@b SIP/2.0 \r\n\r\n"),
            ErrorKind::BadVersion
        );
        assert_eq!(
            kind(b"INVITE <sip:a@b> SIP/2.0\r\n\r\n"),
            ErrorKind::BadRequestUri
        );
        assert_eq!(
            kind(b"INVITE sip:a@b SIP/7.0\r\n\r\n"),
            ErrorKind::VersionNotSupported
        );
        assert_eq!(
            kind(b"SIP/2.0 4294967301 x\r\n\r\n"),
            ErrorKind::BadStatusCode
        );
        assert_eq!(kind(b"SIP/2.0 700 x\r\n\r\n"), ErrorKind::BadStatusCode);
        assert_eq!(kind(b"INVITE sip:a@b\r\n\r\n"), ErrorKind::BadStartLine);
        assert_eq!(kind(b"\r\n\r\n"), ErrorKind::Empty);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\nFoobar roobar\r\n\r\n"),
            ErrorKind::MissingColon
        );
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n"),
            ErrorKind::BadHeaderName
        );
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\nA: b\r\n"),
            ErrorKind::Truncated
        );
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n"),
            ErrorKind::BadContentLength
        );
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nabc"),
            ErrorKind::ContentLengthTooLarge
        );
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n"),
            ErrorKind::DuplicateContentLength
        );
        assert_eq!(
            kind(b"OPTIONS sip:a@b SIP/2.0\r\nA: b\rc\r\n\r\n"),
            ErrorKind::BadHeaderValue
        );
    }

    #[test]
    fn limits_have_their_own_errors() {
        let mut many = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for _ in 0..300 {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(kind(&many), ErrorKind::TooManyHeaders);
        let big = vec![b'a'; 70 * 1024];
        assert_eq!(kind(&big), ErrorKind::MessageTooLarge);
        let mut long = b"OPTIONS sip:a@b SIP/2.0\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 20 * 1024));
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(kind(&long), ErrorKind::LineTooLong);
    }
}
