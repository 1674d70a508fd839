//! Whole calls through the real transaction layer and the B2BUA, with a simulated clock. The
//! test plays both peers: the LAN PBX (192.168.10.20) and the ITSP (203.0.113.5).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{HeaderName, Message};
use sip_transaction::{Config, Destination, FlowId, Output, Source, TransactionLayer, TuEvent};

use crate::*;

const PBX: &str = "192.168.10.20:5060";
const ITSP: &str = "203.0.113.5:5060";

/// Everything on the LAN that must never be seen on the WAN.
const LAN_SECRETS: &[&str] = &[
    "192.168.10.",
    "pbx.lan.example",
    "lan.example",
    "internal-callid",
    "lanfrom1",
    "lanto1",
    "z9hG4bKlan",
    "PBX-Internal",
];

struct H {
    tl: TransactionLayer,
    b2b: B2bua,
    media: FakeMediaPort,
    now: Instant,
    /// Everything sipwarden sent, in order.
    sent: Vec<(Destination, Message)>,
    /// Not yet taken by the test.
    inbox: Vec<(Destination, Message)>,
    events: Vec<B2buaEvent>,
    unhandled: Vec<TuEvent>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config() -> B2buaConfig {
    let mut lan = ZoneIdentity::new("lan", "192.168.10.1:5060");
    lan.trusted = true;
    let mut wan = ZoneIdentity::new("wan", "198.51.100.1:5060");
    wan.domain = Some("sbc.example.net".into());
    B2buaConfig {
        zones: vec![lan, wan],
        ..B2buaConfig::default()
    }
}

impl H {
    fn new() -> H {
        H::with(config())
    }

    fn with(cfg: B2buaConfig) -> H {
        let media = FakeMediaPort::new(&[("lan", "192.168.10.1"), ("wan", "198.51.100.1")]);
        H::with_port(cfg, Box::new(media.clone()), media)
    }

    fn with_port(cfg: B2buaConfig, port: Box<dyn MediaPort + Send>, media: FakeMediaPort) -> H {
        let tcfg = Config {
            seed: 0x5eed,
            ..Config::default()
        };
        H {
            tl: TransactionLayer::new(tcfg),
            b2b: B2bua::new(cfg, port),
            media,
            now: Instant::now(),
            sent: Vec::new(),
            inbox: Vec::new(),
            events: Vec::new(),
            unhandled: Vec::new(),
        }
    }

    /// The routing of the test: LAN callers go to the ITSP, WAN callers to the PBX.
    fn route(from: SocketAddr) -> (&'static str, RouteDecision) {
        if from.ip().to_string().starts_with("192.168.") {
            (
                "lan",
                RouteDecision {
                    target: "sip:+4930123456@itsp.example".into(),
                    next_hop: Destination {
                        remote: addr(ITSP),
                        flow: None,
                        reliable: false,
                    },
                    zone: "wan".into(),
                },
            )
        } else {
            (
                "wan",
                RouteDecision {
                    target: "sip:201@pbx.lan.example".into(),
                    next_hop: Destination {
                        remote: addr(PBX),
                        flow: None,
                        reliable: false,
                    },
                    zone: "lan".into(),
                },
            )
        }
    }

    fn pump(&mut self) {
        while let Some(o) = self.tl.poll_output() {
            match o {
                Output::Transmit { dest, bytes, .. } => {
                    let m = Message::parse(bytes).unwrap();
                    self.sent.push((dest, m.clone()));
                    self.inbox.push((dest, m));
                }
                Output::Event(ev) => {
                    let now = self.now;
                    if let Some(ev) = self.b2b.handle_tu_event(now, &mut self.tl, ev) {
                        match ev {
                            TuEvent::Request { id, msg, source }
                                if msg.method_str() == Some("INVITE")
                                    && msg.to().unwrap().unwrap().tag().is_none() =>
                            {
                                let (zone, route) = H::route(source.remote);
                                let _ = self.b2b.start_call(
                                    now,
                                    &mut self.tl,
                                    id,
                                    msg,
                                    source,
                                    zone,
                                    route,
                                );
                            }
                            other => self.unhandled.push(other),
                        }
                    }
                }
            }
            while let Some(e) = self.b2b.poll_event() {
                self.events.push(e);
            }
        }
        while let Some(e) = self.b2b.poll_event() {
            self.events.push(e);
        }
    }

    fn inject(&mut self, from: &str, text: &str) {
        let m = Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap();
        self.inject_msg(from, m);
    }

    fn inject_msg(&mut self, from: &str, m: Message) {
        let source = Source {
            remote: addr(from),
            flow: FlowId(if from == PBX { 1 } else { 2 }),
            reliable: false,
        };
        self.tl.handle_message(self.now, m, source);
        self.pump();
    }

