"""`servicedb`: the plan as SQL, and plan, apply and verify it on a live PostgreSQL server.

    servicedb sql    [--services DIR] [--env ENV]
    servicedb plan   --url URL [--services DIR] [--env ENV]
    servicedb apply  --url URL [--services DIR] [--env ENV] [--lock-timeout 10s]
    servicedb verify --url URL [--services DIR] [--env ENV] [--format text|json|markdown|html]
    servicedb expire --url URL [--access DIR]
    servicedb demo   [--services DIR]
    servicedb event  --env ENV [--services DIR] [--action apply|verify]
    servicedb record [--services DIR] [--record FILE]
    servicedb split  plan|copy|sync|verify|cutover|rollback DATABASE --from URL --url URL [--service NAME]

Break-glass grants come from `--access` (default: `access/` beside the services directory);
`$SERVICEDB_NOW` fixes the time that decides which of them are live.

User errors (bad declarations, an unreachable server, a missing secret, a failed statement)
print one clear message and exit 1, without a traceback. No command prints a password.
"""

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from servicedb.access import AccessLevel, TemporaryAccess, current_time, find_access_problems, notice
from servicedb.apply import LOCK_TIMEOUT, ApplyError, apply_plan, changes_for
from servicedb.diff import diff
from servicedb.errors import DeclarationError, did_you_mean
from servicedb.expire import expire
from servicedb.load import default_access_dir, load_access, load_declarations, load_services
from servicedb.passwords import LocalSecrets, SecretsError, SecretsManagerSecrets
from servicedb.plan import Plan, plan_services
from servicedb.provisioner import Action, event
from servicedb.record import changes, read_record, record_problems, wanted_record, write_record
from servicedb.server import ServerError
from servicedb.spec import Environment, Provisioner, Service, find_problems
from servicedb.sql import render_script
from servicedb.verify import FORMATS, LOGIN_CONNECTIONS, prove_logins, verify

LOCAL = "local"
URL_VARIABLE = "SERVICEDB_URL"


class UsageError(Exception):
    """Anything the user can fix; printed as is."""


def local_environment(host: str, port: int) -> Environment:
    """The environment used without `--env`: a server of your own, secrets in a local file."""
    return Environment(
        name=LOCAL,
        region="us-east-1",
        account_id="000000000000",
        cluster_identifier=LOCAL,
        endpoint=host,
        port=port,
        master_secret_arn="arn:aws:secretsmanager:us-east-1:000000000000:secret:servicedb-local",
        engine_version="16",
        secret_recovery_window_days=0,
    )


def load_plan(args: argparse.Namespace, *, host: str = "localhost", port: int = 5432) -> tuple[Plan, list[str]]:
    """The plan of `--services` and `--access` for `--env`, or for the local environment without
    it, and one line on each of the environment's break-glass grants (live, pending, expired)."""
    now = current_time()
    check_record(args)  # first: a deleted declaration also breaks the reads of it
    access_dir = args.access or default_access_dir(args.services)
    if args.env:
        declarations = load_declarations(args.services, args.environments, access_dir)
        try:
            environment = declarations.environment(args.env)
        except KeyError as error:
            raise UsageError(f"--env {args.env}: {error.args[0]} in {args.environments}") from None
        services, access = list(declarations.services), list(declarations.access)
    else:
        environment = local_environment(host, port)
        services = local_services(args.services, environment)
        access = local_access(access_dir, services, environment)
    here = [(grant, source) for grant, source in access if grant.environment == environment.name]
    plan = plan_services(services, environment, access=[grant for grant, _ in here], now=now)
    return plan, [notice(grant, source, now) for grant, source in here]


def check_record(args: argparse.Namespace) -> None:
    """Refuse, as `cdktf synth` does, a service the record of deployed services lists whose
    declaration is gone, or a record out of date; when there is a record (`--record`, or
    `deployed.toml` beside the services directory). Without one, nothing is known to be deployed."""
    record = args.record or Path(args.services).parent / "deployed.toml"
    if not record.exists():
        return
    services, _ = load_services(args.services)  # their own problems are reported by the caller
    problems = record_problems(services, services_dir=args.services, record=record)
    if problems:
        raise DeclarationError(problems)


