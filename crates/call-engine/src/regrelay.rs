//! Registration relay to an upstream registrar (`registrar.mode = relay`) and keep-alives of
//! bindings behind NAT.
//!
//! **Relay.** A REGISTER from a phone outside the upstream's zone is first applied here as
//! usual (the binding keeps its flow: source address, connection, NAT verdict). Then the
//! upstream registrar (the PBX) is told, in a REGISTER of sipwarden's own (its own Call-ID,
//! From tag and CSeq per AOR, its Via on the side facing the upstream), one Contact per local
//! binding: `sip:USER@LAN-ADDRESS;swreg=TOKEN`, where TOKEN names the binding (a hash of the
//! AOR and the binding's key, so it is the same after a restart). Nothing of the phone's Via,
//! Contact or address reaches the upstream. The phone gets the upstream's answer: a 2xx becomes
//! our 200 with the phone's own bindings (their short NAT expiry); another final status is
//! passed on (408/timeouts as 504, 401/407 as 403: upstream authentication is not relayed) and
//! the local change is undone.
//!
//! **Throttling.** The upstream binding lasts `upstream_expires`. A phone's refresh reaches the
//! upstream only when the set of bindings changed (a new or removed Contact) or the upstream
//! binding is within its margin (a quarter of its duration) of lapsing; otherwise the phone is
//! answered at once. A timer refreshes the upstream binding at its margin while local bindings
//! live, and removes (Expires 0, per Contact: never `*`, the upstream AOR may have bindings of
//! LAN phones) the Contacts of bindings that lapsed, were removed or failed their keep-alives.
//!
//! **State.** What the upstream holds is kept in the store under the AOR `swrelay:` + AOR (one
//! binding per upstream Contact: its URI, our Call-ID and CSeq, the upstream expiry), so that a
//! restarted sipwarden goes on with the same Call-ID and CSeq and knows when to refresh.
//!
//! **Incoming calls.** A request whose Request-URI carries `swreg=TOKEN` goes to that binding
//! only, over its flow (the B2BUA takes it when it crosses zones). A request from outside the
//! upstream's zone for one of our users without a local binding is sent to the upstream.
//!
//! **Keep-alives.** Every binding whose REGISTER came through NAT gets, every
//! `nat_keepalive`, an OPTIONS over its flow (UDP; any response counts as alive), a CRLF CRLF
//! datagram (UDP, `KeepaliveMethod::Crlf`), or a CRLF CRLF on its connection (TCP/TLS, RFC 5626
//! 3.5.1). After `keepalive_failures` consecutive failures (an OPTIONS timing out, a send
//! failing) the binding is removed here and at the upstream. A REGISTER over the flow resets
//! the count.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use sip_message::headers::Contact;
use sip_message::{Message, Method, Uri};
use sip_transaction::{ClientTxId, Destination, ServerTxId, Source, TuEvent, TxId};
use store::{Binding, BindingKey, BindingUpdate};

use crate::engine::{Engine, Event};
use crate::proxy::{parse_flow_token, Target};
use crate::settings::{KeepaliveMethod, RegistrarMode, Transport};
use crate::util::{self, Fnv};

/// Target groups, or the status to answer with.
pub(crate) type TargetSet = Result<Vec<Vec<Target>>, (u16, String)>;

