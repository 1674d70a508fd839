//! Calls that cross zones: the engine hands them to the B2BUA (crate `b2bua`), which it drives
//! with its own transaction layer. Calls within one zone are proxied as before.
//!
//! Routing: an initial INVITE's zone is the zone of its source address; the target's zone is
//! the zone of the address the first target would be sent to (the first Route, else the
//! registered source address and flow of a binding, else the Request-URI's host). Different
//! zones: leg A stays with the caller, leg B goes to that target from the target's zone.
//! Forking across zones is not done: the first (highest q) target is called.
//!
//! Trunks and next hops (module `route`) come first: [`Engine::b2b_route`] asks
//! `edge_route`, and a request for one of our users that the location service cannot place
//! goes to [`Engine::b2b_unresolved`] before it is refused.
//!
//! Hooks in the engine (each a line): [`Engine::pump`] offers every transaction-layer event to
//! the B2BUA first ([`Engine::b2b_tu_event`]), `on_request` asks [`Engine::b2b_route`] before
//! starting a proxy context (and `b2b_unresolved` before a 404/480), and the timeout functions
//! add the B2BUA's timers.

use std::net::IpAddr;
use std::time::Instant;

use b2bua::{B2bua, MediaSessionId, RouteDecision};
use ipnet::IpNet;
use sip_message::headers::Route;
use sip_message::{Message, TypedHeader};
use sip_transaction::{Destination, ServerTxId, Source, TuEvent};

use crate::engine::{Engine, Event};
use crate::proxy::Target;

/// A zone as the routing sees it: a name and the networks whose addresses belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneNetworks {
    pub name: String,
    pub networks: Vec<IpNet>,
}

/// The B2BUA and the zones that decide which calls it takes.
pub(crate) struct CrossZone {
    pub(crate) b2bua: B2bua,
    pub(crate) zones: Vec<ZoneNetworks>,
    /// Trunks and next hops (crate::route).
    pub(crate) routes: crate::route::EdgeRoutes,
}

impl Engine {
    /// Calls between zones go through `b2bua` (its [`b2bua::B2buaConfig::zones`] name the same
    /// zones as `zones`). Without this, every call is proxied.
    pub fn with_b2bua(mut self, zones: Vec<ZoneNetworks>, b2bua: B2bua) -> Engine {
        let routes = self.cross.take().map(|c| c.routes).unwrap_or_default();
        self.cross = Some(CrossZone {
            b2bua,
            zones,
            routes,
        });
        self
    }

    /// New networks for the zones (a reload); calls in progress keep their legs.
    pub fn set_zone_networks(&mut self, zones: Vec<ZoneNetworks>) {
        if let Some(c) = self.cross.as_mut() {
            c.zones = zones;
        }
    }

    /// The B2BUA, when calls between zones go through one.
    pub fn b2bua(&self) -> Option<&B2bua> {
        self.cross.as_ref().map(|c| &c.b2bua)
    }

    /// The media relay reported no media in session `session` (`MediaEvent::Timeout`): the
    /// call that owns it ends with BYE both ways. Drain [`Engine::poll_output`] afterwards.
    pub fn media_timeout(&mut self, now: Instant, session: u64) {
        if let Some(c) = self.cross.as_mut() {
            c.b2bua
                .media_timeout(now, &mut self.layer, MediaSessionId(session));
        }
        self.drain_b2b_events();
        self.pump(now);
    }

