// Clients that speak other APIs than chat completions: OpenAI's Responses API
// (the official openai SDK and an @openai/agents agent) and Anthropic's Messages
// API (the official @anthropic-ai/sdk), with sluice-mock, an OpenAI-type
// provider, behind. Each runs through a fallback and a cascade route, streamed
// and not, and from the cache; one prompt sent the three ways costs the same,
// logs the same fields and is one cache entry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Agent, run, tool, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled } from '@openai/agents';
import { z } from 'zod';
import { startMock, startGateway, logLines, waitFor, SLOW } from './helpers.mjs';

const KEY = 'sk-dialects-1';
const sha = (s) => createHash('sha256').update(s).digest('hex');

let mock;
let gw;
let openai;
let anthropic;

const WEATHER_SCHEMA = {
  type: 'object', properties: { city: { type: 'string' } }, required: ['city'],
};
const RESPONSES_TOOL = { type: 'function', name: 'get_weather', description: 'The weather in a city', parameters: WEATHER_SCHEMA };
const MESSAGES_TOOL = { name: 'get_weather', description: 'The weather in a city', input_schema: WEATHER_SCHEMA };

before(async () => {
  // mock-broken streams half its answer, then drops the connection.
  mock = await startMock(['--mock', 'mock-broken={"fault":"truncate"}']);
  gw = await startGateway(`
log = { format = "json"; path = "-"; level = "info"; };
max_body_bytes = 262144;
providers = (
  { name = "mock"; type = "openai"; base_url = "${mock.base}"; api_key_env = "MOCK_KEY";
    timeout_ms = ${20000 * SLOW}; first_byte_timeout_ms = ${5000 * SLOW}; idle_timeout_ms = ${5000 * SLOW}; }
);
models = (
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 0.15; output_per_mtok = 0.60; },
  { name = "large"; provider = "mock"; id = "mock-large"; input_per_mtok = 2.50; output_per_mtok = 10.00; },
  { name = "broken"; provider = "mock"; id = "mock-broken"; input_per_mtok = 1.0; output_per_mtok = 1.0; retries = 0; }
);
routes = (
  { name = "reliable"; fallback = ( "small", "large" ); },
  { name = "smart"; cascade = ( { model = "small"; scorer = "rules"; threshold = 0.5; }, { model = "large"; } ); }
);
keys = ( { name = "team"; key_sha256 = "${sha(KEY)}"; } );
`, { env: { MOCK_KEY: 'mock-key' } });
  openai = new OpenAI({ baseURL: gw.base, apiKey: KEY, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
  setDefaultOpenAIClient(openai);
  setOpenAIAPI('responses');
  setTracingDisabled(true);
});

after(async () => {
  await gw?.stop();
  await mock?.stop();
});

/** The SSE events of a raw streamed POST: [{event, data}]. */
async function rawEvents(path, body, headers = {}) {
  const res = await fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}`, ...headers },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const text = await res.text();
  return text.split('\n\n').filter((b) => b.trim() && !b.startsWith(':')).map((b) => {
    const ev = b.match(/^event: (.*)$/m);
    const data = b.match(/^data: (.*)$/m);
    return { event: ev ? ev[1] : null, data: JSON.parse(data[1]) };
  });
}

// ---- the Responses API ----

test('responses.create: a response object with output items, output_text and usage', async () => {
  const { data, response } = await openai.responses
    .create({ model: 'reliable', input: 'What is the capital of France?', instructions: 'Be brief.' })
    .withResponse();
  assert.equal(data.object, 'response');
  assert.match(data.id, /^resp_[0-9a-f]{24}$/);
  assert.equal(data.status, 'completed');
  assert.equal(data.model, 'mock-small', 'the model that answered');
  assert.equal(data.instructions, 'Be brief.');
  assert.equal(data.store, false, 'nothing is kept');
  assert.equal(data.output.length, 1);
  assert.equal(data.output[0].type, 'message');
  assert.equal(data.output[0].role, 'assistant');
  assert.equal(data.output[0].content[0].type, 'output_text');
  assert.ok(data.output_text.length > 0);
  assert.equal(data.output_text, data.output[0].content[0].text);
  assert.ok(data.usage.input_tokens > 0 && data.usage.output_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.input_tokens + data.usage.output_tokens);
  assert.equal(data.usage.input_tokens_details.cached_tokens, 0);
  assert.equal(data.usage.output_tokens_details.reasoning_tokens, 0);
  assert.equal(response.headers.get('x-sluice-route'), 'reliable');
  assert.equal(response.headers.get('x-sluice-model'), 'small');
  const want = (data.usage.input_tokens * 0.15 + data.usage.output_tokens * 0.6) / 1e6;
  assert.ok(Math.abs(Number(response.headers.get('x-sluice-cost')) - want) < 1e-12);
});

test('responses.stream: typed events in OpenAI\'s order, numbered, ending in response.completed', async () => {
  const input = 'Tell me about rivers.';
  const whole = await openai.responses.create({ model: 'reliable', input });
  const stream = openai.responses.stream({ model: 'reliable', input });
  const seen = [];
  let deltas = '';
  stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
  for await (const ev of stream) seen.push(ev);
  const final = await stream.finalResponse();
  assert.deepEqual(seen.map((e) => e.type), [
    'response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added',
    ...seen.filter((e) => e.type === 'response.output_text.delta').map(() => 'response.output_text.delta'),
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
    'response.completed']);
  assert.ok(seen.filter((e) => e.type === 'response.output_text.delta').length >= 2, 'the text streams');
  assert.deepEqual(seen.map((e) => e.sequence_number), seen.map((_, i) => i));
  assert.equal(deltas, whole.output_text, 'streamed and whole answers say the same');
  assert.equal(final.output_text, whole.output_text);
  assert.equal(final.status, 'completed');
  assert.deepEqual(final.usage, whole.usage);
  assert.equal(seen[0].response.status, 'in_progress');
  assert.equal(seen.at(-1).response.id, seen[0].response.id);
});

test('responses with a function tool: a function_call item, whole and streamed', async () => {
  const body = { model: 'reliable', input: 'What is the weather in Paris?', tools: [RESPONSES_TOOL] };
  const whole = await openai.responses.create(body);
  const call = whole.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(whole.output));
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  assert.equal(typeof JSON.parse(call.arguments).city, 'string');

  const events = await rawEvents('/v1/responses', { ...body, stream: true });
  const types = events.map((e) => e.data.type);
  assert.deepEqual(events.map((e) => e.event), types, 'the event: line names the type');
  const added = events.find((e) => e.data.type === 'response.output_item.added');
  assert.equal(added.data.item.type, 'function_call');
  assert.equal(added.data.item.call_id, call.call_id);
  const args = events.filter((e) => e.data.type === 'response.function_call_arguments.delta')
    .map((e) => e.data.delta).join('');
  assert.ok(args.length > 0);
  const done = events.find((e) => e.data.type === 'response.function_call_arguments.done');
  assert.equal(done.data.arguments, args);
  assert.equal(done.data.arguments, call.arguments);
  assert.ok(types.indexOf('response.output_item.done') > types.indexOf('response.function_call_arguments.done'));
  assert.equal(types.at(-1), 'response.completed');
  assert.deepEqual(events.at(-1).data.response.output[0].arguments, call.arguments);
});

test('responses through a cascade route, streamed and not, then from the cache', async () => {
  const body = { model: 'smart', input: 'Which planet is largest?', max_output_tokens: 64 };
  const first = await openai.responses.create(body).withResponse();
  assert.equal(first.response.headers.get('x-sluice-cache'), 'MISS');
  assert.equal(first.response.headers.get('x-sluice-stages'), 'small:1.00:accept');
  const again = await openai.responses.create(body).withResponse();
  assert.equal(again.response.headers.get('x-sluice-cache'), 'HIT');
  assert.equal(again.data.output_text, first.data.output_text);
  assert.notEqual(again.data.id, first.data.id, 'a new response');
  assert.deepEqual(again.data.usage, first.data.usage);

  // a scored (buffered) stage's answer streamed, and the same replayed from the cache
  const sbody = { model: 'smart', input: 'Which moon is largest?', max_output_tokens: 64 };
  for (const want of ['MISS', 'HIT']) {
    const { data: stream, response } = await openai.responses.create({ ...sbody, stream: true }).withResponse();
    assert.equal(response.headers.get('x-sluice-cache'), want);
    let text = '';
    let completed;
    for await (const ev of stream) {
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    assert.ok(text.length > 0);
    assert.equal(completed.output_text ?? completed.output[0].content[0].text, text);
    assert.ok(completed.usage.input_tokens > 0, `${want}: usage in response.completed`);
  }
});

test('responses: what needs state or hosted tools is a clear 400 in OpenAI\'s shape', async () => {
  const cases = [
    [{ store: true }, 'store'],
    [{ previous_response_id: 'resp_123' }, 'previous_response_id'],
    [{ conversation: 'conv_1' }, 'conversation'],
    [{ tools: [{ type: 'web_search_preview' }] }, 'tools'],
    [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input'],
    [{ input: [{ type: 'function_call_output', call_id: 'call_x', output: 'hi' }] }, 'input'],
    [{ input: 42 }, 'input'],
  ];
  for (const [extra, param] of cases) {
    await assert.rejects(openai.responses.create({ model: 'reliable', input: 'hi', ...extra }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${JSON.stringify(extra)}: ${e}`);
      assert.equal(e.param, param);
      assert.equal(e.type, 'invalid_request_error');
      return true;
    });
  }
  // store: false and an omitted store both work
  const r = await openai.responses.create({ model: 'reliable', input: 'hi', store: false });
  assert.equal(r.status, 'completed');
});

