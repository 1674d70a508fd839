//! Calls between zones go through the B2BUA (two dialogs, two Call-IDs, SDP through the media
//! port); calls within a zone are proxied. Simulated time, the real transaction layer.

mod common;

use call_engine::b2bua::{B2bua, B2buaConfig, B2buaEvent, FakeMediaPort, ZoneIdentity};
use call_engine::{EngineConfig, Event, Listener, LocalIdentity, Transport, ZoneNetworks};
use common::*;
use sip_message::Message;

const LAN_SBC: &str = "192.168.10.1:5060";
const WAN_SBC: &str = "198.51.100.1:5060";
const PBX: &str = "192.168.10.10:5060";
const PHONE: &str = "192.168.10.21:5060";
const REMOTE: &str = "198.51.100.70:5060";

fn two_zones() -> (H, FakeMediaPort) {
    let mut cfg = EngineConfig::default();
    cfg.registrar.domains = vec!["example.com".into()];
    cfg.identity = LocalIdentity {
        hostnames: vec![],
        listeners: vec![
            Listener::new(Transport::Udp, addr(LAN_SBC)),
            Listener::new(Transport::Udp, addr(WAN_SBC)),
        ],
        record_route: None,
    };
    cfg.seed = 7;
    let media = FakeMediaPort::new(&[("lan", "192.168.10.1"), ("wan", "198.51.100.1")]);
    let mut lan = ZoneIdentity::new("lan", LAN_SBC);
    lan.trusted = true;
    let b2b_cfg = B2buaConfig {
        zones: vec![lan, ZoneIdentity::new("wan", WAN_SBC)],
        id_seed: Some(3),
        ..B2buaConfig::default()
    };
    let zones = vec![
        ZoneNetworks {
            name: "lan".into(),
            networks: vec!["192.168.10.0/24".parse().unwrap()],
        },
        ZoneNetworks {
            name: "wan".into(),
            networks: vec!["198.51.100.0/24".parse().unwrap()],
        },
    ];
    let b = B2bua::new(b2b_cfg, Box::new(media.clone()));
    (H::with(cfg, |e| e.with_b2bua(zones, b)), media)
}

fn invite(ruri: &str, from: &str, call_id: &str) -> String {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        ip = addr(from).ip()
    );
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\n\
Max-Forwards: 70\r\n\
To: <{ruri}>\r\n\
From: \"Carol\" <sip:carol@{host}>;tag=c1\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:carol@{from}>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {len}\r\n\r\n{sdp}",
        host = addr(from).ip(),
        len = sdp.len()
    )
}

fn call_id(m: &Message) -> String {
    header(m, "Call-ID").unwrap()
}

fn with_sdp(m: Message, ip: &str) -> Message {
    let sdp = format!(
        "v=0\r\no=- 2 2 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
    );
    let mut ed = sip_message::Editor::new(&m);
    ed.set_body(bytes::Bytes::from(sdp), Some("application/sdp"))
        .unwrap();
    Message::parse(ed.finish()).unwrap()
}

