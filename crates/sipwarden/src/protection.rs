//! The `[policy]` and `[auth]` sections as the engine's protection (`call_engine::SecurityConfig`):
//! the compiled policy, the zones' networks, the digest authenticator with its nonce secret,
//! and the embedded store as credential source and ban store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth::radius::{DigestDialect, RadiusConfig, RadiusHandle};

use auth::{Algorithm, DigestAuthenticator, DigestConfig, ServerSecret, StoreCredentials};
use call_engine::SecurityConfig;
use config::{AuthBackend, Config, RadiusDialect};
use policy::{Admit, Gatekeeper, Policy};
use sip_transport::{Admission, Arrival, Refusal};
use store::RedbStore;

/// The digest settings of `[auth]`.
pub fn digest_config(config: &Config) -> DigestConfig {
    let a = &config.auth;
    let mut d = DigestConfig::new(a.realm.clone());
    let algs: Vec<Algorithm> = a
        .algorithms
        .iter()
        .filter_map(|n| Algorithm::from_name(n))
        .collect();
    if !algs.is_empty() {
        d.algorithms = algs;
    }
    d.nonce_lifetime = std::time::Duration::from_secs(a.nonce_lifetime_secs.into());
    d.bind_nonce_to_source = a.bind_nonce_to_source;
    d.check_uri = a.check_uri;
    d.nc_table_capacity = usize::try_from(a.nc_table_size).unwrap_or(65_536);
    d
}

/// The compiled `[policy]` (already checked when the configuration was loaded).
pub fn policy(config: &Config) -> Result<Policy, String> {
    let zones: Vec<&str> = config.zone.iter().map(|z| z.name.as_str()).collect();
    // A trunk's sources are trusted: never banned or rate-limited (it carries many callers).
    let mut pc = config.policy.clone();
    for t in &config.trunk {
        pc.trusted
            .extend(t.source_networks().iter().map(ToString::to_string));
    }
    Policy::compile(&pc, Some(&zones)).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn secret(config: &Config) -> Result<ServerSecret, String> {
    match &config.auth.nonce_secret_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("auth.nonce_secret_file {}: {e}", path.display()))?;
            if bytes.len() < 32 {
                return Err(format!(
                    "auth.nonce_secret_file {}: needs at least 32 bytes, has {}",
                    path.display(),
                    bytes.len()
                ));
            }
            // Any length above 32 counts: fold it into 32 bytes.
            let mut key = [0u8; 32];
            for (i, b) in bytes.iter().enumerate() {
                if let Some(k) = key.get_mut(i % 32) {
                    *k ^= b.rotate_left(u32::try_from(i / 32 % 8).unwrap_or(0));
                }
            }
            Ok(ServerSecret::from_bytes(key))
        }
        None => ServerSecret::random().map_err(|e| format!("no random nonce secret: {e}")),
    }
}

/// The zones in order, with their networks, as the policy and the gate see them.
pub fn zones(config: &Config) -> Vec<(String, Vec<config::IpNet>)> {
    config
        .zone
        .iter()
        .map(|z| (z.name.clone(), z.networks.clone()))
        .collect()
}

/// The receive path's gate (bans and flood budgets): installed in the transport
/// ([`GateAdmission`]) and handed to the engine, which publishes its bans to it.
pub fn gatekeeper(config: &Config, seed: u64) -> Result<Arc<Gatekeeper>, String> {
    Ok(Arc::new(Gatekeeper::new(
        &policy(config)?,
        &zones(config),
        call_engine::FLOOD_CAPACITY,
        seed,
        std::time::Instant::now(),
    )))
}

/// The gate as the transport's admission check: the zone of a packet is the zone of its
/// source address (as the policy sees it), whatever listener it came to.
pub struct GateAdmission(pub Arc<Gatekeeper>);

impl Admission for GateAdmission {
    #[inline]
    fn admit(&self, a: &Arrival, now: std::time::Instant) -> sip_transport::Admit {
        match self.0.check(a.source.ip(), now) {
            Admit::Pass => sip_transport::Admit::Accept,
            Admit::Banned => sip_transport::Admit::Drop(Refusal::Banned),
            Admit::Limited => sip_transport::Admit::Drop(Refusal::RateLimited),
            Admit::NoZone => sip_transport::Admit::Drop(Refusal::NoZone),
        }
    }
}

/// Everything the engine's protection needs; `gate` is the one the transport checks.
pub fn build(
    config: &Config,
    store: &Arc<RedbStore>,
    seed: u64,
    gate: Arc<Gatekeeper>,
) -> Result<SecurityConfig, String> {
    let digest = DigestAuthenticator::new(digest_config(config), secret(config)?, seed);
    Ok(SecurityConfig {
        policy: policy(config)?,
        zones: zones(config),
        digest,
        credentials: (config.auth.backend == AuthBackend::Local)
            .then(|| Arc::new(StoreCredentials(store.clone())) as Arc<dyn auth::CredentialSource>),
        bans: Some(store.clone()),
        server_header_untrusted: config.auth.server_header_untrusted,
        max_transactions: config.transaction.max_transactions,
        remote_verify: config.auth.backend == AuthBackend::Radius,
        gatekeeper: Some(gate),
    })
}

/// The RADIUS client settings of `[auth.radius]`, when `auth.backend = "radius"`.
pub fn radius_config(config: &Config) -> Result<Option<RadiusConfig>, String> {
    if config.auth.backend != AuthBackend::Radius {
        return Ok(None);
    }
    let r = &config.auth.radius;
    let path = r
        .secret_file
        .as_ref()
        .ok_or("auth.radius.secret_file is required")?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("auth.radius.secret_file {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() {
        return Err(format!("auth.radius.secret_file {}: empty", path.display()));
    }
    let mut c = RadiusConfig::new(r.servers.clone(), secret.as_bytes().to_vec());
    c.timeout = Duration::from_millis(r.timeout_ms.into());
    c.tries_per_server = r.tries_per_server;
    c.dead_time = Duration::from_secs(r.dead_time_secs.into());
    c.nas_identifier = r.nas_identifier.clone();
    c.dialect = match r.dialect {
        RadiusDialect::Rfc5090 => DigestDialect::Rfc5090,
        RadiusDialect::DraftSterman => DigestDialect::DraftSterman,
    };
    c.require_message_authenticator = r.require_message_authenticator;
    Ok(Some(c))
}

/// Starts the RADIUS client task (a UDP socket of the servers' address family).
pub async fn start_radius(config: &Config) -> Result<Option<RadiusHandle>, String> {
    let Some(c) = radius_config(config)? else {
        return Ok(None);
    };
    let bind: SocketAddr = if c.servers.iter().all(SocketAddr::is_ipv4) {
        "0.0.0.0:0".parse().map_err(|_| "bind address")?
    } else {
        "[::]:0".parse().map_err(|_| "bind address")?
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no random seed for RADIUS: {e}"))?;
    let servers = c.servers.clone();
    let (handle, _task) = RadiusHandle::spawn(c, bind, seed)
        .await
        .map_err(|e| format!("cannot open the RADIUS client socket: {e}"))?;
    tracing::info!("authentication by RADIUS: servers {servers:?}");
    Ok(Some(handle))
}
