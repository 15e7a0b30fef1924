"""Plain resources (`servicedb.resources`): the ids, references and JSON cdktf gives its own."""

import json

import pytest
from cdktf import App, Fn, TerraformStack, Testing
from cdktf_cdktf_provider_postgresql.role import Role
from cdktf_cdktf_provider_random.password import Password
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from servicedb.resources import Expression, jsonencode, location_of, unique_id

from factories import synth

PATHS = [
    ["orders"],
    ["services", "orders", "owner_role"],
    ["services", "orders", "grants", "public_schema_public"],
    ["Default", "orders", "Resource", "role"],
    ["orders", "orders_database", "database"],
    ["with.dots and spaces", "x"],
    ["long" * 70, "role"],
]


@pytest.mark.parametrize("components", PATHS, ids=lambda c: "/".join(c)[:40])
def test_unique_ids_are_cdktf_own(components: list[str]) -> None:
    stack = TerraformStack(App(outdir="unused"), "stack")
    scope: Construct = stack
    for component in components:
        scope = Construct(scope, component)
    assert unique_id(components) == stack.get_logical_id(scope.node)


def test_a_plain_resource_writes_what_the_resource_class_writes() -> None:
    def build(stack, providers):
        Role(
            Construct(stack, "typed"),
            "role",
            name="orders_app",
            login=True,
            connection_limit=3,
            search_path=["orders"],
            provider=providers["postgresql_provider"],
        )
        location_of(Construct(stack, "plain")).add(
            "role",
            "postgresql_role",
            {"name": "orders_app", "login": True, "connection_limit": 3, "search_path": ["orders"], "inherit": None},
            provider=providers["postgresql_provider"],
        )

    _, document = synth(build)
    roles = document["resource"]["postgresql_role"]
    assert len(roles) == 2
    typed, plain = (roles[unique_id([name, "role"])] for name in ("typed", "plain"))
    assert plain == typed  # "inherit": None is left out, as the class leaves out what is not set


def test_references_dependencies_moves_and_overrides() -> None:
    app = Testing.app()
    stack = TerraformStack(app, "stack")
    RandomProvider(stack, "random")
    location = location_of(Construct(stack, "service"))
    owner = location.add("owner_role", "postgresql_role", {"name": "orders_owner", "login": False})
    database = location.add("database", "postgresql_database", {"name": "orders", "owner": owner.name})
    database.move_from_id("postgresql_database.old_database_ABCDEF12")
    database.add_override("lifecycle.prevent_destroy", True)
    Password(stack, "password", length=20, depends_on=[database])
    document = json.loads(Testing.synth(stack))
    written = document["resource"]["postgresql_database"][database.friendly_unique_id]
    assert written["owner"] == f"${{postgresql_role.{owner.friendly_unique_id}.name}}"
    assert written["lifecycle"] == {"prevent_destroy": True}
    assert document["resource"]["random_password"]["password"]["depends_on"] == [database.fqn]
    assert document["moved"] == [{"from": "postgresql_database.old_database_ABCDEF12", "to": database.fqn}]


def test_a_second_resource_at_the_same_path_is_refused() -> None:
    location = location_of(Construct(TerraformStack(App(outdir="unused"), "stack"), "service"))
    location.add("role", "postgresql_role", {"name": "a"})
    with pytest.raises(ValueError, match="There is already a resource with id 'role' in stack/service"):
        location.add("role", "postgresql_role", {"name": "b"})


def test_the_written_stack_has_cdktfs_metadata_on_each_plain_resource(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "stack")
    RandomProvider(stack, "random")
    Password(Construct(stack, "typed"), "password", length=20)
    plain = location_of(Construct(stack, "plain")).add("role", "postgresql_role", {"name": "orders_app"})
    app.synth()
    document = json.loads((tmp_path / "stacks" / "stack" / "cdk.tf.json").read_text())
    typed = document["resource"]["random_password"][unique_id(["typed", "password"])]
    written = document["resource"]["postgresql_role"][plain.friendly_unique_id]
    assert typed["//"] == {"metadata": {"path": "stack/typed/password", "uniqueId": unique_id(["typed", "password"])}}
    assert written == {
        "//": {"metadata": {"path": "stack/plain/role", "uniqueId": plain.friendly_unique_id}},
        "name": "orders_app",
    }


def test_a_reference_to_another_stack_is_found_while_cdktf_prepares(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    source = TerraformStack(app, "source")
    RandomProvider(source, "random")
    password = Password(source, "password", length=20)
    target = TerraformStack(app, "target")
    location_of(Construct(target, "plain")).add("role", "postgresql_role", {"name": "x", "password": password.result})
    app.synth()
    written = {
        name: json.loads((tmp_path / "stacks" / name / "cdk.tf.json").read_text()) for name in ("source", "target")
    }
    [output] = written["source"]["output"].values()
    assert output["value"] == "${random_password.password.result}"
    [role] = written["target"]["resource"]["postgresql_role"].values()
    assert role["password"].startswith("${data.terraform_remote_state.cross-stack-reference-input-source.outputs.")


def test_an_override_of_the_comment_keeps_cdktfs_metadata(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "stack")
    role = location_of(Construct(stack, "plain")).add("role", "postgresql_role", {"name": "orders_app"})
    role.add_override("//.checkov.skip.CKV_X_1", "a reason")
    app.synth()
    document = json.loads((tmp_path / "stacks" / "stack" / "cdk.tf.json").read_text())
    assert document["resource"]["postgresql_role"][role.friendly_unique_id]["//"] == {
        "checkov": {"skip": {"CKV_X_1": "a reason"}},
        "metadata": {"path": "stack/plain/role", "uniqueId": role.friendly_unique_id},
    }


ENCODED = [
    {"engine": "postgres", "port": 5432, "ssl": True, "off": False},
    {"Statement": [{"Action": ["a:B", "c:D"], "Condition": {"StringEquals": {"k": "v"}}}], "Version": "2012-10-17"},
    ["two\nlines", "a ${literal}", '"quoted"', '"', "", "back\\slash"],
    "plain",
    7,
]


@pytest.mark.parametrize("value", ENCODED, ids=range(len(ENCODED)))
def test_jsonencode_writes_what_cdktfs_fn_jsonencode_writes(value: object) -> None:
    stack = TerraformStack(Testing.app(), "stack")
    RandomProvider(stack, "random")
    password = Password(stack, "password", length=20)
    typed = Password(stack, "typed", length=20, keepers={"value": Fn.jsonencode({"v": value, "r": password.result})})
    plain = jsonencode({"v": value, "r": Expression(f"random_password.{password.friendly_unique_id}.result")})
    written = json.loads(Testing.synth(stack))["resource"]["random_password"]
    assert written[typed.friendly_unique_id]["keepers"]["value"] == plain


def test_jsonencode_refuses_a_cdktf_token() -> None:
    stack = TerraformStack(Testing.app(), "stack")
    RandomProvider(stack, "random")
    with pytest.raises(ValueError, match="a cdktf token; give jsonencode an Expression instead"):
        jsonencode({"password": Password(stack, "password", length=20).result})
