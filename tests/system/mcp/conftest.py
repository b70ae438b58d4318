"""Fixtures: one sandbox and one `ccstate serve` process per test module, over real stdio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.sandbox import Sandbox

from tests.system.mcp.harness import McpSession, server_env

ServerFactory = Callable[..., McpSession]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp")


@pytest.fixture(scope="module")
def backend_dir(module_dir: Path) -> Path:
    path = module_dir / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(scope="module")
def start_server(sandbox: Sandbox, module_dir: Path) -> Iterator[ServerFactory]:
    """Start `ccstate serve` processes on the module's sandbox; all are stopped at the end."""
    started: list[McpSession] = []

    def start(backend: Path, *extra_args: str, name: str = "server", **env: str) -> McpSession:
        home = module_dir / f"home-{name}"
        home.mkdir(exist_ok=True)
        args = ["--sandbox-endpoint", sandbox.endpoint_url, "--backend", backend.as_uri()]
        session = McpSession(
            [*args, *extra_args],
            server_env(sandbox.env(), home, **env),
            stderr_path=module_dir / f"{name}.stderr.log",
        )
        started.append(session)
        return session.start()

    yield start
    for session in started:
        session.close()


@pytest.fixture(scope="module")
def server(start_server: ServerFactory, backend_dir: Path) -> McpSession:
    return start_server(backend_dir)


def held_locks(backend_dir: Path) -> list[object]:
    """Locks still held in a local backend (read with the real lock manager)."""
    import asyncio

    return asyncio.run(LocalLockManager(backend_dir).list_locks())
