//! The SIP transport of sipwarden: a thin tokio shell around the sans-IO layers.
//!
//! [`Transport::start`] binds the configured UDP sockets and TCP listeners and returns a
//! [`TransportHandle`] to send with and a bounded channel of [`Incoming`] messages.
//!
//! What arrives:
//! - **UDP datagrams** are demultiplexed: STUN (RFC 5389 header test) is answered at once with
//!   the [`stun`] responder (RFC 5626 keepalives); a datagram of nothing but CR/LF is a
//!   keepalive, ignored or answered with CRLF ([`TransportConfig::udp_keepalive_pong`]);
//!   everything else is parsed as SIP.
//! - **TCP streams** are cut with [`sip_message::StreamFramer`]; a CRLFCRLF ping gets a CRLF
//!   pong (RFC 5626 3.5.1). A stream that cannot be framed is closed.
//! - A **request** that does not parse gets a stateless answer with the parse error's status
//!   and reason (`400 malformed Via`, `513 message too large`, ...) when Via, From, To, Call-ID
//!   and CSeq can be salvaged from the raw bytes; otherwise, and for ACK and responses, it is a
//!   counted, logged drop. Requests whose top Via is missing or malformed are treated the same.
//! - Every other request gets `received` and `rport` on its top Via (RFC 3261 18.2.1, RFC 3581)
//!   before it is delivered, so the layers above see what the RFC says a server sees.
//!
//! What leaves, through [`TransportHandle::send`] (never blocks; every queue is bounded and a
//! full queue is an error and a counted drop):
//! - a **response** goes on the TCP connection its request came on when `dest.flow` names one
//!   that is still open; otherwise over the transport its request came on (`dest.reliable`),
//!   whatever the Via's transport token says, to the address of its top Via (RFC 3261 18.2.2,
//!   RFC 3581 4, see [`via::response_target`]): UDP to `received`:`rport` (the source), TCP to
//!   `received`:sent-by port over an existing connection to that address or a new one;
//! - a **request** goes over UDP from the socket `dest.flow` names (or the first of the right
//!   address family), or over TCP on `dest.flow`, an existing connection to `dest.remote`, or a
//!   new connection (connect timeout). A UDP request larger than
//!   [`TransportConfig::udp_mtu`] is **switched to TCP by the transport**, which rewrites the
//!   top Via transport to `TCP` (RFC 3261 18.1.1) and reports it in [`Sent::switched_to_tcp`]:
//!   the caller keeps its branch (transaction matching is unaffected) and may stop its UDP
//!   retransmission timer (retransmissions, should they come, are switched the same way and
//!   reuse the connection).
//!
//! Flows: each UDP socket is one [`FlowId`] (the transaction layer hands it back so that
//! responses leave from the socket the request came to); each TCP connection is another,
//! reused for responses and for requests to the same flow or the same remote address:port.
//!
//! **Admission** ([`TransportConfig::admission`], module [`admit`]): a check installed by the
//! owner runs first on every datagram (before it is copied out of the receive buffer), on
//! every accepted connection (before the TLS handshake) and on every message framed on a
//! stream; what it refuses is dropped, counted and logged (rate-limited), and a banned
//! source's connection is closed. Nothing of a refused packet is parsed.
//!
//! **TLS** ([`TransportConfig::tls`], module [`tls`]): a TLS listener accepts TCP connections
//! and runs the handshake in the connection's task (admitted first by a global and a
//! per-source token bucket, bounded by [`TransportConfig::tls_handshake_timeout`]); after it,
//! the connection is a stream flow like a TCP one (reuse, idle timeout, CRLF keepalives,
//! per-source limits) whose messages carry the verified client certificate's names
//! ([`Incoming::peer`]). A request leaves over TLS when its top Via says `TLS` (the engine
//! writes it so for `sips:` and `;transport=tls` targets), verifying the next hop's host
//! name (top Route, else Request-URI) against [`TransportConfig::tls_client`]'s trust
//! anchors. A `sips:` Request-URI never leaves over UDP or TCP, and nothing plain goes to or
//! is accepted from an address [`TransportConfig::tls_required`] names
//! ([`SendError::TlsRequired`], [`DropReason::PlainInTlsZone`]). Certificates are reloaded by
//! [`TransportHandle::reload_tls`] and when their files change (polled): new handshakes use
//! the new ones, established connections keep theirs.

