"""The isolation, proven on a real PostgreSQL: apply the test services, then log in as every user.

Admin steps run as a CREATEDB CREATEROLE role that is not a superuser, as on Aurora. Every login
uses the password from the secrets file that `servicedb apply` wrote.
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from servicedb.cli import main
from servicedb.plan import manager_name
from servicedb.server import LocalServer

SERVICES = Path(__file__).parent / "services"
OWN_TABLE = "items"


@dataclass
class Cluster:
    server: LocalServer
    secrets: Path
    outputs: list[str]

    def cli(self, command: str, *args: str) -> tuple[int, str]:
        lines: list[str] = []
        code = main(
            [
                command,
                "--url",
                self.server.admin_url_with_password,
                "--services",
                str(SERVICES),
                "--secrets",
                str(self.secrets),
                *args,
            ],
            out=lines.append,
        )
        output = "\n".join(lines)
        self.outputs.append(output)
        return code, output

    def password(self, user: str) -> str:
        stored = json.loads(self.secrets.read_text())
        return next(entry["password"] for entry in stored.values() if entry["username"] == user)

    def login(self, user: str, database: str) -> psycopg.Connection:
        return psycopg.connect(self.server.url(user, self.password(user), database), autocommit=True)

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            self.server.admin_url, password=self.server.admin_password, dbname=database, autocommit=True
        )

    def apply_and_migrate(self, services: tuple[str, ...]) -> None:
        """Apply the declarations, then let each of `services`' migrators create and fill a table."""
        code, output = self.cli("apply")
        assert code == 0, output
        for service in services:
            with self.login(f"{service}_migrator", service) as conn:
                conn.execute(
                    f"CREATE TABLE {OWN_TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)"
                )
                conn.execute(f"INSERT INTO {OWN_TABLE} (note) VALUES ('from the migrator')")

    def check_no_password_was_printed(self) -> None:
        secrets = json.loads(self.secrets.read_text())
        for output in self.outputs:
            for entry in secrets.values():
                assert entry["password"] not in output


@pytest.fixture(scope="module")
def cluster(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The test services applied, and each migrator's table created after the apply."""
    result = Cluster(server=server, secrets=tmp_path_factory.mktemp("secrets") / "local-secrets.json", outputs=[])
    result.apply_and_migrate(("ledger", "inventory", "checkout", "delivery"))
    yield result
    result.check_no_password_was_printed()


def test_second_apply_has_nothing_to_do(cluster: Cluster) -> None:
    code, output = cluster.cli("plan")
    assert (code, output) == (0, "-- nothing to do: the server matches the declarations")
    assert cluster.cli("apply") == (0, "-- nothing to do: the server matches the declarations")


def test_the_admin_connects_by_a_grant_of_its_own(cluster: Cluster) -> None:
    # Found before PostgreSQL walks the admin's memberships, one or more per service, at each connection.
    with cluster.admin() as conn:
        direct = conn.execute(
            """
            SELECT d.datname FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
            WHERE a.grantee = 'servicedb_admin'::regrole AND a.privilege_type = 'CONNECT' ORDER BY 1
            """
        ).fetchall()
    assert direct == [("checkout",), ("delivery",), ("inventory",), ("ledger",)]


def test_secrets_file_is_private_and_in_rds_shape(cluster: Cluster) -> None:
    assert cluster.secrets.stat().st_mode & 0o777 == 0o600
    entry = json.loads(cluster.secrets.read_text())["servicedb/local/checkout/app"]
    assert entry["username"] == "checkout_app"
    assert entry["dbname"] == "checkout"
    assert entry["engine"] == "postgres"
    assert (entry["host"], entry["port"]) == ("127.0.0.1", cluster.server.port)
    assert len(entry["password"]) == 40


def test_app_reads_and_writes_its_own_tables(cluster: Cluster) -> None:
    with cluster.login("checkout_app", "checkout") as conn:
        conn.execute(f"INSERT INTO {OWN_TABLE} (note) VALUES ('by the app')")
        conn.execute(f"UPDATE {OWN_TABLE} SET note = 'changed' WHERE note = 'by the app'")
        assert conn.execute(f"SELECT count(*) FROM {OWN_TABLE}").fetchone() == (2,)
        conn.execute(f"DELETE FROM {OWN_TABLE} WHERE note = 'changed'")
        assert conn.execute("SHOW search_path").fetchone() == ("checkout",)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE sneaky (id int)",
        f"DROP TABLE {OWN_TABLE}",
        f"ALTER TABLE {OWN_TABLE} ADD COLUMN extra int",
        f"TRUNCATE {OWN_TABLE}",
        "CREATE TABLE public.sneaky (id int)",
        "CREATE TEMPORARY TABLE scratch (id int)",
        "CREATE SCHEMA sneaky",
        "CREATE ROLE sneaky",
        "CREATE DATABASE sneaky",
    ],
)
def test_rejects_ddl_by_the_app_user(cluster: Cluster, statement: str) -> None:
    with cluster.login("checkout_app", "checkout") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_migrator_runs_ddl_in_its_own_schema_as_the_owner(cluster: Cluster) -> None:
    with cluster.login("inventory_migrator", "inventory") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("inventory_owner",)
        conn.execute("CREATE TABLE stock (sku text PRIMARY KEY)")
        conn.execute("ALTER TABLE stock ADD COLUMN quantity int")
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'stock'").fetchone()
        assert owner == ("inventory_owner",)
        conn.execute("DROP TABLE stock")
    with cluster.login("inventory_app", "inventory") as conn:
        conn.execute(f"INSERT INTO {OWN_TABLE} (note) VALUES ('default privileges work')")


