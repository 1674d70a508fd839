//! The registrar (RFC 3261 10.3, RFC 3327) driven through the engine with simulated time.

mod common;

use std::time::Duration;

use call_engine::Event;
use common::*;
use sip_message::HeaderName;
use store::RegistrationStore;

const AOR: &str = "sip:alice@example.com";

fn contacts(m: &sip_message::Message) -> Vec<String> {
    headers(m, HeaderName::Contact)
}

#[test]
fn add_refresh_and_remove_a_binding() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10:5060>"],
        "reg-1",
        1,
        "Expires: 3600\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    assert_eq!(contacts(&r), ["<sip:alice@192.0.2.10:5060>;expires=3600"]);
    assert_eq!(
        header(&r, "Date").as_deref(),
        Some("Thu, 01 Jan 2026 00:00:00 GMT")
    );
    assert!(r.to().unwrap().unwrap().tag().is_some());
    let b = h.store.bindings(AOR).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].received.as_deref(), Some(ALICE1));
    assert!(b[0].flow.as_deref().unwrap().starts_with("udp:"));
    assert_eq!((b[0].call_id.as_str(), b[0].cseq), ("reg-1", 1));
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::Registered { bindings: 1, .. })),
        1
    );

    // Refresh 100 s later with a shorter expiry in the Contact parameter.
    h.advance(Duration::from_secs(100));
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10:5060>;expires=1800"],
        "reg-1",
        2,
        "Expires: 3600\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    assert_eq!(contacts(&r), ["<sip:alice@192.0.2.10:5060>;expires=1800"]);
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 1);

    // Expires: 0 removes it.
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10:5060>"],
        "reg-1",
        3,
        "Expires: 0\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    assert!(contacts(&r).is_empty());
    assert!(h.store.bindings(AOR).unwrap().is_empty());
}

#[test]
fn remaining_expiry_and_query() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10>"],
        "c1",
        1,
        "Expires: 600\r\n",
    );
    h.take();
    h.advance(Duration::from_secs(250));
    // A second contact from another device; the 200 lists both with what each has left.
    h.register(
        "alice",
        ALICE2,
        &["<sip:alice@192.0.2.11>;q=0.5"],
        "c2",
        1,
        "Expires: 600\r\n",
    );
    let r = h.response_to(ALICE2);
    assert_eq!(
        contacts(&r),
        [
            "<sip:alice@192.0.2.10>;expires=350",
            "<sip:alice@192.0.2.11>;q=0.5;expires=600"
        ]
    );
    // A query (no Contact) lists them too and changes nothing.
    h.register("alice", ALICE1, &[], "c3", 1, "");
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    assert_eq!(contacts(&r).len(), 2);
    assert_eq!(h.store.bindings(AOR).unwrap()[1].q, Some(500));
}

#[test]
fn wildcard_removes_everything_only_when_alone_with_expires_zero() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10>", "<sip:alice@192.0.2.11>"],
        "c1",
        1,
        "",
    );
    assert_eq!(h.response_to(ALICE1).status(), Some(200));
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 2);

    h.register("alice", ALICE1, &["*"], "c1", 2, "Expires: 3600\r\n");
    assert_eq!(h.response_to(ALICE1).status(), Some(400));
    h.register(
        "alice",
        ALICE1,
        &["*", "<sip:alice@192.0.2.12>"],
        "c1",
        3,
        "Expires: 0\r\n",
    );
    assert_eq!(h.response_to(ALICE1).status(), Some(400));
    h.register("alice", ALICE1, &["*"], "c1", 4, "");
    assert_eq!(h.response_to(ALICE1).status(), Some(400));
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 2);

    h.register("alice", ALICE1, &["*"], "c1", 5, "Expires: 0\r\n");
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    assert!(contacts(&r).is_empty());
    assert!(h.store.bindings(AOR).unwrap().is_empty());
}

#[test]
fn too_brief_is_423_and_too_long_is_clamped() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10>;expires=30"],
        "c1",
        1,
        "",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(423));
    assert_eq!(header(&r, "Min-Expires").as_deref(), Some("60"));
    assert!(h.store.bindings(AOR).unwrap().is_empty());

    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10>"],
        "c1",
        2,
        "Expires: 999999\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(contacts(&r), ["<sip:alice@192.0.2.10>;expires=7200"]);
    // No expiry at all: the default.
    h.register("bob", ALICE2, &["<sip:bob@192.0.2.11>"], "c9", 1, "");
    let r = h.response_to(ALICE2);
    assert_eq!(contacts(&r), ["<sip:bob@192.0.2.11>;expires=3600"]);
}

