//! Where HA1 values come from: the [`CredentialSource`] trait, and its implementation over the
//! embedded user store.

use std::sync::Arc;

use store::{Ha1Algorithm, Ha1Entry, UserCredentials, UserStore};

use crate::digest::algorithm::{hex, unhex};
use crate::digest::Algorithm;

/// An HA1 (`H(username:realm:password)`) as lowercase hex. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    algorithm: Algorithm,
    hex: String,
}

impl Ha1 {
    /// From a hex string (either case); `None` unless it has the algorithm's length.
    pub fn from_hex(algorithm: Algorithm, s: &str) -> Option<Ha1> {
        let b = unhex(s)?;
        Ha1::from_bytes(algorithm, &b)
    }

    /// From the binary hash; `None` unless it has the algorithm's length.
    pub fn from_bytes(algorithm: Algorithm, b: &[u8]) -> Option<Ha1> {
        (b.len() == algorithm.output_len()).then(|| Ha1 {
            algorithm,
            hex: hex(b),
        })
    }

    /// Computes it from a password (for `sipwarden user add` and tests).
    pub fn from_password(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> Ha1 {
        Ha1 {
            algorithm,
            hex: algorithm.ha1(username, realm, password),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Lowercase hex, as it enters the response computation.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl std::fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ha1({}, ..)", self.algorithm)
    }
}

/// A failure of the credential source itself (not "unknown user", which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("user store: {0}")]
    Store(#[from] store::StoreError),
}

/// Gives HA1 values. Synchronous: the embedded store answers in microseconds from its page
/// cache. Sources that answer over the network (RADIUS) do not implement it: the engine sends
/// their request and calls [`crate::DigestAuthenticator::finish`] with
/// [`crate::Lookup::Verified`] when the answer arrives.
pub trait CredentialSource: Send + Sync {
    /// The HA1 of `username` in `realm` for `algorithm`; `Ok(None)` when unknown.
    fn ha1(
        &self,
        username: &str,
        realm: &str,
        algorithm: Algorithm,
    ) -> Result<Option<Ha1>, CredentialError>;
}

fn store_algorithm(a: Algorithm) -> Ha1Algorithm {
    match a {
        Algorithm::Md5 => Ha1Algorithm::Md5,
        Algorithm::Sha256 => Ha1Algorithm::Sha256,
        Algorithm::Sha512_256 => Ha1Algorithm::Sha512_256,
    }
}

/// The embedded user store as a credential source.
pub struct StoreCredentials<S: ?Sized>(pub Arc<S>);

impl<S: UserStore + ?Sized> CredentialSource for StoreCredentials<S> {
    fn ha1(
        &self,
        username: &str,
        realm: &str,
        algorithm: Algorithm,
    ) -> Result<Option<Ha1>, CredentialError> {
        let user = self.0.get_user(realm, username)?;
        let found = user
            .as_ref()
            .and_then(|u| u.ha1_for(store_algorithm(algorithm)))
            .and_then(|b| Ha1::from_bytes(algorithm, b));
        if user.is_none() {
            // A miss is cheaper than a hit (no record to decode); do the same allocations and
            // conversion on a stand-in so the two cost about the same (the rest of the
            // equal-work argument is in DigestAuthenticator::finish).
            let stand_in = UserCredentials {
                realm: realm.to_owned(),
                username: username.to_owned(),
                ha1: vec![
                    Ha1Entry {
                        algorithm: Ha1Algorithm::Md5,
                        digest: vec![0; 16],
                    },
                    Ha1Entry {
                        algorithm: Ha1Algorithm::Sha256,
                        digest: vec![0; 32],
                    },
                ],
            };
            std::hint::black_box(
                stand_in
                    .ha1_for(store_algorithm(algorithm))
                    .and_then(|b| Ha1::from_bytes(algorithm, b)),
            );
        }
        Ok(found)
    }
}

/// The record `sipwarden user add` stores: one HA1 per algorithm, computed from the password,
/// which is not kept.
pub fn user_credentials(
    username: &str,
    realm: &str,
    password: &str,
    algorithms: &[Algorithm],
) -> UserCredentials {
    let mut ha1 = Vec::new();
    for &a in algorithms {
        if ha1
            .iter()
            .any(|e: &Ha1Entry| e.algorithm == store_algorithm(a))
        {
            continue;
        }
        ha1.push(Ha1Entry {
            algorithm: store_algorithm(a),
            digest: a.hash_parts(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]),
        });
    }
    UserCredentials {
        realm: realm.to_owned(),
        username: username.to_owned(),
        ha1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::MemoryStore;

    #[test]
    fn store_source_gives_the_password_ha1() {
        let s = Arc::new(MemoryStore::new());
        s.put_user(&user_credentials(
            "alice",
            "sw",
            "secret",
            &[Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5],
        ))
        .unwrap();
        let src = StoreCredentials(s.clone());
        let got = src.ha1("alice", "sw", Algorithm::Sha256).unwrap().unwrap();
        assert_eq!(
            got,
            Ha1::from_password(Algorithm::Sha256, "alice", "sw", "secret")
        );
        assert_eq!(
            src.ha1("alice", "sw", Algorithm::Md5)
                .unwrap()
                .unwrap()
                .hex(),
            Algorithm::Md5.ha1("alice", "sw", "secret")
        );
        assert_eq!(src.ha1("alice", "sw", Algorithm::Sha512_256).unwrap(), None);
        assert_eq!(src.ha1("bob", "sw", Algorithm::Md5).unwrap(), None);
        assert_eq!(src.ha1("alice", "other", Algorithm::Md5).unwrap(), None);
        assert_eq!(format!("{got:?}"), "Ha1(SHA-256, ..)");
        assert_eq!(Ha1::from_hex(Algorithm::Md5, "00"), None);
    }
}
