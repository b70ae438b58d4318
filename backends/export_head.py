"""The head the log must reach (``StateStore(head_witness=...)``): the higher serial of the
small head file written with each commit and of the readable export's metadata. Kept apart from
``backends.export`` so that a read-only listing checks it without importing the document model.

The head file ``.state.json.head`` (beside ``state.json``) holds the serial, lineage and sha256
of the newest commit this machine made, sealed with the sha256 of those fields: the export is
written on a debounce now, so it alone would no longer witness the newest commits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

# The export begins with its metadata (serial and lineage), before any resource.
_HEAD = re.compile(rb'"metadata":\s*\{(?P<meta>[^{}]*)')
_FIELD = re.compile(rb'"(?P<name>serial|lineage|workspace)":\s*(?P<value>\d+|"[^"]*")')
HEAD_FILE_NAME = ".state.json.head"
_MAX_HEAD_BYTES = 4096


class Witnessed(NamedTuple):
    """A head this machine saw: the head file also names the sha256 of the commit it made."""

    serial: int
    lineage: str
    commit_sha256: str | None = None


def head_file_path(export_path: str | Path) -> Path:
    return Path(export_path).expanduser().absolute().with_name(HEAD_FILE_NAME)


def _seal(serial: int, lineage: str, commit_sha256: object) -> str:
    fields = {"serial": serial, "lineage": lineage, "commit_sha256": commit_sha256}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def head_file_body(serial: int, lineage: str, commit_sha256: str | None) -> bytes:
    fields = {"serial": serial, "lineage": lineage, "commit_sha256": commit_sha256}
    return json.dumps({**fields, "seal": _seal(serial, lineage, commit_sha256)}).encode() + b"\n"


def read_head_file(path: Path) -> Witnessed | None:
    """What a head file witnesses, None when absent, torn, edited or not ours."""
    try:
        with path.open("rb") as file:
            data: Any = json.loads(file.read(_MAX_HEAD_BYTES))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    serial, lineage = data.get("serial"), data.get("lineage")
    if not isinstance(serial, int) or isinstance(serial, bool) or not isinstance(lineage, str):
        return None
    commit_sha256 = data.get("commit_sha256")
    if data.get("seal") != _seal(serial, lineage, commit_sha256):
        return None  # the seal does not match: not a file we wrote whole
    return Witnessed(serial, lineage, commit_sha256 if isinstance(commit_sha256, str) else None)


def _read_export(target: Path) -> Witnessed | None:
    try:
        with target.open("rb") as file:
            head = export_head_of(file.read(8192))
    except OSError:
        return None
    return Witnessed(*head) if head is not None else None


def export_head_of(body: bytes) -> tuple[int, str] | None:
    """(serial, lineage) from the metadata at the start of an export's text."""
    head = _HEAD.search(body[:8192])
    if head is None:
        return None
    fields = {m["name"]: m["value"] for m in _FIELD.finditer(head["meta"])}
    if not fields.get(b"serial", b"").isdigit():
        return None
    return int(fields[b"serial"]), fields.get(b"lineage", b'""').decode().strip('"')


def exported_head(path: str | Path) -> Callable[[], Awaitable[Witnessed | None]]:
    """A ``head_witness=`` for ``StateStore``: the newest head seen, from the head file beside
    ``path`` and from the export ``path`` itself (None when both are absent or unreadable): the
    log must reach it, else its newest commits were deleted, and the head file's commit must be
    the one at its serial, else the log was rewritten."""
    target = Path(path).expanduser().absolute()
    head_file = head_file_path(target)

    def read() -> Witnessed | None:
        seen = [h for h in (read_head_file(head_file), _read_export(target)) if h is not None]
        return max(seen, key=lambda h: h.serial) if seen else None  # the head file on a tie

    async def witness() -> Witnessed | None:
        return await asyncio.to_thread(read)

    return witness
