#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Attended transfer of an ITSP call (issue 5, items 4 and 6), on the testbed
# (tests/testbed/README.md, /work/shared/TESTBED.md):
#
#   call 1: the ITSP (SIPp, 203.0.113.10) calls the DID 4930555 at sipwarden's WAN address;
#           sipwarden -> PBX -> phone A (phone1:5060, registered as the DID) answers.
#   call 2: phone A (phone1:5062) calls phone B (2002, phone2) through the PBX: a LAN-only
#           dialog that sipwarden never sees (Call-ID consult-1@192.168.10.21, From tag
#           aconsult, B's To tag battnc).
#   Then phone A sends, in call 1, REFER with
#           Refer-To: <sip:2002@192.168.10.10?Replaces=consult-1%40192.168.10.21%3Bto-tag...>.
#   sipwarden (trunk refer = "local") does it: 202 and NOTIFYs (100, 200) to phone A, an
#   INVITE to 2002 through the PBX with Replaces (the dialog is not one of sipwarden's, so it
#   goes as written) and Require: replaces, re-bridges the ITSP leg to it, BYE to phone A.
#   Phone A then hangs up call 2 (SIPp's phone B cannot do it from another call).
#
# Checked: every SIPp ends with its calls successful (phone A: 202, sipfrags ending with 200,
# then the BYE); phone B got the INVITE with Replaces through the PBX, byte for byte what
# phone A put in its Refer-To (the PBX, Kamailio record-routing, passes it unchanged), and
# Referred-By; RTP both ways between phone B and the ITSP through sipwarden (phone B plays 7 s
# of G.711, the ITSP echoes: each direction at least 200 of 236 packets on each side), none to
# phone A; the WAN capture has no REFER/NOTIFY/SUBSCRIBE and nothing of 192.168.10.0/24.
#
# Usage: tests/testbed/scenarios/transfer-attended.sh [PREFIX]   (as itsp-calls.sh)
# Exit 0 all passed, 1 a FAIL, 77 cannot run here.

set -uo pipefail
# shellcheck disable=SC2034 # read by transfer-lib.bash
name=transfer-attended
# shellcheck disable=SC2034
phones=2
# shellcheck source=transfer-lib.bash
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/transfer-lib.bash"
xfer_setup "$@"

phone_a="$(tb_ip phone1)"
phone_b="$(tb_ip phone2)"
did=4930555
ext_b=2002
consult_cid="consult-1@$phone_a"
replaces="$consult_cid;to-tag=battnc;from-tag=aconsult"
replaces_esc="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$replaces")"

if register phone1 "$did" 5060 && register phone2 "$ext_b" 5060; then
    pass "phone A registered as $did, phone B as $ext_b at the PBX"
else
    fail "a REGISTER failed ($work/reg-*.out)"
fi

xfer_sed transfer-itsp-uac.xml itsp.xml HOLD_MS=14000
xfer_sed transfer-referrer-uas.xml a.xml REFER_AFTER_MS=3000
xfer_sed transfer-consult-uac.xml a2.xml HOLD_MS=5000
xfer_sed transfer-target-uas.xml b.xml "PCAP=$pcap"

capture_start wan wan || fail "no capture on wan"
capture_start lan lan || fail "no capture on lan"
sipp_bg phone2 b -sf "$work/b.xml" -i "$phone_b" -p 5060 -m 2 -mi "$phone_b" -mp 6000 -key tag batt
sipp_bg phone1 a -sf "$work/a.xml" -aa -i "$phone_a" -p 5060 -m 1 -mi "$phone_a" -mp 6000 \
    -key target "sip:$ext_b@$TB_PBX_IP?Replaces=$replaces_esc"
if ! { tb_wait_udp "$prefix" phone1 "$phone_a:5060" 5 && tb_wait_udp "$prefix" phone2 "$phone_b:5060" 5; }; then
    fail "the phones' SIPp do not listen"
fi
echo "== call 1: the ITSP calls $did (phone A)"
sipp_bg itsp itsp "$TB_SBC_WAN_IP:5060" -sf "$work/itsp.xml" -i "$TB_ITSP_IP" -p 5070 -m 1 \
    -mi "$TB_ITSP_IP" -mp 7000 -rtp_echo -key caller 4930999 -key callee "$did" \
    -key domain "$TB_SBC_WAN_IP"
if wait_trace a '^ACK ' 10; then
    pass "call 1 is up (phone A got the ACK)"
else
    fail "call 1 did not come up in 10 s ($work/a.msg)"
fi
echo "== call 2: phone A calls $ext_b through the PBX; then REFER on call 1 with Replaces"
sipp_bg phone1 a2 "$TB_PBX_IP:5060" -sf "$work/a2.xml" -i "$phone_a" -p 5062 -m 1 -mi "$phone_a" \
    -mp 6100 -cid_str "consult-%u@%s" -key ftag aconsult -key caller 2001 -key callee "$ext_b" \
    -key domain "$TB_PBX_IP"
for p in itsp a a2 b; do
    finished "$p" 35 || fail "$p: SIPp still running after 35 s"
done
sleep 0.3
capture_stop wan
capture_stop lan

if sipp_ok itsp; then
    pass "the ITSP's call completed (INVITE, 200, ACK, BYE after 14 s)"
else
    fail "the ITSP's call failed: $(sipp_calls itsp) ($work/itsp.msg, $rundir/sipwarden.log)"
fi
if grep -qE '^(REFER|NOTIFY|SUBSCRIBE) ' "$work/itsp.msg" 2>/dev/null; then
    fail "the ITSP received $(grep -m1 -oE '^(REFER|NOTIFY|SUBSCRIBE) ' "$work/itsp.msg")"
else
    pass "the ITSP received no REFER or NOTIFY"
fi
if sipp_ok a2 && grep -q "^Call-ID: $consult_cid" "$work/a2.msg"; then
    pass "call 2 (consultation, Call-ID $consult_cid) set up and hung up by phone A"
else
    fail "call 2 failed: $(sipp_calls a2) ($work/a2.msg)"
fi
check_transferor a
got_replaces="$(grep -m1 -i '^Replaces:' "$work/b.msg" 2>/dev/null | tr -d '\r' | sed 's/^[^:]*: *//')"
if [[ $got_replaces == "$replaces" ]]; then
    pass "phone B: INVITE with Replaces: $got_replaces (unchanged through sipwarden and the PBX)"
else
    fail "phone B: Replaces '${got_replaces:-none}', want '$replaces' ($work/b.msg)"
fi
if grep -qi '^Require:.*replaces' "$work/b.msg" && grep -qi '^Referred-By:' "$work/b.msg"; then
    pass "phone B: the INVITE has Require: replaces and Referred-By"
else
    fail "phone B: no Require: replaces or no Referred-By ($work/b.msg)"
fi
if sipp_ok b && [[ $(grep -c '^BYE ' "$work/b.msg") -ge 2 ]]; then
    pass "phone B: both calls ($(sipp_calls b)), each ended by a BYE"
else
    fail "phone B's calls did not go as expected: $(sipp_calls b) ($work/b.msg)"
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
