//! Property tests: evaluation, the brute-force table and the flood table never panic and keep
//! their invariants on arbitrary input.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use policy::{
    load::from_toml, BruteForce, FixedCounts, FloodGuard, FloodVerdict, Outcome, Pattern, Policy,
    Request, Target, ZoneId,
};
use proptest::prelude::*;
use sip_message::Message;

const STRICT: &str = r#"
[policy]
trusted = ["10.0.0.0/8"]
[[policy.zone]]
name = "wan"
methods.allow = ["INVITE", "ACK", "BYE", "CANCEL", "MESSAGE"]
methods.local_only = ["OPTIONS"]
methods.refuse = ["PUBLISH"]
auth.require = [{ methods = ["INVITE", "MESSAGE"] }]
content_types.allow = ["application/sdp"]
limits.max_calls = 3
limits.max_calls_per_user = 1
limits.max_media_streams = 1
flood.rate = 5
flood.burst = 3
[[policy.rule]]
from = "*@evil*"
action = "refuse"
[[policy.rule]]
to_regex = '^\d+@'
action = "drop"
[[policy.rule]]
request_uri = "?*@*.example"
action = "allow"
[[policy.user]]
user = "alice"
whitelist.enabled = true
whitelist.callers = ["bob@*"]
max_calls = 2
"#;

fn policies() -> Vec<Policy> {
    vec![
        Policy::permissive(),
        from_toml(STRICT, "strict.toml", None).unwrap(),
    ]
}

fn check_all(policies: &[Policy], msg: &Message, user: Option<&str>, zone_calls: u32) {
    for p in policies {
        for zone in ["wan", "lan"] {
            for target in [Target::Local, Target::Onward] {
                let req = Request {
                    zone,
                    source: IpAddr::from([192, 0, 2, 7]),
                    message: msg,
                    authenticated_user: user,
                    target,
                };
                let counts = FixedCounts {
                    zone: zone_calls,
                    users: vec![("alice".into(), zone_calls)],
                };
                let d = p.evaluate(&req, &counts);
                let last = d.trace.steps.last().expect("a trace is never empty");
                assert_eq!(last.outcome, Outcome::Decided, "{}", d.trace);
                assert!(d.trace.decided_by().is_some());
                if let policy::Verdict::Refuse { status, reason, .. } = &d.verdict {
                    assert!((400..=699).contains(status));
                    assert!(!reason.chars().any(char::is_control));
                }
            }
        }
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

fn user_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9+.]{1,10}",
        "\\+?[0-9]{1,12}",
        "%[0-9A-F]{2}[a-z]{0,4}"
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
        "(25[0-5]|1?[0-9]{1,2})(\\.(25[0-5]|1?[0-9]{1,2})){3}",
        Just("[2001:db8::1]".to_owned()),
        Just("EVIL.example".to_owned()),
    ]
}

