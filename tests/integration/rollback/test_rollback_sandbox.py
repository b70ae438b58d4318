"""Rollback by token on the sandbox over real HTTP: what a user sees after rolling back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ccstate.service.changes.rollback import RollbackRefused, StalePlan

from .conftest import ALICE, AwsClient, World, unique

BUCKET = "AWS::S3::Bucket"
QUEUE = "AWS::SQS::Queue"
ROLE = "AWS::IAM::Role"
SECRET = "AWS::SecretsManager::Secret"
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


def tags(**values: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


async def retag(world: World, bucket: str, team: str) -> None:
    await world.update(
        BUCKET, bucket, [{"op": "replace", "path": "/Tags", "value": tags(team=team)}]
    )


async def entry(world: World, identifier: str, token: str) -> dict[str, Any]:
    history = await world.store.history(identifier)
    return next(e.to_json_dict() for e in history if e.execution_token == token)


async def test_rollback_of_an_update_restores_the_recorded_properties(world: World) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name, "Tags": tags(team="red")})
    await world.update(
        BUCKET, name, [{"op": "replace", "path": "/Tags", "value": tags(team="blue")}]
    )

    done = await world.rollbacks.rollback(ALICE, name, created.execution_token)

    assert done.status == "DONE", done.reason
    assert done.plan.named("patch") == ["Tags"]
    assert await world.differing(BUCKET, name, created.properties or {}) == []
    last = (await world.store.history(name))[-1]
    assert last.operation == "rollback"
    assert last.rolled_back_to == created.execution_token
    assert "Roll back" in (last.explanation or "")  # the explanation shows the plan


async def test_rolling_back_the_rollback_restores_what_was_there(world: World) -> None:
    name = unique("queue")
    created = await world.create(QUEUE, {"QueueName": name, "VisibilityTimeout": 30})
    url = created.identifier
    updated = await world.update(
        QUEUE, url, [{"op": "replace", "path": "/VisibilityTimeout", "value": 90}]
    )
    rolled = await world.rollbacks.rollback(ALICE, url, created.execution_token)
    assert (await world.live(QUEUE, url))["VisibilityTimeout"] == 30
    assert rolled.execution_token is not None

    again = await world.rollbacks.rollback(ALICE, url, rolled.execution_token, "before")

    assert again.status == "DONE", again.reason
    assert (await world.live(QUEUE, url))["VisibilityTimeout"] == 90
    assert await world.differing(QUEUE, url, updated.properties or {}) == []


async def test_rollback_of_a_delete_re_creates_the_resource(world: World) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name, "Tags": tags(team="red")})
    deleted = await world.delete(BUCKET, name)
    assert await world.store.get_resource(name) is None

    done = await world.rollbacks.rollback(ALICE, name, deleted.execution_token, "before")

    assert done.status == "DONE", done.reason
    assert done.plan.action == "create"
    assert await world.differing(BUCKET, name, created.properties or {}) == []
    resource = await world.store.get_resource(name)
    assert resource is not None  # back in the state, recorded as a rollback
    assert (await world.store.history(name))[-1].operation == "rollback"


async def test_rollback_to_before_a_create_deletes_and_back_again(world: World) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name})

    gone = await world.rollbacks.rollback(ALICE, name, created.execution_token, "before")
    assert gone.plan.action == "delete"
    assert await world.store.get_resource(name) is None

    back = await world.rollbacks.rollback(ALICE, name, gone.execution_token or "", "before")
    assert back.plan.action == "create"
    assert await world.store.get_resource(name) is not None


async def test_rollback_across_a_drifted_resource_undoes_the_drift_too(
    world: World, aws: AwsClient
) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name, "Tags": tags(team="red")})
    await world.update(
        BUCKET, name, [{"op": "replace", "path": "/Tags", "value": tags(team="blue")}]
    )
    aws("s3").put_public_access_block(  # behind ccstate's back
        Bucket=name,
        PublicAccessBlockConfiguration={"BlockPublicAcls": True, "BlockPublicPolicy": False},
    )
    aws("s3").put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [{"Key": "team", "Value": "by-hand"}]}
    )

    plan = await world.rollbacks.plan(name, created.execution_token)
    assert plan.action == "update"
    by_name = {p.name: p for p in plan.properties}
    assert by_name["Tags"].action == "patch"
    assert by_name["PublicAccessBlockConfiguration"].action == "patch"  # added since: removed
    assert json.dumps(by_name["Tags"].live).count("by-hand") == 1  # computed from the live read

    done = await world.rollbacks.rollback(ALICE, name, created.execution_token)
    assert done.status == "DONE", done.reason
    assert await world.differing(BUCKET, name, created.properties or {}) == []


async def test_replacement_is_refused_without_allow_replacement(
    world: World, aws: AwsClient
) -> None:
    name = unique("role")
    body = {"RoleName": name, "Path": "/app/", "AssumeRolePolicyDocument": TRUST}
    created = await world.create(ROLE, body)
    iam = aws("iam")  # re-created by hand under another (create-only) path
    iam.delete_role(RoleName=name)
    iam.create_role(RoleName=name, Path="/other/", AssumeRolePolicyDocument=json.dumps(TRUST))

    with pytest.raises(RollbackRefused) as refused:
        await world.rollbacks.rollback(ALICE, name, created.execution_token)
    assert refused.value.details["replace"] == ["Path"]
    assert (await world.live(ROLE, name))["Path"] == "/other/"  # nothing was touched

    done = await world.rollbacks.rollback(
        ALICE, name, created.execution_token, allow_replacement=True
    )
    assert done.status == "DONE", done.reason
    assert [r.generated.operation for r in done.runs] == ["delete", "create"]
    assert (await world.live(ROLE, name))["Path"] == "/app/"
    assert await world.differing(ROLE, name, created.properties or {}) == []


async def test_write_only_loss_is_refused_without_accept_loss(world: World) -> None:
    name = unique("secret")
    created = await world.create(
        SECRET, {"Name": name, "Description": "one", "SecretString": "first-value"}
    )
    arn = created.identifier
    await world.update(
        SECRET,
        arn,
        [
            {"op": "add", "path": "/SecretString", "value": "second-value"},
            {"op": "replace", "path": "/Description", "value": "two"},
        ],
    )
    recorded = await entry(world, arn, created.execution_token)
    assert "first-value" not in json.dumps(recorded)  # only its fingerprint is kept

    with pytest.raises(RollbackRefused) as refused:
        await world.rollbacks.rollback(ALICE, arn, created.execution_token)
    assert refused.value.details["unrecoverable"] == ["SecretString"]

    done = await world.rollbacks.rollback(
        ALICE, arn, created.execution_token, accept_loss=["SecretString"]
    )
    assert done.status == "DONE", done.reason
    assert (await world.live(SECRET, arn))["Description"] == "one"


async def test_stale_plan_is_refused_when_the_state_serial_moved(world: World) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name, "Tags": tags(team="red")})
    await world.update(
        BUCKET, name, [{"op": "replace", "path": "/Tags", "value": tags(team="blue")}]
    )
    plan = await world.rollbacks.plan(name, created.execution_token)
    await retag(world, name, "x")

    with pytest.raises(StalePlan):
        await world.rollbacks.rollback(
            ALICE, name, created.execution_token, plan_digest=plan.digest
        )
    assert (await world.live(BUCKET, name))["Tags"] == tags(team="x")


async def test_stale_plan_is_refused_when_the_live_properties_changed(
    world: World, aws: AwsClient
) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name, "Tags": tags(team="red")})
    await world.update(
        BUCKET, name, [{"op": "replace", "path": "/Tags", "value": tags(team="blue")}]
    )
    plan = await world.rollbacks.plan(name, created.execution_token)
    aws("s3").put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags(team="by-hand")})

    with pytest.raises(StalePlan) as stale:
        await world.rollbacks.rollback(
            ALICE, name, created.execution_token, plan_digest=plan.digest
        )
    assert stale.value.details["current"]["state_serial"] == plan.binding.state_serial


async def test_stale_plan_is_refused_when_there_was_no_prior_resource(
    world: World, aws: AwsClient
) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name})
    deleted = await world.delete(BUCKET, name)
    plan = await world.rollbacks.plan(name, deleted.execution_token, "before")
    assert plan.action == "create" and plan.binding.live_digest == "absent"
    aws("s3").create_bucket(Bucket=name)  # someone made it meanwhile

    with pytest.raises(StalePlan):
        await world.rollbacks.rollback(
            ALICE, name, deleted.execution_token, "before", plan_digest=plan.digest
        )
    assert created.execution_token != deleted.execution_token


async def test_stale_under_the_lock_refuses_before_the_token_is_used(
    world: World, aws: AwsClient
) -> None:
    """The race: the live resource changes between planning and acting, no digest given."""
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name, "Tags": tags(team="red")})
    await world.update(
        BUCKET, name, [{"op": "replace", "path": "/Tags", "value": tags(team="blue")}]
    )
    plan = await world.rollbacks.plan(name, created.execution_token)
    aws("s3").put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags(team="by-hand")})
    check = world.rollbacks._still(plan)
    with pytest.raises(StalePlan) as stale:
        await check()
    assert "live properties changed" in stale.value.message


async def test_unknown_token_names_the_recorded_ones(world: World) -> None:
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name})
    from ccstate.service.errors import NotFound

    with pytest.raises(NotFound) as missing:
        await world.rollbacks.plan(name, "sha256:" + "0" * 64)
    assert created.execution_token in missing.value.next_step


async def test_versioning_added_since_is_suspended_the_closest_aws_allows(world: World) -> None:
    """AWS cannot un-version a bucket: removing the configuration suspends it."""
    name = unique("bucket")
    created = await world.create(BUCKET, {"BucketName": name})
    await world.update(
        BUCKET,
        name,
        [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}],
    )

    done = await world.rollbacks.rollback(ALICE, name, created.execution_token)

    assert done.status == "DONE", done.reason
    assert done.plan.patch == [{"op": "remove", "path": "/VersioningConfiguration"}]
    live = await world.live(BUCKET, name)
    assert live["VersioningConfiguration"] == {"Status": "Suspended"}
    assert await world.differing(BUCKET, name, created.properties or {}) == [
        "VersioningConfiguration"
    ]


async def test_the_plan_never_shows_a_secret_the_cloud_returns(world: World) -> None:
    name = unique("/app/param")
    created = await world.create(
        "AWS::SSM::Parameter", {"Name": name, "Type": "String", "Value": "one"}
    )
    leaked = "wJalrXUtnFEMI/K7MDENGbPxRfiCYzz9aB3cD4eF"  # a secret key put in by hand
    await world.update(
        "AWS::SSM::Parameter", name, [{"op": "replace", "path": "/Value", "value": leaked}]
    )

    plan = await world.rollbacks.plan(name, created.execution_token)

    assert {p.name: p.action for p in plan.properties}["Value"] == "patch"
    assert leaked not in json.dumps(plan.to_dict())
