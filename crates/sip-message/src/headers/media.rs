//! Content-Type (RFC 3261 20.15) and Accept (20.1).

use super::{parse_qvalue, At};
use crate::error::{ErrorKind, Result};
use crate::lex::{Cursor, Params};
use crate::name::HeaderName;
use crate::typed::TypedHeader;

/// `type SLASH subtype` with white space allowed around the slash (`SLASH = SWS "/" SWS`).
fn media_range<'a>(c: &mut Cursor<'a>, kind: ErrorKind) -> Result<(&'a str, &'a str)> {
    let t = c.token(kind)?;
    c.expect_ws(b'/', kind)?;
    c.skip_ws();
    let s = c.token(kind)?;
    Ok((t, s))
}

/// `Content-Type` (`c`): `media-type = m-type SLASH m-subtype *(SEMI m-parameter)`, every
/// parameter with a value (`m-parameter = m-attribute EQUAL m-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    pub mtype: &'a str,
    pub subtype: &'a str,
    pub params: Params<'a>,
}

impl<'a> ContentType<'a> {
    /// Case-insensitive comparison of type and subtype: `ct.is("application", "sdp")`.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// A parameter by name (case-insensitive), quotes removed.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.value(name)
    }

    /// The `boundary` of a multipart body.
    pub fn boundary(&self) -> Option<&'a str> {
        self.params.value("boundary")
    }

    pub fn charset(&self) -> Option<&'a str> {
        self.params.value("charset")
    }
}

impl<'a> TypedHeader<'a> for ContentType<'a> {
    const NAME: HeaderName = HeaderName::ContentType;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadHeaderValue;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let (mtype, subtype) = media_range(c, Self::ERROR)?;
        let at = At::new(c);
        let params = c.header_params(|n, v| match v {
            Some(_) => Ok(()),
            None => Err(at.err(ErrorKind::BadParam, n)),
        })?;
        Ok(ContentType {
            mtype,
            subtype,
            params,
        })
    }
}

/// One `accept-range` of `Accept`: `media-range *(SEMI accept-param)` where the range may be
/// `*/*` or `type/*`, and `q` must be a qvalue. An empty `Accept` field means that no body is
/// acceptable (`typed_all` reports an empty field as an error;
/// [`crate::Message::decode_all_headers`] accepts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept<'a> {
    pub mtype: &'a str,
    pub subtype: &'a str,
    pub params: Params<'a>,
}

impl<'a> Accept<'a> {
    /// Case-insensitive comparison of the range as written (`*` is not expanded).
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// True when this range covers `mtype/subtype` (wildcards expanded).
    pub fn matches(&self, mtype: &str, subtype: &str) -> bool {
        (self.mtype == "*" && self.subtype == "*")
            || (self.mtype.eq_ignore_ascii_case(mtype)
                && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype)))
    }

    /// The `q` parameter in thousandths (absent means 1000).
    pub fn q_permille(&self) -> Option<u16> {
        self.params.value("q").and_then(parse_qvalue)
    }
}

impl<'a> TypedHeader<'a> for Accept<'a> {
    const NAME: HeaderName = HeaderName::Accept;
    const LIST: bool = true;
    const ERROR: ErrorKind = ErrorKind::BadHeaderValue;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let (mtype, subtype) = media_range(c, Self::ERROR)?;
        if mtype == "*" && subtype != "*" {
            return Err(c.err(Self::ERROR));
        }
        let at = At::new(c);
        let params = c.header_params(|n, v| {
            if n.eq_ignore_ascii_case("q") {
                let v = v.ok_or(at.err(ErrorKind::BadParam, n))?;
                parse_qvalue(v).ok_or(at.err(ErrorKind::BadParam, v))?;
            }
            Ok(())
        })?;
        Ok(Accept {
            mtype,
            subtype,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn content_types() {
        let ct = ContentType::parse_value("application/sdp").unwrap();
        assert!(ct.is("Application", "SDP"));
        let ct = ContentType::parse_value(
            "multipart/mixed ; boundary=\"unique-boundary-1\";charset=utf-8",
        )
        .unwrap();
        assert_eq!(ct.boundary(), Some("unique-boundary-1"));
        assert_eq!(ct.charset(), Some("utf-8"));
        let ct = ContentType::parse_value("text / plain").unwrap();
        assert!(ct.is("text", "plain"));
        let kind = |s| ContentType::parse_value(s).unwrap_err().kind;
        assert_eq!(kind("application"), ErrorKind::BadHeaderValue);
        assert_eq!(kind("application/"), ErrorKind::BadHeaderValue);
        assert_eq!(kind("application/sdp;charset"), ErrorKind::BadParam);
        assert_eq!(
            kind("application/sdp, text/plain"),
            ErrorKind::BadHeaderValue
        );
        assert_eq!(kind("app/sdp x"), ErrorKind::BadHeaderValue);
    }

    #[test]
    fn accept_ranges() {
        let a = Accept::parse_value("*/*;q=0.5").unwrap();
        assert!(a.matches("application", "sdp"));
        assert_eq!(a.q_permille(), Some(500));
        let a = Accept::parse_value("text/*").unwrap();
        assert!(a.matches("TEXT", "html") && !a.matches("application", "sdp"));
        let a = Accept::parse_value("text/nobodyKnowsThis").unwrap();
        assert!(a.is("text", "nobodyknowsthis") && !a.matches("application", "sdp"));
        assert!(Accept::parse_value("*/sdp").is_err());
        assert_eq!(
            Accept::parse_value("a/b;q=5").unwrap_err().kind,
            ErrorKind::BadParam
        );
        assert!(Accept::parse_value("a/b;level").is_ok());
    }

    #[test]
    fn accept_lists_through_message() {
        // semiuri.dat
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nAccept: application/sdp, application/pkcs7-mime,\r\n        multipart/mixed, multipart/signed,\r\n        message/sip, message/sipfrag\r\nc: application/sdp\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let all = m.typed_vec::<Accept>().unwrap();
        assert_eq!(all.len(), 6);
        assert!(all[5].is("message", "sipfrag"));
        assert!(m
            .typed::<ContentType>()
            .unwrap()
            .unwrap()
            .is("application", "sdp"));
    }
}
