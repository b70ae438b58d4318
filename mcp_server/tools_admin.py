"""The admin tools of the team server: ``list_users``, ``revoke_user``, ``list_locks``,
``force_unlock``. They translate parameters to ``service.authz.admin.TeamAdmin`` (wired by
``ccstate.app`` into ``runtime.extras["admin"]``), the use case ``ccstate users`` and ``ccstate
lock`` run too. ``mcp_server.roles`` maps them to ``manage_users`` and ``force_unlock`` (admin
only; ``list_locks`` is a read). Adding a user or rotating a token stays a CLI command: the
token is printed once, and an assistant's transcript is no place for it."""

from __future__ import annotations

from typing import Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True, idempotent_hint=False, open_world_hint=False)


def register(server: MCPServer, runtime: Runtime) -> None:
    admin = runtime.extras.get("admin")
    if admin is None:
        return

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def list_users(
        include_revoked: Annotated[bool, Field(description="also revoked users")] = False,
    ) -> dict[str, Any]:
        """The people who may call the team's servers: name, role, when and by whom their token
        was issued, rotated or revoked (never the token). Admins only."""
        users = await admin.list_users(await runtime.identify(), include_revoked=include_revoked)
        return {"users": [u.public() for u in users]}

    @server.tool(annotations=DESTRUCTIVE)
    @tool_result
    async def revoke_user(
        name: Annotated[str, Field(description="the user's name, as list_users shows it")],
    ) -> dict[str, Any]:
        """Revoke a user's bearer token: every server sharing this backend refuses it from
        its next request on. Their history stays. Admins only; confirm with the user first."""
        user = await admin.revoke_user(await runtime.identify(), name)
        return {
            "revoked": user.public(),
            "next_step": "To let them in again, an admin runs `ccstate users add NAME --role "
            "ROLE` (a new token, printed once).",
        }

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def list_locks(
        all_workspaces: Annotated[
            bool, Field(description="every workspace, not only this server's")
        ] = False,
    ) -> dict[str, Any]:
        """Who holds which lock now: id, resource (or the whole workspace), holder, operation,
        when it expires, and whether its lease ran out already."""
        workspace = None if all_workspaces else runtime.workspace
        locks = await admin.list_locks(await runtime.identify(), workspace)
        return {"workspace": workspace, "locks": locks}

    @server.tool(annotations=DESTRUCTIVE)
    @tool_result
    async def force_unlock(
        lock_id: Annotated[str, Field(description="the lock's id, from list_locks")],
    ) -> dict[str, Any]:
        """Remove a lock whoever holds it. Only when its holder crashed or hangs: a live
        holder's change would no longer be protected. A dead server's lock also expires by
        itself after its lease. Admins only; confirm with the user first."""
        row = await admin.force_unlock(await runtime.identify(), lock_id)
        return {"unlocked": row}
