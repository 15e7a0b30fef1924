"""The cdktf adapter: one service's plan, rendered as Terraform resources.

With the `terraform` provisioner (the default), the postgresql provider creates the roles, the
database, the schema and the grants. With `lambda`, the constructs create no postgresql resource:
the provisioner function applies those (`servicedb.lambda_provisioner`), and the passwords,
secrets, read policies and ECS wiring are the same resources at the same addresses.

Construct ids are part of the contract: a changed id is a destroyed and recreated resource, so
they are fixed snake_case names derived from the plan (never from tokens), and a test pins the
resulting resource addresses.

With the `terraform` provisioner, what holds data or owns what does (the database, the schema,
the service's roles) has `prevent_destroy`: a plan that would destroy or replace it fails. Only a purged service's
resources may go, by leaving its construct out (`Plan.purged`). `prevent_destroy` does not cover
a resource whose block is gone from the configuration (hashicorp/terraform#17599): `servicedb.record`
refuses a deleted declaration before synth.
"""

from collections.abc import Mapping, Sequence

from cdktf import Fn, TerraformProvider, TerraformResource, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_aws.secretsmanager_secret_version import SecretsmanagerSecretVersion
from cdktf_cdktf_provider_postgresql.database import Database
from cdktf_cdktf_provider_postgresql.default_privileges import DefaultPrivileges
from cdktf_cdktf_provider_postgresql.extension import Extension
from cdktf_cdktf_provider_postgresql.grant import Grant
from cdktf_cdktf_provider_postgresql.grant_role import GrantRole
from cdktf_cdktf_provider_postgresql.role import Role
from cdktf_cdktf_provider_postgresql.schema import Schema
from cdktf_cdktf_provider_random.password import Password
from constructs import Construct

from servicedb import plan as p
from servicedb.scan import skip_check
from servicedb.spec import Provisioner

KEEP = TerraformResourceLifecycle(prevent_destroy=True)
"""The lifecycle of every resource that holds data or owns what does."""

PASSWORD_SPECIALS = "-_.~"
"""Special characters that need no quoting in a URL's userinfo, a shell word or a libpq string."""

ECS_SECRET_KEYS = (
    ("HOST", "host"),
    ("PORT", "port"),
    ("NAME", "dbname"),
    ("USER", "username"),
    ("PASSWORD", "password"),
)


def ecs_secrets(secret_arn: str, *, prefix: str = "DB_") -> list[dict[str, str]]:
    """Container `secrets` entries for an ECS task definition, one per key of the secret.

    Each `valueFrom` is `<secret arn>:<json key>::`, as CDK's `ecs.Secret.fromSecretsManager(secret,
    key)` writes it; `<prefix>SECRET` carries the whole JSON document.
    """
    entries = [{"name": f"{prefix}{name}", "valueFrom": f"{secret_arn}:{key}::"} for name, key in ECS_SECRET_KEYS]
    entries.append({"name": f"{prefix}SECRET", "valueFrom": secret_arn})
    return entries


