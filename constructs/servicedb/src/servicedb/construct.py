"""The cdktf adapter: one service's plan, rendered as Terraform resources.

With the `terraform` provisioner (the default), the postgresql provider creates the roles, the
database, the schema and the grants. With `lambda`, the constructs create no postgresql resource:
the provisioner function applies those (`servicedb.lambda_provisioner`), and the passwords,
secrets, read policies and ECS wiring are the same resources at the same addresses.

Construct ids are part of the contract: a changed id is a destroyed and recreated resource, so
they are fixed snake_case names derived from the plan (never from tokens), and a test pins the
resulting resource addresses.

The postgresql resources, the secret versions and the IAM policies that read a secret are plain
data (`servicedb.resources`), written into the stack by one element: the same JSON as the
providers' resource classes write, without a round trip to jsii's node process for each resource
and reference.

With the `terraform` provisioner, what holds data or owns what does (the database, the schema,
the service's roles) has `prevent_destroy`: a plan that would destroy or replace it fails. Only a purged service's
resources may go, by leaving its construct out (`Plan.purged`). `prevent_destroy` does not cover
a resource whose block is gone from the configuration (hashicorp/terraform#17599): `servicedb.record`
refuses a deleted declaration before synth.
"""

from collections.abc import Mapping, Sequence

from cdktf import Fn, TerraformProvider
from cdktf_cdktf_provider_aws.data_aws_rds_cluster import DataAwsRdsCluster
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_random.password import Password
from constructs import Construct

from servicedb import plan as p
from servicedb.resources import Expression, Location, Resource, jsonencode, remember
from servicedb.scan import skip_check
from servicedb.spec import Provisioner

KEEP = {"prevent_destroy": True}
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


def ecs_secrets(secret_arn: str, *, prefix: str = "DB_", password: bool = True) -> list[dict[str, str]]:
    """Container `secrets` entries for an ECS task definition, one per key of the secret.

    Each `valueFrom` is `<secret arn>:<json key>::`, as CDK's `ecs.Secret.fromSecretsManager(secret,
    key)` writes it; `<prefix>SECRET` carries the whole JSON document. Without `password` (a user
    that logs in with IAM), there is no `<prefix>PASSWORD`: ECS refuses to start a task whose
    secret lacks a key it names.
    """
    keys = [(name, key) for name, key in ECS_SECRET_KEYS if password or key != "password"]
    entries = [{"name": f"{prefix}{name}", "valueFrom": f"{secret_arn}:{key}::"} for name, key in keys]
    entries.append({"name": f"{prefix}SECRET", "valueFrom": secret_arn})
    return entries


def login_role(
    scope: Construct,
    *,
    role: p.Role,
    secret: p.Secret | None,
    assume_role: str | None,
    location: Location | None,
    postgresql_provider: TerraformProvider | None,
    random_provider: TerraformProvider | None,
) -> tuple[Password | None, Expression | None, Resource | None]:
    """A login user's generated password (`password`) and its result, unless it logs in with IAM or
    has no secret (a retired service's user, NOLOGIN), and its role (`role`, at `location`) when
    Terraform is the provisioner (`location` is None otherwise). `assume_role` is the reference to
    the role it assumes.

    The role cannot be destroyed by a change that replaces it (`prevent_destroy`), except a
    break-glass role, which is meant to go."""
    password = None
    if secret is not None and not role.iam:
        password = Password(
            scope,
            "password",
            length=secret.password_length,
            special=True,
            override_special=PASSWORD_SPECIALS,
            min_lower=1,
            min_upper=1,
            min_numeric=1,
            # A new rotation, a new password; none before the first, so that existing passwords stay.
            keepers={"rotation": str(role.password_rotation)} if role.password_rotation else None,
            provider=random_provider,
        )
    # Each read of a resource's attribute is a round trip to jsii's node process: the password's
    # unique id, read once, gives its result's reference for the role and for the secret.
    result = Expression(f"random_password.{password.friendly_unique_id}.result") if password else None
    if location is None:
        return password, result, None
    return (
        password,
        result,
        location.add(
            "role",
            "postgresql_role",
            {
                "name": role.name,
                # A retired service's user has no secret and no login; a user that logs in with IAM has no secret.
                "login": role.login and (secret is not None or role.iam),
                "inherit": role.inherit,
                # No password for an IAM user: the provider creates it without one. It does not remove one
                # the user had (1.26 skips an empty password on update), and never gets the string "NULL",
                # which the provider reads as no password on create only and would set as one on update.
                "password": f"${{{result}}}" if result else None,
                "connection_limit": role.connection_limit,
                "statement_timeout": role.statement_timeout_ms,
                "idle_in_transaction_session_timeout": role.idle_in_transaction_timeout_ms,
                "search_path": list(role.search_path) or None,
                "assume_role": assume_role,
                "valid_until": role.valid_until_text if role.valid_until else None,
            },
            # Memberships are postgresql_grant_role resources; without this, the role would
            # revoke them on every other apply (cyrilgdn/terraform-provider-postgresql#583).
            lifecycle={"ignore_changes": ["roles"], "prevent_destroy": role.kind != p.RoleKind.TEMPORARY},
            provider=postgresql_provider,
        ),
    )