    /// Runs the clock to `d` from now, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = match (self.tl.poll_timeout(), self.b2b.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.tl.handle_timeout(now);
                    self.b2b.handle_timeout(now, &mut self.tl);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Messages sent to `to` since the last take.
    fn take(&mut self, to: &str) -> Vec<Message> {
        let a = addr(to);
        let (mine, rest): (Vec<_>, Vec<_>) = self.inbox.drain(..).partition(|(d, _)| d.remote == a);
        self.inbox = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    /// The one message to `to` whose first line starts with `start` (others are dropped).
    fn expect(&mut self, to: &str, start: &str) -> Message {
        let all = self.take(to);
        let lines: Vec<String> = all.iter().map(first).collect();
        all.into_iter()
            .find(|m| first(m).starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} to {to}; got {lines:?}"))
    }

    fn wan_bytes(&self) -> Vec<String> {
        self.sent
            .iter()
            .filter(|(d, _)| d.remote.ip().to_string().starts_with("203.0.113."))
            .map(|(_, m)| String::from_utf8_lossy(m.as_bytes()).into_owned())
            .collect()
    }

    fn assert_hidden(&self) {
        let wan = self.wan_bytes();
        assert!(!wan.is_empty());
        for m in &wan {
            for s in LAN_SECRETS {
                assert!(
                    !m.to_ascii_lowercase().contains(&s.to_ascii_lowercase()),
                    "{s:?} leaked to the WAN in:\n{m}"
                );
            }
        }
    }

    fn ended(&self) -> Option<(EndCause, Option<u16>)> {
        self.events.iter().find_map(|e| match e {
            B2buaEvent::CallEnded { cause, status, .. } => Some((cause.clone(), *status)),
            _ => None,
        })
    }
}

fn first(m: &Message) -> String {
    String::from_utf8_lossy(m.slice(m.start_line_span()))
        .trim_end()
        .to_owned()
}

fn hv(m: &Message, name: HeaderName) -> String {
    String::from_utf8_lossy(m.header(name).unwrap_or(b"")).into_owned()
}

/// A response of a peer to `req`: Via, From, To (+tag), Call-ID, CSeq copied.
fn respond(req: &Message, status: &str, tag: &str, extra: &str, sdp: Option<&str>) -> Message {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for v in req.header_values(HeaderName::Via) {
        s += &format!("Via: {}\r\n", String::from_utf8_lossy(v));
    }
    s += &format!("From: {}\r\n", hv(req, HeaderName::From));
    let to = hv(req, HeaderName::To);
    if to.contains("tag=") {
        s += &format!("To: {to}\r\n");
    } else {
        s += &format!("To: {to};tag={tag}\r\n");
    }
    s += &format!("Call-ID: {}\r\n", hv(req, HeaderName::CallId));
    s += &format!("CSeq: {}\r\n", hv(req, HeaderName::CSeq));
    for l in extra.lines().filter(|l| !l.trim().is_empty()) {
        s += l.trim();
        s += "\r\n";
    }
    match sdp {
        Some(b) => {
            let b = b.replace('\n', "\r\n");
            s += &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => s += "Content-Length: 0\r\n\r\n",
    }
    Message::parse(Bytes::from(s)).unwrap()
}

/// An in-dialog request from a peer, built from the last message it got from sipwarden in
/// that dialog: `peer_is_uac` tells which of From/To is the peer's.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    target: &str,
    peer_is_uac: bool,
    seen: &Message,
    cseq: u32,
    via: &str,
    extra: &str,
    sdp: Option<&str>,
) -> String {
    let (from, to) = if peer_is_uac {
        (hv(seen, HeaderName::From), hv(seen, HeaderName::To))
    } else {
        (hv(seen, HeaderName::To), hv(seen, HeaderName::From))
    };
    let mut s = format!(
        "{method} {target} SIP/2.0\nVia: {via}\nMax-Forwards: 70\nFrom: {from}\nTo: {to}\nCall-ID: {}\nCSeq: {cseq} {method}\n",
        hv(seen, HeaderName::CallId)
    );
    for l in extra.lines().filter(|l| !l.trim().is_empty()) {
        s += l.trim();
        s += "\n";
    }
    match sdp {
        Some(b) => {
            s += &format!(
                "Content-Type: application/sdp\nContent-Length: {}\n\n{b}",
                b.replace('\n', "\r\n").len()
            );
        }
        None => s += "Content-Length: 0\n\n",
    }
    s
}

fn lan_sdp(ver: u32, dir: &str) -> String {
    format!(
        "v=0\no=pbx 1000 {ver} IN IP4 192.168.10.20\ns=-\nc=IN IP4 192.168.10.20\nt=0 0\n\
m=audio 10000 RTP/AVP 0 8\na=rtcp:10001 IN IP4 192.168.10.20\na=candidate:1 1 UDP 2130706431 192.168.10.20 10000 typ host\na={dir}\n"
    )
}

fn wan_sdp(ver: u32) -> String {
    format!(
        "v=0\no=itsp 2000 {ver} IN IP4 203.0.113.9\ns=-\nc=IN IP4 203.0.113.9\nt=0 0\nm=audio 40000 RTP/AVP 0\na=sendrecv\n"
    )
}

const LAN_HEADERS: &str = "Record-Route: <sip:192.168.10.5;lr>, <sip:proxy.pbx.lan.example;lr>
User-Agent: PBX-Internal/1.0 (pbx.lan.example)
P-Asserted-Identity: <sip:201@pbx.lan.example>
Alert-Info: <http://192.168.10.20/ring.wav>
Call-Info: <http://pbx.lan.example/photo.jpg>;purpose=icon
X-Internal-Route: 192.168.10.99
Reply-To: <sip:201@pbx.lan.example>
Organization: pbx.lan.example";

fn lan_invite(extra: &str, sdp: Option<&str>) -> String {
    let head = format!(
        "INVITE sip:+4930123456@itsp.example SIP/2.0
Via: SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan1;rport
Via: SIP/2.0/UDP pbx.lan.example:5070;branch=z9hG4bKlan0
Max-Forwards: 70
From: \"Alice\" <sip:201@pbx.lan.example>;tag=lanfrom1
To: <sip:+4930123456@itsp.example>
Call-ID: internal-callid-7f3a@192.168.10.20
CSeq: 10 INVITE
Contact: <sip:201@192.168.10.20:5060>
Allow: INVITE, ACK, BYE, CANCEL, UPDATE, PRACK
{LAN_HEADERS}
{extra}
"
    );
    let head: String = head
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    match sdp {
        Some(b) => format!(
            "{head}Content-Type: application/sdp\nContent-Length: {}\n\n{b}",
            b.replace('\n', "\r\n").len()
        ),
        None => format!("{head}Content-Length: 0\n\n"),
    }
}

/// LAN -> WAN call up to the 200 and the ACK. Returns (INVITE seen by the ITSP, 200 seen by
/// the PBX).
fn lan_call_up(h: &mut H, invite_extra: &str) -> (Message, Message) {
    h.inject(
        PBX,
        &lan_invite(invite_extra, Some(&lan_sdp(1, "sendrecv"))),
    );
    let inv = h.expect(ITSP, "INVITE sip:+4930123456@itsp.example");
    let ringing = respond(
        &inv,
        "180 Ringing",
        "wan1",
        "Contact: <sip:gw@203.0.113.5>",
        None,
    );
    h.inject_msg(ITSP, ringing);
    h.expect(PBX, "SIP/2.0 180");
    let ok = respond(
        &inv,
        "200 OK",
        "wan1",
        "Contact: <sip:gw@203.0.113.5>\nAllow: INVITE, ACK, BYE, UPDATE",
        Some(&wan_sdp(1)),
    );
    h.inject_msg(ITSP, ok);
    let ack = h.expect(ITSP, "ACK sip:gw@203.0.113.5");
    assert_eq!(
        ack.to().unwrap().unwrap().tag(),
        Some("wan1"),
        "ACK in leg B's dialog"
    );
    let ok_a = h.expect(PBX, "SIP/2.0 200");
    let lan_ack = in_dialog(
        "ACK",
        &msg::contact_uri(&ok_a).unwrap(),
        true,
        &ok_a,
        10,
        "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanack1",
        "",
        None,
    );
    h.inject(PBX, &lan_ack);
    assert!(
        h.take(ITSP).is_empty(),
        "A's ACK is not relayed (B was ACKed)"
    );
    (inv, ok_a)
}

#[test]
fn lan_to_wan_full_call_hides_the_lan() {
    let mut h = H::new();
    let (inv, ok_a) = lan_call_up(
        &mut h,
        "Supported: timer, 100rel, replaces\nSession-Expires: 1800",
    );
    // Leg B is a new dialog.
    assert_ne!(
        hv(&inv, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    assert_eq!(inv.cseq().unwrap().unwrap().seq, 1);
    assert_eq!(inv.max_forwards().unwrap().unwrap().0, 69);
    assert!(hv(&inv, HeaderName::From).contains("sip:201@sbc.example.net"));
    assert!(hv(&inv, HeaderName::Contact).contains("198.51.100.1"));
    assert_eq!(inv.vias().count(), 1);
    assert!(inv.header(HeaderName::RecordRoute).is_none());
    assert!(msg::has_tag(&inv, HeaderName::Supported, "timer"));
    assert!(!msg::has_tag(&inv, HeaderName::Supported, "replaces"));
    // SDP went through the media port, both ways.
    let body = String::from_utf8_lossy(inv.body()).into_owned();
    assert!(body.contains("c=IN IP4 198.51.100.1"), "{body}");
    let body_a = String::from_utf8_lossy(ok_a.body()).into_owned();
    assert!(body_a.contains("c=IN IP4 192.168.10.1"), "{body_a}");
    // Leg A keeps its own dialog: its Call-ID, its From tag, its Record-Route.
    assert_eq!(
        hv(&ok_a, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    assert!(hv(&ok_a, HeaderName::RecordRoute).contains("192.168.10.5"));
    assert!(hv(&ok_a, HeaderName::Contact).contains("192.168.10.1"));

    // re-INVITE from the LAN (hold).
    let target_a = msg::contact_uri(&ok_a).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan2",
            &format!("Contact: <sip:201@192.168.10.20:5060>\n{LAN_HEADERS}"),
            Some(&lan_sdp(2, "sendonly")),
        ),
    );
    let reinv = h.expect(ITSP, "INVITE sip:gw@203.0.113.5");
    assert_eq!(reinv.cseq().unwrap().unwrap().seq, 2);
    assert!(String::from_utf8_lossy(reinv.body()).contains("a=sendonly"));
    h.inject_msg(
        ITSP,
        respond(
            &reinv,
            "200 OK",
            "x",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(2)),
        ),
    );
    h.expect(ITSP, "ACK sip:gw@203.0.113.5");
    let ok2 = h.expect(PBX, "SIP/2.0 200");
    assert_eq!(ok2.cseq().unwrap().unwrap().seq, 11);
    h.inject(
        PBX,
        &in_dialog(
            "ACK",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan3",
            "",
            None,
        ),
    );

    // re-INVITE from the WAN (resume).
    let b_target = msg::contact_uri(&reinv).unwrap();
    h.inject(
        ITSP,
        &in_dialog(
            "INVITE",
            &b_target,
            false,
            &reinv,
            7,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan7",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(3)),
        ),
    );
    let reinv_a = h.expect(PBX, "INVITE sip:201@192.168.10.20:5060");
    h.inject_msg(
        PBX,
        respond(
            &reinv_a,
            "200 OK",
            "x",
            &format!("Contact: <sip:201@192.168.10.20:5060>\n{LAN_HEADERS}\nServer: PBX-Internal"),
            Some(&lan_sdp(3, "sendrecv")),
        ),
    );
    h.expect(PBX, "ACK sip:201@192.168.10.20:5060");
    let ok3 = h.expect(ITSP, "SIP/2.0 200");
    assert!(String::from_utf8_lossy(ok3.body()).contains("198.51.100.1"));

    // INFO from the LAN: the DTMF body crosses, the LAN headers do not.
    let info = in_dialog(
        "INFO",
        &target_a,
        true,
        &ok_a,
        12,
        "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan4",
        LAN_HEADERS,
        Some("Signal=5\nDuration=160\n"),
    )
    .replace("application/sdp", "application/dtmf-relay");
    h.inject(PBX, &info);
    let info = h.expect(ITSP, "INFO");
    assert!(String::from_utf8_lossy(info.body()).contains("Signal=5"));
    assert_eq!(hv(&info, HeaderName::ContentType), "application/dtmf-relay");
    h.inject_msg(ITSP, respond(&info, "200 OK", "x", "", None));
    h.expect(PBX, "SIP/2.0 200");

    // BYE from the LAN.
    h.inject(
        PBX,
        &in_dialog(
            "BYE",
            &target_a,
            true,
            &ok_a,
            13,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan5",
            "",
            None,
        ),
    );
    h.expect(PBX, "SIP/2.0 200");
    let bye = h.expect(ITSP, "BYE sip:gw@203.0.113.5");
    h.inject_msg(ITSP, respond(&bye, "200 OK", "x", "", None));
    assert_eq!(h.ended(), Some((EndCause::Hangup(LegSide::A), None)));
    assert_eq!(h.b2b.call_count(), 0);
    h.assert_hidden();
    assert!(h.unhandled.is_empty(), "{:?}", h.unhandled);
    // The history has both legs, both directions, in order.
    let hist = h
        .events
        .iter()
        .find_map(|e| match e {
            B2buaEvent::CallEnded { history, .. } => Some(history.clone()),
            _ => None,
        })
        .unwrap();
    assert!(hist.first().unwrap().first_line.starts_with("INVITE"));
    assert!(hist.iter().any(|e| e.leg == LegSide::B
        && e.direction == Direction::In
        && e.first_line.contains("180")));
    assert!(hist.len() >= 20, "{}", hist.len());
}

#[test]
fn wan_to_lan_full_call_hides_the_lan() {
    let mut h = H::new();
    let invite = format!(
        "INVITE sip:+4930999@198.51.100.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan1;rport
Max-Forwards: 70
From: <sip:+4917012345@itsp.example>;tag=wanfrom
To: <sip:+4930999@198.51.100.1>
Call-ID: wan-call-1@203.0.113.5
CSeq: 1 INVITE
Contact: <sip:gw@203.0.113.5>
Supported: timer
Content-Type: application/sdp
Content-Length: {}

{}",
        wan_sdp(1).replace('\n', "\r\n").len(),
        wan_sdp(1)
    );
    h.inject(ITSP, &invite);
    let inv_a = h.expect(PBX, "INVITE sip:201@pbx.lan.example");
    // The ITSP's data may reach the trusted LAN only in the From user part and the SDP.
    assert!(hv(&inv_a, HeaderName::From).contains("+4917012345@192.168.10.1"));
    let lan_extra =
        format!("Contact: <sip:201@192.168.10.20:5060>\n{LAN_HEADERS}\nServer: PBX-Internal");
    // A PBX may write its name into the reason phrase: only the standard one crosses.
    h.inject_msg(
        PBX,
        respond(
            &inv_a,
            "180 Ringing at pbx.lan.example",
            "lanto1",
            &lan_extra,
            None,
        ),
    );
    let r = h.expect(ITSP, "SIP/2.0 180");
    assert_eq!(first(&r), "SIP/2.0 180 Ringing");
    assert!(hv(&r, HeaderName::Contact).contains("198.51.100.1"));
    h.inject_msg(
        PBX,
        respond(
            &inv_a,
            "200 OK from 192.168.10.20",
            "lanto1",
            &lan_extra,
            Some(&lan_sdp(1, "sendrecv")),
        ),
    );
    h.expect(PBX, "ACK sip:201@192.168.10.20:5060");
    let ok = h.expect(ITSP, "SIP/2.0 200");
    assert_eq!(hv(&ok, HeaderName::CallId), "wan-call-1@203.0.113.5");
    let target = msg::contact_uri(&ok).unwrap();
    assert!(target.contains("198.51.100.1"));
    h.inject(
        ITSP,
        &in_dialog(
            "ACK",
            &target,
            true,
            &ok,
            1,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan2",
            "",
            None,
        ),
    );
    // re-INVITE from the ITSP, answered by the PBX.
    h.inject(
        ITSP,
        &in_dialog(
            "INVITE",
            &target,
            true,
            &ok,
            2,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan3",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(2)),
        ),
    );
    let re_a = h.expect(PBX, "INVITE");
    h.inject_msg(
        PBX,
        respond(
            &re_a,
            "200 OK",
            "x",
            &lan_extra,
            Some(&lan_sdp(2, "sendrecv")),
        ),
    );
    h.expect(PBX, "ACK");
    h.expect(ITSP, "SIP/2.0 200");
    h.inject(
        ITSP,
        &in_dialog(
            "ACK",
            &target,
            true,
            &ok,
            2,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan4",
            "",
            None,
        ),
    );
    // BYE from the PBX.
    let lan_target = "sip:192.168.10.1:5060";
    h.inject(
        PBX,
        &in_dialog(
            "BYE",
            lan_target,
            false,
            &re_a,
            5,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanbye",
            LAN_HEADERS,
            None,
        ),
    );
    h.expect(PBX, "SIP/2.0 200");
    let bye = h.expect(ITSP, "BYE sip:gw@203.0.113.5");
    h.inject_msg(ITSP, respond(&bye, "200 OK", "x", "", None));
    assert_eq!(h.ended(), Some((EndCause::Hangup(LegSide::B), None)));
    h.assert_hidden();
    // The retransmission timer of our 2xx stopped at the ACK: nothing more goes out.
    h.advance(Duration::from_secs(40));
    assert!(h
        .take(ITSP)
        .iter()
        .all(|m| !first(m).starts_with("SIP/2.0 200")));
}

#[test]
fn cancel_maps_to_cancel_and_487() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(ITSP, respond(&inv, "180 Ringing", "wan1", "", None));
    h.expect(PBX, "SIP/2.0 180");
    h.inject(
        PBX,
        "CANCEL sip:+4930123456@itsp.example SIP/2.0
Via: SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@pbx.lan.example>;tag=lanfrom1
To: <sip:+4930123456@itsp.example>
Call-ID: internal-callid-7f3a@192.168.10.20
CSeq: 10 CANCEL
Content-Length: 0

",
    );
    let to_pbx: Vec<String> = h.take(PBX).iter().map(first).collect();
    assert!(to_pbx.iter().any(|l| l == "SIP/2.0 200 OK"), "{to_pbx:?}");
    assert!(
        to_pbx.iter().any(|l| l.starts_with("SIP/2.0 487")),
        "{to_pbx:?}"
    );
    let cancel = h.expect(ITSP, "CANCEL sip:+4930123456@itsp.example");
    assert_eq!(
        hv(&cancel, HeaderName::CallId),
        hv(&inv, HeaderName::CallId)
    );
    h.inject_msg(ITSP, respond(&cancel, "200 OK", "wan1", "", None));
    h.inject_msg(
        ITSP,
        respond(&inv, "487 Request Terminated", "wan1", "", None),
    );
    h.expect(ITSP, "ACK");
    assert_eq!(h.ended(), Some((EndCause::Cancelled, Some(487))));
    h.assert_hidden();
    assert!(h.unhandled.is_empty(), "{:?}", h.unhandled);
}

#[test]
fn a_2xx_after_cancel_is_acked_and_hung_up() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(ITSP, respond(&inv, "180 Ringing", "wan1", "", None));
    h.inject(
        PBX,
        "CANCEL sip:+4930123456@itsp.example SIP/2.0
Via: SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan1;rport
From: \"Alice\" <sip:201@pbx.lan.example>;tag=lanfrom1
To: <sip:+4930123456@itsp.example>
Call-ID: internal-callid-7f3a@192.168.10.20
CSeq: 10 CANCEL
Content-Length: 0

",
    );
    h.take(ITSP);
    // The ITSP answered before the CANCEL arrived.
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "200 OK",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(1)),
        ),
    );
    let out: Vec<String> = h.take(ITSP).iter().map(first).collect();
    assert!(
        out.iter().any(|l| l.starts_with("ACK sip:gw@203.0.113.5")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.starts_with("BYE sip:gw@203.0.113.5")),
        "{out:?}"
    );
    h.assert_hidden();
}

