"""The wanted state: pure values computed from validated declarations.

Every adapter (the cdktf construct today; SQL and inspection later) renders from these values,
so the Terraform resources and the SQL can never disagree. Nothing here imports cdktf.

A `Grant` is authoritative, as the postgresql provider's `postgresql_grant` is: the grantee holds
exactly `privileges` on the objects, so a Grant with no privileges is a REVOKE of everything.
"""

import dataclasses
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from servicedb.access import AccessLevel, AccessStatus, TemporaryAccess, current_time, find_access_problems
from servicedb.errors import DeclarationError, Problem
from servicedb.spec import (
    Auth,
    Environment,
    RotationStrategy,
    Service,
    app_users,
    environment_problems,
    service_problems,
    subject,
    validate,
)

DECLARED_IN_CODE = "<declared in code>"

PUBLIC = "public"
"""The pseudo-role every role belongs to; also the name of the default schema."""

RDS_IAM = "rds_iam"
"""The role Aurora and RDS give; its members log in with IAM authentication tokens only."""

WRITE_PRIVILEGES = {
    "table": frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}),
    "sequence": frozenset({"USAGE", "UPDATE"}),  # USAGE allows nextval()
}

TABLE_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_DML = ("USAGE", "SELECT", "UPDATE")
ROUTINE_USE = ("EXECUTE",)

DATABASE_ADMIN_RESERVE = 3
"""Connections a service's database keeps beyond its users' limits, for operators."""


class ObjectType(StrEnum):
    DATABASE = "database"
    SCHEMA = "schema"
    TABLE = "table"
    SEQUENCE = "sequence"
    FUNCTION = "function"
    """Functions and procedures (routines): EXECUTE."""


class RoleKind(StrEnum):
    OWNER = "owner"
    """NOLOGIN; owns the database, the schema and every table in it. The DDL role."""
    APP = "app"
    """LOGIN; reads and writes the service's tables (DML only), as a member of the writer role."""
    APP_CLONE = "app_clone"
    """LOGIN; with alternating rotation, the app user's twin: the same memberships and settings."""
    MIGRATOR = "migrator"
    """LOGIN, NOINHERIT; becomes the owner at login, so everything it creates is the owner's."""
    WRITER = "writer"
    """NOLOGIN; DML on the service's tables and sequences, granted to the service's own app user."""
    READER = "reader"
    """NOLOGIN; SELECT on the service's tables, granted to other services' app users."""
    TEMPORARY = "temporary"
    """LOGIN until `valid_until`: a person's break-glass access, as a member of one service's reader or writer role."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Role:
    name: str
    kind: RoleKind
    login: bool
    inherit: bool = True
    connection_limit: int = -1
    statement_timeout_ms: int | None = None
    idle_in_transaction_timeout_ms: int | None = None
    search_path: tuple[str, ...] = ()
    assume_role: str | None = None
    iam: bool = False
    """Logs in with IAM authentication tokens: a member of `rds_iam`, without a password."""
    password_rotation: int = 0
    """The rotation its password was generated for; a new one means a new password."""

    valid_until: datetime | None = None
    """PostgreSQL refuses the role's logins after this (`VALID UNTIL`); None: never."""

    @property
    def valid_until_text(self) -> str:
        """`valid_until` as PostgreSQL prints it in UTC (`2026-12-01 13:00:00+00`), or `infinity`.

        The postgresql provider compares its `valid_until` with `rolvaliduntil::text`, so this is the
        form that shows no difference on a cluster whose time zone is UTC (Aurora's default).
        """
        if self.valid_until is None:
            return "infinity"
        return self.valid_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00")


@dataclass(frozen=True, kw_only=True, slots=True)
class Database:
    name: str
    owner: str
    connection_limit: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Schema:
    database: str
    name: str
    owner: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Grant:
    """`grantee` holds exactly `privileges` on `objects` (all of them when empty)."""

    database: str
    schema: str | None
    object_type: ObjectType
    grantee: str
    privileges: tuple[str, ...]
    objects: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """What the grant is on, in words: `database orders`, `tables in orders.orders`, ..."""
        return {
            ObjectType.DATABASE: f"database {self.database}",
            ObjectType.SCHEMA: f"schema {self.database}.{self.schema}",
            ObjectType.TABLE: f"tables in {self.database}.{self.schema}",
            ObjectType.SEQUENCE: f"sequences in {self.database}.{self.schema}",
            ObjectType.FUNCTION: f"functions and procedures in {self.database}.{self.schema}",
        }[self.object_type]

    @property
    def description(self) -> str:
        if not self.privileges:
            return f"{self.grantee} holds nothing on {self.target}"
        return f"{self.grantee} holds {', '.join(self.privileges)} on {self.target}"


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultPrivilege:
    """What `grantee` gets on objects that `owner` creates later in the schema; with no schema, in
    any schema of the database, which is the only way to take from PUBLIC what PostgreSQL gives it
    by default (EXECUTE on functions): defaults in a schema only add to those."""

    database: str
    schema: str | None
    owner: str
    object_type: ObjectType
    grantee: str
    privileges: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Membership:
    """`member` is granted `role`."""

    member: str
    role: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Extension:
    database: str
    schema: str
    name: str


