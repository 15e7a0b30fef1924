"""ServiceDatabase on a real TerraformStack, synthesized with the providers' validations."""

import pytest
from cdktf import TerraformOutput, Testing

from servicedb.construct import ServiceDatabase, ServiceDatabases, ecs_secrets
from servicedb.plan import plan_service, plan_services
from servicedb.spec import Service

from factories import environment, reading, resources, synth

KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def orders():
    """`orders` alone, with a customer KMS key."""
    service = plan_service(Service(name="orders", connection_limit=20), environment(kms_key_arn=KMS_KEY))
    constructs = {}

    def build(stack, providers):
        constructs["orders"] = ServiceDatabase(stack, "orders", plan=service, **providers)
        TerraformOutput(stack, "ecs_secrets", value=constructs["orders"].ecs_secrets)

    text, document = synth(build)
    return text, document, constructs["orders"]


@pytest.fixture(scope="module")
def shop():
    """Three services: orders reads billing, shipping reads orders."""
    wanted = plan_services(
        [reading("billing"), reading("orders", "billing"), reading("shipping", "orders")], environment()
    )
    return synth(lambda stack, providers: ServiceDatabases(stack, "services", plan=wanted, **providers))[1]


def test_resource_addresses_are_pinned(orders):
    # A changed address is a destroyed and recreated resource: change this list only on purpose,
    # with `moved` blocks for existing deployments.
    _, document, _ = orders
    assert sorted(f"{kind}.{name}" for kind, items in document["resource"].items() for name in items) == [
        "aws_iam_role_policy.orders_app_execution_role_policy_0743FDDE",
        "aws_iam_role_policy.orders_migrator_execution_role_policy_C9501A2C",
        "aws_secretsmanager_secret.orders_app_secret_0FB45CA3",
        "aws_secretsmanager_secret.orders_migrator_secret_2C6B1DDD",
        "aws_secretsmanager_secret_version.orders_app_secret_value_499C882E",
        "aws_secretsmanager_secret_version.orders_migrator_secret_value_CC6A2535",
        "postgresql_database.orders_database_E3C4CBAD",
        "postgresql_default_privileges.orders_default_privileges_function_public_3C62436E",
        "postgresql_default_privileges.orders_default_privileges_function_writer_80CF62F5",
        "postgresql_default_privileges.orders_default_privileges_sequence_reader_A06BBC22",
        "postgresql_default_privileges.orders_default_privileges_sequence_writer_F6BD58DB",
        "postgresql_default_privileges.orders_default_privileges_table_reader_C4089FD6",
        "postgresql_default_privileges.orders_default_privileges_table_writer_F259DF73",
        "postgresql_grant.orders_grants_admin_connect_02C915EA",
        "postgresql_grant.orders_grants_database_migrator_0C6FC265",
        "postgresql_grant.orders_grants_database_public_6978036E",
        "postgresql_grant.orders_grants_database_reader_D57FEF70",
        "postgresql_grant.orders_grants_database_writer_F18D2411",
        "postgresql_grant.orders_grants_public_schema_public_510DF68D",
        "postgresql_grant.orders_grants_schema_migrator_AD5DB025",
        "postgresql_grant.orders_grants_schema_reader_9FD26876",
        "postgresql_grant.orders_grants_schema_writer_B22A21D8",
        "postgresql_grant.orders_grants_sequence_reader_8A232439",
        "postgresql_grant.orders_grants_sequence_writer_5BAF962B",
        "postgresql_grant.orders_grants_table_reader_9DA15120",
        "postgresql_grant.orders_grants_table_writer_9C1C7E1D",
        "postgresql_grant_role.orders_memberships_admin_in_owner_D784DE93",
        "postgresql_grant_role.orders_memberships_app_in_writer_8C5C66F6",
        "postgresql_grant_role.orders_memberships_migrator_in_owner_B66388A2",
        "postgresql_role.orders_app_role_4553103E",
        "postgresql_role.orders_migrator_role_49126D82",
        "postgresql_role.orders_owner_role_99A16B76",
        "postgresql_role.orders_reader_role_743B5934",
        "postgresql_role.orders_writer_role_2AA2E0BC",
        "postgresql_schema.orders_schema_A6890076",
        "random_password.orders_app_password_4FABAFA7",
        "random_password.orders_migrator_password_18322EA1",
    ]


