// FrugalGPT cascades through the official SDK, against sluice-mock: every
// scorer, escalation, budgets, answer reuse, streaming and the trace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startMock, startGateway, tmpDir, waitFor, SLOW } from './helpers.mjs';

let mock;
let gw;
let client;
let scorerSvc;
let scorerSeen = [];
const dir = tmpDir();
const trace = join(dir, 'trace.jsonl');
const Q = [{ role: 'user', content: 'Which planet is largest? A) Mars B) Jupiter C) Venus' }];

// prices: cheap 1/1, mid 2/2, strong 10/30, judge 0.5/0.5 ($ per Mtok)
const PRICES = { 'mock-cheap': [1, 1], 'mock-mid': [2, 2], 'mock-strong': [10, 30], 'mock-judge-hi': [0.5, 0.5], 'mock-judge-lo': [0.5, 0.5] };

function weights(name, bias) {
  const f = join(dir, `${name}.w`);
  writeFileSync(f, `sluice-learned 1\nmodel=${name}\nbits=8\nword_ngrams=1-2\nchar_ngrams=3-5\n`
    + `query_tail=100\nanswer_head=100\nfeatures=meta\nbias=${bias}\nnonzero=0\nweights\nend\n`);
  return f;
}

before(async () => {
  mock = await startMock(['--content', 'mock-judge-hi=9', '--content', 'mock-judge-lo=2']);
  scorerSvc = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const j = JSON.parse(body);
      scorerSeen.push(j);
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ score: j.answer.includes('good') ? 0.9 : 0.1 }));
    });
  });
  await new Promise((r) => scorerSvc.listen(0, '127.0.0.1', r));
  const models = Object.entries(PRICES).map(([id, [i, o]]) =>
    `{ name = "${id.replace('mock-', '')}"; provider = "mock"; id = "${id}"; input_per_mtok = ${i}; output_per_mtok = ${o}; }`).join(',\n  ');
  const conf = `
log = { format = "json"; path = "-"; level = "info"; };
trace = { path = "${trace}"; include_content = true; };
providers = ( { name = "mock"; type = "openai"; base_url = "${mock.base}"; timeout_ms = ${20000 * SLOW}; } );
models = (
  ${models}
);
routes = (
  { name = "rules"; cascade = ( { model = "cheap"; scorer = "rules"; threshold = 1.0; }, { model = "strong"; } ); },
  { name = "logprob"; cascade = ( { model = "cheap"; scorer = "logprob"; threshold = 0.8; }, { model = "strong"; } ); },
  { name = "agree"; cascade = ( { models = ( "cheap", "mid" ); scorer = "agreement"; threshold = 1.0; }, { model = "strong"; } ); },
  { name = "samples"; cascade = ( { model = "cheap"; samples = 3; scorer = "agreement"; threshold = 0.66; }, { model = "strong"; } ); },
  { name = "judged-hi"; cascade = ( { model = "cheap"; scorer = "judge"; judge = "judge-hi"; threshold = 0.7; }, { model = "strong"; } ); },
  { name = "judged-lo"; cascade = ( { model = "cheap"; scorer = "judge"; judge = "judge-lo"; threshold = 0.7; }, { model = "strong"; } ); },
  { name = "learned-hi"; cascade = ( { model = "cheap"; scorer = "learned"; weights = "${weights('hi', 3)}"; threshold = 0.9; }, { model = "strong"; } ); },
  { name = "learned-lo"; cascade = ( { model = "cheap"; scorer = "learned"; weights = "${weights('lo', -3)}"; threshold = 0.9; }, { model = "strong"; } ); },
  { name = "http"; cascade = ( { model = "cheap"; scorer = "http"; url = "http://127.0.0.1:${scorerSvc.address().port}/score"; threshold = 0.5; }, { model = "strong"; } ); },
  { name = "reuse"; cascade = (
      { model = "cheap"; scorer = "learned"; weights = "${weights('lo2', -3)}"; threshold = 0.9; },
      { models = ( "cheap", "mid" ); scorer = "agreement"; threshold = 1.0; },
      { model = "strong"; } ); },
  { name = "budget"; max_cost = 0.0005; cascade = ( { model = "cheap"; scorer = "rules"; threshold = 1.0; }, { model = "strong"; } ); },
  { name = "broke"; max_cost = 0.0000001; cascade = ( { model = "cheap"; scorer = "rules"; threshold = 1.0; }, { model = "strong"; } ); }
);
`;
  gw = await startGateway(conf);
  client = new OpenAI({ baseURL: gw.base, apiKey: 'x', maxRetries: 0 });
});

after(async () => {
  await gw?.stop();
  await mock?.stop();
  scorerSvc?.close();
});

async function ask(model, extra = {}) {
  const { data, response } = await client.chat.completions
    .create({ model, messages: Q, ...extra }).withResponse();
  return { data, h: response.headers, stages: response.headers.get('x-sluice-stages'), cost: Number(response.headers.get('x-sluice-cost')) };
}

const usageCost = (u, [i, o]) => (u.prompt_tokens * i + u.completion_tokens * o) / 1e6;

