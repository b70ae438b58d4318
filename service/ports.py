"""The ports ``service/`` needs from the outside world. ``backends/`` implements them.

Small interfaces in the manner of Terraform's statemgr: an object store that can write once and
compare-and-swap, a lease lock manager, a cipher, a clock, the cloud, and resource schemas.
All I/O is async; adapters over synchronous resources (files) may do the work inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from ccstate.service.changes.schema import ResourceSchema

# --------------------------------------------------------------------------- object store


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str  # opaque version marker for put(..., if_match=etag)


@runtime_checkable
class ObjectStore(Protocol):
    """Keys are '/'-separated relative paths, e.g. 'default/log/00000000000000000042.json'.

    Implementations validate keys (no '..', no NUL, no leading '/') and raise
    ``errors.StateCorrupt``/``IntegrityError`` when a body fails its integrity check.
    """

    def describe(self) -> str:
        """A URL-like description for messages, e.g. 'file:///home/me/.aws/ccapi-mcp-server'."""
        ...

    async def get(self, key: str) -> StoredObject | None:
        """The object, or None when absent."""
        ...

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Write once. True when written; False when the key already existed (nothing changed).

        The write is atomic: readers never see a partial body.
        """
        ...

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        """Create or replace atomically; returns the new etag.

        With ``if_match``, replace only when the current etag equals it, else raise
        ``errors.PreconditionFailed``.
        """
        ...

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        """Keys under ``prefix`` in lexicographic order, strictly after ``start_after``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove; absent keys are not an error."""
        ...

    async def existed(self, key: str) -> bool:
        """Whether ``key`` was ever written, as far as the store can tell: on a versioned S3
        bucket an absent key with a previous version or a delete marker did exist. False
        where the store keeps no such history (local files)."""
        ...


# --------------------------------------------------------------------------- serials


@runtime_checkable
class Sequencer(Protocol):
    """Hands out the serials of a workspace's log, each to exactly one caller (a ticket).

    With a sequencer, writers on disjoint resources put their commits in parallel, each at its
    own serial, instead of racing for ``head + 1``. A ticket that is never written leaves a hole
    that readers fill with an empty ``void`` commit after a grace period (the store does that).
    """

    async def next_serial(self, workspace: str) -> int:
        """One more than the highest serial handed out so far; nobody else gets it."""
        ...

    async def current(self, workspace: str) -> int:
        """The highest serial handed out so far (0 when none)."""
        ...

    async def advance_to(self, workspace: str, serial: int) -> None:
        """Make ``current`` at least ``serial`` (commits written without a ticket, e.g. copied
        in by a migration)."""
        ...


# --------------------------------------------------------------------------- locks


@dataclass(frozen=True)
class LockScope:
    """A lock on one resource of a workspace, or (resource=None) on the whole workspace.

    A workspace lock excludes every resource lock of that workspace and vice versa.
    """

    workspace: str
    resource: str | None = None

    @property
    def is_workspace(self) -> bool:
        return self.resource is None

    def describe(self) -> str:
        if self.resource is None:
            return f"workspace '{self.workspace}'"
        return f"resource '{self.resource}' in workspace '{self.workspace}'"


@dataclass(frozen=True)
class LockInfo:
    id: str  # random, unique per acquisition; what force-unlock takes
    workspace: str
    resource: str | None
    who: str  # caller ARN or user, plus host and pid
    host: str
    pid: int
    operation: str
    created: datetime
    expires: datetime
    version: str  # ccstate version of the holder
    # Fencing token: greater than the token of every lease of this workspace granted before
    # (0: a backend or lock file from before fencing). Commits made under the lease carry it.
    fence: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": "workspace" if self.resource is None else "resource",
            "workspace": self.workspace,
            "resource": self.resource,
            "who": self.who,
            "host": self.host,
            "pid": self.pid,
            "operation": self.operation,
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat(),
            "version": self.version,
            "fence": self.fence,
        }


