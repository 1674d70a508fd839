//! UDP behaviour over loopback: Via stamping, stateless 400s, response routing, STUN,
//! keepalives, bounded queues.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use sip_message::{ErrorKind, Message};
use sip_transport::{Destination, DropReason, Outgoing, Protocol, SendError};
use tokio::net::UdpSocket;

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv_msg(s: &UdpSocket) -> (Message, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (n, from) = within(s.recv_from(&mut buf)).await.unwrap();
    buf.truncate(n);
    (Message::parse(buf).expect("SIP message"), from)
}

#[tokio::test]
async fn request_is_delivered_with_received_and_rport() {
    let (h, mut rx) = start(loopback_config()).await;
    let server = h.udp_addrs()[0];
    let c = client().await;
    let me = c.local_addr().unwrap();
    let req = request("OPTIONS", &via_udp("10.0.0.1:5062", "1", ";rport"), "");
    c.send_to(req.as_bytes(), server).await.unwrap();
    let inc = next(&mut rx).await;
    assert_eq!(inc.transport, Protocol::Udp);
    assert!(!inc.reliable);
    assert_eq!(inc.source, me);
    assert_eq!(inc.local, server);
    assert_eq!(inc.flow, h.udp_flows()[0]);
    let via = inc.msg.top_via().unwrap().unwrap();
    assert_eq!(via.received, Some(me.ip()));
    assert_eq!(via.rport, Some(Some(me.port())));
    assert_eq!(via.host_str, "10.0.0.1");
    assert_eq!(inc.source().remote, me);

    // Sent-by equal to the source and no rport: untouched, byte for byte.
    let req = request("INFO", &via_udp(&me.to_string(), "2", ""), "hi");
    c.send_to(req.as_bytes(), server).await.unwrap();
    let inc = next(&mut rx).await;
    assert_eq!(inc.msg.as_bytes(), req.as_bytes());
    assert_eq!(h.stats().udp_received, 2);
}

#[tokio::test]
async fn malformed_requests_get_a_stateless_400_with_the_reason() {
    let (h, mut rx) = start(loopback_config()).await;
    let server = h.udp_addrs()[0];
    let c = client().await;

    let bad = request("INVITE", &via_udp("10.0.0.1", "b1", ""), "")
        .replace("Content-Length: 0", "Content-Length: zz");
    c.send_to(bad.as_bytes(), server).await.unwrap();
    let (resp, from) = recv_msg(&c).await;
    assert_eq!(from, server);
    assert_eq!(resp.status(), Some(400));
    assert_eq!(resp.reason_phrase(), Some(&b"bad Content-Length"[..]));
    assert_eq!(resp.top_via().unwrap().unwrap().branch, Some("z9hG4bKb1"));
    assert!(resp.to().unwrap().unwrap().tag().is_some());
    assert_eq!(
        resp.call_id().unwrap().unwrap().0,
        "call-INVITE@example.com"
    );

    // A malformed top Via: the message parses, the transport cannot stamp it.
    let bad = request("OPTIONS", "SIP/2.0/UDP ho_st;branch=z9hG4bKb2", "");
    c.send_to(bad.as_bytes(), server).await.unwrap();
    let (resp, _) = recv_msg(&c).await;
    assert_eq!(resp.status(), Some(400));
    assert_eq!(resp.reason_phrase(), Some(&b"malformed Via"[..]));

    // Unanswerable (no CSeq) and a malformed response: counted drops, no answer.
    let bad = request("OPTIONS", &via_udp("10.0.0.1", "b3", ""), "")
        .replace("CSeq: 1 OPTIONS\r\n", "")
        .replace("Content-Length: 0", "Content-Length: -1");
    c.send_to(bad.as_bytes(), server).await.unwrap();
    c.send_to(b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n", server)
        .await
        .unwrap();
    // An ACK is never answered.
    let ack = request("ACK", &via_udp("10.0.0.1", "b4", ""), "")
        .replace("Content-Length: 0", "Content-Length: q");
    c.send_to(ack.as_bytes(), server).await.unwrap();
    let s = wait_stats(&h, |s| {
        s.udp_received == 5
            && s.dropped(DropReason::UnanswerableRequest) == 2
            && s.dropped(DropReason::BadResponse) == 1
    })
    .await;
    assert_eq!(s.bad_requests_answered, 2);
    assert_eq!(s.parse_errors_of(ErrorKind::BadContentLength), 4);
    assert_eq!(s.parse_errors_of(ErrorKind::BadVia), 1);
    assert!(rx.try_recv().is_err(), "nothing delivered");
}

#[tokio::test]
async fn responses_are_routed_by_via() {
    let (h, mut rx) = start(loopback_config()).await;
    let server = h.udp_addrs()[0];
    let c = client().await;
    let me = c.local_addr().unwrap();

    // rport: the response goes to the source port, whatever dest.remote says.
    let req = request("OPTIONS", &via_udp("10.9.9.9:5999", "r1", ";rport"), "");
    c.send_to(req.as_bytes(), server).await.unwrap();
    let inc = next(&mut rx).await;
    let resp = sip_transaction::response_for(&inc.msg, 200, "OK", Some("t1")).unwrap();
    let dest = Destination {
        remote: addr("127.0.0.1:9"),
        flow: Some(inc.flow),
        reliable: false,
    };
    let sent = h.send(Outgoing::new(resp.wire(), dest)).unwrap();
    assert_eq!(
        (sent.protocol, sent.remote, sent.flow),
        (Protocol::Udp, me, inc.flow)
    );
    let (got, from) = recv_msg(&c).await;
    assert_eq!(from, server);
    assert_eq!(got.status(), Some(200));
    let via = got.top_via().unwrap().unwrap();
    assert_eq!(via.rport, Some(Some(me.port())));

    // No rport: received address and sent-by port (RFC 3261 18.2.2).
    let other = client().await;
    let other_port = other.local_addr().unwrap().port();
    let req = request(
        "OPTIONS",
        &via_udp(&format!("localhost:{other_port}"), "r2", ""),
        "",
    );
    c.send_to(req.as_bytes(), server).await.unwrap();
    let inc = next(&mut rx).await;
    assert_eq!(
        inc.msg.top_via().unwrap().unwrap().received,
        Some(me.ip()),
        "host name sent-by gets received"
    );
    let resp = sip_transaction::response_for(&inc.msg, 404, "Not Here", Some("t2")).unwrap();
    h.send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap();
    let (got, _) = recv_msg(&other).await;
    assert_eq!(got.status(), Some(404));

    // Host name and no received: needs DNS, refused.
    let resp = Message::parse(
        &b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP pc.example.com;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
           To: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"[..],
    )
    .unwrap();
    let err = h
        .send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Route(sip_transport::RouteError::NeedsResolution)
    );
    // route_by_via = false: dest as given.
    let mut out = Outgoing::new(
        resp.wire(),
        Destination {
            remote: me,
            flow: None,
            reliable: false,
        },
    );
    out.route_by_via = false;
    h.send(out).unwrap();
    let (got, _) = recv_msg(&c).await;
    assert_eq!(got.call_id().unwrap().unwrap().0, "x");
}

