//! Line-oriented SDP parser.
//!
//! One pass over the input: `memchr` finds each line end, the line is
//! validated (shape, characters, UTF-8) and handed to a per-type parser that
//! only slices it. Every container grows by at most one element per input
//! line, and the number of lines is bounded by `max_size`, so both time and
//! memory are linear in the (already size-checked) input.

use memchr::{memchr, memchr2};

use crate::error::{SdpError, SdpErrorKind as K, SdpLimits};
use crate::lex::{digits, is_digits, port, tokens};
use crate::model::{
    Attribute, Bandwidth, Connection, Layout, LineEnding, LineInfo, Loc, Media, MediaLoc, Origin,
    RawLine, SessionDescription, Timing,
};

/// Parses an SDP body with the default [`SdpLimits`].
pub fn parse(input: &[u8]) -> Result<SessionDescription<'_>, SdpError> {
    parse_with_limits(input, &SdpLimits::default())
}

/// Parses an SDP body with explicit limits.
///
/// Accepts CRLF or bare LF line endings, a missing final newline and
/// trailing empty lines. Each line must be a lowercase letter, `=`, then
/// UTF-8 text without NUL or CR. Unknown line types and attributes are kept.
pub fn parse_with_limits<'a>(
    input: &'a [u8],
    limits: &SdpLimits,
) -> Result<SessionDescription<'a>, SdpError> {
    // Checked first so nothing below ever sees more than `max_size` bytes.
    if input.len() > limits.max_size {
        return Err(SdpError::new(limits.max_size, K::TooLarge));
    }
    let mut p = Parser::new(input, limits);
    let mut pos = 0;
    // Position of the first empty line seen; only legal if nothing follows.
    let mut blank_at: Option<usize> = None;
    while pos < input.len() {
        let rest = input.get(pos..).unwrap_or_default();
        let (raw_len, next) = match memchr(b'\n', rest) {
            Some(i) => (i, pos + i + 1),
            None => (rest.len(), input.len()),
        };
        let mut content_end = pos + raw_len;
        if content_end > pos && input.get(content_end - 1) == Some(&b'\r') {
            content_end -= 1;
        }
        let content = input.get(pos..content_end).unwrap_or_default();
        if content.len() > limits.max_line_len {
            return Err(SdpError::new(pos, K::LineTooLong));
        }
        if content.is_empty() {
            blank_at.get_or_insert(pos);
        } else if let Some(b) = blank_at {
            return Err(SdpError::new(b, K::EmptyLine));
        } else {
            if p.lines.is_empty() {
                p.ending = if next == content_end + 1 && raw_len == content.len() {
                    LineEnding::Lf
                } else {
                    LineEnding::CrLf
                };
            }
            p.line(pos, content, content_end, next)?;
        }
        pos = next;
    }
    p.finish()
}

struct Parser<'a, 'l> {
    input: &'a [u8],
    limits: &'l SdpLimits,
    lines: Vec<LineInfo>,
    ending: LineEnding,
    origin: Option<Origin<'a>>,
    session_name: Option<(&'a str, usize)>,
    connection: Option<Connection<'a>>,
    bandwidths: Vec<Bandwidth<'a>>,
    times: Vec<Timing>,
    attributes: Vec<Attribute<'a>>,
    other_lines: Vec<RawLine<'a>>,
    media: Vec<Media<'a>>,
    total_attributes: usize,
}

impl<'a, 'l> Parser<'a, 'l> {
    fn new(input: &'a [u8], limits: &'l SdpLimits) -> Self {
        // One exact allocation for the line table: the newline count bounds
        // the number of lines and is cheap to get with memchr.
        let max_lines = memchr::memchr_iter(b'\n', input).count() + 1;
        Self {
            input,
            limits,
            lines: Vec::with_capacity(max_lines),
            ending: LineEnding::CrLf,
            origin: None,
            session_name: None,
            connection: None,
            bandwidths: Vec::new(),
            times: Vec::new(),
            attributes: Vec::new(),
            other_lines: Vec::new(),
            media: Vec::new(),
            total_attributes: 0,
        }
    }

