"""Property tests: whatever is declared, it is refused clearly, or its plan keeps every safety rule.

Hypothesis generates services (names valid and not, reads of known, unknown and retired services
and of themselves, limits and timeouts in and out of range, retirement and purge) and
environments (budgets, recovery windows, execution role formats, shared accounts). Each example
is validated and planned, never synthesized; the IAM policies of the synthesized stacks are
checked once, on the session's synth.
"""

import dataclasses
import re
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from servicedb.errors import DeclarationError
from servicedb.plan import PUBLIC, WRITE_PRIVILEGES, Grant, Membership, ObjectType, Plan, plan_services, wildcards
from servicedb.spec import IAM_ROLE_NAME_PATTERN, MAX_TIMEOUT_MS, Environment, Reads, Service, find_problems, validate

from factories import environment, with_service

EXAMPLES = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

KNOWN = ["orders", "billing", "catalog", "shipping", "a", "x_1"]
BAD_NAMES = ["Orders", "pg_orders", "rdsadmin", "postgres", "public", "o" * 55, 'or"ders', "orders\n", "", "9x", "a-b"]


def either(valid: st.SearchStrategy, invalid: st.SearchStrategy, broken: bool) -> st.SearchStrategy:
    """Only `valid` values in a clean example; in a broken one, `invalid` values too."""
    return st.one_of(valid, invalid) if broken else valid


@st.composite
def services(draw: st.DrawFn, name: object, others: list[str], broken: bool) -> Service:
    """A service; in a clean example only what the other declarations decide can be wrong: a read
    of a retired service, the budget, roles and secrets shared between environments."""
    limit = either(st.integers(1, 60), st.one_of(st.integers(-10, 6000), st.sampled_from([True, "10", 1.5])), broken)
    timeout = either(
        st.one_of(st.just(0), st.integers(100, MAX_TIMEOUT_MS)),
        st.one_of(st.integers(-5, 99), st.sampled_from([MAX_TIMEOUT_MS + 1, 1.5, "30"])),
        broken,
    )
    role = either(
        st.sampled_from([None, "orders-task", "shared-task"]),
        st.sampled_from(["arn:aws:iam::1:role/x", "has space"]),
        broken,
    )
    flag = either(st.booleans(), st.sampled_from(["yes", 1, None]), broken)
    # A clean example reads other declared services, once each.
    targets = either(
        st.sampled_from(others) if others else st.nothing(), st.sampled_from(["nope", name, ["orders"], None]), broken
    )
    retired = draw(st.one_of(st.just(False), flag))
    return Service(
        name=name,
        reads=tuple(
            Reads(service=target)
            for target in draw(st.lists(targets, max_size=min(3, len(others)) if not broken else 3, unique=not broken))
        ),
        connection_limit=draw(limit),
        migrator_connection_limit=draw(limit),
        statement_timeout_ms=draw(timeout),
        idle_in_transaction_timeout_ms=draw(timeout),
        migration_statement_timeout_ms=draw(timeout),
        execution_role=draw(role),
        migration_execution_role=draw(role),
        extensions=tuple(
            draw(st.lists(either(st.just("pgcrypto"), st.just("Bad Ext"), broken), max_size=2, unique=not broken))
        ),
        retired=retired,
        # Purge is valid only when retired: a clean example purges only retired services.
        purge=draw(flag) if retired is True or broken else False,
    )


@st.composite
def environments(draw: st.DrawFn, broken: bool) -> list[Environment]:
    result = []
    names = either(st.sampled_from(["dev", "prod"]), st.just("Prod"), broken)
    for name in draw(st.lists(names, min_size=1, max_size=2, unique=not broken)):
        result.append(
            environment(
                name=name,
                account_id=draw(either(st.sampled_from(["123456789012", "210987654321"]), st.just("12345"), broken)),
                max_connections=draw(
                    st.one_of(st.none(), st.integers(1, 600), st.integers(-1, 0) if broken else st.none())
                ),
                secret_recovery_window_days=draw(either(st.sampled_from([0, 7, 30]), st.sampled_from([3, 31]), broken)),
                secret_name_prefix=draw(either(st.sampled_from([None, "servicedb/"]), st.just("bad prefix"), broken)),
                execution_role_format=draw(
                    either(
                        st.sampled_from(["{env}-{service}-execution", "{service}-task"]),
                        st.sampled_from(["{team}-{service}", "{env}/{service}", "{0}", "{"]),
                        broken,
                    )
                ),
                password_length=draw(either(st.sampled_from([40, 128]), st.just(16), broken)),
                kms_key_arn=draw(st.sampled_from([None, "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"])),
            )
        )
    return result


