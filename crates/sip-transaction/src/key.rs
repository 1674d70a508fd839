//! Reading the matching keys out of a message (RFC 3261 17.1.3, 17.2.3) and hashing them.
//!
//! Keys are hashed with a per-layer random SipHash key (`RandomState`) so that a peer cannot
//! aim many transactions at one bucket; a bucket holds the ids whose key hashed there and every
//! candidate is compared field by field, so collisions cost time, never correctness. Looking a
//! message up allocates nothing; a transaction stores its key fields as small owned strings.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use sip_message::headers::{CSeq, CallId, Via};
use sip_message::{HeaderName, Message, TypedHeader};

use crate::types::BadHeader;

/// The top Via, decoded, with its text (the first value of the first Via field).
pub(crate) struct TopVia<'a> {
    pub via: Via<'a>,
    pub raw: &'a str,
}

pub(crate) fn top_via(msg: &Message) -> Result<TopVia<'_>, BadHeader> {
    let f = msg
        .fields()
        .iter()
        .find(|f| f.name == HeaderName::Via)
        .ok_or(BadHeader::Via)?;
    let mut c = msg.cursor(f).map_err(|_| BadHeader::Via)?;
    c.skip_ws();
    let start = c.pos();
    let via = Via::decode(&mut c).map_err(|_| BadHeader::Via)?;
    let raw = c.slice(start, c.pos()).trim_end();
    // What follows must be the end of the field or a list separator (the typed iterator's rule).
    c.skip_ws();
    if !c.at_end() && c.peek() != Some(b',') {
        return Err(BadHeader::Via);
    }
    Ok(TopVia { via, raw })
}

/// `sent-by` port with the transport's default filled in, so that `host` and `host:5060`
/// compare equal (RFC 3261 18.2.2 / 19.1.4 defaults).
pub(crate) fn sent_by_port(via: &Via<'_>) -> u16 {
    via.port
        .unwrap_or(if via.transport_is("TLS") || via.transport_is("WSS") {
            5061
        } else {
            5060
        })
}

fn cseq(msg: &Message) -> Result<CSeq<'_>, BadHeader> {
    match msg.cseq() {
        Some(Ok(c)) => Ok(c),
        _ => Err(BadHeader::CSeq),
    }
}

/// The keys of a request, borrowed from it.
pub(crate) struct RequestKeys<'a> {
    pub method: &'a str,
    /// The branch, only when it carries the magic cookie: 17.2.3 matching. `None`: the RFC
    /// 2543 rules.
    pub branch: Option<&'a str>,
    pub host: &'a str,
    pub port: u16,
    pub top_via: &'a str,
    pub cseq: u32,
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub to_tag: &'a str,
    pub request_uri: &'a str,
}

/// Reads what server matching needs. Via, CSeq, Call-ID, From and To are mandatory in every
/// request (RFC 3261 8.1.1); the CSeq method must be the request method (8.1.1.5).
pub(crate) fn request_keys(msg: &Message) -> Result<RequestKeys<'_>, BadHeader> {
    let method = msg.method_str().unwrap_or("");
    let tv = top_via(msg)?;
    let cs = cseq(msg)?;
    if cs.method_str != method {
        return Err(BadHeader::CSeqMethod);
    }
    let call_id = match msg.call_id() {
        Some(Ok(CallId(c))) => c,
        _ => return Err(BadHeader::CallId),
    };
    let from_tag = match msg.from() {
        Some(Ok(f)) => f.tag().unwrap_or(""),
        _ => return Err(BadHeader::From),
    };
    let to_tag = match msg.to() {
        Some(Ok(t)) => t.tag().unwrap_or(""),
        _ => return Err(BadHeader::To),
    };
    Ok(RequestKeys {
        method,
        branch: tv.via.has_magic_cookie().then_some(tv.via.branch).flatten(),
        host: tv.via.host_str,
        port: sent_by_port(&tv.via),
        top_via: tv.raw,
        cseq: cs.seq,
        call_id,
        from_tag,
        to_tag,
        request_uri: msg.request_uri_str().unwrap_or(""),
    })
}

/// The keys of a response (17.1.3: top Via branch and CSeq method).
pub(crate) struct ResponseKeys<'a> {
    pub branch: Option<&'a str>,
    pub cseq_method: &'a str,
}

pub(crate) fn response_keys(msg: &Message) -> Result<ResponseKeys<'_>, BadHeader> {
    let tv = top_via(msg)?;
    let cs = cseq(msg)?;
    Ok(ResponseKeys {
        branch: tv.via.branch,
        cseq_method: cs.method_str,
    })
}

/// The To tag of a message ("" without one).
pub(crate) fn to_tag(msg: &Message) -> &str {
    match msg.to() {
        Some(Ok(t)) => t.tag().unwrap_or(""),
        _ => "",
    }
}

