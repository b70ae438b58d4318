"""``make demo``: the state store on a temporary local backend, step by step.

Records a few changes through the service API (what the MCP server does after each Cloud Control
operation), then reads them back with the real ``ccstate`` CLI: versions, one resource's
history, a diff, a restore recorded as a new commit, and the readable state.json export.
Nothing touches AWS or your ~/.aws directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccstate.backends.config import load_settings
from ccstate.backends.factory import build_store, open_backend
from ccstate.demo_output import DemoPrinter
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "demo-app-logs"
QUEUE = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/demo-jobs"
LOG_GROUP = "/aws/lambda/demo-worker"
ALICE = Principal(user="alice", aws_session=f"arn:aws:iam::{ACCOUNT}:user/alice", host="laptop-a")
BOB = Principal(user="bob", aws_session=f"arn:aws:iam::{ACCOUNT}:user/bob", host="laptop-b")
SCAN_OK = {"passed": 8, "failed": 0, "critical_issues": []}


@dataclass
class Change:
    """One step of the story: who did what to which resource, and why."""

    who: Principal
    explanation: str
    intent: str
    change: ResourceChange


def story() -> list[Change]:
    bucket_v1 = {"BucketName": BUCKET, "Tags": [{"Key": "MANAGED_BY", "Value": "CCAPI-MCP-SERVER"}]}
    bucket_v2 = {
        **bucket_v1,
        "Tags": [{"Key": "Environment", "Value": "prod"}, *bucket_v1["Tags"]],
        "VersioningConfiguration": {"Status": "Enabled"},
    }
    queue = {"QueueName": "demo-jobs", "VisibilityTimeout": 60, "QueueUrl": QUEUE}
    logs = {"LogGroupName": LOG_GROUP, "RetentionInDays": 14}
    return [
        Change(
            ALICE,
            "Create an S3 bucket for application logs.",
            "Keep app logs for audits",
            _change(BUCKET, "AWS::S3::Bucket", "create", None, bucket_v1),
        ),
        Change(
            ALICE,
            "Create an SQS queue for background jobs.",
            "Decouple the worker",
            _change(QUEUE, "AWS::SQS::Queue", "create", None, queue),
        ),
        Change(
            BOB,
            "Tag the bucket as prod and enable versioning.",
            "Meet the compliance policy",
            _change(
                BUCKET,
                "AWS::S3::Bucket",
                "update",
                bucket_v1,
                bucket_v2,
                patch=[
                    {
                        "op": "add",
                        "path": "/Tags/0",
                        "value": {"Key": "Environment", "Value": "prod"},
                    },
                    {
                        "op": "add",
                        "path": "/VersioningConfiguration",
                        "value": {"Status": "Enabled"},
                    },
                ],
            ),
        ),
        Change(
            BOB,
            "Create the worker's log group with 14-day retention.",
            "Debug the worker",
            _change(LOG_GROUP, "AWS::Logs::LogGroup", "create", None, logs),
        ),
        Change(
            ALICE,
            "Shorten the queue's visibility timeout.",
            "Retry stuck jobs sooner",
            _failed(QUEUE, "AWS::SQS::Queue", queue),
        ),
        Change(
            ALICE,
            "Delete the job queue: the worker now uses EventBridge.",
            "Remove unused",
            _change(QUEUE, "AWS::SQS::Queue", "delete", queue, None),
        ),
    ]


def _change(
    identifier: str,
    type_name: str,
    operation: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    patch: list[dict[str, Any]] | None = None,
) -> ResourceChange:
    return ResourceChange(
        identifier=identifier,
        resource_type=type_name,
        operation=operation,
        region=REGION,
        account_id=ACCOUNT,
        properties_before=before,
        properties_after=after,
        patch_document=patch,
        checkov_results=SCAN_OK if operation != "delete" else None,
    )


def _failed(identifier: str, type_name: str, props: dict[str, Any]) -> ResourceChange:
    failed = _change(identifier, type_name, "update", props, props)
    failed.outcome = "FAILED"
    failed.error = {"code": "InvalidRequest", "message": "VisibilityTimeout must be >= 0"}
    return failed


async def record(store: StateStore, printer: DemoPrinter) -> None:
    for item in story():
        meta = CommitMeta(
            principal=item.who,
            execution_token=secrets.token_urlsafe(32),
            explanation=item.explanation,
            user_intent=item.intent,
        )
        commit = await store.commit([item.change], meta)
        outcome = "" if item.change.outcome == "SUCCESS" else "  (FAILED: recorded all the same)"
        printer.say(
            f"serial {commit.serial}: {item.who.user} {item.change.operation} "
            f"{item.change.identifier}{outcome}"
        )


async def record_story(backend_dir: Path, printer: DemoPrinter) -> Path | None:
    settings = load_settings({"backend": str(backend_dir), "workspace": "default"})
    backend = await open_backend(settings.backend_url, settings=settings)
    try:
        await record(build_store(backend, settings), printer)
        return Path(backend.export_path) if backend.export_path else None
    finally:
        await backend.close()


def run(backend_dir: Path, printer: DemoPrinter) -> int:
    printer.title("ccstate demo: a persistent, audited state for Cloud Control changes")
    printer.say(f"Temporary local backend: {backend_dir}")
    printer.say("(the CLI below finds it through CCSTATE_BACKEND)")
    os.environ["CCSTATE_BACKEND"] = str(backend_dir)
    os.environ["CCSTATE_WORKSPACE"] = "default"

    printer.step("Two people make six changes; each is one write-once commit in the log.")
    printer.say("This is what the MCP server records after each Cloud Control operation.")
    export_path = asyncio.run(record_story(backend_dir, printer))

    printer.step("Every version of the state, newest first: who, when, why.")
    printer.run_cli(["state", "versions"])

    printer.step("One resource's history, with the intent behind each change.")
    printer.run_cli(["state", "history", BUCKET])

    printer.step("What changed between serial 2 and now, resource by resource.")
    printer.run_cli(["state", "diff", "2", "6"])

    printer.step("Roll the state back to serial 3; the restore is itself a new commit.")
    printer.run_cli(["state", "restore", "3", "--reason", "The queue is still needed"])
    printer.run_cli(["state", "list"])
    printer.run_cli(["state", "versions", "--limit", "3"])

    printer.step("Any resource as it was at any serial; identifiers may contain '/'.")
    printer.run_cli(["state", "show", LOG_GROUP, "--at", "4"])

    printer.step("The same data for scripts: every command takes --output json.")
    printer.run_cli(["state", "show", BUCKET, "--output", "json"])

    printer.step("The readable export (the seed's state.json format), rewritten after commits.")
    if export_path is not None and export_path.exists():
        printer.say(f"{export_path}:")
        printer.block(export_path.read_text())

    printer.step("What is on disk: write-once log files, private (0600 files, 0700 folders).")
    printer.tree(backend_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccstate.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temporary backend")
    parser.add_argument(
        "--store-only",
        action="store_true",
        help="the state-store walkthrough without the MCP server (no sandbox needed)",
    )
    args = parser.parse_args(argv)
    backend_dir = Path(tempfile.mkdtemp(prefix="ccstate-demo-")) / "state"
    printer = DemoPrinter()
    try:
        if args.store_only:
            return run(backend_dir, printer)
        from ccstate.mcp_demo import run as run_mcp_session

        return run_mcp_session(backend_dir, printer)
    finally:
        if args.keep:
            printer.say(f"\nKept {backend_dir.parent}.")
        else:
            shutil.rmtree(backend_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
