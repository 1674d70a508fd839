//! Stateless answers to requests that did not parse (RFC 3261 8.2.6, 16.3 and 18.2.1): the
//! message is not usable, so the headers a response needs are salvaged from the raw bytes with a
//! tolerant line scan. Without the five of them nothing is sent: the caller counts and logs a
//! drop.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// Why no answer can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unanswerable {
    /// A response (or something starting like one): responses are never answered.
    NotARequest,
    /// ACK is never answered (RFC 3261 17.2.1).
    Ack,
    /// The start line has no method token: not SIP at all.
    NoMethod,
    /// One of Via, From, To, Call-ID, CSeq is missing or holds control characters.
    MissingHeader(&'static str),
}

impl fmt::Display for Unanswerable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unanswerable::NotARequest => f.write_str("not a request"),
            Unanswerable::Ack => f.write_str("ACK is not answered"),
            Unanswerable::NoMethod => f.write_str("no method"),
            Unanswerable::MissingHeader(h) => write!(f, "no usable {h}"),
        }
    }
}

/// At most this many lines are examined.
const MAX_LINES: usize = 512;

#[derive(Default)]
struct Salvage {
    vias: Vec<Vec<u8>>,
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
    call_id: Option<Vec<u8>>,
    cseq: Option<Vec<u8>>,
}

