//! The stateful proxy (RFC 3261 16) driven through the engine with simulated time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use call_engine::{ContactRouting, Event, ForkMode, StaticResolver, UserDirectory};
use common::*;
use sip_message::{HeaderName, Message};

const AOR: &str = "sip:alice@example.com";

/// alice registered from two (or three) devices.
fn registered(n: usize) -> H {
    let mut h = H::new();
    register_devices(&mut h, n, &["", "", ""]);
    h
}

fn register_devices(h: &mut H, n: usize, params: &[&str]) {
    for (i, dev) in [ALICE1, ALICE2, ALICE3].iter().take(n).enumerate() {
        let ip = dev.split(':').next().unwrap();
        let c = format!("<sip:alice@{ip}:5060>{}", params[i]);
        h.register("alice", dev, &[&c], &format!("reg-{i}"), 1, "");
        assert_eq!(h.response_to(dev).status(), Some(200));
    }
}

fn invite_alice(h: &mut H, call_id: &str) {
    h.send(
        &invite_text(AOR, CALLER, call_id, "z9hG4bKcaller1", ""),
        CALLER,
    );
}

fn statuses_to(h: &mut H, to: &str) -> Vec<u16> {
    h.take_to(to).iter().filter_map(Message::status).collect()
}

#[test]
fn invite_forks_to_both_contacts_one_answers_the_other_is_cancelled() {
    let mut h = registered(2);
    invite_alice(&mut h, "call-1");
    // 100 Trying at once to the caller.
    let trying = h.take_to(CALLER);
    assert_eq!(
        trying
            .iter()
            .filter_map(Message::status)
            .collect::<Vec<_>>(),
        [100]
    );

    let inv1 = h.request_to(ALICE1, "INVITE");
    let inv2 = h.request_to(ALICE2, "INVITE");
    for (inv, ip) in [(&inv1, "192.0.2.10"), (&inv2, "192.0.2.11")] {
        assert_eq!(
            inv.request_uri_str(),
            Some(format!("sip:alice@{ip}:5060").as_str())
        );
        let vias: Vec<_> = inv.vias().map(|v| v.unwrap()).collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].host_str, "198.51.100.1");
        assert!(vias[0].has_magic_cookie());
        assert_eq!(vias[1].branch, Some("z9hG4bKcaller1"));
        assert_eq!(header(inv, "Max-Forwards").as_deref(), Some("69"));
        assert_eq!(
            headers(inv, HeaderName::RecordRoute),
            ["<sip:198.51.100.1:5060;lr>"]
        );
    }
    // Different branches per fork.
    assert_ne!(
        inv1.top_via().unwrap().unwrap().branch,
        inv2.top_via().unwrap().unwrap().branch
    );

    // Device 1 rings: the 180 goes upstream without our Via.
    h.send_msg(reply(&inv1, 180, "Ringing", "d1", &[]), ALICE1);
    let ringing = h.response_to(CALLER);
    assert_eq!(ringing.status(), Some(180));
    assert_eq!(ringing.vias().count(), 1);
    assert_eq!(
        ringing.top_via().unwrap().unwrap().branch,
        Some("z9hG4bKcaller1")
    );

    // Device 2 answers: the 200 goes upstream, device 1 gets a CANCEL.
    h.send_msg(
        reply(
            &inv2,
            200,
            "OK",
            "d2",
            &[("Contact", "<sip:alice@192.0.2.11:5060>")],
        ),
        ALICE2,
    );
    let ok = h.response_to(CALLER);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.to().unwrap().unwrap().tag(), Some("d2"));
    let cancel = h.request_to(ALICE1, "CANCEL");
    assert_eq!(
        cancel.top_via().unwrap().unwrap().branch,
        inv1.top_via().unwrap().unwrap().branch
    );
    assert!(h
        .take_to(ALICE2)
        .iter()
        .all(|m| m.method_str() != Some("CANCEL")));

    // Device 1: 200 to the CANCEL, 487 to the INVITE; the 487 is ACKed and not forwarded.
    h.send_msg(reply(&cancel, 200, "OK", "d1", &[]), ALICE1);
    h.send_msg(reply(&inv1, 487, "Request Terminated", "d1", &[]), ALICE1);
    let ack = h.request_to(ALICE1, "ACK");
    assert_eq!(ack.cseq().unwrap().unwrap().seq, 1);
    assert!(statuses_to(&mut h, CALLER).is_empty());
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::ProxyFinal { status: 200, .. })),
        1
    );

    // The caller's ACK for the 2xx follows the Record-Route: Route = us, R-URI = contact.
    let ack = "ACK sip:alice@192.0.2.11:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKack1\r\n\
Route: <sip:198.51.100.1:5060;lr>\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@example.com>;tag=d2\r\n\
From: <sip:carol@elsewhere.test>;tag=c1\r\n\
Call-ID: call-1\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n";
    h.send(ack, CALLER);
    let fwd = h.request_to(ALICE2, "ACK");
    assert_eq!(fwd.count(HeaderName::Route), 0);
    assert_eq!(fwd.vias().count(), 2);
    assert_eq!(header(&fwd, "Max-Forwards").as_deref(), Some("69"));

    // Everything winds down: no context left once the transactions are gone.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.engine.context_count(), 0);
}

