//! `[tls]`: certificates of the TLS listeners, SNI certificates, how outgoing TLS verifies
//! servers, handshake limits, and per-zone TLS policy (`[tls.zone.NAME]`: require TLS, mutual
//! TLS with a client CA and a CRL).
//!
//! The files are only named here; the binary loads them (`sipwarden check` too), so that this
//! crate stays free of TLS code. Certificate *files* are reloaded on SIGHUP and when they
//! change; the paths and limits below need a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::{Config, Protocol};

/// The default port of SIP over TLS (RFC 3261 section 19.1.2).
pub const SIPS_PORT: u16 = 5061;

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain (PEM, leaf first) served by every TLS listener when no SNI
    /// certificate matches. Required when a listener has `transport = "tls"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PathBuf>,
    /// Certificates chosen by the name the client asks for (SNI).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<SniConfig>,
    /// Trust anchors (PEM) for verifying the servers sipwarden connects to; without it, the
    /// system's (/etc/ssl/certs, or SSL_CERT_FILE / SSL_CERT_DIR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// A client certificate presented to servers that ask for one (mutual TLS towards a
    /// trunk), with `client_private_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// The private key of `client_certificate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_private_key: Option<PathBuf>,
    /// A handshake not finished in this time closes the connection.
    pub handshake_timeout_ms: u32,
    /// Inbound handshakes per second, all sources together (0: unlimited).
    pub handshakes_per_second: u32,
    /// Inbound handshakes per second from one IP address (0: unlimited).
    pub handshakes_per_second_per_source: u32,
    /// How often the certificate files are checked for changes, in seconds (0: only SIGHUP).
    pub reload_check_s: u32,
    /// `sipwarden check` and the daily log warn when a certificate ends within this many days.
    pub expiry_warning_days: u32,
    /// Per-zone policy, `[tls.zone.NAME]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub zone: BTreeMap<String, TlsZoneConfig>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: None,
            private_key: None,
            sni: Vec::new(),
            ca_bundle: None,
            client_certificate: None,
            client_private_key: None,
            handshake_timeout_ms: 5_000,
            handshakes_per_second: 500,
            handshakes_per_second_per_source: 20,
            reload_check_s: 5,
            expiry_warning_days: 14,
            zone: BTreeMap::new(),
        }
    }
}

impl TlsConfig {
    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.handshake_timeout_ms))
    }

    /// The file poll interval (None: only SIGHUP).
    pub fn reload_check(&self) -> Option<Duration> {
        (self.reload_check_s > 0).then(|| Duration::from_secs(u64::from(self.reload_check_s)))
    }

    /// The zone policy of `zone` (defaults when it has none).
    pub fn zone_policy(&self, zone: &str) -> TlsZoneConfig {
        self.zone.get(zone).cloned().unwrap_or_default()
    }

    /// Every certificate file this section names, with what it is, for `check` and the
    /// expiry warnings.
    pub fn certificate_files(&self) -> Vec<(String, PathBuf)> {
        let mut v = Vec::new();
        if let Some(c) = &self.certificate {
            v.push(("tls.certificate".to_owned(), c.clone()));
        }
        for (i, s) in self.sni.iter().enumerate() {
            v.push((format!("tls.sni[{i}].certificate"), s.certificate.clone()));
        }
        if let Some(c) = &self.client_certificate {
            v.push(("tls.client_certificate".to_owned(), c.clone()));
        }
        for (name, z) in &self.zone {
            if let Some(c) = &z.client_ca {
                v.push((format!("tls.zone.{name}.client_ca"), c.clone()));
            }
        }
        v
    }
}

/// `[[tls.sni]]`: a certificate for some server names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniConfig {
    /// The names (`sbc.example.com`, `*.example.com`); empty: the certificate's DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The chain (PEM, leaf first).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub private_key: PathBuf,
}

