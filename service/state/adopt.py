"""Bring the state record in line with AWS by hand: forget a resource deleted outside ccstate,
or adopt (import) one created outside it. Both are recorded in the lineage like any change, with
who and why; neither changes anything in AWS.

The faces call these: ``ccstate state rm`` / ``ccstate import`` and, later, the MCP tools
``forget_resource`` / ``import_resource``. Each face words its own next steps.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

from ccstate.service.changes.redaction import load_salt, redact
from ccstate.service.changes.validation import validate_text, validate_type_name
from ccstate.service.errors import InvalidInput, NotFound
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CloudProvider, SchemaProvider
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

# lock(identifier, operation): the resource lock to hold while the record is rewritten.
Locker = Callable[[str, str], AbstractAsyncContextManager[Any]]


@dataclass(frozen=True)
class Recorded:
    """What a forget or an adoption recorded."""

    identifier: str
    resource_type: str
    operation: str  # forget | import
    serial: int
    region: str | None
    properties: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reason(reason: str, operation: str) -> str:
    reason = validate_text(reason, "reason")
    if not reason.strip():
        raise InvalidInput(
            f"A {operation} needs a reason: it is recorded in the resource's history.",
            next_step="Say why, e.g. 'deleted by hand in the console during incident 42'.",
            field="reason",
        )
    return reason


async def forget_resource(
    store: StateStore,
    *,
    identifier: str,
    reason: str,
    principal: Principal,
    lock: Locker | None = None,
) -> Recorded:
    """Remove ``identifier`` from the state (operation ``forget``); AWS is not called."""
    identifier = validate_identifier(identifier)
    reason = _reason(reason, "forget")
    async with lock(identifier, "forget") if lock else nullcontext():
        base = await store.head()
        found = await store.get_resource(identifier)
        if found is None:
            raise NotFound(
                f"Resource '{identifier}' is not in the state of workspace "
                f"'{store.workspace}'; there is nothing to forget.",
                identifier=identifier,
            )
        change = ResourceChange(
            identifier=identifier,
            resource_type=found.resource_type,
            operation="forget",
            region=found.region,
            account_id=found.account_id,
            properties_before=found.current_properties,
            properties_after=None,
        )
        meta = CommitMeta(
            principal=principal,
            explanation=f"Forgot {found.resource_type} '{identifier}': removed from the state "
            "only; AWS was not changed.",
            user_intent=reason,
        )
        commit = await store.commit([change], meta, base_serial=base, under_lock=lock is not None)
    return Recorded(identifier, found.resource_type, "forget", commit.serial, found.region, None)


async def adopt_resource(
    store: StateStore,
    cloud: CloudProvider,
    schemas: SchemaProvider,
    *,
    resource_type: str,
    identifier: str,
    reason: str,
    principal: Principal,
    region: str | None = None,
    lock: Locker | None = None,
) -> Recorded:
    """Read ``identifier`` through Cloud Control and record it (operation ``import``), its
    secrets redacted as in any change. Refused when the state already holds it."""
    validate_type_name(resource_type)
    identifier = validate_identifier(identifier)
    reason = _reason(reason, "import")
    async with lock(identifier, "import") if lock else nullcontext():
        base = await store.head()
        if await store.get_resource(identifier) is not None:
            raise InvalidInput(
                f"Resource '{identifier}' is already in the state of workspace "
                f"'{store.workspace}'.",
                field="identifier",
                identifier=identifier,
            )
        schema = await schemas.get_schema(resource_type)
        found = await cloud.get_resource(resource_type, identifier)
        identity = await cloud.caller_identity()
        salt = await load_salt(store.objects, store.workspace)
        change = ResourceChange(
            identifier=identifier,
            resource_type=resource_type,
            operation="import",
            region=region or identity.region,
            account_id=identity.account,
            properties_before=None,
            properties_after=redact(found.properties, schema, salt),
            managed_by="ccstate import",
        )
        meta = CommitMeta(
            principal=principal,
            explanation=f"Adopted existing {resource_type} '{identifier}' into the state; AWS "
            "was not changed.",
            user_intent=reason,
        )
        commit = await store.commit([change], meta, base_serial=base, under_lock=lock is not None)
    return Recorded(
        identifier, resource_type, "import", commit.serial, change.region, change.properties_after
    )
