"""Create, update and delete through Cloud Control, each recorded as one lineage entry.

For every mutation, in this order:
1. check the input and the token chain, once (nothing locked, nothing called yet);
2. take the resource lock (released on every path, with a heartbeat while the work runs);
3. consume the final token, once, in the shared backend (write-once markers, no re-check);
4. read the properties before, call Cloud Control, poll the request to a terminal state;
5. read the properties after back from the cloud, redact write-only and secret values;
6. commit one lineage entry: SUCCESS, or FAILED with the error (the audit trail has no holes).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import recorded_token_id, token_hash
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.validation import validate_patch, validate_type_name
from ccstate.service.changes.workflow import Authorization, Workflow
from ccstate.service.errors import CcstateError, CloudOperationFailed, InvalidInput, NotFound
from ccstate.service.locking import HeldLock, hold_lock
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CloudProvider, LockManager, LockScope, ProgressEvent, cloud_in
from ccstate.service.state.model import Commit, CommitMeta, DriftStatus, ResourceChange
from ccstate.service.state.store import StateStore, ensure_same_type

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeOutcome:
    """A mutation that succeeded and is recorded: what the faces report."""

    operation: str
    resource_type: str
    identifier: str
    request_token: str | None
    properties: dict[str, Any] | None
    security_scan: dict[str, Any]
    state_serial: int
    execution_token: str
    lineage_entry: dict[str, Any]
    region: str | None = None

    @property
    def scanned(self) -> bool:
        """False when the change ran without a scan (SECURITY_SCANNING=disabled)."""
        return self.security_scan.get("status") != "SKIPPED"


@dataclass(frozen=True)
class OperationSettings:
    workspace: str = "default"
    lock_lease_seconds: float = 60
    lock_timeout_seconds: float = 30
    operation_timeout_seconds: float = 600


class ResourceOperations:
    def __init__(
        self,
        workflow: Workflow,
        store: StateStore,
        locks: LockManager,
        settings: OperationSettings,
    ) -> None:
        self.workflow = workflow
        self.cloud = workflow.cloud
        self.schemas = workflow.schemas
        self.store = store
        self.locks = locks
        self.settings = settings

    # ------------------------------------------------------------------ create

    async def create(
        self,
        principal: Principal,
        *,
        resource_type: str,
        credentials_token: str,
        explained_token: str,
        security_scan_token: str = "",
        region: str | None = None,
        skip_security_check: bool = False,
    ) -> ChangeOutcome:
        schema = await self._schema(resource_type)
        tokens = dict(
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )
        auth = await self.workflow.authorize(
            principal,
            operation="create",
            resource_type=resource_type,
            identifier=None,
            payload=None,
            **tokens,
        )
        desired = auth.payload
        planned = auth.record.identifier
        lock_name = planned or f"{resource_type}/pending-create-{token_hash(auth.token)[:16]}"
        async with self.locked(principal, lock_name, "create"):
            if planned:  # refuse a name the state has for another type before AWS creates it
                ensure_same_type(await self.store.get_resource(planned), resource_type)
            await self.workflow.consume(auth)
            change = _Change("create", principal, schema, planned or lock_name, auth, auth.region)
            cloud = cloud_in(self.cloud, auth.region)

            async def run() -> None:
                event = await self._finish(
                    cloud,
                    await cloud.create_resource(
                        resource_type, desired, client_token=_client_token(auth)
                    ),
                )
                change.request_token = event.request_token
                if event.operation_status != "SUCCESS":
                    raise _cloud_failure(event, "create", resource_type, planned)
                change.identifier = event.identifier or change.identifier
                change.after = await self._read_back(cloud, schema, change.identifier, event)

            return await self._record(change, run)

    # ------------------------------------------------------------------ update

    async def update(
        self,
        principal: Principal,
        *,
        resource_type: str,
        identifier: str,
        credentials_token: str,
        explained_token: str,
        patch_document: list[dict[str, Any]] | None = None,
        security_scan_token: str = "",
        region: str | None = None,
        record_as: str = "update",
        drift_status: DriftStatus | None = None,
        skip_security_check: bool = False,
    ) -> ChangeOutcome:
        """``record_as``/``drift_status``: a drift remediation is an update recorded as
        operation 'remediate' with the drift it fixed."""
        schema = await self._schema(resource_type)
        identifier = validate_identifier(identifier)
        patch = validate_patch(schema, patch_document) if patch_document else None
        tokens = dict(
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )
        auth = await self.workflow.authorize(
            principal,
            operation="update",
            resource_type=resource_type,
            identifier=identifier,
            payload=patch,
            **tokens,
        )
        # Without a patch_document the explained one is applied; with one, it must be that one.
        patch = auth.payload
        async with self.locked(principal, identifier, "update"):
            await self.workflow.consume(auth)
            change = _Change(
                "update", principal, schema, identifier, auth, auth.region, patch=patch
            )
            change.recorded_as = record_as
            change.drift_status = drift_status
            cloud = cloud_in(self.cloud, auth.region)

            async def run() -> None:
                change.before = await self._current(cloud, schema, identifier)
                event = await self._finish(
                    cloud,
                    await cloud.update_resource(
                        resource_type, identifier, patch, client_token=_client_token(auth)
                    ),
                )
                change.request_token = event.request_token
                if event.operation_status != "SUCCESS":
                    raise _cloud_failure(event, "update", resource_type, identifier)
                change.after = await self._read_back(cloud, schema, identifier, event)

            return await self._record(change, run)

    # ------------------------------------------------------------------ delete

    async def delete(
        self,
        principal: Principal,
        *,
        resource_type: str,
        identifier: str,
        credentials_token: str,
        explained_token: str,
        confirmed: bool = False,
        region: str | None = None,
    ) -> ChangeOutcome:
        schema = await self._schema(resource_type)
        identifier = validate_identifier(identifier)
        tokens = dict(
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token="",
            region=region,
        )
        auth = await self.workflow.authorize(
            principal,
            operation="delete",
            resource_type=resource_type,
            identifier=identifier,
            payload=None,
            **tokens,
        )
        if confirmed is not True:
            raise InvalidInput(
                f"Deleting {resource_type} '{identifier}' needs confirmed=True.",
                next_step="Show the explanation to the user and ask them to confirm the delete.",
                field="confirmed",
            )
        async with self.locked(principal, identifier, "delete"):
            await self.workflow.consume(auth)
            change = _Change("delete", principal, schema, identifier, auth, auth.region)
            cloud = cloud_in(self.cloud, auth.region)

            async def run() -> None:
                change.before = await self._current(cloud, schema, identifier)
                event = await self._finish(
                    cloud,
                    await cloud.delete_resource(
                        resource_type, identifier, client_token=_client_token(auth)
                    ),
                )
                change.request_token = event.request_token
                if event.operation_status != "SUCCESS":
                    raise _cloud_failure(event, "delete", resource_type, identifier)

            return await self._record(change, run)

    # ------------------------------------------------------------------ request status

    async def request_status(self, request_token: str, region: str | None = None) -> dict[str, Any]:
        if not isinstance(request_token, str) or not 1 <= len(request_token) <= 128:
            raise InvalidInput(
                "request_token must be the RequestToken a create, update or delete returned.",
                next_step="Pass the request_token from the earlier response.",
                field="request_token",
            )
        cloud = await self.workflow.cloud_for(region)
        return _event_dict(await cloud.get_request_status(request_token))

    # ------------------------------------------------------------------ internals

    async def _schema(self, resource_type: str) -> ResourceSchema:
        validate_type_name(resource_type)
        return await self.schemas.get_schema(resource_type)

    @asynccontextmanager
    async def locked(
        self, principal: Principal, identifier: str | None, operation: str
    ) -> AsyncIterator[None]:
        """Hold the lock of one resource, or (identifier None) of the whole workspace."""
        host = socket.gethostname()
        holder = f"{principal.describe()}@{host} (ccstate MCP server, pid {os.getpid()})"
        scope = LockScope(self.settings.workspace, identifier)
        async with hold_lock(
            self.locks,
            scope,
            operation=operation,
            who=holder,
            lease_seconds=self.settings.lock_lease_seconds,
            timeout=self.settings.lock_timeout_seconds,
            raise_if_lost=False,  # the change happened and is recorded: report it as it is
        ) as held:
            reset = _HELD.set(held)  # its fencing token goes into the commit
            try:
                yield
            finally:
                _HELD.reset(reset)

    async def _finish(self, cloud: CloudProvider, event: ProgressEvent) -> ProgressEvent:
        if event.is_terminal:
            return event
        return await cloud.wait_for_request(
            event.request_token, timeout=self.settings.operation_timeout_seconds
        )

    async def _current(
        self, cloud: CloudProvider, schema: ResourceSchema, identifier: str
    ) -> dict[str, Any] | None:
        try:
            found = await cloud.get_resource(schema.type_name, identifier)
        except NotFound:
            return None
        return found.properties

    async def _read_back(
        self, cloud: CloudProvider, schema: ResourceSchema, identifier: str, event: ProgressEvent
    ) -> dict[str, Any]:
        try:
            return (await cloud.get_resource(schema.type_name, identifier)).properties
        except NotFound:
            log.warning("%s %s succeeded but cannot be read back", schema.type_name, identifier)
            return dict(event.resource_model or {})

    async def _record(self, change: _Change, run: Any) -> ChangeOutcome:
        """Run the cloud part; commit its lineage entry whatever happened; report."""
        try:
            await run()
        except BaseException as exc:
            change.error = _error_dict(exc)
            commit = await self._commit(change)
            if isinstance(exc, CcstateError):
                exc.details.setdefault("recorded_serial", commit.serial)
            raise
        commit = await self._commit(change)
        return self._report(change, commit)

    async def _commit(self, change: _Change) -> Commit:
        identity = await self.workflow.identity()
        redact = self.workflow.redact
        schema = change.schema
        auth = change.auth
        resource_change = ResourceChange(
            identifier=change.identifier,
            resource_type=schema.type_name,
            operation=change.recorded_as or change.operation,
            outcome="FAILED" if change.error else "SUCCESS",
            drift_status=None if change.error else change.drift_status,
            region=change.region or identity.region,
            account_id=identity.account,
            properties_before=redact(schema, change.before) if change.before is not None else None,
            properties_after=redact(schema, change.after) if change.after is not None else None,
            patch_document=self.workflow.redact_patch(schema, change.patch)
            if change.patch
            else None,
            checkov_results=auth.checkov_results,
            error=change.error,
        )
        meta = CommitMeta(
            principal=change.principal.to_record(),
            execution_token=recorded_token_id(auth.token),
            explanation=auth.explanation or None,
            user_intent=auth.user_intent or None,
            kind="change",
        )
        # A create's identifier can come back from AWS, other than the name we locked.
        under_lock = change.identifier == change.locked_identifier
        return await self.store.commit(
            [resource_change], meta, under_lock=under_lock, lock=_HELD.get()
        )

    def _report(self, change: _Change, commit: Commit) -> ChangeOutcome:
        entry = commit.lineage_entry(commit.changes[0])
        return ChangeOutcome(
            operation=change.operation,
            resource_type=change.schema.type_name,
            identifier=change.identifier,
            request_token=change.request_token,
            properties=entry.properties_after,
            security_scan=change.auth.checkov_results,
            state_serial=commit.serial,
            execution_token=recorded_token_id(change.auth.token),
            lineage_entry=entry.to_json_dict(),
            region=change.region,
        )


# ---------------------------------------------------------------------- helpers

# The lock ``Executor.locked`` holds in this task, for the commit made under it.
_HELD: ContextVar[HeldLock | None] = ContextVar("ccstate_held_lock", default=None)


class _Change:
    """What one mutation learned, filled in as it goes; committed whatever happened."""

    def __init__(
        self,
        operation: str,
        principal: Principal,
        schema: ResourceSchema,
        identifier: str,
        auth: Authorization,
        region: str | None,
        *,
        patch: list[dict[str, Any]] | None = None,
    ) -> None:
        self.operation = operation
        self.principal = principal
        self.schema = schema
        self.identifier = identifier
        self.locked_identifier = identifier  # what ``locked`` holds for this change
        self.auth = auth
        self.region = region
        self.patch = patch
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None
        self.request_token: str | None = None
        self.error: dict[str, Any] | None = None
        self.recorded_as: str | None = None  # the lineage operation, when not ``operation``
        self.drift_status: DriftStatus | None = None


def _client_token(auth: Authorization) -> str:
    """Cloud Control's idempotency token: one per execution token, without revealing it."""
    return token_hash(auth.token)[:64]


