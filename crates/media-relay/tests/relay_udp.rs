//! The relay with real UDP sockets on loopback. Each test uses its own port
//! range, so tests running in parallel do not see each other's ports, and
//! all ranges lie below Linux's ephemeral range (32768-60999), so no socket
//! bound to port 0 anywhere on the machine can land in them.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use media_relay::{DropReason, LatchMode, MediaEvent, PacketTransform, Side, TransformError};

fn relay_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Receives one datagram, or `None` after the socket's read timeout.
fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

#[test]
fn two_endpoints_exchange_rtp_and_rtcp_through_the_relay() {
    let (relay, _events) = relay(21000, 21099, LatchMode::Nat, Duration::from_secs(60));
    exchange(relay, 21000);
}

/// The same over the epoll path, which io_uring replaces where it works.
#[test]
fn the_epoll_path_relays_the_same() {
    let (epoll, _events) =
        relay_with_io(22400, 22499, LatchMode::Nat, Duration::from_secs(60), false);
    exchange(epoll, 22400);
    // The default takes io_uring where this kernel has it: the test above
    // then ran that path (checked where the probe below says it exists).
    let (uring, _events) = relay(22500, 22599, LatchMode::Nat, Duration::from_secs(60));
    uring.totals().unwrap(); // a round trip to every worker
    let probe = io_uring_available();
    assert_eq!(uring.io_uring_workers(), if probe { 2 } else { 0 });
}

/// Whether this process may set up an io_uring instance at all.
fn io_uring_available() -> bool {
    // SAFETY: io_uring_setup with a zeroed params struct; the descriptor,
    // if any, is closed at once.
    unsafe {
        let mut params = [0u8; 120];
        let fd = libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr());
        if fd >= 0 {
            libc::close(fd as i32);
        }
        fd >= 0
    }
}

fn exchange(relay: media_relay::MediaRelay, range: u16) {
    let (a, a_rtcp) = endpoint_pair();
    let b = endpoint("127.0.0.1");
    let b_rtcp = endpoint("127.0.0.1");
    let id = relay.create_session("lo", "lo").unwrap();
    let to_b = String::from_utf8(
        relay
            .offer(id, Side::A, &sdp(a.local_addr().unwrap(), false))
            .unwrap(),
    )
    .unwrap();
    // B's RTCP is on an explicit a=rtcp port.
    let mut b_sdp = String::from_utf8(sdp(b.local_addr().unwrap(), false)).unwrap();
    b_sdp.push_str(&format!(
        "a=rtcp:{}\r\n",
        b_rtcp.local_addr().unwrap().port()
    ));
    let to_a = String::from_utf8(relay.answer(id, Side::B, b_sdp.as_bytes()).unwrap()).unwrap();
    let ports = relay.ports(id).unwrap()[0];
    assert!(
        to_b.contains(&format!("m=audio {} RTP/AVP 0", ports.b)),
        "{to_b}"
    );
    assert!(
        to_a.contains(&format!("m=audio {} RTP/AVP 0", ports.a)),
        "{to_a}"
    );
    assert!(
        to_a.contains(&format!("a=rtcp:{} IN IP4 127.0.0.1", ports.a + 1)),
        "{to_a}"
    );

    // A -> B: B sees the packets from the relay's B-facing port, intact.
    for seq in 0..50u16 {
        let p = rtp(0, seq, 0xa, 0x11);
        a.send_to(&p, relay_addr(ports.a)).unwrap();
        let (got, from) = recv(&b).expect("A's packet reaches B");
        assert_eq!(got, p);
        assert_eq!(from, relay_addr(ports.b));
    }
    // B -> A: symmetric, B latched from its first packet.
    for seq in 0..50u16 {
        let p = rtp(0, seq, 0xb, 0x22);
        b.send_to(&p, relay_addr(ports.b)).unwrap();
        let (got, from) = recv(&a).expect("B's packet reaches A");
        assert_eq!(got, p);
        assert_eq!(from, relay_addr(ports.a));
    }
    // RTCP both ways on the odd ports; B's report block shows up in stats.
    let rr = rtcp_rr(0xb, 12, 3, 45);
    b_rtcp.send_to(&rr, relay_addr(ports.b + 1)).unwrap();
    let (got, from) = recv(&a_rtcp).expect("B's RTCP reaches A's RTCP port");
    assert_eq!((got, from), (rr.clone(), relay_addr(ports.a + 1)));
    let rr_a = rtcp_rr(0xa, 0, 0, 7);
    a_rtcp.send_to(&rr_a, relay_addr(ports.a + 1)).unwrap();
    assert_eq!(recv(&b_rtcp).expect("A's RTCP reaches B").0, rr_a);

    let st = relay.stats(id).unwrap();
    let s = st.streams[0];
    assert_eq!(
        (s.a_to_b.rtp_in, s.a_to_b.rtp_out, s.a_to_b.rtcp_out),
        (50, 50, 1)
    );
    assert_eq!(
        (s.b_to_a.rtp_in, s.b_to_a.rtp_out, s.b_to_a.rtcp_out),
        (50, 50, 1)
    );
    assert_eq!(s.a_to_b.bytes_out, 50 * 172 + rr_a.len() as u64);
    assert_eq!(s.a_to_b.drops.total() + s.b_to_a.drops.total(), 0);
    let rep = s.b_to_a.last_report.expect("RR parsed");
    assert_eq!(
        (rep.fraction_lost, rep.cumulative_lost, rep.jitter),
        (12, 3, 45)
    );
    let totals = relay.totals().unwrap();
    assert_eq!(totals.rtp_out, 100);
    relay.release(id).unwrap();
    assert!(relay.stats(id).is_err());
    // Totals keep released sessions.
    assert_eq!(relay.totals().unwrap().rtp_out, 100);
    // Released: every port closed by the time release returned (with
    // io_uring, the kernel's hold on the sockets is gone too).
    assert!((range..range + 100).contains(&ports.a));
    assert_eq!(bound_udp_ports(range, range + 99), Vec::<u16>::new());
}

