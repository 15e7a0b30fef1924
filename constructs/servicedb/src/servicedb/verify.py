"""Verify a live server: the effective-access matrix and every difference from the declarations.

The matrix is computed from what is on the server, not from what the plan meant to grant: who
reaches each database from the databases' ACLs and every membership (one query, whose rows are
the pairs where a user holds something), then what each user that can connect may do inside,
by the server itself (`has_schema_privilege`, `has_table_privilege`, `has_sequence_privilege`,
`pg_has_role`), one query per managed database for those users only. The number of queries and
their work grow with the services, their grants and memberships, never with users x databases.

Levels, lowest to highest: none, read (SELECT on tables, now or by default privileges),
write (INSERT, UPDATE, DELETE, TRUNCATE, or sequence USAGE/UPDATE), ddl (can create in a schema,
create schemas, or become an owner).

Break-glass roles of live grants are rows of the matrix like any login user, and a table lists
who has temporary access, to what, why and until when. A temporary role still on the server after
its `VALID UNTIL` is a difference (`expired`) until `servicedb expire` removes it.
"""

import dataclasses
import html
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import IntEnum

from servicedb.access import ROLE_REGEX, AccessLevel, current_time, timestamp
from servicedb.diff import diff
from servicedb.driver import Connection, failure
from servicedb.inspect import USER_SCHEMAS, Current, inspect
from servicedb.plan import Plan, RoleKind


class Level(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    DDL = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, kw_only=True, slots=True)
class Access:
    """What one login user can do in one database, and why."""

    level: Level
    connect: bool
    temporary: bool
    ddl: tuple[str, ...]
    """Why it has ddl: `CREATE on schema x`, `member of x_owner`, ..."""
    writes: tuple[str, ...]
    """`INSERT on schema.table`, ..., and `future tables (default privileges)`."""
    reads: int
    """Tables and sequences it can SELECT."""


NO_ACCESS = Access(level=Level.NONE, connect=False, temporary=False, ddl=(), writes=(), reads=0)


class AccessRow(dict):
    """One login user's row of the matrix: the databases it reaches; any other is `NO_ACCESS`."""

    def __missing__(self, database: str) -> Access:
        return NO_ACCESS


class LevelRow(dict):
    """One login user's declared levels: the databases it may use; any other is `Level.NONE`."""

    def __missing__(self, database: str) -> Level:
        return Level.NONE


@dataclass(frozen=True, kw_only=True, slots=True)
class Difference:
    kind: str
    """`access` (the matrix differs from the declarations), `drift` (a statement apply would
    run), `unmanaged` (an undeclared login role reaches a managed database), `expired` (a
    temporary role past its time that `servicedb expire` has not removed yet), `login` (with
    `--logins`: a user logged in where it is not declared to, or could not where it is)."""
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Login:
    """One login tried with the user's stored secret: whether the server let it in, and if not why."""

    user: str
    database: str
    connected: bool
    declared: bool
    refused: str = ""
    """The server's message (never the password), when it did not let the user in."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TemporaryAccessState:
    """One live break-glass grant: who, what, why, from, until, and its role on the server."""

    role: str
    person: str
    service: str
    level: str
    ticket: str
    reason: str
    valid_from: str
    valid_until: str
    exists: bool
    """Whether the role is on the server (the deploy or apply has created it)."""
    sessions: int
    """Its open sessions."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    databases: tuple[str, ...]
    users: tuple[str, ...]
    """Managed login users, then undeclared login roles that reach a managed database."""
    access: dict[str, dict[str, Access]]
    expected: dict[str, dict[str, Level]]
    differences: tuple[Difference, ...]
    temporary: tuple[TemporaryAccessState, ...] = field(default=())
    """The break-glass grants live at the time of the check."""
    notes: tuple[str, ...] = ()
    """What could not be checked on this server, and why; not a difference."""
    logins: tuple[Login, ...] = ()
    """With `--logins`: every (login user, managed database) pair, tried."""

    @property
    def ok(self) -> bool:
        return not self.differences


