#!/usr/bin/env python3
"""Lists the SIP messages in a capture, one line each: SRC:PORT > DST:PORT  START-LINE.

Usage: transfer-sip-lines.py CAPTURE.pcap
For the transfer scenarios (transfer-*.sh): what the ITSP side of sipwarden saw of a call, so
that a REFER, a NOTIFY or a re-INVITE on the WAN can be found. UDP datagrams and TCP segments
whose payload starts with a SIP request or status line; a message split across TCP segments
counts once, by its first segment. The pcap reader is wan-leak-check.py's.
Exit 0, or 2 when the capture cannot be read.
"""

import importlib.util
import ipaddress
import os
import re
import struct
import sys

START = re.compile(rb"^(?:[A-Z]+ \S+ SIP/2\.0|SIP/2\.0 \d{3} [^\r\n]*)")


def load_reader():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wan-leak-check.py")
    spec = importlib.util.spec_from_file_location("wan_leak_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sip_lines(path):
    wl = load_reader()
    for _, lt, fr in wl.read_pcap(path):
        nl = wl.network_layer(lt, fr)
        if nl is None or nl[0] != 0x0800:
            continue
        p = nl[1]
        if len(p) < 20:
            continue
        ihl = (p[0] & 0x0F) * 4
        proto = p[9]
        seg = p[ihl:]
        if proto == 17 and len(seg) >= 8:
            sport, dport = struct.unpack(">HH", seg[:4])
            payload = seg[8:]
        elif proto == 6 and len(seg) >= 20:
            sport, dport = struct.unpack(">HH", seg[:4])
            payload = seg[(seg[12] >> 4) * 4:]
        else:
            continue
        m = START.match(payload)
        if m:
            src = ipaddress.IPv4Address(p[12:16])
            dst = ipaddress.IPv4Address(p[16:20])
            line = m.group(0).decode("latin-1")
            yield f"{src}:{sport} > {dst}:{dport}  {line}"


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        for line in sip_lines(argv[0]):
            print(line)
    except (OSError, ValueError) as e:
        print(f"transfer-sip-lines: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
