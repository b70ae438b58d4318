"""A `ccstate serve --transport http` process, bearer tokens and JWTs for it, and MCP clients.

The server runs as a real process on 127.0.0.1 against the sandbox; clients are the SDK's
streamable HTTP client (with an Authorization header) and plain HTTP for status codes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[3]
ISSUER = "https://idp.example.test"
AUDIENCE = "ccstate-team"
ACCEPT = "application/json, text/event-stream"
PROTOCOL = "2025-06-18"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Issuer:
    """An identity provider: an RSA key, its JWKS file, and JWTs signed with it."""

    key: rsa.RSAPrivateKey
    jwks_file: Path
    kid: str = "test-key"

    @classmethod
    def create(cls, directory: Path) -> Issuer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": "test-key", "use": "sig", "alg": "RS256"})
        path = directory / "jwks.json"
        path.write_text(json.dumps({"keys": [public]}))
        return cls(key, path)

    def token(self, sub: str, *, scope: str = "ccstate ccstate:viewer", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "scope": scope,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


class ServerProcess:
    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccstate",
                "serve",
                "--transport",
                "http",
                "--port",
                str(self.port),
                *args,
            ],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/mcp"

    def wait_ready(self, timeout: float = 60) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx2.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /healthz:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def post(url: str, token: str | None, body: Any, session: str | None = None) -> httpx2.Response:
    """One JSON-RPC POST to /mcp, as any HTTP client would send it."""
    headers = {"accept": ACCEPT, "content-type": "application/json"}
    headers["mcp-protocol-version"] = PROTOCOL
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if session is not None:
        headers["mcp-session-id"] = session
    return httpx2.post(url, headers=headers, json=body, timeout=30)


def initialize(id_: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }


@asynccontextmanager
async def mcp_client(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def structured(result: Any) -> dict[str, Any]:
    data = result.structured_content
    if data is None:
        data = json.loads("".join(getattr(c, "text", "") for c in result.content))
    return data


def run(coro: Any) -> Any:
    return asyncio.run(coro)
