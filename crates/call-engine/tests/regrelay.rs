//! Registration relay to the PBX (registrar.mode = relay), throttling, keep-alives and dead
//! flows, calls to and from relayed users. Simulated time, the real transaction layer and
//! B2BUA (with the fake media port).

mod common;

use std::sync::Arc;
use std::time::Duration;

use call_engine::b2bua::{B2bua, B2buaConfig, FakeMediaPort, ZoneIdentity};
use call_engine::{
    Engine, EngineConfig, Event, Listener, LocalIdentity, RegistrarMode, Transport, ZoneNetworks,
};
use common::*;
use sip_message::Message;
use store::RegistrationStore;

const LAN_SBC: &str = "192.168.10.1:5060";
const WAN_SBC: &str = "198.51.100.1:5060";
const PBX: &str = "192.168.10.10:5060";
const LAN_PHONE: &str = "192.168.10.21:5060";
/// The symmetric NAT's public side for home host 10.0.1.2.
const NAT: &str = "198.51.100.50:40000";
const NAT2: &str = "198.51.100.60:5062";

fn cfg() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.registrar.domains = vec!["198.51.100.1".into()];
    cfg.registrar.relay.mode = RegistrarMode::Relay;
    cfg.registrar.relay.upstream = Some(format!("sip:{PBX}"));
    cfg.registrar.relay.nat_expires = Some(25);
    cfg.registrar.relay.upstream_expires = 600;
    cfg.identity = LocalIdentity {
        hostnames: vec![],
        listeners: vec![
            Listener::new(Transport::Udp, addr(LAN_SBC)),
            Listener::new(Transport::Udp, addr(WAN_SBC)),
        ],
        record_route: None,
    };
    cfg.seed = 7;
    cfg
}

fn zones() -> Vec<ZoneNetworks> {
    vec![
        ZoneNetworks {
            name: "lan".into(),
            networks: vec!["192.168.10.0/24".parse().unwrap()],
        },
        ZoneNetworks {
            name: "wan".into(),
            networks: vec!["198.51.100.0/24".parse().unwrap()],
        },
    ]
}

fn b2bua() -> B2bua {
    let media = FakeMediaPort::new(&[("lan", "192.168.10.1"), ("wan", "198.51.100.1")]);
    let mut lan = ZoneIdentity::new("lan", LAN_SBC);
    lan.trusted = true;
    let c = B2buaConfig {
        zones: vec![lan, ZoneIdentity::new("wan", WAN_SBC)],
        id_seed: Some(3),
        ..B2buaConfig::default()
    };
    B2bua::new(c, Box::new(media))
}

fn harness(c: EngineConfig) -> H {
    H::with(c, |e| e.with_b2bua(zones(), b2bua()))
}

