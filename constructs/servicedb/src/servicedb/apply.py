"""Applying a plan to a live server: inspect, diff, and run what differs, grouped by database and
role, one transaction per group. `servicedb apply` and the in-VPC provisioner function both run
`apply_plan`, over psycopg and pg8000 respectively.

Every run holds an advisory lock on the admin connection, so two runs against one cluster take
turns instead of failing with "tuple concurrently updated": the second says it waits, and for
whom, and waits as long as the first runs. Every statement runs under a `lock_timeout`, so a busy
object makes the run fail with a clear error, naming the sessions that hold locks there, instead
of hanging.
"""

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Set
from itertools import groupby

from servicedb import compose as sql
from servicedb.diff import Changes, diff
from servicedb.driver import LOCK_NOT_AVAILABLE, Connection, Server, failure
from servicedb.inspect import Current, check_passwords, inspect
from servicedb.passwords import LocalSecrets, SecretsManagerSecrets
from servicedb.plan import Plan
from servicedb.sql import Statement

ADVISORY_LOCK_KEY = 0x5E41_CEDB
"""`pg_advisory_lock` key held during an apply, the same on every host."""

LOCK_TIMEOUT = "10s"
"""How long a statement waits for a lock another session holds, by default."""

LOCK_HOLDERS = """
WITH here AS (SELECT oid FROM pg_database WHERE datname = current_database())
SELECT a.pid, a.usename, a.application_name,
       string_agg(DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname), ', ')
FROM pg_stat_activity a
JOIN pg_locks l ON l.pid = a.pid AND l.granted AND l.locktype <> 'virtualxid'
LEFT JOIN pg_class c ON l.locktype = 'relation' AND c.oid = l.relation AND l.database = (SELECT oid FROM here)
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname NOT IN ('pg_catalog', 'pg_toast', 'information_schema')
WHERE a.pid <> pg_backend_pid() AND (a.datid = (SELECT oid FROM here) OR l.database = 0)
GROUP BY a.pid, a.usename, a.application_name
ORDER BY a.pid
"""
"""Other sessions holding locks in the current database, or on shared objects (roles), with the tables
they lock; never their queries, which may hold anything."""


class ApplyError(RuntimeError):
    """A statement failed, or the plan cannot be applied; the message says which (never a password) and why."""


def run(
    statements: Iterable[Statement],
    *,
    connect: Callable[[str | None], Connection],
    passwords: Mapping[str, str],
    log: Callable[[str], None] = print,
    ran: list[Statement] | None = None,
    lock_timeout: str = LOCK_TIMEOUT,
    logins: Mapping[str, str] | None = None,
    connect_as: Callable[[str, str, str], Connection] | None = None,
) -> int:
    """Run `statements` in order; return how many ran, and append each to `ran` once it has.

    `connect(database)` opens an autocommit admin connection (None: the admin database). A
    group of statements for the same database and role runs in one transaction, so a failure
    leaves that group undone and the next run computes it again. `lock_timeout` (`10s`, `500ms`)
    is how long a statement waits for a lock before the run fails.

    Inside a service's database, the statements that run as a role in `logins` (an owner, by its
    migrator's name) run on a connection opened with `connect_as(migrator, password, database)`
    when it opens, else on the admin's: a new session of the admin, a member of every owner, walks
    all of those memberships at its first SET ROLE (about 10 ms on a cluster of 1,000 services);
    the migrator's holds one.
    """
    statements = list(statements)
    if not statements:
        return 0
    logins = logins or {}
    connections: dict[tuple[str | None, str | None], Connection] = {}

    def open_as(user: str | None, database: str | None) -> Connection:
        if user is not None and database is not None and connect_as is not None:
            try:
                return connect_as(user, passwords[user], database)
            except Exception as error:
                refused = failure(error)
                reason = refused.message if refused else type(error).__name__
                # libpq puts the server's words after its own: "connection ... failed: FATAL:  <why>"
                reason = reason.rpartition("FATAL:")[2].strip()
                log(f"-- cannot log in as {user} to {database} ({reason}): continuing as the admin")
        return connect(database)

    def connection(database: str | None, role: str | None) -> Connection:
        user = logins.get(role or "") if database is not None else None
        key = (database, user)
        if key not in connections:
            # One database at a time besides the admin's: open sessions slow down CREATE DATABASE.
            for other in [k for k in connections if k[0] is not None and k[0] != database]:
                connections.pop(other).close()
            conn = open_as(user, database)
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(lock_timeout)).as_string())
            connections[key] = conn
        return connections[key]

    count = 0
    statement: Statement | None = None
    try:
        take_apply_lock(connection(None, None), log)
        for (database, role, autocommit), group in groupby(
            statements, key=lambda s: (s.database, s.role, s.autocommit)
        ):
            conn = connection(database, role)
            group = list(group)
            try:
                if autocommit:
                    for statement in group:
                        execute(conn, statement, passwords, log)
                        count += 1
                        if ran is not None:
                            ran.append(statement)
                    continue
                with conn.transaction():
                    if role:
                        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)).as_string())
                    for statement in group:
                        execute(conn, statement, passwords, log)
                        count += 1
            except Exception as error:
                refused = failure(error)
                if refused is None or refused.sqlstate != LOCK_NOT_AVAILABLE or statement is None:
                    raise
                # The transaction is rolled back: the connection can ask who holds locks there.
                raise ApplyError(
                    f"{statement.description} ({statement.database or 'admin database'}): waited {lock_timeout} "
                    f"for a lock another session holds; {lock_holders(conn)}; retry when they are done, or "
                    "with a longer --lock-timeout"
                ) from None
            if ran is not None:
                ran += group
    finally:
        for conn in connections.values():
            conn.close()
    return count


