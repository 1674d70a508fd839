//! The transport of each leg: a WAN zone with UDP (the ITSP) and TLS (remote phones)
//! listeners, a LAN zone with UDP only. Real transaction layer, simulated clock; the routing
//! is set per test, and the peers' flows (datagram or TLS connection) are the test's.

use super::*;

const PHONE: &str = "203.0.113.7:40001";
const WAN_UDP: &str = "198.51.100.1:5060";
const WAN_TLS: &str = "198.51.100.1:5061";

/// The LAN PBX's flow (a UDP socket) and the phone's TLS connection.
const PBX_FLOW: FlowId = FlowId(1);
const PHONE_FLOW: FlowId = FlowId(7);

fn zones() -> B2buaConfig {
    let mut lan = ZoneIdentity::new("lan", "192.168.10.1:5060");
    lan.trusted = true;
    let wan = ZoneIdentity::new("wan", WAN_UDP).with_address(SipTransport::Tls, WAN_TLS);
    B2buaConfig {
        zones: vec![lan, wan],
        ..B2buaConfig::default()
    }
}

struct T {
    tl: TransactionLayer,
    b2b: B2bua,
    media: FakeMediaPort,
    now: Instant,
    inbox: Vec<(Destination, Message)>,
    /// Where initial INVITEs go: (zone of the caller, route).
    route: (String, RouteDecision),
    started: Vec<Result<CallHandle, StartError>>,
}

