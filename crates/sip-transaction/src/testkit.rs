//! A test kit with simulated time: two [`TransactionLayer`]s wired through seeded in-memory
//! links that lose, duplicate, delay and reorder datagrams, and a fake clock that jumps to the
//! next deadline (a timer of either layer, a datagram's arrival, or a timer of the test's own
//! TU). A whole call with retransmissions and timeouts runs in microseconds, and the same seed
//! gives the same trace.
//!
//! Modelled on quinn-proto's `tests/util.rs` `Pair`/`drive()` and str0m's netem. Public so
//! that the layers above (the call engine) can reuse it in their tests.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::Message;

use crate::{
    response_for, ClientTxId, Config, Destination, FlowId, Output, ResponseError, ServerTxId,
    Source, TransactionLayer, TuEvent, TxId,
};

/// splitmix64: small, seeded, good enough for a network emulator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// What a link does to datagrams.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub latency: Duration,
    /// Extra delay, uniform in [0, jitter).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back long enough for later ones to overtake it.
    pub reorder: f64,
    pub seed: u64,
}

impl LinkConfig {
    /// 10 ms, nothing lost: also the model of a reliable (stream) transport, which delivers in
    /// order.
    pub fn perfect() -> LinkConfig {
        LinkConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            seed: 0,
        }
    }

    /// Loses `loss` of the datagrams, duplicates and reorders some, with jitter.
    pub fn lossy(loss: f64, seed: u64) -> LinkConfig {
        LinkConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            loss,
            duplicate: 0.05,
            reorder: 0.05,
            seed,
        }
    }

    /// Loses everything (to watch timers run out).
    pub fn black_hole() -> LinkConfig {
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::perfect()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delivered: u64,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    bytes: Bytes,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of a simulated network path.
#[derive(Debug)]
pub struct Link {
    pub cfg: LinkConfig,
    rng: Rng,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(cfg: LinkConfig) -> Link {
        Link {
            rng: Rng::new(cfg.seed),
            cfg,
            queue: BinaryHeap::new(),
            seq: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn send(&mut self, now: Instant, bytes: Bytes) {
        self.stats.sent += 1;
        if self.rng.chance(self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.cfg.latency + self.cfg.jitter.mul_f64(self.rng.unit());
            if self.rng.chance(self.cfg.reorder) {
                self.stats.reordered += 1;
                delay += self.cfg.latency * 3;
            }
            self.seq += 1;
            self.queue.push(InFlight {
                at: now + delay,
                seq: self.seq,
                bytes: bytes.clone(),
            });
        }
    }

    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.at)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Bytes> {
        if self.queue.peek()?.at > now {
            return None;
        }
        self.stats.delivered += 1;
        self.queue.pop().map(|p| p.bytes)
    }
}

/// A message a node put on the wire.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Instant,
    pub first_line: String,
    pub bytes: Bytes,
    pub tx: Option<TxId>,
}

/// The first line of a message, for logs and assertions.
pub fn first_line(b: &[u8]) -> String {
    let end = b
        .iter()
        .position(|c| *c == b'\r' || *c == b'\n')
        .unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// One endpoint: a layer, what it sent, what its TU was told, and the TU's own timers.
#[derive(Debug)]
pub struct Node {
    pub layer: TransactionLayer,
    pub addr: SocketAddr,
    pub flow: FlowId,
    /// Events not yet taken by the test, with the time they were emitted.
    pub events: VecDeque<(Instant, TuEvent)>,
    /// Every event ever emitted (a log for assertions).
    pub log: Vec<(Instant, TuEvent)>,
    pub wire: Vec<Sent>,
    /// Datagrams that did not parse.
    pub parse_errors: u64,
    tu_timers: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    tu_seq: u64,
    /// Tags of TU timers that fired and were not taken yet.
    pub fired: VecDeque<u64>,
}

impl Node {
    fn new(cfg: Config, addr: SocketAddr, flow: FlowId) -> Node {
        Node {
            layer: TransactionLayer::new(cfg),
            addr,
            flow,
            events: VecDeque::new(),
            log: Vec::new(),
            wire: Vec::new(),
            parse_errors: 0,
            tu_timers: BinaryHeap::new(),
            tu_seq: 0,
            fired: VecDeque::new(),
        }
    }

    /// Takes every pending event.
    pub fn take_events(&mut self) -> Vec<TuEvent> {
        self.events.drain(..).map(|(_, e)| e).collect()
    }

    /// Arms a TU timer; its `tag` shows up in [`Node::fired`] when it expires.
    pub fn set_timer(&mut self, at: Instant, tag: u64) {
        self.tu_seq += 1;
        self.tu_timers.push(Reverse((at, self.tu_seq, tag)));
    }

    fn next_tu_timer(&self) -> Option<Instant> {
        self.tu_timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The first lines of what this node sent, in order.
    pub fn sent_lines(&self) -> Vec<String> {
        self.wire.iter().map(|s| s.first_line.clone()).collect()
    }

    /// Send times (relative to `start`) of the messages whose first line starts with `prefix`.
    pub fn sent_times(&self, start: Instant, prefix: &str) -> Vec<Duration> {
        self.wire
            .iter()
            .filter(|s| s.first_line.starts_with(prefix))
            .map(|s| s.at - start)
            .collect()
    }

    /// Answers the request of server transaction `id` (built with [`response_for`]).
    pub fn respond(
        &mut self,
        now: Instant,
        id: ServerTxId,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Result<(), ResponseError> {
        let req = self
            .layer
            .server_request(id)
            .ok_or(ResponseError::UnknownTransaction)?;
        let r = response_for(req, status, reason, to_tag).ok_or(ResponseError::NotAResponse)?;
        self.layer.send_response(now, id, r)
    }

    /// Events of the log that satisfy `f`.
    pub fn count_log(&self, f: impl Fn(&TuEvent) -> bool) -> usize {
        self.log.iter().filter(|(_, e)| f(e)).count()
    }
}

/// Which node of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// Two nodes, A (usually the client side) and B, and the links between them.
#[derive(Debug)]
pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub a: Node,
    pub b: Node,
    pub ab: Link,
    pub ba: Link,
    /// The transport between them is reliable (no retransmission timers, zero waits).
    pub reliable: bool,
    /// Safety stop for [`Pair::drive`].
    pub max_steps: u64,
    pub steps: u64,
}

impl Pair {
    /// `link` is used A to B; B to A uses the same with `seed + 1`.
    pub fn new(cfg_a: Config, cfg_b: Config, link: LinkConfig, reliable: bool) -> Pair {
        let start = Instant::now();
        let mut back = link.clone();
        back.seed = link.seed.wrapping_add(1);
        Pair {
            start,
            now: start,
            a: Node::new(cfg_a, "192.0.2.1:5060".parse().expect("addr"), FlowId(1)),
            b: Node::new(cfg_b, "198.51.100.1:5060".parse().expect("addr"), FlowId(2)),
            ab: Link::new(link),
            ba: Link::new(back),
            reliable,
            max_steps: 1_000_000,
            steps: 0,
        }
    }

    /// Default configurations, one link config.
    pub fn with_link(link: LinkConfig, reliable: bool) -> Pair {
        Pair::new(Config::default(), Config::default(), link, reliable)
    }

    pub fn node(&mut self, side: Side) -> &mut Node {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// From A to B.
    pub fn dest_ab(&self) -> Destination {
        Destination {
            remote: self.b.addr,
            flow: Some(self.a.flow),
            reliable: self.reliable,
        }
    }

    /// From B to A.
    pub fn dest_ba(&self) -> Destination {
        Destination {
            remote: self.a.addr,
            flow: Some(self.b.flow),
            reliable: self.reliable,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// `start + d`.
    pub fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    /// Sends a request on A as a client transaction.
    pub fn send_request_a(&mut self, msg: Message) -> ClientTxId {
        let dest = self.dest_ab();
        let id = self
            .a
            .layer
            .send_request(self.now, msg, dest)
            .expect("send_request");
        self.flush();
        id
    }

    /// Puts raw bytes on the wire from A to B outside any transaction (a "dumb" client that
    /// retransmits by hand).
    pub fn inject_ab(&mut self, msg: &Message) {
        let dest = self.dest_ab();
        self.a.layer.send_stateless(dest, msg.wire());
        self.flush();
    }

    /// Raw bytes from B to A.
    pub fn inject_ba(&mut self, msg: &Message) {
        let dest = self.dest_ba();
        self.b.layer.send_stateless(dest, msg.wire());
        self.flush();
    }

    /// Drains both layers: transmissions onto the links, events into the nodes (the rule of
    /// the crate: drain after every input).
    pub fn flush(&mut self) {
        let now = self.now;
        Self::drain(now, &mut self.a, &mut self.ab);
        Self::drain(now, &mut self.b, &mut self.ba);
    }

    fn drain(now: Instant, node: &mut Node, link: &mut Link) {
        while let Some(o) = node.layer.poll_output() {
            match o {
                Output::Transmit { bytes, tx, .. } => {
                    node.wire.push(Sent {
                        at: now,
                        first_line: first_line(&bytes),
                        bytes: bytes.clone(),
                        tx,
                    });
                    link.send(now, bytes);
                }
                Output::Event(e) => {
                    node.log.push((now, e.clone()));
                    node.events.push_back((now, e));
                }
            }
        }
    }

    /// The earliest thing that will happen: a layer timer, an arrival or a TU timer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        [
            self.a.layer.poll_timeout(),
            self.b.layer.poll_timeout(),
            self.ab.next_arrival(),
            self.ba.next_arrival(),
            self.a.next_tu_timer(),
            self.b.next_tu_timer(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn deliver(now: Instant, bytes: Bytes, to: &mut Node, from: SocketAddr, reliable: bool) {
        match Message::parse(bytes) {
            Ok(msg) => {
                let source = Source {
                    remote: from,
                    flow: to.flow,
                    reliable,
                };
                to.layer.handle_message(now, msg, source);
            }
            Err(_) => to.parse_errors += 1,
        }
    }

    /// Advances the clock to the next deadline and processes everything due then. False when
    /// nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(t) = self.next_deadline() else {
            return false;
        };
        self.steps += 1;
        if t > self.now {
            self.now = t;
        }
        let now = self.now;
        while let Some(b) = self.ab.pop_due(now) {
            Self::deliver(now, b, &mut self.b, self.a.addr, self.reliable);
            self.flush();
        }
        while let Some(b) = self.ba.pop_due(now) {
            Self::deliver(now, b, &mut self.a, self.b.addr, self.reliable);
            self.flush();
        }
        for node in [&mut self.a, &mut self.b] {
            if node.layer.poll_timeout().is_some_and(|t| t <= now) {
                node.layer.handle_timeout(now);
            }
            while let Some(Reverse((at, _, tag))) = node.tu_timers.peek().copied() {
                if at > now {
                    break;
                }
                node.tu_timers.pop();
                node.fired.push_back(tag);
            }
        }
        self.flush();
        true
    }

    /// Steps until nothing is left to happen (or `max_steps`).
    pub fn drive(&mut self) {
        while self.steps < self.max_steps && self.step() {}
    }

    /// Steps through every deadline up to `t`, then sets the clock to `t`.
    pub fn drive_until(&mut self, t: Instant) {
        // Whatever the test made the layers do since the last step leaves now.
        self.flush();
        while self.steps < self.max_steps {
            match self.next_deadline() {
                Some(d) if d <= t => {
                    self.step();
                }
                _ => break,
            }
        }
        if t > self.now {
            self.now = t;
        }
        self.flush();
    }

    /// [`Pair::drive_until`] `now + d`.
    pub fn drive_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.drive_until(t);
    }

    /// Steps until `cond` holds (checked before each step); false if the pair went idle first.
    pub fn step_until(&mut self, mut cond: impl FnMut(&mut Pair) -> bool) -> bool {
        loop {
            self.flush();
            if cond(self) {
                return true;
            }
            if self.steps >= self.max_steps || !self.step() {
                return cond(self);
            }
        }
    }
}

/// Builds requests for tests.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    pub method: String,
    pub request_uri: String,
    pub transport: String,
    pub via_host: String,
    /// `None`: an RFC 2543 Via without a branch.
    pub branch: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl RequestBuilder {
    pub fn new(method: &str, branch: Option<&str>) -> RequestBuilder {
        RequestBuilder {
            method: method.into(),
            request_uri: "sip:bob@biloxi.example.com".into(),
            transport: "UDP".into(),
            via_host: "pc33.atlanta.example.com".into(),
            branch: branch.map(Into::into),
            call_id: "a84b4c76e66710@pc33.atlanta.example.com".into(),
            cseq: 1,
            from_tag: "1928301774".into(),
            to_tag: None,
            headers: Vec::new(),
        }
    }

    pub fn cseq(mut self, n: u32) -> Self {
        self.cseq = n;
        self
    }

    pub fn call_id(mut self, c: &str) -> Self {
        self.call_id = c.into();
        self
    }

    pub fn to_tag(mut self, t: &str) -> Self {
        self.to_tag = Some(t.into());
        self
    }

    pub fn from_tag(mut self, t: &str) -> Self {
        self.from_tag = t.into();
        self
    }

    pub fn via_host(mut self, h: &str) -> Self {
        self.via_host = h.into();
        self
    }

    pub fn transport(mut self, t: &str) -> Self {
        self.transport = t.into();
        self
    }

    pub fn request_uri(mut self, u: &str) -> Self {
        self.request_uri = u.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same request with another method (CSeq method follows; the number stays).
    pub fn with_method(&self, m: &str) -> Self {
        let mut c = self.clone();
        c.method = m.into();
        c
    }

    pub fn text(&self) -> String {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.request_uri);
        s += &format!("Via: SIP/2.0/{} {}", self.transport, self.via_host);
        if let Some(b) = &self.branch {
            s += &format!(";branch={b}");
        }
        s += "\r\nMax-Forwards: 70\r\n";
        s += &format!(
            "From: Alice <sip:alice@atlanta.example.com>;tag={}\r\n",
            self.from_tag
        );
        s += "To: Bob <sip:bob@biloxi.example.com>";
        if let Some(t) = &self.to_tag {
            s += &format!(";tag={t}");
        }
        s += &format!(
            "\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            self.call_id, self.cseq, self.method
        );
        for (n, v) in &self.headers {
            s += &format!("{n}: {v}\r\n");
        }
        s += "Content-Length: 0\r\n\r\n";
        s
    }

    pub fn build(&self) -> Message {
        Message::parse(Bytes::from(self.text())).expect("test request parses")
    }
}