def local_services(directory: Path, environment: Environment) -> list[Service]:
    """The services declared in `directory`, checked against the local environment."""
    services, problems = load_services(directory)
    problems += find_problems(services, [(environment, "the local environment")])
    if problems:
        raise DeclarationError(problems)
    return [service for service, _ in services]


def local_access(
    directory: Path, services: list[Service], environment: Environment
) -> list[tuple[TemporaryAccess, str]]:
    """The break-glass grants declared in `directory` for the local environment, checked."""
    declared, problems = load_access(directory)
    mine = [(a, source) for a, source in declared if getattr(a, "environment", None) == environment.name]
    problems += find_access_problems(
        mine, services={s.name for s in services}, environments={environment.name: environment}
    )
    if problems:
        raise DeclarationError(problems)
    return mine  # type: ignore[return-value]  # checked above


def redacted(url: str) -> str:
    """The URL's connection parameters without the password, for messages."""
    params = conninfo_to_dict(url)
    params.pop("password", None)
    return make_conninfo(**params)


class Server:
    """Connections to the server behind `--url`, as its admin or as a login user."""

    connection_class: type[psycopg.Connection] = psycopg.Connection
    """What `connect` and `connect_as` open; a subclass can count or trace."""

    def __init__(self, url: str) -> None:
        self.url = url
        params = conninfo_to_dict(url)
        self.host = str(params.get("host") or "localhost")
        self.port = int(params.get("port") or 5432)
        self.admin_database = str(params.get("dbname") or "postgres")

    def connect(self, database: str | None = None) -> psycopg.Connection:
        try:
            return self.connection_class.connect(
                self.url,
                dbname=database or self.admin_database,
                autocommit=True,
                application_name="servicedb",
                connect_timeout=15,
            )
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[-1]
            where = f"{redacted(self.url)} (database {database or self.admin_database})"
            raise UsageError(f"cannot connect to {where}: {reason}") from None

    def connect_as(self, user: str, password: str, database: str | None = None) -> psycopg.Connection:
        return self.connection_class.connect(
            self.url,
            user=user,
            password=password,
            dbname=database or self.admin_database,
            autocommit=True,
            application_name="servicedb",
            connect_timeout=15,
        )


def password_store(args: argparse.Namespace, plan: Plan) -> LocalSecrets | SecretsManagerSecrets:
    """Secrets Manager for a declared environment (the Terraform stack's secrets), else a local file.

    A declared environment never defaults to a local file: passwords generated there would replace,
    on the server, the ones running services read from Secrets Manager.
    """
    if args.secrets == "aws" or (args.secrets is None and args.env):
        import boto3

        return SecretsManagerSecrets(boto3.client("secretsmanager", region_name=plan.environment.region))
    return LocalSecrets(Path(args.secrets or f".servicedb/{plan.environment.name}-secrets.json"))


def print_notices(notices: list[str], out: Callable[[str], None]) -> None:
    for line in notices:
        out(f"-- temporary access: {line}")


