"""Reading services/*.py and environments.toml: every file problem is reported with its file."""

import os
import textwrap
from pathlib import Path

import pytest

from servicedb.errors import DeclarationError
from servicedb.load import load_access, load_declarations, load_environments, load_services
from servicedb.spec import OperatorHost, Provisioner

ENVIRONMENT = """
[dev]
region = "eu-west-1"
account_id = "111111111111"
cluster_identifier = "dev-main"
endpoint = "dev-main.cluster-x.eu-west-1.rds.amazonaws.com"
engine_version = "16.4"
master_secret_arn = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:rds!cluster-x-AbCdEf"
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Sources are shown relative to the working directory, as a user would type them."""
    monkeypatch.chdir(tmp_path)


def test_loads_the_example_projects_declarations(declarations):
    assert [s.name for s in declarations.services] == ["billing", "catalog", "orders", "shipping"]
    assert [e.name for e in declarations.environments] == ["dev", "prod"]
    assert declarations.environment("prod").kms_key_arn.startswith("arn:aws:kms:")
    assert declarations.environment("dev").tags == (("environment", "dev"), ("managed-by", "servicedb"))


def test_skips_private_modules(tmp_path):
    services_dir = write(
        tmp_path / "services",
        {
            "_shared.py": "LIMIT = 5\n",
            "orders.py": "from servicedb import Service\nSERVICE = Service(name='orders')\n",
        },
    )
    services, problems = load_services(services_dir)
    assert problems == []
    assert [service.name for service, _ in services] == ["orders"]
    assert [source for _, source in services] == [os.path.join("services", "orders.py")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SERVICE = (\n", "module: is not valid Python: '(' was never closed at line 1"),
        (
            "import not_a_module_here\n",
            "module: at line 1: failed to import: ModuleNotFoundError: No module named 'not_a_module_here'",
        ),
        ("X = 1\n", "module: defines no SERVICE; add SERVICE = Service(name=...) (see services/orders.py)"),
        (
            "from servicedb import Service\nSERVICE = Service(name='billing')\n",
            "Service(name='billing'): must equal the file name 'orders'; rename the file or the service",
        ),
    ],
)
def test_rejects_broken_service_files(tmp_path, text, expected):
    services_dir = write(tmp_path / "services", {"orders.py": text})
    _, problems = load_services(services_dir)
    assert [f"{p.subject}: {p.message}" for p in problems] == [expected]
    assert problems[0].source == os.path.join("services", "orders.py")


def test_rejects_a_missing_services_directory(tmp_path):
    _, [problem] = load_services(tmp_path / "nope")
    assert problem.message == "does not exist; create it with one <name>.py per service"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('regon = "eu-west-1"\n', "at regon: unknown setting; did you mean 'region'?"),
        ('port = "5432"\n', "at port: must be a whole number, got '5432'"),
        ("kms_key_arn = 5\n", "at kms_key_arn: must be a string, got 5"),
        ("max_connections = true\n", "at max_connections: must be a whole number, got True"),
        ("[dev.tags]\nteam = 5\n", "at tags: must be a table of strings, got {'team': 5}"),
        ("provisioner = 'lamda'\n", "at provisioner: must be one of 'terraform', 'lambda', got 'lamda'"),
        ("provisioner_subnet = []\n", "at provisioner_subnet: unknown setting; did you mean 'provisioner_subnet_ids'?"),
        (
            "provisioner_subnet_ids = 'subnet-0c00000000000d001'\n",
            "at provisioner_subnet_ids: must be an array of strings, got 'subnet-0c00000000000d001'",
        ),
    ],
)
def test_rejects_bad_environment_tables(tmp_path, extra, expected):
    path = tmp_path / "environments.toml"
    path.write_text(ENVIRONMENT + extra)
    _, problems = load_environments(path)
    assert [f"{p.subject} at {p.at}: {p.message}" for p in problems] == [f"[dev] {expected}"]


def test_rejects_missing_required_settings(tmp_path):
    path = tmp_path / "environments.toml"
    path.write_text("[dev]\nregion = 'eu-west-1'\n")
    _, problems = load_environments(path)
    assert {p.at for p in problems} == {
        "account_id",
        "cluster_identifier",
        "endpoint",
        "master_secret_arn",
        "engine_version",
    }
    assert {p.message for p in problems} == {"is required; add it to the table"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[dev\n", "is not valid TOML: "),
        ("", "declares no environment; add a [dev] table"),
    ],
)
def test_rejects_unreadable_environment_files(tmp_path, text, expected):
    path = tmp_path / "environments.toml"
    path.write_text(text)
    _, [problem] = load_environments(path)
    assert problem.message.startswith(expected)


