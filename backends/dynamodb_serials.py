"""The Sequencer port on the lock table: one counter item per workspace.

Item: ``pk`` = '<prefix>/<workspace>' (the workspace's lock partition), ``sk`` = '#serial',
attribute ``serial`` (N). A ticket is one ``UpdateItem ADD serial 1`` returning the new value:
DynamoDB serializes updates of an item, so each caller gets its own serial without a race to
lose. ``ADD`` alone is not idempotent, so the update also records the caller's random ticket id
and is conditioned on it not being the last one: a retry whose first answer was lost fails the
condition and reads its serial from the item returned with the failure. Only when another
caller took a serial in between is the first one skipped; the store fills such a hole with a
void commit after its grace period.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ccstate.backends.dynamodb import (
    ConditionFailed,
    call_table,
    marshal,
    partition_key,
    unmarshal,
)

SERIAL_SK = "#serial"


class DynamoDBSequencer:
    def __init__(
        self,
        client: Any,
        table: str,
        prefix: str = "",
        *,
        whoami: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.prefix = prefix.strip("/")
        self.whoami = whoami

    def aws_clients(self) -> list[Any]:
        return [self.client]

    async def next_serial(self, workspace: str) -> int:
        return await self.take(workspace, uuid.uuid4().hex)

    async def take(self, workspace: str, ticket: str) -> int:
        """The serial for ``ticket``; asking again with the same ticket (a retry whose first
        answer was lost) returns the same serial, unless another ticket came between."""
        try:
            resp = await self._on_counter(
                "UpdateItem",
                workspace,
                UpdateExpression="ADD #n :one SET #t = :ticket",
                ConditionExpression="attribute_not_exists(#t) OR #t <> :ticket",
                ExpressionAttributeNames={"#n": "serial", "#t": "last_ticket"},
                ExpressionAttributeValues=marshal({":one": 1, ":ticket": ticket}),
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:  # our earlier attempt got it: the item says which
            item = getattr(exc.__cause__, "response", {}).get("Item") or {}
            return int(unmarshal(item)["serial"])
        return int(unmarshal(resp["Attributes"])["serial"])

    async def current(self, workspace: str) -> int:
        resp = await self._on_counter("GetItem", workspace, ConsistentRead=True)
        return int(unmarshal(resp.get("Item", {})).get("serial", 0))

    async def advance_to(self, workspace: str, serial: int) -> None:
        with contextlib.suppress(ConditionFailed):  # already there or beyond
            await self._on_counter(
                "UpdateItem",
                workspace,
                UpdateExpression="SET #n = :s",
                ConditionExpression="attribute_not_exists(#n) OR #n < :s",
                ExpressionAttributeNames={"#n": "serial"},
                ExpressionAttributeValues=marshal({":s": serial}),
            )

    async def _on_counter(self, action: str, workspace: str, **kwargs: Any) -> Any:
        fn = getattr(self.client, "update_item" if action == "UpdateItem" else "get_item")
        return await call_table(
            self.table,
            self.whoami,
            f"dynamodb:{action}",
            fn,
            TableName=self.table,
            Key=self._key(workspace),
            **kwargs,
        )

    def _key(self, workspace: str) -> dict[str, Any]:
        return marshal({"pk": partition_key(self.prefix, workspace), "sk": SERIAL_SK})
