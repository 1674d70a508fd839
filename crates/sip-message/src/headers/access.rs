//! Shortcuts on [`Message`] for the headers every element reads. Single-value accessors return
//! `None` when the header is absent and `Some(Err)` when it is malformed; list accessors return
//! the [`TypedIter`] over every value of every field.

use super::{
    CSeq, CallId, Contact, ContentType, Expires, From, MaxForwards, RecordRoute, Route, To, Via,
};
use crate::error::Result;
use crate::message::Message;
use crate::typed::TypedIter;

impl Message {
    /// Every Via value, top first.
    pub fn vias(&self) -> TypedIter<'_, Via<'_>> {
        self.typed_all()
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<Result<Via<'_>>> {
        self.typed()
    }

    pub fn from(&self) -> Option<Result<From<'_>>> {
        self.typed()
    }

    pub fn to(&self) -> Option<Result<To<'_>>> {
        self.typed()
    }

    pub fn call_id(&self) -> Option<Result<CallId<'_>>> {
        self.typed()
    }

    pub fn cseq(&self) -> Option<Result<CSeq<'_>>> {
        self.typed()
    }

    pub fn max_forwards(&self) -> Option<Result<MaxForwards>> {
        self.typed()
    }

    /// Every Contact value, in order.
    pub fn contacts(&self) -> TypedIter<'_, Contact<'_>> {
        self.typed_all()
    }

    /// Every Route value, in order.
    pub fn routes(&self) -> TypedIter<'_, Route<'_>> {
        self.typed_all()
    }

    /// Every Record-Route value, in order.
    pub fn record_routes(&self) -> TypedIter<'_, RecordRoute<'_>> {
        self.typed_all()
    }

    pub fn content_type(&self) -> Option<Result<ContentType<'_>>> {
        self.typed()
    }

    /// The Expires header (not the Contact `expires` parameter).
    pub fn expires(&self) -> Option<Result<Expires>> {
        self.typed()
    }
}

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use crate::method::Method;
    use crate::uri::Host;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP p1:5060;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p3.example.com;lr>\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Expires: 300\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\
\r\n";

    #[test]
    fn accessors() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.vias().count(), 2);
        assert_eq!(
            m.top_via().unwrap().unwrap().host,
            Host::Name("pc33.atlanta.com")
        );
        assert_eq!(m.from().unwrap().unwrap().tag(), Some("1928301774"));
        assert_eq!(m.to().unwrap().unwrap().tag(), None);
        assert_eq!(
            m.call_id().unwrap().unwrap().0,
            "a84b4c76e66710@pc33.atlanta.com"
        );
        assert_eq!(m.cseq().unwrap().unwrap().method, Method::Invite);
        assert_eq!(m.max_forwards().unwrap().unwrap().0, 70);
        assert_eq!(m.contacts().count(), 1);
        assert_eq!(
            m.routes()
                .map(|r| r.unwrap().uri.as_str())
                .collect::<Vec<_>>(),
            ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
        );
        assert_eq!(m.record_routes().count(), 1);
        assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
        assert_eq!(m.expires().unwrap().unwrap().0, 300);
        let r = Message::parse(&b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n"[..]).unwrap();
        assert!(r.top_via().is_none() && r.from().is_none() && r.expires().is_none());
        assert_eq!(r.contacts().count(), 0);
    }
}
