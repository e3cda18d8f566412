// Anthropic as a provider (type = "anthropic"): an OpenAI SDK client talks
// chat completions to sluice, and sluice talks the Messages API to
// sluice-mock's Anthropic mode, which checks requests the way Anthropic
// does and answers in its wire format. And the mock's Anthropic mode itself,
// read by the official @anthropic-ai/sdk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startMock, startGateway, logLines, waitFor, tmpDir, BUILD, SLOW } from './helpers.mjs';

const KEY = 'sk-ant-mock';
// $ per Mtok: claude 3 in / 15 out, cache reads 0.3, writes 3.75; small (OpenAI) 0.15 / 0.60,
// cached reads 0.075.
const CLAUDE = { in: 3, out: 15, read: 0.3, write: 3.75 };
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
  { type: 'function', function: { name: 'get_time',
    parameters: { type: 'object', properties: { tz: { type: 'string' }, utc: { type: 'boolean' } } } } },
];

let mock;
let gw;
let client;

function conf(mockUrl) {
  return `
log = { format = "json"; path = "-"; level = "info"; };
providers = (
  { name = "anth"; type = "anthropic"; base_url = "${mockUrl}/v1"; api_key_env = "ANTH_KEY";
    anthropic_version = "2023-06-01"; default_max_tokens = 64;
    retries = 2; retry_backoff_ms = 5; retry_max_backoff_ms = 20;
    timeout_ms = ${20000 * SLOW}; first_byte_timeout_ms = ${5000 * SLOW}; idle_timeout_ms = ${5000 * SLOW};
    breaker = { failures = 0; error_rate = 0; }; },
  { name = "anth-once"; type = "anthropic"; base_url = "${mockUrl}/v1"; api_key_env = "ANTH_KEY";
    timeout_ms = ${20000 * SLOW}; breaker = { failures = 0; error_rate = 0; }; },
  { name = "mock"; type = "openai"; base_url = "${mockUrl}/v1"; api_key_env = "ANTH_KEY";
    timeout_ms = ${20000 * SLOW}; }
);
models = (
  { name = "claude"; provider = "anth"; id = "claude-x"; input_per_mtok = ${CLAUDE.in};
    output_per_mtok = ${CLAUDE.out}; cache_read_per_mtok = ${CLAUDE.read};
    cache_write_per_mtok = ${CLAUDE.write}; },
  { name = "claude-once"; provider = "anth-once"; id = "claude-x"; input_per_mtok = ${CLAUDE.in};
    output_per_mtok = ${CLAUDE.out}; },
  { name = "claude-judge"; provider = "anth"; id = "claude-judge"; input_per_mtok = 1; output_per_mtok = 1; },
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 0.15; output_per_mtok = 0.60;
    cache_read_per_mtok = 0.075; },
  { name = "large"; provider = "mock"; id = "mock-large"; input_per_mtok = 2.5; output_per_mtok = 10; }
);
routes = (
  { name = "fb"; fallback = ( "claude-once", "small" ); },
  { name = "casc"; cascade = ( { model = "claude"; scorer = "rules"; threshold = 1.0; }, { model = "large"; } ); },
  { name = "judged"; cascade = ( { model = "small"; scorer = "judge"; judge = "claude-judge"; threshold = 0.7; },
                                 { model = "large"; } ); },
  { name = "nocache"; model = "claude"; cache = false; }
);
`;
}

before(async () => {
  mock = await startMock(['--require-key', KEY, '--content', 'claude-judge=9']);
  gw = await startGateway(conf(mock.url), { env: { ANTH_KEY: KEY } });
  client = new OpenAI({ baseURL: gw.base, apiKey: 'client', maxRetries: 0 });
});

after(async () => {
  await gw?.stop();
  await mock?.stop();
});

const user = (text) => [{ role: 'user', content: text }];

