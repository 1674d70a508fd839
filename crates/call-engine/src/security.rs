//! The edge's protection, inside the engine (sans-IO like the rest): zone classification, the
//! per-zone policy, digest authentication with local credentials, brute-force bans, the flood
//! guard and the overload state.
//!
//! Where each check runs, and why there:
//! - The receive path: banned sources and the zones' flood budgets are in a shared
//!   [`Gatekeeper`] that the shell installs in the transport, which checks every datagram and
//!   connection before parsing. The engine decides the bans and publishes them to it
//!   ([`Gatekeeper::publish_bans`]) after every change. [`Engine::admit`] runs the same check
//!   for shells without such a hook (tests); a shell must use one or the other, not both, or
//!   every packet is charged twice.
//! - [`Engine::handle_incoming`], before the transaction layer: the policy's `Drop` verdicts
//!   (a dropped request must never get a server transaction, which would answer 500 when its
//!   TU stays silent) and the overload 503.
//! - `on_request`, inside the server transaction: every other verdict, and authentication
//!   (a retransmission is absorbed by the transaction, so a nonce count is checked once).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use auth::{ChallengeKind, Check, CredentialSource, DigestAuthenticator, Lookup, Outcome};
use ipnet::IpNet;
use policy::{Admit, BruteForce, Gatekeeper, Overload, Policy, Request, Target, Verdict, ZoneId};
use sip_message::{HeaderName, Message, Method, Uri};
use sip_transaction::{Destination, ServerTxId, Source};
use store::{Ban, BanStore};

use crate::calls::{session_expires, CallTable};
use crate::engine::{Engine, Event};

/// Flood buckets held at once (40 bytes each): bounded memory whatever the number of sources.
pub const FLOOD_CAPACITY: usize = 65_536;

/// Everything the protection needs, built by the shell from the configuration.
pub struct SecurityConfig {
    /// The compiled `[policy]`.
    pub policy: Policy,
    /// The zones in order, with their source networks.
    pub zones: Vec<(String, Vec<IpNet>)>,
    /// The digest authenticator of `auth.realm`.
    pub digest: DigestAuthenticator,
    /// Local credentials (the embedded store); `None`: every challenge fails.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    /// Where bans are persisted; bans stored earlier are loaded from it.
    pub bans: Option<Arc<dyn BanStore>>,
    /// Answers to untrusted sources carry the `Server` header.
    pub server_header_untrusted: bool,
    /// Capacity of the transaction table (for the overload thresholds).
    pub max_transactions: u32,
    /// Credentials are verified by a remote server (RADIUS): the engine emits
    /// [`crate::Output::AuthRequest`] and parks the request instead of looking up an HA1.
    pub remote_verify: bool,
    /// The receive path's gate, shared with the transport (built from the same policy and
    /// zones); `None`: the engine makes its own ([`Engine::gatekeeper`]).
    pub gatekeeper: Option<Arc<Gatekeeper>>,
}

/// Requests waiting for a RADIUS verdict at once; beyond it new ones get 503 (bounded memory
/// when the servers are slow or dead).
pub const MAX_PARKED: usize = 4096;

/// A request waiting for the RADIUS verdict.
pub(crate) struct Parked {
    id: ServerTxId,
    msg: Message,
    source: Source,
    target: Target,
    kind: ChallengeKind,
    pending: Box<auth::Pending>,
}

pub(crate) struct Security {
    policy: Policy,
    zones: Vec<(String, Vec<IpNet>)>,
    zone_names: Vec<String>,
    digest: DigestAuthenticator,
    credentials: Option<Arc<dyn CredentialSource>>,
    bans: Option<Arc<dyn BanStore>>,
    brute: BruteForce,
    gate: Arc<Gatekeeper>,
    /// Calls in progress, for the call limits (crate::calls).
    calls: CallTable,
    overload: Overload,
    server_header_untrusted: bool,
    remote_verify: bool,
    parked: std::collections::HashMap<u64, Parked>,
    next_ticket: u64,
}

/// Counters of the protection, monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecurityStats {
    /// Packets from banned sources, dropped unread.
    pub banned_drops: u64,
    /// Packets over a zone's flood budget.
    pub flood_drops: u64,
    /// Requests the policy dropped.
    pub policy_drops: u64,
    /// Requests the policy refused.
    pub policy_refusals: u64,
    /// Challenges sent (401/407).
    pub challenges: u64,
    /// Failed authentications (wrong password, unknown user, bad nonce).
    pub auth_failures: u64,
    /// Successful authentications.
    pub auth_successes: u64,
    /// New requests answered 503 in the overload state.
    pub overload_refusals: u64,
    /// Calls counted for the call limits (initial INVITEs let through).
    pub calls_counted: u64,
    /// Calls that stopped counting at their deadline (`policy.calls`: a lost BYE, an
    /// unrefreshed session timer) rather than by ending.
    pub calls_expired: u64,
    /// Calls forgotten because `policy.calls.max_tracked` were counted already.
    pub calls_evicted: u64,
}

/// What `on_request` does after the policy and authentication.
pub(crate) enum Gate {
    /// Go on (as this authenticated user, if any).
    Pass(Option<String>),
    /// Answered already.
    Done,
}

impl Security {
    pub(crate) fn new(cfg: SecurityConfig, now: Instant, wall: SystemTime, seed: u64) -> Self {
        let zone_names: Vec<String> = cfg.zones.iter().map(|(n, _)| n.clone()).collect();
        let mut brute = BruteForce::new(&cfg.policy);
        if let Some(b) = &cfg.bans {
            if let Ok(list) = b.list_bans() {
                brute.load_bans(list, wall);
            }
        }
        let gate = cfg.gatekeeper.unwrap_or_else(|| {
            Arc::new(Gatekeeper::new(
                &cfg.policy,
                &cfg.zones,
                FLOOD_CAPACITY,
                seed,
                now,
            ))
        });
        gate.publish_bans(brute.ip_bans(wall), now, wall);
        let calls = CallTable::new(cfg.policy.calls_config());
        let overload = Overload::new(cfg.policy.overload_config(), cfg.max_transactions);
        Security {
            policy: cfg.policy,
            zones: cfg.zones,
            zone_names,
            digest: cfg.digest,
            credentials: cfg.credentials,
            bans: cfg.bans,
            brute,
            gate,
            calls,
            overload,
            server_header_untrusted: cfg.server_header_untrusted,
            remote_verify: cfg.remote_verify,
            parked: std::collections::HashMap::new(),
            next_ticket: 1,
        }
    }

