//! The per-packet core: what to do with one datagram received on one of a
//! session's sockets. Sans-IO: the caller passes the time, the socket it
//! came in on, its source and its bytes, and gets a [`Verdict`] back.
//!
//! A session has one [`Stream`] per relayed `m=` line; a stream has two legs,
//! one per side. Leg A's sockets face side A (A sends to them, and we send
//! to A from them).

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::rtp::{self, Malformed};
use crate::stats::{DirectionStats, DropReason, SessionStats, StreamStats};
use crate::transform::{PacketTransform, PlainRtcp};

/// Most `m=` lines a session relays (audio, video, a second video, ...); a
/// limit checked before anything is allocated for an SDP.
pub const MAX_STREAMS: usize = 8;

/// One side of a session (a call leg). A is the side that created the
/// session (usually the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first side (the caller, for a B2BUA call).
    A,
    /// The second side (the callee).
    B,
}

impl Side {
    /// The opposite side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B.
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// Per-side pairs (`[A, B]`) addressed by [`Side`] without indexing.
pub trait PerSide<T> {
    /// The element of `side`.
    fn of(&self, side: Side) -> &T;
    /// The element of `side`, mutably.
    fn of_mut(&mut self, side: Side) -> &mut T;
}

impl<T> PerSide<T> for [T; 2] {
    fn of(&self, side: Side) -> &T {
        let [a, b] = self;
        match side {
            Side::A => a,
            Side::B => b,
        }
    }

    fn of_mut(&mut self, side: Side) -> &mut T {
        let [a, b] = self;
        match side {
            Side::A => a,
            Side::B => b,
        }
    }
}

/// Which of a leg's two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// The even port (also carries RTCP when rtcp-mux is in use).
    Rtp,
    /// The odd port.
    Rtcp,
}

/// How a leg learns where its peer sends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatchMode {
    /// Only the exact address and port of the side's SDP are accepted.
    Strict,
    /// The source IP must be the SDP's address; the port is learned from the
    /// first valid packet.
    #[default]
    SdpAddress,
    /// As `SdpAddress`, except that when the SDP shows a private (RFC 1918,
    /// RFC 6598, link-local, ULA) or unspecified address the client is taken
    /// to be behind NAT and the first valid packet from any source is
    /// latched (symmetric RTP).
    Nat,
}

/// Latching rules of one leg (set from its zone's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatchPolicy {
    /// How the first source is accepted.
    pub mode: LatchMode,
    /// When set, a leg whose latched peer has been silent this long may latch
    /// again to a new source that passes the `mode` check.
    pub relatch_after_silence: Option<Duration>,
}

/// The direction a side's SDP gives a stream (`a=sendrecv`, `a=sendonly`,
/// `a=recvonly`, `a=inactive`; RFC 3264 §5.1, RFC 8866 §6.7), from that
/// side's point of view: `SendOnly` means the side sends and does not want
/// to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum MediaDirection {
    /// Both ways (the default when the SDP says nothing).
    #[default]
    SendRecv,
    /// The side only sends (e.g. the side that puts the call on hold).
    SendOnly,
    /// The side only receives.
    RecvOnly,
    /// Neither (hold both ways).
    Inactive,
}

impl MediaDirection {
    /// The side may send RTP.
    pub fn sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    /// The side wants to receive RTP.
    pub fn receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }
}

/// Where one side receives one stream, as its SDP says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerAddrs {
    /// `c=` address and `m=` port.
    pub rtp: Option<SocketAddr>,
    /// `a=rtcp` (or the RTP port + 1).
    pub rtcp: Option<SocketAddr>,
    /// The SDP carries `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// The stream's direction in this SDP (media level, else session level).
    pub direction: MediaDirection,
}

/// What to do with a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `len` octets of the buffer out of `side`'s `socket` to `dst`.
    Forward {
        /// The leg whose socket sends.
        side: Side,
        /// Which of its sockets.
        socket: SocketKind,
        /// Destination.
        dst: SocketAddr,
        /// Length after the transform, if any.
        len: usize,
    },
    /// Do not forward; already counted.
    Drop(DropReason),
}

/// True for addresses a client behind NAT would put in its SDP.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                // RFC 6598 shared address space (carrier-grade NAT).
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Path {
    /// From the side's SDP.
    expected: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    last_rx: Option<Instant>,
    /// A new offer/answer from this side allows one new latch.
    armed: bool,
}

impl Path {
    /// Whether `src` may be (re)latched under `mode`, before looking at the
    /// current latch.
    fn admissible(&self, mode: LatchMode, src: SocketAddr) -> bool {
        let Some(exp) = self.expected else {
            return false;
        };
        match mode {
            LatchMode::Strict => exp == src,
            LatchMode::SdpAddress => exp.ip() == src.ip(),
            LatchMode::Nat => is_private(exp.ip()) || exp.ip() == src.ip(),
        }
    }

    /// The destination for packets towards this path's peer.
    fn destination(&self) -> Option<SocketAddr> {
        self.latched.or_else(|| {
            self.expected
                .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
        })
    }

    /// Whether a packet from `src` may pass, and if so whether it (re)latches
    /// the path. Changes nothing: the latch is committed only once the
    /// packet has also passed the transform (an SRTP packet that fails
    /// authentication must not move the latch).
    fn admit(
        &self,
        now: Instant,
        policy: LatchPolicy,
        src: SocketAddr,
    ) -> Result<bool, DropReason> {
        match self.latched {
            Some(l) if l == src && !self.armed => Ok(false),
            Some(l) => {
                let silent = match (policy.relatch_after_silence, self.last_rx) {
                    (Some(n), Some(last)) => now.saturating_duration_since(last) >= n,
                    _ => false,
                };
                if (self.armed || silent) && self.admissible(policy.mode, src) {
                    Ok(true)
                } else if l != src {
                    Err(DropReason::SourceLocked)
                } else {
                    // The latched peer while armed, but no longer admissible
                    // by its new SDP: still the peer until someone
                    // admissible shows up.
                    Ok(false)
                }
            }
            None if self.admissible(policy.mode, src) => Ok(true),
            None => Err(DropReason::UnexpectedSource),
        }
    }

    fn commit(&mut self, now: Instant, src: SocketAddr, latch: bool) {
        if latch {
            self.latched = Some(src);
            self.armed = false;
        }
        self.last_rx = Some(now);
    }
}

#[derive(Default)]
struct Leg {
    policy: LatchPolicy,
    peer: Option<PeerAddrs>,
    rtp: Path,
    rtcp: Path,
    has_rtcp_socket: bool,
    /// Traffic received from this side.
    stats: DirectionStats,
    /// Applied to packets received from this side.
    transform: Option<Box<dyn PacketTransform>>,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("policy", &self.policy)
            .field("peer", &self.peer)
            .field("rtp", &self.rtp)
            .field("rtcp", &self.rtcp)
            .field("stats", &self.stats)
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

/// Both legs of one relayed `m=` line.
#[derive(Debug, Default)]
pub struct Stream {
    legs: [Leg; 2],
    mux: bool,
}

impl Stream {
    fn leg(&self, side: Side) -> &Leg {
        match side {
            Side::A => &self.legs[0],
            Side::B => &self.legs[1],
        }
    }

    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        match side {
            Side::A => &mut self.legs[0],
            Side::B => &mut self.legs[1],
        }
    }

    /// The address the stream currently sends to for `side` (latched or from
    /// the SDP), for RTP.
    pub fn rtp_destination(&self, side: Side) -> Option<SocketAddr> {
        self.leg(side).rtp.destination()
    }

    /// The latched RTP source of `side`, if any.
    pub fn latched_rtp(&self, side: Side) -> Option<SocketAddr> {
        self.leg(side).rtp.latched
    }

