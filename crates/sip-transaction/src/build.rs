//! Messages the transaction layer builds itself: the ACK for a non-2xx final response (RFC 3261
//! 17.1.1.3), CANCEL (9.1) and responses (8.2.6: `100 Trying`, stateless 400, the TU guard's
//! 500). Header values are copied byte for byte from the messages they derive from.

use bytes::{BufMut, BytesMut};
use sip_message::{HeaderName, Message};

use crate::key;

fn header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Copies every field called `name`, one line per field, in order.
fn copy_all(out: &mut BytesMut, msg: &Message, name: HeaderName, canon: &str) {
    for v in msg.header_values(name) {
        header(out, canon, v);
    }
}

fn finish(mut out: BytesMut) -> Option<Message> {
    out.put_slice(b"Content-Length: 0\r\n\r\n");
    Message::parse(out.freeze()).ok()
}

/// A reason phrase cannot hold CR or LF (RFC 3261 25.1 `Reason-Phrase`).
fn clean_reason(reason: &str) -> impl Iterator<Item = u8> + '_ {
    reason.bytes().filter(|b| *b >= 0x20 || *b == b'\t')
}

/// A response to `req` (RFC 3261 8.2.6.2): Via fields (all, in order), From, To, Call-ID and
/// CSeq copied; `to_tag` is added to To when the request has none (every response but 100
/// needs one, 8.2.6.2). For 100 the Timestamp is copied (8.2.6.1). No body.
pub fn response_for(
    req: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Option<Message> {
    response_with(req, status, reason, to_tag, &[])
}

/// [`response_for`] with `extra` header fields (name, value) after CSeq.
pub(crate) fn response_with(
    req: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
) -> Option<Message> {
    if !req.is_request() || !(100..=699).contains(&status) {
        return None;
    }
    let mut out = BytesMut::with_capacity(req.head_end() + 64);
    out.put_slice(format!("SIP/2.0 {status} ").as_bytes());
    out.extend(clean_reason(reason));
    out.put_slice(b"\r\n");
    copy_all(&mut out, req, HeaderName::Via, "Via");
    if let Some(v) = req.header(HeaderName::From) {
        header(&mut out, "From", v);
    }
    if let Some(v) = req.header(HeaderName::To) {
        let has_tag = matches!(req.to(), Some(Ok(t)) if t.tag().is_some());
        out.put_slice(b"To: ");
        out.put_slice(v);
        if let (false, Some(tag)) = (has_tag, to_tag) {
            out.put_slice(b";tag=");
            out.put_slice(tag.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
    if let Some(v) = req.header(HeaderName::CallId) {
        header(&mut out, "Call-ID", v);
    }
    if let Some(v) = req.header(HeaderName::CSeq) {
        header(&mut out, "CSeq", v);
    }
    if status == 100 {
        if let Some(v) = req.header(HeaderName::Timestamp) {
            header(&mut out, "Timestamp", v);
        }
    }
    for (n, v) in extra {
        header(&mut out, n, v.as_bytes());
    }
    finish(out)
}

/// The request line plus the headers an ACK or CANCEL shares with `original`: a single Via equal
/// to the original top Via, the original Route set, From, Call-ID (9.1, 17.1.1.3).
fn derived_request(original: &Message, method: &str, to: &[u8]) -> Option<Message> {
    let ruri = original.request_uri_str()?;
    let tv = key::top_via(original).ok()?;
    let seq = original.cseq()?.ok()?.seq;
    let mut out = BytesMut::with_capacity(original.head_end());
    out.put_slice(format!("{method} {ruri} SIP/2.0\r\n").as_bytes());
    header(&mut out, "Via", tv.raw.as_bytes());
    copy_all(&mut out, original, HeaderName::Route, "Route");
    header(&mut out, "Max-Forwards", b"70");
    header(&mut out, "From", original.header(HeaderName::From)?);
    header(&mut out, "To", to);
    header(&mut out, "Call-ID", original.header(HeaderName::CallId)?);
    header(&mut out, "CSeq", format!("{seq} {method}").as_bytes());
    finish(out)
}

/// The ACK the INVITE client transaction sends for a 300-699 response (RFC 3261 17.1.1.3):
/// Request-URI, Call-ID, From from the original request; To from the response (with its tag);
/// one Via equal to the original top Via; CSeq number of the original with method ACK; the
/// original Route header fields. No body (NOT RECOMMENDED there).
pub fn ack_for_non_2xx(original: &Message, response: &Message) -> Option<Message> {
    derived_request(original, "ACK", response.header(HeaderName::To)?)
}

/// A CANCEL for `original` (RFC 3261 9.1): Request-URI, Call-ID, To, From and CSeq number of the
/// request, method CANCEL, one Via equal to its top Via (so that it reaches the same server
/// transaction and carries the same branch), its Route header fields.
pub fn cancel_for(original: &Message) -> Option<Message> {
    derived_request(original, "CANCEL", original.header(HeaderName::To)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP p2;branch=z9hG4bKp2\r\n\
Via: SIP/2.0/UDP p3;branch=z9hG4bKp3\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Timestamp: 54\r\n\
Content-Length: 0\r\n\
\r\n";

    #[test]
    fn ack_follows_17_1_1_3() {
        let inv = Message::parse(INVITE).unwrap();
        let resp = response_for(&inv, 486, "Busy Here", Some("xyz")).unwrap();
        let ack = ack_for_non_2xx(&inv, &resp).unwrap();
        assert_eq!(ack.method_str(), Some("ACK"));
        assert_eq!(ack.request_uri_str(), Some("sip:bob@biloxi.com"));
        let vias: Vec<_> = ack.vias().map(|v| v.unwrap().branch).collect();
        assert_eq!(vias, [Some("z9hG4bK776asdhds")]);
        assert_eq!(ack.to().unwrap().unwrap().tag(), Some("xyz"));
        assert_eq!(ack.from().unwrap().unwrap().tag(), Some("1928301774"));
        let cs = ack.cseq().unwrap().unwrap();
        assert_eq!((cs.seq, cs.method_str), (314159, "ACK"));
        assert_eq!(ack.routes().count(), 2);
        assert_eq!(
            ack.header(HeaderName::CallId),
            inv.header(HeaderName::CallId)
        );
        assert!(ack.body().is_empty());
    }

    #[test]
    fn cancel_follows_9_1() {
        let inv = Message::parse(INVITE).unwrap();
        let c = cancel_for(&inv).unwrap();
        assert_eq!(c.method_str(), Some("CANCEL"));
        assert_eq!(c.vias().count(), 1);
        assert_eq!(
            c.top_via().unwrap().unwrap().branch,
            Some("z9hG4bK776asdhds")
        );
        assert_eq!(c.to().unwrap().unwrap().tag(), None);
        let cs = c.cseq().unwrap().unwrap();
        assert_eq!((cs.seq, cs.method_str), (314159, "CANCEL"));
    }

    #[test]
    fn responses_copy_8_2_6() {
        let inv = Message::parse(INVITE).unwrap();
        let t = response_for(&inv, 100, "Trying", None).unwrap();
        assert_eq!(t.status(), Some(100));
        assert_eq!(t.vias().count(), 3);
        assert_eq!(t.header(HeaderName::Timestamp), Some(&b"54"[..]));
        assert_eq!(t.to().unwrap().unwrap().tag(), None);
        let r = response_for(&inv, 400, "Bad\r\nRequest", Some("t1")).unwrap();
        assert_eq!(r.reason_phrase(), Some(&b"BadRequest"[..]));
        assert_eq!(r.to().unwrap().unwrap().tag(), Some("t1"));
        assert!(r.header(HeaderName::Timestamp).is_none());
        assert!(response_for(&inv, 700, "x", None).is_none());
        assert!(response_for(&r, 200, "x", None).is_none());
    }
}
