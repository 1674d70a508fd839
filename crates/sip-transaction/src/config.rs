//! Timer values and limits.

use std::time::Duration;

/// The default of [`Config::max_transactions`]: enough for 4000 calls per second over UDP
/// with the default timers. A proxied call makes four transactions (INVITE and BYE, each a
/// server and a client transaction) that stay 64*T1 = 32 s after they complete (timers J, L,
/// M; the BYE client transaction T4 = 5 s, timer K), so 4000 calls/s keep about
/// 4000 × (3 × 32 + 5) ≈ 404 000 alive; the rest (about 50 %) is headroom for re-INVITEs,
/// CANCELs, REGISTERs and OPTIONS. At about 2.2 KiB per transaction (measured by
/// `tests/memory.rs`, a request of 750 bytes), a full table holds about 1.4 GB.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 640_000;

/// Configuration of a [`crate::TransactionLayer`].
#[derive(Debug, Clone)]
pub struct Config {
    /// RTT estimate (RFC 3261 17.1.1.1, table 4): 500 ms. The base of timers A, B, E, F, G,
    /// H, J, L, M.
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses: 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network: 5 s (timers I and K).
    pub t4: Duration,
    /// Timer D on unreliable transports: "at least 32 seconds" (17.1.1.2). Default 32 s.
    pub timer_d: Duration,
    /// How long a server INVITE transaction waits for the TU before it sends `100 Trying`
    /// itself (17.2.1: 200 ms). `None`: never (a TU that always answers at once);
    /// `Some(ZERO)`: at once.
    pub trying_delay: Option<Duration>,
    /// Most transactions (client and server together) alive at once. A new request beyond it
    /// creates no transaction: it is answered statelessly with `503 Service Unavailable` and
    /// Retry-After ([`Config::overload_retry_after`]; ACK is never answered) and reported as
    /// [`crate::DropReason::TooManyTransactions`]; a `send_request` fails with
    /// [`crate::SendError::TooManyTransactions`].
    pub max_transactions: usize,
    /// The Retry-After of the 503 sent when the table is full (RFC 3261 21.5.4: the client may
    /// retry after it). `None`: no answer, a silent drop (counted all the same).
    pub overload_retry_after: Option<Duration>,
    /// TU guard for server INVITE transactions: if no final response comes from the TU within
    /// this time, the layer answers 500 itself. Not in the RFC (see [`crate::Timer::TuGuard`]);
    /// longer than any ringing time a proxy allows (Timer C is > 3 min, 16.6). `None`: off.
    pub tu_guard_invite: Option<Duration>,
    /// TU guard for server non-INVITE transactions. By 64*T1 the client has given up (Timer
    /// F), so the default is twice that. `None`: off.
    pub tu_guard_non_invite: Option<Duration>,
    /// Seed of [`crate::TransactionLayer::new_branch`] and of the To tags of stateless
    /// responses. Branches must be unique "across space and time" (8.1.1.7): give every
    /// process a random seed. The layer draws no randomness itself.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::with_t1(Duration::from_millis(500))
    }
}

impl Config {
    /// The defaults with another T1 (RFC 3261 allows a larger T1 on high-latency networks and
    /// a smaller one where the RTT is known; table 4 timers scale with it).
    pub fn with_t1(t1: Duration) -> Config {
        Config {
            t1,
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying_delay: Some(Duration::from_millis(200)),
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            overload_retry_after: Some(Duration::from_secs(5)),
            tu_guard_invite: Some(Duration::from_secs(600)),
            tu_guard_non_invite: Some(t1 * 128),
            seed: 0,
        }
    }

    /// 64*T1: timers B, F, H, J, L, M.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}
