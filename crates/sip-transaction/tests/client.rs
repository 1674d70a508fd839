//! Client transactions: RFC 3261 17.1.1 (INVITE, with the RFC 6026 Accepted state), 17.1.2
//! (non-INVITE), 17.1.3 (matching), 9.1 (CANCEL).

mod common;

use common::*;
use sip_message::{HeaderName, Message};
use sip_transaction::testkit::{LinkConfig, Pair, RequestBuilder};
use sip_transaction::*;

fn last_sent(node: &testkit::Node, prefix: &str) -> Message {
    let s = node
        .wire
        .iter()
        .rev()
        .find(|s| s.first_line.starts_with(prefix))
        .expect("sent");
    Message::parse(s.bytes.clone()).unwrap()
}

#[test]
fn invite_timer_a_doubles_until_timer_b() {
    // 17.1.1.2: A starts at T1 and doubles on every firing (no T2 cap for INVITE); B = 64*T1.
    let mut p = Pair::with_link(LinkConfig::black_hole(), false);
    let id = p.send_request_a(invite("z9hG4bKa1").build());
    assert_eq!(p.a.layer.state(TxId::Client(id)), Some(TxState::Calling));
    p.drive();
    assert_eq!(
        in_ms(&p.a.sent_times(p.start, "INVITE")),
        [0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    assert_eq!(timeouts(&p.a, TxId::Client(id)), [Timer::B]);
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(id)),
        Some((secs(32), TerminationReason::Timeout))
    );
    assert_eq!(p.a.layer.transaction_count(), 0);
    assert_eq!(p.a.layer.stats().retransmissions, 6);
}

#[test]
fn invite_timers_scale_with_t1() {
    let cfg = Config::with_t1(ms(100));
    let mut p = Pair::new(cfg, Config::default(), LinkConfig::black_hole(), false);
    let id = p.send_request_a(invite("z9hG4bKt1").build());
    p.drive();
    assert_eq!(
        in_ms(&p.a.sent_times(p.start, "INVITE")),
        [0, 100, 300, 700, 1500, 3100, 6300]
    );
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(id)),
        Some((ms(6400), TerminationReason::Timeout))
    );
}

#[test]
fn provisional_response_stops_timers_a_and_b() {
    // 17.1.1.2: a 1xx moves Calling to Proceeding; no more retransmissions, no Timer B. The
    // server sends 100 Trying 200 ms after the INVITE arrived (17.2.1).
    let mut p = pair(false);
    let id = p.send_request_a(invite("z9hG4bKa2").build());
    p.drive_for(secs(100));
    assert_eq!(in_ms(&p.a.sent_times(p.start, "INVITE")), [0]);
    assert_eq!(in_ms(&p.b.sent_times(p.start, "SIP/2.0 100")), [210]);
    assert_eq!(responses(&p.a, id), [100]);
    assert_eq!(p.a.layer.state(TxId::Client(id)), Some(TxState::Proceeding));
    assert!(timeouts(&p.a, TxId::Client(id)).is_empty());
}

#[test]
fn non_2xx_is_acked_and_timer_d_absorbs_retransmissions() {
    let mut p = pair(false);
    let req = invite("z9hG4bKa3")
        .header("Route", "<sip:p1.example.com;lr>")
        .header("Route", "<sip:p2.example.com;lr>")
        .build();
    let id = p.send_request_a(req);
    p.drive_for(ms(20));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 486, "Busy Here", Some("totag"))
        .unwrap();
    p.drive_for(ms(20));
    assert_eq!(responses(&p.a, id), [486]);
    assert_eq!(p.a.layer.state(TxId::Client(id)), Some(TxState::Completed));
    // 17.1.1.3: the ACK.
    let ack = last_sent(&p.a, "ACK");
    assert_eq!(ack.request_uri_str(), Some("sip:bob@biloxi.example.com"));
    assert_eq!(ack.vias().count(), 1);
    assert_eq!(ack.top_via().unwrap().unwrap().branch, Some("z9hG4bKa3"));
    assert_eq!(ack.to().unwrap().unwrap().tag(), Some("totag"));
    assert_eq!(ack.from().unwrap().unwrap().tag(), Some("1928301774"));
    let cs = ack.cseq().unwrap().unwrap();
    assert_eq!((cs.seq, cs.method_str), (1, "ACK"));
    assert_eq!(ack.routes().count(), 2);
    // The server transaction took the ACK: Confirmed, no G retransmission reached A.
    assert_eq!(p.b.layer.state(TxId::Server(sid)), Some(TxState::Confirmed));
    // Retransmitted finals are ACKed again and not passed up (17.1.1.2).
    let resp = last_sent(&p.b, "SIP/2.0 486");
    p.inject_ba(&resp);
    p.inject_ba(&resp);
    p.drive_for(ms(20));
    assert_eq!(responses(&p.a, id), [486]);
    assert_eq!(p.a.sent_times(p.start, "ACK").len(), 3);
    p.drive();
    // Timer D: 32 s after the final response arrived at 30 ms.
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(id)),
        Some((ms(32_030), TerminationReason::Completed))
    );
    // Timer I on the server: T4 after the ACK arrived at 40 ms.
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(5_040), TerminationReason::Completed))
    );
}

