//! `media-srtp`'s per-direction transform as the relay's [`PacketTransform`]
//! (feature `srtp`, on by default).
//!
//! The dependency runs from the relay to the SRTP crate: `media-srtp` is
//! pure crypto and keying and must stay usable without the relay, and the
//! relay's transform hook is the only place the two meet.

use media_srtp::{SrtpError, SrtpTransform};

use crate::transform::{PacketTransform, PlainRtcp, TransformError};

/// Maps an SRTP refusal to the relay's drop reasons: authentication,
/// plain RTCP and replay are counted apart because they mean different
/// things to an operator (forgery or wrong key, a peer's RTCP outside the
/// life of its SRTP, duplicated or delayed traffic).
pub fn transform_error(e: SrtpError) -> TransformError {
    match e {
        SrtpError::AuthFailed => TransformError::Auth,
        SrtpError::Unprotected => TransformError::Unprotected,
        SrtpError::Replayed | SrtpError::TooOld => TransformError::Replay,
        SrtpError::TooShort | SrtpError::BadVersion | SrtpError::BadHeader => {
            TransformError::Malformed
        }
        SrtpError::BufferTooSmall { .. } | SrtpError::LengthExceedsBuffer { .. } => {
            TransformError::BufferTooSmall
        }
        SrtpError::KeyExpired => TransformError::Other,
    }
}

impl PacketTransform for SrtpTransform {
    fn rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        SrtpTransform::rtp(self, buf, len).map_err(transform_error)
    }

    fn rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        SrtpTransform::rtcp(self, buf, len).map_err(transform_error)
    }

    fn plain_rtcp(&self) -> PlainRtcp {
        match self {
            SrtpTransform::Decrypt(_) => PlainRtcp::AfterTransform,
            SrtpTransform::Encrypt(_) => PlainRtcp::BeforeTransform,
            // Passthrough may carry SRTCP end to end (the report blocks are
            // encrypted then), and re-encryption is SRTCP on both sides.
            SrtpTransform::Passthrough | SrtpTransform::Reencrypt { .. } => PlainRtcp::Nowhere,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_srtp::{MasterKey, SrtpContext, SrtpProfile};

    #[test]
    fn decrypt_through_the_trait_and_drop_reasons() {
        let key = MasterKey::new(SrtpProfile::AesCm128HmacSha1_80, &[3; 16], &[4; 14]).unwrap();
        let mut sender = SrtpContext::new(&key);
        let mut t: Box<dyn PacketTransform> =
            Box::new(SrtpTransform::Decrypt(Box::new(SrtpContext::new(&key))));
        assert_eq!(t.plain_rtcp(), PlainRtcp::AfterTransform);
        let mut p = vec![0u8; 172 + 64];
        p[0] = 0x80;
        p[7] = 1;
        p[12..172].fill(0x5a);
        let plain = p[..172].to_vec();
        let n = sender.protect_rtp(&mut p, 172).unwrap();
        assert_eq!(n, 182);
        let sealed = p.clone();
        assert_eq!(t.rtp(&mut p, n), Ok(172));
        assert_eq!(p[..172], plain[..]);
        // The same packet again is a replay.
        let mut again = sealed.clone();
        assert_eq!(t.rtp(&mut again, n), Err(TransformError::Replay));
        // A flipped payload bit fails authentication.
        let mut forged = sealed;
        forged[3] ^= 1; // another sequence number, so not a replay
        assert_eq!(t.rtp(&mut forged, n), Err(TransformError::Auth));
        assert_eq!(t.rtp(&mut p, 5), Err(TransformError::Malformed));
    }

    #[test]
    fn every_srtp_error_has_its_drop_reason() {
        use TransformError as T;
        let cases = [
            (SrtpError::AuthFailed, T::Auth),
            (SrtpError::Unprotected, T::Unprotected),
            (SrtpError::Replayed, T::Replay),
            (SrtpError::TooOld, T::Replay),
            (SrtpError::TooShort, T::Malformed),
            (SrtpError::BadVersion, T::Malformed),
            (SrtpError::BadHeader, T::Malformed),
            (SrtpError::BufferTooSmall { needed: 9 }, T::BufferTooSmall),
            (
                SrtpError::LengthExceedsBuffer { len: 9, cap: 1 },
                T::BufferTooSmall,
            ),
            (SrtpError::KeyExpired, T::Other),
        ];
        for (e, want) in cases {
            assert_eq!(transform_error(e), want, "{e:?}");
        }
    }
}
