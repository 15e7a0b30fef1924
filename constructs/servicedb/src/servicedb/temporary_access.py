"""The cdktf adapter for break-glass access: one live grant of the plan as Terraform resources.

A grant that is no longer live is not in the plan, so the next deploy destroys its resources: the
role (the postgresql provider reassigns and drops what it owns first), its membership and its
secret. `servicedb expire` ends the role's open sessions, which neither `VALID UNTIL` nor the
provider does.
"""

from cdktf import Fn, TerraformProvider
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_user_policy import IamUserPolicy
from cdktf_cdktf_provider_aws.secretsmanager_secret_policy import SecretsmanagerSecretPolicy
from constructs import Construct

from servicedb import plan as p
from servicedb.construct import DatabaseUser, ServiceDatabase
from servicedb.resources import Resource, remember
from servicedb.spec import Provisioner


class TemporaryDatabaseAccess(Construct):
    """A person's login role until `valid_until`, a member of one service's reader role (or writer
    role), with a generated password in its own secret that only the person's principal is allowed
    to read (a resource policy; no IAM role policy, no ECS wiring).

    For a service that logs in with IAM, the role is a member of `rds_iam` too, without password or
    secret, and the person's principal (a role or user of the environment's account) gets an inline
    policy (`connect_policy`): `rds-db:connect` on exactly `dbuser:<cluster resource id>/<role name>`.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: p.TemporaryAccessPlan,
        service: ServiceDatabase,
        postgresql_provider: TerraformProvider | None = None,
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
        provisioner: Provisioner = Provisioner.TERRAFORM,
    ) -> None:
        super().__init__(scope, id_)
        self.plan = plan
        location = remember(self, scope, id_) if provisioner == Provisioner.TERRAFORM else None
        self.user = DatabaseUser(
            self,
            "user",
            role=plan.role,
            secret=plan.secret,
            postgresql_provider=postgresql_provider,
            aws_provider=aws_provider,
            random_provider=random_provider,
            provisioner=provisioner,
        )
        self.membership: Resource | None = None
        self.iam_membership: Resource | None = None
        if location is not None:
            level_roles = {service.plan.reader.name: service.reader_role, service.plan.writer.name: service.writer_role}
            level_role = level_roles[plan.membership.role]
            assert level_role is not None, "a Terraform-provisioned service has its roles"
            self.membership = location.add(
                "membership",
                "postgresql_grant_role",
                {"role": self.user.name, "grant_role": level_role.name},
                provider=postgresql_provider,
            )
            if plan.iam_membership is not None:
                self.iam_membership = location.add(
                    "iam_membership",
                    "postgresql_grant_role",
                    {"role": self.user.name, "grant_role": p.RDS_IAM},
                    provider=postgresql_provider,
                )
        self.secret_policy: SecretsmanagerSecretPolicy | None = None
        self.connect_policy: IamRolePolicy | IamUserPolicy | None = None
        if plan.secret is not None and self.user.secret_arn is not None:
            self.secret_policy = SecretsmanagerSecretPolicy(
                self,
                "secret_policy",
                secret_arn=self.user.secret_arn,
                policy=Fn.jsonencode(plan.secret.resource_policy(self.user.secret_arn)),
                provider=aws_provider,
            )
        elif plan.connect is not None:
            if service.cluster_resource_id is None:
                raise ValueError(f"{plan.role.name}: {plan.service} logs in with IAM, but has no cluster resource id")
            policy = {
                "name": f"servicedb-{plan.role.name}-connect",
                "policy": Fn.jsonencode(plan.connect.policy(service.cluster_resource_id)),
                "provider": aws_provider,
            }
            if plan.principal_is_user:
                self.connect_policy = IamUserPolicy(self, "connect_policy", user=plan.principal_name, **policy)
            else:
                self.connect_policy = IamRolePolicy(self, "connect_policy", role=plan.principal_name, **policy)

    @property
    def username(self) -> str:
        """The role's name, as a plain string."""
        return self.user.username

    @property
    def secret_arn(self) -> str | None:
        """The grant's secret; None with IAM authentication."""
        return self.user.secret_arn
