"""The synth app: every environment's stacks from `services/` and `environments.toml`.

cdktf and the providers are imported only once the declarations are valid, so a bad declaration
is reported in well under a second instead of after the providers' long import.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from servicedb.errors import DeclarationError
from servicedb.load import Declarations, load_declarations
from servicedb.network import plan_network
from servicedb.plan import plan_services

if TYPE_CHECKING:
    from cdktf import App


def build_app(declarations: Declarations, app: "App | None" = None) -> "App":
    """Add one `<env>-database-access` stack per environment to `app` (a new App by default), and an
    `<env>-operator-network` stack for each environment with a `[<env>.network]` table."""
    from cdktf import App

    from servicedb.stack import DatabaseAccessStack, OperatorNetworkStack

    app = app or App()
    for environment in declarations.environments:
        if environment.network is not None:
            OperatorNetworkStack(app, plan=plan_network(environment))
        DatabaseAccessStack(app, plan=plan_services(declarations.services, environment))
    return app


def main(
    services_dir: Path = Path("services"),
    environments_file: Path = Path("environments.toml"),
    record: Path = Path("deployed.toml"),
) -> int:
    """Validate everything, against the record of deployed services too (`servicedb.record`), then
    build and synthesize; on bad declarations write nothing, exit 1."""
    try:
        declarations = load_declarations(services_dir, environments_file, record=record)
    except DeclarationError as error:
        print(f"servicedb: refusing to synthesize; fix these declarations:\n{error}", file=sys.stderr)
        return 1
    build_app(declarations).synth()
    return 0
