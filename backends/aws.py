"""What every AWS adapter shares: sessions and clients, the retry policy, error translation,
and a request counter for benchmarks.

Credentials and endpoints come from the standard botocore chain: environment, AWS_PROFILE,
SSO, instance roles; ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` are resolved by
botocore itself (>= 1.31). When an endpoint is configured (LocalStack, moto) S3 uses path-style
addressing, which those servers need.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import aioboto3
import aiohttp
from aiobotocore import __version__ as aiobotocore_version
from aiobotocore.session import get_session
from botocore import __version__ as botocore_version
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.loaders import Loader, create_loader
from ccstate.service import errors, retry

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_ATTEMPTS = retry.TRANSIENT_ATTEMPTS
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "LimitExceededException",
        "TransactionInProgressException",
    }
)
# S3 answers 409 to a conditional write that raced another conditional write on the same key.
CONFLICT_RETRY_CODES = frozenset({"ConditionalRequestConflict", "OperationAborted"})
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "AuthFailure",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "TokenRefreshRequired",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "KMS.KMSInvalidStateException",
        "KMS.NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
        "KMS.UnrecognizedClientException",
    }
)
AWS_ERRORS = (ClientError, BotoCoreError, aiohttp.ClientError)
TRANSIENT_NETWORK_ERRORS = (
    aiohttp.ClientError,  # e.g. a connection dropped while a body streams in
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


# --------------------------------------------------------------------------- sessions, clients


def _package_version() -> str:
    try:
        return version("ccstate")
    except PackageNotFoundError:
        return "dev"


MAX_POOL_CONNECTIONS = 64
# A fixed User-Agent: botocore otherwise rebuilds its structured one twice per request, about a
# tenth of the client's CPU time per call in a drift scan.
USER_AGENT = (
    f"ccstate/{_package_version()} aiobotocore/{aiobotocore_version} "
    f"botocore/{botocore_version} Python/{platform.python_version()}"
)
# Services whose calls we always build well-formed ourselves: botocore's client-side parameter
# validation only repeats what the service checks anyway.
UNVALIDATED_SERVICES = frozenset({"cloudcontrol"})


def endpoint_configured(service: str, explicit: str | None = None) -> str | None:
    """The endpoint URL botocore will use for ``service`` when one is configured, else None."""
    if explicit:
        return explicit
    service_env = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_").replace(" ", "_")
    return os.environ.get(service_env) or os.environ.get("AWS_ENDPOINT_URL") or None


def client_config(service: str, endpoint_url: str | None = None) -> Config:
    """One attempt per botocore call: ``call_with_retry`` owns the retry policy."""
    options: dict[str, Any] = {
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
        "user_agent": USER_AGENT,
        "parameter_validation": service not in UNVALIDATED_SERVICES,
        # botocore's default pool of 10 would cap drift scans and concurrent commits at 10
        # requests in flight, whatever concurrency the caller asks for.
        "max_pool_connections": MAX_POOL_CONNECTIONS,
    }
    if service == "s3" and endpoint_configured("s3", endpoint_url):
        options["s3"] = {"addressing_style": "path"}
    return Config(**options)


@functools.cache
def _shared_loader() -> Loader:
    """Parsing service models costs ~0.1 s per client; one loader caches them per process."""
    return create_loader()


def env_region(region: str | None = None) -> str | None:
    """``region``, else ``AWS_REGION``, which the AWS SDKs and CLI v2 read before
    ``AWS_DEFAULT_REGION`` but botocore does not read at all; None leaves the choice to botocore
    (``AWS_DEFAULT_REGION``, then the profile)."""
    return region or os.environ.get("AWS_REGION") or None


def new_session(region: str | None = None) -> aioboto3.Session:
    """A session on the standard credential chain; AWS_PROFILE is honoured by botocore."""
    core = get_session()
    core.register_component("data_loader", _shared_loader())
    return aioboto3.Session(botocore_session=core, region_name=env_region(region))


async def open_client(
    stack: AsyncExitStack,
    session: aioboto3.Session,
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> Any:
    """Create an aiobotocore client whose lifetime is ``stack``'s."""
    kwargs: dict[str, Any] = {"config": client_config(service, endpoint_url)}
    region = region or session.region_name or env_region()
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    try:
        return await stack.enter_async_context(session.client(service, **kwargs))
    except NoRegionError as exc:
        raise errors.ConfigError(
            f"No AWS region is configured for {service}.",
            next_step="Set AWS_REGION, add region= to the backend URL, or configure a profile.",
        ) from exc


# --------------------------------------------------------------------------- retries


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and dropped connections; never a 4xx answer about our request."""
    if isinstance(exc, TRANSIENT_NETWORK_ERRORS):
        return True
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    return code in THROTTLING_CODES or code in CONFLICT_RETRY_CODES or http_status(exc) >= 500


async def call_with_retry(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    attempts: int = RETRY_ATTEMPTS,
    on_retry: Callable[[], None] | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn`` under the retry policy (``ccstate.service.retry``): bounded, jittered
    exponential backoff on throttling, 5xx and dropped connections only."""
    return await retry.call_transient(
        fn,
        *args,
        is_transient=is_retryable,
        attempts=attempts,
        on_retry=lambda state: _note_retry(state, on_retry),
        **kwargs,
    )


def _note_retry(state: Any, on_retry: Callable[[], None] | None) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("AWS call failed (%s); retry %d", exc, state.attempt_number)
    if on_retry:
        on_retry()


# --------------------------------------------------------------------------- error translation


def is_access_denied(exc: BaseException) -> bool:
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return True
    code = error_code(exc)
    return code in ACCESS_DENIED_CODES or (http_status(exc) == 403 and code != "")


