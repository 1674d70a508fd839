//! Typed decoding of well-known attributes, done on demand.
//!
//! Parsing keeps attributes as `name`/`value` string slices; a relay only
//! needs to understand a handful of them, and only for some messages, so
//! decoding is deferred until asked for. A malformed known attribute thus
//! never makes the whole description unparseable: the caller decides whether
//! it matters.

use crate::error::{SdpError, SdpErrorKind};
use crate::lex::{self, digits, is_digits, words};
use crate::model::Attribute;

/// Media direction (RFC 8866 §6.7, RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Maps an attribute name to a direction.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// The attribute name for this direction.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// The direction as seen from the other side (sendonly <-> recvonly).
    pub fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }
}

/// A decoded attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypedAttr<'a> {
    /// `a=rtpmap`.
    Rtpmap(Rtpmap<'a>),
    /// `a=fmtp`.
    Fmtp(Fmtp<'a>),
    /// `a=ptime` in milliseconds.
    Ptime(u32),
    /// `a=maxptime` in milliseconds.
    Maxptime(u32),
    /// `a=sendrecv` / `sendonly` / `recvonly` / `inactive`.
    Direction(Direction),
    /// `a=rtcp` (RFC 3605).
    Rtcp(Rtcp<'a>),
    /// `a=rtcp-mux` (RFC 5761).
    RtcpMux,
    /// `a=crypto` (RFC 4568).
    Crypto(Crypto<'a>),
    /// `a=candidate` (RFC 8839).
    Candidate(Candidate<'a>),
    /// `a=ice-ufrag`.
    IceUfrag(&'a str),
    /// `a=ice-pwd`.
    IcePwd(&'a str),
    /// `a=ice-options` tags.
    IceOptions(Vec<&'a str>),
    /// `a=ice-lite`.
    IceLite,
    /// `a=end-of-candidates`.
    EndOfCandidates,
    /// `a=mid` (RFC 5888).
    Mid(&'a str),
    /// `a=ssrc` (RFC 5576).
    Ssrc(Ssrc<'a>),
    /// `a=group` (RFC 5888), e.g. BUNDLE.
    Group(Group<'a>),
    /// `a=setup` value, kept raw.
    Setup(&'a str),
    /// `a=fingerprint` value, kept raw.
    Fingerprint(&'a str),
    /// Any attribute without a typed form; use the [`Attribute`] fields.
    Other,
}

fn fail<T>(attr: &Attribute<'_>, kind: SdpErrorKind) -> Result<T, SdpError> {
    Err(SdpError::new(attr.offset(), kind))
}

/// The value of an attribute that must have one.
fn value<'a>(attr: &Attribute<'a>, kind: SdpErrorKind) -> Result<&'a str, SdpError> {
    match attr.value {
        Some(v) => Ok(v),
        None => fail(attr, kind),
    }
}

/// A value that must be one non-empty token.
fn single_token<'a>(attr: &Attribute<'a>, kind: SdpErrorKind) -> Result<&'a str, SdpError> {
    let v = value(attr, kind)?;
    let mut w = words(v);
    match (w.next(), w.next()) {
        (Some(t), None) => Ok(t),
        _ => fail(attr, kind),
    }
}

/// A property attribute: it must not carry a value.
fn flag<'a>(attr: &Attribute<'a>, t: TypedAttr<'a>) -> Result<TypedAttr<'a>, SdpError> {
    match attr.value {
        None => Ok(t),
        Some(_) => fail(attr, SdpErrorKind::BadAttributeValue),
    }
}

pub(crate) fn decode<'a>(attr: &Attribute<'a>) -> Result<TypedAttr<'a>, SdpError> {
    use SdpErrorKind as K;
    Ok(match attr.name {
        "rtpmap" => TypedAttr::Rtpmap(Rtpmap::from_attribute(attr)?),
        "fmtp" => TypedAttr::Fmtp(Fmtp::from_attribute(attr)?),
        "ptime" => TypedAttr::Ptime(ms(attr)?),
        "maxptime" => TypedAttr::Maxptime(ms(attr)?),
        "rtcp" => TypedAttr::Rtcp(Rtcp::from_attribute(attr)?),
        "rtcp-mux" => flag(attr, TypedAttr::RtcpMux)?,
        "crypto" => TypedAttr::Crypto(Crypto::from_attribute(attr)?),
        "candidate" => TypedAttr::Candidate(Candidate::from_attribute(attr)?),
        "ice-ufrag" => TypedAttr::IceUfrag(single_token(attr, K::BadIce)?),
        "ice-pwd" => TypedAttr::IcePwd(single_token(attr, K::BadIce)?),
        "ice-options" => {
            let tags: Vec<&str> = words(value(attr, K::BadIce)?).collect();
            if tags.is_empty() {
                return fail(attr, K::BadIce);
            }
            TypedAttr::IceOptions(tags)
        }
        "ice-lite" => flag(attr, TypedAttr::IceLite)?,
        "end-of-candidates" => flag(attr, TypedAttr::EndOfCandidates)?,
        "mid" => TypedAttr::Mid(single_token(attr, K::BadMid)?),
        "ssrc" => TypedAttr::Ssrc(Ssrc::from_attribute(attr)?),
        "group" => TypedAttr::Group(Group::from_attribute(attr)?),
        "setup" => TypedAttr::Setup(single_token(attr, K::BadAttributeValue)?),
        "fingerprint" => TypedAttr::Fingerprint(value(attr, K::BadAttributeValue)?.trim()),
        name => match Direction::from_name(name) {
            Some(d) => flag(attr, TypedAttr::Direction(d))?,
            None => TypedAttr::Other,
        },
    })
}

/// `a=ptime` / `a=maxptime`: integral milliseconds.
fn ms(attr: &Attribute<'_>) -> Result<u32, SdpError> {
    let v = single_token(attr, SdpErrorKind::BadPtime)?;
    match digits(v) {
        Some(n) => Ok(n),
        None => fail(attr, SdpErrorKind::BadPtime),
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtpmap<'a> {
    /// RTP payload type, 0..=127.
    pub payload_type: u8,
    /// Encoding name as written, e.g. `PCMU`, `opus`, `telephone-event`.
    pub encoding: &'a str,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters; the channel count for audio.
    pub channels: Option<u16>,
}

impl<'a> Rtpmap<'a> {
    /// Decodes the value of an `a=rtpmap` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        Self::decode(value(attr, SdpErrorKind::BadRtpmap)?)
            .map_or_else(|| fail(attr, SdpErrorKind::BadRtpmap), Ok)
    }

    fn decode(v: &'a str) -> Option<Self> {
        let mut w = words(v);
        let pt: u8 = digits(w.next()?)?;
        let enc = w.next()?;
        if w.next().is_some() || pt > 127 {
            return None;
        }
        let mut parts = enc.split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate = digits(parts.next()?)?;
        let channels = match parts.next() {
            Some(c) => Some(digits(c)?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            payload_type: pt,
            encoding,
            clock_rate,
            channels,
        })
    }
}

/// `a=fmtp:<format> <format specific parameters>`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmtp<'a> {
    /// The media format (payload type) the parameters apply to.
    pub format: &'a str,
    /// Parameters as written, e.g. `profile-level-id=42e01f;packetization-mode=1`.
    pub params: &'a str,
}

impl<'a> Fmtp<'a> {
    /// Decodes the value of an `a=fmtp` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        let v = value(attr, SdpErrorKind::BadFmtp)?.trim_start_matches(' ');
        let (format, params) = v.split_once(' ').unwrap_or((v, ""));
        if format.is_empty() {
            return fail(attr, SdpErrorKind::BadFmtp);
        }
        Ok(Self {
            format,
            params: params.trim_matches(' '),
        })
    }

    /// `;`-separated parameters as `(key, value)`; a parameter without `=`
    /// (e.g. the `0-15` of telephone-event) has no value.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.params
            .split(';')
            .map(|p| p.trim_matches(' '))
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim_end_matches(' '), Some(v.trim_start_matches(' '))),
                None => (p, None),
            })
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]` (RFC 3605)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp<'a> {
    /// RTCP port.
    pub port: u16,
    /// Network type, if an address was given.
    pub nettype: Option<&'a str>,
    /// Address type, if an address was given.
    pub addrtype: Option<&'a str>,
    /// RTCP address, if given.
    pub address: Option<&'a str>,
}

impl<'a> Rtcp<'a> {
    /// Decodes the value of an `a=rtcp` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        Self::decode(value(attr, SdpErrorKind::BadRtcp)?)
            .map_or_else(|| fail(attr, SdpErrorKind::BadRtcp), Ok)
    }

    fn decode(v: &'a str) -> Option<Self> {
        let mut w = words(v);
        let port = lex::port(w.next()?)?;
        match (w.next(), w.next(), w.next(), w.next()) {
            (None, ..) => Some(Self {
                port,
                nettype: None,
                addrtype: None,
                address: None,
            }),
            (Some(n), Some(t), Some(a), None) => Some(Self {
                port,
                nettype: Some(n),
                addrtype: Some(t),
                address: Some(a),
            }),
            _ => None,
        }
    }
}

/// SRTP master key lifetime of an `inline:` key (RFC 4568 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Written as `2^n`.
    PowerOfTwo(u8),
    /// Written as a plain packet count.
    Packets(u64),
}

impl Lifetime {
    /// The lifetime as a packet count.
    pub fn packets(self) -> u64 {
        match self {
            // The exponent is capped at 63 when decoding, so this can't
            // overflow; `checked_shl` keeps that true even if someone builds
            // the value by hand.
            Self::PowerOfTwo(n) => 1u64.checked_shl(u32::from(n)).unwrap_or(u64::MAX),
            Self::Packets(n) => n,
        }
    }
}

/// Master Key Identifier of an `inline:` key: `<value>:<length>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki<'a> {
    /// MKI value as decimal digits.
    pub value: &'a str,
    /// MKI length in bytes, 1..=128.
    pub length: u8,
}

