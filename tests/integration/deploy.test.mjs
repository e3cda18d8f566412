// The deployment files: docker/Dockerfile, docker/compose.yaml,
// docker/k8s-sidecar.yaml, the config all three use (conf/sidecar.conf) and
// docs/grafana-dashboard.json.
// There is no Docker engine or cluster here, so this checks what can be
// checked without one, against the real sources of truth:
//   - the Dockerfile's build stage installs the build packages of
//     scripts/deps.sh and runs the Makefile's `all` on the files it copies
//     (a `make -n` in a copy of exactly those files); the runtime stage holds
//     the libraries the built binaries link (readelf + dpkg), no compiler, a
//     numeric non-root USER and a HEALTHCHECK on /healthz;
//   - the YAML files parse with a real parser (PyYAML, Debian's python3-yaml,
//     duplicate keys rejected) and have the services, probes, mounts and
//     security settings docs/DEPLOY.md describes;
//   - conf/sidecar.conf is what the image bakes in, compose mounts and the
//     ConfigMap holds, word for word; it passes `sluice --check` with the
//     environment compose and the Pod give it, and serves a request through
//     sluice-mock, with every health-check command run for real;
//   - the dashboard's queries parse (promtool) and use only sluice's metric
//     families and their labels.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, posix, resolve } from 'node:path';
import { BUILD, ROOT, startGateway, startMock, tmpDir } from './helpers.mjs';

const DOCKER = join(ROOT, 'docker');
const SIDECAR = join(ROOT, 'conf', 'sidecar.conf');
// Scratch directories of this file, removed at the end.
const scratchDirs = [];
function scratch() {
  const d = tmpDir();
  scratchDirs.push(d);
  return d;
}
after(() => { for (const d of scratchDirs) rmSync(d, { recursive: true, force: true }); });
const read = (p) => readFileSync(join(ROOT, p), 'utf8');

// ---- sluice's metrics ------------------------------------------------------

// The metric families sluice exports, with their labels (/metrics).
const METRICS = {
  sluice_requests_total: { type: 'counter', labels: ['route', 'model', 'status', 'cache'] },
  sluice_request_duration_seconds: { type: 'histogram', labels: ['route'] },
  sluice_upstream_duration_seconds: { type: 'histogram', labels: ['provider'] },
  sluice_gateway_overhead_seconds: { type: 'histogram', labels: ['route'] },
  sluice_ttft_seconds: { type: 'histogram', labels: ['route'] },
  sluice_tokens_total: { type: 'counter', labels: ['route', 'model', 'key', 'kind'] },
  sluice_cost_usd_total: { type: 'counter', labels: ['route', 'model', 'key'] },
  sluice_cascade_stage_decisions_total: { type: 'counter', labels: ['route', 'stage', 'model', 'decision'] },
  sluice_cascade_saved_usd_total: { type: 'counter', labels: ['route'] },
  sluice_cache_lookups_total: { type: 'counter', labels: ['result'] },
  sluice_upstream_retries_total: { type: 'counter', labels: ['provider'] },
  sluice_circuit_breaker_state: { type: 'gauge', labels: ['provider'] },
  sluice_limited_total: { type: 'counter', labels: ['key', 'limit'] },
  sluice_redis_errors_total: { type: 'counter', labels: [] },
  sluice_inflight_requests: { type: 'gauge', labels: [] },
};
const TARGET_LABELS = ['job', 'instance']; // added by Prometheus to every series

/** The family and the labels a series name has: histograms add _bucket (le), _sum, _count. */
function family(name) {
  if (METRICS[name]) return { fam: name, labels: [...METRICS[name].labels, ...TARGET_LABELS] };
  const m = name.match(/^(.*)_(bucket|sum|count)$/);
  if (m && METRICS[m[1]]?.type === 'histogram') {
    return { fam: m[1], labels: [...METRICS[m[1]].labels, ...TARGET_LABELS, ...(m[2] === 'bucket' ? ['le'] : [])] };
  }
  return null;
}

// ---- scripts/deps.sh --------------------------------------------------------

// scripts/deps.sh installs in tiers, each including the one before: run
// (what `make all` and `make run` need, so what the image's build stage
// installs), test, bench. `--list TIER` prints a tier's Debian packages.
function depsTier(tier) {
  const r = spawnSync(join(ROOT, 'scripts', 'deps.sh'), ['--list', tier], { encoding: 'utf8' });
  assert.equal(r.status, 0, `scripts/deps.sh --list ${tier}: ${r.stderr}`);
  return r.stdout.split(/\s+/).filter(Boolean);
}

// ---- Dockerfile -------------------------------------------------------------

/** Instructions of a Dockerfile: continuation lines joined, comments dropped. */
function parseDockerfile(text) {
  const out = [];
  let cur = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*#/.test(line) || (cur === null && line.trim() === '')) return;
    const cont = /\\\s*$/.test(line);
    const body = line.replace(/\\\s*$/, '');
    if (cur === null) cur = { line: i + 1, text: body };
    else cur.text += ' ' + body;
    if (!cont) {
      const m = cur.text.trim().match(/^(\w+)\s+([\s\S]*)$/);
      assert.ok(m, `Dockerfile:${cur.line}: cannot parse: ${cur.text}`);
      out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: cur.line });
      cur = null;
    }
  });
  assert.equal(cur, null, 'Dockerfile ends inside a continuation line');
  return out;
}

