"""The readable state.json export is written on a debounce, never inside a commit: a burst of
commits shares one export, written in the background or when the store closes; the head a
commit reached is witnessed by the small head file written with each commit; `state pull`'s
document is always current; a killed writer leaves a whole export."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from ccstate.backends.export import (
    document_bytes,
    exported_head,
    head_file_path,
    head_recorder,
    previous_export,
    read_document,
    state_json_exporter,
)
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import StateCorrupt
from ccstate.service.state.codec import serial_key
from ccstate.service.state.export_patch import layout_of
from ccstate.service.state.model import Stack, StackChange, StateDocument
from ccstate.service.state.store import StateStore

from tests.unit.store.helpers import change, meta

NEVER = 10**6  # an interval no test waits for: only close() writes the export


def exporting_store(root: Path, *, interval: float = NEVER, exporter=None) -> StateStore:  # type: ignore[no-untyped-def]
    target = root / "state.json"
    return StateStore(
        LocalObjectStore(root),
        exporter=exporter or state_json_exporter(target),
        head_witness=exported_head(target),
        head_recorder=head_recorder(target),
        export_interval=interval,
    )


async def test_a_burst_of_commits_is_exported_once_on_close_at_the_last_commit(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state.json"
    writes: list[int] = []
    write = state_json_exporter(target)

    async def counting(doc: StateDocument) -> None:
        writes.append(doc.metadata.serial)
        await write(doc)

    store = exporting_store(tmp_path, exporter=counting)
    await asyncio.gather(*(store.commit([change(f"bucket-{n}")], meta()) for n in range(5)))
    for n in range(5):
        await store.commit([change("bucket-0", "update", Version=n)], meta())
    assert not target.exists() and writes == []  # no commit waited for an export
    witnessed = await exported_head(target)()  # the head file
    assert witnessed is not None
    assert witnessed[:2] == (10, (await store.current()).lineage)

    await store.close()
    assert writes == [10]
    doc = read_document(target)
    assert doc.metadata.serial == 10 and len(doc.resources) == 5
    assert doc.resources["bucket-0"].current_properties["Version"] == 4
    assert len(doc.resources["bucket-0"].lineage) == 6
    await store.close()  # nothing new: nothing written
    assert writes == [10]


async def test_the_export_follows_in_the_background_without_a_close(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write = state_json_exporter(target)
    at_head = asyncio.Event()

    async def signalling(doc: StateDocument) -> None:
        await write(doc)
        if doc.metadata.serial == 3:
            at_head.set()

    store = exporting_store(tmp_path, interval=0, exporter=signalling)
    for n in range(3):
        await store.commit([change(f"bucket-{n}")], meta())
    await asyncio.wait_for(at_head.wait(), timeout=60)
    assert read_document(target).metadata.serial == 3


async def test_pull_is_current_while_the_export_waits(tmp_path: Path) -> None:
    store = exporting_store(tmp_path)
    await store.commit([change("bucket-1")], meta())
    await store.close()
    await store.commit([change("bucket-2")], meta())
    assert read_document(tmp_path / "state.json").metadata.serial == 1
    pulled = await exporting_store(tmp_path).export_document()
    assert pulled.metadata.serial == 2 and set(pulled.resources) == {"bucket-1", "bucket-2"}


async def test_a_deleted_head_commit_is_found_by_the_head_file_alone(tmp_path: Path) -> None:
    store = exporting_store(tmp_path)
    for n in range(3):
        await store.commit([change(f"bucket-{n}")], meta())
    assert not (tmp_path / "state.json").exists()  # never flushed: only the head file saw 3
    (tmp_path / serial_key("default/log/", 3)).unlink()
    with pytest.raises(StateCorrupt, match=r"serial 3.*ends at serial 2"):
        await exporting_store(tmp_path).current()


async def test_a_head_commit_rewritten_after_a_restore_is_found_by_the_head_file(
    tmp_path: Path,
) -> None:
    """An older backup put back and committed to by another machine: serial and lineage are
    what the head file says, the commit is not."""
    store = exporting_store(tmp_path)
    await store.commit([change("bucket-1")], meta())
    shutil.copytree(tmp_path / "default", tmp_path / "backup")
    await store.commit([change("bucket-2")], meta())
    shutil.rmtree(tmp_path / "default")
    (tmp_path / "backup").rename(tmp_path / "default")
    await StateStore(LocalObjectStore(tmp_path)).commit([change("bucket-3")], meta("bob"))

    with pytest.raises(StateCorrupt, match=r"Commit 2 .* is not the one this machine wrote"):
        await exporting_store(tmp_path).current()
    head_file_path(tmp_path / "state.json").unlink()  # the next step the error names
    assert set((await exporting_store(tmp_path).current()).resources) == {"bucket-1", "bucket-3"}


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text.replace('"serial": 3', '"serial": 9'),  # edited: the seal fails
        lambda text: text[: len(text) // 2],  # torn
        lambda text: "[]",
    ],
)
async def test_a_damaged_head_file_is_no_witness_and_no_false_alarm(
    tmp_path: Path, damage: Callable[[str], str]
) -> None:
    store = exporting_store(tmp_path)
    for n in range(3):
        await store.commit([change(f"bucket-{n}")], meta())
    head = head_file_path(tmp_path / "state.json")
    head.write_text(damage(head.read_text()))
    assert await exported_head(tmp_path / "state.json")() is None
    assert (await exporting_store(tmp_path).current()).serial == 3


async def test_the_export_and_the_head_file_are_private(tmp_path: Path) -> None:
    store = exporting_store(tmp_path)
    await store.commit([change("bucket-1")], meta())
    await store.close()
    for path in (
        tmp_path / "state.json",
        head_file_path(tmp_path / "state.json"),
        tmp_path / ".state.json.layout",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.unit.store.test_export_debounce import exporting_store
    from tests.unit.store.helpers import change, meta

    async def main(root):
        store = exporting_store(root, interval=0)
        ready = False
        for n in range(10**6):
            await store.commit([change(f"bucket-{n % 20}", V=n)], meta())
            if not ready and n >= 40 and (root / "state.json").exists():
                print("ready", flush=True)  # exports were written; more are under way
                ready = True
            await asyncio.sleep(0)  # let the background export run between commits

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def test_a_killed_writer_leaves_a_whole_export_at_or_before_the_head(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    head = asyncio.run(StateStore(LocalObjectStore(tmp_path)).head())
    doc = read_document(tmp_path / "state.json")  # whole JSON, a valid document
    assert 0 < doc.metadata.serial <= head
    assert json.loads(head_file_path(tmp_path / "state.json").read_text())["serial"] <= head


def cli_store(root: Path) -> StateStore:
    """As ``build_store`` makes it: the export patched from the previous one."""
    target = root / "state.json"
    return StateStore(
        LocalObjectStore(root),
        exporter=state_json_exporter(target),
        head_witness=exported_head(target),
        head_recorder=head_recorder(target),
        export_source=previous_export(target),
        export_interval=NEVER,
        snapshot_every=4,
    )


async def full_build(root: Path) -> bytes:
    return document_bytes(await StateStore(LocalObjectStore(root)).export_document())


STEPS = [
    [change("a"), change("b"), change("c")],
    [change("b", "update", V=1)],
    [change("d"), change("a", "update", V=2, Note='ü "quoted" \\ / \n')],
    [change("c", "delete")],
    [change("c")],  # created again: its whole lineage, from before the delete too
    [change("a", "delete")],
    [change("b", "update", V=3), change("d", "update", V=3)],
]


async def test_each_process_patches_the_export_to_the_bytes_of_a_full_build(
    tmp_path: Path,
) -> None:
    for n, step in enumerate(STEPS):
        store = cli_store(tmp_path)  # a fresh CLI process per command
        built: list[int] = []
        whole = store._document

        async def counting(view, built=built, whole=whole):  # type: ignore[no-untyped-def]
            built.append(view.serial)
            return await whole(view)

        store._document = counting  # type: ignore[method-assign]
        await store.commit(step, meta())
        await store.close()
        assert (tmp_path / "state.json").read_bytes() == await full_build(tmp_path), n
        assert built == ([1] if n == 0 else []), n  # only the first export is built whole


async def test_a_hand_edited_export_is_not_patched_from(tmp_path: Path) -> None:
    store = cli_store(tmp_path)
    await store.commit([change("a"), change("b")], meta())
    await store.close()
    target = tmp_path / "state.json"
    target.write_text(target.read_text().replace('"BucketName": "a"', '"BucketName": "zzz"'))
    store = cli_store(tmp_path)
    await store.commit([change("b", "update", V=1)], meta())
    await store.close()
    assert target.read_bytes() == await full_build(tmp_path)
    assert "zzz" not in target.read_text()


async def flush(root: Path, step: list) -> list[int]:  # type: ignore[type-arg]
    """One CLI command that commits ``step``: the serials whose export was built whole."""
    store = cli_store(root)
    built: list[int] = []
    whole = store._document

    async def counting(view):  # type: ignore[no-untyped-def]
        built.append(view.serial)
        return await whole(view)

    store._document = counting  # type: ignore[method-assign]
    await store.commit(step, meta())
    await store.close()
    return built


async def test_a_same_size_edit_with_its_mtime_put_back_is_not_patched_from(
    tmp_path: Path,
) -> None:
    await flush(tmp_path, [change("a"), change("b")])
    target = tmp_path / "state.json"
    before, text = target.stat(), target.read_bytes()
    edited = text.replace(b'"BucketName": "a"', b'"BucketName": "z"')
    assert len(edited) == len(text) and edited != text
    with target.open("r+b") as stream:  # in place: the same file, the same size
        stream.write(edited)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert await previous_export(target)() is None
    assert await flush(tmp_path, [change("b", "update", V=1)]) == [2]
    assert target.read_bytes() == await full_build(tmp_path)
    assert b'"BucketName": "z"' not in target.read_bytes()


async def test_a_copy_put_in_its_place_is_not_patched_from(tmp_path: Path) -> None:
    """A backup copy (``cp -p``: same size and mtime, edited) renamed over the export: the
    layout recorded for the file ccstate wrote is not trusted for it."""
    await flush(tmp_path, [change("a"), change("b")])
    target, copy = tmp_path / "state.json", tmp_path / "copy.json"
    shutil.copy2(target, copy)
    copy.write_bytes(copy.read_bytes().replace(b'"BucketName": "a"', b'"BucketName": "z"'))
    os.utime(copy, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns))
    os.replace(copy, target)
    assert await previous_export(target)() is None
    assert await flush(tmp_path, [change("b", "update", V=1)]) == [2]
    assert target.read_bytes() == await full_build(tmp_path)


async def test_a_layout_written_last_by_another_flush_is_not_trusted(tmp_path: Path) -> None:
    """Two processes flush at once: A renames its export, B renames its own over it and
    records its layout, then A's layout lands: the pair does not match and is not used."""
    await flush(tmp_path, [change("a"), change("b")])
    layout = tmp_path / ".state.json.layout"
    first = layout.read_bytes()
    assert await flush(tmp_path, [change("a", "update", V=1)]) == []  # patched
    layout.write_bytes(first)
    assert await previous_export(tmp_path / "state.json")() is None
    assert await flush(tmp_path, [change("b", "update", V=2)]) == [3]
    assert (tmp_path / "state.json").read_bytes() == await full_build(tmp_path)


