//! Checked views of RTP and RTCP headers (RFC 3550), just deep enough for a
//! relay: is this plausibly a packet of the kind the port expects, and what do
//! the RTCP report blocks say about loss and jitter.
//!
//! Nothing here allocates or panics on any input.

/// What a received datagram looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP packet (version 2, consistent header).
    Rtp,
    /// An RTCP packet (version 2, payload type 192..=223, consistent length).
    Rtcp,
}

/// Why a datagram was not accepted as RTP/RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the fixed header.
    TooShort,
    /// Version field is not 2 (STUN, DTLS, garbage...).
    BadVersion,
    /// Header fields point past the end of the datagram.
    BadHeader,
}

const RTP_HEADER: usize = 12;
const RTCP_HEADER: usize = 8;

fn version_ok(buf: &[u8]) -> bool {
    buf.first().is_some_and(|b| b >> 6 == 2)
}

/// RFC 5761 §4: with rtcp-mux, the second octet tells RTCP (192..=223, i.e.
/// the RTCP packet types SR/RR/SDES/BYE/APP/RTPFB/PSFB/XR) from RTP, whose
/// payload types must avoid 64..=95 (marker bit masked off).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// A STUN message (RFC 5389 §6: two zero bits, the magic cookie, a length
/// that matches the datagram and is a multiple of 4). RFC 7983 puts STUN in
/// first octets 0..=3 on ports shared with RTP; phones send binding
/// requests or indications to the relay's ports as NAT keep-alives.
pub fn looks_like_stun(buf: &[u8]) -> bool {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    let (Some(first), Some(len_hi), Some(len_lo), Some(cookie)) =
        (buf.first(), buf.get(2), buf.get(3), buf.get(4..8))
    else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
    first >> 6 == 0 && cookie == MAGIC_COOKIE && len % 4 == 0 && len + 20 == buf.len()
}

/// Validates an RTP header: version 2, CSRC list, extension and padding all
/// within the datagram.
pub fn check_rtp(buf: &[u8]) -> Result<(), Malformed> {
    if buf.len() < RTP_HEADER {
        return Err(Malformed::TooShort);
    }
    if !version_ok(buf) {
        return Err(Malformed::BadVersion);
    }
    let b0 = buf.first().copied().unwrap_or(0);
    let cc = usize::from(b0 & 0x0f);
    let mut end = RTP_HEADER + 4 * cc;
    if b0 & 0x10 != 0 {
        // Extension header: 16-bit profile, 16-bit length in 32-bit words.
        let len_hi = buf.get(end + 2).copied().ok_or(Malformed::BadHeader)?;
        let len_lo = buf.get(end + 3).copied().ok_or(Malformed::BadHeader)?;
        end += 4 + 4 * usize::from(u16::from_be_bytes([len_hi, len_lo]));
    }
    if end > buf.len() {
        return Err(Malformed::BadHeader);
    }
    if b0 & 0x20 != 0 {
        // Padding count is the last octet; it must fit after the header. For
        // SRTP the last octet is part of the auth tag, so only the encrypted
        // form is checked loosely: a count of zero is invalid in both.
        let pad = usize::from(buf.last().copied().unwrap_or(0));
        if pad == 0 {
            return Err(Malformed::BadHeader);
        }
    }
    Ok(())
}

/// Validates the first header of an (S)RTCP compound packet: version 2, an
/// RTCP packet type and a length that fits. SRTCP appends an index and a tag
/// after the compound packet, so a datagram may be longer than the headers
/// say, never shorter.
pub fn check_rtcp(buf: &[u8]) -> Result<(), Malformed> {
    if buf.len() < RTCP_HEADER {
        return Err(Malformed::TooShort);
    }
    if !version_ok(buf) {
        return Err(Malformed::BadVersion);
    }
    if !looks_like_rtcp(buf) {
        return Err(Malformed::BadHeader);
    }
    let words = match (buf.get(2), buf.get(3)) {
        (Some(&h), Some(&l)) => usize::from(u16::from_be_bytes([h, l])),
        _ => return Err(Malformed::TooShort),
    };
    if (words + 1) * 4 > buf.len() {
        return Err(Malformed::BadHeader);
    }
    Ok(())
}

