// scripts/deps.sh installs in tiers: run (make, make run), test (make test,
// asan, fuzz), bench (make bench), each including the one before. For a user
// who is not root it installs nothing: it prints the one apt-get line for the
// tier asked, and fails only when that tier is incomplete. Run here as a
// non-root user (nobody, when the tests run as root) against a fake
// dpkg-query on PATH that says which packages are installed, so nothing is
// installed and no root-only side effect happens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, tmpDir } from './helpers.mjs';

const DEPS = join(ROOT, 'scripts', 'deps.sh');

function tier(t) {
  const r = spawnSync(DEPS, ['--list', t], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split(/\s+/).filter(Boolean);
}

/** Run deps.sh ARGS as a non-root user, with only `installed` installed. */
function depsAs(args, installed) {
  const fake = tmpDir();
  chmodSync(fake, 0o755);
  const q = join(fake, 'dpkg-query');
  // dpkg-query -W -f='${Status}' PKG: "install ok installed" when it is.
  writeFileSync(q, `#!/bin/sh
for pkg; do :; done
for p in $FAKE_INSTALLED; do
  [ "$p" = "$pkg" ] && { printf 'install ok installed'; exit 0; }
done
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
`);
  chmodSync(q, 0o755);
  const env = {
    PATH: `${fake}:${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
    FAKE_INSTALLED: installed.join(' '),
  };
  const asRoot = process.getuid() === 0;
  const [cmd, argv] = asRoot
    ? ['runuser', ['-u', 'nobody', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), DEPS, ...args]]
    : [DEPS, args];
  return spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env } });
}

test('deps.sh --list: run within test within bench; bench adds nginx and wrk', () => {
  const run = tier('run');
  const tst = tier('test');
  const bench = tier('bench');
  assert.deepEqual(run.filter((p) => !tst.includes(p)), []);
  assert.deepEqual(tst.filter((p) => !bench.includes(p)), []);
  assert.deepEqual(bench.filter((p) => !tst.includes(p)).sort(), ['nginx-light', 'wrk']);
  for (const p of ['redis-server', 'clang', 'valgrind', 'prometheus', 'python3-yaml', 'nginx-light', 'wrk']) {
    assert.ok(!run.includes(p), `make run does not need ${p}`);
  }
  assert.equal(spawnSync(DEPS, ['nope']).status, 2, 'an unknown tier is a usage error');
});

test('deps.sh as a non-root user: each tier prints its one apt-get line and fails only when it is incomplete', () => {
  const run = tier('run');
  const tst = tier('test');
  const bench = tier('bench');

  // The build is installed, the test tools are not: make run works.
  let r = depsAs(['run'], run);
  assert.equal(r.status, 0, `make run needs nothing more:\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout + r.stderr, '');
  r = depsAs([], run);
  assert.equal(r.status, 0, 'run is the default tier');

  // ... but make test does not: one apt-get line with exactly what is missing.
  const line = (out) => {
    const lines = out.split('\n').filter((l) => /apt-get/.test(l) && !/^deps:/.test(l));
    assert.equal(lines.length, 1, out);
    const m = lines[0].match(/^sudo apt-get install -y --no-install-recommends((?: \S+)+)$/);
    assert.ok(m, lines[0]);
    return m[1].trim().split(' ').sort();
  };
  r = depsAs(['test'], run);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.deepEqual(line(r.stderr), tst.filter((p) => !run.includes(p)).sort());
  assert.match(r.stderr, /`make test` needs/);

  r = depsAs(['bench'], tst);
  assert.equal(r.status, 1);
  assert.deepEqual(line(r.stderr), ['nginx-light', 'wrk']);

  // Nothing installed at all: make run names the build packages only.
  r = depsAs(['run'], []);
  assert.equal(r.status, 1);
  assert.deepEqual(line(r.stderr), [...run].sort());
  r = depsAs(['bench'], []);
  assert.deepEqual(line(r.stderr), [...bench].sort());
});
