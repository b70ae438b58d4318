"""A real MCP client session over stdio against a `ccstate serve` subprocess.

The mcp SDK's client runs in its own thread and event loop, so tests stay plain functions and
one server process can serve a whole test module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult

CALL_TIMEOUT = 120


@dataclass
class Outcome:
    """One tool call's answer: ``ok`` and the structured JSON (result or error object)."""

    ok: bool
    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def error(self) -> str | None:
        return None if self.ok else self.data.get("error")

    @property
    def check(self) -> str | None:
        return (self.data.get("details") or {}).get("check")


class McpSession:
    def __init__(self, args: list[str], env: Mapping[str, str], *, stderr_path: Path) -> None:
        self.params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "ccstate", "serve", *args],
            env={**env},
            cwd=str(Path(__file__).resolve().parents[3]),
        )
        self.stderr_path = stderr_path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="mcp-client", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> McpSession:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError(f"the MCP server did not start; see {self.stderr_path}")
        if self._failure is not None:
            raise RuntimeError(
                f"the MCP server failed to start: {self._failure!r}\n{self.server_log()}"
            )
        return self

    def close(self) -> None:
        """Leave the session (stdin closed: the server exits). Closing twice is harmless."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(30)

    def server_log(self) -> str:
        try:
            return self.stderr_path.read_text()[-5000:]
        except OSError:
            return ""

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        with open(self.stderr_path, "a") as errlog:
            transport = stdio_client(self.params, errlog=errlog)
            async with Client(transport, read_timeout_seconds=CALL_TIMEOUT) as client:
                self._client = client
                self._ready.set()
                await self._stop.wait()

    # ------------------------------------------------------------------ calls

    def _submit(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    def call(self, tool: str, *, timeout: float | None = None, **arguments: Any) -> Outcome:
        """One tool call; ``timeout``: the client's read timeout for it (then it gives up)."""
        assert self._client is not None
        call = self._client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        return _outcome(self._submit(call))

    def start_call(self, tool: str, **arguments: Any) -> concurrent.futures.Future[Outcome]:
        """Start a tool call without waiting: ``.cancel()`` cancels it the way a client does
        (the SDK sends notifications/cancelled), ``.result()`` waits for its answer."""
        assert self._client is not None and self._loop is not None
        client = self._client

        async def call() -> Outcome:
            return _outcome(await client.call_tool(tool, arguments))

        return asyncio.run_coroutine_threadsafe(call(), self._loop)

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """Call a tool that must succeed; fail the test with its error object otherwise."""
        outcome = self.call(tool, **arguments)
        assert outcome.ok, f"{tool} failed: {json.dumps(outcome.data, indent=1)}"
        return outcome.data

    def tool_names(self) -> list[str]:
        assert self._client is not None
        listing = self._submit(self._client.list_tools())
        return [t.name for t in listing.tools]

    def list_tools(self) -> list[Any]:
        """The tools as the client sees them: name, input/output schema, annotations."""
        assert self._client is not None
        return list(self._submit(self._client.list_tools()).tools)

    def instructions(self) -> str | None:
        assert self._client is not None
        return self._client.instructions

    # ------------------------------------------------------------------ workflow helpers

    def credentials(self) -> str:
        self.ok("check_environment_variables")
        return self.ok("get_aws_session_info")["credentials_token"]

    def prepare(self, intent: str = "system test", **generate: Any) -> dict[str, str]:
        """Run the chain up to the scan; returns the tokens a mutation needs."""
        credentials = self.credentials()
        generated = self.ok(
            "generate_infrastructure_code", credentials_token=credentials, **generate
        )
        explained = self.ok(
            "explain",
            generated_code_token=generated["generated_code_token"],
            user_intent=intent,
        )
        tokens = {
            "credentials_token": credentials,
            "explained_token": explained["explained_token"],
        }
        if generated["operation"] != "delete":
            scan = self.ok("run_checkov", explained_token=explained["explained_token"])
            tokens["security_scan_token"] = scan["security_scan_token"]
        return tokens


def _outcome(result: CallToolResult) -> Outcome:
    data = result.structured_content
    if data is None:
        text = "".join(getattr(c, "text", "") for c in result.content)
        try:
            data = json.loads(text)
        except ValueError:
            data = {"error": "unstructured", "message": text}
    return Outcome(ok=not result.is_error, data=data)


def server_env(sandbox_env: Mapping[str, str], home: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
        **sandbox_env,
        "SECURITY_SCANNING": "disabled",
    }
    env.update(extra)
    return env


def aws_kwargs(sandbox_env: Mapping[str, str]) -> dict[str, str]:
    """boto3 client arguments for the sandbox (to look at AWS the way a person would)."""
    return {
        "endpoint_url": sandbox_env["AWS_ENDPOINT_URL"],
        "region_name": sandbox_env["AWS_REGION"],
        "aws_access_key_id": sandbox_env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": sandbox_env["AWS_SECRET_ACCESS_KEY"],
    }
