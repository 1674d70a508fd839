//! The worker's side of the kernel fast path ([`RelayConfig::kernel_forward`]):
//! which flows one stream should have in the kernel's table, what the worker
//! has installed, and bringing the kernel's counters into the core.
//!
//! The worker keeps, per stream and receiving side, the flow it installed
//! (or failed to install) and compares it with the wanted one after each
//! packet and each command that can change it. Once settled the comparison
//! finds nothing to do: no system call per packet. A flow the kernel
//! refused is remembered and logged once; it is tried again only when the
//! wanted flow changes (a new latch, a new offer/answer).
//!
//! [`RelayConfig::kernel_forward`]: crate::RelayConfig::kernel_forward

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Instant;

use media_kernel_forward::{FlowAction, FlowCounters, FlowKey, KernelForwarder};

use crate::session::{MediaSession, Side, Stream, MAX_STREAMS};

/// One direction of one stream as the kernel forwards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Offload {
    pub(super) key: FlowKey,
    pub(super) action: FlowAction,
}

/// What the worker did about one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KFlow {
    /// In the kernel's table; `packets` and `bytes` of its counters are
    /// already in the core's.
    Installed {
        flow: Offload,
        packets: u64,
        bytes: u64,
    },
    /// The kernel refused it (logged); not tried again for this flow.
    Failed(Offload),
}

/// Per stream, per side the packets come from.
pub(super) type KTable = [[Option<KFlow>; 2]; MAX_STREAMS];

/// The address a leg's peer sends to, as the kernel sees it on arrival and
/// as the source of what leaves from the leg: the leg's own address when it
/// is bound to one, else the local address of the socket connected to the
/// latched peer (the kernel chose it by route). `None`: no concrete IPv4
/// address, so no offload.
pub(super) fn concrete_local(
    own: SocketAddr,
    companion: Option<SocketAddr>,
) -> Option<SocketAddrV4> {
    let pick = |a: SocketAddr| match a {
        SocketAddr::V4(v4) if !v4.ip().is_unspecified() && v4.port() != 0 => Some(v4),
        _ => None,
    };
    pick(own).or_else(|| companion.and_then(pick))
}

/// The flow the kernel should have for RTP from `from`, given each leg's
/// concrete local address ([`concrete_local`]).
pub(super) fn wanted(
    stream: &Stream,
    from: Side,
    locals: [Option<SocketAddrV4>; 2],
) -> Option<Offload> {
    let (peer_in, peer_out) = stream.offload_peers(from)?;
    let local_in = (*locals.get(from.index())?)?;
    let local_out = (*locals.get(from.other().index())?)?;
    Some(Offload {
        key: FlowKey {
            src: peer_in,
            dst: local_in,
        },
        action: FlowAction {
            src: local_out,
            dst: peer_out,
        },
    })
}

/// What to do to get from `current` to `wanted`: the flow to take out of
/// the kernel first, then the one to put in. A changed action is a remove
/// and an install too, so that the old flow's counters are kept.
pub(super) fn plan(
    current: Option<KFlow>,
    wanted: Option<Offload>,
) -> (Option<Offload>, Option<Offload>) {
    match (current, wanted) {
        (None, w) => (None, w),
        (Some(KFlow::Installed { flow, .. }), Some(w)) if flow == w => (None, None),
        (Some(KFlow::Installed { flow, .. }), w) => (Some(flow), w),
        // Refused before: only a different flow is worth another try.
        (Some(KFlow::Failed(f)), Some(w)) if f == w => (None, None),
        (Some(KFlow::Failed(_)), w) => (None, w),
    }
}

/// Brings a flow's counters into the core: what it forwarded since `seen`
/// (packets, bytes) counts as forwarded, its last packet as activity.
/// Returns the new `seen`.
pub(super) fn fold(
    core: &mut MediaSession,
    now: Instant,
    media: usize,
    from: Side,
    seen: (u64, u64),
    c: FlowCounters,
) -> (u64, u64) {
    let packets = c.packets.saturating_sub(seen.0);
    let bytes = c.bytes.saturating_sub(seen.1);
    let last = c.idle.and_then(|idle| now.checked_sub(idle)).unwrap_or(now);
    core.forwarded_elsewhere(media, from, packets, bytes, last);
    (c.packets.max(seen.0), c.bytes.max(seen.1))
}

