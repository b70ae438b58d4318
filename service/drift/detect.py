"""Drift detection, refresh and remediation planning: the use case over cloud, schemas and state.

``DriftDetector.scan`` reads every resource back through Cloud Control with bounded concurrency
and compares it with the recorded state (``ccstate.service.drift.compare``); ``record`` writes one
commit with a ``drift_check`` change per checked resource; ``refresh`` accepts the cloud's
properties into state; ``plan_remediation`` gives the patch that restores the recorded state,
which the token workflow applies and records as a ``remediate`` operation.

A resource the cloud says is gone is DELETED, never dropped. A check the cloud refuses
(credentials, throttling, outage) is FAILED, never DELETED, and when more than half of the
checks are refused for credentials the scan stops instead of hammering AWS with bad keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ccstate.service.changes.redaction import load_salt, matches_fingerprint, redact
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.compare import (
    Comparer,
    PropertyDifference,
    compare,
    schema_path_matches,
)
from ccstate.service.drift.plan import RemediationPlan, build_plan, plan_patch, remediation_patch
from ccstate.service.drift.rules import (
    DEFAULT_RULES,
    SEVERITY_RANK,
    SeverityRules,
    rules_with,
    split_pointer,
)
from ccstate.service.errors import AccessDenied, CcstateError, NotFound, StateConflict
from ccstate.service.ports import Clock as ClockPort
from ccstate.service.ports import CloudProvider, SchemaProvider, SystemClock, cloud_in
from ccstate.service.state.model import (
    Commit,
    CommitMeta,
    DriftStatus,
    ResourceChange,
    ResourceState,
    utc_now_iso,
)
from ccstate.service.state.store import StateStore

log = logging.getLogger(__name__)

DriftState = Literal["IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED", "FAILED"]
STATUSES: tuple[DriftState, ...] = ("IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED", "FAILED")
ProgressCallback = Callable[[int, int], None]
# Stop a scan when more than this share of the finished checks were refused for credentials...
AUTH_FAILURE_SHARE = 0.5
# ...once at least this many checks have finished (or all of them, for a smaller scan).
AUTH_ABORT_MIN_CHECKS = 20
MAX_RECORD_ATTEMPTS = 3

__all__ = [
    "DriftDetector",
    "DriftReport",
    "PropertyDifference",
    "RemediationPlan",
    "ResourceDrift",
    "compare",
    "plan_patch",
    "remediation_patch",
]


@dataclass
class ResourceDrift:
    """One resource's drift check."""

    identifier: str
    resource_type: str
    status: DriftState
    checked_at: str
    differences: list[PropertyDifference] = field(default_factory=list)
    remediation: RemediationPlan | None = None
    error: dict[str, Any] | None = None
    failure: CcstateError | None = field(default=None, repr=False, compare=False)

    @property
    def drift_detected(self) -> bool:
        return self.status in ("MODIFIED", "DELETED")

    @property
    def max_severity(self) -> str | None:
        if self.status == "DELETED":
            return "critical"
        return max((d.severity for d in self.differences), key=SEVERITY_RANK.get, default=None)

    def details(self) -> dict[str, Any]:
        """What a ``drift_check`` change stores as ``drift_details``."""
        out: dict[str, Any] = {"differences": [d.to_dict() for d in self.differences]}
        if self.remediation is not None:
            plan = self.remediation.to_dict()
            plan.pop("differences")
            out["remediation"] = plan
        if self.status == "DELETED":
            out["reason"] = "Cloud Control reports that the resource no longer exists."
        if self.error is not None:
            out["error"] = self.error
        return out

    def drift_status(self) -> DriftStatus:
        return DriftStatus(
            last_checked=self.checked_at,
            drift_detected=self.drift_detected,
            drift_details=self.details(),
            status=self.status,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "resource_type": self.resource_type,
            "status": self.status,
            "checked_at": self.checked_at,
            "drift_detected": self.drift_detected,
            "max_severity": self.max_severity,
            **self.details(),
        }


@dataclass
class DriftReport:
    results: list[ResourceDrift]
    started_at: str
    finished_at: str
    base_serial: int  # the state serial the checks compared against
    stopped_reason: str | None = None  # why the scan stopped early, if it did

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(r.status for r in self.results)
        return {status: found.get(status, 0) for status in STATUSES}

    @property
    def drifted(self) -> list[ResourceDrift]:
        return [r for r in self.results if r.drift_detected]

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "base_serial": self.base_serial,
            "stopped_reason": self.stopped_reason,
            "counts": self.counts,
            "resources": [r.to_dict() for r in self.results],
        }


