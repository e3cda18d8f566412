// sluice-tune end to end, on the committed RouterBench fixture: fit a
// cascade, deploy the routes block it writes on sluice in front of
// `sluice-mock --replay`, and check with `sluice-tune eval` that the gateway
// does query for query what the offline simulation says it does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, BUILD, SLOW, startMock, startProcess, stopProcess, tmpDir } from './helpers.mjs';

const execFileP = promisify(execFile);
const FIX = join(ROOT, 'tests/fixtures/routerbench');
const ARC = join(FIX, 'arc-challenge.jsonl');
const ALL = ['arc-challenge', 'winogrande', 'mbpp', 'synthetic'].map((f) => join(FIX, `${f}.jsonl`));
const PRICES = join(FIX, 'prices.json');
const PRICE_TABLE = JSON.parse(readFileSync(PRICES, 'utf8'));
const TUNE = join(BUILD, 'sluice-tune');
// With seed 1, fit picks a 3-stage chain: learned, then agreement reusing
// stage 1's answer, then GPT-4.
const FIT = ['fit', '--data', ARC, '--prices', PRICES, '--folds', '3', '--seed', '1', '--budget', '20%'];
// Rules, then agreement of three models (one reused from stage 1), then the
// strong model; the synthetic rows make it veto, escalate on a missing
// partner, salvage, break a tie and fail after paying.
const HAND = 'claude-instant:rules -> mixtral-8x7b:agree(Yi-34B,claude-instant)@0.66 -> gpt-4';

