"""Reading declarations from disk: `services/*.py` and `environments.toml`.

`load_declarations` reads both, checks them with `spec.find_problems`, and raises one
`DeclarationError` with every problem found, from loading and from validation alike.
"""

import difflib
import importlib.util
import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from servicedb.errors import DeclarationError, Problem
from servicedb.spec import Environment, Service, find_problems


@dataclass(frozen=True, kw_only=True, slots=True)
class Declarations:
    """Validated services and environments, each service in the order of its file name."""

    services: tuple[Service, ...]
    environments: tuple[Environment, ...]

    def environment(self, name: str) -> Environment:
        for environment in self.environments:
            if environment.name == name:
                return environment
        declared = ", ".join(e.name for e in self.environments)
        raise KeyError(f"no environment named {name!r} (declared: {declared})")


def load_declarations(services_dir: Path, environments_file: Path) -> Declarations:
    services, problems = load_services(services_dir)
    environments, environment_problems = load_environments(environments_file)
    problems += environment_problems
    problems += find_problems(services, environments)
    if problems:
        raise DeclarationError(problems)
    return Declarations(
        services=tuple(service for service, _ in services),
        environments=tuple(environment for environment, _ in environments),
    )


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def load_services(directory: Path) -> tuple[list[tuple[object, str]], list[Problem]]:
    """Import every `*.py` in `directory` not starting with `_`; each must define `SERVICE`."""
    directory = Path(directory)
    if not directory.is_dir():
        problem = Problem(
            source=display(directory),
            subject="services directory",
            at="",
            message="does not exist; create it with one <name>.py per service",
        )
        return [], [problem]

    services: list[tuple[object, str]] = []
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        service, file_problems = load_service_file(path)
        problems += file_problems
        if service is not None:
            services.append((service, display(path)))
    return services, problems


def load_service_file(path: Path) -> tuple[object, list[Problem]]:
    """The `SERVICE` a file declares (validated later, with all others), or why there is none."""
    source = display(path)

    def problem(message: str) -> list[Problem]:
        return [Problem(source=source, subject="module", at="", message=message)]

    try:
        module = import_file(path)
    except SyntaxError as error:
        return None, problem(f"is not valid Python: {error.msg} at line {error.lineno}")
    except Exception as error:  # a declaration may fail in any way; report it with its file
        return None, problem(f"failed to import: {type(error).__name__}: {error}")
    if not hasattr(module, "SERVICE"):
        return None, problem("defines no SERVICE; add SERVICE = Service(name=...) (see services/orders.py)")

    service = module.SERVICE
    if isinstance(service, Service) and isinstance(service.name, str) and service.name != path.stem:
        mismatch = Problem(
            source=source,
            subject=f"Service(name={service.name!r})",
            at="name",
            message=f"must equal the file name {path.stem!r}; rename the file or the service",
        )
        return service, [mismatch]
    return service, []


def import_file(path: Path) -> types.ModuleType:
    name = f"servicedb_declarations.{path.parent.name}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_environments(path: Path) -> tuple[list[tuple[Environment, str]], list[Problem]]:
    """Read one table per environment from a TOML file; unknown or missing keys are problems."""
    path = Path(path)
    source = display(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return [], [Problem(source=source, subject="environments", at="", message="file not found")]
    except tomllib.TOMLDecodeError as error:
        return [], [Problem(source=source, subject="environments", at="", message=f"is not valid TOML: {error}")]

    environments: list[tuple[Environment, str]] = []
    problems: list[Problem] = []
    if not document:
        problems.append(
            Problem(source=source, subject="environments", at="", message="declares no environment; add a [dev] table")
        )
    for name, table in document.items():
        environment, table_problems = environment_from_table(name, table, source=source)
        problems += table_problems
        if environment is not None:
            environments.append((environment, source))
    return environments, problems


ENVIRONMENT_FIELDS = {f.name: f for f in fields(Environment) if f.name != "name"}
ENVIRONMENT_TYPES = typing.get_type_hints(Environment)
TYPE_NAMES = {str: "a string", int: "a whole number"}


def environment_from_table(name: str, table: object, *, source: str) -> tuple[Environment | None, list[Problem]]:
    subject = f"[{name}]"
    if not isinstance(table, dict):
        message = f"must be a table of settings, got {table!r}"
        return None, [Problem(source=source, subject=subject, at="", message=message)]

    problems = []
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in ENVIRONMENT_FIELDS:
            close = difflib.get_close_matches(key, ENVIRONMENT_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(ENVIRONMENT_FIELDS)}"
            problems.append(Problem(source=source, subject=subject, at=key, message=f"unknown setting; {hint}"))
            continue
        if key == "tags":
            if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                problems.append(
                    Problem(
                        source=source, subject=subject, at=key, message=f"must be a table of strings, got {value!r}"
                    )
                )
                continue
            value = tuple(sorted(value.items()))
        else:
            expected = next(t for t in typing.get_args(ENVIRONMENT_TYPES[key]) or (ENVIRONMENT_TYPES[key],))
            if isinstance(value, bool) or not isinstance(value, expected):
                problems.append(
                    Problem(
                        source=source,
                        subject=subject,
                        at=key,
                        message=f"must be {TYPE_NAMES[expected]}, got {value!r}",
                    )
                )
                continue
        values[key] = value

    for key, spec_field in ENVIRONMENT_FIELDS.items():
        required = spec_field.default is MISSING and spec_field.default_factory is MISSING
        if required and key not in table:
            problems.append(Problem(source=source, subject=subject, at=key, message="is required; add it to the table"))

    if problems:
        return None, problems
    return Environment(name=name, **values), []
