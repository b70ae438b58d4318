"""S3 + DynamoDB scenario: AWS requests per commit cycle, and commits/s of concurrent writers.

Everything runs against a moto server on 127.0.0.1 in its own OS process (real HTTP), with a
bucket, table and KMS key made by ``backends.bootstrap``.

(a) Requests of one resource commit cycle (``hold_lock`` on a resource -> ``StateStore.commit``
    -> release), counted with ``backends.aws.RequestCounter``: warm store, cold store on an
    existing state, first commit of a new state, the workspace-lock cycle, and encrypt=client.
    Goal: <= 6 requests per warm cycle (4 before fencing tokens); Terraform's S3 backend
    spends 7 (lock PutItem, digest GetItem, state GetObject, PutObject, digest PutItem, ... and
    unlock DeleteItem). The cycle
    commits ``under_lock`` as the MCP server's mutations do.
(b) Commits per second of 1, 4 and 16 writers, each a separate OS process doing lock + commit +
    unlock cycles on its own resources of ONE shared state. Also with a simulated network
    round trip added to every request (an awaited sleep in botocore's ``before-send``), because
    moto on the loopback answers in about a millisecond while AWS takes tens. Two cycles: pure
    (the goal's measure: 16 writers >= 4 x 1), and holding the lock HOLD_MS before committing,
    as a real cycle holds it while Cloud Control works. Per row: requests per operation, lost
    races, time in requests / backoff / waiting for a CPU, CPU of moto and of the writers.

``python -m benchmarks.s3_bench rows 16 0 0 ...`` runs only throughput rows, for experiments.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ccstate.backends.aws import RequestCounter
from ccstate.backends.base import Backend
from ccstate.backends.bootstrap import bootstrap
from ccstate.backends.s3 import open_s3_backend_from_options
from ccstate.sandbox.moto_server import start_moto
from ccstate.service.locking import hold_lock
from ccstate.service.ports import LockScope
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import TAIL_EVERY, StateStore

NAME = "s3"
TITLE = "S3 + DynamoDB backend: AWS requests per commit, concurrent writers"
ROOT = Path(__file__).resolve().parent.parent
# 4 before fencing tokens (issue 11): binding a token to the lease costs 2 requests per acquire.
GOAL_REQUESTS = 6
TERRAFORM_REQUESTS = 7
GOAL_RATIO = 4.0
WRITERS = (1, 4, 16)
COMMITS_PER_WRITER = {1: 60, 4: 25, 16: 10}
ROUND_TRIP_MS = (0, 20)
HOLD_MS = (0, 200)  # pure cycle; lock held as long as a quick Cloud Control call
EXISTING_COMMITS = 60
SNAPSHOT_EVERY = 50
META = CommitMeta(principal=Principal(user="bench"), explanation="benchmark commit")
CORES = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
        if any(arg.endswith((b"moto.server", b"moto_server")) for arg in argv) and (
            port.encode() in argv
        ):
            return int(entry.name)
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds of a process, its ended threads included (moto runs one per connection)."""
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


async def resource_cycle(
    backend: Backend, store: StateStore, identifier: str, hold_seconds: float = 0.0
) -> None:
    """Lock one resource, (optionally) spend ``hold_seconds`` on it as a Cloud Control create
    would, commit, unlock."""
    scope = LockScope(store.workspace, identifier)
    async with hold_lock(backend.locks, scope, operation="bench", who="bench", timeout=300):
        if hold_seconds:
            await asyncio.sleep(hold_seconds)
        await store.commit([change(identifier)], META, under_lock=True)


# ====================================================================== (a) requests


