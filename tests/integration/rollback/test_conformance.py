"""Conformance: for every type the sandbox serves, create, update twice, roll back to the first
token; GetResource then differs from the recorded properties in 0 properties (read-only and
write-only excluded: GetResource returns neither as recorded). docs/rollback.md has the table;
``CCSTATE_CONFORMANCE_OUT=file`` appends one JSON row per type to regenerate it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from ccstate.sandbox.handlers import HANDLERS

from .conftest import ALICE, AwsClient, World, unique

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
Patch = list[dict[str, Any]]
HTTP = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "10.0.0.0/8"}


@dataclass(frozen=True)
class Case:
    type_name: str
    desired: Callable[[AwsClient], dict[str, Any]]
    first: Patch
    second: Patch


def replace(path: str, value: Any) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


def add(path: str, value: Any) -> dict[str, Any]:
    return {"op": "add", "path": path, "value": value}


def team(value: str) -> dict[str, Any]:
    return {"Key": "team", "Value": value}


def lambda_role(aws: AwsClient) -> str:
    role = aws("iam").create_role(
        RoleName=unique("fn-role"), AssumeRolePolicyDocument=json.dumps(TRUST)
    )
    return str(role["Role"]["Arn"])


CASES = [
    Case(
        "AWS::S3::Bucket",
        lambda aws: {"BucketName": unique("bucket"), "Tags": [team("red")]},
        [add("/PublicAccessBlockConfiguration", {"BlockPublicAcls": True})],
        [add("/Tags/-", {"Key": "env", "Value": "prod"})],
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
        [replace("/DeletionProtectionEnabled", True)],
        [add("/Tags", [team("blue")])],
    ),
    Case(
        "AWS::SQS::Queue",
        lambda aws: {"QueueName": unique("queue"), "VisibilityTimeout": 30},
        [replace("/VisibilityTimeout", 60)],
        [replace("/DelaySeconds", 5)],
    ),
    Case(
        "AWS::SNS::Topic",
        lambda aws: {"TopicName": unique("topic"), "DisplayName": "Alerts"},
        [replace("/DisplayName", "Changed")],
        [add("/Tags/-", team("blue"))],
    ),
    Case(
        "AWS::IAM::Role",
        lambda aws: {
            "RoleName": unique("role"),
            "AssumeRolePolicyDocument": TRUST,
            "Description": "one",
        },
        [replace("/Description", "two")],
        [replace("/MaxSessionDuration", 7200)],
    ),
    Case(
        "AWS::KMS::Key",
        lambda aws: {"Description": "one", "Enabled": True},
        [replace("/Description", "two")],
        [replace("/Enabled", False)],
    ),
    Case(
        "AWS::Logs::LogGroup",
        lambda aws: {"LogGroupName": unique("/app/logs"), "RetentionInDays": 7},
        [replace("/RetentionInDays", 30)],
        [add("/Tags/-", team("blue"))],
    ),
    Case(
        "AWS::SSM::Parameter",
        lambda aws: {"Name": unique("/app/param"), "Type": "String", "Value": "one"},
        [replace("/Value", "two")],
        [replace("/Value", "three")],
    ),
    Case(
        "AWS::Lambda::Function",
        lambda aws: {
            "FunctionName": unique("fn"),
            "Role": lambda_role(aws),
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
            "MemorySize": 128,
        },
        [replace("/MemorySize", 256)],
        [replace("/Timeout", 30)],
    ),
    Case(
        "AWS::EC2::VPC",
        lambda aws: {"CidrBlock": "10.42.0.0/16", "EnableDnsHostnames": False},
        [replace("/EnableDnsHostnames", True)],
        [add("/Tags/-", team("blue"))],
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
        [
            add(
                "/SecurityGroupIngress/-",
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "10.0.0.0/8"},
            )
        ],
        [add("/Tags/-", team("blue"))],
    ),
    Case(
        "AWS::SecretsManager::Secret",
        lambda aws: {"Name": unique("secret"), "Description": "one", "SecretString": "s3cr3t-v1"},
        [replace("/Description", "two")],
        [add("/Tags/-", team("blue"))],
    ),
]


def test_every_sandbox_type_has_a_case() -> None:
    assert sorted(c.type_name for c in CASES) == sorted(HANDLERS)


@pytest.mark.parametrize("case", CASES, ids=[c.type_name for c in CASES])
async def test_rollback_to_the_first_token_restores_every_property(
    world: World, aws: AwsClient, case: Case
) -> None:
    created = await world.create(case.type_name, case.desired(aws))
    identifier = created.identifier
    await world.update(case.type_name, identifier, case.first)
    second = await world.update(case.type_name, identifier, case.second)
    before = await world.differing(case.type_name, identifier, created.properties or {})
    assert before, "the updates changed nothing the rollback could restore"

    done = await world.rollbacks.rollback(ALICE, identifier, created.execution_token)

    assert done.status == "DONE", done.reason
    after = await world.differing(case.type_name, identifier, created.properties or {})
    assert after == []
    record = await world.store.get_resource(identifier)
    assert record is not None and record.current_properties == done.runs[-1].outcome.properties
    _report(case, before, done.plan.named("patch"), after, second.state_serial)


def _report(case: Case, before: list[str], patched: list[str], after: list[str], n: int) -> None:
    out = os.environ.get("CCSTATE_CONFORMANCE_OUT")
    if not out:
        return
    row = {"type": case.type_name, "differing_before": before, "patched": patched,
           "differing_after": after}  # fmt: skip
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