#[test]
fn busy_beats_not_found() {
    let mut h = registered(2);
    invite_alice(&mut h, "call-2");
    let inv1 = h.request_to(ALICE1, "INVITE");
    let inv2 = h.request_to(ALICE2, "INVITE");
    h.take();
    h.send_msg(reply(&inv1, 404, "Not Found", "d1", &[]), ALICE1);
    // Nothing upstream while a branch is pending.
    assert!(statuses_to(&mut h, CALLER).is_empty());
    h.send_msg(reply(&inv2, 486, "Busy Here", "d2", &[]), ALICE2);
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(486));
    assert_eq!(r.vias().count(), 1);
}

#[test]
fn six_hundred_cancels_the_others_and_wins() {
    let mut h = registered(3);
    invite_alice(&mut h, "call-3");
    let inv: Vec<Message> = [ALICE1, ALICE2, ALICE3]
        .iter()
        .map(|d| h.request_to(d, "INVITE"))
        .collect();
    h.send_msg(reply(&inv[0], 180, "Ringing", "d1", &[]), ALICE1);
    h.send_msg(reply(&inv[1], 180, "Ringing", "d2", &[]), ALICE2);
    h.take();
    h.send_msg(reply(&inv[2], 603, "Decline", "d3", &[]), ALICE3);
    // Not forwarded yet; the two ringing branches get CANCEL.
    assert!(statuses_to(&mut h, CALLER).is_empty());
    let c1 = h.request_to(ALICE1, "CANCEL");
    let c2 = h.request_to(ALICE2, "CANCEL");
    h.send_msg(reply(&c1, 200, "OK", "d1", &[]), ALICE1);
    h.send_msg(reply(&c2, 200, "OK", "d2", &[]), ALICE2);
    h.send_msg(reply(&inv[0], 487, "Request Terminated", "d1", &[]), ALICE1);
    assert!(statuses_to(&mut h, CALLER).is_empty());
    h.send_msg(reply(&inv[1], 487, "Request Terminated", "d2", &[]), ALICE2);
    assert_eq!(h.response_to(CALLER).status(), Some(603));
}

#[test]
fn challenges_are_aggregated() {
    let mut h = registered(2);
    invite_alice(&mut h, "call-auth");
    let inv1 = h.request_to(ALICE1, "INVITE");
    let inv2 = h.request_to(ALICE2, "INVITE");
    h.take();
    h.send_msg(
        reply(
            &inv1,
            407,
            "Proxy Authentication Required",
            "d1",
            &[("Proxy-Authenticate", "Digest realm=\"a\", nonce=\"1\"")],
        ),
        ALICE1,
    );
    h.send_msg(
        reply(
            &inv2,
            401,
            "Unauthorized",
            "d2",
            &[("WWW-Authenticate", "Digest realm=\"b\", nonce=\"2\"")],
        ),
        ALICE2,
    );
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(407));
    assert_eq!(
        headers(&r, HeaderName::ProxyAuthenticate),
        ["Digest realm=\"a\", nonce=\"1\""]
    );
    assert_eq!(
        headers(&r, HeaderName::WwwAuthenticate),
        ["Digest realm=\"b\", nonce=\"2\""]
    );
}

#[test]
fn max_forwards_zero_is_483_but_options_is_answered() {
    let mut h = registered(1);
    let text = invite_text(AOR, CALLER, "call-4", "z9hG4bKmf0", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.send(&text, CALLER);
    assert_eq!(h.response_to(CALLER).status(), Some(483));
    assert!(h.take_to(ALICE1).is_empty());

    let text = request_text("OPTIONS", AOR, CALLER, "call-5", "z9hG4bKmf1", 1, "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.send(&text, CALLER);
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(200));
    assert!(header(&r, "Allow").unwrap().contains("INVITE"));
    assert!(h.take_to(ALICE1).is_empty());
}

#[test]
fn options_to_us_is_answered_locally() {
    let mut h = H::new();
    let text = request_text(
        "OPTIONS",
        "sip:198.51.100.1",
        CALLER,
        "o1",
        "z9hG4bKo1",
        1,
        "",
    );
    h.send(&text, CALLER);
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(200));
    assert!(header(&r, "Allow").is_some());
    assert_eq!(header(&r, "Accept").as_deref(), Some("application/sdp"));
    assert_eq!(header(&r, "Supported").as_deref(), Some("path"));
    // Another method to us is not something we do.
    let text = request_text(
        "MESSAGE",
        "sip:example.com",
        CALLER,
        "o2",
        "z9hG4bKo2",
        1,
        "",
    );
    h.send(&text, CALLER);
    assert_eq!(h.response_to(CALLER).status(), Some(405));
}