/// A REGISTER of alice from behind NAT: Via and Contact name the home address.
fn nat_register(
    user: &str,
    from: &str,
    home: &str,
    call_id: &str,
    cseq: u32,
    expires: u32,
) -> String {
    format!(
        "REGISTER sip:198.51.100.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP {home};branch=z9hG4bK{call_id}{cseq};rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:{user}@198.51.100.1>\r\n\
From: <sip:{user}@198.51.100.1>;tag=t{cseq}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <sip:{user}@{home}>\r\n\
Expires: {expires}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .replace("{from}", from)
}

/// The PBX answers a REGISTER 200 with the Contacts it got (and their expiry).
fn pbx_ok(h: &mut H, reg: &Message) {
    let contacts: Vec<String> = headers(reg, sip_message::HeaderName::Contact)
        .into_iter()
        .filter(|c| !c.ends_with("expires=0"))
        .collect();
    let extra: Vec<(&str, &str)> = contacts.iter().map(|c| ("Contact", c.as_str())).collect();
    let resp = reply(reg, 200, "OK", "pbx", &extra);
    h.send_msg(resp, PBX);
}

fn wire(m: &Message) -> String {
    String::from_utf8_lossy(m.as_bytes()).into_owned()
}

/// The REGISTERs sent to the PBX since the last call, retransmissions left out.
fn upstream_registers(h: &mut H) -> Vec<Message> {
    let all = h.take_to(PBX);
    let mut seen = Vec::new();
    all.into_iter()
        .filter(|m| m.method_str() == Some("REGISTER"))
        .filter(|m| {
            let via = header(m, "Via");
            let new = !seen.contains(&via);
            seen.push(via);
            new
        })
        .collect()
}

#[test]
fn register_is_relayed_with_a_lan_contact_and_answered_with_the_pbx_status() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    // Nothing to the phone until the PBX answered.
    assert!(h.take_to(NAT).is_empty());
    let regs = upstream_registers(&mut h);
    assert_eq!(regs.len(), 1);
    let up = &regs[0];
    let text = wire(up);
    assert!(
        text.starts_with("REGISTER sip:192.168.10.10:5060 SIP/2.0\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Via: SIP/2.0/UDP 192.168.10.1:5060;"),
        "{text}"
    );
    assert!(text.contains("To: <sip:alice@198.51.100.1>"), "{text}");
    let contact = header(up, "Contact").unwrap();
    assert!(
        contact.starts_with("<sip:alice@192.168.10.1:5060;swreg="),
        "{contact}"
    );
    assert!(contact.ends_with(";expires=600"), "{contact}");
    assert_eq!(header(up, "Expires").as_deref(), Some("600"));
    // Nothing of the phone (its home address, its NAT, its Call-ID) goes to the PBX.
    for leak in ["10.0.1.2", "198.51.100.50", "Call-ID: r1"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    pbx_ok(&mut h, up);
    let ok = h.response_to(NAT);
    assert_eq!(ok.status(), Some(200));
    let c = header(&ok, "Contact").unwrap();
    assert!(c.contains("sip:alice@10.0.1.2:5060"), "{c}");
    // NATed: told the short expiry, not the 3600 it asked for.
    assert!(c.contains("expires=25"), "{c}");
    assert_eq!(h.engine.relay_stats().upstream_registers, 1);
    // What the PBX holds is in the store, for a restart.
    let shadow = h.store.bindings("swrelay:sip:alice@198.51.100.1").unwrap();
    assert_eq!(shadow.len(), 1);
    assert_eq!(format!("<{}>;expires=600", shadow[0].contact), contact);
}

#[test]
fn refreshes_are_throttled_until_the_upstream_margin() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let first = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &first);
    assert_eq!(h.response_to(NAT).status(), Some(200));
    let call_id = header(&first, "Call-ID").unwrap();
    // The phone refreshes every 20 s: answered at once, the PBX hears nothing until its
    // binding (600 s) is within its margin (150 s) of lapsing: at 450 s.
    let mut upstream_at = Vec::new();
    for i in 0..24u32 {
        h.advance(Duration::from_secs(20));
        let regs = upstream_registers(&mut h);
        for r in &regs {
            upstream_at.push((i + 1) * 20);
            assert_eq!(header(r, "Call-ID").unwrap(), call_id);
            pbx_ok(&mut h, r);
        }
        h.send(
            &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 2 + i, 3600),
            NAT,
        );
        assert_eq!(h.response_to(NAT).status(), Some(200), "refresh {i}");
        for r in upstream_registers(&mut h) {
            upstream_at.push((i + 1) * 20);
            pbx_ok(&mut h, &r);
            assert_eq!(h.response_to(NAT).status(), Some(200));
        }
    }
    assert_eq!(
        upstream_at,
        vec![460],
        "upstream REGISTERs at {upstream_at:?}"
    );
    assert_eq!(h.engine.relay_stats().upstream_registers, 2);
    assert!(h.engine.relay_stats().throttled >= 22);
}

#[test]
fn a_new_contact_reaches_the_pbx_and_unregister_removes_only_ours() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    // A second phone of alice behind the other NAT: the contact set changed.
    h.send(
        &nat_register("alice", NAT2, "10.0.2.2:5062", "r2", 1, 3600),
        NAT2,
    );
    let r2 = upstream_registers(&mut h).remove(0);
    let cs = headers(&r2, sip_message::HeaderName::Contact);
    assert_eq!(cs.len(), 2, "{cs:?}");
    assert!(cs.iter().all(|c| c.ends_with("expires=600")));
    pbx_ok(&mut h, &r2);
    assert_eq!(h.response_to(NAT2).status(), Some(200));
    // The first phone leaves: its Contact (only) is removed upstream, never `*`.
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 2, 0),
        NAT,
    );
    assert!(h.take_to(NAT).is_empty());
    let r3 = upstream_registers(&mut h).remove(0);
    let cs = headers(&r3, sip_message::HeaderName::Contact);
    assert_eq!(
        cs.iter().filter(|c| c.ends_with("expires=0")).count(),
        1,
        "{cs:?}"
    );
    assert_eq!(
        cs.iter().filter(|c| c.ends_with("expires=600")).count(),
        1,
        "{cs:?}"
    );
    assert!(!cs.iter().any(|c| c.contains('*')));
    let cseq = |m: &Message| m.cseq().unwrap().unwrap().seq;
    assert_eq!(cseq(&r3), cseq(&r2) + 1);
    pbx_ok(&mut h, &r3);
    let ok = h.response_to(NAT);
    assert_eq!(ok.status(), Some(200));
    let live = h
        .store
        .live_bindings(
            "sip:alice@198.51.100.1",
            wall_start() + Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(live.len(), 1);
    assert!(live[0].contact.contains("10.0.2.2"));
}

