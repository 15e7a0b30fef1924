"""Moving the declared tables into the services' databases: copy, sync, verify, cutover, rollback.

Each service's database records what has moved in `servicedb_split.moved`, a table of the admin's
(no service role can reach the schema): one row per table, written in the same transaction that
creates and fills the table, so that an interrupted run leaves a table either moved and recorded or
absent. Every command reads it first and does only what is left, so each is safe to rerun.

In the shared database, nothing but grants ever changes: `cutover` revokes INSERT, UPDATE, DELETE
and TRUNCATE on the service's tables from whoever holds them (recording who did, beside the table's
row), and `rollback` grants exactly those back. `sync` adds a publication and a replication slot
there, which `cutover` drops again.
"""

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from servicedb.plan import ObjectType, ServicePlan
from servicedb.split.declaration import Split
from servicedb.split.source import Name, Relation, Source

STATE_SCHEMA = "servicedb_split"
STATE_TABLE = sql.Identifier(STATE_SCHEMA, "moved")
WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
BATCH_BYTES = 1 << 20
PROGRESS_SECONDS = 5.0
"""How often a long copy says how far it is."""
SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1"
"""Both sides read and write values in one text form."""


class SplitError(RuntimeError):
    """A step cannot be done; the message says which table, why, and what to do."""


@dataclass(frozen=True, slots=True)
class Moved:
    """A row of `servicedb_split.moved`: a table in the service's database, and how it got there."""

    source: Name
    schema: str
    """Where the table is in the service's database: the service's schema, or, while `sync`
    replicates into it, a schema named as the shared one."""
    method: str
    writers: dict[str, list[str]] | None
    """The write privileges `cutover` revoked in the shared database, by grantee."""
    cut_over: bool


@dataclass(frozen=True, slots=True)
class Difference:
    table: str
    source: str
    target: str


Connect = Callable[[str | None], psycopg.Connection]


