# Scenarios b2bua-media and b2bua-registered (at the end) of tests/e2e/run-sipp.sh (sourced by
# it; uses its helpers): calls that cross zones go through the B2BUA with their media relayed.
#
# sipwarden with two zones on loopback: lan 127.0.1.0/24 (listener 127.0.1.1, media ports
# 31000-31099) and wan 127.0.2.0/24 (listener 127.0.2.1, media ports 32000-32099). A SIPp UAC on
# 127.0.1.2 calls a SIPp UAS on 127.0.2.2 with SDP and plays 7 s of G.711 RTP (the pcap shipped
# with sip-tester); the UAS echoes it (-rtp_echo). Checked:
# - one successful call on each side;
# - the UAS got SDP with sipwarden's wan address (c=IN IP4 127.0.2.1) and a port of the wan range;
# - no 127.0.1.x address in anything the UAS received or sent (its -trace_msg log);
# - during the call the relay holds sockets in both ranges (/proc/net/udp), and within 1 s after
#   the UAC's BYE was answered it holds none;
# - the relay relayed RTP both ways (its log line at release: a->b and b->a packet counts > 0).

# udp_in: UDP datagrams that reached the UDP layer so far in this network namespace, delivered
# to a socket or not (InDatagrams + NoPorts: SIPp's player has no socket for the echo).
udp_in() {
    awk '/^Udp:/ { n++; if (n == 2) print $2 + $3 }' /proc/net/snmp
}

# media_socks IP LO HI: how many UDP sockets are bound to IP with a port in LO..HI.
media_socks() {
    python3 - "$@" <<'PY'
import socket, struct, sys
ip, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want = struct.unpack("<I", socket.inet_aton(ip))[0]
n = 0
with open("/proc/net/udp") as f:
    next(f)
    for line in f:
        local = line.split()[1]
        a, p = local.split(":")
        if int(a, 16) == want and lo <= int(p, 16) <= hi:
            n += 1
print(n)
PY
}

# b2b_sw_start NAME PORT: sipwarden with the two zones (lan 127.0.1.1:PORT, wan 127.0.2.1:PORT),
# registrar for sipwarden.test; waits until it runs.
b2b_sw_start() {
    local name="$1" p="$2" cfg="$work/$1.toml" i
    sw_log="$work/$name.sipwarden.log"
    sw_port="$p"
    cat >"$cfg" <<EOF
# Written by tests/e2e/b2bua-media.sh.
[general]
data_dir = "$work/$name.data"
log_level = "debug"
node_name = "e2e-$name"

[registrar]
domains = ["sipwarden.test"]

[[listen]]
zone = "lan"
address = "127.0.1.1:$p"

[[listen]]
zone = "wan"
address = "127.0.2.1:$p"

[[zone]]
name = "lan"
networks = ["127.0.1.0/24"]
trusted = true

[[zone]]
name = "wan"
networks = ["127.0.2.0/24"]

[media]
quarantine_s = 0
firewall = "${b2b_firewall:-off}"
kernel_forward = ${b2b_kernel:-false}
$([[ "${b2b_kernel:-false}" == true ]] && echo 'kernel_forward_interfaces = ["lo"]')

[[media.zone]]
zone = "lan"
ports = "31000-31099"

[[media.zone]]
zone = "wan"
ports = "32000-32099"
EOF
    env -u SIPWARDEN_DATA_DIR "$bin" run --config "$cfg" >>"$sw_log" 2>&1 &
    sw_pid=$!
    pids+=("$sw_pid")
    for ((i = 0; i < 100; i++)); do
        grep -q "sipwarden is running" "$sw_log" 2>/dev/null && break
        sw_alive || break
        sleep 0.1
    done
    if ! grep -q "sipwarden is running" "$sw_log"; then
        why+="sipwarden did not start: $(tail -n 3 "$sw_log" | tr '\n' ' '); "
        return 1
    fi

}

