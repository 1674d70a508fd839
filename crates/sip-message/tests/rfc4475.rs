//! RFC 4475 ("SIP Torture Test Messages") against the message layer.
//!
//! The messages are in `tests/data/rfc4475/`, copied byte-exact from the RFC's archive, with
//! `MANIFEST.tsv` giving each file's class:
//! - `valid`: parse, `validate()` and `decode_all_headers()` all succeed, and the tricky fields
//!   read back as the RFC says;
//! - `invalid`: one of the three fails, except for the three messages RFC 4475 lets a liberal
//!   parser accept, where we made a choice (see [`LIBERAL`]);
//! - `semantic`: syntactically fine (or not) messages whose handling belongs to a later layer;
//!   each test checks that the parser exposes what that layer needs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sip_message::headers::{
    Accept, Authorization, Contact, ContentType, ProxyRequire, Require, Via,
};
use sip_message::{unescape, ErrorKind, HeaderName, Host, Message, Method, ParseError, Uri};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

fn bytes(name: &str) -> Vec<u8> {
    let p = data_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Parse only.
fn parse(name: &str) -> Result<Message, ParseError> {
    Message::parse(bytes(name))
}

/// What the edge does before it handles a message: parse, validate, decode every typed header.
fn full_check(name: &str) -> Result<Message, ParseError> {
    let m = Message::parse(bytes(name))?;
    m.validate()?;
    m.decode_all_headers()?;
    Ok(m)
}

/// A message that must pass every check.
fn valid(name: &str) -> Message {
    full_check(name).unwrap_or_else(|e| panic!("{name} must be valid, got {e} ({:?})", e.kind))
}

/// The text of the first line of the file that starts with `prefix` (without the line break).
fn raw_line(name: &str, prefix: &str) -> String {
    let text = String::from_utf8_lossy(&bytes(name)).into_owned();
    text.split("\r\n")
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{name}: no line starting with {prefix:?}"))
        .to_owned()
}

fn sip_uri<'a>(u: &'a Uri<'a>) -> &'a sip_message::SipUri<'a> {
    u.sip().unwrap_or_else(|| panic!("not a SIP URI: {u}"))
}

fn user(u: &Uri<'_>) -> Vec<u8> {
    unescape(sip_uri(u).user.expect("user part")).into_owned()
}

struct Row {
    file: String,
    class: String,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(data_dir().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "bad manifest row: {l}");
            Row {
                file: cols[0].to_owned(),
                class: cols[2].to_owned(),
            }
        })
        .collect()
}

/// The `invalid` messages that RFC 4475 lets a liberal parser accept, and what we chose:
/// `true` = accepted.
///
/// - `baddate.dat` (3.1.2.12), accepted: the Date header is `EST`, not `GMT`. Nothing in an SBC
///   uses Date (it is not decoded at all), so rejecting the request would only break calls from
///   a peer whose clock format is wrong; the RFC allows processing it when Date is not used.
/// - `badaspec.dat` (3.1.2.14), rejected: `To: "Watson, Thomas" < sip:t.watson@example.org >`
///   has white space inside the angle brackets. An edge element that re-writes and forwards
///   addresses should not guess where a URI starts and ends, and accepting white space there
///   would let the same URI be written in many ways that policy rules must then all match.
///   The parser answers `BadNameAddr` (a `400`).
/// - `baddn.dat` (3.1.2.15), accepted: `From: Bell, Alexander <sip:...>` has a comma in an
///   unquoted display name. The address itself is unambiguous, the display name is only shown
///   to people, and many deployed phones send such names, so we take it as written.
const LIBERAL: [(&str, bool); 3] = [
    ("baddate.dat", true),
    ("badaspec.dat", false),
    ("baddn.dat", true),
];

