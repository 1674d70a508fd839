//! SRTP/SRTCP crypto contexts (RFC 3711, RFC 7714): in-place transforms on a
//! caller's buffer, no allocation per packet.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::profile::{MasterKey, SrtpProfile, KEY_LEN, MAX_SALT_LEN};
use crate::replay::{estimate_index, ReplayWindow};
use crate::SrtpError;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type CtrCore = ctr::CtrCore<Aes128, ctr::flavors::Ctr128BE>;
type HmacSha1 = Hmac<Sha1>;

/// SSRCs one context tracks at once. Session keys are shared by all SSRCs
/// (kdr = 0), only the roll-over and replay state is per SSRC. A call has one
/// or two; the least recently used slot is recycled beyond that, which only
/// legitimate (authenticated) streams can cause on the receive side.
pub const MAX_SSRCS: usize = 8;

/// Largest SRTP index (2^48 - 1) and SRTCP index (2^31 - 1).
const MAX_RTP_INDEX: u64 = (1 << 48) - 1;
const MAX_RTCP_INDEX: u64 = (1 << 31) - 1;
const RTCP_E_BIT: u32 = 0x8000_0000;
const RTP_HEADER: usize = 12;
const RTCP_HEADER: usize = 8;
const RTCP_TRAILER: usize = 4;

/// KDF labels (RFC 3711 4.3.2).
mod label {
    pub const RTP_ENC: u8 = 0;
    pub const RTP_AUTH: u8 = 1;
    pub const RTP_SALT: u8 = 2;
    pub const RTCP_ENC: u8 = 3;
    pub const RTCP_AUTH: u8 = 4;
    pub const RTCP_SALT: u8 = 5;
}

/// AES-CM PRF of RFC 3711 4.3.3 with kdr = 0: the index term vanishes, so
/// each session key depends only on the master key, salt and label. The
/// AEAD profiles use the same KDF with their 96-bit salt zero-padded
/// (RFC 7714 11).
pub(crate) fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let aes = Aes128::new(&master.key.into());
    let mut iv = [0u8; 16];
    iv[..MAX_SALT_LEN].copy_from_slice(&master.salt);
    iv[7] ^= label;
    out.fill(0);
    let mut ctr = Aes128Ctr::from_core(CtrCore::inner_iv_init(aes, &iv.into()));
    ctr.apply_keystream(out);
}

/// Session cipher for one of RTP or RTCP.
#[derive(Clone)]
enum Cipher {
    Cm {
        aes: Aes128,
        mac: HmacSha1,
        salt: [u8; 14],
    },
    Gcm {
        aead: Aes128Gcm,
        salt: [u8; 12],
    },
}

impl Cipher {
    fn derive(master: &MasterKey, enc: u8, auth: u8, salt_label: u8) -> Self {
        let mut key = [0u8; KEY_LEN];
        derive(master, enc, &mut key);
        if master.profile.is_aead() {
            let mut salt = [0u8; 12];
            derive(master, salt_label, &mut salt);
            Self::gcm(&key, &salt)
        } else {
            let mut auth_key = [0u8; 20];
            let mut salt = [0u8; 14];
            derive(master, auth, &mut auth_key);
            derive(master, salt_label, &mut salt);
            Self::cm(&key, &auth_key, &salt)
        }
    }

    fn cm(key: &[u8; 16], auth_key: &[u8; 20], salt: &[u8; 14]) -> Self {
        // HMAC zero-pads a short key to the hash block; doing it here makes
        // the construction infallible.
        let mut block = [0u8; 64];
        block[..20].copy_from_slice(auth_key);
        Self::Cm {
            aes: Aes128::new(key.into()),
            mac: <HmacSha1 as KeyInit>::new(&block.into()),
            salt: *salt,
        }
    }

    fn gcm(key: &[u8; 16], salt: &[u8; 12]) -> Self {
        Self::Gcm {
            aead: Aes128Gcm::new(key.into()),
            salt: *salt,
        }
    }
}

