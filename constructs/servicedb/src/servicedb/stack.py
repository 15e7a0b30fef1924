"""The stacks of one environment: providers, state backend and what each stack builds.

`<env>-operator-network` is applied first, from anywhere with AWS credentials: it opens the path
from the operator VPC to the cluster. `<env>-database-access` is applied from the operator host,
because its postgresql provider must reach the cluster at plan and apply time; with the `lambda`
provisioner it has no postgresql provider, and is applied from anywhere with AWS credentials.
"""

from cdktf import Fn, S3Backend, TerraformOutput, TerraformStack, TerraformVariable
from cdktf_cdktf_provider_aws.data_aws_secretsmanager_secret_version import DataAwsSecretsmanagerSecretVersion
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderAssumeRole, AwsProviderDefaultTags
from cdktf_cdktf_provider_postgresql.provider import PostgresqlProvider
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from servicedb.construct import ServiceDatabases
from servicedb.expiry import ExpiryFunction, ExpirySchedule
from servicedb.lambda_provisioner import LambdaProvisioner
from servicedb.network import NetworkPlan
from servicedb.operator_access import Cloud9OperatorHost, OperatorAccess, SsmOperatorHost
from servicedb.plan import Plan
from servicedb.spec import Environment, Provisioner
from servicedb.temporary_access import TemporaryDatabaseAccess


def use_state_bucket(stack: TerraformStack, environment: Environment, name: str) -> None:
    """Keep the stack's state in the environment's bucket, encrypted and locked, when it has one."""
    if not environment.state_bucket:
        return
    S3Backend(
        stack,
        bucket=environment.state_bucket,
        key=f"servicedb/{name}.tfstate",
        region=environment.region,
        encrypt=True,
        kms_key_id=environment.kms_key_arn,
    )
    # S3-native state locking (Terraform >= 1.10); cdktf 0.21 has no field for it.
    stack.add_override("terraform.backend.s3.use_lockfile", True)


def default_tags(environment: Environment) -> list[AwsProviderDefaultTags] | None:
    return [AwsProviderDefaultTags(tags=dict(environment.tags))] if environment.tags else None


def environment_provider(stack: TerraformStack, environment: Environment) -> AwsProvider:
    """The default AWS provider of an environment's stacks: its region, only its account, its tags."""
    return AwsProvider(
        stack,
        "aws",
        region=environment.region,
        allowed_account_ids=[environment.account_id],
        default_tags=default_tags(environment),
    )


