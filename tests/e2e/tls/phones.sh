# shellcheck shell=bash disable=SC2154 # variables set by run-tls.sh, which sources this
# Real phones over mutual TLS with SRTP media, sourced by tests/e2e/tls/run-tls.sh (which gives
# bin, work, pki, mkca/mkleaf, port, result, pids, fingerprint and the network namespace).
#
# A second sipwarden, a B2BUA with the media relay:
#   zone wan  127.0.2.0/24 + 127.0.0.1 (where the phones run): one TLS listener 127.0.2.1,
#             tls.zone.wan: require_tls, require_client_cert (client CA "clientca");
#             media srtp = "terminate" (a plain offer gets 488)
#   zone lan  127.0.1.0/24: UDP listener 127.0.1.1; a SIPp UAS with -rtp_echo on 127.0.1.2
# Scenarios (each phone a process of its own, one call each):
#   phone-baresip-mtls-srtp   baresip with a client certificate of clientca, srtp-mand: the
#                             call is answered and hung up (BYE reaches the UAS), the relay
#                             relays RTP both ways, baresip has SRTP on and no SRTP errors;
#                             while it is up the server certificate files are replaced and
#                             sipwarden gets SIGHUP: the call's media goes on, its BYE comes
#                             over the old connection, a new handshake gets the new certificate
#   phone-baresip-refused     baresip without a client certificate, then one with a
#                             certificate of another CA: no INVITE reaches the UAS, sipwarden
#                             logs the failed handshake with the reason
#   phone-linphone-mtls-srtp  linphonec (linphone-cli) the same way as baresip
#   phone-linphone-refused    linphonec without a client certificate
#   phone-baresip-callee-hangs-up  the UAS sends BYE: it reaches baresip over baresip's own
#                             TLS connection (flow reuse), the call ends on both sides
#   phone-signalling-only-tls zone wan requires TLS: a loopback sniffer sees only TLS records,
#                             no plain-text SIP, going to the phones' address
# Failed handshakes are logged at most once per 10 s, so the refused phones are spaced out
# between the successful calls.

phones_mods=/usr/lib/baresip/modules

phones_ready() {
    local m
    if ! command -v baresip >/dev/null; then
        echo "baresip is not installed"
        return 1
    fi
    for m in srtp g711 aufile aubridge account menu; do
        if [[ ! -r "$phones_mods/$m.so" ]]; then
            echo "baresip module $m.so is missing"
            return 1
        fi
    done
    return 0
}

# ---------------------------------------------------------------------------------------------
# Certificates: two server certificates for the swap, a phone certificate of the client CA.
mkleaf wan1 ca "sbc-wan-first" "DNS:sbc.test,IP:127.0.2.1"
mkleaf wan2 ca "sbc-wan-second" "DNS:sbc.test,IP:127.0.2.1"
mkleaf alice clientca "alice" "DNS:alice.phones.test,URI:sip:alice@sbc.test"
# baresip wants certificate and key in one file.
cat "$pki/alice.pem" "$pki/alice.key" >"$pki/alice.both.pem"
cat "$pki/stranger.pem" "$pki/stranger.key" >"$pki/stranger.both.pem"
cp "$pki/wan1.pem" "$pki/wan-served.pem"
cp "$pki/wan1.key" "$pki/wan-served.key"

port ph_sip
port ph_uas
port ph_uas_media
cat >"$work/phones.toml" <<EOF
[general]
data_dir = "$work/phones-data"
log_level = "debug"
node_name = "e2e-tls-phones"

[[listen]]
zone = "lan"
transport = "udp"
address = "127.0.1.1:$ph_sip"

[[listen]]
zone = "wan"
transport = "tls"
address = "127.0.2.1:$ph_sip"

[[zone]]
name = "lan"
networks = ["127.0.1.0/24"]
trusted = true

[[zone]]
name = "wan"
networks = ["127.0.2.0/24", "127.0.0.1/32"]
trusted = true

[tls]
certificate = "$pki/wan-served.pem"
private_key = "$pki/wan-served.key"
ca_bundle = "$pki/ca.pem"
reload_check_s = 0

[tls.zone.wan]
require_tls = true
require_client_cert = true
client_ca = "$pki/clientca.pem"

[media]
quarantine_s = 0

[[media.zone]]
zone = "lan"
ports = "31100-31199"

[[media.zone]]
zone = "wan"
ports = "32100-32199"
srtp = "terminate"
EOF

# A 10 s 8 kHz tone (baresip's ausine is 48 kHz only, and the call is PCMA).
timeout 20 python3 - "$work/tone.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(160000)))
w.close()
PY

