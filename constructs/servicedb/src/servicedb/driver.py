"""The database connection the SQL path runs on, and pg8000 behind it for the provisioner function.

`inspect`, `apply` and `verify` need little of a connection: `execute(query, params)` with plain
SQL text and `%s` or `%(name)s` parameters, rows to iterate or fetch as tuples, `transaction()`
blocks on an autocommit connection, and `close()`. A psycopg connection, which the CLI opens, is
that as it is. `Pg8000Connection` makes a pg8000 one the same, for the in-VPC provisioner
function: pg8000 is pure Python (no libpq) and logs in with SCRAM-SHA-256.

One difference stays: with parameters, psycopg reads `%%` as `%` everywhere in the text, pg8000
only outside quotes, so the queries keep `%` out of their string literals.

`failure(error)` reads the SQLSTATE and the server's message from either driver's error, so the
code above tells a refused statement or login apart without importing a driver.
"""

import contextlib
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

Params = Sequence[object] | Mapping[str, object] | None

INVALID_PASSWORD = "28P01"
LOCK_NOT_AVAILABLE = "55P03"


class Rows(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """An autocommit connection: each `execute` commits unless inside `transaction()`."""

    def execute(self, query: str, params: Params = None) -> Rows: ...

    def transaction(self) -> contextlib.AbstractContextManager[Any]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> Any: ...


class Server(Protocol):
    """Where the SQL path connects: as the admin to any database, or as a login user."""

    host: str
    port: int

    def connect(self, database: str | None = None) -> Connection:
        """An autocommit admin connection to `database` (None: the admin's own)."""
        ...

    def connect_as(self, user: str, password: str, database: str | None = None) -> Connection:
        """An autocommit connection as a login user to `database` (None: the admin's own)."""
        ...


@dataclass(frozen=True, slots=True)
class Failure:
    """What the server said, whichever driver reported it."""

    sqlstate: str | None
    message: str


def failure(error: BaseException) -> Failure | None:
    """The SQLSTATE and message of a psycopg or pg8000 error; None for any other exception.

    Neither driver is imported here: an error of one exists only once its module is loaded.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.Error):
        return Failure(error.sqlstate, error.diag.message_primary or first_line(error))
    pg8000 = sys.modules.get("pg8000")
    if pg8000 is not None and isinstance(error, pg8000.Error):
        fields = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
        return Failure(fields.get("C"), fields.get("M") or first_line(error))
    return None


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@dataclass(frozen=True, slots=True)
class Fetched:
    """A statement's rows, as tuples (pg8000 gives lists), all read at once as pg8000 does."""

    rows: list[tuple[object, ...]]

    def fetchone(self) -> tuple[object, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[object, ...]]:
        return list(self.rows)

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        return iter(self.rows)


class Pg8000Connection:
    """A pg8000 DB-API connection in autocommit, with the `Connection` interface."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._connection.autocommit = True

    def execute(self, query: str, params: Params = None) -> Fetched:
        cursor = self._connection.cursor()
        try:
            # No parameters: sent as it is, so `%` needs no doubling (as with psycopg).
            cursor.execute(query, params or ())
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()
        return Fetched(rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN, then COMMIT, or ROLLBACK when the block raises."""
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the connection may be gone; the error tells why
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a connection the server already ended
            self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(kw_only=True)
class Pg8000Server:
    """Connections over pg8000 to one PostgreSQL server, as its admin or as a login user."""

    host: str
    port: int
    user: str
    """The admin: on Aurora the master user (CREATEDB, CREATEROLE)."""
    password: str = field(repr=False)
    admin_database: str = "postgres"
    ssl: bool = True
    """Encrypt, without verifying the server's certificate: libpq's `sslmode=require`, as the
    Terraform path's postgresql provider uses."""
    connect_timeout_seconds: int = 15

    def connect(self, database: str | None = None) -> Pg8000Connection:
        return self.open(self.user, self.password, database or self.admin_database)

    def connect_as(self, user: str, password: str, database: str | None = None) -> Pg8000Connection:
        return self.open(user, password, database or self.admin_database)

    def open(self, user: str, password: str, database: str) -> Pg8000Connection:
        import pg8000.dbapi

        # `%(name)s` with a mapping, `%s` with a sequence: the two styles psycopg takes.
        pg8000.dbapi.paramstyle = "pyformat"
        # pg8000's `timeout` would bound every read, CREATE DATABASE and the apply lock's wait
        # included: the timeout bounds the TCP connect only, as libpq's connect_timeout does.
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_seconds)
        except OSError as error:
            raise pg8000.dbapi.InterfaceError(f"cannot connect to {self.host}:{self.port}: {error}") from None
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            connection = pg8000.dbapi.connect(
                user=user,
                password=password,
                host=self.host,
                database=database,
                sock=sock,
                ssl_context=self.ssl,  # True: require; False: plain
                application_name="servicedb",
            )
        except BaseException:
            sock.close()
            raise
        return Pg8000Connection(connection)
