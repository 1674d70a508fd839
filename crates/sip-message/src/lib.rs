//! SIP messages for sipwarden: zero-copy parsing over a `bytes::Bytes` buffer (RFC 3261 sections
//! 7, 19, 20 and 25), typed header values decoded on demand, URIs, stream framing for TCP/TLS and
//! editing that keeps every untouched byte.
//!
//! This crate faces the Internet: no input may panic, hang, or allocate without bound. Every
//! limit is checked before the memory it bounds is allocated, and every failure is a
//! [`ParseError`] with a byte offset and a reason fit for a `400` reason phrase.

mod chars;
pub mod edit;
pub mod error;
pub mod framing;
pub mod headers;
pub mod lex;
pub mod limits;
pub mod message;
pub mod method;
pub mod name;
mod simd;
pub mod typed;
pub mod uri;
pub mod validate;

pub use chars::is_token_str;
pub use edit::{EditError, Editor, FieldName};
pub use error::{ErrorKind, ParseError, Result};
pub use framing::{Frame, FramingError, FramingErrorKind, StreamFramer};
pub use lex::{unquote, Cursor, Params};
pub use limits::Limits;
pub use message::{HeaderField, Message, Span, StartLine};
pub use method::Method;
pub use name::HeaderName;
pub use typed::{TypedHeader, TypedIter};
pub use uri::{unescape, AbsoluteUri, Host, Scheme, SipUri, TelUri, Uri};