class DatabaseUser(Construct):
    """A login user: its role, generated password, Secrets Manager secret and who may read it.

    Without a secret (a retired service's user), only the role, NOLOGIN and without a password:
    `password`, `secret` and `secret_version` are None and `ecs_secrets` is empty.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        role: p.Role,
        secret: p.Secret | None,
        assume_role: Role | None = None,
        postgresql_provider: TerraformProvider | None = None,
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
        provisioner: Provisioner = Provisioner.TERRAFORM,
    ) -> None:
        super().__init__(scope, id_)
        self.username = role.name
        """The user name, as a plain string (`name` is the resource's reference)."""
        self._secret_plan = secret
        self._aws_provider = aws_provider
        self.password: Password | None = None
        self.secret: SecretsmanagerSecret | None = None
        self.secret_version: SecretsmanagerSecretVersion | None = None

        if secret is not None:
            self.password = Password(
                self,
                "password",
                length=secret.password_length,
                special=True,
                override_special=PASSWORD_SPECIALS,
                min_lower=1,
                min_upper=1,
                min_numeric=1,
                provider=random_provider,
            )
        self.role: Role | None = None
        if provisioner == Provisioner.TERRAFORM:
            self.role = Role(
                self,
                "role",
                name=role.name,
                login=role.login and secret is not None,
                inherit=role.inherit,
                password=self.password.result if self.password else None,
                connection_limit=role.connection_limit,
                statement_timeout=role.statement_timeout_ms,
                idle_in_transaction_session_timeout=role.idle_in_transaction_timeout_ms,
                search_path=list(role.search_path) or None,
                assume_role=assume_role.name if assume_role else None,
                # Memberships are postgresql_grant_role resources; without this, the role would
                # revoke them on every other apply (cyrilgdn/terraform-provider-postgresql#583).
                lifecycle=TerraformResourceLifecycle(ignore_changes=["roles"], prevent_destroy=True),
                provider=postgresql_provider,
            )
        if secret is None:
            return
        self.secret = SecretsmanagerSecret(
            self,
            "secret",
            name=secret.name,
            description=f"Credentials of the PostgreSQL user {role.name} (database {secret.database})",
            kms_key_id=secret.kms_key_arn,
            recovery_window_in_days=secret.recovery_window_days,
            provider=aws_provider,
        )
        skip_check(
            self.secret,
            "CKV2_AWS_57",
            "Terraform owns the password (random_password); rotate it by replacing that, not with a rotation Lambda",
        )
        if secret.kms_key_arn is None:
            skip_check(
                self.secret,
                "CKV_AWS_149",
                "the environment sets no kms_key_arn, so the AWS managed key aws/secretsmanager encrypts it",
            )
        self.secret_version = SecretsmanagerSecretVersion(
            self,
            "secret_value",
            secret_id=self.secret.id,
            secret_string=Fn.jsonencode({**secret.fields, "password": self.password.result}),
            provider=aws_provider,
        )
        self.grant_secret_read(secret.reader_role)

    @property
    def name(self) -> str:
        """The PostgreSQL user name: the role's reference, or the plain name when no role resource is made."""
        return self.role.name if self.role else self.username

    @property
    def secret_arn(self) -> str | None:
        """The secret's ARN; None for a retired service's user, which has no secret."""
        return self.secret.arn if self.secret else None

    @property
    def ecs_secrets(self) -> list[dict[str, str]]:
        """Container `secrets` entries: `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`, `DB_SECRET`.

        Empty for a retired service's user: nothing may read its database any more.
        """
        return ecs_secrets(self.secret.arn) if self.secret else []

    def grant_secret_read(self, role_name: str, *, id_: str = "execution_role_policy") -> IamRolePolicy:
        """Let the IAM role `role_name` read this secret and nothing else (`Secret.read_policy`).

        Give each further role its own `id_`. A retired service's user has no secret to read.
        """
        if self.secret is None or self._secret_plan is None:
            raise ValueError(f"{self.username} belongs to a retired service: it has no secret for {role_name} to read")
        return IamRolePolicy(
            self,
            id_,
            name=f"servicedb-{self._secret_plan.username}-secret-read",
            role=role_name,
            policy=Fn.jsonencode(self._secret_plan.read_policy(self.secret.arn)),
            provider=self._aws_provider,
        )


class ServiceDatabase(Construct):
    """One service's isolated database access on a shared PostgreSQL cluster.

    Takes the service's plan (`servicedb.plan.plan_service`) and the providers to use; creates
    no provider itself. `app.ecs_secrets` and `migrator.ecs_secrets` are ready for a container
    definition's `secrets`. With `provisioner=Provisioner.LAMBDA` it creates only the users'
    passwords, secrets and read policies: the provisioner function applies the rest.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: p.ServicePlan,
        postgresql_provider: TerraformProvider | None = None,
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
        provisioner: Provisioner = Provisioner.TERRAFORM,
    ) -> None:
        super().__init__(scope, id_)
        self.plan = plan
        self.provisioner = provisioner
        self._postgresql_provider = postgresql_provider
        self._readers: Construct | None = None

        in_terraform = provisioner == Provisioner.TERRAFORM
        self.owner_role: Role | None = None
        self.writer_role: Role | None = None
        self.reader_role: Role | None = None
        if in_terraform:
            self.owner_role = Role(
                self, "owner_role", name=plan.owner.name, login=False, lifecycle=KEEP, provider=postgresql_provider
            )
            self.writer_role = Role(
                self, "writer_role", name=plan.writer.name, login=False, lifecycle=KEEP, provider=postgresql_provider
            )
            self.reader_role = Role(
                self, "reader_role", name=plan.reader.name, login=False, lifecycle=KEEP, provider=postgresql_provider
            )
        users = {}
        for role, assume_role in ((plan.app, None), (plan.migrator, self.owner_role)):
            users[role.name] = DatabaseUser(
                self,
                str(role.kind),
                role=role,
                secret=plan.secret_for(role.name) if role.login else None,
                assume_role=assume_role,
                postgresql_provider=postgresql_provider,
                aws_provider=aws_provider,
                random_provider=random_provider,
                provisioner=provisioner,
            )
        self.app: DatabaseUser = users[plan.app.name]
        self.migrator: DatabaseUser = users[plan.migrator.name]
        self.database: Database | None = None
        self.schema: Schema | None = None
        if not in_terraform:
            return  # the provisioner function applies the roles, the database and what is inside
        roles: dict[str, str] = {
            plan.owner.name: self.owner_role.name,
            plan.writer.name: self.writer_role.name,
            plan.reader.name: self.reader_role.name,
            **{name: user.name for name, user in users.items()},
            p.PUBLIC: p.PUBLIC,
        }

        self.database = Database(
            self,
            "database",
            name=plan.database.name,
            owner=self.owner_role.name,
            connection_limit=plan.database.connection_limit,
            lifecycle=KEEP,
            provider=postgresql_provider,
        )
        self.schema = Schema(
            self,
            "schema",
            name=plan.schema.name,
            database=self.database.name,
            owner=self.owner_role.name,
            lifecycle=KEEP,
            provider=postgresql_provider,
        )

        kinds = {role.name: str(role.kind) for role in plan.roles} | {p.PUBLIC: p.PUBLIC}
        memberships = Construct(self, "memberships")
        for membership in plan.memberships:
            GrantRole(
                memberships,
                f"{kinds[membership.member]}_in_{kinds[membership.role]}",
                role=roles[membership.member],
                grant_role=roles[membership.role],
                provider=postgresql_provider,
            )

        # The provider fails with "tuple concurrently updated" when two grants on one database
        # run at once (cyrilgdn/terraform-provider-postgresql#178, #223, #425): chain them.
        chained: list[TerraformResource] = []

        def after_previous() -> list[TerraformResource] | None:
            return chained[-1:] or None

        def schema_name(name: str | None) -> str | None:
            return self.schema.name if name == plan.schema.name else name

        grants = Construct(self, "grants")
        for grant in plan.grants:
            chained.append(
                Grant(
                    grants,
                    grant_id(grant, kinds[grant.grantee]),
                    database=self.database.name,
                    schema=schema_name(grant.schema),
                    object_type=str(grant.object_type),
                    role=roles[grant.grantee],
                    privileges=list(grant.privileges),
                    objects=list(grant.objects) or None,
                    depends_on=after_previous(),
                    provider=postgresql_provider,
                )
            )
        defaults = Construct(self, "default_privileges")
        for default in plan.default_privileges:
            chained.append(
                DefaultPrivileges(
                    defaults,
                    f"{default.object_type}_{kinds[default.grantee]}",
                    database=self.database.name,
                    schema=schema_name(default.schema),
                    owner=roles[default.owner],
                    object_type=str(default.object_type),
                    role=roles[default.grantee],
                    privileges=list(default.privileges),
                    depends_on=after_previous(),
                    provider=postgresql_provider,
                )
            )
        extensions = Construct(self, "extensions")
        for extension in plan.extensions:
            chained.append(
                Extension(
                    extensions,
                    extension.name.replace("-", "_"),
                    name=extension.name,
                    database=self.database.name,
                    schema=schema_name(extension.schema),
                    depends_on=after_previous(),
                    provider=postgresql_provider,
                )
            )

    @property
    def database_name(self) -> str:
        return self.database.name if self.database else self.plan.database.name

    @property
    def schema_name(self) -> str:
        return self.schema.name if self.schema else self.plan.schema.name

    @property
    def secret_arn(self) -> str | None:
        """The app user's secret; None once the service is retired."""
        return self.app.secret_arn

    @property
    def ecs_secrets(self) -> list[dict[str, str]]:
        """The app user's container `secrets` entries; empty once the service is retired."""
        return self.app.ecs_secrets

    def grant_read(self, consumer: "ServiceDatabase") -> GrantRole:
        """Let `consumer`'s app user read this service's tables: membership of the reader role."""
        if self.reader_role is None:
            raise ValueError(
                f"{self.plan.service}: with the lambda provisioner, reads are applied by the provisioner "
                f"function; declare Reads(service={self.plan.service!r}) on {consumer.plan.service} instead"
            )
        if self._readers is None:
            self._readers = Construct(self, "readers")
        return GrantRole(
            self._readers,
            consumer.plan.service,
            role=consumer.app.name,
            grant_role=self.reader_role.name,
            provider=self._postgresql_provider,
        )


def grant_id(grant: p.Grant, grantee: str) -> str:
    """`<object type>_<grantee kind>`; grants in the `public` schema start with `public_`."""
    prefix = "public_" if grant.schema == p.PUBLIC else ""
    return f"{prefix}{grant.object_type}_{grantee}"


class ServiceDatabases(Construct):
    """Every service of a plan, with the cross-service reads between them.

    The plan's environment says which provisioner applies the PostgreSQL side.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: p.Plan,
        postgresql_provider: TerraformProvider | None = None,
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.services: Mapping[str, ServiceDatabase] = {
            service.service: ServiceDatabase(
                self,
                service.service,
                plan=service,
                postgresql_provider=postgresql_provider,
                aws_provider=aws_provider,
                random_provider=random_provider,
                provisioner=plan.environment.provisioner,
            )
            for service in plan.services
        }
        by_reader = {s.plan.reader.name: s for s in self.services.values()}
        by_app = {s.plan.app.name: s for s in self.services.values()}
        self.reads: Sequence[GrantRole] = (
            [by_reader[read.role].grant_read(by_app[read.member]) for read in plan.reads]
            if plan.environment.provisioner == Provisioner.TERRAFORM
            else []
        )

    @property
    def users(self) -> list[DatabaseUser]:
        """Every login user, each service's app user then its migrator; a retired service has none."""
        return [
            user
            for service in self.services.values()
            for user in (service.app, service.migrator)
            if user.secret is not None
        ]
