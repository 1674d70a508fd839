#!/usr/bin/env bash
# Builds the sipwarden testbed (tests/testbed/README.md): one network namespace per host, a
# "switch" namespace with the bridges, veth pairs between them; nothing in the root namespace.
#
# Usage: tests/testbed/up.sh [PREFIX]
#   PREFIX: names every namespace (PREFIX-HOST) and every interface of the switch; default
#   $TB_PREFIX, else a new one (tb + this script's PID), printed in the summary.
# Environment:
#   TB_PHONES=N   LAN phones phone1..phoneN at 192.168.10.21..(20+N); 2 to 9, default 2
#   TB_PBX=0      do not start Kamailio on the PBX (default: started; tb_pbx_start starts it)
# Exit: 0 when built, 77 when it cannot run here (not root, no netns), 1 on failure (what was
# built is torn down again), 2 on bad arguments.
#
# Leftovers of an earlier run with the same prefix (a crashed test, a half-built testbed) are
# torn down first, so running it twice gives the same testbed.
set -Eeuo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/testbed/lib.sh
. "$here/lib.sh"

tb_require_root
prefix="${1:-${TB_PREFIX:-$(tb_new_prefix)}}"
tb_check_prefix "$prefix"
phones="${TB_PHONES:-2}"
if [[ ! $phones =~ ^[0-9]+$ ]] || ((phones < 2 || phones > TB_MAX_PHONES)); then
    echo "up: TB_PHONES must be 2 to $TB_MAX_PHONES, got '$phones'" >&2
    exit 2
fi

if ip netns list | awk '{print $1}' | grep -q "^$prefix-"; then
    echo "up: removing the leftovers of an earlier testbed '$prefix'"
    "$here/down.sh" "$prefix" >/dev/null
fi

# Any failure (set -e, with -E so that it counts inside functions too), or an interruption,
# removes what was built: no half testbed is left behind.
built=0
failed_at=""
trap 'failed_at="$BASH_COMMAND"' ERR
on_exit() {
    local rc=$?
    ((built)) && return
    echo "up: FAILED (exit $rc)${failed_at:+ at: $failed_at}; tearing down what was built" >&2
    "$here/down.sh" "$prefix" >&2 || true
    exit 1
}
trap on_exit EXIT
trap 'exit 143' INT TERM

sw="$(tb_ns "$prefix" sw)"
rundir="$(tb_rundir "$prefix")"
mkdir -p "$rundir"

new_ns() { tb_new_ns "$1" "$2"; }
plug() { tb_plug "$prefix" "$@"; }

add_route() {
    local host="$1"
    shift
    ip -n "$(tb_ns "$prefix" "$host")" route add "$@"
}

# ---------------------------------------------------------------------------------------------
# The switch: one bridge per segment. STP is off (the default), so ports forward at once.
new_ns "$sw" 0
for bridge in blan bwan bisp bhs bhp; do
    ip -n "$sw" link add "$prefix-$bridge" type bridge
    ip -n "$sw" link set "$prefix-$bridge" up
done

hosts=("${TB_FIXED_HOSTS[@]}")
for ((i = 1; i <= phones; i++)); do
    hosts+=("phone$i")
done
for host in "${hosts[@]}"; do
    forward=0
    case "$host" in router | nat-sym | nat-pp) forward=1 ;; esac
    new_ns "$(tb_ns "$prefix" "$host")" "$forward"
done
# sipwarden's host is not a router: only what sipwarden relays crosses from one side to the other.
ip netns exec "$(tb_ns "$prefix" sbc)" sysctl -qw net.ipv4.conf.all.forwarding=0

# LAN 192.168.10.0/24: no route beyond it on the PBX and the phones.
plug pbx eth0 "$TB_PBX_IP/24" blan pbx
for ((i = 1; i <= phones; i++)); do
    plug "phone$i" eth0 "$(tb_ip "phone$i")/24" blan "p$i"
done
plug sbc lan "$TB_SBC_LAN_IP/24" blan sbl

