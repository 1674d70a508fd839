//! Calls in progress, counted for the policy's call limits (`limits.max_calls`,
//! `limits.max_calls_per_user`, `[[policy.user]] max_calls`). Sans-IO: time is an argument.
//!
//! When a call counts, and why:
//! - from its initial INVITE being let through by the policy ([`CallTable::start`]), not from
//!   its 2xx: calls still ringing count, so a burst of simultaneous INVITEs cannot all pass a
//!   limit that none of them has reached yet;
//! - until the caller gets a final failure for it (the initial INVITE's server transaction
//!   answers 3xx-6xx, a CANCEL included, or ends without a 2xx), a BYE from either side
//!   (matched by Call-ID and one of the dialog's tags), or the B2BUA reports it ended;
//! - at the latest at its deadline, so that a lost BYE cannot hold a slot for ever: start +
//!   `max_duration`, or with a session timer (RFC 4028 `Session-Expires` in the INVITE or its
//!   2xx) the last refresh + the interval + 32 s (the non-refresher's BYE is due by then,
//!   section 10), never past start + `max_duration`. Deadlines are applied lazily, before
//!   every count is read ([`CallTable::expire`]), so no timer is needed.
//!
//! Who a call counts for: the zone of the caller's source address, the caller's key and, for a
//! call to one of our users, the callee's key ([`policy::CallKeys`], the same names the
//! policy asks about). Memory is bounded: at most `max_tracked` calls; beyond it the call with
//! the earliest deadline is forgotten (counted in [`CallTable::evicted`]).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use policy::{CallCounts, CallKeys, CallsConfig};
use sip_message::{HeaderName, Message};
use sip_transaction::ServerTxId;

/// RFC 4028 section 10: the non-refresher sends BYE at most 32 s before the session expires;
/// a call whose interval ran out that long ago is over.
const SESSION_GRACE: Duration = Duration::from_secs(32);

#[derive(Debug, Clone)]
struct Call<K> {
    zone: String,
    caller: String,
    callee: Option<String>,
    from_tag: String,
    /// The initial INVITE's server transaction, until its 2xx.
    tx: Option<K>,
    started: Instant,
    deadline: Instant,
    seq: u64,
    session: Option<Duration>,
    /// The B2BUA's handle, when the B2BUA took the call.
    b2b: Option<u64>,
}

/// The calls in progress and their counts per zone and per user key; `K` names the initial
/// INVITE's server transaction.
#[derive(Debug)]
pub(crate) struct CallTable<K = ServerTxId> {
    calls: HashMap<String, Call<K>>,
    by_tx: HashMap<K, String>,
    by_deadline: BTreeSet<(Instant, u64, String)>,
    zones: HashMap<String, u32>,
    users: HashMap<String, u32>,
    /// B2BUA calls: handle to the caller's Call-ID.
    b2b: HashMap<u64, String>,
    max_duration: Duration,
    max_tracked: usize,
    seq: u64,
    evicted: u64,
}

/// A call that ended, for the engine's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    pub call_id: String,
    pub why: &'static str,
}

