//! [`Message::decode_all_headers`]: every value of every header that has a typed decoder.

use super::*;
use crate::error::{ErrorKind, ParseError, Result};
use crate::lex::Cursor;
use crate::message::{HeaderField, Message, Span};
use crate::name::HeaderName;
use crate::typed::TypedHeader;

impl Message {
    /// Decodes every value of every header field that has a typed decoder and returns how many
    /// values were decoded, or the first error. Allocates nothing. Empty `Accept`, `Allow` and
    /// `Supported` fields are valid (RFC 3261 20.1, 20.5, 20.37) and count no value.
    pub fn decode_all_headers(&self) -> Result<usize> {
        let fields = self.fields();
        let (Some(first), Some(last)) = (fields.first(), fields.last()) else {
            return Ok(0);
        };
        // One UTF-8 check for the whole header block instead of one per field; when some field
        // is not UTF-8, decode field by field so that the error points at it.
        let block = HeaderField {
            value_span: Span {
                start: first.value_span.start,
                end: last.value_span.end.max(first.value_span.start),
            },
            ..*first
        };
        let raw = self.slice(block.value_span);
        let checked;
        let text = if crate::simd::is_ascii(raw) {
            // SAFETY: every byte of `raw` is below 0x80 (checked on the line above), and a
            // sequence of ASCII bytes is valid UTF-8. The vector check costs about half of
            // `from_utf8`'s on the ASCII that header blocks nearly always are.
            unsafe { std::str::from_utf8_unchecked(raw) }
        } else {
            let Ok(all) = self.cursor(&block) else {
                return fields
                    .iter()
                    .try_fold(0, |n, f| Ok(n + self.decode_field_values(f)?));
            };
            checked = all;
            checked.rest()
        };
        let max_params = self.max_params();
        let start = block.value_span.start as usize;
        let mut n = 0;
        for f in fields {
            let r = f.value_span.range();
            let c = match text.get(r.start - start..r.end - start) {
                Some(s) => Cursor::new(s, r.start, max_params),
                None => self.cursor(f)?,
            };
            n += self.decode_cursor(f.name, c)?;
        }
        Ok(n)
    }

    /// Decodes every value of one field (0 for headers without a typed decoder).
    pub fn decode_field_values(&self, f: &HeaderField) -> Result<usize> {
        if !has_decoder(f.name) {
            return Ok(0);
        }
        self.decode_cursor(f.name, self.cursor(f)?)
    }

    fn decode_cursor<'a>(&'a self, name: HeaderName, c: Cursor<'a>) -> Result<usize> {
        use HeaderName as H;
        match name {
            H::Via => self.decode_values::<Via>(c, false),
            H::From => self.decode_values::<From>(c, false),
            H::To => self.decode_values::<To>(c, false),
            H::CallId => self.decode_values::<CallId>(c, false),
            H::CSeq => self.decode_values::<CSeq>(c, false),
            H::MaxForwards => self.decode_values::<MaxForwards>(c, false),
            H::Contact => self.decode_values::<Contact>(c, false),
            H::Route => self.decode_values::<Route>(c, false),
            H::RecordRoute => self.decode_values::<RecordRoute>(c, false),
            H::Path => self.decode_values::<Path>(c, false),
            H::ServiceRoute => self.decode_values::<ServiceRoute>(c, false),
            H::PAssertedIdentity => self.decode_values::<PAssertedIdentity>(c, false),
            H::PPreferredIdentity => self.decode_values::<PPreferredIdentity>(c, false),
            H::ReferTo => self.decode_values::<ReferTo>(c, false),
            H::ReferredBy => self.decode_values::<ReferredBy>(c, false),
            H::ReplyTo => self.decode_values::<ReplyTo>(c, false),
            H::ContentLength => self.decode_values::<ContentLength>(c, false),
            H::ContentType => self.decode_values::<ContentType>(c, false),
            H::Expires => self.decode_values::<Expires>(c, false),
            H::MinExpires => self.decode_values::<MinExpires>(c, false),
            H::MinSe => self.decode_values::<MinSe>(c, false),
            H::SessionExpires => self.decode_values::<SessionExpires>(c, false),
            H::Authorization => self.decode_values::<Authorization>(c, false),
            H::ProxyAuthorization => self.decode_values::<ProxyAuthorization>(c, false),
            H::WwwAuthenticate => self.decode_values::<WwwAuthenticate>(c, false),
            H::ProxyAuthenticate => self.decode_values::<ProxyAuthenticate>(c, false),
            H::Allow => self.decode_values::<Allow>(c, true),
            H::Supported => self.decode_values::<Supported>(c, true),
            H::Require => self.decode_values::<Require>(c, false),
            H::ProxyRequire => self.decode_values::<ProxyRequire>(c, false),
            H::Unsupported => self.decode_values::<Unsupported>(c, false),
            H::AllowEvents => self.decode_values::<AllowEvents>(c, false),
            H::Accept => self.decode_values::<Accept>(c, true),
            H::Event => self.decode_values::<Event>(c, false),
            H::Replaces => self.decode_values::<Replaces>(c, false),
            H::Reason => self.decode_values::<Reason>(c, false),
            H::UserAgent => self.decode_values::<UserAgent>(c, false),
            H::Server => self.decode_values::<Server>(c, false),
            _ => Ok(0),
        }
    }

    /// The values of one field, with the rules of [`crate::TypedIter`] (a list value ends at a
    /// top-level comma, nothing may follow a final comma, at most `max_values` values).
    fn decode_values<'a, T: TypedHeader<'a>>(
        &'a self,
        mut c: Cursor<'a>,
        empty_ok: bool,
    ) -> Result<usize> {
        c.skip_ws();
        if c.at_end() {
            return if empty_ok {
                Ok(0)
            } else {
                Err(ParseError::new(T::ERROR, c.base()))
            };
        }
        let mut n = 0;
        loop {
            n += 1;
            if n > self.max_values() {
                return Err(c.err(ErrorKind::TooManyValues));
            }
            T::decode(&mut c)?;
            c.skip_ws();
            if c.at_end() {
                return Ok(n);
            }
            if !(T::LIST && c.eat(b',')) {
                return Err(c.err(T::ERROR));
            }
            c.skip_ws();
            if c.at_end() {
                return Err(c.err(T::ERROR));
            }
        }
    }
}

