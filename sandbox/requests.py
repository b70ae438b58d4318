"""Resource requests: their progress events, client tokens and the resources they hold busy."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ccstate.sandbox.errors import ApiError, validation

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCEL_COMPLETE"})


@dataclass
class ResourceRequest:
    operation: str  # CREATE | UPDATE | DELETE
    type_name: str
    fingerprint: str  # what the request asked for, to judge a reused ClientToken
    identifier: str | None = None
    client_token: str | None = None
    region: str = "us-east-1"  # Cloud Control is regional: a request is found only in its own
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "IN_PROGRESS"
    event_time: float = field(default_factory=time.time)
    status_message: str | None = None
    error_code: str | None = None
    resource_model: dict[str, Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def event(self) -> dict[str, Any]:
        """The ProgressEvent as the wire carries it."""
        out: dict[str, Any] = {
            "TypeName": self.type_name,
            "RequestToken": self.token,
            "Operation": self.operation,
            "OperationStatus": self.status,
            "EventTime": self.event_time,
        }
        if self.identifier is not None:
            out["Identifier"] = self.identifier
        if self.status_message:
            out["StatusMessage"] = self.status_message
        if self.error_code:
            out["ErrorCode"] = self.error_code
        if self.resource_model is not None:
            out["ResourceModel"] = json.dumps(self.resource_model, sort_keys=True)
        if self.status not in TERMINAL:
            out["RetryAfter"] = self.event_time + 1
        return out


class RequestStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, ResourceRequest] = {}
        self._by_client_token: dict[tuple[str, str], ResourceRequest] = {}
        self._busy: set[tuple[str, str, str]] = set()

    def register(self, request: ResourceRequest) -> tuple[ResourceRequest, bool]:
        """Record a new request; or, for a reused ClientToken, the original one (and False).

        Raises ClientTokenConflictException when the token was used for another request and
        ConcurrentOperationException when the resource already has a request in progress.
        """
        with self._lock:
            earlier = self._by_client_token.get((request.region, request.client_token or ""))
            if earlier is not None:
                if earlier.fingerprint != request.fingerprint:
                    raise ApiError(
                        "ClientTokenConflictException",
                        f"ClientToken '{request.client_token}' was already used for a different "
                        f"request ({earlier.token}).",
                    )
                return earlier, False
            key = self._busy_key(request)
            if key is not None:
                if key in self._busy:
                    raise ApiError(
                        "ConcurrentOperationException",
                        f"Another request is in progress for {key[1]} '{key[2]}'.",
                    )
                self._busy.add(key)
            self._by_token[request.token] = request
            if request.client_token:
                self._by_client_token[(request.region, request.client_token)] = request
            return request, True

    def finish(self, request: ResourceRequest, status: str, **changes: Any) -> None:
        with self._lock:
            if request.cancel.is_set() and status != "FAILED":
                status = "CANCEL_COMPLETE"
            self._busy.discard(self._busy_key(request) or ("", "", ""))
            request.status = status
            request.event_time = time.time()
            for name, value in changes.items():
                setattr(request, name, value)

    def get(self, token: str, region: str) -> ResourceRequest:
        with self._lock:
            found = self._by_token.get(token)
        if found is None or found.region != region:
            raise ApiError(
                "RequestTokenNotFoundException", f"Request token '{token}' was not found."
            )
        return found

    def cancel(self, token: str, region: str) -> ResourceRequest:
        request = self.get(token, region)
        with self._lock:
            if request.status in TERMINAL or request.status == "CANCEL_IN_PROGRESS":
                raise ApiError(
                    "ConcurrentModificationException",
                    f"Request '{token}' is {request.status}; only PENDING or IN_PROGRESS "
                    "requests can be canceled.",
                )
            request.status = "CANCEL_IN_PROGRESS"
            request.event_time = time.time()
            request.cancel.set()
        return request

    def matching(
        self, operations: list[str], statuses: list[str], region: str
    ) -> list[ResourceRequest]:
        with self._lock:
            found = [
                r
                for r in self._by_token.values()
                if r.region == region
                and (not operations or r.operation in operations)
                and (not statuses or r.status in statuses)
            ]
        return sorted(found, key=lambda r: r.event_time, reverse=True)

    def clear(self) -> None:
        with self._lock:
            for request in self._by_token.values():
                request.cancel.set()
            self._by_token.clear()
            self._by_client_token.clear()
            self._busy.clear()

    @staticmethod
    def _busy_key(request: ResourceRequest) -> tuple[str, str, str] | None:
        if not request.identifier:
            return None
        return (request.region, request.type_name, request.identifier)


# --------------------------------------------------------------------------- pagination


def page(items: list[Any], next_token: str | None, max_results: int | None, *, scope: str):
    """One page of ``items`` and the token of the next (None at the end).

    Tokens are opaque to callers: an offset bound to ``scope`` (the type or listing it came
    from), so a token from another listing is refused.
    """
    start = 0
    if next_token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(next_token.encode()))
            start, token_scope = int(decoded["o"]), decoded["s"]
        except (ValueError, KeyError, TypeError) as exc:
            raise validation(f"NextToken '{next_token}' is not valid.") from exc
        if token_scope != scope or start < 0:
            raise validation(f"NextToken '{next_token}' does not belong to this listing.")
    size = max_results or 100
    if not 1 <= size <= 100:
        raise validation("MaxResults must be between 1 and 100.")
    chunk = items[start : start + size]
    end = start + size
    if end >= len(items):
        return chunk, None
    raw = json.dumps({"o": end, "s": scope}).encode()
    return chunk, base64.urlsafe_b64encode(raw).decode()