/// One key parameter of an `a=crypto` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParam<'a> {
    /// Key method; only `inline` is defined.
    pub method: &'a str,
    /// For `inline`, the base64 of key||salt; for other methods the raw key
    /// info.
    pub key_salt: &'a str,
    /// Optional master key lifetime.
    pub lifetime: Option<Lifetime>,
    /// Optional MKI.
    pub mki: Option<Mki<'a>>,
}

impl<'a> KeyParam<'a> {
    fn decode(s: &'a str) -> Option<Self> {
        let (method, info) = s.split_once(':')?;
        if method.is_empty() || info.is_empty() {
            return None;
        }
        if method != "inline" {
            // Unknown key methods are carried through opaquely (RFC 4568
            // leaves their syntax to their own specifications).
            return Some(Self {
                method,
                key_salt: info,
                lifetime: None,
                mki: None,
            });
        }
        let mut parts = info.split('|');
        let key_salt = parts.next()?;
        if key_salt.is_empty() || !key_salt.bytes().all(is_base64) {
            return None;
        }
        let mut lifetime = None;
        let mut mki = None;
        for part in parts {
            // Grammar: key-salt ["|" lifetime] ["|" mki]; an MKI contains a
            // ':' and must come last, a lifetime at most once before it.
            if mki.is_some() {
                return None;
            }
            if let Some((v, len)) = part.split_once(':') {
                let length: u8 = digits(len)?;
                if !is_digits(v) || !(1..=128).contains(&length) {
                    return None;
                }
                mki = Some(Mki { value: v, length });
            } else if lifetime.is_none() {
                lifetime = Some(decode_lifetime(part)?);
            } else {
                return None;
            }
        }
        Some(Self {
            method,
            key_salt,
            lifetime,
            mki,
        })
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

fn decode_lifetime(s: &str) -> Option<Lifetime> {
    match s.strip_prefix("2^") {
        Some(exp) => {
            let n: u8 = digits(exp)?;
            (n <= 63).then_some(Lifetime::PowerOfTwo(n))
        }
        None => digits(s).map(Lifetime::Packets),
    }
}

/// `a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]` (RFC 4568)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto<'a> {
    /// Tag (1..=9 digits).
    pub tag: u32,
    /// Crypto suite, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: &'a str,
    /// Key parameters (`;`-separated in the attribute).
    pub key_params: Vec<KeyParam<'a>>,
    /// Session parameters such as `UNENCRYPTED_SRTCP` or `KDR=1`, raw.
    pub session_params: Vec<&'a str>,
}

impl<'a> Crypto<'a> {
    /// Decodes the value of an `a=crypto` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        Self::decode(value(attr, SdpErrorKind::BadCrypto)?)
            .map_or_else(|| fail(attr, SdpErrorKind::BadCrypto), Ok)
    }

