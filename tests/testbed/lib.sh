# shellcheck shell=bash disable=SC2034 # the TB_ variables are for the scripts that source it
# Helpers of the sipwarden network-namespace testbed (tests/testbed/README.md).
# Source it from bash:  . tests/testbed/lib.sh
#
# Every testbed is named by a PREFIX (1 to 10 characters: a letter, then letters and digits; no
# `-`, so that the prefix `tb1` never matches the namespaces of `tb12`). Each host is the
# network namespace PREFIX-HOST; each interface in the switch namespace is PREFIX-something.
#
# Functions (PREFIX first, like the scripts):
#   tb_require_root                  exit 77 with "SKIPPED: ..." unless root with `ip netns`
#   tb_check_prefix PREFIX           exit 2 unless PREFIX is a valid prefix
#   tb_new_prefix                    print a fresh prefix (tb + PID)
#   tb_ns PREFIX HOST                print the namespace name of HOST
#   tb_ip HOST                       print HOST's address (sbc: LAN; sbc-wan, router-itsp too)
#   tb_exec PREFIX HOST CMD...       run CMD in HOST's namespace
#   tb_hosts PREFIX                  print the hosts of the running testbed, one per line
#   tb_phones PREFIX                 print the number of phones of the running testbed
#   tb_rundir PREFIX                 print the directory of the testbed's logs and PID files
#   tb_bg PREFIX HOST NAME CMD...    start CMD in the background in HOST; its output goes to
#                                    RUNDIR/NAME.log, its PID to RUNDIR/NAME.pid; prints the PID
#   tb_stop PREFIX NAME              stop the process started as NAME (TERM, then KILL), by PID
#   tb_pbx_start PREFIX              start Kamailio (kamailio/pbx.cfg) on the PBX, wait for it
#   tb_pbx_stop PREFIX               stop it
#   tb_wait_udp PREFIX HOST ADDR:PORT [SECONDS]   wait until HOST listens on UDP ADDR:PORT
#   tb_wait_tcp PREFIX HOST ADDR:PORT [SECONDS]   the same for a listening TCP socket
#   tb_new_ns NS FORWARD             (up.sh) a namespace with loopback up
#   tb_plug PREFIX HOST IFNAME ADDR BRIDGE PORT   (up.sh) wire HOST to a bridge of the switch

TB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Logs, PID files and the testbed's description (testbed.env), one directory per prefix.
TB_RUN_BASE="${TB_RUN_BASE:-/run/sipwarden-testbed}"

# The addresses (TESTBED.md). Tests should use these names rather than literals.
TB_LAN_NET=192.168.10.0/24
TB_WAN_NET=198.51.100.0/24
TB_ITSP_NET=203.0.113.0/24
TB_PBX_IP=192.168.10.10
TB_SBC_LAN_IP=192.168.10.1
TB_SBC_WAN_IP=198.51.100.1
TB_ROUTER_IP=198.51.100.254
TB_ROUTER_ITSP_IP=203.0.113.254
TB_REMOTE_IP=198.51.100.70
TB_ATTACKER_IP=198.51.100.66
TB_ITSP_IP=203.0.113.10
TB_NATSYM_IP=198.51.100.50
TB_NATSYM_IN_IP=10.0.1.1
TB_HOMESYM_IP=10.0.1.2
TB_NATPP_IP=198.51.100.60
TB_NATPP_IN_IP=10.0.2.1
TB_HOMEPP_IP=10.0.2.2
TB_MAX_PHONES=9

# The fixed hosts; phone1..phoneN come on top.
TB_FIXED_HOSTS=(pbx sbc router remote attacker itsp nat-sym nat-pp home-sym home-pp)

