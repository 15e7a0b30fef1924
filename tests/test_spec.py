"""Every validation rule refuses its bad declaration with a message that says where and how to fix."""

import pytest

from servicedb.errors import DeclarationError
from servicedb.spec import Reads, Service, find_problems, validate

from factories import environment, reading


def messages(services, environments=()) -> list[str]:
    """`at <path>: <message>` of every problem, for declarations from `services/<name>.py`."""
    problems = find_problems(
        [(s, f"services/{getattr(s, 'name', 'x')}.py") for s in services],
        [(e, "environments.toml") for e in environments],
    )
    return [f"{p.subject} at {p.at}: {p.message}" for p in problems]


def test_valid_declarations_have_no_problems():
    assert messages([reading("orders", "billing"), reading("billing")], [environment()]) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Orders", "must match ^[a-z][a-z0-9_]*$, got 'Orders' (use lowercase)"),
        ("9orders", "must match ^[a-z][a-z0-9_]*$, got '9orders'"),
        ("or-ders", "must match ^[a-z][a-z0-9_]*$, got 'or-ders'"),
        ('or"ders', "must match"),
        ("", "must match"),
        ("o" * 55, "must be at most 54 characters so that"),
        ("postgres", "'postgres' is reserved"),
        ("public", "'public' is reserved"),
        ("pg_orders", "'pg_orders' is reserved"),
        ("rdsadmin", "'rdsadmin' is reserved"),
    ],
)
def test_rejects_invalid_service_names(name, expected):
    [message] = messages([Service(name=name)])
    assert f"at name: {expected}" in message


def test_accepts_the_longest_name_that_fits_every_role():
    assert messages([Service(name="o" * 54)]) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("connection_limit", 0, "must be between 1 and 5000, got 0"),
        ("connection_limit", -1, "must be between 1 and 5000, got -1"),
        ("connection_limit", 100_000, "must be between 1 and 5000, got 100000"),
        ("connection_limit", "20", "must be a whole number, got '20'"),
        ("connection_limit", True, "must be a whole number, got True"),
        ("migrator_connection_limit", 0, "must be between 1 and 5000, got 0"),
        ("statement_timeout_ms", -5, "must be between 0 and 86400000, got -5"),
        ("statement_timeout_ms", 30.5, "must be a whole number, got 30.5"),
        ("idle_in_transaction_timeout_ms", 10**9, "must be between 0 and 86400000, got 1000000000"),
        ("migration_statement_timeout_ms", -1, "must be between 0 and 86400000, got -1"),
    ],
)
def test_rejects_out_of_range_limits(field, value, expected):
    [message] = messages([Service(name="orders", **{field: value})])
    assert message == f"Service(name='orders') at {field}: {expected}"


def test_rejects_reads_that_are_not_reads():
    [message] = messages([Service(name="orders", reads=("billing",))])
    assert message == "Service(name='orders') at reads[0]: must be Reads(service=...), got 'billing'"


def test_accepts_a_list_where_a_tuple_is_meant():
    service = Service(name="orders", reads=[Reads(service="billing")], extensions=["pgcrypto"])
    assert service.reads == (Reads(service="billing"),)
    assert service.extensions == ("pgcrypto",)


def test_rejects_a_read_of_an_unknown_service_and_lists_the_declared_ones():
    [message] = messages([reading("orders", "biling"), reading("billing")])
    assert message == (
        "Service(name='orders') at reads[0].service: no service named 'biling' (declared: billing, orders)"
    )


def test_rejects_a_service_reading_itself():
    [message] = messages([reading("orders", "orders")])
    assert "at reads[0].service: a service cannot read itself" in message


def test_rejects_the_same_read_twice():
    [message] = messages([reading("orders", "billing", "billing"), reading("billing")])
    assert "at reads[1].service: 'billing' is read more than once" in message


