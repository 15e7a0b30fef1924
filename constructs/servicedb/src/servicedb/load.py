"""Reading declarations from disk: `services/*.py`, `environments.toml` and `access/*.py`.

`load_declarations` reads them all, checks them with `spec.find_problems` and
`access.find_access_problems`, and raises one `DeclarationError` with every problem found, from
loading and from validation alike.
"""

import dataclasses
import difflib
import enum
import importlib.util
import re
import tomllib
import traceback
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from servicedb.access import TemporaryAccess, find_access_problems
from servicedb.errors import DeclarationError, Problem, did_you_mean, display
from servicedb.record import record_problems
from servicedb.spec import Environment, Reads, Service, environment_problems, find_problems


@dataclass(frozen=True, kw_only=True, slots=True)
class Declarations:
    """Validated services and environments, each service in the order of its file name."""

    services: tuple[Service, ...]
    environments: tuple[Environment, ...]
    access: tuple[tuple[TemporaryAccess, str], ...] = ()
    """Break-glass grants, each with the file it came from, in the order of the file names."""

    @property
    def temporary_access(self) -> tuple[TemporaryAccess, ...]:
        """The break-glass grants, without their files."""
        return tuple(access for access, _ in self.access)

    def environment(self, name: str) -> Environment:
        for environment in self.environments:
            if environment.name == name:
                return environment
        names = [e.name for e in self.environments]
        raise KeyError(f"no environment named {name!r}{did_you_mean(name, names)} (declared: {', '.join(names)})")


def load_declarations(
    services_dir: Path, environments_file: Path, access_dir: Path | None = None, *, record: Path | None = None
) -> Declarations:
    """Everything declared; `access_dir` defaults to `access/` beside `services_dir`. Checked
    against the record of deployed services too when `record` is given (the Terraform path: see
    `servicedb.record`)."""
    services, problems = load_services(services_dir)
    environments, environment_problems = load_environments(environments_file)
    access, access_problems = load_access(access_dir or default_access_dir(services_dir))
    problems += environment_problems + access_problems
    problems += find_problems(services, environments)
    # An environment that did not read is not missing: say what is wrong with it, once.
    unreadable: set[str] | None = {p.subject.strip("[]") for p in environment_problems if p.subject.startswith("[")}
    if any(p.subject == "environments" for p in environment_problems):
        unreadable = None  # the file itself did not read
    problems += find_access_problems(
        access,
        services={s.name for s, _ in services if isinstance(s, Service)},
        environments={e.name: e for e, _ in environments},
        unreadable=unreadable,
    )
    if record is not None:
        problems += record_problems(services, services_dir=services_dir, record=record)
    environments, expiry_problems = with_expiry_schedules(environments, access)
    problems += expiry_problems
    if problems:
        raise DeclarationError(problems)
    return Declarations(
        services=tuple(service for service, _ in services),
        environments=tuple(environment for environment, _ in environments),
        access=tuple(access),  # type: ignore[arg-type]  # validated above
    )


DEFAULT_EXPIRY_MINUTES = 5


def with_expiry_schedules(
    environments: list[tuple[Environment, str]], access: list[tuple[object, str]]
) -> tuple[list[tuple[Environment, str]], list[Problem]]:
    """Each environment with its expiry schedule decided: left out, every 5 minutes where `access/`
    declares a grant for it, else none; and the problems of the schedules so decided."""
    granted = {getattr(grant, "environment", None) for grant, _ in access}
    resolved, problems = [], []
    for environment, source in environments:
        if environment.expiry_schedule_minutes is None:
            minutes = DEFAULT_EXPIRY_MINUTES if environment.name in granted else 0
            environment = dataclasses.replace(environment, expiry_schedule_minutes=minutes)
            problems += [
                dataclasses.replace(
                    problem,
                    message=f"access/ declares break-glass grants for {environment.name}, so {problem.message}",
                )
                for problem in environment_problems(environment, source=source)
                if problem.at == "expiry_schedule_minutes"
            ]
        resolved.append((environment, source))
    return resolved, problems


def default_access_dir(services_dir: Path) -> Path:
    """`access/`, beside the services directory."""
    return Path(services_dir).parent / "access"


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
    service, problems = declared_in(path, "SERVICE", "add SERVICE = Service(name=...) (see services/orders.py)")
    if problems:
        return None, problems
    if isinstance(service, Service) and isinstance(service.name, str) and service.name != path.stem:
        mismatch = Problem(
            source=source,
            subject=f"Service(name={service.name!r})",
            at="name",
            message=f"must equal the file name {path.stem!r}; rename the file or the service",
        )
        return service, [mismatch]
    return service, []


def declared_in(path: Path, variable: str, how: str) -> tuple[object, list[Problem]]:
    """What a declaration file assigns to `variable`, or why it cannot be read (`how` says how to fix it)."""

    def problem(message: str) -> list[Problem]:
        return [Problem(source=display(path), subject="module", at="", message=message)]

    try:
        module = import_file(path)
    except SyntaxError as error:
        return None, problem(f"is not valid Python: {error.msg} at line {error.lineno}")
    except Exception as error:  # a declaration may fail in any way; report it with its file and line
        return None, problem(import_failure(path, error))
    if not hasattr(module, variable):
        return None, problem(f"defines no {variable}; {how}")
    return getattr(module, variable), []


