"""The synth app of this repository: its stacks, their snapshots, and `make synth`'s failure path."""

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from servicedb.app import main
from servicedb.plan import plan_services

from factories import leaves
from projects import EXAMPLE, ROOT, cdktf_synth_command, clean_environment, copy_project, run_synth


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


DATABASE_STACKS = ["dev-database-access", "prod-database-access"]


def test_a_database_access_and_an_operator_network_stack_per_environment(synthesized):
    assert sorted(synthesized) == [
        "dev-database-access",
        "dev-operator-network",
        "prod-database-access",
        "prod-operator-network",
    ]


@pytest.mark.parametrize("stack", DATABASE_STACKS)
def test_stack_matches_snapshot(synthesized, snapshot_json, stack):
    # CI never updates snapshots: a change here is reviewed with `pytest --snapshot-update`.
    assert synthesized[stack] == snapshot_json


def test_postgresql_provider_is_configured_for_aurora(synthesized):
    [provider] = synthesized["prod-database-access"]["provider"]["postgresql"]
    assert provider == {
        "host": "${var.postgresql_host}",
        "port": "${var.postgresql_port}",
        "database": "postgres",
        "username": "${jsondecode(data.aws_secretsmanager_secret_version.master_secret.secret_string).username}",
        "password": "${jsondecode(data.aws_secretsmanager_secret_version.master_secret.secret_string).password}",
        "superuser": False,
        "sslmode": "require",
        "connect_timeout": 15,
        "expected_version": "16.4",
    }
    master = synthesized["prod-database-access"]["data"]["aws_secretsmanager_secret_version"]["master_secret"]
    assert master["secret_id"].startswith("arn:aws:secretsmanager:eu-west-1:222222222222:secret:rds!cluster-")


def test_postgresql_provider_connects_to_the_endpoint_unless_told_otherwise(synthesized):
    # A port forward from a laptop overrides both: TF_VAR_postgresql_host=localhost, ...
    variables = synthesized["prod-database-access"]["variable"]
    assert variables["postgresql_host"]["default"] == "prod-main.cluster-c9b8a7d6e5f4.eu-west-1.rds.amazonaws.com"
    assert variables["postgresql_host"]["type"] == "string"
    assert variables["postgresql_port"]["default"] == 5432
    assert variables["postgresql_port"]["type"] == "number"
    # The secrets the services read always carry the endpoint, never the provider's host.
    for version in synthesized["prod-database-access"]["resource"]["aws_secretsmanager_secret_version"].values():
        assert '"host" = "prod-main.cluster-c9b8a7d6e5f4.eu-west-1.rds.amazonaws.com"' in version["secret_string"]


def test_aws_provider_is_pinned_to_the_environments_account(synthesized):
    [provider] = synthesized["prod-database-access"]["provider"]["aws"]
    assert provider["allowed_account_ids"] == ["222222222222"]
    assert provider["region"] == "eu-west-1"


def test_every_stack_keeps_its_state_in_encrypted_locked_s3(synthesized):
    # The state holds the generated passwords: never a local file for an environment on AWS.
    backend = synthesized["prod-database-access"]["terraform"]["backend"]
    assert backend == {
        "s3": {
            "bucket": "example-prod-terraform-state",
            "key": "servicedb/prod-database-access.tfstate",
            "region": "eu-west-1",
            "encrypt": True,
            "kms_key_id": "arn:aws:kms:eu-west-1:222222222222:key/5f0c1e2d-3b4a-4c5d-8e9f-0a1b2c3d4e5f",
            "use_lockfile": True,
        }
    }
    assert synthesized["dev-database-access"]["terraform"]["backend"] == {
        "s3": {
            "bucket": "example-dev-terraform-state",
            "key": "servicedb/dev-database-access.tfstate",
            "region": "eu-west-1",
            "encrypt": True,
            "use_lockfile": True,
        }
    }
    for stack, document in synthesized.items():
        assert document["terraform"]["backend"]["s3"]["encrypt"] is True, stack


