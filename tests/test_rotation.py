"""Password rotation by declaration: one user at a time, or alternating users, from the plan to a real PostgreSQL."""

import json
from collections.abc import Iterator

import boto3
import psycopg
import pytest
from cdktf import Testing
from moto import mock_aws
from syrupy.extensions.json import JSONSnapshotExtension

from servicedb.apply import apply_plan
from servicedb.cli import Server
from servicedb.construct import ServiceDatabases
from servicedb.passwords import LocalSecrets, SecretsManagerSecrets
from servicedb.plan import Membership, Plan, alternating_rotations, plan_services
from servicedb.provisioner import plan_from_json, plan_to_json
from servicedb.server import LocalServer
from servicedb.spec import Reads, RotationStrategy, Service, find_problems
from servicedb.stack import DatabaseAccessStack

from factories import Workspace, environment, reading, resources, synth


def alternating(name: str, *reads: str, **fields: object) -> Service:
    return reading(name, *reads, rotation_strategy="alternating", **fields)


# Declarations


def test_rotation_defaults_to_zero_and_one_user_at_a_time():
    service = Service(name="orders")
    assert (service.rotation, service.rotation_strategy) == (0, RotationStrategy.SINGLE)
    assert alternating("orders").rotation_strategy == RotationStrategy.ALTERNATING


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"rotation": -1}, "rotation: must be between 0 and 1000000, got -1"),
        ({"rotation": "2"}, "rotation: must be a whole number, got '2'"),
        ({"rotation_strategy": "blue-green"}, "rotation_strategy: must be one of 'single', 'alternating'"),
        (
            {"name": "s" * 54, "rotation_strategy": "alternating"},
            f"name: must be at most 53 characters with alternating rotation, so that '{'s' * 54}_app_clone' fits",
        ),
    ],
)
def test_rejects_bad_rotations(fields, expected):
    service = Service(**{"name": "orders", **fields})
    [problem] = find_problems([(service, "services/x.py")], [])
    assert f"{problem.at}: {problem.message}".startswith(expected)


def test_rejects_a_bad_environment_rotation_and_counts_both_users_of_a_pair_in_the_budget():
    problems = find_problems([], [(environment(rotation=True), "env")])
    assert [p.message for p in problems] == ["must be a whole number, got True"]
    services = [(alternating("orders", connection_limit=40), "o"), (Service(name="billing"), "b")]
    [problem] = find_problems(services, [(environment(max_connections=90), "env")])
    assert problem.message.startswith("the services' connection limits add up to 94, above the budget of 90 (largest: ")
    assert "orders=2x40+2, billing=10+2" in problem.message


# Plan


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [(0, (0, 0)), (1, (0, 1)), (2, (2, 1)), (3, (2, 3)), (4, (4, 3)), (11, (10, 11))],
)
def test_each_user_of_a_pair_gets_a_new_password_only_when_it_becomes_active(rotation, expected):
    assert alternating_rotations(rotation) == expected


def test_the_effective_rotation_is_the_environments_plus_the_services():
    wanted = plan_services([Service(name="orders", rotation=2), Service(name="billing")], environment(rotation=3))
    assert [(u.name, u.password_rotation) for u in wanted.service("orders").login_users] == [
        ("orders_app", 5),
        ("orders_migrator", 5),
    ]
    assert {u.password_rotation for u in wanted.service("billing").login_users} == {3}


@pytest.mark.parametrize(("rotation", "active", "inactive"), [(0, "app", "app_clone"), (1, "app_clone", "app")])
def test_the_app_secret_carries_the_active_user_of_a_pair(rotation, active, inactive):
    orders = plan_services([alternating("orders", rotation=rotation)], environment()).service("orders")
    [app_secret, migrator_secret] = orders.secrets
    assert (app_secret.name, app_secret.username, app_secret.inactive_user) == (
        "servicedb/test/orders/app",
        f"orders_{active}",
        f"orders_{inactive}",
    )
    assert migrator_secret.users == ("orders_migrator",)  # the migrator does not alternate
    assert orders.secret_for("orders_app_clone") == app_secret


