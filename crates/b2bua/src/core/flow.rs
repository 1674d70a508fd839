//! What happens after the start: transaction events of both legs, timers and teardown.

use super::*;
use crate::config::ZoneIdentity;

impl B2bua {
    /// Offers one transaction-layer event to the B2BUA. Returns it untouched when it is not
    /// ours (the engine handles it as before: proxy, registrar); `None` when it was consumed.
    pub fn handle_tu_event(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        ev: TuEvent,
    ) -> Option<TuEvent> {
        if let Some(notify) = self.held_bye_released_by(&ev) {
            self.release_held_bye(now, tl, notify);
        }
        match ev {
            TuEvent::Request { id, msg, source } => match self.dialog_of(&msg) {
                Some((call, leg)) => {
                    self.on_request(now, tl, call, leg, id, msg, source);
                    None
                }
                None => Some(TuEvent::Request { id, msg, source }),
            },
            TuEvent::Cancel {
                id,
                msg,
                source,
                target,
            } => match target.and_then(|t| self.servers.get(&t).copied().map(|c| (t, c))) {
                Some((t, ctx)) => {
                    self.on_cancel(now, tl, id, &msg, t, ctx);
                    None
                }
                None => Some(TuEvent::Cancel {
                    id,
                    msg,
                    source,
                    target,
                }),
            },
            TuEvent::Ack {
                msg,
                source,
                matched,
            } => match self.dialog_of(&msg) {
                Some((call, leg)) => {
                    self.on_ack(now, tl, call, leg, &msg);
                    None
                }
                None => Some(TuEvent::Ack {
                    msg,
                    source,
                    matched,
                }),
            },
            TuEvent::Response { id, msg, source } => match self.clients.get(&id).copied() {
                Some(ctx) => {
                    self.on_response(now, tl, id, ctx, msg);
                    None
                }
                None => Some(TuEvent::Response { id, msg, source }),
            },
            TuEvent::StrayResponse { msg, source } => {
                // A 2xx retransmitted after its transaction ended: ACK it again.
                let key = msg::call_id(&msg).zip(msg::tag_of(&msg, HeaderName::From));
                match key.and_then(|k| self.dialogs.get(&k).copied()) {
                    Some((call, leg)) => {
                        self.resend_ack(now, tl, call, leg, &msg);
                        None
                    }
                    None => Some(TuEvent::StrayResponse { msg, source }),
                }
            }
            TuEvent::Timeout { tx, timer } => match tx {
                TxId::Client(c) if self.clients.contains_key(&c) => {
                    self.on_client_failure(now, tl, c, 408, "Request Timeout");
                    None
                }
                TxId::Server(s) if self.servers.contains_key(&s) => None,
                _ => Some(TuEvent::Timeout { tx, timer }),
            },
            TuEvent::TransportError { tx } => match tx {
                TxId::Client(c) if self.clients.contains_key(&c) => {
                    self.on_client_failure(now, tl, c, 503, "Service Unavailable");
                    None
                }
                TxId::Server(s) if self.servers.contains_key(&s) => None,
                _ => Some(TuEvent::TransportError { tx }),
            },
            TuEvent::Terminated { tx, reason } => {
                let mine = match tx {
                    TxId::Client(c) => match self.clients.remove(&c) {
                        Some(ctx) => {
                            if matches!(ctx.kind, ClientKind::Initial { .. }) {
                                // No more 2xx can come for this INVITE.
                                self.killed.retain(|(call, _)| *call != ctx.call);
                            }
                            true
                        }
                        None => false,
                    },
                    TxId::Server(s) => self.servers.remove(&s).is_some(),
                };
                (!mine).then_some(TuEvent::Terminated { tx, reason })
            }
            other => Some(other),
        }
    }

