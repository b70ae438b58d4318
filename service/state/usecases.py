"""The state as the assistant sees it: load, history, versions, restore, import, save.

These read and write the state record only; none of them changes anything in AWS. A restore
makes the *record* equal to an earlier version (as a new, recorded commit); rolling resources
back in AWS is a change like any other and goes through the token workflow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from ccstate.service.authz.policy import Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.changes.validation import validate_text, validate_type_name
from ccstate.service.changes.workflow import Workflow
from ccstate.service.errors import InvalidInput, NotFound
from ccstate.service.names import validate_identifier
from ccstate.service.state.model import (
    Commit,
    CommitMeta,
    LineageEntry,
    ResourceChange,
    ResourceState,
    StateDocument,
    VersionInfo,
)
from ccstate.service.state.store import StateStore

MAX_VERSIONS = 200
MAX_LOADED_RESOURCES = 500

Exporter = Callable[[StateDocument], Awaitable[str | None]]


@dataclass(frozen=True)
class ResourceView:
    """One managed resource as the state records it (with its lineage if asked)."""

    serial: int
    lineage: str
    resource: ResourceState
    entries: list[LineageEntry] | None = None


@dataclass(frozen=True)
class StateListing:
    workspace: str
    serial: int
    lineage: str
    last_updated: str | None
    resources: list[ResourceState]  # at most MAX_LOADED_RESOURCES
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.resources)


@dataclass(frozen=True)
class ResourceHistory:
    identifier: str
    in_state: bool
    entries: list[LineageEntry]


@dataclass(frozen=True)
class StateVersions:
    head: int
    versions: list[VersionInfo]


@dataclass(frozen=True)
class Restored:
    restored_from: int
    commit: Commit


@dataclass(frozen=True)
class Imported:
    identifier: str
    resource_type: str
    commit: Commit
    properties: dict[str, Any] | None


@dataclass(frozen=True)
class Saved:
    document: StateDocument
    saved_to: str | None
    backend: str


Locker = Callable[[Principal, str | None, str], AbstractAsyncContextManager[None]]


class StateTools:
    def __init__(
        self,
        workflow: Workflow,
        store: StateStore,
        *,
        policy: Policy | None = None,
        save: Exporter | None = None,
        lock: Locker | None = None,
    ) -> None:
        """``lock(principal, identifier | None, operation)``: the lock to hold while the state
        is rewritten (``ResourceOperations.locked``); restores take the workspace lock."""
        self.workflow = workflow
        self.store = store
        self.policy = policy or Policy()
        self._save = save
        self._lock = lock

    def _holding(
        self, principal: Principal, identifier: str | None, operation: str
    ) -> AbstractAsyncContextManager[None]:
        return self._lock(principal, identifier, operation) if self._lock else nullcontext()

    async def resource(self, identifier: str, *, include_lineage: bool = False) -> ResourceView:
        view = await self.store.current()
        validate_identifier(identifier)
        res = await self.store.get_resource(identifier)
        if res is None:
            raise NotFound(
                f"Resource '{identifier}' is not in the state of workspace "
                f"'{self.store.workspace}'.",
                next_step="Call ${list_managed} to list what is managed, or ${import} "
                "to adopt an existing resource.",
            )
        entries = await self.store.history(identifier) if include_lineage else None
        return ResourceView(view.serial, view.lineage, res, entries)

    async def listing(self, *, resource_type: str = "") -> StateListing:
        view = await self.store.current()
        if resource_type:
            validate_type_name(resource_type)
        selected = [
            r
            for r in view.resources.values()
            if not resource_type or r.resource_type == resource_type
        ]
        return StateListing(
            workspace=self.store.workspace,
            serial=view.serial,
            lineage=view.lineage,
            last_updated=view.last_updated or None,
            resources=selected[:MAX_LOADED_RESOURCES],
            total=len(selected),
        )

    async def history(self, identifier: str) -> ResourceHistory:
        validate_identifier(identifier)
        entries = await self.store.history(identifier)
        if not entries:
            raise NotFound(
                f"Resource '{identifier}' has no history in workspace '{self.store.workspace}'.",
                next_step="Check the identifier with ${list_managed}.",
            )
        in_state = await self.store.get_resource(identifier) is not None
        return ResourceHistory(identifier, in_state, entries)

    async def versions(self, *, limit: int = 20) -> StateVersions:
        if not isinstance(limit, int) or not 1 <= limit <= MAX_VERSIONS:
            raise InvalidInput(
                f"limit must be between 1 and {MAX_VERSIONS}.",
                next_step="Pass a smaller limit, e.g. 20.",
                field="limit",
            )
        versions = await self.store.versions(limit)
        return StateVersions(await self.store.head(), versions)

    async def restore(
        self, principal: Principal, *, serial: int, user_intent: str = ""
    ) -> Restored:
        self.policy.check(principal, "restore_state_version")
        user_intent = validate_text(user_intent, "user_intent")
        head = await self.store.head()
        if not isinstance(serial, int) or not 0 <= serial <= head:
            raise InvalidInput(
                f"There is no state version {serial}: versions go from 0 to {head}.",
                next_step="Call ${versions} and pick a serial from it.",
                field="serial",
            )
        meta = CommitMeta(
            principal=principal.to_record(),
            user_intent=user_intent or None,
            explanation=f"Restore of the state record to version {serial}",
        )
        async with self._holding(principal, None, "restore_state_version"):
            commit = await self.store.restore(serial, meta)
        return Restored(serial, commit)

    async def import_resource(
        self,
        principal: Principal,
        *,
        resource_type: str,
        identifier: str,
        user_intent: str = "",
        region: str = "",
    ) -> Imported:
        """Adopt a resource that exists in AWS: record its properties as read from the cloud."""
        self.policy.check(principal, "import_resource")
        validate_type_name(resource_type)
        identifier = validate_identifier(identifier)
        user_intent = validate_text(user_intent, "user_intent")
        if not user_intent.strip():
            raise InvalidInput(
                "import_resource needs a user_intent: why this resource is being adopted.",
                next_step="Ask the user why the resource should be managed and pass it.",
                field="user_intent",
            )
        async with self._holding(principal, identifier, "import_resource"):
            base = await self.store.head()
            if await self.store.get_resource(identifier) is not None:
                raise InvalidInput(
                    f"Resource '{identifier}' is already in the state.",
                    next_step="Use ${history} to see it; drift detection compares it with AWS.",
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
                principal=principal.to_record(),
                explanation=f"Adopted existing {resource_type} '{identifier}' into the state",
                user_intent=user_intent,
            )
            commit = await self.store.commit([change], meta, base_serial=base)
        return Imported(identifier, resource_type, commit, change.properties_after)

    async def save(self) -> Saved:
        doc = await self.store.export_document()
        where = await self._save(doc) if self._save is not None else None
        return Saved(doc, where, self.store.objects.describe())
