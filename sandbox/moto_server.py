"""Start a moto server on 127.0.0.1: in this process (a thread) or as a separate OS process.

moto checks S3's ``If-None-Match``/``If-Match`` and DynamoDB's condition expressions and then
writes, without a lock: two threads of its server can both pass the check. Real S3 and DynamoDB
make the check and the write one atomic step, and the state store depends on that. So every
moto we start serves through ``AtomicConditionalWrites``, which runs conditional writes one at a
time; everything else stays concurrent.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class AtomicConditionalWrites:
    """WSGI middleware: conditional S3 writes and DynamoDB writes run one at a time."""

    DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.needs_lock(environ):
            return self.app(environ, start_response)
        with self._lock:
            return list(self.app(environ, start_response))

    def needs_lock(self, environ: dict[str, Any]) -> bool:
        if environ.get("HTTP_IF_NONE_MATCH") or environ.get("HTTP_IF_MATCH"):
            return environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return target.startswith("DynamoDB_") and target.endswith(self.DYNAMODB_WRITES)


def moto_app() -> Any:
    """moto's per-host dispatcher, remembering which backend serves which host, behind
    ``AtomicConditionalWrites``.

    moto works the backend out by listing its package directories on every request; caching
    the answer (a pure function of the host name) roughly halves the CPU time of a moto call.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class CachingDispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return AtomicConditionalWrites(CachingDispatcher())


def make_moto_server(host: str, port: int, app: Any | None = None) -> Any:
    """Threaded, and keeping connections open as AWS endpoints do (``sandbox/keepalive.py``)."""
    from ccstate.sandbox.keepalive import make_keepalive_server

    return make_keepalive_server(host, port, app or moto_app())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    url: str
    _stop: Any = field(repr=False)

    def stop(self) -> None:
        self._stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - loopback only


def _wait_until_up(url: str, deadline: float) -> None:
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()  # noqa: S310
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_moto(*, port: int = 0, separate_process: bool = False) -> MotoServer:
    """Start moto on 127.0.0.1; ``port=0`` picks a free one."""
    if separate_process:
        port = port or free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccstate.sandbox.moto_server", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, time.monotonic() + 30)
        except OSError:
            proc.kill()
            raise

        def stop_process() -> None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()

        return MotoServer(url=url, _stop=stop_process)

    server = make_moto_server("127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    host, bound = server.server_address[:2]

    def stop_thread() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return MotoServer(url=f"http://{host}:{bound}", _stop=stop_thread)


@contextlib.contextmanager
def running_moto(*, separate_process: bool = False) -> Iterator[MotoServer]:
    server = start_moto(separate_process=separate_process)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    make_moto_server("127.0.0.1", int(sys.argv[1])).serve_forever()