#[test]
fn call_id_and_cseq_order() {
    let mut h = H::new();
    let c = "<sip:alice@192.0.2.10>";
    h.register("alice", ALICE1, &[c], "same", 5, "");
    assert_eq!(h.response_to(ALICE1).status(), Some(200));
    // Same Call-ID, same or lower CSeq: refused, nothing changes.
    h.register("alice", ALICE1, &[c], "same", 5, "Expires: 0\r\n");
    assert_eq!(h.response_to(ALICE1).status(), Some(500));
    h.register("alice", ALICE1, &[c], "same", 4, "Expires: 0\r\n");
    assert_eq!(h.response_to(ALICE1).status(), Some(500));
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 1);
    // Another Call-ID replaces the binding whatever its CSeq.
    h.register("alice", ALICE1, &[c], "other", 1, "Expires: 120\r\n");
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    let b = h.store.bindings(AOR).unwrap();
    assert_eq!((b.len(), b[0].call_id.as_str(), b[0].cseq), (1, "other", 1));
}

#[test]
fn equivalent_contact_replaces_the_binding() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@PC.example.net>"],
        "c1",
        1,
        "",
    );
    h.take();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@pc.example.net>"],
        "c2",
        1,
        "",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(contacts(&r), ["<sip:alice@pc.example.net>;expires=3600"]);
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 1);
}

#[test]
fn path_is_stored_and_echoed_with_supported_path() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@10.0.0.5:5060>"],
        "c1",
        1,
        "Path: <sip:edge.example.net;lr>\r\nSupported: path\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(200));
    assert_eq!(headers(&r, HeaderName::Path), ["<sip:edge.example.net;lr>"]);
    assert_eq!(
        h.store.bindings(AOR).unwrap()[0].path,
        ["<sip:edge.example.net;lr>"]
    );

    // Without Supported: path the vector is still stored (routing needs it) but not echoed.
    h.register(
        "bob",
        ALICE2,
        &["<sip:bob@10.0.0.6>"],
        "c2",
        1,
        "Path: <sip:edge2.example.net;lr>\r\n",
    );
    let r = h.response_to(ALICE2);
    assert_eq!(r.status(), Some(200));
    assert!(headers(&r, HeaderName::Path).is_empty());
    assert_eq!(
        h.store.bindings("sip:bob@example.com").unwrap()[0].path,
        ["<sip:edge2.example.net;lr>"]
    );
}

#[test]
fn aor_is_canonical_and_must_be_ours() {
    let mut h = H::new();
    let text = register_text("%61lice", ALICE1, &["<sip:a@192.0.2.10>"], "c1", 1, "", 1).replace(
        "<sip:%61lice@example.com>",
        "<sip:%61lice@EXAMPLE.com;user=ip>",
    );
    h.send(&text, ALICE1);
    assert_eq!(h.response_to(ALICE1).status(), Some(200));
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 1);

    let text = register_text("mallory", ALICE1, &["<sip:m@192.0.2.10>"], "c2", 1, "", 2).replace(
        "To: <sip:mallory@example.com>",
        "To: <sip:mallory@evil.test>",
    );
    h.send(&text, ALICE1);
    assert_eq!(h.response_to(ALICE1).status(), Some(404));
}

#[test]
fn unknown_require_is_420() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:a@192.0.2.10>"],
        "c1",
        1,
        "Require: path, foo\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(420));
    assert_eq!(header(&r, "Unsupported").as_deref(), Some("foo"));
}

#[test]
fn instance_and_params_are_kept() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;q=0.7"],
        "c1",
        1,
        "User-Agent: phone/1.0\r\n",
    );
    let r = h.response_to(ALICE1);
    assert_eq!(
        contacts(&r),
        ["<sip:alice@192.0.2.10;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;q=0.7;expires=3600"]
    );
    let b = &h.store.bindings(AOR).unwrap()[0];
    assert_eq!(
        b.instance_id.as_deref(),
        Some("urn:uuid:00000000-0000-1000-8000-000A95A0E128")
    );
    assert_eq!((b.reg_id, b.q), (Some(1), Some(700)));
    assert_eq!(b.user_agent.as_deref(), Some("phone/1.0"));
}

