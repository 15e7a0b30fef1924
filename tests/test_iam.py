"""IAM database authentication: declarations, plan, construct and stack, and on a real PostgreSQL.

The real servers have no `rds_iam` (Aurora and RDS create it); the tests create a NOLOGIN role of
that name to stand for it. What Aurora does with its members (a token instead of a password) can
not run here: the tests prove what servicedb controls, that the users are members, have no
password, and that `verify` sees a password where it can read `pg_authid`.
"""

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from cdktf import App, Testing
from moto import mock_aws
from syrupy.extensions.json import JSONSnapshotExtension

from servicedb.cli import local_environment, main
from servicedb.construct import ServiceDatabase
from servicedb.diff import diff
from servicedb.errors import DeclarationError
from servicedb.load import load_declarations
from servicedb.plan import RDS_IAM, DatabaseConnect, Membership, PlanInvariantError, check_invariants, plan_services
from servicedb.provisioner import Action, SslMode, event, handler
from servicedb.scan import scan
from servicedb.server import ADMIN, LocalServer
from servicedb.spec import Auth, Reads, RotationStrategy, Service, find_problems
from servicedb.stack import DatabaseAccessStack

from factories import (
    DURING_GRANT,
    GRANT_FROM,
    GRANT_UNTIL,
    Workspace,
    declare,
    environment,
    reading,
    resources,
    synth,
    temporary_access,
)

CLUSTER_RESOURCE_ID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY0"


def alternating(name: str, **fields: object) -> Service:
    return Service(name=name, rotation_strategy="alternating", **fields)  # type: ignore[arg-type]


def messages(services: list[Service], **environment_fields: object) -> list[str]:
    problems = find_problems(
        [(s, f"services/{s.name}.py") for s in services], [(environment(**environment_fields), "env")]
    )
    return [f"{p.at}: {p.message}" for p in problems]


# Declarations


def test_auth_defaults_to_password_and_accepts_a_string():
    assert Service(name="orders").auth == Auth.PASSWORD
    assert Service(name="orders", auth="iam").auth == Auth.IAM


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"auth": "kerberos"}, "auth: must be one of 'password', 'iam', got 'kerberos'"),
        ({"auth": "iam", "rotation": 1}, "rotation: IAM users have no password to rotate"),
        ({"auth": "iam", "rotation_strategy": "alternating"}, "rotation_strategy: is for password users"),
        ({"task_role": "orders-task"}, "task_role: is only used with auth='iam' (rds-db:connect)"),
        ({"auth": "iam", "migration_task_role": "arn:aws:iam::1:role/x"}, "migration_task_role: must be an IAM role"),
    ],
)
def test_rejects_bad_iam_declarations(fields, expected):
    [message] = messages([Service(name="orders", **fields)])
    assert message.startswith(expected)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"admin_iam_user": "Admin"}, "admin_iam_user: must be a PostgreSQL user name matching"),
        ({"admin_iam_user": "admin_ops\n"}, "admin_iam_user: must be a PostgreSQL user name matching"),
        ({"admin_iam_user": "rds_admin"}, "admin_iam_user: 'rds_admin' starts with a prefix reserved"),
        ({"task_role_format": "{team}-task"}, "task_role_format: may use only {env} and {service}"),
        (
            {
                "admin_iam_user": "servicedb_admin",
                "provisioner": "lambda",
                "provisioner_subnet_ids": ("subnet-0a0000000000000a1",),
                "provisioner_security_group_id": "sg-0a0000000000000a1",
            },
            "admin_iam_user: is for the postgresql provider; the lambda provisioner logs in as the master user",
        ),
    ],
)
def test_rejects_bad_iam_environment_settings(fields, expected):
    [message] = messages([], **fields)
    assert message.startswith(expected)


def test_task_role_format_is_checked_for_iam_services_only():
    services = [Service(name="orders", auth="iam"), Service(name="billing")]
    assert messages(services, task_role_format="{env}/{service}") == [
        "task_role_format: gives 'test/orders' for service 'orders', which is not an IAM role name "
        "(^[\\w+=,.@-]{1,64}$); change the format or set task_role on the service"
    ]