def test_rejects_migrator_outside_its_database(cluster: Cluster) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        cluster.login("inventory_migrator", "ledger")


def test_reader_reads_declared_tables_only(cluster: Cluster) -> None:
    with cluster.login("checkout_app", "ledger") as conn:
        assert conn.execute(f"SELECT note FROM ledger.{OWN_TABLE}").fetchall() == [("from the migrator",)]
        for statement in (
            f"INSERT INTO ledger.{OWN_TABLE} (note) VALUES ('x')",
            f"UPDATE ledger.{OWN_TABLE} SET note = 'x'",
            f"DELETE FROM ledger.{OWN_TABLE}",
            f"TRUNCATE ledger.{OWN_TABLE}",
            "CREATE TABLE ledger.sneaky (id int)",
            f"SELECT nextval('ledger.{OWN_TABLE}_id_seq')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.parametrize(
    ("user", "database"),
    [
        ("delivery_app", "ledger"),  # delivery reads checkout, which reads ledger: no transitive access
        ("delivery_app", "inventory"),
        ("ledger_app", "checkout"),  # reads go one way
        ("checkout_migrator", "ledger"),  # reads are the app user's, not the migrator's
    ],
)
def test_rejects_connection_to_undeclared_database(cluster: Cluster, user: str, database: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        cluster.login(user, database)


def test_rejects_wrong_password(cluster: Cluster) -> None:
    url = cluster.server.url("checkout_app", "not-the-password", "checkout")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url)


def test_connection_limit_is_enforced(cluster: Cluster) -> None:
    # ledger's app user may open 2 connections.
    first, second = cluster.login("ledger_app", "ledger"), cluster.login("ledger_app", "ledger")
    try:
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            cluster.login("ledger_app", "ledger")
    finally:
        first.close()
        second.close()


def test_statement_timeout_is_enforced(cluster: Cluster) -> None:
    # ledger's app user has a 300 ms statement timeout.
    with cluster.login("ledger_app", "ledger") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("300ms",)
        with pytest.raises(errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(2)")


def test_verify_passes_on_the_applied_cluster(cluster: Cluster) -> None:
    code, output = cluster.cli("verify")
    assert code == 0, output
    assert "OK: every login user's access matches the declarations." in output
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[3:11]}
    # Columns in the order of the service files: checkout, delivery, inventory, ledger.
    assert rows["checkout_app"] == ["write", "-", "read", "read"]
    assert rows["checkout_migrator"] == ["ddl", "-", "-", "-"]
    assert rows["delivery_app"] == ["read", "write", "-", "-"]


