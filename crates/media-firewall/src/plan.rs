//! The pure part: relay events in, nftables script text out.
//!
//! [`Desired`] folds [`HookEvent`]s into what the kernel should hold for
//! each media socket (named by its local address) and remembers which
//! sockets changed since the executor last looked: a burst of events about
//! one socket (bound, latched, closed) leaves one change, and a socket bound
//! and closed between two looks leaves nothing to do. [`Planner`] knows what
//! the kernel holds and turns changes into one `nft -f -` script, which the
//! kernel applies as a single transaction.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use media_relay::HookEvent;

use crate::{FirewallConfig, ZoneRange};

/// What the kernel should admit to one media socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Any source may reach the socket (before latching, while a new
    /// offer/answer allows a new latch, or in zones that re-latch after
    /// silence).
    pub open: bool,
    /// The latched peer, always admitted.
    pub peer: Option<SocketAddr>,
}

/// The desired state of every media socket the firewall covers, and the
/// sockets whose state changed since [`Desired::take_changes`].
#[derive(Debug, Default)]
pub struct Desired {
    zones: Vec<ZoneRange>,
    live: HashMap<SocketAddr, Want>,
    dirty: HashSet<SocketAddr>,
}

impl Desired {
    /// Covers sockets bound in `zones` (address and port range).
    pub fn new(zones: Vec<ZoneRange>) -> Self {
        Self {
            zones,
            live: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    fn covers(&self, local: SocketAddr) -> bool {
        self.zones
            .iter()
            .any(|z| z.addr == local.ip() && (z.port_min..=z.port_max).contains(&local.port()))
    }

    /// Folds one event in; returns whether anything changed.
    pub fn apply(&mut self, event: &HookEvent) -> bool {
        let changed = match *event {
            HookEvent::Bound { local, .. } => {
                if !self.covers(local) {
                    return false;
                }
                let w = Want {
                    open: true,
                    peer: None,
                };
                self.live.insert(local, w) != Some(w)
            }
            HookEvent::Latched {
                local,
                peer,
                exclusive,
                ..
            } => match self.live.get_mut(&local) {
                Some(w) => {
                    let old = *w;
                    match same_family(peer, local) {
                        Some(p) => {
                            w.peer = Some(p);
                            w.open = !exclusive;
                        }
                        // A peer the kernel set cannot hold: stay open, the
                        // relay still enforces the latch itself.
                        None => w.open = true,
                    }
                    *w != old
                }
                None => false,
            },
            HookEvent::Armed { local, .. } => match self.live.get_mut(&local) {
                Some(w) if !w.open => {
                    w.open = true;
                    true
                }
                _ => false,
            },
            HookEvent::Closed { local, .. } => self.live.remove(&local).is_some(),
            _ => false,
        };
        if changed {
            if let Some(local) = event_local(event) {
                self.dirty.insert(local);
            }
        }
        changed
    }

    /// Whether changes wait for [`Desired::take_changes`].
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The sockets that changed, with their state now (`None`: closed).
    pub fn take_changes(&mut self) -> Vec<(SocketAddr, Option<Want>)> {
        let live = &self.live;
        self.dirty
            .drain()
            .map(|a| (a, live.get(&a).copied()))
            .collect()
    }

    /// Every live socket's state (for a full resynchronisation); clears the
    /// pending changes, which the snapshot includes.
    pub fn snapshot(&mut self) -> Vec<(SocketAddr, Want)> {
        self.dirty.clear();
        self.live.iter().map(|(a, w)| (*a, *w)).collect()
    }

    /// Number of live sockets.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no socket is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

fn event_local(event: &HookEvent) -> Option<SocketAddr> {
    match *event {
        HookEvent::Bound { local, .. }
        | HookEvent::Latched { local, .. }
        | HookEvent::Armed { local, .. }
        | HookEvent::Closed { local, .. } => Some(local),
        _ => None,
    }
}

/// `peer` in the address family of `local` (unmapping `::ffff:a.b.c.d`).
fn same_family(peer: SocketAddr, local: SocketAddr) -> Option<SocketAddr> {
    let ip = match (peer.ip(), local.ip()) {
        (IpAddr::V4(p), IpAddr::V4(_)) => IpAddr::V4(p),
        (IpAddr::V6(p), IpAddr::V6(_)) => IpAddr::V6(p),
        (IpAddr::V6(p), IpAddr::V4(_)) => IpAddr::V4(p.to_ipv4_mapped()?),
        (IpAddr::V4(_), IpAddr::V6(_)) => return None,
    };
    Some(SocketAddr::new(ip, peer.port()))
}

/// One nft script and the kernel state it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Input for `nft -f -`.
    pub script: String,
    /// Elements the script adds.
    pub added: usize,
    /// Elements the script deletes.
    pub deleted: usize,
    /// The whole table is recreated (the kernel state becomes `updates`).
    pub full: bool,
    updates: Vec<(SocketAddr, Option<Want>)>,
}

#[derive(Debug, Clone, Copy)]
struct Installed {
    want: Want,
    /// When its elements were last added (their timeout counts from here).
    since: Instant,
}

/// What the kernel holds, and the scripts that change it.
#[derive(Debug)]
pub struct Planner {
    table: String,
    timeout: Duration,
    kernel: HashMap<SocketAddr, Installed>,
}

impl Planner {
    /// A planner for `cfg`'s table, assuming the table is empty (as
    /// [`create_script`] leaves it).
    pub fn new(cfg: &FirewallConfig) -> Self {
        Self {
            table: cfg.table.clone(),
            timeout: cfg.element_timeout,
            kernel: HashMap::new(),
        }
    }

    /// When an element must be added again so that its timeout (a safety
    /// net for a crashed process) never expires under a live call: at half
    /// the timeout.
    pub fn next_refresh(&self) -> Option<Instant> {
        self.kernel
            .values()
            .map(|i| i.since + self.timeout / 2)
            .min()
    }

    /// The script for `changes` plus the refresh of every element due at
    /// `now`; `None` when the kernel already matches.
    pub fn plan(&self, changes: &[(SocketAddr, Option<Want>)], now: Instant) -> Option<Batch> {
        let mut updates: Vec<(SocketAddr, Option<Want>)> = changes
            .iter()
            .filter(|(a, w)| self.kernel.get(a).map(|i| i.want) != *w)
            .copied()
            .collect();
        let changed: HashSet<SocketAddr> = updates.iter().map(|(a, _)| *a).collect();
        for (a, i) in &self.kernel {
            if !changed.contains(a) && i.since + self.timeout / 2 <= now {
                updates.push((*a, Some(i.want)));
            }
        }
        if updates.is_empty() {
            return None;
        }
        // Sorted, so that a script is a function of the state alone.
        updates.sort_by_key(|(a, _)| *a);
        let mut b = Batch {
            script: String::new(),
            added: 0,
            deleted: 0,
            full: false,
            updates,
        };
        for (local, want) in &b.updates {
            let old = self.kernel.get(local).map(|i| i.want);
            let (script, added, deleted) = (&mut b.script, &mut b.added, &mut b.deleted);
            let mut del = |elem: Elem| {
                let _ = writeln!(
                    script,
                    "delete element inet {} {} {{ {} }}",
                    self.table,
                    elem.set(),
                    elem
                );
                *deleted += 1;
            };
            // Everything of the old state goes, then everything of the new
            // one is added: elements kept are refreshed on the way.
            if let Some(old) = old {
                for e in elems(*local, old) {
                    del(e);
                }
            }
            if let Some(want) = want {
                for e in elems(*local, *want) {
                    let _ = writeln!(
                        script,
                        "add element inet {} {} {{ {} timeout {}s }}",
                        self.table,
                        e.set(),
                        e,
                        self.timeout.as_secs()
                    );
                    *added += 1;
                }
            }
        }
        Some(b)
    }

    /// The kernel now holds what `batch` led to.
    pub fn commit(&mut self, batch: Batch, now: Instant) {
        if batch.full {
            self.kernel.clear();
        }
        for (a, w) in batch.updates {
            match w {
                Some(want) => {
                    self.kernel.insert(a, Installed { want, since: now });
                }
                None => {
                    self.kernel.remove(&a);
                }
            }
        }
    }

    /// A script that recreates the table of `cfg` and fills it with `all`,
    /// in one transaction: after a failed script the kernel state is
    /// unknown, this makes it known again.
    pub fn resync(&self, cfg: &FirewallConfig, all: &[(SocketAddr, Want)]) -> Batch {
        let mut script = create_script(cfg);
        let mut updates: Vec<(SocketAddr, Option<Want>)> =
            all.iter().map(|(a, w)| (*a, Some(*w))).collect();
        updates.sort_by_key(|(a, _)| *a);
        let mut added = 0;
        for (local, want) in &updates {
            for e in want.iter().flat_map(|w| elems(*local, *w)) {
                let _ = writeln!(
                    script,
                    "add element inet {} {} {{ {} timeout {}s }}",
                    self.table,
                    e.set(),
                    e,
                    self.timeout.as_secs()
                );
                added += 1;
            }
        }
        Batch {
            script,
            added,
            deleted: 0,
            full: true,
            updates,
        }
    }
}

/// One set element.
enum Elem {
    Open(SocketAddr),
    Peer(SocketAddr, SocketAddr),
}

impl Elem {
    fn set(&self) -> &'static str {
        let local = match self {
            Elem::Open(l) | Elem::Peer(_, l) => l,
        };
        match (self, local.is_ipv4()) {
            (Elem::Open(_), true) => "open4",
            (Elem::Open(_), false) => "open6",
            (Elem::Peer(..), true) => "peer4",
            (Elem::Peer(..), false) => "peer6",
        }
    }
}

impl std::fmt::Display for Elem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Elem::Open(l) => write!(f, "{} . {}", l.ip(), l.port()),
            Elem::Peer(p, l) => write!(f, "{} . {} . {} . {}", p.ip(), p.port(), l.ip(), l.port()),
        }
    }
}