def test_every_service_is_in_every_database_stack(synthesized):
    for document in (synthesized[stack] for stack in DATABASE_STACKS):
        databases = sorted(d["name"] for d in document["resource"]["postgresql_database"].values())
        assert databases == ["billing", "catalog", "orders", "shipping"]


def test_passwords_appear_only_as_references(synthesized):
    for stack in DATABASE_STACKS:
        document = synthesized[stack]
        passwords = [(path, value) for path, value in leaves(document, stack) if path.endswith(".password")]
        assert len(passwords) == 1 + 8  # the provider's, and each login user's role
        for path, value in passwords:
            assert value.startswith("${") and value.endswith("}"), path
        strings = [value for path, value in leaves(document, stack) if path.endswith(".secret_string")]
        assert len(strings) == 8
        assert all('"password" = random_password.' in value for value in strings)


def test_outputs_carry_no_secret_material(synthesized):
    for document in synthesized.values():
        for output in document["output"].values():
            assert "random_password" not in json.dumps(output)
            assert "secret_string" not in json.dumps(output)


def write_bad_declarations(directory: Path) -> tuple[Path, Path]:
    services = directory / "services"
    services.mkdir(parents=True)
    (services / "orders.py").write_text(
        "from servicedb import Reads, Service\nSERVICE = Service(name='orders', reads=(Reads(service='biling'),))\n"
    )
    environments = directory / "environments.toml"
    environments.write_text((EXAMPLE / "environments.toml").read_text())
    (directory / "deployed.toml").write_text('[services]\norders = "active"\n')
    return services, environments


def test_fails_on_bad_declarations_with_a_clear_message_and_writes_nothing(tmp_path, monkeypatch, capsys):
    services, environments = write_bad_declarations(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CDKTF_OUTDIR", str(tmp_path / "cdktf.out"))

    assert main(services, environments) == 1

    error = capsys.readouterr().err
    assert error == (
        "servicedb: refusing to synthesize; fix these declarations:\n"
        "services/orders.py: Service(name='orders'): 1 problem\n"
        "  at reads[0].service: no service named 'biling' (declared: orders)\n"
    )
    assert not (tmp_path / "cdktf.out").exists()


def without_metadata(value: object) -> object:
    """The document without cdktf's `//` metadata entries, which `Testing.synth` leaves out."""
    if isinstance(value, dict):
        return {k: without_metadata(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        return [without_metadata(v) for v in value]
    return value


def written_files(outdir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(outdir)): path.read_bytes() for path in sorted(outdir.rglob("*")) if path.is_file()}


def test_cdktf_synth_writes_the_same_stacks_as_the_tests_see(cli_synth, synthesized):
    project, _ = cli_synth
    for stack, expected in synthesized.items():
        written = json.loads((project / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_text())
        for section in ("resource", "data", "provider", "output", "variable"):
            assert without_metadata(written.get(section)) == expected.get(section), (stack, section)


def test_loading_only_the_aws_modules_used_writes_the_same_bytes_as_the_plain_import(cli_synth, plain_import_synth):
    project, _ = cli_synth
    assert plain_import_synth[0] == project  # the local backend's state path is absolute
    plain, lazy = written_files(project / "plain.out"), written_files(project / "cdktf.out")
    assert sorted(name for name in lazy if "/assets/" not in name) == [
        "manifest.json",
        "stacks/dev-database-access/cdk.tf.json",
        "stacks/dev-operator-network/cdk.tf.json",
        "stacks/prod-database-access/cdk.tf.json",
        "stacks/prod-operator-network/cdk.tf.json",
    ]
    # prod declares break-glass grants: its expiry function's code.
    assert [(n.split("/")[1], n.split("/")[-1]) for n in lazy if "/assets/" in n] == [
        ("prod-database-access", "provisioner.zip")
    ]
    assert sorted(plain) == sorted(lazy)
    for name, content in plain.items():
        assert content == lazy[name], name


def test_cdktf_synth_runs_without_a_node_warning(cli_synth):
    # jsii warns on stderr about end-of-life, deprecated and untested Node.js versions; the
    # environment silences none of them, so a supported Node.js ran both the CLI and jsii.
    _, result = cli_synth
    output = result.stdout + result.stderr
    for warning in ("end-of-life", "no longer be supported", "has not been tested with node", "!!!!!!"):
        assert warning not in output
    assert "DeprecationWarning" not in output


def test_jsii_starts_node_22_or_newer():
    # jsii starts $JSII_NODE, or else the first `node` on PATH.
    node = os.environ.get("JSII_NODE") or shutil.which("node")
    assert node, "no node on PATH: run `make install`"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 22, f"{node} is {version}: run `make install` for Node.js 22"


def test_cdktf_synth_fails_on_bad_declarations_without_a_traceback(tmp_path):
    project = copy_project(tmp_path / "project")
    shutil.rmtree(project / "services")
    write_bad_declarations(tmp_path / "bad")
    shutil.copytree(tmp_path / "bad" / "services", project / "services")

    result = run_synth(cdktf_synth_command(project), project)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "at reads[0].service: no service named 'biling' (declared: orders)" in output
    # The repository's other services are recorded as deployed: their deleted files are refused too.
    for name in ("billing", "catalog", "shipping"):
        assert f"services/{name}.py: Service(name='{name}'): 1 problem\n  is gone, but the record lists" in output
    assert "Traceback" not in output
    assert not (project / "cdktf.out" / "stacks").exists()


# access/2026-11-02-inc-4711.py: jdoe reads orders in prod from 09:00 to 13:00 UTC on 2 November 2026.
DURING_INC_4711 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
INC_4711_ROLE = "tmp_jdoe_orders_202611020900"


def prod_stack_at(declarations, now: datetime) -> dict:
    from cdktf import Testing

    from servicedb.stack import DatabaseAccessStack

    plan = plan_services(
        declarations.services, declarations.environment("prod"), access=declarations.temporary_access, now=now
    )
    return json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=plan), run_validations=True))


