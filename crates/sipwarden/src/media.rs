//! Calls between zones: the media relay (and its optional nftables firewall) and the B2BUA the
//! engine drives, built from `[media]`, `[[media.zone]]`, `[b2bua]` and the zones.
//!
//! The relay's events (`MediaEvent::Timeout`) arrive on a blocking channel; one thread moves
//! them into a bounded tokio channel that the engine task selects on. Each released session's
//! counters are logged (`media-N released: ...`), which is what an operator (and the e2e test)
//! reads to see that media flowed both ways.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use call_engine::b2bua::{
    self, B2bua, MediaPort, MediaPortError, MediaSessionId, MediaSide, ZoneIdentity,
};
use call_engine::ZoneNetworks;
use config::{Config, Firewall, Latching, SrtpMode, ZoneConfig};
use media_relay::{
    LatchMode, LatchPolicy, MediaEvent, MediaRelay, PacketTransform, RelayConfig, SessionId,
};
use media_srtp::policy::{plan_offer, CryptoLines, OfferPlan, ZoneSrtpMode, ZoneSrtpPolicy};
use media_srtp::{SrtpProfile, SrtpTransform};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::settings::Bound;

/// The running media plane: shut down after the engine task.
pub struct MediaPlane {
    pub relay: Arc<MediaRelay>,
    firewall: Option<media_firewall::Firewall>,
}

impl MediaPlane {
    /// Logs the relay's totals and removes the firewall table.
    pub fn shutdown(self) {
        if let Ok(t) = self.relay.totals() {
            info!(
                "media relay stopped: {} RTP ({} of them in the kernel) and {} RTCP packets relayed, {} dropped",
                t.rtp_out,
                t.rtp_kernel,
                t.rtcp_out,
                t.drops.total()
            );
        }
        if let Some(fw) = self.firewall {
            if let Err(e) = fw.stop() {
                warn!("media firewall: the table was not removed: {e}");
            }
        }
    }
}

/// What the engine needs for calls between zones.
pub struct CrossZone {
    pub b2bua: B2bua,
    pub zones: Vec<ZoneNetworks>,
    pub plane: MediaPlane,
    /// Media timeouts, by relay session id.
    pub timeouts: mpsc::Receiver<u64>,
}

/// The zones as the engine's routing sees them.
pub fn zone_networks(zones: &[ZoneConfig]) -> Vec<ZoneNetworks> {
    zones
        .iter()
        .map(|z| ZoneNetworks {
            name: z.name.clone(),
            networks: z.networks.clone(),
        })
        .collect()
}

/// Trunks and next hops for the engine's routing (call_engine::EdgeRoutes). Entries whose
/// address does not parse are left out (loading refuses them).
pub fn edge_routes(c: &Config) -> call_engine::EdgeRoutes {
    let transport = |t: config::TrunkTransport| match t {
        config::TrunkTransport::Udp => call_engine::Transport::Udp,
        config::TrunkTransport::Tcp => call_engine::Transport::Tcp,
        config::TrunkTransport::Tls => call_engine::Transport::Tls,
    };
    let next_hops = c
        .zone
        .iter()
        .filter_map(|z| {
            let hop = z.next_hop.as_deref()?;
            let a = config::parse_sip_address(hop, config::TrunkTransport::Udp).ok()?;
            Some(call_engine::NextHop {
                zone: z.name.clone(),
                address: a.addr,
                transport: transport(a.transport),
            })
        })
        .collect();
    let trunks = c
        .trunk
        .iter()
        .filter_map(|t| {
            let a = t.target().ok()?;
            Some(call_engine::Trunk {
                name: t.name.clone(),
                zone: t.zone.clone(),
                address: a.addr,
                transport: transport(a.transport),
                from_zone: t.from_zone.clone(),
                matches: t.matches.clone(),
                sources: t.source_networks(),
            })
        })
        .collect();
    call_engine::EdgeRoutes { next_hops, trunks }
}

/// The relay's configuration: one relay zone per zone with a media address.
pub fn relay_config(c: &Config) -> RelayConfig {
    let zones = c
        .zone
        .iter()
        .filter_map(|z| {
            let bind = c.media_bind(&z.name)?;
            let m = c.media_zone(&z.name);
            let mode = match c.media_latching(&z.name) {
                Latching::Strict => LatchMode::Strict,
                Latching::SdpAddress => LatchMode::SdpAddress,
                Latching::Nat => LatchMode::Nat,
            };
            Some(media_relay::ZoneConfig {
                name: z.name.clone(),
                bind,
                advertise: m.advertise,
                port_min: m.ports.min,
                port_max: m.ports.max,
                latch: LatchPolicy {
                    mode,
                    relatch_after_silence: (m.relatch_after_silence_s > 0)
                        .then(|| Duration::from_secs(m.relatch_after_silence_s.into())),
                },
            })
        })
        .collect();
    RelayConfig {
        zones,
        quarantine: Duration::from_secs(c.media.quarantine_s.into()),
        media_timeout: Duration::from_secs(c.media.timeout_s.into()),
        workers: c.media.workers as usize,
        connect_latched: c.media.connect_latched,
        kernel_forward: c.media.kernel_forward,
        kernel_forward_interfaces: c.media.kernel_forward_interfaces.clone(),
        ..RelayConfig::default()
    }
}

