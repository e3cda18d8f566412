// The response cache: memory and Redis backends, keys, policy, streams,
// namespaces, single flight, failures and purges.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startMock, startGateway, startRedis, mockConf, sleep, waitFor, SLOW } from './helpers.mjs';

let mock;
let redis;
let mem; // gateway with the memory backend
let ra;  // two gateways sharing one Redis
let rb;
const ADMIN = 'admin-secret-1';

const routes = `
routes = (
  { name = "reliable"; fallback = ( "small", "large" ); },
  { name = "nocache"; model = "small"; cache = false; },
  { name = "creative"; model = "small"; cache_nondeterministic = true; }
);`;

function conf(cacheBlock) {
  return mockConf(mock.base).replace(/routes = \([\s\S]*?\n\);/, routes) + cacheBlock
    + '\nadmin = { listen = "127.0.0.1:0"; };\n';
}

function client(gw, headers = {}) {
  return new OpenAI({ baseURL: gw.base, apiKey: 'x', maxRetries: 0, defaultHeaders: headers });
}

let seq = 0;
/** A fresh question, so a test starts on a cold key. */
function q(tag) {
  seq += 1;
  return [{ role: 'user', content: `cache test ${tag} ${seq} ${Date.now()}` }];
}

async function chat(gw, body, headers = {}) {
  const { data, response } = await client(gw, headers).chat.completions.create(body).withResponse();
  return { data, h: response.headers, cache: response.headers.get('x-sluice-cache') };
}

async function streamText(gw, body, headers = {}) {
  const { data: stream, response } = await client(gw, headers).chat.completions
    .create({ ...body, stream: true }).withResponse();
  let text = '';
  let usage = null;
  let chunks = 0;
  for await (const c of stream) {
    chunks++;
    text += c.choices[0]?.delta?.content ?? '';
    if (c.usage) usage = c.usage;
  }
  return { text, usage, chunks, h: response.headers, cache: response.headers.get('x-sluice-cache') };
}

