"""One typed driver of a change: generate -> explain -> scan -> execute.

What an assistant does over five MCP calls, done in-process for a use case that decides on its
own (drift remediation today; rollback and stacks next). Every step is the same as a person's:
the same tokens, bound to the same principal; a scan that does not pass stops the run with
``REFUSED`` and executes nothing; the execution is one recorded lineage entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ccstate.service.authz.principal import Principal
from ccstate.service.changes.executor import ChangeOutcome, ResourceOperations
from ccstate.service.changes.scanning import ScanResult
from ccstate.service.changes.workflow import Explanation, GeneratedChange, ScanOutcome, Workflow
from ccstate.service.state.model import DriftStatus

RunStatus = Literal["DONE", "REFUSED"]


@dataclass(frozen=True)
class ChangeRequest:
    """The change to make. ``record_as``/``drift_status``: how the lineage entry records it
    (a remediation is an update recorded as ``remediate`` with the drift it fixed)."""

    operation: Literal["create", "update", "delete"]
    resource_type: str
    identifier: str = ""
    properties: dict[str, Any] | None = None
    patch: list[dict[str, Any]] | None = None
    user_intent: str = ""
    record_as: str | None = None
    drift_status: DriftStatus | None = None
    region: str | None = None  # where the resource is (None: the server's region)


@dataclass(frozen=True)
class ChangeRun:
    status: RunStatus
    generated: GeneratedChange
    explanation: Explanation
    scan: ScanOutcome | None  # None for a delete: nothing to scan
    outcome: ChangeOutcome | None  # None when refused
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.status == "DONE"


class ChangeRunner:
    def __init__(self, workflow: Workflow, operations: ResourceOperations) -> None:
        self.workflow = workflow
        self.operations = operations

    async def run(self, principal: Principal, request: ChangeRequest) -> ChangeRun:
        """Raises the domain error of a step that refuses (tokens, input, the cloud); a scan
        that does not authorize returns ``REFUSED`` with the reason."""
        flow = self.workflow
        session = await flow.session_info(principal)
        credentials = session.credentials.token
        generated = await flow.generate(
            principal,
            credentials_token=credentials,
            resource_type=request.resource_type,
            operation=request.operation,
            properties=request.properties,
            identifier=request.identifier,
            patch_document=request.patch,
            region=request.region,
        )
        explanation = await flow.explain(
            principal, generated_code_token=generated.token.token, user_intent=request.user_intent
        )
        assert explanation.token is not None  # a generated change always gets a token
        explained = explanation.token.token
        if request.operation == "delete":
            done = await self.operations.delete(
                principal,
                resource_type=request.resource_type,
                identifier=request.identifier,
                credentials_token=credentials,
                explained_token=explained,
                confirmed=True,
                region=request.region,
            )
            return ChangeRun("DONE", generated, explanation, None, done)
        scan = await flow.scan(principal, explained_token=explained)
        if scan.token is None:
            return ChangeRun(
                "REFUSED", generated, explanation, scan, None, scan_refusal(scan.result)
            )
        if request.operation == "create":
            done = await self.operations.create(
                principal,
                resource_type=request.resource_type,
                credentials_token=credentials,
                explained_token=explained,
                security_scan_token=scan.token.token,
                region=request.region,
            )
        else:
            done = await self.operations.update(
                principal,
                resource_type=request.resource_type,
                identifier=generated.identifier or request.identifier,
                patch_document=request.patch,
                credentials_token=credentials,
                explained_token=explained,
                security_scan_token=scan.token.token,
                record_as=request.record_as or "update",
                drift_status=request.drift_status,
                region=request.region,
            )
        return ChangeRun("DONE", generated, explanation, scan, done)


def scan_refusal(result: ScanResult, what: str = "change") -> str:
    """Why a scan authorized nothing (``what``: the change, the fix), naming no tool."""
    if result.status == "FAILED":
        detail = (
            "A failed scan authorizes nothing. Show the failed checks to the user, fix the "
            "properties and start again."
        )
    else:
        detail = result.message or (
            "The scan did not run: install the scanner (checkov), or start the server with "
            "SECURITY_SCANNING=disabled."
        )
    return f"The security scan did not authorize the {what} ({result.status}): {detail}"
