"""SQL composed from parts and rendered to plain text, with no database driver.

The part of `psycopg.sql` that the statements use (`SQL`, `Identifier`, `Literal`, `Composed`,
`format`, `join`, `as_string`), rendering the same text, so that one statement runs over psycopg
(the CLI) and over pg8000 (the in-VPC provisioner function, which has no libpq). An identifier
is always double-quoted; a string literal is single-quoted, and written `E'...'` when it holds a
backslash, so it reads the same whatever the server's `standard_conforming_strings` is; a
negative number starts with a space, so that `-` never follows another `-`.
"""

import string
from collections.abc import Iterable, Iterator


class Composable:
    """A piece of SQL; `as_string()` is its text."""

    def as_string(self, context: object = None) -> str:
        raise NotImplementedError

    def __add__(self, other: "Composable") -> "Composed":
        if not isinstance(other, Composable):
            return NotImplemented
        return Composed([self, other])

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.as_string() == other.as_string()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self), self.as_string()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.as_string()!r})"


class Composed(Composable):
    """A sequence of pieces, rendered one after the other."""

    def __init__(self, parts: Iterable[Composable]) -> None:
        self.parts = tuple(parts)
        for part in self.parts:
            if not isinstance(part, Composable):
                raise TypeError(f"Composed holds Composable pieces only, got {part!r}")

    def __iter__(self) -> Iterator[Composable]:
        return iter(self.parts)

    def as_string(self, context: object = None) -> str:
        return "".join(part.as_string(context) for part in self.parts)

    def join(self, joiner: "SQL | str") -> "Composed":
        return (SQL(joiner) if isinstance(joiner, str) else joiner).join(self.parts)


class SQL(Composable):
    """SQL text written by the program, never by a user: it is not quoted."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"SQL takes a string, got {text!r}")
        self.text = text

    def as_string(self, context: object = None) -> str:
        return self.text

    def format(self, *args: Composable, **kwargs: Composable) -> Composed:
        """The text with each `{}`, `{0}` or `{name}` replaced by a piece; `{{` and `}}` are braces."""
        parts: list[Composable] = []
        automatic = 0
        numbering = None  # "automatic" `{}` or "manual" `{0}`, which cannot be mixed
        for literal, name, spec, conversion in string.Formatter().parse(self.text):
            if literal:
                parts.append(SQL(literal))
            if name is None:
                continue
            if spec or conversion:
                raise ValueError(f"no format spec or conversion in SQL: {self.text!r}")
            if name == "" or name.isdigit():
                kind = "automatic" if name == "" else "manual"
                if numbering not in (None, kind):
                    raise ValueError(f"automatic and manual field numbering mixed in SQL: {self.text!r}")
                numbering = kind
                if name == "":
                    part, automatic = args[automatic], automatic + 1
                else:
                    part = args[int(name)]
            else:
                part = kwargs[name]
            if not isinstance(part, Composable):
                raise TypeError(f"SQL.format takes Composable pieces, got {part!r}")
            parts.append(part)
        return Composed(parts)

    def join(self, pieces: Iterable[Composable]) -> Composed:
        parts: list[Composable] = []
        for index, piece in enumerate(pieces):
            if index:
                parts.append(self)
            parts.append(piece)
        return Composed(parts)


class Identifier(Composable):
    """A name (role, database, schema), double-quoted; several names are joined with dots."""

    def __init__(self, *names: str) -> None:
        if not names or not all(isinstance(name, str) and name for name in names):
            raise TypeError(f"Identifier takes non-empty strings, got {names!r}")
        self.names = names

    def as_string(self, context: object = None) -> str:
        return ".".join('"' + name.replace('"', '""') + '"' for name in self.names)


class Literal(Composable):
    """A value: a string (quoted), a whole number, or None (NULL)."""

    def __init__(self, value: str | int | None) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int | None):
            raise TypeError(f"Literal takes a string, a whole number or None, got {value!r}")
        if isinstance(value, str) and "\0" in value:
            raise ValueError("a PostgreSQL string cannot hold a NUL character")
        self.value = value

    def as_string(self, context: object = None) -> str:
        if self.value is None:
            return "NULL"
        if isinstance(self.value, int):
            return f" {self.value}" if self.value < 0 else str(self.value)  # never `--`, a comment
        quoted = self.value.replace("'", "''")
        if "\\" in quoted:
            return " E'" + quoted.replace("\\", "\\\\") + "'"
        return "'" + quoted + "'"