/// The `Session-Expires` delta-seconds of a message, if any (RFC 4028 section 4).
pub(crate) fn session_expires(msg: &Message) -> Option<Duration> {
    let v = msg.header(HeaderName::SessionExpires)?;
    let v = std::str::from_utf8(v).ok()?;
    let secs: u64 = v.split(';').next()?.trim().parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn bump(map: &mut HashMap<String, u32>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

fn drop_one(map: &mut HashMap<String, u32>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl<K: Copy + Eq + Hash> CallTable<K> {
    pub fn new(cfg: &CallsConfig) -> CallTable<K> {
        CallTable {
            calls: HashMap::new(),
            by_tx: HashMap::new(),
            by_deadline: BTreeSet::new(),
            zones: HashMap::new(),
            users: HashMap::new(),
            b2b: HashMap::new(),
            max_duration: Duration::from_secs(cfg.max_duration_s.into()),
            max_tracked: usize::try_from(cfg.max_tracked)
                .unwrap_or(usize::MAX)
                .max(1),
            seq: 0,
            evicted: 0,
        }
    }

    /// New settings (a reload): calls in progress keep their deadlines.
    pub fn reconfigure(&mut self, cfg: &CallsConfig) {
        self.max_duration = Duration::from_secs(cfg.max_duration_s.into());
        self.max_tracked = usize::try_from(cfg.max_tracked)
            .unwrap_or(usize::MAX)
            .max(1);
        while self.calls.len() > self.max_tracked {
            if !self.evict_first() {
                break;
            }
        }
    }

    /// Calls counted now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Calls forgotten because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Counts a call whose initial INVITE (server transaction `tx`) was let through at `now`.
    /// `session` is the INVITE's `Session-Expires`. A call with the same Call-ID already
    /// counted is replaced (counted once).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        now: Instant,
        call_id: &str,
        from_tag: &str,
        tx: K,
        zone: &str,
        keys: CallKeys,
        session: Option<Duration>,
    ) {
        self.expire(now);
        self.end(call_id);
        while self.calls.len() >= self.max_tracked {
            if !self.evict_first() {
                break;
            }
        }
        self.seq += 1;
        let mut call = Call {
            zone: zone.to_owned(),
            caller: keys.caller,
            callee: keys.callee,
            from_tag: from_tag.to_owned(),
            tx: Some(tx),
            started: now,
            deadline: now,
            seq: self.seq,
            session,
            b2b: None,
        };
        call.deadline = self.deadline_of(&call, now);
        bump(&mut self.zones, &call.zone);
        bump(&mut self.users, &call.caller);
        if let Some(c) = call.callee.as_deref().filter(|c| *c != call.caller) {
            bump(&mut self.users, c);
        }
        self.by_tx.insert(tx, call_id.to_owned());
        self.by_deadline
            .insert((call.deadline, call.seq, call_id.to_owned()));
        self.calls.insert(call_id.to_owned(), call);
    }

    fn deadline_of(&self, call: &Call<K>, refreshed: Instant) -> Instant {
        let cap = call.started + self.max_duration;
        match call.session {
            Some(s) => cap.min(refreshed + s + SESSION_GRACE),
            None => cap,
        }
    }

    /// A response the initial INVITE's server transaction `tx` sent: a 2xx confirms the call
    /// (with the 2xx's `Session-Expires`, when it names one), a final failure ends it.
    pub fn on_response(
        &mut self,
        now: Instant,
        tx: K,
        status: u16,
        session: impl FnOnce() -> Option<Duration>,
    ) -> Option<Ended> {
        let call_id = self.by_tx.get(&tx)?.clone();
        match status {
            200..=299 => {
                self.by_tx.remove(&tx);
                if let Some(s) = session() {
                    self.refresh(now, &call_id, Some(s));
                }
                None
            }
            300..=699 => self.end(&call_id).then_some(Ended {
                call_id,
                why: "final failure",
            }),
            _ => None,
        }
    }

    /// The initial INVITE's server transaction ended: without a 2xx, the call never was.
    pub fn on_tx_ended(&mut self, tx: K) -> Option<Ended> {
        let call_id = self.by_tx.remove(&tx)?;
        self.end(&call_id).then_some(Ended {
            call_id,
            why: "transaction ended without 2xx",
        })
    }

    /// A BYE of dialog `call_id` with these tags (its From and To tags: either side may hang
    /// up).
    pub fn on_bye(&mut self, call_id: &str, tags: [Option<&str>; 2]) -> Option<Ended> {
        let call = self.calls.get(call_id)?;
        if !tags.iter().flatten().any(|t| *t == call.from_tag) {
            return None;
        }
        self.end(call_id).then(|| Ended {
            call_id: call_id.to_owned(),
            why: "BYE",
        })
    }

    /// A session refresh (re-INVITE or UPDATE in the dialog) at `now`, with the interval it
    /// names (`None`: the previous one stays).
    pub fn refresh(&mut self, now: Instant, call_id: &str, session: Option<Duration>) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if session.is_some() {
            call.session = session;
        }
        if call.session.is_none() {
            return;
        }
        let call = call.clone();
        let deadline = self.deadline_of(&call, now);
        self.by_deadline
            .remove(&(call.deadline, call.seq, call_id.to_owned()));
        self.by_deadline
            .insert((deadline, call.seq, call_id.to_owned()));
        if let Some(c) = self.calls.get_mut(call_id) {
            c.deadline = deadline;
        }
    }

    /// The B2BUA started call `handle` for the caller's Call-ID `call_id`.
    pub fn b2b_started(&mut self, handle: u64, call_id: &str) {
        if let Some(c) = self.calls.get_mut(call_id) {
            c.b2b = Some(handle);
            self.b2b.insert(handle, call_id.to_owned());
        }
    }

    /// The B2BUA's call `handle` ended (whatever the reason: BYE from leg B, media timeout).
    pub fn b2b_ended(&mut self, handle: u64) -> Option<Ended> {
        let call_id = self.b2b.remove(&handle)?;
        self.end(&call_id).then_some(Ended {
            call_id,
            why: "B2BUA call ended",
        })
    }

    /// Stops counting the calls whose deadline is past at `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((at, _, id)) = self.by_deadline.first().cloned() {
            if at > now {
                break;
            }
            self.end(&id);
            n += 1;
        }
        n
    }

    fn evict_first(&mut self) -> bool {
        let Some((_, _, id)) = self.by_deadline.first().cloned() else {
            return false;
        };
        self.evicted += 1;
        self.end(&id)
    }

    /// Stops counting `call_id`; false when it was not counted.
    fn end(&mut self, call_id: &str) -> bool {
        let Some(call) = self.calls.remove(call_id) else {
            return false;
        };
        self.by_deadline
            .remove(&(call.deadline, call.seq, call_id.to_owned()));
        if let Some(tx) = call.tx {
            if self.by_tx.get(&tx).is_some_and(|c| c == call_id) {
                self.by_tx.remove(&tx);
            }
        }
        if let Some(h) = call.b2b {
            self.b2b.remove(&h);
        }
        drop_one(&mut self.zones, &call.zone);
        drop_one(&mut self.users, &call.caller);
        if let Some(c) = call.callee.as_deref().filter(|c| *c != call.caller) {
            drop_one(&mut self.users, c);
        }
        true
    }
}

