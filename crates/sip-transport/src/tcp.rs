//! TCP and TLS: listeners, outbound connects and one task per connection (reads framed with a
//! `StreamFramer`, writes from a bounded queue, idle timeout), plus the table that maps flows
//! and remote addresses to connections. A TLS connection is a TCP connection whose task first
//! runs the handshake (bounded by the handshake timeout, admitted by the handshake limiter)
//! and then the same loop over the decrypted stream: connection reuse, idle timeouts, CRLF
//! keepalives and per-source limits are shared.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use sip_message::{Frame, StreamFramer};
use sip_transaction::{FlowId, TxId};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::admit::{Arrival, ArrivalKind, Refusal};
use crate::stats::inc;
use crate::tls::{PeerIdentity, ServerTlsConfig};
use crate::{DropReason, FailureKind, Inner, Meta, Protocol, Queued, SendError, Sent};

pub(crate) struct Conn {
    pub tx: mpsc::Sender<Queued>,
    pub remote: SocketAddr,
    /// None while an outbound connect is pending.
    pub local: Option<SocketAddr>,
    pub inbound: bool,
    /// Tcp or Tls.
    pub protocol: Protocol,
    /// TLS: the verified peer certificate's names (None before the handshake, or when the
    /// peer sent no certificate).
    pub peer: Option<Arc<PeerIdentity>>,
    /// Outbound TLS: the name the server's certificate was (or is being) verified for.
    pub server_name: Option<ServerName<'static>>,
}

impl Conn {
    /// Whether a TLS message for a next hop `name` may use this connection: one opened for
    /// that name, or one whose verified peer certificate carries it. A connection verified
    /// for another host at the same address is not used (RFC 5922 section 4).
    fn serves(&self, name: &Option<ServerName<'static>>) -> bool {
        let Some(name) = name else { return true };
        if self.server_name.as_ref() == Some(name) {
            return true;
        }
        match (name, &self.peer) {
            (ServerName::DnsName(d), Some(p)) => p
                .dns_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(d.as_ref())),
            _ => false,
        }
    }
}

/// Connections by flow and by remote address. `total` and `per_ip` are released by the
/// connection task when it ends, so a flow removed by `close_flow` still counts until its queue
/// has been written.
#[derive(Default)]
pub(crate) struct ConnTable {
    pub by_flow: HashMap<FlowId, Conn>,
    /// A plain and a TLS connection to one address are different flows.
    pub by_remote: HashMap<(Protocol, SocketAddr), FlowId>,
    pub per_ip: HashMap<IpAddr, usize>,
    pub total: usize,
}

pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn enqueue(inner: &Inner, c: &Conn, b: Bytes, tx: Option<TxId>) -> Result<(), SendError> {
    match c.tx.try_send((b, tx)) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            inner.stats.drop(DropReason::TcpSendQueueFull);
            Err(SendError::QueueFull)
        }
        // The task is ending (write failure, idle, peer closed).
        Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::FlowClosed),
    }
}

