//! Server transactions: RFC 3261 17.2.1 (INVITE, with the RFC 6026 Accepted state), 17.2.2
//! (non-INVITE), limits and malformed requests. A's layer is only used to inject raw requests,
//! as a hand-driven client.

mod common;

use common::*;
use sip_message::Message;
use sip_transaction::testkit::{LinkConfig, RequestBuilder};
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
fn trying_is_sent_after_200_ms_without_tu_answer() {
    let mut p = pair(false);
    p.inject_ab(&invite("z9hG4bKs1").build());
    p.drive_for(secs(1));
    // Arrived at 10 ms, 100 at 210 ms (17.2.1).
    assert_eq!(in_ms(&p.b.sent_times(p.start, "SIP/2.0 100 Trying")), [210]);
    let t = last_sent(&p.b, "SIP/2.0 100");
    assert_eq!(t.to().unwrap().unwrap().tag(), None);
    assert_eq!(t.top_via().unwrap().unwrap().branch, Some("z9hG4bKs1"));
}

#[test]
fn no_trying_when_the_tu_answers_in_time() {
    let mut p = pair(false);
    p.inject_ab(&invite("z9hG4bKs2").build());
    p.drive_for(ms(100));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 180, "Ringing", Some("tt")).unwrap();
    p.drive_for(secs(1));
    assert!(p.b.sent_times(p.start, "SIP/2.0 100").is_empty());
    assert_eq!(in_ms(&p.b.sent_times(p.start, "SIP/2.0 180")), [100]);
}

#[test]
fn trying_delay_is_configurable() {
    let cfg = Config {
        trying_delay: Some(std::time::Duration::ZERO),
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    p.inject_ab(&invite("z9hG4bKs3").build());
    p.drive_for(secs(1));
    assert_eq!(in_ms(&p.b.sent_times(p.start, "SIP/2.0 100")), [10]);
    let cfg = Config {
        trying_delay: None,
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    p.inject_ab(&invite("z9hG4bKs4").build());
    p.drive_for(secs(1));
    assert!(p.b.sent_times(p.start, "SIP/2.0 100").is_empty());
}

#[test]
fn invite_retransmission_in_proceeding_resends_last_provisional() {
    let mut p = pair(false);
    let inv = invite("z9hG4bKs5").build();
    p.inject_ab(&inv);
    p.drive_for(ms(300)); // 100 sent at 210
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 183, "Session Progress", Some("tt"))
        .unwrap();
    p.inject_ab(&inv);
    p.drive_for(ms(50));
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 183").len(), 2);
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 100").len(), 1);
    // Absorbed: no second Request for the TU.
    assert!(requests(&mut p.b).is_empty());
    assert_eq!(p.b.layer.stats().absorbed, 1);
}

#[test]
fn early_invite_retransmission_gets_the_trying_at_once() {
    // A retransmission (here a duplicate) before the 200 ms timer: the client is waiting, the
    // 100 goes now, once.
    let mut p = pair(false);
    let inv = invite("z9hG4bKs6").build();
    p.inject_ab(&inv);
    p.drive_for(ms(50));
    p.inject_ab(&inv);
    p.drive_for(secs(1));
    assert_eq!(in_ms(&p.b.sent_times(p.start, "SIP/2.0 100")), [60]);
}

#[test]
fn non_2xx_timer_g_caps_at_t2_and_timer_h_fires() {
    let mut p = pair(false);
    p.inject_ab(&invite("z9hG4bKg1").build());
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 480, "Temporarily Unavailable", Some("tt"))
        .unwrap();
    p.drive();
    // Sent at 10 ms, then G: +0.5, +1.5, +3.5, +7.5, then every T2 = 4 s, until H at +32 s.
    assert_eq!(
        in_ms(&p.b.sent_times(p.start, "SIP/2.0 480")),
        [10, 510, 1510, 3510, 7510, 11510, 15510, 19510, 23510, 27510, 31510]
    );
    assert_eq!(timeouts(&p.b, TxId::Server(sid)), [Timer::H]);
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(32_010), TerminationReason::Timeout))
    );
}

