//! The syntactic checks a server makes before it processes a message (RFC 3261 8.2 and 16.3):
//! mandatory headers present, single-value headers single, the headers every element reads
//! decodable, and the CSeq method equal to the request method.

use crate::error::{ErrorKind, ParseError, Result};
use crate::headers::{
    CSeq, CallId, ContentType, Event, Expires, From, MaxForwards, MinExpires, MinSe, ReferTo,
    ReferredBy, Replaces, ReplyTo, SessionExpires, To, Via,
};
use crate::message::{HeaderField, Message};
use crate::name::HeaderName;
use crate::typed::TypedHeader;

/// Headers that may appear once (RFC 3261 7.3.1: a field may repeat only if its value is a
/// comma-separated list). Returns a bit per header, 0 for the others.
fn single_bit(name: HeaderName) -> u64 {
    use HeaderName as H;
    let i = match name {
        H::To => 0,
        H::From => 1,
        H::CallId => 2,
        H::CSeq => 3,
        H::MaxForwards => 4,
        H::ContentType => 5,
        H::ContentLength => 6,
        H::ContentDisposition => 7,
        H::Expires => 8,
        H::MinExpires => 9,
        H::MinSe => 10,
        H::SessionExpires => 11,
        H::Replaces => 12,
        H::ReferTo => 13,
        H::ReferredBy => 14,
        H::ReplyTo => 15,
        H::Event => 16,
        H::RSeq => 17,
        H::RAck => 18,
        H::MimeVersion => 19,
        H::Priority => 20,
        H::Subject => 21,
        H::Date => 22,
        H::Timestamp => 23,
        H::RetryAfter => 24,
        H::UserAgent => 25,
        H::Server => 26,
        H::Organization => 27,
        _ => return 0,
    };
    1 << i
}

const REQUIRED: [HeaderName; 5] = [
    HeaderName::To,
    HeaderName::From,
    HeaderName::CSeq,
    HeaderName::CallId,
    HeaderName::Via,
];

