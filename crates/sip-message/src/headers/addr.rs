//! name-addr / addr-spec headers: From, To, Contact, Route, Record-Route, Path, Service-Route,
//! P-Asserted-Identity, P-Preferred-Identity, Refer-To, Referred-By, Reply-To.

use std::borrow::Cow;
use std::ops::Deref;

use super::{delta_seconds_str, parse_qvalue, At};
use crate::error::{ErrorKind, ParseError, Result};
use crate::lex::{unquote, Cursor, Params};
use crate::name::HeaderName;
use crate::typed::TypedHeader;
use crate::uri::{addr_spec_len, parse_uri, Uri, UriContext};

/// `( name-addr / addr-spec ) *( SEMI param )` where
/// `name-addr = [ display-name ] LAQUOT addr-spec RAQUOT` and
/// `display-name = *(token LWS) / quoted-string`.
///
/// Liberal where RFC 4475 allows it, and only there:
/// * an unquoted display name may hold characters other than tokens (`baddn.dat`:
///   `Bell, Alexander <sip:...>`), any UTF-8 text except `"`, `<`, `>`, `:`, control
///   characters and, in comma-separated list headers, `,` (a `:` means a URI, so
///   `To: sip:a@b, Bob <sip:c@d>` stays two values and is not read as one display name);
/// * no white space is needed between the display name and `<` (`lwsdisp.dat`).
///
/// Strict: white space inside `<...>` (`badaspec.dat`) and an unquoted URI with `?headers`
/// (`regbadct.dat`, RFC 3261 20.10) are `BadNameAddr`. In the addr-spec form the URI ends at the
/// first `;` after the host: those parameters belong to the header (RFC 3261 20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name: the content of the quoted string with its escapes kept, or the
    /// unquoted words (trimmed, folds kept). See [`NameAddr::display_name_unquoted`].
    pub display_name: Option<&'a str>,
    /// True when the display name was a quoted string.
    pub display_quoted: bool,
    pub uri: Uri<'a>,
    /// True for the `<uri>` form.
    pub bracketed: bool,
    /// The header parameters after the address (`;tag=...`), raw.
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// The display name with quoted-pair escapes removed (empty when there is none).
    pub fn display_name_unquoted(&self) -> Cow<'a, str> {
        match self.display_name {
            None => Cow::Borrowed(""),
            Some(d) if self.display_quoted => unquote(d),
            Some(d) => Cow::Borrowed(d),
        }
    }

    /// A header parameter by name (case-insensitive), quotes removed.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.value(name)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }
}