tb_require_root() {
    local why=""
    if [[ $(id -u) -ne 0 ]]; then
        why="not root"
    elif ! command -v ip >/dev/null 2>&1; then
        why="ip (iproute2) not found"
    elif ! command -v nft >/dev/null 2>&1; then
        why="nft (nftables) not found"
    elif ! ip netns list >/dev/null 2>&1; then
        why="ip netns does not work here"
    elif ! unshare --net true 2>/dev/null; then
        why="cannot create network namespaces (unshare --net failed)"
    fi
    if [[ -n $why ]]; then
        echo "SKIPPED: needs root and ip netns ($why)"
        exit 77
    fi
}

tb_check_prefix() {
    if [[ ! ${1:-} =~ ^[A-Za-z][A-Za-z0-9]{0,9}$ ]]; then
        echo "testbed: bad prefix '${1:-}': 1 to 10 letters and digits, starting with a letter" \
            "(interface names are PREFIX plus up to 5 characters, and Linux allows 15)" >&2
        exit 2
    fi
}

tb_new_prefix() {
    echo "tb$$"
}

tb_ns() {
    echo "$1-$2"
}

tb_ip() {
    case "$1" in
    pbx) echo "$TB_PBX_IP" ;;
    sbc | sbc-lan) echo "$TB_SBC_LAN_IP" ;;
    sbc-wan) echo "$TB_SBC_WAN_IP" ;;
    router) echo "$TB_ROUTER_IP" ;;
    router-itsp) echo "$TB_ROUTER_ITSP_IP" ;;
    remote) echo "$TB_REMOTE_IP" ;;
    attacker) echo "$TB_ATTACKER_IP" ;;
    itsp) echo "$TB_ITSP_IP" ;;
    nat-sym) echo "$TB_NATSYM_IP" ;;
    nat-pp) echo "$TB_NATPP_IP" ;;
    home-sym) echo "$TB_HOMESYM_IP" ;;
    home-pp) echo "$TB_HOMEPP_IP" ;;
    phone[1-9]) echo "192.168.10.$((20 + ${1#phone}))" ;;
    *)
        echo "testbed: unknown host '$1'" >&2
        return 1
        ;;
    esac
}

tb_rundir() {
    echo "$TB_RUN_BASE/$1"
}

tb_phones() {
    local env
    env="$(tb_rundir "$1")/testbed.env"
    if [[ -r $env ]]; then
        sed -n 's/^TB_PHONES=//p' "$env"
    else
        echo 0
    fi
}

tb_hosts() {
    local n i
    printf '%s\n' "${TB_FIXED_HOSTS[@]}"
    n="$(tb_phones "$1")"
    for ((i = 1; i <= n; i++)); do
        echo "phone$i"
    done
}

tb_exec() {
    local prefix="$1" host="$2"
    shift 2
    if ! ip netns exec "$(tb_ns "$prefix" "$host")" true 2>/dev/null; then
        echo "testbed: no host '$host' in testbed '$prefix' (is it up? tests/testbed/up.sh $prefix)" >&2
        return 1
    fi
    ip netns exec "$(tb_ns "$prefix" "$host")" "$@"
}

tb_bg() {
    local prefix="$1" host="$2" name="$3" dir pid
    shift 3
    dir="$(tb_rundir "$prefix")"
    mkdir -p "$dir"
    ip netns exec "$(tb_ns "$prefix" "$host")" "$@" >"$dir/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/$name.pid"
    echo "$pid"
}

