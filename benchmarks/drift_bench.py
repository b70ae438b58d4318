"""Drift scenario: a full drift scan of 1,000 resources against the sandbox with 50 ms latency.

The sandbox (moto + Cloud Control) runs in its own OS process with ``--latency-ms 50``, so the
scanner and the fake AWS do not share one interpreter's GIL. 1,000 SQS queues are created
directly through moto's SQS API and recorded in a local state through the StateStore API. Each
measurement runs in a fresh child process (so peak RSS belongs to one scan):

- wall time of ``DriftDetector.scan()`` over every resource, with the default concurrency,
  against the goal 1.5 x (N x 50 ms / concurrency);
- the commit that records the whole scan (``record``);
- peak RSS growth during the scan and the tracemalloc peak, at 100 and at 1,000 resources,
  to show memory stays flat (a fixed worker pool, not one task per resource);
- the CPU time the server process (sandbox or stub) spends during the timed scan, per
  GetResource: the sandbox serves every call under one GIL, so N x that is a floor for the
  scan whatever the concurrency;
- the 1,000-resource scan again against a latency-only stub (GetResource that only sleeps),
  as shipped and with a larger botocore connection pool, to separate the scanner's cost from
  moto's CPU time.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

NAME = "drift"
TITLE = "Drift: full scan of 1,000 resources, sandbox with 50 ms latency per call"
LATENCY_MS = int(os.environ.get("CCSTATE_BENCH_LATENCY_MS", "50"))
SIZES = (100, 1_000)
GOAL_FACTOR = 1.5
POOL_ENV = "CCSTATE_BENCH_MAX_POOL"
SERVER_PID_ENV = "CCSTATE_BENCH_SERVER_PID"
POOL_EXPERIMENT = 64
ROOT = Path(__file__).resolve().parent.parent


def goal_seconds(size: int, concurrency: int) -> float:
    return GOAL_FACTOR * size * LATENCY_MS / 1000 / concurrency


# ====================================================================== the parent


def run() -> dict[str, Any]:
    from ccstate.sandbox.moto_server import free_port
    from ccstate.service.drift.detect import DriftDetector

    concurrency = DriftDetector.__init__.__kwdefaults__["concurrency"]
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--latency-ms", str(LATENCY_MS)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint)
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for size in SIZES:
                backend = Path(tmp) / f"state-{size}"
                asyncio.run(_build_state(endpoint, backend, size))
                results[str(size)] = _child(endpoint, backend, server_pid=sandbox.pid)
            stub = _stub_scan(backend)
            stub_pooled = _stub_scan(backend, pool=POOL_EXPERIMENT)
        return {
            "latency_only_stub": stub,
            "latency_only_stub_pooled": {**stub_pooled, "max_pool_connections": POOL_EXPERIMENT},
            "latency_ms": LATENCY_MS,
            "concurrency": concurrency,
            "goal_seconds": round(goal_seconds(max(SIZES), concurrency), 2),
            "sizes": results,
        }
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def _stub_scan(backend: Path, pool: int | None = None) -> dict[str, Any]:
    """The same scan against the latency-only stub (no moto behind it); ``pool`` raises
    botocore's connection pool (default 10) for an experiment."""
    from ccstate.sandbox.moto_server import free_port

    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.drift_bench", "--stub", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        _wait_until_listening(port)
        return _child(f"http://127.0.0.1:{port}", backend, pool, server_pid=stub.pid)
    finally:
        stub.terminate()
        stub.wait(timeout=30)


