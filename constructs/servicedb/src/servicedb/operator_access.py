"""The cdktf adapter of the operator network: the peering, the routes, the cluster's one ingress rule
and, optionally, the operator host, rendered from a `NetworkPlan`.

Construct ids are part of the contract, as in `construct.py`: routes are named after their route
table, so adding a route table never replaces the routes of the others.
"""

import json

from cdktf import TerraformProvider, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloud9_environment_ec2 import Cloud9EnvironmentEc2
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.instance import Instance, InstanceMetadataOptions, InstanceRootBlockDevice
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_peering_connection import VpcPeeringConnection
from cdktf_cdktf_provider_aws.vpc_peering_connection_accepter import VpcPeeringConnectionAccepterA
from cdktf_cdktf_provider_aws.vpc_peering_connection_options import (
    VpcPeeringConnectionOptions,
    VpcPeeringConnectionOptionsAccepter,
)
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from servicedb import network as n
from servicedb.spec import OperatorHost

EC2_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)

CLOUD9_AUTOMATIC_STOP_MINUTES = 30


def id_from(value: str) -> str:
    """A construct id from an AWS id or a CIDR: `rtb-0a1b` -> `rtb_0a1b`, `10.0.0.0/16` -> `10_0_0_0_16`."""
    return value.replace("-", "_").replace(".", "_").replace("/", "_")


class SsmOperatorHost(Construct):
    """A small EC2 instance reached only through Session Manager: no inbound rule, no key pair,
    no public address, IMDSv2 only, an encrypted root volume, the latest Amazon Linux 2023."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        host: n.Host,
        vpc_id: str,
        provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        partition = DataAwsPartition(self, "partition", provider=provider)
        self.role = IamRole(
            self,
            "role",
            name=host.name,
            description="servicedb operator host: Session Manager only",
            assume_role_policy=EC2_TRUST_POLICY,
            provider=provider,
        )
        IamRolePolicyAttachment(
            self,
            "ssm_core",
            role=self.role.name,
            policy_arn=f"arn:{partition.partition}:iam::aws:policy/{n.SSM_MANAGED_POLICY}",
            provider=provider,
        )
        self.instance_profile = IamInstanceProfile(
            self, "instance_profile", name=host.name, role=self.role.name, provider=provider
        )
        self.security_group = SecurityGroup(
            self,
            "security_group",
            name=host.name,
            description="servicedb operator host: no inbound; HTTPS out, PostgreSQL to the database VPC",
            vpc_id=vpc_id,
            tags={"Name": host.name},
            provider=provider,
        )
        egress = Construct(self, "egress")
        for rule in host.egress:
            VpcSecurityGroupEgressRule(
                egress,
                f"port_{rule.port}_to_{id_from(rule.cidr)}",
                security_group_id=self.security_group.id,
                ip_protocol="tcp",
                from_port=rule.port,
                to_port=rule.port,
                cidr_ipv4=rule.cidr,
                description=rule.description,
                provider=provider,
            )
        ami = DataAwsSsmParameter(self, "ami", name=host.ami_parameter, provider=provider)
        self.instance = Instance(
            self,
            "instance",
            ami=ami.insecure_value,
            instance_type=host.instance_type,
            subnet_id=host.subnet_id,
            vpc_security_group_ids=[self.security_group.id],
            iam_instance_profile=self.instance_profile.name,
            associate_public_ip_address=False,
            metadata_options=InstanceMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            root_block_device=InstanceRootBlockDevice(encrypted=True, volume_type="gp3"),
            monitoring=True,
            ebs_optimized=True,
            tags={"Name": host.name},
            # A newer Amazon Linux must not replace the host in the middle of someone's session.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["ami"]),
            provider=provider,
        )

    @property
    def instance_id(self) -> str:
        return self.instance.id

    @property
    def security_group_id(self) -> str:
        return self.security_group.id


class Cloud9OperatorHost(Construct):
    """An AWS Cloud9 EC2 environment reached through Session Manager (`CONNECT_SSM`), no inbound port.

    Cloud9 creates the instance and its security group itself; the account needs the role
    `AWSCloud9SSMAccessRole` and the instance profile `AWSCloud9SSMInstanceProfile`.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        host: n.Host,
        provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.environment = Cloud9EnvironmentEc2(
            self,
            "environment",
            name=host.name,
            description="servicedb operator host: runs cdktf against the peered database VPC",
            instance_type=host.instance_type,
            image_id=n.CLOUD9_IMAGE,
            connection_type="CONNECT_SSM",
            subnet_id=host.subnet_id,
            automatic_stop_time_minutes=CLOUD9_AUTOMATIC_STOP_MINUTES,
            provider=provider,
        )

    @property
    def environment_id(self) -> str:
        return self.environment.id


