"""Break-glass access: a person's temporary, reviewed access to one service's data.

In an incident an on-call engineer sometimes needs a production database. They declare it in
`access/<date>-<ticket>.py`, beside `services/`, and it is reviewed and deployed like any other
change:

    from datetime import UTC, datetime
    from servicedb import TemporaryAccess

    ACCESS = TemporaryAccess(
        person="jdoe",
        principal_arn="arn:aws:iam::222222222222:role/oncall-jdoe",
        environment="prod",
        service="orders",
        ticket="INC-123",
        valid_from=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        valid_until=datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
    )

A grant is live from `valid_from` until `valid_until`; only live grants are planned, so a deploy
before `valid_from` creates nothing yet and the first deploy after `valid_until` removes what it
created. Time is injectable: every function takes `now`, and `$SERVICEDB_NOW` fixes the clock of a
whole run (tests, snapshots, a rehearsal).

Nothing here imports cdktf or the plan; `servicedb.plan` turns live grants into roles and secrets.
"""

import hashlib
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from servicedb.errors import DeclarationError, Problem, did_you_mean
from servicedb.spec import MAX_TIMEOUT_MS, Environment, check_int

NOW_VARIABLE = "SERVICEDB_NOW"

ROLE_PREFIX = "tmp_"
PERSON_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,23}$")
STAMP_FORMAT = "%Y%m%d%H%M"
ROLE_REGEX = rf"^{ROLE_PREFIX}[a-z][a-z0-9]{{1,23}}_[a-z0-9_]+_[0-9]{{12}}$"
"""Every temporary role's name, and only theirs (a service role ends in its kind, never in digits);
the same regular expression in Python and in PostgreSQL."""
ROLE_PATTERN = re.compile(ROLE_REGEX)

MAX_ROLE_NAME_LENGTH = 63
PRINCIPAL_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}$")
MAX_CONNECTION_LIMIT = 10
MAX_TICKET_LENGTH = 200


class AccessLevel(StrEnum):
    READ = "read"
    """SELECT on the service's tables and sequences: membership of `<service>_reader`."""
    WRITE = "write"
    """SELECT, INSERT, UPDATE, DELETE as the service's app does: membership of `<service>_writer`. Never DDL."""


class AccessStatus(StrEnum):
    PENDING = "pending"
    """`valid_from` is still to come: nothing is created yet."""
    LIVE = "live"
    EXPIRED = "expired"
    """`valid_until` has passed: nothing is created, and what was is removed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TemporaryAccess:
    """One person's access to one service's data in one environment, for a few hours.

    Creates, while live, a login role `tmp_<person>_<service>_<valid_from as yyyymmddhhmm>` that
    PostgreSQL refuses after `valid_until`, a member of the service's reader role (or writer role),
    with a generated password in its own Secrets Manager secret that the person's principal may read.
    """

    person: str
    """Who: the person's handle, 2 to 24 lowercase letters and digits (`jdoe`); part of the role name."""

    principal_arn: str
    """The person's IAM role or user, the one principal the secret's resource policy lets read it."""

    environment: str
    """Which environment (`prod`), from environments.toml."""

    service: str
    """Which service's data."""

    ticket: str
    """Why: the incident or ticket (`INC-123`, or its URL)."""

    valid_from: datetime
    """From when, timezone-aware, a whole minute: `datetime(2026, 12, 1, 9, 0, tzinfo=UTC)`."""

    valid_until: datetime
    """Until when, timezone-aware, a whole minute; at most the environment's
    `max_temporary_access_hours` after `valid_from`."""

    level: AccessLevel = AccessLevel.READ
    """`read` or `write`. @default - `read`."""

    reason: str = ""
    """What must be done and why; required for `write`. @default - none (read only)."""

    connection_limit: int = 2
    """Connections the role may open. @default - 2."""

    statement_timeout_ms: int = 60_000
    """The role's `statement_timeout`; 0 disables it. @default - 60 s."""

    idle_in_transaction_timeout_ms: int = 300_000
    """The role's `idle_in_transaction_session_timeout`; 0 disables it. @default - 5 min."""

    def __post_init__(self) -> None:
        # "write" where AccessLevel.WRITE is meant; accept it.
        if not isinstance(self.level, AccessLevel) and self.level in [level.value for level in AccessLevel]:
            object.__setattr__(self, "level", AccessLevel(self.level))

    @property
    def role_name(self) -> str:
        return temporary_role_name(self.person, self.service, self.valid_from)

    @property
    def duration(self) -> timedelta:
        return self.valid_until - self.valid_from

    def status(self, now: datetime) -> AccessStatus:
        if now < self.valid_from:
            return AccessStatus.PENDING
        if now < self.valid_until:
            return AccessStatus.LIVE
        return AccessStatus.EXPIRED

    def record(self) -> dict[str, str]:
        """Who, what, why, from and until, as an auditor reads them (JSON values)."""
        return {
            "role": self.role_name,
            "person": self.person,
            "principal_arn": self.principal_arn,
            "environment": self.environment,
            "service": self.service,
            "level": str(self.level),
            "ticket": self.ticket,
            "reason": self.reason,
            "valid_from": timestamp(self.valid_from),
            "valid_until": timestamp(self.valid_until),
        }


