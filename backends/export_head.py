"""The serial and lineage the readable export was written at: a witness of the head that the
log must reach (``StateStore(head_witness=...)``). Kept apart from ``backends.export`` so that a
read-only listing checks it without importing the document model."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

# The export begins with its metadata (serial and lineage), before any resource.
_HEAD = re.compile(rb'"metadata":\s*\{(?P<meta>[^{}]*)')
_FIELD = re.compile(rb'"(?P<name>serial|lineage|workspace)":\s*(?P<value>\d+|"[^"]*")')


def exported_head(path: str | Path) -> Callable[[], Awaitable[tuple[int, str] | None]]:
    """A ``head_witness=`` for ``StateStore``: the serial and lineage the export was written
    at, read from the first kilobytes of ``path`` (None when absent or unreadable): the log
    must reach it, else its newest commits were deleted."""
    target = Path(path).expanduser().absolute()

    def read() -> tuple[int, str] | None:
        try:
            with target.open("rb") as file:
                head = _HEAD.search(file.read(8192))
        except OSError:
            return None
        if head is None:
            return None
        fields = {m["name"]: m["value"] for m in _FIELD.finditer(head["meta"])}
        if not fields.get(b"serial", b"").isdigit():
            return None
        return int(fields[b"serial"]), fields.get(b"lineage", b'""').decode().strip('"')

    async def witness() -> tuple[int, str] | None:
        return await asyncio.to_thread(read)

    return witness