impl<K: Copy + Eq + Hash> CallCounts for CallTable<K> {
    fn zone_calls(&self, zone: &str) -> u32 {
        self.zones.get(zone).copied().unwrap_or(0)
    }
    fn user_calls(&self, user: &str) -> u32 {
        self.users.get(user).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_duration_s: u32, max_tracked: u32) -> CallTable<u64> {
        CallTable::new(&CallsConfig {
            max_duration_s,
            max_tracked,
        })
    }

    fn keys(caller: &str, callee: Option<&str>) -> CallKeys {
        CallKeys {
            caller: caller.to_owned(),
            callee: callee.map(str::to_owned),
        }
    }

    fn tx(n: u64) -> u64 {
        n
    }

    /// What happens to a call after it started, and what the counts then are.
    enum Step {
        Response(u16, Option<u64>),
        TxEnded,
        Bye(&'static str),
        Refresh(Option<u64>),
        B2bEnded,
        /// Advance the clock by this many seconds and expire.
        Wait(u64),
    }

    #[test]
    fn a_call_counts_until_it_ends() {
        use Step::*;
        // (name, steps, whether the call still counts after them)
        let cases: Vec<(&str, Vec<Step>, bool)> = vec![
            ("ringing counts", vec![Response(180, None)], true),
            ("answered counts", vec![Response(200, None)], true),
            (
                "refused",
                vec![Response(180, None), Response(486, None)],
                false,
            ),
            ("cancelled: 487", vec![Response(487, None)], false),
            ("redirected", vec![Response(302, None)], false),
            (
                "tx ended without 2xx",
                vec![Response(180, None), TxEnded],
                false,
            ),
            (
                "tx ended after 2xx",
                vec![Response(200, None), TxEnded],
                true,
            ),
            (
                "failure after 2xx is not ours",
                vec![Response(200, None), Response(500, None)],
                true,
            ),
            (
                "BYE from the caller",
                vec![Response(200, None), Bye("a")],
                false,
            ),
            (
                "BYE from the callee (To tag is ours)",
                vec![Response(200, None), Bye("b-side-with-a")],
                false,
            ),
            (
                "BYE with foreign tags",
                vec![Response(200, None), Bye("x")],
                true,
            ),
            ("B2BUA ended it", vec![Response(200, None), B2bEnded], false),
            ("max duration", vec![Response(200, None), Wait(3599)], true),
            (
                "max duration reached",
                vec![Response(200, None), Wait(3600)],
                false,
            ),
            (
                "session timer from the 2xx, unrefreshed",
                vec![Response(200, Some(90)), Wait(90 + 31)],
                true,
            ),
            (
                "session timer ran out",
                vec![Response(200, Some(90)), Wait(90 + 32)],
                false,
            ),
            (
                "session timer refreshed",
                vec![Response(200, Some(90)), Wait(60), Refresh(None), Wait(100)],
                true,
            ),
            (
                "refreshes never pass max duration",
                vec![
                    Response(200, Some(1800)),
                    Wait(1700),
                    Refresh(None),
                    Wait(1700),
                    Refresh(None),
                    Wait(300),
                ],
                false,
            ),
            (
                "a refresh without a session timer changes nothing",
                vec![Response(200, None), Wait(3000), Refresh(None), Wait(600)],
                false,
            ),
        ];
        for (name, steps, counts) in cases {
            let t0 = Instant::now();
            let mut t = table(3600, 100);
            t.start(
                t0,
                "c1",
                "a",
                tx(1),
                "wan",
                keys("alice", Some("bob@corp")),
                None,
            );
            t.b2b_started(7, "c1");
            assert_eq!(t.zone_calls("wan"), 1, "{name}");
            let mut now = t0;
            for s in steps {
                match s {
                    Response(st, se) => {
                        t.on_response(now, tx(1), st, || se.map(Duration::from_secs));
                    }
                    TxEnded => {
                        t.on_tx_ended(tx(1));
                    }
                    Bye(tag) => {
                        let tags = if tag == "b-side-with-a" {
                            [Some("b"), Some("a")]
                        } else {
                            [Some(tag), Some("zz")]
                        };
                        t.on_bye("c1", tags);
                    }
                    Refresh(se) => t.refresh(now, "c1", se.map(Duration::from_secs)),
                    B2bEnded => {
                        t.b2b_ended(7);
                    }
                    Wait(s) => {
                        now += Duration::from_secs(s);
                        t.expire(now);
                    }
                }
            }
            let n = u32::from(counts);
            assert_eq!(t.zone_calls("wan"), n, "{name}: zone");
            assert_eq!(t.user_calls("alice"), n, "{name}: caller");
            assert_eq!(t.user_calls("bob@corp"), n, "{name}: callee");
            assert_eq!(t.len(), usize::from(counts), "{name}: table");
            if !counts {
                assert!(t.by_tx.is_empty() && t.by_deadline.is_empty() && t.b2b.is_empty());
                assert!(
                    t.zones.is_empty() && t.users.is_empty(),
                    "{name}: counts left"
                );
            }
        }
    }

