# shellcheck shell=bash disable=SC2154 # variables set by run-tls.sh, which sources this
# A zone with tls.zone.secure.require_tls (127.0.3.0/24), sourced by tests/e2e/tls/run-tls.sh
# (which gives sw_port, sippdir, work, here, port, result, pids, call and the certificates).
#
#   in-tcp, in-udp    a caller at 127.0.3.2 sends its INVITE in plain text (TCP, UDP) to
#                     sipwarden's plain listeners: it gets no answer at all, the callee it names
#                     gets nothing, sipwarden logs the refusal
#   out-tcp, out-udp  a caller in zone lan calls a callee at 127.0.3.2 over TCP / UDP: the
#                     caller gets a 5xx, the callee nothing, sipwarden logs that it refused to
#                     send in plain text
#   tls               a call to a callee at 127.0.3.3 over TLS goes through (the zone is not
#                     simply unreachable)
# Meanwhile tests/e2e/tls/plainsniff.py watches loopback: no packet into 127.0.3.0/24 may
# carry plain-text SIP, and the TLS call must show TLS records there.

rt_sipp() { # rt_sipp NAME ARGS...: a SIPp run in the background, its pid in rt_pid
    local name="$1"
    shift
    timeout 30 sipp -nostdin -trace_msg -message_file "$work/rt-$name.msg" \
        -trace_stat -stf "$work/rt-$name.csv" -fd 1 \
        -trace_err -error_file "$work/rt-$name.err" "$@" >"$work/rt-$name.out" 2>&1 &
    rt_pid=$!
    pids+=("$rt_pid")
}

# received FILE: how many messages a SIPp message trace shows as received.
received() { grep -c "message received" "$1" 2>/dev/null || true; }

rt_run() {
    local why="" i
    timeout 90 python3 "$here/plainsniff.py" --net 127.0.3.0/24 --out "$work/sniff.txt" \
        --seconds 80 >"$work/sniff.out" 2>&1 &
    local sniff=$!
    pids+=("$sniff")
    for ((i = 0; i < 30; i++)); do
        grep -q sniffing "$work/sniff.out" 2>/dev/null && break
        sleep 0.1
    done
    if ! grep -q sniffing "$work/sniff.out"; then
        result require-tls "the loopback sniffer did not start: $(head -c 300 "$work/sniff.out")"
        return 0
    fi

    local p_in p_tcp p_udp c1 c2 c3 c4
    port p_in
    port p_tcp
    port p_udp
    port c1
    port c2
    port c3
    port c4
    # Callees: one in zone lan for the callers from 127.0.3.2, two in zone secure.
    rt_sipp uas-lan -i 127.0.0.1 -p "$p_in" -t t1 -m 1 -sf "$sippdir/uas.xml" -d 0
    local uas_lan=$rt_pid
    rt_sipp uas-tcp -i 127.0.3.2 -p "$p_tcp" -t t1 -m 1 -sf "$sippdir/uas.xml" -d 0
    local uas_tcp=$rt_pid
    rt_sipp uas-udp -i 127.0.3.2 -p "$p_udp" -t u1 -m 1 -sf "$sippdir/uas.xml" -d 0
    local uas_udp=$rt_pid
    sleep 0.3
    local uacs=()
    rt_sipp in-tcp -i 127.0.3.2 -p "$c1" "127.0.0.1:$sw_port" -t t1 -sf "$sippdir/uac.xml" \
        -key ruri "sip:bob@127.0.0.1:$p_in;transport=tcp" -m 1 -recv_timeout 4000
    uacs+=("$rt_pid")
    rt_sipp in-udp -i 127.0.3.2 -p "$c2" "127.0.0.1:$sw_port" -t u1 -sf "$sippdir/uac.xml" \
        -key ruri "sip:bob@127.0.0.1:$p_in;transport=tcp" -m 1 -recv_timeout 4000
    uacs+=("$rt_pid")
    rt_sipp out-tcp -i 127.0.0.1 -p "$c3" "127.0.0.1:$sw_port" -t t1 -sf "$sippdir/uac.xml" \
        -key ruri "sip:bob@127.0.3.2:$p_tcp;transport=tcp" -m 1 -recv_timeout 4000
    uacs+=("$rt_pid")
    rt_sipp out-udp -i 127.0.0.1 -p "$c4" "127.0.0.1:$sw_port" -t u1 -sf "$sippdir/uac.xml" \
        -key ruri "sip:bob@127.0.3.2:$p_udp" -m 1 -recv_timeout 4000
    uacs+=("$rt_pid")
    for i in "${uacs[@]}"; do wait "$i" 2>/dev/null || true; done
    for i in "$uas_lan" "$uas_tcp" "$uas_udp"; do kill -TERM "$i" 2>/dev/null || true; done

    for n in in-tcp in-udp out-tcp out-udp; do
        stats "$work/rt-$n.csv"
        [[ "$ok" == 0 && "$ko" == 1 ]] || why+="$n: $ok successful, $ko failed calls (want 0, 1); "
    done
    for n in in-tcp in-udp; do
        [[ "$(received "$work/rt-$n.msg")" == 0 ]] ||
            why+="$n: the plain-text caller in the TLS-only zone got $(received "$work/rt-$n.msg") answer(s); "
    done
    for n in out-tcp out-udp; do
        grep -q "^SIP/2.0 5[0-9][0-9]" "$work/rt-$n.msg" ||
            why+="$n: the caller got no 5xx for a callee it may only reach over TLS; "
    done
    for n in uas-lan uas-tcp uas-udp; do
        grep -q "^INVITE " "$work/rt-$n.msg" 2>/dev/null &&
            why+="$n: an INVITE reached the callee; "
    done
    grep -q "plain-text SIP with 127.0.3.2 refused: TLS is required" "$work/sipwarden.log" ||
        why+="no refused plain-text message from 127.0.3.2 logged; "
    grep -q "refused to send in plain text" "$work/sipwarden.log" ||
        why+="no refused plain-text send logged; "

    # Over TLS the zone is reachable.
    uas_tls_ip=127.0.3.3 call rt-tls 2 2 200 "" uas3

    kill -TERM "$sniff" 2>/dev/null || true
    wait "$sniff" 2>/dev/null || true
    local plain tls
    plain="$(sed -n 's/^plain=\([0-9]*\) .*/\1/p' "$work/sniff.txt" 2>/dev/null)"
    tls="$(sed -n 's/.* tls=\([0-9]*\) .*/\1/p' "$work/sniff.txt" 2>/dev/null)"
    [[ "$plain" == 0 ]] ||
        why+="plain-text SIP went into the zone: $(tail -n +2 "$work/sniff.txt" 2>/dev/null | head -n 3 | tr '\n' ' '); "
    [[ -n "$tls" && "$tls" -gt 0 ]] || why+="no TLS record seen going into the zone (${tls:-no sniffer result}); "
    echo "require-tls: sniffer $(head -n 1 "$work/sniff.txt" 2>/dev/null)"
    result require-tls-refuses-plain-text "$why"
}
rt_run
