//! Numeric headers: Content-Length, Expires, Min-Expires (RFC 3261), Min-SE and
//! Session-Expires (RFC 4028).

use super::simple::parse_u32;
use super::{delta_seconds, At};
use crate::error::{ErrorKind, Result};
use crate::lex::{Cursor, Params};
use crate::name::HeaderName;
use crate::typed::TypedHeader;

/// `Content-Length` (`l`): `1*DIGIT` (the message parser has checked it already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLength(pub u32);

impl<'a> TypedHeader<'a> for ContentLength {
    const NAME: HeaderName = HeaderName::ContentLength;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadContentLength;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        parse_u32(c, u32::MAX, Self::ERROR).map(ContentLength)
    }
}

/// `Expires`: delta-seconds; values above 2^32-1 saturate (RFC 4475 3.1.2.4 lets an element
/// treat an overlarge expiry as a default; a saturated value keeps that choice with the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expires(pub u32);

impl<'a> TypedHeader<'a> for Expires {
    const NAME: HeaderName = HeaderName::Expires;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadNumber;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        delta_seconds(c, Self::ERROR).map(Expires)
    }
}

/// `Min-Expires`: delta-seconds (saturating like [`Expires`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinExpires(pub u32);

impl<'a> TypedHeader<'a> for MinExpires {
    const NAME: HeaderName = HeaderName::MinExpires;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadNumber;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        delta_seconds(c, Self::ERROR).map(MinExpires)
    }
}

/// `Min-SE = delta-seconds *(SEMI generic-param)` (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinSe<'a> {
    pub delta: u32,
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for MinSe<'a> {
    const NAME: HeaderName = HeaderName::MinSe;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadNumber;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let delta = delta_seconds(c, Self::ERROR)?;
        let params = c.header_params(|_, _| Ok(()))?;
        Ok(MinSe { delta, params })
    }
}

/// `Session-Expires = delta-seconds *(SEMI se-params)` (`x`, RFC 4028) with
/// `refresher-param = "refresher" EQUAL ("uas" / "uac")`. The refresher is checked to be a token
/// but kept as written (compare with [`SessionExpires::refresher_is`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    pub delta: u32,
    pub refresher: Option<&'a str>,
    pub params: Params<'a>,
}

impl SessionExpires<'_> {
    /// `refresher_is("uac")`, case-insensitive.
    pub fn refresher_is(&self, who: &str) -> bool {
        self.refresher.is_some_and(|r| r.eq_ignore_ascii_case(who))
    }
}

impl<'a> TypedHeader<'a> for SessionExpires<'a> {
    const NAME: HeaderName = HeaderName::SessionExpires;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadNumber;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let delta = delta_seconds(c, Self::ERROR)?;
        let at = At::new(c);
        let mut refresher = None;
        let params = c.header_params(|n, v| {
            if n.eq_ignore_ascii_case("refresher") {
                let v = v.ok_or(at.err(ErrorKind::BadParam, n))?;
                if !crate::chars::is_token_str(v) {
                    return Err(at.err(ErrorKind::BadParam, v));
                }
                refresher.get_or_insert(v);
            }
            Ok(())
        })?;
        Ok(SessionExpires {
            delta,
            refresher,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn numbers() {
        assert_eq!(
            ContentLength::parse_value("150").unwrap(),
            ContentLength(150)
        );
        assert!(ContentLength::parse_value("-1").is_err());
        assert!(ContentLength::parse_value("4294967296").is_err());
        assert_eq!(Expires::parse_value("3600").unwrap(), Expires(3600));
        // scalar02.dat
        assert_eq!(
            Expires::parse_value("10000000000000000000000000000000000000000000000000").unwrap(),
            Expires(u32::MAX)
        );
        assert_eq!(
            Expires::parse_value("1 hour").unwrap_err().kind,
            ErrorKind::BadNumber
        );
        assert_eq!(
            Expires::parse_value("Thu, 01 Dec 1994 16:00:00 GMT")
                .unwrap_err()
                .kind,
            ErrorKind::BadNumber
        );
        assert_eq!(MinExpires::parse_value("60").unwrap(), MinExpires(60));
        assert!(MinExpires::parse_value("").is_err());
    }

    #[test]
    fn session_timers() {
        let se = SessionExpires::parse_value("4000;refresher=uac").unwrap();
        assert_eq!((se.delta, se.refresher), (4000, Some("uac")));
        assert!(se.refresher_is("UAC"));
        let se = SessionExpires::parse_value("1800 ;\r\n x=y").unwrap();
        assert_eq!(
            (se.delta, se.refresher, se.params.value("x")),
            (1800, None, Some("y"))
        );
        assert_eq!(
            SessionExpires::parse_value("1800;refresher")
                .unwrap_err()
                .kind,
            ErrorKind::BadParam
        );
        assert_eq!(
            SessionExpires::parse_value("1800;refresher=\"uac\"")
                .unwrap_err()
                .kind,
            ErrorKind::BadParam
        );
        assert_eq!(
            SessionExpires::parse_value("abc").unwrap_err().kind,
            ErrorKind::BadNumber
        );
        let m = MinSe::parse_value("90;foo").unwrap();
        assert_eq!(m.delta, 90);
        assert!(m.params.contains("foo"));
        let msg = Message::parse(
            &b"INVITE sip:a@b SIP/2.0\r\nx: 1800;refresher=uas\r\nMin-SE: 90\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        assert!(msg
            .typed::<SessionExpires>()
            .unwrap()
            .unwrap()
            .refresher_is("uas"));
        assert_eq!(msg.typed::<MinSe>().unwrap().unwrap().delta, 90);
    }
}
