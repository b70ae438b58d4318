"""The Cloud Control tools, named as in the AWS Labs Cloud Control MCP server.

Each tool only translates parameters to a ``service`` call, made for the request's principal
(``runtime.identify()``), and turns the typed answer into the tool's JSON, with the next step
in MCP words (the tools to call). ``tool_result`` turns a ``CcstateError`` into a structured
tool error.
"""

from __future__ import annotations

from typing import Annotated, Any

from ccstate.mcp_server.results import tool_result
from ccstate.mcp_server.runtime import Runtime
from ccstate.service.changes.executor import ChangeOutcome
from ccstate.service.changes.validation import validate_type_name
from ccstate.service.changes.workflow import (
    SCANNING_ENV,
    EnvironmentReport,
    Explanation,
    GeneratedChange,
    ScanOutcome,
    SessionInfo,
)
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
        return environment_result(workflow.environment())

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_aws_session_info() -> dict[str, Any]:
        """The AWS account, identity and region this server acts as, and a credentials_token.

        ALWAYS show the account, identity and region to the user. The credentials_token starts
        the token chain that every create, update and delete needs.
        """
        return session_result(await workflow.session_info(await runtime.identify()))

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
        explained = await workflow.explain(
            await runtime.identify(),
            generated_code_token=generated_code_token,
            content=content,
            context=context,
            user_intent=user_intent,
        )
        return explanation_result(explained)

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def run_checkov(
        explained_token: ExplainedToken,
        framework: Annotated[str, Field(description="only cloudformation")] = "cloudformation",
    ) -> dict[str, Any]:
        """Scan the explained change with checkov. PASSED (or SKIPPED when the operator
        disabled scanning) returns the security_scan_token; FAILED authorizes nothing."""
        scanned = await workflow.scan(await runtime.identify(), explained_token=explained_token)
        return scan_result(scanned)

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
        done = await operations.create(
            await runtime.identify(),
            resource_type=resource_type,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            region=region,
        )
        return change_result(done)

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
        done = await operations.update(
            await runtime.identify(),
            resource_type=resource_type,
            identifier=identifier,
            patch_document=patch_document,
            credentials_token=credentials_token,
            explained_token=explained_token,
            security_scan_token=security_scan_token,
            region=region,
        )
        return change_result(done)

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
        done = await operations.delete(
            await runtime.identify(),
            resource_type=resource_type,
            identifier=identifier,
            credentials_token=credentials_token,
            explained_token=explained_token,
            confirmed=confirmed,
            region=region,
        )
        return change_result(done)

    @server.tool(annotations=READ_ONLY)
    @tool_result
    async def get_resource_request_status(
        request_token: Annotated[str, Field(description="request_token of a change")],
        region: Region = None,
    ) -> dict[str, Any]:
        """The status of a Cloud Control request (for a change that timed out)."""
        await workflow.check_region(region)
        return await operations.request_status(request_token)


# --------------------------------------------------------------------------- typed -> tool JSON


def environment_result(env: EnvironmentReport) -> dict[str, Any]:
    return {
        "environment_variables": env.variables,
        "properly_configured": env.properly_configured,
        "credential_source": env.credential_source,
        "security_scanning": env.security_scanning,
        "default_tags": env.default_tags,
        "readonly_mode": env.readonly_mode,
        "next_step": "Call get_aws_session_info() to confirm the account and get a "
        "credentials_token.",
    }


def session_result(info: SessionInfo) -> dict[str, Any]:
    identity = info.identity
    return {
        "account_id": identity.account,
        "arn": identity.arn,
        "user_id": identity.user_id,
        "region": info.region,
        "credential_source": identity.credential_source,
        "user": info.person,
        "readonly_mode": info.readonly_mode,
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
        "properties_for_explanation": generated.shown_properties,
        "next_step": "Call explain(generated_code_token=..., user_intent=...) and show the "
        "explanation to the user.",
    }
    if generated.operation == "update":
        result["patch_document"] = generated.patch_document
        result["properties_before"] = generated.properties_before
    return result


def explanation_result(explained: Explanation) -> dict[str, Any]:
    if explained.token is None:
        return {"explanation": explained.text}
    operation = explained.operation
    scan_step = (
        "run_checkov(explained_token)"
        if explained.scanning_enabled
        else f"run_checkov(explained_token) (it records that {SCANNING_ENV} is disabled)"
    )
    return {
        "explanation": explained.text,
        "explained_token": explained.token.token,
        "token_expires_at": explained.token.expires_at.isoformat(),
        "operation": operation,
        "security_scanning": "enabled" if explained.scanning_enabled else "disabled",
        "next_step": (
            f"Show the explanation to the user. When they approve, call {scan_step}, then "
            f"{operation}_resource with its security_scan_token."
            if operation != "delete"
            else "Show the explanation to the user. When they approve, call "
            "delete_resource(identifier, explained_token, confirmed=True)."
        ),
    }


def scan_result(scanned: ScanOutcome) -> dict[str, Any]:
    result = scanned.result
    response: dict[str, Any] = {
        "scan_status": result.status,
        "summary": result.summary(),
        "checkov_results": result.checkov_results(),
        "details": result.to_dict(),
    }
    if scanned.token is not None:
        response["security_scan_token"] = scanned.token.token
        response["token_expires_at"] = scanned.token.expires_at.isoformat()
        response["next_step"] = (
            f"Show the scan result to the user, then call {scanned.operation}_resource "
            "with credentials_token, explained_token and this security_scan_token."
        )
    elif result.status == "FAILED":
        response["next_step"] = (
            "A failed scan authorizes nothing. Show the failed checks to the user, fix the "
            "properties and start again with generate_infrastructure_code."
        )
    else:
        response["next_step"] = result.message or (
            f"The scan did not run: install checkov with `ccstate scanner install`, "
            f"or start the server with {SCANNING_ENV}=disabled."
        )
    return response


def change_result(done: ChangeOutcome) -> dict[str, Any]:
    return {
        "status": "SUCCESS",
        "operation": done.operation,
        "resource_type": done.resource_type,
        "identifier": done.identifier,
        "request_token": done.request_token,
        "properties": done.properties,
        "security_scan": done.security_scan,
        "state_serial": done.state_serial,
        "execution_token": done.execution_token,
        "lineage_entry": done.lineage_entry,
        "message": f"{done.operation} of {done.resource_type} '{done.identifier}' "
        f"succeeded and is recorded in the state at serial {done.state_serial}.",
    }
