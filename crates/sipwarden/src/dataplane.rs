//! The data plane: the transport's listeners and the engine task.
//!
//! One tokio task owns the [`Engine`] (sans-IO). It waits for whichever comes first: a message
//! from the transport's [`Incoming`] channel, the engine's next deadline
//! (`engine.poll_timeout()`, re-armed after every input), a control message (reload) or the
//! stop signal; after every input it drains `poll_output()` completely, handing each transmit
//! to the [`TransportHandle`] and logging each event.
//!
//! Store writes: the engine calls the store synchronously (`RegistrationStore::apply` before
//! the 200 of a REGISTER is queued), so each redb commit (an fsync, ~0.2 ms on a fast disk)
//! runs inside this task and holds one runtime worker meanwhile. Fine for the registration
//! rates of an office; a later step can move commits off the task if the engine grows an
//! asynchronous store interface.
//!
//! Zones: a message whose source address belongs to no zone is dropped here, before the
//! engine sees it (docs/CONFIG.md). The transport itself still answers requests that do not
//! parse with a stateless 400, whatever their source.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use call_engine::{Engine, EngineConfig, Event, Output};
use config::{Config, ZoneConfig};
use sip_transport::{
    FlowId, Incoming, LogLimiter, Outgoing, SendError, SendFailure, Transport, TransportHandle,
};
use store::RedbStore;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::settings::{self, Bound};

/// How often the engine's wall clock is resynchronised with the system's (after NTP steps).
const WALL_CLOCK_RESYNC: Duration = Duration::from_secs(60);

/// How long queued transmits get to leave before the sockets close at shutdown.
const SEND_FLUSH: Duration = Duration::from_millis(50);

/// What a reload changes in the running engine task.
enum Control {
    Reload {
        zones: Vec<ZoneConfig>,
        engine: Box<EngineConfig>,
        /// The reloaded `[policy]` and `[auth]` digest settings.
        security: Option<Box<(policy::Policy, auth::DigestConfig)>>,
    },
}

pub struct Dataplane {
    transport: TransportHandle,
    control: mpsc::Sender<Control>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<String>>,
    /// The media relay of calls between zones (crate::media), stopped after the engine task.
    media: Option<crate::media::MediaPlane>,
    /// What the engine's settings are built from besides the file (kept for reloads).
    bound: Bound,
    local_ips: Vec<IpAddr>,
    seed: u64,
    /// TLS upkeep: certificate reload on SIGHUP, the daily expiry check.
    tls_tasks: Vec<JoinHandle<()>>,
}

/// How often the certificates' end dates are checked and logged while running.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(86_400);

/// Logs the certificates that end soon (warning) or have ended (error).
fn log_expiry(config: &Config) {
    for l in crate::check_cmd::certificate_report(config, SystemTime::now(), false) {
        match l.level {
            crate::check_cmd::Level::Info => debug!("certificate {}", l.text),
            crate::check_cmd::Level::Warn => warn!("certificate {}", l.text),
            crate::check_cmd::Level::Error => error!("certificate {}", l.text),
        }
    }
}

/// SIGHUP: the TLS files are read again (whatever the configuration file's reload decides;
/// new handshakes use them, established connections keep theirs). Daily: expiry warnings.
fn spawn_tls_tasks(config: &Config, transport: &TransportHandle) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if config.tls.certificate_files().is_empty() {
        return tasks;
    }
    let t = transport.clone();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => tasks.push(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let errors = t.reload_tls();
                if errors.is_empty() {
                    info!("SIGHUP: TLS certificates reloaded; new handshakes use them");
                }
                for e in errors {
                    error!("SIGHUP: TLS reload failed, the previous certificates stay in use: {e}");
                }
            }
        })),
        Err(e) => warn!("no SIGHUP handler for TLS reloads ({e}); files are still polled"),
    }
    let config = config.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_CHECK_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            log_expiry(&config);
        }
    }));
    tasks
}

