"""The steps before a change: who we are, what will change, the explanation, the scan.

Each step checks the token of the step before and issues the next one (``authz.tokens``),
bound to the same principal, operation, resource and exact properties or patch:

    get_aws_session_info -> credentials -> generate_infrastructure_code -> generated_code
      -> explain -> explained -> run_checkov (PASSED, or SKIPPED when scanning is off) -> scanned

``authorize`` is the last check, made by the mutation itself: it checks that the tokens given
form one chain and consumes the final one once, atomically in the shared backend, so no server
instance can use it again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.authz.tokens import (
    TokenPrincipal,
    TokenRecord,
    TokenService,
    payload_digest,
    token_hash,
)
from ccstate.service.changes import redaction
from ccstate.service.changes.explain import (
    explain_content,
    explain_create,
    explain_delete,
    explain_update,
)
from ccstate.service.changes.scanning import SecurityScanner
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.tagging import with_default_tags
from ccstate.service.changes.validation import (
    apply_patch,
    check_against_schema,
    validate_patch,
    validate_properties,
    validate_text,
    validate_type_name,
)
from ccstate.service.errors import InvalidInput, ReadOnlyMode, TokenError
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CallerIdentity, CloudProvider, SchemaProvider
from ccstate.service.state.model import Principal

log = logging.getLogger(__name__)

SCANNING_ENV = "SECURITY_SCANNING"
OPERATIONS = ("create", "update", "delete")
MAX_CONTENT_CHARS = 200_000


class Redactor:
    """Write-only and secret-looking values -> salted fingerprints (``changes.redaction``)."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt

    def __call__(self, schema: ResourceSchema, properties: dict[str, Any]) -> dict[str, Any]:
        return redaction.redact(properties, schema, self._salt)

    def patch(self, schema: ResourceSchema, patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return redaction.redact_patch(patch, schema, self._salt) or []


@dataclass(frozen=True)
class WorkflowConfig:
    readonly: bool = False
    scanning_enabled: bool = True
    default_tags: bool = True
    region: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class Authorization:
    """What ``authorize`` hands the mutation: the consumed token and what its chain carried."""

    token: str
    record: TokenRecord
    checkov_results: dict[str, Any]

    @property
    def explanation(self) -> str:
        return self.record.explanation or ""

    @property
    def user_intent(self) -> str:
        return self.record.user_intent or ""

    @property
    def payload(self) -> Any:
        return self.record.payload


class Workflow:
    def __init__(
        self,
        cloud: CloudProvider,
        schemas: SchemaProvider,
        tokens: TokenService,
        redact: Redactor,
        config: WorkflowConfig,
        *,
        user: Principal,
        scanner: SecurityScanner,
    ) -> None:
        self.cloud = cloud
        self.schemas = schemas
        self.tokens = tokens
        self.redact = redact
        self.config = config
        self.scanner = scanner
        self._user = user
        self._identity: CallerIdentity | None = None

    # ------------------------------------------------------------------ who we are

    async def identity(self) -> CallerIdentity:
        """Who AWS says we are (account, ARN, region), asked once per server."""
        if self._identity is None:
            self._identity = await self.cloud.caller_identity()
        return self._identity

    async def principal(self) -> Principal:
        """The local (or authenticated) user plus the AWS identity."""
        identity = await self.identity()
        return self._user.model_copy(update={"aws_session": identity.arn})

    async def token_principal(self) -> TokenPrincipal:
        who = await self.principal()
        return TokenPrincipal(
            arn=who.aws_session or "unknown", user=who.authenticated_user or who.user
        )

    def environment(self) -> dict[str, Any]:
        env = self.config.env
        names = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
        shown: dict[str, Any] = {name: env.get(name) for name in names}
        has_keys = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
        shown["AWS_ACCESS_KEY_ID"] = _mask(env.get("AWS_ACCESS_KEY_ID"))
        shown[SCANNING_ENV] = "enabled" if self.config.scanning_enabled else "disabled"
        shown["DEFAULT_TAGS"] = "enabled" if self.config.default_tags else "disabled"
        configured = has_keys or bool(env.get("AWS_PROFILE")) or _has_shared_credentials(env)
        return {
            "environment_variables": shown,
            "properly_configured": configured,
            "credential_source": "environment" if has_keys else "profile or default chain",
            "security_scanning": shown[SCANNING_ENV],
            "default_tags": shown["DEFAULT_TAGS"],
            "readonly_mode": self.config.readonly,
            "next_step": "Call get_aws_session_info() to confirm the account and get a "
            "credentials_token.",
        }

    async def session_info(self) -> dict[str, Any]:
        identity = await self.identity()
        who = await self.principal()
        issued = await self.tokens.issue("credentials", principal=await self.token_principal())
        return {
            "account_id": identity.account,
            "arn": identity.arn,
            "user_id": identity.user_id,
            "region": self.config.region or identity.region,
            "credential_source": identity.credential_source,
            "user": who.authenticated_user or who.user,
            "readonly_mode": self.config.readonly,
            "credentials_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "message": "Show the user this account, identity and region before any change.",
        }

    # ------------------------------------------------------------------ generate

    async def generate(
        self,
        *,
        credentials_token: str,
        resource_type: str,
        operation: str = "",
        properties: dict[str, Any] | None = None,
        identifier: str = "",
        patch_document: list[dict[str, Any]] | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        operation = _infer_operation(operation, properties, identifier, patch_document)
        self._refuse_if_readonly(operation)
        validate_type_name(resource_type)
        principal = await self.token_principal()
        # The credentials token is checked before any schema or cloud read.
        await self.tokens.validate(
            credentials_token, expected_type="credentials", principal=principal
        )
        schema = await self.schemas.get_schema(resource_type)
        plan = await self._plan(schema, operation, properties, identifier, patch_document)
        issued = await self.tokens.issue(
            "generated_code",
            principal=principal,
            parent=credentials_token,
            operation=operation,
            resource_type=resource_type,
            identifier=plan.identifier,
            payload=plan.payload,
        )
        result: dict[str, Any] = {
            "operation": operation,
            "resource_type": resource_type,
            "identifier": plan.identifier,
            "region": region or self.config.region,
            "generated_code_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "cloudformation_template": _template(resource_type, self._shown(schema, plan)),
            "properties_for_explanation": self._shown(schema, plan),
            "next_step": "Call explain(generated_code_token=..., user_intent=...) and show the "
            "explanation to the user.",
        }
        if operation == "update":
            # Shown, not replayed: update_resource applies the patch the tokens carry.
            result["patch_document"] = self.redact_patch(schema, plan.payload)
            result["properties_before"] = self.redact(schema, plan.before or {})
        return result

    async def _plan(
        self,
        schema: ResourceSchema,
        operation: str,
        properties: dict[str, Any] | None,
        identifier: str,
        patch: list[dict[str, Any]] | None,
    ) -> _Plan:
        if operation == "create":
            desired = validate_properties(schema, properties if properties is not None else {})
            if self.config.default_tags:
                desired = with_default_tags(schema, desired)
                check_against_schema(schema, desired)
            return _Plan(primary_identifier(schema, desired), desired, None, desired)
        identifier = validate_identifier(identifier)
        if operation == "update":
            patch = validate_patch(schema, patch)
            before = (await self.cloud.get_resource(schema.type_name, identifier)).properties
            after = apply_patch(before, patch)
            check_against_schema(schema, _settable(schema, after))
            return _Plan(identifier, patch, before, after)
        before = (await self.cloud.get_resource(schema.type_name, identifier)).properties
        return _Plan(identifier, None, before, None)

    def _shown(self, schema: ResourceSchema, plan: _Plan) -> dict[str, Any]:
        return self.redact(schema, plan.after if plan.after is not None else plan.before or {})

    # ------------------------------------------------------------------ explain

    async def explain(
        self,
        *,
        generated_code_token: str = "",
        content: Any = None,
        context: str = "",
        user_intent: str = "",
    ) -> dict[str, Any]:
        user_intent = validate_text(user_intent, "user_intent")
        context = validate_text(context, "context")
        if not generated_code_token:
            if content is None:
                raise InvalidInput(
                    "explain needs either content to explain or a generated_code_token.",
                    next_step="Pass the generated_code_token from generate_infrastructure_code.",
                )
            _check_content_size(content)
            text = explain_content(content, context=context, user_intent=user_intent)
            return {"explanation": text}
        principal = await self.token_principal()
        generated = await self.tokens.validate(
            generated_code_token, expected_type="generated_code", principal=principal
        )
        text = await self._explanation(generated, user_intent)
        issued = await self.tokens.issue(
            "explained",
            principal=principal,
            parent=generated_code_token,
            explanation=text,
            user_intent=user_intent or None,
        )
        operation = generated.operation
        needs_scan = operation != "delete"
        scan_step = (
            "run_checkov(explained_token)"
            if self.config.scanning_enabled
            else f"run_checkov(explained_token) (it records that {SCANNING_ENV} is disabled)"
        )
        return {
            "explanation": text,
            "explained_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "operation": operation,
            "security_scanning": self._scanning_label(),
            "next_step": (
                f"Show the explanation to the user. When they approve, call {scan_step}, then "
                f"{operation}_resource with its security_scan_token."
                if needs_scan
                else "Show the explanation to the user. When they approve, call "
                "delete_resource(identifier, explained_token, confirmed=True)."
            ),
        }

    async def _explanation(self, record: TokenRecord, intent: str) -> str:
        schema = await self.schemas.get_schema(record.resource_type or "")
        type_name, identifier = schema.type_name, record.identifier or ""
        if record.operation == "create":
            shown = self.redact(schema, record.payload)
            return explain_create(type_name, shown, user_intent=intent)
        before = (await self.cloud.get_resource(type_name, identifier)).properties
        if record.operation == "update":
            after = apply_patch(before, record.payload)
            return explain_update(
                type_name,
                identifier,
                self.redact_patch(schema, record.payload),
                self.redact(schema, before),
                self.redact(schema, after),
                user_intent=intent,
            )
        return explain_delete(
            type_name, identifier, self.redact(schema, before), user_intent=intent
        )

    def redact_patch(self, schema: ResourceSchema, patch: list[dict[str, Any]]) -> list[Any]:
        """The patch with each value redacted as the property it lands in would be."""
        return self.redact.patch(schema, patch)

    # ------------------------------------------------------------------ scan

    async def scan(self, *, explained_token: str) -> dict[str, Any]:
        principal = await self.token_principal()
        explained = await self.tokens.validate(
            explained_token, expected_type="explained", principal=principal
        )
        if explained.operation == "delete":
            raise InvalidInput(
                "A delete has nothing to scan.",
                next_step="Call delete_resource with the explained_token and confirmed=True.",
            )
        schema = await self.schemas.get_schema(explained.resource_type or "")
        result = await self.scanner.scan(schema.type_name, await self._after(explained))
        response: dict[str, Any] = {
            "scan_status": result.status,
            "summary": result.summary(),
            "checkov_results": result.checkov_results(),
            "details": result.to_dict(),
        }
        if result.authorizes_execution:
            issued = await self.tokens.issue(
                "scanned", principal=principal, parent=explained_token, scan=result
            )
            response["security_scan_token"] = issued.token
            response["token_expires_at"] = issued.expires_at.isoformat()
            response["next_step"] = (
                f"Show the scan result to the user, then call {explained.operation}_resource "
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

    async def _after(self, record: TokenRecord) -> dict[str, Any]:
        if record.operation == "create":
            return dict(record.payload or {})
        cloud = await self.cloud.get_resource(record.resource_type or "", record.identifier or "")
        return apply_patch(cloud.properties, record.payload)

    def _scanning_label(self) -> str:
        return "enabled" if self.config.scanning_enabled else "disabled"

    # ------------------------------------------------------------------ authorize

    async def authorize(
        self,
        *,
        operation: str,
        resource_type: str,
        identifier: str | None,
        payload: Any,
        credentials_token: str,
        explained_token: str,
        security_scan_token: str,
        consume: bool = True,
    ) -> Authorization:
        """Check that the tokens form one chain for exactly this change, then consume the
        final one (a scanned token; an explained token for a delete). With ``consume=False``
        only check: the mutation checks before it locks, and consumes under the lock."""
        self._refuse_if_readonly(operation)
        principal = await self.token_principal()
        final_type = "explained" if operation == "delete" else "scanned"
        final = explained_token if operation == "delete" else security_scan_token
        if not final:
            raise TokenError(
                f"{operation}_resource needs a security_scan_token from run_checkov.",
                next_step="Call run_checkov(explained_token) and pass its security_scan_token.",
                check="scan_missing",
            )
        await self._check_same_chain(final, credentials_token, explained_token)
        check = self.tokens.consume if consume else self.tokens.validate
        record = await check(
            final,
            expected_type=final_type,  # type: ignore[arg-type]
            principal=principal,
            operation=operation,
            resource_type=resource_type,
            identifier=identifier,
            payload_digest=payload_digest(payload) if payload is not None else None,
        )
        checkov = record.checkov_results() or {
            "status": "NOT_APPLICABLE",
            "reason": "a delete has nothing to scan",
        }
        return Authorization(token=final, record=record, checkov_results=checkov)

    async def _check_same_chain(self, final: str, credentials: str, explained: str) -> None:
        ancestors = {r.type: r.token_hash for r in await self.tokens.chain(final)}
        for token_type, given in (("credentials", credentials), ("explained", explained)):
            if not given or ancestors.get(token_type) != token_hash(given):
                raise TokenError(
                    f"The {token_type}_token given is not the one this change was prepared "
                    "and explained with: the tokens come from different chains.",
                    next_step="Pass the tokens of one chain: the credentials_token you gave "
                    "generate_infrastructure_code and the explained_token explain returned.",
                    check="wrong_chain",
                )

    async def check_region(self, region: str | None) -> None:
        """One server acts in one region; a call for another is refused, not silently moved."""
        if not region:
            return
        ours = self.config.region or (await self.identity()).region
        if region != ours:
            raise InvalidInput(
                f"This server acts in region {ours}, not {region}.",
                next_step=f"Leave region empty, or start a server with AWS_REGION={region}.",
                field="region",
            )

    def _refuse_if_readonly(self, operation: str) -> None:
        if self.config.readonly:
            raise ReadOnlyMode(
                f"This server is read-only: it refuses every change ({operation}).",
                next_step="Restart the server without --readonly to make changes.",
                operation=operation,
            )


# ---------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Plan:
    identifier: str | None
    payload: Any  # create: the properties; update: the patch; delete: None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def primary_identifier(schema: ResourceSchema, properties: dict[str, Any]) -> str | None:
    """The identifier a create will produce when the properties name it (e.g. BucketName)."""
    parts = []
    for pointer in schema.primary_identifier:
        name = pointer.strip("/")
        value = properties.get(name)
        if "/" in name or not isinstance(value, str | int) or isinstance(value, bool):
            return None
        parts.append(str(value))
    return "|".join(parts) if parts else None


def _infer_operation(
    operation: str,
    properties: dict[str, Any] | None,
    identifier: str,
    patch: list[dict[str, Any]] | None,
) -> str:
    if operation:
        if operation not in OPERATIONS:
            raise InvalidInput(
                f"Unknown operation {operation!r}.",
                next_step="Use operation 'create', 'update' or 'delete'.",
                field="operation",
            )
        return operation
    if patch:
        return "update"
    if identifier and not properties:
        raise InvalidInput(
            "An identifier without a patch_document is ambiguous.",
            next_step="Pass operation='delete' to delete it, or a patch_document to update it.",
            field="operation",
        )
    return "create"


def _settable(schema: ResourceSchema, properties: dict[str, Any]) -> dict[str, Any]:
    """What a caller could have written: read-only properties come back from AWS."""
    read_only = {p.strip("/") for p in schema.read_only if p.count("/") == 1}
    return {k: v for k, v in properties.items() if k not in read_only}


def _template(resource_type: str, properties: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Resource": {"Type": resource_type, "Properties": properties or {}}},
    }


def _check_content_size(content: Any) -> None:
    size = len(json.dumps(content, default=str))
    if size > MAX_CONTENT_CHARS:
        raise InvalidInput(
            f"The content to explain is {size} characters; the limit is {MAX_CONTENT_CHARS}.",
            next_step="Explain a smaller part of the data.",
            field="content",
        )


def _mask(value: str | None) -> str | None:
    if not value:
        return value
    return "*" * max(0, len(value) - 4) + value[-4:]


def _has_shared_credentials(env: Mapping[str, str]) -> bool:
    path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    return os.path.isfile(path)
