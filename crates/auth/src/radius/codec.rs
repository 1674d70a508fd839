//! RADIUS packets (RFC 2865 section 3): encoding, checked decoding, the Request and Response
//! Authenticators, User-Password hiding, and Message-Authenticator (RFC 3579 section 3.2,
//! RFC 2869 section 5.14).

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Smallest and largest packet (RFC 2865 section 3).
pub const MIN_PACKET: usize = 20;
pub const MAX_PACKET: usize = 4096;
/// Largest attribute value (the length octet counts the two header octets).
pub const MAX_ATTR_VALUE: usize = 253;

/// Packet codes used here.
pub mod code {
    pub const ACCESS_REQUEST: u8 = 1;
    pub const ACCESS_ACCEPT: u8 = 2;
    pub const ACCESS_REJECT: u8 = 3;
    pub const ACCESS_CHALLENGE: u8 = 11;
}

/// Attribute types used here (RFC 2865, RFC 2869, RFC 5090, draft-sterman-aaa-sip).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const SERVICE_TYPE: u8 = 6;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const NAS_IPV6_ADDRESS: u8 = 95;
    // RFC 5090.
    pub const DIGEST_RESPONSE: u8 = 103;
    pub const DIGEST_REALM: u8 = 104;
    pub const DIGEST_NONCE: u8 = 105;
    pub const DIGEST_RESPONSE_AUTH: u8 = 106;
    pub const DIGEST_NEXTNONCE: u8 = 107;
    pub const DIGEST_METHOD: u8 = 108;
    pub const DIGEST_URI: u8 = 109;
    pub const DIGEST_QOP: u8 = 110;
    pub const DIGEST_ALGORITHM: u8 = 111;
    pub const DIGEST_ENTITY_BODY_HASH: u8 = 112;
    pub const DIGEST_CNONCE: u8 = 113;
    pub const DIGEST_NONCE_COUNT: u8 = 114;
    pub const DIGEST_USERNAME: u8 = 115;
    pub const DIGEST_OPAQUE: u8 = 116;
    pub const DIGEST_HA1: u8 = 121;
    pub const SIP_AOR: u8 = 122;
    // draft-sterman-aaa-sip-00 (what FreeRADIUS 3.x rlm_digest reads).
    pub const STERMAN_DIGEST_RESPONSE: u8 = 206;
    pub const STERMAN_DIGEST_ATTRIBUTES: u8 = 207;
}

/// Service-Type value for SIP (RFC 5090 section 3.2: Sip-Session).
pub const SERVICE_TYPE_SIP_SESSION: u32 = 15;

/// Why a datagram is not a usable RADIUS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("packet shorter than its header")]
    TooShort,
    #[error("length field {0} disagrees with the datagram")]
    BadLength(usize),
    #[error("attribute at offset {0} is malformed")]
    BadAttribute(usize),
    #[error("attribute value longer than 253 bytes")]
    ValueTooLong,
    #[error("packet longer than 4096 bytes")]
    PacketTooLong,
    #[error("Message-Authenticator has the wrong length")]
    BadMessageAuthenticatorLength,
}

/// A decoded packet. Attributes in order; values borrowed as owned copies (packets are small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: u8,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub attributes: Vec<(u8, Vec<u8>)>,
}

impl Packet {
    /// The first value of attribute `t`.
    pub fn attr(&self, t: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_slice())
    }

    /// Parses a datagram. Octets after the Length field's end are padding and ignored (RFC 2865
    /// section 3); a Length beyond the datagram is an error.
    pub fn decode(b: &[u8]) -> Result<Packet, CodecError> {
        let head = b.get(..MIN_PACKET).ok_or(CodecError::TooShort)?;
        let (code, identifier) = (head[0], head[1]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if !(MIN_PACKET..=MAX_PACKET).contains(&len) || len > b.len() {
            return Err(CodecError::BadLength(len));
        }
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&head[4..20]);
        let mut attributes = Vec::new();
        let mut off = MIN_PACKET;
        while off < len {
            let t = *b.get(off).ok_or(CodecError::BadAttribute(off))?;
            let l = usize::from(*b.get(off + 1).ok_or(CodecError::BadAttribute(off))?);
            if l < 2 || off + l > len {
                return Err(CodecError::BadAttribute(off));
            }
            let v = b
                .get(off + 2..off + l)
                .ok_or(CodecError::BadAttribute(off))?;
            if t == attr::MESSAGE_AUTHENTICATOR && v.len() != 16 {
                return Err(CodecError::BadMessageAuthenticatorLength);
            }
            attributes.push((t, v.to_vec()));
            off += l;
        }
        Ok(Packet {
            code,
            identifier,
            authenticator,
            attributes,
        })
    }
}

