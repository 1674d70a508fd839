//! Error and limit types.
//!
//! Errors carry a byte offset into the original input so that a log line can
//! point at the offending spot without us having to copy any of the (possibly
//! hostile) input into the error itself.

use core::fmt;

/// What went wrong while parsing or decoding SDP.
///
/// Every kind has a short, fixed description available through
/// [`SdpErrorKind::reason`]; no variant carries input data, so errors are
/// `Copy` and cheap to return from hot paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// The input is larger than [`SdpLimits::max_size`].
    TooLarge,
    /// A line is longer than [`SdpLimits::max_line_len`].
    LineTooLong,
    /// More `m=` sections than [`SdpLimits::max_media`].
    TooManyMedia,
    /// More `a=` lines in total than [`SdpLimits::max_attributes`].
    TooManyAttributes,
    /// The first line is not `v=`.
    MissingVersion,
    /// `v=` is present but not `0`.
    UnsupportedVersion,
    /// No `o=` line in the session section.
    MissingOrigin,
    /// No `s=` line in the session section.
    MissingSessionName,
    /// A second `v=` line.
    DuplicateVersion,
    /// A second `o=` line.
    DuplicateOrigin,
    /// A second `s=` line.
    DuplicateSessionName,
    /// A second session-level `c=` line.
    DuplicateConnection,
    /// A session-only line (`v=`, `o=`, `s=`, `t=`) inside a media section.
    MisplacedLine,
    /// A line that is not a single lowercase letter followed by `=`.
    BadLineShape,
    /// A line that is not valid UTF-8.
    InvalidUtf8,
    /// A NUL or stray CR inside a line.
    InvalidCharacter,
    /// An empty line followed by more content.
    EmptyLine,
    /// Malformed `o=` line.
    BadOrigin,
    /// Malformed `c=` line.
    BadConnection,
    /// Malformed `b=` line.
    BadBandwidth,
    /// Malformed `t=` line.
    BadTiming,
    /// Malformed `m=` line.
    BadMedia,
    /// A port that is not a decimal number in 0..=65535.
    BadPort,
    /// Malformed `a=` line (empty attribute name).
    BadAttribute,
    /// Malformed `a=rtpmap`.
    BadRtpmap,
    /// Malformed `a=fmtp`.
    BadFmtp,
    /// Malformed `a=ptime` / `a=maxptime`.
    BadPtime,
    /// Malformed `a=rtcp` (RFC 3605).
    BadRtcp,
    /// Malformed `a=crypto` (RFC 4568).
    BadCrypto,
    /// Malformed `a=candidate` (RFC 8839).
    BadCandidate,
    /// Malformed ICE attribute other than `candidate`.
    BadIce,
    /// Malformed `a=ssrc` (RFC 5576).
    BadSsrc,
    /// Malformed `a=group` (RFC 5888).
    BadGroup,
    /// Malformed `a=mid`.
    BadMid,
    /// A value on an attribute that takes none (or vice versa).
    BadAttributeValue,
}

impl SdpErrorKind {
    /// Short human-readable description, suitable for logs and SIP reason
    /// phrases.
    pub fn reason(self) -> &'static str {
        use SdpErrorKind::*;
        match self {
            TooLarge => "input too large",
            LineTooLong => "line too long",
            TooManyMedia => "too many media sections",
            TooManyAttributes => "too many attributes",
            MissingVersion => "missing v= line",
            UnsupportedVersion => "unsupported SDP version",
            MissingOrigin => "missing o= line",
            MissingSessionName => "missing s= line",
            DuplicateVersion => "duplicate v= line",
            DuplicateOrigin => "duplicate o= line",
            DuplicateSessionName => "duplicate s= line",
            DuplicateConnection => "duplicate session-level c= line",
            MisplacedLine => "session-level line inside media section",
            BadLineShape => "malformed line (expected x=)",
            InvalidUtf8 => "invalid UTF-8",
            InvalidCharacter => "invalid character in line",
            EmptyLine => "empty line before end of input",
            BadOrigin => "bad o= line",
            BadConnection => "bad c= line",
            BadBandwidth => "bad b= line",
            BadTiming => "bad t= line",
            BadMedia => "bad m= line",
            BadPort => "bad port",
            BadAttribute => "bad a= line",
            BadRtpmap => "bad rtpmap attribute",
            BadFmtp => "bad fmtp attribute",
            BadPtime => "bad ptime attribute",
            BadRtcp => "bad rtcp attribute",
            BadCrypto => "bad crypto attribute",
            BadCandidate => "bad candidate attribute",
            BadIce => "bad ICE attribute",
            BadSsrc => "bad ssrc attribute",
            BadGroup => "bad group attribute",
            BadMid => "bad mid attribute",
            BadAttributeValue => "bad attribute value",
        }
    }
}

/// A parse or decode error: what went wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SdpError {
    /// Byte offset into the input at which the problem was detected.
    pub offset: usize,
    /// The kind of problem.
    pub kind: SdpErrorKind,
}

impl SdpError {
    pub(crate) const fn new(offset: usize, kind: SdpErrorKind) -> Self {
        Self { offset, kind }
    }

    /// Short text for the error kind, e.g. `"missing v= line"`.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error at byte {}: {}", self.offset, self.reason())
    }
}

impl std::error::Error for SdpError {}

/// Resource limits applied while parsing.
///
/// An SBC receives SDP from untrusted peers; these bounds keep both the work
/// and the memory spent on one body proportional to something we chose rather
/// than something the peer chose. Each is checked before the corresponding
/// allocation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpLimits {
    /// Maximum total input size in bytes (default 64 KiB).
    pub max_size: usize,
    /// Maximum number of `m=` sections (default 32).
    pub max_media: usize,
    /// Maximum number of `a=` lines over the whole description (default 512).
    pub max_attributes: usize,
    /// Maximum length of one line, excluding its line ending (default 8 KiB).
    pub max_line_len: usize,
}

impl Default for SdpLimits {
    fn default() -> Self {
        Self {
            max_size: 64 * 1024,
            max_media: 32,
            max_attributes: 512,
            max_line_len: 8 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_offset_and_reason() {
        let e = SdpError::new(17, SdpErrorKind::BadMedia);
        assert_eq!(e.to_string(), "error at byte 17: bad m= line");
        assert_eq!(e.reason(), "bad m= line");
    }

    #[test]
    fn default_limits() {
        let l = SdpLimits::default();
        assert_eq!(l.max_size, 65536);
        assert_eq!(l.max_media, 32);
        assert_eq!(l.max_attributes, 512);
        assert_eq!(l.max_line_len, 8192);
    }

    #[test]
    fn every_reason_is_short_and_non_empty() {
        use SdpErrorKind::*;
        for k in [
            TooLarge,
            LineTooLong,
            TooManyMedia,
            TooManyAttributes,
            MissingVersion,
            BadPort,
            BadAttributeValue,
            EmptyLine,
        ] {
            let r = k.reason();
            assert!(!r.is_empty() && r.len() < 48, "{r}");
        }
    }
}
