// The gateway core through the official openai SDK, against sluice-mock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startMock, startGateway, mockConf, logLines, sleep, waitFor, SLOW } from './helpers.mjs';

let mock;
let gw;
let client;

const MSG = [{ role: 'user', content: 'What is the capital of France?' }];

before(async () => {
  mock = await startMock(['--require-key', 'sk-test-123']);
  gw = await startGateway(mockConf(mock.base), { env: { MOCK_KEY: 'sk-test-123' } });
  client = new OpenAI({ baseURL: gw.base, apiKey: 'client-key', maxRetries: 0 });
});

after(async () => {
  await gw?.stop();
  await mock?.stop();
});

test('chat completion: answer, usage, metadata headers', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'small', messages: MSG })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'mock-small', 'the body names the model that answered');
  assert.ok(data.choices[0].message.content.length > 0);
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  const h = response.headers;
  assert.equal(h.get('x-sluice-route'), 'small');
  assert.equal(h.get('x-sluice-model'), 'small');
  assert.match(h.get('x-request-id'), /^req_[0-9a-f]{24}$/);
  // cost = usage x price table (0.15 / 0.60 per Mtok)
  const want = (data.usage.prompt_tokens * 0.15 + data.usage.completion_tokens * 0.6) / 1e6;
  assert.ok(Math.abs(Number(h.get('x-sluice-cost')) - want) < 1e-12,
    `cost ${h.get('x-sluice-cost')} != ${want}`);
});

test('x-request-id is propagated when the client sends one', async () => {
  const { response } = await client.chat.completions
    .create({ model: 'small', messages: MSG }, { headers: { 'x-request-id': 'my-trace-42' } })
    .withResponse();
  assert.equal(response.headers.get('x-request-id'), 'my-trace-42');
});

test('one JSON log line per request with the documented fields, no secrets', async () => {
  await client.chat.completions.create(
    { model: 'small', messages: [{ role: 'user', content: 'log check 1' }] },
    { headers: { 'x-request-id': 'log-check-1' } });
  const line = await waitFor(() => logLines(gw).find((l) => l.request_id === 'log-check-1'));
  for (const k of ['ts', 'request_id', 'route', 'model', 'provider', 'status', 'stream',
    'latency_ms', 'upstream_ms', 'prompt_tokens', 'completion_tokens', 'cost_usd']) {
    assert.ok(k in line, `log line lacks ${k}`);
  }
  assert.equal(line.status, 200);
  assert.equal(line.model, 'small');
  assert.equal(line.provider, 'mock');
  assert.equal(line.stream, false);
  assert.equal(line.cache, 'MISS');
  assert.ok(line.cost_usd > 0);
  assert.ok(!gw.output().includes('sk-test-123'), 'the provider key never reaches the log');
});

test('streaming: chunks are relayed as they arrive, before the upstream finishes', async () => {
  const t0 = Date.now();
  const stream = await client.chat.completions.create({
    model: 'small', messages: MSG, stream: true,
    mock: { chunks: 6, interval_ms: 250 },
  });
  let first = 0;
  let text = '';
  let chunks = 0;
  for await (const c of stream) {
    if (!first) first = Date.now() - t0;
    chunks++;
    text += c.choices[0]?.delta?.content ?? '';
    assert.equal(c.usage ?? null, null, 'no usage chunk unless asked');
  }
  const total = Date.now() - t0;
  assert.ok(chunks >= 6);
  assert.ok(total >= 1200, `the upstream took ${total} ms`);
  assert.ok(first < total - 900, `first chunk at ${first} ms of ${total} ms: not relayed live`);
  // the streamed answer is the same deterministic answer as the plain one
  const plain = await client.chat.completions.create({ model: 'small', messages: MSG });
  assert.equal(text, plain.choices[0].message.content);
});

test('streaming: the usage chunk is sent only when the client asks for it', async () => {
  const stream = await client.chat.completions.create({
    model: 'small', messages: MSG, stream: true, stream_options: { include_usage: true },
  });
  let usage = null;
  for await (const c of stream) if (c.usage) usage = c.usage;
  assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0);
});

