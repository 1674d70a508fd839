//! The forwarder in the real kernel: loopback flows, checksums verified by
//! the receiving stack, and remote peers in network namespaces reached
//! through the neighbour table. These tests need root (CI runs as root);
//! without it they say so and return.

use media_kernel_forward::{FlowAction, FlowKey, KernelForwarder};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("skipped: kernel forwarding needs root (euid {euid})");
    }
    euid == 0
}

fn v4(s: &UdpSocket) -> SocketAddrV4 {
    match s.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("v6"),
    }
}

fn udp(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

fn rtp(seq: u16, pt: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// Everything waiting on `s`, as (source, payload).
fn drain(s: &UdpSocket) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = s.recv_from(&mut buf) {
        out.push((from, buf[..n].to_vec()));
    }
    out
}

#[test]
fn loopback_flow_is_rewritten_counted_and_only_for_its_peer() {
    if !root() {
        return;
    }
    let fwd = KernelForwarder::attach(Some(&["lo".to_string()])).unwrap();
    assert_eq!(fwd.interfaces(), ["lo"]);
    let (peer_a, peer_b, relay_a, relay_b, stranger) = (
        udp("127.0.0.1"),
        udp("127.0.0.1"),
        udp("127.0.0.1"),
        udp("127.0.0.1"),
        udp("127.0.0.1"),
    );
    let key = FlowKey {
        src: v4(&peer_a),
        dst: v4(&relay_a),
    };
    fwd.install(
        key,
        FlowAction {
            src: v4(&relay_b),
            dst: v4(&peer_b),
        },
    )
    .unwrap();
    for seq in 0..100 {
        peer_a
            .send_to(&rtp(seq, 0), relay_a.local_addr().unwrap())
            .unwrap();
    }
    // RTCP and a stranger's RTP to the same port stay with the relay.
    peer_a
        .send_to(&rtp(7, 200), relay_a.local_addr().unwrap())
        .unwrap();
    stranger
        .send_to(&rtp(9, 0), relay_a.local_addr().unwrap())
        .unwrap();

    let got = drain(&peer_b);
    assert_eq!(got.len(), 100, "forwarded datagrams");
    for (i, (from, data)) in got.iter().enumerate() {
        assert_eq!(*from, relay_b.local_addr().unwrap(), "source is our B leg");
        assert_eq!(*data, rtp(i as u16, 0), "payload intact, in order");
    }
    let at_relay = drain(&relay_a);
    assert_eq!(
        at_relay.len(),
        2,
        "only RTCP and the stranger reach the socket"
    );
    assert_eq!(at_relay[0].1[1], 200);
    assert_eq!(at_relay[1].0, stranger.local_addr().unwrap());
    assert!(drain(&relay_b).is_empty());

    let c = fwd.counters(key).unwrap().unwrap();
    assert_eq!((c.packets, c.bytes), (100, 100 * 172));
    assert!(c.idle.unwrap() < Duration::from_secs(5));

    // Removed: the peer's packets go to the relay's socket again.
    let last = fwd.remove(key).unwrap().unwrap();
    assert_eq!(last.packets, 100);
    assert_eq!(fwd.counters(key).unwrap(), None);
    assert_eq!(fwd.remove(key).unwrap(), None, "removing twice is harmless");
    peer_a
        .send_to(&rtp(100, 0), relay_a.local_addr().unwrap())
        .unwrap();
    assert_eq!(drain(&relay_a).len(), 1);
    assert!(drain(&peer_b).is_empty());
}

#[test]
fn dropping_the_forwarder_detaches_it() {
    if !root() {
        return;
    }
    let (peer_a, peer_b, relay_a, relay_b) = (
        udp("127.0.0.1"),
        udp("127.0.0.1"),
        udp("127.0.0.1"),
        udp("127.0.0.1"),
    );
    let fwd = KernelForwarder::attach(Some(&["lo".to_string()])).unwrap();
    fwd.install(
        FlowKey {
            src: v4(&peer_a),
            dst: v4(&relay_a),
        },
        FlowAction {
            src: v4(&relay_b),
            dst: v4(&peer_b),
        },
    )
    .unwrap();
    peer_a
        .send_to(&rtp(1, 0), relay_a.local_addr().unwrap())
        .unwrap();
    assert_eq!(drain(&peer_b).len(), 1);
    drop(fwd);
    peer_a
        .send_to(&rtp(2, 0), relay_a.local_addr().unwrap())
        .unwrap();
    assert!(drain(&peer_b).is_empty());
    assert_eq!(drain(&relay_a).len(), 1);
}

#[test]
fn bad_flows_and_interfaces_are_refused_with_reasons() {
    if !root() {
        return;
    }
    let e = KernelForwarder::attach(Some(&["no-such-if0".to_string()])).unwrap_err();
    assert!(e.to_string().contains("no-such-if0"), "{e}");
    let fwd = KernelForwarder::attach(Some(&["lo".to_string()])).unwrap();
    let any: SocketAddrV4 = "0.0.0.0:4000".parse().unwrap();
    let ok: SocketAddrV4 = "127.0.0.1:4000".parse().unwrap();
    let e = fwd
        .install(
            FlowKey { src: ok, dst: any },
            FlowAction { src: ok, dst: ok },
        )
        .unwrap_err();
    assert!(e.to_string().contains("0.0.0.0:4000"), "{e}");
}

/// The Internet checksum of `data` (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends a UDP datagram through a raw socket with a checksum we compute
/// (or a wrong one): the receiving stack then verifies it, which it does
/// not for datagrams from local UDP sockets (their checksum is left to
/// offload).
fn send_raw(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8], corrupt: bool) {
    let len = (8 + payload.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&from.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&from.ip().octets());
    pseudo.extend_from_slice(&to.ip().octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let mut c = checksum(&pseudo);
    if c == 0 {
        c = 0xffff;
    }
    if corrupt {
        c ^= 0x0101;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    // SAFETY: plain socket calls on a descriptor we own and close.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP);
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // Bind so that the kernel uses our source address.
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes(from.ip().octets());
        libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), 16);
        let mut da: libc::sockaddr_in = std::mem::zeroed();
        da.sin_family = libc::AF_INET as u16;
        da.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        let n = libc::sendto(
            fd,
            udp.as_ptr().cast(),
            udp.len(),
            0,
            (&da as *const libc::sockaddr_in).cast(),
            16,
        );
        assert_eq!(n, udp.len() as isize, "{}", std::io::Error::last_os_error());
        libc::close(fd);
    }
}

