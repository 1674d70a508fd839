//! The receive path's gate: bans and per-zone flood budgets checked on the raw packet (or the
//! new connection), before anything is parsed, from any number of receive tasks at once.
//!
//! Why it is shaped so:
//! - The flood buckets ([`FloodGuard`]) are split into [`SHARDS`] tables, each behind its own
//!   mutex and picked by a keyed hash of the source address: one receive task takes an
//!   uncontended lock (a couple of atomic operations); two tasks collide only when their
//!   sources fall in the same shard at the same moment. No allocation per packet; the
//!   memory is the tables allocated once.
//! - The bans are an immutable snapshot swapped atomically ([`ArcSwap`]): a reader never waits
//!   and never blocks the writer. Bans change rarely (a guessing source is banned once), so
//!   the engine republishes the whole list after each change ([`Gatekeeper::publish_bans`]).
//! - The zone of a packet is the zone whose networks hold its source (as in the engine), so
//!   each zone keeps its own budget; a source in no zone is refused here.
//!
//! Trusted networks are never banned (they are left out of every published list) nor
//! rate-limited ([`FloodGuard`] skips them).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::compile::Policy;
use crate::flood::{hash, key_of, FloodGuard, FloodVerdict, ZoneId};

/// How many independently locked flood tables there are.
pub const SHARDS: usize = 16;

/// What the gate says about one packet or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Read it.
    Pass,
    /// The source is banned (failed authentications): drop it, refuse the connection.
    Banned,
    /// Over the zone's flood budget: drop it.
    Limited,
    /// The source is in no configured zone: nothing may come from there.
    NoZone,
}

#[derive(Clone)]
struct Zones {
    nets: Vec<Vec<IpNet>>,
    /// Whether the zone at this position has a flood budget at all (else no lock is taken).
    limited: Vec<bool>,
}

/// What every packet reads, swapped as one (one atomic load per packet).
struct State {
    zones: Zones,
    bans: Bans,
}

impl Zones {
    fn new(policy: &Policy, zones: &[(String, Vec<IpNet>)]) -> Zones {
        Zones {
            nets: zones.iter().map(|(_, n)| n.clone()).collect(),
            limited: zones
                .iter()
                .map(|(z, _)| policy.flood_config(z).rate > 0)
                .collect(),
        }
    }

    fn zone_of(&self, ip: IpAddr) -> Option<usize> {
        self.nets
            .iter()
            .position(|nets| nets.iter().any(|n| n.contains(&ip)))
    }
}

/// The ban snapshot: source key to the end of its ban, in nanoseconds since the gate's base.
#[derive(Clone)]
struct Bans {
    until: HashMap<u128, u64, Seeded>,
}

/// A hasher keyed per process (the flood table's mix), so that nobody can aim banned
/// addresses at one bucket of the map.
#[derive(Clone, Copy)]
struct Seeded(u64);

impl BuildHasher for Seeded {
    type Hasher = Mix;
    fn build_hasher(&self) -> Mix {
        Mix(self.0)
    }
}

struct Mix(u64);

impl Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut a = [0u8; 8];
            a.iter_mut().zip(chunk).for_each(|(d, s)| *d = *s);
            self.0 = hash([u64::from_le_bytes(a), 0], self.0);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = hash([(n >> 64) as u64, n as u64], self.0);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn key128(ip: IpAddr) -> u128 {
    let [hi, lo] = key_of(ip);
    (u128::from(hi) << 64) | u128::from(lo)
}

/// Bans and flood budgets for the receive path; share it (`Arc`) between the transport's
/// receive tasks and the engine that decides the bans.
pub struct Gatekeeper {
    shards: Box<[Mutex<FloodGuard>]>,
    state: ArcSwap<State>,
    base: Instant,
    seed: u64,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("zones", &self.state.load().zones.nets.len())
            .field("bans", &self.state.load().bans.until.len())
            .finish()
    }
}

