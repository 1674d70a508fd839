#!/usr/bin/env bash
# nat-register-call.sh behind the port-preserving home NAT (198.51.100.60, host 10.0.2.2). Its
# UDP mappings also lapse after 30 s idle, so 45 s idle (default here) shows the keep-alives
# hold it open, while the 2-minute idle of the issue runs behind the symmetric NAT
# (nat-register-call.sh), keeping CI's run short. See nat-register-call.sh for the checks.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NATS="${NATS:-pp}" IDLE_S="${IDLE_S:-45}" exec bash "$here/nat-register-call.sh" "$@"
