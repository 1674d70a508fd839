"""rtpengine ng queries for bench/b2bua-vs-kamailio, with the ng client of
bench/media-vs-rtpengine/ng.py.

    ngctl.py wait [SECONDS]   until rtpengine answers ping (exit 1 if it does not)
    ngctl.py list             the Call-IDs rtpengine holds now, one per line
    ngctl.py query CALL-ID    the call's legs: "tag TAG: RELAY:PORT <-> PEER:PORT" per RTP/RTCP socket, one per line
    ngctl.py counts           "CURRENT ENDED": sessions held now, sessions ended since start
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "media-vs-rtpengine"))
import ng  # noqa: E402

NG = ("127.0.0.1", 22222)
RELAY_IP = "127.0.3.1"  # rtpengine.conf: interface


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    client = ng.NgClient(*NG, timeout=0.5, retries=3)
    if cmd == "wait":
        deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 10)
        while True:
            try:
                client.request("ping")
                return 0
            except (ng.NgError, OSError):
                if time.monotonic() > deadline:
                    return 1
                time.sleep(0.1)
    if cmd == "list":
        for cid in client.request("list").get("calls", []):
            print(cid)
        return 0
    if cmd == "query" and len(sys.argv) > 2:
        reply = client.request("query", **{"call-id": sys.argv[2]})
        for tag, leg in sorted(reply.get("tags", {}).items()):
            for medium in leg.get("medias", []):
                for stream in medium.get("streams", []):
                    peer = stream.get("endpoint", {})
                    print("tag %s: %s:%s <-> %s:%s" % (tag, RELAY_IP, stream.get("local port"),
                                                       peer.get("address"), peer.get("port")))
        return 0
    if cmd == "counts":
        stats = client.request("statistics").get("statistics", {})
        current = stats.get("currentstatistics", {}).get("sessionstotal", "?")
        ended = stats.get("totalstatistics", {}).get("managedsessions", "?")
        print(current, ended)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
