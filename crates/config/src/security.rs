//! `[auth]` (digest authentication and where credentials come from) and `[policy]` (the
//! firewall tables, types of the `policy` crate). Kept apart from `types.rs` so that the core
//! sections stay readable; the loader and the reload diff call in here.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::Config;

pub use policy::PolicyConfig;

/// `[auth]`: digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// The realm challenged and accepted; users are stored per realm.
    pub realm: String,
    /// Digest algorithms offered, preferred first: `SHA-512-256`, `SHA-256`, `MD5`.
    pub algorithms: Vec<String>,
    /// How long a nonce stays fresh, in seconds.
    pub nonce_lifetime_secs: u32,
    /// Bind nonces to the client's address: a nonce captured elsewhere is useless.
    pub bind_nonce_to_source: bool,
    /// Require the digest `uri` to equal the Request-URI.
    pub check_uri: bool,
    /// Nonces whose counts are tracked against replays (memory is bounded by this).
    pub nc_table_size: u32,
    /// Where credentials come from: `local` (the embedded store, `sipwarden user add`) or
    /// `radius`.
    pub backend: AuthBackend,
    /// A file holding the secret that nonces are signed with (32 bytes or more); without it a
    /// random secret per start (nonces issued before a restart then get a stale challenge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce_secret_file: Option<PathBuf>,
    /// Show `Server`/`User-Agent` on answers to untrusted zones (`general.server_header`
    /// decides the value); off by default so scanners learn nothing.
    pub server_header_untrusted: bool,
    /// `[auth.radius]`
    pub radius: RadiusSection,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            realm: "sipwarden".to_owned(),
            algorithms: vec!["SHA-256".to_owned(), "MD5".to_owned()],
            nonce_lifetime_secs: 300,
            bind_nonce_to_source: true,
            check_uri: true,
            nc_table_size: 65_536,
            backend: AuthBackend::Local,
            nonce_secret_file: None,
            server_header_untrusted: false,
            radius: RadiusSection::default(),
        }
    }
}

/// `auth.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    /// Users of the embedded store.
    Local,
    /// A RADIUS server (RFC 5090 or draft-sterman digest attributes).
    Radius,
}

/// `[auth.radius]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusSection {
    /// Servers, primary first (`host:port`).
    pub servers: Vec<SocketAddr>,
    /// A file holding the shared secret (first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Wait this long for an answer before retransmitting.
    pub timeout_ms: u32,
    /// Transmissions to one server before failing over.
    pub tries_per_server: u32,
    /// A silent server is skipped this long.
    pub dead_time_secs: u32,
    /// NAS-Identifier sent in every request.
    pub nas_identifier: String,
    /// `rfc5090` or `draft-sterman` (what FreeRADIUS 3's `digest` module speaks).
    pub dialect: RadiusDialect,
    /// Refuse answers without Message-Authenticator (the BlastRADIUS defence).
    pub require_message_authenticator: bool,
}

impl Default for RadiusSection {
    fn default() -> Self {
        RadiusSection {
            servers: Vec::new(),
            secret_file: None,
            timeout_ms: 2_000,
            tries_per_server: 3,
            dead_time_secs: 30,
            nas_identifier: "sipwarden".to_owned(),
            dialect: RadiusDialect::Rfc5090,
            require_message_authenticator: true,
        }
    }
}

/// `auth.radius.dialect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RadiusDialect {
    /// RFC 5090 attributes.
    Rfc5090,
    /// draft-sterman-aaa-sip-00.
    DraftSterman,
}

/// The algorithm names `auth.algorithms` accepts.
pub const ALGORITHMS: &[&str] = &["SHA-512-256", "SHA-256", "MD5"];

