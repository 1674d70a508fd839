//! Plain settings of the engine. The crate does not read the configuration file: the binary maps
//! `config::Config` onto these structs, so that the engine can be built in tests without it.

use std::net::SocketAddr;
use std::time::Duration;

/// A SIP transport, as written in Via and in the `transport` URI parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// The Via token (`UDP`, `TCP`, ...).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The `transport` URI parameter value (`udp`, `tcp`, ...).
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Parses a Via token or URI parameter value, case-insensitively.
    pub fn parse(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return None,
        })
    }

    /// Everything but UDP is a stream (no retransmission timers).
    pub fn reliable(self) -> bool {
        self != Transport::Udp
    }

    /// 5061 for TLS, 5060 otherwise (RFC 3261 19.1.2; WS ports are not defaulted by SIP).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls | Transport::Wss => 5061,
            _ => 5060,
        }
    }
}

/// One socket the shell listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub transport: Transport,
    /// The bound address (may be a wildcard address).
    pub address: SocketAddr,
    /// The `host[:port]` written into Via and Record-Route when it differs from `address` (a
    /// public address in front of a NAT, a host name). Without it, `address` is written.
    pub advertise: Option<String>,
}

impl Listener {
    pub fn new(transport: Transport, address: SocketAddr) -> Listener {
        Listener {
            transport,
            address,
            advertise: None,
        }
    }

    /// `host:port` as written into Via sent-by and Record-Route.
    pub fn sent_by(&self) -> String {
        match &self.advertise {
            Some(a) => a.clone(),
            None => match self.address {
                SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
                SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            },
        }
    }
}

/// Who this element is: the names and addresses that make a URI "us" (RFC 3261 16.4: a Route
/// value or Request-URI pointing at this proxy) and what it writes into Via and Record-Route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Host names of this element itself (`sbc.example.com`): a URI with one of these hosts,
    /// on any port, is this element. The domains it serves go in
    /// [`RegistrarSettings::domains`].
    pub hostnames: Vec<String>,
    /// The sockets the shell listens on; the first one of a transport writes its Via.
    pub listeners: Vec<Listener>,
    /// A fixed Record-Route URI (`sip:sbc.example.com;lr`), instead of one built from the
    /// listener of the incoming transport.
    pub record_route: Option<String>,
}

/// How a location-service target set is forked (RFC 3261 16.6 and 16.7 item 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForkMode {
    /// Every binding at once.
    #[default]
    Parallel,
    /// Bindings grouped by `q` (highest first; a binding without `q` counts as 1.0): the
    /// bindings of one group are tried in parallel, the next group only when the whole group
    /// failed without a 2xx or 6xx.
    QGroups,
}

/// Registrar settings (RFC 3261 section 10.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarSettings {
    /// Off: a REGISTER for one of our domains is answered 403.
    pub enabled: bool,
    /// The domains we are registrar and location service for, lower case (`example.com`).
    pub domains: Vec<String>,
    /// Below it (and above 0) a REGISTER gets 423 Interval Too Brief with Min-Expires.
    pub min_expires: u32,
    /// Longer requests are shortened to it.
    pub max_expires: u32,
    /// When neither the Contact `expires` parameter nor Expires says.
    pub default_expires: u32,
    /// Most bindings an AOR may have (403 beyond), `None` for no limit.
    pub max_bindings: Option<usize>,
    /// How often lapsed bindings are purged from the store.
    pub purge_interval: Duration,
    /// Where requests for a registered contact go.
    pub contact_routing: ContactRouting,
    /// Registration relay to an upstream registrar, and keep-alives of NATed bindings
    /// (module `regrelay`).
    pub relay: RelaySettings,
}

/// Whether REGISTERs are kept here or relayed to an upstream registrar (the PBX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrarMode {
    /// sipwarden is the registrar: bindings stay here.
    #[default]
    Local,
    /// Bindings are kept here (with their flows) and registered at [`RelaySettings::upstream`]
    /// under a Contact of sipwarden's that names the binding.
    Relay,
}

/// How a NATed binding's pinhole is kept open over UDP (streams always get a double CRLF,
/// RFC 5626 section 3.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepaliveMethod {
    /// An OPTIONS request: any response proves the flow alive, a timeout counts as a failure.
    #[default]
    Options,
    /// A bare CRLF CRLF datagram: cheap, but nothing comes back to tell a dead flow.
    Crlf,
}

/// Registration relay and NAT keep-alive settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    pub mode: RegistrarMode,
    /// The upstream registrar's URI (`sip:192.168.10.10:5060`), required in relay mode.
    pub upstream: Option<String>,
    /// The expiry granted to bindings behind NAT (shorter than asked, never longer); `None`:
    /// as for any other binding.
    pub nat_expires: Option<u32>,
    /// How long sipwarden asks the upstream registrar to keep its binding.
    pub upstream_expires: u32,
    /// Keep-alive interval of NATed bindings; `None`: no keep-alives.
    pub nat_keepalive: Option<Duration>,
    pub keepalive_method: KeepaliveMethod,
    /// Consecutive keep-alive failures after which a binding is removed (here and upstream).
    pub keepalive_failures: u32,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            mode: RegistrarMode::Local,
            upstream: None,
            nat_expires: None,
            upstream_expires: 600,
            nat_keepalive: None,
            keepalive_method: KeepaliveMethod::Options,
            keepalive_failures: 3,
        }
    }
}

/// Where requests for a registered contact are sent (a binding with a Path always goes by its
/// Path, RFC 3327).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContactRouting {
    /// To the REGISTER's source address and flow when NAT was detected at registration (see
    /// the crate documentation), else to the Contact URI.
    #[default]
    Auto,
    /// Always to the Contact URI (RFC 3261 10: third-party registration).
    Contact,
    /// Always to the REGISTER's source address and flow.
    Source,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        RegistrarSettings {
            enabled: true,
            domains: Vec::new(),
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_bindings: Some(16),
            purge_interval: Duration::from_secs(60),
            contact_routing: ContactRouting::Auto,
            relay: RelaySettings::default(),
        }
    }
}

/// Proxy settings (RFC 3261 section 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Insert Record-Route (with `;lr`) into dialog-creating requests (16.6 item 4).
    pub record_route: bool,
    /// Most branches one request is forked to (extra bindings are ignored, lowest q first).
    pub max_forks: usize,
    /// Timer C for INVITE branches (16.6 item 11: more than 3 minutes).
    pub timer_c: Duration,
    pub fork_mode: ForkMode,
    /// Option tags accepted in Proxy-Require (16.3 item 5); anything else gets 420.
    pub proxy_require_supported: Vec<String>,
    /// Detect loops (16.3 item 4) and answer them 482.
    pub loop_detection: bool,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            record_route: true,
            max_forks: 10,
            timer_c: Duration::from_secs(180),
            fork_mode: ForkMode::Parallel,
            proxy_require_supported: Vec::new(),
            loop_detection: true,
        }
    }
}

/// Everything [`crate::Engine::new`] takes besides the store.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub transaction: sip_transaction::Config,
    pub registrar: RegistrarSettings,
    pub proxy: ProxySettings,
    pub identity: LocalIdentity,
    /// `Server`/`User-Agent` text for the responses the engine makes, if any.
    pub server_header: Option<String>,
    /// Seed of the loop-detection hash (and, unless set there, of the transaction layer's
    /// branches and tags). Give every process a random one.
    pub seed: u64,
}
