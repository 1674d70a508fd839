#!/usr/bin/env bash
# Builds the seed corpora fuzz/corpus/<target>/ from the RFC 4475 torture messages and the
# benchmark messages. Idempotent: seeds are named after their content's source, so running it
# again only refreshes them; corpus entries that libFuzzer added are kept.
#
#   fuzz/seed.sh            # all targets
#   fuzz/seed.sh uri sdp    # some targets
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
rfc="$root/crates/sip-message/tests/data/rfc4475"
if ! ls "$rfc"/*.dat >/dev/null 2>&1; then
    rfc="$root/../shared/testdata/rfc4475"
fi
if ! ls "$rfc"/*.dat >/dev/null 2>&1 && [ -d /work/shared/testdata/rfc4475 ]; then
    rfc=/work/shared/testdata/rfc4475
fi
bench="$root/crates/sip-message/benches/data"

msgs=()
for f in "$rfc"/*.dat "$bench"/*.sip; do
    [ -f "$f" ] && msgs+=("$f")
done
if [ "${#msgs[@]}" -eq 0 ]; then
    echo "seed.sh: no messages found (looked in $rfc and $bench)" >&2
    exit 1
fi

targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=(sip_message stream_framer uri sdp edit)

name() { basename "$1" | tr '.' '_'; }

# The body: everything after the first empty line (CRLF CRLF or LF LF).
body() { perl -0777 -ne 'print $1 if /\r?\n\r?\n(.*)\z/s' "$1"; }

seed_sip_message() {
    local d="$here/corpus/sip_message"
    mkdir -p "$d"
    for f in "${msgs[@]}"; do cp "$f" "$d/seed-$(name "$f")"; done
}

# Input layout of stream_framer: byte 0 = flags (bit 0: small limits), byte 1 = number of cut
# points n, then n big-endian u16 cut offsets, then the stream.
seed_stream_framer() {
    local d="$here/corpus/stream_framer"
    mkdir -p "$d"
    for f in "${msgs[@]}"; do
        # whole, then cut in 3 places, then two messages back to back with a keepalive between
        { printf '\x00\x00'; cat "$f"; } >"$d/seed-$(name "$f")-whole"
        { printf '\x00\x03\x00\x05\x00\x40\x01\x00'; cat "$f"; } >"$d/seed-$(name "$f")-cut3"
        { printf '\x00\x02\x00\x11\x02\x02'; cat "$f"; printf '\r\n\r\n'; cat "$f"; } >"$d/seed-$(name "$f")-two"
    done
}

seed_uri() {
    local d="$here/corpus/uri"
    mkdir -p "$d"
    local i=0
    # Request-URIs and every <...> URI of the messages.
    for f in "${msgs[@]}"; do
        {
            head -n 1 "$f" | awk '{ print $2 }'
            grep -a -o '<[a-zA-Z][a-zA-Z0-9+.-]*:[^<>]*>' "$f" | sed 's/^<//; s/>$//' || true
        } | while IFS= read -r u; do
            [ -n "$u" ] || continue
            printf '%s' "$u" >"$d/seed-$(name "$f")-$((i++))"
        done
    done
    printf '%s' 'sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.1.1.1?subject=hi&x=y' >"$d/seed-full"
    printf '%s' 'tel:+1-201-555-0123;ext=1234' >"$d/seed-tel"
    printf '%s' 'sip:%61lice@atlanta.com;transport=TCP' >"$d/seed-escaped"
}

seed_sdp() {
    local d="$here/corpus/sdp"
    mkdir -p "$d"
    for f in "${msgs[@]}"; do
        if grep -aq '^v=0' "$f"; then
            body "$f" >"$d/seed-$(name "$f")"
        fi
    done
}

# Input layout of edit: byte 0 = number of edits (mod 4), then per edit 4 bytes (op, header
# selector, value length, value seed), then the message.
seed_edit() {
    local d="$here/corpus/edit"
    mkdir -p "$d"
    for f in "${msgs[@]}"; do
        { printf '\x00'; cat "$f"; } >"$d/seed-$(name "$f")-noop"
        { printf '\x02\x00\x00\x08\x41\x01\x05\x10\x42'; cat "$f"; } >"$d/seed-$(name "$f")-two"
    done
}

for t in "${targets[@]}"; do
    "seed_$t"
    echo "seed.sh: $t: $(ls "$here/corpus/$t" | wc -l) files in fuzz/corpus/$t"
done
