//! One packet worker: a thread owning an epoll instance (mio), the sockets
//! of the sessions placed on it, their [`MediaSession`] cores and one set of
//! packet buffers. Commands arrive on a bounded channel, followed by a wake.
//!
//! The steady-state loop (poll, recvmmsg, verdicts, sendmmsg, timeout scan)
//! allocates nothing: every container it touches is sized when a session or
//! socket is added.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_kernel_forward::KernelForwarder;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::kfwd::{self, KTable};
use super::mmsg::{Batch, SendItem, BATCH};
use super::sock;
use super::uring::{recv_token, Event, Uring, BUFS};
use crate::control::{SessionId, StreamUpdate};
use crate::hook::{HookEvent, MediaHook};
use crate::session::{MediaSession, Side, SocketKind, Verdict, MAX_STREAMS};
use crate::stats::{DirectionStats, DropReason, SessionStats};
use crate::transform::PacketTransform;
use crate::MediaEvent;

pub(crate) const WAKER: Token = Token(usize::MAX);
/// How often idle sessions are checked for the media timeout.
const TIMEOUT_SCAN: Duration = Duration::from_millis(100);
/// Receive batches per socket per wake-up before others get a turn.
const BUDGET: usize = 8;

/// A socket handed from the control thread to a worker, labelled.
pub(crate) struct NewSocket {
    pub(crate) media_index: usize,
    pub(crate) side: Side,
    pub(crate) kind: SocketKind,
    pub(crate) socket: UdpSocket,
}

pub(crate) enum Command {
    Upsert {
        id: SessionId,
        timeout: Duration,
        updates: Vec<StreamUpdate>,
        sockets: Vec<NewSocket>,
    },
    Transform {
        id: SessionId,
        media_index: usize,
        from: Side,
        transform: Option<Box<dyn PacketTransform>>,
        reply: SyncSender<bool>,
    },
    Release {
        id: SessionId,
        reply: SyncSender<()>,
    },
    Stats {
        id: SessionId,
        reply: SyncSender<Option<SessionStats>>,
    },
    Totals {
        reply: SyncSender<DirectionStats>,
    },
    Shutdown,
}

struct SockEntry {
    socket: UdpSocket,
    fd: RawFd,
    /// Bound address, for the hook.
    local: SocketAddr,
    session: usize,
    media_index: usize,
    side: Side,
    kind: SocketKind,
    /// Already in `Worker::pending`.
    pending: bool,
    /// io_uring: the slot's generation (in the receive's token).
    gen: u32,
    /// io_uring: a multishot receive is armed on the socket.
    armed: bool,
    /// A companion socket connected to this latched peer (see `sock`); the
    /// firewall hook never hears about these, the port is the same.
    connected: Option<SocketAddr>,
}

/// io_uring: a closed socket whose receive is being cancelled. The kernel
/// holds the socket until the receive's last completion, so the descriptor
/// is closed (and the port freed) only then.
struct Closing {
    token: u64,
    /// Held only to be closed when dropped.
    _socket: UdpSocket,
    id: SessionId,
}

/// io_uring: what a send in flight needs if it fails.
#[derive(Clone, Copy)]
struct SendMeta {
    session: usize,
    id: SessionId,
    media: usize,
    from: Side,
    rtcp: bool,
    len: usize,
}

/// Socket slot per (stream, side, kind).
type SockTable = [[[Option<usize>; 2]; 2]; MAX_STREAMS];

/// The connected companion of a (stream, side, kind) socket: its slot (None:
/// creating it failed, not retried for this peer) and the peer.
type ConnTable = [[[Option<(Option<usize>, SocketAddr)>; 2]; 2]; MAX_STREAMS];

struct WSession {
    id: SessionId,
    core: MediaSession,
    socks: SockTable,
    conns: ConnTable,
    /// Kernel fast path: the flow of each stream and receiving side.
    kflows: KTable,
}

fn cell<T>(
    t: &[[[T; 2]; 2]; MAX_STREAMS],
    media: usize,
    side: Side,
    kind: SocketKind,
) -> Option<&T> {
    t.get(media)
        .and_then(|t| t.get(side.index()))
        .and_then(|t| t.get(kind_index(kind)))
}

fn cell_mut<T>(
    t: &mut [[[T; 2]; 2]; MAX_STREAMS],
    media: usize,
    side: Side,
    kind: SocketKind,
) -> Option<&mut T> {
    t.get_mut(media)
        .and_then(|t| t.get_mut(side.index()))
        .and_then(|t| t.get_mut(kind_index(kind)))
}

fn kind_index(k: SocketKind) -> usize {
    match k {
        SocketKind::Rtp => 0,
        SocketKind::Rtcp => 1,
    }
}

#[derive(Clone, Copy)]
struct Planned {
    out_slot: usize,
    item: SendItem,
    rtcp: bool,
}

