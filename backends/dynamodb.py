"""Lease locks in one DynamoDB table, with conditional writes.

Item layout: partition key ``pk`` = '<prefix>/<workspace>', sort key ``sk`` = '#workspace' for
the workspace lock or 'r/<sha256(identifier)>' for a resource lock ('#serial' is the workspace's
serial counter, ``backends/dynamodb_serials.py``). One strongly consistent
Query on ``pk`` therefore lists every lock of a workspace, without a secondary index.

A resource lock is taken in ONE request: ``TransactWriteItems`` with a ``Put`` of our item
(condition ``attribute_not_exists(pk) OR expires_at < :now``) and a ``ConditionCheck`` that the
workspace item is absent or expired. A workspace lock is a transaction with the conditional put
of its item, followed by a consistent ``Query`` for live resource locks; if one exists we delete
our item and back off. The transactions are serializable: either the resource's ran first, and the
Query sees its resource item, or it ran after, and its ConditionCheck sees the live workspace
item. So a workspace lock and a resource lock are never held together; only the workspace
acquirer ever backs off, and jittered backoff lets it in once the resource locks are released.
Renew requires the lease still to be ours *and* unexpired, so a lapsed resource lease cannot come
back to life under a workspace lock taken meanwhile. The ``ttl`` attribute only lets DynamoDB
garbage-collect. Every lease gets a fencing token in the same request that grants it: the
transaction also raises the workspace's '#fence' counter item to the token (condition: the
counter is below it) and the lock item carries the token, so a lease granted later always has a
greater one. The token is chosen, not read back (a transaction returns no values): the lock's own
time in microseconds, or one more than the counter when that is ahead (learned from the failed
condition, then one more attempt at once). Leases compare the holders' clocks: keep them
NTP-synchronised (skew eats into the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from ccstate.backends import aws
from ccstate.service import errors, retry
from ccstate.service.ports import LockInfo, LockScope

log = logging.getLogger(__name__)

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

WORKSPACE_SK = "#workspace"
FENCE_SK = "#fence"
RESOURCE_SK_PREFIX = "r/"
GC_GRACE_SECONDS = 86400
FREE_OR_EXPIRED = "attribute_not_exists(pk) OR expires_at < :now"
# Each attempt costs requests (a workspace attempt three), so every wait is at least half the
# exponential step: 50 ms doubling up to 2 s, each between d/2 and 3d/2.
LOCK_WAIT = retry.equal_jitter(0.05, 2.0)
# Attempts at once when the fencing counter is ahead of the token we chose (a clock behind
# another holder's): the next attempt uses one more than the counter, so one normally suffices.
FENCE_ATTEMPTS = 3


def ccstate_version() -> str:
    try:
        return metadata.version("ccstate")
    except metadata.PackageNotFoundError:
        return "unknown"


def partition_key(prefix: str, workspace: str) -> str:
    """Every item of a workspace (its locks and its serial counter) shares this key."""
    return f"{prefix}/{workspace}" if prefix else workspace


def resource_sort_key(identifier: str) -> str:
    return RESOURCE_SK_PREFIX + hashlib.sha256(identifier.encode()).hexdigest()


class DynamoDBLockManager:
    """LockManager on a table with string keys ``pk`` (hash) and ``sk`` (range)."""

    def __init__(
        self,
        client: Any,
        table: str,
        prefix: str = "",
        *,
        whoami: Callable[[], Awaitable[str | None]] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        self.prefix = prefix.strip("/")
        self.whoami = whoami
        self._now = now
        self._last_fence: dict[str, int] = {}  # per workspace: the greatest token seen

    def aws_clients(self) -> list[Any]:
        return [self.client]

    # ------------------------------------------------------------------ LockManager

    async def acquire(
        self,
        scope: LockScope,
        *,
        operation: str,
        who: str,
        lease_seconds: float,
        timeout: float,
    ) -> LockInfo:
        async def attempt() -> tuple[bool, LockInfo | None]:
            return await self._try_acquire(scope, operation, who, lease_seconds)

        taken, holder = await retry.poll(
            attempt,
            done=lambda answer: answer[0] and answer[1] is not None,
            timeout=timeout,
            wait=LOCK_WAIT,
        )
        if not taken or holder is None:
            raise _timeout(scope, holder, timeout)
        return holder

    async def renew(self, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        now = self._now()
        expires = now + lease_seconds
        try:
            await self._call(
                "dynamodb:UpdateItem",
                self.client.update_item,
                TableName=self.table,
                Key=self._key(LockScope(lock.workspace, lock.resource)),
                UpdateExpression="SET expires_at = :exp, expires = :iso, #ttl = :ttl",
                ConditionExpression="lock_id = :me AND expires_at >= :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=marshal(
                    {
                        ":exp": expires,
                        ":iso": _iso(expires),
                        ":ttl": int(expires) + GC_GRACE_SECONDS,
                        ":me": lock.id,
                        ":now": now,
                    }
                ),
            )
        except ConditionFailed as exc:
            raise errors.LockLost(
                f"Lock {lock.id} on {LockScope(lock.workspace, lock.resource).describe()} is no "
                "longer ours: its lease expired or it was force-unlocked.",
                next_step="Stop the operation; re-read the state and start it again.",
                lock_id=lock.id,
            ) from exc
        return _replace_expiry(lock, expires)

    async def release(self, lock: LockInfo) -> None:
        scope = LockScope(lock.workspace, lock.resource)
        await self._delete_if_ours(scope, lock.id)

    async def list_locks(self, workspace: str | None = None) -> list[LockInfo]:
        if workspace is not None:
            items = await self._query_workspace(workspace)
        else:
            items = await self._scan()
        return sorted((_info(item) for item in items), key=lambda info: info.created)

    async def force_unlock(self, lock_id: str) -> LockInfo:
        items = await self._scan("lock_id = :id", {":id": lock_id})
        if not items:
            raise errors.LockNotFound(
                f"No lock with id {lock_id} in DynamoDB table {self.table}.",
                next_step="List the current locks with `ccstate lock list`.",
                lock_id=lock_id,
            )
        info = _info(items[0])
        if not await self._delete_if_ours(LockScope(info.workspace, info.resource), lock_id):
            raise errors.LockNotFound(
                f"Lock {lock_id} was released or taken over while force-unlocking it.",
                next_step="List the current locks with `ccstate lock list`.",
                lock_id=lock_id,
            )
        log.warning("force-unlocked lock_id=%s held by %s (%s)", lock_id, info.who, info.operation)
        return info

    # ------------------------------------------------------------------ protocol steps

    async def _try_acquire(
        self, scope: LockScope, operation: str, who: str, lease_seconds: float
    ) -> tuple[bool, LockInfo | None]:
        """(True, our lock) when taken; else (False, the holder we saw, if any). A fencing
        counter found ahead of the token we chose costs one more attempt at once."""
        for _ in range(FENCE_ATTEMPTS):
            now = self._now()
            item = self._new_item(scope, operation, who, now, now + lease_seconds)
            try:
                if scope.is_workspace:
                    return await self._try_acquire_workspace(scope, item, now)
                return await self._try_acquire_resource(scope, item, now)
            except _FenceBehind as behind:
                seen = self._last_fence.get(scope.workspace, 0)
                self._last_fence[scope.workspace] = max(seen, behind.counter)
        return False, None

    async def _try_acquire_resource(
        self, scope: LockScope, item: dict[str, Any], now: float
    ) -> tuple[bool, LockInfo | None]:
        """One TransactWriteItems: put our item, provided the workspace lock is not live, and
        raise the fencing counter to our token."""
        free = _free(self.table, now)
        my_id = item["lock_id"]
        try:
            await self._call(
                # IAM authorizes each part of a transaction by its own action.
                "dynamodb:PutItem, dynamodb:ConditionCheckItem and dynamodb:UpdateItem",
                self.client.transact_write_items,
                # The lock id as idempotency token: a retry after a lost answer is a no-op.
                ClientRequestToken=my_id,
                TransactItems=[
                    {"Put": {**free, "Item": marshal(item)}},
                    {"ConditionCheck": {**free, "Key": self._key(LockScope(scope.workspace))}},
                    self._raise_fence(scope.workspace, item["fence"]),
                ],
            )
        except _TransactionCanceled as exc:
            return self._lost(exc, scope.workspace, my_id)
        return True, self._granted(item)

    async def _try_acquire_workspace(
        self, scope: LockScope, item: dict[str, Any], now: float
    ) -> tuple[bool, LockInfo | None]:
        my_id = item["lock_id"]
        try:
            await self._call(
                "dynamodb:PutItem and dynamodb:UpdateItem",
                self.client.transact_write_items,
                ClientRequestToken=my_id,
                TransactItems=[
                    {"Put": {**_free(self.table, now), "Item": marshal(item)}},
                    self._raise_fence(scope.workspace, item["fence"]),
                ],
            )
        except _TransactionCanceled as exc:
            taken, holder = self._lost(exc, scope.workspace, my_id)
            if not taken:
                return False, holder
        try:
            blocker = await self._live_blocker(scope, my_id)
        except BaseException:
            # Never leave a lock behind on an error path (cancellation included).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._delete_if_ours(scope, my_id))
            raise
        if blocker is None:
            return True, self._granted(item)
        await self._delete_if_ours(scope, my_id)
        return False, blocker

    def _lost(
        self, exc: _TransactionCanceled, workspace: str, my_id: str
    ) -> tuple[bool, LockInfo | None]:
        """What a cancelled lock transaction means: our own earlier attempt (its answer was
        lost), a live holder, or a fencing counter ahead of our token (``_FenceBehind``)."""
        holder = exc.holder()
        if holder is not None and holder.id == my_id:
            return True, self._granted_info(holder)
        counter = exc.fence_counter()
        if counter is not None:
            if holder is None:
                raise _FenceBehind(counter)
            self._last_fence[workspace] = max(self._last_fence.get(workspace, 0), counter)
        return False, holder

    def _raise_fence(self, workspace: str, token: int) -> dict[str, Any]:
        """The transaction part that makes ``token`` the workspace's newest fencing token."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": marshal({"pk": self._pk(workspace), "sk": FENCE_SK}),
                "UpdateExpression": "SET #f = :t",
                "ConditionExpression": "attribute_not_exists(#f) OR #f < :t",
                "ExpressionAttributeNames": {"#f": "fence"},
                "ExpressionAttributeValues": marshal({":t": token}),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _next_token(self, workspace: str, now: float) -> int:
        """The token to try: our time in microseconds, past any token we have seen."""
        return max(int(now * 1_000_000), self._last_fence.get(workspace, 0) + 1)

    def _granted(self, item: dict[str, Any]) -> LockInfo:
        return self._granted_info(_info(item))

    def _granted_info(self, info: LockInfo) -> LockInfo:
        seen = self._last_fence.get(info.workspace, 0)
        self._last_fence[info.workspace] = max(seen, info.fence)
        return info

    async def _live_blocker(self, scope: LockScope, my_id: str) -> LockInfo | None:
        """A live resource lock in the workspace we are locking, if any."""
        now = self._now()
        for item in await self._query_workspace(scope.workspace):
            if item["lock_id"] != my_id and float(item["expires_at"]) >= now:
                return _info(item)
        return None

    async def _holder(self, scope: LockScope) -> LockInfo | None:
        item = await self._get(scope)
        return _info(item) if item else None

    async def _delete_if_ours(self, scope: LockScope, lock_id: str) -> bool:
        try:
            await self._call(
                "dynamodb:DeleteItem",
                self.client.delete_item,
                TableName=self.table,
                Key=self._key(scope),
                ConditionExpression="lock_id = :me",
                ExpressionAttributeValues=marshal({":me": lock_id}),
            )
        except ConditionFailed:
            return False
        return True

    # ------------------------------------------------------------------ table access

    async def _get(self, scope: LockScope) -> dict[str, Any] | None:
        resp = await self._call(
            "dynamodb:GetItem",
            self.client.get_item,
            TableName=self.table,
            Key=self._key(scope),
            ConsistentRead=True,
        )
        return unmarshal(resp["Item"]) if "Item" in resp else None

    async def _query_workspace(self, workspace: str) -> list[dict[str, Any]]:
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": marshal({":pk": self._pk(workspace)}),
            "ConsistentRead": True,
        }
        return await self._paginate("dynamodb:Query", "query", args)

    async def _scan(
        self, condition: str = "", values: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every lock item under our prefix (another prefix may share the table)."""
        values = dict(values or {})
        if self.prefix:
            values[":root"] = self.prefix + "/"
            condition = " AND ".join(filter(None, [condition, "begins_with(pk, :root)"]))
        args: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        if condition:
            args["FilterExpression"] = condition
            args["ExpressionAttributeValues"] = marshal(values)
        return await self._paginate("dynamodb:Scan", "scan", args)

    async def _paginate(
        self, action: str, operation: str, args: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The lock items of every page (the table also holds serial counters: skipped).
        A transient error on any page reads again from the first: reading is idempotent."""

        async def every_page() -> list[dict[str, Any]]:
            pages = self.client.get_paginator(operation).paginate(**args)
            return [item async for page in pages for item in page.get("Items", [])]

        items = await self._call(action, every_page)
        return [unmarshal(item) for item in items if "lock_id" in item]

    async def _call(self, action: str, fn: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        return await call_table(self.table, self.whoami, action, fn, **kwargs)

    # ------------------------------------------------------------------ items

    def _pk(self, workspace: str) -> str:
        return partition_key(self.prefix, workspace)

    def _key(self, scope: LockScope) -> dict[str, Any]:
        return marshal(self._key_values(scope))

    def _key_values(self, scope: LockScope) -> dict[str, str]:
        sk = WORKSPACE_SK if scope.is_workspace else resource_sort_key(str(scope.resource))
        return {"pk": self._pk(scope.workspace), "sk": sk}

    def _new_item(
        self, scope: LockScope, operation: str, who: str, now: float, expires: float
    ) -> dict[str, Any]:
        """The lock item, in Python values (``marshal`` turns it into DynamoDB's)."""
        item: dict[str, Any] = {
            **self._key_values(scope),
            "lock_id": uuid.uuid4().hex,
            "workspace": scope.workspace,
            "who": who,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "operation": operation,
            "created_at": now,
            "created": _iso(now),
            "expires_at": expires,
            "expires": _iso(expires),
            "version": ccstate_version(),
            "ttl": int(expires) + GC_GRACE_SECONDS,
            "fence": self._next_token(scope.workspace, now),
        }
        if scope.resource is not None:
            item["resource"] = scope.resource
        return item


async def call_table(
    table: str,
    whoami: Callable[[], Awaitable[str | None]] | None,
    action: str,
    fn: Callable[..., Awaitable[Any]],
    **kwargs: Any,
) -> Any:
    """One DynamoDB request with retries; a lost condition raises ``ConditionFailed``, other
    errors become ccstate errors that name the table and the IAM action."""
    try:
        return await aws.call_with_retry(fn, **kwargs)
    except aws.AWS_ERRORS as exc:
        code = aws.error_code(exc)
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed from exc
        if code == "TransactionCanceledException" and _only_contention(exc):
            raise _TransactionCanceled(exc) from exc
        raise await aws.translate_with_caller(
            exc, whoami, what=f"DynamoDB table {table}", iam_action=action
        ) from exc


def _free(table: str, now: float) -> dict[str, Any]:
    """A transaction part's condition: the item is absent or its lease ran out."""
    return {
        "TableName": table,
        "ConditionExpression": FREE_OR_EXPIRED,
        "ExpressionAttributeValues": marshal({":now": now}),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


class _FenceBehind(Exception):
    """The workspace's fencing counter is at or past the token we chose."""

    def __init__(self, counter: int) -> None:
        super().__init__(f"fencing counter at {counter}")
        self.counter = counter


class ConditionFailed(Exception):
    """A conditional write lost; callers decide what that means."""


# Cancellation reasons that mean "someone else got there first": back off and retry.
CONTENTION_REASONS = frozenset(
    {
        "None",
        "ConditionalCheckFailed",
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    }
)


def _cancellation_reasons(exc: BaseException) -> list[dict[str, Any]]:
    response = getattr(exc, "response", {}) or {}
    return list(response.get("CancellationReasons") or [])


def _only_contention(exc: BaseException) -> bool:
    reasons = _cancellation_reasons(exc)
    return bool(reasons) and all(r.get("Code", "None") in CONTENTION_REASONS for r in reasons)


class _TransactionCanceled(Exception):
    """A lock transaction lost to a live lock or a concurrent transaction."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.reasons = _cancellation_reasons(cause)

    def holder(self) -> LockInfo | None:
        """The live lock that failed a condition (returned with ALL_OLD), if any."""
        for reason in self.reasons:
            item = reason.get("Item")
            if reason.get("Code") == "ConditionalCheckFailed" and item and "lock_id" in item:
                return _info(unmarshal(item))
        return None

    def fence_counter(self) -> int | None:
        """The fencing counter, when its condition (below our token) is what failed."""
        for reason in self.reasons:
            item = reason.get("Item")
            if reason.get("Code") == "ConditionalCheckFailed" and item and "lock_id" not in item:
                values = unmarshal(item)
                if values.get("sk") == FENCE_SK and "fence" in values:
                    return int(values["fence"])
        return None


def marshal(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values as DynamoDB attribute values (boto3's TypeSerializer); a float is sent
    rounded to the microsecond, as DynamoDB numbers are decimal."""
    return {key: _SERIALIZER.serialize(_decimal(value)) for key, value in values.items()}


def unmarshal(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values as Python values (numbers come back as ``Decimal``)."""
    return {key: _DESERIALIZER.deserialize(value) for key, value in item.items()}


def _decimal(value: Any) -> Any:
    return Decimal(repr(round(value, 6))) if isinstance(value, float) else value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _info(item: dict[str, Any]) -> LockInfo:
    return LockInfo(
        id=item["lock_id"],
        workspace=item["workspace"],
        resource=item.get("resource"),
        who=item["who"],
        host=item["host"],
        pid=int(item["pid"]),
        operation=item["operation"],
        created=datetime.fromtimestamp(float(item["created_at"]), UTC),
        expires=datetime.fromtimestamp(float(item["expires_at"]), UTC),
        version=item.get("version", "unknown"),
        fence=int(item.get("fence", 0)),
    )


def _replace_expiry(info: LockInfo, expires: float) -> LockInfo:
    return replace(info, expires=datetime.fromtimestamp(expires, UTC))


def _timeout(scope: LockScope, holder: LockInfo | None, timeout: float) -> errors.LockTimeout:
    if holder is None:
        return errors.LockTimeout(
            f"Could not lock {scope.describe()} within {timeout:g}s: it kept changing hands.",
            next_step="Retry with a longer --lock-timeout.",
        )
    return errors.LockTimeout(
        f"Could not lock {scope.describe()} within {timeout:g}s: held by {holder.who} "
        f"(operation '{holder.operation}', host {holder.host}, pid {holder.pid}, since "
        f"{holder.created.isoformat()}, lease until {holder.expires.isoformat()}, "
        f"lock id {holder.id}).",
        next_step=f"Wait for it to finish and retry with a longer --lock-timeout; if the holder "
        f"is gone, run `ccstate lock force-unlock {holder.id}`.",
        holder=holder.to_dict(),
    )
