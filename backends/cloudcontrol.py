"""CloudProvider on the real Cloud Control API (aioboto3), plus STS for who we are.

The same code runs against AWS, LocalStack or the sandbox: botocore resolves
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_CLOUDCONTROL`` and ``AWS_PROFILE`` itself; the region
is the one given, else ``AWS_REGION``, else the profile's. One cloudcontrol and one sts client per
provider, opened on first use and closed by ``close()``. ``for_region(r)`` is the provider of
another region: one per region, sharing the credentials, closed with this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import aioboto3
from botocore import xform_name
from botocore.exceptions import ClientError
from ccstate.backends.aws import (
    AWS_ERRORS,
    call_with_retry,
    env_region,
    error_code,
    is_access_denied,
    new_session,
    open_client,
    translate,
)
from ccstate.service import errors, retry
from ccstate.service.ports import CallerIdentity, ProgressEvent, ResourceDescription, ResourcePage
from tenacity import RetryCallState

log = logging.getLogger(__name__)

INVALID_INPUT_CODES = frozenset(
    {
        "TypeNotFoundException",
        "UnsupportedActionException",
        "ValidationException",
        "InvalidRequestException",
        "GeneralServiceException",
        "AlreadyExistsException",
        "ClientTokenConflictException",
        "ConcurrentOperationException",
        "ResourceConflictException",
    }
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "RequestTokenNotFoundException"})
FIRST_POLL = 0.2
MAX_POLL = 5.0


class CloudControlProvider:
    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
    ) -> None:
        self._region = region or os.environ.get("AWS_REGION") or None
        self._endpoint_url = endpoint_url
        self._profile = profile
        self._stack: AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._opening = asyncio.Lock()
        self._identity: CallerIdentity | None = None
        self._session_obj: Any = None
        self._regions: dict[str, CloudControlProvider] = {}

    @property
    def region(self) -> str | None:
        return self._region

    def for_region(self, region: str | None) -> CloudControlProvider:
        """The provider for ``region`` (this one when None or the same): a client per region."""
        if not region or region == self._region:
            return self
        other = self._regions.get(region)
        if other is None:
            other = CloudControlProvider(
                region=region, endpoint_url=self._endpoint_url, profile=self._profile
            )
            other._session_obj = self._session_obj
            self._regions[region] = other
        return other

    async def client(self, service: str) -> Any:
        """This provider's client of another service (e.g. cloudformation), same region."""
        return await self._client(service)

    # ----------------------------------------------------------------------- lifecycle

    async def _client(self, service: str) -> Any:
        if service in self._clients:
            return self._clients[service]
        async with self._opening:
            if service not in self._clients:
                if self._stack is None:
                    self._stack = AsyncExitStack()
                session = self._session()
                self._clients[service] = await open_client(
                    self._stack,
                    session,
                    service,
                    region=self._region or session.region_name or env_region() or "us-east-1",
                    endpoint_url=self._endpoint_url,
                )
        return self._clients[service]

    def _session(self) -> Any:
        if self._session_obj is None:
            self._session_obj = (
                aioboto3.Session(profile_name=self._profile, region_name=env_region(self._region))
                if self._profile
                else new_session(self._region)
            )
        return self._session_obj

    async def close(self) -> None:
        for other in self._regions.values():
            await other.close()
        self._regions.clear()
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._clients.clear()

    async def __aenter__(self) -> CloudControlProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------- identity

    async def caller_identity(self) -> CallerIdentity:
        sts = await self._client("sts")
        try:
            ident = await call_with_retry(sts.get_caller_identity)
        except AWS_ERRORS as exc:
            raise translate(
                exc, what="the current AWS credentials", iam_action="sts:GetCallerIdentity"
            ) from exc
        self._identity = CallerIdentity(
            account=str(ident["Account"]),
            arn=str(ident["Arn"]),
            user_id=str(ident["UserId"]),
            region=sts.meta.region_name,
            credential_source=await self._credential_source(),
        )
        return self._identity

    async def _credential_source(self) -> str:
        if self._profile or os.environ.get("AWS_PROFILE"):
            return f"profile:{self._profile or os.environ['AWS_PROFILE']}"
        try:
            creds = await self._session().get_credentials()
        except AWS_ERRORS:
            return ""
        return str(getattr(creds, "method", "") or "")

    # ----------------------------------------------------------------------- mutations

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, client_token: str
    ) -> ProgressEvent:
        answer = await self._call(
            "CreateResource",
            f"a new {type_name}",
            TypeName=type_name,
            DesiredState=json.dumps(desired_state),
            ClientToken=client_token,
        )
        return progress_event(answer["ProgressEvent"])

    async def update_resource(
        self,
        type_name: str,
        identifier: str,
        patch_document: list[dict[str, Any]],
        *,
        client_token: str,
    ) -> ProgressEvent:
        answer = await self._call(
            "UpdateResource",
            f"{type_name} '{identifier}'",
            TypeName=type_name,
            Identifier=identifier,
            PatchDocument=json.dumps(patch_document),
            ClientToken=client_token,
        )
        return progress_event(answer["ProgressEvent"])

    async def delete_resource(
        self, type_name: str, identifier: str, *, client_token: str
    ) -> ProgressEvent:
        answer = await self._call(
            "DeleteResource",
            f"{type_name} '{identifier}'",
            TypeName=type_name,
            Identifier=identifier,
            ClientToken=client_token,
        )
        return progress_event(answer["ProgressEvent"])

    # ----------------------------------------------------------------------- reads

    async def get_resource(self, type_name: str, identifier: str) -> ResourceDescription:
        answer = await self._call(
            "GetResource",
            f"{type_name} '{identifier}'",
            TypeName=type_name,
            Identifier=identifier,
        )
        return resource_description(type_name, answer["ResourceDescription"])

    async def list_resources(
        self, type_name: str, *, next_token: str | None = None, max_results: int | None = None
    ) -> ResourcePage:
        params: dict[str, Any] = {"TypeName": type_name}
        if next_token:
            params["NextToken"] = next_token
        if max_results:
            params["MaxResults"] = max_results
        answer = await self._call("ListResources", f"{type_name} resources", **params)
        return ResourcePage(
            resources=[
                resource_description(type_name, item)
                for item in answer.get("ResourceDescriptions", [])
            ],
            next_token=answer.get("NextToken"),
        )

    async def get_request_status(self, request_token: str) -> ProgressEvent:
        answer = await self._call(
            "GetResourceRequestStatus",
            f"request {request_token}",
            RequestToken=request_token,
        )
        return progress_event(answer["ProgressEvent"])

    async def list_resource_requests(self, operation: str) -> list[ProgressEvent]:
        client = await self._client("cloudcontrol")
        paginator = client.get_paginator("list_resource_requests")
        pages = paginator.paginate(ResourceRequestStatusFilter={"Operations": [operation]})
        events: list[ProgressEvent] = []
        try:
            async for page in pages:
                events += [progress_event(raw) for raw in page["ResourceRequestStatusSummaries"]]
        except AWS_ERRORS as exc:
            what = f"{operation} requests"
            raise await self._translate(exc, "ListResourceRequests", what) from exc
        return events

    async def wait_for_request(self, request_token: str, *, timeout: float) -> ProgressEvent:
        """Poll with backoff (honouring RetryAfter) until terminal or ``timeout`` seconds."""
        event = await retry.poll(
            lambda: self.get_request_status(request_token),
            done=lambda event: event.is_terminal,
            timeout=timeout,
            wait=_poll_wait,
        )
        if not event.is_terminal:
            log.warning(
                "request %s still %s after %.0f s", request_token, event.operation_status, timeout
            )
        return event

    # ----------------------------------------------------------------------- plumbing

    async def _call(self, operation: str, what: str, **params: Any) -> dict[str, Any]:
        client = await self._client("cloudcontrol")
        method = getattr(client, xform_name(operation))
        try:
            return dict(await call_with_retry(method, **params))
        except AWS_ERRORS as exc:
            raise await self._translate(exc, operation, what) from exc

    async def _translate(
        self, exc: BaseException, operation: str, what: str
    ) -> errors.CcstateError:
        code = error_code(exc)
        message = _aws_message(exc)
        if code in NOT_FOUND_CODES:
            return errors.NotFound(
                f"{what} does not exist ({code}: {message}).",
                next_step="Check the type name and identifier (list_resources shows what "
                "exists); if it was deleted out of band, remove it from the state with "
                "`ccstate state rm ID --reason ...`.",
                aws_code=code,
            )
        if code in INVALID_INPUT_CODES:
            return errors.InvalidInput(
                f"Cloud Control refused {operation} on {what}: {code}: {message}",
                next_step=_fix_for(code),
                aws_code=code,
            )
        if is_access_denied(exc):
            return access_denied(exc, operation, what, await self._known_caller())
        return translate(exc, what=what, iam_action=f"cloudformation:{operation}")

    async def _known_caller(self) -> str | None:
        """The caller's ARN to name in an access-denied message, best effort."""
        if self._identity is None:
            with contextlib.suppress(errors.CcstateError, *AWS_ERRORS):
                await self.caller_identity()
        return self._identity.arn if self._identity else None


