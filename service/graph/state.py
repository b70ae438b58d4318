"""The graph and the state: build it from a view, keep it current commit by commit, fill the
export's ``dependencies``, and the read that the faces call (``load_graph``).

Wiring into the store (after the store split): keep one ``StateGraph`` beside the store's
current ``StateView``; ``await follow(commit, view.resources)`` right after every
``apply_commit(view, commit)`` on that view (a no-op until the graph is first read), and
``await read(view.resources)`` wherever the graph is needed (built on the first read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.errors import CcstateError, NotFound
from ccstate.service.graph.graph import DependencyGraph, node_from_resource, nodes_from_resources
from ccstate.service.graph.model import GraphData
from ccstate.service.ports import SchemaProvider
from ccstate.service.state.model import Commit, Dependencies, ResourceState, StateDocument

log = logging.getLogger(__name__)


class SchemaCache:
    """The schemas the graph reads synchronously, fetched ahead from an async provider.
    A type whose schema cannot be had is remembered as None (identifiers and ``*Arn`` values
    still connect it)."""

    def __init__(self, provider: SchemaProvider | None = None) -> None:
        self._provider = provider
        self._known: dict[str, ResourceSchema | None] = {}

    def __call__(self, type_name: str) -> ResourceSchema | None:
        return self._known.get(type_name)

    def add(self, schema: ResourceSchema) -> None:
        self._known[schema.type_name] = schema

    async def ensure(self, type_names: Iterable[str]) -> None:
        """Fetch the schemas not known yet, all at once (each may wait for DescribeType)."""
        missing = sorted(set(type_names) - self._known.keys())
        found = await asyncio.gather(*(self._fetch(t) for t in missing))
        self._known.update(zip(missing, found, strict=True))

    async def _fetch(self, type_name: str) -> ResourceSchema | None:
        if self._provider is None:
            return None
        try:
            return await self._provider.get_schema(type_name)
        except CcstateError as exc:
            log.info("no schema for %s (%s); the graph uses its values only", type_name, exc)
            return None


class StateGraph:
    """A ``DependencyGraph`` that follows a state: the pure class the store calls on every
    commit, so reading the graph never scans the log."""

    def __init__(self, schemas: SchemaCache | None = None) -> None:
        self.schemas = schemas or SchemaCache()
        self.graph = DependencyGraph(self.schemas)
        self.loaded = False  # until the first read or rebuild, commits are not followed

    def rebuild(self, resources: Mapping[str, ResourceState]) -> None:
        """From scratch (a view loaded from a snapshot, an import). Schemas must be in the
        cache already (``await schemas.ensure(...)``) for relationshipRef edges."""
        self.graph = DependencyGraph.build(nodes_from_resources(resources), self.schemas)
        self.loaded = True

    async def read(self, resources: Mapping[str, ResourceState]) -> DependencyGraph:
        """The graph of ``resources`` (the current view): built on the first read, then kept
        current by ``follow``. A store that never shows the graph never pays for building it."""
        if not self.loaded:
            await self.load(resources)
        return self.graph

    def apply_commit(self, commit: Commit, resources: Mapping[str, ResourceState]) -> set[str]:
        """Follow one commit, given the resources *after* it was applied to the view. Returns
        the resources whose outgoing edges were extracted again. Synchronous: the schemas of
        new types must be in the cache already (``follow`` fetches them first)."""
        if commit.replace_state is not None:
            self.rebuild(resources)
            return set(resources)
        touched = {change.identifier for change in commit.changes}
        upserts = [node_from_resource(resources[i]) for i in sorted(touched) if i in resources]
        removals = [i for i in sorted(touched) if i not in resources and i in self.graph]
        return self.graph.apply(upserts=upserts, removals=removals)

    async def follow(self, commit: Commit, resources: Mapping[str, ResourceState]) -> set[str]:
        """``apply_commit`` after fetching the schemas of the types the commit brings (a type
        the graph has seen is never looked up again, so schemas must come first)."""
        if not self.loaded:
            return set()  # built from the view on the first read instead
        await self.schemas.ensure(self.types_in(commit))
        return self.apply_commit(commit, resources)

    async def load(self, resources: Mapping[str, ResourceState]) -> None:
        """``rebuild`` after fetching the schemas of every type in ``resources``."""
        await self.schemas.ensure(res.resource_type for res in resources.values())
        self.rebuild(resources)

    def types_in(self, commit: Commit) -> set[str]:
        """The types a commit brings, whose schemas ``schemas.ensure`` should fetch first."""
        types = {c.resource_type for c in commit.changes}
        if commit.replace_state is not None:
            for res in commit.replace_state.get("resources", {}).values():
                if isinstance(res, dict) and isinstance(res.get("resource_type"), str):
                    types.add(res["resource_type"])
        return types


def fill_dependencies(doc: StateDocument, graph: DependencyGraph) -> StateDocument:
    """Set every resource's ``dependencies`` in an export document from the graph, in place:
    ``depends_on`` = what it depends on (inferred and explicit, plus explicit names not in the
    state), ``dependents`` = what depends on it. Call it on a freshly built document only: the
    view's own ``dependencies`` hold what the user declared and must stay so."""
    for key, res in doc.resources.items():
        declared = [d for d in res.dependencies.depends_on if d not in graph]
        res.dependencies = Dependencies(
            depends_on=sorted(set(graph.depends_on(key)) | set(declared)),
            dependents=graph.dependents(key),
        )
    return doc


async def build_graph(
    resources: Mapping[str, ResourceState], schemas: SchemaProvider | None
) -> DependencyGraph:
    cache = SchemaCache(schemas)
    await cache.ensure(res.resource_type for res in resources.values())
    return DependencyGraph.build(nodes_from_resources(resources), cache)


async def load_graph(
    resources: Mapping[str, ResourceState],
    schemas: SchemaProvider | None,
    identifier: str | None = None,
) -> GraphData:
    """The graph of a state's resources, or one resource's neighbourhood (ancestors and
    descendants). Raises ``NotFound`` for an identifier not in the state."""
    if identifier and identifier not in resources:
        raise NotFound(
            f"No resource {identifier!r} in the state, so it has no dependency graph.",
            next_step="Check the identifier with ${list_managed}, or omit it for the whole graph.",
        )
    graph = await build_graph(resources, schemas)
    return graph.data(identifier or None)


def graph_payload(data: GraphData) -> dict[str, Any]:
    """What the MCP tool returns: the JSON graph and its Mermaid drawing."""
    from ccstate.service.graph.render import to_json, to_mermaid

    return {"graph": to_json(data), "mermaid": to_mermaid(data)}
