"""The MCP face's words for the next steps the domain names (``${prepare}`` -> the tool).

``service/`` never names a tool; its errors say ``${prepare}``, ``${list_managed}``, ... and
``results.tool_result`` renders them with these words. The next steps of successful results
are written by the tool modules themselves, from the typed results.
"""

from __future__ import annotations

MCP_WORDS: dict[str, str] = {
    "prepare": "generate_infrastructure_code",
    "explain": "explain",
    "scan": "run_checkov",
    "session": "get_aws_session_info",
    "environment": "check_environment_variables",
    "list_resources": "list_resources",
    "get_resource": "get_resource",
    "request_status": "get_resource_request_status",
    "delete": "delete_resource",
    "approve": "approve_security_findings(security_scan_token, decision, accepted_checks, reason)",
    "skip_scan": "pass skip_security_check=True",
    "list_managed": "load_state()",
    "stack_recover": "recover_stack(stack_name=...) or `ccstate stack recover`",
    "stack_plan": "create_stack, update_stack, rollback_stack or destroy_stack with preview=true",
    "stack_list": "list_stacks()",
    "stack_deploy": "update_stack(stack_name, resources, user_intent, preview=true) with the "
    "fixed resources, then again with its plan_token",
    "stack_rollback": "rollback_stack(stack_name=..., preview=true), then again with its "
    "plan_token, or `ccstate stack rollback`",
    "stack_destroy": "destroy_stack(stack_name=..., confirmed=true)",
    "versions": "list_state_versions()",
    "history": "show_resource_history",
    "import": "import_resource",
    "readonly_flag": "--readonly",
    "workspace_flag": "the server's --workspace",
    "detect_without_fix": "Call detect_drift without auto_fix",
    "pull": "save_state()",
    "forget": "forget_resource(identifier, reason)",
    "force": "use `ccstate state push --force` from the command line",
    "recover": "`ccstate recover` (a restarted server does the same)",
    "users_list": "an admin's list_users() (or `ccstate users list`)",
    "users_add": "an admin's `ccstate users add NAME --role ROLE`",
    "users_rotate": "an admin's `ccstate users rotate NAME`",
    "users_revoke": "an admin's revoke_user(name) (or `ccstate users revoke NAME`)",
}
