"""`servicedb expire`: remove break-glass roles whose time is up, and end their sessions.

PostgreSQL's `VALID UNTIL` refuses new logins after the time, but an open session goes on, and
the role stays. For every temporary role (`tmp_<person>_<service>_<yyyymmddhhmm>`) whose
`VALID UNTIL` has passed, or whose declaration's `valid_until` has (a grant ended early), `expire`:

1. forbids its logins (`NOLOGIN`), whatever the server's clock says;
2. ends its sessions (`pg_terminate_backend`), after the admin becomes a member of the role, which
   its CREATEROLE allows (PostgreSQL lets only members of a role, or `pg_signal_backend`, do it);
3. in every database where the role owns objects or holds privileges (`pg_shdepend`), gives what it
   owns to the database's owner role (`<database>_owner`; the admin itself in a database that
   servicedb does not manage) and revokes the rest (`REASSIGN OWNED`, `DROP OWNED`);
4. drops the role.

A run holds the apply lock, so runs take turns with each other and with `servicedb apply`, and a
second run finds nothing left to do: it is safe to run every few minutes. Every action is one JSON
line for the audit: who, what, why, from, until, and when (`at`, `removed_at`). Who and what come
from the role itself (its name and membership); why comes from its declaration, when given.
"""

import json
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from servicedb import compose as sql
from servicedb.access import ROLE_REGEX, STAMP_FORMAT, AccessLevel, TemporaryAccess, is_aware, timestamp
from servicedb.apply import ADVISORY_LOCK_KEY, LOCK_TIMEOUT
from servicedb.driver import Connection, failure
from servicedb.plan import RoleKind

TERMINATE_TIMEOUT_MS = 5000
"""How long `pg_terminate_backend` waits for a session to end."""

EXPIRED_ROLES = """
SELECT r.rolname, r.rolvaliduntil,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r
WHERE r.rolname ~ %(pattern)s AND (r.rolvaliduntil <= %(now)s OR r.rolname = ANY(%(ended)s))
  AND NOT (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls)
ORDER BY r.rolname
"""
"""Temporary roles past their time; a role with more power than a break-glass role is never one."""

DEPENDENCIES = """
SELECT DISTINCT d.datname, pg_get_userbyid(d.datdba)
FROM pg_shdepend s LEFT JOIN pg_database d ON d.oid = s.dbid
WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = %s::regrole
"""
"""Databases where the role owns objects or holds privileges; no name for shared objects (databases)."""

LEVEL_ROLES = {f"_{RoleKind.READER}": AccessLevel.READ, f"_{RoleKind.WRITER}": AccessLevel.WRITE}
"""The suffix of the service role a temporary role is a member of, and the access it gives."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpiredRole:
    name: str
    valid_until: datetime | None
    """None for a role without `VALID UNTIL` that its declaration ended."""
    member_of: tuple[str, ...]

    def record(self, declared: tuple[TemporaryAccess, str] | None) -> dict[str, object]:
        """Who, what, why, from and until: from the declaration when there is one, else from the role."""
        if declared is not None:
            access, source = declared
            return {**access.record(), "declaration": source}
        held = [
            (role.removesuffix(suffix), str(level))
            for role in self.member_of
            for suffix, level in LEVEL_ROLES.items()
            if role.endswith(suffix)
        ]
        service, level = held[0] if len(held) == 1 else (None, None)
        return {
            "role": self.name,
            "person": self.name.split("_")[1],
            "service": service,
            "level": level,
            "ticket": None,
            "reason": None,
            "valid_from": timestamp(datetime.strptime(self.name[-12:], STAMP_FORMAT).replace(tzinfo=UTC)),
            "valid_until": timestamp(self.valid_until) if self.valid_until else None,
            "declaration": None,
        }


def expire(
    conn: Connection,
    *,
    connect: Callable[[str], Connection],
    now: datetime,
    declared: Mapping[str, tuple[TemporaryAccess, str]] = {},
    out: Callable[[str], None] = print,
) -> int:
    """Remove every temporary role whose `VALID UNTIL`, or declared `valid_until`, is at or before
    `now`; return how many could not be removed.

    `conn` is the admin connection (autocommit, psycopg or pg8000: `servicedb.driver`);
    `connect(database)` opens another one. `declared`
    maps role names to their declarations and files: the why of each line, and the grants ended
    before their role's `VALID UNTIL` (a declaration can only end a role earlier, never keep it). A
    role that cannot be removed is reported (`"action": "failed"`) and the others are still removed.
    """
    conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)).as_string())
        roles = [
            ExpiredRole(name=name, valid_until=valid_until, member_of=tuple(member_of))
            for name, valid_until, member_of in conn.execute(
                EXPIRED_ROLES, {"pattern": ROLE_REGEX, "now": now, "ended": ended(declared, now)}
            )
        ]
        failed = 0
        for role in roles:
            log = audit_log(role.record(declared.get(role.name)), out)
            try:
                remove(conn, role, connect=connect, log=log)
            except Exception as error:
                refused = failure(error)
                if refused is None:
                    raise
                failed += 1
                log("failed", error=refused.message)
        return failed
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def ended(declared: Mapping[str, tuple[TemporaryAccess, str]], now: datetime) -> list[str]:
    """The roles whose declared `valid_until` is at or before `now`."""
    return [
        name for name, (access, _) in declared.items() if is_aware(access.valid_until) and access.valid_until <= now
    ]


def audit_log(record: Mapping[str, object], out: Callable[[str], None]) -> Callable[..., None]:
    """`log(action, **details)`: one JSON line of `record`, the action, its details and when."""

    def log(action: str, **details: object) -> None:
        out(json.dumps({"action": action, **record, **details, "at": timestamp(datetime.now(UTC))}))

    return log


def remove(
    conn: Connection,
    role: ExpiredRole,
    *,
    connect: Callable[[str], Connection],
    log: Callable[..., None],
) -> None:
    name = sql.Identifier(role.name)
    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(name).as_string())
    log("forbid_login")
    (inherits,) = conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (role.name,)).fetchone()
    if not inherits:
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name).as_string())
    for pid, database, started in conn.execute(
        "SELECT pid, datname, backend_start FROM pg_stat_activity WHERE usename = %s ORDER BY pid", (role.name,)
    ).fetchall():
        (ended,) = conn.execute("SELECT pg_terminate_backend(%s, %s)", (pid, TERMINATE_TIMEOUT_MS)).fetchone()
        log("terminate_session", pid=pid, database=database, session_start=timestamp(started), ended=ended)

    for database, owner in conn.execute(DEPENDENCIES, (role.name,)).fetchall():
        target = owner if database and owner == f"{database}_{RoleKind.OWNER}" else None
        if target:
            (acts_as,) = conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (target,)).fetchone()
            if not acts_as:
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(target)).as_string())
        with connect(database) if database else nullcontext(conn) as inside, inside.transaction():
            inside.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)).as_string())
            new_owner = sql.Identifier(target) if target else sql.SQL("CURRENT_USER")
            inside.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(name, new_owner).as_string())
            inside.execute(sql.SQL("DROP OWNED BY {}").format(name).as_string())
        where = database or "shared objects"
        log("reassign_owned", database=where, to=target or "the admin")
        log("drop_owned", database=where)

    conn.execute(sql.SQL("DROP ROLE {}").format(name).as_string())
    log("drop_role", removed_at=timestamp(datetime.now(UTC)))
