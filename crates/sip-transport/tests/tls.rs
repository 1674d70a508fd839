//! TLS over loopback: handshakes (1.3 and 1.2), SNI, mutual TLS (accepted, and refused for no
//! certificate, another CA, an expired and a revoked certificate), outgoing TLS with host name
//! verification, require-TLS, handshake limits and certificate reload. Every certificate is
//! made here with rcgen, in a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use sip_transport::tls::{self, CertFiles, ClientAuth, ClientTls, ServerTls, SniCert};
use sip_transport::{
    Destination, DropReason, FailureKind, Incoming, Outgoing, Protocol, SendError, TlsListener,
    TlsRequired, TransportConfig, TransportHandle, TxId,
};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses), with a URI SAN when given.
    fn issue(&self, cn: &str, names: &[&str], uri: Option<&str>, leaf: Leaf) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if let Some(u) = uri {
            p.subject_alt_names
                .push(SanType::URI(u.to_string().try_into().unwrap()));
        }
        p.serial_number = Some(SerialNumber::from(leaf.serial));
        let now = OffsetDateTime::now_utc();
        if leaf.expired {
            p.not_before = now - time::Duration::days(30);
            p.not_after = now - time::Duration::days(1);
        } else {
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(leaf.days);
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn crl(&self, revoked: &[u64]) -> String {
        let now = OffsetDateTime::now_utc();
        let p = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        p.signed_by(&self.issuer).unwrap().pem().unwrap()
    }
}

#[derive(Clone, Copy)]
struct Leaf {
    serial: u64,
    expired: bool,
    days: i64,
}

fn leaf(serial: u64) -> Leaf {
    Leaf {
        serial,
        expired: false,
        days: 90,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes a leaf's chain and key as `NAME.pem` and `NAME.key`.
fn files(dir: &Path, name: &str, (cert, key): &(String, String)) -> CertFiles {
    CertFiles {
        chain: write(dir, &format!("{name}.pem"), cert),
        key: write(dir, &format!("{name}.key"), key),
    }
}

fn tls_config(listener: ServerTls) -> TransportConfig {
    TransportConfig {
        tls: vec![TlsListener {
            addr: addr("127.0.0.1:0"),
            config: tls::ServerTlsConfig::server(listener).unwrap(),
        }],
        tls_reload_check: None,
        ..TransportConfig::default()
    }
}

fn server_only(default: CertFiles) -> ServerTls {
    ServerTls {
        default,
        sni: vec![],
        client_auth: None,
    }
}

fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<(&str, &str)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

async fn connect(
    cfg: Arc<rustls::ClientConfig>,
    to: std::net::SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(to).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    within(TlsConnector::from(cfg).connect(name, tcp)).await
}

fn leaf_cn(s: &TlsStream<TcpStream>) -> String {
    let certs = s.get_ref().1.peer_certificates().unwrap();
    tls::cert_summary(&certs[0]).unwrap().common_name.unwrap()
}

fn options(branch: &str) -> String {
    request(
        "OPTIONS",
        &format!("SIP/2.0/TLS client.test:5061;branch=z9hG4bK{branch}"),
        "",
    )
}

/// Writes a request, expects it delivered over TLS, answers it on its flow and reads the
/// answer back.
async fn round_trip(
    s: &mut TlsStream<TcpStream>,
    h: &TransportHandle,
    rx: &mut mpsc::Receiver<Incoming>,
    branch: &str,
) -> Incoming {
    s.write_all(options(branch).as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let m = next(rx).await;
    assert_eq!(m.transport, Protocol::Tls);
    assert!(m.reliable);
    let resp = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS client.test:5061;branch=z9hG4bK{branch}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b\r\n\
         Call-ID: call-OPTIONS@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let sent = h
        .send(Outgoing::new(Bytes::from(resp), m.source().into()))
        .unwrap();
    assert_eq!((sent.protocol, sent.flow), (Protocol::Tls, m.flow));
    let mut buf = vec![0u8; 4096];
    let n = within(s.read(&mut buf)).await.unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    m
}

#[tokio::test]
async fn tls13_and_tls12_handshakes_carry_sip() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let srv = files(
        dir.path(),
        "srv",
        &ca.issue("sbc", &["sbc.test"], None, leaf(2)),
    );
    let (h, mut rx) = start(tls_config(server_only(srv))).await;
    let to = h.tls_addrs()[0];

    for (v, want) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let mut s = connect(client_config(&ca.pem, &[v], None), to, "sbc.test")
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.protocol_version(), Some(want));
        let m = round_trip(&mut s, &h, &mut rx, &format!("{want:?}")).await;
        // No client certificate was asked for.
        assert!(m.peer.is_none());
        let info = h.flow(m.flow).unwrap();
        assert_eq!(info.protocol, Protocol::Tls);
        // A CRLFCRLF ping gets a CRLF pong over TLS too.
        s.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        within(s.read_exact(&mut pong)).await.unwrap();
        assert_eq!(&pong, b"\r\n");
    }
    let st = h.stats();
    assert_eq!(st.tls_handshakes, 2);
    assert_eq!(st.tls_handshake_failures, 0);
}

