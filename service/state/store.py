"""The state store: a transaction log of write-once numbered commits on an ObjectStore.

Layout under the backend root (the Delta Lake ``_delta_log`` protocol)::

    <workspace>/log/00000000000000000042.json        one commit, written once
    <workspace>/snapshots/00000000000000000040.json  the materialized state at serial 40
    <workspace>/_last_snapshot.json                  pointer to the newest snapshot

A commit is ``put_if_absent(log/<head+1>)``. Losing that race means someone else committed
first: their commits are read; if they touched none of our resources we retry on top of them
(rebase), otherwise ``StateConflict`` names the resources and the authors. Nothing is ever
overwritten. Load = newest snapshot + replay of the log after it.

With a ``Sequencer`` (the S3 backend's DynamoDB counter) every commit first takes a ticket, its
own serial, and puts it there: writers on disjoint resources then commit in parallel instead of
racing for one serial. A commit made under the locks of everything it touches (``under_lock``)
reads nothing: ticket + put. Others catch up to their ticket and check for conflicts first.
A ticket nobody writes (its writer died) is a hole: readers wait ``hole_grace`` seconds for it,
then fill it with an empty ``void`` commit; a late writer then loses its put and takes a new
ticket (Corfu's hole filling). Readers see every commit written before they started: they read
up to the highest serial handed out, waiting for holes below the highest one written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ccstate.service import __version__
from ccstate.service.errors import (
    CcstateError,
    ImportRefused,
    IntegrityError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    StateConflict,
    StateCorrupt,
    UnsupportedVersion,
)
from ccstate.service.names import validate_identifier, validate_workspace
from ccstate.service.ports import Clock, ObjectStore, Sequencer, SystemClock
from ccstate.service.state.model import (
    COMMIT_FORMAT,
    Commit,
    CommitMeta,
    LineageEntry,
    Principal,
    ResourceChange,
    ResourceState,
    StackChange,
    StateDocument,
    VersionInfo,
    canonical_json,
    sha256_hex,
    utc_now_iso,
)
from ccstate.service.state.replay import StateView, apply_commit, lineage_from_commit

log = logging.getLogger(__name__)

SERIAL_WIDTH = 20
MAX_REBASES = 200
# After a lost race, wait before rebasing (see _rebase_backoff), so that many writers on one log
# spread out instead of all racing for every serial (16 writers that retried at once starved one
# of them past 50 lost races).
REBASE_BACKOFF_BASE = 0.005
REBASE_BACKOFF_MAX = 0.25
FETCH_CONCURRENCY = 16
# Beyond this many resources the readable state.json is not rewritten after each commit.
EXPORT_MAX_RESOURCES = 200
COMMIT_CACHE_SIZE = 4096
ALL_RESOURCES = "*"
# How long a reader waits for a handed-out serial to be written before voiding it. A writer puts
# its commit right after taking the ticket; only a crash (or minutes of retries) leaves it empty.
HOLE_GRACE_SECONDS = 30.0
HOLE_POLL_FIRST = 0.005
HOLE_POLL_MAX = 0.25
VOID_PRINCIPAL = Principal(user="ccstate")
POINTER_ATTEMPTS = 5
# More unwritten serials than this between commits is not writers in flight but a broken log.
MAX_HOLES = 1000

Exporter = Callable[[StateDocument], Awaitable[None]]


def serial_key(prefix: str, serial: int) -> str:
    return f"{prefix}{serial:0{SERIAL_WIDTH}d}.json"


def serial_of(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name[: -len(".json")] if name.endswith(".json") else ""
    return int(stem) if len(stem) == SERIAL_WIDTH and stem.isdigit() else None


def encode_commit(commit: Commit) -> bytes:
    body = commit.model_dump(mode="json", exclude={"sha256"})
    body["sha256"] = sha256_hex(canonical_json(body))
    return json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False).encode()


def decode_commit(raw: bytes, *, where: str) -> Commit:
    next_step = (
        "The file was truncated or edited by hand. Restore it from a backup (S3: the previous "
        "object version), or run `ccstate state versions` to see the last good serial."
    )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorrupt(
            f"Commit {where} is not valid JSON ({exc}).", next_step=next_step
        ) from exc
    if not isinstance(data, dict):
        raise StateCorrupt(f"Commit {where} is not a JSON object.", next_step=next_step)
    if data.get("format") != COMMIT_FORMAT:
        raise UnsupportedVersion(
            f"Commit {where} has format {data.get('format')!r}; this ccstate reads "
            f"{COMMIT_FORMAT!r}.",
            next_step="Upgrade ccstate to a version that knows this format.",
        )
    stored = data.pop("sha256", None)
    if stored != sha256_hex(canonical_json(data)):
        raise IntegrityError(
            f"Commit {where} does not match its sha256: it was changed after it was written.",
            next_step=next_step,
        )
    try:
        return Commit.model_validate({**data, "sha256": stored})
    except ValueError as exc:
        raise StateCorrupt(f"Commit {where} is malformed: {exc}", next_step=next_step) from exc


@dataclass
class Contention:
    """How often this store lost the race for the next serial, and how long it backed off."""

    lost_races: int = 0
    backoff_seconds: float = 0.0


class StateStore:
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

    # ================================================================== reading

    async def head(self) -> int:
        return (await self._refreshed()).serial

    async def current(self) -> StateView:
        """The state at head. Treat it as read-only; it is the store's cache."""
        return await self._refreshed()

    async def get_resource(self, identifier: str) -> ResourceState | None:
        view = await self._refreshed()
        res = view.resources.get(validate_identifier(identifier))
        return res.model_copy(deep=True) if res is not None else None

    async def history(self, identifier: str) -> list[LineageEntry]:
        view = await self._refreshed()
        return await self._history(view, validate_identifier(identifier))

    async def versions(self, limit: int | None = None) -> list[VersionInfo]:
        head = await self.head()
        low = 1 if limit is None else max(1, head - limit + 1)
        commits = await self._read_commits(range(head, low - 1, -1))
        return [
            VersionInfo(
                serial=c.serial,
                committed_at=c.committed_at,
                who=c.principal.describe(),
                why=c.user_intent or c.explanation,
                summary=c.summary(),
                kind=c.kind,
                execution_token=c.execution_token,
            )
            for c in commits
        ]

    async def commit_at(self, serial: int) -> Commit:
        head = await self.head()
        self._check_serial(serial, head)
        return (await self._read_commits([serial]))[0]

    async def view_at(self, serial: int) -> StateView:
        head = await self.head()
        self._check_serial(serial, head, allow_zero=True)
        if serial == head:
            return (await self._refreshed()).copy()
        view = await self._nearest_snapshot(serial)
        for commit in await self._read_commits(range(view.serial + 1, serial + 1)):
            apply_commit(view, commit)
        return view

    async def materialize(self, serial: int) -> StateDocument:
        view = await self.view_at(serial)
        return await self._document(view)

    async def export_document(self) -> StateDocument:
        return await self._document(await self._refreshed())

    # ================================================================== writing

    async def commit(
        self,
        changes: list[ResourceChange],
        meta: CommitMeta,
        *,
        stacks: list[StackChange] | None = None,
        base_serial: int | None = None,
        under_lock: bool = False,
    ) -> Commit:
        """Append one commit. ``base_serial`` is the serial the caller read before computing the
        change; commits after it that touched the same resources raise ``StateConflict``.

        ``under_lock``: the caller holds the lock of every resource it changes (or the workspace
        lock), taken before it read them, so nobody else can have changed them. With a
        sequencer such a commit does not read other writers' commits at all."""
        for change in changes:
            validate_identifier(change.identifier)
        touched = {c.identifier for c in changes} | {f"stack:{s.name}" for s in stacks or []}
        if meta.kind in ("restore", "import"):
            touched.add(ALL_RESOURCES)
        draft = _Draft(meta, changes, stacks or [], None, touched, base_serial)
        return await self._write(draft, under_lock=under_lock)

    async def restore(self, serial: int, meta: CommitMeta) -> Commit:
        """Make the state equal to what it was at ``serial``, as a new commit."""
        async with self._mutex:
            current = await self._refresh_locked()
        target = await self.view_at(serial)
        changes = _changes_between(current, target)
        stacks = _stack_changes_between(current, target)
        meta = meta.model_copy(update={"kind": "restore", "restored_from": serial})
        return await self._write(
            _Draft(meta, changes, stacks, None, {ALL_RESOURCES}, current.serial)
        )

    async def import_document(
        self, doc: StateDocument, meta: CommitMeta, *, force: bool = False
    ) -> Commit:
        """``state push``: guarded by lineage and serial like Terraform; ``force`` overrides and
        is recorded in the commit."""
        for key, res in doc.resources.items():
            validate_identifier(key)
            if res.identifier != key:
                raise InvalidInput(
                    f"Resource key {key!r} does not match its identifier {res.identifier!r}.",
                    next_step="Fix the document so each resource is keyed by its identifier.",
                )
        async with self._mutex:
            view = await self._refresh_locked()
        if not force:
            _guard_import(view, doc)
        meta = meta.model_copy(update={"kind": "import", "forced": force})
        replace = doc.model_dump(mode="json", exclude_unset=True)
        return await self._write(_Draft(meta, [], [], replace, {ALL_RESOURCES}, view.serial))

    # ================================================================== internals: append

    async def _write(self, draft: _Draft, *, under_lock: bool = False) -> Commit:
        if self.sequencer is not None:
            return await self._append_ticketed(draft, self.sequencer, under_lock=under_lock)
        return await self._append(draft)

    async def _append(self, draft: _Draft) -> Commit:
        touched = draft.touched
        async with self._mutex:
            view = await self._refresh_locked()
            base = view.serial if draft.base_serial is None else draft.base_serial
            await self._check_conflicts(base, view, touched)
            _check_resource_types(view, draft.changes)
            pause = 0.0
            for _ in range(MAX_REBASES):
                commit = self._new_commit(view.serial + 1, view.lineage, draft)
                key = serial_key(self._log_prefix, commit.serial)
                body = encode_commit(commit)
                started = asyncio.get_running_loop().time()
                if await self.objects.put_if_absent(key, body):
                    # Keep exactly what a reader of the file will see, not our in-memory draft.
                    commit = decode_commit(body, where=key)
                    await self._after_commit(view, commit)
                    return commit
                put_seconds = asyncio.get_running_loop().time() - started
                pause = _rebase_backoff(pause, put_seconds)
                self.contention.lost_races += 1
                self.contention.backoff_seconds += pause
                await asyncio.sleep(pause)
                # We lost: log/<serial> exists, so go straight to listing what is new.
                await self._catch_up(view, next_exists=True)
                await self._check_conflicts(base, view, touched)
            _check_resource_types(view, draft.changes)
            raise _gave_up(touched)

    async def _append_ticketed(
        self, draft: _Draft, sequencer: Sequencer, *, under_lock: bool
    ) -> Commit:
        """Take a serial from the sequencer and put the commit there. Under the caller's locks
        nothing is read; otherwise the commits before our serial are read and checked first."""
        if under_lock:
            return await self._append_under_lock(draft, sequencer)
        async with self._mutex:
            view = await self._refresh_locked()
            base = view.serial if draft.base_serial is None else draft.base_serial
            await self._check_conflicts(base, view, draft.touched)
            _check_resource_types(view, draft.changes)
            commit = await self._take_and_put(view, draft, sequencer, base=base)
            await self._after_ticketed_commit(view, commit)
            return commit

    async def _append_under_lock(self, draft: _Draft, sequencer: Sequencer) -> Commit:
        """The store's own lock is taken only to load, to confirm a type clash and to apply the
        commit, so this process's other commits, and a read waiting out a hole, do not hold
        up the ticket and the put."""
        view = self._view
        if view is None:
            async with self._mutex:
                view = await self._ensure_loaded()
        try:
            _check_resource_types(view, draft.changes)
        except InvalidInput:  # the view may be stale: confirm on a refreshed one
            async with self._mutex:
                _check_resource_types(await self._refresh_locked(), draft.changes)
        commit = await self._take_and_put(view, draft, sequencer, base=None)
        if not self._mutex.locked():  # else whoever holds it is reading: it will apply ours
            async with self._mutex:
                await self._after_ticketed_commit(view, commit)
        else:
            self._remember(commit)
        return commit

    async def _take_and_put(
        self, view: StateView, draft: _Draft, sequencer: Sequencer, *, base: int | None
    ) -> Commit:
        for _ in range(MAX_REBASES):
            serial = await sequencer.next_serial(self.workspace)
            try:
                commit = await self._put_ticketed(view, serial, draft, base)
            except BaseException:
                await self._withdraw(view, serial)
                raise
            if commit is not None:
                return commit
            # Our serial was voided (we were too slow) or written without a ticket.
            self.contention.lost_races += 1
            await self._advance_past_written(sequencer, serial)
        raise _gave_up(draft.touched)

    async def _put_ticketed(
        self, view: StateView, serial: int, draft: _Draft, base: int | None
    ) -> Commit | None:
        """Our commit at ``serial``; None when another commit is there already. With a
        ``base`` (not under a lock) the commits before ``serial`` are read and checked first."""
        if base is not None:
            await self._catch_up_to(view, serial - 1, snapshots=False)  # ours is waited for
            await self._check_conflicts(base, view, draft.touched)
            _check_resource_types(view, draft.changes)
        lineage = await self._lineage_for(view, serial)
        key = serial_key(self._log_prefix, serial)
        body = encode_commit(self._new_commit(serial, lineage, draft))
        if not await self.objects.put_if_absent(key, body):
            return None
        return decode_commit(body, where=key)

    async def _withdraw(self, view: StateView, serial: int) -> None:
        """Void our own serial at once when we will not write it (a conflict, an error), so
        that readers need not wait ``hole_grace`` for it. Best effort: they void it otherwise."""

        async def void() -> None:
            await self._void(serial, await self._lineage_for(view, serial), withdrawn=True)

        with contextlib.suppress(Exception):
            await asyncio.shield(void())

    async def _lineage_for(self, view: StateView, serial: int) -> str:
        if view.lineage or serial == 1:
            return view.lineage or str(uuid.uuid4())
        return (await self._resolve([1], {}))[1].lineage

    async def _advance_past_written(self, sequencer: Sequencer, serial: int) -> None:
        await sequencer.advance_to(self.workspace, await self._last_written(serial))

    async def _last_written(self, after: int) -> int:
        """The highest serial in the log after ``after`` (``after`` if none). A log key far
        beyond the others is not a hole to fill but a misplaced file: refused."""
        keys = await self.objects.list_keys(
            self._log_prefix, start_after=serial_key(self._log_prefix, after)
        )
        written = sorted(s for s in map(serial_of, keys) if s is not None)
        if written and written[-1] - after - len(written) > MAX_HOLES:
            raise StateCorrupt(
                f"The log of workspace '{self.workspace}' has a key at serial {written[-1]}, "
                f"{written[-1] - after - len(written)} serials beyond the others after {after}: "
                "commits are missing or a file was put under the wrong name.",
                next_step="Move the misplaced file back or restore the missing commits; "
                "nothing was changed.",
            )
        return written[-1] if written else after

    async def _after_ticketed_commit(self, view: StateView, commit: Commit) -> None:
        """Apply our commit when the view is just before it, else leave it (and the snapshot,
        if one is due at it) to a later read: other writers' commits lie between. With
        tickets, whoever first reads past every ``snapshot_every``-th serial writes the
        snapshot there, so a writer never reads other commits just to snapshot them."""
        self._remember(commit)
        if view.serial == commit.serial - 1:
            apply_commit(view, commit)
            await self._derive(view)

    def _new_commit(self, serial: int, lineage: str, draft: _Draft) -> Commit:
        meta = draft.meta
        return Commit(
            serial=serial,
            parent=serial - 1,
            lineage=lineage or str(uuid.uuid4()),
            committed_at=utc_now_iso(self.clock.now()),
            principal=meta.principal,
            execution_token=meta.execution_token,
            explanation=meta.explanation,
            user_intent=meta.user_intent,
            kind=meta.kind,
            restored_from=meta.restored_from,
            forced=meta.forced,
            changes=draft.changes,
            stacks=draft.stacks,
            replace_state=draft.replace_state,
        )

    async def _check_conflicts(self, base: int, view: StateView, touched: set[str]) -> None:
        if base >= view.serial:
            return
        newer = await self._read_commits(range(base + 1, view.serial + 1))
        clashing: set[str] = set()
        authors: list[str] = []
        for commit in newer:
            theirs = commit.resources_touched() | {f"stack:{s.name}" for s in commit.stacks}
            overlap = _overlap(touched, theirs)
            if overlap:
                clashing |= overlap
                authors.append(f"{commit.principal.describe()} (serial {commit.serial})")
        if clashing:
            names = sorted(clashing - {ALL_RESOURCES}) or ["the whole workspace"]
            raise StateConflict(
                f"Conflict: {', '.join(names)} changed since serial {base} by "
                f"{', '.join(authors)}. Nothing was written.",
                resources=names,
                authors=authors,
                next_step="Review `ccstate state history` for those resources, then retry "
                "against the current state.",
            )

    async def _after_commit(self, view: StateView, commit: Commit) -> None:
        apply_commit(view, commit)
        self._remember(commit)
        await self._derive(view)

    async def _derive(self, view: StateView) -> None:
        """The snapshot (every ``snapshot_every`` serials) and the readable export, at head."""
        await self._snapshot_if_due(view)
        if self.exporter is not None and len(view.resources) <= self.export_max_resources:
            try:
                await self.exporter(await self._document(view))
            except OSError as exc:  # the export is a convenience copy; the log is the truth
                log.warning("Could not write the readable state.json export: %s", exc)

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
            if _pointer_serial(current.body) >= view.serial:
                return
            with contextlib.suppress(PreconditionFailed):  # moved meanwhile: look again
                await self.objects.put(self._last_snapshot_key, pointer, if_match=current.etag)
                return

    # ================================================================== internals: loading

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

    # ================================================================== internals: tickets

    async def _discover(self, view: StateView, sequencer: Sequencer) -> None:
        """First load with a sequencer: list the log, since commits may have been copied in
        without tickets (a migration), and move the sequencer past them."""
        written_up_to = await self._last_written(view.serial)
        await self._catch_up_sequenced(view, sequencer, written_up_to=written_up_to)

    async def _catch_up_sequenced(
        self, view: StateView, sequencer: Sequencer, *, written_up_to: int = 0
    ) -> None:
        """Read up to the highest serial written, which lies at or below the highest handed
        out: one sequencer request when nothing is new. Tickets above the highest written one
        are commits still being put, not yet acknowledged to anyone: they are left for later."""
        handed_out = await sequencer.current(self.workspace)
        if written_up_to > handed_out:
            await sequencer.advance_to(self.workspace, written_up_to)
            handed_out = written_up_to
        if handed_out <= view.serial:
            return
        found = await self._fetch_present(list(range(view.serial + 1, handed_out + 1)))
        top = max((s for s, c in found.items() if c is not None), default=view.serial)
        top = max(top, self._overdue([s for s, c in found.items() if c is None and s > top]))
        await self._catch_up_to(view, top, found)

    def _overdue(self, unwritten: list[int]) -> int:
        """The highest of the serials above everything written that this store has now seen
        unwritten for ``hole_grace``: their writers are gone (or a ticket's answer was lost),
        so reading up to it voids them at once. 0 when none."""
        return max((s for s in unwritten if self._waited_out(s)), default=0)

    def _waited_out(self, serial: int) -> bool:
        """Whether ``serial`` has been seen unwritten for ``hole_grace`` (the clock starts at
        the first time this store saw it unwritten)."""
        now = self.clock.now().timestamp()
        return now - self._unwritten_since.setdefault(serial, now) >= self.hole_grace

    async def _catch_up_to(
        self,
        view: StateView,
        target: int,
        found: dict[int, Commit | None] | None = None,
        *,
        snapshots: bool = True,
    ) -> None:
        """Apply every commit up to ``target``, waiting for (and at last voiding) holes; write
        the snapshots due on the way."""
        if target <= view.serial:
            return
        wanted = list(range(view.serial + 1, target + 1))
        commits = await self._resolve(wanted, found or {}, lineage=view.lineage)
        for serial in wanted:
            apply_commit(view, commits[serial])
            if snapshots:
                await self._snapshot_if_due(view)

    async def _resolve(
        self, serials: list[int], found: dict[int, Commit | None], *, lineage: str = ""
    ) -> dict[int, Commit]:
        """The commits at ``serials``. A missing one is a ticket still being written: poll for
        it, and after ``hole_grace`` seconds fill it with a void commit."""
        have = {s: c for s, c in found.items() if c is not None}
        have.update({s: self._commit_cache[s] for s in serials if s in self._commit_cache})
        missing = [s for s in serials if s not in have and s not in found]
        have.update({s: c for s, c in (await self._fetch_present(missing)).items() if c})
        delay = HOLE_POLL_FIRST
        # One lineage for all: with nothing written yet, the voids start the state.
        known = lineage or next((c.lineage for c in have.values()), str(uuid.uuid4()))
        while holes := [s for s in serials if s not in have]:
            for serial in [s for s in holes if self._waited_out(s)]:
                have[serial] = await self._void(serial, known)
                known = have[serial].lineage  # another reader's void may have won
            if holes := [s for s in holes if s not in have]:
                await asyncio.sleep(delay)
                delay = min(2 * delay, HOLE_POLL_MAX)
                have.update({s: c for s, c in (await self._fetch_present(holes)).items() if c})
        for serial in serials:
            self._unwritten_since.pop(serial, None)
            self._remember(have[serial])
        return have

    async def _void(self, serial: int, lineage: str, *, withdrawn: bool = False) -> Commit:
        reason = (
            "its writer withdrew it (a conflict or an error)"
            if withdrawn
            else f"it was not written within {self.hole_grace:g} s (its writer stopped)"
        )
        commit = Commit(
            serial=serial,
            parent=serial - 1,
            lineage=lineage,
            committed_at=utc_now_iso(self.clock.now()),
            principal=VOID_PRINCIPAL,
            kind="void",
            explanation=f"Serial {serial} was handed out but {reason}; this empty commit keeps "
            "the log gap-free.",
        )
        key = serial_key(self._log_prefix, serial)
        body = encode_commit(commit)
        if await self.objects.put_if_absent(key, body):
            if not withdrawn:
                log.warning("Voided serial %d of workspace '%s': %s", serial, self.workspace, key)
            return decode_commit(body, where=key)
        return await self._fetch_commit(serial)  # its writer got there after all

    async def _fetch_present(self, serials: list[int]) -> dict[int, Commit | None]:
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(serial: int) -> Commit | None:
            if serial in self._commit_cache:
                return self._commit_cache[serial]
            async with gate:
                key = serial_key(self._log_prefix, serial)
                obj = await self.objects.get(key)
            return None if obj is None else _checked(decode_commit(obj.body, where=key), serial)

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

    async def _history(self, view: StateView, identifier: str) -> list[LineageEntry]:
        serials = view.history_index.get(identifier)
        if serials is None:
            raise NotFound(
                f"No resource {identifier!r} in workspace '{self.workspace}' at serial "
                f"{view.serial}.",
                next_step="See `ccstate state list` for the identifiers in state.",
            )
        entries: list[LineageEntry] = []
        for commit in await self._read_commits(serials):
            entries += lineage_from_commit(commit, identifier)
        return entries

    async def _document(self, view: StateView) -> StateDocument:
        """The seed document with every live resource's lineage, reading each commit once."""
        wanted: dict[int, set[str]] = {}
        for key in view.resources:
            for serial in view.history_index.get(key, []):
                wanted.setdefault(serial, set()).add(key)
        lineage_of: dict[str, list[LineageEntry]] = {key: [] for key in view.resources}
        for commit in await self._read_commits(sorted(wanted)):
            keys = wanted[commit.serial]
            if commit.replace_state is not None:
                for key in keys:
                    lineage_of[key] += lineage_from_commit(commit, key)
                continue
            for change in commit.changes:
                if change.identifier in keys:
                    lineage_of[change.identifier].append(commit.lineage_entry(change))
        return view.to_document(lineage_of, server_version=__version__, workspace=self.workspace)

    @staticmethod
    def _check_serial(serial: int, head: int, *, allow_zero: bool = False) -> None:
        low = 0 if allow_zero else 1
        if not isinstance(serial, int) or serial < low or serial > head:
            raise NotFound(
                f"No version {serial}: this state has serials {low} to {head}.",
                next_step="See `ccstate state versions`.",
            )