impl T {
    fn new(zone_a: &str, target: &str, next_hop: Destination, zone_b: &str) -> T {
        let media = FakeMediaPort::new(&[("lan", "192.168.10.1"), ("wan", "198.51.100.1")]);
        T {
            tl: TransactionLayer::new(Config {
                seed: 0x5eed,
                ..Config::default()
            }),
            b2b: B2bua::new(zones(), Box::new(media.clone())),
            media,
            now: Instant::now(),
            inbox: Vec::new(),
            route: (
                zone_a.to_owned(),
                RouteDecision {
                    target: target.to_owned(),
                    next_hop,
                    zone: zone_b.to_owned(),
                },
            ),
            started: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(o) = self.tl.poll_output() {
            match o {
                Output::Transmit { dest, bytes, .. } => {
                    self.inbox.push((dest, Message::parse(bytes).unwrap()));
                }
                Output::Event(ev) => {
                    let now = self.now;
                    if let Some(TuEvent::Request { id, msg, source }) =
                        self.b2b.handle_tu_event(now, &mut self.tl, ev)
                    {
                        if msg.method_str() == Some("INVITE") {
                            let (za, route) = self.route.clone();
                            let r =
                                self.b2b
                                    .start_call(now, &mut self.tl, id, msg, source, &za, route);
                            self.started.push(r);
                        }
                    }
                }
            }
        }
    }

    /// A message from `from` on `flow` (a TLS connection when `reliable`).
    fn inject(&mut self, from: &str, flow: FlowId, reliable: bool, m: Message) {
        let source = Source {
            remote: addr(from),
            flow,
            reliable,
        };
        self.tl.handle_message(self.now, m, source);
        self.pump();
    }

    fn inject_text(&mut self, from: &str, flow: FlowId, reliable: bool, text: &str) {
        let m = Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap();
        self.inject(from, flow, reliable, m);
    }

    /// The one message to `to` whose first line starts with `start`, with where it went.
    fn expect(&mut self, to: &str, start: &str) -> (Destination, Message) {
        let a = addr(to);
        let pos = self
            .inbox
            .iter()
            .position(|(d, m)| d.remote == a && first(m).starts_with(start));
        let lines: Vec<String> = self.inbox.iter().map(|(_, m)| first(m)).collect();
        let Some(p) = pos else {
            panic!("no {start:?} to {to}; got {lines:?}")
        };
        self.inbox.remove(p)
    }
}

fn phone_invite(ruri: &str, contact: &str) -> String {
    format!(
        "INVITE {ruri} SIP/2.0\n\
Via: SIP/2.0/TLS 10.0.0.5:40001;branch=z9hG4bKphone1;rport\n\
Max-Forwards: 70\n\
From: <sip:alice@sbc.example.net>;tag=ph1\n\
To: <sip:201@sbc.example.net>\n\
Call-ID: phone-call-1\n\
CSeq: 1 INVITE\n\
Contact: {contact}\n\
Content-Type: application/sdp\n\
Content-Length: {}\n\n{}",
        wan_sdp(1).replace('\n', "\r\n").len(),
        wan_sdp(1)
    )
}

fn pbx_invite() -> String {
    let sdp = lan_sdp(1, "sendrecv");
    format!(
        "INVITE sip:alice@sbc.lan SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.10.20:5060;branch=z9hG4bKlan1\n\
Max-Forwards: 70\n\
From: <sip:201@pbx.lan.example>;tag=lanfrom1\n\
To: <sip:alice@sbc.lan>\n\
Call-ID: internal-callid\n\
CSeq: 10 INVITE\n\
Contact: <sip:201@192.168.10.20:5060>\n\
Content-Type: application/sdp\n\
Content-Length: {}\n\n{sdp}",
        sdp.replace('\n', "\r\n").len()
    )
}

fn udp(to: &str) -> Destination {
    Destination {
        remote: addr(to),
        flow: None,
        reliable: false,
    }
}

fn via_of(m: &Message) -> String {
    hv(m, HeaderName::Via)
}

#[test]
fn a_tls_caller_gets_tls_on_its_leg_and_the_udp_callee_udp() {
    // The remote phone (TLS) calls out through the ITSP (UDP), both in the WAN zone.
    let mut t = T::new("wan", "sip:+4930123456@itsp.example", udp(ITSP), "wan");
    let inv = phone_invite(
        "sip:+4930123456@198.51.100.1:5061;transport=tls",
        "<sip:alice@10.0.0.5:40001;transport=tls>",
    );
    t.inject_text(PHONE, PHONE_FLOW, true, &inv);
    assert!(matches!(t.started.as_slice(), [Ok(_)]), "{:?}", t.started);

    let (dest_b, inv_b) = t.expect(ITSP, "INVITE sip:+4930123456@itsp.example");
    assert!(!dest_b.reliable);
    assert!(
        via_of(&inv_b).starts_with(&format!("SIP/2.0/UDP {WAN_UDP};")),
        "{}",
        via_of(&inv_b)
    );
    assert_eq!(hv(&inv_b, HeaderName::Contact), format!("<sip:{WAN_UDP}>"));

    let ok = respond(
        &inv_b,
        "200 OK",
        "wan1",
        "Contact: <sip:gw@203.0.113.5>",
        Some(&wan_sdp(2)),
    );
    t.inject(ITSP, FlowId(2), false, ok);
    t.expect(ITSP, "ACK sip:gw@203.0.113.5");
    let (dest_a, ok_a) = t.expect(PHONE, "SIP/2.0 200");
    // The response goes back on the phone's connection, naming our TLS listener.
    assert_eq!((dest_a.flow, dest_a.reliable), (Some(PHONE_FLOW), true));
    assert_eq!(
        hv(&ok_a, HeaderName::Contact),
        format!("<sip:{WAN_TLS};transport=tls>")
    );

    // In-dialog requests on each leg follow that leg's transport: the ITSP's BYE goes to the
    // phone over its connection with a TLS Via.
    let bye = in_dialog(
        "BYE",
        &format!("sip:{WAN_UDP}"),
        false,
        &inv_with_tag(&inv_b, "wan1"),
        1,
        "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKwanbye1",
        "",
        None,
    );
    t.inject_text(ITSP, FlowId(2), false, &bye);
    let (dest, bye_a) = t.expect(PHONE, "BYE sip:alice@10.0.0.5:40001;transport=tls");
    assert_eq!((dest.flow, dest.reliable), (Some(PHONE_FLOW), true));
    assert!(
        via_of(&bye_a).starts_with(&format!("SIP/2.0/TLS {WAN_TLS};")),
        "{}",
        via_of(&bye_a)
    );
    t.expect(ITSP, "SIP/2.0 200");
}

#[test]
fn a_call_to_a_phone_registered_over_tls_leaves_over_tls() {
    // The PBX (LAN, UDP) calls the phone's binding: its Contact says TLS and its flow is the
    // phone's connection.
    let hop = Destination {
        remote: addr(PHONE),
        flow: Some(PHONE_FLOW),
        reliable: true,
    };
    let mut t = T::new("lan", "sip:alice@10.0.0.5:40001;transport=tls", hop, "wan");
    t.inject_text(PBX, PBX_FLOW, false, &pbx_invite());
    let (dest, inv_b) = t.expect(PHONE, "INVITE sip:alice@10.0.0.5:40001;transport=tls");
    assert_eq!(dest, hop);
    assert!(via_of(&inv_b).starts_with(&format!("SIP/2.0/TLS {WAN_TLS};")));
    assert_eq!(
        hv(&inv_b, HeaderName::Contact),
        format!("<sip:{WAN_TLS};transport=tls>")
    );
    let ok = respond(
        &inv_b,
        "200 OK",
        "ph2",
        "Contact: <sip:alice@10.0.0.5:40001;transport=tls>",
        Some(&wan_sdp(1)),
    );
    t.inject(PHONE, PHONE_FLOW, true, ok);
    let (_, ack) = t.expect(PHONE, "ACK sip:alice@10.0.0.5:40001;transport=tls");
    assert!(via_of(&ack).starts_with("SIP/2.0/TLS "));
    // The PBX's leg stays UDP, from the LAN listener.
    let (_, ok_a) = t.expect(PBX, "SIP/2.0 200");
    assert_eq!(hv(&ok_a, HeaderName::Contact), "<sip:192.168.10.1:5060>");
}

#[test]
fn a_sips_target_gets_a_sips_contact_over_tls() {
    // Given as a datagram hop: sips: still leaves over TLS only.
    let mut t = T::new(
        "lan",
        "sips:bob@example.com",
        udp("203.0.113.8:5061"),
        "wan",
    );
    t.inject_text(PBX, PBX_FLOW, false, &pbx_invite());
    let (dest, inv_b) = t.expect("203.0.113.8:5061", "INVITE sips:bob@example.com");
    assert!(dest.reliable, "a sips: leg is a TLS stream");
    assert!(via_of(&inv_b).starts_with(&format!("SIP/2.0/TLS {WAN_TLS};")));
    assert_eq!(hv(&inv_b, HeaderName::Contact), format!("<sips:{WAN_TLS}>"));
    // The PBX's leg is a sip: one: its Contact stays sip.
    let ringing = respond(
        &inv_b,
        "180 Ringing",
        "bob1",
        "Contact: <sips:bob@203.0.113.8>",
        None,
    );
    t.inject("203.0.113.8:5061", FlowId(9), true, ringing);
    let (_, r) = t.expect(PBX, "SIP/2.0 180");
    assert_eq!(hv(&r, HeaderName::Contact), "<sip:192.168.10.1:5060>");
}

#[test]
fn a_sips_caller_gets_a_sips_contact() {
    let mut t = T::new("wan", "sip:201@pbx.lan.example", udp(PBX), "lan");
    let inv = phone_invite("sips:201@sbc.example.net", "<sips:alice@10.0.0.5:40001>");
    t.inject_text(PHONE, PHONE_FLOW, true, &inv);
    let (_, inv_b) = t.expect(PBX, "INVITE sip:201@pbx.lan.example");
    assert_eq!(hv(&inv_b, HeaderName::Contact), "<sip:192.168.10.1:5060>");
    let ok = respond(
        &inv_b,
        "200 OK",
        "lan2",
        "Contact: <sip:201@192.168.10.20>",
        Some(&lan_sdp(1, "sendrecv")),
    );
    t.inject(PBX, PBX_FLOW, false, ok);
    let (_, ok_a) = t.expect(PHONE, "SIP/2.0 200");
    assert_eq!(hv(&ok_a, HeaderName::Contact), format!("<sips:{WAN_TLS}>"));
}

#[test]
fn a_tls_only_target_in_a_zone_without_tls_is_refused() {
    // The LAN has no TLS listener: a sips: target there is 416, a transport=tls one 503;
    // nothing is sent towards it and no media session stays behind.
    for (target, status) in [
        ("sips:202@pbx.lan.example", "416"),
        ("sip:202@192.168.10.30:5061;transport=tls", "503"),
    ] {
        let hop = Destination {
            remote: addr("192.168.10.30:5061"),
            flow: None,
            reliable: true,
        };
        let mut t = T::new("wan", target, hop, "lan");
        let inv = phone_invite(
            "sip:202@198.51.100.1:5061;transport=tls",
            "<sip:alice@10.0.0.5:40001;transport=tls>",
        );
        t.inject_text(PHONE, PHONE_FLOW, true, &inv);
        match t.started.as_slice() {
            [Err(e @ StartError::NoListener(_))] => {
                assert!(
                    e.to_string().contains("zone lan has no TLS listener"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        t.expect(PHONE, &format!("SIP/2.0 {status}"));
        assert!(t.inbox.iter().all(|(d, _)| d.remote != hop.remote));
        assert_eq!(t.media.live(), 0);
        assert_eq!(t.b2b.call_count(), 0);
    }
}
