"""Resources kept as plain data and written into the stack by one element, with the JSON a cdktf
resource class would write.

A cdktf resource made from Python is an object in jsii's node process: each is created, and each
attribute read, through a round trip between the two processes, about half of a synth's time at
hundreds of services. The postgresql resources of `servicedb.construct` (a service has about 30 of
them), its secret versions and its IAM policies that read a secret are `Resource`s instead: their
addresses, construct paths and unique ids are those cdktf gives a resource of the same construct
path (`unique_id` is cdktf's own scheme), their references are plain Terraform expressions, their
`jsonencode(...)` is written as cdktf's `Fn.jsonencode` writes it (`jsonencode`), and
`Resources`, one element per stack, writes them all when the stack is synthesized.

A `Resource` may be named in `depends_on` of a cdktf resource (it is an `ITerraformDependable`),
referenced (`name`, `get`), moved from an old address (`move_from_id`) and overridden
(`add_override`).
"""

import hashlib
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jsii
from cdktf import (
    IResolvable,
    IResolveContext,
    ITerraformDependable,
    TerraformElement,
    TerraformProvider,
    TerraformResource,
    TerraformStack,
)
from constructs import Construct

TOKEN = "TfToken["
"""What every cdktf token in a string holds: `${TfToken[TOKEN.12]}`."""

HIDDEN_ID = "Default"
HIDDEN_FROM_HUMAN_ID = "Resource"
MAX_ID_LEN = 255
MAX_HUMAN_LEN = 240
HASH_LEN = 8


def unique_id(components: list[str]) -> str:
    """The logical id cdktf's `makeUniqueId` gives the construct path `components`, from below the
    stack: the components joined with `_` and the first 8 hex digits of the path's MD5, upper case."""
    components = [c for c in components if c != HIDDEN_ID]
    if not components:
        raise ValueError("a resource needs a construct path below its stack")
    if len(components) == 1 and len(candidate := allowed_characters(components[0])) <= MAX_ID_LEN:
        return candidate
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()[:HASH_LEN].upper()
    deduplicated: list[str] = []
    for component in components:
        if not deduplicated or not deduplicated[-1].endswith(component):
            deduplicated.append(component)
    human = "_".join(allowed_characters(c) for c in deduplicated if c != HIDDEN_FROM_HUMAN_ID)
    return f"{human[:MAX_HUMAN_LEN]}_{digest}"


