"""Restore to a past serial, and import (``state push``) of a whole state document."""

from __future__ import annotations

import logging

from ccstate.service.errors import (
    ImportRefused,
    InvalidInput,
)
from ccstate.service.locking import HeldLock
from ccstate.service.names import validate_identifier
from ccstate.service.state.append import ALL_RESOURCES, Draft
from ccstate.service.state.model import (
    Commit,
    CommitMeta,
    ResourceChange,
    StackChange,
    StateDocument,
)
from ccstate.service.state.replay import StateView

log = logging.getLogger(__name__)


class RestoreMixin:
    """Whole-state commits: restore to a past serial, and ``state push`` of a document."""

    async def restore(
        self, serial: int, meta: CommitMeta, *, lock: HeldLock | None = None
    ) -> Commit:
        """Make the state equal to what it was at ``serial``, as a new commit."""
        async with self._mutex:
            current = await self._refresh_locked()
        target = await self.view_at(serial)
        changes = changes_between(current, target)
        stacks = stack_changes_between(current, target)
        meta = meta.model_copy(update={"kind": "restore", "restored_from": serial})
        return await self._write(
            Draft(meta, changes, stacks, None, {ALL_RESOURCES}, current.serial, lock)
        )

    async def import_document(
        self,
        doc: StateDocument,
        meta: CommitMeta,
        *,
        force: bool = False,
        lock: HeldLock | None = None,
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
            guard_import(view, doc)
        meta = meta.model_copy(update={"kind": "import", "forced": force})
        replace = doc.model_dump(mode="json", exclude_unset=True)
        return await self._write(Draft(meta, [], [], replace, {ALL_RESOURCES}, view.serial, lock))


def changes_between(current: StateView, target: StateView) -> list[ResourceChange]:
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


def stack_changes_between(current: StateView, target: StateView) -> list[StackChange]:
    out = []
    for name in sorted(set(current.stacks) | set(target.stacks)):
        if current.stacks.get(name) != target.stacks.get(name):
            out.append(StackChange(name=name, stack=target.stacks.get(name)))
    return out


def guard_import(view: StateView, doc: StateDocument) -> None:
    if view.serial == 0:
        return
    theirs = doc.metadata.lineage
    if theirs != view.lineage:
        raise ImportRefused(
            f"The document belongs to lineage {theirs or '(none)'}, but workspace state has "
            f"lineage {view.lineage}: it is a different state.",
            next_step="Pull the current state with ${pull}, or ${force} to replace the state "
            "anyway (recorded in history).",
        )
    serial = doc.metadata.serial or 0
    if serial < view.serial:
        raise ImportRefused(
            f"The document is at serial {serial}, older than the state's serial {view.serial}: "
            "pushing it would undo newer changes.",
            next_step="Pull the latest state with ${pull}, re-apply your edits, and push that; "
            "or ${force} (recorded in history).",
        )
