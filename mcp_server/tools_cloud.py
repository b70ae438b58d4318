"""The Cloud Control tools, named as in the AWS Labs Cloud Control MCP server.

Each tool only translates parameters to a ``service`` call, made for the request's principal
(``runtime.identify()``), and turns the typed answer into the tool's JSON, with the next step
in MCP words (the tools to call). ``tool_result`` turns a ``CcstateError`` into a structured
tool error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from ccstate.mcp_server.outputs import (
    AccountOutput,
    ApprovalOutput,
    ChangeOutput,
    EnvironmentOutput,
    ExplainOutput,
    GeneratedOutput,
    ListOutput,
    RequestStatusOutput,
    ResourceOutput,
    ScanOutput,
    SchemaOutput,
    SessionOutput,
    TemplateOutput,
)
from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.errors import CcstateError
from ccstate.service.names import validate_identifier
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

if TYPE_CHECKING:  # the service code is imported by the runtime, after tools/list
    from ccstate.service.changes.executor import ChangeOutcome
    from ccstate.service.changes.scanning import ScanResult
    from ccstate.service.changes.workflow import (
        AccountInfo,
        Approval,
        EnvironmentReport,
        Explanation,
        GeneratedChange,
        ScanOutcome,
        SessionInfo,
    )

LIST_LIMIT = 1000  # service.changes.workflow.LIST_LIMIT (a test compares), in the tool's schema

ResourceType = Annotated[
    str, Field(description='The AWS resource type, e.g. "AWS::S3::Bucket", "AWS::SQS::Queue"')
]
Identifier = Annotated[
    str, Field(description="The resource's primary identifier, e.g. the bucket name")
]
Region = Annotated[
    str | None,
    Field(description="The AWS region to act in (default: the server's region)"),
]
CredentialsToken = Annotated[
    str, Field(description="credentials_token from get_aws_session_info()")
]
ExplainedToken = Annotated[str, Field(description="explained_token from explain()")]
ScanToken = Annotated[
    str,
    Field(
        description="security_scan_token from run_checkov() when it PASSED, or from "
        "approve_security_findings() (not needed for delete)"
    ),
]
SkipScan = Annotated[
    bool,
    Field(
        description="Skip the security scan: accepted only when the operator set "
        "SECURITY_SCANNING=disabled; recorded as 'not scanned: skipped by caller'"
    ),
]
AnalyzeSecurity = Annotated[
    bool, Field(description="Also scan the resource as it is now with checkov (a report only)")
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=True)
# Writes an execution token record in the backend; changes nothing in AWS.
ISSUES_TOKEN = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)
MUTATING = ToolAnnotations(destructive_hint=True, open_world_hint=True)


def register(server: MCPServer, runtime: Runtime) -> None:
    workflow = runtime.workflow
    operations = runtime.operations
    templates = runtime.templates
    assert templates is not None, "ccstate.app wires the template use case"

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=EnvironmentOutput)
    async def check_environment_variables() -> dict[str, Any]:
        """Check the AWS environment of this server. ALWAYS call first for any AWS task.

        Shows the AWS settings, whether security scanning and default tags are on, and whether
        the server is read-only; returns the environment_token for get_aws_session_info().
        """
        return environment_result(await workflow.check_environment(await runtime.identify()))

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=SessionOutput)
    async def get_aws_session_info(
        environment_token: Annotated[
            str, Field(description="environment_token from check_environment_variables()")
        ] = "",
    ) -> dict[str, Any]:
        """The AWS account, identity and region this server acts as, and a credentials_token.

        ALWAYS show the account, identity and region to the user. The credentials_token starts
        the token chain that every create, update and delete needs.
        """
        info = await workflow.session_info(
            await runtime.identify(), environment_token=environment_token
        )
        return session_result(info)

    @server.tool(annotations=READ_ONLY)
    @tool_result(output=AccountOutput)
    async def get_aws_account_info() -> dict[str, Any]:
        """Which AWS account, identity, profile and region this server uses, in one call.

        For questions such as "which account am I in?". It starts no token chain: for a change,
        call check_environment_variables() and get_aws_session_info().
        """
        return account_result(await workflow.account(await runtime.identify()))

    @server.tool(annotations=READ_ONLY)
    @tool_result(output=SchemaOutput)
    async def get_resource_schema_information(
        resource_type: ResourceType, region: Region = None
    ) -> dict[str, Any]:
        """The CloudFormation resource provider schema of a type: properties, which are
        required, read-only, create-only and write-only, and the primary identifier. The
        schema's keys are at the top level and, the same, under `schema`."""
        validate_type_name(resource_type)
        await workflow.region_for(region)
        schema = await workflow.schemas.get_schema(resource_type)
        return {**schema.raw, "resource_type": resource_type, "schema": schema.raw}

    @server.tool(annotations=READ_ONLY)
    @tool_result(output=ListOutput)
    async def list_resources(
        resource_type: ResourceType,
        region: Region = None,
        analyze_security: Annotated[
            bool, Field(description="Also scan the first resources with checkov (a report)")
        ] = False,
        max_resources_to_analyze: Annotated[
            int, Field(ge=1, le=50, description="How many resources analyze_security scans")
        ] = 5,
        next_token: Annotated[
            str | None, Field(description="Continue a list cut at max_results")
        ] = None,
        max_results: Annotated[
            int, Field(ge=1, le=10_000, description="At most this many identifiers per call")
        ] = LIST_LIMIT,
    ) -> dict[str, Any]:
        """List the identifiers of every AWS resource of one type (all pages; a next_token
        is returned only beyond max_results)."""
        found, token = await workflow.list_identifiers(
            resource_type, region=region, next_token=next_token, limit=max_results
        )
        result: dict[str, Any] = {
            "resource_type": resource_type,
            "resources": found,
            "next_token": token,
        }
        if analyze_security and found:
            result["security_analysis"] = await _analyze_many(
                resource_type, found[:max_resources_to_analyze], region
            )
        return result

    async def _analyze_many(
        resource_type: str, identifiers: list[str], region: str | None
    ) -> dict[str, Any]:
        cloud = await workflow.cloud_for(region)
        results: list[dict[str, Any]] = []
        for identifier in identifiers:
            try:
                found = await cloud.get_resource(resource_type, identifier)
                analysis = await workflow.analyze(resource_type, found.properties)
                results.append(
                    {"identifier": identifier, "analysis": analysis_result(analysis, resource_type)}
                )
            except CcstateError as exc:
                results.append({"identifier": identifier, "error": exc.message})
        return {"analyzed_resources": len(results), "results": results}

    @server.tool(annotations=READ_ONLY)
    @tool_result(output=ResourceOutput)
    async def get_resource(
        resource_type: ResourceType,
        identifier: Identifier,
        region: Region = None,
        analyze_security: AnalyzeSecurity = False,
    ) -> dict[str, Any]:
        """Read one resource's current properties from AWS (secret values are fingerprinted)."""
        validate_type_name(resource_type)
        validate_identifier(identifier)
        where = await workflow.region_for(region)
        schema = await workflow.schemas.get_schema(resource_type)
        found = await (await workflow.cloud_for(where)).get_resource(resource_type, identifier)
        managed = await runtime.store.get_resource(identifier)
        result: dict[str, Any] = {
            "resource_type": resource_type,
            "identifier": found.identifier,
            "region": where,
            "properties": workflow.redact(schema, found.properties),
            "in_state": managed is not None,
        }
        if analyze_security:
            result["security_analysis"] = analysis_result(
                await workflow.analyze(resource_type, found.properties), resource_type
            )
        return result

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=GeneratedOutput)
    async def generate_infrastructure_code(
        resource_type: ResourceType,
        credentials_token: CredentialsToken,
        operation: Annotated[
            str, Field(description="create, update or delete (default: from the arguments)")
        ] = "",
        properties: Annotated[
            dict[str, Any] | None,
            Field(
                description="create: the resource's properties; update (with identifier): "
                "the properties to set"
            ),
        ] = None,
        identifier: Annotated[str, Field(description="update/delete: the identifier")] = "",
        patch_document: Annotated[
            list[dict[str, Any]] | None,
            Field(description="update: RFC 6902 JSON Patch operations"),
        ] = None,
        region: Region = None,
    ) -> dict[str, Any]:
        """Prepare a create, update or delete: validates it against the resource schema, adds
        the default tags, and returns the template and a generated_code_token for explain()."""
        generated = await workflow.generate(
            await runtime.identify(),
            credentials_token=credentials_token,
            resource_type=resource_type,
            operation=operation,
            properties=properties,
            identifier=identifier,
            patch_document=patch_document,
            region=region,
        )
        return generated_result(generated)

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=ExplainOutput)
    async def explain(
        generated_code_token: Annotated[
            str, Field(description="from generate_infrastructure_code, for a change")
        ] = "",
        content: Annotated[
            Any,
            Field(
                description="any data to explain; with operation='delete', get_resource's "
                "result: the explained_token then authorizes deleting that resource"
            ),
        ] = None,
        context: Annotated[str, Field(description="what the data represents")] = "",
        operation: Annotated[
            str, Field(description="create, update, delete or analyze (the default)")
        ] = "",
        format: Annotated[str, Field(description="detailed (the only one)")] = "detailed",
        user_intent: Annotated[
            str, Field(description="why the user wants this change, in their words")
        ] = "",
    ) -> dict[str, Any]:
        """Explain a prepared change (or any data) in plain words. For a change it returns
        the explained_token. You MUST show the whole explanation to the user."""
        explained = await workflow.explain(
            await runtime.identify(),
            generated_code_token=generated_code_token,
            content=content,
            context=context,
            user_intent=user_intent,
            operation=operation,
        )
        return explanation_result(explained)

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=ScanOutput)
    async def run_checkov(
        explained_token: ExplainedToken,
        framework: Annotated[str, Field(description="only cloudformation")] = "cloudformation",
    ) -> dict[str, Any]:
        """Scan the explained change with checkov. PASSED (or SKIPPED when the operator
        disabled scanning) returns the security_scan_token for the change.

        If scan_status is FAILED: show the findings (explain them), ask the user "fix",
        "proceed anyway" or "cancel", WAIT for the answer, then call
        approve_security_findings() with it. The FAILED scan's token authorizes nothing alone.
        """
        scanned = await workflow.scan(await runtime.identify(), explained_token=explained_token)
        return scan_result(scanned)

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=ApprovalOutput)
    async def approve_security_findings(
        security_scan_token: Annotated[
            str, Field(description="security_scan_token of a FAILED run_checkov()")
        ],
        decision: Annotated[
            str, Field(description="the user's answer: 'proceed anyway', 'fix' or 'cancel'")
        ],
        accepted_checks: Annotated[
            list[str] | None,
            Field(description="to proceed: the ids of every failed check the user accepts"),
        ] = None,
        reason: Annotated[str, Field(description="to proceed: the user's reason")] = "",
    ) -> dict[str, Any]:
        """Record a person's decision on a FAILED scan. Only after the user answered.

        'proceed anyway' with every failed check id and the user's reason returns a
        security_scan_token for exactly the scanned change; the accepted checks and the
        reason are recorded with it. Critical findings cannot be accepted unless the operator
        allows it. 'fix' or 'cancel' ends the chain.
        """
        approval = await workflow.approve(
            await runtime.identify(),
            security_scan_token=security_scan_token,
            decision=decision,
            accepted_checks=accepted_checks,
            reason=reason,
        )
        return approval_result(approval)

    @server.tool(annotations=MUTATING)
    @tool_result(output=ChangeOutput)
    async def create_resource(
        resource_type: ResourceType,
        credentials_token: CredentialsToken,
        explained_token: ExplainedToken,
        security_scan_token: ScanToken = "",
        skip_security_check: SkipScan = False,
        region: Region = None,
    ) -> dict[str, Any]:
        """Create the resource exactly as explained (the properties travel with the tokens),
        wait for AWS to finish, and record it in the state. Show any security_warning."""
        done = await operations.create(
            await runtime.identify(),
            resource_type=resource_type,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )
        return change_result(done)

    @server.tool(annotations=MUTATING)
    @tool_result(output=ChangeOutput)
    async def update_resource(
        resource_type: ResourceType,
        identifier: Identifier,
        credentials_token: CredentialsToken,
        explained_token: ExplainedToken,
        patch_document: Annotated[
            list[dict[str, Any]] | None,
            Field(description="the explained patch (optional: it travels with the tokens)"),
        ] = None,
        security_scan_token: ScanToken = "",
        skip_security_check: SkipScan = False,
        region: Region = None,
    ) -> dict[str, Any]:
        """Apply exactly the explained patch to the resource, wait, and record it."""
        done = await operations.update(
            await runtime.identify(),
            resource_type=resource_type,
            identifier=identifier,
            patch_document=patch_document,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )
        return change_result(done)

    @server.tool(annotations=MUTATING)
    @tool_result(output=ChangeOutput)
    async def delete_resource(
        resource_type: ResourceType,
        identifier: Identifier,
        credentials_token: CredentialsToken,
        explained_token: ExplainedToken,
        confirmed: Annotated[bool, Field(description="the user confirmed the delete")] = False,
        region: Region = None,
        force: Annotated[bool, Field(description="delete even if others depend on it")] = False,
    ) -> dict[str, Any]:
        """Delete the explained resource (and only it), wait, and record it. Refused while
        other managed resources depend on it (named in the error), unless force=True."""
        done = await operations.delete(
            await runtime.identify(),
            resource_type=resource_type,
            identifier=identifier,
            credentials_token=credentials_token,
            explained_token=explained_token,
            confirmed=confirmed,
            region=region,
            force=force,
        )
        return change_result(done)

    @server.tool(annotations=READ_ONLY)
    @tool_result(output=RequestStatusOutput)
    async def get_resource_request_status(
        request_token: Annotated[str, Field(description="request_token of a change")],
        region: Region = None,
    ) -> dict[str, Any]:
        """The status of a Cloud Control request: poll until is_complete."""
        return await operations.request_status(request_token, region)

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=TemplateOutput)
    async def create_template(
        template_name: Annotated[str | None, Field(description="Name for a new template")] = None,
        resources: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description="The resources, each {'ResourceType': ..., 'ResourceIdentifier': "
                "{<primary identifier property>: value}} (up to 500)"
            ),
        ] = None,
        output_format: Annotated[str, Field(description="YAML or JSON")] = "YAML",
        deletion_policy: Annotated[str, Field(description="RETAIN, DELETE or SNAPSHOT")] = "RETAIN",
        update_replace_policy: Annotated[
            str, Field(description="RETAIN, DELETE or SNAPSHOT")
        ] = "RETAIN",
        template_id: Annotated[
            str | None, Field(description="The template_id of an earlier call: status/template")
        ] = None,
        region: Region = None,
    ) -> dict[str, Any]:
        """A CloudFormation template of existing resources: through CloudFormation's IaC
        generator when it is available, else built by ccstate from live reads and the
        recorded state (offline too). Poll with template_id until status is COMPLETED.

        Values ccstate keeps only as fingerprints (secrets) become NoEcho parameters. For
        other formats (Terraform, CDK), convert the CloudFormation template yourself; for
        Terraform write import blocks, not import commands.
        """
        from ccstate.service.changes.template import TemplateRequest

        return await templates.create(
            TemplateRequest(
                template_name=template_name,
                resources=resources,
                output_format=output_format,
                deletion_policy=deletion_policy,
                update_replace_policy=update_replace_policy,
                template_id=template_id,
                region=await workflow.region_for(region) if region else None,
            )
        )