fn elems(local: SocketAddr, want: Want) -> impl Iterator<Item = Elem> {
    let open = want.open.then_some(Elem::Open(local));
    let peer = want.peer.map(|p| Elem::Peer(p, local));
    open.into_iter().chain(peer)
}

/// The script that (re)creates the table empty: the four sets, the input
/// chain that accepts what they hold and drops the rest of each zone's
/// media range. Any table of that name left by an earlier run goes first,
/// in the same transaction, so no moment is without the drop rules.
pub fn create_script(cfg: &FirewallConfig) -> String {
    let t = &cfg.table;
    let mut s = String::new();
    // `add` before `delete`: deleting a missing table would fail the batch.
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "delete table inet {t}");
    let _ = writeln!(s, "add table inet {t}");
    for (name, ty) in [
        ("open4", "ipv4_addr . inet_service"),
        ("open6", "ipv6_addr . inet_service"),
        (
            "peer4",
            "ipv4_addr . inet_service . ipv4_addr . inet_service",
        ),
        (
            "peer6",
            "ipv6_addr . inet_service . ipv6_addr . inet_service",
        ),
    ] {
        let _ = writeln!(s, "add set inet {t} {name} {{ type {ty}; flags timeout; }}");
    }
    let _ = writeln!(
        s,
        "add chain inet {t} input {{ type filter hook input priority {}; policy accept; }}",
        cfg.priority
    );
    for rule in [
        "ip daddr . udp dport @open4",
        "ip6 daddr . udp dport @open6",
        "ip saddr . udp sport . ip daddr . udp dport @peer4",
        "ip6 saddr . udp sport . ip6 daddr . udp dport @peer6",
    ] {
        let _ = writeln!(s, "add rule inet {t} input {rule} counter accept");
    }
    for z in &cfg.zones {
        let fam = if z.addr.is_ipv4() { "ip" } else { "ip6" };
        let _ = writeln!(
            s,
            "add rule inet {t} input {fam} daddr {} udp dport {}-{} counter drop comment \"sipwarden zone {}\"",
            z.addr,
            z.port_min,
            z.port_max,
            comment_safe(&z.name)
        );
    }
    s
}

