"""The synth app: every environment's stacks from `services/` and `environments.toml`.

cdktf and the providers are imported only once the declarations are valid, so a bad declaration
is reported in well under a second instead of after the providers' long import.
"""

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from servicedb.access import current_time, notice
from servicedb.errors import DeclarationError
from servicedb.load import Declarations, load_declarations
from servicedb.network import plan_network
from servicedb.plan import plan_services

if TYPE_CHECKING:
    from cdktf import App


def build_app(declarations: Declarations, app: "App | None" = None, *, now: datetime | None = None) -> "App":
    """Add one `<env>-database-access` stack per environment to `app` (a new App by default), and an
    `<env>-operator-network` stack for each environment with a `[<env>.network]` table.

    Each database stack has the break-glass grants live at `now` (@default - the current time,
    `$SERVICEDB_NOW` when set)."""
    from cdktf import App

    from servicedb.stack import DatabaseAccessStack, OperatorNetworkStack

    app = app or App()
    now = now or current_time()
    for environment in declarations.environments:
        if environment.network is not None:
            OperatorNetworkStack(app, plan=plan_network(environment))
        plan = plan_services(declarations.services, environment, access=declarations.temporary_access, now=now)
        DatabaseAccessStack(app, plan=plan)
    return app


def main(
    services_dir: Path = Path("services"),
    environments_file: Path = Path("environments.toml"),
    access_dir: Path | None = None,
    record: Path = Path("deployed.toml"),
    *,
    check: bool = False,
) -> int:
    """Validate everything, against the record of deployed services too (`servicedb.record`), then
    build and synthesize; on bad declarations write nothing, exit 1. With `check`, only validate,
    silently when all is well: `make synth` checks before the cdktf CLI runs the app, which would
    print each problem twice, as `[ERROR]` log lines and again in its own error.

    Prints one line per break-glass declaration: what it creates now, or why nothing.
    """
    try:
        declarations = load_declarations(services_dir, environments_file, access_dir, record=record)
        now = current_time()
    except DeclarationError as error:
        print(f"servicedb: refusing to synthesize; fix these declarations:\n{error}", file=sys.stderr)
        return 1
    if check:
        return 0
    for access, source in declarations.access:
        print(f"servicedb: {notice(access, source, now)}")
    build_app(declarations, now=now).synth()
    return 0