class DatabaseAccessStack(TerraformStack):
    """`<env>-database-access`: applied from the operator host, which reaches the cluster.

    The postgresql provider connects to the Terraform variables `postgresql_host` and
    `postgresql_port`, which default to the cluster's endpoint and port; a port forward from a
    laptop sets them (`TF_VAR_postgresql_host=localhost`). The secrets always carry the endpoint.

    It logs in as the master user with the password from `master_secret_arn`, or, when the
    environment sets `admin_iam_user`, as that user with an IAM token the provider generates from
    the operator's AWS credentials (`aws_rds_iam_auth`); the master secret is then not read. With
    `terraform_logins`, each service is applied by one of those logins instead (a provider alias
    named after the login, its password read from its secret); the master user is still made a
    member of every owner role, with CONNECT, for `servicedb verify`.

    With the `lambda` provisioner there is no postgresql provider: the stack has the same secrets,
    and a function in the database subnets applies the rest (`LambdaProvisioner`).
    """

    def __init__(self, scope: Construct, *, plan: Plan) -> None:
        environment = plan.environment
        super().__init__(scope, environment.stack_name)
        use_state_bucket(self, environment, environment.stack_name)

        aws = environment_provider(self, environment)
        random = RandomProvider(self, "random")
        if environment.provisioner == Provisioner.LAMBDA:
            self.services = ServiceDatabases(self, "services", plan=plan, aws_provider=aws, random_provider=random)
            self.output_secret_arns()
            self.add_temporary_access(plan, aws=aws, random=random)
            self.provisioner = self.lambda_provisioner(plan, aws)
            if environment.expires_break_glass:
                self.expiry = ExpirySchedule(
                    self,
                    "expiry",
                    environment=environment,
                    function=self.provisioner.function,
                    alarm_topic_arns=environment.alarm_topic_arns,
                    aws_provider=aws,
                )
            return

        host = TerraformVariable(
            self,
            "postgresql_host",
            type="string",
            default=environment.endpoint,
            description="Where the postgresql provider connects: the cluster's endpoint, or localhost "
            "through a Session Manager port forward",
        )
        port = TerraformVariable(
            self,
            "postgresql_port",
            type="number",
            default=environment.port,
            description="The port the postgresql provider connects to: the cluster's, or the forwarded local port",
        )
        if environment.admin_iam_user:
            login = {
                "username": environment.admin_iam_user,
                "aws_rds_iam_auth": True,
                "aws_rds_iam_region": environment.region,
            }
        else:
            master = DataAwsSecretsmanagerSecretVersion(self, "master_secret", secret_id=environment.master_secret_arn)
            master_credentials = Fn.jsondecode(master.secret_string)
            login = {
                "username": Fn.lookup(master_credentials, "username"),
                "password": Fn.lookup(master_credentials, "password"),
            }
        connection = {
            "host": host.string_value,
            "port": port.number_value,
            "database": "postgres",
            # The Aurora master user is not a superuser: the provider must not act as one.
            "superuser": False,
            "sslmode": "require",
            "connect_timeout": environment.connect_timeout_seconds,
            "expected_version": environment.engine_version,
        }
        postgresql = PostgresqlProvider(self, "postgresql", **connection, **login)
        logins = []
        for user, secret_arn in environment.terraform_logins:
            secret = DataAwsSecretsmanagerSecretVersion(self, f"terraform_login_{user}", secret_id=secret_arn)
            logins.append(
                PostgresqlProvider(
                    self,
                    f"postgresql_{user}",
                    alias=user,
                    username=user,
                    password=Fn.lookup(Fn.jsondecode(secret.secret_string), "password"),
                    **connection,
                )
            )

        self.services = ServiceDatabases(
            self,
            "services",
            plan=plan,
            postgresql_provider=postgresql,
            login_providers=logins,
            aws_provider=aws,
            random_provider=random,
        )
        self.output_secret_arns()
        self.add_temporary_access(plan, aws=aws, random=random)
        if environment.expires_break_glass:
            function = ExpiryFunction(self, "expiry_function", environment=environment, aws_provider=aws)
            self.expiry = ExpirySchedule(
                self,
                "expiry",
                environment=environment,
                function=function.function,
                alarm_topic_arns=environment.alarm_topic_arns,
                aws_provider=aws,
            )

    def output_secret_arns(self) -> None:
        TerraformOutput(
            self,
            "secret_arns",
            description="Secrets Manager ARN of each login user's secret, by user name",
            value={user.username: user.secret_arn for user in self.services.users},
        )

    def add_temporary_access(
        self,
        plan: Plan,
        *,
        aws: AwsProvider,
        random: RandomProvider,
    ) -> None:
        """The break-glass grants live at synth, each through its service's postgresql provider;
        with the lambda provisioner, only their secrets."""
        grants = Construct(self, "temporary_access")
        self.temporary_access = {
            grant.role.name: TemporaryDatabaseAccess(
                grants,
                grant.role.name,
                plan=grant,
                service=self.services.services[grant.service],
                postgresql_provider=self.services.services[grant.service].postgresql_provider,
                aws_provider=aws,
                random_provider=random,
                provisioner=plan.environment.provisioner,
            )
            for grant in plan.temporary
        }
        if self.temporary_access:
            TerraformOutput(
                self,
                "temporary_access_secret_arns",
                description="Break-glass grants live at synth: the secret each person reads, by role name",
                value={name: access.secret_arn for name, access in self.temporary_access.items() if access.secret_arn},
            )

    def lambda_provisioner(self, plan: Plan, aws: AwsProvider) -> LambdaProvisioner:
        users = self.services.users + [
            access.user for access in self.temporary_access.values() if access.user.secret is not None
        ]
        provisioner = LambdaProvisioner(self, "provisioner", plan=plan, users=users, aws_provider=aws)
        TerraformOutput(
            self,
            "provisioner_function_name",
            description="The function that applies the plan; invoke it with `servicedb event` for verify",
            value=provisioner.function_name,
        )
        TerraformOutput(
            self,
            "provisioner_result",
            description="What the function's last run did: statements run and the drift it found (JSON)",
            value=provisioner.result,
        )
        return provisioner


class OperatorNetworkStack(TerraformStack):
    """`<env>-operator-network`: the peering, routes, cluster ingress rule and operator host.

    The default AWS provider is the database VPC's account and region. When the operator VPC is in
    another account or region, or `operator_role_arn` is set, a second provider (alias `operator`)
    manages its side, assuming that role.
    """

    def __init__(self, scope: Construct, *, plan: NetworkPlan) -> None:
        environment = plan.environment
        super().__init__(scope, environment.network_stack_name)
        use_state_bucket(self, environment, environment.network_stack_name)

        database = environment_provider(self, environment)
        operator = database
        if plan.needs_operator_provider:
            role = plan.operator_role_arn
            operator = AwsProvider(
                self,
                "aws_operator",
                alias="operator",
                region=plan.peering.operator_region,
                allowed_account_ids=[plan.peering.operator_account_id],
                assume_role=[AwsProviderAssumeRole(role_arn=role, session_name="servicedb-operator-network")]
                if role
                else None,
                default_tags=default_tags(environment),
            )

        self.access = OperatorAccess(
            self,
            "operator_access",
            plan=plan,
            database_provider=database,
            operator_provider=operator,
        )
        TerraformOutput(
            self,
            "peering_connection_id",
            description="The VPC peering connection between the operator VPC and the database VPC",
            value=self.access.peering_connection_id,
        )
        host = self.access.host
        if isinstance(host, SsmOperatorHost):
            TerraformOutput(
                self,
                "host_instance_id",
                description="The operator host: `aws ssm start-session --target <this id>`",
                value=host.instance_id,
            )
        elif isinstance(host, Cloud9OperatorHost):
            TerraformOutput(
                self,
                "cloud9_environment_id",
                description="The operator host's Cloud9 environment",
                value=host.environment_id,
            )
