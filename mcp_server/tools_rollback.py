"""``rollback_resource`` (bring one resource back to what a past change left or found) and
``analyze_change_impact`` (what a change would do, before it is made).

The tool translates its parameters to ``service.changes.rollback.Rollbacks`` (wired by
``ccstate.app`` into ``runtime.extras["rollbacks"]``) and words the typed result. A rollback
goes through the same token workflow as any change (generate, explain with the plan, scan,
act) and is recorded as operation 'rollback' with ``rolled_back_to``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.errors import InvalidInput
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

if TYPE_CHECKING:  # the service code is imported by the runtime, after tools/list
    from ccstate.service.changes.impact import ImpactAnalyzer, ImpactReport
    from ccstate.service.changes.rollback import RollbackOutcome, RollbackPlan, Rollbacks

MUTATING = ToolAnnotations(destructive_hint=True, open_world_hint=True)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=True)


def rollbacks_of(runtime: Runtime) -> Rollbacks:
    return runtime.extras["rollbacks"]


def register(server: MCPServer, runtime: Runtime) -> None:
    if "impact" in runtime.extras:
        register_impact(server, runtime)
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


def register_impact(server: MCPServer, runtime: Runtime) -> None:
    analyzer: ImpactAnalyzer = runtime.extras["impact"]

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def analyze_change_impact(
        token: Annotated[
            str,
            Field(description="a generated_code_token or explained_token: the change it carries"),
        ] = "",
        resource_type: Annotated[str, Field(description="without a token: the type")] = "",
        operation: Annotated[
            str, Field(description="without a token: 'create', 'update' or 'delete'")
        ] = "",
        identifier: Annotated[str, Field(description="update/delete: the resource")] = "",
        properties: Annotated[
            dict[str, Any] | None, Field(description="create: the properties")
        ] = None,
        patch_document: Annotated[
            list[dict[str, Any]] | None, Field(description="update: the RFC 6902 patch")
        ] = None,
    ) -> dict[str, Any]:
        """What a change would do, before it is made: per property 'update' or 'replace'
        (create-only; never 'conditional'); the managed resources that depend on it, directly
        or transitively, and which of them the change breaks; the drift it would overwrite; its
        stacks; the security scan before and after; a risk level with reasons. The analysis is
        bound to a plan_digest: executing the change after the state, the live resource or the
        schema moved is refused as stale. Show the impact to the user before the change."""
        if token:
            report = await analyzer.analyze_token(await runtime.identify(), token)
        elif resource_type and operation:
            report = await analyzer.analyze(
                operation=operation,
                resource_type=resource_type,
                identifier=identifier,
                properties=properties,
                patch=patch_document,
            )
        else:
            raise InvalidInput(
                "Name the change: a token, or resource_type with operation (and identifier, "
                "properties or patch_document).",
                next_step="Pass the generated_code_token from generate_infrastructure_code.",
                field="token",
            )
        return impact_result(report)


def impact_result(report: ImpactReport) -> dict[str, Any]:
    out = report.to_dict()
    out["next_step"] = (
        f"Show the user the risk ({report.risk}) and its reasons before the change. Executing "
        "it after anything it is bound to moved is refused as stale: analyse again then."
    )
    return out


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
