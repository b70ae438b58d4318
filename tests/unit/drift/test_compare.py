"""What compare() reports as drift, and what it deliberately does not."""

from __future__ import annotations

from typing import Any

import pytest
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.compare import PropertyDifference, compare

BUCKET = ResourceSchema.from_document(
    {
        "typeName": "AWS::S3::Bucket",
        "properties": {
            "BucketName": {"type": "string"},
            "Arn": {"type": "string"},
            "Tags": {"type": "array", "insertionOrder": False},
            "PublicAccessBlockConfiguration": {"type": "object"},
            "VersioningConfiguration": {"type": "object"},
            "BucketEncryption": {"type": "object"},
        },
        "readOnlyProperties": ["/properties/Arn", "/properties/DomainName"],
        "createOnlyProperties": ["/properties/BucketName"],
        "primaryIdentifier": ["/properties/BucketName"],
    }
)
SECURITY_GROUP = ResourceSchema.from_document(
    {
        "typeName": "AWS::EC2::SecurityGroup",
        "definitions": {
            "Ingress": {
                "type": "object",
                "properties": {"CidrIp": {"type": "string"}, "IpProtocol": {"type": "string"}},
            }
        },
        "properties": {
            "GroupDescription": {"type": "string"},
            "GroupId": {"type": "string"},
            "SecurityGroupIngress": {
                "type": "array",
                "insertionOrder": False,
                "items": {"$ref": "#/definitions/Ingress"},
            },
            "SecurityGroupEgress": {"type": "array", "insertionOrder": False},
            "Tags": {"type": "array"},
        },
        "readOnlyProperties": ["/properties/GroupId", "/properties/SecurityGroupIngress/*/Id"],
        "writeOnlyProperties": ["/properties/SecretThing"],
    }
)
QUEUE = ResourceSchema.from_document(
    {
        "typeName": "AWS::SQS::Queue",
        "properties": {
            "QueueName": {"type": "string"},
            "VisibilityTimeout": {"type": "integer"},
            "Tags": {"type": "array"},
            "SqsManagedSseEnabled": {"type": "boolean"},
        },
        "readOnlyProperties": ["/properties/Arn", "/properties/QueueUrl"],
    }
)


def only(diffs: list[PropertyDifference]) -> PropertyDifference:
    assert len(diffs) == 1, diffs
    return diffs[0]


def test_identical_models_have_no_drift() -> None:
    model = {"BucketName": "b", "VersioningConfiguration": {"Status": "Enabled"}}
    assert compare(model, dict(model), BUCKET) == []


def test_changed_value_is_not_equal_with_both_values() -> None:
    diff = only(compare({"VisibilityTimeout": 30}, {"VisibilityTimeout": 60}, QUEUE))
    assert (diff.path, diff.expected, diff.actual, diff.difference_type) == (
        "/VisibilityTimeout",
        30,
        60,
        "NOT_EQUAL",
    )
    assert diff.to_dict()["PropertyPath"] == "/VisibilityTimeout"


def test_property_gone_from_the_cloud_is_remove() -> None:
    diff = only(compare({"VersioningConfiguration": {"Status": "Enabled"}}, {}, BUCKET))
    assert diff.difference_type == "REMOVE"
    assert diff.path == "/VersioningConfiguration"
    assert diff.severity == "high"


def test_read_only_and_write_only_properties_are_ignored() -> None:
    expected = {"GroupId": "sg-1", "SecretThing": {"ccstate:redacted": "hmac-sha256:x"}}
    actual = {"GroupId": "sg-2"}
    assert compare(expected, actual, SECURITY_GROUP) == []


def test_read_only_paths_inside_array_items_are_ignored() -> None:
    expected = {"SecurityGroupIngress": [{"CidrIp": "10.0.0.0/8", "IpProtocol": "tcp", "Id": "a"}]}
    actual = {"SecurityGroupIngress": [{"CidrIp": "10.0.0.0/8", "IpProtocol": "tcp", "Id": "b"}]}
    assert compare(expected, actual, SECURITY_GROUP) == []


def test_unordered_arrays_compare_as_multisets() -> None:
    rules = [{"CidrIp": f"10.0.{i}.0/24", "IpProtocol": "tcp"} for i in range(4)]
    expected = {"SecurityGroupIngress": rules}
    assert compare(expected, {"SecurityGroupIngress": rules[::-1]}, SECURITY_GROUP) == []
    twice = {"SecurityGroupIngress": [*rules, rules[0]]}
    diff = only(compare(expected, twice, SECURITY_GROUP))
    assert diff.difference_type == "ADD"
    assert diff.path == "/SecurityGroupIngress/4"
    assert diff.severity == "critical"


