//! What a SIGHUP can change in a running process, and what waits for a restart.
//!
//! Every struct is destructured field by field below, so adding a field to a section does not
//! compile until someone decides here whether it is reloadable.

use std::collections::BTreeMap;

use crate::types::{
    Config, GeneralConfig, ProxyConfig, RegistrarConfig, TransactionConfig, TransportConfig,
};

/// The changes between two configurations, as dotted field paths, split by whether the running
/// process can apply them.
///
/// Paths are those of the file (`transaction.t1_ms`), except that zones are named rather than
/// indexed, since reordering zones changes nothing: `zone.lan.networks`, and `zone.dmz` for a
/// zone added or removed. The listeners are compared as one list: `listen`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadDiff {
    /// Changed fields that a reload applies.
    pub reloadable: Vec<String>,
    /// Changed fields that only take effect after a restart.
    pub restart_required: Vec<String>,
}

impl ReloadDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.reloadable.is_empty() && self.restart_required.is_empty()
    }

    fn field<T: PartialEq>(&mut self, reloadable: bool, path: &str, old: &T, new: &T) {
        if old != new {
            let list = if reloadable {
                &mut self.reloadable
            } else {
                &mut self.restart_required
            };
            list.push(path.to_owned());
        }
    }
}

const RELOAD: bool = true;
const RESTART: bool = false;

