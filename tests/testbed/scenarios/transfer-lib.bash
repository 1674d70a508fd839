# shellcheck shell=bash source-path=SCRIPTDIR disable=SC2154 # name, phones: set by the sourcing scenario
# Shared part of the transfer scenarios (transfer-*.sh; sourced, not run: run.sh only runs
# *.sh). The same frame as itsp-calls.sh: requirements (exit 77 with "SKIPPED: ..."), the
# sipwarden binary, a testbed of its own (or the PREFIX given), the PBX, sipwarden with
# examples/testbed.toml (its ITSP trunk has refer = "local"; $XFER_CONFIG instead when set),
# background processes stopped by PID, captures in the sbc namespace, PASS/FAIL lines.
# XFER_KEEP=1 keeps the work directory (SIPp traces, captures) even when all passed.
# The sourcing script sets `name` (for messages and the work directory) and `phones` (the
# number of LAN phones it needs) first, then calls xfer_setup "$@".

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

failures=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

started=()
own=0
prefix=""
work=""

# shellcheck disable=SC2317 # called by the EXIT trap
xfer_cleanup() {
    local n
    for n in "${started[@]}"; do
        tb_stop "$prefix" "$n"
    done
    if [[ $own == 1 ]]; then
        "$here/../down.sh" "$prefix" >/dev/null 2>&1 || echo "warning: down.sh $prefix failed" >&2
    fi
    if [[ -n $work ]]; then
        if [[ $failures == 0 && -z ${XFER_KEEP:-} ]]; then
            rm -rf "$work"
        else
            echo "logs and captures kept in $work"
        fi
    fi
}

# xfer_setup [PREFIX]: everything up to a running sipwarden.
xfer_setup() {
    tb_require_root
    tb_scenario_tools "$repo"

    prefix="${1:-}"
    if [[ -z $prefix ]]; then
        prefix="$(tb_new_prefix)"
        own=1
    fi
    tb_check_prefix "$prefix"
    work="$(mktemp -d "/tmp/$name.XXXXXX")"
    trap xfer_cleanup EXIT

    if [[ $own == 1 ]]; then
        if ! TB_PHONES="$phones" "$here/../up.sh" "$prefix" >"$work/up.log" 2>&1; then
            fail "testbed $prefix did not come up ($work/up.log)"
            exit 1
        fi
    elif ! tb_exec "$prefix" sbc true 2>/dev/null; then
        echo "$name: no testbed '$prefix' (tests/testbed/up.sh $prefix)" >&2
        exit 2
    elif (($(tb_phones "$prefix") < phones)); then
        echo "$name: testbed '$prefix' has fewer than $phones phones (TB_PHONES=$phones up.sh)" >&2
        exit 2
    fi
    tb_pbx_start "$prefix" || {
        fail "the PBX (Kamailio) does not run"
        exit 1
    }
    rundir="$(tb_rundir "$prefix")"

    # XFER_CONFIG: another configuration, to see the checks fail (e.g. the trunk with
    # refer = "passthrough": the ITSP gets the REFER and refuses it).
    local config="${XFER_CONFIG:-$repo/examples/testbed.toml}"
    echo "== sipwarden with $config ($bin)"
    mkdir -p "$work/data"
    bg sbc sipwarden env SIPWARDEN_DATA_DIR="$work/data" "$bin" run --config "$config"
    if tb_wait_udp "$prefix" sbc "$TB_SBC_LAN_IP:5060" 10 && tb_wait_udp "$prefix" sbc "$TB_SBC_WAN_IP:5060" 5; then
        pass "sipwarden listens on $TB_SBC_LAN_IP:5060 and $TB_SBC_WAN_IP:5060"
    else
        fail "sipwarden did not start ($rundir/sipwarden.log):"
        tail -20 "$rundir/sipwarden.log"
        exit 1
    fi
}

# bg HOST NAME CMD...: a background process, stopped by the cleanup.
bg() {
    local host="$1" n="$2"
    shift 2
    tb_bg "$prefix" "$host" "$n" "$@" >/dev/null
    started+=("$n")
}
pid() { cat "$rundir/$1.pid" 2>/dev/null; }
# finished NAME SECONDS: waits for it to end.
finished() {
    local p i
    p="$(pid "$1")"
    [[ -n $p ]] || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$p" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}
# sipp_bg HOST NAME ARGS...: one bounded SIPp run in the background, its traces and
# statistics in $work/NAME.*; see sipp_ok.
sipp_bg() {
    local host="$1" n="$2"
    shift 2
    # shellcheck disable=SC2016 # expanded by that sh
    bg "$host" "$n" sh -c 'cd "$1" && shift && exec "$@"' sh "$work" sipp "$@" -nostdin \
        -timeout 45s -timeout_error -trace_msg -message_file "$work/$n.msg" \
        -trace_err -error_file "$work/$n.err" -trace_stat -stf "$work/$n.csv"
}
# sipp_ok NAME: SIPp finished with one successful call and no failed one (from its final
# statistics line: SuccessfulCall(C) and FailedCall(C) columns).
sipp_ok() {
    local f="$work/$1.csv"
    [[ -r $f ]] || return 1
    python3 - "$f" <<'PY'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]
head, last = rows[0], rows[-1]
ok = int(last[head.index("SuccessfulCall(C)")])
bad = int(last[head.index("FailedCall(C)")])
sys.exit(0 if ok >= 1 and bad == 0 else 1)
PY
}
# sipp_calls NAME: "successful/failed" calls of a SIPp run.
sipp_calls() {
    local f="$work/$1.csv"
    [[ -r $f ]] || {
        echo "no statistics"
        return
    }
    python3 - "$f" <<'PY'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]
