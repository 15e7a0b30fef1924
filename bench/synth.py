"""One synth, measured from inside its own process; `python -m bench` starts it and reads the result.

    python bench/synth.py {plain,project} RESULT_JSON [SERVICES_DIR ENVIRONMENTS_FILE]

`plain` imports the whole AWS provider package first, as a CDKTF app without servicedb does;
`project` imports only what `main.py` imports. Without declarations, the process stops after the
imports; with them, it synthesizes them to $CDKTF_OUTDIR. Run as a file, not a module, so that
the process imports nothing before the mode decides.
"""

import json
import os
import re
import resource
import sys
import time
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children first."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def node_peak_rss_kib() -> int:
    """The largest peak resident memory of a node process below this one: jsii's kernel."""
    peaks = [0]
    for pid in descendants(os.getpid()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Name", "").strip() == "node" and "VmHWM" in fields:
            peaks.append(int(fields["VmHWM"].split()[0]))
    return max(peaks)


def main(mode: str, result_file: str, services_dir: str | None = None, environments_file: str | None = None) -> None:
    started = time.perf_counter()
    if mode == "plain":
        import cdktf_cdktf_provider_aws  # noqa: F401
    elif mode != "project":
        raise SystemExit(f"mode must be plain or project, got {mode!r}")
    import servicedb.stack  # noqa: F401  (cdktf, and the providers' modules the stack uses)
    from servicedb.app import build_app
    from servicedb.lazy_aws import is_lazy
    from servicedb.load import load_declarations

    imported = time.perf_counter()
    result = {"mode": mode, "import_seconds": imported - started}
    if services_dir and environments_file:
        declarations = load_declarations(Path(services_dir), Path(environments_file))
        loaded = time.perf_counter()
        app = build_app(declarations)
        built = time.perf_counter()
        app.synth()
        written = time.perf_counter()
        result |= {
            "services": len(declarations.services),
            "load_seconds": loaded - imported,
            "build_seconds": built - loaded,
            "write_seconds": written - built,
        }
    submodules = [name for name in sys.modules if re.fullmatch(r"cdktf_cdktf_provider_aws\.[a-z0-9]\w*", name)]
    result |= {
        "python_peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "node_peak_rss_kib": node_peak_rss_kib(),
        "aws_submodules_imported": len(submodules),
        "aws_package_lazy": is_lazy(sys.modules["cdktf_cdktf_provider_aws"]),
    }
    Path(result_file).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