/** Every chunk of a stream, and the text and tool calls it adds up to. */
async function drain(stream) {
  const chunks = [];
  let text = '';
  const tools = [];
  for await (const c of stream) {
    chunks.push(c);
    const d = c.choices[0]?.delta;
    if (d?.content) text += d.content;
    for (const t of d?.tool_calls ?? []) {
      tools[t.index] ??= { id: t.id, name: t.function?.name, args: '' };
      tools[t.index].args += t.function?.arguments ?? '';
    }
  }
  return { chunks, text, tools };
}

function costOf(u, p) {
  const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
  const written = u.prompt_tokens_details?.cache_write_tokens ?? 0;
  return ((u.prompt_tokens - cached - written) * p.in + cached * (p.read ?? p.in)
    + written * (p.write ?? p.in) + u.completion_tokens * p.out) / 1e6;
}

// ---- the official Anthropic SDK against the mock's Anthropic mode ----

test('the official @anthropic-ai/sdk reads the mock: create, stream, tools, count, errors', async () => {
  const a = new Anthropic({ baseURL: mock.url, apiKey: KEY, maxRetries: 0 });
  const msg = await a.messages.create({ model: 'claude-x', max_tokens: 100, system: 'Be brief.',
    messages: [{ role: 'user', content: 'Name a colour.' }] });
  assert.equal(msg.type, 'message');
  assert.equal(msg.role, 'assistant');
  assert.match(msg.id, /^msg_/);
  assert.equal(msg.content[0].type, 'text');
  assert.ok(msg.content[0].text.length > 0);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0);

  // A stream with a text block and two tool_use blocks, in Anthropic's event order.
  const tools = TOOLS.map((t) => ({ name: t.function.name, input_schema: t.function.parameters }));
  const stream = a.messages.stream({ model: 'claude-x', max_tokens: 100, tools,
    messages: [{ role: 'user', content: 'Weather and time?' }],
    mock: { tool_calls: 2, content: 'Let me check.', chunks: 3 } });
  const types = [];
  stream.on('streamEvent', (e) => types.push(e.type));
  const final = await stream.finalMessage();
  assert.deepEqual(final.content.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  assert.equal(final.content[0].text, 'Let me check.');
  assert.equal(final.content[1].name, 'get_weather');
  assert.equal(typeof final.content[1].input.city, 'string');
  assert.equal(final.content[2].name, 'get_time');
  assert.equal(final.stop_reason, 'tool_use');
  assert.equal(types[0], 'message_start');
  assert.equal(types[1], 'content_block_start');
  assert.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
  assert.equal(types.filter((t) => t === 'content_block_start').length, 3);
  assert.equal(types.filter((t) => t === 'content_block_stop').length, 3);

  // A tool round trip: the result answers the tool_use, the model answers in text.
  const round = await a.messages.create({ model: 'claude-x', max_tokens: 100, tools,
    messages: [{ role: 'user', content: 'Weather?' },
      { role: 'assistant', content: final.content.slice(1, 2) },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: final.content[1].id, content: 'sunny' }] }] });
  assert.equal(round.stop_reason, 'end_turn');
  assert.equal(round.content[0].type, 'text');

  const counted = await a.messages.countTokens({ model: 'claude-x', messages: [{ role: 'user', content: 'Count me.' }] });
  assert.ok(counted.input_tokens > 0);

  const stop = await a.messages.create({ model: 'claude-x', max_tokens: 100, stop_sequences: ['STOP'],
    messages: [{ role: 'user', content: 'x' }], mock: { content: 'one two STOP three' } });
  assert.equal(stop.stop_reason, 'stop_sequence');
  assert.equal(stop.stop_sequence, 'STOP');
  assert.equal(stop.content[0].text, 'one two ');

  // Errors in Anthropic's shape and statuses.
  await assert.rejects(a.messages.create({ model: 'claude-x', max_tokens: 10,
    messages: [{ role: 'user', content: 'x' }], mock: { status: 529 } }), (e) => {
    assert.equal(e.status, 529);
    assert.equal(e.error.type, 'error');
    assert.equal(e.error.error.type, 'overloaded_error');
    return true;
  });
  await assert.rejects(new Anthropic({ baseURL: mock.url, apiKey: 'wrong', maxRetries: 0 }).messages.create(
    { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
  (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === 'authentication_error');
  await assert.rejects(a.messages.create({ model: 'claude-x', max_tokens: 10, messages: [
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_none', content: 'x' }] }] }),
  (e) => e instanceof Anthropic.BadRequestError && /tool_use_id/.test(e.message));
  await assert.rejects(a.messages.create({ model: 'claude-x', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 400 && /max_tokens: Field required/.test(e.message));
  // An error event inside a 200 stream.
  await assert.rejects(async () => {
    for await (const e of a.messages.stream({ model: 'claude-x', max_tokens: 10,
      messages: [{ role: 'user', content: 'x' }], mock: { fault: 'error_event' } })) { void e; }
  }, (e) => e instanceof Anthropic.APIError && e.error?.error?.type === 'overloaded_error');
});

// ---- OpenAI clients through sluice to an Anthropic provider ----

test('chat completion to an Anthropic model: translated answer, usage and cost', async () => {
  await mock.reset();
  const { data, response } = await client.chat.completions.create({ model: 'claude',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'anthropic plain 1' }] })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'claude-x', 'the body names the model that answered');
  assert.match(data.id, /^msg_mock_/);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.match(data.choices[0].message.content, /^Mock answer/);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  assert.equal(response.headers.get('x-sluice-model'), 'claude');
  const cost = Number(response.headers.get('x-sluice-cost'));
  assert.ok(Math.abs(cost - costOf(data.usage, CLAUDE)) < 1e-12, `cost ${cost}`);
  const st = await mock.stats();
  assert.equal(st.by_path['/v1/messages'], 1, 'one Messages call, x-api-key and anthropic-version accepted');

  // max_tokens: the client's, else the provider's default (64 here).
  const cut = await client.chat.completions.create({ model: 'claude', max_tokens: 3,
    messages: user('anthropic plain 2'), mock: { content: 'a b c d e f g' } });
  assert.equal(cut.choices[0].finish_reason, 'length');
  assert.equal(cut.usage.completion_tokens, 3);
  const long = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
  const dflt = await client.chat.completions.create({ model: 'claude',
    messages: user('anthropic plain 3'), mock: { content: long } });
  assert.equal(dflt.usage.completion_tokens, 64);
  // stop -> stop_sequences
  const stopped = await client.chat.completions.create({ model: 'claude', stop: 'STOP',
    messages: user('anthropic plain 4'), mock: { content: 'one STOP two' } });
  assert.equal(stopped.choices[0].message.content, 'one ');
  assert.equal(stopped.choices[0].finish_reason, 'stop');
});

test('streamed: role in the first chunk, usage only when asked, [DONE]', async () => {
  const stream = await client.chat.completions.create({ model: 'claude', stream: true,
    messages: user('anthropic stream 1'), mock: { chunks: 4 } });
  const { chunks, text } = await drain(stream);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'the first chunk carries the role');
  assert.equal(chunks.filter((c) => c.choices[0]?.delta?.role).length, 1);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'claude-x'));
  assert.match(text, /^Mock answer/);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.ok(chunks.every((c) => !c.usage), 'no usage chunk unless asked');

  const withUsage = await drain(await client.chat.completions.create({ model: 'claude', stream: true,
    stream_options: { include_usage: true }, messages: user('anthropic stream 2') }));
  const last = withUsage.chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.prompt_tokens > 0 && last.usage.completion_tokens > 0);

  // The same prompt, not streamed, says the same.
  const whole = await client.chat.completions.create({ model: 'nocache', messages: user('anthropic stream 1') });
  assert.equal(whole.choices[0].message.content, text);
});

