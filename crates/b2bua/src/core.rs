//! The B2BUA core: calls, their two legs, transaction bookkeeping and timers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{HeaderName, Message, Method};
use sip_transaction::{
    ClientTxId, Destination, SendError, ServerTxId, Source, TransactionLayer, TuEvent, TxId,
};

use crate::config::{B2buaConfig, ReferMode};
use crate::media::{MediaPort, MediaPortError, MediaSessionId, MediaSide};
use crate::msg::{self, Builder};
use crate::transport::{self, LegAddress, NoListener};

mod flow;
mod transfer;

pub use transfer::TransferStats;

/// A call of the B2BUA (two legs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// One of the two legs: A is the caller's (the dialog of the initial INVITE we received),
/// B the callee's (the dialog we created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegSide {
    A,
    B,
}

impl LegSide {
    pub fn other(self) -> LegSide {
        match self {
            LegSide::A => LegSide::B,
            LegSide::B => LegSide::A,
        }
    }

    fn media(self) -> MediaSide {
        match self {
            LegSide::A => MediaSide::A,
            LegSide::B => MediaSide::B,
        }
    }
}

/// Where the routing sent the call: leg B goes to `target` (its Request-URI and To) through
/// `next_hop`, in `zone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub target: String,
    pub next_hop: Destination,
    pub zone: String,
}

/// Received by sipwarden or sent by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// One line of a call's ladder diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Instant,
    pub leg: LegSide,
    pub direction: Direction,
    pub first_line: String,
}

/// Why a call ended (for the CDR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// A BYE from this leg.
    Hangup(LegSide),
    /// The caller cancelled before an answer.
    Cancelled,
    /// Leg B answered with a final failure (the status is in the event).
    Rejected,
    /// Nobody answered leg B's INVITE (Timer B) or the transport failed.
    NoAnswer,
    /// The session timer of this leg expired without a refresh (RFC 4028 10).
    SessionTimerExpired(LegSide),
    /// The ACK for our 2xx never came on this leg (RFC 3261 13.3.1.4).
    NoAck(LegSide),
    /// An in-dialog request got 481/408: the peer has lost the dialog (RFC 5057).
    DialogLost(LegSide),
    /// The media relay refused or reported a timeout.
    Media(String),
    /// Asked by the engine ([`B2bua::terminate`]).
    Administrative(String),
}

/// What the B2BUA reports: CDR material and problems. Messages go out through the
/// transaction layer, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum B2buaEvent {
    CallStarted {
        call: CallHandle,
        at: Instant,
        zone_a: String,
        zone_b: String,
        /// The caller's From URI and the target, as leg A named them (internal data).
        from: String,
        to: String,
        call_id_a: String,
        call_id_b: String,
    },
    CallAnswered {
        call: CallHandle,
        at: Instant,
    },
    CallEnded {
        call: CallHandle,
        at: Instant,
        cause: EndCause,
        /// The final status leg A got, when the call was not answered.
        status: Option<u16>,
        history: Vec<HistoryEntry>,
    },
    /// Something was not done; the reason says what.
    Dropped {
        call: Option<CallHandle>,
        reason: String,
    },
}

