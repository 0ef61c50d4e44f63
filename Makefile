# The two commands: `make run` (the main job; `make reset` starts afresh) and `make test` (the suite).
# Both create .venv (from requirements.lock), .venv-audit (Slither's, from audit/requirements.lock)
# and install the npm packages when they are missing or stale.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_VENV := $(VENV)/.stamp-deps
# Exact versions of every package of the dev install (`make lock` regenerates it from the ranges
# in pyproject.toml); installs take these, so every machine runs the same set.
LOCK := requirements.lock
# Slither's own tool environment: Slither pins web3<8, the project runs web3 8.
AUDIT_VENV := .venv-audit
AUDIT_LOCK := audit/requirements.lock
STAMP_AUDIT := $(AUDIT_VENV)/.stamp-deps
STAMP_NPM := node_modules/.stamp-npm

.PHONY: run reset test demo test-contracts audit audit-env deps lock lint format bench clean

run: deps
	$(PY) scripts/run.py

# Start afresh: var/ (the chain, the database, the manifest) is moved into var/previous/.
reset: deps
	$(PY) scripts/run.py --reset

# Everything but the long runs (tests marked `long`: `make audit` runs them), on every core
# (pytest-xdist, a module per worker at a time; PYTEST_WORKERS=0 runs everything in one process).
# The 25 slowest tests are listed at the end, so that a run shows where the time went.
PYTEST_WORKERS ?= auto
test: deps
	$(PY) -m pytest -m "not long" -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

# A scripted day in the district over HTTP (scripts/demo.py; `make test` plays it at small scale).
demo: deps
	$(PY) scripts/demo.py $(DEMO_ARGS)

# The contract suites only (rules and invariants), with a summary by family for auditors.
test-contracts: deps
	$(PY) -m pytest -v -p tests.audit_summary tests/contracts tests/properties $(PYTEST_ARGS)

# Slither, from its own tool environment .venv-audit, over contracts/ (mocks excluded) with the
# project's compiler; fails on any High/Medium finding or a Low/Informational one not explained in
# audit/slither-triage.md. Then the long runs: the schema fuzz of both APIs on both databases,
# hostile input against the service processes, the state machines (tests/properties: each
# family's under hypothesis' `audit` profile, random and far deeper than `make test`'s short
# derandomized runs; the all-families one long), and the tests marked `long` that `make test`
# leaves out (the load test and the start-up rounds on PostgreSQL...).
audit: deps
	$(AUDIT_VENV)/bin/python audit/run_slither.py $(AUDIT_ARGS)
	XCPAY_FUZZ=long $(PY) -m pytest -q tests/fuzz
	XCPAY_HOSTILE=long $(PY) -m pytest -q tests/security/test_hostile_processes.py
	XCPAY_FUZZ=long HYPOTHESIS_PROFILE=audit $(PY) -m pytest -q tests/properties
	$(PY) -m pytest -q -m long tests

# The suite runs Slither too (tests/audit), so the tool environment is part of the set-up.
deps: $(STAMP_VENV) $(STAMP_AUDIT) $(STAMP_NPM)

audit-env: $(STAMP_AUDIT)

$(STAMP_VENV): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(STAMP_AUDIT): $(AUDIT_LOCK)
	test -x $(AUDIT_VENV)/bin/python || $(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AUDIT_VENV)/bin/python -m pip install --quiet -r $(AUDIT_LOCK)
	touch $@

# Re-resolve pyproject.toml's ranges (and audit/requirements.in) in clean venvs under build/ and
# write the exact versions to requirements.lock and audit/requirements.lock. Run it to take newer
# versions within the ranges, or after changing a range; then `make test` and commit both files.
LOCK_VENV := build/lock-venv
lock:
	rm -rf $(LOCK_VENV) $(LOCK_VENV)-audit
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	{ printf '# Exact versions of the dev install (pyproject.toml has the ranges). Regenerate: make lock\n'; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > $(LOCK)
	$(PYTHON) -m venv $(LOCK_VENV)-audit
	$(LOCK_VENV)-audit/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)-audit/bin/python -m pip install --quiet -r audit/requirements.in
	{ printf '# Slither tool environment, from audit/requirements.in. Regenerate: make lock\n'; \
	  $(LOCK_VENV)-audit/bin/python -m pip freeze; } > $(AUDIT_LOCK)
	rm -rf $(LOCK_VENV) $(LOCK_VENV)-audit

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: deps
	$(PY) -m ruff check chain services wallets scripts tests audit
	$(PY) -m ruff format --check chain services wallets scripts tests audit
	$(PY) -m mypy chain wallets services

format: deps
	$(PY) -m ruff format chain services wallets scripts tests audit
	$(PY) -m ruff check --fix chain services wallets scripts tests audit

bench: deps
	$(PY) scripts/bench_all.py

clean:
	rm -rf build var .pytest_cache