pub mod admit;
mod config;
mod limit;
mod stateless;
mod stats;
mod tcp;
pub mod tls;
mod udp;
pub mod via;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use sip_message::{Limits, Message};
pub use sip_transaction::{Destination, FlowId, Source, TxId};
use tokio::sync::{mpsc, watch};

pub use admit::{Admission, AdmissionHook, Admit, Arrival, ArrivalKind, RateLog, Refusal};
pub use config::{TlsListener, TlsRequired, TransportConfig};
pub use limit::{HandshakeLimiter, LogLimiter, Refused as HandshakeRefused};
pub use stateless::{bad_request_response, Unanswerable};
pub use stats::{DropReason, StatsSnapshot};
pub use tls::{PeerIdentity, TlsError};
pub use via::{RouteError, ViaError, ViaTarget};

use stats::{inc, Stats};

/// A transport protocol this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl Protocol {
    pub fn is_reliable(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Tls)
    }

    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP message that arrived. Requests carry the stamped top Via.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub msg: Message,
    pub source: SocketAddr,
    pub local: SocketAddr,
    pub flow: FlowId,
    pub reliable: bool,
    pub transport: Protocol,
    pub received_at: Instant,
    /// TLS: the names of the certificate the peer presented and the listener verified
    /// (mutual TLS); None over UDP/TCP or when the client sent none.
    pub peer: Option<Arc<PeerIdentity>>,
}

impl Incoming {
    /// The source as the transaction layer takes it.
    pub fn source(&self) -> Source {
        Source {
            remote: self.source,
            flow: self.flow,
            reliable: self.reliable,
        }
    }
}

/// A message to send. Build it with [`Outgoing::new`] from the transaction layer's
/// `Output::Transmit { dest, bytes, .. }`.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub bytes: Bytes,
    pub dest: Destination,
    /// UDP: the local address to send from when `dest.flow` does not name a UDP socket.
    pub local: Option<SocketAddr>,
    /// Responses: route by the top Via (RFC 3261 18.2.2) unless the TCP connection in
    /// `dest.flow` is open. When false, `dest` is used as it is. Default true.
    pub route_by_via: bool,
    /// Requests over TCP with `dest.flow` set: fail with [`SendError::FlowClosed`] when that
    /// connection is gone instead of using or opening another (RFC 5626 flows to clients
    /// behind NAT, which a new connection cannot reach). Default false.
    pub strict_flow: bool,
    /// The transaction that sent it. A failure found after `send` returned (a connect that
    /// fails or times out, a write that fails, a datagram the kernel refuses) is reported for
    /// it on the channel of [`TransportHandle::take_send_failures`], so that the transaction
    /// layer can treat it as a transport error (RFC 3261 8.1.3.1, 17.1.4). Default None.
    pub tx: Option<TxId>,
}

impl Outgoing {
    pub fn new(bytes: Bytes, dest: Destination) -> Outgoing {
        Outgoing {
            bytes,
            dest,
            local: None,
            route_by_via: true,
            strict_flow: false,
            tx: None,
        }
    }

    /// The transaction to blame for a later failure (see [`Outgoing::tx`]).
    pub fn with_tx(mut self, tx: Option<TxId>) -> Outgoing {
        self.tx = tx;
        self
    }
}

/// Why a message that [`TransportHandle::send`] had accepted did not leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The outbound TCP connect was refused or failed.
    ConnectFailed,
    /// The outbound TCP connect did not complete within the connect timeout.
    ConnectTimeout,
    /// Writing to the connection failed or timed out, or the connection ended before the
    /// message was written.
    WriteFailed,
    /// The kernel refused the datagram (no route, unreachable network, ...).
    UdpSendFailed,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::ConnectFailed => "connect failed",
            FailureKind::ConnectTimeout => "connect timed out",
            FailureKind::WriteFailed => "write failed",
            FailureKind::UdpSendFailed => "datagram not sent",
        })
    }
}

/// A message of transaction `tx` that was queued but could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFailure {
    pub tx: TxId,
    pub remote: SocketAddr,
    pub flow: FlowId,
    pub protocol: Protocol,
    pub kind: FailureKind,
}

/// A queued message and the transaction to blame if it cannot leave.
pub(crate) type Queued = (Bytes, Option<TxId>);

