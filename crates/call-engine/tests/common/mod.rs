//! Test harness: one engine, a simulated clock, and phones that are just addresses. Messages the
//! engine sends are collected (parsed) with their destination; tests answer them by hand.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use call_engine::{
    Destination, Engine, EngineConfig, Event, FlowId, Listener, LocalIdentity, Output, Source,
    Transport,
};
use sip_message::{Editor, HeaderName, Message};
use store::{MemoryStore, RegistrationStore};

pub const SBC: &str = "198.51.100.1:5060";
pub const ALICE1: &str = "192.0.2.10:5060";
pub const ALICE2: &str = "192.0.2.11:5060";
pub const ALICE3: &str = "192.0.2.12:5060";
pub const CALLER: &str = "192.0.2.20:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A UDP source; the flow id is derived from the port so that it is stable per phone.
pub fn udp(s: &str) -> Source {
    let a = addr(s);
    let flow = match a.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)) << 16 | u64::from(a.port()),
        std::net::IpAddr::V6(_) => u64::from(a.port()),
    };
    Source {
        remote: a,
        flow: FlowId(flow),
        reliable: false,
    }
}

pub fn config() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.registrar.domains = vec!["example.com".into()];
    cfg.identity = LocalIdentity {
        hostnames: vec!["sbc.example.com".into()],
        listeners: vec![
            Listener::new(Transport::Udp, addr(SBC)),
            Listener::new(Transport::Tcp, addr(SBC)),
        ],
        record_route: None,
    };
    cfg.seed = 7;
    cfg
}

/// 2026-01-01T00:00:00Z, so that the Date header is predictable.
pub fn wall_start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub struct H {
    pub engine: Engine,
    pub store: Arc<MemoryStore>,
    pub start: Instant,
    pub now: Instant,
    pub sent: Vec<(Destination, Message)>,
    pub events: Vec<Event>,
    seq: u64,
}

impl H {
    pub fn new() -> H {
        H::with(config(), |e| e)
    }

    pub fn with(cfg: EngineConfig, f: impl FnOnce(Engine) -> Engine) -> H {
        let store = Arc::new(MemoryStore::new());
        let now = Instant::now();
        let dyn_store: Arc<dyn RegistrationStore> = store.clone();
        let engine = f(Engine::new(cfg, dyn_store, now, wall_start()));
        H {
            engine,
            store,
            start: now,
            now,
            sent: Vec::new(),
            events: Vec::new(),
            seq: 0,
        }
    }

    /// Feeds a message as if it came from `from`, then drains.
    pub fn send(&mut self, text: &str, from: &str) {
        let msg = Message::parse(text.as_bytes().to_vec()).expect("test message parses");
        self.engine.handle_incoming(self.now, msg, udp(from));
        self.drain();
    }

    pub fn send_msg(&mut self, msg: Message, from: &str) {
        self.engine.handle_incoming(self.now, msg, udp(from));
        self.drain();
    }

    pub fn drain(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Transmit { dest, bytes, .. } => {
                    let m = Message::parse(bytes).expect("engine output parses");
                    self.sent.push((dest, m));
                }
                Output::Event(e) => self.events.push(e),
                // These engines run without protection: nothing asks RADIUS.
                Output::AuthRequest { .. } => panic!("no RADIUS in these tests"),
            }
        }
    }

    /// Runs every timer due within `d`, then sets the clock to `now + d`.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.engine.poll_timeout() {
            if t > until {
                break;
            }
            self.now = t.max(self.now);
            self.engine.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    /// Everything sent since the last call.
    pub fn take(&mut self) -> Vec<(Destination, Message)> {
        std::mem::take(&mut self.sent)
    }

    /// Takes what was sent to `to` (others stay).
    pub fn take_to(&mut self, to: &str) -> Vec<Message> {
        let a = addr(to);
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|(d, _)| d.remote == a);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    /// The one response sent to `to` (ignoring 100 Trying), panicking otherwise.
    pub fn response_to(&mut self, to: &str) -> Message {
        let v: Vec<Message> = self
            .take_to(to)
            .into_iter()
            .filter(|m| m.status().is_some_and(|s| s != 100))
            .collect();
        assert_eq!(v.len(), 1, "responses to {to}: {:?}", lines(&v));
        v.into_iter().next().unwrap()
    }

    /// The one request sent to `to` with this method.
    pub fn request_to(&mut self, to: &str, method: &str) -> Message {
        let a = addr(to);
        let i = self
            .sent
            .iter()
            .position(|(d, m)| d.remote == a && m.method_str() == Some(method))
            .unwrap_or_else(|| {
                panic!(
                    "no {method} to {to}; sent: {:?}",
                    self.sent
                        .iter()
                        .map(|(d, m)| (d.remote, first_line(m)))
                        .collect::<Vec<_>>()
                )
            });
        self.sent.remove(i).1
    }

    pub fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// REGISTER for `user@example.com` from `from` with the given Contact values.
    pub fn register(
        &mut self,
        user: &str,
        from: &str,
        contacts: &[&str],
        call_id: &str,
        cseq: u32,
        extra: &str,
    ) {
        let text = register_text(user, from, contacts, call_id, cseq, extra, self.next_id());
        self.send(&text, from);
    }

    pub fn events_matching(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

pub fn first_line(m: &Message) -> String {
    let b = m.as_bytes();
    let end = b.iter().position(|c| *c == b'\r').unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub fn lines(v: &[Message]) -> Vec<String> {
    v.iter().map(first_line).collect()
}

pub fn register_text(
    user: &str,
    from: &str,
    contacts: &[&str],
    call_id: &str,
    cseq: u32,
    extra: &str,
    n: u64,
) -> String {
    let mut s = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bKreg{n}\r\n\
Max-Forwards: 70\r\n\
To: <sip:{user}@example.com>\r\n\
From: <sip:{user}@example.com>;tag=r{n}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n"
    );
    for c in contacts {
        s.push_str(&format!("Contact: {c}\r\n"));
    }
    s.push_str(extra);
    s.push_str("Content-Length: 0\r\n\r\n");
    s
}

/// An INVITE from the caller at `from` to `ruri`.
pub fn invite_text(ruri: &str, from: &str, call_id: &str, branch: &str, extra: &str) -> String {
    request_text("INVITE", ruri, from, call_id, branch, 1, extra)
}

pub fn request_text(
    method: &str,
    ruri: &str,
    from: &str,
    call_id: &str,
    branch: &str,
    cseq: u32,
    extra: &str,
) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch={branch}\r\n\
Max-Forwards: 70\r\n\
To: <{ruri}>\r\n\
From: <sip:carol@elsewhere.test>;tag=c1\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:carol@{from}>\r\n\
{extra}Content-Length: 0\r\n\r\n"
    )
}

/// A response to `req` as a UAS would send it (all Vias copied, a To tag).
pub fn reply(
    req: &Message,
    status: u16,
    reason: &str,
    tag: &str,
    extra: &[(&str, &str)],
) -> Message {
    let tag = (status > 100).then_some(tag);
    let base = sip_transaction::response_for(req, status, reason, tag).unwrap();
    if extra.is_empty() {
        return base;
    }
    let mut ed = Editor::new(&base);
    for (n, v) in extra {
        ed.add_header(*n, v).unwrap();
    }
    Message::parse(ed.finish()).unwrap()
}

pub fn header(m: &Message, name: &str) -> Option<String> {
    m.header_by_name(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn headers(m: &Message, name: HeaderName) -> Vec<String> {
    m.header_values(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}
