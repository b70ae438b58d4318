"""Migration between two real local backends (the S3 round trip lives in tests/integration/s3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import InvalidInput
from ccstate.service.state.migrate import migrate
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