def test_loads_iam_and_rotation_settings_from_declaration_files(tmp_path: Path):
    declare(tmp_path / "services", "payments", auth="iam", task_role="payments-runtime")
    declare(tmp_path / "services", "orders", rotation=2, rotation_strategy="alternating")
    (tmp_path / "environments.toml").write_text(
        "[prod]\n"
        'region = "eu-west-1"\naccount_id = "123456789012"\ncluster_identifier = "prod-main"\n'
        'endpoint = "prod-main.cluster-x.eu-west-1.rds.amazonaws.com"\nengine_version = "16.4"\n'
        'master_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-x-AbCdEf"\n'
        'admin_iam_user = "servicedb_admin"\nrotation = 1\ntask_role_format = "{service}-{env}"\n'
    )
    declarations = load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    prod = declarations.environment("prod")
    assert (prod.admin_iam_user, prod.rotation) == ("servicedb_admin", 1)
    payments, orders = sorted(declarations.services, key=lambda s: s.name != "payments")
    assert (payments.auth, prod.task_role_for(payments), prod.migration_task_role_for(payments)) == (
        Auth.IAM,
        "payments-runtime",
        "payments-runtime",
    )
    assert prod.task_role_for(orders) == "orders-prod"
    assert (orders.rotation_strategy, prod.rotation_of(orders)) == (RotationStrategy.ALTERNATING, 3)


# Plan


@pytest.fixture(scope="module")
def shop():
    """`payments` logs in with IAM and is read by `orders`, which has passwords."""
    return plan_services(
        [
            Service(name="payments", auth="iam", migration_task_role="payments-migrations"),
            reading("orders", "payments"),
        ],
        environment(rotation=3),
    )


def test_iam_users_are_members_of_rds_iam_and_group_roles_are_not(shop):
    payments = shop.service("payments")
    assert [user.name for user in payments.login_users if user.iam] == ["payments_app", "payments_migrator"]
    assert [m.member for m in shop.memberships if m.role == RDS_IAM] == ["payments_app", "payments_migrator"]
    assert not any(user.iam for user in shop.service("orders").login_users)
    # An environment's rotation gives IAM users nothing to rotate.
    assert {user.password_rotation for user in payments.login_users} == {0}


def test_iam_secrets_keep_the_rds_shape_without_a_password(shop):
    secret = shop.service("payments").secret_for("payments_app")
    assert secret.iam
    assert secret.fields == {
        "engine": "postgres",
        "host": "test-main.cluster-abc.eu-west-1.rds.amazonaws.com",
        "port": 5432,
        "dbname": "payments",
        "username": "payments_app",
        "dbClusterIdentifier": "test-main",
    }


def test_task_roles_may_connect_as_exactly_their_own_user(shop):
    assert shop.service("payments").connects == (
        DatabaseConnect(
            username="payments_app", role="test-payments-task", region="eu-west-1", account_id="123456789012"
        ),
        DatabaseConnect(
            username="payments_migrator", role="payments-migrations", region="eu-west-1", account_id="123456789012"
        ),
    )
    assert shop.service("orders").connects == ()
    assert shop.service("payments").connects[0].policy(CLUSTER_RESOURCE_ID) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectAsDatabaseUser",
                "Effect": "Allow",
                "Action": ["rds-db:connect"],
                "Resource": [f"arn:aws:rds-db:eu-west-1:123456789012:dbuser:{CLUSTER_RESOURCE_ID}/payments_app"],
            }
        ],
    }


@pytest.mark.parametrize(
    ("region", "arn"),
    [("cn-north-1", "arn:aws-cn:rds-db:cn-north-1:"), ("us-gov-west-1", "arn:aws-us-gov:rds-db:us-gov-west-1:")],
)
def test_connect_arns_name_the_regions_partition(region, arn):
    connect = DatabaseConnect(username="x_app", role="r", region=region, account_id="123456789012")
    assert connect.resource("cluster-1").startswith(arn)


def test_invariants_refuse_rds_iam_on_a_group_role_or_a_password_user(shop):
    for member in ("payments_writer", "orders_app"):
        broken = dataclasses.replace(shop, reads=shop.reads + (Membership(member=member, role=RDS_IAM),))
        with pytest.raises(PlanInvariantError, match=f"rds_iam is granted to {member}, which is not a login user"):
            check_invariants(broken)


# Construct and stack


@pytest.fixture(scope="module")
def payments():
    plan = plan_services([Service(name="payments", auth="iam")], environment()).service("payments")
    constructs = {}

    def build(stack, providers):
        constructs["payments"] = ServiceDatabase(stack, "payments", plan=plan, **providers)

    return synth(build)[1], constructs["payments"]


