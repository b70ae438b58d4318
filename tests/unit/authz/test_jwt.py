"""JwtVerifier against a JWKS served over real HTTP on 127.0.0.1 (an identity provider's
keys endpoint): who the person is, their role, and why a token is refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from ccstate.mcp_server.auth import JwtSettings, JwtVerifier, principal_from
from ccstate.mcp_server.metrics import Metrics
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER, AUDIENCE = "https://idp.example.test", "https://ccstate.example.test/mcp"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/keys"
    server.shutdown()


def token(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "iat": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})


async def test_a_valid_jwt_names_the_person_and_the_highest_role(jwks_url: str) -> None:
    verifier = JwtVerifier(
        JwtSettings(ISSUER, AUDIENCE, jwks_url=jwks_url, user_claim="email"), Metrics()
    )

    access = await verifier.verify_token(
        token(scope="ccstate ccstate:viewer ccstate:approver", email="ivy@example.test")
    )

    assert access is not None and access.subject == "u-1"
    principal = principal_from(access)
    assert (principal.person, principal.role, principal.established) == (
        "ivy@example.test",
        "approver",
        "authenticated",
    )


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://other.example.test/mcp"}, "wrong audience"),
        ({"iss": "https://evil.example.test"}, "wrong issuer"),
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"sub": None}, "missing claim"),
    ],
)
async def test_a_refused_jwt_is_counted_with_its_reason(
    jwks_url: str, claims: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    verifier = JwtVerifier(JwtSettings(ISSUER, AUDIENCE, jwks_url=jwks_url), metrics)
    body = {k: v for k, v in claims.items() if v is not None}
    presented = token(**body) if claims.get("sub", "") is not None else _without_sub()

    assert await verifier.verify_token(presented) is None
    refusals = metrics.registry.get_sample_value("ccstate_token_refusals_total", {"reason": reason})
    assert refusals == 1
    assert f"why={reason}" in caplog.text
    assert presented not in caplog.text


def _without_sub() -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})
