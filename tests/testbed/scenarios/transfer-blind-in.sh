#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Blind transfer of an ITSP call, with the ITSP refusing REFER (issue 5, items 4 and 6), on
# the testbed (tests/testbed/README.md, /work/shared/TESTBED.md):
#
#   ITSP (SIPp, 203.0.113.10) calls the DID 4930555 at sipwarden's WAN address; sipwarden
#   sends it to the PBX, which rings phone A (phone1, registered as the DID). Phone A answers
#   and, 1 s later, sends a REFER in that dialog (through the PBX, its route set) with
#   Refer-To: sip:2002@192.168.10.10 (phone B, phone2, registered at the PBX as 2002).
#   The ITSP trunk has refer = "local" (examples/testbed.toml): sipwarden answers 202, NOTIFYs
#   phone A (sipfrag 100, then 200), calls 2002 through the PBX, re-bridges the ITSP leg to
#   the new leg through the same relay ports, and BYEs phone A.
#
# Media: phone A sends none; phone B plays 7 s of G.711 (236 RTP packets) once answered; the
# ITSP echoes (-rtp_echo) whatever reaches it. Checked:
#  - every SIPp ends with one successful call (phone A: 202, NOTIFY sipfrags ending with
#    "SIP/2.0 200" and no failure status, then sipwarden's BYE, after that NOTIFY; phone B:
#    the INVITE with Referred-By through the PBX, the ITSP's BYE at the end; the ITSP: its
#    call, answering 501 to any REFER/NOTIFY it might get);
#  - RTP both ways between phone B and the ITSP through sipwarden (captures in the sbc
#    namespace: phone B -> sbc, sbc -> ITSP, ITSP echo -> sbc, sbc -> phone B, each at least
#    200 of 236), and none to phone A;
#  - the WAN capture has no REFER/NOTIFY/SUBSCRIBE (the ITSP never saw the transfer) and
#    nothing of 192.168.10.0/24 (wan-leak-check.py).
#
# Usage: tests/testbed/scenarios/transfer-blind-in.sh [PREFIX]   (as itsp-calls.sh)
# Exit 0 all passed, 1 a FAIL, 77 cannot run here.

set -uo pipefail
# shellcheck disable=SC2034 # read by transfer-lib.bash
name=transfer-blind-in
# shellcheck disable=SC2034
phones=2
# shellcheck source=transfer-lib.bash
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/transfer-lib.bash"
xfer_setup "$@"

phone_a="$(tb_ip phone1)"
phone_b="$(tb_ip phone2)"
did=4930555
ext_b=2002

if register phone1 "$did" 5060 && register phone2 "$ext_b" 5060; then
    pass "phone A registered as $did, phone B as $ext_b at the PBX"
else
    fail "a REGISTER failed ($work/reg-*.out)"
fi

xfer_sed transfer-itsp-uac.xml itsp.xml HOLD_MS=11000
xfer_sed transfer-referrer-uas.xml a.xml REFER_AFTER_MS=1000
xfer_sed transfer-target-uas.xml b.xml "PCAP=$pcap"

capture_start wan wan || fail "no capture on wan"
capture_start lan lan || fail "no capture on lan"
sipp_bg phone2 b -sf "$work/b.xml" -i "$phone_b" -p 5060 -m 1 -mi "$phone_b" -mp 6000 -key tag bxfer
sipp_bg phone1 a -sf "$work/a.xml" -aa -i "$phone_a" -p 5060 -m 1 -mi "$phone_a" -mp 6000 \
    -key target "sip:$ext_b@$TB_PBX_IP"
if ! { tb_wait_udp "$prefix" phone1 "$phone_a:5060" 5 && tb_wait_udp "$prefix" phone2 "$phone_b:5060" 5; }; then
    fail "the phones' SIPp do not listen"
fi
echo "== the ITSP calls $did; phone A answers and transfers to $ext_b"
sipp_bg itsp itsp "$TB_SBC_WAN_IP:5060" -sf "$work/itsp.xml" -i "$TB_ITSP_IP" -p 5070 -m 1 \
    -mi "$TB_ITSP_IP" -mp 7000 -rtp_echo -key caller 4930999 -key callee "$did" \
    -key domain "$TB_SBC_WAN_IP"
for p in itsp a b; do
    finished "$p" 35 || fail "$p: SIPp still running after 35 s"
done
sleep 0.3
capture_stop wan
capture_stop lan

if sipp_ok itsp; then
    pass "the ITSP's call completed (INVITE, 200, ACK, BYE after 11 s)"
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
a_out="$(count lan "$phone_a" "$TB_SBC_LAN_IP")"
echo "   RTP: B->sbc $b_out, sbc->ITSP $to_itsp, ITSP->sbc (echo) $from_itsp, sbc->B $b_in; A->sbc $a_out, sbc->A $a_in"
if ((b_out >= 200 && to_itsp >= 200 && from_itsp >= 200 && b_in >= 200)); then
    pass "RTP between phone B and the ITSP both ways (at least 200 of 236 packets each way; the echo reached B)"
else
    fail "RTP did not cross both ways (B->sbc $b_out, sbc->ITSP $to_itsp, ITSP->sbc $from_itsp, sbc->B $b_in)"
fi
if ((a_in < 10)); then
    pass "no RTP to phone A after it transferred ($a_in packets)"
else
    fail "sipwarden sent $a_in RTP packets to phone A (the transferor)"
fi

echo "== the WAN side"
check_wan wan
xfer_finish