def test_the_clone_has_the_app_users_rights_and_settings():
    wanted = plan_services(
        [alternating("orders", "billing", connection_limit=7, statement_timeout_ms=5_000), reading("billing")],
        environment(),
    )
    orders = wanted.service("orders")
    assert orders.app_clone is not None
    for field in ("login", "inherit", "connection_limit", "statement_timeout_ms", "idle_in_transaction_timeout_ms"):
        assert getattr(orders.app_clone, field) == getattr(orders.app, field)
    assert orders.app_clone.search_path == ("orders",)
    assert Membership(member="orders_app_clone", role="orders_writer") in orders.memberships
    assert wanted.reads == (
        Membership(member="orders_app", role="billing_reader"),
        Membership(member="orders_app_clone", role="billing_reader"),
    )
    # Both users may be connected while tasks are replaced: 2 x 7 + migrator 2 + 3 for operators.
    assert orders.database.connection_limit == 19
    assert wanted.service("billing").database.connection_limit == 10 + 2 + 2 * 7 + 3


# Construct and stack


@pytest.fixture(scope="module")
def rotated():
    """`orders` alternates at rotation 3 and reads `billing`, which rotates one user at a time (rotation 2)."""
    wanted = plan_services(
        [alternating("orders", "billing", rotation=2), reading("billing", rotation=1), reading("ledger")],
        environment(rotation=1),
    )
    constructs = {}

    def build(stack, providers):
        constructs["services"] = ServiceDatabases(stack, "services", plan=wanted, **providers)

    return synth(build)[1], constructs["services"]


def keepers(document: dict) -> dict[str, dict | None]:
    return {
        name.rsplit("_", 1)[0]: password.get("keepers")
        for name, password in resources(document, "random_password").items()
    }


def test_rotation_keepers_make_new_passwords_and_none_before_the_first(rotated):
    document, _ = rotated
    assert keepers(document) == {
        "services_billing_app_password": {"rotation": "2"},
        "services_billing_migrator_password": {"rotation": "2"},
        "services_ledger_app_password": {"rotation": "1"},
        "services_ledger_migrator_password": {"rotation": "1"},
        "services_orders_app_password": {"rotation": "2"},
        "services_orders_app_clone_password": {"rotation": "3"},
        "services_orders_migrator_password": {"rotation": "3"},
    }
    unrotated = synth(
        lambda stack, providers: ServiceDatabases(
            stack, "services", plan=plan_services([alternating("orders")], environment()), **providers
        )
    )[1]
    # No keepers at rotation 0: an existing deployment keeps its passwords when servicedb is upgraded.
    assert set(keepers(unrotated).values()) == {None}


def test_the_secret_carries_the_active_user_after_its_password_is_set(rotated):
    document, services = rotated
    orders = services.services["orders"]
    version = next(
        v for name, v in resources(document, "aws_secretsmanager_secret_version").items() if "orders_app" in name
    )
    clone_role = next(name for name in resources(document, "postgresql_role") if "orders_app_clone_role" in name)
    clone_password = next(name for name in resources(document, "random_password") if "orders_app_clone" in name)
    assert version["depends_on"] == [f"postgresql_role.{clone_role}"]
    assert '"username" = "orders_app_clone"' in version["secret_string"]
    assert f'"password" = random_password.{clone_password}.result' in version["secret_string"]
    # One secret for the pair, and ECS reads its password like any other.
    assert [name for name in resources(document, "aws_secretsmanager_secret") if "orders_app" in name] == [
        "services_orders_app_secret_976932AA"
    ]
    assert [entry["name"] for entry in orders.ecs_secrets][-2:] == ["DB_PASSWORD", "DB_SECRET"]