/// Who sipwarden is in each zone that has a media address and a listener: per transport
/// (UDP, TCP, TLS) the zone's first listener of it, so that every leg speaks from the
/// listener of its own transport (a phone over TLS and an ITSP over UDP in one zone). The
/// first of them (UDP, else TCP, else TLS: a zone with `require_tls` has only TLS
/// listeners, and its calls must still be anchored) is the default; a wildcard stands for
/// the media address.
pub fn identities(c: &Config, bound: &Bound) -> Vec<ZoneIdentity> {
    let of = |p: config::Protocol| c.listen.iter().filter(move |l| l.transport == p);
    let socks: Vec<(&str, b2bua::SipTransport, SocketAddr)> = of(config::Protocol::Udp)
        .zip(&bound.udp)
        .map(|(l, a)| (l.zone.as_str(), b2bua::SipTransport::Udp, *a))
        .chain(
            of(config::Protocol::Tcp)
                .zip(&bound.tcp)
                .map(|(l, a)| (l.zone.as_str(), b2bua::SipTransport::Tcp, *a)),
        )
        .chain(
            of(config::Protocol::Tls)
                .zip(&bound.tls)
                .map(|(l, a)| (l.zone.as_str(), b2bua::SipTransport::Tls, *a)),
        )
        .collect();
    c.zone
        .iter()
        .filter_map(|z| {
            let media = c.media_bind(&z.name)?;
            let mut addresses: Vec<(b2bua::SipTransport, String)> = Vec::new();
            for (_, transport, addr) in socks.iter().filter(|(zone, _, _)| *zone == z.name) {
                if addresses.iter().any(|(t, _)| t == transport) {
                    continue;
                }
                let ip = if addr.ip().is_unspecified() {
                    media
                } else {
                    addr.ip()
                };
                let host = match ip {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                };
                addresses.push((*transport, format!("{host}:{}", addr.port())));
            }
            if addresses.is_empty() {
                return None;
            }
            Some(ZoneIdentity {
                name: z.name.clone(),
                addresses,
                domain: z.domain.clone(),
                trusted: z.trusted,
                // One mode per zone: the zone's first trunk sets it; a zone without a trunk
                // takes the B2BUA's default (local when untrusted, passthrough when trusted).
                refer: c
                    .trunk
                    .iter()
                    .find(|t| t.zone == z.name)
                    .map(|t| match t.refer {
                        config::ReferMode::Passthrough => b2bua::ReferMode::Passthrough,
                        config::ReferMode::Local => b2bua::ReferMode::Local,
                    }),
            })
        })
        .collect()
}

pub fn b2bua_config(c: &Config, zones: Vec<ZoneIdentity>) -> b2bua::B2buaConfig {
    let b = &c.b2bua;
    b2bua::B2buaConfig {
        zones,
        pass_headers: b.pass_headers.clone(),
        pass_asserted_identity: b.pass_asserted_identity,
        pass_user_agent: b.pass_user_agent,
        pass_redirects_to_untrusted: b.pass_redirects_to_untrusted,
        pass_body_types: b.pass_body_types.clone(),
        session_expires: (b.session_expires_s > 0)
            .then(|| Duration::from_secs(b.session_expires_s.into())),
        min_se: Duration::from_secs(b.min_se_s.into()),
        history_limit: b.history_limit as usize,
        id_seed: None,
    }
}

/// Starts the relay (and firewall) and builds the B2BUA, when calls between zones go through
/// them (`Config::media_active`). `Ok(None)`: every call is proxied.
pub fn start(c: &Config, bound: &Bound) -> Result<Option<CrossZone>, String> {
    if !c.media_active() {
        return Ok(None);
    }
    let ids = identities(c, bound);
    for z in &c.zone {
        if !ids.iter().any(|i| i.name == z.name) {
            warn!(
                "zone {}: no media address or no listener; its calls with other zones are \
                 proxied, their media is not relayed (set [[media.zone]] bind)",
                z.name
            );
        }
    }
    if ids.len() < 2 {
        return Ok(None);
    }
    let relay_cfg = relay_config(c);
    let firewall = match c.media.firewall {
        Firewall::Off => None,
        Firewall::Nftables => {
            let mut fc = media_firewall::FirewallConfig::for_relay(&relay_cfg);
            fc.table = c.media.firewall_table.clone();
            fc.element_timeout = Duration::from_secs(c.media.firewall_element_timeout_s.into());
            Some(
                media_firewall::Firewall::start(fc)
                    .map_err(|e| format!("media firewall (media.firewall = \"nftables\"): {e}"))?,
            )
        }
    };
    if firewall.is_some() {
        info!(
            "media firewall: nftables table inet {} follows the relay's ports",
            c.media.firewall_table
        );
    }
    let (relay, events) =
        MediaRelay::start_with_hook(&relay_cfg, firewall.as_ref().map(|f| f.hook())).map_err(
            |e| match e {
                media_relay::MediaError::KernelForward(_) => {
                    format!("media relay (media.kernel_forward = true): {e}")
                }
                e => format!("media relay: {e}"),
            },
        )?;
    if let Some(ifs) = relay.kernel_forward_interfaces() {
        info!(
            "media kernel fast path on {}: settled plain IPv4 RTP is forwarded at tc ingress, \
             before netfilter",
            ifs.join(", ")
        );
    }
    for z in &relay_cfg.zones {
        info!(
            "media zone {}: {} ports {}-{}, latching {:?}",
            z.name, z.bind, z.port_min, z.port_max, z.latch.mode
        );
    }
    let relay = Arc::new(relay);
    let (tx, timeouts) = mpsc::channel(256);
    // The relay's channel is blocking: a thread of its own moves its events to the engine.
    // It ends when the relay (its sender) is gone.
    std::thread::Builder::new()
        .name("media-events".into())
        .spawn(move || {
            while let Ok(ev) = events.recv() {
                if let MediaEvent::Timeout { id, idle } = ev {
                    info!("{id}: no media for {idle:?}, the call ends");
                    if tx.blocking_send(id.0).is_err() {
                        break;
                    }
                }
            }
        })
        .map_err(|e| format!("media event thread: {e}"))?;
    let port = LoggedRelay::new(relay.clone(), srtp_policies(c));
    let b2bua = B2bua::new(b2bua_config(c, ids), Box::new(port));
    Ok(Some(CrossZone {
        b2bua,
        zones: zone_networks(&c.zone),
        plane: MediaPlane { relay, firewall },
        timeouts,
    }))
}