/// Tokens (branch, tags, host names) compare case-insensitively (RFC 3261 7.3.1); Call-ID and
/// the Request-URI text are compared as written (20.8: Call-IDs are case-sensitive).
pub(crate) fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[derive(Debug)]
pub(crate) struct KeyHasher(RandomState);

impl KeyHasher {
    pub fn new() -> Self {
        KeyHasher(RandomState::new())
    }

    fn ci(h: &mut impl Hasher, s: &str) {
        let mut buf = [0u8; 64];
        for chunk in s.as_bytes().chunks(buf.len()) {
            let b = &mut buf[..chunk.len()];
            b.copy_from_slice(chunk);
            b.make_ascii_lowercase();
            h.write(b);
        }
        h.write_u8(0xff);
    }

    fn exact(h: &mut impl Hasher, s: &str) {
        h.write(s.as_bytes());
        h.write_u8(0xff);
    }

    /// Client transactions: the branch (the method is checked on the candidates).
    pub fn client(&self, branch: &str) -> u64 {
        let mut h = self.0.build_hasher();
        Self::ci(&mut h, branch);
        h.finish()
    }

    /// RFC 3261 server transactions: branch and sent-by (the method is checked on the
    /// candidates, so that ACK and CANCEL find their INVITE in the same bucket).
    pub fn branch(&self, branch: &str, host: &str, port: u16) -> u64 {
        let mut h = self.0.build_hasher();
        Self::ci(&mut h, branch);
        Self::ci(&mut h, host);
        h.write_u16(port);
        h.finish()
    }

    /// RFC 2543 server transactions: the fields every request of the transaction (ACK and
    /// CANCEL included) shares with the request that created it; To tag and method are checked
    /// on the candidates.
    pub fn legacy(
        &self,
        request_uri: &str,
        from_tag: &str,
        call_id: &str,
        cseq: u32,
        top_via: &str,
    ) -> u64 {
        let mut h = self.0.build_hasher();
        Self::exact(&mut h, request_uri);
        Self::ci(&mut h, from_tag);
        Self::exact(&mut h, call_id);
        h.write_u32(cseq);
        Self::ci(&mut h, top_via);
        h.finish()
    }
}

/// Hash buckets of transaction ids.
#[derive(Debug, Default)]
pub(crate) struct Index(HashMap<u64, Vec<u64>>);

impl Index {
    pub fn insert(&mut self, h: u64, id: u64) {
        self.0.entry(h).or_default().push(id);
    }

    pub fn remove(&mut self, h: u64, id: u64) {
        if let Entry::Occupied(mut e) = self.0.entry(h) {
            e.get_mut().retain(|x| *x != id);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    pub fn get(&self, h: u64) -> &[u64] {
        self.0.get(&h).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_via_raw_is_the_first_value() {
        let m = Message::parse(
            &b"OPTIONS sip:a@b SIP/2.0\r\n\
Via: SIP/2.0/UDP h1:5070;branch=z9hG4bKa;x=\"q,r\" , SIP/2.0/UDP h2;branch=z9hG4bKb\r\n\
Via: SIP/2.0/TLS h3;branch=z9hG4bKc\r\nl: 0\r\n\r\n"[..],
        )
        .unwrap();
        let tv = top_via(&m).unwrap();
        assert_eq!(tv.raw, "SIP/2.0/UDP h1:5070;branch=z9hG4bKa;x=\"q,r\"");
        assert_eq!(tv.via.branch, Some("z9hG4bKa"));
        assert_eq!(sent_by_port(&tv.via), 5070);
        let tls = Via::parse_value("SIP/2.0/TLS h3").unwrap();
        assert_eq!(sent_by_port(&tls), 5061);
    }

    #[test]
    fn hashes_fold_case_where_the_rfc_does() {
        let k = KeyHasher::new();
        assert_eq!(k.client("z9hG4bKAbC"), k.client("Z9HG4BKabc"));
        assert_eq!(
            k.branch("z9hG4bK1", "Host.Example", 5060),
            k.branch("z9hg4bk1", "host.example", 5060)
        );
        assert_ne!(
            k.branch("z9hG4bK1", "h", 5060),
            k.branch("z9hG4bK1", "h", 5061)
        );
        assert_ne!(
            k.legacy("sip:a@b", "t", "CALL", 1, "v"),
            k.legacy("sip:a@b", "t", "call", 1, "v")
        );
    }

    #[test]
    fn index_buckets() {
        let mut i = Index::default();
        i.insert(7, 1);
        i.insert(7, 2);
        assert_eq!(i.get(7), &[1, 2]);
        i.remove(7, 1);
        assert_eq!(i.get(7), &[2]);
        i.remove(7, 2);
        assert!(i.get(7).is_empty());
        assert_eq!(i.len(), 0);
    }
}