fn uri() -> impl Strategy<Value = String> {
    prop_oneof![
        (user_part(), host(), proptest::option::of(1u16..)).prop_map(|(u, h, p)| match p {
            Some(p) => format!("sip:{u}@{h}:{p};transport=udp"),
            None => format!("sip:{u}@{h}"),
        }),
        host().prop_map(|h| format!("sips:{h}")),
        "\\+?[0-9-]{1,12}".prop_map(|n| format!("tel:{n}")),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("INVITE".to_owned()),
        Just("ACK".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("MESSAGE".to_owned()),
        Just("PUBLISH".to_owned()),
        Just("REGISTER".to_owned()),
        "[A-Z]{1,10}",
    ]
}

fn body() -> impl Strategy<Value = (Option<String>, String)> {
    let ct = proptest::option::of(prop_oneof![
        Just("application/sdp".to_owned()),
        Just("multipart/mixed;boundary=x".to_owned()),
        "[a-z]{1,6}/[a-z*]{1,6}",
        "[ -~]{0,20}",
    ]);
    let text = prop_oneof![
        Just(String::new()),
        "(m=audio [0-9]{1,5} RTP/AVP 0\r\n){0,5}",
        "[ -~\r\n]{0,60}",
    ];
    (ct, text)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(msg) = Message::parse(bytes::Bytes::from(data)) {
            check_all(&policies(), &msg, None, 0);
        }
    }

    #[test]
    fn structured_requests(
        method in method(),
        ruri in uri(),
        from in uri(),
        to in uri(),
        to_tag in any::<bool>(),
        display in proptest::option::of("[a-zA-Z ]{0,10}"),
        extra in proptest::option::of((token(), "[ -~]{0,30}")),
        (ct, body) in body(),
        user in proptest::option::of(prop_oneof![Just("alice".to_owned()), token()]),
        calls in 0u32..5,
    ) {
        let mut s = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: {}<{from}>;tag=a\r\nTo: <{to}>{}\r\nCall-ID: x\r\nCSeq: 1 {method}\r\n",
            display.map(|d| format!("\"{d}\" ")).unwrap_or_default(),
            if to_tag { ";tag=b" } else { "" },
        );
        if let Some((name, value)) = extra {
            s.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(ct) = ct {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        // Nearly all of these parse (measured: 509 of 512); the rest have URIs the
        // generator makes invalid on purpose.
        if let Ok(msg) = Message::parse(bytes::Bytes::from(s)) {
            check_all(&policies(), &msg, user.as_deref(), calls);
        }
    }

    /// A glob means what the equivalent anchored, case-insensitive regex means (ASCII).
    #[test]
    fn glob_agrees_with_regex(pat in "[ab*?@.]{1,8}", subject in "[abAB@.]{0,10}") {
        let glob = Pattern::glob(&pat).unwrap();
        let mut re = String::from("(?i-u)^");
        for c in pat.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = regex::bytes::Regex::new(&re).unwrap();
        prop_assert_eq!(glob.matches(&subject), regex.is_match(subject.as_bytes()), "{} ~ {}", pat, subject);
    }

    #[test]
    fn bruteforce_stays_bounded(ops in proptest::collection::vec((0u8..40, 0u8..6, 0u64..400, any::<bool>()), 1..300)) {
        let cfg = policy::BruteForceConfig {
            max_failures: 3,
            window_s: 30,
            ban_s: 10,
            max_ban_s: 100,
            user_max_failures: 4,
            forget_s: 200,
            capacity: 16,
            max_bans: 16,
        };
        let mut bf = BruteForce::with_config(cfg, vec!["10.0.0.0/30".parse().unwrap()]);
        let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut now = base;
        for (ip, user, dt, success) in ops {
            now += Duration::from_secs(dt % 20);
            // Sometimes the clock steps back.
            let at = if dt > 390 { now - Duration::from_secs(100) } else { now };
            let addr = IpAddr::from([10, 0, 0, ip]);
            let user = format!("u{user}");
            if success {
                bf.record_success(addr, Some(&user));
            } else {
                let f = bf.record_failure(addr, Some(&user), at);
                if let Some(b) = f.source_ban {
                    prop_assert!(ip >= 4, "trusted address banned");
                    prop_assert!(b.until > at);
                    prop_assert!(b.until <= at + Duration::from_secs(100));
                }
            }
            prop_assert!(bf.counted() <= 16);
            prop_assert!(bf.held_bans() <= 16);
            if ip % 7 == 0 {
                bf.purge(now);
            }
        }
        let _ = bf.bans(SystemTime::now());
    }

    #[test]
    fn flood_never_panics(ops in proptest::collection::vec((any::<u32>(), 0u16..4, 0u64..2_000_000_000), 1..500)) {
        let p = from_toml(STRICT, "strict.toml", None).unwrap();
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["wan", "lan"], 64, 9, t0);
        let mut limited = 0;
        for (ip, zone, dt) in &ops {
            // Few distinct sources, so that buckets are hit and drained, not only created.
            let src = IpAddr::from((ip % 8).to_be_bytes());
            if g.check(ZoneId(*zone), src, t0 + Duration::from_nanos(*dt)) == FloodVerdict::Limited {
                limited += 1;
                // Only wan (zone 0) has a budget.
                prop_assert_eq!(*zone, 0);
            }
        }
        // 8 sources with a burst of 3 and a rate of 5/s cannot pass more than 8 * 3 + 5 * 2 * 8
        // packets of wan within the 2 s the times span.
        let wan = ops.iter().filter(|(_, z, _)| *z == 0).count();
        prop_assert!(wan - limited <= 8 * 3 + 5 * 2 * 8, "{} of {} passed", wan - limited, wan);
    }
}