/// The SRTP policy of every zone, from `[[media.zone]] srtp` and `srtp_suites`.
pub fn srtp_policies(c: &Config) -> HashMap<String, ZoneSrtpPolicy> {
    c.zone
        .iter()
        .map(|z| {
            let m = c.media_zone(&z.name);
            let mode = match m.srtp {
                SrtpMode::Plain => ZoneSrtpMode::Plain,
                SrtpMode::Terminate => ZoneSrtpMode::Terminate,
                SrtpMode::Rekey => ZoneSrtpMode::Rekey,
                SrtpMode::Passthrough => ZoneSrtpMode::Passthrough,
            };
            // The config validated the names; an unknown one is skipped rather than fatal.
            let suites: Vec<SrtpProfile> = m
                .srtp_suites
                .iter()
                .filter_map(|n| SrtpProfile::from_name(n))
                .collect();
            let mut policy = ZoneSrtpPolicy::new(mode);
            if !suites.is_empty() {
                policy.suites = suites;
            }
            (z.name.clone(), policy)
        })
        .collect()
}

/// The relay as the B2BUA's media port: applies the zones' SRTP policy to every offer and
/// answer (`a=crypto` lines, `RTP/SAVP` or `RTP/AVP`, the relay's SRTP transforms) and logs
/// each session's counters when it is released.
pub struct LoggedRelay {
    relay: Arc<MediaRelay>,
    srtp: HashMap<String, ZoneSrtpPolicy>,
    calls: HashMap<u64, SrtpCall>,
}

/// A call's zones (side A, side B) and per `m=` line SRTP state.
struct SrtpCall {
    zones: [String; 2],
    streams: Vec<SrtpStream>,
}

#[derive(Default)]
struct SrtpStream {
    pending: Pending,
    /// The `a=crypto` values each side (A, B) sent last, once an offer/answer completed:
    /// a re-offer that repeats them keeps the keys and transforms.
    last: [Option<Vec<String>>; 2],
    /// Per side the SDP is sent toward (A, B): `Some(true)` RTP/SAVP, `Some(false)` RTP/AVP,
    /// `None` as the peer wrote it.
    secure_toward: [Option<bool>; 2],
    /// Whether the relay holds a transform for packets received from side A, B: installing
    /// "none" where there is none already is a round trip to a relay thread (a wake-up there,
    /// a wait here), two per plain call, for nothing.
    transform_from: [bool; 2],
}

#[derive(Default)]
enum Pending {
    #[default]
    None,
    /// The re-offer repeated the established keys: the answer changes nothing either.
    Keep,
    Plan {
        offerer: MediaSide,
        plan: OfferPlan,
        offer_lines: Vec<String>,
        /// The offer was `RTP/SAVP(F)`: an SRTP answer keeps the offer's transport (RFC
        /// 3264), which lets best-effort SRTP offers (`RTP/AVP` with `a=crypto`) work.
        offer_savp: bool,
    },
}

fn idx(side: MediaSide) -> usize {
    match side {
        MediaSide::A => 0,
        MediaSide::B => 1,
    }
}

fn other(side: MediaSide) -> MediaSide {
    match side {
        MediaSide::A => MediaSide::B,
        MediaSide::B => MediaSide::A,
    }
}

fn relay_side(side: MediaSide) -> media_relay::Side {
    match side {
        MediaSide::A => media_relay::Side::A,
        MediaSide::B => media_relay::Side::B,
    }
}

/// `Some(values)`: the `a=crypto` values for `set_crypto`; and whether that side is SRTP.
fn crypto_lines(c: &CryptoLines) -> (Option<Vec<String>>, Option<bool>) {
    match c {
        CryptoLines::Untouched => (None, None),
        CryptoLines::Remove => (Some(Vec::new()), Some(false)),
        CryptoLines::Replace(ls) => (Some(ls.iter().map(|l| l.to_string()).collect()), Some(true)),
    }
}

/// The SRTP-relevant part of one `m=` line of an SDP.
struct MediaCrypto<'a> {
    /// RTP over UDP (`RTP/AVP(F)`, `RTP/SAVP(F)`) on a port other than 0.
    rtp: bool,
    savp: bool,
    crypto: Vec<sdp_message::Crypto<'a>>,
    values: Vec<String>,
}

