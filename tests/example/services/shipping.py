"""ECS service `shipping`: reads orders; runs under an execution role it names itself."""

from servicedb import Reads, Service

SERVICE = Service(
    name="shipping",
    reads=(Reads(service="orders"),),
    execution_role="shipping-task-execution",
    idle_in_transaction_timeout_ms=10_000,
)
