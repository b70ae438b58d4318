"""State tools that rewrite the state take the same locks as the CLI and the mutations."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccstate.backends.local_locks import LocalLockManager
from ccstate.service.ports import LockScope

from tests.system.mcp.conftest import ServerFactory


def test_restore_waits_for_the_workspace_lock_and_names_its_holder(
    start_server: ServerFactory, module_dir: Path
) -> None:
    backend = module_dir / "locked"
    backend.mkdir(mode=0o700)
    server = start_server(backend, name="locks", CCSTATE_LOCK_TIMEOUT="1")
    locks = LocalLockManager(backend)
    held = asyncio.run(
        locks.acquire(
            LockScope("default"),
            operation="ccstate state push",
            who="carol@laptop",
            lease_seconds=60,
            timeout=5,
        )
    )
    refused = server.call("restore_state_version", serial=0, user_intent="test")
    assert refused.error == "lock_timeout", refused.data
    assert "carol@laptop" in refused.data["message"]
    assert server.call("list_state_versions").data["head"] == 0

    asyncio.run(locks.release(held))
    restored = server.call("restore_state_version", serial=0, user_intent="test")
    assert restored.ok, restored.data
    assert asyncio.run(locks.list_locks("default")) == []
