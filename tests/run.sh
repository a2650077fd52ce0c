#!/usr/bin/env bash
# The test command (README, and what .ci/run runs): sets up everything the
# suite needs on a fresh machine, including a Docker engine, then runs pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k audit`.
# With CI set, a Docker engine that cannot be started fails the run: the
# Docker tests must run for real there, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

if ! bash .ci/docker-engine.sh; then
  if [ -n "${CI:-}" ]; then
    echo "tests/run.sh: no Docker engine, and CI is set: failing" >&2
    exit 1
  fi
  echo "tests/run.sh: no Docker engine; the Docker tests will be skipped" >&2
fi

set +e
.venv/bin/pytest "$@"
status=$?
set -e
# pytest's 5 means "no tests collected": with this suite that is a failure.
exit "$status"