test('tools: several tool calls, whole and streamed, with the right indexes', async () => {
  const body = { model: 'claude', tools: TOOLS, tool_choice: 'required',
    messages: user('anthropic tools 1'), mock: { tool_calls: 2, content: 'Let me look.', chunks: 3 } };
  const whole = await client.chat.completions.create(body);
  const m = whole.choices[0].message;
  assert.equal(whole.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.content, 'Let me look.');
  assert.deepEqual(m.tool_calls.map((t) => t.function.name), ['get_weather', 'get_time']);
  assert.ok(m.tool_calls.every((t) => /^toolu_mock_/.test(t.id) && t.type === 'function'));
  assert.equal(typeof JSON.parse(m.tool_calls[0].function.arguments).city, 'string');

  // Streamed: the text block is Anthropic's block 0, yet the tools are 0 and 1 (Portkey #1275).
  const { chunks, text, tools } = await drain(await client.chat.completions.create(
    { ...body, model: 'nocache', messages: user('anthropic tools 2'), stream: true }));
  assert.equal(text, 'Let me look.');
  const indexes = chunks.flatMap((c) => (c.choices[0]?.delta?.tool_calls ?? []).map((t) => t.index));
  assert.deepEqual([...new Set(indexes)], [0, 1]);
  assert.equal(tools.length, 2);
  assert.deepEqual(tools.map((t) => t.name), ['get_weather', 'get_time']);
  for (const t of tools) {
    assert.match(t.id, /^toolu_mock_/);
    assert.equal(typeof JSON.parse(t.args), 'object');
  }
  assert.ok(indexes.length > 2, 'arguments arrive in several deltas');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');

  // The round trip: tool calls and their results go back with their ids; a
  // result sent twice for one id reaches Anthropic once (LiteLLM #16711),
  // which the mock, like Anthropic, would refuse otherwise.
  const back = await client.chat.completions.create({ model: 'claude', tools: TOOLS, messages: [
    ...user('anthropic tools 1'), m,
    { role: 'tool', tool_call_id: m.tool_calls[0].id, content: 'sunny' },
    { role: 'tool', tool_call_id: m.tool_calls[1].id, content: '10:00' },
    { role: 'tool', tool_call_id: m.tool_calls[1].id, content: 'UTC' },
  ] });
  assert.equal(back.choices[0].finish_reason, 'stop');
  assert.match(back.choices[0].message.content, /^Mock answer/);
  // A result whose call is missing: Anthropic's 400, passed on in OpenAI's shape.
  await assert.rejects(client.chat.completions.create({ model: 'claude', messages: [
    ...user('anthropic tools 3'), { role: 'tool', tool_call_id: 'call_nowhere', content: 'x' }] }),
  (e) => e.status === 400 && e.type === 'invalid_request_error' && /tool_use_id/.test(e.message));
});

