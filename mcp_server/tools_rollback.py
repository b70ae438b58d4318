"""``rollback_resource``: bring one resource back to what a past change left (or found).

The tool translates its parameters to ``service.changes.rollback.Rollbacks`` (wired by
``ccstate.app`` into ``runtime.extras["rollbacks"]``) and words the typed result. A rollback
goes through the same token workflow as any change (generate, explain with the plan, scan,
act) and is recorded as operation 'rollback' with ``rolled_back_to``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.changes.rollback import RollbackOutcome, RollbackPlan, Rollbacks
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

MUTATING = ToolAnnotations(destructive_hint=True, open_world_hint=True)


def rollbacks_of(runtime: Runtime) -> Rollbacks:
    return runtime.extras["rollbacks"]


def register(server: MCPServer, runtime: Runtime) -> None:
    if "rollbacks" not in runtime.extras:
        return

    @server.tool(annotations=MUTATING)
    @tool_result
    async def rollback_resource(
        identifier: Annotated[str, Field(description="the resource's identifier")],
        execution_token: Annotated[
            str,
            Field(
                description="the change to go back to: its execution_token as the change "
                "returned it or as show_resource_history lists it ('sha256:...')"
            ),
        ],
        to: Annotated[
            Literal["after", "before"],
            Field(description="'after': what that change left (default); 'before': what it found"),
        ] = "after",
        allow_replacement: Annotated[
            bool,
            Field(description="accept deleting and re-creating it when create-only values differ"),
        ] = False,
        accept_loss: Annotated[
            list[str] | None,
            Field(description="write-only or secret properties the user accepts not restoring"),
        ] = None,
        plan_only: Annotated[
            bool, Field(description="only compute and return the plan; change nothing")
        ] = False,
        plan_digest: Annotated[
            str,
            Field(
                description="the plan_digest of the plan the user confirmed; if anything "
                "changed since, the rollback is refused as stale"
            ),
        ] = "",
        user_intent: Annotated[str, Field(description="why, in the user's words")] = "",
    ) -> dict[str, Any]:
        """Roll one resource back to its recorded properties right after (or before) the change
        an execution token authorized.

        The plan is computed from the live resource and classifies every property: patch,
        replace (create-only; needs allow_replacement), unrecoverable (write-only or secret:
        needs accept_loss naming it), ignored (read-only), unchanged, create (re-creating a
        deleted resource). Call with plan_only=True first, show the plan to the user, then call
        again with its plan_digest. The change runs through explain, security scan and act, and
        is recorded as operation 'rollback'; its execution_token rolls the rollback back.
        """
        rollbacks = rollbacks_of(runtime)
        if plan_only:
            plan = await rollbacks.plan(identifier, execution_token, to)
            return plan_result(plan)
        principal = await runtime.identify()
        done = await rollbacks.rollback(
            principal,
            identifier,
            execution_token,
            to,
            allow_replacement=allow_replacement,
            accept_loss=accept_loss or [],
            plan_digest=plan_digest,
            user_intent=user_intent,
        )
        return rollback_result(done)


def plan_result(plan: RollbackPlan) -> dict[str, Any]:
    out = plan.to_dict()
    asks = []
    if plan.named("replace"):
        asks.append("allow_replacement=True")
    if plan.named("unrecoverable"):
        asks.append(f"accept_loss={plan.named('unrecoverable')}")
    extra = f" with {' and '.join(asks)}" if asks else ""
    out["next_step"] = (
        "Show this plan to the user. If they confirm, call rollback_resource again with "
        f"plan_digest='{plan.digest}'{extra}."
        if plan.action != "none"
        else "Nothing to roll back: the live resource already matches."
    )
    return out


def rollback_result(done: RollbackOutcome) -> dict[str, Any]:
    out = done.to_dict()
    if done.status == "DONE":
        out["next_step"] = (
            "Tell the user what was rolled back. To undo it, call rollback_resource with "
            f"execution_token='{done.execution_token}' and to='before'."
        )
    elif done.status == "REFUSED":
        out["next_step"] = "Show the reason to the user; nothing was changed."
    return out