@pytest.fixture(scope="module")
def during_inc_4711(declarations) -> dict:
    """The prod stack synthesized while the repository's example grant is live."""
    return prod_stack_at(declarations, DURING_INC_4711)


def test_stack_with_a_live_grant_matches_snapshot(during_inc_4711, snapshot_json):
    assert during_inc_4711 == snapshot_json


def resource_addresses(document: dict) -> set[str]:
    return {f"{kind}.{name}" for kind, items in document["resource"].items() for name in items}


def test_a_live_grant_adds_its_role_membership_and_secret_and_nothing_else(during_inc_4711, synthesized):
    without = synthesized["prod-database-access"]
    added = resource_addresses(during_inc_4711) - resource_addresses(without)
    assert resource_addresses(without) <= resource_addresses(during_inc_4711)
    # Pinned: a changed address is a destroyed and recreated resource.
    assert sorted(added) == [
        "aws_secretsmanager_secret.temporary_access_tmp_jdoe_orders_202611020900_user_secret_DA709E30",
        "aws_secretsmanager_secret_policy.temporary_access_tmp_jdoe_orders_202611020900_secret_policy_B26FC163",
        "aws_secretsmanager_secret_version.temporary_access_tmp_jdoe_orders_202611020900_user_secret_value_7A048B87",
        "postgresql_grant_role.temporary_access_tmp_jdoe_orders_202611020900_membership_40BC7C0E",
        "postgresql_role.temporary_access_tmp_jdoe_orders_202611020900_user_role_66F4BC49",
        "random_password.temporary_access_tmp_jdoe_orders_202611020900_user_password_89D18C1F",
    ]
    # Of what was there, only orders' database changes: room for the grant's 2 connections.
    changed = {
        f"{kind}.{name}"
        for kind, items in without["resource"].items()
        for name, resource in items.items()
        if during_inc_4711["resource"][kind][name] != resource
    }
    assert changed == {"postgresql_database.services_orders_database_5318A4D0"}
    orders = "services_orders_database_5318A4D0"
    limits = [
        stack["resource"]["postgresql_database"][orders]["connection_limit"] for stack in (without, during_inc_4711)
    ]
    assert limits[1] == limits[0] + 2
    assert set(during_inc_4711["output"]) - set(without["output"]) == {"temporary_access_secret_arns"}


