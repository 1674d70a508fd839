//! The transaction layer: every client and server transaction of one element, their matching
//! indexes and one timer heap.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{Message, Method};

use crate::build;
use crate::config::Config;
use crate::key::{self, eq_ci, Index, KeyHasher, RequestKeys};
use crate::timer::{Timer, TimerQueue, SLOTS};
use crate::types::*;

/// A client transaction (RFC 3261 17.1).
#[derive(Debug)]
struct ClientTx {
    invite: bool,
    state: TxState,
    request: Message,
    dest: Destination,
    branch: Box<str>,
    method: Box<str>,
    hash: u64,
    /// Current retransmission interval of timer A or E.
    interval: Duration,
    gens: [u32; SLOTS],
    /// The ACK sent for a non-2xx final response, sent again for each retransmission of that
    /// response (17.1.1.2).
    ack: Option<Bytes>,
    /// INVITE: the CANCEL made by [`TransactionLayer::cancel`].
    cancel: Option<u64>,
    timers: Timers,
}

/// How a server transaction is found again (17.2.3).
#[derive(Debug)]
enum MatchKey {
    /// The request's top Via had a branch with the magic cookie: branch + sent-by (+ method).
    Branch {
        branch: Box<str>,
        host: Box<str>,
        port: u16,
    },
    /// RFC 2543 peer: Request-URI, tags, Call-ID, CSeq, top Via (+ method).
    Legacy {
        request_uri: Box<str>,
        from_tag: Box<str>,
        to_tag: Box<str>,
        call_id: Box<str>,
        cseq: u32,
        top_via: Box<str>,
    },
}

/// A server transaction (RFC 3261 17.2).
#[derive(Debug)]
struct ServerTx {
    invite: bool,
    state: TxState,
    request: Message,
    source: Source,
    method: Box<str>,
    key: MatchKey,
    hash: u64,
    /// The most recent provisional response, sent again for a retransmitted request.
    provisional: Option<Bytes>,
    /// The final response (non-2xx for INVITE), sent again by timer G and for retransmissions.
    final_response: Option<Bytes>,
    /// The To tag of the final response: an RFC 2543 ACK matches on it (17.2.3).
    response_to_tag: Box<str>,
    interval: Duration,
    gens: [u32; SLOTS],
    timers: Timers,
}

/// The timer values of one transaction, taken from the configuration when it starts: a
/// [`TransactionLayer::set_config`] (a reload) changes the timers of new transactions only.
#[derive(Debug, Clone, Copy)]
struct Timers {
    t1: Duration,
    t2: Duration,
    t4: Duration,
    timer_d: Duration,
}

impl Timers {
    fn of(cfg: &Config) -> Timers {
        Timers {
            t1: cfg.t1,
            t2: cfg.t2,
            t4: cfg.t4,
            timer_d: cfg.timer_d,
        }
    }

    /// 64*T1: timers B, F, H, J, L, M.
    fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// What a lookup is for (17.2.3 and 9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A request of the same method (a retransmission).
    Same,
    /// An ACK: the INVITE transaction (for 2543 peers, with the To tag of our response).
    Ack,
    /// The transaction a CANCEL cancels: any method but CANCEL and ACK (9.2).
    CancelTarget,
}

/// Outputs, timers and counters, split from the transaction maps so that a handler can hold a
/// transaction and still emit.
#[derive(Debug, Default)]
struct Sink {
    out: VecDeque<Output>,
    timers: TimerQueue,
    stats: Stats,
}

impl Sink {
    fn arm(&mut self, gens: &mut [u32; SLOTS], tx: TxId, timer: Timer, at: Instant) {
        let s = timer.slot();
        gens[s] = gens[s].wrapping_add(1);
        self.timers.push(at, tx, timer, gens[s]);
    }

    fn disarm(gens: &mut [u32; SLOTS], slots: &[usize]) {
        for &s in slots {
            gens[s] = gens[s].wrapping_add(1);
        }
    }

    fn transmit(&mut self, dest: Destination, bytes: Bytes, tx: Option<TxId>) {
        self.out.push_back(Output::Transmit { dest, bytes, tx });
    }

    fn retransmit(&mut self, dest: Destination, bytes: Bytes, tx: TxId) {
        self.stats.retransmissions += 1;
        self.transmit(dest, bytes, Some(tx));
    }

    fn emit(&mut self, ev: TuEvent) {
        self.out.push_back(Output::Event(ev));
    }
}

/// The RFC 3261 section 17 transaction layer (with the RFC 6026 Accepted states) as a pure
/// state machine: no sockets, no clock, no tasks.
///
/// # Driving it
/// Feed it with [`handle_request`](Self::handle_request) / [`handle_response`](Self::handle_response)
/// (or [`handle_message`](Self::handle_message)), [`send_request`](Self::send_request),
/// [`send_response`](Self::send_response), [`cancel`](Self::cancel),
/// [`handle_transport_error`](Self::handle_transport_error) and
/// [`handle_timeout`](Self::handle_timeout), always with the current time.
///
/// **After every input, drain [`poll_output`](Self::poll_output) until it returns `None`**, then
/// ask [`poll_timeout`](Self::poll_timeout) when to call `handle_timeout` next. Outputs come in
/// the order the layer produced them, so a trace of inputs reproduces the outputs exactly.
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: Config,
    next_id: u64,
    counter: u64,
    clients: HashMap<u64, ClientTx>,
    servers: HashMap<u64, ServerTx>,
    client_index: Index,
    branch_index: Index,
    legacy_index: Index,
    hasher: KeyHasher,
    sink: Sink,
}