class DatabaseUser(Construct):
    """A login user: its role, generated password, Secrets Manager secret and who may read it.

    With IAM authentication (`role.iam`), no password: the secret has every other key, and
    `connect` names the task role that may log in as the user (`rds-db:connect`). With alternating
    rotation, `clone` is the second user of the pair (`clone_role`, `clone_password`), and the
    secret carries whichever is active (`secret.username`); its version depends on that user's
    role, so the new password is set before the secret points to it.

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
        assume_role: str | None = None,
        clone: p.Role | None = None,
        connect: p.DatabaseConnect | None = None,
        cluster_resource_id: str | None = None,
        postgresql_provider: TerraformProvider | None = None,
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
        provisioner: Provisioner = Provisioner.TERRAFORM,
    ) -> None:
        super().__init__(scope, id_)
        self.username = role.name
        """The user name, as a plain string (`name` is the resource's reference)."""
        self._secret_plan = secret
        self._connect_plan = connect
        self._cluster_resource_id = cluster_resource_id
        self._aws_provider = aws_provider
        self.secret: SecretsmanagerSecret | None = None
        self.secret_version: Resource | None = None
        self._secret_arn: str | None = None
        self._secret_address = ""

        providers = {
            "assume_role": assume_role,
            "postgresql_provider": postgresql_provider,
            "random_provider": random_provider,
        }
        self._location = remember(self, scope, id_)
        location = self._location if provisioner == Provisioner.TERRAFORM else None
        self.password: Password | None
        self.role: Resource | None
        self.password, result, self.role = login_role(self, role=role, secret=secret, location=location, **providers)
        self._name = self.role.name if self.role else role.name
        self.clone_password: Password | None = None
        self.clone_role: Resource | None = None
        clone_result = None
        if clone is not None:
            self.clone_password, clone_result, self.clone_role = login_role(
                Construct(self, "clone"),
                role=clone,
                secret=secret,
                location=location.below("clone") if location else None,
                **providers,
            )
        self.clone_name: str | None = self.clone_role.name if self.clone_role else None
        """The clone's role reference, with alternating rotation and Terraform as the provisioner."""
        if secret is None:
            return
        active_result, active_role = (
            (clone_result, self.clone_role)
            if clone is not None and secret.username == clone.name
            else (result, self.role)
        )
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
            "the user logs in with IAM tokens: the secret holds no password to rotate"
            if secret.iam
            else "Terraform owns the password (random_password); rotate it by raising the service's rotation, "
            "not with a rotation Lambda",
        )
        if secret.kms_key_arn is None:
            skip_check(
                self.secret,
                "CKV_AWS_149",
                "the environment sets no kms_key_arn, so the AWS managed key aws/secretsmanager encrypts it",
            )
        self._secret_address = f"aws_secretsmanager_secret.{self.secret.friendly_unique_id}"
        password_field = {"password": active_result} if active_result else {}
        self.secret_version = self._location.add(
            "secret_value",
            "aws_secretsmanager_secret_version",
            {
                "secret_id": f"${{{self._secret_address}.id}}",
                "secret_string": jsonencode({**secret.fields, **password_field}),
            },
            # The role has its (new) password before the secret hands it out.
            depends_on=[active_role] if active_role else None,
            provider=aws_provider,
        )
        if secret.reader_role is not None:
            self.grant_secret_read(secret.reader_role)
        if connect is not None:
            self.grant_connect(connect.role)

    @property
    def name(self) -> str:
        """The PostgreSQL user name: the role's reference, or the plain name when no role resource is made."""
        return self._name

    @property
    def secret_arn(self) -> str | None:
        """The secret's ARN; None for a retired service's user, which has no secret."""
        if self.secret is not None and self._secret_arn is None:
            self._secret_arn = self.secret.arn  # a round trip to jsii's node process: read once
        return self._secret_arn

    @property
    def ecs_secrets(self) -> list[dict[str, str]]:
        """Container `secrets` entries: `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`
        (not with IAM authentication), `DB_SECRET`.

        Empty for a retired service's user: nothing may read its database any more.
        """
        if self.secret is None or self._secret_plan is None:
            return []
        return ecs_secrets(self.secret_arn, password=not self._secret_plan.iam)

    def grant_secret_read(self, role_name: str, *, id_: str = "execution_role_policy") -> Resource:
        """Let the IAM role `role_name` read this secret and nothing else (`Secret.read_policy`).

        Give each further role its own `id_`. A retired service's user has no secret to read.
        """
        if self.secret is None or self._secret_plan is None:
            raise ValueError(f"{self.username} belongs to a retired service: it has no secret for {role_name} to read")
        arn = Expression(f"{self._secret_address}.arn")
        return self._location.add(
            id_,
            "aws_iam_role_policy",
            {
                "name": f"servicedb-{self._secret_plan.username}-secret-read",
                "role": role_name,
                "policy": jsonencode(self._secret_plan.read_policy(arn)),
            },
            provider=self._aws_provider,
        )

    def grant_connect(self, role_name: str, *, id_: str = "task_role_policy") -> IamRolePolicy:
        """Let the IAM role `role_name` log in as this user with an IAM token (`DatabaseConnect.policy`):
        `rds-db:connect` on exactly `dbuser:<cluster resource id>/<user>`. Only for a user that
        logs in with IAM; give each further role its own `id_`."""
        if self._connect_plan is None or self._cluster_resource_id is None:
            raise ValueError(f"{self.username} logs in with a password, not with IAM: no rds-db:connect to grant")
        return IamRolePolicy(
            self,
            id_,
            name=f"servicedb-{self.username}-connect",
            role=role_name,
            policy=Fn.jsonencode(self._connect_plan.policy(self._cluster_resource_id)),
            provider=self._aws_provider,
        )


