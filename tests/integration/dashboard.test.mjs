// The dashboard (GET /ui on the admin listener) in a real browser: Debian's
// chromium, headless, driven by playwright-core. After some traffic, the
// numbers the page shows must match /metrics, the charts must have drawn,
// and the page must log no error. A screenshot is saved under the test's
// output directory (and, with SLUICE_SCREENSHOT_DIR set, there too: that is
// how docs/dashboard.png is made).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMock, startGateway, learnedWeights, tmpDir, waitFor, SLOW } from './helpers.mjs';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN_KEY = 'admin-secret-for-the-dashboard';
const KEYS = { a: 'sk-team-a-dashboard', tiny: 'sk-tiny-dashboard' };
const sha = (k) => createHash('sha256').update(k).digest('hex');
const dir = tmpDir();
let mock;
let gw;
let collector; // takes the traces, so the page shows the exporter at work
let lastRequestId;

const weights = (name, bias) => learnedWeights(dir, name, bias);

before(async () => {
  mock = await startMock();
  collector = createServer((req, res) => { req.resume(); req.on('end', () => res.end()); });
  await new Promise((r) => collector.listen(0, '127.0.0.1', r));
  gw = await startGateway(`
log = { format = "json"; path = "-"; level = "info"; };
otel = { endpoint = "http://127.0.0.1:${collector.address().port}"; };
admin = { listen = "127.0.0.1:0"; key_env = "DASH_ADMIN_KEY"; };
providers = ( { name = "mock"; type = "openai"; base_url = "${mock.base}"; timeout_ms = ${20000 * SLOW}; } );
models = (
  { name = "cheap"; provider = "mock"; id = "mock-cheap"; input_per_mtok = 1; output_per_mtok = 1; },
  { name = "strong"; provider = "mock"; id = "mock-strong"; input_per_mtok = 10; output_per_mtok = 30; }
);
routes = (
  { name = "reliable"; fallback = ( "cheap", "strong" ); },
  { name = "smart"; cascade = (
      { model = "cheap"; scorer = "learned"; weights = "${weights('half', 0)}"; threshold = 0.4; },
      { model = "strong"; } ); },
  { name = "picky"; cascade = (
      { model = "cheap"; scorer = "learned"; weights = "${weights('lo', -3)}"; threshold = 0.9; },
      { model = "strong"; } ); }
);
keys = (
  { name = "team-a"; key_sha256 = "${sha(KEYS.a)}"; },
  { name = "tiny"; key_sha256 = "${sha(KEYS.tiny)}"; rpm = 1; }
);
`, { env: { DASH_ADMIN_KEY: ADMIN_KEY } });
});

after(async () => {
  // Close the collector whatever the stops say (a sanitizer report fails
  // them): an open server would keep this file's process alive.
  collector?.close();
  try {
    await gw?.stop();
  } finally {
    await mock?.stop();
  }
});

