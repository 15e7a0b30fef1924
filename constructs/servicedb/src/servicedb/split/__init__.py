"""Moving off a shared database: each service's tables from the database every service shares today
into its own database, with the shared data never changed.

One reviewed declaration per shared database, `splits/<database>.py` beside `services/`, says
which service takes which table and which tables stay (`Split`, in `declaration`).
`servicedb split plan|copy|sync|verify|cutover|rollback` then does the move (`source` reads the
shared database, `move` writes the services' databases); see docs/moving-off-a-shared-database.md.
"""

from servicedb.split.declaration import Split

__all__ = ["Split"]
