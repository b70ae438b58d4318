"""One exception hierarchy for the whole product.

Every error says what happened, to what, and what to do next. ``to_dict`` is the stable shape the
CLI (``--output json``) and the MCP tools return.
"""

from __future__ import annotations

from typing import Any


class CcstateError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``exit_code`` is for the CLI."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, next_step: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.details = details

    def __str__(self) -> str:
        if self.next_step:
            return f"{self.message} Next: {self.next_step}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.next_step:
            out["next_step"] = self.next_step
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(CcstateError):
    """The caller gave something malformed: a bad identifier, workspace, URL, document, patch."""

    code = "invalid_input"
    exit_code = 2


class NotFound(CcstateError):
    code = "not_found"
    exit_code = 3


class StateConflict(CcstateError):
    """A concurrent commit touched the same resources; nothing was written."""

    code = "state_conflict"
    exit_code = 4

    def __init__(
        self, message: str, *, resources: list[str], authors: list[str], next_step: str = ""
    ) -> None:
        super().__init__(message, next_step=next_step, resources=resources, authors=authors)
        self.resources = resources
        self.authors = authors


class PreconditionFailed(CcstateError):
    """An object store conditional write lost: the object exists, or its ETag changed.

    Raised by ObjectStore adapters; the state store turns it into a rebase or a conflict.
    """

    code = "precondition_failed"
    exit_code = 4


class StateCorrupt(CcstateError):
    """A stored commit, snapshot or index cannot be trusted (truncated, bad JSON, bad digest)."""

    code = "state_corrupt"
    exit_code = 5


class IntegrityError(StateCorrupt):
    """A body's sha256 or encryption context does not match what was stored with it."""

    code = "integrity_error"


class UnsupportedVersion(CcstateError):
    code = "unsupported_version"
    exit_code = 5


class ImportRefused(CcstateError):
    """``state push`` of a document from another lineage or an older serial, without --force."""

    code = "import_refused"
    exit_code = 4


class LockError(CcstateError):
    code = "lock_error"
    exit_code = 6


class LockTimeout(LockError):
    """Another holder kept the lock past ``--lock-timeout``; details name the holder."""

    code = "lock_timeout"


class LockLost(LockError):
    """Our lease expired or was force-unlocked while we worked."""

    code = "lock_lost"


class LockNotFound(LockError):
    code = "lock_not_found"


class BackendError(CcstateError):
    """The storage or cloud backend failed in a way the caller cannot fix by changing input."""

    code = "backend_error"
    exit_code = 7


class AccessDenied(BackendError):
    """S3, DynamoDB, KMS or Cloud Control refused our credentials."""

    code = "access_denied"


class ConfigError(CcstateError):
    code = "config_error"
    exit_code = 2


class TokenError(CcstateError):
    """An execution token failed a check; ``details['check']`` names which one."""

    code = "token_error"
    exit_code = 8


class CloudOperationFailed(CcstateError):
    """Cloud Control reported FAILED for a request; details carry its error code."""

    code = "cloud_operation_failed"
    exit_code = 9


class ReadOnlyMode(CcstateError):
    code = "read_only"
    exit_code = 8


class PolicyDenied(CcstateError):
    """The operator's policy forbids what was asked (e.g. accepting a critical finding)."""

    code = "policy_denied"
    exit_code = 8