/// AES-CM IV of RFC 3711 4.1.1: (salt << 16) ^ (SSRC << 64) ^ (index << 16).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *d ^= s;
    }
    iv
}

fn cm_xor(aes: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    // Cloning the expanded key is a copy; re-expanding it per packet is not.
    let mut ctr = Aes128Ctr::from_core(CtrCore::inner_iv_init(aes.clone(), iv.into()));
    ctr.apply_keystream(data);
}

fn gcm_nonce(salt: &[u8; 12], ssrc: u32, mid: [u8; 4], tail: [u8; 2]) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&mid);
    iv[10..12].copy_from_slice(&tail);
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// RFC 7714 8.1: 00 00 || SSRC || ROC || SEQ, xor salt.
fn gcm_rtp_nonce(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let roc = ((index >> 16) as u32).to_be_bytes();
    let seq = (index as u16).to_be_bytes();
    gcm_nonce(salt, ssrc, roc, seq)
}

/// RFC 7714 9.1: 00 00 || SSRC || 00 00 || 0 || SRTCP index, xor salt.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    let b = index.to_be_bytes();
    gcm_nonce(salt, ssrc, [0, 0, b[0], b[1]], [b[2], b[3]])
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Length of the RTP header (fixed part, CSRCs and extension) of `pkt`.
fn rtp_header_len(pkt: &[u8]) -> Result<usize, SrtpError> {
    if pkt.len() < RTP_HEADER {
        return Err(SrtpError::TooShort);
    }
    let b0 = pkt.first().copied().ok_or(SrtpError::TooShort)?;
    if b0 >> 6 != 2 {
        return Err(SrtpError::BadVersion);
    }
    let mut len = RTP_HEADER + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let words = be_u16(pkt, len + 2).ok_or(SrtpError::BadHeader)?;
        len += 4 + 4 * usize::from(words);
    }
    if len > pkt.len() {
        return Err(SrtpError::BadHeader);
    }
    Ok(len)
}

fn rtcp_check(pkt: &[u8]) -> Result<u32, SrtpError> {
    if pkt.len() < RTCP_HEADER {
        return Err(SrtpError::TooShort);
    }
    let b0 = pkt.first().copied().ok_or(SrtpError::TooShort)?;
    if b0 >> 6 != 2 {
        return Err(SrtpError::BadVersion);
    }
    be_u32(pkt, 4).ok_or(SrtpError::TooShort)
}

/// Whether `pkt` is exactly a plain RTCP compound packet (RFC 3550 6.1):
/// one or more headers of version 2 with an RTCP packet type (RFC 5761 4:
/// 192 to 223), whose lengths add up to the datagram. The first packet need
/// not be an SR or RR (reduced-size RTCP, RFC 5506). SRTCP never matches:
/// the E||index trailer and the tag follow the compound packet, and with
/// E = 1 everything after the first header is ciphertext.
fn is_plain_rtcp_compound(pkt: &[u8]) -> bool {
    let mut at = 0;
    while at < pkt.len() {
        let (Some(b0), Some(pt), Some(words)) = (pkt.get(at), pkt.get(at + 1), be_u16(pkt, at + 2))
        else {
            return false;
        };
        if b0 >> 6 != 2 || !(192..=223).contains(pt) {
            return false;
        }
        at += 4 * (usize::from(words) + 1);
    }
    at == pkt.len() && at > 0
}

#[derive(Clone, Copy, Default)]
struct Slot<S> {
    ssrc: u32,
    in_use: bool,
    last_used: u64,
    state: S,
}

/// Fixed-size SSRC table: no allocation, least recently used eviction.
#[derive(Clone)]
struct Streams<S: Copy + Default> {
    slots: [Slot<S>; MAX_SSRCS],
    clock: u64,
}