    #[test]
    fn counts_per_zone_and_per_user() {
        let t0 = Instant::now();
        let mut t = table(3600, 100);
        t.start(t0, "1", "a", tx(1), "wan", keys("alice", None), None);
        t.start(
            t0,
            "2",
            "a",
            tx(2),
            "wan",
            keys("alice", Some("bob@corp")),
            None,
        );
        t.start(
            t0,
            "3",
            "a",
            tx(3),
            "lan",
            keys("carol@corp", Some("alice")),
            None,
        );
        // Calling oneself counts once.
        t.start(t0, "4", "a", tx(4), "lan", keys("dave", Some("dave")), None);
        assert_eq!((t.zone_calls("wan"), t.zone_calls("lan")), (2, 2));
        assert_eq!(t.zone_calls("dmz"), 0);
        assert_eq!(t.user_calls("alice"), 3);
        assert_eq!(t.user_calls("bob@corp"), 1);
        assert_eq!(t.user_calls("dave"), 1);
        // The same Call-ID again (a new INVITE after a failure): counted once.
        t.start(
            t0,
            "2",
            "a",
            tx(5),
            "wan",
            keys("alice", Some("bob@corp")),
            None,
        );
        assert_eq!(t.zone_calls("wan"), 2);
        assert_eq!(t.user_calls("alice"), 3);
        // The old transaction no longer speaks for it.
        assert_eq!(t.on_response(t0, tx(2), 486, || None), None);
        assert_eq!(t.zone_calls("wan"), 2);
        assert_eq!(
            t.on_response(t0, tx(5), 486, || None).map(|e| e.why),
            Some("final failure")
        );
        assert_eq!(t.zone_calls("wan"), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut t = table(3600, 16);
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i);
            t.start(
                now,
                &format!("c{i}"),
                "a",
                tx(i),
                "wan",
                keys(&format!("u{i}"), None),
                None,
            );
            assert!(t.len() <= 16);
        }
        assert_eq!(t.evicted(), 1000 - 16);
        assert_eq!(t.zone_calls("wan"), 16);
        // The oldest went first: the last 16 are still there.
        assert_eq!(t.user_calls("u999"), 1);
        assert_eq!(t.user_calls("u983"), 0);
        assert!(t.by_tx.len() <= 16 && t.users.len() <= 16);
        t.reconfigure(&CallsConfig {
            max_duration_s: 3600,
            max_tracked: 4,
        });
        assert_eq!(t.len(), 4);
        t.expire(t0 + Duration::from_secs(7200));
        assert_eq!(t.len(), 0);
        assert!(t.zones.is_empty() && t.users.is_empty());
    }

    #[test]
    fn session_expires_is_read() {
        let m = |h: &str| {
            Message::parse(bytes::Bytes::from(format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
                 To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{h}Content-Length: 0\r\n\r\n"
            )))
            .unwrap()
        };
        assert_eq!(
            session_expires(&m("Session-Expires: 1800;refresher=uac\r\n")),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            session_expires(&m("x: 90\r\n")),
            Some(Duration::from_secs(90))
        );
        assert_eq!(session_expires(&m("")), None);
        assert_eq!(session_expires(&m("Session-Expires: soon\r\n")), None);
        assert_eq!(session_expires(&m("Session-Expires: 0\r\n")), None);
    }
}
