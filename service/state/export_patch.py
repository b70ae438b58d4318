"""The readable export patched from the previous one: only the changed resources' entries.

The export's text is what ``StateDocument.model_dump_json(indent=2)`` writes: one resource per
block that starts with a line of exactly four spaces and its JSON key, and that is closed by the
next such line or by the line ``  }`` that ends ``"resources"``; JSON strings hold no raw line
breaks, so deeper lines always start with six spaces or more. A patch keeps the unchanged
resources' blocks of the previous export as byte ranges of that file (the writer copies them,
never reading them into Python), serializes the changed resources (their lineage is the previous
block's, read from its range, plus the commits after it) and the metadata and stacks at the
head, and joins them in the head's order: the same bytes as a full build (tests compare them),
with no lineage read for an unchanged resource. Where each block lies is the ``Layout`` the
writer recorded beside the file; the source of a ``PreviousExport`` must know that the file is
exactly what it recorded (``backends.export.previous_export``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ccstate.service import __version__
from ccstate.service.state.model import STATE_VERSION, StateDocument, StateMetadata
from ccstate.service.state.replay import StateView

if TYPE_CHECKING:
    from ccstate.service.state.store import StateStore

_RESOURCES = b'\n  "resources": {'
_ENDS = (b'\n  },\n  "stacks": ', b"\n  }\n}")  # the end of "resources": stacks follow, or not
_BLOCK = re.compile(rb'\n    ("(?:[^"\\]|\\.)*"): ')
# Beyond this many commits since the previous export a full build is as cheap as reading them.
MAX_PATCHED_COMMITS = 500


@dataclass(frozen=True)
class Layout:
    """Where the parts of an export's bytes lie: the head (up to and including the line
    ``"resources": {``) is ``[0, head_end)``; each block ``(key, start, end)`` is a resource's
    entry without the ``,`` that separates it from the next; the tail is ``[tail_start, size)``."""

    head_end: int
    blocks: tuple[tuple[str, int, int], ...]
    tail_start: int
    size: int


class PreviousExport(Protocol):
    """The export as written at ``serial`` of ``lineage``, unchanged since, and its layout."""

    serial: int
    lineage: str
    layout: Layout

    def read(self, start: int, end: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class ExportPatch:
    """The next export: ``pieces`` in order, each new bytes or a ``(start, end)`` range of
    ``previous`` to copy; ``layout`` is the new file's. The writer closes ``previous``."""

    previous: PreviousExport
    pieces: list[bytes | tuple[int, int]]
    layout: Layout


def layout_of(body: bytes) -> Layout | None:
    """The layout of an export's bytes; None when it is not of that form (or has no resource).
    The end of the resources is searched from the end: no line of the stacks starts with two
    spaces and ``}``, while every line of the resources could start a partial match."""
    start = body.find(_RESOURCES)
    if start < 0:
        return None
    body_start = start + len(_RESOURCES)
    end = body.rfind(_ENDS[0])
    end = end if end >= 0 else body.rfind(_ENDS[1])
    if end <= body_start:
        return None  # no resources (or not this form): a full build is cheap
    found = list(_BLOCK.finditer(body, body_start, end))
    if not found or found[0].start() != body_start:
        return None
    blocks = []
    for n, match in enumerate(found):
        stop = found[n + 1].start() - 1 if n + 1 < len(found) else end  # less the ','
        blocks.append((json.loads(match[1]), match.start(), stop))
    return Layout(body_start, tuple(blocks), end, len(body))


async def patched(
    store: StateStore, view: StateView, previous: PreviousExport
) -> ExportPatch | None:
    """The export at ``view`` from ``previous``; None when a full build is needed (an import or
    restore since, too many commits, another lineage, an unknown form)."""
    if previous.lineage != view.lineage or not view.resources:
        return None
    if not 0 < previous.serial <= view.serial:
        return None
    if view.serial - previous.serial > MAX_PATCHED_COMMITS:
        return None
    old = {key: (start, end) for key, start, end in previous.layout.blocks}
    commits = await store._read_commits(range(previous.serial + 1, view.serial + 1))
    if any(c.replace_state is not None for c in commits):
        return None
    touched = {ch.identifier for c in commits for ch in c.changes}
    changed = [k for k in view.resources if k in touched or k not in old]
    changed = changed or [next(iter(view.resources))]  # one, to render the document around
    fresh = await _changed_entries(store, view, changed, previous, old)
    rendered = _document_text(view, fresh, store.workspace).encode()
    parts = layout_of(rendered)
    if parts is None:
        return None
    new = {key: rendered[start:end] for key, start, end in parts.blocks}
    return _assembled(view, rendered, parts, new, old, previous)


def _assembled(
    view: StateView,
    rendered: bytes,
    parts: Layout,
    new: dict[str, bytes],
    old: dict[str, tuple[int, int]],
    previous: PreviousExport,
) -> ExportPatch:
    """The pieces in the head's order; consecutive old blocks (with the ``,`` between them in
    the old file) become one range, so the writer copies runs, not blocks."""
    pieces: list[bytes | tuple[int, int]] = [rendered[: parts.head_end]]
    blocks: list[tuple[str, int, int]] = []
    at = parts.head_end
    for n, key in enumerate(view.resources):
        if n:
            at += 1
        last = pieces[-1]
        if key in new:
            piece: bytes | tuple[int, int] = new[key]
            size = len(new[key])
        else:
            piece = old[key]
            size = piece[1] - piece[0]
        blocks.append((key, at, at + size))
        at += size
        if isinstance(piece, tuple) and isinstance(last, tuple) and last[1] + 1 == piece[0]:
            pieces[-1] = (last[0], piece[1])  # the ',' between them is copied too
        else:
            if n:
                pieces.append(b",")
            pieces.append(piece)
    tail = rendered[parts.tail_start :]
    pieces.append(tail)
    layout = Layout(parts.head_end, tuple(blocks), at, at + len(tail))
    return ExportPatch(previous, pieces, layout)


async def _changed_entries(
    store: StateStore,
    view: StateView,
    changed: list[str],
    previous: PreviousExport,
    old: dict[str, tuple[int, int]],
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in changed:
        serials = await store._serials_of(view, key)
        if key in old:  # the previous export holds its lineage up to previous.serial
            block = previous.read(*old[key]).decode()
            lineage = json.loads("{" + block + "}")[key]["lineage"]
            serials = [s for s in serials if s > previous.serial]
        else:
            lineage = []
        lineage += [e.model_dump(mode="json") for e in await store._lineage(serials, key)]
        data = view.resources[key].model_dump(mode="json")
        data["lineage"] = lineage
        out[key] = data
    return out


def _document_text(view: StateView, resources: dict[str, dict[str, Any]], workspace: str) -> str:
    """As ``StateView.to_document`` and ``backends.export.document_bytes`` write it, with only
    ``resources`` in it (the metadata counts every resource of the view)."""
    metadata = StateMetadata(
        created=view.created,
        last_updated=view.last_updated,
        mcp_server_version=__version__,
        total_resources=len(view.resources),
        total_operations=view.total_operations,
        lineage=view.lineage,
        serial=view.serial,
        workspace=workspace,
    )
    doc = StateDocument.model_validate(
        {
            "version": STATE_VERSION,
            "metadata": metadata.model_dump(mode="json"),
            "resources": resources,
            "stacks": {k: s.model_dump(mode="json") for k, s in view.stacks.items()},
        }
    )
    return doc.model_dump_json(indent=2, exclude_unset=True) + "\n"
