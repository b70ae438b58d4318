"""The steps before a change: who we are, what will change, the explanation, the scan.

Each step checks the token of the step before and issues the next one (``authz.tokens``),
bound to the same principal, operation, resource and exact properties or patch:

    get_aws_session_info -> credentials -> generate_infrastructure_code -> generated_code
      -> explain -> explained -> run_checkov (PASSED, or SKIPPED when scanning is off) -> scanned
                                            run_checkov FAILED -> scan_findings
                                               -> approve_security_findings (a person) -> scanned

Also the AWS Labs server's ways: ``skip_security_check=True`` (only when the operator disabled
scanning; recorded as "not scanned: skipped by caller") and a delete explained from content
(``explain(content=get_resource(...), operation="delete")``), whose explained token is the root
of its chain, bound to the principal and the resource. Every step acts in one region: the one
asked for, else the server's; the tokens are bound to it.

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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ccstate.service.authz.policy import Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import (
    IssuedToken,
    TokenPrincipal,
    TokenRecord,
    TokenService,
    payload_digest,
    recorded_token_id,
    token_hash,
)
from ccstate.service.changes import redaction
from ccstate.service.changes.explain import (
    explain_content,
    explain_create,
    explain_delete,
    explain_update,
)
from ccstate.service.changes.scanning import (
    ScanResult,
    SecurityScanner,
    accept_findings,
    skipped_result,
)
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
from ccstate.service.ports import CallerIdentity, CloudProvider, SchemaProvider, cloud_in

log = logging.getLogger(__name__)

SCANNING_ENV = "SECURITY_SCANNING"
OPERATIONS = ("create", "update", "delete")
MAX_CONTENT_CHARS = 200_000
PAGE_SIZE = 100  # Cloud Control's largest page
LIST_LIMIT = 1000  # identifiers list_resources returns before it hands back a next_token
PROCEED_DECISIONS = frozenset({"proceed", "proceed_anyway", "accept", "approve", "approved"})
STOP_DECISIONS = frozenset({"fix", "cancel", "reject", "rejected", "stop"})
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


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
    accept_critical_findings: bool = False  # the operator's leave (approve_security_findings)


@dataclass(frozen=True)
class Authorization:
    """What ``authorize`` hands the mutation: the consumed token and what its chain carried."""

    token: str
    record: TokenRecord
    checkov_results: dict[str, Any]
    region: str | None = None  # where the change runs
    # A step of a stack plan (service.stacks.authority): its plan token was used once when the
    # stack operation began, so nothing is consumed here; the lineage records ``recorded_id``
    # and Cloud Control gets ``client_token``, both derived from the plan token.
    under_plan: bool = False
    recorded_id: str = ""
    client_token: str = ""

    @property
    def execution_token(self) -> str:
        """How the lineage entry and the intent record the token."""
        return self.recorded_id or recorded_token_id(self.token)

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
    profile: str = ""
    region: str = ""
    using_env_vars: bool = False
    token: IssuedToken | None = None  # the environment token (the AWS Labs order)


@dataclass(frozen=True)
class AccountInfo:
    """Who and where, without a token (the AWS Labs get_aws_account_info)."""

    identity: CallerIdentity
    region: str | None
    person: str
    readonly_mode: bool
    profile: str = ""
    using_env_vars: bool = False
    scanning_enabled: bool = True


@dataclass(frozen=True)
class SessionInfo:
    identity: CallerIdentity
    region: str | None
    person: str
    readonly_mode: bool
    credentials: IssuedToken
    profile: str = ""
    using_env_vars: bool = False


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
    supports_tagging: bool = False


@dataclass(frozen=True)
class Explanation:
    text: str
    # None when content was explained without a token (nothing to execute).
    token: IssuedToken | None = None
    operation: str | None = None
    scanning_enabled: bool = True
    explained: Any = None  # what was explained (properties, patch, or the resource deleted)
    resource_type: str | None = None
    identifier: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ScanOutcome:
    operation: str
    result: ScanResult
    token: IssuedToken | None  # None: the scan authorizes nothing
    resource_type: str = ""
    timestamp: str = ""
    # FAILED: a token for approve_security_findings only; it authorizes nothing itself.
    findings_token: IssuedToken | None = None

    @property
    def authorizes(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class Approval:
    """A person's answer to a FAILED scan: a token for exactly that change, or none."""

    decision: str
    operation: str
    proceed: bool
    accepted: ScanResult | None = None
    token: IssuedToken | None = None


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
            profile=env.get("AWS_PROFILE") or "",
            region=self.config.region or env.get("AWS_REGION") or "",
            using_env_vars=has_keys,
        )

    async def check_environment(self, principal: Principal) -> EnvironmentReport:
        """The environment report with an environment token (the AWS Labs order: this check
        first, then the session)."""
        issued = await self.tokens.issue("environment", principal=principal.for_token())
        return replace(self.environment(), token=issued)

    async def session_info(
        self, principal: Principal, *, environment_token: str = ""
    ) -> SessionInfo:
        bound = principal.for_token()
        if environment_token:  # checked when given; ccstate's own clients start here
            await self.tokens.validate(
                environment_token, expected_type="environment", principal=bound
            )
        account = await self.account(principal)
        issued = await self.tokens.issue("credentials", principal=bound)
        return SessionInfo(
            identity=account.identity,
            region=account.region,
            person=account.person,
            readonly_mode=account.readonly_mode,
            credentials=issued,
            profile=account.profile,
            using_env_vars=account.using_env_vars,
        )

    async def account(self, principal: Principal) -> AccountInfo:
        identity = await self.identity()
        env = self.config.env
        return AccountInfo(
            identity=identity,
            region=self.config.region or identity.region,
            person=principal.person,
            readonly_mode=self.policy.readonly,
            profile=env.get("AWS_PROFILE") or "",
            using_env_vars=bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")),
            scanning_enabled=self.config.scanning_enabled,
        )

    # ------------------------------------------------------------------ regions and reads

    async def region_for(self, region: str | None) -> str:
        """The region a call acts in: the one asked for, else the server's."""
        if region is None or region == "":
            return self.config.region or (await self.identity()).region
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            raise InvalidInput(
                f"{region!r} is not an AWS region name.",
                next_step="Pass a region such as 'us-east-1' or 'eu-west-1', or leave it out.",
                field="region",
            )
        return region

    async def cloud_for(self, region: str | None) -> CloudProvider:
        """The Cloud Control client of the region a call acts in."""
        return cloud_in(self.cloud, await self.region_for(region))

    async def list_identifiers(
        self,
        resource_type: str,
        *,
        region: str | None = None,
        next_token: str | None = None,
        limit: int = LIST_LIMIT,
    ) -> tuple[list[str], str | None]:
        """Every identifier of a type, page after page, up to ``limit``; the next_token
        continues a list longer than that."""
        validate_type_name(resource_type)
        cloud = await self.cloud_for(region)
        found: list[str] = []
        token = next_token or None
        while True:
            page = await cloud.list_resources(
                resource_type, next_token=token, max_results=min(PAGE_SIZE, limit - len(found))
            )
            found += [r.identifier for r in page.resources]
            token = page.next_token
            if not token or len(found) >= limit:
                return found, token

    async def analyze(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        """A scan of a resource as it is (analyze_security): a report; no token is issued."""
        return await self.scanner.scan(resource_type, properties)

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
        if operation == "update" and not patch_document and properties:
            # The AWS Labs form of an update: the properties to set on the resource.
            patch_document = properties_as_patch(properties)
        self.policy.check(principal, operation)  # type: ignore[arg-type]
        validate_type_name(resource_type)
        bound = principal.for_token()
        # The credentials token is checked before any schema or cloud read.
        credentials = await self.tokens.validate(
            credentials_token, expected_type="credentials", principal=bound
        )
        where = await self.region_for(region)
        schema = await self.schemas.get_schema(resource_type)
        plan = await self._plan(
            schema, operation, properties, identifier, patch_document, cloud_in(self.cloud, where)
        )
        issued = await self.tokens.issue(
            "generated_code",
            principal=bound,
            parent=credentials_token,
            checked_parent=credentials,
            operation=operation,
            resource_type=resource_type,
            identifier=plan.identifier,
            payload=plan.payload,
            region=where,
        )
        shown = self._shown(schema, plan)
        update = operation == "update"
        return GeneratedChange(
            operation=operation,
            resource_type=resource_type,
            identifier=plan.identifier,
            region=where,
            supports_tagging=schema.tags_property is not None,
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
        cloud: CloudProvider,
    ) -> _Plan:
        if operation == "create":
            desired = self.desired_for_create(schema, properties)
            return _Plan(primary_identifier(schema, desired), desired, None, desired)
        identifier = validate_identifier(identifier)
        if operation == "update":
            patch = validate_patch(schema, patch)
            before = (await cloud.get_resource(schema.type_name, identifier)).properties
            after = apply_patch(before, patch)
            check_against_schema(schema, _settable(schema, after), read_back=True)
            return _Plan(identifier, patch, before, after)
        before = (await cloud.get_resource(schema.type_name, identifier)).properties
        return _Plan(identifier, None, before, None)

    def desired_for_create(
        self, schema: ResourceSchema, properties: dict[str, Any] | None
    ) -> dict[str, Any]:
        """What a create sends: the properties checked, default tags added, checked against
        the schema once (the caller's own mistakes named first when that fails)."""
        given = properties if properties is not None else {}
        desired = validate_properties(schema, given, against_schema=False)
        if self.config.default_tags:
            desired = with_default_tags(schema, desired)
        _check_desired(schema, given, desired)
        return desired

    def check_update(
        self, schema: ResourceSchema, before: dict[str, Any], patch: list[dict[str, Any]]
    ) -> None:
        """The resource after ``patch`` still fits its schema (what ``generate`` checks)."""
        check_against_schema(schema, _settable(schema, apply_patch(before, patch)), read_back=True)

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
        operation: str = "",
    ) -> Explanation:
        user_intent = validate_text(user_intent, "user_intent")
        context = validate_text(context, "context")
        operation = (operation or "").strip().lower()
        if not generated_code_token:
            if content is None:
                raise InvalidInput(
                    "explain needs either content to explain or a generated_code_token.",
                    next_step="Pass the generated_code_token from ${prepare}.",
                    step="pass_generated_token",
                )
            _check_content_size(content)
            if operation in ("delete", "destroy"):
                return await self._explain_delete(principal, content, user_intent)
            return Explanation(
                explain_content(content, context=context, user_intent=user_intent),
                operation=operation or "analyze",
            )
        bound = principal.for_token()
        generated = await self.tokens.validate(
            generated_code_token, expected_type="generated_code", principal=bound
        )
        text = await self._explanation(generated, user_intent)
        issued = await self.tokens.issue(
            "explained",
            principal=bound,
            parent=generated_code_token,
            checked_parent=generated,
            explanation=text,
            user_intent=user_intent or None,
        )
        return Explanation(
            text,
            issued,
            generated.operation,
            self.config.scanning_enabled,
            explained=content if content is not None else _explained_payload(generated),
            resource_type=generated.resource_type,
            identifier=generated.identifier,
            region=generated.region,
        )

    async def _explain_delete(self, principal: Principal, content: Any, intent: str) -> Explanation:
        """A delete explained from what get_resource returned (the AWS Labs way): the
        explanation is of the resource as AWS has it now, and the token is bound to it."""
        type_name, identifier, region = _resource_named_by(content)
        self.policy.check(principal, "delete")
        validate_type_name(type_name)
        identifier = validate_identifier(identifier)
        schema = await self.schemas.get_schema(type_name)
        where = await self.region_for(region)
        found = await cloud_in(self.cloud, where).get_resource(schema.type_name, identifier)
        shown = self.redact(schema, found.properties)
        text = explain_delete(schema.type_name, identifier, shown, user_intent=intent)
        issued = await self.tokens.issue(
            "explained",
            principal=principal.for_token(),
            operation="delete",
            resource_type=schema.type_name,
            identifier=identifier,
            explanation=text,
            user_intent=intent or None,
            region=where,
        )
        return Explanation(
            text,
            issued,
            "delete",
            self.config.scanning_enabled,
            explained=shown,
            resource_type=schema.type_name,
            identifier=identifier,
            region=where,
        )

    async def _explanation(self, record: TokenRecord, intent: str) -> str:
        schema = await self.schemas.get_schema(record.resource_type or "")
        type_name, identifier = schema.type_name, record.identifier or ""
        if record.operation == "create":
            shown = self.redact(schema, record.payload)
            return explain_create(type_name, shown, user_intent=intent, region=record.region or "")
        cloud = cloud_in(self.cloud, record.region)
        before = (await cloud.get_resource(type_name, identifier)).properties
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
        issued = findings = None
        if result.authorizes_execution:
            issued = await self.tokens.issue(
                "scanned",
                principal=bound,
                parent=explained_token,
                checked_parent=explained,
                scan=result,
            )
        elif result.status == "FAILED":
            findings = await self.tokens.issue(
                "scan_findings",
                principal=bound,
                parent=explained_token,
                checked_parent=explained,
                scan=result,
            )
        return ScanOutcome(
            explained.operation or "",
            result,
            issued,
            resource_type=schema.type_name,
            timestamp=_now(),
            findings_token=findings,
        )

    async def _after(self, record: TokenRecord) -> dict[str, Any]:
        if record.operation == "create":
            return dict(record.payload or {})
        cloud = cloud_in(self.cloud, record.region)
        found = await cloud.get_resource(record.resource_type or "", record.identifier or "")
        return apply_patch(found.properties, record.payload)

    # ------------------------------------------------------------------ approve

    async def approve(
        self,
        principal: Principal,
        *,
        security_scan_token: str,
        decision: str,
        accepted_checks: list[str] | None = None,
        reason: str = "",
    ) -> Approval:
        """A person's answer to a FAILED scan. "proceed anyway" with every failed check named
        and a reason issues the scanned token of exactly that change; "fix" or "cancel" uses
        the findings token up."""
        proceed = _decision(decision)
        reason = validate_text(reason, "reason")
        bound = principal.for_token()
        findings = await self.tokens.validate(
            security_scan_token, expected_type="scan_findings", principal=bound
        )
        await self.tokens.ensure_unused(findings)
        operation = findings.operation or ""
        if not proceed:
            await self.tokens.consume(
                security_scan_token, expected_type="scan_findings", principal=bound
            )
            return Approval(decision, operation, proceed=False)
        if not reason.strip():
            raise InvalidInput(
                "Accepting security findings needs the person's reason.",
                next_step="Ask the user why they proceed anyway and pass it as reason.",
                field="reason",
            )
        assert findings.scan is not None  # a scan_findings token always carries its scan
        accepted = accept_findings(
            findings.scan,
            accepted_checks or [],
            reason=reason,
            accepted_by=principal.describe(),
            at=_now(),
            allow_critical=self.config.accept_critical_findings,
        )
        issued = await self.tokens.issue(
            "scanned",
            principal=bound,
            parent=security_scan_token,
            checked_parent=findings,
            scan=accepted,
        )
        return Approval(decision, operation, proceed=True, accepted=accepted, token=issued)

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
        skip_security_check: bool = False,
        region: str | None = None,
    ) -> Authorization:
        """Check, once, that the tokens form one chain for exactly this change, issued to
        ``principal``, in this region: one read of the final token (a scanned token; an
        explained token for a delete, or for a change whose scan the caller skipped where the
        operator disabled scanning). Nothing is consumed: the mutation calls ``consume`` under
        its lock."""
        self.policy.check(principal, operation)  # type: ignore[arg-type]
        where = await self.region_for(region)
        skipped = operation != "delete" and not security_scan_token and skip_security_check
        if skipped and self.config.scanning_enabled:
            raise TokenError(
                f"Skipping the security scan is refused: the operator enabled {SCANNING_ENV}, "
                f"so every {operation} is scanned.",
                next_step="Call ${scan}(explained_token) and pass its security_scan_token "
                "(if it finds issues, the user may accept them with ${approve}).",
                step="skip_refused",
                check="skip_refused",
            )
        by_explanation = operation == "delete" or skipped
        final = explained_token if by_explanation else security_scan_token
        if not explained_token:
            raise TokenError(
                f"The {operation} needs the explained_token of its explanation.",
                next_step="Call ${explain} and pass the explained_token it returns"
                + (
                    " (to delete: ${explain} with the resource read by ${get_resource} as "
                    'content and operation="delete").'
                    if operation == "delete"
                    else "."
                ),
                step="explained_missing",
                check="explained_missing",
            )
        if not final:
            raise TokenError(
                f"The {operation} needs the security_scan_token of its scan.",
                next_step="Call ${scan}(explained_token) and pass its security_scan_token"
                + ("." if self.config.scanning_enabled else ", or ${skip_scan}."),
                step="scan_missing",
                check="scan_missing",
            )
        bound = principal.for_token()
        try:
            record = await self.tokens.check_execution(
                final,
                expected_type="explained" if by_explanation else "scanned",
                principal=bound,
                operation=operation,
                resource_type=resource_type,
                identifier=identifier,
                payload_digest=payload_digest(payload) if payload is not None else None,
                chain={"explained": explained_token},
                region=where,
            )
        except TokenError as exc:
            if exc.details.get("actual") == "scan_findings":
                raise await self._findings_not_accepted(final) from exc
            raise
        await self._check_credentials(record, credentials_token, bound)
        if skipped:
            checkov = skipped_result(by_caller=True).checkov_results()
        else:
            checkov = record.checkov_results() or {
                "status": "NOT_APPLICABLE",
                "reason": "a delete has nothing to scan",
            }
        return Authorization(token=final, record=record, checkov_results=checkov, region=where)

    async def _check_credentials(
        self, record: TokenRecord, credentials_token: str, bound: TokenPrincipal
    ) -> None:
        """The credentials token given is the chain's; a delete explained from content has
        none in its chain, so the one given must be a live one of this principal."""
        if record.type == "explained" and record.parent_hash is None:
            await self.tokens.validate(
                credentials_token, expected_type="credentials", principal=bound
            )
            return
        ours = (record.ancestors or {}).get("credentials")
        if not credentials_token or ours != token_hash(credentials_token):
            raise TokenError(
                "The credentials_token given is not the one this change was prepared and "
                "explained with: the tokens come from different chains.",
                next_step="Pass the tokens of one chain: the credentials_token you gave "
                "${prepare} and the explained_token ${explain} returned.",
                step="pass_one_chain",
                check="wrong_chain",
            )

    async def _findings_not_accepted(self, token: str) -> TokenError:
        record = await self.tokens.inspect(token)
        failed = record.scan.failed_ids if record.scan else []
        return TokenError(
            "This security_scan_token is from a scan that FAILED ("
            + ", ".join(failed)
            + "): it authorizes nothing until the user accepts the findings.",
            next_step="Show the findings to the user. If they say proceed anyway, call "
            "${approve} with the accepted check ids and their reason, and use the token "
            "it returns.",
            step="findings_not_accepted",
            check="findings_not_accepted",
            failed_checks=failed,
        )

    async def consume(self, auth: Authorization) -> None:
        """Use the authorization's token, once, in the shared backend (write-once markers). A
        stack plan's step has nothing to use: its plan token was used when the stack began."""
        if auth.under_plan:
            return
        await self.tokens.consume_checked(auth.record)


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


