//! A sans-IO STUN responder (RFC 5389) for the keepalives that SIP user agents send to the SIP
//! UDP port (RFC 5626 section 4.4.2 and 8): a Binding Request is answered with a Binding Success
//! Response that carries the source address as XOR-MAPPED-ADDRESS.
//!
//! The crate owns no socket. The transport hands it each datagram:
//!
//! ```
//! use stun::{respond, Response};
//! # let datagram = stun::MessageBuilder::new(stun::BINDING, stun::Class::Request,
//! #     stun::TransactionId([7; 12])).finish(true);
//! let source = "192.0.2.1:32853".parse().unwrap();
//! if stun::is_stun(&datagram) {
//!     match respond(&datagram, source) {
//!         Response::Success(bytes) | Response::Error { bytes, .. } => { /* send_to(bytes, source) */ let _ = bytes; }
//!         Response::Discard(why) => { /* count it */ let _ = why; }
//!     }
//! }
//! ```
//!
//! Every input is untrusted: [`parse`] checks the header and every attribute's bounds once and
//! never panics or allocates; accessors on a parsed [`Message`] cannot fail afterwards.
//!
//! What is not here: authentication (MESSAGE-INTEGRITY is neither checked nor produced; the
//! RFC 5626 keepalive usage does not use it), the client side and TURN.

mod build;
mod crc;
mod parse;
mod server;

pub use build::{BuildError, MessageBuilder};
pub use crc::{crc32, fingerprint};
pub use parse::{decode_xor_address, parse, Attribute, Attributes, Error, Message};
pub use server::{respond, Discard, Response};

/// The fixed value at bytes 4..8 of every RFC 5389 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the message header.
pub const HEADER_LEN: usize = 20;

/// The Binding method.
pub const BINDING: u16 = 0x001;

/// XOR value applied to the CRC-32 in FINGERPRINT (RFC 5389 15.5).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Attribute types used here (RFC 5389 18.2, RFC 8445 for the ICE ones).
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const ALTERNATE_SERVER: u16 = 0x8023;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;

    /// Types from 0x0000 to 0x7FFF must be understood (RFC 5389 15).
    pub fn is_comprehension_required(t: u16) -> bool {
        t < 0x8000
    }

    /// The comprehension-required attributes this responder understands. USERNAME,
    /// MESSAGE-INTEGRITY, REALM and NONCE are understood in the sense that this usage does not
    /// authenticate and ignores them; PRIORITY and USE-CANDIDATE are ICE's and ignored.
    pub fn is_known(t: u16) -> bool {
        matches!(
            t,
            MAPPED_ADDRESS
                | USERNAME
                | MESSAGE_INTEGRITY
                | ERROR_CODE
                | UNKNOWN_ATTRIBUTES
                | REALM
                | NONCE
                | XOR_MAPPED_ADDRESS
                | PRIORITY
                | USE_CANDIDATE
        )
    }
}

/// The message class (RFC 5389 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    fn from_bits(b: u16) -> Class {
        match b & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// The 96-bit transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

/// The 14-bit message type from a method (12 bits) and a class: the class bits C1 and C0 sit at
/// bits 8 and 4, the method bits around them (RFC 5389 figure 3).
pub fn message_type(method: u16, class: Class) -> u16 {
    let m = method & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((c & 1) << 4) | ((m & 0x0070) << 1) | ((c & 2) << 7) | ((m & 0x0F80) << 2)
}

/// Splits a message type into method and class.
pub fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let class = ((t >> 4) & 1) | ((t >> 7) & 2);
    (method, Class::from_bits(class))
}

/// The quick test a demultiplexer applies (RFC 5389 6 and 7.3, RFC 7983 style): at least a
/// header, the two most significant bits zero, the magic cookie, and a length that is a multiple
/// of 4 and matches the datagram. A SIP message starts with a letter or CR/LF, so it never
/// passes.
pub fn is_stun(buf: &[u8]) -> bool {
    if buf.len() < HEADER_LEN || buf[0] & 0xC0 != 0 {
        return false;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) == MAGIC_COOKIE
        && len.is_multiple_of(4)
        && HEADER_LEN + len == buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_round_trip() {
        assert_eq!(message_type(BINDING, Class::Request), 0x0001);
        assert_eq!(message_type(BINDING, Class::Indication), 0x0011);
        assert_eq!(message_type(BINDING, Class::SuccessResponse), 0x0101);
        assert_eq!(message_type(BINDING, Class::ErrorResponse), 0x0111);
        for m in [0u16, 1, 2, 0x0F, 0x10, 0x7F, 0x80, 0xABC, 0xFFF] {
            for c in [
                Class::Request,
                Class::Indication,
                Class::SuccessResponse,
                Class::ErrorResponse,
            ] {
                let t = message_type(m, c);
                assert_eq!(t & 0xC000, 0);
                assert_eq!(split_type(t), (m, c));
            }
        }
    }

    #[test]
    fn is_stun_checks_the_header() {
        let mut m = vec![0u8; 20];
        m[1] = 1;
        m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(is_stun(&m));
        assert!(!is_stun(&m[..19]));
        let mut bad = m.clone();
        bad[0] = 0x40;
        assert!(!is_stun(&bad));
        let mut bad = m.clone();
        bad[4] = 0;
        assert!(!is_stun(&bad));
        let mut bad = m.clone();
        bad[3] = 4; // says 4 bytes of attributes, has none
        assert!(!is_stun(&bad));
        let mut odd = m.clone();
        odd[3] = 2;
        odd.extend_from_slice(&[0, 0]);
        assert!(!is_stun(&odd));
        assert!(!is_stun(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"));
        assert!(!is_stun(b"\r\n\r\n"));
    }
}
