// Redis with failover, as production runs it: Sentinel (a master, a replica
// and three sentinels) and Cluster (three masters with a replica each),
// started here on loopback. A master is killed under load: no client request
// fails, the gateway follows the new master, and limits hold within what
// docs/OPERATIONS.md promises during a failover (requests admitted while
// Redis cannot answer are admitted uncounted, and say so in
// x-ratelimit-remaining-requests; counted admissions never pass the limit).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import {
  startMock, startGateway, startProcess, stopProcess, freePort, mockConf, tmpDir, waitFor, sleep, SLOW,
} from './helpers.mjs';

const ADMIN = 'admin-ha-1';
const sha = (k) => createHash('sha256').update(k).digest('hex');
const KEYS = { open: 'sk-ha-open', burst: 'sk-ha-burst' };
const BURST_RPM = 40;
let mock;

const cli = (port, ...a) => execFileSync('redis-cli', ['-p', String(port), ...a], { encoding: 'utf8' }).trim();

async function redisNode(args, dir) {
  const port = await freePort();
  const p = await startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir, ...args], { ready: /Ready to accept connections/ });
  return { ...p, port, addr: `127.0.0.1:${port}`, stop: () => stopProcess(p, 'SIGKILL') };
}

function gwConf(redisBlock, extra = '') {
  return mockConf(mock.base, `
${redisBlock}
cache = { backend = "redis"; local_ttl_ms = 0; };
admin = { listen = "127.0.0.1:0"; };
keys = (
  { name = "open"; key_sha256 = "${sha(KEYS.open)}"; },
  { name = "burst"; key_sha256 = "${sha(KEYS.burst)}"; rpm = ${BURST_RPM}; }
);
${extra}`);
}

const client = (gw, key = KEYS.open) => new OpenAI({ baseURL: gw.base, apiKey: key, maxRetries: 0 });

async function chat(gw, content, { key, ns } = {}) {
  const { data, response } = await client(gw, key).chat.completions
    .create({ model: 'small', messages: [{ role: 'user', content }] },
      { headers: ns ? { 'x-sluice-cache-namespace': ns } : {} }).withResponse();
  assert.ok(data.choices[0].message.content.length > 0);
  return { cache: response.headers.get('x-sluice-cache'), h: response.headers };
}

async function readyz(gw) {
  const r = await fetch(`${gw.url}/readyz`);
  assert.equal(r.status, 200);
  return (await r.json()).redis;
}

/**
 * Requests from `workers` loops over the gateways until stop() (bounded:
 * at most maxMs). Half repeat a few prompts (cache hits), half are new.
 * Every outcome is kept: status, cache status, rate-limit headers.
 */
