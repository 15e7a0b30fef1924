#!/usr/bin/env python
"""Another team's CDKTF stack: its ECS service `payments`, with its database access from servicedb.

The library is installed like any package (`pip install ./constructs/servicedb`, or from your
package index); this stack brings its own providers and hands them to the construct.

servicedb is imported first: from then on, `cdktf_cdktf_provider_aws` imports only the modules
this stack names (about 2 s instead of 12; see servicedb.lazy_aws).
"""

import os
from pathlib import Path

# jsii starts with the first import of cdktf: it runs on the Node.js 22 that `npm ci` put in
# node_modules/, not on an older one of the machine's. cdktf's TerraformOutput uses util.isArray,
# deprecated since Node.js 22 (DEP0044).
NODE = Path(__file__).resolve().parent / "node_modules" / ".bin" / "node"
if NODE.exists():
    os.environ.setdefault("JSII_NODE", str(NODE))
    os.environ["NODE_OPTIONS"] = f"{os.environ.get('NODE_OPTIONS', '')} --disable-warning=DEP0044".strip()

# isort: split
from servicedb import Environment, Service, ServiceDatabase, plan_service

# isort: split
from cdktf import App, Fn, TerraformStack, TerraformVariable
from cdktf_cdktf_provider_aws.ecs_task_definition import EcsTaskDefinition
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_postgresql.provider import PostgresqlProvider
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

STAGING = Environment(
    name="staging",
    region="eu-central-1",
    account_id="333333333333",
    cluster_identifier="staging-main",
    endpoint="staging-main.cluster-c0ffee123456.eu-central-1.rds.amazonaws.com",
    master_secret_arn="arn:aws:secretsmanager:eu-central-1:333333333333:secret:rds!cluster-staging-QwErTy",
    engine_version="16.4",
)

PAYMENTS = Service(
    name="payments",
    connection_limit=15,
    execution_role="payments-task-execution",  # the service's existing ECS task execution role
)

ECS_TASKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


class PaymentsStack(TerraformStack):
    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        aws = AwsProvider(self, "aws", region=STAGING.region, allowed_account_ids=[STAGING.account_id])
        # The cluster's master user, which is not a superuser; its password is PGPASSWORD in the
        # operator's environment. The construct makes it a member of the service's owner role.
        admin = TerraformVariable(self, "postgresql_username", type="string", default="postgres")
        postgresql = PostgresqlProvider(
            self,
            "postgresql",
            host=STAGING.endpoint,
            port=STAGING.port,
            username=admin.string_value,
            superuser=False,
            sslmode="require",
        )
        random = RandomProvider(self, "random")

        self.database = ServiceDatabase(
            self,
            "payments_database",
            plan=plan_service(PAYMENTS, STAGING),
            postgresql_provider=postgresql,
            aws_provider=aws,
            random_provider=random,
        )

        # A second reader of the migrator's secret: the CI role that runs migrations.
        migrations = IamRole(
            self, "migrations_role", name="payments-migrations", assume_role_policy=Fn.jsonencode(ECS_TASKS_TRUST)
        )
        self.database.migrator.grant_secret_read(migrations.name, id_="migrations_role_policy")

        EcsTaskDefinition(
            self,
            "task",
            family="payments",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu="256",
            memory="512",
            execution_role_arn=f"arn:aws:iam::{STAGING.account_id}:role/{PAYMENTS.execution_role}",
            container_definitions=Fn.jsonencode(
                [
                    {
                        "name": "payments",
                        "image": "public.ecr.aws/docker/library/python:3.12-slim",
                        "essential": True,
                        "secrets": self.database.ecs_secrets,
                    }
                ]
            ),
            provider=aws,
        )


def build(app: App) -> PaymentsStack:
    return PaymentsStack(app, "payments")


if __name__ == "__main__":
    app = App()
    build(app)
    app.synth()
