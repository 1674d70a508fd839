//! The executor: a dedicated thread that applies the relay's socket events
//! to the kernel through `nft -f -`, one transaction per batch.
//!
//! The hook side ([`MediaHook::on_event`], called by the relay's control
//! path and, for latches, by a packet worker) only folds the event into
//! [`Desired`] under a mutex: a hash insert, never a wait for nft. The
//! thread takes every change made since its last look, so a burst of
//! events becomes one script. The "queue" is thus bounded by the number of
//! media sockets (the zones' port ranges), never full, and loses nothing.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media_relay::{HookEvent, MediaHook};

use crate::plan::{create_script, delete_script, Desired, Planner};
use crate::{FirewallConfig, FirewallError};

/// After a failed script, how long before the full resynchronisation is
/// tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Counters of the executor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallStats {
    /// Scripts applied successfully (creation and removal excluded).
    pub batches: u64,
    /// Set elements added.
    pub elements_added: u64,
    /// Set elements deleted.
    pub elements_deleted: u64,
    /// Scripts nft refused, or nft could not be run.
    pub failures: u64,
    /// Full resynchronisations (the table recreated with every live socket).
    pub resyncs: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Duration of the last successful nft run.
    pub last_run: Duration,
    /// Longest successful nft run.
    pub max_run: Duration,
}

struct State {
    desired: Desired,
    /// Events that changed something, counted.
    generation: u64,
    /// The generation the kernel reflects.
    applied: u64,
    stop: bool,
    stats: FirewallStats,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the executor.
    work: Condvar,
    /// Wakes [`Firewall::sync`] callers.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is complete when the lock is released,
        // so a panic elsewhere leaves nothing half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The hook to pass to [`media_relay::MediaRelay::start_with_hook`].
struct Hook(Arc<Shared>);

impl MediaHook for Hook {
    fn on_event(&self, event: &HookEvent) {
        let mut st = self.0.lock();
        if st.desired.apply(event) {
            st.generation += 1;
            self.0.work.notify_one();
        }
    }
}

/// The running firewall: its table exists from [`Firewall::start`] until
/// [`Firewall::stop`] (or drop).
pub struct Firewall {
    shared: Arc<Shared>,
    cfg: FirewallConfig,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall")
            .field("table", &self.cfg.table)
            .finish()
    }
}

impl Firewall {
    /// Validates `cfg`, creates the table (replacing any table of that name
    /// an earlier run left) and starts the executor thread. Fails when nft
    /// cannot be run or refuses the table (no CAP_NET_ADMIN, no nf_tables).
    pub fn start(cfg: FirewallConfig) -> Result<Self, FirewallError> {
        cfg.validate()?;
        run_nft(&cfg.nft, &create_script(&cfg))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                desired: Desired::new(cfg.zones.clone()),
                generation: 0,
                applied: 0,
                stop: false,
                stats: FirewallStats::default(),
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            let cfg = cfg.clone();
            std::thread::Builder::new()
                .name("media-firewall".into())
                .spawn(move || executor(&shared, &cfg))
                .map_err(FirewallError::Thread)?
        };
        Ok(Self {
            shared,
            cfg,
            thread: Some(thread),
        })
    }

    /// The hook for the relay.
    pub fn hook(&self) -> Arc<dyn MediaHook> {
        Arc::new(Hook(self.shared.clone()))
    }

    /// Waits until every event reported so far is in the kernel; false on
    /// timeout.
    pub fn sync(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.shared.lock();
        let target = st.generation;
        while st.applied < target {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.shared.done.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// A copy of the counters.
    pub fn stats(&self) -> FirewallStats {
        self.shared.lock().stats.clone()
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.cfg.table
    }

    /// Stops the executor and removes the table. Call it after the relay
    /// has stopped: from then on nothing filters the media ranges.
    pub fn stop(mut self) -> Result<(), FirewallError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), FirewallError> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        self.shared.lock().stop = true;
        self.shared.work.notify_one();
        let _ = t.join();
        run_nft(&self.cfg.nft, &delete_script(&self.cfg))
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            tracing::warn!(table = %self.cfg.table, "media firewall: removing the table failed: {e}");
        }
    }
}

fn executor(shared: &Shared, cfg: &FirewallConfig) {
    let mut planner = Planner::new(cfg);
    let mut need_resync = false;
    let mut retry_at: Option<Instant> = None;
    loop {
        // Wait for changes, a refresh, a retry, or stop.
        let (changes, snapshot, generation) = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                let now = Instant::now();
                let wake = match (need_resync, retry_at) {
                    (true, Some(at)) => Some(at),
                    (true, None) => Some(now),
                    (false, _) if st.desired.has_changes() => Some(now),
                    (false, _) => planner.next_refresh(),
                };
                match wake {
                    Some(at) if at <= now => break,
                    Some(at) => {
                        st = match shared.work.wait_timeout(st, at - now) {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        }
                    }
                    None => {
                        st = match shared.work.wait(st) {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        }
                    }
                }
            }
            let generation = st.generation;
            if need_resync {
                (Vec::new(), Some(st.desired.snapshot()), generation)
            } else {
                (st.desired.take_changes(), None, generation)
            }
        };
        let now = Instant::now();
        let batch = match &snapshot {
            Some(all) => Some(planner.resync(cfg, all)),
            None => planner.plan(&changes, now),
        };
        let Some(batch) = batch else {
            mark_applied(shared, generation);
            continue;
        };
        let started = Instant::now();
        let result = run_nft(&cfg.nft, &batch.script);
        let took = started.elapsed();
        let mut st = shared.lock();
        match result {
            Ok(()) => {
                let s = &mut st.stats;
                if batch.full {
                    s.resyncs += 1;
                } else {
                    s.batches += 1;
                }
                s.elements_added += batch.added as u64;
                s.elements_deleted += batch.deleted as u64;
                s.last_run = took;
                s.max_run = s.max_run.max(took);
                planner.commit(batch, Instant::now());
                need_resync = false;
                retry_at = None;
                drop(st);
                mark_applied(shared, generation);
            }
            Err(e) => {
                // The kernel state is unknown now (an element expired, or
                // someone edited the table): rebuild it whole.
                tracing::warn!(table = %cfg.table, "media firewall: nft failed, resynchronising: {e}");
                st.stats.failures += 1;
                st.stats.last_error = Some(e.to_string());
                // A failed resync is retried later, not in a loop.
                retry_at = need_resync.then(|| Instant::now() + RETRY);
                need_resync = true;
            }
        }
    }
}

fn mark_applied(shared: &Shared, generation: u64) {
    let mut st = shared.lock();
    st.applied = st.applied.max(generation);
    shared.done.notify_all();
}

/// Runs `nft -f -` with `script` on its stdin.
pub(crate) fn run_nft(nft: &std::path::Path, script: &str) -> Result<(), FirewallError> {
    let spawn_err = |source| FirewallError::Spawn {
        nft: nft.display().to_string(),
        source,
    };
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(script.as_bytes()),
        None => Ok(()),
    };
    // stdin is closed here (dropped), so nft sees the end of the script.
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(FirewallError::Nft {
            status: out.status.to_string(),
            stderr: stderr.chars().take(2000).collect(),
        });
    }
    written.map_err(spawn_err)
}
