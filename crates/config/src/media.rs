//! `[media]` (the media relay, `[[media.zone]]` per zone) and `[b2bua]` (what crosses between
//! the two legs of a call between zones), with their checks.
//!
//! With two zones or more (and `media.enabled`), a call whose target is in another zone than
//! its caller goes through the B2BUA and its media through the relay; with one zone everything
//! is proxied and no media port is opened.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::Config;

/// `[media]`: the media relay of calls between zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Calls between zones go through the B2BUA with their media relayed. Only with two zones
    /// or more; off: every call is proxied, media flows end to end.
    pub enabled: bool,
    /// A call with no media relayed for this long ends (BYE both ways).
    pub timeout_s: u32,
    /// How long a released port pair stays unused. Together with the range it bounds the call
    /// rate: about (pairs in the range) / (call length + quarantine) new calls per second.
    pub quarantine_s: u32,
    /// Packet worker threads; 0: one per core.
    pub workers: u32,
    /// Once a leg has latched, its port gets a second socket connected to the latched peer:
    /// the kernel's cheaper path for the peer's packets. Off: one socket per port, half the
    /// descriptors.
    pub connect_latched: bool,
    /// Forward settled RTP in the kernel (a tc BPF program at ingress): a latched peer's plain
    /// IPv4 RTP goes to the other leg's latched peer without waking the relay. Needs root
    /// (CAP_BPF and CAP_NET_ADMIN); the relay does not start when it cannot be set up.
    pub kernel_forward: bool,
    /// The interfaces the kernel path attaches to; absent: every Ethernet and loopback
    /// interface present at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_forward_interfaces: Option<Vec<String>>,
    /// The host firewall that follows the media ports.
    pub firewall: Firewall,
    /// The nftables table of `firewall = "nftables"`.
    pub firewall_table: String,
    /// Lifetime of a firewall element that is not refreshed.
    pub firewall_element_timeout_s: u32,
    /// `[[media.zone]]`: per zone settings; a zone without an entry takes the defaults.
    pub zone: Vec<MediaZoneConfig>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            enabled: true,
            timeout_s: 60,
            quarantine_s: 5,
            workers: 0,
            connect_latched: true,
            kernel_forward: false,
            kernel_forward_interfaces: None,
            firewall: Firewall::Off,
            firewall_table: "sipwarden_media".to_owned(),
            firewall_element_timeout_s: 900,
            zone: Vec::new(),
        }
    }
}

/// `media.firewall`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firewall {
    /// No host firewall: a media port no call holds is closed by having no socket.
    #[default]
    Off,
    /// nftables sets follow the relay's sockets (needs CAP_NET_ADMIN and `nft`).
    Nftables,
}

/// `media.zone[].latching`: which source a relay leg accepts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Latching {
    /// Only the address and port of the peer's SDP.
    Strict,
    /// The SDP's address, any port.
    SdpAddress,
    /// As `sdp-address`, but a peer whose SDP names a private address is behind NAT: its first
    /// packet's source is latched (symmetric RTP).
    Nat,
}

/// `media.zone[].srtp`: what the relay does with SRTP facing the zone (media-srtp's policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrtpMode {
    /// Plain RTP, unless the zone's own offer carries `a=crypto` or the other zone rekeys.
    #[default]
    Plain,
    /// SRTP (SDES) on this zone's side, terminated by the relay.
    Terminate,
    /// SRTP with the relay's own keys on both sides of calls with this zone.
    Rekey,
    /// Keys and packets untouched (end-to-end SRTP), unless the other zone terminates.
    Passthrough,
}

impl SrtpMode {
    /// The configuration spelling, which is also media-srtp's.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpMode::Plain => "plain",
            SrtpMode::Terminate => "terminate",
            SrtpMode::Rekey => "rekey",
            SrtpMode::Passthrough => "passthrough",
        }
    }
}