async def count_requests(setup: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = f"requests-{uuid.uuid4().hex[:8]}"
    backend = await open_backend(setup, prefix)
    try:
        store = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
        counter = RequestCounter().attach_backend(backend)
        await resource_cycle(backend, store, "first")
        out["first commit of a new state"] = measured(counter)
        for i in range(1, EXISTING_COMMITS):
            await store.commit([change(f"existing-{i}")], META)
        counter.reset()
        await resource_cycle(backend, backend.state_store(), "cold")
        out[f"cold store, existing state of {EXISTING_COMMITS} commits"] = measured(counter)
        await store.current()  # reads the cold store's commit, outside the counted cycles
        warm = [await _one_cycle(backend, store, counter, f"warm-{i}") for i in range(5)]
        out["warm store (each of 5 cycles)"] = warm[0] if _all_same(warm) else warm
        counter.reset()
        async with hold_lock(backend.locks, LockScope(store.workspace), operation="b", who="b"):
            await store.commit([change("under-workspace-lock")], META, under_lock=True)
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
        store = backend.state_store()
        await resource_cycle(backend, store, "warm-up")
        counter = RequestCounter().attach_backend(backend)
        await resource_cycle(backend, store, "measured")
        return measured(counter)
    finally:
        await backend.close()


def measured(counter: RequestCounter) -> dict[str, Any]:
    return {"total": counter.total, "requests": list(counter.calls)}


def _mean_total(warm: dict[str, Any] | list[dict[str, Any]]) -> float:
    rows = [warm] if isinstance(warm, dict) else warm
    return round(sum(row["total"] for row in rows) / len(rows), 2)


def _all_same(rows: list[dict[str, Any]]) -> bool:
    return all(row == rows[0] for row in rows)


# ====================================================================== (b) throughput


class RequestClock:
    """Where one writer's time goes: requests per operation, seconds with a request in flight
    (botocore ``before-send`` to ``response-received``, overlapping requests counted once), and
    lost races (a conditional PutObject answered 412)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lost_races = 0
        self.busy = 0.0
        self._in_flight = 0
        self._since = 0.0

    def attach(self, backend: Backend) -> RequestClock:
        for part in (backend.objects, backend.locks):
            for client in part.aws_clients():  # type: ignore[attr-defined]
                client.meta.events.register_first("before-send.*.*", self._sent)
                client.meta.events.register_last("response-received.*.*", self._received)
        return self

    def reset(self) -> None:
        self.counts.clear()
        self.lost_races, self.busy, self._in_flight = 0, 0.0, 0

    def _sent(self, event_name: str = "", **_: Any) -> None:
        self.counts[event_name.split(".", 1)[-1]] += 1
        if self._in_flight == 0:
            self._since = time.perf_counter()
        self._in_flight += 1

    def _received(self, event_name: str = "", parsed_response: Any = None, **_: Any) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self.busy += time.perf_counter() - self._since
        status = ((parsed_response or {}).get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if event_name.endswith(".PutObject") and status == 412:
            self.lost_races += 1


def run_queue_seconds() -> float | None:
    """Seconds this process was runnable but waited for a CPU (Linux schedstat)."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def throughput(
    setup: dict[str, str], writers: int, round_trip_ms: int, hold_ms: int, pid: int | None
) -> dict[str, Any]:
    prefix = f"writers-{writers}-{round_trip_ms}ms-{hold_ms}ms-{uuid.uuid4().hex[:8]}"
    commits = COMMITS_PER_WRITER[writers]
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "benchmarks.s3_bench", "writer", json.dumps(setup)),
                *(prefix, f"w{n}", str(commits), str(round_trip_ms), str(hold_ms)),
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
    moto_cpu = None if moto_before is None or moto_after is None else moto_after - moto_before
    row = summarise(results, writers, round_trip_ms, hold_ms, moto_cpu)
    print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
    return {**row, "writers_failed": failed}


def summarise(
    results: list[dict[str, Any]],
    writers: int,
    round_trip_ms: int,
    hold_ms: int,
    moto_cpu: float | None,
) -> dict[str, Any]:
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["commits"] for r in results)
    counts: Counter[str] = Counter()
    for r in results:
        counts.update(r["counts"])
    requests = sum(counts.values())
    client_cpu = sum(r["cpu_seconds"] for r in results)
    writer_seconds = sum(r["end"] - r["start"] for r in results)
    waits = [r["run_queue_seconds"] for r in results]
    return {
        "writers": writers,
        "round_trip_ms": round_trip_ms,
        "hold_ms": hold_ms,
        "commits": total,
        "seconds": round(wall, 3),
        "commits_per_second": round(total / wall, 1),
        "requests_per_commit": round(requests / total, 2),
        "requests_per_commit_by_operation": {
            op: round(n / total, 2) for op, n in sorted(counts.items())
        },
        "lost_races_per_commit": round(sum(r["lost_races"] for r in results) / total, 2),
        "requests_per_second": round(requests / wall, 1),
        "ms_per_request": round(1000 * sum(r["busy_seconds"] for r in results) / requests, 1),
        # shares of the writers' summed wall time
        "share_in_requests": round(sum(r["busy_seconds"] for r in results) / writer_seconds, 2),
        "share_in_backoff": round(sum(r["backoff_seconds"] for r in results) / writer_seconds, 2),
        "share_holding_lock": round(total * hold_ms / 1000 / writer_seconds, 2),
        "share_waiting_for_cpu": None if None in waits else round(sum(waits) / writer_seconds, 2),
        "moto_cpu_seconds": None if moto_cpu is None else round(moto_cpu, 2),
        "moto_cpu_share_of_one_core": None if moto_cpu is None else round(moto_cpu / wall, 2),
        "writers_cpu_seconds": round(client_cpu, 2),
        "writers_cpu_ms_per_commit": round(1000 * client_cpu / total, 1),
        "machine_cpu_busy": round(((moto_cpu or 0) + client_cpu) / (wall * CORES), 2),
    }


