"""The Terraform path at scale: the stack's postgresql resources applied as the provider does.

    python -m bench.terraform SERVICES BIN_DIR RESULT_JSON

The provider itself cannot be installed here (its registry is out of reach), so the statements
are those of the test suite's model of provider 1.26.0 (`tests/terraform_provider.py`): the same
SQL, in the same order, as the same login, on a fresh real server from `BIN_DIR`. Like the
provider's `database/sql` pool, connections stay open per database and are reused. The stack is
synthesized in this process first; only the model's apply is timed. `run` starts this in a
process of its own, so that jsii's node process goes with it.
"""

import collections
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.postgres import SCALE_TARGET, write_services

ROOT = Path(__file__).resolve().parent.parent

SIZES = (100, 300, 1000)
"""Services; the largest only on the newest server (on PostgreSQL 16 it takes about half an hour)."""

IDLE_DATABASES = 50
"""Databases whose connections the pool keeps idle; older ones are closed."""


@dataclass(frozen=True)
class Result:
    services: int
    version: str
    seconds: float
    statements: int
    connections: int
    slowest: list[tuple[str, int, float]]
    """The three kinds of change (not reads) that took the longest in all: (kind, count, seconds)."""


def statement_kind(statement: str) -> str:
    """`GRANT ... TO`, `ALTER ROLE ... SET`: the statement's keywords, without names or values."""
    words = [word for word in statement.split() if word.isupper() and word.isalpha()]
    return " ".join(words[:4])


def measure(count: int, bin_dir: Path) -> Result:
    sys.path.insert(0, str(ROOT / "tests"))
    from cdktf import App

    from servicedb.cli import local_environment, local_services
    from servicedb.plan import plan_services
    from servicedb.server import ADMIN, LocalServer, binaries_from
    from servicedb.stack import DatabaseAccessStack

    from terraform_provider import ProviderModel

    binaries = binaries_from(bin_dir, str(bin_dir))
    if binaries is None:
        raise SystemExit(f"bench.terraform: no PostgreSQL server in {bin_dir}")
    with tempfile.TemporaryDirectory(prefix="servicedb-bench-") as name, LocalServer(binaries) as local:
        directory = Path(name)
        write_services(directory, count)
        environment = local_environment("127.0.0.1", local.port)
        plan = plan_services(local_services(directory, environment), environment)
        app = App(outdir=str(directory / "out"))
        stack = DatabaseAccessStack(app, plan=plan)
        app.synth()
        document = json.loads((directory / "out" / "stacks" / stack.node.id / "cdk.tf.json").read_text())
        for resources in document["resource"].values():
            for config in resources.values():
                config.pop("//", None)  # cdktf's comments (path, unique id): Terraform reads no "//" key

        idle: dict[str, list[psycopg.Connection]] = {}
        opened = [0]
        times: collections.Counter[str] = collections.Counter()
        counts: collections.Counter[str] = collections.Counter()

        class Pooled(psycopg.Connection):
            """Back to the pool on close, as the provider's connections are."""

            def close(self) -> None:
                if self.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.execute("ROLLBACK")
                idle.setdefault(self.info.dbname, []).append(self)
                for other in [d for d in idle if d not in ("postgres", self.info.dbname)][:-IDLE_DATABASES]:
                    for conn in idle.pop(other):
                        psycopg.Connection.close(conn)

            def execute(self, query: object, *args: object, **kwargs: object) -> psycopg.Cursor:
                started = time.perf_counter()
                try:
                    return super().execute(query, *args, **kwargs)  # type: ignore[arg-type]
                finally:
                    kind = statement_kind(str(query))
                    times[kind] += time.perf_counter() - started
                    counts[kind] += 1

        def connect(database: str) -> psycopg.Connection:
            if idle.get(database):
                return idle[database].pop()
            opened[0] += 1
            return Pooled.connect(local.admin_url_with_password, dbname=database, autocommit=True)

        master = json.dumps({"username": ADMIN})
        model = ProviderModel(
            connect, user=ADMIN, data={"data.aws_secretsmanager_secret_version.master_secret.secret_string": master}
        )
        started = time.perf_counter()
        model.apply(document)
        took = time.perf_counter() - started
        for conns in idle.values():
            for conn in conns:
                psycopg.Connection.close(conn)
        if model.silent_no_ops:
            raise SystemExit(f"bench.terraform: the provider's statements did nothing: {model.silent_no_ops[:3]}")
        changes = [kind for kind in times if kind.split(" ")[0] not in ("SELECT", "BEGIN", "COMMIT", "ROLLBACK")]
        slowest = sorted(((kind, counts[kind], times[kind]) for kind in changes), key=lambda row: -row[2])[:3]
        return Result(count, binaries.version, took, len(model.executed), opened[0], slowest)


def run(count: int, bin_dir: Path) -> Result:
    """`measure` in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="servicedb-bench-") as name:
        result_file = Path(name) / "result.json"
        command = [sys.executable, "-m", "bench.terraform", str(count), str(bin_dir), str(result_file)]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command)} failed:\n{completed.stderr[-3000:]}")
        fields = json.loads(result_file.read_text())
        return Result(**{**fields, "slowest": [tuple(row) for row in fields["slowest"]]})


def section(results: dict[str, list[Result]]) -> str:
    """Markdown: per server, each size's time, statements and growth from the first size."""
    rows = []
    for version, sized in results.items():
        first = sized[0]
        for r in sized:
            slowest = ", ".join(f"{kind} {seconds / n * 1000:.1f} ms" for kind, n, seconds in r.slowest)
            rows.append(
                f"| {version} | {r.services} | {r.statements} | {r.connections} | {r.seconds:.1f} s "
                f"({r.seconds / first.seconds:.1f}x) | {slowest} |"
            )
    verdicts = []
    for version, sized in results.items():
        first, largest = sized[0], sized[-1]
        ratio, sizes = largest.seconds / first.seconds, largest.services / first.services
        met = "met" if ratio <= SCALE_TARGET * sizes else "not met"
        verdicts.append(
            f"- PostgreSQL {version}: {ratio:.1f}x the time of {first.services} services at {largest.services} "
            f"({sizes:.0f}x the services; target at most {SCALE_TARGET * sizes:.0f}x), {met}."
        )
    return "\n".join(
        [
            "| PostgreSQL | services | statements | connections | apply from empty | slowest statements, each |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *verdicts,
        ]
    )


def main() -> None:
    count, bin_dir, result_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    result = measure(count, bin_dir)
    result_file.write_text(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()
