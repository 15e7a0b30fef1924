"""The diff: statements that take the current state to the wanted one, each with a description.

`diff(wanted, current)` with a `Current` from `inspect` gives only what differs, so a second run
right after an apply gives nothing. With `current=None` (nothing is known, as for `servicedb
sql`), every object is created and every grant is stated in full.

Only what the plan manages is touched: its roles, their memberships, its databases and what is
inside them. Privileges that an unmanaged role holds on a managed object are left alone (and
reported by `verify`). Nothing is ever dropped, but the database and roles of a service declared
`purge=True` (`Plan.purged`): a service that is no longer declared keeps everything it had, and
a retired one keeps its data while its users lose their login and password.
"""

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from servicedb import compose as sql
from servicedb.inspect import MANAGED_SETTINGS, Contents, Current, DatabaseState
from servicedb.plan import (
    PUBLIC,
    RDS_IAM,
    DefaultPrivilege,
    Grant,
    Membership,
    ObjectType,
    Plan,
    Role,
    RoleKind,
    ServicePlan,
    legacy_manager_name,
    manager_name,
    role_name,
    role_names,
)
from servicedb.sql import PRIVILEGES, Password, Statement, grantee, ident, in_privilege_order, privilege_list

ON_TARGET = {
    ObjectType.DATABASE: "DATABASE",
    ObjectType.SCHEMA: "SCHEMA",
    ObjectType.TABLE: "ALL TABLES IN SCHEMA",
    ObjectType.SEQUENCE: "ALL SEQUENCES IN SCHEMA",
    ObjectType.FUNCTION: "ALL ROUTINES IN SCHEMA",
}
DEFAULT_TARGET = {ObjectType.TABLE: "TABLES", ObjectType.SEQUENCE: "SEQUENCES", ObjectType.FUNCTION: "FUNCTIONS"}
OBJECT_KEYWORD = {ObjectType.TABLE: "TABLE", ObjectType.SEQUENCE: "SEQUENCE", ObjectType.FUNCTION: "ROUTINE"}

