#!/usr/bin/env bash
# nat-register-call.sh over TCP: the remote phone behind the symmetric NAT registers over a
# TCP connection, which sipwarden keeps (CRLF keep-alives) and calls it back on. The NAT's TCP
# mapping lives as long as the connection, so 40 s idle (more than the NAT's 30 s UDP timeout,
# which must not matter here) is enough. See nat-register-call.sh for the checks and knobs.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TRANSPORT=tcp IDLE_S="${IDLE_S:-40}" NATS="${NATS:-sym}" exec bash "$here/nat-register-call.sh" "$@"
