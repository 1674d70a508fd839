//! The values that cross the boundary of the transaction layer: ids, addresses, outputs, events
//! and errors.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use sip_message::Message;

use crate::timer::Timer;

/// A transport flow as the shell names it: a connection (TCP/TLS/WS) or a UDP socket. The layer
/// never interprets it; it only hands it back so that responses leave on the flow the request
/// came in on (RFC 3261 18.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub remote: SocketAddr,
    pub flow: FlowId,
    /// True for TCP, TLS, SCTP, WS(S): retransmission timers are not armed and the wait
    /// timers D, I, J and K are zero (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2).
    pub reliable: bool,
}

/// Where a message goes. `flow: None` lets the shell pick (or open) a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    pub remote: SocketAddr,
    pub flow: Option<FlowId>,
    /// See [`Source::reliable`].
    pub reliable: bool,
}

impl From<Source> for Destination {
    fn from(s: Source) -> Destination {
        Destination {
            remote: s.remote,
            flow: Some(s.flow),
            reliable: s.reliable,
        }
    }
}

/// A client transaction (we sent the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub(crate) u64);

/// A server transaction (we received the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub(crate) u64);

/// Either kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxId {
    Client(ClientTxId),
    Server(ServerTxId),
}

impl fmt::Display for ClientTxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ctx#{}", self.0)
    }
}

impl fmt::Display for ServerTxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stx#{}", self.0)
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxId::Client(c) => c.fmt(f),
            TxId::Server(s) => s.fmt(f),
        }
    }
}

/// The states of RFC 3261 figures 5 to 8 as amended by RFC 6026 (Accepted). `Terminated` is
/// not a state here: a terminated transaction is gone (17.1.1.2: "destroyed the instant it
/// enters the Terminated state").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    /// A CANCEL waiting for a provisional response to its INVITE before it may be sent (9.1).
    Held,
    /// Client INVITE, request sent, nothing received.
    Calling,
    /// Non-INVITE (client or server), nothing provisional yet.
    Trying,
    Proceeding,
    Completed,
    /// Server INVITE after the ACK for a non-2xx final response.
    Confirmed,
    /// INVITE after a 2xx (RFC 6026).
    Accepted,
}

/// What the shell must do, drained with [`crate::TransactionLayer::poll_output`].
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `bytes` to `dest`. `tx` names the transaction that sent them (None for stateless
    /// sends); report a failure with [`crate::TransactionLayer::handle_transport_error`].
    Transmit {
        dest: Destination,
        bytes: Bytes,
        tx: Option<TxId>,
    },
    /// Something for the transaction user (the call engine).
    Event(TuEvent),
}

/// Why a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// The normal end: timers D, I, J, K, L, M (or their zero value on reliable transports).
    Completed,
    /// Timer B, F or H fired, or the TU never answered a server transaction (see
    /// [`Timer::TuGuard`]).
    Timeout,
    /// The shell reported a transport error.
    TransportError,
    /// A CANCEL that was never sent: its INVITE got a final response (or timed out) before any
    /// provisional response (RFC 3261 9.1).
    NotSent,
}

/// Events for the transaction user. Every transaction ends with exactly one `Terminated`.
#[derive(Debug, Clone)]
pub enum TuEvent {
    /// A request that created a new server transaction (any method but ACK and CANCEL).
    Request {
        id: ServerTxId,
        msg: Message,
        source: Source,
    },
    /// A CANCEL; it has its own non-INVITE server transaction `id` (RFC 3261 9.2), and `target`
    /// is the server transaction it matches (17.2.3 with the method ignored), if any. The TU
    /// decides: 200 to the CANCEL and 487 to an INVITE still pending, or 481 without a target.
    Cancel {
        id: ServerTxId,
        msg: Message,
        source: Source,
        target: Option<ServerTxId>,
    },
    /// An ACK that is not part of a transaction: the ACK for a 2xx (RFC 3261 17, 13.3.1.4), or
    /// one that matched an INVITE server transaction in the Accepted state (RFC 6026 7.1:
    /// passed up), in which case `matched` names it.
    Ack {
        msg: Message,
        source: Source,
        matched: Option<ServerTxId>,
    },
    /// A response for a client transaction: provisional, final, and (RFC 6026 7.2) every 2xx
    /// received in the Accepted state, retransmissions and other forks included. Absorbed
    /// retransmissions of non-2xx finals are not passed up.
    Response {
        id: ClientTxId,
        msg: Message,
        source: Source,
    },
    /// A response that matched no client transaction (RFC 3261 18.1.2: passed to the core).
    StrayResponse { msg: Message, source: Source },
    /// A transaction timer expired: B or F on a client transaction (the TU synthesises a 408,
    /// 8.1.3.1), H on a server INVITE transaction (no ACK came), or the TU guard on a server
    /// transaction (the layer answered 500 itself).
    Timeout { tx: TxId, timer: Timer },
    /// The shell reported a transport error for this transaction.
    TransportError { tx: TxId },
    /// The transaction is gone; its id will not appear again.
    Terminated { tx: TxId, reason: TerminationReason },
    /// A message the layer did not process, and why. Counted in [`Stats`] too.
    Dropped {
        reason: DropReason,
        source: Option<Source>,
    },
}

