"""Security scan scenario: checkov on a one-resource template, three ways.

- ``checkov -f template`` once per scan, as the AWS Labs Cloud Control MCP server runs it (it
  passes neither ``--skip-download`` nor a quiet flag; measured at 15-17 s per scan there);
- the same with ``--skip-download`` (ccstate's fallback for a checkov it cannot run as a
  worker);
- ccstate's scan worker (``backends/checkov_worker.py``): cold is a new worker's first scan,
  checkov's import included; warm is every scan after it. Goal: a warm scan <= 1 s.

Uses the checkov that ccstate finds (``make install`` puts it in ``.venv-checkov``).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "scan"
TITLE = "Security scan: checkov per process vs ccstate's long-lived checkov worker"
ONE_SHOT_RUNS = 3
WARM_SCANS = 20
GOAL_WARM_SECONDS = 1.0
BUCKET = {"BucketName": "bench-bucket", "VersioningConfiguration": {"Status": "Enabled"}}


def run() -> dict[str, Any]:
    from ccstate.backends.checkov_scanner import locate_checkov, template_for

    found = locate_checkov()
    if found is None:
        raise SystemExit("no checkov found: run `make install` or `ccstate scanner install`")
    checkov = str(Path(found.python).with_name("checkov")) if found.python else found.command[0]
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.json"
        template.write_text(json.dumps(template_for("AWS::S3::Bucket", BUCKET)))
        plain = [_one_shot(checkov, template, []) for _ in range(ONE_SHOT_RUNS)]
        skip = [_one_shot(checkov, template, ["--skip-download", "--quiet"]) for _ in range(3)]
    cold, warm = asyncio.run(_worker_timings())
    return {
        "checkov": checkov,
        "one_shot_plain_seconds": plain,
        "one_shot_skip_download_seconds": skip,
        "worker_cold_seconds": cold,
        "worker_warm_seconds": {
            "runs": len(warm),
            "median": round(statistics.median(warm), 3),
            "p95": round(sorted(warm)[int(len(warm) * 0.95) - 1], 3),
            "max": round(max(warm), 3),
        },
        "goal_warm_seconds": GOAL_WARM_SECONDS,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def _one_shot(checkov: str, template: Path, extra: list[str]) -> float:
    args = [checkov, "-f", str(template), "--framework", "cloudformation", "-o", "json", *extra]
    started = time.perf_counter()
    subprocess.run(args, capture_output=True, check=False, timeout=600)
    return round(time.perf_counter() - started, 2)


async def _worker_timings() -> tuple[float, list[float]]:
    from ccstate.backends.checkov_scanner import CheckovScanner

    scanner = CheckovScanner()
    try:
        started = time.perf_counter()
        first = await scanner.scan("AWS::S3::Bucket", BUCKET)
        cold = round(time.perf_counter() - started, 2)
        assert first.status in {"PASSED", "FAILED"}, first
        warm = []
        for _ in range(WARM_SCANS):
            started = time.perf_counter()
            await scanner.scan("AWS::S3::Bucket", BUCKET)
            warm.append(time.perf_counter() - started)
    finally:
        await scanner.close()
    return cold, warm


def markdown(result: dict[str, Any]) -> str:
    warm = result["worker_warm_seconds"]
    verdict = "met" if warm["max"] <= result["goal_warm_seconds"] else "**missed**"
    plain = result["one_shot_plain_seconds"]
    skip = result["one_shot_skip_download_seconds"]
    return "\n".join(
        [
            f"One S3 bucket, checkov at `{result['checkov']}`. Goal: a warm scan <= "
            f"{result['goal_warm_seconds']} s: {verdict} (slowest of {warm['runs']}: "
            f"{warm['max']} s).",
            "",
            "| Way | Seconds per scan |",
            "|---|---:|",
            f"| `checkov -f` per scan, as the AWS Labs server runs it | "
            f"{min(plain)}-{max(plain)} |",
            f"| `checkov -f --skip-download --quiet` per scan | {min(skip)}-{max(skip)} |",
            f"| ccstate worker, cold (first scan, checkov's import included) | "
            f"{result['worker_cold_seconds']} |",
            f"| ccstate worker, warm (median / p95 / max of {warm['runs']}) | "
            f"{warm['median']} / {warm['p95']} / {warm['max']} |",
            "",
            f"Load average after the runs: {result['load_average_1m_after']} (the machine is "
            "shared; one-shot times grow with load, since each run imports checkov again).",
        ]
    )
