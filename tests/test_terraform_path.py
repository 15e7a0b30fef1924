"""The Terraform path, proven as the provider applies it: the synthesized `postgresql_*` resources
applied by a model of provider 1.26.0 (tests/terraform_provider.py) on a real PostgreSQL, logged
in as a CREATEDB CREATEROLE admin that is not a superuser, as on Aurora. Then every login user
tries every database, `servicedb verify` and `servicedb plan` run on the result, and a second
plan of the provider is empty. In addition to the SQL path's tests, not instead of them.
"""

import dataclasses
import functools
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cdktf import Testing
from psycopg import errors, sql

from servicedb.access import TemporaryAccess
from servicedb.cli import local_environment, local_services, main
from servicedb.construct import provider_login_of
from servicedb.passwords import LocalSecrets
from servicedb.plan import Plan, RoleKind, plan_services
from servicedb.server import ADMIN, LocalServer
from servicedb.stack import DatabaseAccessStack

from clusters import write_services
from terraform_provider import ProviderError, ProviderModel, resources_of

SERVICES = {
    "ledger": "Service(name='ledger', connection_limit=2, statement_timeout_ms=300)",
    "inventory": "Service(name='inventory', extensions={extensions!r})",
    "checkout": "Service(name='checkout', reads=(Reads(service='ledger'), Reads(service='inventory')))",
    "delivery": "Service(name='delivery', reads=(Reads(service='checkout'),), idle_in_transaction_timeout_ms=5000)",
}
MASTER_SECRET = "data.aws_secretsmanager_secret_version.master_secret.secret_string"
OWN_TABLE = "items"
REQUIRED_FIELDS = ("region", "account_id", "cluster_identifier", "endpoint", "master_secret_arn", "engine_version")


def trusted_extensions(server: LocalServer) -> tuple[str, ...]:
    """An extension a non-superuser may create with CREATE on the database, if this server has one
    (the embedded PostgreSQL 16 has none)."""
    with psycopg.connect(server.admin_url, password=server.admin_password, dbname="postgres") as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT DISTINCT name FROM pg_available_extension_versions WHERE trusted "
                "AND name <> 'plpgsql' ORDER BY 1"
            )
        ]
    if not names:
        return ()
    return ("pgcrypto",) if "pgcrypto" in names else (names[0],)


def declarations(directory: Path, extensions: tuple[str, ...]) -> Path:
    return write_services(directory, {name: text.format(extensions=extensions) for name, text in SERVICES.items()})


def synthesize(plan: Plan) -> dict:
    stack = DatabaseAccessStack(Testing.app(), plan=plan)
    return json.loads(Testing.synth(stack, run_validations=True))


def model_for(server: LocalServer) -> ProviderModel:
    def connect(database: str) -> psycopg.Connection:
        return psycopg.connect(server.admin_url, password=server.admin_password, dbname=database, autocommit=True)

    # The master secret's username is what the provider logs in as; its password is not needed here.
    master = json.dumps({"username": ADMIN})
    return ProviderModel(connect, user=ADMIN, data={MASTER_SECRET: master})


@dataclass
class TerraformBuilt:
    """The test services synthesized, applied by the provider model, with a secrets file holding
    the passwords Terraform generated, as Secrets Manager would."""

    server: LocalServer
    services: Path
    plan: Plan
    stack: dict
    model: ProviderModel
    secrets: Path
    environments: Path | None = None
    """An environments file declaring the local server as `local`, for `--env local`; None when
    the CLI's own local environment is the one synthesized."""

    @property
    def passwords(self) -> dict[str, str]:
        return {
            state["name"]: state["password"]
            for address, state in self.model.state.items()
            if address.startswith("postgresql_role.") and state.get("password")
        }

    def write_secrets(self) -> None:
        passwords = self.passwords
        entries = {
            secret.name: {
                **secret.fields,
                "host": "127.0.0.1",
                "port": self.server.port,
                "password": passwords[secret.username],
                "rotation": next(r for r in self.plan.roles if r.name == secret.username).password_rotation,
            }
            for secret in self.plan.secrets
        }
        LocalSecrets(self.secrets).write(entries)

    def login(self, user: str, database: str) -> psycopg.Connection:
        return psycopg.connect(self.server.url(user, self.passwords[user], database), autocommit=True)

    def cli(self, command: str, *args: str) -> tuple[int, str]:
        lines: list[str] = []
        code = main(
            [
                command,
                "--url",
                self.server.admin_url_with_password,
                "--services",
                str(self.services),
                "--secrets",
                str(self.secrets),
                *(["--env", "local", "--environments", str(self.environments)] if self.environments else []),
                *args,
            ],
            out=lines.append,
        )
        return code, "\n".join(lines)


