"""The Cloud Control tools, named as in the AWS Labs Cloud Control MCP server.

Each tool only translates parameters to a ``service`` call; ``tool_result`` turns the answer
into structured JSON and a ``CcstateError`` into a structured tool error.
"""

from __future__ import annotations

from typing import Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.changes.validation import validate_type_name
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
    str | None, Field(description="AWS region; if given, it must be the server's region")
]
CredentialsToken = Annotated[
    str, Field(description="credentials_token from get_aws_session_info()")
]
ExplainedToken = Annotated[str, Field(description="explained_token from explain()")]
ScanToken = Annotated[
    str, Field(description="security_scan_token from run_checkov() (not needed for delete)")
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=True)
MUTATING = ToolAnnotations(destructive_hint=True, open_world_hint=True)


def register(server: MCPServer, runtime: Runtime) -> None:
    workflow = runtime.workflow
    operations = runtime.operations

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def check_environment_variables() -> dict[str, Any]:
        """Check the AWS environment of this server. ALWAYS call first for any AWS task.

        Shows the AWS settings, whether security scanning and default tags are on, and whether
        the server is read-only.
        """
        return workflow.environment()

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_aws_session_info() -> dict[str, Any]:
        """The AWS account, identity and region this server acts as, and a credentials_token.

        ALWAYS show the account, identity and region to the user. The credentials_token starts
        the token chain that every create, update and delete needs.
        """
        return await workflow.session_info()

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_resource_schema_information(
        resource_type: ResourceType, region: Region = None
    ) -> dict[str, Any]:
        """The CloudFormation resource provider schema of a type: properties, which are
        required, read-only, create-only and write-only, and the primary identifier."""
        validate_type_name(resource_type)
        schema = await workflow.schemas.get_schema(resource_type)
        return {"resource_type": resource_type, "schema": schema.raw}

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def list_resources(
        resource_type: ResourceType,
        region: Region = None,
        next_token: Annotated[str | None, Field(description="from a previous page")] = None,
        max_results: Annotated[int, Field(ge=1, le=100)] = 100,
    ) -> dict[str, Any]:
        """List the identifiers of the AWS resources of one type."""
        await workflow.check_region(region)
        validate_type_name(resource_type)
        page = await workflow.cloud.list_resources(
            resource_type, next_token=next_token, max_results=max_results
        )
        return {
            "resource_type": resource_type,
            "resources": [r.identifier for r in page.resources],
            "next_token": page.next_token,
        }

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_resource(
        resource_type: ResourceType, identifier: Identifier, region: Region = None
    ) -> dict[str, Any]:
        """Read one resource's current properties from AWS (secret values are fingerprinted)."""
        await workflow.check_region(region)
        from ccstate.service.names import validate_identifier

        validate_type_name(resource_type)
        validate_identifier(identifier)
        schema = await workflow.schemas.get_schema(resource_type)
        found = await workflow.cloud.get_resource(resource_type, identifier)
        managed = await runtime.store.get_resource(identifier)
        return {
            "resource_type": resource_type,
            "identifier": found.identifier,
            "properties": workflow.redact(schema, found.properties),
            "in_state": managed is not None,
        }

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def generate_infrastructure_code(
        resource_type: ResourceType,
        credentials_token: CredentialsToken,
        operation: Annotated[
            str, Field(description="create, update or delete (default: from the arguments)")
        ] = "",
        properties: Annotated[
            dict[str, Any] | None, Field(description="create: the resource's properties")
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
        await workflow.check_region(region)
        return await workflow.generate(
            credentials_token=credentials_token,
            resource_type=resource_type,
            operation=operation,
            properties=properties,
            identifier=identifier,
            patch_document=patch_document,
            region=region,
        )

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def explain(
        generated_code_token: Annotated[
            str, Field(description="from generate_infrastructure_code, for a change")
        ] = "",
        content: Annotated[Any, Field(description="any data to explain (no token)")] = None,
        context: Annotated[str, Field(description="what the data represents")] = "",
        operation: Annotated[str, Field(description="unused; kept for compatibility")] = "",
        format: Annotated[str, Field(description="unused; kept for compatibility")] = "",
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
        )

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def run_checkov(
        explained_token: ExplainedToken,
        framework: Annotated[str, Field(description="only cloudformation")] = "cloudformation",
    ) -> dict[str, Any]:
        """Scan the explained change with checkov. PASSED (or SKIPPED when the operator
        disabled scanning) returns the security_scan_token; FAILED authorizes nothing."""
        return await workflow.scan(explained_token=explained_token)

    @server.tool(annotations=MUTATING)
    @tool_result
    async def create_resource(
        resource_type: ResourceType,
        credentials_token: CredentialsToken,
        explained_token: ExplainedToken,
        security_scan_token: ScanToken = "",
        region: Region = None,
    ) -> dict[str, Any]:
        """Create the resource exactly as explained (the properties travel with the tokens),
        wait for AWS to finish, and record it in the state."""
        await workflow.check_region(region)
        return await operations.create(
            resource_type=resource_type,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            region=region,
        )

    @server.tool(annotations=MUTATING)
    @tool_result
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
        region: Region = None,
    ) -> dict[str, Any]:
        """Apply exactly the explained patch to the resource, wait, and record it."""
        await workflow.check_region(region)
        return await operations.update(
            resource_type=resource_type,
            identifier=identifier,
            patch_document=patch_document,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            region=region,
        )

    @server.tool(annotations=MUTATING)
    @tool_result
    async def delete_resource(
        resource_type: ResourceType,
        identifier: Identifier,
        credentials_token: CredentialsToken,
        explained_token: ExplainedToken,
        confirmed: Annotated[bool, Field(description="the user confirmed the delete")] = False,
        region: Region = None,
    ) -> dict[str, Any]:
        """Delete the explained resource (and only it), wait, and record it."""
        await workflow.check_region(region)
        return await operations.delete(
            resource_type=resource_type,
            identifier=identifier,
            credentials_token=credentials_token,
            explained_token=explained_token,
            confirmed=confirmed,
            region=region,
        )

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_resource_request_status(
        request_token: Annotated[str, Field(description="request_token of a change")],
        region: Region = None,
    ) -> dict[str, Any]:
        """The status of a Cloud Control request (for a change that timed out)."""
        await workflow.check_region(region)
        return await operations.request_status(request_token)
