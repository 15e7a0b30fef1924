"""Break-glass access on a real PostgreSQL: grants applied, used, past their time, and removed.

The test services get two grants for the local environment, live from an hour ago to an hour from
now: jdoe reads ledger, asmith writes checkout. Time passing is two things here, as in production:
the server's clock passing a role's `VALID UNTIL` (set in the past directly, so PostgreSQL refuses
the login), and servicedb's clock passing the declared `valid_until` (`$SERVICEDB_NOW`).
Admin steps run as a CREATEDB CREATEROLE role that is not a superuser, as on Aurora.
"""

import json
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from servicedb.access import STAMP_FORMAT
from servicedb.cli import main
from servicedb.load import display
from servicedb.server import LocalServer

from test_isolation import Cluster

OWN_TABLE = "items"
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
END = START + timedelta(hours=2)
AFTER = END + timedelta(minutes=1)
READER = f"tmp_jdoe_ledger_{START:{STAMP_FORMAT}}"
WRITER = f"tmp_asmith_checkout_{START:{STAMP_FORMAT}}"


def grant(person: str, service: str, *, ticket: str, until: datetime = END, **extra: str) -> str:
    fields = "".join(f"    {name}={value!r},\n" for name, value in extra.items())
    return (
        textwrap.dedent(
            f"""\
        from datetime import UTC, datetime
        from servicedb import TemporaryAccess

        ACCESS = TemporaryAccess(
            person={person!r},
            principal_arn="arn:aws:iam::123456789012:role/oncall-{person}",
            environment="local",
            service={service!r},
            ticket={ticket!r},
            valid_from=datetime.fromisoformat({START.isoformat()!r}),
            valid_until=datetime.fromisoformat({until.isoformat()!r}),
        """
        )
        + textwrap.indent(fields, "")
        + ")\n"
    )


@dataclass
class Site(Cluster):
    """A cluster of the test services with break-glass declarations in `access`."""

    access: Path

    def cli(self, command: str, *args: str, access: Path | None = None) -> tuple[int, str]:
        """`servicedb <command>` with `--access`; `expire` takes no services and no secrets."""
        if command != "expire":
            return super().cli(command, "--access", str(access or self.access), *args)
        lines: list[str] = []
        url = self.server.admin_url_with_password
        code = main([command, "--url", url, "--access", str(access or self.access), *args], out=lines.append)
        self.outputs.append("\n".join(lines))
        return code, self.outputs[-1]

    def roles(self, pattern: str = "tmp_%") -> list[str]:
        with self.admin() as conn:
            return [name for (name,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (pattern,))]