test('529 overloaded is retried; an error event before the first token is retried too', async () => {
  await mock.reset();
  const r = await client.chat.completions.create({ model: 'claude', messages: user('anthropic 529 a'),
    mock: { status: 529, fail_times: 2, key: 'o1' } }).withResponse();
  assert.match(r.data.choices[0].message.content, /^Mock answer/);
  assert.equal((await mock.stats()).by_path['/v1/messages'], 3, 'two 529s, then the answer');

  const s = await drain(await client.chat.completions.create({ model: 'claude', stream: true,
    messages: user('anthropic 529 b'), mock: { fault: 'error_event', fail_times: 1, key: 'o2' } }));
  assert.match(s.text, /^Mock answer/);
  assert.equal(s.chunks[0].choices[0].delta.role, 'assistant');

  // Retries run out: the gateway's error, OpenAI-shaped, saying why.
  await assert.rejects(client.chat.completions.create({ model: 'claude', messages: user('anthropic 529 c'),
    mock: { status: 529 } }), (e) => e.status === 502 && /529/.test(e.message) && /Overloaded/.test(e.message));
});

test('a fallback route moves from an overloaded Anthropic model to an OpenAI one', async () => {
  const r = await client.chat.completions.create({ model: 'fb', messages: user('anthropic fb 1'),
    mock: [{ model: 'claude-x', status: 529 }] }).withResponse();
  assert.equal(r.response.headers.get('x-sluice-model'), 'small');
  assert.equal(r.data.model, 'mock-small');
  assert.match(r.response.headers.get('x-sluice-stages'), /^claude-once:-:error,small:1\.00:accept$/);

  const s = await client.chat.completions.create({ model: 'fb', stream: true, messages: user('anthropic fb 2'),
    mock: [{ model: 'claude-x', fault: 'error_event' }] }).withResponse();
  assert.equal(s.response.headers.get('x-sluice-model'), 'small', 'no byte left before the fallback');
  const { chunks, text } = await drain(s.data);
  assert.equal(chunks[0].model, 'mock-small');
  assert.match(text, /^Mock answer/);

  // A 200 that carries an Anthropic error object is a failure too.
  const e200 = await client.chat.completions.create({ model: 'fb', messages: user('anthropic fb 5'),
    mock: [{ model: 'claude-x', fault: 'error_200' }] }).withResponse();
  assert.equal(e200.data.model, 'mock-small');
  assert.match(e200.response.headers.get('x-sluice-stages'), /^claude-once:-:error,small:/);

  // What Messages cannot do (n > 1) is a 400 for the Anthropic model, and the route moves on.
  const n = await client.chat.completions.create({ model: 'fb', n: 2, messages: user('anthropic fb 3') });
  assert.equal(n.model, 'mock-small');
  assert.equal(n.choices.length, 2);
  await assert.rejects(client.chat.completions.create({ model: 'claude', n: 2, messages: user('anthropic fb 4') }),
    (e) => e.status === 400 && e.param === 'n' && /one choice/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'claude', input: 'x' }),
    (e) => e.status === 400 && /only chat completions/.test(e.message));
  // Anthropic's own 400 (its temperature tops out at 1) passes on, OpenAI-shaped.
  await assert.rejects(client.chat.completions.create({ model: 'claude', temperature: 1.5, messages: user('t') }),
    (e) => e.status === 400 && e.type === 'invalid_request_error' && /temperature/.test(e.message));
});

