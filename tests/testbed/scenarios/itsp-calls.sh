#!/usr/bin/env bash
# ITSP calls through sipwarden on the testbed (tests/testbed/README.md, /work/shared/TESTBED.md):
#
#  A. out: a LAN phone (phone1, SIPp) calls a number through the PBX; the PBX sends it to
#     sipwarden, which sends it to the ITSP trunk (203.0.113.10, SIPp answering with -rtp_echo);
#  B. in:  the ITSP (SIPp) calls a DID at sipwarden's WAN address; sipwarden sends it to the
#     lan zone's next hop, the PBX, which rings phone2 (registered as the DID, SIPp -rtp_echo);
#  C. a remote user on the WAN (the public phone 198.51.100.70) calls a colleague who is
#     registered at the PBX, not at sipwarden: sipwarden sends it to the PBX too.
#
# In both, the caller plays 7 s of G.711 (236 RTP packets) and the callee echoes it. Checked:
# both SIPp ends finish their call (INVITE, 200, ACK, BYE); RTP crosses sipwarden both ways on
# both sides (packet counts in captures taken in the sbc namespace on its `wan` and `lan`
# interfaces); and nothing of 192.168.10.0/24 appears in any packet on the WAN side
# (wan-leak-check.py: IP and ARP headers, and the text of every packet, SIP and SDP included).
# The checker itself is tested first (planted leaks must be found), and once more on a copy
# of the real WAN capture with one leaking packet added, which must fail.
#
# With KERNEL_FORWARD=1 (itsp-calls-kernel.sh) sipwarden runs with `[media] kernel_forward = true`
# on its two interfaces: the same checks then hold for RTP that the kernel forwards (tc BPF,
# crate media-kernel-forward), and each call's release line must show that the kernel moved
# most of it (at least 150 of the 236 packets each way), so that a silent fall-back to the
# socket path fails.
#
# Usage: tests/testbed/scenarios/itsp-calls.sh [PREFIX]
#   With PREFIX of a running testbed (up.sh PREFIX) it uses it and leaves it up; without, it
#   builds its own and removes it at the end. The sipwarden binary: $SIPWARDEN_BIN, else
#   $CARGO_TARGET_DIR/release/sipwarden (else target/release, else the debug build).
# Output: PASS/FAIL lines; exit 0 when all pass, 1 on any FAIL, 77 when it cannot run (not
# root, no network namespaces, a tool missing).

set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

tb_require_root
tb_scenario_tools "$repo"

failures=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

prefix="${1:-}"
own=0
if [[ -z $prefix ]]; then
    prefix="$(tb_new_prefix)"
    own=1
fi
tb_check_prefix "$prefix"
work="$(mktemp -d /tmp/itsp-calls.XXXXXX)"
started=()

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local name
    for name in "${started[@]}"; do
        tb_stop "$prefix" "$name"
    done
    if [[ $own == 1 ]]; then
        "$here/../down.sh" "$prefix" >/dev/null 2>&1 || echo "warning: down.sh $prefix failed" >&2
    fi
    if [[ $failures == 0 && -z ${ITSP_KEEP:-} ]]; then
        rm -rf "$work"
    else
        echo "logs and captures kept in $work"
    fi
}
trap cleanup EXIT

if [[ $own == 1 ]]; then
    if ! TB_PHONES=2 "$here/../up.sh" "$prefix" >"$work/up.log" 2>&1; then
        fail "testbed $prefix did not come up ($work/up.log)"
        exit 1
    fi
elif ! tb_exec "$prefix" sbc true 2>/dev/null; then
    echo "itsp-calls: no testbed '$prefix' (tests/testbed/up.sh $prefix)" >&2
    exit 2
fi
tb_pbx_start "$prefix" || {
    fail "the PBX (Kamailio) does not run"
    exit 1
}
rundir="$(tb_rundir "$prefix")"

# bg HOST NAME CMD...: a background process, stopped by the cleanup.
bg() {
    local host="$1" name="$2"
    shift 2
    tb_bg "$prefix" "$host" "$name" "$@" >/dev/null
    started+=("$name")
}
# pid NAME: the PID of a process started with bg.
pid() { cat "$rundir/$1.pid" 2>/dev/null; }
# finished NAME SECONDS: waits for it to end; its exit status ($? of ip netns exec) is not
# kept by tb_bg, so SIPp's own verdict is read from its statistics (see sipp_ok).
finished() {
    local p i
    p="$(pid "$1")"
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$p" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}
# sipp HOST NAME ARGS...: one bounded SIPp run in the foreground, traces in $work/NAME.*.
run_sipp() {
    local host="$1" name="$2"
    shift 2
    (cd "$work" && tb_exec "$prefix" "$host" sipp "$@" -nostdin -timeout 40s -timeout_error \
        -trace_msg -message_file "$work/$name.msg" -trace_err -error_file "$work/$name.err" \
        >"$work/$name.out" 2>&1)
}
capture_start() { # NAME IFACE
    bg sbc "$1" dumpcap -q -i "$2" -P -w "$work/$1.pcap"
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $work/$1.pcap ]] && return 0
        sleep 0.1
    done
    return 1
}
capture_stop() { # NAME
    local p
    p="$(pid "$1")"
    # dumpcap writes out what it holds on SIGINT.
    kill -INT "$p" 2>/dev/null
    finished "$1" 5 || tb_stop "$prefix" "$1"
}
count() { # CAPTURE FROM TO: UDP packets FROM -> TO off the SIP port (RTP)
    python3 "$here/wan-leak-check.py" --count "$2" "$3" --not-port 5060 "$work/$1.pcap"
}

