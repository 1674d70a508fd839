#!/usr/bin/env bash
# End-to-end on the testbed (tests/testbed/README.md): a remote phone behind a home NAT
# registers through sipwarden to the PBX, stays idle longer than its NAT's UDP timeout, then a
# LAN phone calls it through the PBX; the call is answered and RTP flows both ways.
#
#   home phone (SIPp, 10.0.1.2 behind the symmetric NAT .50; 10.0.2.2 behind the port-preserving
#   NAT .60) --REGISTER--> sipwarden WAN 198.51.100.1 --REGISTER (relayed, Contact
#   sip:USER@192.168.10.1:5060;swreg=...)--> PBX 192.168.10.10
#   ... IDLE_S seconds: the phone refreshes its registration every nat_expires - 10 s (50 s) and
#   answers sipwarden's OPTIONS keep-alives (every 20 s); nothing else reaches it ...
#   LAN phone1 (SIPp 192.168.10.21) --INVITE sip:USER@192.168.10.10--> PBX --> sipwarden LAN
#   (the swreg Contact) --B2BUA, over the phone's NAT flow--> home phone; both play G.711 RTP.
#
# Then the other way: the remote phone calls 2002, a PBX user registered at the PBX only: the
# call goes to the PBX (sipwarden's registrar.upstream) through the B2BUA, with RTP both ways.
#
# Checked for each NAT: the registration was relayed (the PBX routed the call to sipwarden's
# swreg Contact: the caller's call succeeds only that way), keep-alives reached the phone during
# the idle time, the call succeeded on both sides, sipwarden's media relay counted RTP both
# ways (its "released" line), RTP crossed the home NAT inbound to the phone's media port (an
# nftables counter on the home router), and nothing of 192.168.10.0/24 reached the phone.
#
# Usage: tests/testbed/scenarios/nat-register-call.sh [SIPWARDEN-BINARY]
#   (default: $CARGO_TARGET_DIR/release/sipwarden, else target/release/sipwarden)
# Environment:
#   IDLE_S=120        idle time before the call (the issue asks for 2 minutes; 40 is enough to
#                     outlast the symmetric NAT's 30 s while iterating)
#   NATS=sym          which home NATs to test, e.g. "sym pp" (sym: 198.51.100.50, pp:
#                     198.51.100.60; nat-register-call-pp.sh runs pp with 45 s idle)
#   TRANSPORT=udp     the phone's transport, udp or tcp (over TCP the phone is called on its
#                     registration's connection; sipwarden's keep-alives are then CRLF CRLF on
#                     the connection, which SIPp's trace does not show: that check is skipped)
#   TB_PREFIX=...     testbed prefix (default: nr + PID); it is built here and torn down at exit
#   KEEP=1            keep the work directory (logs, SIPp traces) even when everything passed
#   KEEPALIVE_S=N     override registrar.nat_keepalive_s; KEEPALIVE_S=0 is the negative control:
#                     without keep-alives the symmetric NAT forgets the phone and the call fails
# Exit: 0 all passed, 1 a check failed, 2 bad setup, 77 cannot run here (not root, no netns).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tbdir="$(cd "$here/.." && pwd)"
root="$(cd "$tbdir/../.." && pwd)"
# shellcheck source=tests/testbed/lib.sh
. "$tbdir/lib.sh"

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIPPED: nat-register-call needs root (network namespaces, nftables); run it with sudo"
    exit 77
fi
tb_require_root

bin="${1:-${SIPWARDEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/sipwarden}}"
if [[ ! -x $bin ]]; then
    echo "nat-register-call: no sipwarden binary at $bin (cargo build --release -p sipwarden)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for tool in sipp kamailio python3 timeout nft ss; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "nat-register-call: $tool not found (Debian: sip-tester kamailio python3 coreutils nftables iproute2)" >&2
        exit 2
    fi
done
pcap=/usr/share/sip-tester/g711a.pcap
if [[ ! -r $pcap ]]; then
    echo "nat-register-call: $pcap missing (Debian package sip-tester)" >&2
    exit 2
fi

IDLE_S="${IDLE_S:-120}"
TRANSPORT="${TRANSPORT:-udp}"
case "$TRANSPORT" in
udp) tflag=u1 ;;
tcp) tflag=t1 ;;
*)
    echo "nat-register-call: TRANSPORT must be udp or tcp, got $TRANSPORT" >&2
    exit 2
    ;;
