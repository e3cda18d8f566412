// Turn the measurements of bench/run.sh (JSON on stdin) into bench/RESULTS.md:
// every figure next to the baseline measured in the same run, as a ratio,
// with the issue's target and whether it is met.
import { readFileSync, writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';

const m = JSON.parse(readFileSync(0, 'utf8'));
writeFileSync(process.argv[2], JSON.stringify(m, null, 2));

const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);
const us = (x) => `${(x / 1000).toFixed(3)} ms`;
const verdict = (ok) => (ok ? 'met' : '**NOT met**');
const rows = [];
const checks = [];
const check = (what, value, target, ok) => checks.push(`| ${what} | ${value} | ${target} | ${verdict(ok)} |`);

const tput = m.sluice.rps / m.proxy.rps;
rows.push(`| nginx static (the upstream) | ${f1(m.static.rps)} | ${us(m.static.p50_us)} | ${us(m.static.p99_us)} | ${m.static.errors} |`);
rows.push(`| nginx proxy_pass | ${f1(m.proxy.rps)} | ${us(m.proxy.p50_us)} | ${us(m.proxy.p99_us)} | ${m.proxy.errors} |`);
rows.push(`| sluice | ${f1(m.sluice.rps)} | ${us(m.sluice.p50_us)} | ${us(m.sluice.p99_us)} | ${m.sluice.errors} |`);
check('throughput at 32 connections, sluice / nginx proxy_pass', f2(tput), '≥ 0.70', tput >= 0.7 && m.sluice.errors === 0);

const addNginx = Math.max(1, m.lat_proxy.p50_us - m.lat_static.p50_us);
const addSluice = m.lat_sluice.p50_us - m.lat_static.p50_us;
const lat = addSluice / addNginx;
check('p50 added latency at 1 connection, sluice / nginx', `${f2(lat)} (${addSluice} µs vs ${addNginx} µs)`, '≤ 2.0', lat <= 2.0);
// The floor: bench/mhd_curl_proxy.c, libmicrohttpd and libcurl alone.
if (m.floor) {
  rows.push(`| floor: mhd_curl_proxy (${m.floor_threads} threads) | ${f1(m.floor.rps)} | ${us(m.floor.p50_us)} | ${us(m.floor.p99_us)} | ${m.floor.errors} |`);
  const floorTput = m.sluice.rps / m.floor.rps;
  check('throughput at 32 connections, sluice / floor (mhd_curl_proxy)', f2(floorTput), '≥ 0.90',
    floorTput >= 0.9 && m.sluice.errors === 0);
  const addFloor = Math.max(1, m.lat_floor.p50_us - m.lat_static.p50_us);
  const floorLat = addSluice / addFloor;
  check('p50 added latency at 1 connection, sluice / floor (mhd_curl_proxy)',
    `${f2(floorLat)} (${addSluice} µs vs ${addFloor} µs)`, '≤ 1.25', floorLat <= 1.25);
}
check('idle RSS', `${f1(m.idle_rss_kb / 1024)} MB (after load: ${f1(m.after_rss_kb / 1024)} MB)`, '≤ 10 MB', m.idle_rss_kb <= 10 * 1024);
const streamOk = m.streams.errors === 0 && m.stream_hwm_kb <= 200 * 1024;
check(`${m.stream_conns} concurrent streams: errors, peak RSS`,
  `${m.streams.errors} errors, ${m.streams.requests} streams done, ${f1(m.stream_hwm_kb / 1024)} MB`,
  '0 errors, ≤ 200 MB', streamOk);

// Memory per open stream: (RSS with N streams open - RSS before) / N, at
// the largest N held open (bench/streams.mjs).
const memLevels = m.stream_mem || [];
const memTop = memLevels[memLevels.length - 1];
if (memTop) {
  check(`memory per open stream at ${memTop.n} streams held open`,
    `${f1(memTop.kb_per_stream)} KB (${memLevels.map((l) => `${l.n}: ${f1(l.kb_per_stream)}`).join(', ')})`,
    '≤ 25 KB', memTop.kb_per_stream <= 25);
}