DECLARATION_CLASSES = {cls.__name__: cls for cls in (Service, Reads, TemporaryAccess)}
UNEXPECTED_KEYWORD = re.compile(r"^(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'$")
UNDEFINED_NAME = re.compile(r"^name '(\w+)' is not defined")


def import_failure(path: Path, error: Exception) -> str:
    """Why a declaration file did not import: the line in the file, what went wrong, and, for a
    misspelt field or name, the one it is close to."""
    frames = [
        f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == Path(path).resolve()
    ]
    where = f"at line {frames[-1].lineno}: " if frames else ""
    text = str(error)
    if isinstance(error, TypeError) and (match := UNEXPECTED_KEYWORD.match(text)):
        cls_name, field_name = match.groups()
        if cls := DECLARATION_CLASSES.get(cls_name):
            fields = [f.name for f in dataclasses.fields(cls)]
            return (
                f"{where}{cls_name}() has no field {field_name!r}{did_you_mean(field_name, fields)} "
                f"(fields: {', '.join(fields)})"
            )
    if isinstance(error, NameError) and (match := UNDEFINED_NAME.match(text)):
        import servicedb

        name = match.group(1)
        suggestion = did_you_mean(name, servicedb.__all__)
        if suggestion:
            close = suggestion.split("'")[1]
            suggestion += f" (from servicedb import {close})"
        return f"{where}name {name!r} is not defined{suggestion}"
    return f"{where}failed to import: {type(error).__name__}: {text}"


def load_access(directory: Path) -> tuple[list[tuple[object, str]], list[Problem]]:
    """Import every `*.py` in `directory` not starting with `_`; each must define `ACCESS`.

    A missing directory declares no break-glass access.
    """
    declared: list[tuple[object, str]] = []
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.py")):
        if path.name.startswith("_"):
            continue
        access, file_problems = declared_in(
            path, "ACCESS", "add ACCESS = TemporaryAccess(person=..., ...) (see the README's Break-glass access)"
        )
        problems += file_problems
        if not file_problems:
            declared.append((access, display(path)))
    return declared, problems


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


REQUIRED = "is required; add it to the table"


def environment_from_table(name: str, table: object, *, source: str) -> tuple[Environment | None, list[Problem]]:
    subject = f"[{name}]"
    values, problems = values_from_table(Environment, table, source=source, subject=subject, prefix="")
    if values is None:
        return None, problems
    if problems:  # required settings are missing: report every other problem of the table with them
        missing = {problem.at for problem in problems}
        try:
            partial = environment_problems(Environment(name=name, **values), source=source)
        except (TypeError, ValueError, AttributeError):  # a check needs what is missing
            partial = []
        return None, problems + [p for p in partial if p.at not in missing and not p.at.startswith(tuple(missing))]
    return Environment(name=name, **values), []


def values_from_table(
    cls: type, table: object, *, source: str, subject: str, prefix: str
) -> tuple[dict[str, object] | None, list[Problem]]:
    """The keyword arguments of dataclass `cls` that a TOML table gives, or the table's problems.

    `prefix` is the path of the table inside the environment (`network.`), so every problem says
    where it is. Nested dataclasses are nested tables (`[dev.network]`).
    """

    def problem(at: str, message: str) -> Problem:
        return Problem(source=source, subject=subject, at=at, message=message)

    if not isinstance(table, dict):
        return None, [problem(prefix.rstrip("."), f"must be a table of settings, got {table!r}")]

    known = {f.name: f for f in fields(cls) if f.name != "name"}
    hints = typing.get_type_hints(cls)
    problems: list[Problem] = []
    values: dict[str, object] = {}
    for key, value in table.items():
        at = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            problems.append(problem(at, f"unknown setting; {hint}"))
            continue
        kind = without_none(hints[key])
        if dataclasses.is_dataclass(kind):
            nested, nested_problems = values_from_table(kind, value, source=source, subject=subject, prefix=f"{at}.")
            problems += nested_problems
            if nested is not None:
                values[key] = kind(**nested)
            continue
        converted, message = convert(value, kind)
        if message:
            problems.append(problem(at, message))
            continue
        values[key] = converted

    missing = []
    for key, spec_field in known.items():
        required = spec_field.default is MISSING and spec_field.default_factory is MISSING
        if required and key not in table:
            problems.append(problem(f"{prefix}{key}", REQUIRED))
            missing.append(key)

    if problems and all(p.message == REQUIRED for p in problems):
        # Only settings are missing: what is there is checked too (`environment_from_table`).
        return {**values, **dict.fromkeys(missing)}, problems
    if problems:
        return None, problems
    return values, []


def without_none(hint: object) -> object:
    """`X` for `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        [kind] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kind
    return hint


TYPE_NAMES = {str: "a string", int: "a whole number"}


def convert(value: object, kind: object) -> tuple[object, str | None]:
    """`value` from TOML as the field type `kind` wants it, or why it cannot be."""
    if kind == tuple[tuple[str, str], ...]:  # tags: a table of strings, kept as sorted pairs
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return tuple(sorted(value.items())), None
        return None, f"must be a table of strings, got {value!r}"
    if kind == tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value), None
        return None, f"must be an array of strings, got {value!r}"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        allowed = [member.value for member in kind]
        if value in allowed:
            return kind(value), None
        return None, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}"
    assert kind in TYPE_NAMES, kind
    if isinstance(value, bool) or not isinstance(value, kind):  # type: ignore[arg-type]
        return None, f"must be {TYPE_NAMES[kind]}, got {value!r}"
    return value, None
