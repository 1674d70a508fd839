//! The control plane, sans-IO: zones and their port pools, sessions, and the
//! SDP of each offer/answer (what the peers announce, what we announce to
//! them instead).
//!
//! It never touches a socket: binding is a callback (`bind(zone, port)`),
//! and every change the data plane must apply comes back as a list of
//! [`StreamUpdate`]s, in order.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sdp_message::{Rewriter, SessionDescription};

use crate::ports::PortPool;
use crate::session::{LatchPolicy, PeerAddrs, Side, MAX_STREAMS};
use crate::MediaError;

/// One zone's media addresses (a zone is a named interface such as `lan` or
/// `wan`; each has its own bind address and port range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Zone name, as used by the call engine and the policy.
    pub name: String,
    /// Address the media sockets of this zone bind to.
    pub bind: IpAddr,
    /// Address written into SDP for this zone, when it differs from `bind`
    /// (a 1:1 NAT in front of the SBC).
    pub advertise: Option<IpAddr>,
    /// First port of the range (the first even port >= it starts a pair).
    pub port_min: u16,
    /// Last port of the range.
    pub port_max: u16,
    /// Latching rules for peers in this zone.
    pub latch: LatchPolicy,
}

impl ZoneConfig {
    /// The address we announce in SDP for this zone.
    pub fn sdp_address(&self) -> IpAddr {
        self.advertise.unwrap_or(self.bind)
    }
}

/// Relay-wide configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The zones media can be relayed in.
    pub zones: Vec<ZoneConfig>,
    /// How long a released port pair stays out of the pool.
    pub quarantine: Duration,
    /// A session with no forwarded packet for this long is reported as timed
    /// out ([`crate::MediaEvent::Timeout`]).
    pub media_timeout: Duration,
    /// Packet worker threads (0: one per available core).
    pub workers: usize,
    /// Capacity of each worker's command channel.
    pub command_capacity: usize,
    /// Capacity of the event channel.
    pub event_capacity: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            quarantine: Duration::from_secs(30),
            media_timeout: Duration::from_secs(60),
            workers: 0,
            command_capacity: 1024,
            event_capacity: 4096,
        }
    }
}

/// Index of a zone in [`RelayConfig::zones`].
pub type ZoneId = usize;

/// Identifies a relay session (one per B2BUA call); the call engine keeps it
/// with the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "media-{}", self.0)
    }
}

/// Offer or answer (RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    /// An offer (INVITE, re-INVITE, UPDATE, or an offer in a 200 to an
    /// offerless INVITE).
    Offer,
    /// The answer to the last offer.
    Answer,
}

/// A change the data plane must apply, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamUpdate {
    /// A new stream: RTP ports `rtp_ports[side]` were bound in `zones[side]`.
    Open {
        /// `m=` line.
        media_index: usize,
        /// Zone of each leg.
        zones: [ZoneId; 2],
        /// RTP port of each leg.
        rtp_ports: [u16; 2],
        /// Latching rules of each leg (from its zone).
        policy: [LatchPolicy; 2],
    },
    /// The RTCP port of one leg was bound (RTCP is not multiplexed).
    RtcpOpened {
        /// `m=` line.
        media_index: usize,
        /// Leg.
        side: Side,
        /// Zone of the leg.
        zone: ZoneId,
        /// The odd port.
        port: u16,
    },
    /// New SDP from `side` for a stream.
    Peer {
        /// `m=` line.
        media_index: usize,
        /// Side whose SDP this is.
        side: Side,
        /// What it announces.
        peer: PeerAddrs,
    },
    /// The stream is no longer relayed (port 0, or no longer in the SDP);
    /// its sockets are to be closed.
    Close {
        /// `m=` line.
        media_index: usize,
    },
}

/// Result of applying one side's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpOutcome {
    /// The SDP to send to the other side.
    pub sdp: Vec<u8>,
    /// What the data plane must change.
    pub updates: Vec<StreamUpdate>,
}

/// The ports of one relayed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPorts {
    /// `m=` line.
    pub media_index: usize,
    /// RTP port facing side A (A sends there).
    pub a: u16,
    /// RTP port facing side B.
    pub b: u16,
    /// RTCP port facing each side, when bound (not multiplexed).
    pub rtcp: [Option<u16>; 2],
}

#[derive(Debug, Clone, Copy)]
struct CtlStream {
    rtp_ports: [u16; 2],
    rtcp_bound: [bool; 2],
    peer: [Option<PeerAddrs>; 2],
}

