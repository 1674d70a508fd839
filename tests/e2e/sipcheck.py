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
        Each message is sent from the port its top Via names (5060 by default), where the
        answer goes: run it where those ports are free (the runner uses its own network
        namespace), never next to a SIP server on 5060.

Only 127.0.0.1 is ever a destination.
"""

import argparse
import os
import random
import re
import select
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
    # Proxy-Require with unknown options: 420. Its top Via says TLS, which sipwarden does not
    # speak; the request came over UDP, and a response goes back over the transport its
    # request came on (RFC 3261 18.2.2 "using the same transport"), not the Via's.
    "bext01.dat": "420",
    "invut.dat": "answer",  # a proxy forwards an unknown Content-Type
    "regaut01.dat": "answer",  # REGISTER for a domain that is not ours: forwarded
    "multi01.dat": "400",
    "mcl01.dat": "400|drop",
    "bcast.dat": "drop",  # a response
    "zeromf.dat": "483|200",  # RFC 3261 16.3 item 3: an OPTIONS may be answered instead
    "cparam01.dat": "answer",
    "cparam02.dat": "answer",
    "regescrt.dat": "answer",
    "sdp01.dat": "answer",
    "inv2543.dat": "answer",
}


def is_response(data):
    return data.startswith(b"SIP/")


# Known gaps: cases whose right answer needs work that is not done yet. Each is run and shown
# as "known" (with what it got), counted apart from passes and failures, and listed in the
# open issue's progress note. Remove an entry as soon as its gap is closed.
KNOWN_GAPS = {}


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


VIA_RE = re.compile(
    rb"^(?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z]+)[ \t]+"
    rb"(\[[^\]]*\]|[^;,:\s]+)(?::([0-9]+))?",
    re.IGNORECASE | re.MULTILINE,
)
CALL_ID_RE = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


def unfold(head):
    return re.sub(rb"\r?\n[ \t]+", b" ", head)


def reply_address(data):
    """Where RFC 3261 18.2.2 sends the answer to this message when it came from 127.0.0.1:
    the transport and the sent-by port of its top Via (5060, or 5061 for TLS, by default)."""
    head = unfold(data.split(b"\r\n\r\n", 1)[0])
    m = VIA_RE.search(head)
    if not m:
        return "UDP", None
    transport = m.group(1).decode("ascii", "replace").upper()
    port = int(m.group(3)) if m.group(3) else (5061 if transport == "TLS" else 5060)
    return transport, port if port < 65536 else None


BRANCH_RE = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)", re.IGNORECASE)


def transaction_key(data):
    """(branch, sent-by, method) of a request: what RFC 3261 17.2.3 matches a server
    transaction by. Two torture messages with the same key are, for a transaction layer, one
    request and its retransmission."""
    if is_response(data):
        return None
    head = unfold(data.split(b"\r\n\r\n", 1)[0])
    via = VIA_RE.search(head)
    if not via:
        return None
    line_end = head.find(b"\n", via.end())
    branch = BRANCH_RE.search(head[via.end() : line_end if line_end >= 0 else len(head)])
    method = head.split(b" ", 1)[0]
    if not branch or not branch.group(1).startswith(b"z9hG4bK"):
        return None
    return (branch.group(1), via.group(2).lower(), via.group(3), method)


def call_id(data):
    head = unfold(data.split(b"\r\n\r\n", 1)[0])
    m = CALL_ID_RE.search(head)
    return m.group(1) if m else None


def exchange(port, data, wait, stale, also=None):
    """Sends one datagram from 127.0.0.1:<sent-by port of its top Via> (so that the answer
    comes back to this socket whether sipwarden answers to the source port or, as RFC 3261
    18.2.2 says without rport, to the sent-by port), with a TCP listener on the same port when
    the Via names TCP or TLS. Returns the outcome: the first final status, else the last
    provisional one, else "drop". Answers whose Call-ID is in `stale` (retransmitted answers to
    earlier messages) are ignored, except those with the Call-ID `also`."""
    transport, reply_port = reply_address(data)
    ours = call_id(data)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener = None
    conns = []
    try:
        try:
            udp.bind((HOST, reply_port or 0))
        except OSError:
            udp.bind((HOST, 0))
        if transport in ("TCP", "TLS") and reply_port:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((HOST, reply_port))
                listener.listen(8)
                listener.setblocking(False)
            except OSError:
                listener.close()
                listener = None
        udp.sendto(data, (HOST, port))
        deadline = time.monotonic() + wait
        last = None
        buffers = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable = [udp] + ([listener] if listener else []) + conns
            ready, _, _ = select.select(readable, [], [], left)
            got = []
            for s in ready:
                if s is listener:
                    c, _ = listener.accept()
                    c.setblocking(False)
                    conns.append(c)
                    buffers[c] = b""
                elif s is udp:
                    d, _ = udp.recvfrom(65535)
                    got.append(d)
                else:
                    try:
                        chunk = s.recv(65535)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        conns.remove(s)
                        s.close()
                        continue
                    buffers[s] += chunk
                    # Responses without a body are enough here: split on the blank line.
                    while b"\r\n\r\n" in buffers[s]:
                        msg, buffers[s] = buffers[s].split(b"\r\n\r\n", 1)
                        got.append(msg + b"\r\n\r\n")
            for d in got:
                code = status_of(d)
                if code is None:
                    continue
                cid = call_id(d)
                if cid is not None and cid not in (ours, also) and cid in stale:
                    continue
                last = code
            if last is not None and int(last) >= 200:
                break
        return "drop" if last is None else str(last)
    finally:
        for s in conns:
            s.close()
        if listener:
            listener.close()
        udp.close()
        if ours is not None:
            stale.add(ours)


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
    passed = failed = known = 0
    stale = set()
    seen = {}  # transaction key -> (file, Call-ID, outcome)
    print(f"{'file':<16} {'section':<9} {'class':<9} {'expected':<10} {'got':<6} result")
    for name, section, cls in rows:
        with open(os.path.join(args.data, name), "rb") as f:
            data = f.read()
        expected = expectation(name, cls, data)
        key = transaction_key(data)
        earlier = seen.get(key) if key else None
        note = ""
        if expected is None:
            got, ok = "-", False
            note = "no expectation recorded"
        else:
            if earlier:
                # Within Timer J/H of the earlier message's transaction this one is its
                # retransmission: absorbed, or answered with the earlier final response again.
                first, first_cid, first_got = earlier
                expected = f"{first_got}|drop" if first_got != "drop" else "drop"
                note = f"same branch, sent-by and method as {first}: a retransmission (RFC 3261 17.2.3)"
                got = exchange(args.port, data, args.wait, stale, also=first_cid)
            else:
                got = exchange(args.port, data, args.wait, stale)
            ok = matches(expected, got)
            if key and not earlier:
                seen[key] = (name, call_id(data), got)
        if not ok and name in KNOWN_GAPS:
            known += 1
            print(
                f"{name:<16} {section:<9} {cls:<9} {expected or '-':<10} {got:<6} "
                f"known gap: {KNOWN_GAPS[name]}"
            )
            continue
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
    print(f"rfc4475-udp: {passed} passed, {failed} failed, {known} known gap(s)")
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
