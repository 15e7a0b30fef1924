#!/usr/bin/env python
"""`cdktf synth` runs this: one `<env>-database-access` stack per environment in environments.toml,
with every service declared in services/, and an `<env>-operator-network` stack for each
environment with a `[<env>.network]` table. A service recorded in deployed.toml whose declaration
is gone stops it: Terraform would destroy its database (see `servicedb record`).

jsii runs on the Node.js 22 that `npm ci` installs in node_modules/.bin, even when the cdktf CLI
was started with an older `node` (set JSII_NODE to choose another). On it, cdktf's TerraformOutput
calls util.isArray, deprecated since Node.js 22 (DEP0044); cdktf is archived and will not change,
so that one warning is turned off.

`python main.py --check` only validates the declarations, printing each problem once (`make synth`
runs it before the cdktf CLI). cdktf.json runs the synth with `python -O`: the provider packages
then skip their runtime type checks of every argument, a sixth of the synth's time; the test suite
synthesizes without it, so those checks still run there.
"""

import os
import sys
from pathlib import Path

from servicedb.app import main

NODE = Path(__file__).resolve().parent / "node_modules" / ".bin" / "node"

if __name__ == "__main__":
    if NODE.exists():
        os.environ.setdefault("JSII_NODE", str(NODE))
        os.environ["NODE_OPTIONS"] = f"{os.environ.get('NODE_OPTIONS', '')} --disable-warning=DEP0044".strip()
    sys.exit(main(check="--check" in sys.argv[1:]))
