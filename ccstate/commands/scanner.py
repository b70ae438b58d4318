"""``ccstate scanner ...``: install checkov in a virtualenv of its own, and show which checkov
ccstate scans with."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ccstate.commands import add_group
from ccstate.context import CliContext


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    scanner = add_group(subparsers, "scanner", "Install and check the security scanner (checkov).")
    install = scanner.add_parser(
        "install",
        help="Install checkov in its own virtualenv (default $CCSTATE_HOME/scanner).",
        description="Install checkov in a virtualenv of its own, where ccstate finds it: "
        "$CCSTATE_HOME/scanner, default ~/.aws/ccapi-mcp-server/scanner. checkov pins older "
        "versions of packages ccstate uses, so it must not share ccstate's environment. Safe "
        "to run again.",
        parents=[common],
    )
    install.add_argument("--target", type=Path, metavar="DIR", help="virtualenv to create")
    install.set_defaults(handler=install_scanner)
    status = scanner.add_parser(
        "status",
        help="Show which checkov ccstate scans with, and time one scan.",
        description="Find checkov as the MCP server does and run one scan of a sample bucket "
        "through the scan worker (the first scan includes checkov's start-up).",
        parents=[common],
    )
    status.set_defaults(handler=scanner_status)


def install_scanner(ctx: CliContext) -> int:
    from ccstate.backends.checkov_scanner import CHECKOV_REQUIREMENT, install_scanner, scanner_home

    target = ctx.args.target or scanner_home()
    ctx.out.note(f"Installing {CHECKOV_REQUIREMENT} into {target} (a few minutes)...")
    found = install_scanner(target)
    data = {"installed": CHECKOV_REQUIREMENT, "virtualenv": str(target), "python": found.python}
    ctx.out.emit(data, lambda console: console.print(f"checkov is ready in {target}."))
    return 0


def scanner_status(ctx: CliContext) -> int:
    return asyncio.run(_status(ctx))


async def _status(ctx: CliContext) -> int:
    import time

    from ccstate.backends.checkov_scanner import CheckovScanner, locate_checkov

    found = locate_checkov()
    data: dict[str, Any] = {"found": found is not None}
    if found is None:
        data["next_step"] = "Run `ccstate scanner install`."
    else:
        scanner = CheckovScanner()
        try:
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                result = await scanner.scan("AWS::S3::Bucket", {"BucketName": "sample"})
                timings.append(round(time.perf_counter() - started, 3))
        finally:
            await scanner.close()
        data.update(
            location=found.location,
            mode="worker" if found.python else "one process per scan",
            scanner=result.scanner,
            sample_scan=result.status,
            cold_seconds=timings[0],
            warm_seconds=timings[1],
        )
    ctx.out.emit(data, lambda console: _render(console, data))
    return 0 if found is not None and data["sample_scan"] != "UNAVAILABLE" else 1


def _render(console: Any, data: dict[str, Any]) -> None:
    if not data["found"]:
        console.print("checkov is not installed. Next: run `ccstate scanner install`.")
        return
    console.print(f"{data['scanner'] or 'checkov'} at {data['location']} ({data['mode']})")
    console.print(
        f"sample scan: {data['sample_scan']}; first {data['cold_seconds']} s, "
        f"then {data['warm_seconds']} s",
        markup=False,
    )
