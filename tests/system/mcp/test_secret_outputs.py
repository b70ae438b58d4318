"""A write-only secret sent through the MCP tools appears in no tool answer and no state file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.system.mcp.harness import McpSession

SECRET = "AWS::SecretsManager::Secret"
FIRST = "first-value-of-the-db-password-7f3a"
SECOND = "second-value-of-the-db-password-9c1e"


def _state_bytes(backend_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in backend_dir.rglob("*") if p.is_file())


def test_a_write_only_value_is_never_echoed_or_stored(
    server: McpSession, backend_dir: Path
) -> None:
    tokens = server.prepare(
        resource_type=SECRET, properties={"Name": "db-password", "SecretString": FIRST}
    )
    created = server.ok("create_resource", resource_type=SECRET, **tokens)
    patch = [{"op": "add", "path": "/SecretString", "value": SECOND}]
    generated = server.ok(
        "generate_infrastructure_code",
        credentials_token=tokens["credentials_token"],
        resource_type=SECRET,
        identifier=created["identifier"],
        patch_document=patch,
    )
    assert generated["patch_document"][0]["path"] == "/SecretString"
    update_tokens = server.prepare(
        resource_type=SECRET, identifier=created["identifier"], patch_document=patch
    )
    updated = server.ok(
        "update_resource",
        resource_type=SECRET,
        identifier=created["identifier"],
        **update_tokens,
    )

    answers = json.dumps([created, generated, updated])
    assert FIRST not in answers
    assert SECOND not in answers
    stored = _state_bytes(backend_dir)
    assert FIRST.encode() not in stored
    assert SECOND.encode() not in stored
