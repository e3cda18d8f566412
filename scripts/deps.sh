#!/bin/sh
# Install what the build, the tests and the benchmarks need, if missing.
# Debian packages come from apt-get when we are root; otherwise we print the
# command. The test client (the official openai SDK) comes from npm, pinned by
# package-lock.json.
set -e
cd "$(dirname "$0")/.."

PKGS="build-essential pkg-config clang libclang-rt-14-dev
libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev libssl-dev
libconfig-dev libcmocka-dev redis-server curl openssl nginx-light wrk prometheus python3-yaml valgrind
chromium"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "deps: installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "deps: missing packages:$missing"
        echo "deps: run: sudo apt-get install -y$missing"
        exit 1
    fi
fi

# npm ci only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
