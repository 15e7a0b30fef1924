"""The wanted state: pure values computed from validated declarations.

Every adapter (the cdktf construct today; SQL and inspection later) renders from these values,
so the Terraform resources and the SQL can never disagree. Nothing here imports cdktf.

A `Grant` is authoritative, as the postgresql provider's `postgresql_grant` is: the grantee holds
exactly `privileges` on the objects, so a Grant with no privileges is a REVOKE of everything.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from servicedb.errors import DeclarationError, Problem
from servicedb.spec import Environment, Service, environment_problems, service_problems, subject, validate

DECLARED_IN_CODE = "<declared in code>"

PUBLIC = "public"
"""The pseudo-role every role belongs to; also the name of the default schema."""

WRITE_PRIVILEGES = {
    "table": frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}),
    "sequence": frozenset({"USAGE", "UPDATE"}),  # USAGE allows nextval()
}

TABLE_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_DML = ("USAGE", "SELECT", "UPDATE")

DATABASE_ADMIN_RESERVE = 3
"""Connections a service's database keeps beyond its users' limits, for operators."""


class ObjectType(StrEnum):
    DATABASE = "database"
    SCHEMA = "schema"
    TABLE = "table"
    SEQUENCE = "sequence"


class RoleKind(StrEnum):
    OWNER = "owner"
    """NOLOGIN; owns the database, the schema and every table in it. The DDL role."""
    APP = "app"
    """LOGIN; reads and writes the service's tables (DML only), as a member of the writer role."""
    MIGRATOR = "migrator"
    """LOGIN, NOINHERIT; becomes the owner at login, so everything it creates is the owner's."""
    WRITER = "writer"
    """NOLOGIN; DML on the service's tables and sequences, granted to the service's own app user."""
    READER = "reader"
    """NOLOGIN; SELECT on the service's tables, granted to other services' app users."""


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
        }[self.object_type]

    @property
    def description(self) -> str:
        if not self.privileges:
            return f"{self.grantee} holds nothing on {self.target}"
        return f"{self.grantee} holds {', '.join(self.privileges)} on {self.target}"


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultPrivilege:
    """What `grantee` gets on objects that `owner` creates later in the schema."""

    database: str
    schema: str
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
    """A Secrets Manager secret in the RDS JSON shape; its password is generated at deploy."""

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
    reader_role: str
    """Name of the one IAM role (an ECS task execution role) allowed to read it."""

    def read_policy(self, secret_arn: str) -> dict[str, object]:
        """The IAM policy that lets `reader_role` read this secret, given the secret's ARN.

        `secretsmanager:GetSecretValue` on exactly this secret, and `kms:Decrypt` on the customer
        key only when Secrets Manager asks for it (`kms:ViaService`). No wildcard resource.
        """
        statements = secret_read_statements([secret_arn], kms_key_arn=self.kms_key_arn, region=self.region)
        return {"Version": "2012-10-17", "Statement": statements}

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
    """One per login user: the app user's first, then the migrator's."""
    retired: bool = False
    """The data stays, nobody logs in: the app and migrator roles are NOLOGIN and have no secret."""

    @property
    def roles(self) -> tuple[Role, ...]:
        return (self.owner, self.app, self.migrator, self.writer, self.reader)

    @property
    def login_users(self) -> tuple[Role, ...]:
        return tuple(role for role in self.roles if role.login)

    def secret_for(self, username: str) -> Secret:
        return next(secret for secret in self.secrets if secret.username == username)


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    environment: Environment
    services: tuple[ServicePlan, ...]
    reads: tuple[Membership, ...]
    """Cross-service read access: a consumer's app user is granted a producer's reader role."""
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
        return tuple(m for service in self.services for m in service.memberships) + self.reads


def role_name(service: str, kind: RoleKind) -> str:
    return f"{service}_{kind}"


def role_names(service: str) -> tuple[str, ...]:
    """Every role of a service, the owner last: the order to drop them in."""
    others = tuple(role_name(service, kind) for kind in RoleKind if kind != RoleKind.OWNER)
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


