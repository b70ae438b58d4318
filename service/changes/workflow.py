"""The steps before a change: who we are, what will change, the explanation, the scan.

Each step checks the token of the step before and issues the next one (``authz.tokens``),
bound to the same principal, operation, resource and exact properties or patch:

    get_aws_session_info -> credentials -> generate_infrastructure_code -> generated_code
      -> explain -> explained -> run_checkov (PASSED, or SKIPPED when scanning is off) -> scanned

``authorize`` is the last check, made once by the mutation itself before it locks: the tokens
given form one chain for exactly this change; ``consume`` then uses the final token once, under
the lock, atomically in the shared backend, so no server instance can use it again.

Every step takes the request's ``Principal`` (``authz.principal``) and returns a typed value;
the faces word the results and name their own tools or commands as the next step.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.authz.policy import Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import (
    IssuedToken,
    TokenRecord,
    TokenService,
    payload_digest,
)
from ccstate.service.changes import redaction
from ccstate.service.changes.explain import (
    explain_content,
    explain_create,
    explain_delete,
    explain_update,
)
from ccstate.service.changes.scanning import ScanResult, SecurityScanner
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
from ccstate.service.errors import InvalidInput, TokenError
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CallerIdentity, CloudProvider, SchemaProvider

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


@dataclass(frozen=True)
class EnvironmentReport:
    """What ``environment`` sees of the process's AWS settings (secrets masked)."""

    variables: dict[str, Any]
    properly_configured: bool
    credential_source: str
    security_scanning: str
    default_tags: str
    readonly_mode: bool


@dataclass(frozen=True)
class SessionInfo:
    identity: CallerIdentity
    region: str | None
    person: str
    readonly_mode: bool
    credentials: IssuedToken


@dataclass(frozen=True)
class GeneratedChange:
    operation: str
    resource_type: str
    identifier: str | None
    region: str | None
    token: IssuedToken
    template: dict[str, Any]
    shown_properties: dict[str, Any]
    patch_document: list[Any] | None = None  # update: the patch, redacted
    properties_before: dict[str, Any] | None = None  # update: redacted


@dataclass(frozen=True)
class Explanation:
    text: str
    # None when content was explained without a token (nothing to execute).
    token: IssuedToken | None = None
    operation: str | None = None
    scanning_enabled: bool = True


@dataclass(frozen=True)
class ScanOutcome:
    operation: str
    result: ScanResult
    token: IssuedToken | None  # None: the scan authorizes nothing

    @property
    def authorizes(self) -> bool:
        return self.token is not None


