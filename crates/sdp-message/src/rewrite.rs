//! Byte-preserving SDP rewriting.
//!
//! A relay must change a few addresses and ports and otherwise forward the
//! peer's SDP untouched: re-serialising from the parsed form would normalise
//! whitespace, reorder lines and drop whatever we did not model, which breaks
//! interop and makes traces hard to compare. The [`Rewriter`] therefore
//! records *intentions*, and [`Rewriter::finish`] turns them into a sorted
//! list of splices over the original bytes, copying everything in between
//! verbatim.
//!
//! Intentions rather than raw splices also make repeated or overlapping
//! calls well-defined: the last `set_media_port` wins, removing `rtcp` by
//! name and then calling `set_rtcp` yields exactly one new `a=rtcp` line, and
//! so on.

use core::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::model::{LineInfo, SessionDescription};

/// Why a rewrite request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RewriteError {
    /// The media index does not exist.
    NoSuchMedia {
        /// Requested index.
        index: usize,
        /// Number of media sections.
        count: usize,
    },
    /// An attribute name or value to add would not form a single valid line.
    InvalidAttribute,
    /// The `o=` session version does not fit in `u64` or would overflow.
    VersionOverflow,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchMedia { index, count } => {
                write!(f, "no media section {index} (have {count})")
            }
            Self::InvalidAttribute => f.write_str("invalid attribute name or value"),
            Self::VersionOverflow => f.write_str("o= session version overflow"),
        }
    }
}

impl std::error::Error for RewriteError {}

#[derive(Debug, Clone, Copy)]
enum RtcpEdit {
    Set(u16, Option<IpAddr>),
    Remove,
}

#[derive(Debug, Clone, Default)]
struct MediaEdits {
    port: Option<u16>,
    connection: Option<IpAddr>,
    rtcp: Option<RtcpEdit>,
    removed: Vec<String>,
    added: Vec<String>,
}

/// Collects edits to a parsed description and applies them to its source.
///
/// The description carries the input it was parsed from, so the rewriter
/// needs nothing else. With no edits, [`finish`](Self::finish) returns the
/// input byte for byte.
#[derive(Debug, Clone)]
pub struct Rewriter<'s, 'a> {
    sdp: &'s SessionDescription<'a>,
    origin_address: Option<IpAddr>,
    origin_version: Option<u64>,
    session_connection: Option<IpAddr>,
    session_removed: Vec<String>,
    session_added: Vec<String>,
    media: Vec<MediaEdits>,
}

/// `IP4`/`IP6` for an address, as used in `o=`, `c=` and `a=rtcp`.
fn addrtype(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Renders `a=name[:value]` after checking it can't break the line
/// structure (a CR/LF in either part would let a caller's data inject lines).
fn attribute_line(name: &str, value: Option<&str>) -> Result<String, RewriteError> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':' && b != b'=');
    let value_ok = value.is_none_or(|v| !v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)));
    if !name_ok || !value_ok {
        return Err(RewriteError::InvalidAttribute);
    }
    Ok(match value {
        Some(v) => format!("a={name}:{v}"),
        None => format!("a={name}"),
    })
}

impl<'s, 'a> Rewriter<'s, 'a> {
    /// Starts a rewrite of `sdp` (which holds its original input).
    pub fn new(sdp: &'s SessionDescription<'a>) -> Self {
        Self {
            sdp,
            origin_address: None,
            origin_version: None,
            session_connection: None,
            session_removed: Vec::new(),
            session_added: Vec::new(),
            media: vec![MediaEdits::default(); sdp.media.len()],
        }
    }

    fn media_mut(&mut self, index: usize) -> Result<&mut MediaEdits, RewriteError> {
        let count = self.media.len();
        self.media
            .get_mut(index)
            .ok_or(RewriteError::NoSuchMedia { index, count })
    }

    /// Sets the session-level `c=` address and address type. Inserts a
    /// session-level `c=` line (after `s=`/`i=`/`u=`/`e=`/`p=`) if there is
    /// none. A multicast `/ttl/count` suffix is dropped: it described the old
    /// address, not ours. Media-level `c=` lines still override this.
    pub fn set_session_connection(&mut self, addr: IpAddr) -> &mut Self {
        self.session_connection = Some(addr);
        self
    }

