//! Checked parsing: after [`parse`] succeeds every attribute lies within the buffer, so no
//! accessor can fail or panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{attr, split_type, Class, TransactionId, HEADER_LEN, MAGIC_COOKIE};

/// Why a datagram is not an acceptable STUN message. Every one of these is silently discarded by
/// a server (RFC 5389 7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than the 20-byte header.
    TooShort,
    /// The first two bits are not zero, or the magic cookie is missing (RFC 3489 messages too).
    NotStun,
    /// The length field is not a multiple of 4 or does not match the datagram.
    BadLength,
    /// An attribute runs past the end of the message; `offset` is where its header starts.
    AttributeOverrun { offset: usize },
    /// A FINGERPRINT attribute that is not 4 bytes long, or is followed by another attribute.
    MisplacedFingerprint { offset: usize },
    /// The FINGERPRINT value does not match the message.
    FingerprintMismatch,
}

impl Error {
    pub fn as_str(self) -> &'static str {
        match self {
            Error::TooShort => "shorter than a STUN header",
            Error::NotStun => "no STUN magic cookie",
            Error::BadLength => "bad STUN message length",
            Error::AttributeOverrun { .. } => "STUN attribute overruns the message",
            Error::MisplacedFingerprint { .. } => "misplaced or malformed FINGERPRINT",
            Error::FingerprintMismatch => "FINGERPRINT mismatch",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AttributeOverrun { offset } | Error::MisplacedFingerprint { offset } => {
                write!(f, "{} at byte {offset}", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl std::error::Error for Error {}

/// A checked STUN message borrowed from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    buf: &'a [u8],
    method: u16,
    class: Class,
    fingerprint: bool,
}

/// One attribute: its type and its value without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub typ: u16,
    pub value: &'a [u8],
    /// Offset of the attribute header in the message.
    pub offset: usize,
}

/// Walks the attributes of a checked message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Attribute<'a>> {
        let (typ, len) = read_tlv_header(self.buf, self.pos)?;
        let start = self.pos + 4;
        let value = self.buf.get(start..start + len)?;
        let offset = self.pos;
        self.pos = start + padded(len);
        Some(Attribute { typ, value, offset })
    }
}

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn read_tlv_header(buf: &[u8], pos: usize) -> Option<(u16, usize)> {
    let h = buf.get(pos..pos + 4)?;
    Some((
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]) as usize,
    ))
}

/// Parses and checks a STUN message: header (RFC 5389 6, 7.3), every attribute's bounds, and the
/// FINGERPRINT when present (it must be last, 15.5). Never panics, never allocates.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, Error> {
    if buf.len() < HEADER_LEN {
        return Err(Error::TooShort);
    }
    if buf[0] & 0xC0 != 0 || u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != MAGIC_COOKIE {
        return Err(Error::NotStun);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if !len.is_multiple_of(4) || HEADER_LEN + len != buf.len() {
        return Err(Error::BadLength);
    }
    let (method, class) = split_type(u16::from_be_bytes([buf[0], buf[1]]));
    let mut pos = HEADER_LEN;
    let mut fingerprint = false;
    while pos < buf.len() {
        let Some((typ, alen)) = read_tlv_header(buf, pos) else {
            return Err(Error::AttributeOverrun { offset: pos });
        };
        let end = pos + 4 + padded(alen);
        if end > buf.len() {
            return Err(Error::AttributeOverrun { offset: pos });
        }
        if typ == attr::FINGERPRINT {
            // It must be the last attribute, 4 bytes long.
            if alen != 4 || end != buf.len() {
                return Err(Error::MisplacedFingerprint { offset: pos });
            }
            let v = &buf[pos + 4..pos + 8];
            let got = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            if got != crate::fingerprint(&buf[..pos]) {
                return Err(Error::FingerprintMismatch);
            }
            fingerprint = true;
        }
        pos = end;
    }
    Ok(Message {
        buf,
        method,
        class,
        fingerprint,
    })
}

impl<'a> Message<'a> {
    /// The 12-bit method.
    pub fn method(&self) -> u16 {
        self.method
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn transaction_id(&self) -> TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.buf[8..20]);
        TransactionId(id)
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Every attribute in order (FINGERPRINT included).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            buf: self.buf,
            pos: HEADER_LEN,
        }
    }

    /// The value of the first attribute of type `typ`.
    pub fn attribute(&self, typ: u16) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.typ == typ).map(|a| a.value)
    }

    /// Whether the message ends with a (verified) FINGERPRINT.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint
    }

    pub fn has_message_integrity(&self) -> bool {
        self.attribute(attr::MESSAGE_INTEGRITY).is_some()
    }

    /// The comprehension-required attribute types this responder does not understand, in order,
    /// duplicates removed, at most `N` of them (the rest are not reported). Attributes after
    /// MESSAGE-INTEGRITY are ignored (RFC 5389 15.4). Returns the array and how many it holds.
    pub fn unknown_comprehension_required<const N: usize>(&self) -> ([u16; N], usize) {
        let mut out = [0u16; N];
        let mut n = 0;
        for a in self.attributes() {
            if a.typ == attr::MESSAGE_INTEGRITY {
                break;
            }
            if attr::is_comprehension_required(a.typ)
                && !attr::is_known(a.typ)
                && !out[..n].contains(&a.typ)
                && n < N
            {
                out[n] = a.typ;
                n += 1;
            }
        }
        (out, n)
    }

    /// The address in the first XOR-MAPPED-ADDRESS attribute, if any decodes.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        let tid = self.transaction_id();
        self.attributes()
            .filter(|a| a.typ == attr::XOR_MAPPED_ADDRESS)
            .find_map(|a| decode_xor_address(a.value, &tid))
    }
}

/// Decodes an XOR-MAPPED-ADDRESS value (RFC 5389 15.2). `None` for an unknown family or a wrong
/// length.
pub fn decode_xor_address(v: &[u8], tid: &TransactionId) -> Option<SocketAddr> {
    let family = *v.get(1)?;
    let xport = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
    let port = xport ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    match (family, v.len()) {
        (0x01, 8) => {
            let mut a = [0u8; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        (0x02, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(&tid.0);
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}
