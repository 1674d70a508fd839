//! From the configuration file's types to the settings of the transport and the engine, which
//! do not read the file themselves.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use call_engine::{
    ContactRouting, EngineConfig, KeepaliveMethod, Listener, LocalIdentity, ProxySettings,
    RegistrarMode, RegistrarSettings, RelaySettings, Transport,
};
use config::{Config, Protocol};
use sip_transport::tls::{
    CertFiles, ClientAuth, ClientTls, ClientTlsConfig, ServerTls, ServerTlsConfig, SniCert,
};
use sip_transport::{TlsError, TlsListener, TlsRequired, TransportConfig};

/// The transport's settings: the listeners' addresses, socket buffers, TCP limits.
pub fn transport(config: &Config) -> TransportConfig {
    let addrs = |p: Protocol| -> Vec<SocketAddr> {
        config
            .listen
            .iter()
            .filter(|l| l.transport == p)
            .map(|l| l.address)
            .collect()
    };
    let t = &config.transport;
    TransportConfig {
        udp: addrs(Protocol::Udp),
        tcp: addrs(Protocol::Tcp),
        udp_recv_buffer: t.socket_recv_buffer_bytes.map(|b| b as usize),
        udp_send_buffer: t.socket_send_buffer_bytes.map(|b| b as usize),
        udp_mtu: t.udp_mtu as usize,
        tcp_idle_timeout: t.tcp_idle_timeout(),
        max_connections: t.max_connections as usize,
        max_connections_per_ip: t.max_connections_per_source as usize,
        // Responses over UDP go back to the source address and port of their request (RFC
        // 3581 symmetric response routing, for every client): a client behind NAT, or one
        // whose Via names a port or transport it is not reachable at (RFC 4475 bext01), is
        // answered where it sent from.
        force_rport: true,
        ..TransportConfig::default()
    }
}

/// What the TLS listener of `zone` serves: the `[tls]` certificates, with the zone's client
/// certificate policy.
pub fn server_tls(config: &Config, zone: &str) -> Option<ServerTls> {
    let t = &config.tls;
    let default = CertFiles {
        chain: t.certificate.clone()?,
        key: t.private_key.clone()?,
    };
    let policy = t.zone_policy(zone);
    Some(ServerTls {
        default,
        sni: t
            .sni
            .iter()
            .map(|s| SniCert {
                names: s.names.clone(),
                files: CertFiles {
                    chain: s.certificate.clone(),
                    key: s.private_key.clone(),
                },
            })
            .collect(),
        client_auth: policy.client_ca.map(|ca| ClientAuth {
            ca,
            crl: policy.crl,
            required: policy.require_client_cert,
        }),
    })
}

/// How outgoing TLS verifies servers.
pub fn client_tls(config: &Config) -> ClientTls {
    let t = &config.tls;
    ClientTls {
        ca_bundle: t.ca_bundle.clone(),
        certificate: match (&t.client_certificate, &t.client_private_key) {
            (Some(c), Some(k)) => Some(CertFiles {
                chain: c.clone(),
                key: k.clone(),
            }),
            _ => None,
        },
    }
}

/// Whether the configuration has a TLS listener, TLS files or a zone that requires TLS.
pub fn tls_in_use(config: &Config) -> bool {
    let t = &config.tls;
    config.listen.iter().any(|l| l.transport == Protocol::Tls)
        || !t.certificate_files().is_empty()
        || t.ca_bundle.is_some()
        || t.zone.values().any(|z| z.require_tls)
}

/// What a TLS configuration could not load, with the field that names it.
#[derive(Debug)]
pub struct TlsSetupError {
    pub what: String,
    pub error: TlsError,
}

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.error)
    }
}

