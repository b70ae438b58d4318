"""How commits and log keys are written: zero-padded serial keys, and commit bodies sealed
with the sha256 of their canonical JSON (checked on every read).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ccstate.service.errors import (
    IntegrityError,
    StateCorrupt,
    UnsupportedVersion,
)
from ccstate.service.state.model import (
    COMMIT_FORMAT,
    Commit,
    canonical_json,
    sha256_hex,
)

log = logging.getLogger(__name__)

SERIAL_WIDTH = 20


def serial_key(prefix: str, serial: int) -> str:
    return f"{prefix}{serial:0{SERIAL_WIDTH}d}.json"


def serial_of(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name[: -len(".json")] if name.endswith(".json") else ""
    return int(stem) if len(stem) == SERIAL_WIDTH and stem.isdigit() else None


def commit_body(commit: Commit) -> dict[str, Any]:
    """A commit's fields as its file holds them, without its digest. An optional field added
    after the format (``indexed``) is left out when unset, so older commits keep their digest."""
    body = commit.model_dump(mode="json", exclude={"sha256"})
    if body.get("indexed") is None:
        body.pop("indexed", None)
    return body


def encode_commit(commit: Commit) -> bytes:
    return encode_commit_as_read(commit)[0]


def encode_commit_as_read(commit: Commit) -> tuple[bytes, Commit]:
    """The body of ``commit`` and the commit a reader of that body gets (its sha256 set, its
    fields parsed from those bytes, keys in their order there), without the checks of
    ``decode_commit`` (the JSON is ours, its digest just made): a writer keeps what readers
    see for about half the work."""
    body = commit_body(commit)
    body["sha256"] = sha256_hex(canonical_json(body))
    raw = json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False).encode()
    return raw, Commit.model_validate_json(raw)


def decode_commit(raw: bytes, *, where: str) -> Commit:
    next_step = (
        "The file was truncated or edited by hand. Restore it from a backup (S3: the previous "
        "object version), or see ${versions} for the last good serial."
    )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorrupt(
            f"Commit {where} is not valid JSON ({exc}).", next_step=next_step
        ) from exc
    if not isinstance(data, dict):
        raise StateCorrupt(f"Commit {where} is not a JSON object.", next_step=next_step)
    if data.get("format") != COMMIT_FORMAT:
        raise UnsupportedVersion(
            f"Commit {where} has format {data.get('format')!r}; this ccstate reads "
            f"{COMMIT_FORMAT!r}.",
            next_step="Upgrade ccstate to a version that knows this format.",
        )
    stored = data.pop("sha256", None)
    if stored != sha256_hex(canonical_json(data)):
        raise IntegrityError(
            f"Commit {where} does not match its sha256: it was changed after it was written.",
            next_step=next_step,
        )
    try:
        return Commit.model_validate({**data, "sha256": stored})
    except ValueError as exc:
        raise StateCorrupt(f"Commit {where} is malformed: {exc}", next_step=next_step) from exc


def checked_serial(commit: Commit, serial: int) -> Commit:
    if commit.serial != serial:
        raise StateCorrupt(
            f"Commit {serial_key('log/', serial)} claims serial {commit.serial}.",
            next_step="The file was renamed or copied; restore the original.",
        )
    return commit
