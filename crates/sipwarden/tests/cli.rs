//! Runs the built `sipwarden` binary: exit codes, output formats, standard input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sipwarden");

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5062;received=198.51.100.7\r\n\
v: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnashds8\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice \\\"A\\\" Smith\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>;expires=3600;+sip.instance=\"<urn:uuid:1>\"\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n\
{SDP}",
        SDP.len()
    )
}

const RESPONSE: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\
\r\n";

/// `SIP/3.0`: the version starts at byte 35.
const BAD_VERSION: &str = "OPTIONS sip:bob@biloxi.example.com SIP/3.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
From: <sip:alice@atlanta.example.com>;tag=1\r\n\
Call-ID: 1@192.0.2.10\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\
\r\n";

/// Writes `content` to a fresh file under the test scratch directory.
fn file(name: &str, content: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sipwarden-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sipwarden");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            input.write_all(data).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn valid_invite_prints_a_summary_and_exits_0() {
    let p = file("invite.sip", invite().as_bytes());
    let o = run(&["parse", p.to_str().unwrap()], None);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    assert!(o.stderr.is_empty());
    assert!(out.contains("valid request"), "{out}");
    assert!(
        out.contains("INVITE sip:bob@biloxi.example.com SIP/2.0"),
        "{out}"
    );
    assert!(
        out.contains("a84b4c76e66710@pc33.atlanta.example.com"),
        "{out}"
    );
    assert!(out.contains("314159 INVITE"), "{out}");
    assert!(out.contains("branch=z9hG4bK776asdhds"), "{out}");
    assert!(out.contains("tag=1928301774"), "{out}");
    assert!(out.contains("m=audio 49170 RTP/AVP 0 8 101"), "{out}");
}

