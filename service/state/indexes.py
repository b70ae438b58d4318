"""Per-resource index objects: the serials of the commits that touched one resource.

Layout: ``<workspace>/index/<sha256 of the identifier>.json``, sealed like a snapshot::

    {"format": "ccstate.index/1", "identifier": "my-bucket", "serials": [3, 9, 41],
     "restarts": [], "through": 50, "sha256": "..."}

``serials`` lists every applied commit (fenced-out ones excluded, as replay does) that touched
the resource; ``restarts`` the serials of imports that restarted its history (the document
carried the lineage before them); ``through`` the newest snapshot that wrote it. The log stays
the truth and an index is derived data, written like a snapshot by whoever writes one: before a
snapshot at serial S is written, the index of every resource the writer's view applied since its
own base is merged (entries in that range replaced by what replay found). So a snapshot of
format /3, and the pointer to it, promise that every index is complete up to their serial; a
writer that dies half-way leaves the previous snapshot's promise standing, and the next
snapshot writer repairs the indexes again from the log. No index is written per commit.

A reader takes serials up to its view's ``indexed_through`` from the index and the rest from the
commits it replayed after it. An index that is missing where the view says the resource was
touched, fails its digest, or lacks the resource's last change up to ``indexed_through`` (an
older copy put back) is never trusted: the resource's serials are rebuilt from the log (and the
index rewritten), with a warning. The history of one resource on a store that has not loaded the
state reads only the pointer, the index and the commits after the pointer; it cannot see an older
copy put back (nothing there names the last change), and falls back to the full load when the
index is missing or refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.errors import NotFound, PreconditionFailed
from ccstate.service.state.model import Commit
from ccstate.service.state.replay import StateView, apply_commit
from ccstate.service.state.snapshots import (
    SnapshotRefused,
    pointer_indexes,
    seal,
    settle_indexes,
    unseal,
)

log = logging.getLogger(__name__)

INDEX_FORMAT = "ccstate.index/1"
INDEX_WRITE_CONCURRENCY = 16
INDEX_WRITE_ATTEMPTS = 5
INDEX_CACHE_SIZE = 20_000
# A full replay to rebuild a missing index reads the log in windows of this many commits.
REBUILD_WINDOW = 512
# With a sequencer (S3): a snapshot may leave up to this many times ``snapshot_every``
# serials pending, and a committer spends up to this many requests on them before its commit.
PENDING_PER_SNAPSHOT = 2
UPKEEP_REQUESTS = 2


class IndexRefused(Exception):
    """Why an index object cannot be trusted."""


@dataclass
class ResourceIndex:
    identifier: str
    serials: list[int] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)
    through: int = 0

    def upto(self, serial: int) -> list[int]:
        """The serials up to ``serial`` that are still the resource's history (after the
        last restart at or before it)."""
        start = max((r for r in self.restarts if r <= serial), default=0)
        return [s for s in self.serials if start <= s <= serial]

    def every_upto(self, serial: int) -> list[int]:
        """Every serial up to ``serial`` that touched the resource, across its restarts (an
        import restarts a history, not the fencing tokens committed for the resource)."""
        return [s for s in self.serials if s <= serial]

    def merged(
        self, window: list[int], restarts: list[int], *, after: int, upto: int
    ) -> ResourceIndex:
        """This index with the serials in ``(after, upto]`` replaced by ``window`` (what replay
        applied there); entries beyond ``upto`` (a later writer's) are kept."""

        def outside(values: list[int]) -> set[int]:
            return {s for s in values if s <= after or s > upto}

        kept = outside(self.restarts) | set(restarts)
        return ResourceIndex(
            self.identifier,
            sorted(outside(self.serials) | set(window)),
            sorted(kept),
            max(self.through, upto),
        )

    def to_body(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "identifier": self.identifier,
            "serials": self.serials,
            "restarts": self.restarts,
            "through": self.through,
        }


def index_name(identifier: str) -> str:
    """Identifiers are ARNs, URLs, paths: the key uses their digest (the body names them)."""
    return hashlib.sha256(identifier.encode()).hexdigest() + ".json"


def parse_index(body: bytes, identifier: str, *, where: str) -> ResourceIndex:
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            raise IndexRefused(f"{where} is not an index of format {INDEX_FORMAT}")
        unseal(data, where=where)
        if data["identifier"] != identifier:
            raise IndexRefused(f"{where} is the index of {data['identifier']!r}")
        return ResourceIndex(
            identifier,
            [int(s) for s in data["serials"]],
            [int(s) for s in data["restarts"]],
            int(data["through"]),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, SnapshotRefused) as exc:
        raise IndexRefused(str(exc)) from exc


def _sealed(index: ResourceIndex) -> bytes:
    return seal(index.to_body())


def joined(*parts: list[int]) -> list[int]:
    """Serials from several sources (an index, pending, a window), once each, in order."""
    return sorted(set().union(*parts))


def oldest_pending(view: StateView) -> list[tuple[str, list[int]]]:
    """The resources with serials left pending at or below the view's indexed part, oldest
    first, with those serials (restarted histories are the snapshot writer's)."""
    found = []
    for identifier, serials in view.unindexed.items():
        old = [s for s in serials if s <= view.indexed_through]
        if old and identifier not in view.restarted:
            found.append((old[0], identifier, old))
    return [(identifier, old) for _, identifier, old in sorted(found)]


def to_write(view: StateView, pending_max: int) -> set[str]:
    """The resources whose indexes a snapshot writer writes: every restarted history, and the
    oldest of the rest until at most ``pending_max`` serials stay pending."""
    chosen = set(view.restarted) & set(view.unindexed)
    rest = sorted(
        (serials[0], identifier)
        for identifier, serials in view.unindexed.items()
        if identifier not in chosen and serials
    )
    left = sum(len(view.unindexed[i]) for _, i in rest)
    for _, identifier in rest:
        if left <= pending_max:
            break
        chosen.add(identifier)
        left -= len(view.unindexed[identifier])
    return chosen


class IndexMixin:
    """Reading and writing the per-resource indexes. Part of ``StateStore``."""

    def _init_indexes(self) -> None:
        self._index_prefix = f"{self.workspace}/index/"
        # identifier -> (index, etag) as last read or written by this store.
        self._index_cache: OrderedDict[str, tuple[ResourceIndex, str]] = OrderedDict()

    def _index_key(self, identifier: str) -> str:
        return self._index_prefix + index_name(identifier)

    async def _read_index(self, identifier: str) -> ResourceIndex | None:
        """The index of ``identifier`` (None: absent), from the cache when this store read or
        wrote it (indexes only ever grow). ``IndexRefused`` when it fails its checks."""
        cached = self._index_cache.get(identifier)
        if cached is not None:
            return cached[0]
        entry = await self._fetch_index(identifier)
        return None if entry is None else entry[0]

    async def _fetch_index(self, identifier: str) -> tuple[ResourceIndex, str] | None:
        key = self._index_key(identifier)
        obj = await self.objects.get(key)
        if obj is None:
            self._index_cache.pop(identifier, None)
            return None
        entry = (parse_index(obj.body, identifier, where=key), obj.etag)
        self._cache_index(identifier, entry)
        return entry

    def _forget_older_indexes(self, commit: Commit) -> None:
        """Another store merged ``commit.indexed`` into those indexes: a copy cached before
        that lacks them (a view that replays the note no longer holds them) is dropped."""
        for identifier, serials in (commit.indexed or {}).items():
            cached = self._index_cache.get(identifier)
            if cached is not None and not set(serials) <= set(cached[0].serials):
                del self._index_cache[identifier]

    def _cache_index(self, identifier: str, entry: tuple[ResourceIndex, str]) -> None:
        self._index_cache[identifier] = entry
        self._index_cache.move_to_end(identifier)
        while len(self._index_cache) > INDEX_CACHE_SIZE:
            self._index_cache.popitem(last=False)

    # ------------------------------------------------------------------ reading

    async def _serials_of(self, view: StateView, identifier: str) -> list[int]:
        """Every applied serial that touched ``identifier`` up to ``view.serial``."""
        if identifier not in view.last_touched:
            raise NotFound(
                f"No resource {identifier!r} in workspace '{self.workspace}' at serial "
                f"{view.serial}.",
                next_step="See ${list_managed} for the identifiers in state.",
            )
        window = view.window_of(identifier)
        through = view.indexed_through
        if identifier in view.restarted or not through:
            return window
        last = view.last_touched[identifier]
        try:
            index = await self._read_index(identifier)
            if index is None and identifier not in view.indexed_ids:
                return window  # first touched after the indexed part, or pending since
            if index is None:
                raise IndexRefused("it is missing")
            if last <= through and last not in index.serials and last not in window:
                raise IndexRefused(f"it lacks serial {last}, the resource's last change")
        except IndexRefused as exc:
            self._refused(
                f"Not using the index of {identifier!r} ({self._index_key(identifier)}: {exc}); "
                "rebuilding it from the log."
            )
            return await self._rebuild_serials(identifier, view)
        return joined(index.upto(through), window)

    async def _rebuild_serials(self, identifier: str, view: StateView) -> list[int]:
        """The serials of ``identifier`` by a replay of the whole log up to ``view``'s indexed
        part (slow, and only when its index cannot be trusted); the index is rewritten."""
        replay = StateView(partial=True)
        restarts: list[int] = []  # every one: the view keeps only the last
        for low in range(1, view.indexed_through + 1, REBUILD_WINDOW):
            high = min(view.indexed_through, low + REBUILD_WINDOW - 1)
            for commit in await self._read_commits(range(low, high + 1)):
                apply_commit(replay, commit)
                if replay.restarted.get(identifier) == commit.serial:
                    restarts.append(commit.serial)
        serials = replay.unindexed.get(identifier, [])
        restart = restarts[-1] if restarts else None

        def merge(old: ResourceIndex | None) -> ResourceIndex:
            base = old or ResourceIndex(identifier)
            return base.merged(serials, restarts, after=0, upto=view.indexed_through)

        try:
            await self._put_index(identifier, merge)
        except Exception as exc:  # the answer stands; the next snapshot writes it again
            log.warning("Could not rewrite the index of %r: %s", identifier, exc)
        start = restart or 0
        return joined([s for s in serials if s >= start], view.window_of(identifier))

    async def _history_serials_cold(self, identifier: str) -> list[int] | None:
        """On a store that has not loaded the state: the resource's serials from its index,
        the snapshot pointer and the commits after it, without reading the snapshot (whose
        size grows with the state). None when that is not enough to be sure (no indexed
        pointer, no index, a fenced whole-workspace commit after the pointer): the caller then
        loads the state."""
        async with self._mutex:
            if self._view is not None:
                return None
            pointer = await self._read_pointer_data()
            indexes = None if pointer is None else pointer_indexes(pointer)
            if pointer is None or indexes is None:
                return None
            through = int(pointer["serial"])
            pending, pending_new = indexes
            try:  # not from the cache: it may predate this pointer
                entry = await self._fetch_index(identifier)
            except IndexRefused:
                return None
            index = None if entry is None else entry[0]
            if index is None and identifier not in pending_new:
                return None  # maybe new since the snapshot, maybe lost: the full load tells
            base = joined([] if index is None else index.upto(through), pending.get(identifier, []))
            head = StateView(
                serial=through,
                lineage=str(pointer["lineage"]),
                fence_all=int(pointer["fence_all"]),
                indexed_through=through,
                partial=True,
            )
            if self.sequencer is None:
                await self._catch_up(head)
                await self._check_nothing_beyond(head)
            else:
                await self._discover(head, self.sequencer)
            await self._check_head_witnesses(head)
            window = await self._read_commits(range(through + 1, head.serial + 1))
            view = await self._fence_view(identifier, index, window, head, through, pending)
            if view is None:
                return None
            for commit in window:
                apply_commit(view, commit)
            if identifier in view.restarted:
                return view.window_of(identifier)
            return joined(base, view.window_of(identifier))

    async def _fence_view(
        self,
        identifier: str,
        index: ResourceIndex | None,
        window: list[Commit],
        head: StateView,
        through: int,
        pending: dict[str, list[int]],
    ) -> StateView | None:
        """A view at ``through`` holding just the fencing tokens that decide whether the
        commits after it that touch ``identifier`` were applied: its own (from its commits),
        the workspace's (the pointer's), and those of resources it was committed with (from
        their indexes and the serials the pointer left ``pending``). Every serial counts, also
        those before an import restarted a history: replay keeps the tokens across it (before,
        a commit under an older token after an import showed in the cold history)."""
        fenced = [c for c in window if c.fence is not None]
        if any(c.whole_workspace for c in fenced):
            return None  # its floor is every resource's token: only the snapshot has them all
        view = StateView(
            serial=through,
            lineage=head.lineage,
            fence_all=head.fence_all,
            indexed_through=through,
            partial=True,
        )
        # The resources whose tokens decide ours: committed with it, or with one of those.
        related, size = {identifier}, 0
        while len(related) > size:
            size = len(related)
            for commit in fenced:
                if commit.resources_touched() & related:
                    related |= commit.resources_touched()
        others = related - {identifier}
        for name in [identifier, *sorted(others)]:
            if name != identifier:
                try:
                    entry = await self._fetch_index(name)
                except IndexRefused:
                    return None
                index = None if entry is None else entry[0]
            indexed = [] if index is None else index.every_upto(through)
            serials = joined(indexed, pending.get(name, []))
            commits = await self._read_commits(serials)
            view.fences[name] = max((c.fence or 0 for c in commits), default=0)
        return view

    # ------------------------------------------------------------------ writing

    async def _write_indexes(self, view: StateView) -> None:
        """Before a snapshot at ``view.serial``: merge what the view holds unindexed into the
        indexes of every restarted resource and, oldest first, of as many others as needed to
        leave at most ``pending_max`` serials pending; the view then promises that
        (``settle_indexes``). Raises when one cannot be written (the snapshot is then not
        written, and its promise not made)."""
        after, upto = view.indexed_through, view.serial
        gate = asyncio.Semaphore(INDEX_WRITE_CONCURRENCY)

        async def one(identifier: str, window: list[int]) -> None:
            restart = view.restarted.get(identifier)
            restarts = view.restarts.get(identifier, [])
            async with gate:
                if after and restart is None:
                    await self._check_index_reaches(view, identifier)

                def merge(old: ResourceIndex | None) -> ResourceIndex:
                    base = old or ResourceIndex(identifier)
                    return base.merged(window, restarts, after=after, upto=upto)

                # A resource no promise has indexed yet most likely has no index: try to
                # create it without reading first (a lost race reads and merges as usual).
                fresh = restart is None and identifier not in view.indexed_ids
                await self._put_index(identifier, merge, expect_absent=fresh)

        chosen = to_write(view, self.pending_max)
        await asyncio.gather(*(one(i, view.unindexed[i]) for i in chosen))
        settle_indexes(view, chosen)

    async def _index_upkeep(self, view: StateView) -> dict[str, list[int]] | None:
        """Before a commit (S3): merge the oldest pending serials, those a snapshot left at or
        below ``view.indexed_through``, into their resources' indexes, within
        ``UPKEEP_REQUESTS`` requests; the commit names them (``Commit.indexed``) so that the
        next snapshot's writer need not. Skipped when this commit will write the pointer's tail
        or a snapshot, which cost requests of their own. Derived data: any trouble leaves them
        pending."""
        upcoming = view.serial + 1
        if (
            not self.pending_max
            or view.partial
            or upcoming % self.snapshot_every == 0
            or (self.tail_every and upcoming - self._tail_end >= self.tail_every)
        ):
            return None
        budget, note = UPKEEP_REQUESTS, {}
        for identifier, serials in oldest_pending(view):
            known = identifier in self._index_cache or identifier not in view.indexed_ids
            cost = 1 if known else 2
            if cost > budget:
                break
            budget -= cost
            try:
                if await self._merge_pending(view, identifier, serials):
                    note[identifier] = serials
            except Exception as exc:  # left pending: the next committer or snapshot tries
                log.warning("Could not update the index of %r: %s", identifier, exc)
                break
        return note or None

    async def _merge_pending(self, view: StateView, identifier: str, serials: list[int]) -> bool:
        """Add ``serials`` to the index of ``identifier`` with one conditional write (creating
        it when it has none yet); True when the index now holds them. An index missing where
        one should be, or refused, is rebuilt from the log (as a reader would) and left for
        the next committer; one changed meanwhile is left too."""
        if identifier not in view.indexed_ids:
            fresh = ResourceIndex(identifier, sorted(serials), [], view.indexed_through)
            key = self._index_key(identifier)
            if await self.objects.put_if_absent(key, _sealed(fresh)):
                return True
        cached = self._index_cache.get(identifier)
        old, etag = cached if cached is not None else await self._raw_index(identifier)
        if old is None:
            if identifier in view.indexed_ids or etag is not None:
                self._refused(
                    f"Rebuilding the index of {identifier!r} from the log "
                    f"({self._index_key(identifier)}: missing or refused)."
                )
                await self._rebuild_serials(identifier, view)
            return False
        if set(serials) <= set(old.serials):
            return True  # merged already (by a committer that died before its commit)
        new = ResourceIndex(
            identifier,
            sorted(set(old.serials) | set(serials)),
            old.restarts,
            max(old.through, view.indexed_through),
        )
        try:
            etag = await self.objects.put(self._index_key(identifier), _sealed(new), if_match=etag)
        except PreconditionFailed:
            self._index_cache.pop(identifier, None)
            return False
        self._cache_index(identifier, (new, etag))
        return True

    async def _check_index_reaches(self, view: StateView, identifier: str) -> None:
        """An index merged from a window must already be complete below it, else merging would
        make a stale index look complete: rebuild it from the log first."""
        try:
            index = await self._read_index(identifier)
            if index is None and identifier in view.indexed_ids:
                raise IndexRefused("it is missing")
        except IndexRefused as exc:
            self._refused(
                f"Rebuilding the index of {identifier!r} from the log "
                f"({self._index_key(identifier)}: {exc})."
            )
            await self._rebuild_serials(identifier, view)

    async def _put_index(
        self,
        identifier: str,
        merge: Callable[[ResourceIndex | None], ResourceIndex],
        *,
        expect_absent: bool = False,
    ) -> None:
        """Read (or take from the cache), merge, write conditionally; again on a lost race. An
        index that fails its checks is merged into as if absent (replaced). ``expect_absent``:
        the first attempt creates it without reading."""
        key = self._index_key(identifier)
        cached: tuple[ResourceIndex | None, str | None] | None = self._index_cache.get(identifier)
        if cached is None and expect_absent:
            cached = (None, None)
        for _ in range(INDEX_WRITE_ATTEMPTS):
            old, etag = cached if cached is not None else await self._raw_index(identifier)
            new = merge(old)
            if old is not None and new == old:
                if cached is None and etag is not None:  # as read now: newer than the cache
                    self._cache_index(identifier, (old, etag))
                return
            body = seal(new.to_body())
            try:
                if etag is None:
                    if await self.objects.put_if_absent(key, body):
                        self._index_cache.pop(identifier, None)  # its etag is not known here
                        return
                else:
                    self._cache_index(
                        identifier, (new, await self.objects.put(key, body, if_match=etag))
                    )
                    return
            except PreconditionFailed:
                pass
            cached = None  # someone else wrote it meanwhile: merge into theirs
        raise PreconditionFailed(
            f"The index {key} kept changing during {INDEX_WRITE_ATTEMPTS} writes.",
            next_step="Retry; the next snapshot writes it again.",
        )

    async def _raw_index(self, identifier: str) -> tuple[ResourceIndex | None, str | None]:
        key = self._index_key(identifier)
        obj = await self.objects.get(key)
        if obj is None:
            return None, None
        try:
            return parse_index(obj.body, identifier, where=key), obj.etag
        except IndexRefused:
            return None, obj.etag
