"""Drift of every sandbox resource type, changed behind ccstate's back by the service API."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.sandbox import Sandbox
from ccstate.service.drift.detect import DriftDetector, DriftReport

from .conftest import AwsClient, World, meta, unique

QUEUE = "AWS::SQS::Queue"
TAGS = [{"Key": "team", "Value": "red"}]
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
OPEN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}


@dataclass
class Case:
    type_name: str
    desired: Callable[[AwsClient], dict[str, Any]]
    # Changes the resource through the service's own API (not Cloud Control).
    change: Callable[[AwsClient, str], None]
    path: str  # the drifted path reported (a prefix, for nested documents)
    difference_type: str
    severity: str


def lambda_role(aws: AwsClient) -> str:
    role = aws("iam").create_role(
        RoleName=unique("fn-role"), AssumeRolePolicyDocument=json.dumps(TRUST)
    )
    return str(role["Role"]["Arn"])


CASES = [
    Case(
        "AWS::S3::Bucket",
        lambda aws: {"BucketName": unique("bucket"), "Tags": TAGS},
        lambda aws, name: aws("s3").put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]}
        ),
        "/Tags/0/Value",
        "NOT_EQUAL",
        "low",
    ),
    Case(
        "AWS::DynamoDB::Table",
        lambda aws: {
            "TableName": unique("table"),
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "DeletionProtectionEnabled": False,
        },
        lambda aws, name: aws("dynamodb").update_table(
            TableName=name, DeletionProtectionEnabled=True
        ),
        "/DeletionProtectionEnabled",
        "NOT_EQUAL",
        "high",
    ),
    Case(
        "AWS::SQS::Queue",
        lambda aws: {"QueueName": unique("queue"), "VisibilityTimeout": 45},
        lambda aws, url: aws("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"VisibilityTimeout": "99"}
        ),
        "/VisibilityTimeout",
        "NOT_EQUAL",
        "medium",
    ),
    Case(
        "AWS::SNS::Topic",
        lambda aws: {"TopicName": unique("topic"), "DisplayName": "Alerts"},
        lambda aws, arn: aws("sns").set_topic_attributes(
            TopicArn=arn, AttributeName="DisplayName", AttributeValue="Changed"
        ),
        "/DisplayName",
        "NOT_EQUAL",
        "medium",
    ),
    Case(
        "AWS::IAM::Role",
        lambda aws: {"RoleName": unique("role"), "AssumeRolePolicyDocument": TRUST},
        lambda aws, name: aws("iam").update_assume_role_policy(
            RoleName=name, PolicyDocument=json.dumps(OPEN_TRUST)
        ),
        "/AssumeRolePolicyDocument/Statement/0/Principal/AWS",
        "ADD",
        "critical",
    ),
    Case(
        "AWS::KMS::Key",
        lambda aws: {"Description": "state key", "Enabled": True},
        lambda aws, key: aws("kms").disable_key(KeyId=key),
        "/Enabled",
        "NOT_EQUAL",
        "critical",
    ),
    Case(
        "AWS::Logs::LogGroup",
        lambda aws: {"LogGroupName": unique("/app/logs"), "RetentionInDays": 7},
        lambda aws, name: aws("logs").put_retention_policy(logGroupName=name, retentionInDays=30),
        "/RetentionInDays",
        "NOT_EQUAL",
        "medium",
    ),
    Case(
        "AWS::SSM::Parameter",
        lambda aws: {"Name": unique("/app/param"), "Type": "String", "Value": "one"},
        lambda aws, name: aws("ssm").put_parameter(
            Name=name, Value="two", Type="String", Overwrite=True
        ),
        "/Value",
        "NOT_EQUAL",
        "medium",
    ),
    Case(
        "AWS::Lambda::Function",
        lambda aws: {
            "FunctionName": unique("fn"),
            "Role": lambda_role(aws),
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
            "MemorySize": 256,
        },
        lambda aws, name: aws("lambda").update_function_configuration(
            FunctionName=name, MemorySize=512
        ),
        "/MemorySize",
        "NOT_EQUAL",
        "medium",
    ),
    Case(
        "AWS::EC2::VPC",
        lambda aws: {"CidrBlock": "10.42.0.0/16", "EnableDnsHostnames": True},
        lambda aws, vpc: aws("ec2").modify_vpc_attribute(
            VpcId=vpc, EnableDnsHostnames={"Value": False}
        ),
        "/EnableDnsHostnames",
        "NOT_EQUAL",
        "medium",
    ),
    Case(
        "AWS::EC2::SecurityGroup",
        lambda aws: {
            "GroupName": unique("sg"),
            "GroupDescription": "web",
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/8"}
            ],
        },
        lambda aws, group: aws("ec2").authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                }
            ],
        ),
        "/SecurityGroupIngress/",
        "ADD",
        "critical",
    ),
    Case(
        "AWS::SecretsManager::Secret",
        lambda aws: {"Name": unique("secret"), "Description": "db", "SecretString": "hunter2"},
        lambda aws, secret: aws("secretsmanager").update_secret(
            SecretId=secret, Description="changed"
        ),
        "/Description",
        "NOT_EQUAL",
        "low",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.type_name for c in CASES])
async def test_out_of_band_change_is_detected(world: World, aws: AwsClient, case: Case) -> None:
    identifier = await world.adopt(case.type_name, case.desired(aws))

    fresh = await world.detector.check(identifier)
    assert fresh.status == "IN_SYNC", [d.to_dict() for d in fresh.differences]

    case.change(aws, identifier)
    drifted = await world.detector.check(identifier)
    assert drifted.status == "MODIFIED"
    found = [(d.path, d.difference_type, d.severity) for d in drifted.differences]
    assert any(
        path.startswith(case.path) and kind == case.difference_type and sev == case.severity
        for path, kind, sev in found
    ), found


@pytest.mark.parametrize(
    "type_name",
    ["AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::EC2::SecurityGroup", "AWS::IAM::Role"],
)
async def test_remediation_patch_restores_the_recorded_state(
    world: World, aws: AwsClient, type_name: str
) -> None:
    case = next(c for c in CASES if c.type_name == type_name)
    identifier = await world.adopt(type_name, case.desired(aws))
    case.change(aws, identifier)
    plan = await world.detector.plan_remediation(identifier)
    assert plan.remediable and plan.complete, plan.to_dict()
    await world.update(type_name, identifier, plan.patch)
    after = await world.detector.check(identifier)
    assert after.status == "IN_SYNC", [d.to_dict() for d in after.differences]


async def test_deleted_resource_is_reported_not_dropped(world: World, aws: AwsClient) -> None:
    url = await world.adopt("AWS::SQS::Queue", {"QueueName": unique("queue")})
    kept = await world.adopt("AWS::SQS::Queue", {"QueueName": unique("queue")})
    aws("sqs").delete_queue(QueueUrl=url)
    report = await world.detector.scan()
    status = {r.identifier: r.status for r in report.results}
    assert status == {url: "DELETED", kept: "IN_SYNC"}
    await world.detector.record(report, meta())
    resource = await world.store.get_resource(url)
    assert resource is not None  # still in state, flagged
    assert resource.drift_status.status == "DELETED"
    assert resource.drift_status.drift_detected


async def test_scan_and_record_write_one_commit(world: World, aws: AwsClient) -> None:
    bucket = await world.adopt("AWS::S3::Bucket", {"BucketName": unique("bucket"), "Tags": TAGS})
    queue = await world.adopt("AWS::SQS::Queue", {"QueueName": unique("queue")})
    aws("s3").put_bucket_tagging(
        Bucket=bucket,
        Tagging={"TagSet": [*TAGS, {"Key": "added-by-hand", "Value": "x"}]},
    )
    head = await world.store.head()
    progress: list[tuple[int, int]] = []
    report = await world.detector.scan(on_progress=lambda d, t: progress.append((d, t)))
    commit = await world.detector.record(report, meta())
    assert commit is not None and commit.serial == head + 1
    assert progress[-1] == (2, 2)
    state = (await world.store.current()).resources
    assert state[bucket].drift_status.status == "MODIFIED"
    assert state[queue].drift_status.status == "IN_SYNC"
    details = state[bucket].drift_status.drift_details
    assert details["differences"][0]["DifferenceType"] == "ADD"
    assert details["remediation"]["patch"] == [{"op": "replace", "path": "/Tags", "value": TAGS}]


async def test_refresh_accepts_reality_and_is_recorded(world: World, aws: AwsClient) -> None:
    url = await world.adopt("AWS::SQS::Queue", {"QueueName": unique("queue")})
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "7"})
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99"})
    assert (await world.detector.check(url)).status == "MODIFIED"
    await world.detector.refresh(url, meta())
    resource = await world.store.get_resource(url)
    assert resource is not None
    assert int(resource.current_properties["VisibilityTimeout"]) == 99
    assert "Arn" not in resource.current_properties
    history = await world.store.history(url)
    assert [e.operation for e in history] == ["create", "refresh"]
    assert history[-1].properties_before is not None
    assert int(history[-1].properties_before["VisibilityTimeout"]) == 30
    assert (await world.detector.check(url)).status == "IN_SYNC"


@contextlib.contextmanager
def credentials_checked(sandbox: Sandbox) -> Iterator[None]:
    """Make moto verify credentials (it accepts any by default), then stop again."""

    def set_auth(count: bytes) -> None:
        request = urllib.request.Request(
            f"{sandbox.endpoint_url}/moto-api/reset-auth",
            data=count,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).read()

    set_auth(b"0")
    try:
        yield
    finally:
        set_auth(b"inf")


async def scan_with_unknown_credentials(
    world: World, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> DriftReport:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    cloud = CloudControlProvider(endpoint_url=sandbox.endpoint_url, region="us-east-1")
    detector = DriftDetector(cloud, world.detector.schemas, world.store)
    try:
        with credentials_checked(sandbox):
            return await detector.scan()
    finally:
        await cloud.close()


async def test_refused_credentials_fail_the_check_and_never_delete(
    world: World, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    queues = [await world.adopt(QUEUE, {"QueueName": unique("queue")}) for _ in range(3)]
    report = await scan_with_unknown_credentials(world, sandbox, monkeypatch)
    assert {r.identifier: r.status for r in report.results} == dict.fromkeys(queues, "FAILED")
    assert all("InvalidClientTokenId" in (r.error or {}).get("message", "") for r in report.results)
    await world.detector.record(report, meta())
    for queue in queues:
        resource = await world.store.get_resource(queue)
        assert resource is not None
        assert resource.drift_status.status != "DELETED"
        assert (await world.store.history(queue))[-1].outcome == "FAILED"


async def test_refused_credentials_never_make_a_bucket_look_deleted(
    world: World, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = await world.adopt("AWS::S3::Bucket", {"BucketName": unique("bucket")})
    report = await scan_with_unknown_credentials(world, sandbox, monkeypatch)
    assert {r.identifier: r.status for r in report.results} == {bucket: "FAILED"}


async def test_refused_credentials_are_access_denied_and_stop_the_scan(
    world: World, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cloud Control answers AccessDeniedException; after half the checks are refused the
    scan stops sending requests with keys that do not work."""
    queues = [await world.adopt(QUEUE, {"QueueName": unique("queue")}) for _ in range(6)]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    cloud = CloudControlProvider(endpoint_url=sandbox.endpoint_url, region="us-east-1")
    detector = DriftDetector(
        cloud, world.detector.schemas, world.store, concurrency=1, auth_abort_min_checks=2
    )
    try:
        with credentials_checked(sandbox):
            report = await detector.scan()
    finally:
        await cloud.close()
    assert report.stopped_reason is not None
    assert {r.identifier: r.status for r in report.results} == dict.fromkeys(queues, "FAILED")
    assert {(r.error or {}).get("error") for r in report.results} == {"access_denied"}
    assert all(
        (r.error or {}).get("details", {}).get("aws_code") == "AccessDeniedException"
        for r in report.results[:2]
    )
    assert all("not checked" in (r.error or {})["message"] for r in report.results[2:])
