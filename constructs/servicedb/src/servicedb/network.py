"""The wanted operator network: pure values computed from an environment's `[<env>.network]` table.

The operator host runs Terraform, so it must reach the cluster: the operator VPC is peered with
the database VPC, each side routes the other's CIDR over the peering, and the cluster's security
group lets exactly one source in, on the cluster's port. Nothing here imports cdktf.
"""

from dataclasses import dataclass
from enum import StrEnum

from servicedb.errors import DeclarationError, Problem
from servicedb.plan import DECLARED_IN_CODE, PlanInvariantError
from servicedb.spec import Environment, OperatorHost, environment_problems, is_graviton

HTTPS_PORT = 443

AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
"""Public SSM parameters holding the latest Amazon Linux 2023 AMI id of each architecture."""

CLOUD9_IMAGE = "amazonlinux-2023-x86_64"

SSM_MANAGED_POLICY = "AmazonSSMManagedInstanceCore"
"""The AWS managed policy that lets Session Manager reach an instance, and nothing more."""


class Side(StrEnum):
    OPERATOR = "operator"
    """The operator VPC: the peering's requester."""
    DATABASE = "database"
    """The database VPC: the peering's accepter."""


class SourceKind(StrEnum):
    SECURITY_GROUP = "security_group"
    """An existing security group of the operator VPC (`operator_security_group_id`)."""
    CIDR = "cidr"
    """A CIDR block inside the operator VPC (`operator_cidr`)."""
    HOST_SECURITY_GROUP = "host_security_group"
    """The security group of the `ssm` host the stack creates."""
    HOST_ADDRESS = "host_address"
    """The private address of the `ssm` host, when its security group is in another region."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Peering:
    name: str
    operator_vpc_id: str
    operator_account_id: str
    operator_region: str
    database_vpc_id: str
    database_account_id: str
    database_region: str

    @property
    def same_account(self) -> bool:
        return self.operator_account_id == self.database_account_id

    @property
    def same_region(self) -> bool:
        return self.operator_region == self.database_region

    @property
    def needs_accepter(self) -> bool:
        """AWS accepts a peering on creation only within one account and one region."""
        return not (self.same_account and self.same_region)


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    side: Side
    """The VPC whose route table gets the route."""
    route_table_id: str
    destination_cidr: str
    """The other VPC's CIDR block."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IngressRule:
    """The one rule the stack adds to the cluster's security group."""

    security_group_id: str
    port: int
    source_kind: SourceKind
    source: str | None
    """The security group (`<account>/sg-...` from another account) or CIDR; None for the host's."""
    source_account_id: str | None
    """The host's account when it is not the cluster's, for a reference to the host's security group."""
    description: str


@dataclass(frozen=True, kw_only=True, slots=True)
class EgressRule:
    port: int
    cidr: str
    description: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Host:
    kind: OperatorHost
    name: str
    """Name of the Cloud9 environment, or of the instance, its role, profile and security group."""
    subnet_id: str
    instance_type: str
    architecture: str
    ami_parameter: str
    """SSM parameter with the AMI id (`ssm`); Cloud9 uses `CLOUD9_IMAGE`."""
    egress: tuple[EgressRule, ...]
    """The only traffic the `ssm` host may start; it takes no inbound connection at all."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkPlan:
    environment: Environment
    peering: Peering
    routes: tuple[Route, ...]
    ingress: IngressRule
    host: Host | None
    operator_role_arn: str | None
    """The role the operator side's provider assumes, if any."""

    def routes_on(self, side: Side) -> tuple[Route, ...]:
        return tuple(route for route in self.routes if route.side == side)

    @property
    def needs_operator_provider(self) -> bool:
        """The operator side needs its own provider: another account, region or role."""
        return self.peering.needs_accepter or self.operator_role_arn is not None


def plan_network(environment: Environment) -> NetworkPlan:
    """The operator network of one environment; raises `DeclarationError` when it is invalid or absent."""
    problems = environment_problems(environment, source=DECLARED_IN_CODE)
    if environment.network is None:
        problems.append(
            Problem(
                source=DECLARED_IN_CODE,
                subject=f"[{environment.name}]",
                at="network",
                message=f"is missing; add a [{environment.name}.network] table to build its operator network",
            )
        )
    if problems:
        raise DeclarationError(problems)
    wanted = wanted_network(environment)
    check_invariants(wanted)
    return wanted


