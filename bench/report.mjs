// Turn the measurements of bench/run.sh (JSON on stdin) into bench/RESULTS.md:
// every figure next to the baseline measured in the same run, as a ratio,
// with the target and whether it is met.
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
check('idle RSS', `${f1(m.idle_rss_kb / 1024)} MB (after load: ${f1(m.after_rss_kb / 1024)} MB)`, '≤ 10 MB', m.idle_rss_kb <= 10 * 1024);
const streamOk = m.streams.errors === 0 && m.stream_hwm_kb <= 200 * 1024;
check(`${m.stream_conns} concurrent streams: errors, peak RSS`,
  `${m.streams.errors} errors, ${m.streams.requests} streams done, ${f1(m.stream_hwm_kb / 1024)} MB`,
  '0 errors, ≤ 200 MB', streamOk);

let cpu = '';
try { cpu = execSync("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo").toString().trim(); } catch { /* */ }

const md = `# sluice benchmark results

Measured by \`make bench\` (bench/run.sh) on ${new Date().toISOString().slice(0, 10)}: ${m.cores} cores (${cpu}),
wrk, ${m.seconds} s per run. All three servers ran on the same machine as wrk, so the figures are
only meaningful as ratios within this run.

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

## Concurrent streams

${m.stream_conns} connections held open by wrk for 20 s, each a streamed chat completion through
sluice from sluice-mock (1 s to the first byte, then 20 chunks 50 ms apart): ${m.streams.requests}
streams completed, ${m.streams.errors} errors, p50 ${us(m.streams.p50_us)}, p99 ${us(m.streams.p99_us)};
peak RSS of sluice ${f1(m.stream_hwm_kb / 1024)} MB.
`;
writeFileSync(new URL('./RESULTS.md', import.meta.url), md);
process.stdout.write(checks.join('\n') + '\n');
