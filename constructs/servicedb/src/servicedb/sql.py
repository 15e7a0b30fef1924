"""SQL statements: each a description, the SQL, and where it runs; rendered or executed.

Identifiers and literals go through `servicedb.compose`, which quotes them as `psycopg.sql` does,
with no driver. A password is never part of a printed statement: the SQL holds a `Password`
placeholder, printed as a psql variable (`:'password_orders_app'`) and replaced only at execution
by a SCRAM-SHA-256 verifier computed here, so neither the password nor the statement that sets it
reaches the server's log in clear.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from servicedb import compose as sql
from servicedb.plan import ObjectType

PRIVILEGES = {
    ObjectType.DATABASE: ("CONNECT", "CREATE", "TEMPORARY"),
    ObjectType.SCHEMA: ("USAGE", "CREATE"),
    ObjectType.TABLE: ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    ObjectType.SEQUENCE: ("USAGE", "SELECT", "UPDATE"),
    ObjectType.FUNCTION: ("EXECUTE",),
}
"""Every privilege of each object type, in PostgreSQL's order; statements list them, never `ALL`."""

SCRAM_ITERATIONS = 4096
"""PostgreSQL's default `scram_iterations`."""


class Password(sql.Composable):
    """Where a login user's password goes; printed as a psql variable, never as the password."""

    def __init__(self, username: str) -> None:
        self.username = username

    @property
    def variable(self) -> str:
        return f"password_{self.username}"

    def as_string(self, context: object = None) -> str:
        return f":'{self.variable}'"


@dataclass(frozen=True, kw_only=True, slots=True)
class Statement:
    """One change, with a one-line description of what it does."""

    description: str
    query: sql.Composable
    database: str | None = None
    """The database to run in; None for the admin connection's own (roles, databases)."""
    role: str | None = None
    """Run after `SET ROLE` to this role, so what is created and granted is the owner's."""
    autocommit: bool = False
    """Outside a transaction: `CREATE DATABASE` cannot run inside one."""
    subject: str | None = None
    """The role the statement changes, when it is one: whose manager may run it."""
    internal: bool = False
    """How apply does its work (its managers), not a difference from the declarations: `verify`
    does not report it."""

    @property
    def text(self) -> str:
        """The SQL as printed: passwords appear as psql variables."""
        return self.query.as_string()

    def executable(self, passwords: Mapping[str, str]) -> sql.Composable:
        """The SQL to run: each `Password` replaced by the SCRAM verifier of `passwords[user]`."""
        return with_passwords(self.query, passwords)

    @property
    def passwords(self) -> tuple[str, ...]:
        """User names whose password the statement sets."""
        return tuple(part.username for part in parts(self.query) if isinstance(part, Password))


def parts(query: sql.Composable) -> Iterable[sql.Composable]:
    if isinstance(query, sql.Composed):
        for part in query:
            yield from parts(part)
    else:
        yield query


def with_passwords(query: sql.Composable, passwords: Mapping[str, str]) -> sql.Composable:
    if isinstance(query, Password):
        if query.username not in passwords:
            raise KeyError(f"no password for {query.username}")
        return sql.Literal(scram_verifier(passwords[query.username]))
    if isinstance(query, sql.Composed):
        return sql.Composed([with_passwords(part, passwords) for part in query])
    return query


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677).

    Sent instead of the password, like psql's `\\password` does, so the server never sees it.
    """
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def grantee(name: str) -> sql.Composable:
    """A role in GRANT/REVOKE; `public` is the PUBLIC pseudo-role, not an identifier."""
    return sql.SQL("PUBLIC") if name == "public" else sql.Identifier(name)


def privilege_list(privileges: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(privilege) for privilege in privileges)


def in_privilege_order(object_type: ObjectType, privileges: Iterable[str]) -> tuple[str, ...]:
    """Privileges in PostgreSQL's order, unknown ones (newer servers: MAINTAIN) last."""
    privileges = set(privileges)
    known = [p for p in PRIVILEGES[object_type] if p in privileges]
    return (*known, *sorted(privileges - set(known)))


def render_script(statements: Iterable[Statement], *, admin_database: str = "postgres") -> str:
    """The statements as a psql script: one comment line each, `\\connect` and `SET ROLE` between groups."""
    lines: list[str] = []
    passwords: list[str] = []
    where: tuple[str | None, str | None] = (None, None)
    for statement in statements:
        target = (statement.database, statement.role)
        if target != where:
            if where[1]:
                lines.append("RESET ROLE;")
            if statement.database != where[0]:
                lines += ["", f"\\connect {statement.database or admin_database}"]
            if statement.role:
                lines.append(f"SET ROLE {sql.Identifier(statement.role).as_string()};")
            where = target
        lines += [f"-- {statement.description}", f"{statement.text};"]
        passwords += [f"password_{user}" for user in statement.passwords]
    if where[1]:
        lines.append("RESET ROLE;")
    header = [
        "-- servicedb: the SQL that makes the cluster match the declarations.",
        "-- Run as the cluster's admin (CREATEDB, CREATEROLE): psql --set ON_ERROR_STOP=1 -f <this file>",
    ]
    if passwords:
        header.append(
            "-- Passwords are psql variables, never written here: " + " ".join(f"-v {p}=..." for p in passwords)
        )
    return "\n".join(header + lines).strip() + "\n"
