//! Typed values of the headers an SBC reads. Each decoder follows the ABNF of RFC 3261 section 25
//! (or the RFC that defines the header), is liberal only where RFC 4475 says a parser may be,
//! and borrows its text from the message.
//!
//! No decoder allocates: text fields borrow from the message, parameters stay raw
//! ([`crate::Params`], [`AuthParams`]) and are read lazily, and the few parameters that need a
//! check (Via `branch`/`received`/`rport`/`maddr`/`ttl`, Contact `q`/`expires`, ...) are picked
//! out during the single pass over the parameters.
//!
//! `headers::From` shadows the prelude's `From` trait where it is imported by name; import the
//! module (`use sip_message::headers as h;`) or rename it when that matters.

mod access;
mod addr;
mod auth;
mod decode_all;
mod media;
mod misc;
mod scalar;
mod simple;
mod tokens;
mod via;

pub use addr::{
    Contact, From, NameAddr, PAssertedIdentity, PPreferredIdentity, Path, RecordRoute, ReferTo,
    ReferredBy, ReplyTo, Route, ServiceRoute, To,
};
pub use auth::{
    Auth, AuthParamIter, AuthParams, Authorization, ProxyAuthenticate, ProxyAuthorization,
    WwwAuthenticate,
};
pub use media::{Accept, ContentType};
pub use misc::{Event, Reason, Replaces, Server, UserAgent};
pub use scalar::{ContentLength, Expires, MinExpires, MinSe, SessionExpires};
pub use simple::{CSeq, CallId, MaxForwards};
pub use tokens::{Allow, AllowEvents, ProxyRequire, Require, Supported, Unsupported};
pub use via::Via;

use crate::error::{ErrorKind, ParseError};
use crate::lex::Cursor;

/// Points errors found in a `header_params` callback at the offending text: every name and value
/// handed to the callback is a slice of the cursor's text, so its position follows from the
/// addresses (plain integer arithmetic, no `unsafe`).
#[derive(Clone, Copy)]
pub(crate) struct At {
    ptr: usize,
    base: usize,
}

impl At {
    pub(crate) fn new(c: &Cursor<'_>) -> At {
        At {
            ptr: c.bytes().as_ptr() as usize,
            base: c.base(),
        }
    }

    pub(crate) fn err(self, kind: ErrorKind, s: &str) -> ParseError {
        ParseError::new(
            kind,
            self.base + (s.as_ptr() as usize).saturating_sub(self.ptr),
        )
    }
}

/// `delta-seconds = 1*DIGIT`. Values above 2^32-1 saturate: RFC 3261 bounds delta-seconds to
/// 32 bits, and RFC 4475 (3.1.2.4, `scalar02.dat`) lets an element treat an out-of-range expiry
/// as a default rather than reject the request, which a saturated value allows the caller to do
/// (registrars clamp to their own maximum anyway).
pub(crate) fn delta_seconds_str(d: &str) -> Option<u32> {
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(d.bytes().fold(0u32, |a, b| {
        a.saturating_mul(10).saturating_add(u32::from(b - b'0'))
    }))
}

/// [`delta_seconds_str`] at the cursor.
pub(crate) fn delta_seconds(c: &mut Cursor<'_>, kind: ErrorKind) -> Result<u32, ParseError> {
    // Digits and value in one pass, with the saturation of `delta_seconds_str`.
    let start = c.pos();
    let b = c.bytes();
    let mut i = start;
    let mut v = 0u32;
    while let Some(&d) = b.get(i) {
        let x = d.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        v = v.saturating_mul(10).saturating_add(u32::from(x));
        i += 1;
    }
    if i == start {
        return Err(c.err_at(kind, start));
    }
    c.set_pos(i);
    Ok(v)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
pub(crate) fn parse_qvalue(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    let (int, frac) = match b.split_first()? {
        (b'0', rest) => (0u16, rest),
        (b'1', rest) => (1000u16, rest),
        _ => return None,
    };
    let frac = match frac.split_first() {
        None => return Some(int),
        Some((b'.', f)) => f,
        Some(_) => return None,
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = 0u16;
    let mut scale = 100u16;
    for d in frac {
        v += u16::from(d - b'0') * scale;
        scale /= 10;
    }
    if int == 1000 && v != 0 {
        return None;
    }
    Some(int + v)
}

/// Checks free text (User-Agent, Server, ...): any UTF-8 (the cursor holds a `str`) without
/// control characters other than HT; line breaks only as folds (CRLF or LF followed by SP/HT).
pub(crate) fn check_text(c: &Cursor<'_>, kind: ErrorKind) -> Result<(), ParseError> {
    let b = c.bytes();
    let wsp = |i: usize| matches!(b.get(i), Some(b' ') | Some(b'\t'));
    let mut i = c.pos();
    // Jump from control character to control character (usually straight to the end).
    loop {
        i += crate::simd::find_ctl(b.get(i..).unwrap_or(&[]));
        match b.get(i) {
            None => return Ok(()),
            Some(b'\r') if b.get(i + 1) == Some(&b'\n') && wsp(i + 2) => i += 3,
            Some(b'\n') if wsp(i + 1) => i += 2,
            Some(b'\t') => i += 1,
            Some(_) => return Err(c.err_at(kind, i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.33"), Some(330));
        assert_eq!(parse_qvalue("0.123"), Some(123));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        for bad in ["", "1.001", "0.1234", "2", ".5", "0,5", "01", "1.0.0", "-0"] {
            assert_eq!(parse_qvalue(bad), None, "{bad}");
        }
    }

    #[test]
    fn delta_seconds_saturate() {
        assert_eq!(delta_seconds_str("0"), Some(0));
        assert_eq!(delta_seconds_str("4294967295"), Some(u32::MAX));
        assert_eq!(
            delta_seconds_str("10000000000000000000000000000000"),
            Some(u32::MAX)
        );
        assert_eq!(delta_seconds_str(""), None);
        assert_eq!(delta_seconds_str("1a"), None);
    }

    #[test]
    fn text_checks() {
        let ok = |s: &str| check_text(&Cursor::new(s, 0, 8), ErrorKind::BadHeaderValue).is_ok();
        assert!(ok("Softphone/1.0 (Linux; \u{e9}t\u{e9})\r\n\tfolded"));
        assert!(!ok("a\u{7}b"));
        assert!(!ok("a\r\nb"));
        assert!(!ok("a\rb"));
    }
}
