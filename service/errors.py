"""One exception hierarchy for the whole product.

Every error says what happened, to what, and what to do next. ``to_dict`` is the stable shape the
CLI (``--output json``) and the MCP tools return. An error carries a machine ``code``; where its
next step must name how to do something it says ``${word}`` and each face fills in its own
words (``ccstate.mcp_server.wording`` names MCP tools, ``ccstate.wording`` CLI commands). The
CLI maps codes to exit codes (``ccstate.exit_codes``). Nothing here knows either face.
"""

from __future__ import annotations

from collections.abc import Mapping
from string import Template
from typing import Any


class CcstateError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``step`` (optional) is a machine
    name of the next step. ``next_step`` may name what to do through ``${word}``
    placeholders (``${prepare}``, ``${list_managed}``, ...): each face substitutes its own
    words (``vocabulary``), a tool name or a command; without one, ``NEUTRAL_WORDS``."""

    code = "error"

    def __init__(
        self, message: str, *, next_step: str = "", step: str | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.next_step_template = next_step
        self.step = step
        self.details = details

    @property
    def next_step(self) -> str:
        return self.next_step_in(None)

    @next_step.setter
    def next_step(self, text: str) -> None:
        self.next_step_template = text

    def next_step_in(self, vocabulary: Mapping[str, str] | None) -> str:
        """The next step in a face's words (its tool or command names)."""
        words = {**NEUTRAL_WORDS, **(vocabulary or {})}
        worded = Template(self.next_step_template).safe_substitute(words)
        # A face's words may name the error's own details (``${identifier}``).
        values = {key: str(value) for key, value in self.details.items() if key.isidentifier()}
        return Template(worded).safe_substitute(values)

    def __str__(self) -> str:
        if self.next_step:
            return f"{self.message} Next: {self.next_step}"
        return self.message

    def to_dict(self, vocabulary: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        next_step = self.next_step_in(vocabulary)
        if next_step:
            out["next_step"] = next_step
        if self.details:
            out["details"] = self.details
        return out


# The words of the next steps when no face words them (e.g. an error recorded in the state).
NEUTRAL_WORDS: dict[str, str] = {
    "prepare": "the prepare step (generate the infrastructure code)",
    "explain": "the explain step",
    "scan": "the security scan step",
    "session": "the session step (who you act as)",
    "environment": "the environment check",
    "list_resources": "the list of AWS resources",
    "get_resource": "a read of the resource from AWS",
    "request_status": "the request status",
    "delete": "the delete",
    "approve": "the acceptance of the scan's findings by a person",
    "skip_scan": "skip the scan (the operator disabled scanning)",
    "list_managed": "the list of managed resources",
    "versions": "the list of state versions",
    "history": "the resource's history",
    "import": "an import of the resource",
    "readonly_flag": "read-only mode",
    "workspace_flag": "the workspace setting",
    "detect_without_fix": "Check drift without fixing it",
    "pull": "an export of the current state",
    "force": "force the import",
    "forget": "a forget of the recorded resource",
    "recover": "the recovery of interrupted changes",
    "stack_deploy": "a deploy of the stack",
    "stack_rollback": "a rollback of the stack",
    "stack_destroy": "a destroy of the stack",
    "users_list": "the list of the team server's users",
    "users_add": "an admin adding the user",
    "users_rotate": "an admin rotating the token",
    "users_revoke": "an admin revoking the user",
}


class InvalidInput(CcstateError):
    """The caller gave something malformed: a bad identifier, workspace, URL, document, patch."""

    code = "invalid_input"


class NotFound(CcstateError):
    code = "not_found"


class StateConflict(CcstateError):
    """A concurrent commit touched the same resources; nothing was written."""

    code = "state_conflict"

    def __init__(
        self,
        message: str,
        *,
        resources: list[str],
        authors: list[str],
        next_step: str = "",
        step: str | None = None,
    ) -> None:
        super().__init__(
            message, next_step=next_step, step=step, resources=resources, authors=authors
        )
        self.resources = resources
        self.authors = authors


class HasDependents(CcstateError):
    """A delete refused: other managed resources hold a value of this one (docs/graph.md)."""

    code = "has_dependents"


class PreconditionFailed(CcstateError):
    """An object store conditional write lost: the object exists, or its ETag changed.

    Raised by ObjectStore adapters; the state store turns it into a rebase or a conflict.
    """

    code = "precondition_failed"


class StateCorrupt(CcstateError):
    """A stored commit, snapshot or index cannot be trusted (truncated, bad JSON, bad digest)."""

    code = "state_corrupt"


class IntegrityError(StateCorrupt):
    """A body's sha256 or encryption context does not match what was stored with it."""

    code = "integrity_error"


class UnsupportedVersion(CcstateError):
    code = "unsupported_version"


class ImportRefused(CcstateError):
    """``state push`` of a document from another lineage or an older serial, without --force."""

    code = "import_refused"


class LockError(CcstateError):
    code = "lock_error"


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


class AccessDenied(BackendError):
    """S3, DynamoDB, KMS or Cloud Control refused our credentials."""

    code = "access_denied"


class ConfigError(CcstateError):
    code = "config_error"


class TokenError(CcstateError):
    """An execution token failed a check; ``details['check']`` names which one."""

    code = "token_error"


class CloudOperationFailed(CcstateError):
    """Cloud Control reported FAILED for a request; details carry its error code."""

    code = "cloud_operation_failed"


class ReadOnlyMode(CcstateError):
    code = "read_only"


class PolicyDenied(CcstateError):
    """The operator's policy forbids what was asked (e.g. accepting a critical finding)."""

    code = "policy_denied"


class Forbidden(CcstateError):
    """The principal's role does not allow the action (the team server's roles)."""

    code = "forbidden"
