//! sipwarden's configuration: the types, their defaults, loading a TOML file with every error
//! located as `FILE:LINE: field: problem`, and what a reload (SIGHUP) can change.
//!
//! ```
//! let text = "[registrar]\nmin_expires = 7200\n";
//! let errors = config::Config::from_str(text, "sbc.toml").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "sbc.toml:2: registrar.min_expires: must not be greater than max_expires (3600), got 7200"
//! );
//! ```
//!
//! The file format is documented field by field in `docs/CONFIG.md`; `examples/` has working
//! files. Zones are the organising concept: every listener belongs to a zone, and a packet
//! belongs to the zone whose networks contain its source address.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod load;
mod locate;
mod media;
mod reload;
mod security;
mod tls;
mod trunk;
mod types;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors};
pub use ipnet::IpNet;
pub use media::{
    B2buaConfig, Firewall, Latching, MediaConfig, MediaZoneConfig, PortRange, SrtpMode, SRTP_SUITES,
};
pub use reload::ReloadDiff;
pub use security::{
    AuthBackend, AuthSection, PolicyConfig, RadiusDialect, RadiusSection, ALGORITHMS,
};
pub use tls::{SniConfig, TlsConfig, TlsZoneConfig, SIPS_PORT};
pub use trunk::{parse_sip_address, ReferMode, TrunkAddress, TrunkConfig, TrunkTransport};
pub use types::{
    default_listeners, default_zones, local_networks, Config, ContactRouting, GeneralConfig,
    KeepaliveMethod, ListenConfig, LogLevel, Protocol, ProxyConfig, RegistrarConfig, RegistrarMode,
    TransactionConfig, TransportConfig, ZoneConfig, DEFAULT_DATA_DIR, DEFAULT_ZONE, SIP_PORT,
};

/// The environment variable that, when set and not empty, replaces `general.data_dir`
/// (whether the file sets it or not). Meant for tests and for running unprivileged.
pub const DATA_DIR_ENV: &str = "SIPWARDEN_DATA_DIR";

/// Settings that come from outside the file and win over it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces `general.data_dir`.
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// No overrides: the file and the built-in defaults alone.
    pub fn none() -> Self {
        Overrides::default()
    }

    /// The overrides set in the environment ([`DATA_DIR_ENV`]).
    pub fn from_env() -> Self {
        Overrides {
            data_dir: std::env::var_os(DATA_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.general.data_dir = dir.clone();
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file, with the environment's overrides.
    /// On failure, every error found, each located in the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        Config::from_file_with(path, &Overrides::from_env())
    }

    /// [`from_file`](Self::from_file) with explicit overrides (the environment is not read).
    pub fn from_file_with(
        path: impl AsRef<Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => load::load(&text, &name, overrides),
            Err(e) => Err(ConfigErrors::new(vec![ConfigError {
                file: name,
                line: None,
                field: String::new(),
                problem: format!("cannot read the file: {e}"),
            }])),
        }
    }

    /// Parses and validates configuration text, with the environment's overrides. `name` is
    /// the file name that errors are reported against.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, name: &str) -> Result<Config, ConfigErrors> {
        Config::from_str_with(text, name, &Overrides::from_env())
    }

    /// [`from_str`](Self::from_str) with explicit overrides (the environment is not read).
    pub fn from_str_with(
        text: &str,
        name: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigErrors> {
        load::load(text, name, overrides)
    }

    /// What `sipwarden run` uses without `--config`: the built-in defaults (the same as an
    /// empty file, or as `examples/minimal.toml`), with the environment's overrides.
    pub fn embedded_default() -> Config {
        let mut config = Config::default();
        Overrides::from_env().apply(&mut config);
        config
    }

    /// The changes from `old` to `new`, split into those a reload applies and those that need
    /// a restart.
    pub fn diff_reloadable(old: &Config, new: &Config) -> ReloadDiff {
        reload::diff(old, new)
    }

    /// `self` (the running configuration) with every reloadable setting taken from `new`, and
    /// the restart-only ones (listeners, data directory, node name, socket buffers, the set of
    /// zones) kept. When zones were added or removed, check the result with
    /// [`problems`](Self::problems) before using it: a zone kept from `self` may overlap a
    /// network that moved in `new`.
    pub fn with_reloadable_from(&self, new: &Config) -> Config {
        reload::merge(self, new)
    }

    /// The semantic problems of a configuration built in code (a loaded one has none), as
    /// `field: problem` strings.
    pub fn problems(&self) -> Vec<String> {
        let input = validate::Input {
            config: self.clone(),
            listen_index: (0..self.listen.len()).collect(),
            zone_index: (0..self.zone.len()).collect(),
            trunk_index: (0..self.trunk.len()).collect(),
            listen_given: true,
            zone_given: true,
            listen_complete: true,
            zone_complete: true,
        };
        validate::validate(&input, &|_| true)
            .into_iter()
            .map(|(field, problem)| format!("{field}: {problem}"))
            .collect()
    }

    /// The configuration as TOML, every field written out (optional fields only when set).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a Config always serializes")
    }
}
