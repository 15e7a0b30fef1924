"""servicedb.lazy_aws: only the AWS provider modules in use are imported, and a changed layout fails loudly.

The real package is checked in this process, which imported servicedb before the provider. Other
layouts are small packages in its image, each imported in a fresh interpreter.
"""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import cdktf_cdktf_provider_aws
import pytest

from servicedb import lazy_aws

from projects import ROOT

REAL_INIT = Path(cdktf_cdktf_provider_aws.__file__).read_text(encoding="utf-8")


def test_this_process_imported_only_the_aws_modules_named_in_the_sources():
    importlib.import_module("servicedb.stack")  # and with it servicedb.construct
    assert lazy_aws.is_lazy(cdktf_cdktf_provider_aws)
    named = {
        match
        for folder in ("constructs", "examples", "tests")
        for path in (ROOT / folder).rglob("*.py")
        for match in re.findall(r"cdktf_cdktf_provider_aws\.(\w+)", path.read_text())
    }
    loaded = {name.split(".")[1] for name in sys.modules if name.startswith("cdktf_cdktf_provider_aws.")}
    assert "provider" in loaded
    assert loaded - {"_jsii", "_private"} <= named
    assert len(cdktf_cdktf_provider_aws.__all__) > 2000


def test_the_installed_package_has_the_layout_the_finder_checks():
    head, submodules = lazy_aws.split_init(REAL_INIT, Path(cdktf_cdktf_provider_aws.__file__).parent)
    assert submodules == set(cdktf_cdktf_provider_aws.__all__)
    assert {"provider", "iam_role_policy", "secretsmanager_secret", "secretsmanager_secret_version"} <= submodules
    assert "from . import" not in head


def test_the_package_keeps_its_private_module_and_assembly():
    private = cdktf_cdktf_provider_aws._private
    assert private.__jsii_assembly__.name == "@cdktf/provider-aws"
    assert sys.modules["cdktf_cdktf_provider_aws._private"] is private


HEAD = '''"""A package laid out like the prebuilt AWS provider."""
from pkgutil import extend_path
__path__ = extend_path(__path__, __name__)

import publication

from ._jsii import *

__all__ = [{names}]

publication.publish()

'''


def fake_package(
    root: Path, *, submodules=("alpha", "beta"), imports=None, head=HEAD, folders=None, marker=True
) -> Path:
    """`cdktf_cdktf_provider_aws` in `root`, with `submodules` each setting VALUE to its name."""
    package = root / "cdktf_cdktf_provider_aws"
    (package / "_jsii").mkdir(parents=True)
    (package / "_jsii" / "__init__.py").write_text("__all__ = ['__jsii_assembly__']\n__jsii_assembly__ = 'fake'\n")
    imports = submodules if imports is None else imports
    init = head.format(names=", ".join(repr(name) for name in submodules))
    if marker:
        init += lazy_aws.SUBMODULE_IMPORTS + "".join(f"from . import {name}\n" for name in imports)
    (package / "__init__.py").write_text(init)
    for name in submodules if folders is None else folders:
        (package / name).mkdir()
        (package / name / "__init__.py").write_text(f"from .._jsii import *\nVALUE = {name!r}\n")
    return root


def run_python(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=path, env={"PYTHONPATH": str(path)}, capture_output=True, text=True
    )


def test_imports_a_submodule_without_the_others(tmp_path):
    code = (
        "import sys, servicedb\n"
        "from cdktf_cdktf_provider_aws.alpha import VALUE\n"
        "print(VALUE, sorted(m for m in sys.modules if m.startswith('cdktf_cdktf_provider_aws')))\n"
    )
    result = run_python(code, fake_package(tmp_path))
    assert result.returncode == 0, result.stderr
    loaded = [f"cdktf_cdktf_provider_aws{name}" for name in ("", "._jsii", "._private", ".alpha")]
    assert result.stdout == f"alpha {loaded}\n"


def test_imports_a_submodule_on_first_use_as_an_attribute(tmp_path):
    code = (
        "import sys, servicedb, cdktf_cdktf_provider_aws as aws\n"
        "assert 'cdktf_cdktf_provider_aws.beta' not in sys.modules\n"
        "print(aws.beta.VALUE, 'alpha' in dir(aws), aws.__all__, aws._private.__jsii_assembly__)\n"
        "aws.gamma\n"
    )
    result = run_python(code, fake_package(tmp_path))
    assert result.stdout == "beta True ['alpha', 'beta'] fake\n"
    assert "AttributeError: module 'cdktf_cdktf_provider_aws' has no attribute 'gamma'" in result.stderr


def test_leaves_a_package_imported_before_servicedb_as_it_is(tmp_path):
    code = (
        "import sys, cdktf_cdktf_provider_aws as aws, servicedb.lazy_aws\n"
        "print(servicedb.lazy_aws.is_lazy(aws), 'cdktf_cdktf_provider_aws.beta' in sys.modules)\n"
    )
    result = run_python(code, fake_package(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False True\n"


BROKEN_LAYOUTS = {
    "submodules loaded lazily upstream": (
        {"head": HEAD + "def __getattr__(name): ...\n", "marker": False},
        "does not have the line '# Loading modules to ensure their types are registered with the jsii runtime library'",
    ),
    "no assembly import": (
        {"head": HEAD.replace("from ._jsii import *", "")},
        "no longer has 'from ._jsii import *' and ends with 'publication.publish()'",
    ),
    "a submodule without a folder": (
        {"folders": ("alpha",)},
        "its __init__ imports 2 submodules and its folder has 1 (only imported: beta)",
    ),
    "a folder not imported": (
        {"imports": ("alpha",)},
        "its __init__ imports 1 submodules and its folder has 2 (only in the folder: beta)",
    ),
    "__all__ not the submodules": (
        {"head": HEAD.replace("[{names}]", "['alpha']")},
        "its __all__ is not the submodules its __init__ imports (only imported: beta)",
    ),
}


@pytest.mark.parametrize("layout", BROKEN_LAYOUTS)
def test_fails_loudly_on_a_changed_layout(tmp_path, layout):
    changes, message = BROKEN_LAYOUTS[layout]
    code = "import servicedb\nimport cdktf_cdktf_provider_aws.alpha\nprint('imported')\n"
    result = run_python(code, fake_package(tmp_path, **changes))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "servicedb.lazy_aws.PackageLayoutError: cdktf_cdktf_provider_aws" in result.stderr
    assert message in result.stderr
    assert "import cdktf_cdktf_provider_aws before servicedb" in result.stderr


def test_fails_loudly_on_code_after_the_submodule_imports(tmp_path):
    package = fake_package(tmp_path) / "cdktf_cdktf_provider_aws"
    with open(package / "__init__.py", "a") as init:
        init.write("register_everything()\n")
    result = run_python("import servicedb, cdktf_cdktf_provider_aws", tmp_path)
    assert "PackageLayoutError" in result.stderr
    assert "line 16 of its __init__ is not a submodule import: 'register_everything()'" in result.stderr


def test_fails_loudly_without_the_assembly_module(tmp_path):
    package = fake_package(tmp_path) / "cdktf_cdktf_provider_aws"
    (package / "_jsii" / "__init__.py").unlink()
    result = run_python("import servicedb, cdktf_cdktf_provider_aws", tmp_path)
    assert "PackageLayoutError" in result.stderr
    assert "has no _jsii/__init__.py, which loads the jsii assembly" in result.stderr
