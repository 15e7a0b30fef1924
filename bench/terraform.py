"""The Terraform path at scale: the stack's postgresql resources applied as the provider does.

    python -m bench.terraform SERVICES BIN_DIR RESULT_JSON [SERVICES_PER_LOGIN]

writes the result to RESULT_JSON and prints the time, the slowest kinds of change and the slowest
reads, each with its time per call.

The provider itself cannot be installed here (its registry is out of reach), so the statements
are those of the test suite's model of provider 1.26.0 (`tests/terraform_provider.py`): the same
SQL, in the same order, as the same login, on a fresh real server from `BIN_DIR`. Like the
provider's `database/sql` pool, connections stay open per database and are reused. The stack is
synthesized in this process first; only the model's apply is timed. `run` starts this in a
process of its own, so that jsii's node process goes with it.
"""

import collections
import dataclasses
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import psycopg.sql

from bench.postgres import SCALE_TARGET, write_services

ROOT = Path(__file__).resolve().parent.parent

SIZES = (100, 300, 1000)
"""Services with `terraform_logins`, on every server; with one login, all but the largest (at 1,000
services one login takes over four minutes on PostgreSQL 17 and half an hour on 16)."""

SERVICES_PER_LOGIN = 100
"""With `terraform_logins`: one login for this many services."""

IDLE_DATABASES = 50
"""Databases whose connections the pool keeps idle; older ones are closed."""


@dataclass(frozen=True)
class Result:
    services: int
    version: str
    seconds: float
    statements: int
    connections: int
    logins: int
    """How many logins applied the services: 1 (the admin), or the environment's `terraform_logins`."""
    slowest: list[tuple[str, int, float]]
    """The three kinds of change (not reads) that took the longest in all: (kind, count, seconds)."""
    reads: list[tuple[str, int, float]]
    """The eight reads that took the longest in all: (query, count, seconds). A read's query holds no
    names (they are parameters), so each is one of the provider's queries."""


def statement_kind(statement: str) -> str:
    """`GRANT ... TO`, `ALTER ROLE ... SET`: the statement's keywords, without names or values; a
    read (`SELECT`) is its whole query, whose names and values are parameters."""
    if statement.lstrip().startswith("SELECT"):
        return " ".join(statement.split())
    words = [word for word in statement.split() if word.isupper() and word.isalpha()]
    return " ".join(words[:4])


def measure(count: int, bin_dir: Path, per_login: int = 0) -> Result:
    """Apply `count` services from empty; with `per_login`, by `terraform_logins`, one for that
    many services, that the admin made first as the master user would."""
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
        logins = {
            f"servicedb_login_{n}": secrets.token_urlsafe(24) for n in range(-(-count // per_login) if per_login else 0)
        }
        environment = dataclasses.replace(
            environment,
            terraform_logins=tuple((user, f"{environment.master_secret_arn}-{user}") for user in sorted(logins)),
        )
        with psycopg.connect(local.admin_url_with_password, autocommit=True) as conn:
            for user, password in logins.items():
                conn.execute(
                    psycopg.sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                        psycopg.sql.Identifier(user), psycopg.sql.Literal(password)
                    )
                )
        plan = plan_services(local_services(directory, environment), environment)
        app = App(outdir=str(directory / "out"))
        stack = DatabaseAccessStack(app, plan=plan)
        app.synth()
        document = json.loads((directory / "out" / "stacks" / stack.node.id / "cdk.tf.json").read_text())
        for resources in document["resource"].values():
            for config in resources.values():
                config.pop("//", None)  # cdktf's comments (path, unique id): Terraform reads no "//" key

        idle: dict[tuple[str, str], list[psycopg.Connection]] = {}
        opened = [0]
        times: collections.Counter[str] = collections.Counter()
        counts: collections.Counter[str] = collections.Counter()

        class Pooled(psycopg.Connection):
            """Back to the pool on close, as the provider's connections are."""

            def close(self) -> None:
                if self.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.execute("ROLLBACK")
                idle.setdefault((self.info.user, self.info.dbname), []).append(self)
                for other in [k for k in idle if k[1] not in ("postgres", self.info.dbname)][:-IDLE_DATABASES]:
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

        def login(user: str, password: str) -> Callable[[str], psycopg.Connection]:
            """The provider's pool for one login: idle connections by database."""

            def connect(database: str) -> psycopg.Connection:
                if idle.get((user, database)):
                    return idle[(user, database)].pop()
                opened[0] += 1
                return Pooled.connect(local.url(user, password, database), autocommit=True)

            return connect

        master = json.dumps({"username": ADMIN})
        model = ProviderModel(
            login(ADMIN, local.admin_password),
            user=ADMIN,
            data={"data.aws_secretsmanager_secret_version.master_secret.secret_string": master},
            logins={user: login(user, password) for user, password in logins.items()},
        )
        started = time.perf_counter()
        model.apply(document)
        took = time.perf_counter() - started
        for conns in idle.values():
            for conn in conns:
                psycopg.Connection.close(conn)
        if model.silent_no_ops:
            raise SystemExit(f"bench.terraform: the provider's statements did nothing: {model.silent_no_ops[:3]}")
        reads = {kind for kind in times if kind.split(" ")[0] in ("SELECT", "BEGIN", "COMMIT", "ROLLBACK")}

        def longest(kinds: set[str], n: int) -> list[tuple[str, int, float]]:
            return sorted(((kind, counts[kind], times[kind]) for kind in kinds), key=lambda row: -row[2])[:n]

        return Result(
            count,
            binaries.version,
            took,
            len(model.executed),
            opened[0],
            max(len(logins), 1),
            longest(set(times) - reads, 3),
            longest(reads, 8),
        )


def run(count: int, bin_dir: Path, per_login: int = 0) -> Result:
    """`measure` in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="servicedb-bench-") as name:
        result_file = Path(name) / "result.json"
        command = [sys.executable, "-m", "bench.terraform", str(count), str(bin_dir), str(result_file), str(per_login)]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command)} failed:\n{completed.stderr[-3000:]}")
        fields = json.loads(result_file.read_text())
        return Result(**{**fields, **{key: [tuple(row) for row in fields[key]] for key in ("slowest", "reads")}})


def middle(runs: list[Result]) -> Result:
    """The run of median time (of an even number, the faster of the two middle ones)."""
    return sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]


def section(results: dict[str, list[Result]]) -> str:
    """Markdown: per server (and way of logging in), each size's time, statements and growth from the
    first size."""
    rows = []
    for version, sized in results.items():
        first = sized[0]
        for r in sized:
            slowest = ", ".join(f"{kind} {seconds / n * 1000:.1f} ms" for kind, n, seconds in r.slowest)
            rows.append(
                f"| {version} | {r.services} | {r.logins} | {r.statements} | {r.connections} | {r.seconds:.1f} s "
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
            "| PostgreSQL | services | logins | statements | connections | apply from empty "
            "| slowest statements, each |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *verdicts,
        ]
    )


def main() -> None:
    count, bin_dir, result_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    result = measure(count, bin_dir, int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    result_file.write_text(json.dumps(result.__dict__))
    logins = f"{result.logins} login{'s' if result.logins > 1 else ''}"
    print(f"{result.services} services, PostgreSQL {result.version}, {logins}: {result.seconds:.1f} s")
    for heading, rows in (("slowest changes", result.slowest), ("slowest reads", result.reads)):
        print(f"{heading} (calls, seconds in all, ms each):")
        for kind, n, seconds in rows:
            print(f"  {n:>6} {seconds:8.2f} s {seconds / n * 1000:7.2f} ms  {kind}")


if __name__ == "__main__":
    main()