#[tokio::test]
async fn a_udp_request_whose_via_names_tls_is_answered_over_udp() {
    let (h, mut rx) = start(loopback_config()).await;
    let server = h.udp_addrs()[0];
    let c = client().await;
    let me = c.local_addr().unwrap();
    // RFC 4475 bext01: the Via says TLS (which this transport does not speak) and no rport.
    let req = request(
        "OPTIONS",
        "SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKtls1",
        "",
    );
    c.send_to(req.as_bytes(), server).await.unwrap();
    let inc = next(&mut rx).await;
    let resp = sip_transaction::response_for(&inc.msg, 420, "Bad Extension", Some("t")).unwrap();
    let mut force = loopback_config();
    force.force_rport = true;
    let sent = h
        .send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap();
    // Without rport: the received address and the sent-by port, over UDP.
    assert_eq!(sent.protocol, Protocol::Udp);
    assert_eq!(sent.remote, addr("127.0.0.1:5061"));

    // With rport (what sipwarden asks of its transport, force_rport): back to the source.
    let (h2, mut rx2) = start(force).await;
    c.send_to(req.as_bytes(), h2.udp_addrs()[0]).await.unwrap();
    let inc = next(&mut rx2).await;
    let resp = sip_transaction::response_for(&inc.msg, 420, "Bad Extension", Some("t")).unwrap();
    let sent = h2
        .send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap();
    assert_eq!((sent.protocol, sent.remote), (Protocol::Udp, me));
    let (got, _) = recv_msg(&c).await;
    assert_eq!(got.status(), Some(420));
}

#[tokio::test]
async fn requests_go_out_from_the_flow_socket() {
    let mut cfg = loopback_config();
    cfg.udp.push(addr("127.0.0.1:0"));
    let (h, _rx) = start(cfg).await;
    let c = client().await;
    let second = h.udp_flows()[1];
    let req = request(
        "OPTIONS",
        &via_udp(&h.udp_addrs()[1].to_string(), "o1", ""),
        "",
    );
    let sent = h
        .send(Outgoing::new(
            Bytes::from(req),
            Destination {
                remote: c.local_addr().unwrap(),
                flow: Some(second),
                reliable: false,
            },
        ))
        .unwrap();
    assert_eq!(sent.flow, second);
    let (_, from) = recv_msg(&c).await;
    assert_eq!(from, h.udp_addrs()[1]);
    // No IPv6 socket: NoSocket.
    let err = h
        .send(Outgoing::new(
            Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"),
            Destination {
                remote: addr("[::1]:5060"),
                flow: None,
                reliable: false,
            },
        ))
        .unwrap_err();
    assert_eq!(err, SendError::NoSocket);
}