def test_iam_users_get_no_password_anywhere(payments):
    document, construct = payments
    assert resources(document, "random_password") == {}
    for role in resources(document, "postgresql_role").values():
        assert "password" not in role
    for version in resources(document, "aws_secretsmanager_secret_version").values():
        assert "password" not in version["secret_string"]
    assert construct.app.password is None
    assert [entry["name"] for entry in construct.ecs_secrets] == [
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_SECRET",
    ]


def test_only_the_login_users_are_granted_rds_iam(payments):
    document, _ = payments
    granted = {
        name.split("_memberships_")[1].rsplit("_", 1)[0]
        for name, grant in resources(document, "postgresql_grant_role").items()
        if grant["grant_role"] == RDS_IAM
    }
    assert granted == {"app_in_rds_iam", "migrator_in_rds_iam"}


def test_task_role_policies_name_the_cluster_by_its_resource_id(payments):
    document, _ = payments
    [(cluster_name, cluster)] = document["data"]["aws_rds_cluster"].items()
    assert cluster["cluster_identifier"] == "test-main"
    policies = resources(document, "aws_iam_role_policy")
    connect = next(p for name, p in policies.items() if "app_task_role_policy" in name)
    assert connect["role"] == "test-payments-task"
    assert connect["name"] == "servicedb-payments_app-connect"
    assert connect["policy"] == (
        '${jsonencode({"Version" = "2012-10-17", "Statement" = [{"Sid" = "ConnectAsDatabaseUser", "Effect" = "Allow", '
        '"Action" = ["rds-db:connect"], "Resource" = ["arn:aws:rds-db:eu-west-1:123456789012:dbuser:'
        f'${{data.aws_rds_cluster.{cluster_name}.cluster_resource_id}}/payments_app"]}}]}})}}'
    )


def test_a_given_cluster_resource_id_needs_no_data_source():
    plan = plan_services([Service(name="payments", auth="iam")], environment()).service("payments")
    document = synth(
        lambda stack, providers: ServiceDatabase(
            stack, "payments", plan=plan, cluster_resource_id=CLUSTER_RESOURCE_ID, **providers
        )
    )[1]
    assert "data" not in document
    policies = [p["policy"] for p in resources(document, "aws_iam_role_policy").values() if "rds-db" in p["policy"]]
    assert len(policies) == 2
    assert f"dbuser:{CLUSTER_RESOURCE_ID}/payments_migrator" in policies[1]


def test_grant_connect_refuses_a_password_user():
    plan = plan_services([Service(name="orders")], environment()).service("orders")
    constructs = {}

    def build(stack, providers):
        constructs["orders"] = ServiceDatabase(stack, "orders", plan=plan, **providers)

    synth(build)
    with pytest.raises(ValueError, match="orders_app logs in with a password, not with IAM"):
        constructs["orders"].app.grant_connect("some-task-role")


@pytest.fixture(scope="module")
def iam_stack():
    plan = plan_services(
        [Service(name="payments", auth="iam"), reading("orders", "payments")],
        environment(name="staging", admin_iam_user="servicedb_admin"),
    )
    return json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=plan), run_validations=True))


def test_provider_logs_in_with_iam_when_the_environment_says_so(iam_stack):
    [provider] = iam_stack["provider"]["postgresql"]
    assert provider["username"] == "servicedb_admin"
    assert provider["aws_rds_iam_auth"] is True
    assert provider["aws_rds_iam_region"] == "eu-west-1"
    assert "password" not in provider
    assert "aws_secretsmanager_secret_version" not in iam_stack["data"]  # the master secret is not read


def test_iam_and_alternating_users_pass_checkov_with_the_skips_their_constructs_declare(tmp_path: Path):
    checkov = Path(__file__).resolve().parent.parent / ".tools" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.fail(f"{checkov} is missing: run `make install` (make test does it) to install checkov")
    plan = plan_services(
        [Service(name="payments", auth="iam"), Service(name="orders", rotation=1, rotation_strategy="alternating")],
        environment(admin_iam_user="servicedb_admin"),
    )
    app = App(outdir=str(tmp_path))
    DatabaseAccessStack(app, plan=plan)
    app.synth()
    report = scan(tmp_path / "stacks", checkov=str(checkov))
    assert report.ok, report.problems()
    assert {skip.check_id for skip in report.skipped} == {"CKV2_AWS_57", "CKV_AWS_149"}