/// Why [`B2bua::start_call`] refused. The caller got a final response already (when one could
/// be built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("unknown zone {0:?}")]
    UnknownZone(String),
    #[error("not an initial INVITE: {0}")]
    NotInitialInvite(&'static str),
    #[error("too many hops")]
    TooManyHops,
    #[error("unsupported extension {0}")]
    Unsupported(String),
    #[error("media: {0}")]
    Media(#[from] MediaPortError),
    #[error("leg B INVITE could not be built")]
    Build,
    #[error("leg B INVITE not sent: {0}")]
    Send(SendError),
    /// A leg needs a transport its zone has no listener for (a sips: dialog without TLS).
    #[error("{0}")]
    NoListener(#[from] NoListener),
}

/// The extensions the B2BUA itself implements, the only ones it lets a peer require.
const OUR_EXTENSIONS: &[&str] = &["100rel", "timer"];
/// REFER is ours to carry out (or pass on) whatever the other side supports.
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, MESSAGE, NOTIFY, REFER";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// Retransmit our 2xx on a leg until its ACK (13.3.1.4).
    Retx2xx,
    /// Retransmit a reliable provisional on leg A until PRACK (RFC 3262 3).
    RelRetx,
    /// Our turn to refresh the session on a leg (RFC 4028 10).
    Refresh,
    /// No refresh came on a leg (RFC 4028 10).
    Expiry,
    /// The target of a local transfer rang too long: CANCEL it.
    TransferRing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    call: u64,
    leg: LegSide,
    kind: TimerKind,
    gen: u64,
}

#[derive(Debug, Clone)]
struct Pending2xx {
    server: ServerTxId,
    msg: Message,
    cseq: u32,
    interval: Duration,
    give_up: Instant,
    gen: u64,
}

#[derive(Debug, Clone)]
struct PendingRel {
    server: ServerTxId,
    msg: Message,
    rseq: u32,
    interval: Duration,
    give_up: Instant,
    gen: u64,
}

#[derive(Debug, Clone, Copy)]
struct SessionTimer {
    interval: u32,
    we_refresh: bool,
    gen: u64,
}

#[derive(Debug)]
struct Leg {
    zone: usize,
    /// Our Via sent-by and Contact on this leg, of the leg's own transport.
    me: LegAddress,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// `"display" <uri>` without tag.
    local_uri: String,
    remote_uri: String,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: String,
    /// Route header values, in the order they are written.
    route_set: Vec<String>,
    peer: Destination,
    confirmed: bool,
    peer_timer: bool,
    peer_100rel: bool,
    peer_update: bool,
    last_sdp_out: Option<Bytes>,
    /// The last SDP this leg's peer sent (as it sent it): a local transfer offers it, through
    /// the relay, to the new leg.
    last_sdp_in: Option<Bytes>,
    /// REFERs received on this leg (the second one's NOTIFYs carry `id`, RFC 3515 2.4.6).
    refers: u32,
    /// The party behind the other leg changed (a transfer): SDP sent here keeps this leg's
    /// origin line (session id, version + 1), which the new party's SDP does not have.
    origin_pinned: bool,
    rseq_next: u32,
    pending_2xx: Option<Pending2xx>,
    pending_rel: Option<PendingRel>,
    timer: Option<SessionTimer>,
    /// Our last ACK on this leg and its CSeq, resent for a retransmitted 2xx.
    last_ack: Option<(u32, Message)>,
}

/// An ACK on leg `leg` that waits for the other leg's ACK (the 2xx carried an offer).
#[derive(Debug, Clone, Copy)]
struct DeferredAck {
    leg: LegSide,
    cseq: u32,
}

#[derive(Debug)]
struct Call {
    legs: [Leg; 2],
    media: Option<MediaSessionId>,
    a_invite: ServerTxId,
    a_invite_req: Message,
    a_final: bool,
    b_invite: Option<ClientTxId>,
    /// An INVITE transaction (or an offer) in progress: a second one gets 491.
    busy: bool,
    deferred_ack: Option<DeferredAck>,
    /// Reliable provisionals relayed to A: (A's RSeq, B's RSeq, B's INVITE CSeq).
    rel_map: Vec<(u32, u32, u32)>,
    history: VecDeque<HistoryEntry>,
    answered: bool,
    /// A local transfer in progress (at most one per call).
    transfer: Option<transfer::Transfer>,
    /// The trunk's REFER setting for this call ([`B2bua::set_refer_mode`]); `None`: the zone's.
    refer_mode: Option<ReferMode>,
    /// Passed-through REFERs: (leg we sent it on, our CSeq, the referrer's CSeq), so that
    /// NOTIFYs name the referrer's REFER.
    refer_map: Vec<(LegSide, u32, u32)>,
}

impl Call {
    fn leg(&self, s: LegSide) -> &Leg {
        match s {
            LegSide::A => &self.legs[0],
            LegSide::B => &self.legs[1],
        }
    }
    fn leg_mut(&mut self, s: LegSide) -> &mut Leg {
        match s {
            LegSide::A => &mut self.legs[0],
            LegSide::B => &mut self.legs[1],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    /// Leg B's initial INVITE.
    Initial { offer: bool },
    /// A request relayed from the other leg's server transaction.
    Relay { server: ServerTxId, offer: bool },
    /// Our session refresh.
    Refresh,
    /// Our PRACK for a reliable provisional that A does not see reliably.
    LocalPrack,
    /// BYE or CANCEL of a teardown: responses are absorbed.
    Teardown,
    /// The INVITE of a local transfer's new leg.
    TransferInvite,
    /// Our re-INVITE of the remaining leg after a local transfer (new ports or off hold).
    Rebridge,
}

#[derive(Debug, Clone, Copy)]
struct ClientCtx {
    call: u64,
    leg: LegSide,
    kind: ClientKind,
    /// Where the request went (for the ACK and BYE of an unwanted 2xx).
    dest: Destination,
}

#[derive(Debug, Clone, Copy)]
struct ServerCtx {
    call: u64,
    leg: LegSide,
}

/// The back-to-back user agent. See the crate documentation for how it is driven.
pub struct B2bua {
    cfg: B2buaConfig,
    media: Box<dyn MediaPort + Send>,
    calls: HashMap<u64, Call>,
    next_call: u64,
    /// (Call-ID, our tag) -> call and leg.
    dialogs: HashMap<(String, String), (u64, LegSide)>,
    clients: HashMap<ClientTxId, ClientCtx>,
    servers: HashMap<ServerTxId, ServerCtx>,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerEntry)>>,
    seq: u64,
    events: VecDeque<B2buaEvent>,
    ids: IdGen,
    /// Leg B dialogs (call, to-tag) closed with BYE while their INVITE transaction lives:
    /// a retransmitted 2xx gets an ACK, not another BYE.
    killed: std::collections::HashSet<(u64, String)>,
    transfer_stats: TransferStats,
    /// BYEs to transferors, each sent when its final NOTIFY (the key) has its answer.
    held_byes: HashMap<ClientTxId, transfer::HeldBye>,
}

/// Call-IDs and tags of our legs. They must not be predictable from the ones a peer has seen
/// (whoever can guess a dialog's Call-ID and tags can end it), so they come from SipHash, a
/// keyed PRF, over a counter: with process-random keys by default, with a fixed key from
/// [`B2buaConfig::id_seed`] when traces must be reproducible.
struct IdGen {
    state: std::collections::hash_map::RandomState,
    seed: Option<u64>,
    counter: u64,
}

impl IdGen {
    fn new(seed: Option<u64>) -> IdGen {
        IdGen {
            state: std::collections::hash_map::RandomState::new(),
            seed,
            counter: 0,
        }
    }

    fn word(&mut self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        self.counter += 1;
        let mut h = match self.seed {
            // DefaultHasher::new() has fixed keys: the seed makes it ours.
            Some(_) => std::collections::hash_map::DefaultHasher::new(),
            None => self.state.build_hasher(),
        };
        h.write_u64(self.seed.unwrap_or(0));
        h.write_u64(self.counter);
        h.finish()
    }

    /// 128 bits, hex.
    fn token(&mut self) -> String {
        format!("{:016x}{:016x}", self.word(), self.word())
    }
}

impl std::fmt::Debug for B2bua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("calls", &self.calls.len())
            .field("clients", &self.clients.len())
            .field("servers", &self.servers.len())
            .finish()
    }
}