fn media_crypto<'a>(sdp: &'a sdp_message::SessionDescription<'a>) -> Vec<MediaCrypto<'a>> {
    sdp.media
        .iter()
        .map(|m| {
            let rtp =
                m.port != 0 && matches!(m.proto, "RTP/AVP" | "RTP/SAVP" | "RTP/AVPF" | "RTP/SAVPF");
            // A malformed line cannot be used; the policy then sees the usable ones only.
            let crypto: Vec<_> = m.crypto().filter_map(Result::ok).collect();
            let values = m
                .attributes_named("crypto")
                .filter_map(|a| a.value.map(str::to_owned))
                .collect();
            MediaCrypto {
                rtp,
                savp: m.proto.starts_with("RTP/SAVP"),
                crypto,
                values,
            }
        })
        .collect()
}

/// Sets the transport of the `m=` lines whose stream has a decision to `RTP/SAVP(F)` or
/// `RTP/AVP(F)`, copying everything else byte for byte.
fn set_protos(sdp: &[u8], secure: &[Option<bool>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sdp.len() + 8);
    let mut m_index = 0usize;
    for line in sdp.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"m=") {
            out.extend_from_slice(line);
            continue;
        }
        let want = secure.get(m_index).copied().flatten();
        m_index += 1;
        let Some(want) = want else {
            out.extend_from_slice(line);
            continue;
        };
        // m=<media> <port> <proto> <fmt>...: the proto is the third token.
        let mut parts = line.splitn(4, |&b| b == b' ');
        let (Some(media), Some(port), Some(proto), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            out.extend_from_slice(line);
            continue;
        };
        let new: &[u8] = match (proto, want) {
            (b"RTP/AVP" | b"RTP/SAVP", true) => b"RTP/SAVP",
            (b"RTP/AVP" | b"RTP/SAVP", false) => b"RTP/AVP",
            (b"RTP/AVPF" | b"RTP/SAVPF", true) => b"RTP/SAVPF",
            (b"RTP/AVPF" | b"RTP/SAVPF", false) => b"RTP/AVPF",
            _ => proto,
        };
        for part in [media, b" ", port, b" ", new, b" ", rest] {
            out.extend_from_slice(part);
        }
    }
    out
}