/// Adds the TLS listeners (their files loaded), the outgoing TLS configuration and the zones
/// that require TLS to the transport's settings. The outgoing configuration is left out, with
/// a warning returned, when it relies on the system's trust anchors and there are none (then
/// only requests that need TLS fail).
pub fn add_tls(config: &Config, t: &mut TransportConfig) -> Result<Vec<String>, TlsSetupError> {
    let mut warnings = Vec::new();
    for (i, l) in config.listen.iter().enumerate() {
        if l.transport != Protocol::Tls {
            continue;
        }
        let what = format!("listen[{i}] (tls {}, zone {})", l.address, l.zone);
        let Some(server) = server_tls(config, &l.zone) else {
            return Err(TlsSetupError {
                what,
                error: TlsError::Rustls("tls.certificate and tls.private_key are required".into()),
            });
        };
        let cfg = ServerTlsConfig::server(server).map_err(|error| TlsSetupError { what, error })?;
        t.tls.push(TlsListener {
            addr: l.address,
            config: cfg,
        });
    }
    let c = &config.tls;
    match ClientTlsConfig::client(client_tls(config)) {
        Ok(cfg) => t.tls_client = Some(cfg),
        Err(error @ TlsError::NoSystemRoots(_)) => {
            // Only worth a word when the configuration uses TLS at all.
            if tls_in_use(config) {
                warnings.push(format!(
                    "outgoing TLS is off: {error}; set tls.ca_bundle (or install the system's \
                     CA certificates)"
                ));
            }
        }
        Err(error) => {
            return Err(TlsSetupError {
                what: "tls.ca_bundle / tls.client_certificate".into(),
                error,
            })
        }
    }
    t.tls_handshake_timeout = c.handshake_timeout();
    t.tls_handshakes_per_second = c.handshakes_per_second;
    t.tls_handshakes_per_source = c.handshakes_per_second_per_source;
    t.tls_reload_check = c.reload_check();
    if config
        .zone
        .iter()
        .any(|z| c.zone_policy(&z.name).require_tls)
    {
        // By the address's zone (the most specific network), so that a `wan` of 0.0.0.0/0
        // requiring TLS does not take in the LAN nested inside it.
        let zones = config.clone();
        t.tls_required = TlsRequired::new(move |ip| {
            zones
                .zone_of(ip)
                .is_some_and(|z| zones.tls.zone_policy(&z.name).require_tls)
        });
    }
    Ok(warnings)
}

/// The sockets actually bound, in the order of the configuration's listeners of each transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

