"""The sandbox: moto and a Cloud Control endpoint on ONE port of 127.0.0.1.

Requests carrying ``X-Amz-Target: CloudApiService.*`` go to our Cloud Control implementation;
everything else goes to moto's own dispatcher in the same process, so one
``AWS_ENDPOINT_URL`` serves every boto3 client (s3, sts, dynamodb, kms, cloudcontrol, ...).
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from types import TracebackType
from typing import Any

from ccstate.sandbox import moto_speedups
from ccstate.sandbox.aws import forget_in_process, serve_in_process
from ccstate.sandbox.cloudcontrol import CloudControl
from ccstate.sandbox.keepalive import make_keepalive_server
from ccstate.sandbox.moto_server import moto_app
from ccstate.sandbox.wire import SandboxApp

log = logging.getLogger(__name__)

FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"  # noqa: S105 - moto accepts any credentials


class Sandbox:
    """``with Sandbox(latency_ms=0, port=0) as sb:`` then use ``sb.endpoint_url`` / ``sb.env()``.

    ``latency_ms`` delays every Cloud Control call; ``operation_ms`` makes each asynchronous
    create/update/delete stay IN_PROGRESS at least that long (to observe or cancel it).
    """

    def __init__(
        self,
        latency_ms: int = 0,
        port: int = 0,
        *,
        region: str = "us-east-1",
        operation_ms: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.latency_ms = latency_ms
        self.region = region
        self._port = port
        self._host = host
        self._operation_ms = operation_ms
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.cloudcontrol: CloudControl | None = None
        self.endpoint_url = ""

    def start(self) -> Sandbox:
        moto_speedups.apply()
        self.cloudcontrol = CloudControl(operation_ms=self._operation_ms)
        app = SandboxApp(
            self.cloudcontrol,
            moto_app(),
            latency_ms=self.latency_ms,
            default_region=self.region,
        )
        try:
            self._server = make_keepalive_server(self._host, self._port, app)
        except BaseException:
            self.cloudcontrol.close()
            self.cloudcontrol = None
            raise
        host, port = self._server.server_address[:2]
        self.endpoint_url = app.endpoint_url = f"http://{host}:{port}"
        serve_in_process(self.endpoint_url, app.moto_app)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ccstate-sandbox", daemon=True
        )
        self._thread.start()
        log.info("sandbox listening on %s (latency %d ms)", self.endpoint_url, self.latency_ms)
        return self

    def stop(self) -> None:
        forget_in_process(self.endpoint_url)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.cloudcontrol is not None:
            self.cloudcontrol.close()
            self.cloudcontrol = None

    def reset(self) -> None:
        """Forget every resource and every resource request."""
        url = f"{self.endpoint_url}/moto-api/reset"
        req = urllib.request.Request(url, method="POST")  # noqa: S310 - loopback only
        urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - loopback only
        if self.cloudcontrol is not None:
            self.cloudcontrol.requests.clear()

    def env(self) -> dict[str, str]:
        """Environment variables that point every AWS SDK and CLI at the sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        }

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
