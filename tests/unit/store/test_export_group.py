"""The readable state.json export after parallel commits: one export serves the commits
waiting together, and each commit returns only once its serial is in the file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccstate.backends.export import exported_head, state_json_exporter
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.store import StateStore

from tests.unit.store.helpers import change, meta


async def test_parallel_commits_share_exports_and_each_finds_its_serial_exported(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state.json"
    export, head = state_json_exporter(target), exported_head(target)
    writes: list[int] = []

    async def counting(doc) -> None:  # type: ignore[no-untyped-def]
        writes.append(doc.metadata.serial)
        await export(doc)

    store = StateStore(LocalObjectStore(tmp_path / "state"), exporter=counting)

    async def one(name: str) -> None:
        commit = await store.commit([change(name)], meta())
        exported = await head()
        assert exported is not None and exported[0] >= commit.serial

    await asyncio.gather(*(one(f"bucket-{n}") for n in range(10)))
    assert writes == sorted(writes) and writes[-1] == 10
    assert len(writes) < 10  # commits that waited together shared one export
    assert (await head()) == (10, (await store.current()).lineage)
