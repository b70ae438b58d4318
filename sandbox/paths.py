"""Schema property paths (``/Code/ZipFile``, ``/Rules/*/Prefix``) applied to resource models."""

from __future__ import annotations

import copy
from typing import Any

import jsonpointer

_MISSING = object()


def _parts(path: str) -> list[str]:
    return [jsonpointer.unescape(p) for p in path.strip("/").split("/") if p]


def without_paths(model: dict[str, Any], paths: frozenset[str]) -> dict[str, Any]:
    """A copy of ``model`` with every value at ``paths`` removed (``*`` matches any index)."""
    out = copy.deepcopy(model)
    for path in paths:
        _remove(out, _parts(path))
    return out


def _remove(node: Any, parts: list[str]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        children = node if isinstance(node, list) else []
        for child in children:
            _remove(child, rest)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _remove(node[head], rest)
    else:
        del node[head]


def value_at(model: dict[str, Any], path: str) -> Any:
    """The value at a path without wildcards, or a sentinel when absent (compare with ==)."""
    node: Any = model
    for part in _parts(path):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node
