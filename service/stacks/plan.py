"""An update's plan: what changes between the stack as deployed and the template asked for.

Per logical resource, from the two templates (before references resolve) and the resource
type's schema:

- ``add``: in the new template only;
- ``replace``: its type changed, or a property the schema marks ``createOnlyProperties``
  changes (also when it changes because it refers to a resource that is replaced);
- ``update``: another property changes (a Cloud Control patch of the changed top-level
  properties), or it reads ``Fn::GetAtt`` of a resource updated in place (patched only if the
  value it reads changed);
- ``remove``: in the deployed stack only.

A replaced resource's new one is created before anything that refers to it is updated; the
old one, and the removed ones, are deleted only after every add, update and replacement
succeeded, dependents first (see docs/decisions.md "Stack updates").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.stacks.template import StackTemplate, _reference

Action = Literal["add", "update", "replace", "remove"]
FORWARD: tuple[Action, ...] = ("add", "update", "replace")
_MISSING = object()


@dataclass(frozen=True)
class PlannedAction:
    logical: str
    action: Action
    resource_type: str
    identifier: str = ""  # the deployed one (update, replace, remove)
    properties: tuple[str, ...] = ()  # the top-level properties that change
    reason: str = ""
    dependents: tuple[str, ...] = ()  # identifiers that depend on it (replace, remove)

    def to_dict(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical,
            "action": self.action,
            "resource_type": self.resource_type,
            "identifier": self.identifier,
            "properties": list(self.properties),
            "reason": self.reason,
            "dependents": list(self.dependents),
        }


@dataclass(frozen=True)
class UpdatePlan:
    stack: str
    old: StackTemplate
    new: StackTemplate
    actions: dict[str, PlannedAction] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.actions

    def named(self, *kinds: Action) -> list[str]:
        return [n for n, a in self.actions.items() if a.action in kinds]

    def forward_deps(self) -> dict[str, set[str]]:
        """The adds, updates and replacements, each after what it refers to among them."""
        todo = set(self.named(*FORWARD))
        return {n: set(self.new.resources[n].depends_on) & todo for n in todo}

    def digest(self) -> str:
        body = json.dumps(
            {
                "stack": self.stack,
                "resources": self.new.to_json(),
                "actions": [a.to_dict() for a in self.actions.values()],
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def with_dependents(self, found: Mapping[str, list[str]]) -> UpdatePlan:
        actions = {
            n: _replace_dependents(a, found.get(a.identifier, [])) for n, a in self.actions.items()
        }
        return UpdatePlan(self.stack, self.old, self.new, actions)

    def explain(self, intent: str, scan_note: str = "") -> str:
        counts = {k: len(self.named(k)) for k in ("add", "update", "replace", "remove")}
        summary = ", ".join(f"{v} to {k}" for k, v in counts.items() if v) or "no changes"
        lines = [f"Update stack {self.stack} ({summary}): {intent}"]
        order = [n for n in self.new.order() if n in self.actions]
        order += [n for n in reversed(self.old.order()) if n in self.named("remove")]
        for logical in order:
            lines.append("- " + _line(self.actions[logical]))
        if self.named("replace", "remove"):
            lines.append(
                "Replaced resources' old ones and removed resources are deleted last, "
                "dependents first, only after every add, update and replacement succeeded."
            )
        if scan_note:
            lines.append(scan_note)
        return "\n".join(lines)


def _replace_dependents(action: PlannedAction, dependents: list[str]) -> PlannedAction:
    if action.action not in ("replace", "remove") or not dependents:
        return action
    return PlannedAction(
        action.logical,
        action.action,
        action.resource_type,
        action.identifier,
        action.properties,
        action.reason,
        tuple(sorted(dependents)),
    )


def _line(a: PlannedAction) -> str:
    where = f" {a.identifier}" if a.identifier else ""
    text = f"{a.action} {a.logical} ({a.resource_type}{where})"
    if a.properties:
        text += f": {', '.join(a.properties)}"
    if a.reason:
        text += f" - {a.reason}"
    if a.dependents:
        text += f"; depended on by {', '.join(a.dependents)}"
    return text


def compute_plan(
    stack: str,
    old: StackTemplate,
    new: StackTemplate,
    deployed: Mapping[str, Mapping[str, str]],
    schemas: Mapping[str, ResourceSchema],
) -> UpdatePlan:
    """``deployed``: logical -> {type, identifier} as the journal records it; ``schemas``: by
    type, for every type in either template."""
    actions: dict[str, PlannedAction] = {}
    for logical in new.order():
        res = new.resources[logical]
        current = deployed.get(logical)
        if logical not in old.resources or current is None:
            actions[logical] = PlannedAction(logical, "add", res.resource_type)
            continue
        identifier = current["identifier"]
        if current["type"] != res.resource_type:
            actions[logical] = PlannedAction(
                logical,
                "replace",
                res.resource_type,
                identifier,
                reason=f"its type changes from {current['type']}",
            )
            continue
        found = _changes(
            old.resources[logical].properties, res.properties, actions, schemas[res.resource_type]
        )
        if found is not None:
            actions[logical] = PlannedAction(
                logical, found[0], res.resource_type, identifier, found[1], found[2]
            )
    for logical in reversed(old.order()):
        if logical not in new.resources and logical in deployed:
            entry = deployed[logical]
            actions[logical] = PlannedAction(logical, "remove", entry["type"], entry["identifier"])
    return UpdatePlan(stack, old, new, actions)


def _changes(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    actions: Mapping[str, PlannedAction],
    schema: ResourceSchema,
) -> tuple[Action, tuple[str, ...], str] | None:
    """(update or replace, the changed properties, why) or None when nothing changes."""
    renewed = {n for n, a in actions.items() if a.action in ("add", "replace")}
    updated = {n for n, a in actions.items() if a.action == "update"}
    changed = {k for k in {*before, *after} if before.get(k, _MISSING) != after.get(k, _MISSING)}
    why: list[str] = []
    for key, value in after.items():
        refs = _refs(value)
        moved = sorted({name for name, _ in refs} & renewed)
        if moved and key not in changed:
            changed.add(key)
            why.append(f"{key} refers to {', '.join(moved)}, which is new")
        read = sorted({name for name, attr in refs if attr is not None} & updated)
        if read and key not in changed:
            changed.add(key)
            why.append(f"{key} reads Fn::GetAtt of {', '.join(read)} (patched if it changed)")
    if not changed:
        return None
    create_only = sorted(changed & {p.strip("/").split("/")[0] for p in schema.create_only})
    if create_only:
        reason = f"create-only {', '.join(create_only)} changes: a new resource replaces it"
        return "replace", tuple(sorted(changed)), "; ".join([reason, *why])
    return "update", tuple(sorted(changed)), "; ".join(why)


def _refs(value: Any) -> set[tuple[str, str | None]]:
    """(logical name, attribute or None for a Ref) of every reference in ``value``."""
    found: set[tuple[str, str | None]] = set()
    if isinstance(value, Mapping):
        ref = _reference(value)
        if ref is not None:
            found.add(ref)
        else:
            for item in value.values():
                found |= _refs(item)
    elif isinstance(value, list):
        for item in value:
            found |= _refs(item)
    return found
