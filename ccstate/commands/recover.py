"""``ccstate recover``: record the outcome of changes that were interrupted.

A create, update or delete whose server was killed, whose client went away or whose Cloud
Control request outlived the wait leaves an intent open in the backend. This command settles
each one under its resource's lock, from Cloud Control's request status (or a read of the
resource), and commits what happened: the same lineage entry the change would have written,
marked as reconciled. Progress goes to stderr; the result to stdout (``--output json``).

Exit codes: 0 when no intent is left open, 10 when some are (still in progress at Cloud
Control, their lock held by a live change, or ambiguous), otherwise the usual error codes.
"""

from __future__ import annotations

import argparse
from typing import Any

from ccstate.context import CliContext

EXIT_LEFT_OPEN = 10
DEFAULT_WAIT = 60.0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="Record the outcome of interrupted changes.",
        description="Find the outcome of every change that was interrupted (server killed, "
        "client gone, request still running) from Cloud Control, and record it in the state.",
        parents=[common],
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for a request still in progress (default {DEFAULT_WAIT:.0f})",
    )
    parser.set_defaults(handler=recover)


async def recover(ctx: CliContext) -> int:
    from ccstate.app import ServerOptions, open_recovery

    options = ServerOptions(
        backend=getattr(ctx.args, "backend", None),
        workspace=getattr(ctx.args, "workspace", None),
        lock_timeout=getattr(ctx.args, "lock_timeout", None),
    )
    lock_timeout = getattr(ctx.args, "lock_timeout", None)
    async with open_recovery(options, wait=ctx.args.wait) as reconciler:
        settled = await reconciler.recover(
            trigger="ccstate recover",
            lock_timeout=float(lock_timeout) if lock_timeout else None,
            progress=lambda intent, result: _progress(ctx, intent, result),
        )
    rows = [item.to_dict() for item in settled]
    left = [row for row in rows if not row["settled"]]
    data = {
        "workspace": ctx.workspace,
        "intents": rows,
        "settled": len(rows) - len(left),
        "open": len(left),
    }
    ctx.out.emit(data, lambda console: _render(console, data))
    return EXIT_LEFT_OPEN if left else 0


def _progress(ctx: CliContext, intent: Any, result: Any) -> None:
    if result is None:
        token = f", request {intent.request_token}" if intent.request_token else ""
        ctx.out.note(f"settling the {intent.describe()} begun {intent.created_at}{token} ...")
        return
    serial = f" at serial {result.serial}" if result.serial else ""
    outcome = f" {result.outcome}" if result.outcome else ""
    ctx.out.note(f"  {result.result}{outcome}{serial}: {result.message}")


def _render(console: Any, data: dict[str, Any]) -> None:
    if not data["intents"]:
        console.print(f"No interrupted change in workspace '{data['workspace']}'.")
        return
    from rich.table import Table

    table = Table(title=f"Interrupted changes in workspace '{data['workspace']}'")
    for column in ("operation", "type", "identifier", "result", "outcome", "serial"):
        table.add_column(column)
    for row in data["intents"]:
        table.add_row(
            row["operation"],
            row["resource_type"],
            row["identifier"] or "-",
            row["result"],
            row["outcome"] or "-",
            str(row["serial"] or "-"),
        )
    console.print(table)
    console.print(f"{data['settled']} settled, {data['open']} still open.")
