"""The MCP server: tools from each module in ``TOOL_MODULES``, on stdio or streamable HTTP.

A tool module defines ``register(server: MCPServer, runtime: Runtime) -> None``. To add tools
(drift detection, stacks), add a module name here; a module that does not exist yet is skipped.
The parts come wired from ``ccstate.app`` (``open_server``, ``serve``); nothing is built here.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

from ccstate.mcp_server.instructions import INSTRUCTIONS
from ccstate.mcp_server.results import StructuredErrorServer
from ccstate.mcp_server.runtime import LazyRuntime, Runtime
from ccstate.service import __version__
from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)

SERVER_NAME = "ccstate"
TOOL_MODULES = [
    "ccstate.mcp_server.tools_cloud",
    "ccstate.mcp_server.tools_state",
    "ccstate.mcp_server.tools_drift",
    "ccstate.mcp_server.tools_graph",
    "ccstate.mcp_server.tools_rollback",
    "ccstate.mcp_server.tools_stacks",
    "ccstate.mcp_server.tools_admin",
]
Transport = Literal["stdio", "http"]


def build_server(
    runtime: Runtime | LazyRuntime,
    *,
    auth: Any = None,
    token_verifier: Any = None,
    middleware: Sequence[Any] = (),
) -> MCPServer:
    """``auth``/``token_verifier``/``middleware``: the team server's (``mcp_server.http``).
    With a ``LazyRuntime`` (stdio) the tools are listed before it opens; each call opens it."""
    server: MCPServer = StructuredErrorServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
        auth=auth,
        token_verifier=token_verifier,
        middleware=middleware,
        before_call=runtime.open if isinstance(runtime, LazyRuntime) else None,
    )
    for name in TOOL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.debug("tool module %s is not installed; skipped", name)
            continue
        module.register(server, runtime)  # type: ignore[arg-type]
    return server


async def run_transport(
    server: MCPServer,
    transport: Transport,
    host: str,
    port: int,
    streams: tuple[Any, Any] | None = None,
) -> None:
    """Serve ``server`` on stdio (until the client disconnects) or streamable HTTP.
    ``streams``: the stdio prelude's stdin and stdout, instead of the process's."""
    if transport == "http":
        log.info("MCP server on http://%s:%d/mcp", host, port)
        await server.run_streamable_http_async(host=host, port=port)
    elif streams is not None and isinstance(server, StructuredErrorServer):
        await server.run_stdio_streams(*streams)
    else:
        await server.run_stdio_async()
