"""The operator network: its plan, and OperatorNetworkStack synthesized with the providers' validations."""

import dataclasses
import json

import pytest
from cdktf import Testing
from syrupy.extensions.json import JSONSnapshotExtension

from servicedb.errors import DeclarationError
from servicedb.network import EgressRule, NetworkPlan, Side, SourceKind, check_invariants, plan_network
from servicedb.plan import PlanInvariantError
from servicedb.spec import OperatorHost
from servicedb.stack import OperatorNetworkStack

from factories import environment, operator_network

NETWORK_STACKS = ["dev-operator-network", "prod-operator-network"]
OPERATOR_ACCOUNT = "210987654321"
OPERATOR_ROLE = f"arn:aws:iam::{OPERATOR_ACCOUNT}:role/servicedb-operator-network"
SSM_HOST = {"host": OperatorHost.SSM, "host_subnet_id": "subnet-0a0000000000000a1", "operator_security_group_id": None}
CLOUD9_HOST = {"host": OperatorHost.CLOUD9, "host_subnet_id": "subnet-0a0000000000000a1"}


def planned(environment_overrides: dict | None = None, **network_overrides: object) -> NetworkPlan:
    return plan_network(environment(network=operator_network(**network_overrides), **(environment_overrides or {})))


def synth(plan: NetworkPlan) -> dict:
    stack = OperatorNetworkStack(Testing.app(), plan=plan)
    return json.loads(Testing.synth(stack, run_validations=True))


def resources(document: dict, kind: str) -> list[dict]:
    return list(document["resource"].get(kind, {}).values())


def strings(value: object):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


# The plan, without cdktf.


def test_plan_needs_the_network_table():
    with pytest.raises(DeclarationError) as raised:
        plan_network(environment())
    assert str(raised.value) == (
        "<declared in code>: [test]: 1 problem\n"
        "  at network: is missing; add a [test.network] table to build its operator network"
    )


def test_plan_refuses_an_invalid_network():
    with pytest.raises(DeclarationError, match="at network.operator_cidr: 0.0.0.0/0 would let every address"):
        planned(operator_security_group_id=None, operator_cidr="0.0.0.0/0")


def test_plan_routes_each_vpc_to_the_other():
    plan = planned()
    assert [(r.route_table_id, r.destination_cidr) for r in plan.routes_on(Side.OPERATOR)] == [
        ("rtb-0a0000000000000a1", "10.0.0.0/16")
    ]
    assert [(r.route_table_id, r.destination_cidr) for r in plan.routes_on(Side.DATABASE)] == [
        ("rtb-0d0000000000000d1", "10.100.0.0/16"),
        ("rtb-0d0000000000000d2", "10.100.0.0/16"),
    ]


def test_plan_opens_the_clusters_own_port():
    assert planned({"port": 6543}).ingress.port == 6543


def test_plan_in_one_account_and_region_needs_no_accepter_and_no_second_provider():
    plan = planned()
    assert not plan.peering.needs_accepter
    assert not plan.needs_operator_provider
    assert (plan.ingress.source_kind, plan.ingress.source) == (SourceKind.SECURITY_GROUP, "sg-0a0000000000000a1")


def test_plan_names_a_security_group_of_another_account_with_its_account():
    plan = planned(operator_account_id=OPERATOR_ACCOUNT, operator_role_arn=OPERATOR_ROLE)
    assert plan.peering.needs_accepter
    assert plan.needs_operator_provider
    assert plan.ingress.source == f"{OPERATOR_ACCOUNT}/sg-0a0000000000000a1"


def test_plan_uses_the_hosts_security_group_or_across_regions_its_address():
    assert planned(**SSM_HOST).ingress.source_kind == SourceKind.HOST_SECURITY_GROUP
    other_account = planned(**SSM_HOST, operator_account_id=OPERATOR_ACCOUNT, operator_role_arn=OPERATOR_ROLE)
    assert other_account.ingress.source_account_id == OPERATOR_ACCOUNT
    other_region = planned(**SSM_HOST, operator_region="eu-central-1")
    assert other_region.ingress.source_kind == SourceKind.HOST_ADDRESS


def test_plan_lets_the_ssm_host_start_only_https_and_postgresql():
    host = planned(**SSM_HOST).host
    assert [(rule.port, rule.cidr) for rule in host.egress] == [(443, "10.100.0.0/16"), (5432, "10.0.0.0/16")]
    host = planned(**SSM_HOST, host_https_egress_cidrs=("10.100.8.0/24", "10.100.9.0/24")).host
    assert [(rule.port, rule.cidr) for rule in host.egress] == [
        (443, "10.100.8.0/24"),
        (443, "10.100.9.0/24"),
        (5432, "10.0.0.0/16"),
    ]


