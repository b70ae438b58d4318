"""Secrets never reach state in plaintext: they become salted fingerprints.

Write-only properties (the schema's ``writeOnlyProperties``) and secret-looking values (under
keys such as ``Password``, ``SecretString`` or ``PIN``, or judged by their value: known key
formats, credentials in URLs, high-entropy or password-shaped strings; see
``changes.secrets``) are replaced by ``{"ccstate:redacted": "hmac-sha256:<hex>"}``. The HMAC
key is a random per-workspace salt kept in the shared backend, so every server fingerprints
alike and drift can still tell whether a live value equals the one recorded, without storing it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import jsonpointer
from ccstate.service.changes import secrets as secrets_detector
from ccstate.service.changes.log_redaction import (  # noqa: F401  (re-exported)
    RedactingLogFilter,
    log_mask,
    redact_log_handlers,
)
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.errors import StateCorrupt
from ccstate.service.names import validate_workspace
from ccstate.service.ports import ObjectStore
from ccstate.service.state.model import canonical_json

MARKER = "ccstate:redacted"
PREFIX = "hmac-sha256:"

# ``Name``/``Key`` members that say what the ``Value`` beside them is (SSM, ECS, tags).
_LABELS = ("Name", "Key", "name", "key")
VALUE_MEMBERS = ("Value", "value")


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
    return secrets_detector.looks_secret_key(key)


def looks_secret_value(value: Any, key: str = "") -> bool:
    """A string holding a secret by its value: a known key or token format, credentials in a
    URL, a high-entropy or password-shaped word (``changes.secrets``, detect-secrets)."""
    return isinstance(value, str) and secrets_detector.looks_secret_value(value, key)


# --------------------------------------------------------------------------- properties


def redact(properties: dict[str, Any] | None, schema: ResourceSchema | None, salt: bytes) -> Any:
    """A copy of ``properties`` with write-only and secret-looking values fingerprinted."""
    if properties is None:
        return None
    write_only = schema.write_only if schema else ()
    # _redact_secrets builds new containers all the way down: only the write-only pass,
    # which replaces in place, needs a copy of its own.
    out = copy.deepcopy(properties) if write_only else properties
    for path in write_only:
        out = _replace_at(out, _segments(path), lambda v: redacted(v, salt))
    return _redact_secrets(out, salt)


def _redact_secrets(node: Any, salt: bytes, key: str = "") -> Any:
    """A copy of ``node`` (new dicts and lists throughout) with secret values fingerprinted."""
    if is_redacted(node):
        return dict(node)
    if isinstance(node, dict):
        out = {k: _redact_entry(k, v, salt) for k, v in node.items()}
        return _redact_labelled_value(out, salt)
    if isinstance(node, list):
        return [_redact_secrets(item, salt, key) for item in node]
    return redacted(node, salt) if looks_secret_value(node, key) else node


def _redact_entry(key: str, value: Any, salt: bytes) -> Any:
    if isinstance(value, str) and looks_secret_key(key):
        return redacted(value, salt)
    return _redact_secrets(value, salt, key)


def _redact_labelled_value(node: dict[str, Any], salt: bytes) -> dict[str, Any]:
    """``{"Name": "DB_PASSWORD", "Value": ...}``: the label names the value a secret."""
    labels = [node[k] for k in _LABELS if isinstance(node.get(k), str)]
    if not any(looks_secret_key(label) for label in labels):
        return node
    for member in VALUE_MEMBERS:
        if member in node and not is_redacted(node[member]) and node[member] is not None:
            node[member] = redacted(node[member], salt)
    return node


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
    out["value"] = _redact_secrets(value, salt, last)
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


# --------------------------------------------------------------------------- logs
