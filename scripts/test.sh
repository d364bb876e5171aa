#!/usr/bin/env bash
# Run the suite. Tests keep their own var/ (keys, broker, SQLite files) apart from the demo.
set -uo pipefail
cd "$(dirname "$0")/.."
export SDE_VAR_DIR="${SDE_VAR_DIR:-$PWD/var/test}"
mkdir -p "$SDE_VAR_DIR"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$rc"