#[test]
fn a_call_from_lan_to_wan_goes_through_the_b2bua() {
    let (mut h, media) = two_zones();
    h.send(
        &invite("sip:bob@198.51.100.70:5060", PBX, "lan-call-1"),
        PBX,
    );
    let b_invite = h.request_to(REMOTE, "INVITE");
    // Leg B: its own Call-ID, nothing of the LAN in it, SDP with our WAN address.
    assert_ne!(call_id(&b_invite), "lan-call-1");
    let text = String::from_utf8_lossy(b_invite.as_bytes()).into_owned();
    assert!(!text.contains("192.168.10."), "{text}");
    assert!(text.contains("c=IN IP4 198.51.100.1"), "{text}");
    assert!(
        text.contains("Via: SIP/2.0/UDP 198.51.100.1:5060;"),
        "{text}"
    );
    assert_eq!(media.live(), 1);

    let ok = with_sdp(
        reply(
            &b_invite,
            200,
            "OK",
            "bobtag",
            &[("Contact", "<sip:bob@198.51.100.70:5060>")],
        ),
        "198.51.100.70",
    );
    h.send_msg(ok, REMOTE);
    let a_ok = h.response_to(PBX);
    assert_eq!(a_ok.status(), Some(200));
    assert_eq!(call_id(&a_ok), "lan-call-1");
    let text = String::from_utf8_lossy(a_ok.as_bytes()).into_owned();
    assert!(text.contains("c=IN IP4 192.168.10.1"), "{text}");
    assert_eq!(
        header(&a_ok, "Contact").as_deref(),
        Some("<sip:192.168.10.1:5060>")
    );
    assert!(h.events_matching(|e| matches!(e, Event::Call(B2buaEvent::CallStarted { .. }))) == 1);

    // ACK from the PBX to our LAN Contact: ACK on leg B.
    let a_tag = sip_message_tag(&a_ok);
    let ack = format!(
        "ACK sip:192.168.10.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PBX};branch=z9hG4bK-ack1\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@198.51.100.70:5060>;tag={a_tag}\r\n\
From: \"Carol\" <sip:carol@192.168.10.10>;tag=c1\r\nCall-ID: lan-call-1\r\nCSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    );
    h.send(&ack, PBX);
    let b_ack = h.request_to(REMOTE, "ACK");
    assert_eq!(call_id(&b_ack), call_id(&b_invite));

    // BYE from the remote side: 200 there, BYE to the PBX, media released.
    let b_from = header(&b_invite, "From").unwrap();
    let bye = format!(
        "BYE sip:198.51.100.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {REMOTE};branch=z9hG4bK-bye1\r\n\
Max-Forwards: 70\r\nFrom: <sip:bob@198.51.100.70:5060>;tag=bobtag\r\nTo: {b_from}\r\n\
Call-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        call_id(&b_invite)
    );
    h.send(&bye, REMOTE);
    assert_eq!(h.response_to(REMOTE).status(), Some(200));
    let a_bye = h.request_to(PBX, "BYE");
    assert_eq!(call_id(&a_bye), "lan-call-1");
    h.send_msg(reply(&a_bye, 200, "OK", "x", &[]), PBX);
    assert_eq!(media.live(), 0);
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::Call(B2buaEvent::CallEnded { .. }))),
        1
    );
    // Nothing was proxied.
    assert_eq!(h.engine.stats().proxied_requests, 0);
}

fn sip_message_tag(m: &Message) -> String {
    let to = header(m, "To").unwrap();
    to.split(";tag=").nth(1).unwrap().to_owned()
}

#[test]
fn a_call_within_a_zone_is_proxied() {
    let (mut h, media) = two_zones();
    h.send(
        &invite("sip:dave@192.168.10.21:5060", PBX, "lan-call-2"),
        PBX,
    );
    let fwd = h.request_to(PHONE, "INVITE");
    assert_eq!(call_id(&fwd), "lan-call-2");
    assert_eq!(headers(&fwd, sip_message::HeaderName::Via).len(), 2);
    assert_eq!(media.live(), 0);
    assert_eq!(h.engine.stats().proxied_requests, 1);
    assert_eq!(h.engine.b2bua().unwrap().call_count(), 0);
}

