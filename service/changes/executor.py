"""Create, update and delete through Cloud Control, each recorded as one lineage entry.

For every mutation, in this order:
1. check the input and the token chain, once (nothing locked, nothing called yet);
2. take the resource lock (released on every path, with a heartbeat while the work runs);
3. read the properties before; write the intent (``changes.journal``) once, durably: an
   earlier change of this resource that was left open is settled first (``changes.reconcile``);
4. consume the final token, once, in the shared backend (write-once markers, no re-check);
5. call Cloud Control; record its request token in the intent; poll to a terminal state;
6. read the properties after back from the cloud, redact write-only and secret values;
7. commit one lineage entry: SUCCESS, or FAILED with Cloud Control's error; close the intent.

Steps 2-7 run as a task of their own (``_detached``): a caller that stops waiting does not stop
the change. What leaves the outcome unknown leaves the intent open, never a FAILED entry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import TokenRecord, payload_digest, token_hash
from ccstate.service.changes.journal import Intent, IntentJournal
from ccstate.service.changes.reconcile import Reconciler
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.validation import validate_patch, validate_type_name
from ccstate.service.changes.workflow import Authorization, Workflow
from ccstate.service.changes.writeonly import carry_write_only, written_by_patch
from ccstate.service.errors import (
    AccessDenied,
    CcstateError,
    CloudOperationFailed,
    HasDependents,
    InvalidInput,
    LockLost,
    LockTimeout,
    NotFound,
    TokenError,
)
from ccstate.service.graph.state import build_graph
from ccstate.service.locking import HeldLock, hold_lock
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CloudProvider, LockManager, LockScope, ProgressEvent, cloud_in
from ccstate.service.state.model import Commit, DriftStatus, utc_now_iso
from ccstate.service.state.store import StateStore, ensure_same_type

log = logging.getLogger(__name__)

# Checked under the resource's lock before the token is used: raises to refuse (a stale plan).
Precondition = Callable[[], Awaitable[None]]
# Asked about every change, under its lock, before its token is used (impact analysis).
Guard = Callable[[TokenRecord], Awaitable[None]]


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
        journal: IntentJournal | None = None,
    ) -> None:
        self.workflow = workflow
        self.cloud = workflow.cloud
        self.schemas = workflow.schemas
        self.store = store
        self.locks = locks
        self.settings = settings
        self.journal = journal or IntentJournal(store.objects, settings.workspace)
        self.reconciler = Reconciler(
            workflow,
            store,
            self.journal,
            locks,
            lease_seconds=settings.lock_lease_seconds,
            wait_seconds=settings.operation_timeout_seconds,
        )
        self._inflight: set[asyncio.Task[ChangeOutcome]] = set()
        self.guards: list[Guard] = []

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
        record_as: str = "create",
        rolled_back_to: str | None = None,
        precondition: Precondition | None = None,
        authorization: Authorization | None = None,
    ) -> ChangeOutcome:
        """``authorization``: a stack plan's step (``service.stacks.authority``) instead of
        the tokens: checked and consumed when the plan began."""
        schema = await self._schema(resource_type)
        tokens = dict(
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )
        auth = _under_plan(authorization, "create", schema, None) or await self.workflow.authorize(
            principal,
            operation="create",
            resource_type=resource_type,
            identifier=None,
            payload=None,
            **tokens,
        )
        desired = auth.payload
        planned = auth.record.identifier
        lock_name = planned or f"{resource_type}/pending-create-{_client_token(auth)[:16]}"
        change = _Change("create", principal, schema, lock_name, auth, auth.region)
        change.cloud = cloud_in(self.cloud, auth.region)
        change.planned = planned
        change.properties = desired
        change.recorded_as, change.rolled_back_to = record_as, rolled_back_to
        change.precondition = precondition

        async def start() -> ProgressEvent:
            return await change.cloud.create_resource(
                resource_type, desired, client_token=_client_token(auth)
            )

        return await self._detached(self._execute(change, start))

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
        rolled_back_to: str | None = None,
        precondition: Precondition | None = None,
        authorization: Authorization | None = None,
    ) -> ChangeOutcome:
        """``record_as``/``drift_status``: a drift remediation is an update recorded as
        operation 'remediate' with the drift it fixed. ``authorization``: as ``create``'s."""
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
        auth = _under_plan(
            authorization, "update", schema, identifier, patch
        ) or await self.workflow.authorize(
            principal,
            operation="update",
            resource_type=resource_type,
            identifier=identifier,
            payload=patch,
            **tokens,
        )
        # Without a patch_document the explained one is applied; with one, it must be that one.
        patch = auth.payload
        change = _Change("update", principal, schema, identifier, auth, auth.region, patch=patch)
        change.cloud = cloud_in(self.cloud, auth.region)
        change.recorded_as = record_as
        change.drift_status = drift_status
        change.rolled_back_to = rolled_back_to
        change.precondition = precondition

        async def start() -> ProgressEvent:
            return await change.cloud.update_resource(
                resource_type, identifier, patch, client_token=_client_token(auth)
            )

        return await self._detached(self._execute(change, start))

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
        force: bool = False,
        record_as: str = "delete",
        rolled_back_to: str | None = None,
        precondition: Precondition | None = None,
        authorization: Authorization | None = None,
    ) -> ChangeOutcome:
        schema = await self._schema(resource_type)
        identifier = validate_identifier(identifier)
        tokens = dict(
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token="",
            region=region,
        )
        auth = _under_plan(
            authorization, "delete", schema, identifier
        ) or await self.workflow.authorize(
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
        change = _Change("delete", principal, schema, identifier, auth, auth.region)
        change.cloud = cloud_in(self.cloud, auth.region)
        change.recorded_as, change.rolled_back_to = record_as, rolled_back_to
        change.precondition, change.force = precondition, force

        async def start() -> ProgressEvent:
            return await change.cloud.delete_resource(
                resource_type, identifier, client_token=_client_token(auth)
            )

        return await self._detached(self._execute(change, start))

    # ------------------------------------------------------------------ in flight

    async def _detached(self, work: Coroutine[Any, Any, ChangeOutcome]) -> ChangeOutcome:
        """Run the locked part of a change as a task of its own: a caller that is cancelled
        (client cancel, disconnect, timeout) stops waiting, but the change goes on to its
        recorded end and releases its lock. ``drain``/``abort`` end such tasks at shutdown."""
        task = asyncio.create_task(work, name="ccstate-change")
        self._inflight.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[ChangeOutcome]) -> None:
        self._inflight.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved, so an abandoned task's error is not "never retrieved"
        if exc is not None:
            log.info("a change ended with %s: %s", type(exc).__name__, exc)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def drain(self, timeout: float | None = None) -> int:
        """Wait for changes still in flight (their callers may be gone); how many remain."""
        if self._inflight:
            log.warning("waiting for %d change(s) in flight to finish", len(self._inflight))
            await asyncio.wait(set(self._inflight), timeout=timeout)
        return len(self._inflight)

    async def abort(self) -> None:
        """Cancel changes in flight: each releases its lock and leaves its intent open, for the
        reconciler to record what Cloud Control does."""
        tasks = set(self._inflight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # ------------------------------------------------------------------ one change, locked

    async def _execute(
        self, change: _Change, start: Callable[[], Awaitable[ProgressEvent]]
    ) -> ChangeOutcome:
        try:
            return await self._execute_locked(change, start)
        except LockLost as lost:
            if change.intent is None or not lost.details.get("intent_open"):
                raise
            return await self._settle_relocked(change, change.intent, lost)

    async def _settle_relocked(
        self, change: _Change, intent: Intent, lost: LockLost
    ) -> ChangeOutcome:
        """The lease ran out while Cloud Control worked (a process stalled past it), so the
        commit was refused. Take the lock again and record what AWS did, as the reconciler
        would at the next start: the state says so now, while the server serves on."""
        try:
            async with self.locked(change.principal, change.locked_identifier, "reconcile"):
                # While the lock was lapsed someone else may have settled this intent, and the
                # journal's key is the resource's: what is open there now may be another
                # change's, which settling (and closing) ours would delete.
                current = await self.journal.read_for(change.locked_identifier)
                if current is None or current.execution_token != intent.execution_token:
                    lost.details["intent_open"] = False
                    if _LEFT_OPEN in getattr(lost, "__notes__", ()):
                        lost.__notes__.remove(_LEFT_OPEN)
                    lost.add_note(
                        "Its outcome was recorded by another holder of the lock while this one "
                        "was lapsed: see the resource's history."
                    )
                    raise lost
                return await self._settle_now(
                    change, current, lost, trigger="after its lock lapsed"
                )
        except LockTimeout as busy:  # someone else holds it: they, or the reconciler, record it
            lost.add_note(f"Taking the lock again to record it failed: {busy}")
            raise lost from None

    async def _execute_locked(
        self, change: _Change, start: Callable[[], Awaitable[ProgressEvent]]
    ) -> ChangeOutcome:
        async with self.locked(change.principal, change.locked_identifier, change.operation):
            if change.operation == "create" and change.planned:
                # Refuse a name the state has for another type before AWS creates it.
                ensure_same_type(
                    await self.store.get_resource(change.planned), change.schema.type_name
                )
            if change.operation == "delete" and not change.force:
                await self._refuse_if_depended_on(change.identifier)
            await self._guard(change.auth, change.precondition)
            if change.operation == "update":  # write-only values are kept as fingerprints
                prior = await self.store.get_resource(change.identifier)
                change.recorded = prior.current_properties if prior is not None else None
            if change.operation != "create":
                live = await self._current(change.cloud, change.schema, change.identifier)
                if change.auth.under_plan and change.patch and live is not None:
                    # a token chain checks this when the change is prepared
                    self.workflow.check_update(change.schema, live, change.patch)
                change.before = (
                    carry_write_only(change.schema, change.recorded, live)
                    if live and change.recorded
                    else live
                )
            intent = await self._open_intent(change)
            try:
                await self.workflow.consume(change.auth)
            except BaseException:
                await _quietly(self.journal.close(intent))
                raise
            return await self._run(change, intent, start)

    async def _open_intent(self, change: _Change) -> Intent:
        """Write the intent; an earlier change of this resource left open is settled first."""
        intent = await self._intent(change)
        if await self.journal.open(intent):
            return intent
        earlier = await self.journal.read_for(change.locked_identifier)
        if earlier is not None:
            settled = await self.reconciler.settle(
                earlier, trigger="before the next change", lock=_HELD.get()
            )
            if not settled.settled:
                raise CloudOperationFailed(
                    f"An earlier {earlier.describe()} was interrupted and its outcome is not "
                    f"known yet ({settled.result}: {settled.message}). Nothing was done.",
                    next_step="Wait for it to finish, record it with ${recover}, then retry.",
                    request_token=settled.request_token,
                    status=settled.result,
                )
            if change.operation != "create":  # the earlier change may have changed it
                change.before = await self._current(change.cloud, change.schema, change.identifier)
                intent = await self._intent(change)
        if not await self.journal.open(intent):
            raise CloudOperationFailed(
                f"Another change of '{change.locked_identifier}' left an intent that appeared "
                "while this one started. Nothing was done.",
                next_step="Record it with ${recover}, then retry.",
            )
        return intent

    async def _intent(self, change: _Change) -> Intent:
        identity = await self.workflow.identity()
        schema, auth, redact = change.schema, change.auth, self.workflow.redact
        return Intent(
            execution_token=auth.execution_token,
            client_token=_client_token(auth),
            operation=change.operation,  # type: ignore[arg-type]
            resource_type=schema.type_name,
            identifier=change.planned if change.operation == "create" else change.identifier,
            lock_name=change.locked_identifier,
            record_as=change.recorded_as,
            drift_status=change.drift_status,
            properties=redact(schema, change.properties) if change.properties else None,
            patch_document=self.workflow.redact_patch(schema, change.patch)
            if change.patch
            else None,
            properties_before=redact(schema, change.before) if change.before is not None else None,
            principal=change.principal.to_record(),
            region=change.region or identity.region,
            account_id=identity.account,
            explanation=auth.explanation or None,
            user_intent=auth.user_intent or None,
            checkov_results=auth.checkov_results,
            created_at=utc_now_iso(),
            holder=f"{change.principal.describe()}@{socket.gethostname()} pid {os.getpid()}",
        )

    async def _run(
        self, change: _Change, intent: Intent, start: Callable[[], Awaitable[ProgressEvent]]
    ) -> ChangeOutcome:
        """Call Cloud Control and record what it did. Whatever leaves the outcome unknown
        (cancellation, a lost connection, a request still running, a failed commit) leaves the
        intent open for the reconciler: nothing is recorded as FAILED that AWS may have done."""
        try:
            event = await start()
        except (InvalidInput, NotFound, AccessDenied) as exc:  # refused: nothing started
            change.error = exc.to_dict()
            commit = await self._commit(change, intent)
            await _quietly(self.journal.close(intent))
            exc.details.setdefault("recorded_serial", commit.serial)
            raise
        except CcstateError as exc:  # e.g. the answer was lost: did Cloud Control get it?
            return await self._settle_now(change, intent, exc)
        change.request_token = event.request_token
        change.intent = intent
        try:
            self._ensure_lease(change)
            await self.journal.record_request(intent, event.request_token, utc_now_iso())
        except CcstateError as exc:  # the reconciler can still find it (ListResourceRequests)
            log.warning("could not record request token %s: %s", event.request_token, exc)
        try:
            return await self._follow(change, intent, event)
        except CcstateError as exc:
            if "recorded_serial" not in exc.details and "intent_open" not in exc.details:
                exc.details["intent_open"] = True
                exc.add_note(_LEFT_OPEN)
            raise

    def _ensure_lease(self, change: _Change) -> None:
        """Only the lock holder writes the resource's intent key: a holder stalled past its
        lease must not, or it would put its intent back over the next change's, whose holder
        took the lock meanwhile (and so lose that change's record)."""
        held = _HELD.get()
        if held is not None:
            held.ensure_live(self.store.clock.now())

    async def _follow(self, change: _Change, intent: Intent, event: ProgressEvent) -> ChangeOutcome:
        """Poll the request to its end and record it."""
        event = await self._finish(change.cloud, event)
        if not event.is_terminal:
            raise _cloud_failure(
                event, change.operation, change.schema.type_name, intent.identifier
            )
        if event.operation_status == "SUCCESS":
            change.identifier = event.identifier or change.identifier
            if change.operation != "delete":
                read = await self._read_back(change.cloud, change.schema, change.identifier, event)
                change.after = carry_write_only(change.schema, change.written(), read)
        else:
            change.error = _cloud_failure(
                event, change.operation, change.schema.type_name, intent.identifier
            ).to_dict()
        commit = await self._commit(change, intent)
        await _quietly(self.journal.close(intent))
        if change.error is not None:
            failure = _cloud_failure(
                event, change.operation, change.schema.type_name, intent.identifier
            )
            failure.details.setdefault("recorded_serial", commit.serial)
            raise failure
        return self._report(change, commit)

    async def _settle_now(
        self,
        change: _Change,
        intent: Intent,
        exc: CcstateError,
        *,
        trigger: str = "after a lost answer",
    ) -> ChangeOutcome:
        """The call failed without a clear answer: ask Cloud Control what happened, now."""
        try:
            settled = await self.reconciler.settle(intent, trigger=trigger, lock=_HELD.get())
        except CcstateError as again:
            exc.add_note(f"Its outcome could not be checked either: {again}")
            settled = None
        if settled is not None and settled.outcome == "FAILED":
            raise CloudOperationFailed(
                f"Cloud Control could not {change.operation} {intent.describe()}: "
                f"{settled.message}",
                next_step="Read the error, correct the properties or the resource, and start "
                "again with ${prepare}. The failure is recorded in the resource's history.",
                request_token=settled.request_token,
                recorded_serial=settled.serial,
            ) from exc
        if settled is None or not settled.settled or settled.outcome != "SUCCESS":
            exc.details.setdefault("intent_open", settled is None or not settled.settled)
            if (settled is None or not settled.settled) and _LEFT_OPEN not in getattr(
                exc, "__notes__", ()
            ):
                exc.add_note(_LEFT_OPEN)
            raise exc
        commit = await self.store.commit_at(settled.serial or 0)
        change.identifier = settled.identifier or change.identifier
        change.request_token = settled.request_token
        return self._report(change, commit)

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

    async def _refuse_if_depended_on(self, identifier: str) -> None:
        """Deleting what others hold a value of breaks them: refused unless forced."""
        view = await self.store.current()
        if identifier not in view.resources:
            return
        graph = await build_graph(view.resources, self.schemas)
        edges = graph.incoming(identifier)
        if edges:
            named = ", ".join(sorted({f"{e.dependent} (at {e.via})" for e in edges}))
            raise HasDependents(
                f"'{identifier}' is depended on by {named}; deleting it breaks them.",
                next_step="Change or delete the dependents first, or delete with force=True "
                "if the user accepts breaking them.",
                dependents=sorted({e.dependent for e in edges}),
            )

    async def _guard(self, auth: Authorization, precondition: Precondition | None) -> None:
        for guard in self.guards:
            await guard(auth.record)
        if precondition is not None:
            await precondition()

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
        except CcstateError as exc:  # it happened: record it with what the request returned
            log.warning(
                "%s %s succeeded but cannot be read back: %s", schema.type_name, identifier, exc
            )
            return dict(event.resource_model or {})

    async def _commit(self, change: _Change, intent: Intent) -> Commit:
        redact, schema = self.workflow.redact, change.schema
        resource_change = intent.resource_change(
            outcome="FAILED" if change.error else "SUCCESS",
            identifier=change.identifier,
            properties_after=redact(schema, change.after) if change.after is not None else None,
            error=change.error,
            request_token=change.request_token,
        )
        if change.rolled_back_to:
            resource_change.rolled_back_to = change.rolled_back_to
        # A create's identifier can come back from AWS, other than the name we locked.
        under_lock = change.identifier == change.locked_identifier
        return await self.store.commit(
            [resource_change], intent.commit_meta(), under_lock=under_lock, lock=_HELD.get()
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
            execution_token=change.auth.execution_token,
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
        self.cloud: CloudProvider  # set by the executor: the client of the change's region
        self.patch = patch
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None
        self.request_token: str | None = None
        self.planned: str | None = None  # create: the identifier the properties name
        self.properties: dict[str, Any] | None = None  # create: the desired properties
        self.error: dict[str, Any] | None = None
        self.recorded_as: str | None = None  # the lineage operation, when not ``operation``
        self.drift_status: DriftStatus | None = None
        self.rolled_back_to: str | None = None  # a rollback: the token hash it undid to
        self.precondition: Precondition | None = None
        self.force = False  # a delete: even when others depend on the resource
        self.recorded: dict[str, Any] | None = None  # an update: the recorded properties
        self.intent: Intent | None = None  # once Cloud Control has the request

    def written(self) -> dict[str, Any] | None:
        """What this change wrote, for carrying write-only values into the record."""
        if self.operation == "create":
            return self.properties
        return written_by_patch(self.recorded, self.patch)


_LEFT_OPEN = (
    "The change may have happened: its intent stays open, and its outcome is recorded by the "
    "next change of this resource, the next server start, or a recovery run."
)


def _under_plan(
    auth: Authorization | None,
    operation: str,
    schema: ResourceSchema,
    identifier: str | None,
    patch: list[dict[str, Any]] | None = None,
) -> Authorization | None:
    """A stack plan's step, checked to be for exactly this change (``None``: no step given,
    the tokens decide)."""
    if auth is None:
        return None
    record = auth.record
    same = (
        auth.under_plan
        and record.operation == operation
        and record.resource_type == schema.type_name
        and (identifier is None or record.identifier == identifier)
        and (patch is None or record.payload_digest == payload_digest(patch))
    )
    if not same:
        raise TokenError(
            f"This step of a stack plan does not authorize this {operation} of "
            f"{schema.type_name} '{identifier or record.identifier or '(new)'}'.",
            next_step="Deploy the stack again: its plan is explained and scanned anew.",
            step="plan_mismatch",
            check="payload_mismatch",
        )
    return auth


def _client_token(auth: Authorization) -> str:
    """Cloud Control's idempotency token: one per execution token, without revealing it (a
    stack plan's step: derived from the plan token, its step and the attempt)."""
    return auth.client_token or token_hash(auth.token)[:64]


def _cloud_failure(
    event: ProgressEvent, operation: str, type_name: str, identifier: str | None
) -> CloudOperationFailed:
    what = f"{type_name} '{identifier}'" if identifier else f"a {type_name}"
    if not event.is_terminal:
        return CloudOperationFailed(
            f"The {operation} of {what} did not finish in time (status "
            f"{event.operation_status}); it may still complete. Its intent stays open: the "
            "outcome is recorded by the next change of this resource, the next server start "
            "or a recovery run.",
            next_step=f"Call ${{request_status}}('{event.request_token}') to follow it; once "
            "it is done, ${recover} records it at once.",
            request_token=event.request_token,
            status=event.operation_status,
            intent_open=True,
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


async def _quietly(work: Awaitable[None]) -> None:
    """Closing an intent is tidying: its outcome is committed already, and a reconciler that
    finds it open again sees that (shielded, so a cancellation does not leave it half done)."""
    try:
        await asyncio.shield(work)
    except CcstateError as exc:
        log.warning("could not close the intent: %s", exc)


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