class DriftDetector:
    def __init__(
        self,
        cloud: CloudProvider,
        schemas: SchemaProvider,
        store: StateStore,
        *,
        concurrency: int = 16,
        clock: ClockPort | None = None,
        severity_rules: SeverityRules | Iterable[Mapping[str, Any]] | None = None,
        salt: bytes | None = None,
        auth_abort_min_checks: int = AUTH_ABORT_MIN_CHECKS,
    ) -> None:
        """``severity_rules``: a table, or the user's extra rule dicts (tried before defaults).

        ``salt`` is the workspace's fingerprint salt; by default it is read from the store's
        backend on first use, so secrets recorded as fingerprints can still be judged.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.cloud = cloud
        self.schemas = schemas
        self.store = store
        self.concurrency = concurrency
        self.clock = clock or SystemClock()
        if severity_rules is None:
            self.rules = DEFAULT_RULES
        elif isinstance(severity_rules, SeverityRules):
            self.rules = severity_rules
        else:
            self.rules = rules_with(severity_rules)
        self._salt = salt
        self._comparers: dict[str, Comparer] = {}
        self.auth_abort_min_checks = auth_abort_min_checks

    # ================================================================== checking

    async def check(self, identifier: str) -> ResourceDrift:
        """Compare one resource of the state with the cloud."""
        resource = await self.store.get_resource(identifier)
        if resource is None:
            raise _not_in_state(identifier)
        return await self._check(identifier, resource)

    async def scan(
        self,
        identifiers: Iterable[str] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> DriftReport:
        """Check ``identifiers`` (default: every resource in state) with bounded concurrency.

        A fixed pool of ``concurrency`` workers takes identifiers one at a time, so memory
        stays flat however many resources there are. Identifiers not in state are NOT_CHECKED.
        """
        view = await self.store.current()
        resources = view.resources
        keys = list(resources) if identifiers is None else list(dict.fromkeys(identifiers))
        started = self._now()
        scan = _Scan(keys, on_progress, self.auth_abort_min_checks)

        async def worker() -> None:
            while (item := scan.take()) is not None:
                index, key = item
                resource = resources.get(key)
                if resource is None:
                    result = self._not_checked(key, "The resource is not in the state.")
                else:
                    result = await self._check(key, resource)
                scan.finish(index, result)

        await self._salt_value()
        workers = min(self.concurrency, len(keys))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return DriftReport(
            results=scan.results(self._stopped_result, resources),
            started_at=started,
            finished_at=self._now(),
            base_serial=view.serial,
            stopped_reason=scan.stopped_reason,
        )

    async def _check(self, key: str, resource: ResourceState) -> ResourceDrift:
        type_name = resource.resource_type
        try:
            schema = await self.schemas.get_schema(type_name)
        except CcstateError as exc:
            return self._failed(key, type_name, exc)
        try:
            found = await cloud_in(self.cloud, resource.region).get_resource(
                type_name, resource.identifier
            )
        except NotFound:
            return ResourceDrift(key, type_name, "DELETED", self._now())
        except CcstateError as exc:
            return self._failed(key, type_name, exc)
        except Exception as exc:  # one broken resource must not sink a scan of thousands
            log.exception("drift check of %s failed unexpectedly", key)
            return self._failed(key, type_name, CcstateError(f"{type(exc).__name__}: {exc}"))
        return await self._judge(key, resource, schema, found.properties)

    async def _judge(
        self,
        key: str,
        resource: ResourceState,
        schema: ResourceSchema,
        actual: dict[str, Any],
    ) -> ResourceDrift:
        expected = resource.current_properties
        differences = (await self._comparer(schema)).compare(expected, actual)
        if not differences:
            return ResourceDrift(key, resource.resource_type, "IN_SYNC", self._now())
        shown = [await self._hide_secrets(d) for d in differences]
        plan = build_plan(key, resource.resource_type, differences, expected, schema)
        return ResourceDrift(
            key,
            resource.resource_type,
            "MODIFIED",
            self._now(),
            differences=shown,
            remediation=replace(plan, differences=shown),
        )

    def _failed(self, key: str, type_name: str, exc: CcstateError) -> ResourceDrift:
        return ResourceDrift(
            key, type_name, "FAILED", self._now(), error=exc.to_dict(), failure=exc
        )

    def _not_checked(self, key: str, why: str) -> ResourceDrift:
        return ResourceDrift(
            key, "", "NOT_CHECKED", self._now(), error={"error": "not_checked", "message": why}
        )

    def _stopped_result(self, key: str, resource: ResourceState | None, why: str) -> ResourceDrift:
        type_name = resource.resource_type if resource is not None else ""
        exc = AccessDenied(
            f"{key} was not checked: {why}",
            next_step="Check the AWS credentials and permissions (cloudcontrol:GetResource), "
            "then scan again.",
        )
        return self._failed(key, type_name, exc)

    # ================================================================== recording

    async def record(self, report: DriftReport, meta: CommitMeta) -> Commit | None:
        """One commit with a ``drift_check`` change per checked resource (None if none was).

        A FAILED check is recorded as a failed change: the history shows the attempt and the
        resource keeps its last known drift status. Resources changed by someone else since
        the scan read the state are left out (their check compared against stale properties).
        """
        changes = [_drift_change(r) for r in report.results if r.status != "NOT_CHECKED"]
        if meta.kind == "change":
            meta = meta.model_copy(update={"kind": "drift"})
        for _ in range(MAX_RECORD_ATTEMPTS):
            if not changes:
                return None
            try:
                return await self.store.commit(changes, meta, base_serial=report.base_serial)
            except StateConflict as exc:
                stale = set(exc.resources)
                if not stale & {c.identifier for c in changes}:
                    raise
                log.warning("drift results of %s are stale; not recorded", ", ".join(sorted(stale)))
                changes = [c for c in changes if c.identifier not in stale]
        raise StateConflict(
            "The state kept changing while the drift results were recorded.",
            resources=sorted(c.identifier for c in changes),
            authors=[],
            next_step="Scan again.",
        )

    # ================================================================== refresh

    async def refresh(self, identifier: str, meta: CommitMeta) -> Commit:
        """Accept the cloud's current properties into state, recorded as a ``refresh`` change."""
        resource = await self.store.get_resource(identifier)
        if resource is None:
            raise _not_in_state(identifier)
        base = await self.store.head()
        type_name = resource.resource_type
        schema = await self.schemas.get_schema(type_name)
        try:
            found = await cloud_in(self.cloud, resource.region).get_resource(
                type_name, resource.identifier
            )
        except NotFound as exc:
            raise NotFound(
                f"{type_name} {identifier} no longer exists in the cloud; refresh cannot accept "
                "a deletion.",
                next_step="Forget it to drop it from state, or re-create it.",
            ) from exc
        salt = await self._salt_value()
        accepted = _accepted_properties(resource.current_properties, found.properties, schema)
        after = redact(accepted, schema, salt)
        comparer = await self._comparer(schema)
        differences = comparer.compare(resource.current_properties, found.properties)
        shown = [await self._hide_secrets(d) for d in differences]
        now = self._now()
        change = ResourceChange(
            identifier=identifier,
            resource_type=type_name,
            operation="refresh",
            region=resource.region,
            account_id=resource.account_id,
            properties_before=resource.current_properties,
            properties_after=after,
            drift_status=DriftStatus(
                last_checked=now,
                drift_detected=False,
                drift_details={"accepted": [d.to_dict() for d in shown]},
                status="IN_SYNC",
            ),
            explanation=meta.explanation
            or f"Accepted the cloud's properties into state ({len(shown)} differences).",
        )
        return await self.store.commit([change], meta, base_serial=base)

    # ================================================================== remediation

    async def plan_remediation(self, identifier: str) -> RemediationPlan:
        """The patch (for Cloud Control UpdateResource) that restores the recorded properties.

        Raises what the cloud raised when the check could not be made.
        """
        result = await self.check(identifier)
        if result.failure is not None:
            raise result.failure
        if result.remediation is not None:
            return result.remediation
        if result.status == "DELETED":
            return RemediationPlan(
                identifier=identifier,
                resource_type=result.resource_type,
                patch=[],
                differences=[],
                remediable=False,
                reason="The resource no longer exists in the cloud; an update cannot bring it "
                "back. Re-create it from the recorded properties, or forget it (remove it from "
                "the state, recorded with a reason).",
            )
        return build_plan(identifier, result.resource_type, [], {})

    # ================================================================== secrets

    async def _salt_value(self) -> bytes:
        if self._salt is None:
            self._salt = await load_salt(self.store.objects, self.store.workspace)
        return self._salt

    async def _comparer(self, schema: ResourceSchema) -> Comparer:
        cached = self._comparers.get(schema.type_name)
        if cached is None or cached.schema is not schema:
            salt = await self._salt_value()

            def matcher(recorded: str, value: Any) -> bool:
                return matches_fingerprint(value, recorded, salt)

            cached = Comparer(schema, self.rules, matcher)
            self._comparers[schema.type_name] = cached
        return cached

    async def _hide_secrets(self, difference: PropertyDifference) -> PropertyDifference:
        """Fingerprint secret-looking values the cloud returned before they reach a report."""
        salt = await self._salt_value()
        name = (split_pointer(difference.path) or ["value"])[-1]
        hidden = redact({name: difference.actual}, None, salt)[name]
        if hidden == difference.actual:
            return difference
        return replace(difference, actual=hidden)

    def _now(self) -> str:
        return utc_now_iso(self.clock.now())