fn not_acceptable(e: impl std::fmt::Display) -> MediaPortError {
    MediaPortError::NotAcceptable(e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> MediaPortError {
    MediaPortError::Unavailable(e.to_string())
}

impl LoggedRelay {
    pub fn new(relay: Arc<MediaRelay>, srtp: HashMap<String, ZoneSrtpPolicy>) -> LoggedRelay {
        LoggedRelay {
            relay,
            srtp,
            calls: HashMap::new(),
        }
    }

    fn policy(&self, zone: &str) -> ZoneSrtpPolicy {
        self.srtp.get(zone).cloned().unwrap_or_default()
    }

    fn srtp_offer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<Option<bool>>, MediaPortError> {
        // An SDP that does not parse is the relay's to refuse.
        let Ok(parsed) = sdp_message::parse(sdp) else {
            return Ok(Vec::new());
        };
        let media = media_crypto(&parsed);
        let Some(call) = self.calls.get(&id.0) else {
            return Ok(Vec::new());
        };
        let toward = other(from);
        let pol_from = self.policy(&call.zones[idx(from)]);
        let pol_to = self.policy(&call.zones[idx(toward)]);
        // Decide every stream before changing anything, so that a refusal leaves the call as
        // it was.
        let mut decided: Vec<Option<Pending>> = Vec::with_capacity(media.len());
        for (i, m) in media.iter().enumerate() {
            if !m.rtp {
                decided.push(None);
                continue;
            }
            let established = call.streams.get(i).and_then(|s| s.last[idx(from)].as_ref());
            if established == Some(&m.values) {
                decided.push(Some(Pending::Keep));
                continue;
            }
            let plan = plan_offer(&m.crypto, &pol_from, &pol_to).map_err(not_acceptable)?;
            decided.push(Some(Pending::Plan {
                offerer: from,
                plan,
                offer_lines: m.values.clone(),
                offer_savp: m.savp,
            }));
        }
        let Some(call) = self.calls.get_mut(&id.0) else {
            return Ok(Vec::new());
        };
        if call.streams.len() < decided.len() {
            call.streams.resize_with(decided.len(), SrtpStream::default);
        }
        let mut secure = Vec::with_capacity(decided.len());
        for (i, (d, st)) in decided.into_iter().zip(call.streams.iter_mut()).enumerate() {
            match d {
                None => st.pending = Pending::None,
                Some(Pending::Plan {
                    offerer,
                    plan,
                    offer_lines,
                    offer_savp,
                }) => {
                    let (lines, sec) = crypto_lines(&plan.forward_offer);
                    self.relay
                        .set_crypto(SessionId(id.0), relay_side(toward), i, lines)
                        .map_err(not_acceptable)?;
                    st.secure_toward[idx(toward)] = sec;
                    st.pending = Pending::Plan {
                        offerer,
                        plan,
                        offer_lines,
                        offer_savp,
                    };
                }
                Some(p) => st.pending = p,
            }
            secure.push(st.secure_toward[idx(toward)]);
        }
        Ok(secure)
    }

    fn srtp_answer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<Option<bool>>, MediaPortError> {
        let Ok(parsed) = sdp_message::parse(sdp) else {
            return Ok(Vec::new());
        };
        let media = media_crypto(&parsed);
        let Some(call) = self.calls.get_mut(&id.0) else {
            return Ok(Vec::new());
        };
        let toward = other(from);
        let sid = SessionId(id.0);
        let mut secure = Vec::with_capacity(call.streams.len());
        for (i, st) in call.streams.iter_mut().enumerate() {
            let answer = media.get(i);
            match std::mem::take(&mut st.pending) {
                Pending::None => {}
                Pending::Keep => {
                    let same = answer.map(|m| &m.values) == st.last[idx(from)].as_ref();
                    if !same {
                        return Err(not_acceptable(
                            "the answer to a re-offer that kept the SRTP keys changed its own",
                        ));
                    }
                }
                Pending::Plan {
                    offerer,
                    plan,
                    offer_lines,
                    offer_savp,
                } => {
                    if offerer == from {
                        return Err(not_acceptable("an answer from the offering side"));
                    }
                    let Some(m) = answer.filter(|m| m.rtp) else {
                        // The stream was refused (port 0): nothing to key.
                        st.last = [None, None];
                        continue;
                    };
                    let done = plan.on_answer(&m.crypto).map_err(not_acceptable)?;
                    let (lines, sec) = crypto_lines(&done.answer_lines);
                    self.relay
                        .set_crypto(sid, relay_side(toward), i, lines)
                        .map_err(unavailable)?;
                    st.secure_toward[idx(toward)] = sec.map(|srtp| srtp && offer_savp);
                    let boxed = |t: SrtpTransform| -> Option<Box<dyn PacketTransform>> {
                        match t {
                            SrtpTransform::Passthrough => None,
                            t => Some(Box::new(t)),
                        }
                    };
                    for (side, t) in [
                        (offerer, done.offerer_to_answerer),
                        (from, done.answerer_to_offerer),
                    ] {
                        let t = boxed(t);
                        let some = t.is_some();
                        if !some && !st.transform_from[idx(side)] {
                            continue;
                        }
                        self.relay
                            .set_transform(sid, i, relay_side(side), t)
                            .map_err(unavailable)?;
                        st.transform_from[idx(side)] = some;
                    }
                    st.last[idx(offerer)] = Some(offer_lines);
                    st.last[idx(from)] = Some(m.values.clone());
                    info!(
                        "media-{} m={i}: SRTP {:?} ({:?}) toward the offerer, {:?} ({:?}) toward the answerer",
                        id.0, done.offerer_side, done.offerer_reason, done.answerer_side,
                        done.answerer_reason
                    );
                }
            }
            secure.push(st.secure_toward[idx(toward)]);
        }
        Ok(secure)
    }
}

impl MediaPort for LoggedRelay {
    fn create_session(&mut self, a: &str, b: &str) -> Result<MediaSessionId, MediaPortError> {
        let id = self.relay.create_session(a, b)?;
        self.calls.insert(
            id.0,
            SrtpCall {
                zones: [a.to_owned(), b.to_owned()],
                streams: Vec::new(),
            },
        );
        Ok(id)
    }
    fn offer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        let secure = self.srtp_offer(id, from, sdp)?;
        let out = self.relay.offer(id, from, sdp)?;
        Ok(set_protos(&out, &secure))
    }
    fn answer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        let secure = self.srtp_answer(id, from, sdp)?;
        let out = self.relay.answer(id, from, sdp)?;
        Ok(set_protos(&out, &secure))
    }
    fn release(&mut self, id: MediaSessionId) {
        self.calls.remove(&id.0);
        // The counters cost a round trip to the session's relay thread (a wake-up there and a
        // wait here, per call): fetched only when the line that shows them is logged.
        let stats = if tracing::enabled!(tracing::Level::INFO) {
            self.relay.stats(SessionId(id.0)).ok()
        } else {
            None
        };
        if let Some(s) = stats {
            let (mut ab, mut ba, mut rtcp_ab, mut rtcp_ba) = (0, 0, 0, 0);
            let (mut kernel_ab, mut kernel_ba) = (0, 0);
            let mut drops = [media_relay::Drops::default(), media_relay::Drops::default()];
            for st in &s.streams {
                ab += st.a_to_b.rtp_out;
                ba += st.b_to_a.rtp_out;
                rtcp_ab += st.a_to_b.rtcp_out;
                rtcp_ba += st.b_to_a.rtcp_out;
                kernel_ab += st.a_to_b.rtp_kernel;
                kernel_ba += st.b_to_a.rtp_kernel;
                drops[0].merge(&st.a_to_b.drops);
                drops[1].merge(&st.b_to_a.drops);
            }
            // The reasons tell an SRTP key mismatch (transform_auth) from a latching problem.
            let reasons: Vec<String> = drops
                .iter()
                .zip(["a->b", "b->a"])
                .flat_map(|(d, dir)| {
                    d.iter()
                        .filter(|(_, n)| *n > 0)
                        .map(move |(r, n)| format!("{dir} {} {n}", r.as_str()))
                })
                .collect();
            let total = drops[0].total() + drops[1].total();
            info!(
                "media-{} released: RTP relayed a->b {ab} packets, b->a {ba} packets, {} dropped{}; \
                 RTCP a->b {rtcp_ab}, b->a {rtcp_ba}{}",
                id.0,
                total,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                },
                // Of the RTP relayed, what `[media] kernel_forward` moved without a system call.
                if kernel_ab + kernel_ba > 0 {
                    format!("; RTP in the kernel a->b {kernel_ab}, b->a {kernel_ba}")
                } else {
                    String::new()
                }
            );
        }
        self.relay.release(id);
    }
}

/// UDP sources by zone: a message to an address of zone Z (not on a known flow) leaves from
/// Z's first UDP socket, so that the peer sees the address our Via and Contact name there.
#[derive(Debug, Clone, Default)]
pub struct SourceSelect {
    udp: Vec<(String, SocketAddr)>,
}