class Workflow:
    """The steps before a change. Every step takes the request's ``Principal``; the tokens it
    issues are bound to it. Holds no principal of its own."""

    def __init__(
        self,
        cloud: CloudProvider,
        schemas: SchemaProvider,
        tokens: TokenService,
        redact: Redactor,
        config: WorkflowConfig,
        *,
        scanner: SecurityScanner,
        policy: Policy | None = None,
    ) -> None:
        self.cloud = cloud
        self.schemas = schemas
        self.tokens = tokens
        self.redact = redact
        self.config = config
        self.scanner = scanner
        self.policy = policy or Policy()
        self._identity: CallerIdentity | None = None

    # ------------------------------------------------------------------ who we are

    async def identity(self) -> CallerIdentity:
        """Who AWS says this process's credentials are (account, ARN, region), asked once."""
        if self._identity is None:
            self._identity = await self.cloud.caller_identity()
        return self._identity

    def environment(self) -> EnvironmentReport:
        env = self.config.env
        names = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
        shown: dict[str, Any] = {name: env.get(name) for name in names}
        has_keys = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
        shown["AWS_ACCESS_KEY_ID"] = _mask(env.get("AWS_ACCESS_KEY_ID"))
        shown[SCANNING_ENV] = self._scanning_label()
        shown["DEFAULT_TAGS"] = "enabled" if self.config.default_tags else "disabled"
        configured = has_keys or bool(env.get("AWS_PROFILE")) or _has_shared_credentials(env)
        return EnvironmentReport(
            variables=shown,
            properly_configured=configured,
            credential_source="environment" if has_keys else "profile or default chain",
            security_scanning=shown[SCANNING_ENV],
            default_tags=shown["DEFAULT_TAGS"],
            readonly_mode=self.policy.readonly,
        )

    async def session_info(self, principal: Principal) -> SessionInfo:
        identity = await self.identity()
        issued = await self.tokens.issue("credentials", principal=principal.for_token())
        return SessionInfo(
            identity=identity,
            region=self.config.region or identity.region,
            person=principal.person,
            readonly_mode=self.policy.readonly,
            credentials=issued,
        )

    # ------------------------------------------------------------------ generate

    async def generate(
        self,
        principal: Principal,
        *,
        credentials_token: str,
        resource_type: str,
        operation: str = "",
        properties: dict[str, Any] | None = None,
        identifier: str = "",
        patch_document: list[dict[str, Any]] | None = None,
        region: str | None = None,
    ) -> GeneratedChange:
        operation = _infer_operation(operation, properties, identifier, patch_document)
        self.policy.check(principal, operation)  # type: ignore[arg-type]
        validate_type_name(resource_type)
        bound = principal.for_token()
        # The credentials token is checked before any schema or cloud read.
        await self.tokens.validate(credentials_token, expected_type="credentials", principal=bound)
        schema = await self.schemas.get_schema(resource_type)
        plan = await self._plan(schema, operation, properties, identifier, patch_document)
        issued = await self.tokens.issue(
            "generated_code",
            principal=bound,
            parent=credentials_token,
            operation=operation,
            resource_type=resource_type,
            identifier=plan.identifier,
            payload=plan.payload,
        )
        shown = self._shown(schema, plan)
        update = operation == "update"
        return GeneratedChange(
            operation=operation,
            resource_type=resource_type,
            identifier=plan.identifier,
            region=region or self.config.region,
            token=issued,
            template=_template(resource_type, shown),
            shown_properties=shown,
            # Shown, not replayed: the update applies the patch the tokens carry.
            patch_document=self.redact_patch(schema, plan.payload) if update else None,
            properties_before=self.redact(schema, plan.before or {}) if update else None,
        )

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
            check_against_schema(schema, _settable(schema, after), read_back=True)
            return _Plan(identifier, patch, before, after)
        before = (await self.cloud.get_resource(schema.type_name, identifier)).properties
        return _Plan(identifier, None, before, None)

    def _shown(self, schema: ResourceSchema, plan: _Plan) -> dict[str, Any]:
        return self.redact(schema, plan.after if plan.after is not None else plan.before or {})

    # ------------------------------------------------------------------ explain

    async def explain(
        self,
        principal: Principal,
        *,
        generated_code_token: str = "",
        content: Any = None,
        context: str = "",
        user_intent: str = "",
    ) -> Explanation:
        user_intent = validate_text(user_intent, "user_intent")
        context = validate_text(context, "context")
        if not generated_code_token:
            if content is None:
                raise InvalidInput(
                    "explain needs either content to explain or a generated_code_token.",
                    next_step="Pass the generated_code_token from ${prepare}.",
                    step="pass_generated_token",
                )
            _check_content_size(content)
            return Explanation(explain_content(content, context=context, user_intent=user_intent))
        bound = principal.for_token()
        generated = await self.tokens.validate(
            generated_code_token, expected_type="generated_code", principal=bound
        )
        text = await self._explanation(generated, user_intent)
        issued = await self.tokens.issue(
            "explained",
            principal=bound,
            parent=generated_code_token,
            explanation=text,
            user_intent=user_intent or None,
        )
        return Explanation(text, issued, generated.operation, self.config.scanning_enabled)

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

    async def scan(self, principal: Principal, *, explained_token: str) -> ScanOutcome:
        bound = principal.for_token()
        explained = await self.tokens.validate(
            explained_token, expected_type="explained", principal=bound
        )
        if explained.operation == "delete":
            raise InvalidInput(
                "A delete has nothing to scan.",
                next_step="Call ${delete} with the explained_token and confirmed=True.",
                step="delete_without_scan",
            )
        schema = await self.schemas.get_schema(explained.resource_type or "")
        result = await self.scanner.scan(schema.type_name, await self._after(explained))
        issued = None
        if result.authorizes_execution:
            issued = await self.tokens.issue(
                "scanned", principal=bound, parent=explained_token, scan=result
            )
        return ScanOutcome(explained.operation or "", result, issued)

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
        principal: Principal,
        *,
        operation: str,
        resource_type: str,
        identifier: str | None,
        payload: Any,
        credentials_token: str,
        explained_token: str,
        security_scan_token: str,
    ) -> Authorization:
        """Check, once, that the tokens form one chain for exactly this change, issued to
        ``principal``: one read of the final token (a scanned token; an explained token for a
        delete). Nothing is consumed: the mutation calls ``consume`` under its lock."""
        self.policy.check(principal, operation)  # type: ignore[arg-type]
        final_type = "explained" if operation == "delete" else "scanned"
        final = explained_token if operation == "delete" else security_scan_token
        if not final:
            raise TokenError(
                f"{operation}_resource needs a security_scan_token from run_checkov.",
                next_step="Call ${scan}(explained_token) and pass its security_scan_token.",
                step="scan_missing",
                check="scan_missing",
            )
        record = await self.tokens.check_execution(
            final,
            expected_type=final_type,  # type: ignore[arg-type]
            principal=principal.for_token(),
            operation=operation,
            resource_type=resource_type,
            identifier=identifier,
            payload_digest=payload_digest(payload) if payload is not None else None,
            chain={"credentials": credentials_token, "explained": explained_token},
        )
        checkov = record.checkov_results() or {
            "status": "NOT_APPLICABLE",
            "reason": "a delete has nothing to scan",
        }
        return Authorization(token=final, record=record, checkov_results=checkov)

    async def consume(self, auth: Authorization) -> None:
        """Use the authorization's token, once, in the shared backend (write-once markers)."""
        await self.tokens.consume_checked(auth.record)

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