/// What [`TransportHandle::send`] did: the message is queued on this flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub protocol: Protocol,
    pub flow: FlowId,
    pub remote: SocketAddr,
    /// A UDP request was moved to TCP because of its size (top Via rewritten).
    pub switched_to_tcp: bool,
    /// A new outbound connection is being opened for it.
    pub new_connection: bool,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue of the socket or connection is full (counted as a drop).
    QueueFull,
    /// No UDP socket for the destination's address family.
    NoSocket,
    /// A response that cannot be routed by its Via.
    Route(RouteError),
    /// The message had to be parsed (response routing, TCP switch) and did not parse.
    Malformed,
    /// Larger than a UDP datagram can be, and not switched to TCP.
    TooLarge,
    /// `strict_flow` and the connection is gone.
    FlowClosed,
    /// [`TransportConfig::max_connections`] reached.
    TooManyConnections,
    /// It would leave in plain text where TLS is required: a `sips:` Request-URI, or a
    /// destination [`TransportConfig::tls_required`] names.
    TlsRequired,
    /// A TLS connection is needed and [`TransportConfig::tls_client`] is not set.
    NoTlsClient,
    /// The transport was shut down.
    Shutdown,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::QueueFull => f.write_str("send queue full"),
            SendError::NoSocket => f.write_str("no UDP socket for this address family"),
            SendError::Route(e) => write!(f, "cannot route response: {e}"),
            SendError::Malformed => f.write_str("message does not parse"),
            SendError::TooLarge => f.write_str("too large for a datagram"),
            SendError::FlowClosed => f.write_str("flow closed"),
            SendError::TooManyConnections => f.write_str("connection limit reached"),
            SendError::TlsRequired => f.write_str("TLS required, plain transport refused"),
            SendError::NoTlsClient => f.write_str("no TLS client configuration"),
            SendError::Shutdown => f.write_str("transport shut down"),
        }
    }
}

impl std::error::Error for SendError {}

/// What is known about a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    pub protocol: Protocol,
    /// Unknown while an outbound connection is being opened.
    pub local: Option<SocketAddr>,
    /// None for a UDP socket.
    pub remote: Option<SocketAddr>,
    pub inbound: bool,
}

/// The largest UDP payload (IPv4).
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Where a message came from, for the common receive path.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub source: SocketAddr,
    pub local: SocketAddr,
    pub flow: FlowId,
    pub protocol: Protocol,
    pub peer: Option<Arc<PeerIdentity>>,
}

pub(crate) struct Inner {
    pub cfg: TransportConfig,
    /// Limits for messages this side rewrote (stamped Via, switched transport): a little room
    /// for the added parameters.
    pub relaxed: Limits,
    pub stats: Stats,
    next_flow: AtomicU64,
    pub udp: Vec<udp::UdpSock>,
    pub tcp_listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub tls_servers: Vec<Arc<tls::ServerTlsConfig>>,
    pub tls_client: Option<Arc<tls::ClientTlsConfig>>,
    handshakes: Mutex<limit::HandshakeLimiter>,
    handshake_log: Mutex<limit::LogLimiter>,
    plain_log: Mutex<limit::LogLimiter>,
    refusal_log: admit::RefusalLogs,
    pub conns: Mutex<tcp::ConnTable>,
    incoming: mpsc::Sender<Incoming>,
    failures: mpsc::Sender<SendFailure>,
    failures_rx: Mutex<Option<mpsc::Receiver<SendFailure>>>,
    closed: mpsc::Sender<FlowId>,
    closed_rx: Mutex<Option<mpsc::Receiver<FlowId>>>,
    pub shutdown: watch::Sender<bool>,
    pub rt: tokio::runtime::Handle,
}

impl Inner {
    pub fn new_flow(&self) -> FlowId {
        FlowId(self.next_flow.fetch_add(1, Ordering::Relaxed))
    }