def expected_levels(wanted: Plan) -> dict[str, LevelRow]:
    """What the declarations grant: own database write (app) or ddl (migrator), declared reads;
    only the databases each user may use, so the size grows with the declarations, not with
    users x databases."""
    database_of_reader = {service.reader.name: service.database.name for service in wanted.services}
    reads: dict[str, list[str]] = {}
    for membership in wanted.reads:
        reads.setdefault(membership.member, []).append(database_of_reader[membership.role])
    result: dict[str, LevelRow] = {}
    for service in wanted.services:
        for user in service.login_users:
            row = LevelRow(dict.fromkeys(reads.get(user.name, ()), Level.READ))
            row[service.database.name] = Level.DDL if user.kind == RoleKind.MIGRATOR else Level.WRITE
            result[user.name] = row
    for grant in wanted.temporary:
        level = Level.WRITE if grant.access.level == AccessLevel.WRITE else Level.READ
        result[grant.role.name] = LevelRow({wanted.service(grant.service).database.name: level})
    return result


DATABASE_ACCESS = """
WITH RECURSIVE
users AS (SELECT oid, rolname, rolsuper FROM pg_roles WHERE rolname = ANY(%(users)s)),
inherited(usr, role) AS (
    SELECT oid, oid FROM users
    UNION
    SELECT i.usr, m.roleid FROM inherited i
    JOIN pg_auth_members m ON m.member = i.role
    JOIN pg_roles r ON r.oid = i.role
    WHERE {inherits}
),
member_of(usr, role) AS (
    SELECT oid, oid FROM users
    UNION
    SELECT o.usr, m.roleid FROM member_of o JOIN pg_auth_members m ON m.member = o.role
),
dbs AS (
    SELECT oid, datname, datdba, coalesce(datacl, acldefault('d', datdba)) AS acl
    FROM pg_database WHERE datname = ANY(%(databases)s)
),
grants AS (SELECT d.oid AS db, a.grantee, a.privilege_type FROM dbs d CROSS JOIN LATERAL aclexplode(d.acl) a),
held AS (
    SELECT i.usr, g.db, g.privilege_type FROM inherited i JOIN grants g ON g.grantee = i.role
    UNION
    SELECT u.oid, g.db, g.privilege_type FROM users u JOIN grants g ON g.grantee = 0
    UNION
    SELECT u.oid, d.oid, p.privilege_type
    FROM users u CROSS JOIN dbs d CROSS JOIN (VALUES ('CONNECT'), ('TEMPORARY'), ('CREATE')) p(privilege_type)
    WHERE u.rolsuper
    UNION
    SELECT o.usr, d.oid, 'MEMBER' FROM member_of o JOIN dbs d ON d.datdba = o.role
)
SELECT u.rolname, d.datname,
       bool_or(h.privilege_type = 'CONNECT'), bool_or(h.privilege_type = 'TEMPORARY'),
       bool_or(h.privilege_type = 'CREATE'), bool_or(h.privilege_type = 'MEMBER')
FROM held h JOIN users u ON u.oid = h.usr JOIN dbs d ON d.oid = h.db
GROUP BY u.rolname, d.datname
"""
"""What each user holds on each database, from the databases' ACLs and the users' memberships:
the rows are the (user, database) pairs where it holds something, so the work grows with the
grants and memberships, not with users x databases. A privilege is inherited along memberships
with INHERIT (the membership's option from PostgreSQL 16 on, the member's attribute before), as
`has_database_privilege` does; `MEMBER` is any membership of the owner, as `pg_has_role` says."""

INHERITS = {True: "m.inherit_option", False: "r.rolinherit"}
"""Whether a membership passes privileges on: PostgreSQL 16 and later, and before."""

