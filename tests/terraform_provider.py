"""A model of what the cyrilgdn/postgresql Terraform provider 1.26.0 does with the resources the
construct emits: the SQL it runs, in which database, as which role, and what it reads back.

The provider binary cannot be installed here (its registry is out of reach), so this is the test
double the style guide allows: built from the provider's source at tag v1.26.0
(cyrilgdn/terraform-provider-postgresql, `postgresql/*.go`), citing the function each method
mirrors, and refusing loudly any resource type, attribute or expression it does not model.

What matters, and what it keeps exactly:

- The provider never runs `SET ROLE`. Every statement runs as the user it logs in as (the admin,
  not a superuser on RDS). Where its source grants the admin an owner's role for the duration of a
  statement (`withRolesGranted`: schemas, grants on schemas, tables and sequences, default
  privileges; `createDatabase`: the new database's owner), the model does the same, with the same
  membership checks (`isMemberOfRole` looks for `set_option` from PostgreSQL 16 on). For
  `object_type = "database"` grants and for extensions it takes no role: `getRolesToGrant` returns
  none for databases, and `resourcePostgreSQLExtensionCreate` runs `CREATE EXTENSION` as is.
- Every PostgreSQL notice is kept. A GRANT or REVOKE by a role that holds no grant option on the
  object ends with `WARNING: no privileges were granted/could be revoked` and changes nothing, and
  the provider reports success: `silent_no_ops` lists them.
- Reading back runs the provider's own read queries and sets each attribute as its read function
  does; `plan` compares them with the configuration, with the schema's defaults, as Terraform's
  plan would: an empty list is "No changes".

Not modelled (refused): updates and deletes (a change in the plan is reported, not applied),
imports of grant resources (the provider has no importer for them), attributes the construct does
not set.
"""

import json
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

PROVIDER_VERSION = "1.26.0"

MODELLED = (
    "postgresql_role",
    "postgresql_database",
    "postgresql_schema",
    "postgresql_grant",
    "postgresql_grant_role",
    "postgresql_default_privileges",
    "postgresql_extension",
)
META = {"provider", "depends_on", "lifecycle", "count", "for_each"}
ATTRIBUTES = {
    # resourcePostgreSQLRole's schema, the part the construct sets.
    "postgresql_role": {
        "name",
        "password",
        "login",
        "inherit",
        "connection_limit",
        "statement_timeout",
        "idle_in_transaction_session_timeout",
        "search_path",
        "assume_role",
        "valid_until",
    },
    "postgresql_database": {"name", "owner", "connection_limit"},
    "postgresql_schema": {"name", "database", "owner"},
    "postgresql_grant": {"database", "schema", "object_type", "role", "privileges", "objects"},
    "postgresql_grant_role": {"role", "grant_role", "with_admin_option"},
    "postgresql_default_privileges": {"database", "schema", "owner", "object_type", "role", "privileges"},
    "postgresql_extension": {"name", "database", "schema"},
    "random_password": {"length", "special", "override_special", "min_lower", "min_upper", "min_numeric", "keepers"},
}
DEFAULTS = {
    # The schema's `Default:` of each attribute the model compares; Optional+Computed ones are left out.
    "postgresql_role": {
        "login": False,
        "inherit": True,
        "connection_limit": -1,
        "statement_timeout": 0,
        "idle_in_transaction_session_timeout": 0,
        "search_path": [],
        "assume_role": "",
        "valid_until": "infinity",
        "superuser": False,
        "create_database": False,
        "create_role": False,
        "replication": False,
        "bypass_row_level_security": False,
        "roles": [],
    },
    "postgresql_database": {"connection_limit": -1, "allow_connections": True},
    "postgresql_schema": {},
    "postgresql_grant": {"objects": []},
    "postgresql_grant_role": {"with_admin_option": False},
    "postgresql_default_privileges": {},
    "postgresql_extension": {},
}
SET_ATTRIBUTES = {"privileges", "objects", "roles"}
"""TypeSet attributes: compared without order."""

GRANT_OBJECT_TYPES = {"table": "r", "sequence": "S", "function": "f", "routine": "f"}
"""`objectTypes` in resource_postgresql_grant.go: the relkind or prokind read back."""

NO_OP_WARNINGS = ("no privileges were granted", "no privileges could be revoked")

REFERENCE = re.compile(r"^\$\{([a-z_]+)\.([A-Za-z0-9_]+)\.([a-z_]+)\}$")
JSONDECODE = re.compile(r"^\$\{jsondecode\((data\.[a-z_]+\.[A-Za-z0-9_]+\.[a-z_]+)\)\.([a-z_]+)\}$")
ANY_REFERENCE = re.compile(r"\b((?:postgresql|random)_[a-z_]+)\.([A-Za-z0-9_]+)\.")


