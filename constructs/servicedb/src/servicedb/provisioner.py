"""The in-VPC provisioner: a Lambda function that applies the plan as `servicedb apply` does.

With `provisioner = "lambda"`, Terraform invokes this function (`aws_lambda_invocation`) with the
plan whenever the plan changes, so nothing that runs Terraform needs a network path to the
cluster. The function runs in the cluster's subnets, reads the master user's and the login users'
passwords from Secrets Manager, and runs the same `apply_plan` (inspect, diff, apply) as the CLI,
over pg8000, a pure-Python driver packaged with it. `verify` is its second action.

The event, which Terraform keeps in its state, holds no password:

    {"action": "apply" | "verify",            (default: apply)
     "plan": <the Plan, as `plan_to_json` writes it>,
     "secret_arns": {"<login user>": "<ARN of its secret>", ...},
     "sslmode": "require" | "disable"}        (default: require)

Its third action, `expire`, is what an EventBridge schedule sends every few minutes: it removes
the break-glass roles whose time is up, as `servicedb expire` does (`servicedb.expire`), one JSON
line per action in the function's log. It needs only the cluster, so its event is small enough
for a schedule's input (8 KB):

    {"action": "expire", "environment": <the plan's Environment>, "sslmode": ...}

The result, kept in the state too, says what ran and what differed, never a password. A plan
that cannot be applied, an unreadable secret or a failed statement fails the invocation, and so
the deploy, with one message saying which and why.

Nothing here imports cdktf, jsii or psycopg; boto3, which the Lambda runtime has, only in `handler`.
"""

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from servicedb.access import current_time
from servicedb.apply import ApplyError, apply_plan
from servicedb.driver import Pg8000Server, failure
from servicedb.expire import expire
from servicedb.passwords import SecretsError, SecretsManagerSecrets, master_credentials
from servicedb.plan import Plan, PlanInvariantError, check_invariants
from servicedb.spec import Environment
from servicedb.sql import Statement
from servicedb.verify import Level, verify

HANDLER = "servicedb.provisioner.handler"
"""The function's handler setting: this module's `handler`."""

SUMMARY_LIMIT = 200
"""Descriptions listed in a result at most; the state keeps the result, the log keeps them all."""


class Action(enum.StrEnum):
    APPLY = "apply"
    """Apply what differs from the plan (the default)."""
    VERIFY = "verify"
    """Report the effective-access matrix and every difference; change nothing."""
    EXPIRE = "expire"
    """Remove the break-glass roles whose time is up (`servicedb.expire`)."""


class SslMode(enum.StrEnum):
    REQUIRE = "require"
    """Encrypted, the server's certificate not verified: libpq's `sslmode=require` (the default)."""
    DISABLE = "disable"
    """Unencrypted: for a server without TLS, such as the tests' throwaway ones."""


class ProvisionError(Exception):
    """Why the invocation failed; the function's error message, which the deploy shows."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    action: Action
    plan: Plan | None
    """None for `expire`, which needs the environment only."""
    secret_arns: Mapping[str, str]
    """Login user name to its secret's ARN; a user not listed is read by its secret's name."""
    sslmode: SslMode
    expiring: Environment | None = None
    """The environment whose expired break-glass roles `expire` removes."""

    @property
    def environment(self) -> Environment:
        return self.plan.environment if self.plan is not None else self.expiring  # type: ignore[return-value]


def plan_to_json(value: object) -> Any:
    """A plan (or any of its values) as JSON: dataclasses as objects, tuples as arrays, enums as
    values, times as ISO 8601 text with their offset."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plan_to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [plan_to_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def plan_from_json(kind: Any, value: object, at: str = "plan") -> Any:
    """The value of type `kind` that `plan_to_json` wrote as `value`; ProvisionError saying where not."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        if value is None and type(None) in typing.get_args(kind):
            return None
        [kind] = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ProvisionError(f"event: {at} must be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        if unknown := sorted(set(value) - names):
            raise ProvisionError(f"event: {at} has unknown fields {', '.join(unknown)}; is the function up to date?")
        try:
            return kind(**{name: plan_from_json(hints[name], item, f"{at}.{name}") for name, item in value.items()})
        except TypeError as error:
            raise ProvisionError(f"event: {at}: {error}") from None
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            raise ProvisionError(f"event: {at} must be an array, got {type(value).__name__}")
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(plan_from_json(args[0], item, f"{at}[{index}]") for index, item in enumerate(value))
        if len(args) != len(value):
            raise ProvisionError(f"event: {at} must have {len(args)} items, got {len(value)}")
        return tuple(
            plan_from_json(arg, item, f"{at}[{index}]")
            for index, (arg, item) in enumerate(zip(args, value, strict=True))
        )
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in kind)
            raise ProvisionError(f"event: {at} must be one of {allowed}, got {value!r}") from None
    if kind in (str, int, bool) and type(value) is kind:
        return value
    if kind is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise ProvisionError(f"event: {at} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def event(
    plan: Plan,
    *,
    secret_arns: Mapping[str, str],
    action: Action = Action.APPLY,
    sslmode: SslMode = SslMode.REQUIRE,
) -> dict[str, object]:
    """The event that makes the function apply (or verify) `plan`."""
    return {
        "action": str(action),
        "plan": plan_to_json(plan),
        "secret_arns": dict(secret_arns),
        "sslmode": str(sslmode),
    }


def expire_event(environment: Environment, *, sslmode: SslMode = SslMode.REQUIRE) -> dict[str, object]:
    """The event that makes the function remove the environment's expired break-glass roles."""
    return {"action": str(Action.EXPIRE), "environment": plan_to_json(environment), "sslmode": str(sslmode)}