/// The store key prefix of what the upstream registrar holds for an AOR.
pub(crate) const SHADOW_PREFIX: &str = "swrelay:";
/// The Request-URI / Contact parameter naming a relayed binding.
pub(crate) const TOKEN_PARAM: &str = "swreg";
/// Tokens are stable across restarts and processes: a fixed seed.
const TOKEN_SEED: u64 = 0x7377_7265_6c61_7931;
/// How long to wait before retrying an upstream REGISTER that failed without a phone waiting.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A phone's REGISTER waiting for the upstream's answer.
#[derive(Debug)]
struct Waiter {
    id: ServerTxId,
    req: Message,
    source: Source,
    /// The live bindings before this REGISTER: restored if the upstream refuses.
    previous: Vec<Binding>,
    extra: Vec<(&'static str, String)>,
}

#[derive(Debug)]
struct InFlight {
    /// token -> Contact URI of what was registered with a non-zero expiry.
    sent: BTreeMap<String, String>,
    asked: u32,
    waiters: Vec<Waiter>,
}

/// What the upstream holds for one AOR, and the REGISTER in flight.
#[derive(Debug, Default)]
struct Upstream {
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// token -> Contact URI, as of the upstream's last 2xx.
    registered: BTreeMap<String, String>,
    /// When the upstream binding lapses.
    expires_at: Option<Instant>,
    in_flight: Option<InFlight>,
    /// Phones waiting for the next round.
    waiting: Vec<Waiter>,
    /// The local set changed while a REGISTER was in flight: another round after it.
    again: bool,
    /// The next check that is still valid (older schedule entries are ignored).
    next_check: Option<Instant>,
    /// The upstream's Min-Expires, after a 423 (RFC 3261 10.2.8): asked instead of
    /// `upstream_expires` when longer.
    min_expires: Option<u32>,
    /// After a failed upstream REGISTER, timer-driven retries wait until then (a phone's
    /// REGISTER still goes at once).
    retry_at: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct KaKey {
    aor: String,
    key: String,
}

#[derive(Debug)]
struct Keepalive {
    dest: Destination,
    transport: Transport,
    contact: String,
    /// The binding lapses then: no keep-alives after it.
    until: Instant,
    next: Instant,
    failures: u32,
    pending: Option<ClientTxId>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Check(String),
    Keepalive(KaKey),
}

#[derive(Debug)]
enum TxRole {
    Register(String),
    Keepalive(KaKey),
}

/// Counters of the relay and the keep-alives, monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// REGISTERs sent to the upstream registrar.
    pub upstream_registers: u64,
    /// Phone REGISTERs answered without asking the upstream (throttled).
    pub throttled: u64,
    /// Upstream REGISTERs that ended without a 2xx.
    pub upstream_failures: u64,
    pub keepalives_sent: u64,
    pub keepalive_failures: u64,
    /// Bindings removed because their flow stopped answering keep-alives.
    pub dead_flows: u64,
}

/// The relay's and keep-alives' state inside the engine.
#[derive(Debug, Default)]
pub(crate) struct RelayState {
    aors: HashMap<String, Upstream>,
    by_tx: HashMap<ClientTxId, TxRole>,
    keepalives: HashMap<KaKey, Keepalive>,
    schedule: BinaryHeap<Reverse<(Instant, u64, Due)>>,
    seq: u64,
    pub(crate) stats: RelayStats,
}

impl RelayState {
    fn at(&mut self, at: Instant, due: Due) {
        self.seq += 1;
        self.schedule.push(Reverse((at, self.seq, due)));
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.peek().map(|Reverse((at, _, _))| *at)
    }
}

/// The token of a binding: 16 hex digits of a hash of its AOR and key.
pub(crate) fn token_of(aor: &str, key: &BindingKey) -> String {
    let mut h = Fnv::new(TOKEN_SEED);
    h.field(aor.as_bytes());
    match key {
        BindingKey::Contact(c) => {
            h.field(b"c");
            h.field(c.as_bytes());
        }
        BindingKey::Outbound {
            instance_id,
            reg_id,
        } => {
            h.field(b"o");
            h.field(instance_id.as_bytes());
            h.field(&reg_id.to_le_bytes());
        }
    }
    format!("{:016x}", h.finish())
}

fn key_text(key: &BindingKey) -> String {
    match key {
        BindingKey::Contact(c) => c.clone(),
        BindingKey::Outbound {
            instance_id,
            reg_id,
        } => format!("{instance_id};reg-id={reg_id}"),
    }
}

/// The user part of a canonical AOR (`sip:user@host`), escaped again for a URI.
fn aor_user(aor: &str) -> Option<String> {
    let (user, _) = aor.strip_prefix("sip:")?.rsplit_once('@')?;
    let mut out = String::new();
    for b in user.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(out)
}

/// The token named by a Request-URI, if any.
pub(crate) fn token_in(uri: &Uri<'_>) -> Option<String> {
    match uri {
        Uri::Sip(u) => u.params.get(TOKEN_PARAM).flatten().map(str::to_owned),
        _ => None,
    }
}

impl Engine {
    fn relay_on(&self) -> bool {
        self.cfg.registrar.relay.mode == RegistrarMode::Relay
            && self.cfg.registrar.relay.upstream.is_some()
    }

    /// Where the upstream registrar is, and over which transport.
    fn upstream_dest(&self) -> Option<(Destination, Transport)> {
        let u = self.cfg.registrar.relay.upstream.as_deref()?;
        self.destination_of(u).ok()
    }

    /// Whether a request from `source` comes from outside the upstream's zone (from the
    /// upstream itself never; without zones, from anywhere else).
    pub(crate) fn relay_applies(&self, source: &Source) -> bool {
        if !self.relay_on() {
            return false;
        }
        let Some((up, _)) = self.upstream_dest() else {
            return false;
        };
        if source.remote.ip().to_canonical() == up.remote.ip().to_canonical() {
            return false;
        }
        match (
            self.zone_of(source.remote.ip()),
            self.zone_of(up.remote.ip()),
        ) {
            (Some(a), Some(b)) => a != b,
            _ => true,
        }
    }

    /// The `host:port` to name in what goes to `remote` over `t`: a listener of `t` in the
    /// zone of `remote` when zones are known, else the engine's usual choice.
    fn sent_by_towards(&self, remote: SocketAddr, t: Transport) -> String {
        if let Some(zone) = self.zone_of(remote.ip()).map(str::to_owned) {
            let ls = &self.cfg.identity.listeners;
            let in_zone = |l: &&crate::settings::Listener| {
                self.zone_of(l.address.ip()) == Some(zone.as_str())
                    && l.address.is_ipv6() == remote.is_ipv6()
            };
            if let Some(l) = ls
                .iter()
                .filter(in_zone)
                .find(|l| l.transport == t)
                .or_else(|| ls.iter().find(in_zone))
            {
                return l.sent_by();
            }
        }
        self.sent_by(t, remote.is_ipv6())
    }

