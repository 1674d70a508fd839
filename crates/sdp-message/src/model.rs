//! The parsed, borrowed representation of a session description.
//!
//! Public fields hold the SDP *content*. Alongside them every item keeps a
//! private record of where it came from in the input, which is what lets
//! [`crate::Rewriter`] splice edits into the original bytes. That positional
//! bookkeeping deliberately takes no part in equality: two descriptions are
//! `==` when they say the same thing, even if the bytes sit at different
//! offsets (for example before and after an unrelated rewrite).

use core::fmt;
use std::net::IpAddr;

use crate::attr::{self, Crypto, Direction, Rtcp, Rtpmap, TypedAttr};
use crate::error::SdpError;

/// A byte range in the source plus the index of the line containing it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Loc {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) line: usize,
}

// Positions are bookkeeping, not content (see module docs).
impl PartialEq for Loc {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Loc {}

/// One non-empty line of the source.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineInfo {
    /// Offset of the type letter.
    pub(crate) start: usize,
    /// Offset just past the line content (before any CR/LF).
    pub(crate) content_end: usize,
    /// Offset just past the line ending (== `content_end` on a final line
    /// without newline).
    pub(crate) end: usize,
    /// The line's type letter, e.g. `b'a'`.
    pub(crate) letter: u8,
}

/// Line ending style of a description, used for any lines a rewrite adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    /// `\r\n`, as RFC 8866 requires.
    CrLf,
    /// Bare `\n`, which many stacks emit and we accept.
    Lf,
}

impl LineEnding {
    /// The bytes of this line ending.
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::CrLf => "\r\n",
            LineEnding::Lf => "\n",
        }
    }
}

/// Everything about the source layout that the rewriter needs.
#[derive(Clone)]
pub(crate) struct Layout<'a> {
    pub(crate) source: &'a [u8],
    pub(crate) lines: Vec<LineInfo>,
    pub(crate) ending: LineEnding,
    /// Line index of the `s=` line.
    pub(crate) session_name_line: usize,
    /// Line index of the first `m=` line, if any.
    pub(crate) first_media_line: Option<usize>,
}

impl fmt::Debug for Layout<'_> {
    // The full source would drown any debug output; its size is enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("source_len", &self.source.len())
            .field("lines", &self.lines.len())
            .field("ending", &self.ending)
            .finish()
    }
}

// Layout is bookkeeping, not content (see module docs).
impl PartialEq for Layout<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Layout<'_> {}

/// A parsed SDP session description borrowing from its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription<'a> {
    /// Protocol version from `v=` (always 0).
    pub version: u32,
    /// The `o=` line.
    pub origin: Origin<'a>,
    /// The `s=` text (may be empty or a single space).
    pub session_name: &'a str,
    /// Session-level `c=`, if any.
    pub connection: Option<Connection<'a>>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth<'a>>,
    /// `t=` lines (their `r=` lines are in `other_lines`).
    pub times: Vec<Timing>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute<'a>>,
    /// Session-level `i=`, `u=`, `e=`, `p=`, `k=`, `z=`, `r=` and unknown
    /// lines, kept verbatim and in order.
    pub other_lines: Vec<RawLine<'a>>,
    /// Media sections, in order.
    pub media: Vec<Media<'a>>,
    pub(crate) layout: Layout<'a>,
}

impl<'a> SessionDescription<'a> {
    /// The input this description was parsed from.
    pub fn source(&self) -> &'a [u8] {
        self.layout.source
    }

    /// Line ending style of the first line (used for lines added by
    /// rewriting).
    pub fn line_ending(&self) -> LineEnding {
        self.layout.ending
    }

    /// Session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// Effective direction of media section `index`: its own direction
    /// attribute, else the session-level one, else `sendrecv` (RFC 8866
    /// §6.7). `None` only if there is no such media section.
    pub fn media_direction(&self, index: usize) -> Option<Direction> {
        let m = self.media.get(index)?;
        Some(
            m.direction()
                .or_else(|| self.direction())
                .unwrap_or(Direction::SendRecv),
        )
    }

    /// Session-level attributes with the given name.
    pub fn attributes_named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'s Attribute<'a>> + 's {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    /// `i=` (session information) text, if present.
    pub fn information(&self) -> Option<&'a str> {
        raw_value(&self.other_lines, 'i')
    }
}

fn raw_value<'a>(lines: &[RawLine<'a>], letter: char) -> Option<&'a str> {
    lines.iter().find(|l| l.letter == letter).map(|l| l.value)
}

fn direction_of(attrs: &[Attribute<'_>]) -> Option<Direction> {
    attrs
        .iter()
        .find_map(|a| Direction::from_name(a.name).filter(|_| a.value.is_none()))
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// User name, `-` when none.
    pub username: &'a str,
    /// Session id, a string of digits (may exceed `u64`).
    pub sess_id: &'a str,
    /// Session version, a string of digits (may exceed `u64`).
    pub sess_version: &'a str,
    /// Network type, normally `IN`.
    pub nettype: &'a str,
    /// Address type, normally `IP4` or `IP6`.
    pub addrtype: &'a str,
    /// Unicast address or FQDN of the originator.
    pub address: &'a str,
    pub(crate) version_loc: Loc,
    /// From the start of `addrtype` to the end of `address`.
    pub(crate) addr_loc: Loc,
}

impl Origin<'_> {
    /// Session id as a number, if it fits in `u64`.
    pub fn sess_id_u64(&self) -> Option<u64> {
        crate::lex::digits(self.sess_id)
    }

    /// Session version as a number, if it fits in `u64`.
    pub fn sess_version_u64(&self) -> Option<u64> {
        crate::lex::digits(self.sess_version)
    }

    /// The address as an IP address, if it is a literal one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
}