def secret_read_statements(
    secret_arns: list[str], *, kms_key_arn: str | None, region: str, sid: str = "DatabaseSecret"
) -> list[dict[str, object]]:
    """IAM statements: `secretsmanager:GetSecretValue` on exactly `secret_arns`, and `kms:Decrypt`
    on the customer key, when there is one, only as Secrets Manager asks for it (`kms:ViaService`)."""
    statements: list[dict[str, object]] = [
        {
            "Sid": f"Read{sid}",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": secret_arns,
        }
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": f"Decrypt{sid}",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": [kms_key_arn],
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            }
        )
    return statements


@dataclass(frozen=True, kw_only=True, slots=True)
class Secret:
    """A Secrets Manager secret in the RDS JSON shape; its password is generated at deploy, and
    there is none for a user that logs in with IAM."""

    name: str
    username: str
    database: str
    host: str
    port: int
    cluster_identifier: str
    region: str
    kms_key_arn: str | None
    recovery_window_days: int
    password_length: int
    reader_role: str | None
    """Name of the one IAM role (an ECS task execution role) allowed to read it; None when
    `reader_principal_arn` reads it instead."""
    reader_principal_arn: str | None = None
    """The one IAM principal the secret's resource policy lets read it (a person's, for break-glass
    access). @default - none: `reader_role` reads it."""
    iam: bool = False
    """The user logs in with IAM authentication tokens: the secret has no password."""
    inactive_user: str | None = None
    """With alternating rotation, the other user of the pair, which the secret does not carry now:
    it keeps its previous password until the next rotation."""

    @property
    def users(self) -> tuple[str, ...]:
        """The login users whose credentials the secret carries now or carried last."""
        return (self.username,) if self.inactive_user is None else (self.username, self.inactive_user)

    def read_policy(self, secret_arn: str) -> dict[str, object]:
        """The IAM policy that lets `reader_role` read this secret, given the secret's ARN.

        `secretsmanager:GetSecretValue` on exactly this secret, and `kms:Decrypt` on the customer
        key only when Secrets Manager asks for it (`kms:ViaService`). No wildcard resource.
        """
        statements = secret_read_statements([secret_arn], kms_key_arn=self.kms_key_arn, region=self.region)
        return {"Version": "2012-10-17", "Statement": statements}

    def resource_policy(self, secret_arn: str) -> dict[str, object]:
        """The secret's resource policy: `reader_principal_arn` may read exactly this secret."""
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadTemporaryAccessSecret",
                    "Effect": "Allow",
                    "Principal": {"AWS": self.reader_principal_arn},
                    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    "Resource": secret_arn,
                }
            ],
        }

    @property
    def fields(self) -> dict[str, str | int]:
        """Every key of the secret's JSON but the password, in the RDS shape."""
        return {
            "engine": "postgres",
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "username": self.username,
            "dbClusterIdentifier": self.cluster_identifier,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseConnect:
    """An IAM role (an ECS task role) may log in as `username` with an IAM authentication token."""

    username: str
    role: str
    """Name of the IAM role that gets `rds-db:connect`."""
    region: str
    account_id: str

    def resource(self, cluster_resource_id: str) -> str:
        """`arn:aws:rds-db:<region>:<account>:dbuser:<cluster resource id>/<user>`."""
        return (
            f"arn:{partition(self.region)}:rds-db:{self.region}:{self.account_id}:"
            f"dbuser:{cluster_resource_id}/{self.username}"
        )

    def policy(self, cluster_resource_id: str) -> dict[str, object]:
        """`rds-db:connect` as exactly this user on exactly this cluster; no wildcard."""
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ConnectAsDatabaseUser",
                    "Effect": "Allow",
                    "Action": ["rds-db:connect"],
                    "Resource": [self.resource(cluster_resource_id)],
                }
            ],
        }