/** Split the instructions into stages at each FROM. */
function stages(instrs) {
  const st = [];
  for (const ins of instrs) {
    if (ins.op === 'FROM') {
      const m = ins.args.match(/^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i);
      assert.ok(m, `Dockerfile:${ins.line}: cannot parse FROM ${ins.args}`);
      st.push({ image: m[1], name: m[2] ?? null, instrs: [] });
    } else if (ins.op !== 'ARG' || st.length > 0) {
      assert.ok(st.length > 0, `Dockerfile:${ins.line}: ${ins.op} before FROM`);
      st[st.length - 1].instrs.push(ins);
    }
  }
  return st;
}

/** The shell commands of a stage's RUN lines, split at && ; and |. */
function commands(stage) {
  return stage.instrs.filter((i) => i.op === 'RUN')
    .flatMap((i) => i.args.split(/&&|\|\||;|\|/))
    .map((c) => c.trim().split(/\s+/).filter(Boolean))
    .map((w) => { while (w.length && /^[A-Z_]+=/.test(w[0])) w.shift(); return w; }) // VAR=x cmd
    .filter((w) => w.length > 0);
}

function aptInstalls(stage) {
  return commands(stage).filter((w) => w[0] === 'apt-get' && w.includes('install'))
    .flatMap((w) => w.slice(w.indexOf('install') + 1).filter((t) => !t.startsWith('-')));
}

const COMPILERS = /^(build-essential|gcc(-\d+)?|g\+\+(-\d+)?|cpp(-\d+)?|clang(-\d+)?|llvm.*|make|binutils|pkg-config|pkgconf|libc6-dev|.*-dev)$/;

/** A JSON-array (exec form) argument such as CMD ["a","b"]. */
function execForm(args) {
  const a = JSON.parse(args);
  assert.ok(Array.isArray(a) && a.every((s) => typeof s === 'string'), `not an exec-form array: ${args}`);
  return a;
}

function makefileBins() {
  const mk = read('Makefile');
  const m = mk.match(/^BINS\s*:=\s*(.*)$/m);
  assert.ok(m, 'Makefile: no BINS');
  return m[1].split(/\s+/).filter(Boolean).map((b) => b.replace('$(BUILD)/', ''));
}

function makefileDefaultGoal() {
  for (const line of read('Makefile').split('\n')) {
    const m = line.match(/^([A-Za-z0-9_$()/.-]+)\s*:(?![=:])/);
    if (m && !m[1].startsWith('.') && !m[1].includes('=')) return m[1];
  }
  return null;
}