const memRatio = m.cache_mem.rps / m.proxy.rps;
const redisRatio = m.cache_redis.rps / m.proxy.rps;
const hitLat = m.cache_mem_lat.p50_us / m.lat_static.p50_us;
check('cache hits, memory backend: throughput / nginx proxy_pass (32 conns)', f2(memRatio), '≥ 1.50', memRatio >= 1.5 && m.cache_mem.errors === 0);
check('cache hits, Redis backend: throughput / nginx proxy_pass (32 conns)', f2(redisRatio), '≥ 1.00', redisRatio >= 1.0 && m.cache_redis.errors === 0);
check('cache hit p50 latency / nginx static p50 (1 conn)', `${f2(hitLat)} (${m.cache_mem_lat.p50_us} µs vs ${m.lat_static.p50_us} µs)`, '≤ 1.20', hitLat <= 1.2);
// Redis topologies, local_ttl_ms = 0: every hit is a round trip to Redis.
const clusterRatio = m.redis_cluster.rps / m.redis_one.rps;
const tlsRatio = m.redis_tls.rps / m.redis_one.rps;
check('cache hits through a 3-master Redis Cluster / one standalone Redis (32 conns, local_ttl_ms = 0)', f2(clusterRatio), '≥ 0.90',
  clusterRatio >= 0.9 && m.redis_cluster.errors === 0);
check('cache hits through TLS / plain Redis (32 conns, local_ttl_ms = 0)', f2(tlsRatio), '≥ 0.80',
  tlsRatio >= 0.8 && m.redis_tls.errors === 0);
check('rules scorer per stage', `${m.scorer.rules_mean_us.toFixed(2)} µs (p99 ${m.scorer.rules_p99_us.toFixed(2)})`, '< 50 µs', m.scorer.rules_mean_us < 50);
check('learned scorer per stage', `${m.scorer.learned_mean_us.toFixed(1)} µs (p99 ${m.scorer.learned_p99_us.toFixed(1)})`, '< 50 µs', m.scorer.learned_mean_us < 50);
if (m.scorer_peer) check('learned scorer with a peer per stage', `${m.scorer_peer.learned_mean_us.toFixed(1)} µs (p50 ${m.scorer_peer.learned_p50_us.toFixed(1)}, p99 ${m.scorer_peer.learned_p99_us.toFixed(1)})`, '< 50 µs', m.scorer_peer.learned_mean_us < 50);
// Metrics: what recording one request costs (bench-metrics, one thread),
// against the CPU sluice spent per request in the throughput run.
const cpuUsPerReq = (m.sluice_cpu_ticks / m.clk_tck) * 1e6 / m.sluice.requests;
const metricsShare = (m.metrics_ns / 1000) / cpuUsPerReq;
check('metrics cost / sluice CPU per proxied request', `${(metricsShare * 100).toFixed(2)} % (${m.metrics_ns} ns of ${f1(cpuUsPerReq)} µs)`, '< 1 %', metricsShare < 0.01);

// Tracing: what the whole sluice process spends per proxied request, traced
// at sample_ratio 1 (with and without sending providers the trace context)
// and 0, against the same request untraced, in one run: CPU time in
// interleaved rounds, and instructions counted by callgrind (which move
// with the machine's load by about 1.5%, CPU time by several percent).
let tracingMd = '';
if (m.otel) {
  const o = m.otel;
  const per = (ticks, reqs) => (ticks / m.clk_tck) * 1e6 / Math.max(1, reqs);
  const ins = (n) => o[`${n}_instr`] / Math.max(1, o[`${n}_instr_reqs`]);
  const cpuOf = (n) => per(o[`${n}_ticks`], o[`${n}_reqs`]);
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  const line = (n) => {
    const dc = (cpuOf(n) - cpuOf('none')) / cpuOf('none');
    const di = (ins(n) - ins('none')) / ins('none');
    return { dc, di, text: `${pct(di)} of instructions (${(ins(n) / 1000).toFixed(1)}k vs ${(ins('none') / 1000).toFixed(1)}k); CPU time ${pct(dc)} (${f1(cpuOf(n))} µs vs ${f1(cpuOf('none'))} µs)` };
  };
  const counted = ['none', 'r1', 'r1np', 'r0'].every((n) => ins(n) > 0);
  const r1 = line('r1'), r1np = line('r1np'), r0 = line('r0');
  const counts = ['none', 'r1', 'r1np', 'r0'].map((n) => o[`${n}_instr_reqs`]);
  const row = (what, n) => `| ${what} | ${(ins(n) / 1000).toFixed(1)}k | ${n === 'none' ? '—' : pct((ins(n) - ins('none')) / ins('none'))} | ${f1(cpuOf(n))} µs | ${n === 'none' ? '—' : pct((cpuOf(n) - cpuOf('none')) / cpuOf('none'))} |`;
  tracingMd = `## Tracing

The same proxied request through four fresh sluices that differ only in their \`otel\` block,
exporting to the static nginx. Instructions are counted by callgrind over ${Math.min(...counts)} to
${Math.max(...counts)} requests each (\`bench/instr.sh\`: user space only; they move by about 1.5% between runs, with
how many requests each wakeup finds waiting); CPU time is the whole process's (the exporter's
thread and the kernel included) over interleaved rounds, and moves by several percent.

| otel | instructions per request | over none | CPU per request | over none |
| --- | --- | --- | --- | --- |
${row('none (no otel block)', 'none')}
${row('sample_ratio 1', 'r1')}
${row('sample_ratio 1, propagate = false', 'r1np')}
${row('sample_ratio 0', 'r0')}

The difference between the second and third rows is the \`traceparent\` header sent to the
provider: libcurl 7.88 writes each request header through its own printf, one byte per call.
`;
  check('tracing at sample_ratio 1: cost per proxied request over none',
    `${r1.text}; ${o.r1_exported} spans exported, ${o.r1_dropped} dropped`, '< 5 %', counted && r1.di < 0.05);
  check('tracing at sample_ratio 1, propagate = false: cost per proxied request over none',
    r1np.text, '< 5 %', counted && r1np.di < 0.05);
  check('tracing at sample_ratio 0: cost per proxied request over none',
    r0.text, '< 1 % (nothing measurable)', counted && r0.di < 0.01);
}