class ServiceDatabase(Construct):
    """One service's isolated database access on a shared PostgreSQL cluster.

    Takes the service's plan (`servicedb.plan.plan_service`) and the providers to use; creates
    no provider itself. `app.ecs_secrets` and `migrator.ecs_secrets` are ready for a container
    definition's `secrets`. With `provisioner=Provisioner.LAMBDA` it creates only the users'
    passwords, secrets and read policies: the provisioner function applies the rest.

    With `auth="iam"`, the task roles' `rds-db:connect` policies name the cluster by its resource
    id: `cluster_resource_id`, or else an `aws_rds_cluster` data source read by the cluster
    identifier (`cluster`).

    With the `terraform` provisioner, `admin_role` (@default - the postgresql provider's
    `username`) is the role the provider logs in as; `cluster_admin`, the role that runs
    `servicedb verify` when it is another, becomes a member of the owner role and gets CONNECT on
    the database too (`memberships/cluster_admin_in_owner`, `grants/cluster_admin_connect`). The
    admin is made a member of the owner role (`memberships/admin_in_owner`) before the database
    is created, and everything the provider creates in the database depends on that: on RDS and
    Aurora the admin is not a superuser, and PostgreSQL silently ignores a `GRANT ... ON
    DATABASE` (the provider takes no owner's role for one) and refuses `CREATE EXTENSION` from a
    role that neither owns the database nor is a member of its owner. On PostgreSQL 16 the admin
    also holds, as the creator of every role, an ADMIN-only membership that lets it do neither;
    the provider may read that one back, so `with_admin_option`
    is ignored on the membership.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: p.ServicePlan,
        admin_role: str | None = None,
        cluster_admin: str | None = None,
        cluster_resource_id: str | None = None,
        postgresql_provider: TerraformProvider | None = None,
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
        provisioner: Provisioner = Provisioner.TERRAFORM,
    ) -> None:
        super().__init__(scope, id_)
        self.plan = plan
        self.provisioner = provisioner
        self.postgresql_provider = postgresql_provider
        """The provider that applies this service's PostgreSQL side; None with the lambda provisioner."""
        if plan.connects and cluster_resource_id is None:
            cluster_resource_id = cluster_resource_id_of(self, plan, aws_provider)
        self.cluster_resource_id = cluster_resource_id
        """The cluster's resource id, which IAM database authentication names; None without IAM."""

        in_terraform = provisioner == Provisioner.TERRAFORM
        self._location = remember(self, scope, id_) if in_terraform else None
        self.owner_role: Resource | None = None
        self.writer_role: Resource | None = None
        self.reader_role: Resource | None = None
        if self._location is not None:
            self.owner_role, self.writer_role, self.reader_role = (
                self._location.add(
                    f"{kind}_role",
                    "postgresql_role",
                    {"name": role.name, "login": False},
                    lifecycle=KEEP,
                    provider=postgresql_provider,
                )
                for kind, role in (("owner", plan.owner), ("writer", plan.writer), ("reader", plan.reader))
            )
        users = {}
        for role, clone, assume_role in (
            (plan.app, plan.app_clone, None),
            (plan.migrator, None, self.owner_role.name if self.owner_role else None),
        ):
            users[role.name] = DatabaseUser(
                self,
                str(role.kind),
                role=role,
                secret=plan.secret_for(role.name) if role.login else None,
                assume_role=assume_role,
                clone=clone,
                connect=next((c for c in plan.connects if c.username == role.name), None),
                cluster_resource_id=cluster_resource_id,
                postgresql_provider=postgresql_provider,
                aws_provider=aws_provider,
                random_provider=random_provider,
                provisioner=provisioner,
            )
        self.app: DatabaseUser = users[plan.app.name]
        self.migrator: DatabaseUser = users[plan.migrator.name]
        self.database: Resource | None = None
        self.schema: Resource | None = None
        self.admin_membership: Resource | None = None
        self._reader_name: str | None = None
        if self._location is None:
            return  # the provisioner function applies the roles, the database and what is inside
        assert self.owner_role and self.writer_role and self.reader_role
        location = self._location
        roles: dict[str, str] = {
            plan.owner.name: self.owner_role.name,
            plan.writer.name: self.writer_role.name,
            plan.reader.name: self.reader_role.name,
            **{name: user.name for name, user in users.items()},
            p.PUBLIC: p.PUBLIC,
            p.RDS_IAM: p.RDS_IAM,
        }
        if plan.app_clone is not None and self.app.clone_name is not None:
            roles[plan.app_clone.name] = self.app.clone_name
        self._reader_name = roles[plan.reader.name]

        memberships = location.below("memberships")
        admin = admin_role_of(plan, admin_role, postgresql_provider)
        self.admin_membership = memberships.add(
            "admin_in_owner",
            "postgresql_grant_role",
            {"role": admin, "grant_role": roles[plan.owner.name]},
            # PostgreSQL 16 refuses the admin option here ("cannot be granted back to your own
            # grantor"), and the provider reads back whichever membership row comes first: on 16,
            # the ADMIN-only one CREATEROLE gives the creator of a role. Without this, every plan
            # would replace the membership.
            lifecycle={"ignore_changes": ["with_admin_option"]},
            provider=postgresql_provider,
        )
        self.database = location.add(
            "database",
            "postgresql_database",
            {
                "name": plan.database.name,
                "owner": roles[plan.owner.name],
                "connection_limit": plan.database.connection_limit,
            },
            lifecycle=KEEP,
            # Everything inside the database depends on it, through the database's name.
            depends_on=[self.admin_membership],
            provider=postgresql_provider,
        )
        if cluster_admin is not None:
            # `servicedb verify` reads inside the database as a member of its owner.
            memberships.add(
                "cluster_admin_in_owner",
                "postgresql_grant_role",
                {"role": cluster_admin, "grant_role": roles[plan.owner.name]},
                provider=postgresql_provider,
            )
        database_name = self.database.name
        self.schema = location.add(
            "schema",
            "postgresql_schema",
            {"name": plan.schema.name, "database": database_name, "owner": roles[plan.owner.name]},
            lifecycle=KEEP,
            provider=postgresql_provider,
        )

        kinds = {role.name: str(role.kind) for role in plan.roles} | {p.PUBLIC: p.PUBLIC, p.RDS_IAM: p.RDS_IAM}
        for membership in plan.memberships:
            memberships.add(
                f"{kinds[membership.member]}_in_{kinds[membership.role]}",
                "postgresql_grant_role",
                {"role": roles[membership.member], "grant_role": roles[membership.role]},
                provider=postgresql_provider,
            )

        # The provider fails with "tuple concurrently updated" when two grants on one database
        # run at once (cyrilgdn/terraform-provider-postgresql#178, #223, #425): chain them.
        chained: list[Resource] = []

        def chain(under: Location, id_: str, terraform_resource_type: str, attributes: dict) -> None:
            chained.append(
                under.add(
                    id_,
                    terraform_resource_type,
                    {"database": database_name, **attributes},
                    depends_on=chained[-1:],
                    provider=postgresql_provider,
                )
            )

        schema_reference = self.schema.name

        def schema_name(name: str | None) -> str | None:
            return schema_reference if name == plan.schema.name else name

        grants = location.below("grants")
        for grant in plan.grants:
            if grant.object_type == p.ObjectType.FUNCTION:
                # Functions that exist already are the SQL path's (`servicedb apply`): the provider
                # reads back every routine in the schema, an extension's too, which the owner cannot
                # grant on, and would plan the grant again forever. A database Terraform creates has
                # none of the owner's; the default privileges below cover what the migrator creates.
                continue
            chain(
                grants,
                grant_id(grant, kinds[grant.grantee]),
                "postgresql_grant",
                {
                    "schema": schema_name(grant.schema),
                    "object_type": str(grant.object_type),
                    "role": roles[grant.grantee],
                    "privileges": list(grant.privileges),
                    "objects": list(grant.objects) or None,
                },
            )
        # The admin's own CONNECT (`grants/admin_connect`): PostgreSQL finds a direct grant before it
        # walks the admin's memberships, one or more per service, at every connection.
        chain(
            grants,
            "admin_connect",
            "postgresql_grant",
            {"object_type": "database", "role": admin, "privileges": ["CONNECT"]},
        )
        if cluster_admin is not None:
            # The environment's admin, when one of its `terraform_logins` applies this service.
            chain(
                grants,
                "cluster_admin_connect",
                "postgresql_grant",
                {"object_type": "database", "role": cluster_admin, "privileges": ["CONNECT"]},
            )
        defaults = location.below("default_privileges")
        for default in plan.default_privileges:
            chain(
                defaults,
                f"{default.object_type}_{kinds[default.grantee]}",
                "postgresql_default_privileges",
                {
                    # None: in every schema, where PUBLIC's EXECUTE on new functions is taken away.
                    "schema": schema_name(default.schema),
                    "owner": roles[default.owner],
                    "object_type": str(default.object_type),
                    "role": roles[default.grantee],
                    "privileges": list(default.privileges),
                },
            )
        extensions = location.below("extensions")
        for extension in plan.extensions:
            chain(
                extensions,
                extension.name.replace("-", "_"),
                "postgresql_extension",
                {"name": extension.name, "schema": schema_name(extension.schema)},
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

    def grant_read(self, consumer: "ServiceDatabase") -> list[Resource]:
        """Let `consumer`'s app user, and its clone with alternating rotation, read this service's
        tables: membership of the reader role (`readers/<consumer>`, `clone_readers/<consumer>`)."""
        if self._location is None or self._reader_name is None:
            raise ValueError(
                f"{self.plan.service}: with the lambda provisioner, reads are applied by the provisioner "
                f"function; declare Reads(service={self.plan.service!r}) on {consumer.plan.service} instead"
            )
        grants = []
        users = (("readers", consumer.app.role and consumer.app.name), ("clone_readers", consumer.app.clone_name))
        for namespace, user in users:
            if user is None:
                continue
            grants.append(
                self._location.below(namespace).add(
                    consumer.plan.service,
                    "postgresql_grant_role",
                    {"role": user, "grant_role": self._reader_name},
                    provider=self.postgresql_provider,
                )
            )
        return grants


def admin_role_of(plan: p.ServicePlan, admin_role: str | None, provider: TerraformProvider | None) -> str:
    """The role the postgresql provider logs in as: `admin_role`, or the provider's `username`."""
    admin_role = admin_role or getattr(provider, "username", None)
    if not admin_role:
        raise ValueError(
            f"{plan.service}: give ServiceDatabase the role the postgresql provider logs in as "
            "(admin_role=..., or a provider with username=...): it must be a member of the owner role "
            f"{plan.owner.name} to grant on the database and create extensions"
        )
    return admin_role


def provider_login_of(service: str, logins: int) -> int:
    """Which of `logins` provider logins applies `service`: `plan.share_of` its name, so that a
    service keeps its login whatever services come and go, as long as the number stays."""
    return p.share_of(service, logins)


def cluster_resource_id_of(scope: Construct, plan: p.ServicePlan, aws_provider: TerraformProvider | None) -> str:
    """The cluster's resource id (`cluster-...`), which IAM database authentication names, read by
    an `aws_rds_cluster` data source (`cluster`) from the cluster identifier in the plan's secrets."""
    return DataAwsRdsCluster(
        scope, "cluster", cluster_identifier=plan.secrets[0].cluster_identifier, provider=aws_provider
    ).cluster_resource_id


def grant_id(grant: p.Grant, grantee: str) -> str:
    """`<object type>_<grantee kind>`; grants in the `public` schema start with `public_`."""
    prefix = "public_" if grant.schema == p.PUBLIC else ""
    return f"{prefix}{grant.object_type}_{grantee}"


class ServiceDatabases(Construct):
    """Every service of a plan, with the cross-service reads between them.

    The plan's environment says which provisioner applies the PostgreSQL side. With services that
    log in with IAM, one `aws_rds_cluster` data source (`cluster`) gives them the cluster's
    resource id, unless `cluster_resource_id` is given.

    With `login_providers` (one postgresql provider per login, each with a `username`), each
    service is applied by one of them (`provider_login_of`) instead of `postgresql_provider`,
    whose user (`admin_role`) is then made a member of every owner role, with CONNECT on every
    database, for `servicedb verify`. A role's ADMIN stays with the login that created it, so a
    read of another service is granted through the other's login.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: p.Plan,
        admin_role: str | None = None,
        cluster_resource_id: str | None = None,
        postgresql_provider: TerraformProvider | None = None,
        login_providers: Sequence[TerraformProvider] = (),
        aws_provider: TerraformProvider | None = None,
        random_provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        if plan.environment.provisioner == Provisioner.TERRAFORM:
            admin_role = admin_role or getattr(postgresql_provider, "username", None)  # read once, not per service
        if cluster_resource_id is None and any(service.connects for service in plan.services):
            cluster_resource_id = cluster_resource_id_of(self, plan.services[0], aws_provider)
        # Each login's provider and the role it logs in as, read once; the admin then keeps CONNECT
        # and the owners' membership, for verify.
        logins = [(provider, provider.username) for provider in login_providers] or [(postgresql_provider, admin_role)]
        cluster_admin = admin_role if login_providers else None
        services: dict[str, ServiceDatabase] = {}
        for service in plan.services:
            provider, login = logins[provider_login_of(service.service, len(logins))]
            services[service.service] = ServiceDatabase(
                self,
                service.service,
                plan=service,
                admin_role=login,
                cluster_admin=cluster_admin,
                cluster_resource_id=cluster_resource_id,
                postgresql_provider=provider,
                aws_provider=aws_provider,
                random_provider=random_provider,
                provisioner=plan.environment.provisioner,
            )
        self.services: Mapping[str, ServiceDatabase] = services
        by_reader = {s.plan.reader.name: s for s in self.services.values()}
        by_user = {user.name: s for s in self.services.values() for user in s.plan.app_users}
        # One grant_read per reading service: it covers the app user and its clone.
        pairs = dict.fromkeys((by_reader[read.role], by_user[read.member]) for read in plan.reads)
        self.reads: Sequence[Resource] = (
            [grant for producer, consumer in pairs for grant in producer.grant_read(consumer)]
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
