//! Calls between zones: the media relay (and its optional nftables firewall) and the B2BUA the
//! engine drives, built from `[media]`, `[[media.zone]]`, `[b2bua]` and the zones.
//!
//! The relay's events (`MediaEvent::Timeout`) arrive on a blocking channel; one thread moves
//! them into a bounded tokio channel that the engine task selects on. Each released session's
//! counters are logged (`media-N released: ...`), which is what an operator (and the e2e test)
//! reads to see that media flowed both ways.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use call_engine::b2bua::{
    self, B2bua, MediaPort, MediaPortError, MediaSessionId, MediaSide, ZoneIdentity,
};
use call_engine::ZoneNetworks;
use config::{Config, Firewall, Latching, ZoneConfig};
use media_relay::{LatchMode, LatchPolicy, MediaEvent, MediaRelay, RelayConfig, SessionId};
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
                "media relay stopped: {} RTP and {} RTCP packets relayed, {} dropped",
                t.rtp_out,
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
        ..RelayConfig::default()
    }
}

/// Who sipwarden is in each zone that has a media address and a listener: the first UDP
/// listener's bound address (else TCP); a wildcard stands for the media address.
pub fn identities(c: &Config, bound: &Bound) -> Vec<ZoneIdentity> {
    let udp = c
        .listen
        .iter()
        .filter(|l| l.transport == config::Protocol::Udp);
    let tcp = c
        .listen
        .iter()
        .filter(|l| l.transport == config::Protocol::Tcp);
    let socks: Vec<(&str, &str, SocketAddr)> = udp
        .zip(&bound.udp)
        .map(|(l, a)| (l.zone.as_str(), "UDP", *a))
        .chain(
            tcp.zip(&bound.tcp)
                .map(|(l, a)| (l.zone.as_str(), "TCP", *a)),
        )
        .collect();
    c.zone
        .iter()
        .filter_map(|z| {
            let media = c.media_bind(&z.name)?;
            let (_, transport, addr) = socks.iter().find(|(zone, _, _)| *zone == z.name)?;
            let ip = if addr.ip().is_unspecified() {
                media
            } else {
                addr.ip()
            };
            let host = match ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            Some(ZoneIdentity {
                name: z.name.clone(),
                address: format!("{host}:{}", addr.port()),
                transport: (*transport).to_owned(),
                domain: z.domain.clone(),
                trusted: z.trusted,
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
        MediaRelay::start_with_hook(&relay_cfg, firewall.as_ref().map(|f| f.hook()))
            .map_err(|e| format!("media relay: {e}"))?;
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
    let port = LoggedRelay(relay.clone());
    let b2bua = B2bua::new(b2bua_config(c, ids), Box::new(port));
    Ok(Some(CrossZone {
        b2bua,
        zones: zone_networks(&c.zone),
        plane: MediaPlane { relay, firewall },
        timeouts,
    }))
}

/// The relay as the B2BUA's media port, logging each session's counters when it is released.
struct LoggedRelay(Arc<MediaRelay>);

impl MediaPort for LoggedRelay {
    fn create_session(&mut self, a: &str, b: &str) -> Result<MediaSessionId, MediaPortError> {
        self.0.create_session(a, b)
    }
    fn offer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        self.0.offer(id, from, sdp)
    }
    fn answer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        self.0.answer(id, from, sdp)
    }
    fn release(&mut self, id: MediaSessionId) {
        if let Ok(s) = self.0.stats(SessionId(id.0)) {
            let (mut ab, mut ba) = (0, 0);
            let mut drops = 0;
            for st in &s.streams {
                ab += st.a_to_b.rtp_out;
                ba += st.b_to_a.rtp_out;
                drops += st.a_to_b.drops.total() + st.b_to_a.drops.total();
            }
            info!(
                "media-{} released: RTP relayed a->b {ab} packets, b->a {ba} packets, {drops} dropped",
                id.0
            );
        }
        self.0.release(id);
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
        let ids = identities(&c, &bound());
        assert_eq!(ids[0].address, "127.0.1.1:5060");
        assert!(ids[0].trusted);
        assert_eq!(ids[1].address, "127.0.2.1:5060");
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

    #[test]
    fn one_zone_starts_no_media() {
        assert!(start(&Config::default(), &Bound::default())
            .unwrap()
            .is_none());
    }
}
