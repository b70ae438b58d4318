"""In-process doubles of the outside world for use-case tests and the call-count benchmark.

``FakeCloud`` implements ``service.ports.CloudProvider`` on a dict (every request finishes at
once, unless ``pending`` asks for one poll); ``FakeSchemas`` serves a few resource schemas;
``CountingObjectStore`` wraps a real ObjectStore and counts each call by method. The state and
the tokens run on a real store (``backends.memory`` or ``backends.local_objects``), so only the
cloud is pretend.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import jsonpatch
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.errors import BackendError, NotFound
from ccstate.service.ports import (
    CallerIdentity,
    ObjectStore,
    ProgressEvent,
    ResourceDescription,
    ResourcePage,
    StoredObject,
)

ACCOUNT = "123456789012"
ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
REGION = "us-east-1"

BUCKET_SCHEMA = ResourceSchema.from_document(
    {
        "typeName": "AWS::S3::Bucket",
        "properties": {
            "BucketName": {"type": "string"},
            "Arn": {"type": "string"},
            "VersioningConfiguration": {"type": "object"},
            "Tags": {
                "type": "array",
                "insertionOrder": False,
                "items": {
                    "type": "object",
                    "properties": {"Key": {"type": "string"}, "Value": {"type": "string"}},
                },
            },
        },
        "primaryIdentifier": ["/properties/BucketName"],
        "readOnlyProperties": ["/properties/Arn"],
        "createOnlyProperties": ["/properties/BucketName"],
        "tagging": {"taggable": True, "tagProperty": "/properties/Tags"},
        "additionalProperties": False,
    }
)


class FakeCloud:
    """Cloud Control on a dict. ``fail_next`` makes the next mutation FAILED with that code;
    ``changed_outside`` edits a resource the way someone in the console would. ``hold``
    keeps mutations IN_PROGRESS until ``release()`` (FAILED with ``release(fail=True)``);
    ``lose_next_answer`` makes the next mutation happen but its answer never arrive."""

    def __init__(self, *, arn: str = ARN) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: dict[str, ProgressEvent] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next: str | None = None
        self.hold = False
        self.lose_next_answer = False
        self._held: list[tuple[str, Any]] = []
        self._release_event: asyncio.Event | None = None
        self._arn = arn
        self._ids = itertools.count(1)

    def release(self, *, fail: bool = False) -> None:
        """Finish every held request: apply it (SUCCESS) or not (FAILED)."""
        held, self._held = self._held, []
        for token, apply in held:
            pending = self.requests[token]
            if not fail:
                apply()
            self.requests[token] = replace(
                pending,
                operation_status="FAILED" if fail else "SUCCESS",
                error_code="InvalidRequest" if fail else None,
                status_message="refused by the fake cloud" if fail else None,
            )
        if self._release_event is not None:
            self._release_event.set()
            self._release_event = None

    def _mutate(self, operation: str, type_name: str, identifier: str, apply: Any) -> ProgressEvent:
        if self._failing():
            return self._event(operation, type_name, identifier, failed=True)
        if self.hold:
            event = self._event(operation, type_name, identifier, status="IN_PROGRESS")
            self._held.append((event.request_token, apply))
            return event
        apply()
        event = self._event(operation, type_name, identifier)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise BackendError("The connection to Cloud Control was lost (fake).")
        return event

    async def list_resource_requests(self, operation: str) -> list[ProgressEvent]:
        return [e for e in self.requests.values() if e.operation == operation]

    async def caller_identity(self) -> CallerIdentity:
        self.calls["caller_identity"] += 1
        return CallerIdentity(ACCOUNT, self._arn, "AIDAFAKE", REGION, "env")

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, client_token: str
    ) -> ProgressEvent:
        self.calls["create_resource"] += 1
        identifier = str(desired_state.get("BucketName") or f"res-{next(self._ids)}")
        model = copy.deepcopy(desired_state)
        model["Arn"] = f"arn:aws:s3:::{identifier}"

        def apply() -> None:
            self.resources[(type_name, identifier)] = model

        return self._mutate("CREATE", type_name, identifier, apply)

    async def update_resource(
        self,
        type_name: str,
        identifier: str,
        patch_document: list[dict[str, Any]],
        *,
        client_token: str,
    ) -> ProgressEvent:
        self.calls["update_resource"] += 1
        self._get(type_name, identifier)

        def apply() -> None:
            current = self._get(type_name, identifier)
            self.resources[(type_name, identifier)] = jsonpatch.apply_patch(current, patch_document)

        return self._mutate("UPDATE", type_name, identifier, apply)

    async def delete_resource(
        self, type_name: str, identifier: str, *, client_token: str
    ) -> ProgressEvent:
        self.calls["delete_resource"] += 1
        self._get(type_name, identifier)

        def apply() -> None:
            del self.resources[(type_name, identifier)]

        return self._mutate("DELETE", type_name, identifier, apply)

    async def get_resource(self, type_name: str, identifier: str) -> ResourceDescription:
        self.calls["get_resource"] += 1
        return ResourceDescription(
            type_name, identifier, copy.deepcopy(self._get(type_name, identifier))
        )

    async def list_resources(
        self, type_name: str, *, next_token: str | None = None, max_results: int | None = None
    ) -> ResourcePage:
        found = [
            ResourceDescription(t, i, copy.deepcopy(p))
            for (t, i), p in sorted(self.resources.items())
            if t == type_name
        ]
        return ResourcePage(found)

    async def get_request_status(self, request_token: str) -> ProgressEvent:
        if request_token not in self.requests:
            raise NotFound(f"No request {request_token}.")
        return self.requests[request_token]

    async def wait_for_request(self, request_token: str, *, timeout: float) -> ProgressEvent:
        """A held request: until ``release()`` or ``timeout`` seconds (0: answer at once)."""
        event = await self.get_request_status(request_token)
        if not event.is_terminal and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released().wait(), timeout)
        return await self.get_request_status(request_token)

    def _released(self) -> asyncio.Event:
        if self._release_event is None:
            self._release_event = asyncio.Event()
        return self._release_event

    def changed_outside(self, type_name: str, identifier: str, **properties: Any) -> None:
        self.resources[(type_name, identifier)].update(properties)

    def _get(self, type_name: str, identifier: str) -> dict[str, Any]:
        found = self.resources.get((type_name, identifier))
        if found is None:
            raise NotFound(f"{type_name} '{identifier}' does not exist.")
        return found

    def _failing(self) -> bool:
        failing, self.fail_next = self.fail_next, None
        return failing is not None

    def _event(
        self,
        operation: str,
        type_name: str,
        identifier: str,
        *,
        failed: bool = False,
        status: str = "SUCCESS",
    ) -> ProgressEvent:
        event = ProgressEvent(
            request_token=f"req-{next(self._ids)}",
            operation=operation,
            operation_status="FAILED" if failed else status,
            type_name=type_name,
            identifier=identifier,
            error_code="InvalidRequest" if failed else None,
            status_message="refused by the fake cloud" if failed else None,
            event_time=datetime.now(UTC),
        )
        self.requests[event.request_token] = event
        return event


class FakeSchemas:
    def __init__(self, *schemas: ResourceSchema) -> None:
        self._schemas = {s.type_name: s for s in schemas or (BUCKET_SCHEMA,)}

    async def get_schema(self, type_name: str) -> ResourceSchema:
        if type_name not in self._schemas:
            raise NotFound(f"Unknown resource type {type_name}.")
        return self._schemas[type_name]


class CountingObjectStore:
    """Delegates to a real ObjectStore and counts every call, by method name."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.keys: list[str] = []

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.keys.clear()

    def describe(self) -> str:
        return self.inner.describe()

    async def get(self, key: str) -> StoredObject | None:
        self._count("get", key)
        return await self.inner.get(key)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        self._count("put_if_absent", key)
        return await self.inner.put_if_absent(key, body)

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        self._count("put", key)
        return await self.inner.put(key, body, if_match=if_match)

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        self._count("list_keys", prefix)
        return await self.inner.list_keys(prefix, start_after=start_after)

    async def delete(self, key: str) -> None:
        self._count("delete", key)
        await self.inner.delete(key)

    def _count(self, method: str, key: str) -> None:
        self.calls[method] += 1
        self.keys.append(f"{method} {key}")