#[test]
fn a_lapsed_binding_is_removed_upstream() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    // No refresh: 25 s later the binding lapses and the PBX is told.
    h.advance(Duration::from_secs(24));
    assert!(upstream_registers(&mut h).is_empty());
    h.advance(Duration::from_secs(3));
    let r2 = upstream_registers(&mut h);
    assert_eq!(r2.len(), 1);
    assert!(header(&r2[0], "Contact").unwrap().ends_with(";expires=0"));
    pbx_ok(&mut h, &r2[0]);
    assert!(h
        .store
        .live_bindings(
            "swrelay:sip:alice@198.51.100.1",
            wall_start() + Duration::from_secs(27)
        )
        .unwrap()
        .is_empty());
}

#[test]
fn a_refusal_upstream_is_passed_on_and_the_binding_undone() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    h.send_msg(reply(&r, 404, "Not Found", "pbx", &[]), PBX);
    assert_eq!(h.response_to(NAT).status(), Some(404));
    assert!(h
        .store
        .bindings("sip:alice@198.51.100.1")
        .unwrap()
        .is_empty());
    // A challenge cannot be relayed (documented): 403.
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 2, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    h.send_msg(
        reply(
            &r,
            401,
            "Unauthorized",
            "pbx",
            &[("WWW-Authenticate", "Digest realm=\"x\", nonce=\"1\"")],
        ),
        PBX,
    );
    assert_eq!(h.response_to(NAT).status(), Some(403));
    // No answer at all: 504 once the transaction times out.
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 3, 3600),
        NAT,
    );
    upstream_registers(&mut h);
    h.advance(Duration::from_secs(40));
    let v: Vec<u16> = h.take_to(NAT).iter().filter_map(|m| m.status()).collect();
    assert!(v.contains(&504), "{v:?}");
}

#[test]
fn lan_phones_are_not_relayed() {
    let mut h = harness(cfg());
    let text = register_text(
        "carl",
        LAN_PHONE,
        &["<sip:carl@192.168.10.21:5060>"],
        "l1",
        1,
        "",
        1,
    )
    .replace("example.com", "198.51.100.1");
    h.send(&text, LAN_PHONE);
    assert_eq!(h.response_to(LAN_PHONE).status(), Some(200));
    assert!(upstream_registers(&mut h).is_empty());
}

fn invite(ruri: &str, from: &str, via_host: &str) -> String {
    let ip = via_host.split(':').next().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    );
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {via_host};branch=z9hG4bK-inv{from}\r\n\
Max-Forwards: 70\r\n\
To: <{ruri}>\r\n\
From: <sip:carol@{ip}>;tag=c1\r\n\
Call-ID: inv-{from}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:carol@{via_host}>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn the_pbx_reaches_the_phone_through_its_flow_and_the_phone_reaches_pbx_users() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    let contact = header(&r, "Contact").unwrap();
    let lan_uri = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    // The PBX calls the Contact it has: the B2BUA sends the call over the phone's flow.
    h.send(&invite(&lan_uri, "pbx", "192.168.10.10:5060"), PBX);
    let inv = h.request_to(NAT, "INVITE");
    let text = wire(&inv);
    assert!(
        text.starts_with("INVITE sip:alice@10.0.1.2:5060 SIP/2.0"),
        "{text}"
    );
    assert!(
        !text.contains("192.168.10."),
        "a LAN address leaked: {text}"
    );
    assert!(
        text.contains("Via: SIP/2.0/UDP 198.51.100.1:5060"),
        "{text}"
    );
    // A token that names no binding: 480.
    let stale = lan_uri.replace("swreg=", "swreg=0");
    h.send(
        &invite(&stale, "pbx2", "192.168.10.10:5060").replace("inv-pbx2", "inv-x"),
        PBX,
    );
    let v: Vec<u16> = h.take_to(PBX).iter().filter_map(|m| m.status()).collect();
    assert!(v.contains(&480), "{v:?}");
    // The phone calls bob, a PBX user not registered here: to the PBX through the B2BUA.
    h.send(
        &invite("sip:bob@198.51.100.1", "home", "10.0.1.2:5060"),
        NAT,
    );
    let out = h.request_to(PBX, "INVITE");
    let text = wire(&out);
    assert!(
        text.starts_with("INVITE sip:bob@198.51.100.1 SIP/2.0"),
        "{text}"
    );
    assert!(
        text.contains("Via: SIP/2.0/UDP 192.168.10.1:5060"),
        "{text}"
    );
    assert!(!text.contains("10.0.1.2"), "{text}");
    assert!(
        !text.contains("inv-home"),
        "the B2BUA gives leg B its own Call-ID: {text}"
    );
}