/// The script that removes the table (and does not fail if it is gone).
pub fn delete_script(cfg: &FirewallConfig) -> String {
    format!("add table inet {t}\ndelete table inet {t}\n", t = cfg.table)
}

/// A zone name as it may appear inside an nft comment string.
fn comment_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_relay::{SessionId, Side, SocketKind};

    fn cfg() -> FirewallConfig {
        FirewallConfig {
            zones: vec![
                ZoneRange {
                    name: "wan".into(),
                    addr: "198.51.100.1".parse().unwrap(),
                    port_min: 30000,
                    port_max: 30999,
                },
                ZoneRange {
                    name: "lan \"v6\"".into(),
                    addr: "fd00::1".parse().unwrap(),
                    port_min: 40000,
                    port_max: 40999,
                },
            ],
            element_timeout: Duration::from_secs(600),
            ..FirewallConfig::default()
        }
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const ID: SessionId = SessionId(7);

    fn bound(local: &str) -> HookEvent {
        HookEvent::Bound {
            id: ID,
            zone: "wan".into(),
            media_index: 0,
            side: Side::A,
            kind: SocketKind::Rtp,
            local: a(local),
        }
    }

    fn latched(local: &str, peer: &str, previous: Option<&str>, exclusive: bool) -> HookEvent {
        HookEvent::Latched {
            id: ID,
            local: a(local),
            peer: a(peer),
            previous: previous.map(a),
            exclusive,
        }
    }

    fn closed(local: &str) -> HookEvent {
        HookEvent::Closed {
            id: ID,
            local: a(local),
        }
    }

    /// Feeds `events`, plans, commits; returns the script ("" if none).
    fn step(d: &mut Desired, p: &mut Planner, events: &[HookEvent], now: Instant) -> String {
        for e in events {
            d.apply(e);
        }
        let changes = d.take_changes();
        match p.plan(&changes, now) {
            Some(b) => {
                let s = b.script.clone();
                p.commit(b, now);
                s
            }
            None => String::new(),
        }
    }

    #[test]
    fn create_script_has_sets_accepts_and_one_drop_per_zone() {
        assert_eq!(
            create_script(&cfg()),
            "add table inet sipwarden_media
delete table inet sipwarden_media
add table inet sipwarden_media
add set inet sipwarden_media open4 { type ipv4_addr . inet_service; flags timeout; }
add set inet sipwarden_media open6 { type ipv6_addr . inet_service; flags timeout; }
add set inet sipwarden_media peer4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }
add set inet sipwarden_media peer6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }
add chain inet sipwarden_media input { type filter hook input priority -10; policy accept; }
add rule inet sipwarden_media input ip daddr . udp dport @open4 counter accept
add rule inet sipwarden_media input ip6 daddr . udp dport @open6 counter accept
add rule inet sipwarden_media input ip saddr . udp sport . ip daddr . udp dport @peer4 counter accept
add rule inet sipwarden_media input ip6 saddr . udp sport . ip6 daddr . udp dport @peer6 counter accept
add rule inet sipwarden_media input ip daddr 198.51.100.1 udp dport 30000-30999 counter drop comment \"sipwarden zone wan\"
add rule inet sipwarden_media input ip6 daddr fd00::1 udp dport 40000-40999 counter drop comment \"sipwarden zone lan__v6_\"
"
        );
        assert_eq!(
            delete_script(&cfg()),
            "add table inet sipwarden_media\ndelete table inet sipwarden_media\n"
        );
    }

    #[test]
    fn a_call_opens_latches_and_closes_its_ports() {
        let (mut d, mut p) = (Desired::new(cfg().zones), Planner::new(&cfg()));
        let t0 = Instant::now();
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[bound("198.51.100.1:30000"), bound("[fd00::1]:40002")],
                t0
            ),
            "add element inet sipwarden_media open4 { 198.51.100.1 . 30000 timeout 600s }