    fn decode(v: &'a str) -> Option<Self> {
        let mut w = words(v);
        let tag_s = w.next()?;
        if tag_s.len() > 9 {
            return None;
        }
        let tag = digits(tag_s)?;
        let suite = w.next()?;
        let key_params = w
            .next()?
            .split(';')
            .map(KeyParam::decode)
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            tag,
            suite,
            key_params,
            session_params: w.collect(),
        })
    }
}

/// ICE candidate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateType<'a> {
    /// `host`
    Host,
    /// `srflx`
    ServerReflexive,
    /// `prflx`
    PeerReflexive,
    /// `relay`
    Relay,
    /// Any other token.
    Other(&'a str),
}

impl<'a> CandidateType<'a> {
    fn from_token(t: &'a str) -> Self {
        match t {
            "host" => Self::Host,
            "srflx" => Self::ServerReflexive,
            "prflx" => Self::PeerReflexive,
            "relay" => Self::Relay,
            other => Self::Other(other),
        }
    }

    /// The token as written in SDP.
    pub fn as_str(&self) -> &'a str {
        match *self {
            Self::Host => "host",
            Self::ServerReflexive => "srflx",
            Self::PeerReflexive => "prflx",
            Self::Relay => "relay",
            Self::Other(t) => t,
        }
    }
}