#[tokio::test]
async fn sni_chooses_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let default = files(
        dir.path(),
        "d",
        &ca.issue("default", &["default.test"], None, leaf(2)),
    );
    let a = files(dir.path(), "a", &ca.issue("a", &["a.test"], None, leaf(3)));
    let w = files(
        dir.path(),
        "w",
        &ca.issue("w", &["*.w.test"], None, leaf(4)),
    );
    let (h, _rx) = start(tls_config(ServerTls {
        default,
        // Names from the certificates' subjectAltNames.
        sni: vec![
            SniCert {
                names: vec![],
                files: a,
            },
            SniCert {
                names: vec![],
                files: w,
            },
        ],
        client_auth: None,
    }))
    .await;
    let to = h.tls_addrs()[0];
    let cfg = client_config(&ca.pem, &[&rustls::version::TLS13], None);
    for (name, cn) in [
        ("a.test", "a"),
        ("A.Test", "a"),
        ("x.w.test", "w"),
        ("default.test", "default"),
    ] {
        let s = connect(cfg.clone(), to, name).await.unwrap();
        assert_eq!(leaf_cn(&s), cn, "{name}");
    }
    // A name nobody serves gets the default certificate, which the client refuses.
    assert!(connect(cfg, to, "other.test").await.is_err());
}

struct Mtls {
    dir: tempfile::TempDir,
    ca: Ca,
    h: TransportHandle,
    rx: mpsc::Receiver<Incoming>,
}

async fn mtls(required: bool, revoked: &[u64]) -> Mtls {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Server CA");
    let clients = Ca::new("Client CA");
    let srv = files(
        dir.path(),
        "srv",
        &ca.issue("sbc", &["sbc.test"], None, leaf(2)),
    );
    write(dir.path(), "server-ca.pem", &ca.pem);
    let client_ca = write(dir.path(), "clients.pem", &clients.pem);
    let crl = write(dir.path(), "clients.crl", &clients.crl(revoked));
    let (h, rx) = start(tls_config(ServerTls {
        default: srv,
        sni: vec![],
        client_auth: Some(ClientAuth {
            ca: client_ca,
            crl: Some(crl),
            required,
        }),
    }))
    .await;
    Mtls {
        dir,
        ca: clients,
        h,
        rx,
    }
}

/// Whether the server accepts a client: with TLS 1.3 the client finishes before the server
/// has checked its certificate, so the proof is a message delivered (or not).
async fn accepted(m: &mut Mtls, server_ca: &str, client: Option<(&str, &str)>) -> bool {
    let cfg = client_config(server_ca, &[&rustls::version::TLS13], client);
    let Ok(mut s) = connect(cfg, m.h.tls_addrs()[0], "sbc.test").await else {
        return false;
    };
    if s.write_all(options("m").as_bytes()).await.is_err() || s.flush().await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
        return false;
    }
    tokio::time::timeout(Duration::from_millis(500), m.rx.recv())
        .await
        .is_ok()
}