    /// The zone of a source address: the one whose networks hold it (the most specific
    /// network wins when zones nest), else the first.
    fn zone_index(&self, ip: IpAddr) -> usize {
        let ip = ip.to_canonical();
        self.zones
            .iter()
            .enumerate()
            .filter_map(|(i, (_, nets))| {
                let len = nets
                    .iter()
                    .filter(|n| n.contains(&ip))
                    .map(|n| n.prefix_len());
                len.max().map(|l| (l, i))
            })
            .max_by_key(|(l, _)| *l)
            .map_or(0, |(_, i)| i)
    }

    fn zone_name(&self, ip: IpAddr) -> &str {
        self.zone_names
            .get(self.zone_index(ip))
            .map_or("", String::as_str)
    }
}

impl Engine {
    /// Turns the protection on (see the module documentation). Bans stored earlier are loaded.
    pub fn with_security(mut self, cfg: SecurityConfig, now: Instant) -> Engine {
        let wall = self.wall_clock(now);
        self.security = Some(Box::new(Security::new(cfg, now, wall, self.cfg.seed)));
        self
    }

    /// Replaces the policy and the digest settings after a reload; counters, bans and flood
    /// buckets are kept.
    pub fn reconfigure_security(
        &mut self,
        policy: Policy,
        digest: auth::DigestConfig,
        now: Instant,
    ) {
        let wall = self.wall_clock(now);
        let max = u32::try_from(self.cfg.transaction.max_transactions).unwrap_or(u32::MAX);
        if let Some(s) = self.security.as_deref_mut() {
            s.brute.reconfigure(&policy);
            s.calls.reconfigure(policy.calls_config());
            s.gate.reconfigure(&policy, &s.zones);
            s.gate.publish_bans(s.brute.ip_bans(wall), now, wall);
            s.overload = Overload::new(policy.overload_config(), max);
            s.digest.reconfigure(digest, wall);
            s.policy = policy;
        }
    }

    /// New networks for the zones (a reload; the same names in the same order): the policy's
    /// zone of a source and the receive path's gate follow them.
    pub fn set_security_zones(&mut self, zones: Vec<(String, Vec<IpNet>)>) {
        if let Some(s) = self.security.as_deref_mut() {
            s.zone_names = zones.iter().map(|(n, _)| n.clone()).collect();
            s.zones = zones;
            s.gate.reconfigure(&s.policy, &s.zones);
        }
    }

    /// The protection's counters.
    pub fn security_stats(&self) -> SecurityStats {
        let mut st = self.sec_stats;
        if let Some(s) = self.security.as_deref() {
            st.calls_evicted = s.calls.evicted();
        }
        st
    }