fn with_tag(uri: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{uri};tag={t}"),
        None => uri.to_owned(),
    }
}

fn name_addr(disp: &str, uri: &str) -> String {
    format!("{disp}<{uri}>")
}

/// RFC 4028 10: the session expires at interval minus min(32 s, interval/3).
fn expiry_after(interval: u32) -> Duration {
    let i = u64::from(interval);
    Duration::from_secs(i - (i / 3).min(32))
}

impl B2bua {
    pub fn new(cfg: B2buaConfig, media: Box<dyn MediaPort + Send>) -> B2bua {
        let cfg_seed = cfg.id_seed;
        B2bua {
            cfg,
            media,
            calls: HashMap::new(),
            next_call: 1,
            dialogs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            events: VecDeque::new(),
            ids: IdGen::new(cfg_seed),
            killed: std::collections::HashSet::new(),
            transfer_stats: TransferStats::default(),
            held_byes: HashMap::new(),
        }
    }

    pub fn config(&self) -> &B2buaConfig {
        &self.cfg
    }

    /// The media port (tests inspect their fake through it).
    pub fn media_mut(&mut self) -> &mut (dyn MediaPort + Send) {
        self.media.as_mut()
    }

    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The live calls.
    pub fn calls(&self) -> Vec<CallHandle> {
        let mut v: Vec<_> = self.calls.keys().map(|k| CallHandle(*k)).collect();
        v.sort();
        v
    }

