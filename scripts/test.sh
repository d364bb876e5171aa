#!/usr/bin/env bash
# Run the suite. Tests keep their own var/ (keys, broker, SQLite files) apart from the demo.
# Each phase ends with its slowest tests (--durations), so a slow newcomer is seen in CI.
#
# With arguments they go to pytest as they are. Without: the unit tests spread over
# SDE_TEST_WORKERS processes (pytest-xdist; default one more than the CPUs), and the
# integration and browser tests in one process of their own, since they start real worker
# processes and Chromium and share one broker.
#
# The two phases run at the same time: the integration and browser tests spend most of
# their time waiting (for a worker to start, a task to run, a page to load), so they fit
# beside the unit tests. They never share state: the integration phase has a var dir of
# its own ($SDE_VAR_DIR/integration: keys, SQLite files, filesystem broker), its own test
# database on PostgreSQL (pytest-django names the unit workers' databases test_<db>_gw0,
# _gw1...; this one is test_<db>), and on Redis its own broker database, which
# SDE_INTEGRATION_BROKER_URL names. On Redis without SDE_INTEGRATION_BROKER_URL, or with
# SDE_TEST_SEQUENTIAL=1, the phases run one after the other as before. The integration
# phase's output is printed when it ends, after the unit phase's.
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

# One more worker than CPUs: against PostgreSQL a worker spends much of its time waiting
# for the server (on 2 CPUs, 2 workers kept them 60 % busy; 3 cut the phase by a quarter).
workers="${SDE_TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 2) + 1 ))}"
# The slow fault scenarios run from `make test-faults` only; the quick ones are here.
integration_marks="(integration or browser) and not faults"
unit_tests() {
  .venv/bin/python -m pytest -n "$workers" --durations=15 -m "not integration and not browser and not faults"
}
integration_tests() {
  .venv/bin/python -m pytest --durations=10 -m "$integration_marks"
}

broker="${CELERY_BROKER_URL:-filesystem://}"
integration_broker=""
if [ "${SDE_TEST_SEQUENTIAL:-0}" != "1" ]; then
  if [ "$broker" = "filesystem://" ]; then
    integration_broker="filesystem://"  # a queue folder under its own var dir
  elif [ -n "${SDE_INTEGRATION_BROKER_URL:-}" ] && [ "$SDE_INTEGRATION_BROKER_URL" != "$broker" ]; then
    integration_broker="$SDE_INTEGRATION_BROKER_URL"
  fi
fi

if [ -z "$integration_broker" ]; then
  unit_tests
  pytest_status $?
  unit=$?
  integration_tests
  pytest_status $?
  rest=$?
  [ "$unit" -eq 0 ] && [ "$rest" -eq 0 ]
  exit $?
fi

integration_var="$SDE_VAR_DIR/integration"
integration_log="$SDE_VAR_DIR/integration.log"
mkdir -p "$integration_var"
# A command run in the background by a script ignores SIGINT; Python keeps it ignored. Put
# the default handler back, so Ctrl-C stops this phase as well (its teardown then stops
# the workers it started), as it stops the unit phase.
SDE_VAR_DIR="$integration_var" CELERY_BROKER_URL="$integration_broker" \
  .venv/bin/python -c '
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import pytest
sys.exit(pytest.main(sys.argv[1:]))
' --durations=10 -m "$integration_marks" >"$integration_log" 2>&1 &
integration_pid=$!
stop_integration() {
  if kill -0 "$integration_pid" 2>/dev/null; then
    kill -INT "$integration_pid" 2>/dev/null
    wait "$integration_pid"
  fi
}
trap stop_integration EXIT
trap 'exit 143' TERM  # so that a cancelled run stops the integration phase as well

echo "=== unit tests (the integration and browser tests run meanwhile: $integration_log) ==="
unit_tests
pytest_status $?
unit=$?
echo "=== integration and browser tests ==="
wait "$integration_pid"
rc=$?
trap - EXIT TERM
cat "$integration_log"
pytest_status $rc
rest=$?
[ "$unit" -eq 0 ] && [ "$rest" -eq 0 ]