    /// The Contact the upstream gets for a binding.
    fn upstream_contact(&self, aor: &str, token: &str) -> Option<String> {
        let (up, t) = self.upstream_dest()?;
        let user = aor_user(aor)?;
        let host = self.sent_by_towards(up.remote, t);
        let tp = match t {
            Transport::Udp => String::new(),
            other => format!(";transport={}", other.param()),
        };
        Some(format!("sip:{user}@{host}{tp};{TOKEN_PARAM}={token}"))
    }

    fn instant_of(&self, now: Instant, wall: SystemTime) -> Instant {
        let w = self.wall_clock(now);
        match wall.duration_since(w) {
            Ok(d) => now + d,
            Err(_) => now,
        }
    }

    // ------------------------------------------------------------------------------------
    // Hooks
    // ------------------------------------------------------------------------------------

    /// At start: what the upstream holds (from the store), and keep-alives for the NATed
    /// bindings that survived a restart.
    pub(crate) fn relay_restore(&mut self, now: Instant) {
        let keepalive = self.cfg.registrar.relay.nat_keepalive.is_some();
        if !self.relay_on() && !keepalive {
            return;
        }
        let wall = self.wall_clock(now);
        let mut after: Option<String> = None;
        // Bounded: a page at a time, at most a million AORs.
        for _ in 0..2000 {
            let page = match self.store.all_aors(after.as_deref(), 500) {
                Ok(p) => p,
                Err(e) => {
                    self.stats.store_errors += 1;
                    self.event(Event::StoreFailed {
                        op: "restore relay",
                        error: e.to_string(),
                    });
                    return;
                }
            };
            let Some(last) = page.last().cloned() else {
                break;
            };
            for aor in page {
                let Ok(bindings) = self.store.live_bindings(&aor, wall) else {
                    continue;
                };
                if let Some(local) = aor.strip_prefix(SHADOW_PREFIX) {
                    if self.relay_on() {
                        self.restore_upstream(now, local, &bindings);
                    }
                } else if keepalive {
                    self.track_keepalives(now, &aor, &bindings);
                }
            }
            after = Some(last);
        }
    }

    fn restore_upstream(&mut self, now: Instant, aor: &str, shadow: &[Binding]) {
        let Some(first) = shadow.first() else {
            return;
        };
        let mut up = Upstream {
            call_id: first.call_id.clone(),
            from_tag: self.layer.new_tag(),
            cseq: shadow.iter().map(|b| b.cseq).max().unwrap_or(1),
            ..Upstream::default()
        };
        let mut lapse = None;
        for b in shadow {
            if let Ok(u) = Uri::parse(&b.contact) {
                if let Some(t) = token_in(&u) {
                    up.registered.insert(t, b.contact.clone());
                }
            }
            let at = self.instant_of(now, b.expires_at);
            lapse = Some(lapse.map_or(at, |l: Instant| l.min(at)));
        }
        up.expires_at = lapse;
        self.relay.aors.insert(aor.to_owned(), up);
        // The local bindings may have lapsed while we were down: check soon.
        self.schedule_check(now, aor, now + Duration::from_secs(1));
    }

    /// After a REGISTER was applied locally (`result` is the AOR's binding set now, `previous`
    /// the live set before): keep-alives for its NATed bindings, then either the 200 at once
    /// or, when relayed and the upstream must hear of it, the 200 after the upstream's answer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn relay_after_register(
        &mut self,
        now: Instant,
        id: ServerTxId,
        req: &Message,
        source: Source,
        aor: String,
        result: Vec<Binding>,
        previous: Vec<Binding>,
        wall: SystemTime,
        extra: Vec<(&'static str, String)>,
    ) {
        if self.cfg.registrar.relay.nat_keepalive.is_some() {
            self.forget_keepalives_of(&aor, &result);
            // Only the bindings this REGISTER wrote start afresh; the AOR's other phones keep
            // their schedule and failure count.
            // As the registrar read it.
            let call_id =
                String::from_utf8_lossy(req.header(sip_message::HeaderName::CallId).unwrap_or(b""))
                    .into_owned();
            let cseq = req.cseq().and_then(|c| c.ok()).map_or(0, |c| c.seq);
            let written: Vec<Binding> = result
                .iter()
                .filter(|b| b.call_id == call_id && b.cseq == cseq)
                .cloned()
                .collect();
            self.track_keepalives(now, &aor, &written);
        }
        if !self.relay_applies(&source) {
            return self.reg_ok(now, id, req, source, aor, &result, wall, &extra);
        }
        let waiter = Waiter {
            id,
            req: req.clone(),
            source,
            previous,
            extra,
        };
        self.relay
            .aors
            .entry(aor.clone())
            .or_default()
            .waiting
            .push(waiter);
        self.relay_sync(now, &aor);
    }

