"""Differences between two states (``ccstate state diff A B``): which resources were added,
removed or changed, and for a changed one, which properties, as JSON Pointer paths.

deepdiff finds the differences; this module only decides which lists are sets and turns
deepdiff's report into the stable JSON of ``state diff --output json`` (docs/cli.md):

- A tag list (``[{"Key": ..., "Value": ...}]``) is a set keyed by ``Key``: a tag added anywhere
  is one ``added`` change, a reordering is no change, a new value is a change of that tag's
  ``Value``. Arrays the resource's schema marks ``insertionOrder: false`` are sets too.
- Other lists are compared in order.
- Paths point into the ``after`` document for ``added`` and ``changed`` values, into the
  ``before`` document for ``removed`` ones; changes come in document order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.state.model import ResourceState
from deepdiff import DeepDiff
from deepdiff.model import DiffLevel
from jsonpointer import JsonPointer

Parts = tuple[str | int, ...]
_ADDED = ("dictionary_item_added", "iterable_item_added", "attribute_added")
_REMOVED = ("dictionary_item_removed", "iterable_item_removed", "attribute_removed")
_CHANGED = ("values_changed", "type_changes")


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
    before: dict[str, ResourceState],
    after: dict[str, ResourceState],
    schemas: Mapping[str, ResourceSchema] | None = None,
) -> list[ResourceDiff]:
    """Resource-level and property-level differences from ``before`` to ``after``.

    ``schemas`` (by type name, optional) says which arrays are sets and which property holds
    the tags; without a schema a top-level ``Tags`` list is taken as the tags.
    """
    out: list[ResourceDiff] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            out.append(ResourceDiff(key, new.resource_type, "added", _whole("added", new)))
        elif new is None and old is not None:
            out.append(ResourceDiff(key, old.resource_type, "removed", _whole("removed", old)))
        elif old is not None and new is not None:
            schema = (schemas or {}).get(new.resource_type)
            changes = diff_properties(old.current_properties, new.current_properties, schema)
            if changes or old.resource_type != new.resource_type:
                out.append(ResourceDiff(key, new.resource_type, "changed", changes))
    return out


def diff_properties(
    before: Any, after: Any, schema: ResourceSchema | None = None
) -> list[PropertyChange]:
    """Leaf-level differences between two JSON values, with JSON Pointer paths."""
    whole_before, whole_after = before, after
    if isinstance(before, dict) and isinstance(after, dict):
        # deepdiff costs milliseconds per resource: give it only the properties that differ.
        differ = [k for k in before.keys() | after.keys() if _text(before, k) != _text(after, k)]
        before = {k: before[k] for k in differ if k in before}
        after = {k: after[k] for k in differ if k in after}
        if not differ:
            return []
    view = _View(before, after, schema)
    found = DeepDiff(
        view.before,
        view.after,
        view="tree",
        ignore_order_func=view.is_set,
        report_repetition=True,
        threshold_to_diff_deeper=0,  # always key by key, never "the whole object changed"
        verbose_level=2,
    )
    changes: list[tuple[Parts, PropertyChange]] = []
    for report, levels in found.items():
        for level in levels:
            changes += _changes(report, level, view)
    changes.sort(key=lambda item: _document_order(item[0], whole_before, whole_after))
    return [change for _, change in changes]


def _text(document: dict[str, Any], key: str) -> str | None:
    """A property as canonical JSON, which tells 1, 1.0 and true apart (Python's == does not)."""
    if key not in document:
        return None
    return json.dumps(document[key], sort_keys=True, separators=(",", ":"), default=str)


class _View:
    """The two documents as deepdiff sees them: a tag list becomes a map keyed by ``Key``
    (so tags pair by key, whatever their order), and ``insertionOrder: false`` arrays are sets.
    ``parts`` maps a path in that view back to a path in the real document."""

    def __init__(self, before: Any, after: Any, schema: ResourceSchema | None) -> None:
        tags = schema.tags_property if schema is not None else "/Tags"
        self.tags: str | None = None
        if tags and len(parts := JsonPointer(tags).parts) == 1:
            old, new = _tag_map(_get(before, parts[0])), _tag_map(_get(after, parts[0]))
            if old is not None and new is not None:
                self.tags = parts[0]
        self.before = self._keyed(before)
        self.after = self._keyed(after)
        self.old_tags = [t["Key"] for t in before[self.tags]] if self.tags else []
        self.new_tags = [t["Key"] for t in after[self.tags]] if self.tags else []
        unordered = schema.unordered_arrays if schema is not None else frozenset()
        keyed = {tags} if self.tags else set()
        self.patterns = [tuple(JsonPointer(p).parts) for p in unordered - keyed]

    def _keyed(self, document: Any) -> Any:
        if self.tags is None:
            return document
        return {**document, self.tags: _tag_map(document[self.tags])}

    def is_set(self, level: DiffLevel) -> bool:
        parts = [str(p) for p in level.path(output_format="list")]
        return any(
            len(pattern) == len(parts)
            and all(p in ("*", s) for p, s in zip(pattern, parts, strict=True))
            for pattern in self.patterns
        )

    def parts(self, level: DiffLevel, *, after: bool) -> Parts:
        parts = tuple(level.path(output_format="list", use_t2=after))
        if self.tags is None or len(parts) < 2 or parts[0] != self.tags:
            return parts
        keys = self.new_tags if after else self.old_tags
        return (parts[0], keys.index(parts[1]), *parts[2:])


def _get(document: Any, key: str) -> Any:
    return document.get(key) if isinstance(document, dict) else None


def _tag_map(value: Any) -> dict[Any, Any] | None:
    """``[{"Key": k, ...}]`` as ``{k: {"Key": k, ...}}``; None unless a list of unique keys."""
    if not isinstance(value, list):
        return None
    if not all(isinstance(t, dict) and isinstance(t.get("Key"), str) for t in value):
        return None
    keyed = {t["Key"]: t for t in value}
    return keyed if len(keyed) == len(value) else None


def _changes(report: str, level: DiffLevel, view: _View) -> list[tuple[Parts, PropertyChange]]:
    if report in _ADDED:
        parts = view.parts(level, after=True)
        return [(parts, PropertyChange(_pointer(parts), "added", None, level.t2))]
    if report in _REMOVED:
        parts = view.parts(level, after=False)
        return [(parts, PropertyChange(_pointer(parts), "removed", level.t1, None))]
    if report in _CHANGED:
        parts = view.parts(level, after=True)
        return [(parts, PropertyChange(_pointer(parts), "changed", level.t1, level.t2))]
    if report == "repetition_change":
        return _repetition(level, view)
    return []


def _repetition(level: DiffLevel, view: _View) -> list[tuple[Parts, PropertyChange]]:
    """An item of a set that appears more (or fewer) times than before."""
    info = level.additional["repetition"]
    grown = info["new_repeat"] - info["old_repeat"]
    if grown > 0:
        array = view.parts(level, after=True)[:-1]
        return [
            ((*array, i), PropertyChange(_pointer((*array, i)), "added", None, level.t2))
            for i in info["new_indexes"][-grown:]
        ]
    array = view.parts(level, after=False)[:-1]
    return [
        ((*array, i), PropertyChange(_pointer((*array, i)), "removed", level.t1, None))
        for i in info["old_indexes"][grown:]
    ]


def _pointer(parts: Iterable[str | int]) -> str:
    return JsonPointer.from_parts([str(p) for p in parts]).path or "/"


def _document_order(parts: Parts, before: Any, after: Any) -> tuple[int, ...]:
    """Keys in the order ``before`` has them, then the keys only ``after`` has; items by index."""
    order: list[int] = []
    for part in parts:
        if isinstance(part, int):
            order.append(part)
            before, after = _item(before, part), _item(after, part)
            continue
        keys = list(before) if isinstance(before, dict) else []
        keys += [k for k in after if k not in keys] if isinstance(after, dict) else []
        order.append(keys.index(part) if part in keys else len(keys))
        before = before.get(part) if isinstance(before, dict) else None
        after = after.get(part) if isinstance(after, dict) else None
    return tuple(order)


def _item(value: Any, index: int) -> Any:
    return value[index] if isinstance(value, Sequence) and 0 <= index < len(value) else None


def _whole(change: str, res: ResourceState) -> list[PropertyChange]:
    """An added or removed resource lists its top-level properties, so the diff shows them."""
    props = res.current_properties
    return [
        PropertyChange(
            _pointer([k]),
            change,
            props[k] if change == "removed" else None,
            props[k] if change == "added" else None,
        )
        for k in props
    ]
