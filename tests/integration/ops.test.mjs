// Operations: client keys (tenants), rate limits and budgets (in memory and
// shared through Redis by two gateways), the admin API's usage report,
// Prometheus /metrics, and the inference table on a Redis Stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { startMock, startGateway, startRedis, tmpDir, waitFor, BUILD, SLOW } from './helpers.mjs';

const run = promisify(execFile);
const ADMIN = 'admin-ops-1';
const sha = (k) => createHash('sha256').update(k).digest('hex');
const KEYS = { a: 'sk-sluice-team-a-key', b: 'sk-sluice-team-b-key', rl: 'sk-rl', tok: 'sk-tok', cash: 'sk-cash', shared: 'sk-shared' };
const LONG = 'tenant-with-a-very-long-common-name-prefix-'.repeat(2); // over 80: hashed in Redis names
let mock;
let redis;
let seq = 0;
const msg = (t) => [{ role: 'user', content: `ops ${t} ${++seq}` }];

function conf({ cache = '', keysExtra = '', trace = '' } = {}) {
  return `
log = { format = "json"; path = "-"; level = "info"; };
admin = { listen = "127.0.0.1:0"; };
${cache}
${trace}
providers = ( { name = "mock"; base_url = "${mock.base}"; timeout_ms = ${20000 * SLOW}; } );
models = (
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 1000; output_per_mtok = 1000; },
  { name = "large"; provider = "mock"; id = "mock-large"; input_per_mtok = 1; output_per_mtok = 1; }
);
routes = ( { name = "smart"; fallback = ( "small", "large" ); } );
keys = (
  { name = "team-a"; key_sha256 = "${sha(KEYS.a)}"; routes = ( "smart", "small" ); },
  { name = "team-b"; key_sha256 = "${sha(KEYS.b)}"; },
  { name = "limited"; key_sha256 = "${sha(KEYS.rl)}"; rpm = 3; },
  { name = "tokens"; key_sha256 = "${sha(KEYS.tok)}"; tpm = 60; },
  { name = "cash"; key_sha256 = "${sha(KEYS.cash)}"; budget_usd = 0.05; budget_period = "day"; },
  { name = "${LONG}1"; key_sha256 = "${sha('sk-long-1')}"; rpm = 1; },
  { name = "${LONG}2"; key_sha256 = "${sha('sk-long-2')}"; rpm = 1; }
  ${keysExtra}
);
`;
}

const as = (gw, key) => new OpenAI({ baseURL: gw.base, apiKey: key, maxRetries: 0 });

before(async () => {
  mock = await startMock();
  redis = await startRedis();
});

after(async () => {
  await redis?.stop();
  await mock?.stop();
});

test('sluice keygen prints a key and the SHA-256 that goes in gateway.conf', async () => {
  const { stdout } = await run(join(BUILD, 'sluice'), ['keygen']);
  const key = stdout.match(/^key:\s+(\S+)/m)[1];
  const hash = stdout.match(/^key_sha256:\s+([0-9a-f]{64})$/m)[1];
  assert.match(key, /^sk-sluice-[0-9a-f]{64}$/);
  assert.equal(hash, sha(key));
  const again = await run(join(BUILD, 'sluice'), ['keygen']);
  assert.notEqual(again.stdout.match(/^key:\s+(\S+)/m)[1], key);
});

