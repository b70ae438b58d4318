"""``ccstate sandbox``: run the offline AWS (moto + a Cloud Control endpoint) on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import inspect

from ccstate.context import CliContext


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="Run the offline AWS sandbox (moto + Cloud Control) on 127.0.0.1.",
        description="Run the offline AWS sandbox on 127.0.0.1 until interrupted. It is a test "
        "double for AWS, never the production path.",
        parents=[common],
    )
    parser.add_argument(
        "--port", type=port_number, default=None, help="port on 127.0.0.1 (default or 0: any free)"
    )
    parser.add_argument(
        "--latency-ms",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="add N milliseconds to each request, to make timings realistic",
    )
    parser.set_defaults(handler=run_sandbox)


def run_sandbox(ctx: CliContext) -> int | None:
    """A plain function: the sandbox runs its own servers and event loop."""
    from ccstate.sandbox.cli import run  # imported late: it pulls in moto

    result = run(ctx.args.port, ctx.args.latency_ms)
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    return result if isinstance(result, int) else None


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def port_number(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("ports go up to 65535")
    return value