# --------------------------------------------------------------------------- typed -> tool JSON


def validate_type_name(resource_type: str) -> str:
    from ccstate.service.changes.validation import validate_type_name as validate

    return validate(resource_type)


def scanning_env() -> str:
    from ccstate.service.changes.workflow import SCANNING_ENV

    return SCANNING_ENV


# Each answer carries the AWS Labs server's field names and ccstate's own.


def environment_result(env: EnvironmentReport) -> dict[str, Any]:
    result: dict[str, Any] = {
        "environment_variables": env.variables,
        "properly_configured": env.properly_configured,
        "credential_source": env.credential_source,
        "aws_auth_type": "env" if env.using_env_vars else "profile",
        "aws_profile": env.profile,
        "aws_region": env.region,
        "security_scanning": env.security_scanning,
        "default_tags": env.default_tags,
        "readonly_mode": env.readonly_mode,
        "next_step": "Call get_aws_session_info(environment_token) to confirm the account and "
        "get a credentials_token.",
    }
    if env.token is not None:
        result["environment_token"] = env.token.token
    return result


def account_result(info: AccountInfo) -> dict[str, Any]:
    identity = info.identity
    return {
        "account_id": identity.account,
        "arn": identity.arn,
        "user_id": identity.user_id,
        "region": info.region,
        "profile": info.profile,
        "credential_source": identity.credential_source,
        "aws_auth_type": "env" if info.using_env_vars else "profile",
        "using_env_vars": info.using_env_vars,
        "user": info.person,
        "readonly_mode": info.readonly_mode,
        "readonly_message": READONLY_MESSAGE if info.readonly_mode else "",
        "security_scanning": "enabled" if info.scanning_enabled else "disabled",
    }