#[test]
fn rewritten_checksums_pass_the_receivers_verification() {
    if !root() {
        return;
    }
    let (peer_b, relay_a, relay_b) = (udp("127.0.0.1"), udp("127.0.0.1"), udp("127.0.0.1"));
    // A source port nobody uses: the raw socket has no port of its own.
    let peer_a: SocketAddrV4 = "127.0.0.1:9".parse().unwrap();
    // Without the forwarder: the receiver takes the good checksum and
    // drops the corrupted one, so a wrong rewrite would be seen.
    send_raw(peer_a, v4(&peer_b), &rtp(1, 0), false);
    send_raw(peer_a, v4(&peer_b), &rtp(2, 0), true);
    let direct = drain(&peer_b);
    assert_eq!(
        direct.len(),
        1,
        "the stack verifies raw datagrams' checksums"
    );
    assert_eq!(direct[0].1, rtp(1, 0));

    let fwd = KernelForwarder::attach(Some(&["lo".to_string()])).unwrap();
    let key = FlowKey {
        src: peer_a,
        dst: v4(&relay_a),
    };
    fwd.install(
        key,
        FlowAction {
            src: v4(&relay_b),
            dst: v4(&peer_b),
        },
    )
    .unwrap();
    for seq in 0..50u16 {
        send_raw(peer_a, v4(&relay_a), &rtp(seq, 8), false);
    }
    let got = drain(&peer_b);
    assert_eq!(got.len(), 50, "every rewritten checksum verified");
    assert!(got.iter().all(|(f, _)| *f == relay_b.local_addr().unwrap()));
    assert_eq!(fwd.counters(key).unwrap().unwrap().packets, 50);
    // A datagram that arrives corrupted stays corrupted: dropped by the
    // receiver, not repaired by the rewrite.
    send_raw(peer_a, v4(&relay_a), &rtp(60, 8), true);
    assert!(drain(&peer_b).is_empty());
    assert!(drain(&relay_a).is_empty());
}

/// Two namespaces, each a host on its own veth link to this namespace,
/// which holds the relay addresses. Removed on drop.
struct TwoHosts {
    tag: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TwoHosts {
    fn new(tag: &str) -> Self {
        let t = Self { tag: tag.into() };
        t.cleanup();
        for (side, net) in [("a", 1), ("b", 2)] {
            let ns = t.ns(side);
            let (outer, inner) = (t.dev(side, 0), t.dev(side, 1));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&["addr", "add", &format!("10.213.{net}.1/24"), "dev", &outer]);
            ip(&["link", "set", &outer, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.213.{net}.2/24"),
                "dev",
                &inner,
            ]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.213.{net}.1"),
            ]);
        }
        t
    }
    fn ns(&self, side: &str) -> String {
        format!("{}{side}", self.tag)
    }
    fn dev(&self, side: &str, end: u8) -> String {
        format!("{}{side}{end}", self.tag)
    }
    fn cleanup(&self) {
        for side in ["a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(side)])
                .output();
        }
    }
    /// A UDP socket bound inside the namespace of `side`.
    fn socket_in(&self, side: &str, ip: &str) -> UdpSocket {
        let path = format!("/var/run/netns/{}", self.ns(side));
        let ip = ip.to_string();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on this thread only, with a namespace file we
            // hold open; the thread ends right after.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            udp(&ip)
        })
        .join()
        .unwrap()
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[test]
fn remote_peers_are_reached_through_the_neighbour_table() {
    if !root() {
        return;
    }
    let hosts = TwoHosts::new(&format!("kf{}", std::process::id() % 100_000));
    let fwd = KernelForwarder::attach(Some(&[hosts.dev("a", 0), hosts.dev("b", 0)])).unwrap();
    let peer_a = hosts.socket_in("a", "10.213.1.2");
    let peer_b = hosts.socket_in("b", "10.213.2.2");
    let relay_a = udp("10.213.1.1");
    let relay_b = udp("10.213.2.1");
    fwd.install(
        FlowKey {
            src: v4(&peer_a),
            dst: v4(&relay_a),
        },
        FlowAction {
            src: v4(&relay_b),
            dst: v4(&peer_b),
        },
    )
    .unwrap();
    for seq in 0..20 {
        peer_a
            .send_to(&rtp(seq, 0), relay_a.local_addr().unwrap())
            .unwrap();
    }
    let got = drain(&peer_b);
    // The first datagram may wait for ARP; none may be lost or misrouted.
    assert_eq!(got.len(), 20, "forwarded across the namespaces");
    assert!(got.iter().all(|(f, _)| *f == relay_b.local_addr().unwrap()));
    assert!(drain(&relay_a).is_empty());
    // The other direction is not installed: B's packets reach our socket.
    peer_b
        .send_to(&rtp(1, 0), relay_b.local_addr().unwrap())
        .unwrap();
    assert_eq!(drain(&relay_b).len(), 1);
    assert!(drain(&peer_a).is_empty());
}
