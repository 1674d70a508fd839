//! Call transfer across the B2BUA: REFER (RFC 3515) carried out locally or passed through,
//! Replaces (RFC 3891) mapped from one leg's dialog identifiers to the other's, Referred-By
//! (RFC 3892).
//!
//! ## Local mode ([`ReferMode::Local`], the default towards untrusted zones)
//! A REFER on leg R (the referrer, e.g. the LAN PBX) of a call whose other leg O goes to an
//! ITSP that must not see the transfer:
//! 1. R gets `202 Accepted` and a `NOTIFY` (`Event: refer`, `Subscription-State: active`,
//!    `message/sipfrag` `SIP/2.0 100 Trying`).
//! 2. A new leg R' is called: an INVITE to the Refer-To URI (without its headers) in R's zone,
//!    sent to the Refer-To host when it is a private or loopback IP address, else to R's
//!    peer (the PBX that sent the REFER routes the target). Its offer is O's last SDP
//!    (direction reset to sendrecv) through the media port from O's side: the relay hands
//!    out the ports R had, so nothing changes for O. Referred-By is the REFER's (or R's identity).
//! 3. R' answers: its answer goes to the relay as the answer of R's side (the relay now sends
//!    O's media to R'), R' is ACKed and takes R's place in the call, R gets the final NOTIFY
//!    (`SIP/2.0 200 OK`, `terminated`) and, once that NOTIFY has its answer (or its
//!    transaction gave up), a BYE: sent together, a multi-process proxy could deliver the BYE
//!    first (RFC 5589 lets the transferor hang up itself; its BYE crossing ours gets a 481,
//!    which is harmless). O is re-INVITEd only
//!    when it has to be: when R had put it on hold (our last SDP to O was sendonly/inactive),
//!    or when R' is in another zone and so in a new media session. That re-INVITE carries
//!    sipwarden's addresses only and keeps O's SDP origin (same session id, version + 1).
//! 4. R' fails (busy, no answer in 60 s, timeout): R gets the failure in the final NOTIFY and
//!    the call stays as it was. The referrer may hang up after the 202 (blind transfer
//!    phones do): its BYE is answered and the transfer goes on; if R' then fails, O is hung
//!    up.
//!
//! Attended transfer: a `Replaces` in the Refer-To URI is decoded. When it names a dialog of
//! another call of ours (the referrer's consultation call went through sipwarden too), the
//! new leg goes where that call's *other* leg goes, with that leg's Call-ID and tags in
//! Replaces (to-tag = the target's tag, from-tag = ours: how the target knows its dialog).
//! Otherwise (a dialog inside the referrer's zone) Replaces goes to the target as it is.
//!
//! ## Passthrough mode
//! The REFER is sent on O with `Refer-To` rewritten into O's zone: the target URI's host
//! becomes our domain there (the transferee calls sipwarden, whose routing brings the call
//! back), or, when Replaces names a call of ours whose other leg is in O's zone, that leg's
//! remote target with Replaces mapped to that leg's identifiers. A Replaces that O's zone
//! cannot reach is dropped (it would leak a LAN Call-ID). Referred-By is mapped like From.
//! O's NOTIFYs come back to R with `Subscription-State`, the `id` of R's REFER and a
//! sipfrag reduced to its status line (a phrase from a trusted zone into an untrusted one is
//! the standard one).
//!
//! ## INVITE with Replaces
//! An initial INVITE whose Replaces names one of our dialogs (Call-ID, our tag, the peer's
//! tag) is started towards the far end of that call's other leg, with Replaces mapped to that
//! leg ([`B2bua::replaces_route`] tells the engine where it will go). A Replaces for a
//! dialog we do not own is not passed on.

use super::flow::{standard_phrase, unreachable_dest};
use super::*;
use sip_message::headers::{ReferTo, ReferredBy, Replaces};
use sip_message::TypedHeader;

use crate::transport::SipTransport;

/// How long the target of a local transfer may ring before sipwarden gives up.
const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// Subscription duration announced in our NOTIFYs (the subscription ends with the outcome).
const NOTIFY_EXPIRES: u32 = 60;
/// Passthrough REFERs remembered per call for the `id` of their NOTIFYs.
const REFER_MAP_LIMIT: usize = 8;

/// Transfers seen by the B2BUA (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    pub local_started: u64,
    pub local_succeeded: u64,
    pub local_failed: u64,
    pub passed_through: u64,
}

/// A local transfer in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    /// The leg that sent the REFER: the new leg takes its place.
    pub(super) referrer: LegSide,
    /// The new leg, until it answers.
    leg: Leg,
    invite: Option<ClientTxId>,
    /// `id` for the NOTIFYs (the REFER's CSeq) when the REFER was not the first in its dialog.
    event_id: Option<u32>,
    /// A media session of the new leg's own, when it is in another zone than the referrer.
    media: Option<MediaSessionId>,
    /// The referrer hung up after the 202: no NOTIFY, and a failure ends the call.
    referrer_gone: bool,
    pub(super) gen: u64,
}

/// The BYE to a transferor, built while its dialog was still the call's, held until the
/// final NOTIFY has its answer.
#[derive(Debug)]
pub(super) struct HeldBye {
    call: u64,
    leg: LegSide,
    bye: Message,
    dest: Destination,
}

/// A Replaces that names one of our dialogs, rewritten for the far end of the other leg.
#[derive(Debug, Clone)]
pub(super) struct MappedReplaces {
    /// The Replaces value for that far end.
    pub(super) header: String,
    /// Where that far end is.
    pub(super) route: RouteDecision,
    route_set: Vec<String>,
    remote_uri: String,
    /// The call that owns the replaced dialog.
    call: u64,
    /// The transport of the leg whose far end that is (the new leg goes to the same peer).
    pub(super) transport: SipTransport,
}

