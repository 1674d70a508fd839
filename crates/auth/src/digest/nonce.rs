//! Stateless nonces: the nonce carries its creation time and a MAC that binds it to this server
//! (its secret), the realm and, optionally, the client's source address. Checking one needs no
//! table: a forged or altered nonce fails the MAC, an old one is recognised by its time.
//!
//! Layout (64 lowercase hex digits, 32 bytes):
//! `issued (u64 BE, ms since the Unix epoch) | salt (u64 BE) | HMAC-SHA-256(...)[..16]`
//! where the MAC covers a version label, `issued`, `salt`, the realm and the source address.
//! Wall-clock time (not a monotonic instant) is used on purpose: nonces outlive a restart and
//! are valid on every node that shares the secret.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::algorithm::{hex, unhex};

type HmacSha256 = Hmac<Sha256>;

/// Length of a nonce on the wire.
pub const NONCE_LEN: usize = 64;
const MAC_LEN: usize = 16;
const LABEL: &[u8] = b"sipwarden digest nonce v1";
/// How far in the future a nonce's time may be (clock steps between nodes) before it is stale.
const FUTURE_TOLERANCE_MS: u64 = 5_000;

/// The server secret that keys nonces and dummy HA1s. 32 random bytes; nodes that share one
/// accept each other's nonces. Its `Debug` does not show it.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    /// A secret from the given bytes (from configuration, shared between nodes).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerSecret(bytes)
    }

    /// A fresh secret from the operating system's random source. Nonces issued before a restart
    /// then fail their MAC and are answered with a new challenge, which clients follow.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b)?;
        Ok(ServerSecret(b))
    }

    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the type total.
        let mut m = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        for p in parts {
            // Length-prefixed so that ("ab","c") and ("a","bc") differ.
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

/// A nonce whose MAC checked, with what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceInfo {
    /// Creation time, ms since the Unix epoch.
    pub issued_ms: u64,
    /// The MAC: unique per nonce, and the key of the nonce-count table.
    pub id: [u8; MAC_LEN],
}

/// What checking a nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Ours and within its lifetime.
    Fresh(NonceInfo),
    /// Ours, but older than the lifetime (or from a clock ahead of ours).
    Stale(NonceInfo),
    /// Not ours: wrong length, not hex, or the MAC does not match (forged, altered, another
    /// realm, another source address, another server's secret).
    Invalid,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn source_bytes(source: Option<IpAddr>) -> Vec<u8> {
    match source {
        None => Vec::new(),
        Some(IpAddr::V4(a)) => a.octets().to_vec(),
        // An IPv4-mapped address is the same client as its IPv4 form.
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => a.octets().to_vec(),
        },
    }
}

