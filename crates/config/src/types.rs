//! The configuration's types and their defaults.
//!
//! Every table refuses fields it does not know (`deny_unknown_fields`), so a misspelt name is an
//! error rather than a silently ignored line. Every field has a default, except a listener's
//! `address` and a zone's `name`, so an empty file is a complete configuration (the embedded
//! defaults, see `docs/CONFIG.md`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default SIP port (RFC 3261 section 19.1.2).
pub const SIP_PORT: u16 = 5060;

/// The name of the zone that exists when the file defines none, and that listeners belong to
/// when they name none.
pub const DEFAULT_ZONE: &str = "lan";

/// The whole configuration: one field per top-level table of the file.
///
/// Zones are the organising concept: every listener belongs to a zone, and every packet is
/// classified into the zone whose networks contain its source address. Later sections (media,
/// TLS, policy, auth, trunks) will hang off zones the same way listeners do.
///
/// Load it with [`Config::from_file`] or [`Config::from_str`]: deserializing it directly (it
/// implements `Deserialize`) checks types but none of the rules, and stops at the first error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[general]`
    pub general: GeneralConfig,
    /// `[[listen]]`
    pub listen: Vec<ListenConfig>,
    /// `[transaction]`
    pub transaction: TransactionConfig,
    /// `[transport]`
    pub transport: TransportConfig,
    /// `[registrar]`
    pub registrar: RegistrarConfig,
    /// `[proxy]`
    pub proxy: ProxyConfig,
    /// `[[zone]]`
    pub zone: Vec<ZoneConfig>,
    /// `[auth]`
    pub auth: crate::security::AuthSection,
    /// `[policy]`
    pub policy: crate::security::PolicyConfig,
    /// `[media]` (crate::media)
    pub media: crate::media::MediaConfig,
    /// `[b2bua]` (crate::media)
    pub b2bua: crate::media::B2buaConfig,
    /// `[tls]`
    pub tls: crate::tls::TlsConfig,
    /// `[[trunk]]` (crate::trunk)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trunk: Vec<crate::trunk::TrunkConfig>,
}

impl Default for Config {
    /// The built-in defaults, without the environment override (see
    /// [`Config::embedded_default`] for what `sipwarden run` uses).
    fn default() -> Self {
        Config {
            general: GeneralConfig::default(),
            listen: default_listeners(),
            transaction: TransactionConfig::default(),
            transport: TransportConfig::default(),
            registrar: RegistrarConfig::default(),
            proxy: ProxyConfig::default(),
            zone: default_zones(),
            auth: Default::default(),
            policy: Default::default(),
            media: Default::default(),
            b2bua: Default::default(),
            tls: crate::tls::TlsConfig::default(),
            trunk: Vec::new(),
        }
    }
}

impl Config {
    /// The zone with this name.
    pub fn zone(&self, name: &str) -> Option<&ZoneConfig> {
        self.zone.iter().find(|z| z.name == name)
    }

    /// The zone whose networks contain `addr`, if any: the one with the most specific network
    /// (longest prefix), so that `wan` may be written `0.0.0.0/0` next to a `lan`
    /// `192.168.10.0/24`. The same network in two zones is refused when loading, so there is
    /// at most one.
    pub fn zone_of(&self, addr: IpAddr) -> Option<&ZoneConfig> {
        let addr = addr.to_canonical();
        self.zone
            .iter()
            .filter_map(|z| z.prefix_len_of(addr).map(|len| (len, z)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, z)| z)
    }
}

/// `[general]`: settings of the process as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneralConfig {
    /// Where the embedded database and other state live.
    pub data_dir: PathBuf,
    /// The least severe level of log messages written.
    pub log_level: LogLevel,
    /// This node's name: in logs, and (later) in state shared between nodes.
    pub node_name: String,
    /// The value of the `Server` and `User-Agent` headers sipwarden adds; none by default, so that
    /// the product and version are not advertised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_header: Option<String>,
}

/// The default of `general.data_dir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/sipwarden";

