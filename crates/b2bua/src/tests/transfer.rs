//! Call transfer through the B2BUA (REFER local and passthrough, Replaces), with the same
//! harness as the call tests: real transaction layer, simulated clock, the test playing the
//! PBX (192.168.10.20, also the transfer target's proxy) and the ITSP (203.0.113.5).

use super::*;

const REFER_VIA: &str = "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanrefer";

/// The REFER the PBX sends on leg A (the dialog of `ok_a`).
fn refer(h: &mut H, ok_a: &Message, cseq: u32, refer_to: &str) {
    let target = msg::contact_uri(ok_a).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "REFER",
            &target,
            true,
            ok_a,
            cseq,
            &format!("{REFER_VIA}{cseq}"),
            &format!(
                "Refer-To: {refer_to}\nReferred-By: <sip:201@pbx.lan.example>\nContact: <sip:201@192.168.10.20:5060>"
            ),
            None,
        ),
    );
}

fn find(all: &[Message], start: &str) -> Message {
    all.iter()
        .find(|m| first(m).starts_with(start))
        .cloned()
        .unwrap_or_else(|| {
            let l: Vec<String> = all.iter().map(first).collect();
            panic!("no {start:?} in {l:?}")
        })
}

/// The transferor's BYE: not with the final NOTIFY (in `out`), but once that NOTIFY has its
/// answer, so that a proxy cannot deliver the BYE first.
fn bye_after_final_notify(h: &mut H, out: &[Message], bye_start: &str) -> Message {
    let notify = find(out, "NOTIFY");
    assert_eq!(sipfrag(&notify), "SIP/2.0 200 OK");
    let lines: Vec<String> = out.iter().map(first).collect();
    assert!(
        !lines.iter().any(|l| l.starts_with("BYE")),
        "the BYE waits for the NOTIFY's answer: {lines:?}"
    );
    h.inject_msg(PBX, respond(&notify, "200 OK", "x", "", None));
    h.expect(PBX, bye_start)
}

fn sipfrag(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).trim_end().to_owned()
}

fn target_sdp() -> String {
    "v=0\no=phone2002 5000 1 IN IP4 192.168.10.22\ns=-\nc=IN IP4 192.168.10.22\nt=0 0\nm=audio 12000 RTP/AVP 0\na=sendrecv\n".to_owned()
}

/// The ITSP's BYE on leg B (the dialog of `inv`, its To tag `wan1`).
fn itsp_bye(h: &mut H, inv: &Message, cseq: u32) {
    h.inject(
        ITSP,
        &in_dialog(
            "BYE",
            "sip:198.51.100.1:5060",
            false,
            &inv_with_tag(inv, "wan1"),
            cseq,
            &format!("SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanbye{cseq}"),
            "",
            None,
        ),
    );
}