/// splitmix64: a bijection, so distinct counters give distinct branches under one seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl TransactionLayer {
    pub fn new(cfg: Config) -> Self {
        TransactionLayer {
            cfg,
            next_id: 1,
            counter: 0,
            clients: HashMap::new(),
            servers: HashMap::new(),
            client_index: Index::default(),
            branch_index: Index::default(),
            legacy_index: Index::default(),
            hasher: KeyHasher::new(),
            sink: Sink::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replaces the configuration (a reload). Transactions that exist keep the timers they
    /// started with; new ones use the new timers, TU guards, `trying_delay`,
    /// `max_transactions` and `overload_retry_after`. The seed is kept: branches and tags stay
    /// unique.
    pub fn set_config(&mut self, cfg: Config) {
        let seed = self.cfg.seed;
        self.cfg = cfg;
        self.cfg.seed = seed;
    }

    pub fn stats(&self) -> Stats {
        self.sink.stats
    }

    /// Live transactions, client and server.
    pub fn transaction_count(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// The state of a live transaction; `None` once it terminated.
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        match tx {
            TxId::Client(c) => self.clients.get(&c.0).map(|t| t.state),
            TxId::Server(s) => self.servers.get(&s.0).map(|t| t.state),
        }
    }

    /// The request that created a client transaction (the UA core builds the ACK for a 2xx
    /// from it, 13.2.2.4).
    pub fn client_request(&self, id: ClientTxId) -> Option<&Message> {
        self.clients.get(&id.0).map(|t| &t.request)
    }

    /// The request that created a server transaction.
    pub fn server_request(&self, id: ServerTxId) -> Option<&Message> {
        self.servers.get(&id.0).map(|t| &t.request)
    }

    /// A fresh branch with the magic cookie (8.1.1.7), unique for this seed.
    pub fn new_branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.next_random())
    }

    /// A fresh tag (19.3), unique for this seed.
    pub fn new_tag(&mut self) -> String {
        format!("{:x}", self.next_random())
    }

    fn next_random(&mut self) -> u64 {
        self.counter += 1;
        mix(self.cfg.seed ^ mix(self.counter))
    }

    /// The next output, `None` when there is nothing left. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.sink.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(e) = self.sink.timers.peek() {
            let e = *e;
            if self.timer_live(e.tx, e.timer, e.gen) {
                return Some(e.at);
            }
            self.sink.timers.pop();
        }
        None
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(e) = self.sink.timers.peek() {
            if e.at > now {
                break;
            }
            let e = *e;
            self.sink.timers.pop();
            if self.timer_live(e.tx, e.timer, e.gen) {
                match e.tx {
                    TxId::Client(id) => self.client_timer(now, id.0, e.timer),
                    TxId::Server(id) => self.server_timer(now, id.0, e.timer),
                }
            }
        }
        self.maybe_compact();
    }

    fn timer_live(&self, tx: TxId, timer: Timer, gen: u32) -> bool {
        let gens = match tx {
            TxId::Client(c) => self.clients.get(&c.0).map(|t| &t.gens),
            TxId::Server(s) => self.servers.get(&s.0).map(|t| &t.gens),
        };
        gens.is_some_and(|g| g[timer.slot()] == gen)
    }

    fn maybe_compact(&mut self) {
        let live_max = SLOTS * self.transaction_count();
        if self.sink.timers.len() > 1024 && self.sink.timers.len() > 2 * live_max {
            let (clients, servers) = (&self.clients, &self.servers);
            self.sink.timers.retain(|e| {
                let gens = match e.tx {
                    TxId::Client(c) => clients.get(&c.0).map(|t| &t.gens),
                    TxId::Server(s) => servers.get(&s.0).map(|t| &t.gens),
                };
                gens.is_some_and(|g| g[e.timer.slot()] == e.gen)
            });
        }
    }

    /// Heap entries, live and stale (for tests of the compaction).
    #[doc(hidden)]
    pub fn timer_entries(&self) -> usize {
        self.sink.timers.len()
    }

    fn full(&self) -> bool {
        self.transaction_count() >= self.cfg.max_transactions
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (13.2.2.4), a 2xx
    /// retransmitted by the UAS core after the transaction is gone, stateless responses.
    pub fn send_stateless(&mut self, dest: Destination, bytes: Bytes) {
        self.sink.transmit(dest, bytes, None);
    }

    /// Dispatches on the start line.
    pub fn handle_message(&mut self, now: Instant, msg: Message, source: Source) {
        if msg.is_request() {
            self.handle_request(now, msg, source)
        } else {
            self.handle_response(now, msg, source)
        }
    }

    /// The shell could not deliver a message this transaction sent (17.1.1.2, 17.1.2.2, 17.2.1,
    /// 17.2.2: inform the TU, move to Terminated). An INVITE server transaction in Accepted
    /// stays: the 2xx is the TU's to deliver (RFC 6026), it is only informed.
    pub fn handle_transport_error(&mut self, _now: Instant, tx: TxId) {
        match tx {
            TxId::Client(c) => {
                if self.clients.contains_key(&c.0) {
                    self.sink.emit(TuEvent::TransportError { tx });
                    self.terminate_client(c.0, TerminationReason::TransportError);
                }
            }
            TxId::Server(s) => {
                if let Some(t) = self.servers.get(&s.0) {
                    self.sink.emit(TuEvent::TransportError { tx });
                    if t.state != TxState::Accepted {
                        self.terminate_server(s.0, TerminationReason::TransportError);
                    }
                }
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Client transactions (17.1)
    // ----------------------------------------------------------------------------------------

    /// Starts a client transaction for `msg` and sends it to `dest`.
    ///
    /// The top Via must carry a branch with the magic cookie (8.1.1.7; [`new_branch`](
    /// Self::new_branch) makes one): responses are matched on it (17.1.3).
    pub fn send_request(
        &mut self,
        now: Instant,
        msg: Message,
        dest: Destination,
    ) -> Result<ClientTxId, SendError> {
        let method = msg.method().ok_or(SendError::NotARequest)?;
        if method == Method::Ack {
            return Err(SendError::Ack);
        }
        let tv = key::top_via(&msg).map_err(SendError::BadHeader)?;
        if !tv.via.has_magic_cookie() {
            return Err(SendError::MissingBranch);
        }
        let branch = tv.via.branch.unwrap_or("");
        let cs = match msg.cseq() {
            Some(Ok(c)) => c,
            _ => return Err(SendError::BadHeader(BadHeader::CSeq)),
        };
        let method_str = msg.method_str().unwrap_or("");
        if cs.method_str != method_str {
            return Err(SendError::BadHeader(BadHeader::CSeqMethod));
        }
        // The ACK and CANCEL this transaction may build copy these (9.1, 17.1.1.3).
        if !matches!(msg.call_id(), Some(Ok(_))) {
            return Err(SendError::BadHeader(BadHeader::CallId));
        }
        if !matches!(msg.from(), Some(Ok(_))) {
            return Err(SendError::BadHeader(BadHeader::From));
        }
        if !matches!(msg.to(), Some(Ok(_))) {
            return Err(SendError::BadHeader(BadHeader::To));
        }
        if self.full() {
            return Err(SendError::TooManyTransactions);
        }
        let hash = self.hasher.client(branch);
        if self.find_client(hash, branch, method_str).is_some() {
            return Err(SendError::DuplicateBranch);
        }
        let (branch, method_str) = (branch.into(), method_str.into());
        let id = self.alloc_id();
        self.insert_client(
            id,
            hash,
            ClientTx {
                invite: method == Method::Invite,
                state: TxState::Held,
                request: msg,
                dest,
                branch,
                method: method_str,
                hash,
                interval: self.cfg.t1,
                gens: [0; SLOTS],
                ack: None,
                cancel: None,
                timers: Timers::of(&self.cfg),
            },
        );
        self.start_client(now, id);
        self.maybe_compact();
        Ok(ClientTxId(id))
    }

    /// Cancels a pending INVITE (RFC 3261 9.1): builds the CANCEL and runs it as a non-INVITE
    /// client transaction to the INVITE's destination. If no provisional response has arrived
    /// yet the CANCEL is held ([`TxState::Held`]) and sent when one does ("the client MUST wait
    /// for the arrival of a provisional response"); if the INVITE gets a final response first,
    /// the CANCEL terminates with [`TerminationReason::NotSent`].
    pub fn cancel(&mut self, now: Instant, invite: ClientTxId) -> Result<ClientTxId, CancelError> {
        let inv = self
            .clients
            .get(&invite.0)
            .ok_or(CancelError::UnknownTransaction)?;
        if !inv.invite {
            return Err(CancelError::NotInvite);
        }
        if let Some(c) = inv.cancel {
            return Err(CancelError::AlreadyCancelled(ClientTxId(c)));
        }
        let start_now = match inv.state {
            TxState::Calling => false,
            TxState::Proceeding => true,
            _ => return Err(CancelError::AlreadyFinal),
        };
        if self.full() {
            return Err(CancelError::TooManyTransactions);
        }
        // The INVITE was validated by send_request, so the CANCEL builds.
        let msg = build::cancel_for(&inv.request).ok_or(CancelError::UnknownTransaction)?;
        let (branch, dest) = (inv.branch.clone(), inv.dest);
        let hash = self.hasher.client(&branch);
        let id = self.alloc_id();
        self.insert_client(
            id,
            hash,
            ClientTx {
                invite: false,
                state: TxState::Held,
                request: msg,
                dest,
                branch,
                method: "CANCEL".into(),
                hash,
                interval: self.cfg.t1,
                gens: [0; SLOTS],
                ack: None,
                cancel: None,
                timers: Timers::of(&self.cfg),
            },
        );
        if let Some(inv) = self.clients.get_mut(&invite.0) {
            inv.cancel = Some(id);
        }
        if start_now {
            self.start_client(now, id);
            self.arm_cancelled_invite(now, invite.0);
        }
        Ok(ClientTxId(id))
    }

    /// 9.1: "If no final response has been received after 64*T1 seconds, the client SHOULD
    /// consider the original transaction cancelled and destroy the client transaction handling
    /// the original request." Timer B is reused for that wait (its slot is free in
    /// Proceeding).
    fn arm_cancelled_invite(&mut self, now: Instant, invite: u64) {
        if let Some(inv) = self.clients.get_mut(&invite) {
            let t64 = inv.timers.t64();
            if inv.state == TxState::Proceeding {
                let tx = TxId::Client(ClientTxId(invite));
                self.sink.arm(&mut inv.gens, tx, Timer::B, now + t64);
            }
        }
    }

    fn insert_client(&mut self, id: u64, hash: u64, tx: ClientTx) {
        self.client_index.insert(hash, id);
        self.clients.insert(id, tx);
        self.sink.stats.client_transactions += 1;
    }

    fn find_client(&self, hash: u64, branch: &str, method: &str) -> Option<u64> {
        self.client_index.get(hash).iter().copied().find(|id| {
            self.clients
                .get(id)
                .is_some_and(|t| eq_ci(&t.branch, branch) && &*t.method == method)
        })
    }

    /// Sends the request and arms the timers of the initial state: Calling (A, B; 17.1.1.2) or
    /// Trying (E, F; 17.1.2.2). A and E only on unreliable transports.
    fn start_client(&mut self, now: Instant, id: u64) {
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let (t1, t64) = (tx.timers.t1, tx.timers.t64());
        let txid = TxId::Client(ClientTxId(id));
        self.sink.transmit(tx.dest, tx.request.wire(), Some(txid));
        tx.interval = t1;
        let (retrans, timeout) = if tx.invite {
            tx.state = TxState::Calling;
            (Timer::A, Timer::B)
        } else {
            tx.state = TxState::Trying;
            (Timer::E, Timer::F)
        };
        if !tx.dest.reliable {
            self.sink.arm(&mut tx.gens, txid, retrans, now + t1);
        }
        self.sink.arm(&mut tx.gens, txid, timeout, now + t64);
    }

    fn client_timer(&mut self, now: Instant, id: u64, timer: Timer) {
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let t2 = tx.timers.t2;
        let txid = TxId::Client(ClientTxId(id));
        match (timer, tx.state) {
            // 17.1.1.2: retransmit, double the interval. No T2 cap for INVITE requests: the
            // intervals are T1, 2T1, 4T1... until Timer B (7 retransmissions with T1 = 500 ms).
            (Timer::A, TxState::Calling) => {
                self.sink.retransmit(tx.dest, tx.request.wire(), txid);
                tx.interval *= 2;
                self.sink
                    .arm(&mut tx.gens, txid, Timer::A, now + tx.interval);
            }
            // 17.1.2.2: in Trying the interval doubles up to T2; in Proceeding it is T2.
            (Timer::E, TxState::Trying | TxState::Proceeding) => {
                self.sink.retransmit(tx.dest, tx.request.wire(), txid);
                tx.interval = if tx.state == TxState::Trying {
                    (tx.interval * 2).min(t2)
                } else {
                    t2
                };
                self.sink
                    .arm(&mut tx.gens, txid, Timer::E, now + tx.interval);
            }
            // Timer B (17.1.1.2, and 9.1 after a CANCEL) and F (17.1.2.2): inform the TU, which
            // synthesises a 408 (8.1.3.1).
            (Timer::B, TxState::Calling | TxState::Proceeding)
            | (Timer::F, TxState::Trying | TxState::Proceeding) => {
                self.sink.stats.timeouts += 1;
                self.sink.emit(TuEvent::Timeout { tx: txid, timer });
                self.terminate_client(id, TerminationReason::Timeout);
            }
            (Timer::D, TxState::Completed)
            | (Timer::M, TxState::Accepted)
            | (Timer::K, TxState::Completed) => {
                self.terminate_client(id, TerminationReason::Completed);
            }
            _ => {}
        }
    }

    /// Matches a response to a client transaction (17.1.3) and runs it.
    pub fn handle_response(&mut self, now: Instant, msg: Message, source: Source) {
        self.response_input(now, msg, source);
        self.maybe_compact();
    }

    fn response_input(&mut self, now: Instant, msg: Message, source: Source) {
        let Some(status) = msg.status() else {
            return self.handle_request(now, msg, source);
        };
        let keys = match key::response_keys(&msg) {
            Ok(k) => k,
            Err(header) => {
                self.sink.stats.dropped_malformed += 1;
                self.sink.emit(TuEvent::Dropped {
                    reason: DropReason::BadResponse { header },
                    source: Some(source),
                });
                return;
            }
        };
        // 17.1.3: the branch of the top Via and the CSeq method (a CANCEL shares the branch of
        // its INVITE).
        let found = keys
            .branch
            .and_then(|b| self.find_client(self.hasher.client(b), b, keys.cseq_method));
        let Some(id) = found else {
            // 18.1.2: a response that matches no transaction goes to the core.
            self.sink.stats.stray_responses += 1;
            self.sink.emit(TuEvent::StrayResponse { msg, source });
            return;
        };
        if self.clients.get(&id).is_some_and(|t| t.invite) {
            self.client_invite_response(now, id, status, msg, source);
        } else {
            self.client_non_invite_response(now, id, status, msg, source);
        }
    }

    fn client_invite_response(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        msg: Message,
        source: Source,
    ) {
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let (t64, timer_d) = (tx.timers.t64(), tx.timers.timer_d);
        let cid = ClientTxId(id);
        let txid = TxId::Client(cid);
        match (tx.state, status) {
            // 17.1.1.2: a provisional response stops retransmissions (A) and Timer B.
            (TxState::Calling | TxState::Proceeding, 100..=199) => {
                let first = tx.state == TxState::Calling;
                if first {
                    tx.state = TxState::Proceeding;
                    Sink::disarm(&mut tx.gens, &[0, 1]);
                }
                self.sink.emit(TuEvent::Response {
                    id: cid,
                    msg,
                    source,
                });
                if first {
                    self.release_held_cancel(now, id);
                }
            }
            // RFC 6026 7.2: a 2xx moves to Accepted, is passed up, Timer M = 64*T1 on every
            // transport; the TU (not the transaction) ACKs it.
            (TxState::Calling | TxState::Proceeding, 200..=299) => {
                tx.state = TxState::Accepted;
                Sink::disarm(&mut tx.gens, &[0, 1]);
                self.sink.arm(&mut tx.gens, txid, Timer::M, now + t64);
                self.sink.emit(TuEvent::Response {
                    id: cid,
                    msg,
                    source,
                });
                self.drop_held_cancel(id);
            }
            // 17.1.1.2: 300-699 moves to Completed, is passed up, is ACKed by the transaction;
            // Timer D (>= 32 s unreliable, 0 reliable).
            (TxState::Calling | TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                Sink::disarm(&mut tx.gens, &[0, 1]);
                let ack = build::ack_for_non_2xx(&tx.request, &msg).map(|a| a.wire());
                if let Some(ack) = &ack {
                    self.sink.transmit(tx.dest, ack.clone(), Some(txid));
                }
                tx.ack = ack;
                let reliable = tx.dest.reliable;
                if !reliable {
                    self.sink.arm(&mut tx.gens, txid, Timer::D, now + timer_d);
                }
                self.sink.emit(TuEvent::Response {
                    id: cid,
                    msg,
                    source,
                });
                self.drop_held_cancel(id);
                if reliable {
                    self.terminate_client(id, TerminationReason::Completed);
                }
            }
            // 17.1.1.2: a retransmitted final response in Completed gets the ACK again and is
            // not passed up.
            (TxState::Completed, 300..=699) => {
                self.sink.stats.absorbed += 1;
                if let Some(ack) = tx.ack.clone() {
                    self.sink.retransmit(tx.dest, ack, txid);
                }
            }
            // RFC 6026 7.2: every 2xx in Accepted goes up (retransmissions and other forks: the
            // TU ACKs each). A 2xx after a non-2xx (a fork answering late) is passed up too, so
            // that the core can ACK and BYE it (13.2.2.4); RFC 3261 is silent on it.
            (TxState::Accepted | TxState::Completed, 200..=299) => {
                self.sink.emit(TuEvent::Response {
                    id: cid,
                    msg,
                    source,
                });
            }
            // Provisional or non-2xx responses after a final response: nothing to do.
            _ => self.sink.stats.absorbed += 1,
        }
    }

    fn client_non_invite_response(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        msg: Message,
        source: Source,
    ) {
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let t4 = tx.timers.t4;
        let cid = ClientTxId(id);
        let txid = TxId::Client(cid);
        match (tx.state, status) {
            // 17.1.2.2: provisional responses move Trying to Proceeding and go up; E keeps
            // running (its interval becomes T2 at the next firing).
            (TxState::Trying | TxState::Proceeding, 100..=199) => {
                tx.state = TxState::Proceeding;
                self.sink.emit(TuEvent::Response {
                    id: cid,
                    msg,
                    source,
                });
            }
            // 17.1.2.2: a final response: Completed, up to the TU, Timer K (T4, 0 reliable).
            (TxState::Trying | TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                Sink::disarm(&mut tx.gens, &[0, 1]);
                let reliable = tx.dest.reliable;
                if !reliable {
                    self.sink.arm(&mut tx.gens, txid, Timer::K, now + t4);
                }
                self.sink.emit(TuEvent::Response {
                    id: cid,
                    msg,
                    source,
                });
                if reliable {
                    self.terminate_client(id, TerminationReason::Completed);
                }
            }
            // Completed absorbs retransmitted responses; a Held CANCEL was never sent.
            _ => self.sink.stats.absorbed += 1,
        }
    }

    /// The INVITE got its first provisional response: a held CANCEL may go now (9.1).
    fn release_held_cancel(&mut self, now: Instant, invite: u64) {
        let Some(c) = self.clients.get(&invite).and_then(|t| t.cancel) else {
            return;
        };
        if self
            .clients
            .get(&c)
            .is_some_and(|t| t.state == TxState::Held)
        {
            self.start_client(now, c);
            self.arm_cancelled_invite(now, invite);
        }
    }

    /// The INVITE is final (or gone) before any provisional response: its held CANCEL is moot.
    fn drop_held_cancel(&mut self, invite: u64) {
        let Some(c) = self.clients.get(&invite).and_then(|t| t.cancel) else {
            return;
        };
        if self
            .clients
            .get(&c)
            .is_some_and(|t| t.state == TxState::Held)
        {
            self.terminate_client(c, TerminationReason::NotSent);
        }
    }

    fn terminate_client(&mut self, id: u64, reason: TerminationReason) {
        self.drop_held_cancel(id);
        let Some(tx) = self.clients.remove(&id) else {
            return;
        };
        self.client_index.remove(tx.hash, id);
        self.sink.emit(TuEvent::Terminated {
            tx: TxId::Client(ClientTxId(id)),
            reason,
        });
    }

    // ----------------------------------------------------------------------------------------
    // Server transactions (17.2)
    // ----------------------------------------------------------------------------------------

    fn find_server(&self, k: &RequestKeys<'_>, want: Want) -> Option<u64> {
        let method_ok = |m: &str| match want {
            Want::Same => m == k.method,
            Want::Ack => m == "INVITE",
            Want::CancelTarget => m != "CANCEL" && m != "ACK",
        };
        if let Some(branch) = k.branch {
            // 17.2.3: branch, sent-by, and method (ACK matches INVITE).
            let h = self.hasher.branch(branch, k.host, k.port);
            return self.branch_index.get(h).iter().copied().find(|id| {
                self.servers.get(id).is_some_and(|t| match &t.key {
                    MatchKey::Branch {
                        branch: b,
                        host,
                        port,
                    } => {
                        eq_ci(b, branch)
                            && eq_ci(host, k.host)
                            && *port == k.port
                            && method_ok(&t.method)
                    }
                    MatchKey::Legacy { .. } => false,
                })
            });
        }
        // 17.2.3, RFC 2543 rules: Request-URI, From tag, Call-ID, CSeq number and top Via, then
        // the To tag of the request (INVITE, CANCEL, others) or of our response (ACK), and
        // the method (the CSeq method equals it, checked in request_keys).
        let h = self
            .hasher
            .legacy(k.request_uri, k.from_tag, k.call_id, k.cseq, k.top_via);
        self.legacy_index.get(h).iter().copied().find(|id| {
            self.servers.get(id).is_some_and(|t| match &t.key {
                MatchKey::Legacy {
                    request_uri,
                    from_tag,
                    to_tag,
                    call_id,
                    cseq,
                    top_via,
                } => {
                    **request_uri == *k.request_uri
                        && eq_ci(from_tag, k.from_tag)
                        && **call_id == *k.call_id
                        && *cseq == k.cseq
                        && eq_ci(top_via, k.top_via)
                        && method_ok(&t.method)
                        && if want == Want::Ack {
                            eq_ci(&t.response_to_tag, k.to_tag)
                        } else {
                            eq_ci(to_tag, k.to_tag)
                        }
                }
                MatchKey::Branch { .. } => false,
            })
        })
    }

    /// Matches a request to a server transaction (17.2.3) or creates one.
    pub fn handle_request(&mut self, now: Instant, msg: Message, source: Source) {
        self.request_input(now, msg, source);
        self.maybe_compact();
    }

    fn request_input(&mut self, now: Instant, msg: Message, source: Source) {
        let Some(method) = msg.method() else {
            return self.handle_response(now, msg, source);
        };
        let keys = match key::request_keys(&msg) {
            Ok(k) => k,
            Err(h) => return self.reject_malformed(&msg, source, h),
        };
        if method == Method::Ack {
            match self.find_server(&keys, Want::Ack) {
                Some(id) => self.server_ack(now, id, msg, source),
                None => {
                    // The ACK for a 2xx is its own "transaction" of the TU (17, 13.3.1.4).
                    self.sink.stats.acks_passed_up += 1;
                    self.sink.emit(TuEvent::Ack {
                        msg,
                        source,
                        matched: None,
                    });
                }
            }
            return;
        }
        if let Some(id) = self.find_server(&keys, Want::Same) {
            return self.server_retransmission(id);
        }
        if self.full() {
            return self.reject_overload(&msg, source);
        }
        let target = if method == Method::Cancel {
            self.find_server(&keys, Want::CancelTarget).map(ServerTxId)
        } else {
            None
        };
        let (key, hash) = match keys.branch {
            Some(branch) => (
                MatchKey::Branch {
                    branch: branch.into(),
                    host: keys.host.into(),
                    port: keys.port,
                },
                self.hasher.branch(branch, keys.host, keys.port),
            ),
            None => (
                MatchKey::Legacy {
                    request_uri: keys.request_uri.into(),
                    from_tag: keys.from_tag.into(),
                    to_tag: keys.to_tag.into(),
                    call_id: keys.call_id.into(),
                    cseq: keys.cseq,
                    top_via: keys.top_via.into(),
                },
                self.hasher.legacy(
                    keys.request_uri,
                    keys.from_tag,
                    keys.call_id,
                    keys.cseq,
                    keys.top_via,
                ),
            ),
        };
        let method_str: Box<str> = keys.method.into();
        let id = self.alloc_id();
        match &key {
            MatchKey::Branch { .. } => self.branch_index.insert(hash, id),
            MatchKey::Legacy { .. } => self.legacy_index.insert(hash, id),
        }
        let invite = method == Method::Invite;
        let mut tx = ServerTx {
            invite,
            // 17.2.1: an INVITE server transaction starts in Proceeding; 17.2.2: non-INVITE in
            // Trying.
            state: if invite {
                TxState::Proceeding
            } else {
                TxState::Trying
            },
            request: msg.clone(),
            source,
            method: method_str,
            key,
            hash,
            provisional: None,
            final_response: None,
            response_to_tag: "".into(),
            interval: self.cfg.t1,
            gens: [0; SLOTS],
            timers: Timers::of(&self.cfg),
        };
        self.sink.stats.server_transactions += 1;
        let sid = ServerTxId(id);
        let txid = TxId::Server(sid);
        let guard = if invite {
            self.cfg.tu_guard_invite
        } else {
            self.cfg.tu_guard_non_invite
        };
        if let Some(g) = guard {
            self.sink.arm(&mut tx.gens, txid, Timer::TuGuard, now + g);
        }
        let mut trying_now = false;
        if invite {
            match self.cfg.trying_delay {
                Some(d) if d.is_zero() => trying_now = true,
                Some(d) => self.sink.arm(&mut tx.gens, txid, Timer::Trying, now + d),
                None => {}
            }
        }
        self.servers.insert(id, tx);
        if trying_now {
            self.send_trying(id);
        }
        self.sink.emit(if method == Method::Cancel {
            TuEvent::Cancel {
                id: sid,
                msg,
                source,
                target,
            }
        } else {
            TuEvent::Request {
                id: sid,
                msg,
                source,
            }
        });
    }

    /// 17.2.1: "the server transaction MUST generate a 100 (Trying) response unless it knows
    /// that the TU will generate a provisional or final response within 200 ms".
    fn send_trying(&mut self, id: u64) {
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        let Some(r) = build::response_for(&tx.request, 100, "Trying", None) else {
            return;
        };
        let bytes = r.wire();
        Sink::disarm(&mut tx.gens, &[Timer::Trying.slot()]);
        tx.provisional = Some(bytes.clone());
        self.sink
            .transmit(tx.source.into(), bytes, Some(TxId::Server(ServerTxId(id))));
    }

    /// A retransmitted request (not ACK) matched a server transaction.
    fn server_retransmission(&mut self, id: u64) {
        self.sink.stats.absorbed += 1;
        let trying = self.cfg.trying_delay.is_some();
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        let txid = TxId::Server(ServerTxId(id));
        let resend = match (tx.invite, tx.state) {
            // 17.2.1 Proceeding: the most recent provisional response again. None yet: the
            // client is retransmitting, so the 100 the timer would send is due now.
            (true, TxState::Proceeding) => match &tx.provisional {
                Some(p) => Some(p.clone()),
                None if trying => {
                    self.send_trying(id);
                    return;
                }
                None => None,
            },
            // 17.2.1 Completed: the final response again.
            (true, TxState::Completed) => tx.final_response.clone(),
            // 17.2.1 Confirmed absorbs; RFC 6026 7.1: Accepted absorbs (the TU retransmits
            // the 2xx).
            (true, _) => None,
            // 17.2.2: Trying absorbs, Proceeding resends the last provisional response,
            // Completed the final one.
            (false, TxState::Proceeding) => tx.provisional.clone(),
            (false, TxState::Completed) => tx.final_response.clone(),
            (false, _) => None,
        };
        if let Some(b) = resend {
            self.sink.retransmit(tx.source.into(), b, txid);
        }
    }

    /// An ACK matched an INVITE server transaction.
    fn server_ack(&mut self, now: Instant, id: u64, msg: Message, source: Source) {
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        let t4 = tx.timers.t4;
        let txid = TxId::Server(ServerTxId(id));
        match tx.state {
            // 17.2.1: Completed -> Confirmed, G and H stop, Timer I (T4, 0 reliable).
            TxState::Completed => {
                tx.state = TxState::Confirmed;
                Sink::disarm(&mut tx.gens, &[0, 1]);
                if tx.source.reliable {
                    self.terminate_server(id, TerminationReason::Completed);
                } else {
                    self.sink.arm(&mut tx.gens, txid, Timer::I, now + t4);
                }
            }
            // RFC 6026 7.1: an ACK in Accepted is passed to the TU.
            TxState::Accepted => {
                self.sink.stats.acks_passed_up += 1;
                self.sink.emit(TuEvent::Ack {
                    msg,
                    source,
                    matched: Some(ServerTxId(id)),
                });
            }
            // Confirmed absorbs ACK retransmissions (17.2.1); an ACK before any final
            // response acknowledges nothing.
            _ => self.sink.stats.absorbed += 1,
        }
    }

    /// Sends a response on a server transaction (17.2.1, 17.2.2, RFC 6026 7.1). The response
    /// goes to the source of the request on its flow (18.2.2 is the transport's business).
    pub fn send_response(
        &mut self,
        now: Instant,
        id: ServerTxId,
        msg: Message,
    ) -> Result<(), ResponseError> {
        let status = msg.status().ok_or(ResponseError::NotAResponse)?;
        let tx = self
            .servers
            .get_mut(&id.0)
            .ok_or(ResponseError::UnknownTransaction)?;
        let (t1, t64) = (tx.timers.t1, tx.timers.t64());
        let txid = TxId::Server(id);
        let dest: Destination = tx.source.into();
        let reliable = tx.source.reliable;
        let bytes = msg.wire();
        let mut terminate = false;
        match (tx.invite, tx.state, status) {
            // 17.2.1: provisional responses in Proceeding; the TU answered, so no 100 from us.
            (true, TxState::Proceeding, 100..=199) => {
                Sink::disarm(&mut tx.gens, &[Timer::Trying.slot()]);
                tx.provisional = Some(bytes.clone());
                self.sink.transmit(dest, bytes, Some(txid));
            }
            // RFC 6026 7.1: a 2xx moves to Accepted with Timer L = 64*T1; the TU retransmits
            // the 2xx itself (13.3.1.4), through this transaction while it lasts.
            (true, TxState::Proceeding, 200..=299) => {
                tx.state = TxState::Accepted;
                tx.response_to_tag = key::to_tag(&msg).into();
                Sink::disarm(&mut tx.gens, &[0, 1]);
                self.sink.arm(&mut tx.gens, txid, Timer::L, now + t64);
                self.sink.transmit(dest, bytes, Some(txid));
            }
            // 17.2.1: 300-699 moves to Completed; G (T1, unreliable only) and H (64*T1).
            (true, TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                tx.response_to_tag = key::to_tag(&msg).into();
                tx.final_response = Some(bytes.clone());
                tx.interval = t1;
                Sink::disarm(&mut tx.gens, &[0, 1]);
                if !reliable {
                    self.sink.arm(&mut tx.gens, txid, Timer::G, now + t1);
                }
                self.sink.arm(&mut tx.gens, txid, Timer::H, now + t64);
                self.sink.transmit(dest, bytes, Some(txid));
            }
            (true, TxState::Accepted, 200..=299) => {
                self.sink.transmit(dest, bytes, Some(txid));
            }
            // 17.2.2: provisional responses move Trying to Proceeding.
            (false, TxState::Trying | TxState::Proceeding, 100..=199) => {
                tx.state = TxState::Proceeding;
                tx.provisional = Some(bytes.clone());
                self.sink.transmit(dest, bytes, Some(txid));
            }
            // 17.2.2: a final response: Completed, Timer J (64*T1 unreliable, 0 reliable).
            (false, TxState::Trying | TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                tx.response_to_tag = key::to_tag(&msg).into();
                tx.final_response = Some(bytes.clone());
                Sink::disarm(&mut tx.gens, &[0, 1]);
                self.sink.transmit(dest, bytes, Some(txid));
                if reliable {
                    terminate = true;
                } else {
                    self.sink.arm(&mut tx.gens, txid, Timer::J, now + t64);
                }
            }
            // 17.2.1/17.2.2: further final responses after the final one are discarded.
            (_, state, status) => return Err(ResponseError::InvalidState { state, status }),
        }
        if terminate {
            self.terminate_server(id.0, TerminationReason::Completed);
        }
        self.maybe_compact();
        Ok(())
    }

    fn server_timer(&mut self, now: Instant, id: u64, timer: Timer) {
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        let t2 = tx.timers.t2;
        let sid = ServerTxId(id);
        let txid = TxId::Server(sid);
        match (timer, tx.state) {
            (Timer::Trying, TxState::Proceeding) => self.send_trying(id),
            // 17.2.1: G retransmits the final response, doubling up to T2.
            (Timer::G, TxState::Completed) => {
                if let Some(b) = tx.final_response.clone() {
                    self.sink.retransmit(tx.source.into(), b, txid);
                }
                tx.interval = (tx.interval * 2).min(t2);
                self.sink
                    .arm(&mut tx.gens, txid, Timer::G, now + tx.interval);
            }
            // 17.2.1: H fires: no ACK came; inform the TU, terminate.
            (Timer::H, TxState::Completed) => {
                self.sink.stats.timeouts += 1;
                self.sink.emit(TuEvent::Timeout { tx: txid, timer });
                self.terminate_server(id, TerminationReason::Timeout);
            }
            (Timer::I, TxState::Confirmed)
            | (Timer::J, TxState::Completed)
            | (Timer::L, TxState::Accepted) => {
                self.terminate_server(id, TerminationReason::Completed);
            }
            // The TU never answered: answer 500 for it and let the normal Completed timers run.
            (Timer::TuGuard, TxState::Trying | TxState::Proceeding) => {
                let tag = self.new_tag();
                let Some(tx) = self.servers.get(&id) else {
                    return;
                };
                let resp =
                    build::response_for(&tx.request, 500, "Server Internal Error", Some(&tag));
                self.sink.stats.timeouts += 1;
                self.sink.emit(TuEvent::Timeout { tx: txid, timer });
                match resp {
                    Some(r) => {
                        let _ = self.send_response(now, sid, r);
                    }
                    None => self.terminate_server(id, TerminationReason::Timeout),
                }
            }
            _ => {}
        }
    }

    fn terminate_server(&mut self, id: u64, reason: TerminationReason) {
        let Some(tx) = self.servers.remove(&id) else {
            return;
        };
        match tx.key {
            MatchKey::Branch { .. } => self.branch_index.remove(tx.hash, id),
            MatchKey::Legacy { .. } => self.legacy_index.remove(tx.hash, id),
        }
        self.sink.emit(TuEvent::Terminated {
            tx: TxId::Server(ServerTxId(id)),
            reason,
        });
    }

    /// A request without the headers transactions are built on: a stateless 400 with the
    /// reason in the phrase where a response can be routed (a readable top Via; never to ACK,
    /// 17.1.1.3/17.2.1), otherwise a counted drop.
    fn reject_malformed(&mut self, msg: &Message, source: Source, header: BadHeader) {
        self.sink.stats.dropped_malformed += 1;
        let mut replied = false;
        if msg.method() != Some(Method::Ack) && key::top_via(msg).is_ok() {
            let tag = self.new_tag();
            let reason = format!("Bad Request ({})", header.as_str());
            if let Some(r) = build::response_for(msg, 400, &reason, Some(&tag)) {
                self.sink.transmit(source.into(), r.wire(), None);
                replied = true;
            }
        }
        self.sink.emit(TuEvent::Dropped {
            reason: DropReason::BadRequest { header, replied },
            source: Some(source),
        });
    }

    /// A new request (never an ACK: those return before) while the table is full: a stateless
    /// `503 Service Unavailable` with Retry-After (RFC 3261 21.5.4), so that the client backs
    /// off instead of retransmitting into the overload until its Timer B/F. No state is kept,
    /// so a retransmission of the request gets another 503 (or a transaction, once there is
    /// room). The 503 is no larger than the request, so answering does not amplify a flood.
    fn reject_overload(&mut self, msg: &Message, source: Source) {
        self.sink.stats.dropped_overload += 1;
        let mut replied = false;
        if let Some(after) = self.cfg.overload_retry_after {
            let tag = self.new_tag();
            let secs = after.as_secs().max(1).to_string();
            if let Some(r) = build::response_with(
                msg,
                503,
                "Service Unavailable",
                Some(&tag),
                &[("Retry-After", &secs)],
            ) {
                self.sink.transmit(source.into(), r.wire(), None);
                self.sink.stats.overload_answered += 1;
                replied = true;
            }
        }
        self.sink.emit(TuEvent::Dropped {
            reason: DropReason::TooManyTransactions { replied },
            source: Some(source),
        });
    }

    /// Index sizes, for tests: every live transaction is in exactly one index.
    #[doc(hidden)]
    pub fn index_entries(&self) -> usize {
        self.client_index.len() + self.branch_index.len() + self.legacy_index.len()
    }
}