impl Default for GeneralConfig {
    fn default() -> Self {
        GeneralConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log_level: LogLevel::Info,
            node_name: "sipwarden".to_owned(),
            server_header: None,
        }
    }
}

/// Log levels, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-packet traces.
    Trace,
    /// Details useful when looking into a problem.
    Debug,
    /// Normal operation: start, stop, reloads, registrations.
    Info,
    /// Something is wrong but sipwarden carries on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The name as written in the file (`"info"`), which is also the name `tracing` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[listen]]` entry: a socket sipwarden receives SIP on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// The zone that this socket belongs to.
    #[serde(default = "default_zone_name")]
    pub zone: String,
    /// The transport protocol.
    #[serde(default)]
    pub transport: Protocol,
    /// The local IP address and port, `IP:PORT` (`[IPv6]:PORT` for IPv6).
    #[serde(deserialize_with = "de_socket_addr")]
    pub address: SocketAddr,
}

fn default_zone_name() -> String {
    DEFAULT_ZONE.to_owned()
}

/// The listeners used when the file has no `[[listen]]`: UDP and TCP on every IPv4 address,
/// port 5060, in zone `lan`.
pub fn default_listeners() -> Vec<ListenConfig> {
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SIP_PORT);
    [Protocol::Udp, Protocol::Tcp]
        .into_iter()
        .map(|transport| ListenConfig {
            zone: default_zone_name(),
            transport,
            address: any,
        })
        .collect()
}

/// A listener's transport protocol. (`ws` and `wss` come with later milestones.)
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SIP over UDP.
    #[default]
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS (over TCP); see `[tls]`.
    Tls,
}