#[test]
fn a_loop_is_482_and_a_spiral_passes() {
    let mut h = H::new();
    let far = "192.0.2.50:5060";
    h.send(
        &invite_text("sip:bob@192.0.2.50", CALLER, "call-6", "z9hG4bKl1", ""),
        CALLER,
    );
    let fwd = h.request_to(far, "INVITE");
    h.take();
    // A downstream proxy (adding its own Via) sends it back unchanged otherwise: a loop.
    let via = |m: &Message, b: &str, ruri: Option<&str>| {
        let mut ed = sip_message::Editor::new(m);
        ed.push_via(&format!("SIP/2.0/UDP 192.0.2.50:5060;branch={b}"))
            .unwrap();
        if let Some(u) = ruri {
            ed.set_request_uri(u).unwrap();
        }
        Message::parse(ed.finish()).unwrap()
    };
    h.send_msg(via(&fwd, "z9hG4bKdown1", None), far);
    let r = h.response_to(far);
    assert_eq!(r.status(), Some(482));
    assert_eq!(h.engine.stats().loops_detected, 1);

    // Back with another Request-URI: a spiral, forwarded again.
    h.send_msg(via(&fwd, "z9hG4bKdown2", Some("sip:bob@192.0.2.51")), far);
    let again = h.request_to("192.0.2.51:5060", "INVITE");
    assert_eq!(again.vias().count(), 4);
    assert_eq!(header(&again, "Max-Forwards").as_deref(), Some("68"));
}

#[test]
fn unknown_proxy_require_is_420() {
    let mut h = registered(1);
    let text = invite_text(
        AOR,
        CALLER,
        "call-7",
        "z9hG4bKpr",
        "Proxy-Require: foo, bar\r\n",
    );
    h.send(&text, CALLER);
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(420));
    assert_eq!(header(&r, "Unsupported").as_deref(), Some("foo, bar"));
}

#[test]
fn unknown_scheme_is_416_and_bad_syntax_is_400() {
    let mut h = H::new();
    let text = invite_text("sip:x@example.com", CALLER, "call-8", "z9hG4bKs1", "").replacen(
        "INVITE sip:x@example.com",
        "INVITE mailto:x@example.com",
        1,
    );
    h.send(&text, CALLER);
    assert_eq!(h.response_to(CALLER).status(), Some(416));

    let text = invite_text("sip:x@example.com", CALLER, "call-9", "z9hG4bKs2", "").replacen(
        "CSeq: 1 INVITE",
        "CSeq: 1 OPTIONS",
        1,
    );
    h.send(&text, CALLER);
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(400));
    assert!(String::from_utf8_lossy(r.reason_phrase().unwrap()).contains("CSeq"));
}

#[test]
fn upstream_cancel_cancels_the_branches_and_487_flows_back() {
    let mut h = registered(2);
    invite_alice(&mut h, "call-10");
    let inv1 = h.request_to(ALICE1, "INVITE");
    let inv2 = h.request_to(ALICE2, "INVITE");
    h.send_msg(reply(&inv1, 180, "Ringing", "d1", &[]), ALICE1);
    h.send_msg(reply(&inv2, 100, "Trying", "", &[]), ALICE2);
    h.take();
    let cancel = "CANCEL sip:alice@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKcaller1\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@example.com>\r\n\
From: <sip:carol@elsewhere.test>;tag=c1\r\n\
Call-ID: call-10\r\n\
CSeq: 1 CANCEL\r\n\
Content-Length: 0\r\n\r\n";
    h.send(cancel, CALLER);
    let r = h.response_to(CALLER);
    assert_eq!(
        (r.status(), r.cseq().unwrap().unwrap().method_str),
        (Some(200), "CANCEL")
    );
    let c1 = h.request_to(ALICE1, "CANCEL");
    let c2 = h.request_to(ALICE2, "CANCEL");
    h.send_msg(reply(&c1, 200, "OK", "d1", &[]), ALICE1);
    h.send_msg(reply(&c2, 200, "OK", "d2", &[]), ALICE2);
    h.send_msg(reply(&inv1, 487, "Request Terminated", "d1", &[]), ALICE1);
    h.send_msg(reply(&inv2, 487, "Request Terminated", "d2", &[]), ALICE2);
    let r = h.response_to(CALLER);
    assert_eq!(
        (r.status(), r.cseq().unwrap().unwrap().method_str),
        (Some(487), "INVITE")
    );
    assert_eq!(h.engine.stats().upstream_cancels, 1);

    // A CANCEL that matches nothing: 481.
    h.send(&cancel.replace("z9hG4bKcaller1", "z9hG4bKnothing"), CALLER);
    assert_eq!(h.response_to(CALLER).status(), Some(481));
}

