"""Intents: a change is durable before it happens.

Before Cloud Control is called, the executor writes what it is about to do, once, at
``<workspace>/intents/<sha256 of the locked resource name>.json``; the Cloud Control request
token is added as soon as Cloud Control returns it; the intent is removed (closed) after the
outcome is committed. An intent that is still there is a change whose outcome the state does
not have yet: ``changes.reconcile`` finds it out from Cloud Control and records it.

The key is the resource's (its lock's), not the token's: only the holder of a resource's lock
writes it, so there is at most one open intent per resource, and the write-once put of the next
change of that resource is also the check that the previous one was settled (no extra read).

An intent holds no secret: properties, patch and the properties before are redacted as the
lineage entry will record them; the execution token appears only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Literal

from ccstate.service.errors import StateCorrupt
from ccstate.service.names import validate_workspace
from ccstate.service.ports import ObjectStore
from ccstate.service.state.model import (
    CommitMeta,
    DriftStatus,
    Outcome,
    Principal,
    ResourceChange,
)
from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

INTENT_FORMAT = "ccstate.intent/1"
Operation = Literal["create", "update", "delete"]


class Intent(BaseModel):
    """One change about to be made (or being made): everything its lineage entry needs except
    what only Cloud Control can tell (the outcome, the identifier of a create, the properties
    after)."""

    model_config = ConfigDict(extra="allow")

    format: str = INTENT_FORMAT
    execution_token: str  # "sha256:<hash>", as the lineage entry records it
    client_token: str  # the ClientToken given to Cloud Control (idempotency)
    operation: Operation
    resource_type: str
    identifier: str | None  # None: a create whose identifier only AWS will know
    lock_name: str
    record_as: str | None = None  # the lineage operation, when not ``operation``
    drift_status: DriftStatus | None = None
    properties: dict[str, Any] | None = None  # create: the desired properties, redacted
    patch_document: list[dict[str, Any]] | None = None  # update: the patch, redacted
    properties_before: dict[str, Any] | None = None  # update, delete: redacted
    principal: Principal
    region: str | None = None
    account_id: str | None = None
    explanation: str | None = None
    user_intent: str | None = None
    checkov_results: dict[str, Any] | None = None
    created_at: str
    holder: str = ""  # who made it: user@host and pid
    request_token: str | None = None
    request_recorded_at: str | None = None

    def describe(self) -> str:
        what = f"'{self.identifier}'" if self.identifier else "(identifier not known yet)"
        return f"{self.operation} of {self.resource_type} {what}"

    def resource_change(
        self,
        *,
        outcome: Outcome,
        identifier: str,
        properties_after: dict[str, Any] | None,
        error: dict[str, Any] | None = None,
        request_token: str | None = None,
        reconciled: dict[str, Any] | None = None,
    ) -> ResourceChange:
        """The lineage entry's change, the same whether the executor saw the outcome or the
        reconciler found it later."""
        return ResourceChange(
            identifier=identifier,
            resource_type=self.resource_type,
            operation=self.record_as or self.operation,
            outcome=outcome,
            drift_status=None if error else self.drift_status,
            region=self.region,
            account_id=self.account_id,
            properties_before=self.properties_before,
            properties_after=properties_after,
            patch_document=self.patch_document,
            checkov_results=self.checkov_results,
            error=error,
            request_token=request_token or self.request_token,
            reconciled=reconciled,
        )

    def commit_meta(self) -> CommitMeta:
        return CommitMeta(
            principal=self.principal,
            execution_token=self.execution_token,
            explanation=self.explanation or None,
            user_intent=self.user_intent or None,
            kind="change",
        )


def intent_key(workspace: str, lock_name: str) -> str:
    digest = hashlib.sha256(lock_name.encode()).hexdigest()[:40]
    return f"{workspace}/intents/{digest}.json"


class IntentJournal:
    """The open intents of one workspace, on the backend's object store."""

    def __init__(self, objects: ObjectStore, workspace: str = "default") -> None:
        self.objects = objects
        self.workspace = validate_workspace(workspace)
        self.prefix = f"{self.workspace}/intents/"

    def key(self, lock_name: str) -> str:
        return intent_key(self.workspace, lock_name)

    async def open(self, intent: Intent) -> bool:
        """Write the intent once; False when an earlier change of this resource is still open."""
        return await self.objects.put_if_absent(self.key(intent.lock_name), _encode(intent))

    async def record_request(self, intent: Intent, request_token: str, at: str) -> None:
        """Add Cloud Control's request token. Only the lock holder writes this key."""
        intent.request_token = request_token
        intent.request_recorded_at = at
        await self.objects.put(self.key(intent.lock_name), _encode(intent))

    async def close(self, intent: Intent) -> None:
        await self.objects.delete(self.key(intent.lock_name))

    async def read(self, key: str) -> Intent | None:
        found = await self.objects.get(key)
        return None if found is None else decode_intent(found.body, where=key)

    async def read_for(self, lock_name: str) -> Intent | None:
        return await self.read(self.key(lock_name))

    async def open_keys(self) -> list[str]:
        return [k for k in await self.objects.list_keys(self.prefix) if k.endswith(".json")]


def _encode(intent: Intent) -> bytes:
    body = intent.model_dump(mode="json")
    return json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False).encode()


def decode_intent(raw: bytes, *, where: str) -> Intent:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != INTENT_FORMAT:
            raise ValueError(f"format {data.get('format') if isinstance(data, dict) else None!r}")
        return Intent.model_validate(data)
    except (ValueError, ValidationError, UnicodeDecodeError) as exc:
        raise StateCorrupt(
            f"The intent record {where} cannot be read ({exc}).",
            next_step="Look at the file: it names the change that was interrupted. Check the "
            "resource in AWS, record it if needed, then delete the file.",
        ) from exc