#[tokio::test]
async fn mutual_tls_accepts_valid_client_certificates_and_names_the_peer() {
    let mut m = mtls(true, &[66]).await;
    let sca = server_ca_pem(m.dir.path());
    let good = m.ca.issue(
        "pbx.corp.test",
        &["pbx.corp.test"],
        Some("sip:pbx.corp.test"),
        leaf(10),
    );
    let cfg = client_config(&sca, &[&rustls::version::TLS13], Some((&good.0, &good.1)));
    let mut s = connect(cfg, m.h.tls_addrs()[0], "sbc.test").await.unwrap();
    let inc = round_trip(&mut s, &m.h, &mut m.rx, "ok").await;
    let peer = inc.peer.clone().expect("peer identity");
    assert_eq!(peer.common_name.as_deref(), Some("pbx.corp.test"));
    assert_eq!(peer.dns_names, ["pbx.corp.test"]);
    assert_eq!(peer.uris, ["sip:pbx.corp.test"]);
    assert_eq!(m.h.peer_identity(inc.flow), Some(peer));
    assert!(accepted(&mut m, &sca, Some((&good.0, &good.1))).await);
}

/// The server CA's certificate: the tests keep it next to the leaf.
fn server_ca_pem(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server-ca.pem")).unwrap()
}

#[tokio::test]
async fn mutual_tls_refuses_missing_foreign_expired_and_revoked_certificates() {
    let mut m = mtls(true, &[66]).await;
    let sca = server_ca_pem(m.dir.path());
    let other = Ca::new("Other CA");
    let foreign = other.issue("x", &["x.test"], None, leaf(11));
    let expired = m.ca.issue(
        "old",
        &["old.test"],
        None,
        Leaf {
            serial: 12,
            expired: true,
            days: 0,
        },
    );
    let revoked = m.ca.issue("gone", &["gone.test"], None, leaf(66));
    let good = m.ca.issue("ok", &["ok.test"], None, leaf(13));

    assert!(!accepted(&mut m, &sca, None).await, "no certificate");
    assert!(
        !accepted(&mut m, &sca, Some((&foreign.0, &foreign.1))).await,
        "another CA"
    );
    assert!(
        !accepted(&mut m, &sca, Some((&expired.0, &expired.1))).await,
        "expired"
    );
    assert!(
        !accepted(&mut m, &sca, Some((&revoked.0, &revoked.1))).await,
        "revoked"
    );
    // Refusals are counted as failed handshakes, and the listener still serves good clients.
    let st = wait_stats(&m.h, |s| s.tls_handshake_failures >= 4).await;
    assert_eq!(st.tls_handshake_failures, 4);
    assert!(accepted(&mut m, &sca, Some((&good.0, &good.1))).await);
    assert_eq!(m.h.stats().tls_handshake_failures, 4);
}

#[tokio::test]
async fn optional_client_certificates_are_verified_when_sent() {
    let mut m = mtls(false, &[]).await;
    let sca = server_ca_pem(m.dir.path());
    let other = Ca::new("Other CA");
    let foreign = other.issue("x", &["x.test"], None, leaf(11));
    assert!(accepted(&mut m, &sca, None).await);
    assert!(!accepted(&mut m, &sca, Some((&foreign.0, &foreign.1))).await);
}

/// A TLS client transport (outgoing connections verify against `ca`).
async fn client_transport(ca: &Path) -> (TransportHandle, mpsc::Receiver<Incoming>) {
    let client = tls::ClientTlsConfig::client(ClientTls {
        ca_bundle: Some(ca.to_owned()),
        certificate: None,
    })
    .unwrap();
    start(TransportConfig {
        udp: vec![addr("127.0.0.1:0")],
        tls_client: Some(client),
        tls_reload_check: None,
        ..TransportConfig::default()
    })
    .await
}