echo "== the WAN leak checker finds planted leaks"
if python3 "$here/wan-leak-check.py" --self-test >"$work/selftest.out" 2>&1; then
    pass "wan-leak-check.py --self-test ($(grep -c '^PASS' "$work/selftest.out") cases)"
else
    fail "wan-leak-check.py --self-test:"
    cat "$work/selftest.out"
fi

config="$repo/examples/testbed.toml"
if [[ ${KERNEL_FORWARD:-0} == 1 ]]; then
    # The same deployment with the kernel fast path on the sbc's wan and lan interfaces.
    config="$work/testbed-kernel.toml"
    awk '/^\[\[media\.zone\]\]/ && !done {
            print "[media]\nkernel_forward = true\nkernel_forward_interfaces = [\"wan\", \"lan\"]\n"; done = 1 }
         { print }' "$repo/examples/testbed.toml" >"$config"
fi
echo "== sipwarden with $config ($bin)"
mkdir -p "$work/data"
sed "s#@PCAP@#$pcap#" "$here/itsp-uac.xml" >"$work/itsp-uac.xml"
bg sbc sipwarden env SIPWARDEN_DATA_DIR="$work/data" "$bin" run --config "$config"
if tb_wait_udp "$prefix" sbc "$TB_SBC_LAN_IP:5060" 10 && tb_wait_udp "$prefix" sbc "$TB_SBC_WAN_IP:5060" 5; then
    pass "sipwarden listens on $TB_SBC_LAN_IP:5060 and $TB_SBC_WAN_IP:5060"
else
    fail "sipwarden did not start ($rundir/sipwarden.log):"
    tail -20 "$rundir/sipwarden.log"
    exit 1
fi

phone1="$(tb_ip phone1)"
phone2="$(tb_ip phone2)"
number=0301234567
did=4930555

# ---------------------------------------------------------------------------------------------
echo "== A. phone1 -> PBX -> sipwarden -> ITSP: sip:$number@$TB_PBX_IP"
capture_start a-wan wan || fail "no capture on wan"
capture_start a-lan lan || fail "no capture on lan"
bg itsp a-uas sipp -sf "$repo/tests/testbed/sipp/call-uas.xml" -i "$TB_ITSP_IP" -p 5060 -m 1 \
    -mi "$TB_ITSP_IP" -mp 6000 -rtp_echo -nostdin -timeout 40s -timeout_error \
    -trace_msg -message_file "$work/a-uas.msg"
tb_wait_udp "$prefix" itsp "$TB_ITSP_IP:5060" 5 || fail "the ITSP's SIPp does not listen"
if run_sipp phone1 a-uac "$TB_PBX_IP:5060" -sf "$work/itsp-uac.xml" -i "$phone1" -p 5060 -m 1 \
    -mi "$phone1" -mp 7000 -key caller 2001 -key callee "$number" -key domain "$TB_PBX_IP"; then
    pass "A: phone1's call to $number completed (INVITE, 200, ACK, 7 s of RTP, BYE)"
else
    fail "A: phone1's call failed ($work/a-uac.out, $work/a-uac.msg, $rundir/sipwarden.log)"
fi
finished a-uas 10 || fail "A: the ITSP's SIPp did not finish"
if grep -q "^INVITE sip:$number@$TB_ITSP_IP" "$work/a-uas.msg" 2>/dev/null &&
    grep -q "^BYE " "$work/a-uas.msg"; then
    pass "A: the ITSP got INVITE sip:$number@$TB_ITSP_IP... and the BYE"
else
    fail "A: the ITSP did not get the call as expected ($work/a-uas.msg)"
