//! Handshake admission: a global and a per-source token bucket, checked when a TLS connection
//! is accepted and before any handshake work, so that a flood of handshakes costs one table
//! look-up each and leaves the CPU to established connections. Time is an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a handshake was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Global,
    PerSource,
}

/// Rates are per second; a burst of one second's worth (at least one) is allowed.
#[derive(Debug)]
pub struct HandshakeLimiter {
    rate: f64,
    burst: f64,
    src_rate: f64,
    src_burst: f64,
    max_sources: usize,
    global: Option<Bucket>,
    sources: HashMap<IpAddr, Bucket>,
}

impl HandshakeLimiter {
    /// `per_second` 0 disables the global limit, `per_source` 0 the per-source one.
    pub fn new(per_second: u32, per_source: u32, max_sources: usize) -> HandshakeLimiter {
        let r = f64::from(per_second);
        let s = f64::from(per_source);
        HandshakeLimiter {
            rate: r,
            burst: r.max(1.0),
            src_rate: s,
            src_burst: s.max(1.0),
            max_sources: max_sources.max(1),
            global: None,
            sources: HashMap::new(),
        }
    }

    /// Whether a handshake from `ip` may start at `now` (a token is taken when it may).
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        if self.src_rate > 0.0 {
            if !self.sources.contains_key(&ip) && self.sources.len() >= self.max_sources {
                self.evict(now);
            }
            let (rate, burst) = (self.src_rate, self.src_burst);
            let b = self
                .sources
                .entry(ip)
                .or_insert_with(|| Bucket::full(burst, now));
            b.refill(rate, burst, now);
            if b.tokens < 1.0 {
                return Err(Refused::PerSource);
            }
        }
        if self.rate > 0.0 {
            let (rate, burst) = (self.rate, self.burst);
            let g = self.global.get_or_insert_with(|| Bucket::full(burst, now));
            g.refill(rate, burst, now);
            if !g.take() {
                return Err(Refused::Global);
            }
        }
        if let Some(b) = self.sources.get_mut(&ip) {
            b.take();
        }
        Ok(())
    }

    /// Makes room: drops every source whose bucket has refilled (it would start full anyway);
    /// if none has, the least recently seen one.
    fn evict(&mut self, now: Instant) {
        let (rate, burst) = (self.src_rate, self.src_burst);
        self.sources.retain(|_, b| {
            let mut c = *b;
            c.refill(rate, burst, now);
            c.tokens < burst
        });
        if self.sources.len() >= self.max_sources {
            if let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| *k)
            {
                self.sources.remove(&oldest);
            }
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn per_source_limit_refills_with_time() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(0, 5, 100);
        for _ in 0..5 {
            assert_eq!(l.admit(ip(1), t0), Ok(()));
        }
        assert_eq!(l.admit(ip(1), t0), Err(Refused::PerSource));
        // Another source is not affected.
        assert_eq!(l.admit(ip(2), t0), Ok(()));
        // 200 ms at 5/s: one token.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(l.admit(ip(1), t1), Ok(()));
        assert_eq!(l.admit(ip(1), t1), Err(Refused::PerSource));
    }

    #[test]
    fn global_limit_and_refused_sources_do_not_spend_global_tokens() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(10, 2, 100);
        let mut ok = 0;
        for i in 0..100 {
            if l.admit(ip(i % 3), t0).is_ok() {
                ok += 1;
            }
        }
        // 3 sources x 2 each, under the global 10.
        assert_eq!(ok, 6);
        let mut l = HandshakeLimiter::new(10, 2, 100);
        let refused: Vec<_> = (0..20).map(|i| l.admit(ip(i), t0)).collect();
        assert_eq!(refused.iter().filter(|r| r.is_ok()).count(), 10);
        assert_eq!(refused[10], Err(Refused::Global));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.admit(ip(50), t1), Ok(()));
    }

    #[test]
    fn the_source_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(0, 1, 64);
        for i in 0..10_000 {
            let _ = l.admit(ip(i), t0 + Duration::from_micros(u64::from(i)));
            assert!(l.tracked_sources() <= 64);
        }
        // A source that was evicted starts again with a full bucket: the bound costs some
        // precision under a flood from many addresses, never memory.
        assert!(l.admit(ip(1), t0 + Duration::from_millis(20)).is_ok());
    }
}

/// A warning that comes in floods: logged at once, then at most once per `every`, with the
/// number of occurrences since the last line.
#[derive(Debug)]
pub struct LogLimiter {
    every: std::time::Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(every: std::time::Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Counts one occurrence; returns how many to report (this one included) when a line is
    /// due at `now`.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.suppressed += 1;
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn floods_are_summarised() {
        let t0 = Instant::now();
        let mut r = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(r.hit(t0), Some(1));
        for i in 1..50 {
            assert_eq!(r.hit(t0 + Duration::from_millis(i * 100)), None);
        }
        assert_eq!(r.hit(t0 + Duration::from_secs(10)), Some(50));
    }
}
