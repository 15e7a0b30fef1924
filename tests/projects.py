"""Copies of this repository's app with the example project's declarations, synthesized in subprocesses.

Two synths of one copy, in the same directory (the local backend's state path is absolute): by the
cdktf CLI, as `make synth` does, and by Python after the plain, full import of the AWS provider
package, as any CDKTF app without servicedb does. `conftest.py` starts both as soon as the
collected tests need them, so they run beside the tests that need no subprocess.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "example"
CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"
PYTHON = ROOT / ".venv" / "bin" / "python"

# main.py, after importing the whole AWS provider package first: servicedb then leaves the
# package as it is (see servicedb.lazy_aws).
PLAIN_IMPORT_SYNTH = """
import runpy, sys
import cdktf_cdktf_provider_aws
submodules = [name for name in sys.modules if name.startswith("cdktf_cdktf_provider_aws.")]
assert len(submodules) > 2000, f"only {len(submodules)} AWS provider modules were imported"
runpy.run_path("main.py", run_name="__main__")
"""


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment, with what main.py sets up left to main.py: no JSII_NODE, no
    NODE_OPTIONS, and no setting that silences jsii's Node.js warnings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("JSII_SILENCE_WARNING") and name not in ("JSII_NODE", "NODE_OPTIONS")
    }
    return {**env, "CHECKPOINT_DISABLE": "1", "CI": "1", **extra}


def copy_project(destination: Path) -> Path:
    """main.py and cdktf.json with the example project's declarations (services, environments,
    break-glass access) and record, and the repository's virtualenv and node_modules."""
    destination.mkdir(parents=True)
    (destination / "node_modules").symlink_to(ROOT / "node_modules")
    shutil.copy(ROOT / "main.py", destination / "main.py")
    for name in ("environments.toml", "deployed.toml"):
        shutil.copy(EXAMPLE / name, destination / name)
    for directory in ("services", "access"):
        shutil.copytree(EXAMPLE / directory, destination / directory)
    config = json.loads((ROOT / "cdktf.json").read_text())
    config["app"] = f"{PYTHON} main.py"
    (destination / "cdktf.json").write_text(json.dumps(config))
    return destination


EXAMPLE_STACK = ROOT / "examples" / "ecs-service"


def readme_commands(readme: Path) -> list[str]:
    """The first indented code block of a README: the commands it tells the reader to run."""
    commands: list[str] = []
    for line in readme.read_text().splitlines():
        if line.startswith("    ") and line.strip():
            commands.append(line.strip())
        elif commands:
            break
    return commands


def copy_example_stack(destination: Path) -> Path:
    """examples/ecs-service as a fresh checkout has it, where its README's relative path to the
    library (../../constructs/servicedb) leads to this repository's."""
    (destination / "constructs").mkdir(parents=True)
    (destination / "constructs" / "servicedb").symlink_to(ROOT / "constructs" / "servicedb")
    target = destination / "examples" / "ecs-service"
    shutil.copytree(EXAMPLE_STACK, target, ignore=shutil.ignore_patterns(".venv", "node_modules", "cdktf.out"))
    return target


def example_readme_command() -> list[str]:
    return ["bash", "-euo", "pipefail", "-c", " && ".join(readme_commands(EXAMPLE_STACK / "README.md"))]


def cdktf_synth_command(project: Path) -> list[str]:
    return [str(CDKTF), "synth", "--output", str(project / "cdktf.out")]


def plain_import_synth_command() -> list[str]:
    return [str(PYTHON), "-c", PLAIN_IMPORT_SYNTH]


@dataclass
class Run:
    """A subprocess started now and awaited later; its output goes to files, never to a full pipe."""

    name: str
    project: Path
    process: subprocess.Popen = field(repr=False)

    @classmethod
    def start(cls, name: str, command: list[str], *, project: Path, env: dict[str, str]) -> "Run":
        logs = project.parent / f"{name}.log"
        with open(f"{logs}.out", "w") as stdout, open(f"{logs}.err", "w") as stderr:
            process = subprocess.Popen(command, cwd=project, env=env, stdout=stdout, stderr=stderr, text=True)
        return cls(name=name, project=project, process=process)

    def wait(self, timeout_seconds: float = 300) -> subprocess.CompletedProcess[str]:
        returncode = self.process.wait(timeout=timeout_seconds)
        logs = self.project.parent / f"{self.name}.log"
        return subprocess.CompletedProcess(
            self.process.args,
            returncode,
            stdout=Path(f"{logs}.out").read_text(),
            stderr=Path(f"{logs}.err").read_text(),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_synth(command: list[str], project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a synth in the foreground."""
    return subprocess.run(
        command, cwd=project, env=clean_environment(**env), capture_output=True, text=True, timeout=300
    )
