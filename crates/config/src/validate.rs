//! Semantic checks: everything the types alone cannot say. Each check adds a (field path,
//! problem) pair; the loader turns the path into a line.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::types::{Config, DEFAULT_ZONE};

/// What the loader hands over: the configuration with defaults standing in for anything missing
/// or broken, plus what is needed to name fields by their index in the file.
pub(crate) struct Input {
    pub(crate) config: Config,
    /// The index in the file of each entry of `config.listen`.
    pub(crate) listen_index: Vec<usize>,
    /// The index in the file of each entry of `config.zone`.
    pub(crate) zone_index: Vec<usize>,
    /// The index in the file of each entry of `config.trunk`.
    pub(crate) trunk_index: Vec<usize>,
    /// Whether the file has `[[listen]]` (otherwise the default listeners are in `config`).
    pub(crate) listen_given: bool,
    /// Whether the file has `[[zone]]` (otherwise the default zone is in `config`).
    pub(crate) zone_given: bool,
    /// False when some `[[listen]]` entry could not be read at all.
    pub(crate) listen_complete: bool,
    /// False when some `[[zone]]` entry could not be read at all.
    pub(crate) zone_complete: bool,
}

/// The accepted ranges, shared with the documentation tests.
pub(crate) mod limits {
    pub const T1_MS: (u32, u32) = (10, 10_000);
    pub const T2_MS: (u32, u32) = (100, 60_000);
    pub const T4_MS: (u32, u32) = (100, 60_000);
    pub const MAX_TRANSACTIONS: (u32, u32) = (1, 10_000_000);
    pub const TRYING_AFTER_MS: (u32, u32) = (0, 5_000);
    pub const TCP_IDLE_TIMEOUT_S: (u32, u32) = (1, 86_400);
    pub const MAX_CONNECTIONS: (u32, u32) = (1, 1_000_000);
    pub const UDP_MTU: (u32, u32) = (576, 65_507);
    pub const CRLF_KEEPALIVE_INTERVAL_S: (u32, u32) = (5, 3_600);
    pub const CRLF_KEEPALIVE_TIMEOUT_S: (u32, u32) = (1, 300);
    pub const SOCKET_BUFFER_BYTES: (u32, u32) = (4_096, 268_435_456);
    pub const EXPIRES: (u32, u32) = (1, 604_800);
    pub const MAX_FORKS: (u32, u32) = (1, 64);
    pub const UPSTREAM_EXPIRES: (u32, u32) = (60, 86_400);
    pub const NAT_EXPIRES: (u32, u32) = (10, 3_600);
    pub const NAT_KEEPALIVE_S: (u32, u32) = (5, 3_600);
    pub const NAT_KEEPALIVE_FAILURES: (u32, u32) = (1, 100);
    pub const INVITE_TIMEOUT_S: (u32, u32) = (1, 3_600);
    pub const NAME_LEN: usize = 63;
    pub const SERVER_HEADER_LEN: usize = 200;
}

type Errors = Vec<(String, String)>;

pub(crate) fn validate(input: &Input, has: &dyn Fn(&str) -> bool) -> Errors {
    let mut errs = Errors::new();
    general(&input.config, &mut errs);
    listen(input, has, &mut errs);
    transaction(&input.config, &mut errs);
    transport(&input.config, &mut errs);
    registrar(&input.config, has, &mut errs);
    proxy(&input.config, &mut errs);
    zones(input, &mut errs);
    crate::security::validate(&input.config, &mut errs);
    crate::media::validate(&input.config, &input.zone_index, &mut errs);
    crate::tls::validate(&input.config, &input.listen_index, &mut errs);
    crate::trunk::validate(
        &input.config,
        &input.zone_index,
        &input.trunk_index,
        &mut errs,
    );
    errs
}

fn err(errs: &mut Errors, path: impl Into<String>, problem: impl Into<String>) {
    errs.push((path.into(), problem.into()));
}

