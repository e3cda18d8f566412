// OpenTelemetry traces: sluice exports OTLP/HTTP protobuf, and a receiver
// here decodes every body with an independent implementation (protobufjs
// code generated from the official opentelemetry-proto definitions, as
// shipped in @opentelemetry/otlp-transformer), then checks the span trees
// of a three-stage cascade, a stream, a retry and a cache hit, W3C trace
// context in and out, content capture, and that a dead or slow collector
// changes neither the answers nor the latency.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { startMock, startGateway, learnedWeights, tmpDir, waitFor, freePort, sleep, SLOW, SANITIZED } from './helpers.mjs';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const ExportReq = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 };

const dir = tmpDir();
let mock;
let spy;           // a provider that records the headers it is sent
const spyHeaders = [];
let receiver;      // the collector
const bodies = []; // raw export bodies
const spans = [];  // decoded spans, with resource attributes
let gw;            // traced gateway (capture off)
let gwc;           // traced gateway (capture_content on, propagate off)

const hex = (b) => Buffer.from(b).toString('hex');

function anyValue(v) {
  if (v.stringValue !== undefined && v.stringValue !== null) return v.stringValue;
  if (v.boolValue !== undefined && v.boolValue !== null) return v.boolValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  if (v.doubleValue !== undefined && v.doubleValue !== null) return v.doubleValue;
  if (v.arrayValue) return v.arrayValue.values.map(anyValue);
  return undefined;
}

function attrs(list) {
  const o = {};
  for (const kv of list || []) o[kv.key] = anyValue(kv.value);
  return o;
}

function startReceiver() {
  return new Promise((res) => {
    const srv = createServer((req, resp) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        assert.equal(req.url, '/v1/traces');
        assert.equal(req.headers['content-type'], 'application/x-protobuf');
        bodies.push({ body, headers: req.headers });
        const msg = ExportReq.decode(body);
        for (const rs of msg.resourceSpans) {
          const resource = attrs(rs.resource?.attributes);
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              spans.push({
                traceId: hex(s.traceId),
                spanId: hex(s.spanId),
                parentSpanId: s.parentSpanId && s.parentSpanId.length ? hex(s.parentSpanId) : '',
                traceState: s.traceState,
                name: s.name,
                kind: s.kind,
                start: BigInt(s.startTimeUnixNano.toString()),
                end: BigInt(s.endTimeUnixNano.toString()),
                attributes: attrs(s.attributes),
                events: (s.events || []).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
                status: s.status || {},
                resource,
                scope: ss.scope?.name,
              });
            }
          }
        }
        resp.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
        resp.end();
      });
    });
    srv.listen(0, '127.0.0.1', () => res(srv));
  });
}

const weights = (name, bias) => learnedWeights(dir, name, bias);

function conf(endpoint, extraOtel = '') {
  return `
log = { format = "json"; path = "-"; level = "info"; };
otel = { endpoint = "${endpoint}"; service_name = "sluice-test"; ${extraOtel} };
providers = (
  { name = "mock"; type = "openai"; base_url = "${mock.base}"; timeout_ms = ${20000 * SLOW};
    retries = 1; retry_backoff_ms = 1; },
  { name = "spy"; type = "openai"; base_url = "http://127.0.0.1:${spy.address().port}/v1"; },
  { name = "spyquiet"; type = "openai"; base_url = "http://127.0.0.1:${spy.address().port}/v1";
    trace_context = false; }
);
models = (
  { name = "cheap"; provider = "mock"; id = "mock-cheap"; input_per_mtok = 1; output_per_mtok = 1; },
  { name = "mid"; provider = "mock"; id = "mock-mid"; input_per_mtok = 2; output_per_mtok = 2; },
  { name = "strong"; provider = "mock"; id = "mock-strong"; input_per_mtok = 10; output_per_mtok = 30; },
  { name = "judge"; provider = "mock"; id = "mock-judge-lo"; input_per_mtok = 0.5; output_per_mtok = 0.5; },
  { name = "spied"; provider = "spy"; id = "spy-model"; input_per_mtok = 1; output_per_mtok = 1; },
  { name = "spiedquiet"; provider = "spyquiet"; id = "spy-model"; input_per_mtok = 1; output_per_mtok = 1; }
);
routes = (
  { name = "three"; cascade = (
      { model = "cheap"; scorer = "learned"; weights = "${weights('lo', -3)}"; threshold = 0.9; },
      { model = "mid"; scorer = "judge"; judge = "judge"; threshold = 0.7; },
      { model = "strong"; } ); },
  { name = "plain"; fallback = ( "cheap" ); },
  { name = "spyroute"; fallback = ( "spied" ); },
  { name = "spyquietroute"; fallback = ( "spiedquiet" ); }
);
cache = { backend = "memory"; };
`;
}

