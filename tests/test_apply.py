"""Faults and concurrency on a real PostgreSQL: an interrupted apply, a busy table, two applies at once."""

import tempfile
import threading
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import Path

import psycopg
import pytest

from servicedb.apply import ADVISORY_LOCK_KEY, apply_plan
from servicedb.cli import Server, local_environment, local_services, main
from servicedb.diff import diff
from servicedb.passwords import LocalSecrets
from servicedb.plan import plan_services
from servicedb.server import LocalServer

from clusters import admin, drop_services, write_services

TERMINATE_APPLY = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'servicedb'"

DECLARATIONS = {
    "alpha": "Service(name='alpha', statement_timeout_ms=5_000)",
    "beta": "Service(name='beta', reads=(Reads(service='alpha'),))",
}
"""Two services, one reading the other: every kind of statement, in few of them."""


def interruption_points(directory: Path) -> dict[str, int]:
    """The first and the last statement of every group an apply from nothing runs (one transaction
    each, or one autocommit statement), and the middle of the longest: 1-based, named."""
    environment = local_environment("127.0.0.1", 5432)
    statements = diff(plan_services(local_services(directory, environment), environment), None).statements
    points: dict[int, str] = {}
    start = 1
    for (database, role, autocommit), group in groupby(statements, key=lambda s: (s.database, s.role, s.autocommit)):
        size = len(list(group))
        where = f"{database or 'admin'}{'-as-' + role if role else ''}{'-autocommit' if autocommit else ''}"
        points.setdefault(start, f"first-in-{where}")
        points.setdefault(start + size - 1, f"last-in-{where}")
        if size > 20:
            points.setdefault(start + size // 2, f"middle-of-{where}")
        start += size
    return {f"{name}-{at}": at for at, name in sorted(points.items())}


@pytest.fixture
def services(server: LocalServer, tmp_path: Path) -> Iterator[Path]:
    directory = write_services(tmp_path / "services", DECLARATIONS)
    yield directory
    drop_services(server, list(DECLARATIONS))


def cli(server: LocalServer, services: Path, command: str, *args: str, out: Callable[[str], None]) -> int:
    return main(
        [
            command,
            "--url",
            server.admin_url_with_password,
            "--services",
            str(services),
            "--secrets",
            str(services.parent / "secrets.json"),
            *args,
        ],
        out=out,
    )


def points_of(declarations: dict[str, str]) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as directory:
        return interruption_points(write_services(Path(directory) / "services", declarations))


POINTS = points_of(DECLARATIONS)


@pytest.mark.parametrize("at", list(POINTS.values()), ids=list(POINTS))
def test_an_apply_interrupted_at_any_statement_is_completed_by_the_next(
    server: LocalServer, services: Path, at: int
) -> None:
    """Kill the apply's connections just before its `at`-th statement: the next apply finishes the job."""
    statements: list[str] = []

    def interrupt(line: str) -> None:
        if line.startswith("-- ") and "\n" in line:  # a statement about to run
            statements.append(line)
            if len(statements) == at:
                # As the superuser: apply's session inside a service's database is its migrator's.
                with psycopg.connect(server.superuser_url_with_password, autocommit=True) as conn:
                    conn.execute(TERMINATE_APPLY)

    assert cli(server, services, "apply", out=interrupt) == 1
    assert len(statements) == at
    lines: list[str] = []
    assert cli(server, services, "apply", out=lines.append) == 0
    assert cli(server, services, "plan", out=lines.append) == 0
    assert lines[-1] == "-- nothing to do: the server matches the declarations"
    passwords = LocalSecrets(services.parent / "secrets.json").stored_passwords()
    with psycopg.connect(server.url("beta_app", passwords["beta_app"], "alpha")) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ("beta",)


def test_a_busy_table_makes_apply_fail_clearly_naming_who_holds_it(
    server: LocalServer, services: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A migration holds alpha's table in an open transaction while apply must change its grants."""
    lines: list[str] = []
    assert cli(server, services, "apply", out=lines.append) == 0
    passwords = LocalSecrets(services.parent / "secrets.json").stored_passwords()
    with psycopg.connect(server.url("alpha_migrator", passwords["alpha_migrator"], "alpha"), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int)")
        conn.execute("REVOKE SELECT ON items FROM alpha_reader")  # drift for apply to repair
    with psycopg.connect(server.url("alpha_migrator", passwords["alpha_migrator"], "alpha")) as migration:
        migration.execute("ALTER TABLE items ADD COLUMN note text")  # holds the table until it commits
        pid = migration.info.backend_pid
        assert cli(server, services, "apply", "--lock-timeout", "200ms", out=lines.append) == 1
        assert lines[-1] == (
            "-- grant SELECT on tables in alpha.alpha to alpha_reader\n"
            'GRANT SELECT ON ALL TABLES IN SCHEMA "alpha" TO "alpha_reader";'
        )
        migration.rollback()
    assert capsys.readouterr().err == (
        "servicedb apply: grant SELECT on tables in alpha.alpha to alpha_reader (alpha): waited 200ms for a lock "
        f"another session holds; pid {pid} (alpha_migrator) holds locks on alpha.items; retry when they are done, "
        "or with a longer --lock-timeout\n"
    )
    assert cli(server, services, "apply", out=lines.append) == 0
    assert lines[-1] == "-- applied 1 statements"


def test_inside_a_services_database_apply_works_as_its_migrator_or_else_as_the_admin(
    server: LocalServer, services: Path
) -> None:
    """The migrator's session holds one membership where the admin's holds all of them; when the
    migrator cannot log in (its connections are all in use), apply goes on as the admin."""
    opened: list[tuple[str, str | None]] = []

    class Traced(Server):
        def connect_as(self, user: str, password: str, database: str | None = None) -> psycopg.Connection:
            opened.append((user, database))
            return super().connect_as(user, password, database)

    environment = local_environment("127.0.0.1", server.port)
    plan = plan_services(local_services(services, environment), environment)
    store = LocalSecrets(services.parent / "secrets.json")
    lines: list[str] = []
    apply_plan(Traced(server.admin_url_with_password), plan, store, out=lines.append)
    assert {("alpha_migrator", "alpha"), ("beta_migrator", "beta")} <= set(opened)
    assert not [line for line in lines if line.startswith("-- cannot log in")]
    with admin(server, "alpha") as conn:
        assert conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'alpha'").fetchone() == (
            "alpha_owner",
        )

    passwords = store.stored_passwords()
    migrator = server.url("alpha_migrator", passwords["alpha_migrator"], "alpha")
    with psycopg.connect(migrator, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int)")
        conn.execute("REVOKE SELECT ON items FROM alpha_reader")  # drift for apply to repair
    with psycopg.connect(migrator), psycopg.connect(migrator):  # alpha_migrator's connection limit is 2
        lines.clear()
        apply_plan(Traced(server.admin_url_with_password), plan, store, out=lines.append)
    assert lines[0] == (
        '-- cannot log in as alpha_migrator to alpha (too many connections for role "alpha_migrator"): '
        "continuing as the admin"
    )
    assert lines[-1] == "-- applied 1 statements"
    with psycopg.connect(server.url("beta_app", passwords["beta_app"], "alpha")) as conn:
        assert conn.execute("SELECT count(*) FROM alpha.items").fetchone() == (0,)


def test_a_second_apply_waits_for_the_first_and_says_so(server: LocalServer, services: Path) -> None:
    """Another apply holds the cluster's apply lock for longer than the lock timeout: this one waits it out."""
    lines: list[str] = []
    waiting = threading.Event()

    def out(line: str) -> None:
        lines.append(line)
        if "another servicedb apply is running" in line:
            waiting.set()

    with admin(server) as first:
        first.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        results: list[int] = []
        second = threading.Thread(
            target=lambda: results.append(cli(server, services, "apply", "--lock-timeout", "100ms", out=out))
        )
        second.start()
        assert waiting.wait(timeout=30)
        second.join(timeout=0.5)  # longer than the lock timeout: still waiting
        assert second.is_alive()
        assert lines == [
            f"-- another servicedb apply is running on this cluster (pid {first.info.backend_pid} (servicedb_admin)): "
            f"waiting for it to finish (advisory lock {ADVISORY_LOCK_KEY})"
        ]
        first.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        second.join(timeout=60)
    assert results == [0]
    assert lines[-1].startswith("-- applied ")


def test_rejects_a_lock_timeout_postgresql_would_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["apply", "--url", "postgresql://admin@db.internal/postgres", "--lock-timeout", "10"])
    assert exited.value.code == 2
    assert "argument --lock-timeout: must be a duration like 500ms, 10s or 2min, got '10'" in capsys.readouterr().err
