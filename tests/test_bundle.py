"""The provisioner function's zip: reproducible, complete, and nothing but what the handler runs."""

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from servicedb import bundle
from servicedb.cli import local_environment, local_services
from servicedb.plan import plan_services
from servicedb.provisioner import HANDLER, SslMode, event
from servicedb.server import ADMIN, LocalServer

SERVICES = Path(__file__).parent / "services"

SHA256_OF_A_FRESH_BUILD = (
    "import hashlib, servicedb.bundle; print(hashlib.sha256(servicedb.bundle.bundle()).hexdigest())"
)


@pytest.fixture(scope="module")
def content() -> bytes:
    return bundle.bundle()


@pytest.fixture(scope="module")
def archive(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


def test_two_builds_give_the_same_bytes(content: bytes) -> None:
    # In another process, so that nothing this one holds (a cache, an open file) can make them agree.
    other = subprocess.run([sys.executable, "-c", SHA256_OF_A_FRESH_BUILD], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == hashlib.sha256(content).hexdigest()
    assert bundle.bundle() == content


def test_holds_the_handler_and_the_pure_python_driver(archive: zipfile.ZipFile) -> None:
    names = set(archive.namelist())
    module, _ = HANDLER.rsplit(".", 1)
    assert f"{module.replace('.', '/')}.py" in names
    for package in ("pg8000", "scramp", "asn1crypto", "dateutil"):
        assert f"{package}/__init__.py" in names, package
    assert {name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA")} == {
        "asn1crypto-1.5.1.dist-info",
        "pg8000-1.31.6.dist-info",
        "python_dateutil-2.9.0.post0.dist-info",
        "scramp-1.5.0.dist-info",
        "six-1.17.0.dist-info",
    }
    assert "pg8000-1.31.6.dist-info/licenses/LICENSE" in names


def test_leaves_out_the_constructs_bytecode_and_boto3(archive: zipfile.ZipFile) -> None:
    names = archive.namelist()
    servicedb = {name.removeprefix("servicedb/") for name in names if name.startswith("servicedb/")}
    assert servicedb == {f"{module}.py" for module in bundle.MODULES}
    for left_out in ("construct.py", "stack.py", "lambda_provisioner.py", "cli.py", "app.py", "scan.py"):
        assert left_out not in servicedb
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.split("/")[0] in ("boto3", "botocore", "psycopg", "cdktf", "jsii")]
    assert not [name for name in names if name.endswith(("RECORD", "INSTALLER", "direct_url.json"))]


def test_every_entry_is_dated_1980_readable_by_all_and_stored(archive: zipfile.ZipFile) -> None:
    entries = archive.infolist()
    assert [entry.filename for entry in entries] == sorted(entry.filename for entry in entries)
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}
    assert {entry.external_attr >> 16 for entry in entries} == {0o100644}
    assert {entry.compress_type for entry in entries} == {zipfile.ZIP_STORED}


INSIDE_THE_FUNCTION = """
import json, sys, sysconfig
from pathlib import Path

code = sys.argv[1]
sys.path.insert(0, code)
given = json.load(sys.stdin)

from servicedb.apply import apply_plan
from servicedb.driver import Pg8000Server
from servicedb.passwords import LocalSecrets
from servicedb.provisioner import invocation
from servicedb.verify import verify

requested = invocation(given["event"])
server = Pg8000Server(host="127.0.0.1", port=given["port"], user=given["user"], password=given["password"], ssl=False)
apply_plan(server, requested.plan, LocalSecrets(Path(given["secrets"])), out=lambda _: None)
with server.connect() as conn:
    report = verify(conn, requested.plan, connect=server.connect)

stdlib = Path(sysconfig.get_paths()["stdlib"])
loaded = [Path(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)]
print(json.dumps({
    "ok": report.ok,
    "elsewhere": sorted(str(p) for p in loaded if not p.is_relative_to(code) and not p.is_relative_to(stdlib)),
    "from_zip": sorted({p.relative_to(code).parts[0] for p in loaded if p.is_relative_to(code)}),
    "boto3": "boto3" in sys.modules,
    "servicedb": sorted(m.removeprefix("servicedb.") for m in sys.modules if m.startswith("servicedb.")),
}))
"""


def test_the_unzipped_code_applies_a_plan_with_nothing_else_installed(
    content: bytes, server: LocalServer, tmp_path: Path
) -> None:
    code = tmp_path / "task"
    zipfile.ZipFile(io.BytesIO(content)).extractall(code)
    with LocalServer(server.binaries) as fresh:
        environment = local_environment("127.0.0.1", fresh.port)
        plan = plan_services(local_services(SERVICES, environment), environment)
        given = {
            "event": json.loads(json.dumps(event(plan, secret_arns={}, sslmode=SslMode.DISABLE))),
            "port": fresh.port,
            "user": ADMIN,
            "password": fresh.admin_password,
            "secrets": str(tmp_path / "secrets.json"),
        }
        # -I: no user site, no environment variables, not the current directory; -S: no site-packages.
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", INSIDE_THE_FUNCTION, str(code)],
            input=json.dumps(given),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    ran = json.loads(result.stdout)
    assert ran == {
        "ok": True,
        "elsewhere": [],
        "from_zip": ["asn1crypto", "dateutil", "pg8000", "scramp", "servicedb", "six.py"],
        "boto3": False,
        # Every module of the zip is one the handler runs: MODULES holds nothing more than it needs.
        "servicedb": sorted(module for module in bundle.MODULES if module != "__init__"),
    }
