//! The PROTOS c07-sip test suite (University of Oulu) through the message layer: 4527 INVITEs,
//! each but the first with one field mangled, each followed by a teardown message.
//!
//! The suite is not in this repository (its licence differs): it is read from the directory in
//! `SIPWARDEN_PROTOS_DIR`, else from `../shared/testdata/protos-c07-sip` beside the workspace.
//! When it is absent the test says so and passes.
//!
//! Each case file holds two messages, each preceded by its length in decimal and a space. The
//! messages carry placeholders (`<To>`, `<Call-ID>`, ...) that are filled here with plausible
//! values; `<Content-Length>` gets the length of the filled body. Every message goes through
//! parse, `validate()` and `decode_all_headers()`. The test asserts that nothing panics and that
//! the baseline case 0000000's INVITE is valid, and prints how many messages were accepted and
//! how many were rejected, by error kind.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use sip_message::{Message, ParseError};

/// Placeholder values. Addresses are from the documentation ranges.
const FILL: [(&str, &str); 9] = [
    ("<To>", "bob@example.com"),
    ("<From>", "alice@example.net"),
    ("<From-Address>", "client.example.net"),
    ("<From-IP>", "192.0.2.10"),
    ("<Local-Port>", "5060"),
    ("<Branch-ID>", "a1b2c3"),
    ("<Call-ID>", "f81d4fae7dec11d0"),
    ("<CSeq>", "1"),
    ("<Teardown-Method>", "CANCEL"),
];

fn suite_dir() -> PathBuf {
    match std::env::var_os("SIPWARDEN_PROTOS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/testdata/protos-c07-sip"),
    }
}

/// Writes past libtest's output capture, so that the summary is seen in a normal run.
fn say(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{text}");
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len() + 64);
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Fills the placeholders; `<Content-Length>` last, with the length of the filled body (the
/// bytes after the first empty line; 0 when there is none).
fn fill(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for (k, v) in FILL {
        m = replace_all(&m, k.as_bytes(), v.as_bytes());
    }
    let body_len = m
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| m.len() - (p + 4));
    replace_all(&m, b"<Content-Length>", body_len.to_string().as_bytes())
}

/// Splits a case file into its messages by their length prefixes.
fn split(data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("no length prefix")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "bad length prefix {:?}",
                    String::from_utf8_lossy(&rest[..sp])
                )
            })?;
        let body = rest
            .get(sp + 1..sp + 1 + len)
            .ok_or("message shorter than its length")?;
        out.push(body);
        rest = &rest[sp + 1 + len..];
    }
    Ok(out)
}

fn check(msg: Vec<u8>) -> Result<(), ParseError> {
    let m = Message::parse(msg)?;
    m.validate()?;
    m.decode_all_headers()?;
    Ok(())
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, r: &Result<(), ParseError>) {
        match r {
            Ok(()) => self.accepted += 1,
            Err(e) => *self.rejected.entry(format!("{:?}", e.kind)).or_default() += 1,
        }
    }

    fn report(&self, what: &str) -> String {
        let rejected: usize = self.rejected.values().sum();
        let mut s = format!("  {what}: {} accepted, {rejected} rejected", self.accepted);
        for (k, n) in &self.rejected {
            s.push_str(&format!("\n    {k:<24} {n}"));
        }
        s
    }
}

#[test]
fn protos_c07_sip_cases() {
    let dir = suite_dir();
    let dir = dir.canonicalize().unwrap_or(dir);
    let cases = if dir.join("cases").is_dir() {
        dir.join("cases")
    } else {
        dir.clone()
    };
    if !cases.join("0000000").is_file() {
        say(&format!(
            "PROTOS suite absent at {}: skipped",
            dir.display()
        ));
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.len() == 7 && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    names.sort();

    let mut invites = Tally::default();
    let mut teardowns = Tally::default();
    let mut panics = Vec::new();
    let mut framing = Vec::new();
    for name in &names {
        let data = std::fs::read(cases.join(name)).unwrap();
        let msgs = match split(&data) {
            Ok(m) if m.len() == 2 => m,
            Ok(m) => {
                framing.push(format!("{name}: {} messages", m.len()));
                continue;
            }
            Err(e) => {
                framing.push(format!("{name}: {e}"));
                continue;
            }
        };
        for (i, raw) in msgs.iter().enumerate() {
            let filled = fill(raw);
            match catch_unwind(AssertUnwindSafe(|| check(filled))) {
                Ok(r) => {
                    if name == "0000000" && i == 0 {
                        if let Err(e) = &r {
                            panic!("case 0000000: the baseline INVITE must be valid: {e}");
                        }
                    }
                    if i == 0 {
                        invites.add(&r)
                    } else {
                        teardowns.add(&r)
                    }
                }
                Err(_) => panics.push(format!("{name} message {}", i + 1)),
            }
        }
    }
    say(&format!(
        "PROTOS c07-sip: {} cases from {}\n{}\n{}",
        names.len(),
        cases.display(),
        invites.report("INVITE"),
        teardowns.report("teardown")
    ));
    assert!(names.iter().any(|n| n == "0000000"));
    assert!(
        framing.is_empty(),
        "cases whose length prefixes do not frame two messages:\n{}",
        framing.join("\n")
    );
    assert!(
        panics.is_empty(),
        "the parser panicked on:\n{}",
        panics.join("\n")
    );
}

#[test]
fn filling_and_framing() {
    let m = split(b"11 INVITE <To>5 ACK x").unwrap();
    assert_eq!(m, [&b"INVITE <To>"[..], &b"ACK x"[..]]);
    assert!(split(b"5 abc").is_err());
    assert!(split(b"x abc").is_err());
    let filled = fill(b"X: <Content-Length>\r\nT: <To>\r\n\r\nabc");
    assert_eq!(filled, b"X: 3\r\nT: bob@example.com\r\n\r\nabc");
    assert_eq!(fill(b"X: <Content-Length>"), b"X: 0");
}
