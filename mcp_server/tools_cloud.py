"""The Cloud Control tools, named as in the AWS Labs Cloud Control MCP server.

Each tool only translates parameters to a ``service`` call; ``tool_result`` turns the answer
into structured JSON and a ``CcstateError`` into a structured tool error.
"""

from __future__ import annotations

from typing import Annotated, Any

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
from ccstate.service.changes.template import TemplateRequest
from ccstate.service.changes.validation import validate_type_name
from ccstate.service.changes.workflow import LIST_LIMIT
from ccstate.service.errors import CcstateError
from ccstate.service.names import validate_identifier
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

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

    @server.tool(annotations=ISSUES_TOKEN)
    @tool_result(output=EnvironmentOutput)
    async def check_environment_variables() -> dict[str, Any]:
        """Check the AWS environment of this server. ALWAYS call first for any AWS task.

        Shows the AWS settings, whether security scanning and default tags are on, and whether
        the server is read-only; returns the environment_token for get_aws_session_info().
        """
        return await workflow.environment()

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
        return await workflow.session_info(environment_token)

    @server.tool(annotations=READ_ONLY)
    @tool_result(output=AccountOutput)
    async def get_aws_account_info() -> dict[str, Any]:
        """Which AWS account, identity, profile and region this server uses, in one call.

        For questions such as "which account am I in?". It starts no token chain: for a change,
        call check_environment_variables() and get_aws_session_info().
        """
        return await workflow.account()

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
                results.append({"identifier": identifier, "analysis": _brief(analysis)})
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
            result["security_analysis"] = _brief(
                await workflow.analyze(resource_type, found.properties)
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
        return await workflow.generate(
            credentials_token=credentials_token,
            resource_type=resource_type,
            operation=operation,
            properties=properties,
            identifier=identifier,
            patch_document=patch_document,
            region=region,
        )

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
        return await workflow.explain(
            generated_code_token=generated_code_token,
            content=content,
            context=context,
            user_intent=user_intent,
            operation=operation,
        )

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
        return await workflow.scan(explained_token=explained_token)

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
        return await workflow.approve(
            security_scan_token=security_scan_token,
            decision=decision,
            accepted_checks=accepted_checks,
            reason=reason,
        )

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
        return await operations.create(
            resource_type=resource_type,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )

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
        return await operations.update(
            resource_type=resource_type,
            identifier=identifier,
            patch_document=patch_document,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            skip_security_check=skip_security_check,
            region=region,
        )

    @server.tool(annotations=MUTATING)
    @tool_result(output=ChangeOutput)
    async def delete_resource(
        resource_type: ResourceType,
        identifier: Identifier,
        credentials_token: CredentialsToken,
        explained_token: ExplainedToken,
        confirmed: Annotated[bool, Field(description="the user confirmed the delete")] = False,
        region: Region = None,
    ) -> dict[str, Any]:
        """Delete the explained resource (and only it), wait, and record it."""
        return await operations.delete(
            resource_type=resource_type,
            identifier=identifier,
            credentials_token=credentials_token,
            explained_token=explained_token,
            confirmed=confirmed,
            region=region,
        )

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


def _brief(analysis: dict[str, Any]) -> dict[str, Any]:
    """A scan report without the bulky detail (kept in checkov_results)."""
    return {k: v for k, v in analysis.items() if k != "details"}
