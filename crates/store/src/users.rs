//! Digest credentials of local users: per (realm, username), one HA1 per hash algorithm
//! (`H(username:realm:password)`, RFC 7616 section 3.4.2). Never a clear password: HA1 is what
//! a digest server needs, and it is useless for any other realm or algorithm.
//!
//! Encoding of a record (value of `users_v1`, keyed by (realm, username)):
//! `u8 version=1, u8 count, count x { u8 algorithm (1 MD5, 2 SHA-256, 3 SHA-512-256),
//! u8 length, length bytes }`.

use std::fmt;

use crate::error::{Result, StoreError};

/// The hash algorithm of one stored HA1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ha1Algorithm {
    /// MD5 (16 bytes).
    Md5,
    /// SHA-256 (32 bytes).
    Sha256,
    /// SHA-512/256 (32 bytes).
    Sha512_256,
}

impl Ha1Algorithm {
    fn code(self) -> u8 {
        match self {
            Ha1Algorithm::Md5 => 1,
            Ha1Algorithm::Sha256 => 2,
            Ha1Algorithm::Sha512_256 => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Ha1Algorithm::Md5),
            2 => Some(Ha1Algorithm::Sha256),
            3 => Some(Ha1Algorithm::Sha512_256),
            _ => None,
        }
    }

    /// Length of the HA1 in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Ha1Algorithm::Md5 => 16,
            Ha1Algorithm::Sha256 | Ha1Algorithm::Sha512_256 => 32,
        }
    }

    /// The digest `algorithm` token.
    pub fn name(self) -> &'static str {
        match self {
            Ha1Algorithm::Md5 => "MD5",
            Ha1Algorithm::Sha256 => "SHA-256",
            Ha1Algorithm::Sha512_256 => "SHA-512-256",
        }
    }
}

/// One stored HA1 (binary, not hex).
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1Entry {
    /// Which hash.
    pub algorithm: Ha1Algorithm,
    /// `H(username:realm:password)` as bytes; its length matches the algorithm.
    pub digest: Vec<u8>,
}

impl fmt::Debug for Ha1Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A password equivalent for its realm: never in logs.
        write!(f, "Ha1Entry({}, ..)", self.algorithm.name())
    }
}

/// The credentials of one user in one realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCredentials {
    /// Realm.
    pub realm: String,
    /// Username as the client sends it in `username=`.
    pub username: String,
    /// At most one entry per algorithm.
    pub ha1: Vec<Ha1Entry>,
}

impl UserCredentials {
    /// The HA1 for `algorithm`, if stored.
    pub fn ha1_for(&self, algorithm: Ha1Algorithm) -> Option<&[u8]> {
        self.ha1
            .iter()
            .find(|e| e.algorithm == algorithm)
            .map(|e| e.digest.as_slice())
    }

    /// The stored algorithms.
    pub fn algorithms(&self) -> Vec<Ha1Algorithm> {
        self.ha1.iter().map(|e| e.algorithm).collect()
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.realm.is_empty() || self.username.is_empty() {
            return Err(StoreError::InvalidInput(
                "realm and username must not be empty".into(),
            ));
        }
        if self.ha1.is_empty() {
            return Err(StoreError::InvalidInput("no HA1 to store".into()));
        }
        let mut seen = Vec::new();
        for e in &self.ha1 {
            if e.digest.len() != e.algorithm.digest_len() {
                return Err(StoreError::InvalidInput(format!(
                    "{} HA1 must be {} bytes, got {}",
                    e.algorithm.name(),
                    e.algorithm.digest_len(),
                    e.digest.len()
                )));
            }
            if seen.contains(&e.algorithm) {
                return Err(StoreError::InvalidInput(format!(
                    "two {} HA1 values",
                    e.algorithm.name()
                )));
            }
            seen.push(e.algorithm);
        }
        Ok(())
    }
}

/// Local users' digest credentials.
pub trait UserStore: Send + Sync {
    /// Inserts or replaces the credentials of (realm, username); returns the replaced ones.
    fn put_user(&self, user: &UserCredentials) -> Result<Option<UserCredentials>>;

    /// The credentials of `username` in `realm`.
    fn get_user(&self, realm: &str, username: &str) -> Result<Option<UserCredentials>>;

    /// Removes a user; returns what was removed.
    fn remove_user(&self, realm: &str, username: &str) -> Result<Option<UserCredentials>>;

    /// A page of users ordered by (realm, username), strictly after `after`, at most `limit`.
    fn list_users(&self, after: Option<(&str, &str)>, limit: usize)
        -> Result<Vec<UserCredentials>>;
}

pub(crate) const USER_V1: u8 = 1;

pub(crate) fn encode_user(u: &UserCredentials) -> Vec<u8> {
    let mut v = vec![USER_V1, u.ha1.len() as u8];
    for e in &u.ha1 {
        v.push(e.algorithm.code());
        v.push(e.digest.len() as u8);
        v.extend_from_slice(&e.digest);
    }
    v
}

