//! Call-ID, CSeq, Max-Forwards.

use crate::chars;
use crate::error::{ErrorKind, Result};
use crate::lex::Cursor;
use crate::method::Method;
use crate::name::HeaderName;
use crate::typed::TypedHeader;

/// `Call-ID = word [ "@" word ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallId<'a>(pub &'a str);

impl<'a> TypedHeader<'a> for CallId<'a> {
    const NAME: HeaderName = HeaderName::CallId;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadHeaderValue;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let start = c.pos();
        let w = c.take_class(&chars::WORD);
        if w.is_empty() {
            return Err(c.err(Self::ERROR));
        }
        if c.eat(b'@') && c.take_class(&chars::WORD).is_empty() {
            return Err(c.err(Self::ERROR));
        }
        Ok(CallId(c.slice(start, c.pos())))
    }
}

/// `CSeq = 1*DIGIT LWS Method`; the number is below 2**31 (RFC 3261 8.1.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method,
    /// The method as written (extension methods included).
    pub method_str: &'a str,
}

impl<'a> TypedHeader<'a> for CSeq<'a> {
    const NAME: HeaderName = HeaderName::CSeq;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadCSeq;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let seq = parse_u32(c, (1 << 31) - 1, Self::ERROR)?;
        if !c.skip_ws() {
            return Err(c.err(Self::ERROR));
        }
        let m = c.token(Self::ERROR)?;
        Ok(CSeq {
            seq,
            method: Method::from_bytes(m.as_bytes()),
            method_str: m,
        })
    }
}

/// `Max-Forwards = 1*DIGIT`, 0 to 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxForwards(pub u8);

impl<'a> TypedHeader<'a> for MaxForwards {
    const NAME: HeaderName = HeaderName::MaxForwards;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadMaxForwards;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        Ok(MaxForwards(parse_u32(c, 255, Self::ERROR)? as u8))
    }
}

/// `1*DIGIT` at most `max`. Leading zeros are allowed (`wsinv.dat` has `0068`); the digit count
/// is bounded so that no input can overflow.
pub(crate) fn parse_u32(c: &mut Cursor<'_>, max: u32, kind: ErrorKind) -> Result<u32> {
    // Digits and value in one pass.
    let start = c.pos();
    let b = c.bytes();
    let mut i = start;
    let mut v: u64 = 0;
    while let Some(&d) = b.get(i) {
        let x = d.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        v = v * 10 + u64::from(x);
        if v > u64::from(max) {
            return Err(c.err_at(kind, start));
        }
        i += 1;
    }
    if i == start {
        return Err(c.err_at(kind, start));
    }
    c.set_pos(i);
    Ok(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse_value("0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert_eq!(
            CSeq::parse_value("36893488147419103232 REGISTER")
                .unwrap_err()
                .kind,
            ErrorKind::BadCSeq
        );
        assert_eq!(
            CSeq::parse_value("2147483648 INVITE").unwrap_err().kind,
            ErrorKind::BadCSeq
        );
        assert!(CSeq::parse_value("1INVITE").is_err());
        assert!(CSeq::parse_value("1 INVITE x").is_err());
    }

    #[test]
    fn max_forwards_and_call_id() {
        assert_eq!(MaxForwards::parse_value("0068").unwrap(), MaxForwards(68));
        assert!(MaxForwards::parse_value("300").is_err());
        assert!(MaxForwards::parse_value("").is_err());
        assert_eq!(
            CallId::parse_value("a84b@pc33.atlanta.com").unwrap(),
            CallId("a84b@pc33.atlanta.com")
        );
        assert!(CallId::parse_value("a b").is_err());
        assert!(CallId::parse_value("a@").is_err());
    }
}
