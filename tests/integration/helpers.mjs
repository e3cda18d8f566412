// Shared helpers for the integration tests: start the real binaries on free
// loopback ports, talk to them, and stop them at the end.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILD = process.env.SLUICE_BUILD || join(ROOT, 'build');
// Sanitizer builds are slower: stretch waits by this factor.
export const SLOW = Number(process.env.SLUICE_SLOW || 1);
/** An ASan build (make asan): its allocator keeps freed memory in quarantine. */
export const SANITIZED = existsSync(join(BUILD, 'sluice'))
  && readFileSync(join(BUILD, 'sluice')).includes('__asan_init');

const children = new Set();

function cleanup() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', cleanup);

export function tmpDir() {
  return mkdtempSync(join(tmpdir(), 'sluice-test-'));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port that was free a moment ago (for servers that cannot bind port 0). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Spawn a process and wait until a line of its output matches `ready`.
 * Resolves to { proc, match, output() }. Output is kept for assertions.
 */
export function startProcess(cmd, args, { ready, env, timeoutMs = 10000 } = {}) {
  return new Promise((res, rej) => {
    const proc = spawn(cmd, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(proc);
    // A test that fails before it stops its processes must not keep this
    // file's run alive forever: the children do not hold the event loop,
    // and whatever is left is killed at exit.
    proc.unref();
    proc.stdout.unref();
    proc.stderr.unref();
    let out = '';
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        proc.kill('SIGKILL');
        rej(new Error(`${cmd} did not become ready in ${timeoutMs * SLOW} ms:\n${out}`));
      }
    }, timeoutMs * SLOW);
    const onData = (d) => {
      out += d.toString();
      if (done) return;
      const m = out.match(ready);
      if (m) {
        done = true;
        clearTimeout(timer);
        res({ proc, match: m, output: () => out });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code, sig) => {
      children.delete(proc);
      if (!done) {
        done = true;
        clearTimeout(timer);
        rej(new Error(`${cmd} exited (${code ?? sig}) before ready:\n${out}`));
      }
    });
  });
}

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|ERROR: ThreadSanitizer/;

/**
 * Stop a process with a signal and wait for its exit code. A sanitizer
 * report in its output (a leak is reported at exit) fails the caller.
 */
export function stopProcess(p, signal = 'SIGTERM', timeoutMs = 15000) {
  return new Promise((res, rej) => {
    const done = (code, sig) => {
      const m = p.output().match(SANITIZER);
      if (m) {
        const at = p.output().indexOf(m[0]);
        rej(new Error(`sanitizer report from ${p.proc.spawnfile}:\n${p.output().slice(Math.max(0, at - 200), at + 4000)}`));
        return;
      }
      res({ code, signal: sig });
    };
    if (p.proc.exitCode !== null || p.proc.signalCode !== null) {
      done(p.proc.exitCode, p.proc.signalCode);
      return;
    }
    const t = setTimeout(() => p.proc.kill('SIGKILL'), timeoutMs * SLOW);
    p.proc.once('exit', (code, sig) => {
      clearTimeout(t);
      // give the pipes a moment to deliver the last output (a leak report)
      setTimeout(() => done(code, sig), 50);
    });
    p.proc.kill(signal);
  });
}

/** Start sluice-mock on a free port. Resolves to { url, base, stats(), reset(), stop() }. */
export async function startMock(extraArgs = []) {
  const p = await startProcess(join(BUILD, 'sluice-mock'),
    ['--listen', '127.0.0.1:0', '--quiet', ...extraArgs],
    { ready: /listening on (http:\/\/[\d.]+:\d+)/ });
  const url = p.match[1];
  return {
    ...p,
    url,
    base: `${url}/v1`,
    async stats() { return (await fetch(`${url}/_mock/stats`)).json(); },
    async reset() { await fetch(`${url}/_mock/reset`, { method: 'POST' }); },
    stop: () => stopProcess(p),
  };
}

/** Write a gateway.conf and start sluice on it. Resolves to { url, base, conf, stop() }. */
export async function startGateway(confText, { env, args = [] } = {}) {
  const dir = tmpDir();
  const conf = join(dir, 'gateway.conf');
  writeFileSync(conf, confText);
  const hasAdmin = /^\s*admin\s*=/m.test(confText);
  const p = await startProcess(join(BUILD, 'sluice'),
    ['--config', conf, '--listen', '127.0.0.1:0', ...args],
    {
      ready: hasAdmin ? /listening on (http:\/\/[\d.]+:\d+)[\s\S]*admin API listening on (http:\/\/[\d.]+:\d+)/
        : /listening on (http:\/\/[\d.]+:\d+)/,
      env,
    });
  const url = p.match[1];
  const adminUrl = hasAdmin ? p.match[2] : null;
  return { ...p, url, adminUrl, base: `${url}/v1`, conf, dir, stop: (sig) => stopProcess(p, sig) };
}