#[test]
fn busy_is_mapped_with_status_and_reason() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "486 Busy Here",
            "wan1",
            "Retry-After: 30\nWarning: 399 203.0.113.5 \"x\"",
            None,
        ),
    );
    h.expect(ITSP, "ACK");
    let busy = h.expect(PBX, "SIP/2.0 486 Busy Here");
    assert_eq!(
        hv(&busy, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    assert_eq!(busy.header_by_name("Retry-After"), Some(&b"30"[..]));
    assert!(busy.header_by_name("Warning").is_none());
    assert_eq!(h.ended(), Some((EndCause::Rejected, Some(486))));
    assert_eq!(h.b2b.call_count(), 0);
    assert_eq!(h.media.live(), 0, "media released: {:?}", h.media.log());
}

#[test]
fn no_answer_from_b_is_408() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    h.expect(ITSP, "INVITE");
    h.advance(Duration::from_secs(33));
    let invites = h
        .take(ITSP)
        .iter()
        .filter(|m| first(m).starts_with("INVITE"))
        .count();
    assert!(invites >= 5, "Timer A retransmissions: {invites}");
    h.expect(PBX, "SIP/2.0 408");
    assert_eq!(h.ended(), Some((EndCause::NoAnswer, Some(408))));
}

#[test]
fn redirect_from_lan_does_not_reach_the_wan() {
    let mut h = H::new();
    let invite = format!(
        "INVITE sip:+4930999@198.51.100.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan1;rport
From: <sip:+4917012345@itsp.example>;tag=wanfrom
To: <sip:+4930999@198.51.100.1>
Call-ID: wan-call-2@203.0.113.5
CSeq: 1 INVITE
Contact: <sip:gw@203.0.113.5>
Content-Type: application/sdp
Content-Length: {}

{}",
        wan_sdp(1).replace('\n', "\r\n").len(),
        wan_sdp(1)
    );
    h.inject(ITSP, &invite);
    let inv_a = h.expect(PBX, "INVITE");
    h.inject_msg(
        PBX,
        respond(
            &inv_a,
            "302 Moved",
            "lanto1",
            "Contact: <sip:202@192.168.10.21>",
            None,
        ),
    );
    let r = h.expect(ITSP, "SIP/2.0 480");
    assert!(r.header(HeaderName::Contact).is_none());
    h.assert_hidden();
}

