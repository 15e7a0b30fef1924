"""The PostgreSQL section of BENCHMARKS.md: apply and verify of many services on a real server.

    python -m bench.postgres [--sizes 25,50,100]

For each size, a fresh local server (the embedded PostgreSQL the tests use), services that each
read the previous one, then: `apply` from empty, a second `apply` with nothing to do, and
`verify`. Queries and connections are counted on the client, so the count is exact: it must grow
with the services, never with their square.
"""

import argparse
import functools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from servicedb.cli import Server, apply_plan, local_environment, local_services
from servicedb.passwords import LocalSecrets
from servicedb.plan import plan_services
from servicedb.server import Binaries, LocalServer, available_binaries, scratch_directory
from servicedb.verify import prove_logins, verify

TARGETS = {"apply": 10.0, "noop": 2.0, "verify": 5.0}
"""Seconds, for 100 services."""

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"


@functools.cache
def servers() -> list[Binaries]:
    """Every server the machine can start, the embedded one (16) first: the one the bench uses
    unless a section says otherwise. Found once (each is asked its version)."""
    return available_binaries(NODE_MODULES)


def scale_servers() -> list[Binaries]:
    """The servers the scale section runs on: PostgreSQL 16 and newer, where a role's creator is
    made a member of it, oldest first."""
    return sorted((b for b in servers() if b.major >= 16), key=lambda b: b.major)


def server(binaries: Binaries | None = None) -> str:
    """A server's name in the report, e.g. `16.2 (pgserver)`; the bench's own by default."""
    binaries = binaries or servers()[0]
    source = "npm" if "node_modules" in binaries.source else binaries.source
    return f"{binaries.version} ({source})"


class Counted(psycopg.Connection):
    """A connection that counts what it sends, in class-wide counters."""

    connections = 0
    queries = 0
    create_database_seconds = 0.0
    """Time spent in `CREATE DATABASE` statements: the server's own work, whoever asks for it."""

    @classmethod
    def connect(cls, *args: object, **kwargs: object) -> "Counted":
        Counted.connections += 1
        return super().connect(*args, **kwargs)

    def execute(self, query: object, *args: object, **kwargs: object) -> psycopg.Cursor:
        Counted.queries += 1
        started = time.perf_counter()
        try:
            return super().execute(query, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            if isinstance(query, str) and query.startswith("CREATE DATABASE"):
                Counted.create_database_seconds += time.perf_counter() - started

    @staticmethod
    def reset() -> None:
        Counted.connections = Counted.queries = 0
        Counted.create_database_seconds = 0.0


class CountingServer(Server):
    connection_class = Counted


@dataclass(frozen=True)
class Phase:
    seconds: float
    queries: int
    connections: int


@dataclass(frozen=True)
class Result:
    services: int
    statements: int
    apply: Phase
    noop: Phase
    verify: Phase
    logins: Phase | None
    """`verify --logins`: the matrix, then every login user tried on every database; None when not measured."""
    ok: bool
    create_database: float = 0.0
    """Seconds of `apply` from empty spent in its `CREATE DATABASE` statements."""
    database_bytes: int = 0
    """The size of every database on the server after `apply` from empty (`pg_database_size`)."""


def write_services(directory: Path, count: int) -> None:
    for index in range(count):
        reads = f"reads=(Reads(service='svc{index - 1:03d}'),)" if index else ""
        (directory / f"svc{index:03d}.py").write_text(
            f"from servicedb import Reads, Service\n\nSERVICE = Service(name='svc{index:03d}', {reads})\n"
        )


def measure(count: int, *, logins: bool = True, binaries: Binaries | None = None) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="servicedb-bench-") as name,
        LocalServer(binaries or servers()[0]) as local,
    ):
        directory = Path(name)
        write_services(directory, count)
        environment = local_environment("127.0.0.1", local.port)
        plan = plan_services(local_services(directory, environment), environment)
        server = CountingServer(local.admin_url_with_password)
        store = LocalSecrets(directory / "secrets.json")
        lines: list[str] = []

        def timed(action: object) -> Phase:
            Counted.reset()
            started = time.perf_counter()
            action()
            return Phase(time.perf_counter() - started, Counted.queries, Counted.connections)

        apply = timed(lambda: apply_plan(server, plan, store, out=lines.append))
        create_database = Counted.create_database_seconds
        with server.connect() as conn:
            database_bytes = int(conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()[0])
        statements = int(lines[-1].split()[2])
        noop = timed(lambda: apply_plan(server, plan, store, out=lines.append))
        assert lines[-1] == "-- nothing to do: the server matches the declarations", lines[-1]
        reports = []

        def run_verify() -> None:
            with server.connect() as conn:
                reports.append(verify(conn, plan, connect=server.connect))

        checked = timed(run_verify)

        def run_logins() -> None:
            with server.connect() as conn:
                report = verify(conn, plan, connect=server.connect)
            reports.append(prove_logins(report, plan, store.stored_passwords(), server.connect_as))

        tried = timed(run_logins) if logins else None
        ok = all(report.ok for report in reports)
        return Result(count, statements, apply, noop, checked, tried, ok, create_database, database_bytes)


