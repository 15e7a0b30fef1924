"""The `lambda` provisioner's stack: no postgresql resources, the same secrets, a function and its run.

The repository's services in `stage` (tests/environments.toml), synthesized with the providers'
validations, beside the same environment with the `terraform` provisioner.
"""

import base64
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from cdktf import App, TerraformOutput, TerraformStack, Testing
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_postgresql.provider import PostgresqlProvider
from cdktf_cdktf_provider_random.provider import RandomProvider
from syrupy.extensions.json import JSONSnapshotExtension

from servicedb import bundle
from servicedb.cli import main
from servicedb.construct import ServiceDatabases
from servicedb.lambda_provisioner import execution_policy
from servicedb.load import Declarations, load_declarations
from servicedb.plan import Plan, plan_services
from servicedb.provisioner import HANDLER, Action, invocation
from servicedb.scan import scan
from servicedb.spec import Provisioner
from servicedb.stack import DatabaseAccessStack

from factories import GRANT_FROM, temporary_access

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "example"
ENVIRONMENTS = Path(__file__).parent / "environments.toml"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
STACK = "stage-database-access"

FUNCTION = "aws_lambda_function.provisioner_function_A786B97A"
INVOCATION = "aws_lambda_invocation.provisioner_invocation_5A25E8AB"
POLICY = "aws_iam_role_policy.provisioner_policy_0BD0CF9F"


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.fixture(scope="module")
def no_access(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty access directory: the repository's grants are for prod, which this file lacks."""
    return tmp_path_factory.mktemp("access")


@pytest.fixture(scope="module")
def declarations(no_access: Path) -> Declarations:
    return load_declarations(EXAMPLE / "services", ENVIRONMENTS, no_access)


@pytest.fixture(scope="module")
def plan(declarations: Declarations) -> Plan:
    return plan_services(declarations.services, declarations.environment("stage"))


def terraform_twin(plan: Plan) -> Plan:
    """The same services and environment, applied by the postgresql provider."""
    environment = dataclasses.replace(
        plan.environment,
        provisioner=Provisioner.TERRAFORM,
        provisioner_subnet_ids=(),
        provisioner_security_group_id=None,
    )
    return dataclasses.replace(plan, environment=environment)


def synth(plan: Plan) -> dict:
    return json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=plan), run_validations=True))


@pytest.fixture(scope="module")
def stage(plan: Plan) -> dict:
    return synth(plan)


@pytest.fixture(scope="module")
def twin(plan: Plan) -> dict:
    return synth(terraform_twin(plan))


def resource(document: dict, address: str) -> dict:
    kind, name = address.split(".")
    return document["resource"][kind][name]


def addresses(document: dict) -> list[str]:
    return sorted(f"{kind}.{name}" for kind, items in document["resource"].items() for name in items)


def test_has_no_postgresql_resource_provider_or_master_password(stage: dict) -> None:
    assert not [address for address in addresses(stage) if address.startswith("postgresql_")]
    assert sorted(stage["provider"]) == ["aws", "random"]
    assert "variable" not in stage  # no postgresql_host or postgresql_port
    assert "data" not in stage  # Terraform never reads the master secret: the function does


def test_secrets_passwords_and_read_policies_are_the_terraform_modes(stage: dict, twin: dict) -> None:
    # Switching an environment's provisioner keeps every password and secret where it is. With
    # Terraform, a secret's version also waits for its user's role (`depends_on`), which orders
    # the apply and is no part of the secret.
    def without_order(resources: dict) -> dict:
        return {name: {k: v for k, v in body.items() if k != "depends_on"} for name, body in resources.items()}

    for kind in ("random_password", "aws_secretsmanager_secret", "aws_secretsmanager_secret_version"):
        assert stage["resource"][kind] == without_order(twin["resource"][kind]), kind
    policies = stage["resource"]["aws_iam_role_policy"]
    assert {name: body for name, body in policies.items() if name != POLICY.split(".")[1]} == twin["resource"][
        "aws_iam_role_policy"
    ]
    assert stage["output"]["secret_arns"] == twin["output"]["secret_arns"]


def test_ecs_secrets_are_the_terraform_modes(plan: Plan) -> None:
    def ecs_secrets(plan: Plan) -> dict:
        stack = TerraformStack(Testing.app(), "test")
        providers = {"aws_provider": AwsProvider(stack, "aws", region="eu-west-1"), "random_provider": None}
        if plan.environment.provisioner == Provisioner.TERRAFORM:
            providers["postgresql_provider"] = PostgresqlProvider(
                stack, "postgresql", host="db.internal", username="servicedb_admin"
            )
        providers["random_provider"] = RandomProvider(stack, "random")
        services = ServiceDatabases(stack, "services", plan=plan, **providers)
        for name, service in services.services.items():
            TerraformOutput(stack, name, value={"app": service.ecs_secrets, "migrator": service.migrator.ecs_secrets})
        return json.loads(Testing.synth(stack))["output"]

    assert ecs_secrets(plan) == ecs_secrets(terraform_twin(plan))


