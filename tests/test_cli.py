"""The CLI end to end: `sql` run through psql, one source with Terraform, errors, secrets, demo."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws

from servicedb.cli import Server, apply_plan, main, parser, password_store
from servicedb.inspect import inspect
from servicedb.load import load_declarations
from servicedb.passwords import LocalSecrets, SecretsError, SecretsManagerSecrets
from servicedb.plan import PUBLIC, ObjectType, manager_name, plan_services
from servicedb.server import LocalServer, scratch_directory
from servicedb.sql import scram_verifier

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "example"
TEST_SERVICES = Path(__file__).parent / "services"


def run_cli(*args: str) -> tuple[int, str]:
    lines: list[str] = []
    code = main(list(args), out=lines.append)
    return code, "\n".join(lines)


def test_sql_script_applied_with_psql_passes_verify(server: LocalServer, tmp_path: Path) -> None:
    code, script = run_cli("sql", "--services", str(TEST_SERVICES))
    assert code == 0
    assert 'REVOKE CONNECT, TEMPORARY ON DATABASE "ledger" FROM PUBLIC;' in script
    assert "ALL" not in script.replace("ALL TABLES", "").replace("ALL SEQUENCES", "").replace("ALL ROUTINES", "")
    (tmp_path / "plan.sql").write_text(script)
    users = [f"{s}_{k}" for s in ("checkout", "delivery", "inventory", "ledger") for k in ("app", "migrator")]
    variables = [f"--variable=password_{user}=pw-{user}-0123456789" for user in users]
    # npm's server comes without psql: any psql runs the script.
    psql = server.binaries.bin_dir / "psql"
    if not psql.is_file():
        psql = shutil.which("psql") or pytest.skip(f"no psql beside PostgreSQL {server.binaries.version} or on PATH")
    with LocalServer(server.binaries) as fresh:
        result = subprocess.run(
            [
                psql,
                "--no-psqlrc",
                "--set=ON_ERROR_STOP=1",
                "--quiet",
                *variables,
                "--file",
                tmp_path / "plan.sql",
                fresh.admin_url,
            ],
            env={**os.environ, "PGPASSWORD": fresh.admin_password},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        code, report = run_cli("verify", "--url", fresh.admin_url_with_password, "--services", str(TEST_SERVICES))
        assert code == 0, report
        psycopg.connect(fresh.url("ledger_app", "pw-ledger_app-0123456789", "ledger")).close()


def test_sql_never_prints_passwords() -> None:
    code, script = run_cli("sql", "--services", str(TEST_SERVICES))
    assert code == 0
    assert "CREATE ROLE \"ledger_app\" LOGIN INHERIT CONNECTION LIMIT 2 PASSWORD :'password_ledger_app';" in script
    assert "SCRAM-SHA-256" not in script


def test_scram_verifier_is_accepted_by_the_server(server: LocalServer) -> None:
    verifier = scram_verifier("correct horse battery staple")
    with psycopg.connect(server.admin_url, password=server.admin_password, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE scram_check LOGIN PASSWORD '{verifier}'")
    try:
        psycopg.connect(server.url("scram_check", "correct horse battery staple")).close()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.url("scram_check", "wrong"))
    finally:
        with psycopg.connect(server.admin_url, password=server.admin_password, autocommit=True) as conn:
            conn.execute("DROP ROLE scram_check")


def grants_from_terraform(stack: dict) -> set[tuple]:
    """(kind, database, schema, object type, grantee, privileges) of every postgresql_* resource."""
    resources = stack["resource"]
    result = set()
    for name, grant in resources["postgresql_grant"].items():
        if "_grants_admin_connect_" in name:
            continue  # the admin's own CONNECT (the SQL path's `TO SESSION_USER`), left out on both sides here
        result.add(
            (
                "grant",
                grant["database"],
                grant.get("schema"),
                grant["object_type"],
                grant["role"],
                frozenset(grant["privileges"]),
            )
        )
    for default in resources["postgresql_default_privileges"].values():
        result.add(
            (
                "default",
                default["database"],
                default.get("schema"),
                default["object_type"],
                default["role"],
                frozenset(default["privileges"]),
            )
        )
    for name, membership in resources["postgresql_grant_role"].items():
        # The admin's membership of each owner: the SQL path's `GRANT <owner> TO CURRENT_USER`,
        # which inspect leaves out (test_terraform_path checks it as the provider applies it).
        if "_memberships_admin_in_owner_" not in name:
            result.add(("member", membership["role"], membership["grant_role"]))
    return result


def test_sql_path_and_terraform_agree_on_every_grant(server: LocalServer, synthesized: dict, tmp_path: Path) -> None:
    """Apply the repository's services with the SQL path, read the grants back from the catalogs,
    and compare them with the synthesized postgresql_* resources of the dev stack."""
    declarations = load_declarations(EXAMPLE / "services", EXAMPLE / "environments.toml")
    # Extensions grant nothing, and the embedded server has no pgcrypto.
    services = [dataclasses.replace(s, extensions=()) for s in declarations.services]
    plan = plan_services(services, declarations.environment("dev"))

    def resolve(value: str) -> str:
        # Terraform references (${postgresql_role.xxx.name}) become names through the synthesized roles.
        if value.startswith("${"):
            address = value[2:-1].rsplit(".", 1)[0]
            kind, name = address.split(".", 1)
            return stack["resource"][kind][name]["name"]
        return value

    stack = synthesized["dev-database-access"]
    terraform = {tuple(resolve(v) if isinstance(v, str) else v for v in item) for item in grants_from_terraform(stack)}

    with LocalServer(server.binaries) as fresh:
        passwords = apply_plan(
            Server(fresh.admin_url_with_password), plan, LocalSecrets(tmp_path / "s.json"), out=lambda _: None
        )
        for service in services:  # tables, so that grants on ALL TABLES are visible in the catalogs
            url = fresh.url(f"{service.name}_migrator", passwords[f"{service.name}_migrator"], service.name)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY)")

        def connect(database: str | None = None) -> psycopg.Connection:
            return psycopg.connect(
                fresh.admin_url, password=fresh.admin_password, dbname=database or "postgres", autocommit=True
            )

        with connect() as conn:
            current = inspect(conn, plan, connect=connect)

    live = set()
    roles = {role.name for s in plan.services for role in s.roles} | {PUBLIC}
    for name, database in current.databases.items():
        for grantee, privileges in database.acl.items():
            if grantee in roles and grantee != database.owner:
                live.add(("grant", name, None, "database", grantee, privileges))
        if PUBLIC not in database.acl:
            live.add(("grant", name, None, "database", PUBLIC, frozenset()))
        contents = database.contents
        for schema in (name, "public"):
            owner, acl = contents.schemas[schema]
            for grantee, privileges in acl.items():
                if grantee in roles and grantee != owner:
                    live.add(("grant", name, schema, "schema", grantee, privileges))
        for relation in contents.relations:
            for grantee, privileges in relation.acl.items():
                if grantee in roles and grantee != relation.owner:
                    live.add(("grant", name, relation.schema, str(relation.object_type), grantee, privileges))
        for (owner, schema, object_type), acl in contents.default_acls.items():
            for grantee, privileges in acl.items():
                if grantee != owner:  # the owner's own, in the defaults of no schema
                    live.add(("default", name, schema, str(object_type), grantee, privileges))
            if schema is None and PUBLIC not in acl:  # PUBLIC's EXECUTE on new functions, taken away
                live.add(("default", name, None, str(object_type), PUBLIC, frozenset()))
    # The managers' memberships are how apply works (plan.manager_name), as the admin's are.
    managers = {manager_name(service.name) for service in services}
    live |= {("member", member, role) for member, role in current.memberships if member not in managers}

    assert live == terraform
    # Grants on functions that exist are the SQL path's alone; both have their default privileges.
    assert {item[3] for item in live if item[0] == "grant"} == {str(t) for t in ObjectType} - {"function"}
    assert {item[3] for item in live if item[0] == "default"} == {"table", "sequence", "function"}


def test_fails_clearly_on_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(
        "verify", "--url", "postgresql://admin:hunter2-secret@127.0.0.1:1/postgres", "--services", str(TEST_SERVICES)
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "servicedb verify: cannot connect to" in err
    assert "hunter2-secret" not in err
    assert "Traceback" not in err


def test_fails_clearly_on_bad_declarations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.py").write_text("from servicedb import Service\nSERVICE = Service(name='Bad')\n")
    assert run_cli("sql", "--services", str(tmp_path))[0] == 1
    err = capsys.readouterr().err
    assert "servicedb sql: fix these declarations first:" in err
    assert "at name: must match" in err


def test_fails_clearly_on_unknown_environment(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(
        "sql",
        "--services",
        str(EXAMPLE / "services"),
        "--env",
        "staging",
        "--environments",
        str(EXAMPLE / "environments.toml"),
    )
    assert code == 1
    assert "no environment named 'staging' (declared: dev, prod)" in capsys.readouterr().err


def test_refuses_to_apply_an_unavailable_extension(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vault.py").write_text(
        "from servicedb import Service\nSERVICE = Service(name='vault', extensions=('no_such_extension',))\n"
    )
    with LocalServer(server.binaries) as fresh:
        code, _ = run_cli(
            "apply",
            "--url",
            fresh.admin_url_with_password,
            "--services",
            str(tmp_path),
            "--secrets",
            str(tmp_path / "s.json"),
        )
        assert code == 1
        assert "extension no_such_extension of service vault is not available" in capsys.readouterr().err
        with psycopg.connect(fresh.admin_url, password=fresh.admin_password) as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'vault%'").fetchone() == (0,)


def test_rejects_a_secrets_file_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("{}")
    path.chmod(0o644)
    with pytest.raises(SecretsError, match="readable by others"):
        LocalSecrets(path).read()


@mock_aws
def test_reads_passwords_from_secrets_manager() -> None:
    declarations = load_declarations(EXAMPLE / "services", EXAMPLE / "environments.toml")
    plan = plan_services(declarations.services, declarations.environment("dev"))
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    for service in plan.services[:-1]:
        for secret in service.secrets:
            client.create_secret(
                Name=secret.name, SecretString=json.dumps({**secret.fields, "password": f"pw-{secret.username}"})
            )
    store = SecretsManagerSecrets(client)
    with pytest.raises(SecretsError, match="2 secrets do not exist in Secrets Manager: servicedb/dev/shipping/app"):
        store.passwords(plan)
    last = plan.services[-1]
    for secret in last.secrets:
        client.create_secret(Name=secret.name, SecretString=json.dumps({**secret.fields, "password": "pw"}))
    passwords = store.passwords(plan)
    assert passwords["orders_app"] == "pw-orders_app"
    assert set(passwords) == {user.name for s in plan.services for user in s.login_users}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch directory of its own, so servers of other test runs on the machine do not count.

    Beside the default one, which the server's user (`nobody` when run as root) can reach."""
    directory = Path(tempfile.mkdtemp(prefix="servicedb-test-", dir=scratch_directory()))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_demo_applies_the_example_services_and_leaves_nothing_running(scratch: Path) -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "servicedb", "demo", "--services", str(EXAMPLE / "services")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SERVICEDB_SCRATCH": str(scratch)},
    )
    assert result.returncode == 0, result.stderr
    assert "applied as servicedb_admin (CREATEDB, CREATEROLE, not a superuser)" in result.stdout
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.startswith("orders_")}
    assert rows["orders_app"] == ["read", "read", "write", "-"]  # billing, catalog, orders, shipping
    assert rows["orders_migrator"] == ["-", "-", "ddl", "-"]
    assert "OK: every login user's access matches the declarations." in result.stdout
    assert list(scratch.iterdir()) == []
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(scratch) not in processes


