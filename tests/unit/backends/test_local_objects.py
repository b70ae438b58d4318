"""LocalObjectStore on real files: write-once, compare-and-swap, listing, modes, key checks."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from ccstate.backends.local_files import STALE_TEMP_SECONDS, TEMP_PREFIX
from ccstate.backends.local_objects import LocalObjectStore, etag_of
from ccstate.service.errors import BackendError, InvalidInput, PreconditionFailed

KEY = "default/log/00000000000000000001.json"


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "state")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_put_if_absent_writes_once_and_never_overwrites(store: LocalObjectStore) -> None:
    assert await store.put_if_absent(KEY, b"first") is True
    assert await store.put_if_absent(KEY, b"second") is False
    got = await store.get(KEY)
    assert got is not None
    assert got.body == b"first"
    assert got.etag == etag_of(b"first")


async def test_get_of_missing_key_or_directory_is_none(store: LocalObjectStore) -> None:
    assert await store.get("default/log/missing.json") is None
    await store.put_if_absent(KEY, b"x")
    assert await store.get("default/log") is None  # a directory, not an object
    assert await store.get(f"{KEY}/below") is None  # below a file


def test_write_once_race_between_threads_has_exactly_one_winner(store: LocalObjectStore) -> None:
    contenders = 12
    barrier = threading.Barrier(contenders)
    results: dict[int, bool] = {}

    def contend(n: int) -> None:
        barrier.wait()
        results[n] = asyncio.run(store.put_if_absent(KEY, f"body of writer {n}".encode()))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [n for n, won in results.items() if won]
    assert len(winners) == 1
    stored = asyncio.run(store.get(KEY))
    assert stored is not None and stored.body == f"body of writer {winners[0]}".encode()


async def test_put_replaces_and_returns_the_etag_get_reports(store: LocalObjectStore) -> None:
    first = await store.put("default/head", b"1")
    second = await store.put("default/head", b"2", if_match=first)
    got = await store.get("default/head")
    assert got is not None and got.body == b"2" and got.etag == second


async def test_put_with_stale_etag_is_refused_and_changes_nothing(store: LocalObjectStore) -> None:
    stale = await store.put("default/head", b"1")
    await store.put("default/head", b"2")
    with pytest.raises(PreconditionFailed, match="changed by another writer"):
        await store.put("default/head", b"3", if_match=stale)
    got = await store.get("default/head")
    assert got is not None and got.body == b"2"


async def test_put_with_etag_on_missing_key_is_refused(store: LocalObjectStore) -> None:
    with pytest.raises(PreconditionFailed, match="absent"):
        await store.put("default/head", b"1", if_match=etag_of(b"0"))
    assert await store.get("default/head") is None


def test_compare_and_swap_loses_no_update_between_threads(store: LocalObjectStore) -> None:
    asyncio.run(store.put("default/counter", b"0"))
    workers, increments = 4, 25

    async def increment_many() -> None:
        for _ in range(increments):
            while True:
                current = await store.get("default/counter")
                assert current is not None
                try:
                    await store.put(
                        "default/counter",
                        str(int(current.body) + 1).encode(),
                        if_match=current.etag,
                    )
                    break
                except PreconditionFailed:
                    continue

    threads = [
        threading.Thread(target=asyncio.run, args=(increment_many(),)) for _ in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = asyncio.run(store.get("default/counter"))
    assert final is not None and int(final.body) == workers * increments


async def test_list_keys_is_sorted_filtered_and_paged(store: LocalObjectStore) -> None:
    keys = [f"default/log/{n:020d}.json" for n in (3, 1, 2)]
    for key in keys:
        await store.put_if_absent(key, b"{}")
    await store.put_if_absent("default/snapshots/00000000000000000002.json", b"{}")
    await store.put_if_absent("prod/log/00000000000000000001.json", b"{}")

    assert await store.list_keys("default/log/") == sorted(keys)
    assert await store.list_keys("default/log/", start_after=sorted(keys)[0]) == sorted(keys)[1:]
    assert await store.list_keys("default/log/0000000000000000000") == sorted(keys)
    assert await store.list_keys("default/") == [
        *sorted(keys),
        "default/snapshots/00000000000000000002.json",
    ]
    assert len(await store.list_keys("")) == 5
    assert await store.list_keys("nothing/here/") == []


async def test_list_keys_ignores_temp_files_and_cleans_up_stale_ones(
    store: LocalObjectStore,
) -> None:
    await store.put_if_absent(KEY, b"{}")
    log_dir = store.root / "default" / "log"
    fresh = log_dir / f"{TEMP_PREFIX}fresh"
    stale = log_dir / f"{TEMP_PREFIX}stale"
    fresh.write_bytes(b"half a bo")
    stale.write_bytes(b"half a bo")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))

    assert await store.list_keys("default/") == [KEY]
    assert fresh.exists()
    assert not stale.exists()


async def test_delete_removes_and_tolerates_missing(store: LocalObjectStore) -> None:
    await store.put_if_absent(KEY, b"{}")
    await store.delete(KEY)
    assert await store.get(KEY) is None
    await store.delete(KEY)
    await store.delete("never/was/here.json")
    assert await store.list_keys("") == []


async def test_files_are_0600_and_directories_0700_even_with_umask_000(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        store = LocalObjectStore(tmp_path / "fresh" / "root")
        await store.put_if_absent("ws/log/a/b.json", b"{}")
        await store.put("ws/head", b"1")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "fresh") == 0o700
    for directory in ("", "ws", "ws/log", "ws/log/a"):
        assert mode_of(store.root / directory) == 0o700, directory
    assert mode_of(store.root / "ws/log/a/b.json") == 0o600
    assert mode_of(store.root / "ws/head") == 0o600
    assert mode_of(store.root / "ws/.ccstate-cas.lock") == 0o600


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs/key",
        "a//b",
        "a/b/",
        "a/../b",
        "..",
        "./a",
        "a\\b",
        "a\x00b",
        "a/\nb",
        "a/.hidden",
        "x" * 256,
    ],
)
async def test_malformed_keys_are_refused_before_any_io(store: LocalObjectStore, key: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid object key"):
        await store.put_if_absent(key, b"x")
    with pytest.raises(InvalidInput):
        await store.get(key)
    assert await store.list_keys("") == []


@pytest.mark.parametrize("prefix", ["/etc/", "../", "a//", "a/../", "a\x00"])
async def test_malformed_prefixes_are_refused(store: LocalObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid key prefix"):
        await store.list_keys(prefix)


def test_describe_is_a_file_url(store: LocalObjectStore) -> None:
    assert store.describe() == store.root.as_uri()
    assert store.describe().startswith("file:///")


@pytest.mark.parametrize("key", ["state.json", "prod/state.json", "default/locks/workspace.json"])
async def test_lock_files_and_exports_are_not_objects(tmp_path: Path, key: str) -> None:
    from ccstate.backends.local_locks import LocalLockManager
    from ccstate.service.ports import LockScope

    store = LocalObjectStore(tmp_path)
    with pytest.raises(InvalidInput, match="reserved"):
        await store.put_if_absent(key, b"x")
    await LocalLockManager(tmp_path).acquire(
        LockScope("default", "my-bucket"), operation="x", who="me", lease_seconds=60, timeout=0
    )
    (tmp_path / "state.json").write_text("{}")
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "state.json").write_text("{}")
    await store.put_if_absent("prod/log/00000000000000000001.json", b"{}")
    await store.put_if_absent("prod/state.json.d/kept", b"{}")
    assert await store.list_keys("") == [
        "prod/log/00000000000000000001.json",
        "prod/state.json.d/kept",
    ]


async def test_an_unusable_root_is_a_backend_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("I am a file")
    with pytest.raises(BackendError, match="Could not write"):
        await LocalObjectStore(not_a_dir).put_if_absent(KEY, b"{}")
    store = LocalObjectStore(tmp_path / "state")
    store.root.mkdir(mode=0o700)
    (store.root / "default").write_text("a file where a directory should be")
    with pytest.raises(BackendError, match="Could not write"):
        await store.put_if_absent(KEY, b"{}")