/// True for the headers [`Message::decode_all_headers`] decodes.
fn has_decoder(name: HeaderName) -> bool {
    use HeaderName as H;
    matches!(
        name,
        H::Via
            | H::From
            | H::To
            | H::CallId
            | H::CSeq
            | H::MaxForwards
            | H::Contact
            | H::Route
            | H::RecordRoute
            | H::Path
            | H::ServiceRoute
            | H::PAssertedIdentity
            | H::PPreferredIdentity
            | H::ReferTo
            | H::ReferredBy
            | H::ReplyTo
            | H::ContentLength
            | H::ContentType
            | H::Expires
            | H::MinExpires
            | H::MinSe
            | H::SessionExpires
            | H::Authorization
            | H::ProxyAuthorization
            | H::WwwAuthenticate
            | H::ProxyAuthenticate
            | H::Allow
            | H::Supported
            | H::Require
            | H::ProxyRequire
            | H::Unsupported
            | H::AllowEvents
            | H::Accept
            | H::Event
            | H::Replaces
            | H::Reason
            | H::UserAgent
            | H::Server
    )
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorKind;
    use crate::limits::Limits;
    use crate::message::Message;

    const FULL: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP p1:5060;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Contact: <sip:alice@pc33.atlanta.com>;expires=60;q=0.5\r\n\
Allow: INVITE, ACK, BYE\r\n\
Supported:\r\n\
Accept:\r\n\
Authorization: Digest username=\"alice\", realm=\"atlanta.com\", nonce=\"x\", uri=\"sip:bob@biloxi.com\", response=\"y\"\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
P-Asserted-Identity: \"Alice\" <sip:alice@atlanta.com>, <tel:+15551234>\r\n\
Reason: Q.850;cause=16\r\n\
Event: dialog\r\n\
User-Agent: X/1.0\r\n\
Subject: not decoded\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\
\r\n";

    #[test]
    fn decodes_every_value() {
        let m = Message::parse(FULL).unwrap();
        // 2 Via + MF + To + From + Call-ID + CSeq + Route + Contact + 3 Allow + Authorization
        // + Session-Expires + Min-SE + 2 PAI + Reason + Event + User-Agent + Content-Type + CL
        assert_eq!(m.decode_all_headers().unwrap(), 22);
    }

    #[test]
    fn first_error_wins() {
        let bad = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b\r\nCSeq: x\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let e = bad.decode_all_headers().unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnterminatedAngle);
        assert_eq!(&bad.as_bytes()[e.offset..e.offset + 1], b"<");
        let bad =
            Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nRequire:\r\nl: 0\r\n\r\n"[..]).unwrap();
        assert_eq!(
            bad.decode_all_headers().unwrap_err().kind,
            ErrorKind::BadToken
        );
        let bad = Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nAllow: INVITE,\r\nl: 0\r\n\r\n"[..])
            .unwrap();
        assert_eq!(
            bad.decode_all_headers().unwrap_err().kind,
            ErrorKind::BadToken
        );
    }

    #[test]
    fn utf8_is_checked_per_decoded_field() {
        // Latin-1 in a header without a decoder does not matter...
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\nOrganization: Caf\xe9\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        assert_eq!(m.decode_all_headers().unwrap(), 3);
        // ...in a decoded one it is an error at that byte.
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\nUser-Agent: Caf\xe9\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let e = m.decode_all_headers().unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidUtf8);
        assert_eq!(m.as_bytes()[e.offset], 0xe9);
    }

    #[test]
    fn value_limit_per_field() {
        let limits = Limits {
            max_values: 2,
            ..Limits::DEFAULT
        };
        let m = Message::parse_with(
            bytes::Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nAllow: A, B, C\r\nl: 0\r\n\r\n"),
            &limits,
        )
        .unwrap();
        assert_eq!(
            m.decode_all_headers().unwrap_err().kind,
            ErrorKind::TooManyValues
        );
    }
}
