#!/usr/bin/env bash
# Runs the end-to-end scenarios of the testbed (tests/testbed/scenarios/*.sh): each one builds
# its own testbed (a fresh prefix, about 0.5 s), runs, and removes it, so that one scenario's
# leftovers cannot spoil another's. Called by scripts/test.
#
# Usage: tests/testbed/scenarios/run.sh [PATTERN...]
#   PATTERN: shell globs over the scenario names (default: every *.sh here but run.sh), e.g.
#   `run.sh 'itsp-*'`.
# Environment: SIPWARDEN_BIN (else $CARGO_TARGET_DIR/release/sipwarden, target/release...),
#   passed on to the scenarios.
# Exit: 0 when every scenario passed (or was skipped), 1 when one failed; 77 when none could
# run (not root, no network namespaces: "SKIPPED: ..."), as the scenarios themselves do.

set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"
tb_require_root

patterns=("$@")
[[ ${#patterns[@]} -gt 0 ]] || patterns=("*")
passed=() failed=() skipped=()
for script in "$here"/*.sh; do
    name="$(basename "$script" .sh)"
    [[ $name == run ]] && continue
    wanted=0
    for p in "${patterns[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $name == $p || $name.sh == $p ]] && wanted=1
    done
    [[ $wanted == 1 ]] || continue
    echo "=== $name"
    start=$SECONDS
    # Each scenario bounds its own steps; this bounds the whole, in case one hangs anyway.
    timeout --kill-after=10 600 bash "$script"
    rc=$?
    case $rc in
    0) passed+=("$name") ;;
    77) skipped+=("$name") ;;
    *) failed+=("$name (exit $rc)") ;;
    esac
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
done
echo "scenarios: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
for f in "${failed[@]}"; do
    echo "FAILED: $f"
done
for s in "${skipped[@]}"; do
    echo "SKIPPED: $s"
done
if [[ ${#failed[@]} -gt 0 ]]; then
    exit 1
fi
if [[ ${#passed[@]} -eq 0 && ${#skipped[@]} -gt 0 ]]; then
    exit 77
fi
exit 0