let cpu = '';
try { cpu = execSync("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo").toString().trim(); } catch { /* */ }

const md = `# sluice benchmark results

Measured by \`make bench\` (bench/run.sh) on ${new Date().toISOString().slice(0, 10)}: ${m.cores} cores (${cpu}),
wrk. All the servers ran on the same machine as wrk, so the figures are only meaningful as
ratios within this run. Every throughput and latency figure is the median of ${m.rounds} runs of
${m.seconds} s (requests and errors are summed), and the runs of nginx and of sluice were
interleaved, so that a slow spell of the machine weighs on every target alike.

## Targets

| what | measured | target | |
| --- | --- | --- | --- |
${checks.join('\n')}

## Throughput at 32 connections (wrk -t2 -c32)

| server | req/s | p50 | p99 | errors |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

## Latency at 1 connection (wrk -t1 -c1)

| server | p50 | p90 | p99 | added p50 over the upstream |
| --- | --- | --- | --- | --- |
| nginx static (the upstream) | ${us(m.lat_static.p50_us)} | ${us(m.lat_static.p90_us)} | ${us(m.lat_static.p99_us)} | — |
| nginx proxy_pass | ${us(m.lat_proxy.p50_us)} | ${us(m.lat_proxy.p90_us)} | ${us(m.lat_proxy.p99_us)} | ${addNginx} µs |
| sluice | ${us(m.lat_sluice.p50_us)} | ${us(m.lat_sluice.p90_us)} | ${us(m.lat_sluice.p99_us)} | ${addSluice} µs |
${m.lat_floor ? `| floor: mhd_curl_proxy | ${us(m.lat_floor.p50_us)} | ${us(m.lat_floor.p90_us)} | ${us(m.lat_floor.p99_us)} | ${m.lat_floor.p50_us - m.lat_static.p50_us} µs |\n` : ''}
## Cache hits

One request repeated: every request after the first is a hit.

| backend | req/s at 32 conns | p50 at 32 | p50 at 1 conn | p99 at 1 conn | errors |
| --- | --- | --- | --- | --- | --- |
| memory (served by the HTTP worker itself) | ${f1(m.cache_mem.rps)} | ${us(m.cache_mem.p50_us)} | ${us(m.cache_mem_lat.p50_us)} | ${us(m.cache_mem_lat.p99_us)} | ${m.cache_mem.errors} |
| Redis (through the loop; local copy on, local_ttl_ms = 1000) | ${f1(m.cache_redis.rps)} | ${us(m.cache_redis.p50_us)} | ${us(m.cache_redis_lat.p50_us)} | ${us(m.cache_redis_lat.p99_us)} | ${m.cache_redis.errors} |

### Redis topologies

The same, with \`local_ttl_ms = 0\`: every hit is a round trip from the loop to Redis.

| Redis | req/s at 32 conns | / standalone | p50 at 32 | p50 at 1 conn | p99 at 1 conn | errors |
| --- | --- | --- | --- | --- | --- | --- |
| one standalone Redis | ${f1(m.redis_one.rps)} | 1.00 | ${us(m.redis_one.p50_us)} | ${us(m.redis_one_lat.p50_us)} | ${us(m.redis_one_lat.p99_us)} | ${m.redis_one.errors} |
| a Cluster of three masters | ${f1(m.redis_cluster.rps)} | ${f2(clusterRatio)} | ${us(m.redis_cluster.p50_us)} | ${us(m.redis_cluster_lat.p50_us)} | ${us(m.redis_cluster_lat.p99_us)} | ${m.redis_cluster.errors} |
| TLS (rediss://, a test CA) | ${f1(m.redis_tls.rps)} | ${f2(tlsRatio)} | ${us(m.redis_tls.p50_us)} | ${us(m.redis_tls_lat.p50_us)} | ${us(m.redis_tls_lat.p99_us)} | ${m.redis_tls.errors} |

## Scorers

Time one cascade stage spends in its scorer, over ${m.scorer.answers} recorded answers of the
arc-challenge test fixture (prompts of about 2 KB), 5 rounds: rules ${m.scorer.rules_mean_us.toFixed(2)} µs
mean (p99 ${m.scorer.rules_p99_us.toFixed(2)} µs), learned ${m.scorer.learned_mean_us.toFixed(1)} µs mean
(p99 ${m.scorer.learned_p99_us.toFixed(1)} µs)${m.scorer_peer ? `, learned reading one peer's answer
(5 fold models, a head over the text model and the answers) ${m.scorer_peer.learned_mean_us.toFixed(1)} µs mean
(p50 ${m.scorer_peer.learned_p50_us.toFixed(1)} µs, p99 ${m.scorer_peer.learned_p99_us.toFixed(1)} µs)` : ''}.

## Metrics overhead

Recording one request in every metric family (counters, the latency, TTFT
and upstream histograms, tokens and cost, by route, model, key, status and
cache result) takes ${m.metrics_ns} ns on one thread (\`build/bench-metrics\`,
best of 5). In the throughput runs sluice spent ${f1(cpuUsPerReq)} µs of CPU per
proxied request (all threads, user + system), so metrics are
${(metricsShare * 100).toFixed(2)} % of its work: the throughput they cost is at
most that share.

${tracingMd}
## Reading JSON on the hot path

\`build/bench-json\`, best of 5: reading a provider's ${m.json.answer_bytes}-byte chat completion
(usage, text, finish_reason) in place with jscan takes ${m.json.read_jscan_ns} ns; building
jansson's tree of it, as the loop did before, took ${m.json.read_tree_ns} ns
(${f1(m.json.read_tree_ns / m.json.read_jscan_ns)}×). The client's ${m.json.request_bytes}-byte request becomes the
same tree in ${m.json.request_jscan_ns} ns with jscan_build, against ${m.json.request_tree_ns} ns with
json_loadb (${f1(m.json.request_tree_ns / m.json.request_jscan_ns)}×).

## Concurrent streams

${m.stream_conns} connections held open by wrk for 20 s, each a streamed chat completion through
sluice from sluice-mock (1 s to the first byte, then 20 chunks 50 ms apart): ${m.streams.requests}
streams completed, ${m.streams.errors} errors, p50 ${us(m.streams.p50_us)}, p99 ${us(m.streams.p99_us)};
peak RSS of sluice ${f1(m.stream_hwm_kb / 1024)} MB.
${memLevels.length ? `
### Memory per open stream

A fresh sluice of the same config (idle RSS ${f1(m.hold_idle_kb / 1024)} MB) held N streams open at
once, each a streamed chat completion whose upstream sends an event a second, and its RSS was
read while every stream was flowing (\`bench/streams.mjs\`). Per stream is the RSS over what it
was before the first level (after a warm-up of 50 streams, ${f1(memLevels[0].base_kb / 1024)} MB), divided by N.
docs/ARCHITECTURE.md ("Memory per open stream") says what holds it.

| streams open | RSS | per stream |
| --- | --- | --- |
${memLevels.map((l) => `| ${l.n} | ${f1(l.rss_kb / 1024)} MB | ${f1(l.kb_per_stream)} KB |`).join('\n')}
` : ''}`;
writeFileSync(new URL('./RESULTS.md', import.meta.url), md);
process.stdout.write(checks.join('\n') + '\n');
