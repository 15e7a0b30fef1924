"""`servicedb access request`: the on-call engineer's one command writes a grant's declaration that
synth accepts, or refuses it as synth would and leaves nothing behind."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cdktf import Testing

from servicedb.app import build_app
from servicedb.cli import main
from servicedb.load import load_declarations

EXAMPLE = Path(__file__).resolve().parent / "example"
NOW = "2026-12-01T09:59:30+00:00"
REQUEST = [
    "access",
    "request",
    "--person",
    "jdoe",
    "--principal",
    "arn:aws:iam::222222222222:role/oncall-jdoe",
    "--env",
    "prod",
    "--service",
    "orders",
    "--ticket",
    "INC-9",
    "--hours",
    "3",
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("services", "access"):
        shutil.copytree(EXAMPLE / name, tmp_path / name)
    shutil.copy(EXAMPLE / "environments.toml", tmp_path / "environments.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SERVICEDB_NOW", NOW)
    return tmp_path


def run(*args: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    return main(list(args), out=lines.append), lines


def test_writes_a_grant_from_the_next_whole_minute_that_synth_plans(project: Path) -> None:
    code, lines = run(*REQUEST)
    assert code == 0
    path = project / "access" / "2026-12-01-inc-9-jdoe.py"
    assert lines[0] == (
        "-- wrote access/2026-12-01-inc-9-jdoe.py: pending: jdoe may read orders in prod (INC-9) from "
        "2026-12-01T10:00:00Z; nothing is created before then"
    )
    assert lines[2:] == [
        "git switch -c access/inc-9-jdoe",
        "git add access/2026-12-01-inc-9-jdoe.py",
        "git commit -m 'INC-9: jdoe may read orders in prod'",
        "git push -u origin access/inc-9-jdoe",
    ]
    declarations = load_declarations(project / "services", project / "environments.toml")
    [grant] = [a for a in declarations.temporary_access if a.ticket == "INC-9"]
    assert (grant.valid_from, grant.valid_until) == (
        datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
    )
    # Deployed after its start, the stack has its role, its secret and the expiry schedule.
    app = build_app(declarations, Testing.app(), now=datetime(2026, 12, 1, 10, 30, tzinfo=UTC))
    [prod] = [stack for stack in app.node.children if stack.node.id == "prod-database-access"]
    document = json.loads(Testing.synth(prod))
    roles = [r["name"] for r in document["resource"]["postgresql_role"].values()]
    assert "tmp_jdoe_orders_202612011000" in roles
    assert document["resource"]["aws_cloudwatch_event_rule"]
    assert path.read_text().startswith('"""INC-9: jdoe may read orders in prod until 2026-12-01 13:00 UTC."""')


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--service", "order"], "at service: no service named 'order'; did you mean 'orders'?"),
        (["--level", "write"], "at reason: is required for level='write'"),
        (["--hours", "30"], "at valid_until: the grant lasts 30 hours, longer than prod's maximum of 8"),
        (["--person", "J Doe"], "at person: "),
        (["--env", "staging"], "at environment: no environment named 'staging'"),
    ],
)
def test_refuses_as_synth_would_and_leaves_nothing(
    project: Path, change: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(path.name for path in (project / "access").iterdir())
    arguments = list(REQUEST)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in arguments:
            arguments[arguments.index(flag) + 1] = value
        else:
            arguments += [flag, value]
    code, lines = run(*arguments)
    assert code == 1
    assert lines == []
    error = capsys.readouterr().err
    assert error.startswith("servicedb access: fix these declarations first:\n")
    assert message in error
    assert sorted(path.name for path in (project / "access").iterdir()) == before


def test_a_second_request_for_the_same_grant_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*REQUEST)[0] == 0
    assert run(*REQUEST)[0] == 1
    assert "exists already: one declaration per grant" in capsys.readouterr().err