def _cloud_failure(
    event: ProgressEvent, operation: str, type_name: str, identifier: str | None
) -> CloudOperationFailed:
    what = f"{type_name} '{identifier}'" if identifier else f"a {type_name}"
    if not event.is_terminal:
        return CloudOperationFailed(
            f"The {operation} of {what} did not finish in time (status "
            f"{event.operation_status}); it may still complete.",
            next_step=f"Call ${{request_status}}('{event.request_token}') to follow it.",
            request_token=event.request_token,
            status=event.operation_status,
        )
    return CloudOperationFailed(
        f"Cloud Control could not {operation} {what}: "
        f"{event.error_code or event.operation_status}: {event.status_message or ''}".rstrip(),
        next_step="Read the error, correct the properties or the resource, and start again "
        "with ${prepare}. The failure is recorded in the resource's history.",
        request_token=event.request_token,
        error_code=event.error_code,
        status=event.operation_status,
    )


def _error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, CcstateError):
        return exc.to_dict()
    name = type(exc).__name__
    return {
        "error": "interrupted" if name == "CancelledError" else "internal_error",
        "message": f"{name}: {exc}"[:500],
    }


def _event_dict(event: ProgressEvent) -> dict[str, Any]:
    """A progress event in both shapes: the AWS Labs server's status/is_complete/resource_type
    and ccstate's operation_status/is_terminal/type_name."""
    return {
        "request_token": event.request_token,
        "status": event.operation_status,
        "is_complete": event.is_terminal,
        "resource_type": event.type_name,
        "operation": event.operation,
        "operation_status": event.operation_status,
        "type_name": event.type_name,
        "identifier": event.identifier,
        "status_message": event.status_message,
        "error_code": event.error_code,
        "event_time": event.event_time.isoformat() if event.event_time else None,
        "retry_after": event.retry_after.isoformat() if event.retry_after else None,
        "resource_info": event.resource_model,
        "is_terminal": event.is_terminal,
    }