async function chat(key, body, headers = {}) {
  const r = await fetch(`${gw.base}/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify(body),
  });
  await r.text();
  lastRequestId = r.headers.get('x-request-id');
  return r;
}

async function traffic() {
  const m = (s) => [{ role: 'user', content: s }];
  for (let i = 0; i < 12; i++) {
    assert.equal((await chat(KEYS.a, { model: 'reliable', messages: m(`hello ${i}`) })).status, 200);
    assert.equal((await chat(KEYS.a, { model: 'reliable', stream: true, messages: m(`stream ${i}`) })).status, 200);
  }
  for (let i = 0; i < 5; i++) {
    assert.equal((await chat(KEYS.a, { model: 'smart', messages: m(`smart ${i}`) })).status, 200);
    assert.equal((await chat(KEYS.a, { model: 'picky', messages: m(`picky ${i}`) })).status, 200);
  }
  // cache hits
  assert.equal((await chat(KEYS.a, { model: 'reliable', messages: m('hello 0') })).headers.get('x-sluice-cache'), 'HIT');
  // an upstream failure on both models: a 502
  assert.equal((await chat(KEYS.a, { model: 'reliable', messages: m('fail'), mock: { status: 500 } })).status, 502);
  // a limit hit: the second request of the minute
  assert.equal((await chat(KEYS.tiny, { model: 'reliable', messages: m('tiny 1') })).status, 200);
  assert.equal((await chat(KEYS.tiny, { model: 'reliable', messages: m('tiny 2') })).status, 429);
}

/** Parse the text exposition into [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/);
    assert.ok(m, line);
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (ms, name, pred = () => true) => ms.filter((x) => x.name === name && pred(x.labels))
  .reduce((a, x) => a + x.value, 0);

// Prometheus' histogram_quantile over one route's buckets.
function quantile(ms, name, route, q) {
  const b = ms.filter((x) => x.name === `${name}_bucket` && x.labels.route === route)
    .map((x) => [x.labels.le === '+Inf' ? Infinity : Number(x.labels.le), x.value])
    .sort((a, c) => a[0] - c[0]);
  const count = b[b.length - 1][1];
  const rank = q * count;
  let pb = 0;
  let pc = 0;
  for (const [le, c] of b) {
    if (c >= rank) {
      if (le === Infinity) return pb;
      if (c === pc) return le;
      return pb + (le - pb) * ((rank - pc) / (c - pc));
    }
    pb = le;
    pc = c;
  }
  return pb;
}

test('/ui and /admin/stats need the admin key; a browser is asked for it (Basic)', async () => {
  const r = await fetch(`${gw.adminUrl}/ui`);
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate'), /^Basic realm="sluice admin"/);
  assert.equal((await r.json()).error.code, 'invalid_admin_key');
  assert.equal((await fetch(`${gw.adminUrl}/admin/stats`)).status, 401);
  const basic = `Basic ${Buffer.from(`anyone:${ADMIN_KEY}`).toString('base64')}`;
  const ok = await fetch(`${gw.adminUrl}/ui`, { headers: { Authorization: basic } });
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('content-type'), /^text\/html/);
  assert.match(await ok.text(), /<script src="\/ui\/uPlot\.iife\.min\.js">/);
  const wrong = `Basic ${Buffer.from('anyone:nope').toString('base64')}`;
  assert.equal((await fetch(`${gw.adminUrl}/ui`, { headers: { Authorization: wrong } })).status, 401);
  const st = await fetch(`${gw.adminUrl}/admin/stats`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(st.status, 200);
  const j = await st.json();
  assert.ok(j.metrics.sluice_requests_total);
  assert.ok(Array.isArray(j.recent));
  // The effective config shows the otel block, header values redacted.
  const cfg = await (await fetch(`${gw.adminUrl}/admin/config`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json();
  assert.match(cfg.otel.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(cfg.otel.sample_ratio, 1);
  // The public listener has no dashboard.
  assert.equal((await fetch(`${gw.url}/ui`)).status, 404);
});

test('the dashboard in headless Chromium shows what /metrics says, draws its charts, logs no error', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip('chromium is not installed (`make deps` installs it)');
    return;
  }
  const { chromium } = await import('playwright-core');
  await traffic();
  // A fresh profile (--user-data-dir, which playwright passes for a
  // persistent context) for every run.
  const context = await chromium.launchPersistentContext(tmpDir(), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    httpCredentials: { username: 'admin', password: ADMIN_KEY },
    viewport: { width: 1400, height: 1300 },
  });
  const problems = [];
  try {
    const page = await context.newPage();
    page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
    await page.goto(`${gw.adminUrl}/ui?interval=400`);
    // Two polls draw the charts (a rate needs two); then more traffic and
    // more polls, so the charts have a line to show.
    await page.waitForFunction(() => Number(document.body.dataset.polls) >= 2, null, { timeout: 15000 * SLOW });
    for (let i = 0; i < 6; i++) {
      await chat(KEYS.a, { model: 'reliable', messages: [{ role: 'user', content: `more ${i}` }] });
      await chat(KEYS.a, { model: 'smart', messages: [{ role: 'user', content: `more ${i}` }] });
      await new Promise((r) => setTimeout(r, 150));
    }
    const polls = await page.evaluate(() => Number(document.body.dataset.polls));
    await page.waitForFunction((n) => Number(document.body.dataset.polls) >= n + 2, polls, { timeout: 15000 * SLOW });

    // Everything the page shows, read at once (between two polls), then
    // /metrics: no traffic in between.
    const shown = await page.evaluate(() => {
      const txt = (sel) => document.querySelector(sel)?.textContent ?? null;
      const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => ({
        attrs: Object.fromEntries([...tr.attributes].map((a) => [a.name, a.value])),
        cols: Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.textContent])),
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
      }));
      const drawn = (id) => {
        const c = document.querySelector(`#${id} canvas`);
        if (!c || c.width === 0) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
        return n;
      };
      return {
        total: txt('#total-requests'),
        errors: txt('#total-errors'),
        hitRate: txt('#cache-hit-rate'),
        spend: txt('#total-spend'),
        latency: txt('#latency-pct'),
        routes: rows('routes'),
        stages: rows('stages'),
        models: rows('spend-model'),
        keys: rows('spend-key'),
        limits: rows('limits'),
        breakers: rows('breakers'),
        recent: rows('recent'),
        status: txt('#status'),
        rpsPixels: drawn('chart-rps'),
        latPixels: drawn('chart-latency'),
      };
    });
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const ms = parseMetrics(text);

    assert.equal(shown.status, 'live');
    assert.equal(Number(shown.total), sum(ms, 'sluice_requests_total'));
    assert.equal(Number(shown.errors), sum(ms, 'sluice_requests_total', (l) => Number(l.status) >= 500));
    assert.ok(Number(shown.errors) >= 1);
    const hits = sum(ms, 'sluice_cache_lookups_total', (l) => l.result === 'hit');
    const looked = sum(ms, 'sluice_cache_lookups_total');
    assert.equal(shown.hitRate, `${((hits / looked) * 100).toFixed(1)}%`);
    assert.equal(shown.spend, `$${sum(ms, 'sluice_cost_usd_total').toFixed(6)}`);

    for (const route of ['reliable', 'smart', 'picky']) {
      const row = shown.routes.find((r) => r.attrs['data-route'] === route);
      assert.ok(row, `a row for ${route}`);
      const is = (l) => l.route === route;
      assert.equal(Number(row.cols.requests), sum(ms, 'sluice_requests_total', is), route);
      assert.equal(Number(row.cols['5xx']), sum(ms, 'sluice_requests_total', (l) => is(l) && Number(l.status) >= 500));
      assert.equal(Number(row.cols['4xx']), sum(ms, 'sluice_requests_total', (l) => is(l) && Number(l.status) >= 400 && Number(l.status) < 500));
      assert.equal(row.cols.spend, sum(ms, 'sluice_cost_usd_total', is).toFixed(6));
      assert.equal(row.cols.p50, (quantile(ms, 'sluice_request_duration_seconds', route, 0.5) * 1000).toFixed(1));
      assert.equal(row.cols.p95, (quantile(ms, 'sluice_request_duration_seconds', route, 0.95) * 1000).toFixed(1));
    }
    const rel = shown.routes.find((r) => r.attrs['data-route'] === 'reliable');
    assert.equal(rel.cols.ttft_p50, (quantile(ms, 'sluice_ttft_seconds', 'reliable', 0.5) * 1000).toFixed(1));
    assert.equal(Number(rel.cols['4xx']), 1, 'the rpm refusal');

    // Cascade stages: acceptance rate and mean score.
    for (const route of ['smart', 'picky']) {
      const row = shown.stages.find((r) => r.attrs['data-route'] === route && r.attrs['data-stage'] === '0');
      const is = (l) => l.route === route && l.stage === '0';
      const n = sum(ms, 'sluice_cascade_stage_decisions_total', is);
      const acc = sum(ms, 'sluice_cascade_stage_decisions_total', (l) => is(l) && l.decision === 'accept');
      assert.equal(Number(row.cols.verdicts), n);
      assert.equal(row.cols.acceptance, `${((acc / n) * 100).toFixed(1)}%`);
      assert.equal(row.cols.mean_score, (sum(ms, 'sluice_cascade_stage_score_total', is)
        / sum(ms, 'sluice_cascade_stage_scored_total', is)).toFixed(3));
    }
    assert.equal(shown.stages.find((r) => r.attrs['data-route'] === 'smart' && r.attrs['data-stage'] === '0').cols.acceptance, '100.0%');
    assert.equal(shown.stages.find((r) => r.attrs['data-route'] === 'picky' && r.attrs['data-stage'] === '0').cols.acceptance, '0.0%');

    for (const model of ['cheap', 'strong']) {
      const row = shown.models.find((r) => r.attrs['data-model'] === model);
      assert.equal(row.cols.spend, sum(ms, 'sluice_cost_usd_total', (l) => l.model === model).toFixed(6));
      assert.equal(Number(row.cols.tokens), sum(ms, 'sluice_tokens_total', (l) => l.model === model));
    }
    const teamA = shown.keys.find((r) => r.attrs['data-key'] === 'team-a');
    assert.equal(teamA.cols.spend, sum(ms, 'sluice_cost_usd_total', (l) => l.key === 'team-a').toFixed(6));
    const lim = shown.limits.find((r) => r.attrs['data-key'] === 'tiny');
    assert.equal(Number(lim.cols.refused), sum(ms, 'sluice_limited_total', (l) => l.key === 'tiny'));
    assert.equal(lim.attrs['data-limit'], 'rpm');
    assert.equal(shown.breakers.find((r) => r.attrs['data-provider'] === 'mock').cols.state, 'closed');

    // The ring: newest first, the log's fields, no prompt text.
    assert.equal(shown.recent[0].attrs['data-request-id'], lastRequestId);
    assert.ok(shown.recent.length >= 50);
    assert.ok(!shown.recent.some((r) => r.cells.some((c) => /more \d|hello \d/.test(c))), 'no prompt text');

    // The charts drew lines.
    assert.ok(shown.rpsPixels > 500, `requests/s chart pixels: ${shown.rpsPixels}`);
    assert.ok(shown.latPixels > 500, `latency chart pixels: ${shown.latPixels}`);

    const out = tmpDir();
    const shot = join(out, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(readFileSync(shot).length > 10000);
    console.log(`screenshot: ${shot}`);
    if (process.env.SLUICE_SCREENSHOT_DIR) {
      // docs/dashboard.png: the first screenful.
      await page.screenshot({ path: join(out, 'top.png'), clip: { x: 0, y: 0, width: 1400, height: 1050 } });
      copyFileSync(join(out, 'top.png'), join(process.env.SLUICE_SCREENSHOT_DIR, 'dashboard.png'));
    }
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

void waitFor;