def test_verify_names_a_second_writer_and_apply_removes_it(cluster: Cluster) -> None:
    with cluster.admin("ledger") as conn:
        conn.execute("SET ROLE ledger_owner")
        conn.execute(f"GRANT INSERT ON ledger.{OWN_TABLE} TO checkout_app")
    code, output = cluster.cli("verify")
    assert code == 1
    assert f"second writer: checkout_app has write on ledger (declared: read): INSERT on ledger.{OWN_TABLE}" in output
    assert f"drift: revoke INSERT on table ledger.ledger.{OWN_TABLE} from checkout_app (not declared)" in output

    assert cluster.cli("apply")[0] == 0
    assert cluster.cli("verify")[0] == 0


def test_apply_revokes_an_undeclared_connect(cluster: Cluster) -> None:
    with cluster.admin() as conn:
        conn.execute("SET ROLE ledger_owner")
        conn.execute("GRANT CONNECT ON DATABASE ledger TO delivery_app")
    cluster.login("delivery_app", "ledger").close()
    code, output = cluster.cli("verify")
    assert code == 1
    assert "delivery_app can connect to ledger (declared: none)" in output
    assert "drift: revoke CONNECT on database ledger from delivery_app (not declared)" in output
    assert cluster.cli("apply")[0] == 0
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        cluster.login("delivery_app", "ledger")


def test_verify_names_a_public_grant_and_apply_removes_it(cluster: Cluster) -> None:
    with cluster.admin() as conn:
        conn.execute("SET ROLE inventory_owner")
        conn.execute("GRANT CONNECT ON DATABASE inventory TO PUBLIC")
    code, output = cluster.cli("verify", "--format", "json")
    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False
    messages = [d["message"] for d in report["differences"]]
    assert "revoke CONNECT on database inventory from PUBLIC" in messages
    assert "ledger_app can connect to inventory (declared: none)" in messages
    assert report["access"]["ledger_app"]["inventory"]["connect"] is True

    assert cluster.cli("apply")[0] == 0
    assert cluster.cli("verify")[0] == 0


def test_apply_resets_a_changed_password(cluster: Cluster) -> None:
    with cluster.admin() as conn:
        conn.execute("ALTER ROLE delivery_app PASSWORD 'changed-by-hand-0123456789'")
    code, output = cluster.cli("plan")
    assert "delivery_app: set the password from its secret (the current one is rejected)" in output
    assert "PASSWORD :'password_delivery_app'" in output
    assert cluster.cli("apply")[0] == 0
    cluster.login("delivery_app", "delivery").close()


def test_unmanaged_roles_and_databases_are_not_touched(cluster: Cluster) -> None:
    with cluster.admin() as conn:
        conn.execute("CREATE ROLE analyst LOGIN CONNECTION LIMIT 3 PASSWORD 'analyst-password-0123456789'")
        conn.execute("CREATE DATABASE analytics")
    try:
        assert cluster.cli("apply") == (0, "-- nothing to do: the server matches the declarations")
        with cluster.admin() as conn:
            assert conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'analyst'").fetchone() == (3,)
            acl = conn.execute("SELECT datacl FROM pg_database WHERE datname = 'analytics'").fetchone()
            assert acl == (None,)
        # An undeclared login role is reported once it reaches a managed database.
        with cluster.admin() as conn:
            conn.execute("SET ROLE delivery_owner")
            conn.execute("GRANT CONNECT ON DATABASE delivery TO analyst")
        code, output = cluster.cli("verify")
        assert code == 1
        assert "unmanaged: analyst is not declared but has none on delivery (can connect)" in output
        assert "analyst" in output.splitlines()[11]  # shown in the matrix too
    finally:
        with cluster.admin() as conn:
            conn.execute("SET ROLE delivery_owner")
            conn.execute("REVOKE CONNECT ON DATABASE delivery FROM analyst")
            conn.execute("RESET ROLE")
            conn.execute("DROP DATABASE analytics")
            conn.execute("DROP ROLE analyst")
    assert cluster.cli("verify")[0] == 0