/// How a stream message leaves: plain TCP, or TLS verifying this name (None: the remote's
/// IP address).
#[derive(Debug, Clone)]
pub(crate) enum Over {
    Tcp,
    Tls(Option<ServerName<'static>>),
}

impl Over {
    fn protocol(&self) -> Protocol {
        match self {
            Over::Tcp => Protocol::Tcp,
            Over::Tls(_) => Protocol::Tls,
        }
    }
}

/// Queues `b` on the connection `flow` names, else (unless `strict`) on a connection to
/// `remote` of the protocol `over` asks for, else on a new outbound connection to `remote`.
pub(crate) fn send(
    inner: &Arc<Inner>,
    b: Bytes,
    remote: SocketAddr,
    flow: Option<FlowId>,
    strict: bool,
    tx: Option<TxId>,
    over: Over,
) -> Result<Sent, SendError> {
    let sent = |protocol, flow, remote, new_connection| Sent {
        protocol,
        flow,
        remote,
        switched_to_tcp: false,
        new_connection,
    };
    let mut t = inner.conns();
    if let Some(f) = flow {
        if let Some(c) = t.by_flow.get(&f) {
            // A TLS message never goes on a plain connection.
            if !(c.protocol == Protocol::Tcp && matches!(over, Over::Tls(_))) {
                enqueue(inner, c, b, tx)?;
                return Ok(sent(c.protocol, f, c.remote, false));
            }
        }
        if strict {
            return Err(SendError::FlowClosed);
        }
    }
    let protocol = over.protocol();
    if let Some(&f) = t.by_remote.get(&(protocol, remote)) {
        if let Some(c) = t.by_flow.get(&f) {
            let fits = match &over {
                Over::Tcp => true,
                Over::Tls(name) => c.serves(name),
            };
            if fits {
                enqueue(inner, c, b, tx)?;
                return Ok(sent(protocol, f, remote, false));
            }
        }
    }
    if t.total >= inner.cfg.max_connections {
        return Err(SendError::TooManyConnections);
    }
    let tls = match over {
        Over::Tcp => None,
        Over::Tls(name) => {
            let client = inner.tls_client.as_ref().ok_or(SendError::NoTlsClient)?;
            let name = name.unwrap_or_else(|| ServerName::IpAddress(remote.ip().into()));
            Some((client.current(), name))
        }
    };
    let server_name = tls.as_ref().map(|(_, n)| n.clone());
    let f = inner.new_flow();
    let (qtx, rx) = mpsc::channel(inner.cfg.tcp_send_queue.max(1));
    let _ = qtx.try_send((b, tx));
    t.by_flow.insert(
        f,
        Conn {
            tx: qtx,
            remote,
            local: None,
            inbound: false,
            protocol,
            peer: None,
            server_name,
        },
    );
    t.by_remote.insert((protocol, remote), f);
    t.total += 1;
    drop(t);
    inc(&inner.stats.connections_opened);
    inner.stats.open_connections.fetch_add(1, Ordering::Relaxed);
    inner
        .rt
        .spawn(connect_and_run(inner.clone(), f, remote, rx, tls));
    Ok(sent(protocol, f, remote, true))
}

type ClientTls = (Arc<rustls::ClientConfig>, ServerName<'static>);

async fn connect_and_run(
    inner: Arc<Inner>,
    flow: FlowId,
    remote: SocketAddr,
    mut rx: mpsc::Receiver<Queued>,
    tls: Option<ClientTls>,
) {
    let protocol = if tls.is_some() {
        Protocol::Tls
    } else {
        Protocol::Tcp
    };
    let r = tokio::time::timeout(inner.cfg.tcp_connect_timeout, TcpStream::connect(remote)).await;
    let why = match r {
        Ok(Ok(stream)) => {
            let local = stream.local_addr().ok();
            if let Some(c) = inner.conns().by_flow.get_mut(&flow) {
                c.local = local;
            }
            let _ = stream.set_nodelay(true);
            let local = local.unwrap_or(remote);
            let Some((cfg, name)) = tls else {
                tracing::debug!(%remote, ?flow, "TCP connected");
                let (rd, wr) = stream.into_split();
                let io = ConnIo {
                    flow,
                    remote,
                    local,
                    inbound: false,
                    protocol,
                    peer: None,
                };
                run_conn(inner, io, rd, wr, rx).await;
                return;
            };
            let connector = tokio_rustls::TlsConnector::from(cfg);
            let hs = tokio::time::timeout(
                inner.cfg.tls_handshake_timeout,
                connector.connect(name.clone(), stream),
            )
            .await;
            match hs {
                Ok(Ok(s)) => {
                    inc(&inner.stats.tls_handshakes);
                    let peer = peer_identity(s.get_ref().1.peer_certificates());
                    if let Some(c) = inner.conns().by_flow.get_mut(&flow) {
                        c.peer = peer.clone();
                    }
                    tracing::debug!(%remote, ?flow, server = %name.to_str(), "TLS connected");
                    let (rd, wr) = tokio::io::split(s);
                    let io = ConnIo {
                        flow,
                        remote,
                        local,
                        inbound: false,
                        protocol,
                        peer,
                    };
                    run_conn(inner, io, rd, wr, rx).await;
                    return;
                }
                Ok(Err(e)) => {
                    inc(&inner.stats.tls_handshake_failures);
                    let why = format!("server {}: {e}", name.to_str());
                    inner.warn_handshake(remote, false, &why);
                    (e.to_string(), FailureKind::ConnectFailed)
                }
                Err(_) => {
                    inc(&inner.stats.tls_handshake_timeouts);
                    inner.warn_handshake(remote, false, "handshake timed out");
                    (
                        "TLS handshake timeout".to_owned(),
                        FailureKind::ConnectTimeout,
                    )
                }
            }
        }
        Ok(Err(e)) => (e.to_string(), FailureKind::ConnectFailed),
        Err(_) => ("timeout".to_owned(), FailureKind::ConnectTimeout),
    };
    inc(&inner.stats.connect_failures);
    // Out of the table first, so that no new message is queued behind the failed connect
    // (a retransmission then opens a new connection, and fails on its own).
    release(&inner, flow, remote, false, protocol);
    let n = fail_queued(&inner, &mut rx, flow, remote, why.1, protocol);
    inner.stats.drop_n(DropReason::ConnectFailed, n);
    tracing::debug!(%remote, ?flow, error = %why.0, dropped = n, "{protocol} connect failed");
}

/// The names of a verified peer's leaf certificate.
fn peer_identity(
    certs: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> Option<Arc<PeerIdentity>> {
    let leaf = certs?.first()?;
    crate::tls::cert_summary(leaf)
        .ok()
        .map(|s| Arc::new(s.identity()))
}

/// Closes a connection's queue and reports every message still in it as failed. Returns how
/// many there were.
fn fail_queued(
    inner: &Inner,
    rx: &mut mpsc::Receiver<Queued>,
    flow: FlowId,
    remote: SocketAddr,
    kind: FailureKind,
    protocol: Protocol,
) -> u64 {
    rx.close();
    let mut n = 0;
    while let Ok((_, tx)) = rx.try_recv() {
        n += 1;
        inner.report_failure(tx, remote, flow, protocol, kind);
    }
    n
}

/// Accepts connections; with `tls`, each one is a TLS server connection.
pub(crate) async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    tls: Option<Arc<ServerTlsConfig>>,
) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let r = tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            r = listener.accept() => r,
        };
        match r {
            Ok((stream, remote)) => on_accept(&inner, stream, remote, tls.as_ref()),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn on_accept(
    inner: &Arc<Inner>,
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<&Arc<ServerTlsConfig>>,
) {
    let ip = remote.ip().to_canonical();
    let protocol = if tls.is_some() {
        Protocol::Tls
    } else {
        Protocol::Tcp
    };
    // Banned and over-budget sources are refused before the connection gets a flow or a
    // handshake: dropping the stream closes it.
    let arrival = Arrival {
        source: remote,
        local: stream.local_addr().unwrap_or(remote),
        protocol,
        kind: ArrivalKind::Connection,
        len: 0,
    };
    if inner.refused(&arrival).is_some() {
        return;
    }
    if tls.is_some() {
        // Before any handshake work: a flood costs a table look-up per connection.
        if let Err(why) = inner.handshakes().admit(ip, Instant::now()) {
            inc(&inner.stats.tls_handshakes_rate_limited);
            inner.stats.drop(DropReason::HandshakeRateLimited);
            inner.warn_handshake(
                remote,
                true,
                &format!("refused before the handshake: {why:?} rate limit"),
            );
            return;
        }
    }
    let mut t = inner.conns();
    if t.total >= inner.cfg.max_connections {
        drop(t);
        inner.stats.drop(DropReason::ConnectionLimit);
        tracing::debug!(%remote, "connection refused: total limit");
        return;
    }
    let n = t.per_ip.get(&ip).copied().unwrap_or(0);
    if n >= inner.cfg.max_connections_per_ip {
        drop(t);
        inner.stats.drop(DropReason::ConnectionLimitPerIp);
        tracing::debug!(%remote, "connection refused: per-IP limit");
        return;
    }
    *t.per_ip.entry(ip).or_default() += 1;
    t.total += 1;
    let flow = inner.new_flow();
    let (qtx, rx) = mpsc::channel(inner.cfg.tcp_send_queue.max(1));
    t.by_flow.insert(
        flow,
        Conn {
            tx: qtx,
            remote,
            local: stream.local_addr().ok(),
            inbound: true,
            protocol,
            peer: None,
            server_name: None,
        },
    );
    t.by_remote.insert((protocol, remote), flow);
    drop(t);
    inc(&inner.stats.connections_accepted);
    inner.stats.open_connections.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(remote);
    let io = ConnIo {
        flow,
        remote,
        local,
        inbound: true,
        protocol,
        peer: None,
    };
    match tls {
        None => {
            let (rd, wr) = stream.into_split();
            inner.rt.spawn(run_conn(inner.clone(), io, rd, wr, rx));
        }
        Some(cfg) => {
            inner
                .rt
                .spawn(accept_tls(inner.clone(), io, stream, rx, cfg.current()));
        }
    }
}

/// The server side of a handshake, in the connection's own task (never the engine's), bounded
/// by the handshake timeout. A refused client certificate (missing, expired, revoked, another
/// CA) ends here with a warning.
async fn accept_tls(
    inner: Arc<Inner>,
    mut io: ConnIo,
    stream: TcpStream,
    mut rx: mpsc::Receiver<Queued>,
    cfg: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let hs = tokio::time::timeout(
        inner.cfg.tls_handshake_timeout,
        acceptor.accept(stream).into_fallible(),
    )
    .await;
    let why = match hs {
        Ok(Ok(s)) => {
            inc(&inner.stats.tls_handshakes);
            io.peer = peer_identity(s.get_ref().1.peer_certificates());
            if let Some(c) = inner.conns().by_flow.get_mut(&io.flow) {
                c.peer = io.peer.clone();
            }
            tracing::debug!(remote = %io.remote, flow = ?io.flow, peer = ?io.peer, "TLS accepted");
            let (rd, wr) = tokio::io::split(s);
            run_conn(inner, io, rd, wr, rx).await;
            return;
        }
        Ok(Err((e, tcp))) => {
            inc(&inner.stats.tls_handshake_failures);
            linger(tcp).await;
            e.to_string()
        }
        Err(_) => {
            inc(&inner.stats.tls_handshake_timeouts);
            "handshake timed out".to_owned()
        }
    };
    inner.warn_handshake(io.remote, true, &why);
    release(&inner, io.flow, io.remote, true, Protocol::Tls);
    let n = fail_queued(
        &inner,
        &mut rx,
        io.flow,
        io.remote,
        FailureKind::WriteFailed,
        Protocol::Tls,
    );
    inner.stats.drop_n(DropReason::WriteFailed, n);
}

/// Closes a connection whose TLS handshake we refused so that the client reads our alert
/// (e.g. "certificate required", "unknown CA") and logs why: rustls has written the alert, and
/// dropping a socket with unread input (the client's next flight) would send a reset that
/// makes the client's kernel discard it. So: FIN first, then read and discard what is still
/// coming, bounded in bytes and time, then close.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const LINGER: std::time::Duration = std::time::Duration::from_millis(250);
    const MAX_DISCARD: usize = 64 * 1024;
    let _ = tokio::time::timeout(LINGER, async {
        let _ = tcp.shutdown().await;
        let mut buf = [0u8; 4096];
        let mut discarded = 0;
        while discarded < MAX_DISCARD {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

fn release(inner: &Inner, flow: FlowId, remote: SocketAddr, inbound: bool, protocol: Protocol) {
    // Whoever reaches a peer over this connection (a NATed binding) learns it is gone; a full
    // queue loses the notice, never blocks the connection's task.
    let _ = inner.closed.try_send(flow);
    let mut t = inner.conns();
    t.by_flow.remove(&flow);
    if t.by_remote.get(&(protocol, remote)) == Some(&flow) {
        t.by_remote.remove(&(protocol, remote));
    }
    if inbound {
        let ip = remote.ip().to_canonical();
        if let Some(n) = t.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&ip);
            }
        }
    }
    t.total = t.total.saturating_sub(1);
    drop(t);
    inc(&inner.stats.connections_closed);
    inner.stats.open_connections.fetch_sub(1, Ordering::Relaxed);
}

/// Writes and flushes (a TLS stream may hold records back until flushed).
async fn write<W: AsyncWrite + Unpin>(wr: &mut W, b: &[u8], limit: Duration) -> bool {
    let w = async {
        wr.write_all(b).await?;
        wr.flush().await
    };
    matches!(tokio::time::timeout(limit, w).await, Ok(Ok(())))
}

/// What a connection task knows about its connection.
pub(crate) struct ConnIo {
    pub flow: FlowId,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub inbound: bool,
    pub protocol: Protocol,
    pub peer: Option<Arc<PeerIdentity>>,
}

#[derive(Debug, Clone, Copy)]
enum Close {
    Shutdown,
    Idle,
    PeerClosed,
    ReadError,
    WriteFailed,
    Framing,
    Local,
    /// The admission check refused the source (banned).
    Refused,
}

async fn run_conn<R, W>(
    inner: Arc<Inner>,
    io: ConnIo,
    mut rd: R,
    mut wr: W,
    mut rx: mpsc::Receiver<Queued>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ConnIo {
        flow,
        remote,
        local,
        inbound,
        protocol,
        peer,
    } = io;
    let mut framer = StreamFramer::new(inner.cfg.limits.clone());
    let mut buf = vec![0u8; 16 * 1024];
    let idle = inner.cfg.tcp_idle_timeout;
    let wlimit = inner.cfg.tcp_write_timeout;
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    let mut shutdown = inner.shutdown.subscribe();
    let meta = Meta {
        source: remote,
        local,
        flow,
        protocol,
        peer,
    };
    let why = 'conn: loop {
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => break 'conn Close::Shutdown,
            _ = &mut sleep => break 'conn Close::Idle,
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) => break 'conn Close::PeerClosed,
                    Ok(n) => n,
                    Err(_) => break 'conn Close::ReadError,
                };
                sleep.as_mut().reset(tokio::time::Instant::now() + idle);
                framer.push(&buf[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Keepalive)) => {
                            inc(&inner.stats.keepalives);
                            if !write(&mut wr, b"\r\n", wlimit).await {
                                break 'conn Close::WriteFailed;
                            }
                            inc(&inner.stats.pongs);
                        }
                        Ok(Some(Frame::Message(m))) => {
                            inc(&inner.stats.tcp_received);
                            let arrival = Arrival {
                                source: remote,
                                local,
                                protocol,
                                kind: ArrivalKind::StreamMessage,
                                len: m.len(),
                            };
                            match inner.refused(&arrival) {
                                None => {}
                                Some(Refusal::Banned) => break 'conn Close::Refused,
                                // Over budget or out of zone: this message only.
                                Some(_) => continue,
                            }
                            if let Some(reply) = inner.on_sip(m, &meta) {
                                if !write(&mut wr, &reply, wlimit).await {
                                    break 'conn Close::WriteFailed;
                                }
                                inc(&inner.stats.tcp_sent);
                            }
                        }
                        Err(e) => {
                            inner.stats.framing_error(e.kind);
                            inner.stats.drop(DropReason::FramingError);
                            tracing::debug!(%remote, error = %e, "stream cannot be framed, closing");
                            break 'conn Close::Framing;
                        }
                    }
                }
            }
            m = rx.recv() => {
                let Some((b, tx)) = m else { break 'conn Close::Local };
                if !write(&mut wr, &b, wlimit).await {
                    inner.stats.drop(DropReason::WriteFailed);
                    inner.report_failure(tx, remote, flow, protocol, FailureKind::WriteFailed);
                    break 'conn Close::WriteFailed;
                }
                inc(&inner.stats.tcp_sent);
                sleep.as_mut().reset(tokio::time::Instant::now() + idle);
            }
        }
    };
    if matches!(why, Close::Idle) {
        inc(&inner.stats.connections_idle_closed);
    }
    tracing::debug!(%remote, ?flow, reason = ?why, "{protocol} connection closed");
    let _ = tokio::time::timeout(Duration::from_millis(100), wr.shutdown()).await;
    release(&inner, flow, remote, inbound, protocol);
    // What was queued behind the end of the connection never leaves: its transactions learn
    // it now instead of at their timeout.
    let n = fail_queued(
        &inner,
        &mut rx,
        flow,
        remote,
        FailureKind::WriteFailed,
        protocol,
    );
    inner.stats.drop_n(DropReason::WriteFailed, n);
}