/// The engine's settings. `bound` are the sockets the transport bound; `local_ips` the
/// addresses of the machine's interfaces, which a wildcard listener (`0.0.0.0`, `::`) stands
/// for.
///
/// A wildcard listener becomes one engine listener per interface address of its family
/// (non-loopback ones first), so that a Request-URI or Via naming any of them is recognised as
/// this element and our Via names a real address. When `registrar.domains` is empty, the
/// registrar serves the hosts that are sipwarden's own addresses (docs/CONFIG.md).
pub fn engine(config: &Config, bound: &Bound, local_ips: &[IpAddr], seed: u64) -> EngineConfig {
    let mut listeners = Vec::new();
    let each = bound
        .udp
        .iter()
        .map(|a| (Transport::Udp, *a))
        .chain(bound.tcp.iter().map(|a| (Transport::Tcp, *a)))
        .chain(bound.tls.iter().map(|a| (Transport::Tls, *a)));
    for (transport, addr) in each {
        if addr.ip().is_unspecified() {
            let mut ips: Vec<IpAddr> = local_ips
                .iter()
                .copied()
                .filter(|ip| ip.is_ipv4() == addr.is_ipv4())
                .collect();
            ips.sort_by_key(|ip| ip.is_loopback());
            if ips.is_empty() {
                listeners.push(Listener::new(transport, addr));
            }
            for ip in ips {
                listeners.push(Listener::new(transport, SocketAddr::new(ip, addr.port())));
            }
        } else {
            listeners.push(Listener::new(transport, addr));
        }
    }

    let r = &config.registrar;
    let domains = if r.domains.is_empty() {
        let mut own: Vec<String> = listeners
            .iter()
            .map(|l| l.address.ip())
            .filter(|ip| !ip.is_unspecified())
            .map(host_text)
            .collect();
        let mut seen = std::collections::HashSet::new();
        own.retain(|h| seen.insert(h.clone()));
        own
    } else {
        r.domains.iter().map(|d| d.to_ascii_lowercase()).collect()
    };
    let registrar = RegistrarSettings {
        enabled: r.enabled,
        domains,
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        contact_routing: match r.contact_routing {
            config::ContactRouting::Auto => ContactRouting::Auto,
            config::ContactRouting::Contact => ContactRouting::Contact,
            config::ContactRouting::Source => ContactRouting::Source,
        },
        relay: RelaySettings {
            mode: match r.mode {
                config::RegistrarMode::Local => RegistrarMode::Local,
                config::RegistrarMode::Relay => RegistrarMode::Relay,
            },
            upstream: r.upstream.clone(),
            upstream_expires: r.upstream_expires,
            nat_expires: (r.nat_expires > 0).then_some(r.nat_expires),
            nat_keepalive: (r.nat_keepalive_s > 0)
                .then(|| std::time::Duration::from_secs(r.nat_keepalive_s.into())),
            keepalive_method: match r.nat_keepalive_method {
                config::KeepaliveMethod::Options => KeepaliveMethod::Options,
                config::KeepaliveMethod::Crlf => KeepaliveMethod::Crlf,
            },
            keepalive_failures: r.nat_keepalive_failures,
        },
        ..RegistrarSettings::default()
    };

    let p = &config.proxy;
    let proxy = ProxySettings {
        record_route: p.record_route,
        max_forks: p.max_forks as usize,
        timer_c: p.invite_timeout(),
        ..ProxySettings::default()
    };

    let tc = &config.transaction;
    let mut transaction = sip_transaction::Config::with_t1(tc.t1());
    transaction.t2 = tc.t2();
    transaction.t4 = tc.t4();
    transaction.max_transactions = tc.max_transactions as usize;
    transaction.trying_delay = Some(tc.trying_after());
    transaction.seed = seed;

    EngineConfig {
        transaction,
        registrar,
        proxy,
        identity: LocalIdentity {
            hostnames: Vec::new(),
            listeners,
            record_route: None,
        },
        server_header: config.general.server_header.clone(),
        seed,
    }
}