BUILT_IN_DEFAULTS = {ObjectType.FUNCTION: {PUBLIC: frozenset({"EXECUTE"})}}
"""What PostgreSQL gives on new objects where no default privileges say otherwise, beyond the
owner: PUBLIC may EXECUTE every new function and procedure."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Changes:
    statements: tuple[Statement, ...]
    problems: tuple[str, ...]
    """What cannot be applied as declared (an extension the server does not have); apply refuses."""


PG16 = 160000
"""From PostgreSQL 16 on, a role that is not a superuser alters and grants only roles it holds ADMIN on."""


def diff(wanted: Plan, current: Current | None) -> Changes:
    statements: list[Statement] = []
    problems: list[str] = []
    managed = {role.name for role in wanted.roles}
    # With a server to look at, each service's roles are created and changed through its manager
    # (`plan.manager_name`); the script of `servicedb sql`, for any version, runs as the admin.
    manager_of: dict[str, str] = {}
    if current:
        managers = managers_of(wanted, current)
        manager_of = {role.name: managers[s.service] for s in wanted.services for role in s.roles}
        statements += manager_changes(wanted, current, managers)
    roles, settings, granted = service_role_changes(wanted, current, manager_of)
    statements += roles
    for grant in wanted.temporary:
        statements += role_changes(grant.role, current)
        settings += setting_changes(grant.role, current)
    statements += through(database_setting_changes(current), manager_of)
    statements += membership_changes(wanted, current, managed, manager_of, granted=granted)
    statements += settings
    for service in wanted.services:
        database = current.databases.get(service.database.name) if current else None
        statements += database_changes(service, database, managed, admin=current.current_user if current else None)
        statements += contents_changes(service, database.contents if database else None, managed)
        if current:
            problems += extension_problems(service, database, current)
    iam_services = [s.service for s in wanted.services if any(user.iam for user in s.login_users)]
    if current and iam_services and not current.rds_iam_exists:
        problems.append(
            f"role {RDS_IAM} does not exist on this server: Aurora and RDS PostgreSQL have it for IAM "
            f"authentication (auth='iam' in {', '.join(iam_services)}); on another server, create a NOLOGIN "
            f"role {RDS_IAM} to stand for it, or declare auth='password'"
        )
    statements += purge_changes(wanted, current)
    return Changes(statements=tuple(statements), problems=tuple(problems))


def extension_problems(service: ServicePlan, database: DatabaseState | None, current: Current) -> list[str]:
    """Why an extension of the service cannot be created: the server does not have it, or only a
    superuser may create it (apply creates extensions as the service's owner). Found before the
    first statement runs, so that apply refuses everything rather than stop halfway."""
    installed = database.contents.extensions if database and database.contents else {}
    problems = []
    for extension in service.extensions:
        if extension.name in installed:
            continue
        if extension.name not in current.available_extensions:
            problems.append(
                f"extension {extension.name} of service {service.service} is not available on this server "
                f"(pg_available_extensions); install it on the server or remove it from the service"
            )
        elif extension.name not in current.trusted_extensions:
            problems.append(
                f"extension {extension.name} of service {service.service} is not trusted: only a superuser may "
                f"create it, and apply creates extensions as {service.owner.name}; create it in database "
                f"{service.database.name} by hand as a superuser (on RDS, rds_superuser may where "
                f"rds.allowed_extensions lets it), or remove it from the service"
            )
    return problems


def service_role_changes(
    wanted: Plan, current: Current | None, manager_of: Mapping[str, str]
) -> tuple[list[Statement], list[Statement], set[tuple[str, str]]]:
    """The services' roles, their settings, and the (member, role) memberships granted with them.

    On PostgreSQL 16 the first SET ROLE (or `role` setting checked) after any change of roles or
    memberships walks everything the admin may become: one owner per service and the managers. So
    the roles of a manager's services change in one transaction as that manager (one walk per
    manager, not per service), each service's with the grants of its roles to roles that exist by
    then: its own users, and the users of services that read it, which come first where reads
    allow. The other grants come later (`membership_changes`), by manager too. The settings change
    no membership: they come after all of them, where the walk is remembered, by manager.
    """
    statements: list[Statement] = []
    settings: list[Statement] = []
    granted: set[tuple[str, str]] = set()
    exists = set(current.roles) if current else set()
    by_role: dict[str, list[Membership]] = {}
    for membership in wanted.memberships:
        by_role.setdefault(membership.role, []).append(membership)
    order = readers_first(wanted) if current else wanted.services
    # Stable: readers first within each manager's services.
    for service in sorted(order, key=lambda service: manager_of.get(service.owner.name, "")):
        for role in service.roles:
            manager = manager_of.get(role.name)
            statements += managed_role_changes(role, current, manager)
            settings += (dataclasses.replace(s, role=manager) for s in setting_changes(role, current))
            exists.add(role.name)
        if current is None:
            continue
        for role in service.roles:
            for m in by_role.get(role.name, ()):
                if m.member in exists and (m.member, m.role) not in current.memberships:
                    statements.append(membership_grant(m.member, m.role, manager_of))
                    granted.add((m.member, m.role))
    settings.sort(key=lambda statement: statement.role or "")
    return statements, settings, granted


def readers_first(wanted: Plan) -> list[ServicePlan]:
    """The services, each after the services that read it, where reads form no cycle (then in the
    plan's order): a service's reader is granted to the users of those that read it in the
    transaction that makes it."""
    service_of = {role.name: service.service for service in wanted.services for role in service.roles}
    readers: dict[str, set[str]] = {service.service: set() for service in wanted.services}
    for membership in wanted.reads:
        read, by = service_of.get(membership.role), service_of.get(membership.member)
        if read and by and read != by:
            readers[read].add(by)
    order = {service.service: service for service in wanted.services}
    graph = {name: sorted(by) for name, by in readers.items()}  # sorted: the same order on every run
    try:
        return [order[name] for name in TopologicalSorter(graph).static_order()]
    except CycleError:
        return list(wanted.services)


def managers_of(wanted: Plan, current: Current) -> dict[str, str]:
    """Each service's manager: its own (`plan.legacy_manager_name`) where the server has one from
    before the groups, else its group's (`plan.manager_name`)."""
    return {
        service.service: legacy
        if (legacy := legacy_manager_name(service.service)) in current.roles
        else manager_name(service.service)
        for service in wanted.services
    }


def manager_changes(wanted: Plan, current: Current, managers: Mapping[str, str]) -> Iterator[Statement]:
    """The services' `managers`, which the admin may become, and, from PostgreSQL 16 on, ADMIN for
    each on its services' roles that exist already (the admin or Terraform created them)."""
    services_of: dict[str, list[str]] = {}
    for service, manager in managers.items():
        services_of.setdefault(manager, []).append(service)
    if any(manager not in current.roles for manager in services_of) and current.server_version >= PG16:
        # The managers the admin creates are granted to it as they are made, SET and INHERIT as
        # its GRANT would give: a GRANT checks the admin's ADMIN on the manager, a walk of all its
        # memberships (milliseconds each on a cluster of 1,000 services).
        yield Statement(
            description="the admin may act as each manager it creates (SET and INHERIT, as a GRANT gives)",
            query=sql.SQL("SET LOCAL createrole_self_grant = 'set, inherit'"),
            internal=True,
        )
    for manager, services in sorted(services_of.items()):
        created = manager not in current.roles
        if created:
            yield Statement(
                description=f"create role {manager}, through which the admin manages the roles of "
                + ", ".join(services),
                query=sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT CREATEROLE").format(ident(manager)),
                internal=True,
            )
        if manager not in current.acting_as and not (created and current.server_version >= PG16):
            yield Statement(
                description=f"the admin may act as {manager}",
                query=sql.SQL("GRANT {} TO CURRENT_USER").format(ident(manager)),
                internal=True,
            )
    if current.server_version < PG16:
        return  # CREATEROLE alters any role that is not a superuser
    for service in wanted.services:
        manager = managers[service.service]
        for role in service.roles:
            if role.name in current.roles and (manager, role.name) not in current.administering:
                yield Statement(
                    description=f"{manager} may manage {role.name}, which exists already",
                    query=sql.SQL("GRANT {} TO {} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(
                        ident(role.name), ident(manager)
                    ),
                    internal=True,
                )


def through(statements: Iterable[Statement], manager_of: Mapping[str, str]) -> Iterator[Statement]:
    """Each statement on the admin connection about a service's role runs as that service's manager."""
    for statement in statements:
        manager = manager_of.get(statement.subject or "")
        if manager and statement.database is None and statement.role is None and not statement.autocommit:
            statement = dataclasses.replace(statement, role=manager)
        yield statement


def managed_role_changes(role: Role, current: Current | None, manager: str | None) -> Iterator[Statement]:
    """`role_changes`, through the service's manager. A role the manager creates on PostgreSQL 16
    is the manager's to administer. The admin, a member of the manager, may administer it through
    the manager (PostgreSQL finds ADMIN anywhere among the admin's memberships), and so may the
    Terraform provider, which logs in as the admin. The owner it is given WITH ADMIN OPTION and
    its privileges, to act as the owner.

    The admin holds no ADMIN of its own on the other roles: each such membership is one more the
    admin's first SET ROLE after any change of roles reads, which on a cluster of 1,000 services
    made that SET ROLE twice as slow (8 ms against 17 ms)."""
    for statement in role_changes(role, current):
        yield dataclasses.replace(statement, role=manager) if manager else statement
    new = current is not None and role.name not in current.roles
    if manager and new and current.server_version >= PG16 and role.kind == RoleKind.OWNER:
        yield Statement(
            description=f"the admin may manage {role.name}, and acts as it",
            query=sql.SQL("GRANT {} TO SESSION_USER WITH ADMIN OPTION, INHERIT TRUE, SET TRUE").format(
                ident(role.name)
            ),
            role=manager,
        )


def purge_changes(wanted: Plan, current: Current | None) -> Iterator[Statement]:
    """Drop the database, then the roles, of each purged service: the only statements that drop.

    With `current=None` (`servicedb sql`), the purged service is taken to exist: `IF EXISTS`
    keeps the script right for what is already gone, but for the owner role the admin acts as.
    """
    for service in wanted.purged:
        owner = role_name(service, RoleKind.OWNER)
        exists = current is None or service in current.databases
        if exists and (current is None or owner not in current.acting_as):
            yield Statement(
                description=f"the admin acts as {owner}, to drop the database of purged service {service}",
                query=sql.SQL("GRANT {} TO CURRENT_USER").format(ident(owner)),
            )
        if exists:
            yield Statement(
                description=f"drop database {service} of purged service {service}, and all its data",
                query=sql.SQL("DROP DATABASE IF EXISTS {}").format(ident(service)),
                autocommit=True,
            )
        for name in (*role_names(service), legacy_manager_name(service)):
            if current is None or name in current.roles:
                yield Statement(
                    description=f"drop role {name} of purged service {service}",
                    query=sql.SQL("DROP ROLE IF EXISTS {}").format(ident(name)),
                )


def wanted_settings(role: Role) -> dict[str, str]:
    settings = {}
    if role.statement_timeout_ms is not None:
        settings["statement_timeout"] = str(role.statement_timeout_ms)
    if role.idle_in_transaction_timeout_ms is not None:
        settings["idle_in_transaction_session_timeout"] = str(role.idle_in_transaction_timeout_ms)
    if role.search_path:
        settings["search_path"] = ", ".join(ident(name).as_string() for name in role.search_path)
    if role.assume_role:
        settings["role"] = role.assume_role
    return settings


def unquoted(value: str | None) -> str | None:
    """A setting as compared: PostgreSQL stores `search_path` with quotes only where needed."""
    return value.replace('"', "") if value is not None else None


def setting_value(name: str, value: str) -> sql.Composable:
    if name == "search_path":
        return sql.SQL(value)
    if name == "role":
        return sql.Literal(value)
    return sql.Literal(int(value))


def role_changes(role: Role, current: Current | None) -> Iterator[Statement]:
    state = current.roles.get(role.name) if current else None
    login = sql.SQL("LOGIN" if role.login else "NOLOGIN")
    inherit = sql.SQL("INHERIT" if role.inherit else "NOINHERIT")
    limit = sql.SQL(str(int(role.connection_limit)))
    valid_until = sql.SQL("VALID UNTIL {}").format(sql.Literal(role.valid_until_text))
    if state is None:
        options = [login, inherit, sql.SQL("CONNECTION LIMIT {}").format(limit)]
        if role.valid_until:
            options.append(valid_until)
        # An IAM user is created without a password (NULL); so is a user whose password no secret
        # carries yet (an alternating pair's inactive user): it gets one when it becomes active.
        unknown = role.login and not role.iam and current is not None and role.name in current.unknown_passwords
        if role.login and not role.iam and not unknown:
            options.append(sql.SQL("PASSWORD {}").format(Password(role.name)))
        kind = "login user" if role.login else "NOLOGIN role"
        without = ", without a password until its secret carries it" if unknown else ""
        yield Statement(
            description=f"create {kind} {role.name} ({role.kind}){without}",
            query=sql.SQL("CREATE ROLE {} {}").format(ident(role.name), sql.SQL(" ").join(options)),
        )
    else:
        changes = []
        unknown = current is not None and role.name in current.unknown_passwords
        set_password = False
        if state.login != role.login:
            changes.append((login, f"{'allow' if role.login else 'forbid'} login"))
            if not role.login:  # a retired service's user: its secret is gone, so is its password
                changes.append((sql.SQL("PASSWORD NULL"), "remove its password"))
            elif not role.iam and not unknown:  # back from retirement: it had no password left
                changes.append((sql.SQL("PASSWORD {}").format(Password(role.name)), "set the password from its secret"))
                set_password = True
        if state.inherit != role.inherit:
            changes.append((inherit, "inherit privileges" if role.inherit else "stop inheriting privileges"))
        if state.connection_limit != role.connection_limit:
            changes.append(
                (
                    sql.SQL("CONNECTION LIMIT {}").format(limit),
                    f"connection limit {state.connection_limit} -> {role.connection_limit}",
                )
            )
        if state.valid_until != role.valid_until:
            was = "infinity" if state.valid_until is None else state.valid_until.isoformat()
            changes.append((valid_until, f"valid until {role.valid_until_text} (was {was})"))
        if changes:
            yield Statement(
                description=f"{role.name}: " + ", ".join(what for _, what in changes),
                query=sql.SQL("ALTER ROLE {} {}").format(ident(role.name), sql.SQL(" ").join(o for o, _ in changes)),
            )
        if not set_password and role.login and not role.iam and current and current.password_ok.get(role.name) is False:
            yield Statement(
                description=f"{role.name}: set the password from its secret (the current one is rejected)",
                query=sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(role.name), Password(role.name)),
            )
        if role.iam and current:
            yield from password_removal(role, current)