def test_the_clone_gets_the_app_users_settings_and_memberships(rotated):
    document, _ = rotated
    roles = {role["name"]: role for role in resources(document, "postgresql_role").values()}
    app, clone = roles["orders_app"], roles["orders_app_clone"]
    assert {k: v for k, v in clone.items() if k not in ("name", "password")} == {
        k: v for k, v in app.items() if k not in ("name", "password")
    }
    [clone_address] = [name for name, role in resources(document, "postgresql_role").items() if role is clone]
    clone_reference = f"${{postgresql_role.{clone_address}.name}}"
    granted = sorted(
        name.removeprefix("services_").rsplit("_", 1)[0]
        for name, grant in resources(document, "postgresql_grant_role").items()
        if grant["role"] == clone_reference
    )
    assert granted == ["billing_clone_readers_orders", "orders_memberships_app_clone_in_writer"]


def test_resource_addresses_of_a_pair_are_pinned(rotated):
    # The app user's own resources keep the addresses they have without alternating users (the
    # same as in the dev stack's snapshot): a service switched to alternating keeps its user,
    # password and secret, and gains the clone's.
    document, _ = rotated
    addresses = sorted(f"{kind}.{name}" for kind, items in document["resource"].items() for name in items)
    assert [a for a in addresses if "orders_app" in a or "readers_orders" in a or "orders_memberships_app" in a] == [
        "aws_iam_role_policy.services_orders_app_execution_role_policy_CBBAC29D",
        "aws_secretsmanager_secret.services_orders_app_secret_976932AA",
        "aws_secretsmanager_secret_version.services_orders_app_secret_value_420342F5",
        "postgresql_grant_role.services_billing_clone_readers_orders_C19063D2",
        "postgresql_grant_role.services_billing_readers_orders_3CF856B7",
        "postgresql_grant_role.services_orders_memberships_app_clone_in_writer_D885F3DE",
        "postgresql_grant_role.services_orders_memberships_app_in_writer_4DBF8D6A",
        "postgresql_role.services_orders_app_clone_role_CEC5A679",
        "postgresql_role.services_orders_app_role_61E2995E",
        "random_password.services_orders_app_clone_password_9C196615",
        "random_password.services_orders_app_password_C7A7097A",
    ]


def test_rotation_stack_matches_snapshot(snapshot):
    # CI never updates snapshots: a change here is reviewed with `pytest --snapshot-update`.
    wanted = plan_services(
        [alternating("orders", "billing", rotation=1), reading("billing", rotation=2)],
        environment(name="staging", rotation=1),
    )
    stack = json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=wanted), run_validations=True))
    assert stack == snapshot.use_extension(JSONSnapshotExtension)


def test_the_provisioner_functions_event_carries_pairs_and_iam_users():
    wanted = plan_services(
        [alternating("orders", "billing", rotation=3), Service(name="billing", auth="iam")],
        environment(
            provisioner="lambda",
            provisioner_subnet_ids=("subnet-0a0000000000000a1",),
            provisioner_security_group_id="sg-0a0000000000000a1",
            rotation=2,
        ),
    )
    assert plan_from_json(Plan, json.loads(json.dumps(plan_to_json(wanted)))) == wanted


# The local password store


def test_local_store_keeps_both_users_of_a_pair_and_regenerates_only_the_rotated_one(tmp_path):
    store = LocalSecrets(tmp_path / "secrets.json")

    def passwords(rotation: int) -> dict[str, str]:
        return store.passwords(
            plan_services([alternating("orders", rotation=rotation)], environment()), host="db", port=5432
        )

    first = passwords(0)
    assert set(first) == {"orders_app", "orders_app_clone", "orders_migrator"}
    assert passwords(0) == first
    second = passwords(1)
    assert second["orders_app"] == first["orders_app"]
    assert second["orders_app_clone"] != first["orders_app_clone"]
    assert second["orders_migrator"] != first["orders_migrator"]
    entries = store.read()
    assert entries["servicedb/test/orders/app"]["username"] == "orders_app_clone"
    assert entries["servicedb/test/orders/app"]["rotation"] == 1
    assert entries["servicedb/test/orders/app:inactive"]["username"] == "orders_app"
    third = passwords(2)
    assert third["orders_app"] != second["orders_app"]
    assert third["orders_app_clone"] == second["orders_app_clone"]
    assert store.stale_users(plan_services([alternating("orders", rotation=3)], environment())) == {
        "orders_app_clone",
        "orders_migrator",
    }