/// Sets up the LAN -> WAN call and the REFER; returns (ITSP's INVITE, PBX's 200, the new
/// leg's INVITE) after checking the 202 and the first NOTIFY.
fn blind_refer(h: &mut H) -> (Message, Message, Message) {
    let (inv, ok_a) = lan_call_up(h, "");
    refer(h, &ok_a, 11, "<sip:2002@pbx.lan.example>");
    let out = h.take(PBX);
    let lines: Vec<String> = out.iter().map(first).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("SIP/2.0 202"), "202 first: {lines:?}");
    assert!(lines[1].starts_with("NOTIFY"), "then the NOTIFY: {lines:?}");
    let accepted = &out[0];
    assert_eq!(
        msg::tag_of(accepted, HeaderName::To),
        msg::tag_of(&ok_a, HeaderName::To)
    );
    let notify = find(&out, "NOTIFY sip:201@192.168.10.20:5060");
    assert_eq!(hv(&notify, HeaderName::Event), "refer");
    assert!(hv(&notify, HeaderName::SubscriptionState).starts_with("active"));
    assert!(hv(&notify, HeaderName::ContentType).starts_with("message/sipfrag"));
    assert_eq!(sipfrag(&notify), "SIP/2.0 100 Trying");
    assert_eq!(
        hv(&notify, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    h.inject_msg(PBX, respond(&notify, "200 OK", "x", "", None));
    let new = find(&out, "INVITE sip:2002@pbx.lan.example");
    assert_ne!(
        hv(&new, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    assert!(hv(&new, HeaderName::ReferredBy).contains("sip:201@pbx.lan.example"));
    // The offer is the ITSP's session on sipwarden's LAN side.
    let sdp = String::from_utf8_lossy(new.body()).into_owned();
    assert!(sdp.contains("c=IN IP4 192.168.10.1"), "{sdp}");
    assert!(!sdp.contains("203.0.113.9"), "{sdp}");
    assert!(
        h.take(ITSP).is_empty(),
        "the ITSP sees nothing of the REFER"
    );
    (inv, ok_a, new)
}

#[test]
fn blind_transfer_is_done_locally_and_the_itsp_sees_nothing() {
    let mut h = H::new();
    let (inv, _ok_a, new) = blind_refer(&mut h);
    let answers_before = h
        .media
        .log()
        .iter()
        .filter(|(op, _)| *op == "answer")
        .count();
    h.inject_msg(
        PBX,
        respond(
            &new,
            "180 Ringing",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            None,
        ),
    );
    assert!(h.take(ITSP).is_empty());
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    let out = h.take(PBX);
    let ack = find(&out, "ACK sip:2002@192.168.10.22");
    assert_eq!(hv(&ack, HeaderName::CallId), hv(&new, HeaderName::CallId));
    let notify = find(&out, "NOTIFY sip:201@192.168.10.20:5060");
    assert_eq!(sipfrag(&notify), "SIP/2.0 200 OK");
    assert!(hv(&notify, HeaderName::SubscriptionState).starts_with("terminated"));
    let bye = bye_after_final_notify(&mut h, &out, "BYE sip:201@192.168.10.20:5060");
    assert_eq!(
        hv(&bye, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    // The new leg's answer went to the relay as the LAN side's answer.
    let answers = h
        .media
        .log()
        .iter()
        .filter(|(op, _)| *op == "answer")
        .count();
    assert_eq!(answers, answers_before + 1);
    // The ITSP was not on hold: it gets nothing at all.
    assert!(h.take(ITSP).is_empty(), "no re-INVITE to the ITSP");
    h.inject_msg(PBX, respond(&bye, "200 OK", "x", "", None));
    assert_eq!(h.b2b.call_count(), 1);
    assert_eq!(h.b2b.transfer_stats().local_succeeded, 1);
    assert!(!h.b2b.transfer_pending(h.b2b.calls()[0]));

    // The old leg is gone: its late BYE is not ours any more.
    let stale = in_dialog(
        "BYE",
        "sip:192.168.10.1:5060",
        true,
        &_ok_a,
        12,
        "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanstale",
        "",
        None,
    );
    h.inject(PBX, &stale);
    assert!(h.take(ITSP).is_empty(), "a stale BYE does not end the call");
    assert_eq!(h.b2b.call_count(), 1);

    // The ITSP hangs up: the BYE reaches the new leg.
    itsp_bye(&mut h, &inv, 3);
    h.expect(ITSP, "SIP/2.0 200");
    let bye = h.expect(PBX, "BYE sip:2002@192.168.10.22");
    assert_eq!(hv(&bye, HeaderName::CallId), hv(&new, HeaderName::CallId));
    assert!(hv(&bye, HeaderName::To).contains("tag=t2002"));
    assert_eq!(h.b2b.call_count(), 0);
    assert_eq!(h.media.live(), 0);
    h.assert_hidden();
}

#[test]
fn transferor_gets_its_bye_after_the_final_notify_even_unanswered() {
    let mut h = H::new();
    let (_inv, _ok_a, new) = blind_refer(&mut h);
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    let out = h.take(PBX);
    let lines: Vec<String> = out.iter().map(first).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("NOTIFY"))
            && !lines.iter().any(|l| l.starts_with("BYE")),
        "{lines:?}"
    );
    // The referrer never answers the NOTIFY: the BYE goes when its transaction gives up
    // (Timer F, 64*T1), not before, and only once.
    h.advance(Duration::from_secs(30));
    let lines: Vec<String> = h.take(PBX).iter().map(first).collect();
    assert!(
        !lines.iter().any(|l| l.starts_with("BYE")),
        "NOTIFY retransmissions only: {lines:?}"
    );
    h.advance(Duration::from_secs(3));
    let bye = h.expect(PBX, "BYE sip:201@192.168.10.20:5060");
    assert_eq!(
        hv(&bye, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    // Later BYEs are retransmissions of that one (same branch), none to anyone else.
    h.advance(Duration::from_secs(40));
    let byes: Vec<Message> = h
        .take(PBX)
        .into_iter()
        .filter(|m| first(m).starts_with("BYE"))
        .collect();
    assert!(!byes.is_empty(), "the BYE is retransmitted until answered");
    for b in &byes {
        assert!(first(b).starts_with("BYE sip:201@192.168.10.20:5060"));
        assert_eq!(hv(b, HeaderName::Via), hv(&bye, HeaderName::Via));
    }
    // The call goes on between the ITSP and the new leg.
    assert_eq!(h.b2b.call_count(), 1);
    assert_eq!(h.b2b.transfer_stats().local_succeeded, 1);
}

#[test]
fn busy_transfer_target_leaves_the_call_up() {
    let mut h = H::new();
    let (inv, ok_a, new) = blind_refer(&mut h);
    h.inject_msg(PBX, respond(&new, "486 Busy Here", "t2002", "", None));
    let out = h.take(PBX);
    find(&out, "ACK sip:2002@pbx.lan.example");
    let notify = find(&out, "NOTIFY sip:201@192.168.10.20:5060");
    assert_eq!(sipfrag(&notify), "SIP/2.0 486 Busy Here");
    assert!(hv(&notify, HeaderName::SubscriptionState).starts_with("terminated"));
    assert!(
        out.iter().all(|m| !first(m).starts_with("BYE")),
        "the referrer keeps its call"
    );
    assert_eq!(h.b2b.transfer_stats().local_failed, 1);
    assert!(h.take(ITSP).is_empty());
    // The call is intact: a re-INVITE from the ITSP reaches the original LAN leg.
    h.inject(
        ITSP,
        &in_dialog(
            "INVITE",
            "sip:198.51.100.1:5060",
            false,
            &inv_with_tag(&inv, "wan1"),
            5,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanre5",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(2)),
        ),
    );
    let re = h.expect(PBX, "INVITE sip:201@192.168.10.20:5060");
    assert_eq!(
        hv(&re, HeaderName::CallId),
        "internal-callid-7f3a@192.168.10.20"
    );
    // And a second REFER is possible (its NOTIFYs name it by id).
    h.inject_msg(
        PBX,
        respond(
            &re,
            "200 OK",
            "x",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(2, "sendrecv")),
        ),
    );
    h.take(PBX);
    h.take(ITSP);
    refer(&mut h, &ok_a, 12, "<sip:2003@pbx.lan.example>");
    let out = h.take(PBX);
    let notify = find(&out, "NOTIFY");
    assert_eq!(hv(&notify, HeaderName::Event), "refer;id=12");
    find(&out, "INVITE sip:2003@pbx.lan.example");
    assert_eq!(h.b2b.call_count(), 1);
    h.assert_hidden();
}

#[test]
fn unanswered_transfer_target_is_cancelled_after_a_minute() {
    let mut h = H::new();
    let (_inv, _ok_a, new) = blind_refer(&mut h);
    h.inject_msg(
        PBX,
        respond(
            &new,
            "180 Ringing",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            None,
        ),
    );
    h.take(PBX);
    h.advance(Duration::from_secs(59));
    assert!(h.take(PBX).iter().all(|m| !first(m).starts_with("CANCEL")));
    h.advance(Duration::from_secs(2));
    let cancel = h.expect(PBX, "CANCEL sip:2002@pbx.lan.example");
    h.inject_msg(PBX, respond(&cancel, "200 OK", "t2002", "", None));
    h.inject_msg(
        PBX,
        respond(&new, "487 Request Terminated", "t2002", "", None),
    );
    let out = h.take(PBX);
    let notify = find(&out, "NOTIFY");
    assert_eq!(sipfrag(&notify), "SIP/2.0 487 Request Terminated");
    assert_eq!(h.b2b.call_count(), 1);
    h.assert_hidden();
}

#[test]
fn transfer_of_a_held_call_takes_the_itsp_off_hold_with_its_own_origin() {
    let mut h = H::new();
    let (inv, ok_a) = lan_call_up(&mut h, "");
    // The phone puts the ITSP on hold before it transfers (what phones do).
    let target_a = msg::contact_uri(&ok_a).unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanhold",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(2, "sendonly")),
        ),
    );
    let hold = h.expect(ITSP, "INVITE sip:gw@203.0.113.5");
    let hold_sdp = String::from_utf8_lossy(hold.body()).into_owned();
    assert!(hold_sdp.contains("a=sendonly"));
    let held_answer = wan_sdp(2).replace("a=sendrecv", "a=recvonly");
    h.inject_msg(
        ITSP,
        respond(
            &hold,
            "200 OK",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&held_answer),
        ),
    );
    h.expect(ITSP, "ACK");
    h.expect(PBX, "SIP/2.0 200");
    h.inject(
        PBX,
        &in_dialog(
            "ACK",
            &target_a,
            true,
            &ok_a,
            11,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanholdack",
            "",
            None,
        ),
    );
    refer(&mut h, &ok_a, 12, "sip:2002@pbx.lan.example");
    let out = h.take(PBX);
    let new = find(&out, "INVITE sip:2002@pbx.lan.example");
    let offer = String::from_utf8_lossy(new.body()).into_owned();
    assert!(
        offer.contains("a=sendrecv") && !offer.contains("recvonly"),
        "{offer}"
    );
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    // The ITSP is taken off hold by a re-INVITE in its own dialog and SDP session.
    let unhold = h.expect(ITSP, "INVITE sip:gw@203.0.113.5");
    assert_eq!(
        hv(&unhold, HeaderName::CallId),
        hv(&inv, HeaderName::CallId)
    );
    assert_eq!(unhold.cseq().unwrap().unwrap().seq, 3);
    let sdp = String::from_utf8_lossy(unhold.body()).into_owned();
    assert!(sdp.contains("a=sendrecv"), "{sdp}");
    assert!(sdp.contains("c=IN IP4 198.51.100.1"), "{sdp}");
    let origin = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .split(' ')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (o_hold, o_unhold) = (origin(&hold_sdp), origin(&sdp));
    assert_eq!(o_unhold[1], o_hold[1], "same session id");
    let v: u64 = o_hold[2].parse().unwrap();
    assert_eq!(o_unhold[2], (v + 1).to_string(), "next version");
    h.inject_msg(
        ITSP,
        respond(
            &unhold,
            "200 OK",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(3)),
        ),
    );
    h.expect(ITSP, "ACK sip:gw@203.0.113.5");
    // Offers are possible again on the call.
    itsp_bye(&mut h, &inv, 4);
    h.expect(PBX, "BYE sip:2002@192.168.10.22");
    h.assert_hidden();
}