def setting_changes(role: Role, current: Current | None) -> Iterator[Statement]:
    """`ALTER ROLE ... SET/RESET` of the settings servicedb manages; the role exists by then."""
    state = current.roles.get(role.name) if current else None
    current_settings: Mapping[str, str] = state.settings if state else {}
    settings = wanted_settings(role)
    for name in MANAGED_SETTINGS:
        value, now = settings.get(name), current_settings.get(name)
        if value is not None and unquoted(value) != unquoted(now):
            yield Statement(
                description=f"{role.name}: {name} = {value}" + (f" (was {now})" if now is not None else ""),
                query=sql.SQL("ALTER ROLE {} SET {} = {}").format(
                    ident(role.name), sql.SQL(name), setting_value(name, value)
                ),
            )
        elif value is None and now is not None:
            yield Statement(
                description=f"{role.name}: reset {name} (was {now})",
                query=sql.SQL("ALTER ROLE {} RESET {}").format(ident(role.name), sql.SQL(name)),
            )


def database_setting_changes(current: Current | None) -> Iterator[Statement]:
    """Reset what `ALTER ROLE <managed role> IN DATABASE ... SET` added: the plan declares none, and
    such a setting wins over the role's own (an app user switching its statement_timeout off)."""
    for (role, database), settings in sorted((current.database_settings if current else {}).items()):
        yield Statement(
            description=f"{role}: reset its settings in database {database} (not declared: {', '.join(settings)})",
            query=sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(ident(role), ident(database)),
            subject=role,
        )