def _wait_until_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_until_up(endpoint: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _sqs(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def _build_state(endpoint: str, backend: Path, size: int) -> None:
    """``size`` queues in moto, recorded in a local state as ccstate would have created them."""
    from ccstate.backends.local_objects import LocalObjectStore
    from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
    from ccstate.service.state.store import StateStore

    sqs = _sqs(endpoint)
    names = [f"bench-{size}-{i:05d}" for i in range(size)]
    with ThreadPoolExecutor(8) as pool:
        urls = list(pool.map(lambda n: sqs.create_queue(QueueName=n)["QueueUrl"], names))
    store = StateStore(LocalObjectStore(backend), "default")
    meta = CommitMeta(principal=Principal(user="bench"), explanation="benchmark setup")
    for start in range(0, size, 100):
        changes = [
            ResourceChange(
                identifier=url,
                resource_type="AWS::SQS::Queue",
                operation="create",
                properties_after={"QueueName": name, "QueueUrl": url},
            )
            for name, url in zip(names[start : start + 100], urls[start : start + 100], strict=True)
        ]
        await store.commit(changes, meta)


def _child(
    endpoint: str, backend: Path, pool: int | None = None, *, server_pid: int
) -> dict[str, Any]:
    env = {
        POOL_ENV: str(pool or ""),
        SERVER_PID_ENV: str(server_pid),
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.drift_bench", str(backend)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ====================================================================== the latency-only stub


def _serve_stub(port: int) -> None:
    """A Cloud Control GetResource that costs only its latency: answers every queue with the
    properties recorded in state after sleeping LATENCY_MS. Isolates the scanner's own cost
    from moto's CPU time."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK stall

        def do_POST(self) -> None:
            params = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)))
            time.sleep(LATENCY_MS / 1000)
            url = params["Identifier"]
            model = {"QueueUrl": url, "QueueName": url.rsplit("/", 1)[-1]}
            body = json.dumps(
                {
                    "TypeName": params["TypeName"],
                    "ResourceDescription": {"Identifier": url, "Properties": json.dumps(model)},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ====================================================================== the child


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu_seconds() -> float:
    """CPU time (user + system) of the server process named by SERVER_PID_ENV so far."""
    with open(f"/proc/{os.environ[SERVER_PID_ENV]}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reset_peak_rss() -> None:
    """Restart the peak RSS (VmHWM) from the current RSS. ``ru_maxrss`` cannot serve: it also
    counts the address space of the parent this process was spawned from, before exec."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _peak_rss_mib() -> float:
    """The peak RSS since ``_reset_peak_rss``."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kib / 1024


def _maybe_widen_pool() -> None:
    """The experiment: the same client config with a larger botocore connection pool."""
    pool = os.environ.get(POOL_ENV)
    if not pool:
        return
    import ccstate.backends.aws as aws
    from botocore.config import Config

    shipped = aws.client_config

    def widened(service: str, endpoint_url: str | None = None) -> Config:
        return shipped(service, endpoint_url).merge(Config(max_pool_connections=int(pool)))

    aws.client_config = widened  # type: ignore[assignment]


async def _measure(backend: Path) -> dict[str, Any]:
    from ccstate.backends.cloudcontrol import CloudControlProvider
    from ccstate.backends.local_objects import LocalObjectStore
    from ccstate.backends.schemas import CloudFormationSchemaProvider
    from ccstate.service.drift.detect import DriftDetector
    from ccstate.service.state.model import CommitMeta, Principal
    from ccstate.service.state.store import StateStore

    _maybe_widen_pool()
    store = StateStore(LocalObjectStore(backend), "default")
    async with CloudControlProvider(region="us-east-1") as cloud:
        detector = DriftDetector(cloud, CloudFormationSchemaProvider(offline=True), store)
        size = len((await store.current()).resources)
        await detector.scan(list((await store.current()).resources)[:5])  # warm up
        _reset_peak_rss()
        rss_before = _rss_mib()
        cpu_before = _cpu_seconds()
        server_cpu_before = _server_cpu_seconds()
        started = time.perf_counter()
        report = await detector.scan()
        scan_seconds = time.perf_counter() - started
        scan_cpu = _cpu_seconds() - cpu_before
        server_cpu = _server_cpu_seconds() - server_cpu_before
        load_after_scan = os.getloadavg()[0]
        peak_rss = _peak_rss_mib()
        started = time.perf_counter()
        await detector.record(report, CommitMeta(principal=Principal(user="bench")))
        record_seconds = time.perf_counter() - started
        tracemalloc.start()
        await detector.scan()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "resources": size,
        "counts": report.counts,
        "scan_seconds": round(scan_seconds, 2),
        "per_resource_ms": round(1000 * scan_seconds / size, 2),
        "goal_seconds": round(goal_seconds(size, detector.concurrency), 2),
        "scanner_cpu_seconds": round(scan_cpu, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "server_cpu_ms_per_call": round(1000 * server_cpu / size, 2),
        "record_seconds": round(record_seconds, 2),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak_rss, 1),
        "rss_growth_mib": round(peak_rss - rss_before, 1),
        "tracemalloc_peak_mib": round(traced_peak / 2**20, 1),
        "load_average_1m_after_scan": round(load_after_scan, 2),
    }


# ====================================================================== the report


def markdown(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    big = sizes[str(max(SIZES))]
    verdict = "met" if big["scan_seconds"] <= result["goal_seconds"] else "**missed**"
    lines = [
        f"Sandbox in its own process with {result['latency_ms']} ms latency per Cloud Control "
        f"call; default concurrency {result['concurrency']}. Goal: a full scan of "
        f"{max(SIZES):,} resources in at most 1.5 x ({max(SIZES):,} x {result['latency_ms']} "
        f"ms / {result['concurrency']}) = {result['goal_seconds']} s: {verdict} "
        f"({big['scan_seconds']} s).",
        "",
        "| Resources | Scan (s) | Goal (s) | Per resource (ms) | Sandbox CPU per call (ms) | "
        "Scanner CPU (s) | Record commit (s) | RSS growth during scan (MiB) | Peak RSS (MiB) | "
        "tracemalloc peak (MiB) | Load average after the scan |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        r = sizes[str(size)]
        lines.append(
            f"| {size:,} | {r['scan_seconds']} | {r['goal_seconds']} | {r['per_resource_ms']} | "
            f"{r.get('server_cpu_ms_per_call', 'n/a')} | {r['scanner_cpu_seconds']} | "
            f"{r['record_seconds']} | {r['rss_growth_mib']} | {r['peak_rss_mib']} | "
            f"{r['tracemalloc_peak_mib']} | {r.get('load_average_1m_after_scan', 'n/a')} |"
        )
    lines += ["", *_stub_lines(result), "", *_reading(result)]
    return "\n".join(lines)


def _reading(result: dict[str, Any]) -> list[str]:
    sizes = result["sizes"]
    small, big = sizes[str(min(SIZES))], sizes[str(max(SIZES))]
    growth = big["tracemalloc_peak_mib"] - small["tracemalloc_peak_mib"]
    lines = [
        f"**Memory stays flat**: {max(SIZES) // min(SIZES)}x the resources costs "
        f"{growth:.1f} MiB more traced memory at peak ({small['tracemalloc_peak_mib']} -> "
        f"{big['tracemalloc_peak_mib']} MiB) and {big['rss_growth_mib']} MiB of RSS growth: "
        "a fixed pool of workers holds at most `concurrency` checks, and a report keeps only "
        "the differences.",
    ]
    return lines + _where_the_time_goes(result)


def _where_the_time_goes(result: dict[str, Any]) -> list[str]:
    big = result["sizes"][str(max(SIZES))]
    stub = result.get("latency_only_stub") or {}
    cpu_ms = big.get("server_cpu_ms_per_call")
    if cpu_ms is None or "server_cpu_ms_per_call" not in stub:
        return []
    size, latency, concurrency = max(SIZES), result["latency_ms"], result["concurrency"]
    latency_floor = size * latency / 1000 / concurrency
    gil_seconds = size * cpu_ms / 1000
    text = (
        f"**Where the time goes**: the latency alone needs {size:,} x {latency} ms / "
        f"{concurrency} = {latency_floor:.2f} s. The sandbox (moto and the Cloud Control "
        f"endpoint in one Python process) spent {cpu_ms} ms of CPU per GetResource of a queue "
        "during the scan (the HTTP request, and the queue's attributes and tags read from moto's "
        "SQS backend); under one GIL that is "
        f"{gil_seconds:.2f} s of work that no concurrency overlaps, "
        f"{100 * gil_seconds / big['scan_seconds']:.0f}% of the scan's wall time. The scanner "
        f"used {big['scanner_cpu_seconds']} s of CPU in its own process. Against the "
        f"latency-only stub ({stub['server_cpu_ms_per_call']} ms of CPU per call) the same "
        f"scan took {stub['scan_seconds']} s: that is the client's share."
    )
    busy = gil_seconds + big["scanner_cpu_seconds"]
    cores = os.cpu_count() or 1
    text += (
        f" Together the two processes used {busy:.2f} s of CPU in {big['scan_seconds']} s, "
        f"{100 * busy / (cores * big['scan_seconds']):.0f}% of this machine's {cores} cores, "
        "which they also share with whatever else runs (see the load average above)."
    )
    over = big["scan_seconds"] - result["goal_seconds"]
    if over > 0:
        text += f" The scan missed the goal by {over:.2f} s."
    return ["", text]


def _stub_lines(result: dict[str, Any]) -> list[str]:
    stub = result.get("latency_only_stub")
    pooled = result.get("latency_only_stub_pooled")
    if not stub or not pooled:
        return []
    return [
        f"The same {stub['resources']:,}-resource scan against a latency-only stub (a Cloud "
        f"Control GetResource that only sleeps {result['latency_ms']} ms, no moto behind it):",
        "",
        "| Client | Scan (s) | Goal (s) | Stub CPU per call (ms) | Scanner CPU (s) | "
        "RSS growth (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {label} | {r['scan_seconds']} | {r['goal_seconds']} | "
            f"{r.get('server_cpu_ms_per_call', 'n/a')} | {r['scanner_cpu_seconds']} | "
            f"{r['rss_growth_mib']} |"
            for label, r in (
                ("as shipped (`backends.aws.client_config`)", stub),
                (f"max_pool_connections={pooled['max_pool_connections']} forced", pooled),
            )
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1] == "--stub":
        _serve_stub(int(sys.argv[2]))
    else:
        print(json.dumps(asyncio.run(_measure(Path(sys.argv[1])))))
