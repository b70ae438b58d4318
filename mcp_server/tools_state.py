"""The state tools: what is managed, its history, its versions, restore, import, save.

Each tool calls a use case of ``service.state.usecases`` (for the request's principal when it
writes) and turns its typed answer into the tool's JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

if TYPE_CHECKING:  # the service code is imported by the runtime, after tools/list
    from ccstate.service.state.usecases import ResourceView, Saved, StateListing

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
        if identifier:
            return resource_result(
                await tools.resource(identifier, include_lineage=include_lineage)
            )
        return listing_result(await tools.listing(resource_type=resource_type))

    @server.tool(annotations=WRITES_STATE)
    @tool_result
    async def save_state() -> dict[str, Any]:
        """Write the readable state.json export now (changes are committed as they happen)."""
        return saved_result(await tools.save())

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def show_resource_history(
        identifier: Annotated[str, Field(description="the resource's identifier")],
    ) -> dict[str, Any]:
        """Every recorded change of one resource, oldest first: who, when, why, which token,
        properties before and after, patch, scan results, and failures."""
        found = await tools.history(identifier)
        return {
            "identifier": found.identifier,
            "in_state": found.in_state,
            "entries": [e.to_json_dict() for e in found.entries],
            "count": len(found.entries),
        }

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def list_state_versions(
        limit: Annotated[int, Field(description="how many, newest first (1-200)")] = 20,
    ) -> dict[str, Any]:
        """The state's versions (commits), newest first: serial, when, who, why, what."""
        found = await tools.versions(limit=limit)
        return {"head": found.head, "versions": [v.to_json_dict() for v in found.versions]}

    @server.tool(annotations=WRITES_STATE)
    @tool_result
    async def restore_state_version(
        serial: Annotated[int, Field(description="the version to restore")],
        user_intent: Annotated[str, Field(description="why the user restores it")] = "",
    ) -> dict[str, Any]:
        """Make the state record equal to an earlier version, as a new recorded version.
        AWS itself is not changed."""
        restored = await tools.restore(
            await runtime.identify(), serial=serial, user_intent=user_intent
        )
        serial_now = restored.commit.serial
        return {
            "restored_from": restored.restored_from,
            "serial": serial_now,
            "changed_resources": [
                {"identifier": c.identifier, "operation": c.operation}
                for c in restored.commit.changes
            ],
            "message": f"The state record now equals version {restored.restored_from} "
            f"(recorded as version {serial_now}). AWS itself was not changed: compare with "
            "drift detection and apply changes through the token workflow if the resources "
            "must follow.",
        }

    @server.tool(annotations=WRITES_STATE)
    @tool_result
    async def forget_resource(
        identifier: Annotated[str, Field(description="the resource's identifier in the state")],
        reason: Annotated[
            str, Field(description="why, e.g. 'deleted by hand in the console during incident 42'")
        ],
    ) -> dict[str, Any]:
        """Remove a resource from the state record, e.g. one deleted outside ccstate (drift
        says DELETED). Recorded in its history with who and why; AWS itself is not changed:
        to delete a resource that exists, use delete_resource."""
        from ccstate.service.state.adopt import forget_resource as forget

        principal = await runtime.identify()
        runtime.policy.check(principal, "forget_resource")
        forgotten = await forget(
            runtime.store,
            identifier=identifier,
            reason=reason,
            principal=principal.to_record(),
            lock=lambda ident, op: runtime.operations.locked(principal, ident, op),
        )
        return {
            **forgotten.to_dict(),
            "message": f"{forgotten.resource_type} '{forgotten.identifier}' is no longer in the "
            f"state (recorded as version {forgotten.serial}, with your reason). Nothing was "
            "changed in AWS; show_resource_history still shows its whole history.",
        }

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
        imported = await tools.import_resource(
            await runtime.identify(),
            resource_type=resource_type,
            identifier=identifier,
            user_intent=user_intent,
            region=region,
        )
        serial = imported.commit.serial
        return {
            "identifier": imported.identifier,
            "resource_type": imported.resource_type,
            "serial": serial,
            "properties": imported.properties,
            "message": f"{imported.resource_type} '{imported.identifier}' is now managed in the "
            f"state (version {serial}). Nothing was changed in AWS.",
        }


# --------------------------------------------------------------------------- typed -> tool JSON


def resource_result(view: ResourceView) -> dict[str, Any]:
    body = view.resource.to_json_dict()
    if view.entries is not None:
        body["lineage"] = [e.to_json_dict() for e in view.entries]
    return {"serial": view.serial, "lineage": view.lineage, "resource": body}


def listing_result(listing: StateListing) -> dict[str, Any]:
    return {
        "workspace": listing.workspace,
        "serial": listing.serial,
        "lineage": listing.lineage,
        "last_updated": listing.last_updated,
        "total_resources": listing.total,
        "resources": [
            {
                "identifier": r.identifier,
                "resource_type": r.resource_type,
                "region": r.region,
                "last_modified": r.last_modified,
                "drift_status": r.drift_status.status,
                "current_properties": r.current_properties,
            }
            for r in listing.resources
        ],
        "truncated": listing.truncated,
    }


def saved_result(saved: Saved) -> dict[str, Any]:
    meta = saved.document.metadata
    where = saved.saved_to
    return {
        "serial": meta.serial,
        "lineage": meta.lineage,
        "total_resources": meta.total_resources,
        "total_operations": meta.total_operations,
        "saved_to": where,
        "backend": saved.backend,
        "message": "Every change is already committed to the backend as it happens; "
        + (f"the readable export is at {where}." if where else "no local export is set."),
    }
