"""Snapshots of the materialized state and the ``_last_snapshot.json`` pointer."""

from __future__ import annotations

import contextlib
import json
import logging

from ccstate.service.errors import (
    CcstateError,
    PreconditionFailed,
    StateCorrupt,
)
from ccstate.service.state.codec import serial_key, serial_of
from ccstate.service.state.replay import StateView

log = logging.getLogger(__name__)

POINTER_ATTEMPTS = 5


class SnapshotMixin:
    """Snapshots: the materialized state every ``snapshot_every`` serials, and the pointer to
    the newest. Derived data: an unreadable snapshot is skipped and the log replayed."""

    async def _snapshot_if_due(self, view: StateView) -> None:
        if view.serial % self.snapshot_every:
            return
        try:
            await self._write_snapshot(view)
        except (CcstateError, OSError) as exc:  # derived data: the commit is in the log
            log.warning("Could not write the snapshot at serial %d: %s", view.serial, exc)

    async def _write_snapshot(self, view: StateView) -> None:
        """Write once; then move the pointer to it unless it already names a newer one."""
        body = json.dumps(view.to_snapshot(), sort_keys=True, separators=(",", ":")).encode()
        if not await self.objects.put_if_absent(serial_key(self._snap_prefix, view.serial), body):
            return  # someone who read this far first wrote it
        pointer = json.dumps({"serial": view.serial}).encode()
        for _ in range(POINTER_ATTEMPTS):
            current = await self.objects.get(self._last_snapshot_key)
            if current is None:
                if await self.objects.put_if_absent(self._last_snapshot_key, pointer):
                    return
                continue
            if pointer_serial(current.body) >= view.serial:
                return
            with contextlib.suppress(PreconditionFailed):  # moved meanwhile: look again
                await self.objects.put(self._last_snapshot_key, pointer, if_match=current.etag)
                return

    async def _load_latest_snapshot(self) -> StateView:
        pointer = await self.objects.get(self._last_snapshot_key)
        candidates: list[int] = []
        if pointer is not None:
            try:
                candidates.append(int(json.loads(pointer.body)["serial"]))
            except (ValueError, KeyError, TypeError):
                log.warning("Ignoring unreadable %s", self._last_snapshot_key)
        if not candidates:
            keys = await self.objects.list_keys(self._snap_prefix)
            candidates = sorted((s for s in map(serial_of, keys) if s is not None), reverse=True)
        for serial in candidates:
            view = await self._read_snapshot(serial)
            if view is not None:
                return view
        return StateView()

    async def _nearest_snapshot(self, serial: int) -> StateView:
        keys = await self.objects.list_keys(self._snap_prefix)
        found = sorted(s for s in map(serial_of, keys) if s is not None and s <= serial)
        for candidate in reversed(found):
            view = await self._read_snapshot(candidate)
            if view is not None:
                return view
        return StateView()

    async def _read_snapshot(self, serial: int) -> StateView | None:
        """A snapshot is derived data: an unreadable one is skipped (the log is replayed)."""
        key = serial_key(self._snap_prefix, serial)
        obj = await self.objects.get(key)
        if obj is None:
            return None
        try:
            return StateView.from_snapshot(json.loads(obj.body), where=key)
        except (StateCorrupt, json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.warning("Skipping unreadable snapshot %s (%s); replaying the log.", key, exc)
            return None


def pointer_serial(body: bytes) -> int:
    try:
        return int(json.loads(body)["serial"])
    except (ValueError, KeyError, TypeError):
        return 0  # unreadable: any snapshot is better
