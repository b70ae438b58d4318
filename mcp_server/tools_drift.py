"""The drift tools: ``detect_drift`` and ``refresh_state``; and the monitor ``serve`` runs.

Each tool only translates parameters to ``service.drift.monitor`` and ``service.drift.detect``
calls.
``detect_drift`` records every scan in the state (one commit); with ``auto_fix`` (or the
``auto_remediation`` setting) it fixes each drifted resource through the same token workflow
as a human change, recorded as ``remediate``. A read-only server detects but records nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.errors import CcstateError, NotFound
from ccstate.service.names import validate_identifier
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

if TYPE_CHECKING:  # the service code is imported by the runtime, after tools/list
    from ccstate.service.authz.principal import Principal
    from ccstate.service.drift.detect import DriftDetector
    from ccstate.service.drift.monitor import DriftRun
    from ccstate.service.drift.remediate import DriftRemediator
    from ccstate.service.state.model import CommitMeta

log = logging.getLogger(__name__)

RECORDS_STATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
MAY_CHANGE_AWS = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)


def drift_parts(runtime: Runtime) -> tuple[DriftDetector, DriftRemediator]:
    """The runtime's detector and remediator, shared by the tools and the monitor."""
    return runtime.detector, runtime.remediator


def commit_meta(principal: Principal, explanation: str, user_intent: str = "") -> CommitMeta:
    from ccstate.service.state.model import CommitMeta

    return CommitMeta(
        principal=principal.to_record(),
        explanation=explanation,
        user_intent=user_intent or None,
    )


def register(server: MCPServer, runtime: Runtime) -> None:
    @server.tool(annotations=MAY_CHANGE_AWS)
    @tool_result
    async def detect_drift(
        identifier: Annotated[
            str, Field(description="one resource's identifier (default: every managed resource)")
        ] = "",
        auto_fix: Annotated[
            bool,
            Field(
                description="restore the recorded properties of each drifted resource through "
                "the token workflow (default: the server's auto_remediation setting, off)"
            ),
        ] = False,
        user_intent: Annotated[str, Field(description="why, in the user's words")] = "",
    ) -> dict[str, Any]:
        """Compare the managed resources with AWS and record the result in the state.

        Each resource is IN_SYNC, MODIFIED (differences with severity and a fix), DELETED
        (still in state, flagged) or FAILED (the check could not be made; never a deletion).
        With auto_fix, each MODIFIED resource is fixed through generate -> explain -> scan ->
        update, recorded as operation 'remediate'. Show the differences to the user.
        """
        from ccstate.service.drift.monitor import run_drift_check

        detector, remediator = drift_parts(runtime)
        principal = await runtime.identify()
        readonly = not runtime.policy.allows(principal, "remediate")
        fix = auto_fix or (runtime.auto_remediation and not readonly)
        if fix:
            runtime.policy.check(principal, "remediate")
        wanted = None
        if identifier:
            wanted = [validate_identifier(identifier)]
            if await runtime.store.get_resource(identifier) is None:
                raise _not_in_state(identifier)
        meta = commit_meta(principal, "Drift check requested through MCP.", user_intent)
        run = await run_drift_check(
            detector,
            meta,
            identifiers=wanted,
            remediator=remediator,
            auto_fix=fix,
            record=runtime.policy.allows(principal, "record_drift"),  # not read-only, not a viewer
            user_intent=user_intent,
            principal=principal,
        )
        return drift_result(run, single=bool(identifier))

    @server.tool(annotations=RECORDS_STATE)
    @tool_result
    async def refresh_state(
        identifier: Annotated[str, Field(description="the resource's identifier")],
        user_intent: Annotated[str, Field(description="why the cloud's values are accepted")] = "",
    ) -> dict[str, Any]:
        """Accept AWS's current properties of one resource into the state (operation
        'refresh'): the opposite of fixing drift. AWS itself is not changed."""
        principal = await runtime.identify()
        runtime.policy.check(principal, "refresh")
        identifier = validate_identifier(identifier)
        meta = commit_meta(
            principal, "Accepted the resource's current AWS properties into state.", user_intent
        )
        commit = await runtime.detector.refresh(identifier, meta)
        change = commit.changes[0]
        accepted = (change.drift_status.drift_details or {}).get("accepted", [])  # type: ignore[union-attr]
        return {
            "identifier": identifier,
            "resource_type": change.resource_type,
            "operation": "refresh",
            "state_serial": commit.serial,
            "accepted_differences": accepted,
            "properties": change.properties_after,
            "message": f"The state now records what AWS reports for {identifier} "
            f"({len(accepted)} differences accepted), at serial {commit.serial}.",
        }


