"""One SQL path, two drivers: the statements' text, and psycopg and pg8000 on a real PostgreSQL.

The CLI connects with psycopg, the provisioner function with pg8000. Both must read the same
current state, compute the same verify report, and fail the same way.
"""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql as psycopg_sql

from servicedb import compose
from servicedb.apply import ApplyError, apply_plan, current_state, run
from servicedb.cli import Server, local_environment, local_services
from servicedb.driver import INVALID_PASSWORD, Pg8000Server, failure
from servicedb.passwords import LocalSecrets
from servicedb.plan import Plan, plan_services
from servicedb.server import ADMIN, LocalServer
from servicedb.sql import Statement
from servicedb.verify import verify

SERVICES = Path(__file__).parent / "services"

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"))
"""Any text PostgreSQL can hold: no NUL, and no lone surrogate (not UTF-8)."""


@given(TEXT)
def test_a_literal_reads_as_psycopg_writes_it(value: str) -> None:
    assert compose.Literal(value).as_string() == psycopg_sql.Literal(value).as_string()


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_number_reads_as_psycopg_writes_it(value: int) -> None:
    assert compose.Literal(value).as_string() == psycopg_sql.Literal(value).as_string()


@given(st.lists(TEXT.filter(bool), min_size=1, max_size=3))
def test_an_identifier_reads_as_psycopg_writes_it(names: list[str]) -> None:
    assert compose.Identifier(*names).as_string() == psycopg_sql.Identifier(*names).as_string()


def test_format_and_join_compose_as_psycopg_does() -> None:
    def build(sql):  # the same calls on either module
        privileges = sql.SQL(", ").join([sql.SQL("SELECT"), sql.SQL("INSERT")])
        return sql.SQL("GRANT {2} ON ALL TABLES IN SCHEMA {schema} TO {0}; SET x = {1}; {{}}").format(
            sql.Identifier("orders_app"), sql.Literal("it's"), privileges, schema=sql.Identifier("orders")
        ) + sql.SQL("SET y = {}").format(sql.Literal(-1))

    assert build(compose).as_string() == build(psycopg_sql).as_string()
    for sql in (compose, psycopg_sql):
        with pytest.raises(ValueError, match="numbering"):
            sql.SQL("{} {0}").format(sql.SQL("a"), sql.SQL("b"))


def test_rejects_what_psycopg_would_not_quote() -> None:
    with pytest.raises(ValueError, match="NUL"):
        compose.Literal("a\0b")
    with pytest.raises(TypeError, match="Composable"):
        compose.SQL("SET x = {}").format("not quoted")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="whole number"):
        compose.Literal(1.5)  # type: ignore[arg-type]


class Cluster:
    """A fresh server with the test services applied, a table in each, some drift, and both drivers."""

    def __init__(self, local: LocalServer, secrets: Path) -> None:
        environment = local_environment("127.0.0.1", local.port)
        self.local = local
        self.plan: Plan = plan_services(local_services(SERVICES, environment), environment)
        self.psycopg = Server(local.admin_url_with_password)
        self.pg8000 = Pg8000Server(
            host="127.0.0.1", port=local.port, user=ADMIN, password=local.admin_password, ssl=False
        )
        self.passwords = apply_plan(self.psycopg, self.plan, LocalSecrets(secrets), out=lambda _: None)

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            self.local.admin_url, password=self.local.admin_password, dbname=database, autocommit=True
        )


@pytest.fixture(scope="module")
def cluster(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with LocalServer(server.binaries) as local:
        result = Cluster(local, tmp_path_factory.mktemp("secrets") / "secrets.json")
        for service in ("ledger", "checkout"):
            url = local.url(f"{service}_migrator", result.passwords[f"{service}_migrator"], service)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tags text[])")
        with result.admin("ledger") as conn:  # drift: a second writer, a changed setting, an unmanaged role
            conn.execute("SET ROLE ledger_owner")
            conn.execute("GRANT INSERT, UPDATE ON ledger.items TO checkout_app")
            conn.execute("RESET ROLE")
            conn.execute("ALTER ROLE ledger_app SET search_path = 'ledger', 'public'")
            conn.execute("CREATE ROLE analyst LOGIN PASSWORD 'analyst-password-0123456789'")
            conn.execute("SET ROLE ledger_owner")
            conn.execute("GRANT CONNECT ON DATABASE ledger TO analyst")
        yield result


