"""The MCP server: tools from each module in ``TOOL_MODULES``, on stdio or streamable HTTP.

A tool module defines ``register(server: MCPServer, runtime: Runtime) -> None``. To add tools
(drift detection, stacks), add a module name here; a module that does not exist yet is skipped.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

from ccstate.mcp_server.instructions import INSTRUCTIONS
from ccstate.mcp_server.results import StructuredErrorServer
from ccstate.mcp_server.runtime import Runtime, ServerOptions, open_runtime
from ccstate.service import __version__
from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)

SERVER_NAME = "ccstate"
TOOL_MODULES = [
    "ccstate.mcp_server.tools_cloud",
    "ccstate.mcp_server.tools_state",
    "ccstate.mcp_server.tools_drift",
    "ccstate.mcp_server.tools_graph",
]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

Transport = Literal["stdio", "http"]


@dataclass(frozen=True)
class ServeConfig:
    options: ServerOptions
    transport: Transport = "stdio"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    sandbox: bool = False
    sandbox_endpoint: str | None = None
    drift_interval: float | None = None  # seconds between scheduled drift checks


def build_server(runtime: Runtime) -> MCPServer:
    server: MCPServer = StructuredErrorServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    for name in TOOL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.debug("tool module %s is not installed; skipped", name)
            continue
        module.register(server, runtime)
    return server


async def serve_async(config: ServeConfig) -> None:
    import anyio

    async with open_runtime(config.options) as runtime:
        server = build_server(runtime)
        async with anyio.create_task_group() as tasks:
            if config.drift_interval:
                from ccstate.mcp_server.tools_drift import monitor_drift

                tasks.start_soon(monitor_drift, runtime, config.drift_interval)
            if config.transport == "http":
                log.info("MCP server on http://%s:%d/mcp", config.host, config.port)
                await server.run_streamable_http_async(host=config.host, port=config.port)
            else:
                await server.run_stdio_async()
            tasks.cancel_scope.cancel()


def serve(config: ServeConfig) -> int:
    """Run until the client disconnects (stdio) or the process is interrupted (http)."""
    import anyio

    with _aws_endpoint(config) as options:
        anyio.run(serve_async, replace(config, options=options))
    return 0


@contextmanager
def _aws_endpoint(config: ServeConfig) -> Iterator[ServerOptions]:
    """Point every AWS client of this process at the sandbox when asked to."""
    options = config.options
    if config.sandbox_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = config.sandbox_endpoint
        yield replace(options, env=dict(os.environ), offline_schemas=True)
        return
    if not config.sandbox:
        yield options
        return
    from ccstate.sandbox import Sandbox

    with Sandbox() as sandbox, _sandbox_backend(options) as options:
        os.environ.update(sandbox.env())
        log.warning("sandbox (offline AWS) on %s", sandbox.endpoint_url)
        yield replace(options, env=dict(os.environ), offline_schemas=True)


@contextmanager
def _sandbox_backend(options: ServerOptions) -> Iterator[ServerOptions]:
    """Sandbox resources vanish with the process; so does their state, unless a backend is
    named. It never mixes with the real state in ~/.aws/ccapi-mcp-server."""
    if options.backend or os.environ.get("CCSTATE_BACKEND"):
        yield options
        return
    with tempfile.TemporaryDirectory(prefix="ccstate-sandbox-") as tmp:
        backend = os.path.join(tmp, "state")
        log.warning("sandbox state in %s (removed on exit; pass --backend to keep it)", backend)
        yield replace(options, backend=backend)
