"""Which action each MCP tool is, so the one policy can say who may call it.

The policy (``service.authz.policy``) knows roles and actions, never tool names (the domain
names no tool). Here each tool is mapped to the action it performs; a role may call a tool
exactly when the policy lets it do the tool's action. That gives each role one allowlist of
tools (``tools_for``), used for ``tools/list`` and ``tools/call`` alike. A tool missing here
is for admins only, and ``tests/unit/authz/test_roles.py`` fails until it is listed.
"""

from __future__ import annotations

from ccstate.service.authz.policy import Policy, least_role
from ccstate.service.authz.principal import Principal
from ccstate.service.errors import Forbidden

ADMIN_ONLY = "admin_only"  # the action of a tool nobody mapped

TOOL_ACTIONS: dict[str, str] = {
    # viewer: reads; a viewer's drift check is neither recorded nor fixes anything
    "check_environment_variables": "read",
    "get_aws_session_info": "read",
    "get_resource_schema_information": "read",
    "list_resources": "read",
    "get_resource": "read",
    "get_resource_request_status": "read",
    "load_state": "read",
    "show_resource_history": "read",
    "list_state_versions": "read",
    "show_dependency_graph": "read",
    "get_aws_account_info": "read",
    "create_template": "read",
    "analyze_change_impact": "read",
    "list_stacks": "read",
    "get_stack": "read",
    "detect_drift": "read",
    "list_locks": "read",
    # operator: prepares and makes changes
    "generate_infrastructure_code": "prepare",
    "explain": "prepare",
    "run_checkov": "prepare",
    "create_resource": "create",
    "update_resource": "update",
    "delete_resource": "delete",
    "refresh_state": "refresh",
    "save_state": "save_state",
    "restore_state_version": "restore_state_version",
    "import_resource": "import_resource",
    "forget_resource": "forget_resource",
    "rollback_resource": "rollback",
    "create_stack": "stack",
    "destroy_stack": "stack",
    "recover_stack": "stack",
    "update_stack": "stack",
    "rollback_stack": "stack",
    # approver
    "approve_security_findings": "approve",
    # admin: the team's users and the locks a crashed holder left
    "list_users": "manage_users",
    "revoke_user": "manage_users",
    "force_unlock": "force_unlock",
}


def tool_action(tool: str) -> str:
    return TOOL_ACTIONS.get(tool, ADMIN_ONLY)


def least_role_for_tool(tool: str) -> str:
    return least_role(tool_action(tool))


def check_tool(policy: Policy, principal: Principal | None, tool: str) -> None:
    """Raise ``Forbidden`` naming the role the tool needs when ``principal`` may not call it."""
    if policy.role_allows(principal, tool_action(tool)):
        return
    role = principal.role if principal is not None else None
    needed = least_role_for_tool(tool)
    who = principal.person if principal is not None else "anonymous"
    raise Forbidden(
        f"{who} (role {role}) may not call {tool}: it needs the role {needed}.",
        next_step="Ask an admin of the team server for that role, or use the tools your role "
        "lists (tools/list).",
        step="role",
        tool=tool,
        role=role,
        required_role=needed,
    )


def visible_tools(policy: Policy, principal: Principal | None, tools: list[str]) -> list[str]:
    """The tools ``principal`` may call, in the order given (what tools/list shows)."""
    return [t for t in tools if policy.role_allows(principal, tool_action(t))]


def tools_for(role: str, tools: list[str] | None = None) -> frozenset[str]:
    """The allowlist of a role: every tool (of ``tools``, default the mapped ones) it may call."""
    probe = Principal("probe", "authenticated", role=role)
    return frozenset(visible_tools(Policy(), probe, list(tools or TOOL_ACTIONS)))
