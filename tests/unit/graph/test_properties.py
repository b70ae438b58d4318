"""Property tests: following commits one by one gives the graph a rebuild gives; cycle
detection terminates on any graph and names exactly the resources that lie on a cycle."""

from __future__ import annotations

from typing import Any

from ccstate.service.graph.cycles import find_cycles
from ccstate.service.graph.graph import DependencyGraph, nodes_from_resources
from ccstate.service.graph.state import SchemaCache, StateGraph
from ccstate.service.state.model import Commit, Dependencies, ResourceChange
from ccstate.service.state.replay import StateView, apply_commit
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.graph.labelled import schema_lookup

IDS = [f"res{i}" for i in range(8)]
TYPES = ["AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::KMS::Key"]


def arn_of(identifier: str) -> str:
    return f"arn:aws:s3:::{identifier}"


# Values a property can hold: another resource's identifier or ARN (or one under it), or noise.
value = st.one_of(
    st.sampled_from(IDS),
    st.sampled_from(IDS).map(arn_of),
    st.sampled_from(IDS).map(lambda i: arn_of(i) + "/*"),
    st.sampled_from(IDS).map(lambda i: arn_of(i) + "*"),  # a pattern matching one
    st.sampled_from(["noise", "x", "arn:aws:s3:::elsewhere", "arn:aws:s3:::res*"]),
)
key_name = st.sampled_from(["BucketName", "QueueName", "TableName", "KMSMasterKeyId", "Other"])


@st.composite
def change(draw: Any) -> ResourceChange:
    identifier = draw(st.sampled_from(IDS))
    if draw(st.integers(0, 4)) == 0:
        return ResourceChange(identifier=identifier, resource_type="*", operation="delete")
    type_name = TYPES[IDS.index(identifier) % len(TYPES)]
    props: dict[str, Any] = {"Arn": draw(st.sampled_from([arn_of(identifier), "shared-arn"]))}
    props.update(draw(st.dictionaries(key_name, value, max_size=3)))
    props["Policy"] = {"Statement": [{"Resource": draw(st.lists(value, max_size=3))}]}
    return ResourceChange(
        identifier=identifier,
        resource_type=type_name,
        operation="update",
        properties_after=props,
        dependencies=Dependencies(depends_on=draw(st.lists(st.sampled_from(IDS), max_size=2))),
    )


def commit(serial: int, changes: list[ResourceChange]) -> Commit:
    for c in changes:
        if c.operation == "delete":
            c.resource_type = "AWS::S3::Bucket"
    return Commit(serial=serial, parent=serial - 1, lineage="l", committed_at="t", changes=changes)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(change(), min_size=1, max_size=3), min_size=1, max_size=12))
def test_following_commits_equals_rebuilding(batches: list[list[ResourceChange]]) -> None:
    view = StateView()
    cache = SchemaCache()
    lookup = schema_lookup()
    for type_name in TYPES:
        schema = lookup(type_name)
        if schema is not None:
            cache.add(schema)
    follower = StateGraph(cache)
    follower.rebuild(view.resources)
    for serial, changes in enumerate(batches, start=1):
        c = commit(serial, changes)
        apply_commit(view, c)
        follower.apply_commit(c, view.resources)
        rebuilt = DependencyGraph.build(nodes_from_resources(view.resources), cache)
        assert follower.graph.fingerprint() == rebuilt.fingerprint()
        assert follower.graph.cycles() == rebuilt.cycles()


def reaches(start: str, target: str, edges: dict[str, list[str]]) -> bool:
    seen, todo = set(), list(edges.get(start, []))
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo += edges.get(node, [])
    return False


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(IDS), st.lists(st.sampled_from(IDS), max_size=4)))
def test_cycles_terminate_and_name_exactly_the_resources_on_a_cycle(
    edges: dict[str, list[str]],
) -> None:
    cycles = find_cycles(IDS, lambda n: sorted(set(edges.get(n, []))))
    on_cycle = {m for c in cycles for m in c.members}
    assert on_cycle == {n for n in IDS if reaches(n, n, edges)}
    for cycle in cycles:
        assert cycle.path[0] == cycle.path[-1]
        for a, b in zip(cycle.path, cycle.path[1:], strict=False):
            assert b in edges.get(a, [])
