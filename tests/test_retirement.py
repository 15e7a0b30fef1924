"""Retirement and purge on a real PostgreSQL: data is dropped only when a purge is declared."""

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from servicedb.cli import main
from servicedb.passwords import LocalSecrets
from servicedb.plan import legacy_manager_name, manager_name
from servicedb.server import LocalServer

from clusters import admin, drop_services, write_services

NAMES = ["gamma", "delta", "epsilon"]


class Project:
    """Declarations in a directory of their own, applied to the session's server with the CLI."""

    def __init__(self, server: LocalServer, directory: Path) -> None:
        self.server = server
        self.services = directory / "services"
        self.secrets = directory / "secrets.json"

    def declare(self, **declarations: str) -> None:
        for path in self.services.glob("*.py"):
            path.unlink()
        write_services(self.services, declarations)

    def cli(self, command: str, *args: str) -> tuple[int, str]:
        lines: list[str] = []
        argv = [command, "--url", self.server.admin_url_with_password, "--services", str(self.services)]
        code = main([*argv, "--secrets", str(self.secrets), *args], out=lines.append)
        return code, "\n".join(lines)

    def password(self, user: str) -> str:
        return LocalSecrets(self.secrets).stored_passwords()[user]

    def login(self, user: str, password: str | None = None, database: str = "gamma") -> psycopg.Connection:
        return psycopg.connect(self.server.url(user, password or self.password(user), database), autocommit=True)

    def exists(self) -> tuple[bool, list[str]]:
        """Whether gamma's database exists, and which of its roles."""
        with admin(self.server) as conn:
            database = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'gamma'").fetchone() == (1,)
            roles = [r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'gamma%' ORDER BY 1")]
        return database, roles

    def rows(self) -> list[tuple[str]]:
        with admin(self.server, "gamma") as conn:
            conn.execute("SET ROLE gamma_owner")
            return conn.execute("SELECT note FROM gamma.orders").fetchall()


@pytest.fixture
def project(server: LocalServer, tmp_path: Path) -> Iterator[Project]:
    """gamma with a table and a row, read by delta."""
    result = Project(server, tmp_path)
    result.declare(gamma="Service(name='gamma')", delta="Service(name='delta', reads=(Reads(service='gamma'),))")
    assert result.cli("apply")[0] == 0
    with result.login("gamma_migrator") as conn:
        conn.execute("CREATE TABLE orders (note text)")
        conn.execute("INSERT INTO orders VALUES ('kept')")
    yield result
    drop_services(server, NAMES)


ALL_ROLES = ["gamma_app", "gamma_migrator", "gamma_owner", "gamma_reader", "gamma_writer"]


def test_retired_keeps_the_data_and_stops_every_login(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    app_password = project.password("gamma_app")
    project.declare(
        gamma="Service(name='gamma', retired=True)", delta="Service(name='delta', reads=(Reads(service='gamma'),))"
    )
    assert project.cli("apply")[0] == 1
    assert (
        "at reads[0].service: 'gamma' is retired: its data is kept, but nothing may read it" in capsys.readouterr().err
    )

    project.declare(gamma="Service(name='gamma', retired=True)", delta="Service(name='delta')")
    code, plan = project.cli("plan")
    assert code == 0
    for line in (
        "-- gamma_app: forbid login, remove its password",
        'ALTER ROLE "gamma_app" NOLOGIN PASSWORD NULL;',
        "-- gamma_migrator: forbid login, remove its password",
        "-- revoke gamma_reader from delta_app (not declared)",
    ):
        assert line in plan.splitlines()
    assert "DROP" not in plan
    assert project.cli("apply")[0] == 0
    assert project.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
    assert project.cli("verify")[0] == 0

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        project.login("gamma_app", app_password)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        project.login("delta_app")
    assert project.exists() == (True, ALL_ROLES)
    assert project.rows() == [("kept",)]


def test_a_service_no_longer_declared_keeps_everything(project: Project) -> None:
    project.declare(delta="Service(name='delta')")
    code, output = project.cli("apply")
    assert code == 0
    assert "DROP" not in output
    assert project.exists() == (True, ALL_ROLES)
    assert project.rows() == [("kept",)]


def test_purge_drops_the_database_and_the_roles(project: Project) -> None:
    project.declare(gamma="Service(name='gamma', retired=True, purge=True)", delta="Service(name='delta')")
    code, plan = project.cli("plan")
    assert code == 0
    assert plan.splitlines()[2:] == [
        "-- revoke gamma_reader from delta_app (not declared)",
        'REVOKE "gamma_reader" FROM "delta_app";',
        "-- drop database gamma of purged service gamma, and all its data",
        'DROP DATABASE IF EXISTS "gamma";',
        *[
            line
            for role in ("gamma_app", "gamma_migrator", "gamma_writer", "gamma_reader", "gamma_owner")
            for line in (f"-- drop role {role} of purged service gamma", f'DROP ROLE IF EXISTS "{role}";')
        ],
        "-- 7 statements to apply",
    ]
    assert project.cli("apply")[0] == 0
    assert project.exists() == (False, [])
    assert project.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
    assert project.cli("verify")[0] == 0


def test_purge_enters_as_the_owner_when_the_admin_is_no_longer_its_member(project: Project) -> None:
    """A membership revoked by hand: apply grants the owner again to drop the database."""
    with admin(project.server) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(manager_name("gamma"))))  # its grantor
        conn.execute("REVOKE gamma_owner FROM SESSION_USER")
        conn.execute("RESET ROLE")
    project.declare(gamma="Service(name='gamma', retired=True, purge=True)", delta="Service(name='delta')")
    code, plan = project.cli("plan")
    assert "-- the admin acts as gamma_owner, to drop the database of purged service gamma" in plan
    assert project.cli("apply")[0] == 0
    assert project.exists() == (False, [])


