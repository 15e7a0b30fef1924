#!/usr/bin/env python
"""`cdktf synth` runs this: one `<env>-database-access` stack per environment in environments.toml,
with every service declared in services/, and an `<env>-operator-network` stack for each
environment with a `[<env>.network]` table."""

import sys

from servicedb.app import main

if __name__ == "__main__":
    sys.exit(main())
