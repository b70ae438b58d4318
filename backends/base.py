"""What a backend URL opens: an object store and a lock manager, plus how to describe them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.ports import LockManager, ObjectStore, Sequencer
from ccstate.service.state.store import StateStore


@dataclass
class Backend:
    url: str  # normalised, without secrets
    objects: ObjectStore
    locks: LockManager
    # Local backends write a readable state.json export here after each commit; None elsewhere.
    export_path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Hands out commit serials (S3: a DynamoDB counter); None: commits race for head + 1.
    sequencer: Sequencer | None = None
    # Defaults for the stores made here (a caller's options win): the local backend turns the
    # snapshot pointer's tail off, which saves S3 requests but costs a local disk CPU.
    store_options: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    def state_store(self, workspace: str = "default", **options: Any) -> StateStore:
        """A StateStore on this backend; every store of one state must use the same sequencer
        (or none), so stores are made here rather than from ``objects`` alone."""
        options = {**self.store_options, **options}
        return StateStore(self.objects, workspace, sequencer=self.sequencer, **options)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend URL (secrets removed from ``url``).

    ``file``: ``path`` is the absolute root directory; ``bucket`` is None.
    ``s3``: ``bucket`` and ``prefix`` (no leading/trailing '/', '' for the bucket root); ``options``
    holds the query options (``table``, ``kms_key``, ``region``, ``encrypt``,
    ``endpoint_url``) with the settings' values filled in where the URL leaves them out.
    """

    scheme: str
    url: str
    path: str | None = None
    bucket: str | None = None
    prefix: str = ""
    options: dict[str, str] = field(default_factory=dict)
