#!/usr/bin/env python3
"""Small SIP-over-UDP checks for the end-to-end tests (standard library only).

    sipcheck.py freeport [--avoid P ...]
        Prints a port of 127.0.0.1 that is free for both UDP and TCP right now.
    sipcheck.py options PORT [--wait SECONDS]
        Sends OPTIONS sip:127.0.0.1:PORT over UDP (again every 200 ms) until a 200 comes back or
        SECONDS pass; exit 0 on a 200, 1 otherwise.
    sipcheck.py rfc4475 PORT DATA_DIR
        Sends every message of DATA_DIR/MANIFEST.tsv (the RFC 4475 torture messages) to
        127.0.0.1:PORT as one UDP datagram each, waits up to 1 s for the answer (the first final
        response, else the last provisional one, else "drop"), compares it with the expectation
        below, then checks that an OPTIONS is still answered. Prints a table and
        "rfc4475-udp: N passed, M failed"; exit 0 when nothing failed.

Only 127.0.0.1 is ever a destination.
"""

import argparse
import os
import random
import socket
import sys
import time

HOST = "127.0.0.1"

# What a running sipwarden (a stateful proxy and registrar for its own domain, sipwarden.test)
# must do with each message, none of which is addressed to its domain. Outcomes:
#   "answer"  a final response other than 400: a valid request is processed normally. The
#             Request-URIs name hosts of example.com and the like, which sipwarden does not
#             resolve (no DNS), so the answer is typically an error of routing (5xx), which is
#             fine: the message was accepted and processed, not refused as malformed;
#   "drop"    nothing comes back: responses (a proxy never answers a response; stray ones are
#             dropped or forwarded, never answered) and datagrams that are not a SIP message;
#   a status  that status exactly; several may be allowed ("400|drop").
# The choices for the liberal and semantic cases follow tests/e2e/rfc4475-cli.sh (which checks
# the parser alone) and docs/ARCHITECTURE.md.
EXPECT_INVALID = {
    "badinv01.dat": "400",
    "clerr.dat": "400|drop",  # Content-Length beyond the datagram: discard or 400
    "ncl.dat": "400",
    "scalar02.dat": "400",
    "scalarlg.dat": "drop",  # a response
    "quotbal.dat": "400",
    "ltgtruri.dat": "400",
    "lwsruri.dat": "400",
    "lwsstart.dat": "400",
    "trws.dat": "400",
    "escruri.dat": "400",
    "baddate.dat": "answer",  # liberal: the Date header is not used
    "regbadct.dat": "400",
    "badaspec.dat": "400",
    "baddn.dat": "answer",  # liberal: unquoted display name accepted as written
    "badvers.dat": "505",
    "mismatch01.dat": "400",
    "mismatch02.dat": "400",
    "bigcode.dat": "drop",  # a response
    "test.dat": "400|drop",  # no SIP version in the request line
}
EXPECT_SEMANTIC = {
    "badbranch.dat": "answer",
    "insuf.dat": "400",
    "unkscm.dat": "416",
    "novelsc.dat": "416",
    "unksm2.dat": "answer",
    "bext01.dat": "420",  # Proxy-Require with unknown options
    "invut.dat": "answer",  # a proxy forwards an unknown Content-Type
    "regaut01.dat": "answer",  # REGISTER for a domain that is not ours: forwarded
    "multi01.dat": "400",
    "mcl01.dat": "400|drop",
    "bcast.dat": "drop",  # a response
    "zeromf.dat": "483",
    "cparam01.dat": "answer",
    "cparam02.dat": "answer",
    "regescrt.dat": "answer",
    "sdp01.dat": "answer",
    "inv2543.dat": "answer",
}


def is_response(data):
    return data.startswith(b"SIP/")


def expectation(name, cls, data):
    if cls == "valid":
        return "drop" if is_response(data) else "answer"
    if cls == "invalid":
        return EXPECT_INVALID.get(name)
    if cls == "semantic":
        return EXPECT_SEMANTIC.get(name)
    return None


