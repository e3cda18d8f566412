// Budgets under concurrency: a request holds its estimated cost against its
// key's budget from admission to its end, so requests in flight together
// cannot spend past the budget (Bifrost #2873 is the bug this prevents). In
// memory, and shared through one redis-server by two gateways. What a
// request holds follows the route: a fallback the dearest model, a cascade
// every stage (docs/OPERATIONS.md, "Client keys, rate limits and budgets").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { sharedMockAndRedis, startGateway, waitFor, SLOW } from './helpers.mjs';

const ADMIN = 'admin-budget-1';
const sha = (k) => createHash('sha256').update(k).digest('hex');
const PER_TOKEN = 1000 / 1e6; // "dear": $1000 per million tokens, prompt and completion
const CHEAP_PER_TOKEN = 10 / 1e6;
const WORDS = Array.from({ length: 80 }, (_, i) => `w${i}`).join(' ');
const shared = sharedMockAndRedis(before, after);
let seq = 0;

// Each test has keys of its own: a "total" budget in Redis outlives a gateway.
function conf(keys, cache = '') {
  return `
log = { format = "json"; path = "-"; level = "info"; };
admin = { listen = "127.0.0.1:0"; };
${cache}
providers = ( { name = "mock"; base_url = "${shared.mock.base}"; timeout_ms = ${30000 * SLOW}; } );
models = (
  { name = "dear"; provider = "mock"; id = "mock-dear"; input_per_mtok = 1000; output_per_mtok = 1000; },
  { name = "cheap"; provider = "mock"; id = "mock-cheap"; input_per_mtok = 10; output_per_mtok = 10; }
);
routes = (
  { name = "either"; fallback = ( "cheap", "dear" ); },
  { name = "climb"; cascade = ( { model = "cheap"; scorer = "rules"; threshold = 1.0; }, { model = "dear"; } ); }
);
keys = ( ${keys.map((k) => `{ name = "${k}"; key_sha256 = "${sha(`sk-${k}`)}"; budget_usd = 0.5; budget_period = "total"; }`).join(',\n  ')} );
`;
}

const client = (gw, key) => new OpenAI({ baseURL: gw.base, apiKey: `sk-${key}`, maxRetries: 0 });

async function usage(gw, key) {
  const r = await fetch(`${gw.adminUrl}/admin/usage`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  assert.equal(r.status, 200);
  const u = (await r.json())[key];
  assert.ok(u?.spend, `/admin/usage for ${key}: ${JSON.stringify(u)}`);
  return u.spend;
}

/** The key's spend once every request has been settled (just after each
 * response ends) and has released its hold, or as it is after a wait. */
async function settledUsage(gw, key, spent) {
  let u;
  await waitFor(async () => {
    u = await usage(gw, key);
    return Math.abs(u.usd - spent) < 1e-6 && u.held_usd === 0;
  }).catch(() => {});
  return u;
}

/** What sluice estimates a chat request costs on one model: prompt
 * characters / 4 (rounded up) + 8 tokens, plus max_tokens. */
const estimate = (content, maxTokens, perToken) => (Math.ceil(content.length / 4) + 8 + maxTokens) * perToken;

/**
 * 40 streams at once on the "dear" model, each answering 30 tokens slowly
 * ($0.038 a stream, all in flight together: $1.52 if all were admitted).
 * Returns what the clients were charged (from each stream's usage chunk)
 * and how many were refused.
 */
async function fortyStreams(gateways, key) {
  let spent = 0;
  let served = 0;
  let refused = 0;
  const one = async (gw, i) => {
    try {
      const stream = await client(gw, key).chat.completions.create({
        model: 'dear', stream: true, stream_options: { include_usage: true }, max_tokens: 30,
        messages: [{ role: 'user', content: `budget stream ${++seq}` }],
        mock: { content: WORDS, chunks: 6, interval_ms: 250 },
      });
      let text = '';
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        if (chunk.usage) spent += (chunk.usage.prompt_tokens + chunk.usage.completion_tokens) * PER_TOKEN;
      }
      assert.match(text, /^w0 w1 /);
      served++;
    } catch (e) {
      assert.ok(e instanceof OpenAI.RateLimitError, `refused with a 429, not ${e}`);
      assert.equal(e.code, 'insufficient_quota');
      assert.match(e.message, /cannot afford this request/);
      refused++;
    }
  };
  await Promise.all(Array.from({ length: 40 }, (_, i) => one(gateways[i % gateways.length], i)));
  return { spent, served, refused };
}

/** The documented bound, when every request's cost is within its estimate
 * (max_tokens given, English prompt): the budget, not a cent over. */
