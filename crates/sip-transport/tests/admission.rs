//! The admission hook over loopback: refused datagrams, connections and stream messages never
//! reach the channel, and are counted by reason.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use sip_transport::{
    Admission, AdmissionHook, Admit, Arrival, ArrivalKind, DropReason, Protocol, Refusal,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Bans a set of addresses; lets `limited` send `budget` messages, then refuses it. Records
/// every arrival it judged.
#[derive(Default)]
struct Gate {
    banned: Mutex<HashSet<IpAddr>>,
    limited: Option<IpAddr>,
    budget: AtomicU32,
    seen: Mutex<Vec<(ArrivalKind, Protocol, usize)>>,
}

impl Admission for Gate {
    fn admit(&self, a: &Arrival, _now: Instant) -> Admit {
        self.seen.lock().unwrap().push((a.kind, a.protocol, a.len));
        if self.banned.lock().unwrap().contains(&a.source.ip()) {
            return Admit::Drop(Refusal::Banned);
        }
        if Some(a.source.ip()) == self.limited {
            let left = self.budget.load(Ordering::Relaxed);
            if left == 0 {
                return Admit::Drop(Refusal::RateLimited);
            }
            self.budget.store(left - 1, Ordering::Relaxed);
        }
        Admit::Accept
    }
}

async fn udp_from(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).await.unwrap()
}

async fn tcp_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    within(s.connect(to)).await.unwrap()
}

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
async fn refused_datagrams_are_dropped_before_parsing_and_counted() {
    let gate = Arc::new(Gate {
        limited: Some("127.0.0.3".parse().unwrap()),
        budget: AtomicU32::new(3),
        ..Gate::default()
    });
    gate.banned
        .lock()
        .unwrap()
        .insert("127.0.0.2".parse().unwrap());
    let mut cfg = loopback_config();
    cfg.admission = AdmissionHook::new(gate.clone());
    let (h, mut rx) = start(cfg).await;
    let server = h.udp_addrs()[0];

    let banned = udp_from("127.0.0.2").await;
    let limited = udp_from("127.0.0.3").await;
    let ok = udp_from("127.0.0.1").await;
    // Not even SIP: a refused datagram is never looked at, so garbage is not answered.
    banned.send_to(b"garbage", server).await.unwrap();
    let r = request("OPTIONS", &via_udp("127.0.0.2", "b1", ""), "");
    banned.send_to(r.as_bytes(), server).await.unwrap();
    for i in 0..10 {
        let r = request("OPTIONS", &via_udp("127.0.0.3", &format!("l{i}"), ""), "");
        limited.send_to(r.as_bytes(), server).await.unwrap();
    }
    let r = request("INFO", &via_udp("127.0.0.1", "ok", ""), "");
    ok.send_to(r.as_bytes(), server).await.unwrap();

    let s = wait_stats(&h, |s| s.udp_received == 13).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next(&mut rx).await.source.ip().to_string());
    }
    got.sort();
    assert_eq!(got, ["127.0.0.1", "127.0.0.3", "127.0.0.3", "127.0.0.3"]);
    assert_eq!(s.dropped(DropReason::Banned), 2);
    assert_eq!(s.dropped(DropReason::RateLimited), 7);
    assert!(s.parse_errors.is_empty(), "{:?}", s.parse_errors);
    assert!(rx.try_recv().is_err());
    let seen = gate.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 13);
    assert!(seen
        .iter()
        .all(|(k, p, _)| *k == ArrivalKind::Datagram && *p == Protocol::Udp));
    assert_eq!(seen[0].2, 7, "the datagram's length");
}

#[tokio::test]
async fn banned_sources_are_refused_at_accept_and_their_streams_closed() {
    let gate = Arc::new(Gate::default());
    gate.banned
        .lock()
        .unwrap()
        .insert("127.0.0.2".parse().unwrap());
    let mut cfg = loopback_config();
    cfg.admission = AdmissionHook::new(gate.clone());
    let (h, mut rx) = start(cfg).await;
    let srv = h.tcp_addrs()[0];

    // Refused at accept: no flow, no connection counted.
    let mut c = tcp_from("127.0.0.2", srv).await;
    closed(&mut c).await;
    let s = wait_stats(&h, |s| s.dropped(DropReason::Banned) == 1).await;
    assert_eq!(s.connections_accepted, 0);

    // Admitted, then banned while connected: the next message closes the connection.
    let mut ok = tcp_from("127.0.0.4", srv).await;
    let r = request("OPTIONS", "SIP/2.0/TCP 127.0.0.4;branch=z9hG4bKt1", "");
    ok.write_all(r.as_bytes()).await.unwrap();
    assert_eq!(next(&mut rx).await.transport, Protocol::Tcp);
    gate.banned
        .lock()
        .unwrap()
        .insert("127.0.0.4".parse().unwrap());
    let r = request("OPTIONS", "SIP/2.0/TCP 127.0.0.4;branch=z9hG4bKt2", "");
    ok.write_all(r.as_bytes()).await.unwrap();
    closed(&mut ok).await;
    let s = wait_stats(&h, |s| s.dropped(DropReason::Banned) == 2).await;
    assert_eq!(s.connections_accepted, 1);
    wait_stats(&h, |s| s.open_connections == 0).await;
    assert!(rx.try_recv().is_err());
    let kinds: Vec<ArrivalKind> = gate.seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(
        kinds,
        [
            ArrivalKind::Connection,
            ArrivalKind::Connection,
            ArrivalKind::StreamMessage,
            ArrivalKind::StreamMessage
        ]
    );
}

#[tokio::test]
async fn stream_messages_over_budget_are_dropped_and_the_connection_kept() {
    let gate = Arc::new(Gate {
        limited: Some("127.0.0.5".parse().unwrap()),
        // The connection and two messages.
        budget: AtomicU32::new(3),
        ..Gate::default()
    });
    let mut cfg = loopback_config();
    cfg.admission = AdmissionHook::new(gate.clone());
    let (h, mut rx) = start(cfg).await;
    let mut c = tcp_from("127.0.0.5", h.tcp_addrs()[0]).await;
    for i in 0..5 {
        let r = request("OPTIONS", &format!("SIP/2.0/TCP h;branch=z9hG4bKs{i}"), "");
        c.write_all(r.as_bytes()).await.unwrap();
    }
    let s = wait_stats(&h, |s| s.dropped(DropReason::RateLimited) == 3).await;
    assert_eq!(s.tcp_received, 5);
    for _ in 0..2 {
        next(&mut rx).await;
    }
    assert!(rx.try_recv().is_err());
    assert_eq!(s.open_connections, 1);
}
