"""The stack journal on real files: parallel steps' saves are a group commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.stacks.journal import Journal, JournalStore

from tests.fakes import CountingObjectStore


async def test_each_parallel_save_is_durable_when_it_returns_and_they_share_writes(
    tmp_path: Path,
) -> None:
    objects = CountingObjectStore(LocalObjectStore(tmp_path / "state"))
    store = JournalStore(objects, "default")
    journal = Journal(stack="web", operation="create", status="CREATE_IN_PROGRESS", template={})

    async def step(logical: str) -> None:
        journal.event(logical, "CREATE_COMPLETE")
        await store.save(journal)
        saved = await JournalStore(LocalObjectStore(tmp_path / "state"), "default").load("web")
        assert saved is not None
        assert logical in {event["logical_id"] for event in saved.events}

    await asyncio.gather(*(step(f"Queue{n}") for n in range(10)))
    saved = await store.load("web")
    assert saved is not None and len(saved.events) == 10
    assert objects.calls["put"] < 10  # saves asked during one write shared the next