def test_plan_picks_the_amazon_linux_of_the_hosts_architecture():
    assert planned(**SSM_HOST).host.ami_parameter.endswith("/al2023-ami-kernel-default-x86_64")
    arm = planned(**SSM_HOST, host_instance_type="t4g.small").host
    assert (arm.architecture, arm.ami_parameter.rsplit("/", 1)[1]) == ("arm64", "al2023-ami-kernel-default-arm64")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: {"ingress": dataclasses.replace(p.ingress, port=22)}, "opens port 22, not the cluster's 5432"),
        (
            lambda p: {"ingress": dataclasses.replace(p.ingress, source_kind=SourceKind.CIDR, source="0.0.0.0/0")},
            "the cluster rule is open to '0.0.0.0/0'",
        ),
        (lambda p: {"routes": p.routes_on(Side.OPERATOR)}, "no route on the database side"),
        (
            lambda p: {
                "host": dataclasses.replace(
                    p.host, egress=(*p.host.egress, EgressRule(port=5432, cidr="10.9.0.0/16", description="x"))
                )
            },
            "the host may open port 5432 to 10.9.0.0/16",
        ),
        (
            lambda p: {
                "host": dataclasses.replace(p.host, egress=(EgressRule(port=22, cidr="10.0.0.0/16", description="x"),))
            },
            "the host may open port 22 to 10.0.0.0/16",
        ),
    ],
)
def test_invariants_catch_a_broken_plan(change, expected):
    plan = planned(**SSM_HOST)
    with pytest.raises(PlanInvariantError, match=expected):
        check_invariants(dataclasses.replace(plan, **change(plan)))


# The repository's stacks.


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", NETWORK_STACKS)
def test_stack_matches_snapshot(synthesized, snapshot_json, stack):
    # CI never updates snapshots: a change here is reviewed with `pytest --snapshot-update`.
    assert synthesized[stack] == snapshot_json


@pytest.mark.parametrize("stack", NETWORK_STACKS)
def test_no_address_anywhere_is_open_to_the_world(synthesized, stack):
    for value in strings(synthesized[stack]):
        assert "0.0.0.0/0" not in value and "::/0" not in value, value


@pytest.mark.parametrize("stack", NETWORK_STACKS)
def test_routes_go_both_ways_over_the_peering(synthesized, declarations, stack):
    network = declarations.environment(stack.split("-")[0]).network
    routes = {(r["route_table_id"], r["destination_cidr_block"]) for r in resources(synthesized[stack], "aws_route")}
    assert routes == {(table, network.database_vpc_cidr) for table in network.operator_route_table_ids} | {
        (table, network.operator_vpc_cidr) for table in network.database_route_table_ids
    }
    # Through the peering, or where an accepter accepts it, through the accepter (the same id, once accepted).
    kind = "aws_vpc_peering_connection_accepter" if stack == "prod-operator-network" else "aws_vpc_peering_connection"
    [peering] = synthesized[stack]["resource"][kind]
    for route in resources(synthesized[stack], "aws_route"):
        assert route["vpc_peering_connection_id"] == f"${{{kind}.{peering}.id}}"


@pytest.mark.parametrize("stack", NETWORK_STACKS)
def test_the_cluster_gets_exactly_one_rule_on_5432_from_the_operator_source(synthesized, stack):
    document = synthesized[stack]
    [shared] = resources(document, "aws_vpc_security_group_ingress_rule")
    rule = dict(shared)  # the synthesized document is shared by the whole session
    source = {key: rule.pop(key) for key in ("referenced_security_group_id", "cidr_ipv4") if key in rule}
    assert {key: rule[key] for key in ("from_port", "to_port", "ip_protocol")} == {
        "from_port": 5432,
        "to_port": 5432,
        "ip_protocol": "tcp",
    }
    if stack == "dev-operator-network":  # the SSM host's own security group
        assert rule["security_group_id"] == "sg-0de0000000000d001"
        assert source == {
            "referenced_security_group_id": "${aws_security_group.operator_access_host_security_group_1B60FFCD.id}"
        }
    else:  # the Cloud9 subnet's CIDR
        assert rule["security_group_id"] == "sg-0f00000000000d001"
        assert source == {"cidr_ipv4": "10.200.1.0/24"}
    assert "aws_security_group_rule" not in document["resource"]
    for group in resources(document, "aws_security_group"):
        assert "ingress" not in group