fi
sleep 0.5
capture_stop a-wan
capture_stop a-lan
to_itsp="$(count a-wan "$TB_SBC_WAN_IP" "$TB_ITSP_IP")"
from_itsp="$(count a-wan "$TB_ITSP_IP" "$TB_SBC_WAN_IP")"
to_phone="$(count a-lan "$TB_SBC_LAN_IP" "$phone1")"
from_phone="$(count a-lan "$phone1" "$TB_SBC_LAN_IP")"
echo "   RTP: phone1->sbc $from_phone, sbc->ITSP $to_itsp, ITSP->sbc (echo) $from_itsp, sbc->phone1 $to_phone"
if ((from_phone >= 200 && to_itsp >= 200 && from_itsp >= 200 && to_phone >= 200)); then
    pass "A: RTP relayed both ways on both sides (at least 200 of the 236 packets each way)"
else
    fail "A: RTP did not cross both ways (phone1->sbc $from_phone, sbc->ITSP $to_itsp, ITSP->sbc $from_itsp, sbc->phone1 $to_phone)"
fi

# ---------------------------------------------------------------------------------------------
echo "== B. ITSP -> sipwarden -> PBX -> phone2 (registered as $did): sip:$did@$TB_SBC_WAN_IP"
if run_sipp phone2 b-register "$TB_PBX_IP:5060" -sf "$repo/tests/testbed/sipp/register.xml" \
    -i "$phone2" -p 5070 -m 1 -key user "$did" -key domain "$TB_PBX_IP" \
    -key contact "sip:$did@$phone2:5060" -key expires 600; then
    pass "B: phone2 registered as $did at the PBX"
else
    fail "B: phone2's REGISTER failed ($work/b-register.out)"
fi
capture_start b-wan wan || fail "no capture on wan"
capture_start b-lan lan || fail "no capture on lan"
bg phone2 b-uas sipp -sf "$repo/tests/testbed/sipp/call-uas.xml" -i "$phone2" -p 5060 -m 1 \
    -mi "$phone2" -mp 6000 -rtp_echo -nostdin -timeout 40s -timeout_error \
    -trace_msg -message_file "$work/b-uas.msg"
tb_wait_udp "$prefix" phone2 "$phone2:5060" 5 || fail "phone2's SIPp does not listen"
if run_sipp itsp b-uac "$TB_SBC_WAN_IP:5060" -sf "$work/itsp-uac.xml" -i "$TB_ITSP_IP" -p 5070 \
    -m 1 -mi "$TB_ITSP_IP" -mp 7000 -key caller 4930999 -key callee "$did" \
    -key domain "$TB_SBC_WAN_IP"; then
    pass "B: the ITSP's call to $did completed (INVITE, 200, ACK, 7 s of RTP, BYE)"
else
    fail "B: the ITSP's call failed ($work/b-uac.out, $work/b-uac.msg, $rundir/sipwarden.log)"
fi
finished b-uas 10 || fail "B: phone2's SIPp did not finish"
if grep -q "^INVITE sip:$did@$phone2" "$work/b-uas.msg" 2>/dev/null && grep -q "^BYE " "$work/b-uas.msg"; then
    pass "B: phone2 got the INVITE (through the PBX) and the BYE"
else
    fail "B: phone2 did not get the call as expected ($work/b-uas.msg)"
fi
sleep 0.5
capture_stop b-wan
capture_stop b-lan
from_itsp="$(count b-wan "$TB_ITSP_IP" "$TB_SBC_WAN_IP")"
to_itsp="$(count b-wan "$TB_SBC_WAN_IP" "$TB_ITSP_IP")"
to_phone="$(count b-lan "$TB_SBC_LAN_IP" "$phone2")"
from_phone="$(count b-lan "$phone2" "$TB_SBC_LAN_IP")"
echo "   RTP: ITSP->sbc $from_itsp, sbc->phone2 $to_phone, phone2->sbc (echo) $from_phone, sbc->ITSP $to_itsp"
if ((from_itsp >= 200 && to_phone >= 200 && from_phone >= 200 && to_itsp >= 200)); then
    pass "B: RTP relayed both ways on both sides (at least 200 of the 236 packets each way)"
else
    fail "B: RTP did not cross both ways (ITSP->sbc $from_itsp, sbc->phone2 $to_phone, phone2->sbc $from_phone, sbc->ITSP $to_itsp)"
fi

# ---------------------------------------------------------------------------------------------
echo "== C. remote phone ($TB_REMOTE_IP) -> sipwarden -> PBX -> phone2 (2002, not registered at sipwarden)"
if run_sipp phone2 c-register "$TB_PBX_IP:5060" -sf "$repo/tests/testbed/sipp/register.xml" \
    -i "$phone2" -p 5070 -m 1 -key user 2002 -key domain "$TB_PBX_IP" \
    -key contact "sip:2002@$phone2:5060" -key expires 600; then
    pass "C: phone2 registered as 2002 at the PBX"
else
    fail "C: phone2's REGISTER failed ($work/c-register.out)"