@pytest.fixture(scope="module")
def site(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The test services and both grants applied to a server of their own, with a table in each service."""
    access = tmp_path_factory.mktemp("access")
    (access / "inc-1.py").write_text(grant("jdoe", "ledger", ticket="INC-1"))
    (access / "inc-2.py").write_text(
        grant("asmith", "checkout", ticket="INC-2", level="write", reason="requeue the stuck checkouts")
    )
    with LocalServer(server.binaries) as fresh:
        secrets = tmp_path_factory.mktemp("secrets") / "s.json"
        result = Site(server=fresh, secrets=secrets, outputs=[], access=access)
        result.apply_and_migrate(("ledger", "checkout", "inventory"))
        yield result
        result.check_no_password_was_printed()


def test_apply_says_what_each_grant_does_and_a_second_apply_has_nothing_to_do(site: Site) -> None:
    code, output = site.cli("plan")
    assert code == 0
    source = display(site.access)
    assert output.splitlines() == [
        f"-- temporary access: {source}/inc-1.py: live: jdoe may read ledger in local (INC-1) until "
        f"{END:%Y-%m-%dT%H:%M:%SZ} as {READER}",
        f"-- temporary access: {source}/inc-2.py: live: asmith may write checkout in local (INC-2) until "
        f"{END:%Y-%m-%dT%H:%M:%SZ} as {WRITER}",
        "-- nothing to do: the server matches the declarations",
    ]
    with site.admin() as conn:
        until = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (READER,)).fetchone()[0]
    assert until == END


def test_a_read_grant_reads_its_service(site: Site) -> None:
    with site.login(READER, "ledger") as conn:
        assert conn.execute(f"SELECT note FROM {OWN_TABLE}").fetchall() == [("from the migrator",)]
        assert conn.execute("SHOW search_path").fetchone() == ("ledger",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1min",)


@pytest.mark.parametrize(
    "statement",
    [
        f"INSERT INTO {OWN_TABLE} (note) VALUES ('x')",
        f"UPDATE {OWN_TABLE} SET note = 'x'",
        f"DELETE FROM {OWN_TABLE}",
        f"TRUNCATE {OWN_TABLE}",
        f"SELECT nextval('{OWN_TABLE}_id_seq')",
        "CREATE TABLE sneaky (id int)",
        f"ALTER TABLE {OWN_TABLE} ADD COLUMN extra int",
        f"DROP TABLE {OWN_TABLE}",
        "CREATE TEMPORARY TABLE scratch (id int)",
        "CREATE SCHEMA sneaky",
        "CREATE ROLE sneaky",
    ],
)
def test_a_read_grant_writes_nothing_and_runs_no_ddl(site: Site, statement: str) -> None:
    with site.login(READER, "ledger") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


@pytest.mark.parametrize(
    ("role", "database"),
    [(READER, "checkout"), (READER, "inventory"), (WRITER, "ledger"), (WRITER, "inventory")],
)
def test_a_grant_reaches_no_other_service(site: Site, role: str, database: str) -> None:
    # checkout's app user reads ledger and inventory; the grant on checkout does not.
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        site.login(role, database)


def test_a_write_grant_writes_its_service_but_runs_no_ddl(site: Site) -> None:
    with site.login(WRITER, "checkout") as conn:
        conn.execute(f"INSERT INTO {OWN_TABLE} (note) VALUES ('requeued')")
        conn.execute(f"UPDATE {OWN_TABLE} SET note = 'requeued again' WHERE note = 'requeued'")
        conn.execute(f"DELETE FROM {OWN_TABLE} WHERE note = 'requeued again'")
        for statement in ("CREATE TABLE sneaky (id int)", f"DROP TABLE {OWN_TABLE}", f"TRUNCATE {OWN_TABLE}"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_grant_has_a_small_connection_limit(site: Site) -> None:
    first, second = site.login(READER, "ledger"), site.login(READER, "ledger")
    try:
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            site.login(READER, "ledger")
    finally:
        first.close()
        second.close()


def test_the_grants_password_is_in_its_own_secret(site: Site) -> None:
    entry = json.loads(site.secrets.read_text())[f"servicedb/local/access/{READER}"]
    assert (entry["username"], entry["dbname"], entry["engine"]) == (READER, "ledger", "postgres")
    assert len(entry["password"]) == 40


def test_verify_lists_the_active_temporary_access(site: Site) -> None:
    code, output = site.cli("verify")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[11].split() == [READER, "-", "-", "-", "read"]  # checkout, delivery, inventory, ledger
    assert lines[12].split() == [WRITER, "write", "-", "-", "-"]
    table = lines[lines.index("Active temporary access (break-glass):") + 2 :]
    assert table[0].split() == ["role", "person", "service", "level", "ticket", "from", "until", "sessions", "reason"]
    start, end = f"{START:%Y-%m-%dT%H:%M:%SZ}", f"{END:%Y-%m-%dT%H:%M:%SZ}"
    assert table[1].split() == [READER, "jdoe", "ledger", "read", "INC-1", start, end, "0", "-"]
    assert table[2].split()[:8] == [WRITER, "asmith", "checkout", "write", "INC-2", start, end, "0"]
    assert table[2].endswith("requeue the stuck checkouts")

    code, document = site.cli("verify", "--format", "json")
    grants = json.loads(document)["temporary_access"]
    assert [(g["role"], g["ticket"], g["exists"], g["sessions"]) for g in grants] == [
        (READER, "INC-1", True, 0),
        (WRITER, "INC-2", True, 0),
    ]
    code, markdown = site.cli("verify", "--format", "markdown")
    assert f"| {READER} | jdoe | ledger | read | INC-1 | {start} | {end} | 0 | - |" in markdown


def test_a_write_grant_without_a_reason_is_refused_and_nothing_is_applied(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inc-3.py").write_text(grant("bob", "inventory", ticket="INC-3", level="write"))
    code, _ = site.cli("apply", access=tmp_path)
    assert code == 1
    error = capsys.readouterr().err
    assert "servicedb apply: fix these declarations first:" in error
    assert "at reason: is required for level='write'" in error
    assert site.roles("tmp_bob_%") == []


def test_a_grant_ended_early_is_removed_by_expire_at_once(site: Site) -> None:
    """Shortening valid_until in the declaration ends the grant before its role's VALID UNTIL."""
    carol = f"tmp_carol_inventory_{START:{STAMP_FORMAT}}"
    (site.access / "inc-4.py").write_text(grant("carol", "inventory", ticket="INC-4"))
    assert site.cli("apply")[0] == 0
    session = site.login(carol, "inventory")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    (site.access / "inc-4.py").write_text(grant("carol", "inventory", ticket="INC-4", until=now))

    code, output = site.cli("expire")
    assert code == 0
    actions = [json.loads(line) for line in output.splitlines()]
    assert [(a["role"], a["action"]) for a in actions] == [
        (carol, "forbid_login"),
        (carol, "terminate_session"),
        (carol, "drop_role"),
    ]
    assert actions[-1]["valid_until"] == f"{now:%Y-%m-%dT%H:%M:%SZ}"  # as approved, not the old VALID UNTIL
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    assert sorted(site.roles()) == sorted([READER, WRITER])
    code, output = site.cli("apply")
    assert code == 0
    assert "inc-4.py: expired at" in output
    assert carol not in output
    assert site.cli("verify")[0] == 0


def test_after_its_time_a_grant_cannot_log_in_and_expire_ends_its_session(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = site.login(READER, "ledger")
    # What the role created or was given beyond its grant: expire gives it back to the owner.
    with site.admin("ledger") as conn:
        conn.execute("SET ROLE ledger_owner")
        conn.execute(f"GRANT CREATE ON SCHEMA ledger TO {READER}")
        conn.execute(f"GRANT UPDATE ON ledger.{OWN_TABLE} TO {READER}")
    session.execute("CREATE TABLE notes (line text)")
    session.execute("INSERT INTO notes VALUES ('found the bad row')")

    # The server's clock passes VALID UNTIL: no new login, but the open session goes on.
    with site.admin() as conn:
        conn.execute(f"ALTER ROLE {READER} VALID UNTIL '{datetime.now(UTC) - timedelta(minutes=1)}'")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        site.login(READER, "ledger")
    assert session.execute(f"SELECT count(*) FROM {OWN_TABLE}").fetchone() == (1,)

    # servicedb's clock passes the declared valid_until: the grants are no longer planned.
    monkeypatch.setenv("SERVICEDB_NOW", AFTER.isoformat())
    code, output = site.cli("verify")
    assert code == 1
    assert f"expired: {READER} expired at " in output
    assert "still on the server with 1 open sessions; run servicedb expire" in output
    assert f"expired: {WRITER} expired at {END:%Y-%m-%dT%H:%M:%SZ}" in output
    assert "unmanaged" not in output

    code, output = site.cli("expire")
    assert code == 0, output
    actions = [json.loads(line) for line in output.splitlines()]
    assert [(a["role"], a["action"]) for a in actions] == [
        (WRITER, "forbid_login"),
        (WRITER, "drop_role"),
        (READER, "forbid_login"),
        (READER, "terminate_session"),
        (READER, "reassign_owned"),
        (READER, "drop_owned"),
        (READER, "drop_role"),
    ]
    reader = actions[-1]
    assert {key: reader[key] for key in ("person", "service", "level", "ticket", "declaration")} == {
        "person": "jdoe",
        "service": "ledger",
        "level": "read",
        "ticket": "INC-1",
        "declaration": display(site.access / "inc-1.py"),
    }
    assert reader["valid_from"] == f"{START:%Y-%m-%dT%H:%M:%SZ}"
    assert reader["removed_at"] == reader["at"]
    assert (actions[3]["database"], actions[3]["ended"]) == ("ledger", True)
    assert (actions[4]["database"], actions[4]["to"]) == ("ledger", "ledger_owner")

    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    assert site.roles() == []
    with site.admin("ledger") as conn:
        assert conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'").fetchone() == (
            "ledger_owner",
        )
        acl = conn.execute(f"SELECT relacl::text FROM pg_class WHERE relname = '{OWN_TABLE}'").fetchone()[0]
        assert "tmp_" not in acl

    # Nothing is left to do, and the next apply does not bring the grants back.
    assert site.cli("expire") == (0, "")
    code, output = site.cli("apply")
    assert code == 0
    assert "tmp_" not in output.replace(display(site.access), "")
    assert site.cli("verify")[0] == 0
    with site.admin("ledger") as conn:
        conn.execute("SET ROLE ledger_owner")
        conn.execute("DROP TABLE ledger.notes")


def test_concurrent_expire_runs_take_turns_and_touch_nothing_else(site: Site) -> None:
    """Roles made by hand, as if a declaration had long gone: who and what come from the role itself."""
    past, future = "2026-01-01 09:00:00+00", datetime.now(UTC) + timedelta(hours=1)
    with site.admin() as conn:
        conn.execute(
            "CREATE ROLE tmp_bob_inventory_202601010800 LOGIN PASSWORD 'bob-password-0123456789' "
            f"VALID UNTIL '{past}' IN ROLE inventory_reader"
        )
        conn.execute(f"CREATE ROLE tmp_carl_inventory_202601010800 LOGIN VALID UNTIL '{future}'")
        conn.execute(f"CREATE ROLE tmp_dave_inventory_202601010800 LOGIN CREATEDB VALID UNTIL '{past}'")
        conn.execute(f"CREATE ROLE analyst LOGIN VALID UNTIL '{past}'")
    try:
        results: list[tuple[int, str]] = []
        threads = [threading.Thread(target=lambda: results.append(site.cli("expire"))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(code for code, _ in results) == [0, 0]
        actions = [json.loads(line) for _, output in results for line in output.splitlines()]
        assert [a["action"] for a in actions] == ["forbid_login", "drop_role"]
        assert {key: actions[-1][key] for key in ("role", "person", "service", "level", "ticket", "valid_from")} == {
            "role": "tmp_bob_inventory_202601010800",
            "person": "bob",
            "service": "inventory",
            "level": "read",
            "ticket": None,
            "valid_from": "2026-01-01T08:00:00Z",
        }
        assert actions[-1]["valid_until"] == "2026-01-01T09:00:00Z"
        assert sorted(site.roles("tmp_%") + site.roles("analyst")) == [
            "analyst",
            "tmp_carl_inventory_202601010800",  # not expired
            "tmp_dave_inventory_202601010800",  # more than a break-glass role could be: never touched
        ]
    finally:
        with site.admin() as conn:
            for name in ("tmp_carl_inventory_202601010800", "tmp_dave_inventory_202601010800", "analyst"):
                conn.execute(f"DROP ROLE IF EXISTS {name}")


def test_a_role_dropped_under_an_open_session_reads_nothing_more(site: Site) -> None:
    """What a deploy does when it removes an expired grant before expire ran: the provider drops the
    role, and its session stays connected but with none of the role's privileges."""
    with site.admin() as conn:
        conn.execute("CREATE ROLE tmp_erin_inventory_202601010800 LOGIN PASSWORD 'erin-password-0123456789'")
        conn.execute("GRANT inventory_reader TO tmp_erin_inventory_202601010800")
    url = site.server.url("tmp_erin_inventory_202601010800", "erin-password-0123456789", "inventory")
    with psycopg.connect(url, autocommit=True) as session:
        assert session.execute(f"SELECT count(*) FROM inventory.{OWN_TABLE}").fetchone() == (1,)
        with site.admin() as conn:
            conn.execute("DROP ROLE tmp_erin_inventory_202601010800")
        with pytest.raises(errors.InsufficientPrivilege):
            session.execute(f"SELECT count(*) FROM inventory.{OWN_TABLE}")


def test_apply_resets_a_valid_until_set_by_hand_on_a_service_user(site: Site) -> None:
    # As the postgresql provider does (its valid_until defaults to infinity): a service user never expires.
    with site.admin() as conn:
        conn.execute("ALTER ROLE inventory_app VALID UNTIL '2000-01-01 00:00:00+00'")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        site.login("inventory_app", "inventory")
    code, output = site.cli("plan")
    assert "-- inventory_app: valid until infinity (was 2000-01-01T00:00:00+00:00)" in output
    assert "ALTER ROLE \"inventory_app\" VALID UNTIL 'infinity';" in output
    assert site.cli("apply")[0] == 0
    site.login("inventory_app", "inventory").close()
