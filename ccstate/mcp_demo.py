"""``make demo``: a real MCP client session with ``ccstate serve --sandbox``, step by step.

The demo plays the AI assistant: it starts the server as a subprocess over stdio (the way
Claude Desktop or Amazon Q would), then creates an S3 bucket, updates it, reads its history,
tries to replay a token, fixes drift, rolls a change back by its token, shows the dependency
graph of three related resources and what deleting one would break, and restores an earlier
version of the state, printing each tool call and its answer. Everything runs offline against
the built-in sandbox, in a temporary backend; nothing touches AWS or your ~/.aws directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from ccstate.demo_drift import drift_step
from ccstate.demo_output import DemoPrinter
from ccstate.demo_rollback import graph_step, rollback_step
from ccstate.demo_stack import stack_step

BUCKET = "demo-app-logs"
S3 = "AWS::S3::Bucket"
MAX_SHOWN = 1200


class DemoSession:
    """Tool calls that print themselves: the call, then the interesting part of the answer."""

    def __init__(self, client: Client, printer: DemoPrinter) -> None:
        self.client = client
        self.printer = printer

    async def call(
        self, tool: str, *, show: list[str] | None = None, **args: Any
    ) -> dict[str, Any]:
        shown_args = ", ".join(f"{k}={_short(k, v)}" for k, v in args.items())
        self.printer.say(f"> {tool}({shown_args})")
        result = await self.client.call_tool(tool, args)
        data: dict[str, Any] = result.structured_content or {}
        if result.is_error:
            self.printer.say(f"-> error {data.get('error')}: {data.get('message')}")
            if data.get("next_step"):
                self.printer.say(f"   next step: {data['next_step']}")
            return data
        if show:
            picked = {k: data.get(k) for k in show if k in data}
            self.printer.block(_truncate(json.dumps(picked, indent=2, default=str)))
        return data

    async def prepare(
        self, credentials: str, intent: str, *, quiet: bool = False, **generate: Any
    ) -> dict[str, str]:
        """``quiet``: do not print the generated properties and the explanation."""
        generated = await self.call(
            "generate_infrastructure_code",
            credentials_token=credentials,
            show=None if quiet else ["operation", "identifier", "properties_for_explanation"],
            **generate,
        )
        explained = await self.call(
            "explain", generated_code_token=generated["generated_code_token"], user_intent=intent
        )
        if not quiet:
            self.printer.say("The explanation the assistant must show the user:")
            self.printer.block(explained["explanation"])
        tokens = {"credentials_token": credentials, "explained_token": explained["explained_token"]}
        if generated["operation"] != "delete":
            scan = await self.call(
                "run_checkov",
                explained_token=explained["explained_token"],
                show=["scan_status", "summary"],
            )
            tokens["security_scan_token"] = scan["security_scan_token"]
        return tokens


async def run_session(backend_dir: Path, printer: DemoPrinter, errlog: TextIO) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ccstate", "serve", "--sandbox", "--backend", backend_dir.as_uri()],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "SECURITY_SCANNING": "disabled",
            "CCSTATE_USER": "demo-user",
        },
    )
    printer.command(["ccstate", "serve", "--sandbox", "--backend", backend_dir.as_uri()])
    printer.say("(started by the MCP client as a subprocess, talking JSON-RPC over stdio)")
    async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as client:
        await _story(DemoSession(client, printer), printer)


async def _story(session: DemoSession, printer: DemoPrinter) -> None:
    printer.step("The assistant checks the environment and who it acts as.")
    await session.call(
        "check_environment_variables", show=["security_scanning", "default_tags", "readonly_mode"]
    )
    info = await session.call("get_aws_session_info", show=["account_id", "arn", "region", "user"])
    credentials = info["credentials_token"]
    printer.say(
        "SECURITY_SCANNING=disabled here (checkov installs with "
        "`ccstate scanner install`); the lineage records 'not scanned'."
    )

    printer.step("Create a bucket: generate -> explain -> scan -> create, one token chain.")
    tokens = await session.prepare(
        credentials,
        "Keep the application logs for audits",
        resource_type=S3,
        properties={"BucketName": BUCKET, "Tags": [{"Key": "team", "Value": "platform"}]},
    )
    created = await session.call(
        "create_resource",
        resource_type=S3,
        show=["message", "identifier", "state_serial", "execution_token"],
        **tokens,
    )

    printer.step("A used token is spent: replaying it is refused, on any server.")
    await session.call("create_resource", resource_type=S3, **tokens)

    printer.step("Update it: the patch that was explained is exactly the patch applied.")
    patch = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]
    tokens = await session.prepare(
        credentials,
        "Compliance requires object versioning",
        resource_type=S3,
        identifier=BUCKET,
        patch_document=patch,
    )
    await session.call(
        "update_resource",
        resource_type=S3,
        identifier=BUCKET,
        show=["message", "state_serial"],
        **tokens,
    )

    await drift_step(session, printer, BUCKET)
    await rollback_step(session, printer, credentials, BUCKET, created["execution_token"])
    await graph_step(session, printer, credentials)

    printer.step("The bucket's history: who, when, why, with which token.")
    history = await session.call("show_resource_history", identifier=BUCKET)
    for entry in history.get("entries", []):
        token = entry.get("execution_token")
        authorized = f"token {token[:17]}..." if token else "no token (a check, not a change)"
        scan = (entry.get("checkov_results") or {}).get("status")
        printer.say(
            f"serial {entry['serial']}: {entry['operation']} {entry['outcome']} by "
            f"{entry['user']} - {entry.get('user_intent') or entry.get('explanation')!r} - "
            f"{authorized}" + (f" - scan {scan}" if scan else "")
        )

    printer.step("Every version of the state, newest first.")
    versions = await session.call("list_state_versions", limit=10)
    for version in versions.get("versions", []):
        printer.say(
            f"{version['serial']}: {version['summary']} ({version['who']}: {version['why']})"
        )

    printer.step("Restore the state record to version 1 (recorded as a new version).")
    await session.call(
        "restore_state_version",
        serial=1,
        user_intent="Demo: back to the first version",
        show=["message"],
    )
    state = await session.call("load_state", identifier=BUCKET)
    props = state.get("resource", {}).get("current_properties", {})
    printer.say(f"Recorded VersioningConfiguration now: {props.get('VersioningConfiguration')}")

    await stack_step(session, printer)


def _short(name: str, value: Any) -> str:
    text = json.dumps(value, default=str)
    if name.endswith("_token") and len(text) > 14:
        return text[:11] + '..."'
    return text if len(text) <= 70 else text[:50] + "..." + text[-12:]


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "\n..."


def run(backend_dir: Path, printer: DemoPrinter) -> int:
    """The MCP session, then the same state seen through the ccstate CLI."""
    import asyncio

    printer.title("ccstate demo: an MCP client session against the offline sandbox")
    printer.say(f"Temporary local backend: {backend_dir}")
    with open(os.devnull, "w") as quiet:
        asyncio.run(run_session(backend_dir, printer, quiet))
    os.environ["CCSTATE_BACKEND"] = str(backend_dir)
    os.environ["CCSTATE_WORKSPACE"] = "default"
    printer.step("The same shared state, read by a person with the ccstate CLI.")
    printer.run_cli(["state", "versions"])
    printer.run_cli(["state", "history", BUCKET])
    return 0
