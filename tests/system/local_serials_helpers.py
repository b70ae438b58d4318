"""Shared by the local sequencer's process tests: a clock that stands still, stores on a state
directory, its log's files, worker processes, and waits on a process or a store's polls."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_serials import TICKET_PREFIX, LocalSequencer
from ccstate.service.state.model import ResourceChange
from ccstate.service.state.store import StateStore


class StoppedClock:
    """Real time at the start, then moves only when told to."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


def start_worker(worker: Path, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(worker), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sequenced(root: Path, **options: object) -> StateStore:
    return StateStore(LocalObjectStore(root), sequencer=LocalSequencer(root), **options)  # type: ignore[arg-type]


def log_dir(root: Path) -> Path:
    return root / "default" / "log"


def commit_file(root: Path, serial: int) -> Path:
    return log_dir(root) / f"{serial:020d}.json"


def tickets(root: Path) -> list[str]:
    return sorted(p.name for p in log_dir(root).glob(f"{TICKET_PREFIX}*"))


def queue(name: str) -> ResourceChange:
    return ResourceChange(
        identifier=name,
        resource_type="AWS::SQS::Queue",
        operation="create",
        properties_after={"QueueName": name},
    )


async def seen_unwritten(store: StateStore, serial: int) -> None:
    """Until ``store`` has looked for ``serial`` and found it unwritten (it is polling)."""
    while serial not in store._unwritten_since:
        await asyncio.sleep(0.01)


async def wait_stopped(pid: int) -> None:
    """Until every thread of ``pid`` is stopped (state T in /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    states: list[str] = []
    for _ in range(2000):
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        if all(state == "T" for state in states):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"process {pid} did not stop: {states}")
