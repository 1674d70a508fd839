#!/usr/bin/env bash
# End-to-end tests of the release binary with real SIP traffic: each scenario starts its own
# `sipwarden run` (a temporary data directory, UDP and TCP on 127.0.0.1 at a free port) and
# SIPp phones on other loopback ports (scenarios in tests/e2e/sipp/), then checks SIPp's call
# counts. Prints PASS/FAIL per scenario with the reason and ends with "e2e: N passed, M failed";
# exits non-zero when anything failed.
#
# Usage: tests/e2e/run-sipp.sh [PATH-TO-SIPWARDEN-BINARY] [SCENARIO...]
#   default binary: ${CARGO_TARGET_DIR:-target}/release/sipwarden (cargo build --release -p sipwarden)
#   scenarios: by default defaults-call udp-call tcp-t1-call tcp-tn-call register-call register-call-tcp
#   register-third-party ipv6-udp-call reload lossy-udp cancel fork persistence rfc4475-udp
#   b2bua-media b2bua-registered b2bua-media-nft b2bua-media-kfwd (tests/e2e/b2bua-media.sh)
# Needs: sipp (Debian package sip-tester), python3, timeout, and unshare + ip (util-linux,
# iproute2) for the network namespace.
# Environment: SIPWARDEN_E2E_KEEP=1 keeps the work directory (logs, SIPp traces) even when
# everything passed; SIPWARDEN_E2E_NETNS=off runs on the machine's own loopback instead of a
# private network namespace (rfc4475-udp is then skipped).
#
# Network: every packet goes to 127.0.0.1. The script re-runs itself in a network namespace of
# its own (only a loopback interface) when it can, so that nothing can leave the machine even
# if a message under test names another host, and so that the well-known ports are free.
# Every SIPp and Python process runs under `timeout`; sipwarden processes are stopped by PID
# when their scenario ends, and everything still running is stopped by PID on exit.
set -euo pipefail

script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bin="${1:-${CARGO_TARGET_DIR:-target}/release/sipwarden}"
shift || true
if [[ ! -x "$bin" ]]; then
    echo "run-sipp: binary not found at $bin (run: cargo build --release -p sipwarden)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for tool in sipp python3 timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run-sipp: $tool not found (Debian: apt-get install sip-tester python3 coreutils)" >&2
        exit 2
    fi
done

# ---------------------------------------------------------------------------------------------
# A network namespace of our own: only `lo`, nothing routable beyond it.
if [[ -z "${SIPWARDEN_E2E_IN_NETNS:-}" && "${SIPWARDEN_E2E_NETNS:-auto}" != off ]]; then
    ns=(unshare --net)
    [[ $(id -u) -eq 0 ]] || ns=(unshare --user --map-root-user --net)
    if command -v unshare >/dev/null && command -v ip >/dev/null &&
        "${ns[@]}" ip link set lo up 2>/dev/null; then
        exec "${ns[@]}" env SIPWARDEN_E2E_IN_NETNS=1 \
            bash -c 'ip link set lo up && exec "$@"' run-sipp "$script" "$bin" "$@"
    fi
    echo "run-sipp: cannot create a network namespace (unshare/ip missing or not permitted);" \
        "running on the machine's loopback"
fi
in_netns="${SIPWARDEN_E2E_IN_NETNS:-}"

sippdir="$root/tests/e2e/sipp"
check="$root/tests/e2e/sipcheck.py"
work="$(mktemp -d "${TMPDIR:-/tmp}/sipwarden-e2e.XXXXXX")"

# ---------------------------------------------------------------------------------------------
# Processes: every background process is recorded and stopped by PID.
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${SIPWARDEN_E2E_KEEP:-}" == 1 || "${failed:-0}" -gt 0 ]]; then
        echo "run-sipp: logs and SIPp traces kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Waits up to $2 seconds for PID $1 to exit; returns its exit code, or 124 if it is still
