"""The plan: which roles, grants, default privileges and secrets each service gets."""

import dataclasses
import re
import subprocess
import sys
from datetime import timedelta

import pytest

from servicedb.errors import DeclarationError
from servicedb.plan import (
    PUBLIC,
    DefaultPrivilege,
    Grant,
    Membership,
    ObjectType,
    PlanInvariantError,
    Role,
    RoleKind,
    Secret,
    check_invariants,
    plan_service,
    plan_services,
    role_names,
)
from servicedb.spec import Service

from factories import DURING_GRANT, GRANT_FROM, GRANT_UNTIL, environment, reading, temporary_access, with_service


@pytest.fixture
def wanted():
    return plan_services(
        [reading("orders", "billing", connection_limit=20), reading("billing"), reading("shipping", "orders")],
        environment(name="prod", kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"),
    )


def holdings(service_plan) -> set[tuple[str, str | None, str, tuple[str, ...]]]:
    return {(g.grantee, g.schema, g.object_type, g.privileges) for g in service_plan.grants}


def test_each_service_gets_its_own_roles_database_and_schema(wanted):
    orders = wanted.service("orders")
    assert [(r.name, r.login) for r in orders.roles] == [
        ("orders_owner", False),
        ("orders_app", True),
        ("orders_migrator", True),
        ("orders_writer", False),
        ("orders_reader", False),
    ]
    assert (orders.database.name, orders.database.owner) == ("orders", "orders_owner")
    assert (orders.schema.database, orders.schema.name, orders.schema.owner) == ("orders", "orders", "orders_owner")


def test_app_user_gets_dml_only_through_the_writer_role_and_its_limits(wanted):
    orders = wanted.service("orders")
    assert orders.app.connection_limit == 20
    assert orders.app.statement_timeout_ms == 30_000
    assert orders.app.idle_in_transaction_timeout_ms == 60_000
    assert orders.app.search_path == ("orders",)
    assert Membership(member="orders_app", role="orders_writer") in orders.memberships
    assert {h for h in holdings(orders) if h[0] == "orders_app"} == set()
    assert {h for h in holdings(orders) if h[0] == "orders_writer"} == {
        ("orders_writer", None, "database", ("CONNECT",)),
        ("orders_writer", "orders", "schema", ("USAGE",)),
        ("orders_writer", "orders", "table", ("SELECT", "INSERT", "UPDATE", "DELETE")),
        ("orders_writer", "orders", "sequence", ("USAGE", "SELECT", "UPDATE")),
        ("orders_writer", "orders", "function", ("EXECUTE",)),
    }
    assert not orders.writer.login


def test_migrator_becomes_the_owner_and_holds_nothing_of_its_own(wanted):
    orders = wanted.service("orders")
    assert orders.migrator.assume_role == "orders_owner"
    assert orders.migrator.inherit is False
    assert Membership(member="orders_migrator", role="orders_owner") in orders.memberships
    assert {h for h in holdings(orders) if h[0] == "orders_migrator"} == {
        ("orders_migrator", None, "database", ("CONNECT",)),
        ("orders_migrator", "orders", "schema", ("USAGE",)),
    }


def test_public_loses_everything_on_the_database_and_create_on_the_public_schema(wanted):
    orders = wanted.service("orders")
    assert {h for h in holdings(orders) if h[0] == PUBLIC} == {
        (PUBLIC, None, "database", ()),
        (PUBLIC, "public", "schema", ("USAGE",)),
        (PUBLIC, "orders", "function", ()),
    }


def test_no_privilege_is_ever_all(wanted):
    assert all("ALL" not in g.privileges for g in wanted.grants)
    assert all("ALL" not in d.privileges for s in wanted.services for d in s.default_privileges)


def test_default_privileges_cover_tables_the_owner_creates_later(wanted):
    orders = wanted.service("orders")
    assert {(d.owner, d.schema, d.object_type, d.grantee, d.privileges) for d in orders.default_privileges} == {
        ("orders_owner", "orders", "table", "orders_writer", ("SELECT", "INSERT", "UPDATE", "DELETE")),
        ("orders_owner", "orders", "sequence", "orders_writer", ("USAGE", "SELECT", "UPDATE")),
        ("orders_owner", "orders", "table", "orders_reader", ("SELECT",)),
        ("orders_owner", "orders", "sequence", "orders_reader", ("SELECT",)),
        # Functions: the writer may call them; PUBLIC loses EXECUTE in every schema, readers get none.
        ("orders_owner", None, "function", PUBLIC, ()),
        ("orders_owner", "orders", "function", "orders_writer", ("EXECUTE",)),
    }


def test_reads_are_memberships_of_the_producers_reader_role(wanted):
    assert wanted.reads == (
        Membership(member="orders_app", role="billing_reader"),
        Membership(member="shipping_app", role="orders_reader"),
    )
    assert {h for h in holdings(wanted.service("billing")) if h[0] == "billing_reader"} == {
        ("billing_reader", None, "database", ("CONNECT",)),
        ("billing_reader", "billing", "schema", ("USAGE",)),
        ("billing_reader", "billing", "table", ("SELECT",)),
        ("billing_reader", "billing", "sequence", ("SELECT",)),
    }


def test_every_table_has_a_single_writer(wanted):
    for grant in wanted.grants:
        if grant.object_type == ObjectType.TABLE and {"INSERT", "UPDATE", "DELETE"} & set(grant.privileges):
            assert grant.grantee == f"{grant.database}_writer"
    writer_members = {m.member for m in wanted.memberships if m.role.endswith("_writer")}
    assert writer_members == {f"{service.service}_app" for service in wanted.services}


def test_database_connection_limit_makes_room_for_readers(wanted):
    # orders: app 20 + migrator 2 + shipping's app 10 reading it + 3 for operators
    assert wanted.service("orders").database.connection_limit == 35
    assert wanted.service("shipping").database.connection_limit == 15


def test_one_secret_per_login_user_in_the_rds_shape(wanted):
    orders = wanted.service("orders")
    assert [(s.name, s.username, s.reader_role) for s in orders.secrets] == [
        ("servicedb/prod/orders/app", "orders_app", "prod-orders-execution"),
        ("servicedb/prod/orders/migrator", "orders_migrator", "prod-orders-execution"),
    ]
    assert orders.secrets[0].fields == {
        "engine": "postgres",
        "host": "test-main.cluster-abc.eu-west-1.rds.amazonaws.com",
        "port": 5432,
        "dbname": "orders",
        "username": "orders_app",
        "dbClusterIdentifier": "test-main",
    }
    assert orders.secrets[0].kms_key_arn == "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"


def test_migration_execution_role_can_differ():
    service = Service(name="orders", execution_role="orders-exec", migration_execution_role="orders-migrate")
    orders = plan_service(service, environment())
    assert [s.reader_role for s in orders.secrets] == ["orders-exec", "orders-migrate"]


def test_extensions_go_to_the_services_schema():
    orders = plan_service(Service(name="orders", extensions=("pgcrypto", "uuid-ossp")), environment())
    assert [(e.database, e.schema, e.name) for e in orders.extensions] == [
        ("orders", "orders", "pgcrypto"),
        ("orders", "orders", "uuid-ossp"),
    ]


def test_fails_to_plan_invalid_declarations():
    with pytest.raises(DeclarationError, match=r"at reads\[0\]\.service: no service named 'nope'"):
        plan_services([reading("orders", "nope")], environment())
    with pytest.raises(DeclarationError, match="at port: must be between 1 and 65535"):
        plan_service(Service(name="orders"), environment(port=70000))


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (
            Grant(
                database="billing",
                schema="billing",
                object_type=ObjectType.TABLE,
                grantee="orders_app",
                privileges=("INSERT",),
            ),
            "a second writer: orders_app holds INSERT on tables in billing.billing",
        ),
        (
            Grant(
                database="billing",
                schema="billing",
                object_type=ObjectType.SEQUENCE,
                grantee="orders_app",
                privileges=("USAGE",),
            ),
            "a second writer: orders_app holds USAGE on sequences in billing.billing",
        ),
        (
            Grant(
                database="billing",
                schema=None,
                object_type=ObjectType.DATABASE,
                grantee=PUBLIC,
                privileges=("CONNECT",),
            ),
            "PUBLIC is granted ('CONNECT',) (public holds CONNECT on database billing)",
        ),
        (
            Grant(
                database="billing",
                schema="billing",
                object_type=ObjectType.TABLE,
                grantee=PUBLIC,
                privileges=("SELECT",),
            ),
            "PUBLIC is granted ('SELECT',)",
        ),
    ],
)
def test_fails_a_plan_with_a_second_writer_or_a_public_grant(wanted, grant, expected):
    with pytest.raises(PlanInvariantError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_invariants(with_service(wanted, "billing", grants=wanted.service("billing").grants + (grant,)))


def test_fails_a_plan_with_foreign_write_default_privileges(wanted):
    billing = wanted.service("billing")
    leak = DefaultPrivilege(
        database="billing",
        schema="billing",
        owner="billing_owner",
        object_type=ObjectType.TABLE,
        grantee="orders_app",
        privileges=("UPDATE",),
    )
    broken = with_service(wanted, "billing", default_privileges=billing.default_privileges + (leak,))
    with pytest.raises(PlanInvariantError, match="default privileges let orders_app write billing.billing"):
        check_invariants(broken)


def test_fails_a_plan_granting_another_services_owner_role(wanted):
    broken = dataclasses.replace(wanted, reads=wanted.reads + (Membership(member="orders_app", role="billing_owner"),))
    with pytest.raises(PlanInvariantError, match="orders_app is granted billing_owner, which is not a reader role"):
        check_invariants(broken)


def test_fails_a_plan_where_a_login_user_has_no_secret(wanted):
    orders = wanted.service("orders")
    broken = with_service(wanted, "orders", secrets=orders.secrets[:1])
    with pytest.raises(PlanInvariantError, match="login user orders_migrator has 0 secrets, not 1"):
        check_invariants(broken)


def test_declarations_and_plan_import_nothing_from_cdktf():
    # The plan must outlive cdktf (archived upstream) and serve every adapter.
    code = (
        "import sys, servicedb, servicedb.spec, servicedb.access, servicedb.load, servicedb.plan, servicedb.network,"
        " servicedb.scan, servicedb.record, servicedb.app;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cdktf', 'constructs', 'jsii')"
        " or m.startswith('cdktf_')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_secret_read_policy_names_exactly_the_secret_and_the_key(wanted):
    secret = wanted.service("orders").secrets[0]
    policy = secret.read_policy("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf")
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadDatabaseSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"],
            },
            {
                "Sid": "DecryptDatabaseSecret",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": ["arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"],
                "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}},
            },
        ],
    }