    /// Sets the connection address of one media section: every media-level
    /// `c=` it has is rewritten, or, if it has none, a media-level `c=` line
    /// is inserted after the `m=` (and its `i=`) line so that it no longer
    /// follows the session-level address.
    pub fn set_media_connection(
        &mut self,
        media: usize,
        addr: IpAddr,
    ) -> Result<&mut Self, RewriteError> {
        self.media_mut(media)?.connection = Some(addr);
        Ok(self)
    }

    /// Makes `addr` the effective connection address of every media section
    /// with as few changes as possible: the session-level `c=` is set (or
    /// inserted if some section relies on it), and existing media-level
    /// `c=` lines are rewritten.
    pub fn set_all_connections(&mut self, addr: IpAddr) -> &mut Self {
        let needs_session =
            self.sdp.connection.is_some() || self.sdp.media.iter().any(|m| m.connection.is_empty());
        if needs_session {
            self.session_connection = Some(addr);
        }
        for (edits, m) in self.media.iter_mut().zip(&self.sdp.media) {
            if !m.connection.is_empty() {
                edits.connection = Some(addr);
            }
        }
        self
    }

    /// Sets the port of a media section's `m=` line (a `/count` suffix is
    /// kept).
    pub fn set_media_port(&mut self, media: usize, port: u16) -> Result<&mut Self, RewriteError> {
        self.media_mut(media)?.port = Some(port);
        Ok(self)
    }

    /// Sets `a=rtcp` (RFC 3605) of a media section: the first existing one
    /// is replaced and any further ones removed; if there is none, one is
    /// appended to the section. With `addr` the line carries
    /// `IN IP4|IP6 <addr>`.
    pub fn set_rtcp(
        &mut self,
        media: usize,
        port: u16,
        addr: Option<IpAddr>,
    ) -> Result<&mut Self, RewriteError> {
        self.media_mut(media)?.rtcp = Some(RtcpEdit::Set(port, addr));
        Ok(self)
    }

    /// Removes every `a=rtcp` line of a media section.
    pub fn remove_rtcp(&mut self, media: usize) -> Result<&mut Self, RewriteError> {
        self.media_mut(media)?.rtcp = Some(RtcpEdit::Remove);
        Ok(self)
    }

    /// Removes every session-level attribute called `name`.
    pub fn remove_session_attributes(&mut self, name: &str) -> &mut Self {
        self.session_removed.push(name.to_owned());
        self
    }

    /// Removes every attribute called `name` from one media section.
    pub fn remove_media_attributes(
        &mut self,
        media: usize,
        name: &str,
    ) -> Result<&mut Self, RewriteError> {
        self.media_mut(media)?.removed.push(name.to_owned());
        Ok(self)
    }

    /// Removes every attribute called `name`, session-level and in all media
    /// sections (e.g. `crypto` or `candidate`).
    pub fn remove_attributes_everywhere(&mut self, name: &str) -> &mut Self {
        self.session_removed.push(name.to_owned());
        for m in &mut self.media {
            m.removed.push(name.to_owned());
        }
        self
    }

    /// Appends `a=name[:value]` after the last session-level line.
    pub fn add_session_attribute(
        &mut self,
        name: &str,
        value: Option<&str>,
    ) -> Result<&mut Self, RewriteError> {
        let line = attribute_line(name, value)?;
        self.session_added.push(line);
        Ok(self)
    }

    /// Appends `a=name[:value]` at the end of a media section.
    pub fn add_media_attribute(
        &mut self,
        media: usize,
        name: &str,
        value: Option<&str>,
    ) -> Result<&mut Self, RewriteError> {
        let line = attribute_line(name, value)?;
        self.media_mut(media)?.added.push(line);
        Ok(self)
    }

    /// Sets the `o=` address and address type.
    pub fn set_origin_address(&mut self, addr: IpAddr) -> &mut Self {
        self.origin_address = Some(addr);
        self
    }

