"""Valid declarations to build test cases from, each with the fields a test changes."""

from datetime import UTC, datetime

from servicedb.access import TemporaryAccess
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
