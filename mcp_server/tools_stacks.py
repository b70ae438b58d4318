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


PLAN_TOKEN = Field(
    description="the plan_token the same tool returned with preview=true, after the user saw "
    "its explanation; it authorizes exactly that plan, once. Without one the plan is explained "
    "and scanned in this call and one plan token is recorded for it."
)
PREVIEW = Field(
    description="only explain and scan the whole plan (every resource listed) and return it "
    "with its plan_token; change nothing"
)


async def previewed(
    stacks: Any,
    principal: Any,
    stack_name: str,
    resources: dict[str, Any] | None,
    user_intent: str,
    operation: str,
    then: str,
) -> dict[str, Any]:
    """A tool's ``preview=true`` answer: the plan explained and scanned, and its token."""
    plan, token = await stacks.preview(
        principal, stack_name, resources, user_intent, operation=operation
    )
    return plan_payload(plan, token, then)


def plan_payload(plan: Any, token: Any, then: str) -> dict[str, Any]:
    payload = plan.to_dict()
    if token is None:
        payload["next_step"] = "Nothing to change."
        return payload
    payload["plan_token"] = token.token
    payload["expires_at"] = token.expires_at.isoformat()
    payload["next_step"] = (
        "Show the user the explanation (every action) and the security scan. If they agree, "
        f"call {then} with the same arguments and plan_token; it is refused if the plan changed."
    )
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
        preview: Annotated[bool, PREVIEW] = False,
        plan_token: Annotated[str, PLAN_TOKEN] = "",
    ) -> dict[str, Any]:
        """Create related resources together, in dependency order, independent ones in
        parallel, all or nothing: a failure rolls back what was created. Call with
        preview=true first: the whole plan is explained (every resource, in order) and
        security-scanned at once (references to resources not created yet as placeholders;
        those resources are scanned again, resolved, just before they are created), and one
        plan_token authorizes it. Show the user the explanation and scan, then call again
        with plan_token. Each resource gets its own lineage entry naming that plan token."""
        principal = await runtime.identify()
        if preview:
            return await previewed(
                stacks, principal, stack_name, resources, user_intent, "create", "create_stack"
            )
        result = await stacks.create(
            principal,
            stack_name,
            resources,
            user_intent,
            rollback=rollback,
            plan_token=plan_token or None,
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
        preview: Annotated[bool, PREVIEW] = False,
        plan_token: Annotated[str, PLAN_TOKEN] = "",
        rollback: Annotated[
            bool,
            Field(
                description="on failure undo the steps done (default); false: stop where it "
                "is, UPDATE_FAILED, the steps that landed kept and recorded, the old resources "
                "of replacements not deleted; then preview and call update_stack again with "
                "fixed resources to finish, or rollback_stack to go back"
            ),
        ] = True,
    ) -> dict[str, Any]:
        """Change a deployed stack, all or nothing: adds, in-place updates (a patch of the
        changed properties), replacements (a create-only property changes: the new resource is
        created first, the old one deleted only after everything succeeded) and removals
        (last, dependents first). Refused while resources outside the stack depend on what it
        replaces or removes. Call with preview=true first: every action explained, the plan
        security-scanned, and one plan_token for it; show the user, then call again with
        plan_token. On a stack UPDATE_FAILED (an update stopped with rollback=false) it
        continues that update from the steps that landed (its plan says so)."""
        principal = await runtime.identify()
        if preview:
            return await previewed(
                stacks, principal, stack_name, resources, user_intent, "update", "update_stack"
            )
        result = await stacks.update(
            principal,
            stack_name,
            resources,
            user_intent,
            rollback=rollback,
            plan_token=plan_token or None,
        )
        return stack_payload(result, events=True)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def rollback_stack(
        stack_name: Annotated[str, Field(description="the stack to take back")],
        user_intent: Annotated[str, Field(description="why")] = "",
        preview: Annotated[bool, PREVIEW] = False,
        plan_token: Annotated[str, PLAN_TOKEN] = "",
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
        the stack before that update. preview=true explains (and, for an update back, scans)
        it and returns its plan_token, as update_stack's."""
        principal = await runtime.identify()
        if preview:
            return await previewed(
                stacks, principal, stack_name, None, user_intent, "rollback", "rollback_stack"
            )
        result = await stacks.rollback(
            principal,
            stack_name,
            user_intent=user_intent,
            rollback=rollback,
            plan_token=plan_token or None,
        )
        return stack_payload(result, events=True)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def destroy_stack(
        stack_name: Annotated[str, Field(description="the stack to delete")],
        confirmed: Annotated[bool, Field(description="the user confirmed the delete")] = False,
        user_intent: Annotated[str, Field(description="why")] = "",
        preview: Annotated[bool, PREVIEW] = False,
        plan_token: Annotated[str, PLAN_TOKEN] = "",
    ) -> dict[str, Any]:
        """Delete every resource of a stack, dependents first. Refused while resources outside
        the stack depend on it. preview=true lists every delete and returns the plan_token;
        then call with plan_token and confirmed=true after the user agreed."""
        if preview:
            principal = await runtime.identify()
            return await previewed(
                stacks,
                principal,
                stack_name,
                None,
                user_intent,
                "destroy",
                "destroy_stack (confirmed=true)",
            )
        if confirmed is not True:
            raise InvalidInput(
                f"Destroying stack '{stack_name}' needs confirmed=true.",
                next_step="Show the user the stack's resources (get_stack) and ask them to "
                "confirm.",
                field="confirmed",
            )
        principal = await runtime.identify()
        result = await stacks.destroy(
            principal, stack_name, user_intent=user_intent, plan_token=plan_token or None
        )
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