/// Builds packet bytes: header, then attributes in order. With `message_authenticator`, an
/// all-zero Message-Authenticator goes first (RFC 3579 section 3.2; first, as the BlastRADIUS
/// advisory recommends) for [`sign_message_authenticator`] to fill in.
pub fn encode(
    code: u8,
    identifier: u8,
    authenticator: &[u8; 16],
    attributes: &[(u8, Vec<u8>)],
    message_authenticator: bool,
) -> Result<Vec<u8>, CodecError> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&[code, identifier, 0, 0]);
    b.extend_from_slice(authenticator);
    if message_authenticator {
        b.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        b.extend_from_slice(&[0; 16]);
    }
    for (t, v) in attributes {
        if v.len() > MAX_ATTR_VALUE {
            return Err(CodecError::ValueTooLong);
        }
        b.push(*t);
        b.push((v.len() + 2) as u8);
        b.extend_from_slice(v);
    }
    if b.len() > MAX_PACKET {
        return Err(CodecError::PacketTooLong);
    }
    let len = (b.len() as u16).to_be_bytes();
    b[2] = len[0];
    b[3] = len[1];
    Ok(b)
}

/// Offset of the Message-Authenticator value in encoded bytes.
fn message_authenticator_offset(b: &[u8]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])).min(b.len());
    let mut off = MIN_PACKET;
    while off + 2 <= len {
        let t = b[off];
        let l = usize::from(b[off + 1]);
        if l < 2 {
            return None;
        }
        if t == attr::MESSAGE_AUTHENTICATOR && l == 18 && off + 18 <= len {
            return Some(off + 2);
        }
        off += l;
    }
    None
}

fn hmac_md5(secret: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = match Hmac::<Md5>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0; 16],
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Fills in the Message-Authenticator of an encoded request: HMAC-MD5 over the whole packet
/// with the attribute's value zeroed (RFC 3579 section 3.2). A request without one is left as
/// it is.
pub fn sign_message_authenticator(b: &mut [u8], secret: &[u8]) {
    if let Some(off) = message_authenticator_offset(b) {
        b[off..off + 16].fill(0);
        let mac = hmac_md5(secret, &[b]);
        b[off..off + 16].copy_from_slice(&mac);
    }
}

/// Response Authenticator = MD5(Code | ID | Length | Request Authenticator | Attributes |
/// Secret), RFC 2865 section 3.
pub fn response_authenticator(resp: &[u8], request_auth: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(resp.get(..4).unwrap_or(&[]));
    h.update(request_auth);
    h.update(resp.get(MIN_PACKET..).unwrap_or(&[]));
    h.update(secret);
    h.finalize().into()
}

/// What is wrong with a response to our request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed: {0}")]
    Codec(#[from] CodecError),
    #[error("Response Authenticator does not match (wrong secret or forged)")]
    BadAuthenticator,
    #[error("Message-Authenticator does not match")]
    BadMessageAuthenticator,
    #[error("Message-Authenticator required but absent")]
    MissingMessageAuthenticator,
}