def session_result(info: SessionInfo) -> dict[str, Any]:
    identity = info.identity
    return {
        "account_id": identity.account,
        "arn": identity.arn,
        "user_id": identity.user_id,
        "region": info.region,
        "profile": info.profile,
        "credential_source": identity.credential_source,
        "aws_auth_type": "env" if info.using_env_vars else "profile",
        "user": info.person,
        "readonly_mode": info.readonly_mode,
        "readonly_message": READONLY_MESSAGE if info.readonly_mode else "",
        "credentials_valid": True,
        "credentials_token": info.credentials.token,
        "token_expires_at": info.credentials.expires_at.isoformat(),
        "message": "Show the user this account, identity and region before any change.",
    }


def generated_result(generated: GeneratedChange) -> dict[str, Any]:
    result: dict[str, Any] = {
        "operation": generated.operation,
        "resource_type": generated.resource_type,
        "identifier": generated.identifier,
        "region": generated.region,
        "generated_code_token": generated.token.token,
        "token_expires_at": generated.token.expires_at.isoformat(),
        "cloudformation_template": generated.template,
        "properties": generated.shown_properties,
        "properties_for_explanation": generated.shown_properties,
        "supports_tagging": generated.supports_tagging,
        "next_step": "Call explain(generated_code_token=..., user_intent=...) and show the "
        "explanation to the user.",
    }
    if generated.operation == "update":
        result["patch_document"] = generated.patch_document
        result["properties_before"] = generated.properties_before
    return result