SHOP = [reading("orders", "billing"), reading("billing")]


def plan_with(*grants, now=DURING_GRANT):
    return plan_services(SHOP, environment(), access=grants, now=now)


def test_a_live_read_grant_is_a_login_role_in_the_services_reader_role():
    wanted = plan_with(temporary_access())
    [grant] = wanted.temporary
    assert grant.role == Role(
        name="tmp_jdoe_orders_202612010900",
        kind=RoleKind.TEMPORARY,
        login=True,
        connection_limit=2,
        statement_timeout_ms=60_000,
        idle_in_transaction_timeout_ms=300_000,
        search_path=("orders",),
        valid_until=GRANT_UNTIL,
    )
    assert grant.role.valid_until_text == "2026-12-01 13:00:00+00"
    assert grant.membership == Membership(member="tmp_jdoe_orders_202612010900", role="orders_reader")
    assert grant.membership in wanted.memberships
    assert grant.role in wanted.roles
    # The grant's connections fit in the database: app 10 + migrator 2 + grant 2 + 3 for operators.
    assert wanted.service("orders").database.connection_limit == 17


def test_a_temporary_secret_is_read_by_the_persons_principal_alone():
    [grant] = plan_with(temporary_access()).temporary
    secret = grant.secret
    assert (secret.name, secret.username, secret.database) == (
        "servicedb/test/access/tmp_jdoe_orders_202612010900",
        "tmp_jdoe_orders_202612010900",
        "orders",
    )
    assert (secret.reader_role, secret.reader_principal_arn) == (None, "arn:aws:iam::123456789012:role/oncall-jdoe")
    assert secret.recovery_window_days == 0
    assert secret.resource_policy("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTemporaryAccessSecret",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/oncall-jdoe"},
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
            }
        ],
    }


