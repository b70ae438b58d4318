"""The local backend between real OS processes: lock contention, crashed holders, write races,
and SIGKILL in the middle of large writes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import LockTimeout
from ccstate.service.ports import LockScope

pytestmark = pytest.mark.timeout(120)

# A lock holder: announces itself, acquires, logs, then waits for "release" on stdin.
HOLDER = r"""
import asyncio, os, sys
from pathlib import Path
from ccstate.backends.local_locks import LocalLockManager
from ccstate.service.ports import LockScope

root, workspace, resource, who, lease, order_log = sys.argv[1:7]
scope = LockScope(workspace, resource or None)

def note(line):
    fd = os.open(order_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (line + "\n").encode())
    os.close(fd)

async def main():
    locks = LocalLockManager(Path(root))
    print("WAITING", flush=True)
    info = await locks.acquire(scope, operation="deploy", who=who,
                               lease_seconds=float(lease), timeout=60)
    note(f"{who} acquired")
    print("ACQUIRED", info.id, flush=True)
    sys.stdin.readline()
    note(f"{who} releasing")
    await locks.release(info)
    print("RELEASED", flush=True)

asyncio.run(main())
"""

# A write-once contender: waits for "go", then tries to write the key.
RACER = r"""
import asyncio, sys
from pathlib import Path
from ccstate.backends.local_objects import LocalObjectStore

root, key, name = sys.argv[1:4]
store = LocalObjectStore(Path(root))
print("READY", flush=True)
sys.stdin.readline()
print("WON" if asyncio.run(store.put_if_absent(key, name.encode())) else "LOST", flush=True)
"""

# A compare-and-swap incrementer.
INCREMENTER = r"""
import asyncio, sys
from pathlib import Path
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import PreconditionFailed

root, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    store = LocalObjectStore(Path(root))
    for _ in range(count):
        while True:
            current = await store.get(key)
            try:
                await store.put(key, str(int(current.body) + 1).encode(), if_match=current.etag)
                break
            except PreconditionFailed:
                continue

asyncio.run(main())
"""

# Writes large self-checking bodies (sha256 of the payload, newline, payload) until killed.
WRITER = r"""
import asyncio, hashlib, os, sys
from pathlib import Path
from ccstate.backends.local_objects import LocalObjectStore

root, first = sys.argv[1], int(sys.argv[2])

def body():
    payload = os.urandom(2 * 1024 * 1024)
    return hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload

async def main():
    store = LocalObjectStore(Path(root))
    n = first
    while True:
        commit, head = body(), body()
        print("WRITING", n, flush=True)  # the parent kills us on this line: mid-write
        await store.put_if_absent(f"default/log/{n:020d}.json", commit)
        await store.put("default/head", head)
        n += 1

