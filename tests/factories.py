"""Valid declarations to build test cases from, each with the fields a test changes, and plans
changed as a bug in the planner might change them."""

import dataclasses

from servicedb.plan import Plan
from servicedb.spec import Environment, OperatorNetwork, Reads, Service


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


def with_service(plan: Plan, name: str, **changes: object) -> Plan:
    """`plan` with one service's plan changed, as a bug in the planner might change it."""
    target = plan.service(name)
    changed = dataclasses.replace(target, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(plan, services=tuple(changed if s is target else s for s in plan.services))
