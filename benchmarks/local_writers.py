"""Concurrent writers on one local state (issue 11, item 7): N processes commit as fast as they
can for a while; how many commits each made, how many races each lost, and whether any saw a
gap that is not there.

    .venv/bin/python -m benchmarks.local_writers [--writers 4] [--seconds 10] [--race]
        [--under-lock]

Writers take their serials from the local sequencer (``backends/local_serials.py``), as stores
opened on a local backend do; ``--race`` makes them race for ``head + 1`` instead (without a
sequencer, the design before it). ``--under-lock`` commits as MCP mutations do, under the locks
of the resources changed (``commit(under_lock=True)``; the lock calls themselves are left out,
each writer's resources being its own): such a commit reads nothing before its put.
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
from ccstate.backends.local_serials import LocalSequencer
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

WORKER = [sys.executable, "-m", "benchmarks.local_writers", "--worker"]


def open_store(root: str, *, race: bool = False, snapshot_every: int = 50) -> StateStore:
    sequencer = None if race else LocalSequencer(Path(root))
    return StateStore(
        LocalObjectStore(Path(root)),
        sequencer=sequencer,
        snapshot_every=snapshot_every,
        tail_every=0,  # as open_local_backend's stores
    )


async def writer(
    root: str, name: str, seconds: float, race: bool, under_lock: bool = False
) -> dict[str, object]:
    store = open_store(root, race=race)
    commits, errors = 0, []
    cpu = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        change = ResourceChange(
            identifier=f"{name}-{commits}",
            resource_type="AWS::SQS::Queue",
            operation="create",
            properties_after={"QueueName": f"{name}-{commits}"},
        )
        try:
            meta = CommitMeta(principal=Principal(user=name))
            await store.commit([change], meta, under_lock=under_lock)
            commits += 1
        except Exception as exc:  # counted and reported, the run goes on
            errors.append("".join(traceback.format_exception_only(exc)).strip()[:200])
    return {
        "name": name,
        "commits": commits,
        "errors": errors,
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "lost_races": store.contention.lost_races,
        "backoff_seconds": round(store.contention.backoff_seconds, 3),
    }


def run(
    writers: int, seconds: float, *, race: bool = False, under_lock: bool = False
) -> dict[str, object]:
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
                    *(["--race"] if race else []),
                    *(["--under-lock"] if under_lock else []),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(writers)
        ]
        results = [json.loads(p.communicate(timeout=seconds + 120)[0]) for p in procs]
        head = asyncio.run(open_store(root, race=race).head())
        files = sum(p.name[0] != "." for p in (Path(root) / "default" / "log").iterdir())
    total = sum(r["commits"] for r in results)
    return {
        "serials": "race for head + 1" if race else "local sequencer",
        "under_lock": under_lock,
        "writers": writers,
        "seconds": seconds,
        "commits_per_writer": [r["commits"] for r in results],
        "lost_races_per_writer": [r["lost_races"] for r in results],
        # The writers' own CPU (user + system) per commit: what a busy machine cannot inflate.
        "cpu_ms_per_commit": round(
            1000 * sum(r["cpu_seconds"] for r in results) / max(total, 1), 2
        ),
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
    parser.add_argument("--race", action="store_true", help="no sequencer: race for head + 1")
    parser.add_argument("--under-lock", action="store_true", help="commit(under_lock=True)")
    parser.add_argument("--worker", nargs=2, metavar=("ROOT", "NAME"))
    args = parser.parse_args()
    if args.worker:
        got = writer(*args.worker, args.seconds, args.race, args.under_lock)
        print(json.dumps(asyncio.run(got)))
        return
    got = run(args.writers, args.seconds, race=args.race, under_lock=args.under_lock)
    print(json.dumps(got, indent=1))


if __name__ == "__main__":
    main()