/// `a=candidate:...` (RFC 8839 §5.1)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Foundation, 1..=32 ice-chars.
    pub foundation: &'a str,
    /// Component id (1 = RTP, 2 = RTCP).
    pub component: u16,
    /// Transport, e.g. `UDP`, `udp`, `TCP`.
    pub transport: &'a str,
    /// Priority.
    pub priority: u32,
    /// Connection address (IP or FQDN / mDNS name).
    pub address: &'a str,
    /// Port.
    pub port: u16,
    /// Candidate type.
    pub kind: CandidateType<'a>,
    /// `raddr`, if present.
    pub raddr: Option<&'a str>,
    /// `rport`, if present.
    pub rport: Option<u16>,
    /// Extension name/value pairs, e.g. `("generation", "0")`.
    pub extensions: Vec<(&'a str, &'a str)>,
}

fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

impl<'a> Candidate<'a> {
    /// Decodes the value of an `a=candidate` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        Self::decode(value(attr, SdpErrorKind::BadCandidate)?)
            .map_or_else(|| fail(attr, SdpErrorKind::BadCandidate), Ok)
    }

    fn decode(v: &'a str) -> Option<Self> {
        let mut w = words(v);
        let foundation = w.next()?;
        if foundation.len() > 32 || !foundation.bytes().all(is_ice_char) {
            return None;
        }
        let component_s = w.next()?;
        if component_s.len() > 3 {
            return None;
        }
        let component = digits(component_s)?;
        let transport = w.next()?;
        let priority_s = w.next()?;
        if priority_s.len() > 10 {
            return None;
        }
        let priority = digits(priority_s)?;
        let address = w.next()?;
        let port = lex::port(w.next()?)?;
        if w.next()? != "typ" {
            return None;
        }
        let kind = CandidateType::from_token(w.next()?);
        let mut c = Self {
            foundation,
            component,
            transport,
            priority,
            address,
            port,
            kind,
            raddr: None,
            rport: None,
            extensions: Vec::new(),
        };
        // The rest is name/value pairs; raddr/rport are just the two the RFC
        // names, everything else is an extension we keep.
        while let Some(name) = w.next() {
            let val = w.next()?;
            match name {
                "raddr" if c.raddr.is_none() => c.raddr = Some(val),
                "rport" if c.rport.is_none() => c.rport = Some(lex::port(val)?),
                _ => c.extensions.push((name, val)),
            }
        }
        Some(c)
    }
}