def test_owner_and_reader_roles_cannot_log_in(orders):
    text, _, _ = orders
    for name in ("orders_owner", "orders_writer", "orders_reader"):
        assert Testing.to_have_resource_with_properties(text, "postgresql_role", {"name": name, "login": False})


def test_app_user_has_its_limits_and_a_generated_password(orders):
    text, document, _ = orders
    assert Testing.to_have_resource_with_properties(
        text,
        "postgresql_role",
        {
            "name": "orders_app",
            "login": True,
            "connection_limit": 20,
            "statement_timeout": 30_000,
            "idle_in_transaction_session_timeout": 60_000,
            "search_path": ["orders"],
            "lifecycle": {"ignore_changes": ["roles"]},
        },
    )
    [app] = [r for r in resources(document, "postgresql_role").values() if r["name"] == "orders_app"]
    assert app["password"].startswith("${random_password.orders_app_password_")
    assert Testing.to_have_resource_with_properties(
        text,
        "random_password",
        {"length": 40, "special": True, "override_special": "-_.~", "min_lower": 1, "min_upper": 1, "min_numeric": 1},
    )


def test_migrator_logs_in_as_the_owner(orders):
    _, document, _ = orders
    [migrator] = [r for r in resources(document, "postgresql_role").values() if r["name"] == "orders_migrator"]
    assert migrator["inherit"] is False
    assert migrator["assume_role"].startswith("${postgresql_role.orders_owner_role_")
    [membership] = [
        m for m in resources(document, "postgresql_grant_role").values() if "orders_migrator_role_" in m["role"]
    ]
    assert membership["grant_role"].startswith("${postgresql_role.orders_owner_role_")


def test_app_user_writes_as_a_member_of_the_writer_role(orders):
    _, document, _ = orders
    [membership] = [m for m in resources(document, "postgresql_grant_role").values() if "orders_app_role_" in m["role"]]
    assert membership["grant_role"].startswith("${postgresql_role.orders_writer_role_")
    writes = [g for g in resources(document, "postgresql_grant").values() if "INSERT" in g["privileges"]]
    assert [g["role"] for g in writes] == ["${postgresql_role.orders_writer_role_2AA2E0BC.name}"]


def test_database_and_schema_belong_to_the_owner_role(orders):
    text, _, _ = orders
    owner = "${postgresql_role.orders_owner_role_99A16B76.name}"
    assert Testing.to_have_resource_with_properties(
        text, "postgresql_database", {"name": "orders", "owner": owner, "connection_limit": 25}
    )
    assert Testing.to_have_resource_with_properties(text, "postgresql_schema", {"name": "orders", "owner": owner})


def test_revokes_from_public_are_grants_of_nothing(orders):
    text, _, _ = orders
    assert Testing.to_have_resource_with_properties(
        text, "postgresql_grant", {"role": "public", "object_type": "database", "privileges": []}
    )
    assert Testing.to_have_resource_with_properties(
        text,
        "postgresql_grant",
        {"role": "public", "object_type": "schema", "schema": "public", "privileges": ["USAGE"]},
    )


def test_grants_on_one_database_run_one_after_another(orders):
    _, document, _ = orders
    chained = {**resources(document, "postgresql_grant"), **resources(document, "postgresql_default_privileges")}
    kinds = {
        name: kind
        for kind in ("postgresql_grant", "postgresql_default_privileges")
        for name in resources(document, kind)
    }
    first = [name for name, grant in chained.items() if "depends_on" not in grant]
    assert len(first) == 1
    # Each resource but the first depends on exactly one other, and following the chain from
    # the last resource visits every one of them.
    successor = {
        grant["depends_on"][0]: f"{kinds[name]}.{name}" for name, grant in chained.items() if "depends_on" in grant
    }
    assert all(len(grant.get("depends_on", [])) <= 1 for grant in chained.values())
    node, visited = f"{kinds[first[0]]}.{first[0]}", 1
    while node in successor:
        node, visited = successor[node], visited + 1
    assert visited == len(chained)


