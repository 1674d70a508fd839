#!/usr/bin/env python3
"""Helpers of tests/e2e/run-security.sh. Every socket has a timeout and every loop a bound.

  security.py options SRC PORT [--wait S]      one OPTIONS from SRC to 127.0.0.1:PORT; exit 0 on a
                                               200 (retrying for S seconds with --wait)
  security.py protos DIR PORT SRC [--batch N]  sends every PROTOS c07-sip case (and its teardown)
                                               to 127.0.0.1:PORT from SRC; after every N cases a
                                               valid OPTIONS must be answered. Prints counts.
  security.py flood-scenario FILE              writes a send-only SIPp OPTIONS scenario
  security.py digest SRC PORT METHOD USER PASSWORD [LOCAL_PORT]
                                               sends METHOD (REGISTER for USER@sipwarden.test,
                                               or INVITE to nobody@sipwarden.test), answers the
                                               challenge with MD5 digest; prints the final status
"""
import hashlib
import os
import random
import re
import socket
import sys
import time


def options_once(sock, src, port, timeout=1.0):
    b = random.randint(1, 1 << 30)
    lp = sock.getsockname()[1]
    m = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
         f"Via: SIP/2.0/UDP {src}:{lp};branch=z9hG4bKprobe{b};rport\r\n"
         f"From: <sip:probe@{src}>;tag={b}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
         f"Call-ID: probe{b}@{src}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
         f"Content-Length: 0\r\n\r\n")
    sock.sendto(m.encode(), ("127.0.0.1", port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65535)
        except socket.timeout:
            return False
        if f"probe{b}".encode() in data and data.startswith(b"SIP/2.0 200"):
            return True
    return False


def udp(src, port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, port))
    return s


def cmd_options(args):
    src, port = args[0], int(args[1])
    wait = float(args[args.index("--wait") + 1]) if "--wait" in args else 0
    s = udp(src)
    end = time.monotonic() + wait
    while True:
        if options_once(s, src, port):
            print("200 OK")
            return 0
        if time.monotonic() >= end:
            print("no answer")
            return 1
        time.sleep(0.2)


def fill(text, src, lp, port, n):
    """The PROTOS placeholders, filled (README of the suite)."""
    vals = {
        "<To>": f"bob@127.0.0.1:{port}", "<From>": f"protos@{src}", "<From-Address>": src,
        "<From-IP>": src, "<Local-Port>": str(lp), "<Branch-ID>": f"{n:07d}",
        "<Call-ID>": f"protos{n}", "<CSeq>": str(n + 1), "<Teardown-Method>": "CANCEL",
    }
    for k, v in vals.items():
        text = text.replace(k, v)
    # Content-Length after the other fills: the body holds <From-Address> too.
    if "<Content-Length>" in text:
        head, _, body = text.partition("\n\n")
        text = head.replace("<Content-Length>", str(len(body.replace("\n", "\r\n")))) + "\n\n" + body
    return text


def split_case(raw):
    """The case's messages: each is preceded by its length in bytes and a space."""
    out, i = [], 0
    while i < len(raw) and len(out) < 4:
        m = re.match(rb"\s*(\d+) ", raw[i:])
        if not m:
            break
        start = i + m.end()
        n = int(m.group(1))
        out.append(raw[start:start + n])
        i = start + n
    return out


