//! What the relay applies to the packets of one direction.

use crate::{SrtpContext, SrtpError};

/// The transform of one relay direction. The relay calls [`rtp`](Self::rtp)
/// and [`rtcp`](Self::rtcp) with the received packet in `buf[..len]` and
/// sends `buf[..returned]`; `buf` needs [`headroom`](Self::headroom) spare
/// bytes after the packet.
#[derive(Debug)]
pub enum SrtpTransform {
    /// Packets cross untouched (plain on both sides, or end-to-end SRTP
    /// whose keys the relay never sees).
    Passthrough,
    /// SRTP in, RTP out: the relay terminates the sender's SRTP.
    Decrypt(Box<SrtpContext>),
    /// RTP in, SRTP out under our own key.
    Encrypt(Box<SrtpContext>),
    /// SRTP in under the sender's key, SRTP out under ours for the receiver.
    Reencrypt {
        /// Keyed with the sender's master key.
        inbound: Box<SrtpContext>,
        /// Keyed with the master key we gave the receiver.
        outbound: Box<SrtpContext>,
    },
}

impl SrtpTransform {
    /// Applies the transform to one RTP packet.
    pub fn rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        match self {
            Self::Passthrough => check_len(buf, len),
            Self::Decrypt(c) => c.unprotect_rtp(buf, len),
            Self::Encrypt(c) => c.protect_rtp(buf, len),
            Self::Reencrypt { inbound, outbound } => {
                let plain = inbound.unprotect_rtp(buf, len)?;
                outbound.protect_rtp(buf, plain)
            }
        }
    }

    /// Applies the transform to one RTCP compound packet.
    pub fn rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        match self {
            Self::Passthrough => check_len(buf, len),
            Self::Decrypt(c) => c.unprotect_rtcp(buf, len),
            Self::Encrypt(c) => c.protect_rtcp(buf, len),
            Self::Reencrypt { inbound, outbound } => {
                let plain = inbound.unprotect_rtcp(buf, len)?;
                outbound.protect_rtcp(buf, plain)
            }
        }
    }

    /// Spare bytes needed after a packet for the largest output.
    pub fn headroom(&self) -> usize {
        match self {
            Self::Passthrough | Self::Decrypt(_) => 0,
            Self::Encrypt(c) | Self::Reencrypt { outbound: c, .. } => {
                c.rtp_overhead().max(c.rtcp_overhead())
            }
        }
    }
}

fn check_len(buf: &[u8], len: usize) -> Result<usize, SrtpError> {
    if len > buf.len() {
        return Err(SrtpError::LengthExceedsBuffer {
            len,
            cap: buf.len(),
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MasterKey, SrtpProfile};

    fn key(p: SrtpProfile, fill: u8) -> MasterKey {
        MasterKey::new(p, &[fill; 16], &vec![fill; p.salt_len()]).unwrap()
    }

    #[test]
    fn reencrypt_moves_a_packet_from_one_key_to_another() {
        let a = key(SrtpProfile::AesCm128HmacSha1_32, 1);
        let b = key(SrtpProfile::AeadAes128Gcm, 2);
        let mut sender = SrtpContext::new(&a);
        let mut relay = SrtpTransform::Reencrypt {
            inbound: Box::new(SrtpContext::new(&a)),
            outbound: Box::new(SrtpContext::new(&b)),
        };
        let mut receiver = SrtpContext::new(&b);
        let mut p = vec![0x80, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&[0x55; 160]);
        let plain = p.clone();
        p.resize(172 + relay.headroom(), 0);
        let n = sender.protect_rtp(&mut p, 172).unwrap();
        let n = relay.rtp(&mut p, n).unwrap();
        assert_eq!(n, 172 + 16);
        let n = receiver.unprotect_rtp(&mut p, n).unwrap();
        assert_eq!(p[..n], plain[..]);

        let mut passthrough = SrtpTransform::Passthrough;
        assert_eq!(passthrough.rtp(&mut p, 100), Ok(100));
        assert!(passthrough.rtcp(&mut p, 1000).is_err());
    }
}