class Mover:
    """One service's side of the split: its database (as the admin, acting as its owner) and the shared one."""

    def __init__(
        self,
        split: Split,
        source: Source,
        service: ServicePlan,
        *,
        connect_source: Callable[[], psycopg.Connection],
        connect_target: Connect,
        out: Callable[[str], None],
    ) -> None:
        self.split = split
        self.source = source
        self.service = service
        self.connect_source = connect_source
        self.connect_target = connect_target
        self.out = out
        self.relations = [
            source.relations[name]
            for name in [split.qualified(t) for t in split.moves.get(service.service, ())]
            if name in source.relations
        ]
        self.tables = [r for r in self.relations if r.kind != "v"]
        self.views = [r for r in self.relations if r.kind == "v"]

    @property
    def database(self) -> str:
        return self.service.database.name

    @property
    def schema(self) -> str:
        return self.service.schema.name

    @property
    def owner(self) -> str:
        return self.service.owner.name

    @property
    def slot(self) -> str:
        return f"servicedb_split_{self.split.database}_{self.service.service}"[:63]

    # -- the record -------------------------------------------------------------------------------

    def state(self, target: psycopg.Connection) -> dict[Name, Moved]:
        exists = target.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{STATE_SCHEMA}.moved",)).fetchone()[0]
        if not exists:
            return {}
        found = {}
        for schema, table, where, method, writers, cut_over in target.execute(
            sql.SQL(
                "SELECT source_schema, source_table, target_schema, method, writers, cut_over_at IS NOT NULL "
                "FROM {} WHERE source_database = %s"
            ).format(STATE_TABLE),
            (self.split.database,),
        ):
            found[(schema, table)] = Moved((schema, table), where, method, writers, cut_over)
        return found

    def ensure_state(self, target: psycopg.Connection) -> None:
        """The record's schema and table, the admin's: no service role may use the schema."""
        target.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STATE_SCHEMA)))
        target.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                    source_database text NOT NULL,
                    source_schema text NOT NULL,
                    source_table text NOT NULL,
                    target_schema text NOT NULL,
                    method text NOT NULL CHECK (method IN ('copy', 'sync')),
                    moved_at timestamptz NOT NULL DEFAULT now(),
                    writers jsonb,
                    cut_over_at timestamptz,
                    PRIMARY KEY (source_database, source_schema, source_table))"""
            ).format(STATE_TABLE)
        )

    def record(self, target: psycopg.Connection, relation: Relation, schema: str, method: str) -> None:
        target.execute(
            sql.SQL(
                "INSERT INTO {} (source_database, source_schema, source_table, target_schema, method) "
                "VALUES (%s, %s, %s, %s, %s)"
            ).format(STATE_TABLE),
            (self.split.database, relation.schema, relation.name, schema, method),
        )

    # -- creating tables --------------------------------------------------------------------------

    def as_owner(self, target: psycopg.Connection, *path: str) -> None:
        target.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.owner)))
        target.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.SQL(", ").join(map(sql.Identifier, path))))

    def create_needs(self, target: psycopg.Connection, relation: Relation) -> None:
        """The enums, domains and functions the table uses, in the service's schema, unless there."""
        for type_ in relation.types:
            if not exists(
                target,
                "SELECT 1 FROM pg_type WHERE typname = %s AND typnamespace = %s::regnamespace",
                (type_.name, self.schema),
            ):
                target.execute(type_.create)
        for function in relation.functions:
            name = function.signature.split("(", 1)[0].strip('"')
            if not exists(
                target,
                "SELECT 1 FROM pg_proc WHERE proname = %s AND pronamespace = %s::regnamespace",
                (name, self.schema),
            ):
                target.execute(function.create)

    def create_table(self, target: psycopg.Connection, relation: Relation, *, constraints: bool) -> None:
        """The table with its columns and own sequences; with `constraints`, all the rest at once."""
        for sequence in relation.sequences:
            if not sequence.identity:
                target.execute(
                    sql.SQL("CREATE SEQUENCE IF NOT EXISTS {} " + sequence.definition).format(
                        sql.Identifier(sequence.name)
                    )
                )
        columns = sql.SQL(", ").join(sql.SQL(column.definition().replace("%", "%%")) for column in relation.columns)
        target.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(relation.name), columns))
        for sequence in relation.sequences:
            if sequence.owned_by:
                target.execute(
                    sql.SQL("ALTER SEQUENCE {} OWNED BY {}.{}").format(
                        sql.Identifier(sequence.name), sql.Identifier(relation.name), sql.Identifier(sequence.owned_by)
                    )
                )
        if relation.comment is not None:
            target.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    sql.Identifier(relation.name), sql.Literal(relation.comment)
                )
            )
        for column in relation.columns:
            if column.comment is not None:
                target.execute(
                    sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                        sql.Identifier(relation.name), sql.Identifier(column.name), sql.Literal(column.comment)
                    )
                )
        if constraints:
            self.finish_table(target, relation)

    def finish_table(self, target: psycopg.Connection, relation: Relation) -> None:
        """Constraints but foreign keys, indexes and triggers: after the data, as pg_restore does."""
        for constraint in relation.constraints:
            if constraint.kind != "f":
                target.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + constraint.definition.replace("%", "%%")).format(
                        sql.Identifier(relation.name), sql.Identifier(constraint.name)
                    )
                )
        for _, definition in relation.indexes:
            target.execute(definition.replace("%", "%%"))
        for _, definition in relation.triggers:
            target.execute(definition.replace("%", "%%"))

    def add_foreign_keys(
        self, target: psycopg.Connection, moved: Mapping[Name, Moved], touching: Relation | None = None
    ) -> None:
        """Each foreign key between two of the service's tables (from or to `touching`, when given)
        once both are here and it is not."""
        for relation in self.tables:
            if relation.key not in moved:
                continue
            for constraint in relation.foreign_keys:
                other = moved.get(constraint.references or ("", ""))
                if touching is not None and touching.key not in (relation.key, constraint.references):
                    continue
                if other is None or has_constraint(target, moved[relation.key].schema, relation.name, constraint.name):
                    continue
                with target.transaction():
                    self.as_owner(target, moved[relation.key].schema, other.schema, self.schema)
                    try:
                        target.execute(
                            sql.SQL(
                                "ALTER TABLE {} ADD CONSTRAINT {} " + constraint.definition.replace("%", "%%")
                            ).format(sql.Identifier(relation.name), sql.Identifier(constraint.name))
                        )
                    except psycopg.errors.ForeignKeyViolation:
                        raise SplitError(
                            f"{relation.qualified}: its foreign key {constraint.name} does not hold on the copies: "
                            "their rows were copied at different times while the shared database was written; rerun "
                            f"`servicedb split cutover {self.split.database} --service {self.service.service}`, which "
                            "stops the writes and copies again what changed"
                        ) from None

    # -- copy -------------------------------------------------------------------------------------

    def copy(self) -> int:
        """Create and fill each table not moved yet, one transaction per table, from one snapshot."""
        copied = 0
        with self.connect_target(self.database) as target, self.connect_source() as source:
            target.execute(SESSION)
            source.execute(SESSION)
            self.ensure_state(target)
            moved = self.state(target)
            self.add_foreign_keys(target, moved)  # those a run interrupted after a table's commit left out
            source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            for relation in self.tables:
                if relation.key in moved:
                    self.out(f"-- {relation.qualified}: in {self.database}.{moved[relation.key].schema} already")
                    continue
                self.check_free(target, relation.name, self.schema)
                started = time.monotonic()
                with target.transaction():
                    self.as_owner(target, self.schema)
                    self.create_needs(target, relation)
                    self.create_table(target, relation, constraints=False)
                    count = self.copy_rows(source, target, relation)
                    self.finish_table(target, relation)
                    self.set_sequences(source, target, relation)
                    target.execute("RESET ROLE")
                    self.record(target, relation, self.schema, "copy")
                self.out(
                    f"-- {relation.qualified} -> {self.database}.{self.schema}.{relation.name}: "
                    f"{count:,} rows in {time.monotonic() - started:.1f} s"
                )
                copied += 1
                moved = self.state(target)
                self.add_foreign_keys(target, moved, touching=relation)
            source.execute("COMMIT")
            copied += self.create_views(target, moved)
        return copied

    def copy_rows(self, source: psycopg.Connection, target: psycopg.Connection, relation: Relation) -> int:
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in relation.copied_columns)
        # The table's own rows, as pg_dump reads them: COPY of a table never reads its children.
        reading = sql.SQL("COPY {} ({}) TO STDOUT").format(sql.Identifier(relation.schema, relation.name), columns)
        writing = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(relation.name), columns)
        progress = Progress(relation.qualified, relation.rows, self.out)
        with target.cursor().copy(writing) as into:
            buffer = bytearray()
            for row in copy_out(source, reading.as_string(source)):
                buffer += row
                if len(buffer) >= BATCH_BYTES:  # rows come out one by one, and go in a MiB at a time
                    progress.add(buffer)
                    into.write(bytes(buffer))
                    buffer.clear()
            if buffer:
                progress.add(buffer)
                into.write(bytes(buffer))
        return progress.rows

    def set_sequences(self, source: psycopg.Connection, target: psycopg.Connection, relation: Relation) -> None:
        """Each of the table's sequences at the shared one's value."""
        for sequence in relation.sequences:
            last, called = source.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(sequence.schema, sequence.name))
            ).fetchone()
            if sequence.identity:
                target.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s, %s)",
                    (sql.Identifier(relation.name).as_string(target), sequence.identity, last, called),
                )
            else:
                target.execute(
                    "SELECT setval(%s::regclass, %s, %s)",
                    (sql.Identifier(sequence.name).as_string(target), last, called),
                )

    def create_views(self, target: psycopg.Connection, moved: Mapping[Name, Moved]) -> int:
        created = 0
        for view in self.views:
            if view.key in moved or not all(read in moved for read in view.reads):
                continue
            with target.transaction():
                self.as_owner(target, self.schema, *sorted({m.schema for m in moved.values()}))
                target.execute(
                    sql.SQL("CREATE VIEW {} AS " + (view.view_definition or "").rstrip(";").replace("%", "%%")).format(
                        sql.Identifier(view.name)
                    )
                )
                target.execute("RESET ROLE")
                self.record(target, view, self.schema, "copy")
            self.out(f"-- view {view.qualified} -> {self.database}.{self.schema}.{view.name}")
            created += 1
        return created

    def check_free(self, target: psycopg.Connection, name: str, schema: str) -> None:
        if exists(
            target, "SELECT 1 FROM pg_class WHERE relname = %s AND relnamespace = %s::regnamespace", (name, schema)
        ):
            raise SplitError(
                f"{self.database}.{schema}.{name} exists already and servicedb split did not make it: move or drop "
                "it in the service's database (or rename the table in the shared one), then rerun"
            )

    # -- sync -------------------------------------------------------------------------------------

    def sync(self, tables: Iterable[str] = ()) -> None:
        """Replicate the service's tables not moved yet from the shared database: create them, a
        publication and slot there, and a subscription here that copies and follows them."""
        wanted = {self.split.qualified(t) for t in tables} or {r.key for r in self.tables}
        unknown = wanted - {r.key for r in self.tables}
        if unknown:
            names = ", ".join(".".join(name) for name in sorted(unknown))
            raise SplitError(f"--table {names}: not a table the declaration gives to {self.service.service}")
        with self.connect_target(self.database) as target:
            self.ensure_state(target)
            moved = self.state(target)
            new = [r for r in self.tables if r.key in wanted and r.key not in moved]
            for relation in self.tables:
                if relation.key in wanted and relation.key in moved and moved[relation.key].method == "copy":
                    self.out(
                        f"-- {relation.qualified}: copied already, not replicated; cutover copies it again if written"
                    )
            for relation in new:
                # Logical replication finds a table by its schema and name: it arrives under the shared
                # one's schema name, and cutover moves it into the service's schema.
                self.check_free(target, relation.name, relation.schema)
                if relation.schema != self.schema:
                    self.check_free(target, relation.name, self.schema)
            for relation in new:
                with target.transaction():
                    target.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.owner)))
                    target.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(relation.schema)))
                    self.as_owner(target, self.schema)
                    self.create_needs(target, relation)
                    self.as_owner(target, relation.schema, self.schema)
                    self.create_table(target, relation, constraints=True)
                    target.execute("RESET ROLE")
                    self.record(target, relation, relation.schema, "sync")
                self.out(f"-- {relation.qualified}: created in {self.database}.{relation.schema}, to be replicated")
            moved = self.state(target)
            self.add_foreign_keys(target, moved)
            synced = [
                r
                for r in self.tables
                if moved.get(r.key) and moved[r.key].method == "sync" and not moved[r.key].cut_over
            ]
            if synced:
                self.subscribe(target, synced)
        if synced:
            self.report_sync()

    def subscribe(self, target: psycopg.Connection, tables: list[Relation]) -> None:
        names = sql.SQL(", ").join(sql.Identifier(r.schema, r.name) for r in tables)
        with self.connect_source() as source:
            published = {
                (schema, name)
                for schema, name in source.execute(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (self.slot,)
                )
            }
            if not exists(source, "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.slot,)):
                source.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(self.slot), names))
                self.out(f"-- publication {self.slot} in {self.split.database}")
            elif missing := [r for r in tables if r.key not in published]:
                source.execute(
                    sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                        sql.Identifier(self.slot), sql.SQL(", ").join(sql.Identifier(r.schema, r.name) for r in missing)
                    )
                )
            if not exists(source, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)):
                # Apart from the subscription: on one cluster, CREATE SUBSCRIPTION would wait for itself.
                source.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))
                self.out(f"-- replication slot {self.slot}")
            conninfo = publisher_conninfo(source)
        if not exists(target, "SELECT 1 FROM pg_subscription WHERE subname = %s", (self.slot,)):
            target.execute(
                sql.SQL(
                    "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                    "WITH (create_slot = false, slot_name = {}, copy_data = true)"
                ).format(
                    sql.Identifier(self.slot), sql.Literal(conninfo), sql.Identifier(self.slot), sql.Literal(self.slot)
                )
            )
            self.out(f"-- subscription {self.slot} in {self.database}: copying, then following the shared tables")
        else:
            target.execute(
                sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)").format(
                    sql.Identifier(self.slot)
                )
            )

    def sync_status(
        self, target: psycopg.Connection, source: psycopg.Connection, since: str | None = None
    ) -> tuple[dict[str, str], int | None]:
        """Each replicated table's state (`ready` once copied and following), and how many bytes of
        the shared database's WAL, up to `since` (default: now), the subscription has yet to confirm."""
        states = {
            f"{schema}.{name}": SYNC_STATES.get(state, state)
            for schema, name, state in target.execute(
                """
                SELECT n.nspname, c.relname, r.srsubstate::text FROM pg_subscription_rel r
                JOIN pg_subscription s ON s.oid = r.srsubid JOIN pg_class c ON c.oid = r.srrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE s.subname = %s
                """,
                (self.slot,),
            )
        }
        row = source.execute(
            "SELECT pg_wal_lsn_diff(coalesce(%s::pg_lsn, pg_current_wal_lsn()), confirmed_flush_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (since, self.slot),
        ).fetchone()
        return states, (row[0] if row else None)

    def report_sync(self) -> None:
        with self.connect_target(self.database) as target, self.connect_source() as source:
            states, lag = self.sync_status(target, source)
        for table, state in sorted(states.items()):
            self.out(f"-- {table}: {state}")
        if lag is not None:
            self.out(f"-- replication lag: {lag:,} bytes")

    def wait_for_sync(self, target: psycopg.Connection, *, timeout: float) -> None:
        """Until every replicated table is ready and the subscription has everything written so far."""
        deadline = time.monotonic() + timeout
        with self.connect_source() as source:
            goal = source.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            while True:
                states, behind = self.sync_status(target, source, since=goal)
                if all(state == "ready" for state in states.values()) and (behind is None or behind <= 0):
                    return
                if time.monotonic() > deadline:
                    waiting = ", ".join(f"{t} {s}" for t, s in sorted(states.items()) if s != "ready")
                    raise SplitError(
                        f"replication into {self.database} has not caught up after {timeout:.0f} s "
                        f"(waiting for {waiting or 'the last changes'}); see the server's log for the "
                        "subscription's errors, then rerun cutover, or with a longer --timeout"
                    )
                time.sleep(0.2)

    def unsubscribe(self, target: psycopg.Connection) -> None:
        """Drop the subscription here, then the slot and publication in the shared database."""
        if exists(target, "SELECT 1 FROM pg_subscription WHERE subname = %s", (self.slot,)):
            name = sql.Identifier(self.slot)
            target.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
            target.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
            target.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))
        with self.connect_source() as source:
            for _ in range(50):  # the walsender lets go of the slot a moment after the subscription stops
                try:
                    if exists(source, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)):
                        source.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.1)
            source.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(self.slot)))
        self.out(f"-- replication {self.slot} removed")

    # -- verify -----------------------------------------------------------------------------------

    def differences(
        self, target: psycopg.Connection, moved: Mapping[Name, Moved], only: list[Relation] | None = None
    ) -> list[Difference]:
        """Per moved table not cut over yet (of `only`, when given), rows and a checksum of their
        content on both sides."""
        found = []
        with self.connect_source() as source:
            source.execute(SESSION)
            target.execute(SESSION)
            for relation in self.tables if only is None else only:
                here = moved.get(relation.key)
                if here is None:
                    found.append(Difference(relation.qualified, "a table", f"not in {self.database} yet"))
                elif not here.cut_over:
                    theirs = checksum(source, relation, relation.schema)
                    mine = checksum(target, relation, here.schema)
                    if theirs != mine:
                        found.append(Difference(relation.qualified, describe(theirs), describe(mine)))
        return found

    def verify(self) -> list[Difference]:
        with self.connect_target(self.database) as target:
            moved = self.state(target)
            found = self.differences(target, moved)
        for relation in self.tables:
            here = moved.get(relation.key)
            if here and here.cut_over:
                self.out(f"-- {relation.qualified}: cut over; {self.service.service} writes it in {self.database} now")
            elif here and not any(d.table == relation.qualified for d in found):
                self.out(f"-- {relation.qualified}: the same in {self.database}.{here.schema}")
        self.say(found)
        return found

    def say(self, differences: list[Difference]) -> None:
        for difference in differences:
            self.out(f"-- {difference.table} differs: shared {difference.source}, {self.database} {difference.target}")

    # -- cutover and rollback ---------------------------------------------------------------------

    def cutover(self, *, timeout: float) -> bool:
        """Stop the shared database's writes to the service's tables, let the copies catch up, prove
        them equal, and make them the service's; on any difference, give the writes back."""
        with self.connect_target(self.database) as target:
            moved = self.state(target)
            missing = [r.qualified for r in self.relations if r.key not in moved]
            if missing:
                raise SplitError(
                    f"{', '.join(missing)} not in {self.database} yet: run `servicedb split copy` (or sync) for "
                    f"{self.service.service} first"
                )
            if all(moved[r.key].cut_over for r in self.tables):
                self.out(f"-- {self.service.service} was cut over already")
                return True
            self.revoke_writes(target, moved)
            try:
                if any(moved[r.key].method == "sync" for r in self.tables):
                    self.wait_for_sync(target, timeout=timeout)
                # Each table is read once on each side; only what is copied again is read again.
                found = self.differences(target, moved)
                differing = {difference.table for difference in found}
                stale = [r for r in self.tables if moved[r.key].method == "copy" and r.qualified in differing]
                if stale:
                    self.refresh(target, stale, moved)
                    copied = {r.qualified for r in stale}
                    found = [d for d in found if d.table not in copied] + self.differences(target, moved, stale)
            except BaseException:
                self.give_writes_back(target)
                raise
            if found:
                self.say(found)
                self.give_writes_back(target)
                self.out(f"-- {self.service.service} is not cut over: the shared database's writes are back")
                return False
            self.finish(target, moved)
        return True

    def revoke_writes(self, target: psycopg.Connection, moved: Mapping[Name, Moved]) -> None:
        with self.connect_source() as source:
            with target.transaction():  # who could write, recorded before anything is revoked
                for relation in self.tables:
                    if moved[relation.key].writers is not None:
                        continue
                    writers: dict[str, list[str]] = {}
                    for grantee, privilege in source.execute(
                        """
                        SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type
                        FROM pg_class c CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                        LEFT JOIN pg_roles r ON r.oid = a.grantee
                        WHERE c.oid = %s AND a.privilege_type = ANY(%s) ORDER BY 1, 2
                        """,
                        (relation.oid, list(WRITES)),
                    ):
                        writers.setdefault(grantee, []).append(privilege)
                    target.execute(
                        sql.SQL(
                            "UPDATE {} SET writers = %s WHERE source_database = %s AND source_schema = %s "
                            "AND source_table = %s"
                        ).format(STATE_TABLE),
                        (json.dumps(writers), self.split.database, relation.schema, relation.name),
                    )
            state = self.state(target)
            try:
                with source.transaction():
                    for statement in self.writes(state, "REVOKE {} ON TABLE {} FROM {}"):
                        source.execute(statement)
            except psycopg.errors.InsufficientPrivilege as error:
                raise SplitError(
                    f"cannot revoke writes on the shared tables as {source.info.user}: {error.diag.message_primary}; "
                    "use the tables' owner in --from"
                ) from None
        self.out(f"-- {self.split.database}: nobody writes {', '.join(r.qualified for r in self.tables)} any more")

    def writes(self, state: Mapping[Name, Moved], template: str) -> Iterator[sql.Composed]:
        """`template` (`GRANT {} ON TABLE {} TO {}`, or REVOKE) for each write privilege recorded at cutover."""
        for relation in self.tables:
            for grantee, privileges in (state[relation.key].writers or {}).items():
                # Keywords from the record, composed as SQL: only the four it may hold.
                known = [privilege for privilege in privileges if privilege in WRITES]
                if not known:
                    continue
                yield sql.SQL(template).format(
                    sql.SQL(", ").join(map(sql.SQL, known)),
                    sql.Identifier(relation.schema, relation.name),
                    grantee_sql(grantee),
                )

    def give_writes_back(self, target: psycopg.Connection) -> None:
        state = self.state(target)
        with self.connect_source() as source, source.transaction():
            for statement in self.writes(state, "GRANT {} ON TABLE {} TO {}"):
                source.execute(statement)
        with target.transaction():
            for relation in self.tables:
                target.execute(
                    sql.SQL(
                        "UPDATE {} SET writers = NULL, cut_over_at = NULL WHERE source_database = %s "
                        "AND source_schema = %s AND source_table = %s"
                    ).format(STATE_TABLE),
                    (self.split.database, relation.schema, relation.name),
                )
        self.out(f"-- {self.split.database}: the writes on {self.service.service}'s tables are back")

    def refresh(self, target: psycopg.Connection, stale: list[Relation], moved: Mapping[Name, Moved]) -> None:
        """Copy again, in one transaction, the tables written since they were copied (the writes
        are stopped now); foreign keys that reach them are dropped and made again around it."""
        names = {r.key for r in stale}
        reaching = [
            (relation, constraint)
            for relation in self.tables
            for constraint in relation.foreign_keys
            if (relation.key in names or constraint.references in names)
            and has_constraint(target, moved[relation.key].schema, relation.name, constraint.name)
        ]
        with self.connect_source() as source:
            source.execute(SESSION)
            source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            with target.transaction():
                self.as_owner(target, *dict.fromkeys([self.schema, *(moved[n].schema for n in names)]))
                for relation, constraint in reaching:
                    target.execute(
                        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                            sql.Identifier(moved[relation.key].schema, relation.name), sql.Identifier(constraint.name)
                        )
                    )
                target.execute(
                    sql.SQL("TRUNCATE {}").format(
                        sql.SQL(", ").join(sql.Identifier(moved[r.key].schema, r.name) for r in stale)
                    )
                )
                for relation in stale:
                    count = self.copy_rows(source, target, relation)
                    self.out(f"-- {relation.qualified}: written since it was copied; copied again ({count:,} rows)")
                for relation, constraint in reaching:
                    target.execute(
                        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + constraint.definition.replace("%", "%%")).format(
                            sql.Identifier(moved[relation.key].schema, relation.name), sql.Identifier(constraint.name)
                        )
                    )
            source.execute("COMMIT")

    def finish(self, target: psycopg.Connection, moved: Mapping[Name, Moved]) -> None:
        """The copies become the service's: sequences at the shared values, replication gone,
        replicated tables in the service's schema with the grants its tables get."""
        if any(moved[r.key].method == "sync" for r in self.tables):
            self.unsubscribe(target)
        with self.connect_source() as source, target.transaction():
            for relation in self.tables:
                here = moved[relation.key]
                self.as_owner(target, here.schema, self.schema)
                self.set_sequences(source, target, relation)
                if here.schema != self.schema:
                    target.execute(
                        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                            sql.Identifier(here.schema, relation.name), sql.Identifier(self.schema)
                        )
                    )
                    for statement in grants_on(self.service, relation):
                        target.execute(statement)
                target.execute("RESET ROLE")
                target.execute(
                    sql.SQL(
                        "UPDATE {} SET cut_over_at = now(), target_schema = %s WHERE source_database = %s "
                        "AND source_schema = %s AND source_table = %s"
                    ).format(STATE_TABLE),
                    (self.schema, self.split.database, relation.schema, relation.name),
                )
        self.out(f"-- {self.service.service} is cut over: its tables are in {self.database}.{self.schema}")

    def rollback(self) -> None:
        """Give the shared database's writes back; the service's copies stay, to be refreshed at the
        next cutover."""
        with self.connect_target(self.database) as target:
            moved = self.state(target)
            if not any(m.writers is not None for m in moved.values()):
                self.out(f"-- {self.service.service} is not cut over: nothing to roll back")
                return
            self.give_writes_back(target)
            with target.transaction():
                target.execute(
                    sql.SQL("UPDATE {} SET method = 'copy' WHERE source_database = %s").format(STATE_TABLE),
                    (self.split.database,),
                )
        self.out(
            f"-- point {self.service.service} back at {self.split.database}; rows it wrote in {self.database} since "
            "the cutover are not in the shared database, and the next cutover copies the shared tables again"
        )


