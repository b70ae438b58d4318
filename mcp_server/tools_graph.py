"""The graph tool: ``show_dependency_graph``, the managed resources' dependency graph as JSON
and Mermaid. It only translates parameters to ``service.graph.state.load_graph``."""

from __future__ import annotations

from typing import Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.names import validate_identifier
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def register(server: MCPServer, runtime: Runtime) -> None:
    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def show_dependency_graph(
        identifier: Annotated[
            str, Field(description="one resource: only what it depends on and what depends on it")
        ] = "",
    ) -> dict[str, Any]:
        """Which managed resources depend on which (a key -> the bucket it encrypts -> the role
        whose policy names the bucket), with how each edge was found (schema, value, explicit)
        and the property it comes through; cycles named. JSON, and a Mermaid drawing."""
        from ccstate.service.graph.state import graph_payload, load_graph

        wanted = validate_identifier(identifier) if identifier else None
        view = await runtime.store.current()
        data = await load_graph(view.resources, runtime.workflow.schemas, wanted)
        return graph_payload(data)
