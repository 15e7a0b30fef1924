"""The record of deployed services: a deleted declaration is refused before synth, never destroyed."""

from pathlib import Path

import pytest

from servicedb.app import main as synth_main
from servicedb.cli import main
from servicedb.load import load_services
from servicedb.record import State, read_record, record_problems

EXAMPLE = Path(__file__).resolve().parent / "example"


def declare(services: Path, name: str, **fields: object) -> None:
    arguments = "".join(f", {key}={value!r}" for key, value in fields.items())
    (services / f"{name}.py").write_text(
        f"from servicedb import Service\nSERVICE = Service(name={name!r}{arguments})\n"
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """services/ with orders and billing, recorded, in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "services").mkdir()
    declare(tmp_path / "services", "orders")
    declare(tmp_path / "services", "billing")
    assert record() == (
        0,
        "-- wrote deployed.toml: billing (new, active), orders (new, active); commit it with the declarations",
    )
    return tmp_path


def record(*args: str) -> tuple[int, str]:
    lines: list[str] = []
    code = main(["record", *args], out=lines.append)
    return code, "\n".join(lines)


def problems(project: Path) -> list[str]:
    services, _ = load_services(project / "services")
    found = record_problems(services, services_dir=Path("services"), record=Path("deployed.toml"))
    return [f"{p.source}: {p.subject}: {p.message}" for p in found]


def test_the_repositorys_record_is_up_to_date():
    services, _ = load_services(EXAMPLE / "services")
    assert record_problems(services, services_dir=EXAMPLE / "services", record=EXAMPLE / "deployed.toml") == []


def test_record_lists_every_service_and_its_state(project: Path):
    assert (project / "deployed.toml").read_text().endswith('[services]\nbilling = "active"\norders = "active"\n')
    assert record() == (0, "-- deployed.toml is up to date")
    assert problems(project) == []


def test_refuses_a_deleted_declaration_of_a_deployed_service(project: Path, capsys: pytest.CaptureFixture[str]):
    (project / "services" / "orders.py").unlink()
    gone = (
        "services/orders.py: Service(name='orders'): is gone, but the record lists orders as active: the next "
        "deploy would destroy its database, schema and roles. Put the file back with retired=True to keep the "
        "data, or with retired=True, purge=True to drop it; once `servicedb record` lists it as purged, the file "
        "may go"
    )
    assert problems(project) == [gone]
    assert record()[0] == 1
    assert (
        "servicedb record: fix these declarations first:\nservices/orders.py: Service(name='orders'): 1 problem\n"
        in (capsys.readouterr().err)
    )
    assert 'orders = "active"' in (project / "deployed.toml").read_text()


def test_cdktf_synth_refuses_a_deleted_declaration_and_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    (project / "environments.toml").write_text((EXAMPLE / "environments.toml").read_text())
    (project / "services" / "orders.py").unlink()
    monkeypatch.setenv("CDKTF_OUTDIR", str(project / "cdktf.out"))
    assert synth_main(Path("services"), Path("environments.toml"), Path("deployed.toml")) == 1
    error = capsys.readouterr().err
    assert error.startswith(
        "servicedb: refusing to synthesize; fix these declarations:\n"
        "services/orders.py: Service(name='orders'): 1 problem\n"
        "  is gone, but the record lists orders as active: the next deploy would destroy its database"
    )
    assert "Traceback" not in error
    assert not (project / "cdktf.out").exists()


def test_a_retired_service_is_recorded_and_still_may_not_go(project: Path):
    declare(project / "services", "orders", retired=True)
    assert problems(project) == [
        "deployed.toml: record of deployed services: is out of date: orders (active -> retired); run "
        "`servicedb record` and commit deployed.toml with the declarations"
    ]
    assert record() == (0, "-- wrote deployed.toml: orders (active -> retired); commit it with the declarations")
    (project / "services" / "orders.py").unlink()
    [message] = problems(project)
    assert "is gone, but the record lists orders as retired" in message


def test_a_purged_service_may_go_once_recorded(project: Path):
    declare(project / "services", "orders", retired=True, purge=True)
    assert record()[0] == 0
    (project / "services" / "orders.py").unlink()
    assert problems(project) == []
    assert record() == (0, "-- deployed.toml is up to date")
    assert read_record(Path("deployed.toml")) == ({"billing": State.ACTIVE, "orders": State.PURGED}, [])
    declare(project / "services", "orders")  # the name declared again: a new service
    assert record() == (0, "-- wrote deployed.toml: orders (purged -> active); commit it with the declarations")


def test_a_new_service_needs_the_record(project: Path):
    declare(project / "services", "payments")
    assert problems(project) == [
        "deployed.toml: record of deployed services: is out of date: payments (new, active); run `servicedb "
        "record` and commit deployed.toml with the declarations"
    ]


def test_a_declaration_that_fails_to_load_is_not_gone(project: Path):
    (project / "services" / "orders.py").write_text("SERVICE = (")
    assert problems(project) == []  # the file's own problem says what is wrong with it


def test_a_missing_record_is_refused(project: Path):
    (project / "deployed.toml").unlink()
    assert problems(project) == [
        "deployed.toml: record of deployed services: does not exist; run `servicedb record` to write it from the "
        "declarations, and commit it"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[services]\norders = "deleted"\n',
            "services.orders: must be one of 'active', 'retired', 'purged', got 'deleted'",
        ),
        ('[services]\nOrders = "active"\n', "services.Orders: is not a service name"),
        ('[services]\norders = "active"\n[extra]\n', "extra: unknown table; the record has only [services]"),
        ("services = 1\n", "services: must be a table of service = state, got 1"),
        ("[services\n", ": is not valid TOML: "),
    ],
)
def test_rejects_a_broken_record(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "deployed.toml"
    path.write_text(text)
    _, found = read_record(path)
    assert [f"{p.at}: {p.message}" for p in found][0].startswith(expected)