def test_a_live_grant_is_a_login_role_until_its_end_in_the_services_reader_role(during_inc_4711):
    resources = during_inc_4711["resource"]
    [role] = [r for r in resources["postgresql_role"].values() if r["name"] == INC_4711_ROLE]
    assert role["valid_until"] == "2026-11-02 13:00:00+00"
    assert (role["login"], role["connection_limit"], role["search_path"]) == (True, 2, ["orders"])
    assert role["password"].startswith("${random_password.temporary_access_tmp_jdoe_orders_202611020900_user_")
    [membership] = [m for m in resources["postgresql_grant_role"].values() if "temporary_access_" in m["role"]]
    assert membership["grant_role"] == "${postgresql_role.services_orders_reader_role_C1B6E13F.name}"
    # No other role changes its expiry: the services' users never expire.
    assert [r["name"] for r in resources["postgresql_role"].values() if "valid_until" in r] == [INC_4711_ROLE]


def test_a_live_grants_secret_is_readable_by_the_person_only(during_inc_4711):
    resources = during_inc_4711["resource"]
    [secret] = [s for s in resources["aws_secretsmanager_secret"].values() if "/access/" in s["name"]]
    assert secret["name"] == f"servicedb/prod/access/{INC_4711_ROLE}"
    assert secret["recovery_window_in_days"] == 0
    [policy] = resources["aws_secretsmanager_secret_policy"].values()
    assert '"Principal" = {"AWS" = "arn:aws:iam::222222222222:role/oncall-jdoe"}' in policy["policy"]
    assert '"Action" = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]' in policy["policy"]
    # No IAM role policy for it, and nothing for ECS: only the resource policy lets anyone read it.
    assert not [p for p in resources["aws_iam_role_policy"].values() if INC_4711_ROLE in p["name"]]
    [version] = [v for name, v in resources["aws_secretsmanager_secret_version"].items() if "temporary_access" in name]
    assert (
        '"password" = random_password.temporary_access_tmp_jdoe_orders_202611020900_user_password_'
        in (version["secret_string"])
    )


@pytest.mark.parametrize(
    "now",
    [datetime(2026, 11, 2, 8, 59, tzinfo=UTC), datetime(2026, 11, 2, 13, 0, tzinfo=UTC)],
    ids=["pending", "expired"],
)
def test_a_pending_or_expired_grant_creates_nothing(declarations, synthesized, now):
    assert prod_stack_at(declarations, now) == synthesized["prod-database-access"]


def test_cdktf_synth_says_what_each_grant_does(cli_synth):
    _, result = cli_synth
    assert (
        "servicedb: access/2026-11-02-inc-4711.py: expired at 2026-11-02T13:00:00Z: jdoe may read orders in prod "
        "(INC-4711); creates nothing" in result.stdout
    )


def test_main_check_prints_each_problem_once_and_writes_nothing(tmp_path):
    """`make synth` runs it before the cdktf CLI, which would print each problem twice."""
    project = copy_project(tmp_path / "project")
    python = [str(ROOT / ".venv" / "bin" / "python"), "main.py", "--check"]
    good = subprocess.run(python, cwd=project, capture_output=True, text=True, env=clean_environment())
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    (project / "services" / "orders.py").write_text(
        "from servicedb import Reads, Service\nSERVICE = Service(name='orders', reads=(Reads(service='biling'),))\n"
    )
    bad = subprocess.run(python, cwd=project, capture_output=True, text=True, env=clean_environment())
    assert bad.returncode == 1
    assert bad.stderr.count("no service named 'biling'; did you mean 'billing'?") == 1
    assert not (project / "cdktf.out").exists()
