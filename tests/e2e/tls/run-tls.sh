#!/usr/bin/env bash
# End-to-end TLS tests of the release binary. Certificates are made here with openssl in a
# temporary directory (nothing is committed): a CA, a server certificate for sbc.test, a second
# one for the swap, a client CA with a client certificate.
#
# sipwarden runs with UDP+TCP (for the readiness probe and the callee), a TLS listener in zone
# `lan` and a second TLS listener in zone `corp` that requires a client certificate. Checks:
#   versions      openssl s_client -tls1 and -tls1_1 are refused; -tls1_2 and -tls1_3 accepted
#   mtls          the mutual-TLS listener refuses a client without a certificate (TLS 1.2 and
#                 1.3) and one from another CA, accepts one from the client CA
#   call          SIPp calls over TLS: UAC (SIPp over TCP, wrapped in TLS by socat, which
#                 verifies sbc.test against the CA) -> sipwarden TLS -> UAS (SIPp over TCP)
#   tls-to-tls    the same, with the UAS behind a TLS server (socat, certificate for
#                 127.0.0.1 from the CA): the Request-URI has ;transport=tls, so sipwarden
#                 connects over TLS and verifies the UAS's certificate against tls.ca_bundle;
#                 a UAS whose certificate is from another CA gets no call (the caller gets
#                 500: the branch's transport error is a 503, which a proxy turns into 500)
#   swap          a call that is running while the certificate files are replaced and
#                 sipwarden gets SIGHUP: the call completes on its TLS connection, and a new
#                 connection is served the new certificate (SHA-256 fingerprints compared)
#   sipp-mtls     SIPp calls (INVITE/ACK/BYE) on the mutual-TLS listener, socat presenting
#                 the client certificate; without one, or with one of another CA, the
#                 handshake is refused (socat reads the alert) and no call reaches the UAS
#   require-tls   zone `secure` (tls.zone.secure.require_tls): plain TCP/UDP from it is
#                 dropped, plain TCP/UDP to it is refused, TLS to it works, and a loopback
#                 sniffer sees no plain-text SIP going into it (tests/e2e/tls/require-tls.sh)
#   phones        baresip and linphone over mutual TLS with SRTP media through the relay of
#                 a second sipwarden, a certificate swap during baresip's call, phones
#                 without a certificate or of another CA refused (tests/e2e/tls/phones.sh)
#   mixed         a zone with UDP and TLS listeners: baresip over TLS calls a SIPp UDP UAS
#                 in another zone and a SIPp UDP UAC calls baresip over TLS; each leg's Via
#                 and Contact name the listener of its own transport (tests/e2e/tls/mixed.sh)
# SIPWARDEN_E2E_TLS_ONLY=base,mtls-sipp,require-tls,phones,mixed runs only the groups named.
# SIPp 3.6.1 as packaged (sip-tester) is built without TLS (`sipp -h` lists no `l1`
# transport), hence socat between SIPp and sipwarden.
#
# Usage: tests/e2e/tls/run-tls.sh [PATH-TO-SIPWARDEN-BINARY]
#   default binary: ${CARGO_TARGET_DIR:-target}/release/sipwarden
# Needs: sipp (sip-tester), openssl, socat, python3, timeout, baresip, linphonec (linphone-cli;
# installed here with apt-get when missing and we are root, before entering the namespace). Prints PASS/FAIL per check and
# ends with "e2e-tls: N passed, M failed"; exits non-zero when anything failed.
# Network: 127.0.0.1 only, in a network namespace of its own when unshare allows it. Every
# process is time-bounded and stopped by PID.
set -euo pipefail

script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"

bin="${1:-${CARGO_TARGET_DIR:-target}/release/sipwarden}"
if [[ ! -x "$bin" ]]; then
    echo "run-tls: binary not found at $bin (run: cargo build --release -p sipwarden)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for tool in sipp openssl socat python3 timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run-tls: $tool not found (Debian: apt-get install sip-tester openssl socat python3)" >&2
        exit 2
    fi
done

# linphone is not in every developer's set of packages; the namespace below has no network.
if ! command -v linphonec >/dev/null 2>&1 && [[ -z "${SIPWARDEN_E2E_IN_NETNS:-}" && $(id -u) -eq 0 ]] &&
    command -v apt-get >/dev/null 2>&1; then
    echo "run-tls: installing linphone-cli (linphonec)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y --no-install-recommends linphone-cli >/dev/null 2>&1 ||
        { timeout 300 apt-get update >/dev/null 2>&1 &&
            timeout 300 apt-get install -y --no-install-recommends linphone-cli >/dev/null 2>&1; } ||
        echo "run-tls: could not install linphone-cli; the linphone checks will fail"
