"""Differences between two states (``ccstate state diff A B``): which resources were added,
removed or changed, and for a changed one, which properties, as JSON Pointer paths.

Pure and deterministic: resources sorted by identifier, property paths in document order, so the
JSON output is stable. Lists are compared by position (a list that grew or shrank shows its extra
items as added or removed); the drift engine, not this, knows which lists are sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ccstate.service.state.model import ResourceState

_MISSING = object()


@dataclass(frozen=True)
class PropertyChange:
    path: str  # JSON Pointer into current_properties, e.g. '/Tags/0/Value'
    change: str  # added | removed | changed
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class ResourceDiff:
    identifier: str
    resource_type: str
    change: str  # added | removed | changed
    properties: list[PropertyChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "resource_type": self.resource_type,
            "change": self.change,
            "properties": [p.to_dict() for p in self.properties],
        }


def diff_resources(
    before: dict[str, ResourceState], after: dict[str, ResourceState]
) -> list[ResourceDiff]:
    """Resource-level and property-level differences from ``before`` to ``after``."""
    out: list[ResourceDiff] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            out.append(ResourceDiff(key, new.resource_type, "added", _whole("added", new)))
        elif new is None and old is not None:
            out.append(ResourceDiff(key, old.resource_type, "removed", _whole("removed", old)))
        elif old is not None and new is not None:
            changes = diff_properties(old.current_properties, new.current_properties)
            if changes or old.resource_type != new.resource_type:
                out.append(ResourceDiff(key, new.resource_type, "changed", changes))
    return out


def diff_properties(before: Any, after: Any, path: str = "") -> list[PropertyChange]:
    """Leaf-level differences between two JSON values, with JSON Pointer paths."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[PropertyChange] = []
        for key in list(before) + [k for k in after if k not in before]:
            out += _diff_member(before.get(key, _MISSING), after.get(key, _MISSING), path, key)
        return out
    if isinstance(before, list) and isinstance(after, list):
        out = []
        for index in range(max(len(before), len(after))):
            old = before[index] if index < len(before) else _MISSING
            new = after[index] if index < len(after) else _MISSING
            out += _diff_member(old, new, path, str(index))
        return out
    if before == after and type(before) is type(after):
        return []
    return [PropertyChange(path or "/", "changed", before, after)]


def _diff_member(old: Any, new: Any, path: str, key: str) -> list[PropertyChange]:
    here = f"{path}/{_escape(key)}"
    if old is _MISSING:
        return [PropertyChange(here, "added", None, new)]
    if new is _MISSING:
        return [PropertyChange(here, "removed", old, None)]
    return diff_properties(old, new, here)


def _whole(change: str, res: ResourceState) -> list[PropertyChange]:
    """An added or removed resource lists its top-level properties, so the diff shows them."""
    props = res.current_properties
    return [
        PropertyChange(
            f"/{_escape(k)}",
            change,
            props[k] if change == "removed" else None,
            props[k] if change == "added" else None,
        )
        for k in props
    ]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
