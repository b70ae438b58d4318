"""A separate OS process that commits to a local state: ``python store_worker.py ROOT NAME N``.

Each commit touches a resource of its own (NAME-i), so concurrent workers only ever rebase.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore


async def main(root: str, name: str, count: int) -> None:
    store = StateStore(LocalObjectStore(Path(root)), snapshot_every=25)
    for i in range(count):
        change = ResourceChange(
            identifier=f"{name}-{i}",
            resource_type="AWS::SQS::Queue",
            operation="create",
            properties_after={"QueueName": f"{name}-{i}", "Seq": i},
        )
        await store.commit([change], CommitMeta(principal=Principal(user=name)))
        print(i, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
