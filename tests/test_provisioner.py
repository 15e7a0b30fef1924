"""The provisioner function's handler, in this process, on a real PostgreSQL; Secrets Manager is moto.

The secrets are created as the Terraform stack creates them (RDS shape, a generated password), the
master secret holds the admin's credentials as RDS writes them, and the event is the JSON the
invocation sends: the function reads every password itself, and returns none.
"""

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws

from servicedb.cli import local_environment, local_services
from servicedb.load import Declarations
from servicedb.passwords import generate_password
from servicedb.plan import Plan, plan_services
from servicedb.provisioner import (
    Action,
    ProvisionError,
    SslMode,
    admin_credentials,
    event,
    expire_event,
    handler,
    invocation,
    plan_from_json,
    plan_to_json,
)
from servicedb.server import ADMIN, LocalServer
from servicedb.spec import Service

from factories import environment as valid_environment

SERVICES = Path(__file__).parent / "services"
OWN_TABLE = "items"


@dataclass
class Deployment:
    """A fresh server, the secrets Terraform would have created, and the plan's event."""

    server: LocalServer
    plan: Plan
    secret_arns: dict[str, str]
    passwords: dict[str, str]
    results: list[dict]

    def invoke(self, action: Action = Action.APPLY, *, plan: Plan | None = None) -> dict:
        sent = json.loads(json.dumps(self.event(action, plan=plan)))  # as the invocation sends it
        result = handler(sent, None)
        self.results.append(result)
        return json.loads(json.dumps(result))  # as the state keeps it

    def event(self, action: Action = Action.APPLY, *, plan: Plan | None = None) -> dict:
        return event(plan or self.plan, secret_arns=self.secret_arns, action=action, sslmode=SslMode.DISABLE)

    def replanned(self, **changes: object) -> Plan:
        """The plan of the test services, with `changes` made to the environment."""
        environment = dataclasses.replace(self.plan.environment, **changes)
        return plan_services(local_services(SERVICES, environment), environment)

    def login(self, user: str, database: str) -> psycopg.Connection:
        return psycopg.connect(self.server.url(user, self.passwords[user], database), autocommit=True)

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            self.server.admin_url, password=self.server.admin_password, dbname=database, autocommit=True
        )


def test_every_environments_plan_reads_back_as_it_was_written(declarations: Declarations) -> None:
    # The repository's environments: an operator network with its enum, tags, a KMS key.
    for environment in declarations.environments:
        plan = plan_services(declarations.services, environment)
        assert plan_from_json(Plan, json.loads(json.dumps(plan_to_json(plan)))) == plan


def test_a_plan_with_retired_and_purged_services_reads_back_as_it_was_written() -> None:
    services = [
        Service(name="orders"),
        Service(name="billing", retired=True),
        Service(name="catalog", retired=True, purge=True),
    ]
    plan = plan_services(services, valid_environment())
    assert (plan.service("billing").retired, plan.purged) == (True, ("catalog",))
    assert plan_from_json(Plan, json.loads(json.dumps(plan_to_json(plan)))) == plan


@pytest.fixture(scope="module")
def deployment(server: LocalServer) -> Iterator[Deployment]:
    with LocalServer(server.binaries) as fresh, mock_aws():
        environment = local_environment("127.0.0.1", fresh.port)
        client = boto3.client("secretsmanager", region_name=environment.region)
        master = client.create_secret(
            Name="rds!cluster-local",
            SecretString=json.dumps({"username": ADMIN, "password": fresh.admin_password}),
        )
        environment = dataclasses.replace(environment, master_secret_arn=master["ARN"])
        plan = plan_services(local_services(SERVICES, environment), environment)
        secret_arns, passwords = {}, {}
        for service in plan.services:
            for secret in service.secrets:
                passwords[secret.username] = generate_password(secret.password_length)
                created = client.create_secret(
                    Name=secret.name, SecretString=json.dumps({**secret.fields, "password": passwords[secret.username]})
                )
                secret_arns[secret.username] = created["ARN"]
        result = Deployment(server=fresh, plan=plan, secret_arns=secret_arns, passwords=passwords, results=[])
        yield result
    for output in result.results:
        text = json.dumps(output)
        for password in [*passwords.values(), fresh.admin_password]:
            assert password not in text