test('streamed requests are logged with their cost and time to first token', async () => {
  const stream = await client.chat.completions.create(
    { model: 'small', messages: [{ role: 'user', content: 'log stream 1' }], stream: true },
    { headers: { 'x-request-id': 'log-stream-1' } });
  for await (const c of stream) void c;
  const line = await waitFor(() => logLines(gw).find((l) => l.request_id === 'log-stream-1'));
  assert.equal(line.stream, true);
  assert.ok(line.cost_usd > 0, 'the usage requested upstream gives the cost');
  assert.ok(line.ttft_ms > 0);
});

test('completions and embeddings', async () => {
  const c = await client.completions.create({ model: 'small', prompt: 'Say hi' });
  assert.equal(c.object, 'text_completion');
  assert.ok(c.choices[0].text.length > 0);
  const e = await client.embeddings.create({ model: 'small', input: ['hello', 'world'] });
  assert.equal(e.data.length, 2);
  assert.ok(e.data[0].embedding.length > 0);
  const norm = Math.hypot(...e.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-3, 'base64 embeddings decode to the unit vector');
});

test('models.list and models.retrieve show routes and models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['large', 'reliable', 'small']);
  const m = await client.models.retrieve('reliable');
  assert.equal(m.id, 'reliable');
  await assert.rejects(client.models.retrieve('nope'), OpenAI.NotFoundError);
});

test('tools, response_format, n, logprobs and unknown fields pass through', async () => {
  const r = await client.chat.completions.create({
    model: 'small', messages: MSG, n: 2, logprobs: true, seed: 7,
    response_format: { type: 'json_object' },
  });
  assert.equal(r.choices.length, 2);
  assert.doesNotThrow(() => JSON.parse(r.choices[0].message.content), 'JSON mode reached the upstream');
  assert.ok(r.choices[0].logprobs.content.length > 0);
  const t = await client.chat.completions.create({
    model: 'small', messages: MSG,
    tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
  });
  assert.equal(t.choices[0].finish_reason, 'tool_calls');
  assert.equal(t.choices[0].message.tool_calls[0].function.name, 'lookup');
  // the mock's own control object is an unknown field: it reached the upstream
  const m = await client.chat.completions.create({
    model: 'small', messages: MSG, mock: { content: 'exactly this' },
  });
  assert.equal(m.choices[0].message.content, 'exactly this');
});

test('fallback: a 500 from the first model is answered by the next', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'reliable', messages: MSG, mock: { status: 500, model: 'mock-small' } })
    .withResponse();
  assert.equal(data.model, 'mock-large');
  assert.equal(response.headers.get('x-sluice-model'), 'large');
  assert.equal(response.headers.get('x-sluice-stages'), 'small:-:error,large:1.00:accept');
});

test('fallback on 429 and on a connection reset, streamed too', async () => {
  let r = await client.chat.completions.create({
    model: 'reliable', messages: MSG, mock: { status: 429, retry_after: 1, model: 'mock-small' },
  });
  assert.equal(r.model, 'mock-large');
  const stream = await client.chat.completions.create({
    model: 'reliable', messages: MSG, stream: true, mock: { fault: 'reset', model: 'mock-small' },
  });
  let model = '';
  for await (const c of stream) model = c.model;
  assert.equal(model, 'mock-large');
});

test('errors arrive as the SDK\'s own classes', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'small' }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'messages');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: 'gpt-9', messages: MSG }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  // an upstream 4xx passes through as is, with its message and code
  await assert.rejects(client.chat.completions.create({
    model: 'reliable', messages: MSG, mock: { status: 400, error_message: 'context too long' },
  }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.match(e.message, /context too long/);
    return true;
  });
  // every model failing is a 502
  await assert.rejects(client.chat.completions.create({
    model: 'reliable', messages: MSG, mock: { status: 503 },
  }), (e) => {
    assert.ok(e instanceof OpenAI.InternalServerError);
    assert.equal(e.status, 502);
    assert.equal(e.code, 'upstream_error');
    return true;
  });
});

