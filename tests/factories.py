"""Valid declarations to build test cases from, each with the fields a test changes, and plans
changed as a bug in the planner might change them."""

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from cdktf import TerraformStack, Testing
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_postgresql.provider import PostgresqlProvider
from cdktf_cdktf_provider_random.provider import RandomProvider

from servicedb.access import TemporaryAccess
from servicedb.cli import main
from servicedb.plan import Plan
from servicedb.server import LocalServer
from servicedb.spec import Environment, OperatorNetwork, Reads, Service

GRANT_FROM = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
GRANT_UNTIL = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
DURING_GRANT = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def environment(**overrides: object) -> Environment:
    """A valid environment, with `overrides` applied."""
    values: dict[str, object] = {
        "name": "test",
        "region": "eu-west-1",
        "account_id": "123456789012",
        "cluster_identifier": "test-main",
        "endpoint": "test-main.cluster-abc.eu-west-1.rds.amazonaws.com",
        "master_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-test-AbCdEf",
        "engine_version": "16.4",
    }
    values.update(overrides)
    return Environment(**values)  # type: ignore[arg-type]


def reading(name: str, *others: str, **fields: object) -> Service:
    return Service(name=name, reads=tuple(Reads(service=other) for other in others), **fields)  # type: ignore[arg-type]


def operator_network(**overrides: object) -> OperatorNetwork:
    """A valid operator network in the environment's account and region, with `overrides` applied."""
    values: dict[str, object] = {
        "operator_vpc_id": "vpc-0a0000000000000a1",
        "operator_vpc_cidr": "10.100.0.0/16",
        "operator_route_table_ids": ("rtb-0a0000000000000a1",),
        "database_vpc_id": "vpc-0d0000000000000d1",
        "database_vpc_cidr": "10.0.0.0/16",
        "database_route_table_ids": ("rtb-0d0000000000000d1", "rtb-0d0000000000000d2"),
        "cluster_security_group_id": "sg-0d0000000000000d1",
        "operator_security_group_id": "sg-0a0000000000000a1",
    }
    values.update(overrides)
    return OperatorNetwork(**values)  # type: ignore[arg-type]


def temporary_access(**overrides: object) -> TemporaryAccess:
    """A valid read grant for `jdoe` on `orders` in the `test` environment, 09:00 to 13:00 UTC on 1 December 2026."""
    values: dict[str, object] = {
        "person": "jdoe",
        "principal_arn": "arn:aws:iam::123456789012:role/oncall-jdoe",
        "environment": "test",
        "service": "orders",
        "ticket": "INC-123",
        "valid_from": GRANT_FROM,
        "valid_until": GRANT_UNTIL,
    }
    values.update(overrides)
    return TemporaryAccess(**values)  # type: ignore[arg-type]


def synth(build) -> tuple[str, dict]:
    """Build into a fresh stack with the three providers; return the JSON text and parsed document."""
    stack = TerraformStack(Testing.app(), "test")
    providers = {
        "postgresql_provider": PostgresqlProvider(
            stack, "postgresql", host="db.internal", username="servicedb_admin", superuser=False
        ),
        "aws_provider": AwsProvider(stack, "aws", region="eu-west-1"),
        "random_provider": RandomProvider(stack, "random"),
    }
    build(stack, providers)
    text = Testing.synth(stack, run_validations=True)
    return text, json.loads(text)


def resources(document: dict, kind: str) -> dict[str, dict]:
    return document["resource"].get(kind, {})


def leaves(value: object, path: str):
    """Every (path, value) of a JSON document's leaves, paths like `stack.resource.x.password`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def declare(directory: Path, name: str, **fields: object) -> None:
    """Write `<directory>/<name>.py`; `fields` as the Service's keyword arguments (enums as strings)."""
    directory.mkdir(parents=True, exist_ok=True)
    arguments = "".join(f", {key}={value!r}" for key, value in fields.items())
    (directory / f"{name}.py").write_text(
        f"from servicedb import Reads, Service\n\nSERVICE = Service(name={name!r}{arguments})\n"
    )


@dataclass
class Workspace:
    """Service declarations in a directory of their own, applied with the CLI to a real server;
    a test changes a declaration and applies again, as an operator would."""

    server: LocalServer
    directory: Path
    outputs: list[str] = field(default_factory=list)

    @property
    def services(self) -> Path:
        return self.directory / "services"

    @property
    def secrets(self) -> Path:
        return self.directory / "secrets.json"

    def declare(self, name: str, **fields: object) -> None:
        declare(self.services, name, **fields)

    def cli(self, command: str, *args: str, url: str | None = None) -> tuple[int, str]:
        lines: list[str] = []
        code = main(
            [
                command,
                "--url",
                url or self.server.admin_url_with_password,
                "--services",
                str(self.services),
                "--secrets",
                str(self.secrets),
                *args,
            ],
            out=lines.append,
        )
        self.outputs.append("\n".join(lines))
        return code, self.outputs[-1]

    def entries(self) -> dict[str, dict]:
        return json.loads(self.secrets.read_text())

    def password(self, user: str) -> str:
        return next(e["password"] for e in self.entries().values() if e["username"] == user and "password" in e)

    def login(self, user: str, database: str, password: str | None = None) -> psycopg.Connection:
        url = self.server.url(user, password or self.password(user), database)
        return psycopg.connect(url, autocommit=True)

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            self.server.admin_url, password=self.server.admin_password, dbname=database, autocommit=True
        )

    def superuser(self) -> psycopg.Connection:
        return psycopg.connect(self.server.superuser_url_with_password, autocommit=True)

    def check_no_password_was_printed(self) -> None:
        passwords = [e["password"] for e in self.entries().values() if "password" in e]
        for output in self.outputs:
            assert not [p for p in passwords if p in output]


def with_service(plan: Plan, name: str, **changes: object) -> Plan:
    """`plan` with one service's plan changed, as a bug in the planner might change it."""
    target = plan.service(name)
    changed = dataclasses.replace(target, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(plan, services=tuple(changed if s is target else s for s in plan.services))