/** The trace records written so far (a line still being written is skipped). */
function traceRecords() {
  let text = '';
  try { text = readFileSync(trace, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).flatMap((l) => {
    try { return [JSON.parse(l)]; } catch { return []; }
  });
}

test('rules: a refusal escalates, a good answer is accepted at the cheap stage', async () => {
  let r = await ask('rules', { mock: { content: "I'm sorry, but I can't help with that.", model: 'mock-cheap' } });
  assert.equal(r.stages, 'cheap:0.00:escalate,strong:1.00:accept');
  assert.equal(r.h.get('x-sluice-model'), 'strong');
  assert.equal(r.data.model, 'mock-strong');
  r = await ask('rules', { mock: { content: 'B) Jupiter', model: 'mock-cheap' } });
  assert.equal(r.stages, 'cheap:1.00:accept');
  assert.equal(r.data.choices[0].message.content, 'B) Jupiter');
  assert.ok(Math.abs(r.cost - usageCost(r.data.usage, PRICES['mock-cheap'])) < 1e-12);
  // truncated (finish_reason=length) and invalid JSON when JSON was asked are vetoed too
  r = await ask('rules', { max_tokens: 2 });
  assert.match(r.stages, /^cheap:0\.00:escalate,strong/);
  r = await ask('rules', { response_format: { type: 'json_object' }, mock: [{ model: 'mock-cheap', content: 'not json' }, { model: 'mock-strong', content: '{"a":1}' }] });
  assert.equal(r.stages, 'cheap:0.00:escalate,strong:1.00:accept');
});

test('cost is the sum over every call, escalated stages included', async () => {
  const { data, response } = await client.chat.completions.create(
    { model: 'rules', messages: Q, mock: { content: '', model: 'mock-cheap' } },
    { headers: { 'x-request-id': 'cost-sum-1' } }).withResponse();
  const cost = Number(response.headers.get('x-sluice-cost'));
  assert.equal(response.headers.get('x-sluice-stages'), 'cheap:0.00:escalate,strong:1.00:accept');
  const recs = await waitFor(() => {
    const r = traceRecords().filter((t) => t.request_id === 'cost-sum-1');
    return r.length === 2 ? r : null;
  });
  const sum = recs.reduce((s, t) => s + t.cost_usd, 0);
  assert.ok(recs[0].cost_usd > 0, 'the cheap call is paid too');
  assert.ok(Math.abs(cost - sum) < 1e-9, `${cost} vs ${sum}`);
  assert.ok(cost > usageCost(data.usage, PRICES['mock-strong']));
});

test('a trace record is never cut: a 100 KB prompt and its answer stay one JSON line', async () => {
  const big = 'long prompt '.repeat(9000);
  await client.chat.completions.create({ model: 'rules', messages: [{ role: 'user', content: big }] },
    { headers: { 'x-request-id': 'trace-long-1' } });
  const recs = await waitFor(() => {
    const r = traceRecords().filter((t) => t.request_id === 'trace-long-1');
    return r.length >= 1 ? r : null;
  });
  assert.ok(recs[0].prompt.includes(big.trim()), 'the whole prompt is recorded');
  const lines = readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes('trace-long-1'));
  for (const l of lines) JSON.parse(l);
});

test('logprob: mean token probability against the threshold; logprobs not leaked', async () => {
  let r = await ask('logprob', { mock: { logprob: -0.05 } });
  assert.equal(r.stages, 'cheap:0.95:accept');
  assert.equal(r.data.choices[0].logprobs ?? null, null, 'the client did not ask for logprobs');
  r = await ask('logprob', { mock: { logprob: -1.0 } });
  assert.equal(r.stages, 'cheap:0.37:escalate,strong:1.00:accept');
});

test('agreement across models: agree accepts, disagree escalates', async () => {
  let r = await ask('agree', { mock: [{ model: 'mock-cheap', content: 'The answer is B.' }, { model: 'mock-mid', content: 'B' }] });
  assert.equal(r.stages, 'cheap:1.00:accept');
  assert.equal(r.data.choices[0].message.content, 'The answer is B.');
  const both = usageCost(r.data.usage, PRICES['mock-cheap']);
  assert.ok(r.cost > both, 'both models were paid');
  r = await ask('agree', { mock: [{ model: 'mock-cheap', content: 'A' }, { model: 'mock-mid', content: 'C' }] });
  assert.equal(r.stages, 'cheap:0.50:escalate,strong:1.00:accept');
});

test('agreement over n samples of one model', async () => {
  let r = await ask('samples', { mock: { model: 'mock-cheap', choices: ['B', 'B', 'C'] } });
  assert.equal(r.stages, 'cheap:0.67:accept');
  assert.equal(r.data.choices.length, 1, 'the client gets the n it asked for');
  r = await ask('samples', { mock: { model: 'mock-cheap', choices: ['A', 'B', 'C'] } });
  assert.equal(r.stages, 'cheap:0.33:escalate,strong:1.00:accept');
});