/// A header the layer needs and could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadHeader {
    Via,
    CSeq,
    CallId,
    From,
    To,
    /// The CSeq method differs from the request method (RFC 3261 8.1.1.5).
    CSeqMethod,
}

impl BadHeader {
    pub fn as_str(self) -> &'static str {
        match self {
            BadHeader::Via => "missing or malformed Via",
            BadHeader::CSeq => "missing or malformed CSeq",
            BadHeader::CallId => "missing or malformed Call-ID",
            BadHeader::From => "missing or malformed From",
            BadHeader::To => "missing or malformed To",
            BadHeader::CSeqMethod => "CSeq method does not match the request method",
        }
    }
}

impl fmt::Display for BadHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an incoming message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A new request would exceed [`crate::Config::max_transactions`]; `replied` tells whether
    /// a stateless 503 with Retry-After was sent (not to ACK, not when
    /// [`crate::Config::overload_retry_after`] is `None`).
    TooManyTransactions { replied: bool },
    /// A request without the headers transactions are built on; `replied` tells whether a
    /// stateless 400 could be sent (not to ACK, not without a readable Via).
    BadRequest { header: BadHeader, replied: bool },
    /// A response without a readable top Via or CSeq: it cannot be matched (RFC 3261 18.1.2).
    BadResponse { header: BadHeader },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::TooManyTransactions { replied } => write!(
                f,
                "transaction limit reached{}",
                if *replied { " (503 sent)" } else { "" }
            ),
            DropReason::BadRequest { header, replied } => {
                write!(
                    f,
                    "bad request: {header}{}",
                    if *replied { " (400 sent)" } else { "" }
                )
            }
            DropReason::BadResponse { header } => write!(f, "bad response: {header}"),
        }
    }
}

/// Why [`crate::TransactionLayer::send_request`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendError {
    /// The message is a response.
    NotARequest,
    /// ACK is never a client transaction: ACK for a 2xx is sent by the TU
    /// ([`crate::TransactionLayer::send_stateless`]), ACK for a non-2xx by the INVITE client
    /// transaction (RFC 3261 17).
    Ack,
    /// The top Via lacks a branch with the RFC 3261 magic cookie (8.1.1.7): responses could
    /// not be matched (17.1.3).
    MissingBranch,
    BadHeader(BadHeader),
    /// A client transaction with this branch and method exists already (8.1.1.7: branches are
    /// unique per transaction).
    DuplicateBranch,
    /// [`crate::Config::max_transactions`] reached.
    TooManyTransactions,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotARequest => f.write_str("not a request"),
            SendError::Ack => f.write_str("ACK does not create a client transaction"),
            SendError::MissingBranch => f.write_str("top Via has no z9hG4bK branch"),
            SendError::BadHeader(h) => h.fmt(f),
            SendError::DuplicateBranch => {
                f.write_str("a client transaction with this branch exists")
            }
            SendError::TooManyTransactions => f.write_str("transaction limit reached"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why [`crate::TransactionLayer::send_response`] refused a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseError {
    /// No such server transaction (it may have terminated).
    UnknownTransaction,
    NotAResponse,
    /// The transaction does not take this response in this state: a final response after a
    /// final response (RFC 3261 17.2.1, 17.2.2: discarded), or a non-2xx in Accepted.
    InvalidState {
        state: TxState,
        status: u16,
    },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::UnknownTransaction => f.write_str("unknown server transaction"),
            ResponseError::NotAResponse => f.write_str("not a response"),
            ResponseError::InvalidState { state, status } => {
                write!(f, "cannot send {status} in state {state:?}")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

/// Why [`crate::TransactionLayer::cancel`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelError {
    UnknownTransaction,
    /// Only INVITE is cancelled by this helper (9.1 allows others, but they get a final
    /// response at once and CANCEL does nothing useful for them).
    NotInvite,
    /// A final response was received: nothing to cancel (9.1 SHOULD NOT).
    AlreadyFinal,
    /// A CANCEL exists already for this INVITE.
    AlreadyCancelled(ClientTxId),
    TooManyTransactions,
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelError::UnknownTransaction => f.write_str("unknown client transaction"),
            CancelError::NotInvite => f.write_str("not an INVITE transaction"),
            CancelError::AlreadyFinal => f.write_str("a final response was received"),
            CancelError::AlreadyCancelled(id) => write!(f, "already cancelled by {id}"),
            CancelError::TooManyTransactions => f.write_str("transaction limit reached"),
        }
    }
}

impl std::error::Error for CancelError {}

/// Counters for metrics. Monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub client_transactions: u64,
    pub server_transactions: u64,
    /// Requests and responses sent again by a timer or for an absorbed retransmission.
    pub retransmissions: u64,
    /// Retransmitted requests and responses that the layer absorbed.
    pub absorbed: u64,
    pub stray_responses: u64,
    /// ACKs passed to the TU.
    pub acks_passed_up: u64,
    pub timeouts: u64,
    /// New requests refused because the table was full (answered with 503 or not).
    pub dropped_overload: u64,
    /// Of those, the ones answered with a stateless 503.
    pub overload_answered: u64,
    pub dropped_malformed: u64,
}