before(async () => {
  mock = await startMock();
  redis = await startRedis();
  mem = await startGateway(conf('cache = { backend = "memory"; max_bytes = 8388608; max_value_bytes = 4096; };'),
    { env: { SLUICE_ADMIN_KEY: ADMIN } });
  const rconf = conf(`cache = { backend = "redis"; url = "${redis.url}"; timeout_ms = ${50 * SLOW}; };`);
  ra = await startGateway(rconf, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  rb = await startGateway(rconf);
});

after(async () => {
  for (const g of [mem, ra, rb]) await g?.stop();
  await redis?.stop();
  await mock?.stop();
});

for (const backend of ['memory', 'redis']) {
  const gw = () => (backend === 'memory' ? mem : ra);

  test(`${backend}: a miss, then a hit that costs nothing and says what it saved`, async () => {
    const m = q(backend);
    const a = await chat(gw(), { model: 'small', messages: m });
    assert.equal(a.cache, 'MISS');
    assert.ok(Number(a.h.get('x-sluice-cost')) > 0);
    const b = await chat(gw(), { model: 'small', messages: m });
    assert.equal(b.cache, 'HIT');
    assert.equal(Number(b.h.get('x-sluice-cost')), 0);
    assert.equal(b.h.get('x-sluice-saved-cost'), a.h.get('x-sluice-cost'));
    assert.equal(b.h.get('x-sluice-model'), 'small');
    assert.deepEqual(b.data, a.data, 'the same answer, byte for byte');
  });

  test(`${backend}: streams are stored assembled and replayed as SSE; plain and streamed share entries`, async () => {
    const m = q(`${backend}-stream`);
    const s1 = await streamText(gw(), { model: 'small', messages: m });
    assert.equal(s1.cache, 'MISS');
    const plain = await waitFor(async () => {
      const r = await chat(gw(), { model: 'small', messages: m });
      return r.cache === 'HIT' ? r : null;
    });
    assert.equal(plain.data.choices[0].message.content, s1.text, 'a streamed answer serves a plain request');
    assert.equal(plain.data.object, 'chat.completion');
    assert.ok(plain.data.usage.completion_tokens > 0);
    const s2 = await streamText(gw(), { model: 'small', messages: m, stream_options: { include_usage: true } });
    assert.equal(s2.cache, 'HIT');
    assert.equal(s2.text, s1.text);
    assert.ok(s2.usage && s2.usage.completion_tokens > 0, 'the usage chunk when asked');
    // and the reverse: a plain answer replayed to a streaming client
    const m2 = q(`${backend}-reverse`);
    const p = await chat(gw(), { model: 'small', messages: m2 });
    const s3 = await streamText(gw(), { model: 'small', messages: m2 });
    assert.equal(s3.cache, 'HIT');
    assert.equal(s3.text, p.data.choices[0].message.content);
    assert.ok(s3.chunks >= 3);
  });

  test(`${backend}: namespaces never see each other's answers`, async () => {
    const m = q(`${backend}-ns`);
    const a = await chat(gw(), { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'team-a' });
    assert.equal(a.cache, 'MISS');
    const b = await chat(gw(), { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'team-b' });
    assert.equal(b.cache, 'MISS');
    const a2 = await chat(gw(), { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'team-a' });
    assert.equal(a2.cache, 'HIT');
    assert.notEqual(a.h.get('x-sluice-cache-key'), b.h.get('x-sluice-cache-key'));
  });
}

test('the key ignores stream, user and stream_options, and sees everything else', async () => {
  const m = q('key');
  await chat(mem, { model: 'small', messages: m, temperature: 0 });
  assert.equal((await chat(mem, { model: 'small', messages: m, temperature: 0, user: 'bob' })).cache, 'HIT');
  assert.equal((await chat(mem, { model: 'small', messages: m, temperature: 0.0 })).cache, 'HIT', '0 and 0.0 are one number');
  assert.equal((await chat(mem, { model: 'small', messages: m, temperature: 0, max_tokens: 50 })).cache, 'MISS');
  assert.equal((await chat(mem, { model: 'small', messages: m, temperature: 0, seed: 1 })).cache, 'MISS');
  assert.equal((await chat(mem, { model: 'reliable', messages: m, temperature: 0 })).cache, 'MISS', 'the route is in the key');
});

test('policy: temperature > 0 and n > 1 bypass; routes may turn caching off or allow it', async () => {
  const m = q('policy');
  assert.equal((await chat(mem, { model: 'small', messages: m, temperature: 0.7 })).cache, 'BYPASS');
  assert.equal((await chat(mem, { model: 'small', messages: m, n: 2 })).cache, 'BYPASS');
  assert.equal((await chat(mem, { model: 'nocache', messages: m })).cache, 'OFF');
  assert.equal((await chat(mem, { model: 'nocache', messages: m })).cache, 'OFF');
  assert.equal((await chat(mem, { model: 'creative', messages: m, temperature: 0.9 })).cache, 'MISS');
  assert.equal((await chat(mem, { model: 'creative', messages: m, temperature: 0.9 })).cache, 'HIT');
});

test('Cache-Control no-cache skips the lookup but stores; no-store does neither', async () => {
  const m = q('cc');
  let r = await chat(mem, { model: 'small', messages: m }, { 'Cache-Control': 'no-store' });
  assert.equal(r.cache, 'BYPASS');
  r = await chat(mem, { model: 'small', messages: m });
  assert.equal(r.cache, 'MISS', 'no-store stored nothing');
  r = await chat(mem, { model: 'small', messages: m }, { 'Cache-Control': 'no-cache' });
  assert.equal(r.cache, 'BYPASS', 'no-cache does not look up');
  r = await chat(mem, { model: 'small', messages: m });
  assert.equal(r.cache, 'HIT');
});

test('x-sluice-cache-ttl sets the lifetime; bad values are a 400', async () => {
  const m = q('ttl');
  await chat(mem, { model: 'small', messages: m }, { 'x-sluice-cache-ttl': '1' });
  assert.equal((await chat(mem, { model: 'small', messages: m })).cache, 'HIT');
  await sleep(1300);
  assert.equal((await chat(mem, { model: 'small', messages: m })).cache, 'MISS', 'expired');
  await assert.rejects(chat(mem, { model: 'small', messages: m }, { 'x-sluice-cache-ttl': 'soon' }),
    (e) => e.status === 400 && e.code === 'invalid_cache_ttl');
  await assert.rejects(chat(mem, { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'a b' }),
    (e) => e.status === 400 && e.code === 'invalid_cache_namespace');
});

test('only complete 200 answers are stored, and not over max_value_bytes', async () => {
  const m = q('fail');
  await assert.rejects(chat(mem, { model: 'small', messages: m, mock: { status: 500, fail_times: 1, key: `f${seq}` } }));
  assert.equal((await chat(mem, { model: 'small', messages: m, mock: { status: 500, fail_times: 1, key: `f${seq}` } })).cache, 'MISS');
  const big = q('big');
  const long = 'x'.repeat(6000);
  await chat(mem, { model: 'small', messages: big, mock: { content: long } });
  assert.equal((await chat(mem, { model: 'small', messages: big, mock: { content: long } })).cache, 'MISS', 'over max_value_bytes');
  const cut = q('cut');
  await assert.rejects(streamText(mem, { model: 'small', messages: cut, mock: { fault: 'truncate' } }));
  assert.equal((await chat(mem, { model: 'small', messages: cut })).cache, 'MISS', 'a broken stream is not stored');
});

test('two gateways on one Redis act as one cache', async () => {
  const m = q('shared');
  const a = await chat(ra, { model: 'small', messages: m });
  assert.equal(a.cache, 'MISS');
  const b = await waitFor(async () => {
    const r = await chat(rb, { model: 'small', messages: m });
    return r.cache === 'HIT' ? r : null;
  });
  assert.deepEqual(b.data, a.data);
});

test('single flight: 50 concurrent identical requests make one upstream call', async () => {
  for (const [gw, label] of [[mem, 'memory'], [ra, 'redis']]) {
    await mock.reset();
    const m = q(`flight-${label}`);
    const body = { model: 'small', messages: m, mock: { first_byte_ms: 400 } };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2
      ? chat(gw, body) : streamText(gw, body))));
    const s = await mock.stats();
    assert.equal(s.requests, 1, `${label}: ${s.requests} upstream calls`);
    const texts = new Set(results.map((r) => r.data?.choices[0].message.content ?? r.text));
    assert.equal(texts.size, 1, 'everyone got the same answer');
    assert.equal(results.filter((r) => r.cache === 'MISS').length, 1);
  }
});