def test_apply_enters_a_database_the_admin_cannot_read_yet(cluster: Cluster) -> None:
    """The admin is no longer a member of the owner (revoked by hand), and drift hides inside."""
    with cluster.admin("inventory") as conn:
        conn.execute("SET ROLE inventory_owner")
        conn.execute(f"GRANT DELETE ON inventory.{OWN_TABLE} TO delivery_app")
        conn.execute("RESET ROLE")
        conn.execute(f'SET ROLE "{manager_name("inventory")}"')  # its grantor, as servicedb apply made it
        conn.execute("REVOKE inventory_owner FROM SESSION_USER")
        conn.execute("RESET ROLE")
    code, output = cluster.cli("plan")
    assert "the admin acts as inventory_owner, to create and grant what inventory_owner owns" in output
    assert "some databases could not be read yet" in output
    assert cluster.cli("apply")[0] == 0
    assert cluster.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
    with cluster.admin("inventory") as conn:
        acl = conn.execute(f"SELECT relacl::text FROM pg_class WHERE relname = '{OWN_TABLE}'").fetchone()[0]
        assert "delivery_app" not in acl


def test_concurrent_applies_take_turns(cluster: Cluster) -> None:
    with cluster.admin() as conn:
        conn.execute("ALTER ROLE inventory_app CONNECTION LIMIT 99")
        conn.execute("ALTER ROLE ledger_app RESET statement_timeout")
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cluster.cli("apply")[0])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [0, 0]
    assert cluster.cli("verify")[0] == 0


def test_matrix_as_markdown_and_html(cluster: Cluster) -> None:
    code, markdown = cluster.cli("verify", "--format", "markdown")
    assert code == 0
    assert "| login user | checkout | delivery | inventory | ledger |" in markdown
    assert "| `checkout_app` | write | - | read | read |" in markdown
    code, page = cluster.cli("verify", "--format", "html")
    assert code == 0
    assert page.startswith("<!doctype html>")
    assert '<tr><th>checkout_app</th><td class="write">write</td><td class="none">-</td>' in page


SECURITY_DEFINER = f"""
CREATE FUNCTION add_note(note text) RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = ledger AS $$ INSERT INTO {OWN_TABLE} (note) VALUES (note) $$
"""


def test_only_the_services_own_app_calls_its_functions(cluster: Cluster) -> None:
    """A SECURITY DEFINER function runs as the owner: a reader allowed to call it could write."""
    with cluster.login("ledger_migrator", "ledger") as conn:
        conn.execute(SECURITY_DEFINER)
        conn.execute("CREATE PROCEDURE touch() LANGUAGE sql AS $$ SELECT 1 $$")
    with cluster.login("ledger_app", "ledger") as conn:
        conn.execute("SELECT ledger.add_note('by the app, through the function')")
        conn.execute("CALL ledger.touch()")
    with cluster.login("checkout_app", "ledger") as conn:  # reads ledger
        for statement in ("SELECT ledger.add_note('by a reader')", "CALL ledger.touch()"):
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied for"):
                conn.execute(statement)
    assert cluster.cli("verify")[0] == 0


def test_verify_reports_execute_outside_the_plan_and_apply_takes_it_back(cluster: Cluster) -> None:
    with cluster.login("inventory_migrator", "inventory") as conn:
        conn.execute("CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$")
        conn.execute("GRANT EXECUTE ON FUNCTION answer() TO PUBLIC")
        conn.execute("GRANT EXECUTE ON FUNCTION answer() TO inventory_reader")
        # What a migrator might do for everything it creates later, in any schema.
        conn.execute("ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC")
    with cluster.login("checkout_app", "inventory") as conn:
        assert conn.execute("SELECT inventory.answer()").fetchone() == (42,)
    code, output = cluster.cli("verify")
    assert code == 1
    for drift in (
        "drift: revoke EXECUTE on functions and procedures in inventory.inventory from PUBLIC",
        "drift: revoke EXECUTE on function inventory.inventory.answer() from inventory_reader (not declared)",
        "drift: PUBLIC no longer gets EXECUTE on functions inventory_owner creates in any schema of inventory",
    ):
        assert drift in output, output
    assert cluster.cli("apply")[0] == 0
    assert cluster.cli("verify")[0] == 0
    with cluster.login("checkout_app", "inventory") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT inventory.answer()")
    with cluster.login("inventory_app", "inventory") as conn:
        assert conn.execute("SELECT inventory.answer()").fetchone() == (42,)
