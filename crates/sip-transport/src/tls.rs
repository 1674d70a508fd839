//! TLS settings: rustls server and client configurations built from PEM files, the SNI
//! certificate resolver, reloading (new handshakes use the new files, established connections
//! keep theirs), the verified peer's identity and certificate expiry.
//!
//! Protocol versions are TLS 1.2 and 1.3 only. The cipher suites are the *ring* provider's
//! defaults with anything that is not an AEAD removed (rustls ships none today; the filter
//! keeps it so if a provider ever adds one):
//! TLS 1.3 `TLS13_AES_256_GCM_SHA384`, `TLS13_AES_128_GCM_SHA256`,
//! `TLS13_CHACHA20_POLY1305_SHA256`; TLS 1.2 `TLS_ECDHE_{ECDSA,RSA}_WITH_AES_256_GCM_SHA384`,
//! `..._AES_128_GCM_SHA256`, `..._CHACHA20_POLY1305_SHA256`. RFC 3261's mandatory
//! `TLS_RSA_WITH_AES_128_CBC_SHA` is deliberately absent (no forward secrecy, CBC).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no private key in the file ({reason})")]
    NoKey { path: PathBuf, reason: String },
    #[error("{path}: the private key is unusable or does not match the certificate: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path}: not a usable CA certificate: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("{path}: no CRL in the file")]
    NoCrl { path: PathBuf },
    #[error("{path}: certificate does not parse: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("no usable system trust anchors: {0}")]
    NoSystemRoots(String),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// A certificate chain (leaf first) and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// A certificate served to clients that ask for one of `names` (SNI). Without names, the DNS
/// names of the certificate's subjectAltName are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    pub names: Vec<String>,
    pub files: CertFiles,
}

/// Client certificates on a listener (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// Trust anchors client certificates must chain to (PEM, one or more).
    pub ca: PathBuf,
    /// Revoked certificates (PEM CRLs of those CAs). With a CRL, a certificate whose status it
    /// cannot tell is refused.
    pub crl: Option<PathBuf>,
    /// Refuse clients without a certificate (else a certificate is optional but verified).
    pub required: bool,
}

/// What a TLS listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// Served when the client sends no SNI or a name no other certificate has.
    pub default: CertFiles,
    pub sni: Vec<SniCert>,
    pub client_auth: Option<ClientAuth>,
}

/// How outgoing TLS connections verify servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust anchors (PEM); None: the system's (rustls-native-certs: /etc/ssl/certs, or
    /// SSL_CERT_FILE / SSL_CERT_DIR).
    pub ca_bundle: Option<PathBuf>,
    /// Presented to servers that ask for a client certificate.
    pub certificate: Option<CertFiles>,
}

/// The crypto provider: *ring*, AEAD suites only.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.retain(is_aead);
    Arc::new(p)
}

fn is_aead(s: &SupportedCipherSuite) -> bool {
    let name = format!("{:?}", s.suite());
    name.contains("_GCM_") || name.contains("CHACHA20_POLY1305")
}

/// The names of the suites [`provider`] offers, for logs and documentation.
pub fn cipher_suite_names() -> Vec<String> {
    provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn read_err(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::NoKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A chain and its key, checked to match.
pub fn load_certified_key(files: &CertFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(&files.chain)?;
    let key = load_key(&files.key)?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| TlsError::BadKey {
            path: files.key.clone(),
            reason: e.to_string(),
        })
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| TlsError::BadCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| read_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(path, e))?;
    if crls.is_empty() {
        return Err(TlsError::NoCrl {
            path: path.to_owned(),
        });
    }
    Ok(crls)
}

/// Chooses the certificate by the client's SNI: an exact name, then a `*.` wildcard one label
/// deep, then the default.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    pub fn load(tls: &ServerTls) -> Result<SniResolver, TlsError> {
        let default = load_certified_key(&tls.default)?;
        let mut r = SniResolver {
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        for s in &tls.sni {
            let key = load_certified_key(&s.files)?;
            let names = if s.names.is_empty() {
                let leaf = key.cert.first().ok_or_else(|| TlsError::NoCertificate {
                    path: s.files.chain.clone(),
                })?;
                cert_summary(leaf)
                    .map_err(|reason| TlsError::BadCertificate {
                        path: s.files.chain.clone(),
                        reason,
                    })?
                    .dns_names
            } else {
                s.names.clone()
            };
            for n in names {
                let n = n.trim_end_matches('.').to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(parent) => r.wildcard.insert(parent.to_owned(), key.clone()),
                    None => r.exact.insert(n, key.clone()),
                };
            }
        }
        Ok(r)
    }

    /// The certificate for a client that asked for `name`.
    pub fn choose(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(hello.server_name()))
    }
}