    /// Sets the `o=` session version to the original one plus one, as
    /// RFC 3264 §8 requires for a modified offer. Idempotent: calling it
    /// twice still bumps once.
    pub fn bump_origin_version(&mut self) -> Result<&mut Self, RewriteError> {
        let v = self
            .sdp
            .origin
            .sess_version_u64()
            .and_then(|v| v.checked_add(1))
            .ok_or(RewriteError::VersionOverflow)?;
        self.origin_version = Some(v);
        Ok(self)
    }

    /// Sets the `o=` session version to an explicit value.
    pub fn set_origin_version(&mut self, version: u64) -> &mut Self {
        self.origin_version = Some(version);
        self
    }

    /// Applies the edits and returns the new SDP.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_into(&mut out);
        out
    }

    /// Applies the edits, appending the new SDP to `out` (lets a hot path
    /// reuse one buffer).
    pub fn write_into(&self, out: &mut Vec<u8>) {
        let src = self.sdp.layout.source;
        let mut plan = Plan {
            lines: &self.sdp.layout.lines,
            eol: self.sdp.line_ending().as_str(),
            text: String::new(),
            edits: Vec::new(),
            deleted: Vec::new(),
        };
        self.plan(&mut plan);
        // Stable, so insertions at one anchor keep the order they were planned
        // in (c= first, then rtcp, then added attributes).
        plan.edits.sort_by_key(|e| e.start);

        out.reserve(src.len() + plan.text.len());
        let mut cursor = 0;
        for e in &plan.edits {
            // Our own plan never produces overlapping or out-of-range edits;
            // they could only come from a description whose public fields the
            // caller reshuffled (e.g. media moved between descriptions). Skip
            // rather than panic.
            let (Some(keep), Some(text)) =
                (src.get(cursor..e.start), plan.text.get(e.text.0..e.text.1))
            else {
                continue;
            };
            if e.end < e.start || e.end > src.len() {
                continue;
            }
            out.extend_from_slice(keep);
            out.extend_from_slice(text.as_bytes());
            cursor = e.end;
        }
        out.extend_from_slice(src.get(cursor..).unwrap_or_default());
    }

    fn plan(&self, p: &mut Plan<'_>) {
        let sdp = self.sdp;
        if let Some(ip) = self.origin_address {
            let l = sdp.origin.addr_loc;
            p.replace(l.start, l.end, format_args!("{} {}", addrtype(&ip), ip));
        }
        if let Some(v) = self.origin_version {
            let l = sdp.origin.version_loc;
            p.replace(l.start, l.end, format_args!("{v}"));
        }

        if let Some(ip) = self.session_connection {
            match &sdp.connection {
                Some(c) => p.replace(
                    c.addr_loc.start,
                    c.addr_loc.end,
                    format_args!("{} {}", addrtype(&ip), ip),
                ),
                None => {
                    // RFC 8866 order is v o s i u e p c: go after s= and
                    // any i/u/e/p lines directly following it.
                    let mut anchor = sdp.layout.session_name_line;
                    while p
                        .lines
                        .get(anchor + 1)
                        .is_some_and(|l| matches!(l.letter, b'i' | b'u' | b'e' | b'p'))
                    {
                        anchor += 1;
                    }
                    p.insert_after(anchor, format_args!("c=IN {} {}", addrtype(&ip), ip));
                }
            }
        }

        if self.has_removals() {
            p.deleted = vec![false; p.lines.len()];
        }
        for a in &sdp.attributes {
            if self.session_removed.iter().any(|n| n == a.name) {
                p.delete_line(a.loc.line);
            }
        }

        for (m, ed) in sdp.media.iter().zip(&self.media) {
            if let Some(port) = ed.port {
                p.replace(m.loc.port.start, m.loc.port.end, format_args!("{port}"));
            }
            if let Some(ip) = ed.connection {
                if m.connection.is_empty() {
                    // RFC 8866 order is m i c: skip a title line if present.
                    let mut anchor = m.loc.mline;
                    if anchor < m.loc.last_line
                        && p.lines.get(anchor + 1).is_some_and(|l| l.letter == b'i')
                    {
                        anchor += 1;
                    }
                    p.insert_after(anchor, format_args!("c=IN {} {}", addrtype(&ip), ip));
                }
                for c in &m.connection {
                    p.replace(
                        c.addr_loc.start,
                        c.addr_loc.end,
                        format_args!("{} {}", addrtype(&ip), ip),
                    );
                }
            }
            let mut rtcp_done = false;
            for a in &m.attributes {
                if ed.removed.iter().any(|n| n == a.name) {
                    p.delete_line(a.loc.line);
                    continue;
                }
                match (a.name, ed.rtcp) {
                    ("rtcp", Some(RtcpEdit::Set(port, addr))) if !rtcp_done => {
                        rtcp_done = true;
                        p.replace(a.loc.start, a.loc.end, RtcpLine(port, addr));
                    }
                    ("rtcp", Some(_)) => p.delete_line(a.loc.line),
                    _ => {}
                }
            }
            let anchor = p.last_kept(m.loc.mline, m.loc.last_line);
            if let (Some(RtcpEdit::Set(port, addr)), false) = (ed.rtcp, rtcp_done) {
                p.insert_after(anchor, RtcpLine(port, addr));
            }
            for line in &ed.added {
                p.insert_after(anchor, line);
            }
        }

        if !self.session_added.is_empty() {
            let last = match sdp.layout.first_media_line {
                Some(i) => i.saturating_sub(1),
                None => p.lines.len().saturating_sub(1),
            };
            let anchor = p.last_kept(0, last);
            for line in &self.session_added {
                p.insert_after(anchor, line);
            }
        }
    }

    fn has_removals(&self) -> bool {
        !self.session_removed.is_empty()
            || self
                .media
                .iter()
                .any(|m| !m.removed.is_empty() || m.rtcp.is_some())
    }
}

