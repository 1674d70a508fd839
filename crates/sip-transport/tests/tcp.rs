//! TCP behaviour over loopback: framing, keepalive ping/pong, idle close, connection limits,
//! connection reuse, outbound connects, the UDP-to-TCP switch of large requests.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use sip_message::{Frame, Limits, Message, StreamFramer};
use sip_transport::{Destination, DropReason, Outgoing, Protocol, SendError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn via_tcp(sent_by: &str, branch: &str) -> String {
    format!("SIP/2.0/TCP {sent_by};branch=z9hG4bK{branch}")
}

/// Reads from `s` until one SIP message is framed.
async fn read_msg(s: &mut TcpStream, framer: &mut StreamFramer) -> Message {
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        if let Some(Frame::Message(m)) = framer.next_frame().unwrap() {
            return Message::parse(m).unwrap();
        }
        let n = within(s.read(&mut buf)).await.unwrap();
        assert!(n > 0, "connection closed");
        framer.push(&buf[..n]);
    }
    panic!("no message");
}

/// Waits until the peer closes `s` (EOF or reset).
async fn closed(s: &mut TcpStream) {
    let mut buf = [0u8; 256];
    for _ in 0..100 {
        match within(s.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    panic!("still open");
}

#[tokio::test]
async fn pipelined_and_partial_messages() {
    let (h, mut rx) = start(loopback_config()).await;
    let mut c = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    let me = c.local_addr().unwrap();
    let a = request("OPTIONS", &via_tcp("10.0.0.1", "p1"), "");
    let b = request("MESSAGE", &via_tcp("10.0.0.1", "p2"), "hello");
    c.write_all(format!("{a}{b}").as_bytes()).await.unwrap();
    let m1 = next(&mut rx).await;
    let m2 = next(&mut rx).await;
    assert_eq!(m1.msg.method_str(), Some("OPTIONS"));
    assert_eq!(m2.msg.method_str(), Some("MESSAGE"));
    assert_eq!(m2.msg.body(), b"hello");
    assert_eq!(m1.flow, m2.flow);
    assert!(m1.reliable);
    assert_eq!(m1.transport, Protocol::Tcp);
    assert_eq!(m1.source, me);
    assert_eq!(m1.local, h.tcp_addrs()[0]);
    assert_eq!(
        m1.msg.top_via().unwrap().unwrap().received,
        Some(me.ip()),
        "received stamped on TCP too"
    );

    // One message in three writes.
    let c3 = request("INFO", &via_tcp("10.0.0.1", "p3"), "body!");
    let bytes = c3.as_bytes();
    for part in [&bytes[..10], &bytes[10..60], &bytes[60..]] {
        c.write_all(part).await.unwrap();
        c.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m3 = next(&mut rx).await;
    assert_eq!(m3.msg.method_str(), Some("INFO"));
    assert_eq!(m3.msg.body(), b"body!");
    assert_eq!(m3.flow, m1.flow);
    assert_eq!(h.stats().tcp_received, 3);
}

#[tokio::test]
async fn ping_gets_pong_and_bad_frames_get_400() {
    let (h, mut rx) = start(loopback_config()).await;
    let mut c = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    c.write_all(b"\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 8];
    let n = within(c.read(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"\r\n");

    // A framed message that does not parse: 400 on the same connection, which stays open.
    let bad = request("OPTIONS", &via_tcp("10.0.0.1", "x1"), "").replace(
        "sip:bob@example.com SIP/2.0",
        "sip:bob@example.com SIP/2.0 ",
    );
    c.write_all(bad.as_bytes()).await.unwrap();
    let mut framer = StreamFramer::new(Limits::DEFAULT);
    let resp = read_msg(&mut c, &mut framer).await;
    assert_eq!(resp.status(), Some(400));
    assert_eq!(resp.reason_phrase(), Some(&b"malformed SIP version"[..]));
    let ok = request("OPTIONS", &via_tcp("10.0.0.1", "x2"), "");
    c.write_all(ok.as_bytes()).await.unwrap();
    assert_eq!(next(&mut rx).await.msg.method_str(), Some("OPTIONS"));

    // No Content-Length on a stream: framing error, the connection is closed.
    c.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n")
        .await
        .unwrap();
    closed(&mut c).await;
    let s = wait_stats(&h, |s| s.connections_closed == 1).await;
    assert_eq!(s.pongs, 1);
    assert_eq!(s.dropped(DropReason::FramingError), 1);
    assert_eq!(s.framing_errors.len(), 1);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut cfg = loopback_config();
    cfg.tcp_idle_timeout = Duration::from_millis(200);
    let (h, _rx) = start(cfg).await;
    let mut c = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    wait_stats(&h, |s| s.open_connections == 1).await;
    closed(&mut c).await;
    let s = wait_stats(&h, |s| s.open_connections == 0).await;
    assert_eq!(s.connections_idle_closed, 1);
    assert_eq!(h.connection_count(), 0);
}

#[tokio::test]
async fn per_source_and_total_limits() {
    let mut cfg = loopback_config();
    cfg.max_connections_per_ip = 2;
    let (h, mut rx) = start(cfg).await;
    let srv = h.tcp_addrs()[0];
    let mut a = within(TcpStream::connect(srv)).await.unwrap();
    let mut b = within(TcpStream::connect(srv)).await.unwrap();
    wait_stats(&h, |s| s.connections_accepted == 2).await;
    let mut c = within(TcpStream::connect(srv)).await.unwrap();
    closed(&mut c).await;
    let s = wait_stats(&h, |s| s.dropped(DropReason::ConnectionLimitPerIp) == 1).await;
    assert_eq!(s.connections_accepted, 2);
    for (i, s) in [&mut a, &mut b].into_iter().enumerate() {
        let r = request("OPTIONS", &via_tcp("10.0.0.1", &format!("l{i}")), "");
        s.write_all(r.as_bytes()).await.unwrap();
        next(&mut rx).await;
    }
    // Once one closes, the source may connect again.
    drop(a);
    wait_stats(&h, |s| s.open_connections == 1).await;
    let _d = within(TcpStream::connect(srv)).await.unwrap();
    wait_stats(&h, |s| s.connections_accepted == 3).await;

    let mut cfg = loopback_config();
    cfg.max_connections = 1;
    let (h, _rx) = start(cfg).await;
    let _a = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    wait_stats(&h, |s| s.connections_accepted == 1).await;
    let mut b = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    closed(&mut b).await;
    wait_stats(&h, |s| s.dropped(DropReason::ConnectionLimit) == 1).await;
    // Outbound connects count too.
    let err = h
        .send(Outgoing::new(
            Bytes::from(request("OPTIONS", &via_tcp("h", "l9"), "")),
            Destination {
                remote: addr("127.0.0.1:9"),
                flow: None,
                reliable: true,
            },
        ))
        .unwrap_err();
    assert_eq!(err, SendError::TooManyConnections);
}

#[tokio::test]
async fn inbound_connection_is_reused_for_responses_and_requests() {
    let (h, mut rx) = start(loopback_config()).await;
    let mut c = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    let me = c.local_addr().unwrap();
    let req = request("REGISTER", &via_tcp("10.0.0.1:5070", "u1"), "");
    c.write_all(req.as_bytes()).await.unwrap();
    let inc = next(&mut rx).await;
    let mut framer = StreamFramer::new(Limits::DEFAULT);

    // The response goes back on the connection (not to the Via's 10.0.0.1).
    let resp = sip_transaction::response_for(&inc.msg, 200, "OK", Some("r")).unwrap();
    let sent = h
        .send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap();
    assert_eq!((sent.flow, sent.new_connection), (inc.flow, false));
    assert_eq!(read_msg(&mut c, &mut framer).await.status(), Some(200));

    // A request to the same flow.
    let out = request("OPTIONS", &via_tcp("127.0.0.1", "u2"), "");
    let sent = h
        .send(Outgoing::new(
            Bytes::from(out),
            Destination {
                remote: addr("192.0.2.1:5060"),
                flow: Some(inc.flow),
                reliable: true,
            },
        ))
        .unwrap();
    assert_eq!(sent.flow, inc.flow);
    assert_eq!(
        read_msg(&mut c, &mut framer).await.method_str(),
        Some("OPTIONS")
    );

    // A request to the same remote address:port, without a flow.
    let out = request("NOTIFY", &via_tcp("127.0.0.1", "u3"), "");
    let sent = h
        .send(Outgoing::new(
            Bytes::from(out),
            Destination {
                remote: me,
                flow: None,
                reliable: true,
            },
        ))
        .unwrap();
    assert_eq!((sent.flow, sent.new_connection), (inc.flow, false));
    assert_eq!(
        read_msg(&mut c, &mut framer).await.method_str(),
        Some("NOTIFY")
    );
    assert_eq!(h.connection_count(), 1);
    let info = h.flow(inc.flow).unwrap();
    assert_eq!(
        (info.protocol, info.remote, info.inbound),
        (Protocol::Tcp, Some(me), true)
    );

    // Closed flow: a strict request fails instead of opening another connection.
    assert!(h.close_flow(inc.flow));
    closed(&mut c).await;
    let mut out = Outgoing::new(
        Bytes::from(request("OPTIONS", &via_tcp("127.0.0.1", "u4"), "")),
        Destination {
            remote: me,
            flow: Some(inc.flow),
            reliable: true,
        },
    );
    out.strict_flow = true;
    assert_eq!(h.send(out).unwrap_err(), SendError::FlowClosed);
}

#[tokio::test]
async fn response_reconnects_to_via_when_the_connection_is_gone() {
    let (h, mut rx) = start(loopback_config()).await;
    // The client listens on its sent-by port.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut c = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    let req = request(
        "INVITE",
        &via_tcp(&format!("client.invalid:{port}"), "v1"),
        "",
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let inc = next(&mut rx).await;
    drop(c);
    wait_stats(&h, |s| s.open_connections == 0).await;

    let resp = sip_transaction::response_for(&inc.msg, 486, "Busy Here", Some("b")).unwrap();
    let sent = h
        .send(Outgoing::new(resp.wire(), inc.source().into()))
        .unwrap();
    assert!(sent.new_connection);
    assert_eq!(sent.remote, addr(&format!("127.0.0.1:{port}")));
    let (mut s, _) = within(listener.accept()).await.unwrap();
    let mut framer = StreamFramer::new(Limits::DEFAULT);
    assert_eq!(read_msg(&mut s, &mut framer).await.status(), Some(486));
}

#[tokio::test]
async fn outbound_connection_is_opened_and_reused() {
    let (h, mut rx) = start(loopback_config()).await;
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let dest = Destination {
        remote: peer_addr,
        flow: None,
        reliable: true,
    };
    let first = h
        .send(Outgoing::new(
            Bytes::from(request("OPTIONS", &via_tcp("127.0.0.1", "c1"), "")),
            dest,
        ))
        .unwrap();
    assert!(first.new_connection);
    // Queued before the connect completes: also on that connection.
    let second = h
        .send(Outgoing::new(
            Bytes::from(request("INFO", &via_tcp("127.0.0.1", "c2"), "")),
            dest,
        ))
        .unwrap();
    assert_eq!((second.flow, second.new_connection), (first.flow, false));
    let (mut s, _) = within(peer.accept()).await.unwrap();
    let mut framer = StreamFramer::new(Limits::DEFAULT);
    let m1 = read_msg(&mut s, &mut framer).await;
    let m2 = read_msg(&mut s, &mut framer).await;
    assert_eq!(
        (m1.method_str(), m2.method_str()),
        (Some("OPTIONS"), Some("INFO"))
    );
    // The peer answers on the same connection: same flow.
    let resp = sip_transaction::response_for(&m1, 200, "OK", Some("p")).unwrap();
    s.write_all(resp.as_bytes()).await.unwrap();
    let inc = next(&mut rx).await;
    assert_eq!(inc.flow, first.flow);
    assert_eq!(inc.msg.status(), Some(200));
    let info = h.flow(first.flow).unwrap();
    assert!(!info.inbound);
    assert_eq!(info.local, Some(s.peer_addr().unwrap()));
}

/// A transaction id as the transaction layer hands them out.
fn some_tx() -> sip_transport::TxId {
    use sip_transaction::{testkit::RequestBuilder, Config, TransactionLayer};
    let mut layer = TransactionLayer::new(Config::default());
    let branch = layer.new_branch();
    let id = layer
        .send_request(
            std::time::Instant::now(),
            RequestBuilder::new("OPTIONS", Some(&branch)).build(),
            Destination {
                remote: "127.0.0.1:9".parse().unwrap(),
                flow: None,
                reliable: true,
            },
        )
        .unwrap();
    sip_transport::TxId::Client(id)
}

#[tokio::test]
async fn failed_connect_is_reported_for_the_transaction() {
    let (h, _rx) = start(loopback_config()).await;
    let mut failures = h.take_send_failures().expect("first take");
    assert!(h.take_send_failures().is_none());
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = gone.local_addr().unwrap();
    drop(gone);
    let tx = some_tx();
    // A large request asked to go over UDP is switched to TCP: send() succeeds, the connect
    // fails afterwards (RFC 4475 mpart01 through a proxy).
    let big = "x".repeat(2000);
    let sent = h
        .send(
            Outgoing::new(
                Bytes::from(request("MESSAGE", &via_tcp("127.0.0.1", "f2"), &big)),
                Destination {
                    remote,
                    flow: None,
                    reliable: false,
                },
            )
            .with_tx(Some(tx)),
        )
        .unwrap();
    assert!(sent.switched_to_tcp && sent.new_connection);
    let f = within(failures.recv()).await.expect("a failure report");
    assert_eq!(f.tx, tx);
    assert_eq!(f.remote, remote);
    assert_eq!(f.flow, sent.flow);
    assert_eq!(f.protocol, Protocol::Tcp);
    assert_eq!(f.kind, sip_transport::FailureKind::ConnectFailed);
    // A message without a transaction is counted, not reported.
    h.send(Outgoing::new(
        Bytes::from(request("OPTIONS", &via_tcp("127.0.0.1", "f3"), "")),
        Destination {
            remote,
            flow: None,
            reliable: true,
        },
    ))
    .unwrap();
    let s = wait_stats(&h, |s| s.connect_failures == 2).await;
    assert_eq!(s.failures_reported, 1);
    assert!(failures.try_recv().is_err());
}

#[tokio::test]
async fn failed_connect_is_counted() {
    let mut cfg = loopback_config();
    cfg.tcp_connect_timeout = Duration::from_millis(500);
    let (h, _rx) = start(cfg).await;
    // A port with nothing listening.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = gone.local_addr().unwrap();
    drop(gone);
    h.send(Outgoing::new(
        Bytes::from(request("OPTIONS", &via_tcp("127.0.0.1", "f1"), "")),
        Destination {
            remote,
            flow: None,
            reliable: true,
        },
    ))
    .unwrap();
    let s = wait_stats(&h, |s| s.connect_failures == 1).await;
    assert_eq!(s.dropped(DropReason::ConnectFailed), 1);
    wait_stats(&h, |s| s.open_connections == 0).await;
}

#[tokio::test]
async fn large_udp_request_is_switched_to_tcp() {
    let (h, _rx) = start(loopback_config()).await;
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let big = "x".repeat(2000);
    let req = request("MESSAGE", &via_udp("127.0.0.1:5060", "big", ";rport"), &big);
    let sent = h
        .send(Outgoing::new(
            Bytes::from(req),
            Destination {
                remote: peer.local_addr().unwrap(),
                flow: None,
                reliable: false,
            },
        ))
        .unwrap();
    assert!(sent.switched_to_tcp);
    assert_eq!(sent.protocol, Protocol::Tcp);
    let (mut s, _) = within(peer.accept()).await.unwrap();
    let mut framer = StreamFramer::new(Limits::DEFAULT);
    let m = read_msg(&mut s, &mut framer).await;
    let via = m.top_via().unwrap().unwrap();
    assert_eq!(via.transport, "TCP");
    assert_eq!(via.branch, Some("z9hG4bKbig"));
    assert_eq!(m.body(), big.as_bytes());
    assert_eq!(h.stats().switched_to_tcp, 1);

    // A small one stays on UDP; with the switch off, a large one too.
    let mut cfg = loopback_config();
    cfg.large_requests_over_tcp = false;
    let (h2, _rx2) = start(cfg).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let req = request("MESSAGE", &via_udp("127.0.0.1", "big2", ""), &big);
    let sent = h2
        .send(Outgoing::new(
            Bytes::from(req),
            Destination {
                remote: udp.local_addr().unwrap(),
                flow: None,
                reliable: false,
            },
        ))
        .unwrap();
    assert_eq!(
        (sent.protocol, sent.switched_to_tcp),
        (Protocol::Udp, false)
    );
    let mut buf = vec![0u8; 4000];
    let (n, _) = within(udp.recv_from(&mut buf)).await.unwrap();
    assert!(n > 2000);
}

#[tokio::test]
async fn a_connection_closed_by_the_peer_is_announced() {
    let (h, mut rx) = start(loopback_config()).await;
    let mut closed_rx = h.take_closed_flows().unwrap();
    assert!(
        h.take_closed_flows().is_none(),
        "only the first taker gets it"
    );
    let mut c = within(TcpStream::connect(h.tcp_addrs()[0])).await.unwrap();
    c.write_all(request("REGISTER", &via_tcp("127.0.0.1", "c1"), "").as_bytes())
        .await
        .unwrap();
    let inc = next(&mut rx).await;
    // Nothing is announced while the connection is up.
    assert!(closed_rx.try_recv().is_err());
    drop(c);
    let flow = within(closed_rx.recv()).await.unwrap();
    assert_eq!(flow, inc.flow);
    assert!(h.flow(inc.flow).is_none());
}
