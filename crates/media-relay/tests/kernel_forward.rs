//! The kernel fast path for real: the relay with `kernel_forward` on,
//! attached to the loopback interface, two RTP endpoints and a stranger on
//! loopback. Needs root (CAP_BPF and CAP_NET_ADMIN) and a kernel that takes
//! the program; otherwise it says why and returns.
//!
//! One test function runs both packet paths one after the other, so that a
//! single relay (one program on `lo`) exists at a time in this process.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;
use media_relay::{
    DirectionStats, DropReason, LatchMode, LatchPolicy, MediaError, MediaEvent, MediaRelay,
    PacketTransform, RelayConfig, SessionId, Side, TransformError, ZoneConfig,
};

/// Short, so that the test sees it fire and not fire.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// The zone lets a peer silent this long be replaced. Shorter than the
/// timeout, so that what the timeout scan reads of the kernel's counters
/// is not enough to keep a stranger out.
const SILENCE: Duration = Duration::from_millis(500);
const N: u16 = 200;

fn start(
    bind: &str,
    min: u16,
    max: u16,
    io_uring: bool,
) -> Option<(MediaRelay, Receiver<MediaEvent>)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "kernel_forward: skipped, not root (the BPF program needs CAP_BPF and CAP_NET_ADMIN)"
        );
        return None;
    }
    let cfg = RelayConfig {
        zones: vec![ZoneConfig {
            name: "lo".into(),
            bind: bind.parse().unwrap(),
            advertise: Some("127.0.0.1".parse().unwrap()),
            port_min: min,
            port_max: max,
            latch: LatchPolicy {
                mode: LatchMode::Nat,
                relatch_after_silence: Some(SILENCE),
            },
        }],
        quarantine: Duration::from_secs(30),
        media_timeout: TIMEOUT,
        workers: 1,
        io_uring,
        kernel_forward: true,
        kernel_forward_interfaces: Some(vec!["lo".into()]),
        ..RelayConfig::default()
    };
    match MediaRelay::start(&cfg) {
        Ok(r) => Some(r),
        Err(MediaError::KernelForward(e)) => {
            eprintln!("kernel_forward: skipped, the kernel path could not be set up: {e}");
            None
        }
        Err(e) => panic!("relay: {e}"),
    }
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `count` packets from `from` to the relay's `port`, each received by
/// `to` from `relay_out` with its payload intact.
fn pass(from: &UdpSocket, port: u16, to: &UdpSocket, relay_out: u16, seq0: u16, count: u16) {
    for i in 0..count {
        let seq = seq0.wrapping_add(i);
        let p = rtp(0, seq, 0x1234, (seq % 251) as u8);
        from.send_to(&p, lo(port)).unwrap();
        let (got, src) = recv(to).unwrap_or_else(|| panic!("packet {seq} lost"));
        assert_eq!(
            src,
            lo(relay_out),
            "packet {seq} leaves from the relay port"
        );
        assert_eq!(got, p, "packet {seq} arrives intact");
    }
}

fn nothing(s: &UdpSocket) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(recv(s), None);
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
}

#[test]
fn latched_rtp_is_forwarded_in_the_kernel_on_both_packet_paths() {
    for (io_uring, min) in [(true, 23800), (false, 23900)] {
        let Some((relay, events)) = start("127.0.0.1", min, min + 99, io_uring) else {
            return;
        };
        assert_eq!(
            relay.kernel_forward_interfaces(),
            Some(&["lo".to_string()][..])
        );
        run(&relay, &events, min, io_uring);
        relay.shutdown();
    }
    wildcard_leg();
}

/// Legs bound to 0.0.0.0: the flows take the addresses of the sockets
/// connected to the latched peers.
fn wildcard_leg() {
    let Some((relay, _events)) = start("0.0.0.0", 24100, 24199, true) else {
        return;
    };
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    let p = relay.ports(id).unwrap()[0];
    pass(&a, p.a, &b, p.b, 0, 1);
    pass(&b, p.b, &a, p.a, 0, 1);
    std::thread::sleep(Duration::from_millis(50));
    pass(&a, p.a, &b, p.b, 1, 50);
    pass(&b, p.b, &a, p.a, 1, 50);
    let st = relay.stats(id).unwrap().streams[0];
    assert_eq!((st.a_to_b.rtp_kernel, st.b_to_a.rtp_kernel), (50, 50));
    relay.release(id).unwrap();
    relay.shutdown();
}