/// Renders the content of an `a=rtcp` line.
struct RtcpLine(u16, Option<IpAddr>);

impl fmt::Display for RtcpLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(ip) => write!(f, "a=rtcp:{} IN {} {}", self.0, addrtype(&ip), ip),
            None => write!(f, "a=rtcp:{}", self.0),
        }
    }
}

/// Replace `src[start..end]` with `text[text.0..text.1]`.
struct Edit {
    start: usize,
    end: usize,
    text: (usize, usize),
}

/// Edits under construction. All replacement text lives in one `String`
/// so a rewrite costs a couple of allocations, not one per edit.
struct Plan<'l> {
    lines: &'l [LineInfo],
    eol: &'static str,
    text: String,
    edits: Vec<Edit>,
    /// Per line: removed by this rewrite. Empty when nothing is removed.
    deleted: Vec<bool>,
}

impl Plan<'_> {
    fn replace(&mut self, start: usize, end: usize, what: impl fmt::Display) {
        let from = self.text.len();
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{what}");
        self.edits.push(Edit {
            start,
            end,
            text: (from, self.text.len()),
        });
    }

    /// Inserts a new line after line `anchor`. The text goes before the
    /// anchor's own line ending (as `EOL + line`), which keeps a missing
    /// final newline missing and never lands inside a deleted line.
    fn insert_after(&mut self, anchor: usize, line: impl fmt::Display) {
        let Some(at) = self.lines.get(anchor).map(|l| l.content_end) else {
            return;
        };
        let from = self.text.len();
        let _ = write!(self.text, "{}{line}", self.eol);
        self.edits.push(Edit {
            start: at,
            end: at,
            text: (from, self.text.len()),
        });
    }

    fn delete_line(&mut self, line: usize) {
        let Some(l) = self.lines.get(line).copied() else {
            return;
        };
        if let Some(d) = self.deleted.get_mut(line) {
            if *d {
                return;
            }
            *d = true;
        }
        self.edits.push(Edit {
            start: l.start,
            end: l.end,
            text: (0, 0),
        });
    }

    /// The last line in `first..=last` not deleted by this rewrite. `first`
    /// is an `m=` or `v=` line, which is never deleted.
    fn last_kept(&self, first: usize, last: usize) -> usize {
        (first..=last)
            .rev()
            .find(|&i| !self.deleted.get(i).copied().unwrap_or(false))
            .unwrap_or(first)
    }
}
