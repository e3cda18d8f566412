// Hostile input and misbehaving providers (issue 10): every log and trace
// line stays whole and valid whatever a client sends, in both log formats;
// a provider's HTTP 200 whose body is an error object is a failure
// everywhere; all streams together hold at most max_stream_memory_bytes;
// clients that trickle their headers or body are closed at their deadlines;
// an oversized Content-Length is refused at once; and what libmicrohttpd
// refuses itself still comes back in OpenAI's error shape.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  startMock, startGateway, logLines, sleep, waitFor, slowReader, tmpDir, SLOW,
} from './helpers.mjs';

let mock;

before(async () => {
  mock = await startMock();
});

after(async () => {
  await mock.stop();
});

function conf({ top = '', log = 'json', trace = '' } = {}) {
  return `
log = { format = "${log}"; path = "-"; level = "info"; };
${trace}
${top}
providers = (
  { name = "mock"; base_url = "${mock.base}"; retries = 0;
    timeout_ms = ${20000 * SLOW}; first_byte_timeout_ms = ${5000 * SLOW}; idle_timeout_ms = ${5000 * SLOW}; }
);
models = (
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 1; output_per_mtok = 1; },
  { name = "large"; provider = "mock"; id = "mock-large"; input_per_mtok = 5; output_per_mtok = 5; }
);
routes = (
  { name = "reliable"; fallback = ( "small", "large" ); },
  { name = "casc"; cascade = ( { model = "small"; scorer = "rules"; threshold = 1.0; }, { model = "large"; } ); }
);
`;
}

/** Send raw bytes on a new connection; resolve to what came back before it closed (or timeoutMs). */
function raw(url, bytes, { timeoutMs = 5000 } = {}) {
  const { port } = new URL(url);
  return new Promise((res) => {
    const s = connect(Number(port), '127.0.0.1');
    const chunks = [];
    const t = setTimeout(() => { s.destroy(); res(Buffer.concat(chunks)); }, timeoutMs * SLOW);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(t); res(Buffer.concat(chunks)); });
    s.end(bytes);
  });
}

/** The body of a raw HTTP/1.1 response with a Content-Length. */
function bodyOf(resp) {
  const text = resp.toString('latin1');
  const at = text.indexOf('\r\n\r\n');
  return Buffer.from(text.slice(at + 4), 'latin1').toString('utf8');
}

const post = (path, body, headers = '') => Buffer.concat([
  Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${headers}`
    + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`),
  Buffer.from(body),
]);
const get = (path, headers = '') => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`, 'latin1');

// Requests that carry what a client controls into the log line: odd bytes
// in the path, the method, the request id, the model (echoed in errors).
const eAcute = '%C3%A9';
const HOSTILE = [
  get('/x' + '%01'.repeat(120)),
  get('/%FF%FE%C3' + '"\\'.repeat(20)),
  get('/' + eAcute.repeat(300)),
  get('/' + 'a'.repeat(6000)),
  get('/v1/models/' + eAcute.repeat(200)),
  get('/v1/models', 'x-request-id: ab"c\\d\x01\r\n'),
  Buffer.from('BREW /pot%0A%0D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
  post('/v1/chat/completions', JSON.stringify({ model: 'é'.repeat(200), messages: [{ role: 'user', content: 'x' }] })),
  post('/v1/chat/completions', JSON.stringify({ model: 'm\n2026-01-01T00:00:00.000Z info  msg=forged "x', messages: [{ role: 'user', content: 'x' }] })),
  post('/v1/chat/completions', JSON.stringify({ model: 'small', messages: [{ role: 'bad\u0001"', content: 'x' }] })),
  post('/v1/chat/completions', JSON.stringify({ model: 'casc', messages: [{ role: 'user', content: 'a "quoted"\nline\u0002' }] })),
];

async function sendHostile(g) {
  const answers = [];
  for (const r of HOSTILE) answers.push(await raw(g.url, r));
  return answers;
}

test('JSON log: every line is whole, valid JSON with valid UTF-8, whatever the requests held', async () => {
  const dir = tmpDir();
  const tracePath = join(dir, 'trace.jsonl');
  const g = await startGateway(conf({ trace: `trace = { path = "${tracePath}"; include_content = true; };` }));
  try {
    const answers = await sendHostile(g);
    // The 404 for a long non-ASCII model keeps its message, cut at a character.
    const notFound = JSON.parse(bodyOf(answers[7]));
    assert.match(notFound.error.message, /^The model 'é+' does not exist/);
    assert.equal(notFound.error.code, 'model_not_found');
    await waitFor(() => logLines(g).filter((l) => l.msg === 'request').length >= HOSTILE.length)
      .catch((e) => { throw new Error(`${e.message}: ${g.output().slice(-3000)}`); });
    await sleep(200);
    const lines = g.output().split('\n').filter((l) => l.length > 0);
    for (const l of lines) {
      assert.ok(!/\uFFFD{0}[\uD800-\uDFFF]/.test(l), 'no lone surrogate');
      assert.doesNotThrow(() => JSON.parse(l), 'not JSON: ' + l.slice(0, 300));
      assert.ok(Buffer.byteLength(l) <= 16384, 'over the line cap');
    }
    const reqs = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    assert.equal(reqs.length, HOSTILE.length);
    assert.ok(reqs.some((l) => l.path.startsWith('/x\u0001\u0001')), 'control characters are escaped, not dropped');
    assert.ok(reqs.some((l) => l.path.includes('\uFFFD')), 'invalid UTF-8 is replaced');
    assert.ok(reqs.every((l) => !/^ab"c/.test(l.request_id)), 'a bad x-request-id is not used');
    const long = reqs.find((l) => l.path.startsWith('/é'));
    assert.ok(long.path.length < 300 && /^\/é+$/.test(long.path), 'cut at a character boundary');
    // The trace file: one valid JSON object per line, content included.
    const trace = await waitFor(() => {
      try { return readFileSync(tracePath, 'utf8'); } catch { return ''; }
    });
    for (const l of trace.split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(l), l);
  } finally {
    await g.stop();
  }
});

test('text log: one line per event, every field key=value or key="escaped", no forged line', async () => {
  const g = await startGateway(conf({ log: 'text' }));
  try {
    await sendHostile(g);
    await waitFor(() => (g.output().match(/ msg=request /g) ?? []).length >= HOSTILE.length);
    await sleep(200);
    const value = '("(?:[^"\\\\]|\\\\.)*"|[^\\s"=\\\\]+)';
    const line = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z (debug|info |warn |error)( [a-z_]+=${value})+$`);
    const lines = g.output().split('\n').filter((l) => l.length > 0);
    for (const l of lines) assert.match(l, line);
    assert.equal(lines.filter((l) => / msg=request /.test(l)).length, HOSTILE.length);
    assert.ok(!lines.some((l) => /msg=forged/.test(l) && !/model=|error=/.test(l)), 'a newline in a value forged a line');
  } finally {
    await g.stop();
  }
});