impl<S: Copy + Default> Streams<S> {
    fn new() -> Self {
        Self {
            slots: [Slot::default(); MAX_SSRCS],
            clock: 0,
        }
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.in_use && s.ssrc == ssrc)
    }

    fn get(&self, i: usize) -> Option<S> {
        self.slots.get(i).map(|s| s.state)
    }

    /// Stores `state` for `ssrc` in slot `i` (from `find`) or, when `None`,
    /// in a free or the least recently used slot.
    fn put(&mut self, at: Option<usize>, ssrc: u32, state: S) {
        self.clock += 1;
        let i = at.unwrap_or_else(|| {
            self.slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| if s.in_use { s.last_used } else { 0 })
                .map_or(0, |(i, _)| i)
        });
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot {
                ssrc,
                in_use: true,
                last_used: self.clock,
                state,
            };
        }
    }
}

#[derive(Clone, Copy, Default)]
struct RtcpState {
    /// Next SRTCP index to send.
    next_tx: u64,
    /// Receive window; `None` until the first authenticated packet.
    rx: Option<ReplayWindow>,
}

/// One direction's SRTP and SRTCP crypto context (RFC 3711 3.2) for one
/// master key. Use one context to protect what we send and another, keyed
/// with the peer's master key, to unprotect what we receive.
#[derive(Clone)]
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Cipher,
    rtcp: Cipher,
    rtp_streams: Streams<ReplayWindow>,
    rtcp_streams: Streams<RtcpState>,
    /// Packets (SRTP and SRTCP) this master key may still process.
    remaining: u64,
}

impl SrtpContext {
    /// Derives the session keys of `master` (kdr = 0).
    pub fn new(master: &MasterKey) -> Self {
        let rtp = Cipher::derive(master, label::RTP_ENC, label::RTP_AUTH, label::RTP_SALT);
        let rtcp = Cipher::derive(master, label::RTCP_ENC, label::RTCP_AUTH, label::RTCP_SALT);
        Self::from_ciphers(master.profile, rtp, rtcp)
    }

    /// As `new`, but the key stops after `packets` SRTP plus SRTCP packets
    /// (the SDES lifetime parameter).
    pub fn with_lifetime(master: &MasterKey, packets: u64) -> Self {
        let mut c = Self::new(master);
        c.remaining = packets;
        c
    }

    fn from_ciphers(profile: SrtpProfile, rtp: Cipher, rtcp: Cipher) -> Self {
        Self {
            profile,
            rtp,
            rtcp,
            rtp_streams: Streams::new(),
            rtcp_streams: Streams::new(),
            remaining: u64::MAX,
        }
    }

    /// Session keys given directly (the RFC 7714 vectors skip the KDF).
    #[cfg(test)]
    pub(crate) fn from_gcm_session_keys(key: &[u8; 16], salt: &[u8; 12]) -> Self {
        Self::from_ciphers(
            SrtpProfile::AeadAes128Gcm,
            Cipher::gcm(key, salt),
            Cipher::gcm(key, salt),
        )
    }

    /// The profile of this context.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Bytes protect adds to an RTP packet.
    pub fn rtp_overhead(&self) -> usize {
        self.profile.rtp_tag_len()
    }

    /// Bytes protect adds to an RTCP packet.
    pub fn rtcp_overhead(&self) -> usize {
        self.profile.rtcp_tag_len() + RTCP_TRAILER
    }

    fn spend(&mut self) -> Result<(), SrtpError> {
        self.remaining = self.remaining.checked_sub(1).ok_or(SrtpError::KeyExpired)?;
        Ok(())
    }

