"""`servicedb split plan|copy|sync|verify|cutover|rollback`, given the declaration, the services'
plans and connections to both sides; `servicedb.cli` parses the options and calls `run`."""

from collections.abc import Callable, Mapping

import psycopg

from servicedb.plan import ServicePlan
from servicedb.split.declaration import Split
from servicedb.split.move import STATE_SCHEMA, Connect, Mover, SplitError
from servicedb.split.source import KIND_WORDS, Relation, Source, problems, read_source

ACTIONS = ("plan", "copy", "sync", "verify", "cutover", "rollback")


def run(
    action: str,
    split: Split,
    plans: Mapping[str, ServicePlan],
    *,
    connect_source: Callable[[], psycopg.Connection],
    connect_target: Connect,
    out: Callable[[str], None],
    service: str | None = None,
    tables: tuple[str, ...] = (),
    timeout: float = 300.0,
) -> int:
    """Do `action` for `service` (all the declaration's services for plan, copy and verify); the exit code."""
    with connect_source() as conn:
        conn.execute("SET default_transaction_read_only = on")
        source = read_source(conn)
    services = [service] if service else list(split.moves)
    if action == "plan":
        return plan(split, source, {name: plans[name] for name in services}, connect_target, out)
    found = problems(split, source)
    if found:
        raise SplitError(
            f"the split of {split.database} has problems; `servicedb split plan {split.database}` says what to do:\n  "
            + "\n  ".join(found)
        )
    movers = [
        Mover(split, source, plans[name], connect_source=connect_source, connect_target=connect_target, out=out)
        for name in services
    ]
    if action == "copy":
        for mover in movers:
            mover.copy()
        return 0
    if action == "verify":
        differences = [d for mover in movers for d in mover.verify()]
        out(f"-- {len(differences)} tables differ" if differences else "-- every moved table is the same on both sides")
        return 1 if differences else 0
    (mover,) = movers
    if action == "sync":
        mover.sync(tables)
        return 0
    if action == "rollback":
        mover.rollback()
        return 0
    if not mover.cutover(timeout=timeout):
        return 1
    for line in instructions(split, plans[mover.service.service]):
        out(line)
    return 0


def plan(
    split: Split,
    source: Source,
    plans: Mapping[str, ServicePlan],
    connect_target: Connect,
    out: Callable[[str], None],
) -> int:
    """Per service, what moves and what it needs; the problems; exit 1 if there are any."""
    found = problems(split, source)
    for name, service in plans.items():
        relations = [
            source.relations[key] for key in map(split.qualified, split.moves[name]) if key in source.relations
        ]
        size = sum(r.bytes for r in relations)
        out(
            f"-- {name}: {len(relations)} tables and views, {size / 2**20:,.1f} MiB -> "
            f"database {service.database.name}, schema {service.schema.name}, owned by {service.owner.name}"
        )
        for relation in relations:
            out(f"--   {describe(relation)}")
        found += target_problems(split, relations, service, connect_target)
    staying = sorted(".".join(key) for key in split.staying)
    if staying:
        out(f"-- stays in {split.database}: {', '.join(staying)}")
    for problem in found:
        out(f"-- problem: {problem}")
    out(f"-- {len(found)} problems: fix them before copying" if found else "-- no problems: ready to copy")
    return 1 if found else 0


def describe(relation: Relation) -> str:
    """One line on a table: rows, size, and what comes with it."""
    if relation.kind == "v":
        return f"{relation.qualified}: view of {', '.join('.'.join(r) for r in sorted(relation.reads))}"
    rows = f"~{relation.rows:,} rows" if relation.rows >= 0 else "rows not counted yet (never analyzed)"
    parts = [f"{KIND_WORDS[relation.kind]} {relation.qualified}: {rows}, {relation.bytes / 2**20:,.1f} MiB"]
    for label, names in (
        ("sequences", [s.name for s in relation.sequences]),
        ("constraints", [c.name for c in relation.constraints]),
        ("indexes", [name for name, _ in relation.indexes]),
        ("triggers", [name for name, _ in relation.triggers]),
        ("types", [t.name for t in relation.types]),
        ("functions", [f.signature for f in relation.functions]),
    ):
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return "; ".join(parts)


def target_problems(
    split: Split, relations: list[Relation], service: ServicePlan, connect_target: Connect
) -> list[str]:
    """A service database that is not there yet, and names taken in its schema by anything split did not make."""
    try:
        conn = connect_target(service.database.name)
    except Exception as error:  # the CLI's connect says what and where; anything else is the same problem
        return [
            f"{service.service}: cannot open its database ({error}); deploy the service first "
            "(cdktf deploy or servicedb apply)"
        ]
    with conn:
        moved = set()
        if conn.execute("SELECT to_regclass(%s)", (f"{STATE_SCHEMA}.moved",)).fetchone()[0]:
            moved = set(
                conn.execute(
                    f"SELECT source_schema, source_table FROM {STATE_SCHEMA}.moved WHERE source_database = %s",
                    (split.database,),
                )
            )
        taken = {
            (schema, name)
            for schema, name in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = %s",
                (service.schema.name,),
            )
        }
    clashes = []
    for relation in relations:
        if relation.key not in moved and (service.schema.name, relation.name) in taken:
            clashes.append(
                f"{service.database.name}.{service.schema.name}.{relation.name} exists already, and split did not "
                f"make it: {relation.qualified} cannot be moved there; drop or rename it in {service.database.name}"
            )
    return clashes


def instructions(split: Split, service: ServicePlan) -> list[str]:
    """What to change in the service once its tables are its own."""
    app, migrator = service.app, service.migrator
    secret = {s.username: s.name for s in service.secrets}
    lines = [
        f"-- now point {service.service} at its own database:",
        f"--   the app connects to database {service.database.name} as {app.name}, with search_path "
        f"{service.schema.name}: the secret {secret.get(app.name, '(IAM: no secret)')} has both, and the ECS task's "
        "container secrets (ServiceDatabase.container_secrets) carry it",
        f"--   migrations run as {migrator.name} (secret {secret.get(migrator.name, '(IAM: no secret)')}) in schema "
        f"{service.schema.name}; a migration-history table among the tables came along: point the tool's version "
        "table at that schema, and nothing runs again",
        f"--   its tables in {split.database} are read-only now, and stay there unchanged; "
        f"`servicedb split rollback {split.database} --service {service.service}` gives their writes back",
    ]
    return lines
