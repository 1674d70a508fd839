//! Digest credentials (the value of Authorization or Proxy-Authorization) checked and copied out
//! of the message. The header syntax is decoded by `sip-message` ([`sip_message::Auth`]); this
//! module checks what Digest needs on top of it.

use sip_message::headers::Auth;
use sip_message::unquote;

use super::algorithm::Algorithm;

/// Longest value accepted for any one parameter. Real values are far shorter (a nonce is 64
/// bytes, a URI rarely over 200); the bound keeps hashing cost per request small.
pub const MAX_PARAM_LEN: usize = 1024;

/// Why credentials were not usable. None of these changes what is sent back (always a fresh
/// challenge); they are for logs and for the policy layer's failure counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("not the Digest scheme")]
    NotDigest,
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("parameter {0} is too long")]
    TooLong(&'static str),
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("unsupported qop (only auth)")]
    UnsupportedQop,
    #[error("nc is not 8 hex digits")]
    BadNonceCount,
    #[error("userhash is not supported")]
    UserHash,
}

/// Checked Digest credentials, owned (they outlive the message while a credential source is
/// asked).
#[derive(Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// `username`, unquoted (escapes resolved).
    pub username: String,
    /// `realm`, unquoted.
    pub realm: String,
    pub nonce: String,
    /// `uri` (digest-uri) as sent.
    pub uri: String,
    /// `response`, as sent (hex).
    pub response: String,
    pub algorithm: Algorithm,
    /// `qop` when present; only `auth` is accepted.
    pub qop: Option<String>,
    /// `nc` as sent (8 hex digits) and its value.
    pub nc: Option<(String, u32)>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl std::fmt::Debug for DigestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The response is a password-derived value: keep it out of logs.
        f.debug_struct("DigestCredentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("nonce", &self.nonce)
            .field("uri", &self.uri)
            .field("algorithm", &self.algorithm)
            .field("qop", &self.qop)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

fn param<'a>(auth: &Auth<'a>, name: &'static str) -> Result<Option<&'a str>, CredentialsError> {
    match auth.param(name) {
        Some(v) if v.len() > MAX_PARAM_LEN => Err(CredentialsError::TooLong(name)),
        v => Ok(v),
    }
}

fn required<'a>(auth: &Auth<'a>, name: &'static str) -> Result<&'a str, CredentialsError> {
    param(auth, name)?.ok_or(CredentialsError::Missing(name))
}

impl DigestCredentials {
    /// Checks a decoded header value. `qop`, `nc` and `cnonce` go together: with `qop=auth`,
    /// `nc` must be 8 hex digits and `cnonce` present (RFC 7616 section 3.4).
    pub fn from_auth(auth: &Auth<'_>) -> Result<DigestCredentials, CredentialsError> {
        if !auth.is_digest() {
            return Err(CredentialsError::NotDigest);
        }
        let username = unquote(required(auth, "username")?).into_owned();
        let realm = unquote(required(auth, "realm")?).into_owned();
        let nonce = required(auth, "nonce")?.to_owned();
        let uri = required(auth, "uri")?.to_owned();
        let response = required(auth, "response")?.to_owned();
        let algorithm = match param(auth, "algorithm")? {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_name(a).ok_or(CredentialsError::UnsupportedAlgorithm)?,
        };
        if param(auth, "userhash")?.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(CredentialsError::UserHash);
        }
        let qop = param(auth, "qop")?;
        let (qop, nc, cnonce) = match qop {
            None => (None, None, param(auth, "cnonce")?.map(str::to_owned)),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_raw = required(auth, "nc")?;
                if nc_raw.len() != 8 || !nc_raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CredentialsError::BadNonceCount);
                }
                let nc =
                    u32::from_str_radix(nc_raw, 16).map_err(|_| CredentialsError::BadNonceCount)?;
                let cnonce = required(auth, "cnonce")?;
                (
                    Some(q.to_owned()),
                    Some((nc_raw.to_owned(), nc)),
                    Some(cnonce.to_owned()),
                )
            }
            Some(_) => return Err(CredentialsError::UnsupportedQop),
        };
        let opaque = param(auth, "opaque")?.map(str::to_owned);
        Ok(DigestCredentials {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            qop,
            nc,
            cnonce,
            opaque,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::headers::Authorization;
    use sip_message::TypedHeader;

    fn creds(s: &str) -> Result<DigestCredentials, CredentialsError> {
        let a = Authorization::parse_value(s).unwrap();
        DigestCredentials::from_auth(&a)
    }

    const OK: &str = "Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"n\", \
        uri=\"sip:bob@biloxi.com\", qop=auth, nc=0000000a, cnonce=\"c\", response=\"abc\"";

    #[test]
    fn complete() {
        let c = creds(OK).unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.nc, Some(("0000000a".into(), 10)));
        assert!(!format!("{c:?}").contains("abc"));
        let c = creds(&format!("{OK}, algorithm=sha-256")).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let c = creds(
            "Digest username=\"a\\\"b\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"",
        )
        .unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!((c.qop, c.nc), (None, None));
    }

    #[test]
    fn refused() {
        use CredentialsError as E;
        assert_eq!(creds("Basic abc=").unwrap_err(), E::NotDigest);
        assert_eq!(
            creds("Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"").unwrap_err(),
            E::Missing("username")
        );
        assert_eq!(
            creds(&format!("{OK}, algorithm=MD5-sess")).unwrap_err(),
            E::UnsupportedAlgorithm
        );
        assert_eq!(
            creds(&OK.replace("qop=auth", "qop=auth-int")).unwrap_err(),
            E::UnsupportedQop
        );
        assert_eq!(
            creds(&OK.replace("0000000a", "a")).unwrap_err(),
            E::BadNonceCount
        );
        assert_eq!(
            creds(&OK.replace("0000000a", "0000000g")).unwrap_err(),
            E::BadNonceCount
        );
        assert_eq!(
            creds(&OK.replace(", cnonce=\"c\"", "")).unwrap_err(),
            E::Missing("cnonce")
        );
        assert_eq!(
            creds(&format!("{OK}, userhash=true")).unwrap_err(),
            E::UserHash
        );
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert_eq!(
            creds(&OK.replace("sip:bob@biloxi.com", &long)).unwrap_err(),
            E::TooLong("uri")
        );
    }
}