#[test]
fn rtcp_mux_uses_one_port_per_leg() {
    let (relay, _events) = relay(21100, 21199, LatchMode::SdpAddress, Duration::from_secs(60));
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    let ports = relay.ports(id).unwrap()[0];
    assert_eq!(ports.rtcp, [None, None]);
    assert_eq!(bound_udp_ports(21100, 21199), {
        let mut v = vec![ports.a, ports.b];
        v.sort_unstable();
        v
    });
    a.send_to(&rtp(0, 1, 1, 1), relay_addr(ports.a)).unwrap();
    assert!(recv(&b).is_some());
    let rr = rtcp_rr(1, 0, 0, 0);
    a.send_to(&rr, relay_addr(ports.a)).unwrap();
    let (got, from) = recv(&b).expect("muxed RTCP relayed");
    assert_eq!((got, from), (rr, relay_addr(ports.b)));
}

#[test]
fn injected_packets_never_reach_the_callee() {
    let (relay, _events) = relay(21200, 21299, LatchMode::Nat, Duration::from_secs(60));
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), false))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), false))
        .unwrap();
    let ports = relay.ports(id).unwrap()[0];

    // Before A's first packet, an attacker on another address sends RTP that
    // looks exactly like A's stream (same PT and SSRC).
    let outsider = endpoint("127.0.0.2");
    for seq in 0..20u16 {
        outsider
            .send_to(&rtp(0, seq, 0xa, 0xee), relay_addr(ports.a))
            .unwrap();
    }
    // A starts (RTP and RTCP); then an attacker on A's own IP (the same NAT),
    // other port, spoofs A's stream, interleaved with A's real packets.
    let a_rtcp = endpoint("127.0.0.1");
    a.send_to(&rtp(0, 99, 0xa, 0x11), relay_addr(ports.a))
        .unwrap();
    a_rtcp
        .send_to(&rtcp_rr(0xa, 0, 0, 1), relay_addr(ports.a + 1))
        .unwrap();
    let neighbour = endpoint("127.0.0.1");
    for seq in 100..130u16 {
        a.send_to(&rtp(0, seq, 0xa, 0x11), relay_addr(ports.a))
            .unwrap();
        neighbour
            .send_to(&rtp(0, seq, 0xa, 0xee), relay_addr(ports.a))
            .unwrap();
        // Forged reports to the RTCP port too.
        neighbour
            .send_to(&rtcp_rr(0xa, 255, 0xffffff, 0), relay_addr(ports.a + 1))
            .unwrap();
    }
    let mut received = Vec::new();
    while let Some((p, _)) = recv(&b) {
        received.push(p);
    }
    assert_eq!(received.len(), 31, "exactly A's packets");
    assert!(
        received.iter().all(|p| p[12] == 0x11),
        "no injected payload reached B"
    );
    let s = relay.stats(id).unwrap().streams[0].a_to_b;
    assert_eq!(
        s.drops.get(DropReason::UnexpectedSource),
        20,
        "outsider before A latched"
    );
    assert_eq!(
        s.drops.get(DropReason::SourceLocked),
        60,
        "neighbour's RTP and RTCP after A latched"
    );
    assert_eq!(s.drops.total(), 80);
    assert_eq!((s.rtp_out, s.rtcp_out), (31, 1));
    // The forged report (255/256 lost) did not become the statistics.
    assert_eq!(s.last_report.unwrap().fraction_lost, 0);
}

