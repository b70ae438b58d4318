"""Fixtures shared by every test layer.

AWS-facing tests run against ``AWS_ENDPOINT_URL`` when it is set (LocalStack, real AWS), and
otherwise against a moto server started here on 127.0.0.1 over real HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test ever reads or writes the real ~/.aws/ccapi-mcp-server, the real cache or real
    credentials."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CCSTATE_BACKEND", raising=False)
    monkeypatch.delenv("CCSTATE_WORKSPACE", raising=False)
    monkeypatch.delenv("CCSTATE_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # the stdio memo: under HOME, not yours
    if not os.environ.get("CCSTATE_TEST_REAL_AWS"):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield home


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """An AWS endpoint URL: the user's AWS_ENDPOINT_URL, or a moto server on a free port."""
    given = os.environ.get("AWS_ENDPOINT_URL")
    if given:
        yield given
        return
    from ccstate.sandbox.moto_server import start_moto

    server = start_moto(separate_process=True)
    try:
        yield server.url
    finally:
        server.stop()