#[test]
fn unknown_users_from_the_lan_are_not_sent_back_to_the_pbx() {
    let mut h = harness(cfg());
    h.send(
        &invite("sip:nobody@198.51.100.1", "lan", "192.168.10.21:5060"),
        LAN_PHONE,
    );
    let v: Vec<u16> = h
        .take_to(LAN_PHONE)
        .iter()
        .filter_map(|m| m.status())
        .collect();
    assert!(v.contains(&404), "{v:?}");
    assert!(h.take_to(PBX).is_empty());
}

fn keepalive_cfg() -> EngineConfig {
    let mut c = cfg();
    c.registrar.relay.nat_expires = Some(300);
    c.registrar.relay.nat_keepalive = Some(Duration::from_secs(20));
    c.registrar.relay.keepalive_failures = 3;
    c
}

#[test]
fn keepalives_keep_a_flow_and_a_dead_flow_is_removed_here_and_upstream() {
    let mut h = harness(keepalive_cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    assert!(header(&h.response_to(NAT), "Contact")
        .unwrap()
        .contains("expires=300"));
    // Answered keep-alives: every 20 s, over the flow, from our WAN side.
    for _ in 0..3 {
        h.advance(Duration::from_secs(20));
        let (dest, ka) = {
            let i = h
                .sent
                .iter()
                .position(|(d, m)| d.remote == addr(NAT) && m.method_str() == Some("OPTIONS"))
                .expect("an OPTIONS keep-alive");
            h.sent.remove(i)
        };
        assert_eq!(dest.flow, Some(udp(NAT).flow));
        let text = wire(&ka);
        assert!(
            text.starts_with("OPTIONS sip:alice@10.0.1.2:5060 SIP/2.0"),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP 198.51.100.1:5060"),
            "{text}"
        );
        h.send_msg(reply(&ka, 200, "OK", "ph", &[]), NAT);
    }
    assert_eq!(h.engine.relay_stats().keepalive_failures, 0);
    assert_eq!(h.store.bindings("sip:alice@198.51.100.1").unwrap().len(), 1);
    // The NAT forgot the mapping: nothing answers. Each OPTIONS times out (32 s), a new one
    // goes when the last is done; after three failures the binding goes, and the PBX is told.
    let mut removed_at = None;
    for s in 0..200u64 {
        h.advance(Duration::from_secs(1));
        for reg in upstream_registers(&mut h) {
            assert!(header(&reg, "Contact").unwrap().ends_with(";expires=0"));
            pbx_ok(&mut h, &reg);
            removed_at.get_or_insert(s);
        }
    }
    let removed_at = removed_at.expect("the PBX was told");
    assert!(
        (60..=140).contains(&removed_at),
        "removed after {removed_at} s"
    );
    let stats = h.engine.relay_stats();
    assert_eq!(stats.keepalive_failures, 3);
    assert_eq!(stats.dead_flows, 1);
    assert!(h
        .store
        .bindings("sip:alice@198.51.100.1")
        .unwrap()
        .is_empty());
    // No keep-alives for a removed binding.
    h.take();
    h.advance(Duration::from_secs(60));
    assert!(h.take_to(NAT).is_empty());
}

#[test]
fn keepalives_are_for_natted_bindings_only_and_also_in_local_mode() {
    let mut c = keepalive_cfg();
    c.registrar.relay.mode = RegistrarMode::Local;
    let mut h = harness(c);
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    assert_eq!(h.response_to(NAT).status(), Some(200));
    assert!(upstream_registers(&mut h).is_empty());
    // A public phone where its Via says: no keep-alives.
    let public = "198.51.100.70:5060";
    h.send(&nat_register("bob", public, public, "b1", 1, 3600), public);
    assert_eq!(h.response_to(public).status(), Some(200));
    h.advance(Duration::from_secs(21));
    let ka = h.take_to(NAT);
    assert!(!ka.is_empty());
    assert!(ka.iter().all(|m| m.method_str() == Some("OPTIONS")));
    assert!(h.take_to(public).is_empty());
}

#[test]
fn the_upstream_state_survives_a_restart() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    h.advance(Duration::from_secs(10));
    // A new engine on the same store, 10 s later.
    let store: Arc<dyn RegistrationStore> = h.store.clone();
    h.engine = Engine::new(cfg(), store, h.now, wall_start() + Duration::from_secs(10))
        .with_b2bua(zones(), b2bua());
    // The phone refreshes: throttled, the PBX still has a fresh binding.
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 2, 3600),
        NAT,
    );
    assert_eq!(h.response_to(NAT).status(), Some(200));
    assert!(upstream_registers(&mut h).is_empty());
    // Another contact: the same Call-ID, the next CSeq.
    h.send(
        &nat_register("alice", NAT2, "10.0.2.2:5062", "r2", 1, 3600),
        NAT2,
    );
    let r2 = upstream_registers(&mut h).remove(0);
    assert_eq!(header(&r2, "Call-ID"), header(&r, "Call-ID"));
    assert_eq!(
        r2.cseq().unwrap().unwrap().seq,
        r.cseq().unwrap().unwrap().seq + 1
    );
    // And the PBX's call still finds the binding by its token.
    let lan_uri = header(&r, "Contact")
        .unwrap()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    pbx_ok(&mut h, &r2);
    h.take();
    h.send(&invite(&lan_uri, "pbx", "192.168.10.10:5060"), PBX);
    h.request_to(NAT, "INVITE");
}