    /// Whether a packet from `ip` may be read at all: not from a banned source, and within its
    /// zone's flood budget (a source in no zone counts as the first zone's). For shells that
    /// do not run [`Engine::gatekeeper`] in their receive path; never both (each call charges
    /// the source's bucket).
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(s) = self.security.as_deref_mut() else {
            return true;
        };
        let zone = ZoneId(u16::try_from(s.zone_index(ip)).unwrap_or(0));
        match s.gate.check_in(zone, ip, now) {
            Admit::Pass | Admit::NoZone => true,
            Admit::Banned => {
                self.sec_stats.banned_drops += 1;
                false
            }
            Admit::Limited => {
                self.sec_stats.flood_drops += 1;
                false
            }
        }
    }

    /// The gate with the bans and flood budgets, for the transport's receive path (kept up to
    /// date by the engine: bans as they are decided, budgets on reload).
    pub fn gatekeeper(&self) -> Option<Arc<Gatekeeper>> {
        self.security.as_deref().map(|s| s.gate.clone())
    }

    /// Where a request goes as the policy sees it: here (our domains, this host) or onward.
    fn policy_target(&self, msg: &Message) -> Target {
        if msg.count(HeaderName::Route) > 0 {
            return Target::Onward;
        }
        match msg.request_uri() {
            Some(Uri::Sip(u))
                if self.is_our_domain_at(&u) || self.is_this_host(&u.host, u.host_str, u.port) =>
            {
                Target::Local
            }
            _ => Target::Onward,
        }
    }

    /// Before the transaction layer: false when the request is dropped by the policy or
    /// answered 503 (overload) here, statelessly.
    pub(crate) fn screen(&mut self, _now: Instant, msg: &Message, source: Source) -> bool {
        if self.security.is_none() || !msg.is_request() {
            return true;
        }
        self.observe_dialog_request(_now, msg);
        let method = msg.method();
        if method == Some(Method::Cancel) {
            return true;
        }
        let target = self.policy_target(msg);
        let load = u32::try_from(self.layer.transaction_count()).unwrap_or(u32::MAX);
        let Some(s) = self.security.as_deref_mut() else {
            return true;
        };
        let ip = source.remote.ip().to_canonical();
        let decision = s.policy.evaluate(
            &Request {
                zone: s.zone_name(ip),
                source: ip,
                message: msg,
                authenticated_user: None,
                target,
            },
            &s.calls,
        );
        if decision.verdict == Verdict::Drop {
            self.sec_stats.policy_drops += 1;
            let trace = decision.trace.to_string();
            self.event(Event::Policy {
                source,
                method: msg.method_str().unwrap_or("").to_owned(),
                verdict: "drop".to_owned(),
                trace,
            });
            return false;
        }
        let in_dialog = msg
            .to()
            .and_then(|t| t.ok())
            .is_some_and(|t| t.tag().is_some());
        if method != Some(Method::Ack) && !in_dialog && s.overload.update(load) {
            let retry = s.overload.retry_after().unwrap_or(5);
            self.sec_stats.overload_refusals += 1;
            self.stateless_reply(
                msg,
                source,
                503,
                "Service Unavailable",
                &[("Retry-After", retry.to_string())],
            );
            return false;
        }
        true
    }

    fn stateless_reply(
        &mut self,
        req: &Message,
        source: Source,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let tag = self.layer.new_tag();
        if let Some(resp) = crate::util::response(req, status, reason, Some(&tag), extra) {
            self.layer
                .send_stateless(Destination::from(source), resp.wire());
        }
    }

    /// Inside the server transaction: the policy's verdict, and authentication when it asks
    /// for it.
    pub(crate) fn gate(
        &mut self,
        now: Instant,
        id: ServerTxId,
        msg: &Message,
        source: Source,
    ) -> Gate {
        let target = self.policy_target(msg);
        let wall = self.wall_clock(now);
        let Some(mut s) = self.security.take() else {
            return Gate::Pass(None);
        };
        let ip = source.remote.ip().to_canonical();
        self.hide_server = !s.server_header_untrusted && !s.policy.is_trusted(ip);
        let gate = self.gate_with(&mut s, now, wall, id, msg, source, target, None);
        self.security = Some(s);
        gate
    }

    #[allow(clippy::too_many_arguments)]
    fn gate_with(
        &mut self,
        s: &mut Security,
        now: Instant,
        wall: SystemTime,
        id: ServerTxId,
        msg: &Message,
        source: Source,
        target: Target,
        authenticated: Option<String>,
    ) -> Gate {
        let ip = source.remote.ip().to_canonical();
        let zone = s.zone_name(ip).to_owned();
        let mut user: Option<String> = authenticated;
        let expired = s.calls.expire(now);
        self.sec_stats.calls_expired += expired as u64;
        // At most twice: without credentials, then as the user they proved.
        for _ in 0..2 {
            let request = Request {
                zone: &zone,
                source: ip,
                message: msg,
                authenticated_user: user.as_deref(),
                target,
            };
            let decision = s.policy.evaluate(&request, &s.calls);
            if decision.verdict == Verdict::Allow {
                self.count_call(s, now, id, &request);
            }
            self.event(Event::Policy {
                source,
                method: msg.method_str().unwrap_or("").to_owned(),
                verdict: decision.verdict.to_string(),
                trace: decision.trace.to_string(),
            });
            match decision.verdict {
                Verdict::Allow => return Gate::Pass(user),
                Verdict::AnswerLocally => {
                    if msg.method() == Some(Method::Options) {
                        self.answer_options(now, id, msg);
                    } else {
                        self.reply(now, id, msg, 200, "OK", &[]);
                    }
                    return Gate::Done;
                }
                Verdict::Drop | Verdict::Refuse { .. } => {
                    let (status, reason, retry) = match decision.verdict {
                        Verdict::Refuse {
                            status,
                            reason,
                            retry_after,
                        } => (status, reason, retry_after),
                        // A drop decided only after authentication: the transaction exists,
                        // so it gets a plain refusal rather than a 500 later.
                        _ => (403, "Forbidden".to_owned(), None),
                    };
                    self.sec_stats.policy_refusals += 1;
                    let mut extra: Vec<(&str, String)> = Vec::new();
                    match status {
                        405 => extra.push(("Allow", s.policy.allow_header(&zone))),
                        415 => {
                            if let Some(a) = s.policy.accept_header(&zone) {
                                extra.push(("Accept", a));
                            }
                        }
                        _ => {}
                    }
                    if let Some(r) = retry {
                        extra.push(("Retry-After", r.to_string()));
                    }
                    self.reject(now, id, msg, source, status, &reason, &extra);
                    return Gate::Done;
                }
                // A trunk authenticates by its address (crate::route).
                Verdict::Challenge if self.trunk_of(ip).is_some() => return Gate::Pass(None),
                Verdict::Challenge if user.is_some() => {
                    // Authenticated, and the policy still wants credentials: a policy bug,
                    // refused rather than looping.
                    self.reject(now, id, msg, source, 403, "Forbidden", &[]);
                    return Gate::Done;
                }
                Verdict::Challenge => {
                    match self.authenticate(s, now, wall, id, msg, source, target) {
                        Some(name) => user = Some(name),
                        None => return Gate::Done,
                    }
                }
            }
        }
        Gate::Done
    }

    /// Digest authentication with local credentials. The authenticated username, or `None`
    /// when the request was answered with a challenge.
    #[allow(clippy::too_many_arguments)]
    fn authenticate(
        &mut self,
        s: &mut Security,
        now: Instant,
        wall: SystemTime,
        id: ServerTxId,
        msg: &Message,
        source: Source,
        target: Target,
    ) -> Option<String> {
        let ip = source.remote.ip().to_canonical();
        let kind = if target == Target::Local || msg.method() == Some(Method::Register) {
            ChallengeKind::Www
        } else {
            ChallengeKind::Proxy
        };
        let (challenge, failure, named) = match s.digest.check(msg, kind, ip, wall) {
            Check::Challenge { challenge, failure } => (challenge, failure, None),
            Check::Lookup(pending) if s.remote_verify => {
                if s.parked.len() >= MAX_PARKED {
                    self.reply(
                        now,
                        id,
                        msg,
                        503,
                        "Service Unavailable",
                        &[("Retry-After", "5".to_owned())],
                    );
                    return None;
                }
                let ticket = s.next_ticket;
                s.next_ticket += 1;
                let request = Box::new(auth::radius::DigestRequest::from(&*pending));
                s.parked.insert(
                    ticket,
                    Parked {
                        id,
                        msg: msg.clone(),
                        source,
                        target,
                        kind,
                        pending,
                    },
                );
                self.push_output(crate::Output::AuthRequest { ticket, request });
                return None;
            }
            Check::Lookup(pending) => {
                let username = pending.username().to_owned();
                let lookup = match &s.credentials {
                    Some(c) => {
                        match c.ha1(pending.username(), pending.realm(), pending.algorithm()) {
                            Ok(h) => Lookup::Ha1(h),
                            Err(e) => {
                                self.event(Event::StoreFailed {
                                    op: "user lookup",
                                    error: e.to_string(),
                                });
                                self.reject(
                                    now,
                                    id,
                                    msg,
                                    source,
                                    500,
                                    "Server Internal Error",
                                    &[],
                                );
                                return None;
                            }
                        }
                    }
                    None => Lookup::Ha1(None),
                };
                match s.digest.finish(pending, lookup, wall) {
                    Outcome::Authenticated(identity) => {
                        if s.brute.locked_until(&identity.username, wall).is_some() {
                            // A locked-out user gets the same answer as a wrong password.
                            let c = s.digest.challenge(kind, ip, wall, false);
                            self.send_challenge(now, id, msg, &c);
                            return None;
                        }
                        s.brute.record_success(ip, Some(&identity.username));
                        self.sec_stats.auth_successes += 1;
                        return Some(identity.username);
                    }
                    Outcome::Rejected { challenge, failure } => {
                        (challenge, failure, Some(username))
                    }
                }
            }
        };
        self.auth_failed(s, now, id, msg, source, named, &failure, &challenge);
        None
    }

    /// A failed authentication: counted towards bans (when it was a guess), answered with a
    /// new challenge.
    #[allow(clippy::too_many_arguments)]
    fn auth_failed(
        &mut self,
        s: &mut Security,
        now: Instant,
        id: ServerTxId,
        msg: &Message,
        source: Source,
        named: Option<String>,
        failure: &auth::Failure,
        challenge: &auth::Challenge,
    ) {
        let ip = source.remote.ip().to_canonical();
        let wall = self.wall_clock(now);
        if failure.is_guess() {
            self.sec_stats.auth_failures += 1;
            let f = s.brute.record_failure(ip, named.as_deref(), wall);
            self.event(Event::AuthFailed {
                source,
                user: named,
                reason: format!("{failure:?}"),
            });
            if f.source_ban.is_some() {
                // The receive path drops the source from the next packet on.
                s.gate.publish_bans(s.brute.ip_bans(wall), now, wall);
            }
            for ban in [f.source_ban, f.user_lockout].into_iter().flatten() {
                if let Some(store) = &s.bans {
                    if let Err(e) = store.put_ban(&ban) {
                        self.event(Event::StoreFailed {
                            op: "put_ban",
                            error: e.to_string(),
                        });
                    }
                }
                self.event(Event::Banned(ban));
            }
        }
        self.send_challenge(now, id, msg, challenge);
    }

    /// The RADIUS verdict for `ticket` ([`crate::Output::AuthRequest`]): `Some(accepted)`, or
    /// `None` when no server answered (503, not counted as a guess). The parked request then
    /// goes on as if its credentials had been checked locally.
    pub fn handle_auth_result(&mut self, now: Instant, ticket: u64, verdict: Option<bool>) {
        let wall = self.wall_clock(now);
        let Some(mut s) = self.security.take() else {
            return;
        };
        let Some(p) = s.parked.remove(&ticket) else {
            self.security = Some(s);
            return;
        };
        let ip = p.source.remote.ip().to_canonical();
        let mut pass = None;
        match verdict {
            None => self.reply(
                now,
                p.id,
                &p.msg,
                503,
                "Service Unavailable",
                &[("Retry-After", "5".to_owned())],
            ),
            Some(ok) => {
                let username = p.pending.username().to_owned();
                match s.digest.finish(p.pending, Lookup::Verified(ok), wall) {
                    Outcome::Authenticated(identity)
                        if s.brute.locked_until(&identity.username, wall).is_none() =>
                    {
                        s.brute.record_success(ip, Some(&identity.username));
                        self.sec_stats.auth_successes += 1;
                        let gate = self.gate_with(
                            &mut s,
                            now,
                            wall,
                            p.id,
                            &p.msg,
                            p.source,
                            p.target,
                            Some(identity.username),
                        );
                        if let Gate::Pass(user) = gate {
                            pass = Some(user);
                        }
                    }
                    Outcome::Authenticated(_) => {
                        let c = s.digest.challenge(p.kind, ip, wall, false);
                        self.send_challenge(now, p.id, &p.msg, &c);
                    }
                    Outcome::Rejected { challenge, failure } => {
                        self.auth_failed(
                            &mut s,
                            now,
                            p.id,
                            &p.msg,
                            p.source,
                            Some(username),
                            &failure,
                            &challenge,
                        );
                    }
                }
            }
        }
        self.security = Some(s);
        if let Some(user) = pass {
            self.continue_request(now, p.id, p.msg, p.source, user);
        }
        self.pump(now);
    }

    fn send_challenge(&mut self, now: Instant, id: ServerTxId, msg: &Message, c: &auth::Challenge) {
        self.sec_stats.challenges += 1;
        let name = c.header_name();
        let extra: Vec<(&str, String)> = c.values.iter().map(|v| (name, v.clone())).collect();
        self.reply(now, id, msg, c.status(), c.reason(), &extra);
    }
}

