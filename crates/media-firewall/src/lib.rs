//! A SIP-aware host firewall for the media relay (the "Ingate idea"): the
//! kernel admits inbound UDP to a zone's media port range only on ports a
//! current call has allocated, and once a port has latched, only from the
//! latched peer. Everything else in the range is dropped by nftables
//! before it wakes the relay, and a port no call holds is closed at the
//! packet filter, not only by having no socket.
//!
//! # What is in the kernel
//!
//! One table, `inet sipwarden_media` by default ([`FirewallConfig::table`]),
//! owned by sipwarden: created at start (replacing any leftover of that
//! name in the same transaction) and deleted at shutdown. It holds:
//!
//! ```text
//! table inet sipwarden_media {
//!   set open4 { type ipv4_addr . inet_service; flags timeout; }      # any source may reach local addr . port
//!   set open6 { type ipv6_addr . inet_service; flags timeout; }
//!   set peer4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }
//!                                                                     # peer addr . port . local addr . port
//!   set peer6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }
//!   chain input {
//!     type filter hook input priority -10; policy accept;
//!     ip daddr . udp dport @open4 counter accept
//!     ip6 daddr . udp dport @open6 counter accept
//!     ip saddr . udp sport . ip daddr . udp dport @peer4 counter accept
//!     ip6 saddr . udp sport . ip6 daddr . udp dport @peer6 counter accept
//!     ip daddr 198.51.100.1 udp dport 30000-30999 counter drop comment "sipwarden zone wan"
//!     ...one drop rule per media zone (address and port range)
//!   }
//! }
//! ```
//!
//! The chain's policy is accept and it only matches UDP to the media
//! ranges: the rest of the host's traffic, and the host's own rules in
//! other tables, are untouched (an accept here does not override a drop
//! elsewhere). Only inbound traffic is filtered; the relay's own sends are
//! not.
//!
//! # Life of a media socket
//!
//! The relay reports each socket through its [`media_relay::MediaHook`]:
//!
//! | relay event | elements |
//! |---|---|
//! | bound (offer/answer allocated the port) | `open` element `local . port` |
//! | latched (first packet from the peer) | `open` removed, `peer` element `peer . pport . local . port` |
//! | armed (new offer/answer from that side: the peer may move) | `open` added again; the next latch removes it and replaces the peer |
//! | latched in a zone with `relatch_after_silence` | `peer` added, `open` kept (a silent peer may be replaced without notice) |
//! | closed (stream ended, call released) | all its elements removed |
//!
//! Every element carries a timeout ([`FirewallConfig::element_timeout`],
//! 15 min by default) and is re-added at half of it while its socket
//! lives: if sipwarden dies without removing the table, its holes close by
//! themselves; the next start replaces the table anyway.
//!
//! # Executor, and why the nft binary
//!
//! [`Firewall`] runs one thread that turns the changes into one `nft -f -`
//! script per batch (one netlink transaction: atomic, all or nothing). The
//! hook only records the new state of the socket under a mutex; changes
//! that pile up while nft runs go into the next script, and a socket bound
//! and closed in between costs nothing. Nothing waits for nft on the
//! packet path or in the relay's control calls, so an element appears a
//! few milliseconds after the port is bound (one nft run, see the report of
//! the integration test): media that arrives earlier is dropped. If nft
//! refuses a script (for instance an element someone removed by hand), the
//! table is rebuilt whole from the relay's state in one transaction, and
//! retried every second while that fails.
//!
//! nft rather than netlink from Rust: the crates that speak nf_tables
//! netlink are GPL-3.0 (rustables), bindings to the C libnftnl (nftnl,
//! mnl: a C build dependency, hand-built expressions) or front-ends to the
//! nft binary anyway (nftables: JSON through nft). The text scripts are
//! what an administrator reads and can replay by hand, and a process start
//! per batch is cheap next to call setup.
//!
//! # Configuration (proposal)
//!
//! ```toml
//! [media]
//! firewall = "nftables"           # or "off" (default)
//! firewall_table = "sipwarden_media"
//! firewall_element_timeout = "15m"
//! ```
//!
//! [`FirewallConfig::for_relay`] takes the zones (bind address, port range)
//! from the relay's configuration; a zone must bind a specific address
//! (not 0.0.0.0 or ::), since its drop rule names it. The process needs
//! CAP_NET_ADMIN and the `nft` binary (package nftables); [`Firewall::start`]
//! fails, and sipwarden should refuse to start, when either is missing.
//!
//! # Use
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use media_firewall::{Firewall, FirewallConfig};
//! use media_relay::{MediaRelay, RelayConfig};
//! let relay_cfg = RelayConfig::default();
//! let fw = Firewall::start(FirewallConfig::for_relay(&relay_cfg))?;
//! let (relay, _events) = MediaRelay::start_with_hook(&relay_cfg, Some(fw.hook()))?;
//! // ... calls ...
//! relay.shutdown();
//! fw.stop()?; // removes the table
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod exec;
pub mod plan;

pub use exec::{Firewall, FirewallStats};

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use media_relay::RelayConfig;

/// `[media] firewall`: whether sipwarden manages the media firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirewallMode {
    /// No firewall (the default): the relay alone enforces latching.
    #[default]
    Off,
    /// An nftables table, as this crate describes.
    Nftables,
}

