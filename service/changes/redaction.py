"""Secrets never reach state in plaintext: they become salted fingerprints.

Write-only properties (the schema's ``writeOnlyProperties``) and secret-looking values (under
keys such as ``Password`` or ``SecretString``, or shaped like AWS secret keys and PEM private
keys) are replaced by ``{"ccstate:redacted": "hmac-sha256:<hex>"}``. The HMAC key is a random
per-workspace salt kept in the shared backend, so every server fingerprints alike and drift
can still tell whether a live value equals the one recorded, without storing it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import jsonpointer
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.errors import StateCorrupt
from ccstate.service.names import validate_workspace
from ccstate.service.ports import ObjectStore
from ccstate.service.state.model import canonical_json

MARKER = "ccstate:redacted"
PREFIX = "hmac-sha256:"

_SECRET_KEY = re.compile(
    r"password|passwd|passphrase|secret|token|private[_-]?key|credential|api[_-]?key"
    r"|access[_-]?key|auth[_-]?key|connection[_-]?string|signing[_-]?key",
    re.IGNORECASE,
)
# Keys that name a secret but hold something else: its ARN, id, name, length, policy...
_NOT_A_SECRET_KEY = re.compile(
    r"(arn|arns|id|ids|name|names|length|type|types|validity|units|enabled|version|versionid"
    r"|policy|policies|configuration|config|location|path|ttl|source|kmskeyid|rotation"
    r"|duration|count|header|headers|exclude\w*|require\w*)$",
    re.IGNORECASE,
)
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_AWS_SECRET_KEY = re.compile(r"(?=.*[a-z])(?=.*[A-Z])(?=.*\d)[A-Za-z0-9/+]{40}")
_TOKEN_PREFIXES = ("ghp_", "gho_", "github_pat_", "xoxb-", "xoxp-", "sk_live_", "AKIA")
_AKIA = re.compile(r"AKIA[0-9A-Z]{16}")


def is_redacted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARKER}


def fingerprint(value: Any, salt: bytes) -> str:
    """``hmac-sha256:<hex>`` of the value's canonical JSON, keyed with the workspace salt."""
    return PREFIX + hmac.new(salt, canonical_json(value), hashlib.sha256).hexdigest()


def redacted(value: Any, salt: bytes) -> dict[str, str]:
    """The marker that replaces ``value``; a value already redacted stays as it is."""
    if is_redacted(value):
        return dict(value)
    return {MARKER: fingerprint(value, salt)}


def matches_fingerprint(value: Any, recorded: Any, salt: bytes) -> bool:
    """Whether ``value`` is the secret that ``recorded`` (a marker or a fingerprint) stands for."""
    stored = recorded.get(MARKER) if isinstance(recorded, dict) else recorded
    if not isinstance(stored, str):
        return False
    return hmac.compare_digest(fingerprint(value, salt), stored)


def looks_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not _NOT_A_SECRET_KEY.search(key)


def looks_secret_value(value: Any) -> bool:
    """A string shaped like a private key, an AWS secret access key or a well-known token."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if _PEM_PRIVATE.search(text):
        return True
    if len(text) == 40 and _AWS_SECRET_KEY.fullmatch(text):
        return True
    return text.startswith(_TOKEN_PREFIXES) and len(text) >= 20 and not _AKIA.fullmatch(text)


# --------------------------------------------------------------------------- properties


def redact(properties: dict[str, Any] | None, schema: ResourceSchema | None, salt: bytes) -> Any:
    """A copy of ``properties`` with write-only and secret-looking values fingerprinted."""
    if properties is None:
        return None
    out = copy.deepcopy(properties)
    for path in schema.write_only if schema else ():
        out = _replace_at(out, _segments(path), lambda v: redacted(v, salt))
    return _redact_secrets(out, salt)


def _redact_secrets(node: Any, salt: bytes) -> Any:
    if is_redacted(node):
        return node
    if isinstance(node, dict):
        return {k: _redact_entry(k, v, salt) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact_secrets(item, salt) for item in node]
    return redacted(node, salt) if looks_secret_value(node) else node


def _redact_entry(key: str, value: Any, salt: bytes) -> Any:
    if isinstance(value, str) and looks_secret_key(key):
        return redacted(value, salt)
    return _redact_secrets(value, salt)


def _segments(pointer: str) -> list[str]:
    parts = pointer.split("/")[1:] if pointer.startswith("/") else pointer.split("/")
    return [jsonpointer.unescape(p) for p in parts]


def _replace_at(node: Any, segments: list[str], fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to every value at ``segments`` ('*' is any array index or object key)."""
    if not segments:
        return fn(node)
    head, rest = segments[0], segments[1:]
    if is_redacted(node):
        return node
    if isinstance(node, dict):
        keys: Iterable[str] = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            node[key] = _replace_at(node[key], rest, fn)
    elif isinstance(node, list):
        for index in _indexes(head, len(node)):
            node[index] = _replace_at(node[index], rest, fn)
    return node


def _indexes(segment: str, length: int) -> range | list[int]:
    if segment == "*":
        return range(length)
    if segment.isdigit() and int(segment) < length:
        return [int(segment)]
    return []


# --------------------------------------------------------------------------- patches


def redact_patch(
    patch: list[dict[str, Any]] | None, schema: ResourceSchema | None, salt: bytes
) -> list[dict[str, Any]] | None:
    """A copy of a JSON patch whose ``value``s are redacted as the properties they set."""
    if patch is None:
        return None
    return [_redact_operation(op, schema, salt) for op in patch]


def _redact_operation(
    op: dict[str, Any], schema: ResourceSchema | None, salt: bytes
) -> dict[str, Any]:
    out = copy.deepcopy(op)
    if "value" not in out or not isinstance(out.get("path"), str):
        return out
    target = _segments(out["path"])
    value = out["value"]
    for pattern in schema.write_only if schema else ():
        value = _redact_relative(value, target, _segments(pattern), salt)
    last = target[-1] if target else ""
    if isinstance(value, str) and looks_secret_key(last):
        value = redacted(value, salt)
    out["value"] = _redact_secrets(value, salt)
    return out


def _redact_relative(value: Any, target: list[str], pattern: list[str], salt: bytes) -> Any:
    """Redact inside ``value`` (set at ``target``) what the write-only ``pattern`` covers."""
    if not all(p in ("*", t) for p, t in zip(pattern, target, strict=False)):
        return value
    if len(target) >= len(pattern):
        return redacted(value, salt)
    return _replace_at(value, pattern[len(target) :], lambda v: redacted(v, salt))


# --------------------------------------------------------------------------- the salt


def salt_key(workspace: str) -> str:
    return f"{validate_workspace(workspace)}/secrets/salt"


async def load_salt(objects: ObjectStore, workspace: str) -> bytes:
    """The workspace's fingerprint salt, created once for every server sharing the backend."""
    key = salt_key(workspace)
    stored = await objects.get(key)
    if stored is None:
        await objects.put_if_absent(key, secrets.token_hex(32).encode())
        stored = await objects.get(key)
    if stored is None:
        raise StateCorrupt(
            f"The fingerprint salt {key} in {objects.describe()} vanished after it was written.",
            next_step="Check that nothing else deletes objects under the workspace prefix.",
        )
    return bytes.fromhex(stored.body.decode().strip())
