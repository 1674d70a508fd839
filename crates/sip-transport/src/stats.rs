//! Counters: monotonic, lock-free except the per-kind parse error tables (a short lock, never
//! across an await).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use sip_message::{ErrorKind, FramingErrorKind};

/// Why something was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The [`crate::Incoming`] channel was full.
    IncomingQueueFull,
    /// A UDP socket's send queue was full.
    UdpSendQueueFull,
    /// A TCP connection's send queue was full.
    TcpSendQueueFull,
    /// A request that did not parse and lacks what a stateless answer needs (or is an ACK).
    UnanswerableRequest,
    /// A response (or non-SIP bytes starting like one) that did not parse.
    BadResponse,
    /// A datagram that looked like STUN but failed its checks, or a STUN response.
    BadStun,
    /// Messages queued on a connection whose connect failed or timed out.
    ConnectFailed,
    /// A write failed or timed out; the connection is closed.
    WriteFailed,
    /// A UDP send_to failed.
    UdpSendFailed,
    /// Inbound connection refused: [`crate::TransportConfig::max_connections`].
    ConnectionLimit,
    /// Inbound connection refused: [`crate::TransportConfig::max_connections_per_ip`].
    ConnectionLimitPerIp,
    /// A stream that could not be framed; the connection is closed.
    FramingError,
    /// A message that came to a stream after a stamped Via could not be parsed again (a bug).
    Internal,
    /// A TLS connection closed before its handshake: a handshake rate limit.
    HandshakeRateLimited,
    /// A plain (UDP/TCP) message from an address where TLS is required.
    PlainInTlsZone,
    /// Refused by the admission check: the source is banned (a datagram, a connection, or a
    /// stream message whose connection is then closed).
    Banned,
    /// Refused by the admission check: over the source's rate limit.
    RateLimited,
    /// Refused by the admission check: the source is in no zone.
    NoZone,
}

