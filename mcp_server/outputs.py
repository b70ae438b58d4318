"""The result shapes the tools declare as their MCP ``outputSchema``.

Each model names the fields the AWS Labs Cloud Control MCP server documents for that tool and
ccstate's own; where both servers name the same thing differently (request status, schema) both
are there. Extra fields are allowed: a client reads what it knows. A field is required only when
every successful answer carries it, since the SDK checks each result against its model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Output(BaseModel):
    model_config = ConfigDict(extra="allow")


class EnvironmentOutput(_Output):
    environment_token: str = Field(description="pass to get_aws_session_info()")
    environment_variables: dict[str, Any]
    properly_configured: bool
    readonly_mode: bool
    security_scanning: str | None = Field(None, description="enabled or disabled")
    default_tags: str | None = None
    aws_region: str | None = None
    aws_profile: str | None = None
    aws_auth_type: str | None = None


class SessionOutput(_Output):
    credentials_token: str = Field(description="starts the token chain of every change")
    account_id: str
    region: str | None = None
    arn: str | None = None
    user_id: str | None = None
    profile: str | None = None
    credential_source: str | None = None
    readonly_mode: bool = False
    readonly_message: str | None = None
    credentials_valid: bool | None = None
    aws_auth_type: str | None = None


class AccountOutput(_Output):
    account_id: str
    region: str | None = None
    profile: str | None = None
    arn: str | None = None
    readonly_mode: bool = False
    readonly_message: str | None = None
    using_env_vars: bool = False


class SchemaOutput(_Output):
    """The provider schema at the top level (AWS Labs) and under ``schema`` (ccstate)."""

    resource_type: str
    typeName: str
    properties: dict[str, Any] = Field(default_factory=dict)
    schema_: dict[str, Any] = Field(alias="schema")


class ListOutput(_Output):
    resource_type: str
    resources: list[str] = Field(description="identifiers")
    next_token: str | None = Field(None, description="more beyond the bound: pass it back")
    security_analysis: dict[str, Any] | None = None


class ResourceOutput(_Output):
    resource_type: str
    identifier: str
    properties: dict[str, Any]
    in_state: bool | None = None
    region: str | None = None
    security_analysis: dict[str, Any] | None = None


class GeneratedOutput(_Output):
    generated_code_token: str
    operation: str
    resource_type: str
    properties: dict[str, Any] = Field(default_factory=dict)
    properties_for_explanation: dict[str, Any] = Field(default_factory=dict)
    cloudformation_template: dict[str, Any] = Field(default_factory=dict)
    identifier: str | None = None
    region: str | None = None


class ExplainOutput(_Output):
    explanation: str
    explained_token: str | None = Field(None, description="for create/update/delete")
    operation_type: str | None = None
    ready_for_execution: bool | None = None


class ScanOutput(_Output):
    scan_status: str = Field(description="PASSED, FAILED, SKIPPED or UNAVAILABLE")
    raw_failed_checks: list[dict[str, Any]] = Field(default_factory=list)
    raw_passed_checks: list[dict[str, Any]] = Field(default_factory=list)
    raw_summary: dict[str, Any] = Field(default_factory=dict)
    security_scan_token: str | None = Field(
        None, description="PASSED/SKIPPED: for the change; FAILED: for approve_security_findings"
    )
    resource_type: str | None = None
    timestamp: str | None = None
    message: str | None = None


class ApprovalOutput(_Output):
    decision: str
    security_scan_token: str | None = Field(None, description="only when the person proceeds")
    accepted_checks: list[str] = Field(default_factory=list)
    message: str | None = None


class ChangeOutput(_Output):
    """create/update/delete_resource: AWS Labs' progress fields plus ccstate's record."""

    status: str
    is_complete: bool
    resource_type: str
    request_token: str | None = None
    identifier: str | None = None
    status_message: str | None = None
    security_warning: str | None = None
    resource_info: dict[str, Any] | None = None
    state_serial: int | None = None


class RequestStatusOutput(_Output):
    """Both shapes: AWS Labs' status/is_complete/resource_type and ccstate's
    operation_status/is_terminal/type_name."""

    request_token: str
    status: str
    is_complete: bool
    resource_type: str
    operation_status: str
    is_terminal: bool
    type_name: str
    operation: str | None = None
    identifier: str | None = None
    status_message: str | None = None
    error_code: str | None = None
    event_time: str | None = None
    retry_after: str | None = None


class TemplateOutput(_Output):
    status: str = Field(description="INITIATED, IN_PROGRESS, COMPLETED or FAILED")
    template_id: str
    template: str | None = None
    resources: list[dict[str, Any]] | None = None
    message: str | None = None


class AnyOutput(_Output):
    """Tools with their own documented results (state, drift): a JSON object."""