def test_opened_ingress_rule_is_critical_drift() -> None:
    expected = {"SecurityGroupIngress": [{"CidrIp": "10.0.0.0/8", "IpProtocol": "tcp"}]}
    actual = {"SecurityGroupIngress": [{"CidrIp": "0.0.0.0/0", "IpProtocol": "tcp"}]}
    diffs = compare(expected, actual, SECURITY_GROUP)
    assert {(d.difference_type, d.path, d.severity) for d in diffs} == {
        ("REMOVE", "/SecurityGroupIngress/0", "critical"),
        ("ADD", "/SecurityGroupIngress/0", "critical"),
    }
    assert {d.restore_path for d in diffs} == {"/SecurityGroupIngress"}


def test_ordered_arrays_compare_by_position() -> None:
    schema = ResourceSchema(type_name="Test::Any::Thing")
    diffs = compare({"L": [1, 2]}, {"L": [2, 1, 3]}, schema)
    assert [(d.path, d.difference_type) for d in diffs] == [
        ("/L/0", "NOT_EQUAL"),
        ("/L/1", "NOT_EQUAL"),
        ("/L/2", "ADD"),
    ]


def test_tags_ignore_order_and_aws_system_tags() -> None:
    expected = {"Tags": [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}]}
    actual = {
        "Tags": [
            {"Key": "aws:cloudformation:stack-name", "Value": "s"},
            {"Key": "env", "Value": "dev"},
            {"Key": "team", "Value": "a"},
        ]
    }
    assert compare(expected, actual, BUCKET) == []


def test_tag_changes_name_the_tag_position_and_are_low() -> None:
    expected = {"Tags": [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}]}
    actual = {"Tags": [{"Key": "env", "Value": "prod"}, {"Key": "owner", "Value": "x"}]}
    diffs = compare(expected, actual, BUCKET)
    assert {(d.difference_type, d.path, str(d.expected), str(d.actual)) for d in diffs} == {
        ("NOT_EQUAL", "/Tags/0/Value", "dev", "prod"),
        ("ADD", "/Tags/1", "None", "{'Key': 'owner', 'Value': 'x'}"),
        ("REMOVE", "/Tags/0", "{'Key': 'team', 'Value': 'a'}", "None"),
    }
    assert {d.severity for d in diffs} == {"low"}


def test_tags_added_out_of_band_are_drift() -> None:
    diff = only(
        compare(
            {"BucketName": "b"}, {"BucketName": "b", "Tags": [{"Key": "k", "Value": "v"}]}, BUCKET
        )
    )
    assert (diff.path, diff.difference_type) == ("/Tags", "ADD")
    assert diff.actual == [{"Key": "k", "Value": "v"}]


def test_only_system_tags_appearing_is_not_drift() -> None:
    actual = {"Tags": [{"Key": "aws:createdBy", "Value": "x"}]}
    assert compare({}, actual, BUCKET) == []


def test_tags_as_a_map() -> None:
    schema = ResourceSchema(
        type_name="AWS::SSM::Parameter", tagging={"tagProperty": "/properties/Tags"}
    )
    diff = only(compare({"Tags": {"a": "1", "b": "2"}}, {"Tags": {"b": "2", "a": "9"}}, schema))
    assert (diff.path, diff.expected, diff.actual) == ("/Tags/a", "1", "9")


@pytest.mark.parametrize(
    ("added", "why"),
    [
        ({"VisibilityTimeout": 30}, "an ordinary server default"),
        ({"PublicAccessBlockConfiguration": {"BlockPublicAcls": False}}, "false means unset"),
        (
            {
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                }
            },
            "AWS's default for new buckets",
        ),
        (
            {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                            "BucketKeyEnabled": False,
                        }
                    ]
                }
            },
            "SSE-S3 is on by default",
        ),
        ({"VersioningConfiguration": None}, "null is unset"),
        ({"Tags": []}, "no tags"),
    ],
)
def test_server_defaults_are_not_drift(added: dict[str, Any], why: str) -> None:
    schema = BUCKET if "VisibilityTimeout" not in added else QUEUE
    assert compare({}, added, schema) == [], why


def test_security_relevant_property_appearing_is_drift() -> None:
    partial = {
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": False}
    }
    diff = only(compare({}, partial, BUCKET))
    assert (diff.difference_type, diff.severity) == ("ADD", "critical")
    kms = {
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": "k",
                    }
                }
            ]
        }
    }
    assert only(compare({}, kms, BUCKET)).path == "/BucketEncryption"