test('responses: a stream that fails midway ends with error and response.failed', async () => {
  const events = await rawEvents('/v1/responses', { model: 'broken', input: 'Tell me a long story.', stream: true });
  const types = events.map((e) => e.data.type);
  assert.equal(types[0], 'response.created');
  assert.ok(types.includes('response.output_text.delta'), 'half the answer went out');
  assert.deepEqual(types.slice(-2), ['error', 'response.failed']);
  const failed = events.at(-1).data.response;
  assert.equal(failed.status, 'failed');
  assert.equal(failed.error.code, 'server_error');
  assert.match(failed.error.message, /Upstream broken/);
  assert.equal(failed.output[0].status, 'incomplete');
  assert.deepEqual(events.map((e) => e.data.sequence_number), events.map((_, i) => i));
  // the SDK's stream helper fails rather than returning half an answer as complete
  const stream = openai.responses.stream({ model: 'broken', input: 'Tell me a long story.' });
  await assert.rejects(stream.finalResponse());
});

test('an @openai/agents agent with one function tool, through a cascade, streamed and not, then cached', async () => {
  const cities = [];
  const getWeather = tool({
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: z.object({ city: z.string() }),
    execute: async ({ city }) => { cities.push(city); return `Sunny, 24C in ${city}`; },
  });
  // The agent's calls carry one request id, to find their log lines.
  const agent = new Agent({
    name: 'forecaster', instructions: 'Answer questions about the weather.', tools: [getWeather], model: 'smart',
    modelSettings: { providerData: { extraHeaders: { 'x-request-id': 'agent-run', 'x-sluice-cache-namespace': 'agents' } } },
  });
  const r = await run(agent, 'What is the weather in Lisbon?');
  assert.equal(cities.length, 1, 'the model called the tool once');
  assert.ok(typeof r.finalOutput === 'string' && r.finalOutput.length > 0);
  const items = r.newItems.map((i) => i.type);
  assert.deepEqual(items, ['tool_call_item', 'tool_call_output_item', 'message_output_item']);

  const s = await run(agent, 'What is the weather in Lisbon?', { stream: true });
  let text = '';
  for await (const ev of s) {
    if (ev.type === 'raw_model_stream_event' && ev.data.type === 'output_text_delta') text += ev.data.delta;
  }
  await s.completed;
  assert.equal(cities.length, 2, 'the tool ran again: tools are the client\'s');
  assert.equal(s.finalOutput, r.finalOutput);
  assert.equal(text, r.finalOutput);

  // every model call of the two runs went through /v1/responses; the second
  // run's were cache hits (the first turn's and the second's)
  const lines = await waitFor(() => {
    const ls = logLines(gw).filter((l) => l.request_id === 'agent-run');
    return ls.length >= 4 ? ls : null;
  });
  assert.deepEqual(lines.map((l) => l.dialect), ['responses', 'responses', 'responses', 'responses']);
  assert.deepEqual(lines.map((l) => l.cache), ['MISS', 'MISS', 'HIT', 'HIT']);
  assert.deepEqual(lines.map((l) => l.route), ['smart', 'smart', 'smart', 'smart']);
});