#[test]
fn referrer_hanging_up_after_202_does_not_stop_the_transfer() {
    let mut h = H::new();
    let (inv, ok_a, new) = blind_refer(&mut h);
    h.inject(
        PBX,
        &in_dialog(
            "BYE",
            &msg::contact_uri(&ok_a).unwrap(),
            true,
            &ok_a,
            12,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanbye12",
            "",
            None,
        ),
    );
    h.expect(PBX, "SIP/2.0 200");
    assert!(h.take(ITSP).is_empty(), "the ITSP stays");
    // Meanwhile the ITSP sends DTMF: nobody to relay it to, it is answered.
    h.inject(
        ITSP,
        &in_dialog(
            "INFO",
            "sip:198.51.100.1:5060",
            false,
            &inv_with_tag(&inv, "wan1"),
            4,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwaninfo",
            "",
            None,
        ),
    );
    h.expect(ITSP, "SIP/2.0 200");
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    let out = h.take(PBX);
    let lines: Vec<String> = out.iter().map(first).collect();
    assert_eq!(
        lines,
        ["ACK sip:2002@192.168.10.22 SIP/2.0"],
        "no NOTIFY, no BYE"
    );
    assert!(h.take(ITSP).is_empty());
    itsp_bye(&mut h, &inv, 5);
    h.expect(PBX, "BYE sip:2002@192.168.10.22");
    h.assert_hidden();
}

