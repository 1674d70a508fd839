//! End to end against a real FreeRADIUS (tests/e2e/freeradius): digest credentials produced by
//! the authenticator, sent by the RADIUS client over UDP on loopback, verified by FreeRADIUS's
//! digest module. Also failover (a first server with nothing listening) and retransmission (a
//! relay that drops the first datagram).
//!
//! Without the `freeradius` binary the test prints a SKIPPED line and passes.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use auth::radius::{DigestDialect, DigestRequest, RadiusConfig, RadiusHandle, Verdict};
use auth::{Algorithm, Check, DigestAuthenticator, DigestConfig, Lookup, Outcome, ServerSecret};
use auth::{ChallengeKind, Failure};
use sip_message::headers::WwwAuthenticate;
use sip_message::{Message, TypedHeader};

const SECRET: &[u8] = b"sipwarden-test-secret";
const REALM: &str = "sipwarden.test";
const URI: &str = "sip:198.51.100.1";

fn freeradius_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/freeradius",
        "/usr/sbin/radiusd",
        "/usr/local/sbin/radiusd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The running server; killed by its PID when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_config(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_config(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn substitute(dir: &Path, port: u16) {
    for f in ["radiusd.conf", "sites-enabled/sipwarden"] {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@PORT@", &port.to_string());
        std::fs::write(&p, text).unwrap();
    }
}

/// A free UDP port in 18120-18130 on loopback.
fn free_port() -> u16 {
    (18120..=18130)
        .find(|p| UdpSocket::bind(("127.0.0.1", *p)).is_ok())
        .expect("no free port in 18120-18130")
}

fn start(bin: &Path) -> Server {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/freeradius");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    copy_config(&src, dir.path());
    substitute(dir.path(), port);
    std::fs::create_dir_all(dir.path().join("log")).unwrap();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    let mut child = Command::new(bin)
        .arg("-X")
        .arg("-d")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let server = Server {
        child,
        port,
        _dir: dir,
        log: rx,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match server.log.recv_timeout(left) {
            Ok(line) if line.contains("Ready to process requests") => return server,
            Ok(_) => {}
            Err(_) => panic!("FreeRADIUS did not become ready within 30 s"),
        }
    }
}

fn src() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 70))
}

/// A phone's answer to the first challenge value for `alg`.
fn pending_for(
    auth: &mut DigestAuthenticator,
    user: &str,
    password: &str,
    now: SystemTime,
) -> Box<auth::Pending> {
    let c = auth.challenge(ChallengeKind::Www, src(), now, false);
    let w = WwwAuthenticate::parse_value(&c.values[0]).unwrap();
    let alg = Algorithm::from_name(w.algorithm().unwrap()).unwrap();
    let ha1 = alg.ha1(user, REALM, password);
    let resp = auth::digest::algorithm::hex(&auth::digest::algorithm::response(
        alg,
        &ha1,
        &auth::digest::algorithm::ResponseInput {
            method: "REGISTER",
            uri: URI,
            nonce: &c.nonce,
            qop: Some(("auth", "00000001", "6f2a4c1d")),
        },
    ));
    let value = format!(
        "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{}\", uri=\"{URI}\", \
         response=\"{resp}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"6f2a4c1d\"",
        c.nonce,
        alg.name()
    );
    let msg = Message::parse(
        format!(
            "REGISTER {URI} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.70;branch=z9hG4bK1\r\n\
             From: <sip:{user}@198.51.100.1>;tag=1\r\nTo: <sip:{user}@198.51.100.1>\r\n\
             Call-ID: e2e\r\nCSeq: 1 REGISTER\r\nAuthorization: {value}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .unwrap();
    match auth.check(&msg, ChallengeKind::Www, src(), now) {
        Check::Lookup(p) => p,
        Check::Challenge { failure, .. } => panic!("not looked up: {failure:?}"),
    }
}

fn config(servers: Vec<SocketAddr>, dialect: DigestDialect) -> RadiusConfig {
    let mut c = RadiusConfig::new(servers, SECRET.to_vec());
    c.dialect = dialect;
    c.timeout = Duration::from_millis(300);
    c.tries_per_server = 2;
    // FreeRADIUS before 3.2.5 does not put Message-Authenticator in Access-Accept/Reject.
    c.require_message_authenticator = false;
    c
}

/// Relays datagrams between the client and `server`, dropping the first one from the client.
async fn lossy_relay(server: SocketAddr) -> SocketAddr {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut client = None;
        let mut dropped = false;
        let (mut b1, mut b2) = (vec![0u8; 4096], vec![0u8; 4096]);
        // Bounded: the relay serves one test.
        for _ in 0..64 {
            tokio::select! {
                r = front.recv_from(&mut b1) => {
                    let Ok((n, from)) = r else { return };
                    client = Some(from);
                    if !dropped {
                        dropped = true;
                        continue;
                    }
                    let _ = back.send_to(&b1[..n], server).await;
                }
                r = back.recv_from(&mut b2) => {
                    let Ok((n, _)) = r else { return };
                    if let Some(c) = client {
                        let _ = front.send_to(&b2[..n], c).await;
                    }
                }
            }
        }
    });
    addr
}