def wanted_network(environment: Environment) -> NetworkPlan:
    """`plan_network` for an environment that was already validated."""
    network = environment.network
    assert network is not None
    name = f"servicedb-{environment.name}-operator"
    peering = Peering(
        name=name,
        operator_vpc_id=network.operator_vpc_id,
        operator_account_id=network.operator_account_id or environment.account_id,
        operator_region=network.operator_region or environment.region,
        database_vpc_id=network.database_vpc_id,
        database_account_id=environment.account_id,
        database_region=environment.region,
    )
    routes = tuple(
        Route(side=Side.OPERATOR, route_table_id=table, destination_cidr=network.database_vpc_cidr)
        for table in network.operator_route_table_ids
    ) + tuple(
        Route(side=Side.DATABASE, route_table_id=table, destination_cidr=network.operator_vpc_cidr)
        for table in network.database_route_table_ids
    )

    other_account = None if peering.same_account else peering.operator_account_id
    if network.operator_security_group_id is not None:
        kind = SourceKind.SECURITY_GROUP
        group = network.operator_security_group_id
        source: str | None = f"{other_account}/{group}" if other_account else group
        described = f"security group {group}"
    elif network.operator_cidr is not None:
        kind, source, described = SourceKind.CIDR, network.operator_cidr, network.operator_cidr
    elif peering.same_region:
        kind, source, described = SourceKind.HOST_SECURITY_GROUP, None, f"the security group of {name}"
    else:
        kind, source, described = SourceKind.HOST_ADDRESS, None, f"the private address of {name}"
    ingress = IngressRule(
        security_group_id=network.cluster_security_group_id,
        port=environment.port,
        source_kind=kind,
        source=source,
        source_account_id=other_account if kind == SourceKind.HOST_SECURITY_GROUP else None,
        description=f"PostgreSQL from the servicedb operator host ({described}) over the VPC peering",
    )

    host = None
    if network.host != OperatorHost.NONE:
        assert network.host_subnet_id is not None
        architecture = "arm64" if is_graviton(network.host_instance_type) else "x86_64"
        https = network.host_https_egress_cidrs or (network.operator_vpc_cidr,)
        egress = tuple(
            EgressRule(
                port=HTTPS_PORT,
                cidr=cidr,
                description="HTTPS to Session Manager, AWS APIs and package sources",
            )
            for cidr in https
        )
        egress += (
            EgressRule(
                port=environment.port,
                cidr=network.database_vpc_cidr,
                description="PostgreSQL to the database VPC over the peering",
            ),
        )
        host = Host(
            kind=network.host,
            name=name,
            subnet_id=network.host_subnet_id,
            instance_type=network.host_instance_type,
            architecture=architecture,
            ami_parameter=AMI_PARAMETERS[architecture],
            egress=egress if network.host == OperatorHost.SSM else (),
        )

    return NetworkPlan(
        environment=environment,
        peering=peering,
        routes=routes,
        ingress=ingress,
        host=host,
        operator_role_arn=network.operator_role_arn,
    )


def check_invariants(wanted: NetworkPlan) -> None:
    """Rules every operator network holds, whatever the declarations were.

    - the cluster's security group gets one rule: its own port, from one source, never 0.0.0.0/0;
    - both VPCs route the other's CIDR over the peering;
    - the `ssm` host starts nothing but HTTPS and PostgreSQL to the database VPC.
    """
    problems = []
    ingress = wanted.ingress
    if ingress.port != wanted.environment.port:
        problems.append(f"the cluster rule opens port {ingress.port}, not the cluster's {wanted.environment.port}")
    if ingress.source in ("0.0.0.0/0", None) and ingress.source_kind in (SourceKind.CIDR, SourceKind.SECURITY_GROUP):
        problems.append(f"the cluster rule is open to {ingress.source!r}")
    for side in Side:
        if not wanted.routes_on(side):
            problems.append(f"no route on the {side} side")
    if wanted.host is not None:
        database_vpc = wanted.environment.network.database_vpc_cidr if wanted.environment.network else None
        for rule in wanted.host.egress:
            if rule.port != HTTPS_PORT and (rule.port, rule.cidr) != (wanted.environment.port, database_vpc):
                problems.append(f"the host may open port {rule.port} to {rule.cidr}")
    if problems:
        raise PlanInvariantError("the operator network breaks its rules:\n  " + "\n  ".join(problems))