@pytest.fixture(scope="module")
def applied(deployment: Deployment) -> dict:
    """The first invocation's result, and a table made by each migrator after it."""
    result = deployment.invoke()
    for service in ("ledger", "inventory", "checkout", "delivery"):
        with deployment.login(f"{service}_migrator", service) as conn:
            conn.execute(f"CREATE TABLE {OWN_TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
    return result


def test_applies_the_plan_to_an_empty_server(deployment: Deployment, applied: dict) -> None:
    assert applied["action"] == "apply"
    assert applied["ok"] is True
    assert applied["statements_run"] == len(applied["drift"]) > 50
    assert "create login user checkout_app (app)" in applied["drift"]
    assert "grant ledger_reader to checkout_app" in applied["drift"]
    # The users log in with the passwords of their secrets, which only Secrets Manager held.
    with deployment.login("checkout_app", "checkout") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("checkout_app",)


def test_a_second_invocation_has_nothing_to_do(deployment: Deployment, applied: dict) -> None:
    assert deployment.invoke() == {"action": "apply", "ok": True, "statements_run": 0, "drift": []}


def test_repairs_drift_and_names_it(deployment: Deployment, applied: dict) -> None:
    with deployment.admin("ledger") as conn:
        conn.execute("SET ROLE ledger_owner")
        conn.execute(f"GRANT INSERT ON ledger.{OWN_TABLE} TO checkout_app")
    with deployment.admin() as conn:
        conn.execute("ALTER ROLE inventory_app CONNECTION LIMIT 99")
        conn.execute("ALTER ROLE delivery_app PASSWORD 'changed-by-hand-0123456789'")

    found = deployment.invoke(Action.VERIFY)
    assert found["ok"] is False
    assert (
        f"access: second writer: checkout_app has write on ledger (declared: read): INSERT on ledger.{OWN_TABLE}"
        in found["differences"]
    )

    repaired = deployment.invoke()
    assert sorted(repaired["drift"]) == [
        "delivery_app: set the password from its secret (the current one is rejected)",
        "inventory_app: connection limit 99 -> 10",
        f"revoke INSERT on table ledger.ledger.{OWN_TABLE} from checkout_app (not declared)",
    ]
    assert repaired["statements_run"] == 3
    deployment.login("delivery_app", "delivery").close()
    assert deployment.invoke(Action.VERIFY)["ok"] is True


def test_verify_reports_the_access_matrix(deployment: Deployment, applied: dict) -> None:
    result = deployment.invoke(Action.VERIFY)
    assert result["ok"] is True
    assert result["differences"] == []
    assert result["access"]["checkout_app"] == {"checkout": "write", "inventory": "read", "ledger": "read"}
    assert result["access"]["checkout_migrator"] == {"checkout": "ddl"}


def test_logs_the_statements_without_passwords(
    deployment: Deployment, applied: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    with deployment.admin() as conn:
        conn.execute("ALTER ROLE ledger_app PASSWORD 'changed-by-hand-0123456789'")
    deployment.invoke()
    logged = capsys.readouterr().out
    assert "ALTER ROLE \"ledger_app\" PASSWORD :'password_ledger_app';" in logged
    assert deployment.passwords["ledger_app"] not in logged
    assert "SCRAM-SHA-256$" not in logged


def test_fails_without_applying_anything_when_part_of_the_plan_cannot_be(deployment: Deployment, applied: dict) -> None:
    environment = deployment.plan.environment
    services = [
        dataclasses.replace(service, extensions=("no_such_extension",))
        if service.name == "ledger"
        else dataclasses.replace(service, connection_limit=7)
        for service in local_services(SERVICES, environment)
    ]
    with pytest.raises(ProvisionError, match="refusing to apply anything:\n  extension no_such_extension"):
        deployment.invoke(plan=plan_services(services, environment))
    with deployment.admin() as conn:
        assert conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'checkout_app'").fetchone() == (10,)


def test_fails_clearly_on_a_missing_secret(deployment: Deployment) -> None:
    arns = dict(deployment.secret_arns, ledger_app=deployment.secret_arns["ledger_app"] + "-gone")
    sent = event(deployment.plan, secret_arns=arns, sslmode=SslMode.DISABLE)
    with pytest.raises(ProvisionError, match=r"1 secrets do not exist in Secrets Manager: servicedb/local/ledger/app"):
        handler(json.loads(json.dumps(sent)))


def test_fails_clearly_on_an_unreachable_server(deployment: Deployment) -> None:
    with pytest.raises(ProvisionError, match=r"PostgreSQL at 127.0.0.1:1: cannot connect to 127.0.0.1:1"):
        deployment.invoke(plan=deployment.replanned(port=1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": "destroy"}, "event: action must be one of 'apply', 'verify', 'expire', got 'destroy'"),
        ({"plan": None}, "event: plan must be an object, got NoneType"),
        ({"sslmode": "prefer"}, "event: sslmode must be one of 'require', 'disable', got 'prefer'"),
        ({"password": "x"}, "event: unknown fields password"),
    ],
)
def test_rejects_a_malformed_event(deployment: Deployment, change: dict, message: str) -> None:
    with pytest.raises(ProvisionError, match=message):
        invocation({**json.loads(json.dumps(deployment.event())), **change})


def test_rejects_a_plan_that_breaks_isolation(deployment: Deployment) -> None:
    sent = json.loads(json.dumps(deployment.event()))
    grants = sent["plan"]["services"][0]["grants"]
    public_database = next(g for g in grants if g["grantee"] == "public" and g["object_type"] == "database")
    public_database["privileges"] = ["CONNECT"]
    with pytest.raises(ProvisionError, match="the plan breaks isolation"):
        invocation(sent)


def test_the_handler_imports_no_construct_driver_binding_or_aws_sdk() -> None:
    # The function's zip has none of them; boto3, which the Lambda runtime has, is imported to run.
    code = (
        "import sys, servicedb.provisioner;"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'cdktf', 'constructs', 'jsii', 'psycopg', 'psycopg_binary', 'boto3', 'botocore', 'moto'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_schedules_expire_removes_a_break_glass_role_whose_time_is_up(
    deployment: Deployment, applied: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the expiry schedule sends, run by the handler over pg8000: the session ends, what the
    role created goes to the service's owner, the role goes, one JSON line per action."""
    role, password = "tmp_jdoe_ledger_202612010900", generate_password(40)
    with deployment.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' VALID UNTIL 'infinity' CONNECTION LIMIT 2")
        conn.execute(f"GRANT ledger_reader TO {role}")
    session = psycopg.connect(deployment.server.url(role, password, "ledger"), autocommit=True)
    (large_object,) = session.execute("SELECT lo_create(0)").fetchone()
    with deployment.admin() as conn:
        conn.execute(f"ALTER ROLE {role} VALID UNTIL '2026-12-01 10:00:00+00'")

    sent = json.loads(json.dumps(expire_event(deployment.plan.environment, sslmode=SslMode.DISABLE)))
    assert len(json.dumps(sent)) < 8192  # an EventBridge target's input
    result = handler(sent, None)  # Secrets Manager: the module's moto
    assert result == {"action": "expire", "ok": True, "removed": 1}
    actions = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [a["action"] for a in actions] == [
        "forbid_login",
        "terminate_session",
        "reassign_owned",
        "drop_owned",
        "drop_role",
    ]
    assert {(a["role"], a["person"], a["service"], a["level"]) for a in actions} == {(role, "jdoe", "ledger", "read")}
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    with deployment.admin("ledger") as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (0,)
        owner = conn.execute(
            "SELECT lomowner::regrole::text FROM pg_largeobject_metadata WHERE oid = %s", (large_object,)
        )
        assert owner.fetchone() == ("ledger_owner",)
    assert handler(sent, None) == {"action": "expire", "ok": True, "removed": 0}


def test_an_iam_admin_logs_in_with_a_token_its_function_signs(monkeypatch: pytest.MonkeyPatch) -> None:
    """With `admin_iam_user`, the schedule's function reads no master secret: boto3 signs a token for
    exactly that user on the cluster's endpoint (the signing is local; Aurora checks it at login)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-key-for-signing-only")
    chosen = valid_environment(admin_iam_user="servicedb_admin")
    user, token = admin_credentials(chosen, secrets=None, tokens=boto3.client("rds", region_name=chosen.region))
    assert user == "servicedb_admin"
    assert token.startswith(f"{chosen.endpoint}:{chosen.port}/?")
    assert "Action=connect" in token and "DBUser=servicedb_admin" in token
    with pytest.raises(ProvisionError, match="admin_iam_user is set, but no RDS client makes its token"):
        admin_credentials(chosen, secrets=None)