@st.composite
def declarations(draw: st.DrawFn) -> tuple[list[Service], list[Environment]]:
    broken = draw(st.sampled_from([False, False, True]))
    bad_name = st.one_of(
        st.sampled_from(BAD_NAMES), st.text(alphabet=string.ascii_letters + string.digits + '_"-', max_size=70)
    )
    names = draw(st.lists(either(st.sampled_from(KNOWN), bad_name, broken), max_size=5, unique=not broken))
    declared = [
        draw(services(name, [other for other in names if other != name and isinstance(other, str)], broken))
        for name in names
    ]
    return declared, draw(environments(broken))


SOURCE = re.compile(r"services/.*\.py|environments\.toml", re.DOTALL)


def assert_clear(problem, service_fields: set[str], environment_fields: set[str]) -> None:
    """Where (file, declaration, field), and what: never an empty message or a Python error text."""
    assert SOURCE.fullmatch(problem.source), problem
    assert problem.subject.startswith(("Service(name=", "SERVICE", "[")), problem
    root = re.split(r"[.\[]", problem.at)[0]
    fields = environment_fields if problem.subject.startswith("[") else service_fields
    assert root in fields | {""}, problem
    assert problem.message and "Traceback" not in problem.message and "Error(" not in problem.message, problem


def writers(plan: Plan) -> dict[str, set[str]]:
    """Database to every role that can change data in it: by a grant, by default privileges, or as
    a member (at any depth) of a role that can."""
    direct: dict[str, set[str]] = {}
    for service in plan.services:
        for item in (*service.grants, *service.default_privileges):
            if WRITE_PRIVILEGES.get(item.object_type, frozenset()) & set(item.privileges):
                direct.setdefault(item.database, set()).add(item.grantee)
    members: dict[str, set[str]] = {}
    for membership in plan.memberships:
        members.setdefault(membership.role, set()).add(membership.member)
    result = {}
    for database, roles in direct.items():
        found, todo = set(roles), list(roles)
        while todo:
            for member in members.get(todo.pop(), ()):
                if member not in found:
                    found.add(member)
                    todo.append(member)
        result[database] = found
    return result