def partition(region: str) -> str:
    """The AWS partition of a region: `aws`, or `aws-cn` and `aws-us-gov` for those regions."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True, kw_only=True, slots=True)
class ServicePlan:
    service: str
    database: Database
    schema: Schema
    owner: Role
    app: Role
    migrator: Role
    writer: Role
    reader: Role
    grants: tuple[Grant, ...]
    default_privileges: tuple[DefaultPrivilege, ...]
    memberships: tuple[Membership, ...]
    extensions: tuple[Extension, ...]
    secrets: tuple[Secret, ...]
    """One per login kind: the app user's (or the active one of the pair) first, then the migrator's."""
    app_clone: Role | None = None
    """With alternating rotation, the app user's twin."""
    connects: tuple[DatabaseConnect, ...] = ()
    """With `auth="iam"`, one per login user: the task role that may log in as it."""
    retired: bool = False
    """The data stays, nobody logs in: the app and migrator roles are NOLOGIN and have no secret."""

    @property
    def roles(self) -> tuple[Role, ...]:
        clone = (self.app_clone,) if self.app_clone else ()
        return (self.owner, self.app, *clone, self.migrator, self.writer, self.reader)

    @property
    def login_users(self) -> tuple[Role, ...]:
        return tuple(role for role in self.roles if role.login)

    @property
    def app_users(self) -> tuple[Role, ...]:
        """The app user, and its clone with alternating rotation: both get the app's rights."""
        return (self.app, self.app_clone) if self.app_clone else (self.app,)

    def login_user(self, name: str) -> Role:
        return next(user for user in self.login_users if user.name == name)

    def secret_for(self, username: str) -> Secret:
        """The secret that carries `username` now, or carried it last (the inactive user of a pair)."""
        return next(secret for secret in self.secrets if username in secret.users)


@dataclass(frozen=True, kw_only=True, slots=True)
class TemporaryAccessPlan:
    """A live break-glass grant (`access/*.py`): a login role that is a member of one service's
    reader role (or writer role) until `role.valid_until`, and its secret; or, for a service that
    logs in with IAM, a member of `rds_iam` without password or secret, and `connect`: the person's
    principal may log in as it with an IAM token."""

    access: TemporaryAccess
    role: Role
    membership: Membership
    secret: Secret | None
    """None with IAM authentication: no password to keep."""
    iam_membership: Membership | None = None
    """The role's membership of `rds_iam`, with IAM authentication."""
    connect: DatabaseConnect | None = None
    """With IAM authentication: `rds-db:connect` as the role, for the person's principal."""

    @property
    def principal_name(self) -> str:
        """The principal's name (the last part of its ARN), which its IAM policy is attached to."""
        return self.access.principal_arn.rsplit("/", 1)[-1]

    @property
    def principal_is_user(self) -> bool:
        return ":user/" in self.access.principal_arn

    @property
    def service(self) -> str:
        return self.access.service


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    environment: Environment
    services: tuple[ServicePlan, ...]
    reads: tuple[Membership, ...]
    """Cross-service read access: a consumer's app user is granted a producer's reader role."""
    temporary: tuple[TemporaryAccessPlan, ...] = ()
    """The break-glass grants live when the plan was made. @default - none."""
    purged: tuple[str, ...] = ()
    """Services declared `purge=True`: nothing of them is wanted, their database and roles are dropped."""

    def service(self, name: str) -> ServicePlan:
        for service in self.services:
            if service.service == name:
                return service
        raise KeyError(name)

    @property
    def grants(self) -> tuple[Grant, ...]:
        return tuple(grant for service in self.services for grant in service.grants)

    @property
    def memberships(self) -> tuple[Membership, ...]:
        service_memberships = tuple(m for service in self.services for m in service.memberships)
        temporary = tuple(m for grant in self.temporary for m in (grant.membership, grant.iam_membership) if m)
        return service_memberships + self.reads + temporary

    @property
    def roles(self) -> tuple[Role, ...]:
        """Every managed role: the services', then the temporary ones."""
        return tuple(role for s in self.services for role in s.roles) + tuple(g.role for g in self.temporary)

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """One per login user: the services' users', then the temporary roles'."""
        temporary = tuple(g.secret for g in self.temporary if g.secret is not None)
        return tuple(secret for s in self.services for secret in s.secrets) + temporary


def role_name(service: str, kind: RoleKind) -> str:
    return f"{service}_{kind}"


def app_user_names(service: Service) -> tuple[str, ...]:
    """The app user, and its clone with alternating rotation."""
    kinds = (RoleKind.APP, RoleKind.APP_CLONE)[: app_users(service)]
    return tuple(role_name(service.name, kind) for kind in kinds)


def alternating_rotations(rotation: int) -> tuple[int, int]:
    """The rotations at which the app user and its clone last got a new password.

    The app user is the active one at even rotations, the clone at odd ones. Each gets a new
    password only when it becomes active again, so the other keeps its own for one more rotation:
    the latest even and the latest odd rotation up to `rotation`, and 0 before the first.
    """
    even = rotation - rotation % 2
    odd = rotation if rotation % 2 else max(rotation - 1, 0)
    return even, odd


