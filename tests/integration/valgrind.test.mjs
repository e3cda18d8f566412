// sluice under valgrind's memcheck. The normal build (-O2 -g, no sanitizer)
// runs three short sessions against sluice-mock: the memory cache with
// fallback, retries, errors, a client that leaves, reloads and a drain; the
// Redis cache and a key's limits through an outage and a reconnect; client
// keys, limits, /metrics, usage and the trace. Each ends with SIGTERM, and
// valgrind must see no memory error and no definitely lost block: sluice
// exits 0, not 99 (--error-exitcode=99 --errors-for-leak-kinds=definite).
// Skipped when valgrind is not on PATH (a failure in CI) and for an ASan
// build. valgrind makes sluice 20-50x slower: upstream timeouts are
// stretched by VG, and every wait is generous.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import {
  BUILD, SLOW, SANITIZED, startMock, startRedis, startProcess, stopProcess, tmpDir, logLines, waitFor, sleep,
} from './helpers.mjs';

const HAVE_VALGRIND = !spawnSync('valgrind', ['--version'], { stdio: 'ignore' }).error;
// A sanitizer build (make asan) cannot run under valgrind (SANITIZED).
// In CI a missing valgrind is a failure, not a silent skip: scripts/deps.sh
// installs it.
const SKIP = SANITIZED ? 'an ASan build cannot run under valgrind (make integration runs this test)'
  : !HAVE_VALGRIND && !process.env.CI ? 'valgrind is not on PATH' : false;
// How much slower than native sluice runs under valgrind (times SLOW, which
// a slow CI machine may set too).
const VG = 30;
const ADMIN = 'vg-admin-key';
const MSG = [{ role: 'user', content: 'Hello from valgrind' }];

const VALGRIND_ARGS = [
  '--leak-check=full', '--errors-for-leak-kinds=definite', '--error-exitcode=99',
  '--track-fds=no', '--num-callers=40',
];

/** A gateway.conf like helpers.mjs's mockConf, with valgrind-sized timeouts. */
function vgConf(mockBase, extra = '') {
  const ms = (n) => Math.round(n * VG * SLOW);
  return `
log = { format = "json"; path = "-"; level = "info"; };
providers = (
  { name = "mock"; type = "openai"; base_url = "${mockBase}"; api_key_env = "MOCK_KEY";
    timeout_ms = ${ms(20000)}; connect_timeout_ms = ${ms(2000)}; first_byte_timeout_ms = ${ms(5000)};
    idle_timeout_ms = ${ms(5000)}; retries = 1; retry_backoff_ms = 20; retry_max_backoff_ms = 100; }
);
models = (
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 0.15; output_per_mtok = 0.60; },
  { name = "large"; provider = "mock"; id = "mock-large"; input_per_mtok = 2.50; output_per_mtok = 10.00; }
);
routes = (
  { name = "reliable"; fallback = ( "small", "large" ); }
);
admin = { listen = "127.0.0.1:0"; };
${extra}
`;
}

/** Start build/sluice under valgrind on conf text; the listen lines are on stdout. */
async function startUnderValgrind(confText) {
  assert.ok(HAVE_VALGRIND, 'valgrind is not on PATH: add it to scripts/deps.sh');
  const dir = tmpDir();
  const conf = join(dir, 'gateway.conf');
  writeFileSync(conf, confText);
  const p = await startProcess('valgrind',
    [...VALGRIND_ARGS, join(BUILD, 'sluice'), '--config', conf, '--listen', '127.0.0.1:0'],
    {
      ready: /listening on (http:\/\/[\d.]+:\d+)[\s\S]*admin API listening on (http:\/\/[\d.]+:\d+)/,
      env: { MOCK_KEY: 'sk-test-123', SLUICE_ADMIN_KEY: ADMIN },
      timeoutMs: 120000,
    });
  return { ...p, url: p.match[1], base: `${p.match[1]}/v1`, adminUrl: p.match[2], conf };
}

function client(gw, apiKey = gw.apiKey ?? 'x') {
  return new OpenAI({ baseURL: gw.base, apiKey, maxRetries: 0, timeout: 120000 * SLOW });
}

async function chat(gw, body, headers = {}) {
  const { data, response } = await client(gw).chat.completions.create(body, { headers }).withResponse();
  return { data, h: response.headers };
}

async function streamText(gw, body) {
  const { data: stream, response } = await client(gw).chat.completions
    .create({ ...body, stream: true }).withResponse();
  let text = '';
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
  return { text, h: response.headers };
}

