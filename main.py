#!/usr/bin/env python
"""`cdktf synth` runs this: one `<env>-database-access` stack per environment in environments.toml,
with every service declared in services/.

jsii runs on the Node.js that `npm ci` installs in node_modules/.bin (22 or newer), even when the
cdktf CLI was started with an older `node`; set JSII_NODE to choose another.
"""

import os
import sys
from pathlib import Path

from servicedb.app import main

NODE = Path(__file__).resolve().parent / "node_modules" / ".bin" / "node"

if __name__ == "__main__":
    if NODE.exists():
        os.environ.setdefault("JSII_NODE", str(NODE))
    sys.exit(main())