class _Scan:
    """Bookkeeping of one scan: which index comes next, results, and the credential brake."""

    def __init__(
        self, keys: list[str], on_progress: ProgressCallback | None, min_checks: int
    ) -> None:
        self.keys = keys
        self.on_progress = on_progress
        self.min_checks = min(min_checks, len(keys))
        self.found: list[ResourceDrift | None] = [None] * len(keys)
        self.done = 0
        self.refused = 0
        self.stopped_reason: str | None = None
        self.cursor = 0

    def take(self) -> tuple[int, str] | None:
        """The next (index, key), or None when done or stopped. Workers share one cursor;
        asyncio runs one of them at a time, so no two take the same key."""
        if self.stopped_reason is not None or self.cursor >= len(self.keys):
            return None
        self.cursor += 1
        return self.cursor - 1, self.keys[self.cursor - 1]

    def finish(self, index: int, result: ResourceDrift) -> None:
        self.found[index] = result
        self.done += 1
        if isinstance(result.failure, AccessDenied):
            self.refused += 1
        if (
            self.stopped_reason is None
            and self.done >= self.min_checks
            and self.refused > self.done * AUTH_FAILURE_SHARE
        ):
            self.stopped_reason = (
                f"stopped after {self.refused} of {self.done} checks were refused for "
                "credentials or permissions"
            )
        if self.on_progress is not None:
            self.on_progress(self.done, len(self.keys))

    def results(
        self,
        stopped: Callable[[str, ResourceState | None, str], ResourceDrift],
        resources: Mapping[str, ResourceState],
    ) -> list[ResourceDrift]:
        out: list[ResourceDrift] = []
        for key, result in zip(self.keys, self.found, strict=True):
            if result is None:
                result = stopped(key, resources.get(key), self.stopped_reason or "scan stopped")
            out.append(result)
        if self.on_progress is not None and self.done < len(self.keys):
            self.on_progress(len(self.keys), len(self.keys))
        return out