# ====================================================================== pure helpers


@dataclass(frozen=True)
class _Draft:
    """A commit before it has a serial: what the caller asked to record."""

    meta: CommitMeta
    changes: list[ResourceChange]
    stacks: list[StackChange]
    replace_state: dict[str, Any] | None
    touched: set[str]
    base_serial: int | None


def _pointer_serial(body: bytes) -> int:
    try:
        return int(json.loads(body)["serial"])
    except (ValueError, KeyError, TypeError):
        return 0  # unreadable: any snapshot is better


def _checked(commit: Commit, serial: int) -> Commit:
    if commit.serial != serial:
        raise StateCorrupt(
            f"Commit {serial_key('log/', serial)} claims serial {commit.serial}.",
            next_step="The file was renamed or copied; restore the original.",
        )
    return commit


def _gave_up(touched: set[str]) -> StateConflict:
    return StateConflict(
        f"Gave up after {MAX_REBASES} rebases: the workspace is changing too fast.",
        resources=sorted(touched),
        authors=[],
        next_step="Retry the operation; consider taking the workspace lock.",
    )


def _rebase_backoff(previous: float, put_seconds: float) -> float:
    """Decorrelated jitter scaled by the round trip of the put we just lost: a writer that keeps
    losing waits longer, each wait is random, and the scale follows the backend's latency
    (a millisecond on a local disk, tens on S3) instead of a fixed constant."""
    base = max(REBASE_BACKOFF_BASE, put_seconds)
    return min(REBASE_BACKOFF_MAX, random.uniform(base, max(base, 3 * previous)))