fn run(relay: &MediaRelay, events: &Receiver<MediaEvent>, min: u16, io_uring: bool) {
    let path = if io_uring { "io_uring" } else { "epoll" };
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    let p = relay.ports(id).unwrap()[0];
    if !io_uring {
        assert_eq!(relay.io_uring_workers(), 0);
    }

    // Both latch through the sockets; then the kernel takes over.
    pass(&a, p.a, &b, p.b, 0, 1);
    pass(&b, p.b, &a, p.a, 0, 1);
    std::thread::sleep(Duration::from_millis(50));
    pass(&a, p.a, &b, p.b, 1, N);
    pass(&b, p.b, &a, p.a, 1, N);
    let st = relay.stats(id).unwrap().streams[0];
    for (dir, d) in [("a->b", st.a_to_b), ("b->a", st.b_to_a)] {
        assert_eq!(
            (d.rtp_in, d.rtp_out, d.rtp_kernel),
            (u64::from(N) + 1, u64::from(N) + 1, u64::from(N)),
            "{path} {dir}: the latching packet in userspace, the rest in the kernel"
        );
        assert_eq!(d.bytes_out, 172 * (u64::from(N) + 1), "{path} {dir}");
    }

    // Muxed RTCP is not the kernel's: it still passes through the relay.
    let rr = rtcp_rr(0x1234, 0, 0, 7);
    a.send_to(&rr, lo(p.a)).unwrap();
    assert_eq!(recv(&b), Some((rr.clone(), lo(p.b))), "{path}: RTCP");

    // A stranger gets nothing through (the key admits only the latched
    // peer; the core drops the rest), and is answered nothing.
    let stranger = endpoint("127.0.0.2");
    stranger.send_to(&rtp(0, 9, 9, 9), lo(p.a)).unwrap();
    stranger.send_to(&rtp(0, 9, 9, 9), lo(p.b)).unwrap();
    nothing(&b);
    nothing(&a);
    nothing(&stranger);
    let st = relay.stats(id).unwrap().streams[0];
    assert_eq!(st.a_to_b.rtcp_out, 1, "{path}");
    assert_eq!(st.a_to_b.drops.get(DropReason::SourceLocked), 1, "{path}");
    assert_eq!(st.b_to_a.drops.get(DropReason::SourceLocked), 1, "{path}");

    // Kernel-forwarded media keeps the call alive past the media timeout;
    // and a source that A's SDP admits (its address, another port) cannot
    // take over: A's peer is silent to the sockets for longer than
    // SILENCE, but not to the kernel. (Had the impostor latched, A's next
    // packet would be lost; had it passed, B would get it instead of A's.)
    let impostor = endpoint("127.0.0.1");
    while events.try_recv().is_ok() {}
    let t0 = Instant::now();
    let mut seq = 1000u16;
    let mut strangers = 0;
    let mut last_sent = t0;
    while t0.elapsed() < TIMEOUT * 5 / 2 {
        pass(&a, p.a, &b, p.b, seq, 1);
        last_sent = Instant::now();
        // Not before the timeout would have fired: nothing but the timeout
        // scan may read the kernel's counters until then.
        if t0.elapsed() > TIMEOUT * 3 / 2 && seq.is_multiple_of(5) {
            impostor.send_to(&rtp(0, 9, 9, 9), lo(p.a)).unwrap();
            strangers += 1;
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        events.try_recv().ok(),
        None,
        "{path}: no timeout while media flows"
    );
    nothing(&b);
    let kernel_before = relay.stats(id).unwrap().streams[0].a_to_b.rtp_kernel;
    assert!(
        kernel_before >= u64::from(N) + 100,
        "{path}: {kernel_before}"
    );

    // Silence: the timeout fires.
    let ev = events.recv_timeout(TIMEOUT * 3).expect("timeout event");
    let MediaEvent::Timeout { id: tid, idle } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(tid, id);
    assert!(idle >= TIMEOUT, "{idle:?}");
    assert!(
        last_sent.elapsed() >= TIMEOUT - Duration::from_millis(50),
        "{path}: fired {:?} after the media stopped",
        last_sent.elapsed()
    );

    // A's peer moved (a new NAT binding) after SILENCE: its new source is
    // not the kernel's key, so it reaches the relay and latches; then the
    // kernel forwards the new source both ways, and the old one is a
    // stranger.
    std::thread::sleep(SILENCE.saturating_sub(last_sent.elapsed()) + Duration::from_millis(100));
    let a2 = endpoint("127.0.0.1");
    pass(&a2, p.a, &b, p.b, 2000, 1);
    std::thread::sleep(Duration::from_millis(50));
    pass(&a2, p.a, &b, p.b, 2001, 20);
    pass(&b, p.b, &a2, p.a, 2001, 20);
    a.send_to(&rtp(0, 9, 9, 9), lo(p.a)).unwrap();
    nothing(&b);
    let st = relay.stats(id).unwrap().streams[0];
    assert_eq!(
        st.a_to_b.rtp_kernel,
        kernel_before + 20,
        "{path}: new source"
    );
    assert_eq!(
        st.b_to_a.rtp_kernel,
        u64::from(N) + 20,
        "{path}: B->A follows the new latch"
    );
    assert_eq!(
        st.a_to_b.drops.get(DropReason::SourceLocked),
        1 + strangers + 1,
        "{path}"
    );

    transform_and_hold(relay, id, &a2, &b, p.a, p.b, path);

    // Release: the flows leave the kernel before the port closes, their
    // counters stay in the totals.
    let st = relay.stats(id).unwrap().streams[0];
    let kernel_total = st.a_to_b.rtp_kernel + st.b_to_a.rtp_kernel;
    relay.release(id).unwrap();
    assert!(relay.totals().unwrap().rtp_kernel >= kernel_total, "{path}");
    a2.send_to(&rtp(0, 9, 9, 9), lo(p.a)).unwrap();
    b.send_to(&rtp(0, 9, 9, 9), lo(p.b)).unwrap();
    nothing(&b);
    nothing(&a2);
    assert!(
        bound_udp_ports(min, min + 99).is_empty(),
        "{path}: the ports are closed"
    );
    UdpSocket::bind(lo(p.a)).expect("port free after release");
}

/// Stands in for SRTP terminated at the relay: the packets are the same,
/// but the relay must see each one.
struct Inspect;

impl PacketTransform for Inspect {
    fn rtp(&mut self, _buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(len)
    }
    fn rtcp(&mut self, _buf: &mut [u8], len: usize) -> Result<usize, TransformError> {
        Ok(len)
    }
}

fn directions(relay: &MediaRelay, id: SessionId) -> (DirectionStats, DirectionStats) {
    let st = relay.stats(id).unwrap().streams[0];
    (st.a_to_b, st.b_to_a)
}

/// With SDP direction `dir` appended at media level.
fn sdp_dir(addr: SocketAddr, dir: &str) -> Vec<u8> {
    let mut s = sdp(addr, true);
    s.extend_from_slice(format!("a={dir}\r\n").as_bytes());
    s
}

/// A transform on A's packets takes A->B out of the kernel (B->A stays);
/// hold (A sendonly) keeps B->A out of it and dropped, A->B in it; resume
/// brings both back. `a` and `b` are latched and offloaded on entry.
fn transform_and_hold(
    relay: &MediaRelay,
    id: SessionId,
    a: &UdpSocket,
    b: &UdpSocket,
    pa: u16,
    pb: u16,
    path: &str,
) {
    let (ab0, ba0) = directions(relay, id);
    relay
        .set_transform(id, 0, Side::A, Some(Box::new(Inspect)))
        .unwrap();
    pass(a, pa, b, pb, 3000, 10);
    pass(b, pb, a, pa, 3000, 10);
    let (ab, ba) = directions(relay, id);
    assert_eq!(
        (ab.rtp_out - ab0.rtp_out, ab.rtp_kernel - ab0.rtp_kernel),
        (10, 0),
        "{path}: a transformed direction stays in the relay"
    );
    assert_eq!(ba.rtp_kernel - ba0.rtp_kernel, 10, "{path}: B->A untouched");
    relay.set_transform(id, 0, Side::A, None).unwrap();
    pass(a, pa, b, pb, 3010, 10);
    let (ab1, _) = directions(relay, id);
    assert_eq!(
        ab1.rtp_kernel - ab.rtp_kernel,
        10,
        "{path}: back in the kernel"
    );

    // Hold: A sends only, B receives only. Both sides are armed by the new
    // SDP: their next packets latch again.
    relay
        .offer(id, Side::A, &sdp_dir(a.local_addr().unwrap(), "sendonly"))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp_dir(b.local_addr().unwrap(), "recvonly"))
        .unwrap();
    // B first: the hold applies at once, not from the next packet on.
    let (ab, ba) = directions(relay, id);
    for i in 0..5 {
        b.send_to(&rtp(0, 3100 + i, 7, 7), lo(pb)).unwrap();
    }
    nothing(a);
    pass(a, pa, b, pb, 3100, 1);
    b.send_to(&rtp(0, 3105, 7, 7), lo(pb)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    pass(a, pa, b, pb, 3101, 20);
    nothing(a);
    let (ab2, ba2) = directions(relay, id);
    assert_eq!(
        ab2.rtp_kernel - ab.rtp_kernel,
        20,
        "{path}: on hold, A->B still in the kernel"
    );
    assert_eq!(
        (
            ba2.rtp_kernel - ba.rtp_kernel,
            ba2.drops.get(DropReason::Direction) - ba.drops.get(DropReason::Direction)
        ),
        (0, 6),
        "{path}: on hold, B->A dropped by the relay, not forwarded by the kernel"
    );

    // Resume.
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    pass(a, pa, b, pb, 3200, 1);
    pass(b, pb, a, pa, 3200, 1);
    std::thread::sleep(Duration::from_millis(50));
    pass(a, pa, b, pb, 3201, 10);
    pass(b, pb, a, pa, 3201, 10);
    let (ab3, ba3) = directions(relay, id);
    assert_eq!(ab3.rtp_kernel - ab2.rtp_kernel, 10, "{path}: resumed");
    assert_eq!(ba3.rtp_kernel - ba2.rtp_kernel, 10, "{path}: resumed");
}
