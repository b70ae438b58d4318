"""Default management tags: every resource ccstate creates says who manages it.

The three keys the AWS Labs Cloud Control MCP server adds, so tag-based inventories and policies
written for it keep working: ``MANAGED_BY=CCAPI-MCP-SERVER``, ``MCP_SERVER_SOURCE_CODE`` and
``MCP_SERVER_VERSION`` (naming ccstate and its version, not the AWS Labs code). They go into the
tags property the schema names (a list of ``{"Key", "Value"}`` for most types, a map for a few),
unless the caller set the key already or ``DEFAULT_TAGS=disabled``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ccstate.service import __version__
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.state.model import MANAGED_BY

SOURCE_CODE = "ccstate"
DEFAULT_TAGS = {
    "MANAGED_BY": MANAGED_BY,
    "MCP_SERVER_SOURCE_CODE": SOURCE_CODE,
    "MCP_SERVER_VERSION": __version__,
}
DISABLED_VALUES = {"disabled", "false", "off", "0", "no"}


def default_tags_enabled(env: Mapping[str, str]) -> bool:
    return env.get("DEFAULT_TAGS", "enabled").strip().lower() not in DISABLED_VALUES


def with_default_tags(schema: ResourceSchema, properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``properties`` carrying the default tags (unchanged if the type has no tags)."""
    pointer = schema.tags_property
    if pointer is None or pointer.count("/") != 1:
        return properties
    name = pointer.strip("/")
    out = copy.deepcopy(properties)
    current = out.get(name)
    if _is_map(schema, name, current):
        tags = dict(current or {})
        for key, value in DEFAULT_TAGS.items():
            tags.setdefault(key, value)
        out[name] = tags
        return out
    tags_list = list(current or [])
    present = {t.get("Key") for t in tags_list if isinstance(t, dict)}
    tags_list += [{"Key": k, "Value": v} for k, v in DEFAULT_TAGS.items() if k not in present]
    out[name] = tags_list
    return out


def is_default_tag(key: object) -> bool:
    return key in DEFAULT_TAGS


def _is_map(schema: ResourceSchema, name: str, current: object) -> bool:
    if isinstance(current, dict):
        return True
    if isinstance(current, list):
        return False
    definition = schema.properties.get(name, {})
    ref = definition.get("$ref", "")
    if ref.startswith("#/definitions/"):
        definition = schema.raw.get("definitions", {}).get(ref.split("/")[-1], {})
    return definition.get("type") == "object"