async def writer(
    setup: dict[str, str], prefix: str, name: str, commits: int, rtt_ms: int, hold_ms: int
) -> None:
    backend = await open_backend(setup, prefix)
    try:
        clock = RequestClock().attach(backend)
        if rtt_ms:
            add_round_trip(backend, rtt_ms / 1000)
        store = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
        await store.head()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        clock.reset()
        backoff_before = store.contention.backoff_seconds
        start, cpu, waited = time.time(), time.process_time(), run_queue_seconds()
        for i in range(commits):
            await resource_cycle(backend, store, f"{name}-{i}", hold_ms / 1000)
        end, cpu, waited_after = time.time(), time.process_time() - cpu, run_queue_seconds()
        result = {
            "start": start,
            "end": end,
            "commits": commits,
            "counts": dict(clock.counts),
            "lost_races": clock.lost_races,
            "busy_seconds": clock.busy,
            "backoff_seconds": store.contention.backoff_seconds - backoff_before,
            "cpu_seconds": cpu,
            "run_queue_seconds": None
            if waited is None or waited_after is None
            else waited_after - waited,
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
        setup = setup_state(url)
        requests = asyncio.run(count_requests(setup))
        runs = [
            throughput(setup, writers, rtt, hold, pid)
            for hold in HOLD_MS
            for rtt in ROUND_TRIP_MS
            for writers in WRITERS
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
            f"(Terraform's S3 backend: {TERRAFORM_REQUESTS}); one cycle in {TAIL_EVERY} also "
            "extends the snapshot pointer's tail (one PUT), and after a snapshot the other "
            "cycles merge the indexes it left pending (up to 2 requests: here the state's 60 "
            "commits made 60 resources, so 2 index creations each), so cycles differ: their "
            "mean. Over a whole window a lone writer averages the requests/commit of the "
            "throughput table below (every request of every cycle, the snapshot's included)",
            "measured": _mean_total(warm),
            "met": _mean_total(warm) <= GOAL_REQUESTS,
        },
        "throughput": runs,
        "throughput_goal": {f"{rtt}ms": _ratio_goal(runs, rtt, 0) for rtt in ROUND_TRIP_MS},
        "throughput_ratio_holding_lock": {
            f"{rtt}ms": _ratio_goal(runs, rtt, hold)["ratio"]
            for hold in HOLD_MS[1:]
            for rtt in ROUND_TRIP_MS
        },
    }


def _ratio_goal(runs: list[dict[str, Any]], rtt: int, hold: int) -> dict[str, Any]:
    rate = {
        r["writers"]: r["commits_per_second"]
        for r in runs
        if r["round_trip_ms"] == rtt and r.get("hold_ms", 0) == hold
    }
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
        "Writers, each lock + commit + unlock on its own resources of one shared state. "
        "*Pure*: nothing else in the cycle (the goal's measure). *Holding the lock*: the lock "
        f"is held {max(HOLD_MS)} ms before the commit, standing in for the Cloud Control "
        "create or update a real cycle waits for (those take seconds). Shares are of the "
        'writers\' summed wall time; "waiting for a CPU" is run-queue time from '
        "`/proc/self/schedstat`; lost races are conditional PUTs answered 412.",
        "",
        "| cycle | added round trip | writers | commits/s | requests/commit | lost races/commit "
        "| ms/request | in requests | in backoff | waiting for a CPU | moto CPU (of 1 core) "
        "| writers' CPU ms/commit | machine CPU busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        hold = r.get("hold_ms", 0)
        lines.append(
            f"| {'pure' if not hold else f'holding the lock {hold} ms'} "
            f"| {r['round_trip_ms']} ms | {r['writers']} | {r['commits_per_second']} "
            f"| {r['requests_per_commit']} | {r.get('lost_races_per_commit', '')} "
            f"| {r.get('ms_per_request', '')} | {r.get('share_in_requests', '')} "
            f"| {r.get('share_in_backoff', '')} | {r.get('share_waiting_for_cpu', '')} "
            f"| {r['moto_cpu_share_of_one_core']} | {r['writers_cpu_ms_per_commit']} "
            f"| {r['machine_cpu_busy']} |"
        )
    lines += ["", *analysis(result["throughput"]), ""]
    for rtt, g in result["throughput_goal"].items():
        lines.append(
            f"- **Goal** (pure cycle, {rtt} added round trip): {g['statement']}. **Measured "
            f"ratio: {g['ratio']}x — {'met' if g['met'] else 'NOT met'}.**"
        )
    for rtt, ratio in result.get("throughput_ratio_holding_lock", {}).items():
        lines.append(
            f"- Holding the lock {max(HOLD_MS)} ms, {rtt} added round trip: {max(WRITERS)} "
            f"writers reach {ratio}x the commits/s of 1."
        )
    return "\n".join(lines)


