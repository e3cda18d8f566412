// Redis as managed services run it: a password (requirepass), an ACL user,
// TLS with a CA the test makes (certificate and host name checked), and
// client certificates (mTLS). A wrong password or certificate fails open
// with a clear error in the log and in /readyz, and no secret is shown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import {
  startMock, startGateway, startProcess, stopProcess, freePort, mockConf, tmpDir, waitFor, SLOW,
} from './helpers.mjs';

let mock;
let certs;
const PASSWORD = 'pw-secret-3b1f';
const ACL_PASSWORD = 'acl-secret-77c2';

/** A CA, a server certificate for localhost/127.0.0.1 and a client one. */
function makeCerts() {
  const dir = tmpDir();
  const f = (n) => join(dir, n);
  const ossl = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  const key = (n) => ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(n));
  key('ca.key');
  ossl('req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=sluice test CA', '-days', '2', '-out', f('ca.crt'));
  for (const [name, cn, ext] of [
    ['server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', 'sluice', 'extendedKeyUsage=clientAuth'],
  ]) {
    key(`${name}.key`);
    ossl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
    execFileSync('sh', ['-c', `printf '%b' "$EXT" > ${f(`${name}.ext`)}`], { env: { ...process.env, EXT: ext } });
    ossl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  }
  // A second CA that signed nothing of ours.
  key('other.key');
  ossl('req', '-x509', '-new', '-key', f('other.key'), '-subj', '/CN=other CA', '-days', '2', '-out', f('other.crt'));
  return { dir, f };
}

/** redis-server with extra arguments; plain port, or a TLS port with tls. */
async function redis(args, { tls = false, clientAuth = 'no' } = {}) {
  const port = await freePort();
  const base = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
  const net = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', certs.f('server.crt'),
      '--tls-key-file', certs.f('server.key'), '--tls-ca-cert-file', certs.f('ca.crt'),
      '--tls-auth-clients', clientAuth]
    : ['--port', String(port)];
  const p = await startProcess('redis-server', [...net, ...base, ...args], { ready: /Ready to accept connections/ });
  const cli = (...a) => execFileSync('redis-cli', [
    '-p', String(port), ...(tls ? ['--tls', '--cacert', certs.f('ca.crt'), '--cert', certs.f('client.crt'),
      '--key', certs.f('client.key')] : []), ...a], { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: '' } }).trim();
  return { ...p, port, cli, stop: () => stopProcess(p, 'SIGKILL') };
}

async function gateway(redisBlock, env = {}) {
  return startGateway(mockConf(mock.base, `
${redisBlock}
cache = { backend = "redis"; local_ttl_ms = 0; };
`), { env });
}

async function chat(gw, content) {
  const c = new OpenAI({ baseURL: gw.base, apiKey: 'x', maxRetries: 0 });
  const { data, response } = await c.chat.completions
    .create({ model: 'small', messages: [{ role: 'user', content }] }).withResponse();
  assert.ok(data.choices[0].message.content.length > 0);
  return response.headers.get('x-sluice-cache');
}

/** A miss then a hit through Redis (local_ttl_ms = 0: every hit is Redis's). */
async function missThenHit(gw, tag) {
  // connected (TLS handshake, AUTH, SELECT) before the first lookup
  await waitFor(async () => (await readyz(gw)).redis?.state === 'up', { timeoutMs: 5000, stepMs: 20 });
  const q = `secure ${tag} ${Date.now()} ${Math.random()}`;
  assert.equal(await chat(gw, q), 'MISS');
  await waitFor(async () => (await chat(gw, q)) === 'HIT', { timeoutMs: 5000, stepMs: 50 });
}

async function readyz(gw) {
  const r = await fetch(`${gw.url}/readyz`);
  assert.equal(r.status, 200, 'Redis trouble never makes the gateway unready: it fails open');
  return r.json();
}

/** Requests succeed while Redis refuses us; /readyz and the log say why. */
async function failsOpen(gw, want) {
  for (let i = 0; i < 3; i++) assert.equal(await chat(gw, `open ${i} ${Math.random()}`), 'ERROR');
  const body = await waitFor(async () => {
    const b = await readyz(gw);
    return b.redis?.state === 'down' && want.test(b.redis.error ?? '') ? b : null;
  }, { timeoutMs: 5000, stepMs: 50 });
  assert.match(gw.output(), want, 'the log says it too');
  return body;
}

function noSecrets(gw, body) {
  for (const s of [PASSWORD, ACL_PASSWORD]) {
    assert.ok(!gw.output().includes(s), 'no password in the log');
    assert.ok(!JSON.stringify(body).includes(s), 'no password in /readyz');
  }
}

before(async () => {
  mock = await startMock();
  certs = makeCerts();
});

after(async () => {
  await mock?.stop();
});