/** Run a binary; resolve to { code, stdout, stderr } whatever the exit code. */
async function run(bin, args) {
  try {
    const r = await execFileP(bin, args, { maxBuffer: 64 << 20, timeout: 60000 * SLOW });
    return { code: 0, ...r };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function ok(bin, args) {
  const r = await run(bin, args);
  assert.equal(r.code, 0, `${bin} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

let mock;
let fitDir;
const gateways = [];

before(async () => {
  mock = await startMock(['--replay', ...ALL]);
});

after(async () => {
  for (const g of gateways) await stopProcess(g);
  await mock?.stop();
});

/** gateway.conf: sluice-mock as the provider, the fixture's models at their prices. */
function gatewayConf(routes, name = (m) => m) {
  const models = Object.entries(PRICE_TABLE).map(([m, p]) =>
    `{ name = "${name(m)}"; provider = "mock"; id = "${m}"; input_per_mtok = ${p.input_per_mtok}; output_per_mtok = ${p.output_per_mtok}; }`);
  return `log = { format = "json"; path = "-"; level = "info"; };
providers = ( { name = "mock"; type = "openai"; base_url = "${mock.base}"; timeout_ms = ${20000 * SLOW}; } );
models = (
  ${models.join(',\n  ')}
);
${routes}
`;
}

/** Check a config with sluice --check, then start sluice on it (in place: weights paths are relative to it). */
async function startOn(conf) {
  assert.match(await ok(join(BUILD, 'sluice'), ['--check', '--config', conf]), /OK/);
  const g = await startProcess(join(BUILD, 'sluice'), ['--config', conf, '--listen', '127.0.0.1:0'],
    { ready: /listening on (http:\/\/[\d.]+:\d+)/ });
  gateways.push(g);
  return g.match[1];
}

/** The figures simulate prints: accuracy and usd_per_query, as printed. */
function simFigures(out) {
  return { acc: out.match(/^accuracy: (\S+)/m)[1], usd: out.match(/^usd_per_query: (\S+)/m)[1] };
}

/** The row of `name` in eval's table: end to end and offline figures, as printed. */
function evalRow(out, name) {
  const line = out.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no row ${name} in:\n${out}`);
  const f = line.slice(name.length).trim().split(/\s+/);
  if (f[0] === '(route)') f.shift();
  return { acc: f[0], usd: f[1], simAcc: f[3], simUsd: f[4], non200: Number(f[5]), bugs: Number(f[6]), verdict: f.slice(7).join(' ') };
}

test('fit writes the frontier, its plot, the scorers and a routes block', async () => {
  fitDir = tmpDir();
  const out = await ok(TUNE, [...FIT, '--out', fitDir]);
  assert.match(out, /^frontier \(\d+ chains/m);
  assert.match(out, /^choice: most accurate chain within 20\.0% of gpt-4-1106-preview/m);

  const tsv = readFileSync(join(fitDir, 'frontier.tsv'), 'utf8').trim().split('\n');
  assert.deepEqual(tsv[0].split('\t'), ['budget_usd', 'accuracy', 'usd_per_query', 'acc_minus_ref_pts', 'cost_over_ref', 'stages', 'chain']);
  assert.ok(tsv.length >= 3, 'a frontier of one point');
  const pts = tsv.slice(1).map((l) => l.split('\t'));
  for (let i = 1; i < pts.length; i++) {
    // cost ascending, accuracy strictly ascending: a frontier
    assert.ok(Number(pts[i][2]) >= Number(pts[i - 1][2]) && Number(pts[i][1]) > Number(pts[i - 1][1]), tsv.join('\n'));
  }

  const svg = readFileSync(join(fitDir, 'frontier.svg'), 'utf8');
  assert.match(svg, /^(<\?xml[^>]*>\s*)?<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
  assert.match(svg, /<(path|polyline)\b/);
  assert.match(svg, /gpt-4-1106-preview/);

  const ws = readdirSync(join(fitDir, 'scorers')).filter((f) => f.endsWith('.w'));
  assert.equal(ws.length, Object.keys(PRICE_TABLE).length, `one scorer per model: ${ws}`);
  for (const w of ws) {
    const text = readFileSync(join(fitDir, 'scorers', w), 'utf8');
    assert.match(text, /^sluice-learned 1\nmodel=/);
    assert.match(text, /\nend\n$/);
  }

  const routes = readFileSync(join(fitDir, 'routes.conf'), 'utf8');
  assert.match(routes, /^# chain: .+ -> .+$/m);
  assert.match(routes, /^routes = \(\n {4}\{\n {8}name = "tuned";\n {8}cascade = \(/m);
});

test('fit is deterministic for a seed', async () => {
  const again = tmpDir();
  await ok(TUNE, [...FIT, '--out', again]);
  for (const f of ['frontier.tsv', 'routes.conf', 'frontier.svg']) {
    assert.equal(readFileSync(join(again, f), 'utf8'), readFileSync(join(fitDir, f), 'utf8'), `${f} differs`);
  }
  for (const w of readdirSync(join(fitDir, 'scorers'))) {
    assert.ok(readFileSync(join(again, 'scorers', w)).equals(readFileSync(join(fitDir, 'scorers', w))), `${w} differs`);
  }
});

test('fit searches exactly as it simulates where answers are missing (salvage)', async () => {
  // fit re-simulates every frontier chain and aborts if the bitset search
  // disagrees; the synthetic rows make the last stage unanswered often.
  const out = await ok(TUNE, ['fit', '--data', ARC, '--data', ALL[3], '--prices', PRICES, '--folds', '3',
    '--no-cv', '--out', tmpDir()]);
  assert.match(out, /^frontier \(\d+ chains/m);
});

test("the chain fit chose, deployed as written, runs end to end exactly as simulated", async () => {
  const routes = readFileSync(join(fitDir, 'routes.conf'), 'utf8');
  const chain = routes.match(/^# chain: (.+)$/m)[1];
  // The point of the test is the learned stages' weights files: make sure there is one.
  assert.match(chain, /^\S+:learned@[\d.]+ -> /);
  // The routes block names models as the data does, '/' and all; gateway.conf takes such names.
  assert.match(routes, /model = "[^"]+\/[^"]+";/);
  const conf = join(fitDir, 'gateway.conf');
  writeFileSync(conf, gatewayConf(routes));
  const url = await startOn(conf);

  const ev = await run(TUNE, ['eval', '--gateway', url, '--data', ARC, '--prices', PRICES, '--route', 'tuned',
    '--chain', chain, '--weights-dir', join(fitDir, 'scorers'), '--concurrency', '8']);
  assert.equal(ev.code, 0, `eval: end to end differs from offline:\n${ev.stdout}\n${ev.stderr}`);
  assert.match(ev.stdout, /^result: end to end equals the offline simulation$/m);

  const sim = simFigures(await ok(TUNE, ['simulate', '--data', ARC, '--prices', PRICES, '--chain', chain,
    '--weights-dir', join(fitDir, 'scorers')]));
  const row = evalRow(ev.stdout, 'tuned');
  assert.deepEqual({ acc: row.acc, usd: row.usd }, sim);
  assert.deepEqual({ acc: row.simAcc, usd: row.simUsd }, sim);
  assert.equal(row.bugs, 0);
  assert.equal(row.verdict, 'equal');
  // The fit's own figure for its choice, on all data, is the out-of-fold one:
  // the same chain scored with the final weights may differ, so it is not compared.

  // Every single model too, through its implicit route.
  for (const m of Object.keys(PRICE_TABLE)) {
    const r = evalRow(ev.stdout, m);
    assert.equal(r.verdict, 'equal', m);
    assert.equal(r.acc, r.simAcc, m);
  }
  // The fixture holds a query most models have no answer for: the mock says 404.
  assert.equal(evalRow(ev.stdout, 'gpt-4-1106-preview').non200, 1);
});

test('a hand-written 3-stage chain with rules and agreement, under config names, matches simulate', async () => {
  const dir = tmpDir();
  const alias = (m) => m.split('/').pop().toLowerCase();
  const conf = join(dir, 'gateway.conf');
  writeFileSync(conf, gatewayConf(`routes = ( { name = "hand"; cascade = (
  { model = "claude-instant-v1"; scorer = "rules"; threshold = 1.0; },
  { models = ( "mixtral-8x7b-chat", "yi-34b-chat", "claude-instant-v1" ); scorer = "agreement"; threshold = 0.66; },
  { model = "gpt-4-1106-preview"; }
); } );`, alias));
  const url = await startOn(conf);
  const data = ALL.flatMap((f) => ['--data', f]);

  // --config: the gateway's names are mapped to the data's by the models' ids.
  const ev = await run(TUNE, ['eval', '--gateway', url, ...data, '--config', conf, '--route', 'hand', '--chain', HAND]);
  assert.equal(ev.code, 0, `eval: end to end differs from offline:\n${ev.stdout}\n${ev.stderr}`);
  const sim = simFigures(await ok(TUNE, ['simulate', ...data, '--config', conf, '--chain', HAND]));
  const row = evalRow(ev.stdout, 'hand');
  assert.deepEqual({ acc: row.acc, usd: row.usd }, sim);
  assert.equal(row.verdict, 'equal');
  assert.equal(evalRow(ev.stdout, 'mixtral-8x7b-chat').verdict, 'equal');

  // Per stage, end to end / offline; the synthetic rows reach every stage and the salvage.
  const stages = [...ev.stdout.matchAll(/^ {2}(\d) (\S+)\s+(\d+) \/ (\d+)$/gm)];
  assert.deepEqual(stages.map((s) => s[2]), ['claude-instant-v1', 'mistralai/mixtral-8x7b-chat', 'gpt-4-1106-preview']);
  for (const s of stages) {
    assert.equal(s[3], s[4]);
    assert.ok(Number(s[3]) > 0, `stage ${s[1]} never answered`);
  }
  const other = ev.stdout.match(/^ {4}salvaged or failed\s+(\d+) \/ (\d+)$/m);
  assert.equal(other[1], other[2]);
  assert.ok(Number(other[1]) >= 3, ev.stdout);

  // Eval can fail: the same route judged against a chain it does not run.
  const wrong = await run(TUNE, ['eval', '--gateway', url, ...data, '--config', conf, '--route', 'hand',
    '--models', 'none', '--chain', HAND.replace('@0.66', '@1.0')]);
  assert.equal(wrong.code, 1, wrong.stdout);
  assert.match(evalRow(wrong.stdout, 'hand').verdict, /^DIFFERENT/);
  assert.match(wrong.stdout, /synthetic\.veto-then-agree differs/);

  // A route the gateway does not have is a failure, not a row of 404s.
  const none = await run(TUNE, ['eval', '--gateway', url, '--data', ALL[3], '--config', conf, '--route', 'nosuch', '--models', 'none']);
  assert.equal(none.code, 1, none.stdout);
  assert.match(none.stdout, /the gateway has no route "nosuch"/);
});

test('the fixture is what its README says', () => {
  const lines = (f) => readFileSync(join(FIX, f), 'utf8').trim().split('\n').length;
  assert.equal(lines('arc-challenge.jsonl'), 120);
  assert.equal(lines('winogrande.jsonl'), 100);
  assert.equal(lines('mbpp.jsonl'), 25);
  assert.ok(existsSync(join(FIX, 'README.md')));
});
