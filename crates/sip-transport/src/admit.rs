//! Admission: a check the owner of the transport installs ([`TransportConfig::admission`])
//! and the receive path runs on every datagram (before it is copied out of the receive buffer
//! or parsed), every accepted TCP/TLS connection (before the TLS handshake and before it gets
//! a flow), and every message framed on a stream (before it is parsed). It is how bans and
//! per-source flood budgets drop traffic at the door.
//!
//! A refusal is counted ([`DropReason::Banned`], [`DropReason::RateLimited`],
//! [`DropReason::NoZone`]) and logged at most once per interval and reason, with the number of
//! drops since the last line ([`RateLog`], lock-free: a flood does not serialise the receive
//! tasks on a log lock). A banned source's stream connection is closed; a stream message over
//! budget is dropped and the connection kept.
//!
//! [`TransportConfig::admission`]: crate::TransportConfig::admission

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{DropReason, Protocol};

/// What arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalKind {
    /// A UDP datagram (SIP, STUN or a keepalive: all of them are checked).
    Datagram,
    /// A new inbound TCP or TLS connection.
    Connection,
    /// A message framed on an established stream.
    StreamMessage,
}

/// One datagram, connection or stream message, as the check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub source: SocketAddr,
    /// The listener's (or the connection's) local address.
    pub local: SocketAddr,
    pub protocol: Protocol,
    pub kind: ArrivalKind,
    /// Bytes (0 for a connection).
    pub len: usize,
}

/// Why something was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The source is banned.
    Banned,
    /// The source is over its budget.
    RateLimited,
    /// Nothing is accepted from the source's address at all.
    NoZone,
}

impl Refusal {
    fn index(self) -> usize {
        match self {
            Refusal::Banned => 0,
            Refusal::RateLimited => 1,
            Refusal::NoZone => 2,
        }
    }

    pub(crate) fn drop_reason(self) -> DropReason {
        match self {
            Refusal::Banned => DropReason::Banned,
            Refusal::RateLimited => DropReason::RateLimited,
            Refusal::NoZone => DropReason::NoZone,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Banned => "source banned",
            Refusal::RateLimited => "over the source's rate limit",
            Refusal::NoZone => "source in no zone",
        })
    }
}

/// The verdict of an [`Admission`] check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Accept,
    Drop(Refusal),
}

/// The check. It runs on the receive tasks, several at once: it must be cheap, must not
/// allocate and must not block (no lock held for long, no I/O).
pub trait Admission: Send + Sync {
    fn admit(&self, arrival: &Arrival, now: Instant) -> Admit;
}

impl<F> Admission for F
where
    F: Fn(&Arrival, Instant) -> Admit + Send + Sync,
{
    fn admit(&self, arrival: &Arrival, now: Instant) -> Admit {
        self(arrival, now)
    }
}

/// An optional [`Admission`] for [`crate::TransportConfig`]. Default: everything is admitted.
#[derive(Clone, Default)]
pub struct AdmissionHook(Option<Arc<dyn Admission>>);

impl AdmissionHook {
    pub fn new(check: Arc<dyn Admission>) -> AdmissionHook {
        AdmissionHook(Some(check))
    }

    pub(crate) fn get(&self) -> Option<&dyn Admission> {
        self.0.as_deref()
    }
}

impl fmt::Debug for AdmissionHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "AdmissionHook(some)"
        } else {
            "AdmissionHook(none)"
        })
    }
}

/// A warning that comes in floods, shared by tasks on several threads without a lock: the
/// first occurrence is reported, then at most one per `every`, with the count since the last
/// report.
#[derive(Debug)]
pub struct RateLog {
    base: Instant,
    every_ns: u64,
    /// Nanoseconds since `base` of the last report; `NEVER` before the first.
    last: AtomicU64,
    pending: AtomicU64,
}

const NEVER: u64 = u64::MAX;