function dockerfile() {
  const all = stages(parseDockerfile(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8')));
  assert.ok(all.length >= 2, 'the Dockerfile must have a build and a runtime stage');
  return { all, build: all[0], runtime: all[all.length - 1] };
}

const instr = (stage, op) => stage.instrs.filter((i) => i.op === op);

test('Dockerfile: the build stage installs the build packages of scripts/deps.sh, no more, no less', () => {
  const expected = depsTier('run').sort();
  assert.ok(expected.includes('build-essential') && expected.includes('libmicrohttpd-dev'),
    `the run tier holds the build: ${expected.join(' ')}`);
  for (const [low, high] of [['run', 'test'], ['test', 'bench']]) {
    const h = depsTier(high);
    assert.deepEqual(depsTier(low).filter((p) => !h.includes(p)), [], `the ${high} tier includes the ${low} tier`);
  }
  const { build } = dockerfile();
  assert.match(build.image, /^debian:(12|bookworm)$/, 'build stage is FROM debian:12');
  assert.deepEqual([...new Set(aptInstalls(build))].sort(), expected,
    'the build stage must apt-get install exactly the build packages of scripts/deps.sh');
});

test('Dockerfile: the build stage runs the Makefile\'s `all` on the files it copies', () => {
  const { build } = dockerfile();
  assert.equal(makefileDefaultGoal(), 'all', 'the Makefile\'s default goal is all (what `make` builds)');
  const makes = commands(build).filter((w) => w[0] === 'make');
  assert.equal(makes.length, 1, 'the build stage runs make once');
  const args = makes[0].slice(1);
  const targets = args.filter((a) => !a.startsWith('-') && !a.includes('='));
  assert.deepEqual(args.filter((a) => a.includes('=')), [],
    'no variable overrides on make: the image builds what a developer builds');
  assert.ok(targets.length === 0 || (targets.length === 1 && targets[0] === 'all'),
    `make must build the default target, all (got: ${args.join(' ')})`);
  assert.ok(args.filter((a) => a.startsWith('-')).every((a) => /^-j/.test(a)),
    `make takes only -j flags (got: ${args.join(' ')})`);

  // Replay WORKDIR and COPY into a scratch directory, then dry-run make there:
  // every file `make all` needs must be among the copied ones.
  let workdir = null;
  const work = scratch();
  for (const ins of build.instrs) {
    if (ins.op === 'WORKDIR') workdir = ins.args;
    if (ins.op !== 'COPY' && ins.op !== 'ADD') continue;
    assert.equal(ins.op, 'COPY', `Dockerfile:${ins.line}: use COPY, not ADD`);
    assert.ok(workdir, `Dockerfile:${ins.line}: COPY before WORKDIR`);
    const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
    const dest = words.pop();
    const destRel = isAbsolute(dest) ? posix.relative(workdir, dest) : dest;
    assert.ok(!destRel.startsWith('..'), `Dockerfile:${ins.line}: COPY outside WORKDIR`);
    for (const src of words) {
      const from = join(ROOT, src);
      assert.ok(existsSync(from), `Dockerfile:${ins.line}: COPY source ${src} is not in the repository`);
      let to = join(work, destRel);
      if (statSync(from).isFile() && (dest.endsWith('/') || words.length > 1)) to = join(to, basename(src));
      mkdirSync(statSync(from).isFile() ? dirname(to) : to, { recursive: true });
      cpSync(from, to, { recursive: true });
    }
  }
  const r = spawnSync('make', ['-n', ...targets], { cwd: work, encoding: 'utf8' });
  assert.equal(r.status, 0, `make -n in a copy of what the Dockerfile copies failed:\n${r.stderr}`);
  for (const bin of makefileBins()) {
    assert.match(r.stdout, new RegExp(`-o build/${bin}\\s`), `make all in the image does not link build/${bin}`);
  }
});

test('Dockerfile: the runtime stage is slim, non-root, healthy-checked, and holds what the binaries link', () => {
  const { build, runtime } = dockerfile();
  assert.match(runtime.image, /^debian:(12|bookworm)-slim$/, 'runtime stage is FROM debian:12-slim');
  assert.equal(runtime.name, null, 'the runtime stage is the last, unnamed one');

  const pkgs = aptInstalls(runtime);
  assert.deepEqual(pkgs.filter((p) => COMPILERS.test(p)), [], 'no compilers, build tools or headers at runtime');
  assert.ok(!commands(runtime).some((w) => ['make', 'cc', 'gcc', 'clang'].includes(w[0])), 'nothing is built at runtime');
  assert.ok(pkgs.includes('ca-certificates'), 'ca-certificates: https providers need them');
  assert.ok(pkgs.includes('curl'), 'curl: the HEALTHCHECK and the Kubernetes exec probes run it');

  // The binaries come from the build stage's make.
  const copies = instr(runtime, 'COPY').map((i) => i.args);
  const buildWorkdir = instr(build, 'WORKDIR').map((i) => i.args).pop();
  for (const bin of makefileBins()) {
    assert.ok(copies.some((c) => c.startsWith(`--from=${build.name} `) && c.includes(`${buildWorkdir}/build/${bin} `)),
      `the runtime stage copies ${bin} from the build stage`);
  }

  // Non-root, numerically (Kubernetes' runAsNonRoot cannot check a name).
  const users = instr(runtime, 'USER');
  assert.ok(users.length > 0, 'the runtime stage sets USER');
  const user = users[users.length - 1].args;
  assert.match(user, /^\d+(:\d+)?$/, 'USER is numeric uid[:gid]');
  assert.notEqual(Number(user.split(':')[0]), 0, 'USER is not root');

  assert.ok(instr(runtime, 'EXPOSE').some((i) => i.args.split(/\s+/).includes('8080')), 'EXPOSE 8080');
  assert.equal(instr(runtime, 'STOPSIGNAL').pop()?.args, 'SIGTERM', 'STOPSIGNAL SIGTERM (sluice drains on it)');

  const hc = instr(runtime, 'HEALTHCHECK').pop();
  assert.ok(hc, 'the runtime stage has a HEALTHCHECK');
  const hcCmd = execForm(hc.args.replace(/^(--\S+\s+)*CMD\s+/, ''));
  assert.equal(hcCmd[0], 'curl');
  assert.ok(hcCmd.includes('http://127.0.0.1:8080/healthz'), 'the HEALTHCHECK probes /healthz on 8080');
  assert.ok(hcCmd.includes('-f') || hcCmd.some((a) => /^-[a-zA-Z]*f/.test(a)), 'curl -f: an HTTP error fails the check');

  const cmd = execForm(instr(runtime, 'CMD').pop().args);
  assert.equal(cmd[0], 'sluice');
  assert.equal(cmd[cmd.indexOf('--config') + 1], '/etc/sluice/gateway.conf', 'CMD reads /etc/sluice/gateway.conf');
  assert.ok(copies.includes('conf/sidecar.conf /etc/sluice/gateway.conf'),
    'the image bakes conf/sidecar.conf in where CMD reads its config');
  assert.equal(cmd[cmd.indexOf('--listen') + 1], '0.0.0.0:8080', 'CMD listens on 0.0.0.0:8080, what EXPOSE and HEALTHCHECK say');

  // Every shared library the built binaries need is in a runtime package
  // (or in debian:12-slim itself), and every library package installed is
  // needed by one. Sanitizer runtimes of an ASan build are not shipped.
  const BASE = new Set(['libc6', 'libgcc-s1']);
  const bins = makefileBins().map((b) => join(BUILD, b));
  const needed = new Set([...execFileSync('readelf', ['-d', ...bins], { encoding: 'utf8' })
    .matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]));
  const resolved = new Map([...execFileSync('ldd', bins, { encoding: 'utf8' }).matchAll(/^\s*(\S+) => (\/\S+)/gm)]
    .map((m) => [m[1], m[2]]));
  const libs = new Map(); // soname -> path
  for (const so of needed) {
    assert.ok(resolved.has(so), `ldd does not resolve ${so}`);
    libs.set(so, resolved.get(so));
  }
  // dpkg knows a file by the path its package installed (/usr/lib or /lib).
  const paths = [...libs.values()].flatMap((p) => [p, p.startsWith('/lib') ? '/usr' + p : p.replace(/^\/usr/, '')]);
  const owners = new Map();
  for (const line of spawnSync('dpkg', ['-S', ...paths], { encoding: 'utf8' }).stdout.split('\n')) {
    const m = line.match(/^([^:,\s]+)(?::\w+)?: (\S+)$/);
    if (m) owners.set(m[2], m[1]);
  }
  const neededPkgs = new Set();
  for (const [so, p] of libs) {
    const owner = owners.get(p) ?? owners.get('/usr' + p) ?? owners.get(p.replace(/^\/usr/, ''));
    assert.ok(owner, `no Debian package owns ${p} (${so})`);
    if (/^lib(asan|ubsan|lsan|tsan)\d*$/.test(owner)) continue;
    neededPkgs.add(owner);
  }
  for (const p of neededPkgs) {
    assert.ok(BASE.has(p) || pkgs.includes(p), `the binaries link ${p}, which the runtime stage does not install`);
  }
  const unneeded = pkgs.filter((p) => p.startsWith('lib') && !neededPkgs.has(p));
  assert.deepEqual(unneeded, [], 'the runtime stage installs libraries no binary links');
});

// ---- YAML -------------------------------------------------------------------

// PyYAML (Debian: python3-yaml) with two extra rules: a mapping with a
// duplicate key is an error (Kubernetes and compose reject them, PyYAML would
// keep the last), and so is a plain scalar that YAML 1.1 reads as a boolean
// but 1.2 as a string (yes/no/on/off/y/n): Kubernetes parses 1.1, compose 1.2.
const PY_YAML = `
import json, sys, yaml
AMBIGUOUS = {'y','Y','yes','Yes','YES','n','N','no','No','NO','on','On','ON','off','Off','OFF'}
class Strict(yaml.SafeLoader):
    pass
def mapping(loader, node, deep=False):
    seen = set()
    for k, _ in node.value:
        if k.tag == 'tag:yaml.org,2002:merge':
            continue
        key = loader.construct_object(k, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, 'duplicate key %r' % (key,), k.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)
Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
def check(node):
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and node.value in AMBIGUOUS:
            raise yaml.YAMLError('%s: plain %r is a boolean in YAML 1.1 and a string in 1.2: quote it' % (node.start_mark, node.value))
    elif isinstance(node, yaml.SequenceNode):
        for n in node.value: check(n)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value: check(k); check(v)
out = {}
for path in sys.argv[1:]:
    with open(path) as f:
        text = f.read()
    for n in yaml.compose_all(text, Loader=Strict):
        check(n)
    out[path] = list(yaml.load_all(text, Loader=Strict))
json.dump(out, sys.stdout, default=str)
`;

let python = null;
function yamlPython() {
  if (python) return python;
  for (const cand of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(cand, ['-c', 'import yaml'], { encoding: 'utf8' });
    if (r.status === 0) return (python = cand);
  }
  throw new Error('no python3 with the yaml module: apt-get install python3-yaml (scripts/deps.sh)');
}

const yamlCache = new Map();
/** The documents of a YAML file, parsed by PyYAML. */
function loadYaml(file) {
  if (!yamlCache.has(file)) {
    const r = spawnSync(yamlPython(), ['-c', PY_YAML, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${file} does not parse:\n${r.stderr}`);
    yamlCache.set(file, JSON.parse(r.stdout)[file].filter((d) => d !== null));
  }
  return yamlCache.get(file);
}

/** Run `sluice --check` on a config file with exactly this environment. */
function sluiceCheck(conf, env) {
  const r = spawnSync(join(BUILD, 'sluice'), ['--check', '--config', conf],
    { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  assert.equal(r.status, 0, `sluice --check ${conf} failed:\n${r.stdout}${r.stderr}`);
}

/** The api_key_env names a gateway.conf uses. */
const keyEnvs = (conf) => [...conf.matchAll(/^\s*[^#\n]*?\bapi_key_env\s*=\s*"([^"]+)"/gm)].map((m) => m[1]);

/** A config's SIGTERM drain, seconds (drain_timeout_s, default 30). */
const drainOf = (conf) => Number(conf.match(/^\s*drain_timeout_s\s*=\s*(\d+)/m)?.[1] ?? 30);

/** A config's admin listener and key variable, or null. */
function adminOf(conf) {
  const m = conf.match(/^\s*admin\s*=\s*\{([^}]*)\}/m);
  if (!m) return null;
  return {
    listen: m[1].match(/\blisten\s*=\s*"([^"]+)"/)?.[1],
    keyEnv: m[1].match(/\bkey_env\s*=\s*"([^"]+)"/)?.[1] ?? 'SLUICE_ADMIN_KEY',
  };
}
const duration = (s) => {
  const m = String(s).match(/^(?:(\d+)m)?(?:(\d+)s)?$/);
  assert.ok(m && (m[1] || m[2]), `not a duration: ${s}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
};

// ---- compose ----------------------------------------------------------------

function compose() {
  const [doc, ...rest] = loadYaml(join(DOCKER, 'compose.yaml'));
  assert.equal(rest.length, 0, 'compose.yaml is one document');
  return doc;
}

/** A compose service's environment as { NAME: value | null (passed through) }. */
function composeEnv(svc) {
  const env = {};
  const e = svc.environment ?? {};
  if (Array.isArray(e)) {
    for (const item of e) {
      const i = item.indexOf('=');
      if (i < 0) env[item] = null; else env[item.slice(0, i)] = item.slice(i + 1);
    }
  } else {
    for (const [k, v] of Object.entries(e)) env[k] = v === null ? null : String(v);
  }
  return env;
}

const hcTest = (hc) => {
  assert.ok(hc && Array.isArray(hc.test) && hc.test[0] === 'CMD', 'healthcheck.test is ["CMD", ...]');
  return hc.test.slice(1);
};

test('compose.yaml: sluice on conf/sidecar.conf and sluice-mock, health-checked and ordered', () => {
  const c = compose();
  const s = c.services;
  assert.deepEqual(Object.keys(s).sort(), ['sluice', 'sluice-mock']);

  // sluice: built from docker/Dockerfile, the config bind-mounted read-only.
  const sl = s.sluice;
  assert.equal(resolve(DOCKER, sl.build.context, sl.build.dockerfile), join(DOCKER, 'Dockerfile'));
  assert.equal(resolve(DOCKER, sl.build.context), ROOT, 'the build context is the repository root');
  assert.ok(sl.ports.some((p) => String(p).endsWith(':8080')), 'sluice publishes 8080');
  const cmd = sl.command ?? execForm(instr(dockerfile().runtime, 'CMD').pop().args);
  const confPath = cmd[cmd.indexOf('--config') + 1];
  const mounts = (svc) => (svc.volumes ?? []).map((v) => (typeof v === 'string'
    ? { source: v.split(':')[0], target: v.split(':')[1], read_only: v.split(':')[2] === 'ro' } : v));
  const confMount = mounts(sl).find((v) => v.target === confPath);
  assert.ok(confMount, `sluice mounts its config at ${confPath}`);
  assert.equal(resolve(DOCKER, confMount.source), SIDECAR);
  assert.ok(confMount.read_only, 'the config is mounted read-only');
  for (const svc of Object.values(s)) {
    for (const v of mounts(svc).filter((m) => m.type === 'bind' || /^[./]/.test(m.source))) {
      assert.ok(existsSync(resolve(DOCKER, v.source)), `compose mounts ${v.source}, which is not in the repository`);
    }
  }
  assert.deepEqual(sl.depends_on, { 'sluice-mock': { condition: 'service_healthy' } });
  assert.ok(hcTest(sl.healthcheck).includes('http://127.0.0.1:8080/healthz'), 'sluice is checked on /healthz');
  const drain = drainOf(readFileSync(SIDECAR, 'utf8'));
  assert.ok(duration(sl.stop_grace_period) > drain, `stop_grace_period outlasts the ${drain} s drain`);

  // sluice-mock: the same image, its own health check (the image's probes 8080).
  const mk = s['sluice-mock'];
  assert.equal(mk.image, sl.image, 'sluice-mock runs the sluice image');
  assert.deepEqual(mk.command, ['sluice-mock', '--listen', '0.0.0.0:8081']);
  assert.ok(hcTest(mk.healthcheck).includes('http://127.0.0.1:8081/_mock/health'));

  for (const [name, svc] of Object.entries(s)) {
    assert.ok(svc.healthcheck, `${name} has a health check`);
    assert.ok(!svc.privileged, `${name} is not privileged`);
  }
  for (const name of ['sluice', 'sluice-mock']) {
    assert.ok(s[name].read_only && s[name].cap_drop?.includes('ALL'), `${name}: read_only, cap_drop ALL`);
  }
});

test('conf/sidecar.conf: passes sluice --check with the environment compose gives it', () => {
  const conf = readFileSync(SIDECAR, 'utf8');
  const c = compose();
  const env = composeEnv(c.services.sluice);
  const admin = adminOf(conf);
  for (const k of [...keyEnvs(conf), ...(admin ? [admin.keyEnv] : [])]) {
    assert.ok(k in env, `conf/sidecar.conf reads ${k}; compose.yaml must pass it through`);
  }
  if (admin) assert.match(admin.listen, /^127\.0\.0\.1:/, 'the admin API listens on the container\'s loopback only');
  // Passed-through variables as the shell would set them.
  const given = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v ?? 'sk-test-passed-through']));
  sluiceCheck(SIDECAR, given);

  // Its hosts are compose services (or public https providers).
  assert.match(conf, /^\s*backend\s*=\s*"memory"/m, 'a sidecar caches on its own: no Redis to reach');
  for (const [, url] of conf.matchAll(/^\s*base_url\s*=\s*"([^"]+)"/gm)) {
    const u = new URL(url);
    assert.ok(u.protocol === 'https:' || u.hostname in c.services, `provider ${url}: a compose service or https`);
  }
});

