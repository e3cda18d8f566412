// Credentials in a URL of the config (http://user:password@host/v1, a token
// as the user name) are secrets like the API keys: /admin/config shows them
// redacted, and neither `sluice --check`, the log, the trace nor an error
// answer ever carries them, whether the call works or fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMock, startGateway, tmpDir, waitFor, BUILD, SLOW } from './helpers.mjs';

const ADMIN = 'admin-redact-1';
const PASS = 'pw-3f9a1c';       // in a base_url that works
const DEAD = 'pw-77d0e2';       // in a base_url that refuses connections
const TOKEN = 'tok-51b8aa';     // a token as the user name, in a scorer's URL
let mock;
let dir;

function conf() {
  const url = new URL(mock.base);
  return `
log = { format = "json"; path = "-"; level = "debug"; };
admin = { listen = "127.0.0.1:0"; };
trace = { path = "${join(dir, 'trace.jsonl')}"; include_content = true; };
providers = (
  { name = "mock"; base_url = "http://sluice:${PASS}@${url.host}/v1"; timeout_ms = ${20000 * SLOW}; },
  { name = "dead"; base_url = "http://sluice:${DEAD}@127.0.0.1:1/v1"; retries = 0; }
);
models = (
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 1; output_per_mtok = 1; },
  { name = "gone"; provider = "dead"; input_per_mtok = 1; output_per_mtok = 1; }
);
routes = (
  { name = "scored"; cascade = (
      { model = "small"; scorer = "http"; url = "http://${TOKEN}@127.0.0.1:1/score"; threshold = 0.5; },
      { model = "small"; } ); }
);
`;
}

const leaks = (text) => [PASS, DEAD, TOKEN].filter((s) => text.includes(s));

before(async () => {
  mock = await startMock();
  dir = tmpDir();
});

after(async () => {
  await mock?.stop();
});

test('credentials in base_url and scorer URLs: redacted in /admin/config, absent from --check, logs, traces and errors', async () => {
  const file = join(dir, 'creds.conf');
  writeFileSync(file, conf());
  let r = spawnSync(join(BUILD, 'sluice'), ['--check', '--config', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(leaks(r.stdout + r.stderr), [], '--check of a good file');
  // A file with a problem elsewhere prints errors, and still no credential.
  writeFileSync(file, `${conf()}\nbogus = 1;\nworkers = 999;\n`);
  r = spawnSync(join(BUILD, 'sluice'), ['--check', '--config', file], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bogus/);
  assert.deepEqual(leaks(r.stdout + r.stderr), [], '--check of a bad file');

  const gw = await startGateway(conf(), { env: { SLUICE_ADMIN_KEY: ADMIN } });
  try {
    const ask = (model) => fetch(`${gw.base}/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: `redact ${model}` }] }),
    });
    let res = await ask('small');
    assert.equal(res.status, 200, 'credentials in a base_url do not stop it from working');
    res = await ask('gone');
    const body = await res.text();
    assert.equal(res.status, 502);
    assert.deepEqual(leaks(body), [], `the error answer: ${body}`);
    res = await ask('scored'); // the scorer's URL refuses: a scorer failure, then the last stage
    assert.equal(res.status, 200);
    assert.deepEqual(leaks(await res.text()), []);

    res = await fetch(`${gw.adminUrl}/admin/config`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.deepEqual(leaks(text), [], '/admin/config');
    const cfg = JSON.parse(text);
    const host = new URL(mock.base).host;
    assert.equal(cfg.providers[0].base_url, `http://<redacted>@${host}/v1`);
    assert.equal(cfg.providers[1].base_url, 'http://<redacted>@127.0.0.1:1/v1');
    assert.equal(cfg.routes[0].stages[0].url, 'http://<redacted>@127.0.0.1:1/score');

    await waitFor(() => readFileSync(join(dir, 'trace.jsonl'), 'utf8').split('\n').length > 3);
  } finally {
    await gw.stop();
  }
  assert.deepEqual(leaks(gw.output()), [], 'the log');
  assert.deepEqual(leaks(readFileSync(join(dir, 'trace.jsonl'), 'utf8')), [], 'the trace');
});