/// Whether a reloadable field (as named by `config::ReloadDiff`) is applied to the running
/// process: the log level, the zones' networks, the `Server` header, and every setting of the
/// engine (transaction timers and limits for new transactions, registrar, proxy). Nothing is
/// dropped: transactions in progress keep their timers, calls in progress continue.
pub fn applies_live(field: &str) -> bool {
    field == "policy"
        || field == "auth"
        || field == "general.log_level"
        || field == "general.server_header"
        || (field.starts_with("zone.") && field.ends_with(".networks"))
        || field.starts_with("transaction.")
        || field.starts_with("registrar.")
        || field.starts_with("proxy.")
}

/// `running` with the settings that [`applies_live`] taken from `reloaded`.
pub fn live_part(running: &Config, reloaded: &Config) -> Config {
    let mut c = running.clone();
    c.general.log_level = reloaded.general.log_level;
    c.general.server_header = reloaded.general.server_header.clone();
    c.zone = reloaded.zone.clone();
    c.transaction = reloaded.transaction.clone();
    c.registrar = reloaded.registrar.clone();
    c.proxy = reloaded.proxy.clone();
    c.policy = reloaded.policy.clone();
    let backend = (
        c.auth.backend,
        c.auth.radius.clone(),
        c.auth.nonce_secret_file.clone(),
    );
    c.auth = reloaded.auth.clone();
    (c.auth.backend, c.auth.radius, c.auth.nonce_secret_file) = backend;
    c
}

impl Dataplane {
    /// Binds the listeners and starts the engine task.
    pub async fn start(config: &Config, store: Arc<RedbStore>) -> Result<Dataplane, String> {
        let mut tc = settings::transport(config);
        let warnings =
            settings::add_tls(config, &mut tc).map_err(|e| format!("TLS not started: {e}"))?;
        for w in warnings {
            warn!("{w}");
        }
        if !tc.tls.is_empty() {
            log_expiry(config);
            info!(
                "TLS 1.2 and 1.3; cipher suites: {}",
                sip_transport::tls::cipher_suite_names().join(", ")
            );
        }
        let seed = settings::random_seed();
        // Bans and flood budgets are checked by the transport on every datagram and
        // connection before parsing; the engine publishes its bans to the same gate.
        let gate = crate::protection::gatekeeper(config, seed)?;
        tc.admission = sip_transport::AdmissionHook::new(Arc::new(
            crate::protection::GateAdmission(gate.clone()),
        ));
        let (transport, incoming) = Transport::start(tc)
            .await
            .map_err(|e| bind_error(config, &e))?;
        let bound = Bound {
            udp: transport.udp_addrs(),
            tcp: transport.tcp_addrs(),
            tls: transport.tls_addrs(),
        };
        let tls_tasks = spawn_tls_tasks(config, &transport);
        for (proto, addrs) in [
            ("udp", &bound.udp),
            ("tcp", &bound.tcp),
            ("tls", &bound.tls),
        ] {
            let zones = config
                .listen
                .iter()
                .filter(|l| l.transport.as_str() == proto)
                .map(|l| l.zone.as_str());
            for (addr, zone) in addrs.iter().zip(zones) {
                info!("listening on {proto} {addr} (zone {zone})");
            }
        }
        let local_ips = local_addresses(&bound);
        let cfg = settings::engine(config, &bound, &local_ips, seed);
        debug!(
            "engine identity: {:?}; registrar domains: {:?}",
            cfg.identity.listeners, cfg.registrar.domains
        );
        let protection = crate::protection::build(config, &store, seed, gate)?;
        let radius = crate::protection::start_radius(config).await?;
        let (auth_tx, auth_rx) = mpsc::channel(call_engine::MAX_PARKED);
        let engine = Engine::new(cfg, store, Instant::now(), SystemTime::now())
            .with_security(protection, Instant::now());
        // Calls between zones: B2BUA and media relay (crate::media).
        let (engine, media_rx, media) = match crate::media::start(config, &bound)? {
            Some(c) => (
                engine
                    .with_b2bua(c.zones, c.b2bua)
                    .with_edge_routes(crate::media::edge_routes(config)),
                Some(c.timeouts),
                Some(c.plane),
            ),
            None => (engine, None, None),
        };
        let sources = crate::media::SourceSelect::new(config, &bound);
        let (control, control_rx) = mpsc::channel(8);
        let (stop, stop_rx) = watch::channel(false);
        let task = EngineTask {
            engine,
            transport: transport.clone(),
            zones: config.zone.clone(),
            last_wall_sync: Instant::now(),
            overload_log: LogLimiter::new(OVERLOAD_LOG_EVERY),
            radius,
            auth_tx,
            sources,
            plain_log: LogLimiter::new(OVERLOAD_LOG_EVERY),
        };
        let failures = transport
            .take_send_failures()
            .ok_or_else(|| "the transport's failure channel is taken".to_owned())?;
        let closed = transport
            .take_closed_flows()
            .ok_or_else(|| "the transport's closed-flow channel is taken".to_owned())?;
        let task = tokio::spawn(task.run(
            incoming,
            (failures, closed),
            control_rx,
            stop_rx,
            auth_rx,
            media_rx,
        ));
        Ok(Dataplane {
            transport,
            control,
            stop,
            task: Some(task),
            media,
            bound,
            local_ips,
            seed,
            tls_tasks,
        })
    }

