"""The diff and the SQL it renders, without a server: what a reviewer reads in `servicedb sql`."""

import dataclasses
import itertools

import pytest

from servicedb.diff import diff, wanted_settings
from servicedb.inspect import Contents, Current, DatabaseState, RoleState
from servicedb.plan import Plan, manager_name, plan_services
from servicedb.spec import Reads, Service
from servicedb.sql import Password, Statement, render_script, scram_verifier

from factories import environment


@pytest.fixture
def wanted() -> Plan:
    return plan_services(
        [Service(name="orders", reads=(Reads(service="billing"),)), Service(name="billing", extensions=("pgcrypto",))],
        environment(),
    )


def texts(statements: tuple[Statement, ...]) -> list[str]:
    return [statement.text for statement in statements]


def test_from_nothing_creates_everything_in_order(wanted: Plan) -> None:
    statements = diff(wanted, None).statements
    sql = texts(statements)
    create_role = sql.index('CREATE ROLE "orders_owner" NOLOGIN INHERIT CONNECTION LIMIT -1')
    act_as = sql.index('GRANT "orders_owner" TO CURRENT_USER')
    create_database = sql.index('CREATE DATABASE "orders" OWNER "orders_owner" CONNECTION LIMIT 15')
    create_schema = sql.index('CREATE SCHEMA IF NOT EXISTS "orders" AUTHORIZATION "orders_owner"')
    assert create_role < act_as < create_database < create_schema
    assert 'GRANT "billing_reader" TO "orders_app"' in sql
    assert 'REVOKE CONNECT, TEMPORARY ON DATABASE "orders" FROM PUBLIC' in sql
    assert 'REVOKE CREATE ON SCHEMA "public" FROM PUBLIC' in sql
    assert 'CREATE EXTENSION IF NOT EXISTS "pgcrypto" SCHEMA "billing"' in sql
    assert (
        'ALTER DEFAULT PRIVILEGES FOR ROLE "orders_owner" IN SCHEMA "orders" '
        'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "orders_writer"'
    ) in sql
    assert 'GRANT "orders_writer" TO "orders_app"' in sql
    schema_statement = statements[create_schema]
    assert (schema_statement.database, schema_statement.role) == ("orders", "orders_owner")
    assert statements[create_database].autocommit


def test_every_statement_has_a_description(wanted: Plan) -> None:
    for statement in diff(wanted, None).statements:
        assert statement.description and "\n" not in statement.description


def test_passwords_are_placeholders_in_printed_sql(wanted: Plan) -> None:
    statements = diff(wanted, None).statements
    create = next(s for s in statements if s.text.startswith('CREATE ROLE "orders_app"'))
    assert create.text.endswith("PASSWORD :'password_orders_app'")
    assert create.passwords == ("orders_app",)
    executable = create.executable({"orders_app": "s3cret-value"}).as_string()
    assert "s3cret-value" not in executable
    assert "'SCRAM-SHA-256$4096:" in executable
    with pytest.raises(KeyError, match="no password for orders_app"):
        create.executable({})


def test_script_connects_to_each_database_and_acts_as_its_owner(wanted: Plan) -> None:
    script = render_script(diff(wanted, None).statements)
    assert '\\connect orders\nSET ROLE "orders_owner";\n' in script
    assert "-v password_orders_app=..." in script
    assert script.count("RESET ROLE;") == script.count("SET ROLE ")


def test_scram_verifier_is_salted_and_in_the_server_format() -> None:
    # That the server accepts it is proven in test_cli; here, its shape and its salt.
    salt = bytes.fromhex("5b6d99b3a0b1b6d2a1b2c3d4e5f60718")
    verifier = scram_verifier("pencil", salt=salt)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    assert method == "SCRAM-SHA-256"
    assert iterations_salt.startswith("4096:")
    assert len(keys.split(":")) == 2
    assert verifier == scram_verifier("pencil", salt=salt)
    assert verifier != scram_verifier("pencil")  # a fresh salt by default


