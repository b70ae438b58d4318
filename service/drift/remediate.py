"""Fix drift the way a person would: through the execution-token workflow, recorded as
``remediate``.

A remediation is an ordinary update. It takes the same token chain as a human change
(credentials -> generate code -> explain -> security scan -> update), so a failed scan authorizes
nothing, the explanation is recorded, and the token is the key of the lineage entry. The only
differences are what is recorded: the operation is ``remediate`` (not ``update``), and the
change carries the drift it fixed in its ``drift_status``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ccstate.service.changes.executor import ResourceOperations
from ccstate.service.changes.workflow import Workflow
from ccstate.service.drift.compare import PropertyDifference
from ccstate.service.drift.detect import DriftDetector, ResourceDrift
from ccstate.service.drift.plan import RemediationPlan
from ccstate.service.errors import CcstateError
from ccstate.service.state.model import DriftStatus, utc_now_iso

log = logging.getLogger(__name__)

FixStatus = Literal["REMEDIATED", "NOT_REMEDIABLE", "REFUSED", "FAILED"]
REMEDIATE = "remediate"


@dataclass
class FixOutcome:
    """What happened to one drifted resource."""

    identifier: str
    resource_type: str
    status: FixStatus
    reason: str
    plan: RemediationPlan | None = None
    explanation: str | None = None
    scan: dict[str, Any] | None = None
    state_serial: int | None = None
    execution_token: str | None = None
    error: dict[str, Any] | None = None
    properties: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def fixed(self) -> bool:
        return self.status == "REMEDIATED"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identifier": self.identifier,
            "resource_type": self.resource_type,
            "status": self.status,
            "reason": self.reason,
        }
        if self.plan is not None:
            out["patch"] = self.plan.patch
            out["fixed_differences"] = [d.to_dict() for d in fixed_differences(self.plan)]
            out["blocked"] = [b.to_dict() for b in self.plan.blocked]
        for name in ("explanation", "scan", "state_serial", "execution_token", "error"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class DriftRemediator:
    """Restores recorded properties through ``Workflow`` and ``ResourceOperations``."""

    def __init__(
        self, detector: DriftDetector, workflow: Workflow, operations: ResourceOperations
    ) -> None:
        self.detector = detector
        self.workflow = workflow
        self.operations = operations

    async def remediate(
        self, identifier: str, *, user_intent: str = "", drift: ResourceDrift | None = None
    ) -> FixOutcome:
        """Check ``identifier`` again (the cloud may have moved since ``drift``), then fix it.

        Never raises for one resource's failure: the outcome says what happened, so fixing a
        whole scan does not stop at the first resource that cannot be fixed.
        """
        type_name = drift.resource_type if drift is not None else ""
        try:
            plan = await self.detector.plan_remediation(identifier)
        except CcstateError as exc:
            return FixOutcome(identifier, type_name, "FAILED", exc.message, error=exc.to_dict())
        if not plan.remediable:
            return FixOutcome(identifier, plan.resource_type, "NOT_REMEDIABLE", plan.reason, plan)
        try:
            return await self._apply(plan, user_intent or _default_intent(plan))
        except CcstateError as exc:
            log.warning("remediation of %s failed: %s", identifier, exc)
            return FixOutcome(
                identifier, plan.resource_type, "FAILED", exc.message, plan, error=exc.to_dict()
            )

    async def remediate_all(
        self, drifted: Iterable[ResourceDrift], *, user_intent: str = ""
    ) -> list[FixOutcome]:
        """One at a time: each fix takes the resource's lock and commits its own entry."""
        return [
            await self.remediate(r.identifier, user_intent=user_intent, drift=r)
            for r in drifted
            if r.status == "MODIFIED"
        ]

    async def _apply(self, plan: RemediationPlan, intent: str) -> FixOutcome:
        flow = self.workflow
        session = await flow.session_info()
        credentials = session["credentials_token"]
        generated = await flow.generate(
            credentials_token=credentials,
            resource_type=plan.resource_type,
            operation="update",
            identifier=plan.identifier,
            patch_document=plan.patch,
        )
        explained = await flow.explain(
            generated_code_token=generated["generated_code_token"], user_intent=intent
        )
        scanned = await flow.scan(explained_token=explained["explained_token"])
        scan = {k: scanned[k] for k in ("scan_status", "summary") if k in scanned}
        if "security_scan_token" not in scanned:
            return FixOutcome(
                plan.identifier,
                plan.resource_type,
                "REFUSED",
                f"The security scan did not authorize the fix ({scanned.get('scan_status')}): "
                f"{scanned.get('next_step', '')}".strip(),
                plan,
                explanation=explained["explanation"],
                scan=scan,
            )
        done = await self.operations.update(
            resource_type=plan.resource_type,
            identifier=plan.identifier,
            patch_document=plan.patch,
            credentials_token=credentials,
            explained_token=explained["explained_token"],
            security_scan_token=scanned["security_scan_token"],
            record_as=REMEDIATE,
            drift_status=remediated_status(plan),
        )
        return FixOutcome(
            plan.identifier,
            plan.resource_type,
            "REMEDIATED",
            plan.reason,
            plan,
            explanation=explained["explanation"],
            scan=scan,
            state_serial=done.get("state_serial"),
            execution_token=done.get("execution_token"),
            properties=done.get("properties"),
        )


def remediated_status(plan: RemediationPlan) -> DriftStatus:
    """The drift status a successful remediation leaves: what it fixed, and what it could not."""
    details: dict[str, Any] = {
        "remediated": [d.to_dict() for d in fixed_differences(plan)],
        "patch": plan.patch,
    }
    if plan.blocked:
        details["blocked"] = [b.to_dict() for b in plan.blocked]
    return DriftStatus(
        last_checked=utc_now_iso(),
        drift_detected=bool(plan.blocked),
        drift_details=details,
        status="MODIFIED" if plan.blocked else "IN_SYNC",
    )


def fixed_differences(plan: RemediationPlan) -> list[PropertyDifference]:
    blocked = {b.path for b in plan.blocked}
    return [d for d in plan.differences if d.path not in blocked]


def _default_intent(plan: RemediationPlan) -> str:
    paths = ", ".join(sorted({d.path for d in fixed_differences(plan)}))
    return f"Remediate drift: restore the recorded value of {paths} (changed outside ccstate)."
