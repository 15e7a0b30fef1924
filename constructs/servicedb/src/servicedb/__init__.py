"""servicedb: per-service, isolated access to a shared Aurora PostgreSQL cluster.

Declarations (`Service`, `Reads`, `Auth`, `RotationStrategy`, `Environment`, `OperatorNetwork`,
`TemporaryAccess`) and the plans import nothing from cdktf; the construct names (`ServiceDatabase`,
`ServiceDatabases`, `OperatorAccess`, `LambdaProvisioner`, `TemporaryDatabaseAccess`, and the
stacks) and `Split` are loaded on first use, so a declaration file imports in milliseconds and the
provisioner function's zip needs none of them.

Importing servicedb also calls `servicedb.lazy_aws.install()`, before any of its modules imports
the AWS provider: `cdktf_cdktf_provider_aws` then loads the few submodules a stack uses instead of
all ~2,200 (about 2 s instead of 12). Import `cdktf_cdktf_provider_aws` first to load it in full.
"""

from servicedb import lazy_aws
from servicedb.access import AccessLevel, TemporaryAccess
from servicedb.errors import DeclarationError, Problem
from servicedb.network import NetworkPlan, plan_network
from servicedb.plan import Plan, ServicePlan, plan_service, plan_services
from servicedb.spec import (
    Auth,
    Environment,
    OperatorHost,
    OperatorNetwork,
    Provisioner,
    Reads,
    RotationStrategy,
    Service,
)

lazy_aws.install()

__all__ = [
    "AccessLevel",
    "Auth",
    "Cloud9OperatorHost",
    "DatabaseAccessStack",
    "DatabaseUser",
    "DeclarationError",
    "Environment",
    "LambdaProvisioner",
    "NetworkPlan",
    "OperatorAccess",
    "OperatorHost",
    "OperatorNetwork",
    "OperatorNetworkStack",
    "Plan",
    "Problem",
    "Provisioner",
    "Reads",
    "RotationStrategy",
    "Service",
    "ServiceDatabase",
    "ServiceDatabases",
    "ServicePlan",
    "Split",
    "SsmOperatorHost",
    "TemporaryAccess",
    "TemporaryDatabaseAccess",
    "plan_network",
    "plan_service",
    "plan_services",
]

_ON_FIRST_USE = {
    "DatabaseUser": "servicedb.construct",
    "ServiceDatabase": "servicedb.construct",
    "ServiceDatabases": "servicedb.construct",
    "LambdaProvisioner": "servicedb.lambda_provisioner",
    "OperatorAccess": "servicedb.operator_access",
    "SsmOperatorHost": "servicedb.operator_access",
    "Cloud9OperatorHost": "servicedb.operator_access",
    "DatabaseAccessStack": "servicedb.stack",
    "OperatorNetworkStack": "servicedb.stack",
    "TemporaryDatabaseAccess": "servicedb.temporary_access",
    "Split": "servicedb.split.declaration",
}


def __getattr__(name: str) -> object:
    if name in _ON_FIRST_USE:
        import importlib

        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'servicedb' has no attribute {name!r}")
