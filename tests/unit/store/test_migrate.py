"""Migration between two real local backends (the S3 round trip lives in tests/integration/s3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import InvalidInput
from ccstate.service.state.migrate import MigrationFailed, migrate
from ccstate.service.state.store import StateStore

from .helpers import change, meta


async def test_migration_copies_history_and_verifies_every_serial(tmp_path: Path) -> None:
    src = LocalObjectStore(tmp_path / "a")
    st = StateStore(src, snapshot_every=3)
    for i in range(8):
        await st.commit([change(f"b{i % 3}", V=i)], meta())
    await st.restore(4, meta())

    phases: list[str] = []
    dst = LocalObjectStore(tmp_path / "b")
    report = await migrate(src, dst, progress=lambda phase, done, total: phases.append(phase))
    assert report.serial == 9 and report.serials_verified == 9
    assert "copy" in phases and "verify" in phases

    moved = StateStore(dst)
    assert (await moved.current()).to_snapshot() == (await st.current()).to_snapshot()
    assert await moved.history("b1") == await st.history("b1")

    back = LocalObjectStore(tmp_path / "c")
    await migrate(dst, back)
    assert (await StateStore(back).materialize(5)) == (await st.materialize(5))


async def test_migration_refuses_a_target_that_has_a_state(tmp_path: Path) -> None:
    src, dst = LocalObjectStore(tmp_path / "a"), LocalObjectStore(tmp_path / "b")
    await StateStore(src).commit([change("x")], meta())
    await StateStore(dst).commit([change("y")], meta())
    with pytest.raises(InvalidInput, match="already has a state"):
        await migrate(src, dst)
    assert (await StateStore(dst).current()).resources.keys() == {"y"}


class DriftDuringCopy(LocalObjectStore):
    """The source, with a writer that takes no lock (a drift record) committing while the
    migration reads it: ``commits`` commits after the ``after``-th read of a commit."""

    def __init__(self, root: Path, *, after: int, commits: int) -> None:
        super().__init__(root)
        self.after, self.commits, self.reads = after, commits, 0
        self.writer = StateStore(LocalObjectStore(root))

    async def get(self, key: str):
        if "/log/" in key:
            self.reads += 1
            if self.reads == self.after:
                for i in range(self.commits):
                    await self.writer.commit([change(f"drift{i}", V=i)], meta("drift"))
        return await super().get(key)


async def test_commits_made_during_the_copy_are_copied_too(tmp_path: Path) -> None:
    """Before: 369 of 600 serials verified, exit 0, and the logs forked."""
    src = DriftDuringCopy(tmp_path / "a", after=3, commits=5)
    first = StateStore(LocalObjectStore(tmp_path / "a"), snapshot_every=4)
    for i in range(6):
        await first.commit([change(f"b{i}")], meta())
    dst = LocalObjectStore(tmp_path / "b")
    report = await migrate(src, dst)
    source_view = await StateStore(LocalObjectStore(tmp_path / "a")).current()
    assert source_view.serial == 11
    assert report.serial == report.serials_verified == 11
    moved = await StateStore(dst).current()
    assert moved.to_snapshot() == source_view.to_snapshot()


async def test_a_source_that_never_stops_moving_is_refused(tmp_path: Path) -> None:
    class Busy(LocalObjectStore):
        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self.writer = StateStore(LocalObjectStore(root))

        async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
            if prefix.endswith("/log/"):
                await self.writer.commit([change("busy")], meta("drift"))
            return await super().list_keys(prefix, start_after=start_after)

    root = tmp_path / "a"
    await StateStore(LocalObjectStore(root)).commit([change("b0")], meta())
    with pytest.raises(MigrationFailed, match="kept growing"):
        await migrate(Busy(root), LocalObjectStore(tmp_path / "b"))