def password_removal(role: Role, current: Current) -> Iterator[Statement]:
    """Clear the password of a user that logs in with IAM, when it has one or may have one.

    Known from `pg_authid` where the admin can read it; otherwise only when the user is about to
    become a member of `rds_iam` (it logged in with a password until now). A member of `rds_iam`
    cannot use a password on Aurora, but would again if the membership were revoked.
    """
    if current.with_password is not None:
        if role.name in current.with_password:
            yield Statement(
                description=f"{role.name} has a password and logs in with IAM ({RDS_IAM}): clear the password",
                query=sql.SQL("ALTER ROLE {} PASSWORD NULL").format(ident(role.name)),
            )
    elif (role.name, RDS_IAM) not in current.memberships:
        yield Statement(
            description=f"{role.name}: clear the password it had; it logs in with IAM ({RDS_IAM}) from now on",
            query=sql.SQL("ALTER ROLE {} PASSWORD NULL").format(ident(role.name)),
        )


def membership_grant(member: str, role: str, manager_of: Mapping[str, str]) -> Statement:
    """Grant `role` to `member`: as the role's manager (who holds ADMIN on it), else as the admin."""
    return Statement(
        description=f"grant {role} to {member}",
        query=sql.SQL("GRANT {} TO {}").format(ident(role), ident(member)),
        role=manager_of.get(role),
    )


