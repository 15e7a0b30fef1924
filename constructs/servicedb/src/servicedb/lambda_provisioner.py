"""The `lambda` provisioner as Terraform resources: the function in the database subnets, and its run.

    <code>        TerraformAsset: the zip of servicedb.bundle, built at synth, the same bytes for the same code
    <log_group>   /aws/lambda/<function>, kept a year
    <role>        the function's execution role, and <policy>: its network interfaces in the
                  given subnets and security group, its log group, and GetSecretValue on exactly
                  the master secret and the login users' secrets
    <function>    python3.12, reserved concurrency 1 (one apply at a time), 15 minutes at most
    <invocation>  aws_lambda_invocation whose input is the plan: Terraform runs the function
                  again whenever the plan or the code changes, after the secrets have their passwords

The invocation's input and result stay in the Terraform state: the plan, the secrets' ARNs, and
what ran; never a password (`servicedb.provisioner`).
"""

import atexit
import functools
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cdktf import AssetType, Fn, TerraformAsset, TerraformProvider, TerraformResource
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction, LambdaFunctionVpcConfig
from cdktf_cdktf_provider_aws.lambda_invocation import LambdaInvocation
from constructs import Construct

from servicedb import bundle, provisioner
from servicedb.construct import DatabaseUser
from servicedb.plan import Plan, secret_read_statements
from servicedb.resources import location_of
from servicedb.scan import skip_check
from servicedb.spec import Environment

RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
"""The code is pure Python: Graviton, which costs less, runs it as well."""
TIMEOUT_SECONDS = 900
"""Lambda's longest: a first apply creates every database, and CREATE DATABASE takes seconds on Aurora."""
MEMORY_MB = 256
LOG_RETENTION_DAYS = 365
LAMBDA_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@functools.cache
def built_bundle() -> tuple[str, str]:
    """The zip's path, written once per process (every environment's stack shares it), and its
    base64 SHA-256, the `source_code_hash` Lambda compares."""
    directory = tempfile.mkdtemp(prefix="servicedb-provisioner-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path, digest = bundle.write_bundle(Path(directory))
    return str(path), digest


def function_name(environment: Environment) -> str:
    return f"servicedb-{environment.name}-provisioner"


def terraform_text(value: object) -> object:
    """`value` with every `${` and `%{` escaped, so that Terraform reads its strings as they are."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, dict):
        return {key: terraform_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [terraform_text(item) for item in value]
    return value


def execution_policy(environment: Environment, *, secret_arns: Sequence[str], log_group_arn: str) -> dict[str, object]:
    """What the function may do: its network interfaces, its logs, and read the secrets it needs.

    The same permissions as AWSLambdaVPCAccessExecutionRole, scoped to the environment's subnets,
    security group and log group; `secretsmanager:GetSecretValue` on exactly the master secret and
    the login users' secrets, and `kms:Decrypt` only through Secrets Manager when a key is set.
    """
    partition = environment.master_secret_arn.split(":")[1]
    ec2 = f"arn:{partition}:ec2:{environment.region}:{environment.account_id}"
    statements: list[dict[str, object]] = [
        {
            "Sid": "DescribeNetworkInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": ["*"],  # Describe actions take no resource
        },
        {
            "Sid": "CreateNetworkInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface"],
            "Resource": [
                f"{ec2}:network-interface/*",
                *(f"{ec2}:subnet/{subnet}" for subnet in environment.provisioner_subnet_ids),
                f"{ec2}:security-group/{environment.provisioner_security_group_id}",
            ],
        },
        {
            "Sid": "ManageNetworkInterfaces",
            "Effect": "Allow",
            "Action": [
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": [f"{ec2}:network-interface/*"],
        },
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:*"],
        },
        *secret_read_statements(
            [environment.master_secret_arn, *secret_arns],
            kms_key_arn=environment.kms_key_arn,
            region=environment.region,
            sid="DatabaseSecrets",
        ),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def vpc_function(
    scope: Construct,
    *,
    name: str,
    description: str,
    role_arn: str,
    code: TerraformAsset,
    code_hash: str,
    timeout_seconds: int,
    environment: Environment,
    depends_on: Sequence[TerraformResource],
    why_no_dead_letter_queue: str,
    aws_provider: TerraformProvider | None = None,
) -> LambdaFunction:
    """A function of servicedb's (`function`): the provisioner's code in the environment's
    `provisioner_subnet_ids` and security group, one run at a time, with the checkov skips it needs."""
    function = LambdaFunction(
        scope,
        "function",
        function_name=name,
        description=description,
        role=role_arn,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=provisioner.HANDLER,
        filename=code.path,
        source_code_hash=code_hash,
        timeout=timeout_seconds,
        memory_size=MEMORY_MB,
        reserved_concurrent_executions=1,
        vpc_config=LambdaFunctionVpcConfig(
            subnet_ids=list(environment.provisioner_subnet_ids),
            security_group_ids=[environment.provisioner_security_group_id or ""],
        ),
        depends_on=list(depends_on),
        provider=aws_provider,
    )
    skip_check(
        function, "CKV_AWS_50", "tracing would need X-Ray permissions; the log has a line for every step it takes"
    )
    skip_check(function, "CKV_AWS_116", why_no_dead_letter_queue)
    skip_check(
        function,
        "CKV_AWS_272",
        "the zip is built at synth from the installed packages and pinned by its SHA-256 (source_code_hash)",
    )
    return function


class LambdaProvisioner(Construct):
    """The function that applies `plan` from inside the VPC, and the invocation that runs it.

    `users` are the login users whose secrets it reads (`ServiceDatabases.users`): the invocation
    waits for their secrets' values, so every password exists before the function sets it.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: Plan,
        users: Sequence[DatabaseUser],
        aws_provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        environment = plan.environment
        name = function_name(environment)
        path, code_hash = built_bundle()

        self.code = TerraformAsset(self, "code", path=path, type=AssetType.FILE)
        self.log_group = CloudwatchLogGroup(
            self,
            "log_group",
            name=f"/aws/lambda/{name}",
            retention_in_days=LOG_RETENTION_DAYS,
            provider=aws_provider,
        )
        skip_check(
            self.log_group,
            "CKV_AWS_158",
            "the log holds statement descriptions and SQL with password placeholders, never a secret",
        )
        self.role = IamRole(
            self,
            "role",
            name=name,
            description=f"servicedb: the {environment.name} provisioner function",
            assume_role_policy=LAMBDA_TRUST_POLICY,
            provider=aws_provider,
        )
        self.policy = IamRolePolicy(
            self,
            "policy",
            name=f"{name}-execution",
            role=self.role.name,
            policy=Fn.jsonencode(
                execution_policy(
                    environment,
                    secret_arns=[user.secret_arn for user in users],
                    log_group_arn=self.log_group.arn,
                )
            ),
            provider=aws_provider,
        )
        self.function = vpc_function(
            self,
            name=name,
            description=f"servicedb: applies the {environment.name} plan to {environment.cluster_identifier}",
            role_arn=self.role.arn,
            code=self.code,
            code_hash=code_hash,
            timeout_seconds=TIMEOUT_SECONDS,
            environment=environment,
            depends_on=[self.policy, self.log_group],
            why_no_dead_letter_queue="Terraform invokes it synchronously and fails the deploy on an error: "
            "there is nothing to retry later",
            aws_provider=aws_provider,
        )
        event = provisioner.event(plan, secret_arns={})
        event = terraform_text(event)
        event["secret_arns"] = {user.username: user.secret_arn for user in users}
        self.invocation = LambdaInvocation(
            self,
            "invocation",
            function_name=self.function.function_name,
            input=json.dumps(event, separators=(",", ":")),
            triggers={"code": code_hash},
            provider=aws_provider,
        )
        # The passwords are in the secrets before the function reads them.
        resources = location_of(self).resources
        for user in users:
            if user.secret_version is not None:
                resources.depend(self.invocation, on=user.secret_version)

    @property
    def function_name(self) -> str:
        return self.function.function_name

    @property
    def result(self) -> str:
        """What the last run did, as JSON (`servicedb.provisioner`): statements run, drift found."""
        return self.invocation.result
