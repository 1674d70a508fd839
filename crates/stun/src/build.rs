//! Building messages: header, attributes padded to 4 bytes with zeros, optional FINGERPRINT.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::{attr, message_type, Class, TransactionId, HEADER_LEN, MAGIC_COOKIE};

/// Why an attribute was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildError {
    /// The value, or the message with it, would not fit the 16-bit length fields.
    TooLarge,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("STUN attribute or message too large")
    }
}

impl std::error::Error for BuildError {}

/// Writes one message. The header's length field is kept right after every attribute.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
}

/// Room kept for a FINGERPRINT so that `finish(true)` never overflows the length field.
const FINGERPRINT_ROOM: usize = 8;
const MAX_BODY: usize = 0xFFFC - FINGERPRINT_ROOM;

impl MessageBuilder {
    pub fn new(method: u16, class: Class, tid: TransactionId) -> MessageBuilder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&tid.0);
        MessageBuilder { buf }
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends an attribute, padded with zeros to a multiple of 4 bytes.
    pub fn attribute(&mut self, typ: u16, value: &[u8]) -> Result<&mut Self, BuildError> {
        let body = self.buf.len() - HEADER_LEN;
        let add = 4 + ((value.len() + 3) & !3);
        if value.len() > usize::from(u16::MAX) || body + add > MAX_BODY {
            return Err(BuildError::TooLarge);
        }
        self.buf.extend_from_slice(&typ.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(self.buf.len() + (add - 4 - value.len()), 0);
        self.set_len();
        Ok(self)
    }

    /// XOR-MAPPED-ADDRESS (RFC 5389 15.2). An IPv4-mapped IPv6 address (from a dual-stack
    /// socket) is written as the IPv4 address it is.
    pub fn xor_mapped_address(&mut self, addr: SocketAddr) -> Result<&mut Self, BuildError> {
        let v = encode_xor_address(addr, &self.tid());
        self.attribute(attr::XOR_MAPPED_ADDRESS, &v)
    }

    /// ERROR-CODE (RFC 5389 15.6): class and number from `code` (300..=699), then the reason.
    pub fn error_code(&mut self, code: u16, reason: &str) -> Result<&mut Self, BuildError> {
        let code = code.clamp(300, 699);
        let mut v = Vec::with_capacity(4 + reason.len());
        v.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        v.extend_from_slice(reason.as_bytes());
        self.attribute(attr::ERROR_CODE, &v)
    }

    /// UNKNOWN-ATTRIBUTES (RFC 5389 15.9).
    pub fn unknown_attributes(&mut self, types: &[u16]) -> Result<&mut Self, BuildError> {
        let v: Vec<u8> = types.iter().flat_map(|t| t.to_be_bytes()).collect();
        self.attribute(attr::UNKNOWN_ATTRIBUTES, &v)
    }

    fn tid(&self) -> TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.buf[8..20]);
        TransactionId(id)
    }

    /// The message, with a FINGERPRINT as its last attribute when asked (RFC 5389 15.5: the
    /// CRC covers the message up to the attribute, with the length already counting it).
    pub fn finish(mut self, fingerprint: bool) -> Vec<u8> {
        if fingerprint {
            // The length must count the whole FINGERPRINT attribute before the CRC is taken.
            let at = self.buf.len();
            let len = (at + 8 - HEADER_LEN) as u16;
            self.buf[2..4].copy_from_slice(&len.to_be_bytes());
            let fp = crate::fingerprint(&self.buf[..at]);
            self.buf.extend_from_slice(&attr::FINGERPRINT.to_be_bytes());
            self.buf.extend_from_slice(&4u16.to_be_bytes());
            self.buf.extend_from_slice(&fp.to_be_bytes());
        }
        self.buf
    }
}

/// The XOR-MAPPED-ADDRESS value for `addr`.
pub fn encode_xor_address(addr: SocketAddr, tid: &TransactionId) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let xport = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => {
            let mut v = vec![0, 0x01];
            v.extend_from_slice(&xport.to_be_bytes());
            v.extend(ip.octets().iter().zip(cookie).map(|(a, k)| a ^ k));
            v
        }
        IpAddr::V6(ip) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(&tid.0);
            let mut v = vec![0, 0x02];
            v.extend_from_slice(&xport.to_be_bytes());
            v.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
            v
        }
    }
}