def share_of(service: str, shares: int) -> int:
    """Which of `shares` a service falls in: a CRC-32 of its name, so that a service keeps its
    share whatever services come and go, as long as the number of shares stays."""
    return zlib.crc32(service.encode()) % shares


MANAGER_GROUPS = 128
"""How many managers `servicedb apply` spreads the services over. Never change it: a service keeps
its manager only as long as the number stays (a new one would need ADMIN on its roles again)."""


def manager_name(service: str) -> str:
    """`servicedb_manager_<n>`: the manager of a group of services, chosen by `share_of` the
    service's name, so that a service keeps its manager whatever services come and go. NOLOGIN,
    CREATEROLE, a role only the admin may become: `servicedb apply` creates and alters the
    service's roles through it, so that they are its roles, not the admin's.

    Not part of the plan (Terraform has none). On PostgreSQL 16, a role that is not a superuser may
    alter a role only if it holds ADMIN on it, and checking that walks every membership of the
    acting role: for an admin that created thousands of roles, milliseconds more for every hundred
    services on each ALTER ROLE and GRANT. A manager holds the roles of a few services. And the
    admin's SET ROLE to a manager, after any change of roles, walks every role the admin may
    become: one walk per group of services, not one per service.
    """
    return f"servicedb_manager_{share_of(service, MANAGER_GROUPS):03d}"


def legacy_manager_name(service: str) -> str:
    """`<service>_manager`: the manager of one service, as `servicedb apply` made them before
    `manager_name`'s groups. Where one exists, apply goes on using it for its service (its grants
    name it as their grantor, so it cannot simply be dropped), and drops it with a purged service."""
    return f"{service}_manager"


def role_names(service: str) -> tuple[str, ...]:
    """Every role a service may have (its alternating app user's clone too), the owner last: the
    order to drop them in. Break-glass roles are not the service's: `servicedb expire` drops them."""
    others = tuple(role_name(service, kind) for kind in RoleKind if kind not in (RoleKind.OWNER, RoleKind.TEMPORARY))
    return (*others, role_name(service, RoleKind.OWNER))


def plan_service(service: Service, environment: Environment, *, consumers: Iterable[Service] = ()) -> ServicePlan:
    """The wanted state of one service; `consumers` are the services that read it.

    Raises `DeclarationError` when the service or the environment is invalid. Reads of other
    services become memberships only through `plan_services`, which sees all of them.
    """
    problems = service_problems(service, source=DECLARED_IN_CODE)
    problems += environment_problems(environment, source=DECLARED_IN_CODE)
    if not problems and service.purge:
        problems.append(
            Problem(
                source=DECLARED_IN_CODE,
                subject=subject(service),
                at="purge",
                message="a purged service has no plan: leave its construct out, and its resources are destroyed",
            )
        )
    if problems:
        raise DeclarationError(problems)
    return wanted_service(service, environment, consumers=consumers)


