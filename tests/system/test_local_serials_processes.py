"""Real OS processes taking serials from the local sequencer (backends/local_serials.py): no
commit lost or duplicated; a writer killed between its serial and its commit leaves a hole that
readers void as soon as they find its ticket unlocked; a live writer that never writes is
voided after the grace, as on S3."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from ccstate.backends.local_files import TEMP_PREFIX
from ccstate.backends.local_serials import COUNTER_NAME, TICKET_PREFIX, LocalSequencer
from ccstate.service.errors import StateCorrupt
from ccstate.service.state.model import CommitMeta, Principal

from tests.system.local_serials_helpers import (
    StoppedClock,
    commit_file,
    log_dir,
    queue,
    seen_unwritten,
    sequenced,
    start_worker,
)

WORKER = Path(__file__).with_name("ticket_worker.py")


def spawn(root: Path, name: str, count: int, *flags: str) -> subprocess.Popen:
    return start_worker(WORKER, root, name, count, *flags)


async def test_four_processes_taking_serials_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    root = tmp_path / "state"
    procs = [spawn(root, f"w{n}", 40) for n in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]

    serials = [int(line) for out, _ in outputs for line in out.split()]
    store = sequenced(root)
    view = await store.current()
    versions = await store.versions()

    assert sorted(serials) == list(range(1, 161))  # each serial to exactly one commit
    assert view.serial == 160
    assert sorted(view.resources) == sorted(f"w{n}-{i}" for n in range(4) for i in range(40))
    assert {v.kind for v in versions} == {"change"}  # no hole was left to void
    assert not [p for p in log_dir(root).iterdir() if p.name.startswith(TICKET_PREFIX)]
    # Nor a spare ticket (kept between commits, removed as the process exits).
    assert not [p for p in log_dir(root).iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert await LocalSequencer(root).current("default") == 160


def hold_serial(root: Path) -> subprocess.Popen:
    """A writer process that took serial 2 and stopped right before writing its commit."""
    holder = spawn(root, "held", 1, "--hold")
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line.startswith("holding ") and line.strip().endswith(f"{2:020d}.json"), line
    return holder


async def test_a_writer_killed_after_taking_its_serial_leaves_a_hole_voided_at_once(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await sequenced(root).commit([queue("first")], CommitMeta(principal=Principal(user="a")))
    holder = hold_serial(root)
    after = await sequenced(root).commit(
        [queue("after")], CommitMeta(principal=Principal(user="b")), under_lock=True
    )
    assert after.serial == 3

    # A reader in this process waits for serial 2 while its writer lives...
    reader = sequenced(root, clock=StoppedClock(), hole_grace=1e9)
    reading = asyncio.create_task(reader.current())
    await asyncio.wait_for(seen_unwritten(reader, 2), timeout=60)
    await asyncio.sleep(0.05)  # a few more polls
    assert not reading.done() and not commit_file(root, 2).exists()

    os.kill(holder.pid, signal.SIGKILL)  # between its serial (2) and its commit
    holder.wait(timeout=30)
    # ... and voids it as soon as the writer is gone: the clock never moves, and a grace of
    # 1e9 s would never pass (the timeout is only a safety net).
    view = await asyncio.wait_for(reading, timeout=60)

    assert view.serial == 3 and sorted(view.resources) == ["after", "first"]
    assert [v.kind for v in reversed(await reader.versions())] == ["change", "void", "change"]
    assert "its writer stopped before writing it" in ((await reader.commit_at(2)).explanation or "")
    assert not (log_dir(root) / f"{TICKET_PREFIX}2").exists()
    # Another process reads the same log, the void included, without waiting.
    again = await sequenced(root, clock=StoppedClock(), hole_grace=1e9).current()
    assert again.serial == 3 and sorted(again.resources) == ["after", "first"]


async def test_a_fresh_reader_voids_a_dead_writers_hole_without_waiting_the_grace(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await sequenced(root).commit([queue("first")], CommitMeta(principal=Principal(user="a")))
    holder = hold_serial(root)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)

    # Serial 2 is the newest handed out, nothing written after it: a commit in another
    # process (a new store, as a CLI command opens) reads past it at once and commits at 3.
    after = await asyncio.wait_for(
        sequenced(root, clock=StoppedClock(), hole_grace=1e9).commit(
            [queue("after")], CommitMeta(principal=Principal(user="b"))
        ),
        timeout=60,
    )
    assert after.serial == 3
    # Any reader then voids serial 2 at once, on a clock that never reaches the grace.
    reader = sequenced(root, clock=StoppedClock(), hole_grace=1e9)
    view = await asyncio.wait_for(reader.current(), timeout=60)
    assert view.serial == 3 and sorted(view.resources) == ["after", "first"]
    assert [v.kind for v in reversed(await reader.versions())] == ["change", "void", "change"]
    assert "its writer stopped before writing it" in ((await reader.commit_at(2)).explanation or "")


async def test_a_live_writer_that_never_writes_is_voided_after_the_grace(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await sequenced(root).commit([queue("first")], CommitMeta(principal=Principal(user="a")))
    holder = hold_serial(root)  # alive, holding its ticket, stuck
    try:
        after = await sequenced(root).commit(
            [queue("after")], CommitMeta(principal=Principal(user="b")), under_lock=True
        )
        assert after.serial == 3

        clock = StoppedClock()
        reader = sequenced(root, clock=clock, hole_grace=30.0)
        reading = asyncio.create_task(reader.current())
        await asyncio.wait_for(seen_unwritten(reader, 2), timeout=60)
        await asyncio.sleep(0.05)  # polls meanwhile: neither skips serial 2 nor fills it early
        assert not reading.done()
        assert not commit_file(root, 2).exists()

        clock.at += timedelta(seconds=31)
        view = await asyncio.wait_for(reading, timeout=60)
    finally:
        holder.kill()
        holder.wait(timeout=30)

    assert view.serial == 3 and sorted(view.resources) == ["after", "first"]
    assert "not written within 30 s" in ((await reader.commit_at(2)).explanation or "")


async def test_a_commit_removed_after_it_was_written_is_reported_never_voided(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    writer = sequenced(root)
    for name in ("a", "b", "c"):
        await writer.commit([queue(name)], CommitMeta(principal=Principal(user="a")))
    commit_file(root, 2).unlink()

    clock = StoppedClock()
    clock.at += timedelta(hours=1)  # long past any grace
    written_and_gone = "Commit 2 of workspace 'default' was written and is now missing"
    with pytest.raises(StateCorrupt, match=written_and_gone):
        await sequenced(root, clock=clock, hole_grace=0.01).current()
    assert not commit_file(root, 2).exists()


async def test_the_counter_and_the_tickets_are_private(tmp_path: Path) -> None:
    root = tmp_path / "state"
    old = os.umask(0o022)
    try:
        sequencer = LocalSequencer(root)
        serial = await sequencer.next_serial("default")
    finally:
        os.umask(old)

    for path in (log_dir(root) / COUNTER_NAME, log_dir(root) / f"{TICKET_PREFIX}{serial}"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(log_dir(root).stat().st_mode) == 0o700


async def test_a_commit_waits_only_for_serials_in_flight_that_declared_its_resources(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await sequenced(root).commit([queue("x")], CommitMeta(principal=Principal(user="a")))
    # A writer took serial 2 for a change of x and has not written it yet.
    in_flight = await LocalSequencer(root).next_serial_for("default", {"x"})
    assert in_flight == 2

    other = await asyncio.wait_for(
        sequenced(root, clock=StoppedClock()).commit(
            [queue("y")], CommitMeta(principal=Principal(user="b"))
        ),
        timeout=60,  # a safety net: waiting for serial 2 would never end on a stopped clock
    )
    assert other.serial == 3  # past the serial in flight: it declared x, this changes y

    clock = StoppedClock()
    waiting = sequenced(root, clock=clock, hole_grace=30.0)
    same = asyncio.create_task(
        waiting.commit([queue("x")], CommitMeta(principal=Principal(user="c")))
    )
    await asyncio.wait_for(seen_unwritten(waiting, 2), timeout=60)
    assert not same.done()  # serial 2 may change x: it is waited for, not skipped
    clock.at += timedelta(seconds=31)
    landed = await asyncio.wait_for(same, timeout=30)

    reader = sequenced(root)
    assert landed.serial == 4
    assert [v.kind for v in reversed(await reader.versions())] == [
        "change",
        "void",
        "change",
        "change",
    ]
    assert sorted((await reader.current()).resources) == ["x", "y"]


async def test_a_ticket_file_reused_for_the_next_serial_declares_only_the_new_claim(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    writer = sequenced(root)
    await writer.commit([queue("a-much-longer-name")], CommitMeta(principal=Principal(user="a")))
    # The spent ticket was kept as this process's spare; the next serial's ticket is that file.
    sequencer = LocalSequencer(root)
    serial = await sequencer.next_serial_for("default", {"b"})
    assert serial == 2
    assert await sequencer.declared("default", 2) == {"b"}
    assert not await sequencer.abandoned("default", 2)  # held by this process
    sequencer.release("default", 2)
    assert await sequencer.abandoned("default", 2)  # let go without a commit: voidable