#[tokio::test]
async fn stun_binding_on_the_sip_port() {
    let (h, mut rx) = start(loopback_config()).await;
    let server = h.udp_addrs()[0];
    let c = client().await;
    let me = c.local_addr().unwrap();
    let tid = stun::TransactionId(*b"sipwarden-12");
    let req = stun::MessageBuilder::new(stun::BINDING, stun::Class::Request, tid).finish(true);
    c.send_to(&req, server).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, from) = within(c.recv_from(&mut buf)).await.unwrap();
    assert_eq!(from, server);
    let m = stun::parse(&buf[..n]).unwrap();
    assert_eq!(m.class(), stun::Class::SuccessResponse);
    assert_eq!(m.transaction_id(), tid);
    assert_eq!(m.xor_mapped_address(), Some(me));
    assert!(m.has_fingerprint());

    // A binding indication is a keepalive: no answer, counted.
    let ind = stun::MessageBuilder::new(stun::BINDING, stun::Class::Indication, tid).finish(false);
    c.send_to(&ind, server).await.unwrap();
    let s = wait_stats(&h, |s| s.keepalives == 1).await;
    assert_eq!(s.stun_answered, 1);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn crlf_keepalives_are_ignored_or_answered() {
    let (h, _rx) = start(loopback_config()).await;
    let c = client().await;
    c.send_to(b"\r\n\r\n", h.udp_addrs()[0]).await.unwrap();
    wait_stats(&h, |s| s.keepalives == 1).await;
    assert_eq!(h.stats().pongs, 0);

    let mut cfg = loopback_config();
    cfg.udp_keepalive_pong = true;
    let (h, _rx) = start(cfg).await;
    c.send_to(b"\r\n\r\n", h.udp_addrs()[0]).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = within(c.recv_from(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"\r\n");
}

#[tokio::test]
async fn a_full_incoming_queue_is_a_counted_drop() {
    let mut cfg = loopback_config();
    cfg.incoming_queue = 1;
    let (h, mut rx) = start(cfg).await;
    let c = client().await;
    for i in 0..3 {
        let req = request("OPTIONS", &via_udp("10.0.0.1", &format!("q{i}"), ""), "");
        c.send_to(req.as_bytes(), h.udp_addrs()[0]).await.unwrap();
    }
    let s = wait_stats(&h, |s| s.udp_received == 3).await;
    assert_eq!(s.dropped(DropReason::IncomingQueueFull), 2);
    let first = next(&mut rx).await;
    assert_eq!(
        first.msg.top_via().unwrap().unwrap().branch,
        Some("z9hG4bKq0")
    );
}

#[tokio::test]
async fn shutdown_stops_sending_and_ends_the_channel() {
    let (h, mut rx) = start(loopback_config()).await;
    h.shutdown();
    let err = h
        .send(Outgoing::new(
            Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"),
            Destination {
                remote: addr("127.0.0.1:9"),
                flow: None,
                reliable: false,
            },
        ))
        .unwrap_err();
    assert_eq!(err, SendError::Shutdown);
    drop(h);
    assert!(within(rx.recv()).await.is_none());
}

#[tokio::test]
async fn ipv6_loopback_stun_and_received() {
    // Skipped where the machine has no IPv6 loopback.
    let Ok(c) = UdpSocket::bind("[::1]:0").await else {
        eprintln!("no [::1]: skipped");
        return;
    };
    let cfg = sip_transport::TransportConfig {
        udp: vec![addr("[::1]:0")],
        ..sip_transport::TransportConfig::default()
    };
    let (h, mut rx) = start(cfg).await;
    let server = h.udp_addrs()[0];
    let me = c.local_addr().unwrap();
    let tid = stun::TransactionId([6; 12]);
    let req = stun::MessageBuilder::new(stun::BINDING, stun::Class::Request, tid).finish(false);
    c.send_to(&req, server).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, _) = within(c.recv_from(&mut buf)).await.unwrap();
    let m = stun::parse(&buf[..n]).unwrap();
    assert_eq!(m.xor_mapped_address(), Some(me));
    assert!(!m.has_fingerprint());

    let r = request(
        "OPTIONS",
        &via_udp("[2001:db8::5]:5060", "v6", ";rport"),
        "",
    );
    c.send_to(r.as_bytes(), server).await.unwrap();
    let inc = next(&mut rx).await;
    let via = inc.msg.top_via().unwrap().unwrap();
    assert_eq!(via.received, Some(me.ip()));
    assert_eq!(via.rport, Some(Some(me.port())));
    let resp = sip_transaction::response_for(&inc.msg, 200, "OK", Some("t")).unwrap();
    h.send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap();
    let (got, _) = recv_msg(&c).await;
    assert_eq!(got.status(), Some(200));
}
