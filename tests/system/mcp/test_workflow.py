"""The whole workflow through a real MCP client over stdio: create, update, delete, history,
versions and restore, with every lineage entry complete and in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from ccstate.sandbox import Sandbox
from ccstate.service.changes.tagging import DEFAULT_TAGS

from tests.system.mcp.conftest import held_locks
from tests.system.mcp.harness import McpSession, aws_kwargs

BUCKET = "ccstate-workflow-bucket"
S3 = "AWS::S3::Bucket"
TOOLS = {
    "check_environment_variables",
    "get_aws_session_info",
    "get_resource_schema_information",
    "list_resources",
    "get_resource",
    "generate_infrastructure_code",
    "explain",
    "run_checkov",
    "create_resource",
    "update_resource",
    "delete_resource",
    "get_resource_request_status",
    "save_state",
    "load_state",
    "show_resource_history",
    "import_resource",
    "list_state_versions",
    "restore_state_version",
}
LINEAGE_FIELDS = {
    "execution_token",
    "operation",
    "timestamp",
    "user",
    "aws_session",
    "explanation",
    "user_intent",
    "checkov_results",
    "outcome",
    "serial",
}


def test_the_server_offers_every_tool_and_explains_the_workflow(server: McpSession) -> None:
    assert set(server.tool_names()) >= TOOLS
    instructions = server.instructions() or ""
    assert "generate_infrastructure_code" in instructions
    assert "explain" in instructions


def test_session_info_names_the_account_and_starts_a_chain(server: McpSession) -> None:
    env = server.ok("check_environment_variables")
    assert env["security_scanning"] == "disabled"
    info = server.ok("get_aws_session_info")
    assert info["account_id"]
    assert info["arn"].startswith("arn:aws:")
    assert len(info["credentials_token"]) >= 40


@dataclass
class Lifecycle:
    """One bucket taken through create, update and delete by the assistant's workflow."""

    created: dict[str, Any]
    after_create: dict[str, Any]
    tags_in_aws: list[dict[str, str]]
    updated: dict[str, Any]
    versioning_in_aws: str
    history: list[dict[str, Any]]
    deleted: dict[str, Any]
    buckets_after_delete: list[str]
    state_after_delete: dict[str, Any]
    history_after_delete: dict[str, Any]
    locks_after: list[object]


@pytest.fixture(scope="module")
def lifecycle(server: McpSession, sandbox: Sandbox, backend_dir: Path) -> Lifecycle:
    """Run once per server process (tests may run on several workers, each with its own)."""
    s3 = boto3.client("s3", **_aws(sandbox))
    tokens = server.prepare(
        "Store the build logs",
        resource_type=S3,
        properties={"BucketName": BUCKET, "Tags": [{"Key": "team", "Value": "platform"}]},
    )
    created = server.ok("create_resource", resource_type=S3, **tokens)
    after_create = server.ok("load_state", identifier=BUCKET)
    tags_in_aws = s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]

    patch = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]
    tokens = server.prepare(
        "Keep old versions of logs", resource_type=S3, identifier=BUCKET, patch_document=patch
    )
    updated = server.ok(
        "update_resource", resource_type=S3, identifier=BUCKET, patch_document=patch, **tokens
    )
    versioning = s3.get_bucket_versioning(Bucket=BUCKET).get("Status", "")
    history = server.ok("show_resource_history", identifier=BUCKET)["entries"]

    tokens = server.prepare(
        "The logs moved elsewhere", resource_type=S3, identifier=BUCKET, operation="delete"
    )
    deleted = server.ok(
        "delete_resource", resource_type=S3, identifier=BUCKET, confirmed=True, **tokens
    )
    return Lifecycle(
        created=created,
        after_create=after_create,
        tags_in_aws=tags_in_aws,
        updated=updated,
        versioning_in_aws=versioning,
        history=history,
        deleted=deleted,
        buckets_after_delete=[b["Name"] for b in s3.list_buckets()["Buckets"]],
        state_after_delete=server.ok("load_state"),
        history_after_delete=server.ok("show_resource_history", identifier=BUCKET),
        locks_after=held_locks(backend_dir),
    )


def test_create_records_the_resource_with_default_tags(lifecycle: Lifecycle) -> None:
    assert lifecycle.created["identifier"] == BUCKET
    tags = {t["Key"]: t["Value"] for t in lifecycle.created["properties"]["Tags"]}
    assert tags == {"team": "platform", **DEFAULT_TAGS}
    assert {"Key": "MANAGED_BY", "Value": "CCAPI-MCP-SERVER"} in lifecycle.tags_in_aws
    assert lifecycle.after_create["resource"]["resource_type"] == S3