    /// Applies a reloaded configuration's live settings (see [`applies_live`]). Returns false
    /// when the engine task could not take them (its control queue is full or it is gone).
    pub fn reconfigure(&self, config: &Config) -> bool {
        let engine = settings::engine(config, &self.bound, &self.local_ips, self.seed);
        let security = match crate::protection::policy(config) {
            Ok(p) => Some(Box::new((p, crate::protection::digest_config(config)))),
            Err(e) => {
                warn!("the reloaded policy is not applied: {e}");
                None
            }
        };
        let sent = self.control.try_send(Control::Reload {
            zones: config.zone.clone(),
            engine: Box::new(engine),
            security,
        });
        if sent.is_err() {
            warn!("the engine task is busy or gone; the reloaded settings are not applied");
        }
        sent.is_ok()
    }

    /// Resolves, with the reason, if the engine task ends by itself (it should not).
    pub async fn failed(&mut self) -> String {
        match &mut self.task {
            Some(task) => {
                let why = match task.await {
                    Ok(why) => why,
                    Err(e) => format!("the engine task failed: {e}"),
                };
                self.task = None;
                why
            }
            None => std::future::pending().await,
        }
    }

    /// Stops the engine task, lets queued transmits leave, closes the listeners; waits at most
    /// `grace` for the engine task.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop.send_replace(true);
        for t in self.tls_tasks.drain(..) {
            t.abort();
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            match tokio::time::timeout(grace, task).await {
                Ok(Ok(why)) => debug!("engine task: {why}"),
                Ok(Err(e)) => warn!("the engine task failed: {e}"),
                Err(_) => {
                    warn!("the engine task did not stop within {grace:?}; abandoned");
                    abort.abort();
                }
            }
        }
        if let Some(m) = self.media.take() {
            m.shutdown();
        }
        tokio::time::sleep(SEND_FLUSH).await;
        self.transport.shutdown();
        let s = self.transport.stats();
        info!(
            "listeners closed: {} datagrams and {} TCP messages received, {} and {} sent",
            s.udp_received, s.tcp_received, s.udp_sent, s.tcp_sent
        );
    }
}

fn bind_error(config: &Config, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need root (or CAP_NET_BIND_SERVICE): run as root, or change \
             the [[listen]] addresses in a configuration file (--config)"
        }
        std::io::ErrorKind::AddrInUse => "; another process is using one of these ports",
        std::io::ErrorKind::AddrNotAvailable => {
            "; an address of [[listen]] is not one of this machine's"
        }
        _ => "",
    };
    format!(
        "cannot listen on {}: {e}{hint}",
        crate::check_cmd::listeners(config)
    )
}

/// The addresses a wildcard listener receives on: every interface address (none needed when
/// no listener is a wildcard).
fn local_addresses(bound: &Bound) -> Vec<IpAddr> {
    let wildcard = bound
        .udp
        .iter()
        .chain(&bound.tcp)
        .any(|a| a.ip().is_unspecified());
    if !wildcard {
        return Vec::new();
    }
    match nix::ifaddrs::getifaddrs() {
        Ok(ifs) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for i in ifs {
                let Some(addr) = i.address else { continue };
                let ip = if let Some(v4) = addr.as_sockaddr_in() {
                    IpAddr::V4(v4.ip())
                } else if let Some(v6) = addr.as_sockaddr_in6() {
                    let ip = v6.ip();
                    // Link-local addresses need a scope, which a SIP URI cannot carry.
                    if ip.segments()[0] & 0xffc0 == 0xfe80 {
                        continue;
                    }
                    IpAddr::V6(ip)
                } else {
                    continue;
                };
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            ips
        }
        Err(e) => {
            warn!(
                "cannot list the interface addresses ({e}): requests to this machine's \
                 addresses through a wildcard listener are not recognised as ours"
            );
            Vec::new()
        }
    }
}