#[test]
fn failed_transfer_after_the_referrer_left_hangs_up_the_itsp() {
    let mut h = H::new();
    let (_inv, ok_a, new) = blind_refer(&mut h);
    h.inject(
        PBX,
        &in_dialog(
            "BYE",
            &msg::contact_uri(&ok_a).unwrap(),
            true,
            &ok_a,
            12,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanbye12",
            "",
            None,
        ),
    );
    h.take(PBX);
    h.inject_msg(PBX, respond(&new, "603 Decline", "t2002", "", None));
    let bye = h.expect(ITSP, "BYE sip:gw@203.0.113.5");
    assert!(h.take(PBX).iter().all(|m| !first(m).starts_with("NOTIFY")));
    h.inject_msg(ITSP, respond(&bye, "200 OK", "x", "", None));
    assert_eq!(h.b2b.call_count(), 0);
    assert_eq!(h.media.live(), 0);
    h.assert_hidden();
}

#[test]
fn itsp_hangup_during_transfer_cancels_the_target() {
    let mut h = H::new();
    let (inv, _ok_a, new) = blind_refer(&mut h);
    h.inject_msg(
        PBX,
        respond(
            &new,
            "180 Ringing",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            None,
        ),
    );
    h.take(PBX);
    itsp_bye(&mut h, &inv, 3);
    let out = h.take(PBX);
    find(&out, "CANCEL sip:2002@pbx.lan.example");
    find(&out, "BYE sip:201@192.168.10.20:5060");
    // The target answers anyway (crossing the CANCEL): ACK and BYE, nothing else.
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    let out = h.take(PBX);
    find(&out, "ACK sip:2002@192.168.10.22");
    find(&out, "BYE sip:2002@192.168.10.22");
    assert_eq!(h.b2b.call_count(), 0);
    assert_eq!(h.media.live(), 0);
    h.assert_hidden();
}

#[test]
fn refer_during_an_offer_or_twice_is_491() {
    let mut h = H::new();
    let (_inv, ok_a, _new) = blind_refer(&mut h);
    refer(&mut h, &ok_a, 12, "<sip:2003@pbx.lan.example>");
    let r = h.expect(PBX, "SIP/2.0 491");
    assert_eq!(r.cseq().unwrap().unwrap().method_str, "REFER");
    // A re-INVITE during the transfer: 491 as well.
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            &msg::contact_uri(&ok_a).unwrap(),
            true,
            &ok_a,
            13,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanre13",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(3, "sendonly")),
        ),
    );
    h.expect(PBX, "SIP/2.0 491");
    assert!(h.take(ITSP).is_empty());
}

fn passthrough_config() -> B2buaConfig {
    let mut cfg = config();
    cfg.zones[1].refer = Some(ReferMode::Passthrough);
    cfg
}

#[test]
fn passthrough_refer_is_mapped_and_notifies_come_back() {
    let mut h = H::with(passthrough_config());
    let (inv, ok_a) = lan_call_up(&mut h, "");
    refer(&mut h, &ok_a, 11, "<sip:2002@pbx.lan.example;user=phone>");
    assert!(h.take(PBX).is_empty(), "the 202 comes from the ITSP");
    let r = h.expect(ITSP, "REFER sip:gw@203.0.113.5");
    assert_eq!(hv(&r, HeaderName::CallId), hv(&inv, HeaderName::CallId));
    assert_eq!(hv(&r, HeaderName::ReferTo), "<sip:2002@sbc.example.net>");
    assert_eq!(hv(&r, HeaderName::ReferredBy), "<sip:201@sbc.example.net>");
    assert!(hv(&r, HeaderName::Contact).contains("198.51.100.1"));
    h.inject_msg(ITSP, respond(&r, "202 Accepted", "wan1", "", None));
    let acc = h.expect(PBX, "SIP/2.0 202");
    assert_eq!(acc.cseq().unwrap().unwrap().seq, 11);
    // The ITSP's NOTIFY (id = its REFER's CSeq on leg B) comes back with the PBX's id.
    let refer_cseq = r.cseq().unwrap().unwrap().seq;
    let notify = in_dialog(
        "NOTIFY",
        "sip:198.51.100.1:5060",
        false,
        &inv_with_tag(&inv, "wan1"),
        7,
        "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwannot7",
        &format!(
            "Event: refer;id={refer_cseq}\nSubscription-State: terminated;reason=noresource\nContact: <sip:gw@203.0.113.5>"
        ),
        Some("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 203.0.113.77;branch=z9hG4bKx\n"),
    )
    .replace("application/sdp", "message/sipfrag;version=2.0");
    h.inject(ITSP, &notify);
    let n = h.expect(PBX, "NOTIFY sip:201@192.168.10.20:5060");
    assert_eq!(hv(&n, HeaderName::Event), "refer;id=11");
    assert_eq!(
        hv(&n, HeaderName::SubscriptionState),
        "terminated;reason=noresource"
    );
    assert_eq!(sipfrag(&n), "SIP/2.0 200 OK", "status line only");
    h.inject_msg(PBX, respond(&n, "200 OK", "x", "", None));
    h.expect(ITSP, "SIP/2.0 200");
    assert_eq!(h.b2b.transfer_stats().passed_through, 1);
    h.assert_hidden();
}

