"""The local log proves its own completeness (issue 11, items 3, 4 and 8): deleted, edited and
swapped commits and snapshots are found on real files, never read past or written over."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from ccstate.backends.export import exported_head, state_json_exporter
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import IntegrityError, StateCorrupt
from ccstate.service.state.codec import serial_key
from ccstate.service.state.model import StateDocument
from ccstate.service.state.snapshots import seal
from ccstate.service.state.store import StateStore

from .helpers import change, meta


def store_at(root: Path, **kw) -> StateStore:
    return StateStore(LocalObjectStore(root), **kw)


def log_file(root: Path, serial: int) -> Path:
    return root / serial_key("default/log/", serial)


def snapshot_file(root: Path, serial: int) -> Path:
    return root / serial_key("default/snapshots/", serial)


async def commit_n(root: Path, n: int, **kw) -> StateStore:
    store = store_at(root, **kw)
    for i in range(n):
        await store.commit([change(f"b{i}", V=i)], meta())
    return store


async def test_a_deleted_middle_commit_refuses_reads_and_writes(tmp_path: Path) -> None:
    """Before: reads stopped at the gap (exit 0) and the next write reused the serial."""
    await commit_n(tmp_path, 5)
    log_file(tmp_path, 3).unlink()
    with pytest.raises(StateCorrupt, match="missing commit 3") as caught:
        await store_at(tmp_path).current()
    assert "Restore" in caught.value.next_step
    with pytest.raises(StateCorrupt):
        await store_at(tmp_path).commit([change("new")], meta())
    assert not log_file(tmp_path, 3).exists()


class CommitsWhileListed:
    """The log as a loading process sees it while another process keeps committing: every
    listing of the log finds one more commit, written just before the listing."""

    def __init__(self, root: Path) -> None:
        self.objects = LocalObjectStore(root)
        self.other = store_at(root)
        self.listings = 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.objects, name)

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        if prefix.endswith("/log/"):
            self.listings += 1
            await self.other.commit([change(f"other{self.listings}")], meta(user="bob"))
        return await self.objects.list_keys(prefix, start_after=start_after)


async def test_a_load_racing_a_committer_reports_no_gap(tmp_path: Path) -> None:
    """Before: a process loading while another committed listed the log three times, caught up
    each time, and then reported 'missing commit N, but has commits after it' for the commit
    just written at the head (a fresh-clone make test failed on it)."""
    await commit_n(tmp_path, 2)
    objects = CommitsWhileListed(tmp_path)
    for _ in range(5):
        view = await StateStore(objects).current()  # type: ignore[arg-type]
        assert view.serial == 2 + objects.listings
        assert set(view.resources) >= {f"other{n}" for n in range(1, objects.listings + 1)}


async def test_a_deleted_head_commit_is_found_by_the_snapshot_pointer(tmp_path: Path) -> None:
    await commit_n(tmp_path, 4, snapshot_every=4)
    log_file(tmp_path, 4).unlink()
    with pytest.raises(StateCorrupt, match=r"pointer.*serial 4.*ends at serial 3"):
        await store_at(tmp_path, snapshot_every=4).current()


async def test_a_deleted_head_commit_is_found_by_the_export(tmp_path: Path) -> None:
    export = tmp_path / "state.json"
    witness = {"exporter": state_json_exporter(export), "head_witness": exported_head(export)}
    await (await commit_n(tmp_path, 3, **witness)).close()  # the export is flushed on close
    log_file(tmp_path, 3).unlink()
    with pytest.raises(StateCorrupt, match=r"export.*serial 3.*ends at serial 2"):
        await store_at(tmp_path, **witness).current()


async def test_an_edited_commit_fails_its_digest(tmp_path: Path) -> None:
    await commit_n(tmp_path, 2)
    path = log_file(tmp_path, 1)
    path.write_text(path.read_text().replace('"V": 0', '"V": 7'))
    with pytest.raises(IntegrityError, match="sha256"):
        await store_at(tmp_path).current()


async def test_swapped_commits_are_refused(tmp_path: Path) -> None:
    await commit_n(tmp_path, 3)
    one, two = log_file(tmp_path, 1), log_file(tmp_path, 2)
    body = one.read_bytes()
    one.write_bytes(two.read_bytes())
    two.write_bytes(body)
    with pytest.raises(StateCorrupt, match="claims serial"):
        await store_at(tmp_path).current()


async def test_an_edited_snapshot_is_refused_and_the_log_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: an injected resource in a snapshot was served by list, show and pull."""
    await commit_n(tmp_path, 4, snapshot_every=2)
    path = snapshot_file(tmp_path, 4)
    data = json.loads(path.read_bytes())
    data["resources"]["injected"] = dict(data["resources"]["b0"], identifier="injected")
    data["resources"]["b1"]["current_properties"]["V"] = 99
    path.write_text(json.dumps(data))
    reader = store_at(tmp_path, snapshot_every=2)
    with caplog.at_level(logging.WARNING):
        view = await reader.current()
    assert sorted(view.resources) == ["b0", "b1", "b2", "b3"]
    assert view.resources["b1"].current_properties["V"] == 1
    assert any("00000000000000000004.json" in w for w in reader.integrity_warnings)
    assert "sha256" in caplog.text


