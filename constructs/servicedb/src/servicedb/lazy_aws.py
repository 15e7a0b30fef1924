"""Import only the AWS provider modules a stack uses, not all ~2,200 of them.

The prebuilt `cdktf_cdktf_provider_aws` was generated before jsii loaded submodules lazily: its
`__init__` imports every submodule, which costs each process 10 to 12 s and nearly 600 MB of Python
memory before a single resource exists (hashicorp/terraform-cdk#3753 and #2835, aws/jsii#3389).
A submodule needs nothing from that `__init__`: it loads the jsii assembly itself
(`from .._jsii import *`).

`install()` puts a finder first on `sys.meta_path`. On the package's first import, the finder runs
the package's own `__init__` up to the comment that starts those imports, so the package has what
it always had (`__all__`, `_private`, the loaded assembly), and each submodule is imported when it
is first imported by name or read as an attribute (`cdktf_cdktf_provider_aws.s3_bucket`).

The finder checks every part of the layout it relies on and raises `PackageLayoutError` when one
differs; it never falls back to the full import on its own. To load the package in full anyway,
import it before `servicedb`: `install()` leaves an already imported package alone.

`servicedb/__init__.py` calls `install()`, so it runs before any of the library's modules import
the AWS provider. It imports nothing itself: declarations still import in milliseconds.

jsii turns an object that JavaScript hands back into a Python object of its class only if the
class's module is imported; with every submodule imported, that was always so. The provider's
resources and their attribute types live in the resource's own submodule, which is imported to
create the resource, so a synth never meets an unknown class; were one to come back from another
submodule, jsii would raise `ValueError: Unknown type: @cdktf/provider-aws...`, never guess.
"""

import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import types
from collections.abc import Sequence
from pathlib import Path

PACKAGE = "cdktf_cdktf_provider_aws"
DISTRIBUTION = "cdktf-cdktf-provider-aws"

SUBMODULE_IMPORTS = "# Loading modules to ensure their types are registered with the jsii runtime library\n"
"""The comment in the package's `__init__` after which it imports each submodule, one per line."""

SUBMODULE_IMPORT = re.compile(r"from \. import (\w+)")
ASSEMBLY_IMPORT = "from ._jsii import *\n"
PUBLISH = "publication.publish()"


class PackageLayoutError(RuntimeError):
    """The installed AWS provider package is not laid out as `install()` expects.

    Not an ImportError, so that no `except ImportError` on the way turns it into a silent fallback.
    """


def install() -> None:
    """Make the first import of `cdktf_cdktf_provider_aws` load its submodules on demand.

    Does nothing when the package is already imported (in full, or lazily) or when the finder is
    already in place.
    """
    if PACKAGE in sys.modules or any(isinstance(finder, LazyPackageFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, LazyPackageFinder())


def is_lazy(module: types.ModuleType) -> bool:
    """Whether `module` (the imported `cdktf_cdktf_provider_aws`) loads its submodules on demand."""
    return isinstance(getattr(module.__spec__, "loader", None), LazyPackageLoader)


# The finder and loader implement importlib's protocols without subclassing importlib.abc, whose
# import (importlib.resources and more) would add half again to the time `import servicedb` takes.


class LazyPackageFinder:
    """Finds `cdktf_cdktf_provider_aws` where Python would, and hands it to `LazyPackageLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PACKAGE:
            return None
        found = importlib.machinery.PathFinder.find_spec(fullname, path)
        if found is None:
            return None  # not installed: Python raises its usual ModuleNotFoundError
        origin = Path(found.origin or "")
        locations = list(found.submodule_search_locations or ())
        if origin.name != "__init__.py" or locations != [str(origin.parent)]:
            raise layout_error(origin.parent, f"expected a regular package with an __init__.py, found {found}")
        if not (origin.parent / "_jsii" / "__init__.py").is_file():
            raise layout_error(origin.parent, "has no _jsii/__init__.py, which loads the jsii assembly")
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=LazyPackageLoader(), submodule_search_locations=locations
        )


class LazyPackageLoader:
    """Runs the package's `__init__` without its submodule imports; imports each one when asked."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        origin = Path(module.__spec__.origin)
        head, submodules = split_init(origin.read_text(encoding="utf-8"), origin.parent)
        on_disk = {
            entry.name
            for entry in os.scandir(origin.parent)
            if entry.is_dir() and not entry.name.startswith("_") and os.path.isfile(f"{entry.path}/__init__.py")
        }
        if on_disk != submodules:
            raise layout_error(
                origin.parent,
                f"its __init__ imports {len(submodules)} submodules and its folder has {len(on_disk)}"
                f" ({compare(submodules, 'only imported', on_disk, 'only in the folder')})",
            )

        exec(compile(head, str(origin), "exec"), module.__dict__)

        names = set(module.__dict__.get("__all__", ()))
        if names != submodules:
            raise layout_error(
                origin.parent,
                f"its __all__ is not the submodules its __init__ imports"
                f" ({compare(names, 'only in __all__', submodules, 'only imported')})",
            )
        # publication.publish() put a public module in sys.modules in place of this one.
        public = sys.modules[module.__name__]
        if getattr(public, "_private", None) is not module:
            raise layout_error(origin.parent, "its __init__ no longer publishes its __all__ with publication")
        load_on_demand(public, frozenset(submodules))


def split_init(source: str, directory: Path) -> tuple[str, set[str]]:
    """The package's `__init__` before its submodule imports, and the submodules it imports."""
    if source.count(SUBMODULE_IMPORTS) != 1:
        raise layout_error(directory, f"its __init__ does not have the line {SUBMODULE_IMPORTS.strip()!r} exactly once")
    head, tail = source.split(SUBMODULE_IMPORTS)
    if ASSEMBLY_IMPORT not in head or not head.rstrip().endswith(PUBLISH):
        raise layout_error(
            directory,
            f"its __init__ no longer has {ASSEMBLY_IMPORT.strip()!r} and ends with {PUBLISH!r} before the submodules",
        )
    submodules = set()
    for number, line in enumerate(tail.splitlines(), start=source[: len(head)].count("\n") + 2):
        match = SUBMODULE_IMPORT.fullmatch(line.strip())
        if match:
            submodules.add(match.group(1))
        elif line.strip():
            raise layout_error(directory, f"line {number} of its __init__ is not a submodule import: {line!r}")
    return head, submodules


def load_on_demand(package: types.ModuleType, submodules: frozenset[str]) -> None:
    """`package.<submodule>` imports the submodule on first use (PEP 562), as it was there before."""

    def __getattr__(name: str) -> types.ModuleType:
        if name in submodules:
            return importlib.import_module(f"{PACKAGE}.{name}")
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(submodules | set(vars(package)))

    package.__getattr__ = __getattr__
    package.__dir__ = __dir__


def compare(left: set[str], left_name: str, right: set[str], right_name: str) -> str:
    """`only in left: a, b; only in right: c`, with at most five names each."""
    parts = []
    for name, names in ((left_name, left - right), (right_name, right - left)):
        if names:
            shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
            parts.append(f"{name}: {shown}")
    return "; ".join(parts)


def layout_error(directory: Path, what: str) -> PackageLayoutError:
    import importlib.metadata

    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "of unknown version"
    return PackageLayoutError(
        f"{PACKAGE} {version} in {directory} is not laid out as servicedb.lazy_aws expects: {what}. "
        f"servicedb is tested with {DISTRIBUTION} 21.22.1; to import the whole package instead, "
        f"import {PACKAGE} before servicedb."
    )