struct EngineTask {
    engine: Engine,
    transport: TransportHandle,
    zones: Vec<ZoneConfig>,
    last_wall_sync: Instant,
    overload_log: LogLimiter,
    /// The RADIUS client (auth.backend = "radius").
    radius: Option<auth::radius::RadiusHandle>,
    /// Where RADIUS verdicts come back: (ticket, accepted; None when no server answered).
    auth_tx: mpsc::Sender<(u64, Option<bool>)>,
    sources: crate::media::SourceSelect,
    /// Messages refused because they would have left in plain text where TLS is required.
    plain_log: LogLimiter,
}

/// How often, at most, the refusals of a full transaction table are logged.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

impl EngineTask {
    /// Runs until the stop signal, or until the transport's channel ends; returns why.
    async fn run(
        mut self,
        mut incoming: mpsc::Receiver<Incoming>,
        (mut failures, mut closed): (mpsc::Receiver<SendFailure>, mpsc::Receiver<FlowId>),
        mut control: mpsc::Receiver<Control>,
        mut stop: watch::Receiver<bool>,
        mut auth_results: mpsc::Receiver<(u64, Option<bool>)>,
        mut media: Option<mpsc::Receiver<u64>>,
    ) -> String {
        // One timer for the task's life, moved only when the engine's deadline changes: most
        // messages leave it where it was, and a new timer per message would enter and leave
        // the runtime's timer wheel each time.
        let mut armed = self.engine.poll_timeout();
        let timer = tokio::time::sleep_until(armed.unwrap_or_else(far_future).into());
        tokio::pin!(timer);
        loop {
            let media_timeout = async {
                match media.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            };
            let deadline = self.engine.poll_timeout();
            if deadline != armed {
                timer
                    .as_mut()
                    .reset(deadline.unwrap_or_else(far_future).into());
                armed = deadline;
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => {
                    let p = self.engine.security_stats();
                    let t = self.transport.stats();
                    info!(
                        "protection: {} packets or connections from banned sources, {} over a \
                         flood budget and {} from no zone dropped unread; policy: {} dropped, {} \
                         refused; authentication: {} challenges, {} failures, {} successes; {} \
                         overload 503s",
                        t.dropped(sip_transport::DropReason::Banned),
                        t.dropped(sip_transport::DropReason::RateLimited),
                        t.dropped(sip_transport::DropReason::NoZone),
                        p.policy_drops, p.policy_refusals,
                        p.challenges, p.auth_failures, p.auth_successes, p.overload_refusals
                    );
                    return "stopped".to_owned();
                }
                Some(c) = control.recv() => match c {
                    Control::Reload { zones, engine, security } => {
                        self.engine.set_zone_networks(crate::media::zone_networks(&zones));
                        self.engine.set_security_zones(
                            zones.iter().map(|z| (z.name.clone(), z.networks.clone())).collect(),
                        );
                        self.zones = zones;
                        self.engine.reconfigure(*engine);
                        if let Some(s) = security {
                            let (p, d) = *s;
                            self.engine.reconfigure_security(p, d, Instant::now());
                        }
                        debug!("engine reconfigured: {:?}", self.engine.config().registrar);
                        continue;
                    }
                },
                Some(f) = failures.recv() => {
                    // A send that failed after it was queued (a TCP connect refused or timed
                    // out, a write error): a transport error for its transaction (RFC 3261
                    // 8.1.3.1, 17.1.4), which the proxy turns into a 503 branch (16.9).
                    debug!(remote = %f.remote, tx = %f.tx, "{} {}: reported to the transaction", f.protocol, f.kind);
                    self.engine.handle_transport_error(Instant::now(), f.tx);
                }
                Some(flow) = closed.recv() => {
                    // A TCP/TLS connection ended: NATed registrations reached over it are
                    // dead now (RFC 5626 3.5.2), not at their next keep-alive.
                    self.engine.flow_closed(Instant::now(), flow);
                }
                Some((ticket, verdict)) = auth_results.recv() => {
                    self.engine.handle_auth_result(Instant::now(), ticket, verdict);
                }
                Some(id) = media_timeout => self.engine.media_timeout(Instant::now(), id),
                msg = incoming.recv() => match msg {
                    Some(m) => self.on_incoming(m),
                    None => return "the transport stopped delivering messages".to_owned(),
                },
                _ = &mut timer, if armed.is_some() => {
                    // Handled: the engine's next deadline is a new one (or none).
                    armed = None;
                    let now = Instant::now();
                    self.sync_wall_clock(now);
                    self.engine.handle_timeout(now);
                }
            }
            self.drain();
        }
    }

