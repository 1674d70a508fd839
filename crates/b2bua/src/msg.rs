//! Building the messages of one leg from scratch. Nothing is forwarded by editing the other
//! leg's message: a header reaches the other side only when it is written here, which is what
//! makes topology hiding hold for headers nobody thought of.

use bytes::{BufMut, Bytes, BytesMut};
use sip_message::headers::{MinSe, SessionExpires};
use sip_message::{HeaderName, Message};

use crate::config::B2buaConfig;

/// A message being written. Values are cleaned of CR, LF and NUL so that no copied value can
/// inject a header line.
pub(crate) struct Builder {
    buf: BytesMut,
}

fn clean(out: &mut BytesMut, v: &[u8]) {
    for &b in v {
        if b != b'\r' && b != b'\n' && b != 0 {
            out.put_u8(b);
        }
    }
}

impl Builder {
    pub(crate) fn request(method: &str, uri: &str) -> Builder {
        let mut buf = BytesMut::with_capacity(1024);
        clean(&mut buf, method.as_bytes());
        buf.put_u8(b' ');
        clean(&mut buf, uri.as_bytes());
        buf.put_slice(b" SIP/2.0\r\n");
        Builder { buf }
    }

    pub(crate) fn response(status: u16, reason: &[u8]) -> Builder {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_slice(format!("SIP/2.0 {status} ").as_bytes());
        clean(&mut buf, reason);
        buf.put_slice(b"\r\n");
        Builder { buf }
    }

    pub(crate) fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        clean(&mut self.buf, name.as_bytes());
        self.buf.put_slice(b": ");
        clean(&mut self.buf, value.as_ref());
        self.buf.put_slice(b"\r\n");
        self
    }

    /// Ends the head; `body` with its Content-Type. `None` when the result does not parse
    /// (a copied value was bad): the caller answers 500 or drops.
    pub(crate) fn finish(mut self, body: Option<(&str, &[u8])>) -> Option<Message> {
        match body {
            Some((ctype, b)) if !b.is_empty() => {
                self.header("Content-Type", ctype);
                self.buf
                    .put_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
                self.buf.put_slice(b);
            }
            _ => self.buf.put_slice(b"Content-Length: 0\r\n\r\n"),
        }
        Message::parse(self.buf.freeze()).ok()
    }
}

/// The headers a leg writes itself: never copied, whatever `pass_headers` says.
const OWN: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Contact,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::MaxForwards,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::Require,
    HeaderName::Supported,
    HeaderName::ProxyRequire,
    HeaderName::RSeq,
    HeaderName::RAck,
    HeaderName::SessionExpires,
    HeaderName::MinSe,
    HeaderName::PAssertedIdentity,
    HeaderName::Privacy,
    HeaderName::UserAgent,
    HeaderName::Server,
];

/// Copies the whitelisted headers of `from` into `b`.
pub(crate) fn copy_allowed(b: &mut Builder, from: &Message, cfg: &B2buaConfig, skip: &[&str]) {
    for f in from.fields() {
        let name = from.slice(f.name_span);
        if skip
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(name) || f.name.canonical() == Some(s))
        {
            continue;
        }
        let value = from.slice(f.value_span);
        if OWN.contains(&f.name) {
            let canon = f.name.canonical().unwrap_or("");
            let ua = matches!(f.name, HeaderName::UserAgent | HeaderName::Server);
            if ua && cfg.pass_user_agent {
                b.header(canon, value);
            }
            if f.name == HeaderName::Privacy && cfg.pass_asserted_identity {
                b.header(canon, value);
            }
            continue;
        }
        let canon = f.name.canonical();
        let allowed = cfg.pass_headers.iter().any(|p| match canon {
            Some(c) => p.eq_ignore_ascii_case(c),
            None => p.as_bytes().eq_ignore_ascii_case(name),
        });
        if allowed {
            match canon {
                Some(c) => b.header(c, value),
                None => b.header(&String::from_utf8_lossy(name), value),
            };
        }
    }
}