head, last = rows[0], rows[-1]
print(f"{last[head.index('SuccessfulCall(C)')]} successful, {last[head.index('FailedCall(C)')]} failed")
PY
}
# wait_trace NAME REGEX SECONDS: until a line of NAME's message trace matches.
wait_trace() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qE "$2" "$work/$1.msg" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
register() { # PHONE USER CONTACT-PORT
    local ip
    ip="$(tb_ip "$1")"
    (cd "$work" && tb_exec "$prefix" "$1" sipp "$TB_PBX_IP:5060" -sf "$repo/tests/testbed/sipp/register.xml" \
        -i "$ip" -p 5070 -m 1 -key user "$2" -key domain "$TB_PBX_IP" \
        -key contact "sip:$2@$ip:$3" -key expires 600 -nostdin -timeout 10s -timeout_error \
        >"$work/reg-$1-$2.out" 2>&1)
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
    kill -INT "$(pid "$1")" 2>/dev/null
    finished "$1" 5 || tb_stop "$prefix" "$1"
}
count() { # CAPTURE FROM TO: UDP packets FROM -> TO off the SIP port (RTP)
    python3 "$here/wan-leak-check.py" --count "$2" "$3" --not-port 5060 "$work/$1.pcap"
}
# xfer_sed SRC DST KEY=VALUE...: a SIPp scenario with @KEY@ put in.
xfer_sed() {
    local src="$1" dst="$2" kv expr=()
    shift 2
    for kv in "$@"; do
        expr+=(-e "s#@${kv%%=*}@#${kv#*=}#g")
    done
    sed "${expr[@]}" "$here/$src" >"$work/$dst"
}

# check_wan CAPTURE: the ITSP side saw no REFER, NOTIFY or SUBSCRIBE, one INVITE (no
# re-INVITE: the relay ports did not change), and nothing of the LAN.
check_wan() {
    local c="$1" n
    if ! python3 "$here/transfer-sip-lines.py" "$work/$c.pcap" >"$work/$c.sip"; then
        fail "$c: cannot list its SIP messages"
        return
    fi
    n="$(grep -cE '  INVITE ' "$work/$c.sip")"
    echo "   $c: $(wc -l <"$work/$c.sip") SIP messages: $(sed 's/.*  //' "$work/$c.sip" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
    if grep -qE '  (REFER|NOTIFY|SUBSCRIBE) ' "$work/$c.sip"; then
        fail "$c: the transfer reached the WAN: $(grep -m2 -E '  (REFER|NOTIFY|SUBSCRIBE) ' "$work/$c.sip" | tr '\n' ' ')"
    elif ((n < 1)); then
        fail "$c: no INVITE at all in the WAN capture (the capture missed the call?)"
    else
        pass "$c: no REFER, NOTIFY or SUBSCRIBE on the WAN ($n INVITE, i.e. $((n - 1)) re-INVITE)"
    fi
    if python3 "$here/wan-leak-check.py" --net "$TB_LAN_NET" "$work/$c.pcap" >"$work/$c.leaks" 2>&1; then
        pass "$c: $(tail -1 "$work/$c.leaks")"
    else
        fail "$c: $(tail -1 "$work/$c.leaks") (all: $work/$c.leaks)"
        head -5 "$work/$c.leaks"
    fi
}

# sipfrags NAME: the sipfrag status lines of the NOTIFYs NAME received, comma-separated.
sipfrags() {
    tr -d '\r' <"$work/$1.msg" 2>/dev/null | awk '
        /^NOTIFY / { n = 1; body = 0; next }
        n && /^$/ { body = 1; next }
        n && body && /^SIP\/2\.0 [0-9]/ { print; n = 0 }
        /^-----/ { n = 0 }' | paste -sd, -
}

# check_transferor NAME: phone A's side of the transfer from its SIPp trace: its call
# successful, the 202, NOTIFY sipfrags ending with a 200 and no failure status among them,
# and sipwarden's BYE after the NOTIFY with 200 (its NOTIFYs are answered by SIPp's -aa).
check_transferor() {
    local frags order
    frags="$(sipfrags "$1")"
    order="$(tr -d '\r' <"$work/$1.msg" 2>/dev/null | awk '
        /^NOTIFY / { n = 1; body = 0; next }
        n && /^$/ { body = 1; next }
        n && body && /^SIP\/2\.0 [0-9]/ { if ($2 == 200 && !done) done = NR; n = 0 }
        /^-----/ { n = 0 }
        /^BYE / && !bye { bye = NR }
        END { print (done && bye > done) ? "ok" : "bad" }')"
    if sipp_ok "$1" && grep -q '^SIP/2.0 202' "$work/$1.msg" && [[ $frags =~ SIP/2\.0\ 200[^,]*$ ]] &&
        ! [[ $frags =~ SIP/2\.0\ [3-6] ]] && [[ $order == ok ]]; then
        pass "phone A: 202, NOTIFY sipfrags [$frags], then (after the 200 one) BYE from sipwarden"
    else
        fail "phone A's transfer did not go as expected: $(sipp_calls "$1"), sipfrags [$frags], BYE after the final NOTIFY: $order ($work/$1.msg, $work/$1.err)"
    fi
}

xfer_finish() {
    if [[ $failures == 0 ]]; then
        echo "$name: all passed"
        exit 0
    fi
    echo "$name: $failures failed"
    exit 1
}
