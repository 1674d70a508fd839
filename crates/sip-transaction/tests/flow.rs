//! A whole call, INVITE/180/200/ACK/BYE/200, between a scripted UAC (A) and UAS (B) over a
//! lossy link (loss, duplicates, reordering, jitter), with simulated time. The UA cores do
//! what RFC 3261 asks of them: the UAS retransmits its 2xx from T1 doubling to T2 until the
//! ACK (13.3.1.4), the UAC ACKs every 2xx (13.2.2.4).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use sip_message::Message;
use sip_transaction::testkit::{LinkConfig, Pair, RequestBuilder};
use sip_transaction::*;

const TIMER_BYE: u64 = 1;
const TIMER_ANSWER: u64 = 2;
const TIMER_2XX: u64 = 3;

#[derive(Default)]
struct Uac {
    invite: Option<ClientTxId>,
    bye: Option<ClientTxId>,
    ack: Option<Bytes>,
    to_tag: Option<String>,
    provisional: usize,
    oks: usize,
    bye_status: Option<u16>,
    failures: Vec<String>,
}

#[derive(Default)]
struct Uas {
    invite: Option<(ServerTxId, Message, Source)>,
    ok: Option<Message>,
    answered_at: Option<Instant>,
    interval: Duration,
    acked: bool,
    bye_answered: bool,
}

struct Outcome {
    trace: Vec<(u128, char, String)>,
    completed: bool,
    uac_failures: Vec<String>,
    retransmissions: u64,
    live_after: usize,
    oks: usize,
}

fn uac(p: &mut Pair, st: &mut Uac) -> bool {
    let mut acted = false;
    for ev in p.a.take_events() {
        acted = true;
        match ev {
            TuEvent::Response { id, msg, .. } if Some(id) == st.invite => match msg.status() {
                Some(100..=199) => st.provisional += 1,
                Some(200..=299) => {
                    st.oks += 1;
                    if st.ack.is_none() {
                        let tag = msg.to().unwrap().unwrap().tag().unwrap().to_string();
                        let branch = p.a.layer.new_branch();
                        let ack = RequestBuilder::new("ACK", Some(&branch))
                            .to_tag(&tag)
                            .build();
                        st.ack = Some(ack.wire());
                        st.to_tag = Some(tag);
                        let at = p.now + secs(2);
                        p.a.set_timer(at, TIMER_BYE);
                    }
                    // 13.2.2.4: every 2xx (retransmissions included) gets the ACK.
                    let dest = p.dest_ab();
                    p.a.layer.send_stateless(dest, st.ack.clone().unwrap());
                }
                s => st.failures.push(format!("INVITE got {s:?}")),
            },
            TuEvent::Response { id, msg, .. }
                if Some(id) == st.bye && msg.status() >= Some(200) =>
            {
                st.bye_status = msg.status();
            }
            TuEvent::Timeout { tx, timer } => {
                st.failures.push(format!("{tx} timed out ({timer:?})"))
            }
            TuEvent::TransportError { tx } => st.failures.push(format!("{tx} transport error")),
            _ => {}
        }
    }
    while let Some(tag) = p.a.fired.pop_front() {
        acted = true;
        if tag == TIMER_BYE {
            let branch = p.a.layer.new_branch();
            let bye = RequestBuilder::new("BYE", Some(&branch))
                .cseq(2)
                .to_tag(st.to_tag.as_deref().unwrap())
                .build();
            st.bye = Some(p.send_request_a(bye));
        }
    }
    acted
}

fn uas(p: &mut Pair, st: &mut Uas) -> bool {
    let mut acted = false;
    let t1 = p.b.layer.config().t1;
    let t2 = p.b.layer.config().t2;
    for ev in p.b.take_events() {
        acted = true;
        match ev {
            TuEvent::Request { id, msg, source } => match msg.method_str() {
                Some("INVITE") => {
                    p.b.respond(p.now, id, 180, "Ringing", Some("uas")).unwrap();
                    st.invite = Some((id, msg, source));
                    let at = p.now + secs(1);
                    p.b.set_timer(at, TIMER_ANSWER);
                }
                Some("BYE") => {
                    p.b.respond(p.now, id, 200, "OK", Some("uas")).unwrap();
                    st.bye_answered = true;
                }
                _ => {}
            },
            TuEvent::Ack { .. } => st.acked = true,
            _ => {}
        }
    }
    while let Some(tag) = p.b.fired.pop_front() {
        acted = true;
        let (id, req, source) = st.invite.clone().unwrap();
        match tag {
            TIMER_ANSWER => {
                let ok = response_for(&req, 200, "OK", Some("uas")).unwrap();
                p.b.layer.send_response(p.now, id, ok.clone()).unwrap();
                st.ok = Some(ok);
                st.answered_at = Some(p.now);
                st.interval = t1;
                let at = p.now + t1;
                p.b.set_timer(at, TIMER_2XX);
            }
            TIMER_2XX if !st.acked && p.now - st.answered_at.unwrap() < t1 * 64 => {
                // 13.3.1.4: retransmit the 2xx, T1 doubling up to T2, through the Accepted
                // transaction while it lives, statelessly after.
                let ok = st.ok.clone().unwrap();
                if p.b.layer.send_response(p.now, id, ok.clone()).is_err() {
                    p.b.layer.send_stateless(source.into(), ok.wire());
                }
                st.interval = (st.interval * 2).min(t2);
                let at = p.now + st.interval;
                p.b.set_timer(at, TIMER_2XX);
            }
            _ => {}
        }
    }
    acted
}

