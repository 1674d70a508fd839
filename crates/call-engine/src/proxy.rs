//! The stateful proxy (RFC 3261 section 16): request validation (16.3), route information
//! preprocessing (16.4), target determination (16.5), forwarding (16.6), response processing
//! (16.7), Timer C (16.8), CANCEL (16.10, 9.2), and the stateless paths: ACK for 2xx and
//! responses that match no transaction (16.11).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use sip_message::headers::{MaxForwards, ProxyRequire, Route, Via};
use sip_message::{Editor, HeaderName, Message, Method, TypedHeader, Uri};
use sip_transaction::{ClientTxId, Destination, FlowId, ServerTxId, Source, TxId};
use store::Binding;

use crate::engine::{Engine, EngineTimer, Event};
use crate::resolve::uri_destination;
use crate::settings::{ContactRouting, ForkMode, Transport};
use crate::util::{self, canonical_aor, name_addr_text, Fnv};

/// The methods the engine answers itself (OPTIONS to us, REGISTER to our domains).
pub(crate) const LOCAL_ALLOW: &str = "OPTIONS, REGISTER";

/// What a proxied request may carry (advertised in a 200 to OPTIONS).
pub(crate) const PROXY_ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

/// One place a request is forwarded to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The Request-URI of the forwarded request.
    pub uri: String,
    /// Route values to put in front (a Path vector, RFC 3327 5.4).
    pub route: Vec<String>,
    /// A destination fixed by the registration (its source address and flow).
    pub fixed: Option<(Destination, Transport)>,
    /// `q` in permille.
    pub q: u16,
}

#[derive(Debug)]
pub(crate) struct Branch {
    tx: Option<ClientTxId>,
    /// The final status this branch is counted with (2xx included).
    final_status: Option<u16>,
    /// The final non-2xx response, our Via removed (or made up: 408, 503).
    response: Option<Message>,
    provisional: bool,
    cancel_sent: bool,
    /// When Timer C fires (16.6 item 11); moved on by provisional responses, `None` once the
    /// branch is final. One heap entry per branch: a fired entry re-arms for a later deadline.
    timer_c: Option<Instant>,
    timer_c_fired: bool,
}

impl Branch {
    fn pending(&self) -> bool {
        self.final_status.is_none()
    }
}

/// A response context (RFC 3261 16.7): one server transaction and its branches.
#[derive(Debug)]
pub(crate) struct ProxyCtx {
    server: ServerTxId,
    source: Source,
    /// The request after 16.4 and the Via fix-up: what is forwarded and what local responses
    /// are built from.
    request: Message,
    invite: bool,
    method: String,
    call_id: String,
    loop_hash: u64,
    /// Record-Route (16.6 item 4): the transport the request came in on and whether the
    /// Request-URI is SIPS; the value is made per branch, for the family of its next hop.
    record_route: Option<(Transport, bool)>,
    branches: Vec<Branch>,
    /// q-groups not tried yet.
    later: VecDeque<Vec<Target>>,
    final_sent: bool,
    /// After a 2xx, a 6xx or an upstream CANCEL: no new branches (16.7 item 5, 16.10).
    no_new_branches: bool,
    /// Client transactions not terminated yet; the context lives until they are.
    live_clients: usize,
}

/// Where a request goes after 16.4.
enum Disposition {
    /// Answered here (OPTIONS, REGISTER, ...): the Request-URI names us or our domain with no
    /// user part, and no Route is left.
    Local,
    /// Location service lookup for this AOR.
    Location(String),
    /// The Request-URI (and the Route set) decide.
    Forward,
}

impl Engine {
    // ------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------

    pub(crate) fn on_request(
        &mut self,
        now: Instant,
        id: ServerTxId,
        msg: Message,
        source: Source,
    ) {
        // 16.3 item 1: reasonable syntax.
        if let Err(e) = msg.validate() {
            let reason = format!("Bad Request ({})", e.kind.reason());
            return self.reject(now, id, &msg, source, 400, &reason, &[]);
        }
        // 16.3 item 2: URI scheme.
        if !matches!(msg.request_uri(), Some(Uri::Sip(_)) | Some(Uri::Tel(_))) {
            return self.reject(now, id, &msg, source, 416, "Unsupported URI Scheme", &[]);
        }
        // The zone's policy and, when it asks, digest authentication (crate::security).
        let user = match self.gate(now, id, &msg, source) {
            crate::security::Gate::Pass(user) => user,
            crate::security::Gate::Done => return,
        };
        self.continue_request(now, id, msg, source, user);
    }