def wanted_service(
    service: Service,
    environment: Environment,
    *,
    consumers: Iterable[Service],
    temporary: Iterable[TemporaryAccess] = (),
) -> ServicePlan:
    """`plan_service` for declarations that were already validated; `temporary` are the live
    break-glass grants on this service, whose connections the database makes room for."""
    name = service.name
    login = not service.retired
    iam = service.auth == Auth.IAM
    rotation = 0 if iam else environment.rotation_of(service)
    alternating = service.rotation_strategy == RotationStrategy.ALTERNATING
    app_rotation, clone_rotation = alternating_rotations(rotation) if alternating else (rotation, rotation)
    owner = Role(name=role_name(name, RoleKind.OWNER), kind=RoleKind.OWNER, login=False)
    app = Role(
        name=role_name(name, RoleKind.APP),
        kind=RoleKind.APP,
        login=login,
        connection_limit=service.connection_limit,
        statement_timeout_ms=service.statement_timeout_ms,
        idle_in_transaction_timeout_ms=service.idle_in_transaction_timeout_ms,
        search_path=(name,),
        iam=iam,
        password_rotation=app_rotation,
    )
    clone = (
        dataclasses.replace(
            app, name=role_name(name, RoleKind.APP_CLONE), kind=RoleKind.APP_CLONE, password_rotation=clone_rotation
        )
        if alternating
        else None
    )
    active, inactive = (clone, app) if clone and rotation % 2 else (app, clone)
    migrator = Role(
        name=role_name(name, RoleKind.MIGRATOR),
        kind=RoleKind.MIGRATOR,
        login=login,
        inherit=False,
        connection_limit=service.migrator_connection_limit,
        statement_timeout_ms=service.migration_statement_timeout_ms,
        search_path=(name,),
        assume_role=owner.name,
        iam=iam,
        password_rotation=rotation,
    )
    writer = Role(name=role_name(name, RoleKind.WRITER), kind=RoleKind.WRITER, login=False)
    reader = Role(name=role_name(name, RoleKind.READER), kind=RoleKind.READER, login=False)

    # Both users of an alternating pair may be connected at once while tasks are replaced.
    consumer_connections = sum(app_users(consumer) * consumer.connection_limit for consumer in consumers)
    app_connections = app_users(service) * service.connection_limit
    temporary_connections = sum(access.connection_limit for access in temporary)
    database = Database(
        name=name,
        owner=owner.name,
        connection_limit=(
            app_connections
            + service.migrator_connection_limit
            + consumer_connections
            + temporary_connections
            + DATABASE_ADMIN_RESERVE
        ),
    )
    schema = Schema(database=name, name=name, owner=owner.name)

    def on_database(grantee: str, *privileges: str) -> Grant:
        return Grant(
            database=name, schema=None, object_type=ObjectType.DATABASE, grantee=grantee, privileges=privileges
        )

    def on_schema(schema_name: str, grantee: str, *privileges: str) -> Grant:
        return Grant(
            database=name, schema=schema_name, object_type=ObjectType.SCHEMA, grantee=grantee, privileges=privileges
        )

    def on_all(object_type: ObjectType, grantee: str, privileges: tuple[str, ...]) -> Grant:
        return Grant(database=name, schema=name, object_type=object_type, grantee=grantee, privileges=privileges)

    def later(object_type: ObjectType, grantee: str, privileges: tuple[str, ...]) -> DefaultPrivilege:
        return DefaultPrivilege(
            database=name,
            schema=name,
            owner=owner.name,
            object_type=object_type,
            grantee=grantee,
            privileges=privileges,
        )

    grants = (
        # REVOKE ALL ON DATABASE ... FROM PUBLIC: no CONNECT, no TEMPORARY for anyone undeclared.
        on_database(PUBLIC),
        # REVOKE CREATE ON SCHEMA public FROM PUBLIC (PostgreSQL < 15 grants it by default).
        on_schema(PUBLIC, PUBLIC, "USAGE"),
        on_database(migrator.name, "CONNECT"),
        on_database(writer.name, "CONNECT"),
        on_database(reader.name, "CONNECT"),
        on_schema(name, migrator.name, "USAGE"),
        on_schema(name, writer.name, "USAGE"),
        on_schema(name, reader.name, "USAGE"),
        on_all(ObjectType.TABLE, writer.name, TABLE_DML),
        on_all(ObjectType.SEQUENCE, writer.name, SEQUENCE_DML),
        on_all(ObjectType.TABLE, reader.name, ("SELECT",)),
        on_all(ObjectType.SEQUENCE, reader.name, ("SELECT",)),
        # The owner's functions and procedures: the service's own app calls them, and nobody else.
        # A SECURITY DEFINER function runs as the owner: EXECUTE for PUBLIC (PostgreSQL's default)
        # would let every reader write through it. Readers get no EXECUTE.
        on_all(ObjectType.FUNCTION, PUBLIC, ()),
        on_all(ObjectType.FUNCTION, writer.name, ROUTINE_USE),
    )
    default_privileges = (
        later(ObjectType.TABLE, writer.name, TABLE_DML),
        later(ObjectType.SEQUENCE, writer.name, SEQUENCE_DML),
        later(ObjectType.TABLE, reader.name, ("SELECT",)),
        later(ObjectType.SEQUENCE, reader.name, ("SELECT",)),
        # For every schema of the database: PUBLIC's EXECUTE is a default in no schema.
        dataclasses.replace(later(ObjectType.FUNCTION, PUBLIC, ()), schema=None),
        later(ObjectType.FUNCTION, writer.name, ROUTINE_USE),
    )

    def secret(user: Role, reader_role: str, inactive_user: Role | None = None) -> Secret:
        return environment_secret(
            environment,
            name=f"{environment.secret_prefix}{name}/{RoleKind.APP if user.kind == RoleKind.APP_CLONE else user.kind}",
            username=user.name,
            database=name,
            reader_role=reader_role,
            iam=user.iam,
            inactive_user=inactive_user.name if inactive_user else None,
        )

    def connect(user: Role, task_role: str) -> DatabaseConnect:
        return DatabaseConnect(
            username=user.name, role=task_role, region=environment.region, account_id=environment.account_id
        )

    app_users_of_service = (app, clone) if clone else (app,)
    return ServicePlan(
        service=name,
        database=database,
        schema=schema,
        owner=owner,
        app=app,
        migrator=migrator,
        writer=writer,
        reader=reader,
        grants=grants,
        default_privileges=default_privileges,
        memberships=(
            Membership(member=migrator.name, role=owner.name),
            *(Membership(member=user.name, role=writer.name) for user in app_users_of_service),
            *(Membership(member=user.name, role=RDS_IAM) for user in (app, migrator) if iam and login),
        ),
        extensions=tuple(Extension(database=name, schema=name, name=e) for e in service.extensions),
        secrets=()
        if service.retired
        else (
            secret(active, environment.execution_role_for(service), inactive),
            secret(migrator, environment.migration_execution_role_for(service)),
        ),
        app_clone=clone,
        connects=(
            (
                connect(app, environment.task_role_for(service)),
                connect(migrator, environment.migration_task_role_for(service)),
            )
            if iam and login
            else ()
        ),
        retired=service.retired,
    )


