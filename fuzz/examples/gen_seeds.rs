//! Writes binary seed files for the fuzz targets whose inputs are packets, built with the
//! crates themselves: STUN messages (`stun::MessageBuilder`), RTP/RTCP, SRTP/SRTCP protected
//! by `media_srtp` with the key of the `srtp` target, SDES lines printed by `media_srtp`, and
//! RADIUS answers encoded by `auth::radius::codec`. Called by `seed.sh`:
//!
//! ```sh
//! cargo run --example gen_seeds -- fuzz/corpus
//! ```

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use auth::radius::codec::{self, attr, code};
use media_srtp::sdes::SdesCrypto;
use media_srtp::{MasterKey, SrtpContext, SrtpProfile, MAX_OVERHEAD};
use stun::{Class, MessageBuilder, TransactionId, BINDING};

/// The same key and salt as `fuzz_targets/srtp.rs`.
const KEY: [u8; 16] = [
    0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B, 0xE0, 0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39,
];
const SALT: [u8; 14] = [
    0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE, 0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6,
];

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
}

fn rtp(seq: u16, ssrc: u32, pt: u8, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload).map(|i| (i * 7) as u8));
    p
}

/// An RTP packet with one CSRC and a one-byte-header extension (RFC 8285).
fn rtp_ext() -> Vec<u8> {
    let mut p = vec![
        0x91, 0x60, 0x12, 0x34, 0, 0, 0x10, 0, 0xca, 0xfe, 0xba, 0xbe,
    ];
    p.extend_from_slice(&[0, 0, 0, 9]); // CSRC
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // extension, 1 word
    p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    p
}

/// An RR about `about` with one report block, followed by an SDES CNAME.
fn rtcp_rr(ssrc: u32, about: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&about.to_be_bytes());
    p.extend_from_slice(&[0x10, 0xff, 0xff, 0xfe]); // fraction 16/256, cumulative -2
    p.extend_from_slice(&0x0001_0203u32.to_be_bytes()); // highest seq
    p.extend_from_slice(&42u32.to_be_bytes()); // jitter
    p.extend_from_slice(&[0; 8]); // LSR, DLSR
                                  // SDES: one chunk, CNAME "fz", end, padding to a word.
    p.extend_from_slice(&[0x81, 202, 0, 2]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 2, b'f', b'z']);
    p
}

/// An SR with sender info and one report block.
fn rtcp_sr(ssrc: u32, about: u32) -> Vec<u8> {
    let mut p = vec![0x81, 200, 0, 12];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xe8, 0, 0, 0, 0, 0, 0, 0]); // NTP
    p.extend_from_slice(&[0, 0, 0x3e, 0x80]); // RTP ts
    p.extend_from_slice(&[0, 0, 0, 50, 0, 0, 0x1f, 0x40]); // packets, octets
    p.extend_from_slice(&about.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 100, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
    p
}

