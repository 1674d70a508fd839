//! The hook through which SRTP (or any other per-packet rewrite) runs inside
//! the relay's packet path.
//!
//! The relay owns the buffers and the threads; a transform is a value the
//! caller installs per stream and per direction. It is called on the worker
//! thread that owns the stream, once per packet, with the packet in place.

/// Octets every buffer handed to a [`PacketTransform`] has free after the
/// packet: room for an SRTP authentication tag (up to 16 octets for
/// AEAD-GCM) plus an SRTCP index (4 octets), with margin for an MKI.
pub const TRANSFORM_HEADROOM: usize = 64;

/// Why a transform refused a packet. Each variant is counted as a
/// [`crate::DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// Authentication tag did not verify.
    #[error("authentication failed")]
    Auth,
    /// A plain packet where the transform requires a protected one (plain
    /// RTCP on an SRTCP path): the sender's own SRTP was not running yet or
    /// any more, no forgery.
    #[error("unprotected packet")]
    Unprotected,
    /// Packet index already seen or older than the replay window.
    #[error("replayed packet")]
    Replay,
    /// The packet cannot be parsed as the transform expects it.
    #[error("malformed packet")]
    Malformed,
    /// The buffer lacks room for the output.
    #[error("buffer too small")]
    BufferTooSmall,
    /// Anything else (no key yet, key exhausted...).
    #[error("transform failed")]
    Other,
}

/// Where a direction's RTCP is readable in the clear, so that the relay can
/// take loss and jitter from its report blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainRtcp {
    /// Nowhere (SRTCP on both sides, or unknown): no report statistics.
    #[default]
    Nowhere,
    /// The input is plain (the transform encrypts toward an SRTP side).
    BeforeTransform,
    /// The output is plain (the transform decrypts an SRTP side's packets).
    AfterTransform,
}

/// An in-place transform for one direction of one stream (for example SRTP
/// decrypt on the way in from an SRTP side, encrypt on the way out to it).
///
/// `buf[..len]` holds the packet; `buf.len() >= len + TRANSFORM_HEADROOM`,
/// so a tag can be appended without copying. The return value is the new
/// length. Implementations must not allocate or block: they run on the
/// packet path of a worker that serves many sessions.
pub trait PacketTransform: Send {
    /// Transforms an RTP packet.
    fn rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError>;
    /// Transforms an RTCP (compound) packet.
    fn rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError>;
    /// Where this direction's RTCP can be read in the clear. Without a
    /// transform the relay reads it as received.
    fn plain_rtcp(&self) -> PlainRtcp {
        PlainRtcp::Nowhere
    }
}
