"""The one place that decides whether a principal may do an action or call a tool.

Two rules. A read-only server refuses every action that changes AWS or the state record. A
principal with a role (the team server's authenticated users) may do only what the role allows:
``viewer`` reads, ``operator`` changes, ``approver`` approves others' changes, ``admin``
manages users and locks; each role includes the ones before it. A principal without a role (the
local person on stdio or in the CLI, whose authority is their AWS and backend credentials) is
limited by the first rule only. Every face and every use case asks ``Policy.check`` (both
rules) or ``Policy.check_role`` (the role rule, for a face's entry point such as an MCP tool);
nobody tests ``readonly`` or a role on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ccstate.service.authz.principal import Principal
from ccstate.service.errors import Forbidden, ReadOnlyMode

Role = Literal["viewer", "operator", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver", "admin")  # each includes the last

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
    "rollback",
    "stack",
    "refresh",
    "read",
    "prepare",
    "save_state",
    "record_drift",
    "approve",
    "manage_users",
    "force_unlock",
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


# The least role each action needs: the one allowlist of actions per role. Each face maps its
# entry points to actions (mcp_server/roles.py: every MCP tool to one action), so a tool is
# allowed exactly when its action is.
ACTION_ROLES: dict[str, Role] = {
    "read": "viewer",
    "prepare": "operator",
    "save_state": "operator",
    "create": "operator",
    "update": "operator",
    "delete": "operator",
    "remediate": "operator",
    "restore_state_version": "operator",
    "import_resource": "operator",
    "forget_resource": "operator",
    "rollback": "operator",
    "stack": "operator",
    "refresh": "operator",
    "record_drift": "operator",
    "approve": "approver",
    "manage_users": "admin",
    "force_unlock": "admin",
}


def role_rank(role: str) -> int:
    return ROLES.index(role)  # type: ignore[arg-type]


def least_role(action: str) -> Role:
    """The least role that may do ``action``; an action nobody listed is for admins only."""
    return ACTION_ROLES.get(action, "admin")


def actions_for(role: str) -> frozenset[str]:
    """Every action ``role`` may do (what the faces turn into their allowlists)."""
    return frozenset(a for a, least in ACTION_ROLES.items() if role_rank(role) >= role_rank(least))


@dataclass(frozen=True)
class Policy:
    readonly: bool = False

    def check(self, principal: Principal | None, action: Action) -> None:
        """Raise ``ReadOnlyMode`` when ``principal`` may not do ``action`` here.

        The error carries ``details['operation']``; its next step names no tool or command:
        the faces fill in their words (the MCP server names tools, the CLI commands).
        A principal whose role is below the action's raises ``Forbidden``.
        """
        self._check_role(principal, action)
        if not self.readonly:
            return
        message, next_step = _REFUSALS.get(action) or _default_refusal(action)
        raise ReadOnlyMode(message, next_step=next_step, step="read_only", operation=action)

    def allows(self, principal: Principal | None, action: Action) -> bool:
        try:
            self.check(principal, action)
        except (ReadOnlyMode, Forbidden):
            return False
        return True

    def check_role(self, principal: Principal | None, action: str) -> None:
        """Raise ``Forbidden`` when ``principal``'s role may not do ``action`` (the role rule
        alone: what a face asks before it even starts, e.g. for an MCP tool)."""
        self._check_role(principal, action)

    def role_allows(self, principal: Principal | None, action: str) -> bool:
        try:
            self._check_role(principal, action)
        except Forbidden:
            return False
        return True

    @staticmethod
    def _check_role(principal: Principal | None, action: str) -> None:
        role = principal.role if principal is not None else None
        needed = least_role(action)
        if role is None or role_rank(role) >= role_rank(needed):
            return
        raise Forbidden(
            f"{principal.person} (role {role}) may not {action}: it needs the role {needed}.",  # type: ignore[union-attr]
            next_step="Ask an admin of the team server for that role.",
            step="role",
            operation=action,
            role=role,
            required_role=needed,
        )


def _default_refusal(action: str) -> tuple[str, str]:
    if action in CHANGES_AWS:
        return f"This server is read-only: it refuses every change ({action}).", _RESTART_AWS
    return f"This server is read-only: it refuses {action}.", _RESTART_STATE
