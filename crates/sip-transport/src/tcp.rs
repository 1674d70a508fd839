//! TCP: listeners, outbound connects and one task per connection (reads framed with a
//! `StreamFramer`, writes from a bounded queue, idle timeout), plus the table that maps flows
//! and remote addresses to connections.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sip_message::{Frame, StreamFramer};
use sip_transaction::{FlowId, TxId};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::stats::inc;
use crate::{DropReason, FailureKind, Inner, Meta, Protocol, Queued, SendError, Sent};

pub(crate) struct Conn {
    pub tx: mpsc::Sender<Queued>,
    pub remote: SocketAddr,
    /// None while an outbound connect is pending.
    pub local: Option<SocketAddr>,
    pub inbound: bool,
}

/// Connections by flow and by remote address. `total` and `per_ip` are released by the
/// connection task when it ends, so a flow removed by `close_flow` still counts until its queue
/// has been written.
#[derive(Default)]
pub(crate) struct ConnTable {
    pub by_flow: HashMap<FlowId, Conn>,
    pub by_remote: HashMap<SocketAddr, FlowId>,
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

/// Queues `b` on the connection `flow` names, else (unless `strict`) on a connection to
/// `remote`, else on a new outbound connection to `remote`.
pub(crate) fn send(
    inner: &Arc<Inner>,
    b: Bytes,
    remote: SocketAddr,
    flow: Option<FlowId>,
    strict: bool,
    tx: Option<TxId>,
) -> Result<Sent, SendError> {
    let sent = |flow, remote, new_connection| Sent {
        protocol: Protocol::Tcp,
        flow,
        remote,
        switched_to_tcp: false,
        new_connection,
    };
    let mut t = inner.conns();
    if let Some(f) = flow {
        if let Some(c) = t.by_flow.get(&f) {
            enqueue(inner, c, b, tx)?;
            return Ok(sent(f, c.remote, false));
        }
        if strict {
            return Err(SendError::FlowClosed);
        }
    }
    if let Some(&f) = t.by_remote.get(&remote) {
        if let Some(c) = t.by_flow.get(&f) {
            enqueue(inner, c, b, tx)?;
            return Ok(sent(f, remote, false));
        }
    }
    if t.total >= inner.cfg.max_connections {
        return Err(SendError::TooManyConnections);
    }
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
        },
    );
    t.by_remote.insert(remote, f);
    t.total += 1;
    drop(t);
    inc(&inner.stats.connections_opened);
    inner.stats.open_connections.fetch_add(1, Ordering::Relaxed);
    inner
        .rt
        .spawn(connect_and_run(inner.clone(), f, remote, rx));
    Ok(sent(f, remote, true))
}

async fn connect_and_run(
    inner: Arc<Inner>,
    flow: FlowId,
    remote: SocketAddr,
    mut rx: mpsc::Receiver<Queued>,
) {
    let r = tokio::time::timeout(inner.cfg.tcp_connect_timeout, TcpStream::connect(remote)).await;
    let why = match r {
        Ok(Ok(stream)) => {
            let local = stream.local_addr().ok();
            if let Some(c) = inner.conns().by_flow.get_mut(&flow) {
                c.local = local;
            }
            tracing::debug!(%remote, ?flow, "TCP connected");
            run_conn(inner, flow, stream, remote, rx, false).await;
            return;
        }
        Ok(Err(e)) => (e.to_string(), FailureKind::ConnectFailed),
        Err(_) => ("timeout".to_owned(), FailureKind::ConnectTimeout),
    };
    inc(&inner.stats.connect_failures);
    // Out of the table first, so that no new message is queued behind the failed connect
    // (a retransmission then opens a new connection, and fails on its own).
    release(&inner, flow, remote, false);
    let n = fail_queued(&inner, &mut rx, flow, remote, why.1);
    inner.stats.drop_n(DropReason::ConnectFailed, n);
    tracing::debug!(%remote, ?flow, error = %why.0, dropped = n, "TCP connect failed");
}

/// Closes a connection's queue and reports every message still in it as failed. Returns how
/// many there were.
fn fail_queued(
    inner: &Inner,
    rx: &mut mpsc::Receiver<Queued>,
    flow: FlowId,
    remote: SocketAddr,
    kind: FailureKind,
) -> u64 {
    rx.close();
    let mut n = 0;
    while let Ok((_, tx)) = rx.try_recv() {
        n += 1;
        inner.report_failure(tx, remote, flow, Protocol::Tcp, kind);
    }
    n
}

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let r = tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            r = listener.accept() => r,
        };
        match r {
            Ok((stream, remote)) => on_accept(&inner, stream, remote),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn on_accept(inner: &Arc<Inner>, stream: TcpStream, remote: SocketAddr) {
    let ip = remote.ip().to_canonical();
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
        },
    );
    t.by_remote.insert(remote, flow);
    drop(t);
    inc(&inner.stats.connections_accepted);
    inner.stats.open_connections.fetch_add(1, Ordering::Relaxed);
    inner
        .rt
        .spawn(run_conn(inner.clone(), flow, stream, remote, rx, true));
}

fn release(inner: &Inner, flow: FlowId, remote: SocketAddr, inbound: bool) {
    let mut t = inner.conns();
    t.by_flow.remove(&flow);
    if t.by_remote.get(&remote) == Some(&flow) {
        t.by_remote.remove(&remote);
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

async fn write(wr: &mut OwnedWriteHalf, b: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, wr.write_all(b)).await,
        Ok(Ok(()))
    )
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
}

async fn run_conn(
    inner: Arc<Inner>,
    flow: FlowId,
    stream: TcpStream,
    remote: SocketAddr,
    mut rx: mpsc::Receiver<Queued>,
    inbound: bool,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(remote);
    let (mut rd, mut wr) = stream.into_split();
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
        protocol: Protocol::Tcp,
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
                            if let Some(reply) = inner.on_sip(m, meta) {
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
                    inner.report_failure(tx, remote, flow, Protocol::Tcp, FailureKind::WriteFailed);
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
    tracing::debug!(%remote, ?flow, reason = ?why, "TCP connection closed");
    let _ = tokio::time::timeout(Duration::from_millis(100), wr.shutdown()).await;
    release(&inner, flow, remote, inbound);
    // What was queued behind the end of the connection never leaves: its transactions learn
    // it now instead of at their timeout.
    let n = fail_queued(&inner, &mut rx, flow, remote, FailureKind::WriteFailed);
    inner.stats.drop_n(DropReason::WriteFailed, n);
}