#[test]
fn json_fields_of_an_invite_with_sdp() {
    let p = file("invite-json.sip", invite().as_bytes());
    let o = run(&["parse", "--json", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let v = json_lines(&o);
    assert_eq!(v.len(), 1);
    let m = &v[0];
    assert_eq!(m["kind"], "request");
    assert_eq!(m["method"], "INVITE");
    assert_eq!(m["request_uri"], "sip:bob@biloxi.example.com");
    assert_eq!(m["status"], Value::Null);
    assert_eq!(m["call_id"], "a84b4c76e66710@pc33.atlanta.example.com");
    assert_eq!(m["cseq"]["seq"], 314159);
    assert_eq!(m["cseq"]["method"], "INVITE");

    let via = m["via"].as_array().unwrap();
    assert_eq!(via.len(), 2);
    assert_eq!(via[0]["transport"], "UDP");
    assert_eq!(via[0]["host"], "192.0.2.10");
    assert_eq!(via[0]["port"], 5060);
    assert_eq!(via[0]["branch"], "z9hG4bK776asdhds");
    assert_eq!(via[0]["received"], "198.51.100.7");
    assert_eq!(via[0]["rport"], 5062);
    assert_eq!(via[1]["transport"], "TCP");
    assert_eq!(via[1]["host"], "proxy.example.com");
    assert_eq!(via[1]["port"], Value::Null);
    assert_eq!(via[1]["rport"], Value::Null);

    assert_eq!(m["from"]["display"], "Alice \"A\" Smith");
    assert_eq!(m["from"]["uri"], "sip:alice@atlanta.example.com");
    assert_eq!(m["from"]["tag"], "1928301774");
    assert_eq!(m["to"]["display"], "Bob");
    assert_eq!(m["to"]["uri"], "sip:bob@biloxi.example.com");
    assert_eq!(m["to"]["tag"], Value::Null);

    let contacts = m["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["uri"], "sip:alice@192.0.2.10:5060");
    assert_eq!(contacts[0]["display"], Value::Null);
    assert_eq!(contacts[0]["params"]["expires"], "3600");
    assert_eq!(contacts[0]["params"]["+sip.instance"], "\"<urn:uuid:1>\"");

    assert_eq!(m["content_length"], SDP.len());
    assert_eq!(m["header_count"], 10);
    let sdp = &m["sdp"];
    assert_eq!(sdp["origin_address"], "192.0.2.10");
    assert_eq!(sdp["connection"], "192.0.2.10");
    assert_eq!(sdp["media"][0]["media"], "audio");
    assert_eq!(sdp["media"][0]["port"], 49170);
    assert_eq!(sdp["media"][0]["proto"], "RTP/AVP");
    assert_eq!(
        sdp["media"][0]["formats"],
        serde_json::json!(["0", "8", "101"])
    );
    assert_eq!(sdp["media"][0]["direction"], "sendrecv");
}

#[test]
fn json_of_a_response() {
    let o = run(&["parse", "--json"], Some(RESPONSE.as_bytes()));
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let m = &json_lines(&o)[0];
    assert_eq!(m["kind"], "response");
    assert_eq!(m["status"], 180);
    assert_eq!(m["reason"], "Ringing");
    assert_eq!(m["method"], Value::Null);
    assert_eq!(m["request_uri"], Value::Null);
    assert_eq!(m["via"][0]["rport"], true);
    assert_eq!(m["to"]["tag"], "a6c85cf");
    assert_eq!(m["contacts"], serde_json::json!([]));
    assert_eq!(m["sdp"], Value::Null);
    assert_eq!(m["file"], "<stdin>");
}

#[test]
fn invalid_message_reports_offset_and_reason_and_exits_1() {
    let p = file("bad-version.sip", BAD_VERSION.as_bytes());
    let name = p.to_str().unwrap();
    let o = run(&["parse", name], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    assert_eq!(
        text(&o.stderr),
        format!("{name}: error at byte 35: SIP version not supported\n")
    );
}

#[test]
fn validation_and_sdp_errors_make_a_message_invalid() {
    // Missing Call-ID: the parse succeeds, validate() fails.
    let no_call_id = RESPONSE.replace("Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", "");
    let o = run(&["parse", "-"], Some(no_call_id.as_bytes()));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).starts_with("<stdin>: error at byte "),
        "{}",
        text(&o.stderr)
    );

    // A body labelled application/sdp that is not SDP.
    let body = "hello\r\n";
    let bad_sdp = invite().replace(SDP, body).replace(
        &format!("Content-Length: {}", SDP.len()),
        &format!("Content-Length: {}", body.len()),
    );
    let o = run(&["parse"], Some(bad_sdp.as_bytes()));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("<stdin>: error at byte "), "{err}");
    assert!(err.contains("invalid SDP body"), "{err}");
}

#[test]
fn every_file_is_checked_and_one_invalid_file_makes_exit_1() {
    let good = file("good.sip", invite().as_bytes());
    let bad = file("bad.sip", BAD_VERSION.as_bytes());
    let o = run(
        &[
            "parse",
            "--json",
            bad.to_str().unwrap(),
            good.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_lines(&o);
    assert_eq!(
        v.len(),
        1,
        "the valid file after the invalid one is still reported"
    );
    assert_eq!(v[0]["file"], good.to_str().unwrap());
    assert_eq!(text(&o.stderr).lines().count(), 1);
}

#[test]
fn stdin_is_read_without_file_and_with_dash() {
    for args in [&["parse"][..], &["parse", "-"][..]] {
        let o = run(args, Some(invite().as_bytes()));
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stdout).starts_with("<stdin>: valid request"));
    }
    let o = run(&["parse"], Some(b""));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr), "<stdin>: error at byte 0: empty message\n");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["parse", "--no-such-flag"][..],
        &[][..],
        &["no-such-command"][..],
    ] {
        let o = run(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!o.stderr.is_empty());
    }
}

#[test]
fn unreadable_file_exits_2() {
    let o = run(&["parse", "/nonexistent/sipwarden/message.sip"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("/nonexistent/sipwarden/message.sip: cannot read:"));
}

#[test]
fn the_readme_example_is_valid() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/invite.sip");
    let o = run(&["parse", "--json", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let m = &json_lines(&o)[0];
    assert_eq!(m["method"], "INVITE");
    assert!(m["sdp"]["media"][0]["port"].is_number());
}