    /// Offers a transaction-layer event to the relay; gives it back when it is not about one
    /// of its transactions.
    pub(crate) fn relay_tu_event(&mut self, now: Instant, ev: TuEvent) -> Option<TuEvent> {
        let c = match &ev {
            TuEvent::Response { id, .. } => *id,
            TuEvent::Timeout {
                tx: TxId::Client(c),
                ..
            }
            | TuEvent::TransportError {
                tx: TxId::Client(c),
            }
            | TuEvent::Terminated {
                tx: TxId::Client(c),
                ..
            } => *c,
            _ => return Some(ev),
        };
        if !self.relay.by_tx.contains_key(&c) {
            return Some(ev);
        }
        match ev {
            TuEvent::Response { msg, .. } => {
                let status = msg.status().unwrap_or(0);
                if status < 200 {
                    return None;
                }
                match self.relay.by_tx.remove(&c) {
                    Some(TxRole::Register(aor)) => self.upstream_answer(now, &aor, status, &msg),
                    Some(TxRole::Keepalive(k)) => self.keepalive_result(now, &k, true),
                    None => {}
                }
            }
            TuEvent::Timeout { .. } | TuEvent::TransportError { .. } => {
                let status = if matches!(ev, TuEvent::Timeout { .. }) {
                    408
                } else {
                    503
                };
                match self.relay.by_tx.remove(&c) {
                    Some(TxRole::Register(aor)) => self.upstream_failed(now, &aor, status),
                    Some(TxRole::Keepalive(k)) => self.keepalive_result(now, &k, false),
                    None => {}
                }
            }
            _ => {
                // Terminated without an outcome we saw: nothing waits on it any more.
                self.relay.by_tx.remove(&c);
            }
        }
        None
    }

