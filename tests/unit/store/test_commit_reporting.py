"""A commit that reached the log is reported as committed, whatever happens to derived data."""

from __future__ import annotations

from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.store import StateStore

from .helpers import change, meta


async def test_a_snapshot_that_cannot_be_written_does_not_fail_the_commit(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    store = StateStore(LocalObjectStore(root), snapshot_every=1)
    (root / "default").mkdir(mode=0o700, parents=True)
    (root / "default" / "snapshots").write_text("a file where the snapshot directory goes")

    commit = await store.commit([change("b1")], meta())

    assert commit.serial == 1
    fresh = StateStore(LocalObjectStore(root))
    assert await fresh.head() == 1
    assert (await fresh.get_resource("b1")) is not None
