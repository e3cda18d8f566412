#!/bin/bash
# make bench: sluice against nginx, measured in one run on this machine.
#
#   static  nginx serving a canned chat completion directly (the upstream)
#   proxy   nginx proxy_pass (keep-alive upstream) in front of that upstream
#   sluice  sluice in front of that same upstream
#   floor   bench/mhd_curl_proxy.c in front of it: libmicrohttpd and libcurl
#           alone (no JSON, log or cache), one thread per core like sluice's
#           workers (BENCH_FLOOR_THREADS); sluice is held to >= 0.9x its
#           throughput and <= 1.25x its added p50
#
# Throughput at 32 connections, p50 latency at 1 connection (added latency =
# p50 through the proxy minus p50 direct), idle RSS, and 5,000 concurrent
# streams through sluice from sluice-mock (1 s to first byte, then 20 chunks
# 50 ms apart), the memory each open stream costs (1,000, 4,000 and 8,000
# held open at once; BENCH_STREAM_LEVELS), and the CPU cost of tracing
# (OpenTelemetry at sample_ratio 1, with and without propagation, and 0,
# against none: CPU time, and instructions under callgrind). Results go to
# bench/RESULTS.md as ratios against the baselines of the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
DUR=${BENCH_SECONDS:-10}
STREAMS=${BENCH_STREAMS:-5000}
STREAM_LEVELS=${BENCH_STREAM_LEVELS:-1000,4000,8000}
mkdir -p "$OUT"
rm -f "$OUT"/*.log
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; } # user + system, in clock ticks
hwm_kb() { awk '/VmHWM/ {print $2}' /proc/"$1"/status; }

P_STATIC=$(free_port); P_PROXY=$(free_port); P_SLUICE=$(free_port)
P_MOCK=$(free_port); P_SLUICE_STREAM=$(free_port); P_REDIS=$(free_port); P_SLUICE_REDIS=$(free_port)
P_REDIS_TLS=$(free_port); P_CL1=$(free_port); P_CL2=$(free_port); P_CL3=$(free_port)
P_SLUICE_R1=$(free_port); P_SLUICE_RC=$(free_port); P_SLUICE_RT=$(free_port)
P_FLOOR=$(free_port)

CANNED='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":9,"total_tokens":23},"system_fingerprint":"fp_bench"}'

cat > "$OUT/nginx.conf" <<NGINX
worker_processes 2;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx-tmp;
  proxy_temp_path $OUT/nginx-tmp;
  upstream canned { server 127.0.0.1:$P_STATIC; keepalive 128; }
  server {
    listen 127.0.0.1:$P_STATIC;
    location / { default_type application/json; return 200 '$CANNED'; }
  }
  server {
    listen 127.0.0.1:$P_PROXY;
    access_log $OUT/nginx-access.log;
    location / {
      proxy_pass http://canned;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
mkdir -p "$OUT/nginx-tmp"
nginx -c "$OUT/nginx.conf" -g 'daemon off;' &
pids+=($!)

cat > "$OUT/sluice.conf" <<CONF
listen = "127.0.0.1:$P_SLUICE";
log = { format = "json"; path = "$OUT/sluice.log"; level = "info"; };
providers = ( { name = "canned"; type = "openai"; base_url = "http://127.0.0.1:$P_STATIC/v1"; } );
models = ( { name = "bench"; provider = "canned"; id = "bench-model"; input_per_mtok = 0.15; output_per_mtok = 0.60; } );
routes = ( { name = "bench-nocache"; model = "bench"; cache = false; } );
CONF
build/sluice --config "$OUT/sluice.conf" &
SLUICE_PID=$!
pids+=($SLUICE_PID)

# The floor: bench/mhd_curl_proxy.c, a bare-bones proxy of libmicrohttpd and
# libcurl alone (no JSON, no log, no cache), with as many threads as sluice
# has HTTP workers (workers = 0: one per core). sluice is measured against
# it as well as against nginx.
FLOOR_THREADS=${BENCH_FLOOR_THREADS:-$(nproc)}
cc -O2 -o "$OUT/mhd_curl_proxy" bench/mhd_curl_proxy.c -lmicrohttpd -lcurl -pthread
"$OUT/mhd_curl_proxy" "$P_FLOOR" "http://127.0.0.1:$P_STATIC/v1/chat/completions" "$FLOOR_THREADS" &
pids+=($!)
wait_port "$P_STATIC"; wait_port "$P_PROXY"; wait_port "$P_SLUICE"; wait_port "$P_FLOOR"
sleep 0.5
IDLE_RSS_KB=$(rss_kb $SLUICE_PID)

# wrk NAME URL CONNS THREADS SECONDS [ENV...] -> prints the JSON summary line
wrk_run() {
  local name=$1 url=$2 c=$3 t=$4 d=$5; shift 5
  env "$@" wrk -t"$t" -c"$c" -d"${d}s" --timeout 30s -s bench/chat.lua "$url/v1/chat/completions" \
    > "$OUT/wrk-$name.txt" 2>&1 || true
  grep '^JSON ' "$OUT/wrk-$name.txt" | sed 's/^JSON //'
}
field() { node -e "console.log(JSON.parse(process.argv[1])['$2'])" "$1"; }

# The proxy figures go through a route with the cache off: every request
# makes its upstream call. The cache figures repeat one request: every
# request after the first is a hit.
echo "bench: starting Redis and a sluice with the Redis backend"
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
pids+=($!)
sed -e "s/$P_SLUICE/$P_SLUICE_REDIS/" -e "s|sluice.log|sluice-redis.log|" "$OUT/sluice.conf" > "$OUT/sluice-redis.conf"
echo "redis = { url = \"redis://127.0.0.1:$P_REDIS/0\"; timeout_ms = 50; };" >> "$OUT/sluice-redis.conf"
echo "cache = { backend = \"redis\"; };" >> "$OUT/sluice-redis.conf"
wait_port "$P_REDIS"
build/sluice --config "$OUT/sluice-redis.conf" &
pids+=($!)
wait_port "$P_SLUICE_REDIS"

# Redis as production runs it, for the cache with local_ttl_ms = 0 (every
# hit is a Redis round trip): one standalone Redis, a Cluster of three
# masters, and TLS (a CA made here) - each behind its own sluice.
echo "bench: starting a Redis Cluster of three masters, a TLS Redis, and a sluice on each"
TLS=$OUT/tls
rm -rf "$TLS" "$OUT/cluster"; mkdir -p "$TLS" "$OUT/cluster"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/ca.key" 2>/dev/null
openssl req -x509 -new -key "$TLS/ca.key" -subj /CN=bench-ca -days 2 -out "$TLS/ca.crt" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/server.key" 2>/dev/null
openssl req -new -key "$TLS/server.key" -subj /CN=localhost -out "$TLS/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$TLS/server.ext"
openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial -days 2 \
  -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
redis-server --port 0 --tls-port "$P_REDIS_TLS" --bind 127.0.0.1 --save '' --appendonly no \
  --tls-cert-file "$TLS/server.crt" --tls-key-file "$TLS/server.key" --tls-ca-cert-file "$TLS/ca.crt" \
  --tls-auth-clients no >"$OUT/redis-tls.log" 2>&1 &
pids+=($!)
for p in $P_CL1 $P_CL2 $P_CL3; do
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT/cluster" \
    --cluster-enabled yes --cluster-config-file "nodes-$p.conf" >"$OUT/redis-cluster-$p.log" 2>&1 &
  pids+=($!)
done
wait_port "$P_REDIS_TLS"; wait_port "$P_CL1"; wait_port "$P_CL2"; wait_port "$P_CL3"
redis-cli --cluster create "127.0.0.1:$P_CL1" "127.0.0.1:$P_CL2" "127.0.0.1:$P_CL3" --cluster-yes >/dev/null
for _ in $(seq 100); do
  redis-cli -p "$P_CL1" CLUSTER INFO | grep -q cluster_state:ok && break; sleep 0.1
done
redis_sluice() { # PORT NAME REDIS-BLOCK
  sed -e "s/$P_SLUICE/$1/" -e "s|sluice.log|sluice-$2.log|" "$OUT/sluice.conf" > "$OUT/sluice-$2.conf"
  printf '%s\ncache = { backend = "redis"; local_ttl_ms = 0; };\n' "$3" >> "$OUT/sluice-$2.conf"
  build/sluice --config "$OUT/sluice-$2.conf" &
  pids+=($!)
}
redis_sluice "$P_SLUICE_R1" r1 "redis = { url = \"redis://127.0.0.1:$P_REDIS/0\"; timeout_ms = 50; };"
redis_sluice "$P_SLUICE_RC" rc "redis = { cluster_nodes = ( \"127.0.0.1:$P_CL1\" ); timeout_ms = 50; };"
redis_sluice "$P_SLUICE_RT" rt "redis = { url = \"rediss://localhost:$P_REDIS_TLS/0\"; tls_ca_file = \"$TLS/ca.crt\"; timeout_ms = 50; };"
wait_port "$P_SLUICE_R1"; wait_port "$P_SLUICE_RC"; wait_port "$P_SLUICE_RT"

# The measured targets: NAME URL MODEL.
TARGETS=(
  "static http://127.0.0.1:$P_STATIC bench"
  "proxy http://127.0.0.1:$P_PROXY bench"
  "floor http://127.0.0.1:$P_FLOOR bench"
  "sluice http://127.0.0.1:$P_SLUICE bench-nocache"
  "cache-mem http://127.0.0.1:$P_SLUICE bench"
  "cache-redis http://127.0.0.1:$P_SLUICE_REDIS bench"
  "redis-one http://127.0.0.1:$P_SLUICE_R1 bench"
  "redis-cluster http://127.0.0.1:$P_SLUICE_RC bench"
  "redis-tls http://127.0.0.1:$P_SLUICE_RT bench"
)

echo "bench: warming up"
for tgt in "${TARGETS[@]}"; do
  read -r name url model <<<"$tgt"
  wrk_run "warm-$name" "$url" 32 2 2 MODEL="$model" >/dev/null
done

# The machine is noisy (a VM; wrk, nginx and sluice share its cores), so
# every figure is the median of ROUNDS runs, and the runs of the targets are
# interleaved: a slow spell hits every target alike, not one of them.
# rounds KIND CONNS THREADS: runs every target ROUNDS times, ROUND_SECONDS each,
# and leaves the runs' JSON lines in $OUT/rounds-KIND-NAME.jsonl.
ROUNDS=${BENCH_ROUNDS:-5}
ROUND_SECONDS=$(( DUR / ROUNDS > 2 ? DUR / ROUNDS : 2 ))
CPU_TICKS=0
rounds() {
  local kind=$1 c=$2 t=$3 r tgt name url model c0
  rm -f "$OUT"/rounds-"$kind"-*.jsonl
  for r in $(seq "$ROUNDS"); do
    for tgt in "${TARGETS[@]}"; do
      read -r name url model <<<"$tgt"
      c0=$(cpu_ticks $SLUICE_PID)
      wrk_run "$kind-$name-$r" "$url" "$c" "$t" "$ROUND_SECONDS" MODEL="$model" \
        >> "$OUT/rounds-$kind-$name.jsonl"
      if [ "$kind" = tput ] && [ "$name" = sluice ]; then
        CPU_TICKS=$(( CPU_TICKS + $(cpu_ticks $SLUICE_PID) - c0 ))
      fi
    done
  done
}
# median KIND NAME -> one JSON summary: medians of the rates and latencies,
# sums of the requests and errors.
median() {
  node -e '
    const runs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
    const med = (k) => { const v = runs.map((r) => r[k]).sort((a, b) => a - b);
      const h = v.length >> 1; return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2; };
    const sum = (k) => runs.reduce((s, r) => s + r[k], 0);
    const out = { runs: runs.length };
    for (const k of ["rps", "p50_us", "p90_us", "p99_us", "mean_us"]) out[k] = med(k);
    for (const k of ["requests", "errors", "duration_us"]) out[k] = sum(k);
    console.log(JSON.stringify(out));' "$OUT/rounds-$1-$2.jsonl"
}

echo "bench: throughput at 32 connections ($ROUNDS interleaved rounds of ${ROUND_SECONDS}s)"
rounds tput 32 2
T_STATIC=$(median tput static); T_PROXY=$(median tput proxy); T_SLUICE=$(median tput sluice)
T_FLOOR=$(median tput floor)
C_MEM=$(median tput cache-mem); C_REDIS=$(median tput cache-redis)
R_ONE=$(median tput redis-one); R_CLUSTER=$(median tput redis-cluster); R_TLS=$(median tput redis-tls)

echo "bench: latency at 1 connection ($ROUNDS interleaved rounds of ${ROUND_SECONDS}s)"
rounds lat 1 1
L_STATIC=$(median lat static); L_PROXY=$(median lat proxy); L_SLUICE=$(median lat sluice)
L_FLOOR=$(median lat floor)
CL_MEM=$(median lat cache-mem); CL_REDIS=$(median lat cache-redis)
RL_ONE=$(median lat redis-one); RL_CLUSTER=$(median lat redis-cluster); RL_TLS=$(median lat redis-tls)
AFTER_RSS_KB=$(rss_kb $SLUICE_PID)

# Tracing: the same proxied request through four fresh sluices, started
# alike and differing only in their otel block: none, tracing every request
# (sample_ratio 1), the same without sending providers the trace context
# (propagate = false) and tracing none (0), exporting to the static nginx (it
# answers 200 to any POST, as a collector would), in interleaved rounds. The
# CPU of the whole process (the exporter's thread included) per request is
# compared. (The long-running sluice above is not the baseline: a fresh
# process differs from it by several percent with no otel block at all.)
# CPU time on a shared machine moves by several percent between runs, so the
# instructions each request executes are counted too, under callgrind
# (bench/instr.sh), which does not move.
echo "bench: tracing CPU per proxied request ($ROUNDS interleaved rounds of ${ROUND_SECONDS}s)"
OTEL_VARIANTS=(none 1 1np 0)
declare -A OTEL_PIDS OTEL_PORTS OTEL_BLOCK=(
  [none]=""
  [1]="sample_ratio = 1;"
  [1np]="sample_ratio = 1; propagate = false;"
  [0]="sample_ratio = 0;")
for v in "${OTEL_VARIANTS[@]}"; do
  OTEL_PORTS[$v]=$(free_port)
  sed -e "s/$P_SLUICE/${OTEL_PORTS[$v]}/" -e "s|sluice.log|sluice-otel$v.log|" \
    "$OUT/sluice.conf" > "$OUT/sluice-otel$v.conf"
  [ "$v" = none ] ||
    echo "otel = { endpoint = \"http://127.0.0.1:$P_STATIC\"; ${OTEL_BLOCK[$v]} max_queue = 200000; };" \
      >> "$OUT/sluice-otel$v.conf"
  build/sluice --config "$OUT/sluice-otel$v.conf" &
  OTEL_PIDS[$v]=$!
  pids+=($!)
  wait_port "${OTEL_PORTS[$v]}"
done
declare -A OT_TICKS OT_REQS
for v in "${OTEL_VARIANTS[@]}"; do
  OT_TICKS[$v]=0; OT_REQS[$v]=0
  wrk_run "otel-warm-$v" "http://127.0.0.1:${OTEL_PORTS[$v]}" 32 2 2 MODEL=bench-nocache >/dev/null
done
for r in $(seq "$ROUNDS"); do
  for v in "${OTEL_VARIANTS[@]}"; do
    c0=$(cpu_ticks "${OTEL_PIDS[$v]}")
    j=$(wrk_run "otel-$v-$r" "http://127.0.0.1:${OTEL_PORTS[$v]}" 32 2 "$ROUND_SECONDS" MODEL=bench-nocache)
    OT_TICKS[$v]=$(( ${OT_TICKS[$v]} + $(cpu_ticks "${OTEL_PIDS[$v]}") - c0 ))
    OT_REQS[$v]=$(( ${OT_REQS[$v]} + $(field "$j" requests) ))
  done
done
sleep 2 # the last batch goes out
otel_spans() { curl -s "http://127.0.0.1:$1/metrics" | awk -v r="$2" '$1 == "sluice_otel_spans_total{result=\"" r "\"}" {print $2}' | head -1; }
R1_EXPORTED=$(otel_spans "${OTEL_PORTS[1]}" exported || true)
R1_DROPPED=$(otel_spans "${OTEL_PORTS[1]}" dropped || true)
for v in "${OTEL_VARIANTS[@]}"; do kill "${OTEL_PIDS[$v]}" 2>/dev/null || true; done
for v in "${OTEL_VARIANTS[@]}"; do wait "${OTEL_PIDS[$v]}" 2>/dev/null || true; done
echo "bench: tracing, instructions per proxied request (callgrind)"
declare -A OT_INSTR
for v in "${OTEL_VARIANTS[@]}"; do
  OT_INSTR[$v]=$(MODEL=bench-nocache bench/instr.sh "$OUT/sluice-otel$v.conf" "${OTEL_PORTS[$v]}" 8)
done
OTEL_JSON=$(node -e '
const [ticks, reqs, instr, exported, dropped] = process.argv.slice(1).map((s) => s.split(" "));
const names = ["none", "r1", "r1np", "r0"], o = {};
names.forEach((n, i) => {
  o[`${n}_ticks`] = +ticks[i]; o[`${n}_reqs`] = +reqs[i];
  const c = JSON.parse(instr[i]); o[`${n}_instr`] = c.instr; o[`${n}_instr_reqs`] = c.requests;
});
o.r1_exported = +exported[0] || 0; o.r1_dropped = +dropped[0] || 0;
console.log(JSON.stringify(o));' \
  "${OT_TICKS[none]} ${OT_TICKS[1]} ${OT_TICKS[1np]} ${OT_TICKS[0]}" \
  "${OT_REQS[none]} ${OT_REQS[1]} ${OT_REQS[1np]} ${OT_REQS[0]}" \
  "${OT_INSTR[none]} ${OT_INSTR[1]} ${OT_INSTR[1np]} ${OT_INSTR[0]}" \
  "${R1_EXPORTED:-0}" "${R1_DROPPED:-0}")

echo "bench: scorer time per stage (learned weights trained on the test fixture)"
mkdir -p "$OUT/tune"
for peers in "" "mixtral-8x7b"; do
  build/sluice-tune train --data tests/fixtures/routerbench/arc-challenge.jsonl \
    --prices tests/fixtures/routerbench/prices.json --folds 5 --model Yi-34B \
    ${peers:+--peers "$peers"} --out "$OUT/tune/yi${peers:++peer}.w" >/dev/null 2>&1
done
SCORER=$(build/bench-scorer "$OUT/tune/yi.w" tests/fixtures/routerbench/arc-challenge.jsonl)
SCORER_PEER=$(build/bench-scorer "$OUT/tune/yi+peer.w" tests/fixtures/routerbench/arc-challenge.jsonl)

echo "bench: metrics cost per request"
METRICS_NS=$(build/bench-metrics 2000000 1 | sed -n 's/^1 thread(s): \([0-9.]*\) ns.*/\1/p')