def test_secret_holds_the_rds_shape_with_the_password_by_reference(orders):
    text, document, _ = orders
    assert Testing.to_have_resource_with_properties(
        text,
        "aws_secretsmanager_secret",
        {"name": "servicedb/test/orders/app", "kms_key_id": KMS_KEY, "recovery_window_in_days": 7},
    )
    [value] = [v for name, v in resources(document, "aws_secretsmanager_secret_version").items() if "_app_" in name]
    assert value["secret_id"] == "${aws_secretsmanager_secret.orders_app_secret_0FB45CA3.id}"
    assert value["secret_string"] == (
        '${jsonencode({"engine" = "postgres", '
        '"host" = "test-main.cluster-abc.eu-west-1.rds.amazonaws.com", "port" = 5432, '
        '"dbname" = "orders", "username" = "orders_app", "dbClusterIdentifier" = "test-main", '
        '"password" = random_password.orders_app_password_4FABAFA7.result})}'
    )


def test_execution_role_reads_exactly_its_secret_with_kms_via_secrets_manager(orders):
    _, document, _ = orders
    [policy] = [p for name, p in resources(document, "aws_iam_role_policy").items() if "_app_" in name]
    assert policy["role"] == "test-orders-execution"
    assert policy["name"] == "servicedb-orders_app-secret-read"
    body = policy["policy"]
    assert '"Action" = ["secretsmanager:GetSecretValue"]' in body
    assert '"Resource" = [aws_secretsmanager_secret.orders_app_secret_0FB45CA3.arn]' in body
    assert f'"Resource" = ["{KMS_KEY}"]' in body
    assert '"kms:ViaService" = "secretsmanager.eu-west-1.amazonaws.com"' in body
    assert "*" not in body


def test_no_kms_statement_without_a_customer_key():
    service = plan_service(Service(name="orders"), environment())
    _, document = synth(lambda stack, providers: ServiceDatabase(stack, "orders", plan=service, **providers))
    for policy in resources(document, "aws_iam_role_policy").values():
        assert "kms:Decrypt" not in policy["policy"]
    for secret in resources(document, "aws_secretsmanager_secret").values():
        assert "kms_key_id" not in secret


def test_ecs_secrets_point_at_keys_of_the_app_secret(orders):
    _, document, _ = orders
    entries = document["output"]["ecs_secrets"]["value"]
    assert [e["name"] for e in entries] == ["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SECRET"]
    arn = "${aws_secretsmanager_secret.orders_app_secret_0FB45CA3.arn}"
    assert [e["valueFrom"] for e in entries] == [
        f"{arn}:host::",
        f"{arn}:port::",
        f"{arn}:dbname::",
        f"{arn}:username::",
        f"{arn}:password::",
        arn,
    ]


def test_ecs_secrets_take_a_prefix():
    assert ecs_secrets("arn:x", prefix="ORDERS_DB_")[0] == {"name": "ORDERS_DB_HOST", "valueFrom": "arn:x:host::"}


def test_grant_secret_read_adds_a_policy_for_another_role():
    service = plan_service(Service(name="orders"), environment())

    def build(stack, providers):
        database = ServiceDatabase(stack, "orders", plan=service, **providers)
        database.migrator.grant_secret_read("orders-ci-migrations", id_="ci_policy")

    _, document = synth(build)
    policies = resources(document, "aws_iam_role_policy")
    assert sorted(p["role"] for p in policies.values()) == [
        "orders-ci-migrations",
        "test-orders-execution",
        "test-orders-execution",
    ]