SYNC_STATES = {"i": "starting", "d": "copying", "f": "copied", "s": "catching up", "r": "ready"}


def grantee_sql(grantee: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)


def grants_on(service: ServicePlan, relation: Relation) -> Iterator[sql.Composed]:
    """What the owner's default privileges give a table it creates in its schema, for one moved there."""
    target = sql.Identifier(service.schema.name, relation.name)
    for grant in service.grants:
        if grant.schema == service.schema.name and grant.privileges:
            if grant.object_type == ObjectType.TABLE:
                yield sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                    sql.SQL(", ").join(map(sql.SQL, grant.privileges)), target, grantee_sql(grant.grantee)
                )
            elif grant.object_type == ObjectType.SEQUENCE:
                for sequence in relation.sequences:
                    yield sql.SQL("GRANT {} ON SEQUENCE {} TO {}").format(
                        sql.SQL(", ").join(map(sql.SQL, grant.privileges)),
                        sql.Identifier(service.schema.name, sequence.name),
                        grantee_sql(grant.grantee),
                    )


def exists(conn: psycopg.Connection, query: str, params: Any) -> bool:
    return conn.execute(query, params).fetchone() is not None


def has_constraint(conn: psycopg.Connection, schema: str, table: str, name: str) -> bool:
    return exists(
        conn,
        "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = to_regclass(%s)",
        (name, sql.Identifier(schema, table).as_string(conn)),
    )


