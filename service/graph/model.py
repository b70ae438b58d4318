"""What the dependency graph is made of: nodes (managed resources), edges, cycles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Provenance = Literal["schema", "value", "explicit"]
EXPLICIT_VIA = "depends_on"
IDENTIFIER = "identifier"  # the attribute an edge matched when it matched the identifier itself


@dataclass(frozen=True)
class Node:
    """One managed resource as the graph sees it. ``depends_on``: what the user said it
    depends on (the resource's recorded ``dependencies.depends_on``)."""

    identifier: str
    resource_type: str
    properties: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Edge:
    """``dependent`` depends on ``dependency``: the value at ``via`` (a JSON pointer into the
    dependent's properties) names the dependency's ``attribute`` (``identifier``, ``/Arn``,
    ``/QueueUrl``...). ``prefix``: the value is not that value itself but an ARN under it
    (``arn:aws:s3:::bucket/*``) or an ARN pattern matching it (``...:secret:db-creds-*``)."""

    dependent: str
    dependency: str
    provenance: Provenance
    via: str
    attribute: str = IDENTIFIER
    prefix: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.dependency,
            "to": self.dependent,
            "dependent": self.dependent,
            "dependency": self.dependency,
            "provenance": self.provenance,
            "via": self.via,
            "attribute": self.attribute,
            "prefix": self.prefix,
        }


@dataclass(frozen=True)
class Cycle:
    """Resources that depend on each other in a ring; ``path`` walks it (first == last)."""

    members: tuple[str, ...]
    path: tuple[str, ...]

    def describe(self) -> str:
        return " -> ".join(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"members": list(self.members), "path": list(self.path)}


@dataclass(frozen=True)
class GraphData:
    """A read of the graph (whole, or one resource's neighbourhood), ready to render."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    cycles: tuple[Cycle, ...]
    focus: str | None = None
    unresolved: tuple[tuple[str, str], ...] = ()  # (dependent, depends_on id not in state)

    def to_dict(self) -> dict[str, Any]:
        return {
            "focus": self.focus,
            "nodes": [
                {"identifier": n.identifier, "resource_type": n.resource_type} for n in self.nodes
            ],
            "edges": [e.to_dict() for e in self.edges],
            "cycles": [c.to_dict() for c in self.cycles],
            "unresolved_depends_on": [
                {"dependent": d, "depends_on": target} for d, target in self.unresolved
            ],
        }