def break_glass() -> TemporaryAccess:
    """A read grant on ledger, live for the next two hours."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    return TemporaryAccess(
        person="jdoe",
        principal_arn="arn:aws:iam::000000000000:role/oncall-jdoe",
        environment="local",
        service="ledger",
        ticket="INC-1",
        valid_from=start,
        valid_until=start + timedelta(hours=2),
    )


def build(server: LocalServer, directory: Path, *, logins: int = 0) -> TerraformBuilt:
    """The test services with a break-glass grant; with `logins`, the environment's
    `terraform_logins`: that many CREATEDB CREATEROLE logins the admin makes, as the master user
    would on Aurora, each with its secret."""
    services = declarations(directory / "services", trusted_extensions(server))
    grant = break_glass()
    (directory / "access").mkdir()
    (directory / "access" / "inc-1.py").write_text(
        "from datetime import UTC, datetime\n\nfrom servicedb import TemporaryAccess\n\n"
        f"ACCESS = TemporaryAccess(person={grant.person!r}, principal_arn={grant.principal_arn!r}, "
        f"environment={grant.environment!r}, service={grant.service!r}, ticket={grant.ticket!r}, "
        f"valid_from=datetime.fromisoformat({grant.valid_from.isoformat()!r}), "
        f"valid_until=datetime.fromisoformat({grant.valid_until.isoformat()!r}))\n"
    )
    environment = local_environment("127.0.0.1", server.port)
    logins = {f"servicedb_login_{number}": secrets.token_urlsafe(24) for number in range(1, logins + 1)}
    arn = "arn:aws:secretsmanager:eu-west-1:000000000000:secret:servicedb-login-{}"
    environment = dataclasses.replace(
        environment, terraform_logins=tuple((user, arn.format(user)) for user in sorted(logins))
    )
    environments = None
    if logins:
        # The same environment as a file, for the CLI: `verify` knows the logins from it.
        environments = directory / "environments.toml"
        fields = dataclasses.asdict(environment)
        table = [
            f"{name} = {json.dumps(fields[name])}" for name in REQUIRED_FIELDS + ("port", "secret_recovery_window_days")
        ]
        table.append("expiry_schedule_minutes = 0")  # the CLI's local environment has no schedule either
        table += [
            "[local.terraform_logins]",
            *(f"{user} = {json.dumps(secret)}" for user, secret in environment.terraform_logins),
        ]
        environments.write_text("[local]\n" + "\n".join(table) + "\n")
    with psycopg.connect(server.admin_url, password=server.admin_password, dbname="postgres") as conn:
        for user, password in logins.items():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
    plan = plan_services(local_services(services, environment), environment, access=[grant])
    model = model_for(server)
    for user, password in logins.items():
        model.logins[user] = functools.partial(connect_as, server, user, password)
    return TerraformBuilt(
        server=server,
        services=services,
        plan=plan,
        stack=synthesize(plan),
        model=model,
        secrets=directory / "secrets.json",
        environments=environments,
    )


def connect_as(server: LocalServer, user: str, password: str, database: str) -> psycopg.Connection:
    return psycopg.connect(server.url(user, password, database), autocommit=True)


def applied(server: LocalServer, directory: Path, *, logins: int = 0) -> TerraformBuilt:
    """`build`, applied the provider's way, with the secrets written and each migrator's table."""
    result = build(server, directory, logins=logins)
    result.model.apply(result.stack)
    result.write_secrets()
    for service in result.plan.services:
        with result.login(f"{service.service}_migrator", service.service) as conn:
            conn.execute(f"CREATE TABLE {OWN_TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
            conn.execute(f"INSERT INTO {OWN_TABLE} (note) VALUES ('from the migrator')")
    return result


@pytest.fixture(scope="module")
def built(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerraformBuilt]:
    """The stack applied the provider's way on a server of its own, and each migrator's table."""
    with LocalServer(server.binaries) as fresh:
        yield applied(fresh, tmp_path_factory.mktemp("terraform"))


@pytest.fixture(scope="module")
def built_by_logins(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerraformBuilt]:
    """The same, applied by three `terraform_logins`: each service by one of them."""
    with LocalServer(server.binaries) as fresh:
        yield applied(fresh, tmp_path_factory.mktemp("terraform-logins"), logins=3)


def test_the_model_covers_every_postgresql_resource_of_the_stack(built: TerraformBuilt) -> None:
    types = {resource.type for resource in resources_of(built.stack)}
    if not built.plan.service("inventory").extensions:
        types.add("postgresql_extension")  # this server has no extension the admin may create
    assert types == {
        "random_password",
        "postgresql_role",
        "postgresql_database",
        "postgresql_schema",
        "postgresql_grant",
        "postgresql_grant_role",
        "postgresql_default_privileges",
        "postgresql_extension",
    }
    assert len(built.model.state) == len(resources_of(built.stack))


def test_no_grant_is_a_silent_no_op(built: TerraformBuilt) -> None:
    assert [(e.address, e.statement, e.notices) for e in built.model.silent_no_ops] == []
    database_grants = [e for e in built.model.executed if " ON DATABASE " in e.statement]
    assert database_grants and {e.user for e in database_grants} == {ADMIN}


def test_a_second_plan_is_empty(built: TerraformBuilt) -> None:
    assert built.model.plan(built.stack) == []


def test_every_login_user_connects_exactly_where_declared(built: TerraformBuilt) -> None:
    assert_logins_where_declared(built)


def assert_logins_where_declared(built: TerraformBuilt) -> None:
    databases = [service.service for service in built.plan.services]
    reads = {(m.member, m.role.removesuffix("_reader")) for m in built.plan.reads}
    for service in built.plan.services:
        for user in service.login_users:
            for database in databases:
                declared = database == service.service or (user.name, database) in reads
                assert logs_in(built, user.name, database) == declared, f"{user.name} -> {database}"


def test_the_break_glass_role_reads_its_service_until_it_expires(built: TerraformBuilt) -> None:
    assert_break_glass_reads_ledger_only(built)


def assert_break_glass_reads_ledger_only(built: TerraformBuilt) -> None:
    [grant] = built.plan.temporary
    name = grant.role.name
    with built.login(name, "ledger") as conn:
        assert conn.execute(f"SELECT count(*) FROM ledger.{OWN_TABLE}").fetchone() == (1,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM ledger.{OWN_TABLE}")
        until = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        assert until == grant.role.valid_until
    for database in ("checkout", "inventory", "delivery"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            built.login(name, database)


def logs_in(built: TerraformBuilt, user: str, database: str) -> bool:
    """Whether `user` may log in to `database`; a login refused because the session just closed is
    still ending on the server (its connection limit) is tried again."""
    for _ in range(10):
        try:
            built.login(user, database).close()
            return True
        except psycopg.OperationalError as error:
            if "too many connections" in str(error):
                time.sleep(0.1)
                continue
            assert "permission denied for database" in str(error)
            return False
    raise AssertionError(f"{user} kept hitting its connection limit")


def test_nobody_creates_temporary_tables(built: TerraformBuilt) -> None:
    for service in built.plan.services:
        with (
            built.login(f"{service.service}_app", service.service) as conn,
            pytest.raises(errors.InsufficientPrivilege),
        ):
            conn.execute("CREATE TEMPORARY TABLE scratch (id int)")


def test_the_app_writes_its_tables_and_readers_only_read(built: TerraformBuilt) -> None:
    assert_writes_own_reads_declared(built)


def assert_writes_own_reads_declared(built: TerraformBuilt) -> None:
    with built.login("checkout_app", "checkout") as conn:
        conn.execute(f"INSERT INTO {OWN_TABLE} (note) VALUES ('by the app')")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (id int)")
    with built.login("checkout_app", "ledger") as conn:
        assert conn.execute(f"SELECT note FROM ledger.{OWN_TABLE}").fetchall() == [("from the migrator",)]
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f"INSERT INTO ledger.{OWN_TABLE} (note) VALUES ('x')")


def test_the_extension_is_in_the_services_schema(built: TerraformBuilt) -> None:
    if not built.plan.service("inventory").extensions:
        pytest.skip(f"PostgreSQL {built.server.binaries.version} here has no trusted extension besides plpgsql")
    [extension] = built.plan.service("inventory").extensions
    with built.login("inventory_migrator", "inventory") as conn:
        schema = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = %s", (extension.name,)
        )
        assert schema.fetchone() == ("inventory",)


def test_role_settings_are_the_declared_ones(built: TerraformBuilt) -> None:
    with built.login("ledger_app", "ledger") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("300ms",)
    with built.login("delivery_app", "delivery") as conn:
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("5s",)
    with built.login("inventory_migrator", "inventory") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("inventory_owner",)


def test_the_admin_is_a_member_of_each_owner_with_the_admin_option(built: TerraformBuilt) -> None:
    with psycopg.connect(built.server.admin_url, password=built.server.admin_password, dbname="postgres") as conn:
        for service in built.plan.services:
            owner = service.owner.name
            assert conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (owner,)).fetchone() == (True,)


def test_verify_passes_and_the_sql_path_changes_nothing_declared(built: TerraformBuilt) -> None:
    code, output = built.cli("verify")
    assert code == 0, output
    # What servicedb apply would do on a cluster Terraform built: set up its managers, nothing else.
    code, output = built.cli("plan")
    described = [line for line in output.splitlines() if line.startswith("-- ") and "statements to apply" not in line]
    changes = [line for line in described if not line.startswith("-- temporary access:")][2:]
    setup = "-- the admin may act as each manager it creates (SET and INHERIT, as a GRANT gives)"
    assert changes and all("_manager" in line or line == setup for line in changes), output
    assert built.cli("apply")[0] == 0
    code, output = built.cli("plan")
    assert (code, output.splitlines()[-1]) == (0, "-- nothing to do: the server matches the declarations"), output
    # And the provider still plans nothing after the SQL path set up its managers.
    assert built.model.plan(built.stack) == []


def test_the_json_without_the_admins_membership_breaks_isolation(server: LocalServer, tmp_path: Path) -> None:
    """What the provider did with the construct's JSON before the membership: the database grants
    were silent no-ops, PUBLIC kept CONNECT, and the plan never converged."""
    with LocalServer(server.binaries) as fresh:
        result = build(fresh, tmp_path)
        stack = without_admin_membership(result.stack, extensions=False)
        result.model.apply(stack)
        no_ops = {e.statement for e in result.model.silent_no_ops}
        assert 'REVOKE ALL PRIVILEGES ON DATABASE "ledger" FROM "public"' in no_ops
        assert 'GRANT CONNECT ON DATABASE "ledger" TO "ledger_writer"' in no_ops
        assert any(
            "postgresql_grant." in change and "privileges [] -> ['CONNECT']" in change
            for change in result.model.plan(stack)
        )
        # PUBLIC kept CONNECT: delivery's app user enters ledger.
        with psycopg.connect(fresh.url("delivery_app", result.passwords["delivery_app"], "ledger")) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("ledger",)

    if not trusted_extensions(server):
        return  # this server has no extension the admin may create (the embedded PostgreSQL 16)
    with LocalServer(server.binaries) as fresh:
        result = build(fresh, tmp_path / "with-extension")
        with pytest.raises(ProviderError, match="permission denied to create extension"):
            result.model.apply(without_admin_membership(result.stack, extensions=True))


def without_admin_membership(stack: dict, *, extensions: bool) -> dict:
    stack = json.loads(json.dumps(stack))
    resources = stack["resource"]
    memberships = resources["postgresql_grant_role"]
    for name in [name for name in memberships if "_memberships_admin_in_owner_" in name]:
        del memberships[name]
    for database in resources["postgresql_database"].values():
        del database["depends_on"]
    if not extensions:
        resources.pop("postgresql_extension", None)
    return stack


def test_a_cluster_built_by_servicedb_apply_moves_to_terraform(server: LocalServer, tmp_path: Path) -> None:
    """Import what can be imported, create the rest: the plan is then empty, and nothing was dropped."""
    with LocalServer(server.binaries) as fresh:
        result = build(fresh, tmp_path)
        assert result.cli("apply")[0] == 0
        stored = LocalSecrets(result.secrets).stored_passwords()
        with psycopg.connect(
            fresh.url("ledger_migrator", stored["ledger_migrator"], "ledger"), autocommit=True
        ) as conn:
            conn.execute(f"CREATE TABLE {OWN_TABLE} (note text)")
            conn.execute(f"INSERT INTO {OWN_TABLE} VALUES ('kept')")

        imported = result.model.import_existing(result.stack)
        kinds = {address.split(".")[0] for address in imported}
        importable = {"postgresql_role", "postgresql_database", "postgresql_schema", "postgresql_extension"}
        assert kinds == importable - (set() if trusted_extensions(fresh) else {"postgresql_extension"})
        assert result.model.silent_no_ops == []
        assert result.model.plan(result.stack) == []
        assert result.cli("verify")[0] == 0
        with psycopg.connect(fresh.url("ledger_app", stored["ledger_app"], "ledger")) as conn:
            assert conn.execute(f"SELECT note FROM {OWN_TABLE}").fetchall() == [("kept",)]


def test_the_model_refuses_what_it_does_not_model(built: TerraformBuilt) -> None:
    stack = json.loads(json.dumps(built.stack))
    [role] = list(stack["resource"]["postgresql_role"].values())[:1]
    role["superuser"] = True
    with pytest.raises(AssertionError, match=r"attributes \['superuser'\] are not modelled"):
        resources_of(stack)
    del role["superuser"]
    stack["resource"]["postgresql_function"] = {"f": {"name": "f"}}
    with pytest.raises(AssertionError, match="postgresql_function: the model does not know"):
        resources_of(stack)


def test_owner_roles_of_the_plan_are_the_databases_owners(built: TerraformBuilt) -> None:
    owners = {
        state["name"]: state["owner"]
        for address, state in built.model.state.items()
        if address.startswith("postgresql_database.")
    }
    assert owners == {s.service: f"{s.service}_{RoleKind.OWNER}" for s in built.plan.services}


def test_the_admins_membership_ignores_the_admin_option_the_provider_reads_back(built: TerraformBuilt) -> None:
    """On PostgreSQL 16 the admin holds two memberships of each owner: the ADMIN-only one
    CREATEROLE gives a role's creator, and the declared one; the provider reads the first."""
    memberships = {
        address: resource
        for address, resource in ((r.address, r) for r in resources_of(built.stack))
        if "_memberships_admin_in_owner_" in address
    }
    assert len(memberships) == len(built.plan.services)
    read = {built.model.read_grant_role(built.model.attributes(r))["with_admin_option"] for r in memberships.values()}
    assert all(r.ignore_changes == {"with_admin_option"} for r in memberships.values())
    if built.server.binaries.major < 16:
        assert read == {False}  # one row; on 16 it depends on which of the two comes first (it was True here)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_example_projects_stacks_apply_the_providers_way_and_plan_nothing_after(
    server: LocalServer, synthesized: dict, environment: str
) -> None:
    """The example project's stacks (tests/example; the repository's own: test_repository.py): every
    postgresql_* resource of the environment's stack, applied
    by the provider model, with no silent no-op, and a second plan that is empty. Extensions the
    test server lacks are left out; `rds_iam`, which Aurora has, is created for IAM services."""
    applies_cleanly(server, synthesized[f"{environment}-database-access"])


