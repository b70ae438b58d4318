"""A stack's resources: logical names, references between them, and the order they go in.

Input shape (the MCP tool's ``resources`` and a stack file): ``{LogicalName: {"Type": ...,
"Properties": {...}, "DependsOn": [...]}}``; a CloudFormation template (``{"Resources": {...}}``)
is accepted too. ``{"Ref": "Name"}`` is the primary identifier of resource Name once created;
``{"Fn::GetAtt": ["Name", "Attr"]}`` (or ``"Name.Attr"``) is a property of its read-back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from ccstate.service.errors import InvalidInput

_LOGICAL = re.compile(r"^[A-Za-z0-9]{1,255}$")
_STACK = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


@dataclass(frozen=True)
class LogicalResource:
    name: str
    resource_type: str
    properties: dict[str, Any]
    depends_on: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class StackTemplate:
    resources: dict[str, LogicalResource]

    def dependencies(self, name: str) -> frozenset[str]:
        return self.resources[name].depends_on

    def order(self) -> list[str]:
        """A creation order (dependencies first)."""
        sorter = TopologicalSorter({n: r.depends_on for n, r in self.resources.items()})
        return list(sorter.static_order())

    def to_json(self) -> dict[str, Any]:
        return {
            n: {"Type": r.resource_type, "Properties": r.properties}
            | ({"DependsOn": sorted(r.depends_on)} if r.depends_on else {})
            for n, r in self.resources.items()
        }


def validate_stack_name(name: object) -> str:
    if not isinstance(name, str) or not _STACK.match(name):
        raise InvalidInput(
            f"Stack name {name!r} is not valid: use a letter, then letters, digits and '-' "
            "(at most 128 characters).",
            next_step="Choose a stack name such as 'web-app'.",
            field="stack_name",
        )
    return name


def parse_template(raw: object) -> StackTemplate:
    """Check the shape, find every reference, reject unknown names and cycles (naming them)."""
    if isinstance(raw, Mapping) and "Resources" in raw:
        raw = raw["Resources"]
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(
            "resources must be an object of logical names to {Type, Properties}.",
            next_step='Pass e.g. {"Key": {"Type": "AWS::KMS::Key", "Properties": {}}}.',
            field="resources",
        )
    resources = {name: _resource(name, body) for name, body in raw.items()}
    for res in resources.values():
        unknown = sorted(res.depends_on - resources.keys())
        if unknown:
            raise InvalidInput(
                f"Resource '{res.name}' refers to {', '.join(unknown)}, not in the stack.",
                next_step="Add the missing resources or fix the Ref/Fn::GetAtt/DependsOn names.",
                field="resources",
                resource=res.name,
                unknown=unknown,
            )
    template = StackTemplate(resources)
    try:
        template.order()
    except CycleError as exc:
        ring = list(exc.args[1])
        raise InvalidInput(
            f"The stack's resources depend on each other in a cycle: {' -> '.join(ring)}.",
            next_step="Break the cycle: remove one of these references.",
            field="resources",
            cycle=ring,
        ) from None
    return template


def _resource(name: object, body: object) -> LogicalResource:
    if not isinstance(name, str) or not _LOGICAL.match(name):
        raise InvalidInput(
            f"Logical name {name!r} is not valid: letters and digits only.",
            next_step="Rename the resource, e.g. 'DataBucket'.",
            field="resources",
        )
    if not isinstance(body, Mapping) or not isinstance(body.get("Type"), str):
        raise InvalidInput(
            f"Resource '{name}' needs a Type such as 'AWS::S3::Bucket'.",
            next_step='Write it as {"Type": "AWS::S3::Bucket", "Properties": {...}}.',
            field="resources",
        )
    properties = body.get("Properties") or {}
    if not isinstance(properties, Mapping):
        raise InvalidInput(
            f"Properties of '{name}' must be an object.", next_step="Fix the stack file."
        )
    explicit = body.get("DependsOn") or []
    explicit = [explicit] if isinstance(explicit, str) else list(explicit)
    deps = references(properties) | set(explicit)
    if name in deps:
        raise InvalidInput(
            f"The stack's resources depend on each other in a cycle: {name} -> {name}.",
            next_step="A resource cannot refer to itself: remove that reference.",
            field="resources",
            cycle=[name, name],
        )
    return LogicalResource(name, body["Type"], dict(properties), frozenset(deps))


def references(value: Any) -> set[str]:
    """The logical names ``value`` refers to with Ref or Fn::GetAtt, at any depth."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        ref = _reference(value)
        if ref is not None:
            found.add(ref[0])
        else:
            for item in value.values():
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def _reference(value: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(name, attribute) of a Ref (attribute None) or Fn::GetAtt, else None."""
    if len(value) != 1:
        return None
    if isinstance(value.get("Ref"), str):
        return value["Ref"], None
    att = value.get("Fn::GetAtt")
    if isinstance(att, str) and "." in att:
        name, attr = att.split(".", 1)
        return name, attr
    if isinstance(att, list) and len(att) == 2 and all(isinstance(a, str) for a in att):
        return att[0], att[1]
    return None


@dataclass(frozen=True)
class Created:
    """What a created resource offers to the resources that refer to it."""

    identifier: str
    properties: dict[str, Any]


def resolve(value: Any, created: Mapping[str, Created]) -> Any:
    """``value`` with every Ref/Fn::GetAtt replaced from the created resources' read-back."""
    if isinstance(value, Mapping):
        ref = _reference(value)
        if ref is None:
            return {k: resolve(v, created) for k, v in value.items()}
        name, attr = ref
        target = created[name]
        if attr is None:
            return target.identifier
        if attr not in target.properties:
            raise InvalidInput(
                f"Fn::GetAtt {name}.{attr}: {name} has no property '{attr}' after creation "
                f"(it has {', '.join(sorted(target.properties)) or 'none'}).",
                next_step="Use one of the properties the resource type returns.",
                field="resources",
            )
        return target.properties[attr]
    if isinstance(value, list):
        return [resolve(v, created) for v in value]
    return value
