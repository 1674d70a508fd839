//! Transport configuration.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sip_message::Limits;

use crate::admit::AdmissionHook;
use crate::tls::{ClientTlsConfig, ServerTlsConfig};

/// What [`crate::Transport::start`] binds and how it behaves. Every queue is bounded.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// UDP addresses to listen on (port 0 picks one; see `TransportHandle::udp_addrs`).
    pub udp: Vec<SocketAddr>,
    /// TCP addresses to listen on.
    pub tcp: Vec<SocketAddr>,
    /// Parse limits for datagrams and stream frames.
    pub limits: Limits,
    /// SO_RCVBUF / SO_SNDBUF for UDP sockets (None: the system default).
    pub udp_recv_buffer: Option<usize>,
    pub udp_send_buffer: Option<usize>,
    /// A request larger than this, asked to go over UDP, goes over TCP with its top Via
    /// rewritten (RFC 3261 18.1.1: 1300 bytes when the path MTU is unknown).
    pub udp_mtu: usize,
    /// Switch large requests to TCP (else they are sent over UDP as they are).
    pub large_requests_over_tcp: bool,
    /// Answer a UDP CRLFCRLF datagram with CRLF (some clients expect it; RFC 5626 uses STUN on
    /// UDP, so the default is to ignore them).
    pub udp_keepalive_pong: bool,
    /// Add `rport` to requests whose top Via lacks it, so that responses go back to the source
    /// port (symmetric response routing for clients behind NAT).
    pub force_rport: bool,
    /// A TCP connection with no traffic in either direction for this long is closed. Keep it
    /// above the clients' keepalive interval (RFC 5626 4.4.1 suggests 95 to 120 s for TCP).
    pub tcp_idle_timeout: Duration,
    /// Outbound TCP connect timeout.
    pub tcp_connect_timeout: Duration,
    /// A write to a TCP connection that does not complete in this time closes it.
    pub tcp_write_timeout: Duration,
    /// Open TCP connections (inbound and outbound, pending ones included).
    pub max_connections: usize,
    /// Inbound TCP connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Capacity of the channel of [`crate::Incoming`] messages.
    pub incoming_queue: usize,
    /// Capacity of each UDP socket's send queue.
    pub udp_send_queue: usize,
    /// Capacity of each TCP connection's send queue.
    pub tcp_send_queue: usize,
    /// TLS listeners and what each serves.
    pub tls: Vec<TlsListener>,
    /// Outgoing TLS: trust anchors and client certificate. None: requests that need TLS fail
    /// with [`crate::SendError::NoTlsClient`].
    pub tls_client: Option<Arc<ClientTlsConfig>>,
    /// A TLS handshake (either side) not done in this time closes the connection.
    pub tls_handshake_timeout: Duration,
    /// Inbound handshakes started per second, all sources together (0: no limit).
    pub tls_handshakes_per_second: u32,
    /// Inbound handshakes started per second from one IP address (0: no limit).
    pub tls_handshakes_per_source: u32,
    /// Sources the per-source handshake limiter tracks at most.
    pub tls_handshake_sources: usize,
    /// How often the certificate files are checked for changes (None: only on
    /// [`crate::TransportHandle::reload_tls`]).
    pub tls_reload_check: Option<Duration>,
    /// Addresses with which only TLS is spoken.
    pub tls_required: TlsRequired,
    /// The check run on every datagram, new connection and stream message before it is
    /// parsed (bans, per-source rate limits; module [`crate::admit`]). Default: none.
    pub admission: AdmissionHook,
}

/// A TLS listener: its address and its (reloadable) configuration.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub addr: SocketAddr,
    pub config: Arc<ServerTlsConfig>,
}

/// Which remote addresses must be reached, and may only be heard, over TLS (the zones with
/// `require_tls`). Default: none.
#[derive(Clone, Default)]
pub struct TlsRequired(Option<Arc<dyn Fn(IpAddr) -> bool + Send + Sync>>);

impl TlsRequired {
    pub fn new(f: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> TlsRequired {
        TlsRequired(Some(Arc::new(f)))
    }

    pub fn applies(&self, ip: IpAddr) -> bool {
        self.0.as_ref().is_some_and(|f| f(ip.to_canonical()))
    }
}

impl std::fmt::Debug for TlsRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "TlsRequired(some)"
        } else {
            "TlsRequired(none)"
        })
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            udp: Vec::new(),
            tcp: Vec::new(),
            limits: Limits::DEFAULT,
            udp_recv_buffer: None,
            udp_send_buffer: None,
            udp_mtu: 1300,
            large_requests_over_tcp: true,
            udp_keepalive_pong: false,
            force_rport: false,
            tcp_idle_timeout: Duration::from_secs(300),
            tcp_connect_timeout: Duration::from_secs(5),
            tcp_write_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 64,
            incoming_queue: 4096,
            udp_send_queue: 4096,
            tcp_send_queue: 256,
            tls: Vec::new(),
            tls_client: None,
            tls_handshake_timeout: Duration::from_secs(5),
            tls_handshakes_per_second: 500,
            tls_handshakes_per_source: 20,
            tls_handshake_sources: 16_384,
            tls_reload_check: Some(Duration::from_secs(5)),
            tls_required: TlsRequired::default(),
            admission: AdmissionHook::default(),
        }
    }
}