def checksum(conn: psycopg.Connection, relation: Relation, schema: str) -> tuple[int, str]:
    """Rows and a checksum of their content, the same whatever the order of the rows: the sum of
    the first 64 bits of each row's md5."""
    columns = sql.SQL(", ").join(sql.Identifier("t", c.name) for c in relation.columns)
    count, total = conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(('x' || left(md5(ROW({})::text), 16))::bit(64)::bigint::numeric), 0)::text "
            "FROM ONLY {} AS t"
        ).format(columns, sql.Identifier(schema, relation.name))
    ).fetchone()
    return count, total


def describe(result: tuple[int, str]) -> str:
    return f"{result[0]:,} rows, checksum {result[1]}"


def copy_out(conn: psycopg.Connection, query: str) -> Iterator[bytes]:
    """The rows of `COPY ... TO STDOUT`, read from libpq directly: a quarter faster than psycopg's
    `Copy` iterator, which is most of the time a copy spends in Python."""
    pgconn = conn.pgconn
    pgconn.send_query(query.encode())
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        message = result.error_message.decode(errors="replace") if result else "no result"
        while pgconn.get_result() is not None:
            pass
        raise SplitError(f"reading the shared table failed: {message.strip()}")
    get = pgconn.get_copy_data
    while True:
        size, row = get(0)
        if size <= 0:
            break
        yield row
    failed = None
    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            failed = result.error_message.decode(errors="replace").strip()
    if failed or size == -2:
        raise SplitError(f"reading the shared table failed: {failed or pgconn.error_message.decode(errors='replace')}")