/// A WAN -> LAN call up to the ACK; returns (200 seen by the ITSP, INVITE seen by the PBX).
fn wan_call_up(h: &mut H) -> (Message, Message) {
    let invite = format!(
        "INVITE sip:+4930999@198.51.100.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan1;rport
Max-Forwards: 70
From: <sip:+4917012345@itsp.example>;tag=wanfrom
To: <sip:+4930999@198.51.100.1>
Call-ID: wan-call-1@203.0.113.5
CSeq: 1 INVITE
Contact: <sip:gw@203.0.113.5>
Content-Type: application/sdp
Content-Length: {}

{}",
        wan_sdp(1).replace('\n', "\r\n").len(),
        wan_sdp(1)
    );
    h.inject(ITSP, &invite);
    let inv_a = h.expect(PBX, "INVITE");
    h.inject_msg(
        PBX,
        respond(
            &inv_a,
            "200 OK",
            "lanto1",
            "Contact: <sip:201@192.168.10.20:5060>",
            Some(&lan_sdp(1, "sendrecv")),
        ),
    );
    h.expect(PBX, "ACK");
    let ok = h.expect(ITSP, "SIP/2.0 200");
    let target = msg::contact_uri(&ok).unwrap();
    h.inject(
        ITSP,
        &in_dialog(
            "ACK",
            &target,
            true,
            &ok,
            1,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwan2",
            "",
            None,
        ),
    );
    (ok, inv_a)
}

#[test]
fn inbound_itsp_call_is_transferred_by_the_pbx_locally() {
    let mut h = H::new();
    let (ok, inv_a) = wan_call_up(&mut h);
    // The PBX (UAS of leg B) refers the ITSP's call to another extension.
    let pbx_view = inv_with_tag(&inv_a, "lanto1");
    h.inject(
        PBX,
        &in_dialog(
            "REFER",
            "sip:192.168.10.1:5060",
            false,
            &pbx_view,
            1,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlanref1",
            "Refer-To: <sip:2005@pbx.lan.example>\nContact: <sip:201@192.168.10.20:5060>",
            None,
        ),
    );
    let out = h.take(PBX);
    find(&out, "SIP/2.0 202");
    let notify = find(&out, "NOTIFY sip:201@192.168.10.20:5060");
    assert_eq!(
        hv(&notify, HeaderName::CallId),
        hv(&inv_a, HeaderName::CallId)
    );
    let new = find(&out, "INVITE sip:2005@pbx.lan.example");
    // The target sees the ITSP caller as leg B showed it, and the PBX as the referrer.
    assert!(hv(&new, HeaderName::From).contains("+4917012345@192.168.10.1"));
    // No Referred-By in the REFER: the referrer as leg B knows it.
    assert_eq!(
        hv(&new, HeaderName::ReferredBy),
        "<sip:201@pbx.lan.example>"
    );
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2005",
            "Contact: <sip:2005@192.168.10.25>",
            Some(&target_sdp()),
        ),
    );
    let out = h.take(PBX);
    find(&out, "ACK sip:2005@192.168.10.25");
    let bye = bye_after_final_notify(&mut h, &out, "BYE sip:201@192.168.10.20:5060");
    assert_eq!(hv(&bye, HeaderName::CallId), hv(&inv_a, HeaderName::CallId));
    assert!(h.take(ITSP).is_empty());
    // The ITSP hangs up (it is leg A's caller): the BYE goes to the new leg.
    h.inject(
        ITSP,
        &in_dialog(
            "BYE",
            &msg::contact_uri(&ok).unwrap(),
            true,
            &ok,
            2,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanbye2",
            "",
            None,
        ),
    );
    h.expect(ITSP, "SIP/2.0 200");
    let bye = h.expect(PBX, "BYE sip:2005@192.168.10.25");
    assert!(hv(&bye, HeaderName::To).contains("tag=t2005"));
    assert_eq!(h.b2b.call_count(), 0);
    h.assert_hidden();
}