fi

if [[ -z "${SIPWARDEN_E2E_IN_NETNS:-}" && "${SIPWARDEN_E2E_NETNS:-auto}" != off ]]; then
    ns=(unshare --net)
    [[ $(id -u) -eq 0 ]] || ns=(unshare --user --map-root-user --net)
    if command -v unshare >/dev/null && command -v ip >/dev/null &&
        "${ns[@]}" ip link set lo up 2>/dev/null; then
        exec "${ns[@]}" env SIPWARDEN_E2E_IN_NETNS=1 \
            bash -c 'ip link set lo up && exec "$@"' run-tls "$script" "$bin"
    fi
    echo "run-tls: cannot create a network namespace; running on the machine's loopback"
fi

here="$root/tests/e2e/tls"
check="$root/tests/e2e/sipcheck.py"
sippdir="$root/tests/e2e/sipp"
work="$(mktemp -d "${TMPDIR:-/tmp}/sipwarden-e2e-tls.XXXXXX")"
pids=()
passed=0
failed=0
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ "${SIPWARDEN_E2E_KEEP:-}" == 1 || "$failed" -gt 0 ]]; then
        echo "run-tls: logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# only GROUP: whether this group of checks runs (SIPWARDEN_E2E_TLS_ONLY: a comma-separated list
# of base, mtls-sipp, require-tls, phones; default all). For working on one of them.
only() { [[ -z "${SIPWARDEN_E2E_TLS_ONLY:-}" || ",$SIPWARDEN_E2E_TLS_ONLY," == *",$1,"* ]]; }

result() { # result NAME WHY
    if [[ -z "$2" ]]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1: $2"
        failed=$((failed + 1))
    fi
}

used_ports=()
port() {
    local _p
    _p="$(timeout 10 python3 "$check" freeport --avoid "${used_ports[@]}" 0)"
    used_ports+=("$_p")
    printf -v "$1" '%s' "$_p"
}

# ---------------------------------------------------------------------------------------------
# Certificates (EC P-256; the CA signs).
pki="$work/pki"
mkdir -p "$pki"
ossl() { timeout 30 openssl "$@" 2>>"$work/openssl.log"; }
mkca() { # mkca NAME CN
    ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
mkleaf() { # mkleaf NAME CA CN SAN
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
        -keyout "$pki/$1.key" -out "$pki/$1.csr"
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$4" >"$pki/$1.ext"
    ossl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.pem" -CAkey "$pki/$2.key" -CAcreateserial \
        -days 7 -extfile "$pki/$1.ext" -out "$pki/$1.pem"
}
mkca ca "sipwarden e2e CA"
mkca clientca "sipwarden e2e client CA"
mkca otherca "some other CA"
mkleaf srv1 ca "sbc-first" "DNS:sbc.test,IP:127.0.0.1"
mkleaf srv2 ca "sbc-second" "DNS:sbc.test,IP:127.0.0.1"
mkleaf client clientca "pbx.corp.test" "DNS:pbx.corp.test,URI:sip:pbx.corp.test"
mkleaf stranger otherca "stranger" "DNS:stranger.test"
mkleaf uas ca "uas" "IP:127.0.0.1"
mkleaf fakeuas otherca "fake uas" "IP:127.0.0.1"
mkleaf uas3 ca "uas in zone secure" "IP:127.0.3.3"
cp "$pki/srv1.pem" "$pki/served.pem"
cp "$pki/srv1.key" "$pki/served.key"
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }

# ---------------------------------------------------------------------------------------------
# sipwarden
port sw_port
port tls_port
port mtls_port
cat >"$work/sw.toml" <<EOF
[general]
data_dir = "$work/data"
log_level = "debug"

[[listen]]
transport = "udp"
address = "127.0.0.1:$sw_port"

[[listen]]
transport = "tcp"
address = "127.0.0.1:$sw_port"

[[listen]]
transport = "tls"
address = "127.0.0.1:$tls_port"

[[listen]]
zone = "corp"
transport = "tls"
address = "127.0.0.1:$mtls_port"

[proxy]
invite_timeout_s = 30

# Signalling only: both zones listen on 127.0.0.1, so they cannot both take the default media
# range; calls here stay proxied.
[media]
enabled = false

[[zone]]
name = "lan"
networks = ["127.0.0.0/24"]

[[zone]]
name = "corp"
networks = ["10.255.255.0/24"]

# Only TLS with these addresses (tests/e2e/tls/require-tls.sh).
[[zone]]
name = "secure"
networks = ["127.0.3.0/24"]

