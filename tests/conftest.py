"""Shared fixtures: the example project's declarations (tests/example), each of its stacks synthesized
once, and real PostgreSQL servers.

jsii runs its JavaScript on the first `node` on PATH: the tests put the Node.js that `npm ci`
installs (node_modules/.bin, 22 or newer) first, as the Makefile does, before anything starts it,
and turn off the one deprecation warning cdktf causes on it (DEP0044, as main.py does).
Importing servicedb (below) makes `cdktf_cdktf_provider_aws` load only the modules the tests use.

One synth per stack and way of synthesizing: in this process (`synthesized`), by the cdktf CLI
(`cli_synth`) and after the plain import (`plain_import_synth`). The two subprocesses start as soon
as collection shows a test needs them, and the tests that need them run last: the others run
meanwhile.

`secret_scan` collects, from the first test on, every password servicedb generates, every line
the CLI writes, the captured output and logs of every test, and every PostgreSQL server's log
(the session's servers log every statement); `tests/test_secrets.py`, which runs last, looks for
the passwords in all of it.
"""

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from servicedb import cli, passwords
from servicedb.app import build_app
from servicedb.load import Declarations, load_declarations
from servicedb.server import LocalServer, available_binaries

from projects import (
    CDKTF,
    Run,
    cdktf_synth_command,
    clean_environment,
    copy_example_stack,
    copy_project,
    example_readme_command,
    plain_import_synth_command,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "example"
"""The library's example project (tests/example/README.md): never the repository's own declarations."""
NODE_BIN = ROOT / "node_modules" / ".bin"

if (NODE_BIN / "node").exists():
    os.environ["PATH"] = f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["NODE_OPTIONS"] = f"{os.environ.get('NODE_OPTIONS', '')} --disable-warning=DEP0044".strip()

SUBPROCESS_SYNTHS = {"cli_synth", "plain_import_synth", "example_readme"}
runs: dict[str, Run] = {}


def start_synths() -> dict[str, Run]:
    """Start both subprocess synths of one copy of the app, once per session."""
    if not runs:
        if not CDKTF.exists():
            pytest.fail(f"{CDKTF} is missing: run `make install` (make test does it) to install the cdktf CLI")
        project = copy_project(Path(tempfile.mkdtemp(prefix="servicedb-tests-")) / "project")
        runs["cli_synth"] = Run.start("cli", cdktf_synth_command(project), project=project, env=clean_environment())
        runs["plain_import_synth"] = Run.start(
            "plain",
            plain_import_synth_command(),
            project=project,
            env=clean_environment(CDKTF_OUTDIR=str(project / "plain.out")),
        )
        # examples/ecs-service's README, run as written in a fresh copy: the machine's Python, node and
        # npm only, none of this repository's tooling on PATH.
        example = copy_example_stack(project.parent / "example")
        machine_path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != str(NODE_BIN))
        env = clean_environment(PATH=machine_path)
        del env["CHECKPOINT_DISABLE"]  # the README says when to set it
        if not Path(env.get("TF_CLI_CONFIG_FILE", "/")).is_file():  # a machine's setting, not the example's
            env.pop("TF_CLI_CONFIG_FILE", None)
        runs["example_readme"] = Run.start("example", example_readme_command(), project=example, env=env)
    return runs