function assertWithinBudget({ spent, served, refused }, settled) {
  const budget = 0.5;
  const each = estimate('budget stream 100', 30, PER_TOKEN);
  assert.ok(spent <= budget + 1e-9,
    `40 concurrent streams spent $${spent.toFixed(4)} of a $${budget} budget (${served} served, ${refused} refused)`);
  assert.ok(served > 0 && refused > 0, `${served} served, ${refused} refused`);
  // Refusals happen only for what would not fit: the holds of the served filled the budget.
  assert.ok(served * each > budget - each, `${served} served, each held $${each}`);
  assert.ok(Math.abs(settled.usd - spent) < 1e-6, `the key's spend is what the clients were charged: ${settled.usd} vs ${spent}`);
  assert.ok(Math.abs(settled.held_usd) < 1e-9, `every hold is released at the end (${settled.held_usd} left)`);
}


test('in memory: 40 concurrent streams cannot spend past a $0.50 budget', async () => {
  const gw = await startGateway(conf(['mem']), { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    const r = await fortyStreams([gw], 'mem');
    assertWithinBudget(r, await settledUsage(gw, 'mem', r.spent));
  } finally {
    await gw.stop();
  }
});

test('two replicas on one Redis: 40 concurrent streams cannot spend past a $0.50 budget', async () => {
  const c = conf(['shared'], `cache = { backend = "redis"; url = "${shared.redis.url}"; timeout_ms = ${500 * SLOW}; };`);
  const g1 = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  const g2 = await startGateway(c, { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    const r = await fortyStreams([g1, g2], 'shared');
    const settled = await settledUsage(g2, 'shared', r.spent);
    assertWithinBudget(r, settled);
    assert.deepEqual(await usage(g1, 'shared'), settled, 'both replicas read one budget');
  } finally {
    await g1.stop();
    await g2.stop();
  }
});

/** Start a slow request, wait until the key holds something, and return
 * what it holds and the pending request. */
async function heldBy(gw, key, route, content, mockCtl) {
  const pending = client(gw, key).chat.completions
    .create({ model: route, max_tokens: 20, messages: [{ role: 'user', content }], mock: mockCtl })
    .withResponse();
  pending.catch(() => {});
  const held = await waitFor(async () => (await usage(gw, key)).held_usd);
  return { held, pending };
}

for (const backend of ['memory', 'redis']) {
  test(`${backend}: a fallback holds its dearest model, a cascade every stage, until the request ends`, async () => {
    const keys = [`hold-${backend}`];
    const cache = backend === 'redis'
      ? `cache = { backend = "redis"; url = "${shared.redis.url}"; timeout_ms = ${500 * SLOW}; };` : '';
    const gw = await startGateway(conf(keys, cache), { env: { SLUICE_ADMIN_KEY: ADMIN } });
    const key = keys[0];
    try {
      // A fallback pays only the model that answers: it holds the dearest.
      let content = `hold fallback ${++seq}`;
      let h = await heldBy(gw, key, 'either', content, { first_byte_ms: 800 * SLOW });
      assert.ok(Math.abs(h.held - estimate(content, 20, PER_TOKEN)) < 1e-9,
        `a fallback (cheap, dear) holds dear's estimate: ${h.held}`);
      await h.pending;
      await waitFor(async () => (await usage(gw, key)).held_usd === 0);

      // A cascade pays every stage it runs: it holds the sum. Here cheap's
      // refusal is vetoed, so both stages are paid.
      content = `hold cascade ${++seq}`;
      h = await heldBy(gw, key, 'climb', content,
        [{ model: 'mock-cheap', content: "I'm sorry, I cannot help with that.", first_byte_ms: 800 * SLOW }]);
      assert.ok(Math.abs(h.held - (estimate(content, 20, PER_TOKEN) + estimate(content, 20, CHEAP_PER_TOKEN))) < 1e-9,
        `a cascade (cheap, dear) holds both stages' estimates: ${h.held}`);
      const { response } = await h.pending;
      assert.match(response.headers.get('x-sluice-stages'), /^cheap:0\.00:escalate,dear:/);
      const paid = Number(response.headers.get('x-sluice-cost'));
      await waitFor(async () => (await usage(gw, key)).held_usd === 0);

      // A request that fails is held until it ends and costs nothing.
      const before = (await usage(gw, key)).usd;
      content = `hold failure ${++seq}`;
      h = await heldBy(gw, key, 'dear', content, { status: 500, first_byte_ms: 800 * SLOW });
      assert.ok(h.held > 0);
      await assert.rejects(h.pending, (e) => e.status === 502 || e.status === 500);
      await waitFor(async () => (await usage(gw, key)).held_usd === 0);
      assert.ok(Math.abs((await usage(gw, key)).usd - before) < 1e-12, 'a failed request costs nothing');
      assert.ok(before >= paid - 1e-12);
    } finally {
      await gw.stop();
    }
  });
}