function load(gws, { workers = 4, key = KEYS.open, maxMs = 60000 } = {}) {
  const results = [];
  let stopped = false;
  const end = Date.now() + maxMs * SLOW;
  const loop = async (w) => {
    for (let i = 0; !stopped && Date.now() < end; i++) {
      const gw = gws[(w + i) % gws.length];
      const content = i % 2 ? `ha repeat ${i % 5}` : `ha new ${w} ${i} ${Math.random()}`;
      try {
        const { cache, h } = await chat(gw, content, { key });
        results.push({ status: 200, cache, at: Date.now(),
          remaining: h.get('x-ratelimit-remaining-requests'), limit: h.get('x-ratelimit-limit-requests') });
      } catch (e) {
        results.push({ status: e.status ?? 0, code: e.error?.code ?? e.code, message: e.message, at: Date.now() });
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => loop(w)));
  return { results, stop: async () => { stopped = true; await done; return results; } };
}

function assertNoFailure(results, { limited = false } = {}) {
  const bad = results.filter((r) => r.status !== 200 && !(limited && r.status === 429 && r.code === 'rate_limit_exceeded'));
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} of ${results.length} requests failed`);
}

/** Wait until at least `s` seconds are left in this minute (rpm windows). */
async function roomInMinute(s) {
  const left = 60 - (Date.now() / 1000) % 60;
  if (left < s) await sleep((left + 0.5) * 1000);
}

before(async () => {
  mock = await startMock();
});

after(async () => {
  await mock?.stop();
});

test('Sentinel: the master is killed under load; the gateway follows +switch-master and no request fails', async () => {
  const dir = tmpDir();
  const nodes = [];
  let gw;
  try {
    const master = await redisNode([], dir);
    nodes.push(master);
    const replica = await redisNode(['--replicaof', '127.0.0.1', String(master.port)], dir);
    nodes.push(replica);
    await waitFor(() => /master_link_status:up/.test(cli(replica.port, 'INFO', 'replication')), { timeoutMs: 10000, stepMs: 100 });
    const sentinels = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${i}.conf`);
      writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nprotected-mode no\ndir ${dir}\n`
        + `sentinel monitor mymaster 127.0.0.1 ${master.port} 2\n`
        + 'sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n');
      const s = await startProcess('redis-server', [conf, '--sentinel'], { ready: /\+monitor master/ });
      sentinels.push({ ...s, port });
      nodes.push({ stop: () => stopProcess(s, 'SIGKILL') });
    }
    // A failover needs the sentinels to know each other (hello messages).
    await waitFor(() => sentinels.every((s) => /num-other-sentinels\s+2/.test(cli(s.port, 'SENTINEL', 'master', 'mymaster'))),
      { timeoutMs: 20000, stepMs: 200 });

    gw = await startGateway(gwConf(`redis = { sentinels = ( ${sentinels.map((s) => `"127.0.0.1:${s.port}"`).join(', ')} );
      master_name = "mymaster"; timeout_ms = ${100 * SLOW}; };`), { env: { SLUICE_ADMIN_KEY: ADMIN } });
    await waitFor(async () => (await readyz(gw))?.state === 'up', { timeoutMs: 10000, stepMs: 50 });
    let r = await readyz(gw);
    assert.equal(r.mode, 'sentinel');
    assert.equal(r.master, master.addr);
    const q = `sentinel warm ${Math.random()}`;
    assert.equal((await chat(gw, q)).cache, 'MISS');
    await waitFor(async () => (await chat(gw, q)).cache === 'HIT', { timeoutMs: 3000, stepMs: 50 });

    const l = load([gw]);
    await sleep(500);
    const killedAt = Date.now();
    await master.stop();
    await waitFor(async () => (await readyz(gw)).master === replica.addr, { timeoutMs: 30000, stepMs: 50 });
    const movedMs = Date.now() - killedAt;
    await waitFor(async () => (await readyz(gw)).state === 'up', { timeoutMs: 10000, stepMs: 50 });
    await sleep(500);
    const results = await l.stop();
    assertNoFailure(results);
    assert.ok(results.length > 20, `load ran: ${results.length} requests`);
    const open = results.filter((x) => x.cache === 'ERROR');
    assert.ok(open.every((x) => x.at >= killedAt - 50), 'Redis errors only after the master was killed');
    // The cache works on the new master, and the old entry survived (replicated).
    assert.equal((await chat(gw, q)).cache, 'HIT');
    const q2 = `sentinel after ${Math.random()}`;
    assert.equal((await chat(gw, q2)).cache, 'MISS');
    await waitFor(async () => (await chat(gw, q2)).cache === 'HIT', { timeoutMs: 3000, stepMs: 50 });
    r = await readyz(gw);
    assert.equal(r.state, 'up');
    assert.match(gw.output(), new RegExp(`master of 'mymaster' moved from ${master.addr} to ${replica.addr}`));
    console.log(`# sentinel: ${results.length} requests, ${open.length} failed open; the gateway followed in ${movedMs} ms`);
  } finally {
    await gw?.stop();
    for (const n of nodes.reverse()) await n.stop();
  }
});

