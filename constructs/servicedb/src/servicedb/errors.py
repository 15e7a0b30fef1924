"""The one error a user sees for bad declarations, and how its message reads."""

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One thing wrong with one declaration.

    `source` is the file the declaration came from, `subject` names the declaration
    (`Service(name='orders')`), `at` is the field path inside it (`reads[0].service`), and
    `message` says what was given, what is allowed and how to fix it.
    """

    source: str
    subject: str
    at: str
    message: str


class DeclarationError(Exception):
    """Every problem found across all declarations, raised once before anything is built."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: tuple[Problem, ...]) -> str:
    """Group problems by declaration, in the order they were found.

    services/orders.py: Service(name='orders'): 2 problems
      at reads[0].service: no service named 'biling' (declared: billing, orders)
      at name: must match ^[a-z][a-z0-9_]*$, got 'Orders' (use lowercase)
    """
    by_declaration: dict[tuple[str, str], list[Problem]] = {}
    for problem in problems:
        by_declaration.setdefault((problem.source, problem.subject), []).append(problem)
    blocks = []
    for (source, subject), items in by_declaration.items():
        count = f"{len(items)} problem" + ("s" if len(items) > 1 else "")
        lines = [f"{source}: {subject}: {count}"]
        lines += [f"  at {p.at}: {p.message}" if p.at else f"  {p.message}" for p in items]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def did_you_mean(given: object, choices: Iterable[str]) -> str:
    """`; did you mean 'orders'?` when `given` is close to one of `choices`, else nothing."""
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