# relay_line N: the Nth "released: RTP relayed" line of the phones' sipwarden log, as
# "AB BA DROPPED STUN" (empty when there is none); STUN: the a->b packets dropped as
# "stun", which are linphone's STUN binding requests (see phone-linphone below).
relay_line() {
    local line
    line="$(grep 'released: RTP relayed a->b [0-9]* packets' "$work/phones-sw.log" | sed -n "$1p")"
    [[ -n "$line" ]] || return 0
    sed 's/.*a->b \([0-9]*\) packets, b->a \([0-9]*\) packets, \([0-9]*\) dropped.*/\1 \2 \3/' <<<"$line" |
        tr '\n' ' '
    grep -o 'a->b stun [0-9]*' <<<"$line" | grep -o '[0-9]*$' || echo 0
}

# handshake_failures: how many "TLS handshake from" warnings the phones' sipwarden logged.
handshake_failures() { grep -c "TLS handshake from 127.0.0.1" "$work/phones-sw.log" || true; }

# baresip_dir NAME CERT: a baresip configuration directory; CERT is a combined PEM or "".
baresip_dir() {
    local d="$work/$1" p
    port p
    mkdir -p "$d"
    {
        echo "poll_method epoll"
        echo "sip_listen 127.0.0.1:$p"
        echo "sip_cafile $pki/ca.pem"
        [[ -n "$2" ]] && echo "sip_certificate $2"
        echo "audio_source aufile,$work/tone.wav"
        echo "audio_player aubridge,null"
        echo "audio_alert aubridge,null"
        echo "rtp_ports 40000-40999"
        echo "module_path $phones_mods"
        for m in g711 aufile aubridge srtp account; do echo "module $m.so"; done
        echo "module_app menu.so"
    } >"$d/config"
    echo "<sip:$1@127.0.0.1>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMA;outbound=\"sip:127.0.2.1:$ph_sip;transport=tls;lr\"" >"$d/accounts"
    : >"$d/contacts"
}

# baresip_call NAME SECONDS [HOOK]: dials the UAS, hangs up (SIGINT: baresip sends BYE) after
# SECONDS; HOOK runs 3 s into the call.
baresip_call() {
    timeout $(($2 + 20)) baresip -n 127.0.0.1 -f "$work/$1" -s -t $(($2 + 10)) \
        -e "/dial sip:bob@127.0.1.2:${dial_port:-$ph_uas}" >"$work/$1.log" 2>&1 </dev/null &
    local ua=$!
    pids+=("$ua")
    if [[ -n "${3:-}" ]]; then
        sleep 3
        "$3"
        sleep $(($2 - 3))
    else
        sleep "$2"
    fi
    stop_phone "$ua"
}