fn established_with_timers(h: &mut H, wan_se: &str) -> (Message, Message) {
    h.inject(
        PBX,
        &lan_invite(
            "Supported: timer\nSession-Expires: 90",
            Some(&lan_sdp(1, "sendrecv")),
        ),
    );
    let inv = h.expect(ITSP, "INVITE");
    assert!(hv(&inv, HeaderName::SessionExpires).starts_with("90"));
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "200 OK",
            "wan1",
            &format!("Contact: <sip:gw@203.0.113.5>\n{wan_se}"),
            Some(&wan_sdp(1)),
        ),
    );
    h.expect(ITSP, "ACK");
    let ok_a = h.expect(PBX, "SIP/2.0 200");
    let ack = in_dialog(
        "ACK",
        &msg::contact_uri(&ok_a).unwrap(),
        true,
        &ok_a,
        10,
        "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanack",
        "",
        None,
    );
    h.inject(PBX, &ack);
    (inv, ok_a)
}

#[test]
fn session_without_refresh_is_torn_down_both_ways() {
    let mut h = H::new();
    let (_inv, ok_a) =
        established_with_timers(&mut h, "Session-Expires: 90;refresher=uas\nRequire: timer");
    // A supports timers: it is told to refresh.
    assert_eq!(hv(&ok_a, HeaderName::SessionExpires), "90;refresher=uac");
    assert!(msg::has_tag(&ok_a, HeaderName::Require, "timer"));
    h.advance(Duration::from_secs(59));
    assert!(h.take(PBX).is_empty() && h.take(ITSP).is_empty());
    assert!(h.ended().is_none());
    h.advance(Duration::from_secs(2));
    let bye_a = h.expect(PBX, "BYE sip:201@192.168.10.20:5060");
    let bye_b = h.expect(ITSP, "BYE sip:gw@203.0.113.5");
    assert!(hv(&bye_b, HeaderName::Reason).contains("session timer"));
    assert!(matches!(
        h.ended(),
        Some((EndCause::SessionTimerExpired(_), None))
    ));
    h.inject_msg(PBX, respond(&bye_a, "200 OK", "x", "", None));
    h.inject_msg(ITSP, respond(&bye_b, "200 OK", "x", "", None));
    h.assert_hidden();
}