def applies_cleanly(server: LocalServer, synthesized_stack: dict, *, admin_iam_user: str | None = None) -> None:
    """Apply a synthesized stack's postgresql_* resources the provider's way on a fresh server like
    `server`: no silent no-op, and a second plan that is empty. Extensions the server lacks are
    left out, `rds_iam` (which Aurora has) is created for IAM users, and an `admin_iam_user` is
    the test server's admin."""
    stack = json.loads(json.dumps(synthesized_stack))
    if admin_iam_user:
        for membership in stack["resource"]["postgresql_grant_role"].values():
            if membership["role"] == admin_iam_user:
                membership["role"] = ADMIN
    with LocalServer(server.binaries) as fresh:
        model = model_for(fresh)
        with model.session("postgres") as conn:
            available = {name for (name,) in conn.execute("SELECT name FROM pg_available_extensions")}
            if "rds_iam" in json.dumps(stack):
                conn.execute("CREATE ROLE rds_iam NOLOGIN")
        extensions = stack["resource"].get("postgresql_extension", {})
        for name in [name for name, extension in extensions.items() if extension["name"] not in available]:
            del extensions[name]
        model.apply(stack)
        assert [(e.address, e.statement) for e in model.silent_no_ops] == []
        assert model.plan(stack) == []


def test_verify_logins_on_the_terraform_built_cluster(built: TerraformBuilt) -> None:
    code, output = built.cli("verify", "--logins")
    assert code == 0, output
    users = [user for service in built.plan.services for user in service.login_users] + list(built.plan.temporary)
    assert f"Logins tried: {len(users) * len(built.plan.services)} (login user, database) pairs" in output
    assert all(password not in output for password in built.passwords.values())