esac
NATS="${NATS:-sym}"
prefix="${TB_PREFIX:-nr$$}"
tb_check_prefix "$prefix"
work="$(mktemp -d "${TMPDIR:-/tmp}/nat-register-call.XXXXXX")"
sippdir="$here/sipp"
passed=0
failed=0
bg=()

cleanup() {
    local name
    for name in "${bg[@]}"; do
        tb_stop "$prefix" "$name"
    done
    cp -f "$(tb_rundir "$prefix")"/*.log "$work/" 2>/dev/null || true
    "$tbdir/down.sh" "$prefix" >/dev/null 2>&1 || echo "nat-register-call: down.sh $prefix failed"
    if ((failed)) || [[ -n ${KEEP:-} ]]; then
        echo "nat-register-call: logs and traces kept in $work"
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
# start HOST NAME CMD...: a background process in HOST, stopped by PID at exit.
start() {
    local host="$1" name="$2"
    shift 2
    bg+=("$name")
    tb_bg "$prefix" "$host" "$name" "$@" >/dev/null
}
logof() {
    echo "$(tb_rundir "$prefix")/$1.log"
}

echo "nat-register-call: building testbed $prefix"
if ! TB_PHONES=2 "$tbdir/up.sh" "$prefix" >"$work/up.log" 2>&1; then
    echo "nat-register-call: up.sh failed: $(tail -5 "$work/up.log")" >&2
    exit 2
fi

# sipwarden as the reference deployment configures it (examples/testbed.toml), logging debug.
cfg="$work/sbc.toml"
sed 's/^log_level = .*/log_level = "debug"/' "$root/examples/testbed.toml" >"$cfg"
if [[ -n ${KEEPALIVE_S:-} ]]; then
    sed -i "s/^nat_keepalive_s = .*/nat_keepalive_s = $KEEPALIVE_S/" "$cfg"
fi
nat_expires="$(sed -n 's/^nat_expires = \([0-9]*\).*/\1/p' "$cfg")"
keepalive_s="$(sed -n 's/^nat_keepalive_s = \([0-9]*\).*/\1/p' "$cfg")"
mkdir -p "$work/data"
start sbc sipwarden env SIPWARDEN_DATA_DIR="$work/data" "$bin" run --config "$cfg"
for ((i = 0; i < 100; i++)); do
    grep -q "sipwarden is running" "$(logof sipwarden)" 2>/dev/null && break
    sleep 0.1
done
if ! grep -q "sipwarden is running" "$(logof sipwarden)"; then
    echo "nat-register-call: sipwarden did not start: $(tail -5 "$(logof sipwarden)")" >&2
    failed=1
    exit 1
fi
echo "nat-register-call: sipwarden runs (nat_expires $nat_expires s, keep-alives every $keepalive_s s); idle time $IDLE_S s"

# One NAT: USER registers from HOST behind ROUTER, idles, gets called from phone1.
run_nat() {
    local nat="$1" host router user home mport=6000 refresh rounds phone ok
    case "$nat" in
    sym) host=home-sym router=nat-sym user=alice home="$TB_HOMESYM_IP" ;;
    pp) host=home-pp router=nat-pp user=bruno home="$TB_HOMEPP_IP" ;;
    *)
        fail "unknown NAT '$nat' (sym or pp)"
        return
        ;;
    esac
    echo "--- $nat: $user at $home behind $(tb_ip "$router") over $TRANSPORT"
    # Inbound RTP to the phone's media port, counted on its home router.
    tb_exec "$prefix" "$router" nft -f - <<EOF
