//! SIP digest authentication (`auth::DigestAuthenticator`) on a REGISTER whose Authorization
//! (or Proxy-Authorization) value is the input.
//!
//! Input: byte 0 = flags (bit 0: proxy, bit 1: no URI check, bit 2: nonce not bound to the
//! source, bit 3: MD5 only); then the header value. `$N` in it is replaced by a nonce the
//! authenticator just issued (so that the fuzzer reaches the lookup), and `$R`, in a second
//! round, by the right response for the password `secret`.
//!
//! Checks: `check` and `finish` never panic; a challenge is 401/407 with one value per
//! configured algorithm, stale only after a stale nonce or a replay; a lookup only for our
//! realm, an offered algorithm, `qop=auth`, the Request-URI (when checked) and the method;
//! an unknown user and a wrong response are rejected as such and count as guesses; the right
//! response authenticates exactly once for a nonce count (a replay is refused as stale).
#![no_main]

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::digest::algorithm::{hex, response, unhex, ResponseInput};
use auth::digest::DigestCredentials;
use auth::{
    Algorithm, ChallengeKind, Check, DigestAuthenticator, DigestConfig, Failure, Ha1, Lookup,
    Outcome, Pending, ServerSecret,
};
use libfuzzer_sys::fuzz_target;
use sip_message::Message;

const REALM: &str = "example.com";
const RURI: &str = "sip:example.com";