#[test]
fn freeradius_verifies_digest_credentials() {
    let Some(bin) = freeradius_binary() else {
        println!(
            "SKIPPED: freeradius is not installed (apt-get install -y freeradius); \
             the RADIUS end-to-end test cannot run"
        );
        return;
    };
    let server = start(&bin);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = DigestConfig::new(REALM);
        // FreeRADIUS 3.x's digest module computes MD5 only.
        cfg.algorithms = vec![Algorithm::Md5];
        let mut auth = DigestAuthenticator::new(cfg, ServerSecret::random().unwrap(), 1);
        let now = SystemTime::now();
        let seed = [7u8; 32];
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();

        for dialect in [DigestDialect::DraftSterman, DigestDialect::Rfc5090] {
            let (radius, task) = RadiusHandle::spawn(config(vec![addr], dialect), bind, seed)
                .await
                .unwrap();
            for (user, password, want) in [
                ("alice", "correct horse", Verdict::Accept),
                ("alice", "wrong", Verdict::Reject),
                ("bob", "battery staple", Verdict::Accept),
                ("mallory", "correct horse", Verdict::Reject),
            ] {
                let p = pending_for(&mut auth, user, password, now);
                let verdict = radius.verify(DigestRequest::from(&*p)).await;
                assert_eq!(verdict, Ok(want.clone()), "{dialect:?} {user}/{password}");
                let outcome = auth.finish(p, Lookup::Verified(verdict == Ok(Verdict::Accept)), now);
                match (want, outcome) {
                    (Verdict::Accept, Outcome::Authenticated(id)) => assert_eq!(id.username, user),
                    (Verdict::Reject, Outcome::Rejected { failure, challenge }) => {
                        assert!(matches!(failure, Failure::WrongResponse { .. }));
                        assert_eq!(challenge.status(), 401);
                    }
                    (w, o) => panic!("{w:?} but {o:?}"),
                }
            }
            println!("{dialect:?}: {:?}", radius.stats().await.unwrap());
            drop(radius);
            task.await.unwrap();
        }

        // Message-Authenticator required in answers (the default): a server that sends it
        // (FreeRADIUS 3.2.5 and later) is accepted; one that does not is refused, and the
        // counter says why.
        let mut strict = config(vec![addr], DigestDialect::DraftSterman);
        strict.require_message_authenticator = true;
        let (radius, task) = RadiusHandle::spawn(strict, bind, seed).await.unwrap();
        let p = pending_for(&mut auth, "alice", "correct horse", now);
        let verdict = radius.verify(DigestRequest::from(&*p)).await;
        let s = radius.stats().await.unwrap();
        println!("Message-Authenticator required: {verdict:?}, {s:?}");
        match verdict {
            Ok(Verdict::Accept) => assert_eq!(s.missing_message_authenticator, 0),
            Err(auth::radius::RadiusError::Timeout) => {
                assert!(s.missing_message_authenticator >= 1, "{s:?}")
            }
            other => panic!("{other:?}"),
        }
        drop(radius);
        task.await.unwrap();

        // Failover: the first server has nothing listening.
        let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let (radius, task) = RadiusHandle::spawn(
            config(vec![dead_addr, addr], DigestDialect::DraftSterman),
            bind,
            seed,
        )
        .await
        .unwrap();
        let p = pending_for(&mut auth, "alice", "correct horse", now);
        assert_eq!(
            radius.verify(DigestRequest::from(&*p)).await,
            Ok(Verdict::Accept)
        );
        let s = radius.stats().await.unwrap();
        println!("failover: {s:?}");
        assert_eq!((s.failovers, s.retransmitted, s.accepted), (1, 1, 1));
        drop(radius);
        task.await.unwrap();

        // Retransmission: the first datagram is lost on the way.
        let relay = lossy_relay(addr).await;
        let (radius, task) =
            RadiusHandle::spawn(config(vec![relay], DigestDialect::Rfc5090), bind, seed)
                .await
                .unwrap();
        let p = pending_for(&mut auth, "bob", "battery staple", now);
        assert_eq!(
            radius.verify(DigestRequest::from(&*p)).await,
            Ok(Verdict::Accept)
        );
        let s = radius.stats().await.unwrap();
        println!("retransmission: {s:?}");
        assert_eq!((s.retransmitted, s.failovers, s.accepted), (1, 0, 1));
        drop(radius);
        task.await.unwrap();
    });
    drop(server);
}