    /// The zone whose networks hold `ip` (IPv4-mapped IPv6 counts as IPv4); when networks of
    /// several zones do, the most specific one (longest prefix) decides, so that the WAN can
    /// be `0.0.0.0/0` around the LAN.
    pub(crate) fn zone_of(&self, ip: IpAddr) -> Option<&str> {
        let ip = ip.to_canonical();
        self.cross
            .as_ref()?
            .zones
            .iter()
            .filter_map(|z| {
                z.networks
                    .iter()
                    .filter(|n| n.contains(&ip))
                    .map(IpNet::prefix_len)
                    .max()
                    .map(|len| (len, z.name.as_str()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, name)| name)
    }

    /// Offers a transaction-layer event to the B2BUA; gives it back when it is not one of its
    /// calls (or there is no B2BUA).
    pub(crate) fn b2b_tu_event(&mut self, now: Instant, ev: TuEvent) -> Option<TuEvent> {
        let Some(c) = self.cross.as_mut() else {
            return Some(ev);
        };
        let back = c.b2bua.handle_tu_event(now, &mut self.layer, ev);
        self.drain_b2b_events();
        back
    }

    pub(crate) fn b2b_timeout(&mut self, now: Instant) {
        if let Some(c) = self.cross.as_mut() {
            c.b2bua.handle_timeout(now, &mut self.layer);
        }
        self.drain_b2b_events();
    }

    pub(crate) fn b2b_poll_timeout(&self) -> Option<Instant> {
        self.cross.as_ref().and_then(|c| c.b2bua.poll_timeout())
    }

    fn drain_b2b_events(&mut self) {
        while let Some(e) = self.cross.as_mut().and_then(|c| c.b2bua.poll_event()) {
            self.event(Event::Call(e));
        }
    }

    /// An initial INVITE for a trunk or a next hop (crate::route), or whose first target is
    /// in another zone than its source, goes to the B2BUA: returns true when it took it (the
    /// caller got an answer either way).
    pub(crate) fn b2b_route(
        &mut self,
        now: Instant,
        id: ServerTxId,
        work: &Message,
        source: Source,
        groups: &[Vec<Target>],
    ) -> bool {
        if self.cross.is_none() || !crate::route::is_initial_invite(work) {
            return false;
        }
        let Some(za) = self.zone_of(source.remote.ip()).map(str::to_owned) else {
            return false;
        };
        if let Some(route) = self.edge_route(work, source, &za) {
            self.b2b_start(now, id, work, source, &za, route);
            return true;
        }
        if self.bounces_back(work, source, &za) {
            self.reject(now, id, work, source, 404, "Not Found", &[]);
            return true;
        }
        if self.trunk_of(source.remote.ip()).is_some() {
            // A provider's call with no next hop to take it: never sent back out (sipwarden
            // is no relay between the provider and the rest of the Internet).
            self.reject(now, id, work, source, 404, "Not Found", &[]);
            return true;
        }
        let Some(target) = groups.first().and_then(|g| g.first()) else {
            return false;
        };
        let Some(next_hop) = self.next_hop(work, target) else {
            return false;
        };
        let Some(zb) = self.zone_of(next_hop.remote.ip()).map(str::to_owned) else {
            return false;
        };
        if za == zb {
            return false;
        }
        let route = RouteDecision {
            target: target.uri.clone(),
            next_hop,
            zone: zb,
        };
        self.b2b_start(now, id, work, source, &za, route);
        true
    }

    /// Hands the call to the B2BUA (which answers the caller itself when it cannot start it).
    pub(crate) fn b2b_start(
        &mut self,
        now: Instant,
        id: ServerTxId,
        work: &Message,
        source: Source,
        za: &str,
        route: RouteDecision,
    ) {
        if let Some(c) = self.cross.as_mut() {
            if let Err(e) =
                c.b2bua
                    .start_call(now, &mut self.layer, id, work.clone(), source, za, route)
            {
                self.stats.local_rejections += 1;
                self.event(Event::Dropped {
                    reason: format!("call from zone {za} not started: {e}"),
                    source: Some(source),
                });
            }
        }
        self.drain_b2b_events();
    }

    /// An INVITE to our own address whose Replaces names a dialog of a B2BUA call: the
    /// B2BUA starts it towards that dialog's far end, with Replaces mapped to the identifiers
    /// the far end knows. `false`: not such an INVITE, the caller answers it as before.
    pub(crate) fn b2b_replaces(
        &mut self,
        now: Instant,
        id: ServerTxId,
        work: &Message,
        source: Source,
    ) -> bool {
        let Some(route) = self
            .cross
            .as_ref()
            .and_then(|c| c.b2bua.replaces_route(work))
        else {
            return false;
        };
        let Some(za) = self.zone_of(source.remote.ip()).map(str::to_owned) else {
            return false;
        };
        if let Some(c) = self.cross.as_mut() {
            if let Err(e) =
                c.b2bua
                    .start_call(now, &mut self.layer, id, work.clone(), source, &za, route)
            {
                self.stats.local_rejections += 1;
                self.event(Event::Dropped {
                    reason: format!("INVITE with Replaces from zone {za} not started: {e}"),
                    source: Some(source),
                });
            }
        }
        self.drain_b2b_events();
        true
    }

    /// Where the request would go for `target`: the first Route (the target's Path first),
    /// else the binding's fixed destination, else the Request-URI.
    fn next_hop(&self, work: &Message, target: &Target) -> Option<Destination> {
        let first_route = match target.route.first() {
            Some(p) => Route::parse_value(p)
                .ok()
                .map(|r| r.uri.as_str().to_owned()),
            None => work
                .routes()
                .next()
                .and_then(|r| r.ok())
                .map(|r| r.uri.as_str().to_owned()),
        };
        if let Some(uri) = first_route {
            return self.destination_of(&uri).ok().map(|(d, _)| d);
        }
        if let Some((d, _)) = target.fixed {
            return Some(d);
        }
        self.destination_of(&target.uri).ok().map(|(d, _)| d)
    }
}
