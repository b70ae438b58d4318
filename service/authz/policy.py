"""The one place that decides whether a principal may do an action.

Today one rule: a read-only server refuses every action that changes AWS or the state record.
Roles (viewer, operator, approver, admin) will be checked here too, so every face and every use
case asks ``Policy.check`` and nobody tests ``readonly`` on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ccstate.service.authz.principal import Principal
from ccstate.service.errors import ReadOnlyMode

# What a request wants to do. ``create``/``update``/``delete`` change AWS; ``remediate`` too
# (through the token workflow); the others change only the state record.
Action = Literal[
    "create",
    "update",
    "delete",
    "remediate",
    "restore_state_version",
    "import_resource",
    "forget_resource",
    "refresh",
]
CHANGES_AWS = frozenset({"create", "update", "delete"})

# The refusal of a read-only server, per action (the wording users have seen since 0.1).
# (message, next step with ${words} the faces fill in)
_RESTART_AWS = "Restart the server without ${readonly_flag} to make changes."
_RESTART_STATE = "Restart the server without ${readonly_flag} to change the state."
_REFUSALS: dict[str, tuple[str, str]] = {
    "remediate": (
        "This server is read-only: it can detect drift but not fix it.",
        "${detect_without_fix}, or restart the server without ${readonly_flag}.",
    ),
    "refresh": (
        "This server is read-only: it refuses every change to the state (refresh).",
        _RESTART_STATE,
    ),
}


@dataclass(frozen=True)
class Policy:
    readonly: bool = False

    def check(self, principal: Principal | None, action: Action) -> None:
        """Raise ``ReadOnlyMode`` when ``principal`` may not do ``action`` here.

        The error carries ``details['operation']``; its next step names no tool or command:
        the faces fill in their words (the MCP server names tools, the CLI commands).
        """
        if not self.readonly:
            return
        message, next_step = _REFUSALS.get(action) or _default_refusal(action)
        raise ReadOnlyMode(message, next_step=next_step, step="read_only", operation=action)

    def allows(self, principal: Principal | None, action: Action) -> bool:
        try:
            self.check(principal, action)
        except ReadOnlyMode:
            return False
        return True


def _default_refusal(action: str) -> tuple[str, str]:
    if action in CHANGES_AWS:
        return f"This server is read-only: it refuses every change ({action}).", _RESTART_AWS
    return f"This server is read-only: it refuses {action}.", _RESTART_STATE
