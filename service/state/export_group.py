"""The readable export after commits, as a group commit.

Every commit used to rebuild and rewrite the whole ``state.json`` (every live resource with its
full lineage) inside the store's lock, so commits that finish together (a stack's parallel
resources) queued behind one export each: the cost grows with the state and with the number
of writers. Now a commit still returns only once an export at or after its serial is written,
but the commits waiting at the same time share one: the first builds the document at the head
(under the store's lock, so it sees a consistent view), writes it outside that lock, and every
commit it covers returns at once. See docs/decisions.md "Stack deploy speed".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ccstate.service.state.model import StateDocument

log = logging.getLogger(__name__)

# The document at the head and the serial it is at; None when it is not to be written.
Build = Callable[[], Awaitable[tuple[StateDocument | None, int]]]
Write = Callable[[StateDocument], Awaitable[None]]


class GroupExport:
    def __init__(self, build: Build, write: Write) -> None:
        self._build = build
        self._write = write
        self._turn = asyncio.Lock()
        self.exported = 0  # the highest serial an export was written at (or skipped)

    async def at_least(self, serial: int) -> None:
        """Return once an export at ``serial`` or later is written; a failure is logged, as
        the commit has landed (the next commit writes it again)."""
        async with self._turn:
            if self.exported >= serial:
                return  # an export that began after our commit covered it
            doc, head = await self._build()
            if doc is not None:
                try:
                    await self._write(doc)
                except Exception as exc:
                    log.warning(
                        "Serial %d is committed, but the readable state.json export could not "
                        "be written (it is rewritten after the next commit): %s",
                        serial,
                        exc,
                    )
                    return
            self.exported = max(self.exported, head)