echo "bench: reading JSON on the hot path"
JSON_READ=$(build/bench-json 200000)

echo "bench: $STREAMS concurrent streams (1 s first byte, 20 chunks 50 ms apart)"
build/sluice-mock --listen "127.0.0.1:$P_MOCK" --quiet --first-byte-ms 1000 --chunks 20 --interval-ms 50 >/dev/null &
pids+=($!)
cat > "$OUT/sluice-stream.conf" <<CONF
listen = "127.0.0.1:$P_SLUICE_STREAM";
max_connections = 20000;
log = { format = "json"; path = "$OUT/sluice-stream.log"; level = "info"; };
providers = ( { name = "mock"; type = "openai"; base_url = "http://127.0.0.1:$P_MOCK/v1"; } );
models = ( { name = "stream"; provider = "mock"; id = "mock-small"; input_per_mtok = 0.15; output_per_mtok = 0.60; } );
routes = ( { name = "stream-nocache"; model = "stream"; cache = false; } );
CONF
build/sluice --config "$OUT/sluice-stream.conf" &
STREAM_PID=$!
pids+=($STREAM_PID)
wait_port "$P_MOCK"; wait_port "$P_SLUICE_STREAM"
sleep 0.3
S_STREAM=$(wrk_run streams "http://127.0.0.1:$P_SLUICE_STREAM" "$STREAMS" 2 20 MODEL=stream-nocache STREAM=1)
STREAM_HWM_KB=$(hwm_kb $STREAM_PID)
kill "$STREAM_PID" 2>/dev/null || true

