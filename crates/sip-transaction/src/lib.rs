//! The SIP transaction layer of sipwarden: RFC 3261 section 17 with the RFC 6026 corrections
//! (Accepted states, timers L and M), as a sans-IO state machine in the style of quinn-proto and
//! str0m.
//!
//! The layer owns no socket, clock, task or thread. Messages and the current time go in
//! ([`TransactionLayer::handle_request`], [`TransactionLayer::handle_response`],
//! [`TransactionLayer::send_request`], [`TransactionLayer::send_response`],
//! [`TransactionLayer::handle_timeout`], ...); what to send and what to tell the transaction user
//! comes out of [`TransactionLayer::poll_output`], and [`TransactionLayer::poll_timeout`] says
//! when to call back.
//!
//! **Rule: after every input, drain `poll_output` until it returns `None`.** Then arm one
//! timer for `poll_timeout`. Nothing is lost if the shell drains late, but outputs would pile up
//! in memory, and traces are only reproducible when every input is followed by a full drain.
//!
//! ```
//! use std::time::Instant;
//! use sip_transaction::testkit::RequestBuilder;
//! use sip_transaction::{Config, Destination, Output, TransactionLayer, TuEvent};
//!
//! let mut layer = TransactionLayer::new(Config::default());
//! let now = Instant::now();
//! let dest = Destination { remote: "192.0.2.7:5060".parse().unwrap(), flow: None, reliable: false };
//! let branch = layer.new_branch();
//! let id = layer.send_request(now, RequestBuilder::new("OPTIONS", Some(&branch)).build(), dest).unwrap();
//! // Drain after every input.
//! while let Some(out) = layer.poll_output() {
//!     match out {
//!         Output::Transmit { dest, bytes, .. } => { /* socket.send_to(&bytes, dest.remote) */ let _ = (dest, bytes); }
//!         Output::Event(ev) => { /* hand to the TU */ let _ = ev; }
//!     }
//! }
//! // Nobody answers: Timer E retransmits until Timer F gives up (64*T1).
//! while let Some(t) = layer.poll_timeout() {
//!     layer.handle_timeout(t);
//!     while let Some(out) = layer.poll_output() {
//!         if let Output::Event(TuEvent::Timeout { tx, .. }) = out {
//!             assert_eq!(tx, sip_transaction::TxId::Client(id));
//!         }
//!     }
//! }
//! assert_eq!(layer.transaction_count(), 0);
//! ```
//!
//! Timers are data: one binary heap of `(deadline, transaction, timer, generation)` entries for
//! all transactions; cancelled timers are skipped by generation and compacted when they
//! outnumber the live ones.
//!
//! What the layer does not do, because it belongs elsewhere: the transport's Via handling
//! (`received`/`rport`, 18.2.1) and response routing (18.2.2: the layer answers on the flow and
//! address a request came from), 2xx retransmission and ACK for 2xx (the UA core, 13.3.1.4 and
//! 13.2.2.4), Timer C (proxies, 16.6), and answering CANCEL (the TU, 9.2: the layer reports
//! which transaction a CANCEL matches).

mod build;
mod config;
mod key;
mod layer;
pub mod testkit;
mod timer;
mod types;

pub use build::{ack_for_non_2xx, cancel_for, response_for};
pub use config::{Config, DEFAULT_MAX_TRANSACTIONS};
pub use layer::TransactionLayer;
pub use timer::Timer;
pub use types::{
    BadHeader, CancelError, ClientTxId, Destination, DropReason, FlowId, Output, ResponseError,
    SendError, ServerTxId, Source, Stats, TerminationReason, TuEvent, TxId, TxState,
};
