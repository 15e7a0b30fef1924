"""Every validation rule refuses its bad declaration with a message that says where and how to fix."""

import pytest

from servicedb.errors import DeclarationError
from servicedb.spec import OperatorHost, Provisioner, Reads, Service, find_problems, validate

from factories import environment, operator_network, reading


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
        ("orders\n", "must match ^[a-z][a-z0-9_]*$, got 'orders\\n'"),  # `$` alone would let it through
        ("ordérs", "must match"),
        ("orders;drop", "must match"),
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
        ("statement_timeout_ms", 30, "must be 0 (off) or at least 100 ms, got 30; did you mean 30_000 (30 s)?"),
        ("idle_in_transaction_timeout_ms", 1, "must be 0 (off) or at least 100 ms, got 1; did you mean 1_000 (1 s)?"),
        ("retired", "yes", "must be True or False, got 'yes'"),
        ("purge", 1, "must be True or False, got 1"),
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
        "Service(name='orders') at reads[0].service: no service named 'biling'; did you mean 'billing'? "
        "(declared: billing, orders)"
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
        (
            "execution_role_format",
            "{team}-{service}",
            "may use only {env} and {service}, got '{team}-{service}' ({team} is not one of them)",
        ),
        ("secret_name_prefix", "has space/", "must look like 'servicedb/prod/'"),
        ("state_bucket", "s3://Terraform-State", "must look like 'example-prod-terraform-state'"),
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


def network_messages(**overrides: object) -> list[str]:
    """`at <path>: <message>` of every problem of an environment with an operator network."""
    environment_overrides = {k: overrides.pop(k) for k in ("account_id", "region", "port") if k in overrides}
    problems = find_problems(
        [], [(environment(network=operator_network(**overrides), **environment_overrides), "environments.toml")]
    )
    return [f"at {p.at}: {p.message}" for p in problems]