fn accepted_then_timer_m(reliable: bool) {
    let mut p = pair(reliable);
    let id = p.send_request_a(invite("z9hG4bKa4").build());
    p.drive_for(ms(20));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 200, "OK", Some("tt")).unwrap();
    p.drive_for(ms(20));
    assert_eq!(p.a.layer.state(TxId::Client(id)), Some(TxState::Accepted));
    assert_eq!(p.b.layer.state(TxId::Server(sid)), Some(TxState::Accepted));
    // RFC 6026 7.2: 2xx retransmissions (sent by the UAS core through its Accepted
    // transaction, 7.1) are passed up; the transaction does not ACK them.
    p.b.respond(p.now, sid, 200, "OK", Some("tt")).unwrap();
    p.drive_for(ms(20));
    assert_eq!(responses(&p.a, id), [200, 200]);
    assert!(p.a.sent_times(p.start, "ACK").is_empty());
    p.drive();
    // Timer M and L: 64*T1 on every transport.
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(id)),
        Some((ms(32_030), TerminationReason::Completed))
    );
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(32_020), TerminationReason::Completed))
    );
}

#[test]
fn invite_2xx_accepted_timer_m_unreliable() {
    accepted_then_timer_m(false);
}

#[test]
fn invite_2xx_accepted_timer_m_reliable() {
    accepted_then_timer_m(true);
}

#[test]
fn non_invite_timer_e_caps_at_t2_until_timer_f() {
    // 17.1.2.2: E doubles from T1 up to T2 in Trying; F = 64*T1.
    let mut p = Pair::with_link(LinkConfig::black_hole(), false);
    let id = p.send_request_a(options("z9hG4bKe1").build());
    p.drive();
    assert_eq!(
        in_ms(&p.a.sent_times(p.start, "OPTIONS")),
        [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(timeouts(&p.a, TxId::Client(id)), [Timer::F]);
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(id)),
        Some((secs(32), TerminationReason::Timeout))
    );
}

#[test]
fn non_invite_proceeding_retransmits_every_t2() {
    // 17.1.2.2: in Proceeding, E fires with T2. 17.2.2: the server answers each
    // retransmission with its last provisional response.
    let mut p = pair(false);
    let id = p.send_request_a(options("z9hG4bKe2").build());
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 100, "Trying", None).unwrap();
    p.drive_for(secs(40));
    assert_eq!(
        in_ms(&p.a.sent_times(p.start, "OPTIONS")),
        [0, 500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]
    );
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 100").len(), 9);
    // Provisional responses are passed up each time they arrive.
    assert_eq!(responses(&p.a, id), [100; 9]);
    assert_eq!(timeouts(&p.a, TxId::Client(id)), [Timer::F]);
}

#[test]
fn non_invite_final_then_timer_k() {
    let mut p = pair(false);
    let id = p.send_request_a(options("z9hG4bKk1").build());
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 200, "OK", Some("tt")).unwrap();
    p.drive_for(ms(20));
    assert_eq!(p.a.layer.state(TxId::Client(id)), Some(TxState::Completed));
    let resp = last_sent(&p.b, "SIP/2.0 200");
    p.inject_ba(&resp);
    p.drive_for(ms(20));
    // Completed absorbs the retransmission.
    assert_eq!(responses(&p.a, id), [200]);
    assert_eq!(p.a.layer.stats().absorbed, 1);
    p.drive();
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(id)),
        Some((ms(5_020), TerminationReason::Completed))
    );
    // Timer J on the server: 64*T1 after its final response.
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(32_010), TerminationReason::Completed))
    );
}