def cmd_sql(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    plan, notices = load_plan(args)
    print_notices(notices, out)
    out(render_script(diff(plan, None).statements).rstrip("\n"))
    return 0


def cmd_plan(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    server = Server(args.url)
    plan, notices = load_plan(args, host=server.host, port=server.port)
    print_notices(notices, out)
    changes, _, complete = changes_for(server, plan, password_store(args, plan), write_secrets=False)
    for problem in changes.problems:
        out(f"-- cannot apply: {problem}")
    if not changes.statements:
        out("-- nothing to do: the server matches the declarations")
        return 1 if changes.problems else 0
    out(render_script(changes.statements, admin_database=server.admin_database).rstrip("\n"))
    if not complete:
        out("-- some databases could not be read yet; apply reads them once the admin acts as their owners")
    out(f"-- {len(changes.statements)} statements to apply")
    return 1 if changes.problems else 0


def cmd_apply(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    server = Server(args.url)
    plan, notices = load_plan(args, host=server.host, port=server.port)
    print_notices(notices, out)
    apply_plan(server, plan, password_store(args, plan), out=out, lock_timeout=args.lock_timeout)
    return 0


def cmd_verify(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    server = Server(args.url)
    plan, _ = load_plan(args, host=server.host, port=server.port)
    with server.connect() as conn:
        report = verify(conn, plan, connect=server.connect)
    if args.logins:
        store = password_store(args, plan)
        passwords = store.stored_passwords() if isinstance(store, LocalSecrets) else store.passwords(plan)
        report = prove_logins(report, plan, passwords, server.connect_as)
    out(FORMATS[args.format](report).rstrip("\n"))
    return 0 if report.ok else 1


def cmd_event(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    if not args.env:
        raise UsageError("--env is required: the environment whose provisioner function the event is for")
    plan, _ = load_plan(args)  # the notices are in plan/apply's output; this prints JSON only
    if plan.environment.provisioner != Provisioner.LAMBDA:
        raise UsageError(
            f"--env {args.env}: its provisioner is {plan.environment.provisioner}, not lambda; "
            f"there is no function to invoke (use servicedb {args.action} --url ... instead)"
        )
    # Without ARNs the function reads each login user's secret by its name, which its policy allows.
    out(json.dumps(event(plan, secret_arns={}, action=Action(args.action))))
    return 0


def cmd_expire(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Remove the temporary roles past their time; each declaration found in `--access` adds its why.

    Declarations that cannot be read are reported and left out: expiry never waits for them.
    """
    declared, problems = load_access(args.access or Path("access"))
    if problems:
        print(f"servicedb expire: reading without these declarations:\n{DeclarationError(problems)}", file=sys.stderr)
    by_role = {}
    for access, source in declared:
        try:
            by_role[access.role_name] = (access, source)
        except (AttributeError, TypeError, ValueError):
            print(f"servicedb expire: {source}: not a valid TemporaryAccess; left out", file=sys.stderr)
    server = Server(args.url)
    now = current_time()
    try:
        with server.connect() as conn:
            failed = expire(conn, connect=server.connect, now=now, declared=by_role, out=out)
    except psycopg.Error as error:
        raise UsageError(f"failed on {redacted(server.url)}: {error.diag.message_primary or error}") from None
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from servicedb.demo import demo

    return demo(args.services, out=out)


def next_minute(now: datetime) -> datetime:
    """The next whole minute after `now`, in UTC."""
    return (now.astimezone(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)


def docstring(text: str) -> str:
    """`text` safe inside triple double quotes."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def access_file_text(grant: TemporaryAccess) -> str:
    """An `access/*.py` declaration of `grant`, as a reviewer reads it."""
    why = f" {grant.reason}" if grant.reason else ""
    title = f"{grant.ticket}: {grant.person} may {grant.level} {grant.service} in {grant.environment}"
    fields = [
        f"person={grant.person!r}",
        f"principal_arn={grant.principal_arn!r}",
        f"environment={grant.environment!r}",
        f"service={grant.service!r}",
        f"ticket={grant.ticket!r}",
        f"valid_from=datetime({grant.valid_from:%Y, %-m, %-d, %-H, %-M}, tzinfo=UTC)",
        f"valid_until=datetime({grant.valid_until:%Y, %-m, %-d, %-H, %-M}, tzinfo=UTC)",
    ]
    if grant.level != AccessLevel.READ:
        fields.append(f"level={str(grant.level)!r}")
    if grant.reason:
        fields.append(f"reason={grant.reason!r}")
    body = "".join(f"    {field},\n" for field in fields)
    return (
        f'"""{docstring(f"{title} until {grant.valid_until:%Y-%m-%d %H:%M} UTC.{why}")}"""\n\n'
        "from datetime import UTC, datetime\n\nfrom servicedb import TemporaryAccess\n\n"
        f"ACCESS = TemporaryAccess(\n{body})\n"
    )


def cmd_access(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """`servicedb access request`: write the declaration of a break-glass grant that starts at the
    next whole minute, check it as `cdktf synth` will, and print how to open the pull request."""
    start = next_minute(current_time())
    grant = TemporaryAccess(
        person=args.person,
        principal_arn=args.principal,
        environment=args.env,
        service=args.service,
        ticket=args.ticket,
        valid_from=start,
        valid_until=start + timedelta(hours=args.hours),
        level=AccessLevel(args.level),
        reason=args.reason or "",
    )
    access_dir = args.access or default_access_dir(args.services)
    slug = re.sub(r"[^a-z0-9]+", "-", grant.ticket.lower()).strip("-") or "grant"
    path = access_dir / f"{start:%Y-%m-%d}-{slug}-{grant.person}.py"
    if path.exists():
        raise UsageError(f"{path} exists already: one declaration per grant; edit it, or give another --ticket")
    access_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(access_file_text(grant))
    try:
        load_declarations(args.services, args.environments, access_dir)  # as cdktf synth reads them
    except DeclarationError:
        path.unlink()  # nothing half-done: no declaration that synth would refuse
        raise
    out(f"-- wrote {notice(grant, str(path), current_time())}")
    out("-- open the pull request, and deploy once it is merged (after the grant's start):")
    branch = f"access/{slug}-{grant.person}"
    message = f"{grant.ticket}: {grant.person} may {grant.level} {grant.service} in {grant.environment}"
    for command in (
        f"git switch -c {branch}",
        f"git add {path}",
        f"git commit -m {shlex.quote(message)}",
        f"git push -u origin {branch}",
    ):
        out(command)
    return 0


def cmd_record(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Write the record of deployed services from the declarations; refuse a gone declaration."""
    services, problems = load_services(args.services)
    problems += find_problems(services, [])
    recorded, record_problems = read_record(args.record)
    problems += record_problems
    wanted, gone = wanted_record(services, recorded or {}, services_dir=args.services)
    problems += gone
    if problems:
        raise DeclarationError(problems)
    differences = changes(recorded or {}, wanted)
    if recorded is not None and not differences:
        out(f"-- {args.record} is up to date")
        return 0
    write_record(args.record, wanted)
    out(f"-- wrote {args.record}: {', '.join(differences) or 'no services'}; commit it with the declarations")
    return 0


def cmd_split(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """`servicedb split ACTION DATABASE`: move the tables of a shared database into the services' own."""
    from servicedb.split.commands import run
    from servicedb.split.declaration import load_split, split_problems
    from servicedb.split.move import SplitError

    source_server, target_server = Server(args.source), Server(args.url)
    split_dir = args.splits or args.services.parent / "splits"
    split, source, problems = load_split(split_dir, args.database)
    plan, _ = load_plan(args, host=target_server.host, port=target_server.port)
    services = {service.service: service for service in plan.services}
    if split is not None:
        problems += split_problems(split, source=source, services=services)
    if problems:
        raise DeclarationError(problems)
    assert split is not None
    if args.service and args.service not in split.moves:
        names = list(split.moves)
        raise UsageError(
            f"--service {args.service}: the split of {args.database} gives no table to it"
            f"{did_you_mean(args.service, names)} (services: {', '.join(names)})"
        )
    if args.action in ("sync", "cutover", "rollback") and not args.service:
        raise UsageError(f"split {args.action} moves one service at a time: add --service NAME")
    if args.table and args.action != "sync":
        raise UsageError("--table is for split sync only")
    try:
        return run(
            args.action,
            split,
            services,
            connect_source=source_server.connect,
            connect_target=target_server.connect,
            out=out,
            service=args.service,
            tables=tuple(args.table or ()),
            timeout=args.timeout,
        )
    except SplitError as error:
        raise UsageError(f"split {args.action}: {error}") from None
    except psycopg.Error as error:
        raise UsageError(f"split {args.action} failed: {error.diag.message_primary or error}") from None


def duration(value: str) -> str:
    """A `lock_timeout` as PostgreSQL reads it: `500ms`, `10s`, `2min`."""
    if not re.fullmatch(r"[1-9]\d*(ms|s|min)", value):
        raise argparse.ArgumentTypeError(f"must be a duration like 500ms, 10s or 2min, got {value!r}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="servicedb",
        description="Per-service, isolated PostgreSQL access: the plan as SQL, plan/apply/verify on a live server.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_url(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--url",
            default=os.environ.get(URL_VARIABLE),
            required=URL_VARIABLE not in os.environ,
            help=f"libpq URL of the admin connection (CREATEDB, CREATEROLE); default: ${URL_VARIABLE}. "
            "Keep the password out of it: use PGPASSWORD or ~/.pgpass",
        )

    def add_access(sub: argparse.ArgumentParser, default: str) -> None:
        sub.add_argument(
            "--access",
            type=Path,
            metavar="DIR",
            help=f"directory of break-glass declarations, one ACCESS each (default: {default})",
        )

    def command(
        name: str,
        help_: str,
        *,
        url: bool,
        environment: bool = True,
        env_required: bool = False,
        secrets: bool = True,
        parent: Any = None,
    ) -> argparse.ArgumentParser:
        sub = (parent or commands).add_parser(name, help=help_, description=help_)
        sub.add_argument(
            "--services",
            type=Path,
            default=Path("services"),
            metavar="DIR",
            help="directory of service declarations, one <name>.py each (default: ./services)",
        )
        if environment:
            add_access(sub, "access/ beside --services")
            sub.add_argument(
                "--env",
                metavar="ENV",
                required=env_required,
                help="environment from --environments"
                + ("" if env_required else "; without it, a local server with secrets in a local file"),
            )
            sub.add_argument(
                "--environments",
                type=Path,
                default=Path("environments.toml"),
                metavar="FILE",
                help="environment declarations (default: ./environments.toml)",
            )
            sub.add_argument(
                "--record",
                type=Path,
                metavar="FILE",
                help="the record of deployed services (default: deployed.toml beside --services, when it "
                "exists): a recorded service whose declaration is gone is refused, as cdktf synth does",
            )
        if url:
            add_url(sub)
        if url and secrets:
            sub.add_argument(
                "--secrets",
                metavar="FILE|aws",
                help="where login users' passwords are: 'aws' for Secrets Manager (the secrets the Terraform "
                "stack created; the default with --env), or a 0600 JSON file (the default without --env: "
                ".servicedb/local-secrets.json)",
            )
        return sub

    command("sql", "Print the plan as SQL (a psql script), for review; connects to nothing.", url=False)
    command("plan", "Inspect the server and print the statements apply would run.", url=True)
    apply_parser = command("apply", "Inspect the server and run only the statements that differ.", url=True)
    apply_parser.add_argument(
        "--lock-timeout",
        type=duration,
        default=LOCK_TIMEOUT,
        metavar="DURATION",
        help=f"how long a statement waits for a lock another session holds before the apply stops "
        f"(default: {LOCK_TIMEOUT}). Two applies on one cluster take turns: the second waits for the first",
    )
    verify_parser = command(
        "verify", "Print the effective-access matrix and every difference; exit 1 if any.", url=True
    )
    verify_parser.add_argument(
        "--format", choices=sorted(FORMATS), default="text", help="output format (default: text)"
    )
    verify_parser.add_argument(
        "--logins",
        action="store_true",
        help="also log in as every login user with its stored secret (--secrets) to every managed database, "
        f"{LOGIN_CONNECTIONS} at a time, and report each login that differs from the declarations",
    )
    event_parser = command(
        "event",
        "Print the event that makes an environment's lambda provisioner apply or verify the plan, for "
        "`aws lambda invoke --payload fileb://...`; connects to nothing.",
        url=False,
        env_required=True,
    )
    event_parser.add_argument(
        "--action", choices=[str(action) for action in Action], default=str(Action.APPLY), help="default: apply"
    )
    expire_help = (
        "Remove break-glass roles past their VALID UNTIL: end their sessions, reassign and drop what they own, "
        "drop them; one JSON line per action. Safe to run every few minutes."
    )
    expire_parser = commands.add_parser("expire", help=expire_help, description=expire_help)
    add_url(expire_parser)
    add_access(expire_parser, "./access")
    command(
        "demo",
        "Start a throwaway PostgreSQL, apply the services, print the matrix, remove it all.",
        url=False,
        environment=False,
    )
    access_help = "Break-glass access: `request` writes a grant's declaration in access/, checked as synth will."
    access_parser = commands.add_parser("access", help=access_help, description=access_help)
    access_commands = access_parser.add_subparsers(dest="access_command", required=True, metavar="ACTION")
    request_help = (
        "Write access/<date>-<ticket>-<person>.py for a grant that starts at the next whole minute, check it "
        "as cdktf synth does (refusing it with the same messages), and print the git commands for its pull request."
    )
    request = access_commands.add_parser("request", help=request_help, description=request_help)
    request.add_argument("--person", required=True, help="the person's handle, e.g. jdoe")
    request.add_argument("--principal", required=True, help="the person's IAM role or user ARN, who reads the secret")
    request.add_argument("--env", required=True, metavar="ENV", help="the environment, from --environments")
    request.add_argument("--service", required=True, help="the service whose database the person needs")
    request.add_argument("--level", choices=[str(level) for level in AccessLevel], default="read", help="default: read")
    request.add_argument("--hours", type=int, default=4, help="how long, from the next whole minute (default: 4)")
    request.add_argument("--ticket", required=True, help="the incident or ticket, e.g. INC-123")
    request.add_argument("--reason", help="why; required with --level write: what must be written")
    request.add_argument("--services", type=Path, default=Path("services"), metavar="DIR", help="default: ./services")
    request.add_argument(
        "--environments",
        type=Path,
        default=Path("environments.toml"),
        metavar="FILE",
        help="default: ./environments.toml",
    )
    add_access(request, "access/ beside --services")
    add_split(commands, command)
    record = command(
        "record",
        "Write the record of deployed services (deployed.toml) that cdktf synth checks; refuses a "
        "deleted declaration of a service that is not purged.",
        url=False,
        environment=False,
    )
    record.add_argument(
        "--record",
        type=Path,
        default=Path("deployed.toml"),
        metavar="FILE",
        help="the record to write (default: ./deployed.toml)",
    )
    return top


def add_split(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """`servicedb split ACTION DATABASE ...`: one parser per action, each with the common options."""
    from servicedb.split.commands import ACTIONS

    split_help = "Move each service's tables out of a shared database into its own, as splits/<database>.py declares."
    split = commands.add_parser("split", help=split_help, description=split_help)
    actions = split.add_subparsers(dest="action", required=True, metavar="ACTION")
    helps = {
        "plan": "Read the shared database (read-only) and print, per service, what moves and every problem; "
        "exit 1 on problems.",
        "copy": "Create the tables in each service's schema, owned by its owner, copy the rows, then indexes and "
        "constraints; table by table, resumable.",
        "sync": "Replicate a service's tables from the shared database (publication, slot, subscription) "
        "until cutover.",
        "verify": "Compare rows and a content checksum of every moved table on both sides; exit 1 on any difference.",
        "cutover": "Stop the shared database's writes to a service's tables, let the copies catch up, verify, and "
        "make them the service's; print what to change in the service.",
        "rollback": "Give the shared database's writes back to a service's tables after a cutover.",
    }
    for action in ACTIONS:
        sub = command(action, helps[action], url=True, secrets=False, parent=actions)
        sub.add_argument("database", metavar="DATABASE", help="the shared database, as its declaration names it")
        sub.add_argument(
            "--from",
            dest="source",
            required=True,
            metavar="URL",
            help="libpq URL of the shared database, as a user that owns its tables (the shared user); "
            "password from PGPASSWORD or ~/.pgpass",
        )
        sub.add_argument(
            "--splits",
            type=Path,
            metavar="DIR",
            help="directory of split declarations (default: splits/ beside --services)",
        )
        sub.add_argument(
            "--service", metavar="NAME", help="one service of the declaration (required for sync, cutover, rollback)"
        )
        sub.add_argument("--table", action="append", metavar="TABLE", help="sync: only this table (repeatable)")
        sub.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="cutover: how long to wait for replication (default: 300)",
        )


COMMANDS = {
    "access": cmd_access,
    "sql": cmd_sql,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "verify": cmd_verify,
    "expire": cmd_expire,
    "demo": cmd_demo,
    "event": cmd_event,
    "record": cmd_record,
    "split": cmd_split,
}


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, out)
    except DeclarationError as error:
        print(f"servicedb {args.command}: fix these declarations first:\n{error}", file=sys.stderr)
    except (UsageError, ApplyError, SecretsError, ServerError) as error:
        print(f"servicedb {args.command}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