scenario_b2bua_media() {
    local name="${b2b_name:-b2bua-media}" p="$next_sw_port" uas_port uac_port uas_media uac_media i
    port uas_port
    port uac_port
    port uas_media
    port uac_media
    if [[ ! -r /usr/share/sip-tester/g711a.pcap ]]; then
        skip="/usr/share/sip-tester/g711a.pcap is missing (Debian package sip-tester)"
        return 0
    fi
    b2b_sw_start "$name" "$p" || return 0
    b2b_relayed=""
    b2b_udp_in="$(udp_in)"

    local sipp_ip=127.0.2.2
    sipp_bg "$name-uas" 40 -sf "$sippdir/uas-media.xml" -p "$uas_port" -t u1 -m 1 \
        -mi 127.0.2.2 -mp "$uas_media" -rtp_echo
    local uas=$last_bg
    sleep 0.3
    sipp_ip=127.0.1.2
    sipp_bg "$name-uac" 40 "127.0.1.1:$p" -sf "$sippdir/uac-media.xml" -p "$uac_port" -t u1 \
        -mi 127.0.1.2 -mp "$uac_media" -key ruri "sip:bob@127.0.2.2:$uas_port" -m 1 \
        -recv_timeout 20000
    local uac=$last_bg
    sleep 3
    local lan_open wan_open
    lan_open="$(media_socks 127.0.1.1 31000 31099)"
    wan_open="$(media_socks 127.0.2.1 32000 32099)"
    summary+="during the call: $lan_open lan and $wan_open wan media sockets; "
    [[ "$lan_open" -ge 1 && "$wan_open" -ge 1 ]] ||
        why+="no relay sockets during the call (lan $lan_open, wan $wan_open); "
    wait_pid "$uac" 30 || true
    local closed_after=""
    for ((i = 0; i <= 10; i++)); do
        if [[ "$(media_socks 127.0.1.1 31000 31099)" == 0 &&
            "$(media_socks 127.0.2.1 32000 32099)" == 0 ]]; then
            closed_after=$((i * 100))
            break
        fi
        sleep 0.1
    done
    if [[ -n "$closed_after" ]]; then
        summary+="media ports closed ${closed_after} ms after the call; "
    else
        why+="media ports still open 1 s after the BYE; "
    fi
    wait_pid "$uas" 15 || true
    expect_calls "$name-uac" 1
    expect_calls "$name-uas" 1

    local msg="$work/$name-uas.msg"
    if ! grep -q "c=IN IP4 127.0.2.1" "$msg"; then
        why+="the UAS got no SDP with sipwarden's wan address; "
    fi
    local mport
    mport="$(grep -m1 -o 'm=audio [0-9]*' "$msg" | awk '{print $2}')"
    if [[ -z "$mport" || "$mport" -lt 32000 || "$mport" -gt 32099 ]]; then
        why+="the UAS's SDP port ${mport:-none} is not in 32000-32099; "
    fi
    if grep -q "127\.0\.1\." "$msg"; then
        why+="a lan address reached the UAS: $(grep -m3 '127\.0\.1\.' "$msg" | tr '\n' ' '); "
    fi
    local rel ab ba
    rel="$(grep -m1 -o 'released: RTP relayed a->b [0-9]* packets, b->a [0-9]* packets' "$sw_log" || true)"
    ab="$(sed -n 's/.*a->b \([0-9]*\) packets.*/\1/p' <<<"$rel")"
    ba="$(sed -n 's/.*b->a \([0-9]*\) packets.*/\1/p' <<<"$rel")"
    summary+="relay: ${ab:-?} RTP packets lan->wan, ${ba:-?} wan->lan; "
    [[ "${b2b_kernel:-false}" == true ]] || summary+="UDP arrivals: $(($(udp_in) - b2b_udp_in)); "
    if [[ -z "$ab" || -z "$ba" || "$ab" -eq 0 || "$ba" -eq 0 ]]; then
        why+="RTP did not flow both ways through the relay (${rel:-no release line}); "
    else
        b2b_relayed=$((ab + ba))
    fi
    b2b_udp_in=$(($(udp_in) - b2b_udp_in))
}