    /// The latched RTCP source of `side`, if any.
    pub fn latched_rtcp(&self, side: Side) -> Option<SocketAddr> {
        self.leg(side).rtcp.latched
    }

    /// The latching rules of `side`'s leg.
    pub fn latch_policy(&self, side: Side) -> LatchPolicy {
        self.leg(side).policy
    }

    /// The latched source of `side`'s path that receives on `socket`, and
    /// whether a new offer/answer has armed the path for one new latch.
    pub fn latch_state(&self, side: Side, socket: SocketKind) -> (Option<SocketAddr>, bool) {
        let p = match socket {
            SocketKind::Rtp => &self.leg(side).rtp,
            SocketKind::Rtcp => &self.leg(side).rtcp,
        };
        (p.latched, p.armed)
    }

    /// True when RTCP shares the RTP ports on both legs.
    pub fn rtcp_mux(&self) -> bool {
        self.mux
    }

    /// Whether the negotiated directions let RTP flow from `from` to the
    /// other side: `from`'s latest SDP lets it send and the other side's
    /// lets it receive. A side with no SDP yet does not restrict (early
    /// media before the answer). RTCP is not subject to it (RFC 3264 §5.1:
    /// RTCP is sent and received whatever the direction).
    pub fn rtp_allowed(&self, from: Side) -> bool {
        let sends = self.leg(from).peer.is_none_or(|p| p.direction.sends());
        let receives = self
            .leg(from.other())
            .peer
            .is_none_or(|p| p.direction.receives());
        sends && receives
    }

    /// Whether packets received from `from` pass a [`PacketTransform`].
    pub fn has_transform(&self, from: Side) -> bool {
        self.leg(from).transform.is_some()
    }

    /// Whether the RTP of `from` towards the other side could be forwarded
    /// by something that does not show each packet to this core (the
    /// kernel fast path), and if so between which peers: `(from`'s latched
    /// RTP source, the other side's latched RTP peer`)`.
    ///
    /// Only a settled direction qualifies, one where the core would do
    /// nothing for a packet of the latched peer but count it and send it
    /// on unchanged: both RTP paths latched and not armed for a new latch
    /// (after a new offer/answer the next packet must reach the core to
    /// latch), both IPv4, no transform on `from`'s packets (SRTP is
    /// terminated or re-keyed here), and the negotiated direction lets RTP
    /// flow (a call on hold drops it). RTCP and strangers still reach the
    /// sockets, so they need nothing here.
    pub fn offload_peers(&self, from: Side) -> Option<(SocketAddrV4, SocketAddrV4)> {
        let src = self.leg(from).rtp;
        let dst = self.leg(from.other()).rtp;
        if src.armed || dst.armed || self.has_transform(from) || !self.rtp_allowed(from) {
            return None;
        }
        match (src.latched?, dst.latched?) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => Some((s, d)),
            _ => None,
        }
    }
}

/// The data-plane state of one session: streams, latches, counters and the
/// media timeout.
#[derive(Debug)]
pub struct MediaSession {
    streams: [Option<Stream>; MAX_STREAMS],
    timeout: Duration,
    last_activity: Instant,
    timed_out: bool,
}

impl MediaSession {
    /// A session with no streams yet; the media timeout counts from `now`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Self {
            streams: Default::default(),
            timeout,
            last_activity: now,
            timed_out: false,
        }
    }

    /// The stream of `m=` line `media_index`, if relayed.
    pub fn stream(&self, media_index: usize) -> Option<&Stream> {
        self.streams.get(media_index).and_then(Option::as_ref)
    }

    fn stream_mut(&mut self, media_index: usize) -> Option<&mut Stream> {
        self.streams.get_mut(media_index).and_then(Option::as_mut)
    }

    /// Starts relaying `m=` line `media_index` (no-op if it already is).
    /// Returns false if the index is beyond [`MAX_STREAMS`].
    pub fn add_stream(&mut self, media_index: usize, policy: [LatchPolicy; 2]) -> bool {
        let Some(slot) = self.streams.get_mut(media_index) else {
            return false;
        };
        let s = slot.get_or_insert_with(Stream::default);
        s.legs[0].policy = policy[0];
        s.legs[1].policy = policy[1];
        true
    }

    /// Stops relaying `m=` line `media_index` and returns its counters.
    pub fn remove_stream(&mut self, media_index: usize) -> Option<StreamStats> {
        let s = self.streams.get_mut(media_index)?.take()?;
        Some(StreamStats {
            media_index,
            a_to_b: s.legs[0].stats,
            b_to_a: s.legs[1].stats,
        })
    }

    /// Records what `side`'s new SDP says about a stream. This is a new
    /// offer/answer from that side: its legs may latch once more (the only
    /// way, besides configured silence, to move a latched peer), and the
    /// media timeout starts over.
    pub fn set_peer(&mut self, now: Instant, media_index: usize, side: Side, peer: PeerAddrs) {
        self.last_activity = now;
        self.timed_out = false;
        let Some(s) = self.stream_mut(media_index) else {
            return;
        };
        let leg = s.leg_mut(side);
        leg.peer = Some(peer);
        leg.rtp.expected = peer.rtp;
        leg.rtp.armed = true;
        leg.rtcp.expected = if peer.rtcp_mux { peer.rtp } else { peer.rtcp };
        leg.rtcp.armed = true;
        let mux = match (s.legs[0].peer, s.legs[1].peer) {
            (Some(a), Some(b)) => a.rtcp_mux && b.rtcp_mux,
            (Some(p), None) | (None, Some(p)) => p.rtcp_mux,
            (None, None) => false,
        };
        s.mux = mux;
    }

    /// Tells the core that `side`'s RTCP socket of a stream exists (it is
    /// bound only when RTCP is not multiplexed).
    pub fn set_rtcp_socket(&mut self, media_index: usize, side: Side, present: bool) {
        if let Some(s) = self.stream_mut(media_index) {
            s.leg_mut(side).has_rtcp_socket = present;
        }
    }

    /// Installs (or removes) the transform for packets received from `from`.
    pub fn set_transform(
        &mut self,
        media_index: usize,
        from: Side,
        transform: Option<Box<dyn PacketTransform>>,
    ) -> bool {
        match self.stream_mut(media_index) {
            Some(s) => {
                s.leg_mut(from).transform = transform;
                true
            }
            None => false,
        }
    }

    /// Counts a datagram the driver dropped before the core saw it
    /// (truncated, empty, unreadable source), as received on `socket`.
    pub fn count_drop(
        &mut self,
        media_index: usize,
        at: Side,
        socket: SocketKind,
        reason: DropReason,
        len: usize,
    ) {
        if let Some(s) = self.stream_mut(media_index) {
            let st = &mut s.leg_mut(at).stats;
            match socket {
                SocketKind::Rtp => st.rtp_in += 1,
                SocketKind::Rtcp => st.rtcp_in += 1,
            }
            st.bytes_in += len as u64;
            st.drops.add(reason);
        }
    }

    /// Undoes the "forwarded" count of a packet the kernel would not send.
    pub fn send_failed(&mut self, media_index: usize, from: Side, rtcp: bool, len: usize) {
        if let Some(s) = self.stream_mut(media_index) {
            let st = &mut s.leg_mut(from).stats;
            if rtcp {
                st.rtcp_out = st.rtcp_out.saturating_sub(1);
            } else {
                st.rtp_out = st.rtp_out.saturating_sub(1);
            }
            st.bytes_out = st.bytes_out.saturating_sub(len as u64);
            st.drops.add(DropReason::SendFailed);
        }
    }

    /// Counts RTP that was forwarded from `from` to the other side without
    /// passing this core (the kernel fast path, for a direction
    /// [`Stream::offload_peers`] allowed): `packets` datagrams of `bytes`
    /// octets in all, the last at `last`. They count as received and
    /// forwarded, and as activity: they hold off the media timeout and keep
    /// `from`'s latched peer from looking silent to
    /// [`LatchPolicy::relatch_after_silence`].
    pub fn forwarded_elsewhere(
        &mut self,
        media_index: usize,
        from: Side,
        packets: u64,
        bytes: u64,
        last: Instant,
    ) {
        if packets == 0 {
            // No new packet: `last` is only an estimate of an old one and
            // must not move the clocks (a timeout reported would be
            // reported again).
            return;
        }
        let Some(s) = self.stream_mut(media_index) else {
            return;
        };
        let leg = s.leg_mut(from);
        let st = &mut leg.stats;
        st.rtp_in += packets;
        st.rtp_out += packets;
        st.rtp_kernel += packets;
        st.bytes_in += bytes;
        st.bytes_out += bytes;
        if leg.rtp.last_rx.is_none_or(|l| l < last) {
            leg.rtp.last_rx = Some(last);
        }
        if last > self.last_activity {
            self.last_activity = last;
            self.timed_out = false;
        }
    }

    /// Whether an RTP packet from `src` on `side`'s leg at `now` would take
    /// the latch from a peer that looks silent (configured
    /// [`LatchPolicy::relatch_after_silence`], and `src` admissible by the
    /// zone's rule). When part of that peer's traffic bypasses the core,
    /// its activity must be brought in ([`MediaSession::forwarded_elsewhere`])
    /// before such a packet is decided on; for any other packet it need
    /// not be (so a flood of sources the rule refuses costs nothing more).
    pub fn silence_would_relatch(
        &self,
        now: Instant,
        media_index: usize,
        side: Side,
        src: SocketAddr,
    ) -> bool {
        let Some(s) = self.stream(media_index) else {
            return false;
        };
        let leg = s.leg(side);
        let p = &leg.rtp;
        match (leg.policy.relatch_after_silence, p.latched, p.last_rx) {
            (Some(n), Some(l), Some(last)) if l != src && !p.armed => {
                now.saturating_duration_since(last) >= n && p.admissible(leg.policy.mode, src)
            }
            _ => false,
        }
    }

    /// Decides what to do with a datagram of `len` octets in `buf` (which
    /// has spare room after it for a transform) received from `src` on the
    /// `socket` of `at`'s leg of stream `media_index`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet(
        &mut self,
        now: Instant,
        media_index: usize,
        at: Side,
        socket: SocketKind,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Verdict {
        let Some(s) = self.streams.get_mut(media_index).and_then(Option::as_mut) else {
            return Verdict::Drop(DropReason::NoDestination);
        };
        let verdict = s.on_packet(now, at, socket, src, buf, len);
        if matches!(verdict, Verdict::Forward { .. }) {
            self.last_activity = now;
            self.timed_out = false;
        }
        verdict
    }

    /// When the media timeout fires if nothing is received, or `None` once
    /// it has been reported.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.timed_out).then(|| self.last_activity + self.timeout)
    }

    /// Returns how long the session has been idle if that reached the
    /// timeout; reported once until new media or a new offer/answer.
    /// While every stream is on hold both ways (no direction lets RTP
    /// through, e.g. `a=inactive`), no media is expected and the clock is
    /// held; it runs again from the moment a direction opens.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Duration> {
        let mut streams = self.streams.iter().flatten().peekable();
        let on_hold = streams.peek().is_some()
            && streams.all(|s| !s.rtp_allowed(Side::A) && !s.rtp_allowed(Side::B));
        if on_hold {
            self.last_activity = now;
            return None;
        }
        let idle = now.saturating_duration_since(self.last_activity);
        if self.timed_out || idle < self.timeout {
            return None;
        }
        self.timed_out = true;
        Some(idle)
    }

    /// Makes a timeout that could not be delivered fire again.
    pub fn rearm_timeout(&mut self) {
        self.timed_out = false;
    }

    /// Copies the counters of every stream.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            streams: self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.as_ref().map(|s| StreamStats {
                        media_index: i,
                        a_to_b: s.legs[0].stats,
                        b_to_a: s.legs[1].stats,
                    })
                })
                .collect(),
        }
    }
}

