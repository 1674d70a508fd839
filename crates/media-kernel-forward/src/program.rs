//! The forwarding program and the layout of its flow table.
//!
//! The program runs at tc ingress (tcx) of every attached interface. For an
//! IPv4/UDP datagram with a plain 20-byte IP header, not a fragment, that
//! looks like RTP (version 2, not an RTCP payload type in the RFC 5761
//! range), it looks up {source, destination, ports} in the flow table. On a
//! hit it counts the datagram, rewrites both addresses and both ports with
//! checksum updates the user side computed in advance, and sends it on:
//! back up the stack when the new destination is local and it came in on
//! that same device, to the local device otherwise, and out of the egress
//! device through the neighbour table for remote peers. Everything else
//! (RTCP, unknown flows, strangers, IPv6, VLAN headers the program does not
//! parse) goes on unchanged to the relay's sockets, so the user-space relay
//! keeps every decision it makes today.

use crate::asm::{Asm, AsmError, Cond, Size, R0, R1, R10, R2, R3, R4, R5, R6, R7};
use crate::{FlowAction, FlowKey};

/// Bytes of a flow key: source address, destination address, source port,
/// destination port, in network order, exactly as they sit in the IPv4 and
/// UDP headers (offsets 12 to 24 of the IP header), so the program copies
/// them in three words.
pub(crate) const KEY_SIZE: usize = 12;

// Offsets in a flow-table value.
const V_REWRITE: i16 = 0; // 12 bytes: the new addresses and ports
const V_FLAGS: i16 = 12;
const V_IFINDEX: i16 = 16;
const V_ADDR_DIFF: i16 = 20;
const V_PORT_DIFF: i16 = 24;
// 28..32: padding, so that the counters are 8-byte aligned.
pub(crate) const V_PACKETS: usize = 32;
pub(crate) const V_BYTES: usize = 40;
pub(crate) const V_LAST_NS: usize = 48;
pub(crate) const VALUE_SIZE: usize = 56;

/// The new destination is an address of this host.
pub(crate) const FLAG_LOCAL: u32 = 1;

// `struct __sk_buff` offsets (uapi linux/bpf.h).
const SKB_LEN: i16 = 0;
const SKB_PROTOCOL: i16 = 16;
const SKB_INGRESS_IFINDEX: i16 = 36;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
const SKB_GSO_SIZE: i16 = 176;

// Helper function numbers (uapi linux/bpf.h `__BPF_FUNC_MAPPER`).
const MAP_LOOKUP_ELEM: i32 = 1;
const KTIME_GET_NS: i32 = 5;
const SKB_STORE_BYTES: i32 = 9;
const L3_CSUM_REPLACE: i32 = 10;
const L4_CSUM_REPLACE: i32 = 11;
const REDIRECT: i32 = 23;
const REDIRECT_NEIGH: i32 = 152;

// Checksum helper flags: the low bits give the field size, 0 meaning `to`
// is a precomputed difference.
const F_PSEUDO_HDR: i32 = 1 << 4;
const F_MARK_MANGLED_0: i32 = 1 << 5;

// tcx verdicts.
const TCX_NEXT: i32 = -1;
const TCX_PASS: i32 = 0;
const TCX_DROP: i32 = 2;

// Packet offsets: 14-byte Ethernet header (also on loopback), 20-byte IPv4
// header, 8-byte UDP header, then RTP.
const ETH_LEN: i32 = 14;
const IP_VER_IHL: i16 = 14;
const IP_FRAG: i16 = 20;
const IP_PROTO: i16 = 23;
const IP_CSUM: i32 = 24;
const IP_SADDR: i16 = 26;
const UDP_CSUM: i32 = 40;
const RTP: i16 = 42;
/// Up to the end of a minimal RTP header.
const MIN_LEN: i32 = 54;
const HEADERS: i32 = 42;

