#!/bin/sh
# Run each libFuzzer harness for $1 seconds on its committed seed corpus.
# New inputs go to a scratch copy, so the committed corpus stays small.
# Exits non-zero on the first crash; the crashing input is left in
# tests/fuzz/ as crash-* (keep it as a regression seed once fixed).
set -e
secs=$1
shift
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
for bin in "$@"; do
    name=$(basename "$bin")
    corpus="tests/fuzz/corpus/${name#fuzz_}"
    work="build/fuzz/work-$name"
    mkdir -p "$corpus" "$work"
    echo "== $name (${secs}s)"
    if ! "$bin" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix=tests/fuzz/ \
        -timeout=10 -rss_limit_mb=2048 "$work" "$corpus" >"$work.log" 2>&1; then
        tail -40 "$work.log"
        echo "fuzz: $name failed; the input is in tests/fuzz/ (crash-*, leak-* or timeout-*)"
        exit 1
    fi
    tail -2 "$work.log"
done
