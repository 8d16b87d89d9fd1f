# ProjectVoice server. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: bench install lock run test test-sqlite test-postgres test-plain lint-python typecheck services generate check-generated lint sdk migration create-admin clean browser-deps test-browser

# Every package at the version in constraints.txt (the lock: `make lock` rewrites it from the venv).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^projectvoice' > constraints.txt

run: install
	$(BIN)/python -m projectvoice run

# Ruff and import-linter, mypy, then the whole suite on SQLite, on PostgreSQL, and once more on SQLite with Connexion's
# speed-ups and the socket fast path off (the pinned releases' plain path).
test: install services
	$(MAKE) --no-print-directory lint-python
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres
	$(MAKE) --no-print-directory test-plain

lint-python: install
	$(BIN)/ruff check core projectvoice handlers models realtime tests scripts bench
	$(BIN)/lint-imports

# mypy as configured in pyproject.toml ([tool.mypy]): the views and the socket payloads against the
# TypedDicts generated from the documents (a field renamed in openapi/ or asyncapi/ fails here).
typecheck: install
	$(BIN)/python scripts/generate_models.py --check
	$(BIN)/mypy

test-sqlite: install tests/js/node_modules lint/node_modules
	PV_TEST_DB=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install services tests/js/node_modules lint/node_modules
	PV_TEST_DB=postgres $(BIN)/python -m pytest $(PYTEST_ARGS)

# The server processes of the tests run without projectvoice/connexion_speedups.py and without
# realtime/fastpath.py (python-socketio and engine.io as published).
test-plain: install tests/js/node_modules lint/node_modules
	CONNEXION_SPEEDUPS=0 SOCKET_FASTPATH=0 PV_TEST_DB=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)

services:
	@scripts/ensure-services.sh

# Node.js socket.io-client 4 for the voice tests (tests/test_voice_node.py skips without node).
tests/js/node_modules: tests/js/package.json tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/js --no-audit --no-fund && touch $@; \
	else echo "npm not found: the Node.js voice tests will be skipped"; fi

# @redocly/cli, @asyncapi/parser and openapi-typescript for the spec lint and SDK tests
# (tests/test_lint_specs.py, tests/test_sdk.py).
lint/node_modules: lint/package.json lint/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix lint --no-audit --no-fund && touch $@; \
	else echo "npm not found: the spec lint tests will be skipped"; fi

# Debian's Chromium and Playwright for the browser tests (tests/test_browser.py; they also do this themselves).
browser-deps: install
	$(BIN)/python tests/browser_setup.py

test-browser: browser-deps
	PV_TEST_DB=sqlite $(BIN)/python -m pytest tests/test_browser.py $(PYTEST_ARGS)

generate: install lint/node_modules
	$(BIN)/python scripts/generate_models.py
	lint/node_modules/.bin/openapi-typescript openapi/projectvoice.yaml -o sdk/projectvoice.d.ts

# Benchmark suite on PostgreSQL: product against the bare floor app (bench/run_all.py, README "Performance").
# REST load by wrk (Debian: `apt-get install -y wrk`; installed here when missing and apt-get is
# there, else bench/load.py drives it); signalling load by Node's socket.io-client (bench/js).
bench: install services bench/js/node_modules
	@command -v wrk >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1) \
		|| echo "wrk not found (apt-get install -y wrk): bench/load.py drives the REST load"
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# socket.io-client 4 (the signalling load) and socket.io 4 (the bare Node relay it compares against).
bench/js/node_modules: bench/js/package.json bench/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix bench/js --no-audit --no-fund && touch $@; \
	else echo "npm not found: make bench skips the signalling rows"; fi

# Client SDKs from the OpenAPI document, for integrators: TypeScript types (committed as
# sdk/projectvoice.d.ts, tests/test_sdk.py checks they are fresh) and an installable Python client
# package in var/sdk/python (not committed: tests/test_sdk.py generates its own and runs the seed flow).
sdk: install lint/node_modules
	lint/node_modules/.bin/openapi-typescript openapi/projectvoice.yaml -o sdk/projectvoice.d.ts
	rm -rf var/sdk/python && mkdir -p var/sdk
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/openapi-python-client generate --path openapi/projectvoice.yaml --meta setup --output-path var/sdk/python

check-generated: install
	$(BIN)/python scripts/generate_models.py --check

lint: install lint/node_modules
	$(BIN)/ruff check core projectvoice handlers models realtime tests scripts bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests/test_specs.py tests/test_lint_specs.py

# New Alembic migration from the models: make migration m="what changed"
migration: install
	DATABASE_URL=sqlite:///$(CURDIR)/var/migration.db $(BIN)/alembic upgrade head
	DATABASE_URL=sqlite:///$(CURDIR)/var/migration.db $(BIN)/alembic revision --autogenerate -m "$(m)"

create-admin: install
	$(BIN)/python -m projectvoice create-admin

clean:
	rm -rf $(VENV) var .pytest_cache