def translate(
    exc: BaseException,
    *,
    what: str,
    iam_action: str,
    caller: str | None = None,
    kms_key: str | None = None,
) -> errors.CcstateError:
    """Turn a botocore error into the product's error, naming the resource and the fix.

    ``what`` names the object of the call ('s3://bucket/key', 'DynamoDB table t').
    """
    if isinstance(exc, errors.CcstateError):
        return exc
    if is_access_denied(exc):
        return access_denied(exc, what=what, iam_action=iam_action, caller=caller, kms_key=kms_key)
    detail = _aws_message(exc)
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in {"NoSuchBucket", "ResourceNotFoundException", "NoSuchTable"}:
            return errors.NotFound(
                f"{what} does not exist ({code}: {detail}).",
                next_step="Check the backend URL, or create the bucket and table with "
                "`ccstate backend bootstrap` (or deploy the template that "
                "`ccstate bootstrap --print-template` prints).",
                aws_code=code,
            )
        return errors.BackendError(
            f"AWS refused {iam_action} on {what}: {code}: {detail}",
            next_step="Check the request and the backend's configuration; the error code "
            "above is AWS's own.",
            aws_code=code,
        )
    if isinstance(exc, BotoCoreError | aiohttp.ClientError | OSError):
        return errors.BackendError(
            f"Could not reach AWS for {iam_action} on {what}: {exc}",
            next_step="Check network access, AWS_ENDPOINT_URL and the region; "
            "the call was retried with backoff before giving up.",
        )
    return errors.BackendError(f"{iam_action} on {what} failed: {exc}")


def access_denied(
    exc: BaseException,
    *,
    what: str,
    iam_action: str,
    caller: str | None,
    kms_key: str | None,
) -> errors.AccessDenied:
    code = error_code(exc) or type(exc).__name__
    who = caller or "the current AWS credentials"
    key_part = f" with KMS key {kms_key}" if kms_key else ""
    kms_hint = ""
    if code.startswith("KMS.") or code in {"DisabledException", "KMSInvalidStateException"}:
        kms_hint = (
            f" The KMS key {kms_key or '(bucket default)'} is disabled, pending deletion or "
            "denies this caller: enable it, or grant kms:GenerateDataKey and kms:Decrypt."
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        next_step = (
            "Configure AWS credentials (AWS_PROFILE, `aws sso login`, or the AWS_ACCESS_KEY_ID "
            "environment variables) and try again."
        )
    elif code in {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"}:
        next_step = "Your session has expired: refresh it (e.g. `aws sso login`) and try again."
    else:
        next_step = (
            f"Grant {who} the IAM permission {iam_action} on {what}{key_part} "
            "(`ccstate bootstrap --print-template` prints a template with a least-privilege "
            "policy), or use other credentials." + kms_hint
        )
    return errors.AccessDenied(
        f"AWS denied {iam_action} on {what}{key_part} for {who}: {code}: {_aws_message(exc)}",
        next_step=next_step,
        aws_code=code,
        iam_action=iam_action,
        resource=what,
        caller=caller,
        kms_key=kms_key,
    )


def _aws_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


class CallerLookup:
    """Best effort, cached: the ARN of the current credentials, to name them in errors."""

    def __init__(
        self,
        session: aioboto3.Session,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._arn: str | None = None
        self._looked_up = False

    async def __call__(self) -> str | None:
        if not self._looked_up:
            self._looked_up = True
            self._arn = await self._lookup()
        return self._arn

    async def _lookup(self) -> str | None:
        try:
            async with AsyncExitStack() as stack:
                sts = await open_client(
                    stack,
                    self._session,
                    "sts",
                    region=self._region,
                    endpoint_url=self._endpoint_url,
                )
                ident = await sts.get_caller_identity()
                return str(ident["Arn"])
        except Exception:  # only enriches an error message
            return None


async def translate_with_caller(
    exc: BaseException,
    whoami: Callable[[], Awaitable[str | None]] | None,
    *,
    what: str,
    iam_action: str,
    kms_key: str | None = None,
) -> errors.CcstateError:
    """``translate``, naming the caller's ARN when access was denied and it can be found."""
    caller = await whoami() if whoami is not None and is_access_denied(exc) else None
    return translate(exc, what=what, iam_action=iam_action, caller=caller, kms_key=kms_key)


# --------------------------------------------------------------------------- request counting


class RequestCounter:
    """Counts HTTP requests sent by aiobotocore clients (retries included), per operation.

    ``counter.attach(client)`` registers a ``before-send`` hook; ``attach_backend(backend)``
    finds the clients of an opened backend. ``counts`` maps 's3.PutObject' to a number;
    ``calls`` lists the same names in the order the requests were sent.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.calls: list[str] = []
        self._attached: list[Any] = []

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()
        self.calls.clear()

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def attach(self, *clients: Any) -> RequestCounter:
        for client in clients:
            if any(client is seen for seen in self._attached):
                continue
            client.meta.events.register("before-send.*.*", self._on_send)
            self._attached.append(client)
        return self

    def attach_backend(self, backend: Any) -> RequestCounter:
        for part in (backend.objects, backend.locks):
            clients = getattr(part, "aws_clients", None)
            if callable(clients):
                self.attach(*clients())
        return self

    def detach(self) -> None:
        for client in self._attached:
            client.meta.events.unregister("before-send.*.*", self._on_send)
        self._attached.clear()

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        # event_name is 'before-send.<service-id>.<Operation>'
        _, service, operation = [*event_name.split(".", 2), "", ""][:3]
        self.counts[f"{service}.{operation}"] += 1
        self.calls.append(f"{service}.{operation}")