UNMANAGED_LOGIN_ROLES = """
SELECT rolname FROM pg_roles
WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user AND rolname <> ALL(%(managed)s)
  AND rolname <> ALL(%(provisioning)s)
  AND rolname !~ '^(pg_|rds)'
ORDER BY rolname
"""

TEMPORARY_ROLES = """
SELECT r.rolname, nullif(r.rolvaliduntil, 'infinity'),
       (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname)
FROM pg_roles r WHERE r.rolname ~ %(pattern)s ORDER BY r.rolname
"""

WRITE_TABLE = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
WRITE_SEQUENCE = ("USAGE", "UPDATE")

SCHEMA_ACCESS = f"""
WITH users AS (SELECT oid, rolname FROM pg_roles WHERE rolname = ANY(%(users)s)),
schemas AS (SELECT n.oid, n.nspname, n.nspowner FROM pg_namespace n WHERE {USER_SCHEMAS}),
relations AS (
    SELECT c.oid, c.relkind, s.oid AS nsp, quote_ident(s.nspname) || '.' || quote_ident(c.relname) AS name
    FROM pg_class c JOIN schemas s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
),
privileges AS (
    SELECT u.oid AS usr, r.name, p.privilege,
           CASE WHEN r.relkind = 'S' THEN has_sequence_privilege(u.oid, r.oid, p.privilege)
                ELSE has_table_privilege(u.oid, r.oid, p.privilege) END AS held
    FROM users u CROSS JOIN relations r
    CROSS JOIN LATERAL unnest(CASE WHEN r.relkind = 'S' THEN ARRAY['SELECT', 'USAGE', 'UPDATE']
                                   ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] END) p(privilege)
    WHERE has_schema_privilege(u.oid, r.nsp, 'USAGE')
),
defaults AS (
    SELECT u.oid AS usr, a.privilege_type, d.defaclobjtype
    FROM users u
    JOIN pg_default_acl d ON true
    JOIN schemas s ON s.oid = d.defaclnamespace
    CROSS JOIN LATERAL aclexplode(d.defaclacl) a
    WHERE (a.grantee = 0 OR pg_has_role(u.oid, a.grantee, 'USAGE')) AND has_schema_privilege(u.oid, s.oid, 'USAGE')
)
SELECT u.rolname,
    ARRAY(SELECT 'CREATE on schema ' || s.nspname FROM schemas s
          WHERE has_schema_privilege(u.oid, s.oid, 'CREATE') ORDER BY 1)
    || ARRAY(SELECT 'member of ' || pg_get_userbyid(o.owner) FROM
             (SELECT DISTINCT nspowner AS owner FROM schemas) o
             WHERE pg_has_role(u.oid, o.owner, 'MEMBER') AND o.owner <> 'pg_database_owner'::regrole ORDER BY 1),
    ARRAY(SELECT p.privilege || ' on ' || p.name FROM privileges p
          WHERE p.usr = u.oid AND p.held AND p.privilege <> 'SELECT' ORDER BY p.name, p.privilege)
    || ARRAY(SELECT DISTINCT d.privilege_type || ' on future '
                    || CASE d.defaclobjtype WHEN 'S' THEN 'sequences' ELSE 'tables' END
             FROM defaults d WHERE d.usr = u.oid
               AND (d.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
                    OR (d.defaclobjtype = 'S' AND d.privilege_type = 'USAGE'))),
    (SELECT count(*) FROM privileges p WHERE p.usr = u.oid AND p.held AND p.privilege = 'SELECT')
    + (SELECT count(*) FROM defaults d WHERE d.usr = u.oid AND d.privilege_type = 'SELECT')
FROM users u
"""


