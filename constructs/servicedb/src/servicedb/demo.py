"""`servicedb demo`: the services applied to a throwaway PostgreSQL, and the access matrix.

Starts a local server (no system install needed), applies the services as the non-superuser
admin, lets each service's migrator create a table (so default privileges are exercised), prints
the effective-access matrix, and removes the server and its files.
"""

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from servicedb.cli import Server, apply_plan, local_environment, local_services
from servicedb.passwords import LocalSecrets
from servicedb.plan import plan_services
from servicedb.server import ADMIN, local_server
from servicedb.verify import as_text, verify

DEMO_TABLE = "demo_items"


def demo(services_dir: Path, *, out: Callable[[str], None] = print) -> int:
    with local_server() as local:
        binaries = local.binaries
        out(
            f"-- PostgreSQL {binaries.version} ({binaries.source}) on 127.0.0.1:{local.port}, "
            f"applied as {ADMIN} (CREATEDB, CREATEROLE, not a superuser)"
        )
        environment = local_environment("127.0.0.1", local.port)
        services = local_services(services_dir, environment)
        server = Server(local.admin_url_with_password)
        with server.connect() as conn:
            available = {name for (name,) in conn.execute("SELECT name FROM pg_available_extensions")}
        declared = []
        for service in services:
            missing = [e for e in service.extensions if e not in available]
            if missing:
                out(f"-- this server has no {', '.join(missing)}: left out of {service.name} for the demo")
            declared.append(
                dataclasses.replace(service, extensions=tuple(e for e in service.extensions if e in available))
            )
        plan = plan_services(declared, environment)

        with tempfile.TemporaryDirectory(prefix="servicedb-demo-") as directory:
            passwords = apply_plan(server, plan, LocalSecrets(Path(directory) / "secrets.json"), out=lambda _: None)
        out(f"-- applied {len(plan.services)} services")
        for service in plan.services:
            migrator = service.migrator.name
            with psycopg.connect(
                server.url, user=migrator, password=passwords[migrator], dbname=service.database.name, autocommit=True
            ) as conn:
                conn.execute(
                    sql.SQL("CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)").format(
                        sql.Identifier(DEMO_TABLE)
                    )
                )
        out(f"-- each migrator created {DEMO_TABLE} in its own schema")
        with server.connect() as conn:
            report = verify(conn, plan, connect=server.connect)
        out(as_text(report).rstrip("\n"))
    out("-- the server is stopped and its files removed")
    return 0 if report.ok else 1
