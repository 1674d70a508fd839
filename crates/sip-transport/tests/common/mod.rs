//! Helpers for the loopback tests: every wait is bounded.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sip_transport::{Incoming, StatsSnapshot, Transport, TransportConfig, TransportHandle};
use tokio::sync::mpsc;

pub const LIMIT: Duration = Duration::from_secs(5);

/// Awaits `f` for at most [`LIMIT`].
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("timed out waiting")
}

pub fn loopback_config() -> TransportConfig {
    TransportConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        ..TransportConfig::default()
    }
}

pub async fn start(cfg: TransportConfig) -> (TransportHandle, mpsc::Receiver<Incoming>) {
    Transport::start(cfg).await.expect("transport starts")
}

pub async fn next(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    within(rx.recv()).await.expect("incoming channel open")
}

/// Polls the counters until `pred` holds (at most 100 polls, 50 ms apart).
pub async fn wait_stats(
    h: &TransportHandle,
    pred: impl Fn(&StatsSnapshot) -> bool,
) -> StatsSnapshot {
    for _ in 0..100 {
        let s = h.stats();
        if pred(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("counters never matched: {:?}", h.stats());
}

/// A request with the given top Via and method.
pub fn request(method: &str, via: &str, body: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-{method}@example.com\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub fn via_udp(sent_by: &str, branch: &str, extra: &str) -> String {
    format!("SIP/2.0/UDP {sent_by};branch=z9hG4bK{branch}{extra}")
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
