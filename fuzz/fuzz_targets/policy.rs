//! `policy::Policy::evaluate` with the example edge policy (`crates/policy/examples/edge.toml`)
//! on arbitrary SIP messages (what `sip_message` does not parse is skipped).
//!
//! Input: byte 0 = bits 0-1 zone (wan, lan, an unknown one), bit 2 onward target, bits 3-4
//! source (an Internet host, the trusted ITSP, a LAN phone, IPv6), bits 5-6 authenticated user
//! (none, alice, the managing director), bit 7 zone at its call limit; then the message.
//!
//! Checks: the trace is never empty and its last step, and only that one, decides; a refusal
//! has a 4xx-6xx status and a reason phrase without control characters; a response is always
//! allowed; an authenticated request is never challenged; the same request gets the same
//! decision twice.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use policy::{load::from_toml, FixedCounts, Outcome, Policy, Request, Target, Verdict};
use sip_message::Message;

const EDGE: &str = include_str!("../../crates/policy/examples/edge.toml");

fn edge() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| from_toml(EDGE, "edge.toml", Some(&["lan", "wan"])).expect("edge.toml loads"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, raw)) = data.split_first() else {
        return;
    };
    let Ok(msg) = Message::parse(bytes::Bytes::copy_from_slice(raw)) else {
        return;
    };
    let zone = ["wan", "lan", "dmz", "wan"][usize::from(sel & 3)];
    let target = if sel & 4 != 0 {
        Target::Onward
    } else {
        Target::Local
    };
    let source: IpAddr = match (sel >> 3) & 3 {
        0 => IpAddr::from([203, 0, 113, 9]),
        1 => IpAddr::from([198, 51, 100, 21]),
        2 => IpAddr::from([192, 168, 10, 7]),
        _ => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9]),
    };
    let user = [None, Some("alice"), Some("md@corp.example"), None][usize::from((sel >> 5) & 3)];
    let counts = FixedCounts {
        zone: if sel & 0x80 != 0 { 60 } else { 0 },
        users: vec![("md@corp.example".into(), 1), ("alice".into(), 2)],
    };
    let req = Request {
        zone,
        source,
        message: &msg,
        authenticated_user: user,
        target,
    };
    let d = edge().evaluate(&req, &counts);
    let (last, earlier) = d.trace.steps.split_last().expect("a trace is never empty");
    assert_eq!(last.outcome, Outcome::Decided, "{}", d.trace);
    assert!(
        earlier.iter().all(|s| s.outcome != Outcome::Decided),
        "a step before the last decided: {}",
        d.trace
    );
    match &d.verdict {
        Verdict::Refuse { status, reason, .. } => {
            assert!((400..=699).contains(status), "status {status}");
            assert!(!reason.is_empty() && !reason.chars().any(char::is_control));
        }
        Verdict::Challenge => assert!(user.is_none(), "an authenticated request was challenged"),
        _ => {}
    }
    if msg.is_response() {
        assert_eq!(d.verdict, Verdict::Allow, "a response was not allowed");
    }
    assert_eq!(
        edge().evaluate(&req, &counts),
        d,
        "evaluate is not deterministic"
    );
});