fn range(errs: &mut Errors, path: &str, value: u32, (lo, hi): (u32, u32)) -> bool {
    if value < lo || value > hi {
        err(
            errs,
            path,
            format!("must be from {lo} to {hi}, got {value}"),
        );
        false
    } else {
        true
    }
}

fn general(c: &Config, errs: &mut Errors) {
    let g = &c.general;
    if g.data_dir.as_os_str().is_empty() {
        err(errs, "general.data_dir", "must not be empty");
    } else if !g.data_dir.is_absolute() {
        err(
            errs,
            "general.data_dir",
            format!("must be an absolute path, got `{}`", g.data_dir.display()),
        );
    }
    if let Some(problem) = name_problem(&g.node_name, "._-") {
        err(errs, "general.node_name", problem);
    }
    if let Some(server) = &g.server_header {
        if server.trim().is_empty() {
            err(
                errs,
                "general.server_header",
                "must not be empty; leave the field out to send no header",
            );
        } else if server.chars().any(char::is_control) {
            err(
                errs,
                "general.server_header",
                "must not contain control characters (such as line breaks or tabs)",
            );
        } else if server.len() > limits::SERVER_HEADER_LEN {
            err(
                errs,
                "general.server_header",
                format!("must be at most {} bytes", limits::SERVER_HEADER_LEN),
            );
        }
    }
}