/// The status code of a response's bytes (`SIP/2.0 486 ...`), without parsing the rest.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let code = bytes.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Call counting (crate::calls): where calls start, end and are refreshed.
impl Engine {
    /// An initial INVITE the policy let through is counted in the caller's zone and under the
    /// policy's user keys.
    fn count_call(&mut self, s: &mut Security, now: Instant, id: ServerTxId, req: &Request<'_>) {
        let msg = req.message;
        if msg.method() != Some(Method::Invite) {
            return;
        }
        let Some(Ok(to)) = msg.to() else { return };
        if to.tag().is_some() {
            return;
        }
        let (Some(Ok(call_id)), Some(Ok(from))) = (msg.call_id(), msg.from()) else {
            return;
        };
        s.calls.start(
            now,
            call_id.0,
            from.tag().unwrap_or(""),
            id,
            req.zone,
            policy::CallKeys::of(req),
            session_expires(msg),
        );
        self.sec_stats.calls_counted += 1;
    }

    /// Requests inside a dialog, seen before the transaction layer: a BYE ends the call's
    /// count, a re-INVITE or UPDATE refreshes its session timer.
    fn observe_dialog_request(&mut self, now: Instant, msg: &Message) {
        let Some(s) = self.security.as_deref_mut() else {
            return;
        };
        let method = msg.method();
        if !matches!(
            method,
            Some(Method::Bye) | Some(Method::Invite) | Some(Method::Update)
        ) || s.calls.len() == 0
        {
            return;
        }
        let (Some(Ok(call_id)), Some(Ok(from)), Some(Ok(to))) =
            (msg.call_id(), msg.from(), msg.to())
        else {
            return;
        };
        let Some(to_tag) = to.tag() else { return };
        if method == Some(Method::Bye) {
            s.calls.on_bye(call_id.0, [from.tag(), Some(to_tag)]);
        } else {
            s.calls.refresh(now, call_id.0, session_expires(msg));
        }
    }