/// `a=ssrc:<ssrc-id> <attribute>[:<value>]` (RFC 5576)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssrc<'a> {
    /// The SSRC.
    pub id: u32,
    /// Source attribute name, e.g. `cname`, `msid`.
    pub attribute: &'a str,
    /// Source attribute value.
    pub value: Option<&'a str>,
}

impl<'a> Ssrc<'a> {
    /// Decodes the value of an `a=ssrc` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        let parsed = value(attr, SdpErrorKind::BadSsrc).ok().and_then(|v| {
            let (id, rest) = v.trim_start_matches(' ').split_once(' ')?;
            let id = digits(id)?;
            let rest = rest.trim_matches(' ');
            let (attribute, value) = match rest.split_once(':') {
                Some((a, v)) => (a, Some(v)),
                None => (rest, None),
            };
            (!attribute.is_empty()).then_some(Self {
                id,
                attribute,
                value,
            })
        });
        parsed.map_or_else(|| fail(attr, SdpErrorKind::BadSsrc), Ok)
    }
}

/// `a=group:<semantics> *(SP <identification-tag>)` (RFC 5888)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'a> {
    /// Semantics, e.g. `BUNDLE`, `LS`, `FID`.
    pub semantics: &'a str,
    /// The `mid` values in the group.
    pub mids: Vec<&'a str>,
}