fn tls_request(ruri: &str, branch: &str) -> Bytes {
    Bytes::from(format!(
        "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@a.test>;tag=1\r\nTo: <{ruri}>\r\n\
         Call-ID: {branch}@a.test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ))
}

#[tokio::test]
async fn outgoing_tls_verifies_the_next_hop_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let srv = files(
        dir.path(),
        "b",
        &ca.issue("b", &["b.test", "127.0.0.1"], None, leaf(2)),
    );
    let (b, mut b_rx) = start(tls_config(server_only(srv))).await;
    let (a, mut a_rx) = client_transport(&ca_file).await;
    let mut failures = a.take_send_failures().unwrap();
    let to = b.tls_addrs()[0];
    let dest = Destination {
        remote: to,
        flow: None,
        reliable: true,
    };

    let sent = a
        .send(Outgoing::new(tls_request("sips:bob@b.test", "ok"), dest))
        .unwrap();
    assert_eq!(sent.protocol, Protocol::Tls);
    assert!(sent.new_connection);
    let m = next(&mut b_rx).await;
    assert_eq!(m.transport, Protocol::Tls);
    // The answer comes back on the same connection.
    let resp =
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKok;received=127.0.0.1\r\n\
         From: <sip:a@a.test>;tag=1\r\nTo: <sips:bob@b.test>;tag=2\r\nCall-ID: ok@a.test\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    b.send(Outgoing::new(
        Bytes::from_static(resp.as_bytes()),
        m.source().into(),
    ))
    .unwrap();
    let r = next(&mut a_rx).await;
    assert_eq!((r.transport, r.flow), (Protocol::Tls, sent.flow));
    // The server's certificate names are known on the client side too.
    let peer = a.peer_identity(sent.flow).unwrap();
    assert_eq!(peer.dns_names, ["b.test"]);
    // A second request reuses the connection.
    let again = a
        .send(Outgoing::new(tls_request("sips:bob@b.test", "ok2"), dest))
        .unwrap();
    assert_eq!((again.flow, again.new_connection), (sent.flow, false));
    next(&mut b_rx).await;

    // An IP address host is verified against the IP subjectAltName (through a Route).
    let closed = a.close_flow(sent.flow);
    assert!(closed);
    let mut routed = String::from_utf8(tls_request("sips:bob@b.test", "ip").to_vec()).unwrap();
    routed = routed.replace(
        "Max-Forwards",
        &format!(
            "Route: <sip:127.0.0.1:{};transport=tls;lr>\r\nMax-Forwards",
            to.port()
        ),
    );
    a.send(Outgoing::new(Bytes::from(routed), dest)).unwrap();
    next(&mut b_rx).await;

    // A name the certificate does not carry: the handshake fails and the transaction learns it.
    let bad = a
        .send(
            Outgoing::new(tls_request("sips:bob@wrong.test", "bad"), dest).with_tx(Some(some_tx())),
        )
        .unwrap();
    assert!(bad.new_connection);
    let f = within(failures.recv()).await.unwrap();
    assert_eq!(
        (f.protocol, f.kind, f.remote),
        (Protocol::Tls, FailureKind::ConnectFailed, to)
    );
    let st = wait_stats(&a, |s| s.tls_handshake_failures == 1).await;
    assert_eq!(st.tls_handshakes, 2);
}

/// A transaction id as the transaction layer hands them out.
fn some_tx() -> TxId {
    use sip_transaction::{testkit::RequestBuilder, Config, TransactionLayer};
    let mut layer = TransactionLayer::new(Config::default());
    let branch = layer.new_branch();
    let id = layer
        .send_request(
            std::time::Instant::now(),
            RequestBuilder::new("OPTIONS", Some(&branch)).build(),
            Destination {
                remote: addr("127.0.0.1:9"),
                flow: None,
                reliable: true,
            },
        )
        .unwrap();
    TxId::Client(id)
}

#[tokio::test]
async fn plain_text_is_refused_where_tls_is_required() {
    let (h, mut rx) = start(TransportConfig {
        udp: vec![addr("127.0.0.1:0")],
        tcp: vec![addr("127.0.0.1:0")],
        tls_required: TlsRequired::new(|ip| ip.is_loopback()),
        ..TransportConfig::default()
    })
    .await;
    let remote = addr("127.0.0.1:5999");
    for reliable in [false, true] {
        let dest = Destination {
            remote,
            flow: None,
            reliable,
        };
        let req = Bytes::from(request("OPTIONS", &via_udp("127.0.0.1:5060", "p", ""), ""));
        assert_eq!(
            h.send(Outgoing::new(req, dest)).unwrap_err(),
            SendError::TlsRequired
        );
    }
    // Nothing plain is accepted from there either.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        request("OPTIONS", &via_udp("127.0.0.1:1", "q", ""), "").as_bytes(),
        h.udp_addrs()[0],
    )
    .unwrap();
    let st = wait_stats(&h, |s| s.dropped(DropReason::PlainInTlsZone) == 1).await;
    assert_eq!(st.udp_received, 1);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn sips_never_leaves_in_plain_text() {
    let (h, _rx) = start(loopback_config()).await;
    for reliable in [false, true] {
        let dest = Destination {
            remote: addr("127.0.0.1:5999"),
            flow: None,
            reliable,
        };
        let req = Bytes::from(
            request("OPTIONS", &via_udp("127.0.0.1:5060", "s", ""), "").replacen(
                "sip:bob@example.com",
                "sips:bob@example.com",
                1,
            ),
        );
        assert_eq!(
            h.send(Outgoing::new(req, dest)).unwrap_err(),
            SendError::TlsRequired
        );
    }
    // A TLS request without a client configuration cannot leave either.
    let dest = Destination {
        remote: addr("127.0.0.1:5999"),
        flow: None,
        reliable: true,
    };
    assert_eq!(
        h.send(Outgoing::new(tls_request("sips:b@b.test", "n"), dest))
            .unwrap_err(),
        SendError::NoTlsClient
    );
}

#[tokio::test]
async fn handshake_floods_are_limited_and_stalled_handshakes_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let srv = files(
        dir.path(),
        "srv",
        &ca.issue("sbc", &["sbc.test"], None, leaf(2)),
    );
    let mut cfg = tls_config(server_only(srv));
    cfg.tls_handshakes_per_source = 3;
    cfg.tls_handshake_timeout = Duration::from_millis(200);
    let (h, _rx) = start(cfg).await;
    let to = h.tls_addrs()[0];
    // Ten connections that never say hello: three are admitted (and time out), seven are
    // closed at once.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(to).await.unwrap());
    }
    let st = wait_stats(&h, |s| s.tls_handshake_timeouts == 3).await;
    assert_eq!(st.tls_handshakes_rate_limited, 7);
    assert_eq!(st.dropped(DropReason::HandshakeRateLimited), 7);
    assert_eq!(h.connection_count(), 0);
    // Tokens come back with time.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let c = client_config(&ca.pem, &[&rustls::version::TLS13], None);
    connect(c, to, "sbc.test").await.unwrap();
    drop(held);
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_established_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let first = ca.issue("first", &["sbc.test"], None, leaf(2));
    let srv = files(dir.path(), "srv", &first);
    let (h, mut rx) = start(tls_config(server_only(srv))).await;
    let to = h.tls_addrs()[0];
    let cfg = client_config(&ca.pem, &[&rustls::version::TLS13], None);
    let mut old = connect(cfg.clone(), to, "sbc.test").await.unwrap();
    assert_eq!(leaf_cn(&old), "first");
    round_trip(&mut old, &h, &mut rx, "before").await;

    // A broken file: the reload fails and the running certificate stays.
    write(dir.path(), "srv.key", "not a key");
    assert_eq!(h.reload_tls().len(), 1);
    let s = connect(cfg.clone(), to, "sbc.test").await.unwrap();
    assert_eq!(leaf_cn(&s), "first");

    files(
        dir.path(),
        "srv",
        &ca.issue("second", &["sbc.test"], None, leaf(3)),
    );
    assert!(h.reload_tls().is_empty());
    let new = connect(cfg, to, "sbc.test").await.unwrap();
    assert_eq!(leaf_cn(&new), "second");
    // The connection made before the swap carries on.
    round_trip(&mut old, &h, &mut rx, "after").await;
    let st = h.stats();
    assert_eq!((st.tls_reloads, st.tls_reload_failures), (1, 1));
}

