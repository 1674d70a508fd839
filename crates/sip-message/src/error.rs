//! Parse errors: every failure carries the byte offset where it was found and a kind whose
//! `reason()` is short enough to become the reason phrase of a `400` response.

use std::fmt;

/// What went wrong. Each limit has its own kind so that operators can tell an attack from a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The buffer held nothing but whitespace.
    Empty,
    /// The message is larger than `Limits::max_message_size`.
    MessageTooLarge,
    /// More header fields than `Limits::max_headers`.
    TooManyHeaders,
    /// A line (after unfolding) is longer than `Limits::max_line_length`.
    LineTooLong,
    /// More parameters in one header value or URI than `Limits::max_params`.
    TooManyParams,
    /// More comma-separated values in one header than `Limits::max_values`.
    TooManyValues,
    /// The body is larger than `Limits::max_body_size`.
    BodyTooLarge,
    /// The header section never ends (no empty line).
    Truncated,
    /// The start line is neither a Request-Line nor a Status-Line.
    BadStartLine,
    /// The method is not a token.
    BadMethod,
    /// The Request-URI is malformed (spaces, `<>`, headers, bad characters).
    BadRequestUri,
    /// The SIP-Version is not of the form `SIP/x.y`.
    BadVersion,
    /// A well-formed SIP-Version other than 2.0: the answer is 505.
    VersionNotSupported,
    /// The status code is not three digits from 100 to 699.
    BadStatusCode,
    /// The reason phrase holds control characters.
    BadReasonPhrase,
    /// A header line has no colon.
    MissingColon,
    /// A header name is empty or not a token.
    BadHeaderName,
    /// A header value holds bytes that are not allowed (NUL, bare CR, ...).
    BadHeaderValue,
    /// A header value that must be text is not valid UTF-8.
    InvalidUtf8,
    /// Content-Length is not a number, is negative or overflows.
    BadContentLength,
    /// Content-Length says more bytes than the message holds.
    ContentLengthTooLarge,
    /// Two Content-Length headers.
    DuplicateContentLength,
    /// A URI is malformed.
    BadUri,
    /// A host is not a valid host name, IPv4 address or IPv6 reference.
    BadHost,
    /// A port is not a number from 0 to 65535.
    BadPort,
    /// A Via value is malformed.
    BadVia,
    /// A name-addr or addr-spec (From, To, Contact, Route, ...) is malformed.
    BadNameAddr,
    /// A generic parameter (`;name=value`) is malformed.
    BadParam,
    /// A quoted string is not closed.
    UnterminatedQuote,
    /// A bracketed URI (`<...>`) is not closed.
    UnterminatedAngle,
    /// CSeq is malformed or out of range.
    BadCSeq,
    /// Max-Forwards is not a number from 0 to 255.
    BadMaxForwards,
    /// A numeric value is malformed or out of range.
    BadNumber,
    /// A token or token list is malformed.
    BadToken,
    /// An Authorization/Authenticate value is malformed.
    BadAuth,
    /// Characters left over after a value that should have ended.
    TrailingGarbage,
    /// A header that must appear is missing (see `Message::validate`).
    MissingHeader,
    /// A header that may appear once appears several times.
    DuplicateHeader,
    /// The CSeq method differs from the Request-Line method.
    CSeqMethodMismatch,
}

impl ErrorKind {
    /// A short human reason, suitable for a `400` reason phrase.
    pub fn reason(self) -> &'static str {
        use ErrorKind::*;
        match self {
            Empty => "empty message",
            MessageTooLarge => "message too large",
            TooManyHeaders => "too many headers",
            LineTooLong => "line too long",
            TooManyParams => "too many parameters",
            TooManyValues => "too many header values",
            BodyTooLarge => "body too large",
            Truncated => "incomplete header section",
            BadStartLine => "malformed start line",
            BadMethod => "malformed method",
            BadRequestUri => "malformed Request-URI",
            BadVersion => "malformed SIP version",
            VersionNotSupported => "SIP version not supported",
            BadStatusCode => "bad status code",
            BadReasonPhrase => "bad reason phrase",
            MissingColon => "header without colon",
            BadHeaderName => "bad header name",
            BadHeaderValue => "bad header value",
            InvalidUtf8 => "invalid UTF-8 in header",
            BadContentLength => "bad Content-Length",
            ContentLengthTooLarge => "Content-Length exceeds message",
            DuplicateContentLength => "several Content-Length values",
            BadUri => "malformed URI",
            BadHost => "malformed host",
            BadPort => "bad port",
            BadVia => "malformed Via",
            BadNameAddr => "malformed address",
            BadParam => "malformed parameter",
            UnterminatedQuote => "unterminated quoted string",
            UnterminatedAngle => "unterminated <URI>",
            BadCSeq => "bad CSeq",
            BadMaxForwards => "bad Max-Forwards",
            BadNumber => "bad number",
            BadToken => "malformed token",
            BadAuth => "malformed credentials",
            TrailingGarbage => "unexpected characters",
            MissingHeader => "missing mandatory header",
            DuplicateHeader => "header may appear only once",
            CSeqMethodMismatch => "CSeq method does not match",
        }
    }
}

/// A parse failure: where (byte offset into the buffer that was parsed) and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseError {
    pub offset: usize,
    pub kind: ErrorKind,
}

impl ParseError {
    pub const fn new(kind: ErrorKind, offset: usize) -> Self {
        ParseError { offset, kind }
    }

    /// The reason phrase for a `400` (or `505`, see [`ParseError::status_code`]) answer.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The status a server answers a request that failed this way with.
    pub fn status_code(&self) -> u16 {
        match self.kind {
            ErrorKind::VersionNotSupported => 505,
            ErrorKind::MessageTooLarge | ErrorKind::BodyTooLarge => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error at byte {}: {}", self.offset, self.kind.reason())
    }
}

impl std::error::Error for ParseError {}

pub type Result<T, E = ParseError> = std::result::Result<T, E>;