def verify(
    conn: Connection,
    wanted: Plan,
    *,
    connect: Callable[[str], Connection],
    now: datetime | None = None,
) -> Report:
    """Compute the matrix on the live server and compare it, and its state, with `wanted`.

    `now` decides which temporary roles are past their time (@default - the current time).
    """
    now = now or current_time()
    expected = expected_levels(wanted)
    managed_roles = [role.name for role in wanted.roles]
    users = list(expected)
    on_server = {
        name: (until, sessions) for name, until, sessions in conn.execute(TEMPORARY_ROLES, {"pattern": ROLE_REGEX})
    }
    expired = {
        name: (until, sessions)
        for name, (until, sessions) in on_server.items()
        if name not in managed_roles and until is not None and until <= now
    }
    unmanaged = [
        name
        for (name,) in conn.execute(
            UNMANAGED_LOGIN_ROLES,
            # The environment's `terraform_logins` apply the services, as the admin does.
            {"managed": managed_roles, "provisioning": [user for user, _ in wanted.environment.terraform_logins]},
        )
        if name not in expired
    ]
    databases = [service.database.name for service in wanted.services]
    (version,) = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    database_access = {
        (user, database): (can_connect, temporary, create, owner_member)
        for user, database, can_connect, temporary, create, owner_member in conn.execute(
            DATABASE_ACCESS.format(inherits=INHERITS[version >= 160000]),
            {"users": users + unmanaged, "databases": databases},
        )
    }
    connecting: dict[str, list[str]] = {}
    for (user, database), (can_connect, *_) in database_access.items():
        if can_connect:
            connecting.setdefault(database, []).append(user)
    inside: dict[tuple[str, str], tuple[list[str], list[str], int]] = {}

    def look_inside(database: str, database_conn: Connection) -> None:
        # Only who can connect can do anything inside: one round for a few users, not for all;
        # over the connection that read the database's contents.
        if database in connecting:
            for user, ddl, writes, reads in database_conn.execute(SCHEMA_ACCESS, {"users": connecting[database]}):
                inside[(user, database)] = (ddl, writes, reads)

    current = inspect(conn, wanted, connect=connect, then=look_inside)

    access: dict[str, AccessRow] = {user: AccessRow() for user in users + unmanaged}
    for (user, database), (can_connect, temporary, create, owner_member) in database_access.items():
        schema_ddl, writes, reads = inside.get((user, database), ([], [], 0))
        owner = current.databases[database].owner if database in current.databases else ""
        ddl = [f"CREATE on database {database}"] if create else []
        ddl += [f"member of {owner}"] if owner_member else []
        ddl = list(dict.fromkeys(ddl + schema_ddl))
        level = Level.NONE
        if can_connect:
            level = Level.DDL if ddl else Level.WRITE if writes else Level.READ if reads else Level.NONE
        access[user][database] = Access(
            level=level,
            connect=bool(can_connect),
            temporary=bool(temporary and can_connect),
            ddl=tuple(ddl),
            writes=tuple(writes),
            reads=reads,
        )

    order = {database: index for index, database in enumerate(databases)}
    differences = []
    for user in users:
        for database in sorted(set(access[user]) | set(expected[user]), key=order.__getitem__):
            got, declared = access[user][database], expected[user][database]
            if got.level != declared:
                why = got.ddl if got.level == Level.DDL else got.writes if got.level == Level.WRITE else ()
                detail = f": {', '.join(why[:5])}" + (" ..." if len(why) > 5 else "") if why else ""
                second_writer = got.level >= Level.WRITE and declared < Level.WRITE
                prefix = "second writer: " if second_writer and got.writes else ""
                differences.append(
                    Difference(
                        kind="access",
                        message=f"{prefix}{user} has {got.level} on {database} (declared: {declared}){detail}",
                    )
                )
            elif got.connect and declared == Level.NONE:
                differences.append(
                    Difference(kind="access", message=f"{user} can connect to {database} (declared: none)")
                )
            if got.temporary:
                differences.append(
                    Difference(kind="access", message=f"{user} can create temporary tables in {database}")
                )
    reaching = []
    for user in unmanaged:
        for database in sorted(access[user], key=order.__getitem__):
            got = access[user][database]
            if got.connect:
                reaching.append(user)
                differences.append(
                    Difference(
                        kind="unmanaged",
                        message=f"{user} is not declared but has {got.level} on {database}"
                        + (" (can connect)" if got.level == Level.NONE else ""),
                    )
                )
    differences += [
        Difference(
            kind="expired",
            message=f"{name} expired at {timestamp(until)} but is still on the server with {sessions} open "
            "sessions; run servicedb expire",
        )
        for name, (until, sessions) in expired.items()
    ]
    changes = diff(wanted, current)
    differences += [Difference(kind="drift", message=s.description) for s in changes.statements if not s.internal]
    differences += [Difference(kind="drift", message=problem) for problem in changes.problems]
    shown = users + sorted(set(reaching))
    temporary = tuple(
        TemporaryAccessState(
            role=grant.role.name,
            person=grant.access.person,
            service=grant.service,
            level=str(grant.access.level),
            ticket=grant.access.ticket,
            reason=grant.access.reason,
            valid_from=timestamp(grant.access.valid_from),
            valid_until=timestamp(grant.access.valid_until),
            exists=grant.role.name in on_server,
            sessions=on_server.get(grant.role.name, (None, 0))[1],
        )
        for grant in wanted.temporary
    )
    return Report(
        databases=tuple(databases),
        users=tuple(shown),
        access={user: access[user] for user in shown},
        expected=expected,
        differences=tuple(differences),
        temporary=temporary,
        notes=tuple(notes(wanted, current)),
    )


