//! The engine: owns the transaction layer, the store handle, the proxy contexts and the timers,
//! and turns transaction-layer events into registrar and proxy work.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip_message::headers::Via;
use sip_message::{Host, Message, SipUri};
use sip_transaction::{
    ClientTxId, Destination, Output as TxOutput, ServerTxId, Source, TransactionLayer, TuEvent,
    TxId,
};
use store::RegistrationStore;

use crate::proxy::ProxyCtx;
use crate::resolve::{NumericOnly, Resolver};
use crate::settings::{EngineConfig, Listener, Transport};
use crate::util::{self, norm_host};

/// Tells whether an AOR exists even when it has no binding: the proxy answers 480 Temporarily
/// Unavailable for a known AOR without bindings and 404 Not Found for an unknown one (RFC 3261
/// 16.5 and 21.4.18). Without a directory, an AOR is known while the store still holds a
/// binding of it (lapsed ones included, until they are purged).
pub trait UserDirectory: Send + Sync {
    fn is_known(&self, aor: &str) -> bool;
}

/// What the shell must do, drained with [`Engine::poll_output`].
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `bytes` to `dest`. Report a failure with [`Engine::handle_transport_error`] when
    /// `tx` names a transaction.
    Transmit {
        dest: Destination,
        bytes: Bytes,
        tx: Option<TxId>,
    },
    /// Something for logs and metrics.
    Event(Event),
    /// Ask the RADIUS servers to verify these digest credentials, then call
    /// [`Engine::handle_auth_result`] with `ticket` (the request waits meanwhile).
    AuthRequest {
        ticket: u64,
        request: Box<auth::radius::DigestRequest>,
    },
}

/// Log and metric events. None of them needs an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A REGISTER was applied (and made durable): `bindings` is what the AOR has now.
    Registered {
        aor: String,
        bindings: usize,
        source: Source,
    },
    /// A REGISTER was refused.
    RegisterRejected {
        aor: Option<String>,
        status: u16,
        reason: String,
        source: Source,
    },
    /// A request was answered by the engine itself with a final non-2xx response (validation,
    /// target determination, loop, ...).
    Rejected {
        method: String,
        status: u16,
        reason: String,
        source: Source,
    },
    /// A request was forwarded statefully on `branches` branches (more may follow with q-group
    /// forking).
    Forwarded {
        call_id: String,
        method: String,
        branches: usize,
    },
    /// The final response of a proxied request went upstream.
    ProxyFinal {
        call_id: String,
        method: String,
        status: u16,
    },
    /// An upstream CANCEL matched a proxied INVITE; its pending branches are cancelled.
    Cancelled { call_id: String, branches: usize },
    /// Timer C fired on a branch.
    TimerC { call_id: String },
    /// An ACK or a response was forwarded without a transaction.
    StatelessForward { what: String, dest: SocketAddr },
    /// A store operation failed; the request got a 500.
    StoreFailed { op: &'static str, error: String },
    /// Lapsed bindings were purged.
    Purged { bindings: usize },
    /// A new request was refused because the transaction table is full
    /// (`max_transactions`); `replied` tells whether it got a stateless 503 with Retry-After.
    /// Overload comes in floods: the shell should rate-limit its logging.
    Overloaded { source: Source, replied: bool },
    /// The policy's decision on a request, with the entries consulted (log at debug).
    Policy {
        source: Source,
        method: String,
        verdict: String,
        trace: String,
    },
    /// A failed authentication (counted towards a ban of the source).
    AuthFailed {
        source: Source,
        user: Option<String>,
        reason: String,
    },
    /// Failed authentications banned a source or locked a user out (already persisted).
    Banned(store::Ban),
    /// A message was not processed.
    Dropped {
        reason: String,
        source: Option<Source>,
    },
    /// A call through the B2BUA started, was answered or ended (CDR material).
    Call(b2bua::B2buaEvent),
    /// The upstream registrar answered sipwarden's REGISTER for `aor` (registrar.mode = relay):
    /// `contacts` of its bindings are registered there now (crate::regrelay).
    UpstreamRegister {
        aor: String,
        status: u16,
        contacts: usize,
    },
    /// A binding behind NAT stopped answering keep-alives and was removed.
    DeadFlow { aor: String, contact: String },
}