const REASONS: [DropReason; 18] = [
    DropReason::IncomingQueueFull,
    DropReason::UdpSendQueueFull,
    DropReason::TcpSendQueueFull,
    DropReason::UnanswerableRequest,
    DropReason::BadResponse,
    DropReason::BadStun,
    DropReason::ConnectFailed,
    DropReason::WriteFailed,
    DropReason::UdpSendFailed,
    DropReason::ConnectionLimit,
    DropReason::ConnectionLimitPerIp,
    DropReason::FramingError,
    DropReason::Internal,
    DropReason::HandshakeRateLimited,
    DropReason::PlainInTlsZone,
    DropReason::Banned,
    DropReason::RateLimited,
    DropReason::NoZone,
];

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub udp_received: AtomicU64,
    pub tcp_received: AtomicU64,
    pub udp_sent: AtomicU64,
    pub tcp_sent: AtomicU64,
    pub stun_answered: AtomicU64,
    pub keepalives: AtomicU64,
    pub pongs: AtomicU64,
    pub bad_requests_answered: AtomicU64,
    pub switched_to_tcp: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub connections_idle_closed: AtomicU64,
    pub connect_failures: AtomicU64,
    pub open_connections: AtomicU64,
    pub failures_reported: AtomicU64,
    pub failures_unreported: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub tls_handshake_timeouts: AtomicU64,
    pub tls_handshakes_rate_limited: AtomicU64,
    pub tls_reloads: AtomicU64,
    pub tls_reload_failures: AtomicU64,
    drops: [AtomicU64; REASONS.len()],
    parse_errors: Mutex<HashMap<ErrorKind, u64>>,
    framing_errors: Mutex<HashMap<FramingErrorKind, u64>>,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Stats {
    pub fn drop(&self, r: DropReason) {
        self.drop_n(r, 1);
    }

    pub fn drop_n(&self, r: DropReason, n: u64) {
        if let Some(i) = REASONS.iter().position(|x| *x == r) {
            self.drops[i].fetch_add(n, Relaxed);
        }
    }

    pub fn parse_error(&self, k: ErrorKind) {
        if let Ok(mut m) = self.parse_errors.lock() {
            *m.entry(k).or_default() += 1;
        }
    }

    pub fn framing_error(&self, k: FramingErrorKind) {
        if let Ok(mut m) = self.framing_errors.lock() {
            *m.entry(k).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let mut parse_errors: Vec<_> = self
            .parse_errors
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        parse_errors.sort_by_key(|(k, _)| format!("{k:?}"));
        let mut framing_errors: Vec<_> = self
            .framing_errors
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        framing_errors.sort_by_key(|(k, _)| format!("{k:?}"));
        StatsSnapshot {
            udp_received: g(&self.udp_received),
            tcp_received: g(&self.tcp_received),
            udp_sent: g(&self.udp_sent),
            tcp_sent: g(&self.tcp_sent),
            stun_answered: g(&self.stun_answered),
            keepalives: g(&self.keepalives),
            pongs: g(&self.pongs),
            bad_requests_answered: g(&self.bad_requests_answered),
            switched_to_tcp: g(&self.switched_to_tcp),
            connections_accepted: g(&self.connections_accepted),
            connections_opened: g(&self.connections_opened),
            connections_closed: g(&self.connections_closed),
            connections_idle_closed: g(&self.connections_idle_closed),
            connect_failures: g(&self.connect_failures),
            open_connections: g(&self.open_connections),
            failures_reported: g(&self.failures_reported),
            failures_unreported: g(&self.failures_unreported),
            tls_handshakes: g(&self.tls_handshakes),
            tls_handshake_failures: g(&self.tls_handshake_failures),
            tls_handshake_timeouts: g(&self.tls_handshake_timeouts),
            tls_handshakes_rate_limited: g(&self.tls_handshakes_rate_limited),
            tls_reloads: g(&self.tls_reloads),
            tls_reload_failures: g(&self.tls_reload_failures),
            drops: REASONS
                .iter()
                .zip(&self.drops)
                .map(|(r, c)| (*r, g(c)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            parse_errors,
            framing_errors,
        }
    }
}

/// A copy of the counters. All are monotonic except `open_connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Datagrams received (SIP, STUN and keepalives).
    pub udp_received: u64,
    /// SIP messages framed on TCP and TLS connections.
    pub tcp_received: u64,
    /// Datagrams sent.
    pub udp_sent: u64,
    /// Messages (and pongs) written to TCP and TLS connections.
    pub tcp_sent: u64,
    /// STUN requests answered (success or error response).
    pub stun_answered: u64,
    /// CRLF keepalives on UDP, CRLFCRLF pings on TCP, STUN Binding indications.
    pub keepalives: u64,
    /// CRLF pongs sent.
    pub pongs: u64,
    /// Stateless 4xx/5xx answers to requests that did not parse.
    pub bad_requests_answered: u64,
    /// Requests moved from UDP to TCP because of their size.
    pub switched_to_tcp: u64,
    pub connections_accepted: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub connections_idle_closed: u64,
    pub connect_failures: u64,
    pub open_connections: u64,
    /// Send failures of transactions reported on the failure channel.
    pub failures_reported: u64,
    /// Send failures of transactions not reported: the failure channel was full or nobody
    /// took it.
    pub failures_unreported: u64,
    /// TLS handshakes completed (both directions).
    pub tls_handshakes: u64,
    /// TLS handshakes that failed: protocol version, certificate refused, garbage.
    pub tls_handshake_failures: u64,
    pub tls_handshake_timeouts: u64,
    /// Inbound TLS connections closed before the handshake by a handshake rate limit.
    pub tls_handshakes_rate_limited: u64,
    /// TLS configurations rebuilt (a file changed, or `reload_tls`).
    pub tls_reloads: u64,
    pub tls_reload_failures: u64,
    /// Non-zero drop counters.
    pub drops: Vec<(DropReason, u64)>,
    /// Messages that failed to parse, by kind (Via errors of requests included).
    pub parse_errors: Vec<(ErrorKind, u64)>,
    /// Streams closed because they could not be framed, by kind.
    pub framing_errors: Vec<(FramingErrorKind, u64)>,
}

impl StatsSnapshot {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(x, _)| *x == r)
            .map_or(0, |(_, n)| *n)
    }

    pub fn parse_errors_of(&self, k: ErrorKind) -> u64 {
        self.parse_errors
            .iter()
            .find(|(x, _)| *x == k)
            .map_or(0, |(_, n)| *n)
    }
}