    /// The rest of [`Engine::on_request`] once the policy let the request in (also after a
    /// parked authentication completes).
    pub(crate) fn continue_request(
        &mut self,
        now: Instant,
        id: ServerTxId,
        msg: Message,
        source: Source,
        user: Option<String>,
    ) {
        if !crate::security::may_register_as(&msg, user.as_deref()) {
            return self.reject(now, id, &msg, source, 403, "Forbidden", &[]);
        }
        let msg = if user.is_some() {
            self.strip_own_credentials(msg)
        } else {
            msg
        };
        let method = msg.method().unwrap_or(Method::Extension);
        // Loop detection looks at the request as received (16.3 item 4, 16.6 item 8).
        let looped = self.cfg.proxy.loop_detection && self.detect_loop(&msg);
        let loop_hash = {
            let top = msg.top_via().and_then(|v| v.ok());
            self.loop_hash(&msg, top.as_ref())
        };
        // 16.4: strict-router fix-up and our own Route values.
        let work = match self.preprocess_routes(&msg) {
            Ok(m) => m,
            Err(reason) => {
                let reason = format!("Bad Request ({reason})");
                return self.reject(now, id, &msg, source, 400, &reason, &[]);
            }
        };
        let has_routes = work.count(HeaderName::Route) > 0;
        let ours = !has_routes
            && match work.request_uri() {
                Some(Uri::Sip(u)) => {
                    self.is_our_domain_at(&u) || self.is_this_host(&u.host, u.host_str, u.port)
                }
                _ => false,
            };
        if method == Method::Register && ours {
            return self.register(now, id, &work, source);
        }
        // 16.5 decides below; a request for us is answered here, as a UAS.
        let disposition = self.disposition(&work, has_routes);
        if let Ok(Disposition::Local) = disposition {
            if method == Method::Options {
                return self.answer_options(now, id, &work);
            }
            // An INVITE with Replaces for a dialog of one of our B2BUA calls (attended
            // transfer, RFC 3891) becomes a call to that dialog's far end.
            if method == Method::Invite && self.b2b_replaces(now, id, &work, source) {
                return;
            }
            // In-dialog, to our Contact, and no B2BUA call took it: no such dialog here
            // (RFC 3261 12.2.2).
            if work
                .to()
                .and_then(|t| t.ok())
                .is_some_and(|t| t.tag().is_some())
            {
                return self.reject(
                    now,
                    id,
                    &work,
                    source,
                    481,
                    "Call/Transaction Does Not Exist",
                    &[],
                );
            }
            return self.reject(
                now,
                id,
                &work,
                source,
                405,
                "Method Not Allowed",
                &[("Allow", LOCAL_ALLOW.to_owned())],
            );
        }
        // 16.3 item 3: Max-Forwards.
        if let Some(Ok(MaxForwards(0))) = work.max_forwards() {
            if method == Method::Options {
                return self.answer_options(now, id, &work);
            }
            return self.reject(now, id, &work, source, 483, "Too Many Hops", &[]);
        }
        // 16.3 item 4: loops.
        if looped {
            self.stats.loops_detected += 1;
            return self.reject(now, id, &work, source, 482, "Loop Detected", &[]);
        }
        // 16.3 item 5: Proxy-Require.
        let mut unsupported: Vec<String> = Vec::new();
        for pr in work.typed_all::<ProxyRequire>() {
            match pr {
                Ok(tag) => {
                    let known = self
                        .cfg
                        .proxy
                        .proxy_require_supported
                        .iter()
                        .any(|s| tag.is(s));
                    if !known && !unsupported.iter().any(|u| tag.is(u)) {
                        unsupported.push(tag.as_str().to_owned());
                    }
                }
                Err(_) => {
                    return self.reject(
                        now,
                        id,
                        &work,
                        source,
                        400,
                        "Bad Request (malformed Proxy-Require)",
                        &[],
                    )
                }
            }
        }
        if !unsupported.is_empty() {
            let list = unsupported.join(", ");
            return self.reject(
                now,
                id,
                &work,
                source,
                420,
                "Bad Extension",
                &[("Unsupported", list)],
            );
        }
        // 16.5: the target set. A relayed binding named by its token (crate::regrelay).
        if let Some(found) = self.relay_token_target(now, &work, &source) {
            match found {
                Ok(groups) => {
                    if self.b2b_route(now, id, &work, source, &groups) {
                        return;
                    }
                    return self.start_context(now, id, source, work, loop_hash, groups);
                }
                Err((status, reason)) => {
                    return self.reject(now, id, &work, source, status, &reason, &[])
                }
            }
        }
        let groups = match disposition {
            Err((status, reason)) => {
                // Not placed here: a trunk or the PBX may take it (crate::route).
                if status == 404 && self.b2b_unresolved(now, id, &work, source, status) {
                    return;
                }
                return self.reject(now, id, &work, source, status, reason, &[]);
            }
            Ok(Disposition::Location(aor)) => match self.location(now, &aor) {
                Ok(g) => g,
                // Not registered here: the upstream registrar's users (crate::regrelay).
                Err(_) if self.relay_upstream_target(&work, &source).is_some() => self
                    .relay_upstream_target(&work, &source)
                    .unwrap_or_default(),
                Err((status, reason)) => {
                    if matches!(status, 404 | 480)
                        && self.b2b_unresolved(now, id, &work, source, status)
                    {
                        return;
                    }
                    return self.reject(now, id, &work, source, status, &reason, &[]);
                }
            },
            _ => vec![vec![Target {
                uri: work.request_uri_str().unwrap_or("").to_owned(),
                route: Vec::new(),
                fixed: None,
                q: 1000,
            }]],
        };
        // Across zones: the B2BUA (crate::b2b).
        if self.b2b_route(now, id, &work, source, &groups) {
            return;
        }
        self.start_context(now, id, source, work, loop_hash, groups);
    }

    /// 16.5, which way a request goes once 16.4 is done.
    fn disposition(
        &self,
        work: &Message,
        has_routes: bool,
    ) -> Result<Disposition, (u16, &'static str)> {
        if has_routes {
            return Ok(Disposition::Forward);
        }
        match work.request_uri() {
            Some(Uri::Sip(u)) => {
                let domain = self.is_our_domain_at(&u);
                let here = !domain && self.is_this_host(&u.host, u.host_str, u.port);
                if !domain && !here {
                    return Ok(Disposition::Forward);
                }
                if u.user.is_none() {
                    return Ok(Disposition::Local);
                }
                let aor = canonical_aor(&u).map_err(|_| (400, "Bad Request (Request-URI user)"))?;
                if domain {
                    return Ok(Disposition::Location(aor));
                }
                // A user at one of our addresses: the user of our first domain.
                match self.cfg.registrar.domains.first() {
                    Some(d) => {
                        let user = aor
                            .strip_prefix("sip:")
                            .and_then(|r| r.rsplit_once('@'))
                            .map_or("", |(user, _)| user);
                        Ok(Disposition::Location(format!(
                            "sip:{user}@{}",
                            util::norm_host(d)
                        )))
                    }
                    None => Err((404, "Not Found")),
                }
            }
            // A tel URI without a Route: no ENUM or gateway table here.
            _ => Err((404, "Not Found")),
        }
    }

    /// 200 to an OPTIONS for us (11.2), or to one that reached Max-Forwards 0 (16.3 item 3).
    pub(crate) fn answer_options(&mut self, now: Instant, id: ServerTxId, req: &Message) {
        self.reply(
            now,
            id,
            req,
            200,
            "OK",
            &[
                ("Allow", PROXY_ALLOW.to_owned()),
                ("Accept", "application/sdp".to_owned()),
                ("Supported", "path".to_owned()),
            ],
        );
    }

    // ------------------------------------------------------------------------------------
    // 16.3 item 4 / 16.6 item 8: the loop-detection part of our branches
    // ------------------------------------------------------------------------------------