def test_a_write_grant_is_a_member_of_the_services_writer_role():
    [grant] = plan_with(temporary_access(level="write", reason="fix INC-123")).temporary
    assert grant.membership == Membership(member="tmp_jdoe_orders_202612010900", role="orders_writer")


@pytest.mark.parametrize("now", [GRANT_FROM - timedelta(minutes=1), GRANT_UNTIL])
def test_a_pending_or_expired_grant_plans_nothing(now):
    assert plan_with(temporary_access(), now=now) == plan_with()


def test_grants_of_other_environments_plan_nothing_here():
    elsewhere = temporary_access(environment="prod", service="nothing_here_either")
    assert plan_with(elsewhere) == plan_with()


def test_fails_to_plan_a_write_grant_without_a_reason():
    with pytest.raises(DeclarationError, match="at reason: is required for level='write'"):
        plan_with(temporary_access(level="write"))


def with_grant(wanted, **changes):
    """`wanted` with its one temporary grant changed, as a bug in the planner might change it."""
    [grant] = wanted.temporary
    return dataclasses.replace(wanted, temporary=(dataclasses.replace(grant, **changes),))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"membership": Membership(member="tmp_jdoe_orders_202612010900", role="billing_reader")},
            "temporary role tmp_jdoe_orders_202612010900 is a member of ['billing_reader'], "
            "not of ['orders_reader'] only",
        ),
        (
            {"membership": Membership(member="tmp_jdoe_orders_202612010900", role="orders_writer")},
            "not of ['orders_reader'] only",
        ),
        (
            {"membership": Membership(member="tmp_jdoe_orders_202612010900", role="billing_writer")},
            "tmp_jdoe_orders_202612010900 is granted billing_writer, which is not a reader role",
        ),
        (
            {"membership": Membership(member="tmp_jdoe_orders_202612010900", role="orders_owner")},
            "not of ['orders_reader'] only",
        ),
    ],
)
def test_fails_a_plan_where_a_temporary_role_reaches_beyond_its_service_and_level(changes, expected):
    with pytest.raises(PlanInvariantError, match=re.escape(expected)):
        check_invariants(with_grant(plan_with(temporary_access()), **changes))


