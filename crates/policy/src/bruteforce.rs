//! Brute-force protection: failed authentications counted per source address and per user in a
//! sliding window, bans that grow on repeat offences, trusted networks exempt.
//!
//! Pure state: the caller passes the wall-clock time (bans are persisted in wall-clock time, so
//! they keep their meaning across a restart) and persists the [`Ban`]s this returns through
//! [`store::BanStore::put_ban`]; at start it hands [`store::BanStore::list_bans`] to
//! [`BruteForce::load_bans`].
//!
//! Memory is bounded: at most `capacity` counted sources and users, each holding at most
//! `max(max_failures, user_max_failures)` (100 at most) timestamps of 8 bytes, and at most
//! `max_bans` bans and offence records. With the defaults (65536 each, thresholds 5 and 20)
//! that is under 20 MB in the worst case. When a table is full, the least recently failed
//! counter, or the ban or record that ends first, is dropped.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use store::{Ban, BanSource};

use crate::compile::Policy;
use crate::config::BruteForceConfig;

/// The storage key prefix of a user lockout: `BanSource::Key("user:alice")`.
pub const USER_KEY_PREFIX: &str = "user:";

/// The bans one failed authentication caused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// The source address was banned (persist it).
    pub source_ban: Option<Ban>,
    /// The user was locked out (persist it).
    pub user_lockout: Option<Ban>,
}

/// What one ban event means; an alias kept for readers looking for "ban source X until T".
pub type BanEvent = Ban;

struct Counter {
    /// Failure times (unix seconds) inside the window, oldest first.
    times: VecDeque<u64>,
    /// When it was last touched, and a tie-breaker, as the key of `by_age`.
    touched: (u64, u64),
}

struct BanState {
    /// Unix seconds; the ban is in force while `now < until`.
    until: u64,
    /// Bans so far (1 after the first).
    count: u32,
}

/// Failed-authentication counters and the bans they led to.
pub struct BruteForce {
    cfg: BruteForceConfig,
    trusted: Vec<IpNet>,
    counters: HashMap<BanSource, Counter>,
    by_age: BTreeSet<(u64, u64, BanSource)>,
    seq: u64,
    /// Bans in force, and lapsed ones kept for `forget_s` to escalate the next.
    bans: HashMap<BanSource, BanState>,
    /// `(until + forget_s, key)`: what to drop first when `bans` is full, and what `purge`
    /// may forget.
    bans_by_end: BTreeSet<(u64, BanSource)>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn time(s: u64) -> SystemTime {
    // Only a caller's absurd clock gets near the end of SystemTime's range; cap rather than
    // panic (2106 is representable on every platform with 64-bit time).
    UNIX_EPOCH
        .checked_add(Duration::from_secs(s))
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
}

/// The storage key of a user lockout.
pub fn user_source(user: &str) -> BanSource {
    BanSource::Key(format!("{USER_KEY_PREFIX}{user}"))
}

/// The most failures the window holds per key (the thresholds' upper bound).
const MAX_THRESHOLD: u32 = 100;

impl BruteForce {
    /// An empty table with the policy's settings and trusted networks.
    pub fn new(policy: &Policy) -> Self {
        Self::with_config(
            policy.bruteforce_config().clone(),
            policy.trusted().to_vec(),
        )
    }

    /// An empty table with explicit settings.
    pub fn with_config(cfg: BruteForceConfig, trusted: Vec<IpNet>) -> Self {
        BruteForce {
            cfg,
            trusted,
            counters: HashMap::new(),
            by_age: BTreeSet::new(),
            seq: 0,
            bans: HashMap::new(),
            bans_by_end: BTreeSet::new(),
        }
    }

