"""TLS with --certfile/--keyfile, and --no-auth on loopback (warned), over real HTTP(S)."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.system.mcp.harness import server_env
from tests.system.team.harness import ServerProcess, initialize, mcp_client, run

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing here asks AWS
}


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyfile.chmod(0o600)
    return certfile, keyfile


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.stop()


def test_tls_serves_https_and_the_challenge_names_the_https_metadata(
    tmp_path: Path, started: list[ServerProcess]
) -> None:
    certfile, keyfile = self_signed(tmp_path)
    server = ServerProcess(
        [
            "--certfile",
            str(certfile),
            "--keyfile",
            str(keyfile),
            "--backend",
            (tmp_path / "state").as_uri(),
        ],
        server_env(FAKE_AWS, tmp_path),
        tmp_path / "tls.log",
    )
    started.append(server)
    base = f"https://127.0.0.1:{server.port}"
    for _ in range(300):
        try:
            health = httpx2.get(base + "/healthz", verify=str(certfile), timeout=2)
            break
        except httpx2.TransportError:
            assert server.process.poll() is None, server.log()
            time.sleep(0.2)
    refused = httpx2.post(base + "/mcp", json=initialize(), verify=str(certfile))

    assert health.status_code == 200
    assert refused.status_code == 401
    assert (
        f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
        in refused.headers["www-authenticate"]
    )
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)


def test_no_auth_on_loopback_serves_everyone_and_says_so(
    tmp_path: Path, started: list[ServerProcess]
) -> None:
    server = ServerProcess(
        ["--no-auth", "--backend", (tmp_path / "state").as_uri()],
        server_env(FAKE_AWS, tmp_path),
        tmp_path / "noauth.log",
    )
    started.append(server.wait_ready())

    async def tools() -> list[str]:
        async with mcp_client(server.url, None) as client:
            return [t.name for t in (await client.list_tools()).tools]

    assert "create_resource" in run(tools())
    assert "authentication is OFF (--no-auth)" in server.log()
