"""Store scenario: load and commit cost for states of 100, 1,000 and 10,000 resources.

Each state is built through the public StateStore API on the real LocalObjectStore in a temp
directory, so every resource has 10 history entries. Then, on a cold store (as the CLI and a
freshly started server see it):

- load: a new StateStore and ``current()`` (newest snapshot + replay of the log after it);
- commit: one change to one resource, repeated; median and p95, and the amortised mean over
  ``snapshot_every`` commits, which includes one full snapshot write;
- history of one resource, and the state.json export of the whole state.

Goal (foundation issue): commit(10,000) <= 3 x commit(100), by median.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ccstate.backends.export import state_json_exporter, write_document
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import EXPORT_MAX_RESOURCES, StateStore

NAME = "store"
TITLE = "State store: load and commit cost by state size"
SIZES = (100, 1_000, 10_000)
HISTORY_ENTRIES = 10
# A stack-sized commit. History and export cost grow with it: see docs/performance.md.
MAX_CHANGES_PER_BUILD_COMMIT = 100
SNAPSHOT_EVERY = 50
MEASURED_COMMITS = SNAPSHOT_EVERY  # one full snapshot write falls inside the measured window
EXPORTED_COMMITS = 5  # commits with the automatic state.json export are slow: fewer of them
ROUNDS = 5
GOAL_RATIO = 3.0
META = CommitMeta(
    principal=Principal(user="bench", aws_session="arn:aws:iam::123456789012:user/bench"),
    explanation="benchmark change",
    user_intent="measure the store",
)


def identifier(i: int) -> str:
    return f"bench-bucket-{i:05d}"


def change(i: int, version: int) -> ResourceChange:
    return ResourceChange(
        identifier=identifier(i),
        resource_type="AWS::S3::Bucket",
        operation="create" if version == 0 else "update",
        region="us-east-1",
        account_id="123456789012",
        properties_before=None if version == 0 else properties(i, version - 1),
        properties_after=properties(i, version),
        checkov_results={"passed": 8, "failed": 0, "critical_issues": []},
    )


def properties(i: int, version: int) -> dict[str, Any]:
    return {
        "BucketName": identifier(i),
        "Tags": [
            {"Key": "MANAGED_BY", "Value": "CCAPI-MCP-SERVER"},
            {"Key": "Version", "Value": str(version)},
        ],
        "VersioningConfiguration": {"Status": "Enabled"},
    }


async def build_state(root: Path, size: int) -> int:
    """Give each of ``size`` resources HISTORY_ENTRIES entries; returns the head serial."""
    batch = min(size, MAX_CHANGES_PER_BUILD_COMMIT)
    head = HISTORY_ENTRIES * -(-size // batch)
    # One snapshot, at head, as a long-lived state always has one within snapshot_every commits.
    store = StateStore(LocalObjectStore(root), snapshot_every=head)
    for version in range(HISTORY_ENTRIES):
        for start in range(0, size, batch):
            changes = [change(i, version) for i in range(start, min(size, start + batch))]
            await store.commit(changes, META)
    assert await store.head() == head
    return head


async def timed(action: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await action()
    return (time.perf_counter() - start) * 1000, result


async def cold_store(root: Path, exporter: Any = None) -> tuple[StateStore, float]:
    """A new StateStore (as a new CLI process or server sees the state) and its load time."""
    store = StateStore(LocalObjectStore(root), snapshot_every=SNAPSHOT_EVERY, exporter=exporter)
    ms, _ = await timed(store.current)
    return store, ms


async def commit_times(store: StateStore, size: int, count: int) -> list[float]:
    head = await store.head()
    times = []
    for n in range(count):
        target = (head * 7919 + n) % size
        ms, _ = await timed(lambda t=target, v=head + n: store.commit([change(t, v)], META))
        times.append(ms)
    return times


async def interleaved_rounds(roots: dict[int, Path]) -> dict[int, dict[str, list[float]]]:
    """Commits and loads measured in rounds that alternate between the sizes, so that a busy
    machine (other processes) slows every size alike; each round starts from a cold store."""
    samples: dict[int, dict[str, list[float]]] = {s: {"load": [], "commit": []} for s in roots}
    for _ in range(ROUNDS):
        for size, root in roots.items():
            store, load_ms = await cold_store(root)
            samples[size]["load"].append(load_ms)
            samples[size]["commit"] += await commit_times(store, size, MEASURED_COMMITS // ROUNDS)
            del store
            gc.collect()  # the next size starts without this one's garbage
    return samples


async def one_off_costs(root: Path, size: int) -> dict[str, Any]:
    exported = None
    if size <= EXPORT_MAX_RESOURCES:  # beyond it, the store writes no automatic export
        store, _ = await cold_store(root, state_json_exporter(root / "state.json"))
        exported = statistics.median(await commit_times(store, size, EXPORTED_COMMITS))
    store, _ = await cold_store(root)
    history_ms, entries = await timed(lambda: store.history(identifier(0)))
    export_ms, _ = await timed(lambda: _export(store, root / "pulled.json"))
    return {
        "commit_with_export_ms_median": round(exported, 3) if exported is not None else None,
        "history_ms": round(history_ms, 2),
        "history_entries_read": len(entries),
        "export_ms": round(export_ms, 2),
    }


async def measure(sizes: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="ccstate-bench-") as tmp:
        roots = {size: Path(tmp) / str(size) for size in sizes}
        builds = {}
        for size, root in roots.items():
            start = time.perf_counter()
            builds[size] = (await build_state(root, size), time.perf_counter() - start)
        samples = await interleaved_rounds(roots)
        results = {}
        for size, root in roots.items():
            commits, loads = samples[size]["commit"], samples[size]["load"]
            results[str(size)] = {
                "resources": size,
                "history_entries_per_resource": HISTORY_ENTRIES,
                "build_commits": builds[size][0],
                "build_seconds": round(builds[size][1], 2),
                "load_ms_median": round(statistics.median(loads), 2),
                "commit_ms_median": round(statistics.median(commits), 3),
                "commit_ms_p95": round(_p95(commits), 3),
                "commit_ms_amortised": round(statistics.fmean(commits), 3),
                "commit_ms_max": round(max(commits), 3),
                **await one_off_costs(root, size),
            }
            gc.collect()
    return results


async def _export(store: StateStore, path: Path) -> None:
    doc = await store.export_document()
    await asyncio.to_thread(write_document, path, doc)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    results = asyncio.run(measure(sizes))
    small, large = results[str(min(sizes))], results[str(max(sizes))]
    ratio = large["commit_ms_median"] / small["commit_ms_median"]
    return {
        "description": "StateStore on LocalObjectStore (temp dir, fsync on). Every resource "
        f"has {HISTORY_ENTRIES} history entries (build commits of up to "
        f"{MAX_CHANGES_PER_BUILD_COMMIT} changes). {MEASURED_COMMITS} one-change commits per "
        f"size in {ROUNDS} rounds that alternate between sizes, each from a cold store "
        f"(snapshot every {SNAPSHOT_EVERY}, so exactly one snapshot write is inside); load = "
        "new StateStore + current(), median of the rounds; then history of one resource and "
        "the full state.json export (`state pull`).",
        "sizes": results,
        "goal": {
            "statement": f"commit median at {max(sizes):,} resources <= {GOAL_RATIO:g} x at "
            f"{min(sizes):,}",
            "ratio": round(ratio, 2),
            "limit": GOAL_RATIO,
            "met": ratio <= GOAL_RATIO,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    goal = result["goal"]
    lines = [
        result["description"],
        "",
        f"**Goal**: {goal['statement']}. **Measured ratio: {goal['ratio']}x — "
        f"{'met' if goal['met'] else 'NOT met'}.**",
        "",
        "| resources | load ms | commit median ms | commit p95 ms "
        "| commit amortised ms (incl. 1 snapshot in 50) | commit + state.json export median ms "
        "| history of 1 resource ms | full export ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    no_export = f"n/a (> {EXPORT_MAX_RESOURCES:,}: no auto-export)"
    for row in result["sizes"].values():
        with_export = row["commit_with_export_ms_median"]
        lines.append(
            f"| {row['resources']:,} | {row['load_ms_median']} | {row['commit_ms_median']} "
            f"| {row['commit_ms_p95']} | {row['commit_ms_amortised']} "
            f"| {with_export if with_export is not None else no_export} "
            f"| {row['history_ms']} | {row['export_ms']} |"
        )
    return "\n".join(lines)
