//! Event (RFC 6665), Replaces (RFC 3891), Reason (RFC 3326), User-Agent and Server (RFC 3261).

use super::{check_text, At};
use crate::chars;
use crate::error::{ErrorKind, Result};
use crate::lex::{strip_quotes, Cursor, Params};
use crate::name::HeaderName;
use crate::typed::TypedHeader;

/// `Event` (`o`): `event-type *( SEMI event-param )`, `event-param = generic-param /
/// ( "id" EQUAL token )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The whole event type as written, templates included (`presence.winfo`).
    pub package: &'a str,
    pub id: Option<&'a str>,
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    /// The package without templates (`presence` for `presence.winfo`).
    pub fn package_name(&self) -> &'a str {
        self.package.split('.').next().unwrap_or(self.package)
    }

    /// Case-insensitive comparison of the whole event type.
    pub fn is(&self, package: &str) -> bool {
        self.package.eq_ignore_ascii_case(package)
    }
}

impl<'a> TypedHeader<'a> for Event<'a> {
    const NAME: HeaderName = HeaderName::Event;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadToken;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let package = c.token(Self::ERROR)?;
        if package.starts_with('.') || package.ends_with('.') || package.contains("..") {
            return Err(c.err(Self::ERROR));
        }
        let at = At::new(c);
        let mut id = None;
        let params = c.header_params(|n, v| {
            if n.eq_ignore_ascii_case("id") {
                let v = v.ok_or(at.err(ErrorKind::BadParam, n))?;
                if !chars::is_token_str(v) {
                    return Err(at.err(ErrorKind::BadParam, v));
                }
                id.get_or_insert(v);
            }
            Ok(())
        })?;
        Ok(Event {
            package,
            id,
            params,
        })
    }
}

/// `Replaces = callid *(SEMI replaces-param)` with exactly the `to-tag` and `from-tag`
/// parameters required and the `early-only` flag (RFC 3891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaces<'a> {
    pub call_id: &'a str,
    pub to_tag: &'a str,
    pub from_tag: &'a str,
    pub early_only: bool,
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Replaces<'a> {
    const NAME: HeaderName = HeaderName::Replaces;
    const LIST: bool = false;
    const ERROR: ErrorKind = ErrorKind::BadHeaderValue;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let start = c.pos();
        if c.take_class(&chars::WORD).is_empty() {
            return Err(c.err(Self::ERROR));
        }
        if c.eat(b'@') && c.take_class(&chars::WORD).is_empty() {
            return Err(c.err(Self::ERROR));
        }
        let call_id = c.slice(start, c.pos());
        let at = At::new(c);
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        let params = c.header_params(|n, v| {
            let tag = |v: Option<&'a str>| -> Result<&'a str> {
                match v {
                    Some(v) if chars::is_token_str(v) => Ok(v),
                    Some(v) => Err(at.err(ErrorKind::BadParam, v)),
                    None => Err(at.err(ErrorKind::BadParam, n)),
                }
            };
            if n.eq_ignore_ascii_case("to-tag") {
                if to_tag.replace(tag(v)?).is_some() {
                    return Err(at.err(ErrorKind::BadParam, n));
                }
            } else if n.eq_ignore_ascii_case("from-tag") {
                if from_tag.replace(tag(v)?).is_some() {
                    return Err(at.err(ErrorKind::BadParam, n));
                }
            } else if n.eq_ignore_ascii_case("early-only") {
                early_only = true;
            }
            Ok(())
        })?;
        match (to_tag, from_tag) {
            (Some(to_tag), Some(from_tag)) => Ok(Replaces {
                call_id,
                to_tag,
                from_tag,
                early_only,
                params,
            }),
            _ => Err(c.err(ErrorKind::BadParam)),
        }
    }
}

/// One `reason-value` of `Reason`: `protocol *(SEMI reason-params)` with `cause=1*DIGIT` and
/// `text=quoted-string` (RFC 3326). The text keeps its escapes; a token text is tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason<'a> {
    /// `SIP`, `Q.850` or another token.
    pub protocol: &'a str,
    pub cause: Option<u16>,
    pub text: Option<&'a str>,
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Reason<'a> {
    const NAME: HeaderName = HeaderName::Reason;
    const LIST: bool = true;
    const ERROR: ErrorKind = ErrorKind::BadHeaderValue;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let protocol = c.token(Self::ERROR)?;
        let at = At::new(c);
        let (mut cause, mut text) = (None, None);
        let params = c.header_params(|n, v| {
            if n.eq_ignore_ascii_case("cause") {
                let v = v.ok_or(at.err(ErrorKind::BadParam, n))?;
                let ok = !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit());
                let num: u16 = ok
                    .then(|| v.parse().ok())
                    .flatten()
                    .ok_or(at.err(ErrorKind::BadParam, v))?;
                cause.get_or_insert(num);
            } else if n.eq_ignore_ascii_case("text") {
                let v = v.ok_or(at.err(ErrorKind::BadParam, n))?;
                text.get_or_insert(strip_quotes(v));
            }
            Ok(())
        })?;
        Ok(Reason {
            protocol,
            cause,
            text,
            params,
        })
    }
}

