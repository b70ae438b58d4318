"""The graph on a labelled world of read-backs: precision 100%, recall >= 95% (docs/graph.md)."""

from __future__ import annotations

from ccstate.service.graph.graph import DependencyGraph

from tests.unit.graph.labelled import EDGES, NEGATIVES, RESOURCES, evaluate, schema_lookup


def test_the_labelled_set_has_at_least_40_edges() -> None:
    assert len(set(EDGES)) >= 40


def test_precision_is_100_percent_and_recall_at_least_95() -> None:
    result = evaluate()
    assert result["false"] == []
    assert result["precision"] == 1.0
    assert result["recall"] >= 0.95, result["misses"]


def test_nothing_is_drawn_through_labels_coincidences_or_unmanaged_arns() -> None:
    graph = DependencyGraph.build(RESOURCES, schema_lookup())
    drawn = {(e.dependent, e.via) for e in graph.edges()}
    assert not drawn & set(NEGATIVES)


def test_the_dynamodb_key_edges_come_from_the_schemas_relationship_ref() -> None:
    graph = DependencyGraph.build(RESOURCES, schema_lookup())
    kms = [e for e in graph.outgoing("orders") if e.via == "/SSESpecification/KMSMasterKeyId"]
    assert [(e.provenance, e.attribute) for e in kms] == [("schema", "/Arn")]
    audit = graph.outgoing("audit")
    assert [(e.provenance, e.attribute) for e in audit] == [("schema", "/KeyId")]


def test_a_plain_name_counts_only_where_the_property_names_the_type() -> None:
    graph = DependencyGraph.build(RESOURCES, schema_lookup())
    env = {e.via: e.dependency for e in graph.outgoing("orders-fn")}
    assert env["/Environment/Variables/TABLE_NAME"] == "orders"
    assert "/Environment/Variables/LOG_LEVEL" not in env