SSM_HOST = {"host": OperatorHost.SSM, "host_subnet_id": "subnet-0a0000000000000a1", "operator_security_group_id": None}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"operator_security_group_id": None, "operator_cidr": "10.100.1.0/24"},
        SSM_HOST,
        {**SSM_HOST, "host_instance_type": "t4g.small", "host_https_egress_cidrs": ("10.100.0.0/16", "0.0.0.0/0")},
        {"host": OperatorHost.CLOUD9, "host_subnet_id": "subnet-0a0000000000000a1"},
        {"operator_account_id": "210987654321", "operator_role_arn": "arn:aws:iam::210987654321:role/ops/servicedb"},
        {"operator_region": "eu-central-1", "operator_security_group_id": None, "operator_cidr": "10.100.1.0/24"},
        {"operator_vpc_id": "vpc-0a1b2c3d", "operator_vpc_cidr": "192.168.0.0/28"},
    ],
)
def test_accepts_valid_operator_networks(overrides):
    assert network_messages(**overrides) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"operator_vpc_id": "vpc-123"},
            "at network.operator_vpc_id: must be an id like 'vpc-0a1b2c3d4e5f67890', got 'vpc-123'",
        ),
        (
            {"database_vpc_id": "sg-0d0000000000000d1"},
            "at network.database_vpc_id: must be an id like 'vpc-0a1b2c3d4e5f67890', got 'sg-0d0000000000000d1'",
        ),
        (
            {"operator_vpc_id": "vpc-0d0000000000000d1"},
            "at network.operator_vpc_id: is the database VPC too ('vpc-0d0000000000000d1'); "
            "a VPC cannot peer with itself",
        ),
        (
            {"operator_route_table_ids": ()},
            "at network.operator_route_table_ids: must be a non-empty array of ids like "
            "['rtb-0a1b2c3d4e5f67890'], got ()",
        ),
        (
            {"database_route_table_ids": ("rtb-0d0000000000000d1", "rtb-x")},
            "at network.database_route_table_ids[1]: must be an id like 'rtb-0a1b2c3d4e5f67890', got 'rtb-x'",
        ),
        (
            {"database_route_table_ids": ("rtb-0d0000000000000d1", "rtb-0d0000000000000d1")},
            "at network.database_route_table_ids: 'rtb-0d0000000000000d1' is listed more than once",
        ),
        (
            {"cluster_security_group_id": "sg_main"},
            "at network.cluster_security_group_id: must be an id like 'sg-0a1b2c3d4e5f67890', got 'sg_main'",
        ),
        (
            {"database_vpc_cidr": "10.0.0.0"},
            "at network.database_vpc_cidr: must be an IPv4 CIDR block like '10.0.0.0/16', got '10.0.0.0' "
            "(write '10.0.0.0/32' for one address)",
        ),
        (
            {"database_vpc_cidr": "10.0.0.300/16"},
            "at network.database_vpc_cidr: must be an IPv4 CIDR block like '10.0.0.0/16', got '10.0.0.300/16'",
        ),
        (
            {"database_vpc_cidr": "10.0.5.0/16"},
            "at network.database_vpc_cidr: has bits set after the prefix: '10.0.5.0/16' is inside 10.0.0.0/16; "
            "write '10.0.0.0/16'",
        ),
        (
            {"operator_vpc_cidr": "10.0.0.0/8", "operator_security_group_id": "sg-0a0000000000000a1"},
            "at network.operator_vpc_cidr: must be between /16 and /28, the sizes AWS allows for a VPC, got /8",
        ),
        (
            {"operator_vpc_cidr": "10.0.128.0/20"},
            "at network.operator_vpc_cidr: 10.0.128.0/20 overlaps database_vpc_cidr 10.0.0.0/16; "
            "peered VPCs need address ranges that do not overlap",
        ),
        (
            {"operator_account_id": "3333"},
            "at network.operator_account_id: must look like '123456789012', got '3333'",
        ),
        (
            {"operator_region": "Frankfurt", "operator_security_group_id": None, "operator_cidr": "10.100.1.0/24"},
            "at network.operator_region: must look like 'eu-west-1', got 'Frankfurt'",
        ),
        (
            {"operator_account_id": "210987654321"},
            "at network.operator_role_arn: is required when the operator VPC is in another account "
            "(210987654321, not 123456789012): the role the stack assumes there",
        ),
        (
            {"operator_role_arn": "servicedb-operator"},
            "at network.operator_role_arn: must look like 'arn:aws:iam::123456789012:role/operator', "
            "got 'servicedb-operator'",
        ),
        (
            {"operator_account_id": "210987654321", "operator_role_arn": "arn:aws:iam::123456789012:role/operator"},
            "at network.operator_role_arn: is a role in account 123456789012, but the operator VPC is in account "
            "210987654321; give a role in the operator account",
        ),
    ],
)
def test_rejects_bad_operator_networks(overrides, expected):
    assert network_messages(**overrides) == [expected]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"operator_cidr": "10.100.1.0/24"},
            "at network.operator_security_group_id: give exactly one of operator_security_group_id and "
            "operator_cidr, the only source allowed to reach the cluster (got both)",
        ),
        (
            {"operator_security_group_id": None},
            "at network.operator_security_group_id: give exactly one of operator_security_group_id and "
            "operator_cidr, the only source allowed to reach the cluster (got neither)",
        ),
        (
            {**SSM_HOST, "operator_cidr": "10.100.1.0/24"},
            "at network.operator_cidr: must be left out when host = 'ssm': the host's own security group is the source",
        ),
        (
            {"operator_security_group_id": "sg-1"},
            "at network.operator_security_group_id: must be an id like 'sg-0a1b2c3d4e5f67890', got 'sg-1'",
        ),
        (
            {"operator_region": "us-east-1"},
            "at network.operator_security_group_id: cannot be referenced from another region (operator VPC in "
            "us-east-1, cluster in eu-west-1); give operator_cidr instead",
        ),
    ],
)
def test_rejects_anything_but_exactly_one_operator_source(overrides, expected):
    assert network_messages(**overrides) == [expected]


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        (
            "0.0.0.0/0",
            "0.0.0.0/0 would let every address reach the cluster; give the operator host's subnet, "
            "e.g. '10.100.1.0/24'",
        ),
        (
            "10.0.0.0/8",
            "10.0.0.0/8 is not inside operator_vpc_cidr 10.100.0.0/16: only the operator VPC reaches the cluster "
            "over the peering",
        ),
        (
            "10.101.0.0/24",
            "10.101.0.0/24 is not inside operator_vpc_cidr 10.100.0.0/16: only the operator VPC reaches the "
            "cluster over the peering",
        ),
        ("10.100.1.5", "must be an IPv4 CIDR block like '10.0.0.0/16', got '10.100.1.5' (write '10.100.1.5/32'"),
    ],
)
def test_rejects_an_open_or_foreign_operator_cidr(cidr, expected):
    [message] = network_messages(operator_security_group_id=None, operator_cidr=cidr)
    assert message.startswith(f"at network.operator_cidr: {expected}")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"host": "ec2"},
            "at network.host: must be one of 'none', 'cloud9', 'ssm', got 'ec2'",
        ),
        (
            {**SSM_HOST, "host_subnet_id": None},
            "at network.host_subnet_id: is required when host = 'ssm': the operator subnet it runs in",
        ),
        (
            {"host_subnet_id": "subnet-0a0000000000000a1"},
            "at network.host_subnet_id: is only used when host is 'cloud9' or 'ssm'; remove it or set host",
        ),
        (
            {**SSM_HOST, "host_subnet_id": "subnet-zz"},
            "at network.host_subnet_id: must be an id like 'subnet-0a1b2c3d4e5f67890', got 'subnet-zz'",
        ),
        (
            {**SSM_HOST, "host_instance_type": "small"},
            "at network.host_instance_type: must be an EC2 instance type like 't3.small', got 'small'",
        ),
        (
            {
                "host": OperatorHost.CLOUD9,
                "host_subnet_id": "subnet-0a0000000000000a1",
                "host_instance_type": "t4g.small",
            },
            "at network.host_instance_type: 't4g.small' has an Arm processor; Cloud9 runs x86_64 only (try 't3.small')",
        ),
        (
            {"host_https_egress_cidrs": ("10.100.0.0/16",)},
            "at network.host_https_egress_cidrs: is only used when host = 'ssm'; remove it",
        ),
        (
            {**SSM_HOST, "host_https_egress_cidrs": ("10.100.0.0/16", "everywhere")},
            "at network.host_https_egress_cidrs[1]: must be an IPv4 CIDR block like '10.0.0.0/16', got 'everywhere'",
        ),
    ],
)
def test_rejects_bad_operator_hosts(overrides, expected):
    assert network_messages(**overrides) == [expected]


