"""The readable export, written on a debounce: never inside a commit.

The export is the whole seed document (every live resource with its full lineage), so writing
it costs what the history holds: at 100 resources, about 20 ms with 300 commits of history and
2 s with 10,200. It used to be rebuilt after every commit, and the commit returned only once it
was written, so commits grew 75-100x with history. Now a commit only marks the export due; it
is written in the background at most once per ``interval`` seconds (the first one ``interval``
after the commit that made it due, so a burst of commits shares one), and on ``flush`` (the
store's ``close``: the end of a CLI command or of the server). The head a commit reached is
witnessed by a small head file written with each commit instead (``StateStore(head_recorder=)``).
See docs/decisions.md "The readable export".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ccstate.service.state.export_patch import ExportPatch
from ccstate.service.state.model import StateDocument

log = logging.getLogger(__name__)

# The document (or a patch of the previous export) at the head and the serial it is at;
# None: nothing to write.
Build = Callable[[], Awaitable[tuple[StateDocument | ExportPatch | None, int]]]
Write = Callable[[StateDocument | ExportPatch], Awaitable[None]]
EXPORT_INTERVAL_SECONDS = 5.0


class DebouncedExport:
    def __init__(self, build: Build, write: Write, *, interval: float) -> None:
        self._build = build
        self._write = write
        self._interval = interval
        self._turn = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._sleeping = False
        self.due = 0  # the highest serial a commit of ours reached
        self.exported = 0  # the highest serial an export was written at (or skipped)

    def mark_due(self, serial: int) -> None:
        """A commit reached ``serial``: write the export within ``interval`` seconds."""
        self.due = max(self.due, serial)
        if self.exported >= serial or (self._timer is not None and not self._timer.done()):
            return
        self._timer = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        """Commits that land while an export is written make another one due: one more turn."""
        while True:
            self._sleeping = True
            try:
                await asyncio.sleep(self._interval)
            finally:
                self._sleeping = False
            if not await self._write_due() or self.exported >= self.due:
                return

    async def flush(self) -> None:
        """Write the export now if a commit made it due since the last one."""
        timer, self._timer = self._timer, None
        if timer is not None and self._sleeping:  # a write under way is let finish
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await self._write_due()

    async def _write_due(self) -> bool:
        """A failure is logged, not raised: the commits have landed, and the next export
        (a later commit's, or ``state pull``) writes the document again."""
        async with self._turn:
            if self.exported >= self.due:
                return True
            try:
                doc, head = await self._build()
                if doc is not None:
                    await self._write(doc)
            except Exception as exc:
                log.warning(
                    "Serial %d is committed, but the readable state.json export could not be "
                    "written (it is written again after the next commit): %s",
                    self.due,
                    exc,
                )
                return False
            self.exported = max(self.exported, head)
            return True