pub(crate) fn decode_user(realm: &str, username: &str, b: &[u8]) -> Result<UserCredentials> {
    let bad = |why: &str| StoreError::Corrupt(format!("user {username}@{realm}: {why}"));
    let (&version, rest) = b.split_first().ok_or_else(|| bad("empty"))?;
    if version != USER_V1 {
        return Err(StoreError::UnsupportedFormat(format!(
            "user record version {version}, this build reads {USER_V1}"
        )));
    }
    let (&count, mut rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
    let mut ha1 = Vec::with_capacity(usize::from(count).min(3));
    for _ in 0..count {
        let (&code, r) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        let (&len, r) = r.split_first().ok_or_else(|| bad("truncated"))?;
        let algorithm = Ha1Algorithm::from_code(code).ok_or_else(|| bad("unknown algorithm"))?;
        let len = usize::from(len);
        if len != algorithm.digest_len() || r.len() < len {
            return Err(bad("bad HA1 length"));
        }
        let (d, r) = r.split_at(len);
        ha1.push(Ha1Entry {
            algorithm,
            digest: d.to_vec(),
        });
        rest = r;
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(UserCredentials {
        realm: realm.to_owned(),
        username: username.to_owned(),
        ha1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, RedbStore};

    fn user(realm: &str, name: &str, b: u8) -> UserCredentials {
        UserCredentials {
            realm: realm.into(),
            username: name.into(),
            ha1: vec![
                Ha1Entry {
                    algorithm: Ha1Algorithm::Md5,
                    digest: vec![b; 16],
                },
                Ha1Entry {
                    algorithm: Ha1Algorithm::Sha256,
                    digest: vec![b; 32],
                },
            ],
        }
    }

    fn suite(s: &dyn UserStore) {
        assert_eq!(s.get_user("r", "alice").unwrap(), None);
        assert_eq!(s.put_user(&user("r", "alice", 1)).unwrap(), None);
        assert_eq!(
            s.put_user(&user("r", "alice", 2)).unwrap(),
            Some(user("r", "alice", 1))
        );
        s.put_user(&user("r", "bob", 3)).unwrap();
        s.put_user(&user("q", "zed", 4)).unwrap();
        let got = s.get_user("r", "alice").unwrap().unwrap();
        assert_eq!(got, user("r", "alice", 2));
        assert_eq!(got.ha1_for(Ha1Algorithm::Sha256), Some(&[2u8; 32][..]));
        assert_eq!(got.ha1_for(Ha1Algorithm::Sha512_256), None);
        // Realms are separate.
        assert_eq!(s.get_user("q", "alice").unwrap(), None);
        let all: Vec<_> = s
            .list_users(None, 10)
            .unwrap()
            .into_iter()
            .map(|u| (u.realm, u.username))
            .collect();
        assert_eq!(
            all,
            [("q", "zed"), ("r", "alice"), ("r", "bob")].map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let page = s.list_users(Some(("q", "zed")), 1).unwrap();
        assert_eq!(page[0].username, "alice");
        assert_eq!(page.len(), 1);
        assert_eq!(
            s.remove_user("r", "alice").unwrap(),
            Some(user("r", "alice", 2))
        );
        assert_eq!(s.remove_user("r", "alice").unwrap(), None);
        // Refused input writes nothing.
        let mut bad = user("r", "carol", 5);
        bad.ha1[0].digest.pop();
        assert!(matches!(s.put_user(&bad), Err(StoreError::InvalidInput(_))));
        bad.ha1.clear();
        assert!(matches!(s.put_user(&bad), Err(StoreError::InvalidInput(_))));
        let mut dup = user("r", "carol", 5);
        dup.ha1.push(dup.ha1[0].clone());
        assert!(matches!(s.put_user(&dup), Err(StoreError::InvalidInput(_))));
        assert_eq!(s.get_user("r", "carol").unwrap(), None);
    }

    #[test]
    fn memory() {
        suite(&MemoryStore::new());
    }

    #[test]
    fn redb_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            suite(&s);
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.get_user("r", "bob").unwrap(), Some(user("r", "bob", 3)));
    }

    #[test]
    fn debug_hides_the_digest_and_damage_is_reported() {
        let u = user("r", "a", 0xab);
        assert!(!format!("{u:?}").contains("171"));
        let enc = encode_user(&u);
        assert_eq!(decode_user("r", "a", &enc).unwrap(), u);
        for cut in 0..enc.len() {
            assert!(decode_user("r", "a", &enc[..cut]).is_err());
        }
        let mut trailing = enc.clone();
        trailing.push(0);
        assert!(decode_user("r", "a", &trailing).is_err());
        let mut alg = enc;
        alg[2] = 9;
        assert!(decode_user("r", "a", &alg).is_err());
    }
}