def test_dev_peers_in_one_account_and_prod_through_an_accepter(synthesized):
    dev, prod = synthesized["dev-operator-network"], synthesized["prod-operator-network"]
    [dev_peering] = resources(dev, "aws_vpc_peering_connection")
    assert dev_peering["auto_accept"] is True
    assert "aws_vpc_peering_connection_accepter" not in dev["resource"]

    [prod_peering] = resources(prod, "aws_vpc_peering_connection")
    assert prod_peering["provider"] == "aws.operator"
    assert prod_peering["peer_owner_id"] == "222222222222"
    assert "auto_accept" not in prod_peering
    [accepter] = resources(prod, "aws_vpc_peering_connection_accepter")
    assert (accepter["auto_accept"], accepter["provider"]) == (True, "aws")

    for document in (dev, prod):
        [options] = resources(document, "aws_vpc_peering_connection_options")
        assert options["accepter"] == {"allow_remote_vpc_dns_resolution": True}
        assert options["provider"] == "aws"


def test_prod_manages_the_operator_side_through_a_role_in_the_tooling_account(synthesized):
    prod = synthesized["prod-operator-network"]
    database, operator = prod["provider"]["aws"]
    assert database["allowed_account_ids"] == ["222222222222"]
    assert operator["alias"] == "operator"
    assert operator["allowed_account_ids"] == ["333333333333"]
    assert operator["assume_role"] == [
        {
            "role_arn": "arn:aws:iam::333333333333:role/servicedb-operator-network",
            "session_name": "servicedb-operator-network",
        }
    ]
    providers = {route["route_table_id"]: route["provider"] for route in resources(prod, "aws_route")}
    assert providers == {
        "rtb-0f00000000000a001": "aws.operator",
        "rtb-0f00000000000d001": "aws",
        "rtb-0f00000000000d002": "aws",
        "rtb-0f00000000000d003": "aws",
    }
    [cloud9] = resources(prod, "aws_cloud9_environment_ec2")
    assert cloud9["provider"] == "aws.operator"
    [rule] = resources(prod, "aws_vpc_security_group_ingress_rule")
    assert rule["provider"] == "aws"


def test_dev_has_one_provider_and_each_network_stack_keeps_its_state_in_s3(synthesized):
    assert len(synthesized["dev-operator-network"]["provider"]["aws"]) == 1
    for env in ("dev", "prod"):
        backend = synthesized[f"{env}-operator-network"]["terraform"]["backend"]["s3"]
        assert backend["key"] == f"servicedb/{env}-operator-network.tfstate"
        assert (backend["encrypt"], backend["use_lockfile"]) == (True, True)