/// A `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    /// Network type, normally `IN`.
    pub nettype: &'a str,
    /// Address type, normally `IP4` or `IP6`.
    pub addrtype: &'a str,
    /// The address without any `/ttl/count` suffix.
    pub address: &'a str,
    /// IPv4 multicast TTL.
    pub ttl: Option<u8>,
    /// Number of multicast addresses.
    pub count: Option<u32>,
    /// From the start of `addrtype` to the end of the address suffix.
    pub(crate) addr_loc: Loc,
}

impl Connection<'_> {
    /// The address as an IP address, if it is a literal one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// True for the RFC 3264 "hold" address `0.0.0.0` (or `::`).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// A `b=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth<'a> {
    /// Bandwidth type, e.g. `AS`, `CT`, `TIAS`.
    pub bwtype: &'a str,
    /// Value (kbit/s for AS/CT, bit/s for TIAS).
    pub bandwidth: u64,
}

/// A `t=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// NTP start time, 0 for unbounded.
    pub start: u64,
    /// NTP stop time, 0 for unbounded.
    pub stop: u64,
}

/// A line kept verbatim (`i=`, `u=`, `e=`, `p=`, `k=`, `z=`, `r=` or an
/// unknown type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The type letter.
    pub letter: char,
    /// Everything after `x=`.
    pub value: &'a str,
    pub(crate) loc: Loc,
}

/// An `a=` line: `a=name` or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute name (before the first `:`).
    pub name: &'a str,
    /// Attribute value (after the first `:`), `None` for property attributes.
    pub value: Option<&'a str>,
    /// The whole line content, `a=` included.
    pub(crate) loc: Loc,
}

impl<'a> Attribute<'a> {
    /// Decodes the attribute into a typed form. Unknown attributes decode to
    /// [`TypedAttr::Other`]; known ones with a malformed value are an error
    /// whose offset is the start of the `a=` line.
    pub fn typed(&self) -> Result<TypedAttr<'a>, SdpError> {
        attr::decode(self)
    }

    /// Byte offset of the `a=` line in the source.
    pub fn offset(&self) -> usize {
        self.loc.start
    }
}

/// Positional data of a media section.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MediaLoc {
    /// Line index of the `m=` line.
    pub(crate) mline: usize,
    /// Line index of the last line of the section.
    pub(crate) last_line: usize,
    /// The port token of the `m=` line (without `/count`).
    pub(crate) port: Loc,
}

impl PartialEq for MediaLoc {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for MediaLoc {}

/// An `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Media type: `audio`, `video`, `application`, ...
    pub media: &'a str,
    /// Transport port.
    pub port: u16,
    /// The `/<number of ports>` suffix, if any.
    pub port_count: Option<u16>,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub proto: &'a str,
    /// Media formats (RTP payload types for RTP protocols).
    pub formats: Vec<&'a str>,
    /// Media-level `c=` lines.
    pub connection: Vec<Connection<'a>>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth<'a>>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute<'a>>,
    /// Media-level `i=`, `k=` and unknown lines, kept verbatim.
    pub other_lines: Vec<RawLine<'a>>,
    pub(crate) loc: MediaLoc,
}

impl<'a> Media<'a> {
    /// Media-level direction attribute only; see
    /// [`SessionDescription::media_direction`] for the effective one.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// True if `a=rtcp-mux` is present.
    pub fn rtcp_mux(&self) -> bool {
        self.attributes.iter().any(|a| a.name == "rtcp-mux")
    }

    /// The first `a=rtcp` attribute, decoded.
    pub fn rtcp(&self) -> Option<Result<Rtcp<'a>, SdpError>> {
        self.attributes
            .iter()
            .find(|a| a.name == "rtcp")
            .map(Rtcp::from_attribute)
    }

    /// All `a=crypto` attributes, decoded, in order.
    pub fn crypto(&self) -> impl Iterator<Item = Result<Crypto<'a>, SdpError>> + '_ {
        self.attributes_named("crypto").map(Crypto::from_attribute)
    }

    /// All `a=rtpmap` attributes, decoded, in order.
    pub fn rtpmaps(&self) -> impl Iterator<Item = Result<Rtpmap<'a>, SdpError>> + '_ {
        self.attributes_named("rtpmap").map(Rtpmap::from_attribute)
    }

    /// The `a=rtpmap` for one payload type, if present and well-formed.
    pub fn rtpmap_for(&self, payload_type: u8) -> Option<Rtpmap<'a>> {
        self.rtpmaps()
            .filter_map(Result::ok)
            .find(|r| r.payload_type == payload_type)
    }

    /// Media-level attributes with the given name.
    pub fn attributes_named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'s Attribute<'a>> + 's {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    /// Number of `a=candidate` lines.
    pub fn candidate_count(&self) -> usize {
        self.attributes_named("candidate").count()
    }

    /// The `a=mid` value, if any.
    pub fn mid(&self) -> Option<&'a str> {
        self.attributes
            .iter()
            .find(|a| a.name == "mid")
            .and_then(|a| a.value)
    }

    /// The connection that applies to this section: its first own `c=`,
    /// else the session-level one.
    pub fn effective_connection<'s>(
        &'s self,
        session: &'s SessionDescription<'a>,
    ) -> Option<&'s Connection<'a>> {
        self.connection.first().or(session.connection.as_ref())
    }

    /// True for a section the answerer rejected or the offerer disabled
    /// (port 0, RFC 3264 §6).
    pub fn is_disabled(&self) -> bool {
        self.port == 0
    }

    /// `i=` (media title) text, if present.
    pub fn information(&self) -> Option<&'a str> {
        raw_value(&self.other_lines, 'i')
    }
}
