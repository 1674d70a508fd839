//! Resource limits, checked before anything is allocated for the part they bound.

/// Limits applied while parsing. The defaults suit an edge facing the Internet; raise them only
/// for trusted peers that send very large messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whole message (start line, headers and body), in bytes.
    pub max_message_size: usize,
    /// Number of header fields (lines, not comma-separated values).
    pub max_headers: usize,
    /// Length of one header field including its folded continuation lines, in bytes.
    pub max_line_length: usize,
    /// Parameters in one header value or one URI.
    pub max_params: usize,
    /// Comma-separated values in one header field (Via, Contact, Route ...).
    pub max_values: usize,
    /// Body size, in bytes.
    pub max_body_size: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_message_size: 64 * 1024,
        max_headers: 256,
        max_line_length: 16 * 1024,
        max_params: 64,
        max_values: 64,
        max_body_size: 60 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