impl std::str::FromStr for FirewallMode {
    type Err = FirewallError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "nftables" => Ok(Self::Nftables),
            other => Err(FirewallError::Config(format!(
                "firewall = {other:?}: expected \"nftables\" or \"off\""
            ))),
        }
    }
}

/// One media zone as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRange {
    /// Zone name (in the drop rule's comment).
    pub name: String,
    /// The address the zone's media sockets bind to.
    pub addr: IpAddr,
    /// First port of the range.
    pub port_min: u16,
    /// Last port of the range.
    pub port_max: u16,
}

/// Firewall settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallConfig {
    /// Name of the `inet` table sipwarden owns (letters, digits, `_`).
    pub table: String,
    /// The media zones whose ranges are filtered.
    pub zones: Vec<ZoneRange>,
    /// Lifetime of each element unless refreshed (at half of it) by the
    /// running process.
    pub element_timeout: Duration,
    /// Priority of the input chain (before the usual `filter` priority 0).
    pub priority: i32,
    /// The nft binary.
    pub nft: PathBuf,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            table: "sipwarden_media".into(),
            zones: Vec::new(),
            element_timeout: Duration::from_secs(15 * 60),
            priority: -10,
            nft: PathBuf::from("nft"),
        }
    }
}

impl FirewallConfig {
    /// Defaults, with the zones of the relay's configuration.
    pub fn for_relay(relay: &RelayConfig) -> Self {
        Self {
            zones: relay
                .zones
                .iter()
                .map(|z| ZoneRange {
                    name: z.name.clone(),
                    addr: z.bind,
                    port_min: z.port_min,
                    port_max: z.port_max,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Checks what would make a script invalid or the filter wrong.
    pub fn validate(&self) -> Result<(), FirewallError> {
        let t = &self.table;
        if t.is_empty()
            || t.len() > 64
            || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || t.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(FirewallError::Config(format!(
                "table name {t:?}: letters, digits and '_' only, not starting with a digit"
            )));
        }
        if self.element_timeout < Duration::from_secs(10) {
            return Err(FirewallError::Config(
                "element timeout below 10 s".to_string(),
            ));
        }
        for z in &self.zones {
            if z.addr.is_unspecified() {
                return Err(FirewallError::Config(format!(
                    "zone {}: the media firewall needs a specific bind address, not {}",
                    z.name, z.addr
                )));
            }
            if z.port_min > z.port_max {
                return Err(FirewallError::Config(format!(
                    "zone {}: port range {}-{} is empty",
                    z.name, z.port_min, z.port_max
                )));
            }
        }
        Ok(())
    }
}

/// Why the firewall could not do its work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The configuration is unusable.
    #[error("media firewall configuration: {0}")]
    Config(String),
    /// The nft binary could not be run (missing, not executable).
    #[error("cannot run {nft}: {source}")]
    Spawn {
        /// The binary.
        nft: String,
        /// Why.
        source: std::io::Error,
    },
    /// nft refused the script (no CAP_NET_ADMIN, no nf_tables, a stale
    /// element).
    #[error("nft failed ({status}): {stderr}")]
    Nft {
        /// Exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// The executor thread could not be started.
    #[error("cannot start the firewall thread: {0}")]
    Thread(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_relay_and_validation() {
        let relay = RelayConfig {
            zones: vec![media_relay::ZoneConfig {
                name: "wan".into(),
                bind: "198.51.100.1".parse().unwrap(),
                advertise: None,
                port_min: 30000,
                port_max: 30999,
                latch: Default::default(),
            }],
            ..RelayConfig::default()
        };
        let cfg = FirewallConfig::for_relay(&relay);
        assert_eq!(
            cfg.zones,
            vec![ZoneRange {
                name: "wan".into(),
                addr: "198.51.100.1".parse().unwrap(),
                port_min: 30000,
                port_max: 30999
            }]
        );
        assert!(cfg.validate().is_ok());
        for bad in ["", "a b", "x;flush ruleset", "9t", "ümlaut"] {
            let c = FirewallConfig {
                table: bad.into(),
                ..cfg.clone()
            };
            assert!(
                matches!(c.validate(), Err(FirewallError::Config(_))),
                "{bad:?}"
            );
        }
        let mut c = cfg.clone();
        c.zones[0].addr = "0.0.0.0".parse().unwrap();
        assert!(c.validate().is_err());
        let mut c = cfg.clone();
        c.element_timeout = Duration::from_secs(1);
        assert!(c.validate().is_err());
        assert_eq!(
            "nftables".parse::<FirewallMode>().unwrap(),
            FirewallMode::Nftables
        );
        assert_eq!("off".parse::<FirewallMode>().unwrap(), FirewallMode::Off);
        assert!("iptables".parse::<FirewallMode>().is_err());
    }

    #[test]
    fn start_reports_a_missing_nft_binary() {
        let cfg = FirewallConfig {
            nft: "/nonexistent/nft".into(),
            ..FirewallConfig::default()
        };
        assert!(matches!(
            Firewall::start(cfg),
            Err(FirewallError::Spawn { .. })
        ));
    }
}