#[tokio::test]
async fn changed_files_are_picked_up_by_the_poller() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let srv = files(
        dir.path(),
        "srv",
        &ca.issue("first", &["sbc.test"], None, leaf(2)),
    );
    let mut cfg = tls_config(server_only(srv));
    cfg.tls_reload_check = Some(Duration::from_millis(100));
    let (h, _rx) = start(cfg).await;
    let to = h.tls_addrs()[0];
    files(
        dir.path(),
        "srv",
        &ca.issue("second", &["sbc.test"], None, leaf(3)),
    );
    wait_stats(&h, |s| s.tls_reloads >= 1).await;
    let c = client_config(&ca.pem, &[&rustls::version::TLS13], None);
    let s = connect(c, to, "sbc.test").await.unwrap();
    assert_eq!(leaf_cn(&s), "second");
}

#[test]
fn certificate_summaries_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let soon = files(
        dir.path(),
        "soon",
        &ca.issue(
            "soon",
            &["soon.test"],
            Some("sip:soon.test"),
            Leaf {
                serial: 5,
                expired: false,
                days: 10,
            },
        ),
    );
    let s = tls::file_summaries(&soon.chain).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].common_name.as_deref(), Some("soon"));
    assert!(s[0].subject.contains("CN=soon"), "{}", s[0].subject);
    assert_eq!(s[0].uris, ["sip:soon.test"]);
    assert!(matches!(
        tls::expiry(
            s[0].not_after,
            std::time::SystemTime::now(),
            tls::EXPIRY_WARNING
        ),
        tls::Expiry::Soon { days_left: 9 | 10 }
    ));
    // A key that is not the certificate's is refused when loading.
    let other = ca.issue("o", &["o.test"], None, leaf(6));
    let mismatched = CertFiles {
        chain: soon.chain.clone(),
        key: write(dir.path(), "other.key", &other.1),
    };
    assert!(matches!(
        tls::load_certified_key(&mismatched),
        Err(tls::TlsError::BadKey { .. })
    ));
}

