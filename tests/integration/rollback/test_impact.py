"""Impact analysis on the sandbox: a key -> bucket -> role chain, deterministic replace
verdicts, the plan digest refusing stale executions, and the delete guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from ccstate.service.changes.rollback import StalePlan
from ccstate.service.errors import HasDependents

from .conftest import ALICE, AwsClient, World, unique

KEY = "AWS::KMS::Key"
BUCKET = "AWS::S3::Bucket"
ROLE = "AWS::IAM::Role"
QUEUE = "AWS::SQS::Queue"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"}
    ],
}  # fmt: skip


@dataclass
class Chain:
    key: str
    bucket: str
    role: str


async def chain(world: World) -> Chain:
    """A KMS key, a bucket encrypted with it, a role whose policy names the bucket."""
    key = await world.create(KEY, {"Description": "data key", "Enabled": True})
    key_arn = (key.properties or {})["Arn"]
    bucket = unique("data")
    encryption = {
        "ServerSideEncryptionConfiguration": [
            {
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": key_arn,
                }
            }
        ]
    }
    await world.create(BUCKET, {"BucketName": bucket, "BucketEncryption": encryption})
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        ],
    }
    role = unique("reader")
    await world.create(
        ROLE,
        {"RoleName": role, "AssumeRolePolicyDocument": TRUST,
         "Policies": [{"PolicyName": "read", "PolicyDocument": policy}]},
    )  # fmt: skip
    return Chain(key.identifier, bucket, role)


def by_id(report: Any) -> dict[str, Any]:
    return {d.identifier: d for d in report.dependents}


async def test_impact_on_a_three_level_chain_lists_both_dependents(world: World) -> None:
    c = await chain(world)

    report = await world.impact.analyze(operation="delete", resource_type=KEY, identifier=c.key)

    found = by_id(report)
    assert set(found) == {c.bucket, c.role}
    assert found[c.bucket].depth == 1 and found[c.bucket].breaks
    assert found[c.bucket].via.startswith("/BucketEncryption")
    assert found[c.role].depth == 2 and found[c.role].through == c.bucket
    assert report.risk == "critical"
    assert any(c.bucket in reason for reason in report.reasons)


async def test_create_only_change_is_a_replacement_never_conditional(world: World) -> None:
    c = await chain(world)
    patch = [{"op": "replace", "path": "/BucketName", "value": unique("renamed")}]

    report = await world.impact.analyze(
        operation="update", resource_type=BUCKET, identifier=c.bucket, patch=patch
    )

    assert report.verdict == "replace"
    assert [(p.name, p.verdict) for p in report.properties] == [("BucketName", "replace")]
    assert by_id(report)[c.role].breaks  # its policy names the old bucket's ARN
    in_place = await world.impact.analyze(
        operation="update", resource_type=BUCKET, identifier=c.bucket,
        patch=[{"op": "add", "path": "/Tags", "value": [{"Key": "a", "Value": "b"}]}],
    )  # fmt: skip
    assert in_place.verdict == "update"
    assert not by_id(in_place)[c.role].breaks
    assert in_place.risk != "critical"


async def test_impact_of_a_token_and_drift_it_would_overwrite(world: World, aws: AwsClient) -> None:
    name = unique("queue")
    url = (await world.create(QUEUE, {"QueueName": name, "VisibilityTimeout": 30})).identifier
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99"})
    flow = world.runner.workflow
    credentials = (await flow.session_info(ALICE)).credentials.token
    generated = await flow.generate(
        ALICE, credentials_token=credentials, resource_type=QUEUE, identifier=url,
        patch_document=[{"op": "replace", "path": "/VisibilityTimeout", "value": 45}],
    )  # fmt: skip

    report = await world.impact.analyze_token(ALICE, generated.token.token)

    assert report.verdict == "update"
    assert [d["path"] for d in report.drift_overwritten] == ["/VisibilityTimeout"]
    assert report.risk == "medium"


async def test_execution_after_the_live_resource_changed_is_refused_as_stale(
    world: World, aws: AwsClient
) -> None:
    name = unique("queue")
    url = (await world.create(QUEUE, {"QueueName": name, "VisibilityTimeout": 30})).identifier
    patch = [{"op": "replace", "path": "/VisibilityTimeout", "value": 45}]
    await world.impact.analyze(operation="update", resource_type=QUEUE, identifier=url, patch=patch)
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "7"})

    with pytest.raises(StalePlan) as stale:
        await world.update(QUEUE, url, patch)
    assert "live properties changed" in stale.value.message
    assert (await world.live(QUEUE, url))["VisibilityTimeout"] == 30  # not applied


async def test_execution_after_the_state_serial_moved_is_refused_as_stale(world: World) -> None:
    name = unique("queue")
    url = (await world.create(QUEUE, {"QueueName": name, "VisibilityTimeout": 30})).identifier
    patch = [{"op": "replace", "path": "/VisibilityTimeout", "value": 45}]
    await world.impact.analyze(operation="update", resource_type=QUEUE, identifier=url, patch=patch)
    await world.update(QUEUE, url, [{"op": "replace", "path": "/DelaySeconds", "value": 3}])

    with pytest.raises(StalePlan) as stale:
        await world.update(QUEUE, url, patch)
    assert "state of the resource moved" in stale.value.message


async def test_execution_without_prior_state_is_still_checked(world: World, aws: AwsClient) -> None:
    """Terraform skips its stale-plan check when there was no prior state; this does not."""
    name = unique("bucket")
    report = await world.impact.analyze(
        operation="create", resource_type=BUCKET, properties={"BucketName": name}
    )
    assert report.binding.live_digest == "absent" and report.binding.state_serial == 0
    aws("s3").create_bucket(Bucket=name)  # someone made it meanwhile

    with pytest.raises(StalePlan) as stale:
        await world.create(BUCKET, {"BucketName": name})
    assert "now exists" in stale.value.message


async def test_analysed_change_executes_when_nothing_moved(world: World) -> None:
    name = unique("queue")
    url = (await world.create(QUEUE, {"QueueName": name, "VisibilityTimeout": 30})).identifier
    patch = [{"op": "replace", "path": "/VisibilityTimeout", "value": 45}]
    await world.impact.analyze(operation="update", resource_type=QUEUE, identifier=url, patch=patch)

    await world.update(QUEUE, url, patch)

    assert (await world.live(QUEUE, url))["VisibilityTimeout"] == 45


async def test_delete_of_a_depended_on_resource_is_refused_unless_forced(world: World) -> None:
    c = await chain(world)

    with pytest.raises(HasDependents) as refused:
        await world.delete(BUCKET, c.bucket)
    assert refused.value.details["dependents"] == [c.role]
    assert c.role in refused.value.message
    assert await world.store.get_resource(c.bucket) is not None

    await world.change(operation="delete", resource_type=BUCKET, identifier=c.bucket, force=True)
    assert await world.store.get_resource(c.bucket) is None
    after = await world.impact.analyze(operation="delete", resource_type=KEY, identifier=c.key)
    assert after.dependents == []  # the graph follows the delete