#[test]
fn timer_c_cancels_a_ringing_branch_and_counts_it_as_408() {
    let mut h = registered(1);
    invite_alice(&mut h, "call-11");
    let inv = h.request_to(ALICE1, "INVITE");
    h.send_msg(reply(&inv, 180, "Ringing", "d1", &[]), ALICE1);
    assert_eq!(h.response_to(CALLER).status(), Some(180));
    h.advance(Duration::from_secs(179));
    assert!(h.take_to(ALICE1).is_empty());
    h.advance(Duration::from_secs(2));
    let cancel = h.request_to(ALICE1, "CANCEL");
    assert_eq!(h.engine.stats().timer_c_fired, 1);
    h.send_msg(reply(&cancel, 200, "OK", "d1", &[]), ALICE1);
    h.send_msg(reply(&inv, 487, "Request Terminated", "d1", &[]), ALICE1);
    assert_eq!(h.response_to(CALLER).status(), Some(408));
}

#[test]
fn timer_c_is_reset_by_provisional_responses() {
    let mut h = registered(1);
    invite_alice(&mut h, "call-12");
    let inv = h.request_to(ALICE1, "INVITE");
    h.send_msg(reply(&inv, 180, "Ringing", "d1", &[]), ALICE1);
    h.advance(Duration::from_secs(100));
    h.send_msg(reply(&inv, 183, "Session Progress", "d1", &[]), ALICE1);
    h.advance(Duration::from_secs(100));
    assert!(
        h.take_to(ALICE1).is_empty(),
        "no CANCEL 200 s after the first 180"
    );
    h.advance(Duration::from_secs(81));
    h.request_to(ALICE1, "CANCEL");
}

#[test]
fn nobody_answers_gives_408() {
    let mut h = H::new();
    h.send(
        &invite_text("sip:bob@192.0.2.60", CALLER, "call-13", "z9hG4bKn1", ""),
        CALLER,
    );
    let sent = h.take_to("192.0.2.60:5060");
    assert_eq!(sent.len(), 1);
    h.advance(Duration::from_secs(33));
    // Timer A retransmitted the INVITE, Timer B gave up.
    assert!(h.take_to("192.0.2.60:5060").len() >= 5);
    let st: Vec<u16> = statuses_to(&mut h, CALLER)
        .into_iter()
        .filter(|s| *s != 100)
        .collect();
    assert!(!st.is_empty() && st.iter().all(|s| *s == 408), "{st:?}");
}

#[test]
fn unregistered_user_is_480_when_known_and_404_when_not() {
    struct Dir;
    impl UserDirectory for Dir {
        fn is_known(&self, aor: &str) -> bool {
            aor == "sip:bob@example.com"
        }
    }
    let mut h = H::with(config(), |e| e.with_directory(Arc::new(Dir)));
    h.send(
        &invite_text("sip:bob@example.com", CALLER, "c1", "z9hG4bKu1", ""),
        CALLER,
    );
    assert_eq!(h.response_to(CALLER).status(), Some(480));
    h.send(
        &invite_text("sip:nobody@example.com", CALLER, "c2", "z9hG4bKu2", ""),
        CALLER,
    );
    assert_eq!(h.response_to(CALLER).status(), Some(404));
}

#[test]
fn strict_router_fix_up() {
    let mut h = H::new();
    // A strict router upstream put our Record-Route URI in the Request-URI and the remote
    // target last in Route.
    let text = request_text(
        "BYE",
        "sip:198.51.100.1:5060;lr",
        CALLER,
        "dlg-1",
        "z9hG4bKsr1",
        2,
        "Route: <sip:bob@192.0.2.30:5060>\r\n",
    )
    .replace(
        "To: <sip:198.51.100.1:5060;lr>",
        "To: <sip:bob@example.com>;tag=b1",
    );
    h.send(&text, CALLER);
    let bye = h.request_to("192.0.2.30:5060", "BYE");
    assert_eq!(bye.request_uri_str(), Some("sip:bob@192.0.2.30:5060"));
    assert_eq!(bye.count(HeaderName::Route), 0);
    // In-dialog: no Record-Route.
    assert_eq!(bye.count(HeaderName::RecordRoute), 0);
}