@pytest.mark.parametrize("command", ["sql", "plan", "apply", "verify", "demo", "event", "record"])
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "servicedb", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--services" in result.stdout


@mock_aws
def test_a_declared_environment_reads_secrets_manager_unless_told_otherwise(tmp_path: Path) -> None:
    declarations = load_declarations(EXAMPLE / "services", EXAMPLE / "environments.toml")
    plan = plan_services(declarations.services, declarations.environment("prod"))
    args = parser().parse_args(["apply", "--url", "postgresql://admin@db.internal/postgres", "--env", "prod"])
    assert isinstance(password_store(args, plan), SecretsManagerSecrets)
    local = str(tmp_path / "secrets.json")
    args = parser().parse_args(["apply", "--url", "postgresql://admin@db.internal/postgres", "--secrets", local])
    assert isinstance(password_store(args, plan), LocalSecrets)


def test_expire_has_help_and_needs_no_declarations() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "servicedb", "expire", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--url" in result.stdout and "--access" in result.stdout
    assert "--services" not in result.stdout


def test_expire_fails_clearly_on_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("expire", "--url", "postgresql://admin:hunter2-secret@127.0.0.1:1/postgres")
    assert code == 1
    err = capsys.readouterr().err
    assert "servicedb expire: cannot connect to" in err
    assert "hunter2-secret" not in err
    assert "Traceback" not in err


def test_expire_reads_around_a_broken_declaration(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Expiry never waits for a declaration to be fixed: it is only where the why of a line comes from.
    (tmp_path / "inc-1.py").write_text("ACCESS = (\n")
    (tmp_path / "inc-2.py").write_text("ACCESS = 'not a grant'\n")
    code, output = run_cli("expire", "--url", server.admin_url_with_password, "--access", str(tmp_path))
    assert (code, output) == (0, "")
    err = capsys.readouterr().err
    assert "servicedb expire: reading without these declarations:" in err
    assert "inc-1.py: module: 1 problem\n  is not valid Python" in err
    assert "inc-2.py: not a valid TemporaryAccess; left out" in err


def test_a_grant_of_another_environment_is_not_applied_locally(tmp_path: Path) -> None:
    shutil.copytree(TEST_SERVICES, tmp_path / "services")
    (tmp_path / "access").mkdir()
    (tmp_path / "access" / "inc-1.py").write_text(
        (EXAMPLE / "access" / "2026-11-02-inc-4711.py").read_text().replace('service="orders"', 'service="ledger"')
    )
    code, script = run_cli("sql", "--services", str(tmp_path / "services"))
    assert code == 0
    assert "tmp_" not in script