pub(crate) fn diff(old: &Config, new: &Config) -> ReloadDiff {
    let mut d = ReloadDiff::default();
    let Config {
        general,
        listen,
        transaction,
        transport,
        registrar,
        proxy,
        zone: _,
        auth: _,
        policy: _,
        media,
        b2bua,
        tls,
        trunk,
    } = old;
    crate::security::diff(old, new, &mut d);
    // The relay's sockets and workers, and the B2BUA's identities, are set up at start.
    d.field(RESTART, "media", media, &new.media);
    d.field(RESTART, "b2bua", b2bua, &new.b2bua);
    // The certificate files themselves are reloaded on SIGHUP and when they change; the
    // section's paths and limits are taken when the listeners start.
    d.field(RESTART, "tls", tls, &new.tls);
    // Trunks and next hops are handed to the engine's routing at start.
    d.field(RESTART, "trunk", trunk, &new.trunk);

    let GeneralConfig {
        data_dir,
        log_level,
        node_name,
        server_header,
    } = general;
    let n = &new.general;
    d.field(RESTART, "general.data_dir", data_dir, &n.data_dir);
    d.field(RELOAD, "general.log_level", log_level, &n.log_level);
    d.field(RESTART, "general.node_name", node_name, &n.node_name);
    d.field(
        RELOAD,
        "general.server_header",
        server_header,
        &n.server_header,
    );

    d.field(RESTART, "listen", listen, &new.listen);

    let TransactionConfig {
        t1_ms,
        t2_ms,
        t4_ms,
        max_transactions,
        trying_after_ms,
    } = transaction;
    let n = &new.transaction;
    d.field(RELOAD, "transaction.t1_ms", t1_ms, &n.t1_ms);
    d.field(RELOAD, "transaction.t2_ms", t2_ms, &n.t2_ms);
    d.field(RELOAD, "transaction.t4_ms", t4_ms, &n.t4_ms);
    d.field(
        RELOAD,
        "transaction.max_transactions",
        max_transactions,
        &n.max_transactions,
    );
    d.field(
        RELOAD,
        "transaction.trying_after_ms",
        trying_after_ms,
        &n.trying_after_ms,
    );

    // The transport's sockets, connection tasks and limits take their settings when they
    // start; none of them changes in a running process.
    let TransportConfig {
        tcp_idle_timeout_s,
        max_connections_per_source,
        max_connections,
        udp_mtu,
        crlf_keepalive_interval_s,
        crlf_keepalive_timeout_s,
        socket_recv_buffer_bytes,
        socket_send_buffer_bytes,
    } = transport;
    let n = &new.transport;
    d.field(
        RESTART,
        "transport.tcp_idle_timeout_s",
        tcp_idle_timeout_s,
        &n.tcp_idle_timeout_s,
    );
    d.field(
        RESTART,
        "transport.max_connections_per_source",
        max_connections_per_source,
        &n.max_connections_per_source,
    );
    d.field(
        RESTART,
        "transport.max_connections",
        max_connections,
        &n.max_connections,
    );
    d.field(RESTART, "transport.udp_mtu", udp_mtu, &n.udp_mtu);
    d.field(
        RESTART,
        "transport.crlf_keepalive_interval_s",
        crlf_keepalive_interval_s,
        &n.crlf_keepalive_interval_s,
    );
    d.field(
        RESTART,
        "transport.crlf_keepalive_timeout_s",
        crlf_keepalive_timeout_s,
        &n.crlf_keepalive_timeout_s,
    );
    d.field(
        RESTART,
        "transport.socket_recv_buffer_bytes",
        socket_recv_buffer_bytes,
        &n.socket_recv_buffer_bytes,
    );
    d.field(
        RESTART,
        "transport.socket_send_buffer_bytes",
        socket_send_buffer_bytes,
        &n.socket_send_buffer_bytes,
    );

    let RegistrarConfig {
        enabled,
        domains,
        min_expires,
        max_expires,
        default_expires,
        contact_routing,
        mode,
        upstream,
        upstream_expires,
        nat_expires,
        nat_keepalive_s,
        nat_keepalive_method,
        nat_keepalive_failures,
    } = registrar;
    let n = &new.registrar;
    d.field(RELOAD, "registrar.enabled", enabled, &n.enabled);
    d.field(RELOAD, "registrar.domains", domains, &n.domains);
    d.field(RELOAD, "registrar.min_expires", min_expires, &n.min_expires);
    d.field(RELOAD, "registrar.max_expires", max_expires, &n.max_expires);
    d.field(
        RELOAD,
        "registrar.contact_routing",
        contact_routing,
        &n.contact_routing,
    );
    d.field(
        RELOAD,
        "registrar.default_expires",
        default_expires,
        &n.default_expires,
    );
    d.field(RELOAD, "registrar.mode", mode, &n.mode);
    d.field(RELOAD, "registrar.upstream", upstream, &n.upstream);
    d.field(
        RELOAD,
        "registrar.upstream_expires",
        upstream_expires,
        &n.upstream_expires,
    );
    d.field(RELOAD, "registrar.nat_expires", nat_expires, &n.nat_expires);
    d.field(
        RELOAD,
        "registrar.nat_keepalive_s",
        nat_keepalive_s,
        &n.nat_keepalive_s,
    );
    d.field(
        RELOAD,
        "registrar.nat_keepalive_method",
        nat_keepalive_method,
        &n.nat_keepalive_method,
    );
    d.field(
        RELOAD,
        "registrar.nat_keepalive_failures",
        nat_keepalive_failures,
        &n.nat_keepalive_failures,
    );

    let ProxyConfig {
        record_route,
        max_forks,
        invite_timeout_s,
    } = proxy;
    let n = &new.proxy;
    d.field(RELOAD, "proxy.record_route", record_route, &n.record_route);
    d.field(RELOAD, "proxy.max_forks", max_forks, &n.max_forks);
    d.field(
        RELOAD,
        "proxy.invite_timeout_s",
        invite_timeout_s,
        &n.invite_timeout_s,
    );

    // Zones by name. A zone's networks can change on a reload; adding or removing a zone cannot
    // (listeners, and later media ranges and policy, are bound to the set of zones at start).
    let old_zones: BTreeMap<&str, _> = old.zone.iter().map(|z| (z.name.as_str(), z)).collect();
    let new_zones: BTreeMap<&str, _> = new.zone.iter().map(|z| (z.name.as_str(), z)).collect();
    for (name, oz) in &old_zones {
        match new_zones.get(name) {
            Some(nz) => {
                let crate::ZoneConfig {
                    name: _,
                    networks,
                    domain,
                    trusted,
                    next_hop,
                } = oz;
                d.field(
                    RESTART,
                    &format!("{}.next_hop", zone_path(name)),
                    next_hop,
                    &nz.next_hop,
                );
                d.field(
                    RESTART,
                    &format!("{}.domain", zone_path(name)),
                    domain,
                    &nz.domain,
                );
                d.field(
                    RESTART,
                    &format!("{}.trusted", zone_path(name)),
                    trusted,
                    &nz.trusted,
                );
                d.field(
                    RELOAD,
                    &format!("{}.networks", zone_path(name)),
                    networks,
                    &nz.networks,
                );
            }
            None => d.restart_required.push(zone_path(name)),
        }
    }
    for name in new_zones.keys() {
        if !old_zones.contains_key(name) {
            d.restart_required.push(zone_path(name));
        }
    }
    d
}

fn zone_path(name: &str) -> String {
    crate::locate::join_key("zone", name)
}

/// `old` with every reloadable setting taken from `new`: what a running process uses after a
/// SIGHUP whose restart-only changes wait for the next start.
pub(crate) fn merge(old: &Config, new: &Config) -> Config {
    let mut merged = new.clone();
    merged.general.data_dir = old.general.data_dir.clone();
    merged.general.node_name = old.general.node_name.clone();
    merged.listen = old.listen.clone();
    merged.transport = old.transport.clone();
    merged.media = old.media.clone();
    merged.b2bua = old.b2bua.clone();
    merged.trunk = old.trunk.clone();
    merged.zone = old
        .zone
        .iter()
        .map(|z| {
            let mut n = new.zone(&z.name).unwrap_or(z).clone();
            n.domain = z.domain.clone();
            n.trusted = z.trusted;
            n.next_hop = z.next_hop.clone();
            n
        })
        .collect();
    crate::security::merge(old, &mut merged);
    merged
}
