"""Checks made before anything is locked or called: schema, patches, tags, identifiers."""

from __future__ import annotations

import pytest
from ccstate.backends.schemas import bundled_schema_document
from ccstate.service import __version__
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.tagging import DEFAULT_TAGS, with_default_tags
from ccstate.service.changes.validation import apply_patch, validate_patch, validate_properties
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


def test_a_map_of_tags_whose_key_pattern_python_cannot_compile_is_checked() -> None:
    # AWS::SSM::Parameter writes its tag keys as an ECMA pattern (\p{L}...): never a crash.
    tagged = {"Name": "/p", "Type": "String", "Value": "v", "Tags": {"team": "a"}}
    assert validate_properties(PARAMETER, tagged) == tagged
    with pytest.raises(InvalidInput) as refused:
        validate_properties(PARAMETER, {**tagged, "Tags": {"team": 1}})
    assert "/Tags/team" in refused.value.message
