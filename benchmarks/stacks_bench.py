"""Stacks: a 50-resource stack of 10 independent chains of 5 SQS queues on the sandbox with
200 ms latency per Cloud Control call, deployed by the DAG scheduler, against its critical
path (one chain of 5 deployed alone) and against one resource at a time (what `rain cc
deploy` and the seed's sequential design do). Goal: <= 1.15x the critical path."""

from __future__ import annotations

import asyncio
import os
import socket
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


def chains(prefix: str, chains: int, length: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in range(chains):
        for k in range(length):
            props: dict[str, Any] = {"QueueName": f"{prefix}-c{c}-q{k}"}
            if k:
                props["Tags"] = [{"Key": "after", "Value": {"Ref": f"C{c}Q{k - 1}"}}]
            out[f"C{c}Q{k}"] = {"Type": "AWS::SQS::Queue", "Properties": props}
    return out


async def _deploy(resources: dict[str, Any], concurrency: int) -> float:
    from ccstate.app import ServerOptions, open_stacks

    async with open_stacks(ServerOptions(env=dict(os.environ)), concurrency=concurrency) as parts:
        principal = await parts.identify()
        name = f"b{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        result = await parts.stacks.create(principal, name, resources, "benchmark")
        took = time.perf_counter() - start
        assert result.status == "CREATE_COMPLETE", result.reason
        await parts.stacks.destroy(principal, name)
        return took


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

            def timed(chain_count: int, concurrency: int) -> float:
                stack = chains(uuid.uuid4().hex[:6], chain_count, LENGTH)
                return round(asyncio.run(_deploy(stack, concurrency)), 2)

            critical = timed(1, 1)  # one chain alone: the critical path
            parallel = timed(CHAINS, CHAINS * 2)
            sequential = timed(CHAINS, 1)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    return {
        "resources": CHAINS * LENGTH,
        "chains": CHAINS,
        "chain_length": LENGTH,
        "latency_ms": LATENCY_MS,
        "critical_path_s": critical,
        "parallel_s": parallel,
        "sequential_s": sequential,
        "ratio_to_critical_path": round(parallel / critical, 3),
        "goal_ratio": GOAL,
        "per_resource_s": round(critical / LENGTH, 2),
    }


def markdown(result: dict[str, Any]) -> str:
    ratio = result["ratio_to_critical_path"]
    verdict = "met" if ratio <= result["goal_ratio"] else "**not met**"
    return "\n".join(
        [
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
            f"Goal <= {result['goal_ratio']}x the critical path: {verdict}. One resource costs "
            f"{result['per_resource_s']} s here (create, status polls, read-back).",
        ]
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