/// A rustls server configuration for `tls`.
pub fn server_config(tls: &ServerTls) -> Result<ServerConfig, TlsError> {
    let resolver = Arc::new(SniResolver::load(tls)?);
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &tls.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let roots = Arc::new(load_roots(&auth.ca)?);
            let mut v = WebPkiClientVerifier::builder_with_provider(roots, provider());
            if let Some(crl) = &auth.crl {
                v = v.with_crls(load_crls(crl)?);
            }
            if !auth.required {
                v = v.allow_unauthenticated();
            }
            let v = v.build().map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_cert_resolver(resolver);
    // SIP is not negotiated by ALPN; no early data (requests are not idempotent).
    cfg.max_early_data_size = 0;
    Ok(cfg)
}

/// A rustls client configuration for outgoing connections.
pub fn client_config(tls: &ClientTls) -> Result<ClientConfig, TlsError> {
    let roots = match &tls.ca_bundle {
        Some(p) => load_roots(p)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), |e| e.to_string());
                return Err(TlsError::NoSystemRoots(why));
            }
            roots
        }
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots);
    match &tls.certificate {
        None => Ok(builder.with_no_client_auth()),
        Some(files) => {
            let chain = load_certs(&files.chain)?;
            let key = load_key(&files.key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::BadKey {
                    path: files.key.clone(),
                    reason: e.to_string(),
                })
        }
    }
}

/// The name an outgoing connection verifies: a DNS name, or an IP address (matched against
/// the certificate's IP subjectAltNames).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(h.trim_end_matches('.').to_owned()).ok()
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A configuration that can be rebuilt from its files: the current one is behind an
/// `ArcSwap`, so a handshake takes whichever is current when it starts and an established
/// connection keeps its own.
pub struct Reloadable<S, C> {
    settings: S,
    build: fn(&S) -> Result<C, TlsError>,
    files: fn(&S) -> Vec<PathBuf>,
    current: ArcSwap<C>,
    seen: std::sync::Mutex<Vec<Option<SystemTime>>>,
}

impl<S, C> fmt::Debug for Reloadable<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloadable").finish_non_exhaustive()
    }
}

/// A TLS listener's configuration, reloadable.
pub type ServerTlsConfig = Reloadable<ServerTls, ServerConfig>;
/// The outgoing connections' configuration, reloadable.
pub type ClientTlsConfig = Reloadable<ClientTls, ClientConfig>;

fn server_files(s: &ServerTls) -> Vec<PathBuf> {
    let mut v = vec![s.default.chain.clone(), s.default.key.clone()];
    for c in &s.sni {
        v.push(c.files.chain.clone());
        v.push(c.files.key.clone());
    }
    if let Some(a) = &s.client_auth {
        v.push(a.ca.clone());
        v.extend(a.crl.clone());
    }
    v
}

fn client_files(s: &ClientTls) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = s.ca_bundle.iter().cloned().collect();
    if let Some(c) = &s.certificate {
        v.push(c.chain.clone());
        v.push(c.key.clone());
    }
    v
}

impl Reloadable<ServerTls, ServerConfig> {
    /// Loads the files; fails when any is missing or wrong.
    pub fn server(settings: ServerTls) -> Result<Arc<ServerTlsConfig>, TlsError> {
        Reloadable::new(settings, server_config, server_files)
    }
}

impl Reloadable<ClientTls, ClientConfig> {
    pub fn client(settings: ClientTls) -> Result<Arc<ClientTlsConfig>, TlsError> {
        Reloadable::new(settings, client_config, client_files)
    }
}

impl<S, C> Reloadable<S, C> {
    fn new(
        settings: S,
        build: fn(&S) -> Result<C, TlsError>,
        files: fn(&S) -> Vec<PathBuf>,
    ) -> Result<Arc<Self>, TlsError> {
        let seen = files(&settings).iter().map(|p| mtime(p)).collect();
        let current = ArcSwap::from_pointee(build(&settings)?);
        Ok(Arc::new(Reloadable {
            settings,
            build,
            files,
            current,
            seen: std::sync::Mutex::new(seen),
        }))
    }