fn replace(hay: &[u8], pat: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(pat) {
            out.extend_from_slice(with);
            i += pat.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn message(kind: ChallengeKind, value: &[u8]) -> Option<Message> {
    let mut m = format!(
        "REGISTER {RURI} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKfz\r\n\
         From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: fz@192.0.2.7\r\nCSeq: 2 REGISTER\r\n{}: ",
        kind.credentials_header()
    )
    .into_bytes();
    m.extend_from_slice(value);
    m.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    Message::parse(bytes::Bytes::from(m)).ok()
}

/// The response the client must send: RFC 7616 section 3.4.1 with the given HA1.
fn right_response(c: &DigestCredentials, method: &str, ha1_hex: &str) -> Vec<u8> {
    let qop = match (&c.qop, &c.nc, &c.cnonce) {
        (Some(q), Some((nc, _)), Some(cn)) => Some((q.as_str(), nc.as_str(), cn.as_str())),
        _ => None,
    };
    response(
        c.algorithm,
        ha1_hex,
        &ResponseInput {
            method,
            uri: &c.uri,
            nonce: &c.nonce,
            qop,
        },
    )
}

fn check_pending(p: &Pending, cfg: &DigestConfig) {
    assert_eq!(p.realm(), REALM);
    assert!(cfg.algorithms.contains(&p.algorithm()));
    assert_eq!(p.method(), "REGISTER");
    let c = p.credentials();
    assert!(c.qop.is_some() && c.nc.is_some() && c.cnonce.is_some());
    if cfg.check_uri {
        assert_eq!(c.uri, RURI);
    }
}

fn username_of(f: &Failure) -> Option<&str> {
    match f {
        Failure::UnknownUser { username }
        | Failure::WrongResponse { username }
        | Failure::StaleNonce { username }
        | Failure::Replay { username } => Some(username),
        _ => None,
    }
}

/// Runs `finish` every way; returns whether the response was right.
fn finish_all(a: &mut DigestAuthenticator, p: Box<Pending>, now: SystemTime) -> bool {
    let user = p.username().to_owned();
    match a.finish(p.clone(), Lookup::Ha1(None), now) {
        Outcome::Rejected { failure, .. } => {
            assert!(matches!(failure, Failure::UnknownUser { .. }) && failure.is_guess());
            assert_eq!(username_of(&failure), Some(user.as_str()));
        }
        Outcome::Authenticated(_) => panic!("an unknown user authenticated"),
    }
    match a.finish(p.clone(), Lookup::Verified(false), now) {
        Outcome::Rejected { failure, .. } => {
            assert!(matches!(failure, Failure::WrongResponse { .. }))
        }
        Outcome::Authenticated(_) => panic!("a RADIUS reject authenticated"),
    }
    let ha1 = Ha1::from_password(p.algorithm(), p.username(), p.realm(), "secret");
    let c = p.credentials().clone();
    let right =
        unhex(&c.response).as_deref() == Some(right_response(&c, p.method(), ha1.hex()).as_slice());
    match a.finish(p.clone(), Lookup::Ha1(Some(ha1.clone())), now) {
        Outcome::Authenticated(id) => {
            assert!(right, "a wrong response authenticated");
            assert_eq!(
                (id.username.as_str(), id.realm.as_str()),
                (user.as_str(), REALM)
            );
            assert_eq!(id.algorithm, c.algorithm);
            // The same nonce count again is a replay.
            match a.finish(p, Lookup::Ha1(Some(ha1)), now) {
                Outcome::Rejected { failure, challenge } => {
                    assert!(matches!(failure, Failure::Replay { .. }) && challenge.stale);
                }
                Outcome::Authenticated(_) => panic!("a replayed nonce count authenticated"),
            }
        }
        Outcome::Rejected { failure, .. } => {
            assert!(!right, "the right response was rejected: {failure:?}");
            assert!(matches!(failure, Failure::WrongResponse { .. }));
        }
    }
    right
}

fn run(flags: u8, value: &[u8]) {
    let kind = if flags & 1 != 0 {
        ChallengeKind::Proxy
    } else {
        ChallengeKind::Www
    };
    let mut cfg = DigestConfig::new(REALM);
    cfg.check_uri = flags & 2 == 0;
    cfg.bind_nonce_to_source = flags & 4 == 0;
    if flags & 8 != 0 {
        cfg.algorithms = vec![Algorithm::Md5];
    }
    cfg.nc_table_capacity = 16;
    let mut a = DigestAuthenticator::new(cfg.clone(), ServerSecret::from_bytes([9; 32]), 1);
    let src = IpAddr::from([192, 0, 2, 7]);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let nonce = a.challenge(kind, src, now, false).nonce;
    let value = replace(value, b"$N", nonce.as_bytes());
    let Some(m) = message(kind, &value) else {
        return;
    };
    match a.check(&m, kind, src, now) {
        Check::Challenge { challenge, failure } => {
            assert_eq!(challenge.status(), kind.status());
            assert_eq!(challenge.header_name(), kind.challenge_header());
            assert_eq!(challenge.values.len(), cfg.algorithms.len());
            let stale = matches!(failure, Failure::StaleNonce { .. } | Failure::Replay { .. });
            assert_eq!(challenge.stale, stale);
            assert!(!failure.is_guess(), "{failure:?} before any lookup");
        }
        Check::Lookup(p) => {
            check_pending(&p, &cfg);
            let right = finish_all(&mut a, p.clone(), now);
            // Only a response that is exactly `$R` becomes the right one.
            if right || p.credentials().response != "$R" {
                return;
            }
            // Second round: the right response in place of `$R`.
            let ha1 = Ha1::from_password(p.algorithm(), p.username(), p.realm(), "secret");
            let r = hex(&right_response(p.credentials(), p.method(), ha1.hex()));
            let fixed = replace(&value, b"$R", r.as_bytes());
            let Some(m2) = message(kind, &fixed) else {
                return;
            };
            if let Check::Lookup(p2) = a.check(&m2, kind, src, now) {
                check_pending(&p2, &cfg);
                if p2.credentials() == p.credentials() || p2.username() != p.username() {
                    return;
                }
                let same_input = {
                    let (x, y) = (p.credentials(), p2.credentials());
                    (&x.nonce, &x.uri, &x.qop, &x.nc, &x.cnonce, x.algorithm)
                        == (&y.nonce, &y.uri, &y.qop, &y.nc, &y.cnonce, y.algorithm)
                };
                if same_input && p2.realm() == p.realm() {
                    assert!(
                        finish_all(&mut a, p2, now),
                        "the right response was not right"
                    );
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, value)) = data.split_first() else {
        return;
    };
    run(flags, value);
});
