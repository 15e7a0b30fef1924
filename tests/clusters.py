"""Declarations written to a directory of their own, and what they leave on a test server."""

from pathlib import Path

import psycopg
from psycopg import sql

from servicedb.plan import RoleKind, legacy_manager_name, role_name, role_names
from servicedb.server import LocalServer


def write_services(directory: Path, declarations: dict[str, str]) -> Path:
    """One `<name>.py` per declaration, e.g. `{"beta": "Service(name='beta', reads=(Reads(service='alpha'),))"}`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, declaration in declarations.items():
        (directory / f"{name}.py").write_text(f"from servicedb import Reads, Service\n\nSERVICE = {declaration}\n")
    return directory


def admin(server: LocalServer, database: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(server.admin_url, password=server.admin_password, dbname=database, autocommit=True)


def drop_services(server: LocalServer, names: list[str]) -> None:
    """Remove what the services left on the server, whatever state an interrupted apply left it in."""
    with admin(server) as conn:
        for name in names:
            owner = role_name(name, RoleKind.OWNER)
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone():
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(owner)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            # The group managers stay: other services share them, as on a real cluster.
            for role in (*role_names(name), legacy_manager_name(name)):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
