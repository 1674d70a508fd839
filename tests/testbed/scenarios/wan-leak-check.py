#!/usr/bin/env python3
"""Checks a capture taken on sipwarden's WAN side for anything of the LAN.

Usage:
  wan-leak-check.py [--net 192.168.10.0/24] CAPTURE.pcap   exit 0: clean, 1: leaks (listed), 2: error
  wan-leak-check.py --self-test                             plants leaks in a built capture and
                                                            checks that each one is found
  wan-leak-check.py --plant OUT.pcap IN.pcap               IN plus one frame with a LAN address
                                                            in its SIP body (to show that a real
                                                            capture with a leak fails the check)
  wan-leak-check.py --count A B [--not-port 5060] CAPTURE  count UDP packets from IP A to IP B
                                                            (RTP: not on the SIP port)

What counts as a leak, in every frame (classic pcap, Ethernet or Linux cooked capture):
  - an IPv4 source or destination address in the LAN network (the IP header);
  - an ARP sender or target address in it;
  - an IPv4-mapped IPv6 source or destination in it;
  - the LAN prefix written as text anywhere in the frame ("192.168.10." for 192.168.10.0/24:
    SIP headers, SDP c=/o= lines, any body), case-insensitively, also %-escaped dots.
Only the standard library: it runs wherever the testbed runs.
"""

import ipaddress
import re
import struct
import sys

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_RAW = 101


def read_pcap(path):
    """Yields (index, linktype, frame bytes) of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file (too short)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file (write it with dumpcap -F pcap)")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    i = 0
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            raise ValueError(f"{path}: frame {i} truncated")
        yield i, linktype, data[off:off + incl]
        off += incl
        i += 1


def network_layer(linktype, frame):
    """(ethertype, payload) of a frame, or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        etype = struct.unpack(">H", frame[12:14])[0]
        off = 14
        while etype == 0x8100 and len(frame) >= off + 4:  # VLAN tags
            etype = struct.unpack(">H", frame[off + 2:off + 4])[0]
            off += 4
        return etype, frame[off:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return struct.unpack(">H", frame[14:16])[0], frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        return struct.unpack(">H", frame[0:2])[0], frame[20:]
    if linktype == LINKTYPE_RAW:
        if not frame:
            return None
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame
    return None


def text_pattern(net):
    """The network's fixed leading octets as text: 192.168.10.0/24 -> "192.168.10."."""
    octets = net.network_address.packed[: net.prefixlen // 8]
    prefix = r"(?:\.|%2e)".join(str(o) for o in octets)
    # Not preceded by a digit, so 2192.168.10.5 is not read as a LAN address.
    return re.compile(rb"(?<![0-9])" + prefix.encode() + rb"(?:\.|%2e)", re.IGNORECASE)


def leaks_in_frame(linktype, frame, net, pattern):
    found = []
    nl = network_layer(linktype, frame)
    if nl is not None:
        etype, p = nl
        if etype == 0x0800 and len(p) >= 20:
            for what, raw in (("IPv4 source", p[12:16]), ("IPv4 destination", p[16:20])):
                if ipaddress.IPv4Address(raw) in net:
                    found.append(f"{what} {ipaddress.IPv4Address(raw)}")
        elif etype == 0x0806 and len(p) >= 28:
            for what, raw in (("ARP sender", p[14:18]), ("ARP target", p[24:28])):
                if ipaddress.IPv4Address(raw) in net:
                    found.append(f"{what} {ipaddress.IPv4Address(raw)}")
        elif etype == 0x86DD and len(p) >= 40:
            for what, raw in (("IPv6 source", p[8:24]), ("IPv6 destination", p[24:40])):
                mapped = ipaddress.IPv6Address(raw).ipv4_mapped
                if mapped is not None and mapped in net:
                    found.append(f"{what} {ipaddress.IPv6Address(raw)}")
    for m in pattern.finditer(frame):
        start = max(0, m.start() - 30)
        context = frame[start:m.end() + 20].decode("latin-1")
        context = context.replace("\r", "\\r").replace("\n", "\\n")
        found.append(f"text at byte {m.start()}: ...{context}...")
    return found


def check(path, net):
    pattern = text_pattern(net)
    frames = 0
    bad = []
    for i, linktype, frame in read_pcap(path):
        frames += 1
        for leak in leaks_in_frame(linktype, frame, net, pattern):
            bad.append((i, leak))
    return frames, bad


# ----- building captures (self-test, planting) ------------------------------------------------

def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src, dst, sport, dport, payload):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
    eth = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\x08\x00"
    return eth + ip + udp


def arp_frame(sender, target):
    arp = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02\0\0\0\0\x01",
                      ipaddress.IPv4Address(sender).packed, b"\0" * 6,
                      ipaddress.IPv4Address(target).packed)
    return b"\xff" * 6 + b"\x02\0\0\0\0\x01" + b"\x08\x06" + arp


def write_pcap(path, frames, linktype=LINKTYPE_ETHERNET):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for n, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000 + n, 0, len(fr), len(fr)))
            f.write(fr)


