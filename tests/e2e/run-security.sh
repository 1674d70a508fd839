#!/usr/bin/env bash
# End-to-end security scenarios against the release binary: each starts its own `sipwarden run`
# (temporary data directory, UDP on 127.0.0.1 at a free port) and attacks it from loopback.
#
#   sipvicious  20 users; svwar (REGISTER and INVITE) must find none of them, svcrack must find
#               no password, its source must be banned after policy.bruteforce.max_failures
#               failures (log line while running, `sipwarden ban list` after stopping) while
#               another source is still answered.
#   flood       SIPp floods OPTIONS at 10,000/s from 127.0.0.2 (zone wan, flood.rate = 100)
#               while legitimate calls run from 127.0.0.1: at least 99% must complete, and
#               sipwarden's RSS must stay bounded (VmRSS before and after).
#   protos      the 4527 PROTOS c07-sip cases (../shared/testdata/protos-c07-sip, or
#               $SIPWARDEN_PROTOS_DIR), each followed by its teardown and a valid OPTIONS that
#               must be answered; sipwarden must still run.
#   call-limit  policy.zone lan limits.max_calls = 2: three simultaneous SIPp calls give two
#               successes and one 503 (the limit), and two more calls after those ended both
#               succeed (a BYE frees the slot).
#   radius      auth.backend = "radius" against FreeRADIUS (tests/e2e/freeradius), with the
#               draft-sterman and the RFC 5090 digest attributes, Message-Authenticator required
#               in the answers: alice and bob register (200), a wrong password gets 401, an
#               authenticated INVITE passes, and bob calls alice (a SIPp UAS where she
#               registered), his INVITE challenged and let through on his RADIUS credentials.
#
# Usage: tests/e2e/run-security.sh [PATH-TO-SIPWARDEN-BINARY] [SCENARIO...]
#   default binary: ${CARGO_TARGET_DIR:-target}/release/sipwarden
# Needs: sipp, sipvicious (svwar, svcrack), freeradius, python3, timeout; unshare + ip for a private
# network namespace (SIPWARDEN_E2E_NETNS=off runs on the machine's loopback instead).
# Every tool runs under `timeout`; sipwarden is stopped by PID. Each scenario takes under a
# minute. Prints PASS/FAIL/SKIP per scenario and "security: N passed, M failed".
set -euo pipefail

script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bin="${1:-${CARGO_TARGET_DIR:-target}/release/sipwarden}"
shift || true
if [[ ! -x "$bin" ]]; then
    echo "run-security: binary not found at $bin (run: cargo build --release -p sipwarden)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

if [[ -z "${SIPWARDEN_E2E_IN_NETNS:-}" && "${SIPWARDEN_E2E_NETNS:-auto}" != off ]]; then
    ns=(unshare --net)
    [[ $(id -u) -eq 0 ]] || ns=(unshare --user --map-root-user --net)
    if command -v unshare >/dev/null && command -v ip >/dev/null &&
        "${ns[@]}" ip link set lo up 2>/dev/null; then
        exec "${ns[@]}" env SIPWARDEN_E2E_IN_NETNS=1 \
            bash -c 'ip link set lo up && exec "$@"' run-security "$script" "$bin" "$@"
    fi
    echo "run-security: no private network namespace; running on the machine's loopback"
fi

helper="$root/tests/e2e/security.py"
check="$root/tests/e2e/sipcheck.py"
sippdir="$root/tests/e2e/sipp"
protos="${SIPWARDEN_PROTOS_DIR:-$root/../shared/testdata/protos-c07-sip}/cases"
[[ -d "$protos" ]] || protos="$root/../../shared/testdata/protos-c07-sip/cases"
work="$(mktemp -d "${TMPDIR:-/tmp}/sipwarden-sec.XXXXXX")"

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ "${SIPWARDEN_E2E_KEEP:-}" == 1 || "${failed:-0}" -gt 0 ]]; then
        echo "run-security: logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

used=()
port() { # port VAR
    local _p
    _p="$(timeout 10 python3 "$check" freeport --avoid "${used[@]}" 0)"
    used+=("$_p")
    printf -v "$1" '%s' "$_p"
}