/** Three masters with a replica each; resolves to { nodes, masterOf(slot) }. */
async function startCluster(dir) {
  const nodes = [];
  for (let i = 0; i < 6; i++) {
    nodes.push(await redisNode(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`,
      '--cluster-node-timeout', '1000', '--cluster-replica-validity-factor', '0',
      '--repl-diskless-sync-delay', '0'], dir));
  }
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => n.addr), '--cluster-replicas', '1',
    '--cluster-yes'], { stdio: 'pipe' });
  await waitFor(() => nodes.every((n) => /cluster_state:ok/.test(cli(n.port, 'CLUSTER', 'INFO'))),
    { timeoutMs: 20000, stepMs: 200 });
  // Replicas copy their master only after the first sync (diskless, after
  // repl-diskless-sync-delay): until then a failover would lose everything.
  await waitFor(() => nodes.every((n) => {
    const info = cli(n.port, 'INFO', 'replication');
    return /role:master/.test(info) || /master_link_status:up/.test(info);
  }), { timeoutMs: 30000, stepMs: 200 });
  const masterOf = (slot, via = nodes.find((n) => n.proc.exitCode === null && n.proc.signalCode === null)) => {
    for (const line of cli(via.port, 'CLUSTER', 'NODES').split('\n')) {
      const f = line.split(' ');
      if (!f[2].includes('master') || f[2].includes('fail')) continue;
      for (const range of f.slice(8)) {
        const [a, b = a] = range.split('-').map(Number);
        if (slot >= a && slot <= b) return nodes.find((n) => n.addr === f[1].split('@')[0]);
      }
    }
    return null;
  };
  return { nodes, masterOf };
}

test('Cluster: hits, purges, limits and the trace across three masters; two gateways act as one', async () => {
  const dir = tmpDir();
  const { nodes } = await startCluster(dir);
  const c = gwConf(`redis = { cluster_nodes = ( "${nodes[0].addr}", "${nodes[1].addr}" ); timeout_ms = ${100 * SLOW}; };`,
    'trace = { stream = "sluice:test:trace"; };');
  const a = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  const b = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    for (const gw of [a, b]) await waitFor(async () => (await readyz(gw))?.state === 'up', { timeoutMs: 10000, stepMs: 50 });
    assert.equal((await readyz(a)).mode, 'cluster');
    // Answers stored by one gateway are hits on the other, whatever master holds them.
    const qs = Array.from({ length: 24 }, (_, i) => `cluster ${i} ${Math.random()}`);
    let ns;
    for (const q of qs) {
      const m = await chat(a, q, { ns: 'cl' });
      assert.equal(m.cache, 'MISS');
      ns = m.h.get('x-sluice-cache-key').split(':').slice(2, -1).join(':'); // the key's namespace
    }
    for (const q of qs) await waitFor(async () => (await chat(b, q, { ns: 'cl' })).cache === 'HIT', { timeoutMs: 3000, stepMs: 20 });
    const perMaster = nodes.map((n) => Number(cli(n.port, 'DBSIZE')));
    assert.ok(perMaster.filter((x) => x > 0).length >= 3, `entries on every master: ${perMaster}`);
    // A namespace purge reaches every master.
    const r = await fetch(`${a.adminUrl}/admin/cache/purge`, {
      method: 'POST', headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ namespace: ns }),
    });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).purged, qs.length);
    for (const q of qs.slice(0, 6)) assert.equal((await chat(b, q, { ns: 'cl' })).cache, 'MISS');

    // The admission script's keys share a slot (hash tag): no CROSSSLOT, the
    // limit is counted once across both gateways.
    await roomInMinute(15);
    let ok = 0;
    let refused = 0;
    for (let i = 0; i < BURST_RPM + 5; i++) {
      try {
        await chat(i % 2 ? a : b, `burst ${i} ${Math.random()}`, { key: KEYS.burst });
        ok++;
      } catch (e) {
        assert.equal(e.status, 429);
        refused++;
      }
    }
    assert.equal(ok, BURST_RPM);
    assert.equal(refused, 5);
    assert.doesNotMatch(a.output() + b.output(), /CROSSSLOT/);

    // The trace stream: one key, on one slot.
    await waitFor(() => Number(execFileSync('redis-cli', ['-c', '-p', String(nodes[0].port), 'XLEN', 'sluice:test:trace'],
      { encoding: 'utf8' }).trim()) > 0, { timeoutMs: 3000, stepMs: 50 });
  } finally {
    await a.stop();
    await b.stop();
    for (const n of nodes) await n.stop();
  }
});

test('Cluster: a master killed under load; no request fails, the replica is followed, limits hold', async () => {
  const dir = tmpDir();
  const { nodes, masterOf } = await startCluster(dir);
  const c = gwConf(`redis = { cluster_nodes = ( "${nodes[0].addr}", "${nodes[3].addr}" ); timeout_ms = ${100 * SLOW}; };`);
  const a = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  const b = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    for (const gw of [a, b]) await waitFor(async () => (await readyz(gw))?.state === 'up', { timeoutMs: 10000, stepMs: 50 });
    // The master that holds the limited key's counters dies.
    const slot = Number(cli(nodes[0].port, 'CLUSTER', 'KEYSLOT', '{burst}'));
    const victim = masterOf(slot);
    assert.ok(victim, 'a master serves the slot');
    await roomInMinute(25);
    const open = load([a, b]);
    const burst = load([a, b], { key: KEYS.burst, workers: 2 });
    await sleep(700);
    const killedAt = Date.now();
    await victim.stop();
    // The replica is promoted (node timeout 1 s) and the gateways find it.
    await waitFor(() => masterOf(slot) && masterOf(slot) !== victim, { timeoutMs: 30000, stepMs: 100 });
    for (const gw of [a, b]) await waitFor(async () => (await readyz(gw)).state === 'up', { timeoutMs: 15000, stepMs: 50 });
    const followedMs = Date.now() - killedAt;
    await sleep(700);
    const results = await open.stop();
    const limited = await burst.stop();
    assertNoFailure(results);
    assertNoFailure(limited, { limited: true });
    // What OPERATIONS.md promises: admissions counted in Redis never pass
    // the limit; the others were admitted while Redis could not answer, and
    // say so (remaining = limit).
    const admitted = limited.filter((x) => x.status === 200);
    const counted = admitted.filter((x) => Number(x.remaining) < BURST_RPM);
    const uncounted = admitted.filter((x) => Number(x.remaining) === BURST_RPM);
    assert.ok(counted.length <= BURST_RPM, `${counted.length} counted admissions for an rpm of ${BURST_RPM}`);
    assert.ok(uncounted.every((x) => x.at >= killedAt - 50), 'uncounted admissions only once the master was gone');
    assert.ok(limited.some((x) => x.status === 429 && x.at > killedAt + followedMs),
      'the limit holds again after the failover');
    // New entries land on the promoted master too.
    const q = `after failover ${Math.random()}`;
    assert.equal((await chat(a, q)).cache, 'MISS');
    await waitFor(async () => (await chat(b, q)).cache === 'HIT', { timeoutMs: 3000, stepMs: 50 });
    console.log(`# cluster: ${results.length + limited.length} requests, ${uncounted.length} admitted uncounted, `
      + `${results.filter((x) => x.cache === 'ERROR').length} cache errors; followed in ${followedMs} ms`);
  } finally {
    await a.stop();
    await b.stop();
    for (const n of nodes) await n.stop();
  }
});