/// The SDES suites sipwarden implements, in its default order of preference.
pub const SRTP_SUITES: [&str; 3] = [
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AEAD_AES_128_GCM",
];

/// One `[[media.zone]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaZoneConfig {
    /// The `[[zone]]` this applies to.
    pub zone: String,
    /// Where the zone's media sockets bind; default: the address of the zone's first listener
    /// (which must then not be a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// The address written into SDP when it differs from `bind` (1:1 NAT in front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<IpAddr>,
    /// The port range, `"MIN-MAX"`.
    #[serde(default)]
    pub ports: PortRange,
    /// Default: `"sdp-address"` in a trusted zone, `"nat"` in the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latching: Option<Latching>,
    /// A latched peer silent this long may be replaced by a new source; 0: never.
    #[serde(default)]
    pub relatch_after_silence_s: u32,
    /// SRTP facing this zone.
    #[serde(default)]
    pub srtp: SrtpMode,
    /// SDES suites accepted from and offered to this zone, preferred first; empty: all of
    /// [`SRTP_SUITES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srtp_suites: Vec<String>,
}

/// A UDP port range, written `"16384-32767"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub min: u16,
    /// Last port.
    pub max: u16,
}

/// The default range: 8192 even/odd pairs, all below Linux's ephemeral port range
/// (32768-60999 by default), so outgoing connections and DNS queries never take a media port.
impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            min: 16384,
            max: 32767,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port range, \"MIN-MAX\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<PortRange, E> {
                let parsed = text
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
                match parsed {
                    Some((min, max)) => Ok(PortRange { min, max }),
                    None => Err(E::custom(format!(
                        "`{text}` is not a port range MIN-MAX (e.g. 30000-39999)"
                    ))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// `[b2bua]`: what crosses from one leg of a call between zones to the other. Everything not
/// listed stays on its side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct B2buaConfig {
    /// Header fields copied between legs (case-insensitive names).
    pub pass_headers: Vec<String>,
    /// Copy P-Asserted-Identity (host mapped) and Privacy.
    pub pass_asserted_identity: bool,
    /// Copy User-Agent and Server.
    pub pass_user_agent: bool,
    /// Pass 3xx responses into an untrusted zone (otherwise they become 480).
    pub pass_redirects_to_untrusted: bool,
    /// Body types copied as they are (SDP always goes through the media relay).
    pub pass_body_types: Vec<String>,
    /// Session interval asked for on the callee's leg (RFC 4028); 0: none unless a peer asks.
    pub session_expires_s: u32,
    /// Our Min-SE (at least 90).
    pub min_se_s: u32,
    /// Messages kept per call for its ladder diagram.
    pub history_limit: u32,
}

impl Default for B2buaConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        B2buaConfig {
            pass_headers: s(&[
                "Allow",
                "Accept",
                "Accept-Language",
                "Subject",
                "Priority",
                "Reason",
                "Retry-After",
                "Content-Disposition",
                "Info-Package",
                "Recv-Info",
                "Event",
                "Unsupported",
            ]),
            pass_asserted_identity: false,
            pass_user_agent: false,
            pass_redirects_to_untrusted: false,
            pass_body_types: s(&["application/dtmf-relay", "application/dtmf", "text/plain"]),
            session_expires_s: 1800,
            min_se_s: 90,
            history_limit: 64,
        }
    }
}

impl Config {
    /// Whether calls between zones go through the B2BUA with relayed media.
    pub fn media_active(&self) -> bool {
        self.media.enabled && self.zone.len() >= 2
    }

    /// The media settings of zone `name`: its `[[media.zone]]` or the defaults.
    pub fn media_zone(&self, name: &str) -> MediaZoneConfig {
        self.media
            .zone
            .iter()
            .find(|m| m.zone == name)
            .cloned()
            .unwrap_or_else(|| MediaZoneConfig {
                zone: name.to_owned(),
                bind: None,
                advertise: None,
                ports: PortRange::default(),
                latching: None,
                relatch_after_silence_s: 0,
                srtp: SrtpMode::Plain,
                srtp_suites: Vec::new(),
            })
    }