    /// Fires the relay's due checks and keep-alives.
    pub(crate) fn relay_timeout(&mut self, now: Instant) {
        // Bounded per call: a million entries at most, then the rest at the next timeout.
        for _ in 0..1_000_000 {
            match self.relay.schedule.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, _, due))) = self.relay.schedule.pop() else {
                break;
            };
            match due {
                Due::Check(aor) => {
                    let valid = self
                        .relay
                        .aors
                        .get(&aor)
                        .is_some_and(|u| u.next_check == Some(at));
                    if valid {
                        if let Some(u) = self.relay.aors.get_mut(&aor) {
                            u.next_check = None;
                        }
                        self.relay_sync(now, &aor);
                    }
                }
                Due::Keepalive(k) => {
                    let valid = self
                        .relay
                        .keepalives
                        .get(&k)
                        .is_some_and(|ka| ka.next == at);
                    if valid {
                        self.send_keepalive(now, &k);
                    }
                }
            }
            self.pump(now);
        }
    }

    /// The binding named by `swreg=TOKEN` in the Request-URI, as the only target.
    pub(crate) fn relay_token_target(
        &mut self,
        now: Instant,
        work: &Message,
        source: &Source,
    ) -> Option<TargetSet> {
        // Only the upstream's side calls relayed Contacts; elsewhere the parameter means
        // nothing and the request is routed as any other.
        if !self.relay_on() || self.relay_applies(source) {
            return None;
        }
        let ruri = work.request_uri()?;
        let token = token_in(&ruri)?;
        // Only a Request-URI that names us, with no Route left to follow.
        let user = match &ruri {
            Uri::Sip(u)
                if self.is_this_host(&u.host, u.host_str, u.port)
                    && work.count(sip_message::HeaderName::Route) == 0 =>
            {
                String::from_utf8_lossy(&sip_message::unescape(u.user?)).into_owned()
            }
            _ => return None,
        };
        let wall = self.wall_clock(now);
        let domains = self.cfg.registrar.domains.clone();
        for d in domains {
            let aor = format!("sip:{user}@{}", util::norm_host(&d));
            let Ok(live) = self.store.live_bindings(&aor, wall) else {
                continue;
            };
            if let Some(b) = live.iter().find(|b| token_of(&aor, &b.key()) == token) {
                return Some(match self.target_of(b) {
                    Some(t) => Ok(vec![vec![t]]),
                    None => Err((480, "Temporarily Unavailable".to_owned())),
                });
            }
        }
        Some(Err((480, "Temporarily Unavailable".to_owned())))
    }

    /// A request for one of our users without a local binding, from outside the upstream's
    /// zone: the upstream gets it (the AOR as Request-URI).
    pub(crate) fn relay_upstream_target(
        &self,
        work: &Message,
        source: &Source,
    ) -> Option<Vec<Vec<Target>>> {
        if work.method() != Some(Method::Invite) || !self.relay_applies(source) {
            return None;
        }
        let fixed = self.upstream_dest()?;
        Some(vec![vec![Target {
            uri: work.request_uri_str()?.to_owned(),
            route: Vec::new(),
            fixed: Some(fixed),
            q: 1000,
        }]])
    }

    /// The transport closed connection `flow` (or knows it dead): the NATed bindings that are
    /// reached over it are removed at once, here and at the upstream, as after failed
    /// keep-alives. Drain [`Engine::poll_output`] afterwards.
    pub fn flow_closed(&mut self, now: Instant, flow: sip_transaction::FlowId) {
        let dead: Vec<KaKey> = self
            .relay
            .keepalives
            .iter()
            .filter(|(_, ka)| ka.dest.flow == Some(flow) && ka.transport.reliable())
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead {
            if let Some(ka) = self.relay.keepalives.remove(&k) {
                if let Some(tx) = ka.pending {
                    self.relay.by_tx.remove(&tx);
                }
            }
            self.relay.stats.dead_flows += 1;
            self.dead_flow(now, &k);
        }
        self.pump(now);
    }

    /// Counters of the relay and the keep-alives.
    pub fn relay_stats(&self) -> RelayStats {
        self.relay.stats
    }

    // ------------------------------------------------------------------------------------
    // The upstream registration
    // ------------------------------------------------------------------------------------

    fn schedule_check(&mut self, now: Instant, aor: &str, at: Instant) {
        let at = at.max(now);
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        if u.next_check.is_some_and(|n| n <= at) {
            return;
        }
        u.next_check = Some(at);
        self.relay.at(at, Due::Check(aor.to_owned()));
    }

    fn margin(&self) -> Duration {
        Duration::from_secs(u64::from(
            (self.cfg.registrar.relay.upstream_expires / 4).max(5),
        ))
    }

    /// Brings the upstream in line with the local bindings of `aor`, or answers the phones
    /// waiting at once when it already is (throttling).
    fn relay_sync(&mut self, now: Instant, aor: &str) {
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        if u.in_flight.is_some() {
            u.again = true;
            return;
        }
        let wall = util::trunc_secs(self.wall_clock(now));
        let live = match self.store.live_bindings(aor, wall) {
            Ok(l) => l,
            Err(e) => {
                self.stats.store_errors += 1;
                self.event(Event::StoreFailed {
                    op: "relay lookup",
                    error: e.to_string(),
                });
                return self.answer_waiters(now, aor, None, 500);
            }
        };
        let mut desired: BTreeMap<String, String> = BTreeMap::new();
        for b in &live {
            let t = token_of(aor, &b.key());
            if let Some(c) = self.upstream_contact(aor, &t) {
                desired.insert(t, c);
            }
        }
        let margin = self.margin();
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        let fresh = u.expires_at.is_some_and(|e| e > now + margin);
        let same = desired == u.registered;
        if same && (fresh || desired.is_empty()) {
            let waiting = std::mem::take(&mut u.waiting);
            self.relay.stats.throttled += waiting.len() as u64;
            for w in waiting {
                self.answer_ok(now, aor, w, wall);
            }
            return self.after_round(now, aor, &live);
        }
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        let asked = self
            .cfg
            .registrar
            .relay
            .upstream_expires
            .max(u.min_expires.unwrap_or(0));
        if u.call_id.is_empty() {
            u.call_id = format!("{}@swrelay", self.layer.new_branch());
        }
        if u.from_tag.is_empty() {
            u.from_tag = self.layer.new_tag();
        }
        u.cseq = u.cseq.saturating_add(1);
        let mut contacts: Vec<String> = desired
            .values()
            .map(|c| format!("<{c}>;expires={asked}"))
            .collect();
        for (t, c) in &u.registered {
            if !desired.contains_key(t) {
                contacts.push(format!("<{c}>;expires=0"));
            }
        }
        let (call_id, from_tag, cseq) = (u.call_id.clone(), u.from_tag.clone(), u.cseq);
        let waiters = std::mem::take(&mut u.waiting);
        u.again = false;
        let Some((dest, t)) = self.upstream_dest() else {
            return;
        };
        let upstream = self
            .cfg
            .registrar
            .relay
            .upstream
            .clone()
            .unwrap_or_default();
        let ruri = match Uri::parse(&upstream) {
            Ok(Uri::Sip(s)) => format!(
                "sip:{}{}",
                s.host_str,
                s.port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
            _ => upstream.clone(),
        };
        let sent_by = self.sent_by_towards(dest.remote, t);
        let branch = self.layer.new_branch();
        let mut text = format!(
            "REGISTER {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {sent_by};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{aor}>;tag={from_tag}\r\n\
             To: <{aor}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n",
            t.via_token()
        );
        for c in &contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        text.push_str(&format!("Expires: {asked}\r\n"));
        if let Some(s) = &self.cfg.server_header {
            text.push_str(&format!("User-Agent: {s}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let sent = Message::parse(text.into_bytes())
            .map_err(|e| format!("unparsable: {}", e.kind.reason()))
            .and_then(|m| {
                self.layer
                    .send_request(now, m, dest)
                    .map_err(|e| e.to_string())
            });
        match sent {
            Ok(tx) => {
                self.relay.stats.upstream_registers += 1;
                self.relay
                    .by_tx
                    .insert(tx, TxRole::Register(aor.to_owned()));
                if let Some(u) = self.relay.aors.get_mut(aor) {
                    u.in_flight = Some(InFlight {
                        sent: desired,
                        asked,
                        waiters,
                    });
                }
            }
            Err(reason) => {
                self.event(Event::Dropped {
                    reason: format!("upstream REGISTER for {aor} not sent: {reason}"),
                    source: None,
                });
                if let Some(u) = self.relay.aors.get_mut(aor) {
                    u.waiting = waiters;
                }
                self.answer_waiters(now, aor, None, 503);
            }
        }
    }

    fn upstream_answer(&mut self, now: Instant, aor: &str, status: u16, msg: &Message) {
        if status == 423 {
            // Interval Too Brief: once more with the upstream's minimum (bounded: a second 423
            // for the same or a lower minimum is a refusal).
            let min = msg
                .header_by_name("Min-Expires")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|m| *m <= 86_400);
            if let (Some(min), Some(u)) = (min, self.relay.aors.get_mut(aor)) {
                if u.min_expires.is_none_or(|old| min > old) {
                    u.min_expires = Some(min);
                    if let Some(f) = u.in_flight.take() {
                        u.waiting.splice(0..0, f.waiters);
                        // The REGISTER that failed changed nothing upstream.
                        return self.relay_sync(now, aor);
                    }
                }
            }
        }
        if !(200..300).contains(&status) {
            return self.upstream_failed(now, aor, status);
        }
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        let Some(f) = u.in_flight.take() else {
            return;
        };
        // The granted expiry: our Contacts' `expires` in the 200, else its Expires, else what
        // we asked.
        let mut granted: Option<u32> = None;
        if let Ok(cs) = msg.typed_vec::<Contact>() {
            for c in &cs {
                let Some(na) = c.addr() else { continue };
                if token_in(&na.uri).is_some_and(|t| f.sent.contains_key(&t)) {
                    if let Some(e) = c.expires() {
                        granted = Some(granted.map_or(e, |g| g.min(e)));
                    }
                }
            }
        }
        let granted = granted
            .or_else(|| match msg.expires() {
                Some(Ok(e)) => Some(e.0),
                _ => None,
            })
            .unwrap_or(f.asked);
        u.registered = f.sent;
        u.retry_at = None;
        let contacts = u.registered.len();
        u.expires_at =
            (!u.registered.is_empty()).then(|| now + Duration::from_secs(u64::from(granted)));
        let waiters = f.waiters;
        self.event(Event::UpstreamRegister {
            aor: aor.to_owned(),
            status,
            contacts,
        });
        self.persist_upstream(now, aor);
        let wall = util::trunc_secs(self.wall_clock(now));
        for w in waiters {
            self.answer_ok(now, aor, w, wall);
        }
        self.round_done(now, aor);
    }

    fn upstream_failed(&mut self, now: Instant, aor: &str, status: u16) {
        self.relay.stats.upstream_failures += 1;
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        let Some(f) = u.in_flight.take() else {
            return;
        };
        u.waiting.splice(0..0, f.waiters);
        u.retry_at = Some(now + RETRY_AFTER);
        // What the upstream holds is unchanged.
        let contacts = u.registered.len();
        self.event(Event::UpstreamRegister {
            aor: aor.to_owned(),
            status,
            contacts,
        });
        self.answer_waiters(now, aor, Some(()), status);
        self.round_done(now, aor);
    }

    /// After an answer: another round if the set changed meanwhile, else the next check.
    fn round_done(&mut self, now: Instant, aor: &str) {
        let again = self
            .relay
            .aors
            .get(aor)
            .is_some_and(|u| u.again || !u.waiting.is_empty());
        if again {
            return self.relay_sync(now, aor);
        }
        let wall = self.wall_clock(now);
        let live = self.store.live_bindings(aor, wall).unwrap_or_default();
        self.after_round(now, aor, &live);
    }

    /// The next check of `aor`: the upstream refresh at its margin, or the first local binding
    /// lapsing; an AOR with nothing here and nothing upstream is forgotten.
    fn after_round(&mut self, now: Instant, aor: &str, live: &[Binding]) {
        let margin = self.margin();
        let first_lapse = live
            .iter()
            .map(|b| self.instant_of(now, b.expires_at) + Duration::from_secs(1))
            .min();
        let Some(u) = self.relay.aors.get(aor) else {
            return;
        };
        if live.is_empty() && u.registered.is_empty() && u.in_flight.is_none() {
            self.relay.aors.remove(aor);
            return;
        }
        let refresh = (!live.is_empty())
            .then(|| u.expires_at.map(|e| e.checked_sub(margin).unwrap_or(now)))
            .flatten();
        let next = match (refresh, first_lapse) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Not before a failure's back-off has passed.
        let next = next.map(|at| u.retry_at.map_or(at, |r| at.max(r)));
        if let Some(at) = next {
            self.schedule_check(now, aor, at);
        }
    }

    /// The 200 to a phone whose REGISTER is done: its AOR's live bindings.
    fn answer_ok(&mut self, now: Instant, aor: &str, w: Waiter, wall: SystemTime) {
        let live = self.store.live_bindings(aor, wall).unwrap_or_default();
        self.reg_ok(
            now,
            w.id,
            &w.req,
            w.source,
            aor.to_owned(),
            &live,
            wall,
            &w.extra,
        );
    }

    /// Answers every phone waiting on `aor` with `status`; with `restore`, their change is
    /// undone first (the oldest one's previous set comes back).
    fn answer_waiters(&mut self, now: Instant, aor: &str, restore: Option<()>, status: u16) {
        let Some(u) = self.relay.aors.get_mut(aor) else {
            return;
        };
        let waiting = std::mem::take(&mut u.waiting);
        if waiting.is_empty() {
            return;
        }
        if restore.is_some() {
            if let Some(first) = waiting.first() {
                let wall = util::trunc_secs(self.wall_clock(now));
                let mut up = BindingUpdate::new(wall, "swrelay-restore", 1).remove_all();
                for b in &first.previous {
                    up = up.upsert(b.clone());
                }
                if let Err(e) = self.store.apply(aor, up) {
                    self.stats.store_errors += 1;
                    self.event(Event::StoreFailed {
                        op: "relay restore",
                        error: e.to_string(),
                    });
                }
            }
        }
        let (code, reason) = match status {
            401 | 407 => (
                403,
                "Forbidden (the upstream registrar asks for authentication)",
            ),
            408 => (504, "Server Time-out"),
            503 => (503, "Service Unavailable"),
            s if (300..700).contains(&s) => (s, "Upstream Registrar Refused"),
            _ => (500, "Server Internal Error"),
        };
        for w in waiting {
            self.reg_reject(
                now,
                w.id,
                &w.req,
                w.source,
                Some(aor.to_owned()),
                code,
                reason,
                &[],
            );
        }
    }

    /// Writes what the upstream holds for `aor` to the store (`swrelay:` + AOR).
    fn persist_upstream(&mut self, now: Instant, aor: &str) {
        let Some(u) = self.relay.aors.get(aor) else {
            return;
        };
        let wall = util::trunc_secs(self.wall_clock(now));
        let lapse = u
            .expires_at
            .map(|e| wall + e.saturating_duration_since(now))
            .unwrap_or(wall);
        let mut up = BindingUpdate::new(wall, u.call_id.clone(), u.cseq).remove_all();
        for c in u.registered.values() {
            let b = Binding::new(
                format!("{SHADOW_PREFIX}{aor}"),
                c.clone(),
                lapse,
                u.call_id.clone(),
                u.cseq,
                wall,
            );
            up = up.upsert(b);
        }
        if let Err(e) = self.store.apply(&format!("{SHADOW_PREFIX}{aor}"), up) {
            self.stats.store_errors += 1;
            self.event(Event::StoreFailed {
                op: "relay persist",
                error: e.to_string(),
            });
        }
    }

    // ------------------------------------------------------------------------------------
    // Keep-alives
    // ------------------------------------------------------------------------------------

    /// Keep-alives for the NATed bindings of `aor` (a REGISTER over the flow restarts the
    /// count).
    fn track_keepalives(&mut self, now: Instant, aor: &str, bindings: &[Binding]) {
        let Some(every) = self.cfg.registrar.relay.nat_keepalive else {
            return;
        };
        for b in bindings {
            let Some(tok) = b.flow.as_deref().and_then(parse_flow_token) else {
                continue;
            };
            if tok.nat != Some(true) || !b.path.is_empty() {
                continue;
            }
            let Some(remote) = b.received.as_deref().and_then(|r| r.parse().ok()) else {
                continue;
            };
            let k = KaKey {
                aor: aor.to_owned(),
                key: key_text(&b.key()),
            };
            let next = now + every;
            let ka = Keepalive {
                dest: Destination {
                    remote,
                    flow: Some(tok.flow),
                    reliable: tok.transport.reliable(),
                },
                transport: tok.transport,
                contact: b.contact.clone(),
                until: self.instant_of(now, b.expires_at),
                next,
                failures: 0,
                pending: None,
            };
            if let Some(old) = self.relay.keepalives.insert(k.clone(), ka) {
                if let Some(tx) = old.pending {
                    self.relay.by_tx.remove(&tx);
                }
            }
            self.relay.at(next, Due::Keepalive(k));
        }
    }

    /// Drops the keep-alives of `aor`'s bindings that are not in `current` any more.
    fn forget_keepalives_of(&mut self, aor: &str, current: &[Binding]) {
        let keep: Vec<String> = current.iter().map(|b| key_text(&b.key())).collect();
        self.relay
            .keepalives
            .retain(|k, _| k.aor != aor || keep.contains(&k.key));
    }

    fn send_keepalive(&mut self, now: Instant, k: &KaKey) {
        let Some(every) = self.cfg.registrar.relay.nat_keepalive else {
            self.relay.keepalives.remove(k);
            return;
        };
        let method = self.cfg.registrar.relay.keepalive_method;
        let Some(ka) = self.relay.keepalives.get_mut(k) else {
            return;
        };
        if ka.until <= now {
            self.relay.keepalives.remove(k);
            return;
        }
        ka.next = now + every;
        let next = ka.next;
        let pending = ka.pending.is_some();
        let (dest, transport, contact) = (ka.dest, ka.transport, ka.contact.clone());
        self.relay.at(next, Due::Keepalive(k.clone()));
        if pending {
            // The last OPTIONS is still running (its timeout counts when it comes).
            return;
        }
        self.relay.stats.keepalives_sent += 1;
        if transport.reliable() || method == KeepaliveMethod::Crlf {
            self.push_output(crate::engine::Output::Transmit {
                dest,
                bytes: bytes::Bytes::from_static(b"\r\n\r\n"),
                tx: None,
            });
            return;
        }
        let sent_by = self.sent_by_towards(dest.remote, transport);
        let branch = self.layer.new_branch();
        let tag = self.layer.new_tag();
        let call_id = format!("{}@swka", self.layer.new_branch());
        let text = format!(
            "OPTIONS {contact} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {sent_by};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:keepalive@{sent_by}>;tag={tag}\r\n\
             To: <{contact}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let sent = Message::parse(text.into_bytes())
            .ok()
            .and_then(|m| self.layer.send_request(now, m, dest).ok());
        match sent {
            Some(tx) => {
                self.relay.by_tx.insert(tx, TxRole::Keepalive(k.clone()));
                if let Some(ka) = self.relay.keepalives.get_mut(k) {
                    ka.pending = Some(tx);
                }
            }
            None => self.keepalive_result(now, k, false),
        }
    }

    fn keepalive_result(&mut self, now: Instant, k: &KaKey, alive: bool) {
        let max = self.cfg.registrar.relay.keepalive_failures.max(1);
        let Some(ka) = self.relay.keepalives.get_mut(k) else {
            return;
        };
        ka.pending = None;
        if alive {
            ka.failures = 0;
            return;
        }
        ka.failures += 1;
        self.relay.stats.keepalive_failures += 1;
        if ka.failures < max {
            return;
        }
        self.relay.keepalives.remove(k);
        self.relay.stats.dead_flows += 1;
        self.dead_flow(now, k);
    }

    /// A binding whose flow stopped answering: removed here, and at the upstream.
    fn dead_flow(&mut self, now: Instant, k: &KaKey) {
        let wall = util::trunc_secs(self.wall_clock(now));
        let Ok(bindings) = self.store.bindings(&k.aor) else {
            return;
        };
        let Some(b) = bindings.iter().find(|b| key_text(&b.key()) == k.key) else {
            return;
        };
        let up = BindingUpdate::new(wall, "swrelay-dead-flow", 1).remove(b.key());
        match self.store.apply(&k.aor, up) {
            Ok(left) => self.event(Event::Registered {
                aor: k.aor.clone(),
                bindings: left.len(),
                source: Source {
                    remote: b
                        .received
                        .as_deref()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                    flow: sip_transaction::FlowId(0),
                    reliable: false,
                },
            }),
            Err(e) => {
                self.stats.store_errors += 1;
                self.event(Event::StoreFailed {
                    op: "dead flow",
                    error: e.to_string(),
                });
                return;
            }
        }
        self.event(Event::DeadFlow {
            aor: k.aor.clone(),
            contact: b.contact.clone(),
        });
        if self.relay.aors.contains_key(&k.aor) {
            self.relay_sync(now, &k.aor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a = token_of("sip:alice@x", &BindingKey::Contact("sip:a@10.0.0.1".into()));
        let b = token_of("sip:alice@x", &BindingKey::Contact("sip:a@10.0.0.2".into()));
        let c = token_of("sip:bob@x", &BindingKey::Contact("sip:a@10.0.0.1".into()));
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            token_of("sip:alice@x", &BindingKey::Contact("sip:a@10.0.0.1".into()))
        );
    }

    #[test]
    fn users_are_escaped_again() {
        assert_eq!(aor_user("sip:alice@x").as_deref(), Some("alice"));
        assert_eq!(aor_user("sip:a b@x").as_deref(), Some("a%20b"));
        assert_eq!(aor_user("sip:a@b@x").as_deref(), Some("a%40b"));
        assert_eq!(aor_user("tel:123"), None);
    }
}
