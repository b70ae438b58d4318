"""``ccstate rollback ID --to TOKEN [--before] [--allow-replacement] [--accept-loss P]
[--plan] [--plan-digest D]``.

Brings one resource back to its recorded properties right after (``--before``: right before)
the change TOKEN authorized, through the token workflow (explain, security scan, act), recorded
as operation 'rollback'. ``--plan`` shows the plan and changes nothing; ``--plan-digest`` acts
only if the plan is still the one shown. Docs: docs/rollback.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from ccstate.context import CliContext
from ccstate.service.changes.rollback import RollbackOutcome, RollbackPlan

ACTION_STYLE = {
    "patch": "yellow",
    "replace": "bold red",
    "unrecoverable": "red",
    "create": "green",
    "ignored": "dim",
    "unchanged": "dim",
}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "Roll one resource back to what a past change (by its token) left or found."
    parser = subparsers.add_parser(
        "rollback", help=help_text, description=help_text,
        parents=[common],
    )  # fmt: skip
    parser.add_argument("identifier", metavar="ID", help="the resource's identifier")
    parser.add_argument(
        "--to",
        required=True,
        metavar="TOKEN",
        help="the change's execution token, or its 'sha256:...' from `ccstate state history`",
    )
    parser.add_argument(
        "--before", action="store_true", help="restore what the change found, not what it left"
    )
    parser.add_argument(
        "--allow-replacement",
        action="store_true",
        help="accept deleting and re-creating the resource when create-only values differ",
    )
    parser.add_argument(
        "--accept-loss",
        action="append",
        default=[],
        metavar="PROPERTY",
        help="a write-only or secret property you accept not restoring (repeatable)",
    )
    parser.add_argument("--plan", action="store_true", help="show the plan; change nothing")
    parser.add_argument(
        "--plan-digest", default="", metavar="D", help="act only if the plan is still this one"
    )
    parser.add_argument("--reason", metavar="TEXT", help="why, recorded in the history")
    parser.set_defaults(handler=rollback)


async def rollback(ctx: CliContext) -> int:
    from ccstate.app import ServerOptions, open_changes

    args = ctx.args
    to = "before" if args.before else "after"
    options = ServerOptions(
        backend=getattr(args, "backend", None),
        workspace=getattr(args, "workspace", None),
        lock_timeout=getattr(args, "lock_timeout", None),
    )
    async with open_changes(options) as parts:
        if args.plan:
            plan = await parts.rollbacks.plan(args.identifier, args.to, to)
            ctx.out.emit(plan.to_dict(), lambda console: show_plan(console, plan))
            return 0
        done = await parts.rollbacks.rollback(
            await parts.identify(),
            args.identifier,
            args.to,
            to,
            allow_replacement=args.allow_replacement,
            accept_loss=args.accept_loss,
            plan_digest=args.plan_digest,
            user_intent=args.reason or "",
        )
    ctx.out.emit(done.to_dict(), lambda console: show_outcome(console, done))
    return 0 if done.status != "REFUSED" else 1


def show_plan(console: Console, plan: RollbackPlan) -> None:
    console.print(plan.summary(), markup=False)
    table = Table("property", "action", "why", "recorded", "live")
    for prop in plan.properties:
        style = ACTION_STYLE.get(prop.action, "")
        table.add_row(
            prop.name, f"[{style}]{prop.action}[/]", prop.reason, _short(prop.target),
            _short(prop.live),
        )  # fmt: skip
    console.print(table)
    console.print(f"plan digest: {plan.digest}", markup=False)


def show_outcome(console: Console, done: RollbackOutcome) -> None:
    show_plan(console, done.plan)
    if done.status == "DONE":
        console.print(
            f"Rolled back {done.identifier} (recorded as 'rollback'). To undo: ccstate rollback "
            f"{done.identifier} --to {done.execution_token} --before",
            markup=False,
        )
    else:
        console.print(f"{done.status}: {done.reason}", markup=False)


def _short(value: Any, limit: int = 40) -> str:
    import json

    text = "" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
