# Scenario b2bua-transfer of tests/e2e/run-sipp.sh (sourced by it after b2bua-media.sh, whose
# b2b_sw_start it uses): a blind transfer done by sipwarden itself (refer = "local", the
# default towards the untrusted zone wan), so that the wan party never sees it.
#
# Zones as in b2bua-media: lan 127.0.1.0/24 (sipwarden 127.0.1.1), wan 127.0.2.0/24 (sipwarden
# 127.0.2.1). The referrer (SIPp, 127.0.1.2, uac-transfer-referrer.xml) calls the wan party
# (SIPp, 127.0.2.2, uas-transfer-wan.xml, the "ITSP"), then REFERs the call to the target
# (SIPp, 127.0.1.3, uas-transfer-target.xml). Checked:
# - one successful call for each of the three (the referrer got 202, NOTIFY 100 and NOTIFY 200
#   and sipwarden's BYE; the target got the INVITE with Referred-By and, later, the wan party's
#   BYE; the wan party got no REFER or NOTIFY, which SIPp would count as a failed call);
# - nothing of 127.0.1.x in anything the wan party received;
# - the target was offered the lan media port the referrer had (the relay session is reused,
#   so the wan side's port does not change either and the wan party gets no re-INVITE);
# - media: the wan party plays G.711 RTP, the target echoes it (-rtp_echo), the referrer sends
#   none: RTP relayed lan->wan can only be the target's, through the re-bridged session.
# Then the same as an attended transfer: the Refer-To carries a Replaces for the target's
# consultation dialog with the referrer (a lan dialog, not sipwarden's), which must reach the
# target unchanged (uas-transfer-target-replaces.xml checks it); same checks.
# transfer_run NAME TARGET-SCENARIO REPLACES: one transfer (REPLACES: escaped URI header value
# for the Refer-To, or empty for a blind transfer) with the checks above.
transfer_run() {
    local name="$1" tscen="$2" replaces="$3" p wan_port ref_port tgt_port wan_media ref_media tgt_media
    port p
    port wan_port
    port ref_port
    port tgt_port
    port wan_media
    port ref_media
    port tgt_media
    b2b_sw_start "$name" "$p" || return 0

    local sipp_ip=127.0.2.2
    sipp_bg "$name-wan" 40 -sf "$sippdir/uas-transfer-wan.xml" -p "$wan_port" -t u1 -m 1 \
        -mi 127.0.2.2 -mp "$wan_media" -key hold_ms 6000
    local wan=$last_bg
    sipp_ip=127.0.1.3
    sipp_bg "$name-target" 40 -sf "$sippdir/$tscen" -p "$tgt_port" -t u1 -m 1 \
        -mi 127.0.1.3 -mp "$tgt_media" -rtp_echo
    local tgt=$last_bg
    sleep 0.3
    local target="sip:carol@127.0.1.3:$tgt_port"
    [[ -z "$replaces" ]] || target+="?Replaces=$replaces"
    sipp_ip=127.0.1.2
    sipp_bg "$name-referrer" 40 "127.0.1.1:$p" -sf "$sippdir/uac-transfer-referrer.xml" \
        -p "$ref_port" -t u1 -mi 127.0.1.2 -mp "$ref_media" -m 1 -recv_timeout 20000 \
        -key ruri "sip:itsp@127.0.2.2:$wan_port" -key target "$target"
    local ref=$last_bg
    wait_pid "$ref" 30 || true
    wait_pid "$wan" 30 || true
    wait_pid "$tgt" 30 || true
    expect_calls "$name-referrer" 1
    expect_calls "$name-wan" 1
    expect_calls "$name-target" 1

    local wmsg="$work/$name-wan.msg" rmsg="$work/$name-referrer.msg" tmsg="$work/$name-target.msg"
    if grep -q "127\.0\.1\." "$wmsg" 2>/dev/null; then
        why+="$name: a lan address reached the wan party: $(grep -m3 '127\.0\.1\.' "$wmsg" | tr '\n' ' '); "
    fi
    if grep -qE "^(REFER|NOTIFY) " "$wmsg" 2>/dev/null; then
        why+="$name: the wan party saw the transfer: $(grep -m2 -E '^(REFER|NOTIFY) ' "$wmsg" | tr '\n' ' '); "
    fi
    # Ports sipwarden offered: every m=audio port in a log except the phone's own.
    local ref_offered tgt_offered
    ref_offered="$(grep -o 'm=audio [0-9]*' "$rmsg" 2>/dev/null | awk '{print $2}' | grep -vx "$ref_media" | sort -u | tr '\n' ' ' || true)"
    tgt_offered="$(grep -o 'm=audio [0-9]*' "$tmsg" 2>/dev/null | awk '{print $2}' | grep -vx "$tgt_media" | sort -u | tr '\n' ' ' || true)"
    summary+="$name: lan port to the referrer ${ref_offered:-none}, to the target ${tgt_offered:-none}; "
    if [[ -z "$ref_offered" || "$ref_offered" != "$tgt_offered" ]]; then
        why+="$name: the target was not offered the referrer's lan port (${ref_offered:-none} vs ${tgt_offered:-none}); "
    fi
    local reinvites
    reinvites="$(grep -c '^INVITE ' "$wmsg" 2>/dev/null || true)"
    [[ "$reinvites" == 1 ]] || why+="$name: the wan party got ${reinvites:-0} INVITEs, want 1 (no re-INVITE); "
    # Media: the wan party plays RTP, only the target echoes it (the referrer sends nothing), so
    # RTP relayed lan->wan (a->b: the referrer's side is A) proves the re-bridged path.
    local rel ab ba
    rel="$(grep -m1 -o 'released: RTP relayed a->b [0-9]* packets, b->a [0-9]* packets' "$sw_log" || true)"
    ab="$(sed -n 's/.*a->b \([0-9]*\) packets.*/\1/p' <<<"$rel")"
    ba="$(sed -n 's/.*b->a \([0-9]*\) packets.*/\1/p' <<<"$rel")"
    summary+="relay: ${ba:-?} RTP packets wan->lan, ${ab:-?} echoed by the target lan->wan; "
    if [[ -z "$ab" || -z "$ba" || "$ab" -eq 0 || "$ba" -eq 0 ]]; then
        why+="$name: RTP did not flow between the wan party and the target (${rel:-no release line}); "
    fi
    sw_stop
}

scenario_b2bua_transfer() {
    if [[ ! -r /usr/share/sip-tester/g711a.pcap ]]; then
        skip="/usr/share/sip-tester/g711a.pcap is missing (Debian package sip-tester)"
        return 0
    fi
    transfer_run b2bua-transfer-blind uas-transfer-target.xml ""
    transfer_run b2bua-transfer-attended uas-transfer-target-replaces.xml \
        "consult-1%40127.0.1.2%3Bto-tag%3Dc1%3Bfrom-tag%3Da1"
}