def wanted_service(service: Service, environment: Environment, *, consumers: Iterable[Service]) -> ServicePlan:
    """`plan_service` for declarations that were already validated."""
    name = service.name
    login = not service.retired
    owner = Role(name=role_name(name, RoleKind.OWNER), kind=RoleKind.OWNER, login=False)
    app = Role(
        name=role_name(name, RoleKind.APP),
        kind=RoleKind.APP,
        login=login,
        connection_limit=service.connection_limit,
        statement_timeout_ms=service.statement_timeout_ms,
        idle_in_transaction_timeout_ms=service.idle_in_transaction_timeout_ms,
        search_path=(name,),
    )
    migrator = Role(
        name=role_name(name, RoleKind.MIGRATOR),
        kind=RoleKind.MIGRATOR,
        login=login,
        inherit=False,
        connection_limit=service.migrator_connection_limit,
        statement_timeout_ms=service.migration_statement_timeout_ms,
        search_path=(name,),
        assume_role=owner.name,
    )
    writer = Role(name=role_name(name, RoleKind.WRITER), kind=RoleKind.WRITER, login=False)
    reader = Role(name=role_name(name, RoleKind.READER), kind=RoleKind.READER, login=False)

    consumer_connections = sum(consumer.connection_limit for consumer in consumers)
    database = Database(
        name=name,
        owner=owner.name,
        connection_limit=(
            service.connection_limit + service.migrator_connection_limit + consumer_connections + DATABASE_ADMIN_RESERVE
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
    )
    default_privileges = (
        later(ObjectType.TABLE, writer.name, TABLE_DML),
        later(ObjectType.SEQUENCE, writer.name, SEQUENCE_DML),
        later(ObjectType.TABLE, reader.name, ("SELECT",)),
        later(ObjectType.SEQUENCE, reader.name, ("SELECT",)),
    )

    def secret(user: Role, reader_role: str) -> Secret:
        return Secret(
            name=f"{environment.secret_prefix}{name}/{user.kind}",
            username=user.name,
            database=name,
            host=environment.endpoint,
            port=environment.port,
            cluster_identifier=environment.cluster_identifier,
            region=environment.region,
            kms_key_arn=environment.kms_key_arn,
            recovery_window_days=environment.secret_recovery_window_days,
            password_length=environment.password_length,
            reader_role=reader_role,
        )

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
            Membership(member=app.name, role=writer.name),
        ),
        extensions=tuple(Extension(database=name, schema=name, name=e) for e in service.extensions),
        secrets=()
        if service.retired
        else (
            secret(app, environment.execution_role_for(service)),
            secret(migrator, environment.migration_execution_role_for(service)),
        ),
        retired=service.retired,
    )


def plan_services(services: Iterable[Service], environment: Environment) -> Plan:
    """The wanted state of all services in one environment; raises `DeclarationError` if invalid."""
    declared = tuple(services)
    validate([(s, DECLARED_IN_CODE) for s in declared], [(environment, DECLARED_IN_CODE)])
    services = tuple(s for s in declared if not s.purge)
    # A retired service's app user cannot log in: it reads nothing.
    readers = tuple(s for s in services if not s.retired)
    consumers = {
        service.name: tuple(s for s in readers if any(read.service == service.name for read in s.reads))
        for service in services
    }
    result = Plan(
        environment=environment,
        services=tuple(wanted_service(s, environment, consumers=consumers[s.name]) for s in services),
        reads=tuple(
            Membership(member=role_name(s.name, RoleKind.APP), role=role_name(read.service, RoleKind.READER))
            for s in readers
            for read in s.reads
        ),
        purged=tuple(s.name for s in declared if s.purge),
    )
    check_invariants(result)
    return result


def writes(grant: Grant | DefaultPrivilege) -> bool:
    """Whether the grant lets its grantee change data (rows or sequence values)."""
    return bool(WRITE_PRIVILEGES.get(grant.object_type, frozenset()) & set(grant.privileges))


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

    - PUBLIC holds nothing on a service's database, schema or tables, and only USAGE on `public`;
    - a table or sequence is written only by roles of the service that owns it, directly, by
      default privileges, or through membership of a role that can write;
    - a role is granted another service's role only if that role is the other's reader;
    - every login user has exactly one secret, readable by exactly one IAM role, through a policy
      without a wildcard; a retired service has no login user and no secret;
    - a purged service is wanted nowhere.
    """
    problems = []
    service_of = {role.name: s.service for s in wanted.services for role in s.roles}
    writers = {grant.grantee for grant in wanted.grants if writes(grant)}

    for grant in wanted.grants:
        if grant.grantee == PUBLIC:
            allowed = ("USAGE",) if (grant.object_type, grant.schema) == (ObjectType.SCHEMA, PUBLIC) else ()
            if set(grant.privileges) - set(allowed):
                problems.append(f"PUBLIC is granted {grant.privileges} ({grant.description})")
        elif writes(grant) and service_of.get(grant.grantee) != grant.database:
            problems.append(f"a second writer: {grant.description}")

    for service in wanted.services:
        for default in service.default_privileges:
            if default.grantee == PUBLIC or (writes(default) and service_of.get(default.grantee) != default.database):
                problems.append(f"default privileges let {default.grantee} write {default.database}.{default.schema}")
        for user in service.login_users:
            secrets = [secret for secret in service.secrets if secret.username == user.name]
            if len(secrets) != 1:
                problems.append(f"login user {user.name} has {len(secrets)} secrets, not 1")
        logins = {user.name for user in service.login_users}
        for secret in service.secrets:
            if secret.username not in logins:
                problems.append(f"secret {secret.name} is for {secret.username}, which is not a login user")
            if not secret.reader_role or wildcards(
                secret.read_policy(f"arn:aws:secretsmanager:::secret:{secret.name}")
            ):
                problems.append(f"secret {secret.name} is not readable by exactly one role without a wildcard")
        if service.retired and (service.login_users or service.secrets):
            problems.append(f"retired service {service.service} still has login users or secrets")
        if service.service in wanted.purged:
            problems.append(f"purged service {service.service} is still wanted")

    for membership in wanted.memberships:
        granted_from, member_of = service_of.get(membership.role), service_of.get(membership.member)
        if granted_from != member_of:
            if membership.role != role_name(granted_from or "", RoleKind.READER):
                problems.append(f"{membership.member} is granted {membership.role}, which is not a reader role")
            elif membership.role in writers:
                problems.append(f"{membership.member} can write {granted_from} through {membership.role}")

    if problems:
        raise PlanInvariantError("the plan breaks isolation:\n  " + "\n  ".join(problems))
