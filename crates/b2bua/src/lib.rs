//! # b2bua: the back-to-back user agent of sipwarden, sans-IO
//!
//! For a call that crosses zones (LAN PBX to ITSP trunk, remote user to PBX...) sipwarden is
//! not a proxy but two user agents: leg A is the dialog the caller created with us, leg B the
//! dialog we create towards the target. Each leg has its own Call-ID, From/To tags, CSeq
//! space, Via, Contact and route set, and every message of one leg is **built from scratch**
//! from the other leg's: nothing is forwarded by editing, so a header reaches the other side
//! only when this crate writes it. That is how topology hiding holds for headers nobody
//! thought of (tests: `lan_to_wan_full_call_hides_the_lan`, `wan_to_lan_full_call_hides_the_lan`
//! put LAN addresses, host names and the internal Call-ID in Via, Record-Route, Contact,
//! User-Agent, P-Asserted-Identity, Alert-Info, Call-Info, X- headers and SDP, run INVITE,
//! 180, 200, ACK, re-INVITEs both ways, INFO and BYE, and find none of them in any byte sent
//! to the WAN).
//!
//! ## How it is driven (and why it does not own a transaction layer)
//!
//! The B2BUA is a transaction user, like the proxy and the registrar of `call-engine`. It
//! does **not** own a `TransactionLayer`: the engine's single layer (one transaction table,
//! one timer heap, one `poll_output` for the shell) is passed in as `&mut TransactionLayer`
//! to every call. Requests and responses go out through `send_request`/`send_response`/
//! `send_stateless`/`cancel` of that layer, so they come out of the engine's existing
//! `pump()` as `Output::Transmit` with nothing new for the shell. A second layer would
//! have needed the shell or the engine to decide, before transaction matching, which layer a
//! datagram belongs to, which only the transaction layer itself can tell.
//!
//! - [`B2bua::start_call`]`(now, layer, server_tx, invite, source, zone_a, RouteDecision)`:
//!   an initial INVITE that the routing sent across zones. Leg B's INVITE goes out; on error
//!   the caller is answered (400, 420, 483, 488, 500, 503) and a [`StartError`] returned.
//! - [`B2bua::handle_tu_event`]`(now, layer, TuEvent) -> Option<TuEvent>`: every event of the
//!   layer is offered first; `None` means consumed (in-dialog requests and ACKs of our legs,
//!   CANCEL of our INVITEs, responses, timeouts and terminations of our transactions, 2xx
//!   retransmissions after the transaction ended), `Some(ev)` gives it back untouched.
//! - [`B2bua::handle_timeout`]`(now, layer)` and [`B2bua::poll_timeout`]: its own timers (2xx
//!   retransmission until ACK, reliable-provisional retransmission until PRACK, RFC 4028
//!   refresh and expiry), next to the layer's.
//! - [`B2bua::poll_event`]: [`B2buaEvent`] for CDRs (`CallStarted`, `CallAnswered`,
//!   `CallEnded` with an [`EndCause`], the status and the per-call history) and `Dropped`.
//! - [`B2bua::terminate`] (administrative) and [`B2bua::media_timeout`] (the relay's
//!   `MediaEvent::Timeout`): BYE both ways.
//! - Media through the [`MediaPort`] trait: `create_session(zone_a, zone_b)`,
//!   `offer(side, sdp)`, `answer(side, sdp)`, `release`. `Arc<media_relay::MediaRelay>`
//!   implements it (feature `media-relay`, on by default); [`FakeMediaPort`] is for tests.
//!
//! ## What the legs get
//!
//! - Leg B's INVITE: Request-URI and To = the routing target, a fresh Call-ID and From tag
//!   (SipHash of a counter under a process-random key: not derived from leg A's and not
//!   predictable from other legs' ids), CSeq 1, our Via (`sent-by` of zone B's
//!   [`ZoneIdentity`], new branch, `rport`), Max-Forwards decremented, our Contact,
//!   `Allow` and `Supported: 100rel, timer` of our own, From = the caller's user part at
//!   zone B's domain (display name kept), Session-Expires/Min-SE, P-Asserted-Identity (host
//!   mapped) and Privacy only when [`B2buaConfig::pass_asserted_identity`], User-Agent/Server
//!   only when [`B2buaConfig::pass_user_agent`], plus the headers named in
//!   [`B2buaConfig::pass_headers`]. A `Require` with anything but `100rel`/`timer` is
//!   answered 420. SDP goes through the media port; other bodies only when their type is in
//!   [`B2buaConfig::pass_body_types`].
//! - Responses B to A: status and reason phrase kept (from a trusted zone into an untrusted
//!   one only the standard phrase of the status: a PBX may write its name there); 1xx with our to-tag of leg A, leg A's
//!   Record-Route and our Contact; SDP through the media port (answer, or offer when the
//!   INVITE had none); 2xx retransmitted until A's ACK (13.3.1.4; no ACK in 64*T1: BYE both
//!   ways); 3xx towards an untrusted zone becomes 480 unless
//!   [`B2buaConfig::pass_redirects_to_untrusted`]; 422 keeps Min-SE, 420 Unsupported.
//! - Forking: every early dialog of leg B maps to A's one early dialog (one to-tag towards
//!   A; PRACK and the ACK go to the fork that spoke last); the first 2xx wins, a 2xx of
//!   another fork is ACKed and BYEd at once.
//! - ACK for 2xx is generated per leg. When leg B's 2xx carries an offer (offerless INVITE or
//!   re-INVITE), leg B's ACK waits for A's ACK and carries its answer.
//! - CANCEL from A: 200 to the CANCEL, 487 to A's INVITE at once, CANCEL on leg B (held by
//!   the layer until a provisional came); a 2xx that crosses the CANCEL is ACKed and BYEd.
//!   Timer B on leg B gives A a 408; a transport error 503.
//! - In-dialog requests both ways: re-INVITE and UPDATE (SDP through offer/answer), INFO,
//!   OPTIONS, MESSAGE, NOTIFY relayed with a new CSeq of the other leg; BYE answered 200 on
//!   its leg and sent on the other, media released; REFER: see "Call transfer"
//!   below; SUBSCRIBE gets 501.
//!   A second offer while one is in progress on the call gets 491 with Retry-After (glare);
//!   a 491 from the other leg is passed back. 481/408 to a relayed request ends the call
//!   (RFC 5057).
//! - PRACK (RFC 3262): a reliable 18x from B becomes a reliable 18x to A (our own RSeq,
//!   retransmitted until PRACK) when A supports 100rel, and A's PRACK becomes a PRACK on leg B
//!   with B's RSeq and CSeq in RAck; when A does not support it, sipwarden PRACKs leg B
//!   itself and A gets an unreliable 18x. PRACK bodies are not relayed.
//! - Session timers (RFC 4028), per leg: leg B as its 2xx says (refresher=uac or no
//!   Session-Expires: sipwarden refreshes; uas: B does); leg A: if A supports `timer` it is
//!   the refresher (`refresher=uac`, `Require: timer`), otherwise `refresher=uas` and
//!   sipwarden refreshes. Our refresh is an UPDATE when the peer allows it, else a re-INVITE
//!   with the SDP we last sent there. A relayed re-INVITE/UPDATE with a 2xx refreshes both
//!   legs. A leg without a refresh by interval - min(32 s, interval/3) ends the call: BYE
//!   both ways with `Reason: SIP;cause=408`.
//! - History: a bounded list ([`B2buaConfig::history_limit`]) of `(time, leg, direction,
//!   first line)` per call, live through [`B2bua::history`], final in `CallEnded`.
//! - Requests to a leg go to that leg's peer address (for leg A the source of the INVITE, for
//!   leg B the routing's next hop), updated to the source of each in-dialog request from it:
//!   symmetric signalling for peers behind NAT; no DNS.
//!
//! - Limits: history per call, the PRACK map (32), and the timer heap (stale entries are
//!   compacted) are bounded; transaction maps are cleaned on `Terminated`. No input path
//!   unwraps, panics or indexes (denied by lint outside tests).
//! - Transport per leg (module `transport`): a [`ZoneIdentity`] has one address per
//!   transport its listeners use; leg A speaks from the one its INVITE came on (UDP for a
//!   datagram, TLS or TCP for a stream as its Via says), leg B from the one its next hop asks
//!   for (`sips:` or `;transport=tls` in the target or top Route: TLS only; a leg whose peer
//!   we already talk to, in a transfer or Replaces: that leg's; else UDP for a datagram hop
//!   and TCP, else TLS, for a stream hop). Via sent-by, Contact and so the protocol of the
//!   leg's requests follow it. A SIPS dialog (sips Request-URI or top Route/Record-Route,
//!   RFC 3261 8.1.1.8, 12.1.1) gets a `sips:` Contact; in a zone without a TLS listener it is
//!   refused (416; a `;transport=tls` hop 503) with [`StartError::NoListener`].
//!
//! ## Call transfer (module `core::transfer`)
//! A REFER is handled as the zone of the call's *other* leg says ([`ZoneIdentity::refer`],
//! default [`ReferMode::Local`] for untrusted zones, [`ReferMode::Passthrough`] for trusted
//! ones; [`B2bua::set_refer_mode`] overrides it per call, for a trunk's own setting):
//! - local: 202 and NOTIFYs (message/sipfrag, 100 then the final status) to the referrer, a
//!   new leg to the Refer-To target in the referrer's zone (to the Refer-To host when it is
//!   a private or loopback IP address, else to the referrer's peer, i.e. the PBX that
//!   routes it) offered the other leg's session through the relay session the referrer had
//!   (same ports: the other side sees nothing), then the referrer is replaced by it and gets
//!   BYE once its final NOTIFY is answered (so that no proxy delivers the BYE first). The other leg is re-INVITEd only when it was on hold or the new leg is in another
//!   zone (keeping its SDP origin). Failure: final NOTIFY with the status, the call stays.
//!   The referrer may hang up after the 202. The target may ring 60 s.
//! - passthrough: the REFER goes on the other leg with Refer-To/Referred-By mapped to our
//!   domain of that zone; NOTIFYs come back with the referrer's REFER id and the sipfrag's
//!   status line only.
//! - Replaces (RFC 3891) in a Refer-To or an initial INVITE that names one of our dialogs is
//!   rewritten to the Call-ID and tags of that call's other leg, as its far end knows them,
//!   and the new leg goes to that far end ([`B2bua::replaces_route`]).
//! - Counters: [`B2bua::transfer_stats`].
//!
//! ## Not here (yet)
//! In-dialog SUBSCRIBE, a transfer to a target whose dialog is still early (Replaces with
//! early-only), transfer events in [`B2buaEvent`] (the CDR sees the history), UPDATE in
//! early dialogs, PRACK with SDP, digest authentication towards trunks, multipart bodies,
//! recursion on 3xx, SRTP key policy (`set_crypto` of the relay).
//!
//! ## Wiring into call-engine (for the lead)
//! 1. `Engine` gets `b2bua: Option<B2bua>` (built from the zones of the config: per zone its
//!    listener's advertised `host:port`, transport and a domain) and a media port.
//! 2. In `Engine::pump`, before `self.tu_event(now, ev)`: `let ev = match self.b2bua.as_mut()
//!    { Some(b) => match b.handle_tu_event(now, &mut self.layer, ev) { Some(ev) => ev, None =>
//!    continue }, None => ev };` and then drain `b.poll_event()` into engine events (CDR).
//!    The B2BUA must see in-dialog requests before the engine's "request to us" logic
//!    (OPTIONS or BYE to our Contact would otherwise get a local answer).
//! 3. In `proxy::on_request` for an initial INVITE (no To tag), after validation and target
//!    determination: when the routing decides the target's zone differs from the source's
//!    zone, call `b2bua.start_call(now, &mut self.layer, id, msg, source, zone_of_source,
//!    RouteDecision { target, next_hop, zone })` instead of forwarding; same zone: proxy as
//!    today.
//! 4. `Engine::handle_timeout` calls `b2bua.handle_timeout(now, &mut self.layer)` then
//!    `pump`; `Engine::poll_timeout` takes the min with `b2bua.poll_timeout()`.
//! 5. The shell passes the relay's `MediaEvent::Timeout { id }` to
//!    `b2bua.media_timeout(now, layer, MediaSessionId(id.0))` through an engine method.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod config;
mod core;
mod media;
mod msg;
mod transport;

pub use crate::config::{B2buaConfig, ReferMode, ZoneIdentity};
pub use crate::core::{
    B2bua, B2buaEvent, CallHandle, Direction, EndCause, HistoryEntry, LegSide, RouteDecision,
    StartError, TransferStats,
};
pub use crate::media::{FakeMediaPort, MediaPort, MediaPortError, MediaSessionId, MediaSide};
pub use crate::transport::{NoListener, SipTransport};

#[cfg(test)]
mod tests;
