"""``ccstate backend bootstrap`` (also ``ccstate bootstrap``): create or bring up to standard the
team backend's S3 bucket, DynamoDB lock table and KMS key. Safe to run again: a second run changes
nothing and says so."""

from __future__ import annotations

import argparse
from typing import Any

from ccstate.commands import add_group
from ccstate.context import CliContext
from ccstate.service.errors import InvalidInput

BOOTSTRAP_HELP = "Create or check the S3 bucket, DynamoDB lock table and KMS key (idempotent)."


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    backend = add_group(subparsers, "backend", "Set up the team backend (S3, DynamoDB, KMS).")
    add_bootstrap_parser(backend, common, BOOTSTRAP_HELP)
    add_bootstrap_parser(subparsers, common, "Same as `ccstate backend bootstrap`.")


def add_bootstrap_parser(
    subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser, help_text: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bootstrap",
        help=help_text,
        description=BOOTSTRAP_HELP + " The same resources as the CloudFormation template that "
        "--print-template prints (for teams that deploy with CloudFormation).",
        parents=[common],
    )
    parser.add_argument("--bucket", help="state bucket name (created if missing); required")
    parser.add_argument("--table", help="DynamoDB lock table (created if missing); required")
    parser.add_argument(
        "--print-template",
        action="store_true",
        help="print the CloudFormation template of the same backend (with a least-privilege "
        "IAM policy) and exit; nothing is created",
    )
    parser.add_argument(
        "--kms-key",
        metavar="KEY",
        help="existing KMS key id, ARN or alias; default: create alias/ccstate/<bucket>",
    )
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    parser.add_argument(
        "--noncurrent-days",
        type=_positive_days,
        default=90,
        metavar="DAYS",
        help="keep old object versions this many days (default 90)",
    )
    parser.set_defaults(handler=bootstrap_backend)
    return parser


def _positive_days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return value


async def bootstrap_backend(ctx: CliContext) -> None:
    args = ctx.args
    if args.print_template:
        from ccstate.infra import state_backend_template

        ctx.out.write_text(state_backend_template())
        return
    missing = [f"--{name}" for name in ("bucket", "table") if not getattr(args, name)]
    if missing:
        raise InvalidInput(
            f"ccstate bootstrap needs {' and '.join(missing)}.",
            next_step="Run `ccstate bootstrap --bucket NAME --table NAME`, or deploy the "
            "CloudFormation template from `ccstate bootstrap --print-template`.",
        )
    from ccstate.backends.bootstrap import bootstrap  # imported late: it pulls in the AWS SDK

    report = await bootstrap(
        args.bucket,
        args.table,
        args.kms_key,
        args.region,
        noncurrent_days=args.noncurrent_days,
    )
    ctx.out.emit(report, lambda console: render_report(console, report))


def render_report(console: Any, report: dict[str, Any]) -> None:
    console.print(report["summary"], markup=False)
    if report["changes"]:
        console.print("Changed:")
        for line in report["changes"]:
            console.print(f"  + {line}", markup=False)
    if report["unchanged"]:
        console.print("Already right:", style="dim")
        for line in report["unchanged"]:
            console.print(f"  = {line}", markup=False, style="dim")
    console.print("Use this backend (add a prefix after the bucket to share one bucket):")
    console.print(f"  export CCSTATE_BACKEND='{report['backend_url']}'", markup=False)