#[test]
fn passthrough_notify_from_the_lan_carries_no_lan_text() {
    // A WAN caller refers the call; the LAN (trusted, passthrough by default) gets the REFER
    // and its NOTIFYs reach the WAN with a standard phrase only.
    let mut h = H::new();
    let (ok, inv_a) = wan_call_up(&mut h);
    let target = msg::contact_uri(&ok).unwrap();
    h.inject(
        ITSP,
        &in_dialog(
            "REFER",
            &target,
            true,
            &ok,
            2,
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanref",
            "Refer-To: <sip:+4940555@itsp.example>\nContact: <sip:gw@203.0.113.5>",
            None,
        ),
    );
    let r = h.expect(PBX, "REFER sip:201@192.168.10.20:5060");
    assert_eq!(hv(&r, HeaderName::ReferTo), "<sip:+4940555@192.168.10.1>");
    h.inject_msg(PBX, respond(&r, "202 Accepted", "lanto1", "", None));
    h.expect(ITSP, "SIP/2.0 202");
    let notify = in_dialog(
        "NOTIFY",
        "sip:192.168.10.1:5060",
        false,
        &inv_with_tag(&inv_a, "lanto1"),
        5,
        "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlannot",
        "Event: refer\nSubscription-State: active;expires=60\nContact: <sip:201@192.168.10.20:5060>",
        Some("SIP/2.0 180 Ringing at pbx.lan.example\nContact: <sip:x@192.168.10.99>\n"),
    )
    .replace("application/sdp", "message/sipfrag");
    h.inject(PBX, &notify);
    let n = h.expect(ITSP, "NOTIFY sip:gw@203.0.113.5");
    assert_eq!(sipfrag(&n), "SIP/2.0 180 Ringing");
    assert_eq!(hv(&n, HeaderName::Event), "refer");
    h.assert_hidden();
}

/// A second LAN -> WAN call with its own identifiers; returns (ITSP's INVITE, PBX's 200).
fn second_call_up(h: &mut H) -> (Message, Message) {
    let text = lan_invite("", Some(&lan_sdp(1, "sendrecv")))
        .replace("internal-callid-7f3a", "internal-callid-second")
        .replace("lanfrom1", "lanfrom2")
        .replace("+4930123456", "+4930777")
        .replace("z9hG4bKlan1", "z9hG4bKlan21");
    h.inject(PBX, &text);
    let inv = h.expect(ITSP, "INVITE sip:+4930123456@itsp.example");
    h.inject_msg(
        ITSP,
        respond(
            &inv,
            "200 OK",
            "wan2",
            "Contact: <sip:remote@203.0.113.5:5062>",
            Some(&wan_sdp(1)),
        ),
    );
    h.expect(ITSP, "ACK sip:remote@203.0.113.5:5062");
    let ok_a = h.expect(PBX, "SIP/2.0 200");
    h.inject(
        PBX,
        &in_dialog(
            "ACK",
            &msg::contact_uri(&ok_a).unwrap(),
            true,
            &ok_a,
            10,
            "SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan2ack",
            "",
            None,
        ),
    );
    (inv, ok_a)
}

/// `Replaces` for the PBX's dialog of `ok_a`, as the PBX writes it in a Refer-To.
fn replaces_of(ok_a: &Message) -> String {
    format!(
        "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
        hv(ok_a, HeaderName::CallId).replace('@', "%40"),
        msg::tag_of(ok_a, HeaderName::To).unwrap(),
        msg::tag_of(ok_a, HeaderName::From).unwrap()
    )
}

#[test]
fn attended_transfer_maps_replaces_to_the_targets_dialog() {
    let mut h = H::new();
    let (inv1, ok1) = lan_call_up(&mut h, "");
    let (inv2, ok2) = second_call_up(&mut h);
    let creates = h
        .media
        .log()
        .iter()
        .filter(|(op, _)| *op == "create")
        .count();
    // The PBX joins call 1's ITSP party with call 2's remote party.
    refer(
        &mut h,
        &ok1,
        11,
        &format!("<sip:192.168.10.1:5060?Replaces={}>", replaces_of(&ok2)),
    );
    let out = h.take(PBX);
    find(&out, "SIP/2.0 202");
    find(&out, "NOTIFY");
    // The new leg goes where call 2's WAN leg goes, naming that leg's dialog as the remote
    // party knows it.
    let new = h.expect(ITSP, "INVITE sip:remote@203.0.113.5:5062");
    let rep = hv(&new, HeaderName::Replaces);
    let want = format!(
        "{};to-tag=wan2;from-tag={}",
        hv(&inv2, HeaderName::CallId),
        msg::tag_of(&inv2, HeaderName::From).unwrap()
    );
    assert_eq!(rep, want);
    assert!(msg::has_tag(&new, HeaderName::Require, "replaces"));
    assert!(hv(&new, HeaderName::From).contains("@sbc.example.net"));
    assert!(hv(&new, HeaderName::ReferredBy).contains("sip:201@sbc.example.net"));
    // Another zone than the referrer's: a media session of its own.
    let creates_now = h
        .media
        .log()
        .iter()
        .filter(|(op, _)| *op == "create")
        .count();
    assert_eq!(creates_now, creates + 1);
    h.inject_msg(
        ITSP,
        respond(
            &new,
            "200 OK",
            "rem9",
            "Contact: <sip:remote@203.0.113.5:5062>",
            Some(&wan_sdp(5)),
        ),
    );
    let out = h.take(ITSP);
    find(&out, "ACK sip:remote@203.0.113.5:5062");
    // Call 1's ITSP leg moves to the new session's ports: a re-INVITE in its own dialog.
    let re = find(&out, "INVITE sip:gw@203.0.113.5");
    assert_eq!(hv(&re, HeaderName::CallId), hv(&inv1, HeaderName::CallId));
    assert!(String::from_utf8_lossy(re.body()).contains("c=IN IP4 198.51.100.1"));
    h.inject_msg(
        ITSP,
        respond(
            &re,
            "200 OK",
            "wan1",
            "Contact: <sip:gw@203.0.113.5>",
            Some(&wan_sdp(6)),
        ),
    );
    h.expect(ITSP, "ACK sip:gw@203.0.113.5");
    let out = h.take(PBX);
    bye_after_final_notify(&mut h, &out, "BYE sip:201@192.168.10.20:5060");
    // The remote party ends its replaced dialog: call 2 ends on the LAN.
    h.inject(
        ITSP,
        &in_dialog(
            "BYE",
            "sip:198.51.100.1:5060",
            false,
            &inv_with_tag(&inv2, "wan2"),
            2,
            "SIP/2.0/UDP 203.0.113.5:5062;branch=z9hG4bKremotebye",
            "",
            None,
        )
        .replace(
            "Via: SIP/2.0/UDP 203.0.113.5:5062",
            "Via: SIP/2.0/UDP 203.0.113.5:5060",
        ),
    );
    let bye2 = h.expect(PBX, "BYE");
    assert_eq!(
        hv(&bye2, HeaderName::CallId),
        "internal-callid-second@192.168.10.20"
    );
    // Call 1 goes on: ITSP <-> remote party, both on the WAN.
    assert_eq!(h.b2b.call_count(), 1);
    itsp_bye(&mut h, &inv1, 9);
    let bye = h.expect(ITSP, "BYE sip:remote@203.0.113.5:5062");
    assert!(hv(&bye, HeaderName::To).contains("tag=rem9"));
    assert_eq!(h.b2b.call_count(), 0);
    assert_eq!(h.media.live(), 0, "every session released");
    h.assert_hidden();
}

