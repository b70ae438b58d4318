"""The CLI's words for the next steps the domain names (``${list_managed}`` -> a command).

``service/`` never names a command; its errors say ``${list_managed}``, ``${versions}``, ...
and ``cli.report_error`` renders them with these words.
"""

from __future__ import annotations

CLI_WORDS: dict[str, str] = {
    "prepare": "the MCP tool generate_infrastructure_code",
    "explain": "the MCP tool explain",
    "scan": "the MCP tool run_checkov",
    "session": "the MCP tool get_aws_session_info",
    "environment": "the MCP tool check_environment_variables",
    "list_resources": "the MCP tool list_resources",
    "get_resource": "the MCP tool get_resource",
    "request_status": "the MCP tool get_resource_request_status",
    "delete": "the MCP tool delete_resource",
    "approve": "the MCP tool approve_security_findings",
    "skip_scan": "pass skip_security_check=True to the MCP tool",
    "list_managed": "`ccstate state list`",
    "stack_recover": "`ccstate stack recover`",
    "stack_plan": "`ccstate stack deploy FILE` (it explains and scans the plan itself)",
    "stack_list": "`ccstate stack list`",
    "stack_deploy": "`ccstate stack deploy FILE`",
    "stack_rollback": "`ccstate stack rollback`",
    "stack_destroy": "`ccstate stack destroy`",
    "versions": "`ccstate state versions`",
    "history": "`ccstate state history`",
    "import": "the MCP tool import_resource",
    "readonly_flag": "--readonly",
    "workspace_flag": "--workspace",
    "detect_without_fix": "Run `ccstate drift` without --fix",
    "pull": "`ccstate state pull`",
    "force": "pass --force",
    "forget": "`ccstate state rm ${identifier} --reason ...`",
    "recover": "`ccstate recover`",
    "users_list": "`ccstate users list`",
    "users_add": "`ccstate users add NAME --role ROLE`",
    "users_rotate": "`ccstate users rotate NAME`",
    "users_revoke": "`ccstate users revoke NAME`",
}
