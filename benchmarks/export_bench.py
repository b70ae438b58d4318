"""Issue 13 item 1, "the export costs what changed": commits with the readable state.json export
on, as the CLI and the MCP server build their store (backends.factory.build_store: export,
head file, head witness, snapshots every 50), at 100 resources with ~300 and ~10,200 commits of
history.

- warm commit: a loaded store (a running server), one-change commits, median;
- a fresh process's first commit: a new Python process that opens the store and commits once
  (the load is part of it: the store loads on its first commit), timed inside the process;
- the flush at exit: the same process's ``close()``, which writes the export, patched from the
  previous one (only the changed resource's entry serialized; the whole file still written);
- the full build: the whole document built and written, as the first export (or one after an
  import, or from a hand-edited file) is. This is what every commit paid before the export was
  debounced;
- the whole process: spawn to exit of a Python process that opens the store as the CLI does,
  commits one change and closes it (the flush included), timed from outside: what a user who
  runs one command waits for.

Run alone: ``.venv/bin/python -m benchmarks.export_bench`` (builds both histories, about a
minute); ``benchmarks.goals_bench`` turns the result into its item-1 row.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ccstate.backends.export import (
    exported_head,
    head_recorder,
    previous_export,
    state_json_exporter,
)
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.store import StateStore

from benchmarks.store_bench import META, change

RESOURCES = 100
HISTORIES = (300, 10_200)
SNAPSHOT_EVERY = 50  # the settings' default
WARM_COMMITS = 20
FRESH_ROUNDS = 5
ROOT = Path(__file__).resolve().parent.parent


def cli_store(root: Path) -> StateStore:
    """The store ``build_store`` makes for a local backend (no settings file needed)."""
    target = root / "state.json"
    return StateStore(
        LocalObjectStore(root),
        snapshot_every=SNAPSHOT_EVERY,
        exporter=state_json_exporter(target),
        head_witness=exported_head(target),
        head_recorder=head_recorder(target),
        export_source=previous_export(target),
    )


async def build(root: Path, history: int) -> None:
    store = StateStore(LocalObjectStore(root), snapshot_every=SNAPSHOT_EVERY)
    await store.commit([change(i, 0) for i in range(RESOURCES)], META)
    for n in range(1, history):
        await store.commit([change(n % RESOURCES, n)], META)
    exporting = cli_store(root)
    await exporting.commit([change(0, history)], META)
    await exporting.close()  # the export exists, as it would after any earlier CLI command


async def warm_commits_ms(root: Path) -> list[float]:
    store = cli_store(root)
    await store.current()
    head = await store.head()
    times = []
    for n in range(WARM_COMMITS):
        start = time.perf_counter()
        await store.commit([change(n % RESOURCES, head + n + 1)], META)
        times.append((time.perf_counter() - start) * 1000)
    await store.close()
    return times


FRESH = """
import asyncio, json, sys, time
from pathlib import Path
from benchmarks.export_bench import cli_store, RESOURCES
from benchmarks.store_bench import META, change

async def main(root):
    store = cli_store(root)
    start = time.perf_counter()
    commit = await store.commit([change(7, 10**6 + int(sys.argv[2]))], META)
    committed = time.perf_counter()
    await store.close()
    closed = time.perf_counter()
    view = (await store.current()).copy()
    built = time.perf_counter()
    await store.exporter(await store._document(view))
    full = time.perf_counter()
    print(json.dumps({"commit": (committed - start) * 1000, "flush": (closed - committed) * 1000,
                      "full": (full - built) * 1000, "serial": commit.serial}))

asyncio.run(main(Path(sys.argv[1])))
"""


COMMIT_AND_EXIT = """
import asyncio, sys
from pathlib import Path
from benchmarks.export_bench import cli_store
from benchmarks.store_bench import META, change

async def main(root):
    store = cli_store(root)
    await store.commit([change(7, 2 * 10**6 + int(sys.argv[2]))], META)
    await store.close()

asyncio.run(main(Path(sys.argv[1])))
"""


def whole_process_ms(root: Path, n: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", COMMIT_AND_EXIT, str(root), str(n)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - start) * 1000


def fresh_process(root: Path, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", FRESH, str(root), str(n)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def measure(work: Path) -> dict[str, Any]:
    for history in HISTORIES:
        asyncio.run(build(work / f"h{history}", history))
    samples: dict[int, dict[str, list[float]]] = {
        h: {"warm": [], "fresh": [], "flush": [], "full": [], "process": []} for h in HISTORIES
    }
    for n in range(FRESH_ROUNDS):  # alternate histories so that a busy machine slows both alike
        for history in HISTORIES:
            got = fresh_process(work / f"h{history}", n)
            samples[history]["fresh"].append(got["commit"])
            samples[history]["flush"].append(got["flush"])
            samples[history]["full"].append(got["full"])
            samples[history]["process"].append(whole_process_ms(work / f"h{history}", n))
    for history in HISTORIES:
        samples[history]["warm"] = asyncio.run(warm_commits_ms(work / f"h{history}"))
    size = {h: (work / f"h{h}" / "state.json").stat().st_size for h in HISTORIES}
    return {
        "histories": list(HISTORIES),
        "median_ms": {
            h: {k: round(statistics.median(v), 2) for k, v in s.items()} for h, s in samples.items()
        },
        "export_bytes": size,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ccstate-export-bench-") as tmp:
        print(json.dumps(measure(Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