def notes(wanted: Plan, current: Current) -> list[str]:
    iam_users = [user.name for service in wanted.services for user in service.login_users if user.iam]
    if not iam_users or current.with_password is not None:
        return []
    return [
        f"whether {', '.join(iam_users)} (IAM authentication) also have a password: {current.current_user} "
        "cannot read pg_authid (only a superuser can); servicedb clears the password when it grants rds_iam"
    ]


TOO_MANY_CONNECTIONS = "53300"
RETRY_SECONDS = (0.1, 0.3, 1.0)
"""Waits before trying a login again that the server refused for too many connections."""

LOGIN_CONNECTIONS = 8
"""Logins tried at once by `prove_logins`; each connection is opened and closed at once."""


def declared_logins(wanted: Plan) -> dict[str, set[str]]:
    """Where each login user is declared to connect: its service's database, the app users the
    databases they read too, a break-glass role its grant's service."""
    reads: dict[str, set[str]] = {}
    for membership in wanted.reads:
        reads.setdefault(membership.member, set()).add(membership.role.removesuffix(f"_{RoleKind.READER}"))
    declared = {
        user.name: {service.service} | reads.get(user.name, set())
        for service in wanted.services
        for user in service.login_users
    }
    declared |= {grant.role.name: {grant.service} for grant in wanted.temporary}
    return declared


