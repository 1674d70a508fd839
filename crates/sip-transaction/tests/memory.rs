//! Memory per transaction, measured with a counting allocator: what `max_transactions` costs
//! when the table is full (docs/CONFIG.md, `transaction.max_transactions`).
//!
//! The model is a call through a stateful proxy, with messages of the size SIPp and desk
//! phones send (an INVITE of about 750 bytes with its SDP): per call an INVITE server
//! transaction (answered 200: Accepted), an INVITE client transaction (the forwarded request,
//! 200 received: Accepted), a BYE server transaction (answered 200: Completed, keeps the 200)
//! and a BYE client transaction (200 received: Completed). These are the states they linger
//! in for 32 s (timers L, M, J) or 5 s (K) after a call.
//!
//! Run `cargo test -p sip-transaction --test memory -- --nocapture` to see the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

use sip_message::Message;
use sip_transaction::{Config, Destination, FlowId, Output, Source, TransactionLayer, TuEvent};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\n\
c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n";

fn request(method: &str, i: usize, hop: &str, body: &str) -> Message {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    let text = format!(
        "{method} sip:bob@192.0.2.20:5060 SIP/2.0\r\n\
{hop}Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{i}-{method};rport=5060;received=192.0.2.10\r\n\
From: sipp <sip:alice@example.com:5060>;tag={i}SIPpTag00\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {i}-4711@192.0.2.10\r\n\
CSeq: 1 {method}\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Each message in its own buffer, as the transport hands them over.
    Message::parse(text.into_bytes()).unwrap()
}

fn drain(layer: &mut TransactionLayer) -> Vec<TuEvent> {
    let mut ev = Vec::new();
    while let Some(o) = layer.poll_output() {
        if let Output::Event(e) = o {
            ev.push(e);
        }
    }
    ev
}

fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Bytes per transaction of one kind: `make` creates `n` of them.
fn per_tx(
    layer: &mut TransactionLayer,
    n: usize,
    make: impl Fn(&mut TransactionLayer, usize),
) -> f64 {
    let before = live();
    let count = layer.transaction_count();
    for i in 0..n {
        make(layer, i);
        drain(layer);
    }
    assert_eq!(layer.transaction_count(), count + n);
    (live() - before) as f64 / n as f64
}

#[test]
fn bytes_per_transaction_of_a_proxied_call() {
    let n = 20_000;
    let now = Instant::now();
    let up: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let down: SocketAddr = "192.0.2.20:5060".parse().unwrap();
    let src = Source {
        remote: up,
        flow: FlowId(1),
        reliable: false,
    };
    let dest = Destination {
        remote: down,
        flow: None,
        reliable: false,
    };
    let hop = "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy0123456789abcdef.0123456789abcdef\r\n\
Record-Route: <sip:198.51.100.1:5060;lr>\r\n";
    let mut layer = TransactionLayer::new(Config {
        max_transactions: 1_000_000,
        ..Config::default()
    });
    let server = |method: &'static str, status_after: bool| {
        move |l: &mut TransactionLayer, i: usize| {
            let body = if method == "INVITE" { SDP } else { "" };
            l.handle_request(now, request(method, i, "", body), src);
            let id = drain(l)
                .into_iter()
                .find_map(|e| match e {
                    TuEvent::Request { id, .. } => Some(id),
                    _ => None,
                })
                .unwrap();
            if status_after {
                let req = l.server_request(id).unwrap().clone();
                let ok = sip_transaction::response_for(&req, 200, "OK", Some("totag")).unwrap();
                l.send_response(now, id, ok).unwrap();
            }
        }
    };
    let client = |method: &'static str| {
        move |l: &mut TransactionLayer, i: usize| {
            let body = if method == "INVITE" { SDP } else { "" };
            let hop = hop.replace("proxy0", &format!("p{i}{method}"));
            let req = request(method, i, &hop, body);
            l.send_request(now, req.clone(), dest).unwrap();
            let ok = sip_transaction::response_for(&req, 200, "OK", Some("totag")).unwrap();
            let ok = Message::parse(ok.wire().to_vec()).unwrap();
            l.handle_response(
                now,
                ok,
                Source {
                    remote: down,
                    flow: FlowId(1),
                    reliable: false,
                },
            );
        }
    };
    let invite_server = per_tx(&mut layer, n, server("INVITE", true));
    let invite_client = per_tx(&mut layer, n, client("INVITE"));
    let bye_server = per_tx(&mut layer, n, server("BYE", true));
    let bye_client = per_tx(&mut layer, n, client("BYE"));
    let call = invite_server + invite_client + bye_server + bye_client;
    println!(
        "bytes per transaction: INVITE server {invite_server:.0}, INVITE client {invite_client:.0}, \
         BYE server {bye_server:.0}, BYE client {bye_client:.0}; per call {call:.0}, \
         mean {:.0}",
        call / 4.0
    );
    // The default table (sized for 4000 calls/s, see DEFAULT_MAX_TRANSACTIONS) must stay
    // within a few GB: fail if a transaction grows past 3 KiB on average.
    assert!(call / 4.0 < 3072.0, "{call} bytes per call");
    assert!(call / 4.0 > 500.0, "the model keeps the messages: {call}");
}
