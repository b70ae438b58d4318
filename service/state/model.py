"""The state model: the seed's single-file document, and the commit that changes it.

``StateDocument`` is the product seed's ``state.json`` exactly (version, metadata, resources with
lineage, stacks); it is the export and import format. ``Commit`` is one write-once entry of the
transaction log. Optional fields that the seed omits are omitted again on output
(``exclude_unset``), so the seed's example round-trips byte-for-byte in meaning.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STATE_VERSION = "1.0"
COMMIT_FORMAT = "ccstate.commit/1"
SNAPSHOT_FORMAT = "ccstate.snapshot/4"
# Still read: indexes complete up to the snapshot's serial, no ``pending`` (format /4 adds it).
SNAPSHOT_FORMAT_V3 = "ccstate.snapshot/3"
# Still read: every resource's serials in the snapshot (``history_index``), no index objects.
SNAPSHOT_FORMAT_V2 = "ccstate.snapshot/2"
MANAGED_BY = "CCAPI-MCP-SERVER"

# Operations after which the resource no longer exists in state.
REMOVING_OPERATIONS = frozenset({"delete", "forget"})
Outcome = Literal["SUCCESS", "FAILED"]


def utc_now_iso(now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8. Digests are computed over this."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


# --------------------------------------------------------------------------- the seed document


class CheckovResults(_Model):
    passed: int = 0
    failed: int = 0
    critical_issues: list[Any] = Field(default_factory=list)


class LineageEntry(_Model):
    execution_token: str | None = None
    operation: str
    timestamp: str
    user: str | None = None
    aws_session: str | None = None
    properties_before: dict[str, Any] | None = None
    properties_after: dict[str, Any] | None = None
    explanation: str | None = None
    user_intent: str | None = None
    checkov_results: dict[str, Any] | None = None
    patch_document: list[dict[str, Any]] | None = None
    # ccstate additions (absent in the seed's example, present in what ccstate writes)
    outcome: Outcome | None = None
    error: dict[str, Any] | None = None
    serial: int | None = None
    request_token: str | None = None  # Cloud Control's RequestToken of the change
    reconciled: dict[str, Any] | None = None  # set when the outcome was found after an interruption
    rolled_back_to: str | None = None  # a rollback: the execution token (sha256:) it undid to


class DriftStatus(_Model):
    last_checked: str | None = None
    drift_detected: bool = False
    drift_details: Any = None
    status: str | None = None  # IN_SYNC | MODIFIED | DELETED | NOT_CHECKED | FAILED


class Dependencies(_Model):
    depends_on: list[str] = Field(default_factory=list)
    dependents: list[str] = Field(default_factory=list)


class ResourceState(_Model):
    resource_type: str
    identifier: str
    region: str | None = None
    account_id: str | None = None
    current_properties: dict[str, Any] = Field(default_factory=dict)
    lineage: list[LineageEntry] = Field(default_factory=list)
    managed_by: str | None = MANAGED_BY
    created_at: str | None = None
    last_modified: str | None = None
    drift_status: DriftStatus = Field(default_factory=DriftStatus)
    dependencies: Dependencies = Field(default_factory=Dependencies)


class Stack(_Model):
    execution_token: str | None = None
    resources: list[str] = Field(default_factory=list)
    created_at: str | None = None
    user_intent: str | None = None
    status: str | None = None


class StateMetadata(_Model):
    created: str
    last_updated: str
    mcp_server_version: str | None = None
    total_resources: int = 0
    total_operations: int = 0
    # ccstate additions: which history this document belongs to, and its position in it.
    lineage: str | None = None
    serial: int | None = None
    workspace: str | None = None


class StateDocument(_Model):
    version: str = STATE_VERSION
    metadata: StateMetadata
    resources: dict[str, ResourceState] = Field(default_factory=dict)
    stacks: dict[str, Stack] = Field(default_factory=dict)


# --------------------------------------------------------------------------- the log


class Principal(_Model):
    """Who made a commit: the AWS identity and, on a shared server, the authenticated user."""

    user: str | None = None
    aws_session: str | None = None
    authenticated_user: str | None = None
    host: str | None = None

    def describe(self) -> str:
        return self.authenticated_user or self.user or self.aws_session or "unknown"


class ResourceChange(_Model):
    """One resource's part of a commit. Every change becomes one lineage entry of the resource."""

    identifier: str
    resource_type: str
    operation: str
    outcome: Outcome = "SUCCESS"
    region: str | None = None
    account_id: str | None = None
    properties_before: dict[str, Any] | None = None
    properties_after: dict[str, Any] | None = None
    patch_document: list[dict[str, Any]] | None = None
    checkov_results: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    drift_status: DriftStatus | None = None
    dependencies: Dependencies | None = None
    managed_by: str | None = None
    # Per-change overrides of the commit's intent (a stack commit explains each member).
    explanation: str | None = None
    user_intent: str | None = None
    request_token: str | None = None  # Cloud Control's RequestToken
    reconciled: dict[str, Any] | None = None  # how an interrupted change's outcome was found
    rolled_back_to: str | None = None


