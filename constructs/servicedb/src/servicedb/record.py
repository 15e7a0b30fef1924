"""The record of deployed services, `deployed.toml`: a deleted declaration never destroys data.

Terraform's `prevent_destroy` guards a resource only while its block is in the configuration
(hashicorp/terraform#17599): deleting `services/orders.py` would make the next deploy drop the
`orders` database with everything in it. The record lists every service the stacks may have
deployed, and its state: `active`, `retired` or `purged`. It is committed with the declarations
and reviewed like them. `cdktf synth` checks the declarations against it and refuses

- a service recorded `active` or `retired` whose declaration is gone: put it back with
  `retired=True` (keeps the data), or with `retired=True, purge=True` (drops it);
- a record that differs from what `servicedb record` writes (a new service, a changed state):
  run it and commit the file, so that what is deployed is always recorded on the branch.

`servicedb record` writes the record, and refuses a gone declaration the same way. A purged
service stays in the record as `purged`, and its declaration may then be deleted: a purged
service has no resources, declared or not.
"""

import tomllib
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

from servicedb.errors import Problem, display
from servicedb.spec import NAME_PATTERN, Service

HEADER = """\
# Every service the database-access stacks may have deployed, and its state. Written by
# `servicedb record` from services/; commit it with them. `cdktf synth` refuses a service recorded
# here as active or retired whose declaration is gone: Terraform would destroy its database.
"""

SUBJECT = "record of deployed services"


class State(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"
    """The data is kept; nobody logs in."""
    PURGED = "purged"
    """The database and roles are dropped; the declaration may be deleted."""


def state_of(service: Service) -> State:
    if service.purge:
        return State.PURGED
    return State.RETIRED if service.retired else State.ACTIVE


def read_record(path: Path) -> tuple[dict[str, State] | None, list[Problem]]:
    """The services a record lists, with their states; None when the file does not exist."""
    source = display(path)

    def problem(at: str, message: str) -> Problem:
        return Problem(source=source, subject=SUBJECT, at=at, message=message)

    try:
        document = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        return None, []
    except tomllib.TOMLDecodeError as error:
        # What was deployed is unknown until it reads again: `servicedb record` refuses too.
        return None, [problem("", f"is not valid TOML: {error}; restore it from version control")]

    problems = [problem(key, "unknown table; the record has only [services]") for key in document if key != "services"]
    table = document.get("services", {})
    if not isinstance(table, dict):
        return None, [*problems, problem("services", f"must be a table of service = state, got {table!r}")]
    allowed = ", ".join(repr(str(state)) for state in State)
    entries = {}
    for name, value in table.items():
        if not NAME_PATTERN.fullmatch(name):
            problems.append(problem(f"services.{name}", "is not a service name"))
        elif value not in [str(state) for state in State]:
            problems.append(problem(f"services.{name}", f"must be one of {allowed}, got {value!r}"))
        else:
            entries[name] = State(value)
    return entries, problems


def wanted_record(
    services: Iterable[tuple[object, str]], recorded: Mapping[str, State], *, services_dir: Path
) -> tuple[dict[str, State], list[Problem]]:
    """The record the declarations loaded from `services_dir` make, and a problem for each recorded
    service whose declaration is gone. A file that is there but did not load is not gone: its own
    problem says why."""
    declared = {
        service.name: state_of(service)
        for service, _ in services
        if isinstance(service, Service) and isinstance(service.name, str)
    }
    present = {path.stem for path in Path(services_dir).glob("*.py")}
    wanted = {name: state for name, state in recorded.items() if state == State.PURGED} | declared
    problems = []
    for name, state in sorted(recorded.items()):
        if name in declared or name in present or state == State.PURGED:
            continue
        problems.append(
            Problem(
                source=display(Path(services_dir) / f"{name}.py"),
                subject=f"Service(name={name!r})",
                at="",
                message=(
                    f"is gone, but the record lists {name} as {state}: the next deploy would destroy its "
                    f"database, schema and roles. Put the file back with retired=True to keep the data, or "
                    f"with retired=True, purge=True to drop it; once `servicedb record` lists it as purged, "
                    f"the file may go"
                ),
            )
        )
    return dict(sorted(wanted.items())), problems


def changes(recorded: Mapping[str, State], wanted: Mapping[str, State]) -> list[str]:
    """What differs, in words: `payments (new, active)`, `orders (active -> retired)`."""
    result = []
    for name, state in wanted.items():
        if name not in recorded:
            result.append(f"{name} (new, {state})")
        elif recorded[name] != state:
            result.append(f"{name} ({recorded[name]} -> {state})")
    return result


def record_problems(services: list[tuple[object, str]], *, services_dir: Path, record: Path) -> list[Problem]:
    """Why the declarations in `services_dir` may not be synthesized against `record`, if they may not."""
    recorded, problems = read_record(record)
    if recorded is None:
        if not problems:
            problems.append(
                Problem(
                    source=display(record),
                    subject=SUBJECT,
                    at="",
                    message="does not exist; run `servicedb record` to write it from the declarations, and commit it",
                )
            )
        return problems
    wanted, gone = wanted_record(services, recorded, services_dir=services_dir)
    problems += gone
    if differences := changes(recorded, wanted):
        problems.append(
            Problem(
                source=display(record),
                subject=SUBJECT,
                at="",
                message=(
                    f"is out of date: {', '.join(differences)}; run `servicedb record` and commit "
                    f"{display(record)} with the declarations"
                ),
            )
        )
    return problems


def write_record(path: Path, entries: Mapping[str, State]) -> None:
    lines = [HEADER, "[services]"]
    lines += [f'{name} = "{state}"' for name, state in sorted(entries.items())]
    Path(path).write_text("\n".join(lines) + "\n")