# stop_phone PID: SIGINT (baresip hangs up and sends BYE), then SIGKILL after 3 s: a phone
# whose INVITE never got an answer would otherwise wait for its transaction to time out.
stop_phone() {
    local i
    kill -INT "$1" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# linphone_call NAME SECONDS WITH_CERT: linphonec with its own configuration; the commands
# come on standard input.
linphone_call() {
    local d="$work/$1" p
    port p
    # Without its database directory liblinphone never starts its SIP transports ("No
    # listening point matching" on every call).
    mkdir -p "$d/home/.local/share/linphone"
    {
        echo "[sip]"
        echo "sip_port=0"
        echo "sip_tcp_port=0"
        echo "sip_tls_port=$p"
        echo "root_ca=$pki/ca.pem"
        # The chain is verified against the CA; belle-sip does not match an IP address in
        # the certificate (the proxy is 127.0.2.1), so the name check is off.
        echo "verify_server_certs=1"
        echo "verify_server_cn=0"
        if [[ "$3" == 1 ]]; then
            echo "client_cert_chain=$pki/alice.pem"
            echo "client_cert_key=$pki/alice.key"
        fi
        echo "media_encryption=srtp"
        echo "media_encryption_mandatory=1"
        echo "default_proxy=0"
        echo "[proxy_0]"
        echo "reg_proxy=<sip:127.0.2.1:$ph_sip;transport=tls>"
        echo "reg_route=<sip:127.0.2.1:$ph_sip;transport=tls;lr>"
        echo "reg_identity=sip:$1@127.0.0.1"
        echo "reg_sendregister=0"
        echo "[rtp]"
        echo "audio_rtp_port=41000-41999"
    } >"$d/rc"
    {
        echo "soundcard use files"
        echo "play $work/tone.wav"
        sleep 1
        echo "call sip:bob@127.0.1.2:$ph_uas"
        sleep "$2"
        echo "calls"
        echo "terminate"
        sleep 2
        echo "quit"
    } | HOME="$d/home" timeout $(($2 + 20)) linphonec -c "$d/rc" -d 6 -l "$d/linphone.log" \
        >"$work/$1.log" 2>&1 || true
}

phones_swap() {
    cp "$pki/wan2.pem" "$pki/wan-served.pem"
    cp "$pki/wan2.key" "$pki/wan-served.key"
    kill -HUP "$ph_sw"
    sleep 0.5
    (sleep 1) | timeout 10 openssl s_client -connect "127.0.2.1:$ph_sip" -servername sbc.test \
        -CAfile "$pki/ca.pem" -cert "$pki/alice.pem" -key "$pki/alice.key" -showcerts \
        >"$work/phones-after-swap.s_client" 2>&1 || true
}

phones_run() {
    local why ab ba dr n0 n1
    env -u SIPWARDEN_DATA_DIR timeout 240 "$bin" run --config "$work/phones.toml" \
        >"$work/phones-sw.log" 2>&1 &
    ph_sw=$!
    pids+=("$ph_sw")
    for ((i = 0; i < 100; i++)); do
        grep -q "sipwarden is running" "$work/phones-sw.log" && break
        sleep 0.1
    done
    if ! grep -q "sipwarden is running" "$work/phones-sw.log"; then
        result phones "the second sipwarden did not start: $(tail -n 5 "$work/phones-sw.log" | tr '\n' ' ')"
        return 0
    fi
    # Zone wan requires TLS: no plain-text SIP may reach the phones (127.0.0.1).
    timeout 150 python3 "$here/plainsniff.py" --net 127.0.0.1/32 --out "$work/phones-sniff.txt" \
        --seconds 140 >"$work/phones-sniff.out" 2>&1 &
    local sniff=$!
    pids+=("$sniff")
    # One UAS for every call that should get through (two), answering with an RTP echo.
    timeout 120 sipp -nostdin -i 127.0.1.2 -p "$ph_uas" -t u1 -m 2 -sf "$sippdir/uas-media.xml" \
        -mi 127.0.1.2 -mp "$ph_uas_media" -rtp_echo -trace_msg -message_file "$work/phones-uas.msg" \
        -trace_err -error_file "$work/phones-uas.err" >"$work/phones-uas.out" 2>&1 &
    local uas=$!
    pids+=("$uas")
    sleep 0.3

    # --- refused: baresip without a client certificate.
    why=""
    n0="$(handshake_failures)"
    baresip_dir nocert ""
    baresip_call nocert 3
    n1="$(handshake_failures)"
    [[ "$n1" -gt "$n0" ]] || why+="no failed handshake logged for the phone without a certificate; "
    grep -q "TLS handshake from 127.0.0.1.*failed: .*\(no certificate\|NoCertificate\|certificate required\|peer sent no certificates\)" \
        "$work/phones-sw.log" || why+="the logged reason does not say the certificate is missing: $(grep -m1 'TLS handshake from' "$work/phones-sw.log"); "
    # baresip sends its INVITE on the connection it thinks is up (TLS 1.3: the client's side
    # of the handshake is over before the server checks its certificate); nothing may answer.
    grep -q "^SIP/2.0 [1-6]" "$work/nocert.log" && why+="the phone without a certificate got a SIP response; "
    grep -q "Call established" "$work/nocert.log" && why+="the phone without a certificate got a call; "

    # --- accepted: baresip with its certificate, SRTP, a certificate swap during the call.
    local why_ok=""
    local before after
    before="$(fingerprint "$pki/wan1.pem")"
    after="$(fingerprint "$pki/wan2.pem")"
    baresip_dir alice "$pki/alice.both.pem"
    baresip_call alice 9 phones_swap
    sleep 0.5
    read -r ab ba dr _ <<<"$(relay_line 1)" || true
    grep -c "^INVITE " "$work/phones-uas.msg" 2>/dev/null | grep -qx 1 ||
        why_ok+="the UAS got $(grep -c '^INVITE ' "$work/phones-uas.msg" 2>/dev/null) INVITEs (want 1); "
    grep -q "^BYE " "$work/phones-uas.msg" 2>/dev/null || why_ok+="no BYE reached the UAS; "
    grep -q "From: .*alice@" "$work/phones-uas.msg" 2>/dev/null || why_ok+="the INVITE at the UAS is not alice's; "
    grep -q "nocert@" "$work/phones-uas.msg" 2>/dev/null && why+="the phone without a certificate reached the UAS; "
    grep -q "SRTP is Enabled" "$work/alice.log" || why_ok+="baresip did not enable SRTP; "
    grep -qi "srtp.*\(fail\|error\)" "$work/alice.log" &&
        why_ok+="baresip: $(grep -i -m2 'srtp.*\(fail\|error\)' "$work/alice.log" | tr '\n' ' '); "
    grep -q "Call established\|call established\|ESTABLISHED" "$work/alice.log" ||
        why_ok+="baresip did not report the call established; "
    # 9 s of 20 ms packets: about 450 each way; the swap at 3 s must not stop them.
    [[ -n "$ab" && "$ab" -gt 300 && -n "$ba" && "$ba" -gt 300 ]] ||
        why_ok+="RTP did not flow both ways for the whole call (a->b ${ab:-?}, b->a ${ba:-?}); "
    # baresip 1.0.0's plain RTCP keepalive and its final RTCP BYE are dropped (see
    # tests/e2e/b2bua-srtp.sh).
    [[ "${dr:-3}" -le 2 ]] || why_ok+="the relay dropped ${dr:-?} packets; "
    grep -q "TLS accepted" "$work/phones-sw.log" || why_ok+="no TLS connection accepted; "
    grep -q "TLS certificates reloaded" "$work/phones-sw.log" || why_ok+="no reload logged; "
    local got
    got="$(openssl x509 -in "$work/phones-after-swap.s_client" -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2)"
    [[ "$got" == "$after" ]] ||
        why_ok+="after the swap a new connection got ${got:-nothing}, not the new certificate; "
    [[ "$before" != "$after" ]] || why_ok+="the two certificates are the same; "
    echo "phone-baresip: relay a->b ${ab:-?} b->a ${ba:-?} dropped ${dr:-?}"
    result phone-baresip-mtls-srtp-swap "$why_ok"

    # --- refused: a certificate from another CA (10 s after the first refusal).
    n0="$(handshake_failures)"
    baresip_dir stranger "$pki/stranger.both.pem"
    baresip_call stranger 3
    n1="$(handshake_failures)"
    [[ "$n1" -gt "$n0" ]] || why+="no failed handshake logged for the phone of another CA; "
    grep -q "TLS handshake from 127.0.0.1.*failed: .*\(UnknownIssuer\|unknown issuer\|BadSignature\)" \
        "$work/phones-sw.log" || why+="the logged reason does not name the unknown issuer: $(grep 'TLS handshake from' "$work/phones-sw.log" | tail -n 1); "
    grep -q "stranger@" "$work/phones-uas.msg" 2>/dev/null && why+="the phone of another CA reached the UAS; "
    grep -q "^SIP/2.0 [1-6]" "$work/stranger.log" && why+="the phone of another CA got a SIP response; "
    grep -q "Call established" "$work/stranger.log" && why+="the phone of another CA got a call; "
    result phone-baresip-refused "$why"

    if command -v linphonec >/dev/null; then
        why=""
        linphone_call carol 8 1
        local stun
        read -r ab ba dr stun <<<"$(relay_line 2)" || true
        grep -c "^INVITE " "$work/phones-uas.msg" 2>/dev/null | grep -qx 2 ||
            why+="the UAS got $(grep -c '^INVITE ' "$work/phones-uas.msg" 2>/dev/null) INVITEs (want 2); "
        grep -q "From: .*carol@" "$work/phones-uas.msg" 2>/dev/null || why+="carol's INVITE did not reach the UAS; "
        [[ "$(grep -c '^BYE ' "$work/phones-uas.msg" 2>/dev/null)" == 2 ]] || why+="carol's BYE did not reach the UAS; "
        grep -q "Negotiated media encryption is LinphoneMediaEncryptionSRTP" "$work/carol/linphone.log" ||
            why+="linphone did not negotiate SRTP; "
        grep -q "LinphoneCallStreamsRunning" "$work/carol/linphone.log" ||
            why+="linphone's call never had its streams running; "
        [[ "$(grep -c 'TLS accepted.*common_name: Some("alice")' "$work/phones-sw.log")" -ge 3 ]] ||
            why+="no third connection with the client certificate (baresip, s_client, linphone); "
        [[ -n "$ab" && "$ab" -gt 200 && -n "$ba" && "$ba" -gt 200 ]] ||
            why+="RTP did not flow both ways (a->b ${ab:-?}, b->a ${ba:-?}); "
        # linphone 5.1 sends STUN binding requests (20 octets, no attributes) to the relay's
        # RTP and RTCP ports during the call (seen in a capture); the relay drops them with
        # the reason "stun". Anything else dropped is a failure.
        [[ -n "$dr" && $((dr - ${stun:-0})) -le 0 ]] ||
            why+="the relay dropped ${dr:-?} packets, ${stun:-?} of them STUN; "
        echo "phone-linphone: relay a->b ${ab:-?} b->a ${ba:-?} dropped ${dr:-?} (STUN ${stun:-?})"
        result phone-linphone-mtls-srtp "$why"

        why=""
        n0="$(handshake_failures)"
        linphone_call dave 3 0
        n1="$(handshake_failures)"
        [[ "$n1" -gt "$n0" ]] || why+="no failed handshake logged for linphone without a certificate; "
        grep -q "dave@" "$work/phones-uas.msg" 2>/dev/null && why+="linphone without a certificate reached the UAS; "
        # Either the alert or a reset: sipwarden closes the socket right after its alert, and
        # when the client's next flight is still unread the kernel resets the connection.
        grep -q "SSL handshake failed" "$work/dave/linphone.log" ||
            why+="linphone did not report the refused handshake; "
        result phone-linphone-refused "$why"
    else
        result phone-linphone "linphonec is not installed (Debian: apt-get install linphone-cli)"
    fi

    # --- the callee hangs up: its BYE must reach baresip over baresip's own TLS connection
    # (sipwarden cannot open one to it: baresip's certificate is not a server's of our CA).
    why=""
    local uas2 p2 p2m
    port p2
    port p2m
    timeout 40 sipp -nostdin -i 127.0.1.2 -p "$p2" -t u1 -m 1 -sf "$here/uas-media-bye.xml" \
        -d 4000 -mi 127.0.1.2 -mp "$p2m" -rtp_echo -trace_msg -message_file "$work/phones-uas2.msg" \
        -trace_stat -stf "$work/phones-uas2.csv" -fd 1 \
        -trace_err -error_file "$work/phones-uas2.err" >"$work/phones-uas2.out" 2>&1 &
    uas2=$!
    pids+=("$uas2")
    sleep 0.3
    baresip_dir erin "$pki/alice.both.pem"
    dial_port=$p2 baresip_call erin 7
    wait "$uas2" 2>/dev/null || true
    stats "$work/phones-uas2.csv"
    [[ "$ok" == 1 ]] || why+="the callee's call did not complete (its BYE got no 200): $ok successful; "
    grep -q "^BYE sip:" "$work/erin.log" || why+="baresip got no BYE; "
    grep -q "^BYE sip:" "$work/erin.log" &&
        grep -B1 "^BYE sip:" "$work/erin.log" | grep -q "^TLS 127.0.2.1:$ph_sip -> 127.0.0.1:" ||
        why+="the BYE did not come over the connection to sipwarden's TLS listener; "
    grep -q "Call with sip:bob@127.0.1.2:$p2 terminated" "$work/erin.log" ||
        why+="baresip did not end the call; "
    read -r ab ba dr _ <<<"$(relay_line 3)" || true
    [[ -n "$ab" && "$ab" -gt 100 && -n "$ba" && "$ba" -gt 100 ]] ||
        why+="RTP did not flow both ways (a->b ${ab:-?}, b->a ${ba:-?}); "
    echo "phone-baresip-callee-hangs-up: relay a->b ${ab:-?} b->a ${ba:-?} dropped ${dr:-?}"
    result phone-baresip-callee-hangs-up "$why"

    kill -TERM "$uas" 2>/dev/null || true
    kill -TERM "$ph_sw" 2>/dev/null || true
    wait "$ph_sw" 2>/dev/null || true
    kill -TERM "$sniff" 2>/dev/null || true
    wait "$sniff" 2>/dev/null || true
    why=""
    local plain tls
    plain="$(sed -n 's/^plain=\([0-9]*\) .*/\1/p' "$work/phones-sniff.txt" 2>/dev/null)"
    tls="$(sed -n 's/.* tls=\([0-9]*\) .*/\1/p' "$work/phones-sniff.txt" 2>/dev/null)"
    [[ "$plain" == 0 ]] ||
        why+="plain-text SIP reached the phones: $(tail -n +2 "$work/phones-sniff.txt" 2>/dev/null | head -n 3 | tr '\n' ' ')$(head -c 200 "$work/phones-sniff.out"); "
    [[ -n "$tls" && "$tls" -gt 0 ]] || why+="no TLS record seen towards the phones (${tls:-no sniffer result}); "
    echo "phones: sniffer $(head -n 1 "$work/phones-sniff.txt" 2>/dev/null)"
    result phone-signalling-only-tls "$why"
}