impl SourceSelect {
    pub fn new(c: &Config, bound: &Bound) -> SourceSelect {
        let udp = c
            .listen
            .iter()
            .filter(|l| l.transport == config::Protocol::Udp)
            .zip(&bound.udp)
            .map(|(l, a)| (l.zone.clone(), *a))
            .collect();
        SourceSelect { udp }
    }

    pub fn local_for(&self, zones: &[ZoneConfig], remote: SocketAddr) -> Option<SocketAddr> {
        let ip = remote.ip().to_canonical();
        let zone = zones.iter().find(|z| z.contains(ip))?;
        self.udp
            .iter()
            .find(|(z, a)| *z == zone.name && a.is_ipv4() == remote.is_ipv4())
            .map(|(_, a)| *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_srtp::sdes::SdesCrypto;

    fn load(text: &str) -> Config {
        Config::from_str_with(text, "t.toml", &config::Overrides::none()).unwrap()
    }

    const TWO: &str = "[[zone]]\nname = \"lan\"\nnetworks = [\"127.0.1.0/24\"]\ntrusted = true\n\
        [[zone]]\nname = \"wan\"\nnetworks = [\"127.0.2.0/24\"]\n\
        [[listen]]\nzone = \"lan\"\naddress = \"127.0.1.1:5060\"\n\
        [[listen]]\nzone = \"wan\"\naddress = \"127.0.2.1:5060\"\n\
        [[media.zone]]\nzone = \"wan\"\nports = \"31000-31099\"\nlatching = \"strict\"\n";

    fn bound() -> Bound {
        Bound {
            udp: vec![
                "127.0.1.1:5060".parse().unwrap(),
                "127.0.2.1:5060".parse().unwrap(),
            ],
            tcp: vec![],
            tls: vec![],
        }
    }

    #[test]
    fn relay_and_b2bua_settings_follow_the_file() {
        let c = load(TWO);
        let r = relay_config(&c);
        assert_eq!(r.zones.len(), 2);
        assert_eq!(r.zones[1].bind, "127.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!((r.zones[1].port_min, r.zones[1].port_max), (31000, 31099));
        assert_eq!(r.zones[1].latch.mode, LatchMode::Strict);
        assert_eq!(r.zones[0].latch.mode, LatchMode::SdpAddress);
        assert!(!r.kernel_forward);
        let mut k = c.clone();
        k.media.kernel_forward = true;
        k.media.kernel_forward_interfaces = Some(vec!["eth1".into()]);
        let r = relay_config(&k);
        assert!(r.kernel_forward);
        assert_eq!(r.kernel_forward_interfaces, Some(vec!["eth1".to_owned()]));
        let ids = identities(&c, &bound());
        let udp = b2bua::SipTransport::Udp;
        assert_eq!(ids[0].addresses, vec![(udp, "127.0.1.1:5060".to_owned())]);
        assert!(ids[0].trusted);
        assert_eq!(ids[1].addresses, vec![(udp, "127.0.2.1:5060".to_owned())]);
        // The config's defaults are the B2BUA's.
        let d = b2bua_config(&c, Vec::new());
        let want = b2bua::B2buaConfig::default();
        assert_eq!(d.pass_headers, want.pass_headers);
        assert_eq!(d.pass_body_types, want.pass_body_types);
        assert_eq!(d.session_expires, want.session_expires);
        assert_eq!(d.min_se, want.min_se);
        assert_eq!(d.history_limit, want.history_limit);
    }

    #[test]
    fn every_listener_transport_of_a_zone_is_in_its_identity() {
        // A require_tls zone may only have TLS listeners; without an identity its calls
        // would be proxied with their media unrelayed.
        let text = "[[zone]]\nname = \"lan\"\nnetworks = [\"127.0.1.0/24\"]\n\
            [[zone]]\nname = \"wan\"\nnetworks = [\"127.0.2.0/24\"]\n\
            [[listen]]\nzone = \"lan\"\naddress = \"127.0.1.1:5060\"\n\
            [[listen]]\nzone = \"lan\"\ntransport = \"tls\"\naddress = \"127.0.1.1:5061\"\n\
            [[listen]]\nzone = \"wan\"\ntransport = \"tls\"\naddress = \"127.0.2.1:5061\"\n\
            [tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n\
            [tls.zone.wan]\nrequire_tls = true\n";
        let c = load(text);
        let b = Bound {
            udp: vec!["127.0.1.1:5060".parse().unwrap()],
            tcp: vec![],
            tls: vec![
                "127.0.1.1:5061".parse().unwrap(),
                "127.0.2.1:5061".parse().unwrap(),
            ],
        };
        let ids = identities(&c, &b);
        assert_eq!(ids.len(), 2);
        use b2bua::SipTransport::{Tls, Udp};
        // UDP first (the default) where a zone has it, and its TLS listener for TLS legs.
        assert_eq!(
            ids[0].addresses,
            vec![
                (Udp, "127.0.1.1:5060".to_owned()),
                (Tls, "127.0.1.1:5061".to_owned())
            ]
        );
        assert_eq!(ids[0].address(Tls), Some("127.0.1.1:5061"));
        assert_eq!(ids[1].addresses, vec![(Tls, "127.0.2.1:5061".to_owned())]);
    }

    #[test]
    fn messages_leave_from_the_socket_of_the_destination_zone() {
        let c = load(TWO);
        let s = SourceSelect::new(&c, &bound());
        assert_eq!(
            s.local_for(&c.zone, "127.0.2.9:5070".parse().unwrap()),
            Some("127.0.2.1:5060".parse().unwrap())
        );
        assert_eq!(
            s.local_for(&c.zone, "127.0.1.9:5070".parse().unwrap()),
            Some("127.0.1.1:5060".parse().unwrap())
        );
        assert_eq!(
            s.local_for(&c.zone, "192.0.2.1:5060".parse().unwrap()),
            None
        );
    }

    fn relay_wan_lan(wan: ZoneSrtpMode, lan: ZoneSrtpMode, base: u16) -> LoggedRelay {
        let zone = |name: &str, min: u16| media_relay::ZoneConfig {
            name: name.into(),
            bind: "127.0.0.1".parse().unwrap(),
            advertise: None,
            port_min: min,
            port_max: min + 99,
            latch: LatchPolicy {
                mode: LatchMode::SdpAddress,
                relatch_after_silence: None,
            },
        };
        let cfg = RelayConfig {
            zones: vec![zone("wan", base), zone("lan", base + 100)],
            media_timeout: Duration::from_secs(60),
            workers: 1,
            ..RelayConfig::default()
        };
        let (relay, _events) = MediaRelay::start(&cfg).unwrap();
        let policies = [
            ("wan".to_owned(), ZoneSrtpPolicy::new(wan)),
            ("lan".to_owned(), ZoneSrtpPolicy::new(lan)),
        ]
        .into_iter()
        .collect();
        LoggedRelay::new(Arc::new(relay), policies)
    }

    fn sdp(port: u16, proto: &str, crypto: Option<&str>) -> Vec<u8> {
        let mut s = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} {proto} 0\r\na=rtcp-mux\r\n"
        );
        if let Some(c) = crypto {
            s.push_str(&format!("{c}\r\n"));
        }
        s.into_bytes()
    }

    fn crypto_of(sdp: &[u8]) -> Vec<SdesCrypto> {
        let parsed = sdp_message::parse(sdp).unwrap();
        parsed.media[0]
            .crypto()
            .map(|c| SdesCrypto::from_sdp(&c.unwrap()).unwrap())
            .collect()
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![
            0x80,
            0,
            (seq >> 8) as u8,
            seq as u8,
            0,
            0,
            0,
            160,
            1,
            2,
            3,
            4,
        ];
        p.extend((0..160u32).map(|i| (i as u8) ^ (seq as u8)));
        p
    }

    fn recv(sock: &std::net::UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn terminated_srtp_from_wan_is_plain_rtp_on_lan_and_back() {
        let mut port = relay_wan_lan(ZoneSrtpMode::Terminate, ZoneSrtpMode::Plain, 41200);
        let wan_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let lan_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&wan_peer, &lan_peer] {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        }
        let offered = SdesCrypto::generate(1, SrtpProfile::AesCm128HmacSha1_80).unwrap();
        let id = port.create_session("wan", "lan").unwrap();
        let offer = sdp(
            wan_peer.local_addr().unwrap().port(),
            "RTP/SAVP",
            Some(&offered.attribute_line()),
        );
        let to_lan = port.offer(id, MediaSide::A, &offer).unwrap();
        let text = String::from_utf8(to_lan.clone()).unwrap();
        assert!(text.contains(" RTP/AVP 0\r\n"), "{text}");
        assert!(!text.contains("a=crypto"), "{text}");
        let answer = sdp(lan_peer.local_addr().unwrap().port(), "RTP/AVP", None);
        let to_wan = port.answer(id, MediaSide::B, &answer).unwrap();
        let text = String::from_utf8(to_wan.clone()).unwrap();
        assert!(text.contains(" RTP/SAVP 0\r\n"), "{text}");
        let ours = crypto_of(&to_wan);
        assert_eq!(ours.len(), 1, "{text}");
        assert_eq!(ours[0].profile(), SrtpProfile::AesCm128HmacSha1_80);
        // Both directions have a transform installed (and known to be).
        assert_eq!(port.calls[&id.0].streams[0].transform_from, [true, true]);
        let ports = port.relay.ports(SessionId(id.0)).unwrap()[0];

        // wan -> lan: SRTP with the offered key arrives as the same plain RTP.
        let mut tx = offered.context();
        for seq in 1..=3u16 {
            let plain = rtp(seq);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
            assert_ne!(&buf[12..plain.len()], &plain[12..]);
            wan_peer.send_to(&buf[..n], ("127.0.0.1", ports.a)).unwrap();
            assert_eq!(recv(&lan_peer), plain);
        }
        // lan -> wan: plain RTP leaves as SRTP under the key of our answer.
        let mut rx = ours[0].context();
        for seq in 100..=102u16 {
            let plain = rtp(seq);
            lan_peer.send_to(&plain, ("127.0.0.1", ports.b)).unwrap();
            let mut got = recv(&wan_peer);
            assert_eq!(got.len(), plain.len() + 10);
            let len = got.len();
            let n = rx.unprotect_rtp(&mut got, len).unwrap();
            assert_eq!(&got[..n], &plain[..]);
        }

        // A re-offer with the same keys keeps them: same lines, no rekeying.
        let again = port.offer(id, MediaSide::A, &offer).unwrap();
        assert_eq!(again, to_lan);
        let again = port.answer(id, MediaSide::B, &answer).unwrap();
        assert_eq!(crypto_of(&again)[0].to_string(), ours[0].to_string());
        let plain = rtp(200);
        lan_peer.send_to(&plain, ("127.0.0.1", ports.b)).unwrap();
        let mut got = recv(&wan_peer);
        let len = got.len();
        let n = rx.unprotect_rtp(&mut got, len).unwrap();
        assert_eq!(&got[..n], &plain[..]);

        // A re-offer with a new key is planned again: a new key of ours in the answer.
        let fresh = SdesCrypto::generate(1, SrtpProfile::AesCm128HmacSha1_80).unwrap();
        let reoffer = sdp(
            wan_peer.local_addr().unwrap().port(),
            "RTP/SAVP",
            Some(&fresh.attribute_line()),
        );
        port.offer(id, MediaSide::A, &reoffer).unwrap();
        let again = port.answer(id, MediaSide::B, &answer).unwrap();
        assert_ne!(crypto_of(&again)[0].to_string(), ours[0].to_string());
        port.release(id);
    }

    #[test]
    fn a_plain_call_installs_no_transform_and_relays_rtp_as_it_is() {
        let mut port = relay_wan_lan(ZoneSrtpMode::Plain, ZoneSrtpMode::Plain, 42000);
        let wan_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let lan_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&wan_peer, &lan_peer] {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        }
        let id = port.create_session("wan", "lan").unwrap();
        let offer = sdp(wan_peer.local_addr().unwrap().port(), "RTP/AVP", None);
        port.offer(id, MediaSide::A, &offer).unwrap();
        let answer = sdp(lan_peer.local_addr().unwrap().port(), "RTP/AVP", None);
        port.answer(id, MediaSide::B, &answer).unwrap();
        assert_eq!(port.calls[&id.0].streams[0].transform_from, [false, false]);
        let ports = port.relay.ports(SessionId(id.0)).unwrap()[0];
        for seq in 1..=2u16 {
            wan_peer.send_to(&rtp(seq), ("127.0.0.1", ports.a)).unwrap();
            assert_eq!(recv(&lan_peer), rtp(seq));
            lan_peer
                .send_to(&rtp(seq + 50), ("127.0.0.1", ports.b))
                .unwrap();
            assert_eq!(recv(&wan_peer), rtp(seq + 50));
        }
        port.release(id);
    }

