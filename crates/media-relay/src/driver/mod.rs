//! The socket driver: binds and closes media sockets for the
//! [`Controller`](crate::Controller) and runs the packet workers.
//!
//! [`MediaRelay`] is the whole relay behind `&self` methods, so the call
//! engine's shell can share it (`Arc<MediaRelay>`). Control operations take a
//! mutex around the controller (never held by a worker); packets never touch
//! it.

mod kfwd;
mod mmsg;
mod sock;
mod uring;
mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media_kernel_forward::KernelForwarder;
use mio::net::UdpSocket;
use mio::{Poll, Waker};

use crate::control::{
    Controller, RelayConfig, SdpKind, SessionId, StreamPorts, StreamUpdate, ZoneId,
};
use crate::hook::{HookEvent, MediaHook};
use crate::session::{PerSide, Side, SocketKind};
use crate::stats::{DirectionStats, SessionStats};
use crate::transform::PacketTransform;
use crate::{MediaError, MediaEvent};
use worker::{Command, NewSocket, Worker, WAKER};

pub use mmsg::MAX_DATAGRAM;

/// How long a control call waits for a worker's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

struct WorkerHandle {
    tx: SyncSender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

struct Control {
    ctl: Controller,
    /// Worker that owns each session's sockets.
    placement: HashMap<SessionId, usize>,
    /// Sessions per worker, for placement.
    load: Vec<usize>,
}

/// The running relay: controller, port binding and packet workers.
pub struct MediaRelay {
    control: Mutex<Control>,
    workers: Vec<WorkerHandle>,
    binds: Vec<IpAddr>,
    /// Media sockets join a reuseport group (for connected companions).
    reuseport: bool,
    zone_names: Vec<String>,
    media_timeout: Duration,
    hook: Option<Arc<dyn MediaHook>>,
    uring_workers: Arc<AtomicUsize>,
    /// The kernel fast path, when configured (the workers hold it too).
    kfwd: Option<Arc<KernelForwarder>>,
}

impl std::fmt::Debug for MediaRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRelay")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl MediaRelay {
    /// Validates `cfg`, starts the workers and returns the relay with the
    /// receiving end of its event channel. No media socket is bound yet.
    /// With [`RelayConfig::kernel_forward`] the kernel fast path is loaded
    /// and attached first; when that fails, so does this, with
    /// [`MediaError::KernelForward`].
    pub fn start(cfg: &RelayConfig) -> Result<(Self, Receiver<MediaEvent>), MediaError> {
        Self::start_with_hook(cfg, None)
    }

