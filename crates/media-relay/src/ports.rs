//! The port pool of one zone: RTP/RTCP pairs (even RTP port, RTCP on the
//! next odd port) out of a configured range, with a quarantine after release.
//!
//! The pool is sans-IO: it decides which pair to try; the caller binds the
//! socket and says whether that worked (another process may hold a port of
//! our range). A pair that could not be bound is put in quarantine like a
//! released one, so a busy range is not rescanned on every allocation.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Free,
    InUse,
    /// Not to be handed out before this instant.
    Quarantined(Instant),
}

/// Allocation state of one zone's port range.
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    pairs: Vec<PairState>,
    cursor: usize,
    quarantine: Duration,
    in_use: usize,
}

impl PortPool {
    /// A pool over the pairs that fit entirely in `min..=max` (the first RTP
    /// port is the first even port >= `min`).
    pub fn new(min: u16, max: u16, quarantine: Duration) -> Self {
        let first = min.saturating_add(min % 2);
        let count = if max > first {
            (usize::from(max) - usize::from(first)).div_ceil(2)
        } else {
            0
        };
        Self {
            first,
            pairs: vec![PairState::Free; count],
            cursor: 0,
            quarantine,
            in_use: 0,
        }
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.pairs.len()
    }

    /// Number of pairs currently allocated.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    fn port_of(&self, index: usize) -> Option<u16> {
        u16::try_from(usize::from(self.first) + 2 * index).ok()
    }

    fn index_of(&self, rtp_port: u16) -> Option<usize> {
        let off = rtp_port.checked_sub(self.first)?;
        if off % 2 != 0 {
            return None;
        }
        let i = usize::from(off / 2);
        (i < self.pairs.len()).then_some(i)
    }

    /// Allocates a pair and returns its (even) RTP port. `bind` is called
    /// with candidate RTP ports, in round-robin order from where the last
    /// allocation stopped (so recently released ports are the last to come
    /// back), until it returns true. Returns `None` when no pair is free or
    /// every free pair failed to bind.
    pub fn allocate(&mut self, now: Instant, bind: &mut dyn FnMut(u16) -> bool) -> Option<u16> {
        let n = self.pairs.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let usable = match self.pairs.get(i) {
                Some(PairState::Free) => true,
                Some(PairState::Quarantined(until)) => *until <= now,
                _ => false,
            };
            if !usable {
                continue;
            }
            let Some(port) = self.port_of(i) else {
                continue;
            };
            let ok = bind(port);
            if let Some(state) = self.pairs.get_mut(i) {
                if ok {
                    *state = PairState::InUse;
                    self.in_use += 1;
                    self.cursor = (i + 1) % n;
                    return Some(port);
                }
                *state = PairState::Quarantined(now + self.quarantine);
            }
        }
        None
    }

    /// Returns a pair to the pool; it will not be handed out again before
    /// `now + quarantine`, so late packets of the old call cannot reach a new
    /// one. Returns false if the port was not allocated here.
    pub fn release(&mut self, rtp_port: u16, now: Instant) -> bool {
        let quarantine = self.quarantine;
        let Some(state) = self.index_of(rtp_port).and_then(|i| self.pairs.get_mut(i)) else {
            return false;
        };
        if *state != PairState::InUse {
            return false;
        }
        *state = PairState::Quarantined(now + quarantine);
        self.in_use -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_inside_the_range() {
        let now = Instant::now();
        let mut p = PortPool::new(30001, 30008, Duration::ZERO);
        // Pairs 30002/3, 30004/5, 30006/7; 30008 has no odd partner.
        assert_eq!(p.capacity(), 3);
        let mut got = Vec::new();
        while let Some(port) = p.allocate(now, &mut |_| true) {
            got.push(port);
        }
        assert_eq!(got, vec![30002, 30004, 30006]);
        assert_eq!(p.in_use(), 3);
        assert!(!p.release(30003, now), "odd port is not an allocation");
        assert!(p.release(30004, now));
        assert!(!p.release(30004, now), "double release");
        assert_eq!(p.allocate(now, &mut |_| true), Some(30004));
    }

    #[test]
    fn quarantine_keeps_released_ports_out() {
        let t0 = Instant::now();
        let q = Duration::from_secs(30);
        let mut p = PortPool::new(40000, 40003, q);
        let a = p.allocate(t0, &mut |_| true).unwrap();
        let b = p.allocate(t0, &mut |_| true).unwrap();
        assert_ne!(a, b);
        assert!(p.release(a, t0));
        assert_eq!(
            p.allocate(t0 + Duration::from_secs(29), &mut |_| true),
            None
        );
        assert_eq!(p.allocate(t0 + q, &mut |_| true), Some(a));
    }

    #[test]
    fn round_robin_prefers_ports_not_recently_used() {
        let t0 = Instant::now();
        let mut p = PortPool::new(50000, 50009, Duration::ZERO);
        let a = p.allocate(t0, &mut |_| true).unwrap();
        p.release(a, t0);
        let b = p.allocate(t0, &mut |_| true).unwrap();
        assert_ne!(a, b, "released pair should not come straight back");
    }

    #[test]
    fn bind_failures_skip_the_pair() {
        let t0 = Instant::now();
        let mut p = PortPool::new(20000, 20005, Duration::from_secs(5));
        let mut tried = Vec::new();
        let got = p.allocate(t0, &mut |port| {
            tried.push(port);
            port != 20000
        });
        assert_eq!(got, Some(20002));
        assert_eq!(tried, vec![20000, 20002]);
        // The failed pair waits out the quarantine before it is retried.
        let mut tried = Vec::new();
        assert_eq!(
            p.allocate(t0, &mut |port| {
                tried.push(port);
                true
            }),
            Some(20004)
        );
        assert_eq!(p.allocate(t0, &mut |_| true), None);
        assert_eq!(
            p.allocate(t0 + Duration::from_secs(5), &mut |_| true),
            Some(20000)
        );
        assert!(p.allocate(t0, &mut |_| false).is_none());
    }

    #[test]
    fn empty_and_degenerate_ranges() {
        let t0 = Instant::now();
        assert_eq!(PortPool::new(10, 10, Duration::ZERO).capacity(), 0);
        assert_eq!(PortPool::new(11, 10, Duration::ZERO).capacity(), 0);
        assert!(PortPool::new(65535, 65535, Duration::ZERO)
            .allocate(t0, &mut |_| true)
            .is_none());
        let mut top = PortPool::new(65534, 65535, Duration::ZERO);
        assert_eq!(top.allocate(t0, &mut |_| true), Some(65534));
    }
}