    pub fn conns(&self) -> MutexGuard<'_, tcp::ConnTable> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn handshakes(&self) -> MutexGuard<'_, limit::HandshakeLimiter> {
        self.handshakes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A failed or refused handshake: a warning, at most one line per interval with the count
    /// since the last (a scan or a flood would otherwise fill the log).
    pub fn warn_handshake(&self, remote: SocketAddr, inbound: bool, why: &str) {
        let n = self
            .handshake_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hit(Instant::now());
        if let Some(n) = n {
            let dir = if inbound { "from" } else { "to" };
            tracing::warn!("TLS handshake {dir} {remote} failed: {why} ({n} failure(s) since the last such line)");
        }
    }

    /// Runs the admission check ([`TransportConfig::admission`]); a refusal is counted and
    /// logged (rate-limited). Returns the refusal, if any.
    #[inline]
    pub fn refused(&self, arrival: &admit::Arrival) -> Option<Refusal> {
        let check = self.cfg.admission.get()?;
        let now = Instant::now();
        match check.admit(arrival, now) {
            Admit::Accept => None,
            Admit::Drop(why) => {
                self.stats.drop(why.drop_reason());
                self.refusal_log.log(why, arrival, now);
                Some(why)
            }
        }
    }

    fn plain_refused(&self, ip: IpAddr) -> bool {
        if !self.cfg.tls_required.applies(ip) {
            return false;
        }
        let n = self
            .plain_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hit(Instant::now());
        if let Some(n) = n {
            tracing::warn!("plain-text SIP with {ip} refused: TLS is required for this address ({n} message(s) since the last such line)");
        }
        true
    }

    /// Reports a message that did not leave, when a transaction sent it. A full channel (the
    /// engine is far behind) loses the report: the transaction then ends by its timer.
    pub fn report_failure(
        &self,
        tx: Option<TxId>,
        remote: SocketAddr,
        flow: FlowId,
        protocol: Protocol,
        kind: FailureKind,
    ) {
        let Some(tx) = tx else { return };
        let f = SendFailure {
            tx,
            remote,
            flow,
            protocol,
            kind,
        };
        if self.failures.try_send(f).is_ok() {
            inc(&self.stats.failures_reported);
        } else {
            inc(&self.stats.failures_unreported);
        }
    }

    /// The common receive path for a datagram or a stream frame that is not a keepalive.
    /// Returns a stateless answer to send back the way the message came.
    pub fn on_sip(&self, pkt: Bytes, meta: &Meta) -> Option<Bytes> {
        if meta.protocol != Protocol::Tls && self.plain_refused(meta.source.ip().to_canonical()) {
            self.stats.drop(DropReason::PlainInTlsZone);
            return None;
        }
        let msg = match Message::parse_with(pkt.clone(), &self.cfg.limits) {
            Ok(m) => m,
            Err(e) => {
                self.stats.parse_error(e.kind);
                return self.answer_bad(&pkt, e.status_code(), e.reason(), meta);
            }
        };
        let msg = if msg.is_request() {
            match via::stamp_request(&msg, meta.source, self.cfg.force_rport) {
                Ok(None) => msg,
                Ok(Some(b)) => match Message::parse_with(b, &self.relaxed) {
                    Ok(m) => m,
                    Err(e) => {
                        self.stats.drop(DropReason::Internal);
                        tracing::warn!(source = %meta.source, error = %e, "stamped request does not parse");
                        return None;
                    }
                },
                Err(e) => {
                    self.stats.parse_error(e.kind());
                    return self.answer_bad(&pkt, 400, e.reason(), meta);
                }
            }
        } else {
            msg
        };
        let inc = Incoming {
            msg,
            source: meta.source,
            local: meta.local,
            flow: meta.flow,
            reliable: meta.protocol.is_reliable(),
            transport: meta.protocol,
            received_at: Instant::now(),
            peer: meta.peer.clone(),
        };
        if self.incoming.try_send(inc).is_err() {
            self.stats.drop(DropReason::IncomingQueueFull);
            tracing::debug!(source = %meta.source, "incoming queue full, message dropped");
        }
        None
    }

    fn answer_bad(&self, raw: &[u8], code: u16, reason: &str, meta: &Meta) -> Option<Bytes> {
        match stateless::bad_request_response(raw, code, reason) {
            Ok(b) => {
                inc(&self.stats.bad_requests_answered);
                tracing::debug!(source = %meta.source, transport = %meta.protocol, code, reason, "bad request answered");
                Some(b)
            }
            Err(Unanswerable::NotARequest) => {
                self.stats.drop(DropReason::BadResponse);
                tracing::debug!(source = %meta.source, reason, "malformed response dropped");
                None
            }
            Err(why) => {
                self.stats.drop(DropReason::UnanswerableRequest);
                tracing::debug!(source = %meta.source, reason, %why, "malformed request dropped");
                None
            }
        }
    }

    fn send_udp(
        &self,
        bytes: Bytes,
        remote: SocketAddr,
        flow: Option<FlowId>,
        local: Option<SocketAddr>,
        tx: Option<TxId>,
    ) -> Result<Sent, SendError> {
        if bytes.len() > MAX_UDP_PAYLOAD {
            return Err(SendError::TooLarge);
        }
        let i = udp::pick(&self.udp, flow, local, remote).ok_or(SendError::NoSocket)?;
        udp::queue(self, i, bytes, remote, tx)?;
        Ok(Sent {
            protocol: Protocol::Udp,
            flow: self.udp[i].flow,
            remote,
            switched_to_tcp: false,
            new_connection: false,
        })
    }
}

/// Starts transports; see the crate documentation.
pub struct Transport;

impl Transport {
    /// Binds every configured socket (SO_REUSEADDR; SO_RCVBUF/SO_SNDBUF on UDP as configured)
    /// and spawns the receive, send and accept tasks on the current runtime.
    pub async fn start(
        cfg: TransportConfig,
    ) -> io::Result<(TransportHandle, mpsc::Receiver<Incoming>)> {
        let rt = tokio::runtime::Handle::current();
        let (in_tx, in_rx) = mpsc::channel(cfg.incoming_queue.max(1));
        let (fail_tx, fail_rx) = mpsc::channel(cfg.incoming_queue.max(1));
        let (closed_tx, closed_rx) = mpsc::channel(cfg.incoming_queue.max(1));
        let (shutdown, _) = watch::channel(false);
        let mut next = 1u64;
        let mut udp_socks = Vec::new();
        let mut udp_tasks = Vec::new();
        for addr in &cfg.udp {
            let sock = Arc::new(tokio::net::UdpSocket::from_std(udp::bind(*addr, &cfg)?)?);
            let local = sock.local_addr()?;
            let (tx, rx) = mpsc::channel(cfg.udp_send_queue.max(1));
            udp_socks.push(udp::UdpSock {
                flow: FlowId(next),
                local,
                tx,
            });
            udp_tasks.push((sock, FlowId(next), rx));
            next += 1;
        }
        let mut listeners = Vec::new();
        let mut tcp_listen = Vec::new();
        for addr in &cfg.tcp {
            let l = tokio::net::TcpListener::from_std(tcp::bind(*addr)?)?;
            tcp_listen.push(l.local_addr()?);
            listeners.push((l, None));
        }
        let mut tls_listen = Vec::new();
        let mut tls_servers = Vec::new();
        for t in &cfg.tls {
            let l = tokio::net::TcpListener::from_std(tcp::bind(t.addr)?)?;
            tls_listen.push(l.local_addr()?);
            tls_servers.push(t.config.clone());
            listeners.push((l, Some(t.config.clone())));
        }
        let handshakes = limit::HandshakeLimiter::new(
            cfg.tls_handshakes_per_second,
            cfg.tls_handshakes_per_source,
            cfg.tls_handshake_sources,
        );
        let tls_client = cfg.tls_client.clone();
        let mut relaxed = cfg.limits.clone();
        relaxed.max_message_size = relaxed.max_message_size.saturating_add(256);
        relaxed.max_line_length = relaxed.max_line_length.saturating_add(256);
        let inner = Arc::new(Inner {
            cfg,
            relaxed,
            stats: Stats::default(),
            next_flow: AtomicU64::new(next),
            udp: udp_socks,
            tcp_listen,
            tls_listen,
            tls_servers,
            tls_client,
            handshakes: Mutex::new(handshakes),
            handshake_log: Mutex::new(limit::LogLimiter::new(LOG_EVERY)),
            plain_log: Mutex::new(limit::LogLimiter::new(LOG_EVERY)),
            refusal_log: admit::RefusalLogs::new(LOG_EVERY),
            conns: Mutex::new(tcp::ConnTable::default()),
            incoming: in_tx,
            failures: fail_tx,
            failures_rx: Mutex::new(Some(fail_rx)),
            closed: closed_tx,
            closed_rx: Mutex::new(Some(closed_rx)),
            shutdown,
            rt,
        });
        for (i, (sock, flow, rx)) in udp_tasks.into_iter().enumerate() {
            tokio::spawn(udp::recv_loop(inner.clone(), i, sock.clone()));
            tokio::spawn(udp::send_loop(inner.clone(), sock, flow, rx));
        }
        for (l, tls) in listeners {
            tokio::spawn(tcp::accept_loop(inner.clone(), l, tls));
        }
        if let Some(every) = inner.cfg.tls_reload_check {
            if !inner.tls_servers.is_empty() || inner.tls_client.is_some() {
                tokio::spawn(watch_tls_files(inner.clone(), every));
            }
        }
        Ok((TransportHandle { inner }, in_rx))
    }
}

/// How often, at most, a flood of the same warning (failed handshakes, refused plain text) is
/// logged.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Polls the TLS files' modification times and reloads what changed.
async fn watch_tls_files(inner: Arc<Inner>, every: std::time::Duration) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        let servers = inner.tls_servers.iter().map(|s| s.reload_if_changed());
        let client = inner.tls_client.iter().map(|c| c.reload_if_changed());
        for r in servers.chain(client) {
            match r {
                Ok(false) => {}
                Ok(true) => {
                    inc(&inner.stats.tls_reloads);
                    tracing::info!(
                        "TLS certificates reloaded (a file changed); new handshakes use them"
                    );
                }
                Err(e) => {
                    inc(&inner.stats.tls_reload_failures);
                    tracing::error!(
                        "TLS reload failed, the previous certificates stay in use: {e}"
                    );
                }
            }
        }
    }
}

