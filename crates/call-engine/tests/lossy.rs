//! The engine between two real transaction layers (a caller and a callee) over the
//! transaction test kit's lossy links: retransmissions on every hop must carry the calls
//! through, with the same outcome for every seed.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use call_engine::{Engine, Output};
use common::*;
use sip_message::Message;
use sip_transaction::testkit::{Link, LinkConfig};
use sip_transaction::{
    response_for, Config, Destination, FlowId, Output as TxOutput, ServerTxId, Source,
    TransactionLayer, TuEvent,
};

/// A UA: a transaction layer and what its TU saw.
struct Ua {
    addr: SocketAddr,
    layer: TransactionLayer,
    finals: Vec<u16>,
    requests: Vec<(ServerTxId, Message)>,
}

impl Ua {
    fn new(addr: &str, seed: u64) -> Ua {
        let cfg = Config {
            seed,
            ..Config::default()
        };
        Ua {
            addr: common::addr(addr),
            layer: TransactionLayer::new(cfg),
            finals: Vec::new(),
            requests: Vec::new(),
        }
    }
}

struct Net {
    links: HashMap<(SocketAddr, SocketAddr), Link>,
    seed: u64,
    loss: f64,
}

impl Net {
    fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: bytes::Bytes) {
        let (seed, loss) = (self.seed, self.loss);
        let n = self.links.len() as u64;
        self.links
            .entry((from, to))
            .or_insert_with(|| Link::new(LinkConfig::lossy(loss, seed * 31 + n)))
            .send(now, bytes);
    }
}

fn src(addr: SocketAddr) -> Source {
    Source {
        remote: addr,
        flow: FlowId(1),
        reliable: false,
    }
}

/// Runs caller -> engine -> callee until nothing is left to do. The callee answers every
/// request with `status` after one second (and 180 at once to an INVITE).
/// Returns the caller's final responses, how many requests the callee's TU saw, and how many
/// proxy contexts and transactions the engine still holds at the end.
fn run(seed: u64, loss: f64, method: &str, status: u16) -> (Vec<u16>, usize, usize) {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10:5060>"],
        "reg",
        1,
        "",
    );
    assert_eq!(h.response_to(ALICE1).status(), Some(200));
    let sbc = addr(SBC);
    let mut now = h.now;
    let engine: &mut Engine = &mut h.engine;
    let mut caller = Ua::new(CALLER, seed + 1);
    let mut callee = Ua::new(ALICE1, seed + 2);
    let mut net = Net {
        links: HashMap::new(),
        seed,
        loss,
    };
    let mut answer_at: Vec<(Instant, ServerTxId, Message)> = Vec::new();

    let branch = caller.layer.new_branch();
    let text = request_text(
        method,
        "sip:alice@example.com",
        CALLER,
        "lossy-call",
        &branch,
        1,
        "",
    );
    let dest = Destination {
        remote: sbc,
        flow: None,
        reliable: false,
    };
    caller
        .layer
        .send_request(now, Message::parse(text.into_bytes()).unwrap(), dest)
        .unwrap();
    let end = now + Duration::from_secs(120);
    loop {
        // Drain everyone.
        let mut progress = true;
        while progress {
            progress = false;
            while let Some(o) = caller.layer.poll_output() {
                progress = true;
                match o {
                    TxOutput::Transmit { dest, bytes, .. } => {
                        net.send(now, caller.addr, dest.remote, bytes)
                    }
                    TxOutput::Event(TuEvent::Response { msg, .. }) => {
                        if let Some(s) = msg.status().filter(|s| *s >= 200) {
                            caller.finals.push(s);
                        }
                    }
                    TxOutput::Event(_) => {}
                }
            }
            while let Some(o) = callee.layer.poll_output() {
                progress = true;
                match o {
                    TxOutput::Transmit { dest, bytes, .. } => {
                        net.send(now, callee.addr, dest.remote, bytes)
                    }
                    TxOutput::Event(TuEvent::Request { id, msg, .. }) => {
                        if msg.method_str() == Some("INVITE") {
                            let r = response_for(&msg, 180, "Ringing", Some("callee")).unwrap();
                            callee.layer.send_response(now, id, r).unwrap();
                        }
                        answer_at.push((now + Duration::from_secs(1), id, msg.clone()));
                        callee.requests.push((id, msg));
                    }
                    TxOutput::Event(_) => {}
                }
            }
            while let Some(o) = engine.poll_output() {
                progress = true;
                if let Output::Transmit { dest, bytes, .. } = o {
                    net.send(now, sbc, dest.remote, bytes);
                }
            }
        }
        // The next thing to happen.
        let mut next: Vec<Instant> = Vec::new();
        next.extend(caller.layer.poll_timeout());
        next.extend(callee.layer.poll_timeout());
        next.extend(engine.poll_timeout());
        next.extend(net.links.values().filter_map(Link::next_arrival));
        next.extend(answer_at.iter().map(|(t, _, _)| *t));
        let Some(t) = next.into_iter().min() else {
            break;
        };
        if t > end {
            break;
        }
        now = now.max(t);
        // Deliver what is due.
        let keys: Vec<(SocketAddr, SocketAddr)> = net.links.keys().copied().collect();
        for (from, to) in keys {
            while let Some(b) = net.links.get_mut(&(from, to)).and_then(|l| l.pop_due(now)) {
                let Ok(m) = Message::parse(b) else { continue };
                if to == sbc {
                    engine.handle_incoming(now, m, src(from));
                } else if to == caller.addr {
                    caller.layer.handle_message(now, m, src(from));
                } else if to == callee.addr {
                    callee.layer.handle_message(now, m, src(from));
                }
            }
        }
        let due: Vec<(Instant, ServerTxId, Message)> = answer_at
            .iter()
            .filter(|(t, _, _)| *t <= now)
            .cloned()
            .collect();
        answer_at.retain(|(t, _, _)| *t > now);
        for (_, id, req) in due {
            let r = response_for(&req, status, "Answer", Some("callee")).unwrap();
            let _ = callee.layer.send_response(now, id, r);
        }
        caller.layer.handle_timeout(now);
        callee.layer.handle_timeout(now);
        engine.handle_timeout(now);
    }
    let left = engine.context_count() + engine.transactions().transaction_count();
    (caller.finals, callee.requests.len(), left)
}

#[test]
fn a_busy_callee_over_lossy_links() {
    for seed in 1..=20 {
        let (finals, seen, left) = run(seed, 0.2, "INVITE", 486);
        // One INVITE reached the callee's TU (retransmissions absorbed), its 486 reached the
        // caller once, and everything was cleaned up.
        assert_eq!(seen, 1, "seed {seed}");
        assert_eq!(finals, [486], "seed {seed}");
        assert_eq!(left, 0, "seed {seed}");
    }
}

#[test]
fn a_message_over_lossy_links() {
    let mut got_200 = 0;
    for seed in 1..=20 {
        let (finals, _, left) = run(seed, 0.1, "MESSAGE", 200);
        assert_eq!(left, 0, "seed {seed}");
        assert_eq!(finals.len(), 1, "seed {seed}: {finals:?}");
        if finals[0] == 200 {
            got_200 += 1;
        }
    }
    assert!(got_200 >= 15, "only {got_200} of 20 MESSAGEs got their 200");
}

#[test]
fn a_clean_network_gives_the_callees_answer() {
    assert_eq!(run(1, 0.0, "INVITE", 486), (vec![486], 1, 0));
    assert_eq!(run(1, 0.0, "MESSAGE", 202), (vec![202], 1, 0));
}
