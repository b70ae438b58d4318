"""Stacks: a 50-resource stack of 10 independent chains of 5 SQS queues on the sandbox with
200 ms latency per Cloud Control call, deployed by the DAG scheduler, against its critical
path (one chain of 5 deployed alone) and against one resource at a time (what `rain cc
deploy` and the seed's sequential design do). Goal: <= 1.15x the critical path.

The critical path and the parallel deploy are measured in ``ROUNDS`` back-to-back pairs and
the ratio is the median of the pairs' ratios: on a shared machine a single pair measures the
neighbours' load as much as ours (the load average is reported with the result)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

NAME = "stacks"
TITLE = "Stacks: 50 resources, 10 chains, 200 ms per Cloud Control call"
LATENCY_MS = 200
CHAINS, LENGTH = 10, 5
GOAL = 1.15
ROUNDS = 3
CALLS_PER_RESOURCE = 3  # create, one status poll, the read-back: the chain's floor


def chains(prefix: str, chains: int, length: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in range(chains):
        for k in range(length):
            props: dict[str, Any] = {"QueueName": f"{prefix}-c{c}-q{k}"}
            if k:
                props["Tags"] = [{"Key": "after", "Value": {"Ref": f"C{c}Q{k - 1}"}}]
            out[f"C{c}Q{k}"] = {"Type": "AWS::SQS::Queue", "Properties": props}
    return out


async def _deploy(resources: dict[str, Any], concurrency: int) -> tuple[float, float]:
    """Seconds the create took, and the CPU seconds this process spent on it."""
    from ccstate.app import ServerOptions, open_stacks

    async with open_stacks(ServerOptions(env=dict(os.environ)), concurrency=concurrency) as parts:
        principal = await parts.identify()
        name = f"b{uuid.uuid4().hex[:8]}"
        cpu, start = time.process_time(), time.perf_counter()
        result = await parts.stacks.create(principal, name, resources, "benchmark")
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert result.status == "CREATE_COMPLETE", result.reason
        await parts.stacks.destroy(principal, name)
        return took, cpu


def run() -> dict[str, Any]:
    # The sandbox runs in a process of its own, as AWS would: moto's work does not take this
    # process's interpreter lock.
    from benchmarks.drift_bench import _wait_until_up

    port = _free_port()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccstate.sandbox",
            "--port",
            str(port),
            "--latency-ms",
            str(LATENCY_MS),
        ],
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(
                {
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "SECURITY_SCANNING": "disabled",
                    "CCSTATE_BACKEND": (Path(tmp) / "state").as_uri(),
                }
            )

            def timed(chain_count: int, concurrency: int) -> tuple[float, float]:
                stack = chains(uuid.uuid4().hex[:6], chain_count, LENGTH)
                took, cpu = asyncio.run(_deploy(stack, concurrency))
                return round(took, 2), cpu

            load_before = os.getloadavg()[0]
            timed(1, 1)  # warm-up: schemas, connections, the state's first commits
            pairs, cpu = [], []
            for _ in range(ROUNDS):
                critical = timed(1, 1)[0]  # one chain alone: the critical path
                parallel, spent = timed(CHAINS, CHAINS * 2)
                pairs.append((critical, parallel))
                cpu.append(spent)
            sequential = timed(CHAINS, 1)[0]
            load_after = os.getloadavg()[0]
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    ratios = [round(p / c, 3) for c, p in pairs]
    critical = statistics.median(c for c, _ in pairs)
    return {
        "resources": CHAINS * LENGTH,
        "chains": CHAINS,
        "chain_length": LENGTH,
        "latency_ms": LATENCY_MS,
        "rounds": ROUNDS,
        "critical_path_s": critical,
        "parallel_s": statistics.median(p for _, p in pairs),
        "sequential_s": sequential,
        "pairs_s": pairs,
        "ratios": ratios,
        "ratio_to_critical_path": statistics.median(ratios),
        "goal_ratio": GOAL,
        "per_resource_s": round(critical / LENGTH, 2),
        "cloud_floor_s": round(LENGTH * CALLS_PER_RESOURCE * LATENCY_MS / 1000, 2),
        "cpu_ms_per_resource": round(1000 * statistics.median(cpu) / (CHAINS * LENGTH), 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }


def markdown(result: dict[str, Any]) -> str:
    ratio = result["ratio_to_critical_path"]
    verdict = "met" if ratio <= result["goal_ratio"] else "**not met**"
    lines = [
        f"{result['resources']} SQS queues in {result['chains']} independent chains of "
        f"{result['chain_length']} (each queue names the one before it), on the sandbox "
        f"with {result['latency_ms']} ms added to every Cloud Control call; each resource "
        "goes through the whole token workflow and its own lineage entry.",
        "",
        "| deployment | seconds | vs critical path |",
        "|---|---:|---:|",
        f"| critical path (one chain of {result['chain_length']} alone) | "
        f"{result['critical_path_s']} | 1.00x |",
        f"| DAG scheduler, all {result['resources']} | {result['parallel_s']} | {ratio:.2f}x |",
        f"| one resource at a time (rain cc deploy, the seed) | {result['sequential_s']} | "
        f"{result['sequential_s'] / result['critical_path_s']:.2f}x |",
        "",
    ]
    if "ratios" in result:  # reports written before the rounds had one pair
        ratios = ", ".join(f"{r:.2f}x" for r in result["ratios"])
        before, after = result["load_average"]
        lines += [
            f"Median of {result['rounds']} back-to-back pairs (critical path, then all "
            f"{result['resources']}); the pairs' ratios: {ratios}. Load average {before} "
            f"before, {after} after, on {os.cpu_count()} cores. The parallel deploy spends "
            f"{result['cpu_ms_per_resource']} ms of this process's CPU per resource; the "
            f"Cloud Control calls alone put the chain at {result['cloud_floor_s']} s.",
            "",
        ]
    lines.append(
        f"Goal <= {result['goal_ratio']}x the critical path: {verdict}. One resource costs "
        f"{result['per_resource_s']} s here (create, status polls, read-back)."
    )
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