#[test]
fn lapsed_bindings_are_ignored_then_purged() {
    let mut h = H::new();
    h.register(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10>"],
        "c1",
        1,
        "Expires: 130\r\n",
    );
    h.take();
    h.advance(Duration::from_secs(131));
    // Lapsed but not purged yet (purges run every 60 s), so the AOR is known: 480.
    assert_eq!(h.store.bindings(AOR).unwrap().len(), 1);
    h.send(
        &invite_text(AOR, CALLER, "call-1", "z9hG4bKinv1", ""),
        CALLER,
    );
    assert_eq!(h.response_to(CALLER).status(), Some(480));
    h.advance(Duration::from_secs(60));
    h.take(); // 480 retransmissions: the test caller sends no ACK
    assert!(h.store.bindings(AOR).unwrap().is_empty());
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::Purged { bindings: 1 })),
        1
    );
    // Purged and unknown to any directory: 404.
    h.send(
        &invite_text(AOR, CALLER, "call-2", "z9hG4bKinv2", ""),
        CALLER,
    );
    assert_eq!(h.response_to(CALLER).status(), Some(404));
}

#[test]
fn register_for_another_domain_is_proxied() {
    let mut h = H::new();
    let text = register_text("alice", ALICE1, &["<sip:a@192.0.2.10>"], "c1", 1, "", 1)
        .replace("REGISTER sip:example.com", "REGISTER sip:192.0.2.99")
        .replace("example.com>", "other.test>");
    h.send(&text, ALICE1);
    let fwd = h.request_to("192.0.2.99:5060", "REGISTER");
    assert_eq!(fwd.vias().count(), 2);
    assert!(h.store.bindings(AOR).unwrap().is_empty());
}

/// A reload changes the registrar (domains, expiry limits) for the next REGISTER, and a request
/// being proxied meanwhile completes.
#[test]
fn reconfigure_applies_to_the_next_request_and_keeps_what_is_in_progress() {
    let mut h = H::new();
    // In progress: a MESSAGE forwarded, not answered yet.
    h.send(
        &request_text(
            "MESSAGE",
            "sip:x@192.0.2.40:5060",
            CALLER,
            "rc1",
            "z9hG4bKrc1",
            1,
            "",
        ),
        CALLER,
    );
    let fwd = h.request_to("192.0.2.40:5060", "MESSAGE");
    let other = |user: &str, n: u64, expires: &str| {
        register_text(
            user,
            ALICE1,
            &["<sip:a@192.0.2.10>"],
            &format!("rc-{n}"),
            1,
            expires,
            n,
        )
        .replace("@example.com", "@other.example")
        .replace("sip:example.com", "sip:other.example")
    };
    // Not our domain yet: not registered here (the proxy tries to forward it).
    h.send(&other("dave", 100, ""), ALICE1);
    assert_ne!(h.response_to(ALICE1).status(), Some(200));
    assert!(h
        .store
        .bindings("sip:dave@other.example")
        .unwrap()
        .is_empty());

    let mut cfg = h.engine.config().clone();
    cfg.registrar.domains.push("other.example".into());
    cfg.registrar.min_expires = 1800;
    cfg.identity.listeners.clear(); // ignored: listeners need a restart
    h.engine.reconfigure(cfg);
    assert!(!h.engine.config().identity.listeners.is_empty());

    h.send(&other("dave", 101, "Expires: 600\r\n"), ALICE1);
    let r = h.response_to(ALICE1);
    assert_eq!(r.status(), Some(423));
    assert_eq!(header(&r, "Min-Expires").as_deref(), Some("1800"));
    h.send(&other("dave", 102, "Expires: 1800\r\n"), ALICE1);
    assert_eq!(h.response_to(ALICE1).status(), Some(200));
    assert_eq!(h.store.bindings("sip:dave@other.example").unwrap().len(), 1);

    // The request from before the reload completes.
    h.send_msg(reply(&fwd, 200, "OK", "m1", &[]), "192.0.2.40:5060");
    assert_eq!(h.response_to(CALLER).status(), Some(200));
}
