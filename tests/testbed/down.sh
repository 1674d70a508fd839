#!/usr/bin/env bash
# Tears down the sipwarden testbed PREFIX (tests/testbed/README.md): stops every process still
# running in its namespaces (by PID: Kamailio, phones, sipwarden started by tests), deletes
# every namespace PREFIX-*, any interface PREFIX-* left in the root namespace, and the run
# directory. Works on a half-built testbed too, and does nothing when nothing is left.
#
# Usage: tests/testbed/down.sh PREFIX      (or TB_PREFIX=PREFIX tests/testbed/down.sh)
# Exit: 0 when nothing of PREFIX is left, 1 otherwise, 77 when it cannot run here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/testbed/lib.sh
. "$here/lib.sh"

tb_require_root
prefix="${1:-${TB_PREFIX:-}}"
if [[ -z $prefix ]]; then
    echo "usage: $0 PREFIX (the prefix up.sh printed)" >&2
    exit 2
fi
tb_check_prefix "$prefix"

mapfile -t namespaces < <(ip netns list | awk '{print $1}' | grep "^$prefix-" || true)

# Processes first: a namespace with a process in it outlives `ip netns del` (with its
# interfaces). The PBX is stopped gently first so that it can clean up its runtime files.
tb_pbx_stop "$prefix" || true
pids=()
for ns in "${namespaces[@]}"; do
    while read -r pid; do
        [[ -n $pid ]] && pids+=("$pid")
    done < <(ip netns pids "$ns" 2>/dev/null || true)
done
if ((${#pids[@]})); then
    echo "down: stopping processes left in the testbed: ${pids[*]}"
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 30; i++)); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
fi

# Hosts before the switch, so that no veth end is left waiting for its peer's namespace.
sw="$(tb_ns "$prefix" sw)"
for ns in "${namespaces[@]}"; do
    [[ $ns == "$sw" ]] && continue
    ip netns del "$ns"
done
if ip netns list | awk '{print $1}' | grep -qx "$sw"; then
    ip netns del "$sw"
fi

# Nothing of the testbed is ever created in the root namespace; an interface found there with
# the prefix is from an interrupted run of an older version or a test that moved one out.
while read -r link; do
    [[ -n $link ]] || continue
    echo "down: deleting $link from the root namespace"
    ip link del "$link" 2>/dev/null || true
done < <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep "^$prefix-" || true)

rm -rf "$(tb_rundir "$prefix")"

left="$(ip netns list | awk '{print $1}' | grep "^$prefix-" || true)"
left+="$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep "^$prefix-" || true)"
if [[ -n $left ]]; then
    echo "down: still there: $left" >&2
    exit 1
fi
echo "testbed '$prefix' is down (${#namespaces[@]} namespaces removed)"
