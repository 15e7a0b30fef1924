"""`terraform_logins`: the environment's declaration, and the stack it gives. What the provider
does with it on a real server is in test_terraform_path.py."""

import json
from pathlib import Path

import pytest
from cdktf import Testing

from servicedb.construct import provider_login_of
from servicedb.load import load_declarations
from servicedb.plan import plan_services
from servicedb.spec import Service, find_problems
from servicedb.stack import DatabaseAccessStack

from factories import declare, environment, reading

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:servicedb/test/terraform-{}"
LOGINS = (("servicedb_terraform_1", ARN.format(1)), ("servicedb_terraform_2", ARN.format(2)))


def messages(**fields: object) -> list[str]:
    problems = find_problems([(Service(name="orders"), "services/orders.py")], [(environment(**fields), "env")])
    return [f"{p.at}: {p.message}" for p in problems]


@pytest.mark.parametrize(
    ("logins", "fields", "expected"),
    [
        ((("Terraform", ARN.format(1)),), {}, "terraform_logins.Terraform: must be a PostgreSQL user name"),
        ((("rds_terraform", ARN.format(1)),), {}, "terraform_logins.rds_terraform: must be a PostgreSQL user name"),
        ((("servicedb_terraform_1", "terraform-1"),), {}, "terraform_logins.servicedb_terraform_1: must be the ARN"),
        (
            (("servicedb_terraform_1", environment().master_secret_arn),),
            {},
            "terraform_logins.servicedb_terraform_1: is the master user's secret; each login has its own",
        ),
        (LOGINS, {"admin_iam_user": "servicedb_admin"}, "terraform_logins: logs in with passwords"),
        (
            LOGINS,
            {
                "provisioner": "lambda",
                "provisioner_subnet_ids": ("subnet-0a0000000000000a1",),
                "provisioner_security_group_id": "sg-0a0000000000000a1",
            },
            "terraform_logins: is for the postgresql provider",
        ),
    ],
)
def test_rejects_bad_logins(logins, fields, expected):
    [message] = messages(terraform_logins=logins, **fields)
    assert message.startswith(expected)


def test_logins_load_from_a_table_of_the_environment(tmp_path: Path):
    declare(tmp_path / "services", "orders")
    (tmp_path / "environments.toml").write_text(
        "[prod]\n"
        'region = "eu-west-1"\naccount_id = "123456789012"\ncluster_identifier = "prod-main"\n'
        'endpoint = "prod-main.cluster-x.eu-west-1.rds.amazonaws.com"\nengine_version = "16.4"\n'
        'master_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-x-AbCdEf"\n'
        "[prod.terraform_logins]\n"
        f'servicedb_terraform_2 = "{ARN.format(2)}"\nservicedb_terraform_1 = "{ARN.format(1)}"\n'
    )
    prod = load_declarations(tmp_path / "services", tmp_path / "environments.toml").environment("prod")
    assert prod.terraform_logins == LOGINS  # sorted by name: the hash picks by position


def test_a_service_keeps_its_login_whatever_else_is_declared():
    names = [f"service{index}" for index in range(200)]
    chosen = {name: provider_login_of(name, 4) for name in names}
    assert {provider_login_of(name, 4) for name in reversed(names)} == set(range(4))
    assert all(provider_login_of(name, 4) == login for name, login in chosen.items())
    assert max(list(chosen.values()).count(login) for login in range(4)) < 80  # spread, not piled on one


def test_each_service_goes_through_its_logins_provider():
    env = environment(terraform_logins=LOGINS)
    services = [reading("orders"), reading("billing", "orders"), reading("shipping", "orders"), reading("audit")]
    plan = plan_services(services, env)
    document = json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=plan), run_validations=True))
    blocks = {block.get("alias", ""): block for block in document["provider"]["postgresql"]}
    for user, arn in LOGINS:
        secret = f"data.aws_secretsmanager_secret_version.terraform_login_{user}"
        assert document["data"]["aws_secretsmanager_secret_version"][f"terraform_login_{user}"]["secret_id"] == arn
        assert blocks[user]["username"] == user
        assert blocks[user]["password"] == f"${{jsondecode({secret}.secret_string).password}}"
        assert {k: v for k, v in blocks[user].items() if k not in ("alias", "username", "password")} == {
            k: v for k, v in blocks[""].items() if k not in ("username", "password")
        }
    admin = blocks[""]["username"]
    names = [service.name for service in services]
    for type_, resources in document["resource"].items():
        if not type_.startswith("postgresql_"):
            continue
        for name, config in resources.items():
            [service] = [service for service in names if name.startswith(f"services_{service}_")]
            # A read is granted by the login of the service read from, which holds its reader role.
            login = LOGINS[provider_login_of(service, len(LOGINS))][0]
            assert config["provider"] == f"postgresql.{login}", name
    assert len({provider_login_of(service.name, len(LOGINS)) for service in services}) == 2
    for service in services:
        path = f"services_{service.name}_"
        grants = {
            name: config for name, config in document["resource"]["postgresql_grant"].items() if name.startswith(path)
        }
        memberships = document["resource"]["postgresql_grant_role"]
        assert [g["role"] for n, g in grants.items() if "cluster_admin_connect" in n] == [admin]
        assert [m["role"] for n, m in memberships.items() if n.startswith(f"{path}memberships_cluster_admin")] == [
            admin
        ]


def test_without_logins_the_admin_applies_everything():
    plan = plan_services([reading("orders"), reading("billing", "orders")], environment())
    document = json.loads(Testing.synth(DatabaseAccessStack(Testing.app(), plan=plan), run_validations=True))
    assert [block.get("alias") for block in document["provider"]["postgresql"]] == [None]
    assert {
        config["provider"]
        for type_, resources in document["resource"].items()
        if type_.startswith("postgresql_")
        for config in resources.values()
    } == {"postgresql"}
    assert not any("cluster_admin" in name for name in document["resource"]["postgresql_grant"])
