//! In-kernel forwarding of latched RTP flows.
//!
//! A socket relay pays, for every RTP packet, the kernel's UDP receive and
//! send paths and two trips across the system-call boundary; on a busy edge
//! that is most of the CPU the media costs. Once a call's two sides have
//! latched, the relay's decision for each packet is fixed: from this peer
//! to this port, out of that port to that peer. This crate hands exactly
//! that decision to the kernel: a small tc program (attached at tcx
//! ingress) looks every IPv4 UDP datagram up in a flow table and, for a
//! flow the relay installed, rewrites addresses, ports and checksums and
//! sends it on at once, counting it. Nothing else changes: RTCP, flows not
//! (yet) installed, packets from any other source, IPv6, fragments and IP
//! options pass on to the relay's sockets as before, so latching, source
//! lock, SRTP and statistics stay the relay's.
//!
//! The program is assembled in Rust (`asm.rs`) and loaded with `bpf(2)`:
//! no BPF toolchain at build time, and no object file in the repository.
//! The attachments are BPF links owned by the [`KernelForwarder`]: dropping
//! it (or the process ending, however it ends) detaches the program, so no
//! forwarding outlives the relay that installed it.
//!
//! Requirements: Linux 6.6 or later (tcx), `CAP_BPF` and `CAP_NET_ADMIN`
//! (root), interfaces with Ethernet framing (and loopback).
//!
//! Forwarded packets leave through the neighbour table of the egress device
//! without passing the host's netfilter hooks (tc ingress runs before
//! them): the flow table itself is the filter, and it only admits the
//! latched peer of a current call, which is the rule the nftables media
//! table enforces too.

mod asm;
mod netlink;
mod program;
mod sys;

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// A flow as it arrives: from the latched peer to one of our relay ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The latched peer (source of the datagrams).
    pub src: SocketAddrV4,
    /// Our relay port the peer sends to (a concrete address, not 0.0.0.0).
    pub dst: SocketAddrV4,
}

/// Where a matching datagram goes: rewritten to leave from our other leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowAction {
    /// Our relay port on the other leg (a concrete address, not 0.0.0.0).
    pub src: SocketAddrV4,
    /// The other side's latched peer.
    pub dst: SocketAddrV4,
}

/// What the kernel forwarded for one flow since it was installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowCounters {
    /// Datagrams forwarded.
    pub packets: u64,
    /// UDP payload octets forwarded.
    pub bytes: u64,
    /// Time since the last forwarded datagram; `None` before the first.
    pub idle: Option<Duration>,
}