    fn on_incoming(&mut self, m: Incoming) {
        // Sources in no zone, banned sources and sources over their zone's flood budget were
        // dropped by the transport before parsing (crate::protection::GateAdmission).
        let now = Instant::now();
        let source = m.source();
        self.engine.handle_incoming(now, m.msg, source);
    }

    /// Verifies digest credentials with RADIUS on a task of its own; the verdict comes back
    /// through `auth_tx`. The engine bounds how many wait at once (MAX_PARKED).
    fn verify(&self, ticket: u64, request: auth::radius::DigestRequest) {
        let back = self.auth_tx.clone();
        let Some(radius) = self.radius.clone() else {
            let _ = back.try_send((ticket, None));
            return;
        };
        tokio::spawn(async move {
            let verdict = match radius.verify(request).await {
                Ok(auth::radius::Verdict::Accept) => Some(true),
                Ok(auth::radius::Verdict::Reject) => Some(false),
                Err(e) => {
                    warn!("RADIUS: {e}");
                    None
                }
            };
            let _ = back.send((ticket, verdict)).await;
        });
    }

    fn sync_wall_clock(&mut self, now: Instant) {
        if now.duration_since(self.last_wall_sync) >= WALL_CLOCK_RESYNC {
            self.engine.set_wall_clock(now, SystemTime::now());
            self.last_wall_sync = now;
        }
    }

    /// Hands every pending output to the transport or the log.
    fn drain(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Transmit { dest, bytes, tx } => {
                    let mut out = Outgoing::new(bytes, dest).with_tx(tx);
                    if dest.flow.is_none() {
                        out.local = self.sources.local_for(&self.zones, dest.remote);
                    }
                    if let Err(e) = self.transport.send(out) {
                        if e == SendError::TlsRequired {
                            if let Some(n) = self.plain_log.hit(Instant::now()) {
                                warn!(
                                    remote = %dest.remote,
                                    "refused to send in plain text: a sips: URI or a zone with \
                                     tls.zone.*.require_tls; {n} message(s) since the last such line"
                                );
                            }
                        }
                        debug!(remote = %dest.remote, "send failed: {e}");
                        if let Some(tx) = tx {
                            self.engine.handle_transport_error(Instant::now(), tx);
                        }
                    }
                }
                Output::Event(Event::Overloaded { source, replied }) => {
                    if let Some(n) = self.overload_log.hit(Instant::now()) {
                        warn!(
                            source = %source.remote,
                            "overload: the transaction table is full (transaction.max_transactions); \
                             {n} new request(s) refused{} since the last such line",
                            if replied { " with 503" } else { "" }
                        );
                    }
                }
                Output::Event(ev) => log_event(ev),
                Output::AuthRequest { ticket, request } => self.verify(ticket, *request),
            }
        }
    }
}