#[test]
fn sipwarden_refreshes_a_leg_whose_peer_has_no_timer() {
    let mut h = H::new();
    // The ITSP ignores timers (no Session-Expires in its 2xx); UPDATE is in its Allow.
    let (_inv, ok_a) = established_with_timers(&mut h, "Allow: INVITE, ACK, BYE, UPDATE");
    assert_eq!(hv(&ok_a, HeaderName::SessionExpires), "90;refresher=uac");
    for round in 0..3 {
        h.advance(Duration::from_secs(45));
        let upd = h.expect(ITSP, "UPDATE sip:gw@203.0.113.5");
        assert!(hv(&upd, HeaderName::SessionExpires).contains("refresher=uac"));
        h.inject_msg(
            ITSP,
            respond(
                &upd,
                "200 OK",
                "x",
                "Session-Expires: 90;refresher=uac",
                None,
            ),
        );
        // The PBX refreshes leg A itself with re-INVITEs.
        h.inject(
            PBX,
            &in_dialog(
                "INVITE",
                &msg::contact_uri(&ok_a).unwrap(),
                true,
                &ok_a,
                20 + round,
                &format!("SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanref{round}"),
                "Contact: <sip:201@192.168.10.20:5060>\nSupported: timer\nSession-Expires: 90;refresher=uac",
                Some(&lan_sdp(1, "sendrecv")),
            ),
        );
        let re = h.expect(ITSP, "INVITE");
        h.inject_msg(ITSP, respond(&re, "200 OK", "x", "", Some(&wan_sdp(1))));
        h.expect(ITSP, "ACK");
        let ok = h.expect(PBX, "SIP/2.0 200");
        h.inject(
            PBX,
            &in_dialog(
                "ACK",
                &msg::contact_uri(&ok_a).unwrap(),
                true,
                &ok_a,
                20 + round,
                &format!("SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanrefack{round}"),
                "",
                None,
            ),
        );
        let _ = ok;
    }
    assert!(h.ended().is_none(), "{:?}", h.events);
    assert_eq!(h.b2b.call_count(), 1);
    h.assert_hidden();
}

#[test]
fn glare_on_reinvite_gets_491() {
    let mut h = H::new();
    let (inv, ok_a) = lan_call_up(&mut h, "");
    let target_a = msg::contact_uri(&ok_a).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlang1",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(2, "sendonly")),
        ),
    );
    let reinv = h.expect(ITSP, "INVITE");
    // The ITSP sends its own re-INVITE at the same time.
    let b_target = msg::contact_uri(&reinv).unwrap();
    h.inject(
        ITSP,
        &in_dialog(
            "INVITE",
            &b_target,
            false,
            &inv_with_tag(&inv, "wan1"),
            5,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwang",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(5)),
        ),
    );
    let r = h.expect(ITSP, "SIP/2.0 491");
    assert_eq!(r.cseq().unwrap().unwrap().seq, 5);
    assert!(h.take(PBX).iter().all(|m| !first(m).starts_with("INVITE")));
    // The first re-INVITE completes normally.
    h.inject_msg(ITSP, respond(&reinv, "200 OK", "x", "", Some(&wan_sdp(2))));
    h.expect(PBX, "SIP/2.0 200");
    // And a 491 from B on a later re-INVITE reaches A as it is.
    h.inject(
        PBX,
        &in_dialog(
            "ACK",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlang2",
            "",
            None,
        ),
    );
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &target_a,
            true,
            &ok_a,
            12,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlang3",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(3, "sendrecv")),
        ),
    );
    let reinv2 = h.expect(ITSP, "INVITE");
    h.inject_msg(ITSP, respond(&reinv2, "491 Request Pending", "x", "", None));
    h.expect(PBX, "SIP/2.0 491");
    assert_eq!(h.b2b.call_count(), 1, "a 491 does not end the call");
    h.assert_hidden();
}

