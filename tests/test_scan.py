"""checkov over the synthesized stacks: the skips declared in code, and the findings they do not cover."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cdktf import App, TerraformStack, Testing
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret

from servicedb.app import build_app
from servicedb.scan import Finding, ScanError, main, scan, skip_check

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
HOST = "aws_instance.operator_access_host_instance_DC721DAF"


@pytest.fixture(scope="module")
def checkov() -> str:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (make test does it) to install checkov")
    return str(CHECKOV)


# While the repository's example break-glass grant (access/2026-11-02-inc-4711.py) is live, so that
# its resources are scanned too: `make scan` synthesizes at the current time, when it has expired.
DURING_INC_4711 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory, declarations) -> Path:
    """Every stack of the app as `cdktf synth` writes it, with the `//` comments that carry the skips."""
    outdir = tmp_path_factory.mktemp("cdktf.out")
    build_app(declarations, App(outdir=str(outdir)), now=DURING_INC_4711).synth()
    return outdir / "stacks"


def copy_stack(stacks: Path, name: str, destination: Path) -> Path:
    """One stack alone in `destination`, returning its document's path."""
    shutil.copytree(stacks / name, destination / name)
    return destination / name / "cdk.tf.json"


def edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def test_the_repositorys_stacks_pass_with_the_skips_their_constructs_declare(stacks, checkov):
    report = scan(stacks, checkov=checkov)
    assert report.ok, report.problems()
    assert report.stacks == (
        "dev-database-access",
        "dev-operator-network",
        "prod-database-access",
        "prod-operator-network",
    )
    assert report.passed > 0
    skipped = {(skip.stack, skip.check_id) for skip in report.skipped}
    assert skipped == {
        ("dev-database-access", "CKV2_AWS_57"),  # every secret: Terraform owns the password
        ("prod-database-access", "CKV2_AWS_57"),
        ("dev-database-access", "CKV_AWS_149"),  # dev has no customer key; prod has one, so no skip
        # prod declares break-glass grants: its expiry function and log group
        ("prod-database-access", "CKV_AWS_50"),
        ("prod-database-access", "CKV_AWS_116"),
        ("prod-database-access", "CKV_AWS_272"),
        ("prod-database-access", "CKV_AWS_158"),
    }
    # 8 secrets per environment, the example grant's in prod, dev's 8 without a customer key, and
    # the expiry function's 3 and its log group's 1.
    assert len(report.skipped) == 8 + 9 + 8 + 4
    expiry = {
        "aws_lambda_function.expiry_function_B9CBAAF7",
        "aws_cloudwatch_log_group.expiry_function_log_group_D49ADEC0",
    }
    assert all(s.resource.startswith("aws_secretsmanager_secret.") or s.resource in expiry for s in report.skipped)
    [grant] = [skip for skip in report.skipped if "temporary_access_" in skip.resource]
    assert (grant.stack, grant.check_id) == ("prod-database-access", "CKV2_AWS_57")


def test_fails_on_a_finding_nobody_skipped(stacks, checkov, tmp_path):
    path = copy_stack(stacks, "dev-operator-network", tmp_path)
    edit(path, lambda d: d["resource"]["aws_instance"][HOST.split(".")[1]]["root_block_device"].update(encrypted=False))

    report = scan(tmp_path, checkov=checkov)

    assert [(f.stack, f.resource, f.check_id) for f in report.failures] == [("dev-operator-network", HOST, "CKV_AWS_8")]
    assert not report.ok


def test_a_skip_covers_its_own_resource_and_check_only(stacks, checkov, tmp_path):
    path = copy_stack(stacks, "dev-database-access", tmp_path)
    secrets = json.loads(path.read_text())["resource"]["aws_secretsmanager_secret"]
    first = sorted(secrets)[0]
    edit(path, lambda d: d["resource"]["aws_secretsmanager_secret"][first]["//"]["checkov"]["skip"].pop("CKV_AWS_149"))

    report = scan(tmp_path, checkov=checkov)

    assert [(f.resource, f.check_id) for f in report.failures] == [
        (f"aws_secretsmanager_secret.{first}", "CKV_AWS_149")
    ]
    assert len(report.skipped) == 8 + 7


