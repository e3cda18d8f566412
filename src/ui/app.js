// sluice's dashboard: polls /admin/stats and draws it. Every number comes
// from the metrics registry (the same sums /metrics shows); rates are the
// difference between two polls, percentiles are read from the histograms'
// buckets as Prometheus' histogram_quantile() does.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const INTERVAL = Math.max(250, Number(params.get('interval')) || 2000);
  const HISTORY = 180; // points kept for the charts

  let prev = null; // the last poll: {time, byRoute: {route: requests}}
  const hist = { t: [], rps: {}, p50: [], p95: [] };
  let rpsChart = null;
  let rpsRoutes = [];
  let latChart = null;

  const $ = (id) => document.getElementById(id);

  function series(m, name) {
    return (m[name] && m[name].series) || [];
  }

  function sum(list, pred = () => true) {
    let s = 0;
    for (const x of list) if (pred(x.labels)) s += x.value;
    return s;
  }

  // Prometheus' histogram_quantile over merged cumulative buckets.
  function quantile(q, buckets) {
    if (!buckets.length) return NaN;
    const count = buckets[buckets.length - 1][1];
    if (count === 0) return NaN;
    const rank = q * count;
    let prevBound = 0;
    let prevCount = 0;
    for (const [le, cum] of buckets) {
      if (cum >= rank) {
        if (le === null) return prevBound; // the +Inf bucket: the highest finite bound
        if (cum === prevCount) return le;
        return prevBound + (le - prevBound) * ((rank - prevCount) / (cum - prevCount));
      }
      prevBound = le === null ? prevBound : le;
      prevCount = cum;
    }
    return prevBound;
  }

  // Add up the buckets of the series that pred keeps.
  function mergeBuckets(list, pred = () => true) {
    let out = null;
    for (const s of list) {
      if (!pred(s.labels)) continue;
      if (!out) out = s.buckets.map(([le, c]) => [le, c]);
      else s.buckets.forEach(([, c], i) => { out[i][1] += c; });
    }
    return out || [];
  }

  const fmtInt = (v) => String(Math.round(v));
  const fmtUsd = (v) => (Number.isFinite(v) ? v.toFixed(6) : '–');
  const fmtMs = (s) => (Number.isFinite(s) ? (s * 1000).toFixed(1) : '–');
  const fmtPct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '–');
  const fmtRate = (v) => (Number.isFinite(v) ? v.toFixed(2) : '–');

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  // Replace a table's body: rows is a list of {cells: [...], attrs}; a cell
  // is a string or {text, cls, col}.
  function fill(id, rows, cols, emptyText = 'none yet') {
    const tbody = $(id).querySelector('tbody');
    tbody.textContent = '';
    if (!rows.length) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = document.createElement('td');
      td.colSpan = cols;
      td.textContent = emptyText;
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    for (const row of rows) {
      const tr = document.createElement('tr');
      for (const [k, v] of Object.entries(row.attrs || {})) tr.setAttribute(k, v);
      if (row.cls) tr.className = row.cls;
      for (const c of row.cells) {
        const td = document.createElement('td');
        const cell = typeof c === 'object' ? c : { text: c };
        td.textContent = cell.text;
        if (cell.cls) td.className = cell.cls;
        if (cell.col) td.dataset.col = cell.col;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }

  function uniq(list, key) {
    return [...new Set(list.map((s) => s.labels[key]))].sort();
  }

  function render(st) {
    const m = st.metrics;
    const req = series(m, 'sluice_requests_total');
    const dur = series(m, 'sluice_request_duration_seconds');
    const ttft = series(m, 'sluice_ttft_seconds');
    const cost = series(m, 'sluice_cost_usd_total');
    const tokens = series(m, 'sluice_tokens_total');
    const saved = series(m, 'sluice_cascade_saved_usd_total');
    const overspent = series(m, 'sluice_cascade_overspent_usd_total');
    const cacheSaved = series(m, 'sluice_cache_saved_usd_total');
    const lookups = series(m, 'sluice_cache_lookups_total');
    const stages = series(m, 'sluice_cascade_stage_decisions_total');
    const scoreSum = series(m, 'sluice_cascade_stage_score_total');
    const scored = series(m, 'sluice_cascade_stage_scored_total');
    const limited = series(m, 'sluice_limited_total');
    const spans = series(m, 'sluice_otel_spans_total');

    setText('version', `v${st.version}`);
    setText('uptime', `${Math.floor(st.uptime_s)} s`);
    setText('updated', new Date(st.time * 1000).toLocaleTimeString());

    // Totals and rates.
    const total = sum(req);
    const routes = uniq(req, 'route').filter((r) => r !== '');
    const byRoute = {};
    for (const r of routes) byRoute[r] = sum(req, (l) => l.route === r);
    const dt = prev ? st.time - prev.time : 0;
    const rate = (now, before) => (dt > 0 ? Math.max(0, now - before) / dt : NaN);
    const totalRps = prev ? rate(total, prev.total) : NaN;

    setText('total-requests', fmtInt(total));
    setText('total-rps', fmtRate(totalRps));
    setText('total-errors', fmtInt(sum(req, (l) => Number(l.status) >= 500)));
    const all = mergeBuckets(dur);
    setText('latency-pct', `${fmtMs(quantile(0.5, all))} / ${fmtMs(quantile(0.95, all))} / ${fmtMs(quantile(0.99, all))} ms`);
    const allTtft = mergeBuckets(ttft);
    setText('ttft-pct', `${fmtMs(quantile(0.5, allTtft))} / ${fmtMs(quantile(0.95, allTtft))} ms`);
    const hits = sum(lookups, (l) => l.result === 'hit');
    const looked = sum(lookups);
    setText('cache-hit-rate', looked ? fmtPct(hits / looked) : '–');
    setText('total-spend', `$${fmtUsd(sum(cost))}`);
    setText('total-saved', `$${fmtUsd(sum(saved) - sum(overspent) + sum(cacheSaved))}`);

    // Routes.
    fill('routes', routes.map((r) => {
      const b = mergeBuckets(dur, (l) => l.route === r);
      const tb = mergeBuckets(ttft, (l) => l.route === r);
      const rr = prev ? rate(byRoute[r], prev.byRoute[r] || 0) : NaN;
      return {
        attrs: { 'data-route': r },
        cells: [
          r,
          { text: fmtInt(byRoute[r]), col: 'requests' },
          { text: fmtRate(rr), col: 'rps' },
          { text: fmtInt(sum(req, (l) => l.route === r && Number(l.status) >= 400 && Number(l.status) < 500)), col: '4xx' },
          { text: fmtInt(sum(req, (l) => l.route === r && Number(l.status) >= 500)), col: '5xx' },
          { text: fmtMs(quantile(0.5, b)), col: 'p50' },
          { text: fmtMs(quantile(0.95, b)), col: 'p95' },
          { text: fmtMs(quantile(0.99, b)), col: 'p99' },
          { text: fmtMs(quantile(0.5, tb)), col: 'ttft_p50' },
          { text: fmtMs(quantile(0.95, tb)), col: 'ttft_p95' },
          { text: fmtUsd(sum(cost, (l) => l.route === r)), col: 'spend' },
          { text: fmtUsd(sum(saved, (l) => l.route === r) - sum(overspent, (l) => l.route === r)), col: 'saved_cascade' },
          { text: fmtUsd(sum(cacheSaved, (l) => l.route === r)), col: 'saved_cache' },
        ],
      };
    }), 13);

    // Cascade stages: acceptance rate and mean score.
    const keys = [...new Set(stages.map((s) => `${s.labels.route}\u0000${s.labels.stage}\u0000${s.labels.model}`))].sort();
    const cascades = new Set((st.routes || []).filter((r) => r.kind === 'cascade').map((r) => r.name));
    fill('stages', keys.filter((k) => cascades.has(k.split('\u0000')[0])).map((k) => {
      const [route, stage, model] = k.split('\u0000');
      const same = (l) => l.route === route && l.stage === stage && l.model === model;
      const n = sum(stages, same);
      const acc = sum(stages, (l) => same(l) && l.decision === 'accept');
      const nScored = sum(scored, same);
      return {
        attrs: { 'data-route': route, 'data-stage': stage, 'data-model': model },
        cells: [
          route, { text: stage, col: 'stage' }, { text: model, cls: 'text', col: 'model' },
          { text: fmtInt(n), col: 'verdicts' },
          { text: fmtInt(acc), col: 'accepted' },
          { text: n ? fmtPct(acc / n) : '–', col: 'acceptance' },
          { text: nScored ? (sum(scoreSum, same) / nScored).toFixed(3) : '–', col: 'mean_score' },
          { text: fmtInt(sum(stages, (l) => same(l) && l.decision === 'escalate')), col: 'escalated' },
          { text: fmtInt(sum(stages, (l) => same(l) && l.decision === 'skip')), col: 'skipped' },
          { text: fmtInt(sum(stages, (l) => same(l) && l.decision === 'error')), col: 'errors' },
        ],
      };
    }), 10, 'no cascade has run yet');

    // Spend by model and by key.
    const spendBy = (label, id) => fill(id, uniq(cost.concat(tokens), label).map((v) => ({
      attrs: { [`data-${label}`]: v },
      cells: [
        { text: v === '' ? '(none)' : v, cls: 'text' },
        { text: fmtInt(sum(tokens, (l) => l[label] === v)), col: 'tokens' },
        { text: fmtUsd(sum(cost, (l) => l[label] === v)), col: 'spend' },
      ],
    })), 3);
    spendBy('model', 'spend-model');
    spendBy('key', 'spend-key');

    fill('cache', lookups.map((s) => ({
      attrs: { 'data-result': s.labels.result },
      cells: [s.labels.result, { text: fmtInt(s.value), col: 'lookups' }],
    })), 2);
    fill('breakers', Object.entries(st.breakers || {}).sort().map(([p, state]) => ({
      attrs: { 'data-provider': p },
      cells: [p, { text: state, cls: `state-${state}`, col: 'state' }],
    })), 2, 'no provider called yet');
    fill('limits', limited.map((s) => ({
      attrs: { 'data-key': s.labels.key, 'data-limit': s.labels.limit },
      cells: [s.labels.key || '(any)', s.labels.limit, { text: fmtInt(s.value), col: 'refused' }],
    })), 3, 'no request refused');
    const o = st.otel || {};
    fill('otel', o.enabled ? [
      ['exported', o.exported], ['queued', o.queued], ['dropped (queue full)', o.dropped],
      ['lost (export failed)', o.failed], ['too large', o.too_large],
    ].map(([k, v]) => ({ cells: [k, fmtInt(v)] })) : [], 2, 'tracing is off (no otel block)');
    void spans;

    // Recent requests, newest first.
    document.querySelectorAll('.prompt-col').forEach((el) => { el.hidden = !st.capture_content; });
    fill('recent', (st.recent || []).map((r) => ({
      cls: r.status >= 500 ? 'bad' : '',
      attrs: { 'data-request-id': r.request_id },
      cells: [
        new Date(r.ts).toLocaleTimeString(),
        { text: r.request_id, cls: 'text' },
        r.route || '', { text: r.model || '', cls: 'text' },
        { text: String(r.status), col: 'status' },
        { text: r.latency_ms.toFixed(1), col: 'latency' },
        r.ttft_ms !== undefined ? r.ttft_ms.toFixed(1) : '',
        { text: Number(r.cost_usd).toFixed(6), col: 'cost' },
        r.cache || '', { text: r.stages || '', cls: 'text' },
      ].concat(st.capture_content ? [{ text: r.prompt || '', cls: 'text' }] : []),
    })), st.capture_content ? 11 : 10);

    // Charts: requests/s by route, and latency percentiles over the run.
    if (prev) {
      hist.t.push(st.time);
      for (const r of routes) {
        if (!hist.rps[r]) hist.rps[r] = hist.t.slice(0, -1).map(() => null);
        hist.rps[r].push(rate(byRoute[r], prev.byRoute[r] || 0));
      }
      for (const r of Object.keys(hist.rps)) if (hist.rps[r].length < hist.t.length) hist.rps[r].push(0);
      const lq = (q) => quantile(q, all);
      hist.p50.push(Number.isFinite(lq(0.5)) ? lq(0.5) * 1000 : null);
      hist.p95.push(Number.isFinite(lq(0.95)) ? lq(0.95) * 1000 : null);
      if (hist.t.length > HISTORY) {
        hist.t.shift(); hist.p50.shift(); hist.p95.shift();
        for (const r of Object.keys(hist.rps)) hist.rps[r].shift();
      }
      drawCharts();
    }
    prev = { time: st.time, total, byRoute };
  }

  const COLORS = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#e8590c', '#0b7285', '#5c940d', '#c2255c'];

  function width(el) {
    return Math.max(300, el.clientWidth - 4);
  }

  function drawCharts() {
    const names = Object.keys(hist.rps).sort();
    const rpsEl = $('chart-rps');
    const latEl = $('chart-latency');
    if (!rpsChart || names.join() !== rpsRoutes.join()) {
      if (rpsChart) rpsChart.destroy();
      rpsRoutes = names;
      rpsChart = new uPlot({
        width: width(rpsEl), height: 220,
        series: [{}].concat(names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2 }))),
        axes: [{}, { label: 'req/s' }],
        scales: { y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
      }, [hist.t].concat(names.map((n) => hist.rps[n])), rpsEl);
    } else {
      rpsChart.setData([hist.t].concat(names.map((n) => hist.rps[n])));
    }
    if (!latChart) {
      latChart = new uPlot({
        width: width(latEl), height: 220,
        series: [{}, { label: 'p50', stroke: COLORS[0], width: 2 }, { label: 'p95', stroke: COLORS[1], width: 2 }],
        axes: [{}, { label: 'ms' }],
        scales: { y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
      }, [hist.t, hist.p50, hist.p95], latEl);
    } else {
      latChart.setData([hist.t, hist.p50, hist.p95]);
    }
  }

  async function poll() {
    try {
      const r = await fetch('/admin/stats', { cache: 'no-store', credentials: 'same-origin' });
      if (!r.ok) throw new Error(`/admin/stats: HTTP ${r.status}`);
      render(await r.json());
      const s = $('status');
      s.textContent = 'live';
      s.className = 'status';
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    } catch (e) {
      const s = $('status');
      s.textContent = String(e.message || e);
      s.className = 'status error';
    }
    setTimeout(poll, INTERVAL);
  }

  poll();
}());