/// For the `invalid` messages that we reject: the error kinds that are the right reason.
fn expected_rejection(file: &str) -> &'static [ErrorKind] {
    use ErrorKind::*;
    match file {
        // `Via: SIP/2.0/UDP 192.0.2.15;;,;,,` and `Contact: ... ;;;;`
        "badinv01.dat" => &[BadParam, BadVia, BadNameAddr],
        "clerr.dat" => &[ContentLengthTooLarge],
        "ncl.dat" => &[BadContentLength],
        // CSeq, Max-Forwards, Expires and Content-Length are all too large; the first found wins.
        "scalar02.dat" => &[
            BadCSeq,
            BadMaxForwards,
            BadNumber,
            BadContentLength,
            BadParam,
        ],
        "scalarlg.dat" => &[BadCSeq, BadNumber],
        "quotbal.dat" => &[UnterminatedQuote],
        "ltgtruri.dat" | "lwsruri.dat" | "escruri.dat" => &[BadRequestUri],
        "lwsstart.dat" => &[BadRequestUri, BadStartLine],
        "trws.dat" => &[BadVersion, BadStartLine],
        "regbadct.dat" => &[BadNameAddr],
        "badaspec.dat" => &[BadNameAddr],
        "badvers.dat" => &[VersionNotSupported],
        "mismatch01.dat" | "mismatch02.dat" => &[CSeqMethodMismatch],
        "bigcode.dat" => &[BadStatusCode],
        // No SIP version in the Request-Line, then a header line without a colon.
        "test.dat" => &[BadStartLine, BadVersion, MissingColon],
        _ => &[],
    }
}

#[test]
fn manifest_lists_every_message() {
    let rows = manifest();
    assert_eq!(rows.len(), 50, "49 RFC messages and the archive's test.dat");
    let listed: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".dat") && name != "baddn-original.dat" {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is not in MANIFEST.tsv"
            );
        }
    }
    for r in &rows {
        assert!(data_dir().join(&r.file).is_file(), "{} is missing", r.file);
        assert!(
            ["valid", "invalid", "semantic"].contains(&r.class.as_str()),
            "{}: class {}",
            r.file,
            r.class
        );
    }
}

