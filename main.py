#!/usr/bin/env python
"""`cdktf synth` runs this: one `<env>-database-access` stack per environment in environments.toml,
with every service declared in services/."""

import sys

from servicedb.app import main

if __name__ == "__main__":
    sys.exit(main())
