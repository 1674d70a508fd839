# shellcheck shell=bash disable=SC2154 # variables set by run-tls.sh, which sources this
# One zone with UDP and TLS listeners (the usual WAN: UDP for the ITSP, TLS for remote phones):
# each B2BUA leg speaks from the listener of its own transport. Sourced by run-tls.sh (which
# gives bin, work, pki, mkleaf, port, result, stats, pids, sippdir).
#
# A third sipwarden, B2BUA with the media relay:
#   zone wan  127.0.2.0/24 + 127.0.0.1 (baresip): UDP 127.0.2.1:P and TLS 127.0.2.1:T
#   zone lan  127.0.1.0/24: UDP 127.0.1.1:P; SIPp UAS 127.0.1.2, SIPp UAC 127.0.1.3
# Scenarios:
#   mixed-tls-caller-udp-callee  baresip over TLS calls the SIPp UDP UAS: the 200 baresip gets
#                                names the TLS listener (`<sip:127.0.2.1:T;transport=tls>`),
#                                not the zone's UDP one; the UAS sees UDP; the call ends with
#                                baresip's BYE at the UAS
#   mixed-udp-caller-tls-callee  the SIPp UDP UAC calls baresip at
#                                `sip:carol@127.0.0.1:B;transport=tls` (baresip's TLS port,
#                                certificate of our CA for 127.0.0.1): the INVITE reaches it
#                                over TLS with a TLS Via and Contact of the TLS listener, the
#                                UAC's call (INVITE, ACK, BYE) completes