fn nonce_mac(
    secret: &ServerSecret,
    issued: u64,
    salt: u64,
    realm: &str,
    source: Option<IpAddr>,
) -> [u8; MAC_LEN] {
    let full = secret.mac(&[
        LABEL,
        &issued.to_be_bytes(),
        &salt.to_be_bytes(),
        realm.as_bytes(),
        &source_bytes(source),
    ]);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// Makes a nonce. `salt` must differ between nonces issued in the same millisecond (a counter
/// is enough: the MAC keeps it unpredictable).
pub fn issue(
    secret: &ServerSecret,
    now: SystemTime,
    salt: u64,
    realm: &str,
    source: Option<IpAddr>,
) -> String {
    let issued = unix_ms(now);
    let mac = nonce_mac(secret, issued, salt, realm, source);
    let mut raw = Vec::with_capacity(32);
    raw.extend_from_slice(&issued.to_be_bytes());
    raw.extend_from_slice(&salt.to_be_bytes());
    raw.extend_from_slice(&mac);
    hex(&raw)
}

/// Checks a nonce from a client.
pub fn check(
    secret: &ServerSecret,
    nonce: &str,
    now: SystemTime,
    lifetime: Duration,
    realm: &str,
    source: Option<IpAddr>,
) -> NonceState {
    if nonce.len() != NONCE_LEN {
        return NonceState::Invalid;
    }
    let Some(raw) = unhex(nonce) else {
        return NonceState::Invalid;
    };
    let (Some(issued), Some(salt), Some(mac)) = (raw.get(0..8), raw.get(8..16), raw.get(16..32))
    else {
        return NonceState::Invalid;
    };
    let mut ib = [0u8; 8];
    ib.copy_from_slice(issued);
    let mut sb = [0u8; 8];
    sb.copy_from_slice(salt);
    let issued = u64::from_be_bytes(ib);
    let expected = nonce_mac(secret, issued, u64::from_be_bytes(sb), realm, source);
    if !bool::from(expected.ct_eq(mac)) {
        return NonceState::Invalid;
    }
    let info = NonceInfo {
        issued_ms: issued,
        id: expected,
    };
    let now_ms = unix_ms(now);
    let life_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
    if issued > now_ms.saturating_add(FUTURE_TOLERANCE_MS)
        || now_ms.saturating_sub(issued) > life_ms
    {
        NonceState::Stale(info)
    } else {
        NonceState::Fresh(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    const LIFE: Duration = Duration::from_secs(300);

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn fresh_then_stale() {
        let s = ServerSecret::from_bytes([7; 32]);
        let n = issue(&s, t(0), 1, "r", ip("198.51.100.70"));
        assert_eq!(n.len(), NONCE_LEN);
        let src = ip("198.51.100.70");
        assert!(matches!(
            check(&s, &n, t(0), LIFE, "r", src),
            NonceState::Fresh(_)
        ));
        assert!(matches!(
            check(&s, &n, t(300_000), LIFE, "r", src),
            NonceState::Fresh(_)
        ));
        assert!(matches!(
            check(&s, &n, t(300_001), LIFE, "r", src),
            NonceState::Stale(_)
        ));
        // Issued "in the future" beyond the tolerance (our clock stepped back): stale, not forged.
        assert!(matches!(
            check(&s, &n, t(0) - Duration::from_secs(6), LIFE, "r", src),
            NonceState::Stale(_)
        ));
    }

    #[test]
    fn forgeries_are_invalid() {
        let s = ServerSecret::from_bytes([7; 32]);
        let src = ip("198.51.100.70");
        let n = issue(&s, t(0), 1, "r", src);
        let inv = |nonce: &str, realm: &str, src: Option<IpAddr>, secret: &ServerSecret| {
            check(secret, nonce, t(1), LIFE, realm, src) == NonceState::Invalid
        };
        // Another server, realm or source.
        assert!(inv(&n, "r", src, &ServerSecret::from_bytes([8; 32])));
        assert!(inv(&n, "other", src, &s));
        assert!(inv(&n, "r", ip("198.51.100.66"), &s));
        assert!(inv(&n, "r", None, &s));
        // Every single-digit change, including the time (to extend a nonce's life).
        for i in 0..n.len() {
            let mut b = n.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            assert!(inv(std::str::from_utf8(&b).unwrap(), "r", src, &s), "{i}");
        }
        assert!(inv(&n[..63], "r", src, &s));
        assert!(inv(&format!("{}zz", &n[..62]), "r", src, &s));
        assert!(inv("", "r", src, &s));
        // Mapped IPv4 is the same client.
        let m = issue(&s, t(0), 2, "r", ip("::ffff:198.51.100.70"));
        assert!(!inv(&m, "r", src, &s));
    }

    #[test]
    fn salts_make_distinct_nonces() {
        let s = ServerSecret::from_bytes([1; 32]);
        let a = issue(&s, t(0), 1, "r", None);
        let b = issue(&s, t(0), 2, "r", None);
        assert_ne!(a, b);
        let (NonceState::Fresh(x), NonceState::Fresh(y)) = (
            check(&s, &a, t(0), LIFE, "r", None),
            check(&s, &b, t(0), LIFE, "r", None),
        ) else {
            panic!("not fresh");
        };
        assert_ne!(x.id, y.id);
        assert_eq!(format!("{s:?}"), "ServerSecret(..)");
    }
}