test('keys: every /v1 request needs one; routes are allowed per key; tenants never share cache', async () => {
  // on Redis, where both the cache and the limit counters are named after the key
  const gw = await startGateway(conf({ cache: `cache = { backend = "redis"; url = "${redis.url}"; };` }));
  try {
    await assert.rejects(as(gw, 'wrong').chat.completions.create({ model: 'smart', messages: msg('k') }),
      (e) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key');
    const r = await fetch(`${gw.base}/chat/completions`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 401, 'no key at all');
    assert.equal((await fetch(`${gw.base}/models`)).status, 401);
    await assert.rejects(as(gw, KEYS.a).chat.completions.create({ model: 'large', messages: msg('k') }),
      (e) => e instanceof OpenAI.PermissionDeniedError && e.code === 'route_not_allowed');
    const ids = [];
    for await (const m of as(gw, KEYS.a).models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['small', 'smart'], 'a key sees its own routes');
    const m = msg('tenant');
    const a1 = await as(gw, KEYS.a).chat.completions.create({ model: 'smart', messages: m }).withResponse();
    const a2 = await as(gw, KEYS.a).chat.completions.create({ model: 'smart', messages: m }).withResponse();
    const b1 = await as(gw, KEYS.b).chat.completions.create({ model: 'smart', messages: m }).withResponse();
    assert.equal(a1.response.headers.get('x-sluice-cache'), 'MISS');
    assert.equal(a2.response.headers.get('x-sluice-cache'), 'HIT');
    assert.equal(b1.response.headers.get('x-sluice-cache'), 'MISS', 'another tenant misses');
    // names that agree on a long prefix are still two tenants
    const l1 = await as(gw, 'sk-long-1').chat.completions.create({ model: 'smart', messages: m }).withResponse();
    const l2 = await as(gw, 'sk-long-2').chat.completions.create({ model: 'smart', messages: m }).withResponse();
    assert.equal(l1.response.headers.get('x-sluice-cache'), 'MISS');
    assert.equal(l2.response.headers.get('x-sluice-cache'), 'MISS', 'a shared 86-character prefix shares no cache, nor an rpm of 1');
    assert.notEqual(l1.response.headers.get('x-sluice-cache-key'), l2.response.headers.get('x-sluice-cache-key'));
  } finally {
    await gw.stop();
  }
});

test('limits in memory: rpm, tpm and budget give 429s with x-ratelimit headers', async () => {
  const gw = await startGateway(conf(), { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    const c = as(gw, KEYS.rl);
    let last;
    for (let i = 0; i < 3; i++) {
      last = await c.chat.completions.create({ model: 'smart', messages: msg('rpm') }).withResponse();
      assert.equal(last.response.headers.get('x-ratelimit-limit-requests'), '3');
      assert.equal(last.response.headers.get('x-ratelimit-remaining-requests'), String(2 - i));
      assert.match(last.response.headers.get('x-ratelimit-reset-requests'), /^\d+s$/);
    }
    await assert.rejects(c.chat.completions.create({ model: 'smart', messages: msg('rpm') }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.equal(e.type, 'requests');
      assert.equal(e.headers.get('x-ratelimit-remaining-requests'), '0');
      assert.ok(Number(e.headers.get('retry-after')) >= 1);
      return true;
    });
    // tokens: the first answer alone is more than the minute's 60 tokens
    const t = as(gw, KEYS.tok);
    const long = Array.from({ length: 90 }, (_, i) => `word${i}`).join(' ');
    const first = await t.chat.completions.create({ model: 'smart', messages: msg('tpm'), mock: { content: long } });
    assert.ok(first.usage.completion_tokens > 60);
    await assert.rejects(t.chat.completions.create({ model: 'smart', messages: msg('tpm') }),
      (e) => e.status === 429 && e.type === 'tokens' && /tokens/.test(e.message));
    // budget: "small" costs $1000 per Mtok; a few answers use up $0.05. Each
    // request holds its estimated cost (max_tokens bounds it) while it runs,
    // and one whose estimate no longer fits is refused before it is sent.
    const b = as(gw, KEYS.cash);
    let spent = 0;
    let refused = null;
    for (let i = 0; i < 20 && !refused; i++) {
      try {
        const r = await b.chat.completions.create({ model: 'smart', messages: msg('cash'), max_tokens: 5 }).withResponse();
        spent += Number(r.response.headers.get('x-sluice-cost'));
        // The request settles just after its response ends: wait for its
        // hold to go, so that the next one is judged on what is spent.
        await waitFor(async () => {
          const u = await (await fetch(`${gw.adminUrl}/admin/usage`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
          return u.cash.spend.held_usd === 0;
        });
      } catch (e) { refused = e; }
    }
    assert.ok(refused, 'the budget ran out');
    assert.equal(refused.status, 429);
    assert.equal(refused.code, 'insufficient_quota');
    assert.ok(spent > 0 && spent <= 0.05, `spent ${spent}`);
    const m = refused.message.match(/\$([\d.e-]+) is spent or held by requests in flight, and this request may cost \$([\d.e-]*\d)/);
    assert.ok(m, refused.message);
    assert.ok(Math.abs(Number(m[1]) - spent) < 1e-6, 'nothing in flight: what is spent');
    assert.ok(spent + Number(m[2]) > 0.05, `refused only when its estimate does not fit: ${refused.message}, spent ${spent}`);
    const usage = await (await fetch(`${gw.adminUrl}/admin/usage`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    assert.equal(usage.limited.requests_this_minute.used, 3);
    assert.equal(usage.limited.requests_this_minute.limit, 3);
    assert.ok(Math.abs(usage.cash.spend.usd - spent) < 1e-9);
    assert.equal(usage.cash.spend.period, 'day');
  } finally {
    await gw.stop();
  }
});

test('two gateways on one Redis share one budget under concurrent load', async () => {
  const budget = 0.2;
  // A Redis slower than timeout_ms fails open (no hold is taken): what is
  // tested here is the shared holds, so a loaded machine's slow Redis must
  // not count as an outage.
  const c = conf({
    cache: `cache = { backend = "redis"; url = "${redis.url}"; timeout_ms = ${2000 * SLOW}; };`,
    keysExtra: `, { name = "shared"; key_sha256 = "${sha(KEYS.shared)}"; budget_usd = ${budget}; budget_period = "total"; rpm = 100000; }`,
  });
  const g1 = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  const g2 = await startGateway(c);
  try {
    let spent = 0;
    let refused = 0;
    let maxCost = 0;
    const one = async (gw, i) => {
      try {
        const r = await as(gw, KEYS.shared).chat.completions
          .create({ model: 'small', messages: msg(`shared${i}`), max_tokens: 5 }).withResponse();
        const cost = Number(r.response.headers.get('x-sluice-cost'));
        spent += cost;
        maxCost = Math.max(maxCost, cost);
      } catch (e) {
        assert.equal(e.status, 429);
        refused++;
      }
    };
    const concurrency = 8;
    for (let round = 0; round < 40 && refused < 2 * concurrency; round++)
      await Promise.all(Array.from({ length: concurrency }, (_, i) => one(i % 2 ? g1 : g2, round * 100 + i)));
    assert.ok(refused > 0, 'the shared budget was enforced');
    // Each request's estimate covers its cost (max_tokens), so the holds keep
    // the spend within the budget; refusals start once the next would not fit.
    assert.ok(spent <= budget + 1e-9, `spent ${spent} of ${budget}`);
    assert.ok(spent > budget - 3 * maxCost, `spent ${spent} of ${budget}`);
    // the spend is settled in Redis just after each response: wait for the last of it
    const usd = async () => (await (await fetch(`${g1.adminUrl}/admin/usage`,
      { headers: { Authorization: `Bearer ${ADMIN}` } })).json()).shared.spend.usd;
    await waitFor(async () => Math.abs((await usd()) - spent) < 1e-6).catch(() => {});
    const seen = await usd();
    assert.ok(Math.abs(seen - spent) < 1e-6, `Redis says ${seen}, clients saw ${spent}`);
  } finally {
    await g1.stop();
    await g2.stop();
  }
});

test('/metrics is Prometheus text that promtool accepts, and counts what happened', async () => {
  const gw = await startGateway(conf(), { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    // with keys, the public listener's /metrics (key names, spend) needs the admin key
    let pub = await fetch(`${gw.url}/metrics`, { headers: { Authorization: `Bearer ${KEYS.a}` } });
    assert.equal(pub.status, 401);
    assert.equal((await pub.json()).error.code, 'invalid_admin_key');
    pub = await fetch(`${gw.url}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    assert.equal(pub.status, 200);
    const c = as(gw, KEYS.a);
    await c.chat.completions.create({ model: 'smart', messages: msg('m') });
    const s = await c.chat.completions.create({ model: 'smart', messages: msg('m'), stream: true });
    for await (const ch of s) void ch;
    await assert.rejects(c.chat.completions.create({ model: 'nope', messages: msg('m') }));
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const dir = tmpDir();
    const f = join(dir, 'm.prom');
    writeFileSync(f, text);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
    assert.match(text, /sluice_requests_total\{route="smart",model="small",status="200",cache="MISS"\} 2/);
    assert.match(text, /sluice_requests_total\{route="",model="",status="404",cache=""\} 1/);
    assert.match(text, /sluice_tokens_total\{route="smart",model="small",key="team-a",kind="prompt"\} \d+/);
    assert.match(text, /sluice_cost_usd_total\{route="smart",model="small",key="team-a"\} [0-9.e-]+/);
    assert.match(text, /sluice_ttft_seconds_count\{route="smart"\} 1/);
    assert.match(text, /sluice_cascade_stage_decisions_total\{route="smart",stage="0",model="small",decision="accept"\} 2/);
    assert.match(text, /sluice_inflight_requests \d+/);
    assert.match(text, /sluice_cache_lookups_total\{result="miss"\} \d+/);
  } finally {
    await gw.stop();
  }
});

test('the inference table also goes to a Redis Stream (XADD with MAXLEN)', async () => {
  const gw = await startGateway(conf({ trace: `trace = { redis_url = "${redis.url}"; stream = "sluice:test:trace"; maxlen = 1000; };` }));
  try {
    await as(gw, KEYS.a).chat.completions.create({ model: 'smart', messages: msg('xadd') },
      { headers: { 'x-request-id': 'xadd-me' } });
    const out = await waitFor(async () => {
      const { stdout } = await run('redis-cli', ['-p', String(redis.port), 'XRANGE', 'sluice:test:trace', '-', '+']);
      return stdout.includes('xadd-me') ? stdout : null;
    });
    const lines = out.split('\n');
    for (const f of ['request_id', 'route', 'stage', 'model', 'decision', 'cost_usd', 'latency_ms'])
      assert.ok(lines.includes(f), `stream record lacks ${f}`);
  } finally {
    await gw.stop();
  }
});