# The "Internet": the WAN segment, the ITSP's network behind the router, two home networks.
plug sbc wan "$TB_SBC_WAN_IP/24" bwan sbw
add_route sbc default via "$TB_ROUTER_IP"
plug router wan "$TB_ROUTER_IP/24" bwan rtw
plug router itsp "$TB_ROUTER_ITSP_IP/24" bisp rti
plug itsp eth0 "$TB_ITSP_IP/24" bisp isp
add_route itsp default via "$TB_ROUTER_ITSP_IP"
plug remote eth0 "$TB_REMOTE_IP/24" bwan rem
add_route remote default via "$TB_ROUTER_IP"
# The attacker also routes every private network through the host in front of it, so that a
# test can show that nothing gets through (sipwarden's host does not forward; the home routers
# drop what nobody inside asked for).
plug attacker eth0 "$TB_ATTACKER_IP/24" bwan atk
add_route attacker default via "$TB_ROUTER_IP"
add_route attacker "$TB_LAN_NET" via "$TB_SBC_WAN_IP"
add_route attacker 10.0.1.0/24 via "$TB_NATSYM_IP"
add_route attacker 10.0.2.0/24 via "$TB_NATPP_IP"

plug nat-sym wan "$TB_NATSYM_IP/24" bwan nsw
plug nat-sym lan "$TB_NATSYM_IN_IP/24" bhs nsl
add_route nat-sym default via "$TB_ROUTER_IP"
plug home-sym eth0 "$TB_HOMESYM_IP/24" bhs hs
add_route home-sym default via "$TB_NATSYM_IN_IP"

plug nat-pp wan "$TB_NATPP_IP/24" bwan npw
plug nat-pp lan "$TB_NATPP_IN_IP/24" bhp npl
add_route nat-pp default via "$TB_ROUTER_IP"
plug home-pp eth0 "$TB_HOMEPP_IP/24" bhp hp
add_route home-pp default via "$TB_NATPP_IN_IP"

# ---------------------------------------------------------------------------------------------
# The home routers. Both drop what arrives from the WAN unless it belongs to a flow started from
# inside (conntrack state); they differ in how they map ports.
home_router() {
    local host="$1" inside="$2" masq="$3"
    ip netns exec "$(tb_ns "$prefix" "$host")" nft -f - <<EOF
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" ip saddr $inside $masq
    }
}
table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
        ct state established,related accept
        iifname "lan" accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan" oifname "wan" accept
    }
}
EOF
}
# Symmetric: every new flow gets a random external port, even from the same inside port
# (endpoint-dependent mapping, the hardest case for NAT traversal): nftables' fully-random is
# iptables' --random-fully.
home_router nat-sym 10.0.1.0/24 "masquerade fully-random"
# Port-preserving: the external port is the inside port whenever it is free.
home_router nat-pp 10.0.2.0/24 "masquerade"
# The symmetric NAT forgets an idle UDP mapping after 30 s, whether or not replies were seen
# (Linux: 30 s unreplied, 120 s once a reply was seen), as cheap home routers do: keep-alives
# must come more often than that. The port-preserving one keeps Linux's defaults.
ip netns exec "$(tb_ns "$prefix" nat-sym)" sysctl -qw \
    net.netfilter.nf_conntrack_udp_timeout=30 \
    net.netfilter.nf_conntrack_udp_timeout_stream=30

# ---------------------------------------------------------------------------------------------
cat >"$rundir/testbed.env" <<EOF
# The sipwarden testbed '$prefix', built $(date -u +%Y-%m-%dT%H:%M:%SZ) by tests/testbed/up.sh
TB_PREFIX=$prefix
TB_PHONES=$phones
EOF

if [[ ${TB_PBX:-1} != 0 ]]; then
    tb_pbx_start "$prefix"
    pbx_state="Kamailio running (PID $(cat "$rundir/kamailio.pid"), log $rundir/kamailio.log)"
else
    pbx_state="Kamailio not started (TB_PBX=0; tb_pbx_start $prefix)"
fi
built=1
trap - ERR

echo "testbed '$prefix' is up: namespaces $prefix-HOST, run 'tests/testbed/down.sh $prefix' to remove it"
printf '  %-9s %-16s %s\n' HOST NAMESPACE ADDRESSES
for host in "${hosts[@]}"; do
    ns="$(tb_ns "$prefix" "$host")"
    addrs="$(ip -n "$ns" -4 -o addr show scope global | awk '{printf "%s %s  ", $2, $4}')"
    printf '  %-9s %-16s %s\n' "$host" "$ns" "$addrs"
done
printf '  %-9s %-16s %s\n' switch "$sw" "bridges $prefix-blan (LAN) $prefix-bwan (WAN) $prefix-bisp (ITSP) $prefix-bhs $prefix-bhp (homes)"
echo "  PBX: $pbx_state"
echo "  run a command on a host: . tests/testbed/lib.sh; tb_exec $prefix HOST CMD..."
