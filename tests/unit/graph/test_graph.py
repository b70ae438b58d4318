"""Graph behaviour: incremental updates equal a rebuild, cycles are named and never looped on,
neighbourhoods, exports, and the four renderings."""

from __future__ import annotations

import json

from ccstate.service.graph.graph import DependencyGraph
from ccstate.service.graph.model import Node
from ccstate.service.graph.render import render
from ccstate.service.graph.state import fill_dependencies
from ccstate.service.state.model import MANAGED_BY, StateDocument

from tests.unit.graph.labelled import RESOURCES, schema_lookup

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def chain() -> list[Node]:
    key = Node("1234abcd-12ab-34cd-56ef-1234567890ab", "AWS::KMS::Key", {"Arn": KEY_ARN})
    bucket = Node(
        "b1",
        "AWS::S3::Bucket",
        {
            "BucketName": "b1",
            "Arn": "arn:aws:s3:::b1",
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"KMSMasterKeyID": KEY_ARN}}
                ]
            },
        },
    )
    policy = json.dumps({"Statement": [{"Resource": "arn:aws:s3:::b1/*"}]})
    role = Node(
        "r1",
        "AWS::IAM::Role",
        {"RoleName": "r1", "Policies": [{"PolicyName": "p", "PolicyDocument": policy}]},
    )
    return [key, bucket, role]


def test_key_bucket_role_chain_and_its_neighbourhood() -> None:
    graph = DependencyGraph.build(chain(), schema_lookup())
    key = chain()[0].identifier
    assert graph.depends_on("b1") == [key]
    assert graph.depends_on("r1") == ["b1"]
    assert graph.descendants(key) == {"b1", "r1"}
    assert graph.ancestors("r1") == {key, "b1"}
    [edge] = graph.outgoing("r1")
    assert edge.via == "/Policies/0/PolicyDocument/Statement/0/Resource"
    assert edge.prefix is True


def test_a_resource_added_later_gains_the_edges_that_name_it() -> None:
    key, bucket, role = chain()
    graph = DependencyGraph.build([bucket, role], schema_lookup())
    assert graph.depends_on("b1") == []
    redone = graph.apply(upserts=[key])
    assert "b1" in redone
    assert graph.depends_on("b1") == [key.identifier]


def test_removing_a_resource_removes_the_edges_to_it() -> None:
    key, bucket, role = chain()
    graph = DependencyGraph.build([key, bucket, role], schema_lookup())
    graph.apply(removals=["b1"])
    assert graph.depends_on("r1") == []
    assert graph.dependents(key.identifier) == []


def test_cycles_are_named_and_reading_them_terminates() -> None:
    nodes = [
        Node("a", "AWS::SSM::Parameter", {"Name": "a"}, depends_on=("b",)),
        Node("b", "AWS::SSM::Parameter", {"Name": "b"}, depends_on=("c",)),
        Node("c", "AWS::SSM::Parameter", {"Name": "c"}, depends_on=("a",)),
        Node("d", "AWS::SSM::Parameter", {"Name": "d"}, depends_on=("d", "a")),
    ]
    graph = DependencyGraph.build(nodes)
    cycles = graph.cycles()
    assert [c.members for c in cycles] == [("a", "b", "c"), ("d",)]
    assert cycles[0].path == ("a", "b", "c", "a")
    assert graph.ancestors("a") == {"b", "c"}
    assert graph.descendants("a") == {"b", "c", "d"}
    assert "Cycle: a -> b -> c -> a" in render(graph.data(), "text")


def test_explicit_depends_on_an_unknown_resource_is_reported_not_drawn() -> None:
    graph = DependencyGraph.build([Node("a", "AWS::SSM::Parameter", {}, depends_on=("ghost",))])
    assert graph.edges() == []
    assert graph.unresolved() == [("a", "ghost")]
    graph.apply(upserts=[Node("ghost", "AWS::SSM::Parameter", {})])
    assert graph.depends_on("a") == ["ghost"]


def test_a_value_two_resources_claim_equally_names_neither() -> None:
    nodes = [
        Node("t1", "AWS::DynamoDB::Table", {"TableName": "t1", "Arn": "arn:x:1"}),
        Node("x", "AWS::SSM::Parameter", {"Name": "x", "Arn": "dup-value"}),
        Node("y", "AWS::SSM::Parameter", {"Name": "y", "Arn": "dup-value"}),
        Node("z", "AWS::SSM::Parameter", {"Name": "z", "Value": "dup-value"}),
    ]
    assert DependencyGraph.build(nodes).depends_on("z") == []