def test_iam_stack_matches_snapshot(iam_stack, snapshot):
    # CI never updates snapshots: a change here is reviewed with `pytest --snapshot-update`.
    assert iam_stack == snapshot.use_extension(JSONSnapshotExtension)


# On a real PostgreSQL


def create_rds_iam(workspace: Workspace) -> None:
    with workspace.admin() as conn:
        if not conn.execute(f"SELECT 1 FROM pg_roles WHERE rolname = '{RDS_IAM}'").fetchone():
            conn.execute(f"CREATE ROLE {RDS_IAM} NOLOGIN")


def has_password(workspace: Workspace, user: str) -> bool:
    with workspace.superuser() as conn:
        return conn.execute("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", (user,)).fetchone()[0]


@pytest.fixture(scope="module")
def cluster(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A server of this module's own with `rds_iam`; `payments` logs in with IAM, `orders` reads it."""
    with LocalServer(server.binaries) as fresh:
        workspace = Workspace(server=fresh, directory=tmp_path_factory.mktemp("iam"))
        create_rds_iam(workspace)
        workspace.declare("payments", auth="iam")
        workspace.declare("orders", reads=(Reads(service="payments"),))
        code, output = workspace.cli("apply")
        assert code == 0, output
        yield workspace
        workspace.check_no_password_was_printed()


def test_refuses_iam_services_on_a_server_without_rds_iam(cluster: Workspace, tmp_path: Path):
    elsewhere = Workspace(server=cluster.server, directory=tmp_path)
    elsewhere.declare("vault", auth="iam")
    with cluster.admin() as conn:
        conn.execute(f"ALTER ROLE {RDS_IAM} RENAME TO not_{RDS_IAM}")  # as on a server that never had it
    try:
        code, output = elsewhere.cli("plan")
        assert code == 1
        assert output.startswith(
            "-- cannot apply: role rds_iam does not exist on this server: Aurora and RDS PostgreSQL have it for "
            "IAM authentication (auth='iam' in vault); on another server, create a NOLOGIN role rds_iam to stand "
            "for it, or declare auth='password'"
        )
        assert elsewhere.cli("apply")[0] == 1
        with cluster.admin() as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'vault%'").fetchone() == (0,)
    finally:
        with cluster.admin() as conn:
            conn.execute(f"ALTER ROLE not_{RDS_IAM} RENAME TO {RDS_IAM}")


def test_iam_users_are_members_of_rds_iam_without_a_password(cluster: Workspace):
    with cluster.admin() as conn:
        members = conn.execute(
            f"SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
            # On PostgreSQL 16 the admin that created rds_iam is a member too, with ADMIN OPTION only.
            f"WHERE a.roleid = '{RDS_IAM}'::regrole AND m.rolname <> current_user ORDER BY 1"
        ).fetchall()
    assert members == [("payments_app",), ("payments_migrator",)]
    assert not has_password(cluster, "payments_app")
    assert not has_password(cluster, "payments_migrator")
    assert has_password(cluster, "orders_app")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        cluster.login("payments_app", "payments", password="any-password-at-all")


def test_iam_secrets_have_no_password_and_the_others_do(cluster: Workspace):
    entries = cluster.entries()
    assert "password" not in entries["servicedb/local/payments/app"]
    assert entries["servicedb/local/payments/app"]["username"] == "payments_app"
    assert entries["servicedb/local/payments/app"]["dbname"] == "payments"
    cluster.login("orders_app", "payments").close()  # orders reads payments with its password


def test_second_apply_has_nothing_to_do_and_verify_says_what_it_cannot_check(cluster: Workspace):
    assert cluster.cli("plan") == (0, "-- nothing to do: the server matches the declarations")
    code, output = cluster.cli("verify")
    assert code == 0, output
    assert output.endswith(
        "Not checked: whether payments_app, payments_migrator (IAM authentication) also have a password: "
        "servicedb_admin cannot read pg_authid (only a superuser can); servicedb clears the password when it "
        "grants rds_iam"
    )
    assert json.loads(cluster.cli("verify", "--format", "json")[1])["notes"][0].startswith("whether payments_app")


def test_verify_flags_a_user_with_both_a_password_and_rds_iam(cluster: Workspace):
    with cluster.superuser() as conn:
        conn.execute("GRANT SELECT ON pg_authid TO servicedb_admin")  # as a self-managed server may
    try:
        with cluster.admin() as conn:
            conn.execute("ALTER ROLE payments_app PASSWORD 'set-by-hand-0123456789'")
        code, output = cluster.cli("verify")
        assert code == 1
        assert "drift: payments_app has a password and logs in with IAM (rds_iam): clear the password" in output
        assert "Not checked" not in output
        assert cluster.cli("apply")[0] == 0
        assert not has_password(cluster, "payments_app")
        assert cluster.cli("verify")[0] == 0
    finally:
        with cluster.superuser() as conn:
            conn.execute("REVOKE SELECT ON pg_authid FROM servicedb_admin")


def test_switching_to_iam_clears_the_password_and_back_sets_one(cluster: Workspace):
    cluster.declare("ledger")
    assert cluster.cli("apply")[0] == 0
    old = cluster.password("ledger_app")
    cluster.login("ledger_app", "ledger").close()

    cluster.declare("ledger", auth="iam")
    code, output = cluster.cli("plan")
    assert code == 0
    assert "-- ledger_app: clear the password it had; it logs in with IAM (rds_iam) from now on" in output
    assert 'ALTER ROLE "ledger_app" PASSWORD NULL;' in output
    assert 'GRANT "rds_iam" TO "ledger_app";' in output
    assert cluster.cli("apply")[0] == 0
    assert not has_password(cluster, "ledger_app")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        cluster.login("ledger_app", "ledger", password=old)
    assert cluster.cli("plan") == (0, "-- nothing to do: the server matches the declarations")

    cluster.declare("ledger")
    code, output = cluster.cli("apply")
    assert code == 0, output
    assert "revoke rds_iam from ledger_app (not declared)" in output
    cluster.login("ledger_app", "ledger").close()
    assert cluster.cli("verify")[0] == 0


def test_sql_script_creates_iam_users_without_a_password(tmp_path: Path):
    declare(tmp_path, "payments", auth="iam")
    lines: list[str] = []
    assert main(["sql", "--services", str(tmp_path)], out=lines.append) == 0
    script = "\n".join(lines)
    assert 'CREATE ROLE "payments_app" LOGIN INHERIT CONNECTION LIMIT 10;' in script
    assert 'GRANT "rds_iam" TO "payments_app";' in script
    assert "password_payments" not in script


def test_diff_without_a_current_state_states_no_problem_about_rds_iam(shop):
    assert diff(shop, None).problems == ()


def test_the_provisioner_function_applies_iam_users_and_alternating_pairs(cluster: Workspace):
    """The function's handler over pg8000, with passwords only from Secrets Manager, as in AWS."""
    server = cluster.server
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        master = client.create_secret(
            Name="rds!cluster-local", SecretString=json.dumps({"username": ADMIN, "password": server.admin_password})
        )
        environment = dataclasses.replace(local_environment("127.0.0.1", server.port), master_secret_arn=master["ARN"])

        def invoke(rotation: int, action: Action = Action.APPLY) -> dict:
            services = [Service(name="wallet", auth="iam"), alternating("basket", rotation=rotation)]
            wanted = plan_services(services, environment)
            arns = {}
            for secret in (s for service in wanted.services for s in service.secrets):
                fields = {
                    **secret.fields,
                    **({} if secret.iam else {"password": f"pw-{secret.username}-{rotation}-0123"}),
                }
                if rotation == 0 and action == Action.APPLY:
                    arns[secret.username] = client.create_secret(Name=secret.name, SecretString=json.dumps(fields))[
                        "ARN"
                    ]
                else:
                    arns[secret.username] = client.put_secret_value(
                        SecretId=secret.name, SecretString=json.dumps(fields)
                    )["ARN"]
            sent = json.loads(json.dumps(event(wanted, secret_arns=arns, action=action, sslmode=SslMode.DISABLE)))
            return handler(sent, None)

        applied = invoke(0)
        assert applied["ok"] is True
        assert "grant rds_iam to wallet_app" in applied["drift"]
        assert (
            "create login user basket_app_clone (app_clone), without a password until its secret carries it"
            in (applied["drift"])
        )
        assert not has_password(cluster, "wallet_app")
        assert not has_password(cluster, "basket_app_clone")
        verified = invoke(0, Action.VERIFY)
        assert verified["ok"] is True
        assert verified["not_checked"][0].startswith("whether wallet_app, wallet_migrator (IAM authentication)")

        rotated = invoke(1)
        assert rotated["drift"] == [
            "basket_app_clone: set the password from its secret (the current one is rejected)",
            "basket_migrator: set the password from its secret (the current one is rejected)",
        ]
        cluster.login("basket_app_clone", "basket", password="pw-basket_app_clone-1-0123").close()
        cluster.login("basket_app", "basket", password="pw-basket_app-0-0123").close()  # not yet replaced tasks


# Break-glass access to a service that logs in with IAM


def test_a_grant_on_an_iam_service_joins_rds_iam_and_has_no_secret():
    plan = plan_services(
        [Service(name="orders", auth="iam")],
        environment(),
        access=[temporary_access()],
        now=DURING_GRANT,
    )
    [grant] = plan.temporary
    assert grant.secret is None and grant.role.iam
    assert grant.iam_membership == Membership(member=grant.role.name, role=RDS_IAM)
    assert grant.connect == DatabaseConnect(
        username=grant.role.name, role="oncall-jdoe", region="eu-west-1", account_id="123456789012"
    )
    assert all(secret.username != grant.role.name for secret in plan.secrets)


def test_refuses_a_principal_of_another_account_for_an_iam_service():
    with pytest.raises(DeclarationError, match=r"orders logs in with IAM: the principal's rds-db:connect policy"):
        plan_services(
            [Service(name="orders", auth="iam")],
            environment(),
            access=[temporary_access(principal_arn="arn:aws:iam::999999999999:role/oncall-jdoe")],
            now=DURING_GRANT,
        )


def test_the_person_may_connect_as_exactly_the_grants_role():
    wanted = plan_services(
        [Service(name="orders", auth="iam")], environment(), access=[temporary_access()], now=DURING_GRANT
    )
    document = json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=wanted), run_validations=True))
    role = "tmp_jdoe_orders_202612010900"
    prefix = f"temporary_access_{role}_"
    [temporary] = [r for r in resources(document, "postgresql_role").values() if r["name"] == role]
    assert "password" not in temporary and temporary["login"] is True
    memberships = resources(document, "postgresql_grant_role")
    assert memberships[f"{prefix}iam_membership_1B4D924E"]["grant_role"] == RDS_IAM
    assert memberships[f"{prefix}membership_96793A2B"]["grant_role"].startswith(
        "${postgresql_role.services_orders_reader"
    )
    policy = resources(document, "aws_iam_role_policy")[f"{prefix}connect_policy_14D90B88"]
    assert (policy["name"], policy["role"]) == (f"servicedb-{role}-connect", "oncall-jdoe")
    assert (
        '"Action" = ["rds-db:connect"], "Resource" = ["arn:aws:rds-db:eu-west-1:123456789012:dbuser:'
        f'${{data.aws_rds_cluster.services_cluster_82102007.cluster_resource_id}}/{role}"]'
    ) in policy["policy"]
    assert not [s for s in resources(document, "aws_secretsmanager_secret").values() if role in s["name"]]