impl RateLog {
    pub fn new(every: Duration, base: Instant) -> RateLog {
        RateLog {
            base,
            every_ns: u64::try_from(every.as_nanos()).unwrap_or(u64::MAX),
            last: AtomicU64::new(NEVER),
            pending: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence at `now`; returns how many to report (this one included) when a
    /// line is due. Exactly one of several threads racing for a due line gets it.
    pub fn hit(&self, now: Instant) -> Option<u64> {
        self.pending.fetch_add(1, Relaxed);
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(NEVER - 1);
        let last = self.last.load(Relaxed);
        if last != NEVER && now_ns.saturating_sub(last) < self.every_ns {
            return None;
        }
        self.last
            .compare_exchange(last, now_ns, Relaxed, Relaxed)
            .ok()
            .map(|_| self.pending.swap(0, Relaxed))
    }
}

/// One [`RateLog`] per [`Refusal`].
#[derive(Debug)]
pub(crate) struct RefusalLogs([RateLog; 3]);

impl RefusalLogs {
    pub fn new(every: Duration) -> RefusalLogs {
        let now = Instant::now();
        RefusalLogs([
            RateLog::new(every, now),
            RateLog::new(every, now),
            RateLog::new(every, now),
        ])
    }

    pub fn log(&self, why: Refusal, a: &Arrival, now: Instant) {
        let Some(n) = self.0.get(why.index()).and_then(|l| l.hit(now)) else {
            return;
        };
        let what = match a.kind {
            ArrivalKind::Datagram => "datagram",
            ArrivalKind::Connection => "connection",
            ArrivalKind::StreamMessage => "message",
        };
        tracing::warn!(
            "{} {what} from {} dropped at the door: {why} ({n} dropped for this reason since the last such line)",
            a.protocol,
            a.source
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_log_reports_first_then_once_per_interval_with_counts() {
        let t0 = Instant::now();
        let l = RateLog::new(Duration::from_secs(10), t0);
        assert_eq!(l.hit(t0), Some(1));
        for i in 1..100u64 {
            assert_eq!(l.hit(t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(l.hit(t0 + Duration::from_secs(10)), Some(100));
        assert_eq!(l.hit(t0 + Duration::from_secs(11)), None);
        // A clock that goes backwards reports nothing early.
        assert_eq!(l.hit(t0), None);
    }

    #[test]
    fn rate_log_from_many_threads_loses_no_count() {
        let t0 = Instant::now();
        let l = Arc::new(RateLog::new(Duration::from_secs(3600), t0));
        let reported: u64 = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..10_000).filter_map(|_| l.hit(t0)).sum::<u64>())
            })
            .map(|h| h.join().unwrap())
            .sum();
        // One line (the first hit), then everything is pending for the next line.
        assert_eq!(reported, 1);
        assert_eq!(l.hit(t0 + Duration::from_secs(3600)), Some(40_000));
    }

    #[test]
    fn closures_are_admission_checks() {
        let deny_port_9: Arc<dyn Admission> = Arc::new(|a: &Arrival, _now: Instant| {
            if a.source.port() == 9 {
                Admit::Drop(Refusal::Banned)
            } else {
                Admit::Accept
            }
        });
        let hook = AdmissionHook::new(deny_port_9);
        let mut a = Arrival {
            source: "192.0.2.1:9".parse().unwrap(),
            local: "192.0.2.2:5060".parse().unwrap(),
            protocol: Protocol::Udp,
            kind: ArrivalKind::Datagram,
            len: 10,
        };
        let check = hook.get().unwrap();
        assert_eq!(
            check.admit(&a, Instant::now()),
            Admit::Drop(Refusal::Banned)
        );
        a.source.set_port(5060);
        assert_eq!(check.admit(&a, Instant::now()), Admit::Accept);
        assert!(AdmissionHook::default().get().is_none());
        assert_eq!(format!("{hook:?}"), "AdmissionHook(some)");
    }
}