add element inet sipwarden_media open6 { fd00::1 . 40002 timeout 600s }
"
        );
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[
                    latched("198.51.100.1:30000", "203.0.113.5:4000", None, true),
                    latched("[fd00::1]:40002", "[fd00::99]:5004", None, true),
                ],
                t0
            ),
            "delete element inet sipwarden_media open4 { 198.51.100.1 . 30000 }
add element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30000 timeout 600s }
delete element inet sipwarden_media open6 { fd00::1 . 40002 }
add element inet sipwarden_media peer6 { fd00::99 . 5004 . fd00::1 . 40002 timeout 600s }
"
        );
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[closed("198.51.100.1:30000"), closed("[fd00::1]:40002")],
                t0
            ),
            "delete element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30000 }
delete element inet sipwarden_media peer6 { fd00::99 . 5004 . fd00::1 . 40002 }
"
        );
        assert!(d.is_empty());
        assert_eq!(p.next_refresh(), None);
    }

    #[test]
    fn rearm_reopens_and_relatch_replaces_the_peer() {
        let (mut d, mut p) = (Desired::new(cfg().zones), Planner::new(&cfg()));
        let t0 = Instant::now();
        step(
            &mut d,
            &mut p,
            &[
                bound("198.51.100.1:30000"),
                latched("198.51.100.1:30000", "203.0.113.5:4000", None, true),
            ],
            t0,
        );
        let armed = HookEvent::Armed {
            id: ID,
            local: a("198.51.100.1:30000"),
        };
        // The kept peer element is refreshed along with the new open one.
        assert_eq!(
            step(&mut d, &mut p, std::slice::from_ref(&armed), t0),
            "delete element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30000 }
add element inet sipwarden_media open4 { 198.51.100.1 . 30000 timeout 600s }
add element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30000 timeout 600s }
"
        );
        assert_eq!(step(&mut d, &mut p, &[armed], t0), "", "already open");
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[latched(
                    "198.51.100.1:30000",
                    "203.0.113.9:4002",
                    Some("203.0.113.5:4000"),
                    true
                )],
                t0
            ),
            "delete element inet sipwarden_media open4 { 198.51.100.1 . 30000 }