def create_databases(count: int, binaries: Binaries | None = None) -> float:
    """Seconds for the superuser to create `count` empty databases on a fresh server with no other
    roles: what the server and the machine alone make of as many databases as services."""
    with (
        LocalServer(binaries or servers()[0]) as local,
        psycopg.connect(local.superuser_url_with_password, autocommit=True) as conn,
    ):
        started = time.perf_counter()
        for index in range(count):
            conn.execute(f"CREATE DATABASE alone{index:04d}")
        return time.perf_counter() - started


def scratch_writes(gigabytes: int) -> list[float]:
    """Seconds to write each of `gigabytes` GiB, one after the other, into one file where the
    throwaway servers keep their data, then remove it: what the machine charges for memory (or disk
    cache) as a server's files grow. A virtual machine that hands freed memory back to its host
    charges more for each gigabyte beyond what it keeps."""
    chunk = bytes(1 << 20)
    took = []
    with tempfile.NamedTemporaryFile(dir=scratch_directory(), prefix="servicedb-bench-") as file:
        for _ in range(gigabytes):
            started = time.perf_counter()
            for _ in range(1024):
                file.write(chunk)
            file.flush()
            took.append(time.perf_counter() - started)
    return took


def median_phase(phases: list[Phase]) -> Phase:
    return Phase(
        statistics.median(p.seconds for p in phases),
        int(statistics.median(p.queries for p in phases)),
        int(statistics.median(p.connections for p in phases)),
    )


def summarize(runs: list[Result]) -> Result:
    """The medians of several runs of one size."""
    return Result(
        services=runs[0].services,
        statements=runs[0].statements,
        apply=median_phase([r.apply for r in runs]),
        noop=median_phase([r.noop for r in runs]),
        verify=median_phase([r.verify for r in runs]),
        logins=median_phase([r.logins for r in runs if r.logins]) if any(r.logins for r in runs) else None,
        ok=all(r.ok for r in runs),
        create_database=statistics.median(r.create_database for r in runs),
        database_bytes=runs[0].database_bytes,
    )


def verdicts(results: list[Result]) -> list[str]:
    largest = results[-1]
    lines = []
    for key, label in (("apply", "`apply` from empty"), ("noop", "a second `apply`"), ("verify", "`verify`")):
        took = getattr(largest, key).seconds
        met = "met" if took < TARGETS[key] else "not met"
        lines.append(
            f"{label}: {took:.2f} s for {largest.services} services (target: under {TARGETS[key]:.0f} s), {met}"
        )
    return lines


def logins_cell(phase: Phase | None) -> str:
    return f"{phase.seconds:.2f} s ({phase.connections} connections)" if phase else "-"


SCALE_SIZES = (100, 300, 1000)
SCALE_TARGET = 1.2
"""Linear, with 20% to spare: 1,000 services in at most 12x the time of 100."""


def ratio_cell(took: float, first: float) -> str:
    return f"{took:.2f} s ({took / first:.1f}x)"