// ---- Anthropic's Messages API ----

test('messages.create: an Anthropic message, with its usage and request-id', async () => {
  const { data, response } = await anthropic.messages
    .create({ model: 'reliable', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'What is the capital of Italy?' }] })
    .withResponse();
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.match(data.id, /^msg_[0-9a-f]{24}$/);
  assert.equal(data.model, 'mock-small');
  assert.equal(data.content.length, 1);
  assert.equal(data.content[0].type, 'text');
  assert.ok(data.content[0].text.length > 0);
  assert.equal(data.stop_reason, 'end_turn');
  assert.equal(data.stop_sequence, null);
  assert.ok(data.usage.input_tokens > 0 && data.usage.output_tokens > 0);
  assert.equal(data.usage.cache_read_input_tokens, 0);
  assert.equal(response.headers.get('request-id'), response.headers.get('x-request-id'));
  assert.equal(response.headers.get('x-sluice-route'), 'reliable');
  const want = (data.usage.input_tokens * 0.15 + data.usage.output_tokens * 0.6) / 1e6;
  assert.ok(Math.abs(Number(response.headers.get('x-sluice-cost')) - want) < 1e-12);
});

test('messages.stream: text events, message_start with real input tokens, every block stopped', async () => {
  const body = { model: 'reliable', max_tokens: 64, messages: [{ role: 'user', content: 'Describe a quiet harbour.' }] };
  const whole = await anthropic.messages.create(body);
  const stream = anthropic.messages.stream(body);
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, whole.content[0].text);
  assert.deepEqual(final.content, whole.content);
  assert.deepEqual(final.usage, whole.usage, 'the final usage is the upstream\'s');
  assert.equal(final.stop_reason, 'end_turn');

  const events = await rawEvents('/v1/messages', { ...body, stream: true }, { Authorization: '', 'x-api-key': KEY });
  const types = events.map((e) => e.event);
  assert.deepEqual(events.map((e) => e.data.type), types);
  assert.equal(types[0], 'message_start');
  const start = events[0].data.message.usage;
  // never 0/0 (LiteLLM #24176): an estimate before the upstream counts,
  // which for plain text is the count itself
  assert.ok(start.input_tokens > 0);
  assert.equal(start.input_tokens, whole.usage.input_tokens);
  assert.ok(types.includes('ping'));
  assert.equal(types.filter((t) => t === 'content_block_start').length, types.filter((t) => t === 'content_block_stop').length);
  assert.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
  assert.equal(events.at(-2).data.usage.output_tokens, whole.usage.output_tokens);
  assert.equal(events.at(-2).data.usage.input_tokens, whole.usage.input_tokens);
});

