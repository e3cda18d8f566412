#!/bin/sh
# test.sh - the test of scripts/check-style.sh: each tree here breaks one
# rule and must fail with exactly the problems its `expected` file lists
# (first line: the exit status; then the start of each problem line and of
# each circle printed); good/ breaks none (and calls what only looks like a
# banned call) and must pass. The circle tree must also pass without
# CHECK_CYCLES=1, its circles still printed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
checker="$here/../../scripts/check-style.sh"
failed=0

fail() {
    echo "tests/style: $*" >&2
    failed=1
}

for dir in "$here"/*/; do
    name=$(basename "$dir")
    out=$(CHECK_CYCLES=1 "$checker" "$dir" 2>/dev/null)
    status=$?
    want_status=$(head -n 1 "$dir/expected")
    [ "$status" -eq "$want_status" ] || fail "$name: exit $status, expected $want_status"
    tail -n +2 "$dir/expected" | while IFS= read -r want; do
        printf '%s\n' "$out" | grep -qF -- "$want" || {
            echo "tests/style: $name: missing: $want" >&2
            echo x
        }
    done | grep -q x && failed=1
    # nothing more than expected: no false alarm
    got=$(printf '%s\n' "$out" | grep -cE '^([^ :]+:[0-9]+: [a-z-]+: |circle: )')
    want=$(tail -n +2 "$dir/expected" | grep -cE '^([^ :]+:[0-9]+: [a-z-]+: |circle: )')
    [ "$got" -eq "$want" ] || fail "$name: $got problems, expected $want:
$out"
done

out=$(CHECK_CYCLES=0 "$checker" "$here/circle" 2>/dev/null)
[ $? -eq 0 ] || fail "circle: fails without CHECK_CYCLES=1"
printf '%s\n' "$out" | grep -q '^circle: 3 modules' || fail "circle: not printed without CHECK_CYCLES=1"

if [ "$failed" -ne 0 ]; then
    echo "tests/style: FAILED" >&2
    exit 1
fi
echo "tests/style: the checker finds every planted problem and nothing else" >&2