def _check_desired(schema: ResourceSchema, given: Any, desired: dict[str, Any]) -> None:
    """One schema pass over what will be sent; when it fails, the caller's own properties are
    checked first, so their mistakes are named before any the default tags could cause."""
    try:
        check_against_schema(schema, desired)
    except InvalidInput:
        if desired is not given:
            check_against_schema(schema, given)
        raise


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
    if patch or (identifier and properties):
        return "update"
    if identifier and not properties:
        raise InvalidInput(
            "An identifier without a patch_document is ambiguous.",
            next_step="Pass operation='delete' to delete it, or a patch_document to update it.",
            field="operation",
        )
    return "create"


def properties_as_patch(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Set each top-level property: RFC 6902 ``add`` replaces a member that exists."""
    return [
        {"op": "add", "path": "/" + str(k).replace("~", "~0").replace("/", "~1"), "value": v}
        for k, v in properties.items()
    ]


def _explained_payload(record: TokenRecord) -> Any:
    if record.operation == "create":
        return record.payload  # the caller's own properties, default tags added
    return {"identifier": record.identifier, "patch_document": record.payload}


_TYPE_KEYS = ("resource_type", "ResourceType", "TypeName", "type_name")
_ID_KEYS = ("identifier", "Identifier", "ResourceIdentifier")


def _resource_named_by(content: Any) -> tuple[str, str, str | None]:
    """The resource a delete's content names: get_resource's result (resource_type,
    identifier, region) or the same keys as Cloud Control spells them."""
    found = content if isinstance(content, dict) else {}
    type_name = next((found[k] for k in _TYPE_KEYS if isinstance(found.get(k), str)), None)
    identifier = next((found[k] for k in _ID_KEYS if isinstance(found.get(k), str)), None)
    if not type_name or not identifier:
        raise InvalidInput(
            "To explain a delete, content must name the resource: its resource_type and "
            "identifier.",
            next_step="Read the resource with ${get_resource} and pass its result as content, "
            'with operation="delete".',
            field="content",
        )
    region = found.get("region")
    return type_name, identifier, region if isinstance(region, str) and region else None


def _decision(decision: str) -> bool:
    """True to proceed, False to stop; anything else is refused."""
    key = re.sub(r"[\s-]+", "_", (decision or "").strip().lower())
    if key in PROCEED_DECISIONS:
        return True
    if key in STOP_DECISIONS:
        return False
    raise InvalidInput(
        f"decision must be 'proceed anyway', 'fix' or 'cancel', not {decision!r}.",
        next_step="Ask the user how to proceed and pass their answer as decision.",
        field="decision",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


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
