"""The current state: what the managed roles, databases and schemas look like on a live server.

Read from the catalogs with a fixed number of queries on the admin connection (roles, settings,
settings in a database, memberships, databases and their ACLs, and which users have a password where the admin may read
`pg_authid`) plus one round of queries per managed database (schemas,
tables, sequences, default privileges, extensions, each with `aclexplode`), so the cost grows
with the number of services, never with its square. Only the managed names are read; nothing
here writes.

Privileges are kept per grantee, with `public` standing for PUBLIC.
"""

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from servicedb.driver import INVALID_PASSWORD, Connection, failure
from servicedb.plan import RDS_IAM, ObjectType, Plan, RoleKind, legacy_manager_name, manager_name, role_name
from servicedb.plan import role_names as plan_role_names

PARALLEL_CONNECTIONS = 4
"""Connections opened at once to read the databases and check passwords; each is short-lived."""

Acl = Mapping[str, frozenset[str]]
"""Grantee to the privileges it holds on one object."""

MANAGED_SETTINGS = ("statement_timeout", "idle_in_transaction_session_timeout", "search_path", "role")
"""Role settings the plan decides; any other setting of a managed role is left as it is."""

RELATION_KINDS = {
    "r": ObjectType.TABLE,
    "p": ObjectType.TABLE,
    "v": ObjectType.TABLE,
    "m": ObjectType.TABLE,
    "f": ObjectType.TABLE,
    "S": ObjectType.SEQUENCE,
    "routine": ObjectType.FUNCTION,
}
"""pg_class.relkind (and `routine` for pg_proc) to the object type of `GRANT ... ON ALL
TABLES|SEQUENCES|ROUTINES IN SCHEMA`."""

DEFAULT_ACL_TYPES = {"r": ObjectType.TABLE, "S": ObjectType.SEQUENCE, "f": ObjectType.FUNCTION}

GRANTEE = "CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END"
USER_SCHEMAS = "left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'"