/** A gateway.conf with sluice-mock as provider "mock" and two models. */
export function mockConf(mockBase, extra = '') {
  return `
log = { format = "json"; path = "-"; level = "info"; };
providers = (
  { name = "mock"; type = "openai"; base_url = "${mockBase}"; api_key_env = "MOCK_KEY";
    timeout_ms = ${20000 * SLOW}; connect_timeout_ms = 2000; first_byte_timeout_ms = ${5000 * SLOW};
    idle_timeout_ms = ${5000 * SLOW}; }
);
models = (
  { name = "small"; provider = "mock"; id = "mock-small"; input_per_mtok = 0.15; output_per_mtok = 0.60; },
  { name = "large"; provider = "mock"; id = "mock-large"; input_per_mtok = 2.50; output_per_mtok = 10.00; }
);
routes = (
  { name = "reliable"; fallback = ( "small", "large" ); }
);
${extra}
`;
}

/**
 * A copy of conf/NAME in a scratch directory with each [from, to] of
 * `replace` done, for a test to run a ready config against its own ports.
 * Each `from` must be in the file exactly once, so a config that changes
 * under the test fails it rather than going untested. Returns the path.
 */
export function confCopy(name, replace) {
  let text = readFileSync(join(ROOT, 'conf', name), 'utf8');
  for (const [from, to] of replace) {
    const n = text.split(from).length - 1;
    if (n !== 1) throw new Error(`conf/${name} has ${n} times ${from}, expected once`);
    text = text.replace(from, () => to);
  }
  const file = join(tmpDir(), name);
  writeFileSync(file, text);
  return file;
}

/** The JSON log lines a process printed so far. */
export function logLines(p) {
  return p.output().split('\n').filter((l) => l.startsWith('{')).map((l) => {
    try { return JSON.parse(l); } catch { return null; }
  }).filter(Boolean);
}

export async function waitFor(pred, { timeoutMs = 5000, stepMs = 20 } = {}) {
  const end = Date.now() + timeoutMs * SLOW;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error('waitFor: condition not met in time');
    await sleep(stepMs);
  }
}

// A client that stops reading: python3 sets a tiny receive buffer before it
// connects, which Node cannot, so the gateway's stream buffer is what fills.
const SLOW_READER = `
import os, socket, sys, time
port, wait, rid, gate = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
body = sys.stdin.buffer.read()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(('127.0.0.1', port))
s.sendall(b'POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n'
          b'x-request-id: %s\\r\\nContent-Length: %d\\r\\n\\r\\n' % (rid.encode(), len(body)) + body)
end = time.time() + wait
while time.time() < end and not (gate and os.path.exists(gate)):
    time.sleep(0.05)
s.settimeout(20)
data = b''
try:
    while not data.endswith(b'0\\r\\n\\r\\n'):
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
except OSError as e:
    data += b'\\n[slow reader: %s after %d bytes]' % (repr(e).encode(), len(data))
sys.stdout.buffer.write(data[-4000:])
`;

/**
 * POST body as a streamed chat request to the gateway at url from a client
 * that reads nothing for waitS seconds (or until the file gate exists, when
 * given), then reads to the end. Resolves to the last 4000 bytes it got.
 */
export function slowReader(url, body, waitS, requestId, gate = '') {
  const child = spawn('python3', ['-c', SLOW_READER, new URL(url).port, String(waitS), requestId, gate]);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stdin.end(body);
  return new Promise((r) => child.on('close', () => r(out)));
}

export { existsSync, readFileSync };

/**
 * For a test file that shares one sluice-mock and one redis-server among
 * its tests: registers before/after hooks that start and stop them, and
 * returns an object whose `mock` and `redis` are set once they are up.
 */
export function sharedMockAndRedis(before, after) {
  const shared = { mock: null, redis: null };
  before(async () => {
    shared.mock = await startMock();
    shared.redis = await startRedis();
  });
  after(async () => {
    await shared.redis?.stop();
    await shared.mock?.stop();
  });
  return shared;
}

/** Start a throwaway redis-server on a free port (or the given one). */
export async function startRedis(port) {
  const p = port ?? await freePort();
  const r = await startProcess('redis-server',
    ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no'],
    { ready: /Ready to accept connections/ });
  return { ...r, port: p, url: `redis://127.0.0.1:${p}/0`, stop: () => stopProcess(r, 'SIGKILL') };
}

/** A learned scorer's weights file with no features: it scores every
 * answer sigmoid(bias). Returns its path (in dir). */
export function learnedWeights(dir, name, bias) {
  const f = join(dir, `${name}.w`);
  writeFileSync(f, `sluice-learned 1\nmodel=${name}\nbits=8\nword_ngrams=1-2\nchar_ngrams=3-5\n`
    + `query_tail=100\nanswer_head=100\nfeatures=meta\nbias=${bias}\nnonzero=0\nweights\nend\n`);
  return f;
}