def prove_logins(
    report: Report,
    wanted: Plan,
    passwords: Mapping[str, str],
    connect_as: Callable[[str, str, str], object],
    *,
    parallel: int = LOGIN_CONNECTIONS,
) -> Report:
    """`report` with every login user's login to every managed database tried, with its stored
    secret: a `login` difference for each pair where the server's answer is not the declared one.

    `connect_as(user, password, database)` opens a connection. A user that logs in with IAM, or
    whose secret the store does not have, is not tried, and a note says so.
    """
    declared = declared_logins(wanted)
    iam = sorted(user.name for service in wanted.services for user in service.login_users if user.iam)
    users = [user for user in declared if user in passwords and user not in iam]
    missing = sorted(set(declared) - set(users) - set(iam))
    # Database by database, so that the logins at the same time are different users': a user's
    # own connection limit (1 or 2 for a migrator) is not what refuses it.
    pairs = [(user, database) for database in report.databases for user in users]

    def attempt(pair: tuple[str, str]) -> Login:
        user, database = pair
        for wait in (*RETRY_SECONDS, None):
            try:
                connect_as(user, passwords[user], database).close()  # type: ignore[attr-defined]
                return Login(user=user, database=database, connected=True, declared=database in declared[user])
            except Exception as error:
                refused = failure(error)
                if refused is None:
                    raise
                if refused.sqlstate == TOO_MANY_CONNECTIONS and wait is not None:
                    time.sleep(wait)  # a session that just closed may not have ended on the server yet
                    continue
                break
        return Login(
            user=user,
            database=database,
            connected=False,
            declared=database in declared[user],
            # The server's words, without the client's "connection to server at ... failed:".
            refused=refused.message.rsplit("FATAL:", 1)[-1].strip(),
        )

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        logins = tuple(pool.map(attempt, pairs))
    differences = [
        Difference(kind="login", message=f"{login.user} logged in to {login.database} (declared: no)")
        if login.connected
        else Difference(
            kind="login", message=f"{login.user} cannot log in to {login.database} (declared): {login.refused}"
        )
        for login in logins
        if login.connected != login.declared
    ]
    notes = (
        [f"logins of {', '.join(iam)}: they log in with IAM tokens, which this check does not generate"] if iam else []
    )
    notes += [f"logins of {', '.join(missing)}: the secrets store has no password for them"] if missing else []
    return dataclasses.replace(
        report,
        differences=report.differences + tuple(differences),
        notes=report.notes + tuple(notes),
        logins=logins,
    )


def cell(report: Report, user: str, database: str) -> tuple[str, bool]:
    """The cell's text and whether it matches the declarations."""
    got = report.access[user][database].level
    declared = report.expected.get(user, {}).get(database, Level.NONE)
    if got == declared:
        return ("-" if got == Level.NONE else str(got)), True
    return f"{got} (declared {declared})", False


def as_text(report: Report) -> str:
    width = max(len(u) for u in report.users) if report.users else 4
    columns = [max(len(d), 8) for d in report.databases]
    lines = ["Effective access of each login user to each managed database (none=-, read, write, ddl):", ""]
    lines.append(" " * width + "  " + "  ".join(d.ljust(w) for d, w in zip(report.databases, columns, strict=True)))
    for user in report.users:
        cells = [cell(report, user, d) for d in report.databases]
        texts = [(text if ok else f"!{text}").ljust(w) for (text, ok), w in zip(cells, columns, strict=True)]
        lines.append(user.ljust(width) + "  " + "  ".join(texts).rstrip())
    lines.append("")
    if report.temporary:
        rows = [TEMPORARY_COLUMNS, *map(temporary_row, report.temporary)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(TEMPORARY_COLUMNS))]
        lines += ["Active temporary access (break-glass):", ""]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.append("")
    lines += differences_lines(report)
    return "\n".join(lines) + "\n"


TEMPORARY_COLUMNS = ("role", "person", "service", "level", "ticket", "from", "until", "sessions", "reason")


def temporary_row(state: TemporaryAccessState) -> tuple[str, ...]:
    """One row of the active temporary access table, in the order of `TEMPORARY_COLUMNS`."""
    sessions = str(state.sessions) if state.exists else "not created"
    return (
        state.role,
        state.person,
        state.service,
        state.level,
        state.ticket,
        state.valid_from,
        state.valid_until,
        sessions,
        state.reason or "-",
    )


def differences_lines(report: Report) -> list[str]:
    not_checked = [f"Not checked: {note}" for note in report.notes]
    if report.logins:
        connected = sum(login.connected for login in report.logins)
        not_checked.insert(
            0, f"Logins tried: {len(report.logins)} (login user, database) pairs, {connected} let in, by logging in."
        )
    if report.ok:
        return ["OK: every login user's access matches the declarations.", *not_checked]
    count = len(report.differences)
    differences = [f"  {d.kind}: {d.message}" for d in report.differences]
    return [f"{count} difference{'s' if count > 1 else ''} from the declarations:", *differences, *not_checked]