    /// Encrypts and authenticates the RTP packet `buf[..len]` in place;
    /// returns the SRTP length (`len` plus the tag). `buf` needs that much
    /// room.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::LengthExceedsBuffer {
            len,
            cap: buf.len(),
        })?;
        let hdr = rtp_header_len(pkt)?;
        let tag_len = self.profile.rtp_tag_len();
        let out_len = len + tag_len;
        if out_len > buf.len() {
            return Err(SrtpError::BufferTooSmall { needed: out_len });
        }
        let seq = be_u16(pkt, 2).ok_or(SrtpError::TooShort)?;
        let ssrc = be_u32(pkt, 8).ok_or(SrtpError::TooShort)?;

        // The sender tracks its own roll-over exactly as a receiver will
        // estimate it, and refuses to reuse an index: the same index twice
        // under one key would reuse keystream.
        let slot = self.rtp_streams.find(ssrc);
        let (index, window) = match slot.and_then(|i| self.rtp_streams.get(i)) {
            Some(w) => {
                let index = estimate_index(w.highest(), seq);
                w.check(index)?;
                (index, Some(w))
            }
            None => (u64::from(seq), None),
        };
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::KeyExpired);
        }
        self.spend()?;

        let (head, rest) = buf.split_at_mut(hdr);
        let (payload, trailer) = rest.split_at_mut(len - hdr);
        let tag_out = trailer
            .get_mut(..tag_len)
            .ok_or(SrtpError::BufferTooSmall { needed: out_len })?;
        match &self.rtp {
            Cipher::Cm { aes, mac, salt } => {
                cm_xor(aes, &cm_iv(salt, ssrc, index), payload);
                let mut m = mac.clone();
                m.update(head);
                m.update(payload);
                m.update(&((index >> 16) as u32).to_be_bytes());
                let full = m.finalize().into_bytes();
                tag_out.copy_from_slice(full.get(..tag_len).ok_or(SrtpError::TooShort)?);
            }
            Cipher::Gcm { aead, salt } => {
                let nonce = gcm_rtp_nonce(salt, ssrc, index);
                let tag = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), head, payload)
                    // aes-gcm refuses only plaintexts over 64 GiB, which no
                    // UDP packet is; the mapping is for completeness.
                    .map_err(|_| SrtpError::TooShort)?;
                tag_out.copy_from_slice(&tag);
            }
        }

        let mut w = window.unwrap_or_else(|| ReplayWindow::starting_at(index));
        w.accept(index);
        self.rtp_streams.put(slot, ssrc, w);
        Ok(out_len)
    }

    /// Authenticates and decrypts the SRTP packet `buf[..len]` in place;
    /// returns the RTP length. Nothing changes state unless the packet
    /// authenticates.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::LengthExceedsBuffer {
            len,
            cap: buf.len(),
        })?;
        let tag_len = self.profile.rtp_tag_len();
        let body_len = len
            .checked_sub(tag_len)
            .filter(|&b| b >= RTP_HEADER)
            .ok_or(SrtpError::TooShort)?;
        let body = pkt.get(..body_len).ok_or(SrtpError::TooShort)?;
        let hdr = rtp_header_len(body)?;
        let seq = be_u16(body, 2).ok_or(SrtpError::TooShort)?;
        let ssrc = be_u32(body, 8).ok_or(SrtpError::TooShort)?;

        let slot = self.rtp_streams.find(ssrc);
        let window = slot.and_then(|i| self.rtp_streams.get(i));
        let index = match window {
            Some(w) => {
                let index = estimate_index(w.highest(), seq);
                w.check(index)?;
                index
            }
            // RFC 3711 3.3.1: a new stream starts with ROC 0 (SDES carries
            // no ROC).
            None => u64::from(seq),
        };
        if self.remaining == 0 {
            return Err(SrtpError::KeyExpired);
        }

        let (head, rest) = buf.split_at_mut(hdr);
        let (payload, trailer) = rest.split_at_mut(body_len - hdr);
        let tag_in = trailer.get(..tag_len).ok_or(SrtpError::TooShort)?;
        match &self.rtp {
            Cipher::Cm { aes, mac, salt } => {
                let mut m = mac.clone();
                m.update(head);
                m.update(payload);
                m.update(&((index >> 16) as u32).to_be_bytes());
                // Constant-time comparison of the truncated tag.
                m.verify_truncated_left(tag_in)
                    .map_err(|_| SrtpError::AuthFailed)?;
                cm_xor(aes, &cm_iv(salt, ssrc, index), payload);
            }
            Cipher::Gcm { aead, salt } => {
                let nonce = gcm_rtp_nonce(salt, ssrc, index);
                aead.decrypt_in_place_detached(
                    Nonce::from_slice(&nonce),
                    head,
                    payload,
                    Tag::from_slice(tag_in),
                )
                .map_err(|_| SrtpError::AuthFailed)?;
            }
        }

        self.spend()?;
        let mut w = window.unwrap_or_else(|| ReplayWindow::starting_at(index));
        w.accept(index);
        self.rtp_streams.put(slot, ssrc, w);
        Ok(body_len)
    }

    /// Encrypts and authenticates the RTCP compound packet `buf[..len]` in
    /// place (E bit set); returns the SRTCP length (`len` plus the tag and
    /// the 4-byte E||index trailer).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::LengthExceedsBuffer {
            len,
            cap: buf.len(),
        })?;
        let ssrc = rtcp_check(pkt)?;
        let tag_len = self.profile.rtcp_tag_len();
        let out_len = len + tag_len + RTCP_TRAILER;
        if out_len > buf.len() {
            return Err(SrtpError::BufferTooSmall { needed: out_len });
        }
        let slot = self.rtcp_streams.find(ssrc);
        let mut state = slot
            .and_then(|i| self.rtcp_streams.get(i))
            .unwrap_or_default();
        let index = state.next_tx;
        if index > MAX_RTCP_INDEX {
            return Err(SrtpError::KeyExpired);
        }
        self.spend()?;
        let index32 = index as u32;
        let e_index = (index32 | RTCP_E_BIT).to_be_bytes();

        let (head, rest) = buf.split_at_mut(RTCP_HEADER);
        let (payload, trailer) = rest.split_at_mut(len - RTCP_HEADER);
        match &self.rtcp {
            Cipher::Cm { aes, mac, salt } => {
                let (idx_out, tag_out) = trailer.split_at_mut(RTCP_TRAILER);
                cm_xor(aes, &cm_iv(salt, ssrc, index), payload);
                idx_out.copy_from_slice(&e_index);
                let mut m = mac.clone();
                m.update(head);
                m.update(payload);
                m.update(&e_index);
                let full = m.finalize().into_bytes();
                tag_out
                    .get_mut(..tag_len)
                    .ok_or(SrtpError::BufferTooSmall { needed: out_len })?
                    .copy_from_slice(full.get(..tag_len).ok_or(SrtpError::TooShort)?);
            }
            Cipher::Gcm { aead, salt } => {
                // RFC 7714 9.2: AAD is the first 8 octets and E||index; the
                // tag precedes the trailer.
                let mut aad = [0u8; RTCP_HEADER + RTCP_TRAILER];
                aad[..RTCP_HEADER].copy_from_slice(head);
                aad[RTCP_HEADER..].copy_from_slice(&e_index);
                let nonce = gcm_rtcp_nonce(salt, ssrc, index32);
                let tag = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, payload)
                    // aes-gcm refuses only plaintexts over 64 GiB, which no
                    // UDP packet is; the mapping is for completeness.
                    .map_err(|_| SrtpError::TooShort)?;
                let (tag_out, idx_out) = trailer.split_at_mut(tag_len);
                tag_out.copy_from_slice(&tag);
                idx_out
                    .get_mut(..RTCP_TRAILER)
                    .ok_or(SrtpError::BufferTooSmall { needed: out_len })?
                    .copy_from_slice(&e_index);
            }
        }
        state.next_tx = index + 1;
        self.rtcp_streams.put(slot, ssrc, state);
        Ok(out_len)
    }

    /// Authenticates and, when its E bit is set, decrypts the SRTCP packet
    /// `buf[..len]` in place; returns the RTCP length.
    ///
    /// A packet refused as too short, unauthentic or replayed that is a
    /// complete plain RTCP compound packet is reported as
    /// [`SrtpError::Unprotected`]: the sender sent RTCP without its SRTP
    /// (before keying or after tearing it down), not a forgery.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::LengthExceedsBuffer {
            len,
            cap: buf.len(),
        })?;
        // Judged before anything touches the buffer: a failed GCM check may
        // leave it changed.
        let plain = is_plain_rtcp_compound(pkt);
        self.unprotect_srtcp(buf, len).map_err(|e| match e {
            SrtpError::TooShort
            | SrtpError::AuthFailed
            | SrtpError::Replayed
            | SrtpError::TooOld
                if plain =>
            {
                SrtpError::Unprotected
            }
            e => e,
        })
    }

    fn unprotect_srtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::LengthExceedsBuffer {
            len,
            cap: buf.len(),
        })?;
        let tag_len = self.profile.rtcp_tag_len();
        let rtcp_len = len
            .checked_sub(tag_len + RTCP_TRAILER)
            .filter(|&n| n >= RTCP_HEADER)
            .ok_or(SrtpError::TooShort)?;
        let ssrc = rtcp_check(pkt)?;
        let trailer_at = match self.profile.is_aead() {
            true => rtcp_len + tag_len,
            false => rtcp_len,
        };
        let e_index = be_u32(pkt, trailer_at).ok_or(SrtpError::TooShort)?;
        let encrypted = e_index & RTCP_E_BIT != 0;
        let index32 = e_index & !RTCP_E_BIT;
        let index = u64::from(index32);

        let slot = self.rtcp_streams.find(ssrc);
        let mut state = slot
            .and_then(|i| self.rtcp_streams.get(i))
            .unwrap_or_default();
        if let Some(w) = &state.rx {
            w.check(index)?;
        }
        if self.remaining == 0 {
            return Err(SrtpError::KeyExpired);
        }

        match &self.rtcp {
            Cipher::Cm { aes, mac, salt } => {
                let (authed, tag_in) = buf.split_at_mut(rtcp_len + RTCP_TRAILER);
                let tag_in = tag_in.get(..tag_len).ok_or(SrtpError::TooShort)?;
                let mut m = mac.clone();
                m.update(authed);
                m.verify_truncated_left(tag_in)
                    .map_err(|_| SrtpError::AuthFailed)?;
                if encrypted {
                    let payload = authed
                        .get_mut(RTCP_HEADER..rtcp_len)
                        .ok_or(SrtpError::TooShort)?;
                    cm_xor(aes, &cm_iv(salt, ssrc, index), payload);
                }
            }
            Cipher::Gcm { aead, salt } => {
                let nonce = gcm_rtcp_nonce(salt, ssrc, index32);
                let nonce = Nonce::from_slice(&nonce);
                let mut tag = [0u8; 16];
                tag.copy_from_slice(
                    buf.get(rtcp_len..rtcp_len + 16)
                        .ok_or(SrtpError::TooShort)?,
                );
                let tag = Tag::from_slice(&tag);
                if encrypted {
                    let mut aad = [0u8; RTCP_HEADER + RTCP_TRAILER];
                    aad[..RTCP_HEADER]
                        .copy_from_slice(buf.get(..RTCP_HEADER).ok_or(SrtpError::TooShort)?);
                    aad[RTCP_HEADER..].copy_from_slice(&e_index.to_be_bytes());
                    let payload = buf
                        .get_mut(RTCP_HEADER..rtcp_len)
                        .ok_or(SrtpError::TooShort)?;
                    aead.decrypt_in_place_detached(nonce, &aad, payload, tag)
                        .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // Unencrypted SRTCP: the whole packet and the trailer are
                    // AAD. Moving the trailer over the (saved) tag makes them
                    // contiguous without a copy of the packet.
                    let moved = buf
                        .get_mut(rtcp_len..rtcp_len + RTCP_TRAILER)
                        .ok_or(SrtpError::TooShort)?;
                    moved.copy_from_slice(&e_index.to_be_bytes());
                    let aad = buf
                        .get(..rtcp_len + RTCP_TRAILER)
                        .ok_or(SrtpError::TooShort)?;
                    aead.decrypt_in_place_detached(nonce, aad, &mut [], tag)
                        .map_err(|_| SrtpError::AuthFailed)?;
                }
            }
        }

        self.spend()?;
        let mut w = state.rx.unwrap_or_else(|| ReplayWindow::starting_at(index));
        w.accept(index);
        state.rx = Some(w);
        self.rtcp_streams.put(slot, ssrc, state);
        Ok(rtcp_len)
    }
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
