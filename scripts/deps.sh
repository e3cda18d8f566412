#!/bin/sh
# Install what a make target needs, if it is missing. Three tiers, each
# including the one before:
#
#   scripts/deps.sh [run]   build and run sluice: `make`, `make run`
#   scripts/deps.sh test    and test it: `make test`, `make asan`, `make fuzz`
#   scripts/deps.sh bench   and benchmark it: `make bench`
#   scripts/deps.sh --list TIER   print the tier's Debian packages and exit
#
# As root, the missing Debian packages of the tier are installed with
# apt-get. As another user the script installs nothing: it prints the one
# apt-get command that would, and exits 1 (only when the tier asked for is
# incomplete: `make run` does not need what only tests need). The test and
# bench tiers also need node and npm, and install the test client (the
# official openai SDK, pinned by package-lock.json) with npm ci.
set -e
cd "$(dirname "$0")/.."

# ---- the tiers ---------------------------------------------------------------

# run: the compiler and the libraries sluice links. The Dockerfile's build
# stage installs exactly these (tests/integration/deploy.test.mjs checks it).
RUN_PKGS="build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
libhiredis-dev libssl-dev libconfig-dev"

# test: a package that a test needs goes here, on a line of its own with
# what needs it.
TEST_PKGS=""
test_pkg() { TEST_PKGS="$TEST_PKGS $*"; }
test_pkg libcmocka-dev            # make unit: the cmocka unit tests
test_pkg clang libclang-rt-14-dev # make fuzz, fuzz-smoke: libFuzzer
test_pkg redis-server             # integration tests start their own Redis
test_pkg curl                     # integration tests: raw HTTP
test_pkg openssl                  # http2.test.mjs makes a TLS certificate
test_pkg prometheus               # promtool: metric and dashboard checks
test_pkg python3-yaml             # deploy.test.mjs parses compose and k8s YAML
test_pkg valgrind                 # valgrind.test.mjs: memcheck; bench/instr.sh: callgrind
test_pkg chromium                 # dashboard.test.mjs: the dashboard in headless Chromium

# bench: what `make bench` adds to the test tier.
BENCH_PKGS="nginx-light wrk"

usage() {
    echo "usage: scripts/deps.sh [run|test|bench] | --list run|test|bench" >&2
    exit 2
}

# The Debian packages of tier $1, the tiers below it included, on one line
# (the lists are split on purpose).
# shellcheck disable=SC2086
tier_pkgs() {
    case $1 in
    run) echo $RUN_PKGS ;;
    test) echo $RUN_PKGS $TEST_PKGS ;;
    bench) echo $RUN_PKGS $TEST_PKGS $BENCH_PKGS ;;
    *) usage ;;
    esac
}

if [ "$1" = --list ]; then
    [ $# -eq 2 ] || usage
    tier_pkgs "$2"
    exit 0
fi
[ $# -le 1 ] || usage
tier=${1:-run}
pkgs=$(tier_pkgs "$tier")

# ---- what is missing ---------------------------------------------------------

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ "$tier" != run ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "deps: installing for \`make $tier\`:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "deps: \`make $tier\` needs Debian packages that are not installed:$missing" >&2
        echo "deps: install them with:" >&2
        echo "sudo apt-get install -y --no-install-recommends$missing" >&2
        exit 1
    fi
fi

# ---- the test client -----------------------------------------------------------

# npm ci only when the lock file changed since the last install. (dash,
# Debian's sh, has -nt.)
# shellcheck disable=SC3013
if [ "$tier" != run ] &&
    { [ ! -f node_modules/.package-lock.json ] ||
        [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    npm ci --no-audit --no-fund --loglevel=error
fi
