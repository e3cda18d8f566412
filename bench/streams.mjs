// Memory per open stream: hold N streamed chat completions open through a
// sluice at once and read the process's resident memory while they are all
// flowing.
//
//   node bench/streams.mjs URL PID MODEL N1,N2,... [HOLD_MS]
//
// For each N (in order, in one sluice): open N connections, POST a streamed
// request on each whose `mock` controls make sluice-mock send an event every
// second for minutes, wait until every stream has delivered its first
// event, let them flow for HOLD_MS (default 2000) so that every buffer has
// been used, then read VmRSS and /proc/PID/smaps_rollup, close them all and
// wait until sluice's in-flight gauge is back to its start. Prints one JSON
// line per N: { n, rss_kb, base_kb, kb_per_stream, anon_kb, ... }, where
// base_kb is the RSS before the first level (after a warm-up of a few
// streams) and kb_per_stream = (rss_kb - base_kb) / n. STREAMS_AT_PEAK, if
// set, is a shell command run while a level's streams are all open, with
// SLUICE_PID in its environment.
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';

const [url, pidArg, model, countsArg, holdArg] = process.argv.slice(2);
if (!url || !pidArg || !model || !countsArg) {
  console.error('usage: node bench/streams.mjs URL PID MODEL N1,N2,... [HOLD_MS]');
  process.exit(2);
}
const { hostname, port } = new URL(url);
const pid = Number(pidArg);
const counts = countsArg.split(',').map(Number);
const holdMs = Number(holdArg || 2000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const body = JSON.stringify({
  model,
  stream: true,
  messages: [{ role: 'user', content: 'Say hello in one short sentence.' }],
  // One event a second for up to ten minutes: the stream outlives the level.
  mock: { first_byte_ms: 0, chunks: 600, interval_ms: 1000 },
});
const request = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

function status(file) {
  const out = {};
  for (const line of readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\n')) {
    const m = line.match(/^(\w+):\s+(\d+)(?: kB)?$/);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// One stream: resolves when its first SSE event has arrived.
function open(sockets) {
  return new Promise((resolve, reject) => {
    const s = connect({ host: hostname, port: Number(port) });
    let seen = '';
    let first = false;
    s.setNoDelay(true);
    s.on('connect', () => s.write(request));
    s.on('data', (d) => {
      if (first) return; // later events are read and dropped
      seen += d.toString('latin1');
      if (!seen.startsWith('HTTP/1.1 200')) {
        if (seen.includes('\r\n\r\n')) reject(new Error(`not a stream: ${seen.slice(0, 300)}`));
        return;
      }
      if (seen.includes('data: ')) {
        first = true;
        seen = '';
        resolve();
      }
    });
    s.on('error', reject);
    s.on('close', () => { if (!first) reject(new Error('closed before the first event')); });
    sockets.push(s);
  });
}

async function inflight() {
  try {
    const r = await fetch(`${url}/metrics`);
    const m = (await r.text()).match(/^sluice_inflight_requests(?:\{[^}]*\})? (\d+)/m);
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

// Open n streams, at most 500 connecting at a time (the listen backlog).
async function level(n, warm = false) {
  const sockets = [];
  const waits = [];
  for (let i = 0; i < n; i += 500) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 500); j++) batch.push(open(sockets));
    waits.push(...batch);
    await Promise.all(batch);
  }
  await Promise.all(waits);
  await sleep(holdMs);
  const st = status('status');
  const roll = status('smaps_rollup');
  // A command to run while the streams are open (a profiler's snapshot).
  if (process.env.STREAMS_AT_PEAK && !warm) {
    execSync(process.env.STREAMS_AT_PEAK, { stdio: 'inherit', env: { ...process.env, SLUICE_PID: String(pid) } });
  }
  for (const s of sockets) s.destroy();
  return { st, roll };
}

async function drain(target) {
  for (let i = 0; i < 200; i++) {
    if ((await inflight()) <= target) return;
    await sleep(100);
  }
}

const start = await inflight();
await level(Math.min(50, counts[0]), true); // warm-up: curl's and OpenSSL's one-time setup
await drain(start);
await sleep(500);
const base = status('status').VmRSS;
for (const n of counts) {
  const { st, roll } = await level(n);
  console.log(JSON.stringify({
    n,
    rss_kb: st.VmRSS,
    base_kb: base,
    kb_per_stream: Number(((st.VmRSS - base) / n).toFixed(2)),
    hwm_kb: st.VmHWM,
    anon_kb: roll.Anonymous,
    private_dirty_kb: roll.Private_Dirty,
    threads: st.Threads,
  }));
  await drain(start);
  await sleep(500);
}
process.exit(0);
