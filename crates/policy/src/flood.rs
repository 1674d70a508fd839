//! Flood protection on the hot path: a token bucket per source address, checked before the
//! packet is parsed, and the global overload state.
//!
//! The bucket table is a fixed array allocated once: 4-way set-associative, hashed with a
//! per-process seed so that an attacker cannot aim addresses at one set. A source not in its set
//! takes the way used least recently, with a full bucket. So a flood from more distinct
//! addresses than the table holds is not stopped here (each new address gets a fresh burst);
//! that is what the overload state and the bans are for. No allocation per packet.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use crate::compile::Policy;
use crate::config::OverloadConfig;
use crate::eval::Verdict;

/// A zone's index in the table's budgets (the order of the names given to
/// [`FloodGuard::new`]); looked up once per listener, not per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZoneId(pub u16);

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodVerdict {
    /// Within budget (or not limited at all).
    Pass,
    /// Over budget: discard it unanswered.
    Limited,
}

/// One token is a billion nano-tokens, so that refill is integer arithmetic on nanoseconds.
const TOKEN: u64 = 1_000_000_000;
const WAYS: usize = 4;
const EMPTY: u16 = u16::MAX;
/// 2^26 buckets (2.5 GiB) is more than any edge needs; beyond it is a configuration mistake.
const MAX_CAPACITY: usize = 1 << 26;

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Tokens per second (0: no limit).
    rate: u64,
    /// Most nano-tokens a bucket holds.
    burst: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: [u64; 2],
    zone: u16,
    tokens: u64,
    /// Nanoseconds since the table's base instant.
    last: u64,
}

const EMPTY_SLOT: Slot = Slot {
    key: [0, 0],
    zone: EMPTY,
    tokens: 0,
    last: 0,
};

/// Per-source token buckets with separate budgets per zone.
///
/// Memory: `capacity` (rounded up to a power of two, 4 to 2^26) slots of 40 bytes; 64k slots
/// take 2.5 MiB.
pub struct FloodGuard {
    slots: Box<[Slot]>,
    set_mask: usize,
    budgets: Vec<Budget>,
    zones: Vec<String>,
    trusted: Vec<IpNet>,
    base: Instant,
    seed: u64,
}

pub(crate) fn key_of(ip: IpAddr) -> [u64; 2] {
    let v6 = match ip.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    let n = u128::from(v6);
    [(n >> 64) as u64, n as u64]
}

