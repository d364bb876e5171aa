#!/usr/bin/env bash
# make run: the demo service on embedded defaults (or DATABASE_URL / CELERY_BROKER_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export SDE_DEBUG="${SDE_DEBUG:-1}"
export SDE_DEMO_MODE="${SDE_DEMO_MODE:-1}"
PORT="${SDE_PORT:-8000}"
HOST="${SDE_HOST:-127.0.0.1}"

$BIN/python manage.py migrate --noinput
echo "Creating demo organisations and accounts..."
$BIN/python manage.py seed_demo
DROP="${SDE_VAR_DIR:-var}/demo-drop"
if [ ! -f "$DROP/manifest.json" ]; then
  echo "Generating the synthetic ICS dataset (${SDE_DEMO_PATIENTS:-20000} people)..."
  $BIN/python manage.py synth --patients "${SDE_DEMO_PATIENTS:-20000}" --seed 2026 --out "$DROP"
fi
echo "Ingesting it (validation, quarantine, pseudonymisation, identity vault)..."
$BIN/python manage.py ingest "$DROP" --label "Demo synthetic ICS drop"
echo "Verifying the audit log..."
$BIN/python manage.py verify_audit

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping web server and worker..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# The worker runs in its own session so that Ctrl-C reaches it once, from stop(), as a
# single TERM (a warm shutdown that waits for its pool and beat); a second signal would
# make it a cold shutdown that can orphan its children.
setsid $BIN/celery -A sde worker --beat --loglevel=INFO --concurrency=1 \
  --schedule="${SDE_VAR_DIR:-var}/celerybeat-schedule" &
pids+=($!)
$BIN/gunicorn sde.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 --access-logfile - &
pids+=($!)

password=$($BIN/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "${SDE_VAR_DIR:-var}/demo-logins.json")
cat <<TXT

  sde is running at http://$HOST:$PORT/   (Ctrl-C stops the web server and the worker)

  Demo accounts (password for all: $password):
    admin         Administrator            researcher    Researcher (university)
    analyst       Researcher (ICB)         ig.officer    IG officer
    ig.officer2   IG officer               caldicott     Caldicott Guardian
    checker       Output checker           checker2      Output checker
    custodian     Data custodian           clinician     Clinician (GP practice Y99001)

  Sign in with a username and the password; the code step shows the current
  MFA code for demo accounts (demo mode only; the MFA check itself is real).

TXT
wait -n "${pids[@]}"