test('messages with a tool: tool_use, then a tool_result round trip, created and streamed', async () => {
  const ask = [{ role: 'user', content: 'What is the weather in Oslo?' }];
  const first = await anthropic.messages.create({ model: 'reliable', max_tokens: 64, tools: [MESSAGES_TOOL], messages: ask });
  assert.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.equal(typeof use.input.city, 'string');
  const history = [...ask, { role: 'assistant', content: first.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Snow, -3C' }] }];
  const answer = await anthropic.messages.create({ model: 'reliable', max_tokens: 64, tools: [MESSAGES_TOOL], messages: history });
  assert.equal(answer.stop_reason, 'end_turn');
  assert.equal(answer.content[0].type, 'text');

  // streamed: the tool_use block with its input as input_json_delta, stopped
  const s1 = anthropic.messages.stream({ model: 'reliable', max_tokens: 64, tools: [MESSAGES_TOOL], messages: ask });
  const f1 = await s1.finalMessage();
  assert.deepEqual(f1.content, first.content);
  assert.equal(f1.stop_reason, 'tool_use');
  const s2 = anthropic.messages.stream({ model: 'reliable', max_tokens: 64, tools: [MESSAGES_TOOL], messages: history });
  const f2 = await s2.finalMessage();
  assert.deepEqual(f2.content, answer.content);

  const events = await rawEvents('/v1/messages', { model: 'reliable', max_tokens: 64, tools: [MESSAGES_TOOL], messages: ask, stream: true });
  const start = events.find((e) => e.event === 'content_block_start' && e.data.content_block.type === 'tool_use');
  assert.equal(start.data.content_block.id, use.id);
  const idx = start.data.index;
  const json = events.filter((e) => e.event === 'content_block_delta' && e.data.index === idx)
    .map((e) => { assert.equal(e.data.delta.type, 'input_json_delta'); return e.data.delta.partial_json; }).join('');
  assert.deepEqual(JSON.parse(json), use.input);
  assert.ok(events.some((e) => e.event === 'content_block_stop' && e.data.index === idx), 'the tool block is closed');
  assert.equal(events.at(-2).data.delta.stop_reason, 'tool_use');

  // a tool_result sent twice for one tool_use is one result (LiteLLM #16711)
  const twice = [...ask, { role: 'assistant', content: first.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Snow, -3C' },
      { type: 'tool_result', tool_use_id: use.id, content: 'Snow, -3C' }] }];
  const dedup = await anthropic.messages.create({ model: 'reliable', max_tokens: 64, tools: [MESSAGES_TOOL], messages: twice });
  assert.deepEqual(dedup.content, answer.content, 'the same conversation as with one result');
});

test('messages.countTokens: an honest estimate, the upstream\'s count for plain text; never 0, never 404', async () => {
  const messages = [{ role: 'user', content: 'How many tokens is this sentence, roughly?' }];
  const { input_tokens: n } = await anthropic.messages.countTokens({ model: 'reliable', messages });
  const real = await anthropic.messages.create({ model: 'reliable', max_tokens: 16, messages });
  assert.equal(n, real.usage.input_tokens);
  const { input_tokens: withTools } = await anthropic.messages.countTokens({ model: 'reliable', messages, tools: [MESSAGES_TOOL], system: 'You are terse.' });
  assert.ok(withTools > n + 10, 'tools and system count');
  const { input_tokens: tiny } = await anthropic.messages.countTokens({ model: 'reliable', messages: [{ role: 'user', content: '' }] });
  assert.ok(tiny > 0);
  await assert.rejects(anthropic.messages.countTokens({ model: 'no-such-model', messages }), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError);
    assert.equal(e.error.error.type, 'not_found_error');
    assert.match(e.error.error.message, /no-such-model/);
    return true;
  });
});