def test_rejects_a_network_that_is_not_an_operator_network():
    [problem] = find_problems([], [(environment(network={"operator_vpc_id": "vpc-1"}), "environments.toml")])
    assert (problem.at, problem.message) == ("network", "must be an OperatorNetwork(...), got dict")


def test_reports_every_network_problem_at_once():
    messages = network_messages(operator_vpc_id="vpc-1", operator_cidr="0.0.0.0/0", host="ec2")
    assert [message.split(":")[0] for message in messages] == [
        "at network.operator_vpc_id",
        "at network.operator_security_group_id",
        "at network.operator_cidr",
        "at network.host",
    ]


def test_operator_network_accepts_lists_where_tuples_are_meant():
    network = operator_network(operator_route_table_ids=["rtb-0a0000000000000a1"], host_https_egress_cidrs=[])
    assert network.operator_route_table_ids == ("rtb-0a0000000000000a1",)
    assert network.host_https_egress_cidrs == ()
    assert operator_network(host="ssm").host is OperatorHost.SSM
    assert environment(name="prod").network_stack_name == "prod-operator-network"


def test_accepts_a_retired_and_a_purged_service():
    assert messages([Service(name="orders", retired=True), Service(name="billing", retired=True, purge=True)]) == []


def test_rejects_a_purge_of_a_service_that_is_not_retired():
    [message] = messages([Service(name="orders", purge=True)])
    assert message == (
        "Service(name='orders') at purge: drops the service's database and roles, so it is valid only on a "
        "retired service; set retired=True as well, or remove purge to keep the data"
    )


def test_rejects_a_read_of_a_retired_service_but_not_by_one():
    services = [
        reading("orders", "billing"),
        reading("billing", retired=True),
        reading("audit", "billing", retired=True),
    ]
    assert messages(services) == [
        "Service(name='orders') at reads[0].service: 'billing' is retired: its data is kept, but nothing may read "
        "it; remove this read, or bring billing back with retired=False"
    ]


def test_rejects_a_read_that_names_no_service():
    [message] = messages([Service(name="orders", reads=(Reads(service=["billing"]),))])  # type: ignore[arg-type]
    assert message == "Service(name='orders') at reads[0].service: must be the name of a service, got ['billing']"


def test_retired_services_take_no_connections_from_the_budget():
    services = [Service(name="orders", connection_limit=50), Service(name="billing", connection_limit=40, retired=True)]
    assert messages(services, [environment(max_connections=60)]) == []


def test_a_limit_that_is_not_a_number_is_reported_once_and_the_budget_still_checked():
    services = [Service(name="orders", connection_limit="50"), Service(name="billing", connection_limit=70)]
    assert [m.split(":")[0] for m in messages(services, [environment(max_connections=60)])] == [
        "Service(name='orders') at connection_limit",
        "[test] at max_connections",
    ]


def test_rejects_two_environments_writing_the_same_secrets():
    dev = environment(name="dev", secret_name_prefix="servicedb/")
    prod = environment(name="prod", secret_name_prefix="servicedb/", execution_role_format="{env}-{service}")
    other_region = environment(name="eu", secret_name_prefix="servicedb/", region="eu-central-1")
    problems = find_problems(
        [(Service(name="orders"), "services/orders.py")], [(e, "environments.toml") for e in (dev, prod, other_region)]
    )
    assert [f"{p.subject} at {p.at}: {p.message}" for p in problems] == [
        "[prod] at secret_name_prefix: gives the same secret names as [dev] (servicedb/<service>/app) in account "
        "123456789012, region eu-west-1: each stack would overwrite the other's secrets; set a different "
        "secret_name_prefix"
    ]


