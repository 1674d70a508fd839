//! An optional observer of the lifecycle of media sockets, for whatever must
//! follow the relay's ports from outside the process (the host firewall of
//! the `media-firewall` crate).
//!
//! The relay reports, per socket: bound (allocation), latched (first latch
//! and every re-latch), armed again (a new offer/answer lets its side
//! latch a new source) and closed (stream removed or session released).
//! A socket is named by its local address, which is unique while it is
//! open. Without a hook (the default, [`MediaRelay::start`]) none of this
//! is computed: the packet path only tests an `Option`.
//!
//! [`MediaRelay::start`]: crate::MediaRelay::start

use std::net::SocketAddr;

use crate::control::SessionId;
use crate::session::{Side, SocketKind};

/// What happened to one media socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookEvent {
    /// A socket was bound for a leg: from now on the leg's peer must be
    /// able to reach it. Reported on the control path before the SDP that
    /// announces it is returned to the caller.
    Bound {
        /// The session.
        id: SessionId,
        /// Name of the leg's zone.
        zone: String,
        /// `m=` line.
        media_index: usize,
        /// Leg.
        side: Side,
        /// RTP (or muxed RTP/RTCP) or separate RTCP.
        kind: SocketKind,
        /// Address and port the socket is bound to.
        local: SocketAddr,
    },
    /// The socket's path took `peer` as its only admitted source. Reported
    /// from a packet worker, on the packet that latched.
    Latched {
        /// The session.
        id: SessionId,
        /// The socket.
        local: SocketAddr,
        /// The new peer.
        peer: SocketAddr,
        /// The peer latched before: `None` for a first latch, another
        /// address for a re-latch, `peer` itself when the same peer latched
        /// again after a new offer/answer ([`HookEvent::Armed`]).
        previous: Option<SocketAddr>,
        /// False when the zone lets a silent peer be replaced
        /// ([`LatchPolicy::relatch_after_silence`]): then another source
        /// may latch later without any further event, so whatever filters
        /// in front of the relay must keep admitting other sources.
        ///
        /// [`LatchPolicy::relatch_after_silence`]: crate::LatchPolicy::relatch_after_silence
        exclusive: bool,
    },
    /// A new offer/answer from the socket's side: its latched path may
    /// latch one new source (the peer moved, e.g. after a re-INVITE).
    /// Reported only for sockets whose path was latched.
    Armed {
        /// The session.
        id: SessionId,
        /// The socket.
        local: SocketAddr,
    },
    /// The socket was closed (its stream ended or the session was
    /// released). Reported before [`MediaRelay::release`] returns.
    ///
    /// [`MediaRelay::release`]: crate::MediaRelay::release
    Closed {
        /// The session.
        id: SessionId,
        /// The socket (its address may be bound again by a later call).
        local: SocketAddr,
    },
}

/// Receives [`HookEvent`]s. Called with a relay lock held or from a packet
/// worker, so it must return quickly and never block: queue the event and
/// act on it elsewhere.
pub trait MediaHook: Send + Sync {
    /// One event; events about one socket arrive in the order they happened.
    fn on_event(&self, event: &HookEvent);
}
