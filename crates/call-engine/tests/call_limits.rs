//! The call limits on calls through the B2BUA: a call counts while either leg is up, and stops
//! counting when the far leg hangs up (its BYE carries the B leg's Call-ID, so only the
//! B2BUA's end of call tells) or the media times out. Simulated time, the real transaction
//! layer.

mod common;

use std::time::Instant;

use auth::{DigestAuthenticator, DigestConfig, ServerSecret};
use call_engine::b2bua::{B2bua, B2buaConfig, B2buaEvent, FakeMediaPort, ZoneIdentity};
use call_engine::{
    EngineConfig, Event, Listener, LocalIdentity, SecurityConfig, Transport, ZoneNetworks,
};
use common::*;
use sip_message::Message;

const LAN_SBC: &str = "192.168.10.1:5060";
const WAN_SBC: &str = "198.51.100.1:5060";
const PBX: &str = "192.168.10.10:5060";
const REMOTE: &str = "198.51.100.70:5060";

const POLICY: &str = r#"
[[policy.zone]]
name = "lan"
limits.max_calls = 1
"#;

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
    let b2b_cfg = B2buaConfig {
        zones: vec![
            ZoneIdentity::new("lan", LAN_SBC),
            ZoneIdentity::new("wan", WAN_SBC),
        ],
        id_seed: Some(3),
        ..B2buaConfig::default()
    };
    let nets = [("lan", "192.168.10.0/24"), ("wan", "198.51.100.0/24")];
    let zones: Vec<ZoneNetworks> = nets
        .iter()
        .map(|(n, net)| ZoneNetworks {
            name: (*n).into(),
            networks: vec![net.parse().unwrap()],
        })
        .collect();
    let policy = policy::load::from_toml(POLICY, "t.toml", Some(&["lan", "wan"])).unwrap();
    let sec = SecurityConfig {
        policy,
        zones: zones
            .iter()
            .map(|z| (z.name.clone(), z.networks.clone()))
            .collect(),
        digest: DigestAuthenticator::new(
            DigestConfig::new("example.com"),
            ServerSecret::from_bytes([7; 32]),
            1,
        ),
        credentials: None,
        bans: None,
        server_header_untrusted: false,
        max_transactions: 1000,
        remote_verify: false,
        gatekeeper: None,
    };
    let b = B2bua::new(b2b_cfg, Box::new(media.clone()));
    let h = H::with(cfg, |e| {
        e.with_b2bua(zones, b).with_security(sec, Instant::now())
    });
    (h, media)
}

fn invite(call_id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.168.10.10\r\ns=-\r\nc=IN IP4 192.168.10.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:bob@198.51.100.70:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP {PBX};branch=z9hG4bK-{call_id}\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@198.51.100.70:5060>\r\n\
From: <sip:carol@192.168.10.10>;tag=c-{call_id}\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:carol@{PBX}>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The remote side answers leg B with 200 and SDP; the PBX gets its 200.
fn answer(h: &mut H, b_invite: &Message) {
    let sdp = "v=0\r\no=- 2 2 IN IP4 198.51.100.70\r\ns=-\r\nc=IN IP4 198.51.100.70\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    let ok = reply(
        b_invite,
        200,
        "OK",
        "bobtag",
        &[("Contact", "<sip:bob@198.51.100.70:5060>")],
    );
    let mut ed = sip_message::Editor::new(&ok);
    ed.set_body(bytes::Bytes::from(sdp), Some("application/sdp"))
        .unwrap();
    h.send_msg(Message::parse(ed.finish()).unwrap(), REMOTE);
    assert_eq!(h.response_to(PBX).status(), Some(200));
}

fn bye_from_remote(h: &mut H, b_invite: &Message) {
    let bye = format!(
        "BYE sip:198.51.100.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {REMOTE};branch=z9hG4bK-bye-{}\r\n\
Max-Forwards: 70\r\nFrom: <sip:bob@198.51.100.70:5060>;tag=bobtag\r\nTo: {}\r\n\
Call-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        h.next_id(),
        header(b_invite, "From").unwrap(),
        header(b_invite, "Call-ID").unwrap(),
    );
    h.send(&bye, REMOTE);
    assert_eq!(h.response_to(REMOTE).status(), Some(200));
    let a_bye = h.request_to(PBX, "BYE");
    h.send_msg(reply(&a_bye, 200, "OK", "x", &[]), PBX);
}

#[test]
fn a_b2bua_call_counts_until_the_far_side_hangs_up() {
    let (mut h, media) = two_zones();
    h.send(&invite("lan-1"), PBX);
    let b_invite = h.request_to(REMOTE, "INVITE");
    assert_eq!(h.engine.calls_in_progress(), 1);

    // The zone's limit is 1: a second call is refused while the first rings...
    h.send(&invite("lan-2"), PBX);
    assert_eq!(h.response_to(PBX).status(), Some(503));
    answer(&mut h, &b_invite);
    // ... and while it is up.
    h.send(&invite("lan-3"), PBX);
    assert_eq!(h.response_to(PBX).status(), Some(503));
    assert_eq!(h.engine.calls_in_progress(), 1);

    // The remote side hangs up (leg B's Call-ID): the B2BUA's end of call frees the slot.
    bye_from_remote(&mut h, &b_invite);
    assert_eq!(
        h.events_matching(|e| matches!(e, Event::Call(B2buaEvent::CallEnded { .. }))),
        1
    );
    assert_eq!(h.engine.calls_in_progress(), 0);
    assert_eq!(media.live(), 0);
    h.send(&invite("lan-4"), PBX);
    let b_invite = h.request_to(REMOTE, "INVITE");
    assert_eq!(h.engine.calls_in_progress(), 1);

    // A refused leg B ends the count with the caller's failure.
    h.send_msg(reply(&b_invite, 486, "Busy Here", "bobtag", &[]), REMOTE);
    assert_eq!(h.response_to(PBX).status(), Some(486));
    assert_eq!(h.engine.calls_in_progress(), 0);
    assert_eq!(h.engine.security_stats().calls_counted, 2);
}