def test_public_access_block_turned_off_is_critical() -> None:
    on = {"BlockPublicAcls": True, "BlockPublicPolicy": True}
    off = {"BlockPublicAcls": True, "BlockPublicPolicy": False}
    diff = only(
        compare(
            {"PublicAccessBlockConfiguration": on}, {"PublicAccessBlockConfiguration": off}, BUCKET
        )
    )
    assert (diff.path, diff.severity) == (
        "/PublicAccessBlockConfiguration/BlockPublicPolicy",
        "critical",
    )


def test_default_egress_rule_of_a_security_group_is_not_drift() -> None:
    actual = {"SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}]}
    assert compare({}, actual, SECURITY_GROUP) == []
    opened = {"SecurityGroupEgress": [{"IpProtocol": "tcp", "CidrIp": "1.2.3.4/32"}]}
    assert only(compare({}, opened, SECURITY_GROUP)).severity == "critical"


def test_vacuous_values_removed_are_not_drift() -> None:
    expected = {"Tags": [], "VersioningConfiguration": {"Enabled": False}, "Description": ""}
    assert compare(expected, {}, BUCKET) == []


def test_string_and_number_spellings_are_equal() -> None:
    assert compare({"VisibilityTimeout": "30"}, {"VisibilityTimeout": 30}, QUEUE) == []
    assert compare({"SqsManagedSseEnabled": "true"}, {"SqsManagedSseEnabled": True}, QUEUE) == []
    assert compare({"N": True}, {"N": 1}, QUEUE) != []


def test_policy_written_as_json_text_compares_by_meaning() -> None:
    schema = ResourceSchema(type_name="AWS::IAM::Role")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}],
    }
    text = (
        '{"Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow"}], "Version": "2012-10-17"}'
    )
    assert (
        compare({"AssumeRolePolicyDocument": text}, {"AssumeRolePolicyDocument": policy}, schema)
        == []
    )
    changed = {**policy, "Statement": [{"Effect": "Allow", "Action": "*"}]}
    diff = only(
        compare({"AssumeRolePolicyDocument": text}, {"AssumeRolePolicyDocument": changed}, schema)
    )
    assert (diff.path, diff.severity, diff.expected) == (
        "/AssumeRolePolicyDocument",
        "critical",
        text,
    )


def test_redacted_values_are_skipped_without_a_matcher() -> None:
    expected = {"Password": {"ccstate:redacted": "hmac-sha256:abc"}}
    assert compare(expected, {"Password": "hunter2"}, QUEUE) == []
    assert compare(expected, {}, QUEUE) == []


def test_fingerprint_matcher_judges_redacted_values_without_showing_the_secret() -> None:
    expected = {"Password": {"ccstate:redacted": "hmac-sha256:abc"}}

    def matches(fingerprint: str, value: Any) -> bool:
        return fingerprint == "hmac-sha256:abc" and value == "hunter2"

    assert compare(expected, {"Password": "hunter2"}, QUEUE, fingerprint_matcher=matches) == []
    diff = only(compare(expected, {"Password": "changed"}, QUEUE, fingerprint_matcher=matches))
    assert diff.difference_type == "NOT_EQUAL"
    assert "changed" not in repr(diff.to_dict())


def test_user_rules_come_before_the_defaults() -> None:
    rules = [
        {"resource_type": "AWS::SQS::Queue", "path": "/VisibilityTimeout", "severity": "critical"},
        {"path": "/Tags", "severity": "ignore"},
        {"regex": "^/Extra", "severity": "high", "report_added": True},
    ]
    expected = {"VisibilityTimeout": 1, "Tags": [{"Key": "a", "Value": "1"}]}
    actual = {"VisibilityTimeout": 2, "Tags": [], "ExtraThing": 5}
    diffs = compare(expected, actual, QUEUE, severity_rules=rules)
    assert {(d.path, d.severity, d.difference_type) for d in diffs} == {
        ("/VisibilityTimeout", "critical", "NOT_EQUAL"),
        ("/ExtraThing", "high", "ADD"),
    }


def test_unordered_items_with_server_added_defaults_still_match() -> None:
    expected = {"SecurityGroupIngress": [{"CidrIp": "10.0.0.0/8"}, {"CidrIp": "10.1.0.0/16"}]}
    actual = {
        "SecurityGroupIngress": [
            {"CidrIp": "10.1.0.0/16", "Description": ""},
            {"CidrIp": "10.0.0.0/8", "Description": ""},
        ]
    }
    assert compare(expected, actual, SECURITY_GROUP) == []


def test_difference_round_trips_through_its_dict() -> None:
    diff = only(compare({"VisibilityTimeout": 30}, {"VisibilityTimeout": 60}, QUEUE))
    assert PropertyDifference.from_dict(diff.to_dict()) == diff
