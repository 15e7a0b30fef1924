"""What a DevOps engineer declares: services and environments, and the rules they must follow.

Nothing here imports cdktf. `validate` checks every declaration against every rule and raises a
single `DeclarationError` listing all problems, so nothing is built from a bad declaration.
"""

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from servicedb.errors import DeclarationError, Problem, did_you_mean

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# The longest role suffix is "_migrator"; PostgreSQL truncates identifiers at 63 bytes, and a
# truncated role name could collide with another service's.
LONGEST_ROLE_SUFFIX = "_migrator"
MAX_SERVICE_NAME_LENGTH = 63 - len(LONGEST_ROLE_SUFFIX)

RESERVED_PREFIXES = ("pg_", "rds", "aws_")
RESERVED_NAMES = frozenset({"postgres", "public", "template0", "template1", "information_schema", "admin", "root"})

EXTENSION_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
IAM_ROLE_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{1,64}$")
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
SECRET_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
KMS_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+$")
SECRET_PREFIX_PATTERN = re.compile(r"^[\w/+=.@-]*$")
VERSION_PATTERN = re.compile(r"^\d+(\.\d+)?$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
HOST_PATTERN = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$")
IAM_ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
INSTANCE_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
GRAVITON_FAMILY_PATTERN = re.compile(r"^[a-z]+\d+g")
"""Instance families with an Arm (Graviton) processor: t4g, m7g, c6gn, im4gn, ..."""


def aws_id_pattern(prefix: str) -> re.Pattern[str]:
    """EC2 resource ids: the prefix, then 8 or 17 hexadecimal digits."""
    return re.compile(rf"^{prefix}-[0-9a-f]{{8}}([0-9a-f]{{9}})?$")


VPC_ID_PATTERN = aws_id_pattern("vpc")
ROUTE_TABLE_ID_PATTERN = aws_id_pattern("rtb")
SECURITY_GROUP_ID_PATTERN = aws_id_pattern("sg")
SUBNET_ID_PATTERN = aws_id_pattern("subnet")
VPC_PREFIX_LENGTHS = (16, 28)
"""The sizes AWS allows for a VPC's CIDR block, /16 to /28."""

MAX_SECRET_NAME_LENGTH = 512
MAX_SECRET_PREFIX_LENGTH = MAX_SECRET_NAME_LENGTH - MAX_SERVICE_NAME_LENGTH - len("/migrator")
"""So that the longest secret name, `<prefix><service>/migrator`, fits Secrets Manager's 512."""

MIN_PASSWORD_LENGTH = 32
MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000
MIN_TIMEOUT_MS = 100
"""The shortest timeout that is not 0 (off): below it, a timeout is a slip of units (30 for 30 s)."""
MAX_CONNECTION_LIMIT = 5000
MAX_ACCESS_HOURS = 7 * 24
MAX_ROTATION = 1_000_000

CLONE_SUFFIX = "_app_clone"
"""The app user's clone with alternating rotation, `<service>_app_clone`; longer than `_migrator`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reads:
    """Read-only access to another service's schema: SELECT on its tables, never a write."""

    service: str
    """Name of the service whose data is read."""


class Auth(StrEnum):
    """How a service's login users log in."""

    PASSWORD = "password"
    """A generated password, kept in the user's Secrets Manager secret."""
    IAM = "iam"
    """An IAM authentication token the task generates with its task role; the user has no password."""


class RotationStrategy(StrEnum):
    """What a rotation (a higher `rotation`) does to the app user's login."""

    SINGLE = "single"
    """The user gets a new password at once: its open connections stay, new logins need the new one."""
    ALTERNATING = "alternating"
    """The app user and its clone take turns: the new password goes to the one not in use, then the
    secret points to it; the other keeps its password until the next rotation."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Service:
    """One ECS service and the database access it gets.

    Per service: a database and a schema named after it, a NOLOGIN owner role that owns them
    (DDL), an app user (DML only, through a NOLOGIN writer role), a migrator user (runs as the
    owner), a NOLOGIN reader role for services that declare `Reads` of this one, and one Secrets
    Manager secret per login user (per pair with alternating rotation).
    """

    name: str
    """Service, database and schema name; role names add `_owner`, `_app`, `_migrator`, `_writer`,
    `_reader`, and `_app_clone` with alternating rotation."""

    reads: tuple[Reads, ...] = ()
    """Other services whose schema this service's app user may read. @default - none."""

    connection_limit: int = 10
    """Connections the app user may open. @default - 10."""

    migrator_connection_limit: int = 2
    """Connections the migrator user may open. @default - 2."""

    statement_timeout_ms: int = 30_000
    """The app user's `statement_timeout`; 0 disables it. @default - 30 s."""

    idle_in_transaction_timeout_ms: int = 60_000
    """The app user's `idle_in_transaction_session_timeout`; 0 disables it. @default - 60 s."""

    migration_statement_timeout_ms: int = 900_000
    """The migrator user's `statement_timeout`; 0 disables it. @default - 15 min."""

    execution_role: str | None = None
    """Name of the ECS task execution role that may read the app user's secret.

    @default - the environment's `execution_role_format`, e.g. `prod-orders-execution`.
    """

    migration_execution_role: str | None = None
    """Name of the ECS task execution role that may read the migrator user's secret.

    @default - the same role as `execution_role`.
    """

    extensions: tuple[str, ...] = ()
    """Extensions created in the service's schema, e.g. `("pgcrypto",)`. @default - none."""

    auth: Auth = Auth.PASSWORD
    """How the app and migrator users log in: `password` or `iam` (a token from the task role, no
    password anywhere). @default - `password`."""

    rotation: int = 0
    """Raise it to give the service's password users new passwords on the next deploy; the
    environment's `rotation` is added to it. @default - 0."""

    rotation_strategy: RotationStrategy = RotationStrategy.SINGLE
    """`single`, or `alternating`: the app user gets a clone, `<name>_app_clone`, with the same
    rights and settings, and a rotation moves the secret from one to the other, so that running
    tasks keep logging in until they are replaced. @default - `single`."""

    task_role: str | None = None
    """Name of the ECS task role allowed to log in as the app user with `auth="iam"`.

    @default - the environment's `task_role_format`, e.g. `prod-orders-task`.
    """

    migration_task_role: str | None = None
    """Name of the ECS task role allowed to log in as the migrator user with `auth="iam"`.

    @default - the same role as `task_role`.
    """

    retired: bool = False
    """The service is gone, its data stays: the database, the schema and the roles are kept, the
    login users can no longer log in (NOLOGIN), and the secrets, the generated passwords and the
    ECS access are removed (Secrets Manager keeps a deleted secret for the environment's
    `secret_recovery_window_days`). No other service may read a retired one. @default - False.
    """

    purge: bool = False
    """Drop the retired service's database, schema and roles, and with them its data. Valid only
    with `retired=True`; the one declaration that lets Terraform or `servicedb apply` drop data.
    @default - False.
    """

    def __post_init__(self) -> None:
        # A list where a tuple is meant, or "iam" where Auth.IAM is meant, is an easy slip; accept it.
        for name in ("reads", "extensions"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for name, kind in (("auth", Auth), ("rotation_strategy", RotationStrategy)):
            value = getattr(self, name)
            if not isinstance(value, kind) and value in [member.value for member in kind]:
                object.__setattr__(self, name, kind(value))


class OperatorHost(StrEnum):
    """The operator host the network stack creates in the operator VPC, if any."""

    NONE = "none"
    """None: the operator host already exists (or is not an EC2 instance)."""
    CLOUD9 = "cloud9"
    """An AWS Cloud9 EC2 environment reached through Session Manager (no inbound ports)."""
    SSM = "ssm"
    """A small EC2 instance managed by Systems Manager, reached through Session Manager; no inbound ports."""


class Provisioner(StrEnum):
    """What applies the plan's roles, databases and grants to the cluster."""

    TERRAFORM = "terraform"
    """Terraform's postgresql provider, from a host that reaches the cluster (the operator host)."""
    LAMBDA = "lambda"
    """A Lambda function in the database subnets, which Terraform invokes with the plan."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OperatorNetwork:
    """The operator VPC that Terraform is applied from, peered with the database VPC (`[<env>.network]`).

    The `<env>-operator-network` stack peers the two VPCs (DNS resolution across the peering on),
    adds routes both ways on the listed route tables, lets the operator source reach the cluster's
    security group on the cluster's port and nothing else, and optionally creates the operator host.
    """

    operator_vpc_id: str
    """The VPC the operator host runs in (the peering's requester)."""

    operator_vpc_cidr: str
    """The operator VPC's IPv4 CIDR block; the database side routes it over the peering."""

    operator_route_table_ids: tuple[str, ...]
    """Route tables of the operator VPC that get a route to `database_vpc_cidr`."""

    database_vpc_id: str
    """The VPC of the Aurora cluster (the peering's accepter)."""

    database_vpc_cidr: str
    """The database VPC's IPv4 CIDR block; the operator side routes it over the peering."""

    database_route_table_ids: tuple[str, ...]
    """Route tables of the cluster's subnets that get a route back to `operator_vpc_cidr`."""

    cluster_security_group_id: str
    """The cluster's security group, which gets the one ingress rule on the cluster's port."""

    operator_security_group_id: str | None = None
    """Security group of the operator host, the only source allowed to reach the cluster.

    Give this or `operator_cidr`, not both. @default - none; leave both out when `host` is `ssm`,
    whose own security group is the source.
    """

    operator_cidr: str | None = None
    """CIDR inside the operator VPC allowed to reach the cluster, e.g. the operator subnet's.

    Give this or `operator_security_group_id`, not both. @default - none.
    """

    operator_account_id: str | None = None
    """Account of the operator VPC. @default - the environment's `account_id`."""

    operator_region: str | None = None
    """Region of the operator VPC. @default - the environment's `region`."""

    operator_role_arn: str | None = None
    """Role the stack assumes for the operator VPC's side; required when that is another account.

    @default - the same credentials as the database side.
    """

    host: OperatorHost = OperatorHost.NONE
    """The operator host to create: `none`, `cloud9` or `ssm`. @default - `none`."""

    host_subnet_id: str | None = None
    """Subnet of the operator VPC the host runs in; required when `host` is not `none`."""

    host_instance_type: str = "t3.small"
    """The host's EC2 instance type. @default - `t3.small` (2 GiB, enough for `cdktf synth`)."""

    host_https_egress_cidrs: tuple[str, ...] = ()
    """Where the `ssm` host may open HTTPS: Session Manager, STS and Secrets Manager endpoints,
    and wherever the Terraform providers and packages come from.

    @default - the operator VPC's CIDR (interface endpoints and an HTTPS proxy in the VPC).
    """

    def __post_init__(self) -> None:
        # A list where a tuple is meant, or "ssm" where OperatorHost.SSM is meant; accept them.
        for name in ("operator_route_table_ids", "database_route_table_ids", "host_https_egress_cidrs"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if not isinstance(self.host, OperatorHost) and self.host in [host.value for host in OperatorHost]:
            object.__setattr__(self, "host", OperatorHost(self.host))


@dataclass(frozen=True, kw_only=True, slots=True)
class Environment:
    """One Aurora PostgreSQL cluster the services are deployed to (dev, prod, ...)."""

    name: str
    """Environment name; the stack is `<name>-database-access`."""

    region: str
    """AWS region of the cluster, e.g. `eu-west-1`."""

    account_id: str
    """12-digit AWS account id; the AWS provider refuses to run against any other."""

    cluster_identifier: str
    """The Aurora cluster identifier, stored in each secret as `dbClusterIdentifier`."""

    endpoint: str
    """The cluster's writer endpoint, reachable from the operator host."""

    master_secret_arn: str
    """ARN of the Secrets Manager secret holding the master user's `username` and `password`."""

    engine_version: str
    """The PostgreSQL major.minor the cluster runs, e.g. `16.4` (the provider's expected version)."""

    port: int = 5432
    """The cluster's port. @default - 5432."""

    kms_key_arn: str | None = None
    """Customer managed KMS key for the secrets. @default - the AWS managed key `aws/secretsmanager`."""

    secret_name_prefix: str | None = None
    """Prefix of every secret's name. @default - `servicedb/<name>/`."""

    secret_recovery_window_days: int = 7
    """Days a deleted secret can still be restored (0 deletes at once). @default - 7."""

    execution_role_format: str = "{env}-{service}-execution"
    """How a service's execution role is named when it does not say. @default - `{env}-{service}-execution`."""

    task_role_format: str = "{env}-{service}-task"
    """How a service's task role is named when it does not say; used with `auth="iam"`.

    @default - `{env}-{service}-task`.
    """

    rotation: int = 0
    """Raise it to give every password user of the environment a new password on the next deploy;
    added to each service's `rotation`. @default - 0."""

    admin_iam_user: str | None = None
    """PostgreSQL user the postgresql provider logs in as with an IAM token (`aws_rds_iam_auth`)
    instead of the master user's password; a member of `rds_iam` with CREATEDB and CREATEROLE.

    @default - the master user, with the password from `master_secret_arn`.
    """

    terraform_logins: tuple[tuple[str, str], ...] = field(default=())
    """Logins the postgresql provider applies the services with instead of the master user, as
    pairs of user name and the ARN of its Secrets Manager secret (`password`), from a table
    `[<env>.terraform_logins]`. Each is a LOGIN with CREATEDB and CREATEROLE that the master
    user made; each service goes to one of them by a stable hash of its name
    (`servicedb.construct.provider_login_of`). PostgreSQL checks every role change against all
    the roles the login created, so at hundreds of services one login makes every statement
    slower. Fix the number before the first deploy: a service that hashes to another login
    cannot be changed by it.

    @default - none: the master user (or `admin_iam_user`) applies every service.
    """

    password_length: int = 40
    """Length of each generated password. @default - 40."""

    connect_timeout_seconds: int = 15
    """The postgresql provider's connect timeout. @default - 15."""

    max_connections: int | None = None
    """The cluster's connection budget for the services' users. @default - not checked."""

    state_bucket: str | None = None
    """S3 bucket for the Terraform state, encrypted (with `kms_key_arn` when set) and locked. The
    state holds the generated passwords: restrict who may read the bucket.

    @default - a local state file, for trying things out only.
    """

    tags: tuple[tuple[str, str], ...] = field(default=())
    """Tags on every AWS resource, as pairs. @default - none."""

    network: OperatorNetwork | None = None
    """The peered operator VPC, for the `<name>-operator-network` stack. @default - no such stack."""

    provisioner: Provisioner = Provisioner.TERRAFORM
    """What applies roles, databases and grants: `terraform` (the postgresql provider, run where
    the cluster is reachable) or `lambda` (a function in the database subnets). @default - `terraform`."""

    provisioner_subnet_ids: tuple[str, ...] = ()
    """Subnets servicedb's functions run in: the cluster's. Required with `provisioner = "lambda"`,
    and for the break-glass expiry schedule; they need a way to Secrets Manager (an interface
    endpoint or a NAT gateway). @default - none."""

    provisioner_security_group_id: str | None = None
    """Security group of servicedb's functions, allowed to reach the cluster's port and Secrets
    Manager (HTTPS). Required with `provisioner_subnet_ids`. @default - none."""

    max_temporary_access_hours: int = 8
    """The longest break-glass grant (`access/*.py`) allowed here, in hours. @default - 8."""

    expiry_schedule_minutes: int | None = None
    """How often a function in the cluster's subnets removes the break-glass roles whose time is up
    (`servicedb expire`, on an EventBridge schedule); 0 turns it off. @default - every 5 minutes
    when `access/` declares a grant for the environment (its subnets are then required), else off."""

    alarm_topic_arns: tuple[str, ...] = ()
    """SNS topics the expiry schedule's alarm notifies when a run fails. @default - none: the alarm
    shows in CloudWatch only."""

    @property
    def expires_break_glass(self) -> bool:
        """Whether the stack has the expiry schedule; `load` resolves the default first."""
        return bool(self.expiry_schedule_minutes)

    @property
    def stack_name(self) -> str:
        return f"{self.name}-database-access"

    @property
    def network_stack_name(self) -> str:
        return f"{self.name}-operator-network"

    @property
    def secret_prefix(self) -> str:
        if self.secret_name_prefix is not None:
            return self.secret_name_prefix
        return f"servicedb/{self.name}/"

    def execution_role_for(self, service: Service) -> str:
        if service.execution_role is not None:
            return service.execution_role
        return self.execution_role_format.format(env=self.name, service=service.name)

    def migration_execution_role_for(self, service: Service) -> str:
        if service.migration_execution_role is not None:
            return service.migration_execution_role
        return self.execution_role_for(service)

    def task_role_for(self, service: Service) -> str:
        if service.task_role is not None:
            return service.task_role
        return self.task_role_format.format(env=self.name, service=service.name)

    def migration_task_role_for(self, service: Service) -> str:
        if service.migration_task_role is not None:
            return service.migration_task_role
        return self.task_role_for(service)

    def rotation_of(self, service: Service) -> int:
        """The service's effective rotation: the environment's plus its own."""
        return self.rotation + service.rotation


def subject(service: Service) -> str:
    return f"Service(name={service.name!r})"


def check_name(name: object, *, what: str) -> str | None:
    """Why `name` cannot name a service (database, schema and role prefix), or None."""
    if not isinstance(name, str):
        return f"must be a string, got {name!r}"
    if not NAME_PATTERN.fullmatch(name):
        hint = " (use lowercase)" if name.lower() != name and NAME_PATTERN.fullmatch(name.lower()) else ""
        return f"must match {NAME_PATTERN.pattern}, got {name!r}{hint}"
    if len(name) > MAX_SERVICE_NAME_LENGTH:
        return (
            f"must be at most {MAX_SERVICE_NAME_LENGTH} characters so that "
            f"'{name}{LONGEST_ROLE_SUFFIX}' fits PostgreSQL's 63, got {len(name)}"
        )
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        return (
            f"{name!r} is reserved by PostgreSQL or RDS (reserved: {', '.join(sorted(RESERVED_NAMES))}"
            f" and names starting with {', '.join(RESERVED_PREFIXES)}); choose another {what}"
        )
    return None


def check_int(value: object, *, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, got {value!r}"
    if not low <= value <= high:
        return f"must be between {low} and {high}, got {value}"
    return None


def service_problems(service: object, *, source: str) -> list[Problem]:
    """Problems of one service on its own, without looking at the others."""
    if not isinstance(service, Service):
        return [
            Problem(
                source=source,
                subject="SERVICE",
                at="",
                message=f"must be a servicedb.Service(...), got {type(service).__name__}",
            )
        ]

    problems = []

    def add(at: str, message: str | None) -> None:
        if message:
            problems.append(Problem(source=source, subject=subject(service), at=at, message=message))

    add("name", check_name(service.name, what="service name"))
    limits = {
        "connection_limit": (1, MAX_CONNECTION_LIMIT),
        "migrator_connection_limit": (1, MAX_CONNECTION_LIMIT),
        "statement_timeout_ms": (0, MAX_TIMEOUT_MS),
        "idle_in_transaction_timeout_ms": (0, MAX_TIMEOUT_MS),
        "migration_statement_timeout_ms": (0, MAX_TIMEOUT_MS),
    }
    for name, (low, high) in limits.items():
        add(name, check_int(getattr(service, name), low=low, high=high))
    for name in ("statement_timeout_ms", "idle_in_transaction_timeout_ms", "migration_statement_timeout_ms"):
        value = getattr(service, name)
        if not check_int(value, low=1, high=MIN_TIMEOUT_MS - 1):
            add(
                name,
                f"must be 0 (off) or at least {MIN_TIMEOUT_MS} ms, got {value}; "
                f"did you mean {value * 1000:_} ({value} s)?",
            )

    for name in ("retired", "purge"):
        if not isinstance(getattr(service, name), bool):
            add(name, f"must be True or False, got {getattr(service, name)!r}")
    if service.purge is True and service.retired is not True:
        add(
            "purge",
            "drops the service's database and roles, so it is valid only on a retired service; "
            "set retired=True as well, or remove purge to keep the data",
        )

    if not isinstance(service.reads, tuple):
        add("reads", f"must be a tuple of Reads(service=...), got {service.reads!r}")
    else:
        for index, read in enumerate(service.reads):
            if not isinstance(read, Reads):
                add(f"reads[{index}]", f"must be Reads(service=...), got {read!r}")

    for name in ("execution_role", "migration_execution_role", "task_role", "migration_task_role"):
        role = getattr(service, name)
        if role is not None and not (isinstance(role, str) and IAM_ROLE_NAME_PATTERN.fullmatch(role)):
            add(name, f"must be an IAM role name (not an ARN) matching {IAM_ROLE_NAME_PATTERN.pattern}, got {role!r}")
    problems += login_problems(service, source=source)

    if not isinstance(service.extensions, tuple):
        add("extensions", f"must be a tuple of extension names, got {service.extensions!r}")
    else:
        for index, extension in enumerate(service.extensions):
            if not (isinstance(extension, str) and EXTENSION_PATTERN.fullmatch(extension)):
                add(f"extensions[{index}]", f"must be an extension name like 'pgcrypto', got {extension!r}")
        names = [e for e in service.extensions if isinstance(e, str)]
        for extension in sorted({e for e in names if names.count(e) > 1}):
            add("extensions", f"{extension!r} is listed more than once")
    return problems


def check_enum(value: object, kind: type[StrEnum]) -> str | None:
    if isinstance(value, kind):
        return None
    return f"must be one of {', '.join(repr(str(member)) for member in kind)}, got {value!r}"


def login_problems(service: Service, *, source: str) -> list[Problem]:
    """Problems of how a service's users log in: `auth`, `rotation`, `rotation_strategy`, task roles."""
    problems = []

    def add(at: str, message: str | None) -> None:
        if message:
            problems.append(Problem(source=source, subject=subject(service), at=at, message=message))

    add("auth", check_enum(service.auth, Auth))
    add("rotation", check_int(service.rotation, low=0, high=MAX_ROTATION))
    add("rotation_strategy", check_enum(service.rotation_strategy, RotationStrategy))
    if service.auth == Auth.IAM:
        if service.rotation != 0:
            add("rotation", "IAM users have no password to rotate (their tokens last 15 minutes); remove rotation")
        if service.rotation_strategy == RotationStrategy.ALTERNATING:
            add("rotation_strategy", "is for password users; IAM users need no alternating users, remove it")
    elif service.auth == Auth.PASSWORD:
        for name in ("task_role", "migration_task_role"):
            if getattr(service, name) is not None:
                add(name, "is only used with auth='iam' (rds-db:connect); remove it or set auth='iam'")
    longest = 63 - len(CLONE_SUFFIX)
    alternating = service.rotation_strategy == RotationStrategy.ALTERNATING
    if alternating and isinstance(service.name, str) and len(service.name) > longest:
        add(
            "name",
            f"must be at most {longest} characters with alternating rotation, so that "
            f"'{service.name}{CLONE_SUFFIX}' fits PostgreSQL's 63, got {len(service.name)}",
        )
    return problems


def cross_service_problems(services: Mapping[str, Service], sources: Mapping[str, str]) -> list[Problem]:
    """Problems that need all services: reads of unknown or retired services, or of oneself."""
    problems = []
    declared = ", ".join(sorted(services))
    for service in services.values():
        if not isinstance(service.reads, tuple):
            continue
        seen = set()
        for index, read in enumerate(service.reads):
            if not isinstance(read, Reads):
                continue
            if not isinstance(read.service, str):
                message = f"must be the name of a service, got {read.service!r}"
            elif read.service == service.name:
                message = f"a service cannot read itself; its app user already reads and writes {service.name!r}"
            elif read.service not in services:
                message = (
                    f"no service named {read.service!r}{did_you_mean(read.service, services)} (declared: {declared})"
                )
            elif read.service in seen:
                message = f"{read.service!r} is read more than once; list it once"
            elif services[read.service].retired is True and service.retired is not True:
                message = (
                    f"{read.service!r} is retired: its data is kept, but nothing may read it; "
                    f"remove this read, or bring {read.service} back with retired=False"
                )
            else:
                message = ""
            if message:
                problems.append(
                    Problem(
                        source=sources[service.name],
                        subject=subject(service),
                        at=f"reads[{index}].service",
                        message=message,
                    )
                )
            if isinstance(read.service, str):
                seen.add(read.service)
    return problems


def environment_problems(environment: Environment, *, source: str) -> list[Problem]:
    """Problems of one environment on its own."""
    problems = []
    where = f"[{environment.name}]"

    def add(at: str, message: str | None) -> None:
        if message:
            problems.append(Problem(source=source, subject=where, at=at, message=message))

    def check_pattern(at: str, pattern: re.Pattern[str], example: str) -> None:
        value = getattr(environment, at)
        if not (isinstance(value, str) and pattern.fullmatch(value)):
            add(at, f"must look like {example!r}, got {value!r}")

    if not (isinstance(environment.name, str) and re.fullmatch(r"^[a-z][a-z0-9-]{0,30}$", environment.name)):
        add("name", f"must match ^[a-z][a-z0-9-]{{0,30}}$, got {environment.name!r}")
    check_pattern("region", REGION_PATTERN, "eu-west-1")
    check_pattern("account_id", ACCOUNT_PATTERN, "123456789012")
    check_pattern("endpoint", HOST_PATTERN, "main.cluster-abc123.eu-west-1.rds.amazonaws.com")
    check_pattern("cluster_identifier", re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}$"), "main")
    check_pattern(
        "master_secret_arn", SECRET_ARN_PATTERN, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-..."
    )
    check_pattern("engine_version", VERSION_PATTERN, "16.4")
    if environment.kms_key_arn is not None:
        check_pattern("kms_key_arn", KMS_ARN_PATTERN, "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-...")
    if environment.state_bucket is not None:
        check_pattern("state_bucket", BUCKET_PATTERN, "example-prod-terraform-state")
    if environment.secret_name_prefix is not None:
        check_pattern("secret_name_prefix", SECRET_PREFIX_PATTERN, "servicedb/prod/")
        if isinstance(environment.secret_name_prefix, str) and len(environment.secret_name_prefix) > (
            MAX_SECRET_PREFIX_LENGTH
        ):
            add(
                "secret_name_prefix",
                f"must be at most {MAX_SECRET_PREFIX_LENGTH} characters, so that every secret name fits "
                f"Secrets Manager's {MAX_SECRET_NAME_LENGTH}, got {len(environment.secret_name_prefix)}",
            )
    add("port", check_int(environment.port, low=1, high=65535))
    window = environment.secret_recovery_window_days
    if check_int(window, low=0, high=30) or window in range(1, 7):
        add("secret_recovery_window_days", f"must be 0 or between 7 and 30 (Secrets Manager's rule), got {window!r}")
    add("password_length", check_int(environment.password_length, low=MIN_PASSWORD_LENGTH, high=128))
    add("connect_timeout_seconds", check_int(environment.connect_timeout_seconds, low=1, high=300))
    if environment.max_connections is not None:
        add("max_connections", check_int(environment.max_connections, low=1, high=262_143))
    add("max_temporary_access_hours", check_int(environment.max_temporary_access_hours, low=1, high=MAX_ACCESS_HOURS))
    for name in ("execution_role_format", "task_role_format"):
        value = getattr(environment, name)
        try:
            value.format(env="env", service="service")
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            if isinstance(error, KeyError):
                why = f"{{{error.args[0]}}} is not one of them"
            elif isinstance(error, IndexError):
                why = "positional fields such as {0} are not"
            elif isinstance(error, ValueError):
                why = str(error)
            else:
                why = "fields have no attributes" if isinstance(value, str) else "not a string"
            example = "{env}-{service}-" + name.removesuffix("_role_format").replace("_", "-")
            add(name, f"may use only {{env}} and {{service}}, got {value!r} ({why}); write it like {example!r}")
    add("rotation", check_int(environment.rotation, low=0, high=MAX_ROTATION))
    user = environment.admin_iam_user
    if user is not None and not (isinstance(user, str) and NAME_PATTERN.fullmatch(user) and len(user) <= 63):
        add("admin_iam_user", f"must be a PostgreSQL user name matching {NAME_PATTERN.pattern}, got {user!r}")
    elif user is not None and user.startswith(RESERVED_PREFIXES):
        add("admin_iam_user", f"{user!r} starts with a prefix reserved by PostgreSQL or RDS; choose another name")
    elif user is not None and environment.provisioner == Provisioner.LAMBDA:
        add("admin_iam_user", "is for the postgresql provider; the lambda provisioner logs in as the master user")
    for user, secret_arn in environment.terraform_logins:
        at = f"terraform_logins.{user}"
        if not (NAME_PATTERN.fullmatch(user) and len(user) <= 63) or user.startswith(RESERVED_PREFIXES):
            add(
                at,
                f"must be a PostgreSQL user name matching {NAME_PATTERN.pattern} that does not start "
                f"with {', '.join(RESERVED_PREFIXES)}, got {user!r}",
            )
        if not SECRET_ARN_PATTERN.fullmatch(secret_arn):
            add(
                at,
                "must be the ARN of its secret, like "
                f"'arn:aws:secretsmanager:eu-west-1:123456789012:secret:servicedb-login-1', got {secret_arn!r}",
            )
        elif secret_arn == environment.master_secret_arn:
            add(at, "is the master user's secret; each login has its own")
    if environment.terraform_logins and environment.admin_iam_user is not None:
        add("terraform_logins", "logs in with passwords; leave it out with admin_iam_user, or drop admin_iam_user")
    if environment.terraform_logins and environment.provisioner == Provisioner.LAMBDA:
        add("terraform_logins", "is for the postgresql provider; the lambda provisioner logs in as the master user")
    if environment.provisioner not in list(Provisioner):
        allowed = ", ".join(repr(str(provisioner)) for provisioner in Provisioner)
        add("provisioner", f"must be one of {allowed}, got {environment.provisioner!r}")
    elif environment.provisioner == Provisioner.LAMBDA:
        for at, message in id_list_problems(
            "provisioner_subnet_ids", environment.provisioner_subnet_ids, SUBNET_ID_PATTERN
        ):
            add(at, message)
        if environment.provisioner_security_group_id is None:
            add(
                "provisioner_security_group_id",
                "is required when provisioner = 'lambda': a security group that reaches the cluster's port",
            )
        else:
            add(
                "provisioner_security_group_id",
                id_problem(environment.provisioner_security_group_id, SECURITY_GROUP_ID_PATTERN),
            )
    elif environment.provisioner_subnet_ids or environment.provisioner_security_group_id is not None:
        # The break-glass expiry schedule's function runs there too.
        for at, message in id_list_problems(
            "provisioner_subnet_ids", environment.provisioner_subnet_ids, SUBNET_ID_PATTERN
        ):
            add(at, message)
        if environment.provisioner_security_group_id is None:
            add("provisioner_security_group_id", "is required with provisioner_subnet_ids: the functions' group")
        else:
            add(
                "provisioner_security_group_id",
                id_problem(environment.provisioner_security_group_id, SECURITY_GROUP_ID_PATTERN),
            )
    for index, topic in enumerate(environment.alarm_topic_arns):
        if not (isinstance(topic, str) and re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}", topic)):
            add(
                f"alarm_topic_arns[{index}]",
                f"must be an SNS topic ARN like 'arn:aws:sns:eu-west-1:123456789012:oncall', got {topic!r}",
            )
    minutes = environment.expiry_schedule_minutes
    if minutes is not None:
        add("expiry_schedule_minutes", check_int(minutes, low=0, high=60))
    if minutes and not (environment.provisioner_subnet_ids and environment.provisioner_security_group_id):
        add(
            "expiry_schedule_minutes",
            "the function that removes expired break-glass roles runs in the cluster's subnets: set "
            "provisioner_subnet_ids and provisioner_security_group_id, or expiry_schedule_minutes = 0 "
            "and run `servicedb expire` on a schedule of your own",
        )
    if isinstance(environment.network, OperatorNetwork):
        problems += network_problems(environment, source=source)
    elif environment.network is not None:
        add("network", f"must be an OperatorNetwork(...), got {type(environment.network).__name__}")
    return problems


def parse_cidr(value: object) -> tuple[ipaddress.IPv4Network | None, str | None]:
    """The IPv4 network `value` names, or why it names none."""
    wanted = "must be an IPv4 CIDR block like '10.0.0.0/16'"
    if not isinstance(value, str):
        return None, f"{wanted}, got {value!r}"
    if "/" not in value:
        hint = f" (write '{value}/32' for one address)" if is_ipv4_address(value) else ""
        return None, f"{wanted}, got {value!r}{hint}"
    try:
        return ipaddress.IPv4Network(value), None
    except ValueError:
        pass
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return None, f"{wanted}, got {value!r}"
    return None, f"has bits set after the prefix: {value!r} is inside {network}; write '{network}'"


def is_ipv4_address(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def is_graviton(instance_type: str) -> bool:
    """Whether the instance type has an Arm processor: its family is like t4g, m7gd or c6gn."""
    return bool(GRAVITON_FAMILY_PATTERN.match(instance_type.split(".", 1)[0]))


EXAMPLE_IDS = {
    VPC_ID_PATTERN: "vpc-0a1b2c3d4e5f67890",
    ROUTE_TABLE_ID_PATTERN: "rtb-0a1b2c3d4e5f67890",
    SECURITY_GROUP_ID_PATTERN: "sg-0a1b2c3d4e5f67890",
    SUBNET_ID_PATTERN: "subnet-0a1b2c3d4e5f67890",
}


def id_problem(value: object, pattern: re.Pattern[str]) -> str | None:
    """Why `value` is not an id of `pattern`'s kind, or None."""
    if isinstance(value, str) and pattern.fullmatch(value):
        return None
    return f"must be an id like {EXAMPLE_IDS[pattern]!r}, got {value!r}"


def id_list_problems(at: str, values: object, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(where, what) of each problem of `values`, a non-empty array of ids of `pattern`'s kind."""
    if not (isinstance(values, tuple) and values):
        return [(at, f"must be a non-empty array of ids like [{EXAMPLE_IDS[pattern]!r}], got {values!r}")]
    problems = [(f"{at}[{index}]", id_problem(value, pattern)) for index, value in enumerate(values)]
    problems += [
        (at, f"{value!r} is listed more than once")
        for value in sorted({v for v in values if isinstance(v, str) and values.count(v) > 1})
    ]
    return [(where, message) for where, message in problems if message]


def network_problems(environment: Environment, *, source: str) -> list[Problem]:
    """Problems of an environment's `[<env>.network]` table; each `at` starts with `network.`."""
    network = environment.network
    assert network is not None
    problems = []

    def add(at: str, message: str | None) -> None:
        if message:
            problems.append(
                Problem(source=source, subject=f"[{environment.name}]", at=f"network.{at}", message=message)
            )

    def check_id(at: str, value: object, pattern: re.Pattern[str]) -> None:
        add(at, id_problem(value, pattern))

    def check_ids(at: str, pattern: re.Pattern[str]) -> None:
        for where, message in id_list_problems(at, getattr(network, at), pattern):
            add(where, message)

    def check_cidr(at: str, value: object) -> ipaddress.IPv4Network | None:
        cidr, message = parse_cidr(value)
        add(at, message)
        return cidr

    def check_pattern(at: str, pattern: re.Pattern[str], example: str) -> re.Match[str] | None:
        value = getattr(network, at)
        match = pattern.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            add(at, f"must look like {example!r}, got {value!r}")
        return match

    # The two VPCs and their route tables.
    check_id("operator_vpc_id", network.operator_vpc_id, VPC_ID_PATTERN)
    check_id("database_vpc_id", network.database_vpc_id, VPC_ID_PATTERN)
    if network.operator_vpc_id == network.database_vpc_id:
        add("operator_vpc_id", f"is the database VPC too ({network.operator_vpc_id!r}); a VPC cannot peer with itself")
    check_ids("operator_route_table_ids", ROUTE_TABLE_ID_PATTERN)
    check_ids("database_route_table_ids", ROUTE_TABLE_ID_PATTERN)
    check_id("cluster_security_group_id", network.cluster_security_group_id, SECURITY_GROUP_ID_PATTERN)

    vpcs = {}
    low, high = VPC_PREFIX_LENGTHS
    for at in ("operator_vpc_cidr", "database_vpc_cidr"):
        cidr = check_cidr(at, getattr(network, at))
        if cidr is not None and not low <= cidr.prefixlen <= high:
            add(at, f"must be between /{low} and /{high}, the sizes AWS allows for a VPC, got /{cidr.prefixlen}")
        elif cidr is not None:
            vpcs[at] = cidr
    if len(vpcs) == 2 and vpcs["operator_vpc_cidr"].overlaps(vpcs["database_vpc_cidr"]):
        add(
            "operator_vpc_cidr",
            f"{vpcs['operator_vpc_cidr']} overlaps database_vpc_cidr {vpcs['database_vpc_cidr']}; "
            "peered VPCs need address ranges that do not overlap",
        )

    # Where the operator VPC is, and how the stack reaches it.
    operator_account = network.operator_account_id or environment.account_id
    operator_region = network.operator_region or environment.region
    given_account = network.operator_account_id is not None
    if given_account and not check_pattern("operator_account_id", ACCOUNT_PATTERN, "123456789012"):
        operator_account = environment.account_id  # reported once; no second problem about the role
    if network.operator_region is not None:
        check_pattern("operator_region", REGION_PATTERN, "eu-west-1")
    if network.operator_role_arn is not None:
        role = check_pattern("operator_role_arn", IAM_ROLE_ARN_PATTERN, "arn:aws:iam::123456789012:role/operator")
        if role is not None and role.group(1) != operator_account:
            add(
                "operator_role_arn",
                f"is a role in account {role.group(1)}, but the operator VPC is in account {operator_account}; "
                "give a role in the operator account",
            )
    elif operator_account != environment.account_id:
        add(
            "operator_role_arn",
            f"is required when the operator VPC is in another account ({operator_account}, not "
            f"{environment.account_id}): the role the stack assumes there",
        )

    # The one source allowed to reach the cluster.
    host_is_the_source = network.host == OperatorHost.SSM
    given = [at for at in ("operator_security_group_id", "operator_cidr") if getattr(network, at) is not None]
    if host_is_the_source and given:
        add(given[0], "must be left out when host = 'ssm': the host's own security group is the source")
    elif not host_is_the_source and len(given) != 1:
        add(
            "operator_security_group_id",
            "give exactly one of operator_security_group_id and operator_cidr, the only source allowed to reach "
            f"the cluster (got {'both' if given else 'neither'})",
        )
    if network.operator_security_group_id is not None:
        check_id("operator_security_group_id", network.operator_security_group_id, SECURITY_GROUP_ID_PATTERN)
        if operator_region != environment.region:
            add(
                "operator_security_group_id",
                f"cannot be referenced from another region (operator VPC in {operator_region}, cluster in "
                f"{environment.region}); give operator_cidr instead",
            )
    if network.operator_cidr is not None:
        cidr = check_cidr("operator_cidr", network.operator_cidr)
        operator_vpc = vpcs.get("operator_vpc_cidr")
        if cidr is not None and cidr.prefixlen == 0:
            add(
                "operator_cidr",
                f"{cidr} would let every address reach the cluster; give the operator host's subnet, "
                "e.g. '10.100.1.0/24'",
            )
        elif cidr is not None and operator_vpc is not None and not cidr.subnet_of(operator_vpc):
            add(
                "operator_cidr",
                f"{cidr} is not inside operator_vpc_cidr {operator_vpc}: only the operator VPC reaches the cluster "
                "over the peering",
            )

    # The operator host, when the stack creates one.
    if not isinstance(network.host, OperatorHost):
        allowed = ", ".join(repr(str(host)) for host in OperatorHost)
        add("host", f"must be one of {allowed}, got {network.host!r}")
    elif network.host == OperatorHost.NONE:
        if network.host_subnet_id is not None:
            add("host_subnet_id", "is only used when host is 'cloud9' or 'ssm'; remove it or set host")
    elif network.host_subnet_id is None:
        add("host_subnet_id", f"is required when host = {str(network.host)!r}: the operator subnet it runs in")
    else:
        check_id("host_subnet_id", network.host_subnet_id, SUBNET_ID_PATTERN)
    instance_type = network.host_instance_type
    if not (isinstance(instance_type, str) and INSTANCE_TYPE_PATTERN.fullmatch(instance_type)):
        add("host_instance_type", f"must be an EC2 instance type like 't3.small', got {instance_type!r}")
    elif network.host == OperatorHost.CLOUD9 and is_graviton(instance_type):
        add("host_instance_type", f"{instance_type!r} has an Arm processor; Cloud9 runs x86_64 only (try 't3.small')")
    egress = network.host_https_egress_cidrs
    if not isinstance(egress, tuple):
        add("host_https_egress_cidrs", f"must be an array of CIDR blocks, got {egress!r}")
    elif egress and not host_is_the_source:
        add("host_https_egress_cidrs", "is only used when host = 'ssm'; remove it")
    else:
        for index, value in enumerate(egress):
            check_cidr(f"host_https_egress_cidrs[{index}]", value)
    return problems


def app_users(service: Service) -> int:
    """How many app users the service has: two with alternating rotation, which may both be connected."""
    return 2 if service.rotation_strategy == RotationStrategy.ALTERNATING else 1


def budget_problems(environment: Environment, services: Iterable[Service], *, source: str) -> list[Problem]:
    """The services' connection limits must fit the environment's budget, when it has one."""
    if environment.max_connections is None:
        return []
    # Retired services cannot log in; limits that are not whole numbers are reported on their own.
    services = [
        s
        for s in services
        if s.retired is not True
        and not check_int(s.connection_limit, low=0, high=MAX_CONNECTION_LIMIT)
        and not check_int(s.migrator_connection_limit, low=0, high=MAX_CONNECTION_LIMIT)
    ]

    def connections(service: Service) -> int:
        return app_users(service) * service.connection_limit + service.migrator_connection_limit

    wanted = sum(connections(s) for s in services)
    if wanted <= environment.max_connections:
        return []
    biggest = sorted(services, key=lambda s: -connections(s))[:3]
    top = ", ".join(
        f"{s.name}={'2x' if app_users(s) > 1 else ''}{s.connection_limit}+{s.migrator_connection_limit}"
        for s in biggest
    )
    return [
        Problem(
            source=source,
            subject=f"[{environment.name}]",
            at="max_connections",
            message=(
                f"the services' connection limits add up to {wanted}, above the budget of "
                f"{environment.max_connections} (largest: {top}); lower connection_limit on some "
                f"services or raise max_connections"
            ),
        )
    ]


def execution_role_problems(environment: Environment, services: Iterable[Service], *, source: str) -> list[Problem]:
    """Role names made from `execution_role_format`, and `task_role_format` for the services that log
    in with IAM, must be valid IAM role names."""
    services = list(services)
    formats = (
        ("execution_role", environment.execution_role_for, services),
        ("task_role", environment.task_role_for, [s for s in services if s.auth == Auth.IAM]),
    )
    problems = []
    for field_name, role_for, users in formats:
        try:
            names = {role_for(s): s.name for s in users if getattr(s, field_name) is None}
        except (KeyError, IndexError, ValueError, AttributeError):
            continue  # the format itself is reported by environment_problems
        problems += [
            Problem(
                source=source,
                subject=f"[{environment.name}]",
                at=f"{field_name}_format",
                message=(
                    f"gives {role!r} for service {service!r}, which is not an IAM role name "
                    f"({IAM_ROLE_NAME_PATTERN.pattern}); change the format or set {field_name} on the service"
                ),
            )
            for role, service in names.items()
            if not IAM_ROLE_NAME_PATTERN.fullmatch(role)
        ]
    return problems


def shared_account_problems(
    environments: Iterable[tuple[Environment, str]], services: Iterable[Service]
) -> list[Problem]:
    """Two environments in one account must not write the same secrets or the same IAM policies.

    Secret names are unique per account and region; a secret's read policy is named after its user
    (`servicedb-<user>-secret-read`) on the execution role. Two stacks writing the same one would
    overwrite each other's secrets or let one environment's role read only the other's secret.
    """
    problems = []
    services = [s for s in services if s.retired is not True]
    secrets_of: dict[tuple[str, str, str], str] = {}
    policies_of: dict[tuple[str, str, str], str] = {}
    for environment, source in environments:
        where = f"[{environment.name}]"
        key = (environment.account_id, environment.region, environment.secret_prefix)
        if key in secrets_of and secrets_of[key] != environment.name:
            problems.append(
                Problem(
                    source=source,
                    subject=where,
                    at="secret_name_prefix",
                    message=(
                        f"gives the same secret names as [{secrets_of[key]}] "
                        f"({environment.secret_prefix}<service>/app) in account {environment.account_id}, "
                        f"region {environment.region}: each stack would "
                        "overwrite the other's secrets; set a different secret_name_prefix"
                    ),
                )
            )
        secrets_of.setdefault(key, environment.name)
        try:
            readers = [
                (user, role)
                for s in services
                for user, role in (
                    (f"{s.name}_app", environment.execution_role_for(s)),
                    (f"{s.name}_migrator", environment.migration_execution_role_for(s)),
                )
            ]
        except (KeyError, IndexError, ValueError, AttributeError):
            continue  # the format itself is reported by environment_problems
        clashes = []
        for user, role in readers:
            policy = (environment.account_id, role, user)
            if policy in policies_of and policies_of[policy] != environment.name:
                clashes.append((policies_of[policy], role, user))
            policies_of.setdefault(policy, environment.name)
        if clashes:
            other, role, user = clashes[0]
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            problems.append(
                Problem(
                    source=source,
                    subject=where,
                    at="execution_role_format",
                    message=(
                        f"gives {user}'s secret to the execution role {role!r}, as [{other}] does in the same "
                        f"account {environment.account_id}{more}: both stacks would write the policy "
                        f"servicedb-{user}-secret-read on it; put {{env}} in execution_role_format, or set "
                        "execution_role per environment"
                    ),
                )
            )
    return problems


def validate(
    services: Iterable[tuple[object, str]],
    environments: Iterable[tuple[Environment, str]],
) -> None:
    """Check every declaration, each paired with the file it came from; raise once if anything is wrong."""
    problems = find_problems(services, environments)
    if problems:
        raise DeclarationError(problems)


def find_problems(
    services: Iterable[tuple[object, str]],
    environments: Iterable[tuple[Environment, str]],
) -> list[Problem]:
    """Every problem of every declaration, each paired with the file it came from."""
    services = list(services)
    environments = list(environments)
    problems: list[Problem] = []

    by_name: dict[str, Service] = {}
    sources: dict[str, str] = {}
    valid: list[Service] = []
    for service, source in services:
        own = service_problems(service, source=source)
        problems += own
        if not own:
            valid.append(service)  # type: ignore[arg-type]
        if not isinstance(service, Service) or not isinstance(service.name, str):
            continue
        if service.name in by_name:
            problems.append(
                Problem(
                    source=source,
                    subject=subject(service),
                    at="name",
                    message=f"{service.name!r} is already declared in {sources[service.name]}; rename one of them",
                )
            )
            continue
        by_name[service.name] = service
        sources[service.name] = source
    problems += cross_service_problems(by_name, sources)

    seen_environments: dict[str, str] = {}
    valid_environments = []
    for environment, source in environments:
        own = environment_problems(environment, source=source)
        problems += own
        if not own:
            valid_environments.append((environment, source))
        elif any(problem.at in ("name", "max_connections") for problem in own):
            continue  # what the checks below compare is itself wrong, and reported
        if environment.name in seen_environments:
            problems.append(
                Problem(
                    source=source,
                    subject=f"[{environment.name}]",
                    at="",
                    message=f"environment {environment.name!r} is declared twice",
                )
            )
        seen_environments[environment.name] = source
        problems += budget_problems(environment, by_name.values(), source=source)
        problems += execution_role_problems(environment, by_name.values(), source=source)
    problems += shared_account_problems(valid_environments, [s for s in valid if by_name.get(s.name) is s])
    return problems