def test_only_the_services_own_app_calls_its_functions(built: TerraformBuilt) -> None:
    """The default privileges Terraform declared: PUBLIC does not get EXECUTE on the owner's new
    functions, the writer does, so a reader cannot write through a SECURITY DEFINER function."""
    with built.login("ledger_migrator", "ledger") as conn:
        conn.execute(
            f"CREATE FUNCTION add_note(note text) RETURNS void LANGUAGE sql SECURITY DEFINER "
            f"SET search_path = ledger AS $$ INSERT INTO {OWN_TABLE} (note) VALUES (note) $$"
        )
    with built.login("ledger_app", "ledger") as conn:
        conn.execute("SELECT ledger.add_note('by the app')")
    with built.login("checkout_app", "ledger") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT ledger.add_note('by a reader')")
    assert built.cli("verify")[0] == 0
    assert built.model.plan(built.stack) == []


def test_a_setting_a_user_gives_itself_in_a_database_is_seen_on_a_terraform_built_cluster(
    built: TerraformBuilt,
) -> None:
    """The provider reads role-wide settings only; servicedb verify sees the per-database ones."""
    with built.login("delivery_app", "delivery") as conn:
        conn.execute("ALTER ROLE delivery_app IN DATABASE delivery SET idle_in_transaction_session_timeout = 0")
    assert built.model.plan(built.stack) == []  # invisible to the provider
    code, output = built.cli("verify")
    assert code == 1
    assert "delivery_app: reset its settings in database delivery" in output
    assert built.cli("apply")[0] == 0
    assert built.cli("verify")[0] == 0