def invocation(received: object) -> Invocation:
    """The invocation an event asks for, checked: the plan holds the isolation rules, as planned."""
    if not isinstance(received, dict):
        raise ProvisionError(f"event: must be an object, got {type(received).__name__}")
    known = {"action", "plan", "secret_arns", "sslmode", "environment"}
    if unknown := sorted(set(received) - known):
        raise ProvisionError(f"event: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    sslmode = plan_from_json(SslMode, received.get("sslmode", str(SslMode.REQUIRE)), "sslmode")
    if received.get("action") == str(Action.EXPIRE):
        if "environment" not in received:
            raise ProvisionError("event: expire needs the environment; use `provisioner.expire_event`")
        environment = plan_from_json(Environment, received["environment"], "environment")
        return Invocation(action=Action.EXPIRE, plan=None, secret_arns={}, sslmode=sslmode, expiring=environment)
    if "plan" not in received:
        raise ProvisionError("event: no plan; invoke the function with the event `servicedb event` prints")
    secret_arns = received.get("secret_arns", {})
    if not (isinstance(secret_arns, dict) and all(isinstance(v, str) for v in secret_arns.values())):
        raise ProvisionError("event: secret_arns must map login user names to secret ARNs")
    plan = plan_from_json(Plan, received["plan"])
    try:
        check_invariants(plan)
    except PlanInvariantError as error:
        raise ProvisionError(f"event: {error}") from None
    return Invocation(
        action=plan_from_json(Action, received.get("action", str(Action.APPLY)), "action"),
        plan=plan,
        secret_arns=secret_arns,
        sslmode=sslmode,
    )


def listed(name: str, descriptions: list[str]) -> dict[str, object]:
    """`{name: [...]}` with at most SUMMARY_LIMIT descriptions, and `more_<name>` counting the rest."""
    more = len(descriptions) - SUMMARY_LIMIT
    return {name: descriptions[:SUMMARY_LIMIT], **({f"more_{name}": more} if more > 0 else {})}


def admin_credentials(environment: Environment, *, secrets: Any, tokens: Any = None) -> tuple[str, str]:
    """The admin's user and password: an IAM token for `admin_iam_user` from `tokens` (an RDS
    client), else the master secret's."""
    if environment.admin_iam_user:
        if tokens is None:
            raise ProvisionError(f"{environment.name}: admin_iam_user is set, but no RDS client makes its token")
        token = tokens.generate_db_auth_token(
            DBHostname=environment.endpoint,
            Port=environment.port,
            DBUsername=environment.admin_iam_user,
            Region=environment.region,
        )
        return environment.admin_iam_user, token
    return master_credentials(secrets, environment.master_secret_arn)


def provision(
    invocation: Invocation, *, secrets: Any, log: Callable[[str], None] = print, tokens: Any = None
) -> dict[str, object]:
    """Run the invocation's action with `secrets`, a Secrets Manager client (and `tokens`, an RDS
    client, for an admin that logs in with IAM); the result to return."""
    environment = invocation.environment
    try:
        user, password = admin_credentials(environment, secrets=secrets, tokens=tokens)
        server = Pg8000Server(
            host=environment.endpoint,
            port=environment.port,
            user=user,
            password=password,
            ssl=invocation.sslmode == SslMode.REQUIRE,
            connect_timeout_seconds=environment.connect_timeout_seconds,
        )
        if invocation.action == Action.EXPIRE:
            with server.connect() as conn:
                lines: list[str] = []

                def audit(line: str) -> None:
                    lines.append(line)
                    log(line)

                failed = expire(conn, connect=server.connect, now=current_time(), out=audit)
            removed = sum(1 for line in lines if '"action": "drop_role"' in line)
            if failed:
                # A failed run is an error of the function: its alarm goes off (`ExpirySchedule`).
                raise ProvisionError(f"expire: {failed} break-glass roles could not be removed; the log says why")
            return {"action": str(Action.EXPIRE), "ok": True, "removed": removed}
        if invocation.action == Action.VERIFY:
            with server.connect() as conn:
                report = verify(conn, invocation.plan, connect=server.connect)
            return {
                "action": str(Action.VERIFY),
                "ok": report.ok,
                **listed("differences", [f"{d.kind}: {d.message}" for d in report.differences]),
                **({"not_checked": list(report.notes)} if report.notes else {}),
                "access": {
                    login: {
                        database: str(access.level) for database, access in row.items() if access.level != Level.NONE
                    }
                    for login, row in report.access.items()
                },
            }
        store = SecretsManagerSecrets(secrets, secret_ids=invocation.secret_arns)
        ran: list[Statement] = []
        apply_plan(server, invocation.plan, store, out=log, ran=ran)
    except (ApplyError, SecretsError) as error:
        raise ProvisionError(str(error)) from None
    except Exception as error:
        refused = failure(error)
        if refused is None:
            raise
        where = f"{environment.endpoint}:{environment.port}"
        raise ProvisionError(f"PostgreSQL at {where}: {refused.message}") from None
    return {
        "action": str(Action.APPLY),
        "ok": True,
        "statements_run": len(ran),
        **listed("drift", [statement.description for statement in ran]),
    }


def handler(received: object, context: object = None) -> dict[str, object]:
    """The Lambda entry point: run the action the event asks for; the result, or an error."""
    import boto3

    requested = invocation(received)
    region = requested.environment.region
    secrets = boto3.client("secretsmanager", region_name=region)
    tokens = boto3.client("rds", region_name=region) if requested.environment.admin_iam_user else None
    return provision(requested, secrets=secrets, tokens=tokens)
