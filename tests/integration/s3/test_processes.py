"""Several OS processes sharing one bucket and table: write-once claims and crashed holders."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from ccstate.backends.base import Backend
from ccstate.service import errors
from ccstate.service.ports import LockScope

from tests.integration.s3.conftest import REPO, S3Setup

WORKERS, CLAIMS = 4, 50


@pytest.mark.slow
async def test_four_processes_claim_gap_free_numbers(s3_setup: S3Setup) -> None:
    procs = [
        subprocess.Popen(
            s3_setup.worker_command("claim_numbers.py", f"w{n}", str(CLAIMS)),
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        for n in range(WORKERS)
    ]
    claimed = {}
    for n, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        claimed[f"w{n}"] = json.loads(out)

    everything = sorted(number for numbers in claimed.values() for number in numbers)
    assert everything == list(range(1, WORKERS * CLAIMS + 1))

    backend = await s3_setup.open()
    try:
        for name, numbers in claimed.items():
            for number in numbers[:5]:
                stored = await backend.objects.get(f"claims/log/{number:020d}.json")
                assert stored is not None
                assert json.loads(stored.body) == {"number": number, "by": name}
    finally:
        await backend.close()


async def test_lock_of_a_killed_holder_is_taken_over_after_its_lease(
    s3_setup: S3Setup, backend: Backend
) -> None:
    holder = subprocess.Popen(
        s3_setup.worker_command("hold_lock.py", "default", "2"),
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        held = json.loads(holder.stdout.readline())
        with pytest.raises(errors.LockTimeout) as busy:
            await backend.locks.acquire(
                LockScope("default"), operation="deploy", who="me", lease_seconds=30, timeout=0
            )
        assert f"pid {holder.pid}" in str(busy.value)
        assert f"ccstate lock force-unlock {held['id']}" in str(busy.value)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

    lock = await backend.locks.acquire(
        LockScope("default"), operation="deploy", who="me", lease_seconds=30, timeout=60
    )

    assert lock.id != held["id"]
    assert [info.id for info in await backend.locks.list_locks("default")] == [lock.id]
    await backend.locks.release(lock)