#[test]
fn valid_messages_pass_every_check() {
    let mut failures = Vec::new();
    for r in manifest().iter().filter(|r| r.class == "valid") {
        if let Err(e) = full_check(&r.file) {
            failures.push(format!("{}: {e} ({:?})", r.file, e.kind));
        }
    }
    assert!(
        failures.is_empty(),
        "valid messages rejected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn invalid_messages_are_rejected_for_the_right_reason() {
    let mut failures = Vec::new();
    for r in manifest().iter().filter(|r| r.class == "invalid") {
        let liberal = LIBERAL
            .iter()
            .find(|(f, _)| *f == r.file)
            .map(|(_, ok)| *ok);
        match (full_check(&r.file), liberal) {
            (Ok(_), Some(true)) => {}
            (Ok(_), _) => failures.push(format!("{}: accepted", r.file)),
            (Err(e), Some(true)) => {
                failures.push(format!("{}: rejected ({e}) but we accept it", r.file))
            }
            (Err(e), _) => {
                let kinds = expected_rejection(&r.file);
                if !kinds.contains(&e.kind) {
                    failures.push(format!(
                        "{}: rejected as {:?} ({e}), expected one of {kinds:?}",
                        r.file, e.kind
                    ));
                }
                // The offset points into the message.
                if e.offset > bytes(&r.file).len() {
                    failures.push(format!("{}: offset {} past the end", r.file, e.offset));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejections_map_to_the_status_rfc_4475_asks_for() {
    assert_eq!(full_check("badvers.dat").unwrap_err().status_code(), 505);
    for f in [
        "badinv01.dat",
        "ncl.dat",
        "quotbal.dat",
        "ltgtruri.dat",
        "mismatch02.dat",
    ] {
        assert_eq!(full_check(f).unwrap_err().status_code(), 400, "{f}");
    }
}

// ----- the liberal choices -----

#[test]
fn baddate_is_accepted_and_its_date_is_readable_as_text() {
    let m = valid("baddate.dat");
    assert_eq!(
        m.header(HeaderName::Date),
        Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
    );
}

#[test]
fn baddn_is_accepted_with_the_display_name_as_written() {
    let m = valid("baddn.dat");
    let from = m.from().unwrap().unwrap();
    assert_eq!(from.display_name, Some("Bell, Alexander"));
    assert!(!from.display_quoted);
    assert_eq!(from.uri.as_str(), "sip:a.g.bell@example.com");
    assert_eq!(from.tag(), Some("43"));
    let to = m.to().unwrap().unwrap();
    assert_eq!(to.display_name, Some("Watson, Thomas"));
    assert_eq!(to.uri.as_str(), "sip:t.watson@example.org");
}

#[test]
fn badaspec_is_rejected_at_the_space_inside_the_brackets() {
    let e = full_check("badaspec.dat").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadNameAddr);
    let b = bytes("badaspec.dat");
    let at = b.windows(2).position(|w| w == b"< ").unwrap() + 1;
    assert_eq!(e.offset, at, "points at the space after '<'");
}

#[test]
fn baddn_original_without_final_crlf_is_truncated() {
    // The archive's copy ends right after the last header line: no empty line, so the header
    // section never ends.
    assert_eq!(
        parse("baddn-original.dat").unwrap_err().kind,
        ErrorKind::Truncated
    );
}

// ----- valid messages: the tricky fields -----

#[test]
fn wsinv_whitespace_folding_and_compact_forms() {
    let m = valid("wsinv.dat");
    assert_eq!(m.method(), Some(Method::Invite));
    let ruri = m.request_uri().unwrap();
    assert!(sip_uri(&ruri).params.contains("unknownparam"));

    let to = m.to().unwrap().unwrap();
    assert_eq!(to.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));

    let from = m.from().unwrap().unwrap();
    assert!(from.display_quoted);
    assert_eq!(from.display_name_unquoted(), "J Rosenberg \\\"");
    assert_eq!(from.uri.as_str(), "sip:jdrosen@example.com");
    assert_eq!(from.tag(), Some("98asjd8"));

    assert_eq!(m.max_forwards().unwrap().unwrap().0, 68);
    let cseq = m.cseq().unwrap().unwrap();
    assert_eq!(
        (cseq.seq, cseq.method, cseq.method_str),
        (9, Method::Invite, "INVITE")
    );
    assert_eq!(m.call_id().unwrap().unwrap().0, "wsinv.ndaksdj@192.0.2.1");

    // Three Via values: one in `Via  :`, two (comma-separated, folded) in `v:`.
    let vias: Vec<Via> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 3);
    let via_fields: Vec<_> = m
        .fields()
        .iter()
        .filter(|f| f.name == HeaderName::Via)
        .collect();
    assert_eq!(via_fields.len(), 2);
    assert_eq!(m.slice(via_fields[1].name_span), b"v");
    assert_eq!(m.decode_field_values(via_fields[1]).unwrap(), 2);
    assert_eq!(
        (vias[0].protocol, vias[0].version, vias[0].transport),
        ("SIP", "2.0", "UDP")
    );
    assert_eq!(vias[0].host_str, "192.0.2.2");
    assert_eq!(vias[0].branch, Some("390skdjuw"));
    assert_eq!(
        (vias[1].transport, vias[1].host_str),
        ("TCP", "spindle.example.com")
    );
    assert_eq!(vias[1].branch, Some("z9hG4bK9ikj8"));
    assert_eq!(
        (vias[2].transport, vias[2].host_str),
        ("UDP", "192.168.255.111")
    );
    assert_eq!(vias[2].branch, Some("z9hG4bK30239"));

    // m: "Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33
    let contacts: Vec<Contact> = m.contacts().collect::<Result<_, _>>().unwrap();
    assert_eq!(contacts.len(), 1);
    let c = contacts[0].addr().unwrap();
    assert_eq!(c.display_name_unquoted(), "Quoted string \"\"");
    assert_eq!(c.uri.as_str(), "sip:jdrosen@example.com");
    assert_eq!(c.param("newparam"), Some("newvalue"));
    assert_eq!(c.params.get("secondparam"), Some(None));
    assert_eq!(contacts[0].q_permille(), Some(330));

    let route = m.routes().next().unwrap().unwrap();
    assert!(sip_uri(&route.uri).lr());
    assert_eq!(
        m.header_by_name("NewFangledHeader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.header_by_name("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_extension_method_and_unusual_tokens() {
    let m = valid("intmeth.dat");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(Method::Extension));
    assert_eq!(m.method_str(), Some(method));
    let cseq = m.cseq().unwrap().unwrap();
    assert_eq!(
        (cseq.seq, cseq.method, cseq.method_str),
        (139122385, Method::Extension, method)
    );
    let ruri = m.request_uri().unwrap();
    let u = sip_uri(&ruri);
    assert_eq!(
        u.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host, Host::Name("example.com"));
    assert_eq!(
        m.top_via().unwrap().unwrap().branch,
        Some("z9hG4bK-.!%66*_+`'~")
    );
    assert_eq!(
        m.call_id().unwrap().unwrap().0,
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    let to = m.to().unwrap().unwrap();
    assert_eq!(to.display_name_unquoted(), "BEL:\x07 NUL:\0 DEL:\x7f");
    let from = m.from().unwrap().unwrap();
    assert_eq!(from.display_name, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.param("fromParam''~+*_!.-%"),
        Some("\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}")
    );
    assert_eq!(m.max_forwards().unwrap().unwrap().0, 255);
    let ext = m.header_by_name("extensionHeader-!.%*+_`'~").unwrap();
    assert_eq!(
        std::str::from_utf8(ext).unwrap(),
        "\u{feff}\u{5927}\u{505c}\u{96fb}"
    );
}

#[test]
fn esc01_escapes_in_user_part_and_params() {
    let m = valid("esc01.dat");
    let ruri = m.request_uri().unwrap();
    assert_eq!(user(&ruri), b"sips:user@example.com");
    assert_eq!(sip_uri(&ruri).host, Host::Name("example.net"));
    let to = m.to().unwrap().unwrap();
    assert_eq!(
        sip_uri(&to.uri).user,
        Some("%75se%72"),
        "kept escaped as written"
    );
    assert_eq!(user(&to.uri), b"user");
    // The escaped To URI is equivalent to the unescaped one (RFC 3261 19.1.4).
    assert!(to
        .uri
        .equivalent(&Uri::parse("sip:user@example.com").unwrap()));
    let from = m.from().unwrap().unwrap();
    assert_eq!(user(&from.uri), b"I have spaces");
    let contact = m.contacts().next().unwrap().unwrap();
    let cu = contact.addr().unwrap().uri;
    assert_eq!(user(&cu), b"caller");
    let params: Vec<(Vec<u8>, Option<Vec<u8>>)> = sip_uri(&cu)
        .params
        .iter()
        .map(|(n, v)| {
            (
                unescape(n).into_owned(),
                v.map(|v| unescape(v).into_owned()),
            )
        })
        .collect();
    assert_eq!(
        params,
        vec![
            (b"lr".to_vec(), None),
            (b"name".to_vec(), Some(b"value%41".to_vec())),
        ]
    );
    assert_eq!(
        m.call_id().unwrap().unwrap().0,
        "esc01.239409asdfakjkn23onasd0-3234"
    );
}

#[test]
fn escnull_keeps_escaped_nul() {
    let m = valid("escnull.dat");
    let to = m.to().unwrap().unwrap();
    assert_eq!(user(&to.uri), b"null-\0-null");
    let from = m.from().unwrap().unwrap();
    assert_eq!(user(&from.uri), b"null-\0-null");
    let users: Vec<Vec<u8>> = m
        .contacts()
        .map(|c| user(&c.unwrap().addr().unwrap().uri))
        .collect();
    assert_eq!(users, vec![b"\0".to_vec(), b"\0\0".to_vec()]);
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let m = valid("esc02.dat");
    assert_eq!(
        m.method(),
        Some(Method::Extension),
        "RE%47IST%45R is not REGISTER"
    );
    assert_eq!(m.method_str(), Some("RE%47IST%45R"));
    assert_eq!(m.to().unwrap().unwrap().display_name_unquoted(), "%Z%45");
    assert_eq!(
        m.top_via().unwrap().unwrap().branch,
        Some("z9hG4bK209%fzsnel234")
    );
    // `C%6Fntact` is an extension header, not a third Contact.
    assert_eq!(m.contacts().count(), 2);
    assert!(m.header_by_name("C%6Fntact").is_some());
}

#[test]
fn lwsdisp_display_name_without_space_before_bracket() {
    let m = valid("lwsdisp.dat");
    let from = m.from().unwrap().unwrap();
    assert_eq!(from.display_name, Some("caller"));
    assert_eq!(from.uri.as_str(), "sip:caller@example.com");
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn longreq_long_values_are_kept_whole() {
    let name = "longreq.dat";
    let m = valid(name);
    let call_id = raw_line(name, "Call-ID: ");
    assert_eq!(
        m.call_id().unwrap().unwrap().0,
        &call_id["Call-ID: ".len()..]
    );
    let from_line = raw_line(name, "F: ");
    let from = m.from().unwrap().unwrap();
    let from_uri = from_line["F: ".len()..].split(';').next().unwrap();
    assert_eq!(from.uri.as_str(), from_uri);
    let raw_params: Vec<&str> = from_line.split(';').skip(1).collect();
    assert_eq!(raw_params.len(), 3);
    assert_eq!(Some(&raw_params[0]["tag=".len()..]), from.tag());
    assert_eq!(from.params.len(), 3);
    let (pname, pvalue) = raw_params[1].split_once('=').unwrap();
    assert_eq!(from.param(pname), Some(pvalue));
    assert_eq!(from.params.get(raw_params[2]), Some(None));
    let to = m.to().unwrap().unwrap();
    let to_line = raw_line(name, "To: ");
    assert!(to_line.contains(&format!("<{}>", to.uri.as_str())));
    let to_uri_params: Vec<(&str, Option<&str>)> = sip_uri(&to.uri).params.iter().collect();
    let raw_to_params = to_line.split_once('<').unwrap().1.trim_end_matches('>');
    let expected: Vec<(&str, Option<&str>)> = raw_to_params
        .split(';')
        .skip(1)
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        })
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(to_uri_params, expected);
    assert_eq!(sip_uri(&to.uri).port, Some(6000));
    let to_display = to_line["To: \"".len()..].split('"').next().unwrap();
    assert_eq!(to.display_name_unquoted(), to_display);

    let vias: Vec<Via> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host_str, "sip33.example.com");
    let last = raw_line(name, "Via: SIP/2.0/TCP host.example.com;");
    let branch = last.split("branch=").nth(1).unwrap();
    assert_eq!(vias[33].branch, Some(branch));
    assert_eq!(vias[33].received, Some("192.0.2.5".parse().unwrap()));

    let unknown = raw_line(name, "Unknown-LongLong");
    let (uname, uvalue) = unknown.split_once(": ").unwrap();
    assert_eq!(m.header_by_name(uname), Some(uvalue.as_bytes()));
    let contact_line = raw_line(name, "Contact: ");
    let c = m.contacts().next().unwrap().unwrap();
    assert_eq!(
        format!("Contact: <{}>", c.addr().unwrap().uri.as_str()),
        contact_line
    );
    assert_eq!(m.body().len(), 150);
}

#[test]
fn dblreq_body_is_content_length_bytes_and_the_rest_is_ignored() {
    let raw = bytes("dblreq.dat");
    let m = valid("dblreq.dat");
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.content_length(), Some(0));
    assert_eq!(m.body(), b"");
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        m.as_bytes(),
        &raw[..end],
        "the message ends after the empty line"
    );
    assert!(
        m.buffer().len() > end,
        "the INVITE after it stays in the buffer, unparsed"
    );
    assert_eq!(
        m.call_id().unwrap().unwrap().0,
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
}

#[test]
fn semiuri_user_part_with_semicolon() {
    let m = valid("semiuri.dat");
    let ruri = m.request_uri().unwrap();
    let u = sip_uri(&ruri);
    assert_eq!(u.user, Some("user;par=u%40example.net"));
    assert_eq!(u.host, Host::Name("example.com"));
    assert!(u.params.is_empty());
    let accepts: Vec<(String, String)> = m
        .typed_all::<Accept>()
        .map(|a| a.map(|a| (a.mtype.to_owned(), a.subtype.to_owned())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(accepts.len(), 6, "folded Accept list");
    assert_eq!(accepts[5], ("message".to_owned(), "sipfrag".to_owned()));
}

#[test]
fn transports_unknown_tokens_accepted() {
    let m = valid("transports.dat");
    let t: Vec<String> = m.vias().map(|v| v.unwrap().transport.to_owned()).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let hosts: Vec<String> = m.vias().map(|v| v.unwrap().host_str.to_owned()).collect();
    assert_eq!(hosts[3], "t4.example.com");
}

#[test]
fn mpart01_multipart_body_intact() {
    let raw = bytes("mpart01.dat");
    let m = valid("mpart01.dat");
    assert_eq!(m.method_str(), Some("MESSAGE"));
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.boundary(), Some("7a9cbec02ceef655"));
    assert_eq!(m.content_length(), Some(553));
    assert_eq!(m.body().len(), 553);
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(m.body(), &raw[start..start + 553]);
    assert!(m.body().iter().any(|b| *b >= 0x80), "binary part kept");
    assert!(m.body().starts_with(b"--7a9cbec02ceef655\r\n"));
}

#[test]
fn unreason_utf8_reason_phrase() {
    let m = valid("unreason.dat");
    assert_eq!(m.status(), Some(200));
    let first = raw_line("unreason.dat", "SIP/2.0 200 ");
    let reason = m.reason_phrase().unwrap();
    assert_eq!(reason, &first.as_bytes()["SIP/2.0 200 ".len()..]);
    let text = std::str::from_utf8(reason).unwrap();
    assert!(text.starts_with("= 2**3 * 5**2 "));
    assert!(text.contains('\u{43d}'), "Cyrillic kept: {text}");
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = valid("noreason.dat");
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason_phrase(), Some(&b""[..]));
    assert!(m.is_response());
}

// ----- semantic cases: what later layers need -----

#[test]
fn zeromf_max_forwards_zero() {
    let m = valid("zeromf.dat");
    assert_eq!(m.max_forwards().unwrap().unwrap().0, 0);
}

#[test]
fn unkscm_and_novelsc_expose_the_request_uri_scheme() {
    for (f, scheme) in [
        ("unkscm.dat", "nobodyKnowsThisScheme"),
        ("novelsc.dat", "soap.beep"),
    ] {
        let m = valid(f);
        let ruri = m.request_uri().unwrap();
        assert!(matches!(ruri, Uri::Other(_)), "{f}: {ruri:?}");
        assert_eq!(ruri.scheme(), scheme);
        assert!(!["sip", "sips", "tel"]
            .iter()
            .any(|s| ruri.scheme().eq_ignore_ascii_case(s)));
    }
}

#[test]
fn unksm2_unknown_schemes_in_addresses() {
    let m = valid("unksm2.dat");
    assert_eq!(m.to().unwrap().unwrap().uri.scheme(), "isbn");
    assert_eq!(m.from().unwrap().unwrap().uri.scheme(), "http");
    let c = m.contacts().next().unwrap().unwrap();
    assert_eq!(c.addr().unwrap().uri.as_str(), "name:John_Smith");
}

#[test]
fn mcl01_several_content_lengths_rejected() {
    let e = parse("mcl01.dat").unwrap_err();
    assert_eq!(e.kind, ErrorKind::DuplicateContentLength);
    assert_eq!(e.status_code(), 400);
}

#[test]
fn multi01_several_values_in_single_value_headers_rejected() {
    let m = parse("multi01.dat").unwrap();
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::DuplicateHeader);
    assert_eq!(e.status_code(), 400);
}

#[test]
fn insuf_missing_headers_fail_validation() {
    let m = parse("insuf.dat").unwrap();
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::MissingHeader);
    // Everything present still decodes: the failure is only the missing headers.
    assert!(m.decode_all_headers().is_ok());
}

#[test]
fn bext01_option_tags_readable() {
    let m = valid("bext01.dat");
    let req: Vec<&str> = m
        .typed_all::<Require>()
        .map(|t| t.unwrap().as_str())
        .collect();
    assert_eq!(req, ["nothingSupportsThis", "nothingSupportsThisEither"]);
    let preq: Vec<&str> = m
        .typed_all::<ProxyRequire>()
        .map(|t| t.unwrap().as_str())
        .collect();
    assert_eq!(preq, ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]);
    assert_eq!(m.top_via().unwrap().unwrap().transport, "TLS");
}

