"""The graph on what the sandbox reads back: a KMS key, a bucket encrypted with it and a role
whose inline policy names the bucket, each created through Cloud Control and recorded as a
create records it. Schemas come from the offline provider (cfn-lint's bundled schemas)."""

from __future__ import annotations

import json

from ccstate.backends.schemas import CloudFormationSchemaProvider
from ccstate.service.graph.graph import DependencyGraph, nodes_from_resources
from ccstate.service.graph.render import render
from ccstate.service.graph.state import SchemaCache, StateGraph, fill_dependencies, load_graph
from ccstate.service.state.replay import apply_commit

from tests.integration.drift.conftest import World, unique

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


async def create_chain(world: World) -> tuple[str, str, str]:
    key = await world.adopt("AWS::KMS::Key", {"Description": "graph test key"})
    key_arn = (await world.store.get_resource(key)).current_properties["Arn"]
    bucket = await world.adopt(
        "AWS::S3::Bucket",
        {
            "BucketName": unique("graph-bucket"),
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn,
                        }
                    }
                ]
            },
        },
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        ],
    }
    role = await world.adopt(
        "AWS::IAM::Role",
        {
            "RoleName": unique("graph-role"),
            "AssumeRolePolicyDocument": TRUST,
            "Policies": [{"PolicyName": "read", "PolicyDocument": json.dumps(policy)}],
        },
    )
    return key, bucket, role


async def test_the_graph_finds_key_then_bucket_then_role(world: World) -> None:
    key, bucket, role = await create_chain(world)
    view = await world.store.current()
    schemas = CloudFormationSchemaProvider(offline=True)

    data = await load_graph(view.resources, schemas, role)
    edges = {(e.dependency, e.dependent) for e in data.edges}
    assert edges == {(key, bucket), (bucket, role)}
    by_dependent = {e.dependent: e for e in data.edges}
    assert by_dependent[bucket].via.endswith("/ServerSideEncryptionByDefault/KMSMasterKeyID")
    assert by_dependent[role].via.startswith("/Policies/0/PolicyDocument/Statement/0/Resource")
    mermaid = render(data, "mermaid")
    assert mermaid.count("-->") == 2


async def test_following_the_store_commit_by_commit_equals_a_rebuild(world: World) -> None:
    cache = SchemaCache(CloudFormationSchemaProvider(offline=True))
    follower = StateGraph(cache)
    key, bucket, role = await create_chain(world)
    head = await world.store.head()
    view = await world.store.view_at(0)
    await follower.read(view.resources)  # empty at serial 0; followed from here on
    for serial in range(1, head + 1):
        commit = await world.store.commit_at(serial)
        apply_commit(view, commit)
        await follower.follow(commit, view.resources)
    current = await world.store.current()
    rebuilt = DependencyGraph.build(nodes_from_resources(current.resources), cache)
    assert follower.graph.fingerprint() == rebuilt.fingerprint()
    assert follower.graph.descendants(key) == {bucket, role}
    assert [e.provenance for e in follower.graph.outgoing(bucket)] == ["value"]
    loaded = StateGraph(SchemaCache(CloudFormationSchemaProvider(offline=True)))
    await loaded.load(current.resources)
    assert loaded.graph.fingerprint() == rebuilt.fingerprint()

    doc = fill_dependencies(await world.store.export_document(), follower.graph)
    assert doc.resources[bucket].dependencies.depends_on == [key]
    assert doc.resources[bucket].dependencies.dependents == [role]
