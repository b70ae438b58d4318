"""Appending commits: optimistic ``head + 1`` puts with rebase, and ticketed serials.

A commit is ``put_if_absent(log/<head+1>)``. Losing that race means someone else committed
first: their commits are read; if they touched none of our resources we retry on top of them
(rebase), otherwise ``StateConflict`` names the resources and the authors.

With a ``Sequencer`` every commit first takes a ticket, its own serial, and puts it there. A
ticket nobody writes is a hole: readers wait ``hole_grace`` seconds for it, then fill it with an
empty ``void`` commit; a late writer then loses its put and takes a new ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ccstate.service.errors import (
    InvalidInput,
    LockLost,
    StateConflict,
    StateCorrupt,
)
from ccstate.service.locking import HeldLock
from ccstate.service.ports import Sequencer
from ccstate.service.state.codec import (
    encode_commit_as_read,
    serial_key,
    serial_of,
)
from ccstate.service.state.model import (
    Commit,
    CommitMeta,
    Principal,
    ResourceChange,
    ResourceState,
    StackChange,
    utc_now_iso,
)
from ccstate.service.state.replay import StateView, apply_commit, fence_floor, fenced_out

log = logging.getLogger(__name__)

MAX_REBASES = 200
# After a lost race, wait a random while before rebasing (see rebase_backoff). Measured with 4
# local writer processes for 10 s (benchmarks/local_writers.py): a 5 ms floor growing to 250 ms
# let the writer that had just won keep winning (296, 298, 21 and 675 commits); a floor of
# 0.5 ms (or the put's own round trip) with full jitter capped at 20 ms gave 508, 478, 448, 477.
REBASE_BACKOFF_BASE = 0.0005
REBASE_BACKOFF_MAX = 0.02
ALL_RESOURCES = "*"
# How long a reader waits for a handed-out serial to be written before voiding it. A writer puts
# its commit right after taking the ticket; only a crash (or minutes of retries) leaves it empty.
HOLE_GRACE_SECONDS = 30.0
# How long a committer whose serial is due a snapshot waits for the commits before it.
SNAPSHOT_CATCH_UP_SECONDS = 1.0
HOLE_POLL_FIRST = 0.005
HOLE_POLL_MAX = 0.25
# A serial in flight is usually written within one put's round trip: the first poll waits that
# long (learned from our own puts), at most HOLE_POLL_FIRST. Locally a put takes about 1 ms, and
# a 5 ms first poll made each writer wait out the one before it for 5 ms.
HOLE_POLL_MIN = 0.0005
VOID_PRINCIPAL = Principal(user="ccstate")
# More unwritten serials than this between commits is not writers in flight but a broken log.
MAX_HOLES = 1000


@dataclass
class Contention:
    """How often this store lost the race for the next serial, and how long it backed off."""

    lost_races: int = 0
    backoff_seconds: float = 0.0
    # A moving average of this store's write-once puts, the scale of the first hole poll.
    put_seconds: float = HOLE_POLL_FIRST

    def timed_put(self, seconds: float) -> None:
        self.put_seconds += (seconds - self.put_seconds) / 4

    def first_poll(self) -> float:
        return min(HOLE_POLL_FIRST, max(HOLE_POLL_MIN, self.put_seconds))

    def next_poll(self, delay: float) -> float:
        """Polls back off (each one a request) where puts take a round trip of milliseconds;
        on a local disk a poll is a stat, and a backed-off poll made each writer waiting for
        the one before it notice it later than that one noticed its own predecessor."""
        if self.put_seconds < HOLE_POLL_FIRST:
            return HOLE_POLL_MIN
        return min(2 * delay, HOLE_POLL_MAX)


@dataclass(frozen=True)
class Draft:
    """A commit before it has a serial: what the caller asked to record."""

    meta: CommitMeta
    changes: list[ResourceChange]
    stacks: list[StackChange]
    replace_state: dict[str, Any] | None
    touched: set[str]
    base_serial: int | None
    # The lock the commit is made under: its lease is checked before the put, its fencing token
    # is recorded in the commit.
    lock: HeldLock | None = None
    # The index upkeep done just before the commit (``Commit.indexed``).
    indexed: dict[str, list[int]] | None = None


class AppendMixin:
    """Appending to the log: optimistic ``head + 1`` puts, or ticketed serials from a
    ``Sequencer`` with hole filling. Part of ``StateStore``."""

    async def _write(self, draft: Draft, *, under_lock: bool = False) -> Commit:
        if self.sequencer is not None:
            commit = await self._append_ticketed(draft, self.sequencer, under_lock=under_lock)
        else:
            commit = await self._append(draft)
        await self._export_after(commit)  # outside the store's lock, shared with others
        return commit

    async def _append(self, draft: Draft) -> Commit:
        touched = draft.touched
        async with self._mutex:
            view = await self._refresh_locked()
            base = view.serial if draft.base_serial is None else draft.base_serial
            await self._check_conflicts(base, view, touched)
            check_resource_types(view, draft.changes)
            pause = 0.0
            for _ in range(MAX_REBASES):
                commit = self._new_commit(view.serial + 1, view.lineage, draft)
                key = serial_key(self._log_prefix, commit.serial)
                # Keep exactly what a reader of the file will see, not our in-memory draft.
                body, as_read = encode_commit_as_read(commit)
                self._guard_fence(view, commit, draft)
                started = asyncio.get_running_loop().time()
                if await self.objects.put_if_absent(key, body):
                    await self._after_commit(view, as_read)
                    return as_read
                put_seconds = asyncio.get_running_loop().time() - started
                pause = rebase_backoff(pause, put_seconds)
                self.contention.lost_races += 1
                self.contention.backoff_seconds += pause
                await asyncio.sleep(pause)
                # We lost: log/<serial> exists, so go straight to listing what is new.
                await self._catch_up(view, next_exists=True)
                await self._check_conflicts(base, view, touched)
            check_resource_types(view, draft.changes)
            raise gave_up(touched)

    async def _append_ticketed(
        self, draft: Draft, sequencer: Sequencer, *, under_lock: bool
    ) -> Commit:
        """Take a serial from the sequencer and put the commit there. Under the caller's locks
        nothing is read; otherwise the commits before our serial are read and checked first."""
        if under_lock:
            return await self._append_under_lock(draft, sequencer)
        async with self._mutex:
            view = await self._ensure_loaded()
            # With declaring tickets, commits in flight are not waited for here: the ones that
            # may clash are waited for before the put (``_before_ours``).
            waits = getattr(sequencer, "declared", None) is None
            top = await self._catch_up_sequenced(view, sequencer, wait=waits)
            base = max(view.serial, top) if draft.base_serial is None else draft.base_serial
            await self._check_conflicts(base, view, draft.touched)
            check_resource_types(view, draft.changes)
            commit = await self._take_and_put(view, draft, sequencer, base=base)
            await self._after_ticketed_commit(view, commit)
            return commit

    async def _append_under_lock(self, draft: Draft, sequencer: Sequencer) -> Commit:
        """The store's own lock is taken only to load, to confirm a type clash and to apply the
        commit, so this process's other commits, and a read waiting out a hole, do not hold
        up the ticket and the put."""
        view = self._view
        if view is None:
            async with self._mutex:
                view = await self._ensure_loaded()
        try:
            check_resource_types(view, draft.changes)
        except InvalidInput:  # the view may be stale: confirm on a refreshed one
            async with self._mutex:
                check_resource_types(await self._refresh_locked(), draft.changes)
        commit = await self._take_and_put(view, draft, sequencer, base=None)
        if not self._mutex.locked():  # else whoever holds it is reading: it will apply ours
            async with self._mutex:
                await self._after_ticketed_commit(view, commit)
        else:
            self._remember(commit)
        return commit

    async def _take_and_put(
        self, view: StateView, draft: Draft, sequencer: Sequencer, *, base: int | None
    ) -> Commit:
        declaring = getattr(sequencer, "next_serial_for", None)
        upkeep = True
        for _ in range(MAX_REBASES):
            if declaring is not None:
                serial = await declaring(self.workspace, draft.touched)
            else:
                serial = await sequencer.next_serial(self.workspace)
            try:
                await self._refuse_far_serial(view, serial)
                if upkeep and serial == view.serial + 1:
                    # Only on a view at the head: one behind (other writers' commits it has
                    # not read) would merge what their notes already merged, for nothing.
                    upkeep = False
                    if note := await self._index_upkeep(view):
                        draft = dataclasses.replace(draft, indexed=note)
                commit = await self._put_ticketed(view, serial, draft, base)
            except BaseException:
                await self._withdraw(view, serial)
                raise
            finally:
                self._release(serial)
            if commit is not None:
                return commit
            # Our serial was voided (we were too slow) or written without a ticket.
            self.contention.lost_races += 1
            await self._advance_past_written(sequencer, serial)
        raise gave_up(draft.touched)

    async def _put_ticketed(
        self, view: StateView, serial: int, draft: Draft, base: int | None
    ) -> Commit | None:
        """Our commit at ``serial``; None when another commit is there already. With a
        ``base`` (not under a lock) the commits before ``serial`` are read and checked first;
        where the object store can stage a body (the local one), ours is written meanwhile
        and only published once they are read, so that the writers' fsyncs overlap."""
        lineage = await self._lineage_for(view, serial)
        key = serial_key(self._log_prefix, serial)
        commit = self._new_commit(serial, lineage, draft)
        body, as_read = encode_commit_as_read(commit)
        before = await self._before_ours(view, serial, draft.touched) if base is not None else None
        # Staging pays a second thread hop: only when serials before ours are waited for.
        waits = before is not None and before[2]
        stage = getattr(self.objects, "stage_if_absent", None) if waits else None
        staged = await stage(key, body) if stage is not None else None
        try:
            if before is not None and base is not None:
                await self._catch_up_to(view, before[0], before[1], snapshots=False)
                await self._check_conflicts(base, view, draft.touched)
                check_resource_types(view, draft.changes)
            self._guard_fence(view, commit, draft)
            started = asyncio.get_running_loop().time()
            if staged is not None:
                written = await staged.publish()
            else:
                written = await self.objects.put_if_absent(key, body)
            self.contention.timed_put(asyncio.get_running_loop().time() - started)
        finally:
            if staged is not None:
                staged.discard()
        return as_read if written else None

    async def _before_ours(
        self, view: StateView, serial: int, touched: set[str]
    ) -> tuple[int, dict[int, Commit | None], bool]:
        """How far ``view`` must be read before our commit at ``serial`` (the caller reads it
        and checks it for conflicts), what was found on the way, and whether that waits for
        serials still being written (ours is waited for by readers). Up to ``serial - 1``,
        except with a sequencer whose tickets declare what they touch (the local one):
        serials in flight that declared other resources, and written ones past them that
        touched other resources, are not waited for; the view then stays before them (our
        commit is applied by a later read). Any overlap: all are waited for."""
        declared = getattr(self.sequencer, "declared", None)
        wanted = list(range(view.serial + 1, serial))
        if not wanted:
            return serial - 1, {}, False
        found = await self._fetch_present(wanted)
        missing = [s for s, c in found.items() if c is None]
        if declared is None or not missing:
            return serial - 1, found, bool(missing)
        for hole in missing:
            claim = await declared(self.workspace, hole)
            if claim is None or resources_overlap(touched, claim):
                return serial - 1, found, True  # one in flight may clash: wait for them all
        beyond = [c for s, c in found.items() if c is not None and s > missing[0]]
        if any(resources_overlap(touched, touched_by(c)) for c in beyond):
            return serial - 1, found, True
        # The written run before the first serial in flight joins the view (the caller checks
        # it for conflicts with the view); the written ones past it touched other resources.
        return missing[0] - 1, found, False

    def _release(self, serial: int) -> None:
        """Our serial is written, withdrawn or lost: a sequencer that tells readers whether a
        ticket's writer is alive (the local one) stops saying so."""
        release = getattr(self.sequencer, "release", None)
        if release is not None:
            release(self.workspace, serial)

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
        return self._far_checked(after, sorted(s for s in map(serial_of, keys) if s is not None))

    def _far_checked(self, after: int, written: list[int]) -> int:
        if written and written[-1] - after - len(written) > MAX_HOLES:
            raise StateCorrupt(
                f"The log of workspace '{self.workspace}' has a key at serial {written[-1]}, "
                f"{written[-1] - after - len(written)} serials beyond the others after {after}: "
                "commits are missing or a file was put under the wrong name.",
                next_step="Move the misplaced file back or restore the missing commits; "
                "nothing was changed.",
            )
        return written[-1] if written else after

    async def _refuse_far_serial(self, view: StateView, handed_out: int) -> None:
        """A counter far beyond the log is not writers in flight but a broken counter: refuse
        it (one listing) instead of reading and voiding thousands of serials."""
        if handed_out - view.serial <= MAX_HOLES:
            return
        written = await self._last_written(view.serial)
        if handed_out - written > MAX_HOLES:
            raise StateCorrupt(
                f"The serial counter of workspace '{self.workspace}' stands at {handed_out}, "
                f"but the log ends at serial {written}: the counter jumped "
                f"{handed_out - written} serials ahead (at most {MAX_HOLES} can be in flight).",
                next_step=f"Set the counter back to {written} (S3: the 'serial' attribute of "
                "the workspace's '#serial' item in the lock table; a local state: the file "
                "log/.ccstate-serial of the workspace); nothing was changed.",
                counter=handed_out,
                log_end=written,
            )

    async def _after_ticketed_commit(self, view: StateView, commit: Commit) -> None:
        """Apply our commit when the view is just before it, else leave it to a later read:
        other writers' commits lie between. When a snapshot is due at our serial, those few
        commits are read first (for at most ``SNAPSHOT_CATCH_UP_SECONDS``) so that we write
        it: left to readers, every writer passing that serial at about the same time built
        it (4 local writers: 42 builds for 16 snapshots)."""
        self._remember(commit)
        if commit.serial % self.snapshot_every == 0 and commit.serial - view.serial > 1:
            await self._catch_up_for_snapshot(view, commit.serial)
        if view.serial == commit.serial - 1:
            stale = fenced_out(view, commit)
            apply_commit(view, commit)
            await self._derive(view)
            if stale:
                raise superseded_lock(commit, fence_floor(view, commit), written=True)

    async def _catch_up_for_snapshot(self, view: StateView, serial: int) -> None:
        """Read up to just before our commit at ``serial`` (a snapshot serial), unless that
        means crossing another snapshot serial or waiting for a writer that is slow: then a
        reader writes the snapshot, as before. Our commit is written: nothing here may fail it."""
        if view.partial or serial - view.serial > self.snapshot_every:
            return
        try:
            await asyncio.wait_for(
                self._catch_up_to(view, serial - 1, snapshots=False), SNAPSHOT_CATCH_UP_SECONDS
            )
        except Exception as exc:  # TimeoutError included: derived data, a reader writes it
            log.info("Leaving the snapshot at serial %d to a reader: %s", serial, exc)

    def _new_commit(self, serial: int, lineage: str, draft: Draft) -> Commit:
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
            fence=draft.lock.fence or None if draft.lock is not None else None,
            indexed=draft.indexed,
        )

    def _guard_fence(self, view: StateView, commit: Commit, draft: Draft) -> None:
        """Right before a put made under a lock: the lease must still run (a holder stalled
        past it never commits) and no newer holder's token may be committed for these
        resources in the log read so far (a clock that lags is caught here)."""
        if draft.lock is None:
            return
        draft.lock.ensure_live(self.clock.now())
        if fenced_out(view, commit):
            raise superseded_lock(commit, fence_floor(view, commit), written=False)

    async def _check_conflicts(self, base: int, view: StateView, touched: set[str]) -> None:
        if base >= view.serial:
            return
        raise_on_overlap(touched, await self._read_commits(range(base + 1, view.serial + 1)), base)

    async def _after_commit(self, view: StateView, commit: Commit) -> None:
        apply_commit(view, commit)
        self._remember(commit)
        await self._derive(view)

    async def _derive(self, view: StateView) -> None:
        """The snapshot (every ``snapshot_every`` serials) at head; the readable export is
        due at head too: ``StateStore.commit`` waits for it outside the store's lock."""
        await self._snapshot_if_due(view, own=True)
        await self._tail_if_due(view)
        self._export_due = max(self._export_due, view.serial)

    async def _discover(
        self, view: StateView, sequencer: Sequencer, *, tail_from: int | None = None
    ) -> None:
        """First load with a sequencer: list the log, since commits may have been copied in
        without tickets (a migration), and move the sequencer past them. ``tail_from``: the
        view came from the pointer's tail after that serial; the same listing starts there,
        and each commit of the tail must be in it (a deleted one is reported, as a full read
        of the log would)."""
        start = view.serial if tail_from is None else tail_from
        listed = await self._listed_serials(start)
        missing = sorted(set(range(start + 1, view.serial + 1)) - set(listed))
        if missing:
            raise self._lost_commit(missing[0])
        written_up_to = self._far_checked(view.serial, [s for s in listed if s > view.serial])
        await self._catch_up_sequenced(view, sequencer, written_up_to=written_up_to)

    async def _catch_up_sequenced(
        self,
        view: StateView,
        sequencer: Sequencer,
        *,
        written_up_to: int = 0,
        wait: bool = True,
    ) -> int:
        """Read up to the highest serial written, which lies at or below the highest handed
        out: one sequencer request when nothing is new. Tickets above the highest written one
        are commits still being put, not yet acknowledged to anyone: they are left for later.
        Without ``wait``, only the written run after the view is read (none of the serials
        being written is waited for). Returns the highest serial written."""
        handed_out = await sequencer.current(self.workspace)
        if written_up_to > handed_out:
            await sequencer.advance_to(self.workspace, written_up_to)
            handed_out = written_up_to
        if handed_out <= view.serial:
            return view.serial
        await self._refuse_far_serial(view, handed_out)
        found = await self._fetch_present(list(range(view.serial + 1, handed_out + 1)))
        top = max((s for s, c in found.items() if c is not None), default=view.serial)
        if top < handed_out:
            await self._check_not_deleted(top + 1)
        top = max(top, await self._overdue([s for s, c in found.items() if c is None and s > top]))
        run = view.serial
        while not wait and run < top and found.get(run + 1) is not None:
            run += 1
        await self._catch_up_to(view, top if wait else run, found)
        return top

    async def _check_not_deleted(self, serial: int) -> None:
        """The lowest serial handed out above everything written is a ticket in flight, or the
        newest commit deleted (which would silently roll the state back): one look at the
        object's versions tells, once per serial and store."""
        if serial in self._checked_unwritten:
            return
        key = serial_key(self._log_prefix, serial)
        if await self.objects.existed(key) and await self.objects.get(key) is None:
            raise self._lost_commit(serial)
        self._checked_unwritten.add(serial)

    async def _overdue(self, unwritten: list[int]) -> int:
        """The highest of the serials above everything written whose writers are gone (or a
        ticket's answer was lost): seen unwritten for ``hole_grace``, or abandoned by a writer
        the sequencer knows to be dead. Reading up to it voids them at once. 0 when none."""
        gone = [s for s in unwritten if await self._given_up(s)]
        return max(gone, default=0)

    async def _given_up(self, serial: int) -> bool:
        """Whether a hole at ``serial`` may be voided now: waited out, or its writer gone.
        The writer is asked after only from the second sighting of the hole on: most holes
        are commits being linked at that moment, and asking costs a few system calls."""
        if serial in self._abandoned:
            return True
        seen = serial in self._unwritten_since
        return self._waited_out(serial) or (seen and await self._gone(serial))

    async def _gone(self, serial: int) -> bool:
        abandoned = getattr(self.sequencer, "abandoned", None)
        if abandoned is None or not await abandoned(self.workspace, serial):
            return False
        self._abandoned.add(serial)
        return True

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
        the snapshots due on the way that are overdue: ``target`` lies half a snapshot
        interval or more past them. The committer of a snapshot serial writes it
        (``_catch_up_for_snapshot``); a reader that passes it just after would build it at the
        same time, so readers only make up for a committer that did not (and otherwise only
        take note of a snapshot already written there)."""
        if target <= view.serial:
            return
        wanted = list(range(view.serial + 1, target + 1))
        commits = await self._resolve(wanted, found or {}, lineage=view.lineage)
        for serial in wanted:
            apply_commit(view, commits[serial])
            if snapshots:
                overdue = target - serial >= self.snapshot_every // 2
                await self._snapshot_if_due(view, build=overdue)

    async def _resolve(
        self, serials: list[int], found: dict[int, Commit | None], *, lineage: str = ""
    ) -> dict[int, Commit]:
        """The commits at ``serials``. A missing one is a ticket still being written: poll for
        it, and after ``hole_grace`` seconds fill it with a void commit."""
        have = {s: c for s, c in found.items() if c is not None}
        have.update({s: self._commit_cache[s] for s in serials if s in self._commit_cache})
        missing = [s for s in serials if s not in have and s not in found]
        have.update({s: c for s, c in (await self._fetch_present(missing)).items() if c})
        delay = self.contention.first_poll()
        # One lineage for all: with nothing written yet, the voids start the state.
        known = lineage or next((c.lineage for c in have.values()), str(uuid.uuid4()))
        while holes := [s for s in serials if s not in have]:
            self._start_grace_at_successor(holes, have)
            for serial in holes:  # in order: a void takes the lineage of the serials below
                if not await self._given_up(serial):
                    break
                have[serial] = await self._void(serial, known)
                known = have[serial].lineage  # another reader's void may have won
            if holes := [s for s in holes if s not in have]:
                await asyncio.sleep(delay)
                delay = self.contention.next_poll(delay)
                have.update({s: c for s, c in (await self._fetch_present(holes)).items() if c})
        for serial in serials:
            self._unwritten_since.pop(serial, None)
            self._abandoned.discard(serial)
            self._remember(have[serial])
        return have

    def _start_grace_at_successor(self, holes: list[int], have: dict[int, Commit]) -> None:
        """A hole's writer took its ticket before the writer of any later serial put theirs,
        so the grace runs from the time of the next written commit at the latest: a hole
        behind a commit older than the grace is not waited for again (a dead writer, or a
        deleted commit, which ``_void`` then reports)."""
        now = self.clock.now().timestamp()
        for hole in holes:
            after = [c for s, c in have.items() if s > hole]
            if after:
                written_at = min(parse_utc(c.committed_at) for c in after)
                self._unwritten_since[hole] = min(
                    self._unwritten_since.get(hole, now), now, written_at
                )

    async def _void(self, serial: int, lineage: str, *, withdrawn: bool = False) -> Commit:
        if withdrawn:
            reason = "its writer withdrew it (a conflict or an error)"
        elif serial in self._abandoned:
            reason = "its writer stopped before writing it (its ticket was no longer held)"
        else:
            reason = f"it was not written within {self.hole_grace:g} s (its writer stopped)"
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
        body, as_read = encode_commit_as_read(commit)
        if not withdrawn and await self.objects.existed(key):
            landed = (await self._fetch_present([serial]))[serial]
            if landed is not None:  # its writer got there while we looked
                return landed
            raise self._lost_commit(serial)
        if await self.objects.put_if_absent(key, body):
            if not withdrawn:
                log.warning("Voided serial %d of workspace '%s': %s", serial, self.workspace, key)
            return as_read
        return await self._fetch_commit(serial)  # its writer got there after all


def touched_by(commit: Commit) -> set[str]:
    return commit.resources_touched() | {f"stack:{s.name}" for s in commit.stacks}


def raise_on_overlap(touched: set[str], newer: list[Commit], since: int) -> None:
    """``StateConflict`` when one of ``newer`` (commits after serial ``since``) touched one of
    ``touched``, naming the resources and the authors."""
    clashing: set[str] = set()
    authors: list[str] = []
    for commit in newer:
        common = resources_overlap(touched, touched_by(commit))
        if common:
            clashing |= common
            authors.append(f"{commit.principal.describe()} (serial {commit.serial})")
    if clashing:
        names = sorted(clashing - {ALL_RESOURCES}) or ["the whole workspace"]
        raise StateConflict(
            f"Conflict: {', '.join(names)} changed since serial {since} by "
            f"{', '.join(authors)}. Nothing was written.",
            resources=names,
            authors=authors,
            next_step="Review ${history} for those resources, then retry "
            "against the current state.",
        )


def parse_utc(stamp: str) -> float:
    """A commit's ``committed_at`` as a POSIX timestamp (now, when unreadable)."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return datetime.now(UTC).timestamp()