def test_a_write_grant_belongs_to_the_service_it_writes():
    # The writer role of orders may have a member that is not orders' app user: the grant's role,
    # which counts as orders'. The same role as a member of billing's writer is a second writer.
    wanted = plan_with(temporary_access(level="write", reason="fix INC-123"))
    check_invariants(wanted)
    billing = Membership(member="tmp_jdoe_orders_202612010900", role="billing_writer")
    with pytest.raises(PlanInvariantError, match="is granted billing_writer, which is not a reader role"):
        check_invariants(with_grant(wanted, membership=billing))


def test_fails_a_plan_where_a_temporary_role_holds_grants_or_is_granted():
    planned = plan_with(temporary_access())
    orders = planned.service("orders")
    direct = Grant(
        database="orders",
        schema="orders",
        object_type=ObjectType.TABLE,
        grantee="tmp_jdoe_orders_202612010900",
        privileges=("SELECT",),
    )
    with pytest.raises(PlanInvariantError, match="temporary role tmp_jdoe_orders_202612010900 holds a grant directly"):
        check_invariants(with_service(planned, "orders", grants=orders.grants + (direct,)))
    granted = dataclasses.replace(
        planned, reads=planned.reads + (Membership(member="billing_app", role="tmp_jdoe_orders_202612010900"),)
    )
    with pytest.raises(PlanInvariantError, match="billing_app is granted temporary role tmp_jdoe_orders_202612010900"):
        check_invariants(granted)