impl Stream {
    fn on_packet(
        &mut self,
        now: Instant,
        at: Side,
        socket: SocketKind,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Verdict {
        let mux = self.mux;
        let Some(pkt) = buf.get(..len) else {
            // The driver never reports more than its buffer; count it anyway
            // so that every datagram in is a forward or a drop.
            self.leg_mut(at).stats.rtp_in += 1;
            return self.drop_at(at, DropReason::BadLength);
        };
        // STUN keep-alives first (RFC 7983 demultiplexing): they are not
        // RTP, but not an attack either, and must not latch.
        if rtp::looks_like_stun(pkt) {
            let st = &mut self.leg_mut(at).stats;
            st.rtp_in += 1;
            st.bytes_in += len as u64;
            return self.drop_at(at, DropReason::Stun);
        }
        // RFC 5761 §4 demultiplexing; on the RTCP port everything must be RTCP.
        let is_rtcp = socket == SocketKind::Rtcp || rtp::looks_like_rtcp(pkt);
        let checked = if is_rtcp {
            rtp::check_rtcp(pkt)
        } else {
            rtp::check_rtp(pkt)
        };
        let plain = match self.leg(at).transform.as_ref() {
            None => PlainRtcp::BeforeTransform,
            Some(t) => t.plain_rtcp(),
        };
        let mut report = if is_rtcp && checked.is_ok() && plain == PlainRtcp::BeforeTransform {
            rtp::last_report_block(pkt)
        } else {
            None
        };
        let leg = self.leg_mut(at);
        let st = &mut leg.stats;
        st.bytes_in += len as u64;
        if is_rtcp {
            st.rtcp_in += 1;
        } else {
            st.rtp_in += 1;
        }
        if let Err(e) = checked {
            let reason = match e {
                Malformed::TooShort => DropReason::BadLength,
                Malformed::BadVersion | Malformed::BadHeader => DropReason::Malformed,
            };
            st.drops.add(reason);
            return Verdict::Drop(reason);
        }
        let policy = leg.policy;
        // Muxed RTCP shares the RTP port and therefore its latch.
        let path = match socket {
            SocketKind::Rtcp => &leg.rtcp,
            SocketKind::Rtp => &leg.rtp,
        };
        let latch = match path.admit(now, policy, src) {
            Ok(l) => l,
            Err(reason) => return self.drop_at(at, reason),
        };
        let leg = self.leg_mut(at);
        let len = match leg.transform.as_mut() {
            Some(t) => {
                let r = if is_rtcp {
                    t.rtcp(buf, len)
                } else {
                    t.rtp(buf, len)
                };
                match r {
                    Ok(n) if n <= buf.len() => n,
                    Ok(_) => return self.drop_at(at, DropReason::TransformOther),
                    Err(e) => return self.drop_at(at, e.into()),
                }
            }
            None => len,
        };
        match socket {
            SocketKind::Rtcp => leg.rtcp.commit(now, src, latch),
            SocketKind::Rtp => leg.rtp.commit(now, src, latch),
        }
        if is_rtcp && plain == PlainRtcp::AfterTransform {
            report = buf.get(..len).and_then(rtp::last_report_block);
        }
        if report.is_some() {
            leg.stats.last_report = report;
        }
        // After the transform (SRTP state stays in step with the sender) and
        // the latch (a peer on hold that sends anyway is still learned), so
        // that only the forwarding is withheld.
        if !is_rtcp && !self.rtp_allowed(at) {
            return self.drop_at(at, DropReason::Direction);
        }

        let out_side = at.other();
        let out = self.leg(out_side);
        let (out_socket, dst) = if is_rtcp && !mux {
            if !out.has_rtcp_socket {
                return self.drop_at(at, DropReason::NoDestination);
            }
            (SocketKind::Rtcp, out.rtcp.destination())
        } else {
            (SocketKind::Rtp, out.rtp.destination())
        };
        let Some(dst) = dst else {
            return self.drop_at(at, DropReason::NoDestination);
        };
        let st = &mut self.leg_mut(at).stats;
        if is_rtcp {
            st.rtcp_out += 1;
        } else {
            st.rtp_out += 1;
        }
        st.bytes_out += len as u64;
        Verdict::Forward {
            side: out_side,
            socket: out_socket,
            dst,
            len,
        }
    }

    fn drop_at(&mut self, at: Side, reason: DropReason) -> Verdict {
        self.leg_mut(at).stats.drops.add(reason);
        Verdict::Drop(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::tests::{rr, rtp};
    use crate::transform::TransformError;

    const T: Duration = Duration::from_secs(30);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn peer(rtp: &str, mux: bool) -> PeerAddrs {
        let a = addr(rtp);
        PeerAddrs {
            rtp: Some(a),
            rtcp: Some(SocketAddr::new(a.ip(), a.port() + 1)),
            rtcp_mux: mux,
            ..Default::default()
        }
    }

    /// A session with stream 0, both RTCP sockets present, and the given
    /// SDP addresses.
    fn session(
        now: Instant,
        mode: LatchMode,
        a: Option<PeerAddrs>,
        b: Option<PeerAddrs>,
    ) -> MediaSession {
        let mut s = MediaSession::new(now, T);
        let p = LatchPolicy {
            mode,
            relatch_after_silence: None,
        };
        assert!(s.add_stream(0, [p, p]));
        s.set_rtcp_socket(0, Side::A, true);
        s.set_rtcp_socket(0, Side::B, true);
        if let Some(a) = a {
            s.set_peer(now, 0, Side::A, a);
        }
        if let Some(b) = b {
            s.set_peer(now, 0, Side::B, b);
        }
        s
    }

    fn send(
        s: &mut MediaSession,
        now: Instant,
        at: Side,
        kind: SocketKind,
        src: &str,
        pkt: &[u8],
    ) -> Verdict {
        let mut buf = [0u8; 256];
        buf[..pkt.len()].copy_from_slice(pkt);
        s.on_packet(now, 0, at, kind, addr(src), &mut buf, pkt.len())
    }

    fn fwd(dst: &str) -> Verdict {
        Verdict::Forward {
            side: Side::B,
            socket: SocketKind::Rtp,
            dst: addr(dst),
            len: 172,
        }
    }

    fn drops(s: &MediaSession, side: Side, r: DropReason) -> u64 {
        let st = s.stats().streams[0];
        match side {
            Side::A => st.a_to_b.drops.get(r),
            Side::B => st.b_to_a.drops.get(r),
        }
    }

    #[test]
    fn sdp_address_mode_learns_the_port_then_locks() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::SdpAddress,
            Some(peer("198.51.100.7:4000", false)),
            Some(peer("192.0.2.9:6000", false)),
        );
        let p = rtp(1, 0x1111, 0, 160);
        // Wrong IP before latching.
        assert_eq!(
            send(&mut s, t0, Side::A, SocketKind::Rtp, "203.0.113.1:4000", &p),
            Verdict::Drop(DropReason::UnexpectedSource)
        );
        // SDP IP, other port (a NAT-free host with asymmetric ports): latched.
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4100",
                &p
            ),
            fwd("192.0.2.9:6000")
        );
        assert_eq!(
            s.stream(0).unwrap().latched_rtp(Side::A),
            Some(addr("198.51.100.7:4100"))
        );
        // Same IP, another port, after latching: locked out.
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4000",
                &p
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
        assert_eq!(drops(&s, Side::A, DropReason::SourceLocked), 1);
        assert_eq!(drops(&s, Side::A, DropReason::UnexpectedSource), 1);
        let st = s.stats().streams[0].a_to_b;
        assert_eq!((st.rtp_in, st.rtp_out, st.bytes_out), (3, 1, 172));
    }

    #[test]
    fn strict_mode_accepts_only_the_exact_sdp_address() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Strict,
            Some(peer("198.51.100.7:4000", false)),
            Some(peer("192.0.2.9:6000", false)),
        );
        let p = rtp(1, 1, 0, 160);
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4002",
                &p
            ),
            Verdict::Drop(DropReason::UnexpectedSource)
        );
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4000",
                &p
            ),
            fwd("192.0.2.9:6000")
        );
        // RTCP must come from a=rtcp (here the default RTP+1).
        let r = rr(1, 2, 0, 0, 0);
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtcp,
                "198.51.100.7:4000",
                &r
            ),
            Verdict::Drop(DropReason::UnexpectedSource)
        );
        assert!(matches!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtcp,
                "198.51.100.7:4001",
                &r
            ),
            Verdict::Forward {
                socket: SocketKind::Rtcp,
                ..
            }
        ));
    }

    #[test]
    fn nat_mode_latches_any_source_only_for_private_sdp_addresses() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("192.168.1.20:4000", false)),
            Some(peer("203.0.113.50:6000", false)),
        );
        let p = rtp(1, 1, 0, 160);
        // A's SDP shows a private address: its NAT's public mapping latches.
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.77:31337",
                &p
            ),
            fwd("203.0.113.50:6000")
        );
        // B's SDP shows a public address: the IP must match.
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::B,
                SocketKind::Rtp,
                "198.51.100.78:6000",
                &p
            ),
            Verdict::Drop(DropReason::UnexpectedSource)
        );
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::B,
                SocketKind::Rtp,
                "203.0.113.50:6000",
                &p
            ),
            Verdict::Forward {
                side: Side::A,
                socket: SocketKind::Rtp,
                dst: addr("198.51.100.77:31337"),
                len: 172
            }
        );
        // Once latched, a third party is locked out, whatever its payload.
        let spoof = rtp(2, 1, 0, 160);
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.99:31337",
                &spoof
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
        assert!(is_private("100.64.1.1".parse().unwrap()));
        assert!(is_private("fd00::1".parse().unwrap()));
        assert!(is_private("0.0.0.0".parse().unwrap()));
        assert!(!is_private("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn relatch_only_after_configured_silence() {
        let t0 = Instant::now();
        let mut s = MediaSession::new(t0, T);
        let p = LatchPolicy {
            mode: LatchMode::Nat,
            relatch_after_silence: Some(Duration::from_secs(5)),
        };
        s.add_stream(0, [p, p]);
        s.set_peer(t0, 0, Side::A, peer("10.0.0.2:4000", false));
        s.set_peer(t0, 0, Side::B, peer("203.0.113.50:6000", false));
        let pkt = rtp(1, 1, 0, 160);
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            fwd("203.0.113.50:6000")
        );
        let t1 = t0 + Duration::from_secs(1);
        // The peer is active: a new source is refused.
        assert_eq!(
            send(
                &mut s,
                t1,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
        assert_eq!(
            send(
                &mut s,
                t1,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            fwd("203.0.113.50:6000")
        );
        // 4.9 s of silence is not enough, 5 s is.
        let t2 = t1 + Duration::from_millis(4900);
        assert_eq!(
            send(
                &mut s,
                t2,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
        let t3 = t1 + Duration::from_secs(5);
        assert_eq!(
            send(
                &mut s,
                t3,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            fwd("203.0.113.50:6000")
        );
        // And now the old source is the stranger.
        assert_eq!(
            send(
                &mut s,
                t3,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
    }

    #[test]
    fn without_silence_rule_only_a_new_offer_answer_relatches() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", false)),
            Some(peer("203.0.113.50:6000", false)),
        );
        let pkt = rtp(1, 1, 0, 160);
        assert!(matches!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            Verdict::Forward { .. }
        ));
        let late = t0 + Duration::from_secs(3600);
        assert_eq!(
            send(
                &mut s,
                late,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
        // re-INVITE from A (it moved networks).
        s.set_peer(late, 0, Side::A, peer("10.9.0.2:4000", false));
        assert!(matches!(
            send(
                &mut s,
                late,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            s.stream(0).unwrap().latched_rtp(Side::A),
            Some(addr("198.51.100.2:2000"))
        );
        // One relatch per offer/answer: the next stranger is refused again.
        assert_eq!(
            send(
                &mut s,
                late,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.3:3000",
                &pkt
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
    }

    #[test]
    fn destination_before_and_after_the_other_side_is_known() {
        let t0 = Instant::now();
        let pkt = rtp(1, 1, 0, 160);
        // B has no SDP yet: nowhere to send.
        let mut s = session(t0, LatchMode::Nat, Some(peer("10.0.0.2:4000", false)), None);
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            Verdict::Drop(DropReason::NoDestination)
        );
        assert_eq!(drops(&s, Side::A, DropReason::NoDestination), 1);
        // B's SDP known: sent there until B latches, then to the latch.
        s.set_peer(t0, 0, Side::B, peer("10.1.0.5:6000", false));
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            fwd("10.1.0.5:6000")
        );
        assert!(matches!(
            send(
                &mut s,
                t0,
                Side::B,
                SocketKind::Rtp,
                "198.51.100.200:7000",
                &pkt
            ),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            fwd("198.51.100.200:7000")
        );
        // A hold-style 0.0.0.0 SDP gives no destination.
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", false)),
            Some(peer("0.0.0.0:6000", false)),
        );
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            Verdict::Drop(DropReason::NoDestination)
        );
    }

    #[test]
    fn rtcp_mux_and_separate_rtcp() {
        let t0 = Instant::now();
        let r = rr(0x10, 0x20, 25, 7, 123);
        // Both mux: RTCP arrives on the RTP socket and leaves on the RTP socket.
        let mut s = session(
            t0,
            LatchMode::SdpAddress,
            Some(peer("198.51.100.7:4000", true)),
            Some(peer("192.0.2.9:6000", true)),
        );
        assert!(s.stream(0).unwrap().rtcp_mux());
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4000",
                &r
            ),
            Verdict::Forward {
                side: Side::B,
                socket: SocketKind::Rtp,
                dst: addr("192.0.2.9:6000"),
                len: r.len()
            }
        );
        let st = s.stats().streams[0].a_to_b;
        assert_eq!((st.rtcp_in, st.rtcp_out, st.rtp_in), (1, 1, 0));
        let rep = st.last_report.unwrap();
        assert_eq!(
            (rep.fraction_lost, rep.cumulative_lost, rep.jitter),
            (25, 7, 123)
        );
        // Muxed RTCP shares the RTP latch: RTP from the same source follows.
        assert!(matches!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4000",
                &rtp(1, 1, 0, 20)
            ),
            Verdict::Forward { .. }
        ));

        // A muxes, B does not: not negotiated, RTCP uses the odd ports.
        let mut s = session(
            t0,
            LatchMode::SdpAddress,
            Some(peer("198.51.100.7:4000", true)),
            Some(peer("192.0.2.9:6000", false)),
        );
        assert!(!s.stream(0).unwrap().rtcp_mux());
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtcp,
                "198.51.100.7:4001",
                &r
            ),
            Verdict::Forward {
                side: Side::B,
                socket: SocketKind::Rtcp,
                dst: addr("192.0.2.9:6001"),
                len: r.len()
            }
        );
        // RTCP latches separately from RTP.
        assert_eq!(
            s.stream(0).unwrap().latched_rtcp(Side::A),
            Some(addr("198.51.100.7:4001"))
        );
        assert_eq!(s.stream(0).unwrap().latched_rtp(Side::A), None);
        // Without an RTCP socket on B's leg there is nowhere to send.
        s.set_rtcp_socket(0, Side::B, false);
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtcp,
                "198.51.100.7:4001",
                &r
            ),
            Verdict::Drop(DropReason::NoDestination)
        );
        // RTP on the RTCP port is malformed RTCP.
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtcp,
                "198.51.100.7:4001",
                &rtp(1, 1, 0, 20)
            ),
            Verdict::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn stun_and_malformed_packets_are_dropped_and_do_not_latch() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", false)),
            Some(peer("192.0.2.9:6000", false)),
        );
        let stun = [
            0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.66:1",
                &stun
            ),
            Verdict::Drop(DropReason::Stun)
        );
        // Not STUN after all (the cookie is wrong): malformed.
        let mut junk = stun;
        junk[5] = 0;
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.66:1",
                &junk
            ),
            Verdict::Drop(DropReason::Malformed)
        );
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.66:1",
                &[0x80, 0]
            ),
            Verdict::Drop(DropReason::BadLength)
        );
        assert_eq!(s.stream(0).unwrap().latched_rtp(Side::A), None);
        assert!(matches!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1",
                &rtp(1, 1, 0, 20)
            ),
            Verdict::Forward { .. }
        ));
    }

    #[test]
    fn media_timeout_fires_once_and_rearms_on_media() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", false)),
            Some(peer("192.0.2.9:6000", false)),
        );
        assert_eq!(s.poll_timeout(), Some(t0 + T));
        assert_eq!(s.handle_timeout(t0 + T - Duration::from_millis(1)), None);
        let pkt = rtp(1, 1, 0, 20);
        let t1 = t0 + Duration::from_secs(10);
        assert!(matches!(
            send(&mut s, t1, Side::A, SocketKind::Rtp, "198.51.100.1:1", &pkt),
            Verdict::Forward { .. }
        ));
        assert_eq!(s.poll_timeout(), Some(t1 + T));
        // Dropped packets do not keep a call alive.
        assert!(matches!(
            send(
                &mut s,
                t1 + T / 2,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.9:9",
                &pkt
            ),
            Verdict::Drop(_)
        ));
        assert_eq!(s.handle_timeout(t1 + T), Some(T));
        assert_eq!(s.handle_timeout(t1 + T * 2), None, "reported once");
        assert_eq!(s.poll_timeout(), None);
        let t2 = t1 + T * 3;
        assert!(matches!(
            send(&mut s, t2, Side::A, SocketKind::Rtp, "198.51.100.1:1", &pkt),
            Verdict::Forward { .. }
        ));
        // Media came back: the timeout is armed again.
        assert_eq!(s.poll_timeout(), Some(t2 + T));
    }

    fn with_dir(p: PeerAddrs, direction: MediaDirection) -> PeerAddrs {
        PeerAddrs { direction, ..p }
    }

    #[test]
    fn sdp_direction_gates_rtp_through_hold_and_resume() {
        use MediaDirection::*;
        let t0 = Instant::now();
        let (pa, pb) = (
            peer("198.51.100.7:4000", false),
            peer("192.0.2.9:6000", false),
        );
        let mut s = session(t0, LatchMode::SdpAddress, Some(pa), Some(pb));
        let a_rtp = rtp(1, 0xa, 0, 160);
        let b_rtp = rtp(1, 0xb, 0, 160);
        let b_rr = rr(0xb, 0xa, 0, 0, 1);
        let to_a = Verdict::Forward {
            side: Side::A,
            socket: SocketKind::Rtp,
            dst: addr("198.51.100.7:4000"),
            len: 172,
        };
        let t = std::cell::Cell::new(t0);
        let step = |s: &mut MediaSession, at: Side, src: &str, pkt: &[u8]| {
            t.set(t.get() + Duration::from_millis(20));
            send(s, t.get(), at, SocketKind::Rtp, src, pkt)
        };
        // sendrecv both ways: both directions pass (and both sides latch).
        assert_eq!(
            step(&mut s, Side::A, "198.51.100.7:4000", &a_rtp),
            fwd("192.0.2.9:6000")
        );
        assert_eq!(step(&mut s, Side::B, "192.0.2.9:6000", &b_rtp), to_a);

        // A puts the call on hold: re-INVITE with a=sendonly. From the offer
        // on, B's media toward A is withheld; A's music on hold still flows.
        s.set_peer(t.get(), 0, Side::A, with_dir(pa, SendOnly));
        assert_eq!(
            step(&mut s, Side::A, "198.51.100.7:4000", &a_rtp),
            fwd("192.0.2.9:6000")
        );
        assert_eq!(
            step(&mut s, Side::B, "192.0.2.9:6000", &b_rtp),
            Verdict::Drop(DropReason::Direction)
        );
        // B answers a=recvonly: the same.
        s.set_peer(t.get(), 0, Side::B, with_dir(pb, RecvOnly));
        assert_eq!(
            step(&mut s, Side::A, "198.51.100.7:4000", &a_rtp),
            fwd("192.0.2.9:6000")
        );
        assert_eq!(
            step(&mut s, Side::B, "192.0.2.9:6000", &b_rtp),
            Verdict::Drop(DropReason::Direction)
        );
        // RTCP is not subject to the direction (RFC 3264 5.1).
        assert!(matches!(
            step(&mut s, Side::B, "192.0.2.9:6000", &b_rr),
            Verdict::Forward { .. }
        ));
        // A stranger is still a source-lock drop, not a direction drop.
        assert_eq!(
            step(&mut s, Side::B, "192.0.2.9:6666", &b_rtp),
            Verdict::Drop(DropReason::SourceLocked)
        );

        // Hold both ways (a=inactive in offer and answer): nothing passes.
        s.set_peer(t.get(), 0, Side::A, with_dir(pa, Inactive));
        s.set_peer(t.get(), 0, Side::B, with_dir(pb, Inactive));
        for _ in 0..3 {
            assert_eq!(
                step(&mut s, Side::A, "198.51.100.7:4000", &a_rtp),
                Verdict::Drop(DropReason::Direction)
            );
            assert_eq!(
                step(&mut s, Side::B, "192.0.2.9:6000", &b_rtp),
                Verdict::Drop(DropReason::Direction)
            );
        }
        // A recvonly side (B sendonly): only B to A.
        s.set_peer(t.get(), 0, Side::A, with_dir(pa, RecvOnly));
        s.set_peer(t.get(), 0, Side::B, with_dir(pb, SendOnly));
        assert_eq!(
            step(&mut s, Side::A, "198.51.100.7:4000", &a_rtp),
            Verdict::Drop(DropReason::Direction)
        );
        assert_eq!(step(&mut s, Side::B, "192.0.2.9:6000", &b_rtp), to_a);

        // Resume: sendrecv again, both ways pass.
        s.set_peer(t.get(), 0, Side::A, pa);
        s.set_peer(t.get(), 0, Side::B, pb);
        assert_eq!(
            step(&mut s, Side::A, "198.51.100.7:4000", &a_rtp),
            fwd("192.0.2.9:6000")
        );
        assert_eq!(step(&mut s, Side::B, "192.0.2.9:6000", &b_rtp), to_a);

        let st = s.stats().streams[0];
        assert_eq!(st.a_to_b.drops.get(DropReason::Direction), 4);
        assert_eq!(st.b_to_a.drops.get(DropReason::Direction), 5);
        assert_eq!(st.b_to_a.drops.get(DropReason::SourceLocked), 1);
        assert_eq!((st.a_to_b.rtp_in, st.a_to_b.rtp_out), (8, 4));
        assert_eq!((st.b_to_a.rtp_in, st.b_to_a.rtp_out), (9, 3));
        assert_eq!(st.b_to_a.rtcp_out, 1);
    }

    #[test]
    fn direction_before_the_answer_restricts_only_the_offerer() {
        let t0 = Instant::now();
        // Only A's offer (a=recvonly) is known: B may send to A, A may not
        // send (its own SDP says so); B's SDP does not restrict yet.
        let pa = with_dir(peer("198.51.100.7:4000", false), MediaDirection::RecvOnly);
        let mut s = session(t0, LatchMode::SdpAddress, Some(pa), None);
        let s0 = s.stream(0).unwrap();
        assert!(!s0.rtp_allowed(Side::A));
        assert!(s0.rtp_allowed(Side::B));
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.7:4000",
                &rtp(1, 1, 0, 160)
            ),
            Verdict::Drop(DropReason::Direction)
        );
    }

    #[test]
    fn hold_both_ways_holds_the_media_timeout() {
        use MediaDirection::*;
        let t0 = Instant::now();
        let (pa, pb) = (
            peer("198.51.100.7:4000", true),
            peer("192.0.2.9:6000", true),
        );
        let mut s = session(t0, LatchMode::SdpAddress, Some(pa), Some(pb));
        s.set_peer(t0, 0, Side::A, with_dir(pa, Inactive));
        s.set_peer(t0, 0, Side::B, with_dir(pb, Inactive));
        // No media is expected: a long hold does not end the call.
        for k in 1..=10u32 {
            assert_eq!(s.handle_timeout(t0 + T * k), None);
        }
        // One side on hold (sendonly/recvonly): media is expected one way,
        // so silence there times out as usual.
        let t1 = t0 + T * 10;
        s.set_peer(t1, 0, Side::A, with_dir(pa, SendOnly));
        s.set_peer(t1, 0, Side::B, with_dir(pb, RecvOnly));
        assert_eq!(s.poll_timeout(), Some(t1 + T));
        assert_eq!(s.handle_timeout(t1 + T - Duration::from_millis(1)), None);
        assert_eq!(s.handle_timeout(t1 + T), Some(T));
        // Resumed after a hold both ways: the clock starts at the resume.
        s.set_peer(t1 + T, 0, Side::A, with_dir(pa, Inactive));
        s.set_peer(t1 + T, 0, Side::B, with_dir(pb, Inactive));
        assert_eq!(s.handle_timeout(t1 + T * 5), None);
        let t2 = t1 + T * 6;
        s.set_peer(t2, 0, Side::A, pa);
        s.set_peer(t2, 0, Side::B, pb);
        assert_eq!(s.handle_timeout(t2 + T / 2), None);
        assert_eq!(s.handle_timeout(t2 + T), Some(T));
    }

    fn v4(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn offload(s: &MediaSession) -> [Option<(SocketAddrV4, SocketAddrV4)>; 2] {
        let st = s.stream(0).unwrap();
        [st.offload_peers(Side::A), st.offload_peers(Side::B)]
    }

    #[test]
    fn only_settled_plain_ipv4_directions_that_may_flow_are_offloaded() {
        let t0 = Instant::now();
        let (a_sdp, b_sdp) = (peer("10.0.0.2:4000", true), peer("203.0.113.50:6000", true));
        let mut s = session(t0, LatchMode::Nat, Some(a_sdp), Some(b_sdp));
        let pkt = rtp(1, 1, 0, 160);
        assert_eq!(offload(&s), [None, None], "nothing latched");
        send(
            &mut s,
            t0,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:1000",
            &pkt,
        );
        assert_eq!(
            offload(&s),
            [None, None],
            "B not latched: its address is only the SDP's"
        );
        send(
            &mut s,
            t0,
            Side::B,
            SocketKind::Rtp,
            "203.0.113.50:6000",
            &pkt,
        );
        let (pa, pb) = (v4("198.51.100.1:1000"), v4("203.0.113.50:6000"));
        assert_eq!(offload(&s), [Some((pa, pb)), Some((pb, pa))]);

        // A transform on A's packets (SRTP terminated here) keeps A->B in
        // the core; B->A stays offloaded.
        assert!(s.set_transform(0, Side::A, Some(Box::new(AppendTag { fail: None }))));
        assert_eq!(offload(&s), [None, Some((pb, pa))]);
        assert!(s.set_transform(0, Side::A, None));
        assert_eq!(offload(&s), [Some((pa, pb)), Some((pb, pa))]);

        // A re-INVITE from A (hold: a=sendonly) arms A's paths: nothing is
        // offloaded until A's next packet latches again.
        let t1 = t0 + Duration::from_secs(1);
        s.set_peer(t1, 0, Side::A, with_dir(a_sdp, MediaDirection::SendOnly));
        assert_eq!(offload(&s), [None, None], "armed for a new latch");
        send(
            &mut s,
            t1,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:1000",
            &pkt,
        );
        // A sends (music on hold), B's RTP towards A is dropped by the core.
        assert_eq!(offload(&s), [Some((pa, pb)), None]);
        // Muxed RTCP never unsettles anything.
        send(
            &mut s,
            t1,
            Side::B,
            SocketKind::Rtp,
            "203.0.113.50:6000",
            &rr(7, 1, 0, 0, 0),
        );
        assert_eq!(offload(&s), [Some((pa, pb)), None]);
        // Inactive: nothing flows, nothing is offloaded.
        s.set_peer(t1, 0, Side::A, with_dir(a_sdp, MediaDirection::Inactive));
        send(
            &mut s,
            t1,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:1000",
            &pkt,
        );
        assert_eq!(offload(&s), [None, None]);
        // Resume, and A moved (new NAT binding): the new source latches.
        s.set_peer(t1, 0, Side::A, a_sdp);
        send(
            &mut s,
            t1,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:1002",
            &pkt,
        );
        let pa2 = v4("198.51.100.1:1002");
        assert_eq!(offload(&s), [Some((pa2, pb)), Some((pb, pa2))]);
    }

    #[test]
    fn ipv6_directions_are_not_offloaded() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("[fd00::2]:4000", true)),
            Some(peer("203.0.113.50:6000", true)),
        );
        let pkt = rtp(1, 1, 0, 160);
        send(
            &mut s,
            t0,
            Side::A,
            SocketKind::Rtp,
            "[2001:db8::1]:1000",
            &pkt,
        );
        send(
            &mut s,
            t0,
            Side::B,
            SocketKind::Rtp,
            "203.0.113.50:6000",
            &pkt,
        );
        assert!(s.stream(0).unwrap().latched_rtp(Side::A).is_some());
        assert_eq!(offload(&s), [None, None]);
    }

    #[test]
    fn traffic_forwarded_elsewhere_counts_and_holds_the_media_timeout() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", true)),
            Some(peer("203.0.113.50:6000", true)),
        );
        let pkt = rtp(1, 1, 0, 160);
        send(
            &mut s,
            t0,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:1000",
            &pkt,
        );
        // 20 s later the kernel reports 1000 packets, the last 1 s ago.
        let t1 = t0 + Duration::from_secs(20);
        s.forwarded_elsewhere(0, Side::A, 1000, 172_000, t1 - Duration::from_secs(1));
        let st = s.stats().streams[0].a_to_b;
        assert_eq!(
            (st.rtp_in, st.rtp_out, st.rtp_kernel, st.bytes_out),
            (1001, 1001, 1000, 172_172)
        );
        let last = t1 - Duration::from_secs(1);
        assert_eq!(s.poll_timeout(), Some(last + T));
        assert_eq!(s.handle_timeout(t0 + T), None, "kernel traffic is activity");
        // The kernel forwarded nothing more: an estimate of the same last
        // packet does not move the clock, and the timeout fires.
        s.forwarded_elsewhere(0, Side::A, 0, 0, last + Duration::from_millis(3));
        assert_eq!(s.handle_timeout(last + T), Some(T));
        s.forwarded_elsewhere(0, Side::A, 0, 0, last + T);
        assert_eq!(s.poll_timeout(), None, "reported once");
        // New kernel traffic re-arms it, as new media in the core does.
        s.forwarded_elsewhere(0, Side::A, 5, 860, last + T);
        assert_eq!(s.poll_timeout(), Some(last + T + T));
    }

    #[test]
    fn traffic_forwarded_elsewhere_keeps_the_latched_peer_from_looking_silent() {
        let t0 = Instant::now();
        let mut s = MediaSession::new(t0, T);
        let p = LatchPolicy {
            mode: LatchMode::Nat,
            relatch_after_silence: Some(Duration::from_secs(5)),
        };
        s.add_stream(0, [p, p]);
        s.set_peer(t0, 0, Side::A, peer("10.0.0.2:4000", true));
        s.set_peer(t0, 0, Side::B, peer("203.0.113.50:6000", true));
        let pkt = rtp(1, 1, 0, 160);
        send(
            &mut s,
            t0,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:1000",
            &pkt,
        );
        let t1 = t0 + Duration::from_secs(6);
        let (new, old) = (addr("198.51.100.2:2000"), addr("198.51.100.1:1000"));
        assert!(s.silence_would_relatch(t1, 0, Side::A, new));
        assert!(
            !s.silence_would_relatch(t1, 0, Side::A, old),
            "the peer itself"
        );
        assert!(
            !s.silence_would_relatch(t1, 0, Side::B, new),
            "B never latched"
        );
        // The kernel forwarded A's peer until 0.5 s ago: a stranger is
        // still locked out.
        s.forwarded_elsewhere(0, Side::A, 300, 51_600, t1 - Duration::from_millis(500));
        assert!(!s.silence_would_relatch(t1, 0, Side::A, new));
        assert_eq!(
            send(
                &mut s,
                t1,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            Verdict::Drop(DropReason::SourceLocked)
        );
        // Once the peer stopped for 5 s, the new source takes over.
        let t2 = t1 + Duration::from_millis(4500);
        assert!(s.silence_would_relatch(t2, 0, Side::A, new));
        assert!(matches!(
            send(
                &mut s,
                t2,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.2:2000",
                &pkt
            ),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            s.stream(0).unwrap().latched_rtp(Side::A),
            Some(addr("198.51.100.2:2000"))
        );
    }

    #[test]
    fn only_an_admissible_source_asks_for_the_peer_s_activity() {
        let t0 = Instant::now();
        let mut s = MediaSession::new(t0, T);
        let p = LatchPolicy {
            mode: LatchMode::SdpAddress,
            relatch_after_silence: Some(Duration::from_secs(5)),
        };
        s.add_stream(0, [p, p]);
        s.set_peer(t0, 0, Side::A, peer("198.51.100.1:4000", true));
        s.set_peer(t0, 0, Side::B, peer("203.0.113.50:6000", true));
        let pkt = rtp(1, 1, 0, 160);
        send(
            &mut s,
            t0,
            Side::A,
            SocketKind::Rtp,
            "198.51.100.1:4000",
            &pkt,
        );
        let t1 = t0 + Duration::from_secs(6);
        // Another port of the SDP's address may take over; another
        // address never can, so its packets need no look at the kernel.
        assert!(s.silence_would_relatch(t1, 0, Side::A, addr("198.51.100.1:4002")));
        assert!(!s.silence_would_relatch(t1, 0, Side::A, addr("192.0.2.66:4000")));
        // Armed by a new offer/answer: any admissible source latches
        // anyway, silence or not (and nothing is offloaded then).
        s.set_peer(t1, 0, Side::A, peer("198.51.100.1:4000", true));
        assert!(!s.silence_would_relatch(t1, 0, Side::A, addr("198.51.100.1:4002")));
    }

    struct AppendTag {
        fail: Option<TransformError>,
    }

    impl PacketTransform for AppendTag {
        fn rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            if let Some(e) = self.fail {
                return Err(e);
            }
            buf[len..len + 10].copy_from_slice(&[0xaa; 10]);
            Ok(len + 10)
        }
        fn rtcp(&mut self, _buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            Ok(len)
        }
    }

    /// Stands in for SRTCP: "encrypts" by flipping every octet after the
    /// first eight (which SRTCP leaves in the clear), "decrypts" likewise.
    struct Flip(PlainRtcp);

    impl PacketTransform for Flip {
        fn rtp(&mut self, _buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            Ok(len)
        }
        fn rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
            for b in buf.get_mut(8..len).ok_or(TransformError::Malformed)? {
                *b = !*b;
            }
            Ok(len)
        }
        fn plain_rtcp(&self) -> PlainRtcp {
            self.0
        }
    }

    #[test]
    fn report_blocks_are_read_where_rtcp_is_plain() {
        let t0 = Instant::now();
        let plain = rr(1, 2, 40, 5, 99);
        let mut scrambled = plain.clone();
        for b in &mut scrambled[8..] {
            *b = !*b;
        }
        for (mode, input, expect) in [
            (PlainRtcp::BeforeTransform, &plain, Some(40)),
            (PlainRtcp::AfterTransform, &scrambled, Some(40)),
            (PlainRtcp::Nowhere, &plain, None),
        ] {
            let mut s = session(
                t0,
                LatchMode::Nat,
                Some(peer("10.0.0.2:4000", true)),
                Some(peer("192.0.2.9:6000", true)),
            );
            s.set_transform(0, Side::A, Some(Box::new(Flip(mode))));
            assert!(matches!(
                send(
                    &mut s,
                    t0,
                    Side::A,
                    SocketKind::Rtp,
                    "198.51.100.1:1",
                    input
                ),
                Verdict::Forward { .. }
            ));
            let got = s.stats().streams[0]
                .a_to_b
                .last_report
                .map(|r| r.fraction_lost);
            assert_eq!(got, expect, "{mode:?}");
        }
    }

    #[test]
    fn transform_runs_in_place_and_its_errors_are_drop_reasons() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", false)),
            Some(peer("192.0.2.9:6000", false)),
        );
        assert!(s.set_transform(0, Side::A, Some(Box::new(AppendTag { fail: None }))));
        let pkt = rtp(1, 1, 0, 20);
        let mut buf = [0u8; 128];
        buf[..32].copy_from_slice(&pkt);
        let v = s.on_packet(
            t0,
            0,
            Side::A,
            SocketKind::Rtp,
            addr("198.51.100.1:1"),
            &mut buf,
            32,
        );
        assert_eq!(
            v,
            Verdict::Forward {
                side: Side::B,
                socket: SocketKind::Rtp,
                dst: addr("192.0.2.9:6000"),
                len: 42
            }
        );
        assert_eq!(&buf[32..42], &[0xaa; 10]);
        assert_eq!(s.stats().streams[0].a_to_b.bytes_out, 42);
        for (e, r) in [
            (TransformError::Auth, DropReason::TransformAuth),
            (TransformError::Replay, DropReason::TransformReplay),
            (TransformError::Malformed, DropReason::TransformOther),
        ] {
            s.set_transform(0, Side::A, Some(Box::new(AppendTag { fail: Some(e) })));
            assert_eq!(
                send(&mut s, t0, Side::A, SocketKind::Rtp, "198.51.100.1:1", &pkt),
                Verdict::Drop(r)
            );
            assert_eq!(drops(&s, Side::A, r), 1);
        }
        assert!(!s.set_transform(3, Side::A, None));
    }

    #[test]
    fn a_packet_the_transform_rejects_does_not_latch() {
        let t0 = Instant::now();
        let mut s = session(
            t0,
            LatchMode::Nat,
            Some(peer("10.0.0.2:4000", false)),
            Some(peer("192.0.2.9:6000", false)),
        );
        s.set_transform(
            0,
            Side::A,
            Some(Box::new(AppendTag {
                fail: Some(TransformError::Auth),
            })),
        );
        let pkt = rtp(1, 1, 0, 20);
        // An attacker racing the real (SRTP) peer with a forged first packet.
        assert_eq!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.66:6666",
                &pkt
            ),
            Verdict::Drop(DropReason::TransformAuth)
        );
        assert_eq!(s.stream(0).unwrap().latched_rtp(Side::A), None);
        s.set_transform(0, Side::A, Some(Box::new(AppendTag { fail: None })));
        assert!(matches!(
            send(
                &mut s,
                t0,
                Side::A,
                SocketKind::Rtp,
                "198.51.100.1:1000",
                &pkt
            ),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            s.stream(0).unwrap().latched_rtp(Side::A),
            Some(addr("198.51.100.1:1000"))
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn src_strategy() -> impl Strategy<Value = SocketAddr> {
        (0u8..4, 1u16..4).prop_map(|(h, p)| SocketAddr::from(([198, 51, 100, h], 4000 + p)))
    }

    proptest! {
        /// Arbitrary datagrams from a few sources on both sockets of both
        /// legs: nothing panics, a forwarded packet always came from the
        /// source its path is latched to, and counters add up.
        #[test]
        fn arbitrary_traffic_respects_the_latch(
            packets in proptest::collection::vec(
                (any::<bool>(), any::<bool>(), src_strategy(), proptest::collection::vec(any::<u8>(), 0..64), 0usize..80),
                1..60,
            ),
            mode in prop_oneof![Just(LatchMode::Strict), Just(LatchMode::SdpAddress), Just(LatchMode::Nat)],
            mux in any::<bool>(),
        ) {
            let t0 = Instant::now();
            let mut s = MediaSession::new(t0, Duration::from_secs(30));
            let p = LatchPolicy { mode, relatch_after_silence: Some(Duration::from_millis(50)) };
            s.add_stream(0, [p, p]);
            s.set_rtcp_socket(0, Side::A, !mux);
            s.set_rtcp_socket(0, Side::B, !mux);
            let peer = |h: u8| PeerAddrs {
                rtp: Some(SocketAddr::from(([198, 51, 100, h], 4001))),
                rtcp: Some(SocketAddr::from(([198, 51, 100, h], 4002))),
                rtcp_mux: mux,
                ..Default::default()
            };
            s.set_peer(t0, 0, Side::A, peer(1));
            s.set_peer(t0, 0, Side::B, peer(2));
            let mut forwarded = 0u64;
            for (i, (from_b, on_rtcp, src, mut bytes, len)) in packets.into_iter().enumerate() {
                let at = if from_b { Side::B } else { Side::A };
                let kind = if on_rtcp { SocketKind::Rtcp } else { SocketKind::Rtp };
                let now = t0 + Duration::from_millis(10 * i as u64);
                bytes.resize(bytes.len() + 64, 0);
                let v = s.on_packet(now, 0, at, kind, src, &mut bytes, len);
                if let Verdict::Forward { side, .. } = v {
                    forwarded += 1;
                    prop_assert_eq!(side, at.other());
                    let st = s.stream(0).unwrap();
                    let latched = match kind {
                        SocketKind::Rtp => st.latched_rtp(at),
                        SocketKind::Rtcp => st.latched_rtcp(at),
                    };
                    prop_assert_eq!(latched, Some(src));
                }
            }
            let stats = s.stats();
            let t = stats.total();
            prop_assert_eq!(t.rtp_out + t.rtcp_out, forwarded);
            prop_assert_eq!(t.rtp_in + t.rtcp_in, forwarded + t.drops.total());
        }
    }
}
