"""boto3 clients the resource handlers use: against the sandbox's own endpoint (moto behind it),
in the caller's region and with the caller's access key, so the caller sees what we created."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=64)
_clients: dict[tuple[str, str, str, str], Any] = {}
# endpoint URL -> the WSGI app serving it in this process (handler calls skip the socket)
_local_apps: dict[str, Any] = {}
_accounts: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class AwsContext:
    endpoint_url: str
    region: str = "us-east-1"
    access_key: str = "testing"

    def client(self, service: str) -> Any:
        key = (self.endpoint_url, service, self.region, self.access_key)
        with _lock:  # boto3 client creation is not thread-safe; the clients themselves are
            if key not in _clients:
                _clients[key] = boto3.session.Session().client(
                    service,
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key="sandbox",  # noqa: S106 - moto does not check
                    config=_CONFIG,
                )
                app = _local_apps.get(self.endpoint_url)
                if app is not None:
                    _clients[key].meta.events.register("before-send", _in_process(app))
            return _clients[key]

    @property
    def account_id(self) -> str:
        key = (self.endpoint_url, self.access_key)
        if key not in _accounts:
            _accounts[key] = self.client("sts").get_caller_identity()["Account"]
        return _accounts[key]

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:aws:{service}:{where}:{self.account_id}:{resource}"


def serve_in_process(endpoint_url: str, app: Any) -> None:
    """Send handler calls for ``endpoint_url`` straight to ``app`` (same moto, no socket)."""
    with _lock:
        _local_apps[endpoint_url] = app


def forget_in_process(endpoint_url: str) -> None:
    with _lock:
        _local_apps.pop(endpoint_url, None)
        for key in [k for k in _clients if k[0] == endpoint_url]:
            del _clients[key]


class _RawBody(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _in_process(app: Any) -> Callable[..., AWSResponse]:
    """A botocore ``before-send`` hook that answers from the WSGI app instead of HTTP."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    def send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        environ = EnvironBuilder(
            path=url.path,
            query_string=url.query,
            method=request.method,
            headers=[
                (k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
            ],
            data=body or b"",
            base_url=f"{url.scheme}://{url.netloc}",
        ).get_environ()
        chunks, status, headers = run_wsgi_app(app, environ, buffered=True)
        payload = b"".join(chunks)
        return AWSResponse(request.url, int(status.split()[0]), dict(headers), _RawBody(payload))

    return send


def context_from_authorization(endpoint_url: str, header: str, default_region: str) -> AwsContext:
    """Region and access key from a SigV4 ``Authorization`` header's credential scope."""
    marker = "Credential="
    if marker not in header:
        return AwsContext(endpoint_url, default_region)
    scope = header.split(marker, 1)[1].split(",", 1)[0].split("/")
    access_key = scope[0] or "testing"
    region = scope[2] if len(scope) > 2 and scope[2] else default_region
    return AwsContext(endpoint_url, region, access_key)


def scope_service(header: str) -> str:
    """The service of a SigV4 credential scope ('s3', 'cloudformation', ...), or ''."""
    marker = "Credential="
    if marker not in header:
        return ""
    scope = header.split(marker, 1)[1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else ""
