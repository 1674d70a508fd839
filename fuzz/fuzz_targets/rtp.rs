//! The relay's RTP/RTCP parsing (`media_relay::rtp`) on arbitrary bytes, and the sans-IO
//! `MediaSession::on_packet` on a sequence of datagrams with a simulated clock.
//!
//! Input: byte 0 = session setup (bits 0-1 latch mode of A, 2-3 of B, bit 4 A's SDP has
//! rtcp-mux, bit 5 B's, bit 6 relatch after 1 s of silence, bit 7 B has no SDP yet); then
//! records of 2 header bytes (bit 0 side, bit 1 RTCP socket, bits 2-3 source, bits 4-7 time
//! step in 100 ms; then the length) and the datagram.
//!
//! Checks: `check_rtp`/`check_rtcp` accept only a version-2 header that fits; a report block
//! has a 24-bit cumulative loss; every datagram is either forwarded or dropped and counted once
//! (`in = out + drops` per direction); a forward goes out of the other leg, to the address that
//! leg latched or announced, with the received length, and only for a datagram whose header
//! checks; a malformed drop only for one that does not; the media timeout fires once.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use media_relay::rtp::{
    check_rtcp, check_rtp, last_report_block, looks_like_rtcp, Malformed, ReportBlock,
};
use media_relay::{
    DropReason, LatchMode, LatchPolicy, MediaSession, PeerAddrs, Side, SocketKind, Verdict,
    TRANSFORM_HEADROOM,
};

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// RFC 3550 6.4: walks the compound packet part by part and stops, keeping what it found, at
/// the first part whose header is not RTCP version 2 or whose length runs past the datagram
/// (trailing octets, an SRTCP trailer, an encrypted payload), or after 64 parts. The last
/// complete report block of an SR (after 20 octets of sender info) or RR wins.
fn reference_report_block(buf: &[u8]) -> Option<ReportBlock> {
    let mut at = 0;
    let mut found = None;
    for _ in 0..64 {
        if at + 4 > buf.len() || buf[at] >> 6 != 2 {
            break;
        }
        let len = (usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])) + 1) * 4;
        if at + len > buf.len() {
            break;
        }
        let first = match buf[at + 1] {
            200 => Some(at + 28),
            201 => Some(at + 8),
            _ => None,
        };
        if let Some(first) = first {
            for i in 0..usize::from(buf[at] & 0x1f) {
                let b = first + 24 * i;
                if b + 24 > at + len {
                    break;
                }
                let lost = be32(buf, b + 4);
                found = Some(ReportBlock {
                    ssrc: be32(buf, b),
                    fraction_lost: (lost >> 24) as u8,
                    cumulative_lost: ((lost << 8) as i32) >> 8,
                    highest_seq: be32(buf, b + 8),
                    jitter: be32(buf, b + 12),
                });
            }
        }
        at += len;
    }
    found
}

fn check_parsers(data: &[u8]) {
    match check_rtp(data) {
        Ok(()) => {
            assert!(data.len() >= 12 && data[0] >> 6 == 2);
            let cc = usize::from(data[0] & 0x0f);
            assert!(12 + 4 * cc <= data.len(), "CSRC list beyond the packet");
        }
        Err(Malformed::TooShort) => assert!(data.len() < 12),
        Err(Malformed::BadVersion) => assert!(data.len() >= 12 && data[0] >> 6 != 2),
        Err(Malformed::BadHeader) => {}
    }
    match check_rtcp(data) {
        Ok(()) => {
            assert!(data.len() >= 8 && data[0] >> 6 == 2 && looks_like_rtcp(data));
            let words = usize::from(u16::from_be_bytes([data[2], data[3]]));
            assert!(
                (words + 1) * 4 <= data.len(),
                "RTCP length beyond the packet"
            );
        }
        Err(Malformed::TooShort) => assert!(data.len() < 8),
        Err(_) => {}
    }
    assert_eq!(
        last_report_block(data),
        reference_report_block(data),
        "last_report_block differs from the reference walk"
    );
    if let Some(b) = last_report_block(data) {
        assert!((-(1 << 23)..(1 << 23)).contains(&b.cumulative_lost));
        // A report block lies in an SR or RR of at least 8 + 24 octets.
        assert!(data.len() >= 32);
    }
}

fn mode(bits: u8) -> LatchMode {
    match bits & 3 {
        0 => LatchMode::Strict,
        1 => LatchMode::SdpAddress,
        _ => LatchMode::Nat,
    }
}

const A_RTP: &str = "10.0.0.2:4000";
const A_RTCP: &str = "10.0.0.2:4001";
const B_RTP: &str = "198.51.100.9:6000";
const B_RTCP: &str = "198.51.100.9:6001";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address")
}

fn source(side: Side, sel: u8, socket: SocketKind) -> SocketAddr {
    let (rtp, rtcp) = match side {
        Side::A => (A_RTP, A_RTCP),
        Side::B => (B_RTP, B_RTCP),
    };
    let own = addr(if socket == SocketKind::Rtcp {
        rtcp
    } else {
        rtp
    });
    match sel & 3 {
        0 => own,
        1 => SocketAddr::new(own.ip(), own.port().wrapping_add(100)),
        2 => addr("203.0.113.66:4000"),
        _ => SocketAddr::new(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7]), own.port()),
    }
}

