// The /metrics exposition against Prometheus's own parser and linter: the
// metrics unit test writes a sample that uses every family (with escaped and
// empty labels, a negative float counter, a callback gauge) to $METRICS_DUMP,
// and `promtool check metrics` must accept it without a single complaint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, BUILD, tmpDir } from './helpers.mjs';

const execFileP = promisify(execFile);

// Every family, exactly: name and type.
const FAMILIES = {
  sluice_requests_total: 'counter',
  sluice_request_duration_seconds: 'histogram',
  sluice_upstream_duration_seconds: 'histogram',
  sluice_gateway_overhead_seconds: 'histogram',
  sluice_ttft_seconds: 'histogram',
  sluice_tokens_total: 'counter',
  sluice_cost_usd_total: 'counter',
  sluice_cascade_stage_decisions_total: 'counter',
  sluice_cascade_saved_usd_total: 'counter',
  sluice_cascade_overspent_usd_total: 'counter',
  sluice_cache_lookups_total: 'counter',
  sluice_upstream_retries_total: 'counter',
  sluice_circuit_breaker_state: 'gauge',
  sluice_limited_total: 'counter',
  sluice_cascade_stage_score_total: 'counter',
  sluice_cascade_stage_scored_total: 'counter',
  sluice_cache_saved_usd_total: 'counter',
  sluice_otel_spans_total: 'counter',
  sluice_redis_errors_total: 'counter',
  sluice_inflight_requests: 'gauge', // the callback gauge the sample registers
};

function promtool() {
  const r = spawnSync('promtool', ['--version'], { stdio: 'ignore' });
  return r.error ? null : 'promtool';
}

/** The unit test binary: this build's, or the default build's (made if need be;
 * the sanitizer builds do not make unit binaries, and the format is the same). */
async function unitBinary() {
  const own = join(BUILD, 'tests/test_metrics');
  if (existsSync(own)) return own;
  await execFileP('make', ['-C', ROOT, '-s', 'build/tests/test_metrics'], { maxBuffer: 16 << 20 });
  return join(ROOT, 'build/tests/test_metrics');
}

test('the exposition passes promtool check metrics', async (t) => {
  if (!promtool()) {
    t.skip('promtool is not installed (Debian package "prometheus"; `make deps-test` installs it)');
    return;
  }
  const file = join(tmpDir(), 'sample.prom');
  await execFileP(await unitBinary(), [], { env: { ...process.env, METRICS_DUMP: file } });
  const text = readFileSync(file, 'utf8');

  // The text itself: every family once, with HELP before TYPE, and nothing else.
  const types = {};
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    assert.equal(types[m[1]], undefined, `${m[1]} declared twice`);
    types[m[1]] = m[2];
    assert.ok(text.includes(`# HELP ${m[1]} `), `${m[1]} has no HELP`);
    assert.ok(text.indexOf(`# HELP ${m[1]} `) < text.indexOf(`# TYPE ${m[1]} `));
  }
  assert.deepEqual(types, FAMILIES);
  assert.match(text, /^sluice_ttft_seconds_bucket\{route="smart",le="0.5"\} 1$/m);
  assert.match(text, /^sluice_requests_total\{route="we\\"ird\\\\route\\n",model="small",status="502",cache="ERROR"\} 1$/m);
  assert.ok(text.endsWith('\n'));

  // promtool exits non-zero on a parse error (1) or any lint problem (3), and
  // prints them; both must be silent.
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.error, undefined);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool complained');
  assert.equal(r.status, 0);
});

test('promtool does catch a broken exposition (so the check above can fail)', async (t) => {
  if (!promtool()) {
    t.skip('promtool is not installed');
    return;
  }
  const bad = '# TYPE sluice_requests counter\nsluice_requests{route="a\\q"} 1\n';
  const r = spawnSync('promtool', ['check', 'metrics'], { input: bad, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
});