def explanation_result(explained: Explanation) -> dict[str, Any]:
    if explained.token is None:
        return {
            "explanation": explained.text,
            "operation_type": explained.operation or "analyze",
            "ready_for_execution": False,
        }
    operation = explained.operation
    scan_step = (
        "run_checkov(explained_token)"
        if explained.scanning_enabled
        else "create/update with skip_security_check=True (or run_checkov(explained_token), "
        f"which records that {scanning_env()} is disabled)"
    )
    result: dict[str, Any] = {
        "explanation": explained.text,
        "explained_token": explained.token.token,
        "token_expires_at": explained.token.expires_at.isoformat(),
        "operation": operation,
        "operation_type": operation,
        "ready_for_execution": True,
        "properties_being_explained": explained.explained,
        "resource_type": explained.resource_type,
        "identifier": explained.identifier,
        "region": explained.region,
        "security_scanning": "enabled" if explained.scanning_enabled else "disabled",
        "next_step": (
            f"Show the explanation to the user. When they approve, call {scan_step}, then "
            f"{operation}_resource with its security_scan_token."
            if operation != "delete"
            else "Show the explanation to the user. When they confirm, call "
            "delete_resource(resource_type, identifier, credentials_token, explained_token, "
            "confirmed=True)."
        ),
    }
    return result