    /// Handles one non-empty line; `content` excludes the line ending.
    fn line(
        &mut self,
        start: usize,
        content: &'a [u8],
        content_end: usize,
        end: usize,
    ) -> Result<(), SdpError> {
        let (letter, value) = match content {
            [l @ b'a'..=b'z', b'=', rest @ ..] => (*l, rest),
            _ if self.lines.is_empty() => return Err(SdpError::new(start, K::MissingVersion)),
            _ => return Err(SdpError::new(start, K::BadLineShape)),
        };
        let vbase = start + 2;
        // NUL and CR would let a peer smuggle line breaks (or C-string
        // terminators) through us into whatever consumes our output.
        if let Some(i) = memchr2(0, b'\r', value) {
            return Err(SdpError::new(vbase + i, K::InvalidCharacter));
        }
        let value = core::str::from_utf8(value)
            .map_err(|e| SdpError::new(vbase + e.valid_up_to(), K::InvalidUtf8))?;
        let line = self.lines.len();
        self.lines.push(LineInfo {
            start,
            content_end,
            end,
            letter,
        });
        let loc = Loc {
            start,
            end: content_end,
            line,
        };
        if line == 0 {
            return match (letter, value) {
                (b'v', "0") => Ok(()),
                (b'v', _) => Err(SdpError::new(vbase, K::UnsupportedVersion)),
                _ => Err(SdpError::new(start, K::MissingVersion)),
            };
        }
        let in_media = !self.media.is_empty();
        match letter {
            b'v' => return Err(SdpError::new(start, K::DuplicateVersion)),
            b'o' | b's' | b't' if in_media => return Err(SdpError::new(start, K::MisplacedLine)),
            b'o' => {
                if self.origin.is_some() {
                    return Err(SdpError::new(start, K::DuplicateOrigin));
                }
                self.origin = Some(origin(value, vbase, loc)?);
            }
            b's' => {
                if self.session_name.is_some() {
                    return Err(SdpError::new(start, K::DuplicateSessionName));
                }
                self.session_name = Some((value, line));
            }
            b't' => self.times.push(timing(value, vbase, loc)?),
            b'c' => {
                let c = connection(value, vbase, loc)?;
                match self.media.last_mut() {
                    Some(m) => m.connection.push(c),
                    None if self.connection.is_some() => {
                        return Err(SdpError::new(start, K::DuplicateConnection))
                    }
                    None => self.connection = Some(c),
                }
            }
            b'b' => {
                let b = bandwidth(value, loc)?;
                match self.media.last_mut() {
                    Some(m) => m.bandwidths.push(b),
                    None => self.bandwidths.push(b),
                }
            }
            b'a' => {
                if self.total_attributes >= self.limits.max_attributes {
                    return Err(SdpError::new(start, K::TooManyAttributes));
                }
                self.total_attributes += 1;
                let a = attribute(value, loc)?;
                match self.media.last_mut() {
                    Some(m) => m.attributes.push(a),
                    None => self.attributes.push(a),
                }
            }
            b'm' => {
                if self.media.len() >= self.limits.max_media {
                    return Err(SdpError::new(start, K::TooManyMedia));
                }
                if let Some(prev) = self.media.last_mut() {
                    prev.loc.last_line = line - 1;
                }
                self.media.push(media(value, vbase, loc)?);
            }
            _ => {
                let raw = RawLine {
                    letter: char::from(letter),
                    value,
                    loc,
                };
                match self.media.last_mut() {
                    Some(m) => m.other_lines.push(raw),
                    None => self.other_lines.push(raw),
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SessionDescription<'a>, SdpError> {
        if self.lines.is_empty() {
            return Err(SdpError::new(0, K::MissingVersion));
        }
        let last_line = self.lines.len() - 1;
        if let Some(m) = self.media.last_mut() {
            m.loc.last_line = last_line;
        }
        let first_media_line = self.media.first().map(|m| m.loc.mline);
        // Report a missing session line where the session section ends.
        let session_end = first_media_line
            .and_then(|i| self.lines.get(i))
            .map_or(self.input.len(), |l| l.start);
        let origin = self
            .origin
            .ok_or(SdpError::new(session_end, K::MissingOrigin))?;
        let (session_name, session_name_line) = self
            .session_name
            .ok_or(SdpError::new(session_end, K::MissingSessionName))?;
        Ok(SessionDescription {
            version: 0,
            origin,
            session_name,
            connection: self.connection,
            bandwidths: self.bandwidths,
            times: self.times,
            attributes: self.attributes,
            other_lines: self.other_lines,
            media: self.media,
            layout: Layout {
                source: self.input,
                lines: self.lines,
                ending: self.ending,
                session_name_line,
                first_media_line,
            },
        })
    }
}

fn sub(loc: Loc, start: usize, end: usize) -> Loc {
    Loc {
        start,
        end,
        line: loc.line,
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
fn origin(value: &str, vbase: usize, loc: Loc) -> Result<Origin<'_>, SdpError> {
    let bad = SdpError::new(loc.start, K::BadOrigin);
    let mut t = tokens(value, vbase);
    let mut next = || t.next().ok_or(bad);
    let (_, username) = next()?;
    let (_, sess_id) = next()?;
    let (ver_at, sess_version) = next()?;
    let (_, nettype) = next()?;
    let (type_at, addrtype) = next()?;
    let (addr_at, address) = next()?;
    if next().is_ok() || !is_digits(sess_id) || !is_digits(sess_version) {
        return Err(bad);
    }
    Ok(Origin {
        username,
        sess_id,
        sess_version,
        nettype,
        addrtype,
        address,
        version_loc: sub(loc, ver_at, ver_at + sess_version.len()),
        addr_loc: sub(loc, type_at, addr_at + address.len()),
    })
}

/// `c=<nettype> <addrtype> <connection-address>` where the address may carry
/// `/ttl[/count]` (IP4 multicast) or `/count` (IP6 multicast).
fn connection(value: &str, vbase: usize, loc: Loc) -> Result<Connection<'_>, SdpError> {
    let bad = SdpError::new(loc.start, K::BadConnection);
    let mut t = tokens(value, vbase);
    let (_, nettype) = t.next().ok_or(bad)?;
    let (type_at, addrtype) = t.next().ok_or(bad)?;
    let (addr_at, full) = t.next().ok_or(bad)?;
    if t.next().is_some() {
        return Err(bad);
    }
    let mut parts = full.split('/');
    let address = parts.next().filter(|a| !a.is_empty()).ok_or(bad)?;
    let (ttl, count) = match addrtype {
        "IP4" => {
            let ttl = parts.next().map(digits::<u8>);
            let count = parts.next().map(digits::<u32>);
            (ttl, count)
        }
        "IP6" => (None, parts.next().map(digits::<u32>)),
        // Unknown address types: the suffix syntax is theirs, keep it whole.
        _ => {
            return Ok(Connection {
                nettype,
                addrtype,
                address: full,
                ttl: None,
                count: None,
                addr_loc: sub(loc, type_at, addr_at + full.len()),
            })
        }
    };
    if parts.next().is_some() {
        return Err(bad);
    }
    // `Some(None)` means the suffix was present but not a valid number.
    let ttl = ttl.map_or(Ok(None), |v| v.map(Some).ok_or(bad))?;
    let count = count.map_or(Ok(None), |v| v.map(Some).ok_or(bad))?;
    Ok(Connection {
        nettype,
        addrtype,
        address,
        ttl,
        count,
        addr_loc: sub(loc, type_at, addr_at + full.len()),
    })
}

/// `b=<bwtype>:<bandwidth>`
fn bandwidth(value: &str, loc: Loc) -> Result<Bandwidth<'_>, SdpError> {
    let bad = SdpError::new(loc.start, K::BadBandwidth);
    let (bwtype, bw) = value.split_once(':').ok_or(bad)?;
    if bwtype.is_empty() || bwtype.contains(' ') {
        return Err(bad);
    }
    let bandwidth = digits(bw.trim_end_matches(' ')).ok_or(bad)?;
    Ok(Bandwidth { bwtype, bandwidth })
}

/// `t=<start-time> <stop-time>`
fn timing(value: &str, vbase: usize, loc: Loc) -> Result<Timing, SdpError> {
    let bad = SdpError::new(loc.start, K::BadTiming);
    let mut t = tokens(value, vbase).map(|(_, s)| digits::<u64>(s));
    match (t.next(), t.next(), t.next()) {
        (Some(Some(start)), Some(Some(stop)), None) => Ok(Timing { start, stop }),
        _ => Err(bad),
    }
}

/// `a=<name>[:<value>]`
fn attribute(value: &str, loc: Loc) -> Result<Attribute<'_>, SdpError> {
    let (name, value) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    if name.is_empty() {
        return Err(SdpError::new(loc.start, K::BadAttribute));
    }
    Ok(Attribute { name, value, loc })
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`
fn media(value: &str, vbase: usize, loc: Loc) -> Result<Media<'_>, SdpError> {
    let bad = SdpError::new(loc.start, K::BadMedia);
    let mut t = tokens(value, vbase);
    let (_, media) = t.next().ok_or(bad)?;
    let (port_at, port_tok) = t.next().ok_or(bad)?;
    let (port_s, count_s) = match port_tok.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_tok, None),
    };
    let bad_port = SdpError::new(port_at, K::BadPort);
    let port_num = port(port_s).ok_or(bad_port)?;
    let port_count = match count_s {
        Some(c) => Some(digits::<u16>(c).ok_or(bad_port)?),
        None => None,
    };
    let (_, proto) = t.next().ok_or(bad)?;
    // Formats may legitimately be absent on some rejected (port 0) streams
    // in the wild, so an empty list is accepted.
    let formats = t.map(|(_, f)| f).collect();
    Ok(Media {
        media,
        port: port_num,
        port_count,
        proto,
        formats,
        connection: Vec::new(),
        bandwidths: Vec::new(),
        attributes: Vec::new(),
        other_lines: Vec::new(),
        loc: MediaLoc {
            mline: loc.line,
            last_line: loc.line,
            port: sub(loc, port_at, port_at + port_s.len()),
        },
    })
}