#[test]
fn attended_transfer_within_the_lan_passes_replaces_as_written() {
    let mut h = H::new();
    let (_inv, ok_a) = lan_call_up(&mut h, "");
    refer(
        &mut h,
        &ok_a,
        11,
        "<sip:2002@192.168.10.22?Replaces=lan-consult%40192.168.10.20%3Bto-tag%3Dp22%3Bfrom-tag%3Dp21>",
    );
    let out = h.take(PBX);
    find(&out, "SIP/2.0 202");
    // The IP literal is where the new leg goes.
    let new = h.expect("192.168.10.22:5060", "INVITE sip:2002@192.168.10.22");
    assert_eq!(
        hv(&new, HeaderName::Replaces),
        "lan-consult@192.168.10.20;to-tag=p22;from-tag=p21"
    );
    assert!(h.take(ITSP).is_empty());
    h.assert_hidden();
}

#[test]
fn invite_with_replaces_for_our_dialog_goes_to_the_other_legs_far_end() {
    let mut h = H::new();
    let (inv, ok_a) = lan_call_up(&mut h, "");
    // A LAN phone takes over the PBX's dialog (call pickup, or the target side of an
    // attended transfer done by the PBX): its INVITE names leg A's dialog.
    let replaces = format!(
        "{};to-tag={};from-tag=lanfrom1",
        hv(&ok_a, HeaderName::CallId),
        msg::tag_of(&ok_a, HeaderName::To).unwrap()
    );
    let text = lan_invite("X-Placeholder: 1", Some(&lan_sdp(1, "sendrecv")))
        .replace("internal-callid-7f3a", "internal-callid-pickup")
        .replace("lanfrom1", "lanfromP")
        .replace(
            "INVITE sip:+4930123456@itsp.example",
            "INVITE sip:192.168.10.1:5060",
        )
        .replace("z9hG4bKlan1", "z9hG4bKlanP")
        .replace(
            "X-Placeholder: 1",
            &format!("Replaces: {replaces}\nRequire: replaces"),
        );
    let m = Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap();
    let route = h.b2b.replaces_route(&m).unwrap();
    assert_eq!(route.target, "sip:gw@203.0.113.5");
    assert_eq!(route.zone, "wan");
    h.inject_msg(PBX, m);
    let new = h.expect(ITSP, "INVITE sip:gw@203.0.113.5");
    assert_eq!(
        hv(&new, HeaderName::Replaces),
        format!(
            "{};to-tag=wan1;from-tag={}",
            hv(&inv, HeaderName::CallId),
            msg::tag_of(&inv, HeaderName::From).unwrap()
        )
    );
    assert_ne!(hv(&new, HeaderName::CallId), hv(&inv, HeaderName::CallId));
    assert_eq!(h.b2b.call_count(), 2);
    h.assert_hidden();
}

#[test]
fn invite_with_replaces_for_a_dialog_we_do_not_own_is_refused_when_required() {
    let mut h = H::new();
    lan_call_up(&mut h, "");
    let text = lan_invite(
        "Replaces: other-call@192.168.10.30;to-tag=a;from-tag=b\nRequire: replaces",
        Some(&lan_sdp(1, "sendrecv")),
    )
    .replace("internal-callid-7f3a", "internal-callid-x")
    .replace("z9hG4bKlan1", "z9hG4bKlanX");
    h.inject(PBX, &text);
    h.expect(PBX, "SIP/2.0 420");
    assert_eq!(h.b2b.call_count(), 1);
    h.assert_hidden();
}