def test_a_service_back_from_retirement_logs_in_after_one_apply(project: Project) -> None:
    project.declare(gamma="Service(name='gamma', retired=True)", delta="Service(name='delta')")
    assert project.cli("apply")[0] == 0
    project.declare(gamma="Service(name='gamma')", delta="Service(name='delta')")
    code, plan = project.cli("plan")
    assert "-- gamma_app: allow login, set the password from its secret" in plan.splitlines()
    assert "ALTER ROLE \"gamma_app\" LOGIN PASSWORD :'password_gamma_app';" in plan.splitlines()
    assert project.cli("apply")[0] == 0
    for user in ("gamma_app", "gamma_migrator"):
        project.login(user).close()
    assert project.cli("plan") == (0, "-- nothing to do: the server matches the declarations")


def test_a_setting_a_user_gives_itself_in_a_database_is_reported_and_reset(project: Project) -> None:
    with project.login("gamma_app") as conn:
        declared = conn.execute("SHOW statement_timeout").fetchone()
        conn.execute("ALTER ROLE gamma_app IN DATABASE gamma SET statement_timeout = 0")
    with project.login("gamma_app") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    code, output = project.cli("verify")
    assert code == 1
    assert "drift: gamma_app: reset its settings in database gamma (not declared: statement_timeout=0)" in output
    assert project.cli("apply")[0] == 0
    with project.login("gamma_app") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == declared
    assert project.cli("verify")[0] == 0


def test_an_extension_only_a_superuser_may_create_is_refused_before_anything_runs(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    with admin(project.server) as conn:
        untrusted = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM pg_available_extension_versions GROUP BY name HAVING NOT bool_or(trusted) ORDER BY 1"
            )
        ]
    if not untrusted:
        pytest.skip("this server has no extension that only a superuser may create")
    project.declare(
        gamma="Service(name='gamma')",
        delta="Service(name='delta')",
        epsilon=f"Service(name='epsilon', extensions=({untrusted[0]!r},))",
    )
    code, _ = project.cli("apply")
    assert code == 1
    output = capsys.readouterr().err
    assert "refusing to apply anything" in output
    assert f"extension {untrusted[0]} of service epsilon is not trusted: only a superuser may create it" in output
    with admin(project.server) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'epsilon'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'epsilon%'").fetchone() == (0,)


def test_apply_refuses_a_recorded_service_whose_declaration_is_gone(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """As cdktf synth does: with a record beside services/, a deleted file is refused by plan and
    apply before anything runs, and the service keeps its logins until its declaration says otherwise."""
    record = project.services.parent / "deployed.toml"
    assert main(["record", "--services", str(project.services), "--record", str(record)], out=lambda _: None) == 0
    (project.services / "gamma.py").unlink()
    for command in ("plan", "apply"):
        assert project.cli(command)[0] == 1
        error = capsys.readouterr().err
        assert "services/gamma.py: Service(name='gamma'): 1 problem\n  is gone, but the record lists gamma" in error
    project.login("gamma_app").close()
    assert project.rows() == [("kept",)]


def test_verify_logins_proves_who_logs_in_where(project: Project) -> None:
    code, output = project.cli("verify", "--logins")
    assert code == 0, output
    assert "Logins tried: 8 (login user, database) pairs, 5 let in, by logging in." in output
    # A user left with LOGIN and no password, as an un-retired service was before apply set it.
    with admin(project.server) as conn:
        conn.execute("ALTER ROLE gamma_app PASSWORD NULL")
    assert project.cli("verify")[0] == 0  # the catalogs alone cannot tell
    code, output = project.cli("verify", "--logins", "--format", "json")
    assert code == 1
    report = json.loads(output)
    [difference] = [d["message"] for d in report["differences"] if d["kind"] == "login"]
    assert difference == (
        'gamma_app cannot log in to gamma (declared): password authentication failed for user "gamma_app"'
    )
    assert project.password("gamma_app") not in output
    assert project.cli("apply")[0] == 0
    assert project.cli("verify", "--logins")[0] == 0


def test_a_manager_of_one_service_from_before_the_groups_goes_on_managing_it(
    server: LocalServer, tmp_path: Path
) -> None:
    """A cluster applied before the group managers, where gamma's roles were made through
    gamma_manager: apply goes on using it for gamma, and a purge drops it with gamma's roles."""
    legacy = legacy_manager_name("gamma")
    with admin(server) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT CREATEROLE").format(sql.Identifier(legacy)))
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(legacy)))
    project = Project(server, tmp_path)
    try:
        project.declare(gamma="Service(name='gamma')", delta="Service(name='delta', reads=(Reads(service='gamma'),))")
        assert project.cli("apply")[0] == 0
        assert project.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
        assert project.cli("verify")[0] == 0
        with admin(server) as conn:
            grantors = dict(
                conn.execute(
                    """
                    SELECT m.rolname, g.rolname FROM pg_auth_members a
                    JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                    JOIN pg_roles g ON g.oid = a.grantor
                    WHERE r.rolname = ANY(%s)
                    """,
                    (["gamma_owner", "delta_owner"],),
                ).fetchall()
            )
        # The owners' grants to their migrators, each made by the service's manager.
        assert grantors["gamma_migrator"] == legacy
        assert grantors["delta_migrator"] == manager_name("delta")

        project.declare(gamma="Service(name='gamma', retired=True, purge=True)", delta="Service(name='delta')")
        code, plan = project.cli("plan")
        assert f'DROP ROLE IF EXISTS "{legacy}";' in plan
        assert project.cli("apply")[0] == 0
        assert project.exists() == (False, [])
        assert project.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
    finally:
        drop_services(server, NAMES)