impl<'a> Group<'a> {
    /// Decodes the value of an `a=group` attribute.
    pub fn from_attribute(attr: &Attribute<'a>) -> Result<Self, SdpError> {
        let v = value(attr, SdpErrorKind::BadGroup)?;
        let mut w = words(v);
        match w.next() {
            Some(semantics) => Ok(Self {
                semantics,
                mids: w.collect(),
            }),
            None => fail(attr, SdpErrorKind::BadGroup),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Loc;

    fn a<'a>(name: &'a str, value: Option<&'a str>) -> Attribute<'a> {
        Attribute {
            name,
            value,
            loc: Loc {
                start: 7,
                end: 7,
                line: 0,
            },
        }
    }

    fn kind_of(r: Result<TypedAttr<'_>, SdpError>) -> SdpErrorKind {
        let e = r.expect_err("should fail");
        assert_eq!(e.offset, 7);
        e.kind
    }

    #[test]
    fn rtpmap() {
        let t = a("rtpmap", Some("111 opus/48000/2")).typed().unwrap();
        assert_eq!(
            t,
            TypedAttr::Rtpmap(Rtpmap {
                payload_type: 111,
                encoding: "opus",
                clock_rate: 48000,
                channels: Some(2)
            })
        );
        let t = a("rtpmap", Some("0 PCMU/8000")).typed().unwrap();
        assert!(matches!(
            t,
            TypedAttr::Rtpmap(Rtpmap { channels: None, .. })
        ));
        for bad in [
            "128 foo/8000",
            "x PCMU/8000",
            "0 PCMU",
            "0 /8000",
            "0 PCMU/8000/1/2",
            "0 PCMU/8000 extra",
            "0 PCMU/abc",
            "",
        ] {
            assert_eq!(
                kind_of(a("rtpmap", Some(bad)).typed()),
                SdpErrorKind::BadRtpmap,
                "{bad}"
            );
        }
        assert_eq!(kind_of(a("rtpmap", None).typed()), SdpErrorKind::BadRtpmap);
    }

    #[test]
    fn fmtp() {
        let attr = a(
            "fmtp",
            Some("96 profile-level-id=42e01f; packetization-mode=1"),
        );
        let TypedAttr::Fmtp(f) = attr.typed().unwrap() else {
            panic!()
        };
        assert_eq!(f.format, "96");
        let p: Vec<_> = f.params().collect();
        assert_eq!(
            p,
            vec![
                ("profile-level-id", Some("42e01f")),
                ("packetization-mode", Some("1"))
            ]
        );
        let TypedAttr::Fmtp(f) = a("fmtp", Some("101 0-15")).typed().unwrap() else {
            panic!()
        };
        assert_eq!(f.params().collect::<Vec<_>>(), vec![("0-15", None)]);
        let TypedAttr::Fmtp(f) = a("fmtp", Some("101")).typed().unwrap() else {
            panic!()
        };
        assert_eq!(f.params, "");
        assert_eq!(kind_of(a("fmtp", Some("")).typed()), SdpErrorKind::BadFmtp);
    }

    #[test]
    fn ptime_and_maxptime() {
        assert_eq!(
            a("ptime", Some("20")).typed().unwrap(),
            TypedAttr::Ptime(20)
        );
        assert_eq!(
            a("maxptime", Some("120")).typed().unwrap(),
            TypedAttr::Maxptime(120)
        );
        for bad in [Some("x"), Some("20.5"), Some(""), None, Some("1 2")] {
            assert_eq!(kind_of(a("ptime", bad).typed()), SdpErrorKind::BadPtime);
        }
    }

    #[test]
    fn directions() {
        for (n, d) in [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::SendOnly),
            ("recvonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
        ] {
            assert_eq!(a(n, None).typed().unwrap(), TypedAttr::Direction(d));
            assert_eq!(d.as_str(), n);
            assert_eq!(d.reversed().reversed(), d);
            assert_eq!(
                kind_of(a(n, Some("x")).typed()),
                SdpErrorKind::BadAttributeValue
            );
        }
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
    }

    #[test]
    fn rtcp() {
        let TypedAttr::Rtcp(r) = a("rtcp", Some("53020")).typed().unwrap() else {
            panic!()
        };
        assert_eq!((r.port, r.address), (53020, None));
        let TypedAttr::Rtcp(r) = a("rtcp", Some("53020 IN IP6 2001:db8::1")).typed().unwrap()
        else {
            panic!()
        };
        assert_eq!(r.nettype, Some("IN"));
        assert_eq!(r.addrtype, Some("IP6"));
        assert_eq!(r.address, Some("2001:db8::1"));
        for bad in ["", "70000", "1 IN IP4", "1 IN IP4 a b", "x"] {
            assert_eq!(
                kind_of(a("rtcp", Some(bad)).typed()),
                SdpErrorKind::BadRtcp,
                "{bad}"
            );
        }
    }

    #[test]
    fn flags() {
        assert_eq!(a("rtcp-mux", None).typed().unwrap(), TypedAttr::RtcpMux);
        assert_eq!(a("ice-lite", None).typed().unwrap(), TypedAttr::IceLite);
        assert_eq!(
            a("end-of-candidates", None).typed().unwrap(),
            TypedAttr::EndOfCandidates
        );
        assert_eq!(
            kind_of(a("rtcp-mux", Some("")).typed()),
            SdpErrorKind::BadAttributeValue
        );
    }

    #[test]
    fn crypto_full() {
        let v = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4 KDR=1 UNENCRYPTED_SRTCP";
        let TypedAttr::Crypto(c) = a("crypto", Some(v)).typed().unwrap() else {
            panic!()
        };
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(c.key_params.len(), 1);
        let k = c.key_params[0];
        assert_eq!(k.method, "inline");
        assert_eq!(k.key_salt, "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
        assert_eq!(k.lifetime, Some(Lifetime::PowerOfTwo(20)));
        assert_eq!(k.lifetime.unwrap().packets(), 1 << 20);
        assert_eq!(
            k.mki,
            Some(Mki {
                value: "1",
                length: 4
            })
        );
        assert_eq!(c.session_params, vec!["KDR=1", "UNENCRYPTED_SRTCP"]);
    }

    #[test]
    fn crypto_variants() {
        // Decimal lifetime, MKI without lifetime, several keys, unknown method.
        let v = "2 AES_CM_128_HMAC_SHA1_32 inline:QUJD|1048576;inline:REVG|5:2";
        let TypedAttr::Crypto(c) = a("crypto", Some(v)).typed().unwrap() else {
            panic!()
        };
        assert_eq!(c.key_params[0].lifetime, Some(Lifetime::Packets(1_048_576)));
        assert_eq!(c.key_params[0].mki, None);
        assert_eq!(c.key_params[1].lifetime, None);
        assert_eq!(
            c.key_params[1].mki,
            Some(Mki {
                value: "5",
                length: 2
            })
        );
        let TypedAttr::Crypto(c) = a("crypto", Some("3 FOO other:opaque|stuff"))
            .typed()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.key_params[0].method, "other");
        assert_eq!(c.key_params[0].key_salt, "opaque|stuff");
        assert!(c.session_params.is_empty());
    }

    #[test]
    fn crypto_rejects() {
        for bad in [
            "",
            "1",
            "1 SUITE",
            "x SUITE inline:QUJD",
            "1234567890 SUITE inline:QUJD",
            "1 SUITE inline:",
            "1 SUITE inline:QU*D",
            "1 SUITE inline:QUJD|2^64",
            "1 SUITE inline:QUJD|2^x",
            "1 SUITE inline:QUJD|1:0",
            "1 SUITE inline:QUJD|1:129",
            "1 SUITE inline:QUJD|1:4|2^20",
            "1 SUITE inline:QUJD|2^20|2^20",
            "1 SUITE inline:QUJD|a:4",
            "1 SUITE noinfo",
            "1 SUITE inline:QUJD;",
        ] {
            assert_eq!(
                kind_of(a("crypto", Some(bad)).typed()),
                SdpErrorKind::BadCrypto,
                "{bad}"
            );
        }
    }

    #[test]
    fn candidate() {
        let v = "1 1 UDP 2130706431 192.168.1.10 7078 typ host";
        let TypedAttr::Candidate(c) = a("candidate", Some(v)).typed().unwrap() else {
            panic!()
        };
        assert_eq!(c.foundation, "1");
        assert_eq!(c.component, 1);
        assert_eq!(c.transport, "UDP");
        assert_eq!(c.priority, 2130706431);
        assert_eq!(c.address, "192.168.1.10");
        assert_eq!(c.port, 7078);
        assert_eq!(c.kind, CandidateType::Host);
        assert_eq!(c.kind.as_str(), "host");
        let v = "842163049 1 udp 1677729535 203.0.113.7 50000 typ srflx raddr 10.0.0.2 rport 50000 generation 0 network-cost 999";
        let TypedAttr::Candidate(c) = a("candidate", Some(v)).typed().unwrap() else {
            panic!()
        };
        assert_eq!(c.kind, CandidateType::ServerReflexive);
        assert_eq!(c.raddr, Some("10.0.0.2"));
        assert_eq!(c.rport, Some(50000));
        assert_eq!(
            c.extensions,
            vec![("generation", "0"), ("network-cost", "999")]
        );
        let v = "a+/ 2 tcp 1 x.local 9 typ weird tcptype active";
        let TypedAttr::Candidate(c) = a("candidate", Some(v)).typed().unwrap() else {
            panic!()
        };
        assert_eq!(c.kind, CandidateType::Other("weird"));
        for bad in [
            "",
            "1 1 UDP 1 1.2.3.4 5 host",
            "1 1 UDP 1 1.2.3.4 5 typ",
            "1 1 UDP 1 1.2.3.4 70000 typ host",
            "1 1 UDP 99999999999 1.2.3.4 5 typ host",
            "1 1234 UDP 1 1.2.3.4 5 typ host",
            "f* 1 UDP 1 1.2.3.4 5 typ host",
            "1 1 UDP 1 1.2.3.4 5 typ host raddr",
            "1 1 UDP 1 1.2.3.4 5 typ host rport x",
            "123456789012345678901234567890123 1 UDP 1 1.2.3.4 5 typ host",
        ] {
            assert_eq!(
                kind_of(a("candidate", Some(bad)).typed()),
                SdpErrorKind::BadCandidate,
                "{bad}"
            );
        }
    }

    #[test]
    fn ice_misc() {
        assert_eq!(
            a("ice-ufrag", Some("F7gI")).typed().unwrap(),
            TypedAttr::IceUfrag("F7gI")
        );
        assert_eq!(
            a("ice-pwd", Some("x9cml/YzichV2+XlhiMu8g"))
                .typed()
                .unwrap(),
            TypedAttr::IcePwd("x9cml/YzichV2+XlhiMu8g")
        );
        assert_eq!(
            a("ice-options", Some("trickle ice2")).typed().unwrap(),
            TypedAttr::IceOptions(vec!["trickle", "ice2"])
        );
        assert_eq!(kind_of(a("ice-ufrag", None).typed()), SdpErrorKind::BadIce);
        assert_eq!(
            kind_of(a("ice-pwd", Some("a b")).typed()),
            SdpErrorKind::BadIce
        );
        assert_eq!(
            kind_of(a("ice-options", Some(" ")).typed()),
            SdpErrorKind::BadIce
        );
    }

    #[test]
    fn mid_ssrc_group_setup_fingerprint() {
        assert_eq!(a("mid", Some("0")).typed().unwrap(), TypedAttr::Mid("0"));
        assert_eq!(kind_of(a("mid", Some("")).typed()), SdpErrorKind::BadMid);
        assert_eq!(
            a("ssrc", Some("3735928559 cname:user@host"))
                .typed()
                .unwrap(),
            TypedAttr::Ssrc(Ssrc {
                id: 3735928559,
                attribute: "cname",
                value: Some("user@host")
            })
        );
        assert_eq!(
            a("ssrc", Some("1 foo")).typed().unwrap(),
            TypedAttr::Ssrc(Ssrc {
                id: 1,
                attribute: "foo",
                value: None
            })
        );
        for bad in ["1", "x cname:a", "4294967296 cname:a", "1 :v"] {
            assert_eq!(
                kind_of(a("ssrc", Some(bad)).typed()),
                SdpErrorKind::BadSsrc,
                "{bad}"
            );
        }
        assert_eq!(
            a("group", Some("BUNDLE 0 1")).typed().unwrap(),
            TypedAttr::Group(Group {
                semantics: "BUNDLE",
                mids: vec!["0", "1"]
            })
        );
        assert_eq!(
            kind_of(a("group", Some("")).typed()),
            SdpErrorKind::BadGroup
        );
        assert_eq!(
            a("setup", Some("actpass")).typed().unwrap(),
            TypedAttr::Setup("actpass")
        );
        assert_eq!(
            a("fingerprint", Some("sha-256 AB:CD")).typed().unwrap(),
            TypedAttr::Fingerprint("sha-256 AB:CD")
        );
        assert_eq!(
            a("extmap", Some("1 urn:x")).typed().unwrap(),
            TypedAttr::Other
        );
        assert_eq!(a("X-whatever", None).typed().unwrap(), TypedAttr::Other);
    }
}