KILLED_BEFORE_THE_LAYOUT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    import ccstate.backends.export as export
    from tests.unit.store.test_export_debounce import cli_store
    from tests.unit.store.helpers import change, meta

    def killed(*args):  # the export is renamed into place; its layout is not written
        os.kill(os.getpid(), signal.SIGKILL)

    export._record = killed

    async def main(root):
        store = cli_store(root)
        await store.commit([change("b", "update", V=7)], meta())
        await store.close()

    asyncio.run(main(Path(sys.argv[1])))
    """
)


async def test_a_kill_between_the_export_and_its_layout_is_found_by_the_next_flush(
    tmp_path: Path,
) -> None:
    await flush(tmp_path, [change("a"), change("b")])
    target = tmp_path / "state.json"
    old_layout = (tmp_path / ".state.json.layout").read_bytes()
    child = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_THE_LAYOUT, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert child.returncode == -signal.SIGKILL
    assert read_document(target).metadata.serial == 2  # the new export is in place
    assert (tmp_path / ".state.json.layout").read_bytes() == old_layout  # the old layout
    assert await previous_export(target)() is None
    assert await flush(tmp_path, [change("a", "update", V=8)]) == [3]
    assert target.read_bytes() == await full_build(tmp_path)


async def test_without_copy_file_range_the_patch_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSYS, "copy_file_range is not supported here")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    for n, step in enumerate(STEPS):
        assert await flush(tmp_path, step) == ([1] if n == 0 else []), n
        assert (tmp_path / "state.json").read_bytes() == await full_build(tmp_path), n


async def test_a_layout_whose_blocks_do_not_tile_the_file_is_not_trusted(tmp_path: Path) -> None:
    await flush(tmp_path, [change("a"), change("b")])
    path = tmp_path / ".state.json.layout"
    layout = json.loads(path.read_text())
    layout["blocks"][0][2] -= 1  # the file itself untouched: its signature still matches
    path.write_text(json.dumps(layout))
    assert await previous_export(tmp_path / "state.json")() is None
    assert await flush(tmp_path, [change("b", "update", V=1)]) == [2]
    assert (tmp_path / "state.json").read_bytes() == await full_build(tmp_path)


async def test_a_patch_with_stacks_is_the_bytes_of_a_full_build(tmp_path: Path) -> None:
    web = Stack(resources=["a", "b"], user_intent="web app", status="deployed")
    steps = [
        ([change("a"), change("b")], [StackChange(name="web", stack=web)]),
        ([change("a", "update", V=1)], []),
        ([change("c")], [StackChange(name="api", stack=Stack(resources=["c"]))]),
        ([change("b", "update", V=2)], [StackChange(name="web", stack=None)]),
    ]
    for n, (step, stacks) in enumerate(steps):
        store = cli_store(tmp_path)
        await store.commit(step, meta(), stacks=stacks)
        await store.close()
        assert (tmp_path / "state.json").read_bytes() == await full_build(tmp_path), n
        previous = await previous_export(tmp_path / "state.json")()
        assert previous is not None and previous.serial == n + 1, n  # the next one patches
        previous.close()


FLUSHER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.unit.store.test_export_debounce import cli_store
    from tests.unit.store.helpers import change, meta

    async def main(root, name):
        for n in range(12):  # a CLI command per round: commit once, flush at exit
            store = cli_store(root)
            await store.commit([change(f"{name}-{n % 3}", V=n)], meta())
            await store.close()

    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
    """
)


