# `make synth` and `make test` set up everything they need on a machine with Python 3.11+,
# Node.js and npm: pipenv in .tools/, the locked Python packages in .venv/, the pinned cdktf CLI,
# Node.js 22 and (on Linux x64) the tests' PostgreSQL 17 in node_modules/, and checkov in its own
# virtualenv in .tools/checkov/ (its many dependencies stay out of the project's lock). Nothing is
# installed globally.

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

# The cdktf CLI and jsii run on the Node.js 22 that npm ci installs (package.json), whatever the
# machine's `node` is; where npm publishes no Node.js 22 for the platform, on the machine's.
MACHINE_PATH := $(PATH)
export PATH := $(CURDIR)/node_modules/.bin:$(MACHINE_PATH)

.PHONY: synth test lint scan snapshots bench install clean

# The declarations are checked first, so that a problem is printed once, not again by the cdktf CLI.
synth: $(VENV)/.installed node_modules/.installed
	@$(VENV)/bin/python main.py --check
	$(CDKTF) synth

test: lint scan
	$(VENV)/bin/python -m pytest

# Rewrite the snapshot of the repository's own stacks (tests/test_repository.py) after a change to
# services/, environments.toml or access/; review its diff in the pull request with the change.
snapshots: $(VENV)/.installed node_modules/.installed
	$(VENV)/bin/python -m pytest tests/test_repository.py -k snapshot --snapshot-update -q

# checkov over every synthesized stack; a finding fails unless its construct skips it with a reason.
scan: synth $(CHECKOV_INSTALLED)
	$(VENV)/bin/python -m servicedb.scan cdktf.out/stacks --checkov $(CHECKOV)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Import and synth time and memory, plain import against servicedb, for 5, 50 and 500 services; apply and
# verify on a real PostgreSQL; a scale section (100, 300 and 1,000 services; synth of 1,000 and 2,000);
# split copy of 3 million rows beside pg_dump | pg_restore; and the test suite's time: writes
# BENCHMARKS.md (about an hour on 2 cores).
bench: $(VENV)/.installed node_modules/.installed $(CHECKOV_INSTALLED)
	$(VENV)/bin/python -m bench

install: $(VENV)/.installed node_modules/.installed $(CHECKOV_INSTALLED)

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)
	touch $@

# cdktf.json runs the synth with `python -O`, which reads its own bytecode (`*.opt-1.pyc`): compiled
# here once, since a machine that sets PYTHONDONTWRITEBYTECODE would compile the provider packages
# at every synth instead (the plain import of the AWS provider: 30 s instead of 12).
SYNTH_PACKAGES := cdktf cdktf_cdktf_provider_aws cdktf_cdktf_provider_postgresql cdktf_cdktf_provider_random constructs jsii

$(VENV)/.installed: Pipfile.lock constructs/servicedb/pyproject.toml $(TOOLS)/.installed
	$(PIPENV) sync --dev
	cd "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" && \
		"$(CURDIR)/$(VENV)/bin/python" -O -m compileall -q -j 0 $(SYNTH_PACKAGES) > /dev/null
	touch $@

$(CHECKOV_INSTALLED): $(TOOLS)/.installed
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	rm -f $(TOOLS)/checkov/.installed-*
	touch $@

# With the machine's npm and node: node_modules/, and the Node.js in it, is replaced.
node_modules/.installed: package-lock.json
	PATH="$(MACHINE_PATH)" npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(TOOLS) $(VENV) node_modules cdktf.out