test('admin purge by key and by namespace', async () => {
  for (const gw of [mem, ra]) {
    const m = q('purge');
    const a = await chat(gw, { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'purge-me' });
    const purge = (body, key = ADMIN) => fetch(`${gw.adminUrl}/admin/cache/purge`, {
      method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    let r = await purge({ key: a.h.get('x-sluice-cache-key') }, 'wrong');
    assert.equal(r.status, 401);
    r = await purge({ key: a.h.get('x-sluice-cache-key') });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { purged: 1 });
    assert.equal((await chat(gw, { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'purge-me' })).cache, 'MISS');
    await chat(gw, { model: 'small', messages: q('purge2') }, { 'x-sluice-cache-namespace': 'purge-me' });
    r = await purge({ namespace: 'purge-me' });
    assert.equal(r.status, 200);
    assert.ok((await r.json()).purged >= 2);
    for (const bad of [{ namespace: 'no spaces!' }, { namespace: '' }, { key: 'ratelimit:team-a' }]) {
      r = await purge(bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal((await r.json()).error.code, 'invalid_cache_purge');
    }
    assert.equal((await chat(gw, { model: 'small', messages: m }, { 'x-sluice-cache-namespace': 'purge-me' })).cache, 'MISS');
  }
  const off = await fetch(`${rb.adminUrl}/admin/cache/purge`, { method: 'POST', body: '{}' });
  assert.equal(off.status, 403, 'no admin key: the admin API is off');
  const pub = await fetch(`${ra.url}/admin/cache/purge`, { method: 'POST', body: '{}' });
  assert.equal(pub.status, 404, 'the admin API is not on the public listener');
});

test('Redis down: requests still succeed (fail open); back up: hits resume without a restart', async () => {
  const m = q('outage');
  await chat(ra, { model: 'small', messages: m });
  const port = redis.port;
  await redis.stop();
  for (let i = 0; i < 5; i++) {
    const r = await chat(ra, { model: 'small', messages: q('down') });
    assert.equal(r.cache, 'ERROR');
    assert.ok(r.data.choices[0].message.content.length > 0);
    const s = await streamText(ra, { model: 'small', messages: q('down-s') });
    assert.ok(s.text.length > 0);
  }
  redis = await startRedis(port);
  const m2 = q('back');
  await waitFor(async () => (await chat(ra, { model: 'small', messages: m2 })).cache === 'MISS', { timeoutMs: 15000, stepMs: 200 });
  // the other gateway has no local copy: its hit comes from Redis
  await waitFor(async () => (await chat(rb, { model: 'small', messages: m2 })).cache === 'HIT', { timeoutMs: 15000, stepMs: 200 });
});