def test_entries_from_before_rotations_count_as_rotation_zero(tmp_path):
    store = LocalSecrets(tmp_path / "secrets.json")
    plan = plan_services([Service(name="orders")], environment())
    store.write({"servicedb/test/orders/app": {"username": "orders_app", "password": "kept-0123456789"}})
    assert store.passwords(plan, host="db", port=5432)["orders_app"] == "kept-0123456789"


# On a real PostgreSQL


LEDGER = {"statement_timeout_ms": 700}
ORDERS = {"reads": (Reads(service="ledger"),), "rotation_strategy": "alternating", "connection_limit": 4}


@pytest.fixture(scope="module")
def cluster(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A server of this module's own: `ledger` rotates one user at a time, `orders` alternates and reads ledger."""
    with LocalServer(server.binaries) as fresh:
        workspace = Workspace(server=fresh, directory=tmp_path_factory.mktemp("rotation"))
        workspace.declare("ledger", **LEDGER)
        workspace.declare("orders", **ORDERS)
        code, output = workspace.cli("apply")
        assert code == 0, output
        with workspace.login("ledger_migrator", "ledger") as conn:
            conn.execute("CREATE TABLE entries (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
        with workspace.login("orders_migrator", "orders") as conn:
            conn.execute("CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
        yield workspace
        workspace.check_no_password_was_printed()


def rejected(workspace: Workspace, user: str, database: str, password: str) -> bool:
    try:
        workspace.login(user, database, password=password).close()
    except psycopg.OperationalError as error:
        assert "password authentication failed" in str(error)
        return True
    return False


def apply_rotation(workspace: Workspace, name: str, rotation: int, **fields: object) -> str:
    workspace.declare(name, rotation=rotation, **fields)
    code, output = workspace.cli("apply")
    assert code == 0, output
    assert workspace.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
    return output


def test_a_single_user_rotation_keeps_open_connections_and_rejects_the_old_password(cluster: Workspace):
    old = cluster.password("ledger_app")
    with cluster.login("ledger_app", "ledger") as open_connection:
        cluster.declare("ledger", rotation=1, **LEDGER)
        code, output = cluster.cli("plan")
        assert code == 0
        assert "-- ledger_app: set the password from its secret (the current one is rejected)" in output
        assert "PASSWORD :'password_ledger_app'" in output
        apply_rotation(cluster, "ledger", 1, **LEDGER)
        open_connection.execute("INSERT INTO entries (note) VALUES ('after the rotation')")
    new = cluster.password("ledger_app")
    assert new != old
    cluster.login("ledger_app", "ledger").close()
    assert rejected(cluster, "ledger_app", "ledger", old)
    assert not [output for output in cluster.outputs if old in output]


def test_alternating_users_keep_the_old_login_working_for_one_rotation(cluster: Workspace):
    secret = "servicedb/local/orders/app"
    first = {user: cluster.password(user) for user in ("orders_app", "orders_app_clone")}
    assert cluster.entries()[secret]["username"] == "orders_app"
    with cluster.login("orders_app", "orders") as running_task:
        output = apply_rotation(cluster, "orders", 1, **ORDERS)
        assert "orders_app:" not in output  # the active user is left alone
        # The secret now carries the clone, with a new password; the app user's still works.
        assert cluster.entries()[secret]["username"] == "orders_app_clone"
        second = cluster.password("orders_app_clone")
        assert second != first["orders_app_clone"]
        assert cluster.password("orders_app") == first["orders_app"]
        running_task.execute("INSERT INTO items (note) VALUES ('still connected')")
        cluster.login("orders_app", "orders", password=first["orders_app"]).close()  # a task not yet replaced
        with cluster.login("orders_app_clone", "orders", password=second) as new_task:
            new_task.execute("INSERT INTO items (note) VALUES ('by the clone')")
        with cluster.login("orders_app_clone", "ledger", password=second) as new_task:
            assert new_task.execute("SELECT note FROM ledger.entries").fetchall() == [("after the rotation",)]

        apply_rotation(cluster, "orders", 2, **ORDERS)
        assert cluster.entries()[secret]["username"] == "orders_app"
        third = cluster.password("orders_app")
        assert third != first["orders_app"]
        assert rejected(cluster, "orders_app", "orders", first["orders_app"])  # the oldest password
        cluster.login("orders_app_clone", "orders", password=second).close()  # the previous one still works
        cluster.login("orders_app", "orders", password=third).close()
        running_task.execute("SELECT 1")
    for password in (*first.values(), second, third):
        assert not [output for output in cluster.outputs if password in output]


def test_both_users_of_a_pair_have_the_same_settings_and_access(cluster: Workspace):
    with cluster.admin() as conn:
        rows = conn.execute(
            """
            SELECT r.rolname, r.rolconnlimit, r.rolinherit, s.setconfig,
                   ARRAY(SELECT g.rolname FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid
                         WHERE a.member = r.oid ORDER BY 1)
            FROM pg_roles r LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
            WHERE r.rolname IN ('orders_app', 'orders_app_clone') ORDER BY 1
            """
        ).fetchall()
    [(_, *app), (_, *clone)] = rows
    assert app == clone
    assert app[0] == 4
    assert sorted(app[2]) == [
        "idle_in_transaction_session_timeout=60000",
        "search_path=orders",
        "statement_timeout=30000",
    ]
    assert app[3] == ["ledger_reader", "orders_writer"]
    code, output = cluster.cli("verify")
    assert code == 0, output
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[3:8] if line.strip()}
    assert rows["orders_app"] == rows["orders_app_clone"] == ["read", "write"]  # ledger, orders
    with cluster.login("orders_app_clone", "orders") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE sneaky (id int)")


@mock_aws
def test_with_secrets_manager_the_inactive_user_gets_its_password_when_it_becomes_active(cluster: Workspace):
    """Secrets Manager carries only the active user of a pair (the inactive one's password is in
    the Terraform state), as the CLI with --env and the provisioner function read it: the inactive
    user is created without a password, and gets one from the secret once it is the active one."""
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    store = SecretsManagerSecrets(client)
    server = Server(cluster.server.admin_url_with_password)

    def deploy(rotation: int) -> str:
        """What the stack does on a deploy: the active user's password, then the function's apply."""
        wanted = plan_services([alternating("search", rotation=rotation)], environment())
        for secret in wanted.service("search").secrets:
            document = json.dumps({**secret.fields, "password": f"pw-{secret.username}-{rotation}-0123456789"})
            if rotation == 0:
                client.create_secret(Name=secret.name, SecretString=document)
            else:
                client.put_secret_value(SecretId=secret.name, SecretString=document)
        lines: list[str] = []
        apply_plan(server, wanted, store, out=lines.append)
        return "\n".join(lines)

    output = deploy(0)
    assert "create login user search_app_clone (app_clone), without a password until its secret carries it" in output
    assert 'CREATE ROLE "search_app_clone" LOGIN INHERIT CONNECTION LIMIT 10;' in output
    cluster.login("search_app", "search", password="pw-search_app-0-0123456789").close()
    assert rejected(cluster, "search_app_clone", "search", "pw-search_app_clone-0-0123456789")

    output = deploy(1)
    assert "search_app_clone: set the password from its secret" in output
    assert "search_app:" not in output  # the inactive user now: its password is left as it is
    cluster.login("search_app_clone", "search", password="pw-search_app_clone-1-0123456789").close()
    cluster.login("search_app", "search", password="pw-search_app-0-0123456789").close()