pub(crate) struct Worker {
    poll: Poll,
    rx: Receiver<Command>,
    events_tx: SyncSender<MediaEvent>,
    socks: Vec<Option<SockEntry>>,
    free_socks: Vec<usize>,
    sessions: Vec<Option<WSession>>,
    free_sessions: Vec<usize>,
    by_id: HashMap<SessionId, usize>,
    batch: Batch,
    plan: Vec<Planned>,
    pending: Vec<usize>,
    pending_scratch: Vec<usize>,
    /// Counters of sessions already released (so totals never go down).
    released: DirectionStats,
    hook: Option<Arc<dyn MediaHook>>,
    /// Try io_uring first (the epoll path is the fallback); counts the
    /// workers that run it.
    want_uring: Option<Arc<AtomicUsize>>,
    batch_wait: Duration,
    uring: Option<Box<Uring>>,
    next_gen: u32,
    closing: Vec<Closing>,
    release_waits: Vec<(SessionId, SyncSender<()>)>,
    send_meta: Vec<Option<SendMeta>>,
    wake_events: Events,
    /// Give latched legs a connected companion socket.
    connect_latched: bool,
    /// The kernel fast path, shared by the workers.
    kfwd: Option<Arc<KernelForwarder>>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        poll: Poll,
        rx: Receiver<Command>,
        events_tx: SyncSender<MediaEvent>,
        hook: Option<Arc<dyn MediaHook>>,
        want_uring: Option<Arc<AtomicUsize>>,
        batch_wait: Duration,
        connect_latched: bool,
        kfwd: Option<Arc<KernelForwarder>>,
    ) -> Self {
        Self {
            poll,
            rx,
            events_tx,
            socks: Vec::new(),
            free_socks: Vec::new(),
            sessions: Vec::new(),
            free_sessions: Vec::new(),
            by_id: HashMap::new(),
            batch: Batch::new(),
            plan: Vec::with_capacity(BATCH),
            pending: Vec::new(),
            pending_scratch: Vec::new(),
            released: DirectionStats::default(),
            hook,
            want_uring,
            batch_wait,
            uring: None,
            next_gen: 0,
            closing: Vec::new(),
            release_waits: Vec::new(),
            send_meta: Vec::new(),
            wake_events: Events::with_capacity(8),
            connect_latched,
            kfwd,
        }
    }

    /// The worker's loop; io_uring when wanted and the kernel allows it
    /// (the ring is created here because it belongs to this thread).
    pub(crate) fn run(mut self) {
        if let Some(count) = self.want_uring.take() {
            if let Ok(u) = Uring::new(self.poll.as_raw_fd(), self.batch_wait) {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.uring = Some(Box::new(u));
                self.send_meta = vec![None; usize::from(BUFS)];
                return self.run_uring();
            }
        }
        self.run_epoll();
    }

    fn run_uring(mut self) {
        let mut next_scan = Instant::now() + TIMEOUT_SCAN;
        loop {
            let wait = next_scan.saturating_duration_since(Instant::now());
            match self.uring.as_mut().map(|u| u.submit_and_wait(wait)) {
                Some(Ok(())) => {}
                // The ring broke: close what is open (the ports must not
                // outlive the worker) and stop, as a failed epoll does.
                _ => return self.shutdown_uring(),
            }
            let now = Instant::now();
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Shutdown) => return self.shutdown_uring(),
                    Ok(cmd) => self.command(cmd, now),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        return self.shutdown_uring()
                    }
                }
            }
            self.completions(now);
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
        }
    }

    /// Handles every completion waiting, then hands the freed buffers back.
    fn completions(&mut self, now: Instant) {
        loop {
            let Some(u) = self.uring.as_mut() else {
                return;
            };
            u.reap();
            let n = u.cqes.len();
            let full = n == u.cqes.capacity();
            for i in 0..n {
                let Some(ev) = self
                    .uring
                    .as_ref()
                    .and_then(|u| u.cqes.get(i))
                    .map(Uring::decode)
                else {
                    break;
                };
                self.on_event(ev, now);
            }
            if !full {
                break;
            }
        }
        if let Some(u) = self.uring.as_mut() {
            u.publish();
        }
    }

    fn on_event(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::Recv {
                token,
                res,
                bid,
                more,
            } => {
                let slot = (token & 0xffff_ffff) as usize;
                let live = matches!(
                    self.socks.get(slot),
                    Some(Some(e)) if recv_token(slot, e.gen) == token
                );
                if let Some(bid) = bid {
                    if live && res >= 0 {
                        self.forward_uring(slot, bid, res, now);
                    } else if let Some(u) = self.uring.as_mut() {
                        u.recycle(bid);
                    }
                }
                if more {
                    return;
                }
                if live {
                    // Ended (out of buffers, an error): arm it again.
                    if let (Some(Some(e)), Some(u)) =
                        (self.socks.get_mut(slot), self.uring.as_mut())
                    {
                        e.armed = u.arm_recv(slot, e.fd, token).is_ok();
                    }
                } else if let Some(pos) = self.closing.iter().position(|c| c.token == token) {
                    // The kernel let go of the socket: close it now.
                    drop(self.closing.swap_remove(pos));
                    self.answer_releases();
                }
            }
            Event::Sent { bid, res } => {
                let meta = self
                    .send_meta
                    .get_mut(usize::from(bid))
                    .and_then(Option::take);
                if res < 0 {
                    if let Some(m) = meta {
                        if let Some(Some(s)) = self.sessions.get_mut(m.session) {
                            if s.id == m.id {
                                s.core.send_failed(m.media, m.from, m.rtcp, m.len);
                            }
                        }
                    }
                }
                if let Some(u) = self.uring.as_mut() {
                    u.recycle(bid);
                }
            }
            Event::Wake { more } => {
                // Empties the epoll instance's ready list (the waker is
                // edge-triggered), so that the next wake polls it again.
                let _ = self.poll.poll(&mut self.wake_events, Some(Duration::ZERO));
                if !more {
                    if let Some(u) = self.uring.as_mut() {
                        let _ = u.arm_wake();
                    }
                }
            }
            Event::Other => {}
        }
    }

    /// Runs the core on the datagram in buffer `bid` and queues its send.
    fn forward_uring(&mut self, slot: usize, bid: u16, res: i32, now: Instant) {
        let Some(Some(entry)) = self.socks.get(slot) else {
            return;
        };
        let (local, si, media, side, kind, on_companion) = (
            entry.local,
            entry.session,
            entry.media_index,
            entry.side,
            entry.kind,
            entry.connected.is_some(),
        );
        self.forward_uring_inner(bid, res, now, (local, si, media, side, kind));
        if !on_companion && self.connect_latched {
            self.sync_companion(si, media, side, kind);
        }
        if kind == SocketKind::Rtp && self.kfwd.is_some() {
            self.sync_offload(si, media, now);
        }
    }

    fn forward_uring_inner(
        &mut self,
        bid: u16,
        res: i32,
        now: Instant,
        (local, si, media, side, kind): (SocketAddr, usize, usize, Side, SocketKind),
    ) {
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        let Some(Some(sess)) = self.sessions.get_mut(si) else {
            u.recycle(bid);
            return;
        };
        let Some((dg, buf)) = u.datagram(bid, res) else {
            sess.core
                .count_drop(media, side, kind, DropReason::Malformed, 0);
            u.recycle(bid);
            return;
        };
        let hook = self.hook.as_deref();
        let Some((out_slot, len, dst, rtcp)) = process(
            sess,
            hook,
            self.kfwd.as_deref(),
            now,
            local,
            (media, side, kind),
            dg.src,
            dg.truncated,
            buf,
            dg.len,
        ) else {
            u.recycle(bid);
            return;
        };
        let out_fd = match self.socks.get(out_slot) {
            Some(Some(out)) => out.fd,
            _ => {
                sess.core.send_failed(media, side, rtcp, len);
                u.recycle(bid);
                return;
            }
        };
        if let Some(m) = self.send_meta.get_mut(usize::from(bid)) {
            *m = Some(SendMeta {
                session: si,
                id: sess.id,
                media,
                from: side,
                rtcp,
                len,
            });
        }
        if u.send(out_slot, out_fd, bid, len, dst).is_err() {
            sess.core.send_failed(media, side, rtcp, len);
            u.recycle(bid);
        }
    }

    /// Answers the releases whose sockets are all closed.
    fn answer_releases(&mut self) {
        let closing = &self.closing;
        self.release_waits.retain(|(id, reply)| {
            if closing.iter().any(|c| c.id == *id) {
                return true;
            }
            let _ = reply.try_send(());
            false
        });
    }

    /// Closes every socket and waits (bounded) until the kernel let go of
    /// them, so that the ports are free when the worker has stopped.
    fn shutdown_uring(mut self) {
        let ids: Vec<SessionId> = self.by_id.keys().copied().collect();
        for id in ids {
            self.release(id);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.closing.is_empty() && Instant::now() < deadline {
            match self
                .uring
                .as_mut()
                .map(|u| u.submit_and_wait(Duration::from_millis(10)))
            {
                Some(Ok(())) => {}
                _ => break,
            }
            self.completions(Instant::now());
        }
        for (_, reply) in self.release_waits.drain(..) {
            let _ = reply.try_send(());
        }
        if !self.closing.is_empty() {
            // The kernel may still write into the buffers: never unmap them.
            if let Some(u) = self.uring.take() {
                std::mem::forget(u);
            }
        }
    }

    fn run_epoll(mut self) {
        let mut events = Events::with_capacity(256);
        let mut next_scan = Instant::now() + TIMEOUT_SCAN;
        loop {
            let wait = if self.pending.is_empty() {
                next_scan.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return self.withdraw_all();
                }
            }
            let now = Instant::now();
            // Commands first: a packet that follows an offer/answer in time
            // must meet the state that offer/answer set up.
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Shutdown) => return self.withdraw_all(),
                    Ok(cmd) => self.command(cmd, now),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return self.withdraw_all(),
                }
            }
            for ev in events.iter() {
                let tok = ev.token();
                if tok != WAKER && ev.is_readable() {
                    self.drain(tok.0, now);
                }
            }
            // Sockets that still had data when their budget ran out; `drain`
            // may queue them again into the (now empty) `pending`.
            std::mem::swap(&mut self.pending, &mut self.pending_scratch);
            for idx in 0..self.pending_scratch.len() {
                let Some(slot) = self.pending_scratch.get(idx).copied() else {
                    break;
                };
                if let Some(Some(e)) = self.socks.get_mut(slot) {
                    e.pending = false;
                }
                self.drain(slot, now);
            }
            self.pending_scratch.clear();

            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
        }
    }

    /// Receives and forwards what one socket has, up to the budget.
    fn drain(&mut self, slot: usize, now: Instant) {
        for _ in 0..BUDGET {
            let Some(Some(entry)) = self.socks.get(slot) else {
                return;
            };
            let (fd, local, si, media, side, kind, on_companion) = (
                entry.fd,
                entry.local,
                entry.session,
                entry.media_index,
                entry.side,
                entry.kind,
                entry.connected.is_some(),
            );
            let n = match self.batch.recv(fd) {
                Ok(0) => return,
                Ok(n) => n,
                // A connected socket reports an ICMP error of its peer once
                // (ECONNREFUSED...); the queue behind it is still to be read.
                Err(e) if on_companion && e.kind() != io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            };
            let Some(Some(sess)) = self.sessions.get_mut(si) else {
                return;
            };
            self.plan.clear();
            for i in 0..n {
                let (Some(meta), Some(buf)) = (self.batch.meta.get(i), self.batch.bufs.get_mut(i))
                else {
                    break;
                };
                let meta = *meta;
                if let Some((out_slot, len, dst, rtcp)) = process(
                    sess,
                    self.hook.as_deref(),
                    self.kfwd.as_deref(),
                    now,
                    local,
                    (media, side, kind),
                    meta.src,
                    meta.truncated,
                    &mut buf[..],
                    meta.len,
                ) {
                    self.plan.push(Planned {
                        out_slot,
                        item: SendItem { buf: i, len, dst },
                        rtcp,
                    });
                }
            }
            self.flush(si, media, side);
            if !on_companion && self.connect_latched {
                self.sync_companion(si, media, side, kind);
            }
            if kind == SocketKind::Rtp && self.kfwd.is_some() {
                self.sync_offload(si, media, now);
            }
            if n < BATCH {
                return;
            }
        }
        // Budget spent with data left: come back after the others.
        if let Some(Some(e)) = self.socks.get_mut(slot) {
            if !e.pending {
                e.pending = true;
                self.pending.push(slot);
            }
        }
    }

    /// Sends the planned packets, one sendmmsg per run of the same socket.
    fn flush(&mut self, si: usize, media: usize, from: Side) {
        let mut start = 0;
        let mut items = [SendItem {
            buf: 0,
            len: 0,
            dst: None,
        }; BATCH];
        while start < self.plan.len() {
            let Some(first) = self.plan.get(start).copied() else {
                break;
            };
            let mut end = start;
            while self
                .plan
                .get(end)
                .is_some_and(|p| p.out_slot == first.out_slot)
            {
                if let (Some(dst), Some(p)) = (items.get_mut(end - start), self.plan.get(end)) {
                    *dst = p.item;
                }
                end += 1;
            }
            let run = end - start;
            let sent = match self.socks.get(first.out_slot) {
                Some(Some(out)) => self.batch.send(out.fd, items.get(..run).unwrap_or(&[])),
                _ => 0,
            };
            if sent < run {
                if let Some(Some(sess)) = self.sessions.get_mut(si) {
                    for p in self.plan.get(start + sent..end).unwrap_or(&[]) {
                        sess.core.send_failed(media, from, p.rtcp, p.item.len);
                    }
                }
            }
            start = end;
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Upsert {
                id,
                timeout,
                updates,
                sockets,
            } => self.upsert(id, timeout, updates, sockets, now),
            Command::Transform {
                id,
                media_index,
                from,
                transform,
                reply,
            } => {
                let ok = self
                    .session_mut(id)
                    .is_some_and(|s| s.core.set_transform(media_index, from, transform));
                // A transform takes its direction out of the kernel (it must
                // see every packet); removing it may let it in.
                if let Some(&si) = self.by_id.get(&id) {
                    self.sync_offload(si, media_index, now);
                }
                let _ = reply.try_send(ok);
            }
            Command::Release { id, reply } => {
                self.release(id);
                if self.closing.iter().any(|c| c.id == id) {
                    // io_uring: answered once the kernel let go of the
                    // sockets, so that the ports are free when it returns.
                    self.release_waits.push((id, reply));
                } else {
                    let _ = reply.try_send(());
                }
            }
            Command::Stats { id, reply } => {
                let now = Instant::now();
                let kf = self.kfwd.as_deref();
                let s = self.by_id.get(&id).copied();
                let s = s
                    .and_then(|si| self.sessions.get_mut(si))
                    .and_then(Option::as_mut);
                let st = s.map(|s| {
                    if let Some(kf) = kf {
                        refresh_session(kf, s, now);
                    }
                    s.core.stats()
                });
                let _ = reply.try_send(st);
            }
            Command::Totals { reply } => {
                if let Some(kf) = self.kfwd.as_deref() {
                    let now = Instant::now();
                    for s in self.sessions.iter_mut().flatten() {
                        refresh_session(kf, s, now);
                    }
                }
                let mut t = self.released;
                for s in self.sessions.iter().flatten() {
                    t.merge(&s.core.stats().total());
                }
                let _ = reply.try_send(t);
            }
            Command::Shutdown => {}
        }
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut WSession> {
        let si = *self.by_id.get(&id)?;
        self.sessions.get_mut(si).and_then(Option::as_mut)
    }

    fn upsert(
        &mut self,
        id: SessionId,
        timeout: Duration,
        updates: Vec<StreamUpdate>,
        sockets: Vec<NewSocket>,
        now: Instant,
    ) {
        let si = match self.by_id.get(&id) {
            Some(&si) => si,
            None => {
                let s = WSession {
                    id,
                    core: MediaSession::new(now, timeout),
                    socks: [[[None; 2]; 2]; MAX_STREAMS],
                    conns: [[[None; 2]; 2]; MAX_STREAMS],
                    kflows: [[None; 2]; MAX_STREAMS],
                };
                let si = match self.free_sessions.pop() {
                    Some(si) => {
                        if let Some(slot) = self.sessions.get_mut(si) {
                            *slot = Some(s);
                        }
                        si
                    }
                    None => {
                        self.sessions.push(Some(s));
                        self.sessions.len() - 1
                    }
                };
                self.by_id.insert(id, si);
                si
            }
        };
        let mut sockets: Vec<Option<NewSocket>> = sockets.into_iter().map(Some).collect();
        for u in updates {
            match u {
                StreamUpdate::Open {
                    media_index,
                    policy,
                    ..
                } => {
                    if let Some(Some(s)) = self.sessions.get_mut(si) {
                        s.core.add_stream(media_index, policy);
                    }
                    for side in [Side::A, Side::B] {
                        self.attach(si, &mut sockets, media_index, side, SocketKind::Rtp);
                    }
                }
                StreamUpdate::RtcpOpened {
                    media_index, side, ..
                } => {
                    self.attach(si, &mut sockets, media_index, side, SocketKind::Rtcp);
                    if let Some(Some(s)) = self.sessions.get_mut(si) {
                        s.core.set_rtcp_socket(media_index, side, true);
                    }
                }
                StreamUpdate::Peer {
                    media_index,
                    side,
                    peer,
                } => {
                    if let Some(Some(s)) = self.sessions.get_mut(si) {
                        s.core.set_peer(now, media_index, side, peer);
                    }
                    self.report_armed(si, media_index, side);
                }
                StreamUpdate::Close { media_index } => self.close_stream(si, media_index),
            }
        }
        // A new offer/answer arms the latches and may change directions:
        // what the kernel forwards must follow before the next packet.
        if self.kfwd.is_some() {
            for m in 0..MAX_STREAMS {
                self.sync_offload(si, m, now);
            }
        }
    }

    fn attach(
        &mut self,
        si: usize,
        sockets: &mut [Option<NewSocket>],
        media_index: usize,
        side: Side,
        kind: SocketKind,
    ) {
        let Some(ns) = sockets
            .iter_mut()
            .find(|s| {
                s.as_ref().is_some_and(|s| {
                    s.media_index == media_index && s.side == side && s.kind == kind
                })
            })
            .and_then(Option::take)
        else {
            return;
        };
        let Some(slot) = self.add_socket(si, ns.socket, media_index, side, kind, None) else {
            return;
        };
        if let Some(Some(s)) = self.sessions.get_mut(si) {
            if let Some(c) = cell_mut(&mut s.socks, media_index, side, kind) {
                *c = Some(slot);
            }
        }
    }

    /// Puts a socket into the table and under the ring or epoll; its slot,
    /// or `None` (the socket closed) if it could not be registered.
    /// `connected`: the socket is a companion connected to that peer.
    fn add_socket(
        &mut self,
        si: usize,
        mut socket: UdpSocket,
        media_index: usize,
        side: Side,
        kind: SocketKind,
        connected: Option<SocketAddr>,
    ) -> Option<usize> {
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let slot = self.free_socks.pop().unwrap_or(self.socks.len());
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1) & 0x00ff_ffff;
        let registered = match self.uring.as_mut() {
            Some(u) => {
                let fd = socket.as_raw_fd();
                u.register(slot, fd).is_ok() && u.arm_recv(slot, fd, recv_token(slot, gen)).is_ok()
            }
            None => self
                .poll
                .registry()
                .register(&mut socket, Token(slot), Interest::READABLE)
                .is_ok(),
        };
        if !registered {
            if let Some(u) = self.uring.as_mut() {
                u.unregister(slot);
            }
            if slot < self.socks.len() {
                self.free_socks.push(slot);
            }
            if let (Some(hook), None) = (&self.hook, connected) {
                if let Some(Some(s)) = self.sessions.get(si) {
                    hook.on_event(&HookEvent::Closed { id: s.id, local });
                }
            }
            return None;
        }
        let entry = SockEntry {
            fd: socket.as_raw_fd(),
            local,
            socket,
            session: si,
            media_index,
            side,
            kind,
            pending: false,
            gen,
            armed: self.uring.is_some(),
            connected,
        };
        if slot == self.socks.len() {
            self.socks.push(Some(entry));
        } else if let Some(s) = self.socks.get_mut(slot) {
            *s = Some(entry);
        }
        // Every socket can be pending at most once, so this keeps `pending`
        // from ever growing on the packet path.
        self.pending
            .reserve(self.socks.len().saturating_sub(self.pending.len()));
        self.pending_scratch
            .reserve(self.socks.len().saturating_sub(self.pending_scratch.len()));
        Some(slot)
    }

    /// After a packet on a leg's own socket: if its path has latched (and
    /// is not waiting for a new latch), make sure the leg has a companion
    /// socket connected to that peer, so that the peer's further packets
    /// and the packets sent to it take the connected path. Runs per packet
    /// on the unconnected socket, which after the latch sees only strangers.
    fn sync_companion(&mut self, si: usize, media: usize, side: Side, kind: SocketKind) {
        let Some(Some(s)) = self.sessions.get(si) else {
            return;
        };
        let Some((Some(peer), false)) = s.core.stream(media).map(|st| st.latch_state(side, kind))
        else {
            return;
        };
        let current = cell(&s.conns, media, side, kind).copied().flatten();
        let slot = match current {
            Some((_, p)) if p == peer => return,
            Some((slot, _)) => slot,
            None => None,
        };
        let local = match cell(&s.socks, media, side, kind).copied().flatten() {
            Some(own) => match self.socks.get(own) {
                Some(Some(e)) => e.local,
                _ => return,
            },
            None => return,
        };
        let result = match slot.and_then(|slot| self.socks.get_mut(slot)) {
            // A new latch: point the companion at the new peer.
            Some(Some(e)) => match sock::reconnect(&e.socket, peer) {
                Ok(()) => {
                    e.connected = Some(peer);
                    slot
                }
                Err(_) => None,
            },
            _ => sock::connected(local, peer)
                .ok()
                .and_then(|c| self.add_socket(si, c, media, side, kind, Some(peer))),
        };
        if result.is_none() {
            if let Some(old) = slot {
                self.close_socket(old);
            }
        }
        if let Some(Some(s)) = self.sessions.get_mut(si) {
            if let Some(c) = cell_mut(&mut s.conns, media, side, kind) {
                // A failure is remembered for this peer: no retry per packet.
                *c = Some((result, peer));
            }
        }
    }

    /// Keeps the kernel's flows of one stream in step with its core: for
    /// each direction, the flow [`kfwd::wanted`] says, or none. Runs after
    /// each packet on an RTP socket and after each command; once settled it
    /// only compares (no system call).
    fn sync_offload(&mut self, si: usize, media: usize, now: Instant) {
        let Some(kf) = self.kfwd.as_deref() else {
            return;
        };
        let Some(Some(s)) = self.sessions.get_mut(si) else {
            return;
        };
        let Some(stream) = s.core.stream(media) else {
            return;
        };
        let socks = &self.socks;
        let locals = [Side::A, Side::B].map(|side| leg_local(socks, s, media, side));
        let wants = [Side::A, Side::B].map(|from| kfwd::wanted(stream, from, locals));
        for (from, want) in [Side::A, Side::B].into_iter().zip(wants) {
            let current = kfwd::entry(&mut s.kflows, media, from).and_then(|e| *e);
            let (remove, install) = kfwd::plan(current, want);
            if remove.is_some() {
                kfwd::withdraw(kf, &mut s.kflows, &mut s.core, now, media, from);
            }
            if want.is_none() {
                // Also forgets a refusal: the same flow later is tried anew.
                if let Some(e) = kfwd::entry(&mut s.kflows, media, from) {
                    *e = None;
                }
            }
            if let Some(flow) = install {
                kfwd::install(kf, &mut s.kflows, media, from, flow);
            }
        }
    }

    /// Takes every flow out of the kernel (the worker stops).
    fn withdraw_all(&mut self) {
        let Some(kf) = self.kfwd.as_deref() else {
            return;
        };
        let now = Instant::now();
        for s in self.sessions.iter_mut().flatten() {
            for m in 0..MAX_STREAMS {
                for from in [Side::A, Side::B] {
                    kfwd::withdraw(kf, &mut s.kflows, &mut s.core, now, m, from);
                }
            }
        }
    }

    fn close_socket(&mut self, slot: usize) {
        if let Some(e) = self.socks.get_mut(slot).and_then(Option::take) {
            let id = self
                .sessions
                .get(e.session)
                .and_then(Option::as_ref)
                .map(|s| s.id);
            let mut socket = e.socket;
            match (self.uring.as_mut(), id) {
                (Some(u), Some(id)) if e.armed => {
                    let token = recv_token(slot, e.gen);
                    u.unregister(slot);
                    if u.cancel(token).is_ok() {
                        self.closing.push(Closing {
                            token,
                            _socket: socket,
                            id,
                        });
                    }
                }
                (Some(u), _) => {
                    u.unregister(slot);
                    drop(socket);
                }
                (None, _) => {
                    let _ = self.poll.registry().deregister(&mut socket);
                    // Dropping the socket closes the port now, not at some
                    // later point: "no call, no open port".
                    drop(socket);
                }
            }
            if let (Some(hook), Some(id), None) = (&self.hook, id, e.connected) {
                hook.on_event(&HookEvent::Closed { id, local: e.local });
            }
            self.free_socks.push(slot);
            self.pending.retain(|&p| p != slot);
            self.pending_scratch.retain(|&p| p != slot);
        }
    }

    /// After a new SDP from `side`: its latched sockets may latch anew.
    fn report_armed(&self, si: usize, media_index: usize, side: Side) {
        let Some(hook) = &self.hook else {
            return;
        };
        let Some(Some(s)) = self.sessions.get(si) else {
            return;
        };
        let Some(stream) = s.core.stream(media_index) else {
            return;
        };
        for kind in [SocketKind::Rtp, SocketKind::Rtcp] {
            if stream.latch_state(side, kind).0.is_none() {
                continue;
            }
            let slot = s
                .socks
                .get(media_index)
                .and_then(|t| t.get(side.index()))
                .and_then(|t| t.get(kind_index(kind)))
                .copied()
                .flatten();
            if let Some(Some(e)) = slot.and_then(|slot| self.socks.get(slot)) {
                hook.on_event(&HookEvent::Armed {
                    id: s.id,
                    local: e.local,
                });
            }
        }
    }

    fn close_stream(&mut self, si: usize, media_index: usize) {
        let Some(Some(s)) = self.sessions.get_mut(si) else {
            return;
        };
        // Out of the kernel before the sockets close (a port closed while
        // its flow is still in the table would go on forwarding), and the
        // flows' last counters into the stream's before they are merged.
        if let Some(kf) = self.kfwd.as_deref() {
            let now = Instant::now();
            for from in [Side::A, Side::B] {
                kfwd::withdraw(kf, &mut s.kflows, &mut s.core, now, media_index, from);
            }
        }
        let Some(t) = s.socks.get_mut(media_index) else {
            return;
        };
        let mut slots: Vec<usize> = t
            .iter_mut()
            .flat_map(|k| k.iter_mut())
            .filter_map(Option::take)
            .collect();
        if let Some(t) = s.conns.get_mut(media_index) {
            slots.extend(
                t.iter_mut()
                    .flat_map(|k| k.iter_mut())
                    .filter_map(Option::take)
                    .filter_map(|(slot, _)| slot),
            );
        }
        if let Some(st) = s.core.remove_stream(media_index) {
            self.released.merge(&st.a_to_b);
            self.released.merge(&st.b_to_a);
        }
        for slot in slots {
            self.close_socket(slot);
        }
    }

    fn release(&mut self, id: SessionId) {
        let Some(si) = self.by_id.remove(&id) else {
            return;
        };
        for m in 0..MAX_STREAMS {
            self.close_stream(si, m);
        }
        if let Some(slot) = self.sessions.get_mut(si) {
            *slot = None;
            self.free_sessions.push(si);
        }
    }

    fn scan_timeouts(&mut self, now: Instant) {
        for s in self.sessions.iter_mut().flatten() {
            let due = |s: &WSession| s.core.poll_timeout().is_some_and(|t| t <= now);
            if due(s) {
                // What the kernel forwarded is activity the core has not
                // seen: read it only when the timeout would fire (one
                // lookup per flow per timeout period while media flows).
                if let Some(kf) = self.kfwd.as_deref() {
                    refresh_session(kf, s, now);
                }
            }
            if due(s) {
                if let Some(idle) = s.core.handle_timeout(now) {
                    match self
                        .events_tx
                        .try_send(MediaEvent::Timeout { id: s.id, idle })
                    {
                        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                        // Report it again on the next scan.
                        Err(TrySendError::Full(_)) => s.core.rearm_timeout(),
                    }
                }
            }
        }
    }
}

