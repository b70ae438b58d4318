"""Settle interrupted changes: find out from Cloud Control what happened, and record it.

An open intent (``changes.journal``) is a change whose outcome the state does not have: its
process was killed, its client cancelled it and the server stopped, Cloud Control did not
finish in time, or the commit failed. Under the resource's lock the reconciler asks Cloud
Control, never guesses:

1. the request status by the recorded request token (GetResourceRequestStatus), waiting while
   it is still in progress; without a token, the request found among ListResourceRequests
   (same operation and type, and the same identifier; a create without a known identifier only
   when exactly one request's resource has the intended properties);
2. SUCCESS: the properties are read back and the change is committed as the executor would
   have (same principal, execution token, explanation, scan), with a ``reconciled`` note;
   FAILED: committed as failed, with Cloud Control's error; CANCEL_COMPLETE, or a request older
   than Cloud Control remembers: a read of the resource decides;
3. no request at all: Cloud Control never received it, nothing changed; nothing is recorded;
4. an outcome already committed (the process died between the commit and the close) is not
   committed twice.

Then the intent is closed. Runs on server start, before the next change of the same resource
(``ResourceOperations``, under its lock) and from ``ccstate recover``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ccstate.service.changes.journal import Intent, IntentJournal
from ccstate.service.changes.workflow import Workflow
from ccstate.service.errors import CcstateError, LockTimeout, NotFound
from ccstate.service.locking import HeldLock, hold_lock
from ccstate.service.ports import LockManager, LockScope, ProgressEvent, cloud_in
from ccstate.service.state.model import utc_now_iso
from ccstate.service.state.store import StateStore

log = logging.getLogger(__name__)

Result = Literal[
    "recorded", "already_recorded", "not_executed", "in_progress", "busy", "ambiguous", "error"
]
SETTLED: frozenset[str] = frozenset({"recorded", "already_recorded", "not_executed"})
# Cloud Control keeps requests for 7 days; older intents are decided by a read.
REQUEST_RETENTION = timedelta(days=7)
# Clocks of this host and AWS may differ; a request is matched from this long before the intent.
CLOCK_SKEW = timedelta(minutes=5)
RECENT_COMMITS = 8  # commits of the resource searched for an outcome committed already


@dataclass(frozen=True)
class Settlement:
    """What became of one open intent."""

    key: str
    operation: str
    resource_type: str
    identifier: str | None
    result: Result
    execution_token: str
    outcome: str | None = None
    serial: int | None = None
    request_token: str | None = None
    message: str = ""

    @property
    def settled(self) -> bool:
        return self.result in SETTLED

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.key,
            "operation": self.operation,
            "resource_type": self.resource_type,
            "identifier": self.identifier,
            "result": self.result,
            "settled": self.settled,
            "outcome": self.outcome,
            "serial": self.serial,
            "request_token": self.request_token,
            "execution_token": self.execution_token,
            "message": self.message,
        }


@dataclass
class _Found:
    """What Cloud Control says happened."""

    outcome: Literal["SUCCESS", "FAILED"] | None  # None: nothing happened
    how: str
    identifier: str | None = None
    event: ProgressEvent | None = None
    properties: dict[str, Any] | None = None


class Reconciler:
    def __init__(
        self,
        workflow: Workflow,
        store: StateStore,
        journal: IntentJournal,
        locks: LockManager,
        *,
        lease_seconds: float = 60,
        wait_seconds: float = 600,
    ) -> None:
        self.workflow = workflow
        self.cloud = workflow.cloud
        self.store = store
        self.journal = journal
        self.locks = locks
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds

    # ------------------------------------------------------------------ every open intent

    async def recover(
        self,
        *,
        trigger: str,
        lock_timeout: float | None = None,
        progress: Callable[[Intent | None, Settlement | None], None] | None = None,
    ) -> list[Settlement]:
        """Settle every open intent of the workspace, each under its resource's lock. A lock
        held by a dead process is waited for until its lease runs out (``lock_timeout``,
        default: one lease and a little more)."""
        timeout = self.lease_seconds + 5 if lock_timeout is None else lock_timeout
        results = []
        for key in await self.journal.open_keys():
            try:
                intent = await self.journal.read(key)
            except CcstateError as exc:
                results.append(_unreadable(key, exc))
                continue
            if intent is None:  # closed meanwhile by its own executor
                continue
            if progress is not None:
                progress(intent, None)
            settlement = await self._locked_settle(key, intent, trigger, timeout)
            if settlement is not None:
                results.append(settlement)
                if progress is not None:
                    progress(intent, settlement)
        return results

    async def _locked_settle(
        self, key: str, intent: Intent, trigger: str, timeout: float
    ) -> Settlement | None:
        who = f"ccstate reconciler ({trigger}) @{socket.gethostname()} pid {os.getpid()}"
        scope = LockScope(self.journal.workspace, intent.lock_name)
        try:
            async with hold_lock(
                self.locks,
                scope,
                operation="reconcile",
                who=who,
                lease_seconds=self.lease_seconds,
                timeout=timeout,
                raise_if_lost=False,
            ) as held:
                current = await self.journal.read(key)
                if current is None:
                    return None  # its executor finished and closed it while we waited
                return await self.settle(current, trigger=trigger, lock=held)
        except LockTimeout as exc:
            return _settlement(key, intent, "busy", message=exc.message)

    # ------------------------------------------------------------------ one intent

    async def settle(
        self, intent: Intent, *, trigger: str, lock: HeldLock | None = None
    ) -> Settlement:
        """Find and record the outcome of ``intent``; the caller holds its resource's lock
        (``lock``: its lease is checked before the commit, and its fencing token recorded)."""
        key = self.journal.key(intent.lock_name)
        try:
            found = await self._find(intent)
        except _AmbiguousError as exc:
            return _settlement(
                key,
                intent,
                "ambiguous",
                message="Several Cloud Control requests could be this change: "
                + ", ".join(exc.tokens)
                + ". Check each request's status, record the right one by hand, "
                "then delete the intent file.",
            )
        except CcstateError as exc:
            log.warning("cannot settle %s yet: %s", intent.describe(), exc)
            return _settlement(key, intent, "error", message=exc.message)
        if found.event is not None and not found.event.is_terminal:
            return _settlement(
                key,
                intent,
                "in_progress",
                request_token=found.event.request_token,
                message=f"Cloud Control is still working on it ({found.event.operation_status}).",
            )
        if found.outcome is None:
            await self.journal.close(intent)
            return _settlement(key, intent, "not_executed", message=found.how)
        try:
            return await self._record(key, intent, found, trigger, lock)
        except CcstateError as exc:  # e.g. the backend is down: the intent stays open
            log.warning("cannot record %s yet: %s", intent.describe(), exc)
            return _settlement(key, intent, "error", message=f"{found.how}; {exc.message}")

    async def _record(
        self, key: str, intent: Intent, found: _Found, trigger: str, lock: HeldLock | None
    ) -> Settlement:
        # A create that failed before AWS named it is recorded under its lock's name, as the
        # executor records it.
        identifier = found.identifier or intent.identifier or intent.lock_name
        token = found.event.request_token if found.event else intent.request_token
        earlier = await self._already_recorded(identifier, intent.execution_token)
        if earlier is not None:
            await self.journal.close(intent)
            return _settlement(
                key, intent, "already_recorded", outcome=None, serial=earlier, request_token=token
            )
        schema = await self.workflow.schemas.get_schema(intent.resource_type)
        after = None
        error = None
        if found.outcome == "SUCCESS" and intent.operation != "delete":
            props = (
                found.properties
                if found.properties is not None
                else await self._read(intent, identifier, found.event)
            )
            after = self.workflow.redact(schema, props)
        if found.outcome == "FAILED" and found.event is not None:
            error = _cloud_error(found.event)
        reconciled = {
            "at": utc_now_iso(),
            "by": trigger,
            "how": found.how,
            "intent_created_at": intent.created_at,
        }
        change = intent.resource_change(
            outcome=found.outcome or "FAILED",
            identifier=identifier,
            properties_after=after,
            error=error,
            request_token=token,
            reconciled=reconciled,
        )
        under_lock = identifier == intent.lock_name
        commit = await self.store.commit(
            [change], intent.commit_meta(), under_lock=under_lock, lock=lock
        )
        await self.journal.close(intent)
        log.warning(
            "recorded the interrupted %s: %s at serial %d (%s)",
            intent.describe(),
            found.outcome,
            commit.serial,
            found.how,
        )
        return Settlement(
            key=key,
            operation=intent.operation,
            resource_type=intent.resource_type,
            identifier=identifier,
            result="recorded",
            execution_token=intent.execution_token,
            outcome=found.outcome,
            serial=commit.serial,
            request_token=token,
            message=found.how,
        )

    # ------------------------------------------------------------------ what happened

    async def _find(self, intent: Intent) -> _Found:
        event = await self._request(intent)
        if event is None:
            if _older_than_retention(intent):
                return await self._by_read(intent, "Cloud Control no longer remembers requests")
            return _Found(None, "Cloud Control never received the request: nothing changed.")
        if not event.is_terminal:
            event = await cloud_in(self.cloud, intent.region).wait_for_request(
                event.request_token, timeout=self.wait_seconds
            )
            if not event.is_terminal:
                return _Found(None, "in progress", event=event)
        if event.operation_status == "SUCCESS":
            how = f"Cloud Control request {event.request_token}: SUCCESS"
            return _Found("SUCCESS", how, event.identifier or intent.identifier, event)
        if event.operation_status == "FAILED":
            how = f"Cloud Control request {event.request_token}: FAILED ({event.error_code})"
            return _Found("FAILED", how, event.identifier or intent.identifier, event)
        found = await self._by_read(
            intent, f"Cloud Control request {event.request_token}: {event.operation_status}"
        )
        found.event = event
        return found

    async def _request(self, intent: Intent) -> ProgressEvent | None:
        if intent.request_token:
            try:
                return await cloud_in(self.cloud, intent.region).get_request_status(
                    intent.request_token
                )
            except NotFound:
                return None
        return await self._search(intent)

    async def _search(self, intent: Intent) -> ProgressEvent | None:
        """The request of an intent whose token was never recorded (ListResourceRequests):
        same operation and type, made since the intent (give or take clock skew), and not
        already recorded. More than one candidate is reported as ambiguous, never picked."""
        since = datetime.fromisoformat(intent.created_at.replace("Z", "+00:00")) - CLOCK_SKEW
        events = [
            e
            for e in await cloud_in(self.cloud, intent.region).list_resource_requests(
                intent.operation.upper()
            )
            if e.type_name == intent.resource_type
            and (e.event_time is None or e.event_time >= since)
        ]
        if intent.identifier:
            known = await self._recorded_requests(intent.identifier)
            same = [
                e
                for e in events
                if e.identifier == intent.identifier and e.request_token not in known
            ]
            return _one(same)
        view = await self.store.current()
        unknown = [e for e in events if not e.identifier or e.identifier not in view.resources]
        if not unknown:
            return None
        matching = [e for e in unknown if await self._has_intended_properties(intent, e)]
        return _one(matching if len(matching) == 1 else unknown)

    async def _has_intended_properties(self, intent: Intent, event: ProgressEvent) -> bool:
        if event.operation_status != "SUCCESS" or not event.identifier:
            return event.operation_status not in ("SUCCESS", "FAILED", "CANCEL_COMPLETE")
        try:
            found = await cloud_in(self.cloud, intent.region).get_resource(
                intent.resource_type, event.identifier
            )
        except NotFound:
            return False
        schema = await self.workflow.schemas.get_schema(intent.resource_type)
        shown = self.workflow.redact(schema, found.properties)
        wanted = intent.properties or {}
        return all(shown.get(k) == v for k, v in wanted.items() if k != "Tags")

    async def _by_read(self, intent: Intent, why: str) -> _Found:
        """No request status to go by: what the resource is now decides."""
        if not intent.identifier:
            return _Found(None, f"{why}; the identifier is unknown, so nothing can be read.")
        try:
            found = await cloud_in(self.cloud, intent.region).get_resource(
                intent.resource_type, intent.identifier
            )
        except NotFound:
            found = None
        if intent.operation == "create":
            if found is None:
                return _Found(None, f"{why}; the resource does not exist: nothing changed.")
            return _Found("SUCCESS", f"{why}; the resource exists", properties=found.properties)
        if intent.operation == "delete":
            if found is None:
                return _Found("SUCCESS", f"{why}; the resource is gone")
            return _Found(None, f"{why}; the resource still exists: nothing changed.")
        if found is None:
            return _Found(None, f"{why}; the resource does not exist any more.")
        schema = await self.workflow.schemas.get_schema(intent.resource_type)
        if self.workflow.redact(schema, found.properties) == intent.properties_before:
            return _Found(None, f"{why}; the properties are as before: nothing changed.")
        return _Found("SUCCESS", f"{why}; the properties changed", properties=found.properties)

    async def _read(
        self, intent: Intent, identifier: str, event: ProgressEvent | None
    ) -> dict[str, Any]:
        try:
            return (
                await cloud_in(self.cloud, intent.region).get_resource(
                    intent.resource_type, identifier
                )
            ).properties
        except NotFound:  # changed again since: the request's model is what it did
            return dict((event.resource_model if event else None) or intent.properties or {})

    async def _recorded_requests(self, identifier: str) -> set[str]:
        """Request tokens the resource's recent lineage entries already record."""
        tokens = set()
        for commit in await self._recent_commits(identifier):
            tokens |= {c.request_token for c in commit.changes if c.identifier == identifier}
        return {t for t in tokens if t}

    async def _recent_commits(self, identifier: str) -> list[Any]:
        serials = (await self.store.serials_of(identifier))[-RECENT_COMMITS:]
        return [await self.store.commit_at(serial) for serial in reversed(serials)]

    async def _already_recorded(self, identifier: str, execution_token: str) -> int | None:
        for commit in await self._recent_commits(identifier):
            if commit.execution_token == execution_token and any(
                c.identifier == identifier for c in commit.changes
            ):
                return int(commit.serial)
        return None