fn check_session(data: &[u8]) {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let timeout = Duration::from_secs(5);
    let mut s = MediaSession::new(now, timeout);
    let relatch = (setup & 0x40 != 0).then_some(Duration::from_secs(1));
    let policy = |bits| LatchPolicy {
        mode: mode(bits),
        relatch_after_silence: relatch,
    };
    assert!(s.add_stream(0, [policy(setup), policy(setup >> 2)]));
    let peer = |rtp, rtcp, mux| PeerAddrs {
        rtp: Some(addr(rtp)),
        rtcp: Some(addr(rtcp)),
        rtcp_mux: mux,
    };
    s.set_peer(now, 0, Side::A, peer(A_RTP, A_RTCP, setup & 0x10 != 0));
    if setup & 0x80 == 0 {
        s.set_peer(now, 0, Side::B, peer(B_RTP, B_RTCP, setup & 0x20 != 0));
    }
    for side in [Side::A, Side::B] {
        s.set_rtcp_socket(0, side, true);
    }
    let mut received = [0u64; 2];
    let mut timeouts = 0;
    let mut buf = [0u8; 1500 + TRANSFORM_HEADROOM];
    while let [ctl, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (pkt, next) = tail.split_at(n);
        rest = next;
        let at = if ctl & 1 == 0 { Side::A } else { Side::B };
        let socket = if ctl & 2 == 0 {
            SocketKind::Rtp
        } else {
            SocketKind::Rtcp
        };
        now += Duration::from_millis(100 * u64::from(ctl >> 4));
        if s.handle_timeout(now).is_some() {
            timeouts += 1;
            assert!(
                s.poll_timeout().is_none(),
                "a reported timeout stays reported"
            );
        }
        let src = source(at, ctl >> 2, socket);
        buf[..n].copy_from_slice(pkt);
        let before = s.stream(0).map(|st| st.latch_state(at, socket));
        let v = s.on_packet(now, 0, at, socket, src, &mut buf, n);
        received[at.index()] += 1;
        let is_rtcp = socket == SocketKind::Rtcp || looks_like_rtcp(pkt);
        let checked = if is_rtcp {
            check_rtcp(pkt)
        } else {
            check_rtp(pkt)
        };
        let stream = s.stream(0).expect("stream 0 exists");
        match v {
            Verdict::Forward {
                side,
                socket: out,
                dst,
                len,
            } => {
                assert!(checked.is_ok(), "forwarded a malformed packet");
                assert_eq!(side, at.other());
                assert_eq!(len, n, "no transform: the length must not change");
                assert_eq!(&buf[..n], pkt, "no transform: the bytes must not change");
                if out == SocketKind::Rtp {
                    assert_eq!(Some(dst), stream.rtp_destination(side));
                } else {
                    assert!(is_rtcp && !stream.rtcp_mux());
                }
                assert!(!dst.ip().is_unspecified() && dst.port() != 0);
                assert!(s.poll_timeout().is_some(), "media re-arms the timeout");
            }
            Verdict::Drop(DropReason::Malformed) | Verdict::Drop(DropReason::BadLength) => {
                assert!(
                    checked.is_err(),
                    "dropped a well-formed packet as malformed"
                );
                assert_eq!(
                    before,
                    Some(stream.latch_state(at, socket)),
                    "a malformed packet moved the latch"
                );
            }
            Verdict::Drop(r) => {
                assert!(checked.is_ok(), "{r:?} for a malformed packet");
                assert!(matches!(
                    r,
                    DropReason::UnexpectedSource
                        | DropReason::SourceLocked
                        | DropReason::NoDestination
                ));
            }
        }
        if let (Some(l), _) = stream.latch_state(at, socket) {
            // Only a packet that passed is latched: the latch is the old one or this source.
            assert!(
                before.and_then(|b| b.0) == Some(l) || l == src,
                "latched a stranger"
            );
        }
    }
    // At most one report per silence: a forward or a new SDP re-arms it, and there are none
    // of the latter here.
    assert!(timeouts <= 1 + (st_forwards(&s) as usize));
    let stats = s.stats();
    assert_eq!(stats.streams.len(), 1);
    let st = &stats.streams[0];
    for (d, n) in [(&st.a_to_b, received[0]), (&st.b_to_a, received[1])] {
        assert_eq!(d.rtp_in + d.rtcp_in, n, "every datagram counted once");
        assert_eq!(
            d.rtp_out + d.rtcp_out + d.drops.total(),
            n,
            "every datagram forwarded or dropped"
        );
        assert!(d.bytes_out <= d.bytes_in);
    }
}

fn st_forwards(s: &MediaSession) -> u64 {
    s.stats()
        .streams
        .iter()
        .map(|st| st.a_to_b.rtp_out + st.a_to_b.rtcp_out + st.b_to_a.rtp_out + st.b_to_a.rtcp_out)
        .sum()
}

fuzz_target!(|data: &[u8]| {
    check_parsers(data);
    check_session(data);
});