/// Assembles the program for the flow table `map_fd`.
pub(crate) fn forwarder(map_fd: i32) -> Result<Vec<u64>, AsmError> {
    let mut a = Asm::default();
    let pass = a.new_label();
    let drop = a.new_label();
    let key = a.new_label();
    let local = a.new_label();
    let to_local_dev = a.new_label();

    a.mov_reg(R6, R1);
    // IPv4 only (`protocol` holds the big-endian EtherType).
    a.load(Size::W, R2, R6, SKB_PROTOCOL);
    a.jump_imm(Cond::Ne, R2, i32::from(0x0800u16.to_be()), pass);
    // A GSO/GRO super-packet carries several datagrams: not ours to split.
    a.load(Size::W, R2, R6, SKB_GSO_SIZE);
    a.jump_imm(Cond::Ne, R2, 0, pass);
    a.load(Size::W, R2, R6, SKB_DATA);
    a.load(Size::W, R3, R6, SKB_DATA_END);
    a.mov_reg(R4, R2);
    a.add_imm(R4, MIN_LEN);
    a.jump_reg(Cond::Gt, R4, R3, pass);
    // The EtherType in the frame itself: a VLAN tag would shift everything.
    a.load(Size::H, R5, R2, 12);
    a.jump_imm(Cond::Ne, R5, i32::from(0x0800u16.to_be()), pass);
    // Version 4, 20-byte header (options are rare and left to the sockets).
    a.load(Size::B, R5, R2, IP_VER_IHL);
    a.jump_imm(Cond::Ne, R5, 0x45, pass);
    a.load(Size::B, R5, R2, IP_PROTO);
    a.jump_imm(Cond::Ne, R5, 17, pass);
    // Neither "more fragments" nor an offset: only whole datagrams.
    a.load(Size::H, R5, R2, IP_FRAG);
    a.and_imm(R5, i32::from(0x3fffu16.to_be()));
    a.jump_imm(Cond::Ne, R5, 0, pass);
    // RTP version 2.
    a.load(Size::B, R5, R2, RTP);
    a.and_imm(R5, 0xc0);
    a.jump_imm(Cond::Ne, R5, 0x80, pass);
    // RTCP (payload types 192-223 with the marker bit, RFC 5761 section
    // 4) goes to the relay, which reads its reports.
    a.load(Size::B, R5, R2, RTP + 1);
    a.and_imm(R5, 0x7f);
    a.jump_imm(Cond::Lt, R5, 64, key);
    a.jump_imm(Cond::Gt, R5, 95, key);
    a.jump(pass);

    a.label(key);
    for (i, off) in [0i16, 4, 8].into_iter().enumerate() {
        a.load(Size::W, R5, R2, IP_SADDR + off);
        a.store(Size::W, R10, -16 + 4 * i as i16, R5);
    }
    a.load_map_fd(R1, map_fd);
    a.mov_reg(R2, R10);
    a.add_imm(R2, -16);
    a.call(MAP_LOOKUP_ELEM);
    a.jump_imm(Cond::Eq, R0, 0, pass);
    a.mov_reg(R7, R0);

    // Counters: atomic, since a flow may arrive on several CPUs.
    a.mov_imm(R1, 1);
    a.atomic_add64(R7, V_PACKETS as i16, R1);
    a.load(Size::W, R1, R6, SKB_LEN);
    a.add_imm(R1, -HEADERS);
    a.atomic_add64(R7, V_BYTES as i16, R1);
    a.call(KTIME_GET_NS);
    a.store(Size::DW, R7, V_LAST_NS as i16, R0);

    // Checksums first (from the differences in the value), then the
    // fields. The helpers know the skb's checksum state: with a partial
    // checksum (local senders) only the pseudo-header part is updated.
    a.mov_reg(R1, R6);
    a.mov_imm(R2, ETH_LEN + 10);
    a.mov_imm(R3, 0);
    a.load(Size::W, R4, R7, V_ADDR_DIFF);
    a.mov_imm(R5, 0);
    a.call(L3_CSUM_REPLACE);
    a.jump_imm(Cond::Ne, R0, 0, drop);
    debug_assert_eq!(ETH_LEN + 10, IP_CSUM);
    a.mov_reg(R1, R6);
    a.mov_imm(R2, UDP_CSUM);
    a.mov_imm(R3, 0);
    a.load(Size::W, R4, R7, V_ADDR_DIFF);
    a.mov_imm(R5, F_PSEUDO_HDR | F_MARK_MANGLED_0);
    a.call(L4_CSUM_REPLACE);
    a.jump_imm(Cond::Ne, R0, 0, drop);
    a.mov_reg(R1, R6);
    a.mov_imm(R2, UDP_CSUM);
    a.mov_imm(R3, 0);
    a.load(Size::W, R4, R7, V_PORT_DIFF);
    a.mov_imm(R5, F_MARK_MANGLED_0);
    a.call(L4_CSUM_REPLACE);
    a.jump_imm(Cond::Ne, R0, 0, drop);
    a.mov_reg(R1, R6);
    a.mov_imm(R2, i32::from(IP_SADDR));
    a.mov_reg(R3, R7);
    a.add_imm(R3, i32::from(V_REWRITE));
    a.mov_imm(R4, KEY_SIZE as i32);
    a.mov_imm(R5, 0);
    a.call(SKB_STORE_BYTES);
    a.jump_imm(Cond::Ne, R0, 0, drop);

    a.load(Size::W, R1, R7, V_IFINDEX);
    a.load(Size::W, R2, R7, V_FLAGS);
    a.jump_imm(Cond::Set, R2, FLAG_LOCAL as i32, local);
    // Remote: the kernel routes from the new addresses out of the given
    // device and fills in the link-layer header from its neighbour table.
    a.mov_imm(R2, 0);
    a.mov_imm(R3, 0);
    a.mov_imm(R4, 0);
    a.call(REDIRECT_NEIGH);
    a.exit();

    a.label(local);
    // A local destination reached from the same (loopback) device: carry
    // on up the stack, which now delivers to the new port.
    a.load(Size::W, R3, R6, SKB_INGRESS_IFINDEX);
    a.jump_reg(Cond::Ne, R3, R1, to_local_dev);
    a.mov_imm(R0, TCX_PASS);
    a.exit();
    a.label(to_local_dev);
    a.mov_imm(R2, 0);
    a.call(REDIRECT);
    a.exit();

    // A helper failed half way: the datagram may be half rewritten.
    a.label(drop);
    a.mov_imm(R0, TCX_DROP);
    a.exit();

    a.label(pass);
    a.mov_imm(R0, TCX_NEXT);
    a.exit();
    a.finish()
}