test('conf/sidecar.conf: serves through sluice-mock and its cache; every health-check command works', async (t) => {
  const conf = readFileSync(SIDECAR, 'utf8');
  const mock = await startMock();
  let gw;
  try {
    // The compose hosts, on loopback.
    const local = conf.replace(/http:\/\/sluice-mock:8081/g, mock.url)
      .replace(/(admin\s*=\s*\{[^}]*listen\s*=\s*)"[^"]*"/, '$1"127.0.0.1:0"');
    assert.notEqual(local, conf);
    const adminKey = 'admin-key-deploy-test';
    gw = await startGateway(local, { env: { SLUICE_ADMIN_KEY: adminKey } });
    const ask = () => fetch(`${gw.base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-reliable', messages: [{ role: 'user', content: 'deploy test' }] }),
    });
    const a = await ask();
    assert.equal(a.status, 200, await a.clone().text());
    assert.equal(a.headers.get('x-sluice-cache'), 'MISS');
    assert.equal((await a.json()).object, 'chat.completion');
    const b = await ask();
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('x-sluice-cache'), 'HIT', 'the second ask is served from the cache');

    // Reload through the admin API, as docs/DEPLOY.md says; never on the public address.
    if (adminOf(conf)) {
      assert.ok(gw.adminUrl, 'the admin API is up');
      const reload = (url, key) => fetch(`${url}/admin/reload`, {
        method: 'POST', headers: key ? { authorization: `Bearer ${key}` } : {},
      });
      assert.equal((await reload(gw.adminUrl)).status, 401);
      const ok = await reload(gw.adminUrl, adminKey);
      assert.equal(ok.status, 200, await ok.clone().text());
      assert.equal((await ok.json()).reloaded, true);
      assert.notEqual((await reload(gw.url, adminKey)).status, 200, 'no admin API on the public address');
    }

    // What the dashboard reads is what /metrics exports: every family, its
    // type, and no label the dashboard does not know.
    const m = await fetch(`${gw.url}/metrics`);
    assert.equal(m.status, 200);
    const text = await m.text();
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1], x[2]]));
    for (const [name, { type }] of Object.entries(METRICS)) {
      assert.equal(types.get(name), type, `/metrics exports ${name} as a ${type}`);
    }
    for (const [, name, labels] of text.matchAll(/^(sluice_[a-z_]+)\{([^}]*)\}/gm)) {
      const f = family(name);
      if (!f) continue; // a family the dashboard does not use
      for (const [, l] of labels.matchAll(/(\w+)="/g)) {
        assert.ok(f.labels.includes(l), `/metrics: ${name} has a label ${l} the dashboard does not know`);
      }
    }

    // The probe commands, pointed at these ports.
    const gwHost = new URL(gw.url).host;
    const mockHost = new URL(mock.url).host;
    const run = (argv, what) => {
      const r = spawnSync(argv[0], argv.slice(1).map((a) => a.replace('127.0.0.1:8080', gwHost)
        .replace('127.0.0.1:8081', mockHost)), { encoding: 'utf8', timeout: 5000 });
      assert.equal(r.status, 0, `${what}: ${argv.join(' ')} failed:\n${r.stderr}`);
    };
    const hc = instr(dockerfile().runtime, 'HEALTHCHECK').pop();
    run(execForm(hc.args.replace(/^(--\S+\s+)*CMD\s+/, '')), 'Dockerfile HEALTHCHECK');
    const s = compose().services;
    run(hcTest(s.sluice.healthcheck), 'compose sluice healthcheck');
    run(hcTest(s['sluice-mock'].healthcheck), 'compose sluice-mock healthcheck');
    const sidecar = k8s().sidecar;
    for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) run(sidecar[p].exec.command, `k8s ${p}`);
  } finally {
    if (gw) {
      await gw.stop();
      rmSync(gw.dir, { recursive: true, force: true });
    }
    await mock.stop();
  }
});

// ---- Kubernetes -------------------------------------------------------------

function k8s() {
  const docs = loadYaml(join(DOCKER, 'k8s-sidecar.yaml'));
  const byKind = (k) => {
    const d = docs.filter((x) => x.kind === k);
    assert.equal(d.length, 1, `k8s-sidecar.yaml has one ${k}`);
    return d[0];
  };
  const deploy = byKind('Deployment');
  const pod = deploy.spec.template.spec;
  const sidecar = (pod.initContainers ?? []).find((c) => c.name === 'sluice');
  return { docs, cm: byKind('ConfigMap'), secret: byKind('Secret'), deploy, pod, sidecar };
}

const MEM = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 };
const bytes = (q) => {
  const m = String(q).match(/^(\d+)(Ki|Mi|Gi|k|M|G)?$/);
  assert.ok(m, `memory quantity ${q}`);
  return Number(m[1]) * (m[2] ? MEM[m[2]] : 1);
};

test('k8s-sidecar.yaml: a Deployment with the app and sluice as a native sidecar', () => {
  const { docs, cm, secret, deploy, pod, sidecar } = k8s();
  assert.deepEqual(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'Secret']);
  assert.equal(deploy.apiVersion, 'apps/v1');
  for (const [k, v] of Object.entries(deploy.spec.selector.matchLabels)) {
    assert.equal(deploy.spec.template.metadata.labels[k], v, `the selector's ${k} matches the Pod template`);
  }

  // sluice: an init container with restartPolicy Always (starts before the
  // app, stops after it), listening on the Pod's loopback.
  assert.ok(sidecar, 'sluice is in initContainers');
  assert.equal(sidecar.restartPolicy, 'Always', 'sluice is a native sidecar');
  const cmd = [...(sidecar.command ?? []), ...(sidecar.args ?? [])];
  assert.equal(cmd[0], 'sluice');
  assert.equal(cmd[cmd.indexOf('--listen') + 1], '127.0.0.1:8080', 'sluice listens on the Pod loopback only');
  const confPath = cmd[cmd.indexOf('--config') + 1];

  // The app reaches it there.
  assert.equal(pod.containers.length, 1);
  const app = pod.containers[0];
  assert.equal(app.env.find((e) => e.name === 'OPENAI_BASE_URL')?.value, 'http://127.0.0.1:8080/v1');

  // Probes: curl inside the container (httpGet cannot reach 127.0.0.1).
  const probeUrl = (p) => {
    assert.ok(p?.exec?.command, 'an exec probe');
    assert.equal(p.exec.command[0], 'curl');
    assert.ok(p.exec.command.some((a) => /^-[a-zA-Z]*f/.test(a)), 'curl -f');
    return p.exec.command.find((a) => a.startsWith('http://'));
  };
  assert.equal(probeUrl(sidecar.readinessProbe), 'http://127.0.0.1:8080/readyz');
  assert.equal(probeUrl(sidecar.livenessProbe), 'http://127.0.0.1:8080/healthz');
  assert.equal(probeUrl(sidecar.startupProbe), 'http://127.0.0.1:8080/healthz');

  // Config from the ConfigMap, mounted where the command reads it.
  const mount = sidecar.volumeMounts.find((m) => confPath.startsWith(m.mountPath + '/'));
  assert.ok(mount, `a volume is mounted over ${confPath}`);
  assert.equal(mount.mountPath, '/etc/sluice');
  assert.ok(mount.readOnly, 'the config is mounted read-only');
  assert.ok(!mount.subPath, 'no subPath: a subPath mount never sees ConfigMap updates');
  const vol = pod.volumes.find((v) => v.name === mount.name);
  assert.equal(vol?.configMap?.name, cm.metadata.name);
  assert.ok(typeof cm.data?.[posix.relative(mount.mountPath, confPath)] === 'string', 'the ConfigMap holds gateway.conf');
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    for (const m of c.volumeMounts ?? []) assert.ok(pod.volumes.some((v) => v.name === m.name), `volume ${m.name} exists`);
  }

  // Keys from the Secret, through env.
  const secretKeys = new Set(Object.keys({ ...secret.stringData, ...secret.data }));
  for (const e of sidecar.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (!ref) continue;
    assert.equal(ref.name, secret.metadata.name, `${e.name} comes from ${secret.metadata.name}`);
    assert.ok(secretKeys.has(ref.key), `the Secret has ${ref.key}`);
  }

  // Resources, shutdown, security.
  const res = sidecar.resources;
  for (const k of ['cpu', 'memory']) assert.ok(res?.requests?.[k], `sluice requests ${k}`);
  assert.ok(res?.limits?.memory, 'sluice has a memory limit');
  assert.ok(bytes(res.limits.memory) <= 256 * 2 ** 20, 'sluice is small: a memory limit of 256Mi at most');
  assert.ok(bytes(res.requests.memory) <= bytes(res.limits.memory));
  const drain = drainOf(cm.data['gateway.conf']);
  assert.ok(pod.terminationGracePeriodSeconds > drain, `the grace period outlasts the ${drain} s drain`);
  assert.equal(pod.securityContext?.runAsNonRoot, true, 'the Pod runs as non-root');
  for (const c of [sidecar, app]) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation false`);
    assert.ok(sc.capabilities?.drop?.includes('ALL'), `${c.name}: drops ALL capabilities`);
    assert.notEqual(sc.runAsUser, 0, `${c.name}: not root`);
  }
  assert.equal(sidecar.securityContext.runAsUser, 10001, 'the image\'s user');
});

test('k8s-sidecar.yaml: the ConfigMap\'s gateway.conf passes sluice --check with the Secret\'s environment', () => {
  const { cm, secret, sidecar } = k8s();
  const conf = cm.data['gateway.conf'];
  assert.equal(conf, readFileSync(SIDECAR, 'utf8'), 'the ConfigMap holds conf/sidecar.conf, word for word');
  const file = join(scratch(), 'gateway.conf');
  writeFileSync(file, conf);

  const values = { ...secret.stringData, ...Object.fromEntries(Object.entries(secret.data ?? {})
    .map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])) };
  const env = {};
  for (const e of sidecar.env ?? []) {
    env[e.name] = e.value ?? values[e.valueFrom?.secretKeyRef?.key];
  }
  const admin = adminOf(conf);
  for (const k of [...keyEnvs(conf), ...(admin ? [admin.keyEnv] : [])]) {
    assert.ok(env[k], `the ConfigMap's gateway.conf reads ${k}; the sidecar must set it`);
  }
  if (admin) assert.match(admin.listen, /^127\.0\.0\.1:/, 'the admin API listens on the Pod\'s loopback only');
  sluiceCheck(file, env);

  // It listens where the probes look, and its cache fits the memory limit.
  assert.match(conf, /^listen\s*=\s*"127\.0\.0\.1:8080";/m, 'the file says 127.0.0.1:8080 too');
  const cacheMax = conf.match(/^\s*max_bytes\s*=\s*(\d+)/m);
  if (/backend\s*=\s*"memory"/.test(conf)) {
    assert.ok(cacheMax, 'a memory cache in a 64Mi container sets max_bytes (the default is 64 MiB)');
    assert.ok(Number(cacheMax[1]) <= bytes(sidecar.resources.limits.memory) / 2,
      'the memory cache takes at most half the memory limit');
  }
});

