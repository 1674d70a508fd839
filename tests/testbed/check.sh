#!/usr/bin/env bash
# Self-test of a running sipwarden testbed (tests/testbed/README.md): proves that the topology
# is what the end-to-end tests assume. Prints one "PASS: ..." or "FAIL: ..." line per check and
# a summary; exits 1 if any check failed, 77 when it cannot run here, 2 on bad arguments.
#
# Usage: tests/testbed/check.sh PREFIX     (after tests/testbed/up.sh PREFIX)
# Environment: TB_QUICK=1 skips the one slow check (the symmetric NAT forgets an idle mapping
# after 30 s, which takes 35 s to observe; it runs alongside the others). The sysctl values are
# checked either way.
#
# Needs python3 (nettool.py: ping, UDP echo) and sipp (Debian: sip-tester). Everything it starts
# runs under `timeout` and is stopped by PID at the end; it adds one namespace, PREFIX-probe
# (a LAN host whose default route points at sipwarden's host), and removes it again.
set -uo pipefail
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
for tool in python3 sipp timeout ss; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check: $tool not found (Debian: apt-get install python3 sip-tester coreutils iproute2)" >&2
        exit 2
    fi
done
if ! ip netns exec "$(tb_ns "$prefix" sbc)" true 2>/dev/null; then
    echo "check: no testbed '$prefix' (run tests/testbed/up.sh $prefix first)" >&2
    exit 2
fi

tool="$here/nettool.py"
sippdir="$here/sipp"
work="$(mktemp -d "${TMPDIR:-/tmp}/testbed-check.XXXXXX")"
probe="$(tb_ns "$prefix" probe)"
pids=()
started_pbx=""
passed=0
failed=0

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$probe" 2>/dev/null || true
    if [[ -n ${started_pbx:-} ]]; then
        tb_pbx_stop "$prefix"
    fi
    if ((failed)); then
        echo "check: outputs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

