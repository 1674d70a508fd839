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

use sdp_message::{Direction, Rewriter, SessionDescription};

use crate::ports::PortPool;
use crate::session::{LatchPolicy, MediaDirection, PeerAddrs, PerSide, Side, MAX_STREAMS};
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
    /// Run the packet path on io_uring (multishot receives over shared
    /// buffers, batched sends) where the kernel allows it; otherwise, or when
    /// `false`, on epoll with `recvmmsg`/`sendmmsg`.
    pub io_uring: bool,
    /// io_uring on Linux 6.12+: how long a worker, once woken by a packet,
    /// may wait for more (up to 32) before handling them. Longer: fewer
    /// wake-ups per packet, more added latency. Zero: handle each at once.
    pub io_batch_wait: Duration,
    /// Once a leg has latched, give its port a second socket connected to
    /// the latched peer (same port, `SO_REUSEPORT`): the kernel's cheaper
    /// connected path for the peer's packets (no route lookup per packet on
    /// send, 4-tuple demultiplexing on receive), while packets from other
    /// sources still arrive on the port's own socket and are dropped and
    /// counted there. `false`: one unconnected socket per port.
    pub connect_latched: bool,
    /// Forward settled RTP in the kernel: a tc (tcx ingress) BPF program
    /// rewrites a latched peer's RTP and sends it to the other side's
    /// latched peer without waking a worker (see the crate documentation,
    /// "Kernel fast path"). Needs root (CAP_BPF and CAP_NET_ADMIN);
    /// [`MediaRelay::start`](crate::MediaRelay::start) fails when it is
    /// asked for and cannot be set up.
    pub kernel_forward: bool,
    /// The interfaces the kernel fast path is attached to (ingress);
    /// `None`: every Ethernet and loopback interface present at start.
    pub kernel_forward_interfaces: Option<Vec<String>>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            quarantine: Duration::from_secs(5),
            media_timeout: Duration::from_secs(60),
            workers: 0,
            command_capacity: 1024,
            event_capacity: 4096,
            io_uring: true,
            io_batch_wait: Duration::from_micros(200),
            connect_latched: true,
            kernel_forward: false,
            kernel_forward_interfaces: None,
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
        let other = *self.peer.of(side.other());
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
            ip.zip(m.port.checked_add(1))
                .map(|(ip, p)| SocketAddr::new(ip, p)),
            other.is_some(),
        ),
    };
    Some(Parsed {
        relay,
        peer: PeerAddrs {
            rtp,
            rtcp,
            rtcp_mux: m.rtcp_mux(),
            direction: match sdp.media_direction(index) {
                Some(Direction::SendOnly) => MediaDirection::SendOnly,
                Some(Direction::RecvOnly) => MediaDirection::RecvOnly,
                Some(Direction::Inactive) => MediaDirection::Inactive,
                Some(Direction::SendRecv) | None => MediaDirection::SendRecv,
            },
        },
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
            if z.sdp_address().is_unspecified() {
                // Peers cannot send to 0.0.0.0: a wildcard bind needs the
                // address to announce.
                return Err(MediaError::Config(format!(
                    "zone {}: bind address {} needs an advertise address",
                    z.name, z.bind
                )));
            }
            let pool = PortPool::new(z.port_min, z.port_max, cfg.quarantine);
            if pool.capacity() == 0 {
                return Err(MediaError::Config(format!(
                    "zone {}: port range {}-{} holds no even/odd pair",
                    z.name, z.port_min, z.port_max
                )));
            }
            zones.push(Zone {
                cfg: z.clone(),
                pool,
            });
        }
        Ok(Self {
            zones,
            sessions: HashMap::new(),
            next_id: 1,
        })
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
        let za = self
            .zone_id(zone_a)
            .ok_or_else(|| MediaError::UnknownZone(zone_a.into()))?;
        let zb = self
            .zone_id(zone_b)
            .ok_or_else(|| MediaError::UnknownZone(zone_b.into()))?;
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
        let s = self
            .sessions
            .get_mut(&id)
            .ok_or(MediaError::UnknownSession(id))?;
        if let Some(ls) = &lines {
            if ls
                .iter()
                .any(|l| l.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
            {
                return Err(MediaError::BadCrypto);
            }
        }
        let slot =
            s.crypto
                .of_mut(toward)
                .get_mut(media_index)
                .ok_or(MediaError::TooManyStreams {
                    count: media_index + 1,
                    max: MAX_STREAMS,
                })?;
        *slot = lines;
        Ok(())
    }

    /// The ports of a session's relayed streams.
    pub fn ports(&self, id: SessionId) -> Result<Vec<StreamPorts>, MediaError> {
        let s = self
            .sessions
            .get(&id)
            .ok_or(MediaError::UnknownSession(id))?;
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
            return Err(MediaError::TooManyStreams {
                count,
                max: MAX_STREAMS,
            });
        }
        let parsed: Vec<Parsed> = (0..count)
            .filter_map(|i| parse_media(&parsed_sdp, i))
            .collect();

        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(MediaError::UnknownSession(id))?;
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
            let Some(slot) = streams.get_mut(i) else {
                break;
            };
            if slot.is_none() {
                let mut ports = [0u16; 2];
                for side in [Side::A, Side::B] {
                    let z = *zones.of(side);
                    let Some(zone) = self.zones.get_mut(z) else {
                        failure = Some(MediaError::UnknownZone(z.to_string()));
                        break 'alloc;
                    };
                    match zone.pool.allocate(now, &mut |port| bind(z, port)) {
                        Some(port) => {
                            *ports.of_mut(side) = port;
                            taken.push((z, port, true));
                        }
                        None => {
                            failure = Some(MediaError::PortsExhausted {
                                zone: zone.cfg.name.clone(),
                            });
                            break 'alloc;
                        }
                    }
                }
                *slot = Some(CtlStream {
                    rtp_ports: ports,
                    rtcp_bound: [false; 2],
                    peer: [None; 2],
                });
                updates.push(StreamUpdate::Open {
                    media_index: i,
                    zones,
                    rtp_ports: ports,
                    policy: zones
                        .map(|z| self.zones.get(z).map(|z| z.cfg.latch).unwrap_or_default()),
                });
            }
            let Some(st) = slot.as_mut() else { continue };
            if !st.mux_with(from, p.peer) {
                for side in [Side::A, Side::B] {
                    if *st.rtcp_bound.of(side) {
                        continue;
                    }
                    let z = *zones.of(side);
                    let port = *st.rtp_ports.of(side) + 1;
                    if !bind(z, port) {
                        failure = Some(MediaError::RtcpPortBusy { port });
                        break 'alloc;
                    }
                    *st.rtcp_bound.of_mut(side) = true;
                    taken.push((z, port, false));
                    updates.push(StreamUpdate::RtcpOpened {
                        media_index: i,
                        side,
                        zone: z,
                        port,
                    });
                }
            }
        }
        if let Some(e) = failure {
            self.give_back(now, &taken);
            return Err(e);
        }

        // Phase 2: the SDP for the other side.
        let toward = from.other();
        let our_ip = self
            .zones
            .get(*zones.of(toward))
            .map(|z| z.cfg.sdp_address())
            .ok_or_else(|| MediaError::UnknownZone(zones.of(toward).to_string()))?;
        let crypto = session.crypto.of(toward);
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
                        let port = *st.rtp_ports.of(toward);
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
                    *st.peer.of_mut(from) = Some(p.peer);
                    updates.push(StreamUpdate::Peer {
                        media_index: i,
                        side: from,
                        peer: p.peer,
                    });
                }
                (false, Some(st)) => {
                    for side in [Side::A, Side::B] {
                        let z = *zones.of(side);
                        if let Some(zone) = self.zones.get_mut(z) {
                            zone.pool.release(*st.rtp_ports.of(side), now);
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
    pub fn release(
        &mut self,
        now: Instant,
        id: SessionId,
    ) -> Result<Vec<(ZoneId, u16)>, MediaError> {
        let s = self
            .sessions
            .remove(&id)
            .ok_or(MediaError::UnknownSession(id))?;
        let mut released = Vec::new();
        for st in s.streams.iter().flatten() {
            for side in [Side::A, Side::B] {
                let z = *s.zones.of(side);
                let port = *st.rtp_ports.of(side);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::LatchMode;

    fn cfg() -> RelayConfig {
        RelayConfig {
            zones: vec![
                ZoneConfig {
                    name: "wan".into(),
                    bind: "198.51.100.1".parse().unwrap(),
                    advertise: Some("203.0.113.1".parse().unwrap()),
                    port_min: 30000,
                    port_max: 30009,
                    latch: LatchPolicy {
                        mode: LatchMode::Nat,
                        relatch_after_silence: None,
                    },
                },
                ZoneConfig {
                    name: "lan".into(),
                    bind: "192.168.10.1".parse().unwrap(),
                    advertise: None,
                    port_min: 40000,
                    port_max: 40003,
                    latch: LatchPolicy {
                        mode: LatchMode::Strict,
                        relatch_after_silence: None,
                    },
                },
            ],
            quarantine: Duration::from_secs(30),
            ..RelayConfig::default()
        }
    }

    const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 10.0.0.2\r\n\
s=call\r\n\
c=IN IP4 10.0.0.2\r\n\
t=0 0\r\n\
a=ice-ufrag:F7gI\r\n\
a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:49171 IN IP4 10.0.0.2\r\n\
a=candidate:1 1 UDP 2130706431 10.0.0.2 49170 typ host\r\n\
a=candidate:2 1 UDP 1694498815 198.51.100.77 61000 typ srflx raddr 10.0.0.2 rport 49170\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
a=sendrecv\r\n\
m=application 5000 TCP/MSRP *\r\n\
a=path:msrp://10.0.0.2:5000/abc;tcp\r\n";

    const ANSWER: &str = "v=0\r\n\
o=bob 1 1 IN IP4 192.168.10.50\r\n\
s=-\r\n\
c=IN IP4 192.168.10.50\r\n\
t=0 0\r\n\
m=audio 7078 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
m=application 0 TCP/MSRP *\r\n";

    fn ok_bind() -> impl FnMut(ZoneId, u16) -> bool {
        |_, _| true
    }

    fn text(v: &[u8]) -> String {
        String::from_utf8(v.to_vec()).unwrap()
    }

    #[test]
    fn offer_and_answer_are_rewritten_toward_each_side() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        let id = c.create("wan", "lan").unwrap();
        let mut bound = Vec::new();
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::A,
                SdpKind::Offer,
                OFFER.as_bytes(),
                &mut |z, p| {
                    bound.push((z, p));
                    true
                },
            )
            .unwrap();
        // Both legs' RTP and (no rtcp-mux offered) RTCP ports are bound now.
        assert_eq!(bound, vec![(0, 30000), (1, 40000), (0, 30001), (1, 40001)]);
        let sdp = text(&out.sdp);
        let expected = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.168.10.1\r\n\
s=call\r\n\
c=IN IP4 192.168.10.1\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:40001 IN IP4 192.168.10.1\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
a=sendrecv\r\n\
m=application 0 TCP/MSRP *\r\n\
a=path:msrp://10.0.0.2:5000/abc;tcp\r\n";
        assert_eq!(sdp, expected);
        assert_eq!(
            out.updates,
            vec![
                StreamUpdate::Open {
                    media_index: 0,
                    zones: [0, 1],
                    rtp_ports: [30000, 40000],
                    policy: [cfg().zones[0].latch, cfg().zones[1].latch],
                },
                StreamUpdate::RtcpOpened {
                    media_index: 0,
                    side: Side::A,
                    zone: 0,
                    port: 30001
                },
                StreamUpdate::RtcpOpened {
                    media_index: 0,
                    side: Side::B,
                    zone: 1,
                    port: 40001
                },
                StreamUpdate::Peer {
                    media_index: 0,
                    side: Side::A,
                    peer: PeerAddrs {
                        rtp: Some("10.0.0.2:49170".parse().unwrap()),
                        rtcp: Some("10.0.0.2:49171".parse().unwrap()),
                        rtcp_mux: false,
                        ..Default::default()
                    },
                },
            ]
        );

        let out = c
            .apply_sdp(
                t0,
                id,
                Side::B,
                SdpKind::Answer,
                ANSWER.as_bytes(),
                &mut ok_bind(),
            )
            .unwrap();
        let sdp = text(&out.sdp);
        // Toward A: the wan zone's advertised address and A's leg.
        assert!(sdp.contains("o=bob 1 1 IN IP4 203.0.113.1\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 203.0.113.1\r\n"), "{sdp}");
        assert!(sdp.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{sdp}");
        assert!(
            !sdp.contains("a=rtcp"),
            "no a=rtcp in the original, none added: {sdp}"
        );
        assert_eq!(
            out.updates,
            vec![StreamUpdate::Peer {
                media_index: 0,
                side: Side::B,
                peer: PeerAddrs {
                    rtp: Some("192.168.10.50:7078".parse().unwrap()),
                    rtcp: Some("192.168.10.50:7079".parse().unwrap()),
                    rtcp_mux: false,
                    ..Default::default()
                },
            }]
        );
        let ports = c.ports(id).unwrap();
        assert_eq!(
            ports,
            vec![StreamPorts {
                media_index: 0,
                a: 30000,
                b: 40000,
                rtcp: [Some(30001), Some(40001)]
            }]
        );
    }

    fn mux_sdp(ip: &str, port: u16, mux: bool) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n{}a=rtcp:{} IN IP4 {ip}\r\n",
            if mux { "a=rtcp-mux\r\n" } else { "" },
            port + 1
        )
    }

    #[test]
    fn rtcp_mux_binds_one_port_per_leg_unless_refused() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        // Both mux: only the even ports are ever bound.
        let id = c.create("wan", "lan").unwrap();
        let mut bound = Vec::new();
        let mut rec = |z, p| {
            bound.push((z, p));
            true
        };
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::A,
                SdpKind::Offer,
                mux_sdp("10.0.0.2", 4000, true).as_bytes(),
                &mut rec,
            )
            .unwrap();
        // The offer keeps the fallback RTCP port in case B does not mux.
        assert!(text(&out.sdp).contains("a=rtcp-mux\r\na=rtcp:40001 IN IP4 192.168.10.1\r\n"));
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::B,
                SdpKind::Answer,
                mux_sdp("192.168.10.50", 6000, true).as_bytes(),
                &mut rec,
            )
            .unwrap();
        // The answer names the RTP port as the RTCP port: mux is agreed.
        assert!(text(&out.sdp).contains("a=rtcp:30000 IN IP4 203.0.113.1\r\n"));
        assert_eq!(bound, vec![(0, 30000), (1, 40000)]);
        assert_eq!(c.ports(id).unwrap()[0].rtcp, [None, None]);

        // B refuses mux: the reserved odd ports are bound at the answer.
        let id = c.create("wan", "lan").unwrap();
        let mut bound = Vec::new();
        let mut rec = |z, p| {
            bound.push((z, p));
            true
        };
        c.apply_sdp(
            t0,
            id,
            Side::A,
            SdpKind::Offer,
            mux_sdp("10.0.0.2", 4000, true).as_bytes(),
            &mut rec,
        )
        .unwrap();
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::B,
                SdpKind::Answer,
                mux_sdp("192.168.10.50", 6000, false).as_bytes(),
                &mut rec,
            )
            .unwrap();
        assert_eq!(bound, vec![(0, 30002), (1, 40002), (0, 30003), (1, 40003)]);
        assert!(text(&out.sdp).contains("a=rtcp:30003 IN IP4 203.0.113.1\r\n"));
        assert!(out.updates.contains(&StreamUpdate::RtcpOpened {
            media_index: 0,
            side: Side::B,
            zone: 1,
            port: 40003
        }));
    }

    #[test]
    fn crypto_lines_replace_the_peers_toward_one_side() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        let id = c.create("wan", "lan").unwrap();
        // Toward B (the LAN) plain RTP: no crypto lines at all.
        c.set_crypto(id, Side::B, 0, Some(vec![])).unwrap();
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::A,
                SdpKind::Offer,
                OFFER.as_bytes(),
                &mut ok_bind(),
            )
            .unwrap();
        assert!(!text(&out.sdp).contains("a=crypto"));
        // Toward A our own key.
        c.set_crypto(
            id,
            Side::A,
            0,
            Some(vec![
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".into(),
            ]),
        )
        .unwrap();
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::B,
                SdpKind::Answer,
                ANSWER.as_bytes(),
                &mut ok_bind(),
            )
            .unwrap();
        assert!(text(&out.sdp).contains("m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"));
        assert!(matches!(
            c.set_crypto(id, Side::A, 0, Some(vec!["1 x\r\na=evil".into()])),
            Err(MediaError::BadCrypto)
        ));
        assert!(matches!(
            c.set_crypto(id, Side::A, MAX_STREAMS, None),
            Err(MediaError::TooManyStreams { .. })
        ));
    }

    #[test]
    fn exhaustion_rolls_back_and_release_quarantines() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        let lan = c.zone_id("lan").unwrap();
        let wan = c.zone_id("wan").unwrap();
        // The lan range holds two pairs: two calls fit, the third does not.
        let a = c.create("wan", "lan").unwrap();
        let b = c.create("wan", "lan").unwrap();
        let x = c.create("wan", "lan").unwrap();
        for id in [a, b] {
            c.apply_sdp(
                t0,
                id,
                Side::A,
                SdpKind::Offer,
                mux_sdp("10.0.0.2", 4000, true).as_bytes(),
                &mut ok_bind(),
            )
            .unwrap();
        }
        assert_eq!((c.pairs_in_use(wan), c.pairs_in_use(lan)), (2, 2));
        let err = c.apply_sdp(
            t0,
            x,
            Side::A,
            SdpKind::Offer,
            mux_sdp("10.0.0.2", 4000, true).as_bytes(),
            &mut ok_bind(),
        );
        assert!(
            matches!(err, Err(MediaError::PortsExhausted { ref zone }) if zone == "lan"),
            "{err:?}"
        );
        // The wan pair taken for the failed offer went back.
        assert_eq!((c.pairs_in_use(wan), c.pairs_in_use(lan)), (2, 2));
        assert!(c.ports(x).unwrap().is_empty());

        // Released ports are not reused during the quarantine.
        assert_eq!(c.release(t0, a).unwrap(), vec![(wan, 30000), (lan, 40000)]);
        assert!(matches!(
            c.release(t0, a),
            Err(MediaError::UnknownSession(_))
        ));
        let t1 = t0 + Duration::from_secs(29);
        assert!(c
            .apply_sdp(
                t1,
                x,
                Side::A,
                SdpKind::Offer,
                mux_sdp("10.0.0.2", 4000, true).as_bytes(),
                &mut ok_bind()
            )
            .is_err());
        let t2 = t0 + Duration::from_secs(30);
        c.apply_sdp(
            t2,
            x,
            Side::A,
            SdpKind::Offer,
            mux_sdp("10.0.0.2", 4000, true).as_bytes(),
            &mut ok_bind(),
        )
        .unwrap();
        assert_eq!(c.ports(x).unwrap()[0].b, 40000);
    }

    #[test]
    fn bind_failures_take_another_pair() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        let id = c.create("wan", "lan").unwrap();
        // Another process holds 30000 on the wan address.
        c.apply_sdp(
            t0,
            id,
            Side::A,
            SdpKind::Offer,
            mux_sdp("10.0.0.2", 4000, true).as_bytes(),
            &mut |z, p| !(z == 0 && p == 30000),
        )
        .unwrap();
        assert_eq!(c.ports(id).unwrap()[0].a, 30002);
    }

    #[test]
    fn reinvite_adds_and_disables_streams() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        let id = c.create("wan", "lan").unwrap();
        c.apply_sdp(
            t0,
            id,
            Side::A,
            SdpKind::Offer,
            mux_sdp("10.0.0.2", 4000, true).as_bytes(),
            &mut ok_bind(),
        )
        .unwrap();
        c.apply_sdp(
            t0,
            id,
            Side::B,
            SdpKind::Answer,
            mux_sdp("192.168.10.50", 6000, true).as_bytes(),
            &mut ok_bind(),
        )
        .unwrap();
        // re-INVITE from B adding video: the audio keeps its ports.
        let reoffer =
            "v=0\r\no=- 1 2 IN IP4 192.168.10.50\r\ns=-\r\nc=IN IP4 192.168.10.50\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\na=rtcp-mux\r\nm=video 6002 RTP/AVP 96\r\na=rtcp-mux\r\n";
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::B,
                SdpKind::Offer,
                reoffer.as_bytes(),
                &mut ok_bind(),
            )
            .unwrap();
        let sdp = text(&out.sdp);
        assert!(
            sdp.contains("m=audio 30000 RTP/AVP 0\r\n")
                && sdp.contains("m=video 30002 RTP/AVP 96\r\n"),
            "{sdp}"
        );
        assert!(matches!(
            out.updates[0],
            StreamUpdate::Open {
                media_index: 1,
                rtp_ports: [30002, 40002],
                ..
            }
        ));
        // The answer rejects the video: its pairs go back to the pool.
        let reanswer = "v=0\r\no=- 1 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\nm=video 0 RTP/AVP 96\r\n";
        let out = c
            .apply_sdp(
                t0,
                id,
                Side::A,
                SdpKind::Answer,
                reanswer.as_bytes(),
                &mut ok_bind(),
            )
            .unwrap();
        assert!(text(&out.sdp).contains("m=video 0 RTP/AVP 96\r\n"));
        assert!(out
            .updates
            .contains(&StreamUpdate::Close { media_index: 1 }));
        assert_eq!(c.pairs_in_use(1), 1);
        assert_eq!(c.ports(id).unwrap().len(), 1);
    }

    #[test]
    fn direction_is_read_at_media_then_session_level_and_kept_in_the_sdp() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        let id = c.create("wan", "lan").unwrap();
        let dirs = |c: &mut Controller, from: Side, kind: SdpKind, sdp: &str| {
            let out = c
                .apply_sdp(t0, id, from, kind, sdp.as_bytes(), &mut ok_bind())
                .unwrap();
            let d: Vec<MediaDirection> = out
                .updates
                .iter()
                .filter_map(|u| match u {
                    StreamUpdate::Peer { peer, .. } => Some(peer.direction),
                    _ => None,
                })
                .collect();
            (d, text(&out.sdp))
        };
        // Session-level a=sendonly applies to the first m= line; the second
        // has its own a=inactive (RFC 8866 6.7: media level wins).
        let hold = "v=0\r\no=- 1 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
                    a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\na=inactive\r\n";
        let (d, out) = dirs(&mut c, Side::A, SdpKind::Offer, hold);
        assert_eq!(d, vec![MediaDirection::SendOnly, MediaDirection::Inactive]);
        // The attributes go on to the other side unchanged.
        assert!(
            out.contains("a=sendonly\r\n") && out.contains("a=inactive\r\n"),
            "{out}"
        );
        let answer = "v=0\r\no=- 1 2 IN IP4 192.168.10.50\r\ns=-\r\nc=IN IP4 192.168.10.50\r\nt=0 0\r\n\
                      m=audio 7078 RTP/AVP 0\r\na=recvonly\r\nm=video 7080 RTP/AVP 96\r\na=inactive\r\n";
        let (d, _) = dirs(&mut c, Side::B, SdpKind::Answer, answer);
        assert_eq!(d, vec![MediaDirection::RecvOnly, MediaDirection::Inactive]);
        // Resume: no direction attribute is sendrecv.
        let resume = hold
            .replace("a=sendonly\r\n", "")
            .replace("a=inactive\r\n", "");
        let (d, _) = dirs(&mut c, Side::A, SdpKind::Offer, &resume);
        assert_eq!(d, vec![MediaDirection::SendRecv, MediaDirection::SendRecv]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_change() {
        let t0 = Instant::now();
        let mut c = Controller::new(&cfg()).unwrap();
        assert!(matches!(
            c.create("wan", "dmz"),
            Err(MediaError::UnknownZone(_))
        ));
        let id = c.create("wan", "lan").unwrap();
        assert!(matches!(
            c.apply_sdp(t0, id, Side::A, SdpKind::Offer, b"garbage", &mut ok_bind()),
            Err(MediaError::Sdp(_))
        ));
        let mut many =
            String::from("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n");
        for i in 0..=MAX_STREAMS {
            many.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i));
        }
        assert!(matches!(
            c.apply_sdp(
                t0,
                id,
                Side::A,
                SdpKind::Offer,
                many.as_bytes(),
                &mut ok_bind()
            ),
            Err(MediaError::TooManyStreams { .. })
        ));
        assert_eq!(c.pairs_in_use(0), 0);
        let bad_cfg = RelayConfig {
            zones: vec![ZoneConfig {
                port_min: 5,
                port_max: 5,
                ..cfg().zones[0].clone()
            }],
            ..cfg()
        };
        assert!(matches!(
            Controller::new(&bad_cfg),
            Err(MediaError::Config(_))
        ));
    }
}
