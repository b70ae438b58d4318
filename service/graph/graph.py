"""The dependency graph between managed resources, kept current one change at a time.

Edges come from three sources (``Edge.provenance``):

- ``schema``: a property the resource provider schema marks with ``relationshipRef`` holds the
  target type's property value;
- ``value``: a string (also inside a JSON document such as a policy) equals another resource's
  identifier or identifying value (primary identifier, read-only attribute: ``Arn``, ``KeyId``,
  ``QueueUrl``...), or is an ARN under another resource's ARN (``arn:aws:s3:::bucket/*``), or
  an ARN pattern that matches exactly one (``...:secret:db-creds-*``). A plain name (not an
  ARN, URL, host name or AWS id) only counts where the property's name hints at the type
  (``BucketName``, ``TABLE_NAME``), and a value two resources claim equally names neither;
- ``explicit``: the user's ``depends_on``.

Indexes, all keyed by value, make a build O(total property strings) and an update cost what the
changed resources and the resources that mention their values hold, whatever the state's size:

- ``_keys``: identifying value -> resources it identifies (with the attribute and its rank);
- ``_ref_index``: (type, property path) -> value -> resources, for relationshipRef targets;
- ``_children``: ARN parent (``arn:aws:secretsmanager:r:a:secret:``) -> the ARNs under it,
  where an ARN pattern (``...:secret:db-creds-*``) is matched;
- ``_mentioned_by``: every value a resource looks up -> the resources that look it up. When a
  resource's identifying values change, exactly those resources are extracted again.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ccstate.service.changes.schema import RelationshipRef, ResourceSchema
from ccstate.service.graph.cycles import find_cycles
from ccstate.service.graph.model import EXPLICIT_VIA, IDENTIFIER, Cycle, Edge, GraphData, Node
from ccstate.service.graph.values import (
    MIN_NAME_LENGTH,
    arn_parent,
    escape,
    hint_words,
    is_arn,
    is_pattern,
    is_strong,
    key_forms,
    lookups,
    pattern_regex,
    property_strings,
    type_words,
)

SchemaLookup = Callable[[str], ResourceSchema | None]
# Without a schema, top-level properties with these endings identify the resource.
_IDENTIFYING_SUFFIXES = ("Arn", "Url", "Id")
_RANK_IDENTIFIER, _RANK_PRIMARY, _RANK_ATTRIBUTE = 0, 1, 2
_GLOB = "glob:"  # mention-index namespace: patterns are looked up by their ARN parent


@dataclasses.dataclass(frozen=True)
class _Key:
    identifier: str
    attribute: str
    rank: int
    strong: bool


class DependencyGraph:
    """Pure and synchronous; ``schema_for(type_name)`` returns a schema or None (then only
    identifiers and top-level ``*Arn``/``*Url``/``*Id`` values identify a resource)."""

    def __init__(self, schema_for: SchemaLookup | None = None) -> None:
        self._schema_for = schema_for or (lambda _type: None)
        self._schemas: dict[str, ResourceSchema | None] = {}
        self._nodes: dict[str, Node] = {}
        self._strings: dict[str, list[tuple[str, str]]] = {}
        self._by_type: dict[str, set[str]] = defaultdict(set)
        self._keys: dict[str, dict[str, _Key]] = defaultdict(dict)
        self._keys_of: dict[str, list[str]] = {}
        self._children: dict[str, set[str]] = defaultdict(set)  # ARN parent -> ARN key values
        self._tracked: dict[str, set[str]] = defaultdict(set)  # type -> ref target paths
        self._ref_index: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        self._ref_values_of: dict[str, list[tuple[tuple[str, str], str]]] = {}
        self._mentioned_by: dict[str, set[str]] = defaultdict(set)
        self._mentions_of: dict[str, set[str]] = {}
        self._out: dict[str, list[Edge]] = {}
        self._in: dict[str, set[Edge]] = defaultdict(set)
        self._cycles: tuple[Cycle, ...] | None = None

    # ================================================================== building and updating

    @classmethod
    def build(
        cls, nodes: Iterable[Node], schema_for: SchemaLookup | None = None
    ) -> DependencyGraph:
        graph = cls(schema_for)
        graph.apply(upserts=nodes)
        return graph

    def apply(self, upserts: Iterable[Node] = (), removals: Iterable[str] = ()) -> set[str]:
        """Apply one commit's effect: resources added or changed (``upserts``) and removed.
        Returns the resources whose outgoing edges were extracted again."""
        upserts = list({n.identifier: n for n in upserts}.values())  # the last one counts
        changed = {n.identifier for n in upserts} | set(removals)
        affected: set[str] = set()
        for identifier in changed:
            if identifier in self._nodes:
                affected |= self._mentioners(identifier)
                self._unindex(identifier)
        for node in upserts:
            self._index(node)
        for node in upserts:
            affected |= self._mentioners(node.identifier)
        redo = (affected | changed) & self._nodes.keys()
        for identifier in sorted(redo):
            self._extract(identifier)
        self._cycles = None
        return redo

    def _mentioners(self, identifier: str) -> set[str]:
        found: set[str] = set()
        for value in self._keys_of.get(identifier, []):
            found |= self._mentioned_by.get(value, set())
            if is_arn(value):
                found |= self._mentioned_by.get(_GLOB + arn_parent(value), set())
        for _ref, value in self._ref_values_of.get(identifier, []):
            found |= self._mentioned_by.get(value, set())
        return found

    def _schema(self, type_name: str) -> ResourceSchema | None:
        if type_name not in self._schemas:
            schema = self._schemas[type_name] = self._schema_for(type_name)
            for ref in schema.relationships if schema else ():
                self._track(ref)
        return self._schemas[type_name]

    def _track(self, ref: RelationshipRef) -> None:
        """Index ``ref``'s target property from now on, for the resources already known too."""
        if ref.property_path in self._tracked[ref.type_name]:
            return
        self._tracked[ref.type_name].add(ref.property_path)
        for identifier in self._by_type.get(ref.type_name, set()):
            self._index_ref_target(identifier, ref.type_name, ref.property_path)

    # ------------------------------------------------------------------ indexing one resource

    def _index(self, node: Node) -> None:
        identifier = node.identifier
        schema = self._schema(node.resource_type)
        self._nodes[identifier] = Node(identifier, node.resource_type, {}, node.depends_on)
        self._by_type[node.resource_type].add(identifier)
        strings = list(property_strings(node.properties))
        self._strings[identifier] = strings
        self._keys_of[identifier] = []
        for value, key in _identifying(node, schema):
            self._add_key(value, key)
        self._ref_values_of[identifier] = []
        for path in self._tracked.get(node.resource_type, set()):
            self._index_ref_target(identifier, node.resource_type, path)
        mentions = {form for _pointer, value in strings for form in lookups(value)}
        mentions |= {_GLOB + arn_parent(form) for form in mentions if is_pattern(form)}
        mentions |= set(node.depends_on)
        self._mentions_of[identifier] = mentions
        for value in mentions:
            self._mentioned_by[value].add(identifier)

    def _add_key(self, value: str, key: _Key) -> None:
        if is_arn(value):
            self._children[arn_parent(value)].add(value)
        present = self._keys[value].get(key.identifier)
        if present is None or key.rank < present.rank:
            self._keys[value][key.identifier] = key
        self._keys_of[key.identifier].append(value)

    def _index_ref_target(self, identifier: str, type_name: str, path: str) -> None:
        value = _string_at(self._strings[identifier], path)
        if value is not None:
            self._ref_index[(type_name, path)][value].add(identifier)
            self._ref_values_of[identifier].append(((type_name, path), value))

    def _unindex(self, identifier: str) -> None:
        node = self._nodes.pop(identifier)
        self._by_type[node.resource_type].discard(identifier)
        self._drop_outgoing(identifier)
        for value in self._keys_of.pop(identifier, []):
            keys = self._keys.get(value)
            if keys is not None:
                keys.pop(identifier, None)
                if not keys:
                    del self._keys[value]
                    self._forget_child(value)
        for ref, value in self._ref_values_of.pop(identifier, []):
            holders = self._ref_index[ref].get(value)
            if holders is not None:
                holders.discard(identifier)
                if not holders:
                    del self._ref_index[ref][value]
        for value in self._mentions_of.pop(identifier, set()):
            holders = self._mentioned_by.get(value)
            if holders is not None:
                holders.discard(identifier)
                if not holders:
                    del self._mentioned_by[value]
        self._strings.pop(identifier, None)

    def _forget_child(self, value: str) -> None:
        if not is_arn(value):
            return
        parent = arn_parent(value)
        siblings = self._children.get(parent)
        if siblings is not None:
            siblings.discard(value)
            if not siblings:
                del self._children[parent]

    def _drop_outgoing(self, identifier: str) -> None:
        for edge in self._out.pop(identifier, []):
            incoming = self._in.get(edge.dependency)
            if incoming is not None:
                incoming.discard(edge)
                if not incoming:
                    del self._in[edge.dependency]

    # ------------------------------------------------------------------ extraction

    def _extract(self, identifier: str) -> None:
        self._drop_outgoing(identifier)
        node = self._nodes[identifier]
        schema = self._schemas.get(node.resource_type)
        refs = schema.relationships if schema else ()
        edges: dict[str, Edge] = {}
        for pointer, value in self._strings[identifier]:
            edge = self._by_schema(identifier, pointer, value, refs) or self._by_value(
                identifier, pointer, value
            )
            if edge is not None:
                edges[pointer] = edge
        found = list(edges.values())
        for target in dict.fromkeys(node.depends_on):
            if target in self._nodes:  # naming itself is a cycle of one, reported as such
                found.append(Edge(identifier, target, "explicit", EXPLICIT_VIA))
        self._out[identifier] = found
        for edge in found:
            self._in[edge.dependency].add(edge)

    def _by_schema(
        self, identifier: str, pointer: str, value: str, refs: tuple[RelationshipRef, ...]
    ) -> Edge | None:
        for ref in refs:
            if not _matches(ref.path, pointer):
                continue
            holders = self._ref_index.get((ref.type_name, ref.property_path), {}).get(value)
            others = sorted((holders or set()) - {identifier})
            if len(others) == 1:
                return Edge(identifier, others[0], "schema", pointer, ref.property_path)
        return None

    def _by_value(self, identifier: str, pointer: str, value: str) -> Edge | None:
        hints: set[str] | None = None
        for position, form in enumerate(lookups(value)):
            claims = self._keys.get(form)
            if not claims:
                edge = self._by_pattern(identifier, pointer, form) if is_pattern(form) else None
                if edge is not None:
                    return edge
                continue
            candidates = list(claims.values())
            if not all(k.strong for k in candidates):
                # A plain name counts only where the property's name says what it names.
                hints = hint_words(pointer) if hints is None else hints
                candidates = [
                    k
                    for k in candidates
                    if k.strong
                    or k.identifier == identifier
                    or (len(form) >= MIN_NAME_LENGTH and self._hinted(k, hints))
                ]
            best = _best(candidates)
            if best is None or best.identifier == identifier:
                return None  # shared equally, or the resource's own value: no dependency
            return Edge(identifier, best.identifier, "value", pointer, best.attribute, position > 0)
        return None

    def _by_pattern(self, identifier: str, pointer: str, pattern: str) -> Edge | None:
        """An ARN pattern (``...:secret:db-creds-*``) names the one resource whose ARN it
        matches; several matches name none (a grant over many is no single dependency)."""
        regex = pattern_regex(pattern)
        matched = [
            key
            for value in self._children.get(arn_parent(pattern), set())
            if regex.fullmatch(value)
            for key in self._keys[value].values()
        ]
        best = _best(matched)
        if best is None or best.identifier == identifier:
            return None
        return Edge(identifier, best.identifier, "value", pointer, best.attribute, True)

    def _hinted(self, key: _Key, hints: set[str]) -> bool:
        return bool(hints & type_words(self._nodes[key.identifier].resource_type))

    # ================================================================== reading

    def __contains__(self, identifier: object) -> bool:
        return identifier in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def identifiers(self) -> list[str]:
        return sorted(self._nodes)

    def node(self, identifier: str) -> Node | None:
        return self._nodes.get(identifier)

    def edges(self) -> list[Edge]:
        return sorted(edge for edges in self._out.values() for edge in edges)

    def outgoing(self, identifier: str) -> list[Edge]:
        """The edges from ``identifier`` to what it depends on."""
        return sorted(self._out.get(identifier, []))

    def incoming(self, identifier: str) -> list[Edge]:
        """The edges from resources that depend on ``identifier``."""
        return sorted(self._in.get(identifier, set()))

    def depends_on(self, identifier: str) -> list[str]:
        return sorted({e.dependency for e in self._out.get(identifier, [])})

    def dependents(self, identifier: str) -> list[str]:
        return sorted({e.dependent for e in self._in.get(identifier, set())})

    def unresolved(self) -> list[tuple[str, str]]:
        """Explicit ``depends_on`` naming identifiers that are not in the state."""
        return sorted(
            (identifier, target)
            for identifier, node in self._nodes.items()
            for target in node.depends_on
            if target not in self._nodes
        )

    def cycles(self) -> tuple[Cycle, ...]:
        if self._cycles is None:
            self._cycles = find_cycles(self._nodes, self.depends_on)
        return self._cycles

    def ancestors(self, identifier: str) -> set[str]:
        """Everything ``identifier`` depends on, directly or through others."""
        return _reach(identifier, self.depends_on)

    def descendants(self, identifier: str) -> set[str]:
        """Everything that depends on ``identifier``, directly or through others."""
        return _reach(identifier, self.dependents)

    def data(self, focus: str | None = None) -> GraphData:
        """The whole graph, or ``focus`` with its ancestors and descendants and the edges
        among them."""
        if focus is None:
            keep = set(self._nodes)
        else:
            keep = {focus} | self.ancestors(focus) | self.descendants(focus)
        edges = tuple(e for e in self.edges() if e.dependent in keep and e.dependency in keep)
        cycles = tuple(c for c in self.cycles() if set(c.members) <= keep)
        return GraphData(
            nodes=tuple(self._nodes[i] for i in sorted(keep)),
            edges=edges,
            cycles=cycles,
            focus=focus,
            unresolved=tuple(u for u in self.unresolved() if u[0] in keep),
        )

    def fingerprint(self) -> tuple[tuple[str, ...], tuple[Edge, ...]]:
        """What two graphs must share to be equal (tests compare update with rebuild)."""
        return tuple(sorted(self._nodes)), tuple(self.edges())