test('cascades: an Anthropic stage is scored and escalates; an Anthropic judge scores', async () => {
  const ok = await client.chat.completions.create({ model: 'casc', messages: user('anthropic casc 1') })
    .withResponse();
  assert.equal(ok.response.headers.get('x-sluice-stages'), 'claude:1.00:accept');
  assert.equal(ok.data.model, 'claude-x');

  const up = await client.chat.completions.create({ model: 'casc', messages: user('anthropic casc 2'),
    mock: [{ model: 'claude-x', content: 'I cannot help with that.' }] }).withResponse();
  assert.match(up.response.headers.get('x-sluice-stages'), /^claude:0\.00:escalate,large:/);
  assert.equal(up.data.model, 'mock-large');

  // Streamed, the accepted Anthropic answer is replayed as chunks, the role first.
  const s = await drain(await client.chat.completions.create({ model: 'casc', stream: true,
    messages: user('anthropic casc 3') }));
  assert.equal(s.chunks[0].choices[0].delta.role, 'assistant');
  assert.match(s.text, /^Mock answer/);

  const judged = await client.chat.completions.create({ model: 'judged', messages: user('anthropic judged 1') })
    .withResponse();
  assert.match(judged.response.headers.get('x-sluice-stages'), /^small:0\.90:accept$/);
});