fi
capture_start c-wan wan || fail "no capture on wan"
capture_start c-lan lan || fail "no capture on lan"
bg phone2 c-uas sipp -sf "$repo/tests/testbed/sipp/call-uas.xml" -i "$phone2" -p 5060 -m 1 \
    -mi "$phone2" -mp 6000 -rtp_echo -nostdin -timeout 40s -timeout_error \
    -trace_msg -message_file "$work/c-uas.msg"
tb_wait_udp "$prefix" phone2 "$phone2:5060" 5 || fail "phone2's SIPp does not listen"
if run_sipp remote c-uac "$TB_SBC_WAN_IP:5060" -sf "$work/itsp-uac.xml" -i "$TB_REMOTE_IP" -p 5060 \
    -m 1 -mi "$TB_REMOTE_IP" -mp 7000 -key caller alice -key callee 2002 \
    -key domain "$TB_SBC_WAN_IP"; then
    pass "C: the remote phone's call to 2002 completed (INVITE, 200, ACK, 7 s of RTP, BYE)"
else
    fail "C: the remote phone's call failed ($work/c-uac.out, $work/c-uac.msg, $rundir/sipwarden.log)"
fi
finished c-uas 10 || fail "C: phone2's SIPp did not finish"
if grep -q "^INVITE sip:2002@$phone2" "$work/c-uas.msg" 2>/dev/null && grep -q "^BYE " "$work/c-uas.msg"; then
    pass "C: phone2 got the INVITE (through the PBX) and the BYE"
else
    fail "C: phone2 did not get the call as expected ($work/c-uas.msg)"
fi
sleep 0.5
capture_stop c-wan
capture_stop c-lan
from_remote="$(count c-wan "$TB_REMOTE_IP" "$TB_SBC_WAN_IP")"
to_remote="$(count c-wan "$TB_SBC_WAN_IP" "$TB_REMOTE_IP")"
to_phone="$(count c-lan "$TB_SBC_LAN_IP" "$phone2")"
from_phone="$(count c-lan "$phone2" "$TB_SBC_LAN_IP")"
echo "   RTP: remote->sbc $from_remote, sbc->phone2 $to_phone, phone2->sbc (echo) $from_phone, sbc->remote $to_remote"
if ((from_remote >= 200 && to_phone >= 200 && from_phone >= 200 && to_remote >= 200)); then
    pass "C: RTP relayed both ways on both sides (at least 200 of the 236 packets each way)"
else
    fail "C: RTP did not cross both ways (remote->sbc $from_remote, sbc->phone2 $to_phone, phone2->sbc $from_phone, sbc->remote $to_remote)"
fi

# ---------------------------------------------------------------------------------------------
echo "== nothing of $TB_LAN_NET on the WAN"
for c in a-wan b-wan c-wan; do
    if python3 "$here/wan-leak-check.py" --net "$TB_LAN_NET" "$work/$c.pcap" >"$work/$c.leaks" 2>&1; then
        pass "$c: $(tail -1 "$work/$c.leaks")"
    else
        fail "$c: $(tail -1 "$work/$c.leaks") (all: $work/$c.leaks)"
        head -5 "$work/$c.leaks"
    fi
done
python3 "$here/wan-leak-check.py" --plant "$work/planted.pcap" "$work/a-wan.pcap"
python3 "$here/wan-leak-check.py" --net "$TB_LAN_NET" "$work/planted.pcap" >"$work/planted.leaks" 2>&1
rc=$?
if [[ $rc == 1 ]]; then
    pass "the same WAN capture with one leaking packet added fails the check ($(head -1 "$work/planted.leaks" | cut -c1-80)...)"
else
    fail "a planted leak in the real capture was not detected (exit $rc, $work/planted.leaks)"
fi

if [[ ${KERNEL_FORWARD:-0} == 1 ]]; then
    echo "== RTP forwarded by the kernel"
    kernel_lines="$(grep -o 'RTP in the kernel a->b [0-9]*, b->a [0-9]*' "$rundir/sipwarden.log" || true)"
    echo "   ${kernel_lines//$'\n'/; }"
    moved=0
    while read -r k_ab k_ba; do
        [[ -n $k_ab && $k_ab -ge 150 && $k_ba -ge 150 ]] && moved=$((moved + 1))
    done < <(sed 's/.*a->b \([0-9]*\), b->a \([0-9]*\)/\1 \2/' <<<"$kernel_lines")
    if [[ $moved == 3 ]]; then
        pass "the kernel forwarded at least 150 of 236 RTP packets each way in all three calls"
    else
        fail "only $moved of the 3 calls had their RTP forwarded by the kernel ($rundir/sipwarden.log)"
    fi
fi

if [[ $failures == 0 ]]; then
    echo "itsp-calls: all passed"
    exit 0
fi
echo "itsp-calls: $failures failed"
exit 1