#[test]
fn refer_mode_per_call_overrides_the_zone() {
    let mut h = H::with(passthrough_config());
    let (_inv, ok_a) = lan_call_up(&mut h, "");
    let call = h.b2b.calls()[0];
    assert!(h.b2b.set_refer_mode(call, ReferMode::Local));
    refer(&mut h, &ok_a, 11, "<sip:2002@pbx.lan.example>");
    assert!(h.take(ITSP).is_empty());
    let out = h.take(PBX);
    find(&out, "INVITE sip:2002@pbx.lan.example");
    assert!(h.b2b.transfer_pending(call));
    assert_eq!(
        ReferMode::parse(" Passthrough "),
        Some(ReferMode::Passthrough)
    );
    assert_eq!(ReferMode::parse("local"), Some(ReferMode::Local));
    assert_eq!(ReferMode::parse("x"), None);
    assert_eq!(config().zones[1].refer_mode(), ReferMode::Local);
    assert_eq!(config().zones[0].refer_mode(), ReferMode::Passthrough);
}

/// With the real relay: after a local transfer, the ITSP's RTP goes on to the same WAN port
/// and the LAN side keeps its port too (only the peer behind it changed).
#[cfg(feature = "media-relay")]
#[test]
fn local_transfer_keeps_the_real_relays_ports() {
    use media_relay::{LatchMode, LatchPolicy, MediaRelay, RelayConfig, SessionId, ZoneConfig};
    use std::sync::Arc;
    let zone = |name: &str, adv: &str, min: u16| ZoneConfig {
        name: name.into(),
        bind: "127.0.0.1".parse().unwrap(),
        advertise: Some(adv.parse().unwrap()),
        port_min: min,
        port_max: min + 99,
        latch: LatchPolicy {
            mode: LatchMode::Nat,
            relatch_after_silence: None,
        },
    };
    let rcfg = RelayConfig {
        zones: vec![
            zone("lan", "192.168.10.1", 43500),
            zone("wan", "198.51.100.1", 43600),
        ],
        workers: 1,
        ..RelayConfig::default()
    };
    let (relay, _events) = MediaRelay::start(&rcfg).unwrap();
    let relay = Arc::new(relay);
    let mut h = H::with_port(config(), Box::new(relay.clone()), FakeMediaPort::default());
    let (inv, ok_a) = lan_call_up(&mut h, "");
    let ports = relay.ports(SessionId(1)).unwrap();
    refer(&mut h, &ok_a, 11, "<sip:2002@pbx.lan.example>");
    let out = h.take(PBX);
    let new = find(&out, "INVITE sip:2002@pbx.lan.example");
    let offer = String::from_utf8_lossy(new.body()).into_owned();
    assert!(
        offer.contains(&format!("m=audio {} ", ports[0].a)),
        "the LAN port leg A had: {offer}"
    );
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    assert!(h.take(ITSP).is_empty());
    assert_eq!(relay.ports(SessionId(1)).unwrap(), ports, "same ports");
    assert_eq!(relay.session_count(), 1);
    itsp_bye(&mut h, &inv, 3);
    h.expect(PBX, "BYE sip:2002@192.168.10.22");
    assert_eq!(relay.session_count(), 0);
    h.assert_hidden();
}

#[test]
fn sdp_to_the_itsp_keeps_its_origin_after_a_transfer() {
    let mut h = H::new();
    let (inv, _ok_a, new) = blind_refer(&mut h);
    h.inject_msg(
        PBX,
        respond(
            &new,
            "200 OK",
            "t2002",
            "Contact: <sip:2002@192.168.10.22>",
            Some(&target_sdp()),
        ),
    );
    h.take(PBX);
    // The new party puts the ITSP on hold: its own o= (phone2002 5000) must not reach the
    // ITSP, which knows the session as the one of the INVITE (o= ... 1000 1).
    let ack = h
        .sent
        .iter()
        .rev()
        .find(|(_, m)| first(m).starts_with("ACK sip:2002@192.168.10.22"))
        .map(|(_, m)| m.clone())
        .unwrap();
    h.inject(
        PBX,
        &in_dialog(
            "INVITE",
            "sip:192.168.10.1:5060",
            false,
            &ack,
            1,
            "SIP/2.0/UDP 192.168.10.22:5060;branch=z9hG4bKphonehold",
            "Contact: <sip:2002@192.168.10.22>",
            Some(
                &target_sdp()
                    .replace("a=sendrecv", "a=sendonly")
                    .replace(" 5000 1 ", " 5000 2 "),
            ),
        ),
    );
    let re = h.expect(ITSP, "INVITE sip:gw@203.0.113.5");
    let sdp = String::from_utf8_lossy(re.body()).into_owned();
    let o = sdp
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap()
        .to_owned();
    let first_o = String::from_utf8_lossy(inv.body())
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap()
        .to_owned();
    let f: Vec<&str> = first_o.split(' ').collect();
    let g: Vec<&str> = o.split(' ').collect();
    assert_eq!(g[1], f[1], "same session id: {o} vs {first_o}");
    assert_eq!(g[2], "2", "next version: {o}");
    assert!(sdp.contains("a=sendonly"));
    h.assert_hidden();
}

#[test]
fn a_public_ip_in_refer_to_is_not_dialled_from_the_lan_zone() {
    let mut h = H::new();
    let (_inv, ok_a) = lan_call_up(&mut h, "");
    refer(&mut h, &ok_a, 11, "<sip:+4940555@203.0.113.66>");
    // The new leg goes to the referrer's PBX, which routes it; nothing goes to that address.
    let out = h.take(PBX);
    find(&out, "INVITE sip:+4940555@203.0.113.66");
    assert!(h.take("203.0.113.66:5060").is_empty());
    assert!(h.take(ITSP).is_empty());
    h.assert_hidden();
}