/// The INVITE as the ITSP's dialog view: To with its tag.
fn inv_with_tag(inv: &Message, tag: &str) -> Message {
    let s = String::from_utf8_lossy(inv.as_bytes()).into_owned();
    let to = hv(inv, HeaderName::To);
    let s = s.replacen(&format!("To: {to}"), &format!("To: {to};tag={tag}"), 1);
    Message::parse(Bytes::from(s)).unwrap()
}

#[test]
fn prack_is_mapped_per_leg() {
    let mut h = H::new();
    h.inject(
        PBX,
        &lan_invite("Supported: 100rel, timer", Some(&lan_sdp(1, "sendrecv"))),
    );
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "183 Session Progress",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>\nRequire: 100rel\nRSeq: 77",
            Some(&wan_sdp(1)),
        ),
    );
    let p = h.expect(PBX, "SIP/2.0 183");
    assert!(msg::has_tag(&p, HeaderName::Require, "100rel"));
    assert_eq!(msg::rseq(&p), Some(1));
    assert!(String::from_utf8_lossy(p.body()).contains("192.168.10.1"));
    // Not PRACKed yet: retransmitted (T1, 2*T1...).
    h.advance(Duration::from_millis(600));
    h.expect(PBX, "SIP/2.0 183");
    let target_a = msg::contact_uri(&p).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "PRACK",
            &target_a,
            true,
            &p,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanprack",
            "RAck: 1 10 INVITE",
            None,
        ),
    );
    let prack = h.expect(ITSP, "PRACK sip:gw@203.0.113.5");
    assert_eq!(msg::rack(&prack), Some((77, 1)));
    assert_eq!(prack.cseq().unwrap().unwrap().seq, 2);
    h.inject_msg(ITSP, respond(&prack, "200 OK", "x", "", None));
    let ok = h.expect(PBX, "SIP/2.0 200");
    assert_eq!(ok.cseq().unwrap().unwrap().method_str, "PRACK");
    // PRACKed: no more retransmissions.
    h.advance(Duration::from_secs(3));
    assert!(h
        .take(PBX)
        .iter()
        .all(|m| !first(m).starts_with("SIP/2.0 183")));
    h.assert_hidden();
}

#[test]
fn reliable_provisional_for_a_caller_without_100rel_is_pracked_locally() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "183 Session Progress",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>\nRequire: 100rel\nRSeq: 5",
            Some(&wan_sdp(1)),
        ),
    );
    let prack = h.expect(ITSP, "PRACK");
    assert_eq!(msg::rack(&prack), Some((5, 1)));
    let p = h.expect(PBX, "SIP/2.0 183");
    assert!(p.header(HeaderName::RSeq).is_none());
    assert!(!msg::has_tag(&p, HeaderName::Require, "100rel"));
}

#[test]
fn unknown_required_extension_is_420() {
    let mut h = H::new();
    h.inject(
        PBX,
        &lan_invite("Require: replaces", Some(&lan_sdp(1, "sendrecv"))),
    );
    let r = h.expect(PBX, "SIP/2.0 420");
    assert_eq!(r.header_by_name("Unsupported"), Some(&b"replaces"[..]));
    assert!(h.take(ITSP).is_empty());
}

#[test]
fn sdp_the_media_port_refuses_is_488() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some("not sdp at all\n")));
    h.expect(PBX, "SIP/2.0 488");
    assert!(h.take(ITSP).is_empty());
}

#[test]
fn history_is_bounded() {
    let mut cfg = config();
    cfg.history_limit = 4;
    let mut h = H::with(cfg);
    lan_call_up(&mut h, "");
    let call = h.b2b.calls()[0];
    let hist = h.b2b.history(call).unwrap();
    assert_eq!(hist.len(), 4);
    assert_eq!(
        hist.last().unwrap().first_line,
        "ACK sip:192.168.10.1:5060 SIP/2.0"
    );
}

#[test]
fn lost_ack_ends_the_call() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "200 OK",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(1)),
        ),
    );
    h.advance(Duration::from_secs(40));
    let oks = h
        .take(PBX)
        .iter()
        .filter(|m| first(m).starts_with("SIP/2.0 200"))
        .count();
    assert!(oks >= 7, "2xx retransmitted until 64*T1: {oks}");
    assert_eq!(h.ended(), Some((EndCause::NoAck(LegSide::A), None)));
    h.expect(ITSP, "BYE");
}

#[test]
fn the_leak_check_sees_what_a_whitelist_lets_through() {
    // Allowing User-Agent is an administrator's exception: then the PBX's string crosses,
    // and the check that guards every other test reports it.
    let mut cfg = config();
    cfg.pass_user_agent = true;
    let mut h = H::with(cfg);
    lan_call_up(&mut h, "");
    assert!(h.wan_bytes().iter().any(|m| m.contains("PBX-Internal")));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.assert_hidden()));
    assert!(r.is_err());
}

#[test]
fn offerless_reinvite_defers_the_ack_until_the_answer() {
    let mut h = H::new();
    let (_inv, ok_a) = lan_call_up(&mut h, "");
    let target_a = msg::contact_uri(&ok_a).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanol",
            "Contact: <sip:201@192.168.10.20:5060>",
            None,
        ),
    );
    let reinv = h.expect(ITSP, "INVITE");
    assert!(reinv.body().is_empty());
    // The ITSP offers in its 2xx.
    h.inject_msg(ITSP, respond(&reinv, "200 OK", "x", "", Some(&wan_sdp(2))));
    assert!(h.take(ITSP).is_empty(), "no ACK before A answers");
    let ok = h.expect(PBX, "SIP/2.0 200");
    assert!(String::from_utf8_lossy(ok.body()).contains("c=IN IP4 192.168.10.1"));
    h.inject(
        PBX,
        &in_dialog(
            "ACK",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanolack",
            "",
            Some(&lan_sdp(2, "sendrecv")),
        ),
    );
    let ack = h.expect(ITSP, "ACK sip:gw@203.0.113.5");
    assert_eq!(ack.cseq().unwrap().unwrap().seq, 2);
    assert!(String::from_utf8_lossy(ack.body()).contains("c=IN IP4 198.51.100.1"));
    let log = h.media.log();
    assert_eq!(&log[log.len() - 2..], &[("offer", 1), ("answer", 1)]);
    h.assert_hidden();
}

