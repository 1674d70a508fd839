//! The stateless Binding responder (RFC 5389 7.3, 7.3.1, 10 without authentication).

use std::net::SocketAddr;

use crate::{parse, Class, Error, MessageBuilder, BINDING};

/// What to do with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A Binding Success Response with XOR-MAPPED-ADDRESS: send it to the source.
    Success(Vec<u8>),
    /// An error response (420 Unknown Attribute, 400 for a method other than Binding): send it
    /// to the source.
    Error { code: u16, bytes: Vec<u8> },
    /// Nothing to send.
    Discard(Discard),
}

/// Why nothing is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Discard {
    /// Failed the checks of RFC 5389 7.3 (silently discarded).
    Malformed(Error),
    /// An indication: a Binding Indication is a keepalive that needs no answer (RFC 5389 7.3.2
    /// for unknown attributes too).
    Indication,
    /// A response: this side sends no requests.
    Response,
}

/// How many unknown attribute types an UNKNOWN-ATTRIBUTES lists at most.
const MAX_UNKNOWN: usize = 16;

/// Answers one datagram received from `source`:
/// - not a valid STUN message (header, lengths, FINGERPRINT) → discard (RFC 5389 7.3);
/// - indications and responses → discard;
/// - a request with unknown comprehension-required attributes → 420 with UNKNOWN-ATTRIBUTES
///   (7.3.1);
/// - a request for another method → 400;
/// - a Binding Request → success with XOR-MAPPED-ADDRESS = `source` and the same transaction id.
///
/// The answer carries a FINGERPRINT when the request had one.
pub fn respond(datagram: &[u8], source: SocketAddr) -> Response {
    let msg = match parse(datagram) {
        Ok(m) => m,
        Err(e) => return Response::Discard(Discard::Malformed(e)),
    };
    match msg.class() {
        Class::Request => {}
        Class::Indication => return Response::Discard(Discard::Indication),
        Class::SuccessResponse | Class::ErrorResponse => {
            return Response::Discard(Discard::Response)
        }
    }
    let fp = msg.has_fingerprint();
    let tid = msg.transaction_id();
    let (unknown, n) = msg.unknown_comprehension_required::<MAX_UNKNOWN>();
    if n > 0 {
        let mut b = MessageBuilder::new(msg.method(), Class::ErrorResponse, tid);
        // Both fit easily: a short reason and at most 16 types.
        let _ = b.error_code(420, "Unknown Attribute");
        let _ = b.unknown_attributes(&unknown[..n]);
        return Response::Error {
            code: 420,
            bytes: b.finish(fp),
        };
    }
    if msg.method() != BINDING {
        let mut b = MessageBuilder::new(msg.method(), Class::ErrorResponse, tid);
        let _ = b.error_code(400, "Bad Request: unsupported method");
        return Response::Error {
            code: 400,
            bytes: b.finish(fp),
        };
    }
    let mut b = MessageBuilder::new(BINDING, Class::SuccessResponse, tid);
    let _ = b.xor_mapped_address(source);
    Response::Success(b.finish(fp))
}