def _identifying(node: Node, schema: ResourceSchema | None) -> list[tuple[str, _Key]]:
    """(value, key) for every value that identifies ``node``."""
    found: list[tuple[str, _Key]] = []

    def add(value: Any, attribute: str, rank: int) -> None:
        if isinstance(value, str) and value:
            for form in key_forms(value):
                found.append((form, _Key(node.identifier, attribute, rank, is_strong(form))))

    add(node.identifier, IDENTIFIER, _RANK_IDENTIFIER)
    props = node.properties
    if schema is not None:
        for path in schema.primary_identifier:
            add(_top_level(props, path), path, _RANK_PRIMARY)
        for path in sorted(schema.read_only):
            add(_top_level(props, path), path, _RANK_ATTRIBUTE)
    else:
        for name in sorted(props):
            if name.endswith(_IDENTIFYING_SUFFIXES):
                add(props[name], f"/{escape(name)}", _RANK_ATTRIBUTE)
    return found


def _top_level(props: dict[str, Any], path: str) -> Any:
    name = path.lstrip("/")
    return props.get(name) if "/" not in name else None


def _string_at(strings: list[tuple[str, str]], path: str) -> str | None:
    return next((value for pointer, value in strings if pointer == path), None)


def _matches(pattern: str, pointer: str) -> bool:
    """Whether a schema path (``*`` for any index or key) names ``pointer``."""
    wanted, actual = pattern.split("/"), pointer.split("/")
    return len(wanted) == len(actual) and all(
        w in ("*", a) for w, a in zip(wanted, actual, strict=True)
    )


def _best(candidates: list[_Key]) -> _Key | None:
    """The one resource a value names: the best rank, if no other resource shares it."""
    if not candidates:
        return None
    rank = min(k.rank for k in candidates)
    top = {k.identifier: k for k in candidates if k.rank == rank}
    return next(iter(top.values())) if len(top) == 1 else None


def _reach(start: str, step: Callable[[str], list[str]]) -> set[str]:
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        current = frontier.pop()
        for nxt in step(current):
            if nxt not in seen and nxt != start:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def nodes_from_resources(resources: Mapping[str, Any]) -> list[Node]:
    """Graph nodes for a state's resources (``ResourceState`` values)."""
    return [node_from_resource(res) for res in resources.values()]


def node_from_resource(res: Any) -> Node:
    deps = getattr(res, "dependencies", None)
    return Node(
        identifier=res.identifier,
        resource_type=res.resource_type,
        properties=res.current_properties or {},
        depends_on=tuple(deps.depends_on) if deps is not None else (),
    )