class OperatorAccess(Construct):
    """The path from the operator VPC to the cluster, and optionally the operator host in it.

    Takes the environment's `NetworkPlan` (`servicedb.network.plan_network`) and two providers: one
    for the database VPC's account and region, one for the operator VPC's (the same provider when
    both VPCs are in one account and region). Creates no provider itself.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        plan: n.NetworkPlan,
        database_provider: TerraformProvider | None = None,
        operator_provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.plan = plan
        operator_provider = operator_provider or database_provider
        providers = {n.Side.OPERATOR: operator_provider, n.Side.DATABASE: database_provider}
        peering = plan.peering

        self.peering = VpcPeeringConnection(
            self,
            "peering",
            vpc_id=peering.operator_vpc_id,
            peer_vpc_id=peering.database_vpc_id,
            peer_owner_id=None if peering.same_account else peering.database_account_id,
            peer_region=None if peering.same_region else peering.database_region,
            auto_accept=None if peering.needs_accepter else True,
            tags={"Name": peering.name},
            provider=operator_provider,
        )
        self.accepter: VpcPeeringConnectionAccepterA | None = None
        connection_id = self.peering.id
        if peering.needs_accepter:
            self.accepter = VpcPeeringConnectionAccepterA(
                self,
                "peering_accepter",
                vpc_peering_connection_id=self.peering.id,
                auto_accept=True,
                tags={"Name": peering.name},
                provider=database_provider,
            )
            connection_id = self.accepter.id  # the same id; what uses it waits for the acceptance
        # The operator host resolves the cluster's endpoint to its private address: DNS resolution
        # is the database (accepter) side's option, allowing the peer VPC to resolve its names.
        self.dns_resolution = VpcPeeringConnectionOptions(
            self,
            "peering_dns_resolution",
            vpc_peering_connection_id=connection_id,
            accepter=VpcPeeringConnectionOptionsAccepter(allow_remote_vpc_dns_resolution=True),
            provider=database_provider,
        )

        self.routes: list[Route] = []
        for side in n.Side:
            namespace = Construct(self, f"{side}_routes")
            for route in plan.routes_on(side):
                self.routes.append(
                    Route(
                        namespace,
                        id_from(route.route_table_id),
                        route_table_id=route.route_table_id,
                        destination_cidr_block=route.destination_cidr,
                        vpc_peering_connection_id=connection_id,
                        provider=providers[side],
                    )
                )

        self.host: SsmOperatorHost | Cloud9OperatorHost | None = None
        if plan.host is not None and plan.host.kind == OperatorHost.SSM:
            self.host = SsmOperatorHost(
                self, "host", host=plan.host, vpc_id=peering.operator_vpc_id, provider=operator_provider
            )
        elif plan.host is not None and plan.host.kind == OperatorHost.CLOUD9:
            self.host = Cloud9OperatorHost(self, "host", host=plan.host, provider=operator_provider)

        ingress = plan.ingress
        source: dict[str, str] = {}
        if ingress.source_kind == n.SourceKind.SECURITY_GROUP:
            source["referenced_security_group_id"] = str(ingress.source)
        elif ingress.source_kind == n.SourceKind.CIDR:
            source["cidr_ipv4"] = str(ingress.source)
        elif isinstance(self.host, SsmOperatorHost) and ingress.source_kind == n.SourceKind.HOST_SECURITY_GROUP:
            account = f"{ingress.source_account_id}/" if ingress.source_account_id else ""
            source["referenced_security_group_id"] = f"{account}{self.host.security_group_id}"
        elif isinstance(self.host, SsmOperatorHost) and ingress.source_kind == n.SourceKind.HOST_ADDRESS:
            source["cidr_ipv4"] = f"{self.host.instance.private_ip}/32"
        else:
            raise AssertionError(f"no source for {ingress.source_kind} with host {plan.host}")
        self.cluster_ingress = VpcSecurityGroupIngressRule(
            self,
            "cluster_ingress",
            security_group_id=ingress.security_group_id,
            ip_protocol="tcp",
            from_port=ingress.port,
            to_port=ingress.port,
            description=ingress.description,
            # A security group across the peering can be referenced only once the peering is active.
            depends_on=[self.accepter or self.peering],
            provider=database_provider,
            **source,
        )

    @property
    def peering_connection_id(self) -> str:
        return self.peering.id