def _row(runs: list[dict[str, Any]], writers: int, rtt: int, hold: int = 0) -> dict[str, Any]:
    return next(
        r
        for r in runs
        if r["writers"] == writers and r["round_trip_ms"] == rtt and r.get("hold_ms", 0) == hold
    )


def analysis(runs: list[dict[str, Any]]) -> list[str]:
    """Where the time goes, from the measured rows."""
    fastest = max(ROUND_TRIP_MS)
    single, most = _row(runs, 1, 0), _row(runs, max(WRITERS), 0)
    far, far_most = _row(runs, 1, fastest), _row(runs, max(WRITERS), fastest)
    ops = ", ".join(
        f"{n} {op.split('.', 1)[1]}" for op, n in most["requests_per_commit_by_operation"].items()
    )
    moto_share = single["moto_cpu_share_of_one_core"] or 0
    failed = sum(r.get("writers_failed", 0) for r in runs)
    return [
        "Each commit takes its own serial from the DynamoDB counter and puts itself there, "
        "so writers on different resources do not race: "
        f"{most['lost_races_per_commit']} lost races per commit with {most['writers']} writers, "
        f"and {most['requests_per_commit']} requests per commit ({ops}) against "
        f"{single['requests_per_commit']} with one: the GetObjects beyond the cycle's 4 "
        "requests are the snapshot writer (every 50th serial) reading the commits it has not "
        "seen, and polls for serials still being written.",
        "",
        f"With no added round trip the benchmark measures moto, not the backend. moto serves "
        "every request in one Python process (one GIL) and runs conditional writes one at a "
        "time (`sandbox/moto_server.py`: without that, two writers could both win a serial); "
        "all four requests of a cycle are conditional writes. One writer alone already keeps "
        f"moto {moto_share:.0%} busy, so no client design can exceed about "
        f"{1 / moto_share if moto_share else float('nan'):.1f}x one writer's rate there, and with "
        f"{most['writers']} writers moto spends its core switching between their connection "
        f"threads (a request takes {most['ms_per_request']} ms against "
        f"{single['ms_per_request']} ms alone). S3 and DynamoDB serve requests in parallel "
        f"and take tens of milliseconds each: with {fastest} ms added per request, one writer "
        f"makes {far['commits_per_second']} commits/s and {far_most['writers']} writers make "
        f"{far_most['commits_per_second']} "
        f"({far_most['commits_per_second'] / far['commits_per_second']:.1f}x). "
        f"{failed} writer(s) gave up in these runs.",
    ]


def setup_state(url: str) -> dict[str, str]:
    bucket = f"ccstate-bench-{uuid.uuid4().hex[:10]}"
    table = f"ccstate-bench-locks-{uuid.uuid4().hex[:8]}"
    report = asyncio.run(bootstrap(bucket, table, endpoint_url=url))
    return {"bucket": bucket, "table": table, "kms_key": report["kms_key"]}


USAGE = """usage: python -m benchmarks.s3_bench rows WRITERS RTT_MS HOLD_MS [...more triples]
       (throughput rows only, on a fresh moto; for experiments)
   or: python -m benchmarks.s3_bench writer SETUP PREFIX NAME N RTT_MS HOLD_MS  (internal)"""


def main(argv: list[str]) -> None:
    if argv[:1] == ["writer"] and len(argv) == 7:
        setup, prefix, name, commits, rtt, hold = argv[1:7]
        asyncio.run(writer(json.loads(setup), prefix, name, int(commits), int(rtt), int(hold)))
    elif argv[:1] == ["rows"] and len(argv) > 1 and (len(argv) - 1) % 3 == 0:
        numbers = [int(a) for a in argv[1:]]
        with moto_environment() as (url, pid):
            setup = setup_state(url)
            for i in range(0, len(numbers), 3):
                throughput(setup, *numbers[i : i + 3], pid)
    else:
        raise SystemExit(USAGE)


if __name__ == "__main__":
    main(sys.argv[1:])