def test_reports_load_and_validation_problems_together(tmp_path):
    services_dir = write(
        tmp_path / "services",
        {
            "orders.py": """\
                from servicedb import Reads, Service
                SERVICE = Service(name="orders", reads=(Reads(service="biling"),), connection_limit=0)
            """,
            "broken.py": "SERVICE = (\n",
        },
    )
    environments = tmp_path / "environments.toml"
    environments.write_text(ENVIRONMENT.replace('"16.4"', '"sixteen"'))

    with pytest.raises(DeclarationError) as raised:
        load_declarations(services_dir, environments)

    assert str(raised.value) == "\n".join(
        [
            "services/broken.py: module: 1 problem",
            "  is not valid Python: '(' was never closed at line 1",
            "services/orders.py: Service(name='orders'): 2 problems",
            "  at connection_limit: must be between 1 and 5000, got 0",
            "  at reads[0].service: no service named 'biling' (declared: orders)",
            "environments.toml: [dev]: 1 problem",
            "  at engine_version: must look like '16.4', got 'sixteen'",
        ]
    )


NETWORK = """
[dev.network]
operator_vpc_id = "vpc-0a0000000000000a1"
operator_vpc_cidr = "10.100.0.0/16"
operator_route_table_ids = ["rtb-0a0000000000000a1"]
database_vpc_id = "vpc-0d0000000000000d1"
database_vpc_cidr = "10.0.0.0/16"
database_route_table_ids = ["rtb-0d0000000000000d1"]
cluster_security_group_id = "sg-0d0000000000000d1"
"""


def test_loads_the_repositorys_operator_networks(declarations):
    dev, prod = (declarations.environment(name).network for name in ("dev", "prod"))
    assert dev.host == OperatorHost.SSM
    assert dev.database_route_table_ids == ("rtb-0de0000000000d001", "rtb-0de0000000000d002")
    assert (prod.host, prod.operator_account_id, prod.operator_cidr) == (
        OperatorHost.CLOUD9,
        "333333333333",
        "10.200.1.0/24",
    )


def test_loads_a_network_table_with_arrays_and_an_enum(tmp_path):
    path = tmp_path / "environments.toml"
    path.write_text(ENVIRONMENT + NETWORK + 'operator_cidr = "10.100.1.0/24"\nhost = "cloud9"\n')
    [(environment, _)], problems = load_environments(path)
    assert problems == []
    assert environment.network.operator_route_table_ids == ("rtb-0a0000000000000a1",)
    assert environment.network.host is OperatorHost.CLOUD9
    assert environment.network_stack_name == "dev-operator-network"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'operator_cidrs = "10.100.1.0/24"\n',
            "at network.operator_cidrs: unknown setting; did you mean 'operator_cidr'?",
        ),
        ("host = 'ec2'\n", "at network.host: must be one of 'none', 'cloud9', 'ssm', got 'ec2'"),
        ("host_instance_type = 3\n", "at network.host_instance_type: must be a string, got 3"),
        (
            "host_https_egress_cidrs = '10.100.0.0/16'\n",
            "at network.host_https_egress_cidrs: must be an array of strings, got '10.100.0.0/16'",
        ),
        (
            "host_https_egress_cidrs = [16]\n",
            "at network.host_https_egress_cidrs: must be an array of strings, got [16]",
        ),
    ],
)
def test_rejects_bad_network_tables(tmp_path, extra, expected):
    path = tmp_path / "environments.toml"
    path.write_text(ENVIRONMENT + NETWORK + extra)
    _, problems = load_environments(path)
    assert [f"{p.subject} at {p.at}: {p.message}" for p in problems] == [f"[dev] {expected}"]


def test_rejects_a_network_that_is_not_a_table(tmp_path):
    path = tmp_path / "environments.toml"
    path.write_text(ENVIRONMENT + 'network = "vpc-0a0000000000000a1"\n')
    _, [problem] = load_environments(path)
    assert (problem.at, problem.message) == ("network", "must be a table of settings, got 'vpc-0a0000000000000a1'")


def test_rejects_a_network_table_without_its_required_settings(tmp_path):
    path = tmp_path / "environments.toml"
    path.write_text(ENVIRONMENT + "[dev.network]\noperator_vpc_id = 'vpc-0a0000000000000a1'\n")
    _, problems = load_environments(path)
    assert {p.at for p in problems} == {
        "network.operator_vpc_cidr",
        "network.operator_route_table_ids",
        "network.database_vpc_id",
        "network.database_vpc_cidr",
        "network.database_route_table_ids",
        "network.cluster_security_group_id",
        # and, at once, what is wrong with what is there
        "network.operator_security_group_id",
    }
    assert {p.message for p in problems if p.at != "network.operator_security_group_id"} == {
        "is required; add it to the table"
    }