/// The key bytes of a flow, as the program reads them from the headers.
pub(crate) fn key_bytes(key: &FlowKey) -> [u8; KEY_SIZE] {
    addr_port_bytes(key.src, key.dst)
}

fn addr_port_bytes(src: std::net::SocketAddrV4, dst: std::net::SocketAddrV4) -> [u8; KEY_SIZE] {
    let mut b = [0u8; KEY_SIZE];
    b[0..4].copy_from_slice(&src.ip().octets());
    b[4..8].copy_from_slice(&dst.ip().octets());
    b[8..10].copy_from_slice(&src.port().to_be_bytes());
    b[10..12].copy_from_slice(&dst.port().to_be_bytes());
    b
}

/// A value with zero counters.
pub(crate) fn value_bytes(
    key: &FlowKey,
    action: &FlowAction,
    ifindex: u32,
    local: bool,
) -> [u8; VALUE_SIZE] {
    let old = key_bytes(key);
    let new = addr_port_bytes(action.src, action.dst);
    let mut v = [0u8; VALUE_SIZE];
    v[0..12].copy_from_slice(&new);
    let flags = if local { FLAG_LOCAL } else { 0 };
    v[12..16].copy_from_slice(&flags.to_ne_bytes());
    v[16..20].copy_from_slice(&ifindex.to_ne_bytes());
    v[20..24].copy_from_slice(&csum_diff(&old[0..8], &new[0..8]).to_ne_bytes());
    v[24..28].copy_from_slice(&csum_diff(&old[8..12], &new[8..12]).to_ne_bytes());
    v
}

/// One's-complement addition with end-around carry, as the kernel's
/// `csum_add` on a 32-bit partial sum.
fn csum_add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u32::from(carry))
}

