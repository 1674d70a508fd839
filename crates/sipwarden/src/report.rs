//! What `sipwarden parse` says about a valid message: an owned summary, printed as JSON or as
//! readable text.

use std::collections::BTreeMap;
use std::io::{self, Write};

use sdp_message::SdpSummary;
use serde::Serialize;
use sip_message::headers::{self as h, Contact, NameAddr};
use sip_message::Message;

/// One valid message. Fields that do not apply (a request's status, ...) are `None` (`null`).
#[derive(Debug, Clone, Serialize)]
pub struct MessageReport {
    /// The input the message came from (`<stdin>` for standard input).
    pub file: String,
    /// `request` or `response`.
    pub kind: &'static str,
    pub method: Option<String>,
    pub request_uri: Option<String>,
    pub status: Option<u16>,
    /// The reason phrase (bytes that are not UTF-8 replaced by U+FFFD).
    pub reason: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<CSeqReport>,
    /// Every Via value, topmost first.
    pub via: Vec<ViaReport>,
    pub from: Option<AddrReport>,
    pub to: Option<AddrReport>,
    pub contacts: Vec<ContactReport>,
    pub content_length: Option<usize>,
    pub header_count: usize,
    pub sdp: Option<SdpSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CSeqReport {
    pub seq: u32,
    pub method: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViaReport {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    pub rport: Option<Rport>,
}

/// `rport` as a flag (`true`: present without value) or as the port a server filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Rport {
    Flag(bool),
    Port(u16),
}

#[derive(Debug, Clone, Serialize)]
pub struct AddrReport {
    /// The display name with quoting undone; `None` when there is none.
    pub display: Option<String>,
    pub uri: String,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactReport {
    pub display: Option<String>,
    /// The URI, or `*` for `Contact: *`.
    pub uri: String,
    /// Header parameters (`expires`, `q`, `+sip.instance`, ...); `null` for a flag.
    pub params: BTreeMap<String, Option<String>>,
}

fn display_of(a: &NameAddr<'_>) -> Option<String> {
    a.display_name
        .map(|_| a.display_name_unquoted().into_owned())
}

fn addr_report(a: &NameAddr<'_>) -> AddrReport {
    AddrReport {
        display: display_of(a),
        uri: a.uri.as_str().to_owned(),
        tag: a.tag().map(str::to_owned),
    }
}

fn contact_report(c: &Contact<'_>) -> ContactReport {
    match c.addr() {
        None => ContactReport {
            display: None,
            uri: "*".to_owned(),
            params: BTreeMap::new(),
        },
        Some(a) => ContactReport {
            display: display_of(a),
            uri: a.uri.as_str().to_owned(),
            params: a
                .params
                .iter()
                .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
                .collect(),
        },
    }
}

fn via_report(v: &h::Via<'_>) -> ViaReport {
    ViaReport {
        transport: v.transport.to_owned(),
        host: v.host_str.to_owned(),
        port: v.port,
        branch: v.branch.map(str::to_owned),
        received: v.received.map(|ip| ip.to_string()),
        rport: v.rport.map(|p| p.map_or(Rport::Flag(true), Rport::Port)),
    }
}

impl MessageReport {
    /// Summarises a message that passed `validate()` and `decode_all_headers()`: every typed
    /// value used here is known to decode, so errors cannot occur (they would only leave a
    /// field empty).
    pub fn new(file: &str, m: &Message, sdp: Option<SdpSummary>) -> MessageReport {
        MessageReport {
            file: file.to_owned(),
            kind: if m.is_request() {
                "request"
            } else {
                "response"
            },
            method: m.method_str().map(str::to_owned),
            request_uri: m.request_uri_str().map(str::to_owned),
            status: m.status(),
            reason: m
                .reason_phrase()
                .map(|r| String::from_utf8_lossy(r).into_owned()),
            call_id: m.call_id().and_then(Result::ok).map(|c| c.0.to_owned()),
            cseq: m.cseq().and_then(Result::ok).map(|c| CSeqReport {
                seq: c.seq,
                method: c.method_str.to_owned(),
            }),
            via: m
                .vias()
                .filter_map(Result::ok)
                .map(|v| via_report(&v))
                .collect(),
            from: m.from().and_then(Result::ok).map(|a| addr_report(&a)),
            to: m.to().and_then(Result::ok).map(|a| addr_report(&a)),
            contacts: m
                .contacts()
                .filter_map(Result::ok)
                .map(|c| contact_report(&c))
                .collect(),
            content_length: m.content_length(),
            header_count: m.header_count(),
            sdp,
        }
    }

