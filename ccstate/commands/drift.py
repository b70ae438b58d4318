"""``ccstate drift [ID] [--fix] [--exit-code] [--watch --interval 1h] [--concurrency N]``.

Compares the managed resources with AWS, records the scan in the state (one commit), shows
what drifted with its severity, and with ``--fix`` restores the recorded properties through the
token workflow (each fix recorded as ``remediate``). ``--exit-code`` works like
``terraform plan -detailed-exitcode``: 0 in sync, 2 drift found, 1 error or a check that could
not be made. ``--watch`` repeats the check every ``--interval`` until interrupted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ccstate.argtypes import duration, positive_int
from ccstate.context import CliContext
from ccstate.output import to_json_text
from ccstate.service.authz.principal import Principal
from ccstate.service.drift.detect import DriftDetector
from ccstate.service.drift.monitor import DriftRun, run_drift_check, run_drift_monitor
from ccstate.service.drift.remediate import DriftRemediator
from ccstate.service.errors import CcstateError, InvalidInput, NotFound
from ccstate.service.names import validate_identifier
from ccstate.service.state.model import CommitMeta
from ccstate.tables import short, when

EXIT_IN_SYNC = 0
EXIT_ERROR = 1
EXIT_DRIFT = 2
DEFAULT_CONCURRENCY = 16
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "Detect drift between the state and AWS, record it, and optionally fix it."
    parser = subparsers.add_parser(
        "drift",
        help=help_text,
        description=help_text + " Run 'ccstate drift <subcommand> --help' for each one.",
        parents=[common],
    )
    parser.add_argument(
        "identifier", nargs="?", metavar="ID", help="one resource (default: every one in state)"
    )
    parser.add_argument(
        "--fix",
        action="store_true",
        help="restore the recorded properties of drifted resources through the token workflow "
        "(explain, security scan, update), recorded as 'remediate'",
    )
    parser.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 2 when drift is found, 0 when in sync, 1 on errors "
        "(like terraform plan -detailed-exitcode)",
    )
    parser.add_argument(
        "--watch", action="store_true", help="check again every --interval until interrupted"
    )
    parser.add_argument(
        "--interval",
        type=duration,
        metavar="DURATION",
        help="time between checks with --watch: 90, 30s, 15m, 1h (default: the "
        "drift_check_interval setting, 1h)",
    )
    parser.add_argument(
        "--max-runs", type=positive_int, metavar="N", help="with --watch: stop after N checks"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"resources checked at the same time (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--reason", metavar="TEXT", help="why, recorded in the history")
    parser.set_defaults(handler=drift)


async def drift(ctx: CliContext) -> int:
    args = ctx.args
    if args.interval is not None and not args.watch:
        raise _usage("--interval only applies with --watch.", "Add --watch, or drop --interval.")
    try:
        async with _drift_parts(ctx) as (detector, fixer, meta):
            if args.watch:
                return await _watch(ctx, detector, fixer, meta)
            run = await _check_once(ctx, detector, fixer, meta)
    except CcstateError as err:
        if not args.exit_code:
            raise
        from ccstate.cli import report_error

        report_error(err, ctx.out.is_json)
        return EXIT_ERROR  # with --exit-code, 2 must mean "drift" and nothing else
    _show(ctx, run)
    return _exit_code(run, args.exit_code)


@dataclass(frozen=True)
class _Fixer:
    remediator: DriftRemediator | None
    principal: Principal


@asynccontextmanager
async def _drift_parts(
    ctx: CliContext,
) -> AsyncIterator[tuple[DriftDetector, _Fixer, CommitMeta]]:
    """What ``ccstate.app.open_drift`` wires: a scan builds no token service and no scanner;
    ``--fix`` adds the token workflow."""
    from ccstate.app import ServerOptions, open_drift

    options = ServerOptions(
        backend=getattr(ctx.args, "backend", None),
        workspace=getattr(ctx.args, "workspace", None),
        lock_timeout=getattr(ctx.args, "lock_timeout", None),
    )
    async with open_drift(options, fix=ctx.args.fix, concurrency=ctx.args.concurrency) as parts:
        principal = await parts.identify()
        meta = CommitMeta(
            principal=principal.to_record(),
            explanation="Drift check from the ccstate CLI.",
            user_intent=ctx.args.reason,
        )
        if ctx.args.watch and ctx.args.interval is None:
            ctx.args.interval = parts.settings.drift_check_interval
        yield parts.detector, _Fixer(parts.remediator, principal), meta


async def _check_once(
    ctx: CliContext, detector: DriftDetector, fixer: _Fixer, meta: CommitMeta
) -> DriftRun:
    wanted = await _wanted(ctx, detector)
    total = len(wanted) if wanted is not None else len((await detector.store.current()).resources)
    with ctx.out.progress(total, "Checking drift") as bar:
        shown = 0

        def on_progress(done: int, _total: int) -> None:
            nonlocal shown
            bar.advance(done - shown)
            shown = done

        return await run_drift_check(
            detector,
            meta,
            identifiers=wanted,
            remediator=fixer.remediator,
            auto_fix=ctx.args.fix,
            on_progress=on_progress,
            user_intent=ctx.args.reason or "",
            principal=fixer.principal,
        )


async def _wanted(ctx: CliContext, detector: DriftDetector) -> list[str] | None:
    if not ctx.args.identifier:
        return None
    identifier = validate_identifier(ctx.args.identifier)
    if await detector.store.get_resource(identifier) is None:
        raise NotFound(
            f"{identifier} is not in the state of workspace '{detector.store.workspace}'.",
            next_step="List the managed resources with `ccstate state list`.",
        )
    return [identifier]


async def _watch(ctx: CliContext, detector: DriftDetector, fixer: _Fixer, meta: CommitMeta) -> int:
    wanted = await _wanted(ctx, detector)
    last: list[int] = []

    def on_run(run: DriftRun | None, error: CcstateError | None) -> None:
        if run is None:
            ctx.out.note(f"Drift check failed: {error}")
            last.append(EXIT_ERROR)
            return
        _show(ctx, run)
        last.append(_exit_code(run, True))

    ctx.out.note(
        f"Checking drift every {ctx.args.interval:g} s; every check is recorded. Ctrl-C stops."
    )
    await run_drift_monitor(
        detector,
        interval=ctx.args.interval,
        meta=meta,
        identifiers=wanted,
        remediator=fixer.remediator,
        auto_fix=ctx.args.fix,
        on_run=on_run,
        max_runs=ctx.args.max_runs,
        principal=fixer.principal,
    )
    return last[-1] if ctx.args.exit_code and last else EXIT_IN_SYNC


def _exit_code(run: DriftRun, detailed: bool) -> int:
    if not detailed:
        return EXIT_IN_SYNC
    if run.failed:
        return EXIT_ERROR
    return EXIT_DRIFT if run.remaining_drift else EXIT_IN_SYNC


# ====================================================================== output


def _show(ctx: CliContext, run: DriftRun) -> None:
    data = run.to_dict()
    if ctx.args.watch and ctx.out.is_json:
        ctx.out.write_text(to_json_text(data).replace("\n", "") + "\n")  # one line per check
        return
    ctx.out.emit(data, lambda console: render_drift(console, data))


def render_drift(console: Console, data: dict[str, Any]) -> None:
    counts = data["counts"]
    checked = sum(counts.values()) - counts["NOT_CHECKED"]
    serial = data["recorded_serial"]
    console.print(
        f"{when(data['finished_at'])}  checked {checked} resource(s): "
        f"{counts['IN_SYNC']} in sync, {counts['MODIFIED']} modified, "
        f"{counts['DELETED']} deleted, {counts['FAILED']} failed"
        + (f"; recorded at serial {serial}" if serial is not None else "")
    )
    if data.get("stopped_reason"):
        console.print(f"[bold red]The scan {data['stopped_reason']}.[/bold red]")
    shown = [r for r in data["resources"] if r["status"] != "IN_SYNC"]
    if shown:
        console.print(_resources_table(shown))
    for res in shown:
        if res.get("differences"):
            console.print(_differences_table(res))
    if data["fixes"]:
        console.print(_fixes_table(data["fixes"]))


def _resources_table(resources: list[dict[str, Any]]) -> Table:
    table = Table(title="Not in sync", title_justify="left")
    for column in ("Identifier", "Type", "Status", "Severity", "Detail"):
        table.add_column(column, overflow="fold")
    for res in resources:
        detail = (res.get("error") or {}).get("message") or res.get("reason") or ""
        if res.get("differences"):
            detail = f"{len(res['differences'])} difference(s)"
        table.add_row(
            Text(res["identifier"]),
            res["resource_type"],
            res["status"],
            _severity(res.get("max_severity")),
            Text(short(detail, 100)),
        )
    return table


def _differences_table(res: dict[str, Any]) -> Table:
    table = Table(title=Text(f"{res['identifier']} ({res['resource_type']})"), title_justify="left")
    for column in ("Property", "Change", "Severity", "Recorded", "Actual"):
        table.add_column(column, overflow="fold")
    for d in res["differences"]:
        table.add_row(
            Text(d["PropertyPath"]),
            d["DifferenceType"],
            _severity(d["Severity"]),
            Text(_compact(d["ExpectedValue"])),
            Text(_compact(d["ActualValue"])),
        )
    return table


def _fixes_table(fixes: list[dict[str, Any]]) -> Table:
    table = Table(title="Remediation", title_justify="left")
    for column in ("Identifier", "Result", "Serial", "Reason"):
        table.add_column(column, overflow="fold")
    for fix in fixes:
        serial = fix.get("state_serial")
        table.add_row(
            Text(fix["identifier"]),
            fix["status"],
            "" if serial is None else str(serial),
            Text(short(fix["reason"], 100)),
        )
    return table


def _compact(value: Any) -> str:
    return short(json.dumps(value, sort_keys=True, default=str), 80)


def _severity(severity: str | None) -> Text:
    return Text(severity or "", style=SEVERITY_STYLE.get(severity or "", ""))


# ====================================================================== arguments


def _usage(message: str, next_step: str) -> CcstateError:
    return InvalidInput(message, next_step=next_step)
