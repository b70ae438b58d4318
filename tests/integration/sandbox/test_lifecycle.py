"""Create, read, update, list and delete every supported type through the Cloud Control API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ccstate.backends.schemas import bundled_schema_document

from .conftest import create, delete, get, unique, update

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


@dataclass
class Case:
    type_name: str
    desired: Callable[[Callable[[str], Any]], dict[str, Any]]
    patch: list[dict[str, Any]]
    expected_after: dict[str, Any]
    # Properties given on create that must read back unchanged.
    echoed: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()
    write_only: tuple[str, ...] = field(default=())


def lambda_role(aws: Callable[[str], Any]) -> str:
    name = unique("fn-role")
    role = aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    return str(role["Role"]["Arn"])


TAG_PATCH = [{"op": "replace", "path": "/Tags", "value": [{"Key": "team", "Value": "blue"}]}]
TAGS = [{"Key": "team", "Value": "red"}]

CASES = [
    Case(
        "AWS::S3::Bucket",
        lambda aws: {
            "BucketName": unique("bucket"),
            "Tags": TAGS,
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": False,
                        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    }
                ]
            },
        },
        [
            *TAG_PATCH,
            {"op": "replace", "path": "/VersioningConfiguration/Status", "value": "Suspended"},
            {"op": "remove", "path": "/PublicAccessBlockConfiguration"},
        ],
        {
            "VersioningConfiguration": {"Status": "Suspended"},
            "PublicAccessBlockConfiguration": None,
        },
        echoed=("BucketName", "Tags", "PublicAccessBlockConfiguration", "BucketEncryption"),
        read_only=("Arn", "DomainName"),
    ),
    Case(
        "AWS::DynamoDB::Table",
        lambda aws: {
            "TableName": unique("table"),
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "Tags": TAGS,
        },
        [
            *TAG_PATCH,
            {"op": "replace", "path": "/BillingMode", "value": "PROVISIONED"},
            {
                "op": "add",
                "path": "/ProvisionedThroughput",
                "value": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            },
        ],
        {
            "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        },
        echoed=("TableName", "KeySchema", "BillingMode", "Tags"),
        read_only=("Arn",),
    ),
    Case(
        "AWS::SQS::Queue",
        lambda aws: {"QueueName": unique("queue"), "VisibilityTimeout": 45, "Tags": TAGS},
        [*TAG_PATCH, {"op": "replace", "path": "/VisibilityTimeout", "value": 90}],
        {"VisibilityTimeout": 90},
        echoed=("QueueName", "VisibilityTimeout", "Tags"),
        read_only=("Arn", "QueueUrl"),
    ),
    Case(
        "AWS::SNS::Topic",
        lambda aws: {"TopicName": unique("topic"), "DisplayName": "Alerts", "Tags": TAGS},
        [*TAG_PATCH, {"op": "replace", "path": "/DisplayName", "value": "Alarms"}],
        {"DisplayName": "Alarms"},
        echoed=("TopicName", "DisplayName", "Tags"),
        read_only=("TopicArn",),
    ),
    Case(
        "AWS::IAM::Role",
        lambda aws: {
            "RoleName": unique("role"),
            "AssumeRolePolicyDocument": TRUST,
            "Description": "first",
            "Tags": TAGS,
            "Policies": [
                {
                    "PolicyName": "read",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
                        ],
                    },
                }
            ],
        },
        [
            *TAG_PATCH,
            {"op": "replace", "path": "/Description", "value": "second"},
            {"op": "remove", "path": "/Policies"},
        ],
        {"Description": "second", "Policies": None},
        echoed=("RoleName", "AssumeRolePolicyDocument", "Description", "Tags", "Policies"),
        read_only=("Arn", "RoleId"),
    ),
    Case(
        "AWS::KMS::Key",
        lambda aws: {"Description": "state key", "EnableKeyRotation": True, "Tags": TAGS},
        [*TAG_PATCH, {"op": "replace", "path": "/Enabled", "value": False}],
        {"Enabled": False},
        echoed=("Description", "EnableKeyRotation", "Tags"),
        read_only=("Arn", "KeyId"),
    ),
    Case(
        "AWS::Logs::LogGroup",
        lambda aws: {"LogGroupName": unique("/app/logs"), "RetentionInDays": 7, "Tags": TAGS},
        [*TAG_PATCH, {"op": "replace", "path": "/RetentionInDays", "value": 30}],
        {"RetentionInDays": 30},
        echoed=("LogGroupName", "RetentionInDays", "Tags"),
        read_only=("Arn",),
    ),
    Case(
        "AWS::SSM::Parameter",
        lambda aws: {
            "Name": unique("/app/param"),
            "Type": "String",
            "Value": "one",
            "Description": "write-only description",
            "Tags": {"team": "red"},
        },
        [
            {"op": "replace", "path": "/Value", "value": "two"},
            {"op": "replace", "path": "/Tags", "value": {"team": "blue"}},
        ],
        {"Value": "two", "Tags": {"team": "blue"}},
        echoed=("Name", "Type", "Value", "Tags"),
        write_only=("Description",),
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
            "Tags": TAGS,
        },
        [*TAG_PATCH, {"op": "replace", "path": "/MemorySize", "value": 512}],
        {"MemorySize": 512},
        echoed=("FunctionName", "Runtime", "Handler", "MemorySize", "Tags"),
        read_only=("Arn",),
        write_only=("Code",),
    ),
    Case(
        "AWS::EC2::VPC",
        lambda aws: {"CidrBlock": "10.42.0.0/16", "EnableDnsHostnames": True, "Tags": TAGS},
        [*TAG_PATCH, {"op": "replace", "path": "/EnableDnsHostnames", "value": False}],
        {"EnableDnsHostnames": False},
        echoed=("CidrBlock", "EnableDnsHostnames", "Tags"),
        read_only=("VpcId", "DefaultSecurityGroup"),
    ),
    Case(
        "AWS::EC2::SecurityGroup",
        lambda aws: {
            "GroupName": unique("sg"),
            "GroupDescription": "web",
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/8"}
            ],
            "Tags": TAGS,
        },
        [
            *TAG_PATCH,
            {
                "op": "replace",
                "path": "/SecurityGroupIngress",
                "value": [
                    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "10.1.0.0/16"}
                ],
            },
        ],
        {
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "10.1.0.0/16"}
            ]
        },
        echoed=("GroupName", "GroupDescription", "SecurityGroupIngress", "Tags"),
        read_only=("Id", "GroupId"),
    ),
    Case(
        "AWS::SecretsManager::Secret",
        lambda aws: {
            "Name": unique("secret"),
            "Description": "db password",
            "SecretString": "hunter2",
            "Tags": TAGS,
        },
        [*TAG_PATCH, {"op": "replace", "path": "/Description", "value": "rotated"}],
        {"Description": "rotated"},
        echoed=("Name", "Description", "Tags"),
        read_only=("Id",),
        write_only=("SecretString",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.type_name for c in CASES])
def test_full_lifecycle(cc: Any, aws: Callable[[str], Any], case: Case) -> None:
    desired = case.desired(aws)

    created = create(cc, case.type_name, desired)
    assert created["OperationStatus"] == "SUCCESS", created
    identifier = created["Identifier"]
    model = get(cc, case.type_name, identifier)
    for prop in case.echoed:
        assert model[prop] == desired[prop], prop
    for prop in case.read_only:
        assert model.get(prop), f"read-only {prop} missing"
    for prop in case.write_only:
        assert prop not in model, f"write-only {prop} returned"
    assert json.loads(created["ResourceModel"]) == model

    listed = cc.get_paginator("list_resources").paginate(TypeName=case.type_name)
    assert identifier in [d["Identifier"] for page in listed for d in page["ResourceDescriptions"]]

    updated = update(cc, case.type_name, identifier, case.patch)
    assert updated["OperationStatus"] == "SUCCESS", updated
    after = get(cc, case.type_name, identifier)
    for prop, value in case.expected_after.items():
        assert after.get(prop) == value, prop
    if "Tags" in desired:
        expected_tags = (
            {"team": "blue"} if isinstance(desired["Tags"], dict) else TAG_PATCH[0]["value"]
        )
        assert after["Tags"] == expected_tags

    deleted = delete(cc, case.type_name, identifier)
    assert deleted["OperationStatus"] == "SUCCESS", deleted
    with pytest.raises(cc.exceptions.ResourceNotFoundException):
        cc.get_resource(TypeName=case.type_name, Identifier=identifier)


@pytest.mark.parametrize("case", CASES, ids=[c.type_name for c in CASES])
def test_get_resource_only_returns_schema_properties(
    cc: Any, aws: Callable[[str], Any], case: Case
) -> None:
    schema = bundled_schema_document(case.type_name)
    assert schema is not None
    created = create(cc, case.type_name, case.desired(aws))
    model = get(cc, case.type_name, created["Identifier"])

    assert set(model) <= set(schema["properties"])
    write_only = {p.removeprefix("/properties/") for p in schema.get("writeOnlyProperties", [])}
    assert not set(model) & write_only
    for pointer in schema["primaryIdentifier"]:
        assert model[pointer.removeprefix("/properties/")] == created["Identifier"]
    delete(cc, case.type_name, created["Identifier"])