    /// The message history of a live call (an ended call's is in its `CallEnded`).
    pub fn history(&self, call: CallHandle) -> Option<Vec<HistoryEntry>> {
        self.calls
            .get(&call.0)
            .map(|c| c.history.iter().cloned().collect())
    }

    /// Whether this transaction belongs to the B2BUA.
    pub fn owns(&self, tx: TxId) -> bool {
        match tx {
            TxId::Client(c) => self.clients.contains_key(&c),
            TxId::Server(s) => self.servers.contains_key(&s),
        }
    }

    /// Whether an in-dialog request (or ACK) belongs to one of our legs.
    pub fn owns_request(&self, m: &Message) -> bool {
        self.dialog_of(m).is_some()
    }

    pub fn poll_event(&mut self) -> Option<B2buaEvent> {
        self.events.pop_front()
    }

    /// When [`B2bua::handle_timeout`] must run next (the layer has its own timers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    fn dialog_of(&self, m: &Message) -> Option<(u64, LegSide)> {
        let cid = msg::call_id(m)?;
        let tag = msg::tag_of(m, HeaderName::To)?;
        self.dialogs.get(&(cid, tag)).copied()
    }

    fn arm(&mut self, at: Instant, call: u64, leg: LegSide, kind: TimerKind, gen: u64) {
        // Every refresh re-arms the session timers and leaves the old entries behind until
        // their deadline; a peer refreshing in a loop must not grow the heap without bound.
        if self.timers.len() > 64 + 16 * self.calls.len() {
            let old = std::mem::take(&mut self.timers);
            self.timers = old
                .into_iter()
                .filter(|Reverse((_, _, t))| self.is_live(t))
                .collect();
        }
        self.seq += 1;
        self.timers.push(Reverse((
            at,
            self.seq,
            TimerEntry {
                call,
                leg,
                kind,
                gen,
            },
        )));
    }

    /// Whether a timer entry still means something (its generation is current).
    fn is_live(&self, t: &TimerEntry) -> bool {
        let Some(c) = self.calls.get(&t.call) else {
            return false;
        };
        let l = c.leg(t.leg);
        match t.kind {
            TimerKind::Retx2xx => l.pending_2xx.as_ref().is_some_and(|p| p.gen == t.gen),
            TimerKind::RelRetx => l.pending_rel.as_ref().is_some_and(|p| p.gen == t.gen),
            TimerKind::Refresh | TimerKind::Expiry => l.timer.is_some_and(|s| s.gen == t.gen),
            TimerKind::TransferRing => c.transfer.as_ref().is_some_and(|x| x.gen == t.gen),
        }
    }

    /// Timer entries held (live and stale), for tests and metrics.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    fn next_gen(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn drop_event(&mut self, call: Option<u64>, reason: String) {
        self.events.push_back(B2buaEvent::Dropped {
            call: call.map(CallHandle),
            reason,
        });
    }

    fn record(&mut self, call: u64, at: Instant, leg: LegSide, dir: Direction, m: &Message) {
        let limit = self.cfg.history_limit;
        if let Some(c) = self.calls.get_mut(&call) {
            if limit == 0 {
                return;
            }
            while c.history.len() >= limit {
                c.history.pop_front();
            }
            c.history.push_back(HistoryEntry {
                at,
                leg,
                direction: dir,
                first_line: msg::first_line(m),
            });
        }
    }

    // ----------------------------------------------------------------------------------------
    // Starting a call
    // ----------------------------------------------------------------------------------------

    /// An initial INVITE that the routing sent across zones: `id` is its server transaction
    /// in `tl`, `zone` the zone it came from. Leg B's INVITE is sent through `tl`. On error
    /// the caller has been answered (4xx/5xx) when a response could be built.
    #[allow(clippy::too_many_arguments)]
    pub fn start_call(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ServerTxId,
        req: Message,
        source: Source,
        zone: &str,
        route: RouteDecision,
    ) -> Result<CallHandle, StartError> {
        match self.try_start(now, tl, id, &req, source, zone, route) {
            Ok(h) => Ok(h),
            Err(e) => {
                let (status, reason, extra): (u16, &str, Option<(&str, String)>) = match &e {
                    StartError::UnknownZone(_) | StartError::Build | StartError::Send(_) => {
                        (500, "Server Internal Error", None)
                    }
                    StartError::NotInitialInvite(_) => (400, "Bad Request", None),
                    StartError::TooManyHops => (483, "Too Many Hops", None),
                    StartError::Unsupported(t) => {
                        (420, "Bad Extension", Some(("Unsupported", t.clone())))
                    }
                    StartError::Media(MediaPortError::NotAcceptable(_)) => {
                        (488, "Not Acceptable Here", None)
                    }
                    StartError::Media(MediaPortError::Unavailable(_)) => {
                        (503, "Service Unavailable", None)
                    }
                    StartError::NoListener(n) => {
                        let (s, r) = n.status();
                        (s, r, None)
                    }
                };
                let tag = tl.new_tag();
                let mut b = response_head(&req, status, reason.as_bytes(), Some(&tag));
                if let Some((n, v)) = extra {
                    b.header(n, v);
                }
                if let Some(m) = b.finish(None) {
                    let _ = tl.send_response(now, id, m);
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn try_start(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ServerTxId,
        req: &Message,
        source: Source,
        zone: &str,
        route: RouteDecision,
    ) -> Result<CallHandle, StartError> {
        // An INVITE with Replaces for one of our dialogs takes over the far end of that
        // dialog's other leg: that is where leg B must go, with that leg's identifiers.
        let replaces = self.replaces_for_invite(req);
        let route = match &replaces {
            Some(r) => r.route.clone(),
            None => route,
        };
        let za = self
            .cfg
            .zone(zone)
            .ok_or_else(|| StartError::UnknownZone(zone.to_owned()))?;
        let zb = self
            .cfg
            .zone(&route.zone)
            .ok_or_else(|| StartError::UnknownZone(route.zone.clone()))?;
        if req.method() != Some(Method::Invite) {
            return Err(StartError::NotInitialInvite("not an INVITE"));
        }
        if msg::tag_of(req, HeaderName::To).is_some() {
            return Err(StartError::NotInitialInvite("To has a tag"));
        }
        let mf = match req.max_forwards() {
            Some(Ok(m)) => m.0,
            None => 70,
            Some(Err(_)) => return Err(StartError::NotInitialInvite("bad Max-Forwards")),
        };
        if mf == 0 {
            return Err(StartError::TooManyHops);
        }
        let unsupported: Vec<String> = msg::option_tags(req, HeaderName::Require)
            .into_iter()
            .filter(|t| !OUR_EXTENSIONS.contains(&t.as_str()))
            .filter(|t| !(replaces.is_some() && t == "replaces"))
            .collect();
        if !unsupported.is_empty() {
            return Err(StartError::Unsupported(unsupported.join(", ")));
        }
        let call_id_a = msg::call_id(req).ok_or(StartError::NotInitialInvite("Call-ID"))?;
        let from_tag =
            msg::tag_of(req, HeaderName::From).ok_or(StartError::NotInitialInvite("From tag"))?;
        let (from_disp, from_uri) =
            msg::addr_of(req, HeaderName::From).ok_or(StartError::NotInitialInvite("From"))?;
        let (to_disp, to_uri) =
            msg::addr_of(req, HeaderName::To).ok_or(StartError::NotInitialInvite("To"))?;
        let (cseq_a, _) = msg::cseq(req).ok_or(StartError::NotInitialInvite("CSeq"))?;
        let contact_a = msg::contact_uri(req).unwrap_or_else(|| from_uri.clone());
        let supports = |t: &str| {
            msg::has_tag(req, HeaderName::Supported, t) || msg::has_tag(req, HeaderName::Require, t)
        };
        let a_update = req.header(HeaderName::Allow).is_some_and(|v| {
            String::from_utf8_lossy(v)
                .to_ascii_uppercase()
                .contains("UPDATE")
        });

        let zone_a = self.cfg.zones.get(za).cloned().ok_or(StartError::Build)?;
        let zone_b = self.cfg.zones.get(zb).cloned().ok_or(StartError::Build)?;
        // Each leg speaks from the zone's listener of its own transport.
        let me_a = transport::leg_a(&zone_a, req, source)?;
        let known = replaces.as_ref().map(|r| r.transport);
        let me_b = transport::leg_b(&zone_b, &route.target, &[], route.next_hop, known)?;
        let mut next_hop = route.next_hop;
        if me_b.transport.reliable() && next_hop.flow.is_none() {
            // A TLS (or TCP) leg over a hop that was given as a datagram one: the transport
            // refuses sips: over UDP, and our Via tells it which stream to open.
            next_hop.reliable = true;
        }

        // Media first: an SDP the relay refuses is a 488 before anything is sent.
        let media = self.media.create_session(&zone_a.name, &zone_b.name)?;
        let offer = msg::sdp_body(req);
        let body_b = match &offer {
            Some(sdp) => match self.media.offer(media, MediaSide::A, sdp) {
                Ok(b) => Some(Bytes::from(b)),
                Err(e) => {
                    self.media.release(media);
                    return Err(e.into());
                }
            },
            None => None,
        };

        let leg_a = Leg {
            zone: za,
            me: me_a,
            call_id: call_id_a.clone(),
            local_tag: self.ids.token(),
            remote_tag: Some(from_tag),
            local_uri: name_addr(&to_disp, &to_uri),
            remote_uri: name_addr(&from_disp, &from_uri),
            local_cseq: 1,
            remote_cseq: Some(cseq_a),
            remote_target: contact_a,
            route_set: msg::record_routes(req),
            peer: source.into(),
            confirmed: false,
            peer_timer: supports("timer"),
            peer_100rel: supports("100rel"),
            peer_update: a_update,
            last_sdp_out: None,
            last_sdp_in: offer.clone(),
            refers: 0,
            origin_pinned: false,
            rseq_next: 1,
            pending_2xx: None,
            pending_rel: None,
            timer: None,
            last_ack: None,
        };
        // A fresh Call-ID from the layer's seeded generator: nothing of leg A's is in it.
        let call_id_b = format!("{}{}", self.ids.token(), self.ids.token());
        let b_from = msg::map_host(&from_uri, zone_b.caller_domain());
        let leg_b = Leg {
            zone: zb,
            me: me_b,
            call_id: call_id_b.clone(),
            local_tag: self.ids.token(),
            remote_tag: None,
            local_uri: name_addr(&from_disp, &b_from),
            remote_uri: name_addr("", &route.target),
            local_cseq: 1,
            remote_cseq: None,
            remote_target: route.target.clone(),
            route_set: Vec::new(),
            peer: next_hop,
            confirmed: false,
            peer_timer: false,
            peer_100rel: false,
            peer_update: false,
            last_sdp_out: body_b.clone(),
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
        let mut b = leg_request_head(&leg_b, "INVITE", 1, &branch, mf - 1);
        b.header("Contact", leg_b.me.contact());
        b.header("Allow", ALLOW);
        b.header("Supported", "100rel, timer");
        let se = msg::session_expires(req)
            .map(|(d, _)| d)
            .or(self.cfg.session_expires.map(|d| d.as_secs() as u32));
        let min_se = msg::min_se(req)
            .unwrap_or(0)
            .max(self.cfg.min_se.as_secs() as u32);
        if let Some(se) = se {
            b.header("Session-Expires", se.max(min_se).to_string());
            b.header("Min-SE", min_se.to_string());
        }
        if self.cfg.pass_asserted_identity {
            for v in req.header_values(HeaderName::PAssertedIdentity) {
                let v = String::from_utf8_lossy(v);
                let uri = v
                    .split('<')
                    .nth(1)
                    .and_then(|s| s.split('>').next())
                    .unwrap_or(v.trim());
                b.header(
                    "P-Asserted-Identity",
                    format!("<{}>", msg::map_host(uri, zone_b.caller_domain())),
                );
            }
        }
        if let Some(r) = &replaces {
            b.header("Replaces", &r.header);
            b.header("Require", "replaces");
        }
        msg::copy_allowed(&mut b, req, &self.cfg, &["Allow"]);
        // Only SDP crosses on an INVITE; it went through the media port.
        let body = body_b.as_ref().map(|s| ("application/sdp", s.as_ref()));
        let Some(invite) = b.finish(body) else {
            self.media.release(media);
            return Err(StartError::Build);
        };
        let cid = match tl.send_request(now, invite.clone(), leg_b.peer) {
            Ok(c) => c,
            Err(e) => {
                self.media.release(media);
                return Err(StartError::Send(e));
            }
        };

        let call = self.next_call;
        self.next_call += 1;
        self.dialogs.insert(
            (leg_a.call_id.clone(), leg_a.local_tag.clone()),
            (call, LegSide::A),
        );
        self.dialogs.insert(
            (leg_b.call_id.clone(), leg_b.local_tag.clone()),
            (call, LegSide::B),
        );
        self.calls.insert(
            call,
            Call {
                legs: [leg_a, leg_b],
                media: Some(media),
                a_invite: id,
                a_invite_req: req.clone(),
                a_final: false,
                b_invite: Some(cid),
                busy: true,
                deferred_ack: None,
                rel_map: Vec::new(),
                history: VecDeque::new(),
                answered: false,
                transfer: None,
                refer_mode: None,
                refer_map: Vec::new(),
            },
        );
        self.servers.insert(
            id,
            ServerCtx {
                call,
                leg: LegSide::A,
            },
        );
        self.clients.insert(
            cid,
            ClientCtx {
                call,
                leg: LegSide::B,
                kind: ClientKind::Initial {
                    offer: offer.is_some(),
                },
                dest: next_hop,
            },
        );
        self.record(call, now, LegSide::A, Direction::In, req);
        self.record(call, now, LegSide::B, Direction::Out, &invite);
        self.events.push_back(B2buaEvent::CallStarted {
            call: CallHandle(call),
            at: now,
            zone_a: zone_a.name.clone(),
            zone_b: zone_b.name.clone(),
            from: from_uri,
            to: to_uri,
            call_id_a,
            call_id_b,
        });
        Ok(CallHandle(call))
    }
}

/// Status line, Via fields, From, To (with `to_tag` when the request has none), Call-ID and
/// CSeq of `req` (RFC 3261 8.2.6.2). Every value is from the leg the request came on.
pub(crate) fn response_head(
    req: &Message,
    status: u16,
    reason: &[u8],
    to_tag: Option<&str>,
) -> Builder {
    let mut b = Builder::response(status, reason);
    for v in req.header_values(HeaderName::Via) {
        b.header("Via", v);
    }
    if let Some(v) = req.header(HeaderName::From) {
        b.header("From", v);
    }
    if let Some(v) = req.header(HeaderName::To) {
        let has = msg::tag_of(req, HeaderName::To).is_some();
        let mut t = v.to_vec();
        if let (false, Some(tag)) = (has, to_tag) {
            t.extend_from_slice(b";tag=");
            t.extend_from_slice(tag.as_bytes());
        }
        b.header("To", t);
    }
    if let Some(v) = req.header(HeaderName::CallId) {
        b.header("Call-ID", v);
    }
    if let Some(v) = req.header(HeaderName::CSeq) {
        b.header("CSeq", v);
    }
    b
}

/// Request line and the dialog headers of a request on `leg`.
fn leg_request_head(leg: &Leg, method: &str, cseq: u32, branch: &str, max_forwards: u8) -> Builder {
    let mut b = Builder::request(method, &leg.remote_target);
    b.header("Via", leg.me.via(branch));
    for r in &leg.route_set {
        b.header("Route", r);
    }
    b.header("Max-Forwards", max_forwards.to_string());
    b.header("From", with_tag(&leg.local_uri, Some(&leg.local_tag)));
    b.header("To", with_tag(&leg.remote_uri, leg.remote_tag.as_deref()));
    b.header("Call-ID", &leg.call_id);
    b.header("CSeq", format!("{cseq} {method}"));
    b
}

#[cfg(test)]
mod id_tests {
    use super::IdGen;

    #[test]
    fn ids_are_unique_and_keyed() {
        let mut a = IdGen::new(None);
        let mut b = IdGen::new(None);
        let (x, y) = (a.token(), a.token());
        assert_ne!(x, y);
        assert_eq!(x.len(), 32);
        // Another process (another random key) gives other ids for the same counter.
        assert_ne!(x, b.token());
        // A fixed seed reproduces them.
        let (mut c, mut d) = (IdGen::new(Some(7)), IdGen::new(Some(7)));
        assert_eq!(c.token(), d.token());
        assert_ne!(IdGen::new(Some(8)).token(), IdGen::new(Some(7)).token());
    }
}