/// What an unbracketed address may look like in a given header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrSpec {
    /// Only `name-addr` (Route, Record-Route, Path, Service-Route): an unbracketed URI would
    /// silently lose its `;lr` to the header, so it is rejected.
    Reject,
    /// `addr-spec *(SEMI param)`: the URI stops at the first `;` after the host.
    HeaderParams,
    /// P-Asserted-Identity / P-Preferred-Identity (RFC 3325) have no header parameters: an
    /// unbracketed URI runs to white space or a comma, URI parameters included.
    WholeUri,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Decodes one address value at the cursor. `list`: the header is a comma-separated list (a
/// top-level `,` ends the value). `each` sees every header parameter during the one pass.
#[inline(always)]
pub(crate) fn decode_name_addr<'a>(
    c: &mut Cursor<'a>,
    list: bool,
    spec: AddrSpec,
    each: impl FnMut(&'a str, Option<&'a str>) -> Result<()>,
) -> Result<NameAddr<'a>> {
    const E: ErrorKind = ErrorKind::BadNameAddr;
    let start = c.pos();
    let mut display_name = None;
    let mut display_quoted = false;
    match c.peek() {
        Some(b'"') => {
            display_name = Some(c.quoted()?);
            display_quoted = true;
            c.skip_ws();
            if c.peek() != Some(b'<') {
                return Err(c.err(E));
            }
        }
        Some(b'<') => {}
        _ => {
            // An unquoted display name runs to the `<`; anything that cannot be in one means
            // this is an addr-spec.
            let b = c.bytes();
            let mut i = start;
            let mut angle = false;
            while let Some(&ch) = b.get(i) {
                match ch {
                    b'<' => {
                        angle = true;
                        break;
                    }
                    b'"' | b'>' | b':' => break,
                    b',' if list => break,
                    b'\t' | b'\r' | b'\n' => {}
                    0..=0x1f | 0x7f => break,
                    _ => {}
                }
                i += 1;
            }
            if angle {
                let d = c
                    .slice(start, i)
                    .trim_end_matches(|ch: char| ch.is_ascii_whitespace());
                if !d.is_empty() {
                    display_name = Some(d);
                }
                c.set_pos(i);
            }
        }
    }
    let bracketed = c.eat(b'<');
    let uri = if bracketed {
        let open = c.pos() - 1;
        let u0 = c.pos();
        let rest = c.bytes().get(u0..).unwrap_or(&[]);
        let j =
            crate::simd::find1(rest, b'>').ok_or(c.err_at(ErrorKind::UnterminatedAngle, open))?;
        if j == 0 {
            return Err(c.err_at(E, u0));
        }
        let u = c.slice(u0, u0 + j);
        // No URI parser accepts white space, so look for it (to answer BadNameAddr,
        // `badaspec.dat`) only when the URI fails.
        let uri =
            parse_uri(u, c.base() + u0, UriContext::Bracketed, c.max_params()).map_err(|e| {
                match rest
                    .get(..j)
                    .and_then(|inner| inner.iter().position(|b| is_ws(*b)))
                {
                    Some(k) => c.err_at(E, u0 + k),
                    None => e,
                }
            })?;
        c.set_pos(u0 + j + 1);
        uri
    } else {
        let rest = c.bytes().get(start..).unwrap_or(&[]);
        let n = match spec {
            AddrSpec::Reject => return Err(c.err_at(E, start)),
            AddrSpec::HeaderParams => addr_spec_len(rest),
            AddrSpec::WholeUri => rest
                .iter()
                .position(|b| is_ws(*b) || *b == b',')
                .unwrap_or(rest.len()),
        };
        if n == 0 {
            return Err(c.err_at(E, start));
        }
        let u = c.slice(start, start + n);
        let uri = parse_uri(u, c.base() + start, UriContext::Bracketed, c.max_params())?;
        // RFC 3261 20.10: a URI with headers must be enclosed in angle brackets.
        let has_headers = match &uri {
            Uri::Sip(s) => s.headers.is_some(),
            _ => u.contains('?'),
        };
        if has_headers {
            let q = u.rfind('?').unwrap_or(0);
            return Err(c.err_at(E, start + q));
        }
        c.set_pos(start + n);
        uri
    };
    let params = if spec == AddrSpec::WholeUri && !bracketed {
        Params::EMPTY
    } else {
        c.header_params(each)?
    };
    Ok(NameAddr {
        display_name,
        display_quoted,
        uri,
        bracketed,
        params,
    })
}

macro_rules! name_addr_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident, $list:expr, $spec:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub NameAddr<'a>);

        impl<'a> Deref for $ty<'a> {
            type Target = NameAddr<'a>;
            fn deref(&self) -> &NameAddr<'a> {
                &self.0
            }
        }

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;
            const LIST: bool = $list;
            const ERROR: ErrorKind = ErrorKind::BadNameAddr;

            #[inline(always)]
            fn decode(c: &mut Cursor<'a>) -> Result<Self> {
                decode_name_addr(c, $list, $spec, |_, _| Ok(())).map($ty)
            }
        }
    };
}

name_addr_header!(
    /// `From` (`f`): one address; see [`NameAddr::tag`].
    From, From, false, AddrSpec::HeaderParams
);
name_addr_header!(
    /// `To` (`t`): one address; see [`NameAddr::tag`].
    To, To, false, AddrSpec::HeaderParams
);
name_addr_header!(
    /// `Route`: `name-addr *(SEMI rr-param)`, brackets required.
    Route, Route, true, AddrSpec::Reject
);
name_addr_header!(
    /// `Record-Route`: `name-addr *(SEMI rr-param)`, brackets required.
    RecordRoute, RecordRoute, true, AddrSpec::Reject
);
name_addr_header!(
    /// `Path` (RFC 3327), brackets required.
    Path, Path, true, AddrSpec::Reject
);
name_addr_header!(
    /// `Service-Route` (RFC 3608), brackets required.
    ServiceRoute, ServiceRoute, true, AddrSpec::Reject
);
name_addr_header!(
    /// `P-Asserted-Identity` (RFC 3325): `name-addr / addr-spec`, a list; an unbracketed URI
    /// keeps its URI parameters (the header has none).
    PAssertedIdentity, PAssertedIdentity, true, AddrSpec::WholeUri
);
name_addr_header!(
    /// `P-Preferred-Identity` (RFC 3325), like [`PAssertedIdentity`].
    PPreferredIdentity, PPreferredIdentity, true, AddrSpec::WholeUri
);
name_addr_header!(
    /// `Refer-To` (`r`, RFC 3515): one address.
    ReferTo, ReferTo, false, AddrSpec::HeaderParams
);
name_addr_header!(
    /// `Referred-By` (`b`, RFC 3892): one address.
    ReferredBy, ReferredBy, false, AddrSpec::HeaderParams
);
name_addr_header!(
    /// `Reply-To`: one address.
    ReplyTo, ReplyTo, false, AddrSpec::HeaderParams
);