/// The partial-sum difference the kernel's `bpf_csum_diff` would give for
/// replacing the 32-bit words `old` by `new`. Words are read in the host's
/// byte order, as the kernel's checksum code reads memory; folding makes
/// the result the same 16-bit checksum update either way.
pub(crate) fn csum_diff(old: &[u8], new: &[u8]) -> u32 {
    let words = |b: &[u8]| -> Vec<u32> {
        b.chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_ne_bytes(w)
            })
            .collect()
    };
    let mut sum = 0u32;
    for w in words(old) {
        sum = csum_add(sum, !w);
    }
    for w in words(new) {
        sum = csum_add(sum, w);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 checksum over 16-bit big-endian words.
    fn rfc1071(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in data.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// What the kernel's `csum_replace_by_diff` does to a stored checksum.
    fn apply(stored: [u8; 2], diff: u32) -> [u8; 2] {
        let old = u16::from_ne_bytes(stored);
        let mut s = csum_add(diff, u32::from(!old));
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        (!(s as u16)).to_ne_bytes()
    }

    fn ip_header(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0xb8, 0x00, 0xc8, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0, 0,
        ];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = rfc1071(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn the_address_difference_fixes_the_ip_checksum() {
        let cases = [
            (
                [10, 0, 0, 2],
                [192, 0, 2, 1],
                [192, 0, 2, 1],
                [203, 0, 113, 9],
            ),
            (
                [127, 0, 0, 1],
                [127, 0, 0, 1],
                [127, 0, 0, 1],
                [127, 0, 0, 1],
            ),
            (
                [255, 255, 255, 255],
                [0, 0, 0, 0],
                [0, 0, 0, 1],
                [255, 255, 255, 254],
            ),
        ];
        for (s, d, ns, nd) in cases {
            let before = ip_header(s, d);
            let after = ip_header(ns, nd);
            let old: Vec<u8> = [s, d].concat();
            let new: Vec<u8> = [ns, nd].concat();
            let fixed = apply([before[10], before[11]], csum_diff(&old, &new));
            assert_eq!(
                fixed,
                [after[10], after[11]],
                "{s:?}>{d:?} to {ns:?}>{nd:?}"
            );
        }
    }

    #[test]
    fn the_port_difference_fixes_the_udp_checksum() {
        // Pseudo-header, UDP header and payload; the checksum over all of
        // it before and after changing the ports must match the update.
        let udp = |sp: u16, dp: u16| {
            let mut d = vec![192, 0, 2, 1, 203, 0, 113, 9, 0, 17, 0, 12];
            d.extend_from_slice(&sp.to_be_bytes());
            d.extend_from_slice(&dp.to_be_bytes());
            d.extend_from_slice(&[0, 12, 0, 0, 0x80, 0x00, 0xbe, 0xef]);
            let c = rfc1071(&d);
            c.to_be_bytes()
        };
        let before = udp(40000, 30000);
        let after = udp(30002, 4000);
        let mut old = 40000u16.to_be_bytes().to_vec();
        old.extend_from_slice(&30000u16.to_be_bytes());
        let mut new = 30002u16.to_be_bytes().to_vec();
        new.extend_from_slice(&4000u16.to_be_bytes());
        assert_eq!(apply(before, csum_diff(&old, &new)), after);
    }

    #[test]
    fn the_program_assembles_within_the_verifier_limits() {
        let p = forwarder(3).unwrap();
        assert!(p.len() < 200, "{} instructions", p.len());
        // It ends with an exit, and every exit follows a set r0.
        assert_eq!(p.last().map(|w| w & 0xff), Some(0x95));
    }

    #[test]
    fn key_and_value_layout() {
        let key = FlowKey {
            src: "10.0.0.2:4000".parse().unwrap(),
            dst: "192.0.2.1:30000".parse().unwrap(),
        };
        let act = FlowAction {
            src: "192.168.1.1:30002".parse().unwrap(),
            dst: "192.168.1.9:6000".parse().unwrap(),
        };
        assert_eq!(
            key_bytes(&key),
            [10, 0, 0, 2, 192, 0, 2, 1, 0x0f, 0xa0, 0x75, 0x30]
        );
        let v = value_bytes(&key, &act, 7, false);
        assert_eq!(
            &v[0..12],
            &[192, 168, 1, 1, 192, 168, 1, 9, 0x75, 0x32, 0x17, 0x70]
        );
        assert_eq!(u32::from_ne_bytes([v[16], v[17], v[18], v[19]]), 7);
        assert!(v[V_PACKETS..].iter().all(|b| *b == 0));
    }
}