test('cache hits serve an Anthropic answer again, whole and as a stream', async () => {
  await mock.reset();
  const body = { model: 'claude', messages: user('anthropic cache 1') };
  const first = await client.chat.completions.create(body).withResponse();
  assert.equal(first.response.headers.get('x-sluice-cache'), 'MISS');
  const again = await client.chat.completions.create(body).withResponse();
  assert.equal(again.response.headers.get('x-sluice-cache'), 'HIT');
  assert.deepEqual(again.data, first.data);
  const s = await drain(await client.chat.completions.create({ ...body, stream: true }));
  assert.equal(s.chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(s.text, first.data.choices[0].message.content);
  assert.equal((await mock.stats()).by_path['/v1/messages'], 1);

  // A stream is stored as it is relayed, and served whole next time.
  const streamed = await drain(await client.chat.completions.create({ model: 'claude', stream: true,
    messages: user('anthropic cache 2'), tools: TOOLS, mock: { tool_calls: 2 } }));
  const hit = await client.chat.completions.create({ model: 'claude', messages: user('anthropic cache 2'),
    tools: TOOLS, mock: { tool_calls: 2 } }).withResponse();
  assert.equal(hit.response.headers.get('x-sluice-cache'), 'HIT');
  assert.deepEqual(hit.data.choices[0].message.tool_calls.map((t) => [t.id, t.function.arguments]),
    streamed.tools.map((t) => [t.id, t.args]));
});

test('cached prompt tokens: reported the OpenAI way and priced right, Anthropic and OpenAI alike', async () => {
  // Anthropic: input_tokens leaves the cache out; the answer counts it in, once.
  const r = await client.chat.completions.create({ model: 'claude', messages: user('anthropic cost 1'),
    mock: { cache_read_tokens: 2000, cache_write_tokens: 300 } }, { headers: { 'x-request-id': 'anth-cost-1' } })
    .withResponse();
  const u = r.data.usage;
  assert.equal(u.prompt_tokens_details.cached_tokens, 2000);
  assert.equal(u.prompt_tokens_details.cache_write_tokens, 300);
  assert.ok(u.prompt_tokens >= 2300, 'prompt_tokens includes the cached tokens');
  const want = costOf(u, CLAUDE);
  assert.ok(Math.abs(Number(r.response.headers.get('x-sluice-cost')) - want) < 1e-12);
  assert.ok(want < (u.prompt_tokens * CLAUDE.in + u.completion_tokens * CLAUDE.out) / 1e6,
    'cached tokens are not billed as full input');
  const line = await waitFor(() => logLines(gw).find((l) => l.request_id === 'anth-cost-1'));
  assert.equal(line.cached_tokens, 2000);
  assert.equal(line.prompt_tokens, u.prompt_tokens);
  assert.ok(Math.abs(line.cost_usd - want) < 1e-9);

  // Streamed, the cache tokens survive the translation (LiteLLM #31069).
  const s = await drain(await client.chat.completions.create({ model: 'claude', stream: true,
    stream_options: { include_usage: true }, messages: user('anthropic cost 2'),
    mock: { cache_read_tokens: 500 } }));
  assert.equal(s.chunks.at(-1).usage.prompt_tokens_details.cached_tokens, 500);

  // OpenAI: prompt_tokens already includes cached_tokens.
  const o = await client.chat.completions.create({ model: 'small', messages: user('anthropic cost 3'),
    mock: { cache_read_tokens: 4 } }).withResponse();
  assert.equal(o.data.usage.prompt_tokens_details.cached_tokens, 4);
  const ow = costOf(o.data.usage, { in: 0.15, out: 0.6, read: 0.075 });
  assert.ok(Math.abs(Number(o.response.headers.get('x-sluice-cost')) - ow) < 1e-12);
});

test('--check refuses scorers an Anthropic model cannot serve', () => {
  const dir = tmpDir();
  const file = join(dir, 'gateway.conf');
  writeFileSync(file, `
providers = ( { name = "a"; type = "anthropic"; base_url = "https://api.anthropic.com/v1"; } );
models = ( { name = "claude"; provider = "a"; }, { name = "other"; provider = "a"; id = "x"; } );
routes = ( { name = "r"; cascade = ( { model = "claude"; scorer = "logprob"; threshold = 0.5; },
                                     { model = "other"; } ); } );
`);
  const r = spawnSync(join(BUILD, 'sluice'), ['--check', file], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /routes\.r\.cascade\.\[0\]\.scorer: model "claude" is served by an Anthropic provider, whose answers carry no logprobs/);
});