/// `Contact` (`m`): `"*"` alone, or a list of addresses with `q` and `expires` checked during
/// decoding (`q` must be a qvalue, `expires` delta-seconds; otherwise `BadParam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn is_star(&self) -> bool {
        matches!(self, Contact::Star)
    }

    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Addr(a) => Some(a),
            Contact::Star => None,
        }
    }

    /// The `expires` parameter (values above 2^32-1 saturate, see RFC 4475 3.1.2.4).
    pub fn expires(&self) -> Option<u32> {
        self.addr()?
            .params
            .value("expires")
            .and_then(delta_seconds_str)
    }

    /// The `q` parameter in thousandths (0 to 1000).
    pub fn q_permille(&self) -> Option<u16> {
        self.addr()?.params.value("q").and_then(parse_qvalue)
    }

    /// The `q` parameter (0.0 to 1.0).
    pub fn q(&self) -> Option<f32> {
        self.q_permille().map(|q| f32::from(q) / 1000.0)
    }
}

impl<'a> TypedHeader<'a> for Contact<'a> {
    const NAME: HeaderName = HeaderName::Contact;
    const LIST: bool = true;
    const ERROR: ErrorKind = ErrorKind::BadNameAddr;

    #[inline(always)]
    fn decode(c: &mut Cursor<'a>) -> Result<Self> {
        let start = c.pos();
        if c.peek() == Some(b'*') {
            // `*` must be the only value of the field.
            let before = c.slice(0, start);
            c.bump();
            let mut after = c.clone();
            after.skip_ws();
            if !before.bytes().all(is_ws) || !after.at_end() {
                return Err(c.err_at(ErrorKind::BadNameAddr, start));
            }
            return Ok(Contact::Star);
        }
        let at = At::new(c);
        decode_name_addr(c, true, AddrSpec::HeaderParams, |n, v| {
            let bad = |s: &str| -> ParseError { at.err(ErrorKind::BadParam, s) };
            if n.eq_ignore_ascii_case("q") {
                let v = v.ok_or(bad(n))?;
                parse_qvalue(v).ok_or(bad(v))?;
            } else if n.eq_ignore_ascii_case("expires") {
                let v = v.ok_or(bad(n))?;
                delta_seconds_str(v).ok_or(bad(v))?;
            }
            Ok(())
        })
        .map(Contact::Addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::uri::Host;

    fn from(s: &str) -> From<'_> {
        From::parse_value(s).unwrap()
    }

    fn kind<'a, T: TypedHeader<'a> + std::fmt::Debug>(s: &'a str) -> ErrorKind {
        T::parse_value(s).unwrap_err().kind
    }

    #[test]
    fn bracketed_with_quoted_display_name() {
        let f = from(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        );
        assert_eq!(f.display_name, Some("J Rosenberg \\\\\\\""));
        assert!(f.display_quoted);
        assert_eq!(f.display_name_unquoted(), "J Rosenberg \\\"");
        assert_eq!(f.uri.as_str(), "sip:jdrosen@example.com");
        assert!(f.bracketed);
        assert_eq!(f.tag(), Some("98asjd8"));
        let f = from("\"\" <sip:a@b>");
        assert_eq!(f.display_name, Some(""));
    }

    #[test]
    fn unquoted_display_names() {
        // intmeth.dat
        let f =
            from("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-.");
        assert_eq!(f.display_name, Some("token1~` token2'+_ token3*%!.-"));
        assert!(!f.display_quoted);
        assert_eq!(f.tag(), Some("_token~1'+`*%!-."));
        // lwsdisp.dat: no LWS before '<'
        let f = from("caller<sip:caller@example.com>;tag=323");
        assert_eq!(f.display_name, Some("caller"));
        assert_eq!(f.display_name_unquoted(), "caller");
        // baddn.dat, accepted liberally in a single-value header
        let f = from("Bell, Alexander <sip:a.g.bell@example.com>;tag=43");
        assert_eq!(f.display_name, Some("Bell, Alexander"));
        let f = from("M\u{fc}ller\r\n <sip:m@example.com>");
        assert_eq!(f.display_name, Some("M\u{fc}ller"));
        let f = from("<sip:a@b>");
        assert_eq!(
            (f.display_name, f.display_name_unquoted()),
            (None, Cow::Borrowed(""))
        );
    }

    #[test]
    fn addr_spec_form_params_belong_to_the_header() {
        let t =
            To::parse_value("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!t.bracketed);
        assert_eq!(t.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(t.tag(), Some("1918181833n"));
        let f = from("sip:+12125551212@phone2net.com;tag=887s;user=phone");
        assert_eq!(f.uri.as_str(), "sip:+12125551212@phone2net.com");
        assert_eq!(f.param("user"), Some("phone"));
        // unknown schemes (unksm2.dat)
        assert_eq!(
            To::parse_value("isbn:2983792873").unwrap().uri.scheme(),
            "isbn"
        );
        let f = from("<http://www.example.com>;tag=3234233");
        assert_eq!(f.uri.scheme(), "http");
        // a ';' in the user part stays in the URI
        let t = To::parse_value("sip:user;par=u%40example.net@example.com;tag=1").unwrap();
        assert_eq!(t.uri.sip().unwrap().user, Some("user;par=u%40example.net"));
        assert_eq!(t.tag(), Some("1"));
    }

    #[test]
    fn malformed_addresses() {
        // regbadct.dat
        assert_eq!(
            kind::<Contact>("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            ErrorKind::BadNameAddr
        );
        // badaspec.dat
        assert_eq!(
            kind::<To>("\"Watson, Thomas\" < sip:t.watson@example.org >"),
            ErrorKind::BadNameAddr
        );
        assert_eq!(kind::<To>("<sip:a@b >"), ErrorKind::BadNameAddr);
        // quotbal.dat
        assert_eq!(
            kind::<To>("\"Mr. J. User <sip:j.user@example.com>"),
            ErrorKind::UnterminatedQuote
        );
        assert_eq!(kind::<To>("<sip:a@b"), ErrorKind::UnterminatedAngle);
        assert_eq!(kind::<To>("Bob <sip:a@b"), ErrorKind::UnterminatedAngle);
        assert_eq!(kind::<To>("\"Bob\" sip:a@b"), ErrorKind::BadNameAddr);
        assert_eq!(kind::<To>("<>"), ErrorKind::BadNameAddr);
        assert_eq!(kind::<To>("sip:a@b c"), ErrorKind::BadNameAddr);
        assert_eq!(kind::<To>("sip:a@b, sip:c@d"), ErrorKind::BadNameAddr);
        assert_eq!(kind::<To>("<sip:a@b>;"), ErrorKind::BadParam);
        assert_eq!(kind::<To>("Bob"), ErrorKind::BadUri);
        assert_eq!(kind::<To>("<sip:a@b:99999>"), ErrorKind::BadPort);
        assert_eq!(kind::<To>("a\"b <sip:a@b>"), ErrorKind::BadUri);
        // badinv01.dat
        assert_eq!(
            kind::<Contact>("\"Joe\" <sip:joe@example.org>;;;;"),
            ErrorKind::BadParam
        );
        // Route needs brackets
        assert_eq!(
            kind::<Route>("sip:p1.example.com;lr"),
            ErrorKind::BadNameAddr
        );
        let e = To::parse_value("<sip:a@b").unwrap_err();
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn contacts() {
        // wsinv.dat
        let c = Contact::parse_value(
            "\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33",
        )
        .unwrap();
        let a = c.addr().unwrap();
        assert_eq!(a.display_name_unquoted(), "Quoted string \"\"");
        assert_eq!(a.param("newparam"), Some("newvalue"));
        assert!(a.params.contains("secondparam"));
        assert_eq!(c.q_permille(), Some(330));
        assert_eq!(c.q(), Some(0.33));
        let c =
            Contact::parse_value("<sip:user@host129.example.com>\r\n  ;expires=280297596632815")
                .unwrap();
        assert_eq!(c.expires(), Some(u32::MAX));
        assert!(Contact::parse_value("  *  ").unwrap().is_star());
        assert_eq!(kind::<Contact>("<sip:a@b>;q=2"), ErrorKind::BadParam);
        assert_eq!(kind::<Contact>("<sip:a@b>;q"), ErrorKind::BadParam);
        assert_eq!(
            kind::<Contact>("<sip:a@b>;expires=soon"),
            ErrorKind::BadParam
        );
        assert_eq!(kind::<Contact>("* x"), ErrorKind::BadNameAddr);
        // cparam01.dat / cparam02.dat
        let c = Contact::parse_value("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(c.addr().unwrap().params.contains("unknownparam"));
        let c = Contact::parse_value("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert!(c.addr().unwrap().params.is_empty());
        assert!(c
            .addr()
            .unwrap()
            .uri
            .sip()
            .unwrap()
            .params
            .contains("unknownparam"));
        // regescrt.dat: headers in a bracketed URI are fine
        let c =
            Contact::parse_value("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").unwrap();
        assert!(c.addr().unwrap().uri.sip().unwrap().headers.is_some());
    }

    #[test]
    fn contact_lists_through_message() {
        let m = Message::parse(
            &b"REGISTER sip:x SIP/2.0\r\n\
m: <sip:a@h1>;expires=60, Bob <sip:b@h2>;q=1,\r\n sip:c@h3;q=0.5\r\n\
Contact: *, <sip:d@h4>\r\n\
l: 0\r\n\r\n"[..],
        )
        .unwrap();
        let mut it = m.typed_all::<Contact>();
        let a = it.next().unwrap().unwrap();
        assert_eq!(a.expires(), Some(60));
        let b = it.next().unwrap().unwrap();
        assert_eq!(b.addr().unwrap().display_name, Some("Bob"));
        assert_eq!(b.q_permille(), Some(1000));
        let c = it.next().unwrap().unwrap();
        assert_eq!(c.addr().unwrap().uri.sip().unwrap().host, Host::Name("h3"));
        assert_eq!(it.next().unwrap().unwrap_err().kind, ErrorKind::BadNameAddr);
        // in a list header a comma ends an unquoted display name
        assert_eq!(
            kind::<Contact>("Bell, Alexander <sip:a@b>"),
            ErrorKind::BadUri
        );
    }

    #[test]
    fn wrappers() {
        let r =
            Route::parse_value("<sip:services.example.com;lr;unknownwith=value;unknown-no-value>")
                .unwrap();
        assert!(r.uri.sip().unwrap().lr());
        let p = PAssertedIdentity::parse_value("sip:+15551234567@example.com;user=phone").unwrap();
        assert_eq!(p.uri.sip().unwrap().user_param(), Some("phone"));
        assert!(p.params.is_empty());
        let p = PAssertedIdentity::parse_value("\"Alice\" <sip:alice@example.com>").unwrap();
        assert_eq!(p.display_name, Some("Alice"));
        let p = PPreferredIdentity::parse_value("tel:+15551234567").unwrap();
        assert!(matches!(p.uri, Uri::Tel(_)));
        let r = ReferTo::parse_value(
            "<sip:c@d?Replaces=abc%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>;method=INVITE",
        )
        .unwrap();
        assert_eq!(r.param("method"), Some("INVITE"));
        assert!(ReferTo::parse_value("sip:c@d?Replaces=abc").is_err());
        assert!(ReferredBy::parse_value(
            "<sip:referrer@referrer.example>;cid=\"20398823.2UWQFN309shb3@referrer.example\""
        )
        .is_ok());
        assert!(ReplyTo::parse_value("Bob <sip:bob@biloxi.com>").is_ok());
        assert!(Path::parse_value("<sip:P3.EXAMPLEHOME.COM;lr>").is_ok());
        assert!(ServiceRoute::parse_value("<sip:P2.HOME.EXAMPLE.COM;lr>").is_ok());
        assert!(RecordRoute::parse_value("<sip:UserB@example.com;maddr=ss1.example.com>").is_ok());
    }

    #[test]
    fn compact_names_through_message() {
        let m = Message::parse(
            &b"INVITE sip:a@b SIP/2.0\r\nf: Alice <sip:alice@a>;tag=1\r\nt: sip:bob@b\r\nr: <sip:c@d>\r\nb: sip:e@f\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        assert_eq!(m.typed::<From>().unwrap().unwrap().tag(), Some("1"));
        assert_eq!(m.typed::<To>().unwrap().unwrap().uri.as_str(), "sip:bob@b");
        assert!(m.typed::<ReferTo>().unwrap().is_ok());
        assert!(m.typed::<ReferredBy>().unwrap().is_ok());
    }
}
