"""The state as the assistant sees it: load, history, versions, restore, import, save.

These read and write the state record only; none of them changes anything in AWS. A restore
makes the *record* equal to an earlier version (as a new, recorded commit); rolling resources
back in AWS is a change like any other and goes through the token workflow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from ccstate.service.changes.validation import validate_text, validate_type_name
from ccstate.service.changes.workflow import Workflow
from ccstate.service.errors import InvalidInput, NotFound, ReadOnlyMode
from ccstate.service.names import validate_identifier
from ccstate.service.state.model import CommitMeta, ResourceChange, StateDocument
from ccstate.service.state.store import StateStore

MAX_VERSIONS = 200
MAX_LOADED_RESOURCES = 500

Exporter = Callable[[StateDocument], Awaitable[str | None]]
Locker = Callable[[str | None, str], AbstractAsyncContextManager[None]]


class StateTools:
    def __init__(
        self,
        workflow: Workflow,
        store: StateStore,
        *,
        readonly: bool = False,
        save: Exporter | None = None,
        lock: Locker | None = None,
    ) -> None:
        """``lock(identifier | None, operation)``: the lock to hold while the state is
        rewritten (``ResourceOperations.locked``); restores take the workspace lock."""
        self.workflow = workflow
        self.store = store
        self.readonly = readonly
        self._save = save
        self._lock = lock

    def _holding(self, identifier: str | None, operation: str) -> AbstractAsyncContextManager[None]:
        return self._lock(identifier, operation) if self._lock else nullcontext()

    async def load(
        self, *, identifier: str = "", resource_type: str = "", include_lineage: bool = False
    ) -> dict[str, Any]:
        view = await self.store.current()
        if identifier:
            validate_identifier(identifier)
            res = await self.store.get_resource(identifier)
            if res is None:
                raise NotFound(
                    f"Resource '{identifier}' is not in the state of workspace "
                    f"'{self.store.workspace}'.",
                    next_step="Call load_state() to list what is managed, or import_resource "
                    "to adopt an existing resource.",
                )
            body = res.to_json_dict()
            if include_lineage:
                body["lineage"] = [e.to_json_dict() for e in await self.store.history(identifier)]
            return {"serial": view.serial, "lineage": view.lineage, "resource": body}
        if resource_type:
            validate_type_name(resource_type)
        selected = [
            r
            for r in view.resources.values()
            if not resource_type or r.resource_type == resource_type
        ]
        return {
            "workspace": self.store.workspace,
            "serial": view.serial,
            "lineage": view.lineage,
            "last_updated": view.last_updated or None,
            "total_resources": len(selected),
            "resources": [
                {
                    "identifier": r.identifier,
                    "resource_type": r.resource_type,
                    "region": r.region,
                    "last_modified": r.last_modified,
                    "drift_status": r.drift_status.status,
                    "current_properties": r.current_properties,
                }
                for r in selected[:MAX_LOADED_RESOURCES]
            ],
            "truncated": len(selected) > MAX_LOADED_RESOURCES,
        }

    async def history(self, identifier: str) -> dict[str, Any]:
        validate_identifier(identifier)
        entries = await self.store.history(identifier)
        if not entries:
            raise NotFound(
                f"Resource '{identifier}' has no history in workspace '{self.store.workspace}'.",
                next_step="Check the identifier with load_state().",
            )
        return {
            "identifier": identifier,
            "in_state": await self.store.get_resource(identifier) is not None,
            "entries": [e.to_json_dict() for e in entries],
            "count": len(entries),
        }

    async def versions(self, *, limit: int = 20) -> dict[str, Any]:
        if not isinstance(limit, int) or not 1 <= limit <= MAX_VERSIONS:
            raise InvalidInput(
                f"limit must be between 1 and {MAX_VERSIONS}.",
                next_step="Pass a smaller limit, e.g. 20.",
                field="limit",
            )
        versions = await self.store.versions(limit)
        return {
            "head": await self.store.head(),
            "versions": [v.to_json_dict() for v in versions],
        }

    async def restore(self, *, serial: int, user_intent: str = "") -> dict[str, Any]:
        self._refuse_if_readonly("restore_state_version")
        user_intent = validate_text(user_intent, "user_intent")
        head = await self.store.head()
        if not isinstance(serial, int) or not 0 <= serial <= head:
            raise InvalidInput(
                f"There is no state version {serial}: versions go from 0 to {head}.",
                next_step="Call list_state_versions() and pick a serial from it.",
                field="serial",
            )
        meta = CommitMeta(
            principal=await self.workflow.principal(),
            user_intent=user_intent or None,
            explanation=f"Restore of the state record to version {serial}",
        )
        async with self._holding(None, "restore_state_version"):
            commit = await self.store.restore(serial, meta)
        return {
            "restored_from": serial,
            "serial": commit.serial,
            "changed_resources": [
                {"identifier": c.identifier, "operation": c.operation} for c in commit.changes
            ],
            "message": f"The state record now equals version {serial} (recorded as version "
            f"{commit.serial}). AWS itself was not changed: compare with drift detection and "
            "apply changes through the token workflow if the resources must follow.",
        }

    async def import_resource(
        self, *, resource_type: str, identifier: str, user_intent: str = "", region: str = ""
    ) -> dict[str, Any]:
        """Adopt a resource that exists in AWS: record its properties as read from the cloud."""
        self._refuse_if_readonly("import_resource")
        validate_type_name(resource_type)
        identifier = validate_identifier(identifier)
        user_intent = validate_text(user_intent, "user_intent")
        if not user_intent.strip():
            raise InvalidInput(
                "import_resource needs a user_intent: why this resource is being adopted.",
                next_step="Ask the user why the resource should be managed and pass it.",
                field="user_intent",
            )
        async with self._holding(identifier, "import_resource"):
            base = await self.store.head()
            if await self.store.get_resource(identifier) is not None:
                raise InvalidInput(
                    f"Resource '{identifier}' is already in the state.",
                    next_step="Use show_resource_history to see it; drift detection compares it "
                    "with AWS.",
                    field="identifier",
                )
            schema = await self.workflow.schemas.get_schema(resource_type)
            where = await self.workflow.region_for(region)
            cloud = await self.workflow.cloud_for(where)
            found = await cloud.get_resource(resource_type, identifier)
            identity = await self.workflow.identity()
            change = ResourceChange(
                identifier=identifier,
                resource_type=resource_type,
                operation="import",
                region=where,
                account_id=identity.account,
                properties_before=None,
                properties_after=self.workflow.redact(schema, found.properties),
                managed_by="ccstate import",
            )
            meta = CommitMeta(
                principal=await self.workflow.principal(),
                explanation=f"Adopted existing {resource_type} '{identifier}' into the state",
                user_intent=user_intent,
            )
            commit = await self.store.commit([change], meta, base_serial=base)
        return {
            "identifier": identifier,
            "resource_type": resource_type,
            "serial": commit.serial,
            "properties": change.properties_after,
            "message": f"{resource_type} '{identifier}' is now managed in the state "
            f"(version {commit.serial}). Nothing was changed in AWS.",
        }

    async def save(self) -> dict[str, Any]:
        doc = await self.store.export_document()
        where = await self._save(doc) if self._save is not None else None
        return {
            "serial": doc.metadata.serial,
            "lineage": doc.metadata.lineage,
            "total_resources": doc.metadata.total_resources,
            "total_operations": doc.metadata.total_operations,
            "saved_to": where,
            "backend": self.store.objects.describe(),
            "message": "Every change is already committed to the backend as it happens; "
            + (f"the readable export is at {where}." if where else "no local export is set."),
        }

    def _refuse_if_readonly(self, operation: str) -> None:
        if self.readonly:
            raise ReadOnlyMode(
                f"This server is read-only: it refuses {operation}.",
                next_step="Restart the server without --readonly to change the state.",
                operation=operation,
            )
