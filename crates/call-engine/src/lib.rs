//! # call-engine: the registrar and the stateful proxy of sipwarden, sans-IO
//!
//! The engine sits on top of the transaction layer ([`sip_transaction::TransactionLayer`],
//! which it owns) and below the shell that owns sockets and the clock. It never touches a
//! socket and never reads a clock:
//!
//! - inputs: [`Engine::handle_incoming`] (a parsed message and where it came from),
//!   [`Engine::handle_bytes`], [`Engine::handle_timeout`], [`Engine::handle_transport_error`],
//!   each with the current `Instant`;
//! - outputs: [`Engine::poll_output`] gives [`Output::Transmit`] (bytes, destination and flow,
//!   and the transaction to blame on a send failure) and [`Output::Event`] (logs, metrics);
//!   [`Engine::poll_timeout`] says when to call `handle_timeout` next.
//!
//! **Rule: after every input, drain `poll_output` until it returns `None`, then re-arm one
//! timer at `poll_timeout`.** As in the transaction layer, nothing is lost if the shell drains
//! late, but traces are only reproducible with a full drain after every input.
//!
//! Wall-clock time (binding expiry, the Date header) is derived from the `(Instant,
//! SystemTime)` pair given to [`Engine::new`] (and [`Engine::set_wall_clock`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Instant, SystemTime};
//! use call_engine::{Engine, EngineConfig, FlowId, Listener, Output, Source, Transport};
//!
//! let mut cfg = EngineConfig::default();
//! cfg.registrar.domains = vec!["example.com".into()];
//! cfg.identity.listeners = vec![Listener::new(Transport::Udp, "198.51.100.1:5060".parse().unwrap())];
//! let mut engine = Engine::new(cfg, Arc::new(store::MemoryStore::new()), Instant::now(), SystemTime::now());
//!
//! let options = "OPTIONS sip:198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bK1\r\n\
//!     To: <sip:198.51.100.1>\r\nFrom: <sip:carol@example.net>;tag=1\r\nCall-ID: a@b\r\n\
//!     CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
//! let source = Source { remote: "192.0.2.20:5060".parse().unwrap(), flow: FlowId(1), reliable: false };
//! engine.handle_bytes(Instant::now(), bytes::Bytes::from_static(options.as_bytes()), source);
//! // Drain after every input.
//! let mut answered = false;
//! while let Some(out) = engine.poll_output() {
//!     if let Output::Transmit { dest, bytes, .. } = out {
//!         assert_eq!(dest.remote, source.remote);
//!         answered = bytes.starts_with(b"SIP/2.0 200 OK");
//!     }
//! }
//! assert!(answered);
//! ```
//!
//! ## What it does
//! - **Registrar** (RFC 3261 10.3) for REGISTER whose Request-URI is one of
//!   [`RegistrarSettings::domains`] or this element: Require check (420), AOR canonicalised
//!   from To (404 outside our domains), `Contact: *` only alone with `Expires: 0` (400), expiry
//!   from the Contact parameter, the Expires header or the default, 423 with Min-Expires below
//!   the minimum, clamped to the maximum, 0 removes; Call-ID/CSeq order enforced by the store
//!   inside its transaction (500 when out of order); URI-equivalent contacts replace each
//!   other; q, Contact parameters, `+sip.instance`/`reg-id`, User-Agent kept; Path (RFC 3327)
//!   stored and echoed when the UA says `Supported: path` (stored but not echoed otherwise);
//!   the source address and flow stored, and whether the REGISTER came through NAT (its source
//!   differs from its top Via's sent-by; or the Contact names that sent-by and the source is
//!   elsewhere; or the Contact is a private address the source is not), which
//!   [`RegistrarSettings::contact_routing`] uses to send calls to the flow or to the Contact. The store update is durable
//!   before the 200, which lists every binding with its remaining expiry and a Date.
//! - **Stateful proxy** (RFC 3261 16): 16.3 validation in order (400 with the parse reason,
//!   416, 483 or a local 200 to OPTIONS, 482 with the 16.6-item-8 branch hash that tells
//!   loops from spirals, 420 with Unsupported), 16.4 (strict-router fix-up, our Route
//!   removed), 16.5 (location service for our domains: 480 for a known AOR without bindings,
//!   404 otherwise; foreign URIs forwarded as they are), 16.6 (Max-Forwards, Record-Route
//!   with `;lr`, Path as Route, strict next hops, our Via with the loop hash, next hop by
//!   Route or Request-URI through a [`Resolver`] for host names), forking in parallel or by
//!   q-groups ([`ForkMode`]), 16.7 (1xx but 100 and every 2xx forwarded at once, best final
//!   response: 6xx first, else the lowest class with 401/407/415/420/484 preferred, 503
//!   turned into 500, challenges of every 401/407 aggregated; pending branches CANCELled after
//!   a 2xx or 6xx), Timer C (CANCEL after a provisional, 408 otherwise), 408 when nothing
//!   answers, upstream CANCEL (200, branches CANCELled, their 487 goes up), ACK for 2xx and
//!   stray responses forwarded statelessly (16.11).
//! - **Local answers**: OPTIONS to us (no user part) gets 200 with Allow, Accept and
//!   Supported; an in-dialog request (To tag) to us that no B2BUA call owns gets 481; other
//!   methods to us get 405.
//! - **Calls between zones** ([`Engine::with_b2bua`], module `b2b`): an initial INVITE whose
//!   source is in one zone and whose first target's next hop is in another is handed to the
//!   B2BUA (crate `b2bua`: two dialogs, SDP through the media relay); the B2BUA sees every
//!   transaction event first, its timers run with the engine's, and its CDR events come out as
//!   [`Event::Call`]. [`Engine::media_timeout`] passes the relay's timeouts in.
//! - **Edge routing** ([`Engine::with_edge_routes`], module `route`): trunks and per-zone next
//!   hops. Calls from a trunk's source networks go to the next hop of another zone (the PBX);
//!   calls from a trunk's `from_zone` to numbers and foreign domains go to the trunk; calls to
//!   our users or numbers that the location service cannot place go to a trunk (numbers from
//!   its `from_zone`) or to another zone's next hop. All through the B2BUA. A trunk's requests
//!   are not challenged by the policy's `auth.require` ([`Engine::trunk_of`]). When zones
//!   nest (`wan` = `0.0.0.0/0` around `lan`), the most specific network decides.
//! - **Registration relay and NAT keep-alives** (module `regrelay`,
//!   [`RelaySettings`]): with [`RegistrarMode::Relay`], a REGISTER from outside the upstream
//!   registrar's zone is applied here with its flow and registered at the upstream (the PBX)
//!   under a Contact of ours, `sip:USER@LAN;swreg=TOKEN`, with our own Call-ID/CSeq; the phone
//!   gets the upstream's status and the short `nat_expires`; refreshes reach the upstream only
//!   when the contact set changed or its binding nears its end (throttling); lapsed, removed
//!   and dead bindings are removed upstream; the upstream state is stored under
//!   `swrelay:AOR`. Requests to a `swreg` Contact go to that binding's flow (B2BUA across
//!   zones); INVITEs from outside for users without a local binding go to the upstream.
//!   Bindings behind NAT get OPTIONS (UDP) or CRLF CRLF (streams) keep-alives; failures, or
//!   [`Engine::flow_closed`], remove them. [`Engine::relay_stats`] counts.
//!
//! ## Not here (yet)
//! Forking across zones, REFER, SRTP key policy on B2BUA calls, authentication (policy
//! layer), RFC 3263 DNS (a [`Resolver`] is supplied), recursion on 3xx, CRLF pong tracking
//! (RFC 5626 4.4.1), digest authentication towards the upstream registrar, double
//! Record-Route for transport or interface changes (RFC 5658), NAT rewriting of Contact in
//! responses.

mod b2b;
mod calls;
mod engine;
mod proxy;
mod registrar;
mod regrelay;
mod resolve;
mod route;
mod security;
mod settings;
mod util;

pub use b2b::ZoneNetworks;
pub use engine::{Engine, Event, Output, Stats, UserDirectory};
pub use regrelay::RelayStats;
pub use resolve::{NumericOnly, Resolver, StaticResolver};
pub use route::{EdgeRoutes, NextHop, Trunk};
pub use security::{describe_ban, SecurityConfig, SecurityStats, FLOOD_CAPACITY, MAX_PARKED};
pub use settings::{
    ContactRouting, EngineConfig, ForkMode, KeepaliveMethod, Listener, LocalIdentity,
    ProxySettings, RegistrarMode, RegistrarSettings, RelaySettings, Transport,
};

/// Re-exported: the B2BUA the engine drives for calls between zones.
pub use b2bua;
/// Re-exported so that the shell and tests name the same types.
pub use sip_transaction::{Destination, FlowId, Source, TxId};