@runtime_checkable
class LockManager(Protocol):
    async def acquire(
        self,
        scope: LockScope,
        *,
        operation: str,
        who: str,
        lease_seconds: float,
        timeout: float,
    ) -> LockInfo:
        """Take the lease, waiting with backoff up to ``timeout`` seconds.

        A lease whose ``expires`` is in the past is free to take. The lease carries a fencing
        token (``LockInfo.fence``) greater than that of every lease of the workspace granted
        before it, bound while the lease was live. Raises ``errors.LockTimeout``
        naming the current holder when the wait runs out.
        """
        ...

    async def renew(self, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        """Extend our lease; raises ``errors.LockLost`` when it is no longer ours or has lapsed
        (a lapsed lease is never brought back: someone may have taken the scope meanwhile)."""
        ...

    async def release(self, lock: LockInfo) -> None:
        """Conditional delete by owner (lock id). Releasing a lost lock is not an error."""
        ...

    async def list_locks(self, workspace: str | None = None) -> list[LockInfo]:
        """Live and expired locks (callers compare ``expires`` with the clock)."""
        ...

    async def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a lock by id whoever holds it; raises ``errors.LockNotFound``."""
        ...


# --------------------------------------------------------------------------- crypto, clock


@runtime_checkable
class Cipher(Protocol):
    """Envelope encryption. ``context`` is authenticated: decrypting with another one fails."""

    async def encrypt(self, plaintext: bytes, context: dict[str, str]) -> bytes: ...

    async def decrypt(self, blob: bytes, context: dict[str, str]) -> bytes: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --------------------------------------------------------------------------- cloud


@dataclass(frozen=True)
class ProgressEvent:
    """Cloud Control's ProgressEvent, in snake_case."""

    request_token: str
    operation: str  # CREATE | UPDATE | DELETE
    operation_status: str  # PENDING | IN_PROGRESS | SUCCESS | FAILED | CANCEL_IN_PROGRESS | ...
    type_name: str
    identifier: str | None = None
    status_message: str | None = None
    error_code: str | None = None
    resource_model: dict[str, Any] | None = None
    event_time: datetime | None = None
    retry_after: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.operation_status in {"SUCCESS", "FAILED", "CANCEL_COMPLETE"}


@dataclass(frozen=True)
class ResourceDescription:
    type_name: str
    identifier: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class CallerIdentity:
    account: str
    arn: str
    user_id: str
    region: str
    credential_source: str = ""  # e.g. 'env', 'profile:dev', 'sso'


@dataclass
class ResourcePage:
    resources: list[ResourceDescription] = field(default_factory=list)
    next_token: str | None = None


@runtime_checkable
class CloudProvider(Protocol):
    """The Cloud Control API (plus STS for who we are)."""

    async def caller_identity(self) -> CallerIdentity: ...

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, client_token: str
    ) -> ProgressEvent: ...

    async def update_resource(
        self,
        type_name: str,
        identifier: str,
        patch_document: list[dict[str, Any]],
        *,
        client_token: str,
    ) -> ProgressEvent: ...

    async def delete_resource(
        self, type_name: str, identifier: str, *, client_token: str
    ) -> ProgressEvent: ...

    async def get_resource(self, type_name: str, identifier: str) -> ResourceDescription:
        """Raises ``errors.NotFound`` when the resource does not exist."""
        ...

    async def list_resources(
        self, type_name: str, *, next_token: str | None = None, max_results: int | None = None
    ) -> ResourcePage: ...

    async def get_request_status(self, request_token: str) -> ProgressEvent: ...

    async def wait_for_request(self, request_token: str, *, timeout: float) -> ProgressEvent:
        """Poll with backoff until terminal or ``timeout``; returns the last event."""
        ...

    async def list_resource_requests(self, operation: str) -> list[ProgressEvent]:
        """Every request of one operation (CREATE | UPDATE | DELETE) Cloud Control still
        remembers (7 days), all pages: to find a request whose token was never recorded."""
        ...


def cloud_in(cloud: CloudProvider, region: str | None) -> CloudProvider:
    """The provider acting in ``region``: Cloud Control is regional, so each region has its own
    client (``for_region``). A provider without regions (a test double) serves every region."""
    for_region = getattr(cloud, "for_region", None)
    return for_region(region) if region and for_region is not None else cloud


@runtime_checkable
class SchemaProvider(Protocol):
    async def get_schema(self, type_name: str) -> ResourceSchema:
        """Raises ``errors.NotFound`` for an unknown type."""
        ...


@runtime_checkable
class IacGenerator(Protocol):
    """CloudFormation's IaC generator: a template for resources that already exist.

    Asynchronous like the API: ``start`` returns the generated template's id (an ARN),
    ``status`` says IN_PROGRESS / COMPLETE / FAILED, ``template`` returns the body when complete.
    Raises ``errors.BackendError`` (or a subclass) when the service is not available.
    """

    async def start(
        self,
        name: str,
        resources: list[dict[str, Any]],
        *,
        deletion_policy: str,
        update_replace_policy: str,
        region: str | None = None,
    ) -> str: ...

    async def status(self, template_id: str) -> dict[str, Any]: ...

    async def template(self, template_id: str, output_format: str) -> str: ...