def test_resource_addresses_are_pinned(stage: dict, twin: dict) -> None:
    added = sorted(set(addresses(stage)) - set(addresses(twin)))
    assert added == [
        "aws_cloudwatch_log_group.provisioner_log_group_4ABA22E2",
        "aws_iam_role.provisioner_role_8DDB35E8",
        POLICY,
        FUNCTION,
        INVOCATION,
    ]


def test_function_runs_in_the_database_subnets_one_run_at_a_time(stage: dict) -> None:
    function = resource(stage, FUNCTION)
    code = bundle.bundle()
    assert function["function_name"] == "servicedb-stage-provisioner"
    assert function["handler"] == HANDLER
    assert function["runtime"] == "python3.12"
    assert function["reserved_concurrent_executions"] == 1
    assert function["timeout"] == 900
    assert function["vpc_config"] == {
        "security_group_ids": ["sg-0c00000000000d001"],
        "subnet_ids": ["subnet-0c00000000000d001", "subnet-0c00000000000d002"],
    }
    assert function["source_code_hash"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert function["filename"].startswith("assets/") and function["filename"].endswith("/provisioner.zip")
    assert function["role"] == "${aws_iam_role.provisioner_role_8DDB35E8.arn}"
    assert sorted(function["depends_on"]) == ["aws_cloudwatch_log_group.provisioner_log_group_4ABA22E2", POLICY]


def test_only_lambda_may_assume_the_role(stage: dict) -> None:
    role = resource(stage, "aws_iam_role.provisioner_role_8DDB35E8")
    assert json.loads(role["assume_role_policy"])["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_execution_role_reads_the_master_and_the_login_users_secrets_only(plan: Plan, stage: dict) -> None:
    environment = plan.environment
    policy = execution_policy(environment, secret_arns=["arn:app", "arn:migrator"], log_group_arn="arn:log")
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert by_sid["ReadDatabaseSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert by_sid["ReadDatabaseSecrets"]["Resource"] == [environment.master_secret_arn, "arn:app", "arn:migrator"]
    assert by_sid["DecryptDatabaseSecrets"] == {
        "Sid": "DecryptDatabaseSecrets",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [environment.kms_key_arn],
        "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}},
    }
    assert by_sid["WriteLogs"]["Resource"] == ["arn:log:*"]
    assert by_sid["CreateNetworkInterfaces"]["Resource"] == [
        "arn:aws:ec2:eu-west-1:444444444444:network-interface/*",
        "arn:aws:ec2:eu-west-1:444444444444:subnet/subnet-0c00000000000d001",
        "arn:aws:ec2:eu-west-1:444444444444:subnet/subnet-0c00000000000d002",
        "arn:aws:ec2:eu-west-1:444444444444:security-group/sg-0c00000000000d001",
    ]
    wildcard = [s["Sid"] for s in policy["Statement"] if "*" in s["Resource"]]
    assert wildcard == ["DescribeNetworkInterfaces"]
    actions = sorted(action for statement in policy["Statement"] for action in statement["Action"])
    assert actions == [
        "ec2:AssignPrivateIpAddresses",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:UnassignPrivateIpAddresses",
        "kms:Decrypt",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    ]
    synthesized = resource(stage, POLICY)
    assert synthesized["role"] == "${aws_iam_role.provisioner_role_8DDB35E8.name}"
    for name, secret in stage["resource"]["aws_secretsmanager_secret"].items():
        assert f"aws_secretsmanager_secret.{name}.arn" in synthesized["policy"], secret["name"]


def test_invocation_sends_the_plan_after_the_passwords_exist(plan: Plan, stage: dict) -> None:
    run = resource(stage, INVOCATION)
    assert run["function_name"] == f"${{{FUNCTION}.function_name}}"
    versions = stage["resource"]["aws_secretsmanager_secret_version"]
    assert sorted(run["depends_on"]) == sorted(f"aws_secretsmanager_secret_version.{name}" for name in versions)
    assert run["triggers"] == {"code": resource(stage, FUNCTION)["source_code_hash"]}

    sent = json.loads(run["input"])
    address = {secret["name"]: name for name, secret in stage["resource"]["aws_secretsmanager_secret"].items()}
    assert sent["secret_arns"] == {
        secret.username: f"${{aws_secretsmanager_secret.{address[secret.name]}.arn}}"
        for service in plan.services
        for secret in service.secrets
    }
    requested = invocation(sent)
    assert requested.action == Action.APPLY
    assert requested.plan == plan
    assert "random_password" not in run["input"]
    assert "password" not in json.dumps(sent["secret_arns"])


def test_template_characters_reach_the_function_as_declared(plan: Plan) -> None:
    tags = (("cost-center", "${not a reference}"), ("note", "%{ not a directive }"))
    tagged = dataclasses.replace(plan, environment=dataclasses.replace(plan.environment, tags=tags))
    text = resource(synth(tagged), INVOCATION)["input"]
    assert "$${not a reference}" in text and "%%{ not a directive }" in text
    as_terraform_renders_it = text.replace("$${", "${").replace("%%{", "%{")
    assert invocation(json.loads(as_terraform_renders_it)).plan == tagged


def test_outputs_name_the_function_and_its_last_result(stage: dict) -> None:
    assert stage["output"]["provisioner_function_name"]["value"] == f"${{{FUNCTION}.function_name}}"
    assert stage["output"]["provisioner_result"]["value"] == f"${{{INVOCATION}.result}}"


def test_stack_matches_snapshot(stage: dict, snapshot_json) -> None:
    # CI never updates snapshots: a change here is reviewed with `pytest --snapshot-update`. The
    # zip's hash, which changes with any module in it, is checked above and left out here.
    document = json.loads(json.dumps(stage))
    function, run = resource(document, FUNCTION), resource(document, INVOCATION)
    function["filename"] = "assets/<zip>/provisioner.zip"
    function["source_code_hash"] = run["triggers"]["code"] = "<sha256 of the zip>"
    assert document == snapshot_json


def test_cdktf_synth_writes_the_zip_and_checkov_passes(plan: Plan, tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (make test does it) to install checkov")
    DatabaseAccessStack(app := App(outdir=str(tmp_path)), plan=plan)
    app.synth()
    stack = tmp_path / "stacks" / STACK
    document = json.loads((stack / "cdk.tf.json").read_text())
    assert (stack / resource(document, FUNCTION)["filename"]).read_bytes() == bundle.bundle()

    report = scan(tmp_path / "stacks", checkov=str(CHECKOV))
    assert report.ok, report.problems()
    assert {(skip.resource.split(".")[0], skip.check_id) for skip in report.skipped} == {
        ("aws_secretsmanager_secret", "CKV2_AWS_57"),
        ("aws_cloudwatch_log_group", "CKV_AWS_158"),
        ("aws_lambda_function", "CKV_AWS_50"),
        ("aws_lambda_function", "CKV_AWS_116"),
        ("aws_lambda_function", "CKV_AWS_272"),
    }


def test_a_read_is_the_functions_to_apply(plan: Plan) -> None:
    stack = TerraformStack(Testing.app(), "test")
    services = ServiceDatabases(
        stack, "services", plan=plan, aws_provider=AwsProvider(stack, "aws", region="eu-west-1")
    )
    assert services.reads == []
    orders, billing = services.services["orders"], services.services["billing"]
    assert orders.app.name == "orders_app"  # a plain name: there is no role resource to refer to
    assert (orders.database_name, orders.schema_name) == ("orders", "orders")
    with pytest.raises(ValueError, match="reads are applied by the provisioner function"):
        billing.grant_read(orders)


def test_servicedb_event_prints_what_the_invocation_sends(plan: Plan, no_access: Path) -> None:
    lines: list[str] = []
    code = main(
        ["event", "--env", "stage", "--services", str(EXAMPLE / "services"), "--environments", str(ENVIRONMENTS)]
        + ["--access", str(no_access), "--action", "verify"],
        out=lines.append,
    )
    assert code == 0
    requested = invocation(json.loads(lines[0]))
    assert (requested.action, requested.plan, requested.secret_arns) == (Action.VERIFY, plan, {})


def test_servicedb_event_refuses_an_environment_without_the_function(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "event",
            "--env",
            "dev",
            "--services",
            str(EXAMPLE / "services"),
            "--environments",
            str(EXAMPLE / "environments.toml"),
        ],
        out=print,
    )
    assert code == 1
    assert "--env dev: its provisioner is terraform, not lambda" in capsys.readouterr().err


def test_a_live_break_glass_grant_is_a_secret_here_and_a_role_the_function_creates(
    plan: Plan, declarations: Declarations
) -> None:
    grant = temporary_access(environment="stage", principal_arn="arn:aws:iam::444444444444:role/oncall-jdoe")
    live = plan_services(declarations.services, plan.environment, access=[grant], now=GRANT_FROM)
    [temporary] = live.temporary
    document = synth(live)
    assert not [kind for kind in document["resource"] if kind.startswith("postgresql_")]
    secrets = document["resource"]["aws_secretsmanager_secret"]
    [address] = [name for name, secret in secrets.items() if secret["name"] == temporary.secret.name]
    assert [policy["secret_arn"] for policy in document["resource"]["aws_secretsmanager_secret_policy"].values()] == [
        f"${{aws_secretsmanager_secret.{address}.arn}}"
    ]
    sent = json.loads(resource(document, INVOCATION)["input"])
    assert sent["secret_arns"][temporary.role.name] == f"${{aws_secretsmanager_secret.{address}.arn}}"
    assert invocation(sent).plan == live  # the role, its VALID UNTIL and membership travel with the plan