#[test]
fn second_fork_2xx_is_acked_and_hung_up() {
    let mut h = H::new();
    let (inv, _ok_a) = lan_call_up(&mut h, "");
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "200 OK",
            "fork2",
            "Contact: <sip:gw2@203.0.113.5>",
            Some(&wan_sdp(1)),
        ),
    );
    let out: Vec<String> = h.take(ITSP).iter().map(first).collect();
    assert!(
        out.iter().any(|l| l.starts_with("ACK sip:gw2@203.0.113.5")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.starts_with("BYE sip:gw2@203.0.113.5")),
        "{out:?}"
    );
    assert!(h.take(PBX).is_empty(), "A sees one dialog");
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn bye_releases_media_and_reports_the_cdr() {
    let mut h = H::new();
    let (inv, _ok_a) = lan_call_up(&mut h, "");
    assert_eq!(h.media.live(), 1);
    h.inject(
        ITSP,
        &in_dialog(
            "BYE",
            "sip:198.51.100.1:5060",
            false,
            &inv_with_tag(&inv, "wan1"),
            3,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanbye",
            "",
            None,
        ),
    );
    h.expect(ITSP, "SIP/2.0 200");
    let bye = h.expect(PBX, "BYE sip:201@192.168.10.20:5060");
    // Leg A's route set (its Record-Route) is used on leg A only.
    assert!(hv(&bye, HeaderName::Route).contains("192.168.10.5"));
    assert_eq!(
        hv(&bye, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    assert_eq!(h.media.live(), 0);
    let kinds: Vec<&str> = h
        .events
        .iter()
        .map(|e| match e {
            B2buaEvent::CallStarted { .. } => "start",
            B2buaEvent::CallAnswered { .. } => "answer",
            B2buaEvent::CallEnded { .. } => "end",
            B2buaEvent::Dropped { .. } => "dropped",
        })
        .collect();
    assert_eq!(kinds, ["start", "answer", "end"]);
    assert_eq!(h.ended(), Some((EndCause::Hangup(LegSide::B), None)));
    h.assert_hidden();
}

/// The same call with the real relay: sockets on loopback, SDP addresses advertised as the
/// zones' public ones.
#[cfg(feature = "media-relay")]
#[test]
fn full_call_through_the_real_media_relay() {
    use media_relay::{LatchMode, LatchPolicy, MediaRelay, RelayConfig, ZoneConfig};
    use std::sync::Arc;
    let zone = |name: &str, adv: &str, min: u16| ZoneConfig {
        name: name.into(),
        bind: "127.0.0.1".parse().unwrap(),
        advertise: Some(adv.parse().unwrap()),
        port_min: min,
        port_max: min + 99,
        latch: LatchPolicy {
            mode: LatchMode::Nat,
            relatch_after_silence: None,
        },
    };
    let rcfg = RelayConfig {
        zones: vec![
            zone("lan", "192.168.10.1", 43100),
            zone("wan", "198.51.100.1", 43200),
        ],
        workers: 1,
        ..RelayConfig::default()
    };
    let (relay, _events) = MediaRelay::start(&rcfg).unwrap();
    let relay = Arc::new(relay);
    let mut h = H::with_port(config(), Box::new(relay.clone()), FakeMediaPort::default());
    let (inv, ok_a) = lan_call_up(&mut h, "");
    let sdp_b = String::from_utf8_lossy(inv.body()).into_owned();
    assert!(sdp_b.contains("c=IN IP4 198.51.100.1"), "{sdp_b}");
    assert!(sdp_b.contains("m=audio 432"), "{sdp_b}");
    let sdp_a = String::from_utf8_lossy(ok_a.body()).into_owned();
    assert!(sdp_a.contains("m=audio 431"), "{sdp_a}");
    h.inject(
        PBX,
        &in_dialog(
            "BYE",
            &msg::contact_uri(&ok_a).unwrap(),
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanrb",
            "",
            None,
        ),
    );
    h.expect(ITSP, "BYE");
    h.assert_hidden();
    // Released: the session is unknown to the relay now.
    assert!(relay.stats(media_relay::SessionId(1)).is_err());
}

#[test]
fn retransmitted_2xx_gets_the_ack_again_and_nothing_else() {
    let mut h = H::new();
    let (inv, _ok_a) = lan_call_up(&mut h, "");
    let ok = respond(
        &inv,
        "200 OK",
        "wan1",
        "Contact: <sip:gw@203.0.113.5>",
        Some(&wan_sdp(1)),
    );
    h.inject_msg(ITSP, ok);
    let out: Vec<String> = h.take(ITSP).iter().map(first).collect();
    assert_eq!(out, ["ACK sip:gw@203.0.113.5 SIP/2.0"]);
    assert!(h.take(PBX).is_empty());
    assert_eq!(
        h.media
            .log()
            .iter()
            .filter(|(op, _)| *op == "answer")
            .count(),
        1
    );
}

#[test]
fn a_2xx_retransmitted_after_the_call_ended_is_not_byed_twice() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    h.inject_msg(ITSP, respond(&inv, "180 Ringing", "wan1", "", None));
    h.inject(
        PBX,
        "CANCEL sip:+4930123456@itsp.example SIP/2.0
Via: SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan1;rport
From: \"Alice\" <sip:201@pbx.lan.example>;tag=lanfrom1
To: <sip:+4930123456@itsp.example>
Call-ID: internal-callid-7f3a@192.168.10.20
CSeq: 10 CANCEL
Content-Length: 0

",
    );
    h.take(ITSP);
    let ok = respond(
        &inv,
        "200 OK",
        "wan1",
        "Contact: <sip:gw@203.0.113.5>",
        Some(&wan_sdp(1)),
    );
    h.inject_msg(ITSP, ok.clone());
    let first_time: Vec<String> = h.take(ITSP).iter().map(first).collect();
    assert_eq!(first_time.len(), 2, "{first_time:?}");
    h.inject_msg(ITSP, ok);
    let again: Vec<String> = h.take(ITSP).iter().map(first).collect();
    assert_eq!(again, ["ACK sip:gw@203.0.113.5 SIP/2.0"]);
}

#[test]
fn sipwarden_refreshes_a_caller_without_timer_support() {
    let mut h = H::new();
    h.inject(PBX, &lan_invite("", Some(&lan_sdp(1, "sendrecv"))));
    let inv = h.expect(ITSP, "INVITE");
    // Our default interval is asked for on leg B.
    assert!(hv(&inv, HeaderName::SessionExpires).starts_with("1800"));
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "200 OK",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>\nSession-Expires: 120;refresher=uas\nRequire: timer",
            Some(&wan_sdp(1)),
        ),
    );
    let ok_a = h.expect(PBX, "SIP/2.0 200");
    assert_eq!(hv(&ok_a, HeaderName::SessionExpires), "120;refresher=uas");
    assert!(!msg::has_tag(&ok_a, HeaderName::Require, "timer"));
    h.inject(
        PBX,
        &in_dialog(
            "ACK",
            &msg::contact_uri(&ok_a).unwrap(),
            true,
            &ok_a,
            10,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanack",
            "",
            None,
        ),
    );
    h.take(ITSP);
    h.advance(Duration::from_secs(60));
    // The PBX allows UPDATE: the refresh is an UPDATE on leg A, nothing on leg B.
    let upd = h.expect(PBX, "UPDATE sip:201@192.168.10.20:5060");
    assert_eq!(
        hv(&upd, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    assert!(h.take(ITSP).is_empty());
    h.inject_msg(PBX, respond(&upd, "200 OK", "x", "", None));
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn update_with_sdp_and_options_are_relayed() {
    let mut h = H::new();
    let (inv, _ok_a) = lan_call_up(&mut h, "");
    let b_view = inv_with_tag(&inv, "wan1");
    h.inject(
        ITSP,
        &in_dialog(
            "UPDATE",
            "sip:198.51.100.1:5060",
            false,
            &b_view,
            3,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanupd",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(2)),
        ),
    );
    let upd = h.expect(PBX, "UPDATE sip:201@192.168.10.20:5060");
    assert!(String::from_utf8_lossy(upd.body()).contains("c=IN IP4 192.168.10.1"));
    h.inject_msg(
        PBX,
        respond(
            &upd,
            "200 OK",
            "x",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(2, "sendrecv")),
        ),
    );
    let ok = h.expect(ITSP, "SIP/2.0 200");
    assert_eq!(ok.cseq().unwrap().unwrap().seq, 3);
    assert!(String::from_utf8_lossy(ok.body()).contains("c=IN IP4 198.51.100.1"));
    h.inject(
        ITSP,
        &in_dialog(
            "OPTIONS",
            "sip:198.51.100.1:5060",
            false,
            &b_view,
            4,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanopt",
            "Accept: application/sdp",
            None,
        ),
    );
    let opt = h.expect(PBX, "OPTIONS sip:201@192.168.10.20:5060");
    assert_eq!(hv(&opt, HeaderName::Accept), "application/sdp");
    h.inject_msg(
        PBX,
        respond(
            &opt,
            "200 OK",
            "x",
            &format!("{LAN_HEADERS}\nAllow: INVITE, BYE"),
            None,
        ),
    );
    let r = h.expect(ITSP, "SIP/2.0 200");
    assert_eq!(hv(&r, HeaderName::Allow), "INVITE, BYE");
    h.assert_hidden();
}

#[test]
fn media_timeout_ends_the_call_both_ways() {
    let mut h = H::new();
    lan_call_up(&mut h, "");
    let now = h.now;
    h.b2b.media_timeout(now, &mut h.tl, MediaSessionId(1));
    h.pump();
    h.expect(PBX, "BYE");
    let bye = h.expect(ITSP, "BYE");
    assert!(hv(&bye, HeaderName::Reason).contains("media timeout"));
    assert!(matches!(h.ended(), Some((EndCause::Media(_), None))));
    assert_eq!(h.media.live(), 0);
}

#[test]
fn retransmitted_2xx_of_a_relayed_reinvite_is_only_acked() {
    let mut h = H::new();
    let (_inv, ok_a) = lan_call_up(&mut h, "");
    let target_a = msg::contact_uri(&ok_a).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanrr",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(2, "sendonly")),
        ),
    );
    let reinv = h.expect(ITSP, "INVITE");
    let ok = respond(&reinv, "200 OK", "x", "", Some(&wan_sdp(2)));
    h.inject_msg(ITSP, ok.clone());
    h.expect(ITSP, "ACK");
    h.expect(PBX, "SIP/2.0 200");
    let answers = h.media.log().len();
    h.inject_msg(ITSP, ok);
    let out: Vec<String> = h.take(ITSP).iter().map(first).collect();
    assert_eq!(out, ["ACK sip:gw@203.0.113.5 SIP/2.0"]);
    assert!(h.take(PBX).is_empty());
    assert_eq!(h.media.log().len(), answers);
}