def test_neighbourhood_keeps_ancestors_and_descendants_only() -> None:
    graph = DependencyGraph.build(RESOURCES, schema_lookup())
    data = graph.data("orders-logs")
    ids = {n.identifier for n in data.nodes}
    assert "orders-logs" in ids and "orders-data" in ids  # orders-data logs into it
    assert "2234abcd-12ab-34cd-56ef-1234567890ab" in ids  # its key
    assert "/app/audit" not in ids  # shares the key, but is neither ancestor nor descendant


def test_renderings_name_every_node_and_edge() -> None:
    graph = DependencyGraph.build(chain(), schema_lookup())
    data = graph.data()
    as_json = json.loads(render(data, "json"))
    assert {(e["from"], e["to"]) for e in as_json["edges"]} == {
        (chain()[0].identifier, "b1"),
        ("b1", "r1"),
    }
    mermaid = render(data, "mermaid")
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->") == 2
    dot = render(data, "dot")
    assert dot.startswith("digraph") and '"b1" -> "r1"' in dot
    text = render(data, "text")
    assert "r1 (AWS::IAM::Role)" in text and "depends on b1" in text


def test_mermaid_and_dot_escape_identifiers() -> None:
    odd = Node('q"<x>', "AWS::SSM::Parameter", {"Name": 'q"<x>'})
    data = DependencyGraph.build([odd]).data()
    assert '"' not in render(data, "mermaid").split('["')[1].split('"]')[0]
    assert '"q\\"<x>"' in render(data, "dot")


def test_export_dependencies_come_from_the_graph() -> None:
    key, bucket, role = chain()
    resources = {
        n.identifier: {
            "resource_type": n.resource_type,
            "identifier": n.identifier,
            "current_properties": n.properties,
            "managed_by": MANAGED_BY,
        }
        for n in (key, bucket, role)
    }
    resources["r1"]["dependencies"] = {"depends_on": ["not-managed"], "dependents": []}
    doc = StateDocument.model_validate(
        {"metadata": {"created": "x", "last_updated": "x"}, "resources": resources}
    )
    graph = DependencyGraph.build(chain(), schema_lookup())
    fill_dependencies(doc, graph)
    assert doc.resources["b1"].dependencies.depends_on == [key.identifier]
    assert doc.resources["b1"].dependencies.dependents == ["r1"]
    assert doc.resources["r1"].dependencies.depends_on == ["b1", "not-managed"]
    assert doc.to_json_dict()["resources"]["b1"]["dependencies"]["dependents"] == ["r1"]


def test_a_host_name_names_its_bucket_wherever_it_appears() -> None:
    graph = DependencyGraph.build(
        [
            *RESOURCES,
            Node(
                "E2CDN",
                "AWS::CloudFront::Distribution",
                {
                    "Id": "E2CDN",
                    "DistributionConfig": {
                        "Origins": [{"Id": "o", "DomainName": "site-assets.s3.amazonaws.com"}]
                    },
                },
            ),
        ],
        schema_lookup(),
    )
    [edge] = graph.outgoing("E2CDN")
    assert (edge.dependency, edge.attribute) == ("site-assets", "/DomainName")


async def test_state_graph_is_built_on_first_read_then_follows_commits() -> None:
    from ccstate.service.graph.state import SchemaCache, StateGraph
    from ccstate.service.state.model import Commit, ResourceChange
    from ccstate.service.state.replay import StateView, apply_commit

    key, bucket, role = chain()
    view, follower = StateView(), StateGraph(SchemaCache())

    def commit(node: Node) -> Commit:
        change = ResourceChange(
            identifier=node.identifier,
            resource_type=node.resource_type,
            operation="create",
            properties_after=node.properties,
        )
        c = Commit(serial=view.serial + 1, parent=view.serial, lineage="l", committed_at="t")
        c.changes = [change]
        apply_commit(view, c)
        return c

    assert await follower.follow(commit(key), view.resources) == set()  # not read yet
    assert not follower.loaded
    await commit_and_follow(follower, commit(bucket), view)
    graph = await follower.read(view.resources)
    assert graph.depends_on("b1") == [key.identifier]
    await commit_and_follow(follower, commit(role), view)
    assert follower.graph.depends_on("r1") == ["b1"]


async def commit_and_follow(follower, commit, view) -> None:
    await follower.follow(commit, view.resources)
