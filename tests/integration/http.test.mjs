// Raw HTTP with curl: malformed, oversized and wrong-method requests, health
// endpoints; and the command line (--check, --version, --help).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startMock, startGateway, mockConf, tmpDir, BUILD, ROOT } from './helpers.mjs';

const run = promisify(execFile);
let mock;
let gw;

before(async () => {
  mock = await startMock();
  gw = await startGateway(mockConf(mock.base) + 'max_body_bytes = 65536;\n');
});

after(async () => {
  await gw?.stop();
  await mock?.stop();
});

/** curl a path; returns { status, headers, body, json }. */
async function curl(path, args = []) {
  const { stdout } = await run('curl', ['-s', '-i', '--max-time', '20', ...args, `${gw.url}${path}`],
    { maxBuffer: 64 << 20 });
  const sep = stdout.indexOf('\r\n\r\n');
  const head = stdout.slice(0, sep);
  const body = stdout.slice(sep + 4);
  const status = Number(head.split(' ')[1]);
  const headers = Object.fromEntries(head.split('\r\n').slice(1).map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
  }));
  let json = null;
  try { json = JSON.parse(body); } catch { /* not JSON */ }
  return { status, headers, body, json };
}

function assertOpenAIError(r, status, code) {
  assert.equal(r.status, status, r.body);
  assert.match(r.headers['content-type'], /application\/json/);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof r.json.error.message, 'string');
  if (code !== undefined) assert.equal(r.json.error.code, code);
}

const CHAT = ['-X', 'POST', '-H', 'Content-Type: application/json'];

test('malformed JSON is a 400 in OpenAI shape', async () => {
  const r = await curl('/v1/chat/completions', [...CHAT, '-d', '{"model": "small", "messages": [']);
  assertOpenAIError(r, 400, null);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.match(r.json.error.message, /parse the JSON body/);
});

test('a missing field is a 400 that names it', async () => {
  const r = await curl('/v1/chat/completions', [...CHAT, '-d', '{"messages":[]}']);
  assertOpenAIError(r, 400, null);
  assert.equal(r.json.error.param, 'model');
});

test('an unknown model is a 404 model_not_found', async () => {
  const r = await curl('/v1/chat/completions',
    [...CHAT, '-d', '{"model":"nope","messages":[{"role":"user","content":"x"}]}']);
  assertOpenAIError(r, 404, 'model_not_found');
});

test('a body over max_body_bytes is a 413, announced or chunked', async () => {
  const dir = tmpDir();
  const big = join(dir, 'big.json');
  writeFileSync(big, JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'x'.repeat(70000) }] }));
  let r = await curl('/v1/chat/completions', [...CHAT, '--data-binary', `@${big}`]);
  assertOpenAIError(r, 413, 'request_too_large');
  r = await curl('/v1/chat/completions',
    [...CHAT, '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${big}`]);
  assertOpenAIError(r, 413, 'request_too_large');
  // just under the limit is fine
  writeFileSync(big, JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'x'.repeat(60000) }] }));
  r = await curl('/v1/chat/completions', [...CHAT, '--data-binary', `@${big}`]);
  assert.equal(r.status, 200, r.body);
});

test('a wrong method is a 405', async () => {
  let r = await curl('/v1/chat/completions', ['-X', 'GET']);
  assertOpenAIError(r, 405, 'method_not_allowed');
  r = await curl('/v1/models', ['-X', 'POST', '-d', '{}']);
  assertOpenAIError(r, 405, 'method_not_allowed');
  r = await curl('/v1/embeddings', ['-X', 'DELETE']);
  assertOpenAIError(r, 405, 'method_not_allowed');
});

test('an unknown path is a 404', async () => {
  const r = await curl('/v1/nothing-here', ['-X', 'POST', '-d', '{}']);
  assertOpenAIError(r, 404, 'not_found');
});

test('healthz and readyz', async () => {
  let r = await curl('/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'ok');
  r = await curl('/readyz');
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'ready');
});

test('paths without /v1 work too, and streams are text/event-stream', async () => {
  const r = await curl('/chat/completions',
    [...CHAT, '-N', '-d', '{"model":"small","stream":true,"messages":[{"role":"user","content":"x"}]}']);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /text\/event-stream/);
  assert.match(r.body, /^data: \{/);
  assert.ok(r.body.trimEnd().endsWith('data: [DONE]'));
});

test('sluice --check accepts gateway.conf.example', async () => {
  const { stdout } = await run(join(BUILD, 'sluice'), ['--check', '--config', join(ROOT, 'gateway.conf.example')]);
  assert.match(stdout, /OK/);
  // as the file's own header says to type it
  assert.match((await run(join(BUILD, 'sluice'), ['--check', join(ROOT, 'gateway.conf.example')])).stdout, /OK/);
});

test('sluice --check reports every error as FILE:LINE: key.path: message and exits 1', async () => {
  const dir = tmpDir();
  const f = join(dir, 'bad.conf');
  writeFileSync(f, [
    'listen = 8080;',                                                     // line 1: wrong type
    'providers = ( { name = "p"; type = "openai"; base_url = "http://x"; colour = "red"; } );', // 2: unknown key
    'models = (',
    '  { name = "m"; provider = "nowhere"; },',                           // 4: dangling provider
    '  { name = "m"; provider = "p"; }',                                  // 5: duplicate
    ');',
  ].join('\n'));
  const r = await run(join(BUILD, 'sluice'), ['--check', '--config', f]).then(
    () => assert.fail('--check accepted a bad config'), (e) => e);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length >= 4, r.stderr);
  for (const l of lines) assert.match(l, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: \\S+: .+`));
  assert.match(r.stderr, /:1: listen: /);
  assert.match(r.stderr, /:2: providers\S*colour/);
  assert.match(r.stderr, /:4: models\S*provider: .*nowhere/);
  assert.match(r.stderr, /:5: models\S*name: .*duplicate/);
});

test('sluice --check reports a syntax error with its line', async () => {
  const dir = tmpDir();
  const f = join(dir, 'syntax.conf');
  writeFileSync(f, 'listen = "127.0.0.1:1";\nworkers = ;\n');
  const r = await run(join(BUILD, 'sluice'), ['--check', '--config', f]).then(
    () => assert.fail('accepted'), (e) => e);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /syntax\.conf:2: /);
});

test('--version and --help', async () => {
  let { stdout } = await run(join(BUILD, 'sluice'), ['--version']);
  assert.match(stdout, /^sluice \d+\.\d+\.\d+/);
  ({ stdout } = await run(join(BUILD, 'sluice'), ['--help']));
  assert.match(stdout, /--config/);
  assert.match(stdout, /--check/);
  assert.match(stdout, /--listen/);
});
