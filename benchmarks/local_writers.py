"""Concurrent writers on one local state (issue 11, item 7): N processes commit as fast as they
can for a while; how many commits each made, how many races each lost, and whether any saw a
gap that is not there.

    .venv/bin/python -m benchmarks.local_writers [--writers 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

WORKER = [sys.executable, "-m", "benchmarks.local_writers", "--worker"]


async def writer(root: str, name: str, seconds: float) -> dict[str, object]:
    store = StateStore(LocalObjectStore(Path(root)), snapshot_every=50)
    commits, errors = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        change = ResourceChange(
            identifier=f"{name}-{commits}",
            resource_type="AWS::SQS::Queue",
            operation="create",
            properties_after={"QueueName": f"{name}-{commits}"},
        )
        try:
            await store.commit([change], CommitMeta(principal=Principal(user=name)))
            commits += 1
        except Exception as exc:  # counted and reported, the run goes on
            errors.append("".join(traceback.format_exception_only(exc)).strip()[:200])
    return {
        "name": name,
        "commits": commits,
        "errors": errors,
        "lost_races": store.contention.lost_races,
        "backoff_seconds": round(store.contention.backoff_seconds, 3),
    }


def run(writers: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as root:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.local_writers",
                    "--worker",
                    root,
                    f"w{n}",
                    "--seconds",
                    str(seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(writers)
        ]
        results = [json.loads(p.communicate(timeout=seconds + 120)[0]) for p in procs]
        head = asyncio.run(StateStore(LocalObjectStore(Path(root))).head())
        files = sum(p.name[0] != "." for p in (Path(root) / "default" / "log").iterdir())
    total = sum(r["commits"] for r in results)
    return {
        "writers": writers,
        "seconds": seconds,
        "commits_per_writer": [r["commits"] for r in results],
        "lost_races_per_writer": [r["lost_races"] for r in results],
        "errors": sum(len(r["errors"]) for r in results),
        "first_errors": [e for r in results for e in r["errors"]][:3],
        "head": head,
        "log_files": files,
        "gap_free": head == files == total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--worker", nargs=2, metavar=("ROOT", "NAME"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(writer(*args.worker, args.seconds))))
        return
    print(json.dumps(run(args.writers, args.seconds), indent=1))


if __name__ == "__main__":
    main()
