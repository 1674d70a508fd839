//! Challenges: the 401/407 answer's status, reason phrase and header values.

use super::algorithm::Algorithm;

/// Who challenges: a registrar or UAS (401 with WWW-Authenticate, credentials in Authorization)
/// or a proxy (407 with Proxy-Authenticate, credentials in Proxy-Authorization), RFC 3261
/// sections 22.2 and 22.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// Registrar or UAS.
    Www,
    /// Proxy.
    Proxy,
}

impl ChallengeKind {
    /// The status code of the challenge.
    pub fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }

    /// The reason phrase of the challenge (RFC 3261 section 21.4).
    pub fn reason(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Unauthorized",
            ChallengeKind::Proxy => "Proxy Authentication Required",
        }
    }

    /// The header carrying the challenge.
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    /// The header carrying the credentials.
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A challenge to send: one header value per offered algorithm, in the configured order
/// (RFC 8760 section 2.4: preferred first), all with the same nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub kind: ChallengeKind,
    /// `stale=true`: the credentials were right but the nonce was too old (or its count was
    /// already used): the client retries without asking the user.
    pub stale: bool,
    pub nonce: String,
    /// Header values, without the header name.
    pub values: Vec<String>,
}

impl Challenge {
    pub(crate) fn new(
        kind: ChallengeKind,
        realm: &str,
        nonce: String,
        algorithms: &[Algorithm],
        stale: bool,
    ) -> Challenge {
        let values = algorithms
            .iter()
            .map(|a| {
                let mut v = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    quote_escape(realm),
                    a.name()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect();
        Challenge {
            kind,
            stale,
            nonce,
            values,
        }
    }

    /// Status code (401 or 407).
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Reason phrase.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// Header name for every value.
    pub fn header_name(&self) -> &'static str {
        self.kind.challenge_header()
    }

    /// The status line and the challenge header lines, as they go on the wire (the engine adds
    /// Via, From, To, Call-ID, CSeq and the rest).
    pub fn to_wire(&self) -> String {
        let mut s = format!("SIP/2.0 {} {}\r\n", self.status(), self.reason());
        for v in &self.values {
            s.push_str(self.header_name());
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s
    }
}

/// Escapes `"` and `\` for a quoted-string.
fn quote_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::headers::ProxyAuthenticate;
    use sip_message::TypedHeader;

    #[test]
    fn values_parse_back() {
        let c = Challenge::new(
            ChallengeKind::Proxy,
            "a \"b\"",
            "abc".into(),
            &[Algorithm::Sha256, Algorithm::Md5],
            true,
        );
        assert_eq!(c.status(), 407);
        assert_eq!(c.values.len(), 2);
        let p = ProxyAuthenticate::parse_value(&c.values[0]).unwrap();
        assert_eq!(p.realm(), Some("a \\\"b\\\""));
        assert_eq!(p.algorithm(), Some("SHA-256"));
        assert_eq!(p.qop(), Some("auth"));
        assert!(p.is_stale());
        assert_eq!(
            ProxyAuthenticate::parse_value(&c.values[1])
                .unwrap()
                .algorithm(),
            Some("MD5")
        );
        assert!(c.to_wire().starts_with(
            "SIP/2.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Digest realm="
        ));
    }
}