#[test]
fn ack_confirms_and_timer_i_absorbs_acks() {
    let mut p = pair(false);
    let inv = invite("z9hG4bKi1").build();
    p.inject_ab(&inv);
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 486, "Busy Here", Some("tt"))
        .unwrap();
    p.drive_for(ms(1000)); // G at 510 ms
                           // An INVITE retransmission in Completed gets the final response again.
    p.inject_ab(&inv);
    p.drive_for(ms(20)); // at 1030
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 486").len(), 3);
    let resp = last_sent(&p.b, "SIP/2.0 486");
    let ack = ack_for_non_2xx(&inv, &resp).unwrap();
    p.inject_ab(&ack);
    p.drive_for(ms(20)); // ACK at 1040
    assert_eq!(p.b.layer.state(TxId::Server(sid)), Some(TxState::Confirmed));
    p.inject_ab(&ack);
    p.inject_ab(&inv);
    p.drive();
    // ACK for a non-2xx is the transaction's: never passed up; G stopped; I = T4.
    assert_eq!(p.b.count_log(|e| matches!(e, TuEvent::Ack { .. })), 0);
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 486").len(), 3);
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(6_040), TerminationReason::Completed))
    );
    assert!(timeouts(&p.b, TxId::Server(sid)).is_empty());
}

#[test]
fn accepted_absorbs_invites_and_passes_acks_up() {
    let mut p = pair(false);
    let inv = invite("z9hG4bKl1").build();
    p.inject_ab(&inv);
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 200, "OK", Some("tt")).unwrap();
    p.drive_for(ms(10));
    // RFC 6026 7.1: INVITE retransmissions in Accepted are absorbed, not answered.
    p.inject_ab(&inv);
    p.drive_for(ms(20));
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 200").len(), 1);
    assert!(requests(&mut p.b).is_empty());
    // The UAS core retransmits its 2xx through the transaction.
    p.b.respond(p.now, sid, 200, "OK", Some("tt")).unwrap();
    assert_eq!(
        p.b.respond(p.now, sid, 486, "Busy", Some("tt")),
        Err(ResponseError::InvalidState {
            state: TxState::Accepted,
            status: 486
        })
    );
    // The ACK for the 2xx (its own branch) goes to the TU unmatched; one reusing the INVITE's
    // branch matches the Accepted transaction and goes up too (6026 7.1).
    let ack = RequestBuilder::new("ACK", Some("z9hG4bKl1-ack"))
        .to_tag("tt")
        .build();
    let ack_same = RequestBuilder::new("ACK", Some("z9hG4bKl1"))
        .to_tag("tt")
        .build();
    p.inject_ab(&ack);
    p.inject_ab(&ack_same);
    p.drive_for(ms(20));
    let acks: Vec<_> =
        p.b.take_events()
            .into_iter()
            .filter_map(|e| match e {
                TuEvent::Ack { matched, .. } => Some(matched),
                _ => None,
            })
            .collect();
    assert_eq!(acks, [None, Some(sid)]);
    p.drive();
    // Timer L: 64*T1 after the first 2xx (10 ms).
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(32_010), TerminationReason::Completed))
    );
}

#[test]
fn non_invite_timer_j_absorbs_request_retransmissions() {
    let mut p = pair(false);
    let req = options("z9hG4bKj1").build();
    p.inject_ab(&req);
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    // Trying: a retransmission is absorbed silently (17.2.2).
    p.inject_ab(&req);
    p.drive_for(ms(20));
    assert!(p.b.wire.is_empty());
    p.b.respond(p.now, sid, 200, "OK", Some("tt")).unwrap();
    assert_eq!(
        p.b.respond(p.now, sid, 500, "Oops", Some("tt")),
        Err(ResponseError::InvalidState {
            state: TxState::Completed,
            status: 500
        })
    );
    p.drive_for(ms(10));
    // Completed: each retransmission gets the final response again.
    p.inject_ab(&req);
    p.inject_ab(&req);
    p.drive();
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 200").len(), 3);
    assert!(requests(&mut p.b).is_empty());
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(32_030), TerminationReason::Completed))
    );
}

#[test]
fn reliable_server_invite_does_not_retransmit_and_waits_zero() {
    let mut p = pair(true);
    let inv = invite("z9hG4bKr1").transport("TCP").build();
    p.inject_ab(&inv);
    p.drive_for(ms(10));
    let (sid, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid, 486, "Busy Here", Some("tt"))
        .unwrap();
    p.drive_for(secs(2));
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 486").len(), 1);
    let resp = last_sent(&p.b, "SIP/2.0 486");
    p.inject_ab(&ack_for_non_2xx(&inv, &resp).unwrap());
    p.drive_for(ms(10));
    // Timer I = 0.
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(sid)),
        Some((ms(2_020), TerminationReason::Completed))
    );
    // Without an ACK, Timer H still runs 64*T1 on a reliable transport.
    let inv2 = invite("z9hG4bKr2").transport("TCP").build();
    p.inject_ab(&inv2);
    p.drive_for(ms(10));
    let (sid2, _) = requests(&mut p.b)[0].clone();
    p.b.respond(p.now, sid2, 486, "Busy Here", Some("tt"))
        .unwrap();
    p.drive();
    assert_eq!(timeouts(&p.b, TxId::Server(sid2)), [Timer::H]);
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 486").len(), 2);
}