/// Checks a response's Response Authenticator and, if present (or `require_ma`), its
/// Message-Authenticator, computed with our request's authenticator in place of its own
/// (RFC 3579 section 3.2). Comparisons are constant-time.
pub fn verify_response(
    resp: &[u8],
    request_auth: &[u8; 16],
    secret: &[u8],
    require_ma: bool,
) -> Result<Packet, ResponseError> {
    let p = Packet::decode(resp)?;
    let len = usize::from(u16::from_be_bytes([resp[2], resp[3]]));
    let resp = &resp[..len];
    let expected = response_authenticator(resp, request_auth, secret);
    if !bool::from(expected.ct_eq(&p.authenticator)) {
        return Err(ResponseError::BadAuthenticator);
    }
    match message_authenticator_offset(resp) {
        Some(off) => {
            let mut copy = resp.to_vec();
            copy[4..20].copy_from_slice(request_auth);
            copy[off..off + 16].fill(0);
            let mac = hmac_md5(secret, &[&copy]);
            if !bool::from(mac.ct_eq(&resp[off..off + 16])) {
                return Err(ResponseError::BadMessageAuthenticator);
            }
        }
        None if require_ma => return Err(ResponseError::MissingMessageAuthenticator),
        None => {}
    }
    Ok(p)
}

/// Checks the Message-Authenticator of a request (the server side; used by tests and by a
/// future RADIUS responder).
pub fn verify_request_message_authenticator(req: &[u8], secret: &[u8]) -> bool {
    let Some(off) = message_authenticator_offset(req) else {
        return false;
    };
    let mut copy = req.to_vec();
    copy[off..off + 16].fill(0);
    let mac = hmac_md5(secret, &[&copy]);
    bool::from(mac.ct_eq(&req[off..off + 16]))
}

