"""A separate OS process that commits to a local state with serials from the local sequencer,
as stores opened on a local backend do: ``python ticket_worker.py ROOT NAME N [--hold]``.

Each commit touches a resource of its own (NAME-i). With ``--hold`` the worker takes the serial
of its first commit and stops right before writing it (printing the serial): the test kills it
there, leaving a serial handed out and never written.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore, StagedPut
from ccstate.backends.local_serials import LocalSequencer
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore


class HoldingObjectStore(LocalObjectStore):
    """Stops for good once the commit body is about to be written."""

    async def stage_if_absent(self, key: str, body: bytes) -> StagedPut:
        print(f"holding {key}", flush=True)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        await self.stage_if_absent(key, body)
        return False


async def main(root: str, name: str, count: int, hold: bool) -> None:
    objects = (HoldingObjectStore if hold else LocalObjectStore)(Path(root))
    store = StateStore(objects, sequencer=LocalSequencer(Path(root)), snapshot_every=25)
    for i in range(count):
        change = ResourceChange(
            identifier=f"{name}-{i}",
            resource_type="AWS::SQS::Queue",
            operation="create",
            properties_after={"QueueName": f"{name}-{i}", "Seq": i},
        )
        commit = await store.commit([change], CommitMeta(principal=Principal(user=name)))
        print(commit.serial, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), "--hold" in sys.argv[4:]))
