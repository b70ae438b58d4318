"""`ccstate serve --transport http`: the same tools over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.client import Client

from tests.system.mcp.harness import server_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    backend = tmp_path / "state"
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccstate",
            "serve",
            "--sandbox",
            "--transport",
            "http",
            "--no-auth",  # loopback only; the team server's auth: tests/system/team
            "--port",
            str(port),
            "--backend",
            backend.as_uri(),
        ],
        env=server_env({}, tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(Path(__file__).resolve().parents[3]),
    )
    try:
        _wait_until_listening(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not listen within 30 s")


def test_the_tools_answer_over_streamable_http(http_server: str) -> None:
    async def session() -> tuple[list[str], dict[str, object]]:
        async with Client(http_server) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            info = await client.call_tool("get_aws_session_info", {})
            return tools, info.structured_content or {}

    tools, info = asyncio.run(session())

    assert "create_resource" in tools
    assert str(info["arn"]).startswith("arn:aws:")
    assert info["credentials_token"]
