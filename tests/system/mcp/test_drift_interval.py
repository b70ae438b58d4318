"""`ccstate serve --drift-interval` checks every managed resource on a schedule and records it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

from tests.system.mcp.conftest import ServerFactory


def _record_a_bucket_that_aws_does_not_have(backend: Path) -> None:
    change = ResourceChange(
        identifier="ghost-bucket-drift-interval",
        resource_type="AWS::S3::Bucket",
        operation="import",
        properties_after={"BucketName": "ghost-bucket-drift-interval"},
    )
    store = StateStore(LocalObjectStore(backend))
    asyncio.run(store.commit([change], CommitMeta(principal=Principal(user="setup"))))


def test_scheduled_checks_are_recorded_while_the_server_serves(
    start_server: ServerFactory, module_dir: Path
) -> None:
    backend = module_dir / "scheduled"
    backend.mkdir(mode=0o700)
    _record_a_bucket_that_aws_does_not_have(backend)
    server = start_server(backend, "--drift-interval", "1s", name="drift-interval")

    deadline = time.monotonic() + 60
    drift_commits: list[dict] = []
    while time.monotonic() < deadline and len(drift_commits) < 2:
        versions = server.call("list_state_versions", limit=20)
        assert versions.ok, versions.data
        drift_commits = [v for v in versions["versions"] if v["kind"] == "drift"]
        time.sleep(0.5)
    assert len(drift_commits) >= 2, server.server_log()

    loaded = server.call("load_state", identifier="ghost-bucket-drift-interval")
    assert loaded.ok, loaded.data
    status = loaded["resource"]["drift_status"]
    assert status["status"] == "DELETED" and status["drift_detected"] is True
