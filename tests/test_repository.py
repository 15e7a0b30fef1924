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

from servicedb.app import build_app
from servicedb.load import Declarations, load_declarations
from servicedb.server import ADMIN, LocalServer

from terraform_provider import ProviderModel

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
    def walk(value: object, path: str):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, f"{path}[{index}]")
        else:
            yield path, value

    for name, document in stacks.items():
        for path, value in walk(document, name):
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
        stack = json.loads(json.dumps(stacks[env.stack_name]))
        if "postgresql" not in stack.get("provider", {}):
            continue  # the lambda provisioner: no postgresql resources
        if env.admin_iam_user:  # the provider logs in as that user: here, as the test server's admin
            for membership in stack["resource"]["postgresql_grant_role"].values():
                if membership["role"] == env.admin_iam_user:
                    membership["role"] = ADMIN
        with LocalServer(server.binaries) as fresh:
            model = model_for(fresh)
            with model.session("postgres") as conn:
                available = {name for (name,) in conn.execute("SELECT name FROM pg_available_extensions")}
                if "rds_iam" in json.dumps(stack):
                    conn.execute("CREATE ROLE rds_iam NOLOGIN")
            extensions = stack["resource"].get("postgresql_extension", {})
            for name in [name for name, extension in extensions.items() if extension["name"] not in available]:
                del extensions[name]
            model.apply(stack)
            assert [(e.address, e.statement) for e in model.silent_no_ops] == [], env.name
            assert model.plan(stack) == [], env.name


def model_for(server: LocalServer) -> ProviderModel:
    from test_terraform_path import model_for as terraform_model

    return terraform_model(server)
