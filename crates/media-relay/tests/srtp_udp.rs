//! SRTP termination with real sockets: side A sends SRTP (protected with
//! media-srtp's own context, as a phone would), the relay authenticates and
//! decrypts it through `media_srtp::SrtpTransform`, and B receives plain
//! RTP. Also through the `relay-bench` line protocol's `srtp=` option.
#![cfg(feature = "srtp")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;

use common::*;
use media_relay::bench::{serve, Args};
use media_relay::{DropReason, LatchMode, Side};
use media_srtp::{MasterKey, SrtpContext, SrtpProfile, SrtpTransform};

const KEY: &[u8; 30] = b"sipwarden media bench test key";
const KEY_B64: &str = "c2lwd2FyZGVuIG1lZGlhIGJlbmNoIHRlc3Qga2V5";

fn master() -> MasterKey {
    MasterKey::from_concatenated(SrtpProfile::AesCm128HmacSha1_80, KEY).unwrap()
}

fn relay_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

fn protect(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 32, 0);
    let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

/// Sends SRTP from A until one plain packet arrives at B, a tampered one,
/// a replayed one, then more good ones; checks what B sees and the counters.
fn srtp_a_to_b(a: &UdpSocket, b: &UdpSocket, port_a: u16, port_b: u16) -> (u64, u64, u64) {
    let mut sender = SrtpContext::new(&master());
    for seq in 0..20u16 {
        let plain = rtp(0, seq, 0x5eed, 0x33);
        let sealed = protect(&mut sender, &plain);
        assert_eq!(sealed.len(), 172 + 10);
        assert_ne!(sealed[12..172], plain[12..], "payload is encrypted");
        a.send_to(&sealed, relay_addr(port_a)).unwrap();
        let (got, from) = recv(b).expect("decrypted packet reaches B");
        assert_eq!(got, plain, "B gets the plain RTP packet, tag removed");
        assert_eq!(from, relay_addr(port_b));
    }
    // Tampered: one payload bit flipped, so the tag no longer verifies.
    let mut forged = protect(&mut sender, &rtp(0, 20, 0x5eed, 0x33));
    forged[100] ^= 0x01;
    a.send_to(&forged, relay_addr(port_a)).unwrap();
    // Replayed: an earlier packet sent again verbatim.
    let mut replay_ctx = SrtpContext::new(&master());
    let old = protect(&mut replay_ctx, &rtp(0, 3, 0x5eed, 0x33));
    a.send_to(&old, relay_addr(port_a)).unwrap();
    // Then a good one again: it must be the next thing B receives.
    let plain = rtp(0, 21, 0x5eed, 0x44);
    a.send_to(&protect(&mut sender, &plain), relay_addr(port_a))
        .unwrap();
    let (got, _) = recv(b).expect("the relay still forwards after the drops");
    assert_eq!(
        got, plain,
        "neither the forged nor the replayed packet got through"
    );
    (20 + 1, 1, 1)
}

#[test]
fn srtp_from_a_is_decrypted_and_forgeries_are_counted() {
    let (relay, _events) = relay(
        22200,
        22299,
        LatchMode::Nat,
        std::time::Duration::from_secs(60),
    );
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
    relay
        .set_transform(
            id,
            0,
            Side::A,
            Some(Box::new(SrtpTransform::Decrypt(Box::new(
                SrtpContext::new(&master()),
            )))),
        )
        .unwrap();

    let (good, forged, replayed) = srtp_a_to_b(&a, &b, ports.a, ports.b);

    // B -> A stays plain: no transform in that direction.
    let p = rtp(0, 1, 0xb0b, 0x55);
    b.send_to(&p, relay_addr(ports.b)).unwrap();
    assert_eq!(recv(&a).expect("B's RTP reaches A").0, p);

    let s = relay.stats(id).unwrap().streams[0];
    assert_eq!(s.a_to_b.rtp_in, good + forged + replayed);
    assert_eq!(s.a_to_b.rtp_out, good);
    assert_eq!(s.a_to_b.bytes_out, good * 172);
    assert_eq!(s.a_to_b.drops.get(DropReason::TransformAuth), forged);
    assert_eq!(s.a_to_b.drops.get(DropReason::TransformReplay), replayed);
    assert_eq!(s.a_to_b.drops.total(), forged + replayed);
    assert_eq!((s.b_to_a.rtp_out, s.b_to_a.drops.total()), (1, 0));
    relay.release(id).unwrap();
}

#[test]
fn bench_protocol_takes_an_srtp_key_for_side_a() {
    let args = Args::parse(
        [
            "--addr",
            "127.0.0.1",
            "--port-min",
            "22300",
            "--port-max",
            "22399",
            "--workers",
            "1",
        ]
        .map(String::from),
    )
    .unwrap();
    let (mut cmd_w, cmd_r) = UnixStream::pair().unwrap();
    let (out_w, out_r) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || serve(&args, BufReader::new(cmd_r), out_w));
    let mut out = BufReader::new(out_r);
    let mut line = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    };
    assert_eq!(line(), "ready");
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let (la, lb) = (a.local_addr().unwrap(), b.local_addr().unwrap());

    // A key of the wrong length or not base64 is refused, and binds nothing.
    writeln!(cmd_w, "create bad {la} {lb} srtp=c2hvcnQ=").unwrap();
    assert_eq!(line(), "err bad srtp key: 5 octets, want 30");
    writeln!(cmd_w, "create bad {la} {lb} srtp=!!").unwrap();
    assert!(line().starts_with("err bad srtp key:"));
    writeln!(cmd_w, "create bad {la} {lb} fast=1").unwrap();
    assert_eq!(line(), "err bad unknown option fast=1");
    assert_eq!(bound_udp_ports(22300, 22399), Vec::<u16>::new());

    writeln!(cmd_w, "create c1 {la} {lb} srtp={KEY_B64}").unwrap();
    let reply = line();
    let w: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&w[..2], ["ok", "c1"], "{reply}");
    let (port_a, port_b): (u16, u16) = (w[2].parse().unwrap(), w[3].parse().unwrap());

    let (good, forged, replayed) = srtp_a_to_b(&a, &b, port_a, port_b);
    writeln!(cmd_w, "stats").unwrap();
    let stats = line();
    assert!(
        stats.contains(&format!("\"packets_out\":{good}"))
            && stats.contains(&format!("\"transform_auth\":{forged}"))
            && stats.contains(&format!("\"transform_replay\":{replayed}")),
        "{stats}"
    );
    writeln!(cmd_w, "delete c1").unwrap();
    assert_eq!(line(), "ok c1");
    drop(cmd_w);
    server.join().unwrap().unwrap();
}
