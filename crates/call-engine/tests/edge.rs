//! The enterprise edge's routing (crate::route): the PBX's calls to numbers leave by the ITSP
//! trunk, the ITSP's calls and remote users' calls for unregistered users go to the PBX, all
//! through the B2BUA. The testbed's addresses (TESTBED.md), simulated time, the real
//! transaction layer.

mod common;

use std::time::Duration;

use call_engine::b2bua::{B2bua, B2buaConfig, B2buaEvent, FakeMediaPort, ZoneIdentity};
use call_engine::{
    EdgeRoutes, EngineConfig, Event, Listener, LocalIdentity, NextHop, Transport, Trunk,
    ZoneNetworks,
};
use common::*;
use sip_message::Message;

const LAN_SBC: &str = "192.168.10.1:5060";
const WAN_SBC: &str = "198.51.100.1:5060";
const PBX: &str = "192.168.10.10:5060";
const PHONE: &str = "192.168.10.21:5060";
const REMOTE: &str = "198.51.100.70:5060";
const ITSP: &str = "203.0.113.10:5060";

fn trunk(matches: &[&str]) -> Trunk {
    Trunk {
        name: "itsp".into(),
        zone: "wan".into(),
        address: addr(ITSP),
        transport: Transport::Udp,
        from_zone: "lan".into(),
        matches: matches.iter().map(|s| (*s).to_owned()).collect(),
        sources: vec!["203.0.113.10/32".parse().unwrap()],
    }
}

fn routes(matches: &[&str], next_hop: bool) -> EdgeRoutes {
    EdgeRoutes {
        next_hops: if next_hop {
            vec![NextHop {
                zone: "lan".into(),
                address: addr(PBX),
                transport: Transport::Udp,
            }]
        } else {
            Vec::new()
        },
        trunks: vec![trunk(matches)],
    }
}

/// The testbed: lan 192.168.10.0/24, wan everything else (nested, most specific wins).
fn edge(routes: EdgeRoutes) -> (H, FakeMediaPort) {
    edge_with(routes, |e| e)
}

fn edge_with(
    routes: EdgeRoutes,
    first: impl FnOnce(call_engine::Engine) -> call_engine::Engine,
) -> (H, FakeMediaPort) {
    let mut cfg = EngineConfig::default();
    cfg.registrar.domains = vec!["198.51.100.1".into()];
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
            name: "wan".into(),
            networks: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
        },
        ZoneNetworks {
            name: "lan".into(),
            networks: vec!["192.168.10.0/24".parse().unwrap()],
        },
    ];
    let b = B2bua::new(b2b_cfg, Box::new(media.clone()));
    let h = H::with(cfg, |e| {
        first(e).with_b2bua(zones, b).with_edge_routes(routes)
    });
    (h, media)
}

fn invite(ruri: &str, from: &str, call_id: &str) -> String {
    let ip = addr(from).ip();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    );
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\n\
Max-Forwards: 70\r\n\
Record-Route: <sip:{from};lr>\r\n\
To: <{ruri}>\r\n\
From: \"Carol\" <sip:carol@{ip}>;tag=c1\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:carol@{from}>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {len}\r\n\r\n{sdp}",
        len = sdp.len()
    )
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(m.as_bytes()).into_owned()
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

fn started(h: &H) -> usize {
    h.events_matching(|e| matches!(e, Event::Call(B2buaEvent::CallStarted { .. })))
}

