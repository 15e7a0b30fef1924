"""The README and docs/: every link leads somewhere, and every command, option, make target and
declaration field is documented somewhere."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from servicedb.access import TemporaryAccess
from servicedb.cli import parser
from servicedb.spec import Environment, OperatorNetwork, Reads, Service
from servicedb.split import Split

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "ecs-service" / "README.md"]
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_leads_somewhere(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: {target} leads nowhere"
        if anchor:
            assert anchor in anchors(destination), f"{page.name}: {target}: no such heading"


def test_the_readme_is_the_first_five_minutes() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 100
    for step in ("make synth", "make test", "services/payments.py", "servicedb record", "make snapshots"):
        assert step in readme
    linked = set(LINK.findall(readme))
    assert {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} <= linked


def subcommands(top: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command, with the actions of those that have some (`split copy`, `access request`)."""
    found = {}
    for action in (top or parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(subcommands(sub, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_command_and_option_is_documented(command: str) -> None:
    docs = text()
    assert f"servicedb {command}" in docs
    for action in subcommands()[command]._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert option in docs, f"servicedb {command} {option} is not documented"


@pytest.mark.parametrize("declaration", [Service, Reads, TemporaryAccess, Environment, OperatorNetwork, Split])
def test_every_declaration_field_is_documented(declaration: type) -> None:
    docs = text()
    for field in dataclasses.fields(declaration):
        assert f"`{field.name}`" in docs, f"{declaration.__name__}.{field.name} is not documented"


def test_every_make_target_is_documented() -> None:
    phony = re.search(r"^\.PHONY: (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    docs = text()
    for target in phony:
        assert f"make {target}" in docs, f"make {target} is not documented"
