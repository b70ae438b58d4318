"""`ccstate serve` on stdio lists its tools before it opens the state: a real client session on
a real server process, the modules that process had loaded, and the listing compared with the
server built on an open runtime (as the team server and the tests build it)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ccstate.mcp_server import tools_cloud
from ccstate.mcp_server.runtime import LazyRuntime
from ccstate.mcp_server.server import build_server
from ccstate.service.changes import workflow
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from ccstate.app import SERVER_EXTRAS, ServerOptions, open_server
from tests.system.mcp.harness import server_env

# The server process: `ccstate serve` itself, with the runtime opened only by a tool call (not
# after OPEN_AFTER_SECONDS), and its sys.modules written when it exits.
SERVE = """
import atexit, json, sys
import ccstate.app
ccstate.app.OPEN_AFTER_SECONDS = 3600
atexit.register(lambda: open(sys.argv[1], "w").write(json.dumps(sorted(sys.modules))))
from ccstate.cli import main
sys.exit(main(["serve", "--backend", sys.argv[2]]))
"""

# Imported by the runtime (the state, the token workflow, the AWS SDK, the scanner), which a
# client's tools/list must not wait for. (cryptography is not here: the MCP SDK imports it.)
NOT_BEFORE_THE_LIST = (
    "ccstate.service.state.store",
    "ccstate.service.state.model",
    "ccstate.service.changes.workflow",
    "ccstate.service.changes.executor",
    "ccstate.service.authz.tokens",
    "ccstate.service.drift",
    "ccstate.service.stacks",
    "ccstate.backends.factory",
    "ccstate.backends.local",
    "aioboto3",
    "botocore",
    "boto3",
    "checkov",
    "jsonschema",
    "deepdiff",
    "yaml",
)


def loaded(modules: set[str], *names: str) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def serve_session(tmp_path: Path, *tools_to_call: str) -> tuple[list[Any], list[Any], set[str]]:
    """Start the server, list its tools, call ``tools_to_call``, leave; the listing, the
    calls' results and the modules the server had loaded."""
    written = tmp_path / "modules.json"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", SERVE, str(written), str(tmp_path / "state")],
        env=server_env({}, tmp_path),
    )

    async def session() -> tuple[list[Any], list[Any]]:
        with open(tmp_path / "stderr.log", "a") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as client,
            ):
                await client.initialize()
                listing = (await client.list_tools()).tools
                results = [await client.call_tool(name, {}) for name in tools_to_call]
                return listing, results

    listing, results = asyncio.run(session())
    return listing, results, set(json.loads(written.read_text()))


def described(tools: list[Any]) -> dict[str, dict[str, Any]]:
    """What a client sees of each tool: schemas, annotations, description, title."""
    return {
        tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools
    }


async def listed_on_an_open_runtime(backend: Path) -> list[Any]:
    async with open_server(ServerOptions(backend=str(backend))) as runtime:
        assert set(runtime.extras) == set(SERVER_EXTRAS)  # what the lazy runtime names
        return await build_server(runtime).list_tools()


def test_serve_lists_its_tools_before_it_imports_the_state_or_the_aws_sdk(tmp_path: Path) -> None:
    listing, _, modules = serve_session(tmp_path)

    assert loaded(modules, *NOT_BEFORE_THE_LIST) == []
    eager = asyncio.run(listed_on_an_open_runtime(tmp_path / "eager"))
    assert len(listing) == len(eager) >= 38
    assert described(listing) == described(eager)


def test_the_first_tool_call_opens_the_state(tmp_path: Path) -> None:
    _, results, modules = serve_session(tmp_path, "load_state", "list_state_versions")

    loaded_state, versions = results
    assert not loaded_state.is_error, loaded_state.structured_content
    assert loaded_state.structured_content["total_resources"] == 0
    assert not versions.is_error and versions.structured_content["versions"] == []
    assert "ccstate.service.state.store" in modules


def test_a_state_that_cannot_be_opened_is_each_calls_error_until_it_can(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")

    async def calls() -> list[Any]:
        options = ServerOptions(backend=str(blocked / "state"))
        async with LazyRuntime(lambda: open_server(options), extras=SERVER_EXTRAS) as lazy:
            server = build_server(lazy)
            refused = await server.call_tool("load_state", {})
            blocked.unlink()
            blocked.mkdir()
            answered = await server.call_tool("load_state", {})
            return [refused, answered]

    refused, answered = asyncio.run(calls())

    assert refused.is_error
    assert refused.structured_content["error"] == "backend_error"
    assert refused.structured_content["next_step"]
    assert not answered.is_error and answered.structured_content["total_resources"] == 0


@pytest.mark.parametrize("name", ["LIST_LIMIT"])
def test_the_tool_modules_copies_of_service_constants_agree(name: str) -> None:
    """tools_cloud repeats the constants its schemas show, so as not to import the workflow."""
    assert getattr(tools_cloud, name) == getattr(workflow, name)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--workspace", "no/such workspace"], {}, "workspace"),
        ([], {"CCSTATE_TOKEN_TTL": "soon"}, "CCSTATE_TOKEN_TTL"),
    ],
)
def test_a_configuration_error_still_stops_the_start(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ccstate", "serve", "--backend", str(tmp_path / "state"), *args],
        env=server_env({}, tmp_path, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode not in (0, None)
    assert named in done.stderr and "Error:" in done.stderr
    assert not (tmp_path / "state").exists()