#[test]
fn ports_are_open_only_during_the_call() {
    let (min, max) = (21300, 21399);
    let (relay, _events) = relay(min, max, LatchMode::Nat, Duration::from_secs(60));
    assert_eq!(
        bound_udp_ports(min, max),
        Vec::<u16>::new(),
        "no call, no socket"
    );
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let id = relay.create_session("lo", "lo").unwrap();
    assert_eq!(
        bound_udp_ports(min, max),
        Vec::<u16>::new(),
        "no SDP yet, no socket"
    );
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), false))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), false))
        .unwrap();
    let p = relay.ports(id).unwrap()[0];
    let mut expected = vec![p.a, p.a + 1, p.b, p.b + 1];
    expected.sort_unstable();
    assert_eq!(bound_udp_ports(min, max), expected);
    // And they are ours: binding them fails.
    for port in &expected {
        assert!(
            UdpSocket::bind(("127.0.0.1", *port)).is_err(),
            "port {port} should be held"
        );
    }
    let released = Instant::now();
    relay.release(id).unwrap();
    while !bound_udp_ports(min, max).is_empty() {
        assert!(
            released.elapsed() < Duration::from_secs(1),
            "ports still open after 1 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for port in &expected {
        UdpSocket::bind(("127.0.0.1", *port)).expect("released port can be bound");
    }
    // A new call does not get the quarantined ports.
    let id2 = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id2, Side::A, &sdp(a.local_addr().unwrap(), false))
        .unwrap();
    let p2 = relay.ports(id2).unwrap()[0];
    assert!(!expected.contains(&p2.a) && !expected.contains(&p2.b));
    relay.shutdown();
    assert_eq!(
        bound_udp_ports(min, max),
        Vec::<u16>::new(),
        "shutdown closes everything"
    );
}