def current_for(wanted: Plan) -> Current:
    """A current state equal to `wanted`, built by hand, to change one thing at a time."""
    roles = {}
    for service in wanted.services:
        for role in service.roles:
            roles[role.name] = RoleState(
                name=role.name,
                login=role.login,
                inherit=role.inherit,
                connection_limit=role.connection_limit,
                superuser=False,
                createdb=False,
                createrole=False,
                settings=wanted_settings(role),
            )
    for service in wanted.services:  # each service's manager, with ADMIN on its roles
        manager = manager_name(service.service)
        roles[manager] = RoleState(
            name=manager,
            login=False,
            inherit=False,
            connection_limit=-1,
            superuser=False,
            createdb=False,
            createrole=True,
            settings={},
        )
    databases = {}
    for service in wanted.services:
        name, owner = service.service, service.owner.name
        acl = {
            g.grantee: frozenset(g.privileges) for g in service.grants if g.object_type == "database" and g.privileges
        } | {"admin": frozenset({"CONNECT"})}
        schemas = {
            name: (
                owner,
                {
                    g.grantee: frozenset(g.privileges)
                    for g in service.grants
                    if g.schema == name and g.object_type == "schema"
                },
            ),
            "public": ("pg_database_owner", {"public": frozenset({"USAGE"})}),
        }
        defaults = {}
        for d in service.default_privileges:
            defaults.setdefault((owner, d.schema, d.object_type), {})[d.grantee] = frozenset(d.privileges)
        databases[name] = DatabaseState(
            name=name,
            owner=owner,
            connection_limit=service.database.connection_limit,
            acl=acl,
            contents=Contents(
                schemas=schemas,
                relations=(),
                default_acls=defaults,
                extensions={e.name: e.schema for e in service.extensions},
            ),
        )
    return Current(
        server_version=160002,
        current_user="admin",
        roles=roles,
        memberships=frozenset((m.member, m.role) for m in wanted.memberships),
        acting_as=frozenset(s.owner.name for s in wanted.services) | {manager_name(s.service) for s in wanted.services},
        administering=frozenset((manager_name(s.service), role.name) for s in wanted.services for role in s.roles),
        databases=databases,
        available_extensions=frozenset({"pgcrypto", "file_fdw"}),
        trusted_extensions=frozenset({"pgcrypto"}),
    )


def test_nothing_to_do_when_current_matches(wanted: Plan) -> None:
    assert diff(wanted, current_for(wanted)).statements == ()


def test_the_admin_gets_connect_of_its_own_where_it_lacks_it(wanted: Plan) -> None:
    current = current_for(wanted)
    orders = current.databases["orders"]
    acl = {grantee: privileges for grantee, privileges in orders.acl.items() if grantee != "admin"}
    databases = {**current.databases, "orders": dataclasses.replace(orders, acl=acl)}
    [statement] = diff(wanted, dataclasses.replace(current, databases=databases)).statements
    assert statement.role == "orders_owner"
    assert statement.query.as_string() == 'GRANT CONNECT ON DATABASE "orders" TO SESSION_USER'


def test_changes_only_what_differs(wanted: Plan) -> None:
    current = current_for(wanted)
    app = current.roles["orders_app"]
    roles = {**current.roles, "orders_app": dataclasses.replace(app, connection_limit=99, settings={})}
    changed = dataclasses.replace(
        current, roles=roles, memberships=current.memberships | {("orders_app", "pg_read_all_data")}
    )
    descriptions = [s.description for s in diff(wanted, changed).statements]
    assert descriptions == [
        "orders_app: connection limit 99 -> 10",
        "revoke pg_read_all_data from orders_app (not declared)",
        "orders_app: statement_timeout = 30000",
        "orders_app: idle_in_transaction_session_timeout = 60000",
        'orders_app: search_path = "orders"',
    ]


def test_revokes_what_public_holds_on_a_managed_database(wanted: Plan) -> None:
    current = current_for(wanted)
    orders = current.databases["orders"]
    leaky = dataclasses.replace(orders, acl={**orders.acl, "public": frozenset({"CONNECT"})})
    changes = diff(wanted, dataclasses.replace(current, databases={**current.databases, "orders": leaky}))
    assert texts(changes.statements) == ['REVOKE CONNECT ON DATABASE "orders" FROM PUBLIC']
    assert changes.statements[0].role == "orders_owner"


def test_reports_an_unavailable_extension(wanted: Plan) -> None:
    current = dataclasses.replace(current_for(wanted), available_extensions=frozenset())
    assert diff(wanted, current).problems == ()  # installed already: nothing to create
    current = dataclasses.replace(current, databases={})
    assert diff(wanted, current).problems == (
        "extension pgcrypto of service billing is not available on this server (pg_available_extensions); "
        "install it on the server or remove it from the service",
    )