def environment_secret(
    environment: Environment,
    *,
    name: str,
    username: str,
    database: str,
    reader_role: str | None,
    reader_principal_arn: str | None = None,
    recovery_window_days: int | None = None,
    iam: bool = False,
    inactive_user: str | None = None,
) -> Secret:
    """The secret of `username` in `environment`'s cluster, read by `reader_role` or by
    `reader_principal_arn`; `recovery_window_days` defaults to the environment's."""
    return Secret(
        name=name,
        username=username,
        database=database,
        host=environment.endpoint,
        port=environment.port,
        cluster_identifier=environment.cluster_identifier,
        region=environment.region,
        kms_key_arn=environment.kms_key_arn,
        recovery_window_days=(
            environment.secret_recovery_window_days if recovery_window_days is None else recovery_window_days
        ),
        password_length=environment.password_length,
        reader_role=reader_role,
        reader_principal_arn=reader_principal_arn,
        iam=iam,
        inactive_user=inactive_user,
    )


def plan_services(
    services: Iterable[Service],
    environment: Environment,
    *,
    access: Iterable[TemporaryAccess] = (),
    now: datetime | None = None,
) -> Plan:
    """The wanted state of all services in one environment; raises `DeclarationError` if invalid.

    `access` are break-glass grants, of any environment: those of this one that are live at `now`
    are planned, and the others create nothing. `now` defaults to the current time
    (`$SERVICEDB_NOW` when set).
    """
    declared = tuple(services)
    validate([(s, DECLARED_IN_CODE) for s in declared], [(environment, DECLARED_IN_CODE)])
    services = tuple(s for s in declared if not s.purge)
    # A retired service's app user cannot log in: it reads nothing.
    readers = tuple(s for s in services if not s.retired)
    here = [a for a in access if getattr(a, "environment", None) == environment.name]
    problems = find_access_problems(
        [(a, DECLARED_IN_CODE) for a in here],
        services={s.name for s in services},
        environments={environment.name: environment},
    )
    if problems:
        raise DeclarationError(problems)
    if here and now is None:
        now = current_time()
    live = [a for a in here if a.status(now) == AccessStatus.LIVE]
    by_name = {service.name: service for service in services}
    cross_account = [
        Problem(
            source=DECLARED_IN_CODE,
            subject=f"TemporaryAccess(person={a.person!r}, service={a.service!r})",
            at="principal_arn",
            message=f"{a.service} logs in with IAM: the principal's rds-db:connect policy is attached in its own "
            f"account, which must be {environment.name}'s ({environment.account_id}), got {a.principal_arn!r}",
        )
        for a in here
        if by_name[a.service].auth == Auth.IAM and a.principal_arn.split(":")[4] != environment.account_id
    ]
    if cross_account:
        raise DeclarationError(cross_account)
    # Who reads each service, in one pass over the reads: linear in services and reads.
    consumers: dict[str, list[Service]] = {service.name: [] for service in services}
    for reader in readers:
        for read in dict.fromkeys(read.service for read in reader.reads):
            consumers[read].append(reader)
    result = Plan(
        environment=environment,
        services=tuple(
            wanted_service(
                s,
                environment,
                consumers=tuple(consumers[s.name]),
                temporary=[a for a in live if a.service == s.name],
            )
            for s in services
        ),
        reads=tuple(
            Membership(member=user, role=role_name(read.service, RoleKind.READER))
            for s in readers
            for read in s.reads
            for user in app_user_names(s)
        ),
        temporary=tuple(wanted_temporary(a, environment, iam=by_name[a.service].auth == Auth.IAM) for a in live),
        purged=tuple(s.name for s in declared if s.purge),
    )
    check_invariants(result)
    return result