def test_reports_network_validation_problems_with_the_file(tmp_path):
    services_dir = write(
        tmp_path / "services", {"orders.py": "from servicedb import Service\nSERVICE = Service(name='orders')\n"}
    )
    environments = tmp_path / "environments.toml"
    environments.write_text(ENVIRONMENT + NETWORK + 'operator_cidr = "0.0.0.0/0"\n')

    with pytest.raises(DeclarationError) as raised:
        load_declarations(services_dir, environments)

    assert str(raised.value) == (
        "environments.toml: [dev]: 1 problem\n"
        "  at network.operator_cidr: 0.0.0.0/0 would let every address reach the cluster; give the operator "
        "host's subnet, e.g. '10.100.1.0/24'"
    )


def test_loads_the_lambda_provisioner_of_the_tests_environment():
    path = Path(__file__).parent / "environments.toml"
    [(environment, _)], problems = load_environments(path)
    assert problems == []
    assert environment.provisioner is Provisioner.LAMBDA
    assert environment.provisioner_subnet_ids == ("subnet-0c00000000000d001", "subnet-0c00000000000d002")


GRANT = """\
    from datetime import UTC, datetime
    from servicedb import TemporaryAccess
    ACCESS = TemporaryAccess(
        person="jdoe",
        principal_arn="arn:aws:iam::111111111111:role/oncall-jdoe",
        environment="dev",
        service="orders",
        ticket="INC-123",
        valid_from=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        valid_until=datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
        {extra}
    )
"""
ORDERS = {"orders.py": "from servicedb import Service\nSERVICE = Service(name='orders')\n"}
WITH_FUNCTION_SUBNETS = (
    ENVIRONMENT
    + 'provisioner_subnet_ids = ["subnet-0d0000000000000d1"]\nprovisioner_security_group_id = "sg-0d0000000000000d2"\n'
)
"""Where break-glass grants are declared, the schedule that ends them needs the subnets it runs in."""


def test_loads_break_glass_grants_from_access_beside_services(tmp_path):
    write(tmp_path / "services", ORDERS)
    write(tmp_path / "access", {"2026-12-01-inc-123.py": GRANT.format(extra=""), "_notes.py": "X = 1\n"})
    (tmp_path / "environments.toml").write_text(WITH_FUNCTION_SUBNETS)
    declarations = load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    [(access, source)] = declarations.access
    assert source == os.path.join("access", "2026-12-01-inc-123.py")
    assert (access.person, access.service, access.environment) == ("jdoe", "orders", "dev")
    assert declarations.temporary_access == (access,)
    assert declarations.environment("dev").expiry_schedule_minutes == 5  # on, where grants are declared


def test_grants_without_the_subnets_of_the_expiry_schedule_say_how_to_turn_it_off(tmp_path):
    write(tmp_path / "services", ORDERS)
    write(tmp_path / "access", {"inc-1.py": GRANT.format(extra="")})
    (tmp_path / "environments.toml").write_text(ENVIRONMENT)
    with pytest.raises(DeclarationError) as raised:
        load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    [problem] = raised.value.problems
    assert (problem.subject, problem.at) == ("[dev]", "expiry_schedule_minutes")
    assert problem.message.startswith("access/ declares break-glass grants for dev, so the function")
    assert "or expiry_schedule_minutes = 0" in problem.message
    (tmp_path / "environments.toml").write_text(ENVIRONMENT + "expiry_schedule_minutes = 0\n")
    declarations = load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    assert declarations.environment("dev").expiry_schedule_minutes == 0


def test_no_grant_no_schedule(tmp_path):
    write(tmp_path / "services", ORDERS)
    (tmp_path / "environments.toml").write_text(ENVIRONMENT)
    declarations = load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    assert declarations.environment("dev").expiry_schedule_minutes == 0


def test_a_missing_access_directory_declares_no_grant(tmp_path):
    write(tmp_path / "services", ORDERS)
    (tmp_path / "environments.toml").write_text(ENVIRONMENT)
    assert load_declarations(tmp_path / "services", tmp_path / "environments.toml").access == ()
    assert load_access(tmp_path / "access") == ([], [])


def test_reports_grant_problems_with_the_others(tmp_path):
    write(tmp_path / "services", ORDERS)
    write(
        tmp_path / "access",
        {
            "inc-1.py": GRANT.format(extra='level="write",'),
            "inc-2.py": "ACCESS = (\n",
            "inc-3.py": "GRANT = 1\n",
        },
    )
    (tmp_path / "environments.toml").write_text(WITH_FUNCTION_SUBNETS)
    with pytest.raises(DeclarationError) as raised:
        load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    assert [(p.source, p.at, p.message.split(";")[0]) for p in raised.value.problems] == [
        (os.path.join("access", "inc-2.py"), "", "is not valid Python: '(' was never closed at line 1"),
        (os.path.join("access", "inc-3.py"), "", "defines no ACCESS"),
        (
            os.path.join("access", "inc-1.py"),
            "reason",
            "is required for level='write': say what must be written and why, e.g. "
            "reason='re-run the failed migration's backfill of orders.status'",
        ),
    ]