def cmd_protos(args):
    d, port, src = args[0], int(args[1]), args[2]
    batch = int(args[args.index("--batch") + 1]) if "--batch" in args else 1
    cases = sorted(os.listdir(d))
    s = udp(src)
    s.setblocking(False)
    probe = udp(src)
    lp = s.getsockname()[1]
    answered = sent = silent_batches = too_long = 0
    t0 = time.monotonic()
    for n, name in enumerate(cases):
        with open(os.path.join(d, name), "rb") as f:
            raw = f.read()
        for msg in split_case(raw):
            text = msg.decode("latin-1")
            wire = fill(text, src, lp, port, n).replace("\r\n", "\n").replace("\n", "\r\n")
            data = wire.encode("latin-1")
            if len(data) > 65507:
                too_long += 1
                continue
            s.sendto(data, ("127.0.0.1", port))
            sent += 1
        while True:
            try:
                s.recv(65535)
                answered += 1
            except (BlockingIOError, OSError):
                break
        if (n + 1) % batch == 0 or n + 1 == len(cases):
            ok = any(options_once(probe, src, port, 1.0) for _ in range(3))
            if not ok:
                silent_batches += 1
                print(f"no answer to OPTIONS after case {name}")
                if silent_batches > 3:
                    break
    secs = time.monotonic() - t0
    print(f"protos: {len(cases)} cases, {sent} messages sent, {answered} responses, "
          f"{too_long} too long for UDP (not sent), {silent_batches} OPTIONS checks unanswered, {secs:.1f} s (batch {batch})")
    return 0 if silent_batches == 0 else 1


FLOOD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- sipwarden e2e: one OPTIONS per call, no answer awaited (a flood). -->
<scenario name="flood">
  <send>
    <![CDATA[

      OPTIONS sip:flood@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:flood@[local_ip]>;tag=[call_number]
      To: <sip:flood@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


def md5(x):
    return hashlib.md5(x.encode()).hexdigest()


def cmd_digest(args):
    src, port, method, user, password = args[0], int(args[1]), args[2], args[3], args[4]
    # An optional sixth argument: the local port, so that a REGISTER's Contact (and source)
    # is a port where a phone will listen once this socket is closed.
    s = udp(src, int(args[5]) if len(args) > 5 else 0)
    lp = s.getsockname()[1]
    n = random.randint(1, 1 << 30)
    if method == "REGISTER":
        ruri, to = "sip:sipwarden.test", f"sip:{user}@sipwarden.test"
    else:
        ruri = to = "sip:nobody@sipwarden.test"
    hdr_name = None
    status = None
    for cseq in (1, 2):
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {src}:{lp};branch=z9hG4bKd{n}{cseq};rport",
                 f"From: <sip:{user}@sipwarden.test>;tag={n}", f"To: <{to}>",
                 f"Call-ID: d{n}@{src}", f"CSeq: {cseq} {method}", "Max-Forwards: 70",
                 f"Contact: <sip:{user}@{src}:{lp}>"]
        if method == "REGISTER":
            lines.append("Expires: 60")
        if hdr_name:
            lines.append(hdr_name)
        msg = "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
        s.sendto(msg.encode(), ("127.0.0.1", port))
        status = None
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65535).decode("latin-1")
            except socket.timeout:
                break
            code = int(data.split(" ", 2)[1])
            if code >= 200:
                status = code
                break
        if status is None:
            print("no final answer")
            return 1
        if status not in (401, 407) or cseq == 2:
            break
        m = re.search(r"^(WWW|Proxy)-Authenticate: *(.*)$", data, re.M | re.I)
        chal = m.group(2)
        realm = re.search(r'realm="([^"]*)"', chal).group(1)
        nonce = re.search(r'nonce="([^"]*)"', chal).group(1)
        ha1 = md5(f"{user}:{realm}:{password}")
        ha2 = md5(f"{method}:{ruri}")
        cnonce, nc = f"{n:x}", "00000001"
        resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        name = "Authorization" if m.group(1).upper() == "WWW" else "Proxy-Authorization"
        hdr_name = (f'{name}: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
                    f'uri="{ruri}", response="{resp}", algorithm=MD5, qop=auth, nc={nc}, '
                    f'cnonce="{cnonce}"')
    print(status)
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "options":
        return cmd_options(args)
    if cmd == "protos":
        return cmd_protos(args)
    if cmd == "digest":
        return cmd_digest(args)
    if cmd == "flood-scenario":
        with open(args[0], "w") as f:
            f.write(FLOOD)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
