"""servicedb: per-service, isolated access to a shared Aurora PostgreSQL cluster.

Declarations (`Service`, `Reads`, `Environment`) and the plan import nothing from cdktf; the
construct names (`ServiceDatabase`, `ServiceDatabases`, `DatabaseAccessStack`) are loaded on
first use, so a declaration file imports in milliseconds.
"""

from servicedb.errors import DeclarationError, Problem
from servicedb.plan import Plan, ServicePlan, plan_service, plan_services
from servicedb.spec import Environment, Reads, Service

__all__ = [
    "DatabaseAccessStack",
    "DatabaseUser",
    "DeclarationError",
    "Environment",
    "Plan",
    "Problem",
    "Reads",
    "Service",
    "ServiceDatabase",
    "ServiceDatabases",
    "ServicePlan",
    "plan_service",
    "plan_services",
]

_CONSTRUCTS = {
    "DatabaseUser": "servicedb.construct",
    "ServiceDatabase": "servicedb.construct",
    "ServiceDatabases": "servicedb.construct",
    "DatabaseAccessStack": "servicedb.stack",
}


def __getattr__(name: str) -> object:
    if name in _CONSTRUCTS:
        import importlib

        return getattr(importlib.import_module(_CONSTRUCTS[name]), name)
    raise AttributeError(f"module 'servicedb' has no attribute {name!r}")
