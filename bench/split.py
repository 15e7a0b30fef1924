"""The split section of BENCHMARKS.md: `servicedb split copy` of one big table, side by side with
`pg_dump -t ... | pg_restore` of the same table on the same server.

    python -m bench.split [--rows 3000000] [--runs 3]

One fresh local server (the embedded PostgreSQL the tests use). Its shared database `app` is owned
by a login user, `monolith`, and holds one table of `--rows` rows; the service `orders` is applied.
Each run, in turn: `servicedb split copy` of the table into `orders` (create, copy, primary key and
index after the data, sequence, record), then `pg_dump -Fc -t public.big` piped into `pg_restore`
into a database of its own, with pg_dump's default compression and with none (`-Z0`). Each target
is emptied between runs.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench import postgres
from servicedb.cli import Server, apply_plan, local_environment, local_services, main
from servicedb.passwords import LocalSecrets
from servicedb.plan import plan_services
from servicedb.server import LocalServer

ROWS = 3_000_000
METHODS = ("split copy", "pg_dump -Fc, piped to pg_restore", "pg_dump -Fc -Z0, piped to pg_restore")

TABLE = """
CREATE TABLE big (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    total numeric(12, 2) NOT NULL,
    placed_at timestamptz NOT NULL,
    note text
);
INSERT INTO big (customer, total, placed_at, note)
    SELECT 'customer ' || (i % 50000), (i % 100000) / 100.0, '2026-01-01'::timestamptz + i * interval '1 second',
           CASE WHEN i % 3 = 0 THEN NULL ELSE md5(i::text) END
    FROM generate_series(1, %s) i;
CREATE INDEX big_customer ON big (customer);
ANALYZE big;
"""


@dataclass(frozen=True)
class Result:
    rows: int
    bytes: int
    """The table's size with its indexes in the shared database."""
    seconds: dict[str, list[float]]

    def median(self, method: str) -> float:
        return statistics.median(self.seconds[method])


def measure(rows: int = ROWS, runs: int = 3) -> Result:
    binaries = postgres.servers()[0]
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="servicedb-bench-split-") as name, LocalServer(binaries) as local:
        project = Path(name)
        (project / "services").mkdir()
        (project / "services" / "orders.py").write_text(
            "from servicedb import Service\n\nSERVICE = Service(name='orders')\n"
        )
        (project / "splits").mkdir()
        (project / "splits" / "app.py").write_text(
            "from servicedb import Split\n\nSPLIT = Split(database='app', moves={'orders': ('big',)})\n"
        )
        with psycopg.connect(local.superuser_url_with_password, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE monolith LOGIN PASSWORD {}").format(sql.Literal(password)))
            conn.execute("CREATE DATABASE app OWNER monolith")
            conn.execute("CREATE DATABASE restored OWNER servicedb_admin")
        source = local.url("monolith", password, "app")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(TABLE.replace("%s", str(rows)))
            size = conn.execute("SELECT pg_total_relation_size('big')").fetchone()[0]
        environment = local_environment("127.0.0.1", local.port)
        plan = plan_services(local_services(project / "services", environment), environment)
        admin = Server(local.admin_url_with_password)
        apply_plan(admin, plan, LocalSecrets(project / "secrets.json"), out=lambda line: None)
        argv = ["split", "copy", "app", "--from", source, "--url", local.admin_url_with_password]
        argv += ["--services", str(project / "services")]
        bin_dir = binaries.bin_dir
        dump = [str(bin_dir / "pg_dump"), "-Fc", "-t", "public.big", "-d", source]
        restore = [
            str(bin_dir / "pg_restore"),
            "--no-owner",
            "--no-acl",
            "-d",
            local.url("servicedb_admin", local.admin_password, "restored"),
        ]
        seconds: dict[str, list[float]] = {method: [] for method in METHODS}
        for _ in range(runs):
            started = time.perf_counter()
            lines: list[str] = []
            if main(argv, out=lines.append) != 0:
                raise SystemExit("bench: servicedb split copy failed:\n" + "\n".join(lines))
            seconds["split copy"].append(time.perf_counter() - started)
            with psycopg.connect(local.admin_url_with_password, dbname="orders", autocommit=True) as conn:
                conn.execute("SET ROLE orders_owner")
                conn.execute("DROP TABLE orders.big")
                conn.execute("RESET ROLE")
                conn.execute("DELETE FROM servicedb_split.moved")
            for method, extra in zip(METHODS[1:], ([], ["-Z0"]), strict=True):
                seconds[method].append(piped([*dump, *extra], restore))
                with psycopg.connect(local.admin_url_with_password, dbname="restored", autocommit=True) as conn:
                    conn.execute("DROP TABLE big")
        return Result(rows=rows, bytes=size, seconds=seconds)


def piped(dump: list[str], restore: list[str]) -> float:
    """Seconds for `dump | restore`, both to the end."""
    env = {**os.environ, "PGAPPNAME": "bench"}
    started = time.perf_counter()
    dumping = subprocess.Popen(dump, stdout=subprocess.PIPE, env=env)
    restoring = subprocess.run(restore, stdin=dumping.stdout, env=env, capture_output=True, text=True)
    dumping.stdout.close()
    if dumping.wait() != 0 or restoring.returncode != 0:
        raise SystemExit(f"bench: pg_dump | pg_restore failed: {restoring.stderr}")
    return time.perf_counter() - started


def section(result: Result) -> str:
    """Markdown for BENCHMARKS.md."""
    copy = result.median("split copy")
    rows = [
        f"| {method} | {result.median(method):.2f} s | {result.rows / result.median(method):,.0f} rows/s "
        f"| {result.median(method) / copy:.2f}x |"
        for method in METHODS
    ]
    runs = len(result.seconds["split copy"])
    return "\n".join(
        [
            f"One table of {result.rows:,} rows ({result.bytes / 2**20:,.0f} MiB with its two indexes: bigserial "
            f"primary key, text, numeric, timestamptz, a nullable text) from the shared database into the "
            f"service's, medians of {runs} runs side by side (`bench/split.py`). Each method creates the table, "
            "copies the rows and builds both indexes after them; the last column is its time over split copy's "
            "(above 1: slower than split copy).",
            "",
            "| method | time | rate | x split copy |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.split")
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(section(measure(args.rows, args.runs)))


if __name__ == "__main__":
    run()
