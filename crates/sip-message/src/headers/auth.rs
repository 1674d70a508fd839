//! Authorization, Proxy-Authorization (credentials), WWW-Authenticate, Proxy-Authenticate
//! (challenges): RFC 3261 sections 20.7, 20.27, 20.28, 20.44 and 25.1, `token68` (RFC 7235,
//! used by the `Bearer` scheme of RFC 8898).

use std::ops::Deref;

use crate::chars;
use crate::error::{ErrorKind, Result};
use crate::lex::{strip_quotes, Cursor};
use crate::name::HeaderName;
use crate::typed::TypedHeader;

/// `auth-scheme LWS ( auth-param *(COMMA auth-param) / token68 )` with
/// `auth-param = token EQUAL ( token / quoted-string )`. The commas separate the parameters of
/// one value, so these headers are not comma lists (`LIST` is false), but a field may repeat.
/// Unknown schemes decode generically (`regaut01.dat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    pub scheme: &'a str,
    pub params: AuthParams<'a>,
    /// The `token68` form (`Bearer mF_9.B5f-4.1JqM`), when the value is not auth-params.
    pub token68: Option<&'a str>,
}

/// The auth-params of one value, raw, read on demand (already checked by the decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthParams<'a> {
    raw: &'a str,
}

impl<'a> AuthParams<'a> {
    /// The raw text, from the first parameter name to the end of the last value.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `(name, value)` pairs; quoted values keep their quotes.
    pub fn iter(&self) -> AuthParamIter<'a> {
        AuthParamIter {
            c: Cursor::new(self.raw, 0, usize::MAX),
        }
    }

    /// The value of `name` (case-insensitive), quotes removed, escapes kept (see
    /// [`crate::unquote`]).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| strip_quotes(v))
    }
}

pub struct AuthParamIter<'a> {
    c: Cursor<'a>,
}

impl<'a> Iterator for AuthParamIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.c;
        c.skip_ws();
        let name = c.take_class(&chars::TOKEN);
        if name.is_empty() || !c.eat_ws(b'=') {
            return None;
        }
        c.skip_ws();
        let v0 = c.pos();
        if c.peek() == Some(b'"') {
            c.quoted().ok()?;
        } else {
            c.take_class(&chars::TOKEN);
        }
        let value = c.slice(v0, c.pos());
        c.eat_ws(b',');
        Some((name, value))
    }
}

macro_rules! accessors {
    ($($(#[$doc:meta])* $fn:ident => $name:literal;)*) => {
        $( $(#[$doc])* pub fn $fn(&self) -> Option<&'a str> { self.params.get($name) } )*
    };
}

impl<'a> Auth<'a> {
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// Any parameter by name (case-insensitive), quotes removed, escapes kept.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.get(name)
    }

    accessors! {
        username => "username";
        realm => "realm";
        nonce => "nonce";
        /// The `uri` (digest-uri) parameter.
        uri => "uri";
        response => "response";
        algorithm => "algorithm";
        /// `qop`: one value in credentials, a quoted list (`"auth,auth-int"`) in challenges.
        qop => "qop";
        nc => "nc";
        cnonce => "cnonce";
        opaque => "opaque";
        stale => "stale";
        domain => "domain";
        /// `userhash` (RFC 8760).
        userhash => "userhash";
    }

    /// `stale=true` (case-insensitive).
    pub fn is_stale(&self) -> bool {
        self.stale().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, alone in the rest.
fn token68_len(b: &[u8]) -> Option<usize> {
    let n = b
        .iter()
        .position(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        })
        .unwrap_or(b.len());
    if n == 0 {
        return None;
    }
    let eq = b
        .get(n..)
        .unwrap_or(&[])
        .iter()
        .take_while(|c| **c == b'=')
        .count();
    let end = n + eq;
    let rest = b.get(end..).unwrap_or(&[]);
    rest.iter()
        .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .then_some(end)
}

fn decode_auth<'a>(c: &mut Cursor<'a>) -> Result<Auth<'a>> {
    const E: ErrorKind = ErrorKind::BadAuth;
    let scheme = c.token(E)?;
    if !c.skip_ws() {
        return Err(c.err(E));
    }
    let p0 = c.pos();
    // Digest never uses token68 (RFC 3261 25.1); other schemes may.
    let t68 = if scheme.eq_ignore_ascii_case("Digest") {
        None
    } else {
        token68_len(c.bytes().get(p0..).unwrap_or(&[]))
    };
    if let Some(n) = t68 {
        c.set_pos(p0 + n);
        return Ok(Auth {
            scheme,
            params: AuthParams::default(),
            token68: Some(c.slice(p0, p0 + n)),
        });
    }
    let mut count = 0usize;
    let end = loop {
        count += 1;
        if count > c.max_params() {
            return Err(c.err(ErrorKind::TooManyParams));
        }
        c.token(E)?;
        c.expect_ws(b'=', E)?;
        c.skip_ws();
        if c.peek() == Some(b'"') {
            c.quoted()?;
        } else {
            c.token(E)?;
        }
        let end = c.pos();
        if !c.eat_ws(b',') {
            break end;
        }
        c.skip_ws();
    };
    Ok(Auth {
        scheme,
        params: AuthParams {
            raw: c.slice(p0, end),
        },
        token68: None,
    })
}

macro_rules! auth_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub Auth<'a>);

        impl<'a> Deref for $ty<'a> {
            type Target = Auth<'a>;
            fn deref(&self) -> &Auth<'a> {
                &self.0
            }
        }

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;
            const LIST: bool = false;
            const ERROR: ErrorKind = ErrorKind::BadAuth;

            #[inline(always)]
            fn decode(c: &mut Cursor<'a>) -> Result<Self> {
                decode_auth(c).map($ty)
            }
        }
    };
}