def take_apply_lock(admin: Connection, log: Callable[[str], None]) -> None:
    """Hold the advisory lock of servicedb applies; wait, without a timeout, while another run has it."""
    if admin.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone() == (True,):
        return
    holders = [
        f"pid {pid}" + (f" ({user})" if user else "")
        for pid, user in admin.execute(
            """
            SELECT l.pid, a.usename FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1
            """,
            (ADVISORY_LOCK_KEY,),
        )
    ]
    log(
        f"-- another servicedb apply is running on this cluster ({', '.join(holders) or 'just finished'}): "
        f"waiting for it to finish (advisory lock {ADVISORY_LOCK_KEY})"
    )
    with admin.transaction():  # the session's lock_timeout is back after it; the advisory lock stays
        admin.execute("SET LOCAL lock_timeout = 0")
        admin.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))


def lock_holders(conn: Connection) -> str:
    """The other sessions holding locks where `conn` is, in words, without their queries."""
    sessions = [
        f"pid {pid} ({', '.join(filter(None, (user, application))) or 'another user'}) "
        + (f"holds locks on {tables}" if tables else "has a transaction open")
        for pid, user, application, tables in conn.execute(LOCK_HOLDERS)
    ]
    return "; ".join(sessions) if sessions else "no other session holds a lock any more"


def execute(conn: Connection, statement: Statement, passwords: Mapping[str, str], log: Callable[[str], None]) -> None:
    where = statement.database or "admin database"
    log(f"-- {statement.description}\n{statement.text};")
    try:
        conn.execute(statement.executable(passwords).as_string())
    except Exception as error:
        refused = failure(error)
        if refused is None or refused.sqlstate == LOCK_NOT_AVAILABLE:
            raise  # `run` names who holds the locks, once the transaction is rolled back
        raise ApplyError(f"{statement.description} ({where}) failed: {refused.message}") from None


def current_state(
    server: Server, plan: Plan, passwords: Mapping[str, str], *, stale: Set[str] = frozenset()
) -> Current:
    """The server's state, with whether each password user logs in with its password from the
    store. `stale` users are about to get a new one (a rotation), which the server cannot have
    yet; users without one in the store (the inactive user of an alternating pair, when the store
    is Secrets Manager) are `unknown_passwords`."""
    with server.connect() as conn:
        current = inspect(conn, plan, connect=server.connect)
    password_users = {user.name for service in plan.services for user in service.login_users if not user.iam}
    logins = {
        user: pw
        for user, pw in passwords.items()
        if user in password_users and user not in stale and user in current.roles and current.roles[user].login
    }
    password_ok = check_passwords(server.connect_as, logins) | {user: False for user in stale if user in current.roles}
    unknown = frozenset(password_users - set(passwords) - set(stale))
    return dataclasses.replace(current, password_ok=password_ok, unknown_passwords=unknown)


def changes_for(
    server: Server, plan: Plan, store: LocalSecrets | SecretsManagerSecrets, *, write_secrets: bool
) -> tuple[Changes, dict[str, str], bool]:
    """The statements that take the server to `plan`, the login users' passwords, and whether
    every existing managed database could be read (the admin can enter only those it acts for)."""
    stale: Set[str] = frozenset()
    if isinstance(store, LocalSecrets) and not write_secrets:
        passwords = store.stored_passwords()
        stale = store.stale_users(plan)
    else:
        passwords = store.passwords(plan, host=server.host, port=server.port)
    current = current_state(server, plan, passwords, stale=stale)
    complete = all(database.contents is not None for database in current.databases.values())
    return diff(plan, current), passwords, complete


def owner_logins(plan: Plan, passwords: Mapping[str, str]) -> dict[str, str]:
    """Each service's owner, mapped to its migrator where the migrator logs in with a password in
    `passwords` (a member of its owner alone). A password apply sets or corrects is in place before
    the statements inside the service's database run."""
    return {
        service.owner.name: service.migrator.name
        for service in plan.services
        if service.migrator.login and not service.migrator.iam and service.migrator.name in passwords
    }


def apply_plan(
    server: Server,
    plan: Plan,
    store: LocalSecrets | SecretsManagerSecrets,
    *,
    out: Callable[[str], None],
    ran: list[Statement] | None = None,
    lock_timeout: str = LOCK_TIMEOUT,
) -> dict[str, str]:
    """Apply what differs, refusing everything if part of the plan cannot be applied; the passwords.

    Each statement that ran is appended to `ran`; a statement waits `lock_timeout` for a lock.

    A database the admin could not enter (created by someone else) is looked into again once the
    admin acts as its owner, and what then differs inside it is applied too.
    """
    count = 0
    for _ in range(2):
        changes, passwords, complete = changes_for(server, plan, store, write_secrets=True)
        if changes.problems:
            raise ApplyError("refusing to apply anything:\n  " + "\n  ".join(changes.problems))
        count += run(
            changes.statements,
            connect=server.connect,
            passwords=passwords,
            log=out,
            ran=ran,
            lock_timeout=lock_timeout,
            logins=owner_logins(plan, passwords),
            connect_as=server.connect_as,
        )
        if complete:
            break
    out(f"-- applied {count} statements" if count else "-- nothing to do: the server matches the declarations")
    return passwords