/// Loss and jitter as reported by an RTCP SR/RR report block (RFC 3550
/// §6.4.1). The relay keeps the last block seen per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source the block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed in the packet).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Walks a plain RTCP compound packet and returns the last report block of
/// its SRs and RRs, if any. Stops at the first inconsistent header (an
/// encrypted SRTCP payload reads as garbage after the first 8 octets, which
/// is why the caller only calls this on plain RTCP).
pub fn last_report_block(buf: &[u8]) -> Option<ReportBlock> {
    let mut at = 0usize;
    let mut found = None;
    // A compound packet in one datagram cannot hold more than this many
    // parts; the bound keeps the loop obviously finite.
    for _ in 0..64 {
        // Octets after the last complete part (an SRTCP trailer, padding, junk) end the walk
        // but keep what was found, whatever they look like.
        let Some(&[b0, pt, len_hi, len_lo]) = buf.get(at..at + 4) else {
            break;
        };
        if b0 >> 6 != 2 {
            break;
        }
        let count = usize::from(b0 & 0x1f);
        let len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
        let Some(part) = buf.get(at..at + len) else {
            break;
        };
        let blocks_at = match pt {
            200 => Some(28), // SR: header, SSRC, 20-octet sender info
            201 => Some(8),  // RR: header, SSRC
            _ => None,
        };
        if let Some(start) = blocks_at {
            for i in 0..count {
                let b = start + 24 * i;
                let Some(blk) = part.get(b..b + 24) else {
                    break;
                };
                let ssrc = be32(blk, 0)?;
                let lost = be32(blk, 4)?;
                let fraction_lost = (lost >> 24) as u8;
                // 24-bit two's complement.
                let raw = lost & 0x00ff_ffff;
                let cumulative_lost = if raw & 0x0080_0000 != 0 {
                    (raw | 0xff00_0000) as i32
                } else {
                    raw as i32
                };
                found = Some(ReportBlock {
                    ssrc,
                    fraction_lost,
                    cumulative_lost,
                    highest_seq: be32(blk, 8)?,
                    jitter: be32(blk, 12)?,
                });
            }
        }
        at += len;
        if at >= buf.len() {
            break;
        }
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rtp(seq: u16, ssrc: u32, pt: u8, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, pt & 0x7f];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.resize(12 + payload, 0xd5);
        p
    }

    pub(crate) fn rr(ssrc: u32, about: u32, fraction: u8, cum: i32, jitter: u32) -> Vec<u8> {
        let mut p = vec![0x81, 201, 0, 7];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&about.to_be_bytes());
        let lost = (u32::from(fraction) << 24) | (cum as u32 & 0x00ff_ffff);
        p.extend_from_slice(&lost.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&jitter.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    #[test]
    fn rtp_checks() {
        assert_eq!(check_rtp(&rtp(1, 2, 0, 160)), Ok(()));
        assert_eq!(check_rtp(&[0x80; 11]), Err(Malformed::TooShort));
        let mut v1 = rtp(1, 2, 0, 10);
        v1[0] = 0x40;
        assert_eq!(check_rtp(&v1), Err(Malformed::BadVersion));
        let mut cc = rtp(1, 2, 0, 0);
        cc[0] = 0x8f; // 15 CSRCs announced, none present
        assert_eq!(check_rtp(&cc), Err(Malformed::BadHeader));
        let mut ext = rtp(1, 2, 0, 4);
        ext[0] = 0x90;
        ext[14] = 0;
        ext[15] = 9; // 36 octets of extension that are not there
        assert_eq!(check_rtp(&ext), Err(Malformed::BadHeader));
        let mut pad = rtp(1, 2, 0, 4);
        pad[0] = 0xa0;
        *pad.last_mut().unwrap() = 0;
        assert_eq!(check_rtp(&pad), Err(Malformed::BadHeader));
        // STUN binding request starts with 0x00 0x01.
        assert_eq!(
            check_rtp(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]),
            Err(Malformed::BadVersion)
        );
    }

    #[test]
    fn rtcp_checks_and_report_blocks() {
        let p = rr(1, 2, 64, -3, 77);
        assert_eq!(check_rtcp(&p), Ok(()));
        assert!(looks_like_rtcp(&p));
        assert!(!looks_like_stun(&p));
        assert!(!looks_like_rtcp(&rtp(1, 2, 0, 10)));
        assert_eq!(check_rtcp(&p[..20]), Err(Malformed::BadHeader));
        let b = last_report_block(&p).unwrap();
        assert_eq!(
            b,
            ReportBlock {
                ssrc: 2,
                fraction_lost: 64,
                cumulative_lost: -3,
                highest_seq: 1000,
                jitter: 77
            }
        );
        // SR with one block followed by an SDES part.
        let mut sr = vec![0x81, 200, 0, 12];
        sr.extend_from_slice(&9u32.to_be_bytes());
        sr.extend_from_slice(&[0; 20]);
        sr.extend_from_slice(&p[8..32]);
        sr.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 9]);
        assert_eq!(check_rtcp(&sr), Ok(()));
        assert_eq!(last_report_block(&sr).unwrap().jitter, 77);
        // Truncated block: no report, no panic.
        assert_eq!(last_report_block(&sr[..40]), None);
        assert_eq!(last_report_block(&[]), None);
    }

    /// Found by the `rtp` fuzz target: a report block was lost when the compound packet was
    /// followed by 1 to 3 octets, or by a version-2 header whose length runs past the
    /// datagram, but kept after any other trailing octets.
    #[test]
    fn report_block_kept_whatever_follows() {
        let p = rr(1, 2, 64, -3, 77);
        let expected = last_report_block(&p);
        assert!(expected.is_some());
        for tail in [
            &[0xab][..],
            &[0x80, 0x00, 0x00],
            &[0x80, 201, 0xff, 0xff],
            &[0x00, 0x00, 0x00, 0x00],
            &[0x81, 201, 0x00, 0x07, 0, 0, 0, 1],
        ] {
            let mut q = p.clone();
            q.extend_from_slice(tail);
            assert_eq!(last_report_block(&q), expected, "tail {tail:02x?}");
        }
    }

    #[test]
    fn stun_is_told_from_rtp() {
        // A binding request without attributes, as linphone sends them.
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        req.extend_from_slice(&[7; 12]);
        assert!(looks_like_stun(&req));
        // A binding indication with one 8-byte attribute.
        let mut ind = vec![0x00, 0x11, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
        ind.extend_from_slice(&[1; 20]);
        assert!(looks_like_stun(&ind));
        // Wrong length, wrong cookie, RTP: not STUN.
        assert!(!looks_like_stun(&req[..19]));
        let mut bad = req.clone();
        bad[4] = 0x22;
        assert!(!looks_like_stun(&bad));
        assert!(!looks_like_stun(&rtp(1, 2, 0, 10)));
        assert!(!looks_like_stun(&[]));
    }
}