test('messages: errors come in Anthropic\'s shape and statuses, from the front as from the route', async () => {
  const check = async (p, Cls, status, type) => {
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof Cls, `${e}`);
      assert.equal(e.status, status);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, type);
      assert.match(e.error.request_id, /^req_/);
      return true;
    });
  };
  const msgs = [{ role: 'user', content: 'x' }];
  await check(anthropic.messages.create({ model: 'nope', max_tokens: 5, messages: msgs }), Anthropic.NotFoundError, 404, 'not_found_error');
  await check(anthropic.messages.create({ model: 'reliable', messages: msgs }), Anthropic.BadRequestError, 400, 'invalid_request_error');
  await check(anthropic.messages.create({ model: 'reliable', max_tokens: 5, messages: msgs, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }),
    Anthropic.BadRequestError, 400, 'invalid_request_error');
  const wrong = new Anthropic({ baseURL: gw.url, apiKey: 'sk-wrong', maxRetries: 0 });
  await check(wrong.messages.create({ model: 'reliable', max_tokens: 5, messages: msgs }), Anthropic.AuthenticationError, 401, 'authentication_error');
  await check(anthropic.messages.create({ model: 'reliable', max_tokens: 5, messages: [{ role: 'user', content: 'x'.repeat(300000) }] }),
    Anthropic.APIError, 413, 'request_too_large');
  const get = await fetch(`${gw.url}/v1/messages`, { headers: { 'x-api-key': KEY } });
  assert.equal(get.status, 405);
  assert.equal((await get.json()).error.type, 'invalid_request_error');
  // a bearer token works as well as x-api-key (ANTHROPIC_AUTH_TOKEN)
  const bearer = new Anthropic({ baseURL: gw.url, authToken: KEY, apiKey: null, maxRetries: 0 });
  const ok = await bearer.messages.create({ model: 'reliable', max_tokens: 8, messages: msgs },
    { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } });
  assert.equal(ok.type, 'message');
});

test('messages: a stream that fails midway ends with an error event the SDK raises', async () => {
  const body = { model: 'broken', max_tokens: 256, messages: [{ role: 'user', content: 'Tell me a long story.' }] };
  const events = await rawEvents('/v1/messages', { ...body, stream: true });
  assert.equal(events[0].event, 'message_start');
  assert.ok(events.some((e) => e.event === 'content_block_delta'));
  assert.equal(events.at(-1).event, 'error');
  assert.equal(events.at(-1).data.error.type, 'api_error');
  assert.match(events.at(-1).data.error.message, /Upstream broken/);
  await assert.rejects(anthropic.messages.stream(body).finalMessage(), (e) => {
    assert.ok(e instanceof Anthropic.APIError);
    return true;
  });
});

// ---- one prompt, three ways ----

const THREE = 'Name the three primary colours.';

