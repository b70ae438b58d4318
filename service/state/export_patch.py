"""The readable export patched from the previous one: only the changed resources' entries.

The export's text is what ``StateDocument.model_dump_json(indent=2)`` writes: one resource per
block that starts with a line of exactly four spaces and its JSON key, and that is closed by the
next such line or by the line ``  }`` that ends ``"resources"``; JSON strings hold no raw line
breaks, so deeper lines always start with six spaces or more. A patch copies the unchanged
resources' blocks from the previous export as text, serializes the changed resources (their
lineage is the previous block's plus the commits after it) and the metadata and stacks at the
head, and joins them in the head's order: the same bytes as a full build (tests compare them),
with no lineage read for an unchanged resource. The caller must know that ``previous`` is an
export written at ``previous_serial`` of this lineage, unchanged since (``export_digest``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ccstate.service import __version__
from ccstate.service.state.model import STATE_VERSION, StateDocument, StateMetadata
from ccstate.service.state.replay import StateView

if TYPE_CHECKING:
    from ccstate.service.state.store import StateStore

_RESOURCES = '\n  "resources": {'
_END = "\n  }"
_BLOCK = re.compile(r'\n    ("(?:[^"\\]|\\.)*"): ')
# Beyond this many commits since the previous export a full build is as cheap as reading them.
MAX_PATCHED_COMMITS = 500


def split(text: str) -> tuple[str, dict[str, str], str] | None:
    """(head, {key: block}, tail) of an export's text; None when it is not of that form."""
    start = text.find(_RESOURCES)
    if start < 0:
        return None
    body_start = start + len(_RESOURCES)
    if text.startswith("}", body_start):
        return None  # no resources: a full build is cheap
    end = text.find(_END, body_start)
    if end < 0:
        return None
    body = text[body_start:end]
    found = list(_BLOCK.finditer(body))
    if not found or found[0].start() != 0:
        return None
    blocks: dict[str, str] = {}
    for n, match in enumerate(found):
        stop = found[n + 1].start() - 1 if n + 1 < len(found) else len(body)  # less the ','
        blocks[json.loads(match[1])] = body[match.start() : stop]
    return text[:body_start], blocks, text[end:]


async def patched_text(
    store: StateStore, view: StateView, previous: str, previous_serial: int
) -> str | None:
    """The export at ``view`` from ``previous`` (the export at ``previous_serial``); None when a
    full build is needed (an import or restore since, too many commits, an unknown form)."""
    if not view.resources or not 0 < previous_serial <= view.serial:
        return None
    if view.serial - previous_serial > MAX_PATCHED_COMMITS:
        return None
    parts = split(previous)
    if parts is None:
        return None
    _, old_blocks, _ = parts
    commits = await store._read_commits(range(previous_serial + 1, view.serial + 1))
    if any(c.replace_state is not None for c in commits):
        return None
    touched = {ch.identifier for c in commits for ch in c.changes}
    changed = [k for k in view.resources if k in touched or k not in old_blocks]
    changed = changed or [next(iter(view.resources))]  # one, to render the document around
    fresh = await _changed_entries(store, view, changed, old_blocks, previous_serial)
    rendered = split(_document_text(view, fresh, store.workspace))
    if rendered is None:
        return None
    head, new_blocks, tail = rendered
    blocks = (new_blocks[k] if k in new_blocks else old_blocks[k] for k in view.resources)
    return head + ",".join(blocks) + tail


async def _changed_entries(
    store: StateStore,
    view: StateView,
    changed: list[str],
    old_blocks: dict[str, str],
    previous_serial: int,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in changed:
        serials = await store._serials_of(view, key)
        if key in old_blocks:  # the previous export holds its lineage up to previous_serial
            lineage = json.loads("{" + old_blocks[key] + "}")[key]["lineage"]
            serials = [s for s in serials if s > previous_serial]
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
