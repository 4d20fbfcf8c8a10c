# Two commands on a fresh clone: `make demo` and `make test`. Both bootstrap .venv
# from pyproject.toml once, and again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.stamp-install

.PHONY: demo demo-client test lint typecheck docs clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[demo,test,docs]'
	touch $(STAMP)

# The same two variables for both demo commands: PROVIDER_PORT (5000) and CLIENT_PORT (5001).
# PORT still sets the provider's port; to demo-client it would read as the app's own: refused.
ifeq ($(origin PORT)$(filter demo-client,$(MAKECMDGOALS)),command linedemo-client)
$(error make demo-client: PORT is ambiguous; use CLIENT_PORT=$(PORT) for this app and PROVIDER_PORT=<port> for the provider (make demo takes the same two))
endif
demo: $(STAMP)
	$(VENV)/bin/python -m demo_server

demo-client: $(STAMP)
	$(VENV)/bin/python -m demo_server.client_app

# openid-client (npm) for the interoperability tests, pinned by its lockfile.
INTEROP := tests/interop/node_modules/.stamp
$(INTEROP): tests/interop/package.json tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	touch $(INTEROP)

# What the suite needs outside .venv (PostgreSQL, Chromium, PgBouncer, npm): installed from
# Debian when run as root, else named with the command that installs it (.ci/test-prerequisites).
# Without npm (and not under CI=true) the interoperability tests are skipped, the rest run.
test: $(STAMP)
	@bash .ci/test-prerequisites
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(INTEROP); fi
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy oauth_sessions

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache instance test-artifacts