def grown(result: Result, first: Result, phase: str) -> str:
    return ratio_cell(getattr(result, phase).seconds, getattr(first, phase).seconds)


def scale_section(results: list[Result], alone: list[float]) -> str:
    """Markdown: apply, a second apply and verify at each size, and their growth from the first;
    the part of apply from empty that is CREATE DATABASE, and as many databases created alone."""
    first, largest = results[0], results[-1]
    rows = [
        f"| {r.services} | {r.statements} | {grown(r, first, 'apply')} "
        f"| {ratio_cell(r.create_database, first.create_database)} "
        f"| {ratio_cell(r.apply.seconds - r.create_database, first.apply.seconds - first.create_database)} "
        f"| {ratio_cell(seconds, alone[0])} | {grown(r, first, 'noop')} | {grown(r, first, 'verify')} |"
        for r, seconds in zip(results, alone, strict=True)
    ]
    sizes = largest.services / first.services
    verdicts = []
    for phase, label in (("apply", "apply from empty"), ("noop", "a second apply"), ("verify", "verify")):
        ratio = getattr(largest, phase).seconds / getattr(first, phase).seconds
        met = "met" if ratio <= SCALE_TARGET * sizes else "not met"
        verdicts.append(
            f"- {label}: {ratio:.1f}x the time of {first.services} services at {largest.services} "
            f"({sizes:.0f}x the services; target at most {SCALE_TARGET * sizes:.0f}x), {met}."
        )
    rest = (largest.apply.seconds - largest.create_database) / (first.apply.seconds - first.create_database)
    verdicts.append(
        f"- apply from empty without its CREATE DATABASE statements: {rest:.1f}x; its CREATE DATABASE "
        f"statements: {largest.create_database / first.create_database:.1f}x; the superuser creating as many "
        f"empty databases on a fresh server with no roles: {alone[-1] / alone[0]:.1f}x."
    )
    verdicts.append(
        "- the server's databases after apply from empty: "
        + ", ".join(f"{r.database_bytes / (1 << 30):.2f} GiB for {r.services} services" for r in results)
        + f" ({largest.database_bytes / largest.services / (1 << 20):.1f} MiB a database)."
    )
    return "\n".join(
        [
            "| services | statements | apply from empty | its CREATE DATABASE | the rest of it "
            "| CREATE DATABASE alone | second apply | verify |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *verdicts,
        ]
    )


def section(results: list[Result]) -> str:
    """Markdown for BENCHMARKS.md, from the medians of each size."""
    rows = [
        f"| {r.services} | {r.statements} | {r.apply.seconds:.2f} s | {r.noop.seconds:.2f} s "
        f"({r.noop.queries} queries, {r.noop.connections} connections) | {r.verify.seconds:.2f} s "
        f"({r.verify.queries} queries, {r.verify.connections} connections) | {logins_cell(r.logins)} "
        f"| {'yes' if r.ok else 'NO'} |"
        for r in results
    ]
    first, largest = results[0], results[-1]
    growth = largest.services / first.services
    query_growth = largest.verify.queries / first.verify.queries
    return "\n".join(
        [
            "| services | statements | apply from empty | second apply (nothing to do) | verify "
            "| verify --logins | verify exit 0 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *(f"- {line}." for line in verdicts(results)),
            f"- From {first.services} to {largest.services} services ({growth:.1f}x), verify's queries grow "
            f"{query_growth:.1f}x: one round per managed database and a fixed few, never services x services. "
            "A second apply also opens one short connection per login user, to check that its password "
            "still logs in.",
            f"- `verify --logins` logs in as each of the {2 * largest.services} login users to each of the "
            f"{largest.services} databases: {2 * largest.services * largest.services} logins, 8 at a time, "
            "each a SCRAM-SHA-256 authentication; it grows with users x databases by design.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres")
    parser.add_argument("--sizes", default="25,50,100")
    args = parser.parse_args()
    results = [summarize([measure(int(size))]) for size in args.sizes.split(",")]
    print(section(results))


if __name__ == "__main__":
    main()