    /// Every output of the transaction layer, before anyone handles it: the responses of a
    /// counted call's initial INVITE, and the end of its transaction.
    pub(crate) fn observe_calls(&mut self, now: Instant, o: &sip_transaction::Output) {
        let Some(s) = self.security.as_deref_mut() else {
            return;
        };
        if s.calls.len() == 0 {
            return;
        }
        match o {
            sip_transaction::Output::Transmit {
                bytes,
                tx: Some(sip_transaction::TxId::Server(id)),
                ..
            } => {
                if let Some(status) = status_of(bytes) {
                    s.calls.on_response(now, *id, status, || {
                        Message::parse(bytes.clone())
                            .ok()
                            .and_then(|m| session_expires(&m))
                    });
                }
            }
            sip_transaction::Output::Event(sip_transaction::TuEvent::Terminated {
                tx: sip_transaction::TxId::Server(id),
                ..
            }) => {
                s.calls.on_tx_ended(*id);
            }
            _ => {}
        }
    }

    /// The B2BUA's calls: which counted call each is, and when it ends (a BYE on leg B, a
    /// media timeout).
    pub(crate) fn observe_b2b_call(&mut self, e: &b2bua::B2buaEvent) {
        let Some(s) = self.security.as_deref_mut() else {
            return;
        };
        match e {
            b2bua::B2buaEvent::CallStarted {
                call, call_id_a, ..
            } => s.calls.b2b_started(call.0, call_id_a),
            b2bua::B2buaEvent::CallEnded { call, .. } => {
                s.calls.b2b_ended(call.0);
            }
            _ => {}
        }
    }

    /// Calls counted for the call limits now (crate::calls).
    pub fn calls_in_progress(&self) -> usize {
        self.security.as_deref().map_or(0, |s| s.calls.len())
    }
}

impl Engine {
    /// The request without the Proxy-Authorization that this element consumed (RFC 3261
    /// section 22.3: a proxy removes the credentials of its own realm). Left as it is when any
    /// value is for another realm (a proxy further on may need it).
    pub(crate) fn strip_own_credentials(&self, msg: Message) -> Message {
        let Some(s) = self.security.as_deref() else {
            return msg;
        };
        let realm = s.digest.config().realm.as_str();
        let mut any = false;
        for v in msg.typed_all::<sip_message::headers::ProxyAuthorization>() {
            match v {
                Ok(a) if a.0.realm().map(sip_message::unquote).as_deref() == Some(realm) => {
                    any = true
                }
                _ => return msg,
            }
        }
        if !any {
            return msg;
        }
        let bytes = {
            let mut ed = sip_message::Editor::new(&msg);
            if ed.remove_header(HeaderName::ProxyAuthorization).is_err() {
                return msg;
            }
            ed.finish()
        };
        Message::parse(bytes).unwrap_or(msg)
    }
}

/// A ban as a log line.
pub fn describe_ban(b: &Ban) -> String {
    let src = match &b.source {
        store::BanSource::Ip(ip) => ip.to_string(),
        store::BanSource::Key(k) => k.clone(),
    };
    format!("{src} banned (ban #{}): {}", b.count, b.reason)
}