#[test]
fn interval_too_brief_upstream_is_retried_with_its_minimum() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    h.send_msg(
        reply(
            &r,
            423,
            "Interval Too Brief",
            "pbx",
            &[("Min-Expires", "1200")],
        ),
        PBX,
    );
    // Not passed to the phone: asked again, for the PBX's minimum.
    assert!(h.take_to(NAT).is_empty());
    let r2 = upstream_registers(&mut h).remove(0);
    assert!(header(&r2, "Contact").unwrap().ends_with(";expires=1200"));
    assert_eq!(header(&r2, "Expires").as_deref(), Some("1200"));
    assert_eq!(
        r2.cseq().unwrap().unwrap().seq,
        r.cseq().unwrap().unwrap().seq + 1
    );
    pbx_ok(&mut h, &r2);
    assert_eq!(h.response_to(NAT).status(), Some(200));
    assert_eq!(
        h.events_matching(|e| matches!(
            e,
            Event::UpstreamRegister {
                status: 200,
                contacts: 1,
                ..
            }
        )),
        1
    );
}

#[test]
fn a_failed_refresh_backs_off() {
    let mut c = cfg();
    c.registrar.relay.nat_expires = Some(3600);
    let mut h = harness(c);
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    // The timer's refresh at 450 s fails at once: the next try is 30 s later, not at once.
    h.advance(Duration::from_secs(451));
    let r2 = upstream_registers(&mut h);
    assert_eq!(r2.len(), 1);
    h.send_msg(reply(&r2[0], 500, "Server Error", "pbx", &[]), PBX);
    assert!(upstream_registers(&mut h).is_empty());
    h.advance(Duration::from_secs(29));
    assert!(upstream_registers(&mut h).is_empty());
    h.advance(Duration::from_secs(2));
    let r3 = upstream_registers(&mut h);
    assert_eq!(r3.len(), 1);
    pbx_ok(&mut h, &r3[0]);
    assert_eq!(h.engine.relay_stats().upstream_failures, 1);
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::UpstreamRegister { status: 500, .. })),
        1
    );
}