macro_rules! text_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub &'a str);

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;
            const LIST: bool = false;
            const ERROR: ErrorKind = ErrorKind::BadHeaderValue;

            #[inline(always)]
            fn decode(c: &mut Cursor<'a>) -> Result<Self> {
                check_text(c, Self::ERROR)?;
                let s = c.rest().trim_end_matches([' ', '\t']);
                c.set_pos(c.pos() + s.len());
                Ok($ty(s))
            }
        }
    };
}

text_header!(
    /// `User-Agent`: `server-val *(LWS server-val)`, checked liberally (any UTF-8 text without
    /// control characters; products and comments are not taken apart).
    UserAgent, UserAgent
);
text_header!(
    /// `Server`, like [`UserAgent`].
    Server, Server
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn events() {
        let e = Event::parse_value("presence.winfo;id=1234;foo").unwrap();
        assert_eq!(
            (e.package, e.package_name(), e.id),
            ("presence.winfo", "presence", Some("1234"))
        );
        assert!(e.params.contains("foo"));
        assert!(e.is("Presence.Winfo"));
        assert!(Event::parse_value("refer").unwrap().id.is_none());
        assert_eq!(
            Event::parse_value("a..b").unwrap_err().kind,
            ErrorKind::BadToken
        );
        assert_eq!(
            Event::parse_value("dialog;id").unwrap_err().kind,
            ErrorKind::BadParam
        );
        assert_eq!(
            Event::parse_value("a, b").unwrap_err().kind,
            ErrorKind::BadToken
        );
        let m =
            Message::parse(&b"SUBSCRIBE sip:a@b SIP/2.0\r\no: dialog\r\nl: 0\r\n\r\n"[..]).unwrap();
        assert!(m.typed::<Event>().unwrap().unwrap().is("dialog"));
    }

    #[test]
    fn replaces() {
        let r = Replaces::parse_value(
            "98732@sip.example.com\r\n ;from-tag=r33th4x0r\r\n ;to-tag=ff87ff;early-only",
        )
        .unwrap();
        assert_eq!(
            (r.call_id, r.to_tag, r.from_tag, r.early_only),
            ("98732@sip.example.com", "ff87ff", "r33th4x0r", true)
        );
        let kind = |s| Replaces::parse_value(s).unwrap_err().kind;
        assert_eq!(kind("abc;to-tag=1"), ErrorKind::BadParam);
        assert_eq!(
            kind("abc;to-tag=1;from-tag=2;to-tag=3"),
            ErrorKind::BadParam
        );
        assert_eq!(kind("abc;to-tag;from-tag=2"), ErrorKind::BadParam);
        assert_eq!(kind(";to-tag=1;from-tag=2"), ErrorKind::BadHeaderValue);
        assert_eq!(kind("a@;to-tag=1;from-tag=2"), ErrorKind::BadHeaderValue);
    }

    #[test]
    fn reasons() {
        let m = Message::parse(
            &b"BYE sip:a@b SIP/2.0\r\nReason: Q.850 ;cause=16 ;text=\"Terminated\", SIP;cause=200;text=\"Call completed \\\"elsewhere\\\"\"\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let r = m.typed_vec::<Reason>().unwrap();
        assert_eq!(
            (r[0].protocol, r[0].cause, r[0].text),
            ("Q.850", Some(16), Some("Terminated"))
        );
        assert_eq!((r[1].protocol, r[1].cause), ("SIP", Some(200)));
        assert_eq!(r[1].text, Some("Call completed \\\"elsewhere\\\""));
        assert_eq!(
            Reason::parse_value("SIP;cause=99999999").unwrap_err().kind,
            ErrorKind::BadParam
        );
        assert_eq!(
            Reason::parse_value("SIP;cause=x").unwrap_err().kind,
            ErrorKind::BadParam
        );
        assert_eq!(
            Reason::parse_value("SIP;text=\"open").unwrap_err().kind,
            ErrorKind::UnterminatedQuote
        );
    }

    #[test]
    fn product_text() {
        let u = UserAgent::parse_value("Softphone Beta1.5 (Windows NT; \u{e9}dition) \r\n\tfoo/2")
            .unwrap();
        assert_eq!(
            u.0,
            "Softphone Beta1.5 (Windows NT; \u{e9}dition) \r\n\tfoo/2"
        );
        assert_eq!(
            Server::parse_value("HomeServer v2").unwrap(),
            Server("HomeServer v2")
        );
        assert_eq!(
            Server::parse_value("a\u{0}b").unwrap_err().kind,
            ErrorKind::BadHeaderValue
        );
        let m =
            Message::parse(&b"SIP/2.0 200 OK\r\nServer:  X/1 (y)  \r\nl: 0\r\n\r\n"[..]).unwrap();
        assert_eq!(m.typed::<Server>().unwrap().unwrap(), Server("X/1 (y)"));
    }
}