def test_both_drivers_read_the_same_current_state(cluster: Cluster) -> None:
    passwords = {**cluster.passwords, "inventory_app": "not-the-password"}
    by_psycopg = current_state(cluster.psycopg, cluster.plan, passwords)
    by_pg8000 = current_state(cluster.pg8000, cluster.plan, passwords)
    assert by_pg8000 == by_psycopg
    assert by_pg8000.password_ok["inventory_app"] is False
    assert by_pg8000.roles["ledger_app"].settings["search_path"] == "ledger, public"
    relation = next(r for r in by_pg8000.databases["ledger"].contents.relations if r.name == "items")
    assert relation.acl["checkout_app"] == frozenset({"INSERT", "UPDATE"})


def test_both_drivers_verify_the_same(cluster: Cluster) -> None:
    with cluster.psycopg.connect() as conn:
        by_psycopg = verify(conn, cluster.plan, connect=cluster.psycopg.connect)
    with cluster.pg8000.connect() as conn:
        by_pg8000 = verify(conn, cluster.plan, connect=cluster.pg8000.connect)
    assert by_pg8000 == by_psycopg
    messages = [d.message for d in by_pg8000.differences]
    writes = "INSERT on ledger.items, UPDATE on ledger.items"
    assert f"second writer: checkout_app has write on ledger (declared: read): {writes}" in messages
    assert "unmanaged: analyst is not declared but has none on ledger (can connect)" in [
        f"{d.kind}: {d.message}" for d in by_pg8000.differences
    ]


@pytest.mark.parametrize("driver", ["psycopg", "pg8000"])
def test_both_drivers_tell_a_wrong_password(cluster: Cluster, driver: str) -> None:
    server = getattr(cluster, driver)
    with pytest.raises(Exception) as raised:
        server.connect_as("ledger_app", "not-the-password")
    refused = failure(raised.value)
    assert refused is not None
    assert refused.sqlstate == INVALID_PASSWORD or "password authentication failed" in str(raised.value)


@pytest.mark.parametrize("driver", ["psycopg", "pg8000"])
def test_a_failed_statement_undoes_its_group(cluster: Cluster, driver: str) -> None:
    server = getattr(cluster, driver)
    group = [
        Statement(description="create role doomed", query=compose.SQL("CREATE ROLE doomed NOLOGIN")),
        Statement(description="grant a role that does not exist", query=compose.SQL("GRANT no_such_role TO doomed")),
    ]
    with pytest.raises(ApplyError, match=r"grant a role that does not exist \(admin database\) failed: role "):
        run(group, connect=server.connect, passwords={}, log=lambda _: None)
    with cluster.admin() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'doomed'").fetchone() == (0,)


@pytest.mark.parametrize("driver", ["psycopg", "pg8000"])
def test_both_drivers_give_up_on_a_held_lock(cluster: Cluster, driver: str) -> None:
    statement = Statement(
        description="lock checkout's items",
        query=compose.SQL("LOCK TABLE checkout.items IN ACCESS EXCLUSIVE MODE"),
        database="checkout",
        role="checkout_owner",
    )
    with cluster.admin("checkout") as holder, holder.transaction():
        holder.execute("SET LOCAL ROLE checkout_owner")
        holder.execute("LOCK TABLE checkout.items IN ACCESS SHARE MODE")
        with pytest.raises(ApplyError, match=r"lock checkout's items \(checkout\): waited 200ms for a lock") as raised:
            connect = getattr(cluster, driver).connect
            run([statement], connect=connect, passwords={}, log=lambda _: None, lock_timeout="200ms")
        holder_pid = holder.info.backend_pid
    assert f"pid {holder_pid} ({ADMIN}) holds locks on checkout.items; retry when they are done" in str(raised.value)