    /// Fires the B2BUA's timers due at `now` (call the layer's `handle_timeout` too).
    pub fn handle_timeout(&mut self, now: Instant, tl: &mut TransactionLayer) {
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, t))) = self.timers.pop() else {
                break;
            };
            self.fire(now, tl, t);
        }
    }

    /// Ends a call from outside (media timeout, administrator): BYE or final responses and
    /// CANCEL on both legs.
    pub fn terminate(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: CallHandle,
        cause: EndCause,
    ) {
        self.end_call(now, tl, call.0, cause, None, None);
    }

    /// The relay reported no media for a session: the call ends with BYE both ways.
    pub fn media_timeout(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        session: MediaSessionId,
    ) {
        let found = self
            .calls
            .iter()
            .find(|(_, c)| c.media == Some(session))
            .map(|(k, _)| *k);
        if let Some(call) = found {
            self.end_call(
                now,
                tl,
                call,
                EndCause::Media("media timeout".into()),
                None,
                None,
            );
        }
    }

    // ----------------------------------------------------------------------------------------
    // Sending
    // ----------------------------------------------------------------------------------------

    pub(super) fn zone(&self, call: u64, leg: LegSide) -> Option<ZoneIdentity> {
        let c = self.calls.get(&call)?;
        self.cfg.zones.get(c.leg(leg).zone).cloned()
    }

    /// Our Contact on `leg` (of the leg's transport).
    pub(super) fn contact(&self, call: u64, leg: LegSide) -> String {
        self.calls
            .get(&call)
            .map(|c| c.leg(leg).me.contact())
            .unwrap_or_default()
    }

    /// A new in-dialog request on `leg` (CSeq incremented) with its Contact when `method`
    /// needs one. The caller adds headers and the body.
    pub(super) fn new_request(
        &mut self,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        method: &str,
    ) -> Option<(Builder, u32)> {
        let c = self.calls.get_mut(&call)?;
        let l = c.leg_mut(leg);
        l.local_cseq += 1;
        let cseq = l.local_cseq;
        let branch = tl.new_branch();
        let mut b = leg_request_head(l, method, cseq, &branch, 70);
        if matches!(method, "INVITE" | "UPDATE") {
            b.header("Contact", l.me.contact());
        }
        Some((b, cseq))
    }

    pub(super) fn send_request(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        m: Message,
        kind: ClientKind,
    ) -> Option<ClientTxId> {
        let dest = self.calls.get(&call)?.leg(leg).peer;
        self.record(call, now, leg, Direction::Out, &m);
        match tl.send_request(now, m, dest) {
            Ok(id) => {
                self.clients.insert(
                    id,
                    ClientCtx {
                        call,
                        leg,
                        kind,
                        dest,
                    },
                );
                Some(id)
            }
            Err(e) => {
                self.drop_event(Some(call), format!("request not sent: {e}"));
                None
            }
        }
    }

    pub(super) fn send_response(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        server: ServerTxId,
        m: Message,
    ) {
        self.record(call, now, leg, Direction::Out, &m);
        if let Err(e) = tl.send_response(now, server, m) {
            self.drop_event(Some(call), format!("response not sent: {e}"));
        }
    }

    /// A response built from `req` (received on `leg`) and sent on its server transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        server: ServerTxId,
        req: &Message,
        status: u16,
        reason: &str,
    ) {
        let tag = self.calls.get(&call).map(|c| c.leg(leg).local_tag.clone());
        let b = response_head(req, status, reason.as_bytes(), tag.as_deref());
        if let Some(m) = b.finish(None) {
            self.send_response(now, tl, call, leg, server, m);
        }
    }

    /// ACK for the 2xx of our INVITE with CSeq `cseq` on `leg`, sent outside any transaction.
    pub(super) fn send_ack(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        cseq: u32,
        body: Option<&[u8]>,
    ) {
        let branch = tl.new_branch();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let l = c.leg_mut(leg);
        let b = leg_request_head(l, "ACK", cseq, &branch, 70);
        let Some(ack) = b.finish(body.map(|s| ("application/sdp", s))) else {
            return;
        };
        if let Some(s) = body {
            l.last_sdp_out = Some(Bytes::copy_from_slice(s));
        }
        l.last_ack = Some((cseq, ack.clone()));
        let dest = l.peer;
        self.record(call, now, leg, Direction::Out, &ack);
        tl.send_stateless(dest, ack.wire());
    }

    pub(super) fn resend_ack(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        resp: &Message,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let l = c.leg(leg);
        let cseq = msg::cseq(resp).map(|(n, _)| n);
        if let Some((n, ack)) = &l.last_ack {
            if Some(*n) == cseq {
                let (dest, wire, ack) = (l.peer, ack.wire(), ack.clone());
                self.record(call, now, leg, Direction::Out, &ack);
                tl.send_stateless(dest, wire);
            }
        }
    }

    /// ACK and BYE for a 2xx that no call wants (a second fork, or a 2xx after CANCEL), built
    /// from the INVITE we sent and the 2xx (RFC 3261 16.7 item 4, 13.2.2.4).
    pub(super) fn kill_dialog(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        invite: Option<Message>,
        resp: &Message,
        dest: Destination,
    ) {
        let Some(invite) = invite else { return };
        // A retransmission of a 2xx whose dialog was closed already gets its ACK only.
        let tag = msg::tag_of(resp, HeaderName::To).unwrap_or_default();
        let bye = self.killed.insert((call, tag));
        let Some(top) = invite.header(HeaderName::Via).map(|v| v.to_vec()) else {
            return;
        };
        let target = msg::contact_uri(resp)
            .or_else(|| invite.request_uri_str().map(str::to_owned))
            .unwrap_or_default();
        let (Some(from), Some(to), Some(cid), Some((n, _))) = (
            invite.header(HeaderName::From),
            resp.header(HeaderName::To),
            invite.header(HeaderName::CallId),
            msg::cseq(&invite),
        ) else {
            return;
        };
        let routes: Vec<String> = msg::record_routes(resp).into_iter().rev().collect();
        let build = |method: &str, seq: u32, via: &[u8]| {
            let mut b = Builder::request(method, &target);
            b.header("Via", via);
            for r in &routes {
                b.header("Route", r);
            }
            b.header("Max-Forwards", "70");
            b.header("From", from);
            b.header("To", to);
            b.header("Call-ID", cid);
            b.header("CSeq", format!("{seq} {method}"));
            b.finish(None)
        };
        if let Some(ack) = build("ACK", n, &top) {
            tl.send_stateless(dest, ack.wire());
        }
        let v = invite
            .top_via()
            .and_then(|v| v.ok())
            .map(|v| format!("SIP/2.0/{} {}", v.transport, v.host_str));
        let Some(v) = v.filter(|_| bye) else { return };
        let port = invite
            .top_via()
            .and_then(|v| v.ok())
            .and_then(|v| v.port)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let via = format!("{v}{port};branch={};rport", tl.new_branch());
        if let Some(bye) = build("BYE", n + 1, via.as_bytes()) {
            let _ = tl.send_request(now, bye, dest);
        }
    }

    /// The reason phrase for a response relayed to `to`: a peer's own text stays in trusted
    /// zones and between untrusted ones; from a trusted zone into an untrusted one only the
    /// standard phrase crosses (a PBX may write anything there, host names included).
    pub(super) fn phrase(&self, call: u64, to: LegSide, resp: &Message) -> Vec<u8> {
        let status = resp.status().unwrap_or(500);
        let trusted = |l: LegSide| self.zone(call, l).is_some_and(|z| z.trusted);
        if !trusted(to) && trusted(to.other()) {
            return standard_phrase(status).as_bytes().to_vec();
        }
        resp.reason_phrase().unwrap_or(b"").to_vec()
    }

    // ----------------------------------------------------------------------------------------
    // Requests from a leg
    // ----------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        id: ServerTxId,
        req: Message,
        source: Source,
    ) {
        self.servers.insert(id, ServerCtx { call, leg });
        self.record(call, now, leg, Direction::In, &req);
        let Some((cseq, _)) = msg::cseq(&req) else {
            self.reply(now, tl, call, leg, id, &req, 400, "Bad CSeq");
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let l = c.leg_mut(leg);
        if l.remote_cseq.is_some_and(|r| cseq <= r) {
            self.reply(now, tl, call, leg, id, &req, 500, "CSeq Out Of Order");
            return;
        }
        l.remote_cseq = Some(cseq);
        // A peer behind NAT is reached where its requests come from.
        l.peer = source.into();
        if let Some(t) = msg::contact_uri(&req) {
            if matches!(req.method(), Some(Method::Invite | Method::Update)) {
                l.remote_target = t;
            }
        }
        if self.transfer_intercepts(now, tl, call, leg, id, &req) {
            return;
        }
        match req.method() {
            Some(Method::Bye) => {
                self.reply(now, tl, call, leg, id, &req, 200, "OK");
                self.end_call(now, tl, call, EndCause::Hangup(leg), None, Some(leg));
            }
            Some(Method::Prack) => self.on_prack(now, tl, call, leg, id, &req),
            Some(Method::Refer) => self.on_refer(now, tl, call, leg, id, &req),
            Some(Method::Subscribe) => {
                self.reply(now, tl, call, leg, id, &req, 501, "Not Implemented");
            }
            Some(Method::Invite | Method::Update) => {
                let c = self.calls.get(&call);
                let other_confirmed = c.is_some_and(|c| c.leg(leg.other()).confirmed);
                // A transfer re-bridges the media: no other offer until it is done.
                let busy =
                    c.is_some_and(|c| c.busy || c.deferred_ack.is_some() || c.transfer.is_some());
                let has_sdp = msg::sdp_body(&req).is_some();
                if !other_confirmed {
                    // UPDATE in an early dialog is not relayed (RFC 3311 allows it; later).
                    self.reply(now, tl, call, leg, id, &req, 500, "Not Ready");
                } else if busy && (req.method() == Some(Method::Invite) || has_sdp) {
                    // Glare (RFC 3261 14.1): an offer is already in progress on this call.
                    let mut b = response_head(&req, 491, b"Request Pending", None);
                    b.header("Retry-After", "1");
                    if let Some(m) = b.finish(None) {
                        self.send_response(now, tl, call, leg, id, m);
                    }
                } else {
                    self.relay_request(now, tl, call, leg, id, &req);
                }
            }
            _ => {
                let other_confirmed = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.leg(leg.other()).confirmed);
                if other_confirmed {
                    self.relay_request(now, tl, call, leg, id, &req);
                } else {
                    self.reply(now, tl, call, leg, id, &req, 481, "Call Does Not Exist");
                }
            }
        }
    }

    /// Sends `req` (received on `from`) as a new request on the other leg.
    pub(super) fn relay_request(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        from: LegSide,
        id: ServerTxId,
        req: &Message,
    ) {
        let to = from.other();
        let method = req.method_str().unwrap_or("").to_owned();
        // Offers and answers ride on INVITE and UPDATE only; SDP elsewhere stays behind.
        let sdp = msg::sdp_body(req)
            .filter(|_| matches!(req.method(), Some(Method::Invite | Method::Update)));
        let mut body: Option<(String, Bytes)> = None;
        if let Some(s) = &sdp {
            self.note_sdp_in(call, from, s);
            let media = self.calls.get(&call).and_then(|c| c.media);
            let r = match media {
                Some(m) => self.media.offer(m, from.media(), s),
                None => Err(MediaPortError::Unavailable("no media session".into())),
            };
            match r {
                Ok(o) => body = Some(("application/sdp".into(), self.sdp_for(call, to, o))),
                Err(e) => {
                    self.drop_event(Some(call), e.to_string());
                    self.reply(now, tl, call, from, id, req, 488, "Not Acceptable Here");
                    return;
                }
            }
        } else if let Some(pb) = msg::passable_body(req, &self.cfg) {
            body = Some(pb);
        }
        let Some((mut b, _)) = self.new_request(tl, call, to, &method) else {
            return;
        };
        let is_offer_method = matches!(req.method(), Some(Method::Invite | Method::Update));
        if is_offer_method {
            b.header("Allow", ALLOW);
            b.header("Supported", "100rel, timer");
            if let Some((d, _)) = msg::session_expires(req) {
                b.header("Session-Expires", d.to_string());
            }
        }
        msg::copy_allowed(&mut b, req, &self.cfg, &["Allow"]);
        let Some(m) = b.finish(body.as_ref().map(|(t, s)| (t.as_str(), s.as_ref()))) else {
            self.reply(now, tl, call, from, id, req, 500, "Server Internal Error");
            return;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            if let Some((_, s)) = body.as_ref().filter(|(t, _)| t == "application/sdp") {
                c.leg_mut(to).last_sdp_out = Some(s.clone());
            }
            if req.method() == Some(Method::Invite) || sdp.is_some() {
                c.busy = true;
            }
        }
        let kind = ClientKind::Relay {
            server: id,
            offer: sdp.is_some(),
        };
        if self.send_request(now, tl, call, to, m, kind).is_some() {
            self.servers.insert(id, ServerCtx { call, leg: from });
        } else {
            if let Some(c) = self.calls.get_mut(&call) {
                c.busy = false;
            }
            self.reply(now, tl, call, from, id, req, 500, "Server Internal Error");
        }
    }

    pub(super) fn on_prack(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        id: ServerTxId,
        req: &Message,
    ) {
        let Some((rseq, _)) = msg::rack(req) else {
            self.reply(now, tl, call, leg, id, req, 400, "Bad RAck");
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        // The reliable provisional is acknowledged: no more retransmissions.
        if c.leg(leg)
            .pending_rel
            .as_ref()
            .is_some_and(|p| p.rseq == rseq)
        {
            c.leg_mut(leg).pending_rel = None;
        }
        let mapped = c.rel_map.iter().find(|(a, _, _)| *a == rseq).copied();
        let Some((_, b_rseq, b_cseq)) = mapped.filter(|_| leg == LegSide::A) else {
            self.reply(now, tl, call, leg, id, req, 481, "No Such Provisional");
            return;
        };
        let Some((mut b, _)) = self.new_request(tl, call, LegSide::B, "PRACK") else {
            return;
        };
        b.header("RAck", format!("{b_rseq} {b_cseq} INVITE"));
        msg::copy_allowed(&mut b, req, &self.cfg, &[]);
        let Some(m) = b.finish(None) else { return };
        let kind = ClientKind::Relay {
            server: id,
            offer: false,
        };
        if self
            .send_request(now, tl, call, LegSide::B, m, kind)
            .is_some()
        {
            self.servers.insert(id, ServerCtx { call, leg });
        }
    }

    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        cancel: ServerTxId,
        req: &Message,
        target: ServerTxId,
        ctx: ServerCtx,
    ) {
        let call = ctx.call;
        self.servers.insert(cancel, ctx);
        self.record(call, now, ctx.leg, Direction::In, req);
        self.reply(now, tl, call, ctx.leg, cancel, req, 200, "OK");
        let initial = self
            .calls
            .get(&call)
            .is_some_and(|c| c.a_invite == target && !c.a_final);
        if initial {
            self.end_call(now, tl, call, EndCause::Cancelled, Some(487), None);
        }
    }

    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        ack: &Message,
    ) {
        self.record(call, now, leg, Direction::In, ack);
        let cseq = msg::cseq(ack).map(|(n, _)| n);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.leg(leg).pending_2xx.as_ref().map(|p| p.cseq) == cseq {
            c.leg_mut(leg).pending_2xx = None;
        } else {
            return;
        }
        let Some(d) = c.deferred_ack.filter(|d| d.leg == leg.other()) else {
            return;
        };
        c.deferred_ack = None;
        let media = c.media;
        if let Some(s) = msg::sdp_body(ack) {
            self.note_sdp_in(call, leg, &s);
        }
        let answer = match (msg::sdp_body(ack), media) {
            (Some(s), Some(m)) => match self.media.answer(m, leg.media(), &s) {
                Ok(a) => Some(self.sdp_for(call, d.leg, a)),
                Err(e) => {
                    self.drop_event(Some(call), e.to_string());
                    None
                }
            },
            _ => None,
        };
        self.send_ack(now, tl, call, d.leg, d.cseq, answer.as_deref());
    }

    // ----------------------------------------------------------------------------------------
    // Responses to our requests
    // ----------------------------------------------------------------------------------------

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ClientTxId,
        ctx: ClientCtx,
        resp: Message,
    ) {
        let status = resp.status().unwrap_or(500);
        if !self.calls.contains_key(&ctx.call) {
            // The call is gone (cancelled, failed): a 2xx still opens a dialog on that leg,
            // which must be closed.
            if (200..300).contains(&status)
                && matches!(
                    ctx.kind,
                    ClientKind::Initial { .. } | ClientKind::TransferInvite
                )
            {
                let inv = tl.client_request(id).cloned();
                self.kill_dialog(now, tl, ctx.call, inv, &resp, ctx.dest);
            }
            return;
        }
        if status != 100 {
            self.record(ctx.call, now, ctx.leg, Direction::In, &resp);
        }
        match ctx.kind {
            ClientKind::Initial { offer } => {
                self.on_initial_response(now, tl, id, ctx, offer, resp)
            }
            ClientKind::Relay { server, offer } => {
                self.on_relay_response(now, tl, ctx, server, offer, resp)
            }
            ClientKind::Refresh => self.on_refresh_response(now, tl, ctx, resp),
            ClientKind::TransferInvite => self.on_transfer_response(now, tl, id, ctx, resp),
            ClientKind::Rebridge => self.on_rebridge_response(now, tl, ctx, resp),
            ClientKind::LocalPrack | ClientKind::Teardown => {}
        }
    }

    /// Leg B's dialog state from a response that carries a To tag.
    pub(super) fn learn_b(&mut self, call: u64, resp: &Message) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let tag = msg::tag_of(resp, HeaderName::To);
        let l = c.leg_mut(LegSide::B);
        match (&l.remote_tag, tag) {
            (_, None) => true,
            (Some(t), Some(n)) if *t != n && l.confirmed => false,
            (_, Some(n)) => {
                // Forked early dialogs all map to A's one early dialog; the latest fork that
                // spoke is the one PRACK and the 2xx go to.
                l.remote_tag = Some(n);
                if let Some(t) = msg::contact_uri(resp) {
                    l.remote_target = t;
                }
                l.route_set = msg::record_routes(resp).into_iter().rev().collect();
                l.peer_timer = msg::has_tag(resp, HeaderName::Supported, "timer")
                    || msg::has_tag(resp, HeaderName::Require, "timer");
                l.peer_update = resp.header(HeaderName::Allow).is_some_and(|v| {
                    String::from_utf8_lossy(v)
                        .to_ascii_uppercase()
                        .contains("UPDATE")
                });
                true
            }
        }
    }

    /// SDP from `from` in a response: an answer when the request carried the offer.
    pub(super) fn media_for(
        &mut self,
        call: u64,
        from: LegSide,
        offer_in_request: bool,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        self.note_sdp_in(call, from, sdp);
        let m = self
            .calls
            .get(&call)
            .and_then(|c| c.media)
            .ok_or_else(|| MediaPortError::Unavailable("no media session".into()))?;
        if offer_in_request {
            self.media.answer(m, from.media(), sdp)
        } else {
            self.media.offer(m, from.media(), sdp)
        }
    }

    pub(super) fn on_initial_response(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ClientTxId,
        ctx: ClientCtx,
        offer: bool,
        resp: Message,
    ) {
        let call = ctx.call;
        let status = resp.status().unwrap_or(500);
        if status == 100 {
            return;
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (a_invite, a_req, a_final) = (c.a_invite, c.a_invite_req.clone(), c.a_final);
        if (101..200).contains(&status) {
            if a_final || !self.learn_b(call, &resp) {
                return;
            }
            self.relay_provisional(now, tl, call, offer, a_invite, &a_req, &resp);
            return;
        }
        if (200..300).contains(&status) {
            let b = self.calls.get(&call).map(|c| c.leg(LegSide::B));
            let same_dialog = b
                .is_some_and(|l| l.confirmed && l.remote_tag == msg::tag_of(&resp, HeaderName::To));
            if same_dialog {
                // A retransmission: B did not get our ACK.
                self.resend_ack(now, tl, call, LegSide::B, &resp);
                return;
            }
            if a_final {
                let inv = tl.client_request(id).cloned();
                self.kill_dialog(now, tl, ctx.call, inv, &resp, ctx.dest);
                return;
            }
            if !self.learn_b(call, &resp) {
                let inv = tl.client_request(id).cloned();
                self.kill_dialog(now, tl, ctx.call, inv, &resp, ctx.dest);
                return;
            }
            self.answer_call(now, tl, call, offer, a_invite, &a_req, &resp);
            return;
        }
        // 3xx-6xx: the call fails with leg B's status, unless it is a redirect that must not
        // reach an untrusted caller.
        let za_trusted = self.zone(call, LegSide::A).is_some_and(|z| z.trusted);
        let redirect = (300..400).contains(&status);
        let pass_redirect = za_trusted || self.cfg.pass_redirects_to_untrusted;
        let (st, reason): (u16, Vec<u8>) = if redirect && !pass_redirect {
            (480, b"Temporarily Unavailable".to_vec())
        } else {
            (status, self.phrase(call, LegSide::A, &resp))
        };
        let tag = self
            .calls
            .get(&call)
            .map(|c| c.leg(LegSide::A).local_tag.clone());
        let mut b = response_head(&a_req, st, &reason, tag.as_deref());
        if redirect && pass_redirect {
            for v in resp.header_values(HeaderName::Contact) {
                b.header("Contact", v);
            }
        }
        if status == 422 {
            if let Some(v) = resp.header(HeaderName::MinSe) {
                b.header("Min-SE", v);
            }
        }
        if status == 420 {
            if let Some(v) = resp.header_by_name("Unsupported") {
                b.header("Unsupported", v);
            }
        }
        msg::copy_allowed(&mut b, &resp, &self.cfg, &["Unsupported"]);
        if let Some(m) = b.finish(None) {
            self.send_response(now, tl, call, LegSide::A, a_invite, m);
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.a_final = true;
            c.b_invite = None;
        }
        self.end_call(now, tl, call, EndCause::Rejected, Some(st), None);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn relay_provisional(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        offer: bool,
        a_invite: ServerTxId,
        a_req: &Message,
        resp: &Message,
    ) {
        let status = resp.status().unwrap_or(180);
        let reliable = msg::has_tag(resp, HeaderName::Require, "100rel");
        let b_rseq = msg::rseq(resp);
        let b_cseq = msg::cseq(resp).map(|(n, _)| n).unwrap_or(1);
        let a_rel = self
            .calls
            .get(&call)
            .is_some_and(|c| c.leg(LegSide::A).peer_100rel);
        let body = match msg::sdp_body(resp) {
            Some(s) => match self.media_for(call, LegSide::B, offer, &s) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.drop_event(Some(call), e.to_string());
                    None
                }
            },
            None => None,
        };
        let phrase = self.phrase(call, LegSide::A, resp);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let [la, _] = &mut c.legs;
        let mut b = response_head(a_req, status, &phrase, Some(&la.local_tag));
        for r in &la.route_set {
            b.header("Record-Route", r);
        }
        b.header("Contact", la.me.contact());
        let mut rel_rseq = None;
        if reliable && a_rel {
            let r = la.rseq_next;
            la.rseq_next += 1;
            b.header("Require", "100rel");
            b.header("RSeq", r.to_string());
            rel_rseq = Some(r);
            if let Some(br) = b_rseq {
                // Bounded: a peer sending reliable provisionals forever cannot grow it.
                if c.rel_map.len() >= 32 {
                    c.rel_map.remove(0);
                }
                c.rel_map.push((r, br, b_cseq));
            }
        }
        let a_reliable = la.peer.reliable;
        let mut tmp = b;
        msg::copy_allowed(&mut tmp, resp, &self.cfg, &[]);
        if let Some(s) = &body {
            if let Some(c) = self.calls.get_mut(&call) {
                c.leg_mut(LegSide::A).last_sdp_out = Some(Bytes::copy_from_slice(s));
            }
        }
        let Some(m) = tmp.finish(body.as_deref().map(|s| ("application/sdp", s))) else {
            return;
        };
        if let Some(r) = rel_rseq {
            let t1 = tl.config().t1;
            let gen = self.next_gen();
            if let Some(c) = self.calls.get_mut(&call) {
                c.leg_mut(LegSide::A).pending_rel = Some(PendingRel {
                    server: a_invite,
                    msg: m.clone(),
                    rseq: r,
                    interval: t1,
                    give_up: now + t1 * 64,
                    gen,
                });
            }
            if !a_reliable {
                self.arm(now + t1, call, LegSide::A, TimerKind::RelRetx, gen);
            }
        } else if reliable {
            // A cannot acknowledge it: we do, on leg B.
            if let Some(br) = b_rseq {
                if let Some((mut pb, _)) = self.new_request(tl, call, LegSide::B, "PRACK") {
                    pb.header("RAck", format!("{br} {b_cseq} INVITE"));
                    if let Some(p) = pb.finish(None) {
                        self.send_request(now, tl, call, LegSide::B, p, ClientKind::LocalPrack);
                    }
                }
            }
        }
        self.send_response(now, tl, call, LegSide::A, a_invite, m);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_call(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        offer: bool,
        a_invite: ServerTxId,
        a_req: &Message,
        resp: &Message,
    ) {
        let b_cseq = msg::cseq(resp).map(|(n, _)| n).unwrap_or(1);
        let sdp = msg::sdp_body(resp);
        let body = match &sdp {
            Some(s) => match self.media_for(call, LegSide::B, offer, s) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.drop_event(Some(call), e.to_string());
                    None
                }
            },
            None => None,
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.leg_mut(LegSide::B).confirmed = true;
            c.a_final = true;
            c.answered = true;
            c.busy = false;
            c.b_invite = None;
        }
        // ACK on B now, unless B's 2xx is an offer whose answer comes in A's ACK.
        if offer || sdp.is_none() {
            self.send_ack(now, tl, call, LegSide::B, b_cseq, None);
        } else if let Some(c) = self.calls.get_mut(&call) {
            c.deferred_ack = Some(DeferredAck {
                leg: LegSide::B,
                cseq: b_cseq,
            });
        }
        // Session timers: leg B as the 2xx says, leg A as we tell A.
        let req_se = a_req_session(a_req);
        let b_se = msg::session_expires(resp);
        let interval = b_se
            .map(|(d, _)| d)
            .or(req_se)
            .or(self.cfg.session_expires.map(|d| d.as_secs() as u32));
        if let Some(iv) = interval {
            // B's refresher: uac is us; no Session-Expires in the 2xx: B has no timer, we refresh.
            let we_refresh_b = match b_se {
                Some((_, Some(uac))) => uac,
                Some((_, None)) => true,
                None => true,
            };
            self.set_session_timer(now, call, LegSide::B, iv, we_refresh_b);
        }
        let phrase = self.phrase(call, LegSide::A, resp);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let la = c.leg_mut(LegSide::A);
        let mut b = response_head(
            a_req,
            resp.status().unwrap_or(200),
            &phrase,
            Some(&la.local_tag),
        );
        for r in &la.route_set {
            b.header("Record-Route", r);
        }
        b.header("Contact", la.me.contact());
        b.header("Allow", ALLOW);
        b.header("Supported", "100rel, timer");
        let mut we_refresh_a = None;
        if let Some(iv) = interval {
            if la.peer_timer {
                // A supports timers: it refreshes (refresher=uac), as it asked or not.
                let a_ref = msg::session_expires(a_req)
                    .and_then(|(_, r)| r)
                    .unwrap_or(true);
                let who = if a_ref { "uac" } else { "uas" };
                b.header("Session-Expires", format!("{iv};refresher={who}"));
                b.header("Require", "timer");
                we_refresh_a = Some(!a_ref);
            } else {
                b.header("Session-Expires", format!("{iv};refresher=uas"));
                we_refresh_a = Some(true);
            }
        }
        msg::copy_allowed(&mut b, resp, &self.cfg, &["Allow"]);
        if let Some(s) = &body {
            la.last_sdp_out = Some(Bytes::copy_from_slice(s));
        }
        la.confirmed = true;
        let a_cseq = la.remote_cseq.unwrap_or(1);
        let Some(m) = b.finish(body.as_deref().map(|s| ("application/sdp", s))) else {
            return;
        };
        if let (Some(iv), Some(w)) = (interval, we_refresh_a) {
            self.set_session_timer(now, call, LegSide::A, iv, w);
        }
        self.start_2xx(now, tl, call, LegSide::A, a_invite, m, a_cseq);
        self.events.push_back(B2buaEvent::CallAnswered {
            call: CallHandle(call),
            at: now,
        });
    }

    /// Sends a 2xx to an INVITE and retransmits it until the ACK (13.3.1.4).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_2xx(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        server: ServerTxId,
        m: Message,
        cseq: u32,
    ) {
        let t1 = tl.config().t1;
        let gen = self.next_gen();
        if let Some(c) = self.calls.get_mut(&call) {
            c.leg_mut(leg).pending_2xx = Some(Pending2xx {
                server,
                msg: m.clone(),
                cseq,
                interval: t1,
                give_up: now + t1 * 64,
                gen,
            });
        }
        self.arm(now + t1, call, leg, TimerKind::Retx2xx, gen);
        self.send_response(now, tl, call, leg, server, m);
    }

    pub(super) fn on_relay_response(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        ctx: ClientCtx,
        server: ServerTxId,
        offer: bool,
        resp: Message,
    ) {
        let call = ctx.call;
        let status = resp.status().unwrap_or(500);
        let (from, to) = (ctx.leg, ctx.leg.other());
        let Some(req) = tl.server_request(server).cloned() else {
            return;
        };
        let method = req.method();
        let is_invite = method == Some(Method::Invite);
        if status < 200 {
            // Provisionals of re-INVITEs carry nothing we relay but the progress itself.
            if status > 100 && is_invite {
                let tag = self.calls.get(&call).map(|c| c.leg(to).local_tag.clone());
                let b = response_head(&req, status, &self.phrase(call, to, &resp), tag.as_deref());
                if let Some(m) = b.finish(None) {
                    self.send_response(now, tl, call, to, server, m);
                }
            }
            return;
        }
        let resp_cseq = msg::cseq(&resp).map(|(n, _)| n).unwrap_or(0);
        let ok = (200..300).contains(&status);
        if ok && is_invite {
            // A retransmitted 2xx: ACK it again (or wait for the deferred answer), relay nothing.
            let c = self.calls.get(&call);
            let acked = c
                .and_then(|c| c.leg(from).last_ack.as_ref())
                .is_some_and(|(n, _)| *n == resp_cseq);
            let deferred = c
                .and_then(|c| c.deferred_ack)
                .is_some_and(|d| d.leg == from && d.cseq == resp_cseq);
            if acked {
                self.resend_ack(now, tl, call, from, &resp);
                return;
            }
            if deferred {
                return;
            }
        }
        let sdp = msg::sdp_body(&resp)
            .filter(|_| matches!(method, Some(Method::Invite | Method::Update)));
        let mut body: Option<(String, Bytes)> = None;
        if ok {
            if let Some(s) = &sdp {
                match self.media_for(call, from, offer, s) {
                    Ok(b) => body = Some(("application/sdp".into(), self.sdp_for(call, to, b))),
                    Err(e) => self.drop_event(Some(call), e.to_string()),
                }
            } else if !matches!(method, Some(Method::Invite | Method::Update)) {
                body = msg::passable_body(&resp, &self.cfg);
            }
        }
        if is_invite || sdp.is_some() || (offer && method == Some(Method::Update)) {
            if let Some(c) = self.calls.get_mut(&call) {
                c.busy = false;
            }
        }
        if ok && is_invite {
            if offer || sdp.is_none() {
                self.send_ack(now, tl, call, from, resp_cseq, None);
            } else if let Some(c) = self.calls.get_mut(&call) {
                c.deferred_ack = Some(DeferredAck {
                    leg: from,
                    cseq: resp_cseq,
                });
            }
        }
        if ok && matches!(method, Some(Method::Invite | Method::Update)) {
            // A successful INVITE or UPDATE refreshes the session on both legs.
            if let Some(t) = self.calls.get(&call).and_then(|c| c.leg(from).timer) {
                self.set_session_timer(now, call, from, t.interval, t.we_refresh);
            }
            if let Some(t) = self.calls.get(&call).and_then(|c| c.leg(to).timer) {
                self.set_session_timer(now, call, to, t.interval, t.we_refresh);
            }
        }
        let Some((tag, contact)) = self
            .calls
            .get(&call)
            .map(|c| (c.leg(to).local_tag.clone(), c.leg(to).me.contact()))
        else {
            return;
        };
        let phrase = self.phrase(call, to, &resp);
        let mut b = response_head(&req, status, &phrase, Some(&tag));
        if ok && matches!(method, Some(Method::Invite | Method::Update)) {
            b.header("Contact", contact);
            b.header("Supported", "100rel, timer");
            if let Some(t) = self.calls.get(&call).and_then(|c| c.leg(to).timer) {
                let who = if t.we_refresh { "uas" } else { "uac" };
                b.header("Session-Expires", format!("{};refresher={who}", t.interval));
                if !t.we_refresh {
                    // RFC 4028 9: refresher=uac in a 2xx comes with Require: timer.
                    b.header("Require", "timer");
                }
            }
        }
        msg::copy_allowed(&mut b, &resp, &self.cfg, &[]);
        if let Some((t, s)) = &body {
            if t == "application/sdp" {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.leg_mut(to).last_sdp_out = Some(s.clone());
                }
            }
        }
        let Some(m) = b.finish(body.as_ref().map(|(t, s)| (t.as_str(), s.as_ref()))) else {
            return;
        };
        if ok && is_invite {
            let cseq = msg::cseq(&req).map(|(n, _)| n).unwrap_or(0);
            self.start_2xx(now, tl, call, to, server, m, cseq);
        } else {
            self.send_response(now, tl, call, to, server, m);
        }
        // RFC 5057: 481 (and 408) to an in-dialog request means that dialog is gone.
        if matches!(status, 481 | 408) && method != Some(Method::Prack) {
            self.end_call(now, tl, call, EndCause::DialogLost(from), None, Some(from));
        }
    }

    pub(super) fn on_refresh_response(
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
        let cseq = msg::cseq(&resp);
        if let Some(c) = self.calls.get_mut(&call) {
            c.busy = false;
        }
        if (200..300).contains(&status) {
            if let Some((n, m)) = &cseq {
                if m == "INVITE" {
                    self.send_ack(now, tl, call, leg, *n, None);
                }
            }
            if let Some(t) = self.calls.get(&call).and_then(|c| c.leg(leg).timer) {
                let iv = msg::session_expires(&resp).map_or(t.interval, |(d, _)| d);
                self.set_session_timer(now, call, leg, iv, t.we_refresh);
            }
        } else if matches!(status, 481 | 408) {
            self.end_call(now, tl, call, EndCause::DialogLost(leg), None, Some(leg));
        }
    }

    pub(super) fn on_client_failure(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        id: ClientTxId,
        status: u16,
        reason: &str,
    ) {
        let Some(ctx) = self.clients.get(&id).copied() else {
            return;
        };
        if !self.calls.contains_key(&ctx.call) {
            return;
        }
        match ctx.kind {
            ClientKind::Initial { .. } => {
                if let Some(c) = self.calls.get_mut(&ctx.call) {
                    c.b_invite = None;
                }
                self.end_call(now, tl, ctx.call, EndCause::NoAnswer, Some(status), None);
            }
            ClientKind::Relay { server, .. } => {
                if let Some(req) = tl.server_request(server).cloned() {
                    self.reply(
                        now,
                        tl,
                        ctx.call,
                        ctx.leg.other(),
                        server,
                        &req,
                        status,
                        reason,
                    );
                }
                if let Some(c) = self.calls.get_mut(&ctx.call) {
                    c.busy = false;
                }
                self.end_call(
                    now,
                    tl,
                    ctx.call,
                    EndCause::DialogLost(ctx.leg),
                    None,
                    Some(ctx.leg),
                );
            }
            ClientKind::Refresh => {
                self.end_call(
                    now,
                    tl,
                    ctx.call,
                    EndCause::DialogLost(ctx.leg),
                    None,
                    Some(ctx.leg),
                );
            }
            ClientKind::TransferInvite => {
                self.transfer_failed(now, tl, ctx.call, Some(id), status, reason);
            }
            ClientKind::Rebridge => {
                if let Some(c) = self.calls.get_mut(&ctx.call) {
                    c.busy = false;
                }
                self.end_call(
                    now,
                    tl,
                    ctx.call,
                    EndCause::DialogLost(ctx.leg),
                    None,
                    Some(ctx.leg),
                );
            }
            ClientKind::LocalPrack | ClientKind::Teardown => {}
        }
    }

    // ----------------------------------------------------------------------------------------
    // Session timers and retransmissions
    // ----------------------------------------------------------------------------------------

    pub(super) fn set_session_timer(
        &mut self,
        now: Instant,
        call: u64,
        leg: LegSide,
        interval: u32,
        we_refresh: bool,
    ) {
        let interval = interval.max(self.cfg.min_se.as_secs() as u32).max(1);
        let gen = self.next_gen();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.leg_mut(leg).timer = Some(SessionTimer {
            interval,
            we_refresh,
            gen,
        });
        if we_refresh {
            let half = Duration::from_secs(u64::from(interval) / 2);
            self.arm(now + half, call, leg, TimerKind::Refresh, gen);
        }
        self.arm(
            now + expiry_after(interval),
            call,
            leg,
            TimerKind::Expiry,
            gen,
        );
    }

    pub(super) fn fire(&mut self, now: Instant, tl: &mut TransactionLayer, t: TimerEntry) {
        let Some(c) = self.calls.get_mut(&t.call) else {
            return;
        };
        let l = c.leg_mut(t.leg);
        match t.kind {
            TimerKind::Retx2xx => {
                let Some(p) = l.pending_2xx.as_mut().filter(|p| p.gen == t.gen) else {
                    return;
                };
                if now >= p.give_up {
                    l.pending_2xx = None;
                    self.end_call(now, tl, t.call, EndCause::NoAck(t.leg), None, None);
                    return;
                }
                let t2 = tl.config().t2;
                p.interval = (p.interval * 2).min(t2);
                let (server, m, next) = (p.server, p.msg.clone(), now + p.interval);
                self.arm(next, t.call, t.leg, TimerKind::Retx2xx, t.gen);
                self.send_response(now, tl, t.call, t.leg, server, m);
            }
            TimerKind::RelRetx => {
                if c.a_final {
                    return;
                }
                let l = c.leg_mut(t.leg);
                let Some(p) = l.pending_rel.as_mut().filter(|p| p.gen == t.gen) else {
                    return;
                };
                if now >= p.give_up {
                    // RFC 3262 3: no PRACK in 64*T1: reject the INVITE with 5xx.
                    l.pending_rel = None;
                    self.end_call(now, tl, t.call, EndCause::NoAck(t.leg), Some(504), None);
                    return;
                }
                p.interval *= 2;
                let (server, m, next) = (p.server, p.msg.clone(), now + p.interval);
                self.arm(next, t.call, t.leg, TimerKind::RelRetx, t.gen);
                self.send_response(now, tl, t.call, t.leg, server, m);
            }
            TimerKind::Refresh => {
                let Some(st) = l.timer.filter(|s| s.gen == t.gen) else {
                    return;
                };
                self.refresh(now, tl, t.call, t.leg, st);
            }
            TimerKind::TransferRing => self.transfer_ring_timeout(now, tl, t),
            TimerKind::Expiry => {
                if l.timer.is_some_and(|s| s.gen == t.gen) {
                    self.end_call(
                        now,
                        tl,
                        t.call,
                        EndCause::SessionTimerExpired(t.leg),
                        None,
                        None,
                    );
                }
            }
        }
    }

    /// Our session refresh on `leg`: UPDATE when the peer allows it, else a re-INVITE with the
    /// SDP we last sent there (an unchanged offer).
    pub(super) fn refresh(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        leg: LegSide,
        st: SessionTimer,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.busy || c.deferred_ack.is_some() || c.transfer.is_some() {
            // An offer is in progress (or a transfer, whose re-bridge may need the offer
            // slot); its 2xx refreshes the session. Look again soon.
            let at = now + Duration::from_secs(u64::from(st.interval / 8).max(1));
            self.arm(at, call, leg, TimerKind::Refresh, st.gen);
            return;
        }
        let l = c.leg(leg);
        let use_update = l.peer_update;
        let sdp = l.last_sdp_out.clone();
        let method = if use_update { "UPDATE" } else { "INVITE" };
        let Some((mut b, _)) = self.new_request(tl, call, leg, method) else {
            return;
        };
        b.header("Supported", "timer");
        b.header("Session-Expires", format!("{};refresher=uac", st.interval));
        let body = if use_update { None } else { sdp };
        let Some(m) = b.finish(body.as_deref().map(|s| ("application/sdp", s))) else {
            return;
        };
        if !use_update {
            if let Some(c) = self.calls.get_mut(&call) {
                c.busy = true;
            }
        }
        self.send_request(now, tl, call, leg, m, ClientKind::Refresh);
    }

    // ----------------------------------------------------------------------------------------
    // Teardown
    // ----------------------------------------------------------------------------------------

    /// Ends the call on both legs (except `skip`, which ended it): BYE on confirmed legs, the
    /// final `status` to A's INVITE when it has none, CANCEL of B's pending INVITE.
    pub(super) fn end_call(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        call: u64,
        cause: EndCause,
        status: Option<u16>,
        skip: Option<LegSide>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (a_final, a_invite, a_req, b_invite) =
            (c.a_final, c.a_invite, c.a_invite_req.clone(), c.b_invite);
        let confirmed = |l: LegSide| c.leg(l).confirmed;
        let (conf_a, conf_b) = (confirmed(LegSide::A), confirmed(LegSide::B));
        let mut final_status = None;
        if !a_final {
            let st = status.unwrap_or(500);
            let reason = match st {
                487 => "Request Terminated",
                408 => "Request Timeout",
                503 => "Service Unavailable",
                504 => "Server Time-out",
                _ => "Server Internal Error",
            };
            self.reply(now, tl, call, LegSide::A, a_invite, &a_req, st, reason);
            final_status = Some(st);
            if let Some(c) = self.calls.get_mut(&call) {
                c.a_final = true;
            }
        } else if status.is_some() {
            final_status = status;
        }
        self.abandon_transfer(now, tl, call);
        if let Some(b) = b_invite.filter(|_| !conf_b) {
            if let Ok(cid) = tl.cancel(now, b) {
                self.clients.insert(
                    cid,
                    ClientCtx {
                        call,
                        leg: LegSide::B,
                        kind: ClientKind::Teardown,
                        dest: unreachable_dest(),
                    },
                );
            }
        }
        for leg in [LegSide::A, LegSide::B] {
            let conf = match leg {
                LegSide::A => conf_a,
                LegSide::B => conf_b,
            };
            if Some(leg) == skip || !conf {
                continue;
            }
            if let Some((mut b, _)) = self.new_request(tl, call, leg, "BYE") {
                let reason = match &cause {
                    EndCause::SessionTimerExpired(_) => {
                        Some("SIP;cause=408;text=\"session timer expired\"")
                    }
                    EndCause::NoAck(_) => Some("SIP;cause=408;text=\"no ACK\""),
                    EndCause::Media(_) => Some("SIP;cause=408;text=\"media timeout\""),
                    _ => None,
                };
                if let Some(r) = reason {
                    b.header("Reason", r);
                }
                if let Some(m) = b.finish(None) {
                    self.send_request(now, tl, call, leg, m, ClientKind::Teardown);
                }
            }
        }
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        let lb = c.leg(LegSide::B);
        if let (true, Some(t)) = (lb.confirmed, &lb.remote_tag) {
            self.killed.insert((call, t.clone()));
        }
        if let Some(m) = c.media {
            self.media.release(m);
        }
        for l in &c.legs {
            self.dialogs
                .remove(&(l.call_id.clone(), l.local_tag.clone()));
        }
        self.events.push_back(B2buaEvent::CallEnded {
            call: CallHandle(call),
            at: now,
            cause,
            status: final_status,
            history: c.history.into_iter().collect(),
        });
    }
}

/// A's Session-Expires delta.
fn a_req_session(req: &Message) -> Option<u32> {
    msg::session_expires(req).map(|(d, _)| d)
}

/// Placeholder destination of a CANCEL's context (the layer sends it where the INVITE went).
pub(super) fn unreachable_dest() -> Destination {
    Destination {
        remote: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        flow: None,
        reliable: false,
    }
}

/// RFC 3261 21 (and RFC 3262, 4028, 3329...) reason phrases; by class for the others.
pub(super) fn standard_phrase(status: u16) -> &'static str {
    match status {
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirected",
            4 => "Request Failed",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}