#[test]
fn badbranch_and_inv2543_have_no_magic_cookie() {
    let m = valid("badbranch.dat");
    let v = m.top_via().unwrap().unwrap();
    assert_eq!(v.branch, Some("z9hG4bK"));
    assert!(
        !v.has_magic_cookie(),
        "the bare cookie is not a unique RFC 3261 branch"
    );

    let m = valid("inv2543.dat");
    let v = m.top_via().unwrap().unwrap();
    assert_eq!(v.branch, None);
    assert!(!v.has_magic_cookie());
    assert_eq!(v.host_str, "iftgw.example.com");
    // RFC 2543 style: no From tag, no Max-Forwards, no Content-Length (body = rest).
    assert_eq!(m.from().unwrap().unwrap().tag(), None);
    assert!(m.max_forwards().is_none());
    assert_eq!(m.content_length(), None);
    assert!(m.body().starts_with(b"v=0\r\n"));
    assert!(m.body().ends_with(b"m=audio 49217 RTP/AVP 0\r\n"));
    // Unbracketed To: `;user=phone` belongs to the header in the addr-spec form (RFC 3261 20.10).
    let to = m.to().unwrap().unwrap();
    assert_eq!(to.uri.as_str(), "sip:+16505552222@ss1.example.net");
    assert_eq!(to.param("user"), Some("phone"));
    let from = m.from().unwrap().unwrap();
    assert_eq!(sip_uri(&from.uri).user_param(), Some("phone"));
}