def scan_report(result: ScanResult, resource_type: str, timestamp: str) -> dict[str, Any]:
    """A scan as run_checkov answers it: the AWS Labs fields and ccstate's."""
    return {
        "scan_status": result.status,
        "raw_failed_checks": [
            {
                "check_id": c.get("id"),
                "check_name": c.get("name"),
                "severity": c.get("severity"),
                "resource_path": c.get("path"),
                "guideline": c.get("guideline"),
            }
            for c in result.failed_checks
        ],
        "raw_passed_checks": [],  # ccstate keeps the count: raw_summary.passed
        "raw_summary": {"passed": result.passed, "failed": result.failed},
        "resource_type": resource_type,
        "timestamp": timestamp,
        "summary": result.summary(),
        "checkov_results": result.checkov_results(),
        "message": result.message or result.summary(),
    }


def analysis_result(result: ScanResult, resource_type: str) -> dict[str, Any]:
    return scan_report(result, resource_type, "")


def scan_result(scanned: ScanOutcome) -> dict[str, Any]:
    result = scanned.result
    response = scan_report(result, scanned.resource_type, scanned.timestamp)
    response["details"] = result.to_dict()
    if scanned.token is not None:
        response["security_scan_token"] = scanned.token.token
        response["token_expires_at"] = scanned.token.expires_at.isoformat()
        response["next_step"] = (
            f"Show the scan result to the user, then call {scanned.operation}_resource "
            "with credentials_token, explained_token and this security_scan_token."
        )
    elif scanned.findings_token is not None:
        response["security_scan_token"] = scanned.findings_token.token
        response["token_expires_at"] = scanned.findings_token.expires_at.isoformat()
        response["message"] = (
            "Security issues found. This token authorizes nothing by itself: ask the user "
            "whether to fix the issues, proceed anyway, or cancel."
        )
        response["next_step"] = (
            "Show the failed checks to the user and ask: fix, proceed anyway, or cancel. WAIT "
            "for their answer. To proceed, call approve_security_findings(security_scan_token, "
            "decision='proceed anyway', accepted_checks=[the failed check ids], reason=<their "
            "reason>); to fix, start again with generate_infrastructure_code."
        )
    else:
        response["next_step"] = result.message or (
            f"The scan did not run: install checkov with `ccstate scanner install`, "
            f"or start the server with {scanning_env()}=disabled."
        )
    return response


