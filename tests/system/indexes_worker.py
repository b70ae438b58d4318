"""A separate OS process for tests/system/test_store_processes.py: ``python indexes_worker.py
ROOT NAME N EVERY``. N commits through the local sequencer (as ``open_local_backend`` builds the
store), each updating one of three resources every writer shares (every fourth also creates one
of its own; w0 imports the state every 17th, w1 deletes one every 13th), with a snapshot every
EVERY serials; half of them under the caller's locks (nothing read before the put). Lost
conflicts are skipped. Prints how many times the store took its indexed part from a snapshot
another writer wrote (``rebase_pending``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_serials import LocalSequencer
from ccstate.service.errors import StateConflict
from ccstate.service.state import snapshots
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

REBASES = [0]
_rebase = snapshots.rebase_pending


def counted(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    REBASES[0] += 1
    _rebase(*args, **kwargs)


def queue(identifier: str, operation: str, **extra: object) -> ResourceChange:
    after = None if operation == "delete" else {"QueueName": identifier, **extra}
    return ResourceChange(
        identifier=identifier,
        resource_type="AWS::SQS::Queue",
        operation=operation,
        properties_after=after,
    )


async def main(root: Path, name: str, count: int, every: int) -> None:
    snapshots.rebase_pending = counted  # type: ignore[assignment]
    store = StateStore(LocalObjectStore(root), sequencer=LocalSequencer(root), snapshot_every=every)
    who = CommitMeta(principal=Principal(user=name))
    for i in range(count):
        changes = [queue(f"shared-{i % 3}", "update", By=name, I=i)]
        if i % 4 == 0:
            changes.append(queue(f"{name}-{i}", "create"))
        try:
            if name == "w0" and i % 17 == 16:  # an import restarts every history
                await store.import_document(await store.export_document(), who, force=True)
            elif name == "w1" and i % 13 == 12:
                await store.commit([queue(f"shared-{i % 3}", "delete")], who, under_lock=True)
            else:
                await store.commit(changes, who, under_lock=i % 2 == 0)
        except StateConflict:
            continue
    print(f"rebases {REBASES[0]}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