    /// Takes new settings (a reload), keeping the counters and bans.
    pub fn reconfigure(&mut self, policy: &Policy) {
        self.cfg = policy.bruteforce_config().clone();
        self.trusted = policy.trusted().to_vec();
        self.shrink_counters();
        while self.bans.len() > self.cfg.max_bans as usize {
            self.evict_ban();
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Loads the bans persisted earlier (lapsed ones are kept only as offence history, for
    /// escalation). Bans on trusted addresses are ignored: trust wins over an old ban.
    pub fn load_bans(&mut self, bans: impl IntoIterator<Item = Ban>, now: SystemTime) {
        let now = secs(now);
        for ban in bans {
            let source = match ban.source {
                BanSource::Ip(ip) => BanSource::Ip(ip.to_canonical()),
                other => other,
            };
            if let BanSource::Ip(ip) = source {
                if self.is_trusted(ip) {
                    continue;
                }
            }
            let until = secs(ban.until);
            if until.saturating_add(self.cfg.forget_s.into()) <= now {
                continue;
            }
            self.put_ban(source, until, ban.count.max(1));
        }
    }

    /// When the ban on `ip` ends, if it is banned at `now`.
    pub fn banned_until(&self, ip: IpAddr, now: SystemTime) -> Option<SystemTime> {
        let ip = ip.to_canonical();
        if self.is_trusted(ip) {
            return None;
        }
        self.in_force(&BanSource::Ip(ip), secs(now))
    }

    /// The source addresses banned at `now`, with the end of each ban: what the receive path's
    /// [`crate::Gatekeeper`] is given after every change ([`crate::Gatekeeper::publish_bans`]).
    /// Trusted addresses are never in it.
    pub fn ip_bans(&self, now: SystemTime) -> Vec<(IpAddr, SystemTime)> {
        let now = secs(now);
        self.bans
            .iter()
            .filter_map(|(k, b)| match k {
                BanSource::Ip(ip) if now < b.until && !self.is_trusted(*ip) => {
                    Some((*ip, time(b.until)))
                }
                _ => None,
            })
            .collect()
    }

    /// When the lockout of `user` ends, if it is locked out at `now`.
    pub fn locked_until(&self, user: &str, now: SystemTime) -> Option<SystemTime> {
        self.in_force(&user_source(user), secs(now))
    }

    fn in_force(&self, key: &BanSource, now: u64) -> Option<SystemTime> {
        self.bans
            .get(key)
            .filter(|b| now < b.until)
            .map(|b| time(b.until))
    }

    /// Counts one failed authentication from `source` (for `user`, when the request named one).
    /// Returns the bans it caused, for the caller to persist and log.
    pub fn record_failure(
        &mut self,
        source: IpAddr,
        user: Option<&str>,
        now: SystemTime,
    ) -> Failure {
        let source = source.to_canonical();
        let mut out = Failure::default();
        // A trusted peer (the PBX, the ITSP) relays many users: its failures are its users'
        // typos, not an attack, and banning it would cut off everyone behind it.
        if self.is_trusted(source) {
            return out;
        }
        let now_s = secs(now);
        let max = self.cfg.max_failures.min(MAX_THRESHOLD);
        if max > 0 && self.in_force(&BanSource::Ip(source), now_s).is_none() {
            let key = BanSource::Ip(source);
            if self.count(&key, now_s, max) {
                out.source_ban = Some(self.ban(key, now_s, "too many failed authentications"));
            }
        }
        let umax = self.cfg.user_max_failures.min(MAX_THRESHOLD);
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            let key = user_source(user);
            if umax > 0 && self.in_force(&key, now_s).is_none() && self.count(&key, now_s, umax) {
                out.user_lockout =
                    Some(self.ban(key, now_s, "too many failed authentications for this user"));
            }
        }
        out
    }

    /// A successful authentication: the source's and the user's failures are forgotten (a phone
    /// that mistyped once is not a step nearer a ban). Bans in force stay.
    pub fn record_success(&mut self, source: IpAddr, user: Option<&str>) {
        self.forget(&BanSource::Ip(source.to_canonical()));
        if let Some(u) = user {
            self.forget(&user_source(u));
        }
    }

    fn forget(&mut self, key: &BanSource) {
        if let Some(c) = self.counters.remove(key) {
            self.by_age.remove(&(c.touched.0, c.touched.1, key.clone()));
        }
    }

    /// Adds a failure at `now`; true when it reaches `max` within the window (the counter is
    /// then cleared, the ban takes over).
    fn count(&mut self, key: &BanSource, now: u64, max: u32) -> bool {
        let window = u64::from(self.cfg.window_s);
        self.seq += 1;
        let touched = (now, self.seq);
        if let Some(c) = self.counters.get_mut(key) {
            self.by_age.remove(&(c.touched.0, c.touched.1, key.clone()));
            c.touched = touched;
        } else {
            while self.counters.len() >= self.cfg.capacity as usize {
                if !self.evict_counter() {
                    break;
                }
            }
            self.counters.insert(
                key.clone(),
                Counter {
                    times: VecDeque::with_capacity(max as usize),
                    touched,
                },
            );
        }
        self.by_age.insert((touched.0, touched.1, key.clone()));
        let Some(c) = self.counters.get_mut(key) else {
            return false;
        };
        // A clock stepped backwards leaves later timestamps in front: they age out with the
        // window like the others, no harm done.
        while c
            .times
            .front()
            .is_some_and(|&t| t.saturating_add(window) <= now)
        {
            c.times.pop_front();
        }
        while c.times.len() >= max as usize {
            c.times.pop_front();
        }
        c.times.push_back(now);
        if c.times.len() >= max as usize {
            self.forget(key);
            return true;
        }
        false
    }

    fn evict_counter(&mut self) -> bool {
        match self.by_age.pop_first() {
            Some((_, _, key)) => {
                self.counters.remove(&key);
                true
            }
            None => false,
        }
    }

    fn shrink_counters(&mut self) {
        while self.counters.len() > self.cfg.capacity as usize {
            if !self.evict_counter() {
                break;
            }
        }
    }

    /// Bans `key` from `now`: `ban_s` doubled for every earlier ban still remembered, capped.
    fn ban(&mut self, key: BanSource, now: u64, reason: &str) -> Ban {
        let previous = self.bans.get(&key).map_or(0, |b| b.count);
        let count = previous.saturating_add(1);
        let length = u64::from(self.cfg.ban_s)
            .saturating_mul(1u64 << previous.min(32))
            .min(u64::from(self.cfg.max_ban_s));
        let until = now.saturating_add(length);
        self.put_ban(key.clone(), until, count);
        Ban {
            source: key,
            until: time(until),
            reason: reason.to_owned(),
            count,
        }
    }

    fn put_ban(&mut self, key: BanSource, until: u64, count: u32) {
        let forget = u64::from(self.cfg.forget_s);
        if let Some(old) = self.bans.get(&key) {
            self.bans_by_end
                .remove(&(old.until.saturating_add(forget), key.clone()));
        } else {
            while self.bans.len() >= self.cfg.max_bans as usize {
                if !self.evict_ban() {
                    break;
                }
            }
        }
        self.bans_by_end
            .insert((until.saturating_add(forget), key.clone()));
        self.bans.insert(key, BanState { until, count });
    }

    fn evict_ban(&mut self) -> bool {
        match self.bans_by_end.pop_first() {
            Some((_, key)) => {
                self.bans.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Forgets what no longer matters at `now`: counters whose failures all left the window,
    /// and bans lapsed longer ago than `forget_s`. Call it now and then (every minute); the
    /// tables stay bounded without it.
    pub fn purge(&mut self, now: SystemTime) {
        let now = secs(now);
        let window = u64::from(self.cfg.window_s);
        while let Some((t, _, _)) = self.by_age.first() {
            if t.saturating_add(window) > now {
                break;
            }
            self.evict_counter();
        }
        while let Some((end, _)) = self.bans_by_end.first() {
            if *end > now {
                break;
            }
            self.evict_ban();
        }
    }

    /// Bans in force at `now` (for the admin's list).
    pub fn bans(&self, now: SystemTime) -> Vec<(BanSource, SystemTime, u32)> {
        let now = secs(now);
        let mut v: Vec<_> = self
            .bans
            .iter()
            .filter(|(_, b)| now < b.until)
            .map(|(k, b)| (k.clone(), time(b.until), b.count))
            .collect();
        v.sort();
        v
    }

    /// How many sources and users have failures counted.
    pub fn counted(&self) -> usize {
        self.counters.len()
    }

    /// How many bans (in force or remembered) are held.
    pub fn held_bans(&self) -> usize {
        self.bans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn cfg() -> BruteForceConfig {
        BruteForceConfig {
            max_failures: 3,
            window_s: 60,
            ban_s: 100,
            max_ban_s: 350,
            user_max_failures: 5,
            forget_s: 10_000,
            capacity: 16,
            max_bans: 16,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))
    }

    #[test]
    fn bans_after_n_failures_in_window() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        assert_eq!(bf.record_failure(ip(1), None, t(0)), Failure::default());
        assert_eq!(bf.record_failure(ip(1), None, t(10)), Failure::default());
        let f = bf.record_failure(ip(1), None, t(20));
        let ban = f.source_ban.unwrap();
        assert_eq!(ban.source, BanSource::Ip(ip(1)));
        assert_eq!(ban.until, t(120));
        assert_eq!(ban.count, 1);
        assert_eq!(bf.banned_until(ip(1), t(119)), Some(t(120)));
        assert_eq!(bf.banned_until(ip(1), t(120)), None);
        assert_eq!(bf.banned_until(ip(2), t(50)), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        bf.record_failure(ip(1), None, t(0));
        bf.record_failure(ip(1), None, t(30));
        // t=0 leaves the window at t=60.
        assert!(bf.record_failure(ip(1), None, t(60)).source_ban.is_none());
        assert!(bf.record_failure(ip(1), None, t(89)).source_ban.is_some());
    }

    #[test]
    fn repeat_offences_double_up_to_the_cap() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        let mut start = 0;
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let mut ban = None;
            for k in 0..3 {
                ban = bf.record_failure(ip(1), None, t(start + k)).source_ban;
            }
            let ban = ban.unwrap();
            let until = secs(ban.until) - secs(t(0));
            lengths.push(until - (start + 2));
            start = until;
        }
        assert_eq!(lengths, vec![100, 200, 350, 350]);
    }

    #[test]
    fn failures_while_banned_are_not_counted() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        for k in 0..3 {
            bf.record_failure(ip(1), None, t(k));
        }
        for k in 3..50 {
            assert!(bf.record_failure(ip(1), None, t(k)).source_ban.is_none());
        }
    }

    #[test]
    fn trusted_networks_are_never_banned() {
        let trusted = vec!["203.0.113.0/28".parse().unwrap()];
        let mut bf = BruteForce::with_config(cfg(), trusted);
        for k in 0..20 {
            let f = bf.record_failure(ip(1), Some("alice"), t(k));
            assert_eq!(f, Failure::default());
        }
        assert_eq!(bf.counted(), 0);
        // An IPv4-mapped IPv6 form of a trusted address is trusted too.
        let mapped: IpAddr = "::ffff:203.0.113.1".parse().unwrap();
        assert!(bf.record_failure(mapped, None, t(30)).source_ban.is_none());
        // A ban loaded for a trusted address is ignored.
        bf.load_bans(
            [Ban {
                source: BanSource::Ip(ip(2)),
                until: t(1000),
                reason: "old".into(),
                count: 1,
            }],
            t(0),
        );
        assert_eq!(bf.banned_until(ip(2), t(1)), None);
    }

    #[test]
    fn users_are_locked_out_across_sources() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        let mut lockout = None;
        for k in 0..5u8 {
            let f = bf.record_failure(ip(10 + k), Some("alice"), t(u64::from(k)));
            assert!(f.source_ban.is_none());
            lockout = f.user_lockout;
        }
        let l = lockout.unwrap();
        assert_eq!(l.source, BanSource::Key("user:alice".into()));
        assert_eq!(bf.locked_until("alice", t(5)), Some(t(104)));
        assert_eq!(bf.locked_until("bob", t(5)), None);
    }

    #[test]
    fn success_forgets_failures() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        bf.record_failure(ip(1), None, t(0));
        bf.record_failure(ip(1), None, t(1));
        bf.record_success(ip(1), None);
        assert!(bf.record_failure(ip(1), None, t(2)).source_ban.is_none());
        assert!(bf.record_failure(ip(1), None, t(3)).source_ban.is_none());
        assert!(bf.record_failure(ip(1), None, t(4)).source_ban.is_some());
    }