#[test]
fn reliable_transport_never_retransmits_requests() {
    let mut p = Pair::with_link(LinkConfig::black_hole(), true);
    let inv = p.send_request_a(invite("z9hG4bKr1").build());
    let opt = p.send_request_a(options("z9hG4bKr2").build());
    p.drive();
    assert_eq!(in_ms(&p.a.sent_times(p.start, "INVITE")), [0]);
    assert_eq!(in_ms(&p.a.sent_times(p.start, "OPTIONS")), [0]);
    assert_eq!(timeouts(&p.a, TxId::Client(inv)), [Timer::B]);
    assert_eq!(timeouts(&p.a, TxId::Client(opt)), [Timer::F]);
    assert_eq!(p.a.layer.stats().retransmissions, 0);
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(opt)),
        Some((secs(32), TerminationReason::Timeout))
    );
}

#[test]
fn reliable_transport_zero_waits_d_and_k() {
    let mut p = pair(true);
    let inv = p.send_request_a(invite("z9hG4bKr3").build());
    let opt = p.send_request_a(options("z9hG4bKr4").build());
    p.drive_for(ms(10));
    let reqs = requests(&mut p.b);
    assert_eq!(reqs.len(), 2);
    p.b.respond(p.now, reqs[0].0, 603, "Decline", Some("t1"))
        .unwrap();
    p.b.respond(p.now, reqs[1].0, 200, "OK", Some("t2"))
        .unwrap();
    p.drive_for(ms(10));
    // Timer D = 0 and Timer K = 0: terminated as the final response arrives; the ACK still goes.
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(inv)),
        Some((ms(20), TerminationReason::Completed))
    );
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(opt)),
        Some((ms(20), TerminationReason::Completed))
    );
    assert_eq!(in_ms(&p.a.sent_times(p.start, "ACK")), [20]);
    p.drive_for(ms(10));
    // Timer J = 0 (at the final response) and Timer I = 0 (at the ACK) on the server.
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(reqs[1].0)),
        Some((ms(10), TerminationReason::Completed))
    );
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(reqs[0].0)),
        Some((ms(30), TerminationReason::Completed))
    );
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 603").len(), 1);
    assert_eq!(
        p.a.layer.transaction_count() + p.b.layer.transaction_count(),
        0
    );
}

#[test]
fn transport_error_terminates_client_transaction() {
    let mut p = pair(false);
    let id = p.send_request_a(invite("z9hG4bKx1").build());
    let now = p.now;
    p.a.layer.handle_transport_error(now, TxId::Client(id));
    p.flush();
    let ev = p.a.take_events();
    assert!(matches!(ev[0], TuEvent::TransportError { tx } if tx == TxId::Client(id)));
    assert!(matches!(
        ev[1],
        TuEvent::Terminated {
            reason: TerminationReason::TransportError,
            ..
        }
    ));
    p.drive_for(secs(40));
    assert_eq!(in_ms(&p.a.sent_times(p.start, "INVITE")), [0]);
}