impl CtlStream {
    fn mux_with(&self, side: Side, new: PeerAddrs) -> bool {
        let other = self.peer[side.other().index()];
        match other {
            Some(o) => o.rtcp_mux && new.rtcp_mux,
            None => new.rtcp_mux,
        }
    }
}

#[derive(Debug)]
struct CtlSession {
    zones: [ZoneId; 2],
    streams: [Option<CtlStream>; MAX_STREAMS],
    /// `a=crypto` values to announce toward each side, per `m=` line;
    /// `None` keeps the peer's lines.
    crypto: [[Option<Vec<String>>; MAX_STREAMS]; 2],
}

struct Zone {
    cfg: ZoneConfig,
    pool: PortPool,
}

/// Sessions, zones and port pools.
pub struct Controller {
    zones: Vec<Zone>,
    sessions: HashMap<SessionId, CtlSession>,
    next_id: u64,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("zones", &self.zones.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

/// What a relayed `m=` line's SDP says, parsed before anything changes.
struct Parsed {
    relay: bool,
    peer: PeerAddrs,
    has_rtcp_attr: bool,
}

fn parse_media(sdp: &SessionDescription<'_>, index: usize) -> Option<Parsed> {
    let m = sdp.media.get(index)?;
    // Only RTP is relayed; anything else (TCP/MSRP, BFCP, raw UDP) would be
    // a path through the SBC that no check covers, so it is disabled.
    let is_rtp = m.proto.to_ascii_uppercase().contains("RTP");
    let relay = is_rtp && !m.is_disabled();
    let ip = m.effective_connection(sdp).and_then(|c| c.ip());
    let rtp = ip.map(|ip| SocketAddr::new(ip, m.port));
    let (rtcp, has_rtcp_attr) = match m.rtcp() {
        Some(Ok(r)) => {
            let rip = r.address.and_then(|a| a.parse::<IpAddr>().ok()).or(ip);
            (rip.map(|ip| SocketAddr::new(ip, r.port)), true)
        }
        other => (
            ip.zip(m.port.checked_add(1)).map(|(ip, p)| SocketAddr::new(ip, p)),
            other.is_some(),
        ),
    };
    Some(Parsed {
        relay,
        peer: PeerAddrs { rtp, rtcp, rtcp_mux: m.rtcp_mux() },
        has_rtcp_attr,
    })
}

/// ICE attributes: with the SBC anchoring media, the peers' candidates are
/// addresses the other side must never use.
const ICE_ATTRIBUTES: [&str; 8] = [
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
];

impl Controller {
    /// Validates the configuration and builds one pool per zone.
    pub fn new(cfg: &RelayConfig) -> Result<Self, MediaError> {
        let mut zones: Vec<Zone> = Vec::with_capacity(cfg.zones.len());
        for z in &cfg.zones {
            if zones.iter().any(|o| o.cfg.name == z.name) {
                return Err(MediaError::Config(format!("zone {} defined twice", z.name)));
            }
            let pool = PortPool::new(z.port_min, z.port_max, cfg.quarantine);
            if pool.capacity() == 0 {
                return Err(MediaError::Config(format!(
                    "zone {}: port range {}-{} holds no even/odd pair",
                    z.name, z.port_min, z.port_max
                )));
            }
            zones.push(Zone { cfg: z.clone(), pool });
        }
        Ok(Self { zones, sessions: HashMap::new(), next_id: 1 })
    }

    /// Looks a zone up by name.
    pub fn zone_id(&self, name: &str) -> Option<ZoneId> {
        self.zones.iter().position(|z| z.cfg.name == name)
    }

    /// The configuration of a zone.
    pub fn zone(&self, zone: ZoneId) -> Option<&ZoneConfig> {
        self.zones.get(zone).map(|z| &z.cfg)
    }

    /// Port pairs in use in a zone.
    pub fn pairs_in_use(&self, zone: ZoneId) -> usize {
        self.zones.get(zone).map_or(0, |z| z.pool.in_use())
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Creates a session between a side in `zone_a` and a side in `zone_b`.
    /// No port is allocated before the first SDP.
    pub fn create(&mut self, zone_a: &str, zone_b: &str) -> Result<SessionId, MediaError> {
        let za = self.zone_id(zone_a).ok_or_else(|| MediaError::UnknownZone(zone_a.into()))?;
        let zb = self.zone_id(zone_b).ok_or_else(|| MediaError::UnknownZone(zone_b.into()))?;
        let id = SessionId(self.next_id);
        self.next_id += 1;
        self.sessions.insert(
            id,
            CtlSession {
                zones: [za, zb],
                streams: [None; MAX_STREAMS],
                crypto: Default::default(),
            },
        );
        Ok(id)
    }

    /// Sets the `a=crypto` values (what follows `a=crypto:`) that the SDP
    /// sent toward `toward` carries for `m=` line `media_index`, replacing
    /// the peer's; `None` passes the peer's lines through (end-to-end SRTP).
    pub fn set_crypto(
        &mut self,
        id: SessionId,
        toward: Side,
        media_index: usize,
        lines: Option<Vec<String>>,
    ) -> Result<(), MediaError> {
        let s = self.sessions.get_mut(&id).ok_or(MediaError::UnknownSession(id))?;
        if let Some(ls) = &lines {
            if ls.iter().any(|l| l.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))) {
                return Err(MediaError::BadCrypto);
            }
        }
        let slot = s.crypto[toward.index()]
            .get_mut(media_index)
            .ok_or(MediaError::TooManyStreams { count: media_index + 1, max: MAX_STREAMS })?;
        *slot = lines;
        Ok(())
    }

    /// The ports of a session's relayed streams.
    pub fn ports(&self, id: SessionId) -> Result<Vec<StreamPorts>, MediaError> {
        let s = self.sessions.get(&id).ok_or(MediaError::UnknownSession(id))?;
        Ok(s.streams
            .iter()
            .enumerate()
            .filter_map(|(i, st)| {
                st.map(|st| StreamPorts {
                    media_index: i,
                    a: st.rtp_ports[0],
                    b: st.rtp_ports[1],
                    rtcp: [
                        st.rtcp_bound[0].then(|| st.rtp_ports[0] + 1),
                        st.rtcp_bound[1].then(|| st.rtp_ports[1] + 1),
                    ],
                })
            })
            .collect())
    }

    /// Applies an offer or answer received from `from` and returns the SDP
    /// for the other side plus the data-plane changes. Ports are allocated
    /// for new streams (both legs, at once, so that the answer never waits
    /// for a port) through `bind(zone, port)`, which must bind the socket and
    /// return whether that worked. On error nothing has changed (ports taken
    /// during this call are given back, and the caller must drop the sockets
    /// it bound).
    pub fn apply_sdp(
        &mut self,
        now: Instant,
        id: SessionId,
        from: Side,
        kind: SdpKind,
        sdp: &[u8],
        bind: &mut dyn FnMut(ZoneId, u16) -> bool,
    ) -> Result<SdpOutcome, MediaError> {
        let parsed_sdp = sdp_message::parse(sdp)?;
        let count = parsed_sdp.media.len();
        if count > MAX_STREAMS {
            return Err(MediaError::TooManyStreams { count, max: MAX_STREAMS });
        }
        let parsed: Vec<Parsed> = (0..count).filter_map(|i| parse_media(&parsed_sdp, i)).collect();

        let session = self.sessions.get_mut(&id).ok_or(MediaError::UnknownSession(id))?;
        let zones = session.zones;
        // Phase 1: take every port this SDP needs; undo all of it on failure.
        let mut streams = session.streams;
        let mut taken: Vec<(ZoneId, u16, bool)> = Vec::new();
        let mut updates = Vec::new();
        let mut failure = None;
        'alloc: for (i, p) in parsed.iter().enumerate() {
            if !p.relay {
                continue;
            }
            let Some(slot) = streams.get_mut(i) else { break };
            if slot.is_none() {
                let mut ports = [0u16; 2];
                for side in [Side::A, Side::B] {
                    let z = zones[side.index()];
                    let Some(zone) = self.zones.get_mut(z) else {
                        failure = Some(MediaError::UnknownZone(z.to_string()));
                        break 'alloc;
                    };
                    match zone.pool.allocate(now, &mut |port| bind(z, port)) {
                        Some(port) => {
                            ports[side.index()] = port;
                            taken.push((z, port, true));
                        }
                        None => {
                            failure = Some(MediaError::PortsExhausted { zone: zone.cfg.name.clone() });
                            break 'alloc;
                        }
                    }
                }
                *slot = Some(CtlStream { rtp_ports: ports, rtcp_bound: [false; 2], peer: [None; 2] });
                updates.push(StreamUpdate::Open {
                    media_index: i,
                    zones,
                    rtp_ports: ports,
                    policy: [self.zones[zones[0]].cfg.latch, self.zones[zones[1]].cfg.latch],
                });
            }
            let Some(st) = slot.as_mut() else { continue };
            if !st.mux_with(from, p.peer) {
                for side in [Side::A, Side::B] {
                    let si = side.index();
                    if st.rtcp_bound[si] {
                        continue;
                    }
                    let z = zones[si];
                    let port = st.rtp_ports[si] + 1;
                    if !bind(z, port) {
                        failure = Some(MediaError::RtcpPortBusy { port });
                        break 'alloc;
                    }
                    st.rtcp_bound[si] = true;
                    taken.push((z, port, false));
                    updates.push(StreamUpdate::RtcpOpened { media_index: i, side, zone: z, port });
                }
            }
        }
        if let Some(e) = failure {
            self.give_back(now, &taken);
            return Err(e);
        }

        // Phase 2: the SDP for the other side.
        let toward = from.other();
        let zone_out = &self.zones[zones[toward.index()]].cfg;
        let our_ip = zone_out.sdp_address();
        let crypto = &session.crypto[toward.index()];
        let mut rw = Rewriter::new(&parsed_sdp);
        rw.set_all_connections(our_ip).set_origin_address(our_ip);
        for name in ICE_ATTRIBUTES {
            rw.remove_attributes_everywhere(name);
        }
        let rewritten = (|| {
            for (i, p) in parsed.iter().enumerate() {
                let st = streams.get(i).copied().flatten();
                match (p.relay, st) {
                    (true, Some(st)) => {
                        let port = st.rtp_ports[toward.index()];
                        rw.set_media_port(i, port)?;
                        if p.has_rtcp_attr {
                            let muxed = kind == SdpKind::Answer && st.mux_with(from, p.peer);
                            rw.set_rtcp(i, if muxed { port } else { port + 1 }, Some(our_ip))?;
                        }
                        if let Some(Some(lines)) = crypto.get(i) {
                            rw.remove_media_attributes(i, "crypto")?;
                            for l in lines {
                                rw.add_media_attribute(i, "crypto", Some(l))?;
                            }
                        }
                    }
                    _ => {
                        rw.set_media_port(i, 0)?;
                    }
                }
            }
            Ok::<Vec<u8>, sdp_message::RewriteError>(rw.finish())
        })();
        let out = match rewritten {
            Ok(out) => out,
            Err(e) => {
                self.give_back(now, &taken);
                return Err(e.into());
            }
        };

        // Phase 3: commit.
        for (i, slot) in streams.iter_mut().enumerate() {
            let relay = parsed.get(i).is_some_and(|p| p.relay);
            match (relay, slot.as_mut()) {
                (true, Some(st)) => {
                    let Some(p) = parsed.get(i) else { continue };
                    st.peer[from.index()] = Some(p.peer);
                    updates.push(StreamUpdate::Peer { media_index: i, side: from, peer: p.peer });
                }
                (false, Some(st)) => {
                    for side in [Side::A, Side::B] {
                        let z = zones[side.index()];
                        if let Some(zone) = self.zones.get_mut(z) {
                            zone.pool.release(st.rtp_ports[side.index()], now);
                        }
                    }
                    *slot = None;
                    updates.push(StreamUpdate::Close { media_index: i });
                }
                _ => {}
            }
        }
        if let Some(s) = self.sessions.get_mut(&id) {
            s.streams = streams;
        }
        Ok(SdpOutcome { sdp: out, updates })
    }

    fn give_back(&mut self, now: Instant, taken: &[(ZoneId, u16, bool)]) {
        for &(z, port, is_pair) in taken {
            if is_pair {
                if let Some(zone) = self.zones.get_mut(z) {
                    zone.pool.release(port, now);
                }
            }
        }
    }

    /// Ends a session: its ports go into quarantine. Returns the RTP ports
    /// released, per zone.
    pub fn release(&mut self, now: Instant, id: SessionId) -> Result<Vec<(ZoneId, u16)>, MediaError> {
        let s = self.sessions.remove(&id).ok_or(MediaError::UnknownSession(id))?;
        let mut released = Vec::new();
        for st in s.streams.iter().flatten() {
            for side in [Side::A, Side::B] {
                let z = s.zones[side.index()];
                let port = st.rtp_ports[side.index()];
                if let Some(zone) = self.zones.get_mut(z) {
                    if zone.pool.release(port, now) {
                        released.push((z, port));
                    }
                }
            }
        }
        Ok(released)
    }
}
