#!/usr/bin/env python3
"""Small network probes for the sipwarden testbed (tests/testbed/check.sh), run inside the
testbed's namespaces with `tb_exec PREFIX HOST python3 nettool.py ...`. Standard library only.

  ping ADDR [--timeout S]
      One ICMP echo over a raw socket (root). Exit 0 on a reply, 1 on none or on an error such
      as "Network is unreachable"; prints what happened.
  echo-server --bind ADDR --port P [--port P...] --lifetime S
      UDP. Answers every datagram with the address it came from, "IP:PORT" (what a NAT made of
      the sender). A datagram "again N" is answered at once and once more N seconds later, from
      the same socket: the second answer reaches the sender only if its NAT still holds the
      mapping. Exits after S seconds.
  query --to ADDR:PORT [--to ...] [--sport P] [--msg TEXT] [--timeout S] [--wait-more S]
      UDP, from one socket (bound to port P if given): sends TEXT to each destination and prints
      "reply DEST ANSWER" for each answer, "noreply DEST" for each destination that did not
      answer within S seconds; then, with --wait-more, prints "late FROM ANSWER" for every
      datagram that arrives during that many more seconds. Exit 0 if every destination answered.
  listen --bind ADDR --port P --timeout S
      UDP. Prints "got FROM PAYLOAD" for each datagram received within S seconds; exit 0 if one
      came, 1 if none.
  send --to ADDR:PORT [--sport P] [--msg TEXT]
      UDP, one datagram.
"""

import argparse
import os
import select
import socket
import struct
import sys
import threading
import time


def addr_port(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def cmd_ping(args):
    ident = os.getpid() & 0xFFFF
    payload = b"sipwarden-testbed"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, 1) + payload
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.sendto(packet, (args.addr, 0))
    except OSError as err:
        print("ping %s: %s" % (args.addr, err.strerror))
        return 1
    deadline = time.monotonic() + args.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print("ping %s: no reply in %gs" % (args.addr, args.timeout))
            return 1
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        data, src = sock.recvfrom(2048)
        ihl = (data[0] & 0x0F) * 4
        icmp_type, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
        if icmp_type == 0 and rid == ident and src[0] == args.addr:
            print("ping %s: reply" % args.addr)
            return 0
        inner = data[ihl + 8 :]
        inner_ihl = (inner[0] & 0x0F) * 4 if inner else 0
        inner_id = inner[inner_ihl + 4 : inner_ihl + 6]
        if icmp_type == 3 and inner_id == struct.pack("!H", ident):
            print("ping %s: destination unreachable (from %s)" % (args.addr, src[0]))
            return 1


def send_quietly(sock, data, dest):
    try:
        sock.sendto(data, dest)
    except OSError as err:
        print("echo-server: %s" % err.strerror, file=sys.stderr)


def cmd_echo_server(args):
    socks = []
    for port in args.port:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.bind, port))
        socks.append(sock)
    timers = []
    deadline = time.monotonic() + args.lifetime
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(socks, [], [], left)
        for sock in ready:
            try:
                data, src = sock.recvfrom(65535)
                answer = ("%s:%d" % src).encode()
                sock.sendto(answer, src)
            except OSError as err:
                # A sender it has no route back to, or an ICMP error from an earlier answer:
                # keep serving the others.
                print("echo-server: %s" % err.strerror, file=sys.stderr)
                continue
            words = data.split()
            if len(words) == 2 and words[0] == b"again":
                later = threading.Timer(float(words[1]), send_quietly, (sock, b"again " + answer, src))
                later.daemon = True
                later.start()
                timers.append(later)
    return 0


def cmd_query(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.sport))
    pending = {}
    for dest in args.to:
        target = addr_port(dest)
        try:
            sock.sendto(args.msg.encode(), target)
        except OSError as err:
            print("noreply %s (%s)" % (dest, err.strerror))
            continue
        pending[target] = dest
    deadline = time.monotonic() + args.timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            data, src = sock.recvfrom(65535)
        except OSError as err:
            # An ICMP error (port unreachable) surfaces on the next receive.
            print("error %s" % err.strerror)
            continue
        if src in pending:
            print("reply %s %s" % (pending.pop(src), data.decode(errors="replace")), flush=True)
    for dest in pending.values():
        print("noreply %s" % dest)
    answered_all = not pending and len(args.to) > 0
    deadline = time.monotonic() + args.wait_more
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            try:
                data, src = sock.recvfrom(65535)
            except OSError:
                continue
            print("late %s:%d %s" % (src[0], src[1], data.decode(errors="replace")), flush=True)
    return 0 if answered_all else 1


def cmd_listen(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.port))
    got = 0
    deadline = time.monotonic() + args.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            try:
                data, src = sock.recvfrom(65535)
            except OSError:
                continue
            got += 1
            print("got %s:%d %s" % (src[0], src[1], data.decode(errors="replace")), flush=True)
    return 0 if got else 1


def cmd_send(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.sport))
    try:
        sock.sendto(args.msg.encode(), addr_port(args.to))
    except OSError as err:
        print("send %s: %s" % (args.to, err.strerror))
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping")
    p.add_argument("addr")
    p.add_argument("--timeout", type=float, default=1.0)
    p = sub.add_parser("echo-server")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, action="append", required=True)
    p.add_argument("--lifetime", type=float, required=True)
    p = sub.add_parser("query")
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--msg", default="hello")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--wait-more", type=float, default=0.0)
    p = sub.add_parser("listen")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p = sub.add_parser("send")
    p.add_argument("--to", required=True)
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--msg", default="hello")
    args = parser.parse_args()
    handler = {
        "ping": cmd_ping,
        "echo-server": cmd_echo_server,
        "query": cmd_query,
        "listen": cmd_listen,
        "send": cmd_send,
    }[args.cmd]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
