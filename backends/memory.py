"""An ObjectStore in memory: the port's semantics without persistence (``memory://``).

Useful for property-based tests of the store's logic and for one-off experiments; state is gone
when the process exits.
"""

from __future__ import annotations

import bisect
import hashlib

from ccstate.service.errors import PreconditionFailed
from ccstate.service.ports import StoredObject


class MemoryObjectStore:
    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._keys: list[str] = []
        self._ever: set[str] = set()  # every key written, like a versioned bucket's history

    def describe(self) -> str:
        return "memory://"

    async def get(self, key: str) -> StoredObject | None:
        body = self._objects.get(key)
        return None if body is None else StoredObject(body=body, etag=_etag(body))

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        if key in self._objects:
            return False
        self._store(key, body)
        return True

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        if if_match is not None:
            current = self._objects.get(key)
            if current is None or _etag(current) != if_match:
                raise PreconditionFailed(f"{key} changed since it was read.")
        self._store(key, body)
        return _etag(body)

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        start = (
            bisect.bisect_right(self._keys, max(start_after, prefix))
            if start_after
            else (bisect.bisect_left(self._keys, prefix))
        )
        out = []
        for key in self._keys[start:]:
            if not key.startswith(prefix):
                break
            out.append(key)
        return out

    async def delete(self, key: str) -> None:
        if self._objects.pop(key, None) is not None:
            self._keys.remove(key)

    async def existed(self, key: str) -> bool:
        return key in self._ever

    def _store(self, key: str, body: bytes) -> None:
        self._ever.add(key)
        if key not in self._objects:
            bisect.insort(self._keys, key)
        self._objects[key] = bytes(body)


class MemorySequencer:
    """The Sequencer port in memory: a counter per workspace, for tests of ticketed commits."""

    def __init__(self) -> None:
        self.handed_out: dict[str, int] = {}

    async def next_serial(self, workspace: str) -> int:
        self.handed_out[workspace] = self.handed_out.get(workspace, 0) + 1
        return self.handed_out[workspace]

    async def current(self, workspace: str) -> int:
        return self.handed_out.get(workspace, 0)

    async def advance_to(self, workspace: str, serial: int) -> None:
        self.handed_out[workspace] = max(serial, self.handed_out.get(workspace, 0))


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
