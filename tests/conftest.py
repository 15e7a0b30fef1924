"""Shared fixtures: the repository's own declarations, and each of its stacks synthesized once."""

import json
from pathlib import Path

import pytest
from cdktf import Testing

from servicedb.app import build_app
from servicedb.load import Declarations, load_declarations

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def declarations() -> Declarations:
    return load_declarations(ROOT / "services", ROOT / "environments.toml")


@pytest.fixture(scope="session")
def synthesized(declarations: Declarations) -> dict[str, dict]:
    """Every stack `main.py` builds, as parsed Terraform JSON, keyed by stack name."""
    app = build_app(declarations, Testing.app())
    return {stack.node.id: json.loads(Testing.synth(stack, run_validations=True)) for stack in app.node.children}