# --- terraform_logins: each service applied by one of several logins --------------------------


def login_of(built: TerraformBuilt, service: str) -> str:
    logins = built.plan.environment.terraform_logins
    return logins[provider_login_of(service, len(logins))][0]


def test_each_service_is_applied_by_its_login_and_reads_through_the_others(built_by_logins: TerraformBuilt) -> None:
    built = built_by_logins
    logins = {service.service: login_of(built, service.service) for service in built.plan.services}
    # The test services spread over the logins: checkout reads ledger and inventory across two.
    assert len({logins["checkout"], logins["ledger"], logins["inventory"]}) == 3
    ran_as: dict[str, set[str]] = {}
    for executed in built.model.executed:
        ran_as.setdefault(executed.address, set()).add(executed.user)
    for service, login in logins.items():
        addresses = [address for address in ran_as if f".services_{service}_" in address]
        assert addresses and all(ran_as[address] == {login} for address in addresses), service
    # The break-glass role and its membership, by the login of the service it reads.
    temporary = [address for address in ran_as if ".temporary_access_" in address]
    assert temporary and all(ran_as[address] == {logins["ledger"]} for address in temporary)
    assert ADMIN not in set().union(*ran_as.values())
    assert [(e.address, e.statement, e.notices) for e in built.model.silent_no_ops] == []
    assert built.model.plan(built.stack) == []