/// The option tags of every Supported (or Require) field, lower case.
pub(crate) fn option_tags(m: &Message, name: HeaderName) -> Vec<String> {
    m.header_values(name)
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn has_tag(m: &Message, name: HeaderName, tag: &str) -> bool {
    option_tags(m, name).iter().any(|t| t == tag)
}

/// Session-Expires: (delta, refresher) with refresher `Some(true)` for uac.
pub(crate) fn session_expires(m: &Message) -> Option<(u32, Option<bool>)> {
    let se = m.typed::<SessionExpires>()?.ok()?;
    let r = se
        .refresher
        .map(|r| r.eq_ignore_ascii_case("uac"))
        .filter(|_| se.refresher.is_some());
    Some((se.delta, r))
}

pub(crate) fn min_se(m: &Message) -> Option<u32> {
    Some(m.typed::<MinSe>()?.ok()?.delta)
}

/// RSeq value.
pub(crate) fn rseq(m: &Message) -> Option<u32> {
    std::str::from_utf8(m.header(HeaderName::RSeq)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// RAck: (rseq, cseq).
pub(crate) fn rack(m: &Message) -> Option<(u32, u32)> {
    let v = std::str::from_utf8(m.header(HeaderName::RAck)?).ok()?;
    let mut it = v.split_whitespace();
    let r = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    Some((r, c))
}

/// A body and its content type, when it is SDP.
pub(crate) fn sdp_body(m: &Message) -> Option<Bytes> {
    if m.body().is_empty() {
        return None;
    }
    match m.content_type() {
        Some(Ok(ct)) if ct.is("application", "sdp") => Some(m.body_bytes()),
        _ => None,
    }
}

/// A body that is not SDP and whose type is allowed to cross.
pub(crate) fn passable_body(m: &Message, cfg: &B2buaConfig) -> Option<(String, Bytes)> {
    if m.body().is_empty() {
        return None;
    }
    let ct = m.content_type()?.ok()?;
    let t = format!("{}/{}", ct.mtype, ct.subtype).to_ascii_lowercase();
    cfg.pass_body_types
        .iter()
        .any(|p| p.eq_ignore_ascii_case(&t))
        .then(|| (t, m.body_bytes()))
}

/// The first line, for the history.
pub(crate) fn first_line(m: &Message) -> String {
    let s = m.slice(m.start_line_span());
    String::from_utf8_lossy(s).trim_end().to_owned()
}

/// `<uri>` of a name-addr header value with the display name, without header parameters
/// (`;tag=` is written per leg).
pub(crate) fn addr_of(m: &Message, name: HeaderName) -> Option<(String, String)> {
    let na = match name {
        HeaderName::From => m.from()?.ok()?.0,
        HeaderName::To => m.to()?.ok()?.0,
        _ => return None,
    };
    let disp = na
        .display_name
        .map(|d| {
            if na.display_quoted {
                format!("\"{d}\" ")
            } else {
                format!("\"{}\" ", d.replace('"', ""))
            }
        })
        .unwrap_or_default();
    Some((disp, na.uri.as_str().to_owned()))
}

/// `uri` with its host (and port, and URI parameters) replaced by `host`: the user part
/// stays. Non-SIP URIs (tel:) stay as they are.
pub(crate) fn map_host(uri: &str, host: &str) -> String {
    match sip_message::Uri::parse(uri) {
        Ok(u) => match u.sip() {
            Some(s) => {
                let scheme = match s.scheme {
                    sip_message::Scheme::Sips => "sips",
                    _ => "sip",
                };
                match s.user {
                    Some(user) => format!("{scheme}:{user}@{host}"),
                    None => format!("{scheme}:{host}"),
                }
            }
            None => uri.to_owned(),
        },
        Err(_) => format!("sip:anonymous@{host}"),
    }
}

/// The Contact URI (remote target) of a message, without brackets.
pub(crate) fn contact_uri(m: &Message) -> Option<String> {
    let c = m.contacts().next()?.ok()?;
    Some(c.addr()?.uri.as_str().to_owned())
}

/// Record-Route values, in order.
pub(crate) fn record_routes(m: &Message) -> Vec<String> {
    m.header_values(HeaderName::RecordRoute)
        .flat_map(|v| split_list(&String::from_utf8_lossy(v)))
        .collect()
}

/// Splits a comma list of name-addrs (commas inside `<>` or quotes do not split).
fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(v[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last.to_owned());
    }
    out
}

pub(crate) fn tag_of(m: &Message, name: HeaderName) -> Option<String> {
    let t = match name {
        HeaderName::From => m.from()?.ok()?.tag()?.to_owned(),
        HeaderName::To => m.to()?.ok()?.tag()?.to_owned(),
        _ => return None,
    };
    Some(t)
}

pub(crate) fn call_id(m: &Message) -> Option<String> {
    Some(m.call_id()?.ok()?.0.to_owned())
}

pub(crate) fn cseq(m: &Message) -> Option<(u32, String)> {
    let c = m.cseq()?.ok()?;
    Some((c.seq, c.method_str.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_brackets() {
        assert_eq!(
            split_list("<sip:a;lr>, \"x,y\" <sip:b,c;lr>"),
            vec!["<sip:a;lr>".to_owned(), "\"x,y\" <sip:b,c;lr>".to_owned()]
        );
    }

    #[test]
    fn host_mapping_keeps_user_only() {
        assert_eq!(
            map_host(
                "sip:alice@pbx.lan.example:5070;transport=tcp",
                "wan.example"
            ),
            "sip:alice@wan.example"
        );
        assert_eq!(map_host("tel:+123", "x"), "tel:+123");
    }

    #[test]
    fn builder_refuses_injection() {
        let mut b = Builder::request("OPTIONS", "sip:x");
        b.header("Subject", "a\r\nVia: evil");
        let m = b.finish(None).unwrap();
        assert_eq!(m.count(HeaderName::Via), 0);
    }
}