#[test]
fn loose_route_to_us_is_removed_and_next_route_followed() {
    let mut h = H::new();
    let text = request_text(
        "BYE",
        "sip:bob@192.0.2.31",
        CALLER,
        "dlg-2",
        "z9hG4bKlr1",
        2,
        "Route: <sip:198.51.100.1;lr>, <sip:192.0.2.40;lr>\r\n",
    )
    .replace(
        "To: <sip:bob@192.0.2.31>",
        "To: <sip:bob@example.com>;tag=b1",
    );
    h.send(&text, CALLER);
    let bye = h.request_to("192.0.2.40:5060", "BYE");
    assert_eq!(bye.request_uri_str(), Some("sip:bob@192.0.2.31"));
    assert_eq!(headers(&bye, HeaderName::Route), ["<sip:192.0.2.40;lr>"]);
    // The answer comes back through us.
    h.send_msg(reply(&bye, 200, "OK", "b1", &[]), "192.0.2.40:5060");
    assert_eq!(h.response_to(CALLER).status(), Some(200));
}

/// Where an INVITE for `user` goes when `contact_routing` is `mode`, after `user` registered
/// from `from` (whose Via names `via`) the Contact `contact`.
fn invite_goes_to(mode: ContactRouting, via: &str, from: &str, contact: &str) -> String {
    let mut cfg = config();
    cfg.registrar.contact_routing = mode;
    let mut h = H::with(cfg, |e| e);
    let text = register_text("erin", via, &[contact], "tp1", 1, "", 1);
    h.send(&text, from);
    assert_eq!(h.response_to(from).status(), Some(200));
    h.send(
        &invite_text("sip:erin@example.com", CALLER, "call-tp", "z9hG4bKtp", ""),
        CALLER,
    );
    let sent = h.take();
    let invites: Vec<_> = sent
        .iter()
        .filter(|(_, m)| m.method_str() == Some("INVITE"))
        .collect();
    assert_eq!(invites.len(), 1, "{:?}", sent);
    invites[0].0.remote.to_string()
}

#[test]
fn contact_routing_modes_and_nat_detection() {
    use ContactRouting::*;
    // Third-party registration (RFC 3261 10.2): 192.0.2.9 registers a phone at 192.0.2.30.
    let third = (
        "192.0.2.9:5090",
        "192.0.2.9:5090",
        "<sip:erin@192.0.2.30:5070>",
    );
    // Behind NAT: private Via and Contact, a public source.
    let natted = (
        "10.0.0.2:5060",
        "203.0.113.5:40000",
        "<sip:erin@10.0.0.2:5060>",
    );
    for (mode, case, want) in [
        (Auto, third, "192.0.2.30:5070"),
        (Contact, third, "192.0.2.30:5070"),
        (Source, third, "192.0.2.9:5090"),
        (Auto, natted, "203.0.113.5:40000"),
        (Contact, natted, "10.0.0.2:5060"),
        (Source, natted, "203.0.113.5:40000"),
    ] {
        let (via, from, contact) = case;
        assert_eq!(
            invite_goes_to(mode, via, from, contact),
            want,
            "{mode:?} {case:?}"
        );
    }
}

#[test]
fn path_and_nat_decide_where_a_contact_is_reached() {
    let r = StaticResolver::new().with("edge.example.net", addr("192.0.2.70:5060"));
    let mut h = H::with(config(), |e| e.with_resolver(Arc::new(r)));
    // Behind NAT: a private Contact, the REGISTER from a public address.
    h.register(
        "alice",
        "203.0.113.5:40000",
        &["<sip:alice@10.0.0.5:5060>"],
        "n1",
        1,
        "",
    );
    assert_eq!(h.response_to("203.0.113.5:40000").status(), Some(200));
    // Through an edge proxy that added Path.
    h.register(
        "bob",
        "192.0.2.70:5060",
        &["<sip:bob@10.0.0.6:5060>"],
        "p1",
        1,
        "Path: <sip:edge.example.net;lr>\r\nSupported: path\r\n",
    );
    assert_eq!(h.response_to("192.0.2.70:5060").status(), Some(200));

    h.send(
        &invite_text(AOR, CALLER, "call-nat", "z9hG4bKnat", ""),
        CALLER,
    );
    let inv = h.request_to("203.0.113.5:40000", "INVITE");
    assert_eq!(inv.request_uri_str(), Some("sip:alice@10.0.0.5:5060"));
    let flow = h.engine.transactions().stats().client_transactions;
    assert_eq!(flow, 1);

    h.send(
        &invite_text(
            "sip:bob@example.com",
            CALLER,
            "call-path",
            "z9hG4bKpath",
            "",
        ),
        CALLER,
    );
    let inv = h.request_to("192.0.2.70:5060", "INVITE");
    assert_eq!(inv.request_uri_str(), Some("sip:bob@10.0.0.6:5060"));
    assert_eq!(
        headers(&inv, HeaderName::Route),
        ["<sip:edge.example.net;lr>"]
    );
}

