"""The patch that restores the recorded state, and what it refuses to touch."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.compare import compare
from ccstate.service.drift.plan import build_plan, plan_patch, remediation_patch

SCHEMA = ResourceSchema.from_document(
    {
        "typeName": "AWS::EC2::SecurityGroup",
        "properties": {
            "GroupName": {"type": "string"},
            "GroupDescription": {"type": "string"},
            "SecurityGroupIngress": {"type": "array", "insertionOrder": False},
            "Tags": {"type": "array"},
            "Items": {"type": "array"},
        },
        "readOnlyProperties": ["/properties/GroupId", "/properties/Items/*/Id"],
        "createOnlyProperties": ["/properties/GroupName", "/properties/GroupDescription"],
    }
)


def restore(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    patch = remediation_patch(compare(expected, actual, SCHEMA), expected, SCHEMA)
    return jsonpatch.apply_patch(copy.deepcopy(actual), patch)


def test_patch_restores_changed_removed_and_added_values() -> None:
    expected = {"A": {"B": 1, "C": [1, 2, 3]}, "Gone": "x"}
    actual = {"A": {"B": 2, "C": [1, 5]}, "New": {"x": 1}}
    schema = ResourceSchema(type_name="Test::Any::Thing")
    rules = [{"path": "/New", "severity": "medium", "report_added": True}]
    diffs = compare(expected, actual, schema, severity_rules=rules)
    patch = remediation_patch(diffs, expected, schema)
    assert jsonpatch.apply_patch(actual, patch) == expected


def test_unordered_array_is_restored_whole() -> None:
    expected = {"SecurityGroupIngress": [{"CidrIp": "10.0.0.0/8"}]}
    actual = {"SecurityGroupIngress": [{"CidrIp": "0.0.0.0/0"}, {"CidrIp": "10.0.0.0/8"}]}
    patch = remediation_patch(compare(expected, actual, SCHEMA), expected, SCHEMA)
    assert patch == [
        {"op": "replace", "path": "/SecurityGroupIngress", "value": [{"CidrIp": "10.0.0.0/8"}]}
    ]


def test_tags_are_restored_without_system_tags() -> None:
    expected = {
        "Tags": [{"Key": "aws:cloudformation:stack-id", "Value": "s"}, {"Key": "a", "Value": "1"}]
    }
    actual = {"Tags": [{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}]}
    patch = remediation_patch(compare(expected, actual, SCHEMA), expected, SCHEMA)
    assert patch == [{"op": "replace", "path": "/Tags", "value": [{"Key": "a", "Value": "1"}]}]


def test_tags_added_out_of_band_are_removed() -> None:
    actual = {"Tags": [{"Key": "a", "Value": "2"}]}
    assert restore({}, actual) == {}


def test_ordered_array_shrinks_from_the_end() -> None:
    schema = ResourceSchema(type_name="Test::Any::Thing")
    expected = {"L": [1]}
    actual = {"L": [1, 2, 3, 4]}
    patch = remediation_patch(compare(expected, actual, schema), expected, schema)
    assert [op["path"] for op in patch] == ["/L/3", "/L/2", "/L/1"]
    assert jsonpatch.apply_patch(actual, patch) == expected


def test_ordered_array_grows_in_order() -> None:
    schema = ResourceSchema(type_name="Test::Any::Thing")
    expected = {"L": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}
    actual = {"L": [1]}
    patch = remediation_patch(compare(expected, actual, schema), expected, schema)
    assert jsonpatch.apply_patch(actual, patch) == expected


def test_create_only_drift_is_blocked_with_a_reason() -> None:
    expected = {"GroupDescription": "web", "Tags": [{"Key": "a", "Value": "1"}]}
    actual = {"GroupDescription": "changed", "Tags": []}
    plan = build_plan(
        "sg-1", "AWS::EC2::SecurityGroup", compare(expected, actual, SCHEMA), expected, SCHEMA
    )
    assert plan.remediable and not plan.complete
    assert [b.path for b in plan.blocked] == ["/GroupDescription"]
    assert "create-only" in plan.blocked[0].reason
    assert plan.patch == [{"op": "replace", "path": "/Tags", "value": [{"Key": "a", "Value": "1"}]}]
    assert "1 of 2" in plan.reason


def test_only_create_only_drift_is_not_remediable() -> None:
    expected, actual = {"GroupName": "a"}, {"GroupName": "b"}
    plan = build_plan("sg", SCHEMA.type_name, compare(expected, actual, SCHEMA), expected, SCHEMA)
    assert not plan.remediable
    assert plan.patch == []
    assert "create-only" in plan.reason


def test_in_sync_plan_says_nothing_to_do() -> None:
    plan = build_plan("sg", SCHEMA.type_name, [], {}, SCHEMA)
    assert not plan.remediable
    assert "No drift" in plan.reason
    assert plan.to_dict()["patch"] == []


def test_secrets_are_never_written_back_from_fingerprints() -> None:
    expected = {"Password": {"ccstate:redacted": "hmac-sha256:abc"}}
    diffs = compare(expected, {"Password": "new"}, SCHEMA, fingerprint_matcher=lambda f, v: False)
    patch, blocked = plan_patch(diffs, expected, SCHEMA)
    assert patch == []
    assert blocked[0].path == "/Password"
    assert "fingerprint" in blocked[0].reason


def test_read_only_parts_are_not_written() -> None:
    expected = {"Items": [{"Name": "a", "Id": "1"}, {"Name": "b", "Id": "2"}]}
    actual = {"Items": [{"Name": "a", "Id": "9"}]}
    patch = remediation_patch(compare(expected, actual, SCHEMA), expected, SCHEMA)
    assert patch == [{"op": "add", "path": "/Items/1", "value": {"Name": "b"}}]


def test_keys_needing_pointer_escapes_are_patched() -> None:
    schema = ResourceSchema(type_name="Test::Any::Thing")
    expected = {"a/b": {"c~d": 1}}
    actual = {"a/b": {"c~d": 2}}
    patch = remediation_patch(compare(expected, actual, schema), expected, schema)
    assert patch == [{"op": "replace", "path": "/a~1b/c~0d", "value": 1}]
    assert jsonpatch.apply_patch(actual, patch) == expected
