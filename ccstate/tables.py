"""Readable renderings of state data for people: rich tables and short summaries.

Every function takes the same plain dicts the JSON output prints, so what a person sees and what
a script parses never disagree. Used by the CLI commands and by the demo.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ccstate.output import to_json_text


def short(value: str | None, width: int = 60) -> str:
    if not value:
        return ""
    return value if len(value) <= width else value[: width - 1] + "…"


def when(timestamp: str | None) -> str:
    """'2025-01-07T10:30:00.123456Z' -> '2025-01-07 10:30:00'."""
    if not timestamp:
        return ""
    return timestamp.replace("T", " ")[:19]


def render_resources(console: Console, data: dict[str, Any]) -> None:
    if not data["resources"]:
        console.print(
            f"No resources in workspace '{data['workspace']}' at serial {data['serial']}."
        )
        return
    console.print(resources_table(data))


def resources_table(data: dict[str, Any]) -> Table:
    table = Table(
        title=f"Workspace '{data['workspace']}' at serial {data['serial']}: "
        f"{len(data['resources'])} resource(s)",
        title_justify="left",
    )
    for column in ("Identifier", "Type", "Region", "Last modified", "Drift"):
        table.add_column(column, overflow="fold")
    for res in data["resources"]:
        table.add_row(
            res["identifier"],
            res["resource_type"],
            res.get("region") or "",
            when(res.get("last_modified")),
            res.get("drift") or "",
        )
    return table


def render_resource(console: Console, data: dict[str, Any]) -> None:
    res = data["resource"]
    console.print(f"{res['identifier']}  ({res['resource_type']})")
    console.print(f"  workspace      {data['workspace']}, serial {data['serial']}")
    for label, key, is_time in (
        ("region", "region", False),
        ("account", "account_id", False),
        ("created", "created_at", True),
        ("last modified", "last_modified", True),
        ("managed by", "managed_by", False),
    ):
        if res.get(key):
            console.print(f"  {label:<14} {when(res[key]) if is_time else res[key]}")
    drift = (res.get("drift_status") or {}).get("status")
    if drift:
        console.print(f"  {'drift':<14} {drift}")
    deps = res.get("dependencies") or {}
    if deps.get("depends_on"):
        console.print(f"  {'depends on':<14} {', '.join(deps['depends_on'])}")
    console.print("  properties:")
    for line in to_json_text(res.get("current_properties") or {}).splitlines():
        console.print(f"    {line}", markup=False)


def history_table(data: dict[str, Any]) -> Table:
    table = Table(
        title=f"History of {data['identifier']} ({len(data['entries'])} entries, oldest first)",
        title_justify="left",
    )
    for column in ("Serial", "Time", "Operation", "Outcome", "Who", "Why", "Token"):
        table.add_column(column, overflow="fold")
    for entry in data["entries"]:
        table.add_row(
            str(entry.get("serial") or ""),
            when(entry.get("timestamp")),
            entry.get("operation") or "",
            entry.get("outcome") or "",
            entry.get("user") or entry.get("aws_session") or "",
            short(entry.get("user_intent") or entry.get("explanation")),
            short(entry.get("execution_token"), 12),
        )
    return table


def render_versions(console: Console, data: dict[str, Any]) -> None:
    """A heading line, then the table; a sentence when there is nothing to list."""
    shown = len(data["versions"])
    if not shown:
        console.print(
            f"Workspace '{data['workspace']}' has no versions yet: nothing has been recorded.",
            markup=False,
        )
        return
    console.print(
        f"Versions of workspace '{data['workspace']}' (head {data['head']}, newest {shown} shown)",
        markup=False,
    )
    console.print(versions_table(data))


def versions_table(data: dict[str, Any]) -> Table:
    table = Table()
    for column in ("Serial", "Time", "Who", "Why", "Summary"):
        table.add_column(column, overflow="fold")
    for version in data["versions"]:
        table.add_row(
            str(version["serial"]),
            when(version["committed_at"]),
            version.get("who") or "",
            short(version.get("why")),
            short(version.get("summary"), 70),
        )
    return table


def render_diff(console: Console, data: dict[str, Any]) -> None:
    counts = data["summary"]
    console.print(
        f"Workspace '{data['workspace']}': serial {data['from']} -> {data['to']}: "
        f"{counts['added']} added, {counts['changed']} changed, {counts['removed']} removed"
    )
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for res in data["resources"]:
        console.print(
            f"{marks[res['change']]} {res['identifier']} ({res['resource_type']})", markup=False
        )
        for prop in res["properties"]:
            console.print(f"    {_property_line(prop)}", markup=False)


def _property_line(prop: dict[str, Any]) -> str:
    def compact(value: Any) -> str:
        return short(to_json_text(value).replace("\n", " ").replace("  ", ""), 70)

    if prop["change"] == "added":
        return f"+ {prop['path']} = {compact(prop['after'])}"
    if prop["change"] == "removed":
        return f"- {prop['path']} (was {compact(prop['before'])})"
    return f"~ {prop['path']}: {compact(prop['before'])} -> {compact(prop['after'])}"


def locks_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"{len(data['locks'])} lock(s)", title_justify="left")
    for column in ("Id", "Workspace", "Scope", "Who", "Operation", "Created", "Expires", "State"):
        table.add_column(column, overflow="fold")
    for lock in data["locks"]:
        scope = lock["resource"] if lock["scope"] == "resource" else "whole workspace"
        table.add_row(
            lock["id"],
            lock["workspace"],
            scope,
            lock["who"],
            lock["operation"],
            when(lock["created"]),
            when(lock["expires"]),
            "expired" if lock["expired"] else "held",
        )
    return table