def membership_changes(
    wanted: Plan,
    current: Current | None,
    managed: set[str],
    manager_of: Mapping[str, str] | None = None,
    *,
    granted: Set[tuple[str, str]] = frozenset(),
) -> Iterator[Statement]:
    """Memberships: the admin's of each owner, then the declared ones but those `granted` already
    (member, role), then revokes of the rest."""
    manager_of = manager_of or {}
    new_on_16 = current is not None and current.server_version >= PG16
    for service in wanted.services:
        owner = service.owner.name
        # On 16, the grant that comes with a new owner makes the admin act as it already.
        created_now = new_on_16 and owner in manager_of and owner not in current.roles
        if (current is None or owner not in current.acting_as) and not created_now:
            grantee = "SESSION_USER" if owner in manager_of else "CURRENT_USER"
            yield Statement(
                description=f"the admin acts as {owner}, to create and grant what {owner} owns",
                query=sql.SQL("GRANT {} TO " + grantee).format(ident(owner)),
                role=manager_of.get(owner),
            )
    wanted_pairs = [(m.member, m.role) for m in wanted.memberships]
    have = current.memberships if current else frozenset()
    grants = [
        membership_grant(member, role, manager_of)
        for member, role in wanted_pairs
        if (member, role) not in have and (member, role) not in granted
    ]
    # A service's grants together, as its manager: one transaction each (see `diff`).
    yield from sorted(grants, key=lambda statement: statement.role or "")
    for member, role in sorted(have - set(wanted_pairs)):
        if member in managed:
            yield Statement(
                role=manager_of.get(role),
                description=f"revoke {role} from {member} (not declared)",
                query=sql.SQL("REVOKE {} FROM {}").format(ident(role), ident(member)),
            )