def test_reports_an_extension_only_a_superuser_may_create() -> None:
    wanted = plan_services([Service(name="billing", extensions=("file_fdw", "pgcrypto"))], environment())
    current = dataclasses.replace(current_for(wanted), databases={})
    [problem] = diff(wanted, current).problems
    assert problem.startswith(
        "extension file_fdw of service billing is not trusted: only a superuser may create it, "
        "and apply creates extensions as billing_owner"
    )


def test_password_placeholder_prints_as_psql_variable() -> None:
    assert Password("orders_app").as_string() == ":'password_orders_app'"


def test_retiring_takes_login_and_password_away_and_drops_nothing(wanted: Plan) -> None:
    current = current_for(wanted)
    retired = plan_services(
        [Service(name="orders", retired=True), Service(name="billing", extensions=("pgcrypto",))], environment()
    )
    statements = diff(retired, current).statements
    assert [(s.description, s.text) for s in statements] == [
        ("orders_app: forbid login, remove its password", 'ALTER ROLE "orders_app" NOLOGIN PASSWORD NULL'),
        ("orders_migrator: forbid login, remove its password", 'ALTER ROLE "orders_migrator" NOLOGIN PASSWORD NULL'),
        ("revoke billing_reader from orders_app (not declared)", 'REVOKE "billing_reader" FROM "orders_app"'),
        # orders' app user no longer counts among billing's readers
        ("database billing: connection limit 25 -> 15", 'ALTER DATABASE "billing" CONNECTION LIMIT 15'),
    ]


def test_only_a_purge_drops_and_the_script_says_so(wanted: Plan) -> None:
    gone = plan_services([Service(name="billing", extensions=("pgcrypto",))], environment())
    assert not [s for s in diff(gone, current_for(wanted)).statements if "DROP" in s.text]
    purged = plan_services([Service(name="orders", retired=True, purge=True), Service(name="billing")], environment())
    statements = [s for s in diff(purged, None).statements if "orders" in s.text]
    assert texts(tuple(statements)) == [
        'GRANT "orders_owner" TO CURRENT_USER',
        'DROP DATABASE IF EXISTS "orders"',
        'DROP ROLE IF EXISTS "orders_app"',
        'DROP ROLE IF EXISTS "orders_app_clone"',
        'DROP ROLE IF EXISTS "orders_migrator"',
        'DROP ROLE IF EXISTS "orders_writer"',
        'DROP ROLE IF EXISTS "orders_reader"',
        'DROP ROLE IF EXISTS "orders_owner"',
        'DROP ROLE IF EXISTS "orders_manager"',
    ]
    assert [s.autocommit for s in statements] == [False, True, False, False, False, False, False, False, False]
    assert diff(purged, current_for(purged)).statements == ()  # already gone: nothing to drop


def test_from_empty_on_16_each_manager_makes_its_services_roles_in_one_transaction() -> None:
    """On 16 the admin's first SET ROLE after a change of roles walks all it may become: a walk per
    transaction of a manager, so one per manager, not one per service."""
    names = [f"svc{index:03d}" for index in range(300)]
    services = [
        Service(name=name, reads=(Reads(service=names[index - 1]),) if index else ())
        for index, name in enumerate(names)
    ]
    wanted = plan_services(services, environment())
    empty = Current(
        server_version=160002,
        current_user="admin",
        roles={},
        memberships=frozenset(),
        acting_as=frozenset(),
        databases={},
        available_extensions=frozenset(),
        trusted_extensions=frozenset(),
    )
    statements = diff(wanted, empty).statements
    managers = {manager_name(name) for name in names}
    assert len(managers) < len(names) / 2
    creations = [s for s in statements if s.query.as_string().startswith("CREATE ROLE") and s.role in managers]
    assert len(creations) == 5 * len(names)  # owner, app, migrator, writer, reader
    # Consecutive statements of one manager are one transaction (`apply.run`).
    runs = [(role, list(run)) for role, run in itertools.groupby(statements, key=lambda s: s.role) if role in managers]
    creating = [role for role, run in runs if any(s in creations for s in run)]
    assert sorted(creating) == sorted(managers)  # one each
    assert len(runs) <= 3 * len(managers)  # besides, the grants that wait for their member, and the settings
    for name in names:
        owner = wanted.service(name).owner.name
        assert all(s.role == manager_name(name) for s in statements if s.subject == owner and s.role in managers)
