"""Break-glass access that ends on time without anyone's cron: a schedule in the stack.

`VALID UNTIL` stops new logins at the end of a grant, but a session that is open goes on, and the
role stays. Every `expiry_schedule_minutes`, an EventBridge rule invokes a function in the
cluster's subnets with the `expire` action (`servicedb.provisioner`), which does what
`servicedb expire` does: forbid the login, end the sessions, give what the role owns to the
service's owner, drop the role; one JSON line per action in the function's log.

    <function>   with the `lambda` provisioner, its function; else one of its own:
                 servicedb-<env>-expiry, the same code, in the same subnets, reserved concurrency 1
    <rule>       rate(<minutes> minutes), <target> the function with the expire event as its input,
                 and <permission> for EventBridge to invoke it
    <alarm>      on the function's Errors: a run that could not remove a role, or could not reach
                 the cluster, raises an error, and the alarm goes off (to `alarm_topic_arns`)

Why an alarm and not a dead-letter queue: EventBridge invokes the function asynchronously and
Lambda retries it twice; a dead-letter queue would keep the schedule's input, which is the same
every time and says nothing about what failed, while the errors metric counts every failed run
and the log says why. The next run retries anyway: a role left behind is removed when it can be.
"""

import json
from collections.abc import Sequence

from cdktf import AssetType, Fn, TerraformAsset, TerraformProvider
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.data_aws_rds_cluster import DataAwsRdsCluster
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from constructs import Construct

from servicedb import provisioner
from servicedb.lambda_provisioner import (
    LAMBDA_TRUST_POLICY,
    LOG_RETENTION_DAYS,
    built_bundle,
    execution_policy,
    terraform_text,
    vpc_function,
)
from servicedb.plan import partition
from servicedb.scan import skip_check
from servicedb.spec import Environment

EXPIRY_TIMEOUT_SECONDS = 300
"""A run ends sessions and drops a few roles: seconds; five minutes leave room for a slow cluster."""


def expiry_function_name(environment: Environment) -> str:
    return f"servicedb-{environment.name}-expiry"


class ExpiryFunction(Construct):
    """The function that runs the schedule's `expire`, for an environment with the `terraform`
    provisioner: the provisioner's code and network, and permission for nothing but its network
    interfaces, its log, and the admin's login (the master secret, or `rds-db:connect` as
    `admin_iam_user`)."""

    def __init__(
        self, scope: Construct, id_: str, *, environment: Environment, aws_provider: TerraformProvider | None = None
    ) -> None:
        super().__init__(scope, id_)
        name = expiry_function_name(environment)
        path, code_hash = built_bundle()
        self.code = TerraformAsset(self, "code", path=path, type=AssetType.FILE)
        self.log_group = CloudwatchLogGroup(
            self, "log_group", name=f"/aws/lambda/{name}", retention_in_days=LOG_RETENTION_DAYS, provider=aws_provider
        )
        skip_check(
            self.log_group,
            "CKV_AWS_158",
            "the log holds the expiry's audit lines (role names, tickets, times), never a secret",
        )
        self.role = IamRole(
            self,
            "role",
            name=name,
            description=f"servicedb: removes expired break-glass roles in {environment.name}",
            assume_role_policy=LAMBDA_TRUST_POLICY,
            provider=aws_provider,
        )
        policy = execution_policy(environment, secret_arns=[], log_group_arn=self.log_group.arn)
        if environment.admin_iam_user:
            # The admin logs in with a token: no master secret to read, rds-db:connect as that user only.
            cluster = DataAwsRdsCluster(
                self, "cluster", cluster_identifier=environment.cluster_identifier, provider=aws_provider
            )
            statements = [s for s in policy["Statement"] if not str(s["Sid"]).endswith("DatabaseSecrets")]  # type: ignore[index]
            statements.append(
                {
                    "Sid": "ConnectAsTheAdmin",
                    "Effect": "Allow",
                    "Action": ["rds-db:connect"],
                    "Resource": [
                        f"arn:{partition(environment.region)}:rds-db:{environment.region}:{environment.account_id}:"
                        f"dbuser:{cluster.cluster_resource_id}/{environment.admin_iam_user}"
                    ],
                }
            )
            policy = {**policy, "Statement": statements}
        self.policy = IamRolePolicy(
            self,
            "policy",
            name=f"{name}-execution",
            role=self.role.name,
            policy=Fn.jsonencode(policy),
            provider=aws_provider,
        )
        self.function = vpc_function(
            self,
            name=name,
            description=f"servicedb: removes the expired break-glass roles of {environment.cluster_identifier}",
            role_arn=self.role.arn,
            code=self.code,
            code_hash=code_hash,
            timeout_seconds=EXPIRY_TIMEOUT_SECONDS,
            environment=environment,
            depends_on=[self.policy, self.log_group],
            why_no_dead_letter_queue="a failed run raises the errors alarm, and the next run retries; a "
            "dead-letter queue would only keep the schedule's fixed input",
            aws_provider=aws_provider,
        )


class ExpirySchedule(Construct):
    """Every `environment.expiry_schedule_minutes`, `function` runs `expire`; an alarm on its errors."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        environment: Environment,
        function: LambdaFunction,
        alarm_topic_arns: Sequence[str] = (),
        aws_provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        minutes = int(environment.expiry_schedule_minutes or 0)
        name = f"servicedb-{environment.name}-expiry"
        self.rule = CloudwatchEventRule(
            self,
            "rule",
            name=name,
            description=f"servicedb: remove the break-glass roles of {environment.name} whose time is up",
            schedule_expression=f"rate({minutes} minute{'s' if minutes > 1 else ''})",
            provider=aws_provider,
        )
        event = terraform_text(provisioner.expire_event(environment))
        self.target = CloudwatchEventTarget(
            self,
            "target",
            rule=self.rule.name,
            arn=function.arn,
            input=json.dumps(event, separators=(",", ":")),
            provider=aws_provider,
        )
        self.permission = LambdaPermission(
            self,
            "permission",
            statement_id="ServicedbExpirySchedule",
            action="lambda:InvokeFunction",
            function_name=function.function_name,
            principal="events.amazonaws.com",
            source_arn=self.rule.arn,
            provider=aws_provider,
        )
        self.alarm = CloudwatchMetricAlarm(
            self,
            "alarm",
            alarm_name=f"{name}-errors",
            alarm_description=(
                f"servicedb: a run that removes expired break-glass roles in {environment.name} failed; "
                f"its log (/aws/lambda/...) says which role and why"
            ),
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": function.function_name},
            statistic="Sum",
            period=60 * max(minutes, 1),
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=list(alarm_topic_arns) or None,
            provider=aws_provider,
        )