asyncio.run(main())
"""


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(word), f"expected {word}, got {line!r} (exit {proc.poll()})"
    return line


def tell(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def finish(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def try_now(root: Path, scope: LockScope) -> None:
    asyncio.run(
        LocalLockManager(root).acquire(
            scope, operation="probe", who="probe", lease_seconds=60, timeout=0
        )
    )


def test_second_process_waits_and_gets_the_lock_after_release(tmp_path: Path) -> None:
    root, order = tmp_path / "state", tmp_path / "order.log"
    first = spawn(HOLDER, root, "default", "my-bucket", "first", 60, order)
    second = None
    try:
        expect(first, "WAITING")
        expect(first, "ACQUIRED")
        second = spawn(HOLDER, root, "default", "my-bucket", "second", 60, order)
        expect(second, "WAITING")
        with pytest.raises(LockTimeout, match=f"first on host .* \\(pid {first.pid}\\)"):
            try_now(root, LockScope("default", "my-bucket"))
        tell(first, "release")
        expect(first, "RELEASED")
        expect(second, "ACQUIRED")
        tell(second, "release")
        expect(second, "RELEASED")
    finally:
        finish(first)
        if second is not None:
            finish(second)
    assert order.read_text().splitlines() == [
        "first acquired",
        "first releasing",
        "second acquired",
        "second releasing",
    ]
    assert asyncio.run(LocalLockManager(root).list_locks()) == []


def test_lease_of_a_killed_holder_expires_and_is_taken_over(tmp_path: Path) -> None:
    root = tmp_path / "state"
    holder = spawn(HOLDER, root, "default", "my-bucket", "crasher", 1, tmp_path / "order.log")
    try:
        expect(holder, "WAITING")
        expect(holder, "ACQUIRED")
        with pytest.raises(LockTimeout, match="crasher"):
            try_now(root, LockScope("default", "my-bucket"))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        finish(holder)

    locks = LocalLockManager(root)
    taken = asyncio.run(
        locks.acquire(
            LockScope("default", "my-bucket"),
            operation="update",
            who="successor",
            lease_seconds=60,
            timeout=30,
        )
    )
    assert [info.who for info in asyncio.run(locks.list_locks())] == ["successor"]
    assert taken.pid == os.getpid()


def test_a_workspace_lock_in_one_process_excludes_resources_in_another(tmp_path: Path) -> None:
    root = tmp_path / "state"
    holder = spawn(HOLDER, root, "default", "", "stack-deployer", 60, tmp_path / "order.log")
    try:
        expect(holder, "WAITING")
        expect(holder, "ACQUIRED")
        with pytest.raises(LockTimeout, match="workspace 'default' is held by stack-deployer"):
            try_now(root, LockScope("default", "my-bucket"))
        try_now(root, LockScope("other", "my-bucket"))
        tell(holder, "release")
        expect(holder, "RELEASED")
    finally:
        finish(holder)
    try_now(root, LockScope("default", "my-bucket"))


def test_write_once_race_between_processes_has_exactly_one_winner(tmp_path: Path) -> None:
    root, key = tmp_path / "state", "default/log/00000000000000000007.json"
    racers = [spawn(RACER, root, key, f"writer-{n}") for n in range(6)]
    try:
        for racer in racers:
            expect(racer, "READY")
        for racer in racers:
            tell(racer, "go")
        outcomes = [expect(racer, "").strip() for racer in racers]
    finally:
        for racer in racers:
            finish(racer)
    assert sorted(outcomes) == ["LOST"] * 5 + ["WON"]
    winner = outcomes.index("WON")
    stored = asyncio.run(LocalObjectStore(root).get(key))
    assert stored is not None and stored.body == f"writer-{winner}".encode()


def test_compare_and_swap_loses_no_update_between_processes(tmp_path: Path) -> None:
    root, key = tmp_path / "state", "default/counter"
    asyncio.run(LocalObjectStore(root).put(key, b"0"))
    workers = [spawn(INCREMENTER, root, key, 20) for _ in range(3)]
    for worker in workers:
        worker.communicate()
        assert worker.returncode == 0
    stored = asyncio.run(LocalObjectStore(root).get(key))
    assert stored is not None and stored.body == b"60"


def assert_complete(path: Path) -> None:
    digest, _, payload = path.read_bytes().partition(b"\n")
    assert hashlib.sha256(payload).hexdigest().encode() == digest, f"{path} is truncated"


def test_sigkill_mid_write_never_leaves_a_partial_object(tmp_path: Path) -> None:
    root = tmp_path / "state"
    for round_number in range(4):
        writer = spawn(WRITER, root, round_number * 1000)
        try:
            for _ in range(3):
                expect(writer, "WRITING")
            # A random pause lands the kill anywhere in the write: in the temp file's write,
            # its fsync, the link, the rename (most rounds leave a temp file behind).
            time.sleep(random.uniform(0, 0.03))
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
        finally:
            finish(writer)
        store = LocalObjectStore(root)
        keys = asyncio.run(store.list_keys(""))
        assert "default/head" in keys and len(keys) >= 2 * (round_number + 1) + 1
        for key in keys:
            assert_complete(root / key)
        visible = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
        assert sorted(p.relative_to(root).as_posix() for p in visible) == keys
