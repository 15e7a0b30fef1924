"""Valid declarations to build test cases from, each with the fields a test changes."""

from servicedb.spec import Environment, Reads, Service


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
