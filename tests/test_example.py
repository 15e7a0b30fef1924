"""examples/ecs-service: the construct used from a different stack, as another team would."""

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cdktf import Testing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ecs-service" / "main.py"


@pytest.fixture(scope="module")
def example() -> dict:
    spec = importlib.util.spec_from_file_location("ecs_service_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stack = module.build(Testing.app())
    return json.loads(Testing.synth(stack, run_validations=True))


def test_task_definition_gets_the_database_secrets(example):
    [task] = example["resource"]["aws_ecs_task_definition"].values()
    definitions = task["container_definitions"]
    secret = "aws_secretsmanager_secret.payments_database_app_secret_34A829EE.arn"
    for name, key in (("DB_HOST", "host"), ("DB_PASSWORD", "password")):
        assert f'{{"name" = "{name}", "valueFrom" = "${{{secret}}}:{key}::"}}' in definitions
    assert f'{{"name" = "DB_SECRET", "valueFrom" = {secret}}}' in definitions


def test_the_stacks_own_role_may_read_the_migrator_secret(example):
    policies = example["resource"]["aws_iam_role_policy"].values()
    assert sorted(policy["role"] for policy in policies) == [
        "${aws_iam_role.migrations_role.name}",
        "payments-task-execution",
        "payments-task-execution",
    ]


def test_the_library_builds_as_a_wheel_with_its_modules(tmp_path):
    # Built from a copy: setuptools leaves a build/ folder beside the sources.
    source = shutil.copytree(ROOT / "constructs" / "servicedb", tmp_path / "source")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*command, str(source)], check=True)
    [wheel] = tmp_path.glob("servicedb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        *("__init__", "spec", "plan", "construct", "stack", "load", "errors", "app", "lazy_aws"),
        *("network", "operator_access", "scan"),
        *("sql", "inspect", "diff", "apply", "verify", "passwords", "cli", "demo", "server", "record"),
    ):
        assert f"servicedb/{module}.py" in names
    assert "servicedb/py.typed" in names


def test_the_readme_commands_synthesize_the_stack_in_a_fresh_copy(example_readme) -> None:
    directory, result = example_readme
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((directory / "cdktf.out" / "stacks" / "payments" / "cdk.tf.json").read_text())
    assert "aws_ecs_task_definition" in document["resource"]
    output = result.stdout + result.stderr
    for unwanted in ("[ERROR]", "end-of-life", "ENOTFOUND", "Traceback"):
        assert unwanted not in output, output[-3000:]


def test_what_the_readme_commands_leave_is_ignored_by_git(example_readme) -> None:
    directory, result = example_readme
    assert result.returncode == 0
    created = sorted(
        path.name for path in directory.iterdir() if not (ROOT / "examples" / "ecs-service" / path.name).exists()
    )
    assert created == [".venv", "cdktf.out", "node_modules"]
    paths = [f"examples/ecs-service/{name}/" for name in created] + ["constructs/servicedb/build/"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == paths
