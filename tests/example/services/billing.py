"""ECS service `billing`: invoices and payments; reads nobody else's data."""

from servicedb import Service

SERVICE = Service(
    name="billing",
    connection_limit=20,
    statement_timeout_ms=15_000,
    extensions=("pgcrypto",),
)