impl Salvage {
    /// Keeps a collected field (every Via, the first of the others) if it has no control
    /// characters.
    fn store(&mut self, f: Option<(Which, Vec<u8>)>) {
        let Some((w, v)) = f else { return };
        if !clean(&v) {
            return;
        }
        match w {
            Which::Via => self.vias.push(v),
            Which::From => {
                self.from.get_or_insert(v);
            }
            Which::To => {
                self.to.get_or_insert(v);
            }
            Which::CallId => {
                self.call_id.get_or_insert(v);
            }
            Which::CSeq => {
                self.cseq.get_or_insert(v);
            }
            Which::Other => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Other,
}

fn which(name: &[u8]) -> Which {
    let n = name;
    let is = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
    if is("via") || is("v") {
        Which::Via
    } else if is("from") || is("f") {
        Which::From
    } else if is("to") || is("t") {
        Which::To
    } else if is("call-id") || is("i") {
        Which::CallId
    } else if is("cseq") {
        Which::CSeq
    } else {
        Which::Other
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

fn clean(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|&c| c >= 0x20 && c != 0x7f || c == b'\t')
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Whether a To value carries a tag (after the `>` of a name-addr, else anywhere).
fn has_tag(to: &[u8]) -> bool {
    let params = match to.iter().rposition(|&c| c == b'>') {
        Some(i) => &to[i..],
        None => to,
    };
    let lower: Vec<u8> = params.iter().map(u8::to_ascii_lowercase).collect();
    lower
        .windows(4)
        .enumerate()
        .any(|(i, w)| w == b"tag=" && lower[..i].iter().rev().find(|c| **c != b' ') == Some(&b';'))
}

/// FNV-1a: a To tag that is the same for retransmissions of the same bad request.
fn tag_for(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Builds `SIP/2.0 <code> <reason>` for a request that failed to parse, copying Via (all, in
/// order), From, To (with a To tag added when absent), Call-ID and CSeq from the raw bytes.
/// Folded lines are joined with a space; bare LF line ends are accepted.
pub fn bad_request_response(raw: &[u8], code: u16, reason: &str) -> Result<Bytes, Unanswerable> {
    let start = raw
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .ok_or(Unanswerable::NoMethod)?;
    let mut lines = raw[start..].split(|c| *c == b'\n').take(MAX_LINES);
    let first = lines.next().ok_or(Unanswerable::NoMethod)?;
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(Unanswerable::NotARequest);
    }
    let method_len = first.iter().take_while(|c| is_token_char(**c)).count();
    if method_len == 0 || first.get(method_len) != Some(&b' ') {
        return Err(Unanswerable::NoMethod);
    }
    if &first[..method_len] == b"ACK" {
        return Err(Unanswerable::Ack);
    }

    let mut s = Salvage::default();
    // The field being collected: which, and its value so far.
    let mut cur: Option<(Which, Vec<u8>)> = None;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, v)) = cur.as_mut() {
                let t = trim(line);
                if !t.is_empty() {
                    v.push(b' ');
                    v.extend_from_slice(t);
                }
            }
            continue;
        }
        s.store(cur.take());
        if let Some(colon) = line.iter().position(|c| *c == b':') {
            let w = which(trim(&line[..colon]));
            if w != Which::Other {
                cur = Some((w, trim(&line[colon + 1..]).to_vec()));
            }
        }
    }
    s.store(cur.take());

    if s.vias.is_empty() {
        return Err(Unanswerable::MissingHeader("Via"));
    }
    let from = s.from.ok_or(Unanswerable::MissingHeader("From"))?;
    let to = s.to.ok_or(Unanswerable::MissingHeader("To"))?;
    let call_id = s.call_id.ok_or(Unanswerable::MissingHeader("Call-ID"))?;
    let cseq = s.cseq.ok_or(Unanswerable::MissingHeader("CSeq"))?;

    let code = if (400..=699).contains(&code) {
        code
    } else {
        400
    };
    let mut out = BytesMut::with_capacity(256 + raw.len().min(4096));
    out.put_slice(format!("SIP/2.0 {code} ").as_bytes());
    out.extend(reason.bytes().filter(|b| (0x20..0x7f).contains(b)));
    out.put_slice(b"\r\n");
    for v in &s.vias {
        out.put_slice(b"Via: ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"From: ");
    out.put_slice(&from);
    out.put_slice(b"\r\nTo: ");
    out.put_slice(&to);
    if !has_tag(&to) {
        let t = tag_for(&[&call_id, &from, &cseq]);
        out.put_slice(format!(";tag={t:016x}").as_bytes());
    }
    out.put_slice(b"\r\nCall-ID: ");
    out.put_slice(&call_id);
    out.put_slice(b"\r\nCSeq: ");
    out.put_slice(&cseq);
    out.put_slice(b"\r\nContent-Length: 0\r\n\r\n");
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::{HeaderName, Message};

    const BAD: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\r\n\
v: SIP/2.0/UDP 192.0.2.9\r\n  ;branch=z9hG4bKb\r\n\
Max-Forwards: 70\r\n\
f: <sip:alice@example.com>;tag=9\r\n\
t: Bob <sip:bob@example.com>\r\n\
i: abc@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: zz\r\n\r\n";

    #[test]
    fn salvages_and_answers() {
        let out = bad_request_response(BAD, 400, "bad Content-Length").unwrap();
        let m = Message::parse(out).unwrap();
        assert_eq!(m.status(), Some(400));
        assert_eq!(m.reason_phrase(), Some(&b"bad Content-Length"[..]));
        let vias: Vec<_> = m.header_values(HeaderName::Via).collect();
        assert_eq!(
            vias,
            [
                &b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa"[..],
                &b"SIP/2.0/UDP 192.0.2.9 ;branch=z9hG4bKb"[..]
            ]
        );
        assert_eq!(m.top_via().unwrap().unwrap().branch, Some("z9hG4bKa"));
        assert_eq!(m.call_id().unwrap().unwrap().0, "abc@192.0.2.1");
        assert!(m.to().unwrap().unwrap().tag().is_some());
        assert_eq!(m.from().unwrap().unwrap().tag(), Some("9"));
        assert_eq!(m.cseq().unwrap().unwrap().seq, 1);
        // Same tag for a retransmission.
        let again = bad_request_response(BAD, 400, "x").unwrap();
        let m2 = Message::parse(again).unwrap();
        assert_eq!(
            m.to().unwrap().unwrap().tag(),
            m2.to().unwrap().unwrap().tag()
        );
    }

    #[test]
    fn existing_to_tag_is_kept() {
        let raw = b"BYE sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>;Tag=77\nCall-ID: c\nCSeq: 2 BYE\nContent-Length: 5\n\nab";
        let m = Message::parse(bad_request_response(raw, 400, "r").unwrap()).unwrap();
        assert_eq!(m.to().unwrap().unwrap().tag(), Some("77"));
    }

    #[test]
    fn reason_is_cleaned_and_code_bounded() {
        let m = Message::parse(bad_request_response(BAD, 200, "a\r\nX: y").unwrap()).unwrap();
        assert_eq!(m.status(), Some(400));
        assert_eq!(m.reason_phrase(), Some(&b"aX: y"[..]));
        let m = Message::parse(bad_request_response(BAD, 513, "too large").unwrap()).unwrap();
        assert_eq!(m.status(), Some(513));
    }

    #[test]
    fn unanswerable() {
        assert_eq!(
            bad_request_response(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", 400, "r"),
            Err(Unanswerable::NotARequest)
        );
        let ack = b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: c\r\nCSeq: 1 ACK\r\nl: x\r\n\r\n";
        assert_eq!(bad_request_response(ack, 400, "r"), Err(Unanswerable::Ack));
        assert_eq!(
            bad_request_response(b"\x00\x01\x02", 400, "r"),
            Err(Unanswerable::NoMethod)
        );
        assert_eq!(
            bad_request_response(b"\r\n\r\n", 400, "r"),
            Err(Unanswerable::NoMethod)
        );
        let no_cseq = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nf: <sip:x@y>\r\nt: <sip:a@b>\r\ni: c\r\n\r\n";
        assert_eq!(
            bad_request_response(no_cseq, 400, "r"),
            Err(Unanswerable::MissingHeader("CSeq"))
        );
        let nul_via = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\x00\r\nf: <sip:x@y>\r\nt: <sip:a@b>\r\ni: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(
            bad_request_response(nul_via, 400, "r"),
            Err(Unanswerable::MissingHeader("Via"))
        );
    }

    #[test]
    fn never_panics_on_prefixes() {
        for n in 0..BAD.len() {
            let _ = bad_request_response(&BAD[..n], 400, "r");
        }
    }
}