def _drift_change(result: ResourceDrift) -> ResourceChange:
    return ResourceChange(
        identifier=result.identifier,
        resource_type=result.resource_type,
        operation="drift_check",
        outcome="FAILED" if result.status == "FAILED" else "SUCCESS",
        drift_status=result.drift_status(),
        error=result.error,
    )


def _not_in_state(identifier: str) -> NotFound:
    return NotFound(
        f"{identifier} is not in the state of this workspace.",
        next_step="List the resources in state with ${list_managed}, or import the resource "
        "first (${import}).",
    )


def _accepted_properties(
    stored: Mapping[str, Any], actual: Mapping[str, Any], schema: ResourceSchema
) -> dict[str, Any]:
    """The cloud's properties as state keeps them: no read-only values except the identifier,
    and the recorded write-only values (the cloud never returns those)."""
    keep = [tuple(split_pointer(p)) for p in schema.primary_identifier]
    drop = [
        tuple(split_pointer(p)) for p in schema.read_only if tuple(split_pointer(p)) not in keep
    ]
    out = _without(dict(actual), (), drop)
    for pointer in schema.write_only:
        _carry(stored, out, split_pointer(pointer))
    return out


def _without(value: Any, path: tuple[str, ...], drop: list[tuple[str, ...]]) -> Any:
    if isinstance(value, dict):
        return {
            k: _without(v, (*path, k), drop)
            for k, v in value.items()
            if not any(schema_path_matches(p, (*path, k), prefix=False) for p in drop)
        }
    if isinstance(value, list):
        return [_without(v, (*path, str(i)), drop) for i, v in enumerate(value)]
    return value


def _carry(source: Any, target: Any, segments: list[str]) -> None:
    """Copy the value at ``segments`` (``*`` = every index) from source into target if absent."""
    if not segments:
        return
    head, rest = segments[0], segments[1:]
    if isinstance(source, dict) and isinstance(target, dict) and head in source:
        if not rest:
            target.setdefault(head, source[head])
        elif head in target:
            _carry(source[head], target[head], rest)
    elif isinstance(source, list) and isinstance(target, list):
        indexes = (
            range(min(len(source), len(target)))
            if head == "*"
            else (
                [int(head)] if head.isdigit() and int(head) < min(len(source), len(target)) else []
            )
        )
        for i in indexes:
            if rest:
                _carry(source[i], target[i], rest)