    /// The readable form: a title line, then one indented line per item.
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "{}: valid {}", self.file, self.kind)?;
        match (&self.method, &self.request_uri, self.status) {
            (Some(method), Some(uri), _) => writeln!(w, "  {method} {uri} SIP/2.0")?,
            (_, _, Some(status)) => writeln!(
                w,
                "  SIP/2.0 {status} {}",
                self.reason.as_deref().unwrap_or("")
            )?,
            _ => {}
        }
        if let Some(c) = &self.call_id {
            writeln!(w, "  Call-ID:        {c}")?;
        }
        if let Some(c) = &self.cseq {
            writeln!(w, "  CSeq:           {} {}", c.seq, c.method)?;
        }
        for (i, v) in self.via.iter().enumerate() {
            let mut line = format!("  Via[{i}]:         {} {}", v.transport, v.host);
            if let Some(p) = v.port {
                line.push_str(&format!(":{p}"));
            }
            match &v.branch {
                Some(b) => line.push_str(&format!(" branch={b}")),
                None => line.push_str(" (no branch)"),
            }
            if let Some(r) = &v.received {
                line.push_str(&format!(" received={r}"));
            }
            match v.rport {
                Some(Rport::Port(p)) => line.push_str(&format!(" rport={p}")),
                Some(Rport::Flag(_)) => line.push_str(" rport"),
                None => {}
            }
            writeln!(w, "{line}")?;
        }
        for (label, a) in [("From:", &self.from), ("To:", &self.to)] {
            if let Some(a) = a {
                let tag = match &a.tag {
                    Some(t) => format!(" tag={t}"),
                    None => " (no tag)".to_owned(),
                };
                writeln!(
                    w,
                    "  {label:<15} {}{tag}",
                    name_addr_text(&a.display, &a.uri)
                )?;
            }
        }
        for c in &self.contacts {
            let mut line = format!("  Contact:        {}", name_addr_text(&c.display, &c.uri));
            for (n, v) in &c.params {
                match v {
                    Some(v) => line.push_str(&format!(";{n}={v}")),
                    None => line.push_str(&format!(";{n}")),
                }
            }
            writeln!(w, "{line}")?;
        }
        match self.content_length {
            Some(n) => writeln!(w, "  Content-Length: {n}")?,
            None => writeln!(w, "  Content-Length: (absent)")?,
        }
        writeln!(w, "  Headers:        {}", self.header_count)?;
        if let Some(s) = &self.sdp {
            write!(w, "  SDP:            origin {}", s.origin_address)?;
            if let Some(c) = &s.connection {
                write!(w, ", connection {c}")?;
            }
            writeln!(w)?;
            for m in &s.media {
                let mut line = format!(
                    "    m={} {} {} {}",
                    m.media,
                    m.port,
                    m.proto,
                    m.formats.join(" ")
                );
                if let Some(c) = &m.connection {
                    line.push_str(&format!(" at {c}"));
                }
                line.push_str(&format!(" {:?}", m.direction).to_lowercase());
                if m.rtcp_mux {
                    line.push_str(" rtcp-mux");
                }
                if !m.crypto_suites.is_empty() {
                    line.push_str(&format!(" crypto={}", m.crypto_suites.join(",")));
                }
                if m.candidates > 0 {
                    line.push_str(&format!(" candidates={}", m.candidates));
                }
                writeln!(w, "{line}")?;
            }
        }
        Ok(())
    }
}

fn name_addr_text(display: &Option<String>, uri: &str) -> String {
    match display {
        Some(d) => format!("\"{d}\" <{uri}>"),
        None if uri == "*" => "*".to_owned(),
        None => format!("<{uri}>"),
    }
}
