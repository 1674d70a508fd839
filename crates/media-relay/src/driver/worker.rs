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
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::mmsg::{Batch, SendItem, BATCH};
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
}

/// Socket slot per (stream, side, kind).
type SockTable = [[[Option<usize>; 2]; 2]; MAX_STREAMS];

struct WSession {
    id: SessionId,
    core: MediaSession,
    socks: SockTable,
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
}

impl Worker {
    pub(crate) fn new(
        poll: Poll,
        rx: Receiver<Command>,
        events_tx: SyncSender<MediaEvent>,
        hook: Option<Arc<dyn MediaHook>>,
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
        }
    }

    pub(crate) fn run(mut self) {
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
                    return;
                }
            }
            let now = Instant::now();
            // Commands first: a packet that follows an offer/answer in time
            // must meet the state that offer/answer set up.
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Shutdown) => return,
                    Ok(cmd) => self.command(cmd, now),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
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
            let (fd, local, si, media, side, kind) = (
                entry.fd,
                entry.local,
                entry.session,
                entry.media_index,
                entry.side,
                entry.kind,
            );
            let n = match self.batch.recv(fd) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
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
                let Some(src) = meta.src else {
                    sess.core
                        .count_drop(media, side, kind, DropReason::Malformed, meta.len);
                    continue;
                };
                if meta.truncated || meta.len == 0 {
                    sess.core
                        .count_drop(media, side, kind, DropReason::BadLength, meta.len);
                    continue;
                }
                let before = match self.hook {
                    Some(_) => sess.core.stream(media).map(|s| s.latch_state(side, kind)),
                    None => None,
                };
                let v = sess
                    .core
                    .on_packet(now, media, side, kind, src, &mut buf[..], meta.len);
                if let (Some(hook), Some(previous)) = (&self.hook, before) {
                    report_latch(hook.as_ref(), sess, local, media, side, kind, previous);
                }
                if let Verdict::Forward {
                    side: out,
                    socket,
                    dst,
                    len,
                } = v
                {
                    let out_slot = sess
                        .socks
                        .get(media)
                        .and_then(|t| t.get(out.index()))
                        .and_then(|t| t.get(kind_index(socket)))
                        .copied()
                        .flatten();
                    match out_slot {
                        Some(out_slot) => self.plan.push(Planned {
                            out_slot,
                            item: SendItem { buf: i, len, dst },
                            rtcp: socket == SocketKind::Rtcp,
                        }),
                        None => sess
                            .core
                            .send_failed(media, side, socket == SocketKind::Rtcp, len),
                    }
                }
            }
            self.flush(si, media, side);
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
            dst: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
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
                let _ = reply.try_send(ok);
            }
            Command::Release { id, reply } => {
                self.release(id);
                let _ = reply.try_send(());
            }
            Command::Stats { id, reply } => {
                let st = self.session_mut(id).map(|s| s.core.stats());
                let _ = reply.try_send(st);
            }
            Command::Totals { reply } => {
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
        let mut socket = ns.socket;
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let slot = self.free_socks.pop().unwrap_or(self.socks.len());
        if self
            .poll
            .registry()
            .register(&mut socket, Token(slot), Interest::READABLE)
            .is_err()
        {
            if slot < self.socks.len() {
                self.free_socks.push(slot);
            }
            if let Some(hook) = &self.hook {
                if let Some(Some(s)) = self.sessions.get(si) {
                    hook.on_event(&HookEvent::Closed { id: s.id, local });
                }
            }
            return;
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
        if let Some(Some(s)) = self.sessions.get_mut(si) {
            if let Some(cell) = s
                .socks
                .get_mut(media_index)
                .and_then(|t| t.get_mut(side.index()))
                .and_then(|t| t.get_mut(kind_index(kind)))
            {
                *cell = Some(slot);
            }
        }
    }

    fn close_socket(&mut self, slot: usize) {
        if let Some(e) = self.socks.get_mut(slot).and_then(Option::take) {
            let mut socket = e.socket;
            let _ = self.poll.registry().deregister(&mut socket);
            // Dropping the socket closes the port now, not at some later
            // point: "no call, no open port".
            drop(socket);
            if let Some(hook) = &self.hook {
                let id = self
                    .sessions
                    .get(e.session)
                    .and_then(Option::as_ref)
                    .map(|s| s.id);
                if let Some(id) = id {
                    hook.on_event(&HookEvent::Closed { id, local: e.local });
                }
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
        let Some(t) = s.socks.get_mut(media_index) else {
            return;
        };
        let slots: Vec<usize> = t
            .iter_mut()
            .flat_map(|k| k.iter_mut())
            .filter_map(Option::take)
            .collect();
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
            if s.core.poll_timeout().is_some_and(|t| t <= now) {
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