#[test]
fn the_pbx_calls_a_number_through_the_trunk_with_the_lan_hidden() {
    let (mut h, media) = edge(routes(&[], true));
    // What the testbed's Kamailio sends: the number at its own domain, to sipwarden by $du.
    h.send(
        &invite("sip:+4930123456@192.168.10.10", PBX, "pbx-out-1"),
        PBX,
    );
    let b = h.request_to(ITSP, "INVITE");
    assert_eq!(
        b.request_uri_str(),
        Some("sip:+4930123456@203.0.113.10:5060")
    );
    let t = text(&b);
    assert!(!t.contains("192.168.10."), "{t}");
    assert!(t.contains("c=IN IP4 198.51.100.1"), "{t}");
    assert_ne!(header(&b, "Call-ID").as_deref(), Some("pbx-out-1"));
    assert_eq!(media.live(), 1);
    assert_eq!(started(&h), 1);

    h.send_msg(reply(&b, 180, "Ringing", "itsp1", &[]), ITSP);
    assert_eq!(h.response_to(PBX).status(), Some(180));
    let ok = with_sdp(
        reply(
            &b,
            200,
            "OK",
            "itsp1",
            &[("Contact", "<sip:203.0.113.10:5060>")],
        ),
        "203.0.113.10",
    );
    h.send_msg(ok, ITSP);
    let a_ok = h.response_to(PBX);
    assert_eq!(a_ok.status(), Some(200));
    assert!(text(&a_ok).contains("c=IN IP4 192.168.10.1"));
    assert_eq!(h.engine.stats().proxied_requests, 0);
}