[tls]
certificate = "$pki/served.pem"
private_key = "$pki/served.key"
ca_bundle = "$pki/ca.pem"
reload_check_s = 0

[tls.zone.corp]
require_client_cert = true
client_ca = "$pki/clientca.pem"

[tls.zone.secure]
require_tls = true
EOF
timeout 20 "$bin" check --config "$work/sw.toml" >"$work/check.out" 2>&1 || true
env -u SIPWARDEN_DATA_DIR timeout 300 "$bin" run --config "$work/sw.toml" >"$work/sipwarden.log" 2>&1 &
sw_pid=$!
pids+=("$sw_pid")
if ! timeout 15 python3 "$check" options "$sw_port" --wait 10; then
    echo "run-tls: sipwarden did not start; log:" >&2
    tail -n 20 "$work/sipwarden.log" >&2
    failed=1
    exit 1
fi

if only base; then
why=""
grep -q "notAfter" "$work/check.out" || why+="check printed no notAfter: $(head -c 300 "$work/check.out"); "
result check-certificates "$why"
fi

# s_client NAME ARGS...: one handshake (stdin closed after 1 s), output in $work/NAME.s_client.
s_client() {
    local name="$1"
    shift
    (sleep 1) | timeout 10 openssl s_client -connect "127.0.0.1:$tls_port" -servername sbc.test \
        -CAfile "$pki/ca.pem" "$@" >"$work/$name.s_client" 2>&1
}

# ---------------------------------------------------------------------------------------------
if only base; then
why=""
for v in tls1 tls1_1; do
    # SECLEVEL=0 lets this client offer the old versions, so the refusal is the server's.
    if s_client "$v" "-$v" -cipher 'DEFAULT:@SECLEVEL=0'; then
        why+="-$v was accepted; "
    fi
done
for v in tls1_2 tls1_3; do
    if ! s_client "$v" "-$v" || ! grep -q "Verify return code: 0 (ok)" "$work/$v.s_client"; then
        why+="-$v was refused: $(grep -m2 -i 'error\|alert' "$work/$v.s_client" | tr '\n' ' '); "
    fi
done
grep -q "Protocol *: TLSv1.3" "$work/tls1_3.s_client" || why+="no TLSv1.3 negotiated; "
result versions "$why"
fi

# ---------------------------------------------------------------------------------------------
# mtls_try NAME ARGS...: true when the mutual-TLS listener accepted the client (no alert, a
# session established).
mtls_try() {
    local name="$1"
    shift
    (sleep 1) | timeout 10 openssl s_client -connect "127.0.0.1:$mtls_port" -servername sbc.test \
        -CAfile "$pki/ca.pem" "$@" >"$work/$name.s_client" 2>&1 || return 1
    ! grep -qi "alert\|error" "$work/$name.s_client"
}
if only base; then
why=""
mtls_try mtls-none12 -tls1_2 && why+="TLS 1.2 client without a certificate accepted; "
mtls_try mtls-none13 -tls1_3 && why+="TLS 1.3 client without a certificate accepted; "
mtls_try mtls-other -cert "$pki/stranger.pem" -key "$pki/stranger.key" &&
    why+="certificate of another CA accepted; "
mtls_try mtls-good -cert "$pki/client.pem" -key "$pki/client.key" ||
    why+="valid client certificate refused: $(grep -m2 -i 'alert\|error' "$work/mtls-good.s_client" | tr '\n' ' '); "
sleep 0.2
grep -q "TLS handshake from 127.0.0.1" "$work/sipwarden.log" || why+="no handshake warning logged; "
result mtls "$why"
fi