auth_header!(
    /// `Authorization`: credentials for a UAS or registrar.
    Authorization, Authorization
);
auth_header!(
    /// `Proxy-Authorization`: credentials for a proxy.
    ProxyAuthorization, ProxyAuthorization
);
auth_header!(
    /// `WWW-Authenticate`: a challenge from a UAS or registrar.
    WwwAuthenticate, WwwAuthenticate
);
auth_header!(
    /// `Proxy-Authenticate`: a challenge from a proxy.
    ProxyAuthenticate, ProxyAuthenticate
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn digest_credentials() {
        let a = Authorization::parse_value(
            "Digest username=\"bob\",\r\n realm=\"biloxi.com\" , nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\
             uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\",\
             response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\",\
             algorithm=MD5, userhash=false",
        )
        .unwrap();
        assert!(a.is_digest());
        assert_eq!(a.username(), Some("bob"));
        assert_eq!(a.realm(), Some("biloxi.com"));
        assert_eq!(a.nonce(), Some("dcd98b7102dd2f0e8b11d0f600bfb0c093"));
        assert_eq!(a.uri(), Some("sip:bob@biloxi.com"));
        assert_eq!(a.qop(), Some("auth"));
        assert_eq!(a.nc(), Some("00000001"));
        assert_eq!(a.cnonce(), Some("0a4f113b"));
        assert_eq!(a.response(), Some("6629fae49393a05397450978507c4ef1"));
        assert_eq!(a.opaque(), Some("5ccc069c403ebaf9f0171e9517f40e41"));
        assert_eq!(a.algorithm(), Some("MD5"));
        assert_eq!(a.userhash(), Some("false"));
        assert_eq!(a.params.iter().count(), 11);
        assert_eq!(a.token68, None);
    }

    #[test]
    fn challenges_and_odd_schemes() {
        let w = WwwAuthenticate::parse_value(
            "Digest realm=\"atlanta.com\", domain=\"sip:ss1.carrier.com\", qop=\"auth,auth-int\", \
             nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=TRUE, algorithm=MD5",
        )
        .unwrap();
        assert_eq!(w.domain(), Some("sip:ss1.carrier.com"));
        assert_eq!(w.qop(), Some("auth,auth-int"));
        assert_eq!(w.opaque(), Some(""));
        assert!(w.is_stale());
        // regaut01.dat
        let a = Authorization::parse_value("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(a.scheme, "NoOneKnowsThisScheme");
        assert!(!a.is_digest());
        assert_eq!(a.param("opaque-data"), Some("here"));
        let b = Authorization::parse_value("Bearer mF_9.B5f-4.1JqM==").unwrap();
        assert_eq!(
            (b.token68, b.params.is_empty()),
            (Some("mF_9.B5f-4.1JqM=="), true)
        );
        let p = ProxyAuthenticate::parse_value("Digest realm=\"a\\\"b\", nonce=x").unwrap();
        assert_eq!(p.realm(), Some("a\\\"b"));
        assert!(ProxyAuthorization::parse_value("Digest username=\"a\"").is_ok());
    }

    #[test]
    fn malformed_credentials() {
        let kind = |s| Authorization::parse_value(s).unwrap_err().kind;
        assert_eq!(kind("Digest"), ErrorKind::BadAuth);
        assert_eq!(kind("Digest,"), ErrorKind::BadAuth);
        assert_eq!(kind("Digest username=\"a\","), ErrorKind::BadAuth);
        assert_eq!(kind("Digest username=\"a\" realm=b"), ErrorKind::BadAuth);
        assert_eq!(kind("Digest username"), ErrorKind::BadAuth);
        assert_eq!(kind("Digest username="), ErrorKind::BadAuth);
        assert_eq!(kind("Digest uri=sip:a@b"), ErrorKind::BadAuth);
        assert_eq!(kind("Digest username=\"a"), ErrorKind::UnterminatedQuote);
        assert_eq!(kind("Digest a=1,,b=2"), ErrorKind::BadAuth);
    }

    #[test]
    fn repeated_fields_through_message() {
        let m = Message::parse(
            &b"INVITE sip:a@b SIP/2.0\r\nProxy-Authorization: Digest realm=\"one\", username=\"u\"\r\n\
Proxy-Authorization: Digest realm=\"two\",\r\n username=\"v\"\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let all = m.typed_vec::<ProxyAuthorization>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].realm(), Some("two"));
        assert_eq!(all[1].username(), Some("v"));
    }
}