def test_a_login_holds_only_its_own_services_roles(built_by_logins: TerraformBuilt) -> None:
    """What keeps each statement's work bounded: a login is a member of its own services' roles
    only (PostgreSQL 16 makes the creator of a role a member), and the admin of the logins and the
    owner roles, for verify and the SQL path."""
    built = built_by_logins
    mine: dict[str, set[str]] = {}
    for service in built.plan.services:
        mine.setdefault(login_of(built, service.service), set()).update(role.name for role in service.roles)
    [grant] = built.plan.temporary
    mine[login_of(built, grant.access.service)].add(grant.role.name)
    with psycopg.connect(built.server.admin_url, password=built.server.admin_password, dbname="postgres") as conn:

        def member_of(role: str) -> set[str]:
            rows = conn.execute(
                "SELECT pg_get_userbyid(roleid) FROM pg_auth_members WHERE member = to_regrole(%s)", (role,)
            )
            return {name for (name,) in rows}

        owners = {service.owner.name for service in built.plan.services}
        assert owners <= member_of(ADMIN) <= set(mine) | owners
        for login, roles in mine.items():
            assert member_of(login) and member_of(login) <= roles, login


def test_isolation_holds_with_logins(built_by_logins: TerraformBuilt) -> None:
    assert_logins_where_declared(built_by_logins)
    assert_writes_own_reads_declared(built_by_logins)
    assert_break_glass_reads_ledger_only(built_by_logins)


def test_verify_as_the_admin_passes_with_logins(built_by_logins: TerraformBuilt) -> None:
    code, output = built_by_logins.cli("verify", "--logins")
    assert code == 0, output
    assert "servicedb_login_" not in output  # the logins apply the services, as the admin does
