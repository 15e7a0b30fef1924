# `make synth` and `make test` set up everything they need on a machine with Python 3.11+,
# Node.js 20+ and npm: pipenv in .tools/, the locked Python packages in .venv/, the pinned
# cdktf CLI in node_modules/, and checkov in its own virtualenv in .tools/checkov/ (its many
# dependencies stay out of the project's lock). Nothing is installed globally.

PYTHON ?= python3
PIPENV_VERSION := 2026.10.3
CHECKOV_VERSION := 3.3.30

TOOLS := .tools
VENV := .venv
PIPENV := $(TOOLS)/bin/pipenv
CDKTF := node_modules/.bin/cdktf
CHECKOV := $(TOOLS)/checkov/bin/checkov
CHECKOV_INSTALLED := $(TOOLS)/checkov/.installed-$(CHECKOV_VERSION)

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
export PIPENV_IGNORE_VIRTUALENVS := 1
export CHECKPOINT_DISABLE := 1

.PHONY: synth test lint scan install clean

synth: $(VENV)/.installed node_modules/.installed
	$(CDKTF) synth

test: lint scan
	$(VENV)/bin/python -m pytest

# checkov over every synthesized stack; a finding fails unless its construct skips it with a reason.
scan: synth $(CHECKOV_INSTALLED)
	$(VENV)/bin/python -m servicedb.scan cdktf.out/stacks --checkov $(CHECKOV)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: $(VENV)/.installed node_modules/.installed $(CHECKOV_INSTALLED)

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)
	touch $@

$(VENV)/.installed: Pipfile.lock constructs/servicedb/pyproject.toml $(TOOLS)/.installed
	$(PIPENV) sync --dev
	touch $@

$(CHECKOV_INSTALLED): $(TOOLS)/.installed
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	rm -f $(TOOLS)/checkov/.installed-*
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(TOOLS) $(VENV) node_modules cdktf.out
