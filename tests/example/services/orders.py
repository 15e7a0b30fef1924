"""ECS service `orders`: its own database, and what else it may read."""

from servicedb import Reads, Service

SERVICE = Service(
    name="orders",
    reads=(Reads(service="billing"), Reads(service="catalog")),  # read-only, never write
    connection_limit=20,
    statement_timeout_ms=30_000,
)
