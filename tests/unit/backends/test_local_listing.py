"""LocalObjectStore.list_keys from a serial: the quick path (probing names, no directory read)
answers exactly what a full walk of the directory answers, whatever was put, deleted or
tampered with."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from ccstate.backends import local_listing
from ccstate.backends.local_objects import LocalObjectStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LOG = "default/log/"


def serial_key(n: int) -> str:
    return f"{LOG}{n:020d}.json"


def walked(root: Path, prefix: str, start_after: str) -> list[str]:
    """The reference: every visible file under root, as keys, filtered and sorted."""
    keys = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            if not name.startswith("."):
                keys.append(name if rel == "." else f"{rel}/{name}")
    return sorted(k for k in keys if k.startswith(prefix) and k > start_after)


class CountingProbe:
    """Counts how often list_keys falls back to reading the whole directory."""

    def __init__(self, store: LocalObjectStore) -> None:
        self.full_reads = 0
        walk = store._walk

        def counted(directory: Path):  # type: ignore[no-untyped-def]
            self.full_reads += 1
            return walk(directory)

        store._walk = counted  # type: ignore[method-assign]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 30)),
        st.tuples(st.just("delete"), st.integers(0, 30)),
        st.tuples(st.just("other"), st.sampled_from(["notes.txt", "sub/x.json", "9.json"])),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, starts=st.lists(st.integers(0, 35), min_size=1, max_size=5))
def test_list_keys_after_a_serial_equals_a_full_walk(ops: list, starts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "state"
        store = LocalObjectStore(root)

        async def scenario() -> None:
            await store.list_keys(LOG, start_after=serial_key(0))  # markers from the start
            for kind, value in ops:
                if kind == "put":
                    await store.put_if_absent(serial_key(value), b"{}")
                elif kind == "delete":
                    await store.delete(serial_key(value))
                else:
                    await store.put(LOG + value, b"{}")
                for start in starts:
                    after = serial_key(start)
                    assert await store.list_keys(LOG, start_after=after) == walked(root, LOG, after)

        asyncio.run(scenario())


async def test_a_long_log_is_listed_from_a_serial_without_reading_the_directory(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path)
    for n in range(1, 41):
        await store.put_if_absent(serial_key(n), b"{}")
    await store.list_keys(LOG)  # a state written before the markers: read once in full
    probe = CountingProbe(store)
    for n in range(41, 46):
        await store.put_if_absent(serial_key(n), b"{}")

    assert await store.list_keys(LOG, start_after=serial_key(38)) == [
        serial_key(n) for n in range(39, 46)
    ]
    assert await store.list_keys(LOG, start_after=serial_key(45)) == []
    assert probe.full_reads == 0


async def test_a_commit_removed_by_hand_is_seen_as_a_gap(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for n in range(1, 11):
        await store.put_if_absent(serial_key(n), b"{}")
    await store.list_keys(LOG)
    os.remove(tmp_path / serial_key(5))

    after_three = await store.list_keys(LOG, start_after=serial_key(3))

    assert after_three == [serial_key(n) for n in (4, 6, 7, 8, 9, 10)]


async def test_a_state_written_before_the_markers_is_listed_in_full_once(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path)
    for n in range(1, 6):
        await store.put_if_absent(serial_key(n), b"{}")
    for marker in (local_listing.MAX_MARKER, local_listing.MIXED_MARKER):
        (tmp_path / LOG / marker).unlink(missing_ok=True)
    probe = CountingProbe(store)

    first = await store.list_keys(LOG, start_after=serial_key(2))
    second = await store.list_keys(LOG, start_after=serial_key(2))

    assert first == second == [serial_key(n) for n in (3, 4, 5)]
    assert probe.full_reads == 1


async def test_another_name_in_the_log_directory_is_always_listed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for n in range(1, 4):
        await store.put_if_absent(serial_key(n), b"{}")
    await store.list_keys(LOG)
    await store.put(LOG + "zz-notes.json", b"{}")
    await store.put_if_absent(serial_key(4), b"{}")

    assert await store.list_keys(LOG, start_after=serial_key(2)) == [
        serial_key(3),
        serial_key(4),
        LOG + "zz-notes.json",
    ]


async def test_a_serial_handed_out_and_not_yet_written_sends_the_listing_to_the_full_read(
    tmp_path: Path,
) -> None:
    """With serials handed out ahead (the local sequencer), 7 can be written while 6 is still
    in flight, and the maximum noted for 7 may be lost (a crash) or not yet written: the probe
    stops at 6, sees its ticket, and reads the directory instead of answering without 7."""
    from ccstate.backends.local_serials import LocalSequencer

    store, sequencer = LocalObjectStore(tmp_path), LocalSequencer(tmp_path)
    await store.list_keys(LOG)
    for n in range(1, 8):
        assert await sequencer.next_serial("default") == n
        if n != 6:
            await store.put_if_absent(serial_key(n), b"{}")
    (tmp_path / LOG / local_listing.MAX_MARKER).write_text("5")  # as if 7's note was lost
    probe = CountingProbe(store)

    listed = await store.list_keys(LOG, start_after=serial_key(3))

    assert listed == [serial_key(n) for n in (4, 5, 7)] == walked(tmp_path, LOG, serial_key(3))
    assert probe.full_reads == 1
    await store.put_if_absent(serial_key(6), b"{}")  # written at last: the quick path again
    assert await store.list_keys(LOG, start_after=serial_key(3)) == [
        serial_key(n) for n in range(4, 8)
    ]
    assert probe.full_reads == 1


async def test_a_full_read_never_lowers_the_maximum_a_put_noted(tmp_path: Path) -> None:
    """A reading that missed a serial put during the scan must not set the maximum back below
    it: past a hole, the probe would then stop short of that serial."""
    store = LocalObjectStore(tmp_path)
    for n in range(1, 4):
        await store.put_if_absent(serial_key(n), b"{}")
    await store.list_keys(LOG)
    await store.put_if_absent(serial_key(5), b"{}")  # past a hole at 4

    local_listing.rebuild(tmp_path / LOG, [f"{n:020d}.json" for n in range(1, 4)])  # stale

    assert local_listing.recorded_max(tmp_path / LOG) == 5


async def test_the_maximum_is_raised_in_place_from_a_marker_of_an_older_version(
    tmp_path: Path,
) -> None:
    """Puts raise the marker by overwriting it in place (no temp file per commit); a marker
    written by an older version (shorter text, renamed into place) is raised the same way,
    and a marker that is not a number sends the listing to the full read."""
    store = LocalObjectStore(tmp_path)
    await store.put_if_absent(serial_key(1), b"{}")
    await store.list_keys(LOG)  # writes the markers
    marker = tmp_path / LOG / local_listing.MAX_MARKER
    marker.write_text("1")  # as an older version wrote it
    inode = marker.stat().st_ino
    await store.put_if_absent(serial_key(2), b"{}")
    assert marker.read_text() == f"{2:020d}"
    assert marker.stat().st_ino == inode
    assert [p.name for p in (tmp_path / LOG).iterdir() if "tmp" in p.name] == []
    assert await store.list_keys(LOG, start_after=serial_key(0)) == [serial_key(1), serial_key(2)]
    marker.write_text("not a count")
    assert local_listing.recorded_max(tmp_path / LOG) is None
    probe = CountingProbe(store)
    assert await store.list_keys(LOG, start_after=serial_key(1)) == [serial_key(2)]
    assert probe.full_reads == 1


def test_a_reader_never_sees_the_maximum_go_down_while_puts_raise_it(tmp_path: Path) -> None:
    """Writers in other threads raise the marker in place while a reader reads it: every read
    is a whole count that never goes down (a torn or lowered one would let the probe stop
    short of a serial written past a hole)."""
    import threading

    directory = tmp_path / LOG
    directory.mkdir(parents=True)
    local_listing.rebuild(directory, [f"{0:020d}.json"])
    done = threading.Event()

    def raise_up(start: int) -> None:
        for serial in range(start, 3000, 3):
            local_listing.note_put(directory, f"{serial:020d}.json")

    writers = [threading.Thread(target=raise_up, args=(n,)) for n in (1, 2, 3)]
    seen: list[int | None] = []

    def read() -> None:
        while not done.is_set():
            seen.append(local_listing.recorded_max(directory))

    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert None not in seen
    assert seen == sorted(seen)
    assert local_listing.recorded_max(directory) == 2999
