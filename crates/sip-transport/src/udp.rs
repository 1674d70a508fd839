//! UDP sockets: one receive task and one send task per socket, a bounded send queue between
//! the handle and the send task.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sip_transaction::{FlowId, TxId};
use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::admit::{Arrival, ArrivalKind};
use crate::stats::inc;
use crate::{DropReason, FailureKind, Inner, Meta, Protocol, SendError, TransportConfig};

/// A datagram to send, its destination and the transaction to blame if it cannot leave.
pub(crate) type Datagram = (Bytes, SocketAddr, Option<TxId>);

pub(crate) struct UdpSock {
    pub flow: FlowId,
    pub local: SocketAddr,
    pub tx: mpsc::Sender<Datagram>,
}

/// Each datagram is received into one reusable buffer and copied into a `Bytes` of its own
/// size: a message the layers above keep (a registration, a dialog) then pins only its own
/// bytes, not a shared receive chunk.
const MAX_DATAGRAM: usize = 65_535;

pub(crate) fn bind(addr: SocketAddr, cfg: &TransportConfig) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if let Some(n) = cfg.udp_recv_buffer {
        s.set_recv_buffer_size(n)?;
    }
    if let Some(n) = cfg.udp_send_buffer {
        s.set_send_buffer_size(n)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The socket to send from: the one `flow` names, else the one bound to `local`, else the first
/// of the destination's address family.
pub(crate) fn pick(
    socks: &[UdpSock],
    flow: Option<FlowId>,
    local: Option<SocketAddr>,
    remote: SocketAddr,
) -> Option<usize> {
    let family = |u: &UdpSock| u.local.is_ipv4() == remote.is_ipv4();
    flow.and_then(|f| socks.iter().position(|u| u.flow == f && family(u)))
        .or_else(|| local.and_then(|l| socks.iter().position(|u| u.local == l && family(u))))
        .or_else(|| socks.iter().position(family))
}

/// Queues a datagram on socket `i`.
pub(crate) fn queue(
    inner: &Inner,
    i: usize,
    b: Bytes,
    to: SocketAddr,
    tx: Option<TxId>,
) -> Result<(), SendError> {
    let Some(sock) = inner.udp.get(i) else {
        return Err(SendError::NoSocket);
    };
    match sock.tx.try_send((b, to, tx)) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            inner.stats.drop(DropReason::UdpSendQueueFull);
            Err(SendError::QueueFull)
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Shutdown),
    }
}

pub(crate) async fn send_loop(
    inner: Arc<Inner>,
    sock: Arc<UdpSocket>,
    flow: FlowId,
    mut rx: mpsc::Receiver<Datagram>,
) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let item = tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            m = rx.recv() => m,
        };
        let Some((b, to, tx)) = item else { break };
        match sock.send_to(&b, to).await {
            Ok(_) => inc(&inner.stats.udp_sent),
            Err(e) => {
                inner.stats.drop(DropReason::UdpSendFailed);
                tracing::debug!(%to, error = %e, "UDP send failed");
                inner.report_failure(tx, to, flow, Protocol::Udp, FailureKind::UdpSendFailed);
            }
        }
    }
}

pub(crate) async fn recv_loop(inner: Arc<Inner>, idx: usize, sock: Arc<UdpSocket>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let r = tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            r = sock.recv_from(&mut buf) => r,
        };
        match r {
            Ok((n, src)) => {
                inc(&inner.stats.udp_received);
                // Before the copy: a refused datagram costs no allocation.
                let arrival = Arrival {
                    source: src,
                    local: inner.udp.get(idx).map_or(src, |u| u.local),
                    protocol: Protocol::Udp,
                    kind: ArrivalKind::Datagram,
                    len: n,
                };
                if inner.refused(&arrival).is_some() {
                    continue;
                }
                let pkt = Bytes::copy_from_slice(&buf[..n]);
                on_datagram(&inner, idx, pkt, src);
            }
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                // Do not spin on a persistent error.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

fn on_datagram(inner: &Inner, idx: usize, pkt: Bytes, src: SocketAddr) {
    let u = &inner.udp[idx];
    if stun::is_stun(&pkt) {
        match stun::respond(&pkt, src) {
            stun::Response::Success(b) | stun::Response::Error { bytes: b, .. } => {
                inc(&inner.stats.stun_answered);
                let _ = queue(inner, idx, Bytes::from(b), src, None);
            }
            stun::Response::Discard(stun::Discard::Indication) => inc(&inner.stats.keepalives),
            stun::Response::Discard(why) => {
                inner.stats.drop(DropReason::BadStun);
                tracing::debug!(%src, ?why, "STUN message discarded");
            }
        }
        return;
    }
    if pkt.iter().all(|c| matches!(c, b'\r' | b'\n')) {
        inc(&inner.stats.keepalives);
        if inner.cfg.udp_keepalive_pong && &pkt[..] == b"\r\n\r\n" {
            inc(&inner.stats.pongs);
            let _ = queue(inner, idx, Bytes::from_static(b"\r\n"), src, None);
        }
        return;
    }
    let meta = Meta {
        source: src,
        local: u.local,
        flow: u.flow,
        protocol: Protocol::Udp,
        peer: None,
    };
    if let Some(reply) = inner.on_sip(pkt, &meta) {
        let _ = queue(inner, idx, reply, src, None);
    }
}