def approval_result(approval: Approval) -> dict[str, Any]:
    if approval.token is None or approval.accepted is None:
        return {
            "decision": approval.decision,
            "accepted_checks": [],
            "message": "Nothing will be changed; this scan's token is used up.",
            "next_step": "To fix the findings, change the properties and start again with "
            "generate_infrastructure_code.",
        }
    return {
        "decision": approval.decision,
        "accepted_checks": approval.accepted.failed_ids,
        "security_scan_token": approval.token.token,
        "token_expires_at": approval.token.expires_at.isoformat(),
        "checkov_results": approval.accepted.checkov_results(),
        "message": "The user accepted these findings; the acceptance and reason will be "
        "recorded with the change.",
        "next_step": f"Call {approval.operation}_resource with credentials_token, "
        "explained_token and this security_scan_token.",
    }


def change_result(done: ChangeOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "status": "SUCCESS",
        "is_complete": True,
        "operation": done.operation,
        "resource_type": done.resource_type,
        "identifier": done.identifier,
        "region": done.region,
        "request_token": done.request_token,
        "properties": done.properties,
        "resource_info": done.properties,
        "security_scan": done.security_scan,
        "state_serial": done.state_serial,
        "execution_token": done.execution_token,
        "lineage_entry": done.lineage_entry,
        "message": f"{done.operation} of {done.resource_type} '{done.identifier}' "
        f"succeeded and is recorded in the state at serial {done.state_serial}.",
    }
    if not done.scanned:
        result["security_warning"] = (
            "SECURITY SCANNING IS DISABLED (SECURITY_SCANNING=disabled): this change was made "
            "without automated security validation; the state records it as not scanned."
        )
    return result


READONLY_MESSAGE = (
    "This server is read-only: it lists and reads resources but creates, updates and deletes "
    "nothing."
)
