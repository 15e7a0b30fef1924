"""`Split`: which service takes which table of one shared database, and which tables stay.

    from servicedb import Split

    SPLIT = Split(
        database="app",
        moves={
            "orders": ("orders", "order_items", "alembic_version_orders"),
            "billing": ("invoices",),
        },
        stays=("countries",),
    )

A table is named `table` (in `schema`, `public` by default) or `schema.table`. Every table of the
shared database is given to exactly one service (it has one writer) or stays; `split plan` lists
the tables nobody claimed.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servicedb.errors import Problem, did_you_mean, display
from servicedb.spec import NAME_PATTERN

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
"""A table or schema name as `split` accepts it: an unquoted-style PostgreSQL identifier (case kept)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Split:
    """The tables of one shared database, given to services or left behind."""

    database: str
    """The shared database, e.g. `app`."""

    moves: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Service name -> the tables it takes, each `table` or `schema.table`."""

    stays: tuple[str, ...] = ()
    """Tables (and views) that stay in the shared database, read there as today. @default - none."""

    schema: str = "public"
    """The schema of a table named without one. @default - `public`."""

    def qualified(self, table: str) -> tuple[str, str]:
        """`(schema, table)` of a name as declared."""
        schema, _, name = table.rpartition(".")
        return (schema or self.schema, name)

    @property
    def owners(self) -> dict[tuple[str, str], str]:
        """Each moved table's service."""
        return {self.qualified(table): service for service, tables in self.moves.items() for table in tables}

    @property
    def staying(self) -> set[tuple[str, str]]:
        return {self.qualified(table) for table in self.stays}


def split_problems(split: object, *, source: str, services: Iterable[str]) -> list[Problem]:
    """What is wrong with a declaration on its own: names, a table given twice, unknown services."""
    if not isinstance(split, Split):
        return [Problem(source=source, subject="SPLIT", at="", message=f"must be a Split, got {type(split).__name__}")]
    subject = f"Split(database={split.database!r})"
    problems: list[Problem] = []

    def problem(at: str, message: str) -> None:
        problems.append(Problem(source=source, subject=subject, at=at, message=message))

    if not isinstance(split.database, str) or not IDENTIFIER.match(split.database):
        problem("database", f"must be a database name, got {split.database!r}")
    if not isinstance(split.schema, str) or not IDENTIFIER.match(split.schema):
        problem("schema", f"must be a schema name, got {split.schema!r}")
    if not isinstance(split.moves, Mapping) or not split.moves:
        problem("moves", 'must map at least one service to its tables, e.g. {"orders": ("orders",)}')
        return problems
    known = sorted(services)
    given: dict[tuple[str, str], str] = {}
    for service, tables in split.moves.items():
        at = f"moves[{service!r}]"
        if not isinstance(service, str) or not NAME_PATTERN.match(service):
            problem(at, f"must be a service name, got {service!r}")
        elif service not in known:
            problem(at, f"no service named {service!r}{did_you_mean(service, known)} (declared: {', '.join(known)})")
        if isinstance(tables, str) or not isinstance(tables, tuple | list) or not tables:
            problem(at, f'must be a tuple of table names, e.g. ("orders",), got {tables!r}')
            continue
        for index, table in enumerate(tables):
            claim(split, table, f"{at}[{index}]", service, given, problem)
    if isinstance(split.stays, str) or not isinstance(split.stays, tuple | list):
        problem("stays", f'must be a tuple of table names, e.g. ("countries",), got {split.stays!r}')
    else:
        for index, table in enumerate(split.stays):
            claim(split, table, f"stays[{index}]", None, given, problem)
    return problems


def claim(split: Split, table: object, at: str, service: str | None, given: dict, problem) -> None:
    """Record that `service` (None: it stays) claims `table`, or say why it cannot."""
    if (
        not isinstance(table, str)
        or not all(IDENTIFIER.match(part) for part in table.split("."))
        or table.count(".") > 1
    ):
        problem(at, f"must be `table` or `schema.table`, got {table!r}")
        return
    name = split.qualified(table)
    if name in given:
        first = given[name]
        where = f"given to {first}" if first else "declared to stay"
        mine = f"given to {service}" if service else "declared to stay"
        problem(at, f"{'.'.join(name)} is {where} already and {mine} here: a table has one writer; keep one")
        return
    given[name] = service


def load_split(directory: Path, database: str) -> tuple[Split | None, str, list[Problem]]:
    """The declaration of `database` in `directory` (`splits/<database>.py`, or any file whose
    SPLIT names it), where it came from, and what is wrong with reading it."""
    from servicedb.load import declared_in

    directory = Path(directory)
    candidates = sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
    found: list[tuple[Split, str]] = []
    problems: list[Problem] = []
    for path in candidates:
        split, file_problems = declared_in(path, "SPLIT", 'add SPLIT = Split(database="app", moves={...})')
        problems += file_problems
        if isinstance(split, Split) and split.database == database:
            found.append((split, display(path)))
    if not found and problems:
        return None, display(directory), problems  # what did not read may be the declaration looked for
    if not found:
        names = [p.stem for p in candidates]
        message = (
            f"no declaration of the shared database {database!r} in {display(directory)}"
            f"{did_you_mean(database, names)}: add {display(directory / (database + '.py'))} with "
            f'SPLIT = Split(database="{database}", moves={{...}}) (see docs/moving-off-a-shared-database.md)'
        )
        return (
            None,
            display(directory),
            problems + [Problem(source=display(directory), subject="splits", at="", message=message)],
        )
    if len(found) > 1:
        files = ", ".join(source for _, source in found)
        message = f"the shared database {database!r} is declared in {files}: keep one declaration"
        return None, found[0][1], [Problem(source=found[0][1], subject="splits", at="", message=message)]
    split, source = found[0]
    return split, source, []  # another file's problems are its own database's