#[test]
fn silent_session_is_reported_as_timed_out() {
    let (relay, events) = relay(21400, 21499, LatchMode::Nat, Duration::from_millis(300));
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let quiet = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(quiet, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(quiet, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    let start = Instant::now();
    match events.recv_timeout(Duration::from_secs(3)) {
        Ok(MediaEvent::Timeout { id, idle }) => {
            assert_eq!(id, quiet);
            assert!(idle >= Duration::from_millis(300));
        }
        other => panic!("expected a timeout event, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    // Reported once.
    assert!(events.recv_timeout(Duration::from_millis(500)).is_err());
}

/// Appends a 10-octet tag to A's packets and rejects B's RTP as replayed.
struct TagAndReject;

impl PacketTransform for TagAndReject {
    fn rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        if buf.get(12) == Some(&0x22) {
            return Err(TransformError::Replay);
        }
        buf.get_mut(len..len + 10)
            .ok_or(TransformError::BufferTooSmall)?
            .copy_from_slice(b"0123456789");
        Ok(len + 10)
    }
    fn rtcp(&mut self, _buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(len)
    }
}

#[test]
fn transforms_run_in_place_on_the_packet_path() {
    let (relay, _events) = relay(21500, 21599, LatchMode::Nat, Duration::from_secs(60));
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    a.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    relay
        .set_transform(id, 0, Side::A, Some(Box::new(TagAndReject)))
        .unwrap();
    relay
        .set_transform(id, 0, Side::B, Some(Box::new(TagAndReject)))
        .unwrap();
    assert!(relay.set_transform(id, 5, Side::A, None).is_err());
    let ports = relay.ports(id).unwrap()[0];
    // A full-size packet still has room for the tag.
    let mut big = vec![0x11u8; media_relay::MAX_DATAGRAM];
    big[..12].copy_from_slice(&rtp(0, 1, 1, 0x11)[..12]);
    a.send_to(&big, relay_addr(ports.a)).unwrap();
    let (got, _) = recv(&b).expect("tagged packet");
    assert_eq!(got.len(), media_relay::MAX_DATAGRAM + 10);
    assert_eq!(&got[got.len() - 10..], b"0123456789");
    b.send_to(&rtp(0, 1, 2, 0x22), relay_addr(ports.b)).unwrap();
    assert!(recv(&a).is_none());
    // Oversized datagrams are dropped, not truncated and forwarded.
    a.send_to(
        &vec![0x80u8; media_relay::MAX_DATAGRAM + 1],
        relay_addr(ports.a),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let s = relay.stats(id).unwrap().streams[0];
    assert_eq!(s.b_to_a.drops.get(DropReason::TransformReplay), 1);
    assert_eq!(s.a_to_b.drops.get(DropReason::BadLength), 1);
    assert_eq!((s.a_to_b.rtp_in, s.a_to_b.rtp_out), (2, 1));
}

#[test]
fn ipv6_zone_relays_between_ipv6_peers() {
    let cfg = media_relay::RelayConfig {
        zones: vec![media_relay::ZoneConfig {
            name: "v6".into(),
            bind: "::1".parse().unwrap(),
            advertise: None,
            port_min: 21800,
            port_max: 21899,
            latch: media_relay::LatchPolicy {
                mode: LatchMode::Strict,
                relatch_after_silence: None,
            },
        }],
        workers: 1,
        ..media_relay::RelayConfig::default()
    };
    let (relay, _events) = media_relay::MediaRelay::start(&cfg).unwrap();
    let a = UdpSocket::bind("[::1]:0").unwrap();
    let b = UdpSocket::bind("[::1]:0").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let v6sdp = |s: &UdpSocket| {
        format!(
            "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtcp-mux\r\n",
            s.local_addr().unwrap().port()
        )
    };
    let id = relay.create_session("v6", "v6").unwrap();
    let to_b = relay.offer(id, Side::A, v6sdp(&a).as_bytes()).unwrap();
    assert!(String::from_utf8(to_b)
        .unwrap()
        .contains("c=IN IP6 ::1\r\n"));
    relay.answer(id, Side::B, v6sdp(&b).as_bytes()).unwrap();
    let p = relay.ports(id).unwrap()[0];
    let pkt = rtp(0, 1, 1, 0x33);
    a.send_to(&pkt, ("::1", p.a)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &pkt[..]);
    assert_eq!(from, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p.b)));
    // Strict zone: the same host from another port is refused.
    let other = UdpSocket::bind("[::1]:0").unwrap();
    other.send_to(&pkt, ("::1", p.a)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let s = relay.stats(id).unwrap().streams[0].a_to_b;
    assert_eq!(s.drops.get(DropReason::SourceLocked), 1);
}

/// After latching, each leg's port has a second socket connected to the
/// latched peer (the kernel's cheaper path); a stranger's packets still land
/// on the port's own socket and are dropped and counted, never forwarded; a
/// re-INVITE moves the connection to the new peer; release closes both.
#[test]
fn latched_peer_gets_a_connected_socket_and_strangers_are_still_dropped() {
    let mut range = 21700;
    for io_uring in [true, false] {
        if io_uring && !io_uring_available() {
            continue;
        }
        connected_companion(io_uring, range);
        range += 50;
    }
}

fn connected_companion(io_uring: bool, min: u16) {
    let (relay, _events) = relay_with_io(
        min,
        min + 49,
        LatchMode::Nat,
        Duration::from_secs(60),
        io_uring,
    );
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    a.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    let ports = relay.ports(id).unwrap()[0];
    assert_eq!(
        sockets_on_port(ports.a),
        vec![None],
        "one socket before the latch"
    );

    // Both sides latch; their ports get a socket connected to them.
    a.send_to(&rtp(0, 1, 0xa, 0x11), relay_addr(ports.a))
        .unwrap();
    assert!(recv(&b).is_some());
    b.send_to(&rtp(0, 1, 0xb, 0x22), relay_addr(ports.b))
        .unwrap();
    assert!(recv(&a).is_some());
    // The epoll path sends before it makes the companion: wait for both.
    let deadline = Instant::now() + Duration::from_secs(2);
    while (sockets_on_port(ports.a).len() < 2 || sockets_on_port(ports.b).len() < 2)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        sockets_on_port(ports.a),
        vec![None, Some(a.local_addr().unwrap())]
    );
    assert_eq!(
        sockets_on_port(ports.b),
        vec![None, Some(b.local_addr().unwrap())]
    );

    // A stranger on A's IP interleaves with A: only A's packets reach B,
    // from B's port, and the stranger's are counted as source-locked.
    let stranger = endpoint("127.0.0.1");
    for seq in 2..12u16 {
        a.send_to(&rtp(0, seq, 0xa, 0x11), relay_addr(ports.a))
            .unwrap();
        stranger
            .send_to(&rtp(0, seq, 0xa, 0xee), relay_addr(ports.a))
            .unwrap();
        b.send_to(&rtp(0, seq, 0xb, 0x22), relay_addr(ports.b))
            .unwrap();
    }
    let mut got_b = Vec::new();
    while let Some((p, from)) = recv(&b) {
        assert_eq!(from, relay_addr(ports.b));
        got_b.push(p[12]);
    }
    assert_eq!(got_b, vec![0x11; 10], "exactly A's packets");
    let mut got_a = 0;
    while let Some((p, from)) = recv(&a) {
        assert_eq!((p[12], from), (0x22, relay_addr(ports.a)));
        got_a += 1;
    }
    assert_eq!(got_a, 10);
    let st = relay.stats(id).unwrap().streams[0];
    assert_eq!(st.a_to_b.drops.get(DropReason::SourceLocked), 10);
    assert_eq!(st.a_to_b.drops.total(), 10);
    assert_eq!(st.a_to_b.rtp_out, 11);

    // Re-INVITE from A with a new address: the new one latches, the
    // connection follows it, and the old address is a stranger now.
    let a2 = endpoint("127.0.0.1");
    relay
        .offer(id, Side::A, &sdp(a2.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    a2.send_to(&rtp(0, 20, 0xa, 0x33), relay_addr(ports.a))
        .unwrap();
    assert_eq!(recv(&b).map(|(p, _)| p[12]), Some(0x33));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !sockets_on_port(ports.a).contains(&Some(a2.local_addr().unwrap()))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        sockets_on_port(ports.a),
        vec![None, Some(a2.local_addr().unwrap())]
    );
    for seq in 21..26u16 {
        a.send_to(&rtp(0, seq, 0xa, 0x11), relay_addr(ports.a))
            .unwrap();
        a2.send_to(&rtp(0, seq, 0xa, 0x33), relay_addr(ports.a))
            .unwrap();
    }
    let mut got = Vec::new();
    while let Some((p, _)) = recv(&b) {
        got.push(p[12]);
    }
    assert_eq!(got, vec![0x33; 5]);
    let st = relay.stats(id).unwrap().streams[0];
    assert_eq!(st.a_to_b.drops.get(DropReason::SourceLocked), 15);

    relay.release(id).unwrap();
    assert!(sockets_on_port(ports.a).is_empty());
    assert!(sockets_on_port(ports.b).is_empty());
    relay.shutdown();
}

/// Hold and resume by re-INVITE: while A's SDP says `a=sendonly` (and B's
/// answer `a=recvonly`), B's RTP never reaches A and is counted as
/// `direction`; A's music on hold and RTCP both ways still pass; after the
/// resume both directions flow again.
#[test]
fn hold_by_reinvite_withholds_the_held_direction() {
    let (relay, _events) = relay(22600, 22699, LatchMode::Nat, Duration::from_secs(60));
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let with = |addr: SocketAddr, dir: &str| {
        let mut v = sdp(addr, true);
        v.extend_from_slice(format!("a={dir}\r\n").as_bytes());
        v
    };
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let id = relay.create_session("lo", "lo").unwrap();
    relay.offer(id, Side::A, &sdp(aa, true)).unwrap();
    relay.answer(id, Side::B, &sdp(ba, true)).unwrap();
    let p = relay.ports(id).unwrap()[0];
    let exchange = |seq: u16| {
        a.send_to(&rtp(0, seq, 0xa, 0x11), relay_addr(p.a)).unwrap();
        b.send_to(&rtp(0, seq, 0xb, 0x22), relay_addr(p.b)).unwrap();
        (recv(&b).map(|(x, _)| x[12]), recv(&a).map(|(x, _)| x[12]))
    };
    assert_eq!(exchange(1), (Some(0x11), Some(0x22)));

    // Hold: the SDP toward B keeps a=sendonly, the answer toward A a=recvonly.
    let to_b = relay.offer(id, Side::A, &with(aa, "sendonly")).unwrap();
    assert!(String::from_utf8_lossy(&to_b).contains("a=sendonly\r\n"));
    let to_a = relay.answer(id, Side::B, &with(ba, "recvonly")).unwrap();
    assert!(String::from_utf8_lossy(&to_a).contains("a=recvonly\r\n"));
    for seq in 2..7 {
        assert_eq!(exchange(seq), (Some(0x11), None), "packet {seq}");
    }
    // RTCP (muxed) still passes from B to A.
    b.send_to(&rtcp_rr(0xb, 0, 0, 1), relay_addr(p.b)).unwrap();
    assert!(recv(&a).is_some(), "RTCP from B during the hold");

    // Resume.
    relay.offer(id, Side::A, &with(aa, "sendrecv")).unwrap();
    relay.answer(id, Side::B, &sdp(ba, true)).unwrap();
    assert_eq!(exchange(7), (Some(0x11), Some(0x22)));

    let st = relay.stats(id).unwrap().streams[0];
    assert_eq!(st.b_to_a.drops.get(DropReason::Direction), 5);
    assert_eq!(st.b_to_a.drops.total(), 5);
    assert_eq!(st.a_to_b.drops.total(), 0);
    assert_eq!((st.b_to_a.rtp_out, st.b_to_a.rtcp_out), (2, 1));
    relay.release(id).unwrap();
}

/// A connected socket reports an ICMP error of its peer (port unreachable
/// after the phone closed its socket) on its next receive. The relay must
/// take it in stride: when the peer comes back on the same address, its
/// packets flow again, on both packet paths.
#[test]
fn connected_socket_survives_icmp_errors_from_its_peer() {
    let mut min = 22700;
    for io_uring in [true, false] {
        if io_uring && !io_uring_available() {
            continue;
        }
        let (relay, _events) = relay_with_io(
            min,
            min + 49,
            LatchMode::Nat,
            Duration::from_secs(60),
            io_uring,
        );
        min += 50;
        let a = endpoint("127.0.0.1");
        let b = endpoint("127.0.0.1");
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        }
        let ba = b.local_addr().unwrap();
        let id = relay.create_session("lo", "lo").unwrap();
        relay
            .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
            .unwrap();
        relay.answer(id, Side::B, &sdp(ba, true)).unwrap();
        let p = relay.ports(id).unwrap()[0];
        a.send_to(&rtp(0, 1, 0xa, 0x11), relay_addr(p.a)).unwrap();
        assert!(recv(&b).is_some());
        b.send_to(&rtp(0, 1, 0xb, 0x22), relay_addr(p.b)).unwrap();
        assert!(recv(&a).is_some());
        std::thread::sleep(Duration::from_millis(50));

        // B goes away: what A sends now draws ICMP port unreachable.
        drop(b);
        for seq in 2..5 {
            a.send_to(&rtp(0, seq, 0xa, 0x11), relay_addr(p.a)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        // B is back on the same address; both directions work again.
        let b = UdpSocket::bind(ba).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        for seq in 5..8 {
            b.send_to(&rtp(0, seq, 0xb, 0x22), relay_addr(p.b)).unwrap();
            assert_eq!(
                recv(&a).map(|(x, _)| x[12]),
                Some(0x22),
                "B to A after the error (io_uring {io_uring})"
            );
            a.send_to(&rtp(0, seq, 0xa, 0x11), relay_addr(p.a)).unwrap();
            assert_eq!(
                recv(&b).map(|(x, _)| x[12]),
                Some(0x11),
                "A to B after the error (io_uring {io_uring})"
            );
        }
        // The error surfaced on a send (counted as send_failed) or on a
        // receive (skipped); either way nothing else was lost.
        let st = relay.stats(id).unwrap().streams[0].a_to_b;
        assert_eq!(st.rtp_out + st.drops.get(DropReason::SendFailed), 7);
        assert_eq!(st.drops.total(), st.drops.get(DropReason::SendFailed));
        relay.release(id).unwrap();
        relay.shutdown();
    }
}