def allowed_characters(component: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", component)


class Expression(str):
    """A Terraform expression, such as `random_password.x.result`: `jsonencode` writes it as is."""


def jsonencode(value: object) -> str:
    """`${jsonencode(...)}` of `value` (dicts, lists, strings, integers, booleans, `Expression`s), as
    cdktf's `Fn.jsonencode` writes it (`TFExpression.resolveArg` in cdktf's `tfExpression.js`)."""
    return f"${{jsonencode({expression(value)})}}"


def expression(value: object) -> str:
    if isinstance(value, Expression):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if TOKEN in value:
            raise ValueError(f"{value}: a cdktf token; give jsonencode an Expression instead")
        escaped = value.replace("\n", "\\n").replace("${", "$${")
        return escaped if value != '"' and value.startswith('"') and value.endswith('"') else f'"{escaped}"'
    if isinstance(value, Mapping):
        return "{" + ", ".join(f'"{key}" = {expression(item)}' for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(expression(item) for item in value) + "]"
    raise TypeError(f"jsonencode cannot write {value!r} ({type(value).__name__})")


@jsii.implements(ITerraformDependable)
class Resource:
    """One resource: `terraform_resource_type`, `friendly_unique_id`, its construct `path` and its
    `config` (Terraform's attribute names; meta-arguments already in Terraform's form)."""

    def __init__(self, terraform_resource_type: str, path: str, friendly_unique_id: str, config: dict) -> None:
        self.terraform_resource_type = terraform_resource_type
        self.path = path
        self.friendly_unique_id = friendly_unique_id
        self.config = config
        self.moved_from: str | None = None

    @property
    def fqn(self) -> str:
        """`<type>.<unique id>`: the address, as `depends_on` names it."""
        return f"{self.terraform_resource_type}.{self.friendly_unique_id}"

    def get(self, attribute: str) -> str:
        """A reference to one of the resource's attributes, e.g. `${postgresql_role.x.name}`."""
        return f"${{{self.fqn}.{attribute}}}"

    @property
    def name(self) -> str:
        return self.get("name")

    def move_from_id(self, address: str) -> None:
        """Terraform moves the resource at `address` (`<type>.<unique id>`) here instead of
        destroying it and creating this one: a `moved` block."""
        self.moved_from = address

    def add_override(self, path: str, value: object) -> None:
        """Set `value` at the dotted `path` of the resource's JSON, as cdktf's `add_override`."""
        *parents, last = path.split(".")
        target = self.config
        for key in parents:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[last] = value

    def to_json(self) -> dict:
        """The resource's JSON, with cdktf's comment (`//`): its construct path and unique id."""
        comment = {**self.config.get("//", {}), "metadata": {"path": self.path, "uniqueId": self.friendly_unique_id}}
        return {**self.config, "//": comment}


@dataclass(frozen=True)
class Location:
    """Where a construct is: its stack, and its construct path below the app."""

    stack: TerraformStack
    path: tuple[str, ...]
    stack_depth: int
    """How many components of `path` are the stack's own."""

    def below(self, *ids: str) -> "Location":
        return Location(self.stack, (*self.path, *ids), self.stack_depth)

    @property
    def resources(self) -> "Resources":
        """The stack's `Resources`, made with its first resource."""
        return Resources.of(self.stack)

    def add(
        self, id_: str, terraform_resource_type: str, attributes: Mapping[str, object], **meta: object
    ) -> "Resource":
        """A resource at this location's `id_` (`Resources.add`)."""
        return self.resources.add(self, id_, terraform_resource_type, attributes, **meta)  # type: ignore[arg-type]


LOCATIONS: "weakref.WeakKeyDictionary[Construct, Location]" = weakref.WeakKeyDictionary()
"""Constructs whose location is known: jsii is asked once per scope, not once per resource."""


def location_of(scope: Construct) -> Location:
    """The location of `scope`, asked of jsii once and remembered."""
    if (known := LOCATIONS.get(scope)) is not None:
        return known
    stack = TerraformStack.of(scope)
    stack_path, path = stack.node.path, scope.node.path
    location = Location(stack, tuple(path.split("/")) if path else (), len(stack_path.split("/")) if stack_path else 0)
    LOCATIONS[scope] = location
    return location


def remember(construct: Construct, scope: Construct, id_: str) -> Location:
    """The location of `construct`, just made as `id_` in `scope`: remembered without asking jsii."""
    location = location_of(scope).below(id_)
    LOCATIONS[construct] = location
    return location


class Resources(TerraformElement):
    """Every `Resource` of one stack, written when the stack is synthesized (`to_terraform`)."""

    ID = "servicedb_resources"

    def __init__(self, stack: TerraformStack) -> None:
        super().__init__(stack, self.ID)
        self._resources: dict[str, Resource] = {}
        self._paths: set[str] = set()
        self._providers: dict[int, str] = {}
        self._dependencies: dict[tuple[str, str], list[str]] = {}
        BY_STACK[stack] = self

    @staticmethod
    def of(stack: TerraformStack) -> "Resources":
        return BY_STACK.get(stack) or Resources(stack)

    def add(
        self,
        location: Location,
        id_: str,
        terraform_resource_type: str,
        attributes: Mapping[str, object],
        *,
        provider: TerraformProvider | None = None,
        depends_on: Iterable[Resource] | None = None,
        lifecycle: Mapping[str, object] | None = None,
    ) -> Resource:
        """A resource at `location`/`id_`; attributes that are None are left out, as cdktf does."""
        components = (*location.path, id_)
        path = "/".join(components)
        if path in self._paths:
            raise ValueError(f"There is already a resource with id {id_!r} in {'/'.join(location.path)}")
        config = {key: value for key, value in attributes.items() if value is not None}
        if dependencies := [resource.fqn for resource in depends_on or ()]:
            config["depends_on"] = dependencies
        if lifecycle:
            config["lifecycle"] = dict(lifecycle)
        if provider is not None:
            config["provider"] = self.provider_fqn(provider)
        resource = Resource(terraform_resource_type, path, unique_id(list(components[location.stack_depth :])), config)
        if resource.fqn in self._resources:
            raise ValueError(f"{path}: the address {resource.fqn} is taken by {self._resources[resource.fqn].path}")
        self._paths.add(path)
        self._resources[resource.fqn] = resource
        return resource

    def depend(self, resource: TerraformResource, on: Resource) -> None:
        """`resource`, a cdktf resource of this stack, depends on `on`: its `depends_on` gets `on`'s
        address when the stack is written (the JSON cdktf writes for `depends_on=[on]`, without
        jsii asking this process for `on.fqn` at every resolve)."""
        kind = type(resource)
        if kind not in RESOURCE_TYPES:
            RESOURCE_TYPES[kind] = resource.terraform_resource_type  # the same for every resource of the class
        key = (RESOURCE_TYPES[kind], resource.friendly_unique_id)
        self._dependencies.setdefault(key, []).append(on.fqn)

    def provider_fqn(self, provider: TerraformProvider) -> str:
        """`postgresql`, or `postgresql.<alias>`: read once per provider."""
        key = id(provider)
        if key not in self._providers:
            self._providers[key] = provider.fqn
        return self._providers[key]

    def to_terraform(self) -> dict:
        moved = [{"from": r.moved_from, "to": r.fqn} for r in self._resources.values() if r.moved_from]
        return {"resource": Written(self), **({"moved": moved} if moved else {})}

    def written(self) -> dict:
        """The `resource` block: every resource, and the `depends_on` of cdktf resources on them."""
        resource: dict[str, dict] = {}
        for item in self._resources.values():
            resource.setdefault(item.terraform_resource_type, {})[item.friendly_unique_id] = item.to_json()
        for (terraform_resource_type, friendly_unique_id), fqns in self._dependencies.items():
            entries = resource.setdefault(terraform_resource_type, {})
            entry = entries.get(friendly_unique_id, {})
            entries[friendly_unique_id] = {**entry, "depends_on": [*entry.get("depends_on", []), *fqns]}
        return resource

    @property
    def tokens(self) -> list[str]:
        """The cdktf tokens in the resources' JSON (a cdktf resource's attribute, a provider's user
        name): all that cdktf looks for while it prepares the stack."""
        found: set[str] = set()
        pending: list[object] = [resource.config for resource in self._resources.values()]
        while pending:
            value = pending.pop()
            if isinstance(value, str):
                if TOKEN in value:
                    found.add(value)
            elif isinstance(value, dict):
                pending.extend(value.values())
            elif isinstance(value, list):
                pending.extend(value)
        return sorted(found)


@jsii.implements(IResolvable)
class Written:
    """The resources' JSON, made when cdktf resolves it to write the stack.

    cdktf resolves every element twice: once to prepare the stack (to find references to other
    stacks), and once to write it. Preparing sees only the tokens the resources hold, which is
    all it looks for; the whole JSON crosses to jsii's node process once, not twice.
    """

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    @property
    def creation_stack(self) -> list[str]:
        return []

    def resolve(self, context: IResolveContext) -> object:
        if context.preparing:
            return self._resources.tokens
        return self._resources.written()

    def to_string(self) -> str:
        return "servicedb resources"


BY_STACK: "weakref.WeakKeyDictionary[TerraformStack, Resources]" = weakref.WeakKeyDictionary()

RESOURCE_TYPES: dict[type, str] = {}
"""The Terraform type of each cdktf resource class that `Resources.depend` has seen."""