#[test]
fn transport_error_on_server_transactions() {
    let mut p = pair(false);
    p.inject_ab(&invite("z9hG4bKte1").build());
    p.inject_ab(&invite("z9hG4bKte2").build());
    p.drive_for(ms(10));
    let r = requests(&mut p.b);
    p.b.respond(p.now, r[1].0, 200, "OK", Some("t")).unwrap();
    let now = p.now;
    p.b.layer.handle_transport_error(now, TxId::Server(r[0].0));
    p.b.layer.handle_transport_error(now, TxId::Server(r[1].0));
    p.flush();
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(r[0].0)),
        Some((ms(10), TerminationReason::TransportError))
    );
    // Accepted stays: the 2xx is the TU's to deliver (RFC 6026); it is told.
    assert_eq!(
        p.b.layer.state(TxId::Server(r[1].0)),
        Some(TxState::Accepted)
    );
    assert_eq!(
        p.b.count_log(|e| matches!(e, TuEvent::TransportError { .. })),
        2
    );
}

#[test]
fn tu_guard_answers_for_a_silent_tu() {
    let cfg = Config {
        tu_guard_invite: Some(secs(10)),
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    p.inject_ab(&options("z9hG4bKgd1").build());
    p.inject_ab(&invite("z9hG4bKgd2").build());
    p.drive_for(ms(10));
    let r = requests(&mut p.b);
    p.drive();
    // INVITE: 500 at 10 s, then G retransmissions and H (no ACK from the injector).
    assert_eq!(
        timeouts(&p.b, TxId::Server(r[1].0)),
        [Timer::TuGuard, Timer::H]
    );
    // Non-INVITE: 128*T1 = 64 s, then J.
    assert_eq!(timeouts(&p.b, TxId::Server(r[0].0)), [Timer::TuGuard]);
    let sent = p.b.sent_times(p.start, "SIP/2.0 500");
    assert_eq!(sent[0], ms(10_010));
    assert_eq!(*sent.last().unwrap(), ms(64_010));
    assert_eq!(
        terminated(p.start, &p.b, TxId::Server(r[0].0)),
        Some((ms(96_010), TerminationReason::Completed))
    );
    assert_eq!(p.b.layer.transaction_count(), 0);
}

#[test]
fn malformed_requests_get_a_stateless_400_or_are_dropped() {
    let mut p = pair(false);
    let no_call_id = options("z9hG4bKb1")
        .text()
        .replace("Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", "");
    p.inject_ab(&Message::parse(bytes::Bytes::from(no_call_id)).unwrap());
    let bad_cseq = options("z9hG4bKb2")
        .text()
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INFO");
    p.inject_ab(&Message::parse(bytes::Bytes::from(bad_cseq)).unwrap());
    let bad_via = options("z9hG4bKb3")
        .text()
        .replace("SIP/2.0/UDP", "SIP/2.0");
    p.inject_ab(&Message::parse(bytes::Bytes::from(bad_via)).unwrap());
    let ack = RequestBuilder::new("ACK", Some("z9hG4bKb4"))
        .text()
        .replace("CSeq: 1 ACK", "CSeq: x ACK");
    p.inject_ab(&Message::parse(bytes::Bytes::from(ack)).unwrap());
    p.drive_for(ms(20));
    let reasons: Vec<_> =
        p.b.take_events()
            .into_iter()
            .filter_map(|e| match e {
                TuEvent::Dropped { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
    assert_eq!(
        reasons,
        [
            DropReason::BadRequest {
                header: BadHeader::CallId,
                replied: true
            },
            DropReason::BadRequest {
                header: BadHeader::CSeqMethod,
                replied: true
            },
            DropReason::BadRequest {
                header: BadHeader::Via,
                replied: false
            },
            DropReason::BadRequest {
                header: BadHeader::CSeq,
                replied: false
            },
        ]
    );
    let lines = p.b.sent_lines();
    assert_eq!(
        lines,
        [
            "SIP/2.0 400 Bad Request (missing or malformed Call-ID)",
            "SIP/2.0 400 Bad Request (CSeq method does not match the request method)"
        ]
    );
    assert_eq!(p.b.layer.transaction_count(), 0);
    assert_eq!(p.b.layer.stats().dropped_malformed, 4);
}

#[test]
fn transaction_limit_answers_new_requests_with_503() {
    let cfg = Config {
        max_transactions: 3,
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    for i in 0..5 {
        p.inject_ab(&options(&format!("z9hG4bKlim{i}")).build());
    }
    p.drive_for(ms(10));
    let ev = p.b.take_events();
    let created = ev
        .iter()
        .filter(|e| matches!(e, TuEvent::Request { .. }))
        .count();
    let dropped = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                TuEvent::Dropped {
                    reason: DropReason::TooManyTransactions { replied: true },
                    ..
                }
            )
        })
        .count();
    assert_eq!((created, dropped), (3, 2));
    assert_eq!(p.b.layer.stats().dropped_overload, 2);
    assert_eq!(p.b.layer.stats().overload_answered, 2);
    assert_eq!(p.b.layer.transaction_count(), 3);
    // The refused ones got a stateless 503 with Retry-After (RFC 3261 21.5.4); the live ones
    // nothing yet (the TU has not answered).
    assert_eq!(
        p.b.sent_lines(),
        [
            "SIP/2.0 503 Service Unavailable",
            "SIP/2.0 503 Service Unavailable"
        ]
    );
    let r = Message::parse(p.b.wire[0].bytes.clone()).unwrap();
    assert_eq!(r.header_by_name("Retry-After"), Some(&b"5"[..]));
    assert!(r.to().unwrap().unwrap().tag().is_some());
    assert_eq!(r.top_via().unwrap().unwrap().branch, Some("z9hG4bKlim3"));
    assert!(p.b.wire.iter().all(|s| s.tx.is_none()), "stateless");
    p.b.wire.clear();
    // The client side fails fast too.
    let dest = p.dest_ba();
    let now = p.now;
    assert_eq!(
        p.b.layer
            .send_request(now, options("z9hG4bKlimc").build(), dest),
        Err(SendError::TooManyTransactions)
    );
    // Room again once transactions end.
    p.drive();
    assert_eq!(p.b.layer.transaction_count(), 0);
    p.inject_ab(&options("z9hG4bKlim9").build());
    p.drive_for(ms(10));
    assert_eq!(requests(&mut p.b).len(), 1);
}

#[test]
fn heap_stays_bounded_under_a_flood_of_short_transactions() {
    // Over TCP, each INVITE answered 486 and ACKed leaves a stale Timer H entry (32 s) behind;
    // the heap is compacted instead of growing with the request rate.
    let mut p = pair(true);
    let mut peak = 0;
    for i in 0..5000 {
        let inv = invite(&format!("z9hG4bKf{i}")).transport("TCP").build();
        p.inject_ab(&inv);
        p.drive_for(ms(10));
        for (sid, _) in requests(&mut p.b) {
            p.b.respond(p.now, sid, 486, "Busy Here", Some("t"))
                .unwrap();
        }
        p.flush();
        let resp = last_sent(&p.b, "SIP/2.0 486");
        p.inject_ab(&ack_for_non_2xx(&inv, &resp).unwrap());
        p.drive_for(ms(10));
        peak = peak.max(p.b.layer.timer_entries());
    }
    assert_eq!(p.b.layer.transaction_count(), 0);
    assert_eq!(p.b.layer.index_entries(), 0);
    assert!(peak <= 1024 + 8, "heap peaked at {peak}");
}

#[test]
fn transaction_limit_without_retry_after_drops_silently() {
    let cfg = Config {
        max_transactions: 1,
        overload_retry_after: None,
        ..Config::default()
    };
    let mut p = pair_b(cfg, LinkConfig::perfect(), false);
    for i in 0..3 {
        p.inject_ab(&options(&format!("z9hG4bKsil{i}")).build());
    }
    p.drive_for(ms(10));
    let replied: Vec<bool> =
        p.b.take_events()
            .iter()
            .filter_map(|e| match e {
                TuEvent::Dropped {
                    reason: DropReason::TooManyTransactions { replied },
                    ..
                } => Some(*replied),
                _ => None,
            })
            .collect();
    assert_eq!(replied, [false, false]);
    assert!(p.b.wire.is_empty());
    assert_eq!(p.b.layer.stats().dropped_overload, 2);
    assert_eq!(p.b.layer.stats().overload_answered, 0);
}
