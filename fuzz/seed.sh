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
[ "${#targets[@]}" -eq 0 ] && targets=(sip_message stream_framer uri sdp edit stun rtp srtp sdes radius digest policy policy_toml)

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

# Packet seeds (STUN, RTP/RTCP, SRTP/SRTCP, SDES lines, RADIUS answers) are built by the crates
# themselves: examples/gen_seeds.rs, run once for all of these targets.
generated=
gen_seeds() {
    if [ -z "$generated" ]; then
        (cd "$here" && cargo run --quiet --example gen_seeds -- "$here/corpus")
        generated=1
    fi
}
seed_stun() { gen_seeds; }
seed_rtp() { gen_seeds; }
seed_srtp() { gen_seeds; }
seed_sdes() { gen_seeds; }
seed_radius() { gen_seeds; }

# Input layout of digest: byte 0 = flags (bit 0 proxy, bit 1 no URI check, bit 2 unbound
# nonce, bit 3 MD5 only), then the Authorization value; $N stands for a fresh nonce, $R for the
# right response (password "secret").
seed_digest() {
    local d="$here/corpus/digest"
    mkdir -p "$d"
    # RFC 7616 section 3.9.1, as sent (SHA-256, then MD5).
    printf '\x00%s' 'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' >"$d/seed-rfc7616-sha256"
    printf '\x00%s' 'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' >"$d/seed-rfc7616-md5"
    # The same shape for our realm and Request-URI, with a live nonce and the right response.
    local v='Digest username="alice", realm="example.com", uri="sip:example.com", algorithm=SHA-256, nonce="$N", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="$R", opaque="FQhe"'
    printf '\x00%s' "$v" >"$d/seed-live-sha256"
    printf '\x01%s' "${v//SHA-256/MD5}" >"$d/seed-live-md5-proxy"
    printf '\x08%s' "${v//algorithm=SHA-256, /}" >"$d/seed-live-default-md5"
    printf '\x00%s' 'Digest username="alice", realm="example.com", uri="sip:example.com", nonce="$N", response="$R"' >"$d/seed-rfc2069"
    printf '\x00%s' 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==' >"$d/seed-basic"
    printf '\x06%s' 'Digest username="a\"b", realm="other.example", nonce="$N", uri="sip:x", response="00", qop=auth-int, nc=1, cnonce=""' >"$d/seed-odd"
}

# Input layout of policy: byte 0 = zone, target, source, user and count selectors, then the
# message.
seed_policy() {
    local d="$here/corpus/policy"
    mkdir -p "$d"
    local f sel
    for f in "$root"/crates/policy/examples/*.sip "${msgs[@]}"; do
        [ -f "$f" ] || continue
        for sel in 00 04 21 4b 9c; do
            { printf "\x$sel"; cat "$f"; } >"$d/seed-$(name "$f")-$sel"
        done
    done
}

seed_policy_toml() {
    local d="$here/corpus/policy_toml"
    mkdir -p "$d"
    local f
    for f in "$root"/crates/policy/examples/*.toml "$root"/examples/*.toml; do
        [ -f "$f" ] && cp "$f" "$d/seed-$(name "$f")"
    done
    # The policy sections of the crate's tests (between r#" and "#).
    for f in "$root"/crates/policy/tests/*.rs; do
        perl -0777 -ne 'my $i = 0; while (/r#"(.*?)"#/sg) { my $t = $1; next unless $t =~ /\[policy|\[\[policy/; open(my $o, ">", "'"$d"'/seed-" . "'"$(name "$f")"'" . "-" . $i++) or die; print $o $t; close $o }' "$f"
    done
}

for t in "${targets[@]}"; do
    "seed_$t"
    echo "seed.sh: $t: $(ls "$here/corpus/$t" | wc -l) files in fuzz/corpus/$t"
done