# mixed_stop PID: SIGINT (baresip hangs up with BYE), SIGKILL after 3 s.
mixed_stop() {
    local i
    kill -INT "$1" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

mixed_run() {
    local why mx_sip mx_tls mx_uas mx_uas_media mx_uac mx_uac_media bp_tls sw d
    mkleaf mixwan ca "sbc-mixed" "DNS:sbc.test,IP:127.0.2.1"
    cat "$pki/uas.pem" "$pki/uas.key" >"$pki/uas.both.pem"
    port mx_sip
    port mx_tls
    port mx_uas
    port mx_uas_media
    port mx_uac
    port mx_uac_media
    port bp_tls
    cat >"$work/mixed.toml" <<EOF
[general]
data_dir = "$work/mixed-data"
log_level = "debug"
node_name = "e2e-tls-mixed"

[[listen]]
zone = "lan"
transport = "udp"
address = "127.0.1.1:$mx_sip"

[[listen]]
zone = "wan"
transport = "udp"
address = "127.0.2.1:$mx_sip"

[[listen]]
zone = "wan"
transport = "tls"
address = "127.0.2.1:$mx_tls"

[[zone]]
name = "lan"
networks = ["127.0.1.0/24"]
trusted = true

[[zone]]
name = "wan"
networks = ["127.0.2.0/24", "127.0.0.1/32"]
trusted = true

[tls]
certificate = "$pki/mixwan.pem"
private_key = "$pki/mixwan.key"
ca_bundle = "$pki/ca.pem"
reload_check_s = 0

[media]
quarantine_s = 0

[[media.zone]]
zone = "lan"
ports = "31200-31299"

[[media.zone]]
zone = "wan"
ports = "32200-32299"
EOF
    [[ -r "$work/tone.wav" ]] || timeout 20 python3 - "$work/tone.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(160000)))
w.close()
PY
    env -u SIPWARDEN_DATA_DIR timeout 90 "$bin" run --config "$work/mixed.toml" \
        >"$work/mixed-sw.log" 2>&1 &
    sw=$!
    pids+=("$sw")
    for ((i = 0; i < 100; i++)); do
        grep -q "sipwarden is running" "$work/mixed-sw.log" && break
        sleep 0.1
    done
    if ! grep -q "sipwarden is running" "$work/mixed-sw.log"; then
        result mixed "the third sipwarden did not start: $(tail -n 5 "$work/mixed-sw.log" | tr '\n' ' ')"
        return 0
    fi

    # mixed_baresip NAME LISTEN CERT ACCOUNT: a baresip configuration directory.
    mixed_baresip() {
        d="$work/$1"
        mkdir -p "$d"
        {
            echo "poll_method epoll"
            echo "sip_listen $2"
            echo "sip_cafile $pki/ca.pem"
            [[ -n "$3" ]] && echo "sip_certificate $3"
            echo "audio_source aufile,$work/tone.wav"
            echo "audio_player aubridge,null"
            echo "audio_alert aubridge,null"
            echo "rtp_ports 43000-43999"
            echo "module_path /usr/lib/baresip/modules"
            for m in g711 aufile aubridge account; do echo "module $m.so"; done
            echo "module_app menu.so"
        } >"$d/config"
        echo "$4" >"$d/accounts"
        : >"$d/contacts"
    }

    # --- baresip over TLS calls the UDP UAS in the other zone.
    why=""
    timeout 40 sipp -nostdin -i 127.0.1.2 -p "$mx_uas" -t u1 -m 1 -sf "$sippdir/uas-media.xml" \
        -mi 127.0.1.2 -mp "$mx_uas_media" -rtp_echo -trace_msg -message_file "$work/mixed-uas.msg" \
        >"$work/mixed-uas.out" 2>&1 &
    local uas=$!
    pids+=("$uas")
    sleep 0.3
    local p
    port p
    mixed_baresip dora "127.0.0.1:$p" "" \
        "<sip:dora@127.0.0.1>;regint=0;audio_codecs=PCMA;outbound=\"sip:127.0.2.1:$mx_tls;transport=tls;lr\""
    timeout 30 baresip -n 127.0.0.1 -f "$work/dora" -s -t 16 \
        -e "/dial sip:bob@127.0.1.2:$mx_uas" >"$work/dora.log" 2>&1 </dev/null &
    local ua=$!
    pids+=("$ua")
    sleep 6
    mixed_stop "$ua"
    sleep 0.5
    grep -q "^INVITE " "$work/mixed-uas.msg" 2>/dev/null || why+="no INVITE reached the UAS; "
    grep -q "^Via: SIP/2.0/UDP 127.0.1.1:$mx_sip;" "$work/mixed-uas.msg" 2>/dev/null ||
        why+="the UAS's leg is not UDP from the LAN listener: $(grep -m1 '^Via:' "$work/mixed-uas.msg"); "
    grep -q "^BYE " "$work/mixed-uas.msg" 2>/dev/null || why+="baresip's BYE did not reach the UAS; "
    grep -q "Call established\|call established" "$work/dora.log" || why+="baresip did not report the call established; "
    grep -A20 "^SIP/2.0 200 OK" "$work/dora.log" | grep -qi "^Contact: <sip:127.0.2.1:$mx_tls;transport=tls>" ||
        why+="the 200 baresip got does not name the TLS listener: $(grep -A20 '^SIP/2.0 200 OK' "$work/dora.log" | grep -i -m1 '^Contact:'); "
    grep -q "^TLS 127.0.2.1:$mx_tls -> 127.0.0.1:" "$work/dora.log" || why+="nothing reached baresip over TLS; "
    wait "$uas" 2>/dev/null || true
    result mixed-tls-caller-udp-callee "$why"

    # --- the UDP UAC calls baresip at its TLS address.
    why=""
    mixed_baresip carol "127.0.0.1:$((bp_tls - 1))" "$pki/uas.both.pem" \
        "<sip:carol@127.0.0.1>;regint=0;audio_codecs=PCMA;answermode=auto"
    timeout 40 baresip -n 127.0.0.1 -f "$work/carol" -s -t 30 >"$work/carol.log" 2>&1 </dev/null &
    ua=$!
    pids+=("$ua")
    sleep 1
    timeout 30 sipp -nostdin -i 127.0.1.3 -p "$mx_uac" -t u1 -m 1 -sf "$sippdir/uac-media.xml" \
        -mi 127.0.1.3 -mp "$mx_uac_media" -key ruri "sip:carol@127.0.0.1:$bp_tls;transport=tls" \
        -trace_msg -message_file "$work/mixed-uac.msg" -trace_stat -stf "$work/mixed-uac.csv" -fd 1 \
        "127.0.1.1:$mx_sip" >"$work/mixed-uac.out" 2>&1 || true
    mixed_stop "$ua"
    stats "$work/mixed-uac.csv"
    [[ "$ok" == 1 ]] || why+="the UAC's call did not complete: $ok successful; "
    grep -q "^INVITE sip:carol@127.0.0.1:$bp_tls;transport=tls" "$work/carol.log" ||
        why+="no INVITE reached baresip; "
    grep -B1 "^INVITE sip:carol@" "$work/carol.log" | grep -q "^TLS .* -> 127.0.0.1:$bp_tls" ||
        why+="the INVITE did not come over TLS; "
    grep -A20 "^INVITE sip:carol@" "$work/carol.log" | grep -q "^Via: SIP/2.0/TLS 127.0.2.1:$mx_tls;" ||
        why+="the INVITE's Via is not the TLS listener: $(grep -A20 '^INVITE sip:carol@' "$work/carol.log" | grep -m1 '^Via:'); "
    grep -A20 "^INVITE sip:carol@" "$work/carol.log" | grep -qi "^Contact: <sip:127.0.2.1:$mx_tls;transport=tls>" ||
        why+="the INVITE's Contact is not the TLS listener: $(grep -A20 '^INVITE sip:carol@' "$work/carol.log" | grep -i -m1 '^Contact:'); "
    result mixed-udp-caller-tls-callee "$why"

    kill -TERM "$sw" 2>/dev/null || true
    wait "$sw" 2>/dev/null || true
}