def gave_up(touched: set[str]) -> StateConflict:
    return StateConflict(
        f"Gave up after {MAX_REBASES} rebases: the workspace is changing too fast.",
        resources=sorted(touched),
        authors=[],
        next_step="Retry the operation; consider taking the workspace lock.",
    )


def superseded_lock(commit: Commit, floor: int, *, written: bool) -> LockLost:
    what = (
        f"Serial {commit.serial} was written but is ignored on replay"
        if written
        else "Nothing was written"
    )
    return LockLost(
        f"The lock this commit was made under (fencing token {commit.fence}) was superseded: "
        f"a holder with token {floor} has committed to the same resources since. {what}.",
        next_step="Its lease ran out while the work stalled; check its history (${history}) for "
        "the resource, then re-run the operation.",
        fence=commit.fence,
        newer_fence=floor,
    )


def rebase_backoff(previous: float, put_seconds: float) -> float:
    """Full, decorrelated jitter scaled by the round trip of the put we just lost: each wait is
    random between 0 and twice the previous one (at least the put's round trip), capped low so
    that a writer that lost a few races is not waiting while the last winner takes serial
    after serial (the scale follows the backend's latency instead of a fixed constant)."""
    base = max(REBASE_BACKOFF_BASE, put_seconds)
    return min(REBASE_BACKOFF_MAX, random.uniform(0, max(base, 2 * previous)))


def check_resource_types(view: StateView, changes: list[ResourceChange]) -> None:
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
            "first: delete it, or forget it with ${forget}.",
            identifier=existing.identifier,
        )


def resources_overlap(ours: set[str], theirs: set[str]) -> set[str]:
    if ALL_RESOURCES in ours and theirs:
        return theirs | {ALL_RESOURCES}
    if ALL_RESOURCES in theirs and ours:
        return ours | {ALL_RESOURCES}
    return ours & theirs