def test_fails_a_plan_where_a_temporary_role_never_expires_or_its_secret_leaks():
    planned = plan_with(temporary_access())
    [grant] = planned.temporary
    forever = dataclasses.replace(grant.role, valid_until=None)
    with pytest.raises(PlanInvariantError, match="temporary role tmp_jdoe_orders_202612010900 does not expire"):
        check_invariants(with_grant(planned, role=forever))
    shared = dataclasses.replace(grant.secret, reader_role="prod-orders-execution")
    with pytest.raises(PlanInvariantError, match="is not readable by arn:aws:iam::123456789012:role/oncall-jdoe alone"):
        check_invariants(with_grant(planned, secret=shared))


@pytest.fixture
def retiring():
    """billing retired, catalog purged; orders reads nothing retired, audit (retired) still declares its read."""
    return plan_services(
        [
            reading("orders"),
            reading("billing", retired=True),
            reading("catalog", retired=True, purge=True),
            reading("audit", "orders", retired=True),
        ],
        environment(),
    )


def test_a_retired_service_keeps_its_data_and_roles_but_nobody_logs_in(retiring):
    billing = retiring.service("billing")
    assert billing.retired
    assert [(r.name, r.login) for r in billing.roles] == [
        ("billing_owner", False),
        ("billing_app", False),
        ("billing_migrator", False),
        ("billing_writer", False),
        ("billing_reader", False),
    ]
    assert billing.login_users == ()
    assert billing.secrets == ()
    assert (billing.database.name, billing.schema.name) == ("billing", "billing")
    assert billing.grants == plan_service(Service(name="billing"), environment()).grants


def test_a_retired_service_reads_nothing_and_counts_for_no_reader(retiring):
    assert retiring.reads == ()
    assert retiring.service("orders").database.connection_limit == 10 + 2 + 3  # audit's app is not counted


def test_a_purged_service_is_wanted_nowhere(retiring):
    assert [s.service for s in retiring.services] == ["orders", "billing", "audit"]
    assert retiring.purged == ("catalog",)
    with pytest.raises(DeclarationError, match="at purge: a purged service has no plan"):
        plan_service(Service(name="catalog", retired=True, purge=True), environment())


def test_roles_are_dropped_owner_last():
    assert role_names("catalog") == (
        "catalog_app",
        "catalog_app_clone",
        "catalog_migrator",
        "catalog_writer",
        "catalog_reader",
        "catalog_owner",
    )


def test_fails_a_plan_where_a_retired_service_keeps_a_secret(retiring):
    secret = plan_service(Service(name="billing"), environment()).secrets[0]
    broken = with_service(retiring, "billing", secrets=(secret,))
    with pytest.raises(PlanInvariantError, match="secret servicedb/test/billing/app is for billing_app, which is not"):
        check_invariants(broken)


def test_fails_a_plan_where_a_purged_service_is_still_wanted(retiring):
    with pytest.raises(PlanInvariantError, match="purged service orders is still wanted"):
        check_invariants(dataclasses.replace(retiring, purged=("catalog", "orders")))


def test_fails_a_plan_where_a_secret_has_no_reader(wanted):
    orders = wanted.service("orders")
    broken = with_service(
        wanted, "orders", secrets=(dataclasses.replace(orders.secrets[0], reader_role=""),) + orders.secrets[1:]
    )
    with pytest.raises(PlanInvariantError, match="servicedb/prod/orders/app is not readable by exactly one role"):
        check_invariants(broken)


def test_fails_a_plan_whose_read_policy_has_a_wildcard(wanted, monkeypatch):
    def everything(self, secret_arn):
        return {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:*"], "Resource": ["*"]}],
        }

    monkeypatch.setattr(Secret, "read_policy", everything)
    with pytest.raises(PlanInvariantError, match="is not readable by exactly one role without a wildcard"):
        check_invariants(wanted)