before(async () => {
  mock = await startMock(['--content', 'mock-judge-lo=2']);
  spy = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      spyHeaders.push(req.headers);
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({
        id: 'x', object: 'chat.completion', created: 1, model: 'spy-model',
        choices: [{ index: 0, message: { role: 'assistant', content: 'spied' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      }));
    });
  });
  await new Promise((r) => spy.listen(0, '127.0.0.1', r));
  receiver = await startReceiver();
  const endpoint = `http://127.0.0.1:${receiver.address().port}`;
  gw = await startGateway(conf(endpoint));
  gwc = await startGateway(conf(`${endpoint}/`, 'capture_content = true; propagate = false;'));
});

after(async () => {
  // Close the servers whatever the stops say (a sanitizer report fails
  // them): an open server would keep this file's process alive.
  spy?.close();
  receiver?.close();
  try {
    await gw?.stop();
    await gwc?.stop();
  } finally {
    await mock?.stop();
  }
});

async function chat(g, body, headers = {}) {
  const r = await fetch(`${g.base}/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

const rnd = (n) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, '0')).join('');

// The spans of trace `traceId`, once its SERVER span has arrived.
async function traceOf(traceId) {
  await waitFor(() => spans.some((s) => s.traceId === traceId && s.kind === SpanKind.SERVER),
    { timeoutMs: 10000 });
  return spans.filter((s) => s.traceId === traceId);
}

// The trace whose SERVER span has sluice.request_id = id.
async function traceOfRequest(id) {
  const server = await waitFor(() => spans.find((s) => s.kind === SpanKind.SERVER
    && s.attributes['sluice.request_id'] === id), { timeoutMs: 10000 });
  return traceOf(server.traceId);
}

test('a three-stage cascade: SERVER > CHAIN > LLM calls, verdicts and the judge, under the client\'s trace', async () => {
  const traceId = rnd(16);
  const parent = rnd(8);
  const r = await chat(gw, { model: 'three', messages: [{ role: 'user', content: 'Which planet is largest?' }] },
    { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'vendor=abc,other=1' });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('x-sluice-stages'), /cheap:[\d.]+:escalate,mid:[\d.]+:escalate,strong:[\d.]+:accept/);
  const t = await traceOf(traceId);

  const server = t.find((s) => s.kind === SpanKind.SERVER);
  assert.equal(server.parentSpanId, parent, 'the SERVER span is a child of the client\'s span');
  assert.equal(server.name, 'POST /v1/chat/completions');
  assert.equal(server.traceState, 'vendor=abc,other=1');
  assert.equal(server.attributes['http.response.status_code'], 200);
  assert.equal(server.attributes['sluice.route'], 'three');
  assert.equal(server.attributes['sluice.model'], 'strong');
  assert.equal(server.attributes['sluice.request_id'], r.headers.get('x-request-id'));
  assert.equal(server.attributes['sluice.stages'], r.headers.get('x-sluice-stages'));
  assert.ok(Math.abs(server.attributes['sluice.cost_usd'] - Number(r.headers.get('x-sluice-cost'))) < 1e-9);
  assert.equal(server.resource['service.name'], 'sluice-test');
  assert.equal(server.scope, 'sluice');
  assert.ok(server.end > server.start);

  const chain = t.filter((s) => s.attributes['openinference.span.kind'] === 'CHAIN' && s.kind === SpanKind.INTERNAL);
  assert.equal(chain.length, 1);
  assert.equal(chain[0].parentSpanId, server.spanId);
  assert.equal(chain[0].name, 'cascade three');

  const llm = t.filter((s) => s.kind === SpanKind.CLIENT);
  assert.deepEqual(llm.map((s) => s.attributes['llm.model_name']).sort(),
    ['mock-cheap', 'mock-judge-lo', 'mock-mid', 'mock-strong']);
  for (const s of llm) {
    assert.equal(s.parentSpanId, chain[0].spanId, `${s.name} hangs off the CHAIN span`);
    assert.equal(s.attributes['openinference.span.kind'], 'LLM');
    assert.equal(s.attributes['gen_ai.operation.name'], 'chat');
    assert.equal(s.attributes['gen_ai.provider.name'], 'openai');
    assert.equal(s.attributes['llm.provider'], 'openai');
    assert.equal(s.attributes['gen_ai.request.model'], s.attributes['llm.model_name']);
    assert.ok(s.attributes['llm.token_count.prompt'] > 0);
    assert.equal(s.attributes['llm.token_count.total'],
      s.attributes['llm.token_count.prompt'] + s.attributes['llm.token_count.completion']);
    assert.equal(s.attributes['gen_ai.usage.input_tokens'], s.attributes['llm.token_count.prompt']);
    assert.equal(s.attributes['gen_ai.usage.output_tokens'], s.attributes['llm.token_count.completion']);
    assert.deepEqual(s.attributes['gen_ai.response.finish_reasons'], ['stop']);
    assert.equal(s.attributes['input.value'], undefined, 'no content without capture_content');
    assert.equal(s.attributes['output.value'], undefined);
    assert.ok(s.start >= chain[0].start && s.end <= chain[0].end);
  }
  const judge = llm.find((s) => s.attributes['sluice.role'] === 'judge');
  assert.equal(judge.name, 'judge mock-judge-lo');
  assert.equal(judge.attributes['sluice.stage'], 1);
  assert.equal(llm.find((s) => s.attributes['llm.model_name'] === 'mock-strong').attributes['sluice.stage'], 2);
  assert.match(llm.find((s) => s.attributes['llm.model_name'] === 'mock-cheap').attributes['llm.invocation_parameters'] ?? '{}', /^\{/);

  const verdicts = t.filter((s) => s.attributes['openinference.span.kind'] === 'EVALUATOR')
    .sort((a, b) => a.attributes['sluice.stage'] - b.attributes['sluice.stage']);
  assert.deepEqual(verdicts.map((s) => [s.name, s.attributes['sluice.decision']]),
    [['stage 0 learned', 'escalate'], ['stage 1 judge', 'escalate'], ['stage 2 none', 'accept']]);
  assert.ok(verdicts[0].attributes['sluice.score'] < 0.9);
  assert.equal(verdicts[0].attributes['sluice.threshold'], 0.9);
  assert.ok(Math.abs(verdicts[1].attributes['sluice.score'] - 0.2) < 1e-9, 'the judge said 2/10');
  for (const v of verdicts) assert.equal(v.parentSpanId, chain[0].spanId);
  assert.equal(t.length, 1 + 1 + 4 + 3);
});

test('providers get the trace context: traceparent with the LLM span\'s id, and tracestate', async () => {
  const traceId = rnd(16);
  spyHeaders.length = 0;
  const r = await chat(gw, { model: 'spyroute', messages: [{ role: 'user', content: 'hi' }] },
    { traceparent: `00-${traceId}-${rnd(8)}-01`, tracestate: 'k=v' });
  assert.equal(r.status, 200, r.text);
  const t = await traceOf(traceId);
  const llm = t.find((s) => s.kind === SpanKind.CLIENT);
  assert.equal(spyHeaders.length, 1);
  assert.equal(spyHeaders[0].traceparent, `00-${traceId}-${llm.spanId}-01`);
  assert.equal(spyHeaders[0].tracestate, 'k=v');
  // Without a client context sluice starts the trace and still passes it on.
  spyHeaders.length = 0;
  const r2 = await chat(gw, { model: 'spyroute', messages: [{ role: 'user', content: 'hi again' }] });
  const t2 = await traceOfRequest(r2.headers.get('x-request-id'));
  const server2 = t2.find((s) => s.kind === SpanKind.SERVER);
  assert.equal(server2.parentSpanId, '');
  assert.match(spyHeaders[0].traceparent, new RegExp(`^00-${server2.traceId}-[0-9a-f]{16}-01$`));
});

test('no trace context for the provider with propagate = false, or with its trace_context = false; the span is still exported', async () => {
  for (const [g, model] of [[gwc, 'spyroute'], [gw, 'spyquietroute']]) {
    const traceId = rnd(16);
    spyHeaders.length = 0;
    const r = await chat(g, { model, messages: [{ role: 'user', content: 'no context' }] },
      { traceparent: `00-${traceId}-${rnd(8)}-01`, tracestate: 'k=v' });
    assert.equal(r.status, 200, r.text);
    const t = await traceOf(traceId);
    assert.ok(t.find((s) => s.kind === SpanKind.CLIENT), `${model}: the LLM span is still there`);
    assert.equal(spyHeaders.length, 1);
    assert.equal(spyHeaders[0].traceparent, undefined, model);
    assert.equal(spyHeaders[0].tracestate, undefined, model);
  }
});

test('a client that does not sample is obeyed: nothing exported, the context still passed on', async () => {
  const traceId = rnd(16);
  spyHeaders.length = 0;
  const r = await chat(gw, { model: 'spyroute', messages: [{ role: 'user', content: 'unsampled' }] },
    { traceparent: `00-${traceId}-${rnd(8)}-00` });
  assert.equal(r.status, 200);
  assert.match(spyHeaders[0].traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
  // A later sampled request's spans arrive; this one's never do.
  const r2 = await chat(gw, { model: 'spyroute', messages: [{ role: 'user', content: 'sampled' }] });
  await traceOfRequest(r2.headers.get('x-request-id'));
  assert.equal(spans.filter((s) => s.traceId === traceId).length, 0);
  // A malformed traceparent starts a new trace rather than failing.
  const r3 = await chat(gw, { model: 'plain', messages: [{ role: 'user', content: 'bad tp' }] },
    { traceparent: '00-zz-not-a-trace' });
  assert.equal(r3.status, 200);
  const t3 = await traceOfRequest(r3.headers.get('x-request-id'));
  assert.equal(t3.find((s) => s.kind === SpanKind.SERVER).parentSpanId, '');
});

test('a stream: the LLM span has a first_token event and the SERVER span the TTFT', async () => {
  const r = await chat(gw, { model: 'plain', stream: true, messages: [{ role: 'user', content: 'stream please' }] });
  assert.equal(r.status, 200);
  assert.match(r.text, /data: \[DONE\]/);
  const t = await traceOfRequest(r.headers.get('x-request-id'));
  const server = t.find((s) => s.kind === SpanKind.SERVER);
  assert.equal(server.attributes['sluice.stream'], true);
  assert.ok(server.attributes['sluice.ttft_ms'] > 0);
  const llm = t.filter((s) => s.kind === SpanKind.CLIENT);
  assert.equal(llm.length, 1);
  assert.equal(llm[0].parentSpanId, server.spanId, 'no CHAIN span outside cascades');
  assert.equal(llm[0].attributes['sluice.stream'], true);
  assert.ok(llm[0].events.some((e) => e.name === 'first_token'));
  assert.ok(llm[0].attributes['llm.token_count.completion'] > 0, 'usage of a stream is counted');
});

test('a retry: the failed try is its own LLM span with its error, then the one that answered', async () => {
  const key = `retry-${rnd(4)}`;
  const r = await chat(gw, { model: 'plain', messages: [{ role: 'user', content: 'retry me' }],
    mock: { status: 500, fail_times: 1, key } });
  assert.equal(r.status, 200, r.text);
  const t = await traceOfRequest(r.headers.get('x-request-id'));
  const llm = t.filter((s) => s.kind === SpanKind.CLIENT).sort((a, b) => Number(a.start - b.start));
  assert.equal(llm.length, 2);
  assert.equal(llm[0].status.code, 2, 'STATUS_CODE_ERROR');
  assert.match(llm[0].status.message, /HTTP 500/);
  assert.equal(llm[0].attributes['http.response.status_code'], 500);
  assert.equal(llm[0].attributes['sluice.will_retry'], true);
  assert.ok(llm[0].events.some((e) => e.name === 'exception' && /500/.test(e.attributes['exception.message'])));
  assert.equal(llm[1].attributes['sluice.retry'], 1);
  assert.ok(!llm[1].status.code, 'the retry succeeded');
  assert.equal(t.find((s) => s.kind === SpanKind.SERVER).attributes['sluice.retries'], 1);
});

test('a cache hit: the SERVER span alone, with sluice.cache = HIT and a cache.hit event', async () => {
  const body = { model: 'plain', messages: [{ role: 'user', content: `cache me ${rnd(4)}` }] };
  const miss = await chat(gw, body);
  assert.equal(miss.headers.get('x-sluice-cache'), 'MISS');
  const hit = await chat(gw, body);
  assert.equal(hit.headers.get('x-sluice-cache'), 'HIT');
  const t = await traceOfRequest(hit.headers.get('x-request-id'));
  assert.equal(t.length, 1);
  assert.equal(t[0].attributes['sluice.cache'], 'HIT');
  assert.ok(t[0].attributes['sluice.saved_usd'] > 0);
  assert.equal(t[0].attributes['sluice.cost_usd'], 0);
  const ev = t[0].events.find((e) => e.name === 'cache.hit');
  assert.ok(ev);
  assert.match(ev.attributes['sluice.cache_key'], /^sluice:c1:/);
});

test('capture_content: prompts and answers as OpenInference attributes, valid UTF-8 cut at character boundaries', async () => {
  const long = 'ž'.repeat(40000) + '€'; // 80,003 bytes: over the 64 KiB content cap
  const r = await chat(gwc, { model: 'plain', messages: [
    { role: 'system', content: 'Be brief.' }, { role: 'user', content: long }] });
  assert.equal(r.status, 200, r.text);
  const t = await traceOfRequest(r.headers.get('x-request-id'));
  const llm = t.find((s) => s.kind === SpanKind.CLIENT);
  assert.equal(llm.attributes['llm.input_messages.0.message.role'], 'system');
  assert.equal(llm.attributes['llm.input_messages.0.message.content'], 'Be brief.');
  assert.equal(llm.attributes['llm.input_messages.1.message.role'], 'user');
  const cut = llm.attributes['llm.input_messages.1.message.content'];
  assert.ok(cut.length > 1000 && cut.length < long.length, 'cut to the cap');
  assert.ok(/^ž+$/.test(cut), 'cut between characters: no U+FFFD, no half character');
  assert.ok(Buffer.byteLength(cut) <= 65536);
  assert.equal(llm.attributes['llm.output_messages.0.message.role'], 'assistant');
  assert.equal(llm.attributes['output.value'], JSON.parse(r.text).choices[0].message.content);
  const server = t.find((s) => s.kind === SpanKind.SERVER);
  assert.match(server.attributes['input.value'], /^Be brief\./);
  // Every string field of every body is valid UTF-8 (protobufjs would
  // have replaced a bad byte with U+FFFD).
  for (const s of spans) for (const v of Object.values(s.attributes)) {
    if (typeof v === 'string') assert.ok(!v.includes('\uFFFD'), `${s.name}: ${v.slice(0, 40)}`);
  }
});

test('an error message cut by bytes upstream of the trace reaches it cut at a character boundary', async () => {
  // sluice's error messages hold 255 bytes: this provider message of
  // two-byte characters is cut in the middle of one.
  const r = await chat(gw, { model: 'plain', messages: [{ role: 'user', content: 'err' }],
    mock: { status: 400, error_message: 'é'.repeat(300) } });
  assert.equal(r.status, 400);
  const t = await traceOfRequest(r.headers.get('x-request-id'));
  const llm = t.find((s) => s.kind === SpanKind.CLIENT);
  const msg = llm.status.message;
  assert.match(msg, /^Upstream cheap returned HTTP 400: é+$/, msg);
  assert.ok(Buffer.byteLength(msg) <= 255);
  assert.equal(t.find((s) => s.kind === SpanKind.SERVER).attributes['http.response.status_code'], 400);
});

test('the exporter reports what it did in /metrics', async () => {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const m = text.match(/^sluice_otel_spans_total\{result="exported"\} (\d+)$/m);
  assert.ok(m && Number(m[1]) > 0, text.split('\n').filter((l) => l.includes('otel')).join('\n'));
});

// ---- a dead or slow collector ----

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(g, i) {
  const t0 = performance.now();
  const r = await chat(g, { model: 'plain', messages: [{ role: 'user', content: `timing ${i}` }],
    temperature: 0 }, { 'Cache-Control': 'no-cache' });
  return { ms: performance.now() - t0, status: r.status, body: JSON.parse(r.text) };
}

test('a dead or a slow collector changes no answer and no latency beyond noise', async () => {
  const deadPort = await freePort(); // nothing listens there
  const hung = createServer(() => { /* accepts, never answers */ });
  await new Promise((r) => hung.listen(0, '127.0.0.1', r));
  const slowEndpoint = `http://127.0.0.1:${hung.address().port}`;
  const plain = await startGateway(conf(`http://127.0.0.1:${deadPort}`).replace(/^otel = .*$/m, ''));
  const dead = await startGateway(conf(`http://127.0.0.1:${deadPort}`, 'timeout_ms = 200; max_queue = 64;'));
  const slow = await startGateway(conf(slowEndpoint, 'timeout_ms = 3000; max_queue = 64;'));
  try {
    const gws = { plain, dead, slow };
    const lat = { plain: [], dead: [], slow: [] };
    const N = SANITIZED ? 60 : 150;
    for (let i = 0; i < 10; i++) for (const g of Object.values(gws)) await timed(g, `warm${i}`);
    // Interleaved, so a slow spell of the machine weighs on all three.
    for (let i = 0; i < N; i++) {
      const res = {};
      for (const [k, g] of Object.entries(gws)) {
        const x = await timed(g, i);
        assert.equal(x.status, 200);
        lat[k].push(x.ms);
        res[k] = x.body;
      }
      // The same answer from all three (ids and timestamps aside).
      for (const k of ['dead', 'slow']) {
        assert.deepEqual(res[k].choices, res.plain.choices);
        assert.deepEqual(res[k].usage, res.plain.usage);
      }
    }
    const m = { plain: median(lat.plain), dead: median(lat.dead), slow: median(lat.slow) };
    // Noise on this shared 2-core machine: allow 50% + 2 ms on the median.
    for (const k of ['dead', 'slow']) {
      assert.ok(m[k] <= m.plain * 1.5 + 2 * SLOW, `median ${k} ${m[k].toFixed(2)} ms vs no tracing ${m.plain.toFixed(2)} ms`);
    }
    // What was lost is counted, and said once per interval in the log.
    const metricsOf = async (g) => (await fetch(`${g.url}/metrics`)).text();
    await waitFor(async () => /sluice_otel_spans_total\{result="failed"\} [1-9]/.test(await metricsOf(dead)), { timeoutMs: 15000 });
    await waitFor(async () => /sluice_otel_spans_total\{result="(dropped|failed)"\} [1-9]/.test(await metricsOf(slow)), { timeoutMs: 15000 });
    await waitFor(() => /otel: in the last 10s/.test(dead.output()), { timeoutMs: 15000 });
    const lines = dead.output().split('\n').filter((l) => l.includes('otel: in the last'));
    assert.ok(lines.length <= 2, `at most one line per interval: ${lines.length}`);
    assert.match(lines[0], /lost in failed exports to http:\/\/127\.0\.0\.1/);
    console.log(`median ms: none ${m.plain.toFixed(2)}, dead ${m.dead.toFixed(2)}, slow ${m.slow.toFixed(2)}`);
  } finally {
    const t0 = Date.now();
    await slow.stop();
    // Stopping waits for one export at most (timeout_ms), not the queue.
    assert.ok(Date.now() - t0 < 10000 * SLOW);
    await dead.stop();
    await plain.stop();
    hung.close();
    hung.closeAllConnections?.();
  }
});

void sleep;