@dataclass(frozen=True, kw_only=True, slots=True)
class RoleState:
    name: str
    login: bool
    inherit: bool
    connection_limit: int
    superuser: bool
    createdb: bool
    createrole: bool
    settings: Mapping[str, str]
    """Role-wide settings (`ALTER ROLE ... SET`), e.g. `{"statement_timeout": "30000"}`."""
    valid_until: datetime | None = None
    """When PostgreSQL stops accepting the role's logins (`VALID UNTIL`); None: never."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Relation:
    """A table or sequence; or a function or procedure, whose name is its signature (`f(integer)`,
    quoted as PostgreSQL quotes it)."""

    schema: str
    name: str
    object_type: ObjectType
    owner: str
    acl: Acl


@dataclass(frozen=True, kw_only=True, slots=True)
class Contents:
    """What is inside one database."""

    schemas: Mapping[str, tuple[str, Acl]]
    """Schema name to (owner, ACL)."""
    relations: tuple[Relation, ...]
    default_acls: Mapping[tuple[str, str | None, ObjectType], Acl]
    """(owner, schema or None for the database-wide defaults, object type) to the ACL it adds."""
    extensions: Mapping[str, str]
    """Installed extension to its schema."""

    def relations_in(self, schema: str, object_type: ObjectType) -> tuple[Relation, ...]:
        return tuple(r for r in self.relations if r.schema == schema and r.object_type == object_type)


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseState:
    name: str
    owner: str
    connection_limit: int
    acl: Acl
    contents: Contents | None
    """None when the admin could not connect to it (it is not yet the owner's member)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Current:
    server_version: int
    """`server_version_num`, e.g. 160002."""
    current_user: str
    roles: Mapping[str, RoleState]
    """The managed roles that exist."""
    memberships: frozenset[tuple[str, str]]
    """(member, role) pairs where either side is a managed role."""
    acting_as: frozenset[str]
    """Owner roles whose privileges the admin holds (it can act as the owner), and managers it may
    become (`SET ROLE`)."""
    databases: Mapping[str, DatabaseState]
    """The managed databases that exist."""
    available_extensions: frozenset[str]
    trusted_extensions: frozenset[str] = frozenset()
    """Available extensions a role that is not a superuser may create where it has CREATE."""
    password_ok: Mapping[str, bool] = field(default_factory=dict)
    """Login user to whether its secret's password logs in; absent when not checked."""
    rds_iam_exists: bool = False
    """Whether the server has the role `rds_iam` (Aurora and RDS do)."""
    with_password: frozenset[str] | None = None
    """The managed login users that have a password, from `pg_authid`; None when the admin cannot
    read it (only superusers can, and the Aurora master user is not one)."""
    administering: frozenset[tuple[str, str]] = frozenset()
    """(manager or admin, managed role) pairs where the first holds ADMIN on the second."""
    database_settings: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    """(managed role, database) to the settings `ALTER ROLE ... IN DATABASE ... SET` gave it: the
    plan declares none, and they win over the role's own (a declared statement_timeout included)."""
    unknown_passwords: frozenset[str] = frozenset()
    """Password users whose password the store does not have: the inactive user of an alternating
    pair, with Secrets Manager. Created without a password, and left alone otherwise."""


def acl_rows(rows: list[tuple[str, str | None]]) -> Acl:
    acl: dict[str, set[str]] = {}
    for grantee, privilege in rows:
        if grantee is not None:
            acl.setdefault(grantee, set()).add(privilege)
    return {grantee: frozenset(privileges) for grantee, privileges in acl.items()}


def inspect(
    conn: Connection,
    wanted: Plan,
    *,
    connect: Callable[[str], Connection],
    then: Callable[[str, Connection], None] | None = None,
) -> Current:
    """Read the current state of everything `wanted` manages.

    `conn` is the admin connection; `connect(database)` opens an admin connection to another
    database, used for the managed databases the admin can enter. `then(database, connection)`,
    if given, runs on each of those connections once its contents are read, from several threads
    at once: what else the caller reads in each database, without a second connection.
    """
    # Purged services too: their database and roles are what apply drops.
    role_names = [role.name for role in wanted.roles]
    role_names += [name for service in wanted.purged for name in plan_role_names(service)]
    # The services' group managers, and those of one service each from before the groups.
    managers = sorted(
        {manager_name(service.service) for service in wanted.services}
        | {legacy_manager_name(service.service) for service in wanted.services}
        | {legacy_manager_name(service) for service in wanted.purged}
    )
    database_names = [service.database.name for service in wanted.services] + list(wanted.purged)
    owners = [service.owner.name for service in wanted.services]
    owners += [role_name(service, RoleKind.OWNER) for service in wanted.purged]

    version, current_user, rds_iam_exists, authid_readable = conn.execute(
        f"""
        SELECT current_setting('server_version_num')::int, current_user, to_regrole('{RDS_IAM}') IS NOT NULL,
               has_table_privilege('pg_catalog.pg_authid', 'SELECT')
        """
    ).fetchone()
    roles = {}
    for row in conn.execute(
        """
        SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolconnlimit, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
               coalesce(s.setconfig, '{}'), nullif(r.rolvaliduntil, 'infinity')
        FROM pg_roles r
        LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
        WHERE r.rolname = ANY(%s)
        """,
        (role_names + managers,),
    ):
        name, login, inherit, limit, superuser, createdb, createrole, config, valid_until = row
        roles[name] = RoleState(
            name=name,
            login=login,
            inherit=inherit,
            connection_limit=limit,
            superuser=superuser,
            createdb=createdb,
            createrole=createrole,
            settings=dict(item.split("=", 1) for item in config),
            valid_until=valid_until,
        )
    memberships = frozenset(
        conn.execute(
            """
            SELECT m.rolname, g.rolname
            FROM pg_auth_members a
            JOIN pg_roles m ON m.oid = a.member
            JOIN pg_roles g ON g.oid = a.roleid
            WHERE (m.rolname = ANY(%(roles)s) OR g.rolname = ANY(%(roles)s)) AND m.rolname <> current_user
            """,
            {"roles": role_names},
        ).fetchall()
    )
    database_settings = {
        (role, database): tuple(config)
        for role, database, config in conn.execute(
            """
            SELECT r.rolname, d.datname, s.setconfig
            FROM pg_db_role_setting s
            JOIN pg_roles r ON r.oid = s.setrole
            JOIN pg_database d ON d.oid = s.setdatabase
            WHERE r.rolname = ANY(%s)
            """,
            (role_names,),
        )
    }
    # An owner: the admin uses its privileges; a manager: the admin may SET ROLE to it.
    become = "SET" if version >= 160000 else "MEMBER"
    acting_as = frozenset(
        name
        for (name,) in conn.execute(
            f"""
            SELECT rolname FROM pg_roles
            WHERE (rolname = ANY(%(owners)s) AND pg_has_role(current_user, oid, 'USAGE'))
               OR (rolname = ANY(%(managers)s) AND pg_has_role(current_user, oid, '{become}'))
            """,
            {"owners": owners, "managers": managers},
        )
    )
    # Which roles each manager may alter and grant (PostgreSQL 16 asks for ADMIN), and the admin.
    administering = frozenset(
        conn.execute(
            """
            SELECT m.rolname, g.rolname
            FROM pg_auth_members a
            JOIN pg_roles m ON m.oid = a.member
            JOIN pg_roles g ON g.oid = a.roleid
            WHERE a.admin_option AND g.rolname = ANY(%(roles)s)
              AND (m.rolname = ANY(%(managers)s) OR m.rolname = current_user)
            """,
            {"roles": role_names, "managers": managers},
        ).fetchall()
    )
    available = frozenset(name for (name,) in conn.execute("SELECT name FROM pg_available_extensions"))
    trusted = frozenset(
        name for (name,) in conn.execute("SELECT DISTINCT name FROM pg_available_extension_versions WHERE trusted")
    )
    with_password = None
    if authid_readable:
        with_password = frozenset(
            name
            for (name,) in conn.execute(
                "SELECT rolname FROM pg_authid WHERE rolname = ANY(%s) AND rolpassword IS NOT NULL", (role_names,)
            )
        )

    databases: dict[str, tuple[str, int, list[tuple[str, str | None]]]] = {}
    for name, owner, limit, grantee, privilege in conn.execute(
        f"""
        SELECT d.datname, pg_get_userbyid(d.datdba), d.datconnlimit, {GRANTEE}, a.privilege_type
        FROM pg_database d
        LEFT JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a ON true
        WHERE d.datname = ANY(%s)
        """,
        (database_names,),
    ):
        databases.setdefault(name, (owner, limit, []))[2].append((grantee, privilege))

    def contents_of(name: str) -> Contents:
        with connect(name) as database_conn:
            contents = inspect_contents(database_conn)
            if then is not None:
                then(name, database_conn)
            return contents

    enterable = [name for name, (owner, _, _) in databases.items() if owner in acting_as]
    with ThreadPoolExecutor(max_workers=PARALLEL_CONNECTIONS) as pool:
        contents = dict(zip(enterable, pool.map(contents_of, enterable), strict=True))
    states = {
        name: DatabaseState(
            name=name, owner=owner, connection_limit=limit, acl=acl_rows(acl), contents=contents.get(name)
        )
        for name, (owner, limit, acl) in databases.items()
    }
    return Current(
        server_version=version,
        current_user=current_user,
        roles=roles,
        memberships=memberships,
        acting_as=acting_as,
        databases=states,
        available_extensions=available,
        trusted_extensions=trusted,
        rds_iam_exists=rds_iam_exists,
        with_password=with_password,
        database_settings=database_settings,
        administering=administering,
    )


def inspect_contents(conn: Connection) -> Contents:
    """Schemas, tables, sequences, default privileges and extensions of the connected database."""
    schemas: dict[str, tuple[str, list[tuple[str, str | None]]]] = {}
    for schema, owner, grantee, privilege in conn.execute(
        f"""
        SELECT n.nspname, pg_get_userbyid(n.nspowner), {GRANTEE}, a.privilege_type
        FROM pg_namespace n
        LEFT JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a ON true
        WHERE {USER_SCHEMAS}
        """
    ):
        schemas.setdefault(schema, (owner, []))[1].append((grantee, privilege))

    relations: dict[tuple[str, str], tuple[str, str, list[tuple[str, str | None]]]] = {}
    for schema, name, kind, owner, grantee, privilege in conn.execute(
        f"""
        SELECT n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner), {GRANTEE}, a.privilege_type
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN LATERAL aclexplode(
            coalesce(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))
        ) a ON true
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {USER_SCHEMAS}
        """
    ):
        relations.setdefault((schema, name), (kind, owner, []))[2].append((grantee, privilege))
    # Functions and procedures, but an extension's: those are its own (a superuser's, for a trusted
    # extension), and neither path grants on them.
    for schema, name, owner, grantee, privilege in conn.execute(
        f"""
        SELECT n.nspname, format('%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)),
               pg_get_userbyid(p.proowner), {GRANTEE}, a.privilege_type
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a ON true
        WHERE {USER_SCHEMAS} AND NOT EXISTS (
            SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'
        )
        """
    ):
        relations.setdefault((schema, name), ("routine", owner, []))[2].append((grantee, privilege))

    default_acls: dict[tuple[str, str | None, ObjectType], list[tuple[str, str | None]]] = {}
    for owner, schema, kind, grantee, privilege in conn.execute(
        f"""
        SELECT pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype::text, {GRANTEE}, a.privilege_type
        FROM pg_default_acl d
        LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
        CROSS JOIN LATERAL aclexplode(d.defaclacl) a
        WHERE d.defaclobjtype IN ('r', 'S', 'f')
        """
    ):
        default_acls.setdefault((owner, schema, DEFAULT_ACL_TYPES[kind]), []).append((grantee, privilege))

    extensions = dict(
        conn.execute(
            "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        ).fetchall()
    )
    return Contents(
        schemas={name: (owner, acl_rows(acl)) for name, (owner, acl) in schemas.items()},
        relations=tuple(
            Relation(schema=schema, name=name, object_type=RELATION_KINDS[kind], owner=owner, acl=acl_rows(acl))
            for (schema, name), (kind, owner, acl) in sorted(relations.items())
        ),
        default_acls={key: acl_rows(acl) for key, acl in default_acls.items()},
        extensions=extensions,
    )


def check_passwords(connect_as: Callable[[str, str], Connection], passwords: Mapping[str, str]) -> dict[str, bool]:
    """Whether each user logs in with its password: False only when the server rejects it.

    `connect_as(user, password)` opens a connection. Any refusal after authentication (no
    CONNECT on the database, the role's connection limit, NOLOGIN) still proves the password.
    """

    def logs_in(user: str) -> bool:
        try:
            connect_as(user, passwords[user]).close()
        except Exception as error:
            refused = failure(error)
            if refused is None:
                raise
            return refused.sqlstate != INVALID_PASSWORD and "password authentication failed" not in str(error)
        return True

    users = list(passwords)
    with ThreadPoolExecutor(max_workers=PARALLEL_CONNECTIONS) as pool:
        return dict(zip(users, pool.map(logs_in, users), strict=True))