def temporary_role_name(person: str, service: str, valid_from: datetime) -> str:
    """`tmp_<person>_<service>_<yyyymmddhhmm of valid_from in UTC>`, at most 63 bytes.

    A service name too long to fit is cut and followed by 6 hexadecimal digits of its hash, so the
    name stays unique; the role's membership names the service in full.
    """
    stamp = valid_from.astimezone(UTC).strftime(STAMP_FORMAT)
    room = MAX_ROLE_NAME_LENGTH - len(f"{ROLE_PREFIX}{person}__{stamp}")
    if len(service) > room:
        digest = hashlib.sha256(service.encode()).hexdigest()[:6]
        service = f"{service[: room - len(digest) - 1]}_{digest}"
    return f"{ROLE_PREFIX}{person}_{service}_{stamp}"


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC, to the second: `2026-12-01T13:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def current_time(environ: Mapping[str, str] = os.environ) -> datetime:
    """Now, or the time `$SERVICEDB_NOW` fixes (ISO 8601 with an offset: `2026-12-01T10:00:00+00:00`)."""
    value = environ.get(NOW_VARIABLE)
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise DeclarationError(
            [
                Problem(
                    source=f"${NOW_VARIABLE}",
                    subject="environment variable",
                    at="",
                    message=f"must be an ISO 8601 time with an offset, like '2026-12-01T10:00:00+00:00', got {value!r}",
                )
            ]
        )
    return moment


def subject(access: TemporaryAccess) -> str:
    return f"TemporaryAccess(person={access.person!r}, service={access.service!r})"


def is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def access_problems(
    access: object,
    *,
    source: str,
    services: Collection[str],
    environments: Mapping[str, Environment],
    unreadable: Collection[str] | None = (),
) -> list[Problem]:
    """Problems of one declaration, against the declared services and environments. An environment
    in `unreadable` (None: all of them) is declared but has problems of its own: not "no such
    environment", and its limits are checked once it reads."""
    if not isinstance(access, TemporaryAccess):
        return [
            Problem(
                source=source,
                subject="ACCESS",
                at="",
                message=f"must be a servicedb.TemporaryAccess(...), got {type(access).__name__}",
            )
        ]
    problems = []

    def add(at: str, message: str | None) -> None:
        if message:
            problems.append(Problem(source=source, subject=subject(access), at=at, message=message))

    if not (isinstance(access.person, str) and PERSON_PATTERN.fullmatch(access.person)):
        add(
            "person",
            f"must be the person's handle, 2 to 24 lowercase letters and digits like 'jdoe' (it is part of "
            f"the role name), got {access.person!r}",
        )
    if not (isinstance(access.principal_arn, str) and PRINCIPAL_ARN_PATTERN.fullmatch(access.principal_arn)):
        add(
            "principal_arn",
            "must be the person's IAM role or user ARN, like 'arn:aws:iam::123456789012:role/oncall-jdoe', "
            f"got {access.principal_arn!r}",
        )
    environment = environments.get(access.environment) if isinstance(access.environment, str) else None
    if environment is None and not (unreadable is None or access.environment in unreadable):
        suggestion = did_you_mean(access.environment, environments)
        add(
            "environment",
            f"no environment named {access.environment!r}{suggestion} (declared: {', '.join(environments)})",
        )
    if access.service not in services:
        suggestion = did_you_mean(access.service, services)
        add("service", f"no service named {access.service!r}{suggestion} (declared: {', '.join(sorted(services))})")
    if not (isinstance(access.ticket, str) and access.ticket.strip()):
        add("ticket", f"must name the incident or ticket this access is for, like 'INC-123', got {access.ticket!r}")
    elif len(access.ticket) > MAX_TICKET_LENGTH or not access.ticket.isprintable():
        add("ticket", f"must be one line of at most {MAX_TICKET_LENGTH} characters, got {access.ticket!r}")
    if not isinstance(access.level, AccessLevel):
        allowed = ", ".join(repr(str(level)) for level in AccessLevel)
        add("level", f"must be one of {allowed}, got {access.level!r}")
    if not isinstance(access.reason, str):
        add("reason", f"must be a string, got {access.reason!r}")
    elif access.level == AccessLevel.WRITE and not access.reason.strip():
        add(
            "reason",
            "is required for level='write': say what must be written and why, e.g. "
            "reason='re-run the failed migration's backfill of orders.status'",
        )
    add("connection_limit", check_int(access.connection_limit, low=1, high=MAX_CONNECTION_LIMIT))
    add("statement_timeout_ms", check_int(access.statement_timeout_ms, low=0, high=MAX_TIMEOUT_MS))
    add("idle_in_transaction_timeout_ms", check_int(access.idle_in_transaction_timeout_ms, low=0, high=MAX_TIMEOUT_MS))

    window_ok = True
    for at in ("valid_from", "valid_until"):
        value = getattr(access, at)
        if not is_aware(value):
            add(at, f"must be a datetime with a time zone, like datetime(2026, 12, 1, 9, 0, tzinfo=UTC), got {value!r}")
            window_ok = False
        elif value.second or value.microsecond:
            add(at, f"must be a whole minute (the role name has minutes), got {value.isoformat()}")
            window_ok = False
    if window_ok:
        if access.duration <= timedelta(0):
            add(
                "valid_until",
                f"{timestamp(access.valid_until)} is not after valid_from {timestamp(access.valid_from)}; "
                "a grant must end after it starts",
            )
        elif environment is not None and access.duration > timedelta(hours=environment.max_temporary_access_hours):
            hours = access.duration / timedelta(hours=1)
            add(
                "valid_until",
                f"the grant lasts {hours:g} hours, longer than {environment.name}'s maximum of "
                f"{environment.max_temporary_access_hours} (max_temporary_access_hours); shorten it, and declare "
                "a new grant for the time after, reviewed again",
            )
    return problems


def find_access_problems(
    declared: Iterable[tuple[object, str]],
    *,
    services: Collection[str],
    environments: Mapping[str, Environment],
    unreadable: Collection[str] | None = (),
) -> list[Problem]:
    """Every problem of every declaration, each paired with its file; role names must be unique.
    `unreadable`: environments that are declared but did not read (None: the file did not)."""
    problems: list[Problem] = []
    roles: dict[tuple[str, str], str] = {}
    for access, source in declared:
        own = access_problems(
            access, source=source, services=services, environments=environments, unreadable=unreadable
        )
        problems += own
        if own or not isinstance(access, TemporaryAccess):
            continue
        key = (access.environment, access.role_name)
        if key in roles:
            problems.append(
                Problem(
                    source=source,
                    subject=subject(access),
                    at="valid_from",
                    message=f"gives role {access.role_name}, which {roles[key]} already declares in "
                    f"{access.environment}; one grant per person, service and start minute",
                )
            )
        roles.setdefault(key, source)
    return problems


def notice(access: TemporaryAccess, source: str, now: datetime) -> str:
    """One line on what a declaration does at `now`, for the synth's and the CLI's output."""
    who = f"{access.person} may {access.level} {access.service} in {access.environment} ({access.ticket})"
    status = access.status(now)
    if status == AccessStatus.LIVE:
        return f"{source}: live: {who} until {timestamp(access.valid_until)} as {access.role_name}"
    if status == AccessStatus.PENDING:
        return f"{source}: pending: {who} from {timestamp(access.valid_from)}; nothing is created before then"
    return (
        f"{source}: expired at {timestamp(access.valid_until)}: {who}; creates nothing, so a deploy removes what "
        "it created (the file may go; git keeps the record)"
    )
