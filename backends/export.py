"""The readable ``state.json`` export: the seed's single-file document, written atomically.

The transaction log is the truth; this file is a convenience copy for people and tools that
expect one document. It is written whole or not at all (temp file + fsync + rename) and is 0600,
because resource properties may be sensitive.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from ccstate.backends.local_files import replace_atomically
from ccstate.service.errors import InvalidInput
from ccstate.service.state.model import STATE_VERSION, StateDocument
from pydantic import ValidationError

StateExporter = Callable[[StateDocument], Awaitable[None]]


def document_bytes(doc: StateDocument) -> bytes:
    """The document as people read it: the seed's key order, two-space indent, final newline."""
    # pydantic's serializer writes the same text as json.dumps(indent=2, ensure_ascii=False)
    # about 8x faster: the standard library falls back to pure Python when indenting.
    return (doc.model_dump_json(indent=2, exclude_unset=True) + "\n").encode()


def write_document(path: str | Path, doc: StateDocument) -> Path:
    """Write ``doc`` to ``path`` atomically with mode 0600; returns the absolute path."""
    target = Path(path).expanduser().absolute()
    replace_atomically(target, document_bytes(doc))
    return target


def state_json_exporter(path: str | Path) -> StateExporter:
    """An ``exporter=`` for ``StateStore``: rewrites ``path`` after each commit."""
    target = Path(path).expanduser().absolute()

    async def export(doc: StateDocument) -> None:
        body = document_bytes(doc)
        await asyncio.to_thread(replace_atomically, target, body)

    return export


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


def read_document(path: str | Path) -> StateDocument:
    """Read and check a state document (``state push``); errors name the file and the field."""
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(
            f"State document {source} does not exist.",
            next_step="Pass the path of a file written by `ccstate state pull`.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"Cannot read state document {source}: {exc}.",
            next_step="Check the path and its permissions; the file must be UTF-8 JSON.",
        ) from None
    return parse_document(text, where=str(source))


def parse_document(text: str, *, where: str) -> StateDocument:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"State document {where} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            next_step=f"Fix the JSON syntax at line {exc.lineno}, or pull a fresh copy with "
            "`ccstate state pull`.",
            line=exc.lineno,
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"State document {where} must be a JSON object with version, metadata and resources.",
            next_step="Start from a file written by `ccstate state pull`.",
        )
    if data.get("version") != STATE_VERSION:
        raise InvalidInput(
            f"State document {where}: field 'version' is {data.get('version')!r}; this ccstate "
            f"reads version {STATE_VERSION!r}.",
            next_step=f'Set "version": "{STATE_VERSION}" or pull a fresh copy.',
            field="version",
        )
    try:
        return StateDocument.model_validate(data)
    except ValidationError as exc:
        raise _invalid_field(where, exc) from None


def _invalid_field(where: str, exc: ValidationError) -> InvalidInput:
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    detail = "is missing" if first["type"] == "missing" else f"= {shown}: {first['msg']}"
    return InvalidInput(
        f"State document {where}: field '{field}' {detail}{more}.",
        next_step=f"Correct '{field}' in the file, or pull a fresh copy with `ccstate state pull`.",
        field=field,
    )
