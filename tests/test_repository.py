"""The repository's own declarations: services/, environments.toml, access/ and deployed.toml, as
the team that owns this copy wrote them. Everything expected here is derived from them, so adding,
changing or removing a service or an environment never breaks these tests; the one snapshot of
every stack is rewritten by `make snapshots` and reviewed in the pull request with the change.

The library's own tests use the example project in tests/example instead.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cdktf import Testing
from syrupy.extensions.json import JSONSnapshotExtension
from test_terraform_path import applies_cleanly

from servicedb.app import build_app
from servicedb.load import Declarations, load_declarations
from servicedb.server import LocalServer

from factories import leaves

ROOT = Path(__file__).resolve().parent.parent

BEFORE_ANY_GRANT = datetime(2000, 1, 1, tzinfo=UTC)
"""The snapshot leaves break-glass grants out: they come and go with the clock (cdktf diff shows them)."""


@pytest.fixture(scope="module")
def repository() -> Declarations:
    """Loaded as `cdktf synth` loads them, against the record of deployed services."""
    return load_declarations(
        ROOT / "services", ROOT / "environments.toml", ROOT / "access", record=ROOT / "deployed.toml"
    )


@pytest.fixture(scope="module")
def stacks(repository: Declarations) -> dict[str, dict]:
    app = build_app(repository, Testing.app(), now=BEFORE_ANY_GRANT)
    return {stack.node.id: json.loads(Testing.synth(stack, run_validations=True)) for stack in app.node.children}


def test_the_stacks_match_their_snapshot(stacks: dict[str, dict], snapshot) -> None:
    # After changing a declaration: `make snapshots`, then review the diff with the change.
    assert stacks == snapshot.use_extension(JSONSnapshotExtension)


def test_every_environment_has_its_stacks(repository: Declarations, stacks: dict[str, dict]) -> None:
    expected = {e.stack_name for e in repository.environments}
    expected |= {e.network_stack_name for e in repository.environments if e.network is not None}
    assert set(stacks) == expected


def test_every_declared_service_is_in_every_database_stack(repository: Declarations, stacks: dict[str, dict]) -> None:
    declared = sorted(s.name for s in repository.services if not s.purge)
    for environment in repository.environments:
        document = stacks[environment.stack_name]
        terraform = [r["name"] for r in document["resource"].get("postgresql_database", {}).values()]
        if environment.provisioner == "terraform":
            assert sorted(terraform) == declared, environment.name


def test_passwords_appear_only_as_references(repository: Declarations, stacks: dict[str, dict]) -> None:
    for name, document in stacks.items():
        for path, value in leaves(document, name):
            if path.endswith(".password") or path.endswith(".secret_string"):
                assert isinstance(value, str) and value.startswith("${") and value.endswith("}"), path


def test_the_database_stacks_apply_the_providers_way_and_plan_nothing_after(
    server: LocalServer, repository: Declarations, stacks: dict[str, dict]
) -> None:
    """Whatever services/ declares: every postgresql_* resource of each database stack, applied
    by the provider model (tests/terraform_provider.py) as a non-superuser admin, with no silent
    no-op, and a second plan that is empty. Extensions the test server lacks are left out;
    `rds_iam`, which Aurora has, is created for services that log in with IAM."""
    for env in repository.environments:
        if "postgresql" in stacks[env.stack_name].get("provider", {}):  # none with the lambda provisioner
            applies_cleanly(server, stacks[env.stack_name], admin_iam_user=env.admin_iam_user)