class StackChange(_Model):
    name: str
    stack: Stack | None = None  # None removes the stack


class CommitMeta(_Model):
    """What the caller says about a commit; the store adds serial, lineage and time."""

    principal: Principal = Field(default_factory=Principal)
    execution_token: str | None = None
    explanation: str | None = None
    user_intent: str | None = None
    kind: str = "change"  # change | restore | import | drift | migrate | void
    restored_from: int | None = None
    forced: bool = False


class Commit(_Model):
    format: str = COMMIT_FORMAT
    serial: int
    parent: int
    lineage: str
    committed_at: str
    principal: Principal = Field(default_factory=Principal)
    execution_token: str | None = None
    explanation: str | None = None
    user_intent: str | None = None
    kind: str = "change"
    restored_from: int | None = None
    forced: bool = False
    changes: list[ResourceChange] = Field(default_factory=list)
    stacks: list[StackChange] = Field(default_factory=list)
    # A restore or import replaces the whole state; carried so replay needs nothing else.
    replace_state: dict[str, Any] | None = None
    # The fencing token of the lock the commit was made under (None: made without a lock).
    fence: int | None = None
    # Index upkeep done before this commit (S3): per resource, the serials its writer merged
    # into the resource's index object (indexes.py); left out of the file when None.
    indexed: dict[str, list[int]] | None = None
    sha256: str | None = None

    @property
    def whole_workspace(self) -> bool:
        """A restore or import: it may change any resource of the workspace."""
        return self.replace_state is not None or self.kind in ("restore", "import")

    def resources_touched(self) -> set[str]:
        touched = {c.identifier for c in self.changes}
        if self.replace_state is not None:
            touched.add("*")
        return touched

    def summary(self) -> str:
        if self.kind == "restore":
            return f"restore to serial {self.restored_from}"
        if self.kind == "void":
            return "void: a serial handed out but never written"
        if self.kind == "import":
            return "import of a state document" + (" (forced)" if self.forced else "")
        parts = [
            f"{c.operation} {c.identifier}" + ("" if c.outcome == "SUCCESS" else " FAILED")
            for c in self.changes[:3]
        ]
        if len(self.changes) > 3:
            parts.append(f"and {len(self.changes) - 3} more")
        parts += [f"stack {s.name}" for s in self.stacks[:2]]
        return ", ".join(parts) or self.kind

    def lineage_entry(self, change: ResourceChange) -> LineageEntry:
        extra: dict[str, Any] = {}
        if change.request_token:
            extra["request_token"] = change.request_token
        if change.reconciled:
            extra["reconciled"] = change.reconciled
        if change.rolled_back_to:
            extra["rolled_back_to"] = change.rolled_back_to
        return LineageEntry(
            execution_token=self.execution_token,
            operation=change.operation,
            timestamp=self.committed_at,
            user=self.principal.authenticated_user or self.principal.user,
            aws_session=self.principal.aws_session,
            properties_before=change.properties_before,
            properties_after=change.properties_after,
            explanation=change.explanation or self.explanation,
            user_intent=change.user_intent or self.user_intent,
            checkov_results=change.checkov_results,
            patch_document=change.patch_document,
            outcome=change.outcome,
            error=change.error,
            serial=self.serial,
            **extra,
        )


class VersionInfo(_Model):
    serial: int
    committed_at: str
    who: str
    why: str | None = None
    summary: str
    kind: str
    execution_token: str | None = None