def problems_of(tmp_path: Path, services: dict[str, str], environments: str = ENVIRONMENT, access=None) -> str:
    write(tmp_path / "services", services)
    (tmp_path / "environments.toml").write_text(environments)
    if access:
        write(tmp_path / "access", access)
    with pytest.raises(DeclarationError) as raised:
        load_declarations(tmp_path / "services", tmp_path / "environments.toml")
    return str(raised.value)


def test_a_misspelt_field_names_its_line_and_the_field_it_is_close_to(tmp_path):
    message = problems_of(
        tmp_path,
        {
            "payments.py": "from servicedb import Service\n\n"
            "SERVICE = Service(\n    name='payments',\n    connection_limt=5,\n)\n"
        },
    )
    assert message.startswith(
        "services/payments.py: module: 1 problem\n  at line 3: Service() has no field 'connection_limt'; "
        "did you mean 'connection_limit'? (fields: name, reads, connection_limit,"
    )


def test_a_misspelt_name_says_which_one_to_import(tmp_path):
    message = problems_of(
        tmp_path,
        {
            "payments.py": "from servicedb import Service\n\n"
            "SERVICE = Service(name='payments', reads=(Read(service='x'),))\n"
        },
    )
    assert message == (
        "services/payments.py: module: 1 problem\n"
        "  at line 3: name 'Read' is not defined; did you mean 'Reads'? (from servicedb import Reads)"
    )


def test_a_read_of_a_misspelt_service_suggests_the_declared_one(tmp_path):
    message = problems_of(
        tmp_path,
        {
            "orders.py": "from servicedb import Service\nSERVICE = Service(name='orders')\n",
            "payments.py": "from servicedb import Reads, Service\n"
            "SERVICE = Service(name='payments', reads=(Reads(service='order'),))\n",
        },
    )
    assert (
        "at reads[0].service: no service named 'order'; did you mean 'orders'? (declared: orders, payments)" in message
    )


def test_a_missing_setting_hides_no_other_problem_of_its_table(tmp_path):
    environments = ENVIRONMENT.replace('endpoint = "dev-main.cluster-x.eu-west-1.rds.amazonaws.com"\n', "")
    environments += 'password_length = 10\n\n[dev.network]\noperator_vpc_id = "vpc-0a0000000000000a1"\n'
    environments += 'operator_vpc_cidr = "10.100.0.0/33"\noperator_route_table_ids = ["rtb-0a0000000000000a1"]\n'
    environments += 'database_vpc_id = "vpc-0d0000000000000d1"\ndatabase_vpc_cidr = "10.0.0.0/16"\n'
    environments += (
        'database_route_table_ids = ["rtb-0d0000000000000d1"]\noperator_security_group_id = "sg-0a0000000000000a1"\n'
    )
    message = problems_of(
        tmp_path, {"orders.py": "from servicedb import Service\nSERVICE = Service(name='orders')\n"}, environments
    )
    lines = message.splitlines()
    assert lines[0] == "environments.toml: [dev]: 4 problems"
    assert sorted(lines[1:]) == sorted(
        [
            "  at network.cluster_security_group_id: is required; add it to the table",
            "  at endpoint: is required; add it to the table",
            "  at password_length: must be between 32 and 128, got 10",
            "  at network.operator_vpc_cidr: must be an IPv4 CIDR block like '10.0.0.0/16', got '10.100.0.0/33'",
        ]
    )


def test_a_broken_environments_file_is_one_problem_not_many(tmp_path):
    grant = """
        from datetime import UTC, datetime
        from servicedb import TemporaryAccess
        ACCESS = TemporaryAccess(person="jdoe", principal_arn="arn:aws:iam::111111111111:role/oncall-jdoe",
            environment="dev", service="orders", ticket="INC-1",
            valid_from=datetime(2026, 1, 1, 9, 0, tzinfo=UTC), valid_until=datetime(2026, 1, 1, 10, 0, tzinfo=UTC))
    """
    message = problems_of(
        tmp_path,
        {"orders.py": "from servicedb import Service\nSERVICE = Service(name='orders')\n"},
        ENVIRONMENT + "[dev\n",
        access={"inc-1.py": grant},
    )
    assert message.startswith("environments.toml: environments: 1 problem\n  is not valid TOML:")
    assert "no environment named" not in message