    pub fn settings(&self) -> &S {
        &self.settings
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<C> {
        self.current.load_full()
    }

    /// Rebuilds from the files. On error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps: Vec<_> = (self.files)(&self.settings)
            .iter()
            .map(|p| mtime(p))
            .collect();
        let c = (self.build)(&self.settings)?;
        self.current.store(Arc::new(c));
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        Ok(())
    }

    /// Reloads when a file's modification time changed since the last load. Ok(true): reloaded.
    /// A failed attempt is not retried until a file changes again.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps: Vec<_> = (self.files)(&self.settings)
            .iter()
            .map(|p| mtime(p))
            .collect();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == stamps {
                return Ok(false);
            }
            *seen = stamps;
        }
        let c = (self.build)(&self.settings)?;
        self.current.store(Arc::new(c));
        Ok(true)
    }
}

/// Who the peer of a TLS connection proved to be: taken from the leaf certificate it
/// presented and that the verifier accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's commonName.
    pub common_name: Option<String>,
    /// subjectAltName dNSName entries.
    pub dns_names: Vec<String>,
    /// subjectAltName uniformResourceIdentifier entries (`sip:proxy.example.com`, RFC 5922).
    pub uris: Vec<String>,
}

/// What `sipwarden check` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    pub not_before: i64,
}

impl CertSummary {
    pub fn identity(&self) -> PeerIdentity {
        PeerIdentity {
            common_name: self.common_name.clone(),
            dns_names: self.dns_names.clone(),
            uris: self.uris.clone(),
        }
    }
}

/// Parses a DER certificate's subject, names and validity.
pub fn cert_summary(der: &[u8]) -> Result<CertSummary, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut dns_names = Vec::new();
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::URI(u) => uris.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        common_name,
        dns_names,
        uris,
        not_after: cert.validity().not_after.timestamp(),
        not_before: cert.validity().not_before.timestamp(),
    })
}

/// Every certificate of a PEM file, summarised.
pub fn file_summaries(path: &Path) -> Result<Vec<CertSummary>, TlsError> {
    load_certs(path)?
        .iter()
        .map(|c| {
            cert_summary(c).map_err(|reason| TlsError::BadCertificate {
                path: path.to_owned(),
                reason,
            })
        })
        .collect()
}

/// How close a certificate is to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Valid {
        days_left: i64,
    },
    /// Within the warning window.
    Soon {
        days_left: i64,
    },
    Expired {
        days_ago: i64,
    },
}

/// The default warning window.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// Where `not_after` (seconds since the epoch) stands at `now`.
pub fn expiry(not_after: i64, now: SystemTime, warn_within: Duration) -> Expiry {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let left = not_after.saturating_sub(now);
    if left < 0 {
        return Expiry::Expired {
            days_ago: left.saturating_neg() / 86_400,
        };
    }
    let window = i64::try_from(warn_within.as_secs()).unwrap_or(i64::MAX);
    if left <= window {
        Expiry::Soon {
            days_left: left / 86_400,
        }
    } else {
        Expiry::Valid {
            days_left: left / 86_400,
        }
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian), Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aead_suites_and_modern_versions() {
        let names = cipher_suite_names();
        assert!(!names.is_empty());
        for n in &names {
            assert!(n.contains("GCM") || n.contains("CHACHA20_POLY1305"), "{n}");
        }
        assert!(names.iter().any(|n| n.starts_with("TLS13_")));
        assert!(names.iter().any(|n| n.starts_with("TLS_ECDHE_")));
    }

    #[test]
    fn expiry_windows() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let t = 1_000_000_000i64;
        assert_eq!(
            expiry(t + 30 * 86_400, now, EXPIRY_WARNING),
            Expiry::Valid { days_left: 30 }
        );
        assert_eq!(
            expiry(t + 14 * 86_400, now, EXPIRY_WARNING),
            Expiry::Soon { days_left: 14 }
        );
        assert_eq!(
            expiry(t - 3 * 86_400 - 5, now, EXPIRY_WARNING),
            Expiry::Expired { days_ago: 3 }
        );
    }

    #[test]
    fn utc_format() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("[2001:db8::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("10.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("sbc.example.com."),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name").is_none());
    }
}