delete element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30000 }
add element inet sipwarden_media peer4 { 203.0.113.9 . 4002 . 198.51.100.1 . 30000 timeout 600s }
"
        );
    }

    #[test]
    fn non_exclusive_latch_keeps_the_port_open() {
        let (mut d, mut p) = (Desired::new(cfg().zones), Planner::new(&cfg()));
        let t0 = Instant::now();
        step(&mut d, &mut p, &[bound("198.51.100.1:30000")], t0);
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[latched(
                    "198.51.100.1:30000",
                    "203.0.113.5:4000",
                    None,
                    false
                )],
                t0
            ),
            "delete element inet sipwarden_media open4 { 198.51.100.1 . 30000 }
add element inet sipwarden_media open4 { 198.51.100.1 . 30000 timeout 600s }
add element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30000 timeout 600s }
"
        );
    }

    #[test]
    fn bursts_coalesce_and_short_lived_sockets_cost_nothing() {
        let (mut d, mut p) = (Desired::new(cfg().zones), Planner::new(&cfg()));
        let t0 = Instant::now();
        // Bound, latched, closed before the executor looked: nothing to do.
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[
                    bound("198.51.100.1:30000"),
                    latched("198.51.100.1:30000", "203.0.113.5:4000", None, true),
                    closed("198.51.100.1:30000"),
                ],
                t0
            ),
            ""
        );
        // Bound and latched at once: only the final state is written.
        assert_eq!(
            step(
                &mut d,
                &mut p,
                &[
                    bound("198.51.100.1:30002"),
                    latched("198.51.100.1:30002", "203.0.113.5:4000", None, true),
                ],
                t0
            ),
            "add element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30002 timeout 600s }
"
        );
    }

    #[test]
    fn sockets_outside_the_zones_and_stray_events_are_ignored() {
        let mut d = Desired::new(cfg().zones);
        assert!(!d.apply(&bound("198.51.100.1:29998")), "below the range");
        assert!(!d.apply(&bound("198.51.100.2:30000")), "other address");
        assert!(!d.apply(&latched(
            "198.51.100.1:30000",
            "203.0.113.5:4000",
            None,
            true
        )));
        assert!(!d.apply(&closed("198.51.100.1:30000")));
        assert!(!d.has_changes());
        // A v4-mapped peer on a v4 socket is unmapped; a v4 peer on a v6
        // socket cannot be expressed, so the socket stays open.
        assert!(d.apply(&bound("198.51.100.1:30000")));
        assert!(d.apply(&latched(
            "198.51.100.1:30000",
            "[::ffff:203.0.113.5]:4000",
            None,
            true
        )));
        assert!(d.apply(&bound("[fd00::1]:40000")));
        assert!(!d.apply(&latched("[fd00::1]:40000", "203.0.113.5:4000", None, true)));
        let mut ch = d.take_changes();
        ch.sort_by_key(|c| c.0);
        assert_eq!(
            ch,
            vec![
                (
                    a("198.51.100.1:30000"),
                    Some(Want {
                        open: false,
                        peer: Some(a("203.0.113.5:4000"))
                    })
                ),
                (
                    a("[fd00::1]:40000"),
                    Some(Want {
                        open: true,
                        peer: None
                    })
                ),
            ]
        );
    }

    #[test]
    fn elements_are_refreshed_at_half_their_timeout() {
        let (mut d, mut p) = (Desired::new(cfg().zones), Planner::new(&cfg()));
        let t0 = Instant::now();
        step(&mut d, &mut p, &[bound("198.51.100.1:30000")], t0);
        let t1 = t0 + Duration::from_secs(100);
        step(&mut d, &mut p, &[bound("198.51.100.1:30002")], t1);
        assert_eq!(p.next_refresh(), Some(t0 + Duration::from_secs(300)));
        assert_eq!(
            p.plan(&[], t0 + Duration::from_secs(299)),
            None,
            "not due yet"
        );
        assert_eq!(
            step(&mut d, &mut p, &[], t0 + Duration::from_secs(300)),
            "delete element inet sipwarden_media open4 { 198.51.100.1 . 30000 }
add element inet sipwarden_media open4 { 198.51.100.1 . 30000 timeout 600s }
"
        );
        assert_eq!(p.next_refresh(), Some(t1 + Duration::from_secs(300)));
    }

    #[test]
    fn resync_recreates_the_table_with_every_live_socket() {
        let (mut d, mut p) = (Desired::new(cfg().zones), Planner::new(&cfg()));
        let t0 = Instant::now();
        step(&mut d, &mut p, &[bound("198.51.100.1:30000")], t0);
        d.apply(&bound("198.51.100.1:30002"));
        d.apply(&latched(
            "198.51.100.1:30002",
            "203.0.113.5:4000",
            None,
            true,
        ));
        let all = d.snapshot();
        assert!(!d.has_changes());
        let b = p.resync(&cfg(), &all);
        assert!(b.script.starts_with(&create_script(&cfg())));
        assert_eq!(
            &b.script[create_script(&cfg()).len()..],
            "add element inet sipwarden_media open4 { 198.51.100.1 . 30000 timeout 600s }
add element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30002 timeout 600s }
"
        );
        p.commit(b, t0);
        // The kernel now matches: a close deletes exactly what resync added.
        assert_eq!(
            step(&mut d, &mut p, &[closed("198.51.100.1:30002")], t0),
            "delete element inet sipwarden_media peer4 { 203.0.113.5 . 4000 . 198.51.100.1 . 30002 }
"
        );
    }
}
