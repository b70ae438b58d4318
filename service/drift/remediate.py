"""Fix drift the way a person would: through the execution-token workflow, recorded as
``remediate``.

A remediation is an ordinary update, driven by ``changes.runner``. It takes the same token
chain as a human change (credentials -> generate code -> explain -> security scan -> update),
so a failed scan authorizes nothing, the explanation is recorded, and the token is the key of
the lineage entry. The only differences are what is recorded: the operation is ``remediate``
(not ``update``), and the change carries the drift it fixed in its ``drift_status``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ccstate.service.authz.principal import Principal
from ccstate.service.changes.runner import ChangeRequest, ChangeRunner, scan_refusal
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
    """Restores recorded properties through the ``ChangeRunner`` (the token workflow)."""

    def __init__(self, detector: DriftDetector, runner: ChangeRunner) -> None:
        self.detector = detector
        self.runner = runner

    async def remediate(
        self,
        principal: Principal,
        identifier: str,
        *,
        user_intent: str = "",
        drift: ResourceDrift | None = None,
    ) -> FixOutcome:
        """Check ``identifier`` again (the cloud may have moved since ``drift``), then fix it
        for ``principal``.

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
            return await self._apply(principal, plan, user_intent or _default_intent(plan))
        except CcstateError as exc:
            log.warning("remediation of %s failed: %s", identifier, exc)
            return FixOutcome(
                identifier, plan.resource_type, "FAILED", exc.message, plan, error=exc.to_dict()
            )

    async def remediate_all(
        self, principal: Principal, drifted: Iterable[ResourceDrift], *, user_intent: str = ""
    ) -> list[FixOutcome]:
        """One at a time: each fix takes the resource's lock and commits its own entry."""
        return [
            await self.remediate(principal, r.identifier, user_intent=user_intent, drift=r)
            for r in drifted
            if r.status == "MODIFIED"
        ]

    async def _apply(self, principal: Principal, plan: RemediationPlan, intent: str) -> FixOutcome:
        recorded = await self.detector.store.get_resource(plan.identifier)
        run = await self.runner.run(
            principal,
            ChangeRequest(
                operation="update",
                resource_type=plan.resource_type,
                identifier=plan.identifier,
                patch=plan.patch,
                user_intent=intent,
                record_as=REMEDIATE,
                drift_status=remediated_status(plan),
                region=recorded.region if recorded else None,  # fixed where it is
            ),
        )
        scan = None
        if run.scan is not None:
            scan = {"scan_status": run.scan.result.status, "summary": run.scan.result.summary()}
        if not run.done or run.outcome is None:
            refused = run.scan.result if run.scan is not None else None
            return FixOutcome(
                plan.identifier,
                plan.resource_type,
                "REFUSED",
                scan_refusal(refused, "fix") if refused is not None else run.reason,
                plan,
                explanation=run.explanation.text,
                scan=scan,
            )
        done = run.outcome
        return FixOutcome(
            plan.identifier,
            plan.resource_type,
            "REMEDIATED",
            plan.reason,
            plan,
            explanation=run.explanation.text,
            scan=scan,
            state_serial=done.state_serial,
            execution_token=done.execution_token,
            properties=done.properties,
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
