"""Static analysis of the synthesized stacks with checkov, and the skips the constructs declare.

checkov reads skip comments only in HCL; for Terraform JSON (its framework `terraform_json`) it
has no per-resource suppression (bridgecrewio/checkov#4634). So a construct records why a check
does not apply to a resource under that resource's `"//"` key, which Terraform ignores:

    "//": {"checkov": {"skip": {"CKV2_AWS_57": "<why the check does not apply here>"}}}

`scan` runs checkov over every `<stack>/cdk.tf.json` and fails on each finding without such a skip,
and on each skip that matches no finding, so a skip cannot outlive its reason and hide a later one.

    python -m servicedb.scan cdktf.out/stacks --checkov .tools/checkov/bin/checkov
"""

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdktf import TerraformElement

CHECK_ID_PATTERN = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
STACK_FILE = "cdk.tf.json"


class ScanError(Exception):
    """checkov could not scan the stacks (not installed, crashed, or unreadable output)."""


def skip_check(resource: "TerraformElement", check_id: str, reason: str) -> None:
    """Record on `resource` that checkov's `check_id` does not apply to it, and why, in one line."""
    if not CHECK_ID_PATTERN.fullmatch(check_id):
        raise ValueError(f"{check_id!r} is not a checkov check id like 'CKV_AWS_149'")
    if not reason.strip() or "\n" in reason:
        raise ValueError(f"skip of {check_id} needs a one-line reason, got {reason!r}")
    resource.add_override(f"//.checkov.skip.{check_id}", reason)


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class Finding:
    stack: str
    resource: str
    """The resource's address in its stack, `<type>.<name>`."""
    check_id: str
    check_name: str = ""

    def __str__(self) -> str:
        name = f" {self.check_name}" if self.check_name else ""
        return f"{self.stack}: {self.resource}: {self.check_id}{name}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Skip:
    stack: str
    resource: str
    check_id: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanReport:
    stacks: tuple[str, ...]
    passed: int
    failures: tuple[Finding, ...]
    """Findings no skip covers: each must be fixed, or skipped in code with its reason."""
    skipped: tuple[Skip, ...]
    stale: tuple[Skip, ...]
    """Skips that match no finding: the check passes or no longer exists; remove them."""

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stale

    def summary(self) -> str:
        return (
            f"checkov: {len(self.stacks)} stacks, {self.passed} checks passed, {len(self.skipped)} skipped in code, "
            f"{len(self.failures)} failed, {len(self.stale)} stale skips"
        )

    def problems(self) -> str:
        lines = []
        if self.failures:
            lines.append(f"{len(self.failures)} finding(s) neither fixed nor skipped in code:")
            lines += [f"  {finding}" for finding in self.failures]
            lines.append(
                "Fix the resource, or skip the check where the construct builds it: "
                'skip_check(resource, "<check id>", "<why it does not apply>").'
            )
        if self.stale:
            lines.append(f"{len(self.stale)} skip(s) match no finding; remove them:")
            lines += [f"  {s.stack}: {s.resource}: {s.check_id} ({s.reason})" for s in self.stale]
        return "\n".join(lines)


def stack_files(stacks_dir: Path) -> dict[str, Path]:
    """`<stack name>: <stacks_dir>/<stack name>/cdk.tf.json`, for every stack."""
    return {path.parent.name: path for path in sorted(Path(stacks_dir).glob(f"*/{STACK_FILE}"))}


def resources(document: dict) -> dict[str, tuple[str, dict]]:
    """`<name>: (<type>, <body>)` of every resource; cdktf makes names unique within a stack."""
    return {
        name: (kind, body)
        for kind, bodies in document.get("resource", {}).items()
        for name, body in bodies.items()
        if name != "//"
    }


def declared_skips(stack: str, document: dict) -> list[Skip]:
    found = []
    for name, (kind, body) in resources(document).items():
        skips = body.get("//", {}).get("checkov", {}).get("skip", {})
        for check_id, reason in skips.items():
            found.append(Skip(stack=stack, resource=f"{kind}.{name}", check_id=check_id, reason=reason))
    return found


def run_checkov(stacks_dir: Path, checkov: str) -> dict:
    """checkov's JSON report of the `terraform_json` framework over `stacks_dir`."""
    command = [
        checkov,
        "--directory",
        str(stacks_dir),
        "--framework",
        "terraform_json",
        "--output",
        "json",
        "--skip-download",  # no guidelines from the vendor's API: offline, and the same every run
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as error:
        raise ScanError(f"checkov not found at {checkov!r}: run `make install`") from error
    if result.returncode not in (0, 1):  # 1: there are failed checks
        raise ScanError(f"checkov exited with {result.returncode}:\n{result.stderr[-2000:]}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise ScanError(f"checkov wrote no JSON report ({error}):\n{result.stdout[-2000:]}") from error
    if isinstance(report, list):  # one report per framework; there is one framework
        [report] = [r for r in report if r.get("check_type") == "terraform_json"]
    summary = report.get("summary", {})
    if summary.get("parsing_errors"):
        raise ScanError(f"checkov could not parse {summary['parsing_errors']} file(s) in {stacks_dir}")
    return report


def scan(stacks_dir: Path, *, checkov: str = "checkov") -> ScanReport:
    """Run checkov on every stack in `stacks_dir` and hold its findings against the declared skips."""
    files = stack_files(stacks_dir)
    if not files:
        raise ScanError(f"no */{STACK_FILE} in {stacks_dir}: synthesize first (`make synth`)")
    documents = {stack: json.loads(path.read_text()) for stack, path in files.items()}
    addresses = {
        stack: {name: f"{kind}.{name}" for name, (kind, _) in resources(document).items()}
        for stack, document in documents.items()
    }

    report = run_checkov(Path(stacks_dir), checkov)
    results = report.get("results", {})
    findings = set()
    for failed in results.get("failed_checks", []):
        stack = Path(failed["file_path"].lstrip("/")).parts[0]
        # checkov names a resource `<type>.<name>` in graph checks and `resource.<name>` in the others.
        name = failed["resource"].rsplit(".", 1)[-1]
        address = addresses.get(stack, {}).get(name, failed["resource"])
        findings.add(
            Finding(stack=stack, resource=address, check_id=failed["check_id"], check_name=failed.get("check_name", ""))
        )

    skips = [skip for stack, document in documents.items() for skip in declared_skips(stack, document)]
    by_key = {(skip.stack, skip.resource, skip.check_id): skip for skip in skips}
    failures = tuple(sorted(f for f in findings if (f.stack, f.resource, f.check_id) not in by_key))
    matched = {(f.stack, f.resource, f.check_id) for f in findings}
    return ScanReport(
        stacks=tuple(files),
        passed=len(results.get("passed_checks", [])),
        failures=failures,
        skipped=tuple(skip for key, skip in by_key.items() if key in matched),
        stale=tuple(skip for key, skip in by_key.items() if key not in matched),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servicedb.scan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks_dir", nargs="?", type=Path, default=Path("cdktf.out/stacks"))
    parser.add_argument("--checkov", default=os.environ.get("CHECKOV", "checkov"), help="the checkov executable")
    arguments = parser.parse_args(argv)
    try:
        report = scan(arguments.stacks_dir, checkov=arguments.checkov)
    except ScanError as error:
        print(f"servicedb.scan: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    if not report.ok:
        print(report.problems(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
