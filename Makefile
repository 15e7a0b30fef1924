# `make synth` and `make test` set up everything they need on a machine with Python 3.11+,
# Node.js 20+ and npm: pipenv in .tools/, the locked Python packages in .venv/, the pinned
# cdktf CLI in node_modules/. Nothing is installed globally.

PYTHON ?= python3
PIPENV_VERSION := 2026.10.3

TOOLS := .tools
VENV := .venv
PIPENV := $(TOOLS)/bin/pipenv
CDKTF := node_modules/.bin/cdktf

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
export PIPENV_IGNORE_VIRTUALENVS := 1
export CHECKPOINT_DISABLE := 1

.PHONY: synth test lint install clean

synth: $(VENV)/.installed node_modules/.installed
	$(CDKTF) synth

test: lint node_modules/.installed
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: $(VENV)/.installed node_modules/.installed

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)
	touch $@

$(VENV)/.installed: Pipfile.lock constructs/servicedb/pyproject.toml $(TOOLS)/.installed
	$(PIPENV) sync --dev
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(TOOLS) $(VENV) node_modules cdktf.out