def as_markdown(report: Report) -> str:
    lines = ["| login user | " + " | ".join(report.databases) + " |", "|---|" + "---|" * len(report.databases)]
    for user in report.users:
        cells = []
        for database in report.databases:
            text, ok = cell(report, user, database)
            cells.append(text if ok else f"**{text}**")
        lines.append(f"| `{user}` | " + " | ".join(cells) + " |")
    lines.append("")
    if report.temporary:
        lines += ["**Active temporary access (break-glass):**", ""]
        lines += ["| " + " | ".join(TEMPORARY_COLUMNS) + " |", "|---" * len(TEMPORARY_COLUMNS) + "|"]
        lines += ["| " + " | ".join(temporary_row(state)) + " |" for state in report.temporary]
        lines.append("")
    if report.ok:
        lines.append("All access matches the declarations.")
    else:
        lines.append(f"**{len(report.differences)} differences from the declarations:**")
        lines.append("")
        lines += [f"- {d.kind}: {d.message}" for d in report.differences]
    lines += [f"\nNot checked: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def as_html(report: Report) -> str:
    e = html.escape
    head = "".join(f"<th>{e(d)}</th>" for d in report.databases)
    rows = []
    for user in report.users:
        cells = []
        for database in report.databases:
            text, ok = cell(report, user, database)
            level = str(report.access[user][database].level)
            cells.append(f'<td class="{level}{"" if ok else " wrong"}">{e(text)}</td>')
        rows.append(f"<tr><th>{e(user)}</th>{''.join(cells)}</tr>")
    if report.ok:
        summary = '<p class="ok">All access matches the declarations.</p>'
    else:
        items = "".join(f"<li><b>{e(d.kind)}</b>: {e(d.message)}</li>" for d in report.differences)
        summary = f'<p class="bad">{len(report.differences)} differences from the declarations:</p><ul>{items}</ul>'
    if report.temporary:
        header = "".join(f"<th>{e(column)}</th>" for column in TEMPORARY_COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(value)}</td>" for value in temporary_row(state)) + "</tr>"
            for state in report.temporary
        )
        summary = (
            f"<h2>Active temporary access (break-glass)</h2><table><thead><tr>{header}</tr></thead>"
            f"<tbody>{body}</tbody></table>\n{summary}"
        )
    summary += "".join(f"<p>Not checked: {e(note)}</p>" for note in report.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>servicedb: effective access</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: .3em .7em; text-align: left; }}
td.read {{ background: #e8f1fb; }} td.write {{ background: #e6f4e6; }} td.ddl {{ background: #fdf3d8; }}
td.wrong {{ background: #f8d7da; font-weight: bold; }} .ok {{ color: #1e7e34; }} .bad {{ color: #b02a37; }}
</style></head><body>
<h1>Effective access: login user &times; database</h1>
<table><thead><tr><th>login user</th>{head}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
{summary}
</body></html>
"""


def as_json(report: Report) -> str:
    document = {
        "ok": report.ok,
        "databases": list(report.databases),
        "users": list(report.users),
        "access": {
            user: {
                database: {
                    **asdict(row[database]),
                    "level": str(row[database].level),
                    "declared": str(report.expected.get(user, {}).get(database, Level.NONE)),
                }
                for database in report.databases
            }
            for user, row in report.access.items()
        },
        "differences": [asdict(d) for d in report.differences],
        "temporary_access": [asdict(state) for state in report.temporary],
        "notes": list(report.notes),
        "logins": [asdict(login) for login in report.logins],
    }
    return json.dumps(document, indent=2) + "\n"


FORMATS = {"text": as_text, "json": as_json, "markdown": as_markdown, "html": as_html}
