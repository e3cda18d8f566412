// Anthropic in front and behind: the official @anthropic-ai/sdk talks the
// Messages API to sluice, sluice translates it into its chat form
// (api_messages.c) and an Anthropic-type provider translates that back into
// a Messages call (provider_anthropic.c) to sluice-mock's Anthropic mode,
// which checks requests the way Anthropic does (roles alternating, each
// tool_use answered by exactly one tool_result, no unknown members). The
// answer takes the same two translations the other way. What the client sees
// must be what Anthropic said: text, tool_use blocks with their ids and
// inputs, stop reasons, usage with the prompt cache's tokens, and errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startMock, startGateway, logLines, waitFor, SLOW } from './helpers.mjs';

const KEY = 'sk-ant-upstream';
// $ per Mtok, as Anthropic prices a model: input, output, cache reads and writes.
const PRICE = { in: 3, out: 15, read: 0.3, write: 3.75 };
const WEATHER = { name: 'get_weather', description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const TIME = { name: 'get_time', input_schema: { type: 'object', properties: { tz: { type: 'string' } } } };

let mock;
let gw;
let client;
let direct;

before(async () => {
  // Per upstream model, the mock's controls (the Messages translator drops
  // a client's unknown members, so they cannot come in the body).
  mock = await startMock(['--require-key', KEY,
    '--mock', 'claude-two={"tool_calls":2,"content":"Let me check.","chunks":3}',
    '--mock', 'claude-cached={"cache_read_tokens":2000,"cache_write_tokens":300}',
    '--mock', 'claude-busy={"status":529}',
    '--mock', 'claude-stop={"content":"one two STOP three"}']);
  const model = (name, id) => `{ name = "${name}"; provider = "anth"; id = "${id}";
    input_per_mtok = ${PRICE.in}; output_per_mtok = ${PRICE.out};
    cache_read_per_mtok = ${PRICE.read}; cache_write_per_mtok = ${PRICE.write}; }`;
  gw = await startGateway(`
log = { format = "json"; path = "-"; level = "info"; };
providers = (
  { name = "anth"; type = "anthropic"; base_url = "${mock.url}/v1"; api_key_env = "ANTH_KEY";
    retries = 1; retry_backoff_ms = 5; retry_max_backoff_ms = 10;
    timeout_ms = ${20000 * SLOW}; first_byte_timeout_ms = ${5000 * SLOW}; idle_timeout_ms = ${5000 * SLOW};
    breaker = { failures = 0; error_rate = 0; }; }
);
models = (
  ${model('claude', 'claude-x')},
  ${model('claude-two', 'claude-two')},
  ${model('claude-cached', 'claude-cached')},
  ${model('claude-busy', 'claude-busy')},
  ${model('claude-stop', 'claude-stop')}
);
`, { env: { ANTH_KEY: KEY } });
  client = new Anthropic({ baseURL: gw.url, apiKey: 'client', maxRetries: 0 });
  direct = new Anthropic({ baseURL: mock.url, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  await gw?.stop();
  await mock?.stop();
});

const ask = (text) => [{ role: 'user', content: text }];

function costOf(u) {
  return (u.input_tokens * PRICE.in + (u.cache_read_input_tokens ?? 0) * PRICE.read
    + (u.cache_creation_input_tokens ?? 0) * PRICE.write + u.output_tokens * PRICE.out) / 1e6;
}

/** Blocks without the ids the mock numbers per call. */
const noIds = (blocks) => blocks.map(({ id, ...b }) => b);

/** The upstream's own answer, asked directly, with sluice's model id. */
async function upstream(body) {
  return direct.messages.create({ ...body, model: body.model === 'claude' ? 'claude-x' : body.model });
}

test('messages.create through an Anthropic provider says what Anthropic said', async () => {
  await mock.reset();
  const body = { model: 'claude', max_tokens: 64, system: 'Be brief.', messages: ask('Name a colour.') };
  const { data, response } = await client.messages.create(body).withResponse();
  const want = await upstream(body);
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.equal(data.model, 'claude-x');
  assert.deepEqual(data.content, want.content, 'the same blocks as the upstream sent');
  assert.equal(data.stop_reason, 'end_turn');
  assert.equal(data.usage.input_tokens, want.usage.input_tokens);
  assert.equal(data.usage.output_tokens, want.usage.output_tokens);
  assert.ok(Math.abs(Number(response.headers.get('x-sluice-cost')) - costOf(data.usage)) < 1e-12);
  // one Messages call upstream (the second was the direct one)
  assert.equal((await mock.stats()).by_path['/v1/messages'], 2);

  // max_tokens reaches the upstream: a cut answer is max_tokens
  const cut = await client.messages.create({ model: 'claude', max_tokens: 2, messages: ask('Count to ten.') });
  assert.equal(cut.stop_reason, 'max_tokens');
  assert.equal(cut.usage.output_tokens, 2);
});

test('messages.stream with text: Anthropic\'s events, real input tokens at the start, the same answer', async () => {
  const body = { model: 'claude', max_tokens: 64, messages: ask('Describe a lighthouse.') };
  const want = await upstream(body);
  const stream = client.messages.stream(body, { headers: { 'Cache-Control': 'no-cache' } });
  const types = [];
  let start;
  let text = '';
  stream.on('streamEvent', (e) => {
    types.push(e.type);
    if (e.type === 'message_start') start = { ...e.message.usage }; // the SDK updates the object later
  });
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, want.content[0].text);
  assert.deepEqual(final.content, want.content);
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.input_tokens, want.usage.input_tokens);
  assert.equal(final.usage.output_tokens, want.usage.output_tokens);
  assert.ok(start.input_tokens > 0, 'message_start never says 0 input tokens (LiteLLM #24176)');
  assert.equal(types[0], 'message_start');
  assert.ok(types.filter((t) => t === 'content_block_delta').length >= 2, 'the text streams');
  assert.equal(types.filter((t) => t === 'content_block_start').length, 1);
  assert.equal(types.filter((t) => t === 'content_block_stop').length, 1);
  assert.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
});

test('messages.stream with a tool round trip: tool_use ids and inputs survive both translations', async () => {
  const first = { model: 'claude', max_tokens: 64, tools: [WEATHER], messages: ask('Weather in Bergen?') };
  const s1 = client.messages.stream(first);
  const events = [];
  s1.on('streamEvent', (e) => events.push(e));
  const f1 = await s1.finalMessage();
  const want = await upstream(first);
  assert.equal(f1.stop_reason, 'tool_use');
  assert.deepEqual(f1.content, want.content, 'the tool_use block as the upstream sent it');
  const use = f1.content.find((b) => b.type === 'tool_use');
  assert.match(use.id, /^toolu_mock_/, 'Anthropic\'s own tool id');
  assert.equal(typeof use.input.city, 'string');
  const at = events.findIndex((e) => e.type === 'content_block_start' && e.content_block.type === 'tool_use');
  assert.ok(at >= 0);
  const idx = events[at].index;
  assert.ok(events.some((e) => e.type === 'content_block_delta' && e.index === idx && e.delta.type === 'input_json_delta'));
  assert.ok(events.some((e) => e.type === 'content_block_stop' && e.index === idx), 'the tool block is closed');
  // whole, the same tool_use block, its id included
  const w1 = await client.messages.create(first, { headers: { 'Cache-Control': 'no-cache' } });
  assert.deepEqual(w1.content, want.content);
  assert.equal(w1.stop_reason, 'tool_use');

  // The result goes back by id; the mock, like Anthropic, refuses a
  // tool_result whose tool_use is not in the turn before.
  const history = [...first.messages, { role: 'assistant', content: f1.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Rain, 9C' }] }];
  const s2 = client.messages.stream({ ...first, messages: history });
  const f2 = await s2.finalMessage();
  assert.equal(f2.stop_reason, 'end_turn');
  assert.equal(f2.content[0].type, 'text');
  assert.deepEqual(f2.content, (await upstream({ ...first, messages: history })).content);
  // A result sent twice for one tool_use reaches Anthropic once (LiteLLM #16711).
  const twice = [...history.slice(0, 2), { role: 'user', content: [
    { type: 'tool_result', tool_use_id: use.id, content: 'Rain, 9C' },
    { type: 'tool_result', tool_use_id: use.id, content: 'Rain, 9C' }] }];
  const dedup = await client.messages.create({ ...first, messages: twice });
  assert.deepEqual(dedup.content, f2.content);
  // A result for a call nobody made: a 400 in Anthropic's shape, before any call.
  await assert.rejects(client.messages.create({ ...first, messages: [
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_nowhere', content: 'x' }] }] }),
  (e) => e instanceof Anthropic.BadRequestError && e.error.error.type === 'invalid_request_error'
    && /tool_result for 'toolu_nowhere'/.test(e.message));
});

test('messages.stream with two tools after text: the blocks keep Anthropic\'s order and indexes', async () => {
  const body = { model: 'claude-two', max_tokens: 64, tools: [WEATHER, TIME], messages: ask('Weather and time?') };
  const want = await upstream(body);
  assert.deepEqual(want.content.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  const stream = client.messages.stream(body);
  const events = [];
  stream.on('streamEvent', (e) => events.push(e));
  const final = await stream.finalMessage();
  // the mock numbers several tools' ids per call, so the ids differ from the direct call's
  assert.deepEqual(noIds(final.content), noIds(want.content));
  const ids = final.content.slice(1).map((b) => b.id);
  assert.ok(ids.every((id) => /^toolu_mock_/.test(id)) && ids[0] !== ids[1], ids.join());
  assert.equal(final.stop_reason, 'tool_use');
  const starts = events.filter((e) => e.type === 'content_block_start');
  assert.deepEqual(starts.map((e) => [e.index, e.content_block.type]), [[0, 'text'], [1, 'tool_use'], [2, 'tool_use']]);
  for (const i of [0, 1, 2]) {
    assert.equal(events.filter((e) => e.type === 'content_block_stop' && e.index === i).length, 1, `block ${i} stopped once`);
  }
  // each block's deltas come between its start and its stop
  for (const [n, e] of events.entries()) {
    if (e.type !== 'content_block_delta') continue;
    const open = events.slice(0, n).filter((x) => x.type === 'content_block_start').at(-1);
    assert.equal(e.index, open.index);
  }
  // whole, the same three blocks
  const whole = await client.messages.create(body);
  assert.deepEqual(noIds(whole.content), noIds(want.content));
});

test('stop_sequences: the client learns which one ended the answer, whole and streamed', async () => {
  const body = { model: 'claude-stop', max_tokens: 64, stop_sequences: ['END', 'STOP'], messages: ask('Count.') };
  const want = await upstream(body);
  assert.equal(want.stop_reason, 'stop_sequence');
  const whole = await client.messages.create(body, { headers: { 'Cache-Control': 'no-cache' } });
  assert.equal(whole.content[0].text, 'one two ');
  assert.equal(whole.stop_reason, 'stop_sequence');
  assert.equal(whole.stop_sequence, 'STOP');
  const streamed = await client.messages.stream(body, { headers: { 'Cache-Control': 'no-cache' } }).finalMessage();
  assert.deepEqual(streamed.content, whole.content);
  assert.equal(streamed.stop_reason, 'stop_sequence');
  assert.equal(streamed.stop_sequence, 'STOP');
  // an answer that ran to its end is end_turn, with no stop sequence
  const plain = await client.messages.create({ ...body, stop_sequences: ['NEVER'] });
  assert.equal(plain.stop_reason, 'end_turn');
  assert.equal(plain.stop_sequence, null);
});

test('messages.countTokens with an Anthropic provider behind: an estimate near the upstream\'s count', async () => {
  const messages = ask('How many tokens is this sentence, roughly?');
  const { input_tokens: n } = await client.messages.countTokens({ model: 'claude', messages });
  const real = await direct.messages.countTokens({ model: 'claude-x', messages });
  assert.ok(n > 0, 'never a fake 0');
  assert.ok(Math.abs(n - real.input_tokens) <= 8, `estimate ${n}, upstream ${real.input_tokens}`);
  const { input_tokens: withTools } = await client.messages.countTokens({ model: 'claude', messages, tools: [WEATHER], system: 'Be terse.' });
  assert.ok(withTools > n + 10, 'tools and system count');
  await assert.rejects(client.messages.countTokens({ model: 'nope', messages }),
    (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error');
});

test('prompt cache tokens: reported as Anthropic does, whole and streamed, and priced right', async () => {
  const body = { model: 'claude-cached', max_tokens: 64, messages: ask('A long shared prefix, cached.') };
  const want = await upstream(body);
  const { data, response } = await client.messages.create(body, { headers: { 'x-request-id': 'anth-anth-cost' } })
    .withResponse();
  assert.equal(data.usage.cache_read_input_tokens, 2000);
  assert.equal(data.usage.cache_creation_input_tokens, 300);
  assert.equal(data.usage.input_tokens, want.usage.input_tokens, 'input_tokens leaves the cache out, as Anthropic\'s');
  assert.equal(data.usage.output_tokens, want.usage.output_tokens);
  const cost = Number(response.headers.get('x-sluice-cost'));
  assert.ok(Math.abs(cost - costOf(data.usage)) < 1e-12, `cost ${cost}`);
  const full = ((data.usage.input_tokens + 2300) * PRICE.in + data.usage.output_tokens * PRICE.out) / 1e6;
  assert.ok(cost < full, 'cached tokens are not billed as full input (LiteLLM #11789)');
  const line = await waitFor(() => logLines(gw).find((l) => l.request_id === 'anth-anth-cost'));
  assert.equal(line.dialect, 'messages');
  assert.equal(line.cached_tokens, 2000);
  assert.equal(line.prompt_tokens, data.usage.input_tokens + 2300);

  // streamed, the cache tokens survive both translations (LiteLLM #31069)
  const stream = client.messages.stream(body, { headers: { 'Cache-Control': 'no-cache' } });
  const final = await stream.finalMessage();
  assert.equal(final.usage.cache_read_input_tokens, 2000);
  assert.equal(final.usage.cache_creation_input_tokens, 300);
  assert.equal(final.usage.input_tokens, want.usage.input_tokens);
});

test('an overloaded Anthropic upstream: retried, then an error in Anthropic\'s shape', async () => {
  await mock.reset();
  await assert.rejects(client.messages.create({ model: 'claude-busy', max_tokens: 8, messages: ask('x') }), (e) => {
    assert.ok(e instanceof Anthropic.APIError, `${e}`);
    assert.equal(e.status, 502);
    assert.equal(e.error.type, 'error');
    assert.equal(e.error.error.type, 'api_error');
    assert.match(e.error.error.message, /529/);
    return true;
  });
  assert.equal((await mock.stats()).by_path['/v1/messages'], 2, 'the first try and one retry');
  // Anthropic's own 400 (its temperature tops out at 1) passes on.
  await assert.rejects(client.messages.create({ model: 'claude', max_tokens: 8, temperature: 1.5, messages: ask('x') }),
    (e) => e instanceof Anthropic.BadRequestError && e.error.error.type === 'invalid_request_error'
      && /temperature/.test(e.message));
});
