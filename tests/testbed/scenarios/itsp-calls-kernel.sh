#!/usr/bin/env bash
# itsp-calls.sh with sipwarden's media kernel fast path on (`[media] kernel_forward = true` on
# the sbc's wan and lan interfaces): the ITSP, PBX and remote-user calls, their RTP both ways
# on both sides, the WAN leak check, and the kernel's share of the RTP in each call.
# Exit codes as itsp-calls.sh (77: cannot run here).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KERNEL_FORWARD=1 exec bash "$here/itsp-calls.sh" "$@"