/// Why the kernel path could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum KernelForwardError {
    /// The host cannot run the program: no interface to attach to, or an
    /// interface that was named does not exist or has no Ethernet framing.
    #[error("kernel forwarding is not available: {0}")]
    Unavailable(String),
    /// The kernel refused to create the flow table.
    #[error("creating the flow table (bpf map): {0}")]
    Map(#[source] std::io::Error),
    /// The kernel refused the program; `log` is the verifier's account.
    #[error("loading the forwarding program: {error}{log}")]
    Load {
        /// The error of the load.
        #[source]
        error: std::io::Error,
        /// The verifier log (empty when the kernel gave none), prefixed
        /// with a newline.
        log: String,
    },
    /// The program could not be attached to an interface (tcx needs Linux
    /// 6.6, and root or CAP_BPF with CAP_NET_ADMIN).
    #[error("attaching to interface {interface} (tcx ingress): {error}")]
    Attach {
        /// The interface.
        interface: String,
        /// The kernel's error.
        #[source]
        error: std::io::Error,
    },
    /// The kernel could not route the flow's new destination.
    #[error("no route from {src} to {dst}: {error}")]
    Route {
        /// Our leg address the datagrams would leave from.
        src: std::net::Ipv4Addr,
        /// The destination.
        dst: std::net::Ipv4Addr,
        /// The kernel's answer.
        #[source]
        error: std::io::Error,
    },
    /// An address that is not a concrete unicast address (0.0.0.0, port 0,
    /// multicast, broadcast) in a flow.
    #[error("flow address {0} is not a concrete unicast address")]
    Address(SocketAddrV4),
    /// The flow table refused an update (full: `max_flows` reached).
    #[error("updating the flow table: {0}")]
    Table(#[source] std::io::Error),
}

/// The default size of the flow table: one entry per latched direction, so
/// 16,384 calls with one RTP stream each.
pub const DEFAULT_MAX_FLOWS: u32 = 32_768;

/// The loaded program, its flow table and its attachments (tcx ingress
/// links, detached when this value is dropped).
#[derive(Debug)]
pub struct KernelForwarder {
    interfaces: Vec<String>,
    map: OwnedFd,
    // Kept for their lifetime only: closing a link detaches the program,
    // and the program holds the map.
    _links: Vec<OwnedFd>,
    _prog: OwnedFd,
}

impl KernelForwarder {
    /// Loads the program and attaches it at ingress of the named
    /// interfaces, or of every Ethernet and loopback interface present.
    pub fn attach(interfaces: Option<&[String]>) -> Result<Self, KernelForwardError> {
        Self::attach_with(interfaces, DEFAULT_MAX_FLOWS)
    }

    /// [`attach`](Self::attach) with a flow table of `max_flows` entries.
    pub fn attach_with(
        interfaces: Option<&[String]>,
        max_flows: u32,
    ) -> Result<Self, KernelForwardError> {
        let ifs = netlink::interfaces(interfaces).map_err(KernelForwardError::Unavailable)?;
        if ifs.is_empty() {
            return Err(KernelForwardError::Unavailable(
                "no Ethernet or loopback interface to attach to".into(),
            ));
        }
        let map = sys::hash_map(
            "sw_media_flows",
            program::KEY_SIZE,
            program::VALUE_SIZE,
            max_flows.max(1),
        )
        .map_err(KernelForwardError::Map)?;
        let insns = program::forwarder(map.as_raw_fd()).map_err(|e| KernelForwardError::Load {
            error: std::io::Error::other(e.to_string()),
            log: String::new(),
        })?;
        let prog =
            sys::load_sched_cls("sw_media_fwd", &insns).map_err(|e| KernelForwardError::Load {
                error: e.error,
                log: if e.log.is_empty() {
                    String::new()
                } else {
                    format!("\n{}", e.log)
                },
            })?;
        let mut links = Vec::with_capacity(ifs.len());
        for i in &ifs {
            let link = sys::tcx_ingress(prog.as_raw_fd(), i.index).map_err(|error| {
                KernelForwardError::Attach {
                    interface: i.name.clone(),
                    error,
                }
            })?;
            links.push(link);
        }
        Ok(Self {
            interfaces: ifs.into_iter().map(|i| i.name).collect(),
            map,
            _links: links,
            _prog: prog,
        })
    }

    /// The interfaces the program is attached to.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    /// Installs or replaces the flow `key` (counters start at zero; read
    /// them with [`remove`](Self::remove) first to keep them). The kernel
    /// is asked once, here, how it routes the new destination.
    pub fn install(&self, key: FlowKey, action: FlowAction) -> Result<(), KernelForwardError> {
        for a in [key.src, key.dst, action.src, action.dst] {
            let ip = a.ip();
            if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || a.port() == 0 {
                return Err(KernelForwardError::Address(a));
            }
        }
        let route = netlink::route(*action.src.ip(), *action.dst.ip()).map_err(|error| {
            KernelForwardError::Route {
                src: *action.src.ip(),
                dst: *action.dst.ip(),
                error,
            }
        })?;
        let value = program::value_bytes(&key, &action, route.ifindex, route.local);
        sys::map_update(self.map.as_raw_fd(), &program::key_bytes(&key), &value)
            .map_err(KernelForwardError::Table)
    }

    /// Removes the flow; a flow that is not installed is not an error.
    /// Returns its last counters when it was installed.
    pub fn remove(&self, key: FlowKey) -> Result<Option<FlowCounters>, KernelForwardError> {
        let last = self.counters(key)?;
        sys::map_delete(self.map.as_raw_fd(), &program::key_bytes(&key))
            .map_err(KernelForwardError::Table)?;
        Ok(last)
    }

    /// The flow's counters, `None` when it is not installed.
    pub fn counters(&self, key: FlowKey) -> Result<Option<FlowCounters>, KernelForwardError> {
        let mut v = [0u8; program::VALUE_SIZE];
        let found = sys::map_lookup(self.map.as_raw_fd(), &program::key_bytes(&key), &mut v)
            .map_err(KernelForwardError::Table)?;
        if !found {
            return Ok(None);
        }
        let u64_at = |at: usize| {
            v.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
                .unwrap_or(0)
        };
        let last = u64_at(program::V_LAST_NS);
        Ok(Some(FlowCounters {
            packets: u64_at(program::V_PACKETS),
            bytes: u64_at(program::V_BYTES),
            idle: (last != 0)
                .then(|| Duration::from_nanos(sys::monotonic_ns().saturating_sub(last))),
        }))
    }
}