impl Gatekeeper {
    /// A gate for `zones` (in order: their positions are their [`ZoneId`]s, as in the engine)
    /// with the budgets of `policy`, holding at most `capacity` flood buckets in all (see
    /// [`FloodGuard::new`] for the rounding). `seed` should be random per process.
    pub fn new(
        policy: &Policy,
        zones: &[(String, Vec<IpNet>)],
        capacity: usize,
        seed: u64,
        now: Instant,
    ) -> Gatekeeper {
        let names: Vec<&str> = zones.iter().map(|(n, _)| n.as_str()).collect();
        let per_shard = (capacity / SHARDS).max(4);
        let shards = (0..SHARDS)
            .map(|i| {
                let s = seed.rotate_left(7) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                Mutex::new(FloodGuard::new(policy, &names, per_shard, s, now))
            })
            .collect();
        Gatekeeper {
            shards,
            state: ArcSwap::from_pointee(State {
                zones: Zones::new(policy, zones),
                bans: Bans {
                    until: HashMap::with_hasher(Seeded(seed ^ 0x5bd1_e995)),
                },
            }),
            base: now,
            seed,
        }
    }

    /// New budgets, trusted networks and zone networks (a reload); buckets and bans are kept
    /// (buckets of a zone that changed position start afresh).
    pub fn reconfigure(&self, policy: &Policy, zones: &[(String, Vec<IpNet>)]) {
        let names: Vec<&str> = zones.iter().map(|(n, _)| n.as_str()).collect();
        for shard in self.shards.iter() {
            lock(shard).reconfigure(policy, &names);
        }
        let zones = Zones::new(policy, zones);
        self.state.rcu(|old| State {
            zones: zones.clone(),
            bans: old.bans.clone(),
        });
    }

    /// How many flood buckets the shards hold together.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| lock(s).capacity()).sum()
    }

    /// The zone of a source address: the first whose networks hold it.
    pub fn zone_of(&self, ip: IpAddr) -> Option<ZoneId> {
        let i = self.state.load().zones.zone_of(ip.to_canonical())?;
        u16::try_from(i).ok().map(ZoneId)
    }

    /// Judges one packet (or connection) from `ip` at `now`, charging its zone's budget:
    /// banned, then in no zone, then over budget.
    #[inline]
    pub fn check(&self, ip: IpAddr, now: Instant) -> Admit {
        let ip = ip.to_canonical();
        let state = self.state.load();
        if self.banned_in(&state.bans, ip, now) {
            return Admit::Banned;
        }
        let Some(z) = state.zones.zone_of(ip) else {
            return Admit::NoZone;
        };
        if !state.zones.limited.get(z).copied().unwrap_or(false) {
            return Admit::Pass;
        }
        drop(state);
        let zone = ZoneId(u16::try_from(z).unwrap_or(u16::MAX));
        self.charge(zone, ip, now)
    }

    /// [`Gatekeeper::check`] with the zone already known (a caller that classifies sources
    /// its own way, e.g. with a default zone).
    pub fn check_in(&self, zone: ZoneId, ip: IpAddr, now: Instant) -> Admit {
        let ip = ip.to_canonical();
        if self.is_banned(ip, now) {
            return Admit::Banned;
        }
        self.charge(zone, ip, now)
    }

    fn charge(&self, zone: ZoneId, ip: IpAddr, now: Instant) -> Admit {
        let key = key_of(ip);
        let i = (hash(key, self.seed ^ 0xa076_1d64_78bd_642f) >> 32) as usize % SHARDS;
        let Some(shard) = self.shards.get(i) else {
            return Admit::Pass;
        };
        match lock(shard).check(zone, ip, now) {
            FloodVerdict::Pass => Admit::Pass,
            FloodVerdict::Limited => Admit::Limited,
        }
    }

    /// Whether `ip` is banned at `now`.
    #[inline]
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.banned_in(&self.state.load().bans, ip.to_canonical(), now)
    }

    fn banned_in(&self, bans: &Bans, ip: IpAddr, now: Instant) -> bool {
        if bans.until.is_empty() {
            return false;
        }
        let now_ns = self.ns(now);
        bans.until
            .get(&key128(ip))
            .is_some_and(|&until| now_ns < until)
    }

    /// Replaces the ban list with `bans` (each source with the end of its ban, in wall-clock
    /// time; [`crate::BruteForce::ip_bans`]). `now` and `wall` are the same moment on both
    /// clocks. Bans already over are left out.
    pub fn publish_bans(
        &self,
        bans: impl IntoIterator<Item = (IpAddr, SystemTime)>,
        now: Instant,
        wall: SystemTime,
    ) {
        let now_ns = self.ns(now);
        let mut until = HashMap::with_hasher(Seeded(self.seed ^ 0x5bd1_e995));
        for (ip, end) in bans {
            let Ok(left) = end.duration_since(wall) else {
                continue;
            };
            let left = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
            if left > 0 {
                until.insert(key128(ip.to_canonical()), now_ns.saturating_add(left));
            }
        }
        let bans = Bans { until };
        self.state.rcu(|old| State {
            zones: old.zones.clone(),
            bans: bans.clone(),
        });
    }

    /// Sources in the published ban list.
    pub fn banned_count(&self) -> usize {
        self.state.load().bans.until.len()
    }

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

