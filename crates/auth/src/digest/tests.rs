//! The authenticator end to end: a scripted client answers challenges as a phone would.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use sip_message::headers::WwwAuthenticate;
use sip_message::{Message, TypedHeader};
use store::{MemoryStore, UserStore};

use super::algorithm::{hashes_done, hex, response, ResponseInput};
use super::*;
use crate::credential::{user_credentials, CredentialSource, StoreCredentials};

const REALM: &str = "sipwarden.test";
const URI: &str = "sip:198.51.100.1";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn src() -> IpAddr {
    "198.51.100.70".parse().unwrap()
}

struct Fixture {
    auth: DigestAuthenticator,
    users: StoreCredentials<MemoryStore>,
}

fn fixture(config: DigestConfig) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    store
        .put_user(&user_credentials(
            "alice",
            REALM,
            "correct horse",
            &[Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256],
        ))
        .unwrap();
    Fixture {
        auth: DigestAuthenticator::new(config, ServerSecret::from_bytes([42; 32]), 7),
        users: StoreCredentials(store),
    }
}

/// A REGISTER with the given Authorization values.
fn register(auth_values: &[&str]) -> Message {
    let mut s = format!(
        "REGISTER {URI} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.70:5060;branch=z9hG4bK1\r\n\
         From: <sip:alice@198.51.100.1>;tag=1\r\nTo: <sip:alice@198.51.100.1>\r\n\
         Call-ID: c1\r\nCSeq: 2 REGISTER\r\nMax-Forwards: 70\r\n"
    );
    for v in auth_values {
        s.push_str(&format!("Authorization: {v}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Message::parse(s.into_bytes()).unwrap()
}

/// What a phone answers to `challenge_value` with `password`.
fn answer(
    challenge_value: &str,
    user: &str,
    password: &str,
    nc: u32,
    method: &str,
    uri: &str,
) -> String {
    let w = WwwAuthenticate::parse_value(challenge_value).unwrap();
    let alg = Algorithm::from_name(w.algorithm().unwrap()).unwrap();
    let realm = w.realm().unwrap();
    let nonce = w.nonce().unwrap();
    let ha1 = alg.ha1(user, realm, password);
    let nc_s = format!("{nc:08x}");
    let r = response(
        alg,
        &ha1,
        &ResponseInput {
            method,
            uri,
            nonce,
            qop: Some(("auth", &nc_s, "0a4f113b")),
        },
    );
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{}\", algorithm={}, qop=auth, nc={nc_s}, cnonce=\"0a4f113b\"",
        hex(&r),
        alg.name()
    )
}

/// Runs one request through check + lookup + finish.
fn run(f: &mut Fixture, msg: &Message, now: SystemTime) -> Result<Identity, (Challenge, Failure)> {
    match f.auth.check(msg, ChallengeKind::Www, src(), now) {
        Check::Challenge { challenge, failure } => Err((challenge, failure)),
        Check::Lookup(p) => {
            let ha1 = f.users.ha1(p.username(), p.realm(), p.algorithm()).unwrap();
            match f.auth.finish(p, Lookup::Ha1(ha1), now) {
                Outcome::Authenticated(id) => Ok(id),
                Outcome::Rejected { challenge, failure } => Err((challenge, failure)),
            }
        }
    }
}

fn first_challenge(f: &mut Fixture, now: SystemTime) -> Challenge {
    match run(f, &register(&[]), now) {
        Err((c, Failure::NoCredentials)) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn challenge_offers_sha256_then_md5() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    assert_eq!(c.status(), 401);
    assert_eq!(c.values.len(), 2);
    assert!(c.values[0].contains("algorithm=SHA-256"));
    assert!(c.values[1].contains("algorithm=MD5"));
    assert!(!c.stale);
    let c = f.auth.challenge(ChallengeKind::Proxy, src(), t(0), false);
    assert_eq!(
        (c.status(), c.reason(), c.header_name()),
        (407, "Proxy Authentication Required", "Proxy-Authenticate")
    );
}

#[test]
fn good_password_each_algorithm() {
    let mut cfg = DigestConfig::new(REALM);
    cfg.algorithms = vec![Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];
    let mut f = fixture(cfg);
    let c = first_challenge(&mut f, t(0));
    for (i, v) in c.values.iter().enumerate() {
        let nc = 1 + i as u32 * 10;
        let a = answer(v, "alice", "correct horse", nc, "REGISTER", URI);
        let id = run(&mut f, &register(&[&a]), t(1)).unwrap();
        assert_eq!(id.username, "alice");
        assert_eq!(id.algorithm, Algorithm::ALL[i]);
        // The next algorithm reuses the nonce: its count must go up.
        let a = answer(
            v,
            "alice",
            "correct horse",
            2 + i as u32 * 10,
            "REGISTER",
            URI,
        );
        run(&mut f, &register(&[&a]), t(1)).unwrap();
    }
}

#[test]
fn proxy_reads_proxy_authorization() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = f.auth.challenge(ChallengeKind::Proxy, src(), t(0), false);
    let a = answer(
        &c.values[0],
        "alice",
        "correct horse",
        1,
        "INVITE",
        "sip:bob@example.com",
    );
    let msg = Message::parse(
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.70;branch=z9hG4bK2\r\n\
             From: <sip:alice@x>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c2\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nProxy-Authorization: {a}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .unwrap();
    // Proxy-Authorization is not read as Authorization.
    assert!(matches!(
        f.auth.check(&msg, ChallengeKind::Www, src(), t(1)),
        Check::Challenge {
            failure: Failure::NoCredentials,
            ..
        }
    ));
    let Check::Lookup(p) = f.auth.check(&msg, ChallengeKind::Proxy, src(), t(1)) else {
        panic!("no lookup");
    };
    assert_eq!(p.method(), "INVITE");
    let ha1 = f.users.ha1(p.username(), p.realm(), p.algorithm()).unwrap();
    assert!(matches!(
        f.auth.finish(p, Lookup::Ha1(ha1), t(1)),
        Outcome::Authenticated(_)
    ));
}

/// The core anti-enumeration property: unknown user and wrong password give the same status,
/// reason, headers and challenge form (only the nonce differs), after the same hashing work.
#[test]
fn unknown_user_and_wrong_password_are_indistinguishable() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let mut answers = Vec::new();
    let mut work = Vec::new();
    for (user, pw) in [
        ("alice", "wrong"),
        ("mallory", "wrong"),
        ("mallory", "correct horse"),
    ] {
        let a = answer(&c.values[0], user, pw, 1, "REGISTER", URI);
        let before = hashes_done();
        let (ch, failure) = run(&mut f, &register(&[&a]), t(1)).unwrap_err();
        work.push(hashes_done() - before);
        assert!(failure.is_guess(), "{failure:?}");
        answers.push(ch.to_wire().replace(&ch.nonce, "NONCE"));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    assert!(answers[0].starts_with("SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm="));
    assert!(!answers[0].contains("stale"));
    // Same number of hash computations (the challenge's own MAC included).
    assert_eq!(work[0], work[1]);
    assert_eq!(work[1], work[2]);
    // And a different nonce each time.
    let c2 = first_challenge(&mut f, t(1));
    assert_ne!(c.nonce, c2.nonce);
}

#[test]
fn forged_altered_and_foreign_nonces_are_rejected() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let good = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    // A nonce we never issued, with a response computed correctly for it.
    let forged_nonce = format!("{:064x}", 12345);
    let forged = answer(
        &c.values[0].replace(&c.nonce, &forged_nonce),
        "alice",
        "correct horse",
        1,
        "REGISTER",
        URI,
    );
    let (_, failure) = run(&mut f, &register(&[&forged]), t(1)).unwrap_err();
    assert_eq!(failure, Failure::InvalidNonce);
    // Another server's nonce (other secret).
    let mut other = DigestAuthenticator::new(
        DigestConfig::new(REALM),
        ServerSecret::from_bytes([1; 32]),
        0,
    );
    let oc = other.challenge(ChallengeKind::Www, src(), t(0), false);
    let a = answer(&oc.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    assert_eq!(
        run(&mut f, &register(&[&a]), t(1)).unwrap_err().1,
        Failure::InvalidNonce
    );
    // Our nonce used from another address.
    let msg = register(&[&good]);
    let other_ip: IpAddr = "198.51.100.66".parse().unwrap();
    assert!(matches!(
        f.auth.check(&msg, ChallengeKind::Www, other_ip, t(1)),
        Check::Challenge {
            failure: Failure::InvalidNonce,
            ..
        }
    ));
    // Digest uri other than the Request-URI.
    let a = answer(
        &c.values[0],
        "alice",
        "correct horse",
        1,
        "REGISTER",
        "sip:elsewhere",
    );
    assert_eq!(
        run(&mut f, &register(&[&a]), t(1)).unwrap_err().1,
        Failure::UriMismatch
    );
    // Method other than the one the response was computed for.
    let a = answer(&c.values[0], "alice", "correct horse", 1, "INVITE", URI);
    assert!(matches!(
        run(&mut f, &register(&[&a]), t(1)).unwrap_err().1,
        Failure::WrongResponse { .. }
    ));
    // The genuine answer still works.
    run(&mut f, &register(&[&good]), t(1)).unwrap();
}

#[test]
fn stale_nonce_gets_stale_true_only_with_the_right_password() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let good = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    let bad = answer(&c.values[0], "alice", "nope", 1, "REGISTER", URI);
    let late = t(301);
    let (ch, failure) = run(&mut f, &register(&[&good]), late).unwrap_err();
    assert!(matches!(failure, Failure::StaleNonce { .. }));
    assert!(ch.stale && ch.values.iter().all(|v| v.ends_with(", stale=true")));
    let (ch, failure) = run(&mut f, &register(&[&bad]), late).unwrap_err();
    assert!(matches!(failure, Failure::WrongResponse { .. }));
    assert!(!ch.stale);
    // Within the lifetime it is accepted; the stale challenge's nonce works at once.
    run(&mut f, &register(&[&good]), t(300)).unwrap();
    let (ch, _) = run(
        &mut f,
        &register(&[&answer(
            &c.values[0],
            "alice",
            "correct horse",
            9,
            "REGISTER",
            URI,
        )]),
        late,
    )
    .unwrap_err();
    let renewed = answer(&ch.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    run(&mut f, &register(&[&renewed]), late).unwrap();
}

#[test]
fn replayed_nonce_count_is_refused() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let a1 = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    run(&mut f, &register(&[&a1]), t(1)).unwrap();
    // The very same request again (a captured REGISTER replayed).
    let (ch, failure) = run(&mut f, &register(&[&a1]), t(2)).unwrap_err();
    assert!(matches!(failure, Failure::Replay { .. }));
    assert!(ch.stale);
    let a3 = answer(&c.values[0], "alice", "correct horse", 3, "REGISTER", URI);
    run(&mut f, &register(&[&a3]), t(3)).unwrap();
    let a2 = answer(&c.values[0], "alice", "correct horse", 2, "REGISTER", URI);
    assert!(matches!(
        run(&mut f, &register(&[&a2]), t(4)).unwrap_err().1,
        Failure::Replay { .. }
    ));
    assert_eq!(f.auth.tracked_nonces(), 1);
    assert_eq!(f.auth.purge(t(302)), 1);
}

#[test]
fn nc_table_stays_bounded_under_many_nonces() {
    let mut cfg = DigestConfig::new(REALM);
    cfg.nc_table_capacity = 16;
    let mut f = fixture(cfg);
    let mut first = None;
    for i in 0..200 {
        let c = first_challenge(&mut f, t(i));
        let a = answer(&c.values[1], "alice", "correct horse", 1, "REGISTER", URI);
        first.get_or_insert_with(|| a.clone());
        run(&mut f, &register(&[&a]), t(i)).unwrap();
        assert!(f.auth.tracked_nonces() <= 16);
    }
    // The first nonce was evicted long ago, and still cannot be replayed.
    let (ch, failure) = run(&mut f, &register(&[&first.unwrap()]), t(200)).unwrap_err();
    assert!(matches!(failure, Failure::Replay { .. }));
    assert!(ch.stale);
}

#[test]
fn unusable_credentials_are_challenged() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let good = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    let cases: Vec<(String, Failure)> = vec![
        (
            good.replace(", qop=auth, nc=00000001, cnonce=\"0a4f113b\"", ""),
            Failure::QopRequired,
        ),
        (
            good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
            Failure::AlgorithmNotOffered(Algorithm::Sha512_256),
        ),
        (
            good.replace("nc=00000001", "nc=1"),
            Failure::Malformed(CredentialsError::BadNonceCount),
        ),
        // Credentials for another realm are not ours to check.
        (
            good.replace(&format!("realm=\"{REALM}\""), "realm=\"elsewhere\""),
            Failure::NoCredentials,
        ),
        (
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l".into(),
            Failure::NoCredentials,
        ),
    ];
    for (value, want) in cases {
        let (ch, failure) = run(&mut f, &register(&[&value]), t(1)).unwrap_err();
        assert_eq!(failure, want, "{value}");
        assert!(!ch.stale);
    }
    // Ours is found among other realms' credentials.
    let other = good.replace(&format!("realm=\"{REALM}\""), "realm=\"elsewhere\"");
    run(&mut f, &register(&[&other, &good]), t(1)).unwrap();
}

#[test]
fn radius_style_verdicts() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let a = answer(&c.values[1], "bob", "x", 1, "REGISTER", URI);
    let Check::Lookup(p) = f
        .auth
        .check(&register(&[&a]), ChallengeKind::Www, src(), t(1))
    else {
        panic!()
    };
    assert_eq!(p.credentials().nc.as_ref().unwrap().0, "00000001");
    assert!(matches!(
        f.auth.finish(p.clone(), Lookup::Verified(false), t(1)),
        Outcome::Rejected {
            failure: Failure::WrongResponse { .. },
            ..
        }
    ));
    assert!(matches!(
        f.auth.finish(p.clone(), Lookup::Verified(true), t(1)),
        Outcome::Authenticated(_)
    ));
    // An accepted response does not open a replay window either.
    assert!(matches!(
        f.auth.finish(p, Lookup::Verified(true), t(1)),
        Outcome::Rejected {
            failure: Failure::Replay { .. },
            ..
        }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random Authorization values never panic the parser or the authenticator.
    #[test]
    fn random_authorization_values_never_panic(
        value in prop_oneof![
            "\\PC{0,200}",
            "Digest ([a-z]{1,8}=(\"[ -~]{0,40}\"|[a-zA-Z0-9]{0,20}), ?){0,12}",
            "Digest (username|realm|nonce|uri|response|qop|nc|cnonce|algorithm)=\"?[0-9a-fA-Z:@.\\-]{0,70}\"?(, (username|realm|nonce|uri|response|qop|nc|cnonce|algorithm)=\"?[0-9a-zA-Z:@.\\-]{0,70}\"?){0,10}",
        ]
    ) {
        if let Ok(a) = sip_message::headers::Authorization::parse_value(&value) {
            let _ = DigestCredentials::from_auth(&a);
        }
        let text = format!(
            "REGISTER {URI} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
             To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nAuthorization: {value}\r\nContent-Length: 0\r\n\r\n"
        );
        if let Ok(msg) = Message::parse(text.into_bytes()) {
            let mut f = fixture(DigestConfig::new(REALM));
            let _ = run(&mut f, &msg, t(0));
        }
    }
}

#[test]
fn reload_keeps_replay_protection() {
    let mut f = fixture(DigestConfig::new(REALM));
    let c = first_challenge(&mut f, t(0));
    let a1 = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    run(&mut f, &register(&[&a1]), t(1)).unwrap();
    // Same capacity: the table is kept.
    let mut cfg = DigestConfig::new(REALM);
    cfg.nonce_lifetime = Duration::from_secs(600);
    f.auth.reconfigure(cfg.clone(), t(2));
    assert!(matches!(
        run(&mut f, &register(&[&a1]), t(2)).unwrap_err().1,
        Failure::Replay { .. }
    ));
    // New capacity: an empty table, but the old nonce is refused (stale), not replayable.
    cfg.nc_table_capacity = 10;
    f.auth.reconfigure(cfg, t(3));
    assert_eq!(f.auth.tracked_nonces(), 0);
    let (ch, failure) = run(&mut f, &register(&[&a1]), t(3)).unwrap_err();
    assert!(matches!(failure, Failure::Replay { .. }) && ch.stale);
    // The lifetime change took effect: 500 s old is still fresh.
    let c = first_challenge(&mut f, t(4));
    let a = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    run(&mut f, &register(&[&a]), t(504)).unwrap();
    // A new secret invalidates outstanding nonces.
    let c = first_challenge(&mut f, t(505));
    f.auth.set_secret(ServerSecret::from_bytes([43; 32]));
    let a = answer(&c.values[0], "alice", "correct horse", 1, "REGISTER", URI);
    assert_eq!(
        run(&mut f, &register(&[&a]), t(506)).unwrap_err().1,
        Failure::InvalidNonce
    );
}

#[test]
fn empty_algorithm_list_falls_back_to_the_default() {
    let mut cfg = DigestConfig::new(REALM);
    cfg.algorithms.clear();
    let mut f = fixture(cfg);
    let c = first_challenge(&mut f, t(0));
    assert_eq!(c.values.len(), 2);
}