test('a provider\'s HTTP 200 with an error object is a failure: fallback, cascade and cache', async () => {
  const g = await startGateway(conf({ top: 'cache = { backend = "memory"; };' }));
  const ask = async (model, m, content) => {
    const r = await fetch(`${g.base}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content }], mock: m }),
    });
    return { status: r.status, h: r.headers, body: await r.json() };
  };
  try {
    const bad = { fault: 'error_200', error_message: 'quota exceeded for this key' };
    // Fallback: the next model answers.
    let r = await ask('reliable', [{ model: 'mock-small', ...bad }], 'fallback on error 200');
    assert.equal(r.status, 200);
    assert.equal(r.h.get('x-sluice-model'), 'large');
    // A single model: a 502 that says what the provider said, and nothing cached.
    const before = (await mock.stats()).requests;
    for (let i = 0; i < 2; i++) {
      r = await ask('small', bad, 'never cache an error');
      assert.equal(r.status, 502);
      assert.equal(r.body.error.code, 'upstream_bad_response');
      assert.match(r.body.error.message, /error object.*quota exceeded for this key/);
      assert.notEqual(r.h.get('x-sluice-cache'), 'HIT');
    }
    assert.equal((await mock.stats()).requests - before, 2, 'the second request went upstream again');
    // A cascade: the error escalates, and at the last stage it is not accepted.
    r = await ask('casc', [{ model: 'mock-small', ...bad }], 'cascade escalates');
    assert.equal(r.status, 200);
    assert.equal(r.h.get('x-sluice-model'), 'large');
    r = await ask('casc', bad, 'cascade last stage');
    assert.equal(r.status, 502);
  } finally {
    await g.stop();
  }
});

async function metric(g, name) {
  const text = await (await fetch(`${g.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

test('all streams together hold at most max_stream_memory_bytes: the slowest readers are cut, counted and logged', async () => {
  const g = await startGateway(conf({ top: 'max_stream_memory_bytes = 4194304; max_body_bytes = 8388608;' }));
  try {
    const body = (i) => JSON.stringify({ model: 'small', stream: true, messages: [{ role: 'user', content: `slow ${i}` }],
      mock: { content: 'y'.repeat(3 << 20), chunks: 1500 } });
    let peak = 0;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const [l] = await metric(g, 'sluice_stream_buffer_bytes ');
        if (l) peak = Math.max(peak, Number(l.split(' ')[1]));
        await sleep(50);
      }
    })();
    // The readers start reading once the cap has been reached (or after 30 s,
    // and the test fails), so a slow machine cannot let them drain first.
    const gate = join(tmpDir(), 'read-now');
    const slow = [0, 1, 2, 3, 4, 5].map((i) => slowReader(g.url, body(i), 30 * SLOW, `slow-mem-${i}`, gate));
    const capped = waitFor(() => logLines(g).some((l) => /max_stream_memory_bytes \(4194304\) reached/.test(l.msg ?? '')),
      { timeoutMs: 25000 }).finally(() => writeFileSync(gate, ''));
    // A client that keeps up is served in full meanwhile.
    await sleep(500);
    const fast = await fetch(`${g.base}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'small', stream: true, messages: [{ role: 'user', content: 'fast' }], mock: { chunks: 20 } }),
    });
    const fastText = await fast.text();
    assert.match(fastText, /data: \[DONE\]/);
    await capped;
    const outs = await Promise.all(slow);
    polling = false;
    await poll;
    const cut = outs.filter((o) => /max_stream_memory_bytes/.test(o));
    assert.ok(cut.length >= 1, 'some slow streams were cut at the memory cap');
    assert.ok(outs.every((o) => /"code":\s*"client_too_slow"|data: \[DONE\]/.test(o)), `every stream ended cleanly: ${JSON.stringify(outs.map((o) => o.slice(-300)))}`);
    // 6 streams of 3 MiB would hold up to 18 MiB: the cap and the
    // keep-up allowance (64 KiB a stream, a chunk of slack) bound them.
    assert.ok(peak <= 4194304 + 6 * (64 << 10) + (1 << 20), `peak stream memory ${peak}`);
    const [limited] = await metric(g, 'sluice_limited_total{key="",limit="stream_memory"}');
    assert.ok(limited && Number(limited.split(' ')[1]) >= cut.length, limited);
    assert.ok(logLines(g).some((l) => /max_stream_memory_bytes \(4194304\) reached/.test(l.msg ?? '')));
  } finally {
    await g.stop();
  }
});

test('slowloris: a client that trickles its headers or body is closed at its deadline; keep-alive is not', async () => {
  const g = await startGateway(conf({ top: 'client_header_timeout_s = 1; client_body_timeout_s = 1; client_timeout_s = 60;' }));
  const { port } = new URL(g.url);
  const trickle = (head, rest) => new Promise((res) => {
    const s = connect(Number(port), '127.0.0.1');
    const t0 = Date.now();
    let got = '';
    let i = 0;
    s.on('data', (d) => { got += d; });
    s.on('error', () => {});
    s.write(head);
    const iv = setInterval(() => {
      if (i < rest.length) s.write(rest[i++]);
    }, 250);
    s.on('close', () => { clearInterval(iv); res({ ms: Date.now() - t0, got }); });
    setTimeout(() => s.destroy(), 15000 * SLOW);
  });
  try {
    // Headers, one byte every 250 ms, forever: closed by the header deadline.
    const h = await trickle('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n', 'x-slow: ' + 'a'.repeat(200));
    assert.ok(h.ms < 4000 * SLOW, `headers: closed after ${h.ms} ms`);
    assert.equal(h.got, '');
    // A body trickled past its deadline: closed too (libmicrohttpd takes no
    // response while it reads a body).
    const b = await trickle('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n', 'z'.repeat(400));
    assert.ok(b.ms < 4000 * SLOW, `body: closed after ${b.ms} ms`);
    assert.equal(b.got, '');
    // An idle keep-alive connection is the idle timeout's business, not the deadlines'.
    const s = connect(Number(port), '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    let got = '';
    s.on('data', (d) => { got += d; });
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => got.includes('"ok"'));
    await sleep(2500);
    got = '';
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => got.includes('"ok"'));
    s.destroy();
    for (const kind of ['client_header_timeout', 'client_body_timeout']) {
      const [l] = await metric(g, `sluice_limited_total{key="",limit="${kind}"}`);
      assert.ok(l && Number(l.split(' ')[1]) >= 1, kind);
    }
  } finally {
    await g.stop();
  }
});

test('an oversized Content-Length is refused at once, up to 2^64 - 1 and past it, in OpenAI\'s shape', async () => {
  const g = await startGateway(conf());
  try {
    for (const cl of ['9223372036854775808', '18446744073709551615', '5000000']) {
      const t0 = Date.now();
      const r = await raw(g.url, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${cl}\r\n\r\n`);
      assert.ok(Date.now() - t0 < 2000 * SLOW, `${cl}: answered at once`);
      assert.match(r.toString(), /^HTTP\/1\.1 413 /);
      assert.equal(JSON.parse(bodyOf(r)).error.code, 'request_too_large');
    }
  } finally {
    await g.stop();
  }
});

test('what libmicrohttpd refuses itself comes back as OpenAI error JSON, not HTML', async () => {
  const g = await startGateway(conf());
  try {
    const cases = [
      // a chunk extension longer than the read buffer (libmicrohttpd: HTML 500)
      [`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;${'e'.repeat(20000)}\r\nhello\r\n0\r\n\r\n`, 413, 'request_too_large'],
      // headers over the limit (431)
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20000)}\r\n\r\n`, 431, 'request_header_too_large'],
      // malformed chunked encoding (400)
      ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'invalid_request'],
      // an HTTP version it does not speak (505)
      ['GET /healthz HTTP/2.5\r\nHost: x\r\n\r\n', 505, 'invalid_request'],
    ];
    for (const [req, status, code] of cases) {
      const r = await raw(g.url, req);
      const text = r.toString();
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), text.slice(0, 200));
      assert.match(text, /\r\nContent-Type: application\/json\r\n/i);
      assert.equal(JSON.parse(bodyOf(r)).error.code, code);
    }
  } finally {
    await g.stop();
  }
});
