#!/usr/bin/env python3
"""Watches the loopback interface and counts, per destination network, packets that carry
plain-text SIP and packets that carry TLS records. tests/e2e/tls/run-tls.sh uses it to show
that sipwarden never sends plain text into a zone with tls.zone.NAME.require_tls, while TLS
does reach it.

Usage: plainsniff.py --net 127.0.3.0/24 --out FILE --seconds N
Runs until SIGTERM or N seconds, then writes one line to FILE:
    plain=P tls=T other=O
and, for each plain-text packet (at most 20), a line `plain SRC -> DST: FIRST-LINE`.
Needs CAP_NET_RAW (root, or root in the user namespace that owns the network namespace).
Prints `sniffing` on stdout once the socket is open.
"""

import argparse
import ipaddress
import re
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
# A start line, or a Via header anywhere (a TCP segment may start mid-message).
SIP_TEXT = re.compile(
    rb"^(?:[A-Z]+ \S+ SIP/2\.0\r?\n|SIP/2\.0 \d{3} )|\r\nVia: *SIP/2\.0/", re.IGNORECASE
)


def payload(frame):
    """(src, dst, payload) of an IPv4 TCP or UDP packet in an Ethernet frame, else None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    proto = ip[9]
    src = ipaddress.IPv4Address(ip[12:16])
    dst = ipaddress.IPv4Address(ip[16:20])
    body = ip[ihl:total]
    if proto == 6 and len(body) >= 20:
        return src, dst, body[(body[12] >> 4) * 4 :]
    if proto == 17 and len(body) >= 8:
        return src, dst, body[8:]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=120)
    a = ap.parse_args()
    net = ipaddress.ip_network(a.net)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind(("lo", 0))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("sniffing", flush=True)
    plain, tls, other = 0, 0, 0
    shown = []
    end = time.monotonic() + a.seconds
    while not stop and time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        frame, addr = s.recvfrom(65535)
        # Loopback shows each packet twice: once leaving, once arriving.
        if addr[2] == PACKET_OUTGOING:
            continue
        p = payload(frame)
        if p is None:
            continue
        src, dst, data = p
        if dst not in net or not data:
            continue
        if SIP_TEXT.search(data[:2000]):
            plain += 1
            if len(shown) < 20:
                first = data.split(b"\n", 1)[0].decode("latin-1").strip()
                shown.append(f"plain {src} -> {dst}: {first}")
        elif len(data) >= 3 and data[0] in (20, 21, 22, 23) and data[1] == 3:
            tls += 1
        else:
            other += 1
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"plain={plain} tls={tls} other={other}\n")
        for line in shown:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
