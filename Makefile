# Two commands on a fresh clone: `make demo` and `make test`. Both bootstrap .venv
# from pyproject.toml once, and again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.stamp-install
PORT ?= 5000

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[demo,test]'
	touch $(STAMP)

demo: $(STAMP)
	PORT=$(PORT) $(VENV)/bin/python -m demo_server

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy oauth_sessions

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache instance test-artifacts
