//! Helpers shared by the integration tests: a relay on loopback, RTP
//! endpoints, SDP.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media_relay::{LatchMode, LatchPolicy, MediaRelay, RelayConfig, ZoneConfig};

/// A relay with one zone `lo` on 127.0.0.1 over `min..=max`.
pub fn relay(
    min: u16,
    max: u16,
    mode: LatchMode,
    timeout: Duration,
) -> (
    MediaRelay,
    std::sync::mpsc::Receiver<media_relay::MediaEvent>,
) {
    relay_with_io(min, max, mode, timeout, true)
}

/// As [`relay`]; `io_uring: false` forces the epoll packet path.
pub fn relay_with_io(
    min: u16,
    max: u16,
    mode: LatchMode,
    timeout: Duration,
    io_uring: bool,
) -> (
    MediaRelay,
    std::sync::mpsc::Receiver<media_relay::MediaEvent>,
) {
    let cfg = RelayConfig {
        zones: vec![ZoneConfig {
            name: "lo".into(),
            bind: "127.0.0.1".parse().unwrap(),
            advertise: None,
            port_min: min,
            port_max: max,
            latch: LatchPolicy {
                mode,
                relatch_after_silence: None,
            },
        }],
        quarantine: Duration::from_secs(30),
        media_timeout: timeout,
        workers: 2,
        io_uring,
        ..RelayConfig::default()
    };
    MediaRelay::start(&cfg).unwrap()
}

pub fn sdp(addr: SocketAddr, mux: bool) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{}",
        if mux { "a=rtcp-mux\r\n" } else { "" },
        ip = addr.ip(),
        port = addr.port()
    )
    .into_bytes()
}

pub fn endpoint(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// An RTP packet: PT, sequence, SSRC, and a payload of `fill` octets.
pub fn rtp(pt: u8, seq: u16, ssrc: u32, fill: u8) -> [u8; 172] {
    let mut p = [fill; 172];
    p[0] = 0x80;
    p[1] = pt;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// An RTCP RR with one report block.
pub fn rtcp_rr(ssrc: u32, fraction: u8, cum: u32, jitter: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0x5555u32.to_be_bytes());
    p.extend_from_slice(&((u32::from(fraction) << 24) | cum).to_be_bytes());
    p.extend_from_slice(&100u32.to_be_bytes());
    p.extend_from_slice(&jitter.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p
}

/// Local UDP ports in `min..=max` that the kernel lists as bound by anyone
/// (IPv4 and IPv6 tables).
pub fn bound_udp_ports(min: u16, max: u16) -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let Some(local) = line.split_whitespace().nth(1) else {
                continue;
            };
            let Some((_, port_hex)) = local.rsplit_once(':') else {
                continue;
            };
            if let Ok(p) = u16::from_str_radix(port_hex, 16) {
                if (min..=max).contains(&p) {
                    ports.push(p);
                }
            }
        }
    }
    ports.sort_unstable();
    ports
}

/// Two sockets on consecutive ports (RTP even... or not, RTCP = RTP + 1),
/// as a phone without `a=rtcp` uses them.
pub fn endpoint_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = endpoint("127.0.0.1");
        let port = rtp.local_addr().unwrap().port();
        if port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            rtcp.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            return (rtp, rtcp);
        }
    }
    panic!("no two consecutive free ports");
}

/// The IPv4 sockets bound to `port` on 127.0.0.1 per `/proc/net/udp`: the
/// remote address of each (`None`: unconnected).
pub fn sockets_on_port(port: u16) -> Vec<Option<SocketAddr>> {
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else {
        return Vec::new();
    };
    let parse = |field: &str| -> Option<SocketAddr> {
        let (ip, p) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let p = u16::from_str_radix(p, 16).ok()?;
        // The kernel prints the address as a native-endian word.
        Some(SocketAddr::from((ip.to_ne_bytes(), p)))
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let mut f = line.split_whitespace();
        let (Some(local), Some(remote)) = (f.nth(1).and_then(parse), f.next().and_then(parse))
        else {
            continue;
        };
        if local.port() == port {
            out.push((remote.port() != 0).then_some(remote));
        }
    }
    out.sort();
    out
}
