"""The state store: a transaction log of write-once numbered commits on an ObjectStore.

Layout under the backend root (the Delta Lake ``_delta_log`` protocol)::

    <workspace>/log/00000000000000000042.json        one commit, written once
    <workspace>/snapshots/00000000000000000040.json  the materialized state at serial 40
    <workspace>/_last_snapshot.json                  pointer to the newest snapshot
    <workspace>/index/<sha256 of the id>.json        the serials that touched one resource

The jobs live in modules of their own; ``StateStore`` puts them together and keeps the
loading (newest snapshot + replay of the log after it) and the commit cache:

- ``codec``: serial keys, encoding and decoding of sealed commits;
- ``append``: optimistic ``head + 1`` appends with rebase, and ticketed serials with hole
  filling (the S3 backend's DynamoDB counter);
- ``snapshots``: snapshots and the pointer to the newest;
- ``indexes``: per-resource index objects (written with each snapshot), and the history of one
  resource without loading the state;
- ``queries``: head, resources, history, versions, past views, the export document;
- ``restore``: restore to a past serial, and import (``state push``) of a document.

Nothing is ever overwritten. Names imported from here before the split still are.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

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
from ccstate.service.state.export_group import EXPORT_INTERVAL_SECONDS, DebouncedExport
from ccstate.service.state.export_patch import ExportPatch, PreviousExport, patched
from ccstate.service.state.indexes import PENDING_PER_SNAPSHOT, IndexMixin
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
from ccstate.service.state.snapshots import (  # noqa: F401
    POINTER_ATTEMPTS,
    TAIL_EVERY,
    SnapshotMixin,
)

log = logging.getLogger(__name__)

FETCH_CONCURRENCY = 16
# Beyond this many resources the readable state.json is not rewritten after each commit.
EXPORT_MAX_RESOURCES = 200
COMMIT_CACHE_SIZE = 4096

# The pauses before each look again at a serial absent with commits after it (``_look_again``).
GAP_LOOKS = (0.0, 0.005, 0.01, 0.02)

# The largest window of serials a catch-up GETs at once (in FETCH_CONCURRENCY parallel GETs).
MAX_FETCH_WINDOW = 256

Exporter = Callable[[StateDocument | ExportPatch], Awaitable[None]]
# The previous export as (serial, lineage, text), when it is exactly what the exporter wrote.
ExportSource = Callable[[], Awaitable[PreviousExport | None]]
# Something else that saw the head, as (serial, lineage): the local head file and export.
# (serial, lineage) or (serial, lineage, sha256 of the commit this machine wrote there)
HeadWitness = Callable[[], Awaitable[tuple[int, str] | tuple[int, str, str | None] | None]]
# Records the head a commit of ours reached (the local head file): the witness reads it back.
HeadRecorder = Callable[[Commit], Awaitable[None]]


class StateStore(QueryMixin, RestoreMixin, AppendMixin, SnapshotMixin, IndexMixin):
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
        head_witness: HeadWitness | None = None,
        head_recorder: HeadRecorder | None = None,
        export_source: ExportSource | None = None,
        export_interval: float = EXPORT_INTERVAL_SECONDS,
        tail_every: int | None = None,
        pending_max: int | None = None,
    ) -> None:
        if snapshot_every < 1:
            raise InvalidInput("snapshot_every must be at least 1.", next_step="Use e.g. 50.")
        self.objects = objects
        self.workspace = validate_workspace(workspace)
        self.clock = clock or SystemClock()
        self.snapshot_every = snapshot_every
        # Commits past the pointer's tail before a committer extends it (0: never). Only with
        # a sequencer, where each commit read is a request (S3).
        self.tail_every = (
            (TAIL_EVERY if sequencer is not None else 0) if tail_every is None else tail_every
        )
        # How many unindexed serials a snapshot may carry as pending, for committers to merge
        # into the indexes one or two per commit (0: the snapshot's writer writes every index).
        # With a sequencer (S3), so that the commit landing on a snapshot does not pay for them.
        self.pending_max = (
            (PENDING_PER_SNAPSHOT * snapshot_every if self.tail_every else 0)
            if pending_max is None
            else pending_max
        )
        self.exporter = exporter
        self.export_max_resources = export_max_resources
        self._export_due = 0  # the head a commit of ours reached: the export must follow
        self._export = (
            DebouncedExport(self._export_build, exporter, interval=export_interval)
            if exporter
            else None
        )
        self.sequencer = sequencer
        self.hole_grace = hole_grace
        self.head_witness = head_witness
        self.head_recorder = head_recorder
        self.export_source = export_source
        self._head_turn = asyncio.Lock()
        self._head_recorded = 0
        self._pointer_serial_seen = 0  # what the snapshot pointer claimed at load
        # The pointer as last read or written (its etag and fields), and the serial its
        # snapshot and tail reach: where the next tail starts.
        self._pointer_seen: tuple[str, dict[str, Any]] | None = None
        self._tail_end = 0
        self._pointer_absent = False  # the last read found no pointer at all
        self._tail_from: int | None = None  # at load: the view came from a tail after this
        self._tail_copies: dict[int, Commit] = {}  # the commits of the tail loaded
        self._log_start_absent = False  # at load: no pointer and no serial 1
        # Snapshots and pointers refused on read (the state was replayed instead), for reports.
        self.integrity_warnings: list[str] = []
        self._log_prefix = f"{self.workspace}/log/"
        self._snap_prefix = f"{self.workspace}/snapshots/"
        self._last_snapshot_key = f"{self.workspace}/_last_snapshot.json"
        self._view: StateView | None = None
        self._commit_cache: OrderedDict[int, Commit] = OrderedDict()
        self._mutex = asyncio.Lock()
        self._unwritten_since: dict[int, float] = {}  # handed-out serials seen unwritten
        self._checked_unwritten: set[int] = set()  # ... and found never written (S3 versions)
        self._abandoned: set[int] = set()  # ... whose writers are gone (local ticket locks)
        self.contention = Contention()
        self._init_indexes()

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

    async def _export_after(self, commit: Commit) -> None:
        """After our commit: its head recorded (before the commit returns); the readable
        export marked due (written later, in the background or on ``close``)."""
        if self.head_recorder is not None:
            async with self._head_turn:
                if commit.serial > self._head_recorded:
                    await self.head_recorder(commit)
                    self._head_recorded = commit.serial
        if self._export is not None and self._export_due >= commit.serial:
            self._export.mark_due(self._export_due)

    async def flush_export(self) -> None:
        """Write the readable export now if a commit of ours made it due."""
        if self._export is not None:
            await self._export.flush()

    async def close(self) -> None:
        """The end of this store's use (a CLI command, the server): the export is flushed."""
        await self.flush_export()

    async def _export_build(self) -> tuple[StateDocument | ExportPatch | None, int]:
        """The readable document at the head: a copy of the view taken under the store's
        lock, built outside it (commits go on meanwhile); patched from the previous export
        when there is one of this lineage (``export_patch``), else built whole."""
        async with self._mutex:
            view = self._view
            if view is None:
                return None, 0
            if len(view.resources) > self.export_max_resources:
                return None, view.serial
            view = view.detached()
        previous = await self.export_source() if self.export_source is not None else None
        if previous is not None:
            try:
                patch = await patched(self, view, previous)
            except Exception as exc:  # the full build below is always right
                log.info("Building the readable export whole (patching failed: %s)", exc)
                patch = None
            if patch is not None:
                return patch, view.serial  # the writer closes ``previous``
            previous.close()
        return await self._document(view), view.serial

    async def _refreshed(self) -> StateView:
        async with self._mutex:
            return await self._refresh_locked()

    async def _ensure_loaded(self) -> StateView:
        if self._view is None:
            self._log_start_absent = False
            self._index_cache.clear()  # read for a pointer older than the snapshot loaded
            self._tail_from = None
            view = await self._load_latest_snapshot()
            if self.sequencer is None:
                if not self._log_start_absent:  # else serial 1 was just found absent
                    await self._catch_up(view)
                await self._check_nothing_beyond(view)
            else:
                await self._discover(view, self.sequencer, tail_from=self._tail_from)
            await self._check_head_witnesses(view)
            self._view = view
        return self._view

    async def _refresh_locked(self) -> StateView:
        if self._view is None:
            return await self._ensure_loaded()
        view = self._view
        await self._read_on(view)
        return view

    async def _fetch_present(self, serials: list[int]) -> dict[int, Commit | None]:
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(serial: int) -> Commit | None:
            if serial in self._commit_cache:
                return self._commit_cache[serial]
            async with gate:
                key = serial_key(self._log_prefix, serial)
                obj = await self.objects.get(key)
            if obj is None:
                return None
            commit = checked_serial(decode_commit(obj.body, where=key), serial)
            # Kept: a commit read past a serial still in flight is needed again (the check
            # before our put, the next catch-up) and was decoded and checked 2-10 times.
            self._remember(commit)
            return commit

        if self.sequencer is not None and getattr(self.objects, "reads_inline", False):
            # Each read completes without yielding (the local store): one after the other costs
            # what the reads cost, where a task per serial cost as much again in the event loop.
            # Not for the race design (no sequencer): it looks at a hole again right after its
            # window, and meeting another store's serial in flight a few microseconds sooner
            # made it report that hole as a gap more often (1 run in 10 of the mixed test).
            return {serial: await one(serial) for serial in serials}
        return dict(zip(serials, await asyncio.gather(*(one(s) for s in serials)), strict=True))

    async def _catch_up(self, view: StateView, *, next_exists: bool = False) -> None:
        """Bring ``view`` to head by GETs of the serials after it, in growing parallel windows,
        up to the first one absent. When the view is at head (the usual case) this costs one
        GET; ``next_exists`` (we just lost the race for it) starts with a window of two.

        No directory listing: a listing taken while other processes add commits can miss a
        file that is there (readdir does not promise to show entries added during the scan),
        which once made concurrent writers report a gap that was not. An absent serial with
        a present one after it is looked up again; only if it is still absent is it a gap."""
        window = 2 if next_exists else 1
        while True:
            wanted = list(range(view.serial + 1, view.serial + 1 + window))
            found = await self._fetch_present(wanted)
            for serial in wanted:
                commit = found[serial]
                if commit is None and any(found[s] for s in wanted if s > serial):
                    commit = await self._look_again(serial)
                    if commit is None:
                        raise self._gap(view.serial, [s for s in wanted if found[s]])
                if commit is None:
                    return
                self._remember(commit)
                apply_commit(view, commit)
            window = min(2 * window, MAX_FETCH_WINDOW)

    async def _look_again(self, serial: int) -> Commit | None:
        """An absent serial with commits after it, looked up again over ``GAP_LOOKS``: a store
        of the race design (no sequencer) that shares a local state with sequenced writers
        meets their serials in flight, taken before the later ones and linked after them
        (within a put's fsync); only a serial still absent after that is a gap."""
        for pause in GAP_LOOKS:
            await asyncio.sleep(pause)
            commit = (await self._fetch_present([serial]))[serial]
            if commit is not None:
                return commit
        return None

    async def _check_nothing_beyond(self, view: StateView) -> None:
        """On load: no commit may lie beyond the first absent serial (a deleted commit in the
        middle of the log, or a file put under a far serial). One listing, checked by GETs:
        the view must reach the last serial listed. Commits added meanwhile at the head are
        caught up on; only an absent serial below a listed one, still absent when looked up
        again, is a gap. (Before, three rounds of listing and catching up while another
        process kept committing reported a false gap at the head.)"""
        beyond = await self._listed_serials(view.serial)
        while beyond and view.serial < beyond[-1]:
            before = view.serial
            await self._catch_up(view)
            if view.serial != before:
                continue
            commit = await self._look_again(view.serial + 1)
            if commit is None:
                raise self._gap(view.serial, [s for s in beyond if s > view.serial])
            self._remember(commit)
            apply_commit(view, commit)

    async def _listed_serials(self, after: int) -> list[int]:
        """The serials of the commit files listed after ``after``. Only names of the log's own
        form directly under ``log/`` count: a stray folder or file there is ignored."""
        keys = await self.objects.list_keys(
            self._log_prefix, start_after=serial_key(self._log_prefix, after)
        )
        names = (k[len(self._log_prefix) :] for k in keys if k.startswith(self._log_prefix))
        return sorted(s for s in (serial_of(n) for n in names if "/" not in n) if s is not None)

    def _lost_commit(self, serial: int) -> StateCorrupt:
        key = serial_key(self._log_prefix, serial)
        return StateCorrupt(
            f"Commit {serial} of workspace '{self.workspace}' was written and is now missing "
            f"from {self.objects.describe()} ({key} has an earlier version or a delete "
            "marker; locally, its serial was handed out and its ticket spent): it is not "
            "filled with a void, since that would erase a recorded change.",
            next_step=f"Restore {key} from a backup or its previous version (S3 console, or "
            "`aws s3api list-object-versions` and `copy-object`); nothing was changed. Until "
            "then reads and writes of this workspace are refused.",
            missing=serial,
        )

    def _gap(self, head: int, beyond: list[int]) -> StateCorrupt:
        shown = ", ".join(map(str, beyond[:5])) + (", ..." if len(beyond) > 5 else "")
        return StateCorrupt(
            f"The log of workspace '{self.workspace}' in {self.objects.describe()} is missing "
            f"commit {head + 1}, but has commits after it ({shown}): a commit that was written "
            "is gone (deleted or moved).",
            next_step=f"Restore {serial_key(self._log_prefix, head + 1)} from a backup (or the "
            "bucket's previous object version); nothing was changed. Until then reads and "
            "writes of this workspace are refused.",
            missing=head + 1,
        )

    async def _check_head_witnesses(self, view: StateView) -> None:
        """On load: the log must reach the serial that the snapshot pointer and the readable
        export say was written (a deleted head commit would otherwise roll the state back)."""
        pointer = self._pointer_serial_seen
        if pointer > view.serial:
            raise StateCorrupt(
                f"The snapshot pointer of workspace '{self.workspace}' names serial {pointer}, "
                f"but the log ends at serial {view.serial}: commits {view.serial + 1} to "
                f"{pointer} are missing, or the pointer was edited.",
                next_step="Restore the missing commits from a backup (or the bucket's previous "
                "object versions); if the log is complete, delete "
                f"{self._last_snapshot_key} (it is rebuilt). Nothing was changed.",
                missing=view.serial + 1,
            )
        if self.head_witness is None:
            return
        witnessed = await self.head_witness()
        if witnessed is None:
            return
        serial, lineage, *sealed = witnessed
        if serial > view.serial:
            # Another process may have committed (and written the witness) since this load
            # read the log: the witness was read after that, so the log now reaches it.
            await self._read_on(view)
        if serial > view.serial and (not lineage or lineage == view.lineage or not view.serial):
            raise StateCorrupt(
                f"The readable export of workspace '{self.workspace}' is at serial {serial}, "
                f"but the log ends at serial {view.serial}: the newest commits are missing.",
                next_step="Restore the missing commits from a backup; if you restored the log "
                "on purpose, delete the export state.json and the head file .state.json.head "
                "beside it (both are rewritten). Nothing was changed.",
                missing=view.serial + 1,
            )
        # Only a commit this load read anyway is compared: the check costs no request.
        witnessed_sha = sealed[0] if sealed else None
        commit = self._commit_cache.get(serial) if lineage == view.lineage else None
        if witnessed_sha and commit is not None and commit.sha256 != witnessed_sha:
            raise StateCorrupt(
                f"Commit {serial} of workspace '{self.workspace}' is not the one this machine "
                "wrote (the head file .state.json.head beside the export names another "
                "sha256): the log was rewritten from that serial on, e.g. an older backup "
                "restored and committed to again.",
                next_step="Restore the log from the newest backup (or the bucket's previous "
                "object versions); if the log was replaced on purpose, delete the export "
                "state.json and .state.json.head beside it (both are rewritten). Nothing was "
                "changed.",
                serial=serial,
            )

    async def _read_on(self, view: StateView) -> None:
        """The commits written after ``view``, as a refresh reads them."""
        if self.sequencer is None:
            await self._catch_up(view)
        else:
            await self._catch_up_sequenced(view, self.sequencer)

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
        self._forget_older_indexes(commit)
        self._commit_cache[commit.serial] = commit
        self._commit_cache.move_to_end(commit.serial)
        while len(self._commit_cache) > COMMIT_CACHE_SIZE:
            self._commit_cache.popitem(last=False)

    async def _fetch_commit(self, serial: int) -> Commit:
        return (await self._read_commits([serial]))[0]