#[test]
fn tokens_count_only_from_the_upstream_side() {
    let mut h = harness(cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    // From the WAN, a made-up token is no token: the Request-URI's user is looked up as usual.
    let public = "198.51.100.70:5060";
    h.send(
        &invite(
            "sip:alice@198.51.100.1;swreg=0000000000000000",
            "wan",
            public,
        ),
        public,
    );
    h.request_to(NAT, "INVITE");
    // From the LAN it names no binding: 480.
    h.send(
        &invite(
            "sip:alice@192.168.10.1:5060;swreg=0000000000000000",
            "lan",
            LAN_PHONE,
        ),
        LAN_PHONE,
    );
    let v: Vec<u16> = h
        .take_to(LAN_PHONE)
        .iter()
        .filter_map(|m| m.status())
        .collect();
    assert!(v.contains(&480), "{v:?}");
}

#[test]
fn tcp_bindings_get_crlf_and_a_closed_connection_removes_them() {
    let mut h = harness(keepalive_cfg());
    let text = nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace(
            "<sip:alice@10.0.1.2:5060>",
            "<sip:alice@10.0.1.2:5060;transport=tcp>",
        );
    let msg = Message::parse(text.into_bytes()).unwrap();
    let src = call_engine::Source {
        remote: addr(NAT),
        flow: call_engine::FlowId(77),
        reliable: true,
    };
    h.engine.handle_incoming(h.now, msg, src);
    // CRLF CRLF is not a SIP message: look at the raw outputs.
    let mut raw = Vec::new();
    let pump = |h: &mut H, raw: &mut Vec<(call_engine::Destination, Vec<u8>)>| {
        while let Some(o) = h.engine.poll_output() {
            if let call_engine::Output::Transmit { dest, bytes, .. } = o {
                match Message::parse(bytes.clone()) {
                    Ok(m) => h.sent.push((dest, m)),
                    Err(_) => raw.push((dest, bytes.to_vec())),
                }
            }
        }
    };
    pump(&mut h, &mut raw);
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    assert_eq!(h.response_to(NAT).status(), Some(200));
    let t = h.now + Duration::from_secs(20);
    h.now = t;
    h.engine.handle_timeout(t);
    pump(&mut h, &mut raw);
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert_eq!(raw[0].1, b"\r\n\r\n");
    assert_eq!(raw[0].0.flow, Some(call_engine::FlowId(77)));
    assert!(raw[0].0.reliable);
    // The connection goes: the binding goes, here and upstream.
    h.engine.flow_closed(h.now, call_engine::FlowId(77));
    h.drain();
    let r2 = upstream_registers(&mut h).remove(0);
    assert!(header(&r2, "Contact").unwrap().ends_with(";expires=0"));
    assert!(h
        .store
        .bindings("sip:alice@198.51.100.1")
        .unwrap()
        .is_empty());
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::DeadFlow { .. })),
        1
    );
}

#[test]
fn another_phone_registering_does_not_reset_a_failing_flow() {
    let mut h = harness(keepalive_cfg());
    h.send(
        &nat_register("alice", NAT, "10.0.1.2:5060", "r1", 1, 3600),
        NAT,
    );
    let r = upstream_registers(&mut h).remove(0);
    pbx_ok(&mut h, &r);
    h.response_to(NAT);
    // The first phone's flow is dead; the second phone refreshes often. The first still goes
    // after three failed keep-alives.
    let mut cseq = 1;
    let mut gone = false;
    for _ in 0..20 {
        h.advance(Duration::from_secs(10));
        cseq += 1;
        h.send(
            &nat_register("alice", NAT2, "10.0.2.2:5062", "r2", cseq, 3600),
            NAT2,
        );
        for reg in upstream_registers(&mut h) {
            pbx_ok(&mut h, &reg);
        }
        // Answer the second phone's keep-alives, not the first's.
        let kas: Vec<Message> = h
            .take_to(NAT2)
            .into_iter()
            .filter(|m| m.method_str() == Some("OPTIONS"))
            .collect();
        for ka in kas {
            h.send_msg(reply(&ka, 200, "OK", "p2", &[]), NAT2);
        }
        h.take_to(NAT2);
        let live = h.store.bindings("sip:alice@198.51.100.1").unwrap();
        if live.len() == 1 {
            assert!(live[0].contact.contains("10.0.2.2"));
            gone = true;
            break;
        }
    }
    assert!(gone, "the dead flow's binding was never removed");
    assert_eq!(h.engine.relay_stats().dead_flows, 1);
}
