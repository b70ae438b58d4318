"""The graph as JSON, Mermaid, Graphviz DOT and plain text.

Arrows point from a dependency to what depends on it (``key --> bucket --> role``): the order
things are created in. Labels are the JSON pointer the dependent names it through.
"""

from __future__ import annotations

import json
from typing import Any

from ccstate.service.graph.model import Edge, GraphData, Node

FORMATS = ("text", "json", "mermaid", "dot")


def to_json(data: GraphData) -> dict[str, Any]:
    return data.to_dict()


def _label(edge: Edge) -> str:
    return f"{edge.provenance}: {edge.via}"


def to_mermaid(data: GraphData) -> str:
    ids = {node.identifier: f"n{i}" for i, node in enumerate(data.nodes)}
    lines = ["flowchart LR"]
    for node in data.nodes:
        text = f"{node.identifier}<br/>{node.resource_type}"
        lines.append(f'    {ids[node.identifier]}["{_mermaid_text(text)}"]')
    for edge in data.edges:
        lines.append(
            f'    {ids[edge.dependency]} -->|"{_mermaid_text(_label(edge))}"| {ids[edge.dependent]}'
        )
    if data.focus is not None and data.focus in ids:
        lines.append(f"    style {ids[data.focus]} stroke-width:3px")
    for number, cycle in enumerate(data.cycles, start=1):
        lines.append(f"    %% cycle {number}: {cycle.describe()}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid has no backslash escapes; quotes and angle brackets become entity codes."""
    return (
        text.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<br/>", "\0")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\0", "<br/>")
    )


def to_dot(data: GraphData) -> str:
    lines = ["digraph dependencies {", "    rankdir=LR;", "    node [shape=box];"]
    for node in data.nodes:
        extra = ", penwidth=3" if node.identifier == data.focus else ""
        lines.append(f'    {_dot_id(node.identifier)} [label="{_dot_label(node)}"{extra}];')
    for edge in data.edges:
        style = ", style=dashed" if edge.provenance == "explicit" else ""
        lines.append(
            f"    {_dot_id(edge.dependency)} -> {_dot_id(edge.dependent)} "
            f'[label="{_dot_escape(_label(edge))}"{style}];'
        )
    for number, cycle in enumerate(data.cycles, start=1):
        lines.append(f"    // cycle {number}: {cycle.describe()}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dot_id(identifier: str) -> str:
    return f'"{_dot_escape(identifier)}"'


def _dot_label(node: Node) -> str:
    return _dot_escape(node.identifier) + "\\n" + _dot_escape(node.resource_type)


def to_text(data: GraphData) -> str:
    if not data.nodes:
        return "No managed resources.\n"
    depends: dict[str, list[Edge]] = {n.identifier: [] for n in data.nodes}
    for edge in data.edges:
        depends[edge.dependent].append(edge)
    lines: list[str] = []
    if data.focus is not None:
        lines.append(f"Neighbourhood of {data.focus} (what it depends on, and what depends on it)")
    for node in data.nodes:
        marker = "* " if node.identifier == data.focus else ""
        lines.append(f"{marker}{node.identifier} ({node.resource_type})")
        for edge in depends[node.identifier]:
            lines.append(f"    depends on {edge.dependency}  [{edge.provenance} via {edge.via}]")
    lines.append(f"{len(data.nodes)} resource(s), {len(data.edges)} dependency edge(s).")
    for cycle in data.cycles:
        lines.append(f"Cycle: {cycle.describe()}")
    for dependent, target in data.unresolved:
        lines.append(f"Unresolved: {dependent} depends on {target}, which is not in the state.")
    return "\n".join(lines) + "\n"


def render(data: GraphData, fmt: str) -> str:
    """``fmt`` is one of ``FORMATS``."""
    if fmt == "json":
        return json.dumps(to_json(data), indent=2, sort_keys=True) + "\n"
    if fmt == "mermaid":
        return to_mermaid(data)
    if fmt == "dot":
        return to_dot(data)
    return to_text(data)