// ---- Grafana dashboard ------------------------------------------------------

function dashboardQueries(d) {
  const out = [];
  const walk = (p) => {
    for (const t of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr, panel: p });
    for (const c of p.panels ?? []) walk(c);
  };
  for (const p of d.panels) walk(p);
  return out;
}

test('grafana-dashboard.json: parses, and every query uses sluice\'s metrics and labels and parses', () => {
  const d = JSON.parse(read('docs/grafana-dashboard.json'));
  assert.ok(d.schemaVersion >= 36, 'schemaVersion 36 or later');
  assert.ok(d.uid && d.title);
  const vars = d.templating.list;
  const dsVar = vars.find((v) => v.type === 'datasource');
  assert.equal(dsVar?.query, 'prometheus', 'a Prometheus datasource variable');
  const dsRef = `\${${dsVar.name}}`;

  const ids = [];
  const walkPanels = (p) => { ids.push(p.id); (p.panels ?? []).forEach(walkPanels); };
  d.panels.forEach(walkPanels);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const boxes = d.panels.map((p) => ({ id: p.id, ...p.gridPos }));
  for (const a of boxes) {
    assert.ok(a.x >= 0 && a.w > 0 && a.x + a.w <= 24 && a.h > 0, `panel ${a.id}: gridPos inside the 24 columns`);
    for (const b of boxes) {
      if (a.id < b.id && a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
        assert.fail(`panels ${a.id} and ${b.id} overlap`);
      }
    }
  }

  const queries = dashboardQueries(d);
  assert.ok(queries.length > 0);
  const exprs = [
    ...queries,
    ...vars.filter((v) => v.type === 'query').map((v) => ({
      where: `variable ${v.name}`, expr: (typeof v.query === 'string' ? v.query : v.query.query), variable: true,
    })),
  ];
  const used = new Set();
  const varNames = vars.map((v) => v.name);
  for (const { where, expr, panel, variable } of exprs) {
    assert.ok(typeof expr === 'string' && expr.length > 0, `${where}: no expr`);
    if (panel && panel.type !== 'row') {
      assert.equal(panel.datasource?.uid, dsRef, `${where}: the panel uses the datasource variable`);
    }
    for (const [, v] of expr.matchAll(/\$\{?(\w+)\}?/g)) {
      assert.ok(v.startsWith('__') || varNames.includes(v), `${where}: unknown variable $${v}`);
    }
    // Every sluice_* name is a known family, and its selector's labels are its own.
    const names = [...expr.matchAll(/\b(sluice_[a-z_]+)\b/g)].map((m) => m[1]);
    assert.ok(names.length > 0, `${where}: no sluice metric`);
    const allowed = new Set();
    for (const n of names) {
      const f = family(n);
      assert.ok(f, `${where}: ${n} is not one of sluice's metric families`);
      used.add(f.fam);
      f.labels.forEach((l) => allowed.add(l));
    }
    for (const [, n, sel] of expr.matchAll(/\b(sluice_[a-z_]+)\{([^}]*)\}/g)) {
      for (const [, l] of sel.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) {
        assert.ok(family(n).labels.includes(l), `${where}: ${n} has no label ${l}`);
      }
    }
    for (const [, list] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
      for (const l of list.split(',').map((s) => s.trim()).filter(Boolean)) {
        assert.ok(allowed.has(l), `${where}: aggregates by ${l}, which none of its metrics has`);
      }
    }
    for (const [, l] of expr.matchAll(/label_values\([^,]*,\s*(\w+)\)/g)) {
      assert.ok(allowed.has(l), `${where}: label_values of ${l}, which its metric does not have`);
    }
    if (expr.includes('histogram_quantile')) {
      for (const m of expr.matchAll(/\b(sum|avg|min|max|count)\s*(?:by\s*\(([^)]*)\)\s*)?\(/g)) {
        assert.ok(/\ble\b/.test(m[2] ?? ''), `${where}: histogram_quantile over ${m[1]} without by (le, ...)`);
      }
      assert.match(expr, /_bucket\b/, `${where}: histogram_quantile over _bucket`);
    }
    if (!variable) {
      for (const [, n] of expr.matchAll(/\b(sluice_[a-z_]+_total)\b/g)) {
        assert.match(expr, new RegExp(`(rate|increase)\\(${n}\\b`), `${where}: counter ${n} without rate() or increase()`);
      }
    }
  }
  assert.deepEqual(Object.keys(METRICS).filter((m) => !used.has(m)), [], 'every metric family is on the dashboard');

  // PromQL syntax, by Prometheus' own parser, with Grafana's variables filled in.
  const rules = queries.map((q, i) => ({
    record: `dashboard:q${i}`,
    expr: q.expr.replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m').replace(/\$\{?\w+\}?/g, '.*'),
  }));
  const file = join(scratch(), 'dashboard-rules.json');
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
  const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  assert.ok(!r.error, `promtool is missing (Debian package prometheus, scripts/deps.sh): ${r.error?.message}`);
  const bad = r.status === 0 ? '' : (r.stdout + r.stderr).replace(/dashboard:q(\d+)/g, (m, i) => `${queries[i].where}: ${queries[i].expr}`);
  assert.equal(r.status, 0, `promtool rejects dashboard queries:\n${bad}`);

  // The panels the operators asked for.
  const titles = queries.map((q) => q.panel.title.toLowerCase()).join('\n');
  for (const want of ['spend by route', 'spend by model', 'spend by key', 'stage acceptance', 'saved by cascades',
    'cache hit ratio', 'requests per second by status', 'error rate', 'request latency', 'upstream latency',
    'gateway overhead', 'time to first token', 'circuit breakers', 'rate-limited', 'in flight']) {
    assert.ok(titles.includes(want), `a panel about ${want}`);
  }
});
