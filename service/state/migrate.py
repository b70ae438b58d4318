"""Copy a workspace's whole state, with its history, from one object store to another.

Every object under the workspace prefix is copied byte for byte (commits, snapshots, token and
salt records), commits first and in serial order. Then both stores replay their logs side by side
and the materialized states must be equal at every serial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ccstate.service.errors import CcstateError, InvalidInput, StateCorrupt
from ccstate.service.names import validate_workspace
from ccstate.service.ports import ObjectStore
from ccstate.service.state.model import canonical_json, sha256_hex
from ccstate.service.state.replay import StateView, apply_commit
from ccstate.service.state.store import StateStore, decode_commit, serial_key

Progress = Callable[[str, int, int], None]  # phase, done, total


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
    validate_workspace(workspace)
    report = progress or (lambda phase, done, total: None)
    prefix = f"{workspace}/"
    if await target.list_keys(f"{workspace}/log/"):
        raise InvalidInput(
            f"The target {target.describe()} already has a state in workspace '{workspace}'.",
            next_step="Migrate into an empty backend or another workspace; nothing was copied.",
        )
    keys = [k for k in await source.list_keys(prefix) if "/locks/" not in k]
    log_keys = [k for k in keys if k.startswith(f"{workspace}/log/")]
    others = [k for k in keys if k not in set(log_keys)]
    ordered = log_keys + others
    for done, key in enumerate(ordered, 1):
        obj = await source.get(key)
        if obj is None:
            raise StateCorrupt(f"{key} vanished from {source.describe()} during migration.")
        if not await target.put_if_absent(key, obj.body):
            raise MigrationFailed(
                f"{key} appeared in {target.describe()} while migrating: someone else is "
                "writing to the target.",
                next_step="Stop other writers to the target and migrate into an empty one.",
            )
        report("copy", done, len(ordered))
    head = len(log_keys)
    verified = await _verify(source, target, workspace, head, report)
    return MigrationReport(
        workspace=workspace,
        source=source.describe(),
        target=target.describe(),
        serial=head,
        objects_copied=len(ordered),
        serials_verified=verified,
    )


async def _verify(
    source: ObjectStore, target: ObjectStore, workspace: str, head: int, report: Progress
) -> int:
    views = (StateView(), StateView())
    for serial in range(1, head + 1):
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
        report("verify", serial, head)
    target_head = await StateStore(target, workspace).head()
    if target_head != head:
        raise MigrationFailed(f"The target reports serial {target_head}, expected {head}.")
    return head
