//! Inputs shared by the criterion (`parse.rs`) and instruction-count (`instructions.rs`)
//! benchmarks: the three realistic messages and the adversarial 64 KiB inputs.

#![allow(dead_code)]

/// A typical INVITE with SDP (~900 bytes): 2 Vias, Record-Route, Contact, Allow, Supported,
/// User-Agent, P-Asserted-Identity, Session-Expires, audio with rtpmaps.
pub const INVITE: &[u8] = include_bytes!("../data/invite.sip");
/// The 200 OK answering it, with SDP.
pub const OK200: &[u8] = include_bytes!("../data/ok200.sip");
/// A REGISTER with a Digest Authorization.
pub const REGISTER: &[u8] = include_bytes!("../data/register.sip");

pub const MESSAGES: [(&str, &[u8]); 3] =
    [("invite", INVITE), ("ok200", OK200), ("register", REGISTER)];

/// Every adversarial input is at most this long (the default `Limits::max_message_size`).
pub const ADV_SIZE: usize = 64 * 1024;

const START: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n";
const TAIL: &str = "Call-ID: adv@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

/// Fills header lines produced by `line(i)` until the message would exceed `ADV_SIZE`.
fn fill(start: &str, mut line: impl FnMut(usize) -> String) -> Vec<u8> {
    let mut m = start.as_bytes().to_vec();
    let mut i = 0;
    loop {
        let l = line(i);
        if m.len() + l.len() + TAIL.len() > ADV_SIZE {
            break;
        }
        m.extend_from_slice(l.as_bytes());
        i += 1;
    }
    m.extend_from_slice(TAIL.as_bytes());
    m
}

/// `s` repeated until `len` bytes (cut at a repetition boundary).
fn rep(s: &str, len: usize) -> String {
    s.repeat(len / s.len())
}