# Stops one process by the PID recorded when it was started; waits up to 5 s before KILL.
tb_stop_pid() {
    local pid="$1" i
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

tb_stop() {
    local pidfile
    pidfile="$(tb_rundir "$1")/$2.pid"
    [[ -r $pidfile ]] || return 0
    tb_stop_pid "$(cat "$pidfile")"
    rm -f "$pidfile"
}

tb_wait_udp() {
    local prefix="$1" host="$2" addr="$3" secs="${4:-10}" i
    for ((i = 0; i < secs * 10; i++)); do
        if tb_exec "$prefix" "$host" ss -Hlun "src $addr" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

tb_wait_tcp() {
    local prefix="$1" host="$2" addr="$3" secs="${4:-10}" i
    for ((i = 0; i < secs * 10; i++)); do
        if tb_exec "$prefix" "$host" ss -Hltn "src $addr" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# A namespace NS with loopback up and IPv4 forwarding FORWARD (0 or 1). IPv6 is off on the
# interfaces added later (default.disable_ipv6): no router solicitations or DAD probes in the
# captures, and IPv4 is the whole topology; loopback keeps ::1.
tb_new_ns() {
    local ns="$1" forward="$2"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward="$forward"
}

# A veth from HOST's interface IFNAME (address ADDR, a CIDR) to the port PREFIX-PORT of the
# bridge PREFIX-BRIDGE in the switch. The pair is created from inside the switch namespace with
# its other end directly in HOST, so no interface ever exists in the root namespace.
tb_plug() {
    local prefix="$1" host="$2" ifname="$3" addr="$4" bridge="$5" port="$6" sw ns
    sw="$(tb_ns "$prefix" sw)"
    ns="$(tb_ns "$prefix" "$host")"
    ip -n "$sw" link add "$prefix-$port" type veth peer name "$ifname" netns "$ns"
    ip -n "$sw" link set "$prefix-$port" master "$prefix-$bridge" up
    ip -n "$ns" addr add "$addr" dev "$ifname"
    ip -n "$ns" link set "$ifname" up
}

tb_pbx_start() {
    local prefix="$1" dir
    dir="$(tb_rundir "$prefix")"
    mkdir -p "$dir/kamailio"
    if [[ -r $dir/kamailio.pid ]] && kill -0 "$(cat "$dir/kamailio.pid")" 2>/dev/null; then
        return 0
    fi
    # -DD: Kamailio's main process stays in the foreground, so its PID is the one recorded;
    # -Y: its runtime directory per testbed, so that parallel PBXs do not share sockets.
    tb_bg "$prefix" pbx kamailio kamailio -f "$TB_DIR/kamailio/pbx.cfg" -DD -E \
        -Y "$dir/kamailio" -m 32 -M 4 >/dev/null
    if ! tb_wait_udp "$prefix" pbx "$TB_PBX_IP:5060" 10 ||
        ! tb_wait_tcp "$prefix" pbx "$TB_PBX_IP:5060" 5; then
        echo "testbed: Kamailio did not start on the PBX; its log ($dir/kamailio.log):" >&2
        tail -20 "$dir/kamailio.log" >&2
        return 1
    fi
}

tb_pbx_stop() {
    tb_stop "$1" kamailio
}

# tb_scenario_tools REPO: what the call scenarios (scenarios/*.sh) need, or `SKIPPED` and exit 77:
# the tools, an RTP sample to play (sets `pcap`: $ITSP_PCAP or SIPp's G.711 sample) and a
# sipwarden binary (sets `bin`: $SIPWARDEN_BIN, else REPO's release build, else its debug one).
tb_scenario_tools() {
    local repo="$1" tool c
    for tool in sipp dumpcap python3 kamailio; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "SKIPPED: $tool not found (apt-get install sip-tester tshark kamailio)"
            exit 77
        fi
    done
    pcap="${ITSP_PCAP:-/usr/share/sip-tester/g711a.pcap}"
    if [[ ! -r $pcap ]]; then
        echo "SKIPPED: no RTP sample to play ($pcap; set ITSP_PCAP)"
        exit 77
    fi
    bin="${SIPWARDEN_BIN:-}"
    if [[ -z $bin ]]; then
        for c in "${CARGO_TARGET_DIR:-$repo/target}/release/sipwarden" "$repo/target/release/sipwarden" \
            "${CARGO_TARGET_DIR:-$repo/target}/debug/sipwarden"; do
            if [[ -x $c ]]; then
                bin="$c"
                break
            fi
        done
    fi
    if [[ -z $bin || ! -x $bin ]]; then
        echo "SKIPPED: no sipwarden binary (cargo build --release -p sipwarden, or set SIPWARDEN_BIN)"
        exit 77
    fi
}