# running (it is then stopped).
wait_pid() {
    local pid="$1" secs="$2" i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 124
    fi
    local rc=0
    wait "$pid" || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Ports: free for UDP and TCP on 127.0.0.1, each handed out once.
used_ports=()
port() { # port VAR
    local _port
    _port="$(timeout 10 python3 "$check" freeport --avoid "${used_ports[@]}" 0)"
    used_ports+=("$_port")
    printf -v "$1" '%s' "$_port"
}

# ---------------------------------------------------------------------------------------------
# sipwarden
sw_pid=""
sw_port=""
sw_log=""
# sw_start NAME DATA_DIR PORT [EXTRA-TOML]: a registrar and proxy for the domain sipwarden.test
# on UDP and TCP 127.0.0.1:PORT (EXTRA-TOML is appended: more listeners, other settings); waits
# until it answers an OPTIONS.
sw_start() {
    local name="$1" data="$2" p="$3" extra="${4:-}" cfg="$work/$1.toml"
    sw_log="$work/$name.sipwarden.log"
    sw_port="$p"
    cat >"$cfg" <<EOF
# Written by tests/e2e/run-sipp.sh for scenario $name.
[general]
data_dir = "$data"
log_level = "debug"
node_name = "e2e-$name"

[[listen]]
transport = "udp"
address = "127.0.0.1:$p"

[[listen]]
transport = "tcp"
address = "127.0.0.1:$p"

[registrar]
domains = ["sipwarden.test"]

[proxy]
invite_timeout_s = 60

[[zone]]
name = "lan"
networks = ["127.0.0.0/8", "::1/128"]

$extra
EOF
    # SIPWARDEN_DATA_DIR would win over the file: make sure an inherited one does not.
    env -u SIPWARDEN_DATA_DIR "$bin" run --config "$cfg" >>"$sw_log" 2>&1 &
    sw_pid=$!
    pids+=("$sw_pid")
    if ! timeout 15 python3 "$check" options "$p" --wait 10; then
        echo "sipwarden did not answer OPTIONS on 127.0.0.1:$p within 10 s; log:" >&2
        tail -n 20 "$sw_log" >&2
        return 1
    fi
}

sw_alive() { kill -0 "$sw_pid" 2>/dev/null; }

# Stops the current sipwarden (SIGTERM, then SIGKILL after 5 s).
sw_stop() {
    [[ -n "$sw_pid" ]] || return 0
    kill -TERM "$sw_pid" 2>/dev/null || true
    wait_pid "$sw_pid" 5 || {
        kill -KILL "$sw_pid" 2>/dev/null || true
        wait "$sw_pid" 2>/dev/null || true
    }
    sw_pid=""
}

# ---------------------------------------------------------------------------------------------
# SIPp. The local address of the phones: 127.0.0.1, or ::1 for the IPv6 scenario.
sipp_ip=127.0.0.1
# Every run writes $work/NAME.{out,csv,err,msg}; NAME_pid is its PID when in background.
# sipp_bg NAME SECONDS ARGS...: starts sipp in the background, time-bounded.
sipp_bg() {
    local name="$1" secs="$2"
    shift 2
    timeout "$secs" sipp -nostdin -i "$sipp_ip" \
        -trace_stat -stf "$work/$name.csv" -fd 1 \
        -trace_err -error_file "$work/$name.err" \
        -trace_msg -message_file "$work/$name.msg" \
        "$@" >"$work/$name.out" 2>&1 &
    last_bg=$!
    pids+=("$last_bg")
}

# sipp_run NAME SECONDS ARGS...: runs sipp in the foreground; returns its exit code.
sipp_run() {
    local name="$1" secs="$2" rc=0
    shift 2
    timeout "$secs" sipp -nostdin -i "$sipp_ip" \
        -trace_stat -stf "$work/$name.csv" -fd 1 \
        -trace_err -error_file "$work/$name.err" \
        -trace_msg -message_file "$work/$name.msg" \
        "$@" >"$work/$name.out" 2>&1 || rc=$?
    return "$rc"
}

# stats NAME: sets ok and ko to the successful and failed call counts of SIPp run NAME (from
# the last line of its statistics file; "?" when there is none).
stats() {
    ok="?"
    ko="?"
    local f="$work/$1.csv"
    [[ -s "$f" ]] || return 0
    read -r ok ko < <(awk -F';' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { last = $0 }
        END { n = split(last, v, ";"); print v[col["SuccessfulCall(C)"]], v[col["FailedCall(C)"]] }' "$f")
}

# The first lines of SIPp's error file NAME, for a failure reason.
sipp_errors() {
    local f="$work/$1.err"
    [[ -s "$f" ]] || return 0
    grep -v '^The following events occurred' "$f" | tr -s '\n' ' ' | cut -c1-300
}

# expect_calls NAME WANT_OK: appends to $why when SIPp run NAME did not have exactly WANT_OK
# successful and 0 failed calls.
why=""
expect_calls() {
    local name="$1" want="$2"
    stats "$name"
    summary+="$name $ok ok/$ko failed; "
    if [[ "$ok" != "$want" || "$ko" != 0 ]]; then
        why+="$name: $ok successful, $ko failed calls (want $want, 0): $(sipp_errors "$name"); "
    fi
}

# expect_calls_at_least NAME MIN TOTAL: as expect_calls, but MIN of TOTAL calls are enough. Only
# for lossy runs: with SIPp's simulated loss on both ends, the end-to-end parts of a call that
# no transaction protects through a proxy (the ACK of a 2xx, a BYE racing a lost ACK, SIPp's
# own scenario matching) abort a call or two in fifty however the proxy behaves; the failures
# are still printed.
expect_calls_at_least() {
    local name="$1" min="$2" total="$3"
    stats "$name"
    summary+="$name $ok ok/$ko failed; "
    if [[ "$ok" == "?" || "$ko" == "?" || $((ok + ko)) -ne $total || $ok -lt $min ]]; then
        why+="$name: $ok successful, $ko failed calls (want at least $min of $total): $(sipp_errors "$name"); "
    elif [[ "$ko" != 0 ]]; then
        summary+="(tolerated: $(sipp_errors "$name" | cut -c1-160)) "
    fi
}

# register NAME AOR CONTACT [TRANSPORT-OPTION]: one REGISTER for AOR with CONTACT; 200 expected.
register() {
    local name="$1" aor="$2" contact="$3"
    shift 3
    local reg_port
    port reg_port
    if ! sipp_run "$name" 20 "127.0.0.1:$sw_port" -sf "$sippdir/register.xml" -p "$reg_port" \
        -key registrar "sip:sipwarden.test" -key aor "$aor" -key contact "$contact" \
        -key expires 3600 -m 1 -recv_timeout 10000 "$@"; then
        why+="REGISTER $aor -> $contact failed: $(sipp_errors "$name"); "
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Scenarios. Each sets $why (empty: passed) and $summary (what was seen).

# A basic call flow, COUNT calls at RATE per second: UAC -> sipwarden -> UAS.
# call_flow NAME UAC_TRANSPORT UAS_TRANSPORT RURI_TRANSPORT_PARAM COUNT RATE
call_flow() {
    local name="$1" uac_t="$2" uas_t="$3" param="$4" count="$5" rate="$6" uas_port uac_port
    port uas_port
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    local extra=()
    [[ "$uac_t" == tn ]] && extra=(-max_socket 256)
    sipp_bg "$name-uas" 120 -sf "$sippdir/uas.xml" -p "$uas_port" -t "$uas_t" -m "$count" -d 0
    local uas=$last_bg
    sleep 0.3
    sipp_run "$name-uac" 120 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -t "$uac_t" "${extra[@]}" -key ruri "sip:bob@127.0.0.1:$uas_port$param" \
        -m "$count" -r "$rate" -d 200 -recv_timeout 20000 || true
    wait_pid "$uas" 15 || true
    expect_calls "$name-uac" "$count"
    expect_calls "$name-uas" "$count"
}

# The README's run command: sipwarden with no configuration at all (embedded defaults: UDP and
# TCP on 0.0.0.0:5060, the local networks, the registrar for our own addresses), and calls
# through it to a phone on another port of this host.
scenario_defaults_call() {
    local name=defaults-call uas_port uac_port
    if [[ -z "$in_netns" ]]; then
        skip="needs the private network namespace: the embedded defaults listen on port 5060"
        return 0
    fi
    port uas_port
    port uac_port
    sw_log="$work/$name.sipwarden.log"
    sw_port=5060
    SIPWARDEN_DATA_DIR="$work/$name.data" "$bin" run >>"$sw_log" 2>&1 &
    sw_pid=$!
    pids+=("$sw_pid")
    if ! timeout 15 python3 "$check" options 5060 --wait 10; then
        why+="sipwarden on its embedded defaults did not answer OPTIONS on 127.0.0.1:5060; "
        return 0
    fi
    sipp_bg "$name-uas" 120 -sf "$sippdir/uas.xml" -p "$uas_port" -t u1 -m 20 -d 0
    local uas=$last_bg
    sleep 0.3
    sipp_run "$name-uac" 120 "127.0.0.1:5060" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -t u1 -key ruri "sip:bob@127.0.0.1:$uas_port" -m 20 -r 10 -d 200 \
        -recv_timeout 20000 || true
    wait_pid "$uas" 15 || true
    expect_calls "$name-uac" 20
    expect_calls "$name-uas" 20
}

scenario_udp_call() { call_flow udp-call u1 u1 "" 50 20; }
scenario_tcp_t1_call() { call_flow tcp-t1-call t1 t1 ";transport=tcp" 50 20; }
scenario_tcp_tn_call() { call_flow tcp-tn-call tn t1 ";transport=tcp" 50 20; }

# phone_start NAME AOR OOC_SCENARIO HOLD_MS SIPP-ARGS...: a phone (tests/e2e/sipp/phone.xml)
# that registers AOR from its own socket and answers calls with OOC_SCENARIO for HOLD_MS ms;
# waits until the REGISTER is answered. Sets phone_pid and phone_port.
phone_start() {
    local name="$1" aor="$2" ooc="$3" hold="$4" param="" i host="$sipp_ip"
    shift 4
    port phone_port
    [[ "$host" == *:* ]] && host="[$host]"
    [[ " $* " == *" -t t1 "* ]] && param=";transport=tcp"
    sipp_bg "$name" $((hold / 1000 + 30)) "$host:$sw_port" -sf "$sippdir/phone.xml" \
        -oocsf "$sippdir/$ooc" -p "$phone_port" -m 1 -recv_timeout 10000 \
        -key registrar "sip:sipwarden.test" -key aor "$aor" \
        -key contact "${aor%%@*}@$host:$phone_port$param" -key expires 3600 \
        -key hold_ms "$hold" "$@"
    phone_pid=$last_bg
    for ((i = 0; i < 100; i++)); do
        grep -q '^SIP/2.0 200' "$work/$name.msg" 2>/dev/null && return 0
        kill -0 "$phone_pid" 2>/dev/null || break
        sleep 0.1
    done
    why+="$name: REGISTER $aor not answered with 200: $(sipp_errors "$name"); "
    return 1
}

# expect_phone NAME MIN_INVITES: the phone NAME registered (its one call succeeded), received
# at least MIN_INVITES INVITEs, and none of the calls run by its out-of-call scenario failed.
expect_phone() {
    local name="$1" want="$2" invites errors
    stats "$name"
    invites=$(grep -c '^INVITE sip' "$work/$name.msg" 2>/dev/null || true)
    errors=$(grep -v -e '^The following events occurred' -e '^\s*$' "$work/$name.err" 2>/dev/null |
        sed 's/Received out-of-call [A-Z]* message, using the out-of-call scenario//g' |
        tr -d '\n' | tr -s ' ' | cut -c1-300 || true)
    summary+="$name registered $ok/$ko, $invites INVITEs; "
    if [[ "$ok" != 1 || "$ko" != 0 ]]; then
        why+="$name: its REGISTER call: $ok successful, $ko failed; "
    fi
    if ((invites < want)); then
        why+="$name: $invites INVITEs received, want $want; "
    fi
    # SIPp's error lines run together; anything but the out-of-call notices is a failure.
    if [[ -n "$(echo "$errors" | tr -d '[:space:][:digit:].:-')" ]]; then
        why+="$name: $errors; "
    fi
}

# A phone registers (from its own socket, so over TCP on its own connection), then 20 calls
# to its AOR reach it.
register_call() {
    local name="$1" t="$2" uac_port
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    phone_start "$name-phone" "sip:bob@sipwarden.test" uas.xml 12000 -t "$t" -d 0 || return 0
    sipp_run "$name-uac" 60 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" -t "$t" \
        -key ruri "sip:bob@sipwarden.test" -m 20 -r 10 -d 200 -recv_timeout 20000 || true
    wait_pid "$phone_pid" 20 || true
    expect_calls "$name-uac" 20
    expect_phone "$name-phone" 20
}
scenario_register_call() { register_call register-call u1; }
scenario_register_call_tcp() { register_call register-call-tcp t1; }

# A third party registers a contact that is another process (a SIPp UAS on its own port) than
# the one that sends the REGISTER, then 5 calls to the AOR reach the UAS (RFC 3261 10.2). With
# registrar.contact_routing = "auto" (the default) the REGISTER's Via matches its source, so no
# NAT is detected and calls go to the Contact, not to the REGISTER's source.
scenario_register_third_party() {
    local name=register-third-party uas_port uac_port
    port uas_port
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    sipp_bg "$name-uas" 60 -sf "$sippdir/uas.xml" -p "$uas_port" -m 5 -d 0
    local uas=$last_bg
    register "$name-reg" "sip:erin@sipwarden.test" "sip:erin@127.0.0.1:$uas_port" ||
        { kill -TERM "$uas" 2>/dev/null; wait_pid "$uas" 5 || true; return 0; }
    sipp_run "$name-uac" 60 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -key ruri "sip:erin@sipwarden.test" -m 5 -r 5 -d 200 -recv_timeout 10000 || true
    wait_pid "$uas" 15 || true
    expect_calls "$name-uac" 5
    expect_calls "$name-uas" 5
}

# 10 % of the packets lost at both phones (SIPp -lost 10, on what each sends and receives):
# every call must still complete through the retransmissions of SIPp and of sipwarden's
# transaction layer.
scenario_lossy_udp() {
    local name=lossy-udp uas_port uac_port
    port uas_port
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    sipp_bg "$name-uas" 150 -sf "$sippdir/uas-lossy.xml" -p "$uas_port" -m 50 -d 0 -lost 10
    local uas=$last_bg
    sleep 0.3
    sipp_run "$name-uac" 150 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -key ruri "sip:bob@127.0.0.1:$uas_port" -m 50 -r 10 -d 200 -lost 10 \
        -recv_timeout 60000 -max_retrans 10 || true
    wait_pid "$uas" 30 || true
    expect_calls_at_least "$name-uac" 46 50
    expect_calls_at_least "$name-uas" 46 50
}

# The caller cancels a ringing call: 200 for the CANCEL, 487 for the INVITE, ACK.
scenario_cancel() {
    local name=cancel uas_port uac_port
    port uas_port
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    sipp_bg "$name-uas" 90 -sf "$sippdir/uas-cancel.xml" -p "$uas_port" -m 20
    local uas=$last_bg
    sleep 0.3
    sipp_run "$name-uac" 90 "127.0.0.1:$sw_port" -sf "$sippdir/uac-cancel.xml" -p "$uac_port" \
        -key ruri "sip:bob@127.0.0.1:$uas_port" -m 20 -r 10 -recv_timeout 20000 || true
    wait_pid "$uas" 15 || true
    expect_calls "$name-uac" 20
    expect_calls "$name-uas" 20
}

# Two phones registered for one AOR: both ring, one answers after 1 s, sipwarden cancels the
# other (which answers the CANCEL with 200 and the INVITE with 487, and gets the ACK).
scenario_fork() {
    local name=fork uac_port a b
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    phone_start "$name-phone-answers" "sip:carol@sipwarden.test" uas.xml 12000 -d 1000 || return 0
    a=$phone_pid
    phone_start "$name-phone-cancelled" "sip:carol@sipwarden.test" uas-cancel.xml 12000 || return 0
    b=$phone_pid
    sipp_run "$name-uac" 60 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -key ruri "sip:carol@sipwarden.test" -m 5 -r 2 -d 200 -recv_timeout 20000 || true
    wait_pid "$a" 20 || true
    wait_pid "$b" 20 || true
    expect_calls "$name-uac" 5
    expect_phone "$name-phone-answers" 5
    expect_phone "$name-phone-cancelled" 5
    local cancels
    cancels=$(grep -c '^CANCEL sip' "$work/$name-phone-cancelled.msg" 2>/dev/null || true)
    summary+="$name-phone-cancelled got $cancels CANCELs; "
    ((cancels >= 5)) || why+="$name-phone-cancelled received $cancels CANCELs, want 5; "
}

# A phone registers; sipwarden is killed with SIGKILL and started again on the same data
# directory and port: the binding is still there and calls to the AOR reach the phone.
scenario_persistence() {
    local name=persistence uac_port data="$work/persistence.data"
    port uac_port
    sw_start "$name" "$data" "$next_sw_port" || return 0
    phone_start "$name-phone" "sip:dave@sipwarden.test" uas.xml 15000 -d 0 || return 0
    kill -KILL "$sw_pid"
    wait "$sw_pid" 2>/dev/null || true
    echo "  (sipwarden pid $sw_pid killed with SIGKILL after the REGISTER; starting it again)"
    sw_pid=""
    if ! sw_start "$name-restarted" "$data" "$sw_port"; then
        why+="sipwarden did not start again on the same data directory; "
        return 0
    fi
    grep -h 'data dir' "$work/$name-restarted.sipwarden.log" | sed 's/^.*INFO /  (restarted: /; s/$/)/'
    sipp_run "$name-uac" 60 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -key ruri "sip:dave@sipwarden.test" -m 5 -r 5 -d 200 -recv_timeout 10000 || true
    wait_pid "$phone_pid" 25 || true
    expect_calls "$name-uac" 5
    expect_phone "$name-phone" 5
}

# IPv6: sipwarden also listens on [::1] (UDP and TCP); 20 calls from a SIPp UAC on ::1 through
# sipwarden's [::1] listener to a SIPp UAS on ::1, over UDP, then 10 calls to an AOR registered
# from ::1. Via received, Record-Route and the registered contact carry IPv6 references.
scenario_ipv6_udp_call() {
    local name=ipv6-udp-call uas_port uac_port
    if ! ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128'; then
        skip="no IPv6 loopback address (::1) here"
        return 0
    fi
    port uas_port
    port uac_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" "$(printf '%s\n' \
        '[[listen]]' 'transport = "udp"' "address = \"[::1]:$next_sw_port\"" '' \
        '[[listen]]' 'transport = "tcp"' "address = \"[::1]:$next_sw_port\"")" || return 0
    sipp_ip=::1
    sipp_bg "$name-uas" 120 -sf "$sippdir/uas.xml" -p "$uas_port" -t u1 -m 20 -d 0
    local uas=$last_bg
    sleep 0.3
    sipp_run "$name-uac" 120 "[::1]:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -t u1 -key ruri "sip:bob@[::1]:$uas_port" -m 20 -r 10 -d 200 -recv_timeout 20000 || true
    wait_pid "$uas" 15 || true
    expect_calls "$name-uac" 20
    expect_calls "$name-uas" 20
    if ! grep -q 'Record-Route: <sip:\[::1\]' "$work/$name-uas.msg" 2>/dev/null; then
        why+="$name: no IPv6 Record-Route seen at the UAS; "
    fi
    # A phone registered from ::1, called through sipwarden.
    phone_start "$name-phone" "sip:frank@sipwarden.test" uas.xml 12000 -d 0 || {
        sipp_ip=127.0.0.1
        return 0
    }
    sipp_run "$name-uac2" 60 "[::1]:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -key ruri "sip:frank@sipwarden.test" -m 10 -r 10 -d 200 -recv_timeout 20000 || true
    wait_pid "$phone_pid" 20 || true
    sipp_ip=127.0.0.1
    expect_calls "$name-uac2" 10
    expect_phone "$name-phone" 10
}

# SIGHUP reload during a call: a call is set up and held for 8 s; meanwhile a REGISTER for the
# domain reloaded.test is not taken by the registrar (not one of its domains), the file gets
# that domain (registrar.domains, reloadable), sipwarden gets SIGHUP and logs it applied, and a
# REGISTER for reloaded.test now gets its 200. The call in progress then ends normally (its BYE
# goes through the Record-Route of before the reload) and the UAS sees every message.
scenario_reload() {
    local name=reload uas_port uac_port reg_port rc=0 i
    port uas_port
    port uac_port
    port reg_port
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    sipp_bg "$name-uas" 60 -sf "$sippdir/uas.xml" -p "$uas_port" -m 1 -d 0
    local uas=$last_bg
    sleep 0.3
    sipp_bg "$name-uac" 60 "127.0.0.1:$sw_port" -sf "$sippdir/uac.xml" -p "$uac_port" \
        -key ruri "sip:bob@127.0.0.1:$uas_port" -m 1 -d 8000 -recv_timeout 20000
    local uac=$last_bg
    # Wait until the call is up (the ACK reached the UAS).
    for ((i = 0; i < 50; i++)); do
        grep -q '^ACK sip' "$work/$name-uas.msg" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^ACK sip' "$work/$name-uas.msg" 2>/dev/null || why+="the call was not set up; "
    local reg=(-sf "$sippdir/register.xml" -p "$reg_port" -key registrar "sip:reloaded.test"
        -key aor "sip:gina@reloaded.test" -key contact "sip:gina@127.0.0.1:$uas_port"
        -key expires 600 -m 1 -recv_timeout 3000)
    sipp_run "$name-reg-before" 10 "127.0.0.1:$sw_port" "${reg[@]}" || rc=$?
    [[ $rc -ne 0 ]] || why+="REGISTER for reloaded.test got 200 before the reload; "
    sed -i 's/^domains = \["sipwarden.test"\]$/domains = ["sipwarden.test", "reloaded.test"]/' \
        "$work/$name.toml"
    kill -HUP "$sw_pid"
    for ((i = 0; i < 50; i++)); do
        grep -q 'configuration reloaded; applied: registrar.domains' "$sw_log" && break
        sleep 0.1
    done
    if ! grep -q 'configuration reloaded; applied: registrar.domains' "$sw_log"; then
        why+="no 'applied: registrar.domains' after SIGHUP: $(grep SIGHUP "$sw_log" | tail -n 2 | tr '\n' ' '); "
    fi
    sipp_run "$name-reg-after" 10 "127.0.0.1:$sw_port" "${reg[@]}" ||
        why+="REGISTER for reloaded.test after the reload: $(sipp_errors "$name-reg-after"); "
    if grep -q '^BYE sip' "$work/$name-uas.msg" 2>/dev/null; then
        why+="the call ended before the reload was checked (raise its -d); "
    fi
    wait_pid "$uac" 30 || true
    wait_pid "$uas" 10 || true
    expect_calls "$name-uac" 1
    expect_calls "$name-uas" 1
    summary+="REGISTER for reloaded.test refused before, 200 after SIGHUP; "
}

# The RFC 4475 torture messages, one datagram each, then an OPTIONS (tests/e2e/sipcheck.py).
scenario_rfc4475_udp() {
    local name=rfc4475-udp rc=0
    if [[ -z "$in_netns" ]]; then
        skip="needs the private network namespace: the messages name other hosts and ports 5060/5061/5080"
        return 0
    fi
    sw_start "$name" "$work/$name.data" "$next_sw_port" || return 0
    timeout 180 python3 "$check" rfc4475 "$sw_port" crates/sip-message/tests/data/rfc4475 \
        >"$work/$name.table" 2>&1 || rc=$?
    sed 's/^/    /' "$work/$name.table"
    summary+="$(tail -n 1 "$work/$name.table"); "
    if [[ $rc -ne 0 ]]; then
        why+="$(grep -c 'FAIL' "$work/$name.table" || true) message(s) not handled as expected: $(grep 'FAIL' "$work/$name.table" | awk '{print $1 " (" $4 ", got " $5 ")"}' | tr '\n' ' '); "
    fi
}

# Scenarios in files of their own.
# shellcheck source=tests/e2e/b2bua-media.sh
source "$root/tests/e2e/b2bua-media.sh"
# shellcheck source=tests/e2e/sipp/b2bua-transfer.sh
source "$root/tests/e2e/sipp/b2bua-transfer.sh"

# ---------------------------------------------------------------------------------------------
all=(defaults-call udp-call tcp-t1-call tcp-tn-call register-call register-call-tcp
    register-third-party ipv6-udp-call reload lossy-udp cancel fork persistence rfc4475-udp
    b2bua-media b2bua-registered b2bua-media-nft b2bua-media-kfwd b2bua-transfer)
selected=("$@")
((${#selected[@]})) || selected=("${all[@]}")

passed=0
failed=0
skipped=0
for s in "${selected[@]}"; do
    fn="scenario_${s//-/_}"
    if ! declare -F "$fn" >/dev/null; then
        echo "run-sipp: unknown scenario $s (known: ${all[*]})" >&2
        failed=$((failed + 1))
        continue
    fi
    why=""
    summary=""
    skip=""
    sw_pid=""
    sw_log=""
    port next_sw_port
    start=$SECONDS
    echo "--- $s"
    "$fn"
    if [[ -n "$sw_pid" ]] && ! sw_alive; then
        why+="sipwarden (pid $sw_pid) is no longer running: $(tail -n 3 "$sw_log" | tr '\n' ' '); "
    fi
    sw_stop
    elapsed=$((SECONDS - start))
    if [[ -n "$skip" ]]; then
        skipped=$((skipped + 1))
        echo "SKIP $s: $skip"
    elif [[ -z "$why" ]]; then
        passed=$((passed + 1))
        echo "PASS $s (${elapsed}s): ${summary%; }"
    else
        failed=$((failed + 1))
        echo "FAIL $s (${elapsed}s): ${why%; }"
        [[ -n "$summary" ]] && echo "     seen: ${summary%; }"
        [[ -n "$sw_log" && -f "$sw_log" ]] && echo "     sipwarden log: $sw_log"
    fi
done

if ((skipped)); then
    echo "e2e: $passed passed, $failed failed, $skipped skipped"
else
    echo "e2e: $passed passed, $failed failed"
fi
[[ $failed -eq 0 ]]