async function viaChat(headers) {
  const { data, response } = await openai.chat.completions
    .create({ model: 'reliable', max_tokens: 64, messages: [{ role: 'user', content: THREE }] }, { headers })
    .withResponse();
  return { text: data.choices[0].message.content, input: data.usage.prompt_tokens, output: data.usage.completion_tokens, h: response.headers };
}
async function viaResponses(headers) {
  const { data, response } = await openai.responses
    .create({ model: 'reliable', max_output_tokens: 64, input: THREE }, { headers }).withResponse();
  return { text: data.output_text, input: data.usage.input_tokens, output: data.usage.output_tokens, h: response.headers };
}
async function viaMessages(headers) {
  const { data, response } = await anthropic.messages
    .create({ model: 'reliable', max_tokens: 64, messages: [{ role: 'user', content: THREE }] }, { headers }).withResponse();
  return { text: data.content[0].text, input: data.usage.input_tokens + data.usage.cache_read_input_tokens, output: data.usage.output_tokens, h: response.headers };
}
const WAYS = { chat: viaChat, responses: viaResponses, messages: viaMessages };

test('one prompt sent three ways costs the same and logs the same fields', async () => {
  const got = {};
  for (const [way, fn] of Object.entries(WAYS)) {
    // no-cache: each goes upstream (and stores), so each is paid
    got[way] = await fn({ 'Cache-Control': 'no-cache', 'x-request-id': `three-${way}` });
  }
  const cost = Number(got.chat.h.get('x-sluice-cost'));
  assert.ok(cost > 0);
  for (const way of ['responses', 'messages']) {
    assert.equal(got[way].text, got.chat.text, `${way}: the same answer`);
    assert.equal(got[way].input, got.chat.input, `${way}: the same input tokens`);
    assert.equal(got[way].output, got.chat.output, `${way}: the same output tokens`);
    assert.equal(Number(got[way].h.get('x-sluice-cost')), cost, `${way}: the same cost`);
    assert.equal(got[way].h.get('x-sluice-cache-key'), got.chat.h.get('x-sluice-cache-key'), `${way}: one cache key`);
  }
  const lines = await waitFor(() => {
    const ls = Object.keys(WAYS).map((w) => logLines(gw).find((l) => l.request_id === `three-${w}`));
    return ls.every(Boolean) ? ls : null;
  });
  const [chat, ...others] = lines;
  for (const l of others) {
    assert.deepEqual(Object.keys(l).sort(), Object.keys(chat).sort(), 'the same fields');
    for (const k of ['route', 'model', 'provider', 'status', 'stream', 'prompt_tokens', 'completion_tokens', 'cost_usd', 'attempts', 'stages', 'cache']) {
      assert.deepEqual(l[k], chat[k], `${l.dialect}: ${k}`);
    }
  }
  assert.deepEqual(lines.map((l) => l.dialect), ['chat', 'responses', 'messages']);
  assert.deepEqual(lines.map((l) => l.path), ['/v1/chat/completions', '/v1/responses', '/v1/messages']);
});

test('one prompt sent three ways is one cache entry: after the first, a hit whichever way it comes', async () => {
  const orders = [['chat', 'responses', 'messages'], ['responses', 'messages', 'chat'], ['messages', 'chat', 'responses']];
  for (const [n, order] of orders.entries()) {
    const ns = { 'x-sluice-cache-namespace': `three-ways-${n}` };
    const first = await WAYS[order[0]](ns);
    assert.equal(first.h.get('x-sluice-cache'), 'MISS', order[0]);
    for (const way of order.slice(1)) {
      const r = await WAYS[way](ns);
      assert.equal(r.h.get('x-sluice-cache'), 'HIT', `${order[0]} then ${way}`);
      assert.equal(r.text, first.text);
      assert.equal(r.input, first.input);
      assert.equal(Number(r.h.get('x-sluice-saved-cost')), Number(first.h.get('x-sluice-cost')));
    }
  }
  // a streamed first time is stored assembled, and served to the others
  const ns = { 'x-sluice-cache-namespace': 'three-ways-stream' };
  const stream = anthropic.messages.stream({ model: 'reliable', max_tokens: 64, messages: [{ role: 'user', content: THREE }] }, { headers: ns });
  const streamed = await stream.finalMessage();
  const chat = await viaChat(ns);
  assert.equal(chat.h.get('x-sluice-cache'), 'HIT');
  assert.equal(chat.text, streamed.content[0].text);
  const resp = await viaResponses(ns);
  assert.equal(resp.h.get('x-sluice-cache'), 'HIT');
  assert.equal(resp.input, streamed.usage.input_tokens);
});