class Unmodelled(AssertionError):
    """The configuration asks for something the model does not know the provider's behaviour for."""


class ProviderError(RuntimeError):
    """What the provider would print as `Error: ...` and stop on."""


def quote_ident(name: str) -> str:
    """lib/pq's `QuoteIdentifier`."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """`pqQuoteLiteral` (helpers.go), inside the quotes the callers add."""
    return value.replace("\\", "\\\\").replace("'", "''")


@dataclass
class Executed:
    """One statement the provider ran: where, as whom, and what PostgreSQL answered."""

    address: str
    database: str
    user: str
    statement: str
    notices: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Resource:
    address: str
    type: str
    name: str
    config: dict
    depends_on: set[str]
    ignore_changes: set[str]


def resources_of(stack: Mapping) -> list[Resource]:
    """The stack's postgresql_* resources and the random passwords they use, refusing any other
    postgresql resource type or attribute."""
    found = []
    for type_, blocks in stack.get("resource", {}).items():
        if type_ != "random_password" and not type_.startswith("postgresql_"):
            continue
        if type_ not in MODELLED and type_ != "random_password":
            raise Unmodelled(f"{type_}: the model does not know what provider {PROVIDER_VERSION} does with it")
        for name, config in blocks.items():
            unknown = set(config) - ATTRIBUTES[type_] - META
            if unknown:
                raise Unmodelled(f"{type_}.{name}: attributes {sorted(unknown)} are not modelled")
            text = json.dumps({k: v for k, v in config.items() if k != "depends_on"})
            depends = {f"{t}.{n}" for t, n in ANY_REFERENCE.findall(text)}
            depends |= set(config.get("depends_on", ()))
            found.append(
                Resource(
                    address=f"{type_}.{name}",
                    type=type_,
                    name=name,
                    config=config,
                    depends_on=depends,
                    ignore_changes=set(config.get("lifecycle", {}).get("ignore_changes", ())),
                )
            )
    return in_dependency_order(found)


def in_dependency_order(resources: list[Resource]) -> list[Resource]:
    """Terraform's walk, one resource at a time: each after everything it references or depends on."""
    by_address = {r.address: r for r in resources}
    ordered: list[Resource] = []
    done: set[str] = set()

    def visit(resource: Resource, path: tuple[str, ...]) -> None:
        if resource.address in done:
            return
        if resource.address in path:
            raise Unmodelled(f"dependency cycle: {' -> '.join(path + (resource.address,))}")
        for address in sorted(resource.depends_on):
            if address not in by_address:
                raise Unmodelled(f"{resource.address} depends on {address}, which the model does not create")
            visit(by_address[address], path + (resource.address,))
        done.add(resource.address)
        ordered.append(resource)

    for resource in resources:
        visit(resource, ())
    return ordered