def wanted_temporary(access: TemporaryAccess, environment: Environment, *, iam: bool = False) -> TemporaryAccessPlan:
    """The role, membership and secret of one validated, live break-glass grant; with `iam` (its
    service logs in with IAM), `rds_iam` and `rds-db:connect` for the principal instead of a secret."""
    role = Role(
        name=access.role_name,
        kind=RoleKind.TEMPORARY,
        login=True,
        connection_limit=access.connection_limit,
        statement_timeout_ms=access.statement_timeout_ms,
        idle_in_transaction_timeout_ms=access.idle_in_transaction_timeout_ms,
        search_path=(access.service,),
        valid_until=access.valid_until,
        iam=iam,
    )
    level_role = RoleKind.WRITER if access.level == AccessLevel.WRITE else RoleKind.READER
    membership = Membership(member=role.name, role=role_name(access.service, level_role))
    if iam:
        return TemporaryAccessPlan(
            access=access,
            role=role,
            membership=membership,
            secret=None,
            iam_membership=Membership(member=role.name, role=RDS_IAM),
            connect=DatabaseConnect(
                username=role.name,
                role=access.principal_arn.rsplit("/", 1)[-1],
                region=environment.region,
                account_id=environment.account_id,
            ),
        )
    return TemporaryAccessPlan(
        access=access,
        role=role,
        membership=membership,
        secret=environment_secret(
            environment,
            name=f"{environment.secret_prefix}access/{role.name}",
            username=role.name,
            database=access.service,
            # The name is never reused (it has the grant's start) and the password dies with the role.
            recovery_window_days=0,
            reader_role=None,
            reader_principal_arn=access.principal_arn,
        ),
    )


def writes(grant: Grant | DefaultPrivilege) -> bool:
    """Whether the grant lets its grantee change data (rows or sequence values)."""
    return bool(WRITE_PRIVILEGES.get(grant.object_type, frozenset()) & set(grant.privileges))


def executes(grant: Grant | DefaultPrivilege) -> bool:
    """Whether the grant lets its grantee call functions or procedures."""
    return grant.object_type == ObjectType.FUNCTION and "EXECUTE" in grant.privileges


def wildcards(policy: dict[str, object]) -> list[str]:
    """Every `*` in the policy's actions and resources, as `Action: secretsmanager:*`, ..."""
    found = []
    for statement in policy["Statement"]:  # type: ignore[attr-defined]
        for key in ("Action", "Resource", "NotAction", "NotResource"):
            values = statement.get(key, [])
            for value in [values] if isinstance(values, str) else values:
                if "*" in value:
                    found.append(f"{key}: {value}")
    return found


class PlanInvariantError(AssertionError):
    """The plan breaks an isolation rule. Declarations cannot cause this; it is a bug."""