LAST = "test_secrets.py"
"""Its tests scan what every other test left: they run after all of them."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that wait for a subprocess synth run last, so the others run while it works; the
    secrets scan after them."""
    items.sort(
        key=lambda item: (item.path.name == LAST, bool(SUBPROCESS_SYNTHS & set(getattr(item, "fixturenames", ()))))
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    needed = any(SUBPROCESS_SYNTHS & set(getattr(item, "fixturenames", ())) for item in session.items)
    if needed and CDKTF.exists():  # without the CLI, the fixtures fail with how to install it
        start_synths()


def pytest_sessionfinish(session: pytest.Session) -> None:
    for run in runs.values():
        run.stop()
    if runs:
        shutil.rmtree(next(iter(runs.values())).project.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def declarations() -> Declarations:
    return load_declarations(EXAMPLE / "services", EXAMPLE / "environments.toml")


@pytest.fixture(scope="session")
def synthesized(declarations: Declarations) -> dict[str, dict]:
    """Every stack `main.py` builds, as parsed Terraform JSON, keyed by stack name."""
    from cdktf import Testing

    app = build_app(declarations, Testing.app())
    return {stack.node.id: json.loads(Testing.synth(stack, run_validations=True)) for stack in app.node.children}


def finished(name: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    run = start_synths()[name]
    result = run.wait()
    assert result.returncode == 0, result.stderr
    return run.project, result


@pytest.fixture(scope="session")
def cli_synth() -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`cdktf synth` of a copy of this repository: the copy (output in cdktf.out/) and the result."""
    return finished("cli_synth")


@pytest.fixture(scope="session")
def example_readme() -> tuple[Path, subprocess.CompletedProcess[str]]:
    """examples/ecs-service/README.md's commands, run as written in a fresh copy of the directory."""
    run = start_synths()["example_readme"]
    return run.project, run.wait(timeout_seconds=600)


@pytest.fixture(scope="session")
def plain_import_synth() -> tuple[Path, subprocess.CompletedProcess[str]]:
    """main.py after the plain import of the AWS provider, in the same copy (output in plain.out/)."""
    return finished("plain_import_synth")


SERVERS = available_binaries(ROOT / "node_modules")


@pytest.fixture(scope="session", params=SERVERS, ids=[f"pg{b.major}" for b in SERVERS])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A real PostgreSQL per major version the machine can start: the embedded one (16), npm's (17,
    on Linux x64), and any installed. It logs every statement, for the secrets scan."""
    with LocalServer(request.param, settings={"log_statement": "all"}) as started:
        yield started


@dataclass
class SecretScan:
    """What the secrets scan looks through, and what it looks for."""

    passwords: list[str] = field(default_factory=list)
    """Every password servicedb generated in this session."""
    outputs: list[tuple[str, str]] = field(default_factory=list)
    """(where, text): CLI output, captured test output and logs, logs of stopped servers."""
    running: list[LocalServer] = field(default_factory=list)

    def texts(self) -> list[tuple[str, str]]:
        """Everything so far, with the logs of the servers still running."""
        logs = [(f"log of the server on port {s.port}", s.log.read_text()) for s in self.running if s.log.exists()]
        return self.outputs + logs


SCAN = SecretScan()


def recording(generate: Callable[[int], str]) -> Callable[[int], str]:
    def generating(length: int) -> str:
        password = generate(length)
        SCAN.passwords.append(password)
        return password

    return generating


# Before any test module imports it: `from servicedb.passwords import generate_password` gets this one.
passwords.generate_password = recording(passwords.generate_password)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, text in (
        ("stdout", report.capstdout),
        ("stderr", report.capstderr),
        ("log", report.caplog),
        ("failure", report.longreprtext),
    ):
        if text:
            SCAN.outputs.append((f"{report.nodeid} ({report.when}, {name})", text))


@pytest.fixture(scope="session", autouse=True)
def secret_scan() -> Iterator[SecretScan]:
    """Record CLI output and server logs for the whole session (generated passwords: see above)."""
    start, stop = LocalServer.start, LocalServer.stop

    def starting(self: LocalServer) -> LocalServer:
        SCAN.running.append(start(self))
        return self

    def stopping(self: LocalServer) -> None:
        if self in SCAN.running:
            SCAN.running.remove(self)
            if self.log.exists():
                SCAN.outputs.append((f"log of the server on port {self.port}", self.log.read_text()))
        stop(self)

    def teeing(command: Callable[..., int]) -> Callable[..., int]:
        def run(args: object, out: Callable[[str], None]) -> int:
            def tee(line: str) -> None:
                SCAN.outputs.append((f"servicedb {getattr(args, 'command', '')}", line))
                out(line)

            return command(args, tee)

        return run

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalServer, "start", starting)
        patch.setattr(LocalServer, "stop", stopping)
        for name, command in cli.COMMANDS.items():
            patch.setitem(cli.COMMANDS, name, teeing(command))
        yield SCAN