/// A 64-bit mix (the splitmix64 finalizer) keyed by the seed.
pub(crate) fn hash(key: [u64; 2], seed: u64) -> u64 {
    let mut z = key[0].rotate_left(29) ^ key[1] ^ seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FloodGuard {
    /// A table of `capacity` buckets (rounded up to a power of two, from 4 to 2^26) for the
    /// zones `zones` (their [`ZoneId`]s are their positions), with the budgets of `policy`.
    /// `seed` should be random per process (it keys the hash); `now` is the base of the
    /// table's clock.
    pub fn new(policy: &Policy, zones: &[&str], capacity: usize, seed: u64, now: Instant) -> Self {
        let sets = (capacity.clamp(WAYS, MAX_CAPACITY) / WAYS).next_power_of_two();
        let mut guard = FloodGuard {
            slots: vec![EMPTY_SLOT; sets * WAYS].into_boxed_slice(),
            set_mask: sets - 1,
            budgets: Vec::new(),
            zones: Vec::new(),
            trusted: Vec::new(),
            base: now,
            seed,
        };
        guard.reconfigure(policy, zones);
        guard
    }

    /// Takes new budgets and trusted networks (a reload). Buckets of zones whose position
    /// changed start afresh.
    pub fn reconfigure(&mut self, policy: &Policy, zones: &[&str]) {
        let zones = &zones[..zones.len().min(usize::from(EMPTY))];
        if self
            .zones
            .iter()
            .map(String::as_str)
            .ne(zones.iter().copied())
        {
            self.slots.fill(EMPTY_SLOT);
        }
        self.zones = zones.iter().map(|z| (*z).to_owned()).collect();
        self.budgets = zones
            .iter()
            .map(|z| {
                let f = policy.flood_config(z);
                Budget {
                    rate: u64::from(f.rate),
                    burst: u64::from(f.effective_burst()) * TOKEN,
                }
            })
            .collect();
        self.trusted = policy.trusted().to_vec();
    }

    /// The id of a zone, by name.
    pub fn zone_id(&self, name: &str) -> Option<ZoneId> {
        self.zones
            .iter()
            .position(|z| z == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(ZoneId)
    }

    /// How many buckets the table holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Charges one packet from `ip`, arriving in `zone` at `now`.
    #[inline]
    pub fn check(&mut self, zone: ZoneId, ip: IpAddr, now: Instant) -> FloodVerdict {
        let Some(&budget) = self.budgets.get(usize::from(zone.0)) else {
            return FloodVerdict::Pass;
        };
        if budget.rate == 0 {
            return FloodVerdict::Pass;
        }
        if !self.trusted.is_empty() {
            let canonical = ip.to_canonical();
            if self.trusted.iter().any(|n| n.contains(&canonical)) {
                return FloodVerdict::Pass;
            }
        }
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let key = key_of(ip);
        let set = (hash(key, self.seed) as usize) & self.set_mask;
        let start = set * WAYS;
        let Some(ways) = self.slots.get_mut(start..start + WAYS) else {
            return FloodVerdict::Pass;
        };
        let mut victim = 0;
        let mut oldest = u64::MAX;
        for (i, slot) in ways.iter_mut().enumerate() {
            if slot.zone == zone.0 && slot.key == key {
                // Elapsed time beyond what fills the bucket adds nothing: clamp it before the
                // multiplication so that it cannot overflow.
                let elapsed = now_ns.saturating_sub(slot.last);
                let fill = budget.burst / budget.rate + 1;
                let added = elapsed.min(fill).saturating_mul(budget.rate);
                slot.tokens = slot.tokens.saturating_add(added).min(budget.burst);
                slot.last = now_ns.max(slot.last);
                if slot.tokens >= TOKEN {
                    slot.tokens -= TOKEN;
                    return FloodVerdict::Pass;
                }
                return FloodVerdict::Limited;
            }
            let age = if slot.zone == EMPTY {
                0
            } else {
                slot.last.saturating_add(1)
            };
            if age < oldest {
                oldest = age;
                victim = i;
            }
        }
        if let Some(slot) = ways.get_mut(victim) {
            *slot = Slot {
                key,
                zone: zone.0,
                tokens: budget.burst.saturating_sub(TOKEN),
                last: now_ns,
            };
        }
        FloodVerdict::Pass
    }
}

/// The global overload state, with hysteresis: entered when the engine's load reaches
/// `enter_percent` of its capacity, left when it falls below `leave_percent`.
#[derive(Debug, Clone)]
pub struct Overload {
    enter: u64,
    leave: u64,
    retry_after: u32,
    overloaded: bool,
}

impl Overload {
    /// For an engine that holds at most `capacity` (e.g. `transaction.max_transactions`).
    pub fn new(cfg: &OverloadConfig, capacity: u32) -> Self {
        let cap = u64::from(capacity);
        Overload {
            enter: (cap * u64::from(cfg.enter_percent) / 100).max(1),
            leave: cap * u64::from(cfg.leave_percent) / 100,
            retry_after: cfg.retry_after_s,
            overloaded: false,
        }
    }

    /// Takes the current load (e.g. transactions in use, or queued packets); returns whether
    /// the engine is now overloaded.
    pub fn update(&mut self, load: u32) -> bool {
        let load = u64::from(load);
        if self.overloaded {
            if load < self.leave {
                self.overloaded = false;
            }
        } else if load >= self.enter {
            self.overloaded = true;
        }
        self.overloaded
    }

    /// While overloaded: the `Retry-After` (seconds) of the 503 that new requests get.
    /// Requests inside dialogs (with a To tag), ACK and CANCEL should still pass, so that calls
    /// in progress can end.
    pub fn retry_after(&self) -> Option<u32> {
        self.overloaded.then_some(self.retry_after)
    }

    /// While overloaded: the answer for a new request, `503 Service Unavailable` with
    /// `Retry-After`.
    pub fn refusal(&self) -> Option<Verdict> {
        self.retry_after().map(|s| Verdict::Refuse {
            status: 503,
            reason: "Service Unavailable".to_owned(),
            retry_after: Some(s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    fn policy(toml_text: &str) -> Policy {
        let cfg: PolicyConfig = toml::from_str(toml_text).unwrap();
        Policy::compile(&cfg, None).unwrap()
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn burst_then_rate() {
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 10\nflood.burst = 5\n");
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["wan"], 64, 1, t0);
        let wan = g.zone_id("wan").unwrap();
        let src = v4(0xcb00_7101);
        for _ in 0..5 {
            assert_eq!(g.check(wan, src, t0), FloodVerdict::Pass);
        }
        assert_eq!(g.check(wan, src, t0), FloodVerdict::Limited);
        // 10 per second: one token every 100 ms.
        assert_eq!(
            g.check(wan, src, t0 + Duration::from_millis(99)),
            FloodVerdict::Limited
        );
        assert_eq!(
            g.check(wan, src, t0 + Duration::from_millis(100)),
            FloodVerdict::Pass
        );
        assert_eq!(
            g.check(wan, src, t0 + Duration::from_millis(150)),
            FloodVerdict::Limited
        );
        // A long silence refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(g.check(wan, src, later), FloodVerdict::Pass);
        }
        assert_eq!(g.check(wan, src, later), FloodVerdict::Limited);
        // Another source has its own bucket.
        assert_eq!(g.check(wan, v4(0xcb00_7102), later), FloodVerdict::Pass);
    }

    #[test]
    fn zones_have_their_own_budgets() {
        let p = policy(
            "[[zone]]\nname = \"wan\"\nflood.rate = 1\nflood.burst = 1\n\
             [[zone]]\nname = \"lan\"\nflood.rate = 0\n",
        );
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["lan", "wan", "dmz"], 64, 7, t0);
        let (lan, wan, dmz) = (ZoneId(0), ZoneId(1), ZoneId(2));
        let src = v4(0x0a00_0001);
        for _ in 0..1000 {
            assert_eq!(g.check(lan, src, t0), FloodVerdict::Pass);
        }
        assert_eq!(g.check(wan, src, t0), FloodVerdict::Pass);
        assert_eq!(g.check(wan, src, t0), FloodVerdict::Limited);
        // dmz has no entry: no limit by default.
        for _ in 0..1000 {
            assert_eq!(g.check(dmz, src, t0), FloodVerdict::Pass);
        }
        // An unknown zone id is not limited.
        assert_eq!(g.check(ZoneId(9), src, t0), FloodVerdict::Pass);
    }

    #[test]
    fn burst_defaults_to_twice_the_rate() {
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 3\n");
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["wan"], 64, 3, t0);
        let passed = (0..100)
            .filter(|_| g.check(ZoneId(0), v4(5), t0) == FloodVerdict::Pass)
            .count();
        assert_eq!(passed, 6);
    }

    #[test]
    fn trusted_sources_are_not_limited() {
        let p = policy(
            "trusted = [\"198.51.100.0/24\"]\n[[zone]]\nname = \"wan\"\nflood.rate = 1\nflood.burst = 1\n",
        );
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["wan"], 64, 1, t0);
        let pbx = v4(0xc633_6405);
        for _ in 0..100 {
            assert_eq!(g.check(ZoneId(0), pbx, t0), FloodVerdict::Pass);
        }
        let mapped = IpAddr::V6(Ipv4Addr::from(0xc633_6405u32).to_ipv6_mapped());
        assert_eq!(g.check(ZoneId(0), mapped, t0), FloodVerdict::Pass);
    }

    #[test]
    fn v4_and_mapped_v6_share_a_bucket() {
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 1\nflood.burst = 1\n");
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["wan"], 64, 1, t0);
        let a = v4(0xcb00_7109);
        let mapped = IpAddr::V6(Ipv4Addr::from(0xcb00_7109u32).to_ipv6_mapped());
        assert_eq!(g.check(ZoneId(0), a, t0), FloodVerdict::Pass);
        assert_eq!(g.check(ZoneId(0), mapped, t0), FloodVerdict::Limited);
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(g.check(ZoneId(0), v6, t0), FloodVerdict::Pass);
    }

    #[test]
    fn table_is_bounded_and_keeps_recent_sources() {
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 1\nflood.burst = 2\n");
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&p, &["wan"], 1024, 42, t0);
        assert_eq!(g.capacity(), 1024);
        let hot = v4(0xcb00_7101);
        assert_eq!(g.check(ZoneId(0), hot, t0), FloodVerdict::Pass);
        assert_eq!(g.check(ZoneId(0), hot, t0), FloodVerdict::Pass);
        // Many other sources pass through while `hot` keeps sending: it stays in its set (it is
        // the most recently used there) and stays limited.
        for n in 0..100_000u32 {
            let now = t0 + Duration::from_nanos(u64::from(n));
            g.check(ZoneId(0), v4(0x0b00_0000 + n), now);
            if n % 8 == 0 {
                assert_eq!(g.check(ZoneId(0), hot, now), FloodVerdict::Limited, "n={n}");
            }
        }
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let p = policy("[[zone]]\nname = \"wan\"\nflood.rate = 1\nflood.burst = 1\n");
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut g = FloodGuard::new(&p, &["wan"], 64, 1, t0);
        let src = v4(1);
        assert_eq!(g.check(ZoneId(0), src, t0), FloodVerdict::Pass);
        assert_eq!(
            g.check(ZoneId(0), src, t0 - Duration::from_secs(5)),
            FloodVerdict::Limited
        );
    }

    #[test]
    fn overload_hysteresis() {
        let cfg = OverloadConfig {
            enter_percent: 90,
            leave_percent: 75,
            retry_after_s: 7,
        };
        let mut o = Overload::new(&cfg, 1000);
        let states: Vec<bool> = [0, 899, 900, 950, 800, 750, 749, 800, 899]
            .iter()
            .map(|&l| o.update(l))
            .collect();
        assert_eq!(
            states,
            vec![false, false, true, true, true, true, false, false, false]
        );
        o.update(1000);
        assert_eq!(o.retry_after(), Some(7));
        assert_eq!(
            o.refusal().map(|v| v.to_string()).as_deref(),
            Some("refuse 503 Service Unavailable (Retry-After: 7)")
        );
        o.update(0);
        assert_eq!(o.retry_after(), None);
        assert_eq!(o.refusal(), None);
    }
}
