"""The database-access stack of one environment: providers, state backend and every service."""

from cdktf import Fn, S3Backend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_secretsmanager_secret_version import DataAwsSecretsmanagerSecretVersion
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from cdktf_cdktf_provider_postgresql.provider import PostgresqlProvider
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from servicedb.construct import ServiceDatabases
from servicedb.plan import Plan


class DatabaseAccessStack(TerraformStack):
    """`<env>-database-access`: applied from the operator host, which reaches the cluster."""

    def __init__(self, scope: Construct, *, plan: Plan) -> None:
        environment = plan.environment
        super().__init__(scope, environment.stack_name)

        if environment.state_bucket:
            S3Backend(
                self,
                bucket=environment.state_bucket,
                key=f"servicedb/{environment.stack_name}.tfstate",
                region=environment.region,
                encrypt=True,
                kms_key_id=environment.kms_key_arn,
            )
            # S3-native state locking (Terraform >= 1.10); cdktf 0.21 has no field for it.
            self.add_override("terraform.backend.s3.use_lockfile", True)

        aws = AwsProvider(
            self,
            "aws",
            region=environment.region,
            allowed_account_ids=[environment.account_id],
            default_tags=[AwsProviderDefaultTags(tags=dict(environment.tags))] if environment.tags else None,
        )
        random = RandomProvider(self, "random")

        master = DataAwsSecretsmanagerSecretVersion(self, "master_secret", secret_id=environment.master_secret_arn)
        master_credentials = Fn.jsondecode(master.secret_string)
        postgresql = PostgresqlProvider(
            self,
            "postgresql",
            host=environment.endpoint,
            port=environment.port,
            database="postgres",
            username=Fn.lookup(master_credentials, "username"),
            password=Fn.lookup(master_credentials, "password"),
            # The Aurora master user is not a superuser: the provider must not act as one.
            superuser=False,
            sslmode="require",
            connect_timeout=environment.connect_timeout_seconds,
            expected_version=environment.engine_version,
        )

        self.services = ServiceDatabases(
            self,
            "services",
            plan=plan,
            postgresql_provider=postgresql,
            aws_provider=aws,
            random_provider=random,
        )
        TerraformOutput(
            self,
            "secret_arns",
            description="Secrets Manager ARN of each login user's secret, by user name",
            value={
                user.username: user.secret_arn
                for service in self.services.services.values()
                for user in (service.app, service.migrator)
            },
        )