def sip(body_ip="198.51.100.1", via="198.51.100.1:5060"):
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {body_ip}\r\ns=-\r\nc=IN IP4 {body_ip}\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\n")
    return (f"INVITE sip:+4930123@203.0.113.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK1\r\n"
            "From: <sip:2001@198.51.100.1>;tag=1\r\nTo: <sip:+4930123@203.0.113.10>\r\n"
            "Call-ID: x@198.51.100.1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


PLANTED = udp_frame("198.51.100.1", "203.0.113.10", 5060, 5060, sip(body_ip="192.168.10.21"))


def self_test():
    import os
    import tempfile
    net = ipaddress.ip_network("192.168.10.0/24")
    clean = [
        udp_frame("198.51.100.1", "203.0.113.10", 5060, 5060, sip()),
        # RTP whose payload happens to hold the LAN address's bytes: not text, not a header.
        udp_frame("198.51.100.1", "203.0.113.10", 40000, 6000,
                  b"\x80\x00\x00\x01" + b"\0" * 8 + b"\xc0\xa8\x0a\x15" * 40),
        # Look-alikes that are not the LAN: 2192.168.10.x, 192.168.100.x, 192.168.1.x.
        udp_frame("198.51.100.1", "203.0.113.10", 5060, 5060,
                  b"OPTIONS sip:a@2192.168.10.9 SIP/2.0\r\nX: 192.168.100.4, 192.168.1.1\r\n\r\n"),
        arp_frame("198.51.100.1", "198.51.100.254"),
    ]
    leaks = {
        "SDP body": udp_frame("198.51.100.1", "203.0.113.10", 5060, 5060, sip(body_ip="192.168.10.21")),
        "Via header": udp_frame("198.51.100.1", "203.0.113.10", 5060, 5060, sip(via="192.168.10.10:5060")),
        "escaped text": udp_frame("198.51.100.1", "203.0.113.10", 5060, 5060,
                                  b"X-Orig: sip:a@192%2E168%2e10.10\r\n"),
        "IP source": udp_frame("192.168.10.21", "203.0.113.10", 40000, 6000, b"\x80" + b"\0" * 11),
        "IP destination": udp_frame("203.0.113.10", "192.168.10.1", 6000, 40000, b"\x80" + b"\0" * 11),
        "ARP": arp_frame("198.51.100.1", "192.168.10.1"),
    }
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "clean.pcap")
        write_pcap(path, clean)
        frames, bad = check(path, net)
        if frames != len(clean) or bad:
            print(f"FAIL: clean capture: {frames} frames, leaks reported: {bad}")
            failures += 1
        else:
            print(f"PASS: a clean capture of {frames} frames (look-alikes included) passes")
        for name, frame in leaks.items():
            path = os.path.join(d, "leak.pcap")
            write_pcap(path, clean[:2] + [frame] + clean[2:])
            frames, bad = check(path, net)
            if [i for i, _ in bad] and all(i == 2 for i, _ in bad):
                print(f"PASS: a planted leak ({name}) is found in frame 2: {bad[0][1]}")
            else:
                print(f"FAIL: a planted leak ({name}) was not found (reported: {bad})")
                failures += 1
    return 1 if failures else 0


def plant(out, inp):
    frames = [fr for _, lt, fr in read_pcap(inp) if lt == LINKTYPE_ETHERNET]
    write_pcap(out, frames + [PLANTED])


def count(path, a, b, not_port):
    n = 0
    a = ipaddress.IPv4Address(a)
    b = ipaddress.IPv4Address(b)
    for _, lt, fr in read_pcap(path):
        nl = network_layer(lt, fr)
        if nl is None or nl[0] != 0x0800:
            continue
        p = nl[1]
        if len(p) < 28 or p[9] != 17:
            continue
        ihl = (p[0] & 0x0F) * 4
        if len(p) < ihl + 8:
            continue
        sport, dport = struct.unpack(">HH", p[ihl:ihl + 4])
        if ipaddress.IPv4Address(p[12:16]) == a and ipaddress.IPv4Address(p[16:20]) == b:
            if not_port is None or (sport != not_port and dport != not_port):
                n += 1
    return n


def main(argv):
    net = ipaddress.ip_network("192.168.10.0/24")
    args = list(argv)
    if "--net" in args:
        i = args.index("--net")
        net = ipaddress.ip_network(args[i + 1])
        del args[i:i + 2]
    try:
        if args == ["--self-test"]:
            return self_test()
        if len(args) == 3 and args[0] == "--plant":
            plant(args[1], args[2])
            return 0
        if args and args[0] == "--count":
            not_port = None
            if "--not-port" in args:
                i = args.index("--not-port")
                not_port = int(args[i + 1])
                del args[i:i + 2]
            print(count(args[3], args[1], args[2], not_port))
            return 0
        if len(args) != 1:
            print(__doc__, file=sys.stderr)
            return 2
        frames, bad = check(args[0], net)
    except (OSError, ValueError) as e:
        print(f"wan-leak-check: {e}", file=sys.stderr)
        return 2
    if frames == 0:
        print(f"wan-leak-check: {args[0]}: no frames captured: nothing was checked", file=sys.stderr)
        return 2
    for i, leak in bad[:50]:
        print(f"LEAK frame {i}: {leak}")
    if bad:
        print(f"{len(bad)} leaks of {net} in {frames} frames of {args[0]}")
        return 1
    print(f"clean: no trace of {net} in {frames} frames of {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
