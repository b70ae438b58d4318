"""Roles in the one policy: what each role may do, and one allowlist that covers every tool."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest
from ccstate.mcp_server.roles import TOOL_ACTIONS, check_tool, tools_for, visible_tools
from ccstate.mcp_server.server import build_server
from ccstate.service.authz.policy import ACTION_ROLES, ROLES, Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.errors import Forbidden, ReadOnlyMode


def person(role: str | None) -> Principal:
    if role is None:
        return Principal("me", "os-user")
    return Principal(f"a-{role}", "authenticated", role=role)


def registered_tools() -> list[str]:
    parts = {n: None for n in ("workflow", "operations", "state_tools", "detector", "remediator")}
    runtime = SimpleNamespace(
        **parts,
        policy=Policy(),
        extras={"admin": object()},
        workspace="default",
        templates=object(),
    )
    server = build_server(runtime)  # type: ignore[arg-type]
    return [t.name for t in asyncio.run(server.list_tools())]


def test_every_tool_the_server_registers_is_one_action_of_the_policy() -> None:
    unlisted = [t for t in registered_tools() if TOOL_ACTIONS.get(t) not in ACTION_ROLES]

    assert unlisted == [], f"map these tools to an action in mcp_server/roles.py: {unlisted}"


def test_each_roles_allowlist_of_tools() -> None:
    tools = registered_tools()

    viewer, operator = tools_for("viewer", tools), tools_for("operator", tools)

    assert {"load_state", "show_resource_history", "detect_drift", "get_resource"} <= viewer
    assert not {"create_resource", "explain", "save_state", "import_resource"} & viewer
    # Accepting security findings past a failed scan is the approver's (docs/team.md); the
    # team's users and force-unlocking a lock are the admin's.
    admin_only = {"list_users", "revoke_user", "force_unlock"}
    assert "list_locks" in viewer
    assert operator == frozenset(tools) - {"approve_security_findings"} - admin_only
    assert tools_for("approver", tools) == frozenset(tools) - admin_only
    assert tools_for("admin", tools) == frozenset(tools)


def test_a_viewer_sees_no_tool_that_changes_aws_or_the_state() -> None:
    tools = registered_tools()

    visible = visible_tools(Policy(), person("viewer"), tools)

    assert "load_state" in visible and "detect_drift" in visible
    for mutating in ("create_resource", "update_resource", "delete_resource", "import_resource"):
        assert mutating not in visible
    assert visible_tools(Policy(), person(None), tools) == tools  # the local person: all


@pytest.mark.parametrize("action", ["create", "delete", "restore_state_version", "refresh"])
def test_a_viewer_may_not_change_anything_and_an_operator_may(action: str) -> None:
    policy = Policy()

    with pytest.raises(Forbidden) as refused:
        policy.check(person("viewer"), action)  # type: ignore[arg-type]

    assert refused.value.details["required_role"] == "operator"
    policy.check(person("operator"), action)  # type: ignore[arg-type]
    policy.check(person(None), action)  # type: ignore[arg-type]


def test_each_role_includes_the_ones_before_it_and_admin_manages_users() -> None:
    for lower, higher in itertools.pairwise(ROLES):
        assert tools_for(lower) <= tools_for(higher)
    assert "approve_security_findings" in tools_for("approver") - tools_for("operator")
    with pytest.raises(Forbidden):
        Policy().check(person("approver"), "manage_users")
    Policy().check(person("admin"), "manage_users")


def test_a_tool_nobody_mapped_is_for_admins_only() -> None:
    with pytest.raises(Forbidden, match="needs the role admin"):
        check_tool(Policy(), person("approver"), "some_new_tool")
    check_tool(Policy(), person("admin"), "some_new_tool")


def test_read_only_still_refuses_an_admin() -> None:
    with pytest.raises(ReadOnlyMode):
        Policy(readonly=True).check(person("admin"), "create")


def test_a_tool_call_outside_the_role_names_the_role_it_needs() -> None:
    with pytest.raises(Forbidden, match="needs the role operator") as refused:
        check_tool(Policy(), person("viewer"), "create_resource")

    assert refused.value.code == "forbidden"
    assert refused.value.details["tool"] == "create_resource"
