"""Copy a workspace's whole state, with its history, from one object store to another.

Every object under the workspace prefix is copied byte for byte (commits, snapshots, token and
salt records), commits first and in serial order. Then both stores replay their logs side by side
and the materialized states must be equal at every serial. Commits made meanwhile by writers
without the workspace lock are copied in further rounds until the source stops moving, so a
migration either copies every commit or fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ccstate.service.errors import CcstateError, InvalidInput, StateCorrupt
from ccstate.service.names import validate_workspace
from ccstate.service.ports import ObjectStore
from ccstate.service.state.model import canonical_json, sha256_hex
from ccstate.service.state.replay import StateView, apply_commit
from ccstate.service.state.store import StateStore, decode_commit, serial_key, serial_of

Progress = Callable[[str, int, int], None]  # phase, done, total
# Rounds of "copy what is new, verify it" before a source that keeps growing is given up on.
MAX_ROUNDS = 20
# Commits and snapshots are written once; other objects (the snapshot pointer, token records)
# may be rewritten in place, and a later round copies their newer version.
WRITE_ONCE = re.compile(r"^[^/]+/(log|snapshots)/")


@dataclass(frozen=True)
class MigrationReport:
    workspace: str
    source: str
    target: str
    serial: int
    objects_copied: int
    serials_verified: int

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


class MigrationFailed(CcstateError):
    code = "migration_failed"


async def migrate(
    source: ObjectStore,
    target: ObjectStore,
    workspace: str = "default",
    *,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy, then verify. Hold the source's workspace lock while this runs (``ccstate state
    migrate`` does); writers that take no lock (a drift record) may still commit meanwhile, so
    the copy goes on until a listing of the source log finds nothing new, each round verified,
    and the heads of both logs must be equal at the end: the copy is complete or refused."""
    validate_workspace(workspace)
    report = progress or (lambda phase, done, total: None)
    prefix, log_prefix = f"{workspace}/", f"{workspace}/log/"
    if await target.list_keys(log_prefix):
        raise InvalidInput(
            f"The target {target.describe()} already has a state in workspace '{workspace}'.",
            next_step="Migrate into an empty backend or another workspace; nothing was copied.",
        )
    copied, head, verified = 0, 0, 0
    views = (StateView(), StateView())
    for _ in range(MAX_ROUNDS):
        serials = await _log_serials(source, log_prefix, after=head)
        if not serials:
            return MigrationReport(
                workspace=workspace,
                source=source.describe(),
                target=target.describe(),
                serial=head,
                objects_copied=copied,
                serials_verified=verified,
            )
        if serials != list(range(head + 1, head + 1 + len(serials))):
            raise StateCorrupt(
                f"The source log of workspace '{workspace}' has a gap after serial {head}.",
                next_step="Repair the source first (see ${versions}); the target "
                "holds a partial copy: delete it before migrating again.",
            )
        log_keys = [serial_key(log_prefix, s) for s in serials]
        others = [
            k
            for k in await source.list_keys(prefix)
            if "/locks/" not in k and not k.startswith(log_prefix)
        ]
        copied += await _copy(source, target, log_keys + others, report)
        await _verify(source, target, workspace, views, serials, report)
        head, verified = serials[-1], verified + len(serials)
    raise MigrationFailed(
        f"The source log of workspace '{workspace}' kept growing through {MAX_ROUNDS} rounds "
        f"of copying (at serial {head}): writers without the workspace lock are busy.",
        next_step="Stop the drift monitor and other writers of the source, delete the target's "
        "partial copy and migrate again.",
    )


async def _log_serials(store: ObjectStore, log_prefix: str, *, after: int) -> list[int]:
    keys = await store.list_keys(log_prefix, start_after=serial_key(log_prefix, after))
    names = (k[len(log_prefix) :] for k in keys)
    return sorted(s for s in (serial_of(n) for n in names if "/" not in n) if s is not None)


async def _copy(source: ObjectStore, target: ObjectStore, keys: list[str], report: Progress) -> int:
    """Copy ``keys`` byte for byte; returns how many were new in the target. Objects that are
    rewritten in place (the snapshot pointer, token records) follow the source; a commit or
    snapshot that differs means another writer of the target."""
    written = 0
    for done, key in enumerate(keys, 1):
        obj = await source.get(key)
        if obj is None:
            raise StateCorrupt(f"{key} vanished from {source.describe()} during migration.")
        if await target.put_if_absent(key, obj.body):
            written += 1
        else:
            there = await target.get(key)
            if there is None or there.body != obj.body:
                if WRITE_ONCE.search(key):
                    raise MigrationFailed(
                        f"{key} appeared in {target.describe()} while migrating: someone else "
                        "is writing to the target.",
                        next_step="Stop other writers to the target and migrate into an empty one.",
                    )
                await target.put(key, obj.body)
        report("copy", done, len(keys))
    return written


async def _verify(
    source: ObjectStore,
    target: ObjectStore,
    workspace: str,
    views: tuple[StateView, StateView],
    serials: list[int],
    report: Progress,
) -> None:
    """Replay ``serials`` on both sides; the states must be equal at every one, and the
    target's store must read the same head."""
    for done, serial in enumerate(serials, 1):
        key = serial_key(f"{workspace}/log/", serial)
        for view, store in zip(views, (source, target), strict=True):
            obj = await store.get(key)
            if obj is None:
                raise MigrationFailed(f"{key} is missing from {store.describe()} after copying.")
            apply_commit(view, decode_commit(obj.body, where=key))
        left, right = (sha256_hex(canonical_json(v.to_snapshot())) for v in views)
        if left != right:
            raise MigrationFailed(
                f"The migrated state differs from the source at serial {serial}.",
                next_step="Delete the target workspace and migrate again; report a bug if it "
                "repeats.",
            )
        report("verify", done, len(serials))
    head = serials[-1]
    target_head = await StateStore(target, workspace).head()
    if target_head != head:
        raise MigrationFailed(f"The target reports serial {target_head}, expected {head}.")
