//! The media relay of sipwarden: every call the SBC bridges has its RTP and
//! RTCP anchored here, so that no media path crosses the SBC without passing
//! the checks below.
//!
//! # Layers
//!
//! * **Per-packet core** ([`MediaSession`], sans-IO): for one datagram
//!   received on one of a session's sockets, given the current time, decides
//!   [`Verdict::Forward`] (out of which leg's socket, to where, how many
//!   octets after the [`PacketTransform`]) or [`Verdict::Drop`] with a
//!   [`DropReason`], and keeps the counters and the media-timeout clock.
//! * **Control core** ([`Controller`], sans-IO): zones and their
//!   [`PortPool`]s, sessions, and the SDP of every offer/answer: what each
//!   peer announces, and the rewritten SDP for the other side. Binding a
//!   port is a callback; the changes the data plane must apply come back as
//!   [`StreamUpdate`]s.
//! * **Driver** ([`MediaRelay`]): binds the sockets the controller asks for,
//!   hands them with the updates over bounded channels to a fixed number of
//!   worker threads, and carries out the verdicts on io_uring (or, where the
//!   kernel refuses it, with epoll and `recvmmsg`/`sendmmsg`). Each worker
//!   owns its ring or epoll instance, the sockets and cores of the sessions
//!   placed on it, and one set of buffers: no lock and no allocation per
//!   packet (checked by `tests/alloc.rs` on both paths).
//!
//! # Interface to the call engine
//!
//! ```
//! use media_relay::*;
//! use std::time::Duration;
//! # fn main() -> Result<(), MediaError> {
//! let zone = |name: &str, ip: &str, min| ZoneConfig {
//!     name: name.into(),
//!     bind: ip.parse().unwrap(),
//!     advertise: None,
//!     port_min: min,
//!     port_max: min + 99,
//!     latch: LatchPolicy { mode: LatchMode::Nat, relatch_after_silence: None },
//! };
//! let cfg = RelayConfig {
//!     zones: vec![zone("wan", "127.0.0.1", 24000), zone("lan", "127.0.0.1", 24100)],
//!     media_timeout: Duration::from_secs(60),
//!     ..RelayConfig::default()
//! };
//! let (relay, events) = MediaRelay::start(&cfg)?; // no media socket bound yet
//! let id = relay.create_session("wan", "lan")?; // one per B2BUA call
//! let offer = b"v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
//!               m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\n";
//! let to_b = relay.offer(id, Side::A, offer)?; // allocates and binds both legs
//! let answer = b"v=0\r\no=- 1 1 IN IP4 192.168.1.9\r\ns=-\r\nc=IN IP4 192.168.1.9\r\nt=0 0\r\n\
//!                m=audio 6000 RTP/AVP 0\r\na=rtcp-mux\r\n";
//! let to_a = relay.answer(id, Side::B, answer)?; // re-INVITE/UPDATE: offer/answer again
//! let ports = relay.ports(id)?[0];
//! assert!(String::from_utf8_lossy(&to_b).contains(&format!("m=audio {} ", ports.b)));
//! assert!(String::from_utf8_lossy(&to_a).contains(&format!("m=audio {} ", ports.a)));
//! // relay.set_crypto(id, Side::A, 0, Some(lines))?;   SDES keys chosen by the policy
//! // relay.set_transform(id, 0, Side::A, Some(srtp))?; SRTP hook, per direction
//! let stats: SessionStats = relay.stats(id)?; // per stream, per direction
//! assert_eq!(stats.streams.len(), 1);
//! // The engine ends the call on `MediaEvent::Timeout { id, idle }` from `events`.
//! assert!(events.try_recv().is_err());
//! relay.release(id)?; // BYE, CANCEL, failed call, media timeout
//! # Ok(()) }
//! ```
//!
//! Side A is the side whose SDP creates the session (the caller); each
//! stream has a leg per side, bound in that side's zone. The SDP sent to a
//! side carries that side's zone address (`o=`, `c=`) and leg ports
//! (`m=`, `a=rtcp`), has every ICE attribute removed (the peers must talk to
//! us, not to each other's candidates) and, when set, the `a=crypto` lines of
//! [`MediaRelay::set_crypto`] instead of the peer's. `m=` lines that are not
//! RTP (or beyond [`MAX_STREAMS`]) get port 0: nothing crosses unrelayed.
//!
//! # Ports
//!
//! Each zone has its own bind address and range. A stream takes an even/odd
//! pair per leg at the first SDP that mentions it (both legs at once, so the
//! answer never waits for a port). The even port is bound then; the odd
//! (RTCP) port only when the negotiation is not rtcp-mux (RFC 5761): when
//! both sides mux, one port per leg is open. Sockets are closed on
//! [`MediaRelay::release`] (before it returns) and the pair stays in
//! quarantine for [`RelayConfig::quarantine`]: with no session, no media port
//! is open.
//!
//! # Latching and source lock
//!
//! Each leg's RTP and RTCP paths learn their peer from the first valid
//! packet (version 2, consistent header; RTCP: an RTCP packet type and a
//! length that fits) whose source passes the zone's [`LatchMode`]:
//! `Strict` (exactly the SDP address and port), `SdpAddress` (the SDP's IP,
//! any port) or `Nat` (as `SdpAddress`, but a peer whose SDP shows a private
//! or unspecified address is taken to be behind NAT and the first valid
//! source is latched, i.e. symmetric RTP). After latching, other sources
//! are dropped ([`DropReason::SourceLocked`]); before it, sources the rule
//! refuses are dropped as [`DropReason::UnexpectedSource`]. A new latch is
//! possible only after a new offer/answer from that side (the first
//! admissible packet after it latches, usually the peer's next packet), or
//! when [`LatchPolicy::relatch_after_silence`] is set and the latched peer
//! has been silent that long. Until the other side has latched, packets go to
//! the address in its SDP, or are dropped ([`DropReason::NoDestination`]) if
//! it has none yet. A latch moves only after the packet also passed the
//! transform: a forged SRTP packet that fails authentication cannot latch.
//!
//! Once a path has latched (and is not waiting for a new latch), its port
//! gets a second socket, `connect(2)`ed to the latched peer, in one
//! `SO_REUSEPORT` group with the port's own socket
//! ([`RelayConfig::connect_latched`], default on). The kernel delivers the
//! peer's datagrams to the connected socket (4-tuple match) and everyone
//! else's to the port's own socket, where the core drops them as before;
//! what goes to the peer leaves through the connected socket without an
//! address, on the route the socket caches. A new latch reconnects it. The
//! firewall hook does not hear about these sockets (same port). A stream
//! can so hold up to eight descriptors; [`MediaRelay::start`] raises the
//! process's soft limit of open files to its hard limit.
//!
//! In `Nat` mode a peer with a private SDP address can be latched by any
//! source that is first; that window is the time between the SDP and the
//! peer's first packet (and, after a re-INVITE, its next packet). Use
//! `SdpAddress` or `Strict` for zones whose peers are not behind NAT, and
//! SRTP (whose authentication gates latching) where that window matters.
//!
//! # Direction
//!
//! Each side's latest SDP gives every stream a direction (`a=sendrecv`,
//! `a=sendonly`, `a=recvonly`, `a=inactive`; media level, else session
//! level, else sendrecv). RTP from X to Y is forwarded only while X's SDP
//! lets X send and Y's lets Y receive; otherwise it is dropped as
//! [`DropReason::Direction`] (after latching and the transform, so SRTP
//! state stays in step). A side without SDP yet restricts nothing. RTCP
//! passes whatever the direction (RFC 3264 §5.1). Each offer and answer
//! (hold, resume) updates it. While every stream is on hold both ways, the
//! media timeout is held too.
//!
//! # Statistics and timeout
//!
//! Per stream and direction ([`DirectionStats`]): packets and octets in and
//! out, drops by reason, and the last RTCP SR/RR report block the sending
//! side emitted (loss, jitter; read where the RTCP is plain: as received
//! without a transform, else where [`PacketTransform::plain_rtcp`] says). A session that forwards nothing for
//! [`RelayConfig::media_timeout`] is reported once as
//! [`MediaEvent::Timeout`] (again after new media or a new offer/answer).
//!
//! # Threads and the packet path
//!
//! [`RelayConfig::workers`] threads (default: one per core) each run an event
//! loop. A session is placed on the least loaded worker when it is created;
//! all its sockets live there, so forwarding never crosses threads. A wake-up
//! first applies pending commands (so a packet that follows an answer meets
//! the state that answer set up), then handles the packets.
//!
//! **io_uring** ([`RelayConfig::io_uring`], default; Linux 6.1+, checked when
//! each worker starts): every socket has one multishot `recvmsg` armed, all
//! drawing from one ring of 2048 provided buffers per worker, and sits in the
//! ring's registered file table. A forwarded packet is sent with a `send`
//! entry (destination address attached) straight from the buffer it arrived
//! in; the buffer returns to the kernel when that send completes, a dropped
//! packet's at once. One `io_uring_enter` submits the previous round's sends
//! and waits for the next completions (up to 32 of them for at most 200 µs
//! where the kernel has `min_wait`, 6.12+): about 0.03 system calls per
//! packet at 100,000 packets/s, against about 1.9 on the epoll path. A
//! released socket's receive is cancelled and [`MediaRelay::release`]
//! returns only once the kernel has let go of it, so the port is closed
//! then, as on the epoll path. [`MediaRelay::io_uring_workers`] says which
//! path runs.
//!
//! **epoll** (fallback): drains each readable socket with
//! `recvmmsg` (32 datagrams per call, bounded per socket per wake-up so one
//! busy socket cannot starve the others), runs the core on each datagram in
//! place, and sends each run of datagrams with the same output socket with
//! one `sendmmsg`. Buffers, batch structures and tables are allocated when a
//! worker starts or a socket is added, never per packet.
//!
//! # Kernel fast path
//!
//! With [`RelayConfig::kernel_forward`], [`MediaRelay::start`] loads the
//! `media-kernel-forward` tc program at ingress (tcx) of
//! [`RelayConfig::kernel_forward_interfaces`] (default: every Ethernet and
//! loopback interface), shared by the workers; this needs root (CAP_BPF
//! and CAP_NET_ADMIN) and IPv4 media. It fails with
//! [`MediaError::KernelForward`] when that is refused (it was asked for).
//! Once a direction X -> Y of a stream has settled, the worker that owns
//! the stream installs one flow: datagrams from X's latched RTP peer to
//! X's leg port are rewritten to leave Y's leg port for Y's latched RTP
//! peer (addresses, ports, checksums), counted, and sent on by the kernel
//! without waking the worker. Settled means that the core would do nothing
//! with such a packet but count and send it unchanged
//! ([`Stream::offload_peers`]): both RTP paths latched and not armed for a
//! new latch, both peers IPv4, no [`PacketTransform`] on X's packets (SRTP
//! terminated or re-keyed here stays in userspace), and X's direction
//! allowed by the SDP. The leg addresses must be concrete: a leg bound to
//! `0.0.0.0` uses its connected companion socket's address, and without
//! one ([`RelayConfig::connect_latched`] off) the stream stays in
//! userspace.
//!
//! Everything else reaches the sockets as before: RTCP (muxed too: the
//! program passes RFC 5761's RTCP payload types up), other sources (so a
//! new source after silence, or after a re-INVITE, latches as usual and
//! the flow follows), IPv6, fragments and IP options. The worker compares
//! each stream's wanted flows with those it installed after each packet on
//! an RTP socket and after each offer/answer, transform change and release,
//! so that a re-latch, hold, resume or new transform replaces or removes
//! the flow before the next packet; settled, that costs no system call.
//! Release takes the flows out before it closes the sockets. A flow the
//! kernel refuses is logged once (`tracing`) and not tried again until
//! the wanted flow changes; the stream stays on the socket path.
//!
//! The kernel's counters enter the core's ([`DirectionStats::rtp_kernel`],
//! also counted as received and forwarded) when statistics are read
//! ([`MediaRelay::stats`], [`MediaRelay::totals`], release), when the
//! media timeout is about to fire (its last packet counts as activity, so
//! an offloaded call does not time out while media flows) and when a
//! source arrives that would take the latch from a peer that looks silent
//! (so [`LatchPolicy::relatch_after_silence`] does not hand the latch to a
//! stranger while the peer talks through the kernel).
//!
//! Forwarded media skips the host's netfilter: tc ingress runs before it.
//! The flow admits only the latched peer to a port a live call holds,
//! which is the rule the `media-firewall` nftables table enforces, so that
//! table loses nothing; other netfilter rules do not see offloaded RTP.
//! The [`MediaHook`] hears about sockets and latches, which still happen
//! in userspace, and never about individual packets, so a hook does not
//! keep a stream out of the kernel.
//!
//! # Hook for the host firewall
//!
//! [`MediaRelay::start_with_hook`] takes a [`MediaHook`] that hears about
//! every media socket: bound, latched (and re-latched), armed for a new
//! latch by a new offer/answer, closed. The `media-firewall` crate turns
//! these into nftables set elements so that the kernel drops what the relay
//! would drop anyway, before it costs a wake-up. Without a hook the packet
//! path does nothing more than test an `Option`.
//!
//! # SRTP
//!
//! The relay does not know SRTP: [`PacketTransform`] is an in-place
//! per-direction hook (buffers have [`TRANSFORM_HEADROOM`] octets spare after
//! the packet for a tag), and its errors are drop reasons. With the `srtp`
//! feature (default) `media_srtp::SrtpTransform` implements it (module
//! `srtp`): authentication failures count as `transform_auth`, plain RTCP
//! where SRTCP is due as `transform_unprotected`, replayed or too old
//! packets as `transform_replay`, the rest as `transform_other`.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bench;
mod control;
mod driver;
mod hook;
mod ports;
pub mod rtp;
mod session;
#[cfg(feature = "srtp")]
pub mod srtp;
mod stats;
mod transform;

