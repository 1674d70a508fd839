//! In-kernel forwarding of latched RTP flows (work in progress: the API is
//! fixed, the implementation lands on branch h-kfwd).

use std::net::SocketAddrV4;
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
    /// Not built yet.
    #[error("kernel forwarding is not available: {0}")]
    Unavailable(String),
}

/// The loaded program, its flow table and its attachments (tcx ingress
/// links, detached when this value is dropped).
#[derive(Debug)]
pub struct KernelForwarder {
    interfaces: Vec<String>,
}

impl KernelForwarder {
    /// Loads the program and attaches it at ingress of the named
    /// interfaces, or of every Ethernet and loopback interface present.
    pub fn attach(interfaces: Option<&[String]>) -> Result<Self, KernelForwardError> {
        let _ = interfaces;
        Err(KernelForwardError::Unavailable("not built yet".into()))
    }

    /// The interfaces the program is attached to.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    /// Installs or replaces the flow `key` (counters start at zero).
    pub fn install(&self, key: FlowKey, action: FlowAction) -> Result<(), KernelForwardError> {
        let _ = (key, action);
        Err(KernelForwardError::Unavailable("not built yet".into()))
    }

    /// Removes the flow; a flow that is not installed is not an error.
    /// Returns its last counters when it was installed.
    pub fn remove(&self, key: FlowKey) -> Result<Option<FlowCounters>, KernelForwardError> {
        let _ = key;
        Err(KernelForwardError::Unavailable("not built yet".into()))
    }

    /// The flow's counters, `None` when it is not installed.
    pub fn counters(&self, key: FlowKey) -> Result<Option<FlowCounters>, KernelForwardError> {
        let _ = key;
        Err(KernelForwardError::Unavailable("not built yet".into()))
    }
}