#[test]
fn q_groups_are_tried_in_order() {
    let mut cfg = config();
    cfg.proxy.fork_mode = ForkMode::QGroups;
    let mut h = H::with(cfg, |e| e);
    register_devices(&mut h, 3, &[";q=0.5", ";q=1.0", ";q=0.5"]);
    invite_alice(&mut h, "call-q");
    let first = h.request_to(ALICE2, "INVITE");
    assert!(h.take_to(ALICE1).is_empty() && h.take_to(ALICE3).is_empty());
    h.take();
    h.send_msg(reply(&first, 486, "Busy Here", "d2", &[]), ALICE2);
    // The next group (both q=0.5) in parallel; the 486 is kept for the end.
    let a = h.request_to(ALICE1, "INVITE");
    let c = h.request_to(ALICE3, "INVITE");
    assert!(statuses_to(&mut h, CALLER).is_empty());
    h.send_msg(reply(&a, 404, "Not Found", "d1", &[]), ALICE1);
    h.send_msg(reply(&c, 480, "Temporarily Unavailable", "d3", &[]), ALICE3);
    assert_eq!(h.response_to(CALLER).status(), Some(486));
}

#[test]
fn all_2xx_of_an_invite_go_upstream() {
    let mut h = registered(2);
    invite_alice(&mut h, "call-2x");
    let inv1 = h.request_to(ALICE1, "INVITE");
    let inv2 = h.request_to(ALICE2, "INVITE");
    h.take();
    h.send_msg(reply(&inv1, 200, "OK", "d1", &[]), ALICE1);
    // The second device answers before our CANCEL reaches it: its 2xx goes up too.
    h.send_msg(reply(&inv2, 200, "OK", "d2", &[]), ALICE2);
    let oks: Vec<_> = h
        .take_to(CALLER)
        .into_iter()
        .filter(|m| m.status() == Some(200))
        .map(|m| m.to().unwrap().unwrap().tag().map(str::to_owned))
        .collect();
    assert_eq!(oks, [Some("d1".to_owned()), Some("d2".to_owned())]);
}

#[test]
fn non_invite_is_forwarded_to_a_foreign_domain_by_resolver() {
    let r = StaticResolver::new().with("other.test", addr("192.0.2.80:5070"));
    let mut h = H::with(config(), |e| e.with_resolver(Arc::new(r)));
    h.send(
        &request_text(
            "MESSAGE",
            "sip:dave@other.test",
            CALLER,
            "m1",
            "z9hG4bKm1",
            1,
            "",
        ),
        CALLER,
    );
    let m = h.request_to("192.0.2.80:5070", "MESSAGE");
    assert_eq!(m.count(HeaderName::RecordRoute), 0);
    // No 100 for non-INVITE; the 200 comes back.
    h.send_msg(reply(&m, 200, "OK", "dv", &[]), "192.0.2.80:5070");
    assert_eq!(statuses_to(&mut h, CALLER), [200]);
    // An unresolvable host: 503 from that branch, 500 upstream (16.7 item 6).
    h.send(
        &request_text(
            "MESSAGE",
            "sip:dave@nowhere.test",
            CALLER,
            "m2",
            "z9hG4bKm2",
            1,
            "",
        ),
        CALLER,
    );
    assert_eq!(h.response_to(CALLER).status(), Some(500));
}

#[test]
fn response_via_fix_up_adds_received_and_rport() {
    let mut h = H::new();
    let text = invite_text("sip:bob@192.0.2.60", CALLER, "call-rp", "z9hG4bKrp", "").replace(
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKrp",
        "Via: SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bKrp",
    );
    h.send(&text, CALLER);
    let inv = h.request_to("192.0.2.60:5060", "INVITE");
    let vias: Vec<_> = inv.vias().map(|v| v.unwrap()).collect();
    assert_eq!(vias[1].received, Some("192.0.2.20".parse().unwrap()));
    assert_eq!(vias[1].rport, Some(Some(5060)));
    assert_eq!(vias[1].branch, Some("z9hG4bKrp"));
}

#[test]
fn timer_c_then_no_answer_to_the_cancel_is_408() {
    let mut h = registered(1);
    invite_alice(&mut h, "call-c2");
    let inv = h.request_to(ALICE1, "INVITE");
    h.send_msg(reply(&inv, 180, "Ringing", "d1", &[]), ALICE1);
    h.take();
    h.advance(Duration::from_secs(181));
    h.request_to(ALICE1, "CANCEL");
    // The device ignores the CANCEL: 64*T1 later the INVITE is given up (9.1).
    h.advance(Duration::from_secs(33));
    let st: Vec<u16> = statuses_to(&mut h, CALLER);
    assert!(st.first() == Some(&408), "{st:?}");
}