/// Why `name` is not a valid node or zone name: 1 to 63 characters, ASCII letters, digits and
/// the given punctuation, starting with a letter or digit.
fn name_problem(name: &str, punctuation: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || punctuation.contains(c);
    if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.len() > limits::NAME_LEN {
        Some(format!("must be at most {} characters", limits::NAME_LEN))
    } else if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        let listed: Vec<String> = punctuation.chars().map(|c| format!("`{c}`")).collect();
        Some(format!(
            "`{bad}` is not allowed; use letters, digits and {}",
            listed.join(", ")
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("must start with a letter or a digit".to_owned())
    } else {
        None
    }
}

fn listen(input: &Input, has: &dyn Fn(&str) -> bool, errs: &mut Errors) {
    let c = &input.config;
    if input.listen_given && input.listen_complete && c.listen.is_empty() {
        err(errs, "listen", "at least one listener is required");
    }
    let zone_names: Vec<&str> = c.zone.iter().map(|z| z.name.as_str()).collect();
    let mut seen: HashMap<(crate::Protocol, SocketAddr), usize> = HashMap::new();
    for (pos, l) in c.listen.iter().enumerate() {
        let i = input.listen_index[pos];
        let path = format!("listen[{i}]");
        let addr = l.address;
        if addr.port() == 0 {
            err(
                errs,
                format!("{path}.address"),
                format!("port 0 is not allowed; give the port to listen on (5060 is SIP's), got `{addr}`"),
            );
        }
        if addr.ip().is_multicast() || addr.ip() == IpAddr::from([255, 255, 255, 255]) {
            err(
                errs,
                format!("{path}.address"),
                format!("`{}` is not a unicast address", addr.ip()),
            );
        }
        if let Some(&first) = seen.get(&(l.transport, addr)) {
            err(
                errs,
                format!("{path}.address"),
                format!(
                    "duplicate listener: listen[{first}] is also {} {addr}",
                    l.transport
                ),
            );
        } else {
            // One of the two is a wildcard for the same port and family: both cannot be bound,
            // and which zone a packet belongs to would depend on the kernel's choice.
            let clash = c.listen[..pos].iter().enumerate().find(|(_, o)| {
                o.transport == l.transport
                    && o.address.port() == addr.port()
                    && o.address.is_ipv4() == addr.is_ipv4()
                    && o.address.ip() != addr.ip()
                    && (o.address.ip().is_unspecified() || addr.ip().is_unspecified())
            });
            if let Some((other_pos, other)) = clash {
                let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                err(
                    errs,
                    format!("{path}.address"),
                    format!(
                        "{} {addr} overlaps listen[{}] ({} {}): a wildcard address already \
                         receives on every {family} address at port {}; list each address instead",
                        l.transport,
                        input.listen_index[other_pos],
                        other.transport,
                        other.address,
                        addr.port()
                    ),
                );
            }
            seen.insert((l.transport, addr), i);
        }
        // Without [[listen]], the check below reports the default listeners' zone once.
        if input.listen_given && input.zone_complete && !zone_names.contains(&l.zone.as_str()) {
            let zone_path = format!("{path}.zone");
            let default = if has(&zone_path) {
                ""
            } else {
                " (the default)"
            };
            err(
                errs,
                zone_path,
                format!(
                    "zone `{}`{default} is not defined; defined zones: {}",
                    l.zone,
                    zone_names.join(", ")
                ),
            );
        }
    }
    if !input.listen_given
        && input.zone_given
        && input.zone_complete
        && !zone_names.contains(&DEFAULT_ZONE)
    {
        err(
            errs,
            "zone",
            format!(
                "no zone is named `{DEFAULT_ZONE}`, which the default listeners (used because \
                 the file has no [[listen]]) belong to; add [[listen]] entries or a zone `{DEFAULT_ZONE}`"
            ),
        );
    }
}

fn transaction(c: &Config, errs: &mut Errors) {
    let t = &c.transaction;
    let t1_ok = range(errs, "transaction.t1_ms", t.t1_ms, limits::T1_MS);
    let t2_ok = range(errs, "transaction.t2_ms", t.t2_ms, limits::T2_MS);
    if t1_ok && t2_ok && t.t2_ms < t.t1_ms {
        err(
            errs,
            "transaction.t2_ms",
            format!("must not be less than t1_ms ({}), got {}", t.t1_ms, t.t2_ms),
        );
    }
    range(errs, "transaction.t4_ms", t.t4_ms, limits::T4_MS);
    range(
        errs,
        "transaction.max_transactions",
        t.max_transactions,
        limits::MAX_TRANSACTIONS,
    );
    range(
        errs,
        "transaction.trying_after_ms",
        t.trying_after_ms,
        limits::TRYING_AFTER_MS,
    );
}

fn transport(c: &Config, errs: &mut Errors) {
    let t = &c.transport;
    range(
        errs,
        "transport.tcp_idle_timeout_s",
        t.tcp_idle_timeout_s,
        limits::TCP_IDLE_TIMEOUT_S,
    );
    let max_ok = range(
        errs,
        "transport.max_connections",
        t.max_connections,
        limits::MAX_CONNECTIONS,
    );
    let per_ok = range(
        errs,
        "transport.max_connections_per_source",
        t.max_connections_per_source,
        limits::MAX_CONNECTIONS,
    );
    if max_ok && per_ok && t.max_connections_per_source > t.max_connections {
        err(
            errs,
            "transport.max_connections_per_source",
            format!(
                "must not be more than max_connections ({}), got {}",
                t.max_connections, t.max_connections_per_source
            ),
        );
    }
    range(errs, "transport.udp_mtu", t.udp_mtu, limits::UDP_MTU);
    let interval_ok = t.crlf_keepalive_interval_s == 0
        || range(
            errs,
            "transport.crlf_keepalive_interval_s",
            t.crlf_keepalive_interval_s,
            limits::CRLF_KEEPALIVE_INTERVAL_S,
        );
    let timeout_ok = range(
        errs,
        "transport.crlf_keepalive_timeout_s",
        t.crlf_keepalive_timeout_s,
        limits::CRLF_KEEPALIVE_TIMEOUT_S,
    );
    if interval_ok
        && timeout_ok
        && t.crlf_keepalive_interval_s != 0
        && t.crlf_keepalive_timeout_s >= t.crlf_keepalive_interval_s
    {
        err(
            errs,
            "transport.crlf_keepalive_timeout_s",
            format!(
                "must be less than crlf_keepalive_interval_s ({}), got {}",
                t.crlf_keepalive_interval_s, t.crlf_keepalive_timeout_s
            ),
        );
    }
    for (name, value) in [
        ("socket_recv_buffer_bytes", t.socket_recv_buffer_bytes),
        ("socket_send_buffer_bytes", t.socket_send_buffer_bytes),
    ] {
        if let Some(v) = value {
            range(
                errs,
                &format!("transport.{name}"),
                v,
                limits::SOCKET_BUFFER_BYTES,
            );
        }
    }
}

fn registrar(c: &Config, has: &dyn Fn(&str) -> bool, errs: &mut Errors) {
    let r = &c.registrar;
    let min_ok = range(
        errs,
        "registrar.min_expires",
        r.min_expires,
        limits::EXPIRES,
    );
    let max_ok = range(
        errs,
        "registrar.max_expires",
        r.max_expires,
        limits::EXPIRES,
    );
    let default_ok = range(
        errs,
        "registrar.default_expires",
        r.default_expires,
        limits::EXPIRES,
    );
    if min_ok && max_ok {
        if r.min_expires > r.max_expires {
            err(
                errs,
                "registrar.min_expires",
                format!(
                    "must not be greater than max_expires ({}), got {}",
                    r.max_expires, r.min_expires
                ),
            );
        } else if default_ok
            && (r.default_expires < r.min_expires || r.default_expires > r.max_expires)
        {
            let default = if has("registrar.default_expires") {
                ""
            } else {
                " (the default)"
            };
            err(
                errs,
                "registrar.default_expires",
                format!(
                    "must be from min_expires ({}) to max_expires ({}), got {}{default}",
                    r.min_expires, r.max_expires, r.default_expires
                ),
            );
        }
    }
    relay(c, errs);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in r.domains.iter().enumerate() {
        let path = format!("registrar.domains[{i}]");
        if let Some(problem) = host_problem(d) {
            err(errs, path, problem);
        } else if let Some(first) = seen.get(&d.to_ascii_lowercase()) {
            err(
                errs,
                path,
                format!("duplicate domain `{d}`, also registrar.domains[{first}]"),
            );
        } else {
            seen.insert(d.to_ascii_lowercase(), i);
        }
    }
}

/// The relay and keep-alive fields of `[registrar]`.
fn relay(c: &Config, errs: &mut Errors) {
    let r = &c.registrar;
    range(
        errs,
        "registrar.upstream_expires",
        r.upstream_expires,
        limits::UPSTREAM_EXPIRES,
    );
    if r.nat_expires != 0 {
        range(
            errs,
            "registrar.nat_expires",
            r.nat_expires,
            limits::NAT_EXPIRES,
        );
    }
    if r.nat_keepalive_s != 0 {
        range(
            errs,
            "registrar.nat_keepalive_s",
            r.nat_keepalive_s,
            limits::NAT_KEEPALIVE_S,
        );
    }
    range(
        errs,
        "registrar.nat_keepalive_failures",
        r.nat_keepalive_failures,
        limits::NAT_KEEPALIVE_FAILURES,
    );
    match &r.upstream {
        Some(u) => {
            if let Some(problem) = upstream_problem(u) {
                err(errs, "registrar.upstream", problem);
            }
        }
        None if r.mode == crate::types::RegistrarMode::Relay => err(
            errs,
            "registrar.mode",
            "\"relay\" needs registrar.upstream (the upstream registrar, e.g. \"sip:192.168.10.10:5060\")",
        ),
        None => {}
    }
}

/// Why `u` is not an upstream registrar URI: `sip:HOST[:PORT]` with an IP address (there is no
/// DNS lookup for it), optionally `;transport=udp|tcp|tls`.
pub(crate) fn upstream_problem(u: &str) -> Option<String> {
    let Some(rest) = u.strip_prefix("sip:") else {
        return Some(format!("`{u}` is not a sip: URI"));
    };
    let (hostport, params) = match rest.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if hostport.contains('@') {
        return Some(format!("`{u}` must name a host, not a user"));
    }
    let ok = hostport.parse::<SocketAddr>().is_ok()
        || hostport.parse::<IpAddr>().is_ok()
        || hostport
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    if !ok {
        return Some(format!(
            "`{u}` must be sip:IP or sip:IP:PORT (an IP address: the upstream is not looked up in DNS)"
        ));
    }
    for p in params.into_iter().flat_map(|p| p.split(';')) {
        match p.to_ascii_lowercase().as_str() {
            "transport=udp" | "transport=tcp" | "transport=tls" | "lr" => {}
            other => return Some(format!("unknown URI parameter `{other}` in `{u}`")),
        }
    }
    None
}

/// Why `host` is not a SIP URI host (RFC 3261 section 25.1: a host name, an IPv4 address, or an
/// IPv6 address in brackets).
fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => None,
            Err(_) => Some(format!("`{host}` is not a valid IPv6 reference")),
        };
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(format!("write IPv6 addresses in brackets: `[{host}]`"));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let labels_ok = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    // The last label of a host name is not all digits (that would be a mistyped IPv4 address).
    let last_ok = host
        .rsplit('.')
        .next()
        .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()));
    if labels_ok && last_ok {
        None
    } else {
        Some(format!(
            "`{host}` is not a host name or IP address (e.g. example.com or 192.168.10.1)"
        ))
    }
}