#[test]
fn invut_unknown_content_type_readable() {
    let m = valid("invut.dat");
    let ct = m.typed::<ContentType>().unwrap().unwrap();
    assert_eq!((ct.mtype, ct.subtype), ("application", "unknownformat"));
    assert_eq!(m.body().len(), 40);
    assert!(m.body().starts_with(b"<audio>"));
}

#[test]
fn sdp01_accept_readable() {
    let m = valid("sdp01.dat");
    let accepts: Vec<Accept> = m.typed_all::<Accept>().collect::<Result<_, _>>().unwrap();
    assert_eq!(accepts.len(), 1);
    assert!(accepts[0].is("text", "nobodyKnowsThis"));
    assert!(!accepts.iter().any(|a| a.matches("application", "sdp")));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
}

#[test]
fn regaut01_unknown_auth_scheme_parsed() {
    let m = valid("regaut01.dat");
    let a = m.typed::<Authorization>().unwrap().unwrap();
    assert_eq!(a.scheme, "NoOneKnowsThisScheme");
    assert!(!a.is_digest());
    assert_eq!(a.params.get("opaque-data"), Some("here"));
}

#[test]
fn cparam01_contact_header_params_kept() {
    let m = valid("cparam01.dat");
    let c = m.contacts().next().unwrap().unwrap();
    let a = c.addr().unwrap();
    assert!(!a.bracketed);
    assert_eq!(a.uri.as_str(), "sip:+19725552222@gw1.example.net");
    assert!(sip_uri(&a.uri).params.is_empty());
    assert_eq!(
        a.params.get("unknownparam"),
        Some(None),
        "a header (binding) parameter"
    );
}

