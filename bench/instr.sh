#!/bin/bash
# bench/instr.sh CONF PORT SECONDS: instructions sluice executes per proxied
# request, counted by valgrind's callgrind (deterministic, unlike CPU time on
# a shared machine). sluice starts under callgrind with CONF (listening on
# PORT); after a warm-up the counters are zeroed, wrk sends bench/chat.lua's
# request for SECONDS over 4 connections (MODEL from the environment), and
# the counters are dumped. Prints {"instr":N,"requests":N}.
set -euo pipefail
conf=$1 port=$2 secs=$3
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" build/sluice --config "$conf" \
  >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 400); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
wrk -t1 -c4 -d2s -s bench/chat.lua "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
callgrind_control -z "$pid" >/dev/null 2>&1
reqs=$(wrk -t1 -c4 -d"${secs}s" -s bench/chat.lua "http://127.0.0.1:$port/v1/chat/completions" |
  sed -n 's/^JSON .*"requests":\([0-9]*\).*/\1/p')
callgrind_control -d "$pid" >/dev/null 2>&1
instr=$(sed -n 's/^summary: //p' "$dir"/cg.out.* | head -1)
echo "{\"instr\":${instr:-0},\"requests\":${reqs:-0}}"