def test_rejects_two_environments_in_one_account_giving_a_secret_to_the_same_role():
    problems = find_problems(
        [
            (Service(name="orders", execution_role="orders-task"), "services/orders.py"),
            (Service(name="billing"), "services/billing.py"),
        ],
        [(environment(name="dev"), "environments.toml"), (environment(name="prod"), "environments.toml")],
    )
    assert [f"{p.subject} at {p.at}: {p.message}" for p in problems] == [
        "[prod] at execution_role_format: gives orders_app's secret to the execution role 'orders-task', as [dev] "
        "does in the same account 123456789012 (and 1 more): both stacks would write the policy "
        "servicedb-orders_app-secret-read on it; put {env} in execution_role_format, or set execution_role per "
        "environment"
    ]
    in_two_accounts = [(environment(name="dev"), "e"), (environment(name="prod", account_id="210987654321"), "e")]
    assert find_problems([(Service(name="orders", execution_role="orders-task"), "s")], in_two_accounts) == []


def test_rejects_a_secret_name_prefix_too_long_for_secrets_manager():
    [message] = messages([], [environment(secret_name_prefix="a/" * 225)])
    assert message == (
        "[test] at secret_name_prefix: must be at most 449 characters, so that every secret name fits Secrets "
        "Manager's 512, got 450"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("region", "eu-west-1\n"), ("account_id", "123456789012\n"), ("engine_version", "16.4\n")],
)
def test_rejects_a_trailing_newline_in_environment_settings(field, value):
    [message] = messages([], [environment(**{field: value})])
    assert message.startswith(f"[test] at {field}: must look like")


LAMBDA = {
    "provisioner": Provisioner.LAMBDA,
    "provisioner_subnet_ids": ("subnet-0c00000000000d001", "subnet-0c00000000000d002"),
    "provisioner_security_group_id": "sg-0c00000000000d001",
}


def test_accepts_the_lambda_provisioner_with_its_subnets_and_security_group():
    assert messages([], [environment(**LAMBDA)]) == []
    assert messages([], [environment(**{**LAMBDA, "provisioner": "lambda"})]) == []  # as a string too
    assert environment().provisioner == Provisioner.TERRAFORM


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"provisioner_subnet_ids": ()},
            ["at provisioner_subnet_ids: must be a non-empty array of ids like ['subnet-0a1b2c3d4e5f67890'], got ()"],
        ),
        (
            {"provisioner_subnet_ids": ("subnet-0c00000000000d001", "subnet-1", "subnet-0c00000000000d001")},
            [
                "at provisioner_subnet_ids[1]: must be an id like 'subnet-0a1b2c3d4e5f67890', got 'subnet-1'",
                "at provisioner_subnet_ids: 'subnet-0c00000000000d001' is listed more than once",
            ],
        ),
        (
            {"provisioner_security_group_id": None},
            [
                "at provisioner_security_group_id: is required when provisioner = 'lambda': "
                "a security group that reaches the cluster's port"
            ],
        ),
        (
            {"provisioner_security_group_id": "sg-default"},
            ["at provisioner_security_group_id: must be an id like 'sg-0a1b2c3d4e5f67890', got 'sg-default'"],
        ),
        (
            {"provisioner": "ecs"},
            ["at provisioner: must be one of 'terraform', 'lambda', got 'ecs'"],
        ),
    ],
)
def test_rejects_a_lambda_provisioner_without_where_to_run(overrides, expected):
    assert messages([], [environment(**{**LAMBDA, **overrides})]) == [f"[test] {message}" for message in expected]


def test_the_functions_subnets_serve_the_expiry_schedule_with_the_terraform_provisioner():
    settings = {key: value for key, value in LAMBDA.items() if key != "provisioner"}
    assert messages([], [environment(**settings)]) == []
    assert messages([], [environment(provisioner_subnet_ids=settings["provisioner_subnet_ids"])]) == [
        "[test] at provisioner_security_group_id: is required with provisioner_subnet_ids: the functions' group"
    ]


def test_rejects_an_expiry_schedule_without_the_subnets_it_runs_in():
    [message] = messages([], [environment(expiry_schedule_minutes=5)])
    assert message.startswith("[test] at expiry_schedule_minutes: the function that removes expired break-glass")
    assert messages([], [environment(expiry_schedule_minutes=61)])[0].endswith("must be between 0 and 60, got 61")
    assert messages([], [environment(alarm_topic_arns=("oncall",))]) == [
        "[test] at alarm_topic_arns[0]: must be an SNS topic ARN like 'arn:aws:sns:eu-west-1:123456789012:oncall', "
        "got 'oncall'"
    ]