def database_changes(
    service: ServicePlan, state: DatabaseState | None, managed: set[str], *, admin: str | None
) -> Iterator[Statement]:
    """The database, its owner, connection limit and grants; `admin` is who applies (None: the
    script's reader, who runs it as the admin)."""
    database = service.database
    limit = sql.SQL(str(int(database.connection_limit)))
    if state is None:
        yield Statement(
            description=f"create database {database.name} owned by {database.owner}",
            query=sql.SQL("CREATE DATABASE {} OWNER {} CONNECTION LIMIT {}").format(
                ident(database.name), ident(database.owner), limit
            ),
            autocommit=True,
        )
    else:
        if state.owner != database.owner:
            yield Statement(
                description=f"database {database.name}: owner {state.owner} -> {database.owner}",
                query=sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident(database.name), ident(database.owner)),
            )
        if state.connection_limit != database.connection_limit:
            yield Statement(
                description=f"database {database.name}: connection limit "
                f"{state.connection_limit} -> {database.connection_limit}",
                query=sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(ident(database.name), limit),
            )
    # A new database's ACL is PostgreSQL's default: PUBLIC may CONNECT and create TEMPORARY tables.
    acl = state.acl if state else {PUBLIC: frozenset({"CONNECT", "TEMPORARY"})}
    declared = set()
    for grant in service.grants:
        if grant.object_type == ObjectType.DATABASE:
            declared.add(grant.grantee)
            yield from grant_changes(grant, acl.get(grant.grantee, frozenset()), role=database.owner)
    if state is None or "CONNECT" not in acl.get(admin or "", frozenset()):
        # A direct grant is found before PostgreSQL walks the admin's memberships (one or more per
        # service) at every connection: on a cluster of a thousand services, milliseconds each.
        yield Statement(
            role=database.owner,
            description=f"the admin connects to {database.name} by a grant of its own",
            query=sql.SQL("GRANT CONNECT ON DATABASE {} TO SESSION_USER").format(ident(database.name)),
        )
    for name, privileges in sorted(acl.items()):
        if name not in declared and name != database.owner and revocable(name, managed):
            statement = revoke(
                ObjectType.DATABASE,
                sql.SQL("DATABASE {}").format(ident(database.name)),
                privileges,
                name,
                f"database {database.name}",
            )
            yield dataclasses.replace(statement, role=database.owner)