table ip swtest {
    chain count_in {
        type filter hook forward priority -10; policy accept;
        ip daddr $home udp dport $mport counter
    }
}
EOF
    refresh=$(((nat_expires - 10) * 1000))
    rounds=$(((IDLE_S + 60) * 1000 / refresh + 2))
    phone="phone-$nat"
    start "$host" "$phone" timeout $((IDLE_S + 120)) sipp -nostdin "$TB_SBC_WAN_IP:5060" \
        -sf "$sippdir/nat-phone.xml" -oocsf "$sippdir/nat-phone-ooc.xml" \
        -i "$home" -p 5060 -t "$tflag" -m 1 -mi "$home" -mp "$mport" \
        -key user "$user" -key domain "$TB_SBC_WAN_IP" -key expires 3600 \
        -key refresh_ms "$refresh" -key rounds "$rounds" \
        -trace_msg -message_file "$work/$phone.msg" -trace_logs -log_file "$work/$phone.actions" \
        -trace_err -error_file "$work/$phone.err" ||
        true
    ok=""
    local t0=$SECONDS
    for ((i = 0; i < 100; i++)); do
        if grep -q "^registered: expires=" "$work/$phone.actions" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.1
    done
    if [[ -n $ok ]]; then
        pass "$nat: $user registered through sipwarden ($(grep -m1 '^registered' "$work/$phone.actions"))"
    else
        fail "$nat: $user did not register (sipwarden: $(grep -m3 -i 'register' "$(logof sipwarden)" | tail -3 | tr '\n' ' '))"
        return
    fi
    # The phone refreshes every REFRESH s; the call comes when its last REGISTER is 36 to 46 s
    # old, longer than the symmetric NAT's 30 s: only the keep-alives (and the phone's answers
    # to them) can have kept its mapping. So the idle time is IDLE_S or a little more.
    local r_s=$((refresh / 1000)) wait_s="$IDLE_S" waited
    while (((wait_s % r_s) < 36 || (wait_s % r_s) > r_s - 4)); do
        wait_s=$((wait_s + 1))
    done
    waited=$((SECONDS - t0))
    echo "    idle for $wait_s s (the phone refreshes every $r_s s; its last REGISTER will be $((wait_s % r_s)) s old)"
    sleep $((wait_s > waited ? wait_s - waited : 0))
    local before
    before="$(grep -c '^OPTIONS ' "$work/$phone.msg" 2>/dev/null || true)"
    if [[ $TRANSPORT == tcp ]]; then
        echo "    (over TCP the keep-alives are CRLF CRLF on the connection: not in SIPp's trace)"
    elif [[ ${before:-0} -ge 1 ]]; then
        pass "$nat: $before keep-alive OPTIONS reached the phone through its NAT while idle"
    else
        fail "$nat: no keep-alive reached the phone while idle"
    fi
    # The call: phone1 through the PBX.
    if tb_exec "$prefix" phone1 timeout 60 sipp -nostdin "$TB_PBX_IP:5060" -sf "$sippdir/caller.xml" \
        -i 192.168.10.21 -p 5070 -t u1 -m 1 -mi 192.168.10.21 -mp 7000 \
        -key caller 2001 -key callee "$user" -key domain "$TB_PBX_IP" -key talk_ms 6000 \
        -recv_timeout 20000 -trace_msg -message_file "$work/caller-$nat.msg" \
        -trace_err -error_file "$work/caller-$nat.err" \
        >"$work/caller-$nat.out" 2>&1; then
        pass "$nat: the LAN phone's call to $user through the PBX was answered and ended"
    else
        fail "$nat: the LAN phone's call failed: $(tail -3 "$work/caller-$nat.err" 2>/dev/null | tr '\n' ' ')"
    fi
    if grep -q "^incoming call answered" "$work/$phone.actions"; then
        pass "$nat: $user answered the call on its NAT flow, after $wait_s s idle"
    else
        fail "$nat: the call did not reach $user"
    fi
    sleep 1
    local rel ab ba inbound
    rel="$(grep -o 'released: RTP relayed a->b [0-9]* packets, b->a [0-9]* packets' "$(logof sipwarden)" | tail -1)"
    ab="$(sed -n 's/.*a->b \([0-9]*\) packets.*/\1/p' <<<"$rel")"
    ba="$(sed -n 's/.*b->a \([0-9]*\) packets.*/\1/p' <<<"$rel")"
    if [[ -n $ab && -n $ba && $ab -gt 0 && $ba -gt 0 ]]; then
        pass "$nat: the media relay carried RTP both ways (LAN->phone $ab, phone->LAN $ba packets)"
    else
        fail "$nat: RTP did not flow both ways through the relay (${rel:-no release line})"
    fi
    inbound="$(tb_exec "$prefix" "$router" nft list chain ip swtest count_in | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -1)"
    if [[ ${inbound:-0} -gt 0 ]]; then
        pass "$nat: $inbound RTP packets crossed the home NAT to the phone's media port"
    else
        fail "$nat: no RTP crossed the home NAT to the phone"
    fi
    tb_exec "$prefix" "$router" nft delete table ip swtest 2>/dev/null || true
    # The other way: the remote user calls a PBX user that is not registered at sipwarden
    # (2002 on phone2, registered at the PBX directly): sipwarden sends the call to the PBX,
    # its registrar.upstream, through the B2BUA.
    if tb_exec "$prefix" phone2 timeout 10 sipp -nostdin "$TB_PBX_IP:5060" -sf "$tbdir/sipp/register.xml" \
        -i 192.168.10.22 -p 5071 -t u1 -m 1 -key user 2002 -key domain "$TB_PBX_IP" \
        -key contact "sip:2002@192.168.10.22:5060" -key expires 600 >"$work/reg-2002.out" 2>&1; then
        start phone2 "callee-$nat" timeout 60 sipp -nostdin -sf "$sippdir/nat-phone-ooc.xml" \
            -i 192.168.10.22 -p 5060 -t u1 -m 1 -mi 192.168.10.22 -mp 7002 \
            -trace_msg -message_file "$work/callee-$nat.msg" -trace_logs -log_file "$work/callee-$nat.actions"
        tb_wait_udp "$prefix" phone2 192.168.10.22:5060 5 || true
        local relayed_before
        relayed_before="$(grep -c 'released: RTP relayed' "$(logof sipwarden)" || true)"
        if tb_exec "$prefix" "$host" timeout 60 sipp -nostdin "$TB_SBC_WAN_IP:5060" -sf "$sippdir/caller.xml" \
            -i "$home" -p 5070 -t "$tflag" -m 1 -mi "$home" -mp 6010 \
            -key caller "$user" -key callee 2002 -key domain "$TB_SBC_WAN_IP" -key talk_ms 4000 \
            -recv_timeout 20000 -trace_msg -message_file "$work/outgoing-$nat.msg" \
            -trace_err -error_file "$work/outgoing-$nat.err" >"$work/outgoing-$nat.out" 2>&1; then
            pass "$nat: $user's call to PBX user 2002 (not registered at sipwarden) went through the PBX and was answered"
        else
            fail "$nat: $user's call to 2002 failed: $(tail -3 "$work/outgoing-$nat.err" 2>/dev/null | tr '\n' ' ')"
        fi
        sleep 1
        rel="$(grep -o 'released: RTP relayed a->b [0-9]* packets, b->a [0-9]* packets' "$(logof sipwarden)" | tail -1)"
        ab="$(sed -n 's/.*a->b \([0-9]*\) packets.*/\1/p' <<<"$rel")"
        ba="$(sed -n 's/.*b->a \([0-9]*\) packets.*/\1/p' <<<"$rel")"
        if [[ $(grep -c 'released: RTP relayed' "$(logof sipwarden)" || true) -gt $relayed_before &&
            -n $ab && -n $ba && $ab -gt 0 && $ba -gt 0 ]]; then
            pass "$nat: RTP both ways on the outgoing call (phone->LAN $ab, LAN->phone $ba packets)"
        else
            fail "$nat: RTP did not flow both ways on the outgoing call (${rel:-no release line})"
        fi
        if grep -q "192\.168\.10\." "$work/outgoing-$nat.msg"; then
            fail "$nat: a LAN address reached the calling phone: $(grep -m2 '192\.168\.10\.' "$work/outgoing-$nat.msg" | tr '\n' ' ')"
        fi
        tb_stop "$prefix" "callee-$nat"
    else
        fail "$nat: 2002 could not register at the PBX: $(tail -2 "$work/reg-2002.out" | tr '\n' ' ')"
    fi
    if grep -q "192\.168\.10\." "$work/$phone.msg"; then
        fail "$nat: a LAN address reached the phone: $(grep -m2 '192\.168\.10\.' "$work/$phone.msg" | tr '\n' ' ')"
    else
        pass "$nat: nothing of 192.168.10.0/24 in what the phone received"
    fi
    tb_stop "$prefix" "$phone"
}

for nat in $NATS; do
    run_nat "$nat"
done
echo "nat-register-call: $passed passed, $failed failed"
((failed == 0))