# Scenario b2bua-registered: a phone in zone wan (127.0.2.3) registers sip:bob@sipwarden.test at
# sipwarden's wan address; 5 calls from a caller in zone lan (127.0.1.2) to that AOR reach it
# through the B2BUA (a new Call-ID per call, nothing of the lan in what the phone receives).
scenario_b2bua_registered() {
    local name=b2bua-registered p="$next_sw_port" phone_port uac_port i
    port phone_port
    port uac_port
    b2b_sw_start "$name" "$p" || return 0
    local sipp_ip=127.0.2.3
    sipp_bg "$name-phone" 40 "127.0.2.1:$p" -sf "$sippdir/phone.xml" -oocsf "$sippdir/uas.xml" \
        -p "$phone_port" -m 1 -recv_timeout 10000 -key registrar "sip:sipwarden.test" \
        -key aor "sip:bob@sipwarden.test" -key contact "sip:bob@127.0.2.3:$phone_port" \
        -key expires 3600 -key hold_ms 8000 -d 0
    phone_pid=$last_bg
    for ((i = 0; i < 100; i++)); do
        grep -q '^SIP/2.0 200' "$work/$name-phone.msg" 2>/dev/null && break
        sleep 0.1
    done
    sipp_ip=127.0.1.2
    sipp_run "$name-uac" 40 "127.0.1.1:$p" -sf "$sippdir/uac.xml" -p "$uac_port" -t u1 \
        -key ruri "sip:bob@sipwarden.test" -m 5 -r 5 -d 200 -recv_timeout 20000 || true
    wait_pid "$phone_pid" 30 || true
    expect_calls "$name-uac" 5
    expect_phone "$name-phone" 5
    local calls
    calls="$(grep -c 'zone lan -> wan' "$sw_log" || true)"
    summary+="$calls calls through the B2BUA; "
    [[ "$calls" == 5 ]] || why+="$calls calls went through the B2BUA, want 5; "
    if grep -q "127\.0\.1\." "$work/$name-phone.msg"; then
        why+="a lan address reached the wan phone: $(grep -m3 '127\.0\.1\.' "$work/$name-phone.msg" | tr '\n' ' '); "
    fi
}

# Scenario b2bua-media-nft: b2bua-media with media.firewall = "nftables" (the relay's ports are
# opened in an nftables table of sipwarden's own). Skipped without nft or outside the private
# network namespace (it must not touch the host's firewall).
scenario_b2bua_media_nft() {
    if [[ -z "$in_netns" ]] || ! command -v nft >/dev/null; then
        skip="needs nft and the private network namespace"
        return 0
    fi
    b2b_firewall=nftables b2b_name=b2bua-media-nft scenario_b2bua_media
    if ! grep -q "media zone wan" "$sw_log"; then
        return 0
    fi
    if nft list table inet sipwarden_media >/dev/null 2>&1; then
        summary+="nftables table present while running; "
    else
        why+="no nftables table while sipwarden runs; "
    fi
    sw_stop
    if nft list table inet sipwarden_media >/dev/null 2>&1; then
        why+="the nftables table is still there after sipwarden stopped; "
    fi
}

# Scenario b2bua-media-kfwd: b2bua-media with media.kernel_forward = true, the tc program on the
# namespace's lo. Besides the checks of b2bua-media: sipwarden reports the fast path at start,
# and the relay's sockets did not receive the media. Every relayed RTP packet reaches the UDP
# layer once at its receiver; relayed through the sockets, it reaches it a second time before,
# at the relay (so about 2 arrivals per packet relayed, against about 1 when the kernel forwards
# it, or less: SIPp's player has no socket for the echo; /proc/net/snmp of the namespace counts
# them; measured: 720 through the sockets, 250 in the kernel, for 472 relayed). Skipped outside the private network
# namespace, or where the kernel refuses the program (not root, no CAP_BPF).
scenario_b2bua_media_kfwd() {
    if [[ -z "$in_netns" ]]; then
        skip="needs the private network namespace (the program attaches to its lo)"
        return 0
    fi
    b2b_kernel=true b2b_name=b2bua-media-kfwd scenario_b2bua_media
    local refused
    refused="$(grep -m1 -o 'kernel media forwarding: .*' "$sw_log" 2>/dev/null || true)"
    if [[ -n "$refused" ]]; then
        skip="the kernel path could not be set up here: $refused"
        why=""
        return 0
    fi
    [[ -z "$skip" ]] || return 0
    grep -q "media kernel fast path on lo" "$sw_log" ||
        why+="sipwarden did not report the kernel fast path at start; "
    if [[ -n "$b2b_relayed" ]]; then
        summary+="$b2b_udp_in UDP datagrams arrived in the namespace for $b2b_relayed RTP packets relayed; "
        ((b2b_udp_in * 4 < b2b_relayed * 5)) ||
            why+="the relay's sockets received the media ($b2b_udp_in UDP datagrams arrived for $b2b_relayed relayed): it was not forwarded in the kernel; "
    fi
}
