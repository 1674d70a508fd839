//! The RADIUS codec and client core of `auth::radius` on arbitrary datagrams.
//!
//! Input: byte 0 = flags (bit 0: sign the datagram as the server would, bit 1: the client
//! does not require Message-Authenticator, bit 2: the datagram comes from a stranger); then the
//! datagram.
//!
//! Checks: `Packet::decode` never panics, and what decodes encodes back to the datagram's
//! first Length octets; `verify_response` refuses every unsigned datagram; the client, with
//! one Access-Request outstanding, ends it only with a datagram from its server that decodes
//! and is signed with its Request Authenticator, with the verdict of its code (Accept for 2,
//! Reject for 3 and 11); every other datagram is counted as dropped; a second copy of an
//! answer that ended the request is dropped too.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use auth::radius::codec::{self, code, encode, Packet};
use auth::radius::{DigestRequest, RadiusClient, RadiusConfig, Verdict};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"testing123";

fn check_codec(data: &[u8]) {
    let Ok(p) = Packet::decode(data) else {
        return;
    };
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let wire = encode(p.code, p.identifier, &p.authenticator, &p.attributes, false)
        .expect("a decoded packet encodes");
    assert_eq!(wire, &data[..len], "decode/encode round trip");
    for (t, v) in &p.attributes {
        assert!(v.len() <= codec::MAX_ATTR_VALUE);
        if *t == codec::attr::MESSAGE_AUTHENTICATOR {
            assert_eq!(v.len(), 16);
        }
    }
}

fn request() -> DigestRequest {
    DigestRequest {
        username: "alice".into(),
        realm: "example.com".into(),
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
        method: "REGISTER".into(),
        uri: "sip:example.com".into(),
        response: "6629fae49393a05397450978507c4ef1".into(),
        algorithm: "MD5".into(),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("0a4f113b".into()),
    }
}

/// Signs `data` (of at least 20 octets) as the server's answer to `req`: identifier,
/// Message-Authenticator when present, then Response Authenticator; octets beyond Length stay
/// as they were (padding).
fn sign(data: &[u8], req: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out[1] = req[1];
    let len = usize::from(u16::from_be_bytes([out[2], out[3]])).min(out.len());
    if len < codec::MIN_PACKET {
        // Length below the header: nothing to sign, and it cannot decode anyway.
        return out;
    }
    let mut auth = [0u8; 16];
    auth.copy_from_slice(&req[4..20]);
    let mut head = out[..len].to_vec();
    head[4..20].copy_from_slice(&auth);
    codec::sign_message_authenticator(&mut head, SECRET);
    let ra = codec::response_authenticator(&head, &auth, SECRET);
    head[4..20].copy_from_slice(&ra);
    out[..len].copy_from_slice(&head);
    out
}

fuzz_target!(|data: &[u8]| {
    check_codec(data);
    let Some((&flags, dgram)) = data.split_first() else {
        return;
    };
    let server: SocketAddr = "127.0.0.1:1812".parse().expect("literal");
    let stranger: SocketAddr = "127.0.0.1:1813".parse().expect("literal");
    let mut cfg = RadiusConfig::new(vec![server], SECRET.to_vec());
    cfg.require_message_authenticator = flags & 2 == 0;
    let mut client = RadiusClient::new(cfg, [7; 32]);
    let now = Instant::now();
    client
        .send_digest(42, &request(), now)
        .expect("one request");
    let sent = client.poll_transmit().expect("the request goes out");
    assert!(codec::verify_request_message_authenticator(
        &sent.payload,
        SECRET
    ));
    let mut req_auth = [0u8; 16];
    req_auth.copy_from_slice(&sent.payload[4..20]);

    let signed = flags & 1 != 0 && dgram.len() >= codec::MIN_PACKET;
    let dgram = if signed {
        sign(dgram, &sent.payload)
    } else {
        dgram.to_vec()
    };
    if !signed {
        // Forging a 128-bit MD5 authenticator by chance does not happen.
        assert!(codec::verify_response(&dgram, &req_auth, SECRET, false).is_err());
    }
    let from = if flags & 4 != 0 { stranger } else { server };
    client.handle_datagram(from, &dgram);
    let event = client.poll_event();
    let stats = client.stats();
    let ok = if from == server && dgram.get(1) == sent.payload.get(1) {
        codec::verify_response(&dgram, &req_auth, SECRET, flags & 2 == 0).ok()
    } else {
        None
    };
    let expected = ok.and_then(|p| match p.code {
        code::ACCESS_ACCEPT => Some(Verdict::Accept),
        code::ACCESS_REJECT | code::ACCESS_CHALLENGE => Some(Verdict::Reject),
        _ => None,
    });
    match (&event, &expected) {
        (Some(e), Some(v)) => {
            assert_eq!(e.token, 42);
            assert_eq!(e.result.as_ref().ok(), Some(v));
            assert_eq!(e.server, Some(server));
            assert_eq!(client.outstanding(), 0);
            assert_eq!(stats.dropped, 0);
            // The same answer again finds no outstanding request.
            client.handle_datagram(from, &dgram);
            assert!(client.poll_event().is_none());
            assert_eq!(client.stats().dropped, 1);
        }
        (None, None) => {
            assert_eq!(stats.dropped, 1, "a refused datagram is counted");
            assert_eq!(client.outstanding(), 1);
        }
        _ => panic!("event {event:?}, expected verdict {expected:?}"),
    }
    assert!(client.poll_transmit().is_none());
});
