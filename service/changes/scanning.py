"""Security scanning of a proposed resource before it may be executed.

A scan PASSED, FAILED (a check failed: the change is refused), SKIPPED (the operator set
SECURITY_SCANNING=disabled; the lineage says "not scanned") or was UNAVAILABLE (no scanner
installed: nothing is authorized until one is, or scanning is disabled).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ScanStatus = Literal["PASSED", "FAILED", "SKIPPED", "UNAVAILABLE"]
AUTHORIZING = frozenset({"PASSED", "SKIPPED"})
# Severities counted as critical. Open-source checkov reports no severity (None) without a
# Prisma Cloud key; an unknown severity is treated as critical rather than waved through.
CRITICAL_SEVERITIES = frozenset({"CRITICAL", "HIGH", None})
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

    @property
    def authorizes_execution(self) -> bool:
        return self.status in AUTHORIZING

    def summary(self) -> str:
        if self.status == "SKIPPED":
            return "not scanned (security scanning disabled)"
        if self.status == "UNAVAILABLE":
            return "no scanner available"
        text = f"{self.passed} checks passed, {self.failed} failed"
        if self.failed_checks:
            text += ": " + ", ".join(str(c.get("id")) for c in self.failed_checks[:5])
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
        }


def completed_result(
    passed: int, failed_checks: list[dict[str, Any]], *, scanner: str, message: str = ""
) -> ScanResult:
    """A completed scan's result: FAILED when any check failed, else PASSED."""
    critical = [
        f"{c['id']}: {c['name']}"
        for c in failed_checks
        if (c.get("severity") or None) in CRITICAL_SEVERITIES
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


def skipped_result() -> ScanResult:
    return ScanResult(
        status="SKIPPED",
        message="Security scanning is disabled (SECURITY_SCANNING=disabled): not scanned.",
        scanner="none",
    )


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