fn lock(m: &Mutex<FloodGuard>) -> MutexGuard<'_, FloodGuard> {
    // A panic while holding a shard cannot leave a bucket half-written in a way that matters
    // (the worst is one wrong token count): keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Duration;

    fn policy(text: &str) -> Policy {
        let cfg: PolicyConfig = toml::from_str(text).unwrap();
        Policy::compile(&cfg, None).unwrap()
    }

    fn zones() -> Vec<(String, Vec<IpNet>)> {
        vec![
            ("lan".into(), vec!["10.0.0.0/8".parse().unwrap()]),
            ("wan".into(), vec!["0.0.0.0/1".parse().unwrap()]),
        ]
    }

    fn ip(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn budgets_are_per_zone_and_sources_in_no_zone_are_refused() {
        let p = policy(
            "trusted = [\"1.2.3.0/24\"]\n[[zone]]\nname = \"wan\"\nflood.rate = 10\nflood.burst = 3\n",
        );
        let t0 = Instant::now();
        let g = Gatekeeper::new(&p, &zones(), 1024, 9, t0);
        let wan = ip([5, 6, 7, 8]);
        let verdicts: Vec<Admit> = (0..5).map(|_| g.check(wan, t0)).collect();
        assert_eq!(
            verdicts,
            [
                Admit::Pass,
                Admit::Pass,
                Admit::Pass,
                Admit::Limited,
                Admit::Limited
            ]
        );
        // 10/s: one token after 100 ms.
        assert_eq!(g.check(wan, t0 + Duration::from_millis(100)), Admit::Pass);
        // lan has no budget: never limited (and takes no lock).
        for _ in 0..100 {
            assert_eq!(g.check(ip([10, 0, 0, 1]), t0), Admit::Pass);
        }
        // Trusted: never limited.
        for _ in 0..100 {
            assert_eq!(g.check(ip([1, 2, 3, 4]), t0), Admit::Pass);
        }
        assert_eq!(g.check(ip([200, 0, 0, 1]), t0), Admit::NoZone);
        assert_eq!(g.zone_of(ip([10, 9, 9, 9])), Some(ZoneId(0)));
        assert_eq!(g.zone_of(ip([200, 0, 0, 1])), None);
        // The caller's own classification.
        assert_eq!(g.check_in(ZoneId(0), ip([200, 0, 0, 1]), t0), Admit::Pass);
    }

    #[test]
    fn published_bans_drop_until_they_end() {
        let p = policy("trusted = [\"1.2.3.0/24\"]\n");
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let g = Gatekeeper::new(&p, &zones(), 64, 1, t0);
        let bad = ip([5, 6, 7, 8]);
        assert_eq!(g.check(bad, t0), Admit::Pass);
        g.publish_bans(
            [
                (bad, wall + Duration::from_secs(60)),
                (ip([9, 9, 9, 9]), wall - Duration::from_secs(1)),
            ],
            t0,
            wall,
        );
        assert_eq!(g.banned_count(), 1, "a lapsed ban is left out");
        assert_eq!(g.check(bad, t0 + Duration::from_secs(59)), Admit::Banned);
        // The IPv4-mapped form is the same source.
        let mapped = IpAddr::V6(Ipv4Addr::new(5, 6, 7, 8).to_ipv6_mapped());
        assert_eq!(g.check(mapped, t0), Admit::Banned);
        // Over when the ban ends, without a republish.
        assert_eq!(g.check(bad, t0 + Duration::from_secs(60)), Admit::Pass);
        // Lifted by a new list.
        g.publish_bans([], t0, wall);
        assert_eq!(g.check(bad, t0), Admit::Pass);
        // A ban beats "no zone": the reason logged is the ban.
        g.publish_bans(
            [(ip([200, 0, 0, 1]), wall + Duration::from_secs(5))],
            t0,
            wall,
        );
        assert_eq!(g.check(ip([200, 0, 0, 1]), t0), Admit::Banned);
    }

    #[test]
    fn bruteforce_bans_reach_the_gate_but_trusted_sources_never_do() {
        let p = policy("trusted = [\"1.2.3.0/24\"]\n[bruteforce]\nmax_failures = 2\n");
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut bf = crate::BruteForce::new(&p);
        for src in [ip([5, 6, 7, 8]), ip([1, 2, 3, 4])] {
            for _ in 0..3 {
                bf.record_failure(src, None, wall);
            }
        }
        let g = Gatekeeper::new(&p, &zones(), 64, 1, t0);
        g.publish_bans(bf.ip_bans(wall), t0, wall);
        assert_eq!(g.check(ip([5, 6, 7, 8]), t0), Admit::Banned);
        assert_eq!(g.check(ip([1, 2, 3, 4]), t0), Admit::Pass);
    }

    #[test]
    fn reconfigure_changes_budgets_and_zones() {
        let t0 = Instant::now();
        let g = Gatekeeper::new(&policy(""), &zones(), 64, 1, t0);
        let src = ip([5, 6, 7, 8]);
        for _ in 0..50 {
            assert_eq!(g.check(src, t0), Admit::Pass);
        }
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 1\nflood.burst = 1\n");
        g.reconfigure(&p, &zones());
        assert_eq!(g.check(src, t0), Admit::Pass);
        assert_eq!(g.check(src, t0), Admit::Limited);
        g.reconfigure(&p, &zones()[..1]);
        assert_eq!(g.check(src, t0), Admit::NoZone);
    }

    #[test]
    fn shared_between_threads() {
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 5\nflood.burst = 5\n");
        let t0 = Instant::now();
        let g = Arc::new(Gatekeeper::new(&p, &zones(), 4096, 3, t0));
        assert_eq!(g.capacity(), 4096);
        let passed: Vec<usize> = (0..4u8)
            .map(|t| {
                let g = g.clone();
                std::thread::spawn(move || {
                    // Each thread floods from eight sources of its own at the same time.
                    let mut n = 0;
                    for i in 0..20_000u32 {
                        let src = ip([20 + t, 0, 0, (i % 8) as u8]);
                        if g.check(src, t0) == Admit::Pass {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .map(|h| h.join().unwrap())
            .collect();
        // Each source gets its burst and no more, whatever the other threads do.
        assert_eq!(passed, vec![8 * 5; 4]);
    }
}