def publisher_conninfo(source: psycopg.Connection) -> str:
    """How the subscription reaches the shared database: as `--from` does, with its password."""
    params = source.info.get_parameters()
    keep = {key: params[key] for key in ("host", "port", "user", "dbname", "sslmode") if params.get(key)}
    if source.info.password:
        keep["password"] = source.info.password
    return make_conninfo(**keep)


class Progress:
    """Rows, bytes, rate and time left of a long copy, every few seconds."""

    def __init__(self, table: str, estimate: int, out: Callable[[str], None]) -> None:
        self.table, self.estimate, self.out = table, estimate, out
        self.rows = self.bytes = 0
        self.started = self.said = time.monotonic()

    def add(self, data: bytes | bytearray) -> None:
        self.rows += data.count(b"\n")
        self.bytes += len(data)
        now = time.monotonic()
        if now - self.said >= PROGRESS_SECONDS:
            self.said = now
            elapsed = now - self.started
            rate = self.rows / elapsed
            mib = self.bytes / 2**20
            line = f"-- {self.table}: {self.rows:,} rows, {mib:,.0f} MiB, {mib / elapsed:,.1f} MiB/s"
            if self.estimate > self.rows and rate:
                line += f", about {(self.estimate - self.rows) / rate:,.0f} s left of ~{self.estimate:,} rows"
            self.out(line)