def drift_result(run: DriftRun, *, single: bool) -> dict[str, Any]:
    """The tool's answer: counts, every resource that is not IN_SYNC, the fixes, what next."""
    data = run.to_dict()
    resources = data.pop("resources")
    data["resources"] = resources if single else [r for r in resources if r["status"] != "IN_SYNC"]
    data["in_sync"] = [r["identifier"] for r in resources if r["status"] == "IN_SYNC"]
    data["message"], data["next_step"] = _summary(run)
    return data


def _summary(run: DriftRun) -> tuple[str, str]:
    counts = run.report.counts
    checked = sum(counts.values()) - counts["NOT_CHECKED"]
    where = f"recorded at serial {run.commit.serial}" if run.commit is not None else "not recorded"
    text = (
        f"Checked {checked} resources: {counts['IN_SYNC']} in sync, {counts['MODIFIED']} "
        f"modified, {counts['DELETED']} deleted, {counts['FAILED']} failed ({where})."
    )
    if run.report.stopped_reason:
        text += f" The scan {run.report.stopped_reason}."
    fixed = [f for f in run.fixes if f.fixed]
    if run.fixes:
        text += f" Fixed {len(fixed)} of {len(run.fixes)} modified resources."
    if counts["FAILED"]:
        step = "Some checks failed (see each error): fix the credentials or permissions and "
        step += "detect again. A failed check is never taken as a deletion."
    elif run.remaining_drift:
        step = (
            "Show the differences and their severity to the user. To restore the recorded "
            "state call detect_drift(identifier, auto_fix=True); to accept AWS's values call "
            "refresh_state(identifier); a DELETED resource must be re-created, or removed from "
            "the state with forget_resource(identifier, reason)."
        )
    else:
        step = "Nothing to do."
    return text, step


def _not_in_state(identifier: str) -> NotFound:
    return NotFound(
        f"{identifier} is not in the state of this workspace.",
        next_step="Call load_state() to see the managed resources, or import_resource first.",
    )


async def monitor_drift(
    runtime: Runtime, interval: float, *, stop: asyncio.Event | None = None
) -> int:
    """What ``serve --drift-interval`` runs beside the server: a drift check of every managed
    resource every ``interval`` seconds, each recorded as a commit; with the
    ``auto_remediation`` setting, drift is fixed through the token workflow. Runs until
    ``stop`` is set or the task is cancelled."""
    from ccstate.service.drift.monitor import run_drift_monitor

    detector, remediator = drift_parts(runtime)
    fix = runtime.auto_remediation and runtime.policy.allows(None, "remediate")

    async def meta() -> CommitMeta:
        return commit_meta(
            await runtime.identify(), f"Scheduled drift check (every {interval:g} s)."
        )

    def report(run: DriftRun | None, error: CcstateError | None) -> None:
        if run is not None and run.remaining_drift:
            log.warning("drifted resources: %s", ", ".join(run.remaining_drift))

    readonly = runtime.readonly
    log.info("drift monitor: every %g s%s", interval, " with auto-remediation" if fix else "")
    if readonly:
        log.warning("drift monitor on a read-only server: checks are logged, not recorded")
    return await run_drift_monitor(
        detector,
        interval=interval,
        meta=meta,
        remediator=remediator,
        auto_fix=fix,
        record=not readonly,
        on_run=report,
        stop=stop,
        principal=runtime.identify,
    )
