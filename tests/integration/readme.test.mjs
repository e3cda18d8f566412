// The README's examples, run as written: its Node example against `sluice`
// on conf/dev.conf (what `make run` starts), and every gateway.conf it shows
// through `sluice --check`. A README that drifts from sluice fails here.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { confCopy, startMock, startProcess, stopProcess, tmpDir, BUILD, ROOT } from './helpers.mjs';

const run = promisify(execFile);
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The fenced blocks of the README whose info string is lang ('' for none). */
function blocks(lang) {
  const out = [];
  let open = null;
  for (const line of README.split('\n')) {
    const fence = /^```(\S*)\s*$/.exec(line);
    if (fence && open === null) {
      open = { lang: fence[1], lines: [] };
    } else if (fence) {
      if (open.lang === lang) out.push(open.lines.join('\n') + '\n');
      open = null;
    } else if (open) {
      open.lines.push(line);
    }
  }
  return out;
}

const procs = [];
after(async () => {
  for (const p of procs.reverse()) await p.stop();
});

test('the README Node examples run against conf/dev.conf (make run)', async () => {
  const js = blocks('js');
  assert.ok(js.length >= 3, 'the README has Node examples: chat, Responses, Anthropic');
  const mock = await startMock();
  procs.push(mock);
  const conf = confCopy('dev.conf', [['"http://127.0.0.1:8081/v1"', `"${mock.base}"`]]);
  const g = await startProcess(join(BUILD, 'sluice'), ['--config', conf, '--listen', '127.0.0.1:0'],
    { ready: /listening on (http:\/\/[\d.]+:\d+)/ });
  procs.push({ stop: () => stopProcess(g) });
  // Under the tree, so that `import 'openai'` finds node_modules.
  const file = join(BUILD, `readme-example-${process.pid}.mjs`);
  for (const code of js) {
    assert.match(code, /http:\/\/127\.0\.0\.1:8080/, 'the example points at make run\'s address');
    writeFileSync(file, code.replaceAll('http://127.0.0.1:8080', g.match[1]));
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: 30000 });
      assert.match(stdout, /^mock-small \S/m, 'the answer names the model that answered');
      if (code.includes('embeddings')) {
        assert.match(stdout, /^\d+ \d+(\.\d+)?$/m, 'the embedding length and its x-sluice-cost');
      }
      if (code.includes('countTokens')) assert.match(stdout, /^input_tokens [1-9]\d*$/m, 'count_tokens');
      assert.ok(stdout.split('\n').filter((l) => l.trim()).length >= 2, 'the streamed answer printed');
    } finally {
      unlinkSync(file);
    }
  }
});

test('every gateway.conf in the README passes sluice --check', async () => {
  const confs = blocks('').filter((b) => /^\s*providers\s*=/m.test(b));
  assert.ok(confs.length >= 1, 'the README shows a gateway.conf');
  const dir = tmpDir();
  for (const [i, text] of confs.entries()) {
    const f = join(dir, `readme-${i}.conf`);
    writeFileSync(f, text);
    const { stdout } = await run(join(BUILD, 'sluice'), ['--check', '--config', f],
      { env: { ...process.env, OPENAI_API_KEY: 'sk-test' } });
    assert.match(stdout, /OK/, `README config ${i + 1}`);
  }
});
