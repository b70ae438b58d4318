"""Turn drift into the RFC 6902 patch that, applied to the cloud's model, restores the state.

Pure: no I/O. What cannot be restored by an update is reported, not patched: create-only
properties (they need a replacement) and secrets ccstate keeps only as a fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.compare import (
    PropertyDifference,
    contains_redacted,
    schema_path_matches,
    without_system_tags,
)
from ccstate.service.drift.rules import split_pointer

_MISSING = object()


@dataclass(frozen=True)
class Blocked:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class RemediationPlan:
    """What remediating one resource's drift takes. ``patch`` goes to Cloud Control UpdateResource.

    ``remediable`` means the patch is worth applying; ``complete`` that it restores every
    difference (otherwise ``blocked`` says which paths it cannot, and why).
    """

    identifier: str
    resource_type: str
    patch: list[dict[str, Any]]
    differences: list[PropertyDifference]
    remediable: bool
    reason: str
    blocked: list[Blocked] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.remediable and not self.blocked

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "resource_type": self.resource_type,
            "patch": self.patch,
            "differences": [d.to_dict() for d in self.differences],
            "remediable": self.remediable,
            "complete": self.complete,
            "reason": self.reason,
            "blocked": [b.to_dict() for b in self.blocked],
        }


def remediation_patch(
    differences: Sequence[PropertyDifference],
    expected: Mapping[str, Any],
    schema: ResourceSchema | None = None,
) -> list[dict[str, Any]]:
    """The patch restoring ``expected`` where it can be restored (see ``plan_patch``)."""
    return plan_patch(differences, expected, schema)[0]


def plan_patch(
    differences: Sequence[PropertyDifference],
    expected: Mapping[str, Any],
    schema: ResourceSchema | None = None,
) -> tuple[list[dict[str, Any]], list[Blocked]]:
    """(patch, what it cannot restore). Apply the patch to the ACTUAL model, in order."""
    builder = _PatchBuilder(expected, schema)
    for difference in differences:
        builder.add(difference)
    return builder.patch(), builder.blocked


def build_plan(
    identifier: str,
    resource_type: str,
    differences: Sequence[PropertyDifference],
    expected: Mapping[str, Any],
    schema: ResourceSchema | None = None,
) -> RemediationPlan:
    patch, blocked = plan_patch(differences, expected, schema)
    return RemediationPlan(
        identifier=identifier,
        resource_type=resource_type,
        patch=patch,
        differences=list(differences),
        remediable=bool(patch),
        reason=_reason(differences, patch, blocked),
        blocked=blocked,
    )


def _reason(
    differences: Sequence[PropertyDifference], patch: list[dict[str, Any]], blocked: list[Blocked]
) -> str:
    if not differences:
        return "No drift: the resource matches the state; nothing to remediate."
    if not patch:
        return "No difference can be fixed by an update: " + "; ".join(
            f"{b.path}: {b.reason}" for b in blocked
        )
    if blocked:
        return (
            f"The patch restores {len(differences) - len(blocked)} of {len(differences)} "
            "differences; not the others: " + "; ".join(f"{b.path}: {b.reason}" for b in blocked)
        )
    return f"The patch restores all {len(differences)} differences."


class _PatchBuilder:
    def __init__(self, expected: Mapping[str, Any], schema: ResourceSchema | None) -> None:
        self.expected = dict(expected)
        self.schema = schema
        self.create_only = [tuple(split_pointer(p)) for p in (schema.create_only if schema else ())]
        self.read_only = [tuple(split_pointer(p)) for p in (schema.read_only if schema else ())]
        tags = schema.tags_property if schema else "/Tags"
        self.tags = tags
        self.restores: dict[str, None] = {}  # ordered set of whole values to restore
        self.ops: list[tuple[PropertyDifference, dict[str, Any]]] = []
        self.blocked: list[Blocked] = []
        self.blocked_growth: set[tuple[str, ...]] = set()  # arrays whose appends must stop

    def add(self, d: PropertyDifference) -> None:
        path = tuple(split_pointer(d.path))
        if any(schema_path_matches(p, path, prefix=True) for p in self.create_only):
            self.block(
                d,
                "create-only: an update cannot change it; re-create the resource, or "
                "refresh to accept the cloud's value",
            )
            return
        if d.restore_path is not None:
            self.restores[d.restore_path] = None
            return
        if d.difference_type == "ADD":
            self.ops.append((d, {"op": "remove", "path": d.path}))
            return
        value = self.writable(d.expected, path)
        if d.path == self.tags:
            value = without_system_tags(value)
        if contains_redacted(value):
            self.block(d, "a secret ccstate keeps only as a fingerprint; set it again explicitly")
        elif d.difference_type == "REMOVE" and path[:-1] in self.blocked_growth:
            self.block(d, "follows an array element that cannot be restored")
        else:
            op = "add" if d.difference_type == "REMOVE" else "replace"
            self.ops.append((d, {"op": op, "path": d.path, "value": value}))

    def block(self, d: PropertyDifference, reason: str) -> None:
        self.blocked.append(Blocked(d.path, reason))
        path = tuple(split_pointer(d.path))
        if d.difference_type == "REMOVE" and path and path[-1].isdigit():
            self.blocked_growth.add(path[:-1])

    def writable(self, value: Any, path: tuple[str, ...]) -> Any:
        """``value`` without read-only parts, which an update must not write."""
        if isinstance(value, dict):
            return {
                k: self.writable(v, (*path, k))
                for k, v in value.items()
                if not any(schema_path_matches(p, (*path, k), prefix=False) for p in self.read_only)
            }
        if isinstance(value, list):
            return [self.writable(v, (*path, str(i))) for i, v in enumerate(value)]
        return value

    def patch(self) -> list[dict[str, Any]]:
        restores = _outermost(self.restores)
        replaces = [self.restore_op(p) for p in restores]
        replaces = [op for op in replaces if op is not None]
        kept = [(d, op) for d, op in self.ops if not _under_any(d.path, restores)]
        adds = [op for _, op in kept if op["op"] == "add"]
        removes = [op for _, op in kept if op["op"] == "remove"]
        replaces += [op for _, op in kept if op["op"] == "replace"]
        # Appends in ascending index order, deletions from the highest index down, so that no
        # operation shifts the position another one refers to.
        adds.sort(key=lambda op: _sort_key(op["path"]))
        removes.sort(key=lambda op: _sort_key(op["path"]), reverse=True)
        return replaces + adds + removes

    def restore_op(self, pointer: str) -> dict[str, Any] | None:
        path = tuple(split_pointer(pointer))
        value = _resolve(self.expected, path)
        if value is _MISSING:
            return {"op": "remove", "path": pointer}
        if pointer == self.tags:
            value = without_system_tags(value)
        value = self.writable(value, path)
        if contains_redacted(value):
            self.blocked.append(
                Blocked(
                    pointer,
                    "holds a secret ccstate keeps only as a fingerprint; set it again explicitly",
                )
            )
            return None
        return {"op": "replace", "path": pointer, "value": value}


def _resolve(document: Any, path: Sequence[str]) -> Any:
    node = document
    for segment in path:
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return _MISSING
    return node


def _under_any(pointer: str, roots: Sequence[str]) -> bool:
    return any(pointer == r or pointer.startswith(r + "/") for r in roots)


def _outermost(pointers: Mapping[str, None]) -> list[str]:
    ordered = sorted(pointers, key=len)
    kept: list[str] = []
    for p in ordered:
        if not _under_any(p, kept):
            kept.append(p)
    return kept


def _sort_key(pointer: str) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in split_pointer(pointer))