    /// Where zone `name`'s media binds: `bind`, else its first listener's specific address.
    pub fn media_bind(&self, name: &str) -> Option<IpAddr> {
        self.media_zone(name).bind.or_else(|| {
            self.listen
                .iter()
                .filter(|l| l.zone == name)
                .map(|l: &crate::ListenConfig| l.address)
                .map(|a: SocketAddr| a.ip())
                .find(|ip| !ip.is_unspecified())
        })
    }

    /// The latching of zone `name` (its default follows `trusted`).
    pub fn media_latching(&self, name: &str) -> Latching {
        let trusted = self.zone(name).is_some_and(|z| z.trusted);
        self.media_zone(name).latching.unwrap_or(if trusted {
            Latching::SdpAddress
        } else {
            Latching::Nat
        })
    }
}

type Errors = Vec<(String, String)>;

fn err(errs: &mut Errors, path: impl Into<String>, problem: impl Into<String>) {
    errs.push((path.into(), problem.into()));
}

fn range(errs: &mut Errors, path: &str, value: u32, (lo, hi): (u32, u32)) {
    if value < lo || value > hi {
        err(
            errs,
            path,
            format!("must be from {lo} to {hi}, got {value}"),
        );
    }
}

/// Checks of `[media]`, `[[media.zone]]`, `[b2bua]` and the zones' `domain`.
pub(crate) fn validate(c: &Config, zone_index: &[usize], errs: &mut Errors) {
    let m = &c.media;
    range(errs, "media.timeout_s", m.timeout_s, (1, 86_400));
    range(errs, "media.quarantine_s", m.quarantine_s, (0, 3_600));
    range(errs, "media.workers", m.workers, (0, 256));
    range(
        errs,
        "media.firewall_element_timeout_s",
        m.firewall_element_timeout_s,
        (60, 86_400),
    );
    let table_ok = !m.firewall_table.is_empty()
        && m.firewall_table.len() <= 63
        && m.firewall_table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !table_ok {
        err(
            errs,
            "media.firewall_table",
            "must be 1 to 63 ASCII letters, digits or `_`",
        );
    }
    if let Some(ifs) = &m.kernel_forward_interfaces {
        if ifs.is_empty() {
            err(
                errs,
                "media.kernel_forward_interfaces",
                "must name at least one interface (leave it out for all of them)",
            );
        }
        for (i, name) in ifs.iter().enumerate() {
            // Linux interface names: 1 to 15 octets, no `/`, `:` or white space.
            let ok = !name.is_empty()
                && name.len() <= 15
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
            let path = format!("media.kernel_forward_interfaces[{i}]");
            if !ok {
                err(
                    errs,
                    path,
                    format!("`{name}` is not an interface name (1 to 15 characters, no `/`, `:` or spaces)"),
                );
            } else if ifs.get(..i).is_some_and(|before| before.contains(name)) {
                err(errs, path, format!("`{name}` is listed twice"));
            }
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, z) in m.zone.iter().enumerate() {
        let path = format!("media.zone[{i}]");
        if c.zone(&z.zone).is_none() {
            let names: Vec<&str> = c.zone.iter().map(|z| z.name.as_str()).collect();
            err(
                errs,
                format!("{path}.zone"),
                format!(
                    "zone `{}` is not defined; defined zones: {}",
                    z.zone,
                    names.join(", ")
                ),
            );
        } else if let Some(first) = seen.insert(&z.zone, i) {
            err(
                errs,
                format!("{path}.zone"),
                format!(
                    "zone `{}` has media settings already, media.zone[{first}]",
                    z.zone
                ),
            );
        }
        let p = z.ports;
        if p.min < 1024 || p.max <= p.min || p.max - p.min < 3 {
            err(
                errs,
                format!("{path}.ports"),
                format!("must be MIN-MAX with 1024 <= MIN and at least 4 ports, got `{p}`"),
            );
        }
        for (name, ip) in [("bind", z.bind), ("advertise", z.advertise)] {
            if let Some(ip) = ip {
                if ip.is_multicast() || (name == "advertise" && ip.is_unspecified()) {
                    err(
                        errs,
                        format!("{path}.{name}"),
                        format!("`{ip}` is not a unicast address"),
                    );
                }
            }
        }
        if m.firewall == Firewall::Nftables && z.bind.is_some_and(|ip| ip.is_unspecified()) {
            err(
                errs,
                format!("{path}.bind"),
                "firewall = \"nftables\" needs a specific address (its drop rule names it)",
            );
        }
        if z.relatch_after_silence_s > 86_400 {
            err(
                errs,
                format!("{path}.relatch_after_silence_s"),
                format!("must be from 0 to 86400, got {}", z.relatch_after_silence_s),
            );
        }
        for (j, suite) in z.srtp_suites.iter().enumerate() {
            if !SRTP_SUITES.contains(&suite.as_str()) {
                err(
                    errs,
                    format!("{path}.srtp_suites[{j}]"),
                    format!(
                        "unknown suite `{suite}` (one of {})",
                        SRTP_SUITES.join(", ")
                    ),
                );
            }
        }
    }
    // Two zones binding the same address must not share ports.
    if c.media_active() {
        let mut binds: Vec<(IpAddr, PortRange, String)> = Vec::new();
        for (pos, z) in c.zone.iter().enumerate() {
            let zpath = format!("zone[{}]", zone_index.get(pos).copied().unwrap_or(pos));
            let mz = c.media_zone(&z.name);
            // A zone without a media address takes no part in the B2BUA: its calls are proxied
            // (sipwarden warns at start).
            if let Some(ip) = c.media_bind(&z.name) {
                {
                    if let Some((_, _, other)) = binds.iter().find(|(b, r, _)| {
                        *b == ip && r.min <= mz.ports.max && mz.ports.min <= r.max
                    }) {
                        err(
                            errs,
                            zpath.clone(),
                            format!(
                                "its media ports {} on {ip} overlap those of zone `{other}`; \
                                 give one of them other [[media.zone]] ports",
                                mz.ports
                            ),
                        );
                    }
                    binds.push((ip, mz.ports, z.name.clone()));
                }
            }
        }
    }
    for (pos, z) in c.zone.iter().enumerate() {
        if let Some(d) = &z.domain {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
            if !ok {
                let i = zone_index.get(pos).copied().unwrap_or(pos);
                err(
                    errs,
                    format!("zone[{i}].domain"),
                    format!("`{d}` is not a host name or IP address (e.g. example.com)"),
                );
            }
        }
    }
    let b = &c.b2bua;
    for (i, h) in b.pass_headers.iter().enumerate() {
        let token = !h.is_empty()
            && h.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c));
        if !token {
            err(
                errs,
                format!("b2bua.pass_headers[{i}]"),
                format!("`{h}` is not a header name"),
            );
        }
    }
    for (i, t) in b.pass_body_types.iter().enumerate() {
        let ok = t.split_once('/').is_some_and(|(a, s)| {
            !a.is_empty() && !s.is_empty() && !t.contains(char::is_whitespace)
        });
        if !ok {
            err(
                errs,
                format!("b2bua.pass_body_types[{i}]"),
                format!("`{t}` is not a media type TYPE/SUBTYPE"),
            );
        }
    }
    range(errs, "b2bua.min_se_s", b.min_se_s, (90, 86_400));
    if b.session_expires_s != 0 && b.session_expires_s < b.min_se_s.max(90) {
        err(
            errs,
            "b2bua.session_expires_s",
            format!(
                "must be 0 (none) or at least min_se_s ({}), got {}",
                b.min_se_s, b.session_expires_s
            ),
        );
    }
    range(errs, "b2bua.history_limit", b.history_limit, (0, 1_024));
}