# Memory per open stream: a fresh sluice of the same config holds 1,000,
# 4,000 and 8,000 streams open at once (one event a second each), and its
# RSS is read while they flow (bench/streams.mjs).
echo "bench: memory per open stream at $STREAM_LEVELS streams held open"
P_SLUICE_HOLD=$(free_port)
sed -e "s/$P_SLUICE_STREAM/$P_SLUICE_HOLD/" -e "s|sluice-stream.log|sluice-hold.log|" \
  "$OUT/sluice-stream.conf" > "$OUT/sluice-hold.conf"
build/sluice --config "$OUT/sluice-hold.conf" &
HOLD_PID=$!
pids+=($HOLD_PID)
wait_port "$P_SLUICE_HOLD"
sleep 0.3
HOLD_IDLE_KB=$(rss_kb $HOLD_PID)
STREAM_MEM=$(node bench/streams.mjs "http://127.0.0.1:$P_SLUICE_HOLD" "$HOLD_PID" stream-nocache "$STREAM_LEVELS" |
  node -e 'console.log(JSON.stringify(require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse)))')

node bench/report.mjs "$OUT/RESULTS.json" <<JSON
{"static":$T_STATIC,"proxy":$T_PROXY,"sluice":$T_SLUICE,"floor":$T_FLOOR,"floor_threads":$FLOOR_THREADS,
 "lat_static":$L_STATIC,"lat_proxy":$L_PROXY,"lat_sluice":$L_SLUICE,"lat_floor":$L_FLOOR,
 "idle_rss_kb":$IDLE_RSS_KB,"after_rss_kb":$AFTER_RSS_KB,
 "cache_mem":$C_MEM,"cache_mem_lat":$CL_MEM,"cache_redis":$C_REDIS,"cache_redis_lat":$CL_REDIS,
 "redis_one":$R_ONE,"redis_cluster":$R_CLUSTER,"redis_tls":$R_TLS,
 "redis_one_lat":$RL_ONE,"redis_cluster_lat":$RL_CLUSTER,"redis_tls_lat":$RL_TLS,
 "scorer":$SCORER,
 "scorer_peer":$SCORER_PEER,
 "json":$JSON_READ,
 "sluice_cpu_ticks":$CPU_TICKS,"clk_tck":$(getconf CLK_TCK),"metrics_ns":$METRICS_NS,
 "otel":$OTEL_JSON,
 "streams":$S_STREAM,"stream_conns":$STREAMS,"stream_hwm_kb":$STREAM_HWM_KB,
 "stream_mem":$STREAM_MEM,"hold_idle_kb":$HOLD_IDLE_KB,
 "seconds":$ROUND_SECONDS,"rounds":$ROUNDS,"cores":$(nproc)}
JSON
echo "bench: wrote bench/RESULTS.md"
