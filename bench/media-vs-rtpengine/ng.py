"""A small client for rtpengine's ng control protocol: bencoded dictionaries over UDP, each
request prefixed by a cookie that the reply repeats ("COOKIE d...e")."""

import os
import socket


def bencode(value):
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError("cannot bencode %r" % type(value))


class BencodeError(ValueError):
    pass


def bdecode(data):
    """Decodes one bencoded value; byte strings come back as str when they are UTF-8."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError("trailing bytes at %d" % end)
    return value


def _decode(data, i, depth):
    if depth > 32:
        raise BencodeError("nested too deeply")
    if i >= len(data):
        raise BencodeError("truncated")
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i : i + 1] != b"e":
            v, i = _decode(data, i, depth + 1)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while data[i : i + 1] != b"e":
            k, i = _decode(data, i, depth + 1)
            v, i = _decode(data, i, depth + 1)
            out[k] = v
        return out, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        start = colon + 1
        if start + n > len(data):
            raise BencodeError("string runs past the end")
        raw = data[start : start + n]
        try:
            return raw.decode(), start + n
        except UnicodeDecodeError:
            return raw, start + n
    raise BencodeError("unexpected byte %r at %d" % (c, i))


class NgError(RuntimeError):
    pass


class NgClient:
    def __init__(self, host, port, timeout=2.0, retries=3):
        self.addr = (host, port)
        self.timeout = timeout
        self.retries = retries
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.prefix = os.urandom(4).hex()
        self.serial = 0

    def close(self):
        self.sock.close()

    def request(self, command, **args):
        """Sends one command and returns the reply dictionary; raises NgError on a failure
        result or after `retries` timeouts (the same cookie is resent, which rtpengine answers
        from its cookie cache instead of executing the command twice)."""
        self.serial += 1
        cookie = ("%s_%d" % (self.prefix, self.serial)).encode()
        msg = dict(args)
        msg["command"] = command
        packet = cookie + b" " + bencode(msg)
        for _ in range(self.retries):
            self.sock.sendto(packet, self.addr)
            try:
                while True:
                    data, _ = self.sock.recvfrom(65535)
                    got, _, body = data.partition(b" ")
                    if got == cookie:
                        break
            except socket.timeout:
                continue
            reply = bdecode(body)
            if not isinstance(reply, dict):
                raise NgError("reply is not a dictionary")
            if reply.get("result") not in ("ok", "pong"):
                raise NgError("%s: %s %s" % (command, reply.get("result"), reply.get("error-reason", "")))
            return reply
        raise NgError("%s: no reply from %s:%d" % (command, *self.addr))


if __name__ == "__main__":
    # Self-check of the codec (python3 ng.py).
    sample = {"command": "offer", "flags": ["trust-address"], "n": 5, "sdp": "v=0\r\n"}
    assert bdecode(bencode(sample)) == sample, bdecode(bencode(sample))
    assert bencode({"b": 1, "a": "x"}) == b"d1:a1:x1:bi1ee"
    print("ng.py: bencode round trip ok")
