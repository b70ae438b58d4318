"""Snapshots of the materialized state and the ``_last_snapshot.json`` pointer.

A snapshot is sealed like a commit: it carries the sha256 of its own canonical JSON, and
``covers``, the serial and sha256 of the commit it materializes. On read both are checked, and
the covered commit must be the one in the log at that serial: an edited snapshot, one copied in
from another state or serial, or one beyond the end of the log is refused, and the state is
replayed from an earlier snapshot or from the log start (with a warning naming the file). The
pointer carries the same ``covers`` and a digest of its own; a readable pointer that names a
serial beyond the end of the log is refused (commits are missing).

Snapshots written before digests (format ``ccstate.snapshot/1``) are not trusted: the state is
replayed past them, and new snapshots are written as commits cross the next multiples of
``snapshot_every`` (docs/state-format.md). Snapshots of format /2 list every resource's serials
themselves; they are read, and the next snapshot (format /3) writes the index objects instead
(``indexes.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from ccstate.service.errors import CcstateError, PreconditionFailed, StateCorrupt
from ccstate.service.state.codec import commit_body, decode_commit, serial_key, serial_of
from ccstate.service.state.model import (
    SNAPSHOT_FORMAT,
    SNAPSHOT_FORMAT_V2,
    SNAPSHOT_FORMAT_V3,
    Commit,
    canonical_json,
    sha256_hex,
)
from ccstate.service.state.replay import StateView, apply_commit

log = logging.getLogger(__name__)

POINTER_ATTEMPTS = 5
POINTER_FORMAT = "ccstate.snapshot-pointer/2"
# With a sequencer (S3), a committer whose view reaches this many commits past the end of the
# pointer's tail rewrites the pointer with the commits after its snapshot, so a cold reader
# GETs at most TAIL_EVERY - 1 commits after it (docs/decisions.md, "The pointer carries the
# commits after the snapshot").
TAIL_EVERY = 3
# A tail bigger than this (an import or a restore in it: a whole state) is a snapshot instead:
# the pointer is rewritten every TAIL_EVERY commits and read by every load.
TAIL_MAX_BYTES = 256 * 1024


class SnapshotRefused(Exception):
    """Why a snapshot (or the pointer) cannot be trusted; the state is replayed instead."""


class SnapshotMixin:
    """Snapshots: the materialized state every ``snapshot_every`` serials, and the pointer to
    the newest. Derived data: a snapshot that fails its checks is skipped and the log replayed."""

    async def _snapshot_if_due(
        self, view: StateView, *, own: bool = False, build: bool = True
    ) -> None:
        """``own``: ``view.serial`` is this store's commit, just written (no other store can
        have written the snapshot there yet, but a reader that has just read it). ``build``
        False: only take note of a snapshot another store wrote there."""
        if view.serial % self.snapshot_every or view.partial:
            return
        try:
            await self._write_snapshot(view, own=own, build=build)
        except Exception as exc:
            log.warning("Could not write the snapshot at serial %d: %s", view.serial, exc)

    async def _write_snapshot(
        self, view: StateView, *, own: bool = False, build: bool = True
    ) -> None:
        """Bring the indexes up to this serial, less what may stay pending (a snapshot of
        format /4 promises every index complete up to its serial except its ``pending``
        serials), write the snapshot once; then move the pointer to it unless it already names
        a newer one. When the pointer already names an indexed snapshot at or past this serial,
        another store did all of that: this view takes its pending serials (no index is read).
        ``own``: the pointer as this store last saw it will do (a stale one costs a refused
        conditional write, not a wrong state)."""
        current = await self._pointer_now(own and not self._missed_a_snapshot(view))
        if current is not None and current[2] is not None:
            indexes = pointer_indexes(current[2])
            if indexes is not None and int(current[2]["serial"]) >= view.serial:
                for identifier in view.unindexed:  # what this store read of them may be older
                    self._index_cache.pop(identifier, None)
                take_pending(view, *indexes)
                self._pointer_seen = None  # not read here: the tail writer reads it again
                self._tail_end = max(self._tail_end, view.serial)
                return
            if indexes is not None:
                self._take_earlier_snapshot(view, current[2], *indexes)
        if not build:
            return
        covered = await self._fetch_commit(view.serial)
        covers = {"serial": view.serial, "commit_sha256": covered.sha256}
        await self._write_indexes(view)
        body = seal({**view.to_snapshot(), **view.pending(), "covers": covers})
        if not await self.objects.put_if_absent(serial_key(self._snap_prefix, view.serial), body):
            return  # someone who read this far first wrote it
        pointer = seal(
            {
                "format": POINTER_FORMAT,
                "serial": view.serial,
                "covers": covers,
                "snapshot_sha256": sha256_hex(body),
                # What a reader of one resource's history needs besides its index (indexes.py).
                "indexes": view.pending(),
                "lineage": view.lineage,
                "fence_all": view.fence_all,
            }
        )
        self._tail_end = max(self._tail_end, view.serial)
        await self._move_pointer(pointer, view.serial, current)

    def _missed_a_snapshot(self, view: StateView) -> bool:
        """Whether a snapshot serial lies between this view's indexed part and its serial
        while the pointer as this store last saw it is not past that indexed part: another
        store may have written that snapshot (and its indexes) since."""
        seen = self._pointer_seen
        return view.serial - view.indexed_through > self.snapshot_every and (
            seen is None or int(seen[1]["serial"]) <= view.indexed_through
        )

    def _take_earlier_snapshot(
        self,
        view: StateView,
        fields: dict[str, Any],
        pending: dict[str, list[int]],
        new: set[str],
    ) -> None:
        """The pointer names a snapshot that another store wrote, with its indexes, between
        this view's indexed part and its serial (the view passed that serial before the
        snapshot was there, e.g. while its own commit waited for the ones before it): the view
        takes its indexed part from that snapshot, so that the snapshot it writes next merges
        only the serials after it into the indexes, not every serial since its own indexed part
        (4 local writers wrote 3.5 indexes per commit, one writer 0.95). Only when this store
        holds every commit after it and none of them noted merged serials or restarted
        histories (``rebase_pending`` replays neither); else the view keeps its longer window,
        which is merely more writes."""
        serial = int(fields["serial"])
        if not view.indexed_through < serial < view.serial or fields.get("lineage") != view.lineage:
            return
        covered = self._commit_cache.get(serial)
        if covered is None or covered.sha256 != (fields.get("covers") or {}).get("commit_sha256"):
            return
        for later in range(serial + 1, view.serial + 1):
            commit = self._commit_cache.get(later)
            if commit is None or commit.indexed or commit.replace_state is not None:
                return
        for identifier in view.unindexed:  # what this store read of them may be older
            self._index_cache.pop(identifier, None)
        rebase_pending(view, serial, pending, new)

    async def _pointer_now(
        self, cached: bool
    ) -> tuple[str | None, int, dict[str, Any] | None] | None:
        """The pointer (its etag, serial and fields; None fields: unreadable) as read now, or
        as this store last saw it when ``cached`` and it has; None when there is none."""
        if cached and self._pointer_seen is not None:
            etag, fields = self._pointer_seen
            return etag, int(fields["serial"]), fields
        if cached and self._pointer_absent:
            return None
        obj = await self.objects.get(self._last_snapshot_key)
        if obj is None:
            return None
        return obj.etag, pointer_serial(obj.body), _pointer_fields(obj.body)

    async def _move_pointer(
        self,
        pointer: bytes,
        serial: int,
        current: tuple[str | None, int, dict[str, Any] | None] | None,
    ) -> None:
        """Point at the snapshot at ``serial`` unless the pointer names a newer one; again
        (read afresh) when it moved meanwhile."""
        self._pointer_seen, self._pointer_absent = None, False
        for attempt in range(POINTER_ATTEMPTS):
            if attempt:
                obj = await self.objects.get(self._last_snapshot_key)
                current = None if obj is None else (obj.etag, pointer_serial(obj.body), None)
            if current is None:
                if await self.objects.put_if_absent(self._last_snapshot_key, pointer):
                    return
                continue
            if current[1] >= serial:
                return
            with contextlib.suppress(PreconditionFailed):  # moved meanwhile: look again
                etag = await self.objects.put(self._last_snapshot_key, pointer, if_match=current[0])
                self._pointer_seen = (etag, _fields(pointer))
                return

    async def _tail_if_due(self, view: StateView) -> None:
        """After our commit, with the view at it: once ``tail_every`` commits lie past the end
        of the pointer's tail, put them in the pointer (or a snapshot, when there is none yet
        or the tail would reach ``snapshot_every`` commits). Derived data: a failure is
        logged, and the next committer tries again."""
        if not self.tail_every or view.partial or view.serial - self._tail_end < self.tail_every:
            return
        try:
            await self._write_tail(view)
        except Exception as exc:
            log.warning("Could not write the snapshot tail at serial %d: %s", view.serial, exc)

    async def _write_tail(self, view: StateView) -> None:
        current = None
        if self._pointer_seen is None and not self._pointer_absent:
            current = await self.objects.get(self._last_snapshot_key)
            fields = _pointer_fields(current.body) if current is not None else None
            self._pointer_seen = (current.etag, fields) if current and fields else None
        if self._pointer_seen is None:
            if current is None:  # no snapshot yet: a pointer at serial 0 carries the tail
                await self._put_tail(view, None, _young_pointer(view))
            else:  # an unreadable pointer: a snapshot replaces it
                await self._write_snapshot(view)
            return
        await self._put_tail(view, *self._pointer_seen)

    async def _put_tail(self, view: StateView, etag: str | None, fields: dict[str, Any]) -> None:
        """The pointer ``fields`` (as read, with ``etag``; None: create it) with the commits
        after its snapshot up to ``view``."""
        base = int(fields["serial"])
        self._tail_end = max(self._tail_end, base + len(fields.get("tail") or []))
        if view.serial <= self._tail_end:
            return
        if view.serial - base >= self.snapshot_every or view.lineage != fields.get("lineage"):
            await self._write_snapshot(view, own=True)
            return
        known = {**self._tail_copies, **self._commit_cache}
        wanted = range(base + 1, view.serial + 1)
        if any(serial not in known for serial in wanted):
            return  # this store did not read them all: a later committer will
        tail = [_commit_json(known[serial]) for serial in wanted]
        if any(item is None for item in tail):
            return
        pointer = seal({**fields, "tail": tail})
        if len(pointer) > TAIL_MAX_BYTES:
            await self._write_snapshot(view, own=True)
            return
        if etag is None:
            self._pointer_absent = False
            if not await self.objects.put_if_absent(self._last_snapshot_key, pointer):
                return  # another store wrote one meanwhile
            self._pointer_seen = None  # its etag is not known: read it before the next tail
            self._tail_end = view.serial
            return
        try:
            new_etag = await self.objects.put(self._last_snapshot_key, pointer, if_match=etag)
        except PreconditionFailed:  # moved meanwhile (another tail, or a snapshot)
            self._pointer_seen = None
            return
        self._pointer_seen = (new_etag, _fields(pointer))
        self._tail_end = view.serial

    async def _load_latest_snapshot(self) -> StateView:
        """The newest snapshot that passes its checks (the pointer's, else the newest listed
        one), or an empty view: the log is then replayed from the start."""
        pointer = await self._read_pointer_data()
        named = 0 if pointer is None else int(pointer["serial"])
        tried: set[int] = set()
        if named:
            tried.add(named)
            view = await self._read_snapshot(named, pointer=pointer)
            if view is not None:
                return view
        elif pointer is not None and pointer.get("tail"):  # a young state: no snapshot yet
            view = await self._with_tail(StateView(), pointer, where=self._last_snapshot_key)
            if view is not None:
                return view
        if not named:
            # No pointer: a log that does not start has no snapshot worth listing (and the
            # commit read here is kept for the replay).
            first = (await self._fetch_present([1]))[1]
            if first is None:
                self._log_start_absent = True
                return StateView()
            self._remember(first)
        keys = await self.objects.list_keys(self._snap_prefix)
        for serial in sorted((s for s in map(serial_of, keys) if s is not None), reverse=True):
            if serial not in tried:
                view = await self._read_snapshot(serial)
                if view is not None:
                    return view
        return StateView()

    async def _read_pointer(self) -> int:
        """The serial the pointer names (0: none, or one that fails its checks). A readable
        pointer's serial is also kept as a floor the log must reach (see the store's load)."""
        data = await self._read_pointer_data()
        return 0 if data is None else int(data["serial"])

    async def _read_pointer_data(self) -> dict[str, Any] | None:
        """The pointer's fields once its checks pass (None: absent or refused)."""
        obj = await self.objects.get(self._last_snapshot_key)
        self._pointer_absent = obj is None
        if obj is None:
            self._pointer_seen = None
            return None
        try:
            data = json.loads(obj.body)
            serial = int(data["serial"])
            if data.get("format") == POINTER_FORMAT:
                unseal(data, where=self._last_snapshot_key)
        except (ValueError, KeyError, TypeError, SnapshotRefused) as exc:
            self._refused(f"Ignoring the snapshot pointer {self._last_snapshot_key}: {exc}")
            return None
        self._pointer_serial_seen = serial
        self._pointer_seen = (obj.etag, data) if data.get("format") == POINTER_FORMAT else None
        self._tail_end = max(self._tail_end, serial)
        return data

    async def _nearest_snapshot(self, serial: int) -> StateView:
        keys = await self.objects.list_keys(self._snap_prefix)
        found = sorted(s for s in map(serial_of, keys) if s is not None and s <= serial)
        for candidate in reversed(found):
            view = await self._read_snapshot(candidate)
            if view is not None:
                return view
        return StateView()

    async def _read_snapshot(
        self, serial: int, *, pointer: dict[str, Any] | None = None
    ) -> StateView | None:
        """A snapshot is derived data: one that is unreadable or fails a check is skipped with
        a warning (the log is replayed instead). With the ``pointer`` that names it, the
        commits of the pointer's tail are applied after it (``_with_tail``)."""
        key = serial_key(self._snap_prefix, serial)
        obj = await self.objects.get(key)
        if obj is None:
            return None
        try:
            data = json.loads(obj.body)
            if not isinstance(data, dict):
                raise SnapshotRefused("it is not a JSON object")
            if data.get("format") not in (SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_V3, SNAPSHOT_FORMAT_V2):
                raise SnapshotRefused(
                    f"format {data.get('format')!r} is not {SNAPSHOT_FORMAT!r} (older snapshots "
                    "carry no digest)"
                )
            unseal(data, where=key)
            if pointer is not None and pointer.get("tail") and _names(pointer, data, obj.body):
                view = await self._with_tail(
                    StateView.from_snapshot(data, where=key), pointer, where=key
                )
                if view is not None:
                    return view
            await self._check_covers(data, serial)
            return StateView.from_snapshot(data, where=key)
        except (StateCorrupt, SnapshotRefused, json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._refused(f"Skipping snapshot {key} ({exc}); replaying the log instead.")
            return None

    async def _check_covers(self, data: dict[str, Any], serial: int) -> None:
        covers = data.get("covers") or {}
        if covers.get("serial") != serial or data.get("serial") != serial:
            raise SnapshotRefused(f"it claims serial {data.get('serial')}, not {serial}")
        commits = await self._fetch_present([serial])
        commit = commits[serial]
        if commit is None:
            raise SnapshotRefused(f"commit {serial} is not in the log (a snapshot beyond it)")
        if commit.sha256 != covers.get("commit_sha256"):
            raise SnapshotRefused(
                f"it covers another commit {serial} than the log's (copied from another state)"
            )

    async def _with_tail(
        self, base: StateView, pointer: dict[str, Any], *, where: str
    ) -> StateView | None:
        """``base`` (the pointer's snapshot, or the empty state before the first snapshot)
        with the commits of the pointer's tail applied, when they hold together: they pass
        their own digests, follow ``base`` serial by serial in its lineage, and the last of
        them is the log's commit at that serial (one GET, instead of the snapshot's covered
        commit: the pointer's seal binds the snapshot and the rest of the tail to it; the
        load's listing then confirms every serial of the tail is in the log). None when
        not: the tail is ignored with a warning and the log read instead."""
        try:
            tail = _tail_commits(pointer["tail"], base.serial, base.lineage, where=where)
            last = tail[-1]
            in_log = (await self._fetch_present([last.serial]))[last.serial]
            if in_log is None or in_log.sha256 != last.sha256:
                raise SnapshotRefused(f"its last commit is not the log's commit {last.serial}")
        except (SnapshotRefused, CcstateError, KeyError, TypeError, ValueError) as exc:
            self._refused(f"Ignoring the tail of {self._last_snapshot_key} ({exc}).")
            return None
        self._tail_from = base.serial
        # Kept apart from the commit cache: whoever reads these serials for themselves
        # (history, versions, restore) reads the log, and finds an edited or swapped commit.
        self._tail_copies = {commit.serial: commit for commit in tail}
        for commit in tail:
            self._forget_older_indexes(commit)
            apply_commit(base, commit)
        self._tail_end = max(self._tail_end, base.serial)
        return base

    def _refused(self, message: str) -> None:
        log.warning("%s", message)
        self.integrity_warnings.append(message)


def _names(pointer: dict[str, Any], data: dict[str, Any], body: bytes) -> bool:
    """Whether the pointer names this very snapshot (its bytes and the commit it covers)."""
    covers = data.get("covers") or {}
    return (
        pointer.get("snapshot_sha256") == sha256_hex(body)
        and pointer.get("covers") == covers
        and data.get("serial") == covers.get("serial") == pointer.get("serial")
    )


def _tail_commits(items: Any, serial: int, lineage: str, *, where: str) -> list[Commit]:
    if not isinstance(items, list) or not items:
        raise SnapshotRefused("its tail is not a list of commits")
    commits = [decode_commit(json.dumps(item).encode(), where=f"{where} (tail)") for item in items]
    lineage = lineage or commits[0].lineage
    for expected, commit in enumerate(commits, start=serial + 1):
        if commit.serial != expected or commit.lineage != lineage:
            raise SnapshotRefused(f"its tail does not follow serial {expected - 1}")
    return commits


def _young_pointer(view: StateView) -> dict[str, Any]:
    """The pointer of a state without a snapshot yet: serial 0, only there for its tail."""
    return {
        "format": POINTER_FORMAT,
        "serial": 0,
        "covers": {"serial": 0, "commit_sha256": ""},
        "snapshot_sha256": "",
        "indexes": {"pending": {}, "pending_new": []},  # nothing is indexed before serial 1
        "lineage": view.lineage,
        "fence_all": 0,
    }


def _commit_json(commit: Commit) -> dict[str, Any] | None:
    """A commit as its file holds it (None if its digest would not come out the same)."""
    body = commit_body(commit)
    if sha256_hex(canonical_json(body)) != commit.sha256:
        return None
    return {**body, "sha256": commit.sha256}


def _fields(pointer: bytes) -> dict[str, Any]:
    data = json.loads(pointer)
    data.pop("sha256", None)
    return data


def _pointer_fields(body: bytes) -> dict[str, Any] | None:
    """A sealed pointer's fields (without its digest), or None when it does not pass."""
    try:
        data = json.loads(body)
        if data.get("format") != POINTER_FORMAT:
            return None
        unseal(data, where="the snapshot pointer")
        int(data["serial"])
    except (ValueError, KeyError, TypeError, AttributeError, SnapshotRefused):
        return None
    return data


def seal(body: dict[str, Any]) -> bytes:
    """The JSON of ``body`` with the sha256 of its canonical form in ``sha256``."""
    body = {k: v for k, v in body.items() if k != "sha256"}
    body["sha256"] = sha256_hex(canonical_json(body))
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def unseal(data: dict[str, Any], *, where: str) -> None:
    """Check (and drop) ``data``'s own sha256; ``SnapshotRefused`` when it does not match."""
    stored = data.pop("sha256", None)
    if stored is None or stored != sha256_hex(canonical_json(data)):
        raise SnapshotRefused(f"{where} does not match its sha256: it was changed after writing")


def settle_indexes(view: StateView, written: set[str]) -> None:
    """The indexes of ``written`` are complete up to ``view.serial`` now, and everything else
    this view has unindexed stays pending (never a restarted history: those are written)."""
    view.indexed_ids |= written
    view.unindexed = {k: v for k, v in view.unindexed.items() if k not in written}
    view.restarted, view.restarts = {}, {}
    view.indexed_through = view.serial


def take_pending(view: StateView, pending: dict[str, list[int]], new: set[str]) -> None:
    """Another store wrote the snapshot at or past ``view.serial`` and its indexes: what this
    view still holds unindexed is what that snapshot left pending, up to this view's serial."""
    view.indexed_ids |= set(view.unindexed) | set(view.last_touched)
    view.indexed_ids -= new
    view.unindexed = {
        k: kept for k, v in pending.items() if (kept := [s for s in v if s <= view.serial])
    }
    view.restarted, view.restarts = {}, {}
    view.indexed_through = view.serial


def rebase_pending(
    view: StateView, serial: int, pending: dict[str, list[int]], new: set[str]
) -> None:
    """What ``take_pending`` at ``serial`` (another store's snapshot, between the view's
    indexed part and its serial) followed by the replay of the commits after it up to the
    view's serial would have made of the view's index bookkeeping, given that none of those
    commits noted merged serials (``Commit.indexed``) or restarted a history (an import)."""
    touched = {k for k, v in view.unindexed.items() if any(s <= serial for s in v)}
    touched |= {k for k, s in view.last_touched.items() if s <= serial}
    view.indexed_ids |= touched
    view.indexed_ids -= new
    unindexed = {}
    for identifier in sorted(set(pending) | set(view.unindexed)):
        kept = [s for s in pending.get(identifier, []) if s <= serial]
        kept += [s for s in view.unindexed.get(identifier, []) if s > serial]
        if kept:
            unindexed[identifier] = kept
    view.unindexed = unindexed
    view.restarted, view.restarts = {}, {}
    view.indexed_through = serial


def pointer_indexes(fields: dict[str, Any]) -> tuple[dict[str, list[int]], set[str]] | None:
    """What a pointer's snapshot left pending (serials per resource, and which of those have
    no index object yet); None when it promises no indexes (an older pointer's ``indexed``:
    true promises them all)."""
    indexes = fields.get("indexes")
    if indexes is None:
        return ({}, set()) if fields.get("indexed") is True else None
    try:
        pending = {str(k): [int(s) for s in v] for k, v in indexes["pending"].items()}
        return pending, {str(k) for k in indexes["pending_new"]}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def pointer_serial(body: bytes) -> int:
    try:
        return int(json.loads(body)["serial"])
    except (ValueError, KeyError, TypeError):
        return 0  # unreadable: any snapshot is better