def random_password(config: Mapping) -> str:
    """hashicorp/random's `random_password` (internal/random/string.go, `CreateString`): `length`
    characters from lower, upper, digits and `override_special`, at least `min_*` of each class."""
    specials = config.get("override_special", "!@#$%&*()-_=+[]{}<>:?") if config.get("special", True) else ""
    classes = [
        (string.ascii_lowercase, config.get("min_lower", 0)),
        (string.ascii_uppercase, config.get("min_upper", 0)),
        (string.digits, config.get("min_numeric", 0)),
        (specials, config.get("min_special", 0)),
    ]
    chars = [secrets.choice(alphabet) for alphabet, minimum in classes if alphabet for _ in range(minimum)]
    everything = "".join(alphabet for alphabet, _ in classes)
    chars += [secrets.choice(everything) for _ in range(config["length"] - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


class ProviderModel:
    """Applies and reads a stack's postgresql resources as provider 1.26.0 does, logged in as `user`.

    `connect(database)` opens a connection as that user (autocommit; the model opens transactions
    where the provider's `startTransaction` does). `data` gives the values of data sources the
    provider block and resources read, e.g. the master secret's `secret_string`.
    """

    def __init__(
        self,
        connect: Callable[[str], psycopg.Connection],
        *,
        user: str,
        data: Mapping[str, str],
        logins: Mapping[str, Callable[[str], psycopg.Connection]] | None = None,
    ) -> None:
        self.connect = connect
        self.user = user
        self.data = dict(data)
        self.logins = {user: connect, **(logins or {})}
        """How to log in as each user a provider block of the stack names (`connect` for `user`)."""
        self.providers: dict[str, Mapping] = {}
        """The stack's postgresql provider blocks, by the reference resources make (`postgresql.login_1`)."""
        self.state: dict[str, dict] = {}
        self.executed: list[Executed] = []
        self.address = ""

    # --- expressions -------------------------------------------------------------------------

    def value(self, raw: object) -> object:
        if isinstance(raw, list):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict):
            return {key: self.value(item) for key, item in raw.items()}
        if not isinstance(raw, str) or "${" not in raw:
            return raw
        if match := REFERENCE.match(raw):
            type_, name, attribute = match.groups()
            address = f"{type_}.{name}"
            if address not in self.state:
                raise Unmodelled(f"{self.address}: {raw} refers to {address}, which has not been created")
            return self.state[address][attribute]
        if match := JSONDECODE.match(raw):
            source, key = match.groups()
            if source not in self.data:
                raise Unmodelled(f"{self.address}: no value given for the data source {source}")
            return json.loads(self.data[source])[key]
        raise Unmodelled(f"{self.address}: the expression {raw!r} is not modelled")

    def attributes(self, resource: Resource) -> dict:
        """The configuration with expressions resolved and the schema's defaults filled in; the
        model logs in as the user of the resource's provider block from here on."""
        self.address = resource.address
        if resource.type != "random_password":
            self.log_in_for(resource)
        values = {k: self.value(v) for k, v in resource.config.items() if k not in META}
        return {**DEFAULTS.get(resource.type, {}), **values}

    def use_providers(self, stack: Mapping) -> None:
        blocks = stack.get("provider", {}).get("postgresql", [])
        self.providers = {
            f"postgresql.{block['alias']}" if "alias" in block else "postgresql": block for block in blocks
        }

    def log_in_for(self, resource: Resource) -> None:
        """Each provider block is a provider of its own, logged in as its `username`."""
        reference = resource.config.get("provider", "postgresql")
        if not self.providers:
            return  # a stack of resources only: every one as `user`
        if reference not in self.providers:
            raise Unmodelled(f"{resource.address}: provider {reference} is not in the stack")
        user = self.value(self.providers[reference]["username"])
        if user not in self.logins:
            raise Unmodelled(f"{resource.address}: no way given to log in as {user!r} ({reference})")
        self.user, self.connect = user, self.logins[user]

    # --- connections and statements ----------------------------------------------------------

    @contextmanager
    def session(self, database: str) -> Iterator[psycopg.Connection]:
        conn = self.connect(database)
        try:
            yield conn
        finally:
            conn.close()

    def run(self, conn: psycopg.Connection, statement: str, params: tuple = ()) -> list[tuple]:
        executed = Executed(
            address=self.address,
            database=conn.info.dbname,
            user=conn.execute("SELECT current_user").fetchone()[0],
            statement=statement,
        )

        def notice(diagnostic: psycopg.errors.Diagnostic) -> None:
            executed.notices.append((diagnostic.severity or "", diagnostic.message_primary or ""))

        conn.add_notice_handler(notice)
        try:
            cursor = conn.execute(statement, params or None)
            rows = cursor.fetchall() if cursor.description else []
        except psycopg.Error as error:
            raise ProviderError(f"{self.address}: {statement}: {error}") from None
        finally:
            conn.remove_notice_handler(notice)
            self.executed.append(executed)
        return rows

    def query(self, conn: psycopg.Connection, statement: str, params: tuple = ()) -> list[tuple]:
        """A read (or a lock, a session setting) the provider makes; not recorded as a change."""
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []

    @property
    def silent_no_ops(self) -> list[Executed]:
        """Statements PostgreSQL answered with `no privileges were granted/could be revoked`."""
        return [e for e in self.executed if any(w in message for _, message in e.notices for w in NO_OP_WARNINGS)]

    # --- helpers.go ----------------------------------------------------------------------------

    def has_set_option(self, conn: psycopg.Connection) -> bool:
        return bool(
            self.query(
                conn,
                "SELECT 1 FROM information_schema.columns WHERE table_name='pg_auth_members' "
                "AND column_name = 'set_option'",
            )
        )

    def is_member_of_role(self, conn: psycopg.Connection, role: str, member: str) -> bool:
        """`isMemberOfRole`: a direct membership row, with `set_option` from PostgreSQL 16 on."""
        query = "SELECT 1 FROM pg_auth_members WHERE pg_get_userbyid(roleid) = %s AND pg_get_userbyid(member) = %s"
        if self.has_set_option(conn):
            query += " AND set_option"
        return bool(self.query(conn, query, (role, member)))

    def grant_role_membership(self, conn: psycopg.Connection, role: str, member: str) -> bool:
        """`grantRoleMembership`."""
        if member == role or self.is_member_of_role(conn, role, member):
            return False
        self.run(conn, f"GRANT {quote_ident(role)} TO {quote_ident(member)}")
        return True

    def revoke_role_membership(self, conn: psycopg.Connection, role: str, member: str) -> bool:
        """`revokeRoleMembership`."""
        if member == role or not self.is_member_of_role(conn, role, member):
            return False
        self.run(conn, f"REVOKE {quote_ident(role)} FROM {quote_ident(member)}")
        return True

    def is_superuser(self, conn: psycopg.Connection, role: str) -> bool:
        rows = self.query(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,))
        if not rows:
            raise ProviderError(f"{self.address}: could not check if role {role} is superuser: no rows in result set")
        return rows[0][0]

    @contextmanager
    def roles_granted(self, conn: psycopg.Connection, roles: list[str]) -> Iterator[None]:
        """`withRolesGranted`: grant each role to the current user for the callback, then revoke
        what was granted and grant back what was revoked, in the same transaction."""
        if not roles or self.is_superuser(conn, self.user):
            yield
            return
        granted, revoked = [], []
        for role in roles:
            if self.is_superuser(conn, role):
                continue
            if self.revoke_role_membership(conn, self.user, role):
                revoked.append(role)
            if self.grant_role_membership(conn, role, self.user):
                granted.append(role)
        yield
        for role in granted:
            self.revoke_role_membership(conn, role, self.user)
        for role in revoked:
            if self.query(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
                self.grant_role_membership(conn, self.user, role)

    def lock_role(self, conn: psycopg.Connection, role: str) -> None:
        """`pgLockRole`."""
        self.query(conn, "SET statement_timeout = 0")
        self.query(conn, "SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_roles WHERE rolname = %s", (role,))
        self.query(
            conn,
            "SELECT pg_advisory_xact_lock(member::bigint) FROM pg_auth_members "
            "JOIN pg_roles ON roleid = pg_roles.oid WHERE rolname = %s",
            (role,),
        )

    def owner_of_schema(self, conn: psycopg.Connection, schema: str) -> str:
        """`getSchemaOwner`, then `resolveOwners` (pg_database_owner stands for the database's owner)."""
        rows = self.query(
            conn,
            "SELECT rolname FROM pg_namespace JOIN pg_roles ON nspowner = pg_roles.oid WHERE nspname = %s",
            (schema,),
        )
        if not rows:
            raise ProviderError(f"{self.address}: could not find schema '{schema}' while looking for owner")
        return self.resolve_owner(conn, rows[0][0])

    def resolve_owner(self, conn: psycopg.Connection, owner: str) -> str:
        if owner != "pg_database_owner":
            return owner
        return self.query(
            conn,
            "SELECT rolname FROM pg_database JOIN pg_roles ON datdba = pg_roles.oid WHERE datname = current_database()",
        )[0][0]

    # --- create --------------------------------------------------------------------------------

    def apply(self, stack: Mapping) -> None:
        """`terraform apply` from an empty state: create every resource in dependency order."""
        self.use_providers(stack)
        for resource in resources_of(stack):
            self.create(resource)

    def create(self, resource: Resource) -> None:
        values = self.attributes(resource)
        create = getattr(self, "create_" + resource.type.removeprefix("postgresql_"))
        state = create(values)
        self.state[resource.address] = state if state is not None else values

    def create_random_password(self, values: dict) -> dict:
        return {**values, "result": random_password(values)}

    def create_role(self, values: dict) -> dict:
        """`resourcePostgreSQLRoleCreate`: one transaction on the provider's database."""
        name = values["name"]
        options = []
        password = values.get("password") or ""
        if password:
            options.append(
                "PASSWORD NULL" if password.upper() == "NULL" else f"ENCRYPTED PASSWORD '{quote_literal(password)}'"
            )
        valid_until = values["valid_until"]
        options.append(
            "VALID UNTIL 'infinity'"
            if valid_until in ("", "infinity")
            else f"VALID UNTIL '{quote_literal(valid_until)}'"
        )
        options.append(f"CONNECTION LIMIT {values['connection_limit']}")
        for attribute, enable, disable in (
            ("superuser", "SUPERUSER", "NOSUPERUSER"),
            ("create_database", "CREATEDB", "NOCREATEDB"),
            ("create_role", "CREATEROLE", "NOCREATEROLE"),
            ("inherit", "INHERIT", "NOINHERIT"),
            ("login", "LOGIN", "NOLOGIN"),
            ("bypass_row_level_security", "BYPASSRLS", "NOBYPASSRLS"),
            ("replication", "REPLICATION", "NOREPLICATION"),
        ):
            options.append(enable if values[attribute] else disable)
        with self.session("postgres") as conn, conn.transaction():
            self.run(conn, f"CREATE ROLE {quote_ident(name)} WITH {' '.join(options)}")
            for role in values["roles"]:  # grantRoles
                self.run(conn, f"GRANT {quote_ident(role)} TO {quote_ident(name)}")
            # alterSearchPath runs on every create, DEFAULT without a search_path.
            path = ", ".join(quote_ident(part) for part in values["search_path"]) or "DEFAULT"
            self.run(conn, f"ALTER ROLE {quote_ident(name)} SET search_path TO {path}")
            for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
                if values[setting]:  # HasChange from the zero value on create
                    self.run(conn, f"ALTER ROLE {quote_ident(name)} SET {setting} TO {int(values[setting])}")
            if values["assume_role"]:  # setAssumeRole
                self.run(conn, f"ALTER ROLE {quote_ident(name)} SET ROLE TO {quote_ident(values['assume_role'])}")
        return {**values, **self.read_role(values)}

    def create_database(self, values: dict) -> dict:
        """`createDatabase`: under a lock on the current user, the owner is granted to it for the
        statement when it is not a member already, and revoked after."""
        owner = values.get("owner", "")
        with self.session("postgres") as lock, self.session("postgres") as conn:
            granted = False
            if owner:
                with lock.transaction():
                    self.lock_role(lock, self.user)
                    granted = self.grant_role_membership(conn, owner, self.user)
                    try:
                        self.run(conn, self.create_database_statement(values, owner))
                    finally:
                        if granted:
                            self.revoke_role_membership(conn, owner, self.user)
            else:
                self.run(conn, self.create_database_statement(values, self.user))
        return {**values, **self.read_database(values)}

    def create_database_statement(self, values: dict, owner: str) -> str:
        return (
            f"CREATE DATABASE {quote_ident(values['name'])} OWNER {quote_ident(owner)} TEMPLATE template0 "
            f"ENCODING 'UTF8' ALLOW_CONNECTIONS {str(values['allow_connections']).lower()} "
            f"CONNECTION LIMIT {values['connection_limit']} IS_TEMPLATE false"
        )

    def create_schema(self, values: dict) -> dict:
        """`resourcePostgreSQLSchemaCreate`: the database's owner (and the schema's) granted for it."""
        database, name, owner = values["database"], values["name"], values.get("owner", "")
        with self.session(database) as conn, conn.transaction():
            rows = self.query(
                conn,
                "SELECT rolname FROM pg_database JOIN pg_roles ON datdba = pg_roles.oid WHERE datname = %s",
                (database,),
            )
            database_owner = rows[0][0]
            roles = [database_owner] + ([owner] if owner and owner != database_owner else [])
            with self.roles_granted(conn, roles):
                if not self.query(conn, "SELECT TRUE FROM pg_catalog.pg_namespace WHERE nspname = %s", (name,)):
                    authorization = f" AUTHORIZATION {quote_ident(owner)}" if owner else ""
                    self.run(conn, f"CREATE SCHEMA IF NOT EXISTS {quote_ident(name)}{authorization}")
        return {**values, **self.read_schema(values)}

    def grant_owners(self, conn: psycopg.Connection, values: dict) -> list[str]:
        """`getRolesToGrant`: none for a database; the schema's owner, and for tables and sequences
        the owners of the schema's tables (pg_tables) too."""
        object_type = values["object_type"]
        if object_type == "database":
            return []
        schema = values["schema"]
        owners = []
        if object_type != "schema":
            owners = [
                row[0]
                for row in self.query(
                    conn, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s", (schema,)
                )
            ]
        schema_owner = self.owner_of_schema(conn, schema)
        if schema_owner not in owners:
            owners.append(schema_owner)
        return [self.resolve_owner(conn, owner) for owner in owners]

    def create_grant(self, values: dict) -> dict:
        """`resourcePostgreSQLGrantCreateOrUpdate`: revoke everything, then grant, in one transaction."""
        object_type = values["object_type"]
        if object_type not in ("database", "schema", "table", "sequence"):
            raise Unmodelled(f"{self.address}: postgresql_grant with object_type {object_type!r}")
        if values.get("with_grant_option"):
            raise Unmodelled(f"{self.address}: with_grant_option")
        if not values.get("schema") and object_type != "database":
            raise ProviderError(f"{self.address}: parameter 'schema' is mandatory for postgresql_grant resource")
        with self.session(values["database"]) as conn, conn.transaction():
            self.lock_role(conn, values["role"])
            if object_type == "database":
                self.query(
                    conn,
                    "SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_database WHERE datname = %s",
                    (values["database"],),
                )
            with self.roles_granted(conn, self.grant_owners(conn, values)):
                self.run(conn, revoke_query(values))
                if values["privileges"]:
                    self.run(conn, grant_query(values))
        return {**values, **self.read_grant(values)}

    def create_grant_role(self, values: dict) -> dict:
        """`resourcePostgreSQLGrantRoleCreate`: revoke, then grant, in one transaction."""
        role, grant_role = quote_ident(values["role"]), quote_ident(values["grant_role"])
        with self.session("postgres") as conn, conn.transaction():
            self.run(conn, f"REVOKE {grant_role} FROM {role}")
            admin = " WITH ADMIN OPTION" if values["with_admin_option"] else ""
            self.run(conn, f"GRANT {grant_role} TO {role}{admin}")
        return {**values, **self.read_grant_role(values)}

    def create_default_privileges(self, values: dict) -> dict:
        """`resourcePostgreSQLDefaultPrivilegesCreate`: the owner granted for it; revoke all, then grant."""
        if values["object_type"] not in ("table", "sequence", "function"):
            raise Unmodelled(f"{self.address}: default privileges on {values['object_type']}")
        owner = values["owner"]
        with self.session(values["database"]) as conn, conn.transaction():
            self.lock_role(conn, owner)
            with self.roles_granted(conn, [owner]):
                prefix = f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_ident(owner)} {in_schema(values)}"
                objects = values["object_type"].upper() + "S"
                self.run(conn, f"{prefix} REVOKE ALL ON {objects} FROM {quote_ident(values['role'])}")
                if values["privileges"]:
                    privileges = ",".join(values["privileges"])
                    self.run(conn, f"{prefix} GRANT {privileges} ON {objects} TO {quote_ident(values['role'])}")
        return {**values, **self.read_default_privileges(values)}

    def create_extension(self, values: dict) -> dict:
        """`resourcePostgreSQLExtensionCreate`: as the current user, in the extension's database."""
        statement = f"CREATE EXTENSION IF NOT EXISTS {quote_ident(values['name'])}"
        if values.get("schema"):
            statement += f" SCHEMA {quote_ident(values['schema'])}"
        with self.session(values["database"]) as conn, conn.transaction():
            self.run(conn, statement)
        return {**values, **self.read_extension(values)}

    # --- read ----------------------------------------------------------------------------------

    def read_role(self, values: dict) -> dict | None:
        """`resourcePostgreSQLRoleReadImpl`; the password is the state's (`superuser = false`)."""
        with self.session("postgres") as conn:
            rows = self.query(
                conn,
                """SELECT ARRAY(SELECT pg_get_userbyid(roleid) FROM pg_catalog.pg_auth_members members
                                WHERE member = pg_roles.oid),
                          rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit,
                          COALESCE(rolvaliduntil::TEXT, 'infinity'), rolconfig, rolreplication, rolbypassrls
                   FROM pg_catalog.pg_roles WHERE rolname = %s""",
                (values["name"],),
            )
        if not rows:
            return None
        roles, name, superuser, inherit, createrole, createdb, login, limit, until, config, replication, bypass = rows[
            0
        ]
        config = config or []

        def setting(prefix: str) -> str | None:
            return next((item.removeprefix(prefix + "=") for item in config if item.startswith(prefix)), None)

        path = setting("search_path")
        return {
            "roles": sorted(roles),
            "name": name,
            "superuser": superuser,
            "inherit": inherit,
            "create_role": createrole,
            "create_database": createdb,
            "login": login,
            "connection_limit": limit,
            "valid_until": until,
            "replication": replication,
            "bypass_row_level_security": bypass,
            "search_path": [part.strip('"') for part in path.split(", ")] if path is not None else [],
            "assume_role": setting("role") or "",
            "statement_timeout": int(setting("statement_timeout") or 0),
            "idle_in_transaction_session_timeout": int(setting("idle_in_transaction_session_timeout") or 0),
            "password": values.get("password"),
        }

    def read_database(self, values: dict) -> dict | None:
        """`resourcePostgreSQLDatabaseReadImpl`."""
        with self.session("postgres") as conn:
            rows = self.query(
                conn,
                "SELECT pg_catalog.pg_get_userbyid(d.datdba), d.datconnlimit, d.datallowconn, d.datistemplate "
                "FROM pg_catalog.pg_database d WHERE datname = %s",
                (values["name"],),
            )
        if not rows:
            return None
        owner, limit, allow, template = rows[0]
        return {"owner": owner, "connection_limit": limit, "allow_connections": allow, "is_template": template}

    def read_schema(self, values: dict) -> dict | None:
        """`resourcePostgreSQLSchemaReadImpl`."""
        with self.session(values["database"]) as conn:
            rows = self.query(
                conn,
                "SELECT pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n WHERE n.nspname = %s",
                (values["name"],),
            )
        return {"owner": rows[0][0]} if rows else None

    def role_oid(self, conn: psycopg.Connection, role: str) -> int:
        """`getRoleOID`: 0 for public."""
        if role == "public":
            return 0
        return self.query(conn, "SELECT oid FROM pg_roles WHERE rolname = %s", (role,))[0][0]

    def read_grant(self, values: dict) -> dict | None:
        """`resourcePostgreSQLGrantRead`: gone when the database, role or schema is; else the
        privileges held, or, for tables and sequences, those of the first object that differs."""
        with self.session("postgres") as conn:
            if not self.query(conn, "SELECT datname FROM pg_database WHERE datname = %s", (values["database"],)):
                return None
        with self.session(values["database"]) as conn:
            role = values["role"]
            if role != "public" and not self.query(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
                return None
            object_type = values["object_type"]
            if object_type != "database" and not self.query(
                conn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (values["schema"],)
            ):
                return None
            oid = self.role_oid(conn, role)
            if object_type in ("database", "schema"):
                table, column, key = (
                    ("pg_database", "datacl", "datname")
                    if object_type == "database"
                    else ("pg_namespace", "nspacl", "nspname")
                )
                target = values["database"] if object_type == "database" else values["schema"]
                (held,) = self.query(
                    conn,
                    f"SELECT array_agg(privilege_type) FROM (SELECT (aclexplode({column})).* FROM {table} "
                    f"WHERE {key} = %s) AS privileges WHERE grantee = %s",
                    (target, oid),
                )[0]
                return {"privileges": sorted(held or [])}
            rows = self.query(
                conn,
                """SELECT pg_class.relname, array_remove(array_agg(privilege_type), NULL)
                   FROM pg_class JOIN pg_namespace ON pg_namespace.oid = pg_class.relnamespace
                   LEFT JOIN (SELECT acls.* FROM (SELECT relname, relnamespace, relkind, (aclexplode(relacl)).*
                                                  FROM pg_class c) AS acls WHERE grantee = %s) privs
                   USING (relname, relnamespace, relkind)
                   WHERE nspname = %s AND relkind = %s GROUP BY pg_class.relname""",
                (oid, values["schema"], GRANT_OBJECT_TYPES[object_type]),
            )
        objects = set(values.get("objects") or ())
        for name, held in rows:
            if objects and name not in objects:
                continue
            if set(held) != set(values["privileges"]):
                return {"privileges": sorted(held)}
        return {"privileges": sorted(values["privileges"])}

    def read_grant_role(self, values: dict) -> dict | None:
        """`readGrantRole`: the first membership row of (role, grant_role), as `QueryRow` takes it."""
        with self.session("postgres") as conn:
            rows = self.query(
                conn,
                "SELECT pg_get_userbyid(member), pg_get_userbyid(roleid), admin_option FROM pg_auth_members "
                "WHERE pg_get_userbyid(member) = %s AND pg_get_userbyid(roleid) = %s",
                (values["role"], values["grant_role"]),
            )
        if not rows:
            return None
        role, grant_role, admin_option = rows[0]
        return {"role": role, "grant_role": grant_role, "with_admin_option": admin_option}

    def read_default_privileges(self, values: dict) -> dict | None:
        """`readRoleDefaultPrivileges`: gone when nothing is held but something is wanted."""
        with self.session(values["database"]) as conn:
            oid = self.role_oid(conn, values["role"])
            kind = GRANT_OBJECT_TYPES[values["object_type"]]
            if values.get("schema"):
                query = """SELECT array_agg(prtype) FROM (SELECT defaclnamespace, (aclexplode(defaclacl)).*
                           FROM pg_default_acl WHERE defaclobjtype = %s)
                           AS t (namespace, grantor_oid, grantee_oid, prtype, grantable)
                           JOIN pg_namespace ON pg_namespace.oid = namespace
                           WHERE grantee_oid = %s AND nspname = %s AND pg_get_userbyid(grantor_oid) = %s"""
                params: tuple = (kind, oid, values["schema"], values["owner"])
            else:
                query = """SELECT array_agg(prtype) FROM (SELECT defaclnamespace, (aclexplode(defaclacl)).*
                           FROM pg_default_acl WHERE defaclobjtype = %s)
                           AS t (namespace, grantor_oid, grantee_oid, prtype, grantable)
                           WHERE grantee_oid = %s AND namespace = 0 AND pg_get_userbyid(grantor_oid) = %s"""
                params = (kind, oid, values["owner"])
            (held,) = self.query(conn, query, params)[0]
        if not held and values["privileges"]:
            return None
        return {"privileges": sorted(held or [])}

    def read_extension(self, values: dict) -> dict | None:
        """`resourcePostgreSQLExtensionReadImpl`."""
        with self.session(values["database"]) as conn:
            rows = self.query(
                conn,
                "SELECT n.nspname, e.extversion FROM pg_catalog.pg_extension e, pg_catalog.pg_namespace n "
                "WHERE n.oid = e.extnamespace AND e.extname = %s",
                (values["name"],),
            )
        return {"schema": rows[0][0], "version": rows[0][1]} if rows else None

    # --- import and plan ---------------------------------------------------------------------------

    IMPORTABLE = ("postgresql_role", "postgresql_database", "postgresql_schema", "postgresql_extension")
    """The resources with an `Importer` in 1.26.0; grants, memberships and default privileges have none."""

    def import_existing(self, stack: Mapping) -> list[str]:
        """`terraform import` of every importable resource that exists on the server (the read,
        with the ID), then `terraform apply` of the rest: what moving a cluster built by
        `servicedb apply` to Terraform takes. Returns the imported addresses."""
        self.use_providers(stack)
        imported = []
        for resource in resources_of(stack):
            values = self.attributes(resource)
            if resource.type in self.IMPORTABLE:
                read = getattr(self, "read_" + resource.type.removeprefix("postgresql_"))(values)
                if read is not None:
                    # The importer reads every attribute; the password is not readable, so the
                    # state has the configuration's until the next apply sets it.
                    self.state[resource.address] = {**values, **read}
                    imported.append(resource.address)
                    continue
            self.create(resource)
        return imported

    def plan(self, stack: Mapping) -> list[str]:
        """`terraform plan` after `apply`: each resource read back as the provider reads it and
        compared with the configuration; one line per difference, none for "No changes"."""
        self.use_providers(stack)
        changes = []
        for resource in resources_of(stack):
            if resource.type == "random_password":
                continue
            values = self.attributes(resource)
            read = getattr(self, "read_" + resource.type.removeprefix("postgresql_"))(values)
            if read is None:
                changes.append(f"{resource.address}: will be created (the provider reads nothing back)")
                continue
            for attribute, wanted in values.items():
                if attribute in resource.ignore_changes or attribute not in read or attribute == "password":
                    continue
                got = read[attribute]
                if attribute in SET_ATTRIBUTES:
                    wanted, got = sorted(wanted or []), sorted(got or [])
                if wanted != got:
                    changes.append(f"{resource.address}: {attribute} {got!r} -> {wanted!r}")
        return changes


def in_schema(values: Mapping) -> str:
    return f"IN SCHEMA {quote_ident(values['schema'])}" if values.get("schema") else ""


def grant_query(values: Mapping) -> str:
    """`createGrantQuery`."""
    privileges = ",".join(values["privileges"])
    role = quote_ident(values["role"])
    object_type = values["object_type"]
    if object_type == "database":
        return f"GRANT {privileges} ON DATABASE {quote_ident(values['database'])} TO {role}"
    if object_type == "schema":
        return f"GRANT {privileges} ON SCHEMA {quote_ident(values['schema'])} TO {role}"
    if values.get("objects"):
        names = ",".join(f"{quote_ident(values['schema'])}.{quote_ident(o)}" for o in values["objects"])
        return f"GRANT {privileges} ON {object_type.upper()} {names} TO {role}"
    return f"GRANT {privileges} ON ALL {object_type.upper()}S IN SCHEMA {quote_ident(values['schema'])} TO {role}"


def revoke_query(values: Mapping) -> str:
    """`createRevokeQuery`."""
    role = quote_ident(values["role"])
    object_type = values["object_type"]
    if object_type == "database":
        return f"REVOKE ALL PRIVILEGES ON DATABASE {quote_ident(values['database'])} FROM {role}"
    if object_type == "schema":
        return f"REVOKE ALL PRIVILEGES ON SCHEMA {quote_ident(values['schema'])} FROM {role}"
    if values.get("objects"):
        names = ",".join(f"{quote_ident(values['schema'])}.{quote_ident(o)}" for o in values["objects"])
        privileges = ",".join(values["privileges"]) or "ALL PRIVILEGES"
        return f"REVOKE {privileges} ON {object_type.upper()} {names} FROM {role}"
    return f"REVOKE ALL PRIVILEGES ON ALL {object_type.upper()}S IN SCHEMA {quote_ident(values['schema'])} FROM {role}"
