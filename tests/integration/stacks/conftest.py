"""The stack tests' world: a sandbox per module and the stack use cases wired as the CLI wires
them (``ccstate.app.open_stacks``), on a state directory of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from ccstate.sandbox import Sandbox

from ccstate.app import ServerOptions, StackParts, open_stacks


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
async def parts(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StackParts]:
    env = {
        **sandbox.env(),
        "SECURITY_SCANNING": "disabled",
        "CCSTATE_BACKEND": (tmp_path / "state").as_uri(),
        "HOME": str(tmp_path),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    async with open_stacks(ServerOptions(env=env, lock_timeout=5)) as opened:
        yield opened