    #[test]
    fn a_best_effort_srtp_offer_gets_an_rtp_avp_answer_with_crypto() {
        let mut port = relay_wan_lan(ZoneSrtpMode::Terminate, ZoneSrtpMode::Plain, 41800);
        let offered = SdesCrypto::generate(1, SrtpProfile::AesCm128HmacSha1_80).unwrap();
        let id = port.create_session("wan", "lan").unwrap();
        let offer = sdp(40000, "RTP/AVP", Some(&offered.attribute_line()));
        let to_lan = String::from_utf8(port.offer(id, MediaSide::A, &offer).unwrap()).unwrap();
        assert!(
            to_lan.contains(" RTP/AVP 0\r\n") && !to_lan.contains("crypto"),
            "{to_lan}"
        );
        let answer = sdp(40002, "RTP/AVP", None);
        let to_wan = port.answer(id, MediaSide::B, &answer).unwrap();
        let text = String::from_utf8(to_wan.clone()).unwrap();
        assert!(text.contains(" RTP/AVP 0\r\n"), "{text}");
        assert_eq!(crypto_of(&to_wan).len(), 1, "{text}");
        port.release(id);
    }

    #[test]
    fn a_terminate_zone_without_crypto_is_refused_and_plain_zones_are_untouched() {
        let mut port = relay_wan_lan(ZoneSrtpMode::Terminate, ZoneSrtpMode::Plain, 41400);
        let id = port.create_session("wan", "lan").unwrap();
        let e = port
            .offer(id, MediaSide::A, &sdp(40000, "RTP/AVP", None))
            .unwrap_err();
        assert!(matches!(e, MediaPortError::NotAcceptable(_)), "{e:?}");
        port.release(id);

        let mut port = relay_wan_lan(ZoneSrtpMode::Plain, ZoneSrtpMode::Plain, 41600);
        let id = port.create_session("wan", "lan").unwrap();
        let out = port
            .offer(id, MediaSide::A, &sdp(40000, "RTP/AVP", None))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(" RTP/AVP 0\r\n") && !text.contains("crypto"),
            "{text}"
        );
        port.release(id);
    }

    #[test]
    fn protos_change_only_on_decided_rtp_lines() {
        let sdp = b"v=0\r\nm=audio 1 RTP/SAVP 0 8\r\na=x\r\nm=video 2 RTP/AVPF 96\r\n\
                    m=application 3 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let out = set_protos(sdp, &[Some(false), Some(true), Some(false)]);
        assert_eq!(
            out,
            b"v=0\r\nm=audio 1 RTP/AVP 0 8\r\na=x\r\nm=video 2 RTP/SAVPF 96\r\n\
              m=application 3 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        );
        assert_eq!(set_protos(sdp, &[None]), sdp.to_vec());
    }

    #[test]
    fn zone_policies_follow_the_config() {
        let text = format!("{TWO}srtp = \"terminate\"\nsrtp_suites = [\"AEAD_AES_128_GCM\"]\n");
        let p = srtp_policies(&load(&text));
        assert_eq!(p["wan"].mode, ZoneSrtpMode::Terminate);
        assert_eq!(p["wan"].suites, vec![SrtpProfile::AeadAes128Gcm]);
        assert_eq!(p["lan"], ZoneSrtpPolicy::default());
    }

    #[test]
    fn one_zone_starts_no_media() {
        assert!(start(&Config::default(), &Bound::default())
            .unwrap()
            .is_none());
    }
}