def check_invariants(wanted: Plan) -> None:
    """Isolation rules every plan must hold, whatever the declarations were.

    - PUBLIC holds nothing on a service's database, schema, tables or functions, and only USAGE on
      `public`; it gets nothing on what the owner creates later, EXECUTE on functions included;
    - a table or sequence is written only by roles of the service that owns it, directly, by
      default privileges, or through membership of a role that can write;
    - a role is granted another service's role only if that role is the other's reader;
    - every login user is carried by exactly one secret (now, or last as the inactive user of an
      alternating pair), readable by exactly one IAM role, and each secret carries its own users;
    - `rds_iam` is granted only to login users that log in with IAM, and no role is a member of
      such a user (a user has one way to log in); such a user has no password in its secret and
      exactly one task role that may connect as it, a password user none;
    - a temporary role belongs to the one service it accesses: it is a member of that service's
      reader role (read) or writer role (write) and of nothing else, holds nothing directly, is
      granted to nobody, expires, and its secret is readable by the declared principal alone;
    - a secret's read policy has no wildcard; a retired service has no login user and no secret;
    - a purged service is wanted nowhere.
    """
    problems = []
    service_of = {role.name: s.service for s in wanted.services for role in s.roles}
    service_of |= {grant.role.name: grant.service for grant in wanted.temporary}
    temporary = {grant.role.name: grant for grant in wanted.temporary}
    writers = {grant.grantee for grant in wanted.grants if writes(grant)}

    for grant in wanted.grants:
        if grant.grantee == PUBLIC:
            allowed = ("USAGE",) if (grant.object_type, grant.schema) == (ObjectType.SCHEMA, PUBLIC) else ()
            if set(grant.privileges) - set(allowed):
                problems.append(f"PUBLIC is granted {grant.privileges} ({grant.description})")
        elif writes(grant) and service_of.get(grant.grantee) != grant.database:
            problems.append(f"a second writer: {grant.description}")
        elif executes(grant) and grant.grantee != role_name(grant.database, RoleKind.WRITER):
            problems.append(f"EXECUTE for another than the writer: {grant.description}")

    for service in wanted.services:
        for default in service.default_privileges:
            if (default.grantee == PUBLIC and default.privileges) or (
                writes(default) and service_of.get(default.grantee) != default.database
            ):
                problems.append(f"default privileges let {default.grantee} write {default.database}.{default.schema}")
            if executes(default) and default.grantee != service.writer.name:
                problems.append(f"default privileges let {default.grantee} execute the functions of {default.database}")
        public_execute = DefaultPrivilege(
            database=service.database.name,
            schema=None,
            owner=service.owner.name,
            object_type=ObjectType.FUNCTION,
            grantee=PUBLIC,
            privileges=(),
        )
        if public_execute not in service.default_privileges:
            problems.append(f"PUBLIC keeps EXECUTE on the functions {service.owner.name} creates")
        login_names = {user.name for user in service.login_users}
        for user in service.login_users:
            secrets = [secret for secret in service.secrets if user.name in secret.users]
            if len(secrets) != 1:
                problems.append(f"login user {user.name} has {len(secrets)} secrets, not 1")
            elif secrets[0].reader_role is None or secrets[0].reader_principal_arn is not None:
                problems.append(f"the secret of {user.name} is not readable by exactly one IAM role")
            elif secrets[0].iam != user.iam:
                problems.append(f"login user {user.name} has iam={user.iam}, its secret iam={secrets[0].iam}")
            connects = [connect for connect in service.connects if connect.username == user.name]
            if len(connects) != int(user.iam):
                problems.append(f"login user {user.name} (iam={user.iam}) has {len(connects)} task roles to connect")
        for secret in service.secrets:
            if secret.username not in login_names:
                problems.append(f"secret {secret.name} is for {secret.username}, which is not a login user")
            elif set(secret.users) - login_names:
                problems.append(f"secret {secret.name} carries {secret.users}, not login users of {service.service}")
            if not secret.reader_role or wildcards(
                secret.read_policy(f"arn:aws:secretsmanager:::secret:{secret.name}")
            ):
                problems.append(f"secret {secret.name} is not readable by exactly one role without a wildcard")
        if service.retired and (service.login_users or service.secrets):
            problems.append(f"retired service {service.service} still has login users or secrets")
        if service.service in wanted.purged:
            problems.append(f"purged service {service.service} is still wanted")
        for default in service.default_privileges:
            if default.grantee in temporary:
                problems.append(f"temporary role {default.grantee} gets default privileges directly")

    for grant in wanted.grants:
        if grant.grantee in temporary:
            problems.append(f"temporary role {grant.grantee} holds a grant directly ({grant.description})")
    for name, grant in temporary.items():
        kind = RoleKind.WRITER if grant.access.level == AccessLevel.WRITE else RoleKind.READER
        held = sorted(m.role for m in wanted.memberships if m.member == name)
        allowed = sorted([role_name(grant.service, kind), *([RDS_IAM] if grant.role.iam else [])])
        if held != allowed:
            problems.append(f"temporary role {name} is a member of {held}, not of {allowed} only")
        if grant.role.valid_until is None or not grant.role.login:
            problems.append(f"temporary role {name} does not expire")
        secret, principal = grant.secret, grant.access.principal_arn
        if grant.role.iam:
            connect = grant.connect
            if (
                secret is not None
                or connect is None
                or (connect.username, connect.role)
                != (
                    name,
                    grant.principal_name,
                )
            ):
                problems.append(f"temporary role {name} logs in with IAM: no secret, {principal} alone may connect")
        elif secret is None or (secret.username, secret.reader_role, secret.reader_principal_arn) != (
            name,
            None,
            principal,
        ):
            problems.append(f"the secret of temporary role {name} is not readable by {principal} alone")

    iam_users = {user.name for s in wanted.services for user in s.login_users if user.iam}
    iam_users |= {grant.role.name for grant in wanted.temporary if grant.role.iam}
    for membership in wanted.memberships:
        if membership.role in temporary:
            problems.append(f"{membership.member} is granted temporary role {membership.role}")
        if membership.role == RDS_IAM:
            if membership.member not in iam_users:
                problems.append(f"{RDS_IAM} is granted to {membership.member}, which is not a login user with IAM")
            continue
        if membership.role in iam_users:
            problems.append(f"{membership.member} is granted {membership.role}, a login user with IAM")
        granted_from, member_of = service_of.get(membership.role), service_of.get(membership.member)
        if granted_from != member_of:
            if membership.role != role_name(granted_from or "", RoleKind.READER):
                problems.append(f"{membership.member} is granted {membership.role}, which is not a reader role")
            elif membership.role in writers:
                problems.append(f"{membership.member} can write {granted_from} through {membership.role}")

    if problems:
        raise PlanInvariantError("the plan breaks isolation:\n  " + "\n  ".join(problems))
