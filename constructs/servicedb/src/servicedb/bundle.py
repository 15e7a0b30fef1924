"""The provisioner function's code: a zip of the handler, the servicedb modules it runs, and pg8000.

Built at synth from the installed packages, byte for byte the same from the same files, so an
unchanged handler keeps its hash and the function is not updated: entries sorted by name, each
dated 1980-01-01 00:00 with mode 0644, no `__pycache__`, and stored rather than deflated, since
two zlib builds (zlib, zlib-ng) may deflate the same bytes differently. Each distribution brings
its `METADATA` (pg8000 and scramp read their versions from it) and its license files.

boto3 is left out: the Lambda Python runtime has it, and the handler imports it only to run.
"""

import hashlib
import importlib.metadata
import io
import re
import zipfile
from pathlib import Path, PurePosixPath

MODULES = (
    "__init__",
    "access",
    "apply",
    "compose",
    "diff",
    "driver",
    "expire",
    "errors",
    "inspect",
    "lazy_aws",
    "network",
    "passwords",
    "plan",
    "provisioner",
    "spec",
    "sql",
    "verify",
)
"""The servicedb modules the handler imports, and nothing of the construct, the stacks or cdktf."""

DRIVER = "pg8000"
"""The distribution of the database driver; those it requires come along (scramp, asn1crypto, ...)."""

TIMESTAMP = (1980, 1, 1, 0, 0, 0)
"""The earliest date a zip entry can hold."""

FILE_MODE = 0o100644
"""A regular file, readable by everyone: the Lambda runtime reads the code as another user."""

LICENSE_PATTERN = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.IGNORECASE)
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def module_files() -> dict[str, bytes]:
    """`servicedb/<module>.py` for each of MODULES, from the installed package."""
    package = Path(__file__).parent
    return {f"servicedb/{name}.py": (package / f"{name}.py").read_bytes() for name in MODULES}


class BundleError(RuntimeError):
    """A package the function needs is not installed as the zip needs it; the message says what to do."""


def installed(name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(
            f"the lambda provisioner's zip needs {name}, which is not installed: install servicedb[lambda]"
        ) from None


def requirements(name: str) -> list[str]:
    """The distributions `name` requires to run, not those of its extras."""
    found = []
    for requirement in installed(name).requires or ():
        marker = requirement.partition(";")[2]
        if "extra" in marker:
            continue
        match = REQUIREMENT_NAME.match(requirement)
        if match:
            found.append(match.group(1))
    return found


def distributions(root: str = DRIVER) -> list[str]:
    """`root` and every distribution it requires, directly or not, each once."""
    seen: dict[str, None] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key not in seen:
            seen[key] = None
            pending += requirements(name)
    return sorted(seen)


def distribution_files(name: str) -> dict[str, bytes]:
    """The installed files of distribution `name` that the zip needs: its modules, METADATA and licenses."""
    distribution = installed(name)
    if not distribution.files:
        raise BundleError(f"{name} was installed without its list of files (RECORD); reinstall it with pip")
    files = {}
    for path in distribution.files:
        posix = PurePosixPath(path)
        if ".." in posix.parts or "__pycache__" in posix.parts or posix.suffix == ".pyc":
            continue  # scripts installed outside site-packages, and bytecode
        metadata = posix.parts[0].endswith(".dist-info")
        if metadata and posix.name != "METADATA" and not LICENSE_PATTERN.search(str(posix)):
            continue  # RECORD, INSTALLER, direct_url.json: they differ with how it was installed
        files[str(posix)] = Path(distribution.locate_file(path)).read_bytes()
    return files


def files() -> dict[str, bytes]:
    """Every file of the zip, by its name in the zip."""
    result = module_files()
    for name in distributions():
        result.update(distribution_files(name))
    return result


def build_zip(contents: dict[str, bytes]) -> bytes:
    """A zip of `contents` whose bytes depend on nothing else."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(contents):
            entry = zipfile.ZipInfo(name, date_time=TIMESTAMP)
            entry.create_system = 3  # Unix, whose mode bits follow
            entry.external_attr = FILE_MODE << 16
            entry.compress_type = zipfile.ZIP_STORED
            archive.writestr(entry, contents[name])
    return buffer.getvalue()


def bundle() -> bytes:
    """The provisioner function's zip."""
    return build_zip(files())


def write_bundle(directory: Path) -> tuple[Path, str]:
    """Write the zip to `<directory>/provisioner.zip`; its path, and the base64 SHA-256 Lambda compares."""
    import base64

    content = bundle()
    path = Path(directory) / "provisioner.zip"
    path.write_bytes(content)
    return path, base64.b64encode(hashlib.sha256(content).digest()).decode()
