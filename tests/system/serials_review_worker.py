"""A separate OS process for tests/system/test_local_serials_review.py:
``python serials_review_worker.py ROOT NAME N MODE``.

MODE ``sequenced``: N commits through the local sequencer; ``bare``: N commits through a bare
``StateStore(LocalObjectStore(root))`` (the race design of older versions); ``stop-before-link``:
one sequenced commit that waits right before its commit is linked, until ``ROOT/go``
exists (the test stops it there with SIGSTOP);
``kill-before-count`` / ``kill-after-count``: one sequenced commit that SIGKILLs itself with
its ticket created and locked, right before / right after the counter moves;
``kill-after-link``: one sequenced commit that SIGKILLs itself once its commit is linked and
fsynced, before its ticket is removed. Prints each serial committed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from ccstate.backends import local_objects, local_serials
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_serials import LocalSequencer
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore


def stop_before_link() -> None:
    link = local_objects.LocalObjectStore._link

    def stopping(self: LocalObjectStore, path: Path, tmp: Path) -> bool:
        if path.parent.name == "log":
            print(f"linking {path.name}", flush=True)
            while not (path.parents[2] / "go").exists():
                time.sleep(0.01)
        return link(self, path, tmp)

    local_objects.LocalObjectStore._link = stopping  # type: ignore[method-assign]


def kill_after_link() -> None:
    def dying(directory: Path, name: str) -> None:
        if local_serials.serial_of_name(name) is not None:
            print(f"linked {name}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    local_serials.remove_ticket = dying  # type: ignore[assignment]


def kill_at_count(after: bool) -> None:
    write = local_serials._write

    def dying(fd: int, serial: int) -> None:
        print(f"counting {serial}", flush=True)
        if after:
            write(fd, serial)
        os.kill(os.getpid(), signal.SIGKILL)

    local_serials._write = dying  # type: ignore[assignment]


async def main(root: Path, name: str, count: int, mode: str) -> None:
    if mode == "stop-before-link":
        stop_before_link()
    if mode == "kill-after-link":
        kill_after_link()
    if mode.startswith("kill-") and mode.endswith("-count"):
        kill_at_count(after=mode == "kill-after-count")
    sequencer = None if mode == "bare" else LocalSequencer(root)
    store = StateStore(LocalObjectStore(root), sequencer=sequencer)  # type: ignore[arg-type]
    for i in range(count):
        change = ResourceChange(
            identifier=f"{name}-{i}",
            resource_type="AWS::SQS::Queue",
            operation="create",
            properties_after={"QueueName": f"{name}-{i}"},
        )
        commit = await store.commit([change], CommitMeta(principal=Principal(user=name)))
        print(commit.serial, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]))