def contents_changes(service: ServicePlan, contents: Contents | None, managed: set[str]) -> Iterator[Statement]:
    """Statements inside the service's database, run as its owner; everything when `contents` is None."""
    owner, name = service.owner.name, service.database.name

    def inside(statements: Iterable[Statement]) -> Iterator[Statement]:
        for statement in statements:
            yield dataclasses.replace(statement, database=name, role=owner)

    schema = service.schema
    schemas = contents.schemas if contents else {}
    if schema.name not in schemas:
        yield from inside(
            [
                Statement(
                    description=f"create schema {name}.{schema.name} owned by {owner}",
                    # IF NOT EXISTS: when the admin cannot yet look inside the database, it may be there.
                    query=sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                        ident(schema.name), ident(owner)
                    ),
                )
            ]
        )
    elif schemas[schema.name][0] != schema.owner:
        yield from inside(
            [
                Statement(
                    description=f"schema {name}.{schema.name}: owner {schemas[schema.name][0]} -> {owner}",
                    query=sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(schema.name), ident(owner)),
                )
            ]
        )

    for grant in service.grants:
        if grant.object_type == ObjectType.SCHEMA:
            if contents is None or grant.schema not in schemas:
                # Unknown: a new schema is the owner's alone; `public` may still let PUBLIC create.
                have = frozenset(PRIVILEGES[ObjectType.SCHEMA]) if grant.grantee == PUBLIC else frozenset()
            else:
                have = schemas[grant.schema][1].get(grant.grantee, frozenset())
            yield from inside(grant_changes(grant, have))
        elif grant.object_type in (ObjectType.TABLE, ObjectType.SEQUENCE, ObjectType.FUNCTION):
            relations = contents.relations_in(grant.schema or "", grant.object_type) if contents else ()
            held = [r.acl.get(grant.grantee, frozenset()) for r in relations]
            if contents is None:
                everywhere = frozenset()  # unknown: state the grant
            else:  # on every existing object; with none, there is nothing to grant
                everywhere = frozenset.intersection(*held) if held else frozenset(grant.privileges)
            anywhere = frozenset.union(frozenset(), *held)
            yield from inside(grant_changes(grant, everywhere, anywhere=anywhere))
    if contents:
        yield from inside(stray_grants(service, contents, managed))

    for default in service.default_privileges:
        # Without an entry of its own, the owner's defaults in no schema are PostgreSQL's built-in ones.
        built_in = BUILT_IN_DEFAULTS.get(default.object_type, {}) if default.schema is None else {}
        have = (
            contents.default_acls.get((owner, default.schema, default.object_type), built_in) if contents else built_in
        )
        yield from inside(default_privilege_changes(default, have.get(default.grantee, frozenset())))
    if contents:
        declared = {(d.schema, d.object_type, d.grantee) for d in service.default_privileges}
        for (role, schema_name, object_type), acl in sorted(contents.default_acls.items(), key=str):
            if role != owner or schema_name not in (schema.name, None):
                continue
            for grantee_name, privileges in sorted(acl.items()):
                if (schema_name, object_type, grantee_name) not in declared and grantee_name != owner:
                    stray = DefaultPrivilege(
                        database=name,
                        schema=schema_name,
                        owner=owner,
                        object_type=object_type,
                        grantee=grantee_name,
                        privileges=(),
                    )
                    yield from inside(default_privilege_changes(stray, privileges))

    installed = contents.extensions if contents else {}
    for extension in service.extensions:
        if extension.name not in installed:
            yield from inside(
                [
                    Statement(
                        description=f"create extension {extension.name} in {name}.{extension.schema}",
                        query=sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA {}").format(
                            ident(extension.name), ident(extension.schema)
                        ),
                    )
                ]
            )


def stray_grants(service: ServicePlan, contents: Contents, managed: set[str]) -> Iterator[Statement]:
    """Revoke what PUBLIC or a managed role holds on the service's objects without a declaration."""
    declared = {(g.schema, g.object_type, g.grantee) for g in service.grants}
    schema_names = {g.schema for g in service.grants if g.object_type == ObjectType.SCHEMA}
    for schema_name in sorted(schema_names):
        if schema_name not in contents.schemas:
            continue
        owner, acl = contents.schemas[schema_name]
        for name, privileges in sorted(acl.items()):
            if (schema_name, ObjectType.SCHEMA, name) not in declared and name != owner and revocable(name, managed):
                yield revoke(
                    ObjectType.SCHEMA,
                    sql.SQL("SCHEMA {}").format(ident(schema_name)),
                    privileges,
                    name,
                    f"schema {service.database.name}.{schema_name}",
                )
    for relation in contents.relations:
        if relation.schema != service.schema.name:
            continue
        for name, privileges in sorted(relation.acl.items()):
            if (relation.schema, relation.object_type, name) in declared or name == relation.owner:
                continue
            if revocable(name, managed):
                keyword = OBJECT_KEYWORD[relation.object_type]
                # A routine's name is its signature, as PostgreSQL quotes it (`f(integer)`).
                name_sql = (
                    sql.SQL(relation.name) if relation.object_type == ObjectType.FUNCTION else ident(relation.name)
                )
                target = sql.SQL(keyword + " {}.{}").format(ident(relation.schema), name_sql)
                yield revoke(
                    relation.object_type,
                    target,
                    privileges,
                    name,
                    f"{relation.object_type} {service.database.name}.{relation.schema}.{relation.name}",
                )