def test_rejects_duplicate_services_naming_both_files():
    problems = find_problems(
        [(Service(name="orders"), "services/orders.py"), (Service(name="orders"), "services/orders2.py")], []
    )
    [problem] = problems
    assert problem.source == "services/orders2.py"
    assert problem.message == "'orders' is already declared in services/orders.py; rename one of them"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("execution_role", "arn:aws:iam::123456789012:role/x", "must be an IAM role name (not an ARN)"),
        ("migration_execution_role", "has space", "must be an IAM role name (not an ARN)"),
        ("extensions", ("Bad Ext",), "at extensions[0]: must be an extension name like 'pgcrypto'"),
        ("extensions", ("pgcrypto", "pgcrypto"), "at extensions: 'pgcrypto' is listed more than once"),
    ],
)
def test_rejects_bad_roles_and_extensions(field, value, expected):
    [message] = messages([Service(name="orders", **{field: value})])
    assert expected in message


def test_rejects_something_that_is_not_a_service():
    problems = find_problems([("orders", "services/orders.py")], [])
    assert [p.message for p in problems] == ["must be a servicedb.Service(...), got str"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("region", "Ireland", "must look like 'eu-west-1', got 'Ireland'"),
        ("account_id", "12345", "must look like '123456789012', got '12345'"),
        ("endpoint", "https://db.example.com", "must look like"),
        ("master_secret_arn", "rds!cluster", "must look like 'arn:aws:secretsmanager:"),
        ("kms_key_arn", "alias/aws/secretsmanager", "must look like 'arn:aws:kms:"),
        ("engine_version", "sixteen", "must look like '16.4'"),
        ("port", 0, "must be between 1 and 65535, got 0"),
        ("secret_recovery_window_days", 3, "must be 0 or between 7 and 30 (Secrets Manager's rule), got 3"),
        ("secret_recovery_window_days", 31, "must be 0 or between 7 and 30"),
        ("password_length", 16, "must be between 32 and 128, got 16"),
        ("connect_timeout_seconds", 0, "must be between 1 and 300"),
        ("execution_role_format", "{team}-{service}", "may use only {env} and {service}"),
        ("secret_name_prefix", "has space/", "must look like 'servicedb/prod/'"),
    ],
)
def test_rejects_bad_environment_settings(field, value, expected):
    [message] = messages([], [environment(**{field: value})])
    assert message.startswith(f"[test] at {field}: {expected}")


def test_rejects_connection_limits_above_the_clusters_budget():
    services = [Service(name="orders", connection_limit=50), Service(name="billing", connection_limit=40)]
    [message] = messages(services, [environment(max_connections=90)])
    assert message == (
        "[test] at max_connections: the services' connection limits add up to 94, above the budget of 90 "
        "(largest: orders=50+2, billing=40+2); lower connection_limit on some services or raise max_connections"
    )


def test_rejects_an_execution_role_format_that_makes_invalid_role_names():
    [message] = messages([Service(name="orders")], [environment(execution_role_format="{env}/{service}")])
    assert message == (
        "[test] at execution_role_format: gives 'test/orders' for service 'orders', which is not an IAM role name "
        "(^[\\w+=,.@-]{1,64}$); change the format or set execution_role on the service"
    )
    assert messages([Service(name="orders", execution_role="x")], [environment(execution_role_format="{env}/x")]) == []


def test_validate_raises_once_with_every_problem_grouped_by_declaration():
    with pytest.raises(DeclarationError) as raised:
        validate(
            [
                (Service(name="Orders", connection_limit=0), "services/orders.py"),
                (reading("billing", "x"), "services/billing.py"),
            ],
            [(environment(port=0), "environments.toml")],
        )
    assert str(raised.value) == "\n".join(
        [
            "services/orders.py: Service(name='Orders'): 2 problems",
            "  at name: must match ^[a-z][a-z0-9_]*$, got 'Orders' (use lowercase)",
            "  at connection_limit: must be between 1 and 5000, got 0",
            "services/billing.py: Service(name='billing'): 1 problem",
            "  at reads[0].service: no service named 'x' (declared: Orders, billing)",
            "environments.toml: [test]: 1 problem",
            "  at port: must be between 1 and 65535, got 0",
        ]
    )


def test_environment_defaults():
    env = environment(name="prod")
    assert env.stack_name == "prod-database-access"
    assert env.secret_prefix == "servicedb/prod/"
    assert env.execution_role_for(Service(name="orders")) == "prod-orders-execution"
    assert env.migration_execution_role_for(Service(name="orders", execution_role="x")) == "x"
    assert env.migration_execution_role_for(Service(name="orders", migration_execution_role="m")) == "m"