#[cfg(test)]
mod tests {
    use crate::{Config, Overrides};

    fn load(text: &str) -> Result<Config, String> {
        Config::from_str_with(text, "t.toml", &Overrides::none()).map_err(|e| e.to_string())
    }

    const TWO: &str = "[[zone]]\nname = \"lan\"\nnetworks = [\"127.0.1.0/24\"]\ntrusted = true\n\
        [[zone]]\nname = \"wan\"\nnetworks = [\"127.0.2.0/24\"]\ndomain = \"sbc.example\"\n\
        [[listen]]\nzone = \"lan\"\naddress = \"127.0.1.1:5060\"\n\
        [[listen]]\nzone = \"wan\"\naddress = \"127.0.2.1:5060\"\n";

    #[test]
    fn srtp_per_zone_defaults_to_plain_and_suites_are_checked() {
        let c = load(TWO).unwrap();
        assert_eq!(c.media_zone("wan").srtp, super::SrtpMode::Plain);
        let text = format!(
            "{TWO}[[media.zone]]\nzone = \"wan\"\nsrtp = \"terminate\"\n\
             srtp_suites = [\"AEAD_AES_128_GCM\"]\n"
        );
        let c = load(&text).unwrap();
        let wan = c.media_zone("wan");
        assert_eq!(wan.srtp, super::SrtpMode::Terminate);
        assert_eq!(wan.srtp_suites, vec!["AEAD_AES_128_GCM".to_owned()]);
        let bad = format!("{TWO}[[media.zone]]\nzone = \"wan\"\nsrtp = \"always\"\n");
        assert!(load(&bad).is_err());
        let bad =
            format!("{TWO}[[media.zone]]\nzone = \"wan\"\nsrtp_suites = [\"NULL_HMAC_SHA1_80\"]\n");
        let e = load(&bad).unwrap_err();
        assert!(e.contains("srtp_suites[0]"), "{e}");
    }