fn stun_seeds(out: &Out) {
    let tid = TransactionId(*b"sipwarden-fz");
    let plain = MessageBuilder::new(BINDING, Class::Request, tid).finish(false);
    out.put("stun", "binding-request", &plain);
    let fp = MessageBuilder::new(BINDING, Class::Request, tid).finish(true);
    out.put("stun", "binding-request-fingerprint", &fp);
    let mut b = MessageBuilder::new(BINDING, Class::Request, tid);
    b.attribute(stun::attr::USERNAME, b"fzuser:peer")
        .expect("fits");
    b.attribute(stun::attr::PRIORITY, &0x6e00_1eff_u32.to_be_bytes())
        .expect("fits");
    b.attribute(stun::attr::ICE_CONTROLLING, &[1, 2, 3, 4, 5, 6, 7, 8])
        .expect("fits");
    b.attribute(stun::attr::USE_CANDIDATE, &[]).expect("fits");
    b.attribute(stun::attr::MESSAGE_INTEGRITY, &[0x5a; 20])
        .expect("fits");
    out.put("stun", "binding-request-ice", &b.finish(true));
    let mut b = MessageBuilder::new(BINDING, Class::Request, tid);
    b.attribute(0x0003, &[0, 0, 0, 0]).expect("fits"); // CHANGE-REQUEST: not understood
    b.attribute(0x7777, b"odd").expect("fits");
    out.put("stun", "binding-request-unknown", &b.finish(true));
    let ind = MessageBuilder::new(BINDING, Class::Indication, tid).finish(true);
    out.put("stun", "binding-indication", &ind);
    let alloc = MessageBuilder::new(0x003, Class::Request, tid).finish(false);
    out.put("stun", "allocate-request", &alloc);
    for (name, a) in [
        ("v4", "192.0.2.1:32853"),
        ("v6", "[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
    ] {
        let a: SocketAddr = a.parse().expect("literal");
        let mut b = MessageBuilder::new(BINDING, Class::SuccessResponse, tid);
        b.xor_mapped_address(a).expect("fits");
        b.attribute(stun::attr::SOFTWARE, b"fz").expect("fits");
        out.put("stun", &format!("success-{name}"), &b.finish(true));
    }
    let mut b = MessageBuilder::new(BINDING, Class::ErrorResponse, tid);
    b.error_code(420, "Unknown Attribute").expect("fits");
    b.unknown_attributes(&[0x0003]).expect("fits");
    out.put("stun", "error-420", &b.finish(false));
}

fn rtp_seeds(out: &Out) {
    let (a, b) = (0x1111_1111, 0x2222_2222);
    // Raw packets: the parsers see them whole.
    out.put("rtp", "raw-rtp", &rtp(1, a, 0, 160));
    out.put("rtp", "raw-rtp-ext", &rtp_ext());
    out.put("rtp", "raw-rr", &rtcp_rr(a, b));
    out.put("rtp", "raw-sr", &rtcp_sr(a, b));
    // Sessions: setup byte, then (ctl, len, packet) records.
    let rec = |ctl: u8, p: &[u8]| {
        let mut r = vec![ctl, p.len().min(255) as u8];
        r.extend_from_slice(&p[..p.len().min(255)]);
        r
    };
    for (name, setup) in [
        ("nat-mux", 0x3a_u8),
        ("strict", 0x00),
        ("sdp-relatch", 0x45),
    ] {
        let mut s = vec![setup];
        s.extend(rec(0x00, &rtp(1, a, 0, 40)));
        s.extend(rec(0x11, &rtp(7, b, 0, 40)));
        s.extend(rec(0x10, &rtcp_rr(a, b)));
        s.extend(rec(0x13, &rtcp_sr(b, a)));
        s.extend(rec(0x04, &rtp(2, a, 0, 40))); // from another port
        s.extend(rec(0xf8, &rtp(3, a, 0, 40))); // from a stranger, 1.5 s later
        s.extend(rec(0xf0, &rtp(4, a, 0, 40)));
        s.extend(rec(0x01, &rtp_ext()));
        out.put("rtp", &format!("session-{name}"), &s);
    }
}

fn srtp_seeds(out: &Out) {
    for (i, p) in SrtpProfile::ALL.into_iter().enumerate() {
        let i = i as u8;
        let key = MasterKey::new(p, &KEY, &SALT[..p.salt_len()]).expect("fixed key");
        for (kind, rtcp, pkt) in [
            ("rtp", false, rtp(1, 0xdead_beef, 0, 160)),
            ("rtp-ext", false, rtp_ext()),
            ("rtcp", true, rtcp_rr(0xdead_beef, 0x1234_5678)),
        ] {
            let flags = i | if rtcp { 4 } else { 0 };
            // Round trip: the plain packet, one byte altered after protection.
            let mut s = vec![flags, 0, 20, 0x01];
            s.extend_from_slice(&pkt);
            out.put("srtp", &format!("{}-{kind}-plain", p.name()), &s);
            // Raw: what a peer with this key sends.
            let mut c = SrtpContext::new(&key);
            let mut buf = pkt.clone();
            buf.resize(pkt.len() + MAX_OVERHEAD, 0);
            let n = if rtcp {
                c.protect_rtcp(&mut buf, pkt.len())
            } else {
                c.protect_rtp(&mut buf, pkt.len())
            }
            .expect("protect");
            let mut s = vec![flags | 8, 0, 0, 0];
            s.extend_from_slice(&buf[..n]);
            out.put("srtp", &format!("{}-{kind}-protected", p.name()), &s);
        }
    }
}

fn sdes_seeds(out: &Out) {
    // RFC 4568 section 3.1's example line, which carries an MKI.
    out.put(
        "sdes",
        "rfc4568",
        b"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
    );
    let mut all = Vec::new();
    for (i, p) in SrtpProfile::ALL.into_iter().enumerate() {
        let key = MasterKey::new(p, &KEY, &SALT[..p.salt_len()]).expect("fixed key");
        let mut c = SdesCrypto {
            tag: i as u32 + 1,
            key,
            lifetime: None,
        };
        let line = c.to_string();
        out.put("sdes", p.name(), line.as_bytes());
        all.extend_from_slice(line.as_bytes());
        all.push(b'\n');
        c.lifetime = Some(1 << 31);
        out.put(
            "sdes",
            &format!("{}-lifetime", p.name()),
            c.to_string().as_bytes(),
        );
    }
    out.put("sdes", "three-lines", &all);
    out.put(
        "sdes",
        "session-params",
        b"2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|1000 KDR=1 WSH=64",
    );
}

fn radius_seeds(out: &Out) {
    let auth = [0u8; 16];
    let reply = |c: u8, attrs: &[(u8, Vec<u8>)], ma: bool| {
        codec::encode(c, 0, &auth, attrs, ma).expect("encode")
    };
    let msg = |s: &str| vec![(attr::REPLY_MESSAGE, s.as_bytes().to_vec())];
    for (name, flags, bytes) in [
        ("accept", 1u8, reply(code::ACCESS_ACCEPT, &[], true)),
        (
            "accept-attrs",
            1,
            reply(
                code::ACCESS_ACCEPT,
                &[
                    (attr::DIGEST_RESPONSE_AUTH, b"6629fae4".to_vec()),
                    (attr::SERVICE_TYPE, 15u32.to_be_bytes().to_vec()),
                ],
                true,
            ),
        ),
        ("reject", 1, reply(code::ACCESS_REJECT, &msg("no"), true)),
        (
            "challenge",
            1,
            reply(code::ACCESS_CHALLENGE, &msg("more"), true),
        ),
        ("accept-no-ma", 3, reply(code::ACCESS_ACCEPT, &[], false)),
        (
            "accept-no-ma-required",
            1,
            reply(code::ACCESS_ACCEPT, &[], false),
        ),
        ("accept-stranger", 5, reply(code::ACCESS_ACCEPT, &[], true)),
        ("accept-unsigned", 0, reply(code::ACCESS_ACCEPT, &[], true)),
        (
            "request",
            1,
            reply(code::ACCESS_REQUEST, &msg("a request"), true),
        ),
    ] {
        let mut s = vec![flags];
        s.extend_from_slice(&bytes);
        out.put("radius", name, &s);
    }
    // Padding after Length.
    let mut s = vec![1u8];
    s.extend_from_slice(&reply(code::ACCESS_REJECT, &[], true));
    s.extend_from_slice(&[0; 7]);
    out.put("radius", "reject-padded", &s);
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let out = Out(Path::new(&dir).to_path_buf());
    stun_seeds(&out);
    rtp_seeds(&out);
    srtp_seeds(&out);
    sdes_seeds(&out);
    radius_seeds(&out);
}
