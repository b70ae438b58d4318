"""The state store: a transaction log of write-once numbered commits on an ObjectStore.

Layout under the backend root (the Delta Lake ``_delta_log`` protocol)::

    <workspace>/log/00000000000000000042.json        one commit, written once
    <workspace>/snapshots/00000000000000000040.json  the materialized state at serial 40
    <workspace>/_last_snapshot.json                  pointer to the newest snapshot

The jobs live in modules of their own; ``StateStore`` puts them together and keeps the
loading (newest snapshot + replay of the log after it) and the commit cache:

- ``codec``: serial keys, encoding and decoding of sealed commits;
- ``append``: optimistic ``head + 1`` appends with rebase, and ticketed serials with hole
  filling (the S3 backend's DynamoDB counter);
- ``snapshots``: snapshots and the pointer to the newest;
- ``queries``: head, resources, history, versions, past views, the export document;
- ``restore``: restore to a past serial, and import (``state push``) of a document.

Nothing is ever overwritten. Names imported from here before the split still are.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from ccstate.service.errors import (
    InvalidInput,
    StateCorrupt,
)
from ccstate.service.locking import HeldLock
from ccstate.service.names import validate_identifier, validate_workspace
from ccstate.service.ports import Clock, ObjectStore, Sequencer, SystemClock
from ccstate.service.state.append import (  # noqa: F401  (re-exported: the public API)
    ALL_RESOURCES,
    HOLE_GRACE_SECONDS,
    MAX_HOLES,
    MAX_REBASES,
    AppendMixin,
    Contention,
    Draft,
    ensure_same_type,
)
from ccstate.service.state.codec import (  # noqa: F401
    SERIAL_WIDTH,
    checked_serial,
    decode_commit,
    encode_commit,
    serial_key,
    serial_of,
)
from ccstate.service.state.model import (
    Commit,
    CommitMeta,
    ResourceChange,
    StackChange,
    StateDocument,
)
from ccstate.service.state.queries import QueryMixin
from ccstate.service.state.replay import StateView, apply_commit
from ccstate.service.state.restore import RestoreMixin
from ccstate.service.state.snapshots import POINTER_ATTEMPTS, SnapshotMixin  # noqa: F401

log = logging.getLogger(__name__)

FETCH_CONCURRENCY = 16
# Beyond this many resources the readable state.json is not rewritten after each commit.
EXPORT_MAX_RESOURCES = 200
COMMIT_CACHE_SIZE = 4096

Exporter = Callable[[StateDocument], Awaitable[None]]


class StateStore(QueryMixin, RestoreMixin, AppendMixin, SnapshotMixin):
    """One workspace's state. Safe for concurrent use by tasks of one process; processes and
    machines coordinate through the object store's write-once commits."""

    def __init__(
        self,
        objects: ObjectStore,
        workspace: str = "default",
        *,
        clock: Clock | None = None,
        snapshot_every: int = 50,
        exporter: Exporter | None = None,
        export_max_resources: int = EXPORT_MAX_RESOURCES,
        sequencer: Sequencer | None = None,
        hole_grace: float = HOLE_GRACE_SECONDS,
    ) -> None:
        if snapshot_every < 1:
            raise InvalidInput("snapshot_every must be at least 1.", next_step="Use e.g. 50.")
        self.objects = objects
        self.workspace = validate_workspace(workspace)
        self.clock = clock or SystemClock()
        self.snapshot_every = snapshot_every
        self.exporter = exporter
        self.export_max_resources = export_max_resources
        self.sequencer = sequencer
        self.hole_grace = hole_grace
        self._log_prefix = f"{self.workspace}/log/"
        self._snap_prefix = f"{self.workspace}/snapshots/"
        self._last_snapshot_key = f"{self.workspace}/_last_snapshot.json"
        self._view: StateView | None = None
        self._commit_cache: OrderedDict[int, Commit] = OrderedDict()
        self._mutex = asyncio.Lock()
        self._unwritten_since: dict[int, float] = {}  # handed-out serials seen unwritten
        self.contention = Contention()

    async def commit(
        self,
        changes: list[ResourceChange],
        meta: CommitMeta,
        *,
        stacks: list[StackChange] | None = None,
        base_serial: int | None = None,
        under_lock: bool = False,
        lock: HeldLock | None = None,
    ) -> Commit:
        """Append one commit. ``base_serial`` is the serial the caller read before computing the
        change; commits after it that touched the same resources raise ``StateConflict``.

        ``under_lock``: the caller holds the lock of every resource it changes (or the workspace
        lock), taken before it read them, so nobody else can have changed them. With a
        sequencer such a commit does not read other writers' commits at all.

        ``lock``: the lock held for this change. Its lease is checked just before the put
        (``LockLost`` when it ran out: nothing is written) and its fencing token goes into the
        commit; a commit whose token is older than one already committed for one of its
        resources is refused (``LockLost``) and ignored on replay."""
        for change in changes:
            validate_identifier(change.identifier)
        touched = {c.identifier for c in changes} | {f"stack:{s.name}" for s in stacks or []}
        if meta.kind in ("restore", "import"):
            touched.add(ALL_RESOURCES)
        draft = Draft(meta, changes, stacks or [], None, touched, base_serial, lock)
        return await self._write(draft, under_lock=under_lock)

    async def _refreshed(self) -> StateView:
        async with self._mutex:
            return await self._refresh_locked()

    async def _ensure_loaded(self) -> StateView:
        if self._view is None:
            view = await self._load_latest_snapshot()
            if self.sequencer is None:
                await self._catch_up(view)
            else:
                await self._discover(view, self.sequencer)
            self._view = view
        return self._view

    async def _refresh_locked(self) -> StateView:
        if self._view is None:
            return await self._ensure_loaded()
        view = self._view
        if self.sequencer is None:
            await self._catch_up(view)
        else:
            await self._catch_up_sequenced(view, self.sequencer)
        return view

    async def _fetch_present(self, serials: list[int]) -> dict[int, Commit | None]:
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(serial: int) -> Commit | None:
            if serial in self._commit_cache:
                return self._commit_cache[serial]
            async with gate:
                key = serial_key(self._log_prefix, serial)
                obj = await self.objects.get(key)
            return (
                None if obj is None else checked_serial(decode_commit(obj.body, where=key), serial)
            )

        return dict(zip(serials, await asyncio.gather(*(one(s) for s in serials)), strict=True))

    async def _catch_up(self, view: StateView, *, next_exists: bool = False) -> None:
        """Bring ``view`` to head. When it already is (the usual case), this costs one GET of
        the next serial, not a listing of the log; ``next_exists`` (we just lost the race for
        it) skips that GET. New commits are then listed once and fetched in parallel."""
        if not next_exists:
            where = serial_key(self._log_prefix, view.serial + 1)
            nxt = await self.objects.get(where)
            if nxt is None:
                return
            self._remember(decode_commit(nxt.body, where=where))
        keys = await self.objects.list_keys(
            self._log_prefix, start_after=serial_key(self._log_prefix, view.serial)
        )
        serials = sorted(s for s in (serial_of(k) for k in keys) if s is not None)
        expected = list(range(view.serial + 1, view.serial + 1 + len(serials)))
        if serials != expected:
            raise StateCorrupt(
                f"The log of workspace '{self.workspace}' has a gap after serial {view.serial} "
                f"(found {serials[:5]}...): commits are missing.",
                next_step="Restore the missing log files from a backup; nothing was changed.",
            )
        for commit in await self._read_commits(serials):
            apply_commit(view, commit)

    async def _read_commits(self, serials: Iterable[int]) -> list[Commit]:
        """The commits at ``serials``, all of which must exist (a gap is corruption here)."""
        wanted = list(serials)
        found = await self._fetch_present(wanted)
        out = []
        for serial in wanted:
            commit = found[serial]
            if commit is None:
                raise StateCorrupt(
                    f"Commit {serial_key(self._log_prefix, serial)} is missing from "
                    f"{self.objects.describe()}.",
                    next_step="Restore it from a backup; the log must be gap-free.",
                )
            self._remember(commit)
            out.append(commit)
        return out

    def _remember(self, commit: Commit) -> None:
        self._commit_cache[commit.serial] = commit
        self._commit_cache.move_to_end(commit.serial)
        while len(self._commit_cache) > COMMIT_CACHE_SIZE:
            self._commit_cache.popitem(last=False)

    async def _fetch_commit(self, serial: int) -> Commit:
        return (await self._read_commits([serial]))[0]