/// The Refer-To of a REFER, decoded.
#[derive(Debug, Clone)]
struct ReferTarget {
    /// The URI without its headers component.
    uri: String,
    /// The `Replaces` URI header, unescaped.
    replaces: Option<String>,
    /// `method=` of the URI, when not INVITE.
    other_method: bool,
    /// An IP literal host: where the new leg goes.
    literal: Option<std::net::SocketAddr>,
}

fn refer_target(req: &Message) -> Option<ReferTarget> {
    let na = req.typed::<ReferTo>()?.ok()?;
    let raw = na.uri.as_str();
    let Some(sip) = na.uri.sip() else {
        return Some(ReferTarget {
            uri: raw.to_owned(),
            replaces: None,
            other_method: false,
            literal: None,
        });
    };
    let uri = match sip.headers {
        Some(h) => raw
            .get(..raw.len().saturating_sub(h.len() + 1))
            .unwrap_or(raw),
        None => raw,
    };
    let replaces = sip
        .header_pairs()
        .find(|(n, _)| n.eq_ignore_ascii_case("replaces"))
        .map(|(_, v)| String::from_utf8_lossy(&sip_message::unescape(v)).into_owned());
    let other_method = sip
        .method()
        .is_some_and(|m| !m.eq_ignore_ascii_case("INVITE"));
    let default_port = match sip.scheme {
        sip_message::Scheme::Sips => 5061,
        _ => 5060,
    };
    let literal = sip
        .host
        .ip()
        .map(|ip| std::net::SocketAddr::new(ip, sip.port.unwrap_or(default_port)));
    Some(ReferTarget {
        uri: uri.to_owned(),
        replaces,
        other_method,
        literal,
    })
}