def access_denied(
    exc: BaseException, operation: str, what: str, caller: str | None
) -> errors.AccessDenied:
    code = error_code(exc) or type(exc).__name__
    who = caller or "the current AWS credentials"
    action = f"cloudformation:{operation}"
    if code in {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"}:
        next_step = "Your AWS session has expired: refresh it (e.g. `aws sso login`) and retry."
    elif code in {"UnrecognizedClientException", "InvalidClientTokenId"}:
        next_step = (
            "AWS does not recognise these credentials: check AWS_PROFILE / AWS_ACCESS_KEY_ID "
            "and the region, then call check_environment_variables again."
        )
    else:
        next_step = (
            f"Grant {who} {action} and the resource type's own permissions (for example "
            "s3:CreateBucket for AWS::S3::Bucket), or use other credentials."
        )
    return errors.AccessDenied(
        f"AWS denied {action} on {what} for {who}: {code}: {_aws_message(exc)}",
        next_step=next_step,
        aws_code=code,
        iam_action=action,
        resource=what,
        caller=caller,
    )


def _fix_for(code: str) -> str:
    if code == "TypeNotFoundException":
        return "Check the resource type name, e.g. 'AWS::S3::Bucket' (case matters)."
    if code == "UnsupportedActionException":
        return "This resource type does not support that action through Cloud Control."
    if code in {"AlreadyExistsException", "ResourceConflictException"}:
        return "Pick another name, or import the existing resource instead of creating it."
    if code in {"ConcurrentOperationException", "ClientTokenConflictException"}:
        return "Another operation on this resource is running: wait for it, then retry."
    return "Fix the properties or patch as the message says, then generate the code again."


def _aws_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


_POLL_BACKOFF = retry.growing(FIRST_POLL, MAX_POLL, factor=1.6)


def _poll_wait(state: RetryCallState) -> float:
    """The backoff, or longer when the last answer said to retry after a given time."""
    backoff = _POLL_BACKOFF(state)
    event = state.outcome.result() if state.outcome else None
    if event is None or event.retry_after is None:
        return backoff
    until = (event.retry_after - datetime.now(UTC)).total_seconds()
    return max(backoff, min(until, MAX_POLL * 6))


def parse_properties(raw: Any) -> dict[str, Any]:
    """Cloud Control returns resource models as JSON strings; we use dicts."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise errors.BackendError(
            f"Cloud Control returned a resource model that is not JSON: {str(raw)[:80]!r}.",
            next_step="Retry; if it persists, the endpoint is not a Cloud Control API.",
        ) from exc
    if not isinstance(parsed, dict):
        raise errors.BackendError("Cloud Control returned a resource model that is not an object.")
    return parsed


def resource_description(type_name: str, raw: dict[str, Any]) -> ResourceDescription:
    return ResourceDescription(
        type_name=str(raw.get("TypeName") or type_name),
        identifier=str(raw["Identifier"]),
        properties=parse_properties(raw.get("Properties")),
    )


def progress_event(raw: dict[str, Any]) -> ProgressEvent:
    model = raw.get("ResourceModel")
    return ProgressEvent(
        request_token=str(raw["RequestToken"]),
        operation=str(raw.get("Operation", "")),
        operation_status=str(raw.get("OperationStatus", "")),
        type_name=str(raw.get("TypeName", "")),
        identifier=raw.get("Identifier"),
        status_message=raw.get("StatusMessage"),
        error_code=raw.get("ErrorCode"),
        resource_model=parse_properties(model) if model else None,
        event_time=_as_datetime(raw.get("EventTime")),
        retry_after=_as_datetime(raw.get("RetryAfter")),
    )


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)
