// The HTTP version spoken to a provider, over TLS: keep-alive HTTP/1.1 by
// default; http_version = "2" multiplexes concurrent calls on one HTTP/2
// connection (ALPN). ca_file verifies a provider behind a private CA, and
// without it that provider's certificate is refused. The upstream is Node's
// own HTTP/2 server (HTTP/1.1 allowed), with a certificate made by openssl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startGateway, tmpDir, SLOW } from './helpers.mjs';

let server;
let base;
let caFile;
const seen = { versions: [], sessions: 0, bodies: [] };

function reset() {
  seen.versions = [];
  seen.sessions = 0;
  seen.bodies = [];
}

function answer(model) {
  return {
    id: 'chatcmpl-tls', object: 'chat.completion', created: 1700000000, model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'over tls' }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
  };
}

function chunk(model, delta, finish) {
  return {
    id: 'chatcmpl-tls', object: 'chat.completion.chunk', created: 1700000000, model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  };
}

before(async () => {
  const dir = tmpDir();
  caFile = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', join(dir, 'key.pem'), '-out', caFile, '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  server = http2.createSecureServer({
    key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(caFile), allowHTTP1: true,
  });
  server.on('session', () => { seen.sessions++; });
  server.on('request', (req, res) => {
    let text = '';
    req.on('data', (d) => { text += d; });
    req.on('end', () => {
      seen.versions.push(req.httpVersion);
      seen.bodies.push(text);
      const body = JSON.parse(text);
      if (!body.stream) {
        // A little wait, so that concurrent calls overlap.
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(answer(body.model)));
        }, 20);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(chunk(body.model, { role: 'assistant', content: 'over ' }, null))}\n\n`);
      setTimeout(() => {
        res.write(`data: ${JSON.stringify(chunk(body.model, { content: 'tls' }, 'stop'))}\n\n`);
        res.write(`data: ${JSON.stringify({ ...chunk(body.model, {}, null), choices: [],
          usage: answer(body.model).usage })}\n\n`);
        res.end('data: [DONE]\n\n');
      }, 20);
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  base = `https://127.0.0.1:${server.address().port}/v1`;
});

after(async () => {
  await new Promise((ok) => server.close(ok));
});

function conf(keys) {
  return `
log = { format = "json"; path = "-"; level = "info"; };
providers = ( { name = "tls"; type = "openai"; base_url = "${base}"; ${keys}
  timeout_ms = ${10000 * SLOW}; first_byte_timeout_ms = ${5000 * SLOW}; } );
models = ( { name = "m"; provider = "tls"; id = "tls-model"; input_per_mtok = 1; output_per_mtok = 2; } );
routes = ( { name = "r"; model = "m"; cache = false; } );
`;
}

async function concurrent(gw, n) {
  const client = new OpenAI({ baseURL: gw.base, apiKey: 'x', maxRetries: 0 });
  const all = await Promise.all(Array.from({ length: n }, () =>
    client.chat.completions.create({ model: 'r', messages: [{ role: 'user', content: 'hi' }], temperature: 0.7 })));
  for (const r of all) {
    assert.equal(r.choices[0].message.content, 'over tls');
    assert.equal(r.model, 'tls-model');
  }
  return client;
}

test('http_version = "2": concurrent calls multiplexed on one HTTP/2 connection, plain and streamed', async () => {
  const gw = await startGateway(conf(`http_version = "2"; ca_file = "${caFile}";`));
  try {
    reset();
    const client = await concurrent(gw, 16);
    assert.deepEqual([...new Set(seen.versions)], ['2.0']);
    assert.equal(seen.sessions, 1, 'every call on one HTTP/2 connection');
    assert.match(seen.bodies.at(-1), /"temperature":0\.7[,}]/, 'the body goes as the client wrote it');
    let text = '';
    const stream = await client.chat.completions.create({
      model: 'r', messages: [{ role: 'user', content: 'hi' }], stream: true,
    });
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'over tls');
    assert.equal(seen.sessions, 1);
  } finally {
    await gw.stop();
  }
});

test('by default the provider is spoken to in HTTP/1.1 over TLS', async () => {
  const gw = await startGateway(conf(`ca_file = "${caFile}";`));
  try {
    reset();
    await concurrent(gw, 8);
    assert.deepEqual([...new Set(seen.versions)], ['1.1']);
    assert.equal(seen.sessions, 0, 'no HTTP/2 session');
  } finally {
    await gw.stop();
  }
});

test('without ca_file a certificate from a private CA is refused: a 502, nothing reaches the provider', async () => {
  const gw = await startGateway(conf('http_version = "2";'));
  try {
    reset();
    const client = new OpenAI({ baseURL: gw.base, apiKey: 'x', maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create({ model: 'r', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 502 && e.error?.type === 'api_error');
    assert.equal(seen.versions.length, 0);
  } finally {
    await gw.stop();
  }
});