    #[test]
    fn loaded_bans_apply_and_escalate() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        bf.load_bans(
            [
                Ban {
                    source: BanSource::Ip(ip(1)),
                    until: t(500),
                    reason: "r".into(),
                    count: 1,
                },
                Ban {
                    source: BanSource::Ip(ip(2)),
                    until: t(50),
                    reason: "lapsed".into(),
                    count: 2,
                },
            ],
            t(100),
        );
        assert_eq!(bf.banned_until(ip(1), t(100)), Some(t(500)));
        assert_eq!(bf.banned_until(ip(2), t(100)), None);
        // The lapsed ban still counts for escalation: third ban, 100 * 4 capped at 350.
        let mut ban = None;
        for k in 0..3 {
            ban = bf.record_failure(ip(2), None, t(200 + k)).source_ban;
        }
        let ban = ban.unwrap();
        assert_eq!(ban.count, 3);
        assert_eq!(ban.until, t(202 + 350));
    }

    #[test]
    fn tables_stay_bounded() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        for n in 0..1000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            bf.record_failure(a, Some(&format!("u{n}")), t(u64::from(n)));
            assert!(bf.counted() <= 16);
        }
        // The most recent sources are still counted: two more failures ban the newest one.
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 999));
        bf.record_failure(newest, None, t(1000));
        assert!(bf
            .record_failure(newest, None, t(1001))
            .source_ban
            .is_some());
        for n in 0..1000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n));
            for k in 0..3 {
                bf.record_failure(a, None, t(2000 + u64::from(n) * 3 + k));
            }
            assert!(bf.held_bans() <= 16);
        }
    }

    #[test]
    fn purge_forgets_old_state() {
        let mut bf = BruteForce::with_config(cfg(), vec![]);
        bf.record_failure(ip(1), None, t(0));
        for k in 0..3 {
            bf.record_failure(ip(2), None, t(k));
        }
        bf.purge(t(61));
        assert_eq!(bf.counted(), 0);
        assert_eq!(bf.held_bans(), 1);
        bf.purge(t(102 + 10_000));
        assert_eq!(bf.held_bans(), 0);
    }
}