#[test]
fn a_number_at_our_lan_address_goes_to_the_trunk_once_the_location_service_has_none() {
    let (mut h, _media) = edge(routes(&["+49", "0"], true));
    h.send(&invite("sip:030-1234@192.168.10.1", PBX, "pbx-out-2"), PBX);
    let b = h.request_to(ITSP, "INVITE");
    // Visual separators go; the number is what the provider gets.
    assert_eq!(b.request_uri_str(), Some("sip:0301234@203.0.113.10:5060"));
    // A tel: URI is a number too.
    h.send(&invite("tel:+49-30-555", PBX, "pbx-out-3"), PBX);
    let b = h.request_to(ITSP, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:+4930555@203.0.113.10:5060"));
}

#[test]
fn what_the_trunk_does_not_match_does_not_leave_by_it() {
    let (mut h, media) = edge(routes(&["+49"], true));
    h.send(&invite("sip:+3312345@192.168.10.1", PBX, "pbx-out-4"), PBX);
    assert_eq!(h.response_to(PBX).status(), Some(404));
    assert!(h.take_to(ITSP).is_empty());
    assert_eq!(media.live(), 0);
    // The same number at the PBX's own domain is not sent back to the PBX (which would send
    // it here again): 404 as well.
    h.send(
        &invite("sip:+3312345@192.168.10.10", PBX, "pbx-out-4b"),
        PBX,
    );
    let to_pbx = h.take_to(PBX);
    assert!(
        to_pbx.iter().all(|m| m.method_str().is_none()),
        "{:?}",
        lines(&to_pbx)
    );
    assert!(to_pbx.iter().any(|m| m.status() == Some(404)));
    assert!(h.take_to(ITSP).is_empty());
}

#[test]
fn a_foreign_domain_leaves_by_a_trunk_that_names_it_and_keeps_its_request_uri() {
    let (mut h, _media) = edge(routes(&["*.example.org"], true));
    h.send(&invite("sip:bob@sip.example.org", PBX, "pbx-out-5"), PBX);
    let b = h.request_to(ITSP, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:bob@sip.example.org"));
    assert!(!text(&b).contains("192.168.10."));
}

#[test]
fn a_lan_phone_called_by_address_stays_in_the_lan() {
    let (mut h, media) = edge(routes(&[], true));
    h.send(&invite("sip:2001@192.168.10.21:5060", PBX, "lan-1"), PBX);
    let fwd = h.request_to(PHONE, "INVITE");
    assert_eq!(header(&fwd, "Call-ID").as_deref(), Some("lan-1"));
    assert!(h.take_to(ITSP).is_empty());
    assert_eq!(media.live(), 0);
    assert_eq!(h.engine.stats().proxied_requests, 1);
}

#[test]
fn the_itsp_calls_a_did_and_the_pbx_gets_it() {
    let (mut h, media) = edge(routes(&[], true));
    h.send(
        &invite("sip:+4930555@198.51.100.1", ITSP, "itsp-in-1"),
        ITSP,
    );
    let b = h.request_to(PBX, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:+4930555@192.168.10.10:5060"));
    assert_ne!(header(&b, "Call-ID").as_deref(), Some("itsp-in-1"));
    assert!(text(&b).contains("c=IN IP4 192.168.10.1"));
    assert_eq!(media.live(), 1);
    // The PBX answers: the ITSP's 200 shows nothing of the LAN.
    let ok = with_sdp(
        reply(
            &b,
            200,
            "OK",
            "pbx1",
            &[
                ("Contact", "<sip:+4930555@192.168.10.21:5060>"),
                ("Record-Route", "<sip:192.168.10.10;lr>"),
            ],
        ),
        "192.168.10.21",
    );
    h.send_msg(ok, PBX);
    let a_ok = h.response_to(ITSP);
    assert_eq!(a_ok.status(), Some(200));
    let t = text(&a_ok);
    assert!(!t.contains("192.168.10."), "{t}");
    assert!(t.contains("c=IN IP4 198.51.100.1"), "{t}");

    // Whatever the ITSP writes as Request-URI (its own host here), it goes to the PBX, not
    // back out.
    h.send(&invite("sip:4930556@203.0.113.10", ITSP, "itsp-in-2"), ITSP);
    let b = h.request_to(PBX, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:4930556@192.168.10.10:5060"));
    assert!(h.take_to(ITSP).iter().all(|m| m.method_str().is_none()));
}

#[test]
fn remote_users_reach_colleagues_and_numbers_through_the_pbx() {
    let (mut h, _media) = edge(routes(&[], true));
    // bob has no binding here (he is registered at the PBX).
    h.send(&invite("sip:bob@198.51.100.1", REMOTE, "wan-1"), REMOTE);
    let b = h.request_to(PBX, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:bob@192.168.10.10:5060"));
    // A number dialled by a remote user: the PBX decides (the trunk is for the LAN's calls).
    h.send(&invite("sip:0301234@198.51.100.1", REMOTE, "wan-2"), REMOTE);
    let b = h.request_to(PBX, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:0301234@192.168.10.10:5060"));
    assert!(h.take_to(ITSP).is_empty());
}

#[test]
fn a_remote_user_registered_here_is_called_directly() {
    let (mut h, _media) = edge(routes(&[], true));
    let reg = register_text(
        "alice",
        REMOTE,
        &["<sip:alice@198.51.100.70:5060>"],
        "reg-1",
        1,
        "",
        1,
    )
    .replace("example.com", "198.51.100.1");
    h.send(&reg, REMOTE);
    assert_eq!(h.response_to(REMOTE).status(), Some(200));
    // From the PBX: to the binding, across zones.
    h.send(&invite("sip:alice@198.51.100.1", PBX, "lan-2"), PBX);
    let b = h.request_to(REMOTE, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:alice@198.51.100.70:5060"));
    assert!(h.take_to(ITSP).is_empty());
}

#[test]
fn without_a_next_hop_an_unknown_user_is_still_404() {
    let (mut h, media) = edge(routes(&[], false));
    h.send(&invite("sip:bob@198.51.100.1", REMOTE, "wan-3"), REMOTE);
    assert_eq!(h.response_to(REMOTE).status(), Some(404));
    // And the ITSP's calls have nowhere to go: refused, not sent back out.
    h.send(&invite("sip:4930556@203.0.113.10", ITSP, "itsp-in-3"), ITSP);
    let to_itsp = h.take_to(ITSP);
    assert!(
        to_itsp.iter().all(|m| m.method_str().is_none()),
        "{:?}",
        lines(&to_itsp)
    );
    assert_eq!(media.live(), 0);
}

#[test]
fn a_trunk_call_runs_to_the_end_on_simulated_time() {
    // No answer from the ITSP: the B2BUA's INVITE retransmits on the simulated clock and the
    // PBX gets 408 after Timer B; the media is released.
    let (mut h, media) = edge(routes(&[], true));
    h.send(&invite("sip:+4930999@192.168.10.10", PBX, "pbx-out-6"), PBX);
    let first = h.take_to(ITSP);
    assert_eq!(first.len(), 1);
    h.advance(Duration::from_millis(600));
    let again = h.take_to(ITSP);
    assert!(
        again.iter().any(|m| m.method_str() == Some("INVITE")),
        "no retransmission: {:?}",
        lines(&again)
    );
    h.advance(Duration::from_secs(40));
    let to_pbx: Vec<u16> = h.take_to(PBX).iter().filter_map(|m| m.status()).collect();
    assert!(to_pbx.contains(&408), "{to_pbx:?}");
    assert_eq!(media.live(), 0);
}

/// The wan zone's policy wants credentials for INVITE: the ITSP's calls (its address is the
/// trunk's source) pass unchallenged, a remote user is challenged, and the LAN (nested inside
/// the wan's 0.0.0.0/0, the most specific zone wins) is not.
#[test]
fn trunk_calls_are_not_challenged_and_nested_zones_get_their_own_policy() {
    use auth::{Algorithm, DigestAuthenticator, DigestConfig, ServerSecret};
    use call_engine::SecurityConfig;

    let policy = policy::load::from_toml(
        "[[policy.zone]]\nname = \"wan\"\nauth.require = [{ methods = [\"INVITE\"] }]\n",
        "t.toml",
        Some(&["wan", "lan"]),
    )
    .unwrap();
    let mut dc = DigestConfig::new("198.51.100.1");
    dc.algorithms = vec![Algorithm::Md5];
    let now = std::time::Instant::now();
    let sec = SecurityConfig {
        policy,
        zones: vec![
            ("wan".into(), vec!["0.0.0.0/0".parse().unwrap()]),
            ("lan".into(), vec!["192.168.10.0/24".parse().unwrap()]),
        ],
        digest: DigestAuthenticator::new(dc, ServerSecret::from_bytes([7; 32]), 1),
        credentials: None,
        bans: None,
        server_header_untrusted: false,
        max_transactions: 100,
        remote_verify: false,
        gatekeeper: None,
    };
    let (mut h, media) = edge_with(routes(&[], true), |e| e.with_security(sec, now));
    h.send(
        &invite("sip:+4930555@198.51.100.1", ITSP, "itsp-sec-1"),
        ITSP,
    );
    let b = h.request_to(PBX, "INVITE");
    assert_eq!(b.request_uri_str(), Some("sip:+4930555@192.168.10.10:5060"));
    assert_eq!(media.live(), 1);

    h.send(&invite("sip:bob@198.51.100.1", REMOTE, "wan-sec-1"), REMOTE);
    let status = h.response_to(REMOTE).status();
    assert!(matches!(status, Some(401) | Some(407)), "{status:?}");
    assert!(h.take_to(PBX).is_empty());

    h.send(&invite("sip:+4930123@192.168.10.10", PBX, "pbx-sec-1"), PBX);
    h.request_to(ITSP, "INVITE");
}

/// A known user (the directory says so) without a binding here is 480, even when the user
/// part looks like a number: an extension whose phone is away does not ring the public network.
#[test]
fn a_known_extension_without_a_binding_never_leaves_by_the_trunk() {
    struct Dir;
    impl call_engine::UserDirectory for Dir {
        fn is_known(&self, aor: &str) -> bool {
            aor == "sip:2005@198.51.100.1"
        }
    }
    let (mut h, media) = edge_with(routes(&[], true), |e| {
        e.with_directory(std::sync::Arc::new(Dir))
    });
    h.send(&invite("sip:2005@192.168.10.1:5060", PBX, "pbx-ext-1"), PBX);
    assert_eq!(h.response_to(PBX).status(), Some(480));
    assert!(h.take_to(ITSP).is_empty());
    assert_eq!(media.live(), 0);
    // An unknown number at the same address does.
    h.send(&invite("sip:2006@192.168.10.1:5060", PBX, "pbx-ext-2"), PBX);
    h.request_to(ITSP, "INVITE");
}