def status_of(datagram):
    """The status code of a response datagram, or None."""
    line = datagram.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) >= 2 and parts[0] == b"SIP/2.0" and parts[1].isdigit():
        return int(parts[1])
    return None


def exchange(port, data, wait):
    """Sends one datagram; returns the outcome: the first final status, else the last
    provisional one, else "drop"."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.sendto(data, (HOST, port))
        deadline = time.monotonic() + wait
        last = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                got, _ = s.recvfrom(65535)
            except socket.timeout:
                break
            code = status_of(got)
            if code is None:
                continue
            last = code
            if code >= 200:
                break
        return "drop" if last is None else str(last)


def matches(expected, got):
    for e in expected.split("|"):
        if e == "answer":
            if got != "drop" and int(got) >= 200 and got != "400":
                return True
        elif e == got:
            return True
    return False


def options_ok(port, wait):
    deadline = time.monotonic() + wait
    n = 0
    while True:
        n += 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, 0))
            lport = s.getsockname()[1]
            msg = (
                f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{lport};branch=z9hG4bK-probe-{os.getpid()}-{n}\r\n"
                "Max-Forwards: 70\r\n"
                f"To: <sip:{HOST}:{port}>\r\n"
                f"From: <sip:probe@{HOST}>;tag=probe{n}\r\n"
                f"Call-ID: probe-{os.getpid()}-{n}@{HOST}\r\n"
                f"CSeq: {n} OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            s.sendto(msg, (HOST, port))
            s.settimeout(0.2)
            try:
                got, _ = s.recvfrom(65535)
                if status_of(got) == 200:
                    return True
            except (socket.timeout, ConnectionRefusedError):
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def cmd_freeport(args):
    avoid = set(args.avoid or [])
    for _ in range(500):
        p = random.randint(20000, 59999)
        if p in avoid:
            continue
        socks = []
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((HOST, p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        print(p)
        return 0
    print("no free port found", file=sys.stderr)
    return 1


def cmd_options(args):
    return 0 if options_ok(args.port, args.wait) else 1


def cmd_rfc4475(args):
    manifest = os.path.join(args.data, "MANIFEST.tsv")
    rows = []
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 3 or cols[0] == "file":
                continue
            rows.append((cols[0], cols[1], cols[2]))
    passed = failed = 0
    print(f"{'file':<16} {'section':<9} {'class':<9} {'expected':<10} {'got':<6} result")
    for name, section, cls in rows:
        with open(os.path.join(args.data, name), "rb") as f:
            data = f.read()
        expected = expectation(name, cls, data)
        if expected is None:
            got, ok = "-", False
            note = "no expectation recorded"
        else:
            got = exchange(args.port, data, args.wait)
            ok = matches(expected, got)
            note = ""
        passed += ok
        failed += not ok
        print(
            f"{name:<16} {section:<9} {cls:<9} {expected or '-':<10} {got:<6} "
            f"{'ok' if ok else 'FAIL'} {note}".rstrip()
        )
    alive = options_ok(args.port, 3.0)
    print(f"{'(OPTIONS)':<16} {'':<9} {'after':<9} {'200':<10} "
          f"{'200' if alive else 'none':<6} {'ok' if alive else 'FAIL'}")
    passed += alive
    failed += not alive
    print(f"rfc4475-udp: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    fp = sub.add_parser("freeport")
    fp.add_argument("--avoid", type=int, nargs="*")
    op = sub.add_parser("options")
    op.add_argument("port", type=int)
    op.add_argument("--wait", type=float, default=10.0)
    rp = sub.add_parser("rfc4475")
    rp.add_argument("port", type=int)
    rp.add_argument("data")
    rp.add_argument("--wait", type=float, default=1.0)
    args = p.parse_args()
    return {"freeport": cmd_freeport, "options": cmd_options, "rfc4475": cmd_rfc4475}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
