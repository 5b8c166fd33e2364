# One venv in .venv; `make demo` runs the server with a demo order, `make test` runs every test.
# `make check-js`: the widget's type check (tsc --checkJs) and its node unit tests (node_modules from the lock file).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# test processes (pytest-xdist workers): one a core, at most 4; JOBS=0 runs the suites in this process
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# the node packages of the lock file (tsc, the widget's unit tests, axe-core for the browser tests)
$(NODE_STAMP): package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

.PHONY: install deps demo test test-postgres check check-js bench
install: $(STAMP)

# system packages for the tests (redis-server, chromium, node), installed when missing
deps:
	bash scripts/deps.sh

demo: $(STAMP)
	$(VENV)/bin/chatd demo

# every test on SQLite, then the suites that run chatd servers again on PostgreSQL
test: deps $(STAMP)
	$(MAKE) -s $(NODE_STAMP)
	$(VENV)/bin/python -m pytest -q -n $(JOBS)
	$(MAKE) -s test-postgres

# the project's gates, run by CI before the tests: lint, format, types (strict, see pyproject.toml), the widget
check: $(STAMP) check-js
	$(VENV)/bin/ruff check chatd tests scripts
	$(VENV)/bin/ruff format --check chatd tests scripts
	$(VENV)/bin/mypy chatd

# the functional, SDK and relay suites with every chatd server on PostgreSQL (a real server the tests
# start); the unit and contract suites need no server and run every backend on their own
test-postgres: deps $(STAMP)
	CHATD_TEST_STORE=postgres $(VENV)/bin/python -m pytest -q -n $(JOBS) tests/functional tests/sdk tests/relay

check-js: deps
	$(MAKE) -s $(NODE_STAMP)
	npm run -s check
	npm test

# the standard benchmark set (docs/benchmarks.md), chatd beside its peers in one session:
# BENCH=<the shared load benchmark> RATES="2000 4000" PG_URL=postgresql://... make bench
bench: $(STAMP)
	sh scripts/bench.sh
