//! Server transaction matching: RFC 3261 17.2.3 (branch, sent-by, method; ACK and CANCEL),
//! 9.2 (CANCEL target), and the RFC 2543 fallback.

mod common;

use common::*;
use sip_message::Message;
use sip_transaction::testkit::{Pair, RequestBuilder};
use sip_transaction::*;

fn events(p: &mut Pair) -> Vec<TuEvent> {
    p.drive_for(ms(20));
    p.b.take_events()
}

fn first_request(p: &mut Pair) -> ServerTxId {
    p.drive_for(ms(20));
    requests(&mut p.b)[0].0
}

fn cancel_target(ev: &[TuEvent]) -> Option<(ServerTxId, Option<ServerTxId>)> {
    ev.iter().find_map(|e| match e {
        TuEvent::Cancel { id, target, .. } => Some((*id, *target)),
        _ => None,
    })
}

#[test]
fn cancel_matches_its_invite_and_is_its_own_transaction() {
    let mut p = pair(false);
    let inv = invite("z9hG4bKc1");
    p.inject_ab(&inv.build());
    let ev = events(&mut p);
    let sid = match &ev[..] {
        [TuEvent::Request { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let cancel = inv.with_method("CANCEL").build();
    p.inject_ab(&cancel);
    let (cid, target) = cancel_target(&events(&mut p)).unwrap();
    assert_eq!(target, Some(sid));
    assert_ne!(cid, sid);
    assert_eq!(p.b.layer.state(TxId::Server(cid)), Some(TxState::Trying));
    // A retransmitted CANCEL matches the CANCEL transaction (method CANCEL), not a new one.
    p.inject_ab(&cancel);
    assert!(events(&mut p).is_empty());
    p.b.respond(p.now, cid, 200, "OK", Some("t")).unwrap();
    p.inject_ab(&cancel);
    p.drive_for(ms(20));
    assert_eq!(p.b.sent_times(p.start, "SIP/2.0 200").len(), 2);
    // The INVITE transaction is untouched: the TU decides (9.2).
    assert_eq!(
        p.b.layer.state(TxId::Server(sid)),
        Some(TxState::Proceeding)
    );
}

#[test]
fn cancel_without_a_match_has_no_target() {
    let mut p = pair(false);
    p.inject_ab(&invite("z9hG4bKc2").build());
    events(&mut p);
    // Other branch.
    p.inject_ab(&invite("z9hG4bKother").with_method("CANCEL").build());
    assert_eq!(cancel_target(&events(&mut p)).unwrap().1, None);
    // Same branch, other sent-by (17.2.3 rule 2).
    p.inject_ab(
        &invite("z9hG4bKc2")
            .via_host("evil.example.com")
            .with_method("CANCEL")
            .build(),
    );
    assert_eq!(cancel_target(&events(&mut p)).unwrap().1, None);
}

#[test]
fn cancel_can_target_a_non_invite() {
    let mut p = pair(false);
    let opt = options("z9hG4bKc3");
    p.inject_ab(&opt.build());
    let sid = first_request(&mut p);
    p.inject_ab(&opt.with_method("CANCEL").build());
    assert_eq!(cancel_target(&events(&mut p)).unwrap().1, Some(sid));
}

#[test]
fn sent_by_and_method_separate_transactions() {
    let mut p = pair(false);
    p.inject_ab(&options("z9hG4bKs1").build());
    p.inject_ab(&options("z9hG4bKs1").via_host("other.example.com").build());
    p.inject_ab(
        &options("z9hG4bKs1")
            .via_host("other.example.com:5060")
            .build(),
    );
    p.inject_ab(&RequestBuilder::new("INFO", Some("z9hG4bKs1")).build());
    p.drive_for(ms(20));
    // host:5060 equals host (default port); the INFO is another transaction.
    assert_eq!(requests(&mut p.b).len(), 3);
}

#[test]
fn branch_and_host_compare_case_insensitively() {
    // 7.3.1: tokens and host names are case-insensitive.
    let mut p = pair(false);
    p.inject_ab(&options("z9hG4bKCase").build());
    p.inject_ab(
        &options("z9hG4bKcASE")
            .via_host("PC33.Atlanta.Example.COM")
            .build(),
    );
    p.drive_for(ms(20));
    assert_eq!(requests(&mut p.b).len(), 1);
    assert_eq!(p.b.layer.stats().absorbed, 1);
}

#[test]
fn ack_matches_the_invite_transaction_not_a_new_one() {
    let mut p = pair(false);
    let inv = invite("z9hG4bKa1");
    p.inject_ab(&inv.build());
    let sid = first_request(&mut p);
    p.b.respond(p.now, sid, 404, "Not Found", Some("tt"))
        .unwrap();
    // An ACK with the INVITE branch from another sent-by is not ours: passed up.
    p.inject_ab(
        &inv.with_method("ACK")
            .via_host("else.example.com")
            .to_tag("tt")
            .build(),
    );
    let ev = events(&mut p);
    assert!(matches!(&ev[..], [TuEvent::Ack { matched: None, .. }]));
    p.inject_ab(&inv.with_method("ACK").to_tag("tt").build());
    assert!(events(&mut p).is_empty());
    assert_eq!(p.b.layer.state(TxId::Server(sid)), Some(TxState::Confirmed));
}

fn legacy_invite() -> RequestBuilder {
    RequestBuilder::new("INVITE", None).via_host("old.example.com:5060")
}

#[test]
fn rfc2543_invite_retransmission_and_ack() {
    let mut p = pair(false);
    let inv = legacy_invite();
    p.inject_ab(&inv.build());
    let sid = first_request(&mut p);
    // The same INVITE again: a retransmission (Request-URI, tags, Call-ID, CSeq, top Via).
    p.inject_ab(&inv.build());
    assert!(events(&mut p).is_empty());
    // A different CSeq or Call-ID is a new transaction.
    p.inject_ab(&inv.clone().cseq(2).build());
    p.inject_ab(&inv.clone().call_id("other@old.example.com").build());
    p.drive_for(ms(20));
    assert_eq!(requests(&mut p.b).len(), 2);
    p.b.respond(p.now, sid, 486, "Busy Here", Some("resp-tag"))
        .unwrap();
    // An ACK with another To tag does not match our response: passed up (17.2.3).
    p.inject_ab(&inv.with_method("ACK").to_tag("not-ours").build());
    assert!(matches!(
        &events(&mut p)[..],
        [TuEvent::Ack { matched: None, .. }]
    ));
    assert_eq!(p.b.layer.state(TxId::Server(sid)), Some(TxState::Completed));
    // With the To tag of our response and the INVITE's CSeq number: it matches.
    p.inject_ab(&inv.with_method("ACK").to_tag("resp-tag").build());
    assert!(events(&mut p).is_empty());
    assert_eq!(p.b.layer.state(TxId::Server(sid)), Some(TxState::Confirmed));
}

#[test]
fn rfc2543_cancel_and_lone_magic_cookie() {
    let mut p = pair(false);
    let inv = legacy_invite();
    p.inject_ab(&inv.build());
    let sid = first_request(&mut p);
    p.inject_ab(&inv.with_method("CANCEL").build());
    assert_eq!(cancel_target(&events(&mut p)).unwrap().1, Some(sid));
    // Another Request-URI: no target.
    p.inject_ab(
        &inv.with_method("CANCEL")
            .request_uri("sip:carol@example.com")
            .build(),
    );
    assert_eq!(cancel_target(&events(&mut p)).unwrap().1, None);
    // "z9hG4bK" alone is not an RFC 3261 branch (RFC 4475 badbranch): 2543 rules apply, so a
    // request differing only in Call-ID is another transaction even with the same branch.
    let lone = RequestBuilder::new("OPTIONS", Some("z9hG4bK"));
    p.inject_ab(&lone.build());
    p.inject_ab(&lone.clone().call_id("x@y").build());
    p.inject_ab(&lone.build());
    p.drive_for(ms(20));
    assert_eq!(requests(&mut p.b).len(), 2);
}

#[test]
fn rfc2543_ack_for_2xx_in_accepted_goes_up_matched() {
    let mut p = pair(false);
    let inv = legacy_invite();
    p.inject_ab(&inv.build());
    let sid = first_request(&mut p);
    p.b.respond(p.now, sid, 200, "OK", Some("ok-tag")).unwrap();
    p.inject_ab(&inv.with_method("ACK").to_tag("ok-tag").build());
    let ev = events(&mut p);
    assert!(matches!(&ev[..], [TuEvent::Ack { matched: Some(m), .. }] if *m == sid));
}

#[test]
fn responses_are_not_taken_for_requests() {
    // handle_request with a response (and the reverse) dispatches on the start line.
    let mut l = TransactionLayer::new(Config::default());
    let now = std::time::Instant::now();
    let src = Source {
        remote: "192.0.2.1:5060".parse().unwrap(),
        flow: FlowId(1),
        reliable: false,
    };
    let req = options("z9hG4bKd1").build();
    let resp: Message = response_for(&req, 200, "OK", Some("t")).unwrap();
    l.handle_request(now, resp, src);
    l.handle_response(now, req, src);
    let ev: Vec<_> = std::iter::from_fn(|| l.poll_output()).collect();
    assert!(matches!(
        ev[0],
        Output::Event(TuEvent::StrayResponse { .. })
    ));
    assert!(matches!(ev[1], Output::Event(TuEvent::Request { .. })));
}
