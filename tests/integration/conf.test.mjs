// The ready configs in conf/: each passes `sluice --check` with the
// environment it documents, and each does what it says when run against
// sluice-mock (and a real redis-server) on this test's own ports:
//   dev.conf       what `make run` serves: routes, a cascade, embeddings
//   cascade.conf   a cascade on real providers, here with the mock in their place
//   replicas.conf  two replicas sharing one Redis: cache, keys, budgets, trace
//   sidecar.conf   is checked with the deployment files (deploy.test.mjs)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { confCopy, sharedMockAndRedis, startGateway, waitFor, BUILD, ROOT } from './helpers.mjs';

const CONF = join(ROOT, 'conf');
const ENV = { OPENAI_API_KEY: 'sk-test', GROQ_API_KEY: 'gsk-test', SLUICE_ADMIN_KEY: 'admin-conf-1' };
const shared = sharedMockAndRedis(before, after);


/** Start sluice on a copy of conf/NAME with the replacements of confCopy. */
async function serve(name, replace) {
  const file = confCopy(name, replace);
  return startGateway(readFileSync(file, 'utf8'), { env: ENV });
}

const ask = (gw, body, headers = {}) => fetch(`${gw.base}/chat/completions`, {
  method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body),
});

test('every conf/*.conf passes sluice --check, and the README points at each', () => {
  const files = readdirSync(CONF).filter((f) => f.endsWith('.conf')).sort();
  assert.deepEqual(files, ['cascade.conf', 'dev.conf', 'replicas.conf', 'sidecar.conf']);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const f of files) {
    const r = spawnSync(join(BUILD, 'sluice'), ['--check', '--config', join(CONF, f)],
      { encoding: 'utf8', env: { PATH: process.env.PATH, ...ENV } });
    assert.equal(r.status, 0, `conf/${f}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /: OK$/m);
    assert.ok(readme.includes(`conf/${f}`), `the README mentions conf/${f}`);
  }
  // sluice needs a config: there is no built-in one any more.
  const r = spawnSync(join(BUILD, 'sluice'), [], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--config FILE.*conf\/dev\.conf/);
});

test('conf/dev.conf (make run): a fallback, a cascade and embeddings on sluice-mock', async () => {
  const gw = await serve('dev.conf', [['"http://127.0.0.1:8081/v1"', `"${shared.mock.base}"`]]);
  try {
    const c = new OpenAI({ baseURL: gw.base, apiKey: 'unused', maxRetries: 0 });
    const r = await c.chat.completions.create({ model: 'reliable', messages: [{ role: 'user', content: 'dev 1' }] })
      .withResponse();
    assert.equal(r.data.model, 'mock-small');
    assert.equal(r.response.headers.get('x-sluice-route'), 'reliable');
    assert.ok(Number(r.response.headers.get('x-sluice-cost')) > 0, 'priced');
    const again = await c.chat.completions.create({ model: 'reliable', messages: [{ role: 'user', content: 'dev 1' }] })
      .withResponse();
    assert.equal(again.response.headers.get('x-sluice-cache'), 'HIT');
    // smart: a refusal from the cheap model escalates to the strong one
    const s = await ask(gw, { model: 'smart', messages: [{ role: 'user', content: 'dev 2' }],
      mock: [{ model: 'mock-small', content: "I'm sorry, I can't help with that." }] });
    assert.equal(s.status, 200);
    assert.match(s.headers.get('x-sluice-stages'), /^mock-small:0\.00:escalate,mock-large:/);
    const e = await c.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    assert.ok(e.data[0].embedding.length > 0);
  } finally {
    await gw.stop();
  }
});

test('conf/cascade.conf: its cascades run, stage by stage, with the mock in the providers\' place', async () => {
  const gw = await serve('cascade.conf', [
    ['"https://api.openai.com/v1"', `"${shared.mock.base}"`],
    ['"https://api.groq.com/openai/v1"', `"${shared.mock.base}"`],
    ['path = "traces.jsonl"', 'path = "-"'],
  ]);
  try {
    let r = await ask(gw, { model: 'smart', messages: [{ role: 'user', content: 'cascade 1' }] });
    assert.equal(r.status, 200, await r.clone().text());
    assert.match(r.headers.get('x-sluice-stages'), /^llama-3\.1-8b:1\.00:accept$/);
    assert.equal((await r.json()).model, 'llama-3.1-8b-instant', 'the upstream id of the model that answered');
    // The cheap model refuses: the two mid models are asked together, then
    // (the mock's two models say different things) gpt-4o.
    r = await ask(gw, { model: 'smart', messages: [{ role: 'user', content: 'cascade 2' }],
      mock: [{ model: 'llama-3.1-8b-instant', content: "I'm sorry, but I can't help with that." }] });
    assert.equal(r.status, 200);
    const stages = r.headers.get('x-sluice-stages').split(',');
    assert.match(stages[0], /^llama-3\.1-8b:0\.00:escalate$/);
    assert.match(stages[1], /^gpt-4o-mini:/);
    assert.ok(Number(r.headers.get('x-sluice-cost')) > 0);
    r = await ask(gw, { model: 'reliable', messages: [{ role: 'user', content: 'cascade 3' }] });
    assert.equal(r.headers.get('x-sluice-model'), 'gpt-4o-mini');
  } finally {
    await gw.stop();
  }
});

test('conf/replicas.conf: two replicas on one Redis share the cache, the keys\' budgets and the trace', async () => {
  const key = 'sk-conf-replicas-1';
  const sha = createHash('sha256').update(key).digest('hex');
  const replace = [
    ['url = "redis://redis:6379/0"', `url = "${shared.redis.url}"`],
    ['"https://api.openai.com/v1"', `"${shared.mock.base}"`],
    [`"${'0'.repeat(64)}"`, `"${sha}"`],
    ['listen = "127.0.0.1:9091"', 'listen = "127.0.0.1:0"'],
  ];
  const g1 = await serve('replicas.conf', replace);
  const g2 = await serve('replicas.conf', replace);
  try {
    const body = { model: 'reliable', messages: [{ role: 'user', content: `replicas ${Date.now()}` }] };
    assert.equal((await ask(g1, body)).status, 401, 'a key is needed');
    const auth = { Authorization: `Bearer ${key}` };
    const a = await ask(g1, body, auth);
    assert.equal(a.status, 200, await a.clone().text());
    assert.equal(a.headers.get('x-sluice-cache'), 'MISS');
    const cost = Number(a.headers.get('x-sluice-cost'));
    const b = await ask(g2, body, auth);
    assert.equal(b.headers.get('x-sluice-cache'), 'HIT', 'the other replica answers from the shared cache');
    assert.equal(b.headers.get('x-ratelimit-limit-requests'), '600');
    assert.equal(b.headers.get('x-ratelimit-remaining-requests'), '598', 'one rpm count for both replicas');
    // One budget: what g1 spent, g2's admin API reports.
    const usage = async () => (await (await fetch(`${g2.adminUrl}/admin/usage`,
      { headers: { Authorization: `Bearer ${ENV.SLUICE_ADMIN_KEY}` } })).json())['team-a'];
    await waitFor(async () => Math.abs((await usage()).spend.usd - cost) < 1e-9);
    assert.equal((await usage()).spend.budget_usd, 50);
    // Both replicas' stage records in one stream.
    const xlen = spawnSync('redis-cli', ['-p', String(shared.redis.port), 'XLEN', 'sluice:trace'], { encoding: 'utf8' });
    assert.ok(Number(xlen.stdout) >= 1, `sluice:trace holds the records: ${xlen.stdout}${xlen.stderr}`);
  } finally {
    await g1.stop();
    await g2.stop();
  }
});
