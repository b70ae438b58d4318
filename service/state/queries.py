"""Queries over the state: the view at head or at a past serial, versions, lineage."""

from __future__ import annotations

import asyncio
import logging

from ccstate.service import __version__
from ccstate.service.errors import (
    NotFound,
)
from ccstate.service.names import validate_identifier
from ccstate.service.state.model import (
    Commit,
    LineageEntry,
    ResourceState,
    StateDocument,
    VersionInfo,
)
from ccstate.service.state.replay import StateView, apply_commit, lineage_from_commit

log = logging.getLogger(__name__)


class QueryMixin:
    """Reading the state: head, resources, history, versions, past views. Part of
    ``StateStore``."""

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
        identifier = validate_identifier(identifier)
        serials = await self._history_serials_cold(identifier)  # not loading the state
        if serials is None:
            return await self._history(await self._refreshed(), identifier)
        return await self._lineage(serials, identifier)

    async def serials_of(self, identifier: str) -> list[int]:
        """The serials of the commits that changed the resource (its history), oldest first;
        empty when the state never had it."""
        view = await self._refreshed()
        if validate_identifier(identifier) not in view.last_touched:
            return []
        return await self._serials_of(view, identifier)

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
        # Detached: a commit of this process may be applied to the view while it is built.
        return await self._document((await self._refreshed()).detached())

    async def _history(self, view: StateView, identifier: str) -> list[LineageEntry]:
        return await self._lineage(await self._serials_of(view, identifier), identifier)

    async def _lineage(self, serials: list[int], identifier: str) -> list[LineageEntry]:
        entries: list[LineageEntry] = []
        for commit in await self._read_commits(serials):
            entries += lineage_from_commit(commit, identifier)
        return entries

    async def _document(self, view: StateView) -> StateDocument:
        """The seed document with every live resource's lineage, reading each commit once."""
        keys = list(view.resources)
        found = await asyncio.gather(*(self._serials_of(view, key) for key in keys))
        wanted: dict[int, set[str]] = {}
        for key, serials in zip(keys, found, strict=True):
            for serial in serials:
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
                next_step="See ${versions}.",
            )