#[test]
fn a_2xx_retransmitted_after_the_transactions_is_forwarded_statelessly() {
    let mut h = registered(1);
    invite_alice(&mut h, "call-rtx");
    let inv = h.request_to(ALICE1, "INVITE");
    let ok = reply(
        &inv,
        200,
        "OK",
        "d1",
        &[("Contact", "<sip:alice@192.0.2.10:5060>")],
    );
    h.send_msg(ok.clone(), ALICE1);
    assert_eq!(h.response_to(CALLER).status(), Some(200));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.engine.context_count(), 0);
    h.take();
    // The callee's UA core retransmits its 2xx (no ACK reached it): no transaction matches
    // any more, our Via is on top, so it goes to the next Via.
    h.send_msg(ok, ALICE1);
    let r = h.response_to(CALLER);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.vias().count(), 1);
    assert_eq!(h.engine.stats().stateless_forwards, 1);
}

#[test]
fn register_with_a_route_to_us_reaches_the_registrar() {
    let mut h = H::new();
    let text = register_text(
        "alice",
        ALICE1,
        &["<sip:alice@192.0.2.10>"],
        "r1",
        1,
        "Route: <sip:sbc.example.com;lr>\r\n",
        1,
    );
    h.send(&text, ALICE1);
    assert_eq!(h.response_to(ALICE1).status(), Some(200));
    let text = request_text(
        "OPTIONS",
        "sip:sbc.example.com",
        CALLER,
        "o1",
        "z9hG4bKo9",
        1,
        "",
    );
    h.send(&text, CALLER);
    assert_eq!(h.response_to(CALLER).status(), Some(200));
}

#[test]
fn garbage_is_dropped_with_a_reason() {
    let mut h = H::new();
    h.engine.handle_bytes(
        h.now,
        bytes::Bytes::from_static(b"INVITE sip:a@b\r\n\r\n"),
        udp(CALLER),
    );
    h.drain();
    assert!(h.sent.is_empty());
    assert_eq!(
        h.events_matching(
            |e| matches!(e, Event::Dropped { reason, .. } if reason.contains("start line"))
        ),
        1
    );
}

#[test]
fn the_engine_can_move_to_another_thread() {
    fn send<T: Send>() {}
    send::<call_engine::Engine>();
}

#[test]
fn a_request_routed_through_us_twice_is_a_spiral() {
    let mut h = H::new();
    // In-dialog BYE whose route set passes us, then 192.0.2.41, then us again.
    let text = request_text(
        "BYE",
        "sip:bob@192.0.2.31",
        CALLER,
        "dlg-3",
        "z9hG4bKsp1",
        2,
        "Route: <sip:198.51.100.1;lr>, <sip:192.0.2.41;lr>, <sip:sbc.example.com;lr>, <sip:192.0.2.42;lr>\r\n",
    )
    .replace("To: <sip:bob@192.0.2.31>", "To: <sip:bob@example.com>;tag=b1");
    h.send(&text, CALLER);
    let bye = h.request_to("192.0.2.41:5060", "BYE");
    // 192.0.2.41 removes its Route value and sends it back to us.
    let mut ed = sip_message::Editor::new(&bye);
    ed.remove_first_route();
    ed.push_via("SIP/2.0/UDP 192.0.2.41:5060;branch=z9hG4bKmid")
        .unwrap();
    let back = Message::parse(ed.finish()).unwrap();
    h.send_msg(back, "192.0.2.41:5060");
    let bye2 = h.request_to("192.0.2.42:5060", "BYE");
    assert_eq!(bye2.vias().count(), 4);
    assert_eq!(h.engine.stats().loops_detected, 0);
}