def test_fails_on_a_skip_that_matches_no_finding(stacks, checkov, tmp_path):
    path = copy_stack(stacks, "prod-database-access", tmp_path)
    secret = sorted(json.loads(path.read_text())["resource"]["aws_secretsmanager_secret"])[0]

    def skip_a_passing_check(document):
        document["resource"]["aws_secretsmanager_secret"][secret]["//"]["checkov"]["skip"]["CKV_AWS_149"] = "stale"

    edit(path, skip_a_passing_check)
    report = scan(tmp_path, checkov=checkov)

    assert report.failures == ()
    assert [(s.resource, s.check_id, s.reason) for s in report.stale] == [
        (f"aws_secretsmanager_secret.{secret}", "CKV_AWS_149", "stale")
    ]
    assert "1 skip(s) match no finding; remove them:" in report.problems()


def test_main_exits_1_and_says_what_to_fix(stacks, checkov, tmp_path, capsys):
    path = copy_stack(stacks, "dev-operator-network", tmp_path)
    edit(path, lambda d: d["resource"]["aws_instance"][HOST.split(".")[1]]["metadata_options"].pop("http_tokens"))

    assert main([str(tmp_path), "--checkov", checkov]) == 1

    output = capsys.readouterr()
    assert output.out.startswith("checkov: 1 stacks, ")
    assert f"  dev-operator-network: {HOST}: CKV_AWS_79 Ensure Instance Metadata Service Version 1 is not enabled" in (
        output.err
    )
    assert 'skip_check(resource, "<check id>", "<why it does not apply>")' in output.err


def test_refuses_a_directory_without_stacks(tmp_path, checkov):
    with pytest.raises(ScanError, match=r"no \*/cdk.tf.json in .*: synthesize first \(`make synth`\)"):
        scan(tmp_path, checkov=checkov)


def test_reports_a_missing_checkov(stacks, tmp_path):
    with pytest.raises(ScanError, match="checkov not found at .*: run `make install`"):
        scan(stacks, checkov=str(tmp_path / "checkov"))


def test_skip_check_writes_the_reason_under_the_resources_comment_key(tmp_path):
    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "test")
    AwsProvider(stack, "aws", region="eu-west-1")
    secret = SecretsmanagerSecret(stack, "secret", name="x")
    skip_check(secret, "CKV2_AWS_57", "rotated by Terraform")
    skip_check(secret, "CKV_AWS_149", "the AWS managed key")
    app.synth()

    document = json.loads((tmp_path / "stacks" / "test" / "cdk.tf.json").read_text())
    comment = document["resource"]["aws_secretsmanager_secret"]["secret"]["//"]
    assert comment["checkov"] == {"skip": {"CKV2_AWS_57": "rotated by Terraform", "CKV_AWS_149": "the AWS managed key"}}
    assert "metadata" in comment  # cdktf's own comment is kept


@pytest.mark.parametrize(
    ("check_id", "reason", "expected"),
    [
        ("CKV_AWS_X", "why", "'CKV_AWS_X' is not a checkov check id like 'CKV_AWS_149'"),
        ("CKV2_AWS_57", "  ", "skip of CKV2_AWS_57 needs a one-line reason, got '  '"),
        ("CKV2_AWS_57", "one\ntwo", "skip of CKV2_AWS_57 needs a one-line reason"),
    ],
)
def test_skip_check_refuses_a_bad_id_or_reason(check_id, reason, expected):
    stack = TerraformStack(Testing.app(), "test")
    secret = SecretsmanagerSecret(stack, "secret", name="x")
    with pytest.raises(ValueError) as raised:
        skip_check(secret, check_id, reason)
    assert str(raised.value).startswith(expected)


def test_findings_read_as_stack_resource_and_check():
    finding = Finding(stack="dev", resource="aws_instance.host", check_id="CKV_AWS_8", check_name="Encrypt it")
    assert str(finding) == "dev: aws_instance.host: CKV_AWS_8 Encrypt it"
