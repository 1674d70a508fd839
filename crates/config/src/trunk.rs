//! `[[trunk]]` (SIP trunks to providers) and a zone's `next_hop`, with their checks: the
//! routing of the enterprise edge (calls to numbers leave by a trunk, calls from the trunks
//! and from remote users go to the PBX).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::types::{Config, SIP_PORT};

/// Transport towards a trunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS (port 5061 unless given).
    Tls,
}

impl TrunkTransport {
    /// The port when the address names none.
    pub fn default_port(self) -> u16 {
        match self {
            TrunkTransport::Tls => crate::tls::SIPS_PORT,
            _ => SIP_PORT,
        }
    }

    /// Connection-oriented (TCP, TLS).
    pub fn reliable(self) -> bool {
        !matches!(self, TrunkTransport::Udp)
    }
}

/// What sipwarden does with a REFER on calls with a trunk (`refer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferMode {
    /// sipwarden carries out the transfer itself; the provider never sees a REFER.
    #[default]
    Local,
    /// The REFER goes to the other leg, for providers that handle transfers.
    Passthrough,
}

/// One `[[trunk]]`: a SIP provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// The trunk's name (logs, CDRs).
    pub name: String,
    /// The zone the provider is reached in (`wan`).
    pub zone: String,
    /// Where calls to the trunk go: `IP:PORT`, `IP`, or `sip:IP[:PORT][;transport=...]`.
    pub address: String,
    /// Transport towards the trunk.
    #[serde(default)]
    pub transport: TrunkTransport,
    /// Calls from this zone to numbers and foreign domains leave by this trunk.
    pub from_zone: String,
    /// Which calls: number prefixes (`+49`, `00`, `*` for any) and domains (`example.com`,
    /// `*.example.com`). Empty: every number and every foreign domain.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
    /// REFER on calls with this trunk.
    #[serde(default)]
    pub refer: ReferMode,
    /// Source networks that identify the provider (its calls are trunk calls: not challenged,
    /// never banned or rate-limited). Empty: the address's IP alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// A trunk's `address`, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkAddress {
    /// Where to send.
    pub addr: SocketAddr,
    /// The transport (a URI's `transport` parameter wins over `transport`).
    pub transport: TrunkTransport,
}

impl TrunkConfig {
    /// The decoded `address`; the error says what is wrong.
    pub fn target(&self) -> Result<TrunkAddress, String> {
        parse_sip_address(&self.address, self.transport)
    }

    /// The networks that identify the trunk's traffic (`sources`, else the address's IP).
    /// Entries that do not parse are skipped (loading refuses them).
    pub fn source_networks(&self) -> Vec<IpNet> {
        if self.sources.is_empty() {
            return self
                .target()
                .map(|t| vec![IpNet::from(t.addr.ip())])
                .unwrap_or_default();
        }
        self.sources.iter().filter_map(|s| parse_net(s)).collect()
    }
}

impl Config {
    /// The trunk whose source networks hold `addr`, if any (the first in file order).
    pub fn trunk_of(&self, addr: IpAddr) -> Option<&TrunkConfig> {
        let addr = addr.to_canonical();
        self.trunk
            .iter()
            .find(|t| t.source_networks().iter().any(|n| n.contains(&addr)))
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `IP:PORT`, `IP`, `[v6]:PORT` or `sip:`/`sips:` with those and an optional `transport`
/// parameter. Host names are refused: trunks are addressed by IP (no DNS here yet).
pub fn parse_sip_address(text: &str, transport: TrunkTransport) -> Result<TrunkAddress, String> {
    let example = "e.g. `203.0.113.10:5060` or `sip:203.0.113.10:5060;transport=tcp`";
    let mut transport = transport;
    let hostport = if let Some(rest) = text.strip_prefix("sip:").or_else(|| {
        text.strip_prefix("sips:")
            .inspect(|_| transport = TrunkTransport::Tls)
    }) {
        let mut parts = rest.split(';');
        let hp = parts.next().unwrap_or("");
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) if k.eq_ignore_ascii_case("transport") => {
                    transport = match v.to_ascii_lowercase().as_str() {
                        "udp" => TrunkTransport::Udp,
                        "tcp" => TrunkTransport::Tcp,
                        "tls" => TrunkTransport::Tls,
                        other => {
                            return Err(format!(
                                "transport `{other}` is not one of udp, tcp, tls ({example})"
                            ))
                        }
                    }
                }
                None if p.eq_ignore_ascii_case("lr") => {}
                _ => return Err(format!("unknown URI parameter `{p}` ({example})")),
            }
        }
        if hp.contains('@') {
            return Err(format!("must not have a user part ({example})"));
        }
        hp
    } else {
        text
    };
    if let Ok(a) = hostport.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("port 0 is not allowed ({example})"));
        }
        if a.ip().is_unspecified() || a.ip().is_multicast() {
            return Err(format!("`{}` is not a unicast address", a.ip()));
        }
        return Ok(TrunkAddress { addr: a, transport });
    }
    let bare = hostport
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hostport);
    match bare.parse::<IpAddr>() {
        Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => Ok(TrunkAddress {
            addr: SocketAddr::new(ip, transport.default_port()),
            transport,
        }),
        Ok(ip) => Err(format!("`{ip}` is not a unicast address")),
        Err(_) => Err(format!(
            "`{text}` is not an IP address with an optional port; host names are not resolved \
             here ({example})"
        )),
    }
}