fn proxy(c: &Config, errs: &mut Errors) {
    let p = &c.proxy;
    range(errs, "proxy.max_forks", p.max_forks, limits::MAX_FORKS);
    range(
        errs,
        "proxy.invite_timeout_s",
        p.invite_timeout_s,
        limits::INVITE_TIMEOUT_S,
    );
}

fn zones(input: &Input, errs: &mut Errors) {
    let c = &input.config;
    if input.zone_given && input.zone_complete && c.zone.is_empty() {
        err(errs, "zone", "at least one zone is required");
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    // Every well-formed network, for the overlap check: (network, path, zone position).
    let mut all: Vec<(IpNet, String, usize)> = Vec::new();
    for (pos, z) in c.zone.iter().enumerate() {
        let i = input.zone_index[pos];
        let path = format!("zone[{i}]");
        if let Some(problem) = name_problem(&z.name, "_-") {
            err(errs, format!("{path}.name"), problem);
        } else if let Some(first) = names.get(z.name.as_str()) {
            err(
                errs,
                format!("{path}.name"),
                format!("duplicate zone name `{}`, also zone[{first}]", z.name),
            );
        } else {
            names.insert(&z.name, i);
        }
        if z.networks.is_empty() {
            err(
                errs,
                format!("{path}.networks"),
                "a zone needs at least one network",
            );
        }
        for (j, net) in z.networks.iter().enumerate() {
            let net_path = format!("{path}.networks[{j}]");
            if net.addr() != net.network() {
                err(
                    errs,
                    net_path,
                    format!(
                        "`{net}` has host bits set; the network is `{}`",
                        net.trunc()
                    ),
                );
            } else {
                all.push((*net, net_path, pos));
            }
        }
    }
    overlaps(&all, errs);
}

/// Reports each network that overlaps one written before it in the same zone, and each network
/// written in two zones. A network nested in another zone's is allowed: the most specific
/// network decides the zone (`Config::zone_of`), so `wan` can be `0.0.0.0/0` around a `lan`.
/// CIDR blocks are either nested or disjoint, so after sorting by start address it is enough
/// to compare each block with those still open around it.
fn overlaps(all: &[(IpNet, String, usize)], errs: &mut Errors) {
    for (i, (net, path, zone)) in all.iter().enumerate() {
        let clash = all[..i].iter().find(|(other, _, other_zone)| {
            let nested = other.contains(net) || net.contains(other);
            nested && (other_zone == zone || other == net)
        });
        if let Some((other, other_path, other_zone)) = clash {
            let why = if other_zone == zone {
                "a network may belong to one zone only, once"
            } else {
                "a network may belong to one zone only (a more specific one may sit inside \
                 another zone's)"
            };
            err(
                errs,
                path.clone(),
                format!("`{net}` overlaps `{other}` ({other_path}); {why}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_problem("example.com"), None);
        assert_eq!(host_problem("pbx-1.corp.example"), None);
        assert_eq!(host_problem("192.168.10.1"), None);
        assert_eq!(host_problem("[2001:db8::1]"), None);
        assert!(host_problem("2001:db8::1").unwrap().contains("brackets"));
        assert!(host_problem("bad_name").is_some());
        assert!(host_problem("-a.example").is_some());
        assert!(host_problem("192.168.10.300").is_some());
        assert!(host_problem("a..b").is_some());
    }

    #[test]
    fn names() {
        assert_eq!(name_problem("lan", "_-"), None);
        assert!(name_problem("", "_-").is_some());
        assert!(name_problem("-x", "_-").is_some());
        assert!(name_problem("a b", "_-").is_some());
    }

    #[test]
    fn documented_ranges_match() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let row = |field: &str| -> String {
            let start = doc
                .find(&format!("\n| `{field}` |"))
                .unwrap_or_else(|| panic!("no row for {field}"));
            doc[start + 1..].lines().next().unwrap().to_owned()
        };
        for (field, (lo, hi)) in [
            ("t1_ms", limits::T1_MS),
            ("t2_ms", limits::T2_MS),
            ("t4_ms", limits::T4_MS),
            ("max_transactions", limits::MAX_TRANSACTIONS),
            ("trying_after_ms", limits::TRYING_AFTER_MS),
            ("tcp_idle_timeout_s", limits::TCP_IDLE_TIMEOUT_S),
            ("max_connections", limits::MAX_CONNECTIONS),
            ("max_connections_per_source", limits::MAX_CONNECTIONS),
            ("udp_mtu", limits::UDP_MTU),
            (
                "crlf_keepalive_interval_s",
                limits::CRLF_KEEPALIVE_INTERVAL_S,
            ),
            ("crlf_keepalive_timeout_s", limits::CRLF_KEEPALIVE_TIMEOUT_S),
            ("socket_recv_buffer_bytes", limits::SOCKET_BUFFER_BYTES),
            ("socket_send_buffer_bytes", limits::SOCKET_BUFFER_BYTES),
            ("min_expires", limits::EXPIRES),
            ("max_expires", limits::EXPIRES),
            ("max_forks", limits::MAX_FORKS),
            ("invite_timeout_s", limits::INVITE_TIMEOUT_S),
        ] {
            let r = row(field);
            assert!(r.contains(&format!("{lo} to {hi}")), "{field}: {r}");
        }
    }

    #[test]
    fn overlap_sweep() {
        // (network, zone): nested in the same zone, or the same network in two zones, is an
        // error; nested across zones is the "most specific wins" layout.
        let nets: Vec<(IpNet, String, usize)> = [
            ("10.0.0.0/8", 0),
            ("192.168.0.0/16", 0),
            ("10.1.0.0/16", 0),
            ("fd00::/8", 0),
            ("0.0.0.0/0", 1),
            ("10.2.0.0/16", 1),
            ("192.168.0.0/16", 1),
            ("::/0", 1),
        ]
        .iter()
        .enumerate()
        .map(|(i, (n, z))| (n.parse().unwrap(), format!("n[{i}]"), *z))
        .collect();
        let mut errs = Errors::new();
        overlaps(&nets, &mut errs);
        let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["n[2]", "n[5]", "n[6]"]);
    }
}
