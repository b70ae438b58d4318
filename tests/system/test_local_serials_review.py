"""An adversarial review of the local sequencer (backends/local_serials.py) with real files and
real processes: writers killed or stopped at the steps of a commit, a counter file set wrong by
hand, stores of the race design writing beside sequenced ones, file modes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from ccstate.backends.local_serials import COUNTER_NAME, TICKET_PREFIX, LocalSequencer
from ccstate.service.errors import StateCorrupt
from ccstate.service.state.model import CommitMeta, Principal

from tests.system.local_serials_helpers import (
    StoppedClock,
    commit_file,
    log_dir,
    queue,
    sequenced,
    start_worker,
    tickets,
    wait_stopped,
)

WORKER = Path(__file__).with_name("serials_review_worker.py")


def spawn(root: Path, name: str, count: int, mode: str) -> subprocess.Popen:
    return start_worker(WORKER, root, name, count, mode)


def state_list(root: Path) -> list[str]:
    command = ["state", "list", "--backend", str(root), "--output", "json"]
    return [sys.executable, "-m", "ccstate", *command]


def meta(user: str = "a") -> CommitMeta:
    return CommitMeta(principal=Principal(user=user))


async def commit_names(root: Path, *names: str) -> None:
    writer = sequenced(root)
    for name in names:
        await writer.commit([queue(name)], meta())


async def test_a_commit_of_a_writer_killed_after_its_link_is_read_and_if_deleted_reported(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "a", "b")
    dying = spawn(root, "dying", 1, "kill-after-link")
    out, err = dying.communicate(timeout=120)
    assert dying.returncode == -signal.SIGKILL, err
    assert "linked 00000000000000000003.json" in out
    assert commit_file(root, 3).exists()

    # Its commit is read as written (not voided, not reported).
    view = await sequenced(root, clock=StoppedClock(), hole_grace=1e9).current()
    assert view.serial == 3 and sorted(view.resources) == ["a", "b", "dying-0"]

    # Deleted by hand afterwards, it is reported, never voided (the dead writer's ticket must
    # not make it look like a serial nobody wrote).
    commit_file(root, 3).unlink()
    with pytest.raises(StateCorrupt, match="Commit 3 of workspace 'default' was written"):
        await asyncio.wait_for(
            sequenced(root, clock=StoppedClock(), hole_grace=1e9).current(), timeout=60
        )
    assert not commit_file(root, 3).exists()


async def test_a_commit_deleted_from_the_middle_is_reported_without_waiting_out_the_grace(
    tmp_path: Path,
) -> None:
    """Its ticket is spent, so nobody will write that serial again: the reader reports it at
    once. It used to wait ``hole_grace`` (30 s) first; with the clock stopped, for ever."""
    root = tmp_path / "state"
    writer = sequenced(root, snapshot_every=5)
    for name in "abcdefg":
        await writer.commit([queue(name)], meta())
    commit_file(root, 6).unlink()  # after the snapshot at 5: the load reads on from there

    reader = sequenced(root, snapshot_every=5, clock=StoppedClock(), hole_grace=1e9)
    with pytest.raises(StateCorrupt, match="Commit 6 of workspace 'default' was written"):
        await asyncio.wait_for(reader.current(), timeout=60)
    assert not commit_file(root, 6).exists()  # reported, never voided


async def test_a_writer_stopped_before_its_link_and_voided_meanwhile_commits_at_a_new_serial(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "a")
    paused = spawn(root, "paused", 1, "stop-before-link")
    try:
        assert paused.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(paused.stdout.readline), timeout=120)
        assert line.strip() == "linking 00000000000000000002.json"
        os.kill(paused.pid, signal.SIGSTOP)
        await wait_stopped(paused.pid)  # kill() returns before every thread has stopped
        (root / "go").touch()
        await commit_names(root, "b")  # serial 3, past the paused writer's serial 2

        # It holds its ticket, so it is not abandoned: voided only after the grace.
        clock = StoppedClock()
        clock.at += timedelta(seconds=31)
        reader = sequenced(root, clock=clock, hole_grace=30.0)
        reading = asyncio.create_task(reader.current())
        view = await asyncio.wait_for(reading, timeout=60)
        assert view.serial == 3
        assert (await reader.commit_at(2)).kind == "void"
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    out, err = paused.communicate(timeout=120)
    assert paused.returncode == 0, err

    # It lost serial 2 to the void (not overwritten) and committed at a new serial.
    assert out.split()[-1] == "4"
    reader = sequenced(root)
    assert (await reader.commit_at(2)).kind == "void"
    view = await reader.current()
    assert view.serial == 4 and sorted(view.resources) == ["a", "b", "paused-0"]
    assert tickets(root) == []


@pytest.mark.parametrize("counter", [b"", b"garbage", b"00000000000000000001", None])
async def test_a_counter_behind_the_log_hands_out_no_serial_twice_and_leaves_no_ticket(
    tmp_path: Path, counter: bytes | None
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "a", "b", "c")
    path = log_dir(root) / COUNTER_NAME
    if counter is None:
        path.unlink()
    else:
        path.write_bytes(counter)

    # A sequencer used directly (no store's first load to move the counter past the log).
    landed = await sequenced(root).commit([queue("d")], meta("b"))
    assert landed.serial == 4
    assert tickets(root) == []  # the tickets of serials found written are gone

    # The newest commit deleted by hand is reported, never voided.
    commit_file(root, 4).unlink()
    with pytest.raises(StateCorrupt, match="Commit 4 of workspace 'default' was written"):
        await asyncio.wait_for(
            sequenced(root, clock=StoppedClock(), hole_grace=1e9).current(), timeout=60
        )


async def test_tickets_taken_by_a_sequencer_behind_the_log_are_not_left_behind(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "a", "b", "c")
    (log_dir(root) / COUNTER_NAME).write_bytes(b"0" * 20)
    store = sequenced(root)
    view = await store.current()  # its first load moves the counter past the log
    assert view.serial == 3
    landed = await store.commit([queue("d")], meta())
    assert landed.serial == 4 and tickets(root) == []


async def test_race_design_and_sequenced_processes_together_lose_and_invent_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "seed")
    procs = [spawn(root, f"s{n}", 15, "sequenced") for n in range(2)]
    procs += [spawn(root, f"r{n}", 15, "bare") for n in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]

    serials = [int(line) for out, _ in outputs for line in out.split()]
    reader = sequenced(root)
    view = await reader.current()
    versions = await reader.versions()
    changes = [v for v in versions if v.kind != "void"]

    assert len(serials) == len(set(serials)) == 60  # each commit at a serial of its own
    assert len(changes) == 61  # none lost, none invented
    expected = {"seed"} | {f"{w}{n}-{i}" for w in "sr" for n in range(2) for i in range(15)}
    assert set(view.resources) == expected
    assert tickets(root) == []


async def test_every_file_a_sequenced_commit_leaves_is_private(tmp_path: Path) -> None:
    root = tmp_path / "state"
    old = os.umask(0o022)
    try:
        await commit_names(root, "a", "b")
        sequencer = LocalSequencer(root)
        serial = await sequencer.next_serial_for("default", {"c"})
    finally:
        os.umask(old)
    names = sorted(p.name for p in log_dir(root).iterdir())
    assert f"{TICKET_PREFIX}{serial}" in names
    for path in log_dir(root).iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    sequencer.release("default", serial)


@pytest.mark.parametrize("moved", [False, True], ids=["before-the-count", "after-the-count"])
async def test_a_writer_killed_around_the_counter_leaves_no_hole_for_ever(
    tmp_path: Path, moved: bool
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "a")
    dying = spawn(root, "dying", 1, "kill-after-count" if moved else "kill-before-count")
    out, err = dying.communicate(timeout=120)
    assert dying.returncode == -signal.SIGKILL, err
    assert out.split() == ["counting", "2"]
    assert tickets(root) == [f"{TICKET_PREFIX}2"]  # created and locked before the count moved

    # No grace ever passes: the dead writer's ticket is taken over (count not moved) or its
    # hole voided at once (count moved).
    writer = sequenced(root, clock=StoppedClock(), hole_grace=1e9)
    landed = await asyncio.wait_for(writer.commit([queue("b")], meta("b")), timeout=60)
    assert landed.serial == (3 if moved else 2)
    reader = sequenced(root, clock=StoppedClock(), hole_grace=1e9)
    view = await asyncio.wait_for(reader.current(), timeout=60)
    assert sorted(view.resources) == ["a", "b"]
    kinds = [v.kind for v in reversed(await reader.versions())]
    assert kinds == (["change", "void", "change"] if moved else ["change", "change"])
    assert tickets(root) == []


async def test_state_list_in_another_process_reports_a_newest_commit_deleted_by_hand(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    writer = sequenced(root)
    # Over 200 resources: the readable export is not rewritten after each commit.
    await writer.commit([queue(f"q{i:03d}") for i in range(250)], meta())
    for name in ("x", "y", "z"):
        await writer.commit([queue(name)], meta())
    commit_file(root, 4).unlink()

    listed = subprocess.run(
        state_list(root),
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=120,
    )
    assert listed.returncode != 0, listed.stdout[:500]
    assert "Commit 4 of workspace 'default' was written" in listed.stdout + listed.stderr


async def test_state_list_in_processes_while_writers_hold_tickets_shows_whole_prefixes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    await commit_names(root, "seed")
    writers = [spawn(root, f"w{n}", 20, "sequenced") for n in range(2)]
    listings = []
    while any(w.poll() is None for w in writers) or not listings:
        listed = subprocess.run(
            state_list(root),
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": str(tmp_path)},
            timeout=120,
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        listings.append(json.loads(listed.stdout))
    outputs = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outputs]

    reader = sequenced(root)
    by_serial = {v.serial: v for v in await reader.versions()}
    for listing in listings:
        upto = listing["serial"]
        expected = {"seed"} | {
            c.identifier for s in range(1, upto + 1) for c in (await reader.commit_at(s)).changes
        }
        assert {r["identifier"] for r in listing["resources"]} == expected, upto
        assert upto in by_serial
    assert len((await reader.current()).resources) == 41


FORKING_HOLDER = """
import asyncio, os, sys, time
from pathlib import Path
from ccstate.backends.local_serials import LocalSequencer
serial = asyncio.run(LocalSequencer(Path(sys.argv[1])).next_serial_for("default", {"x"}))
child = os.fork()
if child == 0:
    os.close(1)  # the test reads the parent's output to its end
    while True:
        time.sleep(1)
print(serial, child, flush=True)
os._exit(0)
"""


async def test_a_forked_child_holding_an_inherited_ticket_delays_the_void_until_it_dies(
    tmp_path: Path,
) -> None:
    """The documented limit of ticket liveness: a child forked while its parent held a ticket
    holds the flock too, so the hole of its dead parent waits for the child, not the grace."""
    root = tmp_path / "state"
    await commit_names(root, "a")
    parent = subprocess.run(
        [sys.executable, "-c", FORKING_HOLDER, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=120,
    )
    serial, child = map(int, parent.stdout.split())
    try:
        await commit_names(root, "b")  # serial 3, past the hole
        reader = sequenced(root, clock=StoppedClock(), hole_grace=1e9)
        reading = asyncio.create_task(reader.current())
        while serial not in reader._unwritten_since:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert not reading.done() and not commit_file(root, serial).exists()
    finally:
        os.kill(child, signal.SIGKILL)
    view = await asyncio.wait_for(reading, timeout=60)  # voided as soon as the child is gone
    assert view.serial == 3 and (await reader.commit_at(2)).kind == "void"
