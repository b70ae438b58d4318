"""Keep a trace of write-only properties, which Cloud Control's GetResource never returns.

A change knows the write-only values it wrote (the create's properties, the update's patch
over the recorded ones); the read-back does not. ``carry_write_only`` puts them back into what
is recorded, where redaction turns them into salted fingerprints. So the state knows THAT a
write-only value changed (a rollback can say it cannot restore it) without storing it.
Paths with a ``*`` (inside arrays) are not carried.
"""

from __future__ import annotations

import copy
from typing import Any

from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.validation import apply_patch
from ccstate.service.errors import InvalidInput

_MISSING = object()


def carry_write_only(
    schema: ResourceSchema, written: dict[str, Any] | None, read: dict[str, Any]
) -> dict[str, Any]:
    """``read`` plus each write-only value of ``written`` that ``read`` lacks."""
    if not written:
        return read
    out = copy.deepcopy(read)
    for pointer in sorted(schema.write_only, key=len):
        segments = [s for s in pointer.split("/") if s]
        if not segments or "*" in segments:
            continue
        value = _get(written, segments)
        if value is _MISSING or _get(out, segments) is not _MISSING:
            continue
        _put(out, segments, copy.deepcopy(value))
    return out


def written_by_patch(
    recorded: dict[str, Any] | None, patch: list[dict[str, Any]] | None
) -> dict[str, Any] | None:
    """The recorded properties with ``patch`` applied: the write-only values after an update
    (unpatched ones stay the fingerprints they were). None when the patch does not apply."""
    if not patch:
        return recorded
    try:
        return apply_patch(recorded or {}, patch)
    except InvalidInput:
        return None


def _get(node: Any, segments: list[str]) -> Any:
    for segment in segments:
        if not isinstance(node, dict) or segment not in node:
            return _MISSING
        node = node[segment]
    return node


def _put(node: dict[str, Any], segments: list[str], value: Any) -> None:
    for segment in segments[:-1]:
        child = node.get(segment)
        if not isinstance(child, dict):
            child = node[segment] = {}
        node = child
    node[segments[-1]] = value
