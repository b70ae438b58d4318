"""Readable renderings of state data for people: rich tables and short summaries.

Every function takes the same plain dicts the JSON output prints, so what a person sees and what
a script parses never disagree. Used by the CLI commands and by the demo.

The resource list is plain aligned text, not a rich Table: rich measures every cell to lay out a
table, 11 s for 10,000 rows (docs/performance.md), and a listing needs no borders or wrapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccstate.output import to_json_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

RESOURCE_COLUMNS = (
    ("Identifier", "identifier"),
    ("Type", "resource_type"),
    ("Region", "region"),
    ("Last modified", "last_modified"),
    ("Drift", "drift"),
)
COLUMN_GAP = "  "


def short(value: str | None, width: int = 60) -> str:
    if not value:
        return ""
    return value if len(value) <= width else value[: width - 1] + "…"


def when(timestamp: str | None) -> str:
    """'2025-01-07T10:30:00.123456Z' -> '2025-01-07 10:30:00'."""
    if not timestamp:
        return ""
    return timestamp.replace("T", " ")[:19]


def resources_text(data: dict[str, Any], *, more_hint: str = "") -> str:
    """The resource list as aligned columns: a title, a header, one line per resource, and,
    when ``data['total']`` exceeds the rows shown, a last line saying how many more there are
    (``more_hint`` says how to see them)."""
    shown, total = data["resources"], data.get("total", len(data["resources"]))
    where = f"workspace '{data['workspace']}' at serial {data['serial']}"
    if not total:
        return f"No resources in {where}.\n"
    title = f"{where[0].upper()}{where[1:]}: {total:,} resource(s)" + (
        f", first {len(shown):,} shown" if len(shown) < total else ""
    )
    columns = [
        [head] + [(when if key == "last_modified" else str)(res.get(key) or "") for res in shown]
        for head, key in RESOURCE_COLUMNS
    ]
    line = COLUMN_GAP.join(f"{{:<{max(map(len, column))}}}" for column in columns)
    lines = [title, "", *(line.format(*row).rstrip() for row in zip(*columns, strict=True))]
    if len(shown) < total:
        lines += ["", f"... and {total - len(shown):,} more. {more_hint}".rstrip()]
    return "\n".join(lines) + "\n"


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
    from rich.table import Table

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
    from rich.table import Table

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
    from rich.table import Table

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
