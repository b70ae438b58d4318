"""S3 + DynamoDB scenario: AWS requests per commit cycle, and commits/s of concurrent writers.

Everything runs against a moto server on 127.0.0.1 in its own OS process (real HTTP), with a
bucket, table and KMS key made by ``backends.bootstrap``.

(a) Requests of one resource commit cycle (``hold_lock`` on a resource -> ``StateStore.commit``
    -> release), counted with ``backends.aws.RequestCounter``: warm store, cold store on an
    existing state, first commit of a new state, the workspace-lock cycle, and encrypt=client.
    Goal: <= 4 requests per warm cycle; Terraform's S3 backend spends 7 (lock PutItem, digest
    GetItem, state GetObject, PutObject, digest PutItem, ... and unlock DeleteItem).
(b) Commits per second of 1, 4 and 16 writers, each a separate OS process doing lock + commit +
    unlock cycles on its own resources of ONE shared state. Also with a simulated network
    round trip added to every request (an awaited sleep in botocore's ``before-send``), because
    moto on the loopback answers in about a millisecond while AWS takes tens. CPU time of the
    moto process and of the writers shows where the time goes. Goal: 16 writers >= 4 x 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.aws import RequestCounter
from backends.base import Backend
from backends.bootstrap import bootstrap
from backends.s3 import open_s3_backend_from_options
from sandbox.moto_server import start_moto
from service.locking import hold_lock
from service.model import CommitMeta, Principal, ResourceChange
from service.ports import LockScope
from service.store import StateStore

NAME = "s3"
TITLE = "S3 + DynamoDB backend: AWS requests per commit, concurrent writers"
ROOT = Path(__file__).resolve().parent.parent
GOAL_REQUESTS = 4
TERRAFORM_REQUESTS = 7
GOAL_RATIO = 4.0
WRITERS = (1, 4, 16)
COMMITS_PER_WRITER = {1: 60, 4: 25, 16: 10}
ROUND_TRIP_MS = (0, 20)
EXISTING_COMMITS = 60
SNAPSHOT_EVERY = 50
META = CommitMeta(principal=Principal(user="bench"), explanation="benchmark commit")
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def change(identifier: str) -> ResourceChange:
    return ResourceChange(
        identifier=identifier,
        resource_type="AWS::S3::Bucket",
        operation="create",
        region="us-east-1",
        properties_after={"BucketName": identifier, "Tags": [{"Key": "k", "Value": "v"}]},
    )


# ====================================================================== setup


@contextmanager
def moto_environment() -> Iterator[tuple[str, int | None]]:
    """A moto server in its own process, and the environment that points botocore at it."""
    saved = dict(os.environ)
    server = start_moto(separate_process=True)
    os.environ.update(
        AWS_ENDPOINT_URL=server.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield server.url, moto_pid(server.url.rsplit(":", 1)[-1])
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def moto_pid(port: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"moto.server" in argv and port.encode() in argv:
            return int(entry.name)
    return None


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def open_backend(setup: dict[str, str], prefix: str, encrypt: str | None = None) -> Backend:
    return await open_s3_backend_from_options(
        setup["bucket"],
        prefix,
        table=setup["table"],
        kms_key=setup["kms_key"],
        region=None,
        encrypt=encrypt,
    )


async def resource_cycle(backend: Backend, store: StateStore, identifier: str) -> None:
    scope = LockScope(store.workspace, identifier)
    async with hold_lock(backend.locks, scope, operation="bench", who="bench", timeout=300):
        await store.commit([change(identifier)], META)


# ====================================================================== (a) requests


async def count_requests(setup: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = f"requests-{uuid.uuid4().hex[:8]}"
    backend = await open_backend(setup, prefix)
    try:
        store = StateStore(backend.objects, snapshot_every=SNAPSHOT_EVERY)
        counter = RequestCounter().attach_backend(backend)
        await resource_cycle(backend, store, "first")
        out["first commit of a new state"] = measured(counter)
        for i in range(1, EXISTING_COMMITS):
            await store.commit([change(f"existing-{i}")], META)
        counter.reset()
        await resource_cycle(backend, StateStore(backend.objects), "cold")
        out[f"cold store, existing state of {EXISTING_COMMITS} commits"] = measured(counter)
        await resource_cycle(backend, store, "catch-up")  # reads the cold store's commit
        warm = [await _one_cycle(backend, store, counter, f"warm-{i}") for i in range(5)]
        out["warm store (each of 5 cycles)"] = warm[0] if _all_same(warm) else warm
        counter.reset()
        async with hold_lock(backend.locks, LockScope(store.workspace), operation="b", who="b"):
            await store.commit([change("under-workspace-lock")], META)
        out["warm store, workspace lock instead"] = measured(counter)
    finally:
        await backend.close()
    out["warm store, encrypt=client"] = await _encrypted_cycle(setup)
    return out


async def _one_cycle(
    backend: Backend, store: StateStore, counter: RequestCounter, identifier: str
) -> dict[str, Any]:
    counter.reset()
    await resource_cycle(backend, store, identifier)
    return measured(counter)


async def _encrypted_cycle(setup: dict[str, str]) -> dict[str, Any]:
    backend = await open_backend(setup, f"encrypted-{uuid.uuid4().hex[:8]}", encrypt="client")
    try:
        store = StateStore(backend.objects)
        await resource_cycle(backend, store, "warm-up")
        counter = RequestCounter().attach_backend(backend)
        await resource_cycle(backend, store, "measured")
        return measured(counter)
    finally:
        await backend.close()


def measured(counter: RequestCounter) -> dict[str, Any]:
    return {"total": counter.total, "requests": list(counter.calls)}


def _all_same(rows: list[dict[str, Any]]) -> bool:
    return all(row == rows[0] for row in rows)


# ====================================================================== (b) throughput


def throughput(setup: dict[str, str], writers: int, round_trip_ms: int, pid: int | None) -> dict:
    prefix = f"writers-{writers}-{round_trip_ms}ms-{uuid.uuid4().hex[:8]}"
    commits = COMMITS_PER_WRITER[writers]
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "benchmarks.s3_bench", "writer", json.dumps(setup)),
                *(prefix, f"w{n}", str(commits), str(round_trip_ms)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        for n in range(writers)
    ]
    for proc in procs:  # every writer has imported, connected and loaded the state
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    moto_before = cpu_seconds(pid)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results, failed = [], 0
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        if proc.returncode == 0:
            results.append(json.loads(out))
        else:
            failed += 1  # its error is on stderr; the report counts it
    moto_after = cpu_seconds(pid)
    if not results:
        raise RuntimeError(f"all {writers} writers failed")
    row = summarise(results, writers, round_trip_ms, moto_before, moto_after)
    print(f"  {writers} writer(s), +{round_trip_ms} ms: {row}", file=sys.stderr, flush=True)
    return {**row, "writers_failed": failed}


def summarise(
    results: list[dict[str, Any]],
    writers: int,
    round_trip_ms: int,
    moto_before: float | None,
    moto_after: float | None,
) -> dict[str, Any]:
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["commits"] for r in results)
    requests = sum(r["requests"] for r in results)
    moto_cpu = None if moto_before is None or moto_after is None else moto_after - moto_before
    client_cpu = sum(r["cpu_seconds"] for r in results)
    return {
        "writers": writers,
        "round_trip_ms": round_trip_ms,
        "commits": total,
        "seconds": round(wall, 3),
        "commits_per_second": round(total / wall, 1),
        "requests_per_commit": round(requests / total, 2),
        "requests_per_second": round(requests / wall, 1),
        "moto_cpu_seconds": None if moto_cpu is None else round(moto_cpu, 2),
        "moto_cpu_share_of_one_core": None if moto_cpu is None else round(moto_cpu / wall, 2),
        "writers_cpu_seconds": round(client_cpu, 2),
        "writers_cpu_ms_per_commit": round(1000 * client_cpu / total, 1),
        "machine_cpu_busy": round(((moto_cpu or 0) + client_cpu) / (wall * CORES), 2),
    }


async def writer(setup: dict[str, str], prefix: str, name: str, commits: int, rtt_ms: int):
    backend = await open_backend(setup, prefix)
    try:
        if rtt_ms:
            add_round_trip(backend, rtt_ms / 1000)
        store = StateStore(backend.objects, snapshot_every=SNAPSHOT_EVERY)
        await store.head()
        counter = RequestCounter().attach_backend(backend)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        counter.reset()
        start, cpu = time.time(), time.process_time()
        for i in range(commits):
            await resource_cycle(backend, store, f"{name}-{i}")
        result = {
            "start": start,
            "end": time.time(),
            "commits": commits,
            "requests": counter.total,
            "cpu_seconds": time.process_time() - cpu,
        }
    finally:
        await backend.close()
    print(json.dumps(result), flush=True)


def add_round_trip(backend: Backend, seconds: float) -> None:
    """Delay every request by ``seconds``, as a network round trip to AWS would."""

    async def delay(**_: Any) -> None:
        await asyncio.sleep(seconds)

    for part in (backend.objects, backend.locks):
        for client in part.aws_clients():  # type: ignore[attr-defined]
            client.meta.events.register("before-send.*.*", delay)


# ====================================================================== scenario


def run() -> dict[str, Any]:
    with moto_environment() as (url, pid):
        bucket = f"ccstate-bench-{uuid.uuid4().hex[:10]}"
        table = f"ccstate-bench-locks-{uuid.uuid4().hex[:8]}"
        report = asyncio.run(bootstrap(bucket, table, endpoint_url=url))
        setup = {"bucket": bucket, "table": table, "kms_key": report["kms_key"]}
        requests = asyncio.run(count_requests(setup))
        runs = [
            throughput(setup, writers, rtt, pid) for rtt in ROUND_TRIP_MS for writers in WRITERS
        ]
    warm = requests["warm store (each of 5 cycles)"]
    return {
        "description": "moto server (own process) on 127.0.0.1 over HTTP; bucket, table and "
        "KMS key from backends.bootstrap; SSE-KMS objects. Writers are separate OS processes, "
        "each doing resource lock -> StateStore.commit -> unlock on its own resources of one "
        "shared state.",
        "requests": requests,
        "request_goal": {
            "statement": f"one warm resource commit cycle <= {GOAL_REQUESTS} AWS requests "
            f"(Terraform's S3 backend: {TERRAFORM_REQUESTS})",
            "measured": warm["total"] if isinstance(warm, dict) else None,
            "met": isinstance(warm, dict) and warm["total"] <= GOAL_REQUESTS,
        },
        "throughput": runs,
        "throughput_goal": {f"{rtt}ms": _ratio_goal(runs, rtt) for rtt in ROUND_TRIP_MS},
    }


def _ratio_goal(runs: list[dict[str, Any]], rtt: int) -> dict[str, Any]:
    rate = {r["writers"]: r["commits_per_second"] for r in runs if r["round_trip_ms"] == rtt}
    ratio = round(rate[max(WRITERS)] / rate[1], 2)
    return {
        "statement": f"{max(WRITERS)} writers >= {GOAL_RATIO:g} x 1 writer in commits/s",
        "ratio": ratio,
        "met": ratio >= GOAL_RATIO,
    }


def markdown(result: dict[str, Any]) -> str:
    goal = result["request_goal"]
    lines = [
        result["description"],
        "",
        f"**Goal**: {goal['statement']}. **Measured: {goal['measured']} — "
        f"{'met' if goal['met'] else 'NOT met'}.**",
        "",
        "| cycle | requests | in order |",
        "|---|---:|---|",
    ]
    for name, row in result["requests"].items():
        rows = row if isinstance(row, list) else [row]
        for one in rows:
            lines.append(f"| {name} | {one['total']} | {', '.join(one['requests'])} |")
    lines += [
        "",
        "Writers, each lock + commit + unlock on its own resources of one shared state:",
        "",
        "| added round trip | writers | commits | commits/s | requests/commit | requests/s "
        "| moto CPU (share of 1 core) | writers' CPU ms/commit | machine CPU busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        lines.append(
            f"| {r['round_trip_ms']} ms | {r['writers']} | {r['commits']} "
            f"| {r['commits_per_second']} | {r['requests_per_commit']} "
            f"| {r['requests_per_second']} | {r['moto_cpu_share_of_one_core']} "
            f"| {r['writers_cpu_ms_per_commit']} | {r['machine_cpu_busy']} |"
        )
    lines += ["", *analysis(result["throughput"]), ""]
    for rtt, g in result["throughput_goal"].items():
        lines.append(
            f"- **Goal** ({rtt} added round trip): {g['statement']}. **Measured ratio: "
            f"{g['ratio']}x — {'met' if g['met'] else 'NOT met'}.**"
        )
    return "\n".join(lines)


def analysis(runs: list[dict[str, Any]]) -> list[str]:
    """Where the time goes, from the measured rows."""
    single = next(r for r in runs if r["writers"] == 1 and r["round_trip_ms"] == 0)
    most = max(runs, key=lambda r: r["writers"])
    per_request_ms = 1000 / single["requests_per_second"]
    requests = single["requests_per_second"] * single["seconds"]
    moto_ms = 1000 * single["moto_cpu_seconds"] / requests
    client_ms = single["writers_cpu_ms_per_commit"] / single["requests_per_commit"]
    busiest = max(r["machine_cpu_busy"] for r in runs)
    failed = sum(r.get("writers_failed", 0) for r in runs)
    return [
        "Where the time goes: one writer waits "
        f"{per_request_ms:.1f} ms per request, of which moto spends {moto_ms:.1f} ms CPU and our "
        f"client {client_ms:.1f} ms CPU; the rest is time neither spent on a CPU for this work "
        "(most likely moto's thread start per connection and the other jobs on this shared "
        "machine, see the load average; not profiled further). The CPU of moto plus the "
        f"writers never exceeded {busiest:.0%} of the machine, so the limit is not CPU. It is "
        f"the single log: requests per commit rise from {single['requests_per_commit']} with one "
        f"writer to {most['requests_per_commit']} with {most['writers']}, because all writers "
        "claim the same next serial with a conditional put and all but one lose each round, "
        "then pay a refresh (GET, LIST) and a retried put. More writers add requests per commit, "
        "not commits per second, and the added round trip does not change that. Parallel "
        "throughput needs separate workspaces (one log each); "
        f"{failed} writer(s) gave up in these runs.",
    ]


def main(argv: list[str]) -> None:
    if argv[:1] != ["writer"]:
        raise SystemExit("usage: python -m benchmarks.s3_bench writer SETUP PREFIX NAME N RTT_MS")
    setup, prefix, name, commits, rtt = argv[1:6]
    asyncio.run(writer(json.loads(setup), prefix, name, int(commits), int(rtt)))


if __name__ == "__main__":
    main(sys.argv[1:])
