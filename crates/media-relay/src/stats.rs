//! Counters kept per session, per media stream and per direction.
//!
//! Counters are plain integers in fixed arrays: the worker that owns a
//! session is the only writer, so the packet path needs neither atomics nor
//! allocation; readers get a copy through the driver's command channel.

use crate::rtp::ReportBlock;
use crate::transform::TransformError;

/// Why a received datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// Not RTP/RTCP version 2, or a header that does not fit the datagram.
    Malformed,
    /// Larger than the receive buffer (truncated by the kernel) or empty.
    BadLength,
    /// Before latching: the source is not the one the side's SDP allows.
    UnexpectedSource,
    /// After latching: from a source other than the latched one.
    SourceLocked,
    /// Nowhere to send it yet: the other side has neither latched nor
    /// announced an address in its SDP.
    NoDestination,
    /// The packet transform (SRTP) rejected the authentication tag.
    TransformAuth,
    /// The packet transform (SRTP) got plain RTCP where SRTCP is required:
    /// a complete RTCP compound packet without SRTCP index and tag. Peers
    /// send it around the life of their SRTP (baresip: a keepalive before
    /// its keys are set, its BYE after it dropped them).
    TransformUnprotected,
    /// The packet transform (SRTP) saw a replayed or too old index.
    TransformReplay,
    /// The packet transform failed for another reason.
    TransformOther,
    /// The kernel refused to send the forwarded packet.
    SendFailed,
    /// RTP in a direction the negotiated SDP forbids (`a=sendonly`,
    /// `a=recvonly`, `a=inactive`: a call on hold).
    Direction,
    /// A STUN message (a phone's NAT keep-alive, RFC 5389/7983) on a media
    /// port: neither relayed nor answered. Told apart from `Malformed` so
    /// that keep-alives do not read as an attack.
    Stun,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 12] = [
        DropReason::Malformed,
        DropReason::BadLength,
        DropReason::UnexpectedSource,
        DropReason::SourceLocked,
        DropReason::NoDestination,
        DropReason::TransformAuth,
        DropReason::TransformUnprotected,
        DropReason::TransformReplay,
        DropReason::TransformOther,
        DropReason::SendFailed,
        DropReason::Direction,
        DropReason::Stun,
    ];

    /// Stable snake_case name, for JSON, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadLength => "bad_length",
            DropReason::UnexpectedSource => "unexpected_source",
            DropReason::SourceLocked => "source_locked",
            DropReason::NoDestination => "no_destination",
            DropReason::TransformAuth => "transform_auth",
            DropReason::TransformUnprotected => "transform_unprotected",
            DropReason::TransformReplay => "transform_replay",
            DropReason::TransformOther => "transform_other",
            DropReason::SendFailed => "send_failed",
            DropReason::Direction => "direction",
            DropReason::Stun => "stun",
        }
    }
}

impl From<TransformError> for DropReason {
    fn from(e: TransformError) -> Self {
        match e {
            TransformError::Auth => DropReason::TransformAuth,
            TransformError::Unprotected => DropReason::TransformUnprotected,
            TransformError::Replay => DropReason::TransformReplay,
            _ => DropReason::TransformOther,
        }
    }
}

/// Drop counters, one per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops([u64; DropReason::ALL.len()]);

impl Drops {
    /// Count one drop.
    pub fn add(&mut self, reason: DropReason) {
        if let Some(c) = self.0.get_mut(reason as usize) {
            *c += 1;
        }
    }

    /// Number of drops for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason as usize).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// (reason, count) for every reason with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    /// Adds another set of counters into this one.
    pub fn merge(&mut self, other: &Drops) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

/// Traffic received from one side of one stream (and forwarded, or not, to
/// the other side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// RTP packets received (valid or not).
    pub rtp_in: u64,
    /// RTP packets forwarded.
    pub rtp_out: u64,
    /// RTCP packets received (valid or not).
    pub rtcp_in: u64,
    /// RTCP packets forwarded.
    pub rtcp_out: u64,
    /// Octets received (RTP and RTCP).
    pub bytes_in: u64,
    /// Octets forwarded (after the transform, if any).
    pub bytes_out: u64,
    /// Of `rtp_out`, the RTP packets the kernel fast path forwarded
    /// ([`RelayConfig::kernel_forward`]); they are counted in `rtp_in`,
    /// `rtp_out`, `bytes_in` and `bytes_out` as well.
    ///
    /// [`RelayConfig::kernel_forward`]: crate::RelayConfig::kernel_forward
    pub rtp_kernel: u64,
    /// Datagrams dropped, by reason.
    pub drops: Drops,
    /// The last RTCP SR/RR report block this side sent: how it sees the
    /// media it receives from the other side (loss, jitter).
    pub last_report: Option<ReportBlock>,
}

impl DirectionStats {
    /// Adds another direction's counters into this one (the report block of
    /// `other` wins when it has one).
    pub fn merge(&mut self, o: &DirectionStats) {
        self.rtp_in += o.rtp_in;
        self.rtp_out += o.rtp_out;
        self.rtcp_in += o.rtcp_in;
        self.rtcp_out += o.rtcp_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.rtp_kernel += o.rtp_kernel;
        self.drops.merge(&o.drops);
        if o.last_report.is_some() {
            self.last_report = o.last_report;
        }
    }
}

/// Both directions of one media stream (one `m=` line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Index of the `m=` line.
    pub media_index: usize,
    /// Received from side A, forwarded to side B.
    pub a_to_b: DirectionStats,
    /// Received from side B, forwarded to side A.
    pub b_to_a: DirectionStats,
}

/// Statistics of one session: one entry per relayed stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Per relayed `m=` line.
    pub streams: Vec<StreamStats>,
}

impl SessionStats {
    /// Both directions of all streams added up.
    pub fn total(&self) -> DirectionStats {
        let mut t = DirectionStats::default();
        for s in &self.streams {
            t.merge(&s.a_to_b);
            t.merge(&s.b_to_a);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_by_reason() {
        let mut d = Drops::default();
        d.add(DropReason::SourceLocked);
        d.add(DropReason::SourceLocked);
        d.add(DropReason::from(TransformError::Replay));
        assert_eq!(d.get(DropReason::SourceLocked), 2);
        assert_eq!(d.get(DropReason::TransformReplay), 1);
        assert_eq!(d.total(), 3);
        let listed: Vec<_> = d.iter().collect();
        assert_eq!(
            listed,
            vec![
                (DropReason::SourceLocked, 2),
                (DropReason::TransformReplay, 1)
            ]
        );
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL must be in discriminant order");
        }
    }

    #[test]
    fn transform_errors_have_their_own_names() {
        let cases = [
            (TransformError::Auth, "transform_auth"),
            (TransformError::Unprotected, "transform_unprotected"),
            (TransformError::Replay, "transform_replay"),
            (TransformError::Malformed, "transform_other"),
        ];
        for (e, name) in cases {
            assert_eq!(DropReason::from(e).as_str(), name, "{e:?}");
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len(), "names are unique");
    }
}