def test_reads_grant_the_producers_reader_role_to_the_consumers_app_user(shop):
    memberships = {
        name: (m["role"].split(".")[1], m["grant_role"].split(".")[1])
        for name, m in resources(shop, "postgresql_grant_role").items()
        if "_readers_" in name
    }
    assert sorted(memberships.values()) == [
        ("services_orders_app_role_61E2995E", "services_billing_reader_role_EA11862E"),
        ("services_shipping_app_role_7AC4471B", "services_orders_reader_role_C1B6E13F"),
    ]


def test_no_literal_password_anywhere(shop):
    for kind in ("postgresql_role", "aws_secretsmanager_secret_version"):
        for resource in resources(shop, kind).values():
            if "password" in resource:
                assert resource["password"].startswith("${random_password.")
            if "secret_string" in resource:
                assert '"password" = random_password.' in resource["secret_string"]


DATA = ("postgresql_database", "postgresql_schema", "postgresql_role")
"""What holds data or owns what does: never destroyed but by a purge."""


def test_what_holds_data_cannot_be_destroyed_and_the_rest_can(orders):
    _, document, _ = orders
    for kind, items in document["resource"].items():
        for name, resource in items.items():
            prevent_destroy = resource.get("lifecycle", {}).get("prevent_destroy", False)
            assert prevent_destroy == (kind in DATA), f"{kind}.{name}"
    assert len([name for kind in DATA for name in resources(document, kind)]) == 7  # database, schema, 5 roles


@pytest.fixture(scope="module")
def retired():
    """`orders`, retired."""
    service = plan_service(Service(name="orders", connection_limit=20, retired=True), environment(kms_key_arn=KMS_KEY))
    constructs = {}

    def build(stack, providers):
        constructs["orders"] = ServiceDatabase(stack, "orders", plan=service, **providers)

    text, document = synth(build)
    return text, document, constructs["orders"]


def test_a_retired_service_keeps_its_data_and_loses_its_secrets_and_ecs_access(retired, orders):
    _, document, database = retired
    addresses = sorted(f"{kind}.{name}" for kind, items in document["resource"].items() for name in items)
    _, active, _ = orders
    # The same addresses as when active, less the passwords, secrets and read policies: nothing is replaced.
    assert addresses == sorted(
        f"{kind}.{name}"
        for kind, items in active["resource"].items()
        for name in items
        if kind not in ("random_password", "aws_secretsmanager_secret", "aws_secretsmanager_secret_version")
        and kind != "aws_iam_role_policy"
    )
    for user in ("orders_app", "orders_migrator"):
        [role] = [r for r in resources(document, "postgresql_role").values() if r["name"] == user]
        assert role["login"] is False
        assert "password" not in role
        assert role["lifecycle"] == {"ignore_changes": ["roles"], "prevent_destroy": True}
    assert database.ecs_secrets == []
    assert database.secret_arn is None
    assert database.migrator.password is None
    with pytest.raises(ValueError, match="orders_migrator belongs to a retired service: it has no secret"):
        database.migrator.grant_secret_read("orders-ci-migrations", id_="ci_policy")


def test_a_renamed_construct_id_moves_its_resources_instead_of_replacing_them(orders):
    # The README's recipe: the old address of each resource, from the pinned list above.
    _, old, _ = orders
    old_database = next(iter(resources(old, "postgresql_database")))
    service = plan_service(Service(name="orders", connection_limit=20), environment(kms_key_arn=KMS_KEY))

    def build(stack, providers):
        renamed = ServiceDatabase(stack, "orders_database", plan=service, **providers)
        renamed.database.move_from_id(f"postgresql_database.{old_database}")

    _, document = synth(build)
    [new_database] = resources(document, "postgresql_database")
    assert document["moved"] == [
        {"from": f"postgresql_database.{old_database}", "to": f"postgresql_database.{new_database}"}
    ]
    assert resources(document, "postgresql_database")[new_database]["lifecycle"] == {"prevent_destroy": True}
