"""Break-glass declarations: what a grant may be, its role name, when it is live, and the clock."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from servicedb.access import (
    ROLE_PATTERN,
    AccessLevel,
    AccessStatus,
    TemporaryAccess,
    current_time,
    find_access_problems,
    notice,
    temporary_role_name,
)
from servicedb.errors import DeclarationError
from servicedb.plan import RoleKind, role_name
from servicedb.spec import find_problems

from factories import DURING_GRANT, GRANT_FROM, GRANT_UNTIL, environment, temporary_access


def messages(*declared: object, services=("orders", "billing"), environments=None) -> list[str]:
    """`at <path>: <message>` of every problem, for declarations from `access/<n>.py`."""
    environments = environments or [environment()]
    problems = find_access_problems(
        [(access, f"access/{index}.py") for index, access in enumerate(declared)],
        services=set(services),
        environments={e.name: e for e in environments},
    )
    return [f"{p.source} at {p.at}: {p.message}" for p in problems]


def test_a_valid_read_grant_has_no_problems():
    access = temporary_access()
    assert messages(access) == []
    assert access.level == AccessLevel.READ
    assert access.role_name == "tmp_jdoe_orders_202612010900"


@pytest.mark.parametrize("reason", ["", "   "])
def test_rejects_a_write_grant_without_a_reason(reason):
    [message] = messages(temporary_access(level="write", reason=reason))
    assert message.startswith("access/0.py at reason: is required for level='write': say what must be written")


def test_accepts_a_write_grant_with_a_reason():
    access = temporary_access(level="write", reason="re-run the backfill of orders.status after INC-123")
    assert messages(access) == []
    assert access.level == AccessLevel.WRITE


def test_rejects_a_grant_longer_than_the_environments_maximum():
    nine_hours = temporary_access(valid_until=GRANT_FROM + timedelta(hours=9))
    [message] = messages(nine_hours)
    assert message == (
        "access/0.py at valid_until: the grant lasts 9 hours, longer than test's maximum of 8 "
        "(max_temporary_access_hours); shorten it, and declare a new grant for the time after, reviewed again"
    )
    assert messages(temporary_access(valid_until=GRANT_FROM + timedelta(hours=8))) == []
    strict = environment(max_temporary_access_hours=2)
    [message] = messages(temporary_access(), environments=[strict])
    assert "the grant lasts 4 hours, longer than test's maximum of 2" in message


@pytest.mark.parametrize("until", [GRANT_FROM, GRANT_FROM - timedelta(minutes=1)])
def test_rejects_a_grant_that_ends_before_it_starts(until):
    [message] = messages(temporary_access(valid_until=until))
    assert f"at valid_until: {until:%Y-%m-%dT%H:%M}:00Z is not after valid_from 2026-12-01T09:00:00Z" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("person", "JDoe", "at person: must be the person's handle, 2 to 24 lowercase letters and digits"),
        ("person", "j_doe", "at person: must be the person's handle"),
        ("person", "j" * 25, "at person: must be the person's handle"),
        ("person", "jdoe\n", "at person: must be the person's handle"),
        ("principal_arn", "oncall-jdoe", "at principal_arn: must be the person's IAM role or user ARN"),
        ("principal_arn", "arn:aws:iam::123456789012:group/oncall", "at principal_arn: must be"),
        ("principal_arn", "arn:aws:iam::123456789012:role/oncall\n", "at principal_arn: must be"),
        ("environment", "staging", "at environment: no environment named 'staging' (declared: test)"),
        (
            "service",
            "ordres",
            "at service: no service named 'ordres'; did you mean 'orders'? (declared: billing, orders)",
        ),
        ("ticket", "", "at ticket: must name the incident or ticket this access is for"),
        ("ticket", "INC-1\nmore", "at ticket: must be one line of at most 200 characters"),
        ("level", "admin", "at level: must be one of 'read', 'write', got 'admin'"),
        ("connection_limit", 0, "at connection_limit: must be between 1 and 10, got 0"),
        ("statement_timeout_ms", -1, "at statement_timeout_ms: must be between 0 and 86400000, got -1"),
        ("valid_from", datetime(2026, 12, 1, 9, 0), "at valid_from: must be a datetime with a time zone"),
        ("valid_until", "2026-12-01T13:00Z", "at valid_until: must be a datetime with a time zone"),
        ("valid_from", GRANT_FROM.replace(second=30), "at valid_from: must be a whole minute"),
    ],
)
def test_rejects_invalid_fields(field, value, expected):
    [message] = messages(temporary_access(**{field: value}))
    assert expected in message


def test_reports_every_problem_of_a_declaration_at_once():
    bad = temporary_access(person="J", level="write", ticket="", valid_until=GRANT_FROM)
    assert [m.split(":")[0] for m in messages(bad)] == [
        "access/0.py at person",
        "access/0.py at ticket",
        "access/0.py at reason",
        "access/0.py at valid_until",
    ]


def test_rejects_anything_but_a_temporary_access():
    assert messages({"person": "jdoe"}) == ["access/0.py at : must be a servicedb.TemporaryAccess(...), got dict"]


def test_rejects_two_grants_with_one_role_name():
    first, second = temporary_access(), temporary_access(level="write", reason="fix it")
    [message] = messages(first, second)
    assert message == (
        "access/1.py at valid_from: gives role tmp_jdoe_orders_202612010900, which access/0.py already declares in "
        "test; one grant per person, service and start minute"
    )
    assert messages(first, temporary_access(valid_from=GRANT_FROM + timedelta(minutes=1))) == []


def test_role_name_is_in_utc_and_fits_postgresqls_63_bytes():
    paris = timezone(timedelta(hours=1))
    assert temporary_role_name("jdoe", "orders", datetime(2026, 12, 1, 10, 0, tzinfo=paris)) == (
        "tmp_jdoe_orders_202612010900"
    )
    long_service, other = "o" * 54, "o" * 53 + "x"
    name = temporary_role_name("j" * 24, long_service, GRANT_FROM)
    assert len(name) == 63
    assert name.startswith("tmp_" + "j" * 24 + "_oooooooooooooo_") and name.endswith("_202612010900")
    assert name != temporary_role_name("j" * 24, other, GRANT_FROM)
    assert ROLE_PATTERN.match(name)


@pytest.mark.parametrize("service", ["orders", "tmp", "tmp_jdoe_orders_202612010900", "o" * 54])
def test_no_service_role_looks_like_a_temporary_role(service):
    assert ROLE_PATTERN.match(temporary_role_name("jdoe", service, GRANT_FROM))
    for kind in RoleKind:
        if kind != RoleKind.TEMPORARY:
            assert not ROLE_PATTERN.match(role_name(service, kind))


def test_a_grant_is_live_from_its_start_until_its_end():
    access = temporary_access()
    assert access.status(GRANT_FROM - timedelta(minutes=1)) == AccessStatus.PENDING
    assert access.status(GRANT_FROM) == AccessStatus.LIVE
    assert access.status(DURING_GRANT) == AccessStatus.LIVE
    assert access.status(GRANT_UNTIL) == AccessStatus.EXPIRED


def test_notice_says_what_a_declaration_does_now():
    access = temporary_access()
    assert notice(access, "access/inc-123.py", DURING_GRANT) == (
        "access/inc-123.py: live: jdoe may read orders in test (INC-123) until 2026-12-01T13:00:00Z "
        "as tmp_jdoe_orders_202612010900"
    )
    assert "pending: jdoe may read orders in test (INC-123) from 2026-12-01T09:00:00Z" in notice(
        access, "x", GRANT_FROM - timedelta(days=1)
    )
    assert "expired at 2026-12-01T13:00:00Z" in notice(access, "x", GRANT_UNTIL)


def test_record_has_who_what_why_from_and_until():
    record = temporary_access(level="write", reason="fix INC-123").record()
    assert record == {
        "role": "tmp_jdoe_orders_202612010900",
        "person": "jdoe",
        "principal_arn": "arn:aws:iam::123456789012:role/oncall-jdoe",
        "environment": "test",
        "service": "orders",
        "level": "write",
        "ticket": "INC-123",
        "reason": "fix INC-123",
        "valid_from": "2026-12-01T09:00:00Z",
        "valid_until": "2026-12-01T13:00:00Z",
    }


def test_servicedb_now_fixes_the_clock():
    assert current_time({"SERVICEDB_NOW": "2026-12-01T10:30:00+00:00"}) == DURING_GRANT
    assert current_time({"SERVICEDB_NOW": "2026-12-01T11:30:00+01:00"}) == DURING_GRANT
    assert abs(current_time({}) - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize("value", ["tomorrow", "2026-12-01T10:30:00"])
def test_rejects_a_servicedb_now_without_a_time_zone(value):
    with pytest.raises(DeclarationError, match=r"\$SERVICEDB_NOW: environment variable: 1 problem\n  must be an ISO"):
        current_time({"SERVICEDB_NOW": value})


@pytest.mark.parametrize("hours", [0, 169, "8"])
def test_rejects_an_environment_maximum_out_of_range(hours):
    problems = find_problems([], [(environment(max_temporary_access_hours=hours), "environments.toml")])
    assert [p.at for p in problems] == ["max_temporary_access_hours"]


def test_declarations_are_frozen_values():
    access = temporary_access()
    with pytest.raises(AttributeError):
        access.person = "someone"  # type: ignore[misc]
    assert isinstance(access, TemporaryAccess)