pub use control::{
    Controller, RelayConfig, SdpKind, SdpOutcome, SessionId, StreamPorts, StreamUpdate, ZoneConfig,
    ZoneId,
};
pub use driver::{MediaRelay, MAX_DATAGRAM};
pub use hook::{HookEvent, MediaHook};
pub use ports::PortPool;
pub use session::{
    is_private, LatchMode, LatchPolicy, MediaDirection, MediaSession, PeerAddrs, PerSide, Side,
    SocketKind, Stream, Verdict, MAX_STREAMS,
};
pub use stats::{DirectionStats, DropReason, Drops, SessionStats, StreamStats};
pub use transform::{PacketTransform, PlainRtcp, TransformError, TRANSFORM_HEADROOM};

use std::time::Duration;

/// Something the call engine must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// No packet was forwarded in the session for `idle`; end the call (and
    /// then [`MediaRelay::release`] it).
    Timeout {
        /// The session.
        id: SessionId,
        /// How long it has been idle.
        idle: Duration,
    },
}

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The configuration is unusable.
    #[error("media configuration: {0}")]
    Config(String),
    /// No zone of that name.
    #[error("unknown media zone {0:?}")]
    UnknownZone(String),
    /// No session with that id (never created, or released).
    #[error("unknown media session {0}")]
    UnknownSession(SessionId),
    /// The SDP does not parse.
    #[error("SDP: {0}")]
    Sdp(#[from] sdp_message::SdpError),
    /// The SDP could not be rewritten.
    #[error("SDP rewrite: {0}")]
    Rewrite(#[from] sdp_message::RewriteError),
    /// More `m=` lines than the relay handles.
    #[error("{count} media streams, at most {max} are relayed")]
    TooManyStreams {
        /// How many the SDP has (or the index asked for, plus one).
        count: usize,
        /// [`MAX_STREAMS`].
        max: usize,
    },
    /// Every pair of the zone is in use, in quarantine, or held by another
    /// process.
    #[error("no free media port pair in zone {zone}")]
    PortsExhausted {
        /// Zone name.
        zone: String,
    },
    /// The RTCP port of a pair we own is held by another process.
    #[error("RTCP port {port} is held by another process")]
    RtcpPortBusy {
        /// The odd port.
        port: u16,
    },
    /// An `a=crypto` value would break the SDP's line structure.
    #[error("a=crypto value contains a line break or NUL")]
    BadCrypto,
    /// The session has no such relayed stream.
    #[error("no relayed media stream {0}")]
    NoSuchStream(usize),
    /// A worker thread stopped or did not answer.
    #[error("media worker not answering")]
    WorkerGone,
    /// Starting the workers failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel fast path was asked for
    /// ([`RelayConfig::kernel_forward`]) and could not be set up (not
    /// root, BPF refused, no such interface...).
    #[error("kernel media forwarding: {0}")]
    KernelForward(media_kernel_forward::KernelForwardError),
}