def assert_safe(plan: Plan, declared: list[Service]) -> None:
    service_of = {role.name: s.service for s in plan.services for role in s.roles}
    # A single writer per table: only the roles of the service that owns the database write in it.
    for database, roles in writers(plan).items():
        assert {service_of.get(role) for role in roles} == {database}, (database, roles)
    # No grant to PUBLIC, but USAGE on the `public` schema; no default privilege for PUBLIC, and
    # EXECUTE on the owner's functions taken from it in every schema; EXECUTE for the writer only.
    for grant in plan.grants:
        if grant.grantee == PUBLIC:
            allowed = {"USAGE"} if (grant.object_type, grant.schema) == (ObjectType.SCHEMA, PUBLIC) else set()
            assert set(grant.privileges) <= allowed, grant
    assert all(not d.privileges for s in plan.services for d in s.default_privileges if d.grantee == PUBLIC)
    for service in plan.services:
        assert (None, ObjectType.FUNCTION, PUBLIC, ()) in {
            (d.schema, d.object_type, d.grantee, d.privileges) for d in service.default_privileges
        }
        executing = {g.grantee for g in (*service.grants, *service.default_privileges) if "EXECUTE" in g.privileges}
        assert executing == {service.writer.name}
    for service in plan.services:
        # Every login user has exactly one secret, and every secret is a login user's.
        assert sorted(s.username for s in service.secrets) == sorted(u.name for u in service.login_users)
        for secret in service.secrets:
            # Readable by exactly one execution role, on exactly this secret, without a wildcard.
            assert IAM_ROLE_NAME_PATTERN.fullmatch(secret.reader_role), secret
            arn = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{secret.name}-AbCdEf"
            policy = secret.read_policy(arn)
            [read] = [s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
            assert read["Resource"] == [arn]
            assert wildcards(policy) == []
    retired = {s.name for s in declared if s.retired}
    assert {s.service for s in plan.services if s.retired} == retired - set(plan.purged)
    assert all(not s.login_users and not s.secrets for s in plan.services if s.retired)
    assert set(plan.purged) == {s.name for s in declared if s.purge}
    assert not set(plan.purged) & {s.service for s in plan.services}
    assert all(m.role.removesuffix("_reader") not in retired for m in plan.reads)


SERVICE_FIELDS = set(Service.__dataclass_fields__)
ENVIRONMENT_FIELDS = set(Environment.__dataclass_fields__)


@EXAMPLES
@given(declarations())
def test_every_declaration_is_refused_clearly_or_planned_safely(example):
    declared, declared_environments = example
    service_sources = [(s, f"services/{s.name if isinstance(s.name, str) else 'x'}.py") for s in declared]
    environment_sources = [(e, "environments.toml") for e in declared_environments]
    problems = find_problems(service_sources, environment_sources)
    event("refused" if problems else "planned")
    if problems:
        for problem in problems:
            assert_clear(problem, SERVICE_FIELDS, ENVIRONMENT_FIELDS)
        with pytest.raises(DeclarationError) as raised:
            validate(service_sources, environment_sources)
        assert raised.value.problems == tuple(problems)
        assert all(problem.message in str(raised.value) for problem in problems)
        # Planned from code, one environment at a time: refused, never with another error, or safe
        # (what is wrong may be between environments, which one environment does not show).
        for env in declared_environments:
            try:
                plan = plan_services(declared, env)
            except DeclarationError as error:
                assert error.problems
            else:
                assert_safe(plan, declared)
        return
    for env in declared_environments:
        assert_safe(plan_services(declared, env), declared)


def test_the_synthesized_read_policies_name_one_secret_each_without_wildcards(synthesized):
    for stack in ("dev-database-access", "prod-database-access"):
        resources = synthesized[stack]["resource"]
        # The secrets' read policies; the expiry function's own is tests/test_expiry.py's.
        policies = [p for p in resources["aws_iam_role_policy"].values() if p["name"].endswith("-secret-read")]
        for policy in policies:
            assert "*" not in policy["policy"] and "*" not in policy["role"], policy
        for name in resources["aws_secretsmanager_secret"]:
            readers = [p["role"] for p in policies if f"aws_secretsmanager_secret.{name}.arn" in p["policy"]]
            assert len(readers) == 1, (stack, name, readers)
        assert len(policies) == len(resources["aws_secretsmanager_secret"])


@pytest.mark.parametrize(
    "break_plan",
    [
        # A second writer through membership: orders' app user becomes a member of billing's.
        lambda plan: dataclasses.replace(plan, reads=(Membership(member="orders_app", role="billing_app"),)),
        # PUBLIC may connect to billing.
        lambda plan: with_grants(
            plan,
            "billing",
            Grant(
                database="billing",
                schema=None,
                object_type=ObjectType.DATABASE,
                grantee=PUBLIC,
                privileges=("CONNECT",),
            ),
        ),
        # A login user without its secret.
        lambda plan: with_service(plan, "orders", secrets=plan.service("orders").secrets[:1]),
    ],
    ids=["second-writer", "public-grant", "missing-secret"],
)
def test_the_safety_rules_catch_a_broken_plan(break_plan):
    services = [Service(name="orders", reads=(Reads(service="billing"),)), Service(name="billing")]
    plan = plan_services(services, environment())
    assert_safe(plan, services)
    with pytest.raises(AssertionError):
        assert_safe(break_plan(plan), services)


def with_grants(plan: Plan, name: str, *grants: Grant) -> Plan:
    return with_service(plan, name, grants=plan.service(name).grants + grants)
