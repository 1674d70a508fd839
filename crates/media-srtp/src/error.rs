//! Why a packet was refused. Every variant is a counted drop reason for the
//! relay, so each names one cause an operator can act on.

use thiserror::Error;

/// A packet that protect or unprotect refused. The buffer content is
/// unspecified after an error; the packet must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// `len` is larger than the buffer handed in.
    #[error("length {len} exceeds the buffer of {cap} bytes")]
    LengthExceedsBuffer {
        /// Claimed packet length.
        len: usize,
        /// Buffer capacity.
        cap: usize,
    },
    /// Shorter than the fixed header plus the trailer this profile needs.
    #[error("packet too short")]
    TooShort,
    /// RTP/RTCP version field is not 2.
    #[error("RTP/RTCP version is not 2")]
    BadVersion,
    /// CSRC list or header extension runs past the end of the packet.
    #[error("RTP header (CSRC list or extension) runs past the packet")]
    BadHeader,
    /// No room after the packet for the authentication tag (protect only).
    #[error("buffer needs {needed} bytes for the protected packet")]
    BufferTooSmall {
        /// Bytes the protected packet needs.
        needed: usize,
    },
    /// Authentication tag does not match: forged, corrupted or wrong key.
    #[error("authentication failed")]
    AuthFailed,
    /// This index was already accepted (or, when protecting, already sent:
    /// sending it again would reuse keystream).
    #[error("replayed packet")]
    Replayed,
    /// Plain RTCP where SRTCP is required (RFC 3711 3.4: SRTCP is always
    /// authenticated): a complete RTCP compound packet without the SRTCP
    /// index and tag. Senders do this around the life of their SRTP
    /// context: baresip sends an RTCP APP before its SRTP is keyed and its
    /// RTCP BYE after tearing it down. Dropped like an authentication
    /// failure, but named apart because it is no forgery and no wrong key.
    #[error("plain RTCP where SRTCP is required")]
    Unprotected,
    /// Older than the replay window can judge.
    #[error("packet index older than the replay window")]
    TooOld,
    /// The master key's lifetime (SDES lifetime, 2^48 SRTP or 2^31 SRTCP
    /// packets) is used up: the call must rekey.
    #[error("master key lifetime exhausted")]
    KeyExpired,
}
