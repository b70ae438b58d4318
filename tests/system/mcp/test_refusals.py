"""Token misuse and bad input, through a real MCP client over stdio.

Each one gets a clear tool error, AWS is not called, the state does not change and no lock
stays held.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ccstate.sandbox import Sandbox

from tests.system.mcp.conftest import ServerFactory, held_locks
from tests.system.mcp.harness import McpSession, aws_kwargs

S3 = "AWS::S3::Bucket"


@pytest.fixture
def unchanged(server: McpSession, sandbox: Sandbox, backend_dir: Path) -> Iterator[None]:
    """Whatever the test does: no new state version, no new bucket, no lock left held."""
    head = server.ok("list_state_versions", limit=1)
    buckets = _buckets(sandbox)
    yield
    assert server.ok("list_state_versions", limit=1) == head
    assert _buckets(sandbox) == buckets
    assert held_locks(backend_dir) == []


@pytest.fixture(scope="module")
def existing(sandbox: Sandbox) -> list[str]:
    """Buckets made out of band before the refusal tests, for updates and deletes."""
    names = ["patched-bucket", "explained-bucket", "precious-bucket"]
    s3 = boto3.client("s3", **_aws(sandbox))
    for name in names:
        s3.create_bucket(Bucket=name)
    return names


def _create_tokens(server: McpSession, name: str) -> dict[str, str]:
    return server.prepare(resource_type=S3, properties={"BucketName": name})


# ------------------------------------------------------------------ tokens


def test_a_forged_token_is_refused(server: McpSession, unchanged: None) -> None:
    tokens = _create_tokens(server, "forged-token")
    tokens["security_scan_token"] = "A" * 43

    refused = server.call("create_resource", resource_type=S3, **tokens)

    assert refused.error == "token_error"
    assert refused.check == "unknown"
    assert refused["next_step"]


def test_a_replayed_token_is_refused(server: McpSession, sandbox: Sandbox) -> None:
    tokens = _create_tokens(server, "replayed-token")
    server.ok("create_resource", resource_type=S3, **tokens)
    head = server.ok("list_state_versions", limit=1)

    replayed = server.call("create_resource", resource_type=S3, **tokens)

    assert replayed.error == "token_error"
    assert replayed.check == "consumed"
    assert server.ok("list_state_versions", limit=1) == head


def test_tokens_from_another_chain_are_refused(server: McpSession, unchanged: None) -> None:
    first = _create_tokens(server, "chain-one")
    second = _create_tokens(server, "chain-two")
    mixed = {**first, "explained_token": second["explained_token"]}

    refused = server.call("create_resource", resource_type=S3, **mixed)

    assert refused.error == "token_error"
    assert refused.check == "wrong_chain"


def test_a_scan_token_in_place_of_credentials_is_refused(
    server: McpSession, unchanged: None
) -> None:
    tokens = _create_tokens(server, "wrong-type")

    refused = server.call(
        "generate_infrastructure_code",
        resource_type=S3,
        credentials_token=tokens["security_scan_token"],
        properties={"BucketName": "wrong-type"},
    )

    assert refused.error == "token_error"
    assert refused.check == "wrong_type"


def test_an_update_must_apply_the_explained_patch(
    server: McpSession, existing: list[str], unchanged: None
) -> None:
    explained = [{"op": "add", "path": "/Tags", "value": [{"Key": "a", "Value": "b"}]}]
    other = [{"op": "add", "path": "/Tags", "value": [{"Key": "a", "Value": "EVIL"}]}]
    tokens = server.prepare(resource_type=S3, identifier="patched-bucket", patch_document=explained)

    refused = server.call(
        "update_resource",
        resource_type=S3,
        identifier="patched-bucket",
        patch_document=other,
        **tokens,
    )

    assert refused.error == "token_error"
    assert refused.check == "payload_mismatch"


def test_a_delete_only_deletes_the_explained_identifier(
    server: McpSession, existing: list[str], unchanged: None
) -> None:
    tokens = server.prepare(resource_type=S3, identifier="explained-bucket", operation="delete")

    refused = server.call(
        "delete_resource", resource_type=S3, identifier="precious-bucket", confirmed=True, **tokens
    )

    assert refused.error == "token_error"
    assert refused.check == "wrong_resource"


def test_a_delete_needs_confirmation(
    server: McpSession, existing: list[str], unchanged: None
) -> None:
    tokens = server.prepare(resource_type=S3, identifier="explained-bucket", operation="delete")
    refused = server.call(
        "delete_resource", resource_type=S3, identifier="explained-bucket", **tokens
    )
    assert refused.error == "invalid_input"


def test_a_create_without_a_scan_token_is_refused(server: McpSession, unchanged: None) -> None:
    tokens = _create_tokens(server, "unscanned")
    del tokens["security_scan_token"]

    refused = server.call("create_resource", resource_type=S3, **tokens)

    assert refused.error == "token_error"
    assert refused.check == "scan_missing"


def test_an_expired_token_is_refused(
    start_server: ServerFactory, backend_dir: Path, sandbox: Sandbox
) -> None:
    short = start_server(backend_dir, "--token-ttl", "1", name="short-ttl")
    tokens = _create_tokens(short, "expired-token")
    head = short.ok("list_state_versions", limit=1)
    time.sleep(1.5)

    refused = short.call("create_resource", resource_type=S3, **tokens)

    assert refused.error == "token_error"
    assert refused.check == "expired"
    assert short.ok("list_state_versions", limit=1) == head
    assert "expired-token" not in _buckets(sandbox)


def test_a_token_of_another_principal_is_refused(
    start_server: ServerFactory, backend_dir: Path, sandbox: Sandbox
) -> None:
    alice = start_server(backend_dir, name="alice", CCSTATE_USER="alice")
    bob = start_server(backend_dir, name="bob", CCSTATE_USER="bob")
    tokens = _create_tokens(alice, "alices-bucket")

    refused = bob.call("create_resource", resource_type=S3, **tokens)

    assert refused.error == "token_error"
    assert refused.check == "wrong_principal"
    assert "alices-bucket" not in _buckets(sandbox)


# ------------------------------------------------------------------ bad input


def test_an_unknown_resource_type_is_refused(server: McpSession, unchanged: None) -> None:
    refused = server.call(
        "generate_infrastructure_code",
        resource_type="AWS::Nope::Thing",
        credentials_token=server.credentials(),
        properties={"Name": "x"},
    )
    assert refused.error == "not_found"
    assert "AWS::Nope::Thing" in refused["message"]


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ({"BucketName": 42}, "not of type 'string'"),
        ({"BucketName": "ok-name", "Colour": "blue"}, "Colour"),
        ({"BucketName": "ok-name", "Arn": "arn:aws:s3:::x"}, "read-only"),
        ({"BucketName": "x" * 20_000}, "characters"),
    ],
)
def test_properties_that_violate_the_schema_are_refused(
    server: McpSession, unchanged: None, properties: dict[str, object], words: str
) -> None:
    refused = server.call(
        "generate_infrastructure_code",
        resource_type=S3,
        credentials_token=server.credentials(),
        properties=properties,
    )
    assert refused.error == "invalid_input"
    assert words in refused["message"]


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "frobnicate", "path": "/Tags"}],
        [{"op": "add", "path": "Tags", "value": []}],
        [{"op": "replace", "path": "/Tags"}],
        [{"op": "replace", "path": "/BucketName", "value": "renamed"}],
    ],
)
def test_patches_that_are_not_valid_rfc6902_are_refused(
    server: McpSession, unchanged: None, patch: list[dict[str, object]]
) -> None:
    refused = server.call(
        "generate_infrastructure_code",
        resource_type=S3,
        credentials_token=server.credentials(),
        identifier="explained-bucket",
        patch_document=patch,
    )
    assert refused.error == "invalid_input"


@pytest.mark.parametrize("identifier", ["../../etc/passwd", "a/../b", "bad\x00id", " padded "])
def test_identifiers_with_path_tricks_are_refused(
    server: McpSession, unchanged: None, identifier: str
) -> None:
    for tool, args in [
        ("show_resource_history", {}),
        ("get_resource", {"resource_type": S3}),
        ("import_resource", {"resource_type": S3, "user_intent": "x"}),
    ]:
        refused = server.call(tool, identifier=identifier, **args)
        assert refused.error == "invalid_input", (tool, refused.data)


def test_oversized_text_is_refused(server: McpSession, unchanged: None) -> None:
    credentials = server.credentials()
    generated = server.ok(
        "generate_infrastructure_code",
        resource_type=S3,
        credentials_token=credentials,
        properties={"BucketName": "oversized"},
    )
    refused = server.call(
        "explain", generated_code_token=generated["generated_code_token"], user_intent="x" * 9000
    )
    assert refused.error == "invalid_input"


def test_arguments_that_fail_the_input_schema_get_the_error_object(
    server: McpSession, unchanged: None
) -> None:
    """docs/mcp-tools.md: every failure is the JSON error object, argument validation too."""
    mistyped = server.call("list_state_versions", limit="Hunter2-P@ssw0rd")
    missing = server.call("get_resource", resource_type=S3)
    unknown = server.call("no_such_tool")
    for outcome in (mistyped, missing, unknown):
        assert not outcome.ok
        assert outcome.error == "invalid_input", outcome.data
        assert outcome.data["next_step"]
    assert mistyped.data["details"]["field"] == "limit"
    assert "Hunter2" not in str(mistyped.data)  # the rejected value is not echoed
    assert missing.data["details"]["field"] == "identifier"


def test_a_readonly_server_refuses_every_change(
    start_server: ServerFactory, backend_dir: Path
) -> None:
    readonly = start_server(backend_dir, "--readonly", name="readonly")
    credentials = readonly.credentials()
    head = readonly.ok("list_state_versions", limit=1)
    for tool, args in [
        (
            "generate_infrastructure_code",
            {
                "resource_type": S3,
                "properties": {"BucketName": "r"},
                "credentials_token": credentials,
            },
        ),
        (
            "create_resource",
            {
                "resource_type": S3,
                "credentials_token": credentials,
                "explained_token": "x",
                "security_scan_token": "y",
            },
        ),
        ("restore_state_version", {"serial": 0}),
        ("import_resource", {"resource_type": S3, "identifier": "r", "user_intent": "x"}),
    ]:
        refused = readonly.call(tool, **args)
        assert refused.error == "read_only", (tool, refused.data)
    assert readonly.ok("list_state_versions", limit=1) == head


def _buckets(sandbox: Sandbox) -> list[str]:
    return sorted(b["Name"] for b in boto3.client("s3", **_aws(sandbox)).list_buckets()["Buckets"])


def _aws(sandbox: Sandbox) -> dict[str, str]:
    return aws_kwargs(sandbox.env())


def test_a_region_that_is_no_region_name_is_refused(server: McpSession, unchanged: None) -> None:
    # Any region may be asked for (test_awslabs_compat); a malformed one is the caller's error.
    refused = server.call("list_resources", resource_type=S3, region="eu_west;3")
    assert refused.error == "invalid_input"
    assert "eu_west;3" in refused["message"]
    assert refused["next_step"]


def test_default_tags_can_be_switched_off(start_server: ServerFactory, backend_dir: Path) -> None:
    untagged = start_server(backend_dir, name="untagged", DEFAULT_TAGS="disabled")
    generated = untagged.ok(
        "generate_infrastructure_code",
        resource_type=S3,
        credentials_token=untagged.credentials(),
        properties={"BucketName": "no-default-tags"},
    )
    assert "Tags" not in generated["properties_for_explanation"]


def test_a_name_the_state_has_for_another_type_is_refused_before_aws_creates_it(
    server: McpSession, sandbox: Sandbox, backend_dir: Path
) -> None:
    server.ok("create_resource", resource_type=S3, **_create_tokens(server, "taken-name"))
    head = server.ok("list_state_versions", limit=1)
    table = {
        "TableName": "taken-name",
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    }
    tokens = server.prepare(resource_type="AWS::DynamoDB::Table", properties=table)

    refused = server.call("create_resource", resource_type="AWS::DynamoDB::Table", **tokens)

    assert refused.error == "invalid_input"
    assert "already records 'taken-name' as AWS::S3::Bucket" in refused["message"]
    dynamodb = boto3.client("dynamodb", **_aws(sandbox))
    assert "taken-name" not in dynamodb.list_tables()["TableNames"]
    assert server.ok("list_state_versions", limit=1) == head
    assert held_locks(backend_dir) == []
