// sluice-tune end to end, on the committed RouterBench fixture: fit a
// cascade, deploy the routes block it writes on sluice in front of
// `sluice-mock --replay`, and check with `sluice-tune eval` that the gateway
// does query for query what the offline simulation says it does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, readdirSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, BUILD, SLOW, startMock, startProcess, stopProcess, tmpDir } from './helpers.mjs';

const execFileP = promisify(execFile);
const FIX = join(ROOT, 'tests/fixtures/routerbench');
const ARC = join(FIX, 'arc-challenge.jsonl');
const ALL = ['arc-challenge', 'winogrande', 'mbpp', 'synthetic'].map((f) => join(FIX, `${f}.jsonl`));
const PRICES = join(FIX, 'prices.json');
const PRICE_TABLE = JSON.parse(readFileSync(PRICES, 'utf8'));
const TUNE = join(BUILD, 'sluice-tune');
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

test('fit writes the frontier, its plot, the scorers and a routes block, and checks its choice', async () => {
  fitDir = tmpDir();
  const out = await ok(TUNE, [...FIT, '--out', fitDir]);
  assert.match(out, /^frontier \(\d+ chains/m);
  assert.match(out, /^route tuned: most accurate chain within 20\.0% of gpt-4-1106-preview/m);
  assert.match(out, /^ {4}accuracy [\d.]+ \([-+][\d.]+ points vs ref\)/m, 'the cross-validated figures');
  // The nested check: fitted on 80%, deployed on the other 20%, stage by stage.
  assert.match(out, /^ {2}nested check: the whole fit on 80% of the queries/m);
  assert.match(out, /^ {4}part 1 \(\d+ held-out queries\): \S+/m);
  assert.match(out, /^ {4}stage 1\s+accepts\s+[\d.]+%\s+accepts\s+[\d.]+%$/m);
  assert.match(out, /^ {4}(agrees|DIFFERS): accuracy [-+][\d.]+ pt, cost [-+][\d.]+ pt apart/m);

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

  const routes = readFileSync(join(fitDir, 'routes.conf'), 'utf8');
  assert.match(routes, /^# chain: .+$/m);
  assert.match(routes, /^routes = \(\n(#.*\n)+ {4}\{\n {8}name = "tuned";\n {8}cascade = \(/m);
  // A weights file for each learned stage the routes load, and no other.
  const wanted = [...routes.matchAll(/weights = "scorers\/([^"]+)"/g)].map((m) => m[1]).sort();
  const ws = readdirSync(join(fitDir, 'scorers')).filter((f) => f.endsWith('.w')).sort();
  assert.deepEqual(ws, [...new Set(wanted)]);
  for (const w of ws) {
    const text = readFileSync(join(fitDir, 'scorers', w), 'utf8');
    assert.match(text, /^sluice-learned 2\nmodel=/);
    assert.match(text, /\nfolds=3\n/);
    assert.match(text, /\nend\n$/);
  }
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

/** simulate's per-stage counts: [answered by stage 1, 2, ...]. */
function simStages(out) {
  return [...out.matchAll(/^stage \d+ \(.*\): answered (\d+)/gm)].map((m) => Number(m[1]));
}

test('learned stages with and without peers, trained by `train`, run end to end exactly as simulated', async () => {
  const dir = tmpDir();
  const scorers = join(dir, 'scorers');
  mkdirSync(scorers);
  const common = ['--data', ARC, '--prices', PRICES, '--folds', '3', '--seed', '1'];
  const t1 = await ok(TUNE, ['train', ...common, '--model', 'Yi-34B', '--out', join(scorers, 'zero-one-ai_Yi-34B-Chat.w')]);
  assert.match(t1, /cross-validated AUC 0\.\d+/);
  await ok(TUNE, ['train', ...common, '--model', 'mixtral-8x7b', '--peers', 'Yi-34B',
    '--out', join(scorers, 'mistralai_mixtral-8x7b-chat+zero-one-ai_Yi-34B-Chat.w')]);
  // Thresholds at which every stage answers some queries.
  let chain;
  for (const a of ['0.95', '0.9', '0.85', '0.8']) {
    for (const b of ['0.9', '0.8', '0.7', '0.5']) {
      const c = `Yi-34B:learned@${a} -> mixtral-8x7b:learned(Yi-34B)@${b} -> gpt-4`;
      const out = await ok(TUNE, ['simulate', ...common, '--chain', c, '--weights-dir', scorers]);
      if (simStages(out).every((n) => n > 0)) { chain = c; break; }
    }
    if (chain) break;
  }
  assert.ok(chain, 'no thresholds make every stage answer');
  const conf = join(dir, 'gateway.conf');
  writeFileSync(conf, gatewayConf(`routes = ( { name = "peers"; cascade = (
  { model = "zero-one-ai/Yi-34B-Chat"; scorer = "learned"; weights = "scorers/zero-one-ai_Yi-34B-Chat.w"; threshold = ${chain.match(/@([\d.]+) ->/)[1]}; },
  { models = ( "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat" ); scorer = "learned"; weights = "scorers/mistralai_mixtral-8x7b-chat+zero-one-ai_Yi-34B-Chat.w"; threshold = ${chain.match(/\)@([\d.]+)/)[1]}; },
  { model = "gpt-4-1106-preview"; }
); }, { name = "peers1"; cascade = (
  { models = ( "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat" ); scorer = "learned"; weights = "scorers/mistralai_mixtral-8x7b-chat+zero-one-ai_Yi-34B-Chat.w"; threshold = ${chain.match(/\)@([\d.]+)/)[1]}; },
  { model = "gpt-4-1106-preview"; }
); } );`));
  const url = await startOn(conf);
  const ev = await run(TUNE, ['eval', '--gateway', url, '--data', ARC, '--prices', PRICES, '--route', 'peers',
    '--chain', chain, '--weights-dir', scorers, '--models', 'none']);
  assert.equal(ev.code, 0, `eval: end to end differs from offline:\n${ev.stdout}\n${ev.stderr}`);
  const stages = [...ev.stdout.matchAll(/^ {2}(\d) (\S+)\s+(\d+) \/ (\d+)$/gm)];
  assert.equal(stages.length, 3);
  for (const s of stages) assert.ok(Number(s[3]) > 0 && s[3] === s[4], ev.stdout);

  // The peer called by the stage itself (not reused from an earlier one): paid there.
  const first = chain.replace(/^.*? -> /, '');
  const ev1 = await run(TUNE, ['eval', '--gateway', url, '--data', ARC, '--prices', PRICES, '--route', 'peers1',
    '--chain', first, '--weights-dir', scorers, '--models', 'none']);
  assert.equal(ev1.code, 0, `eval: end to end differs from offline:\n${ev1.stdout}\n${ev1.stderr}`);
  assert.equal(evalRow(ev1.stdout, 'peers1').verdict, 'equal');

  // A stage whose models do not match what the weights file reads is refused.
  const bad = join(dir, 'bad.conf');
  writeFileSync(bad, gatewayConf(`routes = ( { name = "bad"; cascade = (
  { model = "mistralai/mixtral-8x7b-chat"; scorer = "learned"; weights = "scorers/mistralai_mixtral-8x7b-chat+zero-one-ai_Yi-34B-Chat.w"; threshold = 0.5; },
  { model = "gpt-4-1106-preview"; }
); } );`));
  const chk = await run(join(BUILD, 'sluice'), ['--check', '--config', bad]);
  assert.notEqual(chk.code, 0);
  assert.match(chk.stdout + chk.stderr, /reads the answers of 1 peer model \(zero-one-ai\/Yi-34B-Chat\), so the stage needs 'models'/);
});

test("fit --routes: one route per budget, each deployed as written runs end to end exactly as simulated", async () => {
  const dir = tmpDir();
  const out = await ok(TUNE, ['fit', '--data', ARC, '--prices', PRICES, '--folds', '3', '--seed', '1',
    '--routes', '10%,20%,40%', '--penalty', '0', '--out', dir]);
  for (const r of ['tuned-10pct', 'tuned-20pct', 'tuned-40pct']) assert.match(out, new RegExp(`^route ${r}: most accurate`, 'm'));
  const routes = readFileSync(join(dir, 'routes.conf'), 'utf8');
  assert.equal([...routes.matchAll(/^# chain: /gm)].length, 3);
  const svg = readFileSync(join(dir, 'frontier.svg'), 'utf8');
  for (const r of ['tuned-10pct', 'tuned-20pct', 'tuned-40pct']) assert.match(svg, new RegExp(`>${r}</text>`));
  // The routes block names models as the data does, '/' and all; gateway.conf takes such names.
  assert.match(routes, /model = "[^"]+\/[^"]+";/);
  const conf = join(dir, 'gateway.conf');
  writeFileSync(conf, gatewayConf(routes));
  const url = await startOn(conf);

  // No --chain: eval reads it from routes.conf's "# chain:" comment, weights from scorers/ beside it.
  for (const r of ['tuned-10pct', 'tuned-40pct']) {
    const ev = await run(TUNE, ['eval', '--gateway', url, '--data', ARC, '--prices', PRICES, '--route', r,
      '--routes', join(dir, 'routes.conf'), '--models', 'none']);
    assert.equal(ev.code, 0, `eval ${r}: end to end differs from offline:\n${ev.stdout}\n${ev.stderr}`);
    assert.match(ev.stdout, /^result: end to end equals the offline simulation$/m);
    const chain = ev.stdout.match(/^route "[^"]+" is the chain: (.+)$/m)[1];
    const sim = simFigures(await ok(TUNE, ['simulate', '--data', ARC, '--prices', PRICES, '--chain', chain,
      '--weights-dir', join(dir, 'scorers')]));
    const row = evalRow(ev.stdout, r);
    assert.deepEqual({ acc: row.acc, usd: row.usd }, sim);
    assert.equal(row.verdict, 'equal');
  }
  // The 20% route with every single model beside it, each through its implicit route.
  const ev = await run(TUNE, ['eval', '--gateway', url, '--data', ARC, '--prices', PRICES, '--route', 'tuned-20pct',
    '--routes', join(dir, 'routes.conf'), '--concurrency', '8']);
  assert.equal(ev.code, 0, `eval: end to end differs from offline:\n${ev.stdout}\n${ev.stderr}`);
  assert.equal(evalRow(ev.stdout, 'tuned-20pct').verdict, 'equal');
  assert.equal(evalRow(ev.stdout, 'tuned-20pct').bugs, 0);
  // A route routes.conf does not have is a usage error that names the ones it has.
  const no = await run(TUNE, ['eval', '--gateway', url, '--data', ARC, '--prices', PRICES, '--route', 'tuned',
    '--routes', join(dir, 'routes.conf')]);
  assert.equal(no.code, 2);
  assert.match(no.stderr, /has no route "tuned" with a "# chain:" comment above it \(it has: tuned-10pct, tuned-20pct, tuned-40pct\)/);

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

test('fit without a budget chooses the knee of the frontier and says why', async () => {
  const dir = tmpDir();
  const out = await ok(TUNE, ['fit', '--data', ARC, '--prices', PRICES, '--folds', '3', '--no-check', '--out', dir]);
  assert.match(out, /^route tuned: the knee of the frontier \(no --budget or --target-accuracy given\)/m);
  assert.match(out, /^ {2}why the knee: from the cheapest chain \(\$[\d.e-]+, [\d.]+% of ref\) to the knee/m);
  const chain = out.match(/^ {2}chain: (.+)$/m)[1];
  assert.notEqual(chain, 'gpt-4-1106-preview', 'the knee is not the reference alone');
});

test('simulate without --weights-dir says loudly that the result is optimistic', async () => {
  const chain = 'Yi-34B:learned@0.9 -> gpt-4';
  const r = await run(TUNE, ['simulate', '--data', ARC, '--prices', PRICES, '--folds', '3', '--chain', chain]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^sluice-tune: warning: no --weights-dir: .* OPTIMISTIC/m);
  assert.match(r.stdout, /^learned scores: trained here on this file's own grades, out of fold \(OPTIMISTIC/m);
});

test('stderr never lands in the middle of a line of stdout', async () => {
  const dir = tmpDir();
  const log = join(dir, 'both.txt');
  // One file for both, as `fit ... >log 2>&1` gives: each stderr message starts its own line.
  await execFileP('sh', ['-c', `"$0" fit --data "$1" --prices "$2" --folds 3 --out "$3" >"$4" 2>&1`,
    TUNE, ARC, PRICES, join(dir, 'out'), log], { timeout: 60000 * SLOW });
  const lines = readFileSync(log, 'utf8').split('\n');
  const bad = lines.filter((l) => l.includes('sluice-tune:') && !/^(sluice-tune:|sluice-tune fit:)/.test(l));
  assert.deepEqual(bad, []);
  assert.ok(lines.some((l) => l.startsWith('sluice-tune: fit took')), 'the timing line');
  for (const l of lines.filter((x) => x.startsWith('>='))) assert.match(l, /^>=\S+\s+[\d.]+\s+\S+\s+[-+][\d.]+pt\s+[\d.]+%\s+\S/);
});

test('the fixture is what its README says', () => {
  const lines = (f) => readFileSync(join(FIX, f), 'utf8').trim().split('\n').length;
  assert.equal(lines('arc-challenge.jsonl'), 120);
  assert.equal(lines('winogrande.jsonl'), 100);
  assert.equal(lines('mbpp.jsonl'), 25);
  assert.ok(existsSync(join(FIX, 'README.md')));
});
