//! The policy loader (`policy::load`) on arbitrary text.
//!
//! Checks: nothing panics; every error names a field and a line of the text; `from_toml`
//! succeeds only when `config_from_toml` does, and with a zone list only if it also does
//! without one; a policy that loads evaluates a fixed INVITE and a fixed OPTIONS from each
//! zone with a decided trace; `without_policy` gives TOML that itself has no `[policy]` to
//! remove (applying it twice changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::load::{config_from_toml, from_toml, without_policy, LoadError};
use policy::{FixedCounts, Outcome, Request, Target};
use sip_message::Message;

const INVITE: &[u8] = b"INVITE sip:md@corp.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\n\
From: <sip:sales@cold-callers.example>;tag=1928301774\r\nTo: <sip:md@corp.example>\r\n\
Call-ID: a84b4c76e66710@203.0.113.9\r\nCSeq: 314159 INVITE\r\n\
Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n";
const OPTIONS: &[u8] = b"OPTIONS sip:1900555@corp.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.10.7:5060;branch=z9hG4bK77\r\nMax-Forwards: 70\r\n\
From: <sip:bob@corp.example>;tag=1\r\nTo: <sip:1900555@corp.example>\r\n\
Call-ID: o1@192.168.10.7\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn check_errors(text: &str, errors: &[LoadError]) {
    assert!(!errors.is_empty(), "an error list is never empty");
    let lines = text.lines().count().max(1);
    for e in errors {
        assert!(!e.field.is_empty() && !e.problem.is_empty(), "{e}");
        assert!(
            e.line >= 1 && e.line <= lines + 1,
            "{e}: line beyond the text"
        );
        assert_eq!(e.file, "fuzz.toml");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = config_from_toml(text, "fuzz.toml");
    if let Err(e) = &config {
        check_errors(text, e);
    }
    let zoned = from_toml(text, "fuzz.toml", Some(&["lan", "wan"]));
    let free = from_toml(text, "fuzz.toml", None);
    for r in [&zoned, &free] {
        if let Err(e) = r {
            check_errors(text, e);
        }
    }
    if zoned.is_ok() || free.is_ok() {
        assert!(
            config.is_ok(),
            "a policy compiled from a config that does not load"
        );
    }
    if zoned.is_ok() {
        assert!(free.is_ok(), "loads with a zone list but not without");
    }
    if let Ok(p) = &zoned {
        for raw in [INVITE, OPTIONS] {
            let msg = Message::parse(raw).expect("fixed message parses");
            for zone in ["wan", "lan"] {
                for target in [Target::Local, Target::Onward] {
                    let req = Request {
                        zone,
                        source: [203, 0, 113, 9].into(),
                        message: &msg,
                        authenticated_user: None,
                        target,
                    };
                    let d = p.evaluate(&req, &FixedCounts::default());
                    let last = d.trace.steps.last().expect("a trace is never empty");
                    assert_eq!(last.outcome, Outcome::Decided);
                }
            }
        }
    }
    if let Some(rest) = without_policy(text) {
        let again = without_policy(&rest).expect("without_policy output is TOML");
        assert_eq!(again, rest, "without_policy is not idempotent");
    }
});