/// The table's entry for `(media, from)`.
pub(super) fn entry(t: &mut KTable, media: usize, from: Side) -> Option<&mut Option<KFlow>> {
    t.get_mut(media).and_then(|t| t.get_mut(from.index()))
}

/// Reads the kernel's counters of `(media, from)`'s flow, if installed, into
/// the core. A flow that vanished from the kernel's table is forgotten
/// (the next sync installs it again).
pub(super) fn refresh(
    kf: &KernelForwarder,
    t: &mut KTable,
    core: &mut MediaSession,
    now: Instant,
    media: usize,
    from: Side,
) {
    let Some(e) = entry(t, media, from) else {
        return;
    };
    let Some(KFlow::Installed {
        flow,
        packets,
        bytes,
    }) = *e
    else {
        return;
    };
    match kf.counters(flow.key) {
        Ok(Some(c)) => {
            let (packets, bytes) = fold(core, now, media, from, (packets, bytes), c);
            *e = Some(KFlow::Installed {
                flow,
                packets,
                bytes,
            });
        }
        Ok(None) => *e = None,
        // Transient (the map is there while we hold the forwarder): the
        // counters are read again next time.
        Err(_) => {}
    }
}

/// Takes `(media, from)`'s flow out of the kernel, its last counters into
/// the core.
pub(super) fn withdraw(
    kf: &KernelForwarder,
    t: &mut KTable,
    core: &mut MediaSession,
    now: Instant,
    media: usize,
    from: Side,
) {
    let Some(e) = entry(t, media, from) else {
        return;
    };
    match e.take() {
        Some(KFlow::Installed {
            flow,
            packets,
            bytes,
        }) => match kf.remove(flow.key) {
            Ok(Some(c)) => {
                fold(core, now, media, from, (packets, bytes), c);
            }
            Ok(None) => {}
            Err(err) => tracing::error!(
                src = %flow.key.src,
                dst = %flow.key.dst,
                error = %err,
                "kernel fast path: removing a media flow failed; the kernel may go on forwarding it"
            ),
        },
        Some(KFlow::Failed(_)) | None => {}
    }
}