#[test]
fn refresh_loops_do_not_grow_the_timer_heap() {
    let mut h = H::new();
    let (inv, _ok_a) = lan_call_up(&mut h, "Supported: timer\nSession-Expires: 1800");
    let b_view = inv_with_tag(&inv, "wan1");
    for i in 0..500u32 {
        h.inject(
            ITSP,
            &in_dialog(
                "UPDATE",
                "sip:198.51.100.1:5060",
                false,
                &b_view,
                10 + i,
                &format!("SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanloop{i}"),
                "Session-Expires: 1800",
                None,
            ),
        );
        let upd = h.expect(PBX, "UPDATE");
        h.inject_msg(PBX, respond(&upd, "200 OK", "x", "", None));
        h.expect(ITSP, "SIP/2.0 200");
    }
    assert!(
        h.b2b.timer_entries() <= 64 + 16 + 4,
        "{}",
        h.b2b.timer_entries()
    );
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn asserted_identity_crosses_mapped_when_the_policy_allows_it() {
    let mut cfg = config();
    cfg.pass_asserted_identity = true;
    let mut h = H::with(cfg);
    h.inject(
        PBX,
        &lan_invite("Privacy: id", Some(&lan_sdp(1, "sendrecv"))),
    );
    let inv = h.expect(ITSP, "INVITE");
    assert_eq!(
        hv(&inv, HeaderName::PAssertedIdentity),
        "<sip:201@sbc.example.net>"
    );
    assert_eq!(hv(&inv, HeaderName::Privacy), "id");
    h.assert_hidden();
    // Off by default.
    let mut h = H::new();
    h.inject(
        PBX,
        &lan_invite("Privacy: id", Some(&lan_sdp(1, "sendrecv"))),
    );
    let inv = h.expect(ITSP, "INVITE");
    assert!(inv.header(HeaderName::PAssertedIdentity).is_none());
    assert!(inv.header(HeaderName::Privacy).is_none());
}

mod legs;
mod transfer;