fn run_call(link: LinkConfig, reliable: bool) -> Outcome {
    let mut p = Pair::with_link(link, reliable);
    let (mut a, mut b) = (Uac::default(), Uas::default());
    let branch = p.a.layer.new_branch();
    a.invite = Some(p.send_request_a(RequestBuilder::new("INVITE", Some(&branch)).build()));
    loop {
        let progressed = p.step();
        let acted = uac(&mut p, &mut a) | uas(&mut p, &mut b);
        if !progressed && !acted {
            break;
        }
        assert!(p.elapsed() < secs(600), "the call never settles");
    }
    let mut trace: Vec<(u128, char, String)> = Vec::new();
    for (side, node) in [('A', &p.a), ('B', &p.b)] {
        for s in &node.wire {
            trace.push(((s.at - p.start).as_micros(), side, s.first_line.clone()));
        }
    }
    trace.sort();
    Outcome {
        trace,
        completed: b.acked && b.bye_answered && a.bye_status == Some(200),
        uac_failures: a.failures,
        retransmissions: p.a.layer.stats().retransmissions + p.b.layer.stats().retransmissions,
        live_after: p.a.layer.transaction_count() + p.b.layer.transaction_count(),
        oks: a.oks,
    }
}

#[test]
fn call_completes_over_a_perfect_reliable_link() {
    let o = run_call(LinkConfig::perfect(), true);
    assert!(o.completed);
    let lines: Vec<_> = o
        .trace
        .iter()
        .map(|(t, side, l)| format!("{} {side} {}", t / 1000, l.split(' ').next().unwrap_or("")))
        .collect();
    assert_eq!(
        lines,
        [
            "0 A INVITE",
            "10 B SIP/2.0",   // 180
            "1010 B SIP/2.0", // 200
            "1020 A ACK",
            "3020 A BYE",
            "3030 B SIP/2.0", // 200 for BYE
        ]
    );
    assert_eq!(o.retransmissions, 0);
    assert_eq!(o.live_after, 0);
}

#[test]
fn call_completes_over_a_20_percent_loss_link_for_every_seed() {
    let mut total_retrans = 0;
    for seed in 1..=40u64 {
        let o = run_call(LinkConfig::lossy(0.2, seed), false);
        assert!(
            o.completed,
            "seed {seed}: {:?}\n{:#?}",
            o.uac_failures, o.trace
        );
        assert!(
            o.uac_failures.is_empty(),
            "seed {seed}: {:?}",
            o.uac_failures
        );
        // Every transaction ends (Timers D, K, J, I, L, M), nothing leaks.
        assert_eq!(o.live_after, 0, "seed {seed}");
        assert!(o.oks >= 1);
        total_retrans += o.retransmissions;
    }
    // The loss was real: retransmissions carried the calls.
    assert!(total_retrans > 40, "{total_retrans}");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = run_call(LinkConfig::lossy(0.2, 7), false);
    let b = run_call(LinkConfig::lossy(0.2, 7), false);
    assert_eq!(a.trace, b.trace);
    let c = run_call(LinkConfig::lossy(0.2, 8), false);
    assert_ne!(a.trace, c.trace);
}

#[test]
fn heavy_loss_still_completes_or_times_out_cleanly() {
    // At 50% loss some calls fail (a lost ACK series, a BYE timing out: the UA cores'
    // business); whatever happens, the pair goes idle and every transaction ends: no hang, no
    // leak.
    let mut completed = 0;
    for seed in 1..=20u64 {
        let o = run_call(LinkConfig::lossy(0.5, seed), false);
        assert_eq!(o.live_after, 0, "seed {seed}");
        completed += usize::from(o.completed);
    }
    assert!(completed >= 10, "{completed}");
}
