"""The sandbox answers as Cloud Control and CloudFormation do: schema types, regions, and calls
it does not implement."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ccstate.sandbox import Sandbox

from tests.integration.sandbox.conftest import create, wait


def regional(sandbox: Sandbox, service: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=sandbox.endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_a_property_of_the_wrong_type_fails_as_invalid_request(cc: Any) -> None:
    name = f"typed-{uuid.uuid4().hex[:8]}"
    event = create(cc, "AWS::SQS::Queue", {"QueueName": name, "VisibilityTimeout": "thirty"})

    assert event["OperationStatus"] == "FAILED"
    assert event["ErrorCode"] == "InvalidRequest"
    assert event["StatusMessage"].startswith("Model validation failed (")
    assert "#/VisibilityTimeout: expected type: Integer, found: String" in event["StatusMessage"]
    assert "Error(" not in event["StatusMessage"]  # no Python repr
    with pytest.raises(ClientError) as caught:
        cc.get_resource(TypeName="AWS::SQS::Queue", Identifier=name)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_update_to_the_wrong_type_fails_as_invalid_request(cc: Any) -> None:
    name = f"typed-{uuid.uuid4().hex[:8]}"
    created = create(cc, "AWS::SQS::Queue", {"QueueName": name})
    identifier = created["Identifier"]
    patch = [{"op": "replace", "path": "/VisibilityTimeout", "value": "thirty"}]
    event = cc.update_resource(
        TypeName="AWS::SQS::Queue", Identifier=identifier, PatchDocument=json.dumps(patch)
    )["ProgressEvent"]

    done = wait(cc, event)

    assert (done["OperationStatus"], done["ErrorCode"]) == ("FAILED", "InvalidRequest")
    assert "expected type: Integer, found: String" in done["StatusMessage"]


def test_request_tokens_belong_to_their_region(sandbox: Sandbox) -> None:
    east = regional(sandbox, "cloudcontrol", "us-east-1")
    west = regional(sandbox, "cloudcontrol", "eu-west-1")
    event = create(east, "AWS::SQS::Queue", {"QueueName": f"r-{uuid.uuid4().hex[:8]}"})

    assert east.get_resource_request_status(RequestToken=event["RequestToken"])
    with pytest.raises(ClientError) as caught:
        west.get_resource_request_status(RequestToken=event["RequestToken"])
    assert caught.value.response["Error"]["Code"] == "RequestTokenNotFoundException"
    listed = west.list_resource_requests()["ResourceRequestStatusSummaries"]
    assert event["RequestToken"] not in {r["RequestToken"] for r in listed}


def test_a_bucket_read_through_another_region_reports_its_own_region(sandbox: Sandbox) -> None:
    west = regional(sandbox, "cloudcontrol", "eu-west-1")
    east = regional(sandbox, "cloudcontrol", "us-east-1")
    name = f"west-{uuid.uuid4().hex[:8]}"
    assert create(west, "AWS::S3::Bucket", {"BucketName": name})["OperationStatus"] == "SUCCESS"

    for client in (west, east):
        described = client.get_resource(TypeName="AWS::S3::Bucket", Identifier=name)
        model = json.loads(described["ResourceDescription"]["Properties"])
        assert model["RegionalDomainName"] == f"{name}.s3.eu-west-1.amazonaws.com"
        assert model["WebsiteURL"] == f"http://{name}.s3-website-eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("start_resource_scan", {}),
        ("list_resource_scans", {}),
        (
            "create_generated_template",
            {
                "GeneratedTemplateName": "t",
                "Resources": [
                    {"ResourceType": "AWS::S3::Bucket", "ResourceIdentifier": {"BucketName": "b"}}
                ],
            },
        ),
        ("list_generated_templates", {}),
    ],
)
def test_cloudformation_calls_the_sandbox_lacks_answer_an_aws_error(
    aws: Callable[[str], Any], operation: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as caught:
        getattr(aws("cloudformation"), operation)(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "UnsupportedActionException"
    assert "sandbox" in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
