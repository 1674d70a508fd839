#!/usr/bin/env bash
# End-to-end check of the release binary against the RFC 4475 torture messages: runs
# `sipwarden parse FILE` on every file of the manifest and compares the exit code with what the
# project decided for that file (0 = accepted as valid, 1 = rejected).
#
# Usage: tests/e2e/rfc4475-cli.sh [PATH-TO-SIPWARDEN-BINARY]
# Default binary: ${CARGO_TARGET_DIR:-target}/release/sipwarden (build it first with
# `cargo build --release -p sipwarden`).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${1:-${CARGO_TARGET_DIR:-target}/release/sipwarden}"
data="crates/sip-message/tests/data/rfc4475"
manifest="$data/MANIFEST.tsv"

if [[ ! -x "$bin" ]]; then
    echo "rfc4475-cli: binary not found at $bin (run: cargo build --release -p sipwarden)" >&2
    exit 2
fi
if [[ ! -f "$manifest" ]]; then
    echo "rfc4475-cli: manifest not found at $manifest" >&2
    exit 2
fi

# Invalid messages that RFC 4475 lets a liberal parser accept (3.1.2.12, 3.1.2.14, 3.1.2.15);
# what sipwarden does with each (see docs/ARCHITECTURE.md, "Liberal choices").
declare -A liberal=(
    [baddate.dat]=0 # non-GMT Date: accepted, Date is not used for anything
    [badaspec.dat]=1 # spaces inside <...> of To: rejected, an edge does not guess where a URI ends
    [baddn.dat]=0 # unquoted display name with ',' (Bell, Alexander <...>): accepted as written
)

# Semantic cases: syntactically valid messages whose handling belongs to a later layer. `parse`
# accepts them (0) unless the message layer itself must reject them (1).
declare -A semantic=(
    [badbranch.dat]=0 # branch without magic cookie: RFC 2543 matching, a transaction-layer matter
    [insuf.dat]=1 # missing Call-ID/From/To/Max-Forwards: validate() fails (400)
    [unkscm.dat]=0 # unknown Request-URI scheme: parsed, the scheme is exposed for a 416
    [novelsc.dat]=0 # unusual registered scheme: same as unkscm
    [unksm2.dat]=0 # unknown schemes in To/From/Contact: processed normally
    [bext01.dat]=0 # unknown Require/Proxy-Require options: 420 is a UAS/proxy decision
    [invut.dat]=0 # unknown Content-Type: 415 is a UAS decision, a proxy forwards
    [regaut01.dat]=0 # unknown Authorization scheme: the registrar challenges
    [multi01.dat]=1 # several values in single-value headers: validate() fails (400)
    [mcl01.dat]=1 # several Content-Length values: rejected while framing (400)
    [bcast.dat]=0 # Via to a broadcast address: transport layer never sends there
    [zeromf.dat]=0 # Max-Forwards 0: the proxy answers 483
    [cparam01.dat]=0 # Contact header params: stored with the binding
    [cparam02.dat]=0 # Contact URI params: stored with the URI
    [regescrt.dat]=0 # escaped header in the Contact URI: stored unchanged
    [sdp01.dat]=0 # Accept without SDP: 406 is a UAS decision
    [inv2543.dat]=0 # RFC 2543 style INVITE: processed with backward compatibility
)

# Files outside the manifest.
declare -A extra=(
    [baddn-original.dat]=1 # the archive's copy lacks the final CRLF: the header section never ends
)

passed=0
failed=0

run_one() {
    local file="$1" expected="$2" class="$3" got err
    set +e
    err=$("$bin" parse "$data/$file" 2>&1 >/dev/null)
    got=$?
    set -e
    if [[ "$got" == "$expected" ]]; then
        passed=$((passed + 1))
        printf 'ok   %-20s %-8s exit %s\n' "$file" "$class" "$got"
    else
        failed=$((failed + 1))
        printf 'FAIL %-20s %-8s expected exit %s, got %s: %s\n' "$file" "$class" "$expected" "$got" "$err"
    fi
}

while IFS=$'\t' read -r file _section class _rest; do
    [[ "$file" == "file" || -z "$file" ]] && continue
    case "$class" in
    valid) expected=0 ;;
    invalid) expected="${liberal[$file]:-1}" ;;
    semantic)
        if [[ -z "${semantic[$file]+set}" ]]; then
            echo "rfc4475-cli: no decision recorded for semantic case $file" >&2
            failed=$((failed + 1))
            continue
        fi
        expected="${semantic[$file]}"
        ;;
    *)
        echo "rfc4475-cli: unknown class '$class' for $file" >&2
        failed=$((failed + 1))
        continue
        ;;
    esac
    run_one "$file" "$expected" "$class"
done <"$manifest"

for file in "${!extra[@]}"; do
    run_one "$file" "${extra[$file]}" "extra"
done

echo "rfc4475-cli: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