#[test]
fn cparam02_contact_uri_params_kept() {
    let m = valid("cparam02.dat");
    let c = m.contacts().next().unwrap().unwrap();
    let a = c.addr().unwrap();
    assert!(a.bracketed);
    assert_eq!(
        a.uri.as_str(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
    assert_eq!(
        sip_uri(&a.uri).params.get("unknownparam"),
        Some(None),
        "a URI parameter"
    );
    assert!(a.params.is_empty());
}

#[test]
fn regescrt_escaped_uri_header_kept() {
    let m = valid("regescrt.dat");
    let c = m.contacts().next().unwrap().unwrap();
    let uri = c.addr().unwrap().uri;
    assert_eq!(
        uri.as_str(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    let u = sip_uri(&uri);
    assert_eq!(u.headers, Some("Route=%3Csip:sip.example.com%3E"));
    let pairs: BTreeMap<&str, Vec<u8>> = u
        .header_pairs()
        .map(|(n, v)| (n, unescape(v).into_owned()))
        .collect();
    assert_eq!(
        pairs.get("Route").map(Vec::as_slice),
        Some(&b"<sip:sip.example.com>"[..])
    );
}

#[test]
fn bcast_via_host_readable() {
    let m = valid("bcast.dat");
    let hosts: Vec<Host> = m.vias().map(|v| v.unwrap().host).collect();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0], Host::V4("192.0.2.198".parse().unwrap()));
    assert_eq!(hosts[1], Host::V4(std::net::Ipv4Addr::BROADCAST));
    assert_eq!(m.status(), Some(200));
}

#[test]
fn every_semantic_case_has_a_decision() {
    // The semantic cases that must fail at the message layer; all others pass every check.
    let rejected = ["insuf.dat", "multi01.dat", "mcl01.dat"];
    let mut failures = Vec::new();
    for r in manifest().iter().filter(|r| r.class == "semantic") {
        let ok = full_check(&r.file).is_ok();
        if ok == rejected.contains(&r.file.as_str()) {
            failures.push(format!(
                "{}: {}",
                r.file,
                if ok { "accepted" } else { "rejected" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