    /// Hash of the fields that decide how a request is processed: To tag, From tag, Call-ID,
    /// Request-URI as received, the Via that was on top when we got it (sent-by and branch:
    /// `received`/`rport` are ours to add), CSeq number, Route, Proxy-Require,
    /// Proxy-Authorization, all as received.
    pub(crate) fn loop_hash(&self, msg: &Message, via: Option<&Via<'_>>) -> u64 {
        let mut h = Fnv::new(self.cfg.seed);
        let to_tag = msg.to().and_then(|t| t.ok()).and_then(|t| t.tag());
        let from_tag = msg.from().and_then(|t| t.ok()).and_then(|t| t.tag());
        h.field(to_tag.unwrap_or("").as_bytes());
        h.field(from_tag.unwrap_or("").as_bytes());
        h.field(msg.header(HeaderName::CallId).unwrap_or(b""));
        h.field(msg.request_uri_str().unwrap_or("").as_bytes());
        match via {
            Some(v) => {
                h.field(v.transport.to_ascii_uppercase().as_bytes());
                h.field(v.host_str.to_ascii_lowercase().as_bytes());
                h.field(v.port.unwrap_or(0).to_string().as_bytes());
                h.field(v.branch.unwrap_or("").as_bytes());
            }
            None => h.field(b"-"),
        }
        let seq = msg.cseq().and_then(|c| c.ok()).map_or(0, |c| c.seq);
        h.field(&seq.to_le_bytes());
        // A request that comes back with another Route set is a spiral (it passes us twice
        // by design), not a loop (16.6 item 8: "including any Route ... header fields").
        for v in msg.header_values(HeaderName::Route) {
            h.field(v);
        }
        for v in msg.header_values(HeaderName::ProxyRequire) {
            h.field(v);
        }
        for v in msg.header_values(HeaderName::ProxyAuthorization) {
            h.field(v);
        }
        h.finish()
    }

    /// 16.3 item 4: a Via of ours whose loop part equals what we would compute now (with the
    /// Via below it as the one that was on top) means the request came back unchanged: a loop.
    /// A different hash is a spiral (the Request-URI or another field changed).
    fn detect_loop(&self, msg: &Message) -> bool {
        let Ok(vias) = msg.typed_vec::<Via>() else {
            return false;
        };
        vias.iter().enumerate().any(|(i, v)| {
            let Some(part) = v.branch.and_then(|b| b.rsplit_once('.')).map(|(_, p)| p) else {
                return false;
            };
            if part.len() != 16 || !self.is_our_via(v) {
                return false;
            }
            u64::from_str_radix(part, 16)
                .is_ok_and(|expect| self.loop_hash(msg, vias.get(i + 1)) == expect)
        })
    }

    // ------------------------------------------------------------------------------------
    // 16.4 route information preprocessing
    // ------------------------------------------------------------------------------------

