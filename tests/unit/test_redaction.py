"""Secrets never reach state: write-only and secret-looking values become salted fingerprints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.changes.redaction import (
    MARKER,
    is_redacted,
    load_salt,
    matches_fingerprint,
    redact,
    redact_patch,
)
from ccstate.service.changes.schema import ResourceSchema
from hypothesis import given, settings
from hypothesis import strategies as st

SALT = bytes(range(32))
DB = ResourceSchema.from_document(
    {
        "typeName": "AWS::RDS::DBInstance",
        "properties": {"MasterUserPassword": {"type": "string"}, "Users": {"type": "array"}},
        "writeOnlyProperties": [
            "/properties/MasterUserPassword",
            "/properties/Users/*/Password",
            "/properties/Config/Auth",
        ],
    }
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def dumped(value: Any) -> str:
    return json.dumps(value)


def test_write_only_and_secret_looking_values_are_fingerprinted() -> None:
    props = {
        "DBInstanceIdentifier": "orders",
        "MasterUserPassword": "correct-horse",
        "Users": [{"Name": "app", "Password": "battery-staple"}],
        "Config": {"Auth": {"Mode": "basic", "Seed": 42}},
        "Certificate": PEM,
        "Env": {"AWS_SECRET": AWS_SECRET, "LOG_LEVEL": "info"},
        "MasterUserSecret": {"SecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
    }
    out = redact(props, DB, SALT)
    text = dumped(out)
    for secret in ("correct-horse", "battery-staple", "BEGIN RSA", AWS_SECRET, '"basic"'):
        assert secret not in text
    assert out["DBInstanceIdentifier"] == "orders"
    assert out["Users"][0]["Name"] == "app"
    assert out["Env"]["LOG_LEVEL"] == "info"
    assert out["MasterUserSecret"]["SecretArn"].startswith("arn:aws:secretsmanager")
    assert out["MasterUserPassword"][MARKER].startswith("hmac-sha256:")
    assert props["MasterUserPassword"] == "correct-horse", "the input is left unchanged"


def test_drift_can_compare_a_live_value_with_the_fingerprint() -> None:
    out = redact({"MasterUserPassword": "correct-horse"}, DB, SALT)
    assert matches_fingerprint("correct-horse", out["MasterUserPassword"], SALT)
    assert not matches_fingerprint("changed-out-of-band", out["MasterUserPassword"], SALT)
    assert not matches_fingerprint("correct-horse", out["MasterUserPassword"], b"other salt")


def test_patch_values_are_redacted_at_secret_paths() -> None:
    patch = [
        {"op": "replace", "path": "/MasterUserPassword", "value": "new-password"},
        {"op": "add", "path": "/Users/-", "value": {"Name": "bi", "Password": "pw-of-bi"}},
        {"op": "replace", "path": "/Users/0/Password", "value": "pw-of-app"},
        {"op": "replace", "path": "/Config", "value": {"Auth": "x-auth", "Region": "eu"}},
        {"op": "replace", "path": "/Tags/0/Value", "value": "prod"},
        {"op": "remove", "path": "/ApiToken"},
    ]
    out = redact_patch(patch, DB, SALT)
    text = dumped(out)
    for secret in ("new-password", "pw-of-bi", "pw-of-app", "x-auth"):
        assert secret not in text
    assert out[1]["value"]["Name"] == "bi"
    assert out[3]["value"]["Region"] == "eu"
    assert out[4] == patch[4]
    assert out[5] == patch[5]


def test_salt_is_created_once_and_shared(tmp_path: Path) -> None:
    async def both() -> tuple[bytes, bytes]:
        first = LocalObjectStore(tmp_path / "state")
        second = LocalObjectStore(tmp_path / "state")
        return await asyncio.gather(load_salt(first, "default"), load_salt(second, "default"))

    one, two = asyncio.run(both())
    assert one == two
    assert len(one) == 32
    again = asyncio.run(load_salt(LocalObjectStore(tmp_path / "state"), "default"))
    assert again == one
    other = asyncio.run(load_salt(LocalObjectStore(tmp_path / "state"), "prod"))
    assert other != one


# --------------------------------------------------------------------------- properties

SECRET_KEYS = st.sampled_from(
    [
        "Password",
        "MasterUserPassword",
        "ClientSecret",
        "SecretString",
        "AuthToken",
        "api_key",
        "PrivateKey",
        "private-key",
        "DbCredential",
        "SECRET",
        "connectionString",
    ]
)
PLAIN_KEYS = st.sampled_from(
    [
        "BucketName",
        "Description",
        "Port",
        "Enabled",
        "Items",
        "Region",
        "Name",
        "SecretArn",
        "KmsKeyId",
        "PasswordLength",
        "Value",
        "Key",
    ]
)
# Secrets carry a marker no plain value can contain, so "appears in the output" is exact.
SECRETS = st.text(alphabet="abcdefXYZ0123-", min_size=1, max_size=12).map(lambda s: f"§{s}§")
PLAIN_SCALARS = st.one_of(
    st.integers(), st.booleans(), st.none(), st.text(alphabet="ghijklmnop .-_", max_size=15)
)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> tuple[Any, list[str]]:
    """A properties-like JSON value and the secret strings hidden in it."""
    if depth >= 3 or draw(st.booleans()):
        if draw(st.integers(0, 5)) == 0:
            secret = draw(SECRETS)
            return PEM.replace("MII", secret), [secret]
        return draw(PLAIN_SCALARS), []
    if draw(st.booleans()):
        items = draw(st.lists(documents(depth + 1), max_size=3))
        return [v for v, _ in items], [s for _, found in items for s in found]
    doc: dict[str, Any] = {}
    hidden: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            secret = draw(SECRETS)
            doc[draw(SECRET_KEYS)] = secret
            hidden.append(secret)
        else:
            value, found = draw(documents(depth + 1))
            doc[draw(PLAIN_KEYS)] = value
            hidden += found
    return doc, hidden


def live_secrets(doc: Any, hidden: list[str]) -> list[str]:
    """Secrets still in the document (a later duplicate key can overwrite an earlier one)."""
    text = dumped(doc)
    return [s for s in hidden if s in text]


@settings(max_examples=150, deadline=None)
@given(documents())
def test_no_secret_ever_appears_in_the_output(drawn: tuple[Any, list[str]]) -> None:
    doc, hidden = drawn
    properties = {"Root": doc}
    out = redact(properties, DB, SALT)
    text = dumped(out)
    assert not [s for s in live_secrets(properties, hidden) if s in text]


@settings(max_examples=100, deadline=None)
@given(documents())
def test_redaction_is_idempotent(drawn: tuple[Any, list[str]]) -> None:
    once = redact({"Root": drawn[0]}, DB, SALT)
    assert redact(once, DB, SALT) == once


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        PLAIN_SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(PLAIN_KEYS, inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_values_without_secrets_are_untouched(doc: Any) -> None:
    properties = {"Root": doc, "Name": "x"}
    assert redact(properties, DB, SALT) == properties


@settings(max_examples=100, deadline=None)
@given(SECRETS, st.sampled_from(["/MasterUserPassword", "/Users/3/Password", "/ClientSecret"]))
def test_no_secret_appears_in_a_redacted_patch(secret: str, path: str) -> None:
    patch = [{"op": "replace", "path": path, "value": secret}]
    out = redact_patch(patch, DB, SALT)
    assert secret not in dumped(out)
    assert is_redacted(out[0]["value"])
    assert redact_patch(out, DB, SALT) == out


@settings(max_examples=100, deadline=None)
@given(documents())
def test_the_redacted_copy_shares_nothing_with_the_properties(drawn: tuple[Any, list[str]]) -> None:
    """Without write-only paths no deep copy is made first: the result must still be a copy
    (a caller that edits it must not edit the properties it was given, nor their markers)."""
    plain = ResourceSchema.from_document({"typeName": "AWS::SQS::Queue", "properties": {}})
    properties = {"Root": drawn[0], "Marker": {MARKER: "hmac-sha256:00"}}
    before = json.dumps(properties, sort_keys=True)
    out = redact(properties, plain, SALT)

    def scramble(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                scramble(node[key])
                node[key] = "edited"
            node["added"] = 1
        elif isinstance(node, list):
            for item in node:
                scramble(item)
            node.append("added")

    scramble(out)
    assert json.dumps(properties, sort_keys=True) == before
