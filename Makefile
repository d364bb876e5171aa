# sde: the two commands are `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test test-fast install install-dev browser-deps sandbox-deps lint audit-deps bench bench-data demo-data clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sde needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

## make run: migrate, seed the demo, start the web server and a Celery worker (Ctrl-C stops both)
run: install sandbox-deps
	@scripts/run.sh

## make test: install and run the whole suite (unit, integration with a real worker, browser)
test: install-dev browser-deps sandbox-deps
	@scripts/test.sh

## the suite without the browser tests
test-fast: install-dev sandbox-deps
	@SDE_SKIP_BROWSER=1 scripts/test.sh -m "not browser"

## the README's walkthrough in Chromium, saving a screenshot of each main page to docs/screenshots/
.PHONY: screenshots
screenshots: install-dev browser-deps sandbox-deps
	SDE_VAR_DIR=$(CURDIR)/var/screenshots SDE_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/browser/test_walkthrough.py

## the fault scenarios, slow ones included: web, worker, Redis and PostgreSQL killed mid-work
## (a PostgreSQL cluster and Redis server of their own; needs postgresql and redis-server)
.PHONY: test-faults
test-faults: install-dev sandbox-deps
	@scripts/test.sh tests/integration/test_faults.py

## Debian's chromium for the browser suite (installed when missing and we may use apt-get)
browser-deps:
	@scripts/ensure-chromium.sh

## Debian's bubblewrap for the analysis sandbox (installed when missing and we may use apt-get)
sandbox-deps:
	@scripts/ensure-sandbox.sh

lint: install-dev
	$(BIN)/ruff check sde access_requests outputs tests bench
	$(BIN)/mypy

## pip-audit of the installed packages (report only when the advisory database is unreachable)
audit-deps: install-dev
	$(BIN)/python scripts/audit_deps.py

bench: install-dev
	SDE_VAR_DIR=$(CURDIR)/var/bench $(BIN)/python bench/audit.py

## the data layer at 1,000,000 people: synth, ingestion, pseudonyms, extract build vs DuckDB
bench-data: install
	$(BIN)/pip install --quiet -r bench/requirements.txt
	SDE_VAR_DIR=$(CURDIR)/var/bench $(BIN)/python bench/data.py

## analyses at 1,000,000 people: the standard PHM pack vs plain pandas, sandbox start-up
.PHONY: bench-analysis
bench-analysis: install sandbox-deps
	SDE_VAR_DIR=$(CURDIR)/var/bench $(BIN)/python bench/analysis.py

## output checking at 1,000,000 rows: our checker vs ACRO 1.0.2 in its own venv, the LP audit
.PHONY: bench-sdc
bench-sdc: install
	$(BIN)/python bench/sdc.py

## the pure benches at 1,000,000 people: synthetic data, pseudonyms and the vault, ingest validation
.PHONY: bench-pure
bench-pure: install
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/pseudonymisation.py
	$(BIN)/python bench/ingest_validation.py

## 50 people browsing for 60 s: gunicorn + PostgreSQL + Redis on loopback (both must run)
.PHONY: bench-load
bench-load: install sandbox-deps
	$(BIN)/python bench/load.py

## the load test reduced for CI: 10 people for 10 s on 2,000 patients (about 45 s in all)
.PHONY: bench-load-quick
bench-load-quick: install sandbox-deps
	$(BIN)/python bench/load.py --quick

## the API fuzzed from its OpenAPI schema as every role: no 5xx, schema conformance, no leak
.PHONY: fuzz-api
fuzz-api: install-dev
	SDE_API_FUZZ_EXAMPLES=100 SDE_VAR_DIR=$(CURDIR)/var/fuzz $(BIN)/pytest -q tests/unit/test_api_fuzz.py

clean:
	rm -rf var/test var/bench .pytest_cache