    #[test]
    fn two_zones_turn_media_on_with_defaults_from_the_listeners() {
        let c = load(TWO).unwrap();
        assert!(c.media_active());
        assert_eq!(c.media_bind("wan"), Some("127.0.2.1".parse().unwrap()));
        assert_eq!(c.media_latching("lan"), super::Latching::SdpAddress);
        assert_eq!(c.media_latching("wan"), super::Latching::Nat);
        assert_eq!(
            c.zone("wan").unwrap().domain.as_deref(),
            Some("sbc.example")
        );
        assert!(!Config::default().media_active());
    }

    #[test]
    fn media_errors_are_located() {
        let text = format!(
            "{TWO}[media]\ntimeout_s = 0\n[[media.zone]]\nzone = \"dmz\"\nports = \"40000-3\"\n\
             [b2bua]\nsession_expires_s = 10\n"
        );
        let e = load(&text).unwrap_err();
        for want in [
            "t.toml:16: media.timeout_s: must be from 1 to 86400, got 0",
            "t.toml:18: media.zone[0].zone: zone `dmz` is not defined; defined zones: lan, wan",
            "t.toml:19: media.zone[0].ports: must be MIN-MAX",
            "t.toml:21: b2bua.session_expires_s: must be 0 (none) or at least min_se_s (90), got 10",
        ] {
            assert!(e.contains(want), "{want}\nnot in\n{e}");
        }
        let bad = format!("{TWO}[[media.zone]]\nzone = \"wan\"\nports = \"x\"\n");
        assert_eq!(
            load(&bad).unwrap_err(),
            "t.toml:17: media.zone[0].ports: `x` is not a port range MIN-MAX (e.g. 30000-39999)"
        );
    }