impl Message {
    /// RFC 3261 8.2 / 16.3 syntax checks, in this order:
    /// 1. To, From, CSeq, Call-ID and Via are present (requests and responses alike):
    ///    `MissingHeader` at the start line;
    /// 2. no single-value header appears twice (`DuplicateHeader` at the second field), and the
    ///    single-value headers with a typed decoder hold one value, not a comma list
    ///    (`DuplicateHeader` at the comma, `multi01.dat`);
    /// 3. the top Via, From, To, CSeq, Call-ID, (if present) Max-Forwards and every Contact
    ///    value decode (`regbadct.dat`: an unbracketed Contact URI with headers);
    /// 4. in a request, the CSeq method equals the Request-Line method, ACK and CANCEL
    ///    included (`CSeqMethodMismatch`, `mismatch01.dat`, `mismatch02.dat`).
    ///
    /// Other headers (Content-Type, Expires, ...) are only checked for repetition: a malformed
    /// value there does not stop a proxy (RFC 4475 3.1.2.4 lets an element treat a bad expiry
    /// as a default); decode them where they are used, or call
    /// [`Message::decode_all_headers`].
    pub fn validate(&self) -> Result<()> {
        // 1 and the repeated fields of 2, in one pass.
        let mut present = 0u8;
        let mut seen = 0u64;
        for f in self.fields() {
            if let Some(i) = REQUIRED.iter().position(|n| *n == f.name) {
                present |= 1 << i;
            }
            let bit = single_bit(f.name);
            if bit != 0 {
                if seen & bit != 0 {
                    return Err(ParseError::new(
                        ErrorKind::DuplicateHeader,
                        f.line_span.start as usize,
                    ));
                }
                seen |= bit;
            }
        }
        if present != (1 << REQUIRED.len()) - 1 {
            return Err(ParseError::new(
                ErrorKind::MissingHeader,
                self.start_line_span().start as usize,
            ));
        }
        // 2 (comma lists) and 3.
        let mut cseq = None;
        for f in self.fields() {
            use HeaderName as H;
            match f.name {
                H::To => self.single::<To>(f).map(drop)?,
                H::From => self.single::<From>(f).map(drop)?,
                H::CallId => self.single::<CallId>(f).map(drop)?,
                H::CSeq => cseq = Some((self.single::<CSeq>(f)?, f.value_span.start as usize)),
                H::MaxForwards => self.single::<MaxForwards>(f).map(drop)?,
                H::ContentType => self.no_comma_list::<ContentType>(f)?,
                H::Expires => self.no_comma_list::<Expires>(f)?,
                H::MinExpires => self.no_comma_list::<MinExpires>(f)?,
                H::MinSe => self.no_comma_list::<MinSe>(f)?,
                H::SessionExpires => self.no_comma_list::<SessionExpires>(f)?,
                H::Replaces => self.no_comma_list::<Replaces>(f)?,
                H::ReferTo => self.no_comma_list::<ReferTo>(f)?,
                H::ReferredBy => self.no_comma_list::<ReferredBy>(f)?,
                H::ReplyTo => self.no_comma_list::<ReplyTo>(f)?,
                H::Event => self.no_comma_list::<Event>(f)?,
                // Every element reads Contact (targets, registrations): `regbadct.dat`.
                H::Contact => self.decode_field_values(f).map(drop)?,
                _ => {}
            }
        }
        match self.typed::<Via>() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => {
                return Err(ParseError::new(
                    ErrorKind::MissingHeader,
                    self.start_line_span().start as usize,
                ))
            }
        }
        // 4.
        if let (Some(method), Some((cseq, at))) = (self.method_str(), cseq) {
            if cseq.method_str != method {
                return Err(ParseError::new(ErrorKind::CSeqMethodMismatch, at));
            }
        }
        Ok(())
    }

    /// Decodes the one value of a single-value field: a comma after it is `DuplicateHeader`.
    fn single<'a, T: TypedHeader<'a>>(&'a self, f: &HeaderField) -> Result<T> {
        let mut c = self.cursor(f)?;
        c.skip_ws();
        if c.at_end() {
            return Err(ParseError::new(T::ERROR, c.base()));
        }
        let v = T::decode(&mut c)?;
        c.skip_ws();
        if c.at_end() {
            Ok(v)
        } else if c.peek() == Some(b',') {
            Err(c.err(ErrorKind::DuplicateHeader))
        } else {
            Err(c.err(T::ERROR))
        }
    }

    /// Only the `DuplicateHeader` outcome of [`Message::single`]; other errors are left to the
    /// users of the header.
    fn no_comma_list<'a, T: TypedHeader<'a>>(&'a self, f: &HeaderField) -> Result<()> {
        match self.single::<T>(f) {
            Err(e) if e.kind == ErrorKind::DuplicateHeader => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) -> Result<()> {
        Message::parse(s.as_bytes().to_vec()).unwrap().validate()
    }

    fn kind(s: &str) -> ErrorKind {
        check(s).unwrap_err().kind
    }

    const OK: &str = "OPTIONS sip:user@example.com SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: caller<sip:caller@example.com>;tag=323\r\n\
Max-Forwards: 70\r\n\
Call-ID: lwsdisp.1234abcd@funky.example.com\r\n\
CSeq: 60 OPTIONS\r\n\
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n\
l: 0\r\n\r\n";

    #[test]
    fn valid_requests_and_responses() {
        check(OK).unwrap();
        // wsinv.dat (headers only)
        check(
            "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : 0\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
Content-Type: application/sdp\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\r\n",
        )
        .unwrap();
        // bcast.dat: a response needs no Max-Forwards; its CSeq method is free
        check(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n\
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf\r\nCSeq: 35 INVITE\r\n\
From: sip:user@example.com;tag=11141343\r\nTo: sip:user@example.edu;tag=2229\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        // baddn.dat is accepted liberally
        check(&OK.replace(
            "caller<sip:caller@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>",
        ))
        .unwrap();
        // zeromf.dat: Max-Forwards 0 is valid syntax
        check(&OK.replace("Max-Forwards: 70", "Max-Forwards: 0")).unwrap();
        // no Max-Forwards at all
        check(&OK.replace("Max-Forwards: 70\r\n", "")).unwrap();
        // scalar02.dat's Expires alone does not fail validation
        check(&OK.replace("l: 0", "Expires: 100000000000000000000000\r\nl: 0")).unwrap();
    }

    #[test]
    fn missing_headers() {
        // insuf.dat
        let e = check(
            "INVITE sip:user@example.com SIP/2.0\r\nCSeq: 193942 INVITE\r\n\
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\nl: 0\r\n\r\n",
        )
        .unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::MissingHeader, 0));
        for h in ["To: ", "From: ", "Call-ID: ", "CSeq: ", "Via: "] {
            let start = OK.find(h).unwrap();
            let end = start + OK[start..].find("\r\n").unwrap() + 2;
            let s = format!("{}{}", &OK[..start], &OK[end..]);
            assert_eq!(kind(&s), ErrorKind::MissingHeader, "{h}");
        }
        let e = check("\r\nSIP/2.0 200 OK\r\nl: 0\r\n\r\n").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::MissingHeader, 2));
    }

    #[test]
    fn duplicates() {
        // multi01.dat
        let multi01 = "INVITE sip:user@company.com SIP/2.0\r\n\
Contact: <sip:caller@host25.example.net>\r\n\
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\r\n\
Max-Forwards: 70\r\n\
CSeq: 5 INVITE\r\n\
Call-ID: multi01.98asdh@192.0.2.1\r\n\
CSeq: 59 INVITE\r\n\
Call-ID: multi01.98asdh@192.0.2.2\r\n\
From: sip:caller@example.com;tag=3413415\r\n\
To: sip:user@example.com\r\n\
To: sip:other@example.net\r\n\
From: sip:caller@example.net;tag=2923420123\r\n\
Content-Type: application/sdp\r\n\
l: 0\r\n\
Contact: <sip:caller@host36.example.net>\r\n\
Max-Forwards: 5\r\n\r\n";
        let e = check(multi01).unwrap_err();
        assert_eq!(e.kind, ErrorKind::DuplicateHeader);
        assert_eq!(e.offset, multi01.find("CSeq: 59").unwrap());
        let dup = |from: &str, to: &str| kind(&OK.replace(from, to));
        assert_eq!(
            dup(
                "To: sip:user@example.com",
                "To: sip:user@example.com, sip:x@y"
            ),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("Call-ID: lwsdisp", "Call-ID: a, lwsdisp"),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("Max-Forwards: 70", "Max-Forwards: 70, 69"),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("CSeq: 60 OPTIONS", "CSeq: 60 OPTIONS, 61 OPTIONS"),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("l: 0", "c: text/plain, text/html\r\nl: 0"),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("l: 0", "Expires: 1, 2\r\nl: 0"),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("l: 0", "Expires: 1\r\nExpires: 2\r\nl: 0"),
            ErrorKind::DuplicateHeader
        );
        assert_eq!(
            dup("l: 0", "Subject: a\r\ns: b\r\nl: 0"),
            ErrorKind::DuplicateHeader
        );
        // list headers may repeat
        check(&OK.replace(
            "l: 0",
            "Via: SIP/2.0/UDP a\r\nAllow: INVITE\r\nAllow: ACK\r\nl: 0",
        ))
        .unwrap();
    }

    #[test]
    fn malformed_mandatory_headers() {
        let bad = |from: &str, to: &str| kind(&OK.replace(from, to));
        // badaspec.dat
        assert_eq!(
            bad(
                "To: sip:user@example.com",
                "To: \"Watson, Thomas\" < sip:t.watson@example.org >"
            ),
            ErrorKind::BadNameAddr
        );
        // quotbal.dat
        assert_eq!(
            bad(
                "To: sip:user@example.com",
                "To: \"Mr. J. User <sip:j.user@example.com>"
            ),
            ErrorKind::UnterminatedQuote
        );
        // scalar02.dat
        assert_eq!(
            bad("CSeq: 60 OPTIONS", "CSeq: 36893488147419103232 OPTIONS"),
            ErrorKind::BadCSeq
        );
        assert_eq!(
            bad("Max-Forwards: 70", "Max-Forwards: 300"),
            ErrorKind::BadMaxForwards
        );
        assert_eq!(
            bad("Call-ID: lwsdisp", "Call-ID: a b lwsdisp"),
            ErrorKind::BadHeaderValue
        );
        assert_eq!(
            bad("Via: SIP/2.0/UDP funky", "Via: SIP/2.0/UDP funky;;"),
            ErrorKind::BadParam
        );
        assert_eq!(
            bad("Via: SIP/2.0/UDP funky", "Via: SIP/2.0 funky"),
            ErrorKind::BadVia
        );
        assert_eq!(bad("From: caller<", "From: caller <<"), ErrorKind::BadUri);
        // regbadct.dat
        assert_eq!(
            bad(
                "l: 0",
                "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\r\nl: 0"
            ),
            ErrorKind::BadNameAddr
        );
        check(&OK.replace(
            "l: 0",
            "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\nl: 0",
        ))
        .unwrap();
        // only the top Via must decode
        check(&OK.replace("l: 0", "Via: garbage\r\nl: 0")).unwrap();
    }

    #[test]
    fn cseq_method_must_match() {
        // mismatch01.dat
        let e = check(&OK.replace("CSeq: 60 OPTIONS", "CSeq: 8 INVITE")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::CSeqMethodMismatch);
        assert_eq!(
            &OK.replace("CSeq: 60 OPTIONS", "CSeq: 8 INVITE")[e.offset..e.offset + 8],
            "8 INVITE"
        );
        // mismatch02.dat: an unknown method is still a mismatch, not 501
        let s = OK
            .replace("OPTIONS sip:user", "NEWMETHOD sip:user")
            .replace("60 OPTIONS", "8 INVITE");
        assert_eq!(kind(&s), ErrorKind::CSeqMethodMismatch);
        let s = OK
            .replace("OPTIONS sip:user", "NEWMETHOD sip:user")
            .replace("60 OPTIONS", "8 NEWMETHOD");
        check(&s).unwrap();
        // methods are case-sensitive
        assert_eq!(
            kind(&OK.replace("60 OPTIONS", "60 options")),
            ErrorKind::CSeqMethodMismatch
        );
        for m in ["ACK", "CANCEL"] {
            let s = OK.replace("OPTIONS sip:user", &format!("{m} sip:user"));
            assert_eq!(kind(&s), ErrorKind::CSeqMethodMismatch);
            check(&s.replace("60 OPTIONS", &format!("60 {m}"))).unwrap();
        }
    }
}
