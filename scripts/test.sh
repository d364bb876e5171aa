#!/usr/bin/env bash
# Run the suite. Tests keep their own var/ (keys, broker, SQLite files) apart from the demo.
#
# With arguments they go to pytest as they are. Without: the unit tests spread over
# SDE_TEST_WORKERS processes (pytest-xdist; default one per CPU), then the integration and
# browser tests in one process, since they start real worker processes and Chromium and
# share one broker.
set -uo pipefail
cd "$(dirname "$0")/.."
export SDE_VAR_DIR="${SDE_VAR_DIR:-$PWD/var/test}"
mkdir -p "$SDE_VAR_DIR"

pytest_status() {  # "no tests collected" is not a failure
  local rc=$1
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests"
    return 0
  fi
  return "$rc"
}

if [ "$#" -gt 0 ]; then
  .venv/bin/python -m pytest "$@"
  pytest_status $?
  exit $?
fi

workers="${SDE_TEST_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
.venv/bin/python -m pytest -n "$workers" -m "not integration and not browser"
pytest_status $?
unit=$?
.venv/bin/python -m pytest -m "integration or browser"
pytest_status $?
rest=$?
[ "$unit" -eq 0 ] && [ "$rest" -eq 0 ]