/// A Request-URI whose host is one of our domains but whose port is not one we listen on
/// names another element on that host (a phone or PBX beside sipwarden): it is forwarded, not
/// looked up in our location service. Without a port, or with ours, it is ours.
#[test]
fn our_domain_with_another_port_is_forwarded() {
    let mut h = H::new();
    h.send(
        &invite_text(
            "sip:bob@192.0.2.30:5090",
            CALLER,
            "port-1",
            "z9hG4bKport1",
            "",
        ),
        CALLER,
    );
    let fwd = h.request_to("192.0.2.30:5090", "INVITE");
    assert_eq!(fwd.request_uri_str(), Some("sip:bob@192.0.2.30:5090"));

    let mut cfg = config();
    cfg.registrar.domains = vec!["192.0.2.30".into()];
    let mut h = H::with(cfg, |e| e);
    h.send(
        &invite_text(
            "sip:bob@192.0.2.30:5090",
            CALLER,
            "port-2",
            "z9hG4bKport2",
            "",
        ),
        CALLER,
    );
    let fwd = h.request_to("192.0.2.30:5090", "INVITE");
    assert_eq!(fwd.request_uri_str(), Some("sip:bob@192.0.2.30:5090"));
    h.take();
    // The same host on our port (5060) is our domain: nobody is registered there.
    h.send(
        &invite_text(
            "sip:bob@192.0.2.30:5060",
            CALLER,
            "port-3",
            "z9hG4bKport3",
            "",
        ),
        CALLER,
    );
    let r = h.response_to(CALLER);
    assert!(
        matches!(r.status(), Some(404) | Some(480)),
        "{:?}",
        r.status()
    );
}

#[test]
fn a_full_transaction_table_answers_503_with_retry_after() {
    let mut cfg = config();
    // One proxied request takes two transactions (server and client).
    cfg.transaction.max_transactions = 2;
    let mut h = H::with(cfg, |e| e);
    h.send(
        &request_text(
            "MESSAGE",
            "sip:x@192.0.2.40:5060",
            CALLER,
            "ov1",
            "z9hG4bKov1",
            1,
            "",
        ),
        CALLER,
    );
    let fwd = h.request_to("192.0.2.40:5060", "MESSAGE");
    assert_eq!(h.engine.transactions().transaction_count(), 2);
    h.send(
        &request_text(
            "MESSAGE",
            "sip:x@192.0.2.40:5060",
            "192.0.2.21:5060",
            "ov2",
            "z9hG4bKov2",
            1,
            "",
        ),
        "192.0.2.21:5060",
    );
    let r = h.response_to("192.0.2.21:5060");
    assert_eq!(r.status(), Some(503));
    assert_eq!(header(&r, "Retry-After").as_deref(), Some("5"));
    assert_eq!(h.engine.stats().overloaded, 1);
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::Overloaded { replied: true, .. })),
        1
    );
    // The first request is unaffected.
    h.send_msg(reply(&fwd, 200, "OK", "m1", &[]), "192.0.2.40:5060");
    assert_eq!(h.response_to(CALLER).status(), Some(200));
}

#[test]
fn ipv6_next_hops_get_an_ipv6_via_and_record_route() {
    let mut cfg = config();
    cfg.identity.listeners = vec![
        call_engine::Listener::new(call_engine::Transport::Udp, addr(SBC)),
        call_engine::Listener::new(call_engine::Transport::Udp, addr("[2001:db8::1]:5060")),
    ];
    let mut h = H::with(cfg, |e| e);
    let caller = "[2001:db8::10]:5062";
    h.send(
        &invite_text("sip:bob@[2001:db8::20]:5070", caller, "v6", "z9hG4bKv6", ""),
        caller,
    );
    let inv = h.request_to("[2001:db8::20]:5070", "INVITE");
    let vias: Vec<String> = headers(&inv, HeaderName::Via);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK"),
        "{vias:?}"
    );
    // The caller's Via: sent-by equals the source, so nothing added.
    assert_eq!(vias[1], "SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bKv6");
    assert_eq!(
        headers(&inv, HeaderName::RecordRoute),
        ["<sip:[2001:db8::1]:5060;lr>"]
    );
    // An IPv4 next hop of the same proxy gets the IPv4 listener.
    h.send(
        &invite_text("sip:carol@192.0.2.40:5060", CALLER, "v4", "z9hG4bKv4", ""),
        CALLER,
    );
    let inv4 = h.request_to("192.0.2.40:5060", "INVITE");
    assert!(headers(&inv4, HeaderName::Via)[0].starts_with("SIP/2.0/UDP 198.51.100.1:5060;"));
    // The answer goes back to the IPv6 caller, our Via removed.
    h.send_msg(reply(&inv, 200, "OK", "b6", &[]), "[2001:db8::20]:5070");
    let r = h.response_to(caller);
    assert_eq!(r.status(), Some(200));
    assert_eq!(headers(&r, HeaderName::Via).len(), 1);
    // A Route naming our IPv6 Record-Route is recognised as us (16.4) in the ACK/BYE.
    let bye = request_text(
        "BYE",
        "sip:bob@[2001:db8::20]:5070",
        caller,
        "v6",
        "z9hG4bKv6bye",
        2,
        "Route: <sip:[2001:db8::1]:5060;lr>\r\n",
    );
    h.send(&bye, caller);
    let fwd = h.request_to("[2001:db8::20]:5070", "BYE");
    assert!(headers(&fwd, HeaderName::Route).is_empty());
}