/// Hides a User-Password (RFC 2865 section 5.2): pad to 16, XOR with MD5 chains of the secret
/// and the Request Authenticator. At most 128 bytes.
pub fn hide_password(password: &[u8], secret: &[u8], request_auth: &[u8; 16]) -> Vec<u8> {
    let mut p = password.get(..128).unwrap_or(password).to_vec();
    let pad = (16 - p.len() % 16) % 16;
    p.resize(p.len() + pad, 0);
    if p.is_empty() {
        p.resize(16, 0);
    }
    let mut prev: Vec<u8> = request_auth.to_vec();
    for chunk in p.chunks_mut(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(&prev);
        let b: [u8; 16] = h.finalize().into();
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev = chunk.to_vec();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::algorithm::unhex;

    fn h(s: &str) -> Vec<u8> {
        unhex(&s.replace([' ', '\n'], "")).unwrap()
    }

    /// RFC 2865 section 7.1: user nemo, password arctangent, secret xyzzy5461.
    #[test]
    fn rfc2865_example() {
        let secret = b"xyzzy5461";
        let req = h("01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
                     98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
                     93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
                     00 1c 05 06 00 00 00 03");
        let p = Packet::decode(&req).unwrap();
        assert_eq!(p.attr(attr::USER_NAME), Some(&b"nemo"[..]));
        assert_eq!(
            hide_password(b"arctangent", secret, &p.authenticator),
            p.attr(attr::USER_PASSWORD).unwrap()
        );
        // Re-encoding gives the same bytes.
        let again = encode(p.code, p.identifier, &p.authenticator, &p.attributes, false).unwrap();
        assert_eq!(again, req);
        let resp = h("02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
                      9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
                      0e 06 c0 a8 01 03");
        let r = verify_response(&resp, &p.authenticator, secret, false).unwrap();
        assert_eq!(r.code, code::ACCESS_ACCEPT);
        assert_eq!(
            verify_response(&resp, &p.authenticator, b"other", false),
            Err(ResponseError::BadAuthenticator)
        );
        assert_eq!(
            verify_response(&resp, &p.authenticator, secret, true),
            Err(ResponseError::MissingMessageAuthenticator)
        );
        let mut tampered = resp.clone();
        tampered[25] ^= 1;
        assert_eq!(
            verify_response(&tampered, &p.authenticator, secret, false),
            Err(ResponseError::BadAuthenticator)
        );
    }

    #[test]
    fn message_authenticator_roundtrip() {
        let secret = b"s3cret";
        let auth = [9u8; 16];
        let attrs = vec![(attr::USER_NAME, b"alice".to_vec())];
        let mut req = encode(code::ACCESS_REQUEST, 7, &auth, &attrs, true).unwrap();
        sign_message_authenticator(&mut req, secret);
        assert!(verify_request_message_authenticator(&req, secret));
        assert!(!verify_request_message_authenticator(&req, b"other"));
        let p = Packet::decode(&req).unwrap();
        assert_eq!(p.attributes[0].0, attr::MESSAGE_AUTHENTICATOR);
        assert_ne!(p.attributes[0].1, vec![0; 16]);
        assert_eq!(p.attributes[1], attrs[0]);

        // A server's Access-Accept with Message-Authenticator, built as RFC 3579 says: MA over
        // the packet with the request authenticator, then the Response Authenticator.
        let mut resp = encode(code::ACCESS_ACCEPT, 7, &auth, &[], true).unwrap();
        sign_message_authenticator(&mut resp, secret);
        let ra = response_authenticator(&resp, &auth, secret);
        resp[4..20].copy_from_slice(&ra);
        assert!(verify_response(&resp, &auth, secret, true).is_ok());
        // Flip a bit of the MA and fix the Response Authenticator: the MA check catches it.
        resp[22] ^= 1;
        let ra = response_authenticator(&resp, &auth, secret);
        resp[4..20].copy_from_slice(&ra);
        assert_eq!(
            verify_response(&resp, &auth, secret, true),
            Err(ResponseError::BadMessageAuthenticator)
        );
    }

    #[test]
    fn malformed_packets() {
        assert_eq!(Packet::decode(&[1; 19]), Err(CodecError::TooShort));
        let mut p = encode(1, 1, &[0; 16], &[(1, b"ab".to_vec())], false).unwrap();
        assert!(Packet::decode(&p).is_ok());
        // Padding after Length is ignored; Length beyond the datagram is not.
        p.push(0);
        assert!(Packet::decode(&p).is_ok());
        p[3] += 2;
        assert!(matches!(Packet::decode(&p), Err(CodecError::BadLength(_))));
        p[3] -= 2;
        p[21] = 1;
        assert!(matches!(
            Packet::decode(&p),
            Err(CodecError::BadAttribute(20))
        ));
        p[21] = 9;
        assert!(matches!(
            Packet::decode(&p),
            Err(CodecError::BadAttribute(20))
        ));
        assert_eq!(
            encode(1, 1, &[0; 16], &[(1, vec![0; 254])], false),
            Err(CodecError::ValueTooLong)
        );
        let many: Vec<_> = (0..20).map(|_| (1u8, vec![0u8; 250])).collect();
        assert_eq!(
            encode(1, 1, &[0; 16], &many, false),
            Err(CodecError::PacketTooLong)
        );
        let bad_ma = encode(
            2,
            1,
            &[0; 16],
            &[(attr::MESSAGE_AUTHENTICATOR, vec![0; 4])],
            false,
        )
        .unwrap();
        assert_eq!(
            Packet::decode(&bad_ma),
            Err(CodecError::BadMessageAuthenticatorLength)
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Packet::decode(&b);
            let _ = verify_response(&b, &[0; 16], b"k", true);
            let _ = verify_request_message_authenticator(&b, b"k");
        }

        #[test]
        fn encode_decode_roundtrip(
            id in 0u8..=255,
            attrs in proptest::collection::vec((1u8..=255, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)), 0..20)
        ) {
            let attrs: Vec<_> = attrs.into_iter().filter(|(t, _)| *t != attr::MESSAGE_AUTHENTICATOR).collect();
            let b = encode(code::ACCESS_REQUEST, id, &[3; 16], &attrs, false).unwrap();
            let p = Packet::decode(&b).unwrap();
            proptest::prop_assert_eq!(p.identifier, id);
            proptest::prop_assert_eq!(p.attributes, attrs);
        }
    }
}
