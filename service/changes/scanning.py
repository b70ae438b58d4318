"""Security scanning of a proposed resource before it may be executed.

A scan PASSED, FAILED (a check failed), SKIPPED (the operator set SECURITY_SCANNING=disabled;
the lineage says "not scanned", and "skipped by caller" when the caller asked with
``skip_security_check``) or was UNAVAILABLE (no scanner installed: nothing is authorized until
one is, or scanning is disabled).

A FAILED scan authorizes nothing by itself. A person may accept its findings
(``approve_security_findings``): ``accept_findings`` returns the result with the accepted check
ids, the reason and who accepted, and that result authorizes exactly the change scanned. Every
failed check must be named; a CRITICAL one only when the operator allows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from ccstate.service.errors import InvalidInput, PolicyDenied

ScanStatus = Literal["PASSED", "FAILED", "SKIPPED", "UNAVAILABLE"]
AUTHORIZING = frozenset({"PASSED", "SKIPPED"})
# Severities counted as critical: a person cannot accept these unless the operator allows it.
# Open-source checkov reports no severity (None) without a Prisma Cloud key: such a finding is
# not waved through either, since a person must accept it by its id (docs/decisions.md).
CRITICAL_SEVERITIES = frozenset({"CRITICAL"})
SKIPPED_BY_CALLER = "not scanned: skipped by caller"
INSTALL_HINT = "ccstate scanner install"


@dataclass(frozen=True)
class ScanResult:
    status: ScanStatus
    passed: int = 0
    failed: int = 0
    critical_issues: list[str] = field(default_factory=list)
    # Each: {"id": "CKV_AWS_53", "name": "...", "severity": "HIGH" | None, "path": "/..."}
    failed_checks: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    scanner: str = ""
    skipped_by: str = ""  # SKIPPED: "operator" (run_checkov) or "caller" (skip_security_check)
    # A FAILED scan whose findings a person accepted: {"checks", "reason", "accepted_by", "at"}.
    accepted: dict[str, Any] | None = None

    @property
    def authorizes_execution(self) -> bool:
        return self.status in AUTHORIZING or (self.status == "FAILED" and self.accepted is not None)

    @property
    def failed_ids(self) -> list[str]:
        return [str(c.get("id")) for c in self.failed_checks]

    def summary(self) -> str:
        if self.status == "SKIPPED":
            if self.skipped_by == "caller":
                return f"{SKIPPED_BY_CALLER} (skip_security_check; SECURITY_SCANNING=disabled)"
            return "not scanned (security scanning disabled)"
        if self.status == "UNAVAILABLE":
            return "no scanner available"
        text = f"{self.passed} checks passed, {self.failed} failed"
        if self.failed_checks:
            text += ": " + ", ".join(str(c.get("id")) for c in self.failed_checks[:5])
        if self.accepted is not None:
            text += f"; findings accepted by {self.accepted.get('accepted_by')}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def checkov_results(self) -> dict[str, Any]:
        """The lineage entry's ``checkov_results``: the seed's three keys plus the detail."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "critical_issues": list(self.critical_issues),
            "status": self.status,
            "failed_checks": [dict(c) for c in self.failed_checks],
            "summary": self.summary(),
            **({"accepted_findings": dict(self.accepted)} if self.accepted else {}),
        }


def completed_result(
    passed: int, failed_checks: list[dict[str, Any]], *, scanner: str, message: str = ""
) -> ScanResult:
    """A completed scan's result: FAILED when any check failed, else PASSED."""
    critical = [
        f"{c['id']}: {c['name']}"
        for c in failed_checks
        if str(c.get("severity") or "").upper() in CRITICAL_SEVERITIES
    ]
    return ScanResult(
        status="FAILED" if failed_checks else "PASSED",
        passed=passed,
        failed=len(failed_checks),
        critical_issues=critical,
        failed_checks=failed_checks,
        message=message,
        scanner=scanner,
    )


def skipped_result(*, by_caller: bool = False) -> ScanResult:
    if by_caller:
        return ScanResult(
            status="SKIPPED",
            message="Not scanned: the caller passed skip_security_check=True, which the "
            "operator allows by SECURITY_SCANNING=disabled.",
            scanner="none",
            skipped_by="caller",
        )
    return ScanResult(
        status="SKIPPED",
        message="Security scanning is disabled (SECURITY_SCANNING=disabled): not scanned.",
        scanner="none",
        skipped_by="operator",
    )


def accept_findings(
    result: ScanResult,
    checks: Iterable[str],
    *,
    reason: str,
    accepted_by: str,
    at: str,
    allow_critical: bool = False,
) -> ScanResult:
    """The FAILED ``result`` with a person's acceptance of exactly its failed checks."""
    if result.status != "FAILED":
        raise InvalidInput(
            f"Only a FAILED scan has findings to accept; this one is {result.status}.",
            next_step="A PASSED scan's security_scan_token already authorizes the change.",
        )
    named = list(dict.fromkeys(str(c).strip() for c in checks))
    failed = result.failed_ids
    missing = [c for c in failed if c not in named]
    unknown = [c for c in named if c not in failed]
    if missing or unknown:
        raise InvalidInput(
            "accepted_checks must name exactly the failed checks: "
            + (f"missing {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"not failed {', '.join(unknown)}" if unknown else "")
            + ".",
            next_step=f"Show the user the failed checks ({', '.join(failed)}) and pass the "
            "ones they accept, all of them, as accepted_checks; or fix the properties.",
            field="accepted_checks",
            failed_checks=failed,
        )
    critical = [
        str(c.get("id"))
        for c in result.failed_checks
        if str(c.get("severity") or "").upper() in CRITICAL_SEVERITIES
    ]
    if critical and not allow_critical:
        raise PolicyDenied(
            f"Critical findings cannot be accepted here: {', '.join(critical)}.",
            next_step="Fix the properties and start again with ${prepare}. "
            "Only the operator can allow accepting critical findings (accept_critical_findings "
            "in the state_management config, or CCSTATE_ACCEPT_CRITICAL_FINDINGS=true).",
            critical_checks=critical,
        )
    accepted = {"checks": failed, "reason": reason, "accepted_by": accepted_by, "at": at}
    if critical:
        accepted["critical_checks"] = critical
    return replace(result, accepted=accepted)


@runtime_checkable
class SecurityScanner(Protocol):
    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult: ...


class DisabledScanner:
    """What SECURITY_SCANNING=disabled wires in: every scan is SKIPPED, and says so."""

    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        return skipped_result()


def scanning_disabled(env: dict[str, str]) -> bool:
    return env.get("SECURITY_SCANNING", "enabled").strip().lower() in {"disabled", "off", "false"}


class UnavailableScanner:
    """What runs when checkov is not installed: nothing is authorized, and it says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        return ScanResult(status="UNAVAILABLE", message=self.reason, scanner="none")
