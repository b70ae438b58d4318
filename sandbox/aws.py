"""boto3 clients the resource handlers use: against the sandbox's own endpoint (moto behind it),
in the caller's region and with the caller's access key, so the caller sees what we created."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from ccstate.sandbox.inprocess import InProcessMoto

_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=64)
# In-process calls are not signed: the hook writes the credential scope moto reads.
_IN_PROCESS_CONFIG = _CONFIG.merge(Config(signature_version=UNSIGNED))
_clients: dict[tuple[str, str, str, str], Any] = {}
# endpoint URL -> the moto serving it in this process (handler calls skip the socket)
_local_motos: dict[str, InProcessMoto] = {}
_accounts: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class AwsContext:
    endpoint_url: str
    region: str = "us-east-1"
    access_key: str = "testing"

    def client(self, service: str) -> Any:
        key = (self.endpoint_url, service, self.region, self.access_key)
        found = _clients.get(key)  # every GetResource asks: no lock once the client exists
        if found is not None:
            return found
        with _lock:  # boto3 client creation is not thread-safe; the clients themselves are
            if key not in _clients:
                _clients[key] = self._new_client(service, _local_motos.get(self.endpoint_url))
            return _clients[key]

    def _new_client(self, service: str, moto: InProcessMoto | None) -> Any:
        client = boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key="sandbox",  # noqa: S106 - moto does not check
            config=_CONFIG if moto is None else _IN_PROCESS_CONFIG,
        )
        if moto is not None:
            signing_name = client.meta.service_model.signing_name
            hook = moto.hook(service=signing_name, region=self.region, access_key=self.access_key)
            client.meta.events.register("before-send", hook)
            _fixed_user_agent(client)
        return client

    def moto_backend(self, backends: Any) -> Any | None:
        """moto's backend in ``backends`` (e.g. ``moto.sqs.models.sqs_backends``) that this
        context's calls reach, for a handler to read directly; None unless this process's moto
        serves the endpoint and may be read so (``InProcessMoto.backend``)."""
        moto = _local_motos.get(self.endpoint_url)
        if moto is None:
            return None
        return moto.backend(backends, region=self.region, access_key=self.access_key)

    @property
    def account_id(self) -> str:
        key = (self.endpoint_url, self.access_key)
        if key not in _accounts:
            _accounts[key] = self.client("sts").get_caller_identity()["Account"]
        return _accounts[key]

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:aws:{service}:{where}:{self.account_id}:{resource}"


def serve_in_process(endpoint_url: str, moto_app: Any) -> None:
    """Send handler calls for ``endpoint_url`` straight to ``moto_app`` (same moto, no
    socket): see ``sandbox.inprocess``."""
    with _lock:
        _local_motos[endpoint_url] = InProcessMoto(moto_app)


def forget_in_process(endpoint_url: str) -> None:
    with _lock:
        _local_motos.pop(endpoint_url, None)
        for key in [k for k in _clients if k[0] == endpoint_url]:
            del _clients[key]


def _fixed_user_agent(client: Any) -> None:
    """botocore renders the User-Agent string twice per request (a tenth of an in-process
    call's CPU); nothing reads it in-process, so the client keeps the one it started with."""
    creator = getattr(client, "_user_agent_creator", None)
    if creator is not None:
        rendered = creator.to_string()
        creator.to_string = lambda: rendered


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