def test_apply_creates_the_grants_role_in_rds_iam_without_a_password(cluster: Workspace, monkeypatch):
    monkeypatch.setenv("SERVICEDB_NOW", DURING_GRANT.isoformat())
    (cluster.directory / "access").mkdir(exist_ok=True)
    grant = cluster.directory / "access" / "inc-1.py"
    grant.write_text(
        "from datetime import UTC, datetime\nfrom servicedb import TemporaryAccess\n"
        "ACCESS = TemporaryAccess(person='jdoe', principal_arn='arn:aws:iam::000000000000:role/oncall-jdoe', "
        "environment='local', service='payments', ticket='INC-1', "
        f"valid_from=datetime.fromisoformat({GRANT_FROM.isoformat()!r}), "
        f"valid_until=datetime.fromisoformat({GRANT_UNTIL.isoformat()!r}))\n"
    )
    try:
        code, output = cluster.cli("apply")
        assert code == 0, output
        role = "tmp_jdoe_payments_202612010900"
        assert f"create login user {role} (temporary)" in output
        with cluster.admin() as conn:
            memberships = conn.execute(
                "SELECT g.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
                "JOIN pg_roles g ON g.oid = a.roleid WHERE m.rolname = %s ORDER BY 1",
                (role,),
            ).fetchall()
        assert memberships == [("payments_reader",), (RDS_IAM,)]
        assert has_password(cluster, role) is False
        assert cluster.cli("verify")[0] == 0
    finally:
        grant.unlink()
        with cluster.admin() as conn:
            conn.execute(f"DROP ROLE IF EXISTS tmp_jdoe_payments_{GRANT_FROM:%Y%m%d%H%M}")