/// The adversarial inputs, each at most 64 KiB. Some are rejected by a limit (line length,
/// parameter or value count, ...): then the benchmark measures the rejection.
pub fn adversarial() -> Vec<(&'static str, Vec<u8>)> {
    let line_max = 16 * 1024 - 64; // just under Limits::max_line_length
    let mut v = Vec::new();

    // One Via with thousands of parameters on one 64 KiB line (line-length limit).
    let mut m = format!("{START}Via: SIP/2.0/UDP h.example.com").into_bytes();
    while m.len() + 16 + TAIL.len() < ADV_SIZE {
        m.extend_from_slice(b";p=1");
    }
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(TAIL.as_bytes());
    v.push(("via_params_one_line", m));

    // Via lines just under the line limit, each with hundreds of parameters (parameter limit).
    v.push((
        "via_params_max_lines",
        fill(START, |i| {
            format!(
                "Via: SIP/2.0/UDP h{i}.example.com;branch=z9hG4bK{i}{}\r\n",
                rep(";ttl=1", line_max - 60)
            )
        }),
    ));

    // 250 valid typed headers (close to Limits::max_headers = 256), about 250 bytes each.
    let mut n = 0;
    v.push((
        "headers_250",
        fill(START, |i| {
            n += 1;
            if n > 250 {
                return "x".repeat(ADV_SIZE); // stops `fill`
            }
            match i % 6 {
                0 => format!(
                    "Via: SIP/2.0/UDP proxy{i}.atlanta.example.com:5060;branch=z9hG4bK{i:08}abcdef;received=192.0.2.{};rport=5060;x-extra={i}\r\n",
                    i % 250
                ),
                1 => format!(
                    "Record-Route: <sip:proxy{i}.atlanta.example.com;lr;transport=tcp>, <sip:edge{i}.biloxi.example.com;lr>\r\n"
                ),
                2 => format!(
                    "Contact: \"User {i}\" <sip:user{i}@192.0.2.{}:5060;transport=udp;ob>;expires=3600;q=0.5;+sip.instance=\"<urn:uuid:{i:08}>\"\r\n",
                    i % 250
                ),
                3 => "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE, PRACK, INFO, REFER, NOTIFY, SUBSCRIBE, MESSAGE, PUBLISH\r\n".to_string(),
                4 => "Supported: timer, 100rel, replaces, path, gruu, outbound, norefersub, tdialog, histinfo, join\r\n".to_string(),
                _ => format!(
                    "P-Asserted-Identity: \"Caller {i}\" <sip:+1555{i:07}@atlanta.example.com;user=phone>, <tel:+1555{i:07}>\r\n"
                ),
            }
        }),
    ));

    // Folded lines: text and Via values folded every 3 bytes, lines just under the limit.
    v.push((
        "folded_every_3_bytes",
        fill(START, |i| {
            if i % 2 == 0 {
                format!("User-Agent: ua{}\r\n", rep("\r\n abc", line_max - 20))
            } else {
                let mut s = format!("Via: SIP/2.0/UDP h{i}.example.com");
                let mut k = 0;
                while s.len() < 1400 && k < 60 {
                    s.push_str(&format!("\r\n ;\r\n p{k}\r\n =\r\n v"));
                    k += 1;
                }
                s.push_str("\r\n");
                s
            }
        }),
    ));

    // A huge Contact list: lines just under the limit, ~500 values each (value limit).
    v.push((
        "contact_list_huge",
        fill(START, |i| {
            let mut s = String::from("Contact: ");
            let mut k = 0;
            while s.len() < line_max - 40 {
                s.push_str(&format!("<sip:u{k}@h{i}.example.com>, "));
                k += 1;
            }
            s.push_str("<sip:last@example.com>\r\n");
            s
        }),
    ));

    // Empty parameters everywhere: `;;;;` after Via, To and in URIs.
    v.push((
        "semicolons",
        fill(START, |i| match i % 3 {
            0 => format!(
                "Via: SIP/2.0/UDP h.example.com{}\r\n",
                rep(";", line_max - 40)
            ),
            1 => format!("To: <sip:bob@biloxi.com{}>\r\n", rep(";", line_max - 40)),
            _ => format!("Contact: <sip:a@b>{}\r\n", rep(";", line_max - 40)),
        }),
    ));

    // Long quoted strings made of escapes: display names and Digest parameters.
    v.push((
        "quoted_escapes",
        fill(START, |i| {
            if i % 2 == 0 {
                format!("From: \"{}\" <sip:alice@atlanta.com>;tag=t{i}\r\n", rep("\\\"\\\\", line_max - 60))
            } else {
                format!(
                    "Authorization: Digest username=\"{}\", realm=\"r\", nonce=\"n\", uri=\"sip:a@b\", response=\"00\"\r\n",
                    rep("\\\\\\\"", line_max - 120)
                )
            }
        }),
    ));

    // A giant Request-URI (escaped user, parameters) and giant URIs in Route and Contact.
    let user = rep("%41", line_max - 200);
    let start = format!("INVITE sip:{user}@biloxi.com;transport=udp;lr SIP/2.0\r\n");
    v.push((
        "giant_uri",
        fill(&start, |i| {
            if i % 2 == 0 {
                format!("Route: <sip:{user}@proxy.example.com;lr>\r\n")
            } else {
                format!("Contact: <sip:{user}@192.0.2.1:5060>\r\n")
            }
        }),
    ));

    // A CRLF flood before a small message (leading CRLFs are skipped, RFC 3261 7.5).
    let small = format!(
        "OPTIONS sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n{TAIL}"
    );
    let mut m = rep("\r\n", ADV_SIZE - small.len()).into_bytes();
    m.extend_from_slice(small.as_bytes());
    v.push(("crlf_flood", m));

    // After the start line, nothing but header-name bytes (no colon, no line break).
    let mut m = START.as_bytes().to_vec();
    m.resize(ADV_SIZE, b'a');
    v.push(("all_name_bytes", m));

    for (name, m) in &v {
        assert!(m.len() <= ADV_SIZE, "{name}: {} bytes", m.len());
    }
    v
}