def _check_resource_types(view: StateView, changes: list[ResourceChange]) -> None:
    """Resources are keyed by identifier, as in the seed's document, so one identifier cannot
    name two resources of different types (say a bucket and a queue both called 'logs')."""
    for change in changes:
        ensure_same_type(view.resources.get(change.identifier), change.resource_type)


def ensure_same_type(existing: ResourceState | None, resource_type: str) -> None:
    """Refuse to record ``resource_type`` under an identifier the state has for another type."""
    if existing is not None and existing.resource_type != resource_type:
        raise InvalidInput(
            f"The state already records {existing.identifier!r} as {existing.resource_type}; "
            f"this change is for {resource_type}.",
            next_step="Use another name for the new resource, or remove the recorded one "
            f"first: delete it, or forget it with `ccstate state rm {existing.identifier} "
            "--reason ...`.",
            identifier=existing.identifier,
        )


def _overlap(ours: set[str], theirs: set[str]) -> set[str]:
    if ALL_RESOURCES in ours and theirs:
        return theirs | {ALL_RESOURCES}
    if ALL_RESOURCES in theirs and ours:
        return ours | {ALL_RESOURCES}
    return ours & theirs


def _changes_between(current: StateView, target: StateView) -> list[ResourceChange]:
    changes = []
    for key in sorted(set(current.resources) | set(target.resources)):
        now, then = current.resources.get(key), target.resources.get(key)
        if now and then and now.current_properties == then.current_properties:
            continue
        model = then or now
        assert model is not None
        changes.append(
            ResourceChange(
                identifier=key,
                resource_type=model.resource_type,
                operation="restore",
                region=model.region,
                account_id=model.account_id,
                properties_before=now.current_properties if now else None,
                properties_after=then.current_properties if then else None,
                dependencies=then.dependencies if then else None,
            )
        )
    return changes


def _stack_changes_between(current: StateView, target: StateView) -> list[StackChange]:
    out = []
    for name in sorted(set(current.stacks) | set(target.stacks)):
        if current.stacks.get(name) != target.stacks.get(name):
            out.append(StackChange(name=name, stack=target.stacks.get(name)))
    return out


def _guard_import(view: StateView, doc: StateDocument) -> None:
    if view.serial == 0:
        return
    theirs = doc.metadata.lineage
    if theirs != view.lineage:
        raise ImportRefused(
            f"The document belongs to lineage {theirs or '(none)'}, but workspace state has "
            f"lineage {view.lineage}: it is a different state.",
            next_step="Pull the current state with `ccstate state pull`, or pass --force to "
            "replace the state anyway (recorded in history).",
        )
    serial = doc.metadata.serial or 0
    if serial < view.serial:
        raise ImportRefused(
            f"The document is at serial {serial}, older than the state's serial {view.serial}: "
            "pushing it would undo newer changes.",
            next_step="Pull the latest state, re-apply your edits, and push that; or pass "
            "--force (recorded in history).",
        )
