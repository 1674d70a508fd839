//! The three SRTP protection profiles we speak and their master keys.

use std::fmt;

/// Length of every master and session encryption key we support (AES-128).
pub const KEY_LEN: usize = 16;
/// Longest master salt (AES-CM: 112 bits; AEAD: 96 bits).
pub const MAX_SALT_LEN: usize = 14;
/// Largest tag plus SRTCP trailer a profile adds to a packet: the headroom a
/// caller's buffer needs after the packet for any profile.
pub const MAX_OVERHEAD: usize = 16 + 4;

/// An SRTP protection profile (crypto suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 3711, RFC 4568).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: 32-bit SRTP tag, 80-bit SRTCP tag.
    AesCm128HmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714).
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// Every supported profile, strongest and most widely interoperable first.
    pub const ALL: [SrtpProfile; 3] = [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AesCm128HmacSha1_32,
    ];

    /// The SDES crypto-suite name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// Looks a suite up by its SDES name (case-sensitive, as RFC 4568 writes
    /// them).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Bytes appended to an SRTP packet.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
            Self::AeadAes128Gcm => 16,
        }
    }

    /// Tag bytes of an SRTCP packet (the 4-byte E||index trailer excluded).
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => 16,
            _ => 10,
        }
    }

    pub(crate) fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes128Gcm)
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A master key and salt for one profile. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub(crate) profile: SrtpProfile,
    pub(crate) key: [u8; KEY_LEN],
    pub(crate) salt: [u8; MAX_SALT_LEN],
}

impl MasterKey {
    /// Builds a master key from key and salt bytes; `None` when a length does
    /// not fit the profile.
    pub fn new(profile: SrtpProfile, key: &[u8], salt: &[u8]) -> Option<Self> {
        let key: [u8; KEY_LEN] = key.try_into().ok()?;
        if salt.len() != profile.salt_len() {
            return None;
        }
        let mut s = [0u8; MAX_SALT_LEN];
        s.get_mut(..salt.len())?.copy_from_slice(salt);
        Some(Self {
            profile,
            key,
            salt: s,
        })
    }

    /// Splits `key || salt` as carried in an SDES `inline:` parameter.
    pub fn from_concatenated(profile: SrtpProfile, key_salt: &[u8]) -> Option<Self> {
        if key_salt.len() != KEY_LEN + profile.salt_len() {
            return None;
        }
        let (k, s) = key_salt.split_at(KEY_LEN);
        Self::new(profile, k, s)
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate(profile: SrtpProfile) -> Result<Self, getrandom::Error> {
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; MAX_SALT_LEN];
        getrandom::fill(&mut key)?;
        getrandom::fill(&mut salt[..profile.salt_len()])?;
        Ok(Self { profile, key, salt })
    }

    /// The profile this key is for.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The master key.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The master salt (12 or 14 bytes).
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.profile.salt_len()]
    }

    /// `key || salt`, as SDES encodes it, written into `out`; returns the
    /// used length.
    pub fn concatenated(&self, out: &mut [u8; KEY_LEN + MAX_SALT_LEN]) -> usize {
        let n = KEY_LEN + self.profile.salt_len();
        out[..KEY_LEN].copy_from_slice(&self.key);
        out[KEY_LEN..n].copy_from_slice(self.salt());
        n
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}
