//! Typed values of the headers an SBC reads. Each decoder follows the ABNF of RFC 3261 section 25
//! (or the RFC that defines the header), is liberal only where RFC 4475 says a parser may be,
//! and borrows its text from the message.

mod simple;

pub use simple::{CSeq, CallId, MaxForwards};