impl Protocol {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[transaction]`: the RFC 3261 section 17 timers and the transaction table's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionConfig {
    /// T1, the round-trip time estimate, in milliseconds.
    pub t1_ms: u32,
    /// T2, the longest retransmission interval of non-INVITE requests and INVITE responses.
    pub t2_ms: u32,
    /// T4, how long a message may stay in the network.
    pub t4_ms: u32,
    /// The most transactions (client and server) alive at once; more are refused with 503.
    pub max_transactions: u32,
    /// How long an INVITE server transaction waits for the next hop's answer before it sends
    /// `100 Trying` itself (RFC 3261 section 17.2.1 says 200 ms).
    pub trying_after_ms: u32,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_transactions: 640_000,
            trying_after_ms: 200,
        }
    }
}

impl TransactionConfig {
    /// T1 as a duration.
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms.into())
    }
    /// T2 as a duration.
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms.into())
    }
    /// T4 as a duration.
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms.into())
    }
    /// `trying_after_ms` as a duration.
    pub fn trying_after(&self) -> Duration {
        Duration::from_millis(self.trying_after_ms.into())
    }
}

/// `[transport]`: connections, datagrams and sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// A TCP connection on which nothing was received or sent for this long is closed.
    pub tcp_idle_timeout_s: u32,
    /// The most TCP connections from one source IP address at once.
    pub max_connections_per_source: u32,
    /// The most TCP connections at once, all sources together.
    pub max_connections: u32,
    /// A request larger than this many bytes is not sent over UDP but over TCP (RFC 3261
    /// section 18.1.1: 1300 when the path MTU is unknown).
    pub udp_mtu: u32,
    /// How often sipwarden sends a double-CRLF keep-alive ping (RFC 5626 section 4.4.1) on a TCP
    /// connection that it opened itself; 0 turns this off. Pings from peers are always answered.
    pub crlf_keepalive_interval_s: u32,
    /// How long to wait for the CRLF pong before closing that connection.
    pub crlf_keepalive_timeout_s: u32,
    /// `SO_RCVBUF` of the SIP sockets in bytes; none leaves the operating system's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_recv_buffer_bytes: Option<u32>,
    /// `SO_SNDBUF` of the SIP sockets in bytes; none leaves the operating system's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_send_buffer_bytes: Option<u32>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            tcp_idle_timeout_s: 600,
            max_connections_per_source: 32,
            max_connections: 10_000,
            udp_mtu: 1300,
            crlf_keepalive_interval_s: 120,
            crlf_keepalive_timeout_s: 10,
            socket_recv_buffer_bytes: None,
            socket_send_buffer_bytes: None,
        }
    }
}

impl TransportConfig {
    /// `tcp_idle_timeout_s` as a duration.
    pub fn tcp_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.tcp_idle_timeout_s.into())
    }
    /// The keep-alive ping interval, or none when pings are off.
    pub fn crlf_keepalive_interval(&self) -> Option<Duration> {
        (self.crlf_keepalive_interval_s > 0)
            .then(|| Duration::from_secs(self.crlf_keepalive_interval_s.into()))
    }
    /// `crlf_keepalive_timeout_s` as a duration.
    pub fn crlf_keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.crlf_keepalive_timeout_s.into())
    }
}

/// `[registrar]`: the built-in registrar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Whether sipwarden answers REGISTER itself.
    pub enabled: bool,
    /// The domains it is the registrar for; empty means any host that is one of sipwarden's own
    /// addresses.
    pub domains: Vec<String>,
    /// Shorter registrations are refused with `423 Interval Too Brief`.
    pub min_expires: u32,
    /// Longer registrations are shortened to this.
    pub max_expires: u32,
    /// The registration interval when the REGISTER names none.
    pub default_expires: u32,
    /// Where requests for a registered contact go: its Contact URI, or the address (and
    /// connection) its REGISTER came from.
    pub contact_routing: ContactRouting,
    /// `local`: sipwarden is the registrar; `relay`: bindings are kept here with their flows and
    /// registered at `upstream` under a Contact of sipwarden's.
    pub mode: RegistrarMode,
    /// The upstream registrar (the PBX), `sip:IP[:PORT][;transport=tcp]`; needed by `relay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// How long the upstream registrar is asked to keep sipwarden's binding (s).
    pub upstream_expires: u32,
    /// The registration interval granted to phones behind NAT (s); 0: as for any phone.
    pub nat_expires: u32,
    /// Keep-alive interval of bindings behind NAT (s); 0: none.
    pub nat_keepalive_s: u32,
    /// How a UDP binding behind NAT is kept alive (streams always get CRLF CRLF).
    pub nat_keepalive_method: KeepaliveMethod,
    /// Consecutive keep-alive failures after which a binding is removed.
    pub nat_keepalive_failures: u32,
}

/// `registrar.mode`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RegistrarMode {
    /// sipwarden is the registrar.
    #[default]
    Local,
    /// REGISTERs are relayed to `registrar.upstream`.
    Relay,
}

/// `registrar.nat_keepalive_method`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum KeepaliveMethod {
    /// An OPTIONS request; a timeout counts as a failure.
    #[default]
    Options,
    /// A CRLF CRLF datagram; nothing comes back.
    Crlf,
}

/// `registrar.contact_routing`: where requests for a registered contact are sent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ContactRouting {
    /// To the REGISTER's source address and flow when NAT was detected (the source differs
    /// from what the UA wrote about itself), else to the Contact URI.
    #[default]
    Auto,
    /// Always to the Contact URI (third-party registration, RFC 3261 10.2).
    Contact,
    /// Always to the REGISTER's source address and flow.
    Source,
}

impl ContactRouting {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactRouting::Auto => "auto",
            ContactRouting::Contact => "contact",
            ContactRouting::Source => "source",
        }
    }
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            enabled: true,
            domains: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            contact_routing: ContactRouting::Auto,
            mode: RegistrarMode::Local,
            upstream: None,
            upstream_expires: 600,
            nat_expires: 0,
            nat_keepalive_s: 0,
            nat_keepalive_method: KeepaliveMethod::Options,
            nat_keepalive_failures: 3,
        }
    }
}