sw_pid=""
# sw_write NAME PORT EXTRA: the configuration of scenario NAME (zones: lan = 127.0.0.1,
# wan = 127.0.0.2 to 127.0.0.7), in $work/NAME.toml, data in $work/NAME.data.
sw_write() {
    local name="$1" p="$2" extra="$3"
    mkdir -p "$work/$name.data"
    cat >"$work/$name.toml" <<EOF
[general]
data_dir = "$work/$name.data"
log_level = "info"
node_name = "sec-$name"

[[listen]]
transport = "udp"
address = "127.0.0.1:$p"

[registrar]
domains = ["sipwarden.test"]

[auth]
realm = "sipwarden.test"
algorithms = ["MD5"]

[[zone]]
name = "lan"
networks = ["127.0.0.1/32"]

[[zone]]
name = "wan"
networks = ["127.0.0.2/31", "127.0.0.4/30"]

$extra
EOF
}

sw_start() { # sw_start NAME PORT
    env -u SIPWARDEN_DATA_DIR "$bin" run --config "$work/$1.toml" >>"$work/$1.log" 2>&1 &
    sw_pid=$!
    pids+=("$sw_pid")
    timeout 15 python3 "$helper" options 127.0.0.3 "$2" --wait 10 >/dev/null
}

sw_stop() {
    [[ -n "$sw_pid" ]] || return 0
    kill -TERM "$sw_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$sw_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$sw_pid" 2>/dev/null || true
    wait "$sw_pid" 2>/dev/null || true
    sw_pid=""
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------------------------------------
scenario_sipvicious() {
    local name=sipvicious p i
    local svwar svcrack
    svwar="$(command -v svwar || command -v sipvicious_svwar || true)"
    svcrack="$(command -v svcrack || command -v sipvicious_svcrack || true)"
    if [[ -z "$svwar" || -z "$svcrack" ]]; then
        skip="sipvicious not installed (apt-get install sipvicious)"
        return 0
    fi
    port p
    sw_write "$name" "$p" '
[[policy.zone]]
name = "lan"
auth.require = [{ methods = ["REGISTER", "INVITE", "SUBSCRIBE", "MESSAGE"] }]

[[policy.zone]]
name = "wan"
auth.require = [{ methods = ["REGISTER", "INVITE", "SUBSCRIBE", "MESSAGE"] }]

[policy.bruteforce]
max_failures = 5'
    for i in $(seq 201 220); do
        echo "Pw-$i-$RANDOM$RANDOM" |
            env -u SIPWARDEN_DATA_DIR "$bin" user add "$i" -c "$work/$name.toml" --password-stdin \
                >/dev/null
    done
    sw_start "$name" "$p" || { why+="sipwarden did not start; "; return 0; }
    # sipvicious sends from 127.0.0.1 here (zone lan); probes come from 127.0.0.3.
    timeout 60 "$svwar" -e195-225 -p "$p" 127.0.0.1 >"$work/svwar.out" 2>&1 || true
    timeout 60 "$svwar" --force -e195-225 -p "$p" 127.0.0.1 >"$work/svwar-force.out" 2>&1 || true
    timeout 60 "$svwar" --force -m INVITE -e195-225 -p "$p" 127.0.0.1 \
        >"$work/svwar-invite.out" 2>&1 || true
    for f in svwar svwar-force svwar-invite; do
        if grep -Eq '^\| *2[0-9][0-9] ' "$work/$f.out"; then
            why+="$f found extensions: $(grep -E '^\| *2[0-9][0-9] ' "$work/$f.out" | head -3 | tr '\n' ' '); "
        fi
    done
    timeout 60 "$svcrack" -u 201 -r 1-500 -p "$p" --maximumtime=5 127.0.0.1 \
        >"$work/svcrack.out" 2>&1 || true
    if grep -qi "password" "$work/svcrack.out" && grep -Eq '^\| *201 ' "$work/svcrack.out"; then
        why+="svcrack found a password: $(grep -E '^\| *201 ' "$work/svcrack.out"); "
    fi
    grep -q "127.0.0.1 banned" "$work/$name.log" || why+="no ban logged for 127.0.0.1; "
    timeout 10 python3 "$helper" options 127.0.0.1 "$p" >/dev/null &&
        why+="the banned source is still answered; "
    timeout 10 python3 "$helper" options 127.0.0.3 "$p" >/dev/null ||
        why+="another source is not answered; "
    sw_stop
    env -u SIPWARDEN_DATA_DIR "$bin" ban list -c "$work/$name.toml" >"$work/banlist.out" 2>&1 || true
    grep -q "^127.0.0.1 .*banned" "$work/banlist.out" ||
        why+="ban list after stop: $(tr '\n' ' ' <"$work/banlist.out"); "
    summary+="svwar: $(tail -n 1 "$work/svwar-force.out"); svcrack: $(tail -n 1 "$work/svcrack.out"); "
    summary+="ban list: $(head -n 1 "$work/banlist.out" | tr -s ' '); "
}

# ---------------------------------------------------------------------------------------------
scenario_flood() {
    local name=flood p uas_port uac_port calls=300 rate=30
    port p
    port uas_port
    port uac_port
    sw_write "$name" "$p" '
[[policy.zone]]
name = "wan"
flood.rate = 100'
    sw_start "$name" "$p" || { why+="sipwarden did not start; "; return 0; }
    python3 "$helper" flood-scenario "$work/flood.xml"
    local rss0 rss1 t0 t1
    rss0="$(rss_kb "$sw_pid")"
    timeout 60 sipp -nostdin -i 127.0.0.1 -sf "$sippdir/uas.xml" -p "$uas_port" -m "$calls" \
        -d 0 -trace_stat -stf "$work/uas.csv" >"$work/uas.out" 2>&1 &
    local uas=$!
    pids+=("$uas")
    # The flood: 10,000 OPTIONS/s from one address for 12 s, no answer awaited.
    t0=$(date +%s.%N)
    timeout 20 sipp -nostdin -i 127.0.0.2 -sf "$work/flood.xml" "127.0.0.1:$p" \
        -r 10000 -rp 1000 -m 120000 -l 20000 -trace_stat -stf "$work/flood.csv" -fd 1 \
        >"$work/flood.out" 2>&1 &
    local flood=$!
    pids+=("$flood")
    sleep 1
    timeout 60 sipp -nostdin -i 127.0.0.1 -sf "$sippdir/uac.xml" "127.0.0.1:$p" -p "$uac_port" \
        -key ruri "sip:bob@127.0.0.1:$uas_port" -m "$calls" -r "$rate" -d 200 \
        -recv_timeout 10000 -trace_stat -stf "$work/uac.csv" -fd 1 \
        >"$work/uac.out" 2>&1 || true
    wait "$flood" 2>/dev/null || true
    t1=$(date +%s.%N)
    rss1="$(rss_kb "$sw_pid")"
    wait "$uas" 2>/dev/null || true
    local ok ko sent
    read -r ok ko < <(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { l = $0 }
        END { split(l, v, ";"); print v[c["SuccessfulCall(C)"]] + 0, v[c["FailedCall(C)"]] + 0 }' \
        "$work/uac.csv" 2>/dev/null || echo "0 0")
    sent="$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { l = $0 }
        END { split(l, v, ";"); print v[c["TotalCallCreated"]] + 0 }' "$work/flood.csv" 2>/dev/null || echo 0)"
    local secs pct
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a - 0 }')"
    pct="$(awk -v o="$ok" -v n="$calls" 'BEGIN { printf "%.1f", 100 * o / n }')"
    summary+="legit calls $ok/$calls ok ($pct%), $ko failed; flood $sent OPTIONS from 127.0.0.2 "
    summary+="(~$(awk -v s="$sent" 'BEGIN { printf "%d", s / 12 }')/s over the 12 s run; wall $secs s); "
    summary+="VmRSS ${rss0} kB -> ${rss1} kB; "
    awk -v o="$ok" -v n="$calls" 'BEGIN { exit !(o * 100 >= n * 99) }' ||
        why+="only $ok of $calls legit calls completed; "
    [[ "$sent" -ge 100000 ]] || why+="the flood reached only $sent requests (want 100000+ in 12 s); "
    ((rss1 < rss0 + 65536)) || why+="RSS grew from $rss0 to $rss1 kB; "
    kill -0 "$sw_pid" 2>/dev/null || why+="sipwarden died; "
}

# ---------------------------------------------------------------------------------------------
scenario_protos() {
    local name=protos p
    if [[ ! -d "$protos" ]]; then
        skip="PROTOS c07-sip not found at $protos (set SIPWARDEN_PROTOS_DIR)"
        return 0
    fi
    port p
    sw_write "$name" "$p" ""
    sw_start "$name" "$p" || { why+="sipwarden did not start; "; return 0; }
    local out
    out="$(timeout 150 python3 "$helper" protos "$protos" "$p" 127.0.0.3 --batch 1 2>&1)" ||
        why+="$(echo "$out" | tail -n 3 | tr '\n' ' '); "
    summary+="$(echo "$out" | tail -n 1); "
    kill -0 "$sw_pid" 2>/dev/null || why+="sipwarden died: $(tail -n 3 "$work/$name.log" | tr '\n' ' '); "
}

# ---------------------------------------------------------------------------------------------
scenario_call_limit() {
    local name=call-limit p uas_port uac_port
    port p
    port uas_port
    port uac_port
    sw_write "$name" "$p" '
[[policy.zone]]
name = "lan"
limits.max_calls = 2'
    sw_start "$name" "$p" || { why+="sipwarden did not start; "; return 0; }
    timeout 60 sipp -nostdin -i 127.0.0.1 -sf "$sippdir/uas.xml" -p "$uas_port" -m 4 \
        -d 0 >"$work/limit-uas.out" 2>&1 &
    local uas=$!
    pids+=("$uas")
    sleep 0.5
    # Three calls within 0.1 s, each held 3 s: all three are in progress at once.
    (cd "$work" && timeout 30 sipp -nostdin -i 127.0.0.1 -sf "$sippdir/uac.xml" "127.0.0.1:$p" \
        -p "$uac_port" -key ruri "sip:bob@127.0.0.1:$uas_port" -m 3 -l 3 -r 30 -d 3000 \
        -recv_timeout 10000 -trace_stat -stf "$work/limit1.csv" -trace_err \
        -error_file "$work/limit1-errors.log" >"$work/limit1.out" 2>&1) || true
    # The two calls ended with BYE: two more fit again.
    (cd "$work" && timeout 30 sipp -nostdin -i 127.0.0.1 -sf "$sippdir/uac.xml" "127.0.0.1:$p" \
        -p "$uac_port" -key ruri "sip:bob@127.0.0.1:$uas_port" -m 2 -l 2 -r 30 -d 1000 \
        -recv_timeout 10000 -trace_stat -stf "$work/limit2.csv" >"$work/limit2.out" 2>&1) || true
    wait "$uas" 2>/dev/null || true
    local ok1 ko1 ok2 ko2 refused
    read -r ok1 ko1 < <(sipp_counts "$work/limit1.csv")
    read -r ok2 ko2 < <(sipp_counts "$work/limit2.csv")
    refused="$(grep -c 'SIP/2.0 503' "$work/limit1-errors.log" 2>/dev/null || true)"
    summary+="3 simultaneous calls with max_calls = 2: $ok1 completed, $ko1 failed "
    summary+="(${refused:-0} answered 503); then 2 calls: $ok2 completed, $ko2 failed; "
    [[ "$ok1" == 2 && "$ko1" == 1 ]] || why+="first round: $ok1 ok, $ko1 failed (want 2 and 1); "
    [[ "${refused:-0}" -ge 1 ]] || why+="the refused call did not get 503; "
    [[ "$ok2" == 2 && "$ko2" == 0 ]] || why+="second round: $ok2 ok, $ko2 failed (want 2 and 0); "
    kill -0 "$sw_pid" 2>/dev/null || why+="sipwarden died; "
}

# sipp_counts CSV: "successful failed" from the last line of a SIPp -trace_stat file.
sipp_counts() {
    awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { l = $0 }
        END { split(l, v, ";"); print v[c["SuccessfulCall(C)"]] + 0, v[c["FailedCall(C)"]] + 0 }' \
        "$1" 2>/dev/null || echo "0 0"
}

# ---------------------------------------------------------------------------------------------
scenario_radius() {
    local name=radius p rp fr
    fr="$(command -v freeradius || command -v radiusd || true)"
    [[ -n "$fr" ]] || fr=/usr/sbin/freeradius
    if [[ ! -x "$fr" ]]; then
        skip="freeradius not installed (apt-get install freeradius)"
        return 0
    fi
    port p
    rp=18120
    local rdir="$work/freeradius"
    cp -r "$root/tests/e2e/freeradius" "$rdir"
    mkdir -p "$rdir/log" "$rdir/run"
    sed -i "s#@DIR@#$rdir#g; s#@PORT@#$rp#g" "$rdir/radiusd.conf" "$rdir/sites-enabled/sipwarden"
    timeout 90 "$fr" -X -d "$rdir" >"$work/freeradius.log" 2>&1 &
    local fr_pid=$!
    pids+=("$fr_pid")
    local i
    for ((i = 0; i < 100; i++)); do
        grep -qs "Ready to process requests" "$work/freeradius.log" && break
        sleep 0.2
    done
    grep -q "Ready to process requests" "$work/freeradius.log" ||
        { why+="FreeRADIUS did not start: $(tail -n 3 "$work/freeradius.log" | tr '\n' ' '); "; return 0; }
    echo "sipwarden-test-secret" >"$work/radius.secret"
    # Both digest dialects, each with Message-Authenticator required in FreeRADIUS's answers
    # (the BlastRADIUS defence, sipwarden's default): tests/e2e/freeradius adds it to every
    # answer, which FreeRADIUS before 3.2.5 does not do by itself.
    local dialect
    for dialect in draft-sterman rfc5090; do
        sw_write "$name" "$p" "
[[policy.zone]]
name = \"lan\"
auth.require = [{ methods = [\"REGISTER\", \"INVITE\"] }]

[[policy.zone]]
name = \"wan\"
auth.require = [{ methods = [\"REGISTER\", \"INVITE\"] }]"
        # [auth] is in the base file: add the backend there.
        sed -i "s#^algorithms = \[\"MD5\"\]#algorithms = [\"MD5\"]\nbackend = \"radius\"\n[auth.radius]\nservers = [\"127.0.0.1:$rp\"]\nsecret_file = \"$work/radius.secret\"\ndialect = \"$dialect\"\ntimeout_ms = 500\nrequire_message_authenticator = true#" \
            "$work/$name.toml"
        sw_start "$name" "$p" || { why+="sipwarden ($dialect) did not start: $(tail -n 3 "$work/$name.log" | tr '\n' ' '); "; return 0; }
        local a b w c
        a="$(timeout 20 python3 "$helper" digest 127.0.0.3 "$p" REGISTER alice "correct horse" || true)"
        b="$(timeout 20 python3 "$helper" digest 127.0.0.4 "$p" REGISTER bob "battery staple" || true)"
        w="$(timeout 20 python3 "$helper" digest 127.0.0.5 "$p" REGISTER alice "wrong horse" || true)"
        c="$(timeout 20 python3 "$helper" digest 127.0.0.3 "$p" INVITE alice "correct horse" || true)"
        summary+="$dialect: REGISTER alice: $a, bob: $b, alice with a wrong password: $w, INVITE by alice to an unknown user: $c; "
        [[ "$a" == 200 ]] || why+="$dialect: alice not registered ($a); "
        [[ "$b" == 200 ]] || why+="$dialect: bob not registered ($b); "
        [[ "$w" == 401 ]] || why+="$dialect: wrong password not refused with 401 ($w); "
        [[ "$c" == 404 || "$c" == 480 ]] || why+="$dialect: authenticated INVITE did not pass authentication ($c); "
        # A whole call between two RADIUS users: alice registers from the port where her
        # phone (a SIPp UAS) then answers; bob's INVITE is challenged and sent again with his
        # credentials, which sipwarden checks through FreeRADIUS.
        local uas_port call_ok call_ko uas
        port uas_port
        a="$(timeout 20 python3 "$helper" digest 127.0.0.3 "$p" REGISTER alice "correct horse" "$uas_port" || true)"
        [[ "$a" == 200 ]] || why+="$dialect: alice not registered from her phone's port ($a); "
        timeout 30 sipp -nostdin -i 127.0.0.3 -sf "$sippdir/uas.xml" -p "$uas_port" -m 1 \
            >"$work/radius-uas-$dialect.out" 2>&1 &
        uas=$!
        pids+=("$uas")
        sleep 0.5
        (cd "$work" && timeout 30 sipp -nostdin -i 127.0.0.4 -sf "$sippdir/uac-auth.xml" "127.0.0.1:$p" \
            -key ruri "sip:alice@sipwarden.test" -key caller bob \
            -au bob -ap "battery staple" -auth_uri alice@sipwarden.test \
            -m 1 -d 500 -recv_timeout 10000 -trace_stat -stf "$work/radius-call-$dialect.csv" \
            -trace_err -error_file "$work/radius-call-$dialect-errors.log" -trace_msg \
            >"$work/radius-call-$dialect.out" 2>&1) || true
        wait "$uas" 2>/dev/null || true
        read -r call_ok call_ko < <(sipp_counts "$work/radius-call-$dialect.csv")
        summary+="$dialect: call from bob to alice, both RADIUS users: $call_ok completed, $call_ko failed; "
        [[ "$call_ok" == 1 && "$call_ko" == 0 ]] || why+="$dialect: the call between RADIUS users failed ($call_ok ok, $call_ko failed); "
        sw_stop
    done
    kill -TERM "$fr_pid" 2>/dev/null || true
}

all=(sipvicious flood protos call-limit radius)
[[ $# -gt 0 ]] || set -- "${all[@]}"
passed=0
failed=0
skipped=0
for s in "$@"; do
    why=""
    summary=""
    skip=""
    sw_pid=""
    start=$SECONDS
    echo "--- $s"
    "scenario_${s//-/_}"
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
        echo "     seen: ${summary%; }"
    fi
done
echo "security: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