/// Semantic checks of `[auth]` and `[policy]`: (field path, problem).
pub(crate) fn validate(c: &Config, errs: &mut Vec<(String, String)>) {
    let a = &c.auth;
    let mut err = |p: &str, m: String| errs.push((p.to_owned(), m));
    if a.realm.trim().is_empty() || a.realm.contains(['"', '\\']) || a.realm.len() > 128 {
        err(
            "auth.realm",
            "must be 1 to 128 characters without quotes or backslashes".to_owned(),
        );
    }
    if a.algorithms.is_empty() {
        err(
            "auth.algorithms",
            "must name at least one algorithm".to_owned(),
        );
    }
    for (i, alg) in a.algorithms.iter().enumerate() {
        if !ALGORITHMS.iter().any(|k| k.eq_ignore_ascii_case(alg)) {
            err(
                &format!("auth.algorithms[{i}]"),
                format!("unknown algorithm `{alg}`, expected one of {ALGORITHMS:?}"),
            );
        }
    }
    if !(10..=86_400).contains(&a.nonce_lifetime_secs) {
        err(
            "auth.nonce_lifetime_secs",
            format!("must be from 10 to 86400, got {}", a.nonce_lifetime_secs),
        );
    }
    if !(16..=16_777_216).contains(&a.nc_table_size) {
        err(
            "auth.nc_table_size",
            format!("must be from 16 to 16777216, got {}", a.nc_table_size),
        );
    }
    if a.backend == AuthBackend::Radius {
        if a.radius.servers.is_empty() {
            err(
                "auth.radius.servers",
                "backend = \"radius\" needs at least one server".to_owned(),
            );
        }
        if a.radius.secret_file.is_none() {
            err(
                "auth.radius.secret_file",
                "backend = \"radius\" needs the shared secret's file".to_owned(),
            );
        }
    }
    if !(50..=60_000).contains(&a.radius.timeout_ms) {
        err(
            "auth.radius.timeout_ms",
            format!("must be from 50 to 60000, got {}", a.radius.timeout_ms),
        );
    }
    if !(1..=10).contains(&a.radius.tries_per_server) {
        err(
            "auth.radius.tries_per_server",
            format!("must be from 1 to 10, got {}", a.radius.tries_per_server),
        );
    }
    let zones: Vec<&str> = c.zone.iter().map(|z| z.name.as_str()).collect();
    if let Err(fields) = policy::Policy::compile(&c.policy, Some(&zones)) {
        for f in fields {
            errs.push((f.field, f.problem));
        }
    }
}

/// The reload diff of `[auth]` and `[policy]`: the policy and the digest settings apply live,
/// the backend and its servers need a restart (the RADIUS client is built at start).
pub(crate) fn diff(old: &Config, new: &Config, d: &mut crate::ReloadDiff) {
    if old.policy != new.policy {
        d.reloadable.push("policy".to_owned());
    }
    let (o, n) = (&old.auth, &new.auth);
    let live = AuthSection {
        backend: o.backend,
        radius: o.radius.clone(),
        nonce_secret_file: o.nonce_secret_file.clone(),
        ..n.clone()
    };
    if &live != o {
        d.reloadable.push("auth".to_owned());
    }
    if o.backend != n.backend || o.radius != n.radius || o.nonce_secret_file != n.nonce_secret_file
    {
        d.restart_required.push("auth.backend".to_owned());
    }
}

/// [`diff`]'s counterpart for `Config::with_reloadable_from`.
pub(crate) fn merge(old: &Config, merged: &mut Config) {
    merged.auth.backend = old.auth.backend;
    merged.auth.radius = old.auth.radius.clone();
    merged.auth.nonce_secret_file = old.auth.nonce_secret_file.clone();
}

#[cfg(test)]
mod tests {
    use crate::{Config, Overrides};

    fn load(text: &str) -> Result<Config, Vec<String>> {
        Config::from_str_with(text, "t.toml", &Overrides::none()).map_err(|e| e.to_lines())
    }

    #[test]
    fn auth_and_policy_load_with_defaults() {
        let c = load(
            "[auth]\nrealm = \"corp.example\"\n\
             [[policy.zone]]\nname = \"lan\"\nmethods.refuse = [\"MESSAGE\"]\n",
        )
        .unwrap();
        assert_eq!(c.auth.realm, "corp.example");
        assert_eq!(c.auth.nonce_lifetime_secs, 300);
        assert_eq!(c.policy.zone[0].name, "lan");
        assert_eq!(load("").unwrap().auth, super::AuthSection::default());
    }

    #[test]
    fn errors_are_located() {
        let e = load("[auth]\nalgorithms = [\"SHA-1\"]\n").unwrap_err();
        assert!(e[0].contains("t.toml:2") && e[0].contains("SHA-1"), "{e:?}");
        let e = load("[[policy.zone]]\nname = \"mars\"\n").unwrap_err();
        assert!(
            e[0].contains("t.toml:2") && e[0].contains("policy.zone[0].name"),
            "{e:?}"
        );
        let e = load("[auth]\nbackend = \"radius\"\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        let e = load("[policy]\nbogus = 1\n").unwrap_err();
        assert!(e[0].contains("bogus"), "{e:?}");
    }

    #[test]
    fn policy_reloads_radius_restarts() {
        let old = Config::default();
        let mut new = old.clone();
        new.policy.trusted = vec!["10.0.0.1".into()];
        new.auth.realm = "x".into();
        new.auth.backend = super::AuthBackend::Radius;
        let d = Config::diff_reloadable(&old, &new);
        assert_eq!(d.reloadable, ["policy", "auth"]);
        assert_eq!(d.restart_required, ["auth.backend"]);
        let m = old.with_reloadable_from(&new);
        assert_eq!(m.auth.backend, super::AuthBackend::Local);
        assert_eq!(m.auth.realm, "x");
    }
}
