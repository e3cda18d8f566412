#!/bin/bash
# bench/instr.sh CONF PORT SECONDS: instructions sluice executes per proxied
# request, counted by valgrind's callgrind (about 1.5% between runs, against
# several percent for CPU time on a shared machine). sluice starts under
# callgrind with CONF (listening on PORT); after a warm-up the counters are
# zeroed, wrk sends bench/chat.lua's request for SECONDS over 4 connections
# (MODEL from the environment), and the counters are dumped. Prints
# {"instr":N,"requests":N}; exits 1, saying why, when callgrind counted
# nothing or a request failed.
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
json=$(wrk -t1 -c4 -d"${secs}s" -s bench/chat.lua "http://127.0.0.1:$port/v1/chat/completions" |
  sed -n 's/^JSON //p')
reqs=$(echo "$json" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
errors=$(echo "$json" | sed -n 's/.*"errors":\([0-9]*\).*/\1/p')
callgrind_control -d "$pid" >/dev/null 2>&1
instr=$(sed -n 's/^summary: //p' "$dir"/cg.out.* 2>/dev/null | head -1)
if [ -z "$instr" ] || [ "${reqs:-0}" -le 0 ] || [ "${errors:-1}" -ne 0 ]; then
  echo "bench/instr.sh: no count for $conf (requests: ${reqs:-none}, errors: ${errors:-none})" >&2
  cat "$dir/log" >&2
  exit 1
fi
echo "{\"instr\":$instr,\"requests\":$reqs}"