def revocable(grantee_name: str, managed: set[str]) -> bool:
    return grantee_name == PUBLIC or grantee_name in managed


def revoke(
    object_type: ObjectType, target: sql.Composable, privileges: frozenset[str], name: str, what: str
) -> Statement:
    privileges_in_order = in_privilege_order(object_type, privileges)
    return Statement(
        description=f"revoke {', '.join(privileges_in_order)} on {what} from {display(name)} (not declared)",
        query=sql.SQL("REVOKE {} ON {} FROM {}").format(privilege_list(privileges_in_order), target, grantee(name)),
    )


def display(role: str) -> str:
    return "PUBLIC" if role == PUBLIC else role


def grant_target(grant: Grant) -> sql.Composable:
    name = grant.database if grant.object_type == ObjectType.DATABASE else grant.schema or ""
    return sql.SQL(ON_TARGET[grant.object_type] + " {}").format(ident(name))


def grant_changes(
    grant: Grant, have: frozenset[str], *, anywhere: frozenset[str] | None = None, role: str | None = None
) -> Iterator[Statement]:
    """GRANT what `grant` lacks (`have`: held on every object), REVOKE the rest (`anywhere`: on any)."""
    wanted = frozenset(grant.privileges)
    missing = in_privilege_order(grant.object_type, wanted - have)
    extra = in_privilege_order(grant.object_type, (have if anywhere is None else anywhere) - wanted)
    target = grant_target(grant)
    what = grant.target
    if extra:
        yield Statement(
            description=f"revoke {', '.join(extra)} on {what} from {display(grant.grantee)}",
            query=sql.SQL("REVOKE {} ON {} FROM {}").format(privilege_list(extra), target, grantee(grant.grantee)),
            role=role,
        )
    if missing:
        yield Statement(
            description=f"grant {', '.join(missing)} on {what} to {display(grant.grantee)}",
            query=sql.SQL("GRANT {} ON {} TO {}").format(privilege_list(missing), target, grantee(grant.grantee)),
            role=role,
        )


def default_privilege_changes(default: DefaultPrivilege, have: frozenset[str]) -> Iterator[Statement]:
    wanted = frozenset(default.privileges)
    missing = in_privilege_order(default.object_type, wanted - have)
    extra = in_privilege_order(default.object_type, have - wanted)
    objects = DEFAULT_TARGET[default.object_type]
    prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}").format(ident(default.owner))
    if default.schema is not None:
        prefix = sql.SQL("{} IN SCHEMA {}").format(prefix, ident(default.schema))
    where = f"{default.object_type}s {default.owner} creates in " + (
        f"{default.database}.{default.schema}" if default.schema else f"any schema of {default.database}"
    )
    if extra:
        yield Statement(
            description=f"{display(default.grantee)} no longer gets {', '.join(extra)} on {where}",
            query=sql.SQL("{} REVOKE {} ON {} FROM {}").format(
                prefix, privilege_list(extra), sql.SQL(objects), grantee(default.grantee)
            ),
        )
    if missing:
        yield Statement(
            description=f"{display(default.grantee)} gets {', '.join(missing)} on {where}",
            query=sql.SQL("{} GRANT {} ON {} TO {}").format(
                prefix, privilege_list(missing), sql.SQL(objects), grantee(default.grantee)
            ),
        )