/// The concrete local address of a leg's RTP port ([`kfwd::concrete_local`]).
fn leg_local(
    socks: &[Option<SockEntry>],
    s: &WSession,
    media: usize,
    side: Side,
) -> Option<std::net::SocketAddrV4> {
    let local_of = |slot: usize| match socks.get(slot) {
        Some(Some(e)) => Some(e.local),
        _ => None,
    };
    let own = local_of(
        cell(&s.socks, media, side, SocketKind::Rtp)
            .copied()
            .flatten()?,
    )?;
    let companion = match cell(&s.conns, media, side, SocketKind::Rtp) {
        Some(Some((Some(slot), _))) => local_of(*slot),
        _ => None,
    };
    kfwd::concrete_local(own, companion)
}

/// Brings the kernel's counters of every flow of a session into its core.
fn refresh_session(kf: &KernelForwarder, s: &mut WSession, now: Instant) {
    for m in 0..MAX_STREAMS {
        for from in [Side::A, Side::B] {
            kfwd::refresh(kf, &mut s.kflows, &mut s.core, now, m, from);
        }
    }
}

/// Runs one received datagram through the session core: `Some((output
/// socket slot, length, destination, is RTCP))` when it is to be sent. The
/// destination is `None` when the slot is a companion connected to it.
#[allow(clippy::too_many_arguments)]
fn process(
    sess: &mut WSession,
    hook: Option<&dyn MediaHook>,
    kf: Option<&KernelForwarder>,
    now: Instant,
    local: SocketAddr,
    (media, side, kind): (usize, Side, SocketKind),
    src: Option<SocketAddr>,
    truncated: bool,
    buf: &mut [u8],
    len: usize,
) -> Option<(usize, usize, Option<SocketAddr>, bool)> {
    let Some(src) = src else {
        sess.core
            .count_drop(media, side, kind, DropReason::Malformed, len);
        return None;
    };
    if truncated || len == 0 {
        sess.core
            .count_drop(media, side, kind, DropReason::BadLength, len);
        return None;
    }
    if let Some(kf) = kf {
        // A new source may replace a peer that looks silent, but the peer
        // may be talking through the kernel: bring that in first. Costs a
        // lookup only for a source that would take the latch, so at most
        // once per silence period while the peer talks.
        if kind == SocketKind::Rtp && sess.core.silence_would_relatch(now, media, side, src) {
            kfwd::refresh(kf, &mut sess.kflows, &mut sess.core, now, media, side);
        }
    }
    let before = match hook {
        Some(_) => sess.core.stream(media).map(|s| s.latch_state(side, kind)),
        None => None,
    };
    let v = sess.core.on_packet(now, media, side, kind, src, buf, len);
    if let (Some(hook), Some(previous)) = (hook, before) {
        report_latch(hook, sess, local, media, side, kind, previous);
    }
    let Verdict::Forward {
        side: out,
        socket,
        dst,
        len,
    } = v
    else {
        return None;
    };
    let rtcp = socket == SocketKind::Rtcp;
    if let Some(Some((Some(slot), peer))) = cell(&sess.conns, media, out, socket) {
        if *peer == dst {
            return Some((*slot, len, None, rtcp));
        }
    }
    let out_slot = cell(&sess.socks, media, out, socket).copied().flatten();
    match out_slot {
        Some(out_slot) => Some((out_slot, len, Some(dst), rtcp)),
        None => {
            sess.core.send_failed(media, side, rtcp, len);
            None
        }
    }
}

/// Reports a latch that the packet just processed moved.
fn report_latch(
    hook: &dyn MediaHook,
    sess: &WSession,
    local: SocketAddr,
    media: usize,
    side: Side,
    kind: SocketKind,
    (previous, was_armed): (Option<SocketAddr>, bool),
) {
    let Some(stream) = sess.core.stream(media) else {
        return;
    };
    // Latching the same peer again after a new offer/answer still ends the
    // window in which another source could have latched: report it too.
    match stream.latch_state(side, kind) {
        (Some(peer), armed) if Some(peer) != previous || (was_armed && !armed) => {
            hook.on_event(&HookEvent::Latched {
                id: sess.id,
                local,
                peer,
                previous,
                exclusive: stream.latch_policy(side).relatch_after_silence.is_none(),
            })
        }
        _ => {}
    }
}
