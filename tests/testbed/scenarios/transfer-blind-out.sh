#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Blind transfer of an outgoing ITSP call by the LAN phone that made it (issue 5, items 4 and
# 6), on the testbed (tests/testbed/README.md, /work/shared/TESTBED.md):
#
#   Phone A (phone1) calls the number 0301234567 through the PBX, which sends it to sipwarden,
#   which takes it to the ITSP trunk (SIPp on 203.0.113.10 answering, -rtp_echo, refusing
#   REFER). 1 s after the ACK phone A sends a REFER along its route set (the PBX) with
#   Refer-To: sip:2002@192.168.10.10 (phone B, phone2). The trunk has refer = "local": sipwarden
#   answers 202, NOTIFYs phone A (100, 200), calls 2002 through the PBX, re-bridges the ITSP
#   leg to it through the same relay ports, BYEs phone A. The ITSP hangs up 11 s after its ACK.
#
# Checked, as in transfer-blind-in.sh: every SIPp call successful (phone A: 202, sipfrags ending with 200,
# then the BYE), phone B's INVITE through the PBX with Referred-By and the ITSP's BYE,
# RTP both ways between phone B and the ITSP (phone B plays 7 s of G.711, the ITSP echoes; each
# direction at least 200 of 236 on each side), none to phone A, no REFER/NOTIFY/SUBSCRIBE and
# nothing of 192.168.10.0/24 in the WAN capture.
#
# Usage: tests/testbed/scenarios/transfer-blind-out.sh [PREFIX]   (as itsp-calls.sh)
# Exit 0 all passed, 1 a FAIL, 77 cannot run here.

set -uo pipefail
# shellcheck disable=SC2034 # read by transfer-lib.bash
name=transfer-blind-out
# shellcheck disable=SC2034
phones=2
# shellcheck source=transfer-lib.bash
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/transfer-lib.bash"
xfer_setup "$@"

phone_a="$(tb_ip phone1)"
phone_b="$(tb_ip phone2)"
number=0301234567
ext_b=2002

if register phone2 "$ext_b" 5060; then
    pass "phone B registered as $ext_b at the PBX"
else
    fail "phone B's REGISTER failed ($work/reg-*.out)"
fi

xfer_sed transfer-itsp-uas.xml itsp.xml HOLD_MS=11000
xfer_sed transfer-referrer-uac.xml a.xml REFER_AFTER_MS=1000
xfer_sed transfer-target-uas.xml b.xml "PCAP=$pcap"

capture_start wan wan || fail "no capture on wan"
capture_start lan lan || fail "no capture on lan"
sipp_bg phone2 b -sf "$work/b.xml" -i "$phone_b" -p 5060 -m 1 -mi "$phone_b" -mp 6000 -key tag bxfer
sipp_bg itsp itsp -sf "$work/itsp.xml" -i "$TB_ITSP_IP" -p 5060 -m 1 -mi "$TB_ITSP_IP" -mp 7000 -rtp_echo
if ! { tb_wait_udp "$prefix" itsp "$TB_ITSP_IP:5060" 5 && tb_wait_udp "$prefix" phone2 "$phone_b:5060" 5; }; then
    fail "the ITSP's or phone B's SIPp does not listen"
fi
echo "== phone A calls $number (the ITSP), then transfers to $ext_b"
sipp_bg phone1 a "$TB_PBX_IP:5060" -sf "$work/a.xml" -aa -i "$phone_a" -p 5060 -m 1 -mi "$phone_a" \
    -mp 6000 -key caller 2001 -key callee "$number" -key domain "$TB_PBX_IP" \
    -key target "sip:$ext_b@$TB_PBX_IP"
for p in a itsp b; do
    finished "$p" 35 || fail "$p: SIPp still running after 35 s"
done
sleep 0.3
capture_stop wan
capture_stop lan

if sipp_ok itsp && grep -q "^INVITE sip:$number@$TB_ITSP_IP" "$work/itsp.msg"; then
    pass "the ITSP's call completed (INVITE sip:$number@$TB_ITSP_IP..., 200, ACK, its BYE after 11 s)"
else
    fail "the ITSP's call failed: $(sipp_calls itsp) ($work/itsp.msg, $rundir/sipwarden.log)"
fi
if grep -qE '^(REFER|NOTIFY|SUBSCRIBE) ' "$work/itsp.msg" 2>/dev/null; then
    fail "the ITSP received $(grep -m1 -oE '^(REFER|NOTIFY|SUBSCRIBE) ' "$work/itsp.msg")"
else
    pass "the ITSP received no REFER or NOTIFY"
fi
check_transferor a
if sipp_ok b && grep -q "^INVITE sip:$ext_b@$phone_b" "$work/b.msg" && grep -qi '^Referred-By:' "$work/b.msg" &&
    grep -q '^BYE ' "$work/b.msg"; then
    pass "phone B: the INVITE (through the PBX, with $(grep -m1 -i '^Referred-By:' "$work/b.msg" | tr -d '\r')), then the ITSP's BYE"
else
    fail "phone B did not get the transferred call as expected: $(sipp_calls b) ($work/b.msg)"
fi

b_out="$(count lan "$phone_b" "$TB_SBC_LAN_IP")"
to_itsp="$(count wan "$TB_SBC_WAN_IP" "$TB_ITSP_IP")"
from_itsp="$(count wan "$TB_ITSP_IP" "$TB_SBC_WAN_IP")"
b_in="$(count lan "$TB_SBC_LAN_IP" "$phone_b")"
a_in="$(count lan "$TB_SBC_LAN_IP" "$phone_a")"
echo "   RTP: B->sbc $b_out, sbc->ITSP $to_itsp, ITSP->sbc (echo) $from_itsp, sbc->B $b_in; sbc->A $a_in"
if ((b_out >= 200 && to_itsp >= 200 && from_itsp >= 200 && b_in >= 200)); then
    pass "RTP between phone B and the ITSP both ways (at least 200 of 236 packets each way; the echo reached B)"
else
    fail "RTP did not cross both ways (B->sbc $b_out, sbc->ITSP $to_itsp, ITSP->sbc $from_itsp, sbc->B $b_in)"
fi
if ((a_in < 10)); then
    pass "no RTP to phone A ($a_in packets)"
else
    fail "sipwarden sent $a_in RTP packets to phone A (the transferor)"
fi

echo "== the WAN side"
check_wan wan
xfer_finish