def test_the_ssm_host_takes_no_connection_and_starts_only_https_and_postgresql(synthesized):
    dev = synthesized["dev-operator-network"]
    [instance] = resources(dev, "aws_instance")
    assert instance["metadata_options"]["http_tokens"] == "required"
    assert instance["root_block_device"]["encrypted"] is True
    assert instance["associate_public_ip_address"] is False
    assert "key_name" not in instance and "user_data" not in instance
    assert instance["ami"] == "${data.aws_ssm_parameter.operator_access_host_ami_ADC61F00.insecure_value}"
    [ami] = dev["data"]["aws_ssm_parameter"].values()
    assert ami["name"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    assert instance["lifecycle"] == {"ignore_changes": ["ami"]}

    egress = {
        (r["from_port"], r["to_port"], r["cidr_ipv4"]) for r in resources(dev, "aws_vpc_security_group_egress_rule")
    }
    assert egress == {(443, 443, "10.100.0.0/16"), (5432, 5432, "10.10.0.0/16")}

    [attachment] = resources(dev, "aws_iam_role_policy_attachment")
    assert attachment["policy_arn"].endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")
    [role] = resources(dev, "aws_iam_role")
    assert json.loads(role["assume_role_policy"])["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert dev["output"]["host_instance_id"]["value"] == "${aws_instance.operator_access_host_instance_DC721DAF.id}"


def test_the_cloud9_host_is_reached_through_session_manager(synthesized):
    prod = synthesized["prod-operator-network"]
    [cloud9] = resources(prod, "aws_cloud9_environment_ec2")
    assert {key: cloud9[key] for key in ("connection_type", "image_id", "subnet_id", "instance_type")} == {
        "connection_type": "CONNECT_SSM",
        "image_id": "amazonlinux-2023-x86_64",
        "subnet_id": "subnet-0f00000000000a001",
        "instance_type": "t3.small",
    }
    assert "aws_instance" not in prod["resource"]
    assert "cloud9_environment_id" in prod["output"]


def test_resource_addresses_are_pinned(synthesized):
    # A changed address is a destroyed and recreated resource: change this list only on purpose.
    document = synthesized["dev-operator-network"]
    assert sorted(f"{kind}.{name}" for kind, items in document["resource"].items() for name in items) == [
        "aws_iam_instance_profile.operator_access_host_instance_profile_03CE28B8",
        "aws_iam_role.operator_access_host_role_9F4074ED",
        "aws_iam_role_policy_attachment.operator_access_host_ssm_core_3C7E1503",
        "aws_instance.operator_access_host_instance_DC721DAF",
        "aws_route.operator_access_database_routes_rtb_0de0000000000d001_0A8191C2",
        "aws_route.operator_access_database_routes_rtb_0de0000000000d002_7DCC2507",
        "aws_route.operator_access_operator_routes_rtb_0de0000000000a001_A96FDF5A",
        "aws_security_group.operator_access_host_security_group_1B60FFCD",
        "aws_vpc_peering_connection.operator_access_peering_FD9D64EF",
        "aws_vpc_peering_connection_options.operator_access_peering_dns_resolution_BC7DB4BA",
        "aws_vpc_security_group_egress_rule.operator_access_host_egress_port_443_to_10_100_0_0_16_712CFF45",
        "aws_vpc_security_group_egress_rule.operator_access_host_egress_port_5432_to_10_10_0_0_16_1A95C12F",
        "aws_vpc_security_group_ingress_rule.operator_access_cluster_ingress_52BBA775",
    ]


# Variants the examples do not cover.


def test_no_host_and_a_security_group_source_in_one_account():
    document = synth(planned())
    assert set(document["resource"]) == {
        "aws_route",
        "aws_vpc_peering_connection",
        "aws_vpc_peering_connection_options",
        "aws_vpc_security_group_ingress_rule",
    }
    [rule] = resources(document, "aws_vpc_security_group_ingress_rule")
    assert rule["referenced_security_group_id"] == "sg-0a0000000000000a1"
    assert "output" not in document or set(document["output"]) == {"peering_connection_id"}


def test_an_ssm_host_in_another_account_is_referenced_with_its_account():
    document = synth(planned(**SSM_HOST, operator_account_id=OPERATOR_ACCOUNT, operator_role_arn=OPERATOR_ROLE))
    [rule] = resources(document, "aws_vpc_security_group_ingress_rule")
    assert rule["referenced_security_group_id"] == (
        f"{OPERATOR_ACCOUNT}/${{aws_security_group.operator_access_host_security_group_1B60FFCD.id}}"
    )
    # A security group across the peering can be referenced only once the peering is accepted.
    assert rule["depends_on"] == ["aws_vpc_peering_connection_accepter.operator_access_peering_accepter_A9F68E82"]
    [instance] = resources(document, "aws_instance")
    assert instance["provider"] == "aws.operator"


def test_an_ssm_host_in_another_region_is_let_in_by_its_private_address():
    document = synth(planned(**SSM_HOST, operator_region="eu-central-1"))
    [peering] = resources(document, "aws_vpc_peering_connection")
    assert peering["peer_region"] == "eu-west-1"
    assert "peer_owner_id" not in peering
    _, operator = document["provider"]["aws"]
    assert (operator["region"], operator["allowed_account_ids"]) == ("eu-central-1", ["123456789012"])
    assert "assume_role" not in operator
    [rule] = resources(document, "aws_vpc_security_group_ingress_rule")
    assert rule["cidr_ipv4"] == "${aws_instance.operator_access_host_instance_DC721DAF.private_ip}/32"
    assert "referenced_security_group_id" not in rule


def test_an_arm_ssm_host_boots_the_arm_image():
    document = synth(planned(**SSM_HOST, host_instance_type="t4g.small"))
    [ami] = document["data"]["aws_ssm_parameter"].values()
    assert ami["name"].endswith("al2023-ami-kernel-default-arm64")


def test_routes_keep_their_address_when_route_tables_are_added():
    before = synth(planned())
    after = synth(
        planned(database_route_table_ids=("rtb-0d0000000000000d0", "rtb-0d0000000000000d1", "rtb-0d0000000000000d2"))
    )
    assert set(before["resource"]["aws_route"]) < set(after["resource"]["aws_route"])


def test_to_have_resource_with_properties_for_the_peering_dns_option():
    text = Testing.synth(OperatorNetworkStack(Testing.app(), plan=planned(**CLOUD9_HOST, operator_cidr=None)))
    assert Testing.to_have_resource_with_properties(
        text, "aws_vpc_peering_connection_options", {"accepter": {"allow_remote_vpc_dns_resolution": True}}
    )
