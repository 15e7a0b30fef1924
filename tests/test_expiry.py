"""The break-glass expiry schedule in the stacks: its function, rule, target, permission and alarm
(servicedb.expiry). The handler's `expire` on a real server is tests/test_provisioner.py's."""

import json

import pytest
from cdktf import Testing

from servicedb.plan import plan_services
from servicedb.spec import Provisioner, Service
from servicedb.stack import DatabaseAccessStack

from factories import environment

SUBNETS = {
    "provisioner_subnet_ids": ("subnet-0d0000000000000d1",),
    "provisioner_security_group_id": "sg-0d0000000000000d2",
}


def stack(**settings: object) -> dict:
    plan = plan_services([Service(name="orders")], environment(**SUBNETS, **settings))
    return json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=plan), run_validations=True))


@pytest.fixture(scope="module")
def terraform() -> dict:
    return stack(expiry_schedule_minutes=5, alarm_topic_arns=("arn:aws:sns:eu-west-1:123456789012:oncall",))


def addresses(document: dict, *kinds: str) -> list[str]:
    return sorted(f"{kind}.{name}" for kind in kinds for name in document["resource"].get(kind, {}))


def test_resource_addresses_are_pinned(terraform: dict) -> None:
    assert addresses(
        terraform,
        "aws_lambda_function",
        "aws_iam_role",
        "aws_iam_role_policy",
        "aws_cloudwatch_log_group",
        "aws_cloudwatch_event_rule",
        "aws_cloudwatch_event_target",
        "aws_lambda_permission",
        "aws_cloudwatch_metric_alarm",
    ) == [
        "aws_cloudwatch_event_rule.expiry_rule_FA19EE1D",
        "aws_cloudwatch_event_target.expiry_target_CC023067",
        "aws_cloudwatch_log_group.expiry_function_log_group_D49ADEC0",
        "aws_cloudwatch_metric_alarm.expiry_alarm_F2BA973C",
        "aws_iam_role.expiry_function_role_EEB382A4",
        "aws_iam_role_policy.expiry_function_policy_2C0B03D4",
        "aws_iam_role_policy.services_orders_app_execution_role_policy_CBBAC29D",
        "aws_iam_role_policy.services_orders_migrator_execution_role_policy_428407D7",
        "aws_lambda_function.expiry_function_B9CBAAF7",
        "aws_lambda_permission.expiry_permission_01356AFE",
    ]


def test_the_rule_runs_the_function_with_the_expire_event(terraform: dict) -> None:
    resources = terraform["resource"]
    [rule] = resources["aws_cloudwatch_event_rule"].values()
    assert rule["schedule_expression"] == "rate(5 minutes)"
    [target] = resources["aws_cloudwatch_event_target"].values()
    assert target["arn"] == "${aws_lambda_function.expiry_function_B9CBAAF7.arn}"
    sent = json.loads(target["input"])
    assert sent["action"] == "expire" and sent["environment"]["name"] == "test"
    assert len(target["input"]) < 8192  # an EventBridge target's input
    [permission] = resources["aws_lambda_permission"].values()
    assert (permission["principal"], permission["source_arn"]) == (
        "events.amazonaws.com",
        "${aws_cloudwatch_event_rule.expiry_rule_FA19EE1D.arn}",
    )
    [function] = resources["aws_lambda_function"].values()
    assert function["handler"] == "servicedb.provisioner.handler"
    assert function["reserved_concurrent_executions"] == 1
    assert function["vpc_config"] == {
        "subnet_ids": ["subnet-0d0000000000000d1"],
        "security_group_ids": ["sg-0d0000000000000d2"],
    }


def test_a_failed_run_raises_the_alarm(terraform: dict) -> None:
    [alarm] = terraform["resource"]["aws_cloudwatch_metric_alarm"].values()
    assert (alarm["namespace"], alarm["metric_name"], alarm["statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert alarm["dimensions"] == {"FunctionName": "${aws_lambda_function.expiry_function_B9CBAAF7.function_name}"}
    assert (alarm["threshold"], alarm["period"]) == (1, 300)
    assert alarm["alarm_actions"] == ["arn:aws:sns:eu-west-1:123456789012:oncall"]


def test_the_function_may_read_the_master_secret_and_nothing_else(terraform: dict) -> None:
    policy = terraform["resource"]["aws_iam_role_policy"]["expiry_function_policy_2C0B03D4"]["policy"]
    reads = policy[policy.index("secretsmanager:GetSecretValue") :]
    assert environment().master_secret_arn in reads
    assert "aws_secretsmanager_secret." not in policy  # no login user's secret


def test_an_iam_admin_connects_as_itself_and_reads_no_secret() -> None:
    document = stack(expiry_schedule_minutes=5, admin_iam_user="servicedb_admin")
    policy = document["resource"]["aws_iam_role_policy"]["expiry_function_policy_2C0B03D4"]["policy"]
    assert "secretsmanager:GetSecretValue" not in policy
    assert "rds-db:connect" in policy and "/servicedb_admin" in policy


def test_the_lambda_provisioner_runs_the_schedule_itself() -> None:
    document = stack(expiry_schedule_minutes=10, provisioner=Provisioner.LAMBDA)
    assert addresses(document, "aws_lambda_function") == ["aws_lambda_function.provisioner_function_A786B97A"]
    [target] = document["resource"]["aws_cloudwatch_event_target"].values()
    assert target["arn"] == "${aws_lambda_function.provisioner_function_A786B97A.arn}"
    [rule] = document["resource"]["aws_cloudwatch_event_rule"].values()
    assert rule["schedule_expression"] == "rate(10 minutes)"


def test_off_without_a_schedule() -> None:
    assert addresses(stack(expiry_schedule_minutes=0), "aws_cloudwatch_event_rule", "aws_lambda_function") == []
