"""Shared fixtures: the repository's declarations, each of its stacks synthesized once, and real PostgreSQL servers."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cdktf import Testing

from servicedb.app import build_app
from servicedb.load import Declarations, load_declarations
from servicedb.server import LocalServer, available_binaries

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def declarations() -> Declarations:
    return load_declarations(ROOT / "services", ROOT / "environments.toml")


@pytest.fixture(scope="session")
def synthesized(declarations: Declarations) -> dict[str, dict]:
    """Every stack `main.py` builds, as parsed Terraform JSON, keyed by stack name."""
    app = build_app(declarations, Testing.app())
    return {stack.node.id: json.loads(Testing.synth(stack, run_validations=True)) for stack in app.node.children}


SERVERS = available_binaries()


@pytest.fixture(scope="session", params=SERVERS, ids=[f"pg{b.major}" for b in SERVERS])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A real PostgreSQL per major version the machine can start: the embedded one (16), and any installed."""
    with LocalServer(request.param) as started:
        yield started
