//! Comma-separated token lists: Allow, Supported, Require, Proxy-Require, Unsupported,
//! Allow-Events. Each value is one token.
//!
//! `Allow` and `Supported` may be empty (RFC 3261 20.5, 20.37): `typed_all` reports an empty
//! field as an error, [`crate::Message::decode_all_headers`] accepts it.

use crate::error::{ErrorKind, Result};
use crate::lex::Cursor;
use crate::method::Method;
use crate::name::HeaderName;
use crate::typed::TypedHeader;

macro_rules! token_list {
    ($(#[$doc:meta])* $ty:ident, $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub &'a str);

        impl<'a> $ty<'a> {
            pub fn as_str(&self) -> &'a str {
                self.0
            }

            /// Case-insensitive comparison (option tags and event packages compare that way;
            /// use `as_str` for methods, which are case-sensitive).
            pub fn is(&self, s: &str) -> bool {
                self.0.eq_ignore_ascii_case(s)
            }
        }

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;
            const LIST: bool = true;
            const ERROR: ErrorKind = ErrorKind::BadToken;

            #[inline(always)]
            fn decode(c: &mut Cursor<'a>) -> Result<Self> {
                c.token(Self::ERROR).map($ty)
            }
        }
    };
}

token_list!(
    /// One method of `Allow`.
    Allow, Allow
);
token_list!(
    /// One option tag of `Supported` (`k`).
    Supported, Supported
);
token_list!(
    /// One option tag of `Require`.
    Require, Require
);
token_list!(
    /// One option tag of `Proxy-Require`.
    ProxyRequire, ProxyRequire
);
token_list!(
    /// One option tag of `Unsupported`.
    Unsupported, Unsupported
);
token_list!(
    /// One event type of `Allow-Events` (`u`, RFC 6665).
    AllowEvents, AllowEvents
);

impl Allow<'_> {
    pub fn method(&self) -> Method {
        Method::from_bytes(self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn token_lists() {
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nAllow: INVITE, ACK,\r\n\tBYE\r\nk: 100rel,timer\r\n\
Require: nothingSupportsThis, nothingSupportsThisEither\r\n\
Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\r\nUnsupported: foo\r\n\
u: presence, dialog\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let allow = m.typed_vec::<Allow>().unwrap();
        assert_eq!(
            allow.iter().map(|a| a.method()).collect::<Vec<_>>(),
            [Method::Invite, Method::Ack, Method::Bye]
        );
        assert!(m.typed_vec::<Supported>().unwrap()[1].is("TIMER"));
        assert_eq!(m.typed_vec::<Require>().unwrap().len(), 2);
        assert_eq!(
            m.typed_vec::<ProxyRequire>().unwrap()[1].as_str(),
            "norDoAnyProxiesSupportThis"
        );
        assert_eq!(m.typed_vec::<Unsupported>().unwrap(), [Unsupported("foo")]);
        assert_eq!(m.typed_vec::<AllowEvents>().unwrap().len(), 2);
        assert_eq!(
            Require::parse_value("a b").unwrap_err().kind,
            ErrorKind::BadToken
        );
        assert_eq!(
            Require::parse_value("a,,b").unwrap_err().kind,
            ErrorKind::BadToken
        );
        assert_eq!(
            Require::parse_value("\"a\"").unwrap_err().kind,
            ErrorKind::BadToken
        );
    }
}
