"""Start a moto server on 127.0.0.1: in this process (a thread) or as a separate OS process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


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
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
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

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return MotoServer(url=f"http://{host}:{bound}", _stop=server.stop)


@contextlib.contextmanager
def running_moto(*, separate_process: bool = False) -> Iterator[MotoServer]:
    server = start_moto(separate_process=separate_process)
    try:
        yield server
    finally:
        server.stop()