test('judge: an LLM-as-judge call scores the answer, and is paid for', async () => {
  await mock.reset();
  let r = await ask("judged-hi");
  assert.equal(r.stages, 'cheap:0.90:accept');
  const s = await mock.stats();
  assert.equal(s.by_model['mock-judge-hi'], 1);
  assert.ok(r.cost > usageCost(r.data.usage, PRICES['mock-cheap']), 'the judge call is in the cost');
  r = await ask("judged-lo");
  assert.equal(r.stages, 'cheap:0.20:escalate,strong:1.00:accept');
});

test('learned: the weights file from sluice-tune decides', async () => {
  let r = await ask('learned-hi');
  assert.equal(r.stages, 'cheap:0.95:accept');
  r = await ask('learned-lo');
  assert.equal(r.stages, 'cheap:0.05:escalate,strong:1.00:accept');
});

test('http: an external scorer gets {query, answer, model}', async () => {
  scorerSeen = [];
  let r = await ask('http', { mock: { model: 'mock-cheap', content: 'a good answer' } });
  assert.equal(r.stages, 'cheap:0.90:accept');
  assert.deepEqual(Object.keys(scorerSeen[0]).sort(), ['answer', 'model', 'query']);
  assert.equal(scorerSeen[0].answer, 'a good answer');
  assert.equal(scorerSeen[0].model, 'cheap');
  assert.match(scorerSeen[0].query, /Which planet/);
  r = await ask('http', { mock: { model: 'mock-cheap', content: 'a bad answer' } });
  assert.equal(r.stages, 'cheap:0.10:escalate,strong:1.00:accept');
});

test('a model that answered in one stage is not called again by a later one', async () => {
  await mock.reset();
  const r = await ask('reuse', { mock: [{ model: 'mock-cheap', content: 'B' }, { model: 'mock-mid', content: 'B' }] });
  assert.equal(r.stages, 'cheap:0.05:escalate,cheap:1.00:accept');
  const s = await mock.stats();
  assert.equal(s.by_model['mock-cheap'], 1);
  assert.equal(s.by_model['mock-mid'], 1);
  assert.equal(s.by_model['mock-strong'], undefined);
});

test('max_cost skips a stage that would overrun the budget', async () => {
  let r = await ask('budget', { mock: { model: 'mock-cheap', content: "I'm sorry, I cannot do that." } });
  // the strong stage does not fit: the vetoed cheap answer is the best there is
  assert.equal(r.stages, 'cheap:0.00:escalate,strong:-:skip,cheap:0.00:salvage');
  assert.equal(r.h.get('x-sluice-model'), 'cheap');
  await assert.rejects(ask('broke'), (e) => {
    assert.equal(e.status, 402);
    assert.equal(e.code, 'max_cost_exceeded');
    return true;
  });
});

test('streaming: an accepted buffered answer arrives as a proper SSE stream', async () => {
  const stream = await client.chat.completions.create({
    model: 'rules', messages: Q, stream: true, stream_options: { include_usage: true },
    mock: { model: 'mock-cheap', content: 'Jupiter is the largest planet in our solar system, by far.' },
  });
  let text = '';
  let roles = 0;
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    const ch = c.choices[0];
    if (!ch) continue;
    if (ch.delta.role) roles++;
    text += ch.delta.content ?? '';
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(text, 'Jupiter is the largest planet in our solar system, by far.');
  assert.equal(roles, 1);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 0);
  assert.ok(chunks >= 4, `role, content, finish, usage (${chunks})`);
});

test('streaming: the final stage, once reached, streams live', async () => {
  const t0 = Date.now();
  const stream = await client.chat.completions.create({
    model: 'rules', messages: Q, stream: true,
    mock: [{ model: 'mock-cheap', content: '' }, { model: 'mock-strong', chunks: 6, interval_ms: 200 }],
  });
  let first = 0;
  for await (const c of stream) if (!first && c.choices[0]?.delta?.content) first = Date.now() - t0;
  const total = Date.now() - t0;
  assert.ok(total >= 1000);
  assert.ok(first < total - 600, `first content at ${first} of ${total} ms`);
});

test('the inference table has one record per stage', async () => {
  await client.chat.completions.create({ model: 'rules', messages: Q,
    mock: { model: 'mock-cheap', content: "I'm sorry, I can't." } },
  { headers: { 'x-request-id': 'trace-me-1' } });
  const recs = await waitFor(() => {
    const r = traceRecords().filter((t) => t.request_id === 'trace-me-1');
    return r.length === 2 ? r : null;
  });
  assert.deepEqual(recs.map((r) => [r.stage, r.model, r.decision]), [[0, 'cheap', 'escalate'], [1, 'strong', 'accept']]);
  for (const r of recs) {
    for (const k of ['ts', 'request_id', 'route', 'stage', 'model', 'score', 'decision',
      'prompt_tokens', 'completion_tokens', 'cost_usd', 'latency_ms', 'prompt', 'answer']) {
      assert.ok(k in r, `record lacks ${k}`);
    }
  }
  assert.equal(recs[0].score, 0);
  assert.equal(recs[0].reason, 'refusal');
  assert.match(recs[0].prompt, /Which planet/);
  assert.equal(recs[0].answer, "I'm sorry, I can't.");
});
