//! Measures how long a rejected REGISTER takes for a known user with a wrong password and for
//! an unknown user (store lookup included, redb backend), interleaved so that machine noise
//! hits both alike. Prints medians and the 90th percentiles.
//!
//! `cargo run --release -p auth --example enumeration_timing`

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth::digest::algorithm::{hex, response, ResponseInput};
use auth::{
    user_credentials, Algorithm, ChallengeKind, Check, CredentialSource, DigestAuthenticator,
    DigestConfig, Lookup, Outcome, ServerSecret, StoreCredentials,
};
use sip_message::Message;
use store::{RedbStore, UserStore};

const REALM: &str = "sipwarden.test";
const URI: &str = "sip:198.51.100.1";

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path()).expect("store"));
    for i in 0..1000 {
        store
            .put_user(&user_credentials(
                &format!("user{i}"),
                REALM,
                "correct horse",
                &[Algorithm::Md5, Algorithm::Sha256],
            ))
            .expect("put");
    }
    let users = StoreCredentials(store);
    let mut auth = DigestAuthenticator::new(
        DigestConfig::new(REALM),
        ServerSecret::from_bytes([9; 32]),
        1,
    );
    let src: IpAddr = "198.51.100.66".parse().expect("ip");
    let now = SystemTime::now();
    let n = 20_000usize;
    let mut times = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for i in 0..n {
        for (k, user) in ["user500", "nosuchuser"].iter().enumerate() {
            let c = auth.challenge(ChallengeKind::Www, src, now, false);
            let nc = format!("{:08x}", 1);
            let r = response(
                Algorithm::Sha256,
                &Algorithm::Sha256.ha1(user, REALM, "guess"),
                &ResponseInput {
                    method: "REGISTER",
                    uri: URI,
                    nonce: &c.nonce,
                    qop: Some(("auth", &nc, "abcdef")),
                },
            );
            let msg = Message::parse(
                format!(
                    "REGISTER {URI} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.66;branch=z9hG4bK{i}\r\n\
                     From: <sip:{user}@x>;tag=1\r\nTo: <sip:{user}@x>\r\nCall-ID: {i}\r\n\
                     CSeq: 1 REGISTER\r\nAuthorization: Digest username=\"{user}\", realm=\"{REALM}\", \
                     nonce=\"{}\", uri=\"{URI}\", response=\"{}\", algorithm=SHA-256, qop=auth, \
                     nc={nc}, cnonce=\"abcdef\"\r\nContent-Length: 0\r\n\r\n",
                    c.nonce,
                    hex(&r)
                )
                .into_bytes(),
            )
            .expect("parse");
            let t0 = Instant::now();
            let Check::Lookup(p) = auth.check(&msg, ChallengeKind::Www, src, now) else {
                panic!("no lookup");
            };
            let ha1 = users
                .ha1(p.username(), p.realm(), p.algorithm())
                .expect("lookup");
            let out = auth.finish(p, Lookup::Ha1(ha1), now);
            let dt = t0.elapsed();
            assert!(matches!(out, Outcome::Rejected { .. }));
            times[k].push(dt);
        }
    }
    for (k, name) in ["known user, wrong password", "unknown user"]
        .iter()
        .enumerate()
    {
        let v = &mut times[k];
        v.sort_unstable();
        let q = |f: f64| v[((v.len() as f64 * f) as usize).min(v.len() - 1)];
        println!(
            "{name:28} median {:>7.2} us  p90 {:>7.2} us  (n={n})",
            us(q(0.5)),
            us(q(0.9))
        );
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