def test_update_applies_the_explained_patch(lifecycle: Lifecycle) -> None:
    properties = lifecycle.updated["properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert lifecycle.versioning_in_aws == "Enabled"


def test_history_lists_complete_entries_in_order(lifecycle: Lifecycle) -> None:
    entries = lifecycle.history

    assert [e["operation"] for e in entries] == ["create", "update"]
    assert [e["outcome"] for e in entries] == ["SUCCESS", "SUCCESS"]
    for entry in entries:
        assert set(entry) >= LINEAGE_FIELDS, entry
        assert entry["checkov_results"]["status"] == "SKIPPED"
        assert entry["aws_session"].startswith("arn:aws:")
    create, update = entries
    assert create["serial"] < update["serial"]
    assert create["properties_before"] is None
    assert create["properties_after"]["BucketName"] == BUCKET
    assert create["user_intent"] == "Store the build logs"
    assert "Create AWS::S3::Bucket" in create["explanation"]
    assert update["patch_document"][0]["path"] == "/VersioningConfiguration"
    assert "VersioningConfiguration" not in update["properties_before"]
    assert update["properties_after"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert create["execution_token"] == lifecycle.created["execution_token"]
    assert create["execution_token"] != update["execution_token"]
    # The state keys each entry by the token's SHA-256, never by the token itself.
    assert create["execution_token"].startswith("sha256:") and len(create["execution_token"]) == 71


def test_delete_removes_the_resource_and_keeps_its_history(lifecycle: Lifecycle) -> None:
    assert BUCKET not in lifecycle.buckets_after_delete
    assert BUCKET not in [r["identifier"] for r in lifecycle.state_after_delete["resources"]]
    history = lifecycle.history_after_delete
    assert [e["operation"] for e in history["entries"]] == ["create", "update", "delete"]
    assert history["in_state"] is False


def test_no_lock_stays_held_after_the_workflow(lifecycle: Lifecycle) -> None:
    assert lifecycle.locks_after == []


def test_versions_and_restore_bring_the_record_back(
    server: McpSession, lifecycle: Lifecycle
) -> None:
    after_update = lifecycle.updated["state_serial"]

    restored = server.ok(
        "restore_state_version", serial=after_update, user_intent="undo the record"
    )

    assert restored["restored_from"] == after_update
    resource = server.ok("load_state", identifier=BUCKET)["resource"]
    assert resource["current_properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    versions = server.ok("list_state_versions", limit=10)["versions"]
    serials = [v["serial"] for v in versions]
    assert serials == sorted(serials, reverse=True)
    assert versions[0]["kind"] == "restore"


def test_save_state_writes_the_readable_export(server: McpSession) -> None:
    saved = server.ok("save_state")
    document = json.loads(Path(saved["saved_to"]).read_text())
    assert document["metadata"]["serial"] == saved["serial"]


def test_import_adopts_an_existing_resource(server: McpSession, sandbox: Sandbox) -> None:
    s3 = boto3.client("s3", **_aws(sandbox))
    s3.create_bucket(Bucket="made-by-hand")

    imported = server.ok(
        "import_resource",
        resource_type=S3,
        identifier="made-by-hand",
        user_intent="bring the hand-made bucket under management",
    )

    assert imported["properties"]["BucketName"] == "made-by-hand"
    entry = server.ok("show_resource_history", identifier="made-by-hand")["entries"][-1]
    assert entry["operation"] == "import"
    assert entry["user_intent"] == "bring the hand-made bucket under management"


def test_a_failed_create_is_recorded_too(server: McpSession, sandbox: Sandbox) -> None:
    s3 = boto3.client("s3", **_aws(sandbox))
    s3.create_bucket(Bucket="already-there")
    tokens = server.prepare(
        "duplicate", resource_type=S3, properties={"BucketName": "already-there"}
    )

    failed = server.call("create_resource", resource_type=S3, **tokens)

    assert not failed.ok
    assert failed.error == "cloud_operation_failed"
    entry = server.ok("show_resource_history", identifier="already-there")["entries"][-1]
    assert entry["outcome"] == "FAILED"
    assert entry["error"]["error"] == "cloud_operation_failed"


@pytest.fixture(scope="module")
def secret_server(start_server, module_dir: Path):  # type: ignore[no-untyped-def]
    backend = module_dir / "secret-state"
    backend.mkdir(mode=0o700)
    return start_server(backend, name="secrets"), backend


def test_secret_values_never_reach_the_state_in_plaintext(secret_server) -> None:  # type: ignore[no-untyped-def]
    session, backend = secret_server
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    tokens = session.prepare(
        "bucket with a tagged secret",
        resource_type=S3,
        properties={"BucketName": "secret-tags", "Tags": [{"Key": "ci", "Value": secret}]},
    )
    session.ok("create_resource", resource_type=S3, **tokens)

    stored = [p.read_bytes() for p in backend.rglob("*") if p.is_file()]
    assert stored
    assert not any(secret.encode() in body for body in stored)


def _aws(sandbox: Sandbox) -> dict[str, str]:
    return aws_kwargs(sandbox.env())
