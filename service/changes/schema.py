"""What the domain needs to know of a CloudFormation resource provider schema.

Property paths are JSON pointers into the resource model, as the schema writes them without the
``/properties`` prefix: ``/Arn``, ``/Tags``, ``/VersioningConfiguration/Status``,
``/SecurityGroupIngress/*/CidrIp`` (``*`` stands for any array index or map key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _strip(pointer: str) -> str:
    prefix = "/properties"
    return pointer[len(prefix) :] if pointer.startswith(prefix) else pointer


@dataclass(frozen=True)
class RelationshipRef:
    """A property (``path``, ``*`` for any index or key) whose value is another resource's
    ``property_path`` of type ``type_name``: the schema's ``relationshipRef``."""

    path: str
    type_name: str
    property_path: str


@dataclass(frozen=True)
class ResourceSchema:
    type_name: str
    primary_identifier: tuple[str, ...] = ()
    read_only: frozenset[str] = frozenset()
    write_only: frozenset[str] = frozenset()
    create_only: frozenset[str] = frozenset()
    # Array property paths whose order does not matter (``insertionOrder: false``).
    unordered_arrays: frozenset[str] = frozenset()
    tagging: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)  # top-level property definitions
    relationships: tuple[RelationshipRef, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ResourceSchema:
        """Build from a provider schema document (the JSON DescribeType returns)."""

        def paths(key: str) -> frozenset[str]:
            return frozenset(_strip(p) for p in doc.get(key, []))

        return cls(
            type_name=doc["typeName"],
            primary_identifier=tuple(_strip(p) for p in doc.get("primaryIdentifier", [])),
            read_only=paths("readOnlyProperties"),
            write_only=paths("writeOnlyProperties"),
            create_only=paths("createOnlyProperties"),
            unordered_arrays=frozenset(_unordered_arrays(doc)),
            tagging=dict(doc.get("tagging", {})),
            properties=dict(doc.get("properties", {})),
            relationships=tuple(_relationship_refs(doc)),
            raw=doc,
        )

    @property
    def tags_property(self) -> str | None:
        """The top-level property that carries tags (``/Tags`` for most types), if taggable."""
        if self.tagging.get("taggable") is False:
            return None
        prop = self.tagging.get("tagProperty")
        if prop:
            return _strip(prop)
        return "/Tags" if "Tags" in self.properties else None


def _unordered_arrays(doc: dict[str, Any]) -> list[str]:
    """Walk property definitions (following local $refs) for arrays with insertionOrder false."""
    found: list[str] = []

    def visit(raw: dict[str, Any], node: dict[str, Any], path: str) -> None:
        if (node.get("type") == "array" or "items" in node) and node.get("insertionOrder") is False:
            found.append(path)

    _walk_properties(doc, visit)
    return found


def _relationship_refs(doc: dict[str, Any]) -> list[RelationshipRef]:
    """Every property that names another resource through ``relationshipRef``."""
    found: list[RelationshipRef] = []

    def visit(raw: dict[str, Any], node: dict[str, Any], path: str) -> None:
        ref = raw.get("relationshipRef") or node.get("relationshipRef")
        if isinstance(ref, dict) and ref.get("typeName") and ref.get("propertyPath"):
            found.append(RelationshipRef(path, ref["typeName"], _strip(ref["propertyPath"])))

    _walk_properties(doc, visit)
    return list(dict.fromkeys(found))


def _walk_properties(doc: dict[str, Any], visit: Any) -> None:
    """Call ``visit(raw, resolved, path)`` on every property definition (as written, and with
    local $refs followed)."""
    definitions = doc.get("definitions", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in node and seen < 20:
            ref = node["$ref"]
            if not ref.startswith("#/definitions/"):
                break
            node = definitions.get(ref.split("/")[-1], {})
            seen += 1
        return node

    def walk(node: dict[str, Any], path: str, depth: int) -> None:
        if depth > 12:
            return
        raw, node = node, resolve(node)
        visit(raw, node, path)
        if node.get("type") == "array" or "items" in node:
            items = node.get("items")
            if isinstance(items, dict):
                walk(items, path + "/*", depth + 1)
        for name, child in node.get("properties", {}).items():
            if isinstance(child, dict):
                walk(child, f"{path}/{name}", depth + 1)
        for child in node.get("patternProperties", {}).values():  # map values: any key
            if isinstance(child, dict):
                walk(child, path + "/*", depth + 1)
        for key in ("oneOf", "anyOf", "allOf"):
            for child in node.get(key, []):
                if isinstance(child, dict):
                    walk(child, path, depth + 1)

    for name, prop in doc.get("properties", {}).items():
        if isinstance(prop, dict):
            walk(prop, f"/{name}", 0)