/// An address as a SIP host: IPv6 in brackets.
fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// A seed that differs from process to process (branches and tags must be unique across
/// space and time, RFC 3261 8.1.1.7), from the standard library's randomly keyed hasher.
pub fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load(text: &str) -> Config {
        Config::from_str_with(text, "t.toml", &config::Overrides::none()).unwrap()
    }

    #[test]
    fn transport_settings_follow_the_file() {
        let c = load(
            "[[listen]]\naddress = \"127.0.0.1:5070\"\n\
             [[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:5071\"\n\
             [transport]\nudp_mtu = 1400\nmax_connections = 50\nmax_connections_per_source = 5\n\
             tcp_idle_timeout_s = 30\nsocket_recv_buffer_bytes = 65536\n",
        );
        let t = transport(&c);
        assert_eq!(t.udp, ["127.0.0.1:5070".parse().unwrap()]);
        assert_eq!(t.tcp, ["127.0.0.1:5071".parse().unwrap()]);
        assert_eq!(t.udp_mtu, 1400);
        assert_eq!(t.max_connections, 50);
        assert_eq!(t.max_connections_per_ip, 5);
        assert_eq!(t.tcp_idle_timeout, Duration::from_secs(30));
        assert_eq!(t.udp_recv_buffer, Some(65536));
        assert_eq!(t.udp_send_buffer, None);
    }

    #[test]
    fn engine_settings_follow_the_file() {
        let c = load(
            "[general]\nserver_header = \"sw\"\n\
             [[listen]]\naddress = \"127.0.0.1:5070\"\n\
             [transaction]\nt1_ms = 250\nt2_ms = 2000\nt4_ms = 2500\ntrying_after_ms = 100\n\
             max_transactions = 7\n\
             [registrar]\ndomains = [\"Corp.Example\"]\nmin_expires = 120\nmax_expires = 1800\n\
             default_expires = 600\n\
             [proxy]\nmax_forks = 4\ninvite_timeout_s = 120\nrecord_route = false\n",
        );
        let bound = Bound {
            udp: vec!["127.0.0.1:5070".parse().unwrap()],
            tcp: vec![],
            tls: vec![],
        };
        let e = engine(&c, &bound, &[], 42);
        assert_eq!(e.transaction.t1, Duration::from_millis(250));
        assert_eq!(e.transaction.t2, Duration::from_secs(2));
        assert_eq!(e.transaction.t4, Duration::from_millis(2500));
        assert_eq!(e.transaction.trying_delay, Some(Duration::from_millis(100)));
        assert_eq!(e.transaction.max_transactions, 7);
        assert_eq!(e.transaction.seed, 42);
        assert_eq!(e.seed, 42);
        assert_eq!(e.registrar.domains, ["corp.example"]);
        assert_eq!(
            (
                e.registrar.min_expires,
                e.registrar.max_expires,
                e.registrar.default_expires
            ),
            (120, 1800, 600)
        );
        assert_eq!(e.proxy.max_forks, 4);
        assert_eq!(e.proxy.timer_c, Duration::from_secs(120));
        assert!(!e.proxy.record_route);
        assert_eq!(e.server_header.as_deref(), Some("sw"));
        assert_eq!(
            e.identity.listeners,
            [Listener::new(
                Transport::Udp,
                "127.0.0.1:5070".parse().unwrap()
            )]
        );
    }

    #[test]
    fn a_wildcard_listener_stands_for_every_local_address_of_its_family() {
        let c = load("");
        let bound = Bound {
            udp: vec!["0.0.0.0:5060".parse().unwrap()],
            tcp: vec!["0.0.0.0:5060".parse().unwrap()],
            tls: vec![],
        };
        let ips: Vec<IpAddr> = ["127.0.0.1", "192.168.1.5", "fd00::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let e = engine(&c, &bound, &ips, 1);
        let l: Vec<String> = e
            .identity
            .listeners
            .iter()
            .map(|l| format!("{:?} {}", l.transport, l.address))
            .collect();
        assert_eq!(
            l,
            [
                "Udp 192.168.1.5:5060",
                "Udp 127.0.0.1:5060",
                "Tcp 192.168.1.5:5060",
                "Tcp 127.0.0.1:5060"
            ]
        );
        // No domain in the file: the registrar serves our own addresses.
        assert_eq!(e.registrar.domains, ["192.168.1.5", "127.0.0.1"]);

        let v6 = Bound {
            udp: vec!["[::]:5060".parse().unwrap()],
            tcp: vec![],
            tls: vec![],
        };
        let e = engine(&c, &v6, &ips, 1);
        assert_eq!(e.registrar.domains, ["[fd00::5]"]);
    }

    #[test]
    fn require_tls_zones_and_tls_listeners_reach_the_transport() {
        let c = load(
            "[[listen]]\ntransport = \"udp\"\naddress = \"192.168.1.1:5060\"\nzone = \"lan\"\n\
             [[zone]]\nname = \"lan\"\nnetworks = [\"192.168.0.0/16\"]\n\
             [[zone]]\nname = \"wan\"\nnetworks = [\"198.51.100.0/24\"]\n\
             [tls]\nhandshakes_per_second = 50\nhandshakes_per_second_per_source = 2\n\
             ca_bundle = \"/nonexistent/ca.pem\"\n\
             [tls.zone.wan]\nrequire_tls = true\n",
        );
        let mut t = transport(&c);
        // The CA bundle does not exist: named in the error.
        let e = add_tls(&c, &mut t).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let mut c2 = c.clone();
        c2.tls.ca_bundle = None;
        let mut t = transport(&c2);
        // Without system roots on this machine outgoing TLS is off with a warning; either way
        // the policy and limits are set.
        let _ = add_tls(&c2, &mut t).unwrap();
        assert_eq!(t.tls_handshakes_per_second, 50);
        assert_eq!(t.tls_handshakes_per_source, 2);
        assert!(t.tls_required.applies("198.51.100.7".parse().unwrap()));
        assert!(!t.tls_required.applies("192.168.1.7".parse().unwrap()));
        assert!(t.tls.is_empty());
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