/// Counters, monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub registers_ok: u64,
    pub registers_rejected: u64,
    /// Requests answered by the engine itself with a final non-2xx response.
    pub local_rejections: u64,
    /// Proxy contexts created (requests forwarded statefully).
    pub proxied_requests: u64,
    /// Branches started.
    pub branches: u64,
    pub loops_detected: u64,
    pub stateless_forwards: u64,
    pub upstream_cancels: u64,
    pub timer_c_fired: u64,
    pub store_errors: u64,
    pub dropped: u64,
    /// New requests refused because the transaction table was full.
    pub overloaded: u64,
}

/// Timers of the engine itself (the transaction layer has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EngineTimer {
    TimerC { ctx: u64, branch: usize },
    Purge,
}

/// The registrar and stateful proxy of sipwarden, sans-IO. See the crate documentation.
pub struct Engine {
    pub(crate) layer: TransactionLayer,
    pub(crate) store: Arc<dyn RegistrationStore>,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) directory: Option<Arc<dyn UserDirectory>>,
    pub(crate) cfg: EngineConfig,
    /// `(instant, wall clock)` at one moment: the wall clock of any later instant follows.
    clock: (Instant, SystemTime),
    out: VecDeque<Output>,
    timers: BinaryHeap<Reverse<(Instant, u64, EngineTimer)>>,
    timer_seq: u64,
    pub(crate) ctxs: HashMap<u64, ProxyCtx>,
    pub(crate) next_ctx: u64,
    pub(crate) by_server: HashMap<ServerTxId, u64>,
    pub(crate) by_client: HashMap<ClientTxId, (u64, usize)>,
    pub(crate) stats: Stats,
    pub(crate) security: Option<Box<crate::security::Security>>,
    pub(crate) sec_stats: crate::security::SecurityStats,
    /// The request being answered comes from an untrusted source: no `Server` header.
    pub(crate) hide_server: bool,
    /// Calls between zones (crate::b2b); `None`: every call is proxied.
    pub(crate) cross: Option<crate::b2b::CrossZone>,
    /// Registration relay and NAT keep-alives (crate::regrelay).
    pub(crate) relay: crate::regrelay::RelayState,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("contexts", &self.ctxs.len())
            .field("transactions", &self.layer.transaction_count())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Engine {
    /// A new engine. `now` and `wall` are the same moment on the monotonic and the wall clock:
    /// the engine derives the wall time of later instants from them (binding expiry, Date), so
    /// it never reads a clock. Resync with [`Engine::set_wall_clock`] if the wall clock jumps.
    pub fn new(
        cfg: EngineConfig,
        store: Arc<dyn RegistrationStore>,
        now: Instant,
        wall: SystemTime,
    ) -> Engine {
        let mut tcfg = cfg.transaction.clone();
        if tcfg.seed == 0 {
            tcfg.seed = cfg.seed;
        }
        let mut e = Engine {
            layer: TransactionLayer::new(tcfg),
            store,
            resolver: Arc::new(NumericOnly),
            directory: None,
            cfg,
            clock: (now, wall),
            out: VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            ctxs: HashMap::new(),
            next_ctx: 1,
            by_server: HashMap::new(),
            by_client: HashMap::new(),
            stats: Stats::default(),
            security: None,
            sec_stats: Default::default(),
            hide_server: false,
            cross: None,
            relay: Default::default(),
        };
        e.relay_restore(now);
        if e.cfg.registrar.enabled && !e.cfg.registrar.purge_interval.is_zero() {
            let at = now + e.cfg.registrar.purge_interval;
            e.arm(at, EngineTimer::Purge);
        }
        e
    }

    /// Host names of next hops are resolved by `r` (default: numeric hosts only).
    pub fn with_resolver(mut self, r: Arc<dyn Resolver>) -> Engine {
        self.resolver = r;
        self
    }

    /// Which AORs exist (480 vs 404 for an AOR without bindings).
    pub fn with_directory(mut self, d: Arc<dyn UserDirectory>) -> Engine {
        self.directory = Some(d);
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The transaction layer (its state and counters, for tests and metrics).
    pub fn transactions(&self) -> &TransactionLayer {
        &self.layer
    }

    /// Live proxy contexts (requests being proxied, until their client transactions end).
    pub fn context_count(&self) -> usize {
        self.ctxs.len()
    }

    /// The wall clock at `now`.
    pub fn wall_clock(&self, now: Instant) -> SystemTime {
        let (i, w) = self.clock;
        match now.checked_duration_since(i) {
            Some(d) => w + d,
            None => w.checked_sub(i - now).unwrap_or(w),
        }
    }

    /// Applies a reloaded configuration without dropping anything in progress: the registrar
    /// settings (domains, expiry limits, contact routing) from the next REGISTER or lookup on,
    /// the proxy settings for the next request (Timer C for branches started or refreshed by
    /// a provisional response after this), the `Server` header for the next response, and the
    /// transaction settings for new transactions (those in progress keep their timers). The
    /// identity (listeners: they need a restart) and the seeds are kept.
    pub fn reconfigure(&mut self, cfg: EngineConfig) {
        let EngineConfig {
            mut transaction,
            registrar,
            proxy,
            identity: _,
            server_header,
            seed: _,
        } = cfg;
        transaction.seed = self.layer.config().seed;
        self.layer.set_config(transaction.clone());
        self.cfg.transaction = transaction;
        self.cfg.registrar = registrar;
        self.cfg.proxy = proxy;
        self.cfg.server_header = server_header;
    }

    /// Tells the engine that the wall clock reads `wall` at `now` (after NTP stepped it).
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.clock = (now, wall);
    }

    // ----- inputs -----

    /// A message from the transport. Drain [`Engine::poll_output`] afterwards.
    pub fn handle_incoming(&mut self, now: Instant, msg: Message, source: Source) {
        if !self.screen(now, &msg, source) {
            self.pump(now);
            return;
        }
        self.layer.handle_message(now, msg, source);
        self.pump(now);
    }

    /// Raw bytes of one message (a datagram, or a frame cut by the stream framer). A message
    /// that does not parse is dropped with an [`Event::Dropped`] naming the reason (no
    /// response can be built from what did not parse).
    pub fn handle_bytes(&mut self, now: Instant, bytes: Bytes, source: Source) {
        match Message::parse(bytes) {
            Ok(m) => self.handle_incoming(now, m, source),
            Err(e) => {
                self.stats.dropped += 1;
                self.event(Event::Dropped {
                    reason: format!("unparsable message: {} at {}", e.kind.reason(), e.offset),
                    source: Some(source),
                });
            }
        }
    }

    /// The shell could not deliver what a transaction sent.
    pub fn handle_transport_error(&mut self, now: Instant, tx: TxId) {
        self.layer.handle_transport_error(now, tx);
        self.pump(now);
    }

    /// Fires every timer due at `now` (the transaction layer's and the engine's).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(now);
        self.b2b_timeout(now);
        self.pump(now);
        self.relay_timeout(now);
        self.pump(now);
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, t))) = self.timers.pop() else {
                break;
            };
            match t {
                EngineTimer::Purge => self.purge(now),
                EngineTimer::TimerC { ctx, branch } => self.timer_c(now, ctx, branch),
            }
            self.pump(now);
        }
    }

    // ----- outputs -----

    /// The next output; `None` when there is nothing left. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Engine::handle_timeout`] must be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let mine = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let mine = match (mine, self.b2b_poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mine = match (mine, self.relay.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (self.layer.poll_timeout(), mine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- internals -----

    pub(crate) fn push_output(&mut self, o: Output) {
        self.out.push_back(o);
    }

    pub(crate) fn event(&mut self, e: Event) {
        if let Event::Call(c) = &e {
            self.observe_b2b_call(c);
        }
        self.out.push_back(Output::Event(e));
    }

    pub(crate) fn arm(&mut self, at: Instant, t: EngineTimer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, t)));
    }

    /// Moves the layer's outputs out and handles its events, until it has nothing left (an
    /// event handler may feed the layer again).
    pub(crate) fn pump(&mut self, now: Instant) {
        while let Some(o) = self.layer.poll_output() {
            self.observe_calls(now, &o);
            match o {
                TxOutput::Transmit { dest, bytes, tx } => {
                    self.out.push_back(Output::Transmit { dest, bytes, tx })
                }
                TxOutput::Event(ev) => {
                    // The B2BUA's calls first, before "request to us" (crate::b2b).
                    if let Some(ev) = self.b2b_tu_event(now, ev) {
                        self.tu_event(now, ev)
                    }
                }
            }
        }
    }

    fn tu_event(&mut self, now: Instant, ev: TuEvent) {
        // The relay's own REGISTERs and keep-alives (crate::regrelay).
        let Some(ev) = self.relay_tu_event(now, ev) else {
            return;
        };
        match ev {
            TuEvent::Request { id, msg, source } => self.on_request(now, id, msg, source),
            TuEvent::Cancel {
                id,
                msg,
                source,
                target,
            } => self.on_cancel(now, id, msg, source, target),
            TuEvent::Ack { msg, source, .. } => self.on_ack(now, msg, source),
            TuEvent::Response { id, msg, .. } => self.on_response(now, id, msg),
            TuEvent::StrayResponse { msg, source } => self.on_stray_response(msg, source),
            TuEvent::Timeout { tx, .. } => {
                if let TxId::Client(c) = tx {
                    self.on_branch_failure(now, c, 408, "Request Timeout");
                }
            }
            TuEvent::TransportError { tx } => {
                if let TxId::Client(c) = tx {
                    self.on_branch_failure(now, c, 503, "Service Unavailable");
                }
            }
            TuEvent::Terminated { tx, .. } => self.on_terminated(now, tx),
            TuEvent::Dropped {
                reason: sip_transaction::DropReason::TooManyTransactions { replied },
                source: Some(source),
            } => {
                self.stats.overloaded += 1;
                self.event(Event::Overloaded { source, replied });
            }
            TuEvent::Dropped { reason, source } => {
                self.stats.dropped += 1;
                self.event(Event::Dropped {
                    reason: reason.to_string(),
                    source,
                });
            }
        }
    }

    fn purge(&mut self, now: Instant) {
        let wall = self.wall_clock(now);
        match self.store.expire(wall) {
            Ok(0) => {}
            Ok(n) => self.event(Event::Purged { bindings: n }),
            Err(e) => {
                self.stats.store_errors += 1;
                self.event(Event::StoreFailed {
                    op: "expire",
                    error: e.to_string(),
                });
            }
        }
        let every = self.cfg.registrar.purge_interval;
        self.arm(now + every, EngineTimer::Purge);
    }

    /// Answers a server transaction with a response built from its request. `extra` header
    /// fields are appended. Final non-2xx answers are reported as `Rejected` unless `quiet`.
    pub(crate) fn reply(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Message,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let tag = (status > 100).then(|| self.layer.new_tag());
        let mut fields: Vec<(&str, String)> = extra.to_vec();
        if let Some(s) = self
            .cfg
            .server_header
            .as_ref()
            .filter(|_| !self.hide_server)
        {
            fields.push(("Server", s.clone()));
        }
        let Some(resp) = util::response(req, status, reason, tag.as_deref(), &fields) else {
            self.stats.dropped += 1;
            self.event(Event::Dropped {
                reason: format!("could not build a {status} response"),
                source: None,
            });
            return;
        };
        if let Err(e) = self.layer.send_response(now, id, resp) {
            self.event(Event::Dropped {
                reason: format!("response {status} not sent: {e}"),
                source: None,
            });
        }
    }

    /// [`Engine::reply`] for a request the engine refuses, with the `Rejected` event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reject(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Message,
        source: Source,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        self.stats.local_rejections += 1;
        self.reply(now, id, req, status, reason, extra);
        self.event(Event::Rejected {
            method: req.method_str().unwrap_or("").to_owned(),
            status,
            reason: reason.to_owned(),
            source,
        });
    }

    // ----- who we are -----

    /// The listener to name in what goes to an address of the family `ipv6`: the first one of
    /// transport `t` and that family, else of that family, else of `t`, else the first. A peer
    /// on IPv6 cannot reach an IPv4 Via or Record-Route, and the other way round.
    pub(crate) fn listener(&self, t: Transport, ipv6: bool) -> Option<&Listener> {
        let ls = &self.cfg.identity.listeners;
        let fam = |l: &&Listener| l.address.is_ipv6() == ipv6;
        ls.iter()
            .filter(fam)
            .find(|l| l.transport == t)
            .or_else(|| ls.iter().find(fam))
            .or_else(|| ls.iter().find(|l| l.transport == t))
            .or_else(|| ls.first())
    }

    /// `host:port` of our Via for transport `t` towards an address of the family `ipv6`.
    pub(crate) fn sent_by(&self, t: Transport, ipv6: bool) -> String {
        self.listener(t, ipv6)
            .map(Listener::sent_by)
            .unwrap_or_else(|| "invalid.invalid".to_owned())
    }

    /// The Record-Route value for a request that came in over `t` and goes to an address of
    /// the family `ipv6` (IPv6 addresses in brackets, RFC 3261 25.1 `IPv6reference`).
    pub(crate) fn record_route(&self, t: Transport, sips: bool, ipv6: bool) -> String {
        if let Some(rr) = &self.cfg.identity.record_route {
            return format!("<{rr}>");
        }
        let scheme = if sips { "sips" } else { "sip" };
        let l = self.listener(t, ipv6);
        let host = self.sent_by(t, ipv6);
        match l.map(|l| l.transport) {
            Some(Transport::Udp) | None => format!("<{scheme}:{host};lr>"),
            Some(lt) => format!("<{scheme}:{host};transport={};lr>", lt.param()),
        }
    }

    /// One of the domains we are registrar and location service for.
    pub(crate) fn is_our_domain(&self, host: &str) -> bool {
        let h = norm_host(host);
        self.cfg.registrar.domains.iter().any(|d| norm_host(d) == h)
    }

    /// A Request-URI in one of our domains: the host is one of them and the port, when the URI
    /// names one, is a port we listen on. `sip:bob@127.0.0.1:5090` names another element on
    /// this machine (a phone, a PBX), not our location service, even when 127.0.0.1 is one of
    /// our domains (as it is when `registrar.domains` is empty and we serve our own addresses).
    pub(crate) fn is_our_domain_at(&self, u: &SipUri<'_>) -> bool {
        self.is_our_domain(u.host_str)
            && u.port.is_none_or(|p| {
                self.cfg
                    .identity
                    .listeners
                    .iter()
                    .any(|l| l.address.port() == p)
            })
    }

    /// Whether `(host, port)` names this element: one of its host names (any port), or the
    /// address or advertised address of a listener (port equal, the default when absent).
    pub(crate) fn is_this_host(&self, host: &Host<'_>, host_str: &str, port: Option<u16>) -> bool {
        let h = norm_host(host_str);
        if self
            .cfg
            .identity
            .hostnames
            .iter()
            .any(|n| norm_host(n) == h)
        {
            return true;
        }
        self.cfg.identity.listeners.iter().any(|l| {
            let want = port.unwrap_or(l.transport.default_port());
            let by_addr = match host.ip() {
                Some(ip) => !l.address.ip().is_unspecified() && l.address.ip() == ip,
                None => false,
            } && l.address.port() == want;
            let by_adv = l.advertise.as_deref().is_some_and(|a| {
                let (ah, ap) = split_host_port(a);
                let ap = ap.unwrap_or(l.transport.default_port());
                let same_host = match (Host::parse(ah), host.ip()) {
                    (Ok(ahost), Some(_)) => ahost.equivalent(host),
                    _ => norm_host(ah) == h,
                };
                same_host && ap == want
            });
            by_addr || by_adv
        })
    }

    /// A SIP URI that names this element or one of our domains (RFC 3261 16.4: "indicates
    /// this proxy").
    pub(crate) fn is_us(&self, u: &SipUri<'_>) -> bool {
        self.is_our_domain_at(u) || self.is_this_host(&u.host, u.host_str, u.port)
    }

    /// A Via that this element wrote (its sent-by is one of our listeners).
    pub(crate) fn is_our_via(&self, v: &Via<'_>) -> bool {
        self.is_this_host(&v.host, v.host_str, v.port)
    }

    /// Where a response goes by its (new) top Via (RFC 3261 18.2.2 with RFC 3581): `received`
    /// over the host, `rport` over the port.
    pub(crate) fn via_destination(&self, v: &Via<'_>) -> Option<Destination> {
        let t = Transport::parse(v.transport).unwrap_or(Transport::Udp);
        let ip = match v.received {
            Some(ip) => ip,
            None => match v.host.ip() {
                Some(ip) => ip,
                None => {
                    let port = v.port;
                    return self
                        .resolver
                        .resolve(v.host_str, port, t)
                        .map(|remote| Destination {
                            remote,
                            flow: None,
                            reliable: t.reliable(),
                        });
                }
            },
        };
        let port = match v.rport {
            Some(Some(p)) => p,
            _ => v.port.unwrap_or(t.default_port()),
        };
        Some(Destination {
            remote: SocketAddr::new(ip, port),
            flow: None,
            reliable: t.reliable(),
        })
    }

    pub(crate) fn timer_c_duration(&self) -> Duration {
        self.cfg.proxy.timer_c
    }
}

/// `host[:port]` split; IPv6 references keep their brackets.
pub(crate) fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let port = s[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&s[..=end], port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => (s, None),
        },
        None => (s, None),
    }
}
