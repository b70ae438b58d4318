"""The stack tools: ``create_stack``, ``update_stack``, ``rollback_stack``, ``destroy_stack``,
``recover_stack``, ``list_stacks``, ``get_stack``. They translate parameters to
``service.stacks.operations.StackOperations`` (wired by ``ccstate.app`` into
``runtime.extras["stacks"]``) and its answers to JSON."""

from __future__ import annotations

from string import Template
from typing import Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.errors import InvalidInput
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
MUTATING = ToolAnnotations(destructive_hint=True, open_world_hint=True)


def stack_payload(result: Any, *, events: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "stack_name": result.name,
        "status": result.status,
        "resources": result.resources,
        "reason": result.reason,
    }
    if result.state_serial:
        payload["state_serial"] = result.state_serial
    if result.next_step:
        payload["next_step"] = Template(result.next_step).safe_substitute(MCP_WORDS)
    if events:
        payload["events"] = result.events
    return payload


def register(server: MCPServer, runtime: Runtime) -> None:
    stacks = runtime.extras.get("stacks")
    if stacks is None:
        return

    @server.tool(annotations=MUTATING)
    @tool_result
    async def create_stack(
        stack_name: Annotated[str, Field(description="a name for the stack, e.g. 'web-app'")],
        resources: Annotated[
            dict[str, Any],
            Field(
                description="logical name -> {Type, Properties, DependsOn?}; properties may use "
                '{"Ref": "Name"} (its primary identifier) and {"Fn::GetAtt": ["Name", "Arn"]}. '
                "A CloudFormation template ({Resources: ...}) is accepted too."
            ),
        ],
        user_intent: Annotated[str, Field(description="why, in the user's words")],
        rollback: Annotated[
            bool,
            Field(
                description="on failure delete what this run created (default); false: stop "
                "where it is, CREATE_FAILED, what was created kept and recorded"
            ),
        ] = True,
    ) -> dict[str, Any]:
        """Create related resources together, in dependency order, independent ones in
        parallel, all or nothing: a failure rolls back what was created. Each resource goes
        through the same explain/scan/execute workflow and gets its own lineage entry. Show
        the user the list of resources and their order before calling this."""
        principal = await runtime.identify()
        result = await stacks.create(
            principal, stack_name, resources, user_intent, rollback=rollback
        )
        return stack_payload(result, events=True)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def update_stack(
        stack_name: Annotated[str, Field(description="the deployed stack to change")],
        resources: Annotated[
            dict[str, Any],
            Field(
                description="the whole new set of resources, in create_stack's shape: logical "
                "names kept are updated in place or replaced, new ones added, missing ones "
                "removed"
            ),
        ],
        user_intent: Annotated[str, Field(description="why, in the user's words")],
        preview: Annotated[
            bool, Field(description="only return the plan and its explanation; change nothing")
        ] = False,
        rollback: Annotated[
            bool,
            Field(
                description="on failure undo the steps done (default); false: stop where it "
                "is, UPDATE_FAILED, the steps that landed kept and recorded, the old resources "
                "of replacements not deleted; then call update_stack again with fixed "
                "resources to finish, or rollback_stack to go back"
            ),
        ] = True,
    ) -> dict[str, Any]:
        """Change a deployed stack, all or nothing: adds, in-place updates (a patch of the
        changed properties), replacements (a create-only property changes: the new resource is
        created first, the old one deleted only after everything succeeded) and removals
        (last, dependents first). Refused while resources outside the stack depend on what it
        replaces or removes. Call with preview=true first and show the user every action.
        On a stack UPDATE_FAILED (an update stopped with rollback=false) it continues that
        update from the steps that landed."""
        if preview:
            plan = await stacks.plan_update(stack_name, resources)
            return {
                "stack_name": stack_name,
                "actions": [a.to_dict() for a in plan.actions.values()],
                "explanation": plan.explain(user_intent),
            }
        principal = await runtime.identify()
        result = await stacks.update(
            principal, stack_name, resources, user_intent, rollback=rollback
        )
        return stack_payload(result, events=True)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def rollback_stack(
        stack_name: Annotated[str, Field(description="the stack to take back")],
        user_intent: Annotated[str, Field(description="why")] = "",
        rollback: Annotated[
            bool,
            Field(
                description="if this rollback (an update back) fails, undo it (default); "
                "false: stop where it is, UPDATE_FAILED"
            ),
        ] = True,
    ) -> dict[str, Any]:
        """Take a stack back to the template it had before its last update, applied as an
        update (all or nothing; replaced resources are replaced again). A stack UPDATE_FAILED
        (an update stopped with rollback=false) is instead undone from its journal, back to
        the stack before that update."""
        principal = await runtime.identify()
        result = await stacks.rollback(
            principal, stack_name, user_intent=user_intent, rollback=rollback
        )
        return stack_payload(result, events=True)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def destroy_stack(
        stack_name: Annotated[str, Field(description="the stack to delete")],
        confirmed: Annotated[bool, Field(description="the user confirmed the delete")] = False,
        user_intent: Annotated[str, Field(description="why")] = "",
    ) -> dict[str, Any]:
        """Delete every resource of a stack, dependents first. Refused while resources outside
        the stack depend on it. Needs confirmed=true after the user agreed."""
        if confirmed is not True:
            raise InvalidInput(
                f"Destroying stack '{stack_name}' needs confirmed=true.",
                next_step="Show the user the stack's resources (get_stack) and ask them to "
                "confirm.",
                field="confirmed",
            )
        principal = await runtime.identify()
        result = await stacks.destroy(principal, stack_name, user_intent=user_intent)
        return stack_payload(result, events=True)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def recover_stack(
        stack_name: Annotated[str, Field(description="the stack whose operation was cut off")],
    ) -> dict[str, Any]:
        """Finish a stack operation whose process died, from its journal: a create or an
        update is rolled back, a destroy or an update's cleanup finished. A stack that stopped
        because rollback was off (CREATE_FAILED, UPDATE_FAILED) was not interrupted: nothing
        changes, and next_step says what to do."""
        principal = await runtime.identify()
        return stack_payload(await stacks.recover(principal, stack_name), events=True)

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def list_stacks() -> dict[str, Any]:
        """The stacks of this workspace with their status."""
        return {"stacks": [stack_payload(r) for r in await stacks.list()]}

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_stack(
        stack_name: Annotated[str, Field(description="the stack")],
    ) -> dict[str, Any]:
        """One stack: status, resources (logical name -> type, identifier) and events."""
        return stack_payload(await stacks.show(stack_name), events=True)
