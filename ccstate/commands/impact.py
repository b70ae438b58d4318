"""``ccstate impact ID --type TYPE (--patch JSON | --delete)``,
``ccstate impact --type TYPE --create JSON``, ``ccstate impact --token TOKEN``.

What a change would do before it is made: per property update or replace (create-only), the
dependents it breaks (direct and transitive), the drift it overwrites, its stacks, the scan
delta, and a risk level with reasons, bound to a plan digest. Docs: docs/rollback.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ccstate.context import CliContext
from ccstate.service.changes.impact import ImpactReport
from ccstate.service.errors import InvalidInput

RISK_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "Analyse a change before making it: replacements, broken dependents, risk."
    parser = subparsers.add_parser(
        "impact", help=help_text, description=help_text,
        parents=[common],
    )  # fmt: skip
    parser.add_argument("identifier", nargs="?", metavar="ID", help="the resource (update/delete)")
    parser.add_argument("--type", dest="resource_type", metavar="TYPE", help="e.g. AWS::S3::Bucket")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--patch", metavar="JSON|@FILE", help="an update: the RFC 6902 patch")
    what.add_argument("--create", metavar="JSON|@FILE", help="a create: the properties")
    what.add_argument("--delete", action="store_true", help="a delete")
    what.add_argument("--token", metavar="TOKEN", help="a generated_code or explained token")
    parser.set_defaults(handler=impact)


async def impact(ctx: CliContext) -> int:
    from ccstate.app import ServerOptions, open_changes

    args = ctx.args
    options = ServerOptions(
        backend=getattr(args, "backend", None), workspace=getattr(args, "workspace", None)
    )
    async with open_changes(options) as parts:
        if args.token:
            report = await parts.impact.analyze_token(await parts.identify(), args.token)
        else:
            report = await parts.impact.analyze(**_proposal(args))
    ctx.out.emit(report.to_dict(), lambda console: show(console, report))
    return 0


def _proposal(args: argparse.Namespace) -> dict[str, Any]:
    if not args.resource_type:
        raise InvalidInput("--type is needed without --token.", next_step="Add --type TYPE.")
    if args.create:
        return {"operation": "create", "resource_type": args.resource_type,
                "properties": _json(args.create, "--create")}  # fmt: skip
    if not args.identifier:
        raise InvalidInput("An update or delete needs the resource's ID.", next_step="Add ID.")
    if args.delete:
        return {"operation": "delete", "resource_type": args.resource_type,
                "identifier": args.identifier}  # fmt: skip
    return {"operation": "update", "resource_type": args.resource_type,
            "identifier": args.identifier, "patch": _json(args.patch, "--patch")}  # fmt: skip


def _json(text: str, flag: str) -> Any:
    try:
        return json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"{flag} is not valid JSON or a readable @file: {exc}.",
            next_step=f"Pass {flag} '<json>' or {flag} @file.json.",
        ) from exc


def show(console: Console, report: ImpactReport) -> None:
    style = RISK_STYLE[report.risk]
    console.print(
        f"{report.operation} {report.resource_type} '{report.identifier or '(new)'}': "
        f"[bold]{report.verdict}[/], risk [{style}]{report.risk}[/]"
    )
    for reason in report.reasons:
        console.print(f"  - {reason}", markup=False)
    if report.properties:
        table = Table("property", "verdict", "why")
        for prop in report.properties:
            table.add_row(prop.name, prop.verdict, prop.reason)
        console.print(table)
    if report.dependents:
        table = Table("dependent", "type", "depth", "via", "breaks", "why")
        for d in report.dependents:
            table.add_row(
                d.identifier, d.resource_type, str(d.depth), d.via, "yes" if d.breaks else "no",
                d.reason,
            )  # fmt: skip
        console.print(table)
    console.print(f"plan digest: {report.plan_digest}", markup=False)