/// A REGISTER authenticated as `user` may only bind that user's address (the To user part):
/// credentials of one extension must not take over another's calls.
pub(crate) fn may_register_as(msg: &Message, user: Option<&str>) -> bool {
    let Some(user) = user else { return true };
    if msg.method() != Some(Method::Register) {
        return true;
    }
    match msg.to().and_then(|t| t.ok()) {
        Some(to) => match &to.uri {
            Uri::Sip(u) => u.user == Some(user),
            _ => false,
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineConfig, FlowId, Listener, Output, Transport};
    use auth::digest::algorithm::{hex, response, ResponseInput};
    use auth::{Algorithm, DigestConfig, ServerSecret, StoreCredentials};
    use bytes::Bytes;
    use store::{MemoryStore, UserStore};

    const POLICY: &str = r#"
[[policy.zone]]
name = "wan"
auth.require = [{ methods = ["REGISTER", "INVITE"] }]

[[policy.rule]]
from = "*@evil.example"
action = "drop"

[policy.bruteforce]
max_failures = 3
"#;

    fn engine(now: Instant) -> (Engine, Arc<MemoryStore>) {
        engine_with(now, false)
    }

    fn engine_with(now: Instant, remote_verify: bool) -> (Engine, Arc<MemoryStore>) {
        engine_policy(now, POLICY, remote_verify)
    }

    fn engine_policy(
        now: Instant,
        policy_text: &str,
        remote_verify: bool,
    ) -> (Engine, Arc<MemoryStore>) {
        let mut cfg = EngineConfig::default();
        cfg.registrar.domains = vec!["corp.example".into()];
        cfg.server_header = Some("sipwarden".into());
        cfg.identity.listeners = vec![Listener::new(
            Transport::Udp,
            "198.51.100.1:5060".parse().unwrap(),
        )];
        let store = Arc::new(MemoryStore::new());
        store
            .put_user(&auth::user_credentials(
                "alice",
                "corp.example",
                "correct horse",
                &[Algorithm::Md5],
            ))
            .unwrap();
        let policy = policy::load::from_toml(policy_text, "t.toml", Some(&["wan"])).unwrap();
        let mut dc = DigestConfig::new("corp.example");
        dc.algorithms = vec![Algorithm::Md5];
        let sec = SecurityConfig {
            policy,
            zones: vec![("wan".into(), vec!["0.0.0.0/0".parse().unwrap()])],
            digest: DigestAuthenticator::new(dc, ServerSecret::from_bytes([7; 32]), 1),
            credentials: Some(Arc::new(StoreCredentials(store.clone()))),
            bans: Some(store.clone()),
            server_header_untrusted: false,
            max_transactions: 20,
            remote_verify,
            gatekeeper: None,
        };
        let e = Engine::new(cfg, store.clone(), now, SystemTime::now()).with_security(sec, now);
        (e, store)
    }

    fn register(cseq: u32, from_domain: &str, auth: Option<String>) -> Bytes {
        let mut m = format!(
            "REGISTER sip:corp.example SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK{cseq}\r\n\
             From: <sip:alice@{from_domain}>;tag=1\r\nTo: <sip:alice@corp.example>\r\n\
             Call-ID: reg@x\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:alice@203.0.113.9>\r\n"
        );
        if let Some(a) = auth {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        Bytes::from(m)
    }

    fn send(e: &mut Engine, now: Instant, b: Bytes) -> Vec<Message> {
        send_and_tickets(e, now, b).0
    }

    fn drain(e: &mut Engine) -> (Vec<Message>, Vec<u64>) {
        let mut out = Vec::new();
        let mut tickets = Vec::new();
        while let Some(o) = e.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => out.push(Message::parse(bytes).unwrap()),
                Output::AuthRequest { ticket, request } => {
                    assert_eq!(request.username, "alice");
                    tickets.push(ticket);
                }
                Output::Event(_) => {}
            }
        }
        (out, tickets)
    }

    fn send_and_tickets(e: &mut Engine, now: Instant, b: Bytes) -> (Vec<Message>, Vec<u64>) {
        let source = Source {
            remote: "203.0.113.9:5060".parse().unwrap(),
            flow: FlowId(1),
            reliable: false,
        };
        if !e.admit(source.remote.ip(), now) {
            return (Vec::new(), Vec::new());
        }
        e.handle_bytes(now, b, source);
        drain(e)
    }

    fn nonce_of(m: &Message) -> String {
        let v = String::from_utf8(m.header(HeaderName::WwwAuthenticate).unwrap().to_vec()).unwrap();
        let start = v.find("nonce=\"").unwrap() + 7;
        v[start..start + v[start..].find('"').unwrap()].to_owned()
    }

    fn credentials(nonce: &str, password: &str, nc: u32) -> String {
        let nc = format!("{nc:08x}");
        let ha1 = Algorithm::Md5.ha1("alice", "corp.example", password);
        let r = response(
            Algorithm::Md5,
            &ha1,
            &ResponseInput {
                method: "REGISTER",
                uri: "sip:corp.example",
                nonce,
                qop: Some(("auth", &nc, "c0ffee")),
            },
        );
        format!(
            "Digest username=\"alice\", realm=\"corp.example\", nonce=\"{nonce}\", \
             uri=\"sip:corp.example\", response=\"{}\", algorithm=MD5, qop=auth, nc={nc}, \
             cnonce=\"c0ffee\"",
            hex(&r)
        )
    }

    #[test]
    fn challenge_then_register_then_bans_a_guesser() {
        let t0 = Instant::now();
        let (mut e, store) = engine(t0);
        let r = send(&mut e, t0, register(1, "corp.example", None));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status(), Some(401));
        assert!(
            r[0].header(HeaderName::Server).is_none(),
            "Server shown to an untrusted source"
        );
        let nonce = nonce_of(&r[0]);
        let r = send(
            &mut e,
            t0,
            register(
                2,
                "corp.example",
                Some(credentials(&nonce, "correct horse", 1)),
            ),
        );
        assert_eq!(r[0].status(), Some(200), "{:?}", r[0]);
        assert_eq!(e.security_stats().auth_successes, 1);

        // Three wrong passwords ban the source (max_failures = 3); the ban is persisted and
        // later packets are not even read.
        for i in 0..3 {
            let r = send(
                &mut e,
                t0,
                register(
                    10 + i,
                    "corp.example",
                    Some(credentials(&nonce, "guess", 2 + i)),
                ),
            );
            assert_eq!(r[0].status(), Some(401));
        }
        assert_eq!(e.security_stats().auth_failures, 3);
        assert_eq!(store.list_bans().unwrap().len(), 1);
        assert!(send(&mut e, t0, register(20, "corp.example", None)).is_empty());
        assert_eq!(e.security_stats().banned_drops, 1);
    }

    #[test]
    fn dropped_requests_get_no_answer_and_no_transaction() {
        let t0 = Instant::now();
        let (mut e, _) = engine(t0);
        assert!(send(&mut e, t0, register(1, "evil.example", None)).is_empty());
        assert_eq!(e.transactions().transaction_count(), 0);
        assert_eq!(e.security_stats().policy_drops, 1);
    }

    #[test]
    fn radius_verdicts_complete_parked_requests() {
        let t0 = Instant::now();
        let (mut e, _) = engine_with(t0, true);
        let r = send(&mut e, t0, register(1, "corp.example", None));
        let nonce = nonce_of(&r[0]);
        // Accepted: the parked REGISTER goes on to the registrar.
        let (r, t) = send_and_tickets(
            &mut e,
            t0,
            register(2, "corp.example", Some(credentials(&nonce, "x", 1))),
        );
        assert!(r.is_empty(), "answered before the verdict: {r:?}");
        assert_eq!(t.len(), 1);
        e.handle_auth_result(t0, t[0], Some(true));
        assert_eq!(drain(&mut e).0[0].status(), Some(200));
        // Rejected: a new challenge, counted as a failure.
        let (_, t) = send_and_tickets(
            &mut e,
            t0,
            register(3, "corp.example", Some(credentials(&nonce, "x", 2))),
        );
        e.handle_auth_result(t0, t[0], Some(false));
        assert_eq!(drain(&mut e).0[0].status(), Some(401));
        assert_eq!(e.security_stats().auth_failures, 1);
        // No server answered: 503, not a guess.
        let (_, t) = send_and_tickets(
            &mut e,
            t0,
            register(4, "corp.example", Some(credentials(&nonce, "x", 3))),
        );
        e.handle_auth_result(t0, t[0], None);
        assert_eq!(drain(&mut e).0[0].status(), Some(503));
        assert_eq!(e.security_stats().auth_failures, 1);
        // An unknown ticket is ignored.
        e.handle_auth_result(t0, 999, Some(true));
        assert!(drain(&mut e).0.is_empty());
    }

    #[test]
    fn an_authenticated_invite_goes_onward_without_our_credentials() {
        let t0 = Instant::now();
        let (mut e, _) = engine(t0);
        let invite = |cseq: u32, auth: Option<String>| {
            let mut m = format!(
                "INVITE sip:bob@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKi{cseq}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@corp.example>;tag=1\r\nTo: <sip:bob@192.0.2.50>\r\n\
                 Call-ID: inv@x\r\nCSeq: {cseq} INVITE\r\nContact: <sip:alice@203.0.113.9>\r\n"
            );
            if let Some(a) = auth {
                m.push_str(&format!("Proxy-Authorization: {a}\r\n"));
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            Bytes::from(m)
        };
        let r = send(&mut e, t0, invite(1, None));
        let c = r.iter().find(|m| m.status() == Some(407)).expect("407");
        let v =
            String::from_utf8(c.header(HeaderName::ProxyAuthenticate).unwrap().to_vec()).unwrap();
        let start = v.find("nonce=\"").unwrap() + 7;
        let nonce = &v[start..start + v[start..].find('"').unwrap()];
        let ha1 = Algorithm::Md5.ha1("alice", "corp.example", "correct horse");
        let resp = response(
            Algorithm::Md5,
            &ha1,
            &ResponseInput {
                method: "INVITE",
                uri: "sip:bob@192.0.2.50:5060",
                nonce,
                qop: Some(("auth", "00000001", "ab")),
            },
        );
        let creds = format!(
            "Digest username=\"alice\", realm=\"corp.example\", nonce=\"{nonce}\", \
             uri=\"sip:bob@192.0.2.50:5060\", response=\"{}\", algorithm=MD5, qop=auth, \
             nc=00000001, cnonce=\"ab\"",
            hex(&resp)
        );
        let r = send(&mut e, t0, invite(2, Some(creds)));
        let fwd = r
            .iter()
            .find(|m| m.is_request())
            .unwrap_or_else(|| panic!("not forwarded: {r:?}"));
        assert!(fwd.header(HeaderName::ProxyAuthorization).is_none());
        assert_eq!(e.security_stats().auth_successes, 1);
    }

    #[test]
    fn overload_answers_new_requests_503_with_retry_after() {
        // max_transactions 20, enter at 90%: the 18th transaction in use tips it over.
        let t0 = Instant::now();
        let (mut e, _) = engine(t0);
        let options = |i: u32| {
            Bytes::from(format!(
                "OPTIONS sip:bob@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKo{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@corp.example>;tag={i}\r\nTo: <sip:bob@192.0.2.50>\r\n\
                 Call-ID: o{i}@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        let mut refused = None;
        for i in 0..30 {
            let r = send(&mut e, t0, options(i));
            if let Some(m) = r.iter().find(|m| m.status() == Some(503)) {
                refused = Some((i, m.header(HeaderName::RetryAfter).map(<[u8]>::to_vec)));
                break;
            }
        }
        let (i, retry) = refused.expect("no 503 under overload");
        assert!(i >= 8, "refused too early, at request {i}");
        assert_eq!(retry.as_deref(), Some(&b"5"[..]));
        assert_eq!(e.security_stats().overload_refusals, 1);
        // In-dialog requests still pass, so calls can end.
        let bye = Bytes::from_static(
            b"BYE sip:bob@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKbye\r\n\
              Max-Forwards: 70\r\nFrom: <sip:alice@corp.example>;tag=a\r\nTo: <sip:bob@192.0.2.50>;tag=b\r\n\
              Call-ID: call@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        );
        let r = send(&mut e, t0, bye);
        assert!(r.iter().all(|m| m.status() != Some(503)), "{r:?}");
    }

    const LIMITS: &str = r#"
[[policy.zone]]
name = "wan"
limits.max_calls = 2

[[policy.user]]
user = "carol@corp.example"
max_calls = 1

[policy.calls]
max_duration_s = 3600
"#;

    fn invite(call: &str, from: &str, session: &str) -> Bytes {
        Bytes::from(format!(
            "INVITE sip:bob@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK{call}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from}@corp.example>;tag=t{call}\r\nTo: <sip:bob@192.0.2.50>\r\n\
             Call-ID: {call}@x\r\nCSeq: 1 INVITE\r\nContact: <sip:{from}@203.0.113.9>\r\n{session}\
             Content-Length: 0\r\n\r\n"
        ))
    }

    fn bye(call: &str, from_callee: bool) -> (Bytes, Source) {
        let (from, to, via, src) = if from_callee {
            (
                "<sip:bob@192.0.2.50>;tag=b".to_owned(),
                format!("<sip:x@corp.example>;tag=t{call}"),
                "192.0.2.50",
                "192.0.2.50:5060",
            )
        } else {
            (
                format!("<sip:x@corp.example>;tag=t{call}"),
                "<sip:bob@192.0.2.50>;tag=b".to_owned(),
                "203.0.113.9",
                "203.0.113.9:5060",
            )
        };
        let b = Bytes::from(format!(
            "BYE sip:bob@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKbye{call}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call}@x\r\nCSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        ));
        let source = Source {
            remote: src.parse().unwrap(),
            flow: FlowId(1),
            reliable: false,
        };
        (b, source)
    }

    /// What the caller got for an INVITE: forwarded (None), or the status it was answered.
    fn outcome(out: &[Message]) -> Option<u16> {
        if out.iter().any(|m| m.is_request()) {
            return None;
        }
        out.iter().filter_map(|m| m.status()).find(|s| *s >= 300)
    }

    #[derive(Debug)]
    enum Act {
        /// An INVITE (Call-ID, From user, Session-Expires) and what it must get: forwarded
        /// (None) or refused with this status.
        Invite(&'static str, &'static str, Option<u32>, Option<u16>),
        /// The callee answers the forwarded INVITE of this call.
        Answer(&'static str, u16),
        /// A BYE in this call, from the callee (true) or the caller.
        Bye(&'static str, bool),
        /// A CANCEL of this call from the caller.
        Cancel(&'static str),
        /// Time passes (seconds); the engine's timers run.
        Wait(u64),
        /// Calls counted now.
        Count(usize),
    }

    #[test]
    fn call_limits_count_calls_in_progress() {
        use Act::*;
        let cases: Vec<(&str, Vec<Act>)> = vec![
            (
                "the zone's third call waits for one to end",
                vec![
                    Invite("1", "alice", None, None),
                    Invite("2", "dave", None, None),
                    Invite("3", "erin", None, Some(503)),
                    Count(2),
                    Answer("1", 486),
                    Count(1),
                    Invite("4", "erin", None, None),
                    Invite("5", "erin", None, Some(503)),
                ],
            ),
            (
                "answered calls count until BYE, from either side",
                vec![
                    Invite("1", "alice", None, None),
                    Answer("1", 200),
                    Invite("2", "dave", None, None),
                    Answer("2", 200),
                    Invite("3", "erin", None, Some(503)),
                    Bye("1", false),
                    Count(1),
                    Invite("4", "erin", None, None),
                    Bye("2", true),
                    Count(1),
                    Bye("4", false),
                    Count(0),
                ],
            ),
            (
                "a cancelled call stops counting",
                vec![
                    Invite("1", "alice", None, None),
                    Invite("2", "dave", None, None),
                    Cancel("1"),
                    // The 487 of the cancelled branch ends it.
                    Count(2),
                    Answer("1", 487),
                    Count(1),
                    Invite("3", "erin", None, None),
                ],
            ),
            (
                "a lost BYE: the call stops counting after max_duration_s",
                vec![
                    Invite("1", "alice", None, None),
                    Answer("1", 200),
                    Invite("2", "dave", None, None),
                    Answer("2", 200),
                    Wait(3599),
                    Invite("3", "erin", None, Some(503)),
                    Wait(1),
                    Invite("4", "erin", None, None),
                    Count(1),
                ],
            ),
            (
                "a session timer ends the count sooner",
                vec![
                    Invite("1", "alice", Some(90), None),
                    Answer("1", 200),
                    Invite("2", "dave", None, None),
                    Answer("2", 200),
                    Wait(90 + 31),
                    Invite("3", "erin", None, Some(503)),
                    Wait(1),
                    Invite("4", "erin", None, None),
                ],
            ),
            (
                "a user's own limit: 403 for the caller",
                vec![
                    Invite("1", "carol", None, None),
                    Invite("2", "carol", None, Some(403)),
                    Count(1),
                    Answer("1", 603),
                    Invite("3", "carol", None, None),
                ],
            ),
        ];
        for (name, acts) in cases {
            let t0 = Instant::now();
            let (mut e, _) = engine_policy(t0, LIMITS, false);
            let mut now = t0;
            let mut forwarded: std::collections::HashMap<&str, Message> = Default::default();
            for act in acts {
                let step = format!("{name}: {act:?}");
                match act {
                    Invite(call, from, se, want) => {
                        let se = se
                            .map(|s| format!("Session-Expires: {s}\r\n"))
                            .unwrap_or_default();
                        let out = send(&mut e, now, invite(call, from, &se));
                        assert_eq!(outcome(&out), want, "{step}: {out:?}");
                        if let Some(f) = out.into_iter().find(|m| m.is_request()) {
                            forwarded.insert(call, f);
                        }
                    }
                    Answer(call, status) => {
                        let f = &forwarded[call];
                        let resp =
                            crate::util::response(f, status, "Answer", Some("b"), &[]).unwrap();
                        let source = Source {
                            remote: "192.0.2.50:5060".parse().unwrap(),
                            flow: FlowId(1),
                            reliable: false,
                        };
                        e.handle_bytes(now, resp.wire(), source);
                        let out = drain(&mut e).0;
                        assert!(
                            out.iter().any(|m| m.status() == Some(status)),
                            "{step}: not relayed: {out:?}"
                        );
                    }
                    Bye(call, from_callee) => {
                        let (b, source) = bye(call, from_callee);
                        e.handle_bytes(now, b, source);
                        drain(&mut e);
                    }
                    Cancel(call) => {
                        let c = String::from_utf8(invite(call, "x", "").to_vec())
                            .unwrap()
                            .replace("INVITE sip:", "CANCEL sip:")
                            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
                        let out = send(&mut e, now, Bytes::from(c));
                        assert!(out.iter().any(|m| m.status() == Some(200)), "{step}");
                    }
                    Wait(secs) => {
                        now += std::time::Duration::from_secs(secs);
                        e.handle_timeout(now);
                        drain(&mut e);
                    }
                    Count(n) => assert_eq!(e.calls_in_progress(), n, "{step}"),
                }
            }
        }
    }

    #[test]
    fn the_refusal_names_the_limit_in_the_trace() {
        let t0 = Instant::now();
        let (mut e, _) = engine_policy(t0, LIMITS, false);
        for call in ["1", "2"] {
            send(&mut e, t0, invite(call, "alice", ""));
        }
        let source = Source {
            remote: "203.0.113.9:5060".parse().unwrap(),
            flow: FlowId(1),
            reliable: false,
        };
        e.handle_bytes(t0, invite("3", "alice", ""), source);
        let mut trace = None;
        while let Some(o) = e.poll_output() {
            if let Output::Event(Event::Policy {
                verdict, trace: t, ..
            }) = o
            {
                trace = Some((verdict, t));
            }
        }
        let (verdict, trace) = trace.expect("a policy event");
        assert_eq!(verdict, "refuse 503 Service Unavailable");
        assert!(
            trace.contains(
                "DECIDE policy.zone[wan].limits.max_calls: 2 calls in progress, the most is 2"
            ),
            "{trace}"
        );
        assert_eq!(e.security_stats().calls_counted, 2);
    }
}