#[test]
fn stray_and_malformed_responses() {
    let mut p = pair(false);
    let req = options("z9hG4bKunknown").build();
    let resp = response_for(&req, 200, "OK", Some("x")).unwrap();
    p.inject_ba(&resp);
    p.drive_for(ms(20));
    let ev = p.a.take_events();
    assert!(matches!(&ev[..], [TuEvent::StrayResponse { .. }]));
    let bad =
        Message::parse(&b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"[..])
            .unwrap();
    p.inject_ba(&bad);
    p.drive_for(ms(20));
    let ev = p.a.take_events();
    assert!(matches!(
        &ev[..],
        [TuEvent::Dropped {
            reason: DropReason::BadResponse {
                header: BadHeader::Via
            },
            ..
        }]
    ));
    assert_eq!(p.a.layer.stats().stray_responses, 1);
    assert_eq!(p.a.layer.stats().dropped_malformed, 1);
}

#[test]
fn send_request_validates() {
    let mut l = TransactionLayer::new(Config::default());
    let now = std::time::Instant::now();
    let dest = Destination {
        remote: "192.0.2.9:5060".parse().unwrap(),
        flow: None,
        reliable: false,
    };
    let ack = RequestBuilder::new("ACK", Some("z9hG4bKq")).build();
    assert_eq!(l.send_request(now, ack, dest), Err(SendError::Ack));
    let no_branch = RequestBuilder::new("OPTIONS", None).build();
    assert_eq!(
        l.send_request(now, no_branch, dest),
        Err(SendError::MissingBranch)
    );
    let cookie_only = RequestBuilder::new("OPTIONS", Some("z9hG4bK")).build();
    assert_eq!(
        l.send_request(now, cookie_only, dest),
        Err(SendError::MissingBranch)
    );
    let text = options("z9hG4bKq1")
        .text()
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INFO");
    let mismatch = Message::parse(bytes::Bytes::from(text)).unwrap();
    assert_eq!(
        l.send_request(now, mismatch, dest),
        Err(SendError::BadHeader(BadHeader::CSeqMethod))
    );
    let resp = response_for(&options("z9hG4bKq2").build(), 200, "OK", None).unwrap();
    assert_eq!(l.send_request(now, resp, dest), Err(SendError::NotARequest));
    l.send_request(now, options("z9hG4bKq3").build(), dest)
        .unwrap();
    assert_eq!(
        l.send_request(now, options("z9hG4bKQ3").build(), dest),
        Err(SendError::DuplicateBranch)
    );
    // Same branch, other method: a distinct transaction (17.1.3 matches on both).
    l.send_request(
        now,
        RequestBuilder::new("INFO", Some("z9hG4bKq3")).build(),
        dest,
    )
    .unwrap();
    let b1 = l.new_branch();
    let b2 = l.new_branch();
    assert!(b1.starts_with("z9hG4bK") && b1 != b2);
}

#[test]
fn responses_match_on_branch_and_cseq_method() {
    // 17.1.3: a CANCEL shares the INVITE's branch; the CSeq method tells them apart.
    let mut p = pair(false);
    let inv_req = invite("z9hG4bKm1").build();
    let inv = p.send_request_a(inv_req.clone());
    p.drive_for(ms(300)); // the 100 Trying arrives: Proceeding
    let cancel = p.a.layer.cancel(p.now, inv).unwrap();
    p.flush();
    let cancel_req = p.a.layer.client_request(cancel).unwrap().clone();
    let r200 = response_for(&cancel_req, 200, "OK", Some("t")).unwrap();
    let r487 = response_for(&inv_req, 487, "Request Terminated", Some("t")).unwrap();
    p.inject_ba(&r200);
    p.inject_ba(&r487);
    p.drive_for(ms(20));
    assert_eq!(responses(&p.a, cancel), [200]);
    assert_eq!(responses(&p.a, inv), [100, 487]);
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    // 9.1: no CANCEL before a provisional response.
    let cfg = Config {
        trying_delay: None,
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    let inv = p.send_request_a(invite("z9hG4bKc1").build());
    let c = p.a.layer.cancel(p.now, inv).unwrap();
    p.flush();
    assert_eq!(p.a.layer.state(TxId::Client(c)), Some(TxState::Held));
    assert_eq!(
        p.a.layer.cancel(p.now, inv),
        Err(CancelError::AlreadyCancelled(c))
    );
    p.drive_for(ms(20));
    assert!(p.a.sent_times(p.start, "CANCEL").is_empty());
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 180, "Ringing", Some("tt")).unwrap();
    p.drive_for(ms(20));
    // The 180 arrived at 30 ms: the CANCEL left then.
    assert_eq!(in_ms(&p.a.sent_times(p.start, "CANCEL")), [30]);
    let cancel_msg = last_sent(&p.a, "CANCEL");
    assert_eq!(
        cancel_msg.top_via().unwrap().unwrap().branch,
        Some("z9hG4bKc1")
    );
    assert_eq!(cancel_msg.cseq().unwrap().unwrap().method_str, "CANCEL");
    let ev = p.b.take_events();
    let (csid, target) = match &ev[..] {
        [TuEvent::Cancel { id, target, .. }] => (*id, *target),
        other => panic!("{other:?}"),
    };
    assert_eq!(target, Some(sid));
    // The TU: 200 to the CANCEL, 487 to the INVITE (9.2).
    p.b.respond(p.now, csid, 200, "OK", Some("tt")).unwrap();
    p.b.respond(p.now, sid, 487, "Request Terminated", Some("tt"))
        .unwrap();
    p.drive_for(ms(30));
    assert_eq!(responses(&p.a, c), [200]);
    assert_eq!(responses(&p.a, inv), [180, 487]);
    assert_eq!(p.a.sent_times(p.start, "ACK").len(), 1);
    p.drive();
    assert_eq!(
        p.a.layer.transaction_count() + p.b.layer.transaction_count(),
        0
    );
}

#[test]
fn held_cancel_is_dropped_when_the_invite_completes() {
    let cfg = Config {
        trying_delay: None,
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    let inv = p.send_request_a(invite("z9hG4bKc2").build());
    let c = p.a.layer.cancel(p.now, inv).unwrap();
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 486, "Busy Here", Some("tt"))
        .unwrap();
    p.drive_for(ms(20));
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(c)),
        Some((ms(20), TerminationReason::NotSent))
    );
    assert!(p.a.sent_times(p.start, "CANCEL").is_empty());
    assert_eq!(
        p.a.layer.cancel(p.now, inv),
        Err(CancelError::AlreadyCancelled(c))
    );
    let inv2 = p.send_request_a(invite("z9hG4bKc3").build());
    let opt = p.send_request_a(options("z9hG4bKc4").build());
    assert_eq!(p.a.layer.cancel(p.now, opt), Err(CancelError::NotInvite));
    p.drive_for(ms(20));
    let (sid2, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid2, 486, "Busy Here", Some("tt"))
        .unwrap();
    p.drive_for(ms(20));
    assert_eq!(
        p.a.layer.cancel(p.now, inv2),
        Err(CancelError::AlreadyFinal)
    );
}

