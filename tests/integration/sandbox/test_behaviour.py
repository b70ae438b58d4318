"""Cloud Control behaviour the sandbox must share with the real service: drift visibility,
error codes, idempotency, pagination, concurrency, latency, cancellation."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ccstate.sandbox import Sandbox

from .conftest import create, delete, get, unique, update, wait

BUCKET = "AWS::S3::Bucket"
QUEUE = "AWS::SQS::Queue"


def error_of(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def client_for(sb: Sandbox, service: str) -> Any:
    return boto3.client(service, **{"endpoint_url": sb.endpoint_url, "region_name": "us-east-1"})


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[Sandbox]:
    """Requests stay IN_PROGRESS for a long time unless canceled."""
    with Sandbox(operation_ms=60_000) as sb:
        yield sb


# ---------------------------------------------------------------------------- drift


def test_out_of_band_changes_show_in_get_resource(cc: Any, aws: Callable[[str], Any]) -> None:
    name = unique("drift")
    create(cc, BUCKET, {"BucketName": name, "Tags": [{"Key": "env", "Value": "prod"}]})

    aws("s3").put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [{"Key": "env", "Value": "hacked"}]}
    )
    aws("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    model = get(cc, BUCKET, name)
    assert model["Tags"] == [{"Key": "env", "Value": "hacked"}]
    assert model["VersioningConfiguration"] == {"Status": "Enabled"}


def test_out_of_band_queue_attribute_shows_in_get_resource(
    cc: Any, aws: Callable[[str], Any]
) -> None:
    created = create(cc, QUEUE, {"QueueName": unique("q"), "VisibilityTimeout": 30})
    aws("sqs").set_queue_attributes(
        QueueUrl=created["Identifier"], Attributes={"VisibilityTimeout": "300"}
    )
    assert get(cc, QUEUE, created["Identifier"])["VisibilityTimeout"] == 300


def test_resource_deleted_out_of_band_is_not_found(cc: Any, aws: Callable[[str], Any]) -> None:
    name = unique("gone")
    create(cc, BUCKET, {"BucketName": name})
    aws("s3").delete_bucket(Bucket=name)
    code, status = error_of(lambda: cc.get_resource(TypeName=BUCKET, Identifier=name))
    assert (code, status) == ("ResourceNotFoundException", 400)


# ---------------------------------------------------------------------------- error codes


def test_unknown_type_is_type_not_found(cc: Any) -> None:
    code, status = error_of(lambda: cc.get_resource(TypeName="AWS::Nope::Thing", Identifier="x"))
    assert (code, status) == ("TypeNotFoundException", 400)


def test_known_type_without_handler_is_unsupported(cc: Any) -> None:
    code, _ = error_of(lambda: cc.create_resource(TypeName="AWS::ECS::Cluster", DesiredState="{}"))
    assert code == "UnsupportedActionException"


def test_missing_resource_errors(cc: Any) -> None:
    assert error_of(lambda: cc.get_resource(TypeName=BUCKET, Identifier="no-such-bucket-x"))[0] == (
        "ResourceNotFoundException"
    )
    patch = json.dumps([{"op": "add", "path": "/Tags", "value": []}])
    assert (
        error_of(
            lambda: cc.update_resource(
                TypeName=BUCKET, Identifier="no-such-bucket-x", PatchDocument=patch
            )
        )[0]
        == "ResourceNotFoundException"
    )
    deleted = delete(cc, BUCKET, "no-such-bucket-x")
    assert (deleted["OperationStatus"], deleted["ErrorCode"]) == ("FAILED", "NotFound")


def test_duplicate_create_fails_with_already_exists(cc: Any) -> None:
    name = unique("dup")
    assert create(cc, BUCKET, {"BucketName": name})["OperationStatus"] == "SUCCESS"
    again = create(cc, BUCKET, {"BucketName": name})
    assert (again["OperationStatus"], again["ErrorCode"]) == ("FAILED", "AlreadyExists")
    assert name in again["StatusMessage"]


def test_duplicate_queue_name_fails_with_already_exists(cc: Any) -> None:
    name = unique("dupq")
    create(cc, QUEUE, {"QueueName": name})
    again = create(cc, QUEUE, {"QueueName": name})
    assert again["ErrorCode"] == "AlreadyExists"


def test_updating_a_create_only_property_is_not_updatable(cc: Any) -> None:
    created = create(cc, QUEUE, {"QueueName": unique("co")})
    patch = json.dumps([{"op": "replace", "path": "/QueueName", "value": "renamed"}])
    code, _ = error_of(
        lambda: cc.update_resource(
            TypeName=QUEUE, Identifier=created["Identifier"], PatchDocument=patch
        )
    )
    assert code == "NotUpdatableException"


@pytest.mark.parametrize(
    "patch",
    [
        "not json",
        json.dumps({"op": "add"}),
        json.dumps([{"op": "explode", "path": "/Tags"}]),
        json.dumps([{"op": "remove", "path": "/DoesNotExist"}]),
        json.dumps([{"op": "add", "path": "/NotAProperty", "value": 1}]),
        json.dumps([{"op": "replace", "path": "/Arn", "value": "arn:aws:sqs:x"}]),
    ],
)
def test_invalid_patch_is_validation_error(cc: Any, patch: str) -> None:
    created = create(cc, QUEUE, {"QueueName": unique("patch")})
    code, status = error_of(
        lambda: cc.update_resource(
            TypeName=QUEUE, Identifier=created["Identifier"], PatchDocument=patch
        )
    )
    assert (code, status) == ("ValidationException", 400)


@pytest.mark.parametrize(
    "desired",
    ["{not json", "[]", json.dumps({"Bogus": 1}), json.dumps({"Value": "v"})],
)
def test_invalid_desired_state_is_validation_error(cc: Any, desired: str) -> None:
    code, _ = error_of(
        lambda: cc.create_resource(TypeName="AWS::SSM::Parameter", DesiredState=desired)
    )
    assert code == "ValidationException"


def test_failed_service_call_reports_error_code(cc: Any) -> None:
    failed = create(cc, BUCKET, {"BucketName": "x"})  # too short for S3
    assert failed["OperationStatus"] == "FAILED"
    assert failed["ErrorCode"] == "InvalidRequest"


def test_unknown_request_token(cc: Any) -> None:
    code, _ = error_of(lambda: cc.get_resource_request_status(RequestToken=str(uuid.uuid4())))
    assert code == "RequestTokenNotFoundException"


# ---------------------------------------------------------------------------- idempotency


def test_client_token_replays_the_original_event(cc: Any) -> None:
    token = str(uuid.uuid4())
    desired = json.dumps({"QueueName": unique("idem")})
    first = cc.create_resource(TypeName=QUEUE, DesiredState=desired, ClientToken=token)
    wait(cc, first["ProgressEvent"])
    second = cc.create_resource(TypeName=QUEUE, DesiredState=desired, ClientToken=token)
    assert second["ProgressEvent"]["RequestToken"] == first["ProgressEvent"]["RequestToken"]
    assert second["ProgressEvent"]["OperationStatus"] == "SUCCESS"  # not AlreadyExists


def test_client_token_reused_for_another_request_conflicts(cc: Any) -> None:
    token = str(uuid.uuid4())
    cc.create_resource(
        TypeName=QUEUE, DesiredState=json.dumps({"QueueName": unique("a")}), ClientToken=token
    )
    code, _ = error_of(
        lambda: cc.create_resource(
            TypeName=QUEUE, DesiredState=json.dumps({"QueueName": unique("b")}), ClientToken=token
        )
    )
    assert code == "ClientTokenConflictException"


# ---------------------------------------------------------------------------- listing


def test_list_resources_paginates(cc: Any, aws: Callable[[str], Any]) -> None:
    prefix = unique("page")
    wanted = {aws("sqs").create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(7)}

    seen: list[str] = []
    pages = 0
    kwargs: dict[str, Any] = {"TypeName": QUEUE, "MaxResults": 3}
    while True:
        page = cc.list_resources(**kwargs)
        pages += 1
        assert len(page["ResourceDescriptions"]) <= 3
        for description in page["ResourceDescriptions"]:
            seen.append(description["Identifier"])
            assert json.loads(description["Properties"]) == {"QueueUrl": description["Identifier"]}
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert wanted <= set(seen)
    assert len(seen) == len(set(seen))
    assert pages >= 3


def test_bad_next_token_is_validation_error(cc: Any) -> None:
    code, _ = error_of(lambda: cc.list_resources(TypeName=QUEUE, NextToken="garbage"))
    assert code == "ValidationException"


def test_list_resource_requests_filters_and_paginates(cc: Any) -> None:
    for _ in range(3):
        created = create(cc, QUEUE, {"QueueName": unique("lr")})
        delete(cc, QUEUE, created["Identifier"])
    paginator = cc.get_paginator("list_resource_requests")
    summaries = [
        s
        for page in paginator.paginate(
            ResourceRequestStatusFilter={
                "Operations": ["DELETE"],
                "OperationStatuses": ["SUCCESS"],
            },
            PaginationConfig={"PageSize": 2},
        )
        for s in page["ResourceRequestStatusSummaries"]
    ]
    assert len(summaries) >= 3
    assert {(s["Operation"], s["OperationStatus"]) for s in summaries} == {("DELETE", "SUCCESS")}


# ---------------------------------------------------------------------------- concurrency


def test_twenty_concurrent_creates_all_succeed(cc: Any) -> None:
    names = [unique("conc") for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        events = list(pool.map(lambda n: create(cc, QUEUE, {"QueueName": n}), names))
    assert [e["OperationStatus"] for e in events] == ["SUCCESS"] * 20
    assert len({e["Identifier"] for e in events}) == 20


def test_second_operation_on_a_busy_resource_is_refused(slow_sandbox: Sandbox) -> None:
    cc = client_for(slow_sandbox, "cloudcontrol")
    client_for(slow_sandbox, "s3").create_bucket(Bucket=(name := unique("busy")))
    first = cc.delete_resource(TypeName=BUCKET, Identifier=name)["ProgressEvent"]
    code, _ = error_of(lambda: cc.delete_resource(TypeName=BUCKET, Identifier=name))
    assert code == "ConcurrentOperationException"
    cc.cancel_resource_request(RequestToken=first["RequestToken"])


# ---------------------------------------------------------------------------- async, cancel


def test_create_is_asynchronous_and_can_be_canceled(slow_sandbox: Sandbox) -> None:
    cc = client_for(slow_sandbox, "cloudcontrol")
    name = unique("cancel")
    started = cc.create_resource(TypeName=BUCKET, DesiredState=json.dumps({"BucketName": name}))
    event = started["ProgressEvent"]
    assert event["OperationStatus"] == "IN_PROGRESS"
    assert (
        cc.get_resource_request_status(RequestToken=event["RequestToken"])["ProgressEvent"][
            "OperationStatus"
        ]
        == "IN_PROGRESS"
    )

    canceling = cc.cancel_resource_request(RequestToken=event["RequestToken"])["ProgressEvent"]
    assert canceling["OperationStatus"] in {"CANCEL_IN_PROGRESS", "CANCEL_COMPLETE"}
    final = wait(cc, canceling)
    assert final["OperationStatus"] == "CANCEL_COMPLETE"
    code, _ = error_of(lambda: cc.get_resource(TypeName=BUCKET, Identifier=name))
    assert code == "ResourceNotFoundException"
    code, _ = error_of(lambda: cc.cancel_resource_request(RequestToken=event["RequestToken"]))
    assert code == "ConcurrentModificationException"


# ---------------------------------------------------------------------------- latency


def test_latency_is_added_to_every_cloud_control_call() -> None:
    with Sandbox(latency_ms=150) as sb:
        cc = client_for(sb, "cloudcontrol")
        for call in (
            lambda: cc.list_resources(TypeName=QUEUE),
            lambda: cc.list_resource_requests(),
        ):
            began = time.monotonic()
            call()
            assert time.monotonic() - began >= 0.15


# ---------------------------------------------------------------------------- one port


def test_one_endpoint_serves_every_client(sandbox: Sandbox) -> None:
    env = sandbox.env()
    assert env["AWS_ENDPOINT_URL"] == sandbox.endpoint_url
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    url = env["AWS_ENDPOINT_URL"]
    assert session.client("sts", endpoint_url=url).get_caller_identity()["Account"]
    assert "TableNames" in session.client("dynamodb", endpoint_url=url).list_tables()
    assert "Keys" in session.client("kms", endpoint_url=url).list_keys()
    assert "Buckets" in session.client("s3", endpoint_url=url).list_buckets()
    assert "TypeName" in session.client("cloudcontrol", endpoint_url=url).list_resources(
        TypeName=BUCKET
    )


def test_describe_type_serves_bundled_schemas(aws: Callable[[str], Any]) -> None:
    cfn = aws("cloudformation")
    described = cfn.describe_type(Type="RESOURCE", TypeName="AWS::SQS::Queue")
    assert json.loads(described["Schema"])["primaryIdentifier"] == ["/properties/QueueUrl"]
    with pytest.raises(ClientError) as caught:
        cfn.describe_type(Type="RESOURCE", TypeName="AWS::Nope::Thing")
    assert caught.value.response["Error"]["Code"] == "TypeNotFoundException"
    assert "Stacks" in cfn.describe_stacks()  # every other CloudFormation call reaches moto


def test_update_then_get_reflects_patch_on_nested_property(cc: Any) -> None:
    name = unique("nested")
    create(cc, BUCKET, {"BucketName": name, "VersioningConfiguration": {"Status": "Enabled"}})
    result = update(
        cc,
        BUCKET,
        name,
        [{"op": "replace", "path": "/VersioningConfiguration/Status", "value": "Suspended"}],
    )
    assert result["OperationStatus"] == "SUCCESS"
    assert json.loads(result["ResourceModel"])["VersioningConfiguration"] == {"Status": "Suspended"}
