"""The state tools: what is managed, its history, its versions, restore, import, save."""

from __future__ import annotations

from typing import Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES_STATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)


def register(server: MCPServer, runtime: Runtime) -> None:
    tools = runtime.state_tools

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def load_state(
        identifier: Annotated[str, Field(description="one resource (default: all)")] = "",
        resource_type: Annotated[str, Field(description="only this type")] = "",
        include_lineage: Annotated[bool, Field(description="with one identifier")] = False,
    ) -> dict[str, Any]:
        """The managed resources as the state records them (serial, lineage id, properties)."""
        return await tools.load(
            identifier=identifier, resource_type=resource_type, include_lineage=include_lineage
        )

    @server.tool(annotations=WRITES_STATE)
    @tool_result
    async def save_state() -> dict[str, Any]:
        """Write the readable state.json export now (changes are committed as they happen)."""
        return await tools.save()

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def show_resource_history(
        identifier: Annotated[str, Field(description="the resource's identifier")],
    ) -> dict[str, Any]:
        """Every recorded change of one resource, oldest first: who, when, why, which token,
        properties before and after, patch, scan results, and failures."""
        return await tools.history(identifier)

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def list_state_versions(
        limit: Annotated[int, Field(description="how many, newest first (1-200)")] = 20,
    ) -> dict[str, Any]:
        """The state's versions (commits), newest first: serial, when, who, why, what."""
        return await tools.versions(limit=limit)

    @server.tool(annotations=WRITES_STATE)
    @tool_result
    async def restore_state_version(
        serial: Annotated[int, Field(description="the version to restore")],
        user_intent: Annotated[str, Field(description="why the user restores it")] = "",
    ) -> dict[str, Any]:
        """Make the state record equal to an earlier version, as a new recorded version.
        AWS itself is not changed."""
        return await tools.restore(await runtime.identify(), serial=serial, user_intent=user_intent)

    @server.tool(annotations=WRITES_STATE)
    @tool_result
    async def import_resource(
        resource_type: Annotated[str, Field(description='e.g. "AWS::S3::Bucket"')],
        identifier: Annotated[str, Field(description="the resource's primary identifier")],
        user_intent: Annotated[str, Field(description="why it is adopted into the state")],
        region: Annotated[str, Field(description="AWS region (default: the server's)")] = "",
    ) -> dict[str, Any]:
        """Adopt a resource that already exists in AWS into the state, recorded with its
        intent. AWS itself is not changed."""
        return await tools.import_resource(
            await runtime.identify(),
            resource_type=resource_type,
            identifier=identifier,
            user_intent=user_intent,
            region=region,
        )