# ---------------------------------------------------------------------------------------------
# A TLS bridge for a SIPp phone: socat listens on TCP and connects to sipwarden over TLS,
# verifying sbc.test against the CA.
# bridge_to (default: the TLS listener), bridge_opts (more socat OPENSSL options: a client
# certificate) and bridge_log may be set for one call.
bridge() { # bridge PORT -> sets bridge_pid
    # shellcheck disable=SC2086 # bridge_debug: socat's -d options, word-split on purpose
    timeout 120 socat ${bridge_debug:-} "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" \
        "OPENSSL:127.0.0.1:${bridge_to:-$tls_port},cafile=$pki/ca.pem,commonname=sbc.test,verify=1${bridge_opts:-}" \
        2>>"${bridge_log:-$work/socat.log}" &
    bridge_pid=$!
    pids+=("$bridge_pid")
    local i
    for ((i = 0; i < 50; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
}

stats() { # stats CSV -> ok ko
    ok="?"
    ko="?"
    [[ -s "$1" ]] || return 0
    read -r ok ko < <(awk -F';' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { last = $0 }
        END { n = split(last, v, ";"); print v[col["SuccessfulCall(C)"]], v[col["FailedCall(C)"]] }' "$1")
}

# call NAME COUNT RATE HOLD_MS [HOOK [UAS_CERT]]: COUNT calls UAC -TLS-> sipwarden -TCP-> UAS
# (with UAS_CERT: -TLS-> a socat TLS server with that certificate -> UAS); HOOK runs while the
# calls are up. Appends to $why. With want_fail=1, every call is expected to fail.
want_fail=0
call() {
    local name="$1" count="$2" rate="$3" hold="$4" hook="${5:-}" uas_cert="${6:-}"
    local uas_port uac_port br_port ruri
    port uas_port
    port uac_port
    port br_port
    bridge "$br_port"
    ruri="sip:bob@127.0.0.1:$uas_port;transport=tcp"
    if [[ -n "$uas_cert" ]]; then
        local tls_uas_port
        port tls_uas_port
        timeout 120 socat "OPENSSL-LISTEN:$tls_uas_port,bind=${uas_tls_ip:-127.0.0.1},reuseaddr,fork,cert=$pki/$uas_cert.pem,key=$pki/$uas_cert.key,verify=0" \
            "TCP:127.0.0.1:$uas_port" 2>>"$work/socat-uas.log" &
        pids+=($!)
        ruri="sip:bob@${uas_tls_ip:-127.0.0.1}:$tls_uas_port;transport=tls"
    fi
    timeout 90 sipp -nostdin -i 127.0.0.1 -sf "$sippdir/uas.xml" -p "$uas_port" -t t1 \
        -m "$count" -d 0 -trace_stat -stf "$work/$name-uas.csv" -fd 1 \
        -trace_err -error_file "$work/$name-uas.err" >"$work/$name-uas.out" 2>&1 &
    local uas=$!
    pids+=("$uas")
    sleep 0.3
    timeout "${uac_timeout:-90}" sipp -nostdin -i 127.0.0.1 "127.0.0.1:$br_port" -sf "$sippdir/uac.xml" \
        -p "$uac_port" -t t1 -key ruri "$ruri" \
        -m "$count" -r "$rate" -d "$hold" -recv_timeout "${uac_recv_timeout:-20000}" \
        -trace_stat -stf "$work/$name-uac.csv" -fd 1 \
        -trace_err -error_file "$work/$name-uac.err" >"$work/$name-uac.out" 2>&1 &
    local uac=$!
    pids+=("$uac")
    if [[ -n "$hook" ]]; then
        sleep 1
        "$hook"
    fi
    wait "$uac" 2>/dev/null || true
    # A UAS that should get no call would otherwise wait for its timeout.
    [[ "$want_fail" == 1 ]] && kill -TERM "$uas" 2>/dev/null
    wait "$uas" 2>/dev/null || true
    kill -TERM "$bridge_pid" 2>/dev/null || true
    if [[ "$want_fail" == 1 ]]; then
        stats "$work/$name-uac.csv"
        # SIPp may stop before its statistics when the TLS bridge closes its TCP connection
        # (a refused handshake): then no call succeeded either.
        # With uac_timeout SIPp is stopped before its calls fail: no call may succeed.
        if [[ "$ok" != 0 && "$ok" != "?" ]] ||
            [[ -z "${uac_timeout:-}" && "$ok" == 0 && "$ko" != "$count" ]]; then
            why+="$name-uac: $ok successful, $ko failed (want 0, $count); "
        fi
        stats "$work/$name-uas.csv"
        [[ "$ok" == 0 || "$ok" == "?" ]] || why+="$name-uas: $ok calls reached the UAS; "
        return 0
    fi
    for side in uac uas; do
        stats "$work/$name-$side.csv"
        if [[ "$ok" != "$count" || "$ko" != 0 ]]; then
            why+="$name-$side: $ok successful, $ko failed (want $count): $(head -c 200 "$work/$name-$side.err" 2>/dev/null | tr '\n' ' '); "
        fi
    done
}

if only base; then
why=""
call call 20 10 200
grep -q "TLS" "$work/sipwarden.log" || why+="no TLS in the log; "
result call-over-tls "$why"
fi

if only base; then
why=""
call tls-to-tls 10 10 200 "" uas
grep -q "TLS connected" "$work/sipwarden.log" || why+="no outgoing TLS connection logged; "
# The UAS's server is not from the CA sipwarden trusts: no call gets through.
want_fail=1
call tls-untrusted 2 2 200 "" fakeuas
want_fail=0
grep -q "TLS handshake to 127.0.0.1" "$work/sipwarden.log" || why+="refused server certificate not logged; "
result call-tls-to-tls "$why"
fi

# ---------------------------------------------------------------------------------------------
swap_hook() {
    cp "$pki/srv2.pem" "$pki/served.pem"
    cp "$pki/srv2.key" "$pki/served.key"
    kill -HUP "$sw_pid"
    sleep 0.5
    s_client after-swap -tls1_3 -showcerts || true
    openssl x509 -in "$work/after-swap.s_client" -noout -fingerprint -sha256 2>/dev/null |
        cut -d= -f2 >"$work/after-swap.fp" || true
}
if only base; then
why=""
before="$(fingerprint "$pki/srv1.pem")"
s_client before-swap -tls1_3 || true
openssl x509 -in "$work/before-swap.s_client" -noout -fingerprint -sha256 2>/dev/null |
    cut -d= -f2 >"$work/before-swap.fp" || true
[[ "$(cat "$work/before-swap.fp")" == "$before" ]] || why+="the first certificate was not served before the swap; "
call swap 1 1 4000 swap_hook
after="$(fingerprint "$pki/srv2.pem")"
[[ "$(cat "$work/after-swap.fp" 2>/dev/null)" == "$after" ]] ||
    why+="after SIGHUP a new connection got $(cat "$work/after-swap.fp" 2>/dev/null), not the new certificate $after; "
grep -q "TLS certificates reloaded" "$work/sipwarden.log" || why+="no reload logged; "
result certificate-swap-keeps-the-call "$why"
fi

# ---------------------------------------------------------------------------------------------
# Mutual TLS with a whole SIPp call: socat presents the client certificate.
if only mtls-sipp; then
    why=""
    bridge_to=$mtls_port bridge_opts=",cert=$pki/client.pem,key=$pki/client.key" \
        bridge_log="$work/socat-mtls.log" call mtls-call 10 10 200
    grep -q 'TLS accepted.*common_name: Some("pbx.corp.test")' "$work/sipwarden.log" ||
        why+="no mutual-TLS connection with the client's identity logged; "
    want_fail=1
    # TLS 1.2 here, so that the refusal ends socat's SSL_connect (with TLS 1.3 the client's
    # handshake is over before the server has checked its certificate; the s_client checks
    # above cover 1.3). SIPp, whose TCP connection the bridge closes, would wait forever: it
    # is stopped after 6 s.
    bridge_to=$mtls_port bridge_opts=",openssl-max-proto-version=TLS1.2" \
        bridge_log="$work/socat-mtls-none.log" uac_recv_timeout=3000 uac_timeout=6 \
        call mtls-nocert 1 1 200
    bridge_to=$mtls_port \
        bridge_opts=",openssl-max-proto-version=TLS1.2,cert=$pki/stranger.pem,key=$pki/stranger.key" \
        bridge_log="$work/socat-mtls-other.log" uac_recv_timeout=3000 uac_timeout=6 \
        call mtls-other 1 1 200
    want_fail=0
    # The refusal comes from sipwarden, in the handshake: socat reads its alert.
    grep -qi "alert certificate required\|alert handshake failure" "$work/socat-mtls-none.log" ||
        why+="the client without a certificate got no handshake alert: $(grep -m1 -i 'E ' "$work/socat-mtls-none.log"); "
    grep -qi "alert unknown ca\|alert bad certificate\|alert decrypt error" "$work/socat-mtls-other.log" ||
        why+="the client of another CA got no handshake alert: $(grep -m1 -i 'E ' "$work/socat-mtls-other.log"); "
    result sipp-mtls-call "$why"
fi

if only require-tls; then
    # shellcheck source=tests/e2e/tls/require-tls.sh
    source "$here/require-tls.sh"
fi

kill -TERM "$sw_pid" 2>/dev/null || true
wait "$sw_pid" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Real phones (baresip, linphone) over mutual TLS with SRTP, on a second sipwarden.
if only phones; then
    # shellcheck source=tests/e2e/tls/phones.sh
    source "$here/phones.sh"
    if why="$(phones_ready)"; then
        phones_run
    else
        result phones "$why"
    fi
fi

# A zone with UDP and TLS listeners: each B2BUA leg on its own transport (baresip, SIPp).
if only mixed; then
    # shellcheck source=tests/e2e/tls/mixed.sh
    source "$here/mixed.sh"
    if command -v baresip >/dev/null; then
        mixed_run
    else
        result mixed "baresip is not installed"
    fi
fi

echo "e2e-tls: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