/// What a refused client reads after the handshake: the alert that says why.
async fn refusal_seen_by_client(m: &Mtls, server_ca: &str, client: Option<(&str, &str)>) -> String {
    let cfg = client_config(server_ca, &[&rustls::version::TLS13], client);
    let mut s = match connect(cfg, m.h.tls_addrs()[0], "sbc.test").await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    // The client's next flight (a request) is unread input at the server when it refuses.
    let _ = s.write_all(options("r").as_bytes()).await;
    let _ = s.flush().await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(n)) => format!("read {n} bytes"),
        Err(_) => "no answer".to_owned(),
    }
}

#[tokio::test]
async fn refused_clients_read_the_alert_that_says_why() {
    let m = mtls(true, &[]).await;
    let sca = server_ca_pem(m.dir.path());
    let foreign = Ca::new("Other CA").issue("x", &["x.test"], None, leaf(21));
    // Several times: the client's next flight reaches the server at varying points of the
    // refusal (phones that pipeline it saw resets before the server closed gracefully).
    for _ in 0..5 {
        let none = refusal_seen_by_client(&m, &sca, None).await;
        assert!(
            none.contains("CertificateRequired"),
            "no certificate: {none}"
        );
        let other = refusal_seen_by_client(&m, &sca, Some((&foreign.0, &foreign.1))).await;
        assert!(
            other.contains("UnknownCA") || other.contains("BadCertificate"),
            "another CA: {other}"
        );
    }
}