/// A deadline that never comes, for the engine task's timer while the engine has none.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn log_event(ev: Event) {
    match ev {
        Event::Registered {
            aor,
            bindings,
            source,
        } => debug!(source = %source.remote, "registered {aor}: {bindings} bindings"),
        Event::RegisterRejected {
            aor,
            status,
            reason,
            source,
        } => debug!(
            source = %source.remote,
            "REGISTER {} refused: {status} {reason}",
            aor.as_deref().unwrap_or("-")
        ),
        Event::Rejected {
            method,
            status,
            reason,
            source,
        } => debug!(source = %source.remote, "{method} answered {status} {reason}"),
        Event::StoreFailed { op, error } => error!("store {op} failed: {error}"),
        Event::Policy {
            source,
            method,
            verdict,
            trace,
        } => debug!(source = %source.remote, "policy: {method} -> {verdict}\n{trace}"),
        Event::AuthFailed {
            source,
            user,
            reason,
        } => debug!(
            source = %source.remote,
            "authentication failed for {}: {reason}",
            user.as_deref().unwrap_or("-")
        ),
        Event::Banned(ban) => warn!("{}", call_engine::describe_ban(&ban)),
        Event::Purged { bindings } => debug!("{bindings} lapsed bindings purged"),
        Event::Dropped { reason, source } => match source {
            Some(s) => debug!(source = %s.remote, "dropped: {reason}"),
            None => debug!("dropped: {reason}"),
        },
        Event::Call(c) => log_call(c),
        // Registration relay: what the upstream registrar (the PBX) said, and bindings whose
        // NAT flow stopped answering keep-alives (an administrator's first questions when a
        // remote user is unreachable).
        Event::UpstreamRegister {
            aor,
            status,
            contacts,
        } => {
            if (200..300).contains(&status) {
                info!("upstream registration of {aor}: {status}, {contacts} contact(s)");
            } else {
                warn!("upstream registration of {aor} refused: {status}");
            }
        }
        Event::DeadFlow { aor, contact } => {
            warn!("{aor}: {contact} stopped answering keep-alives; binding removed")
        }
        other => debug!("{other:?}"),
    }
}

fn log_call(e: call_engine::b2bua::B2buaEvent) {
    use call_engine::b2bua::B2buaEvent as E;
    match e {
        E::CallStarted {
            call,
            zone_a,
            zone_b,
            from,
            to,
            call_id_a,
            call_id_b,
            ..
        } => info!(
            "call {}: {from} -> {to}, zone {zone_a} -> {zone_b}, Call-IDs {call_id_a} / {call_id_b}",
            call.0
        ),
        E::CallAnswered { call, .. } => info!("call {}: answered", call.0),
        E::CallEnded {
            call,
            cause,
            status,
            ..
        } => info!(
            "call {}: ended ({cause:?}{})",
            call.0,
            status.map(|s| format!(", status {s}")).unwrap_or_default()
        ),
        E::Dropped { call, reason } => {
            debug!("call {}: {reason}", call.map_or(0, |c| c.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reloadable_field_applies_live() {
        // Every field the configuration calls reloadable is applied by the running process
        // (docs/CONFIG.md's reload column): change each section and check the diff.
        let old = Config::default();
        let mut new = old.clone();
        new.general.log_level = config::LogLevel::Debug;
        new.general.server_header = Some("x".into());
        new.transaction.t1_ms = 250;
        new.transaction.t2_ms = 5000;
        new.transaction.t4_ms = 4000;
        new.transaction.max_transactions = 7;
        new.transaction.trying_after_ms = 100;
        new.registrar.enabled = false;
        new.registrar.domains = vec!["x.example".into()];
        new.registrar.min_expires = 30;
        new.registrar.max_expires = 600;
        new.registrar.default_expires = 300;
        new.registrar.contact_routing = config::ContactRouting::Contact;
        new.proxy.record_route = false;
        new.proxy.max_forks = 2;
        new.proxy.invite_timeout_s = 10;
        new.zone[0].networks.truncate(1);
        let d = Config::diff_reloadable(&old, &new);
        assert_eq!(d.reloadable.len(), 17, "{:?}", d.reloadable);
        for f in &d.reloadable {
            assert!(applies_live(f), "{f} is reloadable but not applied");
        }
        assert!(!applies_live("zone.dmz"));
        assert!(!applies_live("transport.udp_mtu"));
        assert!(!applies_live("listen"));
        let live = live_part(&old, &old.with_reloadable_from(&new));
        assert!(Config::diff_reloadable(&live, &new).reloadable.is_empty());
    }
}