    /// As [`MediaRelay::start`], with a hook told about every media socket
    /// (see [`HookEvent`]); `None` is exactly [`MediaRelay::start`].
    pub fn start_with_hook(
        cfg: &RelayConfig,
        hook: Option<Arc<dyn MediaHook>>,
    ) -> Result<(Self, Receiver<MediaEvent>), MediaError> {
        let ctl = Controller::new(cfg)?;
        // Best effort: where the hard limit is the soft one (or raising is
        // refused), binding fails later with EMFILE, counted as ports
        // exhausted, and a companion socket is simply not made.
        let _ = sock::raise_nofile_limit();
        // Asked for explicitly: a relay that silently runs without it would
        // hide the missing capability until the CPU runs out.
        let kfwd = if cfg.kernel_forward {
            let kf = KernelForwarder::attach(cfg.kernel_forward_interfaces.as_deref())
                .map_err(MediaError::KernelForward)?;
            Some(Arc::new(kf))
        } else {
            None
        };
        let n = match cfg.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (events_tx, events_rx) = mpsc::sync_channel(cfg.event_capacity.max(1));
        let mut workers = Vec::with_capacity(n);
        let uring_workers = Arc::new(AtomicUsize::new(0));
        for i in 0..n {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = mpsc::sync_channel(cfg.command_capacity.max(1));
            let w = Worker::new(
                poll,
                rx,
                events_tx.clone(),
                hook.clone(),
                cfg.io_uring.then(|| uring_workers.clone()),
                cfg.io_batch_wait,
                cfg.connect_latched,
                kfwd.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || w.run())?;
            workers.push(WorkerHandle {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        let binds = cfg.zones.iter().map(|z| z.bind).collect();
        Ok((
            Self {
                control: Mutex::new(Control {
                    ctl,
                    placement: HashMap::new(),
                    load: vec![0; n],
                }),
                workers,
                binds,
                reuseport: cfg.connect_latched,
                zone_names: cfg.zones.iter().map(|z| z.name.clone()).collect(),
                media_timeout: cfg.media_timeout,
                hook,
                uring_workers,
                kfwd,
            },
            events_rx,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // A panic while holding the lock cannot leave the controller half
        // updated in a way later calls would trip over (each operation
        // commits at its end), so a poisoned lock is still usable.
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, worker: usize, cmd: Command) -> Result<(), MediaError> {
        let w = self.workers.get(worker).ok_or(MediaError::WorkerGone)?;
        w.tx.send(cmd).map_err(|_| MediaError::WorkerGone)?;
        w.waker.wake().map_err(|_| MediaError::WorkerGone)
    }

    /// Creates a session for a call between a side in `zone_a` and one in
    /// `zone_b`.
    pub fn create_session(&self, zone_a: &str, zone_b: &str) -> Result<SessionId, MediaError> {
        let mut c = self.lock();
        let id = c.ctl.create(zone_a, zone_b)?;
        let w = c
            .load
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| **l)
            .map_or(0, |(i, _)| i);
        if let Some(l) = c.load.get_mut(w) {
            *l += 1;
        }
        c.placement.insert(id, w);
        Ok(id)
    }

    /// Applies an offer from `from` (INVITE, re-INVITE, UPDATE) and returns
    /// the SDP to send to the other side. Ports are allocated and bound here.
    pub fn offer(&self, id: SessionId, from: Side, sdp: &[u8]) -> Result<Vec<u8>, MediaError> {
        self.apply(id, from, SdpKind::Offer, sdp)
    }

    /// Applies the answer from `from` and returns the SDP for the other side.
    pub fn answer(&self, id: SessionId, from: Side, sdp: &[u8]) -> Result<Vec<u8>, MediaError> {
        self.apply(id, from, SdpKind::Answer, sdp)
    }

    fn apply(
        &self,
        id: SessionId,
        from: Side,
        kind: SdpKind,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaError> {
        let mut c = self.lock();
        let worker = *c.placement.get(&id).ok_or(MediaError::UnknownSession(id))?;
        let mut bound: HashMap<(ZoneId, u16), UdpSocket> = HashMap::new();
        let binds = &self.binds;
        let reuseport = self.reuseport;
        let mut bind = |zone: ZoneId, port: u16| -> bool {
            let Some(ip) = binds.get(zone) else {
                return false;
            };
            match sock::bind_port(SocketAddr::new(*ip, port), reuseport) {
                Ok(s) => {
                    bound.insert((zone, port), s);
                    true
                }
                Err(_) => false,
            }
        };
        // On error `bound` is dropped here, which closes what was bound.
        let outcome = c
            .ctl
            .apply_sdp(Instant::now(), id, from, kind, sdp, &mut bind)?;
        let mut sockets = Vec::new();
        for u in &outcome.updates {
            match *u {
                StreamUpdate::Open {
                    media_index,
                    zones,
                    rtp_ports,
                    ..
                } => {
                    for side in [Side::A, Side::B] {
                        let key = (*zones.of(side), *rtp_ports.of(side));
                        if let Some(socket) = bound.remove(&key) {
                            self.report_bound(
                                id,
                                key.0,
                                media_index,
                                side,
                                SocketKind::Rtp,
                                &socket,
                            );
                            sockets.push(NewSocket {
                                media_index,
                                side,
                                kind: SocketKind::Rtp,
                                socket,
                            });
                        }
                    }
                }
                StreamUpdate::RtcpOpened {
                    media_index,
                    side,
                    zone,
                    port,
                } => {
                    if let Some(socket) = bound.remove(&(zone, port)) {
                        self.report_bound(id, zone, media_index, side, SocketKind::Rtcp, &socket);
                        sockets.push(NewSocket {
                            media_index,
                            side,
                            kind: SocketKind::Rtcp,
                            socket,
                        });
                    }
                }
                _ => {}
            }
        }
        let cmd = Command::Upsert {
            id,
            timeout: self.media_timeout,
            updates: outcome.updates,
            sockets,
        };
        self.send(worker, cmd)?;
        Ok(outcome.sdp)
    }

    /// Tells the hook, if any, about a socket about to be handed to a
    /// worker (so before any event the worker reports about it).
    fn report_bound(
        &self,
        id: SessionId,
        zone: ZoneId,
        media_index: usize,
        side: Side,
        kind: SocketKind,
        socket: &UdpSocket,
    ) {
        let Some(hook) = &self.hook else {
            return;
        };
        let Ok(local) = socket.local_addr() else {
            return;
        };
        hook.on_event(&HookEvent::Bound {
            id,
            zone: self.zone_names.get(zone).cloned().unwrap_or_default(),
            media_index,
            side,
            kind,
            local,
        });
    }

    /// Sets the `a=crypto` values put into the SDP sent toward `toward` for
    /// `m=` line `media_index` (`None`: pass the peer's through). Applies to
    /// SDP rewritten after this call.
    pub fn set_crypto(
        &self,
        id: SessionId,
        toward: Side,
        media_index: usize,
        lines: Option<Vec<String>>,
    ) -> Result<(), MediaError> {
        self.lock().ctl.set_crypto(id, toward, media_index, lines)
    }

    /// Installs (or with `None` removes) the transform applied to packets of
    /// `m=` line `media_index` received from `from`, before they are sent to
    /// the other side. The stream must exist (after the first SDP).
    pub fn set_transform(
        &self,
        id: SessionId,
        media_index: usize,
        from: Side,
        transform: Option<Box<dyn PacketTransform>>,
    ) -> Result<(), MediaError> {
        let worker = self.worker_of(id)?;
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(
            worker,
            Command::Transform {
                id,
                media_index,
                from,
                transform,
                reply,
            },
        )?;
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(true) => Ok(()),
            Ok(false) => Err(MediaError::NoSuchStream(media_index)),
            Err(_) => Err(MediaError::WorkerGone),
        }
    }

    fn worker_of(&self, id: SessionId) -> Result<usize, MediaError> {
        self.lock()
            .placement
            .get(&id)
            .copied()
            .ok_or(MediaError::UnknownSession(id))
    }

    /// Ends a session (BYE, CANCEL, failed call, media timeout): its sockets
    /// are closed before this returns, and its ports go into quarantine.
    pub fn release(&self, id: SessionId) -> Result<(), MediaError> {
        let worker = {
            let mut c = self.lock();
            c.ctl.release(Instant::now(), id)?;
            let w = c
                .placement
                .remove(&id)
                .ok_or(MediaError::UnknownSession(id))?;
            if let Some(l) = c.load.get_mut(w) {
                *l = l.saturating_sub(1);
            }
            w
        };
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(worker, Command::Release { id, reply })?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| MediaError::WorkerGone)
    }

    /// A copy of a session's counters.
    pub fn stats(&self, id: SessionId) -> Result<SessionStats, MediaError> {
        let worker = self.worker_of(id)?;
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(worker, Command::Stats { id, reply })?;
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(Some(s)) => Ok(s),
            // Known to the controller but no SDP yet: nothing relayed.
            Ok(None) => Ok(SessionStats::default()),
            Err(_) => Err(MediaError::WorkerGone),
        }
    }

    /// How many workers run the io_uring packet path (the others run the
    /// epoll one). A worker decides before it handles its first command, so
    /// after any control call that reached it this is final.
    pub fn io_uring_workers(&self) -> usize {
        self.uring_workers.load(Ordering::Relaxed)
    }

    /// The interfaces the kernel fast path is attached to, `None` when it
    /// is off ([`RelayConfig::kernel_forward`]).
    pub fn kernel_forward_interfaces(&self) -> Option<&[String]> {
        self.kfwd.as_deref().map(KernelForwarder::interfaces)
    }

    /// Counters of all sessions since start (released ones included), both
    /// directions added up.
    pub fn totals(&self) -> Result<DirectionStats, MediaError> {
        let mut t = DirectionStats::default();
        for w in 0..self.workers.len() {
            let (reply, rx) = mpsc::sync_channel(1);
            self.send(w, Command::Totals { reply })?;
            t.merge(
                &rx.recv_timeout(REPLY_TIMEOUT)
                    .map_err(|_| MediaError::WorkerGone)?,
            );
        }
        Ok(t)
    }

    /// The ports of a session's streams.
    pub fn ports(&self, id: SessionId) -> Result<Vec<StreamPorts>, MediaError> {
        self.lock().ctl.ports(id)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.lock().ctl.session_count()
    }

    /// Stops the workers; every media socket is closed when this returns.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for w in &self.workers {
            let _ = w.tx.send(Command::Shutdown);
            let _ = w.waker.wake();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call engine shares one relay between tasks (`Arc<MediaRelay>`);
    /// this does not compile if a field stops being `Send + Sync`.
    #[test]
    fn relay_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<MediaRelay>();
    }

    /// Asked for explicitly, the kernel path must be there: a relay that
    /// starts without it would hide the missing capability.
    #[test]
    fn start_fails_with_the_cause_when_the_kernel_path_cannot_be_set_up() {
        let cfg = RelayConfig {
            workers: 1,
            kernel_forward: true,
            kernel_forward_interfaces: Some(vec!["sw-no-such0".into()]),
            ..RelayConfig::default()
        };
        match MediaRelay::start(&cfg) {
            Err(e @ MediaError::KernelForward(_)) => {
                assert!(
                    e.to_string().starts_with("kernel media forwarding: "),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        let (relay, _ev) = MediaRelay::start(&RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })
        .unwrap();
        assert_eq!(relay.kernel_forward_interfaces(), None, "off by default");
    }

    #[test]
    fn start_rejects_bad_config_and_binds_nothing() {
        let cfg = RelayConfig {
            zones: vec![crate::ZoneConfig {
                name: "z".into(),
                bind: "127.0.0.1".parse().unwrap(),
                advertise: None,
                port_min: 100,
                port_max: 100,
                latch: Default::default(),
            }],
            ..RelayConfig::default()
        };
        assert!(matches!(
            MediaRelay::start(&cfg),
            Err(MediaError::Config(_))
        ));
        let cfg = RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        };
        let (relay, _ev) = MediaRelay::start(&cfg).unwrap();
        assert!(matches!(
            relay.create_session("nope", "nope"),
            Err(MediaError::UnknownZone(_))
        ));
        assert!(matches!(
            relay.stats(SessionId(99)),
            Err(MediaError::UnknownSession(_))
        ));
        assert!(matches!(
            relay.release(SessionId(99)),
            Err(MediaError::UnknownSession(_))
        ));
        assert_eq!(relay.totals().unwrap(), DirectionStats::default());
        relay.shutdown();
    }
}