/// Private, loopback, link-local or unique-local: an address that does not route on the
/// Internet.
fn is_local(ip: std::net::IpAddr) -> bool {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v) => v.is_private() || v.is_loopback() || v.is_link_local(),
        std::net::IpAddr::V6(v) => {
            let s = v.segments().first().copied().unwrap_or(0);
            v.is_loopback() || (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

/// `disp<uri>` split into its display part and URI.
fn split_name_addr(na: &str) -> (&str, &str) {
    match (na.find('<'), na.rfind('>')) {
        (Some(s), Some(e)) if s < e => (na.get(..s).unwrap_or(""), na.get(s + 1..e).unwrap_or(na)),
        _ => ("", na),
    }
}

/// The URI of a header value that is a name-addr or an addr-spec.
fn uri_of(v: &str) -> &str {
    match (v.find('<'), v.rfind('>')) {
        (Some(s), Some(e)) if s < e => v.get(s + 1..e).unwrap_or(v),
        _ => v.split(';').next().unwrap_or(v).trim(),
    }
}

/// Percent-encodes everything but RFC 3261 `unreserved` (for a URI header value).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 2);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether an SDP puts the peer it is sent to on hold (we send, it only receives or nothing).
fn is_held(sdp: &[u8]) -> bool {
    String::from_utf8_lossy(sdp).lines().any(|l| {
        let l = l.trim();
        l == "a=sendonly" || l == "a=inactive" || l == "c=IN IP4 0.0.0.0"
    })
}

/// The SDP with every direction attribute set to sendrecv (a transfer target is offered the
/// session as it will be, not as the held call was).
fn sendrecv(sdp: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(sdp);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_end();
        if matches!(t, "a=sendonly" | "a=recvonly" | "a=inactive") {
            out.push_str("a=sendrecv");
        } else {
            out.push_str(t);
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// `new` with the origin (`o=` user and session id) of `prev` and its version + 1: for the
/// peer the session goes on, whoever is behind sipwarden now (RFC 3264 8).
fn pin_origin(prev: Option<&[u8]>, new: &[u8]) -> Vec<u8> {
    let Some(prev) = prev else {
        return new.to_vec();
    };
    let prev = String::from_utf8_lossy(prev);
    let Some(o) = prev.lines().find_map(|l| l.trim_end().strip_prefix("o=")) else {
        return new.to_vec();
    };
    let f: Vec<&str> = o.split(' ').collect();
    let (Some(user), Some(sess), Some(ver)) = (f.first(), f.get(1), f.get(2)) else {
        return new.to_vec();
    };
    let ver = ver.parse::<u64>().unwrap_or(0).wrapping_add(1);
    let text = String::from_utf8_lossy(new);
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        let t = line.trim_end();
        match t.strip_prefix("o=") {
            Some(rest) => {
                let tail: Vec<&str> = rest.split(' ').skip(3).collect();
                out.push_str(&format!("o={user} {sess} {ver} {}", tail.join(" ")));
            }
            None => out.push_str(t),
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The status and phrase of a sipfrag's first line (`SIP/2.0 200 OK`).
fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, phrase) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok()?;
    (100..700)
        .contains(&code)
        .then(|| (code, phrase.to_owned()))
}

impl B2bua {
    /// The trunk's REFER setting for one call (it overrides the zone's
    /// [`ZoneIdentity::refer`]). False when the call is unknown.
    pub fn set_refer_mode(&mut self, call: CallHandle, mode: ReferMode) -> bool {
        match self.calls.get_mut(&call.0) {
            Some(c) => {
                c.refer_mode = Some(mode);
                true
            }
            None => false,
        }
    }

    pub fn transfer_stats(&self) -> TransferStats {
        self.transfer_stats
    }

    /// Whether a local transfer is in progress on `call`.
    pub fn transfer_pending(&self, call: CallHandle) -> bool {
        self.calls
            .get(&call.0)
            .is_some_and(|c| c.transfer.is_some())
    }

    /// For an initial INVITE with a `Replaces` naming one of our dialogs: where
    /// [`B2bua::start_call`] will send it (the far end of that call's other leg), whatever
    /// route it is given. The engine asks this before routing an INVITE whose Request-URI is
    /// sipwarden itself (the Contact of the dialog to replace).
    pub fn replaces_route(&self, req: &Message) -> Option<RouteDecision> {
        self.replaces_for_invite(req).map(|r| r.route)
    }

    /// Our call and leg whose dialog is (Call-ID, our tag, the peer's tag).
    fn find_dialog(&self, call_id: &str, ours: &str, theirs: &str) -> Option<(u64, LegSide)> {
        let (call, side) = *self.dialogs.get(&(call_id.to_owned(), ours.to_owned()))?;
        let l = self.calls.get(&call)?.leg(side);
        (l.remote_tag.as_deref() == Some(theirs)).then_some((call, side))
    }

    /// The Replaces for the far end of the leg opposite `side` of `call`.
    fn other_leg_replaces(&self, call: u64, side: LegSide) -> Option<MappedReplaces> {
        let c = self.calls.get(&call)?;
        if c.transfer.is_some() {
            return None;
        }
        let x = c.leg(side.other());
        let their_tag = x.remote_tag.as_deref()?;
        if !x.confirmed {
            return None;
        }
        let zone = self.cfg.zones.get(x.zone)?;
        Some(MappedReplaces {
            header: format!("{};to-tag={their_tag};from-tag={}", x.call_id, x.local_tag),
            route: RouteDecision {
                target: x.remote_target.clone(),
                next_hop: x.peer,
                zone: zone.name.clone(),
            },
            route_set: x.route_set.clone(),
            remote_uri: x.remote_uri.clone(),
            call,
            transport: x.me.transport,
        })
    }

    /// A Replaces (value, unescaped) that names a dialog of ours, as (call, side).
    fn replaced_dialog(&self, value: &str) -> Option<(u64, LegSide)> {
        let r = Replaces::parse_value(value).ok()?;
        // Seen from the sender: to-tag is the tag of the party it is talking to (ours).
        self.find_dialog(r.call_id, r.to_tag, r.from_tag)
            .or_else(|| self.find_dialog(r.call_id, r.from_tag, r.to_tag))
    }

    pub(super) fn replaces_for_invite(&self, req: &Message) -> Option<MappedReplaces> {
        let v = req.header(HeaderName::Replaces)?;
        let v = std::str::from_utf8(v).ok()?;
        let (call, side) = self.replaced_dialog(v.trim())?;
        self.other_leg_replaces(call, side)
    }

    /// SDP about to be sent on `leg`, with the leg's origin kept when it is pinned.
    pub(super) fn sdp_for(&self, call: u64, leg: LegSide, sdp: Vec<u8>) -> Bytes {
        match self.calls.get(&call).map(|c| c.leg(leg)) {
            Some(l) if l.origin_pinned => Bytes::from(pin_origin(l.last_sdp_out.as_deref(), &sdp)),
            _ => Bytes::from(sdp),
        }
    }

    pub(super) fn note_sdp_in(&mut self, call: u64, leg: LegSide, sdp: &[u8]) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.leg_mut(leg).last_sdp_in = Some(Bytes::copy_from_slice(sdp));
        }
    }

    /// In-dialog requests that a transfer changes: the referrer's BYE during a local transfer,
    /// NOTIFYs of a passed-through REFER, requests from the remaining leg while nobody is on
    /// the other side. True when `req` was handled here.
    pub(super) fn transfer_intercepts(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        id: ServerTxId,
        req: &Message,
    ) -> bool {
        let method = req.method();
        let refer_notify = method == Some(Method::Notify)
            && req
                .header(HeaderName::Event)
                .is_some_and(|e| e.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"refer")));
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(t) = c.transfer.as_mut() else {
            if refer_notify && c.leg(leg.other()).confirmed {
                self.relay_refer_notify(now, tl, call, leg, id, req);
                return true;
            }
            return false;
        };
        if leg == t.referrer && method == Some(Method::Bye) {
            // A blind-transfer phone hangs up after the 202: the transfer goes on without it.
            t.referrer_gone = true;
            let l = c.leg_mut(leg);
            l.confirmed = false;
            l.timer = None;
            l.pending_2xx = None;
            let key = (l.call_id.clone(), l.local_tag.clone());
            self.reply(now, tl, call, leg, id, req, 200, "OK");
            self.dialogs.remove(&key);
            return true;
        }
        if leg != t.referrer
            && t.referrer_gone
            && !matches!(
                method,
                Some(Method::Bye | Method::Invite | Method::Update | Method::Prack)
            )
        {
            // Nobody to relay to until the new leg answers; nothing here needs an answer
            // from the other side.
            self.reply(now, tl, call, leg, id, req, 200, "OK");
            return true;
        }
        false
    }

    pub(super) fn on_refer(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        id: ServerTxId,
        req: &Message,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !c.leg(leg).confirmed || !c.leg(leg.other()).confirmed {
            self.reply(now, tl, call, leg, id, req, 403, "Call Not Established");
            return;
        }
        if c.transfer.is_some() || c.busy || c.deferred_ack.is_some() {
            let mut b = response_head(req, 491, b"Request Pending", None);
            b.header("Retry-After", "2");
            if let Some(m) = b.finish(None) {
                self.send_response(now, tl, call, leg, id, m);
            }
            return;
        }
        let Some(target) = refer_target(req) else {
            self.reply(now, tl, call, leg, id, req, 400, "Bad Refer-To");
            return;
        };
        if target.other_method {
            self.reply(now, tl, call, leg, id, req, 403, "Only INVITE Is Referred");
            return;
        }
        let l = c.leg_mut(leg);
        l.refers = l.refers.saturating_add(1);
        let cseq = msg::cseq(req).map(|(n, _)| n).unwrap_or(0);
        let event_id = (l.refers > 1).then_some(cseq);
        let mode = match c.refer_mode {
            Some(m) => m,
            None => {
                let other = c.leg(leg.other()).zone;
                self.cfg
                    .zones
                    .get(other)
                    .map_or(ReferMode::Local, |z| z.refer_mode())
            }
        };
        match mode {
            ReferMode::Local => self.local_transfer(now, tl, call, leg, id, req, target, event_id),
            ReferMode::Passthrough => self.relay_refer(now, tl, call, leg, id, req, target),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Local mode
    // ----------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn local_transfer(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        r: LegSide,
        id: ServerTxId,
        req: &Message,
        target: ReferTarget,
        event_id: Option<u32>,
    ) {
        let o = r.other();
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let rleg = c.leg(r);
        let Some(zone_r) = self.cfg.zones.get(rleg.zone).cloned() else {
            return;
        };
        // Where the new leg goes, and the Replaces it carries.
        // An IP literal is where the target is, as long as it is a local address: a public
        // one would get a request with this zone's Via, Contact and SDP straight from here
        // (the referrer's PBX routes those, and calls that leave the zone come back through
        // the B2BUA and its topology hiding).
        let default_hop = match target.literal.filter(|a| is_local(a.ip())) {
            Some(a) if !rleg.peer.reliable => Destination {
                remote: a,
                flow: None,
                reliable: false,
            },
            _ => rleg.peer,
        };
        let mut route = RouteDecision {
            target: target.uri.clone(),
            next_hop: default_hop,
            zone: zone_r.name.clone(),
        };
        let mut route_set = Vec::new();
        let mut to_uri = name_addr("", &target.uri);
        let mut replaces = None;
        // The referrer's own peer (its PBX) is reached the way the referrer's leg is.
        let mut known = (route.next_hop == rleg.peer).then_some(rleg.me.transport);
        if let Some(v) = &target.replaces {
            if Replaces::parse_value(v).is_err() {
                self.reply(now, tl, call, r, id, req, 400, "Bad Replaces");
                return;
            }
            match self.replaced_dialog(v) {
                Some((c2, _)) if c2 == call => {
                    self.reply(now, tl, call, r, id, req, 403, "Cannot Replace This Call");
                    return;
                }
                Some((c2, side)) => match self.other_leg_replaces(c2, side) {
                    Some(m) => {
                        route = m.route.clone();
                        route_set = m.route_set.clone();
                        to_uri = m.remote_uri.clone();
                        known = Some(m.transport);
                        replaces = Some(m.header);
                        let _ = m.call;
                    }
                    None => {
                        self.reply(now, tl, call, r, id, req, 481, "Replaced Dialog Not Found");
                        return;
                    }
                },
                // A dialog inside the referrer's zone: the target knows it as written.
                None => replaces = Some(v.clone()),
            }
        }
        let Some(zi) = self.cfg.zone(&route.zone) else {
            self.reply(now, tl, call, r, id, req, 500, "Server Internal Error");
            return;
        };
        let Some(zone_n) = self.cfg.zones.get(zi).cloned() else {
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (rleg, oleg) = (c.leg(r), c.leg(o));
        let Some(o_sdp) = oleg.last_sdp_in.clone() else {
            self.reply(now, tl, call, r, id, req, 488, "No Session To Transfer");
            return;
        };
        let same_zone = zi == rleg.zone;
        let (disp, uri) = split_name_addr(&rleg.local_uri);
        let local_uri = if same_zone {
            rleg.local_uri.clone()
        } else {
            name_addr(disp, &msg::map_host(uri, zone_n.caller_domain()))
        };
        let referred_by = match req.typed::<ReferredBy>() {
            Some(Ok(rb)) => rb.uri.as_str().to_owned(),
            _ => split_name_addr(&rleg.remote_uri).1.to_owned(),
        };
        let referred_by = if same_zone {
            referred_by
        } else {
            msg::map_host(&referred_by, zone_n.caller_domain())
        };
        let (session, o_zone) = (c.media, oleg.zone);
        let me = match transport::leg_b(&zone_n, &route.target, &route_set, route.next_hop, known) {
            Ok(me) => me,
            Err(e) => {
                self.drop_event(Some(call), format!("transfer: {e}"));
                let (status, reason) = e.status();
                self.reply(now, tl, call, r, id, req, status, reason);
                return;
            }
        };

        // The offer: O's session through the relay from O's side. Same zone: the relay
        // session R had (R's ports, so O sees nothing); another zone: a session of its own.
        let offer_in = sendrecv(&o_sdp);
        let (new_media, offer) = if same_zone {
            let r = match session {
                Some(m) => self.media.offer(m, o.media(), &offer_in),
                None => Err(MediaPortError::Unavailable("no media session".into())),
            };
            (None, r)
        } else {
            let oz = self
                .cfg
                .zones
                .get(o_zone)
                .map(|z| z.name.clone())
                .unwrap_or_default();
            let (za, zb) = match r {
                LegSide::A => (zone_n.name.clone(), oz),
                LegSide::B => (oz, zone_n.name.clone()),
            };
            match self.media.create_session(&za, &zb) {
                Ok(m) => {
                    let off = self.media.offer(m, o.media(), &offer_in);
                    if off.is_err() {
                        self.media.release(m);
                    }
                    (Some(m), off)
                }
                Err(e) => (None, Err(e)),
            }
        };
        let offer = match offer {
            Ok(o) => Bytes::from(o),
            Err(e) => {
                self.drop_event(Some(call), format!("transfer: {e}"));
                self.reply(now, tl, call, r, id, req, 488, "Not Acceptable Here");
                return;
            }
        };

        let leg = Leg {
            zone: zi,
            me,
            call_id: format!("{}{}", self.ids.token(), self.ids.token()),
            local_tag: self.ids.token(),
            remote_tag: None,
            local_uri,
            remote_uri: to_uri,
            local_cseq: 1,
            remote_cseq: None,
            remote_target: route.target.clone(),
            route_set,
            peer: route.next_hop,
            confirmed: false,
            peer_timer: false,
            peer_100rel: false,
            peer_update: false,
            last_sdp_out: Some(offer.clone()),
            last_sdp_in: None,
            refers: 0,
            origin_pinned: false,
            rseq_next: 1,
            pending_2xx: None,
            pending_rel: None,
            timer: None,
            last_ack: None,
        };
        let branch = tl.new_branch();
        let mut b = leg_request_head(&leg, "INVITE", 1, &branch, 70);
        b.header("Contact", leg.me.contact());
        b.header("Allow", ALLOW);
        // No 100rel: nobody on the other side would PRACK for it.
        b.header("Supported", "timer");
        if let Some(se) = self.cfg.session_expires {
            let min_se = self.cfg.min_se.as_secs();
            b.header("Session-Expires", se.as_secs().max(min_se).to_string());
            b.header("Min-SE", min_se.to_string());
        }
        b.header("Referred-By", format!("<{referred_by}>"));
        if let Some(rep) = &replaces {
            b.header("Replaces", rep);
            b.header("Require", "replaces");
        }
        let Some(invite) = b.finish(Some(("application/sdp", &offer))) else {
            if let Some(m) = new_media {
                self.media.release(m);
            }
            self.reply(now, tl, call, r, id, req, 500, "Server Internal Error");
            return;
        };
        // The referrer hears first: 202, then the subscription's first NOTIFY.
        let mut b = response_head(req, 202, b"Accepted", Some(&zone_tag(self, call, r)));
        b.header("Contact", self.contact(call, r));
        if let Some(m) = b.finish(None) {
            self.send_response(now, tl, call, r, id, m);
        }
        self.refer_notify(now, tl, call, r, event_id, 100, "Trying", false);
        self.transfer_stats.local_started += 1;
        self.record(call, now, r, Direction::Out, &invite);
        let cid = match tl.send_request(now, invite, leg.peer) {
            Ok(cid) => cid,
            Err(e) => {
                if let Some(m) = new_media {
                    self.media.release(m);
                }
                self.transfer_stats.local_failed += 1;
                self.drop_event(Some(call), format!("transfer INVITE not sent: {e}"));
                self.refer_notify(now, tl, call, r, event_id, 503, "Service Unavailable", true);
                return;
            }
        };
        self.clients.insert(
            cid,
            ClientCtx {
                call,
                leg: r,
                kind: ClientKind::TransferInvite,
                dest: leg.peer,
            },
        );
        let gen = self.next_gen();
        if let Some(c) = self.calls.get_mut(&call) {
            c.transfer = Some(Transfer {
                referrer: r,
                leg,
                invite: Some(cid),
                event_id,
                media: new_media,
                referrer_gone: false,
                gen,
            });
        }
        self.arm(now + RING_TIMEOUT, call, r, TimerKind::TransferRing, gen);
    }

    /// A NOTIFY for a REFER on `leg`: the sipfrag `SIP/2.0 status reason`.
    #[allow(clippy::too_many_arguments)]
    fn refer_notify(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        event_id: Option<u32>,
        status: u16,
        reason: &str,
        terminated: bool,
    ) -> Option<ClientTxId> {
        let (mut b, _) = self.new_request(tl, call, leg, "NOTIFY")?;
        b.header("Contact", self.contact(call, leg));
        b.header(
            "Event",
            match event_id {
                Some(n) => format!("refer;id={n}"),
                None => "refer".to_owned(),
            },
        );
        b.header(
            "Subscription-State",
            if terminated {
                "terminated;reason=noresource".to_owned()
            } else {
                format!("active;expires={NOTIFY_EXPIRES}")
            },
        );
        let frag = format!("SIP/2.0 {status} {reason}\r\n");
        let m = b.finish(Some(("message/sipfrag;version=2.0", frag.as_bytes())))?;
        self.send_request(now, tl, call, leg, m, ClientKind::Teardown)
    }

    /// The final NOTIFY whose answer (or failure, or end) `ev` is, when a BYE waits for it.
    pub(super) fn held_bye_released_by(&self, ev: &TuEvent) -> Option<ClientTxId> {
        if self.held_byes.is_empty() {
            return None;
        }
        let id = match ev {
            TuEvent::Response { id, msg, .. } if msg.status().is_some_and(|s| s >= 200) => *id,
            TuEvent::Timeout {
                tx: TxId::Client(c),
                ..
            }
            | TuEvent::TransportError {
                tx: TxId::Client(c),
            }
            | TuEvent::Terminated {
                tx: TxId::Client(c),
                ..
            } => *c,
            _ => return None,
        };
        self.held_byes.contains_key(&id).then_some(id)
    }

    /// The final NOTIFY of a transfer has its answer (any final response, a timeout, a
    /// transport error or the end of its transaction): the transferor's BYE goes now.
    pub(super) fn release_held_bye(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        notify: ClientTxId,
    ) {
        let Some(h) = self.held_byes.remove(&notify) else {
            return;
        };
        self.record(h.call, now, h.leg, Direction::Out, &h.bye);
        match tl.send_request(now, h.bye, h.dest) {
            Ok(id) => {
                self.clients.insert(
                    id,
                    ClientCtx {
                        call: h.call,
                        leg: h.leg,
                        kind: ClientKind::Teardown,
                        dest: h.dest,
                    },
                );
            }
            Err(e) => self.drop_event(Some(h.call), format!("BYE to the transferor not sent: {e}")),
        }
    }

    pub(super) fn on_transfer_response(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ClientTxId,
        ctx: ClientCtx,
        resp: Message,
    ) {
        let call = ctx.call;
        let status = resp.status().unwrap_or(500);
        let current = self
            .calls
            .get(&call)
            .and_then(|c| c.transfer.as_ref())
            .is_some_and(|t| t.invite == Some(id));
        if !current {
            if (200..300).contains(&status) {
                let same = self.calls.get(&call).is_some_and(|c| {
                    let l = c.leg(ctx.leg);
                    l.confirmed
                        && msg::call_id(&resp).as_deref() == Some(l.call_id.as_str())
                        && l.remote_tag == msg::tag_of(&resp, HeaderName::To)
                });
                if same {
                    // The 2xx that completed the transfer, again: our ACK was lost.
                    self.resend_ack(now, tl, call, ctx.leg, &resp);
                } else {
                    let inv = tl.client_request(id).cloned();
                    self.kill_dialog(now, tl, call, inv, &resp, ctx.dest);
                }
            }
            return;
        }
        if status < 200 {
            return;
        }
        if (200..300).contains(&status) {
            self.transfer_answered(now, tl, id, ctx, &resp);
        } else {
            let phrase = String::from_utf8_lossy(resp.reason_phrase().unwrap_or(b"")).into_owned();
            self.transfer_failed(now, tl, call, Some(id), status, &phrase);
        }
    }

    /// The transfer did not happen: the referrer learns why, the call stays (or ends, when
    /// the referrer has hung up already).
    pub(super) fn transfer_failed(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        id: Option<ClientTxId>,
        status: u16,
        reason: &str,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if id.is_some() && c.transfer.as_ref().map(|t| t.invite) != Some(id) {
            return;
        }
        let Some(t) = c.transfer.take() else {
            return;
        };
        if let Some(m) = t.media {
            self.media.release(m);
        }
        self.transfer_stats.local_failed += 1;
        self.drop_event(
            Some(call),
            format!("transfer to {} failed: {status}", t.leg.remote_target),
        );
        if t.referrer_gone {
            self.end_call(
                now,
                tl,
                call,
                EndCause::Hangup(t.referrer),
                None,
                Some(t.referrer),
            );
            return;
        }
        let reason = if reason.trim().is_empty() {
            standard_phrase(status)
        } else {
            reason
        };
        self.refer_notify(now, tl, call, t.referrer, t.event_id, status, reason, true);
    }

    fn transfer_answered(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ClientTxId,
        ctx: ClientCtx,
        resp: &Message,
    ) {
        let call = ctx.call;
        let sdp = msg::sdp_body(resp);
        let session = self.calls.get(&call).and_then(|c| {
            c.transfer
                .as_ref()
                .and_then(|t| t.media)
                .or(c.media)
                .zip(c.transfer.as_ref().map(|t| t.referrer))
        });
        // The new leg's answer goes to the relay as the answer of the referrer's side.
        let for_o = match (sdp.as_ref(), session) {
            (Some(s), Some((m, r))) => self
                .media
                .answer(m, r.media(), s)
                .map_err(|e| e.to_string()),
            (None, _) => Err("2xx without an answer".to_owned()),
            (_, None) => Err("no media session".to_owned()),
        };
        let for_o = match for_o {
            Ok(s) => Bytes::from(s),
            Err(e) => {
                self.drop_event(Some(call), format!("transfer: {e}"));
                let inv = tl.client_request(id).cloned();
                self.kill_dialog(now, tl, call, inv, resp, ctx.dest);
                self.transfer_failed(now, tl, call, Some(id), 488, "Not Acceptable Here");
                return;
            }
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(mut t) = c.transfer.take() else {
            return;
        };
        let r = t.referrer;
        let o = r.other();
        let n = &mut t.leg;
        n.remote_tag = msg::tag_of(resp, HeaderName::To);
        if let Some(target) = msg::contact_uri(resp) {
            n.remote_target = target;
        }
        n.route_set = msg::record_routes(resp).into_iter().rev().collect();
        n.peer_timer = msg::has_tag(resp, HeaderName::Supported, "timer")
            || msg::has_tag(resp, HeaderName::Require, "timer");
        n.peer_update = resp.header(HeaderName::Allow).is_some_and(|v| {
            String::from_utf8_lossy(v)
                .to_ascii_uppercase()
                .contains("UPDATE")
        });
        n.confirmed = true;
        n.last_sdp_in = sdp.clone();

        // The referrer: the outcome, then BYE (it is out of the call). The BYE waits for the
        // NOTIFY's answer: sent together, they may overtake each other in a PBX that forwards
        // with several processes, and a referrer that gets the BYE first answers the NOTIFY
        // 481 and may report the transfer as failed (seen on the testbed through Kamailio).
        if !t.referrer_gone {
            let notify = self.refer_notify(now, tl, call, r, t.event_id, 200, "OK", true);
            let dest = self.calls.get(&call).map(|c| c.leg(r).peer);
            let bye = self
                .new_request(tl, call, r, "BYE")
                .and_then(|(b, _)| b.finish(None));
            match (notify, bye, dest) {
                (Some(n), Some(bye), Some(dest)) => {
                    self.held_byes.insert(
                        n,
                        HeldBye {
                            call,
                            leg: r,
                            bye,
                            dest,
                        },
                    );
                }
                (None, Some(m), _) => {
                    self.send_request(now, tl, call, r, m, ClientKind::Teardown);
                }
                _ => {}
            }
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let new_key = (t.leg.call_id.clone(), t.leg.local_tag.clone());
        let old = std::mem::replace(c.leg_mut(r), t.leg);
        let old_media = match t.media {
            Some(m) => c.media.replace(m),
            None => None,
        };
        let held = c.leg(o).last_sdp_out.as_deref().is_some_and(is_held);
        c.leg_mut(o).origin_pinned = true;
        self.dialogs.remove(&(old.call_id, old.local_tag));
        self.dialogs.insert(new_key, (call, r));
        if let Some(m) = old_media {
            self.media.release(m);
        }
        let cseq = msg::cseq(resp).map(|(n, _)| n).unwrap_or(1);
        self.send_ack(now, tl, call, r, cseq, None);

        // Session timer of the new leg, as its 2xx says.
        let b_se = msg::session_expires(resp);
        let interval = b_se
            .map(|(d, _)| d)
            .or(self.cfg.session_expires.map(|d| d.as_secs() as u32));
        if let Some(iv) = interval {
            let we_refresh = !matches!(b_se, Some((_, Some(false))));
            self.set_session_timer(now, call, r, iv, we_refresh);
        }
        self.transfer_stats.local_succeeded += 1;
        // O hears the new leg without a word unless it was on hold or the ports changed.
        if t.media.is_some() || held {
            self.rebridge(now, tl, call, o, &for_o);
        }
    }

    /// A re-INVITE of `leg` with `sdp` (our offer after a transfer), keeping its SDP origin.
    fn rebridge(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        sdp: &[u8],
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.busy || c.deferred_ack.is_some() {
            self.drop_event(
                Some(call),
                "transfer: re-INVITE skipped, an offer is in progress".into(),
            );
            return;
        }
        let l = c.leg(leg);
        let body = Bytes::from(pin_origin(l.last_sdp_out.as_deref(), sdp));
        let timer = l.timer;
        let Some((mut b, _)) = self.new_request(tl, call, leg, "INVITE") else {
            return;
        };
        b.header("Allow", ALLOW);
        b.header("Supported", "timer");
        if let Some(t) = timer {
            let who = if t.we_refresh { "uac" } else { "uas" };
            b.header("Session-Expires", format!("{};refresher={who}", t.interval));
        }
        let Some(m) = b.finish(Some(("application/sdp", &body))) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.busy = true;
            c.leg_mut(leg).last_sdp_out = Some(body);
        }
        if self
            .send_request(now, tl, call, leg, m, ClientKind::Rebridge)
            .is_none()
        {
            if let Some(c) = self.calls.get_mut(&call) {
                c.busy = false;
            }
        }
    }

    pub(super) fn on_rebridge_response(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        ctx: ClientCtx,
        resp: Message,
    ) {
        let status = resp.status().unwrap_or(500);
        if status < 200 {
            return;
        }
        let (call, leg) = (ctx.call, ctx.leg);
        if let Some(c) = self.calls.get_mut(&call) {
            c.busy = false;
        }
        if (200..300).contains(&status) {
            let cseq = msg::cseq(&resp).map(|(n, _)| n).unwrap_or(0);
            let acked = self
                .calls
                .get(&call)
                .and_then(|c| c.leg(leg).last_ack.as_ref())
                .is_some_and(|(n, _)| *n == cseq);
            if acked {
                self.resend_ack(now, tl, call, leg, &resp);
                return;
            }
            self.send_ack(now, tl, call, leg, cseq, None);
            if let Some(s) = msg::sdp_body(&resp) {
                self.note_sdp_in(call, leg, &s);
                if let Some(m) = self.calls.get(&call).and_then(|c| c.media) {
                    // The relay learns O's (possibly new) address; the result would be for
                    // the new leg, which has its answer already.
                    if let Err(e) = self.media.answer(m, leg.media(), &s) {
                        self.drop_event(Some(call), format!("transfer: {e}"));
                    }
                }
            }
            if let Some(t) = self.calls.get(&call).and_then(|c| c.leg(leg).timer) {
                self.set_session_timer(now, call, leg, t.interval, t.we_refresh);
            }
        } else if matches!(status, 481 | 408) {
            self.end_call(now, tl, call, EndCause::DialogLost(leg), None, Some(leg));
        } else {
            self.drop_event(
                Some(call),
                format!("transfer: re-INVITE after the transfer got {status}"),
            );
        }
    }

    pub(super) fn transfer_ring_timeout(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        t: TimerEntry,
    ) {
        let inv = self
            .calls
            .get(&t.call)
            .and_then(|c| c.transfer.as_ref())
            .filter(|x| x.gen == t.gen)
            .and_then(|x| x.invite);
        if let Some(inv) = inv {
            // Its 487 (or Timer B) ends the transfer as a failure.
            if let Ok(cid) = tl.cancel(now, inv) {
                self.clients.insert(
                    cid,
                    ClientCtx {
                        call: t.call,
                        leg: t.leg,
                        kind: ClientKind::Teardown,
                        dest: unreachable_dest(),
                    },
                );
            }
        }
    }

    /// The call ends: a transfer in progress is cancelled.
    pub(super) fn abandon_transfer(&mut self, now: Instant, tl: &mut TransactionLayer, call: u64) {
        let Some(t) = self.calls.get_mut(&call).and_then(|c| c.transfer.take()) else {
            return;
        };
        if let Some(m) = t.media {
            self.media.release(m);
        }
        if let Some(inv) = t.invite {
            if let Ok(cid) = tl.cancel(now, inv) {
                self.clients.insert(
                    cid,
                    ClientCtx {
                        call,
                        leg: t.referrer,
                        kind: ClientKind::Teardown,
                        dest: unreachable_dest(),
                    },
                );
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Passthrough mode
    // ----------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn relay_refer(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        from: LegSide,
        id: ServerTxId,
        req: &Message,
        target: ReferTarget,
    ) {
        let to = from.other();
        let Some(zone_to) = self.zone(call, to) else {
            return;
        };
        let to_zone_idx = self.calls.get(&call).map(|c| c.leg(to).zone);
        let domain = zone_to.caller_domain().to_owned();
        let mapped = target
            .replaces
            .as_deref()
            .and_then(|v| self.replaced_dialog(v))
            .filter(|(c2, _)| *c2 != call)
            .and_then(|(c2, side)| self.other_leg_replaces(c2, side))
            .filter(|m| self.cfg.zone(&m.route.zone) == to_zone_idx);
        let refer_to = match mapped {
            // The target's dialog is one of ours in that zone: O may replace it directly.
            Some(m) => format!("<{}?Replaces={}>", m.route.target, escape(&m.header)),
            None => format!("<{}>", msg::map_host(&target.uri, &domain)),
        };
        let referred_by = req
            .header(HeaderName::ReferredBy)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .map(|v| msg::map_host(uri_of(&v), &domain));
        let Some((mut b, cseq)) = self.new_request(tl, call, to, "REFER") else {
            return;
        };
        b.header("Contact", self.contact(call, to));
        b.header("Refer-To", refer_to);
        if let Some(rb) = referred_by {
            b.header("Referred-By", format!("<{rb}>"));
        }
        let Some(m) = b.finish(None) else {
            self.reply(now, tl, call, from, id, req, 500, "Server Internal Error");
            return;
        };
        let orig = msg::cseq(req).map(|(n, _)| n).unwrap_or(0);
        if let Some(c) = self.calls.get_mut(&call) {
            if c.refer_map.len() >= REFER_MAP_LIMIT {
                c.refer_map.remove(0);
            }
            c.refer_map.push((to, cseq, orig));
        }
        let kind = ClientKind::Relay {
            server: id,
            offer: false,
        };
        if self.send_request(now, tl, call, to, m, kind).is_some() {
            self.servers.insert(id, ServerCtx { call, leg: from });
            self.transfer_stats.passed_through += 1;
        } else {
            self.reply(now, tl, call, from, id, req, 500, "Server Internal Error");
        }
    }

    /// A NOTIFY for a passed-through REFER, from `from`: to the referrer, with the id of its
    /// REFER and the sipfrag's status line only.
    fn relay_refer_notify(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        from: LegSide,
        id: ServerTxId,
        req: &Message,
    ) {
        let to = from.other();
        if !self.calls.contains_key(&call) {
            return;
        }
        let their_id = req
            .typed::<sip_message::headers::Event>()
            .and_then(|e| e.ok())
            .and_then(|e| e.id.and_then(|i| i.parse::<u32>().ok()));
        let orig = self.calls.get(&call).and_then(|c| {
            let mut on_from = c.refer_map.iter().filter(|(l, _, _)| *l == from);
            match their_id {
                Some(n) => on_from.clone().find(|(_, ours, _)| *ours == n).map(|e| e.2),
                None => on_from.next_back().map(|e| e.2),
            }
        });
        let event = match (their_id, orig) {
            (Some(_), Some(n)) => format!("refer;id={n}"),
            _ => "refer".to_owned(),
        };
        let trusted = |l: LegSide| self.zone(call, l).is_some_and(|z| z.trusted);
        let frag = sipfrag_status(req.body()).map(|(code, phrase)| {
            let phrase = if trusted(from) && !trusted(to) || phrase.is_empty() {
                standard_phrase(code).to_owned()
            } else {
                phrase
            };
            format!("SIP/2.0 {code} {phrase}\r\n")
        });
        let state = req
            .header(HeaderName::SubscriptionState)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "terminated".to_owned());
        let Some((mut b, _)) = self.new_request(tl, call, to, "NOTIFY") else {
            return;
        };
        b.header("Contact", self.contact(call, to));
        b.header("Event", event);
        b.header("Subscription-State", state);
        let body = frag
            .as_ref()
            .map(|f| ("message/sipfrag;version=2.0", f.as_bytes()));
        let Some(m) = b.finish(body) else {
            self.reply(now, tl, call, from, id, req, 500, "Server Internal Error");
            return;
        };
        let kind = ClientKind::Relay {
            server: id,
            offer: false,
        };
        if self.send_request(now, tl, call, to, m, kind).is_some() {
            self.servers.insert(id, ServerCtx { call, leg: from });
        } else {
            self.reply(now, tl, call, from, id, req, 500, "Server Internal Error");
        }
    }
}

/// Our tag on `leg` (the 202's To tag).
fn zone_tag(b: &B2bua, call: u64, leg: LegSide) -> String {
    b.calls
        .get(&call)
        .map(|c| c.leg(leg).local_tag.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn origin_is_pinned_and_versioned() {
        let prev = b"v=0\r\no=- 77 4 IN IP4 198.51.100.1\r\ns=-\r\n";
        let new = b"v=0\r\no=phone 12 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\n";
        let out = String::from_utf8(pin_origin(Some(prev), new)).unwrap();
        assert!(out.contains("o=- 77 5 IN IP4 198.51.100.1\r\n"), "{out}");
        assert!(out.contains("c=IN IP4 198.51.100.1"));
        assert_eq!(pin_origin(None, new), new.to_vec());
    }

    #[test]
    fn hold_and_sendrecv() {
        assert!(is_held(b"v=0\r\na=sendonly\r\n"));
        assert!(is_held(b"v=0\r\na=inactive\r\n"));
        assert!(!is_held(b"v=0\r\na=recvonly\r\n"));
        let s =
            String::from_utf8(sendrecv(b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=recvonly\r\n")).unwrap();
        assert!(s.contains("a=sendrecv") && !s.contains("recvonly"), "{s}");
    }

    #[test]
    fn refer_to_with_replaces_is_decoded() {
        let m = Message::parse(Bytes::from_static(
            b"REFER sip:a@b SIP/2.0\r\nRefer-To: <sip:2002@192.168.10.10:5070?Replaces=c1%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let t = refer_target(&m).unwrap();
        assert_eq!(t.uri, "sip:2002@192.168.10.10:5070");
        assert_eq!(t.replaces.as_deref(), Some("c1@h;to-tag=t1;from-tag=f1"));
        assert_eq!(t.literal, Some("192.168.10.10:5070".parse().unwrap()));
        assert!(!t.other_method);
        let r = Replaces::parse_value(t.replaces.as_deref().unwrap()).unwrap();
        assert_eq!((r.call_id, r.to_tag, r.from_tag), ("c1@h", "t1", "f1"));
        assert_eq!(escape("a@b;c=d"), "a%40b%3Bc%3Dd");
    }

    #[test]
    fn only_local_literals_are_dialled_directly() {
        assert!(is_local("192.168.10.22".parse().unwrap()));
        assert!(is_local("127.0.1.3".parse().unwrap()));
        assert!(is_local("fd00::5".parse().unwrap()));
        assert!(!is_local("203.0.113.66".parse().unwrap()));
        assert!(!is_local("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn sipfrag_status_line() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 486 Busy Here\r\nVia: x\r\n"),
            Some((486, "Busy Here".into()))
        );
        assert_eq!(sipfrag_status(b"garbage"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 99 x"), None);
    }
}