pass() {
    echo "PASS: $*"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
# on HOST CMD...: CMD in HOST's namespace, bounded in time.
on() {
    local host="$1"
    shift
    timeout 60 ip netns exec "$(tb_ns "$prefix" "$host")" "$@"
}
# spawn HOST CMD...: the same in the background; the PID is recorded for cleanup.
spawn() {
    local host="$1"
    shift
    timeout 180 ip netns exec "$(tb_ns "$prefix" "$host")" "$@" &
    pids+=($!)
}
# reaches HOST ADDR / blocked HOST ADDR: ICMP echo. Timeouts are generous: the machine may be
# loaded (a reply is waited for only as long as it takes to come).
reaches() {
    local out
    if out="$(on "$1" python3 "$tool" ping "$2" --timeout 3)" ||
        out="$(on "$1" python3 "$tool" ping "$2" --timeout 3)"; then
        pass "$1 reaches $2"
    else
        fail "$1 does not reach $2 ($out)"
    fi
}
blocked() {
    local out
    if out="$(on "$1" python3 "$tool" ping "$2" --timeout 1.5)"; then
        fail "$1 reaches $2, which it must not ($out)"
    else
        pass "$1 cannot reach $2 ($out)"
    fi
}
# wait_line FILE REGEX SECONDS: wait until FILE has a line matching REGEX.
wait_line() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

phones="$(tb_phones "$prefix")"
lan_hosts=(pbx)
for ((i = 1; i <= phones; i++)); do
    lan_hosts+=("phone$i")
done
wan_hosts=(router remote attacker nat-sym nat-pp)

echo "== testbed '$prefix': $phones phones"

# ---------------------------------------------------------------------------------------------
# The echo server, started first: remote answers on 9000-9003 with what the NATs made of a
# sender.
spawn remote python3 "$tool" echo-server --bind "$TB_REMOTE_IP" --port 9000 --port 9001 \
    --port 9002 --port 9003 --lifetime 150
tb_wait_udp "$prefix" remote "$TB_REMOTE_IP:9003" 5 || fail "echo server on remote did not start"

# The slow NAT timeout check starts now and is collected at the end. Two flows from home-sym,
# each answered at once (that creates the mapping) and once more later by the echo server: the
# answer 26 s later must arrive (the mapping is alive), the one 34 s later must not (an idle
# mapping lives 30 s). Separate inside ports, so the flows do not refresh each other.
if [[ ${TB_QUICK:-0} != 1 ]]; then
    spawn home-sym python3 "$tool" query --sport 41000 --to "$TB_REMOTE_IP:9002" --msg "again 26" \
        --wait-more 29 >"$work/nat-alive.out"
    spawn home-sym python3 "$tool" query --sport 41001 --to "$TB_REMOTE_IP:9003" --msg "again 34" \
        --wait-more 37 >"$work/nat-expired.out"
    timeout_pids=("${pids[-2]}" "${pids[-1]}")
fi

# ---------------------------------------------------------------------------------------------
echo "== sipwarden's host"
fwd="$(on sbc sysctl -n net.ipv4.ip_forward)"
if [[ $fwd == 0 ]]; then
    pass "sbc: net.ipv4.ip_forward = 0"
else
    fail "sbc: net.ipv4.ip_forward = $fwd, must be 0"
fi
addrs="$(on sbc ip -4 -o addr show scope global | awk '{print $2, $4}' | sort | tr '\n' ' ')"
if [[ $addrs == "lan 192.168.10.1/24 wan 198.51.100.1/24 " ]]; then
    pass "sbc: addresses $addrs"
else
    fail "sbc: addresses are '$addrs', expected lan 192.168.10.1/24 and wan 198.51.100.1/24"
fi

echo "== LAN: reaches the PBX and sipwarden's LAN address, nothing beyond"
for host in "${lan_hosts[@]}"; do
    [[ $host != pbx ]] && reaches "$host" "$TB_PBX_IP"
    reaches "$host" "$TB_SBC_LAN_IP"
    routes="$(on "$host" ip -4 route show | grep -v "^$TB_LAN_NET " || true)"
    if [[ -z $routes ]]; then
        pass "$host: no route beyond $TB_LAN_NET"
    else
        fail "$host: routes beyond the LAN: $routes"
    fi
    blocked "$host" "$TB_SBC_WAN_IP"
    blocked "$host" "$TB_ROUTER_IP"
done

echo "== WAN: reaches sipwarden's WAN address, not the LAN"
for host in "${wan_hosts[@]}" itsp home-sym home-pp; do
    reaches "$host" "$TB_SBC_WAN_IP"
done
for host in router remote itsp; do
    blocked "$host" "$TB_PBX_IP"
done
reaches remote "$TB_ITSP_IP"
reaches itsp "$TB_REMOTE_IP"

echo "== nothing crosses sipwarden's host (IP forwarding off)"
# A LAN host that sends everything to sipwarden's host, and the attacker, which routes the LAN
# through it: their packets reach the host but must go no further. A round trip cannot show it
# (the far side has no route back), so each check listens at the far end for a datagram that
# must not arrive, after a control datagram from a host that may reach it has arrived.
#
# one_way SENDER DEST_HOST DEST_IP PORT CONTROL_HOST: PASS if DEST_HOST receives the control
# datagram and nothing from SENDER.
one_way() {
    local sender="$1" dest="$2" destip="$3" port="$4" control="$5" out lpid got
    out="$work/one-way-$sender-$dest.out"
    spawn "$dest" python3 "$tool" listen --port "$port" --timeout 4 >"$out"
    lpid=$!
    if ! tb_wait_udp "$prefix" "$dest" "0.0.0.0:$port" 3; then
        fail "listener on $dest:$port did not start"
        return
    fi
    on "$sender" python3 "$tool" send --to "$destip:$port" --msg "from-$sender" >/dev/null
    on "$control" python3 "$tool" send --to "$destip:$port" --msg control >/dev/null
    wait "$lpid" 2>/dev/null
    got="$(cat "$out")"
    if ! grep -q ' control$' <<<"$got"; then
        fail "control: $control's datagram did not reach $dest $destip:$port ($got)"
    elif grep -q " from-$sender\$" <<<"$got"; then
        fail "$sender's datagram crossed to $dest $destip:$port ($got)"
    else
        pass "$sender's datagram to $dest $destip:$port did not cross (a control datagram from $control did)"
    fi
}
ip netns del "$probe" 2>/dev/null || true
if tb_new_ns "$probe" 0 && tb_plug "$prefix" probe eth0 192.168.10.99/24 blan prb &&
    ip -n "$probe" route add default via "$TB_SBC_LAN_IP"; then
    reaches probe "$TB_SBC_LAN_IP"
    blocked probe "$TB_ROUTER_IP"
    one_way probe remote "$TB_REMOTE_IP" 9100 router
    one_way probe itsp "$TB_ITSP_IP" 9100 router
    one_way probe router "$TB_ROUTER_IP" 9101 remote
else
    fail "could not add the probe host $probe to the LAN"
fi
blocked attacker "$TB_PBX_IP"
one_way attacker pbx "$TB_PBX_IP" 9100 phone1
one_way attacker phone1 "$(tb_ip phone1)" 9100 pbx

# ---------------------------------------------------------------------------------------------
echo "== home routers"
# query_map HOST SPORT PORT...: the external address of each flow, one per line.
query_map() {
    local host="$1" sport="$2" port args=()
    shift 2
    for port in "$@"; do
        args+=(--to "$TB_REMOTE_IP:$port")
    done
    on "$host" python3 "$tool" query --sport "$sport" "${args[@]}" --timeout 5 |
        awk '$1 == "reply" {print $3}'
}
# Symmetric: the same inside port towards two destinations gets two external ports. A random
# pick may collide (about 1 in 64000): try three inside ports before calling it a failure.
sym_ok=0
for sport in 40000 40001 40002; do
    mapfile -t map < <(query_map home-sym "$sport" 9000 9001)
    if ((${#map[@]} == 2)) && [[ ${map[0]%:*} == "$TB_NATSYM_IP" && ${map[1]%:*} == "$TB_NATSYM_IP" &&
        ${map[0]} != "${map[1]}" ]]; then
        sym_ok=1
        break
    fi
done
if ((sym_ok)); then
    pass "nat-sym: $TB_HOMESYM_IP:$sport to two destinations appears as ${map[0]} and ${map[1]}"
else
    fail "nat-sym: flows from $TB_HOMESYM_IP:$sport appear as '${map[*]:-nothing}', expected two ports of $TB_NATSYM_IP"
fi
mapfile -t map < <(query_map home-pp 40000 9000 9001)
if ((${#map[@]} == 2)) && [[ ${map[0]} == "$TB_NATPP_IP:40000" && ${map[1]} == "$TB_NATPP_IP:40000" ]]; then
    pass "nat-pp: $TB_HOMEPP_IP:40000 to two destinations appears as ${map[0]} both times"
else
    fail "nat-pp: flows from $TB_HOMEPP_IP:40000 appear as '${map[*]:-nothing}', expected $TB_NATPP_IP:40000"
fi

# Unsolicited inbound: to the routers' own address, to the hosts behind them (the attacker
# routes 10.0.1.0/24 and 10.0.2.0/24 to them), and to a live mapping from another address.
for spec in "nat-sym $TB_NATSYM_IP home-sym $TB_HOMESYM_IP 42000" "nat-pp $TB_NATPP_IP home-pp $TB_HOMEPP_IP 42000"; do
    read -r nat natip home homeip sport <<<"$spec"
    blocked attacker "$natip"
    blocked attacker "$homeip"
    out="$work/$home-inbound.out"
    spawn "$home" python3 "$tool" query --sport "$sport" --to "$TB_REMOTE_IP:9000" --timeout 5 \
        --wait-more 6 >"$out"
    qpid=$!
    spawn "$home" python3 "$tool" listen --port 5060 --timeout 14 >"$work/$home-listen.out"
    lpid=$!
    if ! wait_line "$out" '^(reply|noreply)' 8 || ! grep -q '^reply' "$out"; then
        fail "$nat: no mapping for $homeip:$sport ($(cat "$out"))"
        wait "$qpid" "$lpid" 2>/dev/null
        continue
    fi
    mapped="$(awk '$1 == "reply" {print $3; exit}' "$out")"
    tb_wait_udp "$prefix" "$home" "0.0.0.0:5060" 5 || true
    for dest in "$natip:5060" "$homeip:5060" "$homeip:$sport" "$mapped"; do
        on attacker python3 "$tool" send --to "$dest" --msg "unsolicited to $dest" >/dev/null
    done
    wait "$qpid" "$lpid" 2>/dev/null
    got="$(grep -h -e '^late' -e '^got' "$out" "$work/$home-listen.out")"
    if [[ -z $got ]]; then
        pass "$nat: drops unsolicited UDP from the attacker to $natip:5060, $homeip:5060, $homeip:$sport and to the live mapping $mapped"
    else
        fail "$nat: let unsolicited UDP in: $got"
    fi
done

timeouts="$(on nat-sym sysctl -n net.netfilter.nf_conntrack_udp_timeout net.netfilter.nf_conntrack_udp_timeout_stream | tr '\n' ' ')"
if [[ $timeouts == "30 30 " ]]; then
    pass "nat-sym: UDP conntrack timeouts (unreplied, replied) are 30 s"
else
    fail "nat-sym: UDP conntrack timeouts (unreplied, replied) are '$timeouts', expected 30 30"
fi

# ---------------------------------------------------------------------------------------------
echo "== the PBX (Kamailio)"
# run_sipp HOST NAME ARGS...: one SIPp run in HOST, bounded, output in $work/NAME.*
run_sipp() {
    local host="$1" name="$2"
    shift 2
    (cd "$work" && on "$host" sipp "$@" -nostdin -timeout 15s -timeout_error \
        -trace_msg -message_file "$work/$name.msg" -trace_err -error_file "$work/$name.err" \
        >"$work/$name.out" 2>&1)
}
rundir="$(tb_rundir "$prefix")"
# The PBX as up.sh left it; if it was left stopped (TB_PBX=0), this starts it for the checks and
# stops it again at the end.
kpid="$(cat "$rundir/kamailio.pid" 2>/dev/null || true)"
if [[ -z $kpid ]] || ! kill -0 "$kpid" 2>/dev/null; then
    if tb_pbx_start "$prefix"; then
        started_pbx=1
        kpid="$(cat "$rundir/kamailio.pid" 2>/dev/null || true)"
    fi
fi
if [[ -n $kpid ]] && kill -0 "$kpid" 2>/dev/null &&
    [[ $(ip netns identify "$kpid" 2>/dev/null) == "$(tb_ns "$prefix" pbx)" ]]; then
    pass "pbx: Kamailio ${started_pbx:+started and }runs (PID $kpid) in $(tb_ns "$prefix" pbx)"
else
    fail "pbx: Kamailio does not run in $(tb_ns "$prefix" pbx) (log: $rundir/kamailio.log)"
fi
if tb_wait_udp "$prefix" pbx "$TB_PBX_IP:5060" 1 && tb_wait_tcp "$prefix" pbx "$TB_PBX_IP:5060" 1; then
    pass "pbx: listens on $TB_PBX_IP:5060 over UDP and TCP"
else
    fail "pbx: not listening on $TB_PBX_IP:5060 over both UDP and TCP"
fi

phone1="$(tb_ip phone1)"
phone2="$(tb_ip phone2)"
if run_sipp phone1 register-udp "$TB_PBX_IP:5060" -sf "$sippdir/register.xml" -i "$phone1" -p 5070 \
    -m 1 -key user 2001 -key domain "$TB_PBX_IP" -key contact "sip:2001@$phone1:5060" -key expires 600; then
    pass "pbx: REGISTER over UDP from phone1 (sip:2001@$TB_PBX_IP) gets 200"
else
    fail "pbx: REGISTER over UDP from phone1 failed (SIPp exit $?; $work/register-udp.msg)"
fi
if run_sipp phone2 register-tcp "$TB_PBX_IP:5060" -t t1 -sf "$sippdir/register.xml" -i "$phone2" -p 5070 \
    -m 1 -key user 2002 -key domain "$TB_PBX_IP" -key contact "sip:2002@$phone2:5060" -key expires 600; then
    pass "pbx: REGISTER over TCP from phone2 (sip:2002@$TB_PBX_IP) gets 200"
else
    fail "pbx: REGISTER over TCP from phone2 failed (SIPp exit $?; $work/register-tcp.msg)"
fi
# A call from 2001 to 2002: the PBX looks 2002 up and stays on the path (Record-Route), so the
# ACK and BYE pass through it too.
(cd "$work" && on phone2 sipp -sf "$sippdir/call-uas.xml" -i "$phone2" -p 5060 -m 1 -nostdin \
    -timeout 15s -timeout_error -trace_msg -message_file "$work/call-uas.msg" >"$work/call-uas.out" 2>&1) &
uas=$!
pids+=("$uas")
tb_wait_udp "$prefix" phone2 "$phone2:5060" 5 || true
if run_sipp phone1 call-uac "$TB_PBX_IP:5060" -sf "$sippdir/call-uac.xml" -i "$phone1" -p 5060 -m 1 \
    -key caller 2001 -key callee 2002 -key domain "$TB_PBX_IP" && wait "$uas" &&
    grep -q "^Record-Route: <sip:$TB_PBX_IP;lr" "$work/call-uas.msg" &&
    grep -q "^BYE sip:2002@\|^BYE sip:$phone2" "$work/call-uas.msg"; then
    pass "pbx: call 2001 -> 2002 (INVITE, 200, ACK, BYE through the record-routing PBX)"
else
    fail "pbx: call 2001 -> 2002 failed ($work/call-uac.msg, $work/call-uas.msg)"
fi

# ---------------------------------------------------------------------------------------------
if [[ ${TB_QUICK:-0} != 1 ]]; then
    echo "== nat-sym forgets an idle UDP mapping after 30 s (waiting for the 34 s probe)"
    wait "${timeout_pids[@]}" 2>/dev/null
    alive="$(cat "$work/nat-alive.out")"
    expired="$(cat "$work/nat-expired.out")"
    if grep -q '^reply' <<<"$alive" && grep -q '^late .* again ' <<<"$alive"; then
        pass "nat-sym: a mapping idle for 26 s still lets the answer in"
    else
        fail "nat-sym: a mapping idle for 26 s no longer lets the answer in ($alive)"
    fi
    if grep -q '^reply' <<<"$expired" && ! grep -q '^late' <<<"$expired"; then
        pass "nat-sym: a mapping idle for 34 s is gone (the late answer was dropped)"
    else
        fail "nat-sym: a mapping idle for 34 s still lets the answer in, or none was made ($expired)"
    fi
else
    echo "SKIP: nat-sym 30 s mapping lifetime observed (TB_QUICK=1; the sysctls were checked)"
fi

echo "== check '$prefix': $passed passed, $failed failed"
((failed == 0))