#[test]
fn cancelled_invite_gives_up_after_64_t1() {
    // 9.1: without a final response 64*T1 after the CANCEL, the INVITE transaction is
    // destroyed. The TU at B ignores everything (after its 100 Trying).
    let cfg = Config {
        tu_guard_invite: None,
        tu_guard_non_invite: None,
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    let inv = p.send_request_a(invite("z9hG4bKc5").build());
    p.drive_for(secs(1));
    let c = p.a.layer.cancel(p.now, inv).unwrap();
    p.drive();
    assert_eq!(timeouts(&p.a, TxId::Client(inv)), [Timer::B]);
    assert_eq!(timeouts(&p.a, TxId::Client(c)), [Timer::F]);
    assert_eq!(
        terminated(p.start, &p.a, TxId::Client(inv)),
        Some((secs(33), TerminationReason::Timeout))
    );
}

#[test]
fn acks_for_2xx_are_the_tus_and_carry_no_transaction() {
    let mut p = pair(false);
    let inv = invite("z9hG4bKs1").build();
    p.send_request_a(inv.clone());
    p.drive_for(ms(20));
    let ack = RequestBuilder::new("ACK", Some("z9hG4bKs1-ack"))
        .to_tag("tt")
        .build();
    p.inject_ab(&ack);
    p.drive_for(ms(20));
    assert!(p
        .a
        .wire
        .iter()
        .any(|s| s.tx.is_none() && s.first_line.starts_with("ACK")));
    let ev = p.b.take_events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, TuEvent::Ack { matched: None, .. })));
    assert_eq!(ack.header(HeaderName::CSeq), Some(&b"1 ACK"[..]));
}

/// A reload (`set_config`) changes the timers of new transactions only: one that started
/// before keeps retransmitting and timing out on the old T1.
#[test]
fn set_config_applies_to_new_transactions_only() {
    use std::time::{Duration, Instant};
    let mut layer = TransactionLayer::new(Config::default());
    let start = Instant::now();
    let dest = Destination {
        remote: "192.0.2.7:5060".parse().unwrap(),
        flow: None,
        reliable: false,
    };
    let b1 = layer.new_branch();
    let old = layer
        .send_request(
            start,
            RequestBuilder::new("OPTIONS", Some(&b1)).build(),
            dest,
        )
        .unwrap();
    layer.set_config(Config::with_t1(Duration::from_millis(100)));
    assert_eq!(layer.config().t1, Duration::from_millis(100));
    let b2 = layer.new_branch();
    assert_ne!(b1, b2, "the seed and counter survive a reload");
    let new = layer
        .send_request(
            start,
            RequestBuilder::new("OPTIONS", Some(&b2)).build(),
            dest,
        )
        .unwrap();
    while layer.poll_output().is_some() {}
    // Run to the end, noting when each transaction timed out (Timer F = 64*T1).
    let mut ended = Vec::new();
    while let Some(t) = layer.poll_timeout() {
        layer.handle_timeout(t);
        while let Some(o) = layer.poll_output() {
            if let Output::Event(TuEvent::Timeout { tx, .. }) = o {
                ended.push((tx, t - start));
            }
        }
    }
    assert_eq!(
        ended,
        [
            (TxId::Client(new), Duration::from_millis(6400)),
            (TxId::Client(old), Duration::from_millis(32000)),
        ]
    );
}