class _AmbiguousError(CcstateError):
    code = "ambiguous"

    def __init__(self, tokens: list[str]) -> None:
        super().__init__("Several requests match.")
        self.tokens = tokens


def _one(events: list[ProgressEvent]) -> ProgressEvent | None:
    if len(events) > 1:
        raise _AmbiguousError([e.request_token for e in events])
    return events[0] if events else None


def _older_than_retention(intent: Intent) -> bool:
    created = datetime.fromisoformat(intent.created_at.replace("Z", "+00:00"))
    return datetime.now(UTC) - created > REQUEST_RETENTION


def _cloud_error(event: ProgressEvent) -> dict[str, Any]:
    return {
        "error": "cloud_operation_failed",
        "message": f"Cloud Control: {event.error_code or event.operation_status}: "
        f"{event.status_message or ''}".rstrip(),
        "details": {"request_token": event.request_token, "error_code": event.error_code},
    }


def _settlement(key: str, intent: Intent, result: Result, **fields: Any) -> Settlement:
    return Settlement(
        key=key,
        operation=intent.operation,
        resource_type=intent.resource_type,
        identifier=intent.identifier,
        result=result,
        execution_token=intent.execution_token,
        request_token=fields.pop("request_token", intent.request_token),
        **fields,
    )


def _unreadable(key: str, exc: CcstateError) -> Settlement:
    return Settlement(
        key=key,
        operation="?",
        resource_type="?",
        identifier=None,
        result="error",
        execution_token="",
        message=exc.message,
    )