/// Whether `p` is a well-formed `match` entry: a number prefix (digits, `+`, `*`, `#`) or a
/// domain (`example.com`, `*.example.com`).
fn match_problem(p: &str) -> Option<String> {
    if p.is_empty() {
        return Some("must not be empty".into());
    }
    let number = p.bytes().all(|b| b.is_ascii_digit() || b"+*#".contains(&b));
    if number {
        return None;
    }
    let domain = p.strip_prefix("*.").unwrap_or(p);
    let ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    (!ok).then(|| {
        format!(
            "`{p}` is neither a number prefix (digits, `+`, `*`, `#`: `+49`, `00`) nor a \
             domain (`example.com`, `*.example.com`)"
        )
    })
}

type Errors = Vec<(String, String)>;

pub(crate) fn validate(c: &Config, zone_index: &[usize], trunk_index: &[usize], errs: &mut Errors) {
    let zone_known = |n: &str| c.zone.iter().any(|z| z.name == n);
    for (pos, z) in c.zone.iter().enumerate() {
        let Some(hop) = &z.next_hop else { continue };
        let i = zone_index.get(pos).copied().unwrap_or(pos);
        let path = format!("zone[{i}].next_hop");
        match parse_sip_address(hop, TrunkTransport::Udp) {
            Err(p) => errs.push((path, p)),
            Ok(t) => {
                // By the most specific network: a wan of 0.0.0.0/0 does not reach the LAN.
                let owner = c.zone_of(t.addr.ip());
                if owner.is_none_or(|o| o.name != z.name) {
                    errs.push((
                        path,
                        format!(
                            "`{}` belongs to {}, not to zone `{}`: a zone's next hop must be \
                             reached in it",
                            t.addr.ip(),
                            owner.map_or("no zone".to_owned(), |o| format!("zone `{}`", o.name)),
                            z.name
                        ),
                    ));
                }
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for (pos, t) in c.trunk.iter().enumerate() {
        let i = trunk_index.get(pos).copied().unwrap_or(pos);
        let path = format!("trunk[{i}]");
        if t.name.is_empty()
            || t.name.len() > 63
            || !t
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            errs.push((
                format!("{path}.name"),
                "1 to 63 characters: ASCII letters, digits, `_`, `-`".into(),
            ));
        } else if names.contains(&t.name.as_str()) {
            errs.push((
                format!("{path}.name"),
                format!("duplicate trunk name `{}`", t.name),
            ));
        } else {
            names.push(&t.name);
        }
        for (field, zone) in [("zone", &t.zone), ("from_zone", &t.from_zone)] {
            if !zone_known(zone) {
                let known: Vec<String> = c.zone.iter().map(|z| format!("`{}`", z.name)).collect();
                errs.push((
                    format!("{path}.{field}"),
                    format!("unknown zone `{zone}`; the zones are {}", known.join(", ")),
                ));
            }
        }
        if t.zone == t.from_zone && zone_known(&t.zone) {
            errs.push((
                format!("{path}.from_zone"),
                format!(
                    "must differ from `zone` (`{}`): calls to a trunk cross from one zone \
                     to another",
                    t.zone
                ),
            ));
        }
        match t.target() {
            Err(p) => errs.push((format!("{path}.address"), p)),
            Ok(a) => {
                let zone = c.zone_of(a.addr.ip());
                if zone_known(&t.zone) && zone.is_none_or(|z| z.name != t.zone) {
                    errs.push((
                        format!("{path}.address"),
                        format!(
                            "`{}` is not in zone `{}`'s networks (it is in {})",
                            a.addr.ip(),
                            t.zone,
                            zone.map_or("no zone".to_owned(), |z| format!("zone `{}`", z.name))
                        ),
                    ));
                }
            }
        }
        for (j, m) in t.matches.iter().enumerate() {
            if let Some(p) = match_problem(m) {
                errs.push((format!("{path}.match[{j}]"), p));
            }
        }
        for (j, s) in t.sources.iter().enumerate() {
            match parse_net(s) {
                None => errs.push((
                    format!("{path}.sources[{j}]"),
                    format!("`{s}` is not a network in CIDR notation nor an address"),
                )),
                Some(n) if n.addr() != n.network() => errs.push((
                    format!("{path}.sources[{j}]"),
                    format!("`{n}` has host bits set; the network is `{}`", n.trunc()),
                )),
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let udp = TrunkTransport::Udp;
        let a = parse_sip_address("203.0.113.10:5080", udp).unwrap();
        assert_eq!(a.addr, "203.0.113.10:5080".parse().unwrap());
        assert_eq!(a.transport, udp);
        let a = parse_sip_address("sip:203.0.113.10;transport=TCP", udp).unwrap();
        assert_eq!(a.addr, "203.0.113.10:5060".parse().unwrap());
        assert_eq!(a.transport, TrunkTransport::Tcp);
        let a = parse_sip_address("sips:[2001:db8::1]", udp).unwrap();
        assert_eq!(a.addr, "[2001:db8::1]:5061".parse().unwrap());
        assert_eq!(a.transport, TrunkTransport::Tls);
        assert!(parse_sip_address("itsp.example.net:5060", udp)
            .unwrap_err()
            .contains("host names"));
        assert!(parse_sip_address("sip:bob@203.0.113.10", udp).is_err());
        assert!(parse_sip_address("sip:203.0.113.10;transport=sctp", udp).is_err());
        assert!(parse_sip_address("0.0.0.0:5060", udp).is_err());
        assert!(parse_sip_address("203.0.113.10:0", udp).is_err());
    }

    #[test]
    fn match_entries() {
        for ok in [
            "+49",
            "00",
            "*",
            "example.com",
            "*.example.com",
            "a-b.example",
        ] {
            assert_eq!(match_problem(ok), None, "{ok}");
        }
        for bad in ["", "*.", "ex ample.com", ".example.com", "sip:+49"] {
            assert!(match_problem(bad).is_some(), "{bad}");
        }
    }
}