/// Installs `flow` for `(media, from)`; a refusal is logged here, once,
/// and remembered.
pub(super) fn install(
    kf: &KernelForwarder,
    t: &mut KTable,
    media: usize,
    from: Side,
    flow: Offload,
) {
    let Some(e) = entry(t, media, from) else {
        return;
    };
    *e = Some(match kf.install(flow.key, flow.action) {
        Ok(()) => KFlow::Installed {
            flow,
            packets: 0,
            bytes: 0,
        },
        Err(err) => {
            tracing::warn!(
                src = %flow.key.src,
                dst = %flow.key.dst,
                to = %flow.action.dst,
                error = %err,
                "kernel fast path: installing a media flow failed; it stays on the socket path"
            );
            KFlow::Failed(flow)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn flow(peer: &str) -> Offload {
        Offload {
            key: FlowKey {
                src: v4(peer),
                dst: v4("192.0.2.1:30000"),
            },
            action: FlowAction {
                src: v4("198.51.100.1:30002"),
                dst: v4("203.0.113.9:6000"),
            },
        }
    }

    #[test]
    fn local_address_must_be_concrete_ipv4() {
        let c: SocketAddr = "192.0.2.7:30000".parse().unwrap();
        assert_eq!(
            concrete_local("192.0.2.1:30000".parse().unwrap(), Some(c)),
            Some(v4("192.0.2.1:30000")),
            "a leg bound to an address uses it"
        );
        assert_eq!(
            concrete_local("0.0.0.0:30000".parse().unwrap(), Some(c)),
            Some(v4("192.0.2.7:30000")),
            "a wildcard leg uses its connected socket's address"
        );
        assert_eq!(concrete_local("0.0.0.0:30000".parse().unwrap(), None), None);
        assert_eq!(
            concrete_local(
                "[::]:30000".parse().unwrap(),
                Some("[2001:db8::1]:30000".parse().unwrap())
            ),
            None
        );
    }

    /// A stream whose sides latched `a` and `b` (simulated time).
    fn latched(a: &str, b: &str) -> MediaSession {
        use crate::session::{LatchMode, LatchPolicy, PeerAddrs, SocketKind};
        let now = Instant::now();
        let mut s = MediaSession::new(now, std::time::Duration::from_secs(30));
        let p = LatchPolicy {
            mode: LatchMode::Nat,
            relatch_after_silence: None,
        };
        s.add_stream(0, [p, p]);
        for (side, src) in [(Side::A, a), (Side::B, b)] {
            let src: SocketAddr = src.parse().unwrap();
            let peer = PeerAddrs {
                rtp: Some(src),
                rtcp: None,
                rtcp_mux: true,
                ..Default::default()
            };
            s.set_peer(now, 0, side, peer);
        }
        for (side, src) in [(Side::A, a), (Side::B, b)] {
            let mut buf = [0u8; 256];
            buf[0] = 0x80;
            s.on_packet(
                now,
                0,
                side,
                SocketKind::Rtp,
                src.parse().unwrap(),
                &mut buf,
                172,
            );
        }
        s
    }

    #[test]
    fn wanted_flow_maps_each_latched_peer_to_the_other_leg() {
        let s = latched("203.0.113.5:4000", "198.51.100.9:6000");
        let st = s.stream(0).unwrap();
        let locals = [Some(v4("192.0.2.1:30000")), Some(v4("192.0.2.1:30002"))];
        assert_eq!(
            wanted(st, Side::A, locals),
            Some(Offload {
                key: FlowKey {
                    src: v4("203.0.113.5:4000"),
                    dst: v4("192.0.2.1:30000"),
                },
                action: FlowAction {
                    src: v4("192.0.2.1:30002"),
                    dst: v4("198.51.100.9:6000"),
                },
            })
        );
        let back = wanted(st, Side::B, locals).unwrap();
        assert_eq!(
            (back.key.src, back.key.dst, back.action.src, back.action.dst),
            (
                v4("198.51.100.9:6000"),
                v4("192.0.2.1:30002"),
                v4("192.0.2.1:30000"),
                v4("203.0.113.5:4000")
            )
        );
        // A wildcard leg without a connected socket: no concrete address,
        // neither direction (one arrives there, the other leaves from it).
        let half = [None, Some(v4("192.0.2.1:30002"))];
        assert_eq!(wanted(st, Side::A, half), None);
        assert_eq!(wanted(st, Side::B, half), None);
    }

    #[test]
    fn plan_touches_the_kernel_only_when_the_wanted_flow_changes() {
        let (f1, f2) = (flow("203.0.113.5:4000"), flow("203.0.113.5:4002"));
        let installed = |f| {
            Some(KFlow::Installed {
                flow: f,
                packets: 9,
                bytes: 900,
            })
        };
        assert_eq!(plan(None, None), (None, None));
        assert_eq!(plan(None, Some(f1)), (None, Some(f1)));
        assert_eq!(plan(installed(f1), Some(f1)), (None, None), "settled");
        assert_eq!(
            plan(installed(f1), Some(f2)),
            (Some(f1), Some(f2)),
            "re-latch"
        );
        assert_eq!(
            plan(installed(f1), None),
            (Some(f1), None),
            "hold, re-INVITE"
        );
        let mut moved = f1;
        moved.action.dst = v4("203.0.113.9:6002");
        assert_eq!(
            plan(installed(f1), Some(moved)),
            (Some(f1), Some(moved)),
            "the other side re-latched"
        );
        assert_eq!(
            plan(Some(KFlow::Failed(f1)), Some(f1)),
            (None, None),
            "no retry"
        );
        assert_eq!(plan(Some(KFlow::Failed(f1)), Some(f2)), (None, Some(f2)));
        assert_eq!(plan(Some(KFlow::Failed(f1)), None), (None, None));
    }
}
