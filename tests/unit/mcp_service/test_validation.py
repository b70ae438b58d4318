"""Checks made before anything is locked or called: schema, patches, tags, identifiers."""

from __future__ import annotations

import pytest
from ccstate.backends.schemas import bundled_schema_document
from ccstate.service import __version__
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.tagging import DEFAULT_TAGS, with_default_tags
from ccstate.service.changes.validation import (
    apply_patch,
    check_against_schema,
    validate_patch,
    validate_properties,
)
from ccstate.service.changes.workflow import primary_identifier
from ccstate.service.errors import InvalidInput

BUCKET = ResourceSchema.from_document(bundled_schema_document("AWS::S3::Bucket") or {})
PARAMETER = ResourceSchema.from_document(bundled_schema_document("AWS::SSM::Parameter") or {})


def test_valid_properties_pass() -> None:
    props = {"BucketName": "my-bucket", "Tags": [{"Key": "k", "Value": "v"}]}
    assert validate_properties(BUCKET, props) == props


@pytest.mark.parametrize(
    ("props", "words"),
    [
        ({"BucketName": 1}, "/BucketName"),
        ({"Nope": 1}, "Nope"),
        ({"Tags": [{"Key": "k"}]}, "'Value' is a required property"),
        ({"Arn": "x"}, "read-only"),
        ([], "JSON object"),
    ],
)
def test_invalid_properties_name_the_problem(props: object, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_properties(BUCKET, props)
    assert words in caught.value.message


def test_patch_must_be_rfc6902_and_leave_create_only_properties_alone() -> None:
    good = [{"op": "replace", "path": "/Tags", "value": []}]
    assert validate_patch(BUCKET, good) == good
    for bad in (
        [],
        [{"op": "replace", "path": "/Tags"}],
        [{"op": "move", "path": "/Tags"}],
        [{"op": "add", "path": "/Tags", "value": 1, "extra": 2}],
        [{"op": "replace", "path": "/BucketName", "value": "x"}],
        [{"op": "remove", "path": "/Arn"}],
    ):
        with pytest.raises(InvalidInput):
            validate_patch(BUCKET, bad)


def test_a_patch_that_does_not_apply_is_the_callers_error() -> None:
    with pytest.raises(InvalidInput):
        apply_patch({"BucketName": "b"}, [{"op": "remove", "path": "/Tags"}])


def test_default_tags_join_list_and_map_tags_without_overriding() -> None:
    listed = with_default_tags(BUCKET, {"Tags": [{"Key": "MANAGED_BY", "Value": "me"}]})
    assert listed["Tags"][0] == {"Key": "MANAGED_BY", "Value": "me"}
    assert {t["Key"] for t in listed["Tags"]} == set(DEFAULT_TAGS)  # the other two added
    added = with_default_tags(BUCKET, {"BucketName": "b"})
    assert added["Tags"] == [
        {"Key": "MANAGED_BY", "Value": "CCAPI-MCP-SERVER"},
        {"Key": "MCP_SERVER_SOURCE_CODE", "Value": "ccstate"},
        {"Key": "MCP_SERVER_VERSION", "Value": __version__},
    ]
    mapped = with_default_tags(PARAMETER, {"Type": "String", "Value": "v"})
    assert mapped["Tags"] == DEFAULT_TAGS


def test_primary_identifier_comes_from_the_properties_when_named() -> None:
    assert primary_identifier(BUCKET, {"BucketName": "b"}) == "b"
    assert primary_identifier(BUCKET, {}) is None


FUNCTION = ResourceSchema.from_document(bundled_schema_document("AWS::Lambda::Function") or {})


def test_a_read_back_model_need_not_hold_write_only_properties() -> None:
    """Lambda's Code is write-only: an update patches a model read back without it."""
    read_back = {"Role": "arn:aws:iam::123456789012:role/r", "MemorySize": 512}
    check_against_schema(FUNCTION, read_back, read_back=True)
    with pytest.raises(InvalidInput, match="'Code' is a required property"):
        check_against_schema(FUNCTION, read_back)  # a create must still give the code
    with pytest.raises(InvalidInput, match="'Role' is a required property"):
        check_against_schema(FUNCTION, {"MemorySize": 512}, read_back=True)


def test_ecma_property_name_patterns_do_not_break_validation() -> None:
    """SSM's Tags map names keys with \\p{L}, which Python's re cannot compile."""
    props = {"Type": "String", "Value": "v", "Tags": {"team": "blue"}}
    assert validate_properties(PARAMETER, props) == props


def test_ssm_parameter_tags_validate_against_unicode_class_patterns() -> None:
    # The schema's Tags are patternProperties keyed by ECMA patterns with \p{L}: Python's re
    # cannot compile them; they must still be checked, not crash the request.
    props = {"Type": "String", "Value": "v", "Tags": {"MANAGED_BY": "ccstate", "Team": "é"}}
    assert validate_properties(PARAMETER, props) == props


def test_ssm_parameter_tag_keys_outside_the_pattern_are_refused() -> None:
    props = {"Type": "String", "Value": "v", "Tags": {"bad{key}": "x"}}
    with pytest.raises(InvalidInput) as caught:
        validate_properties(PARAMETER, props)
    assert "bad{key}" in caught.value.message