/// The host of the URI in a name-addr header value (`<sips:host;lr>`), or of a bare URI.
fn uri_host(value: &[u8]) -> Option<String> {
    let v = std::str::from_utf8(value).ok()?;
    let v = v.split(',').next()?.trim();
    let uri = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v.get(a + 1..b)?,
        _ => v.split(';').next()?,
    };
    match sip_message::uri::Uri::parse(uri).ok()? {
        sip_message::uri::Uri::Sip(u) => Some(u.host_str.to_owned()),
        _ => None,
    }
}

/// Whether a request's Request-URI is a `sips:` URI (without parsing the message).
fn is_sips_request(b: &[u8]) -> bool {
    let Some(sp) = b.iter().take(64).position(|c| *c == b' ') else {
        return false;
    };
    b.get(sp + 1..sp + 6)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"sips:"))
}

/// Sends messages and reads counters. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct TransportHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportHandle")
            .field("udp", &self.udp_addrs())
            .field("tcp", &self.tcp_addrs())
            .field("tls", &self.tls_addrs())
            .finish()
    }
}

fn is_response(b: &[u8]) -> bool {
    let s = b
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .unwrap_or(b.len());
    b.get(s..s + 4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

impl TransportHandle {
    /// Queues a message; see the crate documentation for where it goes. Never blocks.
    pub fn send(&self, out: Outgoing) -> Result<Sent, SendError> {
        let inner = &self.inner;
        if *inner.shutdown.borrow() {
            return Err(SendError::Shutdown);
        }
        let Outgoing {
            bytes,
            dest,
            local,
            route_by_via,
            strict_flow,
            tx,
        } = out;
        if is_response(&bytes) {
            // Reliable: the connection the request came on, while it is open (18.2.2).
            // (If it closes between the check and the send, the Via decides below.)
            if let Some(f) = dest.flow {
                if inner.conns().by_flow.contains_key(&f) {
                    match tcp::send(
                        inner,
                        bytes.clone(),
                        dest.remote,
                        Some(f),
                        true,
                        tx,
                        tcp::Over::Tcp,
                    ) {
                        Err(SendError::FlowClosed) => {}
                        r => return r,
                    }
                }
            }
            if route_by_via {
                let msg = Message::parse_with(bytes.clone(), &inner.relaxed)
                    .map_err(|_| SendError::Malformed)?;
                let over = if dest.reliable {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                let t = via::response_target(&msg, over).map_err(SendError::Route)?;
                let top = msg.top_via().and_then(|v| v.ok());
                let tls = top
                    .as_ref()
                    .is_some_and(|v| v.transport.eq_ignore_ascii_case("TLS"));
                if !tls && inner.cfg.tls_required.applies(t.addr.ip()) {
                    return Err(SendError::TlsRequired);
                }
                return match t.protocol {
                    Protocol::Udp => inner.send_udp(bytes, t.addr, dest.flow, local, tx),
                    _ if tls => {
                        // A new connection for a response: verify the Via's sent-by host
                        // (RFC 3261 18.2.2, RFC 5922 4.2).
                        let name = top.and_then(|v| tls::server_name(v.host_str));
                        tcp::send(inner, bytes, t.addr, None, false, tx, tcp::Over::Tls(name))
                    }
                    _ => tcp::send(inner, bytes, t.addr, None, false, tx, tcp::Over::Tcp),
                };
            }
            if inner.cfg.tls_required.applies(dest.remote.ip()) {
                return Err(SendError::TlsRequired);
            }
            return if dest.reliable {
                tcp::send(
                    inner,
                    bytes,
                    dest.remote,
                    dest.flow,
                    false,
                    tx,
                    tcp::Over::Tcp,
                )
            } else {
                inner.send_udp(bytes, dest.remote, dest.flow, local, tx)
            };
        }
        if dest.reliable {
            let over = self.request_over(&bytes, dest.flow)?;
            if matches!(over, tcp::Over::Tcp)
                && (is_sips_request(&bytes) || inner.cfg.tls_required.applies(dest.remote.ip()))
            {
                return Err(SendError::TlsRequired);
            }
            return tcp::send(inner, bytes, dest.remote, dest.flow, strict_flow, tx, over);
        }
        if is_sips_request(&bytes) || inner.cfg.tls_required.applies(dest.remote.ip()) {
            return Err(SendError::TlsRequired);
        }
        if bytes.len() > inner.cfg.udp_mtu && inner.cfg.large_requests_over_tcp {
            let msg = Message::parse_with(bytes.clone(), &inner.relaxed)
                .map_err(|_| SendError::Malformed)?;
            let rewritten = via::set_top_via_transport(&msg, "TCP")
                .map_err(|_| SendError::Malformed)?
                .unwrap_or_else(|| msg.wire());
            let sent = tcp::send(
                inner,
                rewritten,
                dest.remote,
                None,
                false,
                tx,
                tcp::Over::Tcp,
            )?;
            inc(&inner.stats.switched_to_tcp);
            tracing::debug!(remote = %dest.remote, size = bytes.len(), "large request switched to TCP");
            return Ok(Sent {
                switched_to_tcp: true,
                ..sent
            });
        }
        inner.send_udp(bytes, dest.remote, dest.flow, local, tx)
    }

    /// How a request over a stream leaves: on the open connection `flow` names, with its
    /// protocol; else TLS when the top Via says so, verifying the next hop's host (the top
    /// Route's, else the Request-URI's; RFC 5922 4.1), else TCP.
    fn request_over(&self, bytes: &Bytes, flow: Option<FlowId>) -> Result<tcp::Over, SendError> {
        if let Some(f) = flow {
            if let Some(c) = self.inner.conns().by_flow.get(&f) {
                return Ok(match c.protocol {
                    Protocol::Tls => tcp::Over::Tls(None),
                    _ => tcp::Over::Tcp,
                });
            }
        }
        let msg = Message::parse_with(bytes.clone(), &self.inner.relaxed)
            .map_err(|_| SendError::Malformed)?;
        let tls = msg
            .top_via()
            .and_then(|v| v.ok())
            .is_some_and(|v| v.transport.eq_ignore_ascii_case("TLS"));
        if !tls {
            return Ok(tcp::Over::Tcp);
        }
        let host = match msg.header(sip_message::HeaderName::Route) {
            Some(r) => uri_host(r),
            None => msg.request_uri_str().and_then(|u| uri_host(u.as_bytes())),
        };
        Ok(tcp::Over::Tls(host.as_deref().and_then(tls::server_name)))
    }

    /// The receiving end of the channel of [`SendFailure`]s: messages that were queued by
    /// [`send`](Self::send) for a transaction ([`Outgoing::tx`]) but could not leave. Only the
    /// first call gets it; without a taker, failures are only counted.
    pub fn take_send_failures(&self) -> Option<mpsc::Receiver<SendFailure>> {
        self.inner
            .failures_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The receiving end of the channel of closed connections: the flow of every TCP or TLS
    /// connection that ended (closed by the peer, by an error, by idleness or by
    /// [`close_flow`](Self::close_flow)), so that what is reached over it (a NATed
    /// registration, RFC 5626 3.5.2) can be dropped at once instead of at its next keep-alive.
    /// Only the first call gets it. When the taker falls behind, notices beyond the queue are
    /// dropped: keep-alives still find those flows dead later.
    pub fn take_closed_flows(&self) -> Option<mpsc::Receiver<FlowId>> {
        self.inner
            .closed_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The bound UDP addresses, in configuration order.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.inner.udp.iter().map(|u| u.local).collect()
    }

    /// The flow id of each UDP socket, in configuration order.
    pub fn udp_flows(&self) -> Vec<FlowId> {
        self.inner.udp.iter().map(|u| u.flow).collect()
    }

    /// The bound TCP listener addresses, in configuration order.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.inner.tcp_listen.clone()
    }

    /// The bound TLS listener addresses, in configuration order.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.inner.tls_listen.clone()
    }

    /// Rebuilds every TLS configuration from its files (SIGHUP). New handshakes use the new
    /// certificates, CAs and CRLs; established connections keep theirs. A configuration whose
    /// files are wrong keeps running as it was; its error is returned.
    pub fn reload_tls(&self) -> Vec<TlsError> {
        let inner = &self.inner;
        let servers = inner.tls_servers.iter().map(|s| s.reload());
        let client = inner.tls_client.iter().map(|c| c.reload());
        let mut errors = Vec::new();
        for r in servers.chain(client) {
            match r {
                Ok(()) => inc(&inner.stats.tls_reloads),
                Err(e) => {
                    inc(&inner.stats.tls_reload_failures);
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// The verified certificate names of the peer of a TLS flow.
    pub fn peer_identity(&self, flow: FlowId) -> Option<Arc<PeerIdentity>> {
        self.inner.conns().by_flow.get(&flow)?.peer.clone()
    }

    /// What is known about a flow; None for a closed connection or an unknown id.
    pub fn flow(&self, flow: FlowId) -> Option<FlowInfo> {
        if let Some(u) = self.inner.udp.iter().find(|u| u.flow == flow) {
            return Some(FlowInfo {
                protocol: Protocol::Udp,
                local: Some(u.local),
                remote: None,
                inbound: true,
            });
        }
        self.inner.conns().by_flow.get(&flow).map(|c| FlowInfo {
            protocol: c.protocol,
            local: c.local,
            remote: Some(c.remote),
            inbound: c.inbound,
        })
    }

    /// Open TCP connections (pending outbound ones included).
    pub fn connection_count(&self) -> usize {
        self.inner.conns().total
    }

    /// Closes a TCP connection after what is queued on it has been written. Returns false when
    /// there is no such connection.
    pub fn close_flow(&self, flow: FlowId) -> bool {
        let mut t = self.inner.conns();
        let Some(c) = t.by_flow.remove(&flow) else {
            return false;
        };
        if t.by_remote.get(&(c.protocol, c.remote)) == Some(&flow) {
            t.by_remote.remove(&(c.protocol, c.remote));
        }
        true
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Stops every task: sockets and connections close, the [`Incoming`] channel ends once the
    /// last task has gone.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

/// Resolves once the transport is shut down (at once if it already is).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hop_hosts() {
        assert_eq!(
            uri_host(b"<sips:proxy.example.com:5061;lr>").as_deref(),
            Some("proxy.example.com")
        );
        assert_eq!(
            uri_host(b"\"P\" <sip:[2001:db8::1];transport=tls;lr>, <sip:other>").as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(
            uri_host(b"sips:bob@b.example.com").as_deref(),
            Some("b.example.com")
        );
        assert_eq!(uri_host(b"<tel:+1234>"), None);
        assert_eq!(uri_host(b"\xff"), None);
    }

    #[test]
    fn sips_request_lines() {
        assert!(is_sips_request(b"INVITE sips:bob@b.test SIP/2.0\r\n"));
        assert!(is_sips_request(b"OPTIONS SIPS:b.test SIP/2.0\r\n"));
        assert!(!is_sips_request(b"INVITE sip:bob@b.test SIP/2.0\r\n"));
        assert!(!is_sips_request(b"INVITE"));
        assert!(!is_sips_request(b""));
    }
}
