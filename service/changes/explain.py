"""Human-readable explanations of a planned change, and of any data the assistant asks about.

The explanation of a change is what the user approves and what the lineage entry keeps, so it
is written from redacted values (no secret ever appears in it).
"""

from __future__ import annotations

import json
from typing import Any

from ccstate.service.changes.tagging import is_default_tag

MAX_VALUE_CHARS = 120
MAX_ITEMS = 20


def explain_create(
    type_name: str, properties: dict[str, Any], *, user_intent: str = "", region: str = ""
) -> str:
    lines = [f"## Create {type_name}" + (f" in {region}" if region else "")]
    lines += _intent(user_intent)
    lines.append(f"The new resource will have {len(properties)} properties:")
    lines += _describe_properties(properties)
    lines += _notes("create")
    return "\n".join(lines)


def explain_update(
    type_name: str,
    identifier: str,
    patch: list[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    user_intent: str = "",
) -> str:
    lines = [f"## Update {type_name} '{identifier}'"]
    lines += _intent(user_intent)
    lines.append(f"The patch has {len(patch)} operation(s):")
    for op in patch[:MAX_ITEMS]:
        lines.append("- " + _describe_patch_op(op))
    if len(patch) > MAX_ITEMS:
        lines.append(f"- ... and {len(patch) - MAX_ITEMS} more")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        lines.append("")
        lines.append("Properties that change:")
        for key in changed[:MAX_ITEMS]:
            lines.append(f"- **{key}**: {_short(before.get(key))} -> {_short(after.get(key))}")
    lines += _notes("update")
    return "\n".join(lines)


def explain_delete(
    type_name: str, identifier: str, properties: dict[str, Any], *, user_intent: str = ""
) -> str:
    lines = [f"## Delete {type_name} '{identifier}'"]
    lines += _intent(user_intent)
    lines.append("The resource and its data will be removed from AWS. It has these properties:")
    lines += _describe_properties(properties)
    lines += _notes("delete")
    return "\n".join(lines)


def explain_content(content: Any, *, context: str = "", user_intent: str = "") -> str:
    """An explanation of arbitrary data (no token involved)."""
    lines = [f"## {context}" if context else f"## Data ({type(content).__name__})"]
    lines += _intent(user_intent)
    if isinstance(content, dict):
        lines.append(f"An object with {len(content)} keys:")
        lines += _describe_properties(content)
    elif isinstance(content, list):
        lines.append(f"A list of {len(content)} items:")
        lines += [f"- {_short(item)}" for item in content[:MAX_ITEMS]]
        if len(content) > MAX_ITEMS:
            lines.append(f"- ... and {len(content) - MAX_ITEMS} more")
    else:
        lines.append(_short(content, limit=2000))
    return "\n".join(lines)


def _intent(user_intent: str) -> list[str]:
    return [f"**Why:** {user_intent}", ""] if user_intent else [""]


def _describe_properties(properties: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in list(properties.items())[:MAX_ITEMS]:
        if key == "Tags" and isinstance(value, list):
            lines.append(f"- **Tags** ({len(value)}):")
            for tag in value[:MAX_ITEMS]:
                if isinstance(tag, dict):
                    mark = " (default management tag)" if is_default_tag(tag.get("Key")) else ""
                    lines.append(f"  - {tag.get('Key')} = {_short(tag.get('Value'))}{mark}")
        else:
            lines.append(f"- **{key}**: {_short(value)}")
    if len(properties) > MAX_ITEMS:
        lines.append(f"- ... and {len(properties) - MAX_ITEMS} more")
    return lines


def _describe_patch_op(op: dict[str, Any]) -> str:
    verb = op.get("op")
    path = op.get("path")
    if verb in {"add", "replace", "test"}:
        return f"{verb} {path} = {_short(op.get('value'))}"
    if verb in {"move", "copy"}:
        return f"{verb} {op.get('from')} to {path}"
    return f"{verb} {path}"


def _notes(operation: str) -> list[str]:
    notes = {
        "create": "Creating it may incur AWS charges. Default management tags mark it as "
        "managed by this server.",
        "update": "Only the operations above are applied; nothing else about the resource changes.",
        "delete": "Deletion cannot be undone; its history stays in the state.",
    }
    return ["", f"_{notes[operation]}_"]


def _short(value: Any, *, limit: int = MAX_VALUE_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