/// `[tls.zone.NAME]`: the TLS policy of a zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsZoneConfig {
    /// Nothing plain is accepted from or sent to this zone's networks: its listeners must be
    /// TLS, and a message that would leave over UDP/TCP to it is refused (503 to the caller).
    pub require_tls: bool,
    /// The zone's TLS listeners refuse clients without a certificate that chains to
    /// `client_ca` (mutual TLS).
    pub require_client_cert: bool,
    /// Trust anchors (PEM) for client certificates. Without `require_client_cert`, a
    /// certificate is optional but verified when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Certificate revocation lists (PEM) of those CAs; with one, a certificate whose status
    /// it cannot tell is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
}

/// Semantic checks of `[tls]` against the listeners and zones.
pub(crate) fn validate(c: &Config, listen_index: &[usize], errs: &mut Vec<(String, String)>) {
    let t = &c.tls;
    let mut err = |path: String, problem: String| errs.push((path, problem));
    let has_tls_listener = c.listen.iter().any(|l| l.transport == Protocol::Tls);
    if has_tls_listener && t.certificate.is_none() {
        err(
            "tls.certificate".into(),
            "a listener has transport = \"tls\": give the certificate chain (PEM) it serves".into(),
        );
    }
    if t.certificate.is_some() != t.private_key.is_some() {
        err(
            "tls.private_key".into(),
            "certificate and private_key go together".into(),
        );
    }
    if t.client_certificate.is_some() != t.client_private_key.is_some() {
        err(
            "tls.client_private_key".into(),
            "client_certificate and client_private_key go together".into(),
        );
    }
    if !(100..=60_000).contains(&t.handshake_timeout_ms) {
        err(
            "tls.handshake_timeout_ms".into(),
            format!("must be from 100 to 60000, got {}", t.handshake_timeout_ms),
        );
    }
    if t.reload_check_s > 86_400 {
        err(
            "tls.reload_check_s".into(),
            format!("must be from 0 to 86400, got {}", t.reload_check_s),
        );
    }
    if t.handshakes_per_second > 0 && t.handshakes_per_second_per_source > t.handshakes_per_second {
        err(
            "tls.handshakes_per_second_per_source".into(),
            format!(
                "must not be more than handshakes_per_second ({}), got {}",
                t.handshakes_per_second, t.handshakes_per_second_per_source
            ),
        );
    }
    for (name, z) in &t.zone {
        let path = format!("tls.zone.{name}");
        if c.zone(name).is_none() {
            let names: Vec<&str> = c.zone.iter().map(|z| z.name.as_str()).collect();
            err(
                path.clone(),
                format!(
                    "zone `{name}` is not defined; defined zones: {}",
                    names.join(", ")
                ),
            );
        }
        if z.require_client_cert && z.client_ca.is_none() {
            err(
                format!("{path}.client_ca"),
                "require_client_cert needs the CA (PEM) client certificates chain to".into(),
            );
        }
        if z.crl.is_some() && z.client_ca.is_none() {
            err(
                format!("{path}.crl"),
                "a CRL needs client_ca (client certificates are only checked against it)".into(),
            );
        }
        if z.require_tls {
            for (pos, l) in c.listen.iter().enumerate() {
                if l.zone == *name && l.transport != Protocol::Tls {
                    let i = listen_index.get(pos).copied().unwrap_or(pos);
                    err(
                        format!("listen[{i}].transport"),
                        format!(
                            "zone `{name}` requires TLS (tls.zone.{name}.require_tls): a {} \
                             listener would accept plain text",
                            l.transport
                        ),
                    );
                }
            }
        }
    }
    // A TLS and a TCP listener cannot share an address: both are TCP sockets.
    for (pos, l) in c.listen.iter().enumerate() {
        if l.transport != Protocol::Tls {
            continue;
        }
        let clash = c.listen.iter().any(|o| {
            o.transport == Protocol::Tcp
                && o.address.port() == l.address.port()
                && o.address.is_ipv4() == l.address.is_ipv4()
                && (o.address.ip() == l.address.ip()
                    || o.address.ip().is_unspecified()
                    || l.address.ip().is_unspecified())
        });
        if clash {
            let i = listen_index.get(pos).copied().unwrap_or(pos);
            err(
                format!("listen[{i}].address"),
                format!(
                    "tls {} and a tcp listener use the same port; TLS is usually port {SIPS_PORT}",
                    l.address
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn errors(text: &str) -> Vec<String> {
        match Config::from_str(text, "t.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.to_lines(),
        }
    }

    const ZONES: &str = "[[zone]]\nname = \"lan\"\nnetworks = [\"192.168.0.0/16\"]\n\
                         [[zone]]\nname = \"wan\"\nnetworks = [\"198.51.100.0/24\"]\n";

    #[test]
    fn a_full_tls_section_loads() {
        let text = format!(
            "[[listen]]\naddress = \"192.168.1.1:5060\"\nzone = \"lan\"\n\
             [[listen]]\ntransport = \"tls\"\naddress = \"198.51.100.1:5061\"\nzone = \"wan\"\n\
             {ZONES}\
             [tls]\ncertificate = \"/etc/sw/sbc.pem\"\nprivate_key = \"/etc/sw/sbc.key\"\n\
             ca_bundle = \"/etc/sw/ca.pem\"\nhandshakes_per_second = 100\n\
             handshakes_per_second_per_source = 5\nreload_check_s = 0\n\
             [[tls.sni]]\nnames = [\"a.example.com\"]\ncertificate = \"/a.pem\"\nprivate_key = \"/a.key\"\n\
             [tls.zone.wan]\nrequire_tls = true\nrequire_client_cert = true\n\
             client_ca = \"/etc/sw/clients.pem\"\ncrl = \"/etc/sw/clients.crl\"\n"
        );
        let c = Config::from_str(&text, "t.toml").unwrap();
        assert_eq!(c.listen[1].transport, crate::Protocol::Tls);
        assert_eq!(c.tls.handshakes_per_second, 100);
        assert_eq!(c.tls.reload_check(), None);
        let wan = c.tls.zone_policy("wan");
        assert!(wan.require_tls && wan.require_client_cert);
        assert!(!c.tls.zone_policy("lan").require_tls);
        assert_eq!(c.tls.sni[0].names, ["a.example.com"]);
        assert_eq!(c.tls.certificate_files().len(), 3);
    }

    #[test]
    fn mistakes_are_located() {
        let text = format!(
            "[[listen]]\naddress = \"192.168.1.1:5060\"\nzone = \"wan\"\n\
             [[listen]]\ntransport = \"tls\"\naddress = \"0.0.0.0:5060\"\nzone = \"wan\"\n\
             [[listen]]\ntransport = \"tcp\"\naddress = \"192.168.1.1:5060\"\nzone = \"lan\"\n\
             {ZONES}\
             [tls]\nprivate_key = \"/k\"\nhandshake_timeout_ms = 5\n\
             [tls.zone.wan]\nrequire_tls = true\nrequire_client_cert = true\n\
             [tls.zone.dmz]\ncrl = \"/c\"\n"
        );
        let e = errors(&text).join("\n");
        for want in [
            "tls.certificate: a listener has transport = \"tls\"",
            "tls.private_key: certificate and private_key go together",
            "tls.handshake_timeout_ms: must be from 100 to 60000, got 5",
            "tls.zone.wan.client_ca: require_client_cert needs",
            "tls.zone.dmz: zone `dmz` is not defined",
            "tls.zone.dmz.crl: a CRL needs client_ca",
            "t.toml:1: listen[0].transport: zone `wan` requires TLS",
            "listen[1].address: tls 0.0.0.0:5060 and a tcp listener use the same port",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
        assert!(errors("[tls]\nbogus = 1\n")[0].contains("tls.bogus"));
    }

    #[test]
    fn the_defaults_need_no_tls() {
        let c = Config::default();
        assert!(c.tls.certificate.is_none());
        assert_eq!(c.tls.expiry_warning_days, 14);
        assert_eq!(c.tls.handshake_timeout(), std::time::Duration::from_secs(5));
    }
}