    #[test]
    fn connect_latched_defaults_on_and_can_be_turned_off() {
        assert!(load(TWO).unwrap().media.connect_latched);
        let off = load(&format!("{TWO}[media]\nconnect_latched = false\n")).unwrap();
        assert!(!off.media.connect_latched);
        // Written back by to_toml, so a saved configuration keeps it.
        assert!(off.to_toml().contains("connect_latched = false"));
        let bad = format!("{TWO}[media]\nconnect_latched = \"yes\"\n");
        assert!(load(&bad).unwrap_err().contains("connect_latched"));
    }

    #[test]
    fn kernel_forward_defaults_off_and_its_interfaces_are_checked() {
        let c = load(TWO).unwrap();
        assert!(!c.media.kernel_forward);
        assert_eq!(c.media.kernel_forward_interfaces, None);
        assert!(!c.to_toml().contains("kernel_forward_interfaces"));
        let on = load(&format!(
            "{TWO}[media]\nkernel_forward = true\nkernel_forward_interfaces = [\"eth0\", \"lo\"]\n"
        ))
        .unwrap();
        assert!(on.media.kernel_forward);
        assert_eq!(
            on.media.kernel_forward_interfaces,
            Some(vec!["eth0".to_owned(), "lo".to_owned()])
        );
        // Written back by to_toml, so a saved configuration keeps it.
        let saved = on.to_toml();
        assert!(saved.contains("kernel_forward = true"), "{saved}");
        assert!(saved.contains("kernel_forward_interfaces = ["), "{saved}");
        let bad = format!(
            "{TWO}[media]\nkernel_forward = true\nkernel_forward_interfaces = [\"eth0\", \"a/b\", \"eth0\", \"averylonginterface\"]\n"
        );
        let e = load(&bad).unwrap_err();
        for want in [
            "t.toml:17: media.kernel_forward_interfaces[1]: `a/b` is not an interface name",
            "t.toml:17: media.kernel_forward_interfaces[2]: `eth0` is listed twice",
            "t.toml:17: media.kernel_forward_interfaces[3]: `averylonginterface` is not an interface name",
        ] {
            assert!(e.contains(want), "{want}\nnot in\n{e}");
        }
        let empty = format!("{TWO}[media]\nkernel_forward_interfaces = []\n");
        assert!(load(&empty).unwrap_err().contains(
            "t.toml:16: media.kernel_forward_interfaces: must name at least one interface"
        ));
        let typo = format!("{TWO}[media]\nkernel_forward = \"yes\"\n");
        assert!(load(&typo).unwrap_err().contains("kernel_forward"));
    }

    #[test]
    fn a_wildcard_listener_gives_no_media_address() {
        let text = "[[zone]]\nname = \"lan\"\nnetworks = [\"10.0.0.0/8\"]\n\
            [[zone]]\nname = \"wan\"\nnetworks = [\"198.51.100.0/24\"]\n\
            [[listen]]\nzone = \"lan\"\naddress = \"10.0.0.1:5060\"\n\
            [[listen]]\nzone = \"wan\"\naddress = \"0.0.0.0:5062\"\n";
        assert_eq!(load(text).unwrap().media_bind("wan"), None);
        let ok = format!("{text}[[media.zone]]\nzone = \"wan\"\nbind = \"198.51.100.1\"\n");
        assert_eq!(
            load(&ok).unwrap().media_bind("wan"),
            Some("198.51.100.1".parse().unwrap())
        );
        let clash = format!(
            "{text}[[media.zone]]\nzone = \"wan\"\nbind = \"10.0.0.1\"\nports = \"20000-20999\"\n"
        );
        assert!(load(&clash)
            .unwrap_err()
            .contains("t.toml:4: zone[1]: its media ports 20000-20999 on 10.0.0.1 overlap those of zone `lan`"));
        let off = format!("{text}[media]\nenabled = false\n");
        assert!(!load(&off).unwrap().media_active());
    }
}
