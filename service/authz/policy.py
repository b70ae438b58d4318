"""The one place that decides whether a principal may do an action or call a tool.

Two rules. A read-only server refuses every action that changes AWS or the state record. A
principal with a role (the team server's authenticated users) may do only what the role allows:
``viewer`` reads, ``operator`` changes, ``approver`` approves others' changes, ``admin``
manages users and locks; each role includes the ones before it. A principal without a role (the
local person on stdio or in the CLI, whose authority is their AWS and backend credentials) is
limited by the first rule only. Every face and every use case asks ``Policy.check`` (actions) or
``Policy.check_tool`` (MCP tools); nobody tests ``readonly`` or a role on their own.
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
    "refresh",
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


# The least role each action needs.
ACTION_ROLES: dict[str, Role] = {
    "create": "operator",
    "update": "operator",
    "delete": "operator",
    "remediate": "operator",
    "restore_state_version": "operator",
    "import_resource": "operator",
    "refresh": "operator",
    "record_drift": "operator",
    "approve": "approver",
    "manage_users": "admin",
    "force_unlock": "admin",
}

# The one allowlist of MCP tools per role (each role also has the tools of the roles before
# it). A tool in no list is served to admins only: a new tool module must add its tools here
# (tests/unit/authz/test_roles.py fails until it does).
ROLE_TOOLS: dict[Role, frozenset[str]] = {
    "viewer": frozenset(
        {
            "check_environment_variables",
            "get_aws_session_info",
            "get_resource_schema_information",
            "list_resources",
            "get_resource",
            "get_resource_request_status",
            "load_state",
            "show_resource_history",
            "list_state_versions",
            "show_dependency_graph",
            "detect_drift",  # a viewer's check is not recorded and fixes nothing (record_drift)
        }
    ),
    "operator": frozenset(
        {
            "generate_infrastructure_code",
            "explain",
            "run_checkov",
            "create_resource",
            "update_resource",
            "delete_resource",
            "refresh_state",
            "save_state",
            "restore_state_version",
            "import_resource",
        }
    ),
    "approver": frozenset({"approve_security_findings"}),
    "admin": frozenset(),
}


def role_rank(role: str) -> int:
    return ROLES.index(role)  # type: ignore[arg-type]


def tools_for(role: str) -> frozenset[str]:
    """Every tool ``role`` may call (its own and those of the roles before it)."""
    allowed: set[str] = set()
    for each in ROLES[: role_rank(role) + 1]:
        allowed |= ROLE_TOOLS[each]
    return frozenset(allowed)


def least_role_for_tool(tool: str) -> Role:
    return next((r for r in ROLES if tool in ROLE_TOOLS[r]), "admin")


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

    def check_tool(self, principal: Principal | None, tool: str) -> None:
        """Raise ``Forbidden`` when ``principal``'s role does not list ``tool``."""
        role = principal.role if principal is not None else None
        if role is None or tool in tools_for(role):
            return
        needed = least_role_for_tool(tool)
        raise Forbidden(
            f"{principal.person} (role {role}) may not call {tool}: it needs the role {needed}.",  # type: ignore[union-attr]
            next_step="Ask an admin for that role, or use a tool of your role (tools/list).",
            step="role",
            tool=tool,
            role=role,
            required_role=needed,
        )

    def visible_tools(self, principal: Principal | None, tools: list[str]) -> list[str]:
        """The tools ``principal`` may call, in the order given (what tools/list shows)."""
        role = principal.role if principal is not None else None
        if role is None:
            return list(tools)
        allowed = tools_for(role)
        return [t for t in tools if t in allowed]

    @staticmethod
    def _check_role(principal: Principal | None, action: str) -> None:
        role = principal.role if principal is not None else None
        needed = ACTION_ROLES.get(action)
        if role is None or needed is None or role_rank(role) >= role_rank(needed):
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
