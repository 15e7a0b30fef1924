"""Running statements on a live server, grouped by database and role, one transaction per group.

Every run holds an advisory lock on the admin connection, so two runs against one cluster take
turns instead of failing with "tuple concurrently updated"; every statement runs under a
`lock_timeout`, so a busy object makes the run fail with a clear error instead of hanging.
"""

from collections.abc import Callable, Iterable, Mapping
from itertools import groupby

import psycopg
from psycopg import sql

from servicedb.sql import Statement

ADVISORY_LOCK_KEY = 0x5E41_CEDB
"""`pg_advisory_lock` key held during an apply, the same on every host."""

LOCK_TIMEOUT = "10s"


class ApplyError(RuntimeError):
    """A statement failed; the message names it (never its password) and the server's reason."""


def run(
    statements: Iterable[Statement],
    *,
    connect: Callable[[str | None], psycopg.Connection],
    passwords: Mapping[str, str],
    log: Callable[[str], None] = print,
) -> int:
    """Run `statements` in order; return how many ran.

    `connect(database)` opens an autocommit admin connection (None: the admin database). A
    group of statements for the same database and role runs in one transaction, so a failure
    leaves that group undone and the next run computes it again.
    """
    statements = list(statements)
    if not statements:
        return 0
    connections: dict[str | None, psycopg.Connection] = {}

    def connection(database: str | None) -> psycopg.Connection:
        if database not in connections:
            # One database at a time besides the admin's: open sessions slow down CREATE DATABASE.
            for other in [name for name in connections if name is not None]:
                connections.pop(other).close()
            conn = connect(database)
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            connections[database] = conn
        return connections[database]

    count = 0
    try:
        admin = connection(None)
        log(f"-- waiting for the servicedb apply lock ({ADVISORY_LOCK_KEY})")
        admin.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        for (database, role, autocommit), group in groupby(
            statements, key=lambda s: (s.database, s.role, s.autocommit)
        ):
            conn = connection(database)
            group = list(group)
            if autocommit:
                for statement in group:
                    execute(conn, statement, passwords, log)
                    count += 1
                continue
            with conn.transaction():
                if role:
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                for statement in group:
                    execute(conn, statement, passwords, log)
                    count += 1
    finally:
        for conn in connections.values():
            conn.close()
    return count


def execute(
    conn: psycopg.Connection, statement: Statement, passwords: Mapping[str, str], log: Callable[[str], None]
) -> None:
    where = statement.database or "admin database"
    log(f"-- {statement.description}\n{statement.text};")
    try:
        conn.execute(statement.executable(passwords))
    except psycopg.errors.LockNotAvailable as error:
        raise ApplyError(
            f"{statement.description} ({where}): waited {LOCK_TIMEOUT} for a lock another session holds; "
            f"retry when it is released: {error.diag.message_primary}"
        ) from None
    except psycopg.Error as error:
        reason = error.diag.message_primary or str(error).splitlines()[0]
        raise ApplyError(f"{statement.description} ({where}) failed: {reason}") from None