    /// Replaces a Request-URI that is our Record-Route value (a strict router put it there) by
    /// the last Route value, and removes the Route values at the top that name us.
    pub(crate) fn preprocess_routes(&self, msg: &Message) -> Result<Message, &'static str> {
        let mut routes: Vec<(String, String, bool)> = Vec::new();
        for r in msg.routes() {
            let r = r.map_err(|_| "malformed Route")?;
            let us = r.uri.sip().is_some_and(|u| self.is_us(u));
            routes.push((name_addr_text(&r), r.uri.as_str().to_owned(), us));
        }
        let mut new_ruri = None;
        if let Some(Uri::Sip(u)) = msg.request_uri() {
            if u.user.is_none()
                && u.lr()
                && self.is_this_host(&u.host, u.host_str, u.port)
                && !routes.is_empty()
            {
                new_ruri = routes.pop().map(|(_, uri, _)| uri);
            }
        }
        let mut removed = 0;
        while routes.first().is_some_and(|r| r.2) {
            routes.remove(0);
            removed += 1;
        }
        if new_ruri.is_none() && removed == 0 {
            return Ok(msg.clone());
        }
        let mut ed = Editor::new(msg);
        if let Some(u) = &new_ruri {
            ed.set_request_uri(u).map_err(|_| "bad Route URI")?;
            ed.remove_routes();
            for (text, _, _) in routes.iter().rev() {
                ed.add_route_front(text).map_err(|_| "bad Route")?;
            }
        } else {
            for _ in 0..removed {
                ed.remove_first_route();
            }
        }
        Message::parse(ed.finish()).map_err(|_| "unparsable after Route processing")
    }

    // ------------------------------------------------------------------------------------
    // 16.5 location service
    // ------------------------------------------------------------------------------------

    fn location(&mut self, now: Instant, aor: &str) -> Result<Vec<Vec<Target>>, (u16, String)> {
        let wall = self.wall_clock(now);
        let live = match self.store.live_bindings(aor, wall) {
            Ok(b) => b,
            Err(e) => {
                self.stats.store_errors += 1;
                self.event(Event::StoreFailed {
                    op: "lookup",
                    error: e.to_string(),
                });
                return Err((500, "Server Internal Error".into()));
            }
        };
        let mut targets: Vec<Target> = live.iter().filter_map(|b| self.target_of(b)).collect();
        if targets.is_empty() {
            let known = match &self.directory {
                Some(d) => d.is_known(aor),
                None => self.store.bindings(aor).is_ok_and(|b| !b.is_empty()),
            };
            return Err(if known {
                (480, "Temporarily Unavailable".into())
            } else {
                (404, "Not Found".into())
            });
        }
        // Highest q first; equal q keep the store's order (oldest first).
        targets.sort_by_key(|t| std::cmp::Reverse(t.q));
        targets.truncate(self.cfg.proxy.max_forks.max(1));
        Ok(match self.cfg.proxy.fork_mode {
            ForkMode::Parallel => vec![targets],
            ForkMode::QGroups => {
                let mut groups: Vec<Vec<Target>> = Vec::new();
                for t in targets {
                    match groups.last_mut() {
                        Some(g) if g[0].q == t.q => g.push(t),
                        _ => groups.push(vec![t]),
                    }
                }
                groups
            }
        })
    }

    /// A binding as a target: its Contact URI, its Path as Route, and (unless it has a Path)
    /// the address and flow its REGISTER came from when `registrar.contact_routing` says so.
    pub(crate) fn target_of(&self, b: &Binding) -> Option<Target> {
        let contact = match Uri::parse(&b.contact) {
            Ok(Uri::Sip(u)) => u,
            _ => return None,
        };
        let token = b.flow.as_deref().and_then(parse_flow_token);
        let remote: Option<SocketAddr> = b.received.as_deref().and_then(|r| r.parse().ok());
        let use_source = b.path.is_empty()
            && match self.cfg.registrar.contact_routing {
                ContactRouting::Contact => false,
                ContactRouting::Source => true,
                ContactRouting::Auto => match token.and_then(|t| t.nat) {
                    Some(nat) => nat,
                    // Registered before NAT detection: the source against the Contact.
                    None => remote.is_some_and(|r| !names_address(&contact, r)),
                },
            };
        let fixed = match remote {
            Some(remote) if use_source => {
                let t = match token {
                    Some(t) => t.transport,
                    None => crate::resolve::uri_transport(&contact),
                };
                Some((
                    Destination {
                        remote,
                        flow: token.map(|t| t.flow),
                        reliable: t.reliable(),
                    },
                    t,
                ))
            }
            _ => None,
        };
        Some(Target {
            uri: b.contact.clone(),
            route: b.path.clone(),
            fixed,
            q: b.q.unwrap_or(1000),
        })
    }

    // ------------------------------------------------------------------------------------
    // 16.6 forwarding
    // ------------------------------------------------------------------------------------

    pub(crate) fn start_context(
        &mut self,
        now: Instant,
        id: ServerTxId,
        source: Source,
        work: Message,
        loop_hash: u64,
        groups: Vec<Vec<Target>>,
    ) {
        let work = fix_top_via(&work, &source).unwrap_or(work);
        let invite = work.method() == Some(Method::Invite);
        if invite {
            // 100 at once: the upstream client stops retransmitting (16.2, 17.2.1).
            self.reply(now, id, &work, 100, "Trying", &[]);
        }
        let inbound = work
            .top_via()
            .and_then(|v| v.ok())
            .and_then(|v| Transport::parse(v.transport))
            .unwrap_or(Transport::Udp);
        let creates_dialog = matches!(
            work.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer | Method::Notify)
        ) && work
            .to()
            .and_then(|t| t.ok())
            .is_some_and(|t| t.tag().is_none());
        let sips = matches!(work.request_uri(), Some(Uri::Sip(u)) if u.scheme == sip_message::Scheme::Sips);
        let record_route =
            (self.cfg.proxy.record_route && creates_dialog).then_some((inbound, sips));
        let cid = self.next_ctx;
        self.next_ctx += 1;
        let ctx = ProxyCtx {
            server: id,
            source,
            invite,
            method: work.method_str().unwrap_or("").to_owned(),
            call_id: String::from_utf8_lossy(work.header(HeaderName::CallId).unwrap_or(b""))
                .into_owned(),
            request: work,
            loop_hash,
            record_route,
            branches: Vec::new(),
            later: groups.into(),
            final_sent: false,
            no_new_branches: false,
            live_clients: 0,
        };
        self.ctxs.insert(cid, ctx);
        self.by_server.insert(id, cid);
        self.stats.proxied_requests += 1;
        self.check_complete(now, cid);
    }

    /// Starts the next q-group. Returns how many branches it started.
    fn start_next_group(&mut self, now: Instant, cid: u64) -> usize {
        let Some(group) = self.ctxs.get_mut(&cid).and_then(|c| c.later.pop_front()) else {
            return 0;
        };
        let n = group.len();
        for t in group {
            self.fork(now, cid, t);
        }
        if let Some(c) = self.ctxs.get(&cid) {
            let (call_id, method) = (c.call_id.clone(), c.method.clone());
            self.event(Event::Forwarded {
                call_id,
                method,
                branches: n,
            });
        }
        n
    }

    /// Forwards the request of context `cid` to one target (16.6 items 1 to 11).
    fn fork(&mut self, now: Instant, cid: u64, target: Target) {
        let branch_id = format!(
            "{}.{:016x}",
            self.layer.new_branch(),
            self.ctxs.get(&cid).map_or(0, |c| c.loop_hash)
        );
        let Some(ctx) = self.ctxs.get(&cid) else {
            return;
        };
        let built = self.build_forward(&ctx.request, &target, &branch_id, ctx.record_route);
        let invite = ctx.invite;
        let sent = match built {
            Ok((msg, dest)) => self
                .layer
                .send_request(now, msg, dest)
                .map_err(|e| format!("not sent: {e}")),
            Err(e) => Err(e.to_owned()),
        };
        self.stats.branches += 1;
        let timer_c = self.timer_c_duration();
        let Some(ctx) = self.ctxs.get_mut(&cid) else {
            return;
        };
        let bi = ctx.branches.len();
        let mut b = Branch {
            tx: None,
            final_status: None,
            response: None,
            provisional: false,
            cancel_sent: false,
            timer_c: None,
            timer_c_fired: false,
        };
        match sent {
            Ok(tx) => {
                b.tx = Some(tx);
                ctx.live_clients += 1;
                ctx.branches.push(b);
                self.by_client.insert(tx, (cid, bi));
                if invite {
                    if let Some(b) = ctx.branches.last_mut() {
                        b.timer_c = Some(now + timer_c);
                    }
                    self.arm(
                        now + timer_c,
                        EngineTimer::TimerC {
                            ctx: cid,
                            branch: bi,
                        },
                    );
                }
            }
            Err(reason) => {
                // An unreachable target counts as a 503 from that branch (16.9).
                b.response = util::response(
                    &ctx.request,
                    503,
                    &format!("Service Unavailable ({reason})"),
                    Some(&self.layer.new_tag()),
                    &[],
                );
                b.final_status = Some(503);
                ctx.branches.push(b);
            }
        }
    }

    /// The forwarded copy of `base` for `target` (16.6 items 1-8) and where it goes.
    pub(crate) fn build_forward(
        &self,
        base: &Message,
        target: &Target,
        branch: &str,
        record_route: Option<(Transport, bool)>,
    ) -> Result<(Message, Destination), &'static str> {
        let mut ed = Editor::new(base);
        let mut ruri = target.uri.clone();
        // Item 5 (Path vector as Route) and the existing Route set.
        let mut routes: Vec<(String, String, bool)> = Vec::new();
        for p in &target.route {
            let r = Route::parse_value(p).map_err(|_| "bad Path value")?;
            let lr = r.uri.sip().is_some_and(|u| u.lr());
            routes.push((p.clone(), r.uri.as_str().to_owned(), lr));
        }
        for r in base.routes() {
            let r = r.map_err(|_| "malformed Route")?;
            let lr = r.uri.sip().is_some_and(|u| u.lr());
            routes.push((name_addr_text(&r), r.uri.as_str().to_owned(), lr));
        }
        let mut rewrite = !target.route.is_empty();
        // Item 6: a strict router next: it gets the Request-URI, which goes last in Route.
        let mut strict = false;
        if routes.first().is_some_and(|r| !r.2) {
            let (_, first_uri, _) = routes.remove(0);
            routes.push((format!("<{ruri}>"), ruri.clone(), true));
            ruri = first_uri;
            rewrite = true;
            strict = true;
        }
        if Some(ruri.as_str()) != base.request_uri_str() {
            ed.set_request_uri(&ruri).map_err(|_| "bad target URI")?;
        }
        if rewrite {
            ed.remove_routes();
            for (text, _, _) in routes.iter().rev() {
                ed.add_route_front(text).map_err(|_| "bad Route value")?;
            }
        }
        // Item 3: Max-Forwards.
        let mf = match base.max_forwards() {
            Some(Ok(MaxForwards(n))) => n.saturating_sub(1),
            _ => 70,
        };
        ed.set_header(HeaderName::MaxForwards, &mf.to_string())
            .map_err(|_| "Max-Forwards")?;
        // Item 7: the next hop.
        let (dest, transport) = if strict {
            self.destination_of(&ruri)?
        } else if let Some((_, first, _)) = routes.first() {
            match (self.destination_of(first), target.fixed) {
                (Ok(d), _) => d,
                (Err(_), Some(f)) => f,
                (Err(e), None) => return Err(e),
            }
        } else if let Some(f) = target.fixed {
            f
        } else {
            self.destination_of(&ruri)?
        };
        let v6 = dest.remote.is_ipv6();
        // Item 4: Record-Route, naming the listener the next hop can reach.
        if let Some((inbound, sips)) = record_route {
            ed.add_record_route(&self.record_route(inbound, sips, v6))
                .map_err(|_| "bad Record-Route")?;
        }
        // Item 8: our Via.
        let via = format!(
            "SIP/2.0/{} {};branch={branch}",
            transport.via_token(),
            self.sent_by(transport, v6)
        );
        ed.push_via(&via).map_err(|_| "bad Via")?;
        let msg = Message::parse(ed.finish()).map_err(|_| "unparsable forwarded request")?;
        Ok((msg, dest))
    }

    pub(crate) fn destination_of(
        &self,
        uri: &str,
    ) -> Result<(Destination, Transport), &'static str> {
        match Uri::parse(uri) {
            Ok(Uri::Sip(u)) => {
                uri_destination(&u, &*self.resolver).ok_or("destination not resolvable")
            }
            _ => Err("no route for a non-SIP URI"),
        }
    }

    // ------------------------------------------------------------------------------------
    // 16.7 responses
    // ------------------------------------------------------------------------------------

    pub(crate) fn on_response(&mut self, now: Instant, id: ClientTxId, msg: Message) {
        // Responses to our CANCELs, and to branches of contexts that are gone, stop here.
        let Some(&(cid, bi)) = self.by_client.get(&id) else {
            return;
        };
        let Some(status) = msg.status() else {
            return;
        };
        // Item 3: our Via off; nothing left means it was for us.
        let Some(fwd) = strip_top_via(&msg) else {
            return;
        };
        let timer_c = self.timer_c_duration();
        let Some(ctx) = self.ctxs.get_mut(&cid) else {
            return;
        };
        let Some(b) = ctx.branches.get_mut(bi) else {
            return;
        };
        match status {
            100 => b.provisional = true,
            101..=199 => {
                b.provisional = true;
                if !b.pending() {
                    return;
                }
                // Item 2: a provisional response other than 100 resets Timer C.
                if b.timer_c.is_some() {
                    b.timer_c = Some(now + timer_c);
                }
                // Item 5: forwarded at once until a final response went upstream.
                if !self.ctxs.get(&cid).is_some_and(|c| c.final_sent) {
                    self.send_upstream(now, cid, fwd);
                }
            }
            200..=299 => {
                if b.pending() {
                    b.final_status = Some(status);
                    b.timer_c = None;
                }
                let first = !ctx.final_sent;
                let forward = first || ctx.invite;
                ctx.final_sent = true;
                ctx.no_new_branches = true;
                ctx.later.clear();
                let (call_id, method) = (ctx.call_id.clone(), ctx.method.clone());
                // Item 5: every 2xx of an INVITE goes upstream, the first one of others.
                if forward {
                    self.send_upstream(now, cid, fwd);
                }
                if first {
                    self.event(Event::ProxyFinal {
                        call_id,
                        method,
                        status,
                    });
                }
                // Item 10: CANCEL what is still pending.
                self.cancel_pending(now, cid);
                self.maybe_remove(cid);
            }
            _ => {
                if !b.pending() {
                    return;
                }
                b.timer_c = None;
                // Timer C cancelled this branch: it counts as a timeout (16.8).
                let (status, resp) = if status == 487 && b.timer_c_fired {
                    let r = util::response(
                        &ctx.request,
                        408,
                        "Request Timeout",
                        Some(&self.layer.new_tag()),
                        &[],
                    );
                    (408, r)
                } else {
                    (status, Some(fwd))
                };
                b.final_status = Some(status);
                b.response = resp;
                if status >= 600 {
                    // Item 5: a 6xx cancels the others and stops new branches.
                    ctx.no_new_branches = true;
                    ctx.later.clear();
                    self.cancel_pending(now, cid);
                }
                self.check_complete(now, cid);
            }
        }
    }

    /// A client transaction of a branch failed without a response: Timer B/F (408) or a
    /// transport error (503), 16.7 item 1 / 16.9.
    pub(crate) fn on_branch_failure(
        &mut self,
        now: Instant,
        id: ClientTxId,
        status: u16,
        reason: &str,
    ) {
        let Some(&(cid, bi)) = self.by_client.get(&id) else {
            return;
        };
        let Some(ctx) = self.ctxs.get_mut(&cid) else {
            return;
        };
        let Some(b) = ctx.branches.get_mut(bi) else {
            return;
        };
        if !b.pending() {
            return;
        }
        b.timer_c = None;
        b.final_status = Some(status);
        b.response = util::response(
            &ctx.request,
            status,
            reason,
            Some(&self.layer.new_tag()),
            &[],
        );
        self.check_complete(now, cid);
    }

    /// Timer C fired (16.8): CANCEL a branch that had a provisional response, count one
    /// without as 408.
    pub(crate) fn timer_c(&mut self, now: Instant, cid: u64, bi: usize) {
        let Some(ctx) = self.ctxs.get_mut(&cid) else {
            return;
        };
        let call_id = ctx.call_id.clone();
        let Some(b) = ctx.branches.get_mut(bi) else {
            return;
        };
        match b.timer_c {
            Some(at) if b.pending() && at > now => {
                // Reset by a provisional response since this entry was armed.
                return self.arm(
                    at,
                    EngineTimer::TimerC {
                        ctx: cid,
                        branch: bi,
                    },
                );
            }
            Some(_) if b.pending() => b.timer_c = None,
            _ => return,
        }
        self.stats.timer_c_fired += 1;
        if b.provisional {
            b.timer_c_fired = true;
            let tx = b.tx;
            let already = b.cancel_sent;
            b.cancel_sent = true;
            if let (Some(tx), false) = (tx, already) {
                let _ = self.layer.cancel(now, tx);
            }
            self.event(Event::TimerC { call_id });
        } else {
            b.final_status = Some(408);
            b.response = util::response(
                &ctx.request,
                408,
                "Request Timeout",
                Some(&self.layer.new_tag()),
                &[],
            );
            self.event(Event::TimerC { call_id });
            self.check_complete(now, cid);
        }
    }

    /// CANCELs every pending INVITE branch (9.1, 16.7 item 10, 16.10). Returns how many.
    fn cancel_pending(&mut self, now: Instant, cid: u64) -> usize {
        let Some(ctx) = self.ctxs.get_mut(&cid) else {
            return 0;
        };
        if !ctx.invite {
            return 0;
        }
        let mut txs = Vec::new();
        for b in ctx.branches.iter_mut() {
            if b.pending() && !b.cancel_sent {
                if let Some(tx) = b.tx {
                    b.cancel_sent = true;
                    txs.push(tx);
                }
            }
        }
        let n = txs.len();
        for tx in txs {
            let _ = self.layer.cancel(now, tx);
        }
        n
    }

    /// When every branch has a final response: the next q-group, or the best response
    /// upstream (16.7 item 6).
    fn check_complete(&mut self, now: Instant, cid: u64) {
        loop {
            let Some(ctx) = self.ctxs.get(&cid) else {
                return;
            };
            if ctx.final_sent {
                break;
            }
            if ctx.branches.iter().any(Branch::pending) {
                return;
            }
            if !ctx.no_new_branches && !ctx.later.is_empty() {
                self.start_next_group(now, cid);
                continue;
            }
            self.send_best(now, cid);
            break;
        }
        self.maybe_remove(cid);
    }

    /// 16.7 items 6 to 9: the best final response, with the challenges of the others.
    fn send_best(&mut self, now: Instant, cid: u64) {
        let tag = self.layer.new_tag();
        let Some(ctx) = self.ctxs.get_mut(&cid) else {
            return;
        };
        ctx.final_sent = true;
        let best = choose_best(&ctx.branches);
        let mut resp = match best.and_then(|i| ctx.branches[i].response.clone()) {
            Some(r) => r,
            None => match util::response(&ctx.request, 408, "Request Timeout", Some(&tag), &[]) {
                Some(r) => r,
                None => return,
            },
        };
        let status = resp.status().unwrap_or(500);
        if status == 503 {
            // 16.7 item 6: a 503 is not forwarded; the caller gets 500.
            if let Some(r) =
                util::response(&ctx.request, 500, "Server Internal Error", Some(&tag), &[])
            {
                resp = r;
            }
        } else if status == 401 || status == 407 {
            // Item 7: every challenge of every 401/407 goes upstream.
            let mut extra: Vec<(&str, String)> = Vec::new();
            for (i, b) in ctx.branches.iter().enumerate() {
                if Some(i) == best || !matches!(b.final_status, Some(401 | 407)) {
                    continue;
                }
                if let Some(r) = &b.response {
                    for v in r.header_values(HeaderName::WwwAuthenticate) {
                        extra.push(("WWW-Authenticate", String::from_utf8_lossy(v).into_owned()));
                    }
                    for v in r.header_values(HeaderName::ProxyAuthenticate) {
                        extra.push((
                            "Proxy-Authenticate",
                            String::from_utf8_lossy(v).into_owned(),
                        ));
                    }
                }
            }
            if !extra.is_empty() {
                let mut ed = Editor::new(&resp);
                let mut ok = true;
                for (n, v) in &extra {
                    ok &= ed.add_header(*n, v).is_ok();
                }
                if ok {
                    if let Ok(m) = Message::parse(ed.finish()) {
                        resp = m;
                    }
                }
            }
        }
        let status = resp.status().unwrap_or(500);
        let (call_id, method) = (ctx.call_id.clone(), ctx.method.clone());
        self.send_upstream(now, cid, resp);
        self.event(Event::ProxyFinal {
            call_id,
            method,
            status,
        });
    }

    /// Sends a response on the context's server transaction; a 2xx the transaction no longer
    /// takes (it is gone, or answered) goes statelessly to where the request came from.
    fn send_upstream(&mut self, now: Instant, cid: u64, msg: Message) {
        let Some(ctx) = self.ctxs.get(&cid) else {
            return;
        };
        let (server, source) = (ctx.server, ctx.source);
        let status = msg.status().unwrap_or(0);
        if let Err(e) = self.layer.send_response(now, server, msg.clone()) {
            if (200..300).contains(&status) {
                let dest: Destination = source.into();
                self.layer.send_stateless(dest, msg.wire());
                self.stats.stateless_forwards += 1;
                self.event(Event::StatelessForward {
                    what: format!("{status} response"),
                    dest: dest.remote,
                });
            } else {
                self.event(Event::Dropped {
                    reason: format!("{status} not forwarded: {e}"),
                    source: None,
                });
            }
        }
    }

    fn maybe_remove(&mut self, cid: u64) {
        let done = self
            .ctxs
            .get(&cid)
            .is_some_and(|c| c.final_sent && c.live_clients == 0);
        if done {
            if let Some(c) = self.ctxs.remove(&cid) {
                if self.by_server.get(&c.server) == Some(&cid) {
                    self.by_server.remove(&c.server);
                }
            }
        }
    }

    pub(crate) fn on_terminated(&mut self, now: Instant, tx: TxId) {
        match tx {
            TxId::Client(c) => {
                if let Some((cid, _)) = self.by_client.remove(&c) {
                    if let Some(ctx) = self.ctxs.get_mut(&cid) {
                        ctx.live_clients = ctx.live_clients.saturating_sub(1);
                    }
                    self.maybe_remove(cid);
                }
            }
            TxId::Server(s) => {
                if let Some(cid) = self.by_server.remove(&s) {
                    // Nobody to answer any more (transport error, TU guard): stop the branches.
                    let pending = self.ctxs.get_mut(&cid).is_some_and(|c| {
                        let p = !c.final_sent;
                        c.final_sent = true;
                        c.no_new_branches = true;
                        c.later.clear();
                        p
                    });
                    if pending {
                        self.cancel_pending(now, cid);
                    }
                    self.maybe_remove(cid);
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // CANCEL (9.2, 16.10)
    // ------------------------------------------------------------------------------------

    pub(crate) fn on_cancel(
        &mut self,
        now: Instant,
        id: ServerTxId,
        msg: Message,
        source: Source,
        target: Option<ServerTxId>,
    ) {
        let Some(target) = target else {
            return self.reject(
                now,
                id,
                &msg,
                source,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
        };
        self.reply(now, id, &msg, 200, "OK", &[]);
        let Some(&cid) = self.by_server.get(&target) else {
            return;
        };
        self.stats.upstream_cancels += 1;
        let call_id = match self.ctxs.get_mut(&cid) {
            Some(ctx) if !ctx.final_sent => {
                ctx.no_new_branches = true;
                ctx.later.clear();
                ctx.call_id.clone()
            }
            _ => return,
        };
        let n = self.cancel_pending(now, cid);
        self.event(Event::Cancelled {
            call_id,
            branches: n,
        });
        self.check_complete(now, cid);
    }

    // ------------------------------------------------------------------------------------
    // Stateless paths
    // ------------------------------------------------------------------------------------

    /// An ACK outside any transaction (for a 2xx): forwarded statelessly along its Route set or
    /// to its Request-URI (16.4, 16.11, 16.12).
    pub(crate) fn on_ack(&mut self, now: Instant, msg: Message, source: Source) {
        let drop = |e: &mut Engine, why: &str| {
            e.stats.dropped += 1;
            e.event(Event::Dropped {
                reason: format!("ACK not forwarded: {why}"),
                source: Some(source),
            });
        };
        if msg.validate().is_err() {
            return drop(self, "malformed");
        }
        let work = match self.preprocess_routes(&msg) {
            Ok(m) => m,
            Err(e) => return drop(self, e),
        };
        if let Some(Ok(MaxForwards(0))) = work.max_forwards() {
            return drop(self, "Max-Forwards is 0");
        }
        let has_routes = work.count(HeaderName::Route) > 0;
        let target = match self.disposition(&work, has_routes) {
            Ok(Disposition::Forward) => Target {
                uri: work.request_uri_str().unwrap_or("").to_owned(),
                route: Vec::new(),
                fixed: None,
                q: 1000,
            },
            Ok(Disposition::Location(aor)) => {
                let wall = self.wall_clock(now);
                let first = self.store.live_bindings(&aor, wall).ok().and_then(|mut v| {
                    v.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
                    v.into_iter().find_map(|b| self.target_of(&b))
                });
                match first {
                    Some(t) => t,
                    None => return drop(self, "no binding"),
                }
            }
            // An ACK for us: nothing of ours needs one (we send no 2xx to INVITE).
            Ok(Disposition::Local) => return,
            Err(_) => return drop(self, "no target"),
        };
        let work = fix_top_via(&work, &source).unwrap_or(work);
        // 16.11: a branch that retransmissions of the same ACK reproduce.
        let branch = {
            let mut h = Fnv::new(self.cfg.seed);
            let top = work.top_via().and_then(|v| v.ok());
            h.field(top.and_then(|v| v.branch).unwrap_or("").as_bytes());
            h.field(work.request_uri_str().unwrap_or("").as_bytes());
            h.field(work.header(HeaderName::CallId).unwrap_or(b""));
            h.field(work.header(HeaderName::CSeq).unwrap_or(b""));
            format!("z9hG4bKsl{:016x}", h.finish())
        };
        match self.build_forward(&work, &target, &branch, None) {
            Ok((fwd, dest)) => {
                self.layer.send_stateless(dest, fwd.wire());
                self.stats.stateless_forwards += 1;
                self.event(Event::StatelessForward {
                    what: "ACK".into(),
                    dest: dest.remote,
                });
            }
            Err(e) => drop(self, e),
        }
    }

    /// A response that matched no client transaction (18.1.2): if our Via is on top it is
    /// forwarded statelessly to the next Via (16.11), else dropped.
    pub(crate) fn on_stray_response(&mut self, msg: Message, source: Source) {
        let ours = msg
            .top_via()
            .and_then(|v| v.ok())
            .is_some_and(|v| self.is_our_via(&v));
        let next = ours.then(|| strip_top_via(&msg)).flatten();
        let Some(fwd) = next else {
            self.stats.dropped += 1;
            self.event(Event::Dropped {
                reason: "stray response not for us".into(),
                source: Some(source),
            });
            return;
        };
        let dest = fwd
            .top_via()
            .and_then(|v| v.ok())
            .and_then(|v| self.via_destination(&v));
        match dest {
            Some(dest) => {
                self.layer.send_stateless(dest, fwd.wire());
                self.stats.stateless_forwards += 1;
                self.event(Event::StatelessForward {
                    what: format!("{} response", fwd.status().unwrap_or(0)),
                    dest: dest.remote,
                });
            }
            None => {
                self.stats.dropped += 1;
                self.event(Event::Dropped {
                    reason: "stray response: next Via not resolvable".into(),
                    source: Some(source),
                });
            }
        }
    }
}

/// The response without its top Via; `None` when no Via would be left (it was for us).
fn strip_top_via(msg: &Message) -> Option<Message> {
    let mut ed = Editor::new(msg);
    if !ed.pop_via() {
        return None;
    }
    let m = Message::parse(ed.finish()).ok()?;
    (m.count(HeaderName::Via) > 0).then_some(m)
}

/// RFC 3261 18.2.1 and RFC 3581 3: `received` when the top Via's sent-by is not the source
/// address (always with `rport`), `rport` filled in with the source port. `None`: unchanged.
pub(crate) fn fix_top_via(msg: &Message, source: &Source) -> Option<Message> {
    let v = msg.top_via()?.ok()?;
    // A v4-mapped source (dual-stack socket) is the IPv4 address it maps.
    let ip = source.remote.ip().to_canonical();
    let want_rport = v.rport.is_some();
    let want_received = want_rport || v.host.ip().map(|h| h.to_canonical()) != Some(ip);
    if !want_received {
        return None;
    }
    let mut text = format!(
        "{}/{}/{} {}",
        v.protocol, v.version, v.transport, v.host_str
    );
    if let Some(p) = v.port {
        text.push_str(&format!(":{p}"));
    }
    for (n, val) in v.params.iter() {
        if n.eq_ignore_ascii_case("received") || (want_rport && n.eq_ignore_ascii_case("rport")) {
            continue;
        }
        text.push(';');
        text.push_str(n);
        if let Some(val) = val {
            text.push('=');
            text.push_str(val);
        }
    }
    text.push_str(&format!(";received={ip}"));
    if want_rport {
        text.push_str(&format!(";rport={}", source.remote.port()));
    }
    let mut ed = Editor::new(msg);
    ed.pop_via();
    ed.push_via(&text).ok()?;
    Message::parse(ed.finish()).ok()
}

/// Whether `u` names the address `a`: its host is that IP and its port (the transport's default
/// when absent) that port.
pub(crate) fn names_address(u: &sip_message::SipUri<'_>, a: SocketAddr) -> bool {
    let port = u
        .port
        .unwrap_or(crate::resolve::uri_transport(u).default_port());
    u.host
        .ip()
        .is_some_and(|ip| ip.to_canonical() == a.ip().to_canonical())
        && port == a.port()
}

/// The flow token the registrar stores: `udp:12` (UDP, flow 12), with `:nat` or `:direct` when
/// NAT was (or was not) detected at registration. Tokens written before NAT detection existed
/// have neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowToken {
    pub transport: Transport,
    pub flow: FlowId,
    pub nat: Option<bool>,
}

pub(crate) fn parse_flow_token(s: &str) -> Option<FlowToken> {
    let (t, rest) = s.split_once(':')?;
    let (id, nat) = match rest.split_once(':') {
        Some((id, "nat")) => (id, Some(true)),
        Some((id, "direct")) => (id, Some(false)),
        Some(_) => return None,
        None => (rest, None),
    };
    Some(FlowToken {
        transport: Transport::parse(t)?,
        flow: FlowId(id.parse().ok()?),
        nat,
    })
}

/// The flow token of a source: its transport, the flow id and the NAT verdict.
pub(crate) fn flow_token(t: Transport, source: &Source, nat: bool) -> String {
    let verdict = if nat { "nat" } else { "direct" };
    format!("{}:{}:{verdict}", t.param(), source.flow.0)
}

/// 16.7 item 6: a 6xx if any; otherwise the lowest class, and within it the responses that
/// help a retry (401, 407, 415, 420, 484), then the more telling ones (486 Busy, 480), then
/// others in arrival order, and last the made-up or cancel-caused ones (408, 487).
fn choose_best(branches: &[Branch]) -> Option<usize> {
    let finals: Vec<(usize, u16)> = branches
        .iter()
        .enumerate()
        .filter_map(|(i, b)| match (b.final_status, &b.response) {
            (Some(s), Some(_)) if s >= 300 => Some((i, s)),
            _ => None,
        })
        .collect();
    if let Some(&(i, _)) = finals.iter().find(|(_, s)| *s >= 600) {
        return Some(i);
    }
    let class = finals.iter().map(|(_, s)| s / 100).min()?;
    let rank = |s: u16| match s {
        401 | 407 => 0,
        415 | 420 | 484 => 1,
        486 => 2,
        480 => 3,
        408 | 487 => 9,
        503 => 8,
        _ => 5,
    };
    finals
        .iter()
        .filter(|(_, s)| s / 100 == class)
        .min_by_key(|(i, s)| (rank(*s), *i))
        .map(|(i, _)| *i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(status: u16) -> Branch {
        let text = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=1\r\n\
             From: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        Branch {
            tx: None,
            final_status: Some(status),
            response: Message::parse(text.into_bytes()).ok(),
            provisional: false,
            cancel_sent: false,
            timer_c: None,
            timer_c_fired: false,
        }
    }

    fn best(codes: &[u16]) -> u16 {
        let bs: Vec<Branch> = codes.iter().map(|c| branch(*c)).collect();
        codes[choose_best(&bs).unwrap()]
    }

    #[test]
    fn best_response_rules() {
        assert_eq!(best(&[404, 486]), 486);
        assert_eq!(best(&[486, 404]), 486);
        assert_eq!(best(&[500, 404]), 404);
        assert_eq!(best(&[302, 404]), 302);
        assert_eq!(best(&[404, 603, 486]), 603);
        assert_eq!(best(&[487, 404]), 404);
        assert_eq!(best(&[486, 407]), 407);
        assert_eq!(best(&[408]), 408);
        assert_eq!(best(&[503, 500]), 500);
    }

    #[test]
    fn flow_tokens() {
        let t = |transport, flow, nat| {
            Some(FlowToken {
                transport,
                flow: FlowId(flow),
                nat,
            })
        };
        assert_eq!(parse_flow_token("tcp:7"), t(Transport::Tcp, 7, None));
        assert_eq!(
            parse_flow_token("udp:9:nat"),
            t(Transport::Udp, 9, Some(true))
        );
        assert_eq!(
            parse_flow_token("udp:9:direct"),
            t(Transport::Udp, 9, Some(false))
        );
        assert_eq!(parse_flow_token("udp:9:maybe"), None);
        assert_eq!(parse_flow_token("x:7"), None);
        assert_eq!(parse_flow_token("udp:"), None);
        let src = Source {
            remote: "192.0.2.1:5060".parse().unwrap(),
            flow: FlowId(3),
            reliable: false,
        };
        for nat in [true, false] {
            assert_eq!(
                parse_flow_token(&flow_token(Transport::Udp, &src, nat)),
                t(Transport::Udp, 3, Some(nat))
            );
        }
    }
}
