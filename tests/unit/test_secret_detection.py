"""Secrets found by their value (detect-secrets and ccstate's rules), not only by a key name;
and the values drift and the graph rely on are never taken for secrets."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from ccstate.service.changes.redaction import (
    MARKER,
    RedactingLogFilter,
    is_redacted,
    matches_fingerprint,
    redact,
    redact_patch,
)
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.secrets import scrub_text

SALT = bytes(range(32))
PARAMETER = ResourceSchema.from_document({"typeName": "AWS::SSM::Parameter"})

SECRETS = {
    "password-shaped SSM value": "Hunter2-P@ssw0rd-2026",
    "password in a database URL": "postgres://app:pgpass-91c2@db.example.com:5432/orders",
    "AWS secret access key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GitHub token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "Stripe key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "Slack token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "random base64": "q8Zr3N0xVb7LkP2mWc9YtE4uHs6JdA1f",
    "private key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    "-----END PRIVATE KEY-----",
    "password in a script": "#!/bin/sh\nexport DB_PASSWORD=sup3rs3cret\nexec app",
}

# Values a state must keep readable: identifiers, ARNs, URLs, hashes ccstate writes, settings.
NOT_SECRETS = {
    "Arn": "arn:aws:lambda:us-east-1:123456789012:function:orders-api",
    "Role": "arn:aws:iam::123456789012:role/service-role/orders-api-role-x1y2z3",
    "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/orders-queue",
    "GroupId": "sg-0123456789abcdef0",
    "KmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "CodeSha256": "Qm9vdHN0cmFwIGNvZGUgc2hhMjU2IGZvciBsYW1iZGE=",
    "ContentDigest": "sha256:3f1a9c0e4b2d8f7a6c5e4d3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f",
    "Recorded": "hmac-sha256:3f1a9c0e4b2d8f7a6c5e4d3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f",
    "BucketName": "cc-Bucket-k2j4h5g6f7d8",
    "PhysicalName": "MyStack-MyBucket-1A2B3C4D5E6F7G8H9I0J",
    "CidrIp": "52.1.2.3/32",
    "DnsServer": "8.8.8.8",
    "Runtime": "python3.12",
    "Handler": "index.handler",
    "Schedule": "cron(0 12 * * ? *)",
    "Description": "Orders API, version 2! Owned by team@example.com",
    "Created": "2024-01-01T00:00:00.000Z",
    "Email": "Ops.Team1@example.com",
    "VersionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
    "LOG_LEVEL": "info",
    "TokenType": "Bearer",
    "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
}


@pytest.mark.parametrize("value", list(SECRETS.values()), ids=list(SECRETS))
def test_a_secret_is_found_by_its_value_under_an_ordinary_key(value: str) -> None:
    out = redact({"Name": "/orders/main", "Value": value}, PARAMETER, SALT)
    assert is_redacted(out["Value"])
    assert out["Name"] == "/orders/main"
    assert matches_fingerprint(value, out["Value"], SALT)  # drift can still compare


def test_values_drift_and_the_graph_rely_on_are_kept() -> None:
    assert redact(dict(NOT_SECRETS), None, SALT) == NOT_SECRETS


def test_environment_variables_named_as_secrets_are_fingerprinted_whatever_their_value() -> None:
    env = {"PIN": "730519", "DB_PASS": "x", "API_TOKEN": "short", "SPIN_COUNT": "3", "PORT": "5432"}
    out = redact({"Environment": {"Variables": env}}, None, SALT)["Environment"]["Variables"]
    assert {k for k, v in out.items() if is_redacted(v)} == {"PIN", "DB_PASS", "API_TOKEN"}
    assert out["SPIN_COUNT"] == "3" and out["PORT"] == "5432"


def test_a_name_or_key_beside_a_value_labels_it() -> None:
    """SSM parameters, ECS container environments and tags carry the name next to the value."""
    props = {
        "Environment": [
            {"Name": "DB_PASSWORD", "Value": "plain"},
            {"Name": "REGION", "Value": "eu-west-1"},
        ],
        "Tags": [{"Key": "team", "Value": "blue"}],
    }
    out = redact(props, None, SALT)
    assert is_redacted(out["Environment"][0]["Value"])
    assert out["Environment"][0]["Name"] == "DB_PASSWORD"
    assert out["Environment"][1]["Value"] == "eu-west-1"
    assert out["Tags"] == [{"Key": "team", "Value": "blue"}]


def test_a_patch_setting_a_secret_by_value_is_redacted() -> None:
    patch = [
        {"op": "replace", "path": "/Value", "value": "Swordfish-9!x"},
        {"op": "add", "path": "/Environment/Variables/PIN", "value": "1234"},
        {"op": "replace", "path": "/MemorySize", "value": 512},
    ]
    out = redact_patch(patch, None, SALT)
    assert out is not None
    assert is_redacted(out[0]["value"]) and is_redacted(out[1]["value"])
    assert out[2]["value"] == 512


def _logged(message: str, *args: Any, exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingLogFilter())
    logger = logging.getLogger(f"test.redaction.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        if exc is not None:
            try:
                raise exc
            except type(exc):
                logger.exception(message, *args)
        else:
            logger.debug(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_log_records_lose_secrets_in_bodies_arguments_and_tracebacks() -> None:
    desired = json.dumps({"Name": "/orders/main", "Value": "Hunter2-P@ssw0rd-2026", "PIN": "7305"})
    body = json.dumps({"TypeName": "AWS::SSM::Parameter", "DesiredState": desired}).encode()
    request = {
        "url_path": "/",
        "body": body,
        "headers": {"X-Amz-Security-Token": "FwoGZXIvYXdzEJr"},
    }
    text = _logged("Making request for %s with params: %s", "CreateResource", request)
    text += _logged(
        "failed", exc=RuntimeError("connect to postgres://app:pgpass-91c2@db.example.com/orders")
    )
    for planted in ("Hunter2-P@ssw0rd-2026", '"7305', "FwoGZXIvYXdzEJr", "pgpass-91c2"):
        assert planted not in text
    assert MARKER in text
    assert "CreateResource" in text and "/orders/main" in text and "db.example.com" in text


def test_known_formats_alone_leave_hashes_and_identifiers_in_messages() -> None:
    digest = "3f1a9c0e4b2d8f7a6c5e4d3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f"
    message = f"Commit 7 has sha256 {digest}; s3://user:pw-91c2@bucket/p is refused"
    shown = scrub_text(message, lambda _s: "***", formats_only=True)
    assert digest in shown and "pw-91c2" not in shown and "user:***@bucket" in shown


def test_a_log_line_keeps_a_named_lock_id_and_still_masks_a_named_key() -> None:
    lock_id = "9f1c3ab27d4e48e6b0c5d2a17e3f6b84"
    key = "c3f09a1b7e5d4c2fa8b6e0d19f7a3c5e"
    out = _logged("force-unlocked lock_id=%s held by bob; encryption_key=%s", lock_id, key)
    assert f"lock_id={lock_id}" in out
    assert key not in out
    # Unnamed, the same value is indistinguishable from a random key: masked.
    assert lock_id not in _logged("lock %s taken", lock_id)
