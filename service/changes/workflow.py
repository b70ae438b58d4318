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
of its chain, bound to the principal and the resource.

``authorize`` is the last check, made by the mutation itself: it checks that the tokens given
form one chain and consumes the final one once, atomically in the shared backend, so no server
instance can use it again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from ccstate.service.errors import InvalidInput, ReadOnlyMode, TokenError
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CallerIdentity, CloudProvider, SchemaProvider, cloud_in
from ccstate.service.state.model import Principal

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
    readonly: bool = False
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

    async def environment(self) -> dict[str, Any]:
        """The environment check, with the AWS Labs server's environment_token."""
        shown = self.environment_report()
        issued = await self.tokens.issue("environment", principal=await self.token_principal())
        return {**shown, "environment_token": issued.token}

    def environment_report(self) -> dict[str, Any]:
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
            "aws_auth_type": "env" if has_keys else "profile",
            "aws_profile": env.get("AWS_PROFILE") or "",
            "aws_region": self.config.region or env.get("AWS_REGION") or "",
            "security_scanning": shown[SCANNING_ENV],
            "default_tags": shown["DEFAULT_TAGS"],
            "readonly_mode": self.config.readonly,
            "next_step": "Call get_aws_session_info() to confirm the account and get a "
            "credentials_token.",
        }

    async def session_info(self, environment_token: str = "") -> dict[str, Any]:
        principal = await self.token_principal()
        if environment_token:  # the AWS Labs order: check_environment_variables first
            await self.tokens.validate(
                environment_token, expected_type="environment", principal=principal
            )
        issued = await self.tokens.issue("credentials", principal=principal)
        return {
            **await self.account(),
            "credentials_valid": True,
            "credentials_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "message": "Show the user this account, identity and region before any change.",
        }

    async def account(self) -> dict[str, Any]:
        """Who and where, without a token (the AWS Labs get_aws_account_info)."""
        identity = await self.identity()
        who = await self.principal()
        env = self.config.env
        using_env_vars = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
        readonly = self.config.readonly
        return {
            "account_id": identity.account,
            "arn": identity.arn,
            "user_id": identity.user_id,
            "region": self.config.region or identity.region,
            "profile": env.get("AWS_PROFILE") or "",
            "credential_source": identity.credential_source,
            "aws_auth_type": "env" if using_env_vars else "profile",
            "using_env_vars": using_env_vars,
            "user": who.authenticated_user or who.user,
            "readonly_mode": readonly,
            "readonly_message": "This server is read-only: it lists and reads resources but "
            "creates, updates and deletes nothing."
            if readonly
            else "",
            "security_scanning": self._scanning_label(),
        }

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

    # ------------------------------------------------------------------ reads

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
        if operation == "update" and not patch_document and properties:
            # The AWS Labs form of an update: the properties to set on the resource.
            patch_document = properties_as_patch(properties)
        self._refuse_if_readonly(operation)
        validate_type_name(resource_type)
        principal = await self.token_principal()
        # The credentials token is checked before any schema or cloud read.
        await self.tokens.validate(
            credentials_token, expected_type="credentials", principal=principal
        )
        where = await self.region_for(region)
        schema = await self.schemas.get_schema(resource_type)
        plan = await self._plan(
            schema, operation, properties, identifier, patch_document, cloud_in(self.cloud, where)
        )
        issued = await self.tokens.issue(
            "generated_code",
            principal=principal,
            parent=credentials_token,
            operation=operation,
            resource_type=resource_type,
            identifier=plan.identifier,
            payload=plan.payload,
            region=where,
        )
        shown = self._shown(schema, plan)
        result: dict[str, Any] = {
            "operation": operation,
            "resource_type": resource_type,
            "identifier": plan.identifier,
            "region": where,
            "generated_code_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "cloudformation_template": _template(resource_type, shown),
            "properties": shown,
            "properties_for_explanation": shown,
            "supports_tagging": schema.tags_property is not None,
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
        cloud: CloudProvider,
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
            before = (await cloud.get_resource(schema.type_name, identifier)).properties
            after = apply_patch(before, patch)
            check_against_schema(schema, _settable(schema, after), read_back=True)
            return _Plan(identifier, patch, before, after)
        before = (await cloud.get_resource(schema.type_name, identifier)).properties
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
        operation: str = "",
    ) -> dict[str, Any]:
        user_intent = validate_text(user_intent, "user_intent")
        context = validate_text(context, "context")
        operation = (operation or "").strip().lower()
        if not generated_code_token:
            if content is None:
                raise InvalidInput(
                    "explain needs either content to explain or a generated_code_token.",
                    next_step="Pass the generated_code_token from generate_infrastructure_code.",
                )
            _check_content_size(content)
            if operation in ("delete", "destroy"):
                return await self._explain_delete(content, user_intent)
            text = explain_content(content, context=context, user_intent=user_intent)
            return {
                "explanation": text,
                "operation_type": operation or "analyze",
                "ready_for_execution": False,
            }
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
            "operation_type": operation,
            "ready_for_execution": True,
            "properties_being_explained": content
            if content is not None
            else self._explained_properties(generated),
            "security_scanning": self._scanning_label(),
            "next_step": (
                f"Show the explanation to the user. When they approve, call {scan_step}, then "
                f"{operation}_resource with its security_scan_token."
                if needs_scan
                else "Show the explanation to the user. When they approve, call "
                "delete_resource(identifier, explained_token, confirmed=True)."
            ),
        }

    def _explained_properties(self, record: TokenRecord) -> Any:
        if record.operation == "create":
            return record.payload  # the caller's own properties, default tags added
        return {"identifier": record.identifier, "patch_document": record.payload}

    async def _explain_delete(self, content: Any, intent: str) -> dict[str, Any]:
        """A delete explained from what get_resource returned (the AWS Labs way): the
        explanation is of the resource as it is now, and the token is bound to it."""
        type_name, identifier, region = _resource_named_by(content)
        self._refuse_if_readonly("delete")
        validate_type_name(type_name)
        identifier = validate_identifier(identifier)
        schema = await self.schemas.get_schema(type_name)
        where = await self.region_for(region)
        before = await cloud_in(self.cloud, where).get_resource(schema.type_name, identifier)
        text = explain_delete(
            schema.type_name, identifier, self.redact(schema, before.properties), user_intent=intent
        )
        issued = await self.tokens.issue(
            "explained",
            principal=await self.token_principal(),
            operation="delete",
            resource_type=schema.type_name,
            identifier=identifier,
            explanation=text,
            user_intent=intent or None,
            region=where,
        )
        return {
            "explanation": text,
            "explained_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "operation": "delete",
            "operation_type": "delete",
            "ready_for_execution": True,
            "resource_type": schema.type_name,
            "identifier": identifier,
            "region": where,
            "properties_being_explained": self.redact(schema, before.properties),
            "next_step": "Show the explanation to the user. When they confirm, call "
            "delete_resource(resource_type, identifier, credentials_token, explained_token, "
            "confirmed=True).",
        }

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
        response = scan_report(result, schema.type_name, self.clock_now())
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
            issued = await self.tokens.issue(
                "scan_findings", principal=principal, parent=explained_token, scan=result
            )
            response["security_scan_token"] = issued.token
            response["token_expires_at"] = issued.expires_at.isoformat()
            response["message"] = (
                "Security issues found. This token authorizes nothing by itself: ask the user "
                "whether to fix the issues, proceed anyway, or cancel."
            )
            response["next_step"] = (
                "Show the failed checks to the user and ask: fix, proceed anyway, or cancel. "
                "WAIT for their answer. To proceed, call approve_security_findings("
                "security_scan_token, decision='proceed anyway', accepted_checks=[the failed "
                "check ids], reason=<their reason>); to fix, start again with "
                "generate_infrastructure_code."
            )
        else:
            response["next_step"] = result.message or (
                f"The scan did not run: install checkov with `pip install 'ccstate[scan]'`, "
                f"or start the server with {SCANNING_ENV}=disabled."
            )
        return response

    async def _after(self, record: TokenRecord) -> dict[str, Any]:
        if record.operation == "create":
            return dict(record.payload or {})
        cloud = cloud_in(self.cloud, record.region)
        found = await cloud.get_resource(record.resource_type or "", record.identifier or "")
        return apply_patch(found.properties, record.payload)

    def clock_now(self) -> str:
        return datetime.now(UTC).isoformat()

    async def analyze(self, resource_type: str, properties: dict[str, Any]) -> dict[str, Any]:
        """A scan of a resource as it is (get_resource/list_resources analyze_security): a
        report only; no token is issued."""
        result = await self.scanner.scan(resource_type, properties)
        return scan_report(result, resource_type, self.clock_now())

    # ------------------------------------------------------------------ approve

    async def approve(
        self,
        *,
        security_scan_token: str,
        decision: str,
        accepted_checks: list[str] | None = None,
        reason: str = "",
    ) -> dict[str, Any]:
        """A person's answer to a FAILED scan. "proceed anyway" with every failed check named
        and a reason issues the security_scan_token of exactly that change; "fix" or "cancel"
        ends this chain."""
        choice = _decision(decision)
        reason = validate_text(reason, "reason")
        principal = await self.token_principal()
        findings = await self.tokens.validate(
            security_scan_token, expected_type="scan_findings", principal=principal
        )
        assert findings.scan is not None  # a scan_findings token always carries its scan
        if choice == "stop":
            await self.tokens.consume(
                security_scan_token, expected_type="scan_findings", principal=principal
            )
            return {
                "decision": decision,
                "accepted_checks": [],
                "message": "Nothing will be changed; this scan's token is used up.",
                "next_step": "To fix the findings, change the properties and start again with "
                "generate_infrastructure_code.",
            }
        if not reason.strip():
            raise InvalidInput(
                "Accepting security findings needs the person's reason.",
                next_step="Ask the user why they proceed anyway and pass it as reason.",
                field="reason",
            )
        accepted = accept_findings(
            findings.scan,
            accepted_checks or [],
            reason=reason,
            accepted_by=principal.describe(),
            at=self.clock_now(),
            allow_critical=self.config.accept_critical_findings,
        )
        issued = await self.tokens.issue(
            "scanned", principal=principal, parent=security_scan_token, scan=accepted
        )
        return {
            "decision": decision,
            "accepted_checks": accepted.failed_ids,
            "security_scan_token": issued.token,
            "token_expires_at": issued.expires_at.isoformat(),
            "checkov_results": accepted.checkov_results(),
            "message": "The user accepted these findings; the acceptance and reason will be "
            "recorded with the change.",
            "next_step": f"Call {findings.operation}_resource with credentials_token, "
            "explained_token and this security_scan_token.",
        }

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
        skip_security_check: bool = False,
        region: str | None = None,
        consume: bool = True,
    ) -> Authorization:
        """Check that the tokens form one chain for exactly this change, then consume the
        final one (a scanned token; an explained token for a delete, or for a change whose
        scan the caller skipped where the operator allows it). With ``consume=False`` only
        check: the mutation checks before it locks, and consumes under the lock."""
        self._refuse_if_readonly(operation)
        principal = await self.token_principal()
        where = await self.region_for(region)
        skipped = operation != "delete" and not security_scan_token and skip_security_check
        if skipped and self.config.scanning_enabled:
            raise TokenError(
                f"skip_security_check is refused: the operator enabled {SCANNING_ENV}, so "
                f"every {operation} is scanned.",
                next_step="Call run_checkov(explained_token) and pass its security_scan_token "
                "(if it finds issues, the user may accept them with approve_security_findings).",
                check="skip_refused",
            )
        by_explanation = operation == "delete" or skipped
        final = explained_token if by_explanation else security_scan_token
        if not final:
            raise TokenError(
                f"{operation}_resource needs a security_scan_token from run_checkov.",
                next_step="Call run_checkov(explained_token) and pass its security_scan_token"
                + (
                    "."
                    if self.config.scanning_enabled
                    else f", or skip_security_check=True ({SCANNING_ENV} is disabled)."
                ),
                check="scan_missing",
            )
        if not by_explanation:
            await self._refuse_unaccepted_findings(final)
        await self._check_same_chain(final, credentials_token, explained_token, principal)
        check = self.tokens.consume if consume else self.tokens.validate
        record = await check(
            final,
            expected_type="explained" if by_explanation else "scanned",
            principal=principal,
            operation=operation,
            resource_type=resource_type,
            identifier=identifier,
            payload_digest=payload_digest(payload) if payload is not None else None,
            region=where,
        )
        if skipped:
            checkov = skipped_result(by_caller=True).checkov_results()
        else:
            checkov = record.checkov_results() or {
                "status": "NOT_APPLICABLE",
                "reason": "a delete has nothing to scan",
            }
        return Authorization(token=final, record=record, checkov_results=checkov, region=where)

    async def _refuse_unaccepted_findings(self, token: str) -> None:
        try:
            record = await self.tokens.inspect(token)
        except TokenError:
            return  # the full check below says what is wrong with it
        if record.type == "scan_findings":
            failed = record.scan.failed_ids if record.scan else []
            raise TokenError(
                "This security_scan_token is from a scan that FAILED ("
                + ", ".join(failed)
                + "): it authorizes nothing until the user accepts the findings.",
                next_step="Show the findings to the user. If they say proceed anyway, call "
                "approve_security_findings(security_scan_token, decision='proceed anyway', "
                "accepted_checks=[...], reason=...) and use the token it returns.",
                check="findings_not_accepted",
                failed_checks=failed,
            )

    async def _check_same_chain(
        self, final: str, credentials: str, explained: str, principal: TokenPrincipal
    ) -> None:
        chain = await self.tokens.chain(final)
        ancestors = {r.type: r.token_hash for r in chain}
        if chain[-1].type == "explained" and chain[-1].operation == "delete":
            # A delete explained from content has no credentials ancestor: the credentials
            # token given must still be a live one of this principal.
            await self.tokens.validate(
                credentials, expected_type="credentials", principal=principal
            )
            wanted: tuple[tuple[str, str], ...] = (("explained", explained),)
        else:
            wanted = (("credentials", credentials), ("explained", explained))
        for token_type, given in wanted:
            if not given or ancestors.get(token_type) != token_hash(given):
                raise TokenError(
                    f"The {token_type}_token given is not the one this change was prepared "
                    "and explained with: the tokens come from different chains.",
                    next_step="Pass the tokens of one chain: the credentials_token you gave "
                    "generate_infrastructure_code and the explained_token explain returned.",
                    check="wrong_chain",
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


def _settable(schema: ResourceSchema, properties: dict[str, Any]) -> dict[str, Any]:
    """What a caller could have written: read-only properties come back from AWS."""
    read_only = {p.strip("/") for p in schema.read_only if p.count("/") == 1}
    return {k: v for k, v in properties.items() if k not in read_only}


def _template(resource_type: str, properties: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Resource": {"Type": resource_type, "Properties": properties or {}}},
    }


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
            next_step="Call get_resource(resource_type, identifier) and pass its result as "
            'content, with operation="delete".',
            field="content",
        )
    region = found.get("region")
    return type_name, identifier, region if isinstance(region, str) and region else None


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
        "details": result.to_dict(),
        "message": result.message or result.summary(),
    }


def _decision(decision: str) -> str:
    key = re.sub(r"[\s-]+", "_", (decision or "").strip().lower())
    if key in PROCEED_DECISIONS:
        return "proceed"
    if key in STOP_DECISIONS:
        return "stop"
    raise InvalidInput(
        f"decision must be 'proceed anyway', 'fix' or 'cancel', not {decision!r}.",
        next_step="Ask the user how to proceed and pass their answer as decision.",
        field="decision",
    )


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