async def test_a_snapshot_with_a_recomputed_digest_but_another_commit_is_refused(
    tmp_path: Path,
) -> None:
    """A snapshot copied in from another state (or resealed after an edit of the commit it
    covers) names a commit the log does not have."""
    other, ours = tmp_path / "other", tmp_path / "ours"
    await commit_n(other, 2, snapshot_every=2)
    await commit_n(ours, 3, snapshot_every=100)
    snapshot_file(ours, 2).parent.mkdir(parents=True)
    shutil.copy(snapshot_file(other, 2), snapshot_file(ours, 2))
    reader = store_at(ours)
    view = await reader.current()
    assert view.serial == 3 and view.resources["b2"].current_properties["V"] == 2
    assert any("another commit" in w for w in reader.integrity_warnings)


async def test_a_forged_snapshot_and_pointer_beyond_the_log_are_refused(tmp_path: Path) -> None:
    """Before: a snapshot and pointer claiming serial 1000 were accepted and the next write
    left a gap."""
    await commit_n(tmp_path, 3)
    view = (await store_at(tmp_path).current()).copy()
    view.serial = 1000
    covers = {"serial": 1000, "commit_sha256": "0" * 64}
    snapshot_file(tmp_path, 1000).parent.mkdir(parents=True, exist_ok=True)
    snapshot_file(tmp_path, 1000).write_bytes(seal({**view.to_snapshot(), "covers": covers}))
    pointer = {"format": "ccstate.snapshot-pointer/2", "serial": 1000, "covers": covers}
    (tmp_path / "default" / "_last_snapshot.json").write_bytes(seal(pointer))
    with pytest.raises(StateCorrupt, match=r"pointer.*1000.*ends at serial 3"):
        await store_at(tmp_path).current()
    with pytest.raises(StateCorrupt):
        await store_at(tmp_path).commit([change("x")], meta())
    assert not log_file(tmp_path, 4).exists()


async def test_snapshots_from_before_digests_are_replayed_past(tmp_path: Path) -> None:
    await commit_n(tmp_path, 4, snapshot_every=2)
    path = snapshot_file(tmp_path, 4)
    data = json.loads(path.read_bytes())
    data["format"] = "ccstate.snapshot/1"
    data["resources"]["injected"] = data["resources"]["b0"]
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "sha256"}))
    view = await store_at(tmp_path).current()
    assert sorted(view.resources) == ["b0", "b1", "b2", "b3"]


async def test_a_stray_folder_or_file_under_log_is_ignored(tmp_path: Path) -> None:
    """Before: a stray folder made the whole state unreadable with a misleading message."""
    await commit_n(tmp_path, 2)
    stray = tmp_path / "default" / "log" / "backup"
    stray.mkdir()
    shutil.copy(log_file(tmp_path, 1), stray / log_file(tmp_path, 1).name)
    (tmp_path / "default" / "log" / "notes.txt").write_text("hello")
    store = store_at(tmp_path)
    assert await store.head() == 2
    assert (await store.commit([change("next")], meta())).serial == 3


async def test_a_commit_whose_export_fails_is_reported_as_landed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_export(doc: StateDocument) -> None:
        raise RuntimeError("disk on fire")

    store = store_at(tmp_path, exporter=broken_export)
    with caplog.at_level(logging.WARNING):
        commit = await store.commit([change("b1")], meta())
        await store.close()
    assert commit.serial == 1 and await store_at(tmp_path).head() == 1
    assert "Serial 1 is committed" in caplog.text and "disk on fire" in caplog.text
