# The two commands: `make run` (the main job; `make reset` starts afresh) and `make test` (the suite).
# Both create .venv and install the npm packages when they are missing or stale.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_VENV := $(VENV)/.stamp-deps
STAMP_NPM := node_modules/.stamp-npm

.PHONY: run reset test demo test-contracts audit deps lint format bench clean

run: deps
	$(PY) scripts/run.py

# Start afresh: var/ (the chain, the database, the manifest) is moved into var/previous/.
reset: deps
	$(PY) scripts/run.py --reset

# Everything but the long runs (tests marked `long`: `make audit` runs them), on every core
# (pytest-xdist, a module per worker at a time; PYTEST_WORKERS=0 runs everything in one process).
PYTEST_WORKERS ?= auto
test: deps
	$(PY) -m pytest -m "not long" -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# A scripted day in the district over HTTP (scripts/demo.py; `make test` plays it at small scale).
demo: deps
	$(PY) scripts/demo.py $(DEMO_ARGS)

# The contract suites only (rules and invariants), with a summary by family for auditors.
test-contracts: deps
	$(PY) -m pytest -v -p tests.audit_summary tests/contracts tests/properties $(PYTEST_ARGS)

# Slither over contracts/ (mocks excluded) with the project's compiler; fails on any High/Medium
# finding or a Low/Informational one not explained in audit/slither-triage.md. Then the long runs:
# the schema fuzz of both APIs on both databases, hostile input against the service processes, the
# state machines (tests/properties: each family's under hypothesis' `audit` profile, random and far
# deeper than `make test`'s short derandomized runs; the all-families one long), and the tests
# marked `long` that `make test` leaves out (the load test and the start-up rounds on PostgreSQL...).
audit: deps
	$(PY) audit/run_slither.py $(AUDIT_ARGS)
	XCPAY_FUZZ=long $(PY) -m pytest -q tests/fuzz
	XCPAY_HOSTILE=long $(PY) -m pytest -q tests/security/test_hostile_processes.py
	XCPAY_FUZZ=long HYPOTHESIS_PROFILE=audit $(PY) -m pytest -q tests/properties
	$(PY) -m pytest -q -m long tests

deps: $(STAMP_VENV) $(STAMP_NPM)

$(STAMP_VENV): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: deps
	$(PY) -m ruff check chain services wallets scripts tests audit
	$(PY) -m ruff format --check chain services wallets scripts tests audit

format: deps
	$(PY) -m ruff format chain services wallets scripts tests audit
	$(PY) -m ruff check --fix chain services wallets scripts tests audit

bench: deps
	$(PY) scripts/bench_all.py

clean:
	rm -rf build var .pytest_cache