/// `[proxy]`: the built-in proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Whether sipwarden adds a `Record-Route` header, to stay in the path of the dialog.
    pub record_route: bool,
    /// The most branches one request is forked to (one per registered contact).
    pub max_forks: u32,
    /// Timer C (RFC 3261 section 16.6): an INVITE branch without a final response after this
    /// many seconds is cancelled.
    pub invite_timeout_s: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            record_route: true,
            max_forks: 10,
            invite_timeout_s: 180,
        }
    }
}

impl ProxyConfig {
    /// Timer C as a duration.
    pub fn invite_timeout(&self) -> Duration {
        Duration::from_secs(self.invite_timeout_s.into())
    }
}

/// One `[[zone]]`: a named set of networks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's name, which listeners refer to.
    pub name: String,
    /// The networks whose addresses belong to this zone, in CIDR notation.
    #[serde(
        default,
        deserialize_with = "de_networks",
        serialize_with = "ser_networks"
    )]
    pub networks: Vec<IpNet>,
    /// The host of the From URI of calls that leave into this zone through the B2BUA; none:
    /// our address in the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Peers in this zone are trusted (the LAN): redirects reach them, reason phrases from
    /// them are not rewritten.
    #[serde(default)]
    pub trusted: bool,
    /// Where requests from other zones for the enterprise's users go (the PBX):
    /// `sip:IP[:PORT][;transport=...]` or `IP:PORT`, in this zone's networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
}

impl ZoneConfig {
    /// Whether `addr` is in one of this zone's networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&addr))
    }

    /// The prefix length of this zone's most specific network holding `addr`, if any.
    pub fn prefix_len_of(&self, addr: IpAddr) -> Option<u8> {
        self.networks
            .iter()
            .filter(|n| n.contains(&addr))
            .map(IpNet::prefix_len)
            .max()
    }
}

/// The "local networks": RFC 1918 private IPv4, IPv4 and IPv6 loopback, and IPv6 unique local
/// addresses (RFC 4193). The default zone `lan` covers exactly these.
pub fn local_networks() -> Vec<IpNet> {
    let v4 = |a, b, c, d, len| {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len).expect("valid prefix length"))
    };
    let v6 = |addr: Ipv6Addr, len| IpNet::V6(Ipv6Net::new(addr, len).expect("valid prefix length"));
    vec![
        v4(127, 0, 0, 0, 8),
        v4(10, 0, 0, 0, 8),
        v4(172, 16, 0, 0, 12),
        v4(192, 168, 0, 0, 16),
        v6(Ipv6Addr::LOCALHOST, 128),
        v6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    ]
}

/// The zones used when the file has no `[[zone]]`: one, `lan`, covering the local networks.
pub fn default_zones() -> Vec<ZoneConfig> {
    vec![ZoneConfig {
        name: default_zone_name(),
        networks: local_networks(),
        domain: None,
        trusted: false,
        next_hop: None,
    }]
}

fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    d.deserialize_str(ParseVisitor {
        what: "a socket address, IP:PORT",
        parse: |text: &str| {
            text.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "`{text}` is not an IP:PORT socket address \
                     (e.g. 192.168.10.1:5060 or [2001:db8::1]:5060)"
                )
            })
        },
    })
}

/// Parses a string inside the deserializer's visit, so that an error carries the string's own
/// position (an error raised after `String::deserialize` returned would be placed at the
/// enclosing array or key).
struct ParseVisitor<T> {
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> serde::de::Visitor<'_> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }
}

/// One CIDR, parsed with a message that says what was expected. A bare address is a network of
/// one address (`/32` or `/128`).
struct Network(IpNet);

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseVisitor {
            what: "a network in CIDR notation",
            parse: |text: &str| {
                parse_network(text).map(Network).ok_or_else(|| {
                    format!(
                        "`{text}` is not a network in CIDR notation \
                         (e.g. 192.168.10.0/24 or fd00::/8)"
                    )
                })
            },
        })
    }
}

fn parse_network(text: &str) -> Option<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

fn de_networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Ok(Vec::<Network>::deserialize(d)?
        .into_iter()
        .map(|n| n.0)
        .collect())
}

fn ser_networks<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nets.iter().map(|n| n.to_string()))
}