function admin(gw, path, body, method = 'POST') {
  return fetch(`${gw.adminUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Wait until the process has printed `re` at least n times. */
function waitOutput(gw, re, n = 1) {
  const g = new RegExp(re.source, 'g');
  return waitFor(() => (gw.output().match(g) ?? []).length >= n, { timeoutMs: 60000, stepMs: 100 });
}

function requestLine(gw, pred) {
  return waitFor(() => logLines(gw).find((l) => l.msg === 'request' && pred(l)),
    { timeoutMs: 60000, stepMs: 100 });
}

/** valgrind's own lines (==PID== ...), for failure messages. */
function valgrindReport(gw) {
  return gw.output().split('\n').filter((l) => /^==\d+==/.test(l)).join('\n');
}

/** SIGTERM, then check the exit code and valgrind's verdict. */
async function stopAndCheck(gw) {
  const { code, signal } = await stopProcess(gw, 'SIGTERM', 180000);
  const report = valgrindReport(gw);
  assert.equal(signal, null, `sluice was killed by ${signal}:\n${report}`);
  assert.notEqual(code, 99, `valgrind found memory errors or definite leaks:\n${report}`);
  assert.equal(code, 0, `exit code ${code}:\n${report}`);
  assert.match(report, /ERROR SUMMARY: 0 errors from 0 contexts/, report);
  assert.match(report,
    /definitely lost: 0 bytes in 0 blocks|All heap blocks were freed -- no leaks are possible/, report);
  assert.match(gw.output(), /"msg":"stopped"/, 'sluice went through its drain and stop');
}

test('under valgrind: chat, stream, cache, fallback, errors, reload and drain leave no leak',
  { skip: SKIP, timeout: 900000 * SLOW }, async () => {
    const mock = await startMock();
    let gw;
    try {
      gw = await startUnderValgrind(vgConf(mock.base,
        'cache = { backend = "memory"; max_bytes = 8388608; };'));

      // a plain chat: a miss
      const a = await chat(gw, { model: 'reliable', messages: MSG });
      assert.equal(a.h.get('x-sluice-cache'), 'MISS');
      assert.equal(a.h.get('x-sluice-model'), 'small');
      assert.ok(a.data.choices[0].message.content.length > 0);
      // the same again: a hit that costs nothing
      const b = await chat(gw, { model: 'reliable', messages: MSG });
      assert.equal(b.h.get('x-sluice-cache'), 'HIT');
      assert.equal(b.data.choices[0].message.content, a.data.choices[0].message.content);
      assert.equal(Number(b.h.get('x-sluice-cost')), 0);
      // a streamed chat (a miss, stored assembled), then its replay as SSE
      const smsg = [{ role: 'user', content: 'Stream under valgrind' }];
      const s1 = await streamText(gw, { model: 'reliable', messages: smsg, mock: { chunks: 4 } });
      assert.ok(s1.text.length > 0);
      const s2 = await streamText(gw, { model: 'reliable', messages: smsg, mock: { chunks: 4 } });
      assert.equal(s2.h.get('x-sluice-cache'), 'HIT');
      assert.equal(s2.text, s1.text);

      // an upstream 500 on the first model: the route falls back to the second
      const f = await chat(gw, { model: 'reliable', messages: MSG, mock: { status: 500, model: 'mock-small' } });
      assert.equal(f.h.get('x-sluice-model'), 'large');
      // a stream whose first upstream resets before any byte: fallback too
      const fs = await streamText(gw, { model: 'reliable', messages: MSG, mock: { fault: 'reset', model: 'mock-small' } });
      assert.ok(fs.text.length > 0);
      // one 503 then success: a retry on the same model (backoff timer)
      const r = await chat(gw, {
        model: 'small', messages: MSG,
        mock: { status: 503, fail_times: 1, key: `vg-retry-${Date.now()}` },
      });
      assert.equal(r.h.get('x-sluice-model'), 'small');
      await requestLine(gw, (l) => l.retries === 1);
      // a 4xx from the upstream passes through as is
      await assert.rejects(
        chat(gw, { model: 'reliable', messages: MSG, mock: { status: 400, error_message: 'context too long' } }),
        (e) => e.status === 400 && /context too long/.test(e.message));

      // our own errors: unknown model, unknown path, bad JSON
      await assert.rejects(chat(gw, { model: 'no-such-model', messages: MSG }),
        (e) => e.status === 404 && e.code === 'model_not_found');
      let res = await fetch(`${gw.url}/v1/nothing-here`);
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error.code, 'not_found');
      res = await fetch(`${gw.base}/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"model": ',
      });
      assert.equal(res.status, 400);
      await res.text();

      // a client that leaves in the middle of a stream: the run is cancelled
      const ac = new AbortController();
      res = await fetch(`${gw.base}/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: ac.signal,
        body: JSON.stringify({ model: 'small', messages: MSG, stream: true, mock: { chunks: 50, interval_ms: 200 } }),
      });
      const reader = res.body.getReader();
      await reader.read();
      ac.abort();
      await requestLine(gw, (l) => l.status === 200 && l.client === 'aborted');

      // reload by SIGHUP, with new cache settings: the old cache is freed
      writeFileSync(gw.conf, vgConf(mock.base, 'cache = { backend = "memory"; max_bytes = 4194304; };'));
      gw.proc.kill('SIGHUP');
      await waitOutput(gw, /"msg":"reloaded /);
      assert.equal((await chat(gw, { model: 'reliable', messages: MSG })).h.get('x-sluice-cache'), 'MISS',
        'new cache settings: the cache starts empty');
      // a broken file is refused and the old config stays
      writeFileSync(gw.conf, vgConf(mock.base, 'no_such_key = 1;'));
      gw.proc.kill('SIGHUP');
      await waitOutput(gw, /reload refused/);
      assert.equal((await chat(gw, { model: 'reliable', messages: MSG })).h.get('x-sluice-cache'), 'HIT');
      // reload and purge through the admin API
      writeFileSync(gw.conf, vgConf(mock.base, 'cache = { backend = "memory"; max_bytes = 4194304; };'));
      res = await admin(gw, '/admin/reload');
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal((await res.json()).reloaded, true);
      res = await admin(gw, '/admin/cache/purge', { namespace: 'default' });
      assert.equal(res.status, 200);
      assert.ok((await res.json()).purged >= 1);

      // SIGTERM with a stream in flight: it finishes, then sluice exits 0
      const { data: stream } = await client(gw).chat.completions.create({
        model: 'small', messages: MSG, stream: true, mock: { chunks: 6, interval_ms: 200 },
      }).withResponse();
      const it = stream[Symbol.asyncIterator]();
      await it.next();
      const stopped = stopAndCheck(gw);
      let n = 1;
      for (;;) {
        const { done } = await it.next();
        if (done) break;
        n++;
      }
      assert.ok(n >= 6, `the in-flight stream finished during the drain (${n} chunks)`);
      await stopped;
      gw = null;
    } finally {
      if (gw) await stopProcess(gw, 'SIGKILL').catch(() => {});
      await mock.stop();
    }
  });

test('under valgrind: the Redis cache and limits, their outage and reconnect leave no leak',
  { skip: SKIP, timeout: 900000 * SLOW }, async () => {
    const sha = (k) => createHash('sha256').update(k).digest('hex');
    const mock = await startMock();
    let redis = await startRedis();
    let gw;
    try {
      // A key with limits: its counters live in the same Redis (Lua scripts).
      gw = await startUnderValgrind(vgConf(mock.base,
        `cache = { backend = "redis"; url = "${redis.url}"; timeout_ms = ${2000 * SLOW}; };
keys = ( { name = "vg-r"; key_sha256 = "${sha('sk-vg-r')}"; rpm = 100000; tpm = 100000000; budget_usd = 1000.0; } );`));
      gw.apiKey = 'sk-vg-r';
      // The first requests may find the connection still coming up (fail
      // open: ERROR); a fresh question each time, so a late store cannot
      // turn the awaited MISS into a HIT.
      const m = await waitFor(async () => {
        const q = [{ role: 'user', content: `redis under valgrind ${Date.now()} ${Math.random()}` }];
        return (await chat(gw, { model: 'small', messages: q })).h.get('x-sluice-cache') === 'MISS' && q;
      }, { timeoutMs: 60000, stepMs: 200 });
      assert.equal((await chat(gw, { model: 'small', messages: m })).h.get('x-sluice-cache'), 'HIT');
      const s = await streamText(gw, { model: 'small', messages: m });
      assert.equal(s.h.get('x-sluice-cache'), 'HIT');
      // the key's answers live in its tenant's namespace, "t.<hex>/default"
      const ns = s.h.get('x-sluice-cache-key').replace(/^sluice:c1:(.*):[0-9a-f]{64}$/, '$1');
      assert.match(ns, /^t\.[0-9a-f]+\/default$/);
      let res = await admin(gw, '/admin/cache/purge', { namespace: ns });
      assert.equal(res.status, 200);
      assert.ok((await res.json()).purged >= 1);
      res = await admin(gw, '/admin/usage', undefined, 'GET');
      assert.equal(res.status, 200);
      assert.ok((await res.json())['vg-r'].requests_this_minute.used >= 1);

      // Redis goes away: requests still succeed, without a cache
      const port = redis.port;
      await redis.stop();
      redis = null;
      const down = await waitFor(async () => {
        const r = await chat(gw, { model: 'small', messages: [{ role: 'user', content: `down ${Date.now()}` }] });
        return r.h.get('x-sluice-cache') === 'ERROR' && r;
      }, { timeoutMs: 60000, stepMs: 200 });
      assert.ok(down.data.choices[0].message.content.length > 0);
      res = await admin(gw, '/admin/cache/purge', { namespace: 'default' });
      assert.equal(res.status, 502, 'a purge with Redis down fails');
      await res.text();
      await sleep(500);

      // back up on the same port: sluice reconnects by itself
      redis = await startRedis(port);
      const m2 = await waitFor(async () => {
        const q = [{ role: 'user', content: `redis back ${Date.now()} ${Math.random()}` }];
        return (await chat(gw, { model: 'small', messages: q })).h.get('x-sluice-cache') === 'MISS' && q;
      }, { timeoutMs: 60000, stepMs: 300 });
      await waitFor(async () => (await chat(gw, { model: 'small', messages: m2 })).h.get('x-sluice-cache') === 'HIT',
        { timeoutMs: 60000, stepMs: 300 });

      await stopAndCheck(gw);
      gw = null;
    } finally {
      if (gw) await stopProcess(gw, 'SIGKILL').catch(() => {});
      await redis?.stop();
      await mock.stop();
    }
  });

test('under valgrind: client keys, limits, /metrics, usage and the trace leave no leak',
  { skip: SKIP, timeout: 900000 * SLOW }, async () => {
    const sha = (k) => createHash('sha256').update(k).digest('hex');
    const mock = await startMock();
    const trace = join(tmpDir(), 'trace.jsonl');
    let gw;
    try {
      gw = await startUnderValgrind(vgConf(mock.base, `
trace = { path = "${trace}"; include_content = true; };
keys = (
  { name = "vg-a"; key_sha256 = "${sha('sk-vg-a')}"; rpm = 3; },
  { name = "vg-b"; key_sha256 = "${sha('sk-vg-b')}"; routes = ( "small" ); budget_usd = 0.00001; }
);`));
      await assert.rejects(chat(gw, { model: 'small', messages: MSG }),
        (e) => e.status === 401 && e.code === 'invalid_api_key');
      // rpm = 3 a calendar minute: within a few requests one is refused
      const a = client(gw, 'sk-vg-a');
      let refused = null;
      for (let i = 0; i < 8 && !refused; i++) {
        await a.chat.completions.create({ model: 'reliable', messages: [{ role: 'user', content: `rpm ${i}` }] })
          .catch((e) => { refused = e; });
      }
      assert.equal(refused?.status, 429);
      assert.equal(refused.code, 'rate_limit_exceeded');
      const b = client(gw, 'sk-vg-b');
      await assert.rejects(b.chat.completions.create({ model: 'reliable', messages: MSG }),
        (e) => e.status === 403 && e.code === 'route_not_allowed');
      // A request holds its estimate (max_tokens bounds it) against the budget: a few fit.
      await b.chat.completions.create({ model: 'small', max_tokens: 2, messages: [{ role: 'user', content: 'spend' }] });
      await waitFor(async () => {
        try {
          await b.chat.completions.create({ model: 'small', max_tokens: 2, messages: [{ role: 'user', content: `spend ${Date.now()}` }] });
          return false;
        } catch (e) {
          return e.status === 429 && e.code === 'insufficient_quota';
        }
      }, { timeoutMs: 60000, stepMs: 200 });
      let res = await fetch(`${gw.url}/metrics`);
      assert.equal(res.status, 401, 'with keys, the public /metrics needs the admin key');
      res = await fetch(`${gw.adminUrl}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /sluice_requests_total/);
      res = await admin(gw, '/admin/usage', undefined, 'GET');
      assert.equal(res.status, 200);
      assert.ok((await res.json())['vg-a']);
      gw.proc.kill('SIGHUP');
      await waitOutput(gw, /"msg":"reloaded /);
      await stopAndCheck(gw);
      gw = null;
      assert.ok(readFileSync(trace, 'utf8').split('\n').filter(Boolean).length >= 2, 'trace records');
    } finally {
      if (gw) await stopProcess(gw, 'SIGKILL').catch(() => {});
      await mock.stop();
    }
  });