async def test_two_processes_flushing_at_once_leave_a_layout_that_matches_or_none(
    tmp_path: Path,
) -> None:
    await flush(tmp_path, [change("a")])
    root = Path(__file__).resolve().parents[3]
    children = [
        subprocess.Popen([sys.executable, "-c", FLUSHER, str(tmp_path), name], cwd=root)
        for name in ("x", "y")
    ]
    assert [child.wait() for child in children] == [0, 0]
    target = tmp_path / "state.json"
    previous = await previous_export(target)()
    if previous is not None:  # trusted: it must describe the file exactly
        body = target.read_bytes()
        assert previous.layout == layout_of(body)
        assert previous.serial == read_document(target).metadata.serial
        previous.close()
    await flush(tmp_path, [change("a", "update", V=1)])
    assert target.read_bytes() == await full_build(tmp_path)


async def test_a_load_while_another_process_commits_is_no_missing_commit(tmp_path: Path) -> None:
    """Before: a process that read the log, then found the head file written by another
    process's commit since, reported 'the newest commits are missing' (1 run in 4 of two CLI
    processes committing at once). The witness is now followed by reading the log on."""
    await flush(tmp_path, [change("a")])
    other = cli_store(tmp_path)
    witness = exported_head(tmp_path / "state.json")

    async def witnessed_after_another_commit():  # type: ignore[no-untyped-def]
        await other.commit([change("b")], meta(user="bob"))
        return await witness()

    loading = StateStore(
        LocalObjectStore(tmp_path), head_witness=witnessed_after_another_commit, snapshot_every=4
    )
    view = await loading.current()
    assert set(view.resources) == {"a", "b"}
    assert view.serial == await other.head()