test('a client abort cancels the upstream stream', async () => {
  await mock.reset();
  const ac = new AbortController();
  const stream = await client.chat.completions.create({
    model: 'small', messages: MSG, stream: true, mock: { chunks: 40, interval_ms: 100 },
  }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const c of stream) {
      void c;
      if (++n === 2) ac.abort();
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
  }
  // Chunks the SDK had read before the abort may still come out of the
  // iterator; the stream of 40 stops there all the same.
  assert.ok(n >= 2 && n < 10, `the stream stopped at the abort (${n} chunks)`);
  const s = await waitFor(async () => {
    const st = await mock.stats();
    return st.streams_aborted >= 1 ? st : null;
  }, { timeoutMs: 3000 });
  assert.equal(s.streams_completed, 0, 'the upstream stream did not run to its end');
});

test('a failure mid-stream ends with an error event', async () => {
  const stream = await client.chat.completions.create({
    model: 'small', messages: MSG, stream: true, mock: { fault: 'truncate', chunks: 6 },
  });
  let got = 0;
  await assert.rejects((async () => {
    for await (const c of stream) { void c; got++; }
  })(), (e) => {
    assert.ok(e instanceof OpenAI.APIError);
    assert.match(String(e.message), /ended the stream early|upstream/i);
    return true;
  });
  assert.ok(got > 0, 'some chunks arrived before the failure');
});

test('first-byte timeout gives a 504', async () => {
  const slow = await startGateway(mockConf(mock.base).replace(
    /first_byte_timeout_ms = \d+/, 'first_byte_timeout_ms = 300'),
  { env: { MOCK_KEY: 'sk-test-123' } });
  try {
    const c = new OpenAI({ baseURL: slow.base, apiKey: 'x', maxRetries: 0 });
    const t0 = Date.now();
    await assert.rejects(c.chat.completions.create({
      model: 'small', messages: MSG, mock: { first_byte_ms: 3000 },
    }), (e) => {
      assert.equal(e.status, 504);
      assert.equal(e.code, 'upstream_timeout');
      return true;
    });
    assert.ok(Date.now() - t0 < 2500 * SLOW);
  } finally {
    await slow.stop();
  }
});

test('an upstream without the key in the environment gets 401, passed through', async () => {
  const nokey = await startGateway(mockConf(mock.base), { env: { MOCK_KEY: '' } });
  try {
    const c = new OpenAI({ baseURL: nokey.base, apiKey: 'x', maxRetries: 0 });
    await assert.rejects(c.chat.completions.create({ model: 'small', messages: MSG }),
      OpenAI.AuthenticationError);
  } finally {
    await nokey.stop();
  }
});

test('azure provider: deployment URL, api-key header and api-version', async () => {
  const conf = `
providers = ( { name = "az"; type = "azure"; base_url = "${mock.url}"; api_key_env = "AZ_KEY";
                api_version = "2024-10-21"; } );
models = ( { name = "gpt4o"; provider = "az"; id = "my-deployment"; input_per_mtok = 1.0; output_per_mtok = 2.0; } );
`;
  const az = await startGateway(conf, { env: { AZ_KEY: 'sk-test-123' } });
  try {
    const c = new OpenAI({ baseURL: az.base, apiKey: 'x', maxRetries: 0 });
    const r = await c.chat.completions.create({ model: 'gpt4o', messages: MSG });
    assert.equal(r.model, 'my-deployment');
    const s = await c.chat.completions.create({ model: 'gpt4o', messages: MSG, stream: true });
    let n = 0;
    for await (const ch of s) { void ch; n++; }
    assert.ok(n > 1);
  } finally {
    await az.stop();
  }
});

test('SIGTERM lets an in-flight stream finish, then exits 0', async () => {
  const g = await startGateway(mockConf(mock.base), { env: { MOCK_KEY: 'sk-test-123' } });
  const c = new OpenAI({ baseURL: g.base, apiKey: 'x', maxRetries: 0 });
  const stream = await c.chat.completions.create({
    model: 'small', messages: MSG, stream: true, mock: { chunks: 8, interval_ms: 100 },
  });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const stopped = g.stop('SIGTERM');
  await sleep(50);
  // new connections are refused while draining
  await assert.rejects(fetch(`${g.url}/healthz`));
  let n = 1;
  for (;;) {
    const { done } = await it.next();
    if (done) break;
    n++;
  }
  assert.ok(n >= 8, `the stream finished (${n} chunks)`);
  const { code } = await stopped;
  assert.equal(code, 0);
});