#[test]
fn a_remote_user_registered_on_the_wan_is_called_through_the_b2bua() {
    let (mut h, media) = two_zones();
    h.register(
        "alice",
        REMOTE,
        &["<sip:alice@198.51.100.70:5060>"],
        "reg-1",
        1,
        "",
    );
    assert_eq!(h.response_to(REMOTE).status(), Some(200));
    h.send(&invite("sip:alice@example.com", PBX, "lan-call-3"), PBX);
    let b_invite = h.request_to(REMOTE, "INVITE");
    assert_ne!(call_id(&b_invite), "lan-call-3");
    assert_eq!(
        b_invite.request_uri_str(),
        Some("sip:alice@198.51.100.70:5060")
    );
    assert_eq!(media.live(), 1);
    h.send_msg(reply(&b_invite, 180, "Ringing", "alicetag", &[]), REMOTE);
    assert_eq!(h.response_to(PBX).status(), Some(180));
    // The caller gave up: CANCEL ends both legs.
    let cancel = format!(
        "CANCEL sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {PBX};branch=z9hG4bK-lan-call-3\r\n\
Max-Forwards: 70\r\nTo: <sip:alice@example.com>\r\nFrom: \"Carol\" <sip:carol@192.168.10.10>;tag=c1\r\n\
Call-ID: lan-call-3\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    h.send(&cancel, PBX);
    let to_pbx: Vec<u16> = h.take_to(PBX).iter().filter_map(|m| m.status()).collect();
    assert!(to_pbx.contains(&487) && to_pbx.contains(&200), "{to_pbx:?}");
    assert!(h
        .take_to(REMOTE)
        .iter()
        .any(|m| m.method_str() == Some("CANCEL")));
}

#[test]
fn an_in_dialog_request_for_no_call_is_481() {
    let (mut h, _media) = two_zones();
    let bye = format!(
        "BYE sip:198.51.100.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {REMOTE};branch=z9hG4bK-bye9\r\n\
Max-Forwards: 70\r\nFrom: <sip:bob@198.51.100.70>;tag=b\r\nTo: <sip:x@198.51.100.1>;tag=gone\r\n\
Call-ID: nothing-here\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.send(&bye, REMOTE);
    assert_eq!(h.response_to(REMOTE).status(), Some(481));
}

#[test]
fn the_b2bua_timers_run_on_simulated_time() {
    // No ACK for the 2xx on leg A: retransmitted by the B2BUA's timer, then BYE both ways.
    let (mut h, media) = two_zones();
    h.send(
        &invite("sip:bob@198.51.100.70:5060", PBX, "lan-call-4"),
        PBX,
    );
    let b_invite = h.request_to(REMOTE, "INVITE");
    let ok = with_sdp(
        reply(
            &b_invite,
            200,
            "OK",
            "bobtag",
            &[("Contact", "<sip:bob@198.51.100.70:5060>")],
        ),
        "198.51.100.70",
    );
    h.send_msg(ok, REMOTE);
    assert_eq!(h.response_to(PBX).status(), Some(200));
    h.advance(std::time::Duration::from_secs(2));
    let again: Vec<Message> = h.take_to(PBX);
    assert!(
        again.iter().any(|m| m.status() == Some(200)),
        "no retransmission"
    );
    h.advance(std::time::Duration::from_secs(40));
    assert!(h
        .take_to(REMOTE)
        .iter()
        .any(|m| m.method_str() == Some("BYE")));
    assert_eq!(media.live(), 0);
}

#[test]
fn a_media_timeout_ends_the_call_both_ways() {
    let (mut h, media) = two_zones();
    h.send(
        &invite("sip:bob@198.51.100.70:5060", PBX, "lan-call-5"),
        PBX,
    );
    let b_invite = h.request_to(REMOTE, "INVITE");
    let ok = with_sdp(
        reply(
            &b_invite,
            200,
            "OK",
            "bobtag",
            &[("Contact", "<sip:bob@198.51.100.70:5060>")],
        ),
        "198.51.100.70",
    );
    h.send_msg(ok, REMOTE);
    assert_eq!(h.response_to(PBX).status(), Some(200));
    // An unknown session changes nothing.
    h.engine.media_timeout(h.now, 99);
    h.drain();
    assert_eq!(media.live(), 1);
    let session = media
        .log()
        .iter()
        .find(|(op, _)| *op == "create")
        .unwrap()
        .1;
    h.engine.media_timeout(h.now, session);
    h.drain();
    assert!(h
        .take_to(REMOTE)
        .iter()
        .any(|m| m.method_str() == Some("BYE")));
    assert!(h.take_to(PBX).iter().any(|m| m.method_str() == Some("BYE")));
    assert_eq!(media.live(), 0);
}