test('requirepass: AUTH on connect; a wrong password fails open, said in the log and /readyz', async () => {
  const r = await redis(['--requirepass', PASSWORD]);
  try {
    const good = await gateway(`redis = { url = "redis://127.0.0.1:${r.port}/2"; password_env = "RPW"; };`, { RPW: PASSWORD });
    await missThenHit(good, 'pass');
    // SELECT ran too: the entry is in database 2
    assert.ok(Number(r.cli('-a', PASSWORD, '--no-auth-warning', '-n', '2', 'DBSIZE')) >= 1);
    assert.equal(r.cli('-a', PASSWORD, '--no-auth-warning', '-n', '0', 'DBSIZE'), '0');
    const b = await readyz(good);
    assert.equal(b.redis.state, 'up');
    assert.equal(b.redis.mode, 'standalone');
    noSecrets(good, b);
    await good.stop();

    const bad = await gateway(`redis = { url = "redis://127.0.0.1:${r.port}/0"; password_env = "RPW"; };`, { RPW: 'not-it' });
    noSecrets(bad, await failsOpen(bad, /AUTH failed: WRONGPASS/));
    assert.ok(!bad.output().includes('not-it'), 'not even the wrong password is shown');
    await bad.stop();

    // Without a password at all: NOAUTH on every command, said once in the log and in /readyz.
    const none = await gateway(`redis = { url = "redis://127.0.0.1:${r.port}/0"; };`);
    for (let i = 0; i < 3; i++) assert.equal(await chat(none, `noauth ${i} ${Math.random()}`), 'ERROR');
    assert.match((await readyz(none)).redis.error, /NOAUTH/);
    assert.equal(none.output().match(/NOAUTH/g).length, 1, 'logged once, not per command');
    await none.stop();
  } finally {
    await r.stop();
  }
});

test('an ACL user: AUTH username password, limited to its keys', async () => {
  const r = await redis([]);
  try {
    r.cli('ACL', 'SETUSER', 'sluice', 'on', `>${ACL_PASSWORD}`, '~sluice:*', '+@all');
    r.cli('ACL', 'SETUSER', 'default', 'off');
    const gw = await gateway(`redis = { url = "redis://127.0.0.1:${r.port}"; username = "sluice";
      password_env = "RPW"; };`, { RPW: ACL_PASSWORD });
    await missThenHit(gw, 'acl');
    noSecrets(gw, await readyz(gw));
    await gw.stop();
    const wrong = await gateway(`redis = { url = "redis://127.0.0.1:${r.port}"; username = "nobody";
      password_env = "RPW"; };`, { RPW: ACL_PASSWORD });
    noSecrets(wrong, await failsOpen(wrong, /AUTH failed: WRONGPASS/));
    await wrong.stop();
  } finally {
    await r.stop();
  }
});

test('TLS: rediss:// with the CA given; a wrong CA or host name fails open with the reason', async () => {
  const r = await redis(['--requirepass', PASSWORD], { tls: true });
  try {
    const gw = await gateway(`redis = { url = "rediss://localhost:${r.port}/0"; password_env = "RPW";
      tls_ca_file = "${certs.f('ca.crt')}"; };`, { RPW: PASSWORD });
    await missThenHit(gw, 'tls');
    assert.equal((await readyz(gw)).redis.state, 'up');
    await gw.stop();

    // By address: the certificate's IP entry is checked.
    const ip = await gateway(`redis = { url = "rediss://127.0.0.1:${r.port}/0"; password_env = "RPW";
      tls_ca_file = "${certs.f('ca.crt')}"; };`, { RPW: PASSWORD });
    await missThenHit(ip, 'tls-ip');
    await ip.stop();

    const wrongCa = await gateway(`redis = { url = "rediss://localhost:${r.port}/0"; password_env = "RPW";
      tls_ca_file = "${certs.f('other.crt')}"; };`, { RPW: PASSWORD });
    await failsOpen(wrongCa, /certificate not accepted/);
    await wrongCa.stop();

    const wrongName = await gateway(`redis = { url = "rediss://127.0.0.1:${r.port}/0"; password_env = "RPW";
      tls_ca_file = "${certs.f('ca.crt')}"; tls_server_name = "redis.example.com"; };`, { RPW: PASSWORD });
    await failsOpen(wrongName, /certificate not accepted: [Hh]ostname mismatch/);
    await wrongName.stop();

    // TLS spoken to a plain port: a clear failure, no hang.
    const plain = await redis([]);
    const mixed = await gateway(`redis = { url = "rediss://127.0.0.1:${plain.port}/0";
      tls_ca_file = "${certs.f('ca.crt')}"; };`);
    await failsOpen(mixed, /TLS/);
    await mixed.stop();
    await plain.stop();
  } finally {
    await r.stop();
  }
});

test('mTLS: a server that wants client certificates takes ours, and refuses a gateway without one', async () => {
  const r = await redis([], { tls: true, clientAuth: 'yes' });
  try {
    const gw = await gateway(`redis = { url = "rediss://localhost:${r.port}/0"; tls_ca_file = "${certs.f('ca.crt')}";
      tls_cert_file = "${certs.f('client.crt')}"; tls_key_file = "${certs.f('client.key')}"; };`);
    await missThenHit(gw, 'mtls');
    await gw.stop();
    const anon = await gateway(`redis = { url = "rediss://localhost:${r.port}/0"; tls_ca_file = "${certs.f('ca.crt')}"; };`);
    await failsOpen(anon, /TLS|closed by the server/);
    await anon.stop();
  } finally {
    await r.stop();
  }
});
